//! The replication properties REP-1 … REP-9, checked incrementally, the
//! migration properties MIG-1 … MIG-7 when the world migrates (see
//! [`crate::migration`]) and the router properties RTE-1 … RTE-5 when it
//! shards its vaults (see [`crate::routing`]).
//!
//! A [`PropertyChecker`] keeps the abstract history it needs (committed
//! versions, log contents, each host's records and cursors, acknowledgements)
//! and checks each [`Observation`] against it as it arrives, touching only the
//! secrets and partitions the observation names: no whole-world scan per step.
//! [`PropertyChecker::check_quiescent`] checks what only holds once the system
//! is healed and quiet (REP-4's completeness, REP-6, REP-8's durability).
//!
//! Three rules make room for a live migration, whether or not its checker is
//! on. A commit made without replication (`Committed { replicated: false }`)
//! owes the log no event. A backfill emission (`BackfillEmitted`) lets exactly
//! one later append of that (secret, version) through even if it was appended
//! before, as long as it does not go below the last version of that secret in
//! the partition: a later migration epoch emits again what an earlier one did.
//! And a host entry damaged by a storage fault (`Corrupted`) is no fabrication
//! while the host merely reports it unchanged (`HostHolds` after an apply that
//! changed nothing); serving it to a client still is.
//!
//! The checker observes; it never steers. A violation is returned, with the
//! property's stable ID and a sentence saying what broke.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::migration::MigrationChecker;
use crate::routing::{RoutingChecker, RoutingOptions};
use crate::throttle::{BudgetChecker, LimitShape, ThrottleChecker, ThrottleLimits};
use crate::view::{Lifecycle, Observation, SecretState, View};

/// A property's stable ID, as in `specs/invariants.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PropertyId {
    /// No fabricated data.
    Rep1,
    /// A host's version never decreases.
    Rep2,
    /// No resurrection after an applied delete.
    Rep3,
    /// Log partitions are gap-free, exactly once, versions increasing.
    Rep4,
    /// A cursor never passes a missing effect.
    Rep5,
    /// Convergence after heal and quiet.
    Rep6,
    /// Active implies applied on every live host; no NotFound for Active.
    /// A restarted host counts as live once it caught up with the log as it
    /// stood when it came back.
    Rep7,
    /// No acknowledged write is lost.
    Rep8,
    /// Optimistic commits are serializable.
    Rep9,
    /// Refinement: every step of the world maps to a step of the abstract
    /// replication spec or to a stutter.
    Ref1,
    /// Admitted requests per tenant and service-wide stay within rate × window
    /// plus burst, for every window.
    Thr1,
    /// A tenant within its own quota is not throttled while service capacity
    /// remains (another tenant's burst does not starve it).
    Thr2,
    /// A migration job's store requests stay within its budget: rate × window
    /// plus burst, for every window.
    Thr3,
    /// A backfill emission carries the secret's latest committed record: it
    /// never overrides a live event.
    Mig1,
    /// When the backfiller reports done, every secret older than `t1` and not
    /// deleted is on every live host once it caught up.
    Mig2,
    /// Backfiller and verifier resume from their bookmark, skip nothing and
    /// redo at most one bookmark interval.
    Mig3,
    /// The verifier reports a mismatch only for the same version with another
    /// checksum; its repairs never regress a host.
    Mig4,
    /// Every corruption injected ahead of the verify walk is repaired before
    /// verification completes.
    Mig5,
    /// After switchover no read answers NotFound (or not-yet-Active) for a
    /// secret `Active` at the remote store.
    Mig6,
    /// Outside switchover no read is answered from a host's local store, so a
    /// rollback serves nothing the previous phase would not.
    Mig7,
    /// A vault is placed on one shard only, and its writes commit there.
    Rte1,
    /// A request is answered only by its vault's home shard, and never
    /// NotFound for a vault placed before it was sent.
    Rte2,
    /// No placement and no route names a shard that is not ready.
    Rte3,
    /// A request is routed to its resource's home shard, whatever the
    /// caller's tenancy.
    Rte4,
    /// A request fails Unavailable only while its home shard's store or the
    /// base store is down (judged only in worlds whose faults are outages).
    Rte5,
}

