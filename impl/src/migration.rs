//! Live migration's phases, their configuration in the remote store, and the
//! operator that moves them.
//!
//! The phase lives in the store ([`PHASE_KEY`]) so every node learns it the
//! same way, each after its own delay (a fleet mid-rollout runs several
//! phases at once). `t1`, the last commit made without replication, lives
//! beside it ([`SYNC_SINCE_KEY`]): it is the version of the commit that
//! switched the phase from `Off` to `Sync`, written by the operator's next
//! round, and it is what the backfiller skips by.
//!
//! The [`Operator`] drives the stored phase toward a target, one phase per
//! commit. The target moves forward on the scenario's schedule (each entry is
//! the earliest time of a move, not a promise) and back one phase on
//! [`Operator::on_rollback`]. A forward move has a precondition read in the
//! same transaction: entering `Verify` needs the backfill bookmark finished,
//! entering `Switchover` needs the verify bookmark finished; until then the
//! operator waits and reads again. A rollback to `Off` also clears `t1` and
//! both bookmarks, so a later `Sync` starts a fresh migration; other
//! rollbacks keep the bookmarks, and the walks resume where they were.
//!
//! Every round reads the phase keys and both bookmarks and commits with those
//! versions, so a round that raced another operator (a restarted incarnation)
//! conflicts and reads again. The operator keeps no durable state of its own.
//!
//! Call protocol: [`Operator::on_timer`], [`Operator::on_store_reply`],
//! [`Operator::on_rollback`]; drain [`Operator::poll_output`].

use std::collections::VecDeque;

use crate::store::{BookmarkId, CommitOutcome, ConfigId, Key, ReadEntry, StoreReply, StoreRequest, Transaction};
use crate::store::{Value, Write};
use crate::types::{CommitSeq, RequestTag, Time};

/// Where the phase is stored.
pub const PHASE_KEY: Key = Key::Config(ConfigId(1));
/// Where `t1` is stored.
pub const SYNC_SINCE_KEY: Key = Key::Config(ConfigId(2));
/// The backfiller's bookmark.
pub const BACKFILL_BOOKMARK: BookmarkId = BookmarkId(1);
/// The verifier's bookmark.
pub const VERIFY_BOOKMARK: BookmarkId = BookmarkId(2);
/// A bookmark's value once its walk is finished.
pub const BOOKMARK_DONE: u64 = crate::walk::DONE;

/// A phase of the migration, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Reads go to the remote store; mutations emit no events.
    Off,
    /// Every mutation emits a replication event; hosts apply, serve nothing.
    Sync,
    /// The backfiller replicates what was written before `t1`.
    Backfill,
    /// The verifier compares and repairs.
    Verify,
    /// Hosts serve reads locally, falling back to the remote store.
    Switchover,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 5] = [Phase::Off, Phase::Sync, Phase::Backfill, Phase::Verify, Phase::Switchover];

    /// The phase's stored code.
    pub fn code(self) -> u64 {
        self as u64
    }

    /// The phase of a stored code.
    pub fn from_code(code: u64) -> Option<Phase> {
        Phase::ALL.into_iter().find(|phase| phase.code() == code)
    }

    /// The phase after this one, if any.
    pub fn next(self) -> Option<Phase> {
        Phase::from_code(self.code() + 1)
    }

    /// The phase before this one, if any.
    pub fn previous(self) -> Option<Phase> {
        self.code().checked_sub(1).and_then(Phase::from_code)
    }

    /// Whether mutations emit replication events in this phase.
    pub fn replicates(self) -> bool {
        self >= Phase::Sync
    }

    /// Whether hosts serve reads from their local store in this phase.
    pub fn serves_locally(self) -> bool {
        self == Phase::Switchover
    }
}

/// The migration's state as the store holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhaseConfig {
    /// The phase (`Off` when never set).
    pub phase: Phase,
    /// `t1`, once recorded.
    pub since: Option<CommitSeq>,
}

impl PhaseConfig {
    /// The keys to read for [`PhaseConfig::from_entries`].
    pub const KEYS: [Key; 2] = [PHASE_KEY, SYNC_SINCE_KEY];

    /// The keys to read for [`PhaseConfig::from_entries`], as a request wants them.
    pub fn keys() -> Vec<Key> {
        PhaseConfig::KEYS.to_vec()
    }

    /// Whether `key` is one of the configuration's keys.
    pub fn holds(key: &Key) -> bool {
        PhaseConfig::KEYS.contains(key)
    }

    /// The configuration in `entries` (a read of [`PhaseConfig::keys`], in any order).
    pub fn from_entries(entries: &[ReadEntry]) -> PhaseConfig {
        let value =
            |key: Key| match entries.iter().find(|entry| entry.key == key).and_then(|entry| entry.value.as_ref()) {
                None => None,
                Some(Value::Config(value)) => Some(*value),
                Some(other) => panic!("config key {key:?} holds {other:?}"),
            };
        let phase = value(PHASE_KEY)
            .map_or(Phase::Off, |code| Phase::from_code(code).unwrap_or_else(|| panic!("unknown phase code {code}")));
        PhaseConfig { phase, since: value(SYNC_SINCE_KEY).map(CommitSeq) }
    }
}

