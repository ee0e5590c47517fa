use super::*;
use crate::view::HostView;

fn state(version: u64, lifecycle: Lifecycle, checksum: u64) -> SecretState {
    let checksum = (lifecycle != Lifecycle::Deleted).then_some(checksum);
    SecretState { version, lifecycle, checksum }
}

fn ids(violations: &[Violation]) -> Vec<PropertyId> {
    violations.iter().map(|violation| violation.property).collect()
}

fn committed(checker: &mut PropertyChecker, secret: u32, state: SecretState) -> Vec<Violation> {
    checker.observe(&Observation::Committed { secret, tenant: 1, state, commit: 0, replicated: true })
}

#[test]
fn a_clean_history_has_no_violation() {
    let mut checker = PropertyChecker::new(&[1, 2]);
    let creating = state(1, Lifecycle::Creating, 7);
    assert!(committed(&mut checker, 5, creating).is_empty());
    assert!(checker.observe(&Observation::Appended { tenant: 1, seq: 1, secret: 5, state: creating }).is_empty());
    for host in [1, 2] {
        assert!(checker.observe(&Observation::HostHolds { host, secret: 5, state: creating }).is_empty());
        assert!(checker.observe(&Observation::HostCursor { host, tenant: 1, seq: 1 }).is_empty());
    }
    assert!(committed(&mut checker, 5, state(2, Lifecycle::Active, 7)).is_empty());
    assert!(checker.observe(&Observation::Acknowledged { secret: 5, version: 1 }).is_empty());
}

#[test]
fn rep9_flags_two_commits_of_one_version() {
    let mut checker = PropertyChecker::new(&[1]);
    assert!(committed(&mut checker, 5, state(1, Lifecycle::Creating, 7)).is_empty());
    assert_eq!(ids(&committed(&mut checker, 5, state(1, Lifecycle::Creating, 8))), [PropertyId::Rep9]);
}

#[test]
fn rep1_flags_a_value_never_committed() {
    let mut checker = PropertyChecker::new(&[1]);
    committed(&mut checker, 5, state(1, Lifecycle::Creating, 7));
    let forged = state(1, Lifecycle::Creating, 9);
    assert_eq!(
        ids(&checker.observe(&Observation::HostHolds { host: 1, secret: 5, state: forged })),
        [PropertyId::Rep1]
    );
}

#[test]
fn rep2_and_rep3_flag_regression_and_resurrection() {
    let mut checker = PropertyChecker::new(&[1]);
    committed(&mut checker, 5, state(1, Lifecycle::Creating, 7));
    committed(&mut checker, 5, state(2, Lifecycle::Deleted, 0));
    checker.observe(&Observation::HostHolds { host: 1, secret: 5, state: state(2, Lifecycle::Deleted, 0) });
    let back = checker.observe(&Observation::HostHolds { host: 1, secret: 5, state: state(1, Lifecycle::Creating, 7) });
    assert_eq!(ids(&back), [PropertyId::Rep2, PropertyId::Rep3]);
}

#[test]
fn rep4_flags_gaps_duplicates_and_uncommitted_appends() {
    let mut checker = PropertyChecker::new(&[1]);
    let creating = state(1, Lifecycle::Creating, 7);
    committed(&mut checker, 5, creating);
    assert_eq!(
        ids(&checker.observe(&Observation::Appended { tenant: 1, seq: 2, secret: 5, state: creating })),
        [PropertyId::Rep4]
    );
    let again = checker.observe(&Observation::Appended { tenant: 1, seq: 2, secret: 5, state: creating });
    assert!(ids(&again).iter().all(|id| *id == PropertyId::Rep4), "{again:?}");
    assert!(again.len() >= 2, "a duplicate and a non-increasing version: {again:?}");
}

#[test]
fn rep5_flags_a_cursor_ahead_of_its_data() {
    let mut checker = PropertyChecker::new(&[1]);
    let creating = state(1, Lifecycle::Creating, 7);
    committed(&mut checker, 5, creating);
    checker.observe(&Observation::Appended { tenant: 1, seq: 1, secret: 5, state: creating });
    let ahead = checker.observe(&Observation::HostCursor { host: 1, tenant: 1, seq: 1 });
    assert_eq!(ids(&ahead), [PropertyId::Rep5]);
}

#[test]
fn rep7_flags_activation_before_every_live_host_applied() {
    let mut checker = PropertyChecker::new(&[1, 2]);
    let creating = state(1, Lifecycle::Creating, 7);
    committed(&mut checker, 5, creating);
    checker.observe(&Observation::HostHolds { host: 1, secret: 5, state: creating });
    assert_eq!(ids(&committed(&mut checker, 5, state(2, Lifecycle::Active, 7))), [PropertyId::Rep7]);
}

#[test]
fn rep7_ignores_a_crashed_host_and_flags_not_found_reads() {
    let mut checker = PropertyChecker::new(&[1, 2]);
    let creating = state(1, Lifecycle::Creating, 7);
    committed(&mut checker, 5, creating);
    checker.observe(&Observation::HostHolds { host: 1, secret: 5, state: creating });
    checker.observe(&Observation::HostCrashed { host: 2 });
    assert!(committed(&mut checker, 5, state(2, Lifecycle::Active, 7)).is_empty());
    let read = checker.observe(&Observation::HostRead { host: 1, secret: 5, found: None });
    assert_eq!(ids(&read), [PropertyId::Rep7]);
    let lagging = checker.observe(&Observation::HostRead { host: 2, secret: 5, found: None });
    assert!(lagging.is_empty(), "host 2 was down at activation");
}

