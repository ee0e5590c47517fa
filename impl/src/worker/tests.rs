use super::*;
use crate::placement::PlacementPolicy;
use crate::store::Store;
use crate::types::{LogEvent, Seq, ShardRecord, ShardState};

const T1: TenantId = TenantId(1);
const V1: VaultId = VaultId(1);
const S1: SecretId = SecretId(1);
const S2: SecretId = SecretId(2);

/// A worker whose store requests the test answers, one at a time, when it chooses.
struct Client {
    worker: Worker,
    /// Store requests sent and not yet answered, oldest first.
    requests: VecDeque<(RequestTag, StoreRequest)>,
    /// The last timer armed.
    timer: Option<Time>,
    /// Every answer, in the order given.
    answers: Vec<(RequestId, Result<Done, ClientError>)>,
    next_request: u64,
}

impl Client {
    fn new(config: WorkerConfig) -> Client {
        Client {
            worker: Worker::new(config),
            requests: VecDeque::new(),
            timer: None,
            answers: Vec::new(),
            next_request: 1,
        }
    }

    /// Drains the worker's outputs; returns how many there were.
    fn drain(&mut self) -> usize {
        let mut count = 0;
        while let Some(output) = self.worker.poll_output() {
            count += 1;
            match output {
                WorkerOutput::Store { shard, tag, request } => {
                    assert_eq!(shard, BASE, "a worker without shards uses the one store");
                    self.requests.push_back((tag, request));
                }
                WorkerOutput::Timer { deadline } => self.timer = Some(deadline),
                WorkerOutput::Answer { request, result } => self.answers.push((request, result)),
            }
        }
        count
    }

    fn submit(&mut self, now: Time, operation: Operation) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.worker.on_client_request(now, request, operation);
        self.drain();
        request
    }

    /// The store answers the oldest outstanding request; returns the request
    /// and how many outputs the worker produced in response.
    fn deliver(&mut self, store: &mut Store, now: Time) -> (StoreRequest, usize) {
        let (tag, request) = self.requests.pop_front().expect("a request to answer");
        let reply = store.on_request(request.clone());
        self.worker.on_store_reply(now, tag, reply);
        (request, self.drain())
    }

    /// Wakes the worker; returns how many outputs it produced.
    fn fire(&mut self, now: Time) -> usize {
        self.worker.on_timer(now);
        self.drain()
    }

    /// Answers every request and fires every timer until the worker is idle;
    /// returns the time reached.
    fn settle(&mut self, store: &mut Store, mut now: Time) -> Time {
        for _ in 0..1_000 {
            if !self.requests.is_empty() {
                self.deliver(store, now);
                continue;
            }
            if !self.worker.is_busy() {
                return now;
            }
            let deadline = self.timer.expect("a busy worker with nothing in flight waits on a timer");
            now = now.max(deadline);
            self.fire(now);
        }
        panic!("the worker did not settle");
    }

    /// Submits `operation`, settles, and returns its answer.
    fn run(&mut self, store: &mut Store, now: Time, operation: Operation) -> Result<Done, ClientError> {
        let request = self.submit(now, operation);
        self.settle(store, now);
        self.answer(request)
    }

    fn answer(&self, request: RequestId) -> Result<Done, ClientError> {
        let answers: Vec<_> = self.answers.iter().filter(|(id, _)| *id == request).collect();
        assert_eq!(answers.len(), 1, "exactly one answer to {request:?}: {:?}", self.answers);
        answers[0].1.clone()
    }
}

fn create_vault(vault: VaultId, tenant: TenantId) -> Operation {
    Operation::CreateVault { vault, tenant }
}

fn create_secret(secret: SecretId, token: u64) -> Operation {
    Operation::CreateSecret { secret, vault: V1, content: Content::new(b"first"), token: IdempotencyToken(token) }
}

fn update(secret: SecretId, bytes: &[u8], expected: Option<Version>) -> Operation {
    Operation::UpdateSecret { secret, content: Content::new(bytes), expected }
}

fn done(secret: SecretId, version: u64) -> Result<Done, ClientError> {
    Ok(Done::Secret { secret, version: Version(version) })
}

fn secret_record(store: &Store, secret: SecretId) -> SecretRecord {
    match store.read(&Key::Secret(secret)).value {
        Some(Value::Secret(record)) => record,
        other => panic!("{secret} holds {other:?}"),
    }
}

fn log(store: &Store, tenant: TenantId) -> Vec<LogEvent> {
    store.poll(tenant, Seq::ZERO, usize::MAX).to_vec()
}

fn outbox_mutations(store: &Store, tenant: TenantId) -> Vec<Mutation> {
    store
        .scan_outbox(tenant, usize::MAX)
        .into_iter()
        .map(|row| match row.value {
            Some(Value::Outbox(mutation)) => mutation,
            other => panic!("outbox row holds {other:?}"),
        })
        .collect()
}

/// A store holding vault `V1` of tenant `T1` and, if `secret`, secret `S1` at version 1.
fn store_with(mode: InterceptorMode, secret: bool) -> Store {
    let mut store = Store::new();
    let mut setup = Client::new(WorkerConfig::new(mode));
    assert_eq!(setup.run(&mut store, Time::ZERO, create_vault(V1, T1)), Ok(Done::Vault(V1)));
    if secret {
        assert_eq!(setup.run(&mut store, Time::ZERO, create_secret(S1, 1)), done(S1, 1));
    }
    store
}

