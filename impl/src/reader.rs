//! A data-plane host's read path during a live migration: it learns the
//! migration phase from the store and serves each client read through an
//! [`Accessor`] in the mode that phase implies.
//!
//! The phase reaches each host on its own schedule: the reader reads
//! [`PhaseConfig::keys`] every `phase_poll_ns` (a host with a longer interval
//! learns later, so a fleet mid-rollout runs several phases at once). Until it
//! has learned a phase it reads from the remote store, as in `Off`. The modes:
//!
//! | phase | mode |
//! |---|---|
//! | `Off`, `Sync`, `Backfill` | remote |
//! | `Verify` | remote, with the shadow compare |
//! | `Switchover` | hybrid: local, falling back to the remote store |
//!
//! A rollback learned later than it was stored is safe for the data served:
//! the store's phases are all as fresh as `Switchover` at worst, and a host
//! that still serves hybrid falls back on anything not fully replicated.
//!
//! The reader multiplexes the accessor's reads and its own phase polls over
//! one timer and one tag space (the poll's tags start at [`POLL_TAGS`]).
//!
//! Call protocol: [`Reader::on_read`], [`Reader::on_store_reply`],
//! [`Reader::on_timer`]; drain [`Reader::poll_output`]. After a crash, build
//! a new one: it learns the phase again.

use std::collections::VecDeque;

use crate::accessor::{Accessor, AccessorOutput, ReadError, ReadMode, Source};
#[cfg(feature = "bugzoo")]
use crate::bugzoo::Bug;
use crate::bugzoo::Bugs;
use crate::host::LocalRead;
use crate::migration::{Phase, PhaseConfig};
use crate::store::{StoreReply, StoreRequest};
use crate::types::{RequestTag, SecretId, SecretRecord, Time};
use crate::worker::RequestId;

/// The first tag of the reader's phase polls; the accessor's tags count up
/// from zero, far below.
pub const POLL_TAGS: RequestTag = RequestTag(1 << 62);

/// Knobs of a reader.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReaderConfig {
    /// Time between phase polls.
    pub phase_poll_ns: u64,
    /// How long to wait for a store reply (reads and polls alike).
    pub request_timeout_ns: u64,
}

/// What a reader asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReaderOutput {
    /// Send `request` to the store.
    Store {
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The request.
        request: StoreRequest,
    },
    /// Call [`Reader::on_timer`] at or after `deadline`.
    Timer {
        /// When to wake the reader.
        deadline: Time,
    },
    /// Answer the client's read.
    Answer {
        /// The request answered.
        request: RequestId,
        /// The answer.
        result: Result<LocalRead, ReadError>,
        /// Where it came from.
        source: Source,
    },
    /// Repair the host's damaged entry of `secret` with the remote `record`
    /// (see [`AccessorOutput::Repair`]).
    Repair {
        /// The secret.
        secret: SecretId,
        /// The remote record.
        record: SecretRecord,
    },
    /// The reader now serves by `phase`.
    Learned {
        /// The phase.
        phase: Phase,
    },
}

/// A host's read path. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reader {
    config: ReaderConfig,
    accessor: Accessor,
    phase: Option<Phase>,
    /// The phase poll in flight and when it is abandoned.
    poll: Option<(RequestTag, Time)>,
    next_poll: Time,
    next_tag: RequestTag,
    /// The earliest deadline the accessor asked for, if any.
    accessor_deadline: Option<Time>,
    /// The deadline last armed.
    armed: Option<Time>,
    outputs: VecDeque<ReaderOutput>,
    bugs: Bugs,
}

impl Reader {
    /// A reader that polls the phase at once.
    pub fn new(config: ReaderConfig, now: Time) -> Reader {
        assert!(config.phase_poll_ns > 0, "a zero poll interval never waits");
        let accessor = Accessor::new(ReadMode::Remote { shadow: false }, config.request_timeout_ns);
        let mut reader = Reader {
            config,
            accessor,
            phase: None,
            poll: None,
            next_poll: now,
            next_tag: POLL_TAGS,
            accessor_deadline: None,
            armed: None,
            outputs: VecDeque::new(),
            bugs: Bugs::none(),
        };
        reader.arm();
        reader
    }

