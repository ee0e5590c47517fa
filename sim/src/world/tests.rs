use std::hash::DefaultHasher;

use vault::store::IdempotencyToken;
use vault::types::{Content, Version};

use super::*;

const MS: u64 = 1_000_000;
/// Bound of every scheduler run: a test that needs more is looping.
const STEPS_MAX: usize = 100_000;
/// Long enough for creates, activation, publishing and a host poll timeout.
const SETTLE_NS: u64 = 500 * MS;

fn config(mode: InterceptorMode) -> WorldConfig {
    WorldConfig {
        workers: 2,
        hosts: 2,
        vaults: vec![(VaultId(1), TenantId(1)), (VaultId(2), TenantId(2))],
        mode,
        worker: WorkerConfig::new(mode),
        host: HostConfig::default(),
        publisher_batch_events_max: 4,
        publish_interval_ns: MS,
        activator_poll_interval_ns: 2 * MS,
        bugs: vault::bugzoo::Bugs::none(),
        migration: None,
        sharding: None,
    }
}

fn ms(count: u64) -> Time {
    Time(count * MS)
}

fn create(secret: u32, vault: u32, bytes: &[u8]) -> Operation {
    let token = IdempotencyToken(u64::from(secret));
    Operation::CreateSecret { secret: SecretId(secret), vault: VaultId(vault), content: Content::new(bytes), token }
}

fn update(secret: u32, bytes: &[u8]) -> Operation {
    Operation::UpdateSecret { secret: SecretId(secret), content: Content::new(bytes), expected: None }
}

fn submit(request: u64, worker: u32, operation: Operation, at: Time) -> Action {
    Action::Submit { request: RequestId(request), worker, operation, at }
}

fn read(request: u64, host: u32, secret: u32, at: Time) -> Action {
    Action::Read { request: RequestId(request), host, secret: SecretId(secret), at }
}

fn fire(node: NodeId, at: Time) -> Action {
    Action::FireTimer { node, at }
}

/// Submits `operation` to `worker` now.
fn submit_now(world: &mut World, request: u64, worker: u32, operation: Operation) -> StepReport {
    let now = world.now();
    step_clean(world, &submit(request, worker, operation, now))
}

/// Reads `secret` from `host` now.
fn read_now(world: &mut World, request: u64, host: u32, secret: u32) -> StepReport {
    let now = world.now();
    step_clean(world, &read(request, host, secret, now))
}

/// Delivers `message` now.
fn deliver_now(world: &mut World, message: MessageId) -> StepReport {
    let now = world.now();
    step_clean(world, &Action::Deliver { message, at: now })
}

/// Fires `node`'s timer at its deadline.
fn fire_due(world: &mut World, node: NodeId) -> StepReport {
    let deadline = world.timers()[&node];
    step_clean(world, &fire(node, deadline))
}

/// Steps `action` and asserts it violated nothing.
fn step_clean(world: &mut World, action: &Action) -> StepReport {
    let report = world.step(action);
    assert!(report.violations.is_empty(), "{action:?} violated {:?}", report.violations);
    report
}

/// The armed timer with the earliest deadline (ties by node).
fn earliest_timer(world: &World) -> Option<(NodeId, Time)> {
    world.timers().iter().map(|(node, deadline)| (*node, *deadline)).min_by_key(|(node, deadline)| (*deadline, *node))
}

/// The simple scheduler: deliver the lowest-id message now, else fire the
/// earliest timer.
fn scheduled(world: &World) -> Action {
    if let Some(id) = world.in_flight().keys().next() {
        return Action::Deliver { message: *id, at: world.now() };
    }
    let (node, deadline) = earliest_timer(world).expect("a world always has a timer armed");
    fire(node, deadline)
}

/// Runs the scheduler until nothing is in flight and no timer is due within
/// `duration_ns` of now; asserts no step violated anything.
fn settle(world: &mut World, duration_ns: u64) {
    let until = world.now().plus_ns(duration_ns);
    for _ in 0..STEPS_MAX {
        if world.in_flight().is_empty() && earliest_timer(world).is_none_or(|(_, deadline)| deadline > until) {
            return;
        }
        let action = scheduled(world);
        step_clean(world, &action);
    }
    panic!("the world did not settle within {STEPS_MAX} steps");
}

/// Runs the scheduler until a message matching `wanted` is in flight.
fn run_until_in_flight(world: &mut World, wanted: impl Fn(&Message) -> bool) -> MessageId {
    for _ in 0..STEPS_MAX {
        if let Some((id, _)) = world.in_flight().iter().find(|(_, message)| wanted(message)) {
            return *id;
        }
        let action = scheduled(world);
        step_clean(world, &action);
    }
    panic!("no wanted message within {STEPS_MAX} steps");
}

