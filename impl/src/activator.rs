//! The activator of one cell: a secret becomes `Active` only when every live
//! host of the cell has applied it.
//!
//! The activator reads the replication log like a host does (its own cursors,
//! volatile). For each event that leaves a secret `Creating` it remembers the
//! secret, the version and the event's position. Hosts report their cursors
//! ([`Activator::on_host_applied`]); the caller reports liveness
//! ([`Activator::on_host_liveness`]). Once every live host's cursor in that
//! partition has reached the event, the activator reads the secret and, if it
//! is still `Creating` at that version, commits it `Active` at the next version
//! through the interceptor (so activation replicates like any mutation). If the
//! secret moved on, a later event re-arms the wait.
//!
//! With no live host, nothing is activated: "applied on every live host" must
//! mean applied somewhere.
//!
//! Call protocol: [`Activator::on_timer`], [`Activator::on_store_reply`],
//! [`Activator::on_host_applied`], [`Activator::on_host_liveness`]; drain
//! [`Activator::poll_output`]. After a crash, build a new one: it re-reads the
//! log from the start and waits for fresh host reports.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[cfg(feature = "bugzoo")]
use crate::bugzoo::Bug;
use crate::bugzoo::Bugs;
use crate::interceptor::{Interceptor, InterceptorMode};
use crate::store::{CommitOutcome, Key, ReadEntry, StoreReply, StoreRequest, Transaction, Value, Write};
use crate::types::{
    HostId, Lifecycle, LogEvent, Mutation, RequestTag, SecretId, SecretRecord, Seq, TenantId, Time, Version,
};

/// Limits and knobs of an activator.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActivatorConfig {
    /// The hosts of the cell, all live at start.
    pub hosts: Vec<HostId>,
    /// Interceptor mode of the activation commit.
    pub mode: InterceptorMode,
    /// Time between rounds when idle.
    pub poll_interval_ns: u64,
    /// Most events asked per partition in one poll.
    pub poll_events_max: usize,
    /// Most secrets waiting for activation; a poll asks for no more events than
    /// there is room for, and the log is not read further while full.
    pub waiting_secrets_max: usize,
    /// How long to wait for a store reply.
    pub request_timeout_ns: u64,
}

impl ActivatorConfig {
    /// A configuration for a cell with `hosts` and moderate limits.
    pub fn new(hosts: Vec<HostId>, mode: InterceptorMode) -> ActivatorConfig {
        ActivatorConfig {
            hosts,
            mode,
            poll_interval_ns: 10_000_000,
            poll_events_max: 64,
            waiting_secrets_max: 1024,
            request_timeout_ns: 200_000_000,
        }
    }
}

/// What an activator asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActivatorOutput {
    /// Send `request` to the store of the cell.
    Store {
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The request.
        request: StoreRequest,
    },
    /// Call [`Activator::on_timer`] at or after `deadline`.
    Timer {
        /// When to wake the activator.
        deadline: Time,
    },
}

/// A secret waiting until every live host has applied its `Creating` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Waiting {
    tenant: TenantId,
    version: Version,
    seq: Seq,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Step {
    Idle,
    /// Polling the log for at most `limit` events per partition.
    Poll {
        limit: usize,
    },
    /// Reading the secret (and the head, in sync mode) before activating.
    Read(SecretId),
    Commit(SecretId),
}

/// The activator of one cell. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Activator {
    config: ActivatorConfig,
    /// How far the activator has read each partition.
    cursors: BTreeMap<TenantId, Seq>,
    /// The last reported cursors of each host.
    host_cursors: BTreeMap<HostId, BTreeMap<TenantId, Seq>>,
    live: BTreeSet<HostId>,
    waiting: BTreeMap<SecretId, Waiting>,
    step: Step,
    in_flight: Option<(RequestTag, Time)>,
    next_round: Time,
    next_tag: RequestTag,
    outputs: VecDeque<ActivatorOutput>,
    activated: u64,
    bugs: Bugs,
}

impl Activator {
    /// An activator whose first round is due at `now`.
    pub fn new(config: ActivatorConfig, now: Time) -> Activator {
        assert!(config.poll_events_max > 0, "a poll asks for at least one event");
        assert!(config.waiting_secrets_max > 0, "room for one waiting secret");
        let live = config.hosts.iter().copied().collect();
        let mut activator = Activator {
            config,
            cursors: BTreeMap::new(),
            host_cursors: BTreeMap::new(),
            live,
            waiting: BTreeMap::new(),
            step: Step::Idle,
            in_flight: None,
            next_round: now,
            next_tag: RequestTag::default(),
            outputs: VecDeque::new(),
            activated: 0,
            bugs: Bugs::none(),
        };
        activator.outputs.push_back(ActivatorOutput::Timer { deadline: now });
        activator
    }

