//! The abstract replication spec: a small stateright model of the protocol,
//! checked exhaustively on its own like a TLA+ spec, and the target of the
//! refinement check (every world step must map to one spec step or a stutter).
//!
//! State: the remote store's version of each secret (and whether it is
//! deleted), the outbox rows not yet published (async mode), each log
//! partition, each host's records, cursors and liveness, and whether
//! replication is on (the stored migration phase replicates).
//!
//! Actions: a commit of a secret (sync mode appends to its partition in the
//! same step; async mode adds an outbox row), a publish of the oldest outbox
//! rows of a partition, a host applying the next events of a partition, a host
//! crash and restart.
//!
//! With live migration ([`ReplicationSpec::with_migration`]) three more: the
//! stored phase switching replication on or off, a commit without an event
//! (only while replication is off; a commit with an event stays allowed in
//! every phase, as the activator's are), and a backfill emission of a secret's
//! current remote record (sync: an append to its partition; async: an outbox
//! row). A backfill may emit again a record already in the log (after a
//! rollback to `Off` and a new migration), so hosts now meet stale events:
//! an apply of an event not newer than the host's record moves only the
//! cursor. The verifier's repairs and storage faults keep a host entry's
//! version and lifecycle, so they are no step of this spec (stutters), and
//! the operator's phase commits change nothing here but `replicating`.
//!
//! Two uses, two kinds of rules:
//! * [`ReplicationSpec`] as a stateright [`Model`]: [`Model::actions`] enables
//!   only steps within the model's bounds (`versions_per_secret_max`,
//!   `hosts_down_max`), so the exhaustive check is finite. The properties are
//!   REP-2 … REP-5 as state invariants (see [`ReplicationSpec::violations`])
//!   and three "sometimes" properties that prove the check is not vacuous.
//! * [`ReplicationSpec::explains`] for refinement: given two consecutive
//!   abstract states of the real world, it names the spec steps between them,
//!   or says precisely what changed that no spec step explains. It follows the
//!   protocol's rules (and the interceptor mode) but never the model's bounds.
//!
//! A state may leave out what is empty: a missing log or outbox partition is
//! an empty one, a missing cursor is 0. The model itself never stores an empty
//! outbox partition, so equal states hash equal.
//!
//! Stale events (not newer than the host's record): without migration they
//! never occur, because each partition holds a secret's versions in
//! increasing order and a host applies them in order. With migration a
//! backfill re-emission is one; a partition still never holds a secret's
//! record older than an earlier entry of it, because a backfill carries the
//! remote's current record.

use std::collections::BTreeMap;
use std::fmt;

use stateright::{Model, Property};

use crate::properties::{PropertyId, Violation};

pub mod routing;

/// A secret's record in the spec: its version and whether it is a tombstone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpecRecord {
    /// The record version (first committed version is 1).
    pub version: u64,
    /// Whether this version is a delete.
    pub deleted: bool,
}

impl fmt::Display for SpecRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.version)?;
        if self.deleted {
            f.write_str(" (tombstone)")?;
        }
        Ok(())
    }
}

/// One host in the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpecHost {
    /// Whether the host is up.
    pub up: bool,
    /// Applied records by secret.
    pub records: BTreeMap<u32, SpecRecord>,
    /// Applied positions by partition (number of events applied).
    pub cursors: BTreeMap<u32, u64>,
}

impl SpecHost {
    /// The number of events of `tenant`'s partition applied (0 if none).
    pub fn cursor(&self, tenant: u32) -> u64 {
        self.cursors.get(&tenant).copied().unwrap_or(0)
    }

    /// The version of `secret` held (0 if none).
    pub fn version(&self, secret: u32) -> u64 {
        self.records.get(&secret).map_or(0, |record| record.version)
    }
}

/// The spec's state. The default state is empty, with replication on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpecState {
    /// The remote store's record of each secret.
    pub remote: BTreeMap<u32, SpecRecord>,
    /// Committed mutations waiting in the outbox, per partition, oldest first.
    pub outbox: BTreeMap<u32, Vec<(u32, SpecRecord)>>,
    /// Each partition's events: (secret, record).
    pub log: BTreeMap<u32, Vec<(u32, SpecRecord)>>,
    /// Every host.
    pub hosts: BTreeMap<u32, SpecHost>,
    /// Whether a commit must emit its event: always without migration; with
    /// it, whether the stored phase replicates (absent: `Off`, it does not).
    pub replicating: bool,
}

impl Default for SpecState {
    fn default() -> SpecState {
        SpecState {
            remote: BTreeMap::new(),
            outbox: BTreeMap::new(),
            log: BTreeMap::new(),
            hosts: BTreeMap::new(),
            replicating: true,
        }
    }
}

impl SpecState {
    /// The events of `tenant`'s partition (empty if it has none).
    pub fn partition(&self, tenant: u32) -> &[(u32, SpecRecord)] {
        self.log.get(&tenant).map_or(&[], Vec::as_slice)
    }

    /// The outbox rows of `tenant`'s partition, oldest first (empty if none).
    pub fn outbox_rows(&self, tenant: u32) -> &[(u32, SpecRecord)] {
        self.outbox.get(&tenant).map_or(&[], Vec::as_slice)
    }
}

/// Read access to a state, for [`ReplicationSpec::explains`] and
/// [`ReplicationSpec::explains_step`]: a [`SpecState`], or the state before
/// the last step of a [`SpecJournal`].
trait StateView {
    /// The remote record of `secret`.
    fn remote(&self, secret: u32) -> Option<&SpecRecord>;
    /// The events of `tenant`'s partition (empty if none).
    fn partition(&self, tenant: u32) -> &[(u32, SpecRecord)];
    /// The outbox rows of `tenant`'s partition (empty if none).
    fn outbox_rows(&self, tenant: u32) -> &[(u32, SpecRecord)];
    /// The host `host`.
    fn host(&self, host: u32) -> Option<&SpecHost>;
    /// Whether replication is on.
    fn replicating(&self) -> bool;
}

impl StateView for SpecState {
    fn remote(&self, secret: u32) -> Option<&SpecRecord> {
        self.remote.get(&secret)
    }

    fn partition(&self, tenant: u32) -> &[(u32, SpecRecord)] {
        SpecState::partition(self, tenant)
    }

    fn outbox_rows(&self, tenant: u32) -> &[(u32, SpecRecord)] {
        SpecState::outbox_rows(self, tenant)
    }

    fn host(&self, host: u32) -> Option<&SpecHost> {
        self.hosts.get(&host)
    }

    fn replicating(&self) -> bool {
        self.replicating
    }
}

/// A [`SpecState`] changed in place, one step at a time, that remembers what
/// the current step overwrote (its undo record), so the step can be checked
/// with [`ReplicationSpec::explains_step`] without copying the state.
///
/// Call protocol: [`SpecJournal::start_step`], then any `set_*` and
/// [`SpecJournal::append_log`] calls for what the step changed, then
/// `explains_step`. Logs only grow: the state before the step sees each
/// partition's log cut to its length at the first append of the step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecJournal {
    state: SpecState,
    /// The remote records the step overwrote (first value per secret).
    remote: Vec<(u32, Option<SpecRecord>)>,
    /// The outbox partitions the step overwrote (empty when there were none).
    outbox: Vec<(u32, Vec<(u32, SpecRecord)>)>,
    /// The log partitions the step appended to, with their lengths before.
    log: Vec<(u32, usize)>,
    /// The hosts the step overwrote.
    hosts: Vec<(u32, Option<SpecHost>)>,
    /// Whether replication was on before the step, if the step set it.
    replicating: Option<bool>,
}

