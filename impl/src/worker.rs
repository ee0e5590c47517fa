//! The control-plane worker: turns client operations into optimistic
//! transactions on the remote store, retries conflicts within a budget, and
//! answers the client with a typed result.
//!
//! Each attempt of an operation has up to three steps, one store round trip each:
//! 1. read the keys the operation depends on (vault, secret, idempotency token);
//! 2. in `sync` interceptor mode, for a secret mutation, read the partition head;
//! 3. commit the transaction built from what was read.
//!
//! During a live migration (`phase_fenced`), step 1 also reads the migration
//! phase ([`crate::migration::PHASE_KEY`]) and the commit carries its version:
//! a mutation emits its replication event only if the phase replicates, and a
//! commit that raced a phase change conflicts and is redone under the new
//! phase. So every commit after the one that switched replication on carries
//! its event, and `t1` is exact whatever the workers believed.
//!
//! A conflict starts a new attempt after a backoff (`retry_delay_ns` doubling up
//! to `retry_delay_max_ns`) until `commit_attempts_max` attempts were made. A
//! read that times out is retried the same way; a commit that times out is
//! answered with [`ClientError::OutcomeUnknown`], because it may have committed.
//!
//! In a sharded service ([`WorkerConfig::placer`]) each store request names
//! the shard whose store it goes to. Routing rows live in the base store
//! (shard 0, see [`crate::placement`]); a resource lives in its vault's home
//! shard. Each attempt then starts with a routing step in the base store:
//! * a creation reads [`Placer::keys_to_read`] and is placed
//!   ([`Placer::place`]). When the home shard is the base shard, the routing
//!   rows go in the resource's own transaction. Otherwise they commit in the
//!   base store first, then the resource in its home shard (route before
//!   resource); a later attempt of the same operation keeps that home and
//!   does not place it again.
//! * any other operation resolves its home from the routing rows, which never
//!   change once written: the worker remembers every row it read and reads
//!   only the ones it lacks (secret → vault, vault → shard), one at a time.
//!   A row the base store does not hold answers `NotFound`.
//!
//! A worker runs up to [`WorkerConfig::operations_max`] operations at once,
//! each its own attempt with its own store request and deadline; further
//! requests wait in a bounded queue. One operation at a time (the default)
//! is the simplest worker; more let an operation waiting on a slow or
//! unreachable shard's store leave the others going. The worker arms one
//! timer, at the earliest deadline of its operations.
//!
//! Call protocol: feed [`Worker::on_client_request`], [`Worker::on_store_reply`]
//! and [`Worker::on_timer`]; after each call drain [`Worker::poll_output`] until it
//! returns `None`. A `Timer` output replaces any earlier one; waking the worker
//! early or twice is harmless. Replies whose tag is not the outstanding one are
//! ignored (they answer an abandoned request).

use std::collections::{BTreeMap, VecDeque};

#[cfg(feature = "bugzoo")]
use crate::bugzoo::Bug;
use crate::bugzoo::Bugs;
use crate::interceptor::{Interceptor, InterceptorMode};
use crate::migration::{PhaseConfig, PHASE_KEY};
use crate::placement::{Placement, PlacementError, Placer};
use crate::routes::RouteTable;
use crate::store::{
    CommitOutcome, IdempotencyToken, Key, ReadEntry, StoreReply, StoreRequest, TokenRecord, Transaction, Value, Write,
};
use crate::types::{
    CommitSeq, Content, Lifecycle, Mutation, RequestTag, SecretId, SecretRecord, ShardId, TenantId, Time, VaultId,
    VaultRecord, Version,
};

/// The base shard: its store holds the routing rows.
const BASE: ShardId = ShardId(0);

/// Names one client request, chosen by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// A client operation on the control plane.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Creates a vault owned by `tenant`.
    CreateVault {
        /// The new vault's id.
        vault: VaultId,
        /// Its owner.
        tenant: TenantId,
    },
    /// Deletes a vault (its id is never reused).
    DeleteVault {
        /// The vault.
        vault: VaultId,
    },
    /// Creates a secret in a vault; retried creates with the same token answer
    /// the first attempt's result.
    CreateSecret {
        /// The new secret's id.
        secret: SecretId,
        /// Its vault.
        vault: VaultId,
        /// Its first content.
        content: Content,
        /// The idempotency token.
        token: IdempotencyToken,
    },
    /// Replaces a secret's content; with `expected`, only if the secret is at
    /// that version (check-and-set).
    UpdateSecret {
        /// The secret.
        secret: SecretId,
        /// The new content.
        content: Content,
        /// The version the caller last saw, if it wants check-and-set.
        expected: Option<Version>,
    },
    /// Schedules a secret's deletion: reads are refused, content is kept.
    ScheduleDeletion {
        /// The secret.
        secret: SecretId,
    },
    /// Deletes a secret, leaving a versioned tombstone.
    DeleteSecret {
        /// The secret.
        secret: SecretId,
        /// The version the caller last saw, if it wants check-and-set.
        expected: Option<Version>,
    },
    /// Reads a secret from the remote store; refused with
    /// [`ClientError::InvalidState`] while its deletion is pending.
    ReadSecret {
        /// The secret.
        secret: SecretId,
    },
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Done {
    /// The vault operation committed.
    Vault(VaultId),
    /// The secret mutation committed at `version`.
    Secret {
        /// The secret.
        secret: SecretId,
        /// Its version after the mutation.
        version: Version,
    },
    /// The secret as read.
    Read(SecretRecord),
}

