//! The live-migration properties MIG-1 … MIG-7, checked incrementally.
//!
//! A [`MigrationChecker`] is owned by the [`PropertyChecker`] of a world that
//! runs a live migration (see [`PropertyChecker::with_migration`]); the
//! property checker hands it each migration observation together with the
//! parts of its own history a property needs (host records and cursors, log
//! heads, live hosts). The checker keeps the commit history of every secret
//! (commit sequence and record), the stored phase, each host's learned phase,
//! the verify walk's position, the pending MIG-2 catch-up checks and the
//! corruptions MIG-5 waits for.
//!
//! * **MIG-1**: a backfill emission carries the secret's latest committed record.
//! * **MIG-2**: once a live host's cursors reach the log heads as they stood
//!   when the backfiller reported done for `t1`, it holds every secret whose
//!   record at `t1` was not a tombstone, at that version or newer.
//! * **MIG-3**: a walk never scans past its stored bookmark, and it redoes at
//!   most one page of secrets behind it.
//! * **MIG-4**: a repair is ordered only for a host entry of the store's version
//!   with another checksum, and a repair never moves a host back.
//! * **MIG-5**: a corruption injected before the verify pass began is
//!   repaired (or replaced) before the verifier reports done.
//! * **MIG-6**: a local answer is never NotFound or `Creating` for a secret
//!   `Active` at the store.
//! * **MIG-7**: a host answers from its local store only while it serves by
//!   `Switchover`.
//!
//! MIG-8 (all of the above while hosts run different phases) is a condition
//! of a scenario, not a check: [`MigrationChecker::mixed_phases_seen`] says
//! whether a run reached it.
//!
//! [`PropertyChecker`]: crate::PropertyChecker
//! [`PropertyChecker::with_migration`]: crate::PropertyChecker::with_migration

use std::collections::{BTreeMap, BTreeSet};

use crate::properties::{PropertyId, Violation};
use crate::view::{Lifecycle, SecretState};

/// The phase code of `Off`.
const OFF: u8 = 0;
/// The phase code of `Verify`, the first phase whose hosts hold every secret.
const VERIFY: u8 = 3;
/// The phase code of `Switchover`, the only phase that serves locally.
const SWITCHOVER: u8 = 4;
/// The verifier's walk.
const VERIFY_WALK: u8 = 2;

/// A MIG-2 check waiting for one host to catch up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CatchUp {
    /// `t1` of the backfill that reported done.
    since: u64,
    /// The log positions, by partition, the host's cursors have yet to reach.
    targets: BTreeMap<u32, u64>,
    /// Every secret the host must then hold, at this version or newer.
    required: BTreeMap<u32, SecretState>,
}

/// The incremental checker of MIG-1 … MIG-7. See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MigrationChecker {
    /// Every commit of each secret, in commit order: (commit sequence, record).
    history: BTreeMap<u32, Vec<(u64, SecretState)>>,
    /// The phase last stored (0, `Off`, until one is).
    stored_phase: u8,
    /// The phase each host serves by (0, `Off`, until it learns one).
    learned: BTreeMap<u32, u8>,
    /// Whether two hosts ever served by different phases at once.
    mixed_phases_seen: bool,
    /// Whether the verify walk has scanned in this epoch. A corruption
    /// injected after that may land in a page already compared and not yet
    /// bookmarked, where a correct verifier cannot see it.
    verify_started: bool,
    /// MIG-2 checks waiting for each host to catch up.
    catch_ups: BTreeMap<u32, Vec<CatchUp>>,
    /// Corruptions the verifier must repair, by (host, secret): the damaged entry.
    outstanding: BTreeMap<(u32, u32), SecretState>,
}

impl MigrationChecker {
    /// A checker for a cell whose hosts are `hosts`, before the migration
    /// leaves `Off`.
    pub fn new(hosts: &[u32]) -> MigrationChecker {
        MigrationChecker { learned: hosts.iter().map(|host| (*host, OFF)).collect(), ..MigrationChecker::default() }
    }

