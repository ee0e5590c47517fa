use super::*;
use crate::properties::PropertyChecker;
use crate::view::{HostView, Observation, View};

fn state(version: u64, lifecycle: Lifecycle, checksum: u64) -> SecretState {
    let checksum = (lifecycle != Lifecycle::Deleted).then_some(checksum);
    SecretState { version, lifecycle, checksum }
}

fn ids(violations: &[Violation]) -> Vec<PropertyId> {
    violations.iter().map(|violation| violation.property).collect()
}

/// A checker of a migrating cell with hosts 1 and 2.
fn migrating() -> PropertyChecker {
    PropertyChecker::new(&[1, 2]).with_migration()
}

fn commit(checker: &mut PropertyChecker, secret: u32, state: SecretState, commit: u64, replicated: bool) {
    let violations = checker.observe(&Observation::Committed { secret, tenant: 1, state, commit, replicated });
    assert!(violations.is_empty(), "{violations:?}");
}

fn observe(checker: &mut PropertyChecker, observation: Observation) -> Vec<PropertyId> {
    ids(&checker.observe(&observation))
}

fn appended(checker: &mut PropertyChecker, seq: u64, secret: u32, state: SecretState) -> Vec<PropertyId> {
    observe(checker, Observation::Appended { tenant: 1, seq, secret, state })
}

fn emitted(checker: &mut PropertyChecker, secret: u32, state: SecretState) -> Vec<PropertyId> {
    observe(checker, Observation::BackfillEmitted { secret, tenant: 1, state })
}

fn holds(checker: &mut PropertyChecker, host: u32, secret: u32, state: SecretState) -> Vec<PropertyId> {
    observe(checker, Observation::HostHolds { host, secret, state })
}

fn scan(checker: &mut PropertyChecker, walk: u8, from: u64, stored: u64) -> Vec<PropertyId> {
    observe(checker, Observation::WalkScan { walk, from, stored, page_keys: 2 })
}

/// A view whose store holds `remote` and whose live host 1 holds nothing.
fn empty_host(remote: &[(u32, SecretState)]) -> View {
    let mut view = View { remote: remote.iter().copied().collect(), hosts: BTreeMap::new() };
    view.hosts.insert(1, HostView { live: true, records: BTreeMap::new() });
    view
}

#[test]
fn rep4_lets_each_backfill_emission_through_once() {
    // REP-4's backfill rule holds without the migration checker too.
    let mut checker = PropertyChecker::new(&[1]);
    let record = state(1, Lifecycle::Active, 7);
    commit(&mut checker, 5, record, 1, false);
    assert!(emitted(&mut checker, 5, record).is_empty());
    assert!(appended(&mut checker, 1, 5, record).is_empty());
    // A later epoch emits the same record again.
    assert!(emitted(&mut checker, 5, record).is_empty());
    assert!(appended(&mut checker, 2, 5, record).is_empty());
    // A third append has no emission left to stand for.
    assert_eq!(appended(&mut checker, 3, 5, record), [PropertyId::Rep4, PropertyId::Rep4]);
}

#[test]
fn rep4_flags_an_event_of_an_unreplicated_commit_that_no_backfill_emitted() {
    let mut checker = PropertyChecker::new(&[1]);
    let record = state(1, Lifecycle::Active, 7);
    commit(&mut checker, 5, record, 1, false);
    assert_eq!(appended(&mut checker, 1, 5, record), [PropertyId::Rep4]);
}

#[test]
fn rep4_flags_a_backfill_emission_below_the_last_appended_version() {
    let mut checker = PropertyChecker::new(&[1]);
    let old = state(1, Lifecycle::Active, 7);
    let new = state(2, Lifecycle::Active, 8);
    commit(&mut checker, 5, old, 1, false);
    assert!(emitted(&mut checker, 5, old).is_empty());
    commit(&mut checker, 5, new, 2, true);
    assert!(appended(&mut checker, 1, 5, new).is_empty());
    assert_eq!(appended(&mut checker, 2, 5, old), [PropertyId::Rep4]);
}