#[test]
fn create_in_sync_mode_commits_creating_and_appends_to_the_log() {
    let mut store = Store::new();
    let mut client = Client::new(WorkerConfig::new(InterceptorMode::Sync));
    assert_eq!(client.run(&mut store, Time::ZERO, create_vault(V1, T1)), Ok(Done::Vault(V1)));
    assert_eq!(client.run(&mut store, Time::ZERO, create_secret(S1, 1)), done(S1, 1));

    let record = secret_record(&store, S1);
    assert_eq!((record.tenant, record.vault, record.version), (T1, V1, Version(1)));
    assert_eq!(record.lifecycle, Lifecycle::Creating);
    assert_eq!(record.content, Some(Content::new(b"first")));
    let events = log(&store, T1);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, Seq(1));
    assert_eq!(events[0].mutation, Mutation { secret: S1, record });
    assert!(outbox_mutations(&store, T1).is_empty(), "sync mode writes no outbox row");
    assert_eq!(client.worker.stats(), WorkerStats { commits: 2, ..WorkerStats::default() });
}

#[test]
fn create_in_async_mode_writes_an_outbox_row_and_no_event() {
    let mut store = Store::new();
    let mut client = Client::new(WorkerConfig::new(InterceptorMode::Async));
    assert_eq!(client.run(&mut store, Time::ZERO, create_vault(V1, T1)), Ok(Done::Vault(V1)));
    assert_eq!(client.run(&mut store, Time::ZERO, create_secret(S1, 1)), done(S1, 1));

    let record = secret_record(&store, S1);
    assert_eq!(record.lifecycle, Lifecycle::Creating);
    assert_eq!(outbox_mutations(&store, T1), vec![Mutation { secret: S1, record }]);
    assert!(log(&store, T1).is_empty(), "async mode leaves the log to the publisher");
    assert_eq!(store.head(T1), Seq::ZERO);
}

#[test]
fn update_without_and_with_expected_version() {
    let mut store = store_with(InterceptorMode::Sync, true);
    let mut client = Client::new(WorkerConfig::new(InterceptorMode::Sync));

    assert_eq!(client.run(&mut store, Time::ZERO, update(S1, b"second", None)), done(S1, 2));
    assert_eq!(client.run(&mut store, Time::ZERO, update(S1, b"third", Some(Version(2)))), done(S1, 3));
    assert_eq!(
        client.run(&mut store, Time::ZERO, update(S1, b"lost", Some(Version(2)))),
        Err(ClientError::VersionMismatch { expected: Version(2), actual: Version(3) })
    );

    let record = secret_record(&store, S1);
    assert_eq!(record.version, Version(3));
    assert_eq!(record.content, Some(Content::new(b"third")), "a failed check-and-set writes nothing");
    assert_eq!(record.lifecycle, Lifecycle::Creating, "an update keeps the lifecycle");
    let versions: Vec<u64> = log(&store, T1).iter().map(|event| event.mutation.record.version.0).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    assert_eq!(client.worker.stats().commits, 2);
}

#[test]
fn delete_leaves_a_tombstone_and_later_mutations_find_nothing() {
    let mut store = store_with(InterceptorMode::Sync, true);
    let mut client = Client::new(WorkerConfig::new(InterceptorMode::Sync));

    let delete = Operation::DeleteSecret { secret: S1, expected: Some(Version(1)) };
    assert_eq!(client.run(&mut store, Time::ZERO, delete), done(S1, 2));
    let tombstone = secret_record(&store, S1);
    assert_eq!(
        (tombstone.version, tombstone.lifecycle, tombstone.content.clone()),
        (Version(2), Lifecycle::Deleted, None)
    );
    assert_eq!(log(&store, T1).last().map(|event| event.mutation.record.clone()), Some(tombstone.clone()));

    let not_found = Err(ClientError::SecretNotFound);
    assert_eq!(client.run(&mut store, Time::ZERO, update(S1, b"again", None)), not_found);
    assert_eq!(client.run(&mut store, Time::ZERO, Operation::DeleteSecret { secret: S1, expected: None }), not_found);
    assert_eq!(client.run(&mut store, Time::ZERO, Operation::ReadSecret { secret: S1 }), not_found);
    assert_eq!(client.run(&mut store, Time::ZERO, create_secret(S1, 9)), Err(ClientError::SecretExists));
    assert_eq!(secret_record(&store, S1), tombstone, "the tombstone stays");
    assert_eq!(log(&store, T1).len(), 2);
}

#[test]
fn schedule_deletion_keeps_content_and_refuses_updates() {
    let mut store = store_with(InterceptorMode::Sync, true);
    let mut client = Client::new(WorkerConfig::new(InterceptorMode::Sync));

    assert_eq!(client.run(&mut store, Time::ZERO, Operation::ScheduleDeletion { secret: S1 }), done(S1, 2));
    let record = secret_record(&store, S1);
    assert_eq!(record.lifecycle, Lifecycle::PendingDeletion);
    assert_eq!(record.content, Some(Content::new(b"first")));

    let invalid = Err(ClientError::InvalidState(Lifecycle::PendingDeletion));
    assert_eq!(client.run(&mut store, Time::ZERO, update(S1, b"x", None)), invalid);
    assert_eq!(client.run(&mut store, Time::ZERO, Operation::ScheduleDeletion { secret: S1 }), invalid);
    // Postmortem: `ReadSecret` answered the content of a secret pending deletion,
    // though `Lifecycle::PendingDeletion` says reads are refused and the content kept.
    let last_commit = store.last_commit();
    assert_eq!(client.run(&mut store, Time::ZERO, Operation::ReadSecret { secret: S1 }), invalid);
    assert_eq!(store.last_commit(), last_commit, "a refused read commits nothing");
    assert_eq!(secret_record(&store, S1).content, Some(Content::new(b"first")), "the content is kept");
    // A secret pending deletion can still be deleted for good.
    assert_eq!(client.run(&mut store, Time::ZERO, Operation::DeleteSecret { secret: S1, expected: None }), done(S1, 3));
}

