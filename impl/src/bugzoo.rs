//! The bug zoo's switch: known-bad variants of the real code, for proving that
//! the testbed catches them.
//!
//! [`Bugs`] is carried in machine configs. Without the `bugzoo` cargo feature it
//! is an empty type and the bad variants are not compiled at all, so a release
//! build carries none of them. With the feature, [`Bug`] names each variant and
//! the property it breaks.

#[cfg(feature = "bugzoo")]
use std::collections::BTreeSet;

/// A known-bad variant of the real code (only with the `bugzoo` feature).
#[cfg(feature = "bugzoo")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// The store commits without validating the versions a transaction read,
    /// so two writers that read the same version both commit (breaks REP-9).
    UnvalidatedCommit,
    /// The host flips a bit of the content it stores when applying an event,
    /// keeping the stored checksum, so it holds data never committed (breaks REP-1).
    CorruptingApply,
    /// The host accepts every poll reply, even a late or duplicated one
    /// answering an older poll, and applies its events by overwriting records
    /// without comparing versions, so an old reply moves a secret back (breaks REP-2).
    UnversionedApply,
    /// The publisher commits without the versions of the head and the rows it
    /// read, so a duplicated or retried round appends the same rows twice (breaks REP-4).
    PublishWithoutReads,
    /// The host persists its cursor before the records: an applied batch's
    /// records wait in a volatile buffer until the next poll, so the durable
    /// cursor passes events whose effect a crash loses (breaks REP-5).
    CursorBeforeData,
    /// The host stops its poll loop after a poll that returned nothing, so it
    /// never learns later writes (breaks REP-6).
    StopPollingWhenIdle,
    /// The activator activates a secret as soon as it reads its `Creating`
    /// event, without waiting for the hosts (breaks REP-7).
    ActivateOnCommit,
    /// The worker answers the client `Ok` when it sends the commit, before the
    /// store's reply, so a conflicting or lost commit was acknowledged (breaks REP-8).
    AcknowledgeBeforeCommit,
    /// The quota table keeps one bucket of the global quota for all tenants
    /// instead of one per tenant, so one tenant's burst throttles every other
    /// tenant that is within its own quota (breaks THR-2).
    SharedBucket,
    /// The backfiller emits every secret it scanned, whatever its commit
    /// relative to `t1`, and commits the page without validating the rows it
    /// read, so a live write between the scan and the commit is followed in
    /// the log by the backfill's older record (breaks MIG-1).
    UnconditionalBackfillEvents,
    /// The host applies a delete by dropping its record instead of keeping a
    /// versioned tombstone, so its cursor passes the delete while it holds
    /// nothing of it (breaks REP-5; see the recipe's note for REP-3).
    DeleteWithoutTombstone,
    /// The backfiller keeps its position in memory: a restarted incarnation
    /// reads its bookmark only for the version to commit against and scans
    /// from the first page again, redoing more than one bookmark interval
    /// and moving the stored bookmark back (breaks MIG-3).
    VolatileBookmark,
    /// The verifier treats any difference of version or checksum as a
    /// mismatch, so it orders a repair for a host that merely lags (breaks MIG-4).
    VersionBlindVerifier,
    /// In `Switchover` the read path serves from the local store alone and
    /// answers NotFound (or `Creating`) on a local miss (breaks MIG-6).
    SwitchoverWithoutFallback,
    /// The backfiller skips its token bucket and sends its store requests as
    /// fast as the replies come (breaks THR-3).
    UnthrottledBackfill,
    /// The router pins each caller tenancy to the shard of the first request
    /// it routed for it, as if a tenancy lived on one shard, and sends every
    /// later request of that caller there, so a cross-tenancy or
    /// on-behalf-of request, or one for the caller's vault on another
    /// shard, goes to the caller's shard instead of its resource's home
    /// (breaks RTE-4).
    RouteByTenancy,
    /// A router without a request's routing row answers NotFound instead of
    /// reading the row from the base store (breaks RTE-2).
    NoRouteFallback,
    /// Placement takes every registered shard, `Provisioning` ones included,
    /// so a new vault goes to a shard added live before it is marked `Ready`
    /// (before its routing rows reached every base-cell host) (breaks RTE-3).
    RouteBeforeReady,
    /// The shard addition marks the new shard `Ready` once any one base-cell
    /// host has applied its registry row, not every one, so a host may meet
    /// placements on a shard its table lacks (breaks RTE-3).
    ReadyBeforeEveryHost,
}