impl SpecJournal {
    /// A journal of `state`, with an empty step.
    pub fn new(state: SpecState) -> SpecJournal {
        SpecJournal { state, ..SpecJournal::default() }
    }

    /// The state now (after the current step).
    pub fn state(&self) -> &SpecState {
        &self.state
    }

    /// Starts a step: forgets the previous step's undo record.
    pub fn start_step(&mut self) {
        self.remote.clear();
        self.outbox.clear();
        self.log.clear();
        self.hosts.clear();
        self.replicating = None;
    }

    /// Sets the remote record of `secret`.
    pub fn set_remote(&mut self, secret: u32, record: SpecRecord) {
        let old = self.state.remote.insert(secret, record);
        if !self.remote.iter().any(|(key, _)| *key == secret) {
            self.remote.push((secret, old));
        }
    }

    /// Sets the outbox rows of `tenant`'s partition (none removes it).
    pub fn set_outbox(&mut self, tenant: u32, rows: Vec<(u32, SpecRecord)>) {
        let old =
            if rows.is_empty() { self.state.outbox.remove(&tenant) } else { self.state.outbox.insert(tenant, rows) };
        if !self.outbox.iter().any(|(key, _)| *key == tenant) {
            self.outbox.push((tenant, old.unwrap_or_default()));
        }
    }

    /// Appends `events` to `tenant`'s log partition; with none, changes
    /// nothing (a missing partition stays missing).
    pub fn append_log(&mut self, tenant: u32, events: impl IntoIterator<Item = (u32, SpecRecord)>) {
        let mut events = events.into_iter().peekable();
        if events.peek().is_none() {
            return;
        }
        let log = self.state.log.entry(tenant).or_default();
        if !self.log.iter().any(|(key, _)| *key == tenant) {
            self.log.push((tenant, log.len()));
        }
        log.extend(events);
    }

    /// Sets the host `host`.
    pub fn set_host(&mut self, host: u32, entry: SpecHost) {
        let old = self.state.hosts.insert(host, entry);
        if !self.hosts.iter().any(|(key, _)| *key == host) {
            self.hosts.push((host, old));
        }
    }

    /// Sets whether replication is on (the stored phase replicates).
    pub fn set_replicating(&mut self, replicating: bool) {
        let old = std::mem::replace(&mut self.state.replicating, replicating);
        self.replicating.get_or_insert(old);
    }

    /// The state before the current step.
    fn before(&self) -> JournalBefore<'_> {
        JournalBefore { journal: self }
    }
}

/// The state before a journal's current step: its undo record over its state.
struct JournalBefore<'a> {
    journal: &'a SpecJournal,
}

impl StateView for JournalBefore<'_> {
    fn remote(&self, secret: u32) -> Option<&SpecRecord> {
        match self.journal.remote.iter().find(|(key, _)| *key == secret) {
            Some((_, old)) => old.as_ref(),
            None => self.journal.state.remote.get(&secret),
        }
    }

    fn partition(&self, tenant: u32) -> &[(u32, SpecRecord)] {
        let log = self.journal.state.partition(tenant);
        match self.journal.log.iter().find(|(key, _)| *key == tenant) {
            Some((_, length)) => &log[..*length],
            None => log,
        }
    }

    fn outbox_rows(&self, tenant: u32) -> &[(u32, SpecRecord)] {
        match self.journal.outbox.iter().find(|(key, _)| *key == tenant) {
            Some((_, old)) => old,
            None => self.journal.state.outbox_rows(tenant),
        }
    }

    fn host(&self, host: u32) -> Option<&SpecHost> {
        match self.journal.hosts.iter().find(|(key, _)| *key == host) {
            Some((_, old)) => old.as_ref(),
            None => self.journal.state.hosts.get(&host),
        }
    }

    fn replicating(&self) -> bool {
        self.journal.replicating.unwrap_or(self.journal.state.replicating)
    }
}

/// How a commit reaches the log: the interceptor mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecMode {
    /// The commit appends its event to the partition in the same step.
    Sync,
    /// The commit writes an outbox row; a publish moves rows into the log.
    Async,
}

/// A step of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecAction {
    /// Commit the next version of `secret` (a tombstone if `delete`).
    Commit {
        /// The secret written.
        secret: u32,
        /// Whether the commit deletes the secret.
        delete: bool,
    },
    /// Move the `rows` oldest outbox rows of `tenant`'s partition into its log
    /// (async mode only).
    Publish {
        /// The partition.
        tenant: u32,
        /// How many rows move (at least 1).
        rows: usize,
    },
    /// `host` applies the next `events` events of `tenant`'s partition.
    Apply {
        /// The host.
        host: u32,
        /// The partition.
        tenant: u32,
        /// How many events are applied (at least 1).
        events: u64,
    },
    /// `host` crashes; its records and cursors survive.
    Crash {
        /// The host.
        host: u32,
    },
    /// `host` restarts from its records and cursors.
    Restart {
        /// The host.
        host: u32,
    },
    /// The stored migration phase switches replication on or off (migration
    /// only; a phase change that keeps it is no step here).
    Phase {
        /// Whether replication is on after the step.
        replicating: bool,
    },
    /// Commit the next version of `secret` without a replication event: no
    /// log append, no outbox row (migration only, while replication is off).
    CommitWithoutEvent {
        /// The secret written.
        secret: u32,
        /// Whether the commit deletes the secret.
        delete: bool,
    },
    /// Emit the remote's current record of `secret` again, as a backfill does:
    /// appended to its partition's log (sync) or as an outbox row (async);
    /// the remote is unchanged (migration only). A backfill page that emits
    /// several secrets is several of these steps.
    Backfill {
        /// The secret emitted.
        secret: u32,
    },
}

/// The replication spec: its parameters, and its rules as a stateright
/// [`Model`] over [`SpecState`]. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationSpec {
    /// The interceptor mode.
    pub mode: SpecMode,
    /// The tenant (log partition) of every secret.
    pub secret_tenants: BTreeMap<u32, u32>,
    /// The hosts of the initial state are `0..host_count`.
    pub host_count: u32,
    /// Bound of the exhaustive check: no commit beyond this version.
    pub versions_per_secret_max: u64,
    /// Bound of the exhaustive check: at most this many hosts down at once
    /// (0 disables crashes). A crash leaves nothing behind but the host being
    /// down, so this bounds the crashes without counting them in the state.
    pub hosts_down_max: u32,
    /// Whether a live migration runs: the phase switches, commits without an
    /// event and backfill emissions are steps, and the initial state has
    /// replication off. Without it the spec is the one of a replicated cell.
    /// The exhaustive check bounds backfills too: a secret is emitted only
    /// while its partition (log and outbox) holds fewer than
    /// `versions_per_secret_max` entries of it.
    pub migration: bool,
}