#[test]
fn read_answers_the_record_without_committing() {
    let mut store = store_with(InterceptorMode::Sync, true);
    let mut client = Client::new(WorkerConfig::new(InterceptorMode::Sync));
    let last_commit = store.last_commit();
    let read = client.run(&mut store, Time::ZERO, Operation::ReadSecret { secret: S1 });
    assert_eq!(read, Ok(Done::Read(secret_record(&store, S1))));
    assert_eq!(store.last_commit(), last_commit);
    assert_eq!(client.worker.stats(), WorkerStats::default());
}

#[test]
fn create_with_a_used_token_replays_the_first_answer_without_committing() {
    let mut store = store_with(InterceptorMode::Sync, false);
    let mut client = Client::new(WorkerConfig::new(InterceptorMode::Sync));
    assert_eq!(client.run(&mut store, Time::ZERO, create_secret(S1, 7)), done(S1, 1));
    // The secret moves on; the retried create still answers what the first one did.
    assert_eq!(client.run(&mut store, Time::ZERO, update(S1, b"second", None)), done(S1, 2));
    let last_commit = store.last_commit();

    assert_eq!(client.run(&mut store, Time::ZERO, create_secret(S1, 7)), done(S1, 1));
    assert_eq!(store.last_commit(), last_commit, "a replay commits nothing");
    assert_eq!(client.worker.stats().commits, 2);
    assert_eq!(log(&store, T1).len(), 2, "a replay appends no event");
    assert_eq!(secret_record(&store, S1).version, Version(2));
}

#[test]
fn token_reused_for_another_secret_creates_nothing() {
    let mut store = store_with(InterceptorMode::Sync, false);
    let mut client = Client::new(WorkerConfig::new(InterceptorMode::Sync));
    assert_eq!(client.run(&mut store, Time::ZERO, create_secret(S1, 7)), done(S1, 1));
    let last_commit = store.last_commit();

    assert_eq!(client.run(&mut store, Time::ZERO, create_secret(S2, 7)), Err(ClientError::SecretExists));
    assert_eq!(store.read(&Key::Secret(S2)).value, None);
    assert_eq!(store.last_commit(), last_commit);
}

#[test]
fn vault_not_found_and_vault_exists() {
    let mut store = Store::new();
    let mut client = Client::new(WorkerConfig::new(InterceptorMode::Sync));
    let not_found = Err(ClientError::VaultNotFound);
    assert_eq!(client.run(&mut store, Time::ZERO, create_secret(S1, 1)), not_found);
    assert_eq!(client.run(&mut store, Time::ZERO, Operation::DeleteVault { vault: V1 }), not_found);

    assert_eq!(client.run(&mut store, Time::ZERO, create_vault(V1, T1)), Ok(Done::Vault(V1)));
    assert_eq!(client.run(&mut store, Time::ZERO, create_vault(V1, T1)), Err(ClientError::VaultExists));
    assert_eq!(client.run(&mut store, Time::ZERO, Operation::DeleteVault { vault: V1 }), Ok(Done::Vault(V1)));
    // A deleted vault keeps its id and takes no secrets.
    assert_eq!(client.run(&mut store, Time::ZERO, create_vault(V1, T1)), Err(ClientError::VaultExists));
    assert_eq!(client.run(&mut store, Time::ZERO, create_secret(S1, 1)), not_found);
    assert_eq!(store.read(&Key::Secret(S1)).value, None);
    assert!(log(&store, T1).is_empty());
}

#[test]
fn sync_writers_of_one_tenancy_conflict_and_the_loser_retries_after_backoff() {
    let mut store = store_with(InterceptorMode::Sync, false);
    let config = WorkerConfig::new(InterceptorMode::Sync);
    let delay_ns = config.retry_delay_ns;
    let mut first = Client::new(config.clone());
    let mut second = Client::new(config);
    let now = Time(1_000);
    let first_request = first.submit(now, create_secret(S1, 1));
    let second_request = second.submit(now, create_secret(S2, 2));

    // Both read their resources and the partition head before either commits.
    assert!(matches!(first.deliver(&mut store, now).0, StoreRequest::Read { .. }));
    assert_eq!(first.deliver(&mut store, now).0, StoreRequest::Read { keys: vec![Key::LogHead(T1)] });
    assert!(matches!(second.deliver(&mut store, now).0, StoreRequest::Read { .. }));
    assert_eq!(second.deliver(&mut store, now).0, StoreRequest::Read { keys: vec![Key::LogHead(T1)] });
    assert!(matches!(first.deliver(&mut store, now).0, StoreRequest::Commit(_)));
    assert_eq!(first.answer(first_request), done(S1, 1));

    // The second commit read a head that moved: conflict, backoff, nothing sent.
    assert!(matches!(second.deliver(&mut store, now).0, StoreRequest::Commit(_)));
    assert!(second.answers.is_empty());
    assert!(second.requests.is_empty());
    assert_eq!(second.timer, Some(now.plus_ns(delay_ns)));
    assert_eq!(second.worker.stats(), WorkerStats { conflicts: 1, ..WorkerStats::default() });
    assert_eq!(second.fire(now.plus_ns(delay_ns - 1)), 1, "an early wake-up only re-arms the timer");
    assert_eq!(second.timer, Some(now.plus_ns(delay_ns)));
    assert!(second.requests.is_empty());

    second.fire(now.plus_ns(delay_ns));
    assert_eq!(second.requests.len(), 1, "the retry starts with a fresh read");
    second.settle(&mut store, now.plus_ns(delay_ns));
    assert_eq!(second.answer(second_request), done(S2, 1));
    assert_eq!(second.worker.stats(), WorkerStats { commits: 1, conflicts: 1, retries: 1, timeouts: 0 });
    let secrets: Vec<SecretId> = log(&store, T1).iter().map(|event| event.mutation.secret).collect();
    assert_eq!(secrets, vec![S1, S2]);
}