/// The operator's plan.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperatorConfig {
    /// Forward moves: from each time on, the target is at least that phase.
    pub schedule: Vec<(Time, Phase)>,
    /// How long to wait for a store reply.
    pub request_timeout_ns: u64,
    /// How long to wait before reading again when a precondition does not
    /// hold yet or a round conflicted.
    pub retry_delay_ns: u64,
}

/// What an operator asks its caller to do or tells it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OperatorOutput {
    /// Send `request` to the store.
    Store {
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The request.
        request: StoreRequest,
    },
    /// Call [`Operator::on_timer`] at or after `deadline`.
    Timer {
        /// When to wake the operator.
        deadline: Time,
    },
    /// The store now holds `config` (after a commit of this operator, or as
    /// first read by this incarnation).
    Committed {
        /// The configuration committed.
        config: PhaseConfig,
    },
}

/// The operator's wait.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    /// Nothing outstanding; a round starts at `at` (`None`: when the target moves).
    Idle { at: Option<Time> },
    /// A read of the config and bookmarks is outstanding.
    Read { tag: RequestTag, abandon_at: Time },
    /// A commit is outstanding; `config` is what it writes.
    Commit { tag: RequestTag, abandon_at: Time, config: PhaseConfig },
}

/// The migration operator. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Operator {
    config: OperatorConfig,
    /// Index of the first schedule entry not yet applied to `target`.
    next_entry: usize,
    target: Phase,
    /// The configuration as last read or committed.
    known: Option<PhaseConfig>,
    step: Step,
    next_tag: RequestTag,
    outputs: VecDeque<OperatorOutput>,
}

