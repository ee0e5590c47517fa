//! The abstract vocabulary: what a driver tells the properties.
//!
//! Identifiers are plain integers here (`secret`, `tenant`, `host`), so that
//! this crate stays independent of the implementation's types. A driver maps its
//! own ids onto them one to one.

use std::collections::BTreeMap;

/// The lifecycle of a secret, as the properties see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lifecycle {
    /// Committed, not yet replicated everywhere.
    Creating,
    /// Replicated to every live host of its cell.
    Active,
    /// Scheduled for deletion.
    PendingDeletion,
    /// Deleted: a tombstone.
    Deleted,
}

/// A secret at one version: what the store committed or a host holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretState {
    /// The record version.
    pub version: u64,
    /// The lifecycle at that version.
    pub lifecycle: Lifecycle,
    /// The content's checksum, `None` for a tombstone.
    pub checksum: Option<u64>,
}

/// One fact about a step of the world, in the order the step produced them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Observation {
    /// The remote store committed `secret` at `state`.
    Committed {
        /// The secret.
        secret: u32,
        /// Its tenancy (log partition).
        tenant: u32,
        /// The record written.
        state: SecretState,
        /// The store's sequence number of the commit (`t1` is one of these).
        commit: u64,
        /// Whether the commit emitted this write's replication event (an
        /// outbox row or a log append). Always so outside a live migration;
        /// during one, only while the phase the commit read replicates.
        replicated: bool,
    },
    /// The remote store appended an event to a partition.
    Appended {
        /// The partition.
        tenant: u32,
        /// The event's position.
        seq: u64,
        /// The secret it carries.
        secret: u32,
        /// The record it carries.
        state: SecretState,
    },
    /// A host's local record of `secret` is now `state` (after an apply).
    HostHolds {
        /// The host.
        host: u32,
        /// The secret.
        secret: u32,
        /// The local record.
        state: SecretState,
    },
    /// A host's cursor in `tenant`'s partition is now `seq`.
    HostCursor {
        /// The host.
        host: u32,
        /// The partition.
        tenant: u32,
        /// The cursor.
        seq: u64,
    },
    /// A host crashed (its durable state stays).
    HostCrashed {
        /// The host.
        host: u32,
    },
    /// A host restarted from its durable state, which it now holds in full.
    HostRestarted {
        /// The host.
        host: u32,
        /// Every record it recovered, by secret.
        records: Vec<(u32, SecretState)>,
        /// Every cursor it recovered, by partition.
        cursors: Vec<(u32, u64)>,
    },
    /// A client was told its write of `secret` committed at `version`.
    Acknowledged {
        /// The secret written.
        secret: u32,
        /// The version acknowledged.
        version: u64,
    },
    /// A client read `secret` from a host and got `found` (`None`: NotFound).
    HostRead {
        /// The host that answered.
        host: u32,
        /// The secret.
        secret: u32,
        /// What the host answered.
        found: Option<SecretState>,
    },
    /// A live host has nothing left that could wake it: no timer armed and no
    /// message in flight to or from it. Nothing it has not applied yet will
    /// ever reach it.
    HostStranded {
        /// The host.
        host: u32,
    },
    /// The front door's quota table admitted a control-plane request of
    /// `tenant` at `at_ns` (THR-1).
    Admitted {
        /// The requesting tenant.
        tenant: u32,
        /// When, in ns of the run.
        at_ns: u64,
    },
    /// The front door's quota table throttled a control-plane request of
    /// `tenant` at `at_ns` (THR-2); the client was answered at once.
    Throttled {
        /// The requesting tenant.
        tenant: u32,
        /// When, in ns of the run.
        at_ns: u64,
        /// Whether the service says the tenant's own quota refused (it is over
        /// its quota), as opposed to the service capacity. The properties do
        /// not trust it; reports use it.
        over_quota: bool,
        /// The retry-after the client was told, ns.
        retry_after_ns: u64,
    },
    /// A migration job (the backfiller, `job` 1: its walk number) sent a
    /// store request at `at_ns`, having taken it from its budget (THR-3).
    BudgetedRequest {
        /// Which job.
        job: u8,
        /// When, in ns of the run.
        at_ns: u64,
    },
    /// The store committed a backfill page that emits `secret`'s record
    /// `state` (an append in sync mode, an outbox row in async mode): a
    /// record the backfiller read, committed before `t1`. In sync mode the
    /// matching `Appended` follows in the same step; in async mode the
    /// publisher appends it later, in commit order.
    BackfillEmitted {
        /// The secret.
        secret: u32,
        /// Its tenancy (log partition).
        tenant: u32,
        /// The record emitted.
        state: SecretState,
    },
    /// The store committed a new migration phase (`phase`: 0 `Off`, 1
    /// `Sync`, 2 `Backfill`, 3 `Verify`, 4 `Switchover`) and `t1` as it now
    /// stands (`None` before it is recorded or after a rollback to `Off`).
    PhaseStored {
        /// The phase code.
        phase: u8,
        /// `t1`: the last commit made without replication.
        since: Option<u64>,
    },
    /// A host's read path learned the stored phase (each node learns it after
    /// its own delay).
    PhaseLearned {
        /// The host.
        host: u32,
        /// The phase code it now serves by.
        phase: u8,
    },
    /// A migration walk (the backfiller, `walk` 1, or the verifier, `walk`
    /// 2) asked the store for a page starting at position `from`, while its
    /// bookmark in the store stood at `stored`. Positions are one past the
    /// last secret id walked (0: the start).
    WalkScan {
        /// Which walk.
        walk: u8,
        /// Where the page starts.
        from: u64,
        /// The persisted bookmark at that moment.
        stored: u64,
        /// Keys per page: the walk's bookmark interval.
        page_keys: u64,
    },
    /// The store committed the backfill's bookmark as finished, for `t1` =
    /// `since` (the walk is done, whether or not its backfiller lived to say so).
    BackfillDone {
        /// `t1` of the migration it backfilled.
        since: u64,
    },
    /// The verifier ordered a repair of `host`'s entry of `secret` with the
    /// remote record `remote`, having been told by that host's digest that it
    /// held `host_had` (version and checksum; `None`: nothing).
    RepairOrdered {
        /// The host.
        host: u32,
        /// The secret.
        secret: u32,
        /// The record sent.
        remote: SecretState,
        /// The host's digest entry the decision was based on.
        host_had: Option<(u64, Option<u64>)>,
    },
    /// A storage fault flipped a bit of `host`'s local entry of `secret`;
    /// `state` is the entry as it now reads.
    Corrupted {
        /// The host.
        host: u32,
        /// The secret.
        secret: u32,
        /// The damaged entry.
        state: SecretState,
    },
    /// A repair replaced `host`'s entry of `secret`; `state` is the entry now.
    Repaired {
        /// The host.
        host: u32,
        /// The secret.
        secret: u32,
        /// The repaired entry.
        state: SecretState,
    },
    /// The store committed the verify pass's bookmark as finished.
    VerifyDone,
    // --- Sharding (the RTE properties, judged by `crate::routing`). Shards
    // and vaults are numbered as in `vault::types::ShardId` and `VaultId`;
    // shard 0 is the base shard. Every shard, the base shard included, is
    // reported registered and its cell ready before anything names it: a
    // world reports its initial shards at its start.
    /// The base store committed `shard`'s registry row: `ready` once
    /// placements may choose the shard, not yet while it is provisioning
    /// (RTE-3 wants it `ready` before a placement or a route names it).
    ShardRegistered {
        /// The shard.
        shard: u32,
        /// `Ready` (true) or `Provisioning` (false).
        ready: bool,
    },
    /// `shard`'s cell serves: its store and hosts are provisioned and up
    /// (RTE-3 wants it before a placement or a route names the shard).
    CellReady {
        /// The shard.
        shard: u32,
    },
    /// Base-cell host `host` applied `shard`'s registry row from the routing
    /// partition (RTE-3 wants every base-cell host to have done so before a
    /// shard added live is marked `Ready`).
    ShardKnown {
        /// The base-cell host.
        host: u32,
        /// The shard.
        shard: u32,
    },
    /// The base store committed `vault`'s route: the vault lives on `shard`
    /// (RTE-1: once per vault; RTE-3: on a ready shard).
    Placed {
        /// The vault.
        vault: u32,
        /// Its home shard.
        shard: u32,
    },
    /// `shard`'s store committed a write to a secret of `vault` (RTE-1: on
    /// the vault's home shard only).
    ShardWrite {
        /// The store's shard.
        shard: u32,
        /// The vault of the secret written.
        vault: u32,
    },
    /// A client sent `request`, naming a resource of `vault` (its vault, or
    /// a secret in it), as tenancy `caller` (not necessarily the vault's).
    /// Request ids are unique within a run.
    RouteRequested {
        /// The request.
        request: u64,
        /// The vault the named resource belongs to (the world's truth).
        vault: u32,
        /// The caller's tenancy.
        caller: u32,
    },
    /// A base-cell host's router sent `request` to `shard`'s cell (its own
    /// shard: served locally; another: proxied). RTE-3: a ready shard; RTE-4:
    /// the home shard of the request's vault.
    Routed {
        /// The host whose router decided.
        host: u32,
        /// The request.
        request: u64,
        /// The shard it was sent to.
        shard: u32,
    },
    /// `request` was answered: by `shard`'s cell, or by the router itself
    /// (`shard: None`: a lookup found no route, gave up, or was shed). The
    /// client's first answer only: RTE-2 and RTE-5 judge it and forget the
    /// request.
    RequestAnswered {
        /// The request.
        request: u64,
        /// The cell that answered, if any.
        shard: Option<u32>,
        /// How.
        outcome: RouteOutcome,
    },
    /// `shard`'s store went down (`down`) or came back (RTE-5 excuses an
    /// `Unavailable` answer of a request that waited through it).
    StoreOutage {
        /// The shard.
        shard: u32,
        /// Down (true) or back (false).
        down: bool,
    },
}

/// How a routed request was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteOutcome {
    /// Served by a cell (found or not, as that cell's store says).
    Served,
    /// The router found no route, in its table nor in the base store.
    NotFound,
    /// No answer in time: a store or a cell did not answer.
    Unavailable,
    /// A cell refused a proxied request (unknown peer, or not its shard).
    Refused,
    /// The router shed the request: too many requests were waiting on route
    /// lookups, so nothing was attempted (load, not a store's outage).
    Busy,
}

/// What one host holds at the end of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostView {
    /// Whether the host is up.
    pub live: bool,
    /// Every local record.
    pub records: BTreeMap<u32, SecretState>,
}

/// The abstract state of the world at one moment, for end-of-run properties.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct View {
    /// The remote store's secrets.
    pub remote: BTreeMap<u32, SecretState>,
    /// Every host of the cell.
    pub hosts: BTreeMap<u32, HostView>,
}
