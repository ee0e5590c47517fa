use stateright::Checker;

use super::*;
use crate::spec::check_exhaustively;

/// The base shard from the start, shard 1 added live; two vaults, two
/// hosts, two requests, one host down at most.
fn base_shard_then_one_added() -> RoutingSpec {
    RoutingSpec::new(1, 2, 2, 2, 2)
}

/// Shards 0 and 1 from the start, shard 2 added live; three vaults (so the
/// third can go to shard 2), two hosts, one request, no crashes.
fn two_shards_then_a_third() -> RoutingSpec {
    RoutingSpec::new(2, 3, 3, 2, 1).with_hosts_down_max(0)
}

/// The state after `actions` from the initial state; panics if one is refused.
fn run(spec: &RoutingSpec, actions: &[RoutingAction]) -> RoutingState {
    let mut state = spec.init_states().remove(0);
    for action in actions {
        state = spec.step(&state, action).unwrap_or_else(|why| panic!("{action:?} refused: {why}"));
        assert!(spec.violations(&state).is_empty(), "after {action:?}: {:?}", spec.violations(&state));
    }
    state
}

fn apply(host: u32) -> RoutingAction {
    RoutingAction::Apply { host }
}

fn route(host: u32, vault: u32) -> RoutingAction {
    RoutingAction::Route { host, vault }
}

fn place(vault: u32) -> RoutingAction {
    RoutingAction::Place { vault }
}

/// From the initial state of a spec with two hosts: registers `shard`,
/// makes its cell serve, lets both hosts apply its row (the next event of
/// each), and marks it ready.
fn add_shard(shard: u32) -> Vec<RoutingAction> {
    vec![
        RoutingAction::Register { shard },
        RoutingAction::CellReady { shard },
        apply(0),
        apply(1),
        RoutingAction::MarkReady { shard },
    ]
}

#[test]
fn the_base_shard_then_one_added_holds_every_property() {
    assert_eq!(check_exhaustively(base_shard_then_one_added()), 338_722);
}

#[test]
fn two_shards_then_a_third_hold_every_property() {
    assert_eq!(check_exhaustively(two_shards_then_a_third()), 414_871);
}

#[test]
fn the_discoveries_are_pinned() {
    let spec = base_shard_then_one_added();
    let checker = spec.checker().spawn_bfs().join();
    // Shard 1 is added; vault 0 takes the base shard (a tie goes to the
    // lowest id) and vault 1 the least loaded, shard 1. A request for vault 1
    // at a host whose table lacks the route is looked up and proxied there.
    let mut proxied = add_shard(1);
    proxied.extend([place(0), place(1), route(0, 1), RoutingAction::Answer { request: 0 }]);
    checker.assert_discovery(PROXIED_TO_OTHER_SHARD, proxied);
    checker.assert_discovery(LOOKUP_FALLBACK, vec![place(0), route(0, 0)]);
    checker.assert_discovery(ANSWERED_NOT_FOUND, vec![route(0, 0)]);
    let mut added = add_shard(1);
    added.extend([place(0), place(1)]);
    checker.assert_discovery(ADDED_SHARD_CHOSEN, added.clone());
    let third = two_shards_then_a_third();
    let checker = third.checker().spawn_bfs().join();
    // Each host applies vault 0's and vault 1's routes before shard 2's row.
    let added = vec![
        place(0),
        place(1),
        RoutingAction::Register { shard: 2 },
        RoutingAction::CellReady { shard: 2 },
        apply(0),
        apply(0),
        apply(0),
        apply(1),
        apply(1),
        apply(1),
        RoutingAction::MarkReady { shard: 2 },
        place(2),
    ];
    checker.assert_discovery(ADDED_SHARD_CHOSEN, added);
}