#[cfg(feature = "bugzoo")]
impl Bug {
    /// Every bug, in zoo order.
    pub const ALL: [Bug; 19] = [
        Bug::CorruptingApply,
        Bug::UnversionedApply,
        Bug::PublishWithoutReads,
        Bug::CursorBeforeData,
        Bug::StopPollingWhenIdle,
        Bug::ActivateOnCommit,
        Bug::AcknowledgeBeforeCommit,
        Bug::UnvalidatedCommit,
        Bug::SharedBucket,
        Bug::UnconditionalBackfillEvents,
        Bug::DeleteWithoutTombstone,
        Bug::VolatileBookmark,
        Bug::VersionBlindVerifier,
        Bug::SwitchoverWithoutFallback,
        Bug::UnthrottledBackfill,
        Bug::NoRouteFallback,
        Bug::RouteBeforeReady,
        Bug::RouteByTenancy,
        Bug::ReadyBeforeEveryHost,
    ];

    /// The entry's name in the zoo, traces and the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bug::CorruptingApply => "corrupting-apply",
            Bug::UnversionedApply => "unversioned-apply",
            Bug::PublishWithoutReads => "publish-without-reads",
            Bug::CursorBeforeData => "cursor-before-data",
            Bug::StopPollingWhenIdle => "stop-polling-when-idle",
            Bug::ActivateOnCommit => "activate-on-commit",
            Bug::AcknowledgeBeforeCommit => "acknowledge-before-commit",
            Bug::UnvalidatedCommit => "unvalidated-commit",
            Bug::SharedBucket => "one-bucket-for-all-tenants",
            Bug::UnconditionalBackfillEvents => "unconditional-backfill-events",
            Bug::DeleteWithoutTombstone => "delete-without-tombstone",
            Bug::VolatileBookmark => "volatile-bookmark",
            Bug::VersionBlindVerifier => "version-blind-verifier",
            Bug::SwitchoverWithoutFallback => "switchover-without-fallback",
            Bug::UnthrottledBackfill => "unthrottled-backfill",
            Bug::RouteByTenancy => "route-by-tenancy",
            Bug::NoRouteFallback => "no-route-fallback",
            Bug::RouteBeforeReady => "route-before-ready",
            Bug::ReadyBeforeEveryHost => "ready-before-every-host",
        }
    }

    /// The property ID the bug breaks.
    pub fn breaks(self) -> &'static str {
        match self {
            Bug::CorruptingApply => "REP-1",
            Bug::UnversionedApply => "REP-2",
            Bug::PublishWithoutReads => "REP-4",
            Bug::CursorBeforeData => "REP-5",
            Bug::StopPollingWhenIdle => "REP-6",
            Bug::ActivateOnCommit => "REP-7",
            Bug::AcknowledgeBeforeCommit => "REP-8",
            Bug::UnvalidatedCommit => "REP-9",
            Bug::SharedBucket => "THR-2",
            Bug::UnconditionalBackfillEvents => "MIG-1",
            Bug::DeleteWithoutTombstone => "REP-5",
            Bug::VolatileBookmark => "MIG-3",
            Bug::VersionBlindVerifier => "MIG-4",
            Bug::SwitchoverWithoutFallback => "MIG-6",
            Bug::UnthrottledBackfill => "THR-3",
            Bug::RouteByTenancy => "RTE-4",
            Bug::NoRouteFallback => "RTE-2",
            Bug::RouteBeforeReady => "RTE-3",
            Bug::ReadyBeforeEveryHost => "RTE-3",
        }
    }

    /// The bug named `name`.
    pub fn parse(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|bug| bug.name() == name)
    }
}