#[test]
fn rep8_flags_an_acknowledgement_without_a_commit() {
    let mut checker = PropertyChecker::new(&[1]);
    assert_eq!(ids(&checker.observe(&Observation::Acknowledged { secret: 5, version: 1 })), [PropertyId::Rep8]);
}

#[test]
fn quiescent_checks_convergence_log_completeness_and_durability() {
    let mut checker = PropertyChecker::new(&[1]);
    let creating = state(1, Lifecycle::Creating, 7);
    committed(&mut checker, 5, creating);
    checker.observe(&Observation::Acknowledged { secret: 5, version: 1 });
    let mut view = View::default();
    view.hosts.insert(1, HostView { live: true, records: BTreeMap::new() });
    // The store lost the acknowledged write, and it never reached the log.
    assert_eq!(ids(&checker.check_quiescent(&view)), [PropertyId::Rep4, PropertyId::Rep8]);
    // The store holds it, but the host does not.
    view.remote.insert(5, creating);
    assert_eq!(ids(&checker.check_quiescent(&view)), [PropertyId::Rep4, PropertyId::Rep6]);
    checker.observe(&Observation::Appended { tenant: 1, seq: 1, secret: 5, state: creating });
    view.hosts.get_mut(&1).unwrap().records.insert(5, creating);
    assert!(checker.check_quiescent(&view).is_empty());
    // A crashed host is not required to have converged.
    view.hosts.insert(2, HostView { live: false, records: BTreeMap::new() });
    assert!(checker.check_quiescent(&view).is_empty());
}

#[test]
fn property_ids_round_trip() {
    for property in PropertyId::ALL {
        assert_eq!(PropertyId::parse(property.as_str()), Some(property));
    }
    assert_eq!(PropertyId::parse("REP-10"), None);
}

#[test]
fn rep7_counts_a_restarted_host_once_it_caught_up() {
    let mut checker = PropertyChecker::new(&[1, 2]);
    let creating = state(1, Lifecycle::Creating, 7);
    committed(&mut checker, 5, creating);
    checker.observe(&Observation::Appended { tenant: 1, seq: 1, secret: 5, state: creating });
    checker.observe(&Observation::HostHolds { host: 1, secret: 5, state: creating });
    checker.observe(&Observation::HostCursor { host: 1, tenant: 1, seq: 1 });
    checker.observe(&Observation::HostCrashed { host: 2 });
    // Host 2 comes back behind: the activation racing its return is no violation.
    checker.observe(&Observation::HostRestarted { host: 2, records: Vec::new(), cursors: Vec::new() });
    assert!(committed(&mut checker, 5, state(2, Lifecycle::Active, 7)).is_empty());
    // Once caught up it is live again, and a later activation must wait for it.
    let other = state(1, Lifecycle::Creating, 8);
    committed(&mut checker, 6, other);
    checker.observe(&Observation::Appended { tenant: 1, seq: 2, secret: 6, state: other });
    checker.observe(&Observation::HostHolds { host: 2, secret: 5, state: creating });
    checker.observe(&Observation::HostCursor { host: 2, tenant: 1, seq: 1 });
    assert_eq!(ids(&committed(&mut checker, 6, state(2, Lifecycle::Active, 8))), [PropertyId::Rep7, PropertyId::Rep7]);
}

#[test]
fn a_restart_that_loses_data_or_keeps_a_cursor_ahead_is_caught() {
    let mut checker = PropertyChecker::new(&[1]);
    let creating = state(1, Lifecycle::Creating, 7);
    committed(&mut checker, 5, creating);
    checker.observe(&Observation::Appended { tenant: 1, seq: 1, secret: 5, state: creating });
    checker.observe(&Observation::HostHolds { host: 1, secret: 5, state: creating });
    checker.observe(&Observation::HostCursor { host: 1, tenant: 1, seq: 1 });
    checker.observe(&Observation::HostCrashed { host: 1 });
    // The cursor survived the crash but the record did not.
    let restarted = Observation::HostRestarted { host: 1, records: Vec::new(), cursors: vec![(1, 1)] };
    assert_eq!(ids(&checker.observe(&restarted)), [PropertyId::Rep2, PropertyId::Rep5]);
}

#[test]
fn rep7_flags_not_found_from_a_host_whose_cursor_passed_the_secret() {
    let mut checker = PropertyChecker::new(&[1, 2]);
    let creating = state(1, Lifecycle::Creating, 7);
    committed(&mut checker, 5, creating);
    checker.observe(&Observation::Appended { tenant: 1, seq: 1, secret: 5, state: creating });
    for host in [1, 2] {
        checker.observe(&Observation::HostHolds { host, secret: 5, state: creating });
        checker.observe(&Observation::HostCursor { host, tenant: 1, seq: 1 });
    }
    assert!(committed(&mut checker, 5, state(2, Lifecycle::Active, 7)).is_empty());
    // A host that restarted empty-handed but claims the cursor, then reads NotFound.
    checker.observe(&Observation::HostCrashed { host: 2 });
    checker.observe(&Observation::HostRestarted { host: 2, records: Vec::new(), cursors: vec![(1, 1)] });
    let read = checker.observe(&Observation::HostRead { host: 2, secret: 5, found: None });
    assert_eq!(ids(&read), [PropertyId::Rep7]);
}
