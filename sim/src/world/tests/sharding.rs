//! The sharded world: a cell per shard, routed reads, proxying, store
//! outages and a shard added live.

use super::*;

/// Three tenancies with a vault each; vault `i` starts on shard `i mod shards`.
fn sharded(shards: u32, add_shard: bool) -> WorldConfig {
    let sharding = ShardingConfig {
        shards,
        policy: PlacementPolicy::LeastLoaded,
        route_timeout_ns: 50 * MS,
        lookups_max: 4,
        outages_only: false,
        add_shard,
    };
    WorldConfig {
        hosts: 1,
        vaults: (0..3).map(|index| (VaultId(index), TenantId(index))).collect(),
        sharding: Some(sharding),
        ..config(InterceptorMode::Sync)
    }
}

fn routed_read(request: u64, host: u32, caller: u32, secret: u32, at: Time) -> Action {
    Action::RoutedRead { request: RequestId(request), host, caller: TenantId(caller), secret: SecretId(secret), at }
}

/// Like `settle`, returning every observation the steps made.
fn settle_observing(world: &mut World, duration_ns: u64) -> Vec<Observation> {
    let until = world.now().plus_ns(duration_ns);
    let mut observations = Vec::new();
    for _ in 0..STEPS_MAX {
        if world.in_flight().is_empty() && earliest_timer(world).is_none_or(|(_, deadline)| deadline > until) {
            return observations;
        }
        let action = scheduled(world);
        observations.extend(step_clean(world, &action).observations);
    }
    panic!("the world did not settle within {STEPS_MAX} steps");
}

fn position(observations: &[Observation], wanted: &Observation) -> usize {
    observations.iter().position(|observation| observation == wanted).unwrap_or_else(|| panic!("no {wanted:?}"))
}

#[test]
fn each_secret_lives_in_its_home_shard_and_a_read_from_another_tenancy_is_proxied_there() {
    let mut world = World::new(sharded(3, false));
    assert_eq!(world.shard_count(), 3);
    submit_now(&mut world, 1, 0, create(5, 1, b"five"));
    settle(&mut world, SETTLE_NS);
    assert!(matches!(world.shard_store(1).read(&Key::Secret(SecretId(5))).value, Some(Value::Secret(_))));
    assert_eq!(world.shard_store(0).read(&Key::Secret(SecretId(5))).value, None, "not in the base store");
    let route = world.store().read(&Key::SecretRoute(SecretId(5))).value;
    assert_eq!(route, Some(Value::SecretRoute(VaultId(1))), "the base store routes it");
    let holders: Vec<u32> = (0..3)
        .flat_map(|shard| world.cell_hosts(shard).collect::<Vec<_>>())
        .filter(|(_, _, durable)| durable.record(SecretId(5)).is_some())
        .map(|(index, _, _)| index)
        .collect();
    assert_eq!(holders, vec![1], "only shard 1's host holds it");

    let now = world.now();
    step_clean(&mut world, &routed_read(2, 0, 2, 5, now));
    let observations = settle_observing(&mut world, SETTLE_NS);
    let routed = Observation::Routed { host: 0, request: 2, shard: 1 };
    let answered = Observation::RequestAnswered { request: 2, shard: Some(1), outcome: RouteOutcome::Served };
    assert!(position(&observations, &routed) < position(&observations, &answered));
    assert!(observations.contains(&Observation::HostRead { host: 1, secret: 5, found: Some(secret_state_of(&world)) }));
    assert_eq!(world.history()[&RequestId(2)].answered.map(|(_, served)| served), Some(true));
    assert_eq!(world.history()[&RequestId(2)].shard, Some(1));
    let stats = world.router_stats()[0].1;
    assert_eq!((stats.proxied, stats.local, stats.lookups), (1, 0, 0), "routed from the replicated table");
    assert_eq!(world.check_quiescent(), Vec::new(), "each cell converges on its own secrets");
}

/// Secret 5 as shard 1's store holds it.
fn secret_state_of(world: &World) -> SecretState {
    let Some(Value::Secret(record)) = world.shard_store(1).read(&Key::Secret(SecretId(5))).value else {
        panic!("secret 5 is in shard 1")
    };
    secret_state(&record)
}

#[test]
fn a_router_without_the_route_reads_it_from_the_base_store() {
    let mut world = World::new(sharded(3, false));
    settle(&mut world, SETTLE_NS);
    submit_now(&mut world, 1, 0, create(5, 2, b"five"));
    // The create is acknowledged before any host polls again: the base host lacks the route.
    run_until_in_flight(&mut world, |message| matches!(message.payload, Payload::ClientAnswer { .. }));
    assert_eq!(world.hosts().next().expect("a base host").2.routes().vault_of(SecretId(5)), None);
    let now = world.now();
    step_clean(&mut world, &routed_read(2, 0, 0, 5, now));
    let observations = settle_observing(&mut world, SETTLE_NS);
    assert!(observations.contains(&Observation::Routed { host: 0, request: 2, shard: 2 }));
    let answered = Observation::RequestAnswered { request: 2, shard: Some(2), outcome: RouteOutcome::Served };
    assert!(observations.contains(&answered), "{observations:?}");
    assert!(world.router_stats()[0].1.lookups >= 1, "the router looked the route up");
}