/// Which bug-zoo variants are switched on; always none without the feature.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bugs {
    #[cfg(feature = "bugzoo")]
    on: BTreeSet<Bug>,
}

impl Bugs {
    /// No bug: the real code.
    pub fn none() -> Bugs {
        Bugs::default()
    }

    /// Exactly `bug`.
    #[cfg(feature = "bugzoo")]
    pub fn with(bug: Bug) -> Bugs {
        Bugs { on: BTreeSet::from([bug]) }
    }

    /// Whether `bug` is on.
    #[cfg(feature = "bugzoo")]
    pub fn is_on(&self, bug: Bug) -> bool {
        self.on.contains(&bug)
    }

    /// The names of the bugs that are on (empty without the feature).
    pub fn names(&self) -> Vec<&'static str> {
        #[cfg(feature = "bugzoo")]
        return self.on.iter().map(|bug| bug.name()).collect();
        #[cfg(not(feature = "bugzoo"))]
        return Vec::new();
    }

    /// The bugs named `names`, or the first name this build does not know
    /// (every name, without the feature).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Bugs, &'a str> {
        #[cfg(feature = "bugzoo")]
        {
            let on = names.into_iter().map(|name| Bug::parse(name).ok_or(name)).collect::<Result<_, _>>()?;
            Ok(Bugs { on })
        }
        #[cfg(not(feature = "bugzoo"))]
        match names.into_iter().next() {
            Some(name) => Err(name),
            None => Ok(Bugs::none()),
        }
    }
}

#[cfg(all(test, feature = "bugzoo"))]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for bug in Bug::ALL {
            assert_eq!(Bug::parse(bug.name()), Some(bug));
            assert_eq!(Bugs::parse([bug.name()]), Ok(Bugs::with(bug)));
        }
        assert_eq!(Bugs::parse(["no-such-bug"]), Err("no-such-bug"));
    }

    #[test]
    fn each_entry_breaks_its_own_property() {
        // But two: `delete-without-tombstone` was meant to break REP-3, which
        // no path reaches; what it breaks is REP-5, as `cursor-before-data`
        // does. RTE-3 has two halves, a placement on a shard not ready
        // (`route-before-ready`) and a shard ready before every base-cell host
        // knows it (`ready-before-every-host`).
        let sharing = [Bug::DeleteWithoutTombstone, Bug::ReadyBeforeEveryHost];
        let own = Bug::ALL.into_iter().filter(|bug| !sharing.contains(bug));
        let properties: BTreeSet<&str> = own.map(Bug::breaks).collect();
        assert_eq!(properties.len(), Bug::ALL.len() - sharing.len(), "two entries break the same property");
        let properties: BTreeSet<&str> = Bug::ALL.into_iter().map(Bug::breaks).collect();
        let known =
            |property: &&str| ["REP-", "THR-", "MIG-", "RTE-"].iter().any(|prefix| property.starts_with(prefix));
        assert!(properties.iter().all(known), "{properties:?}");
        let names: BTreeSet<&str> = Bug::ALL.into_iter().map(Bug::name).collect();
        assert_eq!(names.len(), Bug::ALL.len(), "two entries share a name");
    }
}

#[cfg(all(test, not(feature = "bugzoo")))]
mod tests {
    use super::*;

    #[test]
    fn without_the_feature_no_bug_can_be_switched_on() {
        assert!(Bugs::none().names().is_empty());
        assert_eq!(Bugs::parse(["unvalidated-commit"]), Err("unvalidated-commit"));
        assert_eq!(Bugs::parse([]), Ok(Bugs::none()));
    }
}
