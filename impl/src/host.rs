//! The data-plane host: a local store fed by polling the replication log.
//!
//! The host's durable state is a [`LocalStore`]: one versioned record per
//! secret (deletes are versioned tombstones) and, per log partition, the cursor
//! up to which events are applied. Data and cursors change together in one
//! [`LocalStore::apply`] call, which is the atomic unit a real host would write
//! in one local transaction, so a crash never leaves a cursor ahead of its data.
//!
//! Apply is idempotent and forward-only: an event at or below the partition's
//! cursor is a duplicate and ignored; an event whose version is not newer than
//! the local record changes nothing but the cursor. Only [`LocalStore::repair`]
//! (a verifier's repair of a damaged entry) replaces a record at its own
//! version, and never with another version. Events that arrive ahead of
//! a gap wait in a bounded buffer (`pending_events_max`) until the gap fills.
//!
//! A base-cell host of a sharded service ([`HostConfig::replicate_routes`])
//! also holds the routing rows ([`crate::routes::RouteTable`]) in its durable
//! state, fed by the same poll loop: each round polls the secrets' partitions
//! and then the base store's routing partition, and applies routing events
//! under the same discipline (in order, the cursor moved with the row,
//! forward-only by version), so a restarted host keeps the routes it had.
//!
//! Call protocol: [`Host::on_timer`] (poll loop), [`Host::on_store_reply`];
//! drain [`Host::poll_output`]. After a crash, build a new host with
//! [`Host::recover`] from the durable [`LocalStore`]; everything else is volatile.

use std::collections::{BTreeMap, VecDeque};

#[cfg(feature = "bugzoo")]
use crate::bugzoo::Bug;
use crate::bugzoo::Bugs;
use crate::routes::RouteTable;
use crate::store::{StoreReply, StoreRequest};
#[cfg(feature = "bugzoo")]
use crate::types::Lifecycle;
use crate::types::{
    Checksum, HostId, LogEvent, RequestTag, RouteEvent, SecretId, SecretRecord, Seq, TenantId, Time, Version,
};

/// Limits and knobs of a host.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostConfig {
    /// Time between polls when caught up.
    pub poll_interval_ns: u64,
    /// Most events asked per partition in one poll.
    pub poll_events_max: usize,
    /// Most out-of-order events buffered ahead of a gap.
    pub pending_events_max: usize,
    /// How long to wait for a poll reply before polling again.
    pub request_timeout_ns: u64,
    /// Whether each poll round also reads the base store's routing partition
    /// into the local route table (a base-cell host of a sharded service).
    pub replicate_routes: bool,
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            poll_interval_ns: 10_000_000,
            poll_events_max: 64,
            pending_events_max: 256,
            request_timeout_ns: 200_000_000,
            replicate_routes: false,
        }
    }
}

/// What a host asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostOutput {
    /// Send `request` to the store of the host's cell.
    Store {
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The request (a log poll).
        request: StoreRequest,
    },
    /// Call [`Host::on_timer`] at or after `deadline`.
    Timer {
        /// When to wake the host.
        deadline: Time,
    },
    /// Tell the cell's activator how far this host has applied each partition.
    Applied {
        /// The host.
        host: HostId,
        /// Its cursor per partition.
        cursors: Vec<(TenantId, Seq)>,
    },
}

/// The result of a local read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LocalRead {
    /// The host has never applied anything for this secret.
    Missing,
    /// The host holds the secret at this version.
    Found(SecretRecord),
}

/// The effect of applying one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApplyEffect {
    /// The record moved forward to the event's version.
    Applied,
    /// The local record was already at the event's version or newer; only the
    /// cursor moved.
    Stale,
}

/// What a host holds of one secret, for a verifier to compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DigestEntry {
    /// The local version.
    pub version: Version,
    /// The checksum of the local content's bytes as they are now (not the one
    /// stored beside them); `None` for a tombstone.
    pub checksum: Option<Checksum>,
}

/// A host's durable state: records and cursors, changed together.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalStore {
    records: BTreeMap<SecretId, SecretRecord>,
    cursors: BTreeMap<TenantId, Seq>,
    /// The routing rows and the routing partition's cursor (empty unless the
    /// host replicates routes).
    routes: RouteTable,
}

impl LocalStore {
    /// An empty local store.
    pub fn new() -> LocalStore {
        LocalStore::default()
    }