/// The id of the only message sent by `report` that matches `wanted`.
fn sent_matching(world: &World, report: &StepReport, wanted: impl Fn(&Message) -> bool) -> MessageId {
    let matching: Vec<MessageId> = report
        .sent
        .iter()
        .copied()
        .filter(|id| world.in_flight().get(id).is_some_and(|message| wanted(message)))
        .collect();
    assert_eq!(matching.len(), 1, "one matching message among {:?}", report.sent);
    matching[0]
}

fn durable(world: &World, host: u32) -> LocalStore {
    match &world.base().hosts[host as usize] {
        HostSlot::Up(machine) => machine.durable().clone(),
        HostSlot::Down(durable) => LocalStore::clone(durable),
    }
}

fn hash_of(world: &World) -> u64 {
    let mut hasher = DefaultHasher::new();
    world.hash(&mut hasher);
    hasher.finish()
}

fn assert_all_served(world: &World) {
    for (request, record) in world.history() {
        let (answered_at, served) = record.answered.unwrap_or_else(|| panic!("{request:?} never answered"));
        assert!(served, "{request:?} ({}) not served", record.kind.name());
        assert!(answered_at >= record.issued_at, "{request:?} answered before it was issued");
    }
}

/// Creates, updates, deletes and host reads through the whole pipeline, then
/// checks that the world is quiet and converged.
fn run_lifecycle(mode: InterceptorMode) {
    let mut world = World::new(config(mode));
    // Worker 1 queues its second create; secrets 1 and 3 share tenancy 1.
    submit_now(&mut world, 1, 0, create(1, 1, b"one"));
    submit_now(&mut world, 2, 1, create(2, 2, b"two"));
    submit_now(&mut world, 3, 1, create(3, 1, b"three"));
    settle(&mut world, SETTLE_NS);
    assert_eq!(world.history().len(), 3);
    assert_all_served(&world);

    submit_now(&mut world, 4, 0, update(1, b"one again"));
    let delete = Operation::DeleteSecret { secret: SecretId(3), expected: None };
    submit_now(&mut world, 5, 1, delete);
    read_now(&mut world, 6, 0, 2);
    read_now(&mut world, 7, 1, 1);
    settle(&mut world, SETTLE_NS);
    assert_eq!(world.history().len(), 7);
    assert_all_served(&world);

    assert!(world.is_quiet(), "{mode:?}: not quiet after settling");
    assert_eq!(world.check_quiescent(), Vec::new(), "{mode:?}");
    let view = world.view();
    for (host, host_view) in &view.hosts {
        assert!(host_view.live, "host {host} is down");
        assert_eq!(host_view.records, view.remote, "{mode:?}: host {host} differs from the store");
    }
    // Create at 1, activation at 2, then the update at 3 (still Active).
    assert_eq!(view.remote[&1].lifecycle, model::Lifecycle::Active);
    assert_eq!(view.remote[&1].version, 3);
    assert_eq!(view.remote[&1].checksum, Some(Content::new(b"one again").checksum().0));
    assert_eq!(view.remote[&2].lifecycle, model::Lifecycle::Active);
    assert_eq!(view.remote[&2].version, 2);
    // Secret 3 was activated before its delete: a tombstone at 3.
    assert_eq!(view.remote[&3].lifecycle, model::Lifecycle::Deleted);
    assert_eq!(view.remote[&3].version, 3);
    assert_eq!(view.remote[&3].checksum, None);
    // Every mutation reached its partition: 3 + 3 events in tenancy 1, 2 in 2.
    assert_eq!(world.store().head(TenantId(1)), Seq(6));
    assert_eq!(world.store().head(TenantId(2)), Seq(2));
    let outbox = world.store().scan(vault::store::Table::Outbox, None, 1);
    assert!(outbox.rows.is_empty(), "{mode:?}: outbox not drained");
    let published: u64 = world.publishers().map(|publisher| publisher.stats().published).sum();
    match mode {
        InterceptorMode::Sync => assert_eq!(world.publishers().count(), 0, "sync mode runs no publisher"),
        InterceptorMode::Async => assert_eq!(published, 8, "every outbox row was published once"),
    }
}

#[test]
fn sync_world_answers_everything_and_converges() {
    run_lifecycle(InterceptorMode::Sync);
}

