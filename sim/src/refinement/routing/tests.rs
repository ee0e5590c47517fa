use super::*;
use crate::world::{NodeId, ShardingConfig, WorldConfig};
use vault::bugzoo::Bugs;
use vault::host::HostConfig;
use vault::interceptor::InterceptorMode;
use vault::store::IdempotencyToken;
use vault::types::{Content, TenantId, VaultId};
use vault::worker::{Operation, RequestId, WorkerConfig};

const MS: u64 = 1_000_000;
/// Bound of every scheduler run: a test that needs more is looping.
const STEPS_MAX: usize = 100_000;

/// Two shards of one host each, a third that may be added live, two
/// workers; vaults 0, 1 and 2 start on shards 0, 1 and 0.
fn sharded_world() -> World {
    let mode = InterceptorMode::Sync;
    let sharding = ShardingConfig {
        shards: 2,
        policy: PlacementPolicy::LeastLoaded,
        route_timeout_ns: 50 * MS,
        lookups_max: 4,
        outages_only: false,
        add_shard: true,
    };
    World::new(WorldConfig {
        workers: 2,
        hosts: 1,
        vaults: (0..3).map(|index| (VaultId(index), TenantId(index))).collect(),
        mode,
        worker: WorkerConfig::new(mode),
        host: HostConfig::default(),
        publisher_batch_events_max: 4,
        publish_interval_ns: MS,
        activator_poll_interval_ns: MS,
        bugs: Bugs::none(),
        migration: None,
        sharding: Some(sharding),
    })
}

/// A world and its tracker, stepped together.
struct Run {
    world: World,
    tracker: RoutingTracker,
    /// Steps that changed the abstraction.
    changed: usize,
}

impl Run {
    fn new() -> Run {
        let world = sharded_world();
        let refinement = RoutingRefinement::of(&world).expect("a least-loaded sharded world");
        let tracker = RoutingTracker::new(refinement, &world);
        Run { world, tracker, changed: 0 }
    }

    /// Takes `action`, asserting that no property and no refinement broke.
    fn step(&mut self, action: &Action) {
        let before = self.tracker.state().clone();
        let mut report = self.world.step(action);
        self.tracker.on_step(&self.world, action, &mut report);
        assert!(report.violations.is_empty(), "{action:?} violated {:?}", report.violations);
        let whole = RoutingState { requests: self.tracker.state().requests.clone(), ..abstract_routing(&self.world) };
        assert_eq!(*self.tracker.state(), whole, "the followed abstraction after {action:?} is the whole one");
        self.changed += usize::from(before != *self.tracker.state());
    }

    /// Delivers the oldest message not `held`, or fires the earliest timer
    /// of another node than host 0 due within 300 ms, until neither is left.
    fn settle_except(&mut self, held: impl Fn(&crate::world::Message) -> bool) {
        let until = self.world.now().plus_ns(300 * MS);
        for _ in 0..STEPS_MAX {
            let message = self.world.in_flight().iter().find(|(_, message)| !held(message)).map(|(id, _)| *id);
            let timers = self.world.timers().iter().filter(|(node, _)| **node != NodeId::Host(0));
            let timer = timers.map(|(node, at)| (*at, *node)).min().filter(|(at, _)| *at <= until);
            let action = match (message, timer) {
                (Some(message), _) => Action::Deliver { message, at: self.world.now() },
                (None, Some((at, node))) => Action::FireTimer { node, at },
                (None, None) => return,
            };
            self.step(&action);
        }
        panic!("the world did not settle within {STEPS_MAX} steps");
    }

    /// Delivers the oldest message, or fires the earliest timer, until
    /// nothing is in flight and no timer is due within `duration_ns`.
    fn settle(&mut self, duration_ns: u64) {
        let until = self.world.now().plus_ns(duration_ns);
        for _ in 0..STEPS_MAX {
            let timer = self.world.timers().iter().map(|(node, at)| (*at, *node)).min();
            let action = match (self.world.in_flight().keys().next(), timer) {
                (Some(message), _) => Action::Deliver { message: *message, at: self.world.now() },
                (None, Some((at, node))) if at <= until => Action::FireTimer { node, at },
                (None, _) => return,
            };
            self.step(&action);
        }
        panic!("the world did not settle within {STEPS_MAX} steps");
    }

    fn submit(&mut self, request: u64, operation: Operation) {
        let at = self.world.now();
        self.step(&Action::Submit { request: RequestId(request), worker: 0, operation, at });
        self.settle(500 * MS);
    }

    fn routed_read(&mut self, request: u64, host: u32, secret: u32) {
        let (caller, at) = (TenantId(0), self.world.now());
        self.step(&Action::RoutedRead { request: RequestId(request), host, caller, secret: SecretId(secret), at });
        self.settle(500 * MS);
    }
}