    /// The routing rows applied from the routing partition.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Applies the next event of the routing partition (see
    /// [`RouteTable::apply`]).
    pub fn apply_route(&mut self, event: &RouteEvent) -> ApplyEffect {
        self.routes.apply(event)
    }

    /// Applies the next event of its partition: the record moves forward if
    /// the event is newer, and the cursor moves to the event, in one step.
    pub fn apply(&mut self, event: &LogEvent) -> ApplyEffect {
        let tenant = event.tenant();
        let cursor = self.cursor(tenant);
        assert_eq!(event.seq, cursor.next(), "apply out of order in partition {tenant}");
        event.mutation.record.check_invariants();
        let local_version = self.version(event.mutation.secret);
        let effect = if event.mutation.record.version > local_version {
            self.records.insert(event.mutation.secret, event.mutation.record.clone());
            ApplyEffect::Applied
        } else {
            ApplyEffect::Stale
        };
        self.cursors.insert(tenant, event.seq);
        assert!(self.version(event.mutation.secret) >= event.mutation.record.version);
        effect
    }

    /// The cursor of `tenant`'s partition.
    pub fn cursor(&self, tenant: TenantId) -> Seq {
        self.cursors.get(&tenant).copied().unwrap_or(Seq::ZERO)
    }

    /// Every partition's cursor, in partition order.
    pub fn cursors(&self) -> Vec<(TenantId, Seq)> {
        self.cursors.iter().map(|(tenant, seq)| (*tenant, *seq)).collect()
    }

    /// The local version of `secret` (`Version::ABSENT` if never applied).
    pub fn version(&self, secret: SecretId) -> Version {
        self.records.get(&secret).map_or(Version::ABSENT, |record| record.version)
    }

    /// The local record of `secret`, tombstones included.
    pub fn record(&self, secret: SecretId) -> Option<&SecretRecord> {
        self.records.get(&secret)
    }

    /// Every local record in secret order.
    pub fn records(&self) -> impl Iterator<Item = (SecretId, &SecretRecord)> {
        self.records.iter().map(|(secret, record)| (*secret, record))
    }

    /// A verifier's repair: replaces the local record of `secret` by `record`
    /// if both are at the same version and differ (a damaged entry). Returns
    /// whether it replaced anything. A record of another version is ignored:
    /// replication, not repair, moves versions.
    pub fn repair(&mut self, secret: SecretId, record: &SecretRecord) -> bool {
        record.check_invariants();
        match self.records.get_mut(&secret) {
            Some(local) if local.version == record.version && local != record => {
                *local = record.clone();
                true
            }
            _ => false,
        }
    }

    /// A storage fault: flips a bit of the stored content of `secret`,
    /// keeping its version and stored checksum. Returns whether there was a
    /// non-empty content to damage.
    pub fn flip_bit(&mut self, secret: SecretId) -> bool {
        let Some(content) = self.records.get_mut(&secret).and_then(|record| record.content.as_mut()) else {
            return false;
        };
        let flipped = content.with_flipped_bit();
        let changed = flipped != *content;
        *content = flipped;
        changed
    }

    /// What this store holds of each of `secrets` (`None`: never applied), in order.
    pub fn digest(&self, secrets: &[SecretId]) -> Vec<(SecretId, Option<DigestEntry>)> {
        let entry = |record: &SecretRecord| DigestEntry {
            version: record.version,
            checksum: record.content.as_ref().map(|content| Checksum::of(content.bytes())),
        };
        secrets.iter().map(|secret| (*secret, self.records.get(secret).map(entry))).collect()
    }

    /// Bug `corrupting-apply`: flips a bit of the stored content of `secret`,
    /// keeping its checksum.
    #[cfg(feature = "bugzoo")]
    fn corrupt(&mut self, secret: SecretId) {
        assert!(self.records.contains_key(&secret), "a record just applied");
        self.flip_bit(secret);
    }

    /// Bug `unversioned-apply`: the event's record replaces the local one
    /// whatever their versions, and the cursor moves to the furthest event seen.
    #[cfg(feature = "bugzoo")]
    fn overwrite(&mut self, event: &LogEvent) {
        event.mutation.record.check_invariants();
        self.records.insert(event.mutation.secret, event.mutation.record.clone());
        let cursor = self.cursors.entry(event.tenant()).or_default();
        *cursor = (*cursor).max(event.seq);
    }