#[test]
fn rep4_takes_the_live_event_first_when_an_emission_of_it_is_also_pending() {
    // Async mode: a replicated commit and a backfill emission of the same
    // record, both waiting in the outbox, published in commit order.
    let mut checker = PropertyChecker::new(&[1]);
    let record = state(1, Lifecycle::Active, 7);
    commit(&mut checker, 5, record, 1, true);
    assert!(emitted(&mut checker, 5, record).is_empty());
    assert!(appended(&mut checker, 1, 5, record).is_empty());
    assert!(appended(&mut checker, 2, 5, record).is_empty());
}

#[test]
fn rep4_completeness_excuses_commits_made_without_replication() {
    let mut checker = PropertyChecker::new(&[1]);
    commit(&mut checker, 5, state(1, Lifecycle::Active, 7), 1, false);
    let mut view = empty_host(&[]);
    view.hosts.clear();
    assert!(checker.check_quiescent(&view).is_empty());
    commit(&mut checker, 6, state(1, Lifecycle::Active, 8), 2, true);
    assert_eq!(ids(&checker.check_quiescent(&view)), [PropertyId::Rep4]);
}

#[test]
fn rep6_waits_for_verify_when_the_world_migrates() {
    let record = state(1, Lifecycle::Active, 7);
    let view = empty_host(&[(5, record)]);
    let mut checker = migrating();
    commit(&mut checker, 5, record, 1, false);
    assert!(checker.check_quiescent(&view).is_empty(), "Off: hosts lack what predates t1");
    for phase in [1, 2] {
        assert!(observe(&mut checker, Observation::PhaseStored { phase, since: Some(1) }).is_empty());
        assert!(checker.check_quiescent(&view).is_empty(), "phase {phase}");
    }
    observe(&mut checker, Observation::PhaseStored { phase: 3, since: Some(1) });
    assert_eq!(ids(&checker.check_quiescent(&view)), [PropertyId::Rep6]);
    // A rollback to Backfill lifts the requirement again.
    observe(&mut checker, Observation::PhaseStored { phase: 2, since: Some(1) });
    assert!(checker.check_quiescent(&view).is_empty());
    // Without migration a quiet host must always have converged.
    let mut plain = PropertyChecker::new(&[1]);
    commit(&mut plain, 5, record, 1, false);
    assert_eq!(ids(&plain.check_quiescent(&view)), [PropertyId::Rep6]);
}

#[test]
fn rep1_excuses_a_damaged_entry_reported_unchanged_but_not_served() {
    let mut checker = PropertyChecker::new(&[1]);
    let record = state(1, Lifecycle::Active, 7);
    let damaged = state(1, Lifecycle::Active, 9);
    commit(&mut checker, 5, record, 1, true);
    assert!(holds(&mut checker, 1, 5, record).is_empty());
    assert!(observe(&mut checker, Observation::Corrupted { host: 1, secret: 5, state: damaged }).is_empty());
    assert!(holds(&mut checker, 1, 5, damaged).is_empty(), "an apply that changed nothing");
    assert_eq!(
        observe(&mut checker, Observation::HostRead { host: 1, secret: 5, found: Some(damaged) }),
        [PropertyId::Rep1]
    );
    // The damage survives a restart, still excused.
    observe(&mut checker, Observation::HostCrashed { host: 1 });
    let restarted = Observation::HostRestarted { host: 1, records: vec![(5, damaged)], cursors: Vec::new() };
    assert!(observe(&mut checker, restarted).is_empty());
    // Once repaired, the damaged entry is a fabrication again.
    assert!(observe(&mut checker, Observation::Repaired { host: 1, secret: 5, state: record }).is_empty());
    assert_eq!(holds(&mut checker, 1, 5, damaged), [PropertyId::Rep1]);
}

#[test]
fn rep1_excuses_only_the_damage_that_was_reported() {
    let mut checker = PropertyChecker::new(&[1, 2]);
    let record = state(1, Lifecycle::Active, 7);
    let damaged = state(1, Lifecycle::Active, 9);
    commit(&mut checker, 5, record, 1, true);
    observe(&mut checker, Observation::Corrupted { host: 1, secret: 5, state: damaged });
    assert_eq!(holds(&mut checker, 2, 5, damaged), [PropertyId::Rep1], "another host");
    assert_eq!(holds(&mut checker, 1, 5, state(1, Lifecycle::Active, 10)), [PropertyId::Rep1], "other damage");
}