#[test]
fn retry_budget_exhausted_after_doubling_capped_backoff() {
    let mut store = store_with(InterceptorMode::Sync, true);
    let config = WorkerConfig {
        commit_attempts_max: 4,
        retry_delay_ns: 1_000,
        retry_delay_max_ns: 3_000,
        ..WorkerConfig::new(InterceptorMode::Sync)
    };
    let mut client = Client::new(config);
    let mut now = Time(0);
    let request = client.submit(now, update(S1, b"contended", None));
    let expected_delays_ns = [1_000, 2_000, 3_000];
    for attempt in 1..=4u32 {
        client.deliver(&mut store, now); // Resource.
        client.deliver(&mut store, now); // Head.
                                         // Another writer of the tenancy appends between this attempt's head read and its commit.
        let other = Mutation {
            secret: SecretId(100 + attempt),
            record: SecretRecord {
                tenant: T1,
                vault: V1,
                version: Version(1),
                lifecycle: Lifecycle::Creating,
                content: Some(Content::new(b"other")),
            },
        };
        let interloper = Transaction { reads: Vec::new(), writes: vec![Write::Append(other)] };
        assert!(matches!(store.commit(&interloper), CommitOutcome::Committed { .. }));
        client.deliver(&mut store, now); // Commit: conflicts.
        if attempt < 4 {
            assert!(client.answers.is_empty());
            let delay_ns = expected_delays_ns[attempt as usize - 1];
            assert_eq!(client.timer, Some(now.plus_ns(delay_ns)), "backoff after attempt {attempt}");
            now = now.plus_ns(delay_ns);
            client.fire(now);
        }
    }
    assert_eq!(client.answer(request), Err(ClientError::RetriesExhausted { attempts: 4 }));
    assert!(!client.worker.is_busy());
    assert_eq!(client.worker.stats(), WorkerStats { commits: 0, conflicts: 4, retries: 3, timeouts: 0 });
    assert_eq!(secret_record(&store, S1).version, Version(1), "no attempt committed");
}

#[test]
fn read_timeout_is_retried_and_the_stale_reply_is_ignored() {
    let mut store = store_with(InterceptorMode::Sync, true);
    let config = WorkerConfig::new(InterceptorMode::Sync);
    let (timeout_ns, delay_ns) = (config.request_timeout_ns, config.retry_delay_ns);
    let mut client = Client::new(config);
    let request = client.submit(Time::ZERO, update(S1, b"second", None));
    assert_eq!(client.timer, Some(Time(timeout_ns)));
    assert_eq!(client.fire(Time(timeout_ns - 1)), 1, "not timed out yet: only the timer is re-armed");
    assert_eq!(client.timer, Some(Time(timeout_ns)));

    // The read's answer never comes in time: back off, then read again.
    client.fire(Time(timeout_ns));
    assert_eq!(client.worker.stats().timeouts, 1);
    assert_eq!(client.timer, Some(Time(timeout_ns + delay_ns)));
    assert_eq!(client.requests.len(), 1, "the lost read is still in the network");
    client.fire(Time(timeout_ns + delay_ns));
    assert_eq!(client.requests.len(), 2);

    // The late reply to the first read arrives first and is ignored.
    let (stale, outputs) = client.deliver(&mut store, Time(timeout_ns + delay_ns));
    assert!(matches!(stale, StoreRequest::Read { .. }));
    assert_eq!(outputs, 0, "a reply with an old tag changes nothing");

    client.settle(&mut store, Time(timeout_ns + delay_ns));
    assert_eq!(client.answer(request), done(S1, 2));
    assert_eq!(client.worker.stats(), WorkerStats { commits: 1, conflicts: 0, retries: 1, timeouts: 1 });
}

#[test]
fn commit_timeout_answers_outcome_unknown() {
    let mut store = store_with(InterceptorMode::Async, true);
    let config = WorkerConfig::new(InterceptorMode::Async);
    let timeout_ns = config.request_timeout_ns;
    let mut client = Client::new(config);
    let request = client.submit(Time::ZERO, update(S1, b"second", None));
    client.deliver(&mut store, Time::ZERO);
    assert!(matches!(client.requests.front(), Some((_, StoreRequest::Commit(_)))));

    client.fire(Time(timeout_ns));
    assert_eq!(client.answer(request), Err(ClientError::OutcomeUnknown));
    assert!(!client.worker.is_busy());
    assert_eq!(client.worker.stats(), WorkerStats { timeouts: 1, ..WorkerStats::default() });

    // The commit was only slow: it lands, and its late reply is ignored.
    let (_, outputs) = client.deliver(&mut store, Time(timeout_ns + 1));
    assert_eq!(outputs, 0);
    assert_eq!(secret_record(&store, S1).version, Version(2), "an unknown outcome may be a commit");
    assert_eq!(client.answers.len(), 1);
}

