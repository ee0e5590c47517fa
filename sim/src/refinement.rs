//! Refinement: every step of the world must map to one step of the abstract
//! replication spec (`model::spec`) or to a stutter (REF-1).
//!
//! [`abstract_state`] maps a world onto a [`SpecState`]: the store's secret
//! versions and tombstones, its outbox rows in commit order, its log
//! partitions, each host's records, cursors and liveness, and whether
//! replication is on (always without a migration; with one, whether the
//! stored phase replicates). A host entry's content is not in it, so a storage
//! fault or a verifier's repair (both keep the version) is a stutter. [`Refinement`]
//! asks the spec which step explains a pair of consecutive abstract states.
//! Both drivers call it; the simulator recomputes the abstraction only after
//! steps that told the properties something (a commit, an append, an apply, a
//! crash, a restart, a backfill emission, a stored phase), since no other step
//! can change it, and refreshes it in
//! place ([`SpecJournal`]) so a step costs what it changed, not a copy of the
//! abstraction. The model checker recomputes, after every step, each part of
//! the abstraction whose part of the world changed (the store, or one host),
//! whatever the observations say ([`abstract_state_after`]).
//!
//! A sharded world has a log per cell, which this spec (one log, one set of
//! hosts) cannot hold, so there REF-1 is judged against the routing spec
//! instead ([`routing`]: its abstraction, what it leaves out and why).

use std::collections::BTreeSet;
use std::sync::Arc;

use model::spec::{ReplicationSpec, SpecHost, SpecJournal, SpecMode, SpecRecord, SpecState};
use model::{Observation, PropertyId, Violation};
use vault::host::LocalStore;
use vault::interceptor::InterceptorMode;
use vault::migration::{PhaseConfig, PHASE_KEY};
use vault::store::{Key, Store, Table, Value};
use vault::types::{Lifecycle, SecretRecord, Seq, TenantId};

use crate::world::{Action, NodeId, StepReport, World};

pub mod routing;

pub use routing::{abstract_routing, RoutingRefinement, RoutingTracker};

/// The refinement check of one world configuration.
#[derive(Clone, Debug)]
pub struct Refinement {
    spec: ReplicationSpec,
}

impl Refinement {
    /// The check for worlds in `mode` with `hosts` hosts, where secret `s`
    /// belongs to partition `secret_tenants[s]`.
    pub fn new(mode: InterceptorMode, secret_tenants: impl IntoIterator<Item = (u32, u32)>, hosts: u32) -> Refinement {
        let mode = match mode {
            InterceptorMode::Sync => SpecMode::Sync,
            InterceptorMode::Async => SpecMode::Async,
        };
        Refinement { spec: ReplicationSpec::new(mode, secret_tenants, hosts) }
    }

    /// The same check for worlds with a live migration: the spec's phase
    /// switches, commits without an event and backfill emissions are steps.
    pub fn with_migration(self) -> Refinement {
        Refinement { spec: self.spec.with_migration() }
    }

    /// Whether the check is for worlds with a live migration.
    pub fn migration(&self) -> bool {
        self.spec.migration
    }

    /// Checks that `before` → `after` is a spec step or a stutter.
    pub fn check(&self, before: &SpecState, after: &SpecState) -> Result<(), Violation> {
        self.spec.explains(before, after).map(|_| ()).map_err(ref1)
    }

    /// Checks that the last step recorded in `journal` is a spec step or a
    /// stutter: the same verdict as [`Refinement::check`] on the states
    /// before and after it.
    pub fn check_step(&self, journal: &SpecJournal) -> Result<(), Violation> {
        self.spec.explains_step(journal).map(|_| ()).map_err(ref1)
    }
}

/// The REF-1 violation of a step the spec does not explain (`detail` says why).
fn ref1(detail: String) -> Violation {
    Violation {
        property: PropertyId::Ref1,
        detail: format!("no step of the replication spec explains this step: {detail}"),
    }
}