fn create_secret(secret: u32, vault: u32) -> Operation {
    let content = Content::new(b"x");
    Operation::CreateSecret {
        secret: SecretId(secret),
        vault: VaultId(vault),
        content,
        token: IdempotencyToken(u64::from(secret) + 100),
    }
}

fn answered(vault: u32, shard: u32, lookup: bool) -> RoutingRequest {
    RoutingRequest { vault, outcome: RequestOutcome::Answered { shard, lookup } }
}

#[test]
fn a_sharded_run_with_a_shard_added_live_refines_the_routing_spec() {
    let mut run = Run::new();
    let start = run.tracker.state().clone();
    assert_eq!(start.shards, BTreeMap::from([(0, ShardRow::Ready), (1, ShardRow::Ready)]));
    assert_eq!(start.placements, BTreeMap::from([(0, 0), (1, 1), (2, 0)]));
    assert_eq!(start.cells, [0, 1].into_iter().collect());
    run.settle(500 * MS);
    assert_eq!(run.tracker.state().hosts[&0].cursor, start.routing_log.len(), "the base host applied every row");

    // A secret in vault 1 (shard 1), read through the router: proxied.
    run.submit(1, create_secret(5, 1));
    run.routed_read(2, 0, 5);
    assert_eq!(run.tracker.answered(), [answered(1, 1, false)]);
    assert!(run.tracker.state().requests.is_empty(), "answered requests leave the abstraction");
    // A secret never created: the router's NotFound is no routing decision.
    run.routed_read(3, 0, 9);
    assert_eq!(run.tracker.answered().len(), 1);
    assert!(run.tracker.state().requests.is_empty());

    // The host crashes and restarts; its table comes back from its durable rows.
    run.step(&Action::Crash(NodeId::Host(0)));
    assert!(!run.tracker.state().hosts[&0].up);
    run.step(&Action::Restart(NodeId::Host(0)));
    run.settle(500 * MS);

    // Shard 2 is added live and takes the next vault (the least loaded).
    let at = run.world.now();
    run.step(&Action::AddShard { at });
    run.settle(2_000 * MS);
    assert_eq!(run.tracker.state().shards.get(&2), Some(&ShardRow::Ready));
    assert!(run.tracker.state().cells.contains(&2));
    run.submit(4, Operation::CreateVault { vault: VaultId(3), tenant: TenantId(0) });
    assert_eq!(run.tracker.state().placements.get(&3), Some(&2));
    run.submit(5, create_secret(6, 3));
    run.routed_read(6, 0, 6);
    let requests = run.tracker.answered();
    assert!(requests.contains(&answered(3, 2, false)) || requests.contains(&answered(3, 2, true)), "{requests:?}");
    assert!(run.changed >= 10, "{} steps changed the abstraction", run.changed);
    assert_eq!(run.tracker.end_check(&run.world), None);
}

#[test]
fn a_router_s_lookups_are_a_learn_and_a_route_and_a_crash_forgets_the_row() {
    let mut run = Run::new();
    // Host 0 never polls: its table stays empty, so its router looks up the
    // secret's, the vault's and the shard's rows, one store round trip each.
    let polls_of_host_0 = |message: &crate::world::Message| {
        message.from == NodeId::Host(0) && matches!(message.payload, crate::world::Payload::StoreRequest { .. })
    };
    let at = run.world.now();
    let create = Action::Submit { request: RequestId(1), worker: 0, operation: create_secret(5, 1), at };
    run.step(&create);
    run.settle_except(polls_of_host_0);
    let read = Action::RoutedRead { request: RequestId(2), host: 0, caller: TenantId(1), secret: SecretId(5), at };
    run.step(&read);
    let changed = run.changed;
    run.settle_except(polls_of_host_0);
    assert_eq!(run.tracker.state().hosts[&0].cursor, 0, "host 0 applied nothing");
    // The vault's row, read by the second lookup, is a `Learn`; the third
    // (the shard's row) routes by the table; shard 1's cell answers.
    assert_eq!(run.tracker.answered(), [answered(1, 1, false)], "answered by shard 1");
    assert_eq!(run.changed - changed, 3, "the row learned, the route, the answer");
    assert_eq!(run.world.router_stats()[0].1.lookups, 3);
    assert_eq!(run.tracker.state().hosts[&0].learned, BTreeMap::from([(1, 1)]));
    run.step(&Action::Crash(NodeId::Host(0)));
    assert!(run.tracker.state().hosts[&0].learned.is_empty(), "the router's memory is gone");
}