impl PropertyId {
    /// Every property, in catalogue order.
    pub const ALL: [PropertyId; 25] = [
        PropertyId::Rep1,
        PropertyId::Rep2,
        PropertyId::Rep3,
        PropertyId::Rep4,
        PropertyId::Rep5,
        PropertyId::Rep6,
        PropertyId::Rep7,
        PropertyId::Rep8,
        PropertyId::Rep9,
        PropertyId::Ref1,
        PropertyId::Thr1,
        PropertyId::Thr2,
        PropertyId::Thr3,
        PropertyId::Mig1,
        PropertyId::Mig2,
        PropertyId::Mig3,
        PropertyId::Mig4,
        PropertyId::Mig5,
        PropertyId::Mig6,
        PropertyId::Mig7,
        PropertyId::Rte1,
        PropertyId::Rte2,
        PropertyId::Rte3,
        PropertyId::Rte4,
        PropertyId::Rte5,
    ];

    /// The stable ID, e.g. `"REP-4"`.
    pub fn as_str(self) -> &'static str {
        match self {
            PropertyId::Rep1 => "REP-1",
            PropertyId::Rep2 => "REP-2",
            PropertyId::Rep3 => "REP-3",
            PropertyId::Rep4 => "REP-4",
            PropertyId::Rep5 => "REP-5",
            PropertyId::Rep6 => "REP-6",
            PropertyId::Rep7 => "REP-7",
            PropertyId::Rep8 => "REP-8",
            PropertyId::Rep9 => "REP-9",
            PropertyId::Ref1 => "REF-1",
            PropertyId::Thr1 => "THR-1",
            PropertyId::Thr2 => "THR-2",
            PropertyId::Thr3 => "THR-3",
            PropertyId::Mig1 => "MIG-1",
            PropertyId::Mig2 => "MIG-2",
            PropertyId::Mig3 => "MIG-3",
            PropertyId::Mig4 => "MIG-4",
            PropertyId::Mig5 => "MIG-5",
            PropertyId::Mig6 => "MIG-6",
            PropertyId::Mig7 => "MIG-7",
            PropertyId::Rte1 => "RTE-1",
            PropertyId::Rte2 => "RTE-2",
            PropertyId::Rte3 => "RTE-3",
            PropertyId::Rte4 => "RTE-4",
            PropertyId::Rte5 => "RTE-5",
        }
    }

    /// The property with stable ID `id`, if any.
    pub fn parse(id: &str) -> Option<PropertyId> {
        PropertyId::ALL.into_iter().find(|property| property.as_str() == id)
    }
}

impl fmt::Display for PropertyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A property that does not hold, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Violation {
    /// Which property.
    pub property: PropertyId,
    /// What broke, in one sentence.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.property, self.detail)
    }
}