#[test]
fn full_queue_answers_busy_and_queued_requests_run_in_order() {
    let mut store = store_with(InterceptorMode::Sync, false);
    let config = WorkerConfig { queue_requests_max: 1, ..WorkerConfig::new(InterceptorMode::Sync) };
    let mut client = Client::new(config);
    let first = client.submit(Time::ZERO, create_secret(S1, 1));
    let second = client.submit(Time::ZERO, create_secret(S2, 2));
    let third = client.submit(Time::ZERO, create_secret(SecretId(3), 3));
    assert_eq!(client.answers, vec![(third, Err(ClientError::Busy))]);
    assert!(client.worker.is_busy());

    client.settle(&mut store, Time::ZERO);
    let order: Vec<RequestId> = client.answers.iter().map(|(id, _)| *id).collect();
    assert_eq!(order, vec![third, first, second]);
    assert_eq!(client.answer(first), done(S1, 1));
    assert_eq!(client.answer(second), done(S2, 1));
    assert_eq!(store.read(&Key::Secret(SecretId(3))).value, None, "a busy answer attempted nothing");
    assert_eq!(client.worker.stats().commits, 2);
}

#[test]
fn with_room_for_two_operations_one_waiting_on_a_silent_store_does_not_hold_up_the_other() {
    let mut store = store_with(InterceptorMode::Async, true);
    let config = WorkerConfig { operations_max: 2, ..WorkerConfig::new(InterceptorMode::Async) };
    let timeout = config.request_timeout_ns;
    let mut client = Client::new(config);
    let stalled = client.submit(Time::ZERO, update(S1, b"stalled", None));
    let later = Time(1_000);
    let moving = client.submit(later, create_secret(S2, 2));
    assert_eq!(client.requests.len(), 2, "both operations read at once");
    assert_eq!(client.timer, Some(Time(timeout)), "the timer is at the earliest deadline");
    // The first read is lost; the second operation goes on and is answered.
    client.requests.pop_front();
    while client.answers.is_empty() {
        client.deliver(&mut store, later);
    }
    assert_eq!(client.answers, vec![(moving, done(S2, 1))]);
    assert!(client.worker.is_busy(), "the stalled operation is still in progress");
    // Its read times out and is retried after the backoff; then it commits.
    client.fire(Time(timeout));
    assert_eq!(client.worker.stats().timeouts, 1);
    client.settle(&mut store, Time(timeout));
    assert_eq!(client.answer(stalled), done(S1, 2));
    assert!(!client.worker.is_busy());
}

#[test]
fn an_operation_given_up_at_its_deadline_leaves_the_timer_armed_for_the_others() {
    // Postmortem: a worker with several operations gave one up when its
    // timer fired and armed nothing, so the operation still waiting on a
    // store that never answered had no timer left and never finished (the
    // `shard-outage` swarm runs that never became quiet).
    let mut store = store_with(InterceptorMode::Sync, false);
    let config = WorkerConfig { operations_max: 2, commit_attempts_max: 1, ..WorkerConfig::new(InterceptorMode::Sync) };
    let timeout = config.request_timeout_ns;
    let mut client = Client::new(config);
    let first = client.submit(Time::ZERO, create_secret(S1, 1));
    let second = client.submit(Time(1_000), create_secret(S2, 2));
    // Both reads are lost.
    client.requests.clear();
    client.timer = None;
    client.fire(Time(timeout));
    assert_eq!(client.answer(first), Err(ClientError::RetriesExhausted { attempts: 1 }));
    assert_eq!(client.timer, Some(Time(timeout + 1_000)), "the second operation's deadline is armed");
    client.fire(Time(timeout + 1_000));
    assert_eq!(client.answer(second), Err(ClientError::RetriesExhausted { attempts: 1 }));
    assert!(!client.worker.is_busy());
    client.settle(&mut store, Time(timeout + 1_000));
}

#[test]
fn past_its_operations_a_worker_queues_then_answers_busy() {
    let mut store = store_with(InterceptorMode::Sync, false);
    let config = WorkerConfig { operations_max: 2, queue_requests_max: 1, ..WorkerConfig::new(InterceptorMode::Sync) };
    let mut client = Client::new(config);
    let first = client.submit(Time::ZERO, create_secret(S1, 1));
    let second = client.submit(Time::ZERO, create_secret(S2, 2));
    assert_eq!(client.requests.len(), 2, "two in progress");
    let third = client.submit(Time::ZERO, create_secret(SecretId(3), 3));
    assert_eq!(client.requests.len(), 2, "the third waits in the queue");
    let fourth = client.submit(Time::ZERO, create_secret(SecretId(4), 4));
    assert_eq!(client.answers, vec![(fourth, Err(ClientError::Busy))]);
    client.settle(&mut store, Time::ZERO);
    for (request, secret) in [(first, S1), (second, S2), (third, SecretId(3))] {
        assert!(matches!(client.answer(request), Ok(Done::Secret { secret: answered, .. }) if answered == secret));
    }
    assert_eq!(store.read(&Key::Secret(SecretId(4))).value, None, "a busy answer attempted nothing");
}