#[test]
fn async_world_answers_everything_and_converges_through_publishers() {
    run_lifecycle(InterceptorMode::Async);
}

#[test]
fn the_scheduler_is_deterministic() {
    let run = || {
        let mut world = World::new(config(InterceptorMode::Sync));
        submit_now(&mut world, 1, 0, create(1, 1, b"one"));
        submit_now(&mut world, 2, 1, create(2, 1, b"two"));
        settle(&mut world, SETTLE_NS);
        world
    };
    let (first, second) = (run(), run());
    assert_eq!(first, second);
    assert_eq!(first.steps(), second.steps());
    assert_eq!(first.in_flight(), second.in_flight());
    // Two writers of one tenancy in sync mode contend on the partition head.
    let conflicts: u64 = first.workers().map(|(_, worker)| worker.stats().conflicts).sum();
    assert!(conflicts > 0, "the scenario was meant to conflict");
}

#[test]
fn equality_and_hash_ignore_message_ids() {
    let base = World::new(config(InterceptorMode::Sync));
    let first_then_second = {
        let mut world = base.clone();
        step_clean(&mut world, &submit(1, 0, create(1, 1, b"one"), ms(1)));
        step_clean(&mut world, &submit(2, 1, create(2, 2, b"two"), ms(1)));
        world
    };
    let second_then_first = {
        let mut world = base.clone();
        step_clean(&mut world, &submit(2, 1, create(2, 2, b"two"), ms(1)));
        step_clean(&mut world, &submit(1, 0, create(1, 1, b"one"), ms(1)));
        world
    };
    // The same messages under swapped ids.
    assert_ne!(first_then_second.in_flight(), second_then_first.in_flight());
    assert_eq!(first_then_second, second_then_first);
    assert_eq!(hash_of(&first_then_second), hash_of(&second_then_first));

    // Delivered in opposite orders, the two workers' reads are again equal.
    let mut left = first_then_second.clone();
    let mut right = second_then_first.clone();
    for world in [&mut left, &mut right] {
        let ids: Vec<MessageId> = world.in_flight().keys().copied().collect();
        for id in ids {
            step_clean(world, &Action::Deliver { message: id, at: ms(1) });
        }
    }
    assert_eq!(left, right);
    assert_eq!(hash_of(&left), hash_of(&right));

    // A duplicate whose original is dropped leaves the same world under a new id.
    let mut copied = left.clone();
    let original = *copied.in_flight().keys().next().expect("reads in flight");
    let report = step_clean(&mut copied, &Action::Duplicate(original));
    assert_eq!(report.sent.len(), 1);
    assert_ne!(report.sent[0], original);
    step_clean(&mut copied, &Action::Drop(original));
    assert_eq!(copied, left);
    assert_eq!(hash_of(&copied), hash_of(&left));

    // A different payload is a different world.
    let other_content = {
        let mut world = base.clone();
        step_clean(&mut world, &submit(1, 0, create(1, 1, b"ONE"), ms(1)));
        step_clean(&mut world, &submit(2, 1, create(2, 2, b"two"), ms(1)));
        world
    };
    assert_eq!(other_content.history(), first_then_second.history());
    assert_ne!(other_content, first_then_second);
    assert_ne!(hash_of(&other_content), hash_of(&first_then_second));
}

#[test]
fn actions_of_a_new_world_are_timers_crashes_and_isolations() {
    let world = World::new(config(InterceptorMode::Sync));
    assert!(world.in_flight().is_empty());
    let expected = vec![
        fire(NodeId::Host(0), Time::ZERO),
        fire(NodeId::Host(1), Time::ZERO),
        fire(NodeId::Activator(0), Time::ZERO),
        Action::Crash(NodeId::Worker(0)),
        Action::Isolate(NodeId::Worker(0)),
        Action::Crash(NodeId::Worker(1)),
        Action::Isolate(NodeId::Worker(1)),
        Action::Crash(NodeId::Host(0)),
        Action::Isolate(NodeId::Host(0)),
        Action::Crash(NodeId::Host(1)),
        Action::Isolate(NodeId::Host(1)),
        Action::Crash(NodeId::Activator(0)),
        Action::Isolate(NodeId::Activator(0)),
    ];
    assert_eq!(world.actions(), expected);

    let world = World::new(config(InterceptorMode::Async));
    let actions = world.actions();
    let timers: Vec<&Action> = actions.iter().filter(|action| matches!(action, Action::FireTimer { .. })).collect();
    assert_eq!(
        timers,
        [
            &fire(NodeId::Host(0), Time::ZERO),
            &fire(NodeId::Host(1), Time::ZERO),
            &fire(NodeId::Publisher(0, 1), Time::ZERO),
            &fire(NodeId::Publisher(0, 2), Time::ZERO),
            &fire(NodeId::Activator(0), Time::ZERO),
        ]
    );
    assert!(actions.contains(&Action::Crash(NodeId::Publisher(0, 2))));
    assert!(actions.contains(&Action::Isolate(NodeId::Publisher(0, 1))));
    assert!(!actions.contains(&Action::Heal));
}