/// The incremental checker of REP-1 … REP-9, of THR-1 and THR-2 when it was
/// given the throttling limits, of THR-3 for the jobs whose budget it was
/// given, of MIG-1 … MIG-7 when the world migrates, and of RTE-1 … RTE-5
/// when it shards its vaults. See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PropertyChecker {
    /// Every committed (secret, version) and its record.
    committed: BTreeMap<(u32, u64), SecretState>,
    /// Every (secret, version) committed without its replication event.
    unreplicated: BTreeSet<(u32, u64)>,
    /// Backfill emissions of each (secret, version) not yet appended.
    backfill_credits: BTreeMap<(u32, u64), u32>,
    /// A backfill that reported done while some events were still outbox
    /// rows (async mode): its `t1`, and the (secret, version) events, its own
    /// emissions and live ones, that must reach the log before MIG-2 is judged.
    deferred_backfill_done: Option<(u64, BTreeSet<(u32, u64)>)>,
    /// The latest committed record of each secret.
    latest: BTreeMap<u32, SecretState>,
    /// Each partition's events: (secret, record).
    partitions: BTreeMap<u32, Vec<(u32, SecretState)>>,
    /// The last version of each (partition, secret) appended.
    last_appended: BTreeMap<(u32, u32), u64>,
    /// Every (secret, version) appended to some partition.
    appended: BTreeSet<(u32, u64)>,
    /// Each host's records as last observed (survive crashes).
    host_records: BTreeMap<u32, BTreeMap<u32, SecretState>>,
    /// Host entries a storage fault damaged, by (host, secret), until repaired
    /// or replaced.
    damaged: BTreeMap<(u32, u32), SecretState>,
    /// Each host's cursors as last observed.
    host_cursors: BTreeMap<u32, BTreeMap<u32, u64>>,
    /// Hosts currently up.
    live: BTreeSet<u32>,
    /// Hosts that restarted and have not yet caught up with the log as it was
    /// when they came back: the positions each must reach to count as live.
    recovering: BTreeMap<u32, BTreeMap<u32, u64>>,
    /// The position of each secret's first event: its partition and seq.
    first_event: BTreeMap<u32, (u32, u64)>,
    /// For each activated secret, the hosts that were live at activation.
    activated_on: BTreeMap<u32, BTreeSet<u32>>,
    /// The highest acknowledged version of each secret.
    acknowledged: BTreeMap<u32, u64>,
    /// THR-1 and THR-2, when the world throttles (see [`crate::throttle`]).
    throttle: Option<ThrottleChecker>,
    /// THR-3, for the migration jobs whose budget it was given.
    budgets: BudgetChecker,
    /// MIG-1 … MIG-7, when the world migrates (see [`crate::migration`]).
    migration: Option<MigrationChecker>,
    /// RTE-1 … RTE-5, when the world shards its vaults (see [`crate::routing`]).
    routing: Option<RoutingChecker>,
}

impl PropertyChecker {
    /// A checker for a cell whose hosts are `hosts`, all up.
    pub fn new(hosts: &[u32]) -> PropertyChecker {
        PropertyChecker {
            live: hosts.iter().copied().collect(),
            host_records: hosts.iter().map(|host| (*host, BTreeMap::new())).collect(),
            host_cursors: hosts.iter().map(|host| (*host, BTreeMap::new())).collect(),
            ..PropertyChecker::default()
        }
    }

    /// The same checker, also judging THR-1 and THR-2 against `limits`.
    pub fn with_throttle_limits(self, limits: ThrottleLimits) -> PropertyChecker {
        PropertyChecker { throttle: Some(ThrottleChecker::new(limits)), ..self }
    }

    /// The same checker, also judging THR-3 for migration job `job` (its walk
    /// number, as in [`Observation::BudgetedRequest`]) against `budget`.
    pub fn with_job_budget(mut self, job: u8, budget: LimitShape) -> PropertyChecker {
        self.budgets = self.budgets.with_budget(job, budget);
        self
    }

    /// The same checker, also judging MIG-1 … MIG-7 for a world that runs a
    /// live migration of its cell, starting in phase `Off`; REP-6's quiet
    /// convergence is then required only from phase `Verify` on. Call it before
    /// the first observation.
    pub fn with_migration(self) -> PropertyChecker {
        let hosts: Vec<u32> = self.host_records.keys().copied().collect();
        PropertyChecker { migration: Some(MigrationChecker::new(&hosts)), ..self }
    }

    /// The migration checker, when the world migrates.
    pub fn migration(&self) -> Option<&MigrationChecker> {
        self.migration.as_ref()
    }

    /// The same checker, also judging RTE-1 … RTE-5 for a world that shards
    /// its vaults, with what the world promises about its faults (`options`).
    /// Without it the sharding observations are ignored. Call it before the
    /// first observation.
    pub fn with_routing(self, options: RoutingOptions) -> PropertyChecker {
        PropertyChecker { routing: Some(RoutingChecker::new(options)), ..self }
    }

    /// The routing checker, when the world shards its vaults.
    pub fn routing(&self) -> Option<&RoutingChecker> {
        self.routing.as_ref()
    }

    /// Whether two hosts ever served by different migration phases at once
    /// (MIG-8's condition); false when the world does not migrate.
    pub fn mixed_phases_seen(&self) -> bool {
        self.migration.as_ref().is_some_and(MigrationChecker::mixed_phases_seen)
    }