#[test]
fn woken_early_rearms_the_current_deadline_in_every_step() {
    // Postmortem: `on_timer` returned without a `Timer` output on an early or
    // stale wake-up, both with a store request outstanding and in backoff; the
    // caller had already deleted the fired timer, so the worker was left with no
    // timer and a lost reply (or the backoff) never woke it again.
    let config = WorkerConfig::new(InterceptorMode::Sync);
    let (timeout_ns, delay_ns) = (config.request_timeout_ns, config.retry_delay_ns);
    let mut client = Client::new(config);
    client.submit(Time::ZERO, update(S1, b"second", None));
    assert_eq!(client.requests.len(), 1);

    // A store request is outstanding.
    client.timer = None;
    assert_eq!(client.fire(Time(1)), 1, "exactly one output");
    assert_eq!(client.timer, Some(Time(timeout_ns)));
    assert_eq!(client.requests.len(), 1, "nothing is sent again");

    // In backoff after the read timed out.
    client.fire(Time(timeout_ns));
    assert_eq!(client.timer, Some(Time(timeout_ns + delay_ns)));
    client.timer = None;
    assert_eq!(client.fire(Time(timeout_ns + 1)), 1, "exactly one output");
    assert_eq!(client.timer, Some(Time(timeout_ns + delay_ns)));
    assert_eq!(client.requests.len(), 1, "the backoff is not cut short");
    assert_eq!(client.worker.stats().retries, 0);
}

fn set_phase(store: &mut Store, phase: crate::migration::Phase) {
    let write = Write::Put(PHASE_KEY, Value::Config(phase.code()));
    assert!(matches!(
        store.commit(&Transaction { reads: Vec::new(), writes: vec![write] }),
        CommitOutcome::Committed { .. }
    ));
}

fn fenced(mode: InterceptorMode) -> Client {
    Client::new(WorkerConfig { phase_fenced: true, ..WorkerConfig::new(mode) })
}

#[test]
fn a_fenced_worker_replicates_only_once_the_phase_says_so() {
    use crate::migration::Phase;
    for mode in [InterceptorMode::Sync, InterceptorMode::Async] {
        let mut store = store_with(mode, true);
        let before = (log(&store, T1).len(), outbox_mutations(&store, T1).len());
        let mut client = fenced(mode);
        // No phase stored: Off. The write commits without an event.
        assert_eq!(client.run(&mut store, Time::ZERO, update(S1, b"off", None)), done(S1, 2));
        assert_eq!((log(&store, T1).len(), outbox_mutations(&store, T1).len()), before, "{mode:?}");
        set_phase(&mut store, Phase::Sync);
        assert_eq!(client.run(&mut store, Time::ZERO, update(S1, b"sync", None)), done(S1, 3));
        let events = log(&store, T1).len() + outbox_mutations(&store, T1).len();
        assert_eq!(events, before.0 + before.1 + 1, "{mode:?}: the write after the switch carries its event");
    }
}

#[test]
fn a_phase_change_between_read_and_commit_fences_the_commit() {
    use crate::migration::Phase;
    let mut store = store_with(InterceptorMode::Async, true);
    let mut client = fenced(InterceptorMode::Async);
    let request = client.submit(Time::ZERO, update(S1, b"raced", None));
    let (read, _) = client.deliver(&mut store, Time::ZERO);
    assert!(matches!(&read, StoreRequest::Read { keys } if keys.last() == Some(&PHASE_KEY)), "{read:?}");
    // The operator switches replication on before the worker commits (phase Off).
    set_phase(&mut store, Phase::Sync);
    let (commit, _) = client.deliver(&mut store, Time::ZERO);
    let StoreRequest::Commit(transaction) = commit else { panic!("a commit") };
    assert!(transaction.reads.iter().any(|(key, _)| *key == PHASE_KEY), "the commit carries the fence");
    assert!(!transaction.writes.iter().any(|write| matches!(write, Write::Outbox(_))), "planned under Off");
    client.settle(&mut store, Time::ZERO);
    assert_eq!(client.answer(request), done(S1, 2));
    assert_eq!(client.worker.stats().conflicts, 1, "the stale-phase commit conflicted");
    assert_eq!(outbox_mutations(&store, T1).last().map(|mutation| mutation.record.version), Some(Version(2)));
}

#[test]
fn an_unfenced_worker_reads_no_phase_and_always_replicates() {
    let mut store = store_with(InterceptorMode::Async, true);
    let mut client = Client::new(WorkerConfig::new(InterceptorMode::Async));
    let request = client.submit(Time::ZERO, update(S1, b"plain", None));
    let (read, _) = client.deliver(&mut store, Time::ZERO);
    assert_eq!(read, StoreRequest::Read { keys: vec![Key::Secret(S1)] });
    client.settle(&mut store, Time::ZERO);
    assert_eq!(client.answer(request), done(S1, 2));
    assert_eq!(outbox_mutations(&store, T1).len(), 2);
}

// --- a sharded control plane ---------------------------------------------------

/// A sharded worker and one store per shard; requests are answered in the
/// order sent, each by the store of the shard it names.
struct Cells {
    worker: Worker,
    stores: Vec<Store>,
    requests: VecDeque<(ShardId, RequestTag, StoreRequest)>,
    /// Every request sent, with its shard, in order.
    sent: Vec<(ShardId, StoreRequest)>,
    timer: Option<Time>,
    answers: Vec<(RequestId, Result<Done, ClientError>)>,
    next_request: u64,
}