#[test]
fn actions_follow_messages_timers_crashes_and_isolation() {
    let mut world = World::new(config(InterceptorMode::Sync));
    fire_due(&mut world, NodeId::Host(0));
    step_clean(&mut world, &submit(1, 0, create(1, 1, b"one"), ms(3)));
    step_clean(&mut world, &Action::Crash(NodeId::Worker(1)));
    step_clean(&mut world, &Action::Isolate(NodeId::Host(1)));
    let ids: Vec<MessageId> = world.in_flight().keys().copied().collect();
    assert_eq!(ids.len(), 2, "a poll and a client request");

    let mut expected = Vec::new();
    for id in &ids {
        expected.extend([Action::Deliver { message: *id, at: ms(3) }, Action::Drop(*id), Action::Duplicate(*id)]);
    }
    expected.extend(world.timers().iter().map(|(node, deadline)| fire(*node, *deadline)));
    expected.extend([
        Action::Crash(NodeId::Worker(0)),
        Action::Isolate(NodeId::Worker(0)),
        Action::Restart(NodeId::Worker(1)),
        Action::Isolate(NodeId::Worker(1)),
        Action::Crash(NodeId::Host(0)),
        Action::Isolate(NodeId::Host(0)),
        Action::Crash(NodeId::Host(1)),
        Action::Crash(NodeId::Activator(0)),
        Action::Isolate(NodeId::Activator(0)),
        Action::Heal,
    ]);
    let actions = world.actions();
    assert_eq!(actions, expected);
    // The crashed worker's timer is gone; the others are listed once each.
    assert!(!world.timers().contains_key(&NodeId::Worker(1)));
    assert_eq!(world.timers().len(), 3, "both hosts and the activator; worker 0 has not heard of its request");

    // Deterministic: the same world, or an equal clone, lists the same actions.
    assert_eq!(world.actions(), actions);
    assert_eq!(world.clone().actions(), actions);

    // Every listed action is enabled: stepping it from this world does not panic.
    for action in &actions {
        let mut next = world.clone();
        next.step(action);
    }

    step_clean(&mut world, &Action::Heal);
    assert!(!world.actions().contains(&Action::Heal));
    assert!(world.actions().contains(&Action::Isolate(NodeId::Host(1))));
}

#[test]
fn a_host_crash_keeps_its_durable_store_and_loses_nothing() {
    let mut world = World::new(config(InterceptorMode::Sync));
    submit_now(&mut world, 1, 0, create(1, 1, b"one"));
    settle(&mut world, SETTLE_NS);
    let before = durable(&world, 0);
    assert_eq!(before.version(SecretId(1)), Version(2), "created and activated");
    assert_eq!(before.cursor(TenantId(1)), Seq(2));

    step_clean(&mut world, &Action::Crash(NodeId::Host(0)));
    assert!(!world.is_up(NodeId::Host(0)));
    assert!(!world.timers().contains_key(&NodeId::Host(0)), "a down host has no timer");
    assert!(world.actions().contains(&Action::Restart(NodeId::Host(0))));
    let view = world.view();
    assert!(!view.hosts[&0].live);
    assert_eq!(view.hosts[&0].records, view.remote, "the down host's records stay visible");

    // The world moves on without it.
    submit_now(&mut world, 2, 0, update(1, b"one again"));
    settle(&mut world, SETTLE_NS);
    assert_eq!(durable(&world, 0), before, "a down host changes nothing");
    assert_eq!(durable(&world, 1).version(SecretId(1)), Version(3));
    assert!(world.is_quiet(), "a down host does not hold up quiet");

    // A read sent to the down host is lost, and its client never hears back.
    let report = read_now(&mut world, 3, 0, 1);
    let id = report.sent[0];
    let report = deliver_now(&mut world, id);
    assert_eq!(report.lost, [id]);
    assert!(report.sent.is_empty());
    assert_eq!(world.history()[&RequestId(3)].answered, None);

    step_clean(&mut world, &Action::Restart(NodeId::Host(0)));
    assert!(world.is_up(NodeId::Host(0)));
    assert_eq!(durable(&world, 0), before, "records and cursors survive the restart");
    assert_eq!(world.timers().get(&NodeId::Host(0)), Some(&world.now()), "the first poll is due at once");

    settle(&mut world, SETTLE_NS);
    assert_eq!(durable(&world, 0).version(SecretId(1)), Version(3), "the host caught up");
    assert_eq!(durable(&world, 0).cursor(TenantId(1)), Seq(3));
    assert!(world.is_quiet());
    assert_eq!(world.check_quiescent(), Vec::new());
}