/// Follows a world step by step, checking each step against the spec with
/// the incremental abstraction ([`refresh_abstract`], in place, remembering
/// only what the step overwrote), or with the whole abstraction recomputed
/// after every step ([`RefinementTracker::full`]).
#[derive(Clone, Debug)]
pub struct RefinementTracker {
    refinement: Refinement,
    /// The abstraction of the world as followed so far.
    journal: SpecJournal,
    full: bool,
    /// The world shards: the replication spec has one log and one set of
    /// hosts, so the replication part is off, and REF-1 is judged against
    /// the routing spec instead ([`routing`]).
    off: bool,
    /// The routing refinement of a sharded world (`None`: the world does not
    /// shard, or places by a fixed shard, which the routing spec does not).
    routing: Option<RoutingTracker>,
}

impl RefinementTracker {
    /// Starts following `world` (in its current state), incrementally: what
    /// the simulator can afford on every step. If `world` has a migration,
    /// so does the check ([`Refinement::with_migration`]).
    pub fn new(refinement: Refinement, world: &World) -> RefinementTracker {
        let refinement = if world.config().migration.is_some() { refinement.with_migration() } else { refinement };
        let off = world.config().sharding.is_some();
        let routing = RoutingRefinement::of(world).map(|routing| RoutingTracker::new(routing, world));
        RefinementTracker { refinement, journal: SpecJournal::new(abstract_state(world)), full: false, off, routing }
    }

    /// Starts following `world`, recomputing the whole abstraction after every
    /// step as the model checker does, so a change no observation reports is
    /// seen at its step. For checker traces, which are short.
    pub fn full(refinement: Refinement, world: &World) -> RefinementTracker {
        RefinementTracker { full: true, ..RefinementTracker::new(refinement, world) }
    }

    /// After `world` took `action` (which produced `report`), adds a REF-1
    /// violation to the report if no spec step explains the change.
    pub fn on_step(&mut self, world: &World, action: &Action, report: &mut StepReport) {
        if let Some(routing) = &mut self.routing {
            routing.on_step(world, action, report);
        }
        if self.off {
            return;
        }
        if self.full {
            let after = abstract_state(world);
            if let Err(violation) = self.refinement.check(self.journal.state(), &after) {
                report.violations.push(violation);
            }
            self.journal = SpecJournal::new(after);
            return;
        }
        let host_fault = matches!(action, Action::Crash(NodeId::Host(_)) | Action::Restart(NodeId::Host(_)));
        if report.observations.is_empty() && !host_fault {
            return; // Nothing the abstraction holds can have changed.
        }
        self.journal.start_step();
        refresh_abstract(&mut self.journal, world, action, &report.observations);
        if let Err(violation) = self.refinement.check_step(&self.journal) {
            report.violations.push(violation);
        }
    }

    /// At the end of a run: a REF-1 violation if the world changed in a way no
    /// step reported (the full abstraction differs from the followed one).
    pub fn end_check(&self, world: &World) -> Option<Violation> {
        if let Some(violation) = self.routing.as_ref().and_then(|routing| routing.end_check(world)) {
            return Some(violation);
        }
        (!self.off && abstract_state(world) != *self.journal.state()).then(|| Violation {
            property: PropertyId::Ref1,
            detail: "the world changed in a way no step reported to the properties".to_string(),
        })
    }

    /// Whether REF-1 is judged: against the replication spec for a world that
    /// does not shard, against the routing spec for one that does (by the
    /// least-loaded rule).
    pub fn judges(&self) -> bool {
        !self.off || self.routing.is_some()
    }
}

/// The world seen as a state of the abstract replication spec.
pub fn abstract_state(world: &World) -> SpecState {
    let mut state = SpecState::default();
    abstract_store(&mut state, world);
    for (host, up, durable) in world.hosts() {
        state.hosts.insert(host, spec_host(up, durable));
    }
    state
}

