use super::*;
use crate::properties::PropertyChecker;

fn ids(violations: &[Violation]) -> Vec<PropertyId> {
    violations.iter().map(|violation| violation.property).collect()
}

fn observe(checker: &mut RoutingChecker, observation: Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    checker.observe(&observation, &mut out);
    out
}

/// Observes each of `observations`, asserting that none shows a violation.
fn clean(checker: &mut RoutingChecker, observations: &[Observation]) {
    for observation in observations {
        let violations = observe(checker, observation.clone());
        assert!(violations.is_empty(), "{observation:?}: {violations:?}");
    }
}

/// A checker whose shards 0 (the base) and 1 are registered ready with
/// serving cells, and whose vault 7 lives on shard 1 and vault 5 on shard 0.
fn sharded(options: RoutingOptions) -> RoutingChecker {
    let mut checker = RoutingChecker::new(options);
    for shard in [0, 1] {
        clean(&mut checker, &[Observation::ShardRegistered { shard, ready: true }, Observation::CellReady { shard }]);
    }
    clean(&mut checker, &[Observation::Placed { vault: 7, shard: 1 }, Observation::Placed { vault: 5, shard: 0 }]);
    checker
}

fn outages_only() -> RoutingChecker {
    sharded(RoutingOptions { outages_only: true, base_hosts: 2 })
}

fn requested(request: u64, vault: u32, caller: u32) -> Observation {
    Observation::RouteRequested { request, vault, caller }
}

fn routed(request: u64, shard: u32) -> Observation {
    Observation::Routed { host: 3, request, shard }
}

fn answered(request: u64, shard: Option<u32>, outcome: RouteOutcome) -> Observation {
    Observation::RequestAnswered { request, shard, outcome }
}

fn outage(shard: u32, down: bool) -> Observation {
    Observation::StoreOutage { shard, down }
}

/// The single violation of `violations`, asserted to be of `property`.
fn single(violations: &[Violation], property: PropertyId) -> &Violation {
    assert_eq!(ids(violations), [property], "{violations:?}");
    &violations[0]
}

#[test]
fn rte1_holds_for_a_placement_repeated_on_its_shard_and_writes_there() {
    let mut checker = sharded(RoutingOptions::default());
    clean(
        &mut checker,
        &[
            Observation::Placed { vault: 7, shard: 1 },
            Observation::ShardWrite { shard: 1, vault: 7 },
            Observation::ShardWrite { shard: 0, vault: 5 },
        ],
    );
    assert_eq!(checker.home(7), Some(1));
}

#[test]
fn rte1_flags_a_second_placement_on_another_shard() {
    let mut checker = sharded(RoutingOptions::default());
    let violations = observe(&mut checker, Observation::Placed { vault: 7, shard: 0 });
    let detail = &single(&violations, PropertyId::Rte1).detail;
    assert!(detail.contains("vault 7 was placed on shard 0") && detail.contains("lives on shard 1"), "{detail}");
    assert_eq!(checker.home(7), Some(1), "the first placement stays the vault's home");
}

#[test]
fn rte1_flags_a_write_on_another_shard_and_a_write_to_a_vault_never_placed() {
    let mut checker = sharded(RoutingOptions::default());
    let elsewhere = observe(&mut checker, Observation::ShardWrite { shard: 0, vault: 7 });
    let detail = &single(&elsewhere, PropertyId::Rte1).detail;
    assert!(detail.contains("shard 0's store") && detail.contains("lives on shard 1"), "{detail}");
    let unplaced = observe(&mut checker, Observation::ShardWrite { shard: 1, vault: 8 });
    let detail = &single(&unplaced, PropertyId::Rte1).detail;
    assert!(detail.contains("vault 8") && detail.contains("never placed"), "{detail}");
}

#[test]
fn rte2_holds_for_answers_of_the_home_shard_served_locally_or_by_proxy() {
    let mut checker = sharded(RoutingOptions::default());
    clean(
        &mut checker,
        &[
            // Vault 5 lives on the base shard: served locally.
            requested(1, 5, 0),
            routed(1, 0),
            answered(1, Some(0), RouteOutcome::Served),
            // Vault 7 lives on shard 1: proxied there.
            requested(2, 7, 0),
            routed(2, 1),
            answered(2, Some(1), RouteOutcome::Served),
            // The home cell refusing is still the home answering.
            requested(3, 7, 0),
            routed(3, 1),
            answered(3, Some(1), RouteOutcome::Refused),
        ],
    );
    assert_eq!(checker.requests_in_flight(), 0);
}