#[test]
fn an_isolated_node_loses_messages_both_ways_until_heal() {
    let mut world = World::new(config(InterceptorMode::Sync));
    submit_now(&mut world, 1, 0, create(1, 1, b"one"));
    settle(&mut world, SETTLE_NS);

    step_clean(&mut world, &Action::Isolate(NodeId::Host(1)));
    assert!(world.is_isolated(NodeId::Host(1)));
    assert!(world.is_up(NodeId::Host(1)), "isolation is not a crash");
    assert!(world.actions().contains(&Action::Heal));

    // To the isolated host.
    let report = read_now(&mut world, 2, 1, 1);
    let id = report.sent[0];
    let report = deliver_now(&mut world, id);
    assert_eq!(report.lost, [id]);
    assert_eq!(world.history()[&RequestId(2)].answered, None);

    // From the isolated host: its next poll never reaches the store.
    let report = fire_due(&mut world, NodeId::Host(1));
    let poll = sent_matching(&world, &report, |message| {
        message.from == NodeId::Host(1) && matches!(message.payload, Payload::StoreRequest { .. })
    });
    let store_before = world.store().clone();
    let report = deliver_now(&mut world, poll);
    assert_eq!(report.lost, [poll]);
    assert!(report.sent.is_empty(), "the store answered a lost request");
    assert_eq!(world.store(), &store_before);

    // Other links still work while host 1 is cut off.
    let report = read_now(&mut world, 3, 0, 1);
    let report = deliver_now(&mut world, report.sent[0]);
    assert!(report.lost.is_empty());

    step_clean(&mut world, &Action::Heal);
    assert!(!world.is_isolated(NodeId::Host(1)));
    let report = read_now(&mut world, 4, 1, 1);
    let report = deliver_now(&mut world, report.sent[0]);
    assert!(report.lost.is_empty());
    settle(&mut world, SETTLE_NS);
    assert_eq!(world.history()[&RequestId(2)].answered, None, "a lost read stays unanswered");
    assert_eq!(world.history()[&RequestId(3)].answered.map(|(_, success)| success), Some(true));
    assert_eq!(world.history()[&RequestId(4)].answered.map(|(_, success)| success), Some(true));
    assert!(world.is_quiet());
    assert_eq!(world.check_quiescent(), Vec::new());
}

#[test]
fn duplicated_commit_reply_and_client_answer_are_harmless() {
    for mode in [InterceptorMode::Sync, InterceptorMode::Async] {
        let mut world = World::new(config(mode));
        submit_now(&mut world, 1, 0, create(1, 1, b"one"));
        let commit_reply = run_until_in_flight(&mut world, |message| {
            message.to == NodeId::Worker(0)
                && matches!(message.payload, Payload::StoreReply { reply: StoreReply::Commit(_), .. })
        });
        let copy = step_clean(&mut world, &Action::Duplicate(commit_reply)).sent[0];
        assert_eq!(world.in_flight()[&copy], world.in_flight()[&commit_reply]);

        let report = deliver_now(&mut world, commit_reply);
        let answer = sent_matching(&world, &report, |message| {
            matches!(message.payload, Payload::ClientAnswer { result: Ok(Done::Secret { .. }), .. })
        });
        let report = deliver_now(&mut world, copy);
        assert!(report.sent.is_empty(), "{mode:?}: the worker acted on a duplicate reply");
        assert!(!world.workers[0].as_ref().expect("worker 0 is up").is_busy());

        let answer_copy = step_clean(&mut world, &Action::Duplicate(answer)).sent[0];
        let first_at = world.now().plus_ns(MS);
        step_clean(&mut world, &Action::Deliver { message: answer, at: first_at });
        assert_eq!(world.history()[&RequestId(1)].answered, Some((first_at, true)));
        step_clean(&mut world, &Action::Deliver { message: answer_copy, at: first_at.plus_ns(5 * MS) });
        assert_eq!(world.history()[&RequestId(1)].answered, Some((first_at, true)), "the first answer stays");

        settle(&mut world, SETTLE_NS);
        assert!(world.is_quiet());
        assert_eq!(world.check_quiescent(), Vec::new(), "{mode:?}");
        assert_eq!(world.view().remote[&1].version, 2, "{mode:?}: one create, one activation");
    }
}