/// Why an operation failed. Every variant is an expected outcome, not a bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClientError {
    /// The vault does not exist or was deleted.
    VaultNotFound,
    /// A vault with this id already exists (or existed).
    VaultExists,
    /// The secret does not exist or was deleted.
    SecretNotFound,
    /// A secret with this id already exists (or existed).
    SecretExists,
    /// Check-and-set failed: the secret is at `actual`, not `expected`.
    VersionMismatch {
        /// The version the caller expected.
        expected: Version,
        /// The version the store holds.
        actual: Version,
    },
    /// The secret's lifecycle forbids the operation.
    InvalidState(Lifecycle),
    /// Every attempt of the retry budget conflicted or timed out.
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
    },
    /// The commit was sent but its answer never came; it may have committed.
    OutcomeUnknown,
    /// The worker's queue is full; nothing was attempted.
    Busy,
    /// No shard can take a new vault: none is `Ready`, or the fixed
    /// placement policy's shard is not (see [`crate::placement`]).
    NoReadyShard,
    /// The front door's quota table refused the request (HTTP 429); nothing
    /// was attempted. See `crate::quota`.
    Throttled {
        /// Nanoseconds until every limit that applies would admit it.
        retry_after_ns: u64,
    },
}

/// What a worker asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkerOutput {
    /// Send `request` to the store of `shard` (always shard 0 in a service
    /// without shards); hand its reply back with `tag`.
    Store {
        /// The shard whose store it goes to.
        shard: ShardId,
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The request.
        request: StoreRequest,
    },
    /// Call [`Worker::on_timer`] at or after `deadline` (replaces earlier timers).
    Timer {
        /// When to wake the worker.
        deadline: Time,
    },
    /// Answer the client.
    Answer {
        /// The client's request.
        request: RequestId,
        /// The result.
        result: Result<Done, ClientError>,
    },
}

/// Limits and knobs of a worker.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkerConfig {
    /// Interceptor mode for secret mutations.
    pub mode: InterceptorMode,
    /// Attempts per operation before [`ClientError::RetriesExhausted`].
    pub commit_attempts_max: u32,
    /// Backoff after the first failed attempt.
    pub retry_delay_ns: u64,
    /// Upper bound of the doubling backoff.
    pub retry_delay_max_ns: u64,
    /// How long to wait for a store reply.
    pub request_timeout_ns: u64,
    /// Client requests queued behind the ones in progress.
    pub queue_requests_max: usize,
    /// Operations in progress at once (at least 1).
    pub operations_max: usize,
    /// Whether mutations follow the migration phase stored in the store (see
    /// the module documentation); `false`: every mutation replicates.
    pub phase_fenced: bool,
    /// A sharded service's placement (see the module documentation); `None`:
    /// one store, which holds everything, and no routing rows.
    pub placer: Option<Placer>,
}

impl WorkerConfig {
    /// A configuration with the given mode and moderate limits.
    pub fn new(mode: InterceptorMode) -> WorkerConfig {
        WorkerConfig {
            mode,
            commit_attempts_max: 8,
            retry_delay_ns: 1_000_000,
            retry_delay_max_ns: 64_000_000,
            request_timeout_ns: 200_000_000,
            queue_requests_max: 64,
            operations_max: 1,
            phase_fenced: false,
            placer: None,
        }
    }
}