    /// The phase last stored (0, `Off`, before any).
    pub fn stored_phase(&self) -> u8 {
        self.stored_phase
    }

    /// Whether two hosts ever served by different phases at the same moment
    /// (MIG-8's condition). A host that has not learned a phase serves by `Off`.
    pub fn mixed_phases_seen(&self) -> bool {
        self.mixed_phases_seen
    }

    /// Whether quiet hosts must equal the store (REP-6): only from `Verify`
    /// on, since before that hosts legitimately lack what predates `t1`.
    pub(crate) fn requires_convergence(&self) -> bool {
        self.stored_phase >= VERIFY
    }

    fn latest(&self, secret: u32) -> Option<SecretState> {
        self.history.get(&secret).and_then(|commits| commits.last()).map(|(_, state)| *state)
    }

    pub(crate) fn on_committed(&mut self, secret: u32, state: SecretState, commit: u64) {
        self.history.entry(secret).or_default().push((commit, state));
    }

    /// MIG-1: the backfill emits the record the store holds, never an older one.
    pub(crate) fn on_backfill_emitted(&self, secret: u32, state: SecretState, out: &mut Vec<Violation>) {
        let latest = self.latest(secret);
        if latest != Some(state) {
            out.push(violation(
                PropertyId::Mig1,
                format!(
                    "the backfill emitted secret {secret} at version {} ({state:?}) while its latest committed \
                     record is {latest:?}, so it would override a live event",
                    state.version
                ),
            ));
        }
    }

    /// A rollback to `Off` ends the epoch: the walks start again from 0.
    pub(crate) fn on_phase_stored(&mut self, phase: u8) {
        self.stored_phase = phase;
        if phase == OFF {
            self.verify_started = false;
        }
    }

    pub(crate) fn on_phase_learned(&mut self, host: u32, phase: u8) {
        self.learned.insert(host, phase);
        let mut phases = self.learned.values();
        if let Some(first) = phases.next() {
            self.mixed_phases_seen |= phases.any(|phase| phase != first);
        }
    }

    /// MIG-3: a scan starts at or behind the stored bookmark, at most one page
    /// of secrets behind it.
    pub(crate) fn on_walk_scan(&mut self, walk: u8, from: u64, stored: u64, page_keys: u64, out: &mut Vec<Violation>) {
        let name = walk_name(walk);
        if from > stored {
            out.push(violation(
                PropertyId::Mig3,
                format!(
                    "the {name} walk scanned from position {from}, past its stored bookmark {stored}: it skips secrets"
                ),
            ));
        } else if let Ok(first) = u32::try_from(from) {
            let limit = usize::try_from(page_keys.saturating_add(1)).unwrap_or(usize::MAX);
            let redone =
                self.history.range(first..).take_while(|(secret, _)| u64::from(**secret) < stored).take(limit).count();
            if redone > limit - 1 {
                out.push(violation(
                    PropertyId::Mig3,
                    format!(
                        "the {name} walk resumed at position {from} behind its stored bookmark {stored}: it redoes \
                         more than one bookmark interval ({page_keys} secrets)"
                    ),
                ));
            }
        }
        if walk == VERIFY_WALK {
            self.verify_started = true;
        }
    }