#[test]
fn time_never_goes_backwards() {
    let mut world = World::new(config(InterceptorMode::Sync));
    assert_eq!(world.now(), Time::ZERO);

    // A timer fires at its deadline.
    fire_due(&mut world, NodeId::Host(0));
    assert_eq!(world.now(), Time::ZERO);
    for _ in 0..2 {
        // The poll to the store, then its reply to the host.
        let id = *world.in_flight().keys().next().expect("a poll in flight");
        deliver_now(&mut world, id);
    }
    let deadline = world.timers()[&NodeId::Host(0)];
    assert_eq!(deadline, Time::ZERO.plus_ns(HostConfig::default().poll_interval_ns));
    fire_due(&mut world, NodeId::Host(0));
    assert_eq!(world.now(), deadline);

    // Client actions move time forward, never back.
    step_clean(&mut world, &submit(1, 0, create(1, 1, b"one"), ms(50)));
    assert_eq!(world.now(), ms(50));
    step_clean(&mut world, &submit(2, 1, create(2, 2, b"two"), ms(20)));
    assert_eq!(world.now(), ms(50));
    assert_eq!(world.history()[&RequestId(2)].issued_at, ms(50), "issued at the world's now");

    // A delivery dated in the past happens now.
    let id = *world.in_flight().keys().next().expect("messages in flight");
    step_clean(&mut world, &Action::Deliver { message: id, at: ms(10) });
    assert_eq!(world.now(), ms(50));
    for action in world.actions() {
        if let Action::Deliver { at, .. } = action {
            assert!(at >= world.now(), "a listed delivery is dated before now");
        }
    }

    // A timer whose deadline passed fires now; the activator's first was at zero.
    assert_eq!(world.timers()[&NodeId::Activator(0)], Time::ZERO);
    fire_due(&mut world, NodeId::Activator(0));
    assert_eq!(world.now(), ms(50));
    // A timer fired late (a slow clock) moves time to when it fired.
    step_clean(&mut world, &fire(NodeId::Host(1), ms(70)));
    assert_eq!(world.now(), ms(70));
    // A later delivery moves time to it; an earlier one leaves it.
    let id = *world.in_flight().keys().next().expect("messages in flight");
    step_clean(&mut world, &Action::Deliver { message: id, at: ms(60) });
    assert_eq!(world.now(), ms(70));
    let id = *world.in_flight().keys().next().expect("messages in flight");
    step_clean(&mut world, &Action::Deliver { message: id, at: ms(80) });
    assert_eq!(world.now(), ms(80));
}

#[test]
#[should_panic(expected = "before its deadline")]
fn a_timer_cannot_fire_before_its_deadline() {
    let mut world = World::new(config(InterceptorMode::Sync));
    fire_due(&mut world, NodeId::Host(0));
    let id = *world.in_flight().keys().next().expect("a poll in flight");
    deliver_now(&mut world, id);
    let reply = *world.in_flight().keys().next().expect("a poll reply in flight");
    deliver_now(&mut world, reply);
    let deadline = world.timers()[&NodeId::Host(0)];
    assert!(deadline > world.now());
    world.step(&fire(NodeId::Host(0), world.now()));
}