/// Counters a worker keeps for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkerStats {
    /// Transactions committed.
    pub commits: u64,
    /// Commits refused with a conflict.
    pub conflicts: u64,
    /// Attempts started after the first of an operation.
    pub retries: u64,
    /// Store requests that timed out.
    pub timeouts: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Step {
    /// Waiting for a read of routing rows in the base store.
    ReadRoutes,
    /// Waiting for the commit of a creation's routing rows in the base store
    /// (a home shard other than the base).
    CommitRoutes,
    /// Waiting for the resource read.
    ReadResource,
    /// Waiting for the partition head read (sync mode).
    ReadHead,
    /// Waiting for the commit.
    Commit,
    /// Waiting for the backoff before the next attempt.
    Backoff,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Attempt {
    request: RequestId,
    operation: Operation,
    /// Attempts started so far, including the current one.
    attempts: u32,
    step: Step,
    /// The outstanding store request, if any.
    tag: Option<RequestTag>,
    /// When the current step gives up waiting.
    deadline: Time,
    /// Entries read in step 1.
    resource: Vec<ReadEntry>,
    /// The phase entry read in step 1 (phase-fenced workers only).
    phase: Option<ReadEntry>,
    /// The operation's home shard, once known (sharded workers); kept by
    /// later attempts only when it cannot change (see `begin_attempt`).
    home: Option<ShardId>,
    /// A creation's placement while it is being committed: its routing rows
    /// join the resource's commit (home = base) or commit first (any other).
    placement: Option<Placement>,
}

/// A planned commit: the transaction and the answer it earns.
struct Plan {
    transaction: Transaction,
    done: Done,
    /// The mutation to intercept, if the operation mutates a secret.
    mutation: Option<Mutation>,
}

/// The control-plane worker. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Worker {
    config: WorkerConfig,
    /// Routing rows read from or committed to the base store (they never
    /// change once written, so they are kept for good).
    routes: RouteTable,
    /// The operations in progress, by the order they started in.
    attempts: BTreeMap<u64, Attempt>,
    next_attempt: u64,
    /// The operation an input is being handled for, taken out of `attempts`
    /// for the call (see [`Worker::focus`]); `None` between calls.
    current: Option<(u64, Attempt)>,
    queue: VecDeque<(RequestId, Operation)>,
    next_tag: RequestTag,
    outputs: VecDeque<WorkerOutput>,
    stats: WorkerStats,
    bugs: Bugs,
}

impl Worker {
    /// An idle worker.
    pub fn new(config: WorkerConfig) -> Worker {
        assert!(config.commit_attempts_max > 0, "at least one attempt");
        assert!(config.retry_delay_ns <= config.retry_delay_max_ns, "backoff bounds inverted");
        assert!(config.request_timeout_ns > 0, "a zero timeout never waits");
        assert!(config.operations_max > 0, "room for one operation");
        Worker {
            config,
            routes: RouteTable::new(),
            attempts: BTreeMap::new(),
            next_attempt: 0,
            current: None,
            queue: VecDeque::new(),
            next_tag: RequestTag::default(),
            outputs: VecDeque::new(),
            stats: WorkerStats::default(),
            bugs: Bugs::none(),
        }
    }