    /// Checks one observation and records it; returns the violations it shows.
    pub fn observe(&mut self, observation: &Observation) -> Vec<Violation> {
        let mut violations = Vec::new();
        match observation {
            Observation::Committed { secret, state, commit, replicated, .. } => {
                self.on_committed(*secret, *state, &mut violations);
                if !replicated {
                    self.unreplicated.insert((*secret, state.version));
                }
                if let Some(migration) = &mut self.migration {
                    migration.on_committed(*secret, *state, *commit);
                }
            }
            Observation::Appended { tenant, seq, secret, state } => {
                self.on_appended(*tenant, *seq, *secret, *state, &mut violations);
            }
            Observation::HostHolds { host, secret, state } => {
                self.on_host_holds(*host, *secret, *state, &mut violations);
                if let Some(migration) = &mut self.migration {
                    migration.on_host_holds(*host, *secret, *state);
                }
            }
            Observation::HostCursor { host, tenant, seq } => {
                self.on_host_cursor(*host, *tenant, *seq, &mut violations);
                if let Some(migration) = &mut self.migration {
                    migration.on_host_cursor(*host, *tenant, *seq, self.host_records.get(host), &mut violations);
                }
            }
            Observation::HostCrashed { host } => {
                self.live.remove(host);
                self.recovering.remove(host);
                if let Some(migration) = &mut self.migration {
                    migration.on_host_crashed(*host);
                }
            }
            Observation::HostRestarted { host, records, cursors } => {
                self.on_host_restarted(*host, records, cursors, &mut violations);
            }
            Observation::Acknowledged { secret, version } => {
                self.on_acknowledged(*secret, *version, &mut violations);
            }
            Observation::HostRead { host, secret, found } => {
                self.on_host_read(*host, *secret, *found, &mut violations);
                if let Some(migration) = &self.migration {
                    migration.on_host_read(*host, *secret, *found, &mut violations);
                }
            }
            Observation::HostStranded { host } => violations.push(violation(
                PropertyId::Rep6,
                format!("host {host} stopped: no timer armed and no message in flight, so it can never catch up"),
            )),
            Observation::Admitted { tenant, at_ns } => {
                if let Some(throttle) = &mut self.throttle {
                    throttle.on_admitted(*tenant, *at_ns, &mut violations);
                }
            }
            Observation::Throttled { tenant, at_ns, .. } => match &mut self.throttle {
                Some(throttle) => throttle.on_throttled(*tenant, *at_ns, &mut violations),
                None => violations.push(violation(
                    PropertyId::Thr2,
                    format!("tenant {tenant} was throttled at {at_ns} ns, but no limit is configured"),
                )),
            },
            Observation::BudgetedRequest { job, at_ns } => self.budgets.on_request(*job, *at_ns, &mut violations),
            Observation::BackfillEmitted { secret, state, .. } => {
                *self.backfill_credits.entry((*secret, state.version)).or_default() += 1;
                if let Some(migration) = &self.migration {
                    migration.on_backfill_emitted(*secret, *state, &mut violations);
                }
            }
            Observation::Corrupted { host, secret, state } => self.on_corrupted(*host, *secret, *state),
            Observation::Repaired { host, secret, state } => {
                self.on_repaired(*host, *secret, *state, &mut violations);
            }
            Observation::PhaseStored { .. }
            | Observation::PhaseLearned { .. }
            | Observation::WalkScan { .. }
            | Observation::BackfillDone { .. }
            | Observation::RepairOrdered { .. }
            | Observation::VerifyDone => self.observe_migration(observation, &mut violations),
            Observation::ShardRegistered { .. }
            | Observation::CellReady { .. }
            | Observation::ShardKnown { .. }
            | Observation::Placed { .. }
            | Observation::ShardWrite { .. }
            | Observation::RouteRequested { .. }
            | Observation::Routed { .. }
            | Observation::RequestAnswered { .. }
            | Observation::StoreOutage { .. } => {
                if let Some(routing) = &mut self.routing {
                    routing.observe(observation, &mut violations);
                }
            }
        }
        violations
    }