#[test]
fn rte2_flags_an_answer_from_a_shard_that_is_not_the_home() {
    let mut checker = sharded(RoutingOptions::default());
    clean(&mut checker, &[requested(1, 7, 0)]);
    let violations = observe(&mut checker, answered(1, Some(0), RouteOutcome::Served));
    let detail = &single(&violations, PropertyId::Rte2).detail;
    assert!(detail.contains("request 1") && detail.contains("by shard 0") && detail.contains("shard 1"), "{detail}");
}

#[test]
fn rte2_flags_a_cell_answer_for_a_vault_never_placed_and_a_serve_by_no_cell() {
    let mut checker = sharded(RoutingOptions::default());
    clean(&mut checker, &[requested(1, 9, 0), requested(2, 7, 0)]);
    let unplaced = observe(&mut checker, answered(1, Some(1), RouteOutcome::Served));
    assert!(single(&unplaced, PropertyId::Rte2).detail.contains("never placed"), "{unplaced:?}");
    let nobody = observe(&mut checker, answered(2, None, RouteOutcome::Served));
    assert!(single(&nobody, PropertyId::Rte2).detail.contains("by no cell"), "{nobody:?}");
}

#[test]
fn rte2_flags_not_found_for_a_vault_placed_before_the_request() {
    let mut checker = sharded(RoutingOptions::default());
    clean(&mut checker, &[requested(4, 7, 2)]);
    let violations = observe(&mut checker, answered(4, None, RouteOutcome::NotFound));
    let detail = &single(&violations, PropertyId::Rte2).detail;
    assert!(detail.contains("request 4 was answered NotFound") && detail.contains("vault 7"), "{detail}");
    assert!(detail.contains("base store"), "{detail}");
}

#[test]
fn rte2_allows_not_found_for_a_vault_placed_after_the_request_or_never() {
    let mut checker = sharded(RoutingOptions::default());
    clean(
        &mut checker,
        &[
            requested(1, 8, 0),
            // Vault 8's create commits while the request is in flight: it
            // was not acknowledged when the request was sent.
            Observation::Placed { vault: 8, shard: 1 },
            answered(1, None, RouteOutcome::NotFound),
            requested(2, 9, 0),
            answered(2, None, RouteOutcome::NotFound),
        ],
    );
    // Once placed, a later request must find it.
    clean(&mut checker, &[requested(3, 8, 0)]);
    assert_eq!(ids(&observe(&mut checker, answered(3, None, RouteOutcome::NotFound))), [PropertyId::Rte2]);
}

#[test]
fn rte3_holds_for_a_shard_registered_ready_with_a_serving_cell() {
    let mut checker = sharded(RoutingOptions { outages_only: false, base_hosts: 2 });
    clean(
        &mut checker,
        &[
            Observation::ShardRegistered { shard: 2, ready: false },
            Observation::CellReady { shard: 2 },
            Observation::ShardKnown { host: 1, shard: 2 },
            Observation::ShardKnown { host: 0, shard: 2 },
            Observation::ShardRegistered { shard: 2, ready: true },
            Observation::Placed { vault: 11, shard: 2 },
            requested(1, 11, 0),
            routed(1, 2),
            answered(1, Some(2), RouteOutcome::Served),
        ],
    );
}

#[test]
fn rte3_flags_a_shard_marked_ready_before_every_base_host_applied_its_row() {
    let mut checker = sharded(RoutingOptions { outages_only: false, base_hosts: 3 });
    clean(
        &mut checker,
        &[
            Observation::ShardRegistered { shard: 2, ready: false },
            Observation::CellReady { shard: 2 },
            Observation::ShardKnown { host: 1, shard: 2 },
            // Another shard's row does not count for shard 2.
            Observation::ShardKnown { host: 0, shard: 1 },
        ],
    );
    let early = observe(&mut checker, Observation::ShardRegistered { shard: 2, ready: true });
    let detail = &single(&early, PropertyId::Rte3).detail;
    assert!(detail.contains("shard 2 was marked ready before base-cell host(s) 0, 2 applied"), "{detail}");
    // A shard ready from the start (never provisioning) is not judged.
    clean(&mut checker, &[Observation::ShardRegistered { shard: 5, ready: true }]);
}

