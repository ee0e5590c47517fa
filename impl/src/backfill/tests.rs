use super::*;
use crate::store::Store;
use crate::types::{Content, Lifecycle, SecretId, SecretRecord, Seq, VaultId, Version};
use crate::walk::DONE;

const T1: TenantId = TenantId(1);
const T2: TenantId = TenantId(2);
const MS: u64 = 1_000_000;

fn record(tenant: TenantId, version: u64, lifecycle: Lifecycle) -> SecretRecord {
    let content = (lifecycle != Lifecycle::Deleted).then(|| Content::new(&[tenant.0 as u8, version as u8]));
    SecretRecord { tenant, vault: VaultId(tenant.0), version: Version(version), lifecycle, content }
}

/// Writes `secret` directly, as phase 0 does: no replication event.
fn put(store: &mut Store, secret: u32, record: SecretRecord) -> CommitSeq {
    let write = Write::Put(Key::Secret(SecretId(secret)), Value::Secret(record));
    match store.commit(&Transaction { reads: Vec::new(), writes: vec![write] }) {
        CommitOutcome::Committed { commit, .. } => commit,
        other => panic!("put refused: {other:?}"),
    }
}

/// A live write after `t1`: the record and its event, as a sync writer commits them.
fn live_write(store: &mut Store, secret: u32, record: SecretRecord) {
    let mutation = Mutation { secret: SecretId(secret), record: record.clone() };
    let writes = vec![Write::Put(Key::Secret(SecretId(secret)), Value::Secret(record)), Write::Append(mutation)];
    assert!(matches!(store.commit(&Transaction { reads: Vec::new(), writes }), CommitOutcome::Committed { .. }));
}

fn config(since: CommitSeq, mode: InterceptorMode, page_keys: usize) -> BackfillConfig {
    BackfillConfig {
        bookmark: BookmarkId(7),
        since,
        mode,
        page_keys,
        budget: Some(BucketConfig::per_interval(1_000, 1_000 * MS)),
        request_timeout_ns: 50 * MS,
    }
}

/// Every event of `tenant`'s partition as (secret, version).
fn log(store: &Store, tenant: TenantId) -> Vec<(u32, u64)> {
    store
        .poll(tenant, Seq::ZERO, usize::MAX)
        .iter()
        .map(|event| (event.mutation.secret.0, event.mutation.record.version.0))
        .collect()
}

/// Drives a backfiller against `store`, answering each request at once and
/// waking it at each timer, until it is done or `steps` requests were
/// answered. `between` runs before each request reaches the store. Returns
/// the times at which requests were sent.
fn run(
    backfiller: &mut Backfiller,
    store: &mut Store,
    steps: usize,
    mut between: impl FnMut(&mut Store, &StoreRequest),
) -> Vec<Time> {
    let mut now = Time(0);
    let mut sent = Vec::new();
    let mut timer = None;
    let mut answered = 0;
    while answered < steps && !backfiller.is_done() {
        let mut request = None;
        while let Some(output) = backfiller.poll_output() {
            match output {
                BackfillOutput::Store { tag, request: one } => {
                    assert!(request.is_none(), "one request at a time");
                    request = Some((tag, one));
                }
                BackfillOutput::Timer { deadline } => timer = Some(deadline),
                BackfillOutput::Done => {}
            }
        }
        match request {
            Some((tag, request)) => {
                sent.push(now);
                between(store, &request);
                let reply = store.on_request(request);
                backfiller.on_store_reply(now, tag, reply);
                answered += 1;
            }
            None => {
                let deadline = timer.take().expect("a backfiller with nothing in flight has a timer");
                now = now.max(deadline);
                backfiller.on_timer(now);
            }
        }
    }
    sent
}

fn seeded_store() -> (Store, CommitSeq) {
    let mut store = Store::new();
    for secret in 0..5 {
        let tenant = if secret % 2 == 0 { T1 } else { T2 };
        put(&mut store, secret, record(tenant, 1, Lifecycle::Active));
    }
    let since = store.last_commit();
    (store, since)
}

#[test]
fn emits_every_secret_older_than_t1_once_and_skips_the_ones_written_since() {
    let (mut store, since) = seeded_store();
    live_write(&mut store, 2, record(T1, 2, Lifecycle::Active));
    let mut backfiller = Backfiller::new(config(since, InterceptorMode::Sync, 2), Time(0));
    run(&mut backfiller, &mut store, 100, |_, _| {});
    assert!(backfiller.is_done());
    // Secret 2's live event (version 2) is its only one; the others were backfilled at version 1.
    assert_eq!(log(&store, T1), vec![(2, 2), (0, 1), (4, 1)]);
    assert_eq!(log(&store, T2), vec![(1, 1), (3, 1)]);
    let stats = backfiller.stats();
    assert_eq!((stats.keys_scanned, stats.events_emitted, stats.skipped_live), (5, 4, 1));
    let bookmark = store.read(&Key::Bookmark(BookmarkId(7))).value;
    assert_eq!(bookmark, Some(Value::Bookmark(DONE)));
}