    /// Bug `cursor-before-data`: the cursor moves to the event, in order, and
    /// the record is left to the caller.
    #[cfg(feature = "bugzoo")]
    fn advance_cursor(&mut self, event: &LogEvent) {
        let tenant = event.tenant();
        assert_eq!(event.seq, self.cursor(tenant).next(), "apply out of order in partition {tenant}");
        self.cursors.insert(tenant, event.seq);
    }

    /// Bug `delete-without-tombstone`: a delete newer than the local record
    /// removes the record instead of storing the tombstone; the cursor moves
    /// to the event as in [`LocalStore::apply`].
    #[cfg(feature = "bugzoo")]
    fn apply_dropping_tombstone(&mut self, event: &LogEvent) {
        let tenant = event.tenant();
        assert_eq!(event.seq, self.cursor(tenant).next(), "apply out of order in partition {tenant}");
        event.mutation.record.check_invariants();
        if event.mutation.record.version > self.version(event.mutation.secret) {
            self.records.remove(&event.mutation.secret);
        }
        self.cursors.insert(tenant, event.seq);
    }

    /// Bug `cursor-before-data`: a buffered record made durable late.
    #[cfg(feature = "bugzoo")]
    fn flush(&mut self, secret: SecretId, record: SecretRecord) {
        if record.version > self.version(secret) {
            self.records.insert(secret, record);
        }
    }
}

/// A data-plane host. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Host {
    id: HostId,
    config: HostConfig,
    durable: LocalStore,
    /// Events received ahead of a gap, by partition and position.
    pending: BTreeMap<(TenantId, Seq), LogEvent>,
    /// The outstanding poll and when it is abandoned.
    poll_in_flight: Option<(RequestTag, Time)>,
    /// While the routing part of a round is in flight: whether the secrets'
    /// part filled a partition's limit.
    secrets_full: Option<bool>,
    /// When the next poll is due.
    next_poll: Time,
    next_tag: RequestTag,
    outputs: VecDeque<HostOutput>,
    bugs: Bugs,
    /// Bug `cursor-before-data`: records applied but not yet durable (their
    /// cursors are); lost in a crash, made durable at the next poll.
    #[cfg(feature = "bugzoo")]
    unflushed: BTreeMap<SecretId, SecretRecord>,
}

impl Host {
    /// A new host with an empty local store; the first poll is due at `now`.
    pub fn new(id: HostId, config: HostConfig, now: Time) -> Host {
        Host::recover(id, config, LocalStore::new(), now)
    }

    /// A host restarted from its durable state; the first poll is due at `now`.
    pub fn recover(id: HostId, config: HostConfig, durable: LocalStore, now: Time) -> Host {
        assert!(config.poll_events_max > 0, "a poll asks for at least one event");
        assert!(config.poll_interval_ns > 0, "a zero poll interval spins");
        let mut host = Host {
            id,
            config,
            durable,
            pending: BTreeMap::new(),
            poll_in_flight: None,
            secrets_full: None,
            next_poll: now,
            next_tag: RequestTag::default(),
            outputs: VecDeque::new(),
            bugs: Bugs::none(),
            #[cfg(feature = "bugzoo")]
            unflushed: BTreeMap::new(),
        };
        host.outputs.push_back(HostOutput::Timer { deadline: now });
        host
    }

    /// The same host running bug-zoo variants (none outside the bug zoo).
    pub fn with_bugs(mut self, bugs: Bugs) -> Host {
        self.bugs = bugs;
        self
    }

    /// The host's id.
    pub fn id(&self) -> HostId {
        self.id
    }

    /// The durable state (what survives a crash).
    pub fn durable(&self) -> &LocalStore {
        &self.durable
    }

    /// A verifier's repair of a damaged entry (see [`LocalStore::repair`]).
    pub fn repair(&mut self, secret: SecretId, record: &SecretRecord) -> bool {
        self.durable.repair(secret, record)
    }

