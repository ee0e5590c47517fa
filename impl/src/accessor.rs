//! The data plane's read path during a live migration: where a host answers a
//! client's read from.
//!
//! The [`Accessor`] of a host serves each read in its current [`ReadMode`]:
//!
//! * [`ReadMode::Local`]: from the local store only (a replicated cell
//!   outside any migration; a miss answers `Missing`);
//! * [`ReadMode::Remote`]: from the remote store (phases `Off` to `Verify`: the
//!   local store fills but does not serve). With `shadow` (phase `Verify`),
//!   each remote answer is also compared with the local copy, version-aware
//!   ([`crate::verify::compare`]), and the outcome counted: the live shadow
//!   verifier; it never changes the answer;
//! * [`ReadMode::Hybrid`] (phase `Switchover`): from the local store when it
//!   holds the secret past `Creating`; a local miss or a secret not yet
//!   `Active` falls back to the remote store, and the fallback is counted by
//!   its reason. So a secret `Active` at the remote store is never answered
//!   `Missing` while the store answers (MIG-6). A local entry whose bytes no
//!   longer match their checksum (a damaged disk) falls back too, so damage
//!   the verifier has not repaired (or that came after its one pass) is never
//!   served, and the remote record goes back to the host as a read repair.
//!
//! A remote read that gets no reply within `request_timeout_ns` is answered
//! [`ReadError::Unavailable`]. The caller hands in the local store's answer
//! with each read (and again with each remote reply, for the shadow compare),
//! so the accessor holds no copy of local data.
//!
//! Call protocol: [`Accessor::on_read`], [`Accessor::on_store_reply`],
//! [`Accessor::on_timer`], [`Accessor::set_mode`]; drain
//! [`Accessor::poll_output`].

use std::collections::{BTreeMap, VecDeque};

use crate::host::{DigestEntry, LocalRead};
use crate::store::{Key, StoreReply, StoreRequest, Value};
use crate::types::{Checksum, Lifecycle, RequestTag, SecretId, SecretRecord, Time};
use crate::verify::{compare, Comparison};
use crate::worker::RequestId;

/// Where reads are served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReadMode {
    /// The local store only.
    Local,
    /// The remote store; with `shadow`, compared with the local copy.
    Remote {
        /// Whether each answer is compared with the local copy.
        shadow: bool,
    },
    /// The local store, falling back to the remote store.
    Hybrid,
}

/// Why a hybrid read went to the remote store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fallback {
    /// The local store never applied the secret.
    Missing,
    /// The local store holds it `Creating`.
    NotActive,
    /// The local entry's bytes no longer match their checksum (a damaged disk).
    Damaged,
}

/// A read that could not be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReadError {
    /// The remote store did not answer in time.
    Unavailable,
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The local store.
    Local,
    /// The remote store, as the mode says.
    Remote,
    /// The remote store, after a hybrid read fell back.
    Fallback(Fallback),
}

/// What an accessor asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccessorOutput {
    /// Send `request` to the store.
    Store {
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The request.
        request: StoreRequest,
    },
    /// Call [`Accessor::on_timer`] at or after `deadline`.
    Timer {
        /// When to wake the accessor.
        deadline: Time,
    },
    /// Answer the client's read.
    Answer {
        /// The client's request.
        request: RequestId,
        /// What it reads.
        result: Result<LocalRead, ReadError>,
        /// Where it came from.
        source: Source,
    },
    /// Replace the local entry of `secret`, found damaged, by `record`, the
    /// remote store's (a read repair; the host's repair takes it only at the
    /// same version, so it never moves the host back).
    Repair {
        /// The secret.
        secret: SecretId,
        /// The remote record.
        record: SecretRecord,
    },
}

/// Counters for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccessorStats {
    /// Reads answered from the local store.
    pub local: u64,
    /// Reads sent to the remote store by the mode.
    pub remote: u64,
    /// Hybrid reads that fell back because the secret was missing locally.
    pub fallback_missing: u64,
    /// Hybrid reads that fell back because the secret was not yet `Active` locally.
    pub fallback_not_active: u64,
    /// Hybrid reads that fell back because the local entry was damaged.
    pub fallback_damaged: u64,
    /// Repairs asked of the host after such a fallback.
    pub read_repairs: u64,
    /// Remote reads answered `Unavailable`.
    pub timeouts: u64,
    /// Shadow comparisons that matched.
    pub shadow_matches: u64,
    /// Shadow comparisons where the local copy was behind (not a discrepancy).
    pub shadow_lagging: u64,
    /// Shadow comparisons at one version with different checksums.
    pub shadow_mismatches: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Pending {
    request: RequestId,
    secret: SecretId,
    abandon_at: Time,
    source: Source,
    shadow: bool,
}

/// A host's read path. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Accessor {
    mode: ReadMode,
    request_timeout_ns: u64,
    in_flight: BTreeMap<RequestTag, Pending>,
    next_tag: RequestTag,
    outputs: VecDeque<AccessorOutput>,
    stats: AccessorStats,
}