#[test]
fn the_check_rejects_a_route_to_the_wrong_shard_and_a_placement_on_a_provisioning_shard() {
    let mut run = Run::new();
    run.settle(500 * MS);
    run.submit(1, create_secret(5, 1));
    let before = run.tracker.state().clone();
    assert_eq!(before.table_route(0, 1), Some(1), "host 0 has applied vault 1's route");
    let refinement = RoutingRefinement::of(&run.world).expect("sharded");
    // A read of vault 1's secret served in the router's own step: by shard 1, right.
    let mut after = before.clone();
    after.requests = vec![answered(1, 1, false)];
    assert_eq!(refinement.check(&before, &after), Ok(()));
    // The same request answered by shard 0, which is not vault 1's home.
    let mut misrouted = before.clone();
    misrouted.requests = vec![answered(1, 0, false)];
    let violation = refinement.check(&before, &misrouted).expect_err("vault 1 lives on shard 1");
    assert_eq!(violation.property, PropertyId::Ref1);
    assert!(violation.detail.contains("routing spec"), "{}", violation.detail);

    // Shard 2 registered (provisioning): a vault placed there is no spec step.
    let at = run.world.now();
    run.step(&Action::AddShard { at });
    for _ in 0..STEPS_MAX {
        if run.tracker.state().shards.get(&2) == Some(&ShardRow::Provisioning) {
            break;
        }
        let message = *run.world.in_flight().keys().next().expect("the addition is under way");
        run.step(&Action::Deliver { message, at: run.world.now() });
    }
    let provisioning = run.tracker.state().clone();
    assert_eq!(provisioning.shards.get(&2), Some(&ShardRow::Provisioning));
    let mut placed = provisioning.clone();
    placed.placements.insert(3, 2);
    placed.routing_log.push(RouteEvent::Vault { vault: 3, shard: 2 });
    assert!(refinement.check(&provisioning, &placed).is_err(), "shard 2 is provisioning");
    // Placed by the rule instead: shard 1 holds one vault, shard 0 two.
    let mut right = provisioning.clone();
    right.placements.insert(3, 1);
    right.routing_log.push(RouteEvent::Vault { vault: 3, shard: 1 });
    assert_eq!(refinement.check(&provisioning, &right), Ok(()), "shard 1 holds one vault, shard 0 two");
}

#[test]
fn the_simulator_s_tracker_judges_a_sharded_world_against_the_routing_spec() {
    let world = sharded_world();
    let tracker = crate::refinement::RefinementTracker::new(
        crate::refinement::Refinement::new(InterceptorMode::Sync, [], 1),
        &world,
    );
    assert!(tracker.judges(), "REF-1 is judged in a sharded world");
    let mut config = world.config().clone();
    config.sharding.as_mut().expect("sharded").policy = PlacementPolicy::Fixed(vault::types::ShardId(0));
    let fixed = World::new(config);
    let tracker = crate::refinement::RefinementTracker::new(
        crate::refinement::Refinement::new(InterceptorMode::Sync, [], 1),
        &fixed,
    );
    assert!(!tracker.judges(), "the routing spec places by load only");
}

#[test]
fn a_world_placing_by_a_fixed_shard_is_not_judged() {
    let world = sharded_world();
    let mut config = world.config().clone();
    let sharding = config.sharding.as_mut().expect("sharded");
    sharding.policy = PlacementPolicy::Fixed(vault::types::ShardId(1));
    assert!(RoutingRefinement::of(&World::new(config.clone())).is_none(), "the spec places by load only");
    config.sharding = None;
    assert!(RoutingRefinement::of(&World::new(config)).is_none(), "a world that does not shard");
}

#[test]
fn the_tracker_reports_ref_1_at_the_world_step_the_spec_cannot_take() {
    // A spec that knows two shards only: the world's addition of a third
    // is a registration no spec step explains.
    let world = sharded_world();
    let refinement = RoutingRefinement { spec: RoutingSpec::new(2, 2, u32::MAX, 1, u32::MAX) };
    let mut run = Run { tracker: RoutingTracker::new(refinement, &world), world, changed: 0 };
    run.settle(500 * MS);
    let at = run.world.now();
    run.step(&Action::AddShard { at });
    let mut reported = Vec::new();
    for _ in 0..STEPS_MAX {
        let Some(message) = run.world.in_flight().keys().next().copied() else { break };
        let action = Action::Deliver { message, at: run.world.now() };
        let mut report = run.world.step(&action);
        run.tracker.on_step(&run.world, &action, &mut report);
        reported.extend(report.violations);
        if !reported.is_empty() {
            break;
        }
    }
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0].property, PropertyId::Ref1);
    assert!(reported[0].detail.contains("Register { shard: 2 }"), "{}", reported[0].detail);
    assert_eq!(run.tracker.state().shards.get(&2), Some(&ShardRow::Provisioning), "the tracker follows the world");
}