    /// MIG-2 for a backfill that reported done, once every event emitted by
    /// then (the backfill's and the live writes') is in the log: at once in
    /// sync mode, after the publisher's rounds in async mode. "After
    /// catch-up" means after applying them: a secret the backfill skipped
    /// because a live write replaced it arrives by that write's event.
    fn judge_backfill_done(&mut self, out: &mut Vec<Violation>) {
        let Some((since, waiting)) = &self.deferred_backfill_done else { return };
        if waiting.iter().any(|key| !self.appended.contains(key)) {
            return;
        }
        let since = *since;
        self.deferred_backfill_done = None;
        let Some(migration) = &mut self.migration else { return };
        let heads: BTreeMap<u32, u64> =
            self.partitions.iter().map(|(tenant, events)| (*tenant, events.len() as u64)).collect();
        migration.on_backfill_done(since, &self.live, &heads, &self.host_cursors, &self.host_records, out);
    }

    /// The observations only the migration properties judge.
    fn observe_migration(&mut self, observation: &Observation, out: &mut Vec<Violation>) {
        let Some(migration) = &mut self.migration else {
            return;
        };
        match observation {
            Observation::PhaseStored { phase, .. } => migration.on_phase_stored(*phase),
            Observation::PhaseLearned { host, phase } => migration.on_phase_learned(*host, *phase),
            Observation::WalkScan { walk, from, stored, page_keys } => {
                migration.on_walk_scan(*walk, *from, *stored, *page_keys, out);
            }
            Observation::BackfillDone { since } => {
                let emitted: BTreeSet<(u32, u64)> = self.backfill_credits.keys().copied().collect();
                let live = self
                    .committed
                    .keys()
                    .filter(|key| !self.appended.contains(key) && !self.unreplicated.contains(key))
                    .copied();
                self.deferred_backfill_done = Some((*since, emitted.into_iter().chain(live).collect()));
                self.judge_backfill_done(out);
            }
            Observation::RepairOrdered { host, secret, remote, host_had } => {
                migration.on_repair_ordered(*host, *secret, *remote, *host_had, out);
            }
            Observation::VerifyDone => migration.on_verify_done(out),
            _ => {}
        }
    }

    /// A storage fault damaged `host`'s entry: it is the host's record now,
    /// and REP-1 excuses the host reporting it unchanged until it is repaired
    /// or replaced. Damage that left the entry as committed (nothing to flip)
    /// is no damage.
    fn on_corrupted(&mut self, host: u32, secret: u32, state: SecretState) {
        self.host_records.entry(host).or_default().insert(secret, state);
        if self.committed.get(&(secret, state.version)) != Some(&state) {
            self.damaged.insert((host, secret), state);
            if let Some(migration) = &mut self.migration {
                migration.on_corrupted(host, secret, state);
            }
        } else {
            // A second flip of the same bit restores the entry: intact again.
            self.damaged.remove(&(host, secret));
            if let Some(migration) = &mut self.migration {
                migration.on_restored(host, secret);
            }
        }
    }

    /// A repair replaced `host`'s entry: REP-1/2/3 judge it like an apply,
    /// and MIG-4 says it must not move the host back.
    fn on_repaired(&mut self, host: u32, secret: u32, state: SecretState, out: &mut Vec<Violation>) {
        let held = self.host_records.get(&host).and_then(|records| records.get(&secret)).copied();
        self.damaged.remove(&(host, secret));
        self.on_host_holds(host, secret, state, out);
        if let Some(migration) = &mut self.migration {
            migration.on_repaired(host, secret, state, held, out);
        }
    }

    fn on_committed(&mut self, secret: u32, state: SecretState, violations: &mut Vec<Violation>) {
        let previous = self.latest.get(&secret).copied();
        let expected = previous.map_or(1, |previous| previous.version + 1);
        if state.version != expected {
            violations.push(Violation {
                property: PropertyId::Rep9,
                detail: format!(
                    "secret {secret} committed at version {} but the last committed version was {:?}: \
                     two commits raced on the same read",
                    state.version,
                    previous.map(|previous| previous.version)
                ),
            });
        }
        let activation = previous.is_some_and(|previous| previous.lifecycle == Lifecycle::Creating)
            && state.lifecycle == Lifecycle::Active;
        if activation {
            self.on_activated(secret, state, violations);
        }
        self.committed.insert((secret, state.version), state);
        self.latest.insert(secret, state);
    }