#[test]
fn a_lookup_routes_to_the_home_and_the_log_later_brings_the_same_row() {
    let spec = base_shard_then_one_added();
    let looked_up = run(&spec, &[place(0), route(1, 0)]);
    assert_eq!(looked_up.requests[0].outcome, RequestOutcome::Routed { shard: 0, lookup: true });
    assert_eq!(looked_up.hosts[&1].learned, BTreeMap::from([(0, 0)]), "the host keeps the row it read");
    assert_eq!(looked_up.table_route(1, 0), Some(0));
    // A second request at the same host is routed by its table now.
    let by_table = spec.step(&looked_up, &route(1, 0)).expect("host 1 is up");
    let outcomes: Vec<RequestOutcome> = by_table.requests.iter().map(|request| request.outcome).collect();
    let routed = |lookup| RequestOutcome::Routed { shard: 0, lookup };
    assert_eq!(outcomes, vec![routed(false), routed(true)], "requests are kept sorted");
    // The event arrives: the learned row is dropped, the table is unchanged.
    let applied = spec.step(&looked_up, &apply(1)).expect("one event to apply");
    assert!(applied.hosts[&1].learned.is_empty());
    assert_eq!(applied.table_route(1, 0), Some(0));
    // A crash loses the learned row (the router's memory), not the applied
    // prefix: after a restart the next request looks the route up again.
    let crashed = spec.step(&looked_up, &RoutingAction::Crash { host: 1 }).expect("host 1 is up");
    let restarted = spec.step(&crashed, &RoutingAction::Restart { host: 1 }).expect("host 1 is down");
    assert!(restarted.hosts[&1].learned.is_empty(), "learned routes are volatile");
    assert_eq!(restarted.hosts[&1].cursor, looked_up.hosts[&1].cursor, "the applied prefix is durable");
    let again = spec.step(&restarted, &route(1, 0)).expect("host 1 is up");
    assert!(again
        .requests
        .contains(&RoutingRequest { vault: 0, outcome: RequestOutcome::Routed { shard: 0, lookup: true } }));
    assert_eq!(again.hosts[&1].learned, BTreeMap::from([(0, 0)]), "looked up again");
}

#[test]
fn placement_takes_the_least_loaded_ready_shard_lowest_id_first() {
    let spec = RoutingSpec::new(2, 3, 3, 1, 0);
    let state = run(&spec, &[place(0)]);
    assert_eq!(state.placements[&0], 0, "a tie goes to the lowest id");
    let mut actions = vec![place(0), RoutingAction::Register { shard: 2 }, RoutingAction::CellReady { shard: 2 }];
    let provisioning = run(&spec, &actions);
    assert_eq!(spec.placement_for(&provisioning), Some(1), "a provisioning shard is never chosen");
    actions.extend([apply(0), apply(0), RoutingAction::MarkReady { shard: 2 }, place(1)]);
    let state = run(&spec, &actions);
    assert_eq!(state.placements[&1], 1, "shards 1 and 2 are empty: the lower id wins");
    assert_eq!(spec.placement_for(&state), Some(2));
}

#[test]
fn a_shard_is_ready_only_once_its_cell_serves_and_every_host_has_its_row() {
    let spec = base_shard_then_one_added();
    let registered = run(&spec, &[RoutingAction::Register { shard: 1 }]);
    let refused = |state: &RoutingState, fragment: &str| {
        let why = spec.step(state, &RoutingAction::MarkReady { shard: 1 }).expect_err("the gate is closed");
        assert!(why.contains(fragment), "{why:?} does not name {fragment:?}");
        let mut actions = Vec::new();
        spec.actions(state, &mut actions);
        assert!(!actions.contains(&RoutingAction::MarkReady { shard: 1 }), "the model does not offer it");
    };
    refused(&registered, "cell does not serve");
    let serving = spec.step(&registered, &RoutingAction::CellReady { shard: 1 }).expect("registered");
    refused(&serving, "host 0 has applied 1 routing events, not yet shard 1's row at position 2");
    // A down host holds the gate too: its table is durable and it will route again.
    let host_1_down =
        run(&spec, &[RoutingAction::Register { shard: 1 }, RoutingAction::CellReady { shard: 1 }, apply(0)]);
    let host_1_down = spec.step(&host_1_down, &RoutingAction::Crash { host: 1 }).expect("host 1 is up");
    refused(&host_1_down, "host 1 has applied 1 routing events");
    let restarted = spec.step(&host_1_down, &RoutingAction::Restart { host: 1 }).expect("host 1 is down");
    let applied = spec.step(&restarted, &apply(1)).expect("one event to apply");
    let ready = spec.step(&applied, &RoutingAction::MarkReady { shard: 1 }).expect("the gate is open");
    assert_eq!(ready.shards[&1], ShardRow::Ready);
    assert_eq!(ready.routing_log.last(), Some(&RouteEvent::Shard { shard: 1, row: ShardRow::Ready }));
}