#[test]
fn rte3_flags_placements_on_a_shard_not_ready() {
    let mut checker = sharded(RoutingOptions::default());
    let unregistered = observe(&mut checker, Observation::Placed { vault: 11, shard: 2 });
    assert!(single(&unregistered, PropertyId::Rte3).detail.contains("shard 2, which is not registered"));
    clean(&mut checker, &[Observation::ShardRegistered { shard: 3, ready: false }]);
    let provisioning = observe(&mut checker, Observation::Placed { vault: 12, shard: 3 });
    assert!(single(&provisioning, PropertyId::Rte3).detail.contains("still provisioning"), "{provisioning:?}");
    // Registered ready is not enough: the cell must serve too.
    clean(&mut checker, &[Observation::ShardRegistered { shard: 4, ready: true }]);
    let cell_down = observe(&mut checker, Observation::Placed { vault: 13, shard: 4 });
    let detail = &single(&cell_down, PropertyId::Rte3).detail;
    assert!(detail.contains("vault 13") && detail.contains("cell does not serve yet"), "{detail}");
}

#[test]
fn rte3_flags_a_route_to_a_shard_that_is_no_longer_ready() {
    let mut checker = sharded(RoutingOptions::default());
    clean(&mut checker, &[Observation::ShardRegistered { shard: 1, ready: false }, requested(1, 7, 0)]);
    // The route is by resource (vault 7 lives on shard 1): RTE-3 alone.
    let violations = observe(&mut checker, routed(1, 1));
    let detail = &single(&violations, PropertyId::Rte3).detail;
    assert!(detail.contains("host 3 routed request 1 to shard 1"), "{detail}");
}

#[test]
fn rte4_holds_for_a_cross_tenancy_request_routed_to_its_vaults_home() {
    let mut checker = sharded(RoutingOptions::default());
    // Caller tenancy 0 acts on vault 7 (shard 1): it goes to shard 1, not
    // to the shard a tenancy 0 might suggest.
    clean(&mut checker, &[requested(1, 7, 0), routed(1, 1), answered(1, Some(1), RouteOutcome::Served)]);
}

#[test]
fn rte4_flags_a_request_routed_by_the_callers_tenancy() {
    let mut checker = sharded(RoutingOptions::default());
    clean(&mut checker, &[requested(6, 7, 0)]);
    let violations = observe(&mut checker, routed(6, 0));
    let detail = &single(&violations, PropertyId::Rte4).detail;
    assert!(detail.contains("request 6 of caller tenancy 0 to shard 0"), "{detail}");
    assert!(detail.contains("vault 7 lives on shard 1"), "{detail}");
}

#[test]
fn rte4_flags_a_route_for_a_vault_never_placed() {
    let mut checker = sharded(RoutingOptions::default());
    clean(&mut checker, &[requested(1, 9, 1)]);
    let violations = observe(&mut checker, routed(1, 1));
    assert!(single(&violations, PropertyId::Rte4).detail.contains("vault 9 was never placed"), "{violations:?}");
}

#[test]
fn rte5_allows_unavailable_while_the_home_or_the_base_store_was_down() {
    let mut checker = outages_only();
    clean(
        &mut checker,
        &[
            // The home store goes down and comes back while request 1 waits.
            requested(1, 7, 0),
            outage(1, true),
            outage(1, false),
            answered(1, Some(1), RouteOutcome::Unavailable),
            // The base store is down when request 2 is sent and answered.
            outage(0, true),
            requested(2, 7, 0),
            answered(2, None, RouteOutcome::Unavailable),
            // Down when request 3 was sent, back before its answer.
            requested(3, 5, 0),
            outage(0, false),
            answered(3, Some(0), RouteOutcome::Unavailable),
        ],
    );
}