/// Name of the "sometimes" property: every up host equals the remote store,
/// the outbox is empty, and at least one secret was committed.
pub const CONVERGED: &str = "converged";
/// Name of the "sometimes" property: a host holds a tombstone.
pub const HOST_HOLDS_TOMBSTONE: &str = "a host holds a tombstone";
/// Name of the "sometimes" property: a down host misses a committed version.
pub const DOWN_HOST_LAGS: &str = "a down host lags the remote";
/// Name of the "sometimes" property (migration only): a partition holds a
/// backfill's re-emission, an entry equal to the previous entry of its secret.
pub const BACKFILL_REEMITTED: &str = "a backfill re-emitted a secret's latest record";
/// Name of the "sometimes" property (migration only): a host's cursor passed a
/// re-emission, a stale event for every host that applied the entry before it.
pub const HOST_PASSED_STALE_EVENT: &str = "a host passed a stale event";

impl ReplicationSpec {
    /// Default of [`ReplicationSpec::versions_per_secret_max`].
    pub const VERSIONS_PER_SECRET_MAX_DEFAULT: u64 = 2;
    /// Default of [`ReplicationSpec::hosts_down_max`].
    pub const HOSTS_DOWN_MAX_DEFAULT: u32 = 1;

    /// A spec of `secret_tenants` (secret → tenant) and hosts `0..host_count`
    /// in `mode`, with the default bounds.
    pub fn new(mode: SpecMode, secret_tenants: impl IntoIterator<Item = (u32, u32)>, host_count: u32) -> Self {
        ReplicationSpec {
            mode,
            secret_tenants: secret_tenants.into_iter().collect(),
            host_count,
            versions_per_secret_max: Self::VERSIONS_PER_SECRET_MAX_DEFAULT,
            hosts_down_max: Self::HOSTS_DOWN_MAX_DEFAULT,
            migration: false,
        }
    }

    /// The same spec with a live migration: see [`ReplicationSpec::migration`].
    pub fn with_migration(self) -> Self {
        ReplicationSpec { migration: true, ..self }
    }

    /// The same spec with other bounds for the exhaustive check.
    pub fn with_bounds(self, versions_per_secret_max: u64, hosts_down_max: u32) -> Self {
        ReplicationSpec { versions_per_secret_max, hosts_down_max, ..self }
    }

    /// The tenant (log partition) of `secret`.
    pub fn tenant_of(&self, secret: u32) -> Result<u32, String> {
        self.secret_tenants.get(&secret).copied().ok_or_else(|| format!("secret {secret} has no tenant in the spec"))
    }

    /// The state after `action`, following the protocol's rules but not the
    /// model's bounds; `Err` says why `action` is not enabled in `state`.
    pub fn step(&self, state: &SpecState, action: &SpecAction) -> Result<SpecState, String> {
        let mut next = state.clone();
        match *action {
            SpecAction::Commit { secret, delete } => {
                let record = self.commit_record(state, secret, delete)?;
                next.remote.insert(secret, record);
                let queue = match self.mode {
                    SpecMode::Sync => &mut next.log,
                    SpecMode::Async => &mut next.outbox,
                };
                queue.entry(self.tenant_of(secret)?).or_default().push((secret, record));
            }
            SpecAction::Publish { tenant, rows } => {
                if self.mode == SpecMode::Sync {
                    return Err(format!("sync mode has no publisher (partition {tenant})"));
                }
                let waiting = state.outbox_rows(tenant).len();
                if rows == 0 || rows > waiting {
                    return Err(format!("outbox partition {tenant}: cannot publish {rows} of {waiting} rows"));
                }
                let outbox = next.outbox.get_mut(&tenant).expect("a non-empty outbox partition is stored");
                let published: Vec<_> = outbox.drain(..rows).collect();
                if outbox.is_empty() {
                    next.outbox.remove(&tenant);
                }
                next.log.entry(tenant).or_default().extend(published);
            }
            SpecAction::Apply { host, tenant, events } => {
                let log = state.partition(tenant);
                let entry = next.hosts.get_mut(&host).ok_or_else(|| format!("host {host} does not exist"))?;
                if !entry.up {
                    return Err(format!("host {host} is down and cannot apply partition {tenant}"));
                }
                let from = entry.cursor(tenant);
                let to = from.saturating_add(events);
                if events == 0 || to > log.len() as u64 {
                    return Err(format!(
                        "host {host}: cannot apply {events} events of partition {tenant} from cursor {from} \
                         ({} events in the log)",
                        log.len()
                    ));
                }
                apply_events(&mut entry.records, &log[from as usize..to as usize]);
                entry.cursors.insert(tenant, to);
            }
            SpecAction::Crash { host } | SpecAction::Restart { host } => {
                let crash = matches!(action, SpecAction::Crash { .. });
                let entry = next.hosts.get_mut(&host).ok_or_else(|| format!("host {host} does not exist"))?;
                if entry.up != crash {
                    let now = if entry.up { "up" } else { "down" };
                    return Err(format!("host {host} is already {now}"));
                }
                entry.up = !crash;
            }
            SpecAction::Phase { replicating } => {
                self.require_migration(action)?;
                if state.replicating == replicating {
                    let now = if replicating { "on" } else { "off" };
                    return Err(format!("replication is already {now}"));
                }
                next.replicating = replicating;
            }
            SpecAction::CommitWithoutEvent { secret, delete } => {
                self.require_migration(action)?;
                if state.replicating {
                    return Err(format!("secret {secret}: a commit emits its event while the stored phase replicates"));
                }
                let record = self.commit_record(state, secret, delete)?;
                next.remote.insert(secret, record);
            }
            SpecAction::Backfill { secret } => {
                self.require_migration(action)?;
                let tenant = self.tenant_of(secret)?;
                let &record =
                    state.remote.get(&secret).ok_or_else(|| format!("secret {secret} has no record to backfill"))?;
                let queue = match self.mode {
                    SpecMode::Sync => &mut next.log,
                    SpecMode::Async => &mut next.outbox,
                };
                queue.entry(tenant).or_default().push((secret, record));
            }
        }
        Ok(next)
    }

    /// `Err` unless the spec has a live migration, which `action` needs.
    fn require_migration(&self, action: &SpecAction) -> Result<(), String> {
        if self.migration {
            Ok(())
        } else {
            Err(format!("{action:?} is a step of a live migration, and none runs"))
        }
    }

    /// The record a commit of `secret` writes, if the protocol allows it: the
    /// next version; never after a delete; a delete only of an existing secret.
    fn commit_record(&self, state: &impl StateView, secret: u32, delete: bool) -> Result<SpecRecord, String> {
        self.tenant_of(secret)?;
        let current = state.remote(secret);
        if let Some(record) = current.filter(|record| record.deleted) {
            return Err(format!("secret {secret} was deleted at {record} and is never written again"));
        }
        if delete && current.is_none() {
            return Err(format!("secret {secret} does not exist and cannot be deleted"));
        }
        Ok(SpecRecord { version: current.map_or(0, |record| record.version) + 1, deleted: delete })
    }