impl Cells {
    /// `shards` shards, each registered `Ready` with no vaults, and a
    /// least-loaded placer over them.
    fn new(shards: u32) -> Cells {
        let mut stores: Vec<Store> = (0..shards).map(|_| Store::new()).collect();
        for shard in 0..shards {
            register(&mut stores[0], shard, ShardState::Ready, 0);
        }
        let placer = Placer::new(PlacementPolicy::LeastLoaded, shards);
        let config = WorkerConfig { placer: Some(placer), ..WorkerConfig::new(InterceptorMode::Sync) };
        Cells {
            worker: Worker::new(config),
            stores,
            requests: VecDeque::new(),
            sent: Vec::new(),
            timer: None,
            answers: Vec::new(),
            next_request: 1,
        }
    }

    fn drain(&mut self) {
        while let Some(output) = self.worker.poll_output() {
            match output {
                WorkerOutput::Store { shard, tag, request } => {
                    self.sent.push((shard, request.clone()));
                    self.requests.push_back((shard, tag, request));
                }
                WorkerOutput::Timer { deadline } => self.timer = Some(deadline),
                WorkerOutput::Answer { request, result } => self.answers.push((request, result)),
            }
        }
    }

    fn submit(&mut self, operation: Operation) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.worker.on_client_request(Time(0), request, operation);
        self.drain();
        request
    }

    /// The store of its shard answers the oldest outstanding request, after
    /// `before` has done what it likes to the stores.
    fn deliver_after(&mut self, before: impl FnOnce(&mut [Store])) {
        let (shard, tag, request) = self.requests.pop_front().expect("a request to answer");
        before(&mut self.stores);
        let reply = self.stores[shard.0 as usize].on_request(request);
        self.worker.on_store_reply(Time(0), tag, reply);
        self.drain();
    }

    /// Answers every request (firing backoff timers) until the worker is idle.
    fn settle(&mut self) {
        for _ in 0..1_000 {
            if !self.requests.is_empty() {
                self.deliver_after(|_| {});
                continue;
            }
            if !self.worker.is_busy() {
                return;
            }
            let deadline = self.timer.expect("a busy worker with nothing in flight waits on a timer");
            self.worker.on_timer(deadline);
            self.drain();
        }
        panic!("the worker did not settle");
    }

    fn run(&mut self, operation: Operation) -> Result<Done, ClientError> {
        let request = self.submit(operation);
        self.settle();
        let answers: Vec<_> = self.answers.iter().filter(|(id, _)| *id == request).collect();
        assert_eq!(answers.len(), 1, "exactly one answer to {request:?}: {:?}", self.answers);
        answers[0].1.clone()
    }

    fn base(&self) -> &Store {
        &self.stores[0]
    }

    /// The shards the last operation's requests went to, in order.
    fn shards_since(&self, from: usize) -> Vec<u32> {
        self.sent[from..].iter().map(|(shard, _)| shard.0).collect()
    }
}

fn register(store: &mut Store, shard: u32, state: ShardState, vaults: u64) {
    let write = Write::Put(Key::Shard(ShardId(shard)), Value::Shard(ShardRecord { state, vaults }));
    let outcome = store.commit(&Transaction { reads: Vec::new(), writes: vec![write] });
    assert!(matches!(outcome, CommitOutcome::Committed { .. }), "{outcome:?}");
}

fn route_of_vault(store: &Store, vault: VaultId) -> Option<ShardId> {
    match store.read(&Key::VaultRoute(vault)).value {
        Some(Value::VaultRoute(shard)) => Some(shard),
        None => None,
        other => panic!("a vault route holds {other:?}"),
    }
}

fn route_of_secret(store: &Store, secret: SecretId) -> Option<VaultId> {
    match store.read(&Key::SecretRoute(secret)).value {
        Some(Value::SecretRoute(vault)) => Some(vault),
        None => None,
        other => panic!("a secret route holds {other:?}"),
    }
}

fn create_in(secret: SecretId, vault: VaultId, token: u64) -> Operation {
    Operation::CreateSecret { secret, vault, content: Content::new(b"first"), token: IdempotencyToken(token) }
}

#[test]
fn a_vault_placed_on_the_base_shard_commits_its_route_with_its_record() {
    let mut cells = Cells::new(1);
    assert_eq!(cells.run(create_vault(V1, T1)), Ok(Done::Vault(V1)));
    assert_eq!(route_of_vault(cells.base(), V1), Some(BASE));
    // Routes read, then the vault read, then one commit holding both.
    assert_eq!(cells.shards_since(0), [0, 0, 0]);
    let Some((_, StoreRequest::Commit(transaction))) = cells.sent.last() else { panic!("{:?}", cells.sent) };
    let written: Vec<Key> = transaction
        .writes
        .iter()
        .filter_map(|write| match write {
            Write::Put(key, _) | Write::Delete(key) => Some(*key),
            Write::Append(_) | Write::Outbox(_) => None,
        })
        .collect();
    assert!(written.contains(&Key::Vault(V1)) && written.contains(&Key::VaultRoute(V1)), "{written:?}");
    assert_eq!(cells.worker.stats().commits, 1);
}