    fn on_activated(&mut self, secret: u32, state: SecretState, violations: &mut Vec<Violation>) {
        let creating_version = state.version - 1;
        for host in &self.live {
            let held = self.host_version(*host, secret);
            if held < creating_version {
                violations.push(Violation {
                    property: PropertyId::Rep7,
                    detail: format!(
                        "secret {secret} became Active while live host {host} holds version {held} \
                         (needs {creating_version})"
                    ),
                });
            }
        }
        self.activated_on.insert(secret, self.live.clone());
    }

    fn on_appended(&mut self, tenant: u32, seq: u64, secret: u32, state: SecretState, out: &mut Vec<Violation>) {
        let partition = self.partitions.entry(tenant).or_default();
        let expected_seq = partition.len() as u64 + 1;
        if seq != expected_seq {
            out.push(violation(PropertyId::Rep4, format!("partition {tenant} got seq {seq}, expected {expected_seq}")));
        }
        let key = (secret, state.version);
        let last_version = self.last_appended.insert((tenant, secret), state.version);
        // A live event: strictly newer, of a replicated commit, appended once.
        // Without migration every append is one.
        let live_event = last_version.is_none_or(|last| last < state.version)
            && !self.appended.contains(&key)
            && !self.unreplicated.contains(&key);
        let credit = self.backfill_credits.get_mut(&key).filter(|_| !live_event);
        if let Some(credit) = credit {
            // A backfill emission: it may repeat the last version, never go below it.
            *credit -= 1;
            if *credit == 0 {
                self.backfill_credits.remove(&key);
            }
            if let Some(last) = last_version.filter(|last| *last > state.version) {
                out.push(violation(
                    PropertyId::Rep4,
                    format!(
                        "partition {tenant} carries a backfill emission of secret {secret} at version {} after \
                         version {last}",
                        state.version
                    ),
                ));
            }
        } else {
            if let Some(last) = last_version.filter(|last| *last >= state.version) {
                out.push(violation(
                    PropertyId::Rep4,
                    format!(
                        "partition {tenant} carries secret {secret} at version {} after version {last}",
                        state.version
                    ),
                ));
            }
            if self.appended.contains(&key) {
                out.push(violation(
                    PropertyId::Rep4,
                    format!("secret {secret} version {} appended twice", state.version),
                ));
            } else if self.unreplicated.contains(&key) {
                out.push(violation(
                    PropertyId::Rep4,
                    format!(
                        "partition {tenant} carries secret {secret} at version {}, committed without a replication \
                         event and not emitted by a backfill: a fabricated event",
                        state.version
                    ),
                ));
            }
        }
        self.appended.insert(key);
        partition.push((secret, state));
        self.first_event.entry(secret).or_insert((tenant, seq));
        self.check_committed(secret, state, "the log", out);
        self.judge_backfill_done(out);
    }

    fn on_host_holds(&mut self, host: u32, secret: u32, state: SecretState, out: &mut Vec<Violation>) {
        match self.damaged.get(&(host, secret)) {
            // The world reports the damaged entry unchanged after an apply
            // that did not replace it: the fault is not a fabrication.
            Some(damaged) if *damaged == state => {}
            _ => {
                self.damaged.remove(&(host, secret));
                self.check_committed(secret, state, &format!("host {host}"), out);
            }
        }
        let records = self.host_records.entry(host).or_default();
        if let Some(previous) = records.get(&secret) {
            if state.version < previous.version {
                out.push(violation(
                    PropertyId::Rep2,
                    format!(
                        "host {host} moved secret {secret} back from version {} to {}",
                        previous.version, state.version
                    ),
                ));
            }
            if previous.lifecycle == Lifecycle::Deleted && state.lifecycle != Lifecycle::Deleted {
                out.push(violation(
                    PropertyId::Rep3,
                    format!(
                        "host {host} resurrected secret {secret} (deleted at version {}) as {:?} version {}",
                        previous.version, state.lifecycle, state.version
                    ),
                ));
            }
        }
        records.insert(secret, state);
    }