/// The abstraction of `world`, which one step made from `parent_world`, whose
/// abstraction is `parent`: equal to [`abstract_state`]`(world)`, built from
/// `parent` and the parts of the world the step changed. A part (the store,
/// or one host's liveness and durable state) that is the very same value as
/// in `parent_world` (shared behind its `Arc`, untouched by the step) or an
/// equal one is taken from `parent`; every other part is recomputed in full
/// from the world, so a change no observation reports is still seen. When
/// nothing changed, the result is `parent` itself (the same `Arc`).
pub fn abstract_state_after(parent: &Arc<SpecState>, parent_world: &World, world: &World) -> Arc<SpecState> {
    let (old_store, new_store) = (parent_world.store(), world.store());
    let store_changed = !std::ptr::eq(old_store, new_store) && old_store != new_store;
    assert_eq!(parent_world.hosts().count(), world.hosts().count(), "a step neither adds nor removes hosts");
    let mut hosts_changed = Vec::new();
    for ((host, old_up, old_durable), (_, up, durable)) in parent_world.hosts().zip(world.hosts()) {
        if old_up != up || !(std::ptr::eq(old_durable, durable) || old_durable == durable) {
            hosts_changed.push((host, up, durable));
        }
    }
    if !store_changed && hosts_changed.is_empty() {
        return Arc::clone(parent);
    }
    let mut state = if store_changed {
        let mut state = SpecState { hosts: parent.hosts.clone(), ..SpecState::default() };
        abstract_store(&mut state, world);
        state
    } else {
        SpecState::clone(parent)
    };
    for (host, up, durable) in hosts_changed {
        state.hosts.insert(host, spec_host(up, durable));
    }
    Arc::new(state)
}

/// Adds the store's part of the abstraction of `world` to `state`: secrets,
/// outbox rows, log partitions and whether replication is on.
fn abstract_store(state: &mut SpecState, world: &World) {
    let store = world.store();
    state.replicating = replicating(world.config().migration.is_some(), store);
    for row in store.scan(Table::Secrets, None, usize::MAX).rows {
        if let (Key::Secret(secret), Some(Value::Secret(record))) = (row.key, &row.value) {
            state.remote.insert(secret.0, spec_record(record));
        }
    }
    for row in store.scan(Table::Outbox, None, usize::MAX).rows {
        if let (Key::Outbox(key), Some(Value::Outbox(mutation))) = (row.key, &row.value) {
            state.outbox.entry(key.tenant.0).or_default().push((mutation.secret.0, spec_record(&mutation.record)));
        }
    }
    for tenant in store.partitions() {
        let events = store.poll(tenant, Seq::ZERO, usize::MAX);
        let partition = events.iter().map(|event| (event.mutation.secret.0, spec_record(&event.mutation.record)));
        state.log.insert(tenant.0, partition.collect());
    }
}