#[test]
fn a_repair_is_judged_like_an_apply() {
    let mut checker = migrating();
    let old = state(1, Lifecycle::Active, 7);
    let new = state(2, Lifecycle::Active, 8);
    commit(&mut checker, 5, old, 1, true);
    commit(&mut checker, 5, new, 2, true);
    assert!(holds(&mut checker, 1, 5, new).is_empty());
    let forged = state(2, Lifecycle::Active, 3);
    assert_eq!(observe(&mut checker, Observation::Repaired { host: 1, secret: 5, state: forged }), [PropertyId::Rep1]);
    assert_eq!(
        observe(&mut checker, Observation::Repaired { host: 1, secret: 5, state: old }),
        [PropertyId::Rep2, PropertyId::Mig4]
    );
    assert!(observe(&mut checker, Observation::Repaired { host: 1, secret: 5, state: new }).is_empty());
}

#[test]
fn mig1_flags_a_backfill_of_a_record_a_live_write_replaced() {
    let mut checker = migrating();
    let old = state(1, Lifecycle::Active, 7);
    let new = state(2, Lifecycle::Active, 8);
    commit(&mut checker, 5, old, 1, false);
    assert!(emitted(&mut checker, 5, old).is_empty());
    commit(&mut checker, 5, new, 2, true);
    assert_eq!(emitted(&mut checker, 5, old), [PropertyId::Mig1]);
    assert!(emitted(&mut checker, 5, new).is_empty());
    assert_eq!(emitted(&mut checker, 6, old), [PropertyId::Mig1], "never committed");
}

#[test]
fn mig2_flags_a_secret_older_than_t1_missing_after_catch_up() {
    let mut checker = migrating();
    let kept = state(2, Lifecycle::PendingDeletion, 7);
    let missed = state(1, Lifecycle::Active, 8);
    commit(&mut checker, 5, state(1, Lifecycle::Active, 7), 1, false);
    commit(&mut checker, 5, kept, 2, false);
    commit(&mut checker, 6, missed, 3, false);
    // Deleted before t1: not required. Committed after t1: not the backfill's.
    commit(&mut checker, 7, state(1, Lifecycle::Active, 9), 4, false);
    commit(&mut checker, 7, state(2, Lifecycle::Deleted, 0), 5, false);
    commit(&mut checker, 8, state(1, Lifecycle::Creating, 10), 6, true);
    // The backfill emits secret 5 but skips secret 6.
    emitted(&mut checker, 5, kept);
    appended(&mut checker, 1, 5, kept);
    appended(&mut checker, 2, 8, state(1, Lifecycle::Creating, 10));
    assert!(observe(&mut checker, Observation::BackfillDone { since: 5 }).is_empty());
    // Host 2 crashes before catching up: its check is dropped.
    observe(&mut checker, Observation::HostCrashed { host: 2 });
    holds(&mut checker, 1, 5, kept);
    holds(&mut checker, 1, 8, state(1, Lifecycle::Creating, 10));
    let caught_up = observe(&mut checker, Observation::HostCursor { host: 1, tenant: 1, seq: 2 });
    assert_eq!(caught_up, [PropertyId::Mig2]);
    observe(&mut checker, Observation::HostRestarted { host: 2, records: Vec::new(), cursors: Vec::new() });
    holds(&mut checker, 2, 5, kept);
    assert!(observe(&mut checker, Observation::HostCursor { host: 2, tenant: 1, seq: 1 }).is_empty());
}

