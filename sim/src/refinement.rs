//! Refinement: every step of the world must map to one step of the abstract
//! replication spec (`model::spec`) or to a stutter (REF-1).
//!
//! [`abstract_state`] maps a world onto a [`SpecState`]: the store's secret
//! versions and tombstones, its outbox rows in commit order, its log
//! partitions, and each host's records, cursors and liveness. [`Refinement`]
//! asks the spec which step explains a pair of consecutive abstract states.
//! Both drivers call it; the simulator recomputes the abstraction only after
//! steps that told the properties something (a commit, an append, an apply, a
//! crash, a restart), since no other step can change it, and refreshes it in
//! place ([`SpecJournal`]) so a step costs what it changed, not a copy of the
//! abstraction. The model checker recomputes, after every step, each part of
//! the abstraction whose part of the world changed (the store, or one host),
//! whatever the observations say ([`abstract_state_after`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use model::spec::{ReplicationSpec, SpecHost, SpecJournal, SpecMode, SpecRecord, SpecState};
use model::{Observation, PropertyId, Violation};
use vault::host::LocalStore;
use vault::interceptor::InterceptorMode;
use vault::store::{Key, Store, Table, Value};
use vault::types::{Lifecycle, SecretRecord, Seq, TenantId};

use crate::world::{Action, NodeId, StepReport, World};

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
}

impl RefinementTracker {
    /// Starts following `world` (in its current state), incrementally: what
    /// the simulator can afford on every step.
    pub fn new(refinement: Refinement, world: &World) -> RefinementTracker {
        RefinementTracker { refinement, journal: SpecJournal::new(abstract_state(world)), full: false }
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
        (abstract_state(world) != *self.journal.state()).then(|| Violation {
            property: PropertyId::Ref1,
            detail: "the world changed in a way no step reported to the properties".to_string(),
        })
    }
}

/// The world seen as a state of the abstract replication spec.
pub fn abstract_state(world: &World) -> SpecState {
    let mut state = SpecState::default();
    abstract_store(&mut state, world.store());
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
        abstract_store(&mut state, new_store);
        state
    } else {
        SpecState::clone(parent)
    };
    for (host, up, durable) in hosts_changed {
        state.hosts.insert(host, spec_host(up, durable));
    }
    Arc::new(state)
}

/// Adds the store's part of the abstraction to `state`: secrets, outbox rows
/// and log partitions.
fn abstract_store(state: &mut SpecState, store: &Store) {
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
/// and the host that applied, crashed or restarted. O(what changed), so the
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
            Observation::Corrupted { host, .. } | Observation::Repaired { host, .. } => {
                hosts.insert(*host);
            }
            Observation::Acknowledged { .. }
            | Observation::HostRead { .. }
            | Observation::HostStranded { .. }
            | Observation::Admitted { .. }
            | Observation::Throttled { .. }
            | Observation::PhaseStored { .. }
            | Observation::PhaseLearned { .. }
            | Observation::WalkScan { .. }
            | Observation::BackfillDone { .. }
            | Observation::RepairOrdered { .. }
            | Observation::VerifyDone => {}
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
    use crate::world::{Action, WorldConfig};
    use vault::bugzoo::Bugs;
    use vault::host::HostConfig;
    use vault::store::IdempotencyToken;
    use vault::types::{Content, SecretId, TenantId, Time, VaultId};
    use vault::worker::{Operation, RequestId, WorkerConfig};

    fn world(mode: InterceptorMode) -> World {
        World::new(WorldConfig {
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
        })
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