    /// The same worker running bug-zoo variants (none outside the bug zoo).
    pub fn with_bugs(mut self, bugs: Bugs) -> Worker {
        self.bugs = bugs;
        self
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<WorkerOutput> {
        self.outputs.pop_front()
    }

    /// Counters for reports.
    pub fn stats(&self) -> WorkerStats {
        self.stats
    }

    /// Whether an operation is in progress or queued.
    pub fn is_busy(&self) -> bool {
        !self.attempts.is_empty() || !self.queue.is_empty()
    }

    /// A client asks for `operation`.
    pub fn on_client_request(&mut self, now: Time, request: RequestId, operation: Operation) {
        if self.attempts.len() < self.config.operations_max {
            self.start(now, request, operation);
            self.unfocus();
        } else if self.queue.len() < self.config.queue_requests_max {
            self.queue.push_back((request, operation));
        } else {
            self.answer(request, Err(ClientError::Busy));
        }
        self.check_invariants();
    }

    /// The store answered the request tagged `tag`.
    pub fn on_store_reply(&mut self, now: Time, tag: RequestTag, reply: StoreReply) {
        let waiting = self.attempts.iter().find(|(_, attempt)| attempt.tag == Some(tag)).map(|(slot, _)| *slot);
        // None: a late reply to an abandoned request.
        let Some(slot) = waiting else { return };
        self.focus(slot);
        let step = self.attempt().step;
        match (step, reply) {
            (Step::ReadRoutes, StoreReply::Read(entries)) => self.on_routes_read(now, entries),
            (Step::CommitRoutes, StoreReply::Commit(outcome)) => self.on_routes_commit(now, outcome),
            (Step::ReadResource, StoreReply::Read(entries)) => self.on_resource_read(now, entries),
            (Step::ReadHead, StoreReply::Read(mut entries)) => {
                assert_eq!(entries.len(), 1, "one head read");
                let head = entries.pop();
                self.on_head_read(now, head);
            }
            (Step::Commit, StoreReply::Commit(outcome)) => self.on_commit(now, outcome),
            (step, reply) => panic!("store answered {step:?} with {reply:?}"),
        }
        self.unfocus();
        self.check_invariants();
    }

    /// The timer armed by the last `Timer` output may have expired.
    pub fn on_timer(&mut self, now: Time) {
        let due: Vec<u64> =
            self.attempts.iter().filter(|(_, attempt)| now >= attempt.deadline).map(|(slot, _)| *slot).collect();
        if due.is_empty() {
            // Idle, or an early or stale wake-up (a store step or a backoff):
            // the fired timer is gone, so arm the earliest deadline again.
            self.arm();
            return;
        }
        for slot in due {
            self.focus(slot);
            match self.attempt().step {
                Step::Backoff => self.begin_attempt(now),
                Step::Commit | Step::CommitRoutes => {
                    self.stats.timeouts += 1;
                    self.finish(now, Err(ClientError::OutcomeUnknown));
                }
                Step::ReadRoutes | Step::ReadResource | Step::ReadHead => {
                    self.stats.timeouts += 1;
                    self.retry_or_give_up(now);
                }
            }
            self.unfocus();
        }
        // The fired timer is gone; an operation that finished here armed no
        // other, so arm the earliest deadline of those still in progress.
        self.arm();
        self.check_invariants();
    }

    /// Takes the operation in `slot` out of `attempts` to handle an input for it.
    fn focus(&mut self, slot: u64) {
        assert!(self.current.is_none(), "one operation handled at a time");
        let attempt = self.attempts.remove(&slot).expect("an operation in progress");
        self.current = Some((slot, attempt));
    }

    /// Puts the operation handled back among those in progress, unless it finished.
    fn unfocus(&mut self) {
        if let Some((slot, attempt)) = self.current.take() {
            self.attempts.insert(slot, attempt);
        }
    }

    /// The operation being handled.
    fn attempt(&self) -> &Attempt {
        &self.current.as_ref().expect("an operation being handled").1
    }

    /// Arms the one timer at the earliest deadline of the operations in progress.
    fn arm(&mut self) {
        let focused = self.current.as_ref().map(|(_, attempt)| attempt.deadline);
        let others = self.attempts.values().map(|attempt| attempt.deadline);
        if let Some(deadline) = focused.into_iter().chain(others).min() {
            self.outputs.push_back(WorkerOutput::Timer { deadline });
        }
    }

    fn start(&mut self, now: Time, request: RequestId, operation: Operation) {
        assert!(self.current.is_none(), "one operation handled at a time");
        let slot = self.next_attempt;
        self.next_attempt += 1;
        self.current = Some((
            slot,
            Attempt {
                request,
                operation,
                attempts: 0,
                step: Step::Backoff,
                tag: None,
                deadline: now,
                resource: Vec::new(),
                phase: None,
                home: None,
                placement: None,
            },
        ));
        self.begin_attempt(now);
    }

    fn begin_attempt(&mut self, now: Time) {
        let attempt = &mut self.current.as_mut().expect("an attempt to begin").1;
        attempt.attempts += 1;
        if attempt.attempts > 1 {
            self.stats.retries += 1;
        }
        // A placement that was to join the resource's commit is decided
        // again on fresh rows; a home whose routing rows committed is kept.
        if attempt.placement.take().is_some() {
            attempt.home = None;
        }
        if self.config.placer.is_some() && attempt.home.is_none() {
            self.route(now);
        } else {
            self.read_resource(now);
        }
    }

    /// The routing step of a sharded worker: place a creation, or resolve
    /// the home shard from known rows, reading the first one missing.
    fn route(&mut self, now: Time) {
        let placer = self.config.placer.as_ref().expect("a sharded worker routes");
        let attempt = &mut self.current.as_mut().expect("an operation being handled").1;
        let keys = placer.keys_to_read(&attempt.operation);
        if !keys.is_empty() {
            self.send(now, BASE, Step::ReadRoutes, StoreRequest::Read { keys });
            return;
        }
        match resolve(&self.routes, &attempt.operation) {
            Ok(home) => {
                attempt.home = Some(home);
                self.read_resource(now);
            }
            Err(key) => self.send(now, BASE, Step::ReadRoutes, StoreRequest::Read { keys: vec![key] }),
        }
    }

    fn on_routes_read(&mut self, now: Time, entries: Vec<ReadEntry>) {
        for entry in &entries {
            self.routes.learn(entry);
        }
        let placer = self.config.placer.as_ref().expect("a sharded worker reads routes");
        let attempt = &mut self.current.as_mut().expect("an operation being handled").1;
        match placer.place(&attempt.operation, &entries) {
            Err(error) => self.finish(now, Err(placement_error(error))),
            Ok(Some(placement)) if placement.shard == BASE || placement.writes.is_empty() => {
                // Home in the base store: the rows join the resource's commit.
                // Or nothing to write (a retried create found its own row).
                attempt.home = Some(placement.shard);
                attempt.placement = Some(placement).filter(|placement| placement.shard == BASE);
                self.read_resource(now);
            }
            Ok(Some(placement)) => {
                let transaction = Transaction { reads: placement.reads.clone(), writes: placement.writes.clone() };
                attempt.placement = Some(placement);
                self.send(now, BASE, Step::CommitRoutes, StoreRequest::Commit(transaction));
            }
            Ok(None) => {
                // Not a creation: a row the base store lacks is a resource
                // that does not exist; otherwise resolve on.
                if let Some(absent) = entries.iter().find(|entry| entry.value.is_none()) {
                    let error = match absent.key {
                        Key::VaultRoute(_) if !targets_secret(&attempt.operation) => ClientError::VaultNotFound,
                        _ => ClientError::SecretNotFound,
                    };
                    self.finish(now, Err(error));
                } else {
                    self.route(now);
                }
            }
        }
    }

    fn on_routes_commit(&mut self, now: Time, outcome: CommitOutcome) {
        match outcome {
            CommitOutcome::Committed { commit, .. } => {
                self.stats.commits += 1;
                let attempt = &mut self.current.as_mut().expect("an operation being handled").1;
                let placement = attempt.placement.take().expect("routing rows committed for a placement");
                attempt.home = Some(placement.shard);
                learn_committed(&mut self.routes, &placement, commit);
                self.read_resource(now);
            }
            CommitOutcome::Conflict { .. } => {
                self.stats.conflicts += 1;
                self.retry_or_give_up(now);
            }
            CommitOutcome::Invalid(invalid) => panic!("worker built an invalid routing transaction: {invalid:?}"),
        }
    }

    /// Step 1: read the resource (and the phase) in its home shard's store.
    fn read_resource(&mut self, now: Time) {
        let attempt = &self.current.as_ref().expect("an operation being handled").1;
        let mut keys = resource_keys(&attempt.operation);
        if self.config.phase_fenced {
            keys.push(PHASE_KEY);
        }
        self.send(now, self.home(), Step::ReadResource, StoreRequest::Read { keys });
    }

    fn on_resource_read(&mut self, now: Time, mut entries: Vec<ReadEntry>) {
        let fenced = self.config.phase_fenced;
        let attempt = &mut self.current.as_mut().expect("an operation being handled").1;
        assert_eq!(entries.len(), resource_keys(&attempt.operation).len() + usize::from(fenced), "one entry per key");
        attempt.phase = if fenced { entries.pop() } else { None };
        attempt.resource = entries;
        let decided = decide(&attempt.operation, &attempt.resource, replicates(attempt.phase.as_ref(), fenced));
        match decided {
            Err(error) => self.finish(now, Err(error)),
            Ok(Decision::Answer(done)) => self.finish(now, Ok(done)),
            Ok(Decision::Mutate(plan)) => {
                let replicates = self.replicates();
                let head_key = plan
                    .mutation
                    .as_ref()
                    .filter(|_| replicates)
                    .and_then(|mutation| self.interceptor().keys_to_read(mutation.record.tenant));
                match head_key {
                    Some(key) => self.send(now, self.home(), Step::ReadHead, StoreRequest::Read { keys: vec![key] }),
                    None => self.commit_plan(now, plan, None),
                }
            }
        }
    }

    fn on_head_read(&mut self, now: Time, head: Option<ReadEntry>) {
        assert_eq!(self.config.mode, InterceptorMode::Sync, "only sync mode reads the head");
        let attempt = &self.current.as_ref().expect("an operation being handled").1;
        // The resource entries have not changed since step 1: the same plan.
        let Ok(Decision::Mutate(plan)) = decide(&attempt.operation, &attempt.resource, self.replicates()) else {
            panic!("a head read without a mutation to commit");
        };
        self.commit_plan(now, plan, head);
    }

    fn commit_plan(&mut self, now: Time, plan: Plan, head: Option<ReadEntry>) {
        let Plan { mut transaction, done, mutation } = plan;
        if let Some(phase) = self.attempt().phase.as_ref() {
            // The fence: a phase change since the read makes this commit conflict.
            transaction.reads.push((phase.key, phase.version));
        }
        if let Some(mutation) = mutation.filter(|_| self.replicates()) {
            self.interceptor().on_mutation(&mut transaction, mutation, head.as_ref());
        }
        if let Some(placement) = self.attempt().placement.clone() {
            // Home in the base store: the routing rows commit with the resource.
            placement.add_to(&mut transaction);
        }
        assert!(!transaction.writes.is_empty(), "a commit writes: {done:?}");
        self.send(now, self.home(), Step::Commit, StoreRequest::Commit(transaction));
        #[cfg(feature = "bugzoo")]
        if self.bugs.is_on(Bug::AcknowledgeBeforeCommit) {
            // Bug: the write is acknowledged as sent; the store's answer, a
            // conflict or nothing at all, is never waited for.
            self.finish(now, Ok(done));
        }
    }

    fn on_commit(&mut self, now: Time, outcome: CommitOutcome) {
        match outcome {
            CommitOutcome::Committed { commit, .. } => {
                self.stats.commits += 1;
                let attempt = &self.current.as_ref().expect("an operation being handled").1;
                if let Some(placement) = &attempt.placement {
                    learn_committed(&mut self.routes, placement, commit);
                }
                let Ok(Decision::Mutate(plan)) = decide(&attempt.operation, &attempt.resource, self.replicates())
                else {
                    panic!("a commit without a plan");
                };
                self.finish(now, Ok(plan.done));
            }
            CommitOutcome::Conflict { .. } => {
                self.stats.conflicts += 1;
                self.retry_or_give_up(now);
            }
            CommitOutcome::Invalid(invalid) => panic!("worker built an invalid transaction: {invalid:?}"),
        }
    }

    fn retry_or_give_up(&mut self, now: Time) {
        let attempt = &mut self.current.as_mut().expect("an operation being handled").1;
        if attempt.attempts >= self.config.commit_attempts_max {
            let attempts = attempt.attempts;
            self.finish(now, Err(ClientError::RetriesExhausted { attempts }));
            return;
        }
        let doublings = attempt.attempts.saturating_sub(1).min(32);
        let delay_ns = self.config.retry_delay_ns.saturating_mul(1 << doublings).min(self.config.retry_delay_max_ns);
        attempt.step = Step::Backoff;
        attempt.tag = None;
        attempt.deadline = now.plus_ns(delay_ns);
        self.arm();
    }

    /// The current operation's home shard: the base until it is resolved
    /// (and always, without shards).
    fn home(&self) -> ShardId {
        self.attempt().home.unwrap_or(BASE)
    }

    fn send(&mut self, now: Time, shard: ShardId, step: Step, request: StoreRequest) {
        let tag = self.next_tag.take_next();
        let deadline = now.plus_ns(self.config.request_timeout_ns);
        let attempt = &mut self.current.as_mut().expect("an operation being handled").1;
        attempt.step = step;
        attempt.tag = Some(tag);
        attempt.deadline = deadline;
        self.outputs.push_back(WorkerOutput::Store { shard, tag, request });
        self.arm();
    }

    /// Answers the operation being handled; the next queued one takes its place.
    fn finish(&mut self, now: Time, result: Result<Done, ClientError>) {
        let (_, attempt) = self.current.take().expect("an attempt to finish");
        self.answer(attempt.request, result);
        if let Some((request, operation)) = self.queue.pop_front() {
            self.start(now, request, operation);
        }
    }

    fn answer(&mut self, request: RequestId, result: Result<Done, ClientError>) {
        self.outputs.push_back(WorkerOutput::Answer { request, result });
    }

    fn interceptor(&self) -> Interceptor {
        Interceptor { mode: self.config.mode }
    }

    /// Whether the current attempt's mutation emits a replication event: always
    /// for an unfenced worker, else by the phase it read.
    fn replicates(&self) -> bool {
        replicates(self.attempt().phase.as_ref(), self.config.phase_fenced)
    }

    /// Asserts the worker's invariants.
    pub fn check_invariants(&self) {
        assert!(self.queue.len() <= self.config.queue_requests_max, "queue over its bound");
        assert!(self.current.is_none(), "no operation is left being handled between calls");
        assert!(self.attempts.len() <= self.config.operations_max, "operations over their bound");
        if self.attempts.len() < self.config.operations_max {
            assert!(self.queue.is_empty(), "a queue while there is room");
        }
        for (slot, attempt) in &self.attempts {
            assert!(*slot < self.next_attempt, "an operation that never started");
            assert!(attempt.attempts >= 1, "an attempt in progress was begun");
            assert!(attempt.attempts <= self.config.commit_attempts_max, "attempts over budget");
            assert_eq!(attempt.tag.is_none(), attempt.step == Step::Backoff, "a tag iff waiting on the store");
            if self.config.placer.is_none() {
                assert_eq!(attempt.home, None, "a worker without shards has no home to resolve");
            }
        }
    }
}

/// The home shard of a non-creating `operation` by the routing rows in
/// `routes`, or the first routing key missing to resolve it.
fn resolve(routes: &RouteTable, operation: &Operation) -> Result<ShardId, Key> {
    let vault = match operation {
        Operation::DeleteVault { vault } => *vault,
        Operation::UpdateSecret { secret, .. }
        | Operation::ScheduleDeletion { secret }
        | Operation::DeleteSecret { secret, .. }
        | Operation::ReadSecret { secret } => routes.vault_of(*secret).ok_or(Key::SecretRoute(*secret))?,
        Operation::CreateVault { .. } | Operation::CreateSecret { .. } => panic!("a creation is placed, not resolved"),
    };
    routes.shard_of(vault).ok_or(Key::VaultRoute(vault))
}

/// Keeps the routing rows a placement committed at `commit` in `routes`.
fn learn_committed(routes: &mut RouteTable, placement: &Placement, commit: CommitSeq) {
    for write in &placement.writes {
        if let Write::Put(key, value) = write {
            routes.learn(&ReadEntry { key: *key, version: commit, value: Some(value.clone()) });
        }
    }
}

/// Whether `operation` acts on a secret (not on a vault).
fn targets_secret(operation: &Operation) -> bool {
    !matches!(operation, Operation::CreateVault { .. } | Operation::DeleteVault { .. })
}

/// A placement refusal as the client sees it.
fn placement_error(error: PlacementError) -> ClientError {
    match error {
        PlacementError::NoReadyShard | PlacementError::ShardNotReady(_) => ClientError::NoReadyShard,
        PlacementError::VaultExists => ClientError::VaultExists,
        PlacementError::VaultNotFound => ClientError::VaultNotFound,
        PlacementError::SecretExists => ClientError::SecretExists,
    }
}

/// What an operation does, given the entries it read.
enum Decision {
    /// Answer without committing (reads, idempotent replays).
    Answer(Done),
    /// Commit this plan.
    Mutate(Plan),
}

/// The keys an operation reads first, in a fixed order per operation.
fn resource_keys(operation: &Operation) -> Vec<Key> {
    match operation {
        Operation::CreateVault { vault, .. } | Operation::DeleteVault { vault } => vec![Key::Vault(*vault)],
        Operation::CreateSecret { secret, vault, token, .. } => {
            vec![Key::Vault(*vault), Key::Secret(*secret), Key::Token(*token)]
        }
        Operation::UpdateSecret { secret, .. }
        | Operation::ScheduleDeletion { secret }
        | Operation::DeleteSecret { secret, .. }
        | Operation::ReadSecret { secret } => vec![Key::Secret(*secret)],
    }
}

/// Decides an operation from what was read. Pure: the same entries give the
/// same decision, which lets the worker recompute the plan after each step.
/// `replicates`: whether the mutation emits a replication event. A secret
/// created without one (a cell not yet migrating) has no host to wait for,
/// so it is created `Active`; otherwise `Creating`, until the activator sees
/// it on every host.
fn decide(operation: &Operation, read: &[ReadEntry], replicates: bool) -> Result<Decision, ClientError> {
    match operation {
        Operation::CreateVault { vault, tenant } => {
            if read[0].value.is_some() {
                return Err(ClientError::VaultExists);
            }
            let record = VaultRecord { tenant: *tenant, deleted: false };
            let writes = vec![Write::Put(Key::Vault(*vault), Value::Vault(record))];
            Ok(Decision::Mutate(plan(&read[..1], writes, Done::Vault(*vault), None)))
        }
        Operation::DeleteVault { vault } => {
            let record = vault_of(&read[0]).ok_or(ClientError::VaultNotFound)?;
            let deleted = VaultRecord { deleted: true, ..record.clone() };
            let writes = vec![Write::Put(Key::Vault(*vault), Value::Vault(deleted))];
            Ok(Decision::Mutate(plan(&read[..1], writes, Done::Vault(*vault), None)))
        }
        Operation::CreateSecret { secret, vault, content, token } => {
            decide_create(*secret, *vault, content, *token, read, replicates)
        }
        Operation::UpdateSecret { secret, content, expected } => {
            let current = live_secret(&read[0], *expected)?;
            if !matches!(current.lifecycle, Lifecycle::Creating | Lifecycle::Active) {
                return Err(ClientError::InvalidState(current.lifecycle));
            }
            let record =
                SecretRecord { version: current.version.next(), content: Some(content.clone()), ..current.clone() };
            Ok(Decision::Mutate(plan_secret(&read[0], *secret, record)))
        }
        Operation::ScheduleDeletion { secret } => {
            let current = live_secret(&read[0], None)?;
            if current.lifecycle == Lifecycle::PendingDeletion {
                return Err(ClientError::InvalidState(current.lifecycle));
            }
            let record = SecretRecord {
                version: current.version.next(),
                lifecycle: Lifecycle::PendingDeletion,
                ..current.clone()
            };
            Ok(Decision::Mutate(plan_secret(&read[0], *secret, record)))
        }
        Operation::DeleteSecret { secret, expected } => {
            let current = live_secret(&read[0], *expected)?;
            let record = SecretRecord {
                version: current.version.next(),
                lifecycle: Lifecycle::Deleted,
                content: None,
                ..current.clone()
            };
            Ok(Decision::Mutate(plan_secret(&read[0], *secret, record)))
        }
        Operation::ReadSecret { .. } => {
            let current = live_secret(&read[0], None)?;
            if current.lifecycle == Lifecycle::PendingDeletion {
                // Reads are refused while the deletion is pending; the content is kept.
                return Err(ClientError::InvalidState(current.lifecycle));
            }
            Ok(Decision::Answer(Done::Read(current.clone())))
        }
    }
}

/// Whether a mutation emits a replication event, given the phase entry an
/// attempt read (`None` if it read none) and whether the worker is fenced.
fn replicates(phase: Option<&ReadEntry>, fenced: bool) -> bool {
    match phase {
        None => !fenced,
        Some(entry) => PhaseConfig::from_entries(std::slice::from_ref(entry)).phase.replicates(),
    }
}

fn decide_create(
    secret: SecretId,
    vault: VaultId,
    content: &Content,
    token: IdempotencyToken,
    read: &[ReadEntry],
    replicates: bool,
) -> Result<Decision, ClientError> {
    let [vault_entry, secret_entry, token_entry] = read else {
        panic!("a create reads vault, secret and token");
    };
    if let Some(Value::Token(used)) = &token_entry.value {
        if used.secret == secret {
            let done = Done::Secret { secret, version: used.version };
            return Ok(Decision::Answer(done));
        }
        // The token was spent on another secret: this is a new request
        // reusing a token, which must not create anything.
        return Err(ClientError::SecretExists);
    }
    let vault_record = vault_of(vault_entry).ok_or(ClientError::VaultNotFound)?;
    if secret_entry.value.is_some() {
        return Err(ClientError::SecretExists);
    }
    let record = SecretRecord {
        tenant: vault_record.tenant,
        vault,
        version: Version(1),
        lifecycle: if replicates { Lifecycle::Creating } else { Lifecycle::Active },
        content: Some(content.clone()),
    };
    let token_record = TokenRecord { secret, version: record.version };
    let mut planned = plan_secret(secret_entry, secret, record);
    planned.transaction.reads.push((vault_entry.key, vault_entry.version));
    planned.transaction.reads.push((token_entry.key, token_entry.version));
    planned.transaction.writes.push(Write::Put(Key::Token(token), Value::Token(token_record)));
    Ok(Decision::Mutate(planned))
}

fn plan(read: &[ReadEntry], writes: Vec<Write>, done: Done, mutation: Option<Mutation>) -> Plan {
    let reads = read.iter().map(|entry| (entry.key, entry.version)).collect();
    Plan { transaction: Transaction { reads, writes }, done, mutation }
}

fn plan_secret(read: &ReadEntry, secret: SecretId, record: SecretRecord) -> Plan {
    record.check_invariants();
    let done = Done::Secret { secret, version: record.version };
    let mutation = Mutation { secret, record: record.clone() };
    let writes = vec![Write::Put(Key::Secret(secret), Value::Secret(record))];
    plan(std::slice::from_ref(read), writes, done, Some(mutation))
}

fn vault_of(entry: &ReadEntry) -> Option<&VaultRecord> {
    match &entry.value {
        Some(Value::Vault(record)) if !record.deleted => Some(record),
        Some(Value::Vault(_)) | None => None,
        Some(other) => panic!("vault key holds {other:?}"),
    }
}

/// The secret read, if it exists and is not deleted, and matches `expected`.
fn live_secret(entry: &ReadEntry, expected: Option<Version>) -> Result<&SecretRecord, ClientError> {
    let record = match &entry.value {
        Some(Value::Secret(record)) if record.lifecycle != Lifecycle::Deleted => record,
        Some(Value::Secret(_)) | None => return Err(ClientError::SecretNotFound),
        Some(other) => panic!("secret key holds {other:?}"),
    };
    match expected {
        Some(expected) if expected != record.version => {
            Err(ClientError::VersionMismatch { expected, actual: record.version })
        }
        _ => Ok(record),
    }
}

#[cfg(test)]
mod tests;