#[test]
fn mig2_holds_when_every_secret_older_than_t1_arrived() {
    let mut checker = migrating();
    let first = state(1, Lifecycle::Active, 7);
    let second = state(1, Lifecycle::PendingDeletion, 8);
    commit(&mut checker, 5, first, 1, false);
    commit(&mut checker, 6, second, 2, false);
    for (seq, (secret, record)) in [(5, first), (6, second)].into_iter().enumerate() {
        emitted(&mut checker, secret, record);
        appended(&mut checker, seq as u64 + 1, secret, record);
    }
    // Host 1 already holds everything and is at the head: checked at once.
    for (secret, record) in [(5, first), (6, second)] {
        holds(&mut checker, 1, secret, record);
    }
    observe(&mut checker, Observation::HostCursor { host: 1, tenant: 1, seq: 2 });
    assert!(observe(&mut checker, Observation::BackfillDone { since: 2 }).is_empty());
    for (secret, record) in [(5, first), (6, second)] {
        holds(&mut checker, 2, secret, record);
    }
    assert!(observe(&mut checker, Observation::HostCursor { host: 2, tenant: 1, seq: 1 }).is_empty());
    assert!(observe(&mut checker, Observation::HostCursor { host: 2, tenant: 1, seq: 2 }).is_empty());
    // A host at the head that misses a required secret is flagged at once.
    let mut behind = migrating();
    commit(&mut behind, 5, first, 1, false);
    assert_eq!(observe(&mut behind, Observation::BackfillDone { since: 1 }), [PropertyId::Mig2, PropertyId::Mig2]);
}

#[test]
fn mig3_flags_a_skip_and_a_redo_of_more_than_one_interval() {
    let mut checker = migrating();
    for secret in 0..6 {
        commit(&mut checker, secret, state(1, Lifecycle::Active, 7), u64::from(secret) + 1, false);
    }
    assert!(scan(&mut checker, 1, 0, 0).is_empty());
    assert!(scan(&mut checker, 1, 4, 4).is_empty(), "resumes at the bookmark");
    assert_eq!(scan(&mut checker, 1, 5, 4), [PropertyId::Mig3], "skips secret 4");
    assert!(scan(&mut checker, 2, 2, 4).is_empty(), "redoes secrets 2 and 3: one interval");
    assert_eq!(scan(&mut checker, 2, 1, 4), [PropertyId::Mig3], "redoes secrets 1, 2 and 3");
    assert_eq!(scan(&mut checker, 2, 0, u64::MAX), [PropertyId::Mig3], "restarts a finished walk");
}

#[test]
fn mig4_flags_repairs_of_anything_but_a_same_version_mismatch() {
    let mut checker = migrating();
    let remote = state(2, Lifecycle::Active, 7);
    let mut order =
        |host_had| observe(&mut checker, Observation::RepairOrdered { host: 1, secret: 5, remote, host_had });
    assert!(order(Some((2, Some(9)))).is_empty());
    assert_eq!(order(Some((2, Some(7)))), [PropertyId::Mig4], "same checksum");
    assert_eq!(order(Some((1, Some(9)))), [PropertyId::Mig4], "an older version is lag");
    assert_eq!(order(Some((3, Some(9)))), [PropertyId::Mig4], "a newer version");
    assert_eq!(order(None), [PropertyId::Mig4], "nothing held");
}

#[test]
fn mig5_flags_a_corruption_from_before_the_verify_pass_left_unrepaired() {
    let mut checker = migrating();
    let low = state(1, Lifecycle::Active, 7);
    let high = state(1, Lifecycle::Active, 8);
    commit(&mut checker, 3, low, 1, true);
    commit(&mut checker, 8, high, 2, true);
    holds(&mut checker, 1, 3, low);
    holds(&mut checker, 1, 8, high);
    observe(&mut checker, Observation::Corrupted { host: 1, secret: 8, state: state(1, Lifecycle::Active, 2) });
    assert!(scan(&mut checker, 2, 0, 4).is_empty());
    // Injected after the pass began, it may sit in a page already compared:
    // not this pass's to find.
    observe(&mut checker, Observation::Corrupted { host: 1, secret: 3, state: state(1, Lifecycle::Active, 1) });
    let violations = checker.observe(&Observation::VerifyDone);
    assert_eq!(violations.iter().map(|violation| violation.property).collect::<Vec<_>>(), [PropertyId::Mig5]);
    assert!(violations[0].detail.contains("secret 8"), "{violations:?}");
}