    /// A restarted host must have recovered everything it held (REP-2: no
    /// version went back, crashes included) and nothing its cursors do not
    /// cover (REP-5 over the whole recovered prefix). It serves again only once
    /// it has caught up with the log as it stood at the restart (REP-7 counts
    /// it as live from then on).
    fn on_host_restarted(
        &mut self,
        host: u32,
        records: &[(u32, SecretState)],
        cursors: &[(u32, u64)],
        out: &mut Vec<Violation>,
    ) {
        let recovered: BTreeMap<u32, SecretState> = records.iter().copied().collect();
        let held = self.host_records.get(&host).cloned().unwrap_or_default();
        for (secret, before) in &held {
            let after = recovered.get(secret).map_or(0, |state| state.version);
            if after < before.version {
                out.push(violation(
                    PropertyId::Rep2,
                    format!(
                        "host {host} held secret {secret} at version {} before its crash and {after} after",
                        before.version
                    ),
                ));
            }
        }
        for (secret, state) in &recovered {
            if self.damaged.get(&(host, *secret)) != Some(state) {
                self.check_committed(*secret, *state, &format!("host {host} after its restart"), out);
            }
        }
        self.damaged
            .retain(|(damaged_host, secret), damaged| *damaged_host != host || recovered.get(secret) == Some(damaged));
        if let Some(migration) = &mut self.migration {
            migration.on_host_restarted(host, &recovered);
        }
        self.host_records.insert(host, recovered);
        self.host_cursors.insert(host, BTreeMap::new());
        for (tenant, seq) in cursors {
            self.on_host_cursor(host, *tenant, *seq, out);
        }
        let cursors = self.host_cursors.get(&host);
        let targets: BTreeMap<u32, u64> = self
            .partitions
            .iter()
            .map(|(tenant, events)| (*tenant, events.len() as u64))
            .filter(|(tenant, head)| cursors.and_then(|cursors| cursors.get(tenant)).copied().unwrap_or(0) < *head)
            .collect();
        if targets.is_empty() {
            self.live.insert(host);
        } else {
            self.recovering.insert(host, targets);
        }
    }

    fn on_host_cursor(&mut self, host: u32, tenant: u32, seq: u64, out: &mut Vec<Violation>) {
        if let Some(targets) = self.recovering.get_mut(&host) {
            if targets.get(&tenant).is_some_and(|target| seq >= *target) {
                targets.remove(&tenant);
            }
            if targets.is_empty() {
                self.recovering.remove(&host);
                self.live.insert(host);
            }
        }
        let cursors = self.host_cursors.entry(host).or_default();
        let previous = cursors.insert(tenant, seq).unwrap_or(0);
        let partition = self.partitions.get(&tenant).map_or(&[][..], Vec::as_slice);
        if seq > partition.len() as u64 {
            out.push(violation(
                PropertyId::Rep5,
                format!("host {host} cursor {seq} in partition {tenant} is past its head {}", partition.len()),
            ));
            return;
        }
        let passed =
            usize::try_from(previous.min(seq)).expect("cursor fits")..usize::try_from(seq).expect("cursor fits");
        for (secret, state) in &partition[passed] {
            let held =
                self.host_records.get(&host).and_then(|records| records.get(secret)).map_or(0, |held| held.version);
            if held < state.version {
                out.push(violation(
                    PropertyId::Rep5,
                    format!(
                        "host {host} cursor {seq} in partition {tenant} passed secret {secret} version {} \
                         but holds version {held}",
                        state.version
                    ),
                ));
            }
        }
    }

    fn on_acknowledged(&mut self, secret: u32, version: u64, out: &mut Vec<Violation>) {
        if !self.committed.contains_key(&(secret, version)) {
            out.push(violation(
                PropertyId::Rep8,
                format!("a client was told secret {secret} version {version} committed, but it never was"),
            ));
        }
        let acknowledged = self.acknowledged.entry(secret).or_default();
        *acknowledged = (*acknowledged).max(version);
    }

