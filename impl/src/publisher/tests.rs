use super::*;
use crate::store::Store;
use crate::types::{CommitSeq, Content, Lifecycle, Mutation, SecretId, SecretRecord, Seq, VaultId, Version};

const T1: TenantId = TenantId(1);
const T2: TenantId = TenantId(2);

fn drain(publisher: &mut Publisher) -> Vec<PublisherOutput> {
    std::iter::from_fn(|| publisher.poll_output()).collect()
}

fn mutation(tenant: TenantId, secret: u32, version: u64) -> Mutation {
    let record = SecretRecord {
        tenant,
        vault: VaultId(tenant.0),
        version: Version(version),
        lifecycle: Lifecycle::Creating,
        content: Some(Content::new(&[secret as u8, version as u8])),
    };
    Mutation { secret: SecretId(secret), record }
}

/// Commits one async-mode transaction writing an outbox row per mutation.
fn insert(store: &mut Store, mutations: &[Mutation]) -> CommitSeq {
    let writes = mutations.iter().cloned().map(Write::Outbox).collect();
    match store.commit(&Transaction { reads: Vec::new(), writes }) {
        CommitOutcome::Committed { commit, .. } => commit,
        other => panic!("outbox insert refused: {other:?}"),
    }
}

/// Appends a mutation directly, as a sync-mode writer does.
fn append(store: &mut Store, mutation: Mutation) {
    let outcome = store.commit(&Transaction { reads: Vec::new(), writes: vec![Write::Append(mutation)] });
    assert!(matches!(outcome, CommitOutcome::Committed { .. }));
}

fn log(store: &Store, tenant: TenantId) -> Vec<Mutation> {
    store.poll(tenant, Seq::ZERO, usize::MAX).iter().map(|event| event.mutation.clone()).collect()
}

fn outbox_len(store: &Store, tenant: TenantId) -> usize {
    store.scan_outbox(tenant, usize::MAX).len()
}

/// The store requests among `outputs` and the last timer.
fn split(outputs: Vec<PublisherOutput>) -> (Vec<(RequestTag, StoreRequest)>, Option<Time>) {
    let mut requests = Vec::new();
    let mut timer = None;
    for output in outputs {
        match output {
            PublisherOutput::Store { tag, request } => requests.push((tag, request)),
            PublisherOutput::Timer { deadline } => timer = Some(deadline),
        }
    }
    (requests, timer)
}

/// Wakes the publisher at `now` and answers its requests at once until it
/// waits; returns the number of rows of each commit it sent and its timer.
fn round(publisher: &mut Publisher, store: &mut Store, now: Time) -> (Vec<usize>, Option<Time>) {
    publisher.on_timer(now);
    let mut commits = Vec::new();
    let (mut requests, mut timer) = split(drain(publisher));
    while let Some((tag, request)) = requests.pop() {
        assert!(requests.is_empty(), "one request at a time");
        if let StoreRequest::Commit(transaction) = &request {
            commits.push(transaction.writes.iter().filter(|write| matches!(write, Write::Append(_))).count());
        }
        publisher.on_store_reply(now, tag, store.on_request(request));
        (requests, timer) = split(drain(publisher));
    }
    (commits, timer)
}

/// Wakes the publisher and returns its one request, unanswered.
fn request_on_timer(publisher: &mut Publisher, now: Time) -> (RequestTag, StoreRequest) {
    publisher.on_timer(now);
    let (mut requests, _) = split(drain(publisher));
    assert_eq!(requests.len(), 1);
    requests.pop().expect("one request")
}

/// Answers `request` and returns the publisher's next request, if any.
fn answer(
    publisher: &mut Publisher,
    store: &mut Store,
    now: Time,
    (tag, request): (RequestTag, StoreRequest),
) -> Option<(RequestTag, StoreRequest)> {
    publisher.on_store_reply(now, tag, store.on_request(request));
    let (mut requests, _) = split(drain(publisher));
    assert!(requests.len() <= 1);
    requests.pop()
}