#[test]
fn a_read_of_a_secret_that_was_never_created_is_not_found_by_the_router() {
    let mut world = World::new(sharded(2, false));
    settle(&mut world, SETTLE_NS);
    assert!(world.is_quiet());
    let now = world.now();
    let mut observations = step_clean(&mut world, &routed_read(1, 0, 0, 9, now)).observations;
    // The request waits on the router's lookup: the world is not quiet.
    run_until_in_flight(&mut world, |message| message.from == NodeId::Router(0));
    assert!(!world.is_quiet(), "a routed read waits on its lookup");
    assert_eq!(
        world.why_not_quiet().as_deref(),
        Some("client operations (router 0 looking a route up, in flight: Router(0)->Store(0))")
    );
    observations.extend(settle_observing(&mut world, SETTLE_NS));
    assert!(world.is_quiet(), "answered: {:?}", world.why_not_quiet());
    let answered = Observation::RequestAnswered { request: 1, shard: None, outcome: RouteOutcome::NotFound };
    assert!(observations.contains(&answered), "{observations:?}");
    assert_eq!(world.history()[&RequestId(1)].answered.map(|(_, served)| served), Some(true), "a domain answer");
    assert_eq!(world.history()[&RequestId(1)].shard, None, "no route at issue");
}

#[test]
fn a_store_outage_is_reported_and_loses_the_messages_to_that_store_only() {
    let mut world = World::new(sharded(2, false));
    submit_now(&mut world, 1, 0, create(5, 1, b"five"));
    settle(&mut world, SETTLE_NS);
    let report = step_clean(&mut world, &Action::StoreOutage { shard: 1, down: true });
    assert_eq!(report.observations, vec![Observation::StoreOutage { shard: 1, down: true }]);
    assert!(!world.actions().contains(&Action::Heal), "heal does not end a store's outage");
    submit_now(&mut world, 2, 0, update(5, b"six"));
    // The worker remembers the route it committed: the update goes to shard 1's store.
    let to_home =
        run_until_in_flight(&mut world, |message| message.from == NodeId::Worker(0) && message.to == NodeId::Store(1));
    let report = deliver_now(&mut world, to_home);
    assert_eq!(report.lost, vec![to_home], "the request to the shard that is down is lost");
    let report = step_clean(&mut world, &Action::StoreOutage { shard: 1, down: false });
    assert_eq!(report.observations, vec![Observation::StoreOutage { shard: 1, down: false }]);
    settle(&mut world, SETTLE_NS);
    let answered = world.history()[&RequestId(2)].answered;
    assert_eq!(answered.map(|(_, served)| served), Some(true), "the retry after the outage commits");
}

#[test]
fn a_shard_added_live_is_ready_only_once_its_cell_serves_and_every_base_host_has_its_row() {
    let mut world = World::new(WorldConfig { hosts: 2, ..sharded(2, true) });
    settle(&mut world, SETTLE_NS);
    assert!(!world.crashable_nodes().contains(&NodeId::ShardAdder), "no operator before it is told");
    let now = world.now();
    let mut observations = step_clean(&mut world, &Action::AddShard { at: now }).observations;
    let waiting = world.why_not_quiet().unwrap_or_default();
    assert!(waiting.contains("the shard addition"), "{waiting}");
    observations.extend(settle_observing(&mut world, SETTLE_NS));
    assert!(world.is_quiet(), "added: {:?}", world.why_not_quiet());
    let provisioning = position(&observations, &Observation::ShardRegistered { shard: 2, ready: false });
    let serving = position(&observations, &Observation::CellReady { shard: 2 });
    let ready = position(&observations, &Observation::ShardRegistered { shard: 2, ready: true });
    assert!(provisioning < serving && serving < ready, "{observations:?}");
    assert_eq!(world.shard_count(), 3);
    for (index, _, durable) in world.hosts() {
        assert_eq!(durable.routes().shard_state(ShardId(2)), Some(ShardState::Ready), "base host {index}");
    }
    // The new shard has no vault yet: the least loaded, it takes the next one.
    let vault = Operation::CreateVault { vault: VaultId(7), tenant: TenantId(1) };
    submit_now(&mut world, 1, 0, vault);
    settle(&mut world, SETTLE_NS);
    let route = world.store().read(&Key::VaultRoute(VaultId(7))).value;
    assert_eq!(route, Some(Value::VaultRoute(ShardId(2))));
    assert!(matches!(world.shard_store(2).read(&Key::Vault(VaultId(7))).value, Some(Value::Vault(_))));
    assert_eq!(world.check_quiescent(), Vec::new());
}