#[test]
fn a_reply_to_a_previous_incarnation_is_lost() {
    let mut world = World::new(config(InterceptorMode::Sync));
    let report = submit_now(&mut world, 1, 0, create(1, 1, b"one"));
    let report = deliver_now(&mut world, report.sent[0]);
    let read = sent_matching(&world, &report, |message| message.to == NodeId::Store(0));
    step_clean(&mut world, &Action::Crash(NodeId::Worker(0)));
    // The store still answers the dead incarnation's request.
    let stale = deliver_now(&mut world, read).sent[0];
    assert_eq!(world.in_flight()[&stale].to_incarnation, 0);

    step_clean(&mut world, &Action::Restart(NodeId::Worker(0)));
    assert_eq!(world.incarnation(NodeId::Worker(0)), 1);
    assert_eq!(world.incarnation(NodeId::Worker(1)), 0);
    // The new incarnation's first request carries the same tag as the stale
    // reply; the stale reply (three entries for a create) must not answer it.
    let report = submit_now(&mut world, 2, 0, update(1, b"two"));
    let report = deliver_now(&mut world, report.sent[0]);
    let fresh = sent_matching(&world, &report, |message| message.to == NodeId::Store(0));
    assert_eq!(world.in_flight()[&fresh].from_incarnation, 1);
    let Payload::StoreReply { tag: stale_tag, .. } = &world.in_flight()[&stale].payload else { panic!("a reply") };
    let Payload::StoreRequest { tag: fresh_tag, .. } = &world.in_flight()[&fresh].payload else { panic!("a request") };
    assert_eq!(stale_tag, fresh_tag, "tags restart with the machine");
    let report = deliver_now(&mut world, stale);
    assert_eq!(report.lost, [stale]);
    assert!(report.sent.is_empty());

    let answer = run_until_in_flight(&mut world, |message| message.to == NodeId::Client);
    let Payload::ClientAnswer { request, result } = &world.in_flight()[&answer].payload else { panic!("an answer") };
    assert_eq!(*request, RequestId(2));
    assert_eq!(*result, Err(ClientError::SecretNotFound), "answered from its own read: secret 1 was never created");
    settle(&mut world, SETTLE_NS);
    assert_eq!(world.history()[&RequestId(1)].answered, None, "its worker crashed");
    assert!(world.view().remote.is_empty());
    assert_eq!(world.check_quiescent(), Vec::new());
}

#[test]
fn a_crashed_workers_commit_still_lands_and_its_reply_is_lost() {
    let mut world = World::new(config(InterceptorMode::Sync));
    submit_now(&mut world, 1, 0, create(1, 1, b"one"));
    let commit = run_until_in_flight(&mut world, |message| {
        matches!(message.payload, Payload::StoreRequest { request: StoreRequest::Commit(_), .. })
    });
    step_clean(&mut world, &Action::Crash(NodeId::Worker(0)));
    step_clean(&mut world, &Action::Restart(NodeId::Worker(0)));
    let reply = deliver_now(&mut world, commit).sent[0];
    assert!(world.store().read(&Key::Secret(SecretId(1))).value.is_some(), "the late commit landed");
    let report = deliver_now(&mut world, reply);
    assert_eq!(report.lost, [reply]);

    settle(&mut world, SETTLE_NS);
    assert_eq!(world.history()[&RequestId(1)].answered, None);
    let view = world.view();
    assert_eq!(view.remote[&1].lifecycle, model::Lifecycle::Active, "the activator finishes what landed");
    assert!(view.hosts.values().all(|host| host.records == view.remote));
    assert_eq!(world.check_quiescent(), Vec::new());
}

/// A migrating world: two secrets from before replication, the backfill due
/// at once, one key a page, budgets that never throttle.
fn backfilling_config() -> WorldConfig {
    WorldConfig {
        worker: WorkerConfig { phase_fenced: true, ..WorkerConfig::new(InterceptorMode::Sync) },
        migration: Some(MigrationConfig {
            seeded_secrets: 2,
            schedule: vec![(Time::ZERO, Phase::Backfill)],
            backfill_page_keys: 1,
            backfill_budget: None,
            verify_page_keys: 1,
            verify_budget: None,
            phase_poll_ns: vec![10 * MS],
            request_timeout_ns: 30 * MS,
        }),
        ..config(InterceptorMode::Sync)
    }
}

#[test]
fn a_scan_a_crashed_walk_left_in_flight_is_not_judged_as_the_walks() {
    let mut world = World::new(backfilling_config());
    let stale = run_until_in_flight(&mut world, |message| {
        message.from == NodeId::Backfiller
            && matches!(message.payload, Payload::StoreRequest { request: StoreRequest::Scan { .. }, .. })
    });
    step_clean(&mut world, &Action::Crash(NodeId::Backfiller));
    step_clean(&mut world, &Action::Restart(NodeId::Backfiller));
    // The successor walks to the end while the first scan is still in flight.
    let finished = |world: &World| {
        matches!(
            world.store().read(&Key::Bookmark(BACKFILL_BOOKMARK)).value,
            Some(Value::Bookmark(vault::migration::BOOKMARK_DONE))
        )
    };
    for _ in 0..STEPS_MAX {
        if finished(&world) {
            break;
        }
        let action = match world.in_flight().keys().find(|id| **id != stale) {
            Some(id) => Action::Deliver { message: *id, at: world.now() },
            None => {
                let (node, deadline) = earliest_timer(&world).expect("a timer armed");
                fire(node, deadline)
            }
        };
        step_clean(&mut world, &action);
    }
    assert!(finished(&world), "the successor finished the walk");
    // The store serves the dead incarnation's scan from the start, far behind
    // the bookmark; the walk did not resume there, so MIG-3 has nothing to judge.
    let report = deliver_now(&mut world, stale);
    assert!(!report.observations.iter().any(|observation| matches!(observation, Observation::WalkScan { .. })));
    assert_eq!(world.in_flight()[&report.sent[0]].to_incarnation, 0, "its reply goes to the dead incarnation");
}