    /// MIG-2: every live host must, once caught up with the log as it stands
    /// now, hold every secret that was not a tombstone at `t1` = `since`.
    pub(crate) fn on_backfill_done(
        &mut self,
        since: u64,
        live: &BTreeSet<u32>,
        heads: &BTreeMap<u32, u64>,
        cursors: &BTreeMap<u32, BTreeMap<u32, u64>>,
        records: &BTreeMap<u32, BTreeMap<u32, SecretState>>,
        out: &mut Vec<Violation>,
    ) {
        let required: BTreeMap<u32, SecretState> = self
            .history
            .iter()
            .filter_map(|(secret, commits)| {
                let (_, state) = commits.iter().rev().find(|(commit, _)| *commit <= since)?;
                (state.lifecycle != Lifecycle::Deleted).then_some((*secret, *state))
            })
            .collect();
        for host in live {
            let host_cursors = cursors.get(host);
            let targets: BTreeMap<u32, u64> = heads
                .iter()
                .filter(|(tenant, head)| {
                    host_cursors.and_then(|cursors| cursors.get(tenant)).copied().unwrap_or(0) < **head
                })
                .map(|(tenant, head)| (*tenant, *head))
                .collect();
            let catch_up = CatchUp { since, targets, required: required.clone() };
            if catch_up.targets.is_empty() {
                check_caught_up(*host, &catch_up, records.get(host), out);
            } else {
                self.catch_ups.entry(*host).or_default().push(catch_up);
            }
        }
    }

    /// MIG-2's pending checks of `host` whose targets its cursors now reach.
    pub(crate) fn on_host_cursor(
        &mut self,
        host: u32,
        tenant: u32,
        seq: u64,
        records: Option<&BTreeMap<u32, SecretState>>,
        out: &mut Vec<Violation>,
    ) {
        let Some(pending) = self.catch_ups.get_mut(&host) else {
            return;
        };
        for catch_up in pending.iter_mut() {
            if catch_up.targets.get(&tenant).is_some_and(|target| seq >= *target) {
                catch_up.targets.remove(&tenant);
            }
        }
        let (done, waiting): (Vec<CatchUp>, Vec<CatchUp>) =
            std::mem::take(pending).into_iter().partition(|catch_up| catch_up.targets.is_empty());
        for catch_up in &done {
            check_caught_up(host, catch_up, records, out);
        }
        if waiting.is_empty() {
            self.catch_ups.remove(&host);
        } else {
            self.catch_ups.insert(host, waiting);
        }
    }

    /// A crashed host drops its pending MIG-2 checks.
    pub(crate) fn on_host_crashed(&mut self, host: u32) {
        self.catch_ups.remove(&host);
    }

    /// MIG-4: a repair is ordered only for the same version with another checksum.
    pub(crate) fn on_repair_ordered(
        &self,
        host: u32,
        secret: u32,
        remote: SecretState,
        host_had: Option<(u64, Option<u64>)>,
        out: &mut Vec<Violation>,
    ) {
        let reason = match host_had {
            None => "its digest said it holds nothing (a lag, not a mismatch)".to_string(),
            Some((version, _)) if version < remote.version => {
                format!("its digest said it holds the older version {version} (a lag, not a mismatch)")
            }
            Some((version, _)) if version > remote.version => {
                format!("its digest said it holds the newer version {version}")
            }
            Some((_, checksum)) if checksum == remote.checksum => {
                "its digest said it holds that version with the same checksum".to_string()
            }
            Some(_) => return,
        };
        out.push(violation(
            PropertyId::Mig4,
            format!(
                "the verifier ordered a repair of host {host}'s secret {secret} to version {}, but {reason}",
                remote.version
            ),
        ));
    }

    /// MIG-4: a repair never moves a host back; it settles MIG-5's corruption.
    pub(crate) fn on_repaired(
        &mut self,
        host: u32,
        secret: u32,
        state: SecretState,
        held: Option<SecretState>,
        out: &mut Vec<Violation>,
    ) {
        if let Some(held) = held.filter(|held| state.version < held.version) {
            out.push(violation(
                PropertyId::Mig4,
                format!(
                    "a repair moved host {host}'s secret {secret} back from version {} to {}",
                    held.version, state.version
                ),
            ));
        }
        self.outstanding.remove(&(host, secret));
    }

    /// MIG-5: a corruption injected before the verify pass began waits to be
    /// repaired.
    pub(crate) fn on_corrupted(&mut self, host: u32, secret: u32, state: SecretState) {
        if !self.verify_started {
            self.outstanding.insert((host, secret), state);
        }
    }