#[test]
fn rte5_flags_unavailable_when_only_another_shards_store_was_down() {
    let mut checker = outages_only();
    clean(
        &mut checker,
        &[
            Observation::ShardRegistered { shard: 2, ready: true },
            Observation::CellReady { shard: 2 },
            // An outage over before the request was sent excuses nothing.
            outage(1, true),
            outage(1, false),
            requested(1, 7, 0),
            outage(2, true),
        ],
    );
    let violations = observe(&mut checker, answered(1, Some(1), RouteOutcome::Unavailable));
    let detail = &single(&violations, PropertyId::Rte5).detail;
    assert!(detail.contains("request 1 of vault 7 was answered Unavailable") && detail.contains("shard 1"), "{detail}");
}

#[test]
fn rte5_judges_nothing_without_outages_only() {
    let mut checker = sharded(RoutingOptions { outages_only: false, base_hosts: 2 });
    clean(&mut checker, &[requested(1, 7, 0), answered(1, Some(1), RouteOutcome::Unavailable)]);
    // The same history with the option is a violation.
    let mut judging = outages_only();
    clean(&mut judging, &[requested(1, 7, 0)]);
    assert_eq!(ids(&observe(&mut judging, answered(1, Some(1), RouteOutcome::Unavailable))), [PropertyId::Rte5]);
}

#[test]
fn a_shed_request_judges_nothing() {
    let mut checker = outages_only();
    clean(&mut checker, &[requested(1, 7, 0), answered(1, None, RouteOutcome::Busy)]);
    assert_eq!(checker.requests_in_flight(), 0);
}

#[test]
fn requests_are_forgotten_once_answered() {
    let mut checker = outages_only();
    clean(&mut checker, &[requested(1, 7, 0), requested(2, 7, 0)]);
    assert_eq!(checker.requests_in_flight(), 2);
    clean(&mut checker, &[answered(1, Some(1), RouteOutcome::Served)]);
    assert_eq!(checker.requests_in_flight(), 1);
    // A duplicated answer, from the wrong shard even, finds nothing to judge.
    clean(&mut checker, &[answered(1, Some(0), RouteOutcome::Served)]);
    clean(&mut checker, &[answered(2, Some(1), RouteOutcome::Served)]);
    assert_eq!(checker.requests_in_flight(), 0);
    let reset = outages_only();
    assert_eq!(checker, reset, "nothing of the answered requests is left");
}

#[test]
fn the_property_checker_judges_routing_only_with_routing() {
    let history = [
        Observation::ShardRegistered { shard: 0, ready: true },
        Observation::CellReady { shard: 0 },
        Observation::Placed { vault: 7, shard: 0 },
        Observation::Placed { vault: 7, shard: 1 },
    ];
    let mut plain = PropertyChecker::new(&[1]);
    for observation in &history {
        assert!(plain.observe(observation).is_empty(), "{observation:?} judged without routing");
    }
    assert!(plain.routing().is_none());
    let mut routing = PropertyChecker::new(&[1]).with_routing(RoutingOptions::default());
    let violations: Vec<Violation> = history.iter().flat_map(|observation| routing.observe(observation)).collect();
    // Shard 1 is neither registered nor ready, and vault 7 already lives on 0.
    assert_eq!(ids(&violations), [PropertyId::Rte3, PropertyId::Rte1]);
    assert_eq!(routing.routing().map(|checker| checker.home(7)), Some(Some(0)));
}

#[test]
fn rte_ids_are_stable_and_follow_the_migration_ones() {
    let rte = [PropertyId::Rte1, PropertyId::Rte2, PropertyId::Rte3, PropertyId::Rte4, PropertyId::Rte5];
    assert_eq!(PropertyId::ALL[PropertyId::ALL.len() - 5..], rte);
    for (property, id) in rte.into_iter().zip(["RTE-1", "RTE-2", "RTE-3", "RTE-4", "RTE-5"]) {
        assert_eq!(property.as_str(), id);
        assert_eq!(PropertyId::parse(id), Some(property));
    }
    let mig7 = PropertyId::ALL.iter().position(|property| *property == PropertyId::Mig7);
    assert_eq!(mig7, Some(PropertyId::ALL.len() - 6));
}