    /// Every invariant (REP-2 … REP-5) that `state` breaks, one violation per
    /// property (the first thing found).
    pub fn violations(&self, state: &SpecState) -> Vec<Violation> {
        let checks: [(PropertyId, StateCheck); 4] = [
            (PropertyId::Rep2, Self::check_rep_2),
            (PropertyId::Rep3, Self::check_rep_3),
            (PropertyId::Rep4, Self::check_rep_4),
            (PropertyId::Rep5, Self::check_rep_5),
        ];
        checks
            .into_iter()
            .filter_map(|(property, check)| check(self, state).err().map(|detail| Violation { property, detail }))
            .collect()
    }

    /// REP-2 as an invariant: every host record is at most the remote version
    /// and is the last event of its secret at or before the host's cursor.
    /// With forward-only apply this makes a host's version monotonic.
    pub fn check_rep_2(&self, state: &SpecState) -> Result<(), String> {
        for (host, entry) in &state.hosts {
            let mut last: BTreeMap<u32, SpecRecord> = BTreeMap::new();
            for (&tenant, &cursor) in &entry.cursors {
                let log = state.partition(tenant);
                let applied = &log[..(cursor as usize).min(log.len())];
                last.extend(applied.iter().copied());
            }
            for (secret, record) in &entry.records {
                let remote = state.remote.get(secret).map_or(0, |remote| remote.version);
                if record.version > remote {
                    return Err(format!("host {host} holds secret {secret} at {record}, above the remote's v{remote}"));
                }
                if last.get(secret) != Some(record) {
                    return Err(format!(
                        "host {host} holds secret {secret} at {record}, but the last event of it at or before \
                         the host's cursor is {}",
                        show(last.get(secret))
                    ));
                }
            }
        }
        Ok(())
    }

    /// REP-3: a host's tombstone is the remote's latest version and the remote
    /// is deleted too, and no partition writes a secret after its tombstone.
    /// With migration a partition may hold the same tombstone again (a
    /// backfill's re-emission of the latest record), and nothing else after it.
    pub fn check_rep_3(&self, state: &SpecState) -> Result<(), String> {
        for (host, entry) in &state.hosts {
            for (secret, record) in entry.records.iter().filter(|(_, record)| record.deleted) {
                let remote = state.remote.get(secret);
                if remote != Some(record) {
                    return Err(format!(
                        "host {host} holds tombstone {record} of secret {secret}, but the remote holds {}",
                        show(remote)
                    ));
                }
            }
        }
        for tenant in partitions(state) {
            let mut tombstones: BTreeMap<u32, SpecRecord> = BTreeMap::new();
            for (secret, record) in state.partition(tenant).iter().chain(state.outbox_rows(tenant)) {
                if let Some(tombstone) = tombstones.get(secret).filter(|tombstone| {
                    let reemitted = self.migration && *tombstone == record;
                    !reemitted
                }) {
                    return Err(format!(
                        "partition {tenant} writes secret {secret} at {record} after its tombstone {tombstone}"
                    ));
                }
                if record.deleted {
                    tombstones.insert(*secret, *record);
                }
            }
        }
        Ok(())
    }

    /// REP-4: each partition (log, then outbox) holds its own secrets' versions
    /// 1, 2, 3, … in order, each once, and together they hold exactly the
    /// versions the remote committed, ending with the remote's record.
    ///
    /// With migration, as amended: a commit made while replication is off
    /// emits nothing, and a backfill emits the remote's current record, maybe
    /// again. So each partition holds its own secrets' records with versions
    /// increasing, except that an entry may repeat the previous entry of its
    /// secret exactly (a re-emission of the latest record); versions may be
    /// missing; and a secret's last entry is at most the remote's version, and
    /// is the remote's record when it is that version.
    pub fn check_rep_4(&self, state: &SpecState) -> Result<(), String> {
        if self.mode == SpecMode::Sync {
            if let Some((tenant, rows)) = state.outbox.iter().find(|(_, rows)| !rows.is_empty()) {
                return Err(format!("sync mode, yet outbox partition {tenant} holds {} rows", rows.len()));
            }
        }
        let mut last: BTreeMap<u32, SpecRecord> = BTreeMap::new();
        for tenant in partitions(state) {
            let log = state.partition(tenant);
            let place = |position: usize| match position.checked_sub(log.len()) {
                None => format!("log partition {tenant} position {}", position + 1),
                Some(row) => format!("outbox partition {tenant} row {}", row + 1),
            };
            for (position, (secret, record)) in log.iter().chain(state.outbox_rows(tenant)).enumerate() {
                let owner = self.tenant_of(*secret)?;
                if owner != tenant {
                    return Err(format!("{} holds secret {secret} of partition {owner}", place(position)));
                }
                let previous = last.get(secret);
                let version = previous.map_or(0, |record| record.version);
                if self.migration {
                    if previous.is_some_and(|previous| record.version <= previous.version && record != previous) {
                        return Err(format!(
                            "{} holds secret {secret} at {record} after {} (neither newer nor a re-emission)",
                            place(position),
                            show(previous)
                        ));
                    }
                } else if record.version != version + 1 {
                    return Err(format!(
                        "{} holds secret {secret} at {record} after v{version} (gap, duplicate or reorder)",
                        place(position)
                    ));
                }
                last.insert(*secret, *record);
            }
        }
        if self.migration {
            for (secret, logged) in &last {
                let remote = state.remote.get(secret);
                if remote.is_none_or(|remote| {
                    logged.version > remote.version || logged.version == remote.version && logged != remote
                }) {
                    return Err(format!(
                        "secret {secret}: its log and outbox end at {logged}, which the remote's {} does not cover",
                        show(remote)
                    ));
                }
            }
            return Ok(());
        }
        for secret in union_keys(&state.remote, &last) {
            let (remote, logged) = (state.remote.get(&secret), last.get(&secret));
            if remote != logged {
                return Err(format!(
                    "secret {secret}: the remote holds {} but its log and outbox end at {}",
                    show(remote),
                    show(logged)
                ));
            }
        }
        Ok(())
    }

