//! Adding a shard live: the operator that registers a new shard and marks it
//! `Ready` only once its cell serves and its registry row has reached every
//! base-cell host, after which placement may choose it (RTE-3).
//!
//! The steps, in the base store:
//! 1. read the shard's registry row ([`Key::Shard`]);
//! 2. if absent, commit it `Provisioning`, reading it absent so that a racing
//!    incarnation conflicts. The commit logs the row in the routing partition;
//!    its commit number is the row's version, `registered`;
//! 3. ask the caller to build the shard's store and cell
//!    ([`ShardAdditionOutput::ProvisionCell`]; each incarnation asks once, the
//!    caller makes it idempotent), then wait for two reports: the cell serves
//!    ([`ShardAddition::on_cell_ready`]), and every configured base-cell host
//!    has applied the routing partition through `registered`
//!    ([`ShardAddition::on_routes_applied`] with the host's
//!    [`crate::routes::RouteTable::applied_commit`]), so every host knows the
//!    cell before any route can point at it;
//! 4. commit `Ready`, reading the row at `registered`; a racing writer
//!    conflicts and the operator reads again;
//! 5. report [`ShardAdditionOutput::Admitted`]: placements may choose the
//!    shard from the `Ready` commit on.
//!
//! Until step 4 commits, placement never picks the shard (it takes only
//! `Ready` shards) and no route names it, so no request can reach a cell that
//! is not serving; requests for other shards are untouched throughout.
//!
//! The operator keeps no durable state: a row found `Provisioning` resumes at
//! step 3 with the row's version as `registered`, a row found `Ready` is done.
//! A request that times out, or a commit that conflicts, is followed by a
//! fresh read after `retry_delay_ns` (a timed-out commit may have landed).
//!
//! Call protocol: [`ShardAddition::on_timer`], [`ShardAddition::on_store_reply`],
//! [`ShardAddition::on_cell_ready`], [`ShardAddition::on_routes_applied`];
//! drain [`ShardAddition::poll_output`]. A `Timer` output replaces any earlier
//! one; replies whose tag is not outstanding are ignored.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[cfg(feature = "bugzoo")]
use crate::bugzoo::Bug;
use crate::bugzoo::Bugs;
use crate::store::{CommitOutcome, Key, ReadEntry, StoreReply, StoreRequest, Transaction, Value, Write};
use crate::types::{CommitSeq, HostId, RequestTag, ShardId, ShardRecord, ShardState, Time};

/// What to add and whom to wait for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardAdditionConfig {
    /// The shard to add.
    pub shard: ShardId,
    /// The base cell's hosts: each must have the shard's registry row before it is `Ready`.
    pub base_hosts: BTreeSet<HostId>,
    /// How long to wait for a store reply.
    pub request_timeout_ns: u64,
    /// How long to wait before reading again after a conflict or a timeout.
    pub retry_delay_ns: u64,
}

/// What the operator asks its caller to do or tells it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShardAdditionOutput {
    /// Send `request` to the base store; hand its reply back with `tag`.
    Store {
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The request.
        request: StoreRequest,
    },
    /// Call [`ShardAddition::on_timer`] at or after `deadline`.
    Timer {
        /// When to wake the operator.
        deadline: Time,
    },
    /// Build the shard's store and cell (if not built yet), then call
    /// [`ShardAddition::on_cell_ready`] once the cell serves.
    ProvisionCell {
        /// The shard.
        shard: ShardId,
    },
    /// The shard is `Ready`: placements may choose it.
    Admitted {
        /// The shard.
        shard: ShardId,
    },
}

/// The operator's wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Step {
    /// Reading the registry row.
    Read { tag: RequestTag, abandon_at: Time },
    /// Committing the row `Provisioning`.
    Register { tag: RequestTag, abandon_at: Time },
    /// Waiting for the cell and the base hosts; the row is `Provisioning` at `registered`.
    Await { registered: CommitSeq, record: ShardRecord },
    /// Committing the row `Ready`.
    MarkReady { tag: RequestTag, abandon_at: Time },
    /// Reading again at `at`.
    Backoff { at: Time },
    /// The shard is `Ready`.
    Done,
}