    /// The same reader with bug-zoo variants switched on.
    pub fn with_bugs(mut self, bugs: Bugs) -> Reader {
        self.bugs = bugs;
        self
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<ReaderOutput> {
        self.outputs.pop_front()
    }

    /// The phase learned, if any.
    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// The accessor (its mode and counters).
    pub fn accessor(&self) -> &Accessor {
        &self.accessor
    }

    /// A client reads `secret`; `local` is what the local store holds now.
    pub fn on_read(&mut self, now: Time, request: RequestId, secret: SecretId, local: LocalRead) {
        self.accessor.on_read(now, request, secret, local);
        self.drain_accessor();
        self.arm();
    }

    /// The store answered the request tagged `tag`; `local` is what the local
    /// store holds now of the secret a read asked for (ignored for a poll).
    pub fn on_store_reply(&mut self, now: Time, tag: RequestTag, reply: StoreReply, local: LocalRead) {
        if tag >= POLL_TAGS {
            self.on_poll_reply(now, tag, reply);
        } else {
            self.accessor.on_store_reply(now, tag, reply, local);
            self.drain_accessor();
        }
        self.arm();
    }

    /// The timer fired: poll the phase if due, answer overdue reads.
    pub fn on_timer(&mut self, now: Time) {
        self.armed = None;
        if let Some((_, abandon_at)) = self.poll {
            if now >= abandon_at {
                self.poll = None; // Lost or late: poll again now.
                self.next_poll = now;
            }
        }
        if self.poll.is_none() && now >= self.next_poll {
            let tag = self.next_tag.take_next();
            self.poll = Some((tag, now.plus_ns(self.config.request_timeout_ns)));
            self.outputs
                .push_back(ReaderOutput::Store { tag, request: StoreRequest::Read { keys: PhaseConfig::keys() } });
        }
        if self.accessor_deadline.is_some_and(|deadline| now >= deadline) {
            self.accessor_deadline = None;
            self.accessor.on_timer(now);
            self.drain_accessor();
        }
        self.arm();
    }

    fn on_poll_reply(&mut self, now: Time, tag: RequestTag, reply: StoreReply) {
        if self.poll.map(|(pending, _)| pending) != Some(tag) {
            return; // A late reply to an abandoned poll.
        }
        self.poll = None;
        self.next_poll = now.plus_ns(self.config.phase_poll_ns);
        let StoreReply::Read(entries) = reply else { panic!("a phase poll answered with {reply:?}") };
        let phase = PhaseConfig::from_entries(&entries).phase;
        if self.phase != Some(phase) {
            self.phase = Some(phase);
            self.accessor.set_mode(self.mode(phase));
            self.outputs.push_back(ReaderOutput::Learned { phase });
        }
    }

    /// The read mode of `phase`.
    fn mode(&self, phase: Phase) -> ReadMode {
        match phase {
            Phase::Off | Phase::Sync | Phase::Backfill => ReadMode::Remote { shadow: false },
            Phase::Verify => ReadMode::Remote { shadow: true },
            #[cfg(feature = "bugzoo")]
            Phase::Switchover if self.bugs.is_on(Bug::SwitchoverWithoutFallback) => {
                // Bug: the local store alone; a miss or a `Creating` entry is answered as is.
                ReadMode::Local
            }
            Phase::Switchover => ReadMode::Hybrid,
        }
    }

    fn drain_accessor(&mut self) {
        while let Some(output) = self.accessor.poll_output() {
            match output {
                AccessorOutput::Store { tag, request } => {
                    assert!(tag < POLL_TAGS, "the accessor's tags reached the poll's");
                    self.outputs.push_back(ReaderOutput::Store { tag, request });
                }
                AccessorOutput::Timer { deadline } => self.accessor_deadline = Some(deadline),
                AccessorOutput::Answer { request, result, source } => {
                    self.outputs.push_back(ReaderOutput::Answer { request, result, source });
                }
                AccessorOutput::Repair { secret, record } => {
                    self.outputs.push_back(ReaderOutput::Repair { secret, record });
                }
            }
        }
    }

    /// Arms the one timer at the earliest of the next poll, the poll's
    /// abandon time and the accessor's deadline, if that changed.
    fn arm(&mut self) {
        let poll = match self.poll {
            Some((_, abandon_at)) => abandon_at,
            None => self.next_poll,
        };
        let deadline = self.accessor_deadline.map_or(poll, |deadline| deadline.min(poll));
        if self.armed != Some(deadline) {
            self.armed = Some(deadline);
            self.outputs.push_back(ReaderOutput::Timer { deadline });
        }
    }

    /// Asserts the reader's invariants.
    pub fn check_invariants(&self) {
        if let Some((tag, _)) = self.poll {
            assert!(tag >= POLL_TAGS, "a poll tag in the accessor's range");
        }
        assert!(self.armed.is_some(), "a reader always has its timer armed");
    }
}

#[cfg(test)]
mod tests;