impl Operator {
    /// An operator (a fresh incarnation) whose first round is due at `now`.
    /// Its target starts at `Off` plus every schedule entry already due.
    pub fn new(config: OperatorConfig, now: Time) -> Operator {
        assert!(config.request_timeout_ns > 0 && config.retry_delay_ns > 0, "zero waits spin");
        assert!(config.schedule.windows(2).all(|pair| pair[0] <= pair[1]), "the schedule is in time order");
        let mut operator = Operator {
            config,
            next_entry: 0,
            target: Phase::Off,
            known: None,
            step: Step::Idle { at: Some(now) },
            next_tag: RequestTag::default(),
            outputs: VecDeque::new(),
        };
        operator.arm();
        operator
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<OperatorOutput> {
        self.outputs.pop_front()
    }

    /// The phase the operator is moving the store to.
    pub fn target(&self) -> Phase {
        self.target
    }

    /// The configuration as last read or committed by this incarnation.
    pub fn known(&self) -> Option<PhaseConfig> {
        self.known
    }

    /// Rolls the target back one phase from the stored phase (or from the
    /// target, if that is lower), at once.
    pub fn on_rollback(&mut self, now: Time) {
        let from = self.known.map_or(self.target, |known| known.phase.min(self.target));
        self.target = from.previous().unwrap_or(Phase::Off);
        // Entries already due stay applied: a rollback is not undone by them.
        self.apply_schedule(now);
        if let Step::Idle { .. } = self.step {
            self.read(now);
        }
        self.arm();
        self.check_invariants();
    }

    /// The timer may have expired: apply due schedule entries, abandon a
    /// timed-out request, or start a round that is due.
    pub fn on_timer(&mut self, now: Time) {
        let target = self.target;
        self.apply_schedule(now);
        match &self.step {
            Step::Read { abandon_at, .. } | Step::Commit { abandon_at, .. } if now < *abandon_at => {}
            // A timed-out commit may still land; the next round reads what did.
            Step::Read { .. } | Step::Commit { .. } => self.read(now),
            Step::Idle { at } if at.is_some_and(|at| now >= at) || self.target != target => self.read(now),
            Step::Idle { .. } => {}
        }
        self.arm();
        self.check_invariants();
    }

    /// The store answered the request tagged `tag`.
    pub fn on_store_reply(&mut self, now: Time, tag: RequestTag, reply: StoreReply) {
        match (&self.step, reply) {
            (Step::Read { tag: expected, .. }, StoreReply::Read(entries)) if *expected == tag => {
                self.on_read(now, &entries);
            }
            (Step::Commit { tag: expected, config, .. }, StoreReply::Commit(outcome)) if *expected == tag => {
                let config = *config;
                match outcome {
                    CommitOutcome::Committed { .. } => {
                        self.known = Some(config);
                        self.outputs.push_back(OperatorOutput::Committed { config });
                        // Read again at once: the next move (or t1) may be due.
                        self.read(now);
                    }
                    CommitOutcome::Conflict { .. } => self.wait(now),
                    CommitOutcome::Invalid(invalid) => panic!("operator built an invalid transaction: {invalid:?}"),
                }
            }
            _ => return, // A late reply to an abandoned request.
        }
        self.arm();
        self.check_invariants();
    }

    /// Arms the one timer: the earlier of the step's deadline and the next
    /// schedule entry. The caller keeps only the last timer it was given.
    fn arm(&mut self) {
        let step = match &self.step {
            Step::Read { abandon_at, .. } | Step::Commit { abandon_at, .. } => Some(*abandon_at),
            Step::Idle { at } => *at,
        };
        let schedule = self.config.schedule.get(self.next_entry).map(|(at, _)| *at);
        let deadline = match (step, schedule) {
            (Some(step), Some(schedule)) => Some(step.min(schedule)),
            (step, schedule) => step.or(schedule),
        };
        if let Some(deadline) = deadline {
            self.outputs.push_back(OperatorOutput::Timer { deadline });
        }
    }

    fn apply_schedule(&mut self, now: Time) {
        while let Some((at, phase)) = self.config.schedule.get(self.next_entry) {
            if *at > now {
                break;
            }
            self.target = self.target.max(*phase);
            self.next_entry += 1;
        }
    }

    fn read(&mut self, now: Time) {
        let mut keys = PhaseConfig::keys();
        keys.extend([Key::Bookmark(BACKFILL_BOOKMARK), Key::Bookmark(VERIFY_BOOKMARK)]);
        let tag = self.next_tag.take_next();
        let abandon_at = now.plus_ns(self.config.request_timeout_ns);
        self.step = Step::Read { tag, abandon_at };
        self.outputs.push_back(OperatorOutput::Store { tag, request: StoreRequest::Read { keys } });
    }

    fn wait(&mut self, now: Time) {
        self.step = Step::Idle { at: Some(now.plus_ns(self.config.retry_delay_ns)) };
    }

    fn on_read(&mut self, now: Time, entries: &[ReadEntry]) {
        let stored = PhaseConfig::from_entries(entries);
        if self.known.is_none() {
            self.outputs.push_back(OperatorOutput::Committed { config: stored });
        }
        self.known = Some(stored);
        let entry = |key: Key| entries.iter().find(|entry| entry.key == key).expect("every key read is answered");
        let done =
            |bookmark: BookmarkId| matches!(entry(Key::Bookmark(bookmark)).value, Some(Value::Bookmark(BOOKMARK_DONE)));
        let mut transaction =
            Transaction { reads: entries.iter().map(|entry| (entry.key, entry.version)).collect(), writes: Vec::new() };
        let next = if stored.phase.replicates() && stored.since.is_none() {
            // t1 is the commit that switched replication on: the phase entry's version.
            let since = entry(PHASE_KEY).version;
            transaction.writes.push(Write::Put(SYNC_SINCE_KEY, Value::Config(since.0)));
            PhaseConfig { since: Some(since), ..stored }
        } else if self.target > stored.phase {
            let phase = stored.phase.next().expect("a phase below the target has a next");
            let ready = match phase {
                Phase::Verify => done(BACKFILL_BOOKMARK),
                Phase::Switchover => done(VERIFY_BOOKMARK),
                Phase::Off | Phase::Sync | Phase::Backfill => true,
            };
            if !ready {
                self.wait(now);
                return;
            }
            transaction.writes.push(Write::Put(PHASE_KEY, Value::Config(phase.code())));
            PhaseConfig { phase, ..stored }
        } else if self.target < stored.phase {
            let phase = stored.phase.previous().expect("a phase above the target has a previous");
            transaction.writes.push(Write::Put(PHASE_KEY, Value::Config(phase.code())));
            if phase == Phase::Off {
                // A fresh migration later: a new t1 and both walks from the start.
                for key in [SYNC_SINCE_KEY, Key::Bookmark(BACKFILL_BOOKMARK), Key::Bookmark(VERIFY_BOOKMARK)] {
                    if entry(key).value.is_some() {
                        transaction.writes.push(Write::Delete(key));
                    }
                }
                PhaseConfig { phase, since: None }
            } else {
                PhaseConfig { phase, ..stored }
            }
        } else {
            // At the target: nothing to do until the schedule or a rollback moves it.
            self.step = Step::Idle { at: None };
            return;
        };
        let tag = self.next_tag.take_next();
        let abandon_at = now.plus_ns(self.config.request_timeout_ns);
        self.step = Step::Commit { tag, abandon_at, config: next };
        self.outputs.push_back(OperatorOutput::Store { tag, request: StoreRequest::Commit(transaction) });
    }

    /// Asserts the operator's invariants.
    pub fn check_invariants(&self) {
        assert!(self.next_entry <= self.config.schedule.len(), "schedule index past its end");
        if let Step::Commit { config, .. } = &self.step {
            let known = self.known.expect("a commit follows a read");
            assert!(
                config.phase.code().abs_diff(known.phase.code()) <= 1,
                "one phase per commit: {known:?} to {config:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests;