/// Brings `journal`'s state (the abstraction of the world before `action`) up
/// to date with the world after it, in `journal`'s current step, touching
/// only what the step's observations name:
/// the secrets committed, the partitions appended to or whose outbox changed,
/// the host that applied, crashed or restarted, and whether replication is on
/// after a phase was stored. O(what changed), so the
/// simulator can afford it on every step; [`abstract_state`] at the end of a
/// run confirms nothing changed unobserved.
pub fn refresh_abstract(journal: &mut SpecJournal, world: &World, action: &Action, observations: &[Observation]) {
    let store = world.store();
    let mut tenants = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for observation in observations {
        match observation {
            Observation::Committed { secret, tenant, .. } => {
                let entry = store.read(&Key::Secret(vault::types::SecretId(*secret)));
                if let Some(Value::Secret(record)) = &entry.value {
                    journal.set_remote(*secret, spec_record(record));
                }
                tenants.insert(*tenant);
            }
            Observation::Appended { tenant, .. } => {
                tenants.insert(*tenant);
            }
            Observation::HostHolds { host, .. }
            | Observation::HostCursor { host, .. }
            | Observation::HostCrashed { host }
            | Observation::HostRestarted { host, .. } => {
                hosts.insert(*host);
            }
            Observation::BackfillEmitted { tenant, .. } => {
                tenants.insert(*tenant);
            }
            Observation::PhaseStored { .. } => {
                journal.set_replicating(replicating(world.config().migration.is_some(), store));
            }
            Observation::Corrupted { host, .. } | Observation::Repaired { host, .. } => {
                hosts.insert(*host);
            }
            Observation::Acknowledged { .. }
            | Observation::HostRead { .. }
            | Observation::HostStranded { .. }
            | Observation::Admitted { .. }
            | Observation::Throttled { .. }
            | Observation::BudgetedRequest { .. }
            | Observation::PhaseLearned { .. }
            | Observation::WalkScan { .. }
            | Observation::BackfillDone { .. }
            | Observation::RepairOrdered { .. }
            | Observation::VerifyDone
            | Observation::ShardRegistered { .. }
            | Observation::CellReady { .. }
            | Observation::ShardKnown { .. }
            | Observation::Placed { .. }
            | Observation::ShardWrite { .. }
            | Observation::RouteRequested { .. }
            | Observation::Routed { .. }
            | Observation::RequestAnswered { .. }
            | Observation::StoreOutage { .. } => {}
        }
    }
    if let Action::Crash(NodeId::Host(host)) | Action::Restart(NodeId::Host(host)) = action {
        hosts.insert(*host);
    }
    for tenant in tenants {
        refresh_partition(journal, world, TenantId(tenant));
    }
    for (host, up, durable) in world.hosts().filter(|(host, _, _)| hosts.contains(host)) {
        journal.set_host(host, spec_host(up, durable));
    }
}

fn refresh_partition(journal: &mut SpecJournal, world: &World, tenant: TenantId) {
    let store = world.store();
    let rows = store.scan_outbox(tenant, usize::MAX);
    let outbox: Vec<(u32, SpecRecord)> = rows
        .iter()
        .filter_map(|row| match &row.value {
            Some(Value::Outbox(mutation)) => Some((mutation.secret.0, spec_record(&mutation.record))),
            _ => None,
        })
        .collect();
    journal.set_outbox(tenant.0, outbox);
    let known = journal.state().partition(tenant.0).len();
    let new = store.poll(tenant, Seq(known as u64), usize::MAX);
    journal
        .append_log(tenant.0, new.iter().map(|event| (event.mutation.secret.0, spec_record(&event.mutation.record))));
}

/// Whether commits must emit their events: always without a migration; with
/// one, when the phase stored in `store` replicates (absent: `Off`).
fn replicating(migration: bool, store: &Store) -> bool {
    !migration || PhaseConfig::from_entries(&[store.read(&PHASE_KEY)]).phase.replicates()
}

fn spec_host(up: bool, durable: &LocalStore) -> SpecHost {
    let records = durable.records().map(|(secret, record)| (secret.0, spec_record(record))).collect();
    let cursors = durable.cursors().into_iter().map(|(tenant, seq)| (tenant.0, seq.0)).collect();
    SpecHost { up, records, cursors }
}