    /// MIG-5: a storage fault restored a damaged entry's bytes (the same
    /// bit flipped back): nothing is left to repair.
    pub(crate) fn on_restored(&mut self, host: u32, secret: u32) {
        self.outstanding.remove(&(host, secret));
    }

    /// MIG-5: another record replaces a damaged one.
    pub(crate) fn on_host_holds(&mut self, host: u32, secret: u32, state: SecretState) {
        if self.outstanding.get(&(host, secret)).is_some_and(|damaged| *damaged != state) {
            self.outstanding.remove(&(host, secret));
        }
    }

    /// MIG-5: a restart that recovered another record than the damaged one
    /// replaced it; MIG-2's checks of the host were dropped at its crash.
    pub(crate) fn on_host_restarted(&mut self, host: u32, recovered: &BTreeMap<u32, SecretState>) {
        self.outstanding
            .retain(|(damaged_host, secret), damaged| *damaged_host != host || recovered.get(secret) == Some(damaged));
    }

    /// MIG-5: no corruption is left when the verifier reports done.
    pub(crate) fn on_verify_done(&mut self, out: &mut Vec<Violation>) {
        for ((host, secret), damaged) in std::mem::take(&mut self.outstanding) {
            // Damage at a version the store has moved past is replication's
            // to replace: a verifier repairs only at the host's own version.
            let latest = self.history.get(&secret).and_then(|commits| commits.last()).map(|(_, state)| state.version);
            if latest.is_some_and(|latest| latest > damaged.version) {
                continue;
            }
            out.push(violation(
                PropertyId::Mig5,
                format!(
                    "the verifier reported done while host {host}'s secret {secret} still holds the corrupted \
                     entry {damaged:?}, injected before the verify pass began"
                ),
            ));
        }
    }

    /// MIG-6 and MIG-7 for a read answered from `host`'s local store.
    pub(crate) fn on_host_read(&self, host: u32, secret: u32, found: Option<SecretState>, out: &mut Vec<Violation>) {
        let latest = self.latest(secret).filter(|latest| latest.lifecycle == Lifecycle::Active);
        let unready = found.is_none_or(|state| state.lifecycle == Lifecycle::Creating);
        if let Some(latest) = latest.filter(|_| unready) {
            let answer = found.map_or("NotFound".to_string(), |state| format!("Creating version {}", state.version));
            out.push(violation(
                PropertyId::Mig6,
                format!(
                    "host {host} answered {answer} from its local store for secret {secret}, which is Active at \
                     version {} at the remote store",
                    latest.version
                ),
            ));
        }
        let phase = self.learned.get(&host).copied();
        if phase != Some(SWITCHOVER) {
            let serving = phase.map_or("has learned no phase".to_string(), |phase| format!("serves by phase {phase}"));
            out.push(violation(
                PropertyId::Mig7,
                format!(
                    "host {host} answered a read of secret {secret} from its local store while it {serving}: \
                     outside switchover reads must come from the remote store"
                ),
            ));
        }
    }
}

/// MIG-2 for a host that caught up.
fn check_caught_up(
    host: u32,
    catch_up: &CatchUp,
    records: Option<&BTreeMap<u32, SecretState>>,
    out: &mut Vec<Violation>,
) {
    for (secret, required) in &catch_up.required {
        let held = records.and_then(|records| records.get(secret)).map_or(0, |state| state.version);
        if held < required.version {
            out.push(violation(
                PropertyId::Mig2,
                format!(
                    "host {host} caught up after the backfill for t1 = {} reported done but holds secret {secret} \
                     at version {held}, while the store held version {} at t1",
                    catch_up.since, required.version
                ),
            ));
        }
    }
}

fn walk_name(walk: u8) -> String {
    match walk {
        1 => "backfill".to_string(),
        VERIFY_WALK => "verify".to_string(),
        other => format!("number {other}"),
    }
}

fn violation(property: PropertyId, detail: String) -> Violation {
    Violation { property, detail }
}

#[cfg(test)]
mod tests;