#[test]
fn each_invariant_catches_its_bug() {
    let spec = base_shard_then_one_added();
    let good = run(&spec, &[place(0), route(0, 0), RoutingAction::Answer { request: 0 }]);
    let properties = |state: &RoutingState| {
        spec.violations(state).into_iter().map(|violation| violation.property).collect::<Vec<_>>()
    };
    let mut moved = good.clone();
    moved.placements.insert(0, 1);
    moved.routing_log.push(RouteEvent::Vault { vault: 0, shard: 1 });
    assert_eq!(
        properties(&moved),
        vec![PropertyId::Rte1, PropertyId::Rte2, PropertyId::Rte3],
        "a vault moved to an unregistered shard"
    );
    let mut misrouted = good.clone();
    misrouted.requests[0].outcome = RequestOutcome::Answered { shard: 1, lookup: false };
    assert_eq!(properties(&misrouted), vec![PropertyId::Rte2]);
    let mut wrong_not_found = good.clone();
    wrong_not_found.requests[0].outcome = RequestOutcome::NotFound { routing_events: 2 };
    assert_eq!(properties(&wrong_not_found), vec![PropertyId::Rte2]);
    assert!(spec.violations(&spec.step(&good, &route(0, 1)).expect("host 0 is up")).is_empty(), "vault 1 is unplaced");
    let mut unknown_ready = good.clone();
    unknown_ready.shards.insert(1, ShardRow::Ready);
    unknown_ready.cells.insert(1);
    assert_eq!(properties(&unknown_ready), vec![PropertyId::Rte3]);
    let why = &spec.violations(&unknown_ready)[0].detail;
    assert_eq!(why, "shard 1 is ready, but host 0 has not applied its registry row");
}

/// Checks `spec` (with a bug) and asserts that `property` fails: the
/// counterexample found ends in a state that breaks it, and `shortest` is a
/// counterexample too. (stateright 0.31 may report a later one than the
/// shortest even in BFS, so the found path is not pinned.)
fn assert_breaks(spec: RoutingSpec, property: PropertyId, shortest: Vec<RoutingAction>) {
    let checker = spec.clone().checker().spawn_bfs().join();
    let found = checker.discovery(property.as_str()).unwrap_or_else(|| panic!("{property} is not violated"));
    let broken: Vec<PropertyId> =
        spec.violations(found.last_state()).into_iter().map(|violation| violation.property).collect();
    assert!(broken.contains(&property), "the counterexample breaks {broken:?}");
    checker.assert_discovery(property.as_str(), shortest);
}

#[test]
fn marking_ready_before_the_hosts_applied_the_row_breaks_rte_3() {
    let spec = base_shard_then_one_added();
    let early = vec![
        RoutingAction::Register { shard: 1 },
        RoutingAction::CellReady { shard: 1 },
        RoutingAction::MarkReady { shard: 1 },
    ];
    assert!(spec.step(&run(&spec, &early[..2]), &early[2]).is_err(), "the right rule waits for the hosts");
    assert_breaks(spec.with_bug(RoutingBug::ReadyBeforeHostsApplied), PropertyId::Rte3, early);
}