#[test]
fn a_vault_on_another_shard_is_routed_in_the_base_store_before_it_is_created_there() {
    let mut cells = Cells::new(2);
    register(&mut cells.stores[0], 0, ShardState::Ready, 5); // Shard 1 is now the least loaded.
    assert_eq!(cells.run(create_vault(V1, T1)), Ok(Done::Vault(V1)));
    assert_eq!(route_of_vault(cells.base(), V1), Some(ShardId(1)));
    assert!(cells.base().read(&Key::Vault(V1)).value.is_none(), "the record lives in its home shard only");
    assert!(cells.stores[1].read(&Key::Vault(V1)).value.is_some());
    // Routes read and committed in the base, then the vault read and committed in shard 1.
    assert_eq!(cells.shards_since(0), [0, 0, 1, 1]);
    assert_eq!(cells.worker.stats().commits, 2);
}

#[test]
fn secrets_follow_their_vault_to_its_shard_and_later_operations_resolve_it() {
    let mut cells = Cells::new(2);
    register(&mut cells.stores[0], 0, ShardState::Ready, 5);
    assert_eq!(cells.run(create_vault(V1, T1)), Ok(Done::Vault(V1)));
    let from = cells.sent.len();
    assert_eq!(cells.run(create_in(S1, V1, 7)), done(S1, 1));
    assert_eq!(route_of_secret(cells.base(), S1), Some(V1));
    assert_eq!(secret_record(&cells.stores[1], S1).version, Version(1));
    assert!(cells.base().read(&Key::Secret(S1)).value.is_none());
    // Placement read and route commit in the base; resource read, head read and commit in shard 1.
    assert_eq!(cells.shards_since(from), [0, 0, 1, 1, 1]);
    // The worker learned both rows: an update goes straight to shard 1.
    let from = cells.sent.len();
    assert_eq!(cells.run(update(S1, b"second", None)), done(S1, 2));
    assert_eq!(cells.shards_since(from), [1, 1, 1]);
    assert_eq!(log(&cells.stores[1], T1).len(), 2, "the shard's own log carries its secrets' events");
}

#[test]
fn a_fresh_worker_resolves_a_secret_by_reading_its_routes_one_at_a_time() {
    let mut cells = Cells::new(2);
    register(&mut cells.stores[0], 0, ShardState::Ready, 5);
    cells.run(create_vault(V1, T1)).expect("created");
    cells.run(create_in(S1, V1, 7)).expect("created");
    let config = cells.worker.config.clone();
    cells.worker = Worker::new(config);
    let from = cells.sent.len();
    let read = Operation::ReadSecret { secret: S1 };
    assert!(matches!(cells.run(read), Ok(Done::Read(record)) if record.version == Version(1)));
    let asked: Vec<(u32, StoreRequest)> =
        cells.sent[from..].iter().map(|(shard, request)| (shard.0, request.clone())).collect();
    assert_eq!(
        asked,
        [
            (0, StoreRequest::Read { keys: vec![Key::SecretRoute(S1)] }),
            (0, StoreRequest::Read { keys: vec![Key::VaultRoute(V1)] }),
            (1, StoreRequest::Read { keys: vec![Key::Secret(S1)] }),
        ]
    );
}

#[test]
fn a_resource_without_a_route_is_not_found_without_touching_any_shard() {
    let mut cells = Cells::new(2);
    assert_eq!(cells.run(update(S1, b"x", None)), Err(ClientError::SecretNotFound));
    assert_eq!(cells.run(Operation::DeleteVault { vault: V1 }), Err(ClientError::VaultNotFound));
    assert_eq!(cells.run(create_in(S1, V1, 7)), Err(ClientError::VaultNotFound));
    assert!(cells.sent.iter().all(|(shard, _)| *shard == BASE), "{:?}", cells.sent);
}

#[test]
fn no_ready_shard_refuses_a_vault() {
    let mut cells = Cells::new(2);
    register(&mut cells.stores[0], 0, ShardState::Provisioning, 0);
    register(&mut cells.stores[0], 1, ShardState::Provisioning, 0);
    assert_eq!(cells.run(create_vault(V1, T1)), Err(ClientError::NoReadyShard));
    assert_eq!(route_of_vault(cells.base(), V1), None);
}

#[test]
fn a_conflict_after_the_route_committed_keeps_the_home_and_does_not_place_again() {
    let mut cells = Cells::new(2);
    register(&mut cells.stores[0], 0, ShardState::Ready, 5);
    cells.submit(create_vault(V1, T1));
    cells.deliver_after(|_| {}); // routes read
    cells.deliver_after(|_| {}); // routes committed: V1 → shard 1
    cells.deliver_after(|_| {}); // the vault read in shard 1: absent
                                 // A racing writer of the same key in shard 1 makes the vault's commit conflict.
    cells.deliver_after(|stores| {
        let write = Write::Put(Key::Vault(V1), Value::Vault(VaultRecord { tenant: T1, deleted: true }));
        let outcome = stores[1].commit(&Transaction { reads: Vec::new(), writes: vec![write] });
        assert!(matches!(outcome, CommitOutcome::Committed { .. }));
    });
    assert_eq!(cells.worker.stats().conflicts, 1);
    let from = cells.sent.len();
    cells.settle();
    // The retry went straight to shard 1: the route is not placed twice.
    assert!(cells.shards_since(from).iter().all(|shard| *shard == 1), "{:?}", cells.shards_since(from));
    assert_eq!(cells.answers.last().map(|(_, result)| result.clone()), Some(Err(ClientError::VaultExists)));
    assert_eq!(route_of_vault(cells.base(), V1), Some(ShardId(1)));
}