/// A world whose front door admits one request of each tenant per second
/// (burst 1): tenant 1's second create at once is throttled.
fn throttling_world() -> World {
    let quota = vault::quota::QuotaConfig::new(QuotaScope::Global, 1, 1_000 * MS);
    let quotas = QuotaTableConfig { quotas: vec![quota], service_capacity: None };
    World::new(config(InterceptorMode::Async)).with_quotas(&quotas).expect("a valid quota")
}

/// Delivers the client request just sent by `report` and returns that step's report.
fn deliver_request(world: &mut World, report: &StepReport) -> StepReport {
    let id = report.sent[0];
    assert!(matches!(world.in_flight()[&id].payload, Payload::ClientRequest { .. }));
    deliver_now(world, id)
}

#[test]
fn the_front_door_admits_within_the_quota_and_throttles_beyond_it_with_retry_after() {
    let mut world = throttling_world();
    let first = submit_now(&mut world, 0, 0, create(10, 1, b"a"));
    let admitted = deliver_request(&mut world, &first);
    assert_eq!(admitted.observations, [Observation::Admitted { tenant: 1, at_ns: 0 }]);
    let to_store = &world.in_flight()[&admitted.sent[0]];
    assert_eq!((to_store.from, to_store.to), (NodeId::Worker(0), NodeId::Store(0)), "an admitted request proceeds");
    assert_eq!(world.history()[&RequestId(0)].tenant, Some(1));

    let second = submit_now(&mut world, 1, 1, create(11, 1, b"b"));
    let throttled = deliver_request(&mut world, &second);
    let retry_after_ns = 1_000 * MS;
    let expected = Observation::Throttled { tenant: 1, at_ns: 0, over_quota: true, retry_after_ns };
    assert_eq!(throttled.observations, [expected]);
    assert_eq!(throttled.sent.len(), 1, "answered at once, nothing sent to the store");
    let answer = &world.in_flight()[&throttled.sent[0]];
    assert_eq!((answer.from, answer.to), (NodeId::Worker(1), NodeId::Client));
    let result = Err(ClientError::Throttled { retry_after_ns });
    assert_eq!(answer.payload, Payload::ClientAnswer { request: RequestId(1), result });
    assert!(!world.workers().any(|(index, worker)| index == 1 && worker.is_busy()), "the worker never saw it");

    let received = deliver_now(&mut world, throttled.sent[0]);
    assert_eq!(received.throttled_answers, [(RequestId(1), retry_after_ns)]);
    let record = &world.history()[&RequestId(1)];
    assert_eq!(record.throttled, Some(Throttle { over_quota: true, retry_after_ns }));
    assert_eq!(record.answered, Some((Time::ZERO, true)), "over its quota: a served 429, not an outage");

    // Another tenant has its own bucket of the global quota; a tenant's
    // update is charged to the tenant its secret was created in.
    let other = submit_now(&mut world, 2, 0, create(20, 2, b"c"));
    assert_eq!(deliver_request(&mut world, &other).observations, [Observation::Admitted { tenant: 2, at_ns: 0 }]);
    let update = step_clean(&mut world, &submit(3, 0, update(10, b"d"), ms(1_000)));
    assert_eq!(
        deliver_request(&mut world, &update).observations,
        [Observation::Admitted { tenant: 1, at_ns: 1_000 * MS }]
    );
    assert_eq!(world.quota_table().map(|table| table.totals().throttled()), Some(1));
}

#[test]
fn without_quotas_nothing_is_throttled_or_observed_at_the_front_door() {
    let mut world = World::new(config(InterceptorMode::Async));
    for request in 0..3 {
        let sent = submit_now(&mut world, request, 0, create(10 + request as u32, 1, b"a"));
        assert!(deliver_request(&mut world, &sent).observations.is_empty());
        assert_eq!(world.history()[&RequestId(request)].tenant, None);
    }
    assert!(world.quota_table().is_none());
}

mod sharding;