#[test]
fn moves_outbox_rows_into_the_log_in_commit_order_and_deletes_them() {
    let mut store = Store::new();
    let rows = [mutation(T1, 1, 1), mutation(T1, 2, 1), mutation(T1, 3, 1), mutation(T1, 1, 2)];
    insert(&mut store, &rows[..1]);
    insert(&mut store, &rows[1..3]); // Two rows in one commit.
    insert(&mut store, &[mutation(T2, 9, 1)]); // Another partition's row.
    insert(&mut store, &rows[3..]);

    let config = PublisherConfig::new(T1);
    let interval_ns = config.publish_interval_ns;
    let mut publisher = Publisher::new(config, Time::ZERO);
    assert_eq!(drain(&mut publisher), vec![PublisherOutput::Timer { deadline: Time::ZERO }]);
    let (commits, timer) = round(&mut publisher, &mut store, Time(7));
    assert_eq!(commits, vec![4]);
    assert_eq!(timer, Some(Time(7 + interval_ns)));
    assert_eq!(log(&store, T1), rows.to_vec());
    assert_eq!(outbox_len(&store, T1), 0);
    assert_eq!(outbox_len(&store, T2), 1, "another partition's rows are left alone");
    assert!(log(&store, T2).is_empty());
    assert_eq!(publisher.stats(), PublisherStats { published: 4, conflicts: 0 });
    assert_eq!(publisher.tenant(), T1);

    // An empty outbox: a read, no commit, and a wait.
    let (commits, timer) = round(&mut publisher, &mut store, Time(7 + interval_ns));
    assert_eq!(commits, Vec::<usize>::new());
    assert_eq!(timer, Some(Time(7 + 2 * interval_ns)));
}

#[test]
fn woken_early_the_publisher_only_rearms() {
    let config = PublisherConfig::new(T1);
    let interval_ns = config.publish_interval_ns;
    let mut store = Store::new();
    let mut publisher = Publisher::new(config, Time::ZERO);
    round(&mut publisher, &mut store, Time::ZERO);
    publisher.on_timer(Time(interval_ns - 1));
    assert_eq!(drain(&mut publisher), vec![PublisherOutput::Timer { deadline: Time(interval_ns) }]);
}

#[test]
fn a_round_moves_at_most_a_batch_and_goes_again_at_once() {
    let mut store = Store::new();
    let rows: Vec<Mutation> = (1..=5).map(|secret| mutation(T1, secret, 1)).collect();
    for row in &rows {
        insert(&mut store, std::slice::from_ref(row));
    }
    let config = PublisherConfig { batch_events_max: 2, ..PublisherConfig::new(T1) };
    let interval_ns = config.publish_interval_ns;
    let mut publisher = Publisher::new(config, Time::ZERO);
    let (commits, timer) = round(&mut publisher, &mut store, Time::ZERO);
    assert_eq!(commits, vec![2, 2, 1]);
    assert_eq!(timer, Some(Time(interval_ns)), "a short batch means drained: wait");
    assert_eq!(log(&store, T1), rows);
    assert_eq!(outbox_len(&store, T1), 0);
    assert_eq!(publisher.stats().published, 5);
}

#[test]
fn a_head_moved_by_a_sync_append_conflicts_writes_nothing_and_retries() {
    let mut store = Store::new();
    let rows = [mutation(T1, 1, 1), mutation(T1, 2, 1)];
    insert(&mut store, &rows);
    let config = PublisherConfig::new(T1);
    let interval_ns = config.publish_interval_ns;
    let mut publisher = Publisher::new(config, Time::ZERO);
    let read = request_on_timer(&mut publisher, Time::ZERO);
    let commit = answer(&mut publisher, &mut store, Time::ZERO, read).expect("a commit");

    let racer = mutation(T1, 50, 1);
    append(&mut store, racer.clone()); // A sync-mode writer of the tenancy wins the head.
    publisher.on_store_reply(Time(1), commit.0, store.on_request(commit.1));
    let (requests, timer) = split(drain(&mut publisher));
    assert!(requests.is_empty());
    assert_eq!(timer, Some(Time(1 + interval_ns)));
    assert_eq!(publisher.stats(), PublisherStats { published: 0, conflicts: 1 });
    assert_eq!(log(&store, T1), vec![racer.clone()], "the conflicting round wrote nothing");
    assert_eq!(outbox_len(&store, T1), 2);

    let (commits, _) = round(&mut publisher, &mut store, Time(1 + interval_ns));
    assert_eq!(commits, vec![2]);
    assert_eq!(log(&store, T1), vec![racer, rows[0].clone(), rows[1].clone()]);
    assert_eq!(outbox_len(&store, T1), 0);
}