#[test]
fn async_mode_emits_outbox_rows_and_reads_no_head() {
    let (mut store, since) = seeded_store();
    let mut backfiller = Backfiller::new(config(since, InterceptorMode::Async, 3), Time(0));
    let mut head_reads = 0;
    run(&mut backfiller, &mut store, 100, |_, request| {
        if let StoreRequest::Read { keys } = request {
            head_reads += keys.iter().filter(|key| matches!(key, Key::LogHead(_))).count();
        }
    });
    assert!(backfiller.is_done());
    assert_eq!(head_reads, 0);
    assert_eq!(store.scan_outbox(T1, usize::MAX).len() + store.scan_outbox(T2, usize::MAX).len(), 5);
    assert!(log(&store, T1).is_empty(), "a publisher moves the rows, not the backfiller");
}

#[test]
fn a_live_write_between_scan_and_commit_makes_the_page_redo_without_the_secret() {
    let (mut store, since) = seeded_store();
    let mut backfiller = Backfiller::new(config(since, InterceptorMode::Sync, 5), Time(0));
    let mut raced = false;
    run(&mut backfiller, &mut store, 100, |store, request| {
        if matches!(request, StoreRequest::Commit(_)) && !raced {
            raced = true;
            // Secret 0 is deleted after the backfiller scanned version 1.
            live_write(store, 0, record(T1, 2, Lifecycle::Deleted));
        }
    });
    assert!(backfiller.is_done());
    assert_eq!(backfiller.stats().conflicts, 1);
    // The tombstone's live event is secret 0's only event: nothing older follows it.
    assert_eq!(log(&store, T1), vec![(0, 2), (2, 1), (4, 1)]);
}

#[test]
fn tombstones_older_than_t1_are_emitted_so_hosts_converge() {
    let mut store = Store::new();
    put(&mut store, 0, record(T1, 3, Lifecycle::Deleted));
    let since = store.last_commit();
    let mut backfiller = Backfiller::new(config(since, InterceptorMode::Sync, 4), Time(0));
    run(&mut backfiller, &mut store, 100, |_, _| {});
    let events = store.poll(T1, Seq::ZERO, usize::MAX);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].mutation.record.lifecycle, Lifecycle::Deleted);
}

#[test]
fn a_restart_resumes_after_the_last_committed_page() {
    let (mut store, since) = seeded_store();
    let config = config(since, InterceptorMode::Sync, 2);
    let mut first = Backfiller::new(config.clone(), Time(0));
    // Bookmark read, then page one (scan, heads, commit), then page two's scan: the crash.
    run(&mut first, &mut store, 5, |_, _| {});
    assert_eq!(first.stats().events_emitted, 2);
    assert_eq!(store.read(&Key::Bookmark(BookmarkId(7))).value, Some(Value::Bookmark(2)));
    let mut second = Backfiller::new(config, Time(0));
    run(&mut second, &mut store, 100, |_, _| {});
    assert!(second.is_done());
    assert_eq!(second.stats().events_emitted, 3, "pages committed before the crash are not redone");
    let mut every: Vec<(u32, u64)> = log(&store, T1).into_iter().chain(log(&store, T2)).collect();
    every.sort();
    assert_eq!(every, vec![(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)], "each secret once");
}

#[test]
fn two_incarnations_on_one_bookmark_never_emit_a_page_twice() {
    let (mut store, since) = seeded_store();
    let config = config(since, InterceptorMode::Sync, 5);
    let mut old = Backfiller::new(config.clone(), Time(0));
    let mut new = Backfiller::new(config, Time(0));
    // Both read the bookmark and scan; the new one commits first.
    run(&mut old, &mut store, 3, |_, _| {});
    run(&mut new, &mut store, 100, |_, _| {});
    run(&mut old, &mut store, 100, |_, _| {});
    assert!(old.is_done() && new.is_done());
    assert_eq!(old.stats().conflicts, 1);
    assert_eq!(old.stats().events_emitted, 0);
    assert_eq!(log(&store, T1).len() + log(&store, T2).len(), 5);
}

#[test]
fn a_finished_bookmark_means_done_at_once() {
    let (mut store, since) = seeded_store();
    put(&mut store, 99, record(T1, 1, Lifecycle::Active));
    let write = Write::Put(Key::Bookmark(BookmarkId(7)), Value::Bookmark(DONE));
    assert!(matches!(
        store.commit(&Transaction { reads: Vec::new(), writes: vec![write] }),
        CommitOutcome::Committed { .. }
    ));
    let mut backfiller = Backfiller::new(config(since, InterceptorMode::Sync, 2), Time(0));
    run(&mut backfiller, &mut store, 100, |_, _| {});
    assert!(backfiller.is_done());
    assert_eq!(backfiller.stats().requests, 1);
    assert!(log(&store, T1).is_empty());
}