#[test]
fn mig5_holds_when_the_corruption_is_repaired_or_replaced() {
    let mut checker = migrating();
    let record = state(1, Lifecycle::Active, 7);
    let damaged = state(1, Lifecycle::Active, 2);
    commit(&mut checker, 8, record, 1, true);
    holds(&mut checker, 1, 8, record);
    holds(&mut checker, 2, 8, record);
    observe(&mut checker, Observation::Corrupted { host: 1, secret: 8, state: damaged });
    observe(&mut checker, Observation::Corrupted { host: 2, secret: 8, state: damaged });
    assert!(holds(&mut checker, 1, 8, damaged).is_empty(), "still damaged");
    assert!(observe(&mut checker, Observation::Repaired { host: 1, secret: 8, state: record }).is_empty());
    let newer = state(2, Lifecycle::Active, 9);
    commit(&mut checker, 8, newer, 2, true);
    assert!(holds(&mut checker, 2, 8, newer).is_empty(), "replaced by an apply");
    assert!(observe(&mut checker, Observation::VerifyDone).is_empty());
}

#[test]
fn mig5_starts_the_walk_over_after_a_rollback_to_off() {
    let mut checker = migrating();
    let record = state(1, Lifecycle::Active, 7);
    commit(&mut checker, 3, record, 1, true);
    holds(&mut checker, 1, 3, record);
    scan(&mut checker, 2, 0, 4);
    observe(&mut checker, Observation::PhaseStored { phase: 0, since: None });
    observe(&mut checker, Observation::Corrupted { host: 1, secret: 3, state: state(1, Lifecycle::Active, 1) });
    assert_eq!(observe(&mut checker, Observation::VerifyDone), [PropertyId::Mig5]);
}

#[test]
fn mig6_flags_a_local_not_found_or_creating_for_an_active_secret() {
    let mut checker = migrating();
    let creating = state(1, Lifecycle::Creating, 7);
    let active = state(2, Lifecycle::Active, 7);
    commit(&mut checker, 5, creating, 1, true);
    holds(&mut checker, 1, 5, creating);
    holds(&mut checker, 2, 5, creating);
    observe(&mut checker, Observation::PhaseLearned { host: 1, phase: 4 });
    let read = |found| Observation::HostRead { host: 1, secret: 5, found };
    assert!(observe(&mut checker, read(Some(creating))).is_empty(), "not Active at the store yet");
    commit(&mut checker, 5, active, 2, true);
    assert_eq!(observe(&mut checker, read(Some(creating))), [PropertyId::Mig6]);
    assert!(observe(&mut checker, read(None)).contains(&PropertyId::Mig6));
    assert!(observe(&mut checker, read(Some(active))).is_empty());
}

#[test]
fn mig7_flags_a_local_answer_outside_switchover() {
    let mut checker = migrating();
    let record = state(1, Lifecycle::Active, 7);
    commit(&mut checker, 5, record, 1, true);
    holds(&mut checker, 1, 5, record);
    let read = Observation::HostRead { host: 1, secret: 5, found: Some(record) };
    assert_eq!(observe(&mut checker, read.clone()), [PropertyId::Mig7], "never learned a phase");
    observe(&mut checker, Observation::PhaseLearned { host: 1, phase: 4 });
    assert!(observe(&mut checker, read.clone()).is_empty());
    // Rolled back to Verify: reads go to the store again.
    observe(&mut checker, Observation::PhaseLearned { host: 1, phase: 3 });
    assert_eq!(observe(&mut checker, read.clone()), [PropertyId::Mig7]);
    // Without migration hosts serve locally from the start.
    let mut plain = PropertyChecker::new(&[1]);
    commit(&mut plain, 5, record, 1, true);
    holds(&mut plain, 1, 5, record);
    assert!(observe(&mut plain, read).is_empty());
}

#[test]
fn mixed_phases_are_seen_once_two_hosts_serve_by_different_phases() {
    let mut checker = migrating();
    assert!(!checker.mixed_phases_seen());
    observe(&mut checker, Observation::PhaseLearned { host: 1, phase: 0 });
    assert!(!checker.mixed_phases_seen());
    observe(&mut checker, Observation::PhaseLearned { host: 1, phase: 1 });
    assert!(checker.mixed_phases_seen(), "host 2 still serves by Off");
    observe(&mut checker, Observation::PhaseLearned { host: 2, phase: 1 });
    assert!(checker.mixed_phases_seen(), "once seen, stays seen");
    assert_eq!(checker.migration().map(MigrationChecker::stored_phase), Some(0));
    assert!(!PropertyChecker::new(&[1, 2]).mixed_phases_seen());
}