#[test]
fn two_racing_publishers_publish_each_row_once() {
    let mut store = Store::new();
    let rows = [mutation(T1, 1, 1), mutation(T1, 2, 1)];
    insert(&mut store, &rows);
    let mut first = Publisher::new(PublisherConfig::new(T1), Time::ZERO);
    let mut second = Publisher::new(PublisherConfig::new(T1), Time::ZERO);
    let first_read = request_on_timer(&mut first, Time::ZERO);
    let second_read = request_on_timer(&mut second, Time::ZERO);
    let first_commit = answer(&mut first, &mut store, Time::ZERO, first_read).expect("a commit");
    let second_commit = answer(&mut second, &mut store, Time::ZERO, second_read).expect("a commit");
    assert_eq!(answer(&mut first, &mut store, Time::ZERO, first_commit), None);
    assert_eq!(answer(&mut second, &mut store, Time::ZERO, second_commit), None);

    assert_eq!(log(&store, T1), rows.to_vec());
    assert_eq!(first.stats(), PublisherStats { published: 2, conflicts: 0 });
    assert_eq!(second.stats(), PublisherStats { published: 0, conflicts: 1 });

    // Both keep going, with new rows, without publishing anything twice.
    let more = mutation(T1, 3, 1);
    insert(&mut store, std::slice::from_ref(&more));
    let interval_ns = PublisherConfig::new(T1).publish_interval_ns;
    round(&mut second, &mut store, Time(interval_ns));
    round(&mut first, &mut store, Time(interval_ns));
    assert_eq!(log(&store, T1), vec![rows[0].clone(), rows[1].clone(), more]);
}

#[test]
fn the_late_commit_of_a_crashed_publisher_conflicts() {
    let mut store = Store::new();
    let rows = [mutation(T1, 1, 1)];
    insert(&mut store, &rows);
    let mut crashed = Publisher::new(PublisherConfig::new(T1), Time::ZERO);
    let read = request_on_timer(&mut crashed, Time::ZERO);
    let (_, late_commit) = answer(&mut crashed, &mut store, Time::ZERO, read).expect("a commit");
    drop(crashed); // Its commit is still in the network.

    let mut restarted = Publisher::new(PublisherConfig::new(T1), Time(10));
    let (commits, _) = round(&mut restarted, &mut store, Time(10));
    assert_eq!(commits, vec![1]);
    let StoreReply::Commit(outcome) = store.on_request(late_commit) else { panic!("a commit reply") };
    assert!(matches!(outcome, CommitOutcome::Conflict { .. }), "{outcome:?}");
    assert_eq!(log(&store, T1), rows.to_vec());
}

#[test]
fn a_lost_commit_reply_times_out_and_the_next_round_finds_the_rows_gone() {
    let mut store = Store::new();
    let rows = [mutation(T1, 1, 1), mutation(T1, 2, 1)];
    insert(&mut store, &rows);
    let config = PublisherConfig::new(T1);
    let timeout_ns = config.request_timeout_ns;
    let mut publisher = Publisher::new(config, Time::ZERO);
    let read = request_on_timer(&mut publisher, Time::ZERO);
    let (commit_tag, commit) = answer(&mut publisher, &mut store, Time::ZERO, read).expect("a commit");
    let late_reply = store.on_request(commit); // Lands, but the reply is slow.

    publisher.on_timer(Time(timeout_ns - 1));
    let rearmed = vec![PublisherOutput::Timer { deadline: Time(timeout_ns) }];
    assert_eq!(drain(&mut publisher), rearmed, "not timed out yet: only the timer is re-armed");
    let (commits, _) = round(&mut publisher, &mut store, Time(timeout_ns));
    assert_eq!(commits, Vec::<usize>::new(), "the outbox is empty: nothing to publish again");
    publisher.on_store_reply(Time(timeout_ns + 1), commit_tag, late_reply);
    assert_eq!(drain(&mut publisher), Vec::new(), "the late reply is ignored");
    publisher.check_invariants();
    assert_eq!(log(&store, T1), rows.to_vec());
    assert_eq!(publisher.stats().published, 0, "the publisher never learned of its commit");
}

#[test]
fn woken_early_with_a_request_outstanding_rearms_the_abandon_deadline() {
    // Postmortem: `on_timer` returned without a `Timer` output when woken before
    // an outstanding request's abandon deadline; the caller had already deleted
    // the fired timer, so a lost reply left the publisher with no timer, stuck forever.
    let mut store = Store::new();
    insert(&mut store, &[mutation(T1, 1, 1)]);
    let config = PublisherConfig::new(T1);
    let timeout_ns = config.request_timeout_ns;
    let mut publisher = Publisher::new(config, Time::ZERO);
    let read = request_on_timer(&mut publisher, Time::ZERO);
    publisher.on_timer(Time(1));
    assert_eq!(drain(&mut publisher), vec![PublisherOutput::Timer { deadline: Time(timeout_ns) }]);

    // The same while the commit is outstanding.
    let commit = answer(&mut publisher, &mut store, Time(2), read).expect("a commit");
    assert!(matches!(commit.1, StoreRequest::Commit(_)));
    publisher.on_timer(Time(3));
    assert_eq!(drain(&mut publisher), vec![PublisherOutput::Timer { deadline: Time(2 + timeout_ns) }]);
    publisher.check_invariants();
}