    /// REP-5: a host's cursor is within its partition and every event at or
    /// before it is reflected (the host's version is at least the event's).
    pub fn check_rep_5(&self, state: &SpecState) -> Result<(), String> {
        for (host, entry) in &state.hosts {
            for (&tenant, &cursor) in &entry.cursors {
                let log = state.partition(tenant);
                if cursor > log.len() as u64 {
                    return Err(format!(
                        "host {host}: cursor {cursor} of partition {tenant} is past its {} events",
                        log.len()
                    ));
                }
                for (position, (secret, record)) in log[..cursor as usize].iter().enumerate() {
                    if entry.version(*secret) < record.version {
                        return Err(format!(
                            "host {host}: cursor {cursor} of partition {tenant} passed event {} (secret {secret} \
                             {record}) but the host holds {}",
                            position + 1,
                            show(entry.records.get(secret))
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The spec steps that take `before` to `after`: none for a stutter, one
    /// step, or (a host applying several partitions at once) one `Apply` per
    /// partition in partition order, or (a backfill page) one `Backfill` per
    /// entry emitted, in partition order and then in emission order. `Err`
    /// says what changed that no spec step explains. Follows the protocol's
    /// rules, `self.mode` and `self.migration`, not the bounds.
    pub fn explains(&self, before: &SpecState, after: &SpecState) -> Result<Vec<SpecAction>, String> {
        self.explain_diff(before, after, &StateDiff::new(before, after))
    }

    /// [`ReplicationSpec::explains`] for the last step recorded in `journal`:
    /// from the state before it (its undo record over its state) to its state.
    /// The same answer as `explains` on the two states, computed from the
    /// parts the step touched, without a copy of either state.
    pub fn explains_step(&self, journal: &SpecJournal) -> Result<Vec<SpecAction>, String> {
        self.explain_diff(&journal.before(), &journal.state, &StateDiff::of_step(journal))
    }

    /// The spec steps behind `diff`, the changes from `before` to `after`.
    fn explain_diff(
        &self,
        before: &impl StateView,
        after: &impl StateView,
        diff: &StateDiff,
    ) -> Result<Vec<SpecAction>, String> {
        let queues_changed = !diff.outbox.is_empty() || !diff.log.is_empty();
        if diff.replicating {
            return self.explain_phase(before, after, diff).map(|action| vec![action]);
        }
        // A backfill emits where a commit does: to the log in sync mode, to
        // the outbox in async mode (a publish changes the log).
        let emitted_only = match self.mode {
            SpecMode::Sync => true,
            SpecMode::Async => diff.log.is_empty(),
        };
        match (!diff.remote.is_empty(), queues_changed, !diff.hosts.is_empty()) {
            (false, false, false) => Ok(Vec::new()),
            (true, _, false) => self.explain_commit(before, after, diff).map(|action| vec![action]),
            (false, true, false) if self.migration && emitted_only => self.explain_backfill(before, after, diff),
            (false, true, false) => self.explain_publish(before, after, diff).map(|action| vec![action]),
            (false, false, true) => self.explain_host_step(before, after, diff),
            (remote, _, _) => {
                let what = if remote { "the remote store" } else { "the log or outbox" };
                Err(format!(
                    "one step changed both {what} and host(s) {:?}, which no spec step does: {}",
                    diff.hosts,
                    diff.describe(before, after)
                ))
            }
        }
    }

    /// A phase switch: replication on or off, nothing else.
    fn explain_phase(
        &self,
        before: &impl StateView,
        after: &impl StateView,
        diff: &StateDiff,
    ) -> Result<SpecAction, String> {
        let action = SpecAction::Phase { replicating: after.replicating() };
        self.require_migration(&action)?;
        let others = StateDiff { replicating: false, ..diff.clone() };
        if !others.is_empty() {
            return Err(format!(
                "replication switched {} and in the same step {}; a phase commit touches no secret, log or host",
                if after.replicating() { "on" } else { "off" },
                others.describe(before, after)
            ));
        }
        Ok(action)
    }

    /// A commit: one secret's next version, appended to its partition's log
    /// (sync) or outbox (async), nothing else; with migration, while
    /// replication is off, also a commit that appends nothing.
    fn explain_commit(
        &self,
        before: &impl StateView,
        after: &impl StateView,
        diff: &StateDiff,
    ) -> Result<SpecAction, String> {
        let &[secret] = diff.remote.as_slice() else {
            return Err(format!(
                "one step changed {} remote secrets: {}",
                diff.remote.len(),
                diff.describe(before, after)
            ));
        };
        let (old, new) = (before.remote(secret), after.remote(secret));
        let Some(&new) = new else {
            return Err(format!("remote secret {secret}: {} → absent; deletes are tombstones", show(old)));
        };
        let expected = self
            .commit_record(before, secret, new.deleted)
            .map_err(|why| format!("remote secret {secret}: {} → {new}: {why}", show(old)))?;
        if new != expected {
            return Err(format!("remote secret {secret}: {} → {new}; a commit writes {expected}", show(old)));
        }
        let tenant = self.tenant_of(secret)?;
        if self.migration && diff.log.is_empty() && diff.outbox.is_empty() {
            if before.replicating() {
                return Err(format!(
                    "{:?} commit of secret {secret} ({new}) emitted no event while the stored phase replicates",
                    self.mode
                ));
            }
            return Ok(SpecAction::CommitWithoutEvent { secret, delete: new.deleted });
        }
        let (name, changed, other_name, other) = match self.mode {
            SpecMode::Sync => ("log", &diff.log, "outbox", &diff.outbox),
            SpecMode::Async => ("outbox", &diff.outbox, "log", &diff.log),
        };
        if !other.is_empty() {
            return Err(format!(
                "{:?} commit of secret {secret} ({new}) also changed the {other_name} of partition(s) {other:?}",
                self.mode
            ));
        }
        if changed.as_slice() != [tenant] {
            let what = if changed.is_empty() {
                format!("no {name} changed")
            } else {
                format!("the {name} of partition(s) {changed:?} changed")
            };
            return Err(format!(
                "{:?} commit of secret {secret} ({new}) must append to the {name} of partition {tenant}, but {what}",
                self.mode
            ));
        }
        let (old_queue, new_queue) = match self.mode {
            SpecMode::Sync => (before.partition(tenant), after.partition(tenant)),
            SpecMode::Async => (before.outbox_rows(tenant), after.outbox_rows(tenant)),
        };
        if new_queue.len() != old_queue.len() + 1
            || new_queue[..old_queue.len()] != *old_queue
            || new_queue[old_queue.len()] != (secret, new)
        {
            return Err(format!(
                "commit of secret {secret} ({new}) must append exactly (secret {secret}, {new}) to the {name} of \
                 partition {tenant}: {}",
                describe_queue(name, tenant, old_queue, new_queue)
            ));
        }
        Ok(SpecAction::Commit { secret, delete: new.deleted })
    }

    /// A publish: the oldest outbox rows of one partition move, in order, to
    /// the end of its log.
    fn explain_publish(
        &self,
        before: &impl StateView,
        after: &impl StateView,
        diff: &StateDiff,
    ) -> Result<SpecAction, String> {
        let mut tenants = diff.log.clone();
        tenants.extend(&diff.outbox);
        tenants.sort_unstable();
        tenants.dedup();
        if self.mode == SpecMode::Sync || tenants.len() != 1 {
            let why = match self.mode {
                SpecMode::Sync => "with no commit (sync mode has no publisher)".to_string(),
                SpecMode::Async => format!("in partitions {tenants:?} in one step (a publish moves one partition)"),
            };
            return Err(format!("the log or outbox changed {why}: {}", diff.describe(before, after)));
        }
        let tenant = tenants[0];
        let (old_log, new_log) = (before.partition(tenant), after.partition(tenant));
        let (old_outbox, new_outbox) = (before.outbox_rows(tenant), after.outbox_rows(tenant));
        if new_log.len() < old_log.len() || new_log[..old_log.len()] != *old_log {
            return Err(format!(
                "log partition {tenant} lost or rewrote events (a log only grows): {}",
                describe_queue("log", tenant, old_log, new_log)
            ));
        }
        if new_log.len() == old_log.len() {
            return Err(format!(
                "outbox partition {tenant} changed with no commit and nothing published: {}",
                describe_queue("outbox", tenant, old_outbox, new_outbox)
            ));
        }
        let published = &new_log[old_log.len()..];
        if let Some(index) = (0..published.len()).find(|&index| old_outbox.get(index) != Some(&published[index])) {
            let (secret, record) = published[index];
            let position = old_log.len() + index + 1;
            let why = match old_outbox.get(index) {
                Some(_) if old_outbox.contains(&published[index]) => "out of commit order",
                _ => "with no outbox row for it",
            };
            return Err(format!(
                "log partition {tenant}: secret {secret} {record} published at position {position} {why}; the outbox \
                 row due there was {}",
                old_outbox
                    .get(index)
                    .map_or("none".to_string(), |(secret, record)| format!("secret {secret} {record}"))
            ));
        }
        if *new_outbox != old_outbox[published.len()..] {
            return Err(format!(
                "outbox partition {tenant}: publishing {} rows must remove exactly those rows: {}",
                published.len(),
                describe_queue("outbox", tenant, old_outbox, new_outbox)
            ));
        }
        Ok(SpecAction::Publish { tenant, rows: published.len() })
    }

    /// A backfill page (migration only): entries appended to the logs (sync)
    /// or outboxes (async) of one or more partitions, each the remote's
    /// current record of a secret of that partition; the remote unchanged.
    fn explain_backfill(
        &self,
        before: &impl StateView,
        after: &impl StateView,
        diff: &StateDiff,
    ) -> Result<Vec<SpecAction>, String> {
        let (name, changed, other) = match self.mode {
            SpecMode::Sync => ("log", &diff.log, &diff.outbox),
            SpecMode::Async => ("outbox", &diff.outbox, &diff.log),
        };
        if !other.is_empty() {
            return Err(format!(
                "a backfill emits to the {name} only ({:?} mode), yet more changed: {}",
                self.mode,
                diff.describe(before, after)
            ));
        }
        let mut actions = Vec::new();
        for &tenant in changed {
            let (old, new) = match self.mode {
                SpecMode::Sync => (before.partition(tenant), after.partition(tenant)),
                SpecMode::Async => (before.outbox_rows(tenant), after.outbox_rows(tenant)),
            };
            if new.len() <= old.len() || new[..old.len()] != *old {
                return Err(format!(
                    "{name} partition {tenant} changed with no commit, and not by appending a backfill's entries: {}",
                    describe_queue(name, tenant, old, new)
                ));
            }
            for &(secret, record) in &new[old.len()..] {
                let owner = self.tenant_of(secret)?;
                if owner != tenant {
                    return Err(format!(
                        "a backfill emitted secret {secret} ({record}) to {name} partition {tenant}, but it belongs \
                         to partition {owner}"
                    ));
                }
                let remote = before.remote(secret);
                if remote != Some(&record) {
                    return Err(format!(
                        "a backfill emitted secret {secret} at {record} to {name} partition {tenant}, but a \
                         backfill carries the remote's current record, {}",
                        show(remote)
                    ));
                }
                actions.push(SpecAction::Backfill { secret });
            }
        }
        Ok(actions)
    }

    /// A host step: a crash, a restart, or applying the next events of one or
    /// more partitions (one `Apply` per partition, in partition order).
    fn explain_host_step(
        &self,
        before: &impl StateView,
        after: &impl StateView,
        diff: &StateDiff,
    ) -> Result<Vec<SpecAction>, String> {
        let &[host] = diff.hosts.as_slice() else {
            return Err(format!(
                "hosts {:?} changed in one step; a spec step moves one host: {}",
                diff.hosts,
                diff.describe(before, after)
            ));
        };
        let (Some(old), Some(new)) = (before.host(host), after.host(host)) else {
            return Err(format!("host {host} appeared or disappeared; the spec's hosts are fixed"));
        };
        let tenants = changed_keys(&old.cursors, &new.cursors, |cursor| *cursor == 0, PartialEq::eq);
        if old.up != new.up {
            if old.records != new.records || !tenants.is_empty() {
                let what = if old.up { "crashed" } else { "restarted" };
                return Err(format!(
                    "host {host} {what} and changed its records or cursors in the same step: {}",
                    describe_host(old, new)
                ));
            }
            return Ok(vec![if old.up { SpecAction::Crash { host } } else { SpecAction::Restart { host } }]);
        }
        if !old.up {
            return Err(format!("host {host} is down, yet it changed: {}", describe_host(old, new)));
        }
        if tenants.is_empty() {
            return Err(format!("host {host}: records changed with no cursor moving: {}", describe_host(old, new)));
        }
        self.explain_applies(before, host, old, new, &tenants)
    }

    /// `host` (up) applying the next events of each partition in `tenants`,
    /// whose cursors moved: one `Apply` per partition, checked against the
    /// host's records after the step.
    fn explain_applies(
        &self,
        before: &impl StateView,
        host: u32,
        old: &SpecHost,
        new: &SpecHost,
        tenants: &[u32],
    ) -> Result<Vec<SpecAction>, String> {
        // The records the applied events raise; every other record is expected unchanged.
        let mut raised: BTreeMap<u32, SpecRecord> = BTreeMap::new();
        let mut actions = Vec::with_capacity(tenants.len());
        for &tenant in tenants {
            let (from, to) = (old.cursor(tenant), new.cursor(tenant));
            let log = before.partition(tenant);
            if to < from {
                return Err(format!("host {host}: cursor of partition {tenant} moved backwards, {from} → {to}"));
            }
            if to > log.len() as u64 {
                return Err(format!(
                    "host {host}: cursor of partition {tenant} moved {from} → {to}, past the {} events of its log",
                    log.len()
                ));
            }
            for &(secret, record) in &log[from as usize..to as usize] {
                let current = raised.get(&secret).or(old.records.get(&secret)).map_or(0, |current| current.version);
                if record.version > current {
                    raised.insert(secret, record);
                }
            }
            actions.push(SpecAction::Apply { host, tenant, events: to - from });
        }
        let wrong_raised = raised.iter().find(|(secret, record)| new.records.get(secret) != Some(record));
        let wrong_other = changed_keys(&old.records, &new.records, |_| false, PartialEq::eq)
            .into_iter()
            .find(|secret| !raised.contains_key(secret));
        let wrong = match (wrong_raised.map(|(secret, _)| *secret), wrong_other) {
            (Some(left), Some(right)) => Some(left.min(right)),
            (left, right) => left.or(right),
        };
        if let Some(secret) = wrong {
            return Err(format!(
                "host {host}: {actions:?} take secret {secret} from {} to {}, but the host holds {}",
                show(old.records.get(&secret)),
                show(raised.get(&secret).or(old.records.get(&secret))),
                show(new.records.get(&secret))
            ));
        }
        Ok(actions)
    }

    /// Adds the migration's steps enabled within the bounds: the phase switch,
    /// and a backfill of each secret whose partition holds fewer than
    /// `versions_per_secret_max` entries of it (commits without an event are
    /// among the commits).
    fn migration_actions(&self, state: &SpecState, actions: &mut Vec<SpecAction>) {
        actions.push(SpecAction::Phase { replicating: !state.replicating });
        for (&secret, &tenant) in &self.secret_tenants {
            if !state.remote.contains_key(&secret) {
                continue;
            }
            let queued = state.partition(tenant).iter().chain(state.outbox_rows(tenant));
            if (queued.filter(|(queued, _)| *queued == secret).count() as u64) < self.versions_per_secret_max {
                actions.push(SpecAction::Backfill { secret });
            }
        }
    }

    /// Adds the commits enabled within the bounds.
    fn commit_actions(&self, state: &SpecState, actions: &mut Vec<SpecAction>) {
        for &secret in self.secret_tenants.keys() {
            let current = state.remote.get(&secret);
            let version = current.map_or(0, |record| record.version);
            if version >= self.versions_per_secret_max || current.is_some_and(|record| record.deleted) {
                continue;
            }
            actions.push(SpecAction::Commit { secret, delete: false });
            if current.is_some() {
                actions.push(SpecAction::Commit { secret, delete: true });
            }
            if self.migration && !state.replicating {
                actions.push(SpecAction::CommitWithoutEvent { secret, delete: false });
                if current.is_some() {
                    actions.push(SpecAction::CommitWithoutEvent { secret, delete: true });
                }
            }
        }
    }
}

impl Model for ReplicationSpec {
    type State = SpecState;
    type Action = SpecAction;

    fn init_states(&self) -> Vec<SpecState> {
        let up = SpecHost { up: true, ..SpecHost::default() };
        let hosts = (0..self.host_count).map(|host| (host, up.clone())).collect();
        vec![SpecState { hosts, replicating: !self.migration, ..SpecState::default() }]
    }

    fn actions(&self, state: &SpecState, actions: &mut Vec<SpecAction>) {
        self.commit_actions(state, actions);
        for (&tenant, rows) in &state.outbox {
            actions.extend((1..=rows.len()).map(|rows| SpecAction::Publish { tenant, rows }));
        }
        for (&host, entry) in state.hosts.iter().filter(|(_, entry)| entry.up) {
            for (&tenant, log) in &state.log {
                let available = log.len() as u64 - entry.cursor(tenant).min(log.len() as u64);
                actions.extend((1..=available).map(|events| SpecAction::Apply { host, tenant, events }));
            }
        }
        let down = state.hosts.values().filter(|entry| !entry.up).count();
        for (&host, entry) in &state.hosts {
            if entry.up && down < self.hosts_down_max as usize {
                actions.push(SpecAction::Crash { host });
            } else if !entry.up {
                actions.push(SpecAction::Restart { host });
            }
        }
        if self.migration {
            self.migration_actions(state, actions);
        }
    }

    fn next_state(&self, state: &SpecState, action: SpecAction) -> Option<SpecState> {
        match self.step(state, &action) {
            Ok(next) => Some(next),
            Err(why) => panic!("the model enabled {action:?}, which the spec refuses: {why}"),
        }
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties: Vec<Property<Self>> = vec![
            Property::always(PropertyId::Rep2.as_str(), |spec, state| spec.check_rep_2(state).is_ok()),
            Property::always(PropertyId::Rep3.as_str(), |spec, state| spec.check_rep_3(state).is_ok()),
            Property::always(PropertyId::Rep4.as_str(), |spec, state| spec.check_rep_4(state).is_ok()),
            Property::always(PropertyId::Rep5.as_str(), |spec, state| spec.check_rep_5(state).is_ok()),
            Property::sometimes(CONVERGED, |_, state| converged(state)),
            Property::sometimes(HOST_HOLDS_TOMBSTONE, |_, state| host_holds_tombstone(state)),
            Property::sometimes(DOWN_HOST_LAGS, |_, state| down_host_lags(state)),
        ];
        if self.migration {
            properties.push(Property::sometimes(BACKFILL_REEMITTED, |_, state| !reemissions(state).is_empty()));
            properties.push(Property::sometimes(HOST_PASSED_STALE_EVENT, |_, state| host_passed_stale_event(state)));
        }
        properties
    }
}

/// One invariant check of [`ReplicationSpec`]: `Err` says what broke.
type StateCheck = fn(&ReplicationSpec, &SpecState) -> Result<(), String>;

/// Whether at least one secret is committed, the outbox is empty, some host
/// is up, and every up host holds exactly the remote's records.
fn converged(state: &SpecState) -> bool {
    !state.remote.is_empty()
        && state.outbox.values().all(Vec::is_empty)
        && state.hosts.values().any(|entry| entry.up)
        && state.hosts.values().filter(|entry| entry.up).all(|entry| entry.records == state.remote)
}

/// Whether some host holds a tombstone.
fn host_holds_tombstone(state: &SpecState) -> bool {
    state.hosts.values().any(|entry| entry.records.values().any(|record| record.deleted))
}

/// Whether some down host holds an older version of a secret than the remote.
fn down_host_lags(state: &SpecState) -> bool {
    state
        .hosts
        .values()
        .filter(|entry| !entry.up)
        .any(|entry| state.remote.iter().any(|(secret, record)| entry.version(*secret) < record.version))
}

/// Every re-emission in `state`'s partitions: (partition, position in its log
/// then outbox) of each entry equal to the previous entry of its secret.
fn reemissions(state: &SpecState) -> Vec<(u32, usize)> {
    let mut found = Vec::new();
    for tenant in partitions(state) {
        let mut last: BTreeMap<u32, SpecRecord> = BTreeMap::new();
        for (position, (secret, record)) in state.partition(tenant).iter().chain(state.outbox_rows(tenant)).enumerate()
        {
            if last.insert(*secret, *record) == Some(*record) {
                found.push((tenant, position));
            }
        }
    }
    found
}

/// Whether some host's cursor passed a re-emission in the log.
fn host_passed_stale_event(state: &SpecState) -> bool {
    reemissions(state)
        .into_iter()
        .any(|(tenant, position)| state.hosts.values().any(|entry| entry.cursor(tenant) > position as u64))
}

/// Applies `events` in order, forward-only: a record is replaced only by a
/// higher version; a stale event changes nothing.
fn apply_events(records: &mut BTreeMap<u32, SpecRecord>, events: &[(u32, SpecRecord)]) {
    for &(secret, record) in events {
        let current = records.get(&secret).map_or(0, |current| current.version);
        if record.version > current {
            records.insert(secret, record);
        }
    }
}

/// Every partition with a log or outbox entry, in order.
fn partitions(state: &SpecState) -> Vec<u32> {
    union_keys(&state.log, &state.outbox)
}

/// The keys of either map, in order, each once.
fn union_keys<A, B>(left: &BTreeMap<u32, A>, right: &BTreeMap<u32, B>) -> Vec<u32> {
    let mut keys: Vec<u32> = left.keys().chain(right.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The keys whose values differ between two maps, in order, by one merge of
/// the two; a key missing on one side counts as a value for which `is_absent`
/// holds.
fn changed_keys<V>(
    before: &BTreeMap<u32, V>,
    after: &BTreeMap<u32, V>,
    is_absent: fn(&V) -> bool,
    same: fn(&V, &V) -> bool,
) -> Vec<u32> {
    let mut changed = Vec::new();
    let mut left = before.iter().peekable();
    let mut right = after.iter().peekable();
    loop {
        let order = match (left.peek(), right.peek()) {
            (None, None) => return changed,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((key_left, _)), Some((key_right, _))) => key_left.cmp(key_right),
        };
        match order {
            std::cmp::Ordering::Less => {
                let (key, value) = left.next().expect("peeked");
                if !is_absent(value) {
                    changed.push(*key);
                }
            }
            std::cmp::Ordering::Greater => {
                let (key, value) = right.next().expect("peeked");
                if !is_absent(value) {
                    changed.push(*key);
                }
            }
            std::cmp::Ordering::Equal => {
                let ((key, old), (_, new)) = (left.next().expect("peeked"), right.next().expect("peeked"));
                if !same(old, new) {
                    changed.push(*key);
                }
            }
        }
    }
}

/// Whether two hosts are equal, a missing cursor counting as 0.
fn same_host(old: &SpecHost, new: &SpecHost) -> bool {
    old.up == new.up
        && old.records == new.records
        && changed_keys(&old.cursors, &new.cursors, |cursor| *cursor == 0, PartialEq::eq).is_empty()
}

/// What changed between two states, component by component (keys in order).
#[derive(Clone)]
struct StateDiff {
    /// Secrets whose remote record changed.
    remote: Vec<u32>,
    /// Partitions whose outbox changed.
    outbox: Vec<u32>,
    /// Partitions whose log changed.
    log: Vec<u32>,
    /// Hosts that changed.
    hosts: Vec<u32>,
    /// Whether replication was switched on or off.
    replicating: bool,
}

impl StateDiff {
    fn new(before: &SpecState, after: &SpecState) -> StateDiff {
        StateDiff {
            remote: changed_keys(&before.remote, &after.remote, |_| false, PartialEq::eq),
            outbox: changed_keys(&before.outbox, &after.outbox, Vec::is_empty, PartialEq::eq),
            log: changed_keys(&before.log, &after.log, Vec::is_empty, PartialEq::eq),
            hosts: changed_keys(&before.hosts, &after.hosts, |_| false, same_host),
            replicating: before.replicating != after.replicating,
        }
    }

    /// Whether nothing changed.
    fn is_empty(&self) -> bool {
        self.remote.is_empty()
            && self.outbox.is_empty()
            && self.log.is_empty()
            && self.hosts.is_empty()
            && !self.replicating
    }

    /// What the current step of `journal` changed: its touched keys whose
    /// values differ, by the same rules as [`StateDiff::new`] (untouched keys
    /// are equal on both sides).
    fn of_step(journal: &SpecJournal) -> StateDiff {
        let state = &journal.state;
        let changed = |keys: &mut dyn Iterator<Item = u32>| {
            let mut keys: Vec<u32> = keys.collect();
            keys.sort_unstable();
            keys
        };
        let remote = journal.remote.iter().filter(|(secret, old)| old.as_ref() != state.remote.get(secret));
        let outbox = journal.outbox.iter().filter(|(tenant, old)| old.as_slice() != state.outbox_rows(*tenant));
        let log = journal.log.iter().filter(|(tenant, length)| *length != state.partition(*tenant).len());
        let hosts = journal.hosts.iter().filter(|(host, old)| match (old, state.hosts.get(host)) {
            (Some(old), Some(new)) => !same_host(old, new),
            (old, new) => old.is_some() != new.is_some(),
        });
        StateDiff {
            remote: changed(&mut remote.map(|(secret, _)| *secret)),
            outbox: changed(&mut outbox.map(|(tenant, _)| *tenant)),
            log: changed(&mut log.map(|(tenant, _)| *tenant)),
            hosts: changed(&mut hosts.map(|(host, _)| *host)),
            replicating: journal.replicating.is_some_and(|old| old != state.replicating),
        }
    }

    /// Every change, one clause each, for error messages.
    fn describe(&self, before: &impl StateView, after: &impl StateView) -> String {
        let mut clauses = Vec::new();
        if self.replicating {
            let show = |on: bool| if on { "on" } else { "off" };
            clauses.push(format!("replication {} → {}", show(before.replicating()), show(after.replicating())));
        }
        for secret in &self.remote {
            clauses.push(format!(
                "remote secret {secret}: {} → {}",
                show(before.remote(*secret)),
                show(after.remote(*secret))
            ));
        }
        for tenant in &self.outbox {
            clauses.push(describe_queue("outbox", *tenant, before.outbox_rows(*tenant), after.outbox_rows(*tenant)));
        }
        for tenant in &self.log {
            clauses.push(describe_queue("log", *tenant, before.partition(*tenant), after.partition(*tenant)));
        }
        for host in &self.hosts {
            match (before.host(*host), after.host(*host)) {
                (Some(old), Some(new)) => clauses.push(format!("host {host}: {}", describe_host(old, new))),
                (old, _) => {
                    clauses.push(format!("host {host} {}", if old.is_some() { "vanished" } else { "appeared" }))
                }
            }
        }
        clauses.join("; ")
    }
}

/// A record or "absent".
fn show(record: Option<&SpecRecord>) -> String {
    record.map_or_else(|| "absent".to_string(), SpecRecord::to_string)
}

/// How a log or outbox partition changed: lengths and the first difference.
fn describe_queue(name: &str, tenant: u32, old: &[(u32, SpecRecord)], new: &[(u32, SpecRecord)]) -> String {
    let first = (0..old.len().max(new.len())).find(|&index| old.get(index) != new.get(index));
    let entry = |row: Option<&(u32, SpecRecord)>| {
        row.map_or("nothing".to_string(), |(secret, record)| format!("secret {secret} {record}"))
    };
    match first {
        None => format!("{name} partition {tenant} unchanged"),
        Some(index) => format!(
            "{name} partition {tenant}: {} → {} entries, entry {} was {} and is {}",
            old.len(),
            new.len(),
            index + 1,
            entry(old.get(index)),
            entry(new.get(index))
        ),
    }
}

/// How a host changed: liveness, records and cursors that differ.
fn describe_host(old: &SpecHost, new: &SpecHost) -> String {
    let mut parts = Vec::new();
    if old.up != new.up {
        parts.push(format!("up {} → {}", old.up, new.up));
    }
    for secret in changed_keys(&old.records, &new.records, |_| false, PartialEq::eq) {
        parts.push(format!("secret {secret} {} → {}", show(old.records.get(&secret)), show(new.records.get(&secret))));
    }
    for tenant in changed_keys(&old.cursors, &new.cursors, |cursor| *cursor == 0, PartialEq::eq) {
        parts.push(format!("cursor of partition {tenant} {} → {}", old.cursor(tenant), new.cursor(tenant)));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests;

/// Checks `spec` exhaustively with BFS and DFS, asserts every property
/// (every "always" holds, every "sometimes" is reached), and returns the
/// unique state count (the same for both). For the specs' tests.
#[cfg(test)]
fn check_exhaustively<M>(spec: M) -> usize
where
    M: Model + Clone + Send + Sync + 'static,
    M::State: std::fmt::Debug + std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    M::Action: std::fmt::Debug + Eq + Clone + Send + Sync + 'static,
{
    use stateright::Checker;
    let bfs = spec.clone().checker().spawn_bfs().join();
    bfs.assert_properties();
    let dfs = spec.checker().spawn_dfs().join();
    dfs.assert_properties();
    assert_eq!(bfs.unique_state_count(), dfs.unique_state_count(), "BFS and DFS explore the same states");
    bfs.unique_state_count()
}