    /// A storage fault on the entry of `secret` (see [`LocalStore::flip_bit`]).
    pub fn flip_bit(&mut self, secret: SecretId) -> bool {
        self.durable.flip_bit(secret)
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<HostOutput> {
        self.outputs.pop_front()
    }

    /// Reads `secret` from the local store.
    pub fn read(&self, secret: SecretId) -> LocalRead {
        #[cfg(feature = "bugzoo")]
        if let Some(record) = self.unflushed.get(&secret) {
            return LocalRead::Found(record.clone());
        }
        match self.durable.record(secret) {
            Some(record) => LocalRead::Found(record.clone()),
            None => LocalRead::Missing,
        }
    }

    /// The poll timer may have expired: poll if one is due and none is
    /// outstanding (or the outstanding one timed out).
    pub fn on_timer(&mut self, now: Time) {
        if let Some((_, abandon_at)) = self.poll_in_flight {
            if now < abandon_at {
                // Woken early: the fired timer is gone, so arm the abandon deadline again.
                self.outputs.push_back(HostOutput::Timer { deadline: abandon_at });
                return;
            }
            self.poll_in_flight = None;
            self.secrets_full = None;
        }
        #[cfg(feature = "bugzoo")]
        if self.bugs.is_on(Bug::StopPollingWhenIdle) && self.next_poll == Time(u64::MAX) {
            return; // Bug: the loop ended; a stale wake-up does not restart it.
        }
        if now >= self.next_poll {
            self.poll(now);
        } else {
            self.outputs.push_back(HostOutput::Timer { deadline: self.next_poll });
        }
        self.check_invariants();
    }

    /// The store answered the request tagged `tag`.
    pub fn on_store_reply(&mut self, now: Time, tag: RequestTag, reply: StoreReply) {
        #[cfg(feature = "bugzoo")]
        if self.bugs.is_on(Bug::UnversionedApply) {
            self.on_any_reply_unversioned(now, reply);
            return;
        }
        let Some((expected, _)) = self.poll_in_flight else { return };
        if expected != tag {
            return; // A late reply to an abandoned poll.
        }
        if let StoreReply::Routes(events) = reply {
            let secrets_full = self.secrets_full.take().expect("a routing poll follows the secrets' poll");
            self.poll_in_flight = None;
            let routes_full = self.on_route_events(&events);
            self.after_poll(now, secrets_full || routes_full);
            return;
        }
        let StoreReply::Poll(events) = reply else {
            panic!("a poll answered with {reply:?}");
        };
        self.poll_in_flight = None;
        let full = self.on_events(&events);
        if self.config.replicate_routes {
            self.secrets_full = Some(full);
            let request =
                StoreRequest::PollRoutes { after: self.durable.routes.cursor(), limit: self.config.poll_events_max };
            self.send_poll(now, request);
            self.check_invariants();
            return;
        }
        #[cfg(feature = "bugzoo")]
        if events.is_empty() && self.bugs.is_on(Bug::StopPollingWhenIdle) {
            // Bug: nothing new, so the poll loop ends; nothing wakes it again.
            self.outputs.push_back(HostOutput::Applied { host: self.id, cursors: self.durable.cursors() });
            self.next_poll = Time(u64::MAX);
            self.check_invariants();
            return;
        }
        self.after_poll(now, full);
    }

    /// A poll was answered and applied: report the cursors and plan the next poll.
    fn after_poll(&mut self, now: Time, full: bool) {
        self.outputs.push_back(HostOutput::Applied { host: self.id, cursors: self.durable.cursors() });
        if full {
            // Behind: poll again at once instead of waiting a whole interval.
            self.next_poll = now;
            self.poll(now);
        } else {
            self.next_poll = now.plus_ns(self.config.poll_interval_ns);
            self.outputs.push_back(HostOutput::Timer { deadline: self.next_poll });
        }
        self.check_invariants();
    }

    /// Bug `unversioned-apply`: any poll reply, however late or duplicated,
    /// is taken as the answer, and its events overwrite the local records.
    #[cfg(feature = "bugzoo")]
    fn on_any_reply_unversioned(&mut self, now: Time, reply: StoreReply) {
        let StoreReply::Poll(events) = reply else {
            panic!("a poll answered with {reply:?}");
        };
        self.poll_in_flight = None;
        let mut per_partition: BTreeMap<TenantId, usize> = BTreeMap::new();
        for event in &events {
            *per_partition.entry(event.tenant()).or_default() += 1;
            self.durable.overwrite(event);
        }
        let full = per_partition.values().any(|count| *count >= self.config.poll_events_max);
        self.after_poll(now, full);
    }

    /// Applies routing events (a routing poll's reply: in order, after the
    /// cursor asked from). Returns whether the reply filled its limit.
    fn on_route_events(&mut self, events: &[RouteEvent]) -> bool {
        for event in events {
            if event.seq > self.durable.routes.cursor() {
                self.durable.apply_route(event);
            }
        }
        events.len() >= self.config.poll_events_max
    }

    /// Applies a batch of events, in any order and with duplicates. Returns
    /// whether some partition filled its poll limit (more may be waiting).
    pub fn on_events(&mut self, events: &[LogEvent]) -> bool {
        let mut per_partition: BTreeMap<TenantId, usize> = BTreeMap::new();
        for event in events {
            *per_partition.entry(event.tenant()).or_default() += 1;
            let tenant = event.tenant();
            if event.seq <= self.durable.cursor(tenant) {
                continue; // Duplicate of an applied event.
            }
            if event.seq == self.durable.cursor(tenant).next() {
                // The next event never waits, even with the buffer full of
                // events past it: otherwise nothing could fill the gap.
                self.apply(event);
                self.apply_pending();
                continue;
            }
            if self.pending.len() < self.config.pending_events_max {
                self.pending.insert((tenant, event.seq), event.clone());
            }
        }
        self.apply_pending();
        per_partition.values().any(|count| *count >= self.config.poll_events_max)
    }

    fn apply_pending(&mut self) {
        loop {
            let ready = self.pending.keys().copied().find(|(tenant, seq)| *seq <= self.durable.cursor(*tenant).next());
            let Some(key) = ready else { break };
            let event = self.pending.remove(&key).expect("key just found");
            if event.seq == self.durable.cursor(key.0).next() {
                self.apply(&event);
            }
        }
    }

    /// Applies the next event of its partition to the durable store.
    fn apply(&mut self, event: &LogEvent) {
        #[cfg(feature = "bugzoo")]
        if self.bugs.is_on(Bug::CursorBeforeData) {
            // Bug: the cursor is durable now, the record only at the next poll.
            let secret = event.mutation.secret;
            let held = self.unflushed.get(&secret).map_or(self.durable.version(secret), |record| record.version);
            self.durable.advance_cursor(event);
            if event.mutation.record.version > held {
                self.unflushed.insert(secret, event.mutation.record.clone());
            }
            return;
        }
        #[cfg(feature = "bugzoo")]
        if self.bugs.is_on(Bug::DeleteWithoutTombstone) && event.mutation.record.lifecycle == Lifecycle::Deleted {
            // Bug: a delete drops the row; nothing remembers the version it was deleted at.
            self.durable.apply_dropping_tombstone(event);
            return;
        }
        #[cfg_attr(not(feature = "bugzoo"), allow(unused_variables))]
        let effect = self.durable.apply(event);
        #[cfg(feature = "bugzoo")]
        if effect == ApplyEffect::Applied && self.bugs.is_on(Bug::CorruptingApply) {
            // Bug: a bit flips on the way to the disk; the checksum is not recomputed.
            self.durable.corrupt(event.mutation.secret);
        }
    }

    fn poll(&mut self, now: Time) {
        assert!(self.poll_in_flight.is_none(), "one poll at a time");
        #[cfg(feature = "bugzoo")]
        for (secret, record) in std::mem::take(&mut self.unflushed) {
            self.durable.flush(secret, record);
        }
        let request =
            StoreRequest::Poll { cursors: self.durable.cursors(), limit_per_partition: self.config.poll_events_max };
        self.send_poll(now, request);
    }

    /// Sends one request of a poll round, abandoned after the request timeout.
    fn send_poll(&mut self, now: Time, request: StoreRequest) {
        let tag = self.next_tag.take_next();
        let abandon_at = now.plus_ns(self.config.request_timeout_ns);
        self.poll_in_flight = Some((tag, abandon_at));
        self.outputs.push_back(HostOutput::Store { tag, request });
        self.outputs.push_back(HostOutput::Timer { deadline: abandon_at });
    }

    /// Asserts the host's invariants.
    pub fn check_invariants(&self) {
        assert!(self.pending.len() <= self.config.pending_events_max, "pending over its bound");
        assert!(self.secrets_full.is_none() || self.poll_in_flight.is_some(), "a routing poll half is in flight");
        if !self.config.replicate_routes {
            assert_eq!(
                self.durable.routes.cursor(),
                Seq::ZERO,
                "routes applied by a host that does not replicate them"
            );
        }
        for (tenant, seq) in self.pending.keys() {
            assert!(
                *seq > self.durable.cursor(*tenant).next(),
                "a pending event at {tenant}/{seq:?} could have been applied"
            );
        }
    }
}

#[cfg(test)]
mod tests;