fn spec_record(record: &SecretRecord) -> SpecRecord {
    SpecRecord { version: record.version.0, deleted: record.lifecycle == Lifecycle::Deleted }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::MigrationConfig;
    use crate::world::{Action, WorldConfig};
    use model::spec::SpecAction;
    use vault::bugzoo::Bugs;
    use vault::host::HostConfig;
    use vault::migration::Phase;
    use vault::quota::BucketConfig;
    use vault::store::{CommitOutcome, IdempotencyToken, Transaction, Write};
    use vault::types::{Content, SecretId, TenantId, Time, VaultId};
    use vault::worker::{Operation, RequestId, WorkerConfig};

    fn world(mode: InterceptorMode) -> World {
        World::new(world_config(mode))
    }

    /// A world with a live migration that stays in phase `Off`.
    fn migrating_world() -> World {
        let budget = BucketConfig::per_interval(4, 1_000_000);
        World::new(WorldConfig {
            migration: Some(MigrationConfig {
                seeded_secrets: 0,
                schedule: Vec::new(),
                backfill_page_keys: 2,
                backfill_budget: Some(budget),
                verify_page_keys: 2,
                verify_budget: Some(budget),
                phase_poll_ns: vec![1_000_000],
                request_timeout_ns: 10_000_000,
            }),
            ..world_config(InterceptorMode::Sync)
        })
    }

    fn world_config(mode: InterceptorMode) -> WorldConfig {
        WorldConfig {
            workers: 1,
            hosts: 1,
            vaults: vec![(VaultId(0), TenantId(0))],
            mode,
            worker: WorkerConfig::new(mode),
            host: HostConfig::default(),
            publisher_batch_events_max: 4,
            publish_interval_ns: 1_000_000,
            activator_poll_interval_ns: 1_000_000,
            bugs: Bugs::none(),
            migration: None,
            sharding: None,
        }
    }

    /// Delivers the oldest message, or fires the earliest timer, checking
    /// refinement at every step; returns how many steps changed the abstraction.
    fn run_checked(world: &mut World, refinement: &Refinement, steps: usize) -> usize {
        let mut changed = 0;
        let mut before = Arc::new(abstract_state(world));
        for _ in 0..steps {
            let parent_world = world.clone();
            let action = match world.in_flight().keys().next() {
                Some(message) => Action::Deliver { message: *message, at: world.now() },
                None => {
                    let (node, at) = world.timers().iter().min_by_key(|(_, at)| **at).map(|(n, a)| (*n, *a)).unwrap();
                    Action::FireTimer { node, at }
                }
            };
            let report = world.step(&action);
            let after = abstract_state_after(&before, &parent_world, world);
            assert_eq!(*after, abstract_state(world), "the abstraction after {action:?} built from the parent's");
            refinement.check(&before, &after).unwrap_or_else(|violation| panic!("{action:?}: {violation}"));
            let mut journal = SpecJournal::new(SpecState::clone(&before));
            journal.start_step();
            refresh_abstract(&mut journal, world, &action, &report.observations);
            assert_eq!(*journal.state(), *after, "the incremental abstraction after {action:?} equals the full one");
            assert_eq!(refinement.check_step(&journal), refinement.check(&before, &after), "{action:?}");
            changed += usize::from(before != after);
            before = after;
        }
        changed
    }

    #[test]
    fn the_real_code_refines_the_spec_in_both_modes() {
        for mode in [InterceptorMode::Sync, InterceptorMode::Async] {
            let mut world = world(mode);
            let refinement = Refinement::new(mode, [(0, 0)], 1);
            let content = Content::new(b"x");
            let operation =
                Operation::CreateSecret { secret: SecretId(0), vault: VaultId(0), content, token: IdempotencyToken(1) };
            world.step(&Action::Submit { request: RequestId(0), worker: 0, operation, at: Time::ZERO });
            let changed = run_checked(&mut world, &refinement, 200);
            // A commit, (a publish,) an apply, the activation and its apply.
            assert!(changed >= 4, "{mode:?}: {changed} abstract steps");
            let end = abstract_state(&world);
            assert_eq!(end.remote[&0].version, 2, "created and activated");
            assert_eq!(end.hosts[&0].records[&0].version, 2, "replicated");
        }
    }

    /// Runs a create of secret 0 through `world` until host 0 holds it.
    fn create_and_replicate(world: &mut World) {
        let content = Content::new(b"x");
        let operation =
            Operation::CreateSecret { secret: SecretId(0), vault: VaultId(0), content, token: IdempotencyToken(1) };
        world.step(&Action::Submit { request: RequestId(0), worker: 0, operation, at: Time::ZERO });
        let refinement = Refinement::new(world.config().mode, [(0, 0)], 1);
        run_checked(world, &refinement, 200);
    }

    #[test]
    fn a_storage_fault_and_its_repair_are_stutters() {
        let mut world = world(InterceptorMode::Sync);
        create_and_replicate(&mut world);
        let (_, up, durable) = world.hosts().next().expect("host 0");
        let record = durable.record(SecretId(0)).expect("replicated").clone();
        let mut damaged = durable.clone();
        assert!(damaged.flip_bit(SecretId(0)), "a content to damage");
        assert_ne!(damaged, *durable);
        assert_eq!(spec_host(up, &damaged), spec_host(up, durable), "the abstraction keeps no content");
        let mut repaired = damaged.clone();
        assert!(repaired.repair(SecretId(0), &record), "the same version, another content");
        assert_eq!(repaired, *durable);
        assert_eq!(spec_host(up, &repaired), spec_host(up, &damaged), "a repair keeps the version");
    }

    #[test]
    fn replication_is_on_without_a_migration_and_with_one_as_the_stored_phase_says() {
        let mut store = Store::new();
        assert!(replicating(false, &store), "a replicated cell");
        assert!(!replicating(true, &store), "no phase stored: Off");
        for phase in Phase::ALL {
            let put =
                Transaction { reads: Vec::new(), writes: vec![Write::Put(PHASE_KEY, Value::Config(phase.code()))] };
            assert!(matches!(store.commit(&put), CommitOutcome::Committed { .. }));
            assert_eq!(replicating(true, &store), phase.replicates(), "{phase:?}");
            assert!(replicating(false, &store), "without a migration the phase is not read");
        }
    }

    #[test]
    fn a_migrating_world_starts_with_replication_off_and_a_stored_phase_refreshes_it() {
        let world = migrating_world();
        let state = abstract_state(&world);
        assert!(!state.replicating, "a migration starts in phase Off");
        assert!(abstract_state(&self::world(InterceptorMode::Sync)).replicating);

        let tracker = RefinementTracker::new(Refinement::new(InterceptorMode::Sync, [(0, 0)], 1), &world);
        assert!(tracker.refinement.migration(), "the tracker follows the world's configuration");
        assert!(!Refinement::new(InterceptorMode::Sync, [(0, 0)], 1).migration());

        // As if the abstraction had replication on, and a step stored `Off`.
        let mut journal = SpecJournal::new(SpecState { replicating: true, ..state.clone() });
        journal.start_step();
        let stored = [Observation::PhaseStored { phase: 0, since: None }];
        refresh_abstract(
            &mut journal,
            &world,
            &Action::FireTimer { node: NodeId::Activator(0), at: Time::ZERO },
            &stored,
        );
        assert_eq!(*journal.state(), state);
        let migrating = Refinement::new(InterceptorMode::Sync, [(0, 0)], 1).with_migration();
        assert_eq!(migrating.spec.explains_step(&journal), Ok(vec![SpecAction::Phase { replicating: false }]));
        let plain = Refinement::new(InterceptorMode::Sync, [(0, 0)], 1);
        let violation = plain.check_step(&journal).expect_err("a phase switch needs a migration");
        assert!(violation.detail.contains("none runs"), "{}", violation.detail);
    }

    #[test]
    fn a_step_no_spec_step_explains_is_a_ref1_violation() {
        let refinement = Refinement::new(InterceptorMode::Sync, [(0, 0)], 1);
        let before = abstract_state(&world(InterceptorMode::Sync));
        let mut after = before.clone();
        // A host holding a version no event carried.
        after.hosts.get_mut(&0).unwrap().records.insert(0, SpecRecord { version: 3, deleted: false });
        let violation = refinement.check(&before, &after).unwrap_err();
        assert_eq!(violation.property, PropertyId::Ref1);
        assert!(refinement.check(&before, &before).is_ok(), "a stutter is fine");
    }
}