#[test]
fn placing_on_a_provisioning_shard_breaks_rte_3() {
    let spec = base_shard_then_one_added();
    let state = run(&spec, &[place(0), RoutingAction::Register { shard: 1 }]);
    assert_eq!(spec.placement_for(&state), Some(0), "the right rule ignores the provisioning shard");
    let early = vec![place(0), RoutingAction::Register { shard: 1 }, place(1)];
    assert_breaks(spec.with_bug(RoutingBug::PlaceOnProvisioning), PropertyId::Rte3, early);
}

#[test]
fn answering_not_found_without_a_lookup_breaks_rte_2() {
    let spec = base_shard_then_one_added().with_bug(RoutingBug::NotFoundWithoutLookup);
    assert_breaks(spec, PropertyId::Rte2, vec![place(0), route(0, 0)]);
}

#[test]
fn explains_names_the_step_of_each_pair_of_a_run() {
    let spec = base_shard_then_one_added();
    let mut actions = add_shard(1);
    actions.extend([place(0), place(1), apply(0), route(0, 1), route(1, 1)]);
    actions.extend([RoutingAction::Answer { request: 0 }, RoutingAction::Crash { host: 1 }]);
    actions.extend([RoutingAction::Restart { host: 1 }, apply(1), apply(1)]);
    let mut state = spec.init_states().remove(0);
    for action in actions {
        let next = spec.step(&state, &action).unwrap_or_else(|why| panic!("{action:?} refused: {why}"));
        assert_eq!(spec.explains(&state, &next), Ok(vec![action]), "from {state:?}");
        assert_eq!(spec.explains(&next, &next), Ok(Vec::new()), "a stutter");
        state = next;
    }
    assert_eq!(state.placements, BTreeMap::from([(0, 0), (1, 1)]), "vault 1 went to the shard added live");
}

#[test]
fn explains_takes_several_steps_of_one_world_step() {
    let spec = base_shard_then_one_added();
    let placed = run(&spec, &[place(0), place(1)]);
    // A poll reply that applies both routes at host 1.
    let applied = run(&spec, &[place(0), place(1), apply(1), apply(1)]);
    assert_eq!(spec.explains(&placed, &applied), Ok(vec![apply(1), apply(1)]));
    // A router that looks the route up and serves the request in its own cell.
    let served = run(&spec, &[place(0), place(1), route(1, 0), RoutingAction::Answer { request: 0 }]);
    assert_eq!(spec.explains(&placed, &served), Ok(vec![route(1, 0), RoutingAction::Answer { request: 0 }]));
    assert_eq!(served.requests[0].outcome, RequestOutcome::Answered { shard: 0, lookup: true });
    // The host is found by the route: host 0 has applied vault 0's route, host 1 has not.
    let from_table = run(&spec, &[place(0), apply(0), route(0, 0)]);
    let before = run(&spec, &[place(0), apply(0)]);
    assert_eq!(spec.explains(&before, &from_table), Ok(vec![route(0, 0)]));
    let looked_up = run(&spec, &[place(0), apply(0), route(1, 0)]);
    assert_eq!(spec.explains(&before, &looked_up), Ok(vec![route(1, 0)]));
    // A lookup that keeps the row and routes nothing (yet): a `Learn`; the
    // request it was for is then routed by the table.
    let learn = RoutingAction::Learn { host: 1, vault: 0 };
    let learned = run(&spec, &[place(0), apply(0), learn]);
    assert_eq!(spec.explains(&before, &learned), Ok(vec![learn]));
    let routed = spec.step(&learned, &route(1, 0)).expect("host 1 is up");
    assert_eq!(routed.requests[0].outcome, RequestOutcome::Routed { shard: 0, lookup: false });
    // Both tables route it to shard 0 now, and the state keeps no host:
    // the first up host explains it.
    assert_eq!(spec.explains(&learned, &routed), Ok(vec![route(0, 0)]));
    assert!(spec.step(&learned, &learn).is_err(), "a row the table holds is not looked up");
}