impl Accessor {
    /// An accessor serving in `mode`.
    pub fn new(mode: ReadMode, request_timeout_ns: u64) -> Accessor {
        assert!(request_timeout_ns > 0, "a zero timeout never waits");
        Accessor {
            mode,
            request_timeout_ns,
            in_flight: BTreeMap::new(),
            next_tag: RequestTag::default(),
            outputs: VecDeque::new(),
            stats: AccessorStats::default(),
        }
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<AccessorOutput> {
        self.outputs.pop_front()
    }

    /// Counters for reports.
    pub fn stats(&self) -> AccessorStats {
        self.stats
    }

    /// The current mode.
    pub fn mode(&self) -> ReadMode {
        self.mode
    }

    /// A phase change reached this host: later reads use `mode` (reads in
    /// flight finish as they started).
    pub fn set_mode(&mut self, mode: ReadMode) {
        self.mode = mode;
    }

    /// A client reads `secret`; `local` is what the local store holds now.
    pub fn on_read(&mut self, now: Time, request: RequestId, secret: SecretId, local: LocalRead) {
        match (self.mode, &local) {
            (ReadMode::Local, _) => self.answer_local(request, local),
            (ReadMode::Remote { shadow }, _) => {
                self.stats.remote += 1;
                self.ask(now, Pending { request, secret, abandon_at: now, source: Source::Remote, shadow });
            }
            (ReadMode::Hybrid, LocalRead::Missing) => {
                self.stats.fallback_missing += 1;
                let source = Source::Fallback(Fallback::Missing);
                self.ask(now, Pending { request, secret, abandon_at: now, source, shadow: false });
            }
            (ReadMode::Hybrid, LocalRead::Found(record)) if record.lifecycle == Lifecycle::Creating => {
                self.stats.fallback_not_active += 1;
                let source = Source::Fallback(Fallback::NotActive);
                self.ask(now, Pending { request, secret, abandon_at: now, source, shadow: false });
            }
            (ReadMode::Hybrid, LocalRead::Found(record))
                if record.content.as_ref().is_some_and(|content| !content.is_intact()) =>
            {
                self.stats.fallback_damaged += 1;
                let source = Source::Fallback(Fallback::Damaged);
                self.ask(now, Pending { request, secret, abandon_at: now, source, shadow: false });
            }
            (ReadMode::Hybrid, LocalRead::Found(_)) => self.answer_local(request, local),
        }
        self.arm();
    }

    /// The store answered the read tagged `tag`; `local` is what the local
    /// store holds of that secret now (for the shadow compare).
    pub fn on_store_reply(&mut self, _now: Time, tag: RequestTag, reply: StoreReply, local: LocalRead) {
        let Some(pending) = self.in_flight.remove(&tag) else { return }; // Late: already answered Unavailable.
        let StoreReply::Read(entries) = reply else { panic!("a read answered with {reply:?}") };
        let [entry] = &entries[..] else { panic!("one key read, {} entries answered", entries.len()) };
        assert_eq!(entry.key, Key::Secret(pending.secret), "another key answered");
        let remote = match &entry.value {
            None => None,
            Some(Value::Secret(record)) => Some(record.clone()),
            Some(other) => panic!("secret key holds {other:?}"),
        };
        if pending.shadow {
            if let Some(remote) = &remote {
                self.shadow(remote, &local);
            }
        }
        if let (Source::Fallback(Fallback::Damaged), Some(record)) = (pending.source, &remote) {
            self.stats.read_repairs += 1;
            self.outputs.push_back(AccessorOutput::Repair { secret: pending.secret, record: record.clone() });
        }
        let read = remote.map_or(LocalRead::Missing, LocalRead::Found);
        self.outputs.push_back(AccessorOutput::Answer {
            request: pending.request,
            result: Ok(read),
            source: pending.source,
        });
        self.arm();
    }

    /// The timer may have expired: answer reads whose store reply is overdue.
    pub fn on_timer(&mut self, now: Time) {
        let overdue: Vec<RequestTag> =
            self.in_flight.iter().filter(|(_, pending)| pending.abandon_at <= now).map(|(tag, _)| *tag).collect();
        for tag in overdue {
            let pending = self.in_flight.remove(&tag).expect("just listed");
            self.stats.timeouts += 1;
            let answer = AccessorOutput::Answer {
                request: pending.request,
                result: Err(ReadError::Unavailable),
                source: pending.source,
            };
            self.outputs.push_back(answer);
        }
        self.arm();
    }

    fn answer_local(&mut self, request: RequestId, local: LocalRead) {
        self.stats.local += 1;
        self.outputs.push_back(AccessorOutput::Answer { request, result: Ok(local), source: Source::Local });
    }

    fn ask(&mut self, now: Time, mut pending: Pending) {
        let tag = self.next_tag.take_next();
        pending.abandon_at = now.plus_ns(self.request_timeout_ns);
        self.in_flight.insert(tag, pending);
        let request = StoreRequest::Read { keys: vec![Key::Secret(pending.secret)] };
        self.outputs.push_back(AccessorOutput::Store { tag, request });
    }

    fn shadow(&mut self, remote: &SecretRecord, local: &LocalRead) {
        let entry = match local {
            LocalRead::Missing => None,
            LocalRead::Found(record) => Some(DigestEntry {
                version: record.version,
                checksum: record.content.as_ref().map(|content| Checksum::of(content.bytes())),
            }),
        };
        match compare(remote, entry) {
            Comparison::Match => self.stats.shadow_matches += 1,
            Comparison::Lag => self.stats.shadow_lagging += 1,
            Comparison::Mismatch => self.stats.shadow_mismatches += 1,
        }
    }

    /// Arms the one timer at the earliest overdue time of the reads in flight.
    fn arm(&mut self) {
        if let Some(deadline) = self.in_flight.values().map(|pending| pending.abandon_at).min() {
            self.outputs.push_back(AccessorOutput::Timer { deadline });
        }
    }
}

#[cfg(test)]
mod tests;
