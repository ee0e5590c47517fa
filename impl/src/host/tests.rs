use super::*;
use crate::store::{Store, Transaction, Write};
use crate::types::{CommitSeq, Content, Lifecycle, Mutation, VaultId};

const H1: HostId = HostId(1);
const T1: TenantId = TenantId(1);
const T2: TenantId = TenantId(2);
const S1: SecretId = SecretId(1);
const S2: SecretId = SecretId(2);

fn drain(host: &mut Host) -> Vec<HostOutput> {
    std::iter::from_fn(|| host.poll_output()).collect()
}

/// The single store request among `outputs`.
fn store_request(outputs: &[HostOutput]) -> (RequestTag, StoreRequest) {
    let requests: Vec<_> = outputs
        .iter()
        .filter_map(|output| match output {
            HostOutput::Store { tag, request } => Some((*tag, request.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(requests.len(), 1, "one store request in {outputs:?}");
    requests[0].clone()
}

fn record(tenant: TenantId, version: u64, lifecycle: Lifecycle) -> SecretRecord {
    let content = (lifecycle != Lifecycle::Deleted).then(|| Content::new(&version.to_le_bytes()));
    SecretRecord { tenant, vault: VaultId(tenant.0), version: Version(version), lifecycle, content }
}

/// An event built directly, with a made-up commit.
fn event(tenant: TenantId, seq: u64, secret: SecretId, version: u64, lifecycle: Lifecycle) -> LogEvent {
    let mutation = Mutation { secret, record: record(tenant, version, lifecycle) };
    LogEvent { seq: Seq(seq), commit: CommitSeq(seq), mutation }
}

/// Appends a mutation to the store's log, as a sync-mode writer does.
fn append(store: &mut Store, tenant: TenantId, secret: SecretId, version: u64, lifecycle: Lifecycle) {
    let mutation = Mutation { secret, record: record(tenant, version, lifecycle) };
    let transaction = Transaction { reads: Vec::new(), writes: vec![Write::Append(mutation)] };
    assert!(matches!(store.commit(&transaction), crate::store::CommitOutcome::Committed { .. }));
}

fn found(host: &Host, secret: SecretId) -> SecretRecord {
    match host.read(secret) {
        LocalRead::Found(record) => record,
        LocalRead::Missing => panic!("{secret} missing"),
    }
}

#[test]
fn poll_loop_polls_with_cursors_applies_reports_and_rearms() {
    let config = HostConfig::default();
    let (interval_ns, timeout_ns) = (config.poll_interval_ns, config.request_timeout_ns);
    let mut store = Store::new();
    append(&mut store, T1, S1, 1, Lifecycle::Creating);
    append(&mut store, T2, S2, 1, Lifecycle::Creating);
    append(&mut store, T1, S1, 2, Lifecycle::Active);

    let mut host = Host::new(H1, config, Time::ZERO);
    assert_eq!(drain(&mut host), vec![HostOutput::Timer { deadline: Time::ZERO }]);
    host.on_timer(Time::ZERO);
    let poll = StoreRequest::Poll { cursors: Vec::new(), limit_per_partition: 64 };
    let outputs = drain(&mut host);
    assert_eq!(
        outputs,
        vec![
            HostOutput::Store { tag: RequestTag(0), request: poll.clone() },
            HostOutput::Timer { deadline: Time(timeout_ns) }
        ]
    );

    let now = Time(1_000);
    host.on_store_reply(now, RequestTag(0), store.on_request(poll));
    let cursors = vec![(T1, Seq(2)), (T2, Seq(1))];
    assert_eq!(
        drain(&mut host),
        vec![
            HostOutput::Applied { host: H1, cursors: cursors.clone() },
            HostOutput::Timer { deadline: now.plus_ns(interval_ns) }
        ]
    );
    assert_eq!(host.durable().cursors(), cursors);
    assert_eq!(found(&host, S1), record(T1, 2, Lifecycle::Active));
    assert_eq!(found(&host, S2), record(T2, 1, Lifecycle::Creating));
    assert_eq!(host.read(SecretId(9)), LocalRead::Missing);

    // Woken early: no poll, the timer is re-armed for the due time.
    host.on_timer(now.plus_ns(interval_ns - 1));
    assert_eq!(drain(&mut host), vec![HostOutput::Timer { deadline: now.plus_ns(interval_ns) }]);
    // Due: the next poll carries the cursors.
    host.on_timer(now.plus_ns(interval_ns));
    let (tag, request) = store_request(&drain(&mut host));
    assert_eq!(tag, RequestTag(1));
    assert_eq!(request, StoreRequest::Poll { cursors, limit_per_partition: 64 });
}

#[test]
fn a_full_poll_polls_again_at_once() {
    let config = HostConfig { poll_events_max: 2, ..HostConfig::default() };
    let mut store = Store::new();
    for version in 1..=3 {
        append(&mut store, T1, S1, version, Lifecycle::Active);
    }
    let mut host = Host::new(H1, config, Time::ZERO);
    host.on_timer(Time::ZERO);
    let (tag, request) = store_request(&drain(&mut host));
    host.on_store_reply(Time(5), tag, store.on_request(request));
    let outputs = drain(&mut host);
    assert_eq!(outputs[0], HostOutput::Applied { host: H1, cursors: vec![(T1, Seq(2))] });
    let (tag, request) = store_request(&outputs);
    assert_eq!(request, StoreRequest::Poll { cursors: vec![(T1, Seq(2))], limit_per_partition: 2 });

    host.on_store_reply(Time(6), tag, store.on_request(request));
    assert_eq!(host.durable().cursor(T1), Seq(3));
    assert_eq!(host.durable().version(S1), Version(3));
}

#[test]
fn duplicates_are_ignored() {
    let events = [event(T1, 1, S1, 1, Lifecycle::Creating), event(T1, 2, S1, 2, Lifecycle::Active)];
    let mut host = Host::new(H1, HostConfig::default(), Time::ZERO);
    host.on_events(&events);
    let applied = host.durable().clone();
    host.on_events(&events);
    host.on_events(&[events[1].clone(), events[0].clone(), events[1].clone()]);
    host.check_invariants();
    assert_eq!(host.durable(), &applied);
    assert_eq!(applied.cursor(T1), Seq(2));
    assert_eq!(applied.version(S1), Version(2));
}

#[test]
fn events_ahead_of_a_gap_wait_until_it_fills() {
    let events = [
        event(T1, 1, S1, 1, Lifecycle::Creating),
        event(T1, 2, S2, 1, Lifecycle::Creating),
        event(T1, 3, S1, 2, Lifecycle::Active),
    ];
    let mut host = Host::new(H1, HostConfig::default(), Time::ZERO);
    host.on_events(&[events[2].clone()]);
    host.check_invariants();
    assert_eq!(host.durable(), &LocalStore::new(), "nothing applies across a gap");
    assert_eq!(host.read(S1), LocalRead::Missing);

    host.on_events(&[events[1].clone()]);
    host.check_invariants();
    assert_eq!(host.durable().cursor(T1), Seq::ZERO);

    host.on_events(&[events[0].clone()]);
    host.check_invariants();
    assert_eq!(host.durable().cursor(T1), Seq(3));
    assert_eq!(found(&host, S1), record(T1, 2, Lifecycle::Active));
    assert_eq!(found(&host, S2), record(T1, 1, Lifecycle::Creating));
}

#[test]
fn the_gap_filling_event_applies_even_when_the_buffer_is_full() {
    // Postmortem: with `pending_events_max` events buffered ahead of a gap, the
    // event that fills the gap was dropped like any other overflow, so the host
    // could never move again (found by `tests/prop_host.rs`).
    let config = HostConfig { pending_events_max: 1, ..HostConfig::default() };
    let events: Vec<LogEvent> = (1..=3).map(|seq| event(T1, seq, S1, seq, Lifecycle::Active)).collect();
    let mut host = Host::new(H1, config, Time::ZERO);
    host.on_events(&[events[2].clone()]);
    host.on_events(&[events[1].clone()]); // Over the bound: dropped, redelivered later.
    host.check_invariants();
    assert_eq!(host.durable().cursor(T1), Seq::ZERO);

    host.on_events(&events); // As a poll from the cursor returns them.
    host.check_invariants();
    assert_eq!(host.durable().cursor(T1), Seq(3));
    assert_eq!(host.durable().version(S1), Version(3));
}

#[test]
fn apply_is_forward_only() {
    let mut local = LocalStore::new();
    assert_eq!(local.apply(&event(T1, 1, S1, 2, Lifecycle::Active)), ApplyEffect::Applied);
    // An older version (a backfill-like event) and the same version again change
    // nothing but the cursor.
    assert_eq!(local.apply(&event(T1, 2, S1, 1, Lifecycle::Creating)), ApplyEffect::Stale);
    assert_eq!(local.apply(&event(T1, 3, S1, 2, Lifecycle::PendingDeletion)), ApplyEffect::Stale);
    assert_eq!(local.cursor(T1), Seq(3));
    assert_eq!(local.record(S1), Some(&record(T1, 2, Lifecycle::Active)));
    assert_eq!(local.apply(&event(T1, 4, S1, 3, Lifecycle::PendingDeletion)), ApplyEffect::Applied);
    assert_eq!(local.version(S1), Version(3));
}

#[test]
#[should_panic(expected = "apply out of order")]
fn apply_past_a_gap_is_a_bug() {
    LocalStore::new().apply(&event(T1, 2, S1, 1, Lifecycle::Creating));
}

#[test]
fn tombstones_are_kept_and_never_resurrected() {
    let mut host = Host::new(H1, HostConfig::default(), Time::ZERO);
    host.on_events(&[
        event(T1, 1, S1, 1, Lifecycle::Creating),
        event(T1, 2, S1, 2, Lifecycle::Deleted),
        event(T1, 3, S1, 1, Lifecycle::Creating), // Out of date: must not win.
    ]);
    let tombstone = found(&host, S1);
    assert_eq!(tombstone, record(T1, 2, Lifecycle::Deleted));
    assert_eq!(tombstone.content, None);
    assert_eq!(host.durable().cursor(T1), Seq(3));
    assert_eq!(host.durable().records().count(), 1);
}

#[test]
fn recovery_keeps_cursors_and_data_and_resumes_from_the_cursor() {
    let mut store = Store::new();
    append(&mut store, T1, S1, 1, Lifecycle::Creating);
    append(&mut store, T2, S2, 1, Lifecycle::Creating);
    let mut host = Host::new(H1, HostConfig::default(), Time::ZERO);
    host.on_timer(Time::ZERO);
    let (tag, request) = store_request(&drain(&mut host));
    host.on_store_reply(Time(1), tag, store.on_request(request));
    let durable = host.durable().clone();
    drop(host); // Crash: only the local store survives.

    append(&mut store, T1, S1, 2, Lifecycle::Active);
    let now = Time(50);
    let mut host = Host::recover(H1, HostConfig::default(), durable.clone(), now);
    assert_eq!(host.durable(), &durable);
    assert_eq!(found(&host, S2), record(T2, 1, Lifecycle::Creating));
    assert_eq!(drain(&mut host), vec![HostOutput::Timer { deadline: now }]);
    host.on_timer(now);
    let (tag, request) = store_request(&drain(&mut host));
    assert_eq!(request, StoreRequest::Poll { cursors: vec![(T1, Seq(1)), (T2, Seq(1))], limit_per_partition: 64 });
    host.on_store_reply(now, tag, store.on_request(request));
    assert_eq!(host.durable().cursors(), vec![(T1, Seq(2)), (T2, Seq(1))]);
    assert_eq!(found(&host, S1), record(T1, 2, Lifecycle::Active));
}

#[test]
fn poll_timeout_polls_again_and_the_late_reply_is_ignored() {
    let config = HostConfig::default();
    let timeout_ns = config.request_timeout_ns;
    let mut store = Store::new();
    append(&mut store, T1, S1, 1, Lifecycle::Creating);
    let mut host = Host::new(H1, config, Time::ZERO);
    host.on_timer(Time::ZERO);
    let (old_tag, old_request) = store_request(&drain(&mut host));

    host.on_timer(Time(timeout_ns - 1));
    let rearmed = vec![HostOutput::Timer { deadline: Time(timeout_ns) }];
    assert_eq!(drain(&mut host), rearmed, "the poll has not timed out yet: only the timer is re-armed");
    host.on_timer(Time(timeout_ns));
    let (new_tag, new_request) = store_request(&drain(&mut host));
    assert_ne!(new_tag, old_tag);
    assert_eq!(new_request, old_request, "nothing was applied in between");

    // The first poll's reply comes late: ignored, no report, no timer.
    append(&mut store, T1, S1, 2, Lifecycle::Active);
    host.on_store_reply(Time(timeout_ns + 1), old_tag, store.on_request(old_request));
    assert_eq!(drain(&mut host), Vec::new());
    assert_eq!(host.durable(), &LocalStore::new());

    host.on_store_reply(Time(timeout_ns + 2), new_tag, store.on_request(new_request));
    assert_eq!(host.durable().cursor(T1), Seq(2));
    // A second reply with the same tag is a duplicate and ignored too.
    host.on_store_reply(Time(timeout_ns + 3), new_tag, StoreReply::Poll(Vec::new()));
    drain(&mut host);
    assert_eq!(host.durable().cursor(T1), Seq(2));
}

#[test]
fn woken_early_with_a_poll_outstanding_rearms_the_abandon_deadline() {
    // Postmortem: `on_timer` returned without a `Timer` output when woken before
    // an outstanding poll's abandon deadline; the caller had already deleted the
    // fired timer, so a lost poll reply left the host with no timer, stuck forever.
    let config = HostConfig::default();
    let timeout_ns = config.request_timeout_ns;
    let mut host = Host::new(H1, config, Time::ZERO);
    host.on_timer(Time::ZERO);
    let (tag, _) = store_request(&drain(&mut host));

    for early in [Time(1), Time(timeout_ns - 1)] {
        host.on_timer(early);
        assert_eq!(drain(&mut host), vec![HostOutput::Timer { deadline: Time(timeout_ns) }], "woken at {early:?}");
    }
    // The re-armed deadline still abandons the poll and polls again.
    host.on_timer(Time(timeout_ns));
    let (retry_tag, _) = store_request(&drain(&mut host));
    assert_ne!(retry_tag, tag);
}

#[test]
fn a_repair_replaces_only_a_damaged_entry_of_the_same_version() {
    let mut local = LocalStore::new();
    let good = event(T1, 1, S1, 2, Lifecycle::Active);
    local.apply(&good);
    let healthy = good.mutation.record.clone();
    assert!(!local.repair(S1, &healthy), "an intact entry is left alone");
    // A bit flips on disk: the digest shows the bytes as they are now.
    assert!(local.flip_bit(S1));
    let [(_, Some(digest))] = local.digest(&[S1])[..] else { panic!("a digest entry") };
    assert_eq!(digest.version, Version(2));
    assert_ne!(digest.checksum, healthy.content.as_ref().map(Content::checksum));
    // A repair at another version is not a repair.
    assert!(!local.repair(S1, &record(T1, 1, Lifecycle::Active)));
    assert!(!local.repair(S1, &record(T1, 3, Lifecycle::Active)));
    assert!(local.repair(S1, &healthy));
    assert_eq!(local.record(S1), Some(&healthy));
    let [(_, Some(repaired))] = local.digest(&[S1])[..] else { panic!("a digest entry") };
    assert_eq!(repaired.checksum, healthy.content.as_ref().map(Content::checksum));
    assert!(!local.repair(SecretId(999), &healthy), "nothing to repair");
    assert_eq!(local.digest(&[SecretId(999)]), vec![(SecretId(999), None)]);
}

// --- routing rows on a base-cell host ------------------------------------------

/// Commits a vault's route in the base store (logged in its routing partition).
fn route_vault(store: &mut Store, vault: u32, shard: u32) {
    let write = Write::Put(
        crate::store::Key::VaultRoute(VaultId(vault)),
        crate::store::Value::VaultRoute(crate::types::ShardId(shard)),
    );
    let transaction = Transaction { reads: Vec::new(), writes: vec![write] };
    assert!(matches!(store.commit(&transaction), crate::store::CommitOutcome::Committed { .. }));
}

/// Runs one poll round of `host` against `store` at `now`, answering each
/// request at once; returns the requests, in order.
fn poll_round(host: &mut Host, store: &mut Store, now: Time) -> Vec<StoreRequest> {
    host.on_timer(now);
    let mut requests = Vec::new();
    loop {
        let outputs = drain(host);
        let Some((tag, request)) = outputs.iter().find_map(|output| match output {
            HostOutput::Store { tag, request } => Some((*tag, request.clone())),
            _ => None,
        }) else {
            return requests;
        };
        requests.push(request.clone());
        host.on_store_reply(now, tag, store.on_request(request));
    }
}

fn routing_host(poll_events_max: usize) -> Host {
    let config = HostConfig { replicate_routes: true, poll_events_max, ..HostConfig::default() };
    Host::new(H1, config, Time::ZERO)
}

#[test]
fn a_base_cell_host_polls_the_routing_partition_in_the_same_round_and_keeps_the_rows() {
    let mut store = Store::new();
    append(&mut store, T1, S1, 1, Lifecycle::Creating);
    route_vault(&mut store, 7, 2);
    let mut host = routing_host(64);
    let requests = poll_round(&mut host, &mut store, Time::ZERO);
    assert_eq!(
        requests,
        vec![
            StoreRequest::Poll { cursors: Vec::new(), limit_per_partition: 64 },
            StoreRequest::PollRoutes { after: Seq::ZERO, limit: 64 },
        ]
    );
    assert_eq!(host.durable().routes().shard_of(VaultId(7)), Some(crate::types::ShardId(2)));
    assert_eq!(host.durable().routes().cursor(), Seq(1));
    assert_eq!(found(&host, S1).version, Version(1));
    // The rows are durable: a restarted host has them and polls on from its cursor.
    let durable = host.durable().clone();
    let mut restarted =
        Host::recover(H1, HostConfig { replicate_routes: true, ..HostConfig::default() }, durable, Time(5));
    assert_eq!(restarted.durable().routes().shard_of(VaultId(7)), Some(crate::types::ShardId(2)));
    route_vault(&mut store, 8, 1);
    let requests = poll_round(&mut restarted, &mut store, Time(5));
    assert_eq!(requests[1], StoreRequest::PollRoutes { after: Seq(1), limit: 64 });
    assert_eq!(restarted.durable().routes().shard_of(VaultId(8)), Some(crate::types::ShardId(1)));
}

#[test]
fn a_host_that_does_not_replicate_routes_never_reads_them() {
    let mut store = Store::new();
    route_vault(&mut store, 7, 2);
    let mut host = Host::new(H1, HostConfig::default(), Time::ZERO);
    let requests = poll_round(&mut host, &mut store, Time::ZERO);
    assert_eq!(requests, vec![StoreRequest::Poll { cursors: Vec::new(), limit_per_partition: 64 }]);
    assert_eq!(host.durable().routes().shard_of(VaultId(7)), None);
}

#[test]
fn a_full_routing_poll_polls_again_at_once() {
    let mut store = Store::new();
    for vault in 0..3 {
        route_vault(&mut store, vault, 1);
    }
    let mut host = routing_host(2);
    let requests = poll_round(&mut host, &mut store, Time::ZERO);
    // Two rounds: the first routing poll filled its limit of 2.
    let routing: Vec<&StoreRequest> =
        requests.iter().filter(|request| matches!(request, StoreRequest::PollRoutes { .. })).collect();
    assert_eq!(
        routing,
        vec![
            &StoreRequest::PollRoutes { after: Seq::ZERO, limit: 2 },
            &StoreRequest::PollRoutes { after: Seq(2), limit: 2 }
        ]
    );
    assert_eq!(host.durable().routes().cursor(), Seq(3));
}

#[test]
fn a_routing_poll_that_times_out_starts_the_round_again_and_its_late_reply_is_ignored() {
    let mut store = Store::new();
    route_vault(&mut store, 7, 2);
    let config = HostConfig { replicate_routes: true, ..HostConfig::default() };
    let timeout = config.request_timeout_ns;
    let mut host = Host::new(H1, config, Time::ZERO);
    host.on_timer(Time::ZERO);
    let (tag, poll) = store_request(&drain(&mut host));
    host.on_store_reply(Time::ZERO, tag, store.on_request(poll));
    let (late_tag, routes) = store_request(&drain(&mut host));
    assert!(matches!(routes, StoreRequest::PollRoutes { .. }));
    host.on_timer(Time(timeout));
    let (_, again) = store_request(&drain(&mut host));
    assert!(matches!(again, StoreRequest::Poll { .. }), "the round starts with the secrets: {again:?}");
    host.on_store_reply(Time(timeout), late_tag, store.on_request(routes));
    assert_eq!(host.durable().routes().cursor(), Seq::ZERO, "a late routing reply is ignored");
}