    fn on_host_read(&mut self, host: u32, secret: u32, found: Option<SecretState>, out: &mut Vec<Violation>) {
        match found {
            Some(state) => self.check_committed(secret, state, &format!("a read from host {host}"), out),
            None => {
                let active_now = self.latest.get(&secret).is_some_and(|latest| latest.lifecycle == Lifecycle::Active);
                let applied_at_activation = self.activated_on.get(&secret).is_some_and(|hosts| hosts.contains(&host));
                let passed = self.first_event.get(&secret).is_some_and(|(tenant, seq)| {
                    self.host_cursors
                        .get(&host)
                        .and_then(|cursors| cursors.get(tenant))
                        .is_some_and(|cursor| cursor >= seq)
                });
                if active_now && (applied_at_activation || passed) {
                    out.push(violation(
                        PropertyId::Rep7,
                        format!("host {host} answered NotFound for Active secret {secret}, which it has applied"),
                    ));
                }
            }
        }
    }

    /// REP-1: `state` of `secret`, seen at `place`, must have been committed as is.
    fn check_committed(&self, secret: u32, state: SecretState, place: &str, out: &mut Vec<Violation>) {
        match self.committed.get(&(secret, state.version)) {
            Some(committed) if *committed == state => {}
            Some(committed) => out.push(violation(
                PropertyId::Rep1,
                format!(
                    "{place} holds secret {secret} version {} as {state:?}, committed as {committed:?}",
                    state.version
                ),
            )),
            None => out.push(violation(
                PropertyId::Rep1,
                format!("{place} holds secret {secret} version {}, which was never committed", state.version),
            )),
        }
    }

    fn host_version(&self, host: u32, secret: u32) -> u64 {
        self.host_records.get(&host).and_then(|records| records.get(&secret)).map_or(0, |state| state.version)
    }

    /// Checks the properties that hold once the system is healed and quiet:
    /// every mutation committed with its replication event is in the log
    /// (REP-4), every live host equals the remote store (REP-6; in a migrating
    /// world only once the stored phase is `Verify` or later; an entry a
    /// storage fault damaged at the store's version counts as converged), and every
    /// acknowledged write survives (REP-8).
    pub fn check_quiescent(&self, view: &View) -> Vec<Violation> {
        let mut out = Vec::new();
        for key @ (secret, version) in self.committed.keys() {
            if !self.appended.contains(key) && !self.unreplicated.contains(key) {
                out.push(violation(
                    PropertyId::Rep4,
                    format!("secret {secret} version {version} committed but never reached the log"),
                ));
            }
        }
        let converges = self.migration.as_ref().is_none_or(MigrationChecker::requires_convergence);
        for (host, host_view) in view.hosts.iter().filter(|(_, host_view)| converges && host_view.live) {
            // A damaged entry at the store's version has converged as far as
            // replication goes; storage damage is MIG-5's to judge.
            let records: BTreeMap<u32, SecretState> = host_view
                .records
                .iter()
                .map(|(secret, state)| {
                    let remote = view.remote.get(secret);
                    let damaged = self.damaged.get(&(*host, *secret)) == Some(state);
                    match remote {
                        Some(remote) if damaged && remote.version == state.version => (*secret, *remote),
                        _ => (*secret, *state),
                    }
                })
                .collect();
            if records != view.remote {
                let differing = first_difference(&records, &view.remote);
                out.push(violation(
                    PropertyId::Rep6,
                    format!("host {host} did not converge: secret {differing:?} differs from the remote store"),
                ));
            }
        }
        for (secret, version) in &self.acknowledged {
            let remote = view.remote.get(secret).map_or(0, |state| state.version);
            if remote < *version {
                out.push(violation(
                    PropertyId::Rep8,
                    format!("secret {secret} acknowledged at version {version} but the store holds {remote}"),
                ));
            }
        }
        out
    }
}

fn violation(property: PropertyId, detail: String) -> Violation {
    Violation { property, detail }
}

fn first_difference(left: &BTreeMap<u32, SecretState>, right: &BTreeMap<u32, SecretState>) -> Option<u32> {
    left.keys().chain(right.keys()).copied().find(|secret| left.get(secret) != right.get(secret))
}

#[cfg(test)]
mod tests;