#[test]
fn the_budget_spaces_store_requests() {
    let (mut store, since) = seeded_store();
    let mut config = config(since, InterceptorMode::Sync, 1);
    // One request per 10 ms, no burst beyond one.
    config.budget = Some(BucketConfig::per_interval(1, 10 * MS));
    let mut backfiller = Backfiller::new(config, Time(0));
    let sent = run(&mut backfiller, &mut store, 1_000, |_, _| {});
    assert!(backfiller.is_done());
    assert!(sent.len() > 10, "{} requests", sent.len());
    for pair in sent.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= 10 * MS, "requests at {:?} and {:?}", pair[0], pair[1]);
    }
    assert!(backfiller.stats().throttled > 0);
    assert_eq!(backfiller.stats().requests, sent.len() as u64);
}

#[test]
fn a_fresh_incarnation_starts_with_an_empty_budget() {
    // THR-3 bounds the job's traffic, not one incarnation's: a restart
    // (after a crash or a rollback) waits for tokens like a running job.
    let (mut store, since) = seeded_store();
    let mut config = config(since, InterceptorMode::Sync, 1);
    config.budget = Some(BucketConfig { rate: 1, interval_ns: 10 * MS, burst: 5 });
    let mut backfiller = Backfiller::new(config.clone(), Time(0));
    backfiller.on_timer(Time(0));
    let outputs: Vec<BackfillOutput> = std::iter::from_fn(|| backfiller.poll_output()).collect();
    let wait = vec![BackfillOutput::Timer { deadline: Time(0) }, BackfillOutput::Timer { deadline: Time(10 * MS) }];
    assert_eq!(outputs, wait, "no token at the start: it waits for the first one");
    let mut restarted = Backfiller::new(config, Time(100 * MS));
    let sent = run(&mut restarted, &mut store, 3, |_, _| {});
    // `run` starts its clock at 0: the restarted job still waits for 110 ms.
    assert_eq!(sent.first(), Some(&Time(110 * MS)));
}

#[test]
fn without_a_budget_a_fresh_incarnation_sends_at_once() {
    // No budget is no bucket at all: nothing to wait for, and nothing in the
    // job's state that depends on when it last sent.
    let (mut store, since) = seeded_store();
    let mut config = config(since, InterceptorMode::Sync, 1);
    config.budget = None;
    let mut backfiller = Backfiller::new(config.clone(), Time(0));
    backfiller.on_timer(Time(0));
    let outputs: Vec<BackfillOutput> = std::iter::from_fn(|| backfiller.poll_output()).collect();
    assert!(matches!(outputs.get(1), Some(BackfillOutput::Store { .. })), "{outputs:?}");
    let mut restarted = Backfiller::new(config, Time(100 * MS));
    let sent = run(&mut restarted, &mut store, 1_000, |_, _| {});
    // `run` starts its clock at 0 and wakes the job at its start, 100 ms.
    assert_eq!(sent.first(), Some(&Time(100 * MS)));
    assert!(restarted.is_done());
    assert_eq!(restarted.stats().throttled, 0);
}

#[test]
fn a_timed_out_request_is_abandoned_and_its_late_reply_ignored() {
    let (mut store, since) = seeded_store();
    let mut backfiller = Backfiller::new(config(since, InterceptorMode::Sync, 5), Time(0));
    // The budget starts empty: its first token (one per ms) is due at 1 ms.
    backfiller.on_timer(Time(MS));
    let outputs: Vec<BackfillOutput> = std::iter::from_fn(|| backfiller.poll_output()).collect();
    let (tag, request) = outputs
        .iter()
        .find_map(|output| match output {
            BackfillOutput::Store { tag, request } => Some((*tag, request.clone())),
            _ => None,
        })
        .expect("the bookmark read");
    let late = store.on_request(request);
    // Woken early: nothing new is sent, the abandon deadline is armed again.
    backfiller.on_timer(Time(2 * MS));
    let early: Vec<BackfillOutput> = std::iter::from_fn(|| backfiller.poll_output()).collect();
    assert_eq!(early, vec![BackfillOutput::Timer { deadline: Time(51 * MS) }]);
    backfiller.on_timer(Time(51 * MS));
    let retried: Vec<BackfillOutput> = std::iter::from_fn(|| backfiller.poll_output()).collect();
    assert!(matches!(&retried[0], BackfillOutput::Store { tag: retry, .. } if *retry != tag));
    backfiller.on_store_reply(Time(51 * MS), tag, late);
    assert_eq!(backfiller.poll_output(), None, "the late reply changed nothing");
}