    /// The same activator running bug-zoo variants (none outside the bug zoo).
    pub fn with_bugs(mut self, bugs: Bugs) -> Activator {
        self.bugs = bugs;
        self
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<ActivatorOutput> {
        self.outputs.pop_front()
    }

    /// How many secrets this activator has activated.
    pub fn activated(&self) -> u64 {
        self.activated
    }

    /// A host reports how far it has applied each partition.
    pub fn on_host_applied(&mut self, host: HostId, cursors: &[(TenantId, Seq)]) {
        if !self.config.hosts.contains(&host) {
            return; // Not a host of this cell.
        }
        let known = self.host_cursors.entry(host).or_default();
        for (tenant, seq) in cursors {
            // Reports may arrive out of order: keep the furthest.
            let cursor = known.entry(*tenant).or_default();
            *cursor = (*cursor).max(*seq);
        }
    }

    /// The caller learned that `host` is up (`true`) or down (`false`).
    pub fn on_host_liveness(&mut self, host: HostId, live: bool) {
        assert!(self.config.hosts.contains(&host), "liveness of a host of another cell");
        if live {
            self.live.insert(host);
        } else {
            self.live.remove(&host);
        }
    }

    /// The timer may have expired: do the next piece of work if one is due.
    pub fn on_timer(&mut self, now: Time) {
        if let Some((_, abandon_at)) = self.in_flight {
            if now < abandon_at {
                // Woken early: the fired timer is gone, so arm the abandon deadline again.
                self.outputs.push_back(ActivatorOutput::Timer { deadline: abandon_at });
                return;
            }
            self.in_flight = None;
            self.step = Step::Idle;
        }
        if now < self.next_round {
            self.outputs.push_back(ActivatorOutput::Timer { deadline: self.next_round });
            return;
        }
        self.round(now);
        self.check_invariants();
    }

    /// The store answered the request tagged `tag`.
    pub fn on_store_reply(&mut self, now: Time, tag: RequestTag, reply: StoreReply) {
        let Some((expected, _)) = self.in_flight else { return };
        if expected != tag {
            return; // A late reply to an abandoned request.
        }
        self.in_flight = None;
        let step = std::mem::replace(&mut self.step, Step::Idle);
        match (step, reply) {
            (Step::Poll { limit }, StoreReply::Poll(events)) => {
                self.on_events(&events);
                self.round_after_poll(now, limit, &events);
            }
            (Step::Read(secret), StoreReply::Read(entries)) => self.on_secret_read(now, secret, &entries),
            (Step::Commit(secret), StoreReply::Commit(outcome)) => {
                if matches!(outcome, CommitOutcome::Committed { .. }) {
                    self.activated += 1;
                    self.waiting.remove(&secret);
                }
                // On a conflict the secret stays waiting and is retried.
                self.round(now);
            }
            (step, reply) => panic!("store answered {step:?} with {reply:?}"),
        }
        self.check_invariants();
    }

    /// Learns `Creating` versions from log events, in order within each
    /// partition and taking the partitions in turns, so that when room runs out
    /// one partition's creates do not crowd out another's.
    fn on_events(&mut self, events: &[LogEvent]) {
        let mut partitions: BTreeMap<TenantId, Vec<&LogEvent>> = BTreeMap::new();
        for event in events {
            partitions.entry(event.tenant()).or_default().push(event);
        }
        let longest = partitions.values().map(Vec::len).max().unwrap_or(0);
        for index in 0..longest {
            for partition in partitions.values() {
                if let Some(event) = partition.get(index) {
                    self.on_event(event);
                }
            }
        }
        assert!(self.waiting.len() <= self.config.waiting_secrets_max, "waiting over its bound after a poll");
    }

    /// Reads one event if it is the next of its partition. With
    /// `waiting_secrets_max` secrets waiting, an event that would add one more is
    /// left unread: the cursor stays before it, so the rest of its partition is
    /// skipped as a gap, and a poll after an activation reads it again.
    fn on_event(&mut self, event: &LogEvent) {
        let tenant = event.tenant();
        let cursor = self.cursors.entry(tenant).or_default();
        if event.seq != cursor.next() {
            return; // A duplicate or a gap: the next poll re-reads it.
        }
        let secret = event.mutation.secret;
        let record = &event.mutation.record;
        if record.lifecycle == Lifecycle::Creating {
            let full = self.waiting.len() >= self.config.waiting_secrets_max;
            if full && !self.waiting.contains_key(&secret) {
                return; // No room to remember it: leave it unread.
            }
            let waiting = Waiting { tenant, version: record.version, seq: event.seq };
            self.waiting.insert(secret, waiting);
        } else {
            self.waiting.remove(&secret);
        }
        *cursor = event.seq;
    }

    fn round_after_poll(&mut self, now: Time, limit: usize, events: &[LogEvent]) {
        let full = events.len() >= limit;
        if full && self.waiting.len() < self.config.waiting_secrets_max {
            self.next_round = now; // Behind: keep reading.
        }
        self.round(now);
    }

    /// Activates the first ready secret, else polls if due, else sleeps.
    fn round(&mut self, now: Time) {
        assert!(self.in_flight.is_none(), "one request at a time");
        if let Some(secret) = self.first_ready() {
            let waiting = self.waiting[&secret];
            let mut keys = vec![Key::Secret(secret)];
            keys.extend(self.interceptor().keys_to_read(waiting.tenant));
            self.send(now, Step::Read(secret), StoreRequest::Read { keys });
            return;
        }
        if now >= self.next_round && self.waiting.len() < self.config.waiting_secrets_max {
            self.next_round = now.plus_ns(self.config.poll_interval_ns);
            // Every event read may add a waiting secret: ask for no more than fit.
            let room = self.config.waiting_secrets_max - self.waiting.len();
            let limit = self.config.poll_events_max.min(room);
            assert!(limit > 0, "a poll asks for at least one event");
            let request = StoreRequest::Poll {
                cursors: self.cursors.iter().map(|(tenant, seq)| (*tenant, *seq)).collect(),
                limit_per_partition: limit,
            };
            self.send(now, Step::Poll { limit }, request);
            return;
        }
        self.next_round = self.next_round.max(now.plus_ns(self.config.poll_interval_ns));
        self.outputs.push_back(ActivatorOutput::Timer { deadline: self.next_round });
    }

    /// The first waiting secret that every live host has applied.
    fn first_ready(&self) -> Option<SecretId> {
        #[cfg(feature = "bugzoo")]
        if self.bugs.is_on(Bug::ActivateOnCommit) {
            // Bug: committed is taken for replicated; the hosts are not asked.
            return self.waiting.keys().next().copied();
        }
        if self.live.is_empty() {
            return None;
        }
        self.waiting.iter().find_map(|(secret, waiting)| {
            let everywhere = self.live.iter().all(|host| {
                let cursor = self
                    .host_cursors
                    .get(host)
                    .and_then(|cursors| cursors.get(&waiting.tenant))
                    .copied()
                    .unwrap_or(Seq::ZERO);
                cursor >= waiting.seq
            });
            everywhere.then_some(*secret)
        })
    }

    fn on_secret_read(&mut self, now: Time, secret: SecretId, entries: &[ReadEntry]) {
        let waiting = self.waiting[&secret];
        let current = match &entries[0].value {
            Some(Value::Secret(record)) => record,
            other => panic!("a secret the log mentions is missing from the store: {other:?}"),
        };
        if current.version != waiting.version || current.lifecycle != Lifecycle::Creating {
            // Moved on since the event: a later event says what to wait for.
            self.waiting.remove(&secret);
            self.round(now);
            return;
        }
        let record = SecretRecord { version: current.version.next(), lifecycle: Lifecycle::Active, ..current.clone() };
        let mutation = Mutation { secret, record: record.clone() };
        let mut transaction = Transaction {
            reads: vec![(entries[0].key, entries[0].version)],
            writes: vec![Write::Put(Key::Secret(secret), Value::Secret(record))],
        };
        self.interceptor().on_mutation(&mut transaction, mutation, entries.get(1));
        self.send(now, Step::Commit(secret), StoreRequest::Commit(transaction));
    }

    fn send(&mut self, now: Time, step: Step, request: StoreRequest) {
        let tag = self.next_tag.take_next();
        let abandon_at = now.plus_ns(self.config.request_timeout_ns);
        self.step = step;
        self.in_flight = Some((tag, abandon_at));
        self.outputs.push_back(ActivatorOutput::Store { tag, request });
        self.outputs.push_back(ActivatorOutput::Timer { deadline: abandon_at });
    }

    fn interceptor(&self) -> Interceptor {
        Interceptor { mode: self.config.mode }
    }

    /// Asserts the activator's invariants.
    pub fn check_invariants(&self) {
        assert_eq!(
            self.in_flight.is_some(),
            self.step != Step::Idle,
            "a request is outstanding exactly when a step is in progress"
        );
        assert!(self.live.iter().all(|host| self.config.hosts.contains(host)), "live host of another cell");
        assert!(self.waiting.len() <= self.config.waiting_secrets_max, "waiting over its bound");
        for (secret, waiting) in &self.waiting {
            let cursor = self.cursors.get(&waiting.tenant).copied().unwrap_or(Seq::ZERO);
            assert!(waiting.seq <= cursor, "{secret} waits on an event not yet read");
        }
    }
}

#[cfg(test)]
mod tests;