#[test]
fn explains_rejects_a_route_to_the_wrong_shard() {
    let spec = base_shard_then_one_added();
    let before = run(&spec, &add_shard(1));
    let before = run_from(&spec, before, &[place(0)]);
    assert_eq!(before.placements[&0], 0);
    // A request for vault 0 routed to shard 1, by lookup or by the table.
    for lookup in [false, true] {
        let mut after = before.clone();
        after.requests.push(RoutingRequest { vault: 0, outcome: RequestOutcome::Routed { shard: 1, lookup } });
        if lookup {
            after.hosts.get_mut(&0).expect("host 0").learned.insert(0, 1);
        }
        let why = spec.explains(&before, &after).expect_err("vault 0 lives on shard 0");
        assert!(why.contains("does not route as"), "{why}");
    }
    // Answered by another cell than the one it was routed to.
    let routed = run_from(&spec, before.clone(), &[route(1, 0)]);
    let mut answered = routed.clone();
    answered.requests[0].outcome = RequestOutcome::Answered { shard: 1, lookup: true };
    assert!(spec.explains(&routed, &answered).is_err());
    // The right answer is explained.
    let right = run_from(&spec, routed.clone(), &[RoutingAction::Answer { request: 0 }]);
    assert_eq!(spec.explains(&routed, &right), Ok(vec![RoutingAction::Answer { request: 0 }]));
}

#[test]
fn explains_rejects_a_placement_on_a_provisioning_shard_and_an_early_ready() {
    let spec = base_shard_then_one_added();
    let provisioning = run(&spec, &[RoutingAction::Register { shard: 1 }, RoutingAction::CellReady { shard: 1 }]);
    let mut placed = provisioning.clone();
    placed.placements.insert(0, 1);
    placed.routing_log.push(RouteEvent::Vault { vault: 0, shard: 1 });
    let why = spec.explains(&provisioning, &placed).expect_err("shard 1 is provisioning");
    assert!(why.contains("Place"), "{why}");
    // Placed on the ready base shard instead: explained.
    let right = run_from(&spec, provisioning.clone(), &[place(0)]);
    assert_eq!(spec.explains(&provisioning, &right), Ok(vec![place(0)]));
    // Marked ready before the hosts applied its row.
    let mut early = provisioning.clone();
    early.shards.insert(1, ShardRow::Ready);
    early.routing_log.push(RouteEvent::Shard { shard: 1, row: ShardRow::Ready });
    let why = spec.explains(&provisioning, &early).expect_err("the gate is closed");
    assert!(why.contains("has applied"), "{why}");
}

#[test]
fn explains_rejects_what_no_step_does() {
    let spec = base_shard_then_one_added();
    let state = run(&spec, &[place(0), apply(0), apply(1)]);
    let mut back = state.clone();
    back.hosts.get_mut(&0).expect("host 0").cursor -= 1;
    assert!(spec.explains(&state, &back).expect_err("cursors move forward").contains("went back"));
    let mut forgotten = state.clone();
    forgotten.routing_log.pop();
    forgotten.placements.clear();
    assert!(spec.explains(&state, &forgotten).expect_err("append-only").contains("appending"));
    let mut learned = state.clone();
    learned.hosts.get_mut(&1).expect("host 1").learned.insert(1, 0);
    assert!(spec.explains(&state, &learned).is_err(), "a route learned for a vault never placed");
    // A crash that keeps a learned route is not a spec step any more.
    let looked_up = run(&spec, &[place(0), route(1, 0)]);
    let mut crashed = looked_up.clone();
    crashed.hosts.get_mut(&1).expect("host 1").up = false;
    assert!(spec.explains(&looked_up, &crashed).is_err(), "a crash loses learned routes");
}

/// The state after `actions` from `state`; panics if one is refused.
fn run_from(spec: &RoutingSpec, mut state: RoutingState, actions: &[RoutingAction]) -> RoutingState {
    for action in actions {
        state = spec.step(&state, action).unwrap_or_else(|why| panic!("{action:?} refused: {why}"));
    }
    state
}