/// The shard-addition operator. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardAddition {
    config: ShardAdditionConfig,
    step: Step,
    cell_ready: bool,
    /// Each base host's last reported routing commit.
    applied: BTreeMap<HostId, CommitSeq>,
    next_tag: RequestTag,
    outputs: VecDeque<ShardAdditionOutput>,
    bugs: Bugs,
}

impl ShardAddition {
    /// An operator (a fresh incarnation) that reads the registry at `now`.
    pub fn new(config: ShardAdditionConfig, now: Time) -> ShardAddition {
        assert!(config.request_timeout_ns > 0 && config.retry_delay_ns > 0, "zero waits spin");
        assert!(!config.base_hosts.is_empty(), "a base cell has hosts to wait for");
        assert_ne!(config.shard, ShardId(0), "the base shard is not added live");
        let mut operator = ShardAddition {
            config,
            step: Step::Done,
            cell_ready: false,
            applied: BTreeMap::new(),
            next_tag: RequestTag::default(),
            outputs: VecDeque::new(),
            bugs: Bugs::none(),
        };
        operator.read(now);
        operator.arm();
        operator
    }

    /// The same operator running bug-zoo variants (none outside the bug zoo).
    pub fn with_bugs(mut self, bugs: Bugs) -> ShardAddition {
        self.bugs = bugs;
        self
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<ShardAdditionOutput> {
        self.outputs.pop_front()
    }

    /// Whether the shard is `Ready` (as committed or read by this incarnation).
    pub fn is_admitted(&self) -> bool {
        self.step == Step::Done
    }

    /// The shard's cell serves.
    pub fn on_cell_ready(&mut self, now: Time) {
        self.cell_ready = true;
        if self.mark_ready_if_gated(now) {
            self.arm();
        }
        self.check_invariants();
    }

    /// Base-cell host `host` has applied the routing partition through the
    /// commit `applied`. Reports from hosts outside the configuration are ignored.
    pub fn on_routes_applied(&mut self, now: Time, host: HostId, applied: CommitSeq) {
        if self.config.base_hosts.contains(&host) {
            let held = self.applied.entry(host).or_default();
            *held = (*held).max(applied);
            if self.mark_ready_if_gated(now) {
                self.arm();
            }
        }
        self.check_invariants();
    }

    /// The timer may have expired: a request overdue or a backoff due reads again.
    pub fn on_timer(&mut self, now: Time) {
        match self.step {
            Step::Read { abandon_at, .. } | Step::Register { abandon_at, .. } | Step::MarkReady { abandon_at, .. }
                if now >= abandon_at =>
            {
                self.read(now); // A timed-out commit may have landed: the read shows it.
            }
            Step::Backoff { at } if now >= at => self.read(now),
            _ => {}
        }
        self.arm();
        self.check_invariants();
    }

    /// The base store answered the request tagged `tag`.
    pub fn on_store_reply(&mut self, now: Time, tag: RequestTag, reply: StoreReply) {
        match (self.step, reply) {
            (Step::Read { tag: expected, .. }, StoreReply::Read(entries)) if expected == tag => {
                let [entry] = &entries[..] else { panic!("one row read, {} entries answered", entries.len()) };
                self.on_read(now, entry);
            }
            (Step::Register { tag: expected, .. }, StoreReply::Commit(outcome)) if expected == tag => match outcome {
                CommitOutcome::Committed { commit, .. } => {
                    let record = ShardRecord { state: ShardState::Provisioning, vaults: 0 };
                    self.provision(now, commit, record);
                }
                CommitOutcome::Conflict { .. } => self.back_off(now),
                CommitOutcome::Invalid(invalid) => panic!("shard addition built an invalid transaction: {invalid:?}"),
            },
            (Step::MarkReady { tag: expected, .. }, StoreReply::Commit(outcome)) if expected == tag => match outcome {
                CommitOutcome::Committed { .. } => self.done(),
                CommitOutcome::Conflict { .. } => self.back_off(now),
                CommitOutcome::Invalid(invalid) => panic!("shard addition built an invalid transaction: {invalid:?}"),
            },
            _ => return, // A late reply to an abandoned request.
        }
        self.arm();
        self.check_invariants();
    }

    fn on_read(&mut self, now: Time, entry: &ReadEntry) {
        let key = Key::Shard(self.config.shard);
        assert_eq!(entry.key, key, "another key answered");
        match &entry.value {
            None => {
                let row = ShardRecord { state: ShardState::Provisioning, vaults: 0 };
                let transaction =
                    Transaction { reads: vec![(key, entry.version)], writes: vec![Write::Put(key, Value::Shard(row))] };
                let (tag, abandon_at) = self.send(now, StoreRequest::Commit(transaction));
                self.step = Step::Register { tag, abandon_at };
            }
            Some(Value::Shard(record)) if record.state == ShardState::Provisioning => {
                self.provision(now, entry.version, *record);
            }
            Some(Value::Shard(_)) => self.done(),
            Some(other) => panic!("registry key holds {other:?}"),
        }
    }

    /// The row is `Provisioning` at `registered`: ask for the cell and wait.
    fn provision(&mut self, now: Time, registered: CommitSeq, record: ShardRecord) {
        assert!(registered > CommitSeq(0), "a registered row has a version");
        self.step = Step::Await { registered, record };
        self.outputs.push_back(ShardAdditionOutput::ProvisionCell { shard: self.config.shard });
        self.mark_ready_if_gated(now); // The caller arms the timer after this reply.
    }

    /// Commits `Ready` if the cell serves and every base host has the row;
    /// returns whether it did.
    fn mark_ready_if_gated(&mut self, now: Time) -> bool {
        let Step::Await { registered, record } = self.step else { return false };
        let has_row = |host: &HostId| self.applied.get(host).is_some_and(|applied| *applied >= registered);
        let propagated = self.config.base_hosts.iter().all(has_row);
        #[cfg(feature = "bugzoo")]
        let propagated =
            propagated || (self.bugs.is_on(Bug::ReadyBeforeEveryHost) && self.config.base_hosts.iter().any(has_row));
        if !(self.cell_ready && propagated) {
            return false;
        }
        let key = Key::Shard(self.config.shard);
        let ready = ShardRecord { state: ShardState::Ready, ..record };
        let transaction =
            Transaction { reads: vec![(key, registered)], writes: vec![Write::Put(key, Value::Shard(ready))] };
        let (tag, abandon_at) = self.send(now, StoreRequest::Commit(transaction));
        self.step = Step::MarkReady { tag, abandon_at };
        true
    }

    fn done(&mut self) {
        self.step = Step::Done;
        self.outputs.push_back(ShardAdditionOutput::Admitted { shard: self.config.shard });
    }

    fn read(&mut self, now: Time) {
        let request = StoreRequest::Read { keys: vec![Key::Shard(self.config.shard)] };
        let (tag, abandon_at) = self.send(now, request);
        self.step = Step::Read { tag, abandon_at };
    }

    fn back_off(&mut self, now: Time) {
        self.step = Step::Backoff { at: now.plus_ns(self.config.retry_delay_ns) };
    }

    fn send(&mut self, now: Time, request: StoreRequest) -> (RequestTag, Time) {
        let tag = self.next_tag.take_next();
        self.outputs.push_back(ShardAdditionOutput::Store { tag, request });
        (tag, now.plus_ns(self.config.request_timeout_ns))
    }

    /// Arms the one timer at the current step's deadline, if it has one.
    fn arm(&mut self) {
        let deadline = match self.step {
            Step::Read { abandon_at, .. } | Step::Register { abandon_at, .. } | Step::MarkReady { abandon_at, .. } => {
                abandon_at
            }
            Step::Backoff { at } => at,
            Step::Await { .. } | Step::Done => return,
        };
        self.outputs.push_back(ShardAdditionOutput::Timer { deadline });
    }

    /// Asserts the operator's invariants.
    pub fn check_invariants(&self) {
        for host in self.applied.keys() {
            assert!(self.config.base_hosts.contains(host), "a report kept from {host}, not a base host");
        }
        match self.step {
            Step::Read { tag, .. } | Step::Register { tag, .. } | Step::MarkReady { tag, .. } => {
                assert!(tag < self.next_tag, "waiting on a tag never issued");
            }
            Step::Await { registered, record } => {
                assert!(registered > CommitSeq(0), "waiting on an unregistered row");
                assert_eq!(record.state, ShardState::Provisioning, "waiting on a row that is not provisioning");
            }
            Step::Backoff { .. } | Step::Done => {}
        }
    }
}

#[cfg(test)]
mod tests;