#[test]
fn migration_ids_are_in_the_catalogue() {
    let ids: Vec<&str> = PropertyId::ALL.iter().map(|property| property.as_str()).collect();
    for id in ["MIG-1", "MIG-2", "MIG-3", "MIG-4", "MIG-5", "MIG-6", "MIG-7"] {
        assert!(ids.contains(&id), "{id}");
    }
    assert_eq!(PropertyId::parse("MIG-8"), None, "MIG-8 is a scenario condition, not a check");
}

#[test]
fn rep6_counts_a_damaged_entry_at_the_store_version_as_converged_but_not_a_stale_one() {
    let mut checker = migrating();
    let record = state(1, Lifecycle::Active, 7);
    let damaged = state(1, Lifecycle::Active, 2);
    commit(&mut checker, 8, record, 1, true);
    holds(&mut checker, 1, 8, record);
    observe(&mut checker, Observation::Corrupted { host: 1, secret: 8, state: damaged });
    observe(&mut checker, Observation::PhaseStored { phase: 4, since: Some(1) });
    let mut view = View::default();
    view.remote.insert(8, record);
    view.hosts.insert(1, HostView { live: true, records: BTreeMap::from([(8, damaged)]) });
    let rep6 = |checker: &PropertyChecker, view: &View| {
        checker.check_quiescent(view).into_iter().filter(|violation| violation.property == PropertyId::Rep6).count()
    };
    assert_eq!(rep6(&checker, &view), 0);
    // A newer version at the store: the host is behind, damaged or not.
    let newer = state(2, Lifecycle::Active, 9);
    commit(&mut checker, 8, newer, 2, true);
    view.remote.insert(8, newer);
    assert_eq!(rep6(&checker, &view), 1);
}

#[test]
fn mig5_forgets_damage_that_a_second_flip_undid() {
    let mut checker = migrating();
    let record = state(1, Lifecycle::Active, 7);
    commit(&mut checker, 8, record, 1, true);
    holds(&mut checker, 1, 8, record);
    observe(&mut checker, Observation::Corrupted { host: 1, secret: 8, state: state(1, Lifecycle::Active, 2) });
    // The same bit flipped back: the entry reads as committed again.
    observe(&mut checker, Observation::Corrupted { host: 1, secret: 8, state: record });
    assert!(checker.observe(&Observation::VerifyDone).is_empty());
}

#[test]
fn mig2_waits_for_a_live_event_still_in_the_outbox() {
    // Secret 5 was written before t1; a live update replaced it before the
    // backfill scanned it, so the backfill skipped it and its update's event
    // (an outbox row, async mode) is what brings it to the hosts.
    let mut checker = PropertyChecker::new(&[1]).with_migration();
    let before = state(1, Lifecycle::Active, 7);
    let updated = state(2, Lifecycle::Active, 8);
    commit(&mut checker, 5, before, 1, false);
    commit(&mut checker, 5, updated, 3, true);
    // Host 1 is at the head of an empty log when the backfill says done:
    // not judged yet, the update has not reached the log.
    assert!(observe(&mut checker, Observation::BackfillDone { since: 2 }).is_empty());
    assert!(appended(&mut checker, 1, 5, updated).is_empty());
    // Once it has, the host must catch up to it, and then holds it.
    holds(&mut checker, 1, 5, updated);
    assert!(observe(&mut checker, Observation::HostCursor { host: 1, tenant: 1, seq: 1 }).is_empty());
    // The same host catching up without the secret is MIG-2.
    let mut missing = PropertyChecker::new(&[1]).with_migration();
    commit(&mut missing, 5, before, 1, false);
    commit(&mut missing, 5, updated, 3, true);
    assert!(observe(&mut missing, Observation::BackfillDone { since: 2 }).is_empty());
    assert!(appended(&mut missing, 1, 5, updated).is_empty());
    // (REP-5 too: the cursor passed an event whose effect the host lacks.)
    let caught_up = observe(&mut missing, Observation::HostCursor { host: 1, tenant: 1, seq: 1 });
    assert!(caught_up.contains(&PropertyId::Mig2), "{caught_up:?}");
}
