//! The world: the control plane, the machines of each cell (one cell per
//! shard: the base cell, shard 0, and in a sharded world one more per
//! shard), the messages between them, their timers, crashed nodes, the
//! partition, and the property checkers.
//!
//! A sharded world ([`WorldConfig::sharding`]) gives each shard a cell of its
//! own: a store with its log, `hosts` hosts, its publishers and activator,
//! and its own [`PropertyChecker`] for the replication properties, which hold
//! per cell (a host holds its own cell's secrets, never another's). The
//! world's checker judges the base cell's replication, the front door and
//! the router properties (RTE-1 … RTE-5). Workers place creations and write
//! each resource in its home shard's store. Base-cell hosts replicate the
//! routing rows; each has a [`Router`] (node `Router(n)`, living and dying
//! with its host) that serves a client's routed read locally or proxies it
//! to a host of the home shard's cell, which checks the peer ([`ProxyAuth`])
//! before serving it. A store outage is an isolation of a store node.
//!
//! The world is one transition system. [`World::actions`] lists what may happen
//! next and [`World::step`] makes one action happen; both drivers (the seeded
//! simulator and, later, the model checker) use exactly these two. The world
//! draws no randomness and reads no clock: time moves only because an action
//! carries it (a delivery or a timer happens at or after its time; a client
//! operation names its arrival time), and `now` never goes backwards.
//!
//! Machines sit behind `Arc`s so that cloning a world (the model checker does
//! it on every transition) copies pointers; a step copies only the machines it
//! touches (`Arc::make_mut`).
//!
//! Messages in flight carry an id, assigned in send order, that actions and
//! traces use to name them. Equality and hashing of worlds ignore those ids and
//! compare the multiset of messages, so two worlds that differ only in the
//! order messages were sent are equal.
//!
//! A restart begins a new incarnation of a node. A message travels on a
//! connection to one incarnation of its receiver (a store reply: to the
//! incarnation that sent the request); reaching a later incarnation, it is
//! lost, because that connection died with the crash. Without this, a
//! restarted machine, whose request tags start again from zero, would take a
//! reply meant for its previous life as the answer to its own request.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use model::{HostView, Observation, PropertyChecker, RouteOutcome, RoutingOptions, SecretState, View, Violation};
use vault::accessor::{AccessorStats, ReadError, Source};
use vault::activator::{Activator, ActivatorConfig, ActivatorOutput};
use vault::backfill::{BackfillConfig, BackfillOutput, Backfiller};
use vault::bugzoo::Bugs;
use vault::host::DigestEntry;
use vault::host::{Host, HostConfig, HostOutput, LocalRead, LocalStore};
use vault::interceptor::InterceptorMode;
use vault::migration::{Operator, OperatorConfig, OperatorOutput, Phase, PhaseConfig};
use vault::migration::{BACKFILL_BOOKMARK, BOOKMARK_DONE, VERIFY_BOOKMARK};
use vault::placement::{PlacementPolicy, Placer};
use vault::publisher::{Publisher, PublisherConfig, PublisherOutput};
use vault::quota::{Admission, BucketConfig, Limit, QuotaConfigError, QuotaScope, QuotaTable, QuotaTableConfig};
use vault::reader::{Reader, ReaderConfig, ReaderOutput};
use vault::router::{ProxyAuth, RouteError, RoutedRequest, Router, RouterConfig, RouterOutput, RouterStats};
use vault::routes::{Resource, RouteTable};
use vault::shard_addition::{ShardAddition, ShardAdditionConfig, ShardAdditionOutput};
use vault::store::{BookmarkId, ReadEntry};
use vault::store::{CommitOutcome, Key, Store, StoreReply, StoreRequest, Transaction, Value, Write};
use vault::types::{Content, HostId, Lifecycle, RequestTag, SecretId, SecretRecord, Seq, TenantId, Time, VaultId};
use vault::types::{RouteRow, ShardId, ShardRecord, ShardState, VaultRecord, Version};
use vault::verify::{Verifier, VerifyConfig, VerifyOutput};
use vault::worker::{ClientError, Done, Operation, RequestId, Worker, WorkerConfig, WorkerOutput, WorkerStats};

/// A node of the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeId {
    /// The remote store of a shard (0: the base shard, which also holds the
    /// routing metadata of a sharded world).
    Store(u32),
    /// A control-plane worker.
    Worker(u32),
    /// A data-plane host, by its index in the world: the hosts of shard `s`'s
    /// cell are `s × hosts .. (s + 1) × hosts`.
    Host(u32),
    /// The publisher of a tenancy's partition (async mode): (shard, tenancy).
    Publisher(u32, u32),
    /// A shard's activator.
    Activator(u32),
    /// The migration operator (migration worlds only).
    Operator,
    /// The backfill job, while the stored phase is `Backfill`.
    Backfiller,
    /// The verify job, while the stored phase is `Verify`.
    Verifier,
    /// A host's read path (migration worlds only); it lives and dies with its host.
    Reader(u32),
    /// The clients (one endpoint for all; requests are told apart by id).
    Client,
    /// A base-cell host's router (sharded worlds only); it lives and dies
    /// with its host.
    Router(u32),
    /// The operator adding a shard live (sharded worlds, once told to).
    ShardAdder,
}

/// What a message carries.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Payload {
    /// A request to the store.
    StoreRequest {
        /// The sender's tag.
        tag: RequestTag,
        /// The request.
        request: StoreRequest,
    },
    /// The store's reply.
    StoreReply {
        /// The tag of the request answered.
        tag: RequestTag,
        /// The reply.
        reply: StoreReply,
    },
    /// A client operation sent to a worker.
    ClientRequest {
        /// The client's id for it.
        request: RequestId,
        /// The operation.
        operation: Operation,
    },
    /// A worker's answer to a client.
    ClientAnswer {
        /// The request answered.
        request: RequestId,
        /// The result.
        result: Result<Done, ClientError>,
    },
    /// A client read sent to a host.
    HostRead {
        /// The client's id for it.
        request: RequestId,
        /// The secret.
        secret: SecretId,
    },
    /// A host's answer to a read.
    HostReadAnswer {
        /// The request answered.
        request: RequestId,
        /// What the host answered: its local record, or the remote store's
        /// through its read path; `Err` when the store did not answer in time.
        read: Result<LocalRead, ReadError>,
    },
    /// The verifier asks a host for the digest of some secrets.
    DigestRequest {
        /// The verifier's tag.
        tag: RequestTag,
        /// The secrets, in key order.
        secrets: Vec<SecretId>,
    },
    /// A host's digest.
    DigestReply {
        /// The tag of the request answered.
        tag: RequestTag,
        /// Each secret's local version and checksum.
        digest: Vec<(SecretId, Option<DigestEntry>)>,
    },
    /// The verifier asks a host to repair a damaged entry.
    RepairRequest {
        /// The verifier's tag.
        tag: RequestTag,
        /// The secret.
        secret: SecretId,
        /// The remote record.
        record: SecretRecord,
    },
    /// A host's answer to a repair.
    RepairReply {
        /// The tag of the request answered.
        tag: RequestTag,
        /// Whether the host replaced its entry.
        replaced: bool,
    },
    /// A client read sent to a base-cell host's router (sharded worlds), as
    /// tenancy `caller`, which need not own the secret.
    RoutedRead {
        /// The client's id for it.
        request: RequestId,
        /// The caller's tenancy.
        caller: TenantId,
        /// The secret.
        secret: SecretId,
    },
    /// A read a base-cell host's router proxies to a host of its home shard.
    Proxied {
        /// The request with its route.
        routed: RoutedRequest,
    },
    /// A routed read that no cell served: the router's or a cell's refusal.
    RouteFailed {
        /// The request answered.
        request: RequestId,
        /// Why (never `Served`).
        outcome: RouteOutcome,
    },
    /// A host's report of its cursors to the activator.
    Applied {
        /// The host.
        host: HostId,
        /// Its cursors.
        cursors: Vec<(TenantId, Seq)>,
    },
}

/// Names a message in flight; assigned in send order, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

/// A message in flight.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The sender's incarnation when it sent the message.
    pub from_incarnation: u32,
    /// The receiver.
    pub to: NodeId,
    /// The receiver's incarnation the message is for.
    pub to_incarnation: u32,
    /// When it was sent.
    pub sent_at: Time,
    /// The content.
    pub payload: Payload,
}

/// Something that may happen next.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Deliver a message (at `at`, which is not before now).
    Deliver {
        /// The message.
        message: MessageId,
        /// Delivery time.
        at: Time,
    },
    /// Lose a message.
    Drop(MessageId),
    /// Copy a message (the copy gets a new id).
    Duplicate(MessageId),
    /// Fire a node's armed timer at `at` (not before its deadline; later when
    /// the node's clock runs slow).
    FireTimer {
        /// The node.
        node: NodeId,
        /// When it fires.
        at: Time,
    },
    /// Crash a node: its volatile state is lost, durable state stays.
    Crash(NodeId),
    /// Restart a crashed node from its durable state.
    Restart(NodeId),
    /// Cut a node off: messages from or to it are lost while it is isolated.
    /// Not a store: a store's outage is [`Action::StoreOutage`].
    Isolate(NodeId),
    /// End every isolation (not a store's outage).
    Heal,
    /// A client sends an operation to a worker at time `at`.
    Submit {
        /// The client's id for the request.
        request: RequestId,
        /// The worker.
        worker: u32,
        /// The operation.
        operation: Operation,
        /// Arrival time.
        at: Time,
    },
    /// The operator is told to roll back one phase at time `at`.
    Rollback {
        /// When.
        at: Time,
    },
    /// A storage fault flips a bit of a host's local entry of a secret.
    Corrupt {
        /// The host.
        host: u32,
        /// The secret.
        secret: SecretId,
    },
    /// A client reads a secret from a host at time `at`.
    Read {
        /// The client's id for the request.
        request: RequestId,
        /// The host.
        host: u32,
        /// The secret.
        secret: SecretId,
        /// Arrival time.
        at: Time,
    },
    /// A client of tenancy `caller` reads a secret through a base-cell host's
    /// router at time `at` (sharded worlds).
    RoutedRead {
        /// The client's id for the request.
        request: RequestId,
        /// The base-cell host.
        host: u32,
        /// The caller's tenancy (not necessarily the secret's).
        caller: TenantId,
        /// The secret.
        secret: SecretId,
        /// Arrival time.
        at: Time,
    },
    /// The operator is told to add a shard live at time `at` (sharded worlds
    /// configured with `add_shard`): it starts, and provisions the next shard.
    AddShard {
        /// When.
        at: Time,
    },
    /// A shard's store goes down (`down`) or comes back: every message to or
    /// from it is lost meanwhile. Its state is durable and stays.
    StoreOutage {
        /// The shard.
        shard: u32,
        /// Down or back.
        down: bool,
    },
}

/// The shape and knobs of a world.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorldConfig {
    /// Number of control-plane workers.
    pub workers: u32,
    /// Number of data-plane hosts in the cell.
    pub hosts: u32,
    /// Vaults that exist at the start, with their tenancy.
    pub vaults: Vec<(VaultId, TenantId)>,
    /// Interceptor mode of workers and the activator.
    pub mode: InterceptorMode,
    /// Worker knobs (its `mode` is overridden by `mode`).
    pub worker: WorkerConfig,
    /// Host knobs.
    pub host: HostConfig,
    /// Publisher rows per round.
    pub publisher_batch_events_max: usize,
    /// Publisher round interval.
    pub publish_interval_ns: u64,
    /// Activator poll interval.
    pub activator_poll_interval_ns: u64,
    /// Bug-zoo variants of the code, handed to every machine of the world.
    pub bugs: Bugs,
    /// A live migration of the cell onto its hosts; `None`: the cell
    /// replicates from the start and hosts serve every read locally.
    pub migration: Option<MigrationConfig>,
    /// Shards by vault, a cell per shard; `None`: one cell holds every vault.
    /// A world does not both migrate and shard.
    pub sharding: Option<ShardingConfig>,
}

/// A sharded world: `shards` cells of `WorldConfig::hosts` hosts each. The
/// configured vaults start placed in turn (vault `i` on shard `i mod
/// shards`), every shard registered `Ready` with its cell serving.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardingConfig {
    /// Shards, the base shard included.
    pub shards: u32,
    /// How workers place new vaults.
    pub policy: PlacementPolicy,
    /// How long a router waits on base-store lookups for one request.
    pub route_timeout_ns: u64,
    /// Requests a router lets wait on lookups at once.
    pub lookups_max: usize,
    /// The world's only faults are store outages (RTE-5 judges only then).
    pub outages_only: bool,
    /// Whether one more shard (number `shards`) may be added live
    /// ([`Action::AddShard`]); workers' placers read its registry row from
    /// the start.
    pub add_shard: bool,
}

/// A live migration in the world (see `vault::migration`): the cell starts in
/// phase `Off`, with secrets that were written before replication existed,
/// and the operator moves it through the phases on `schedule`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MigrationConfig {
    /// Secrets in the store at the start, committed without replication
    /// events, created in the configured vaults in turn.
    pub seeded_secrets: u32,
    /// The operator's schedule: from each time on, the target is at least that phase.
    pub schedule: Vec<(Time, Phase)>,
    /// Keys per backfill page (its bookmark interval).
    pub backfill_page_keys: usize,
    /// The backfiller's budget of store requests; `None`: unlimited.
    pub backfill_budget: Option<BucketConfig>,
    /// Keys per verify page (its bookmark interval).
    pub verify_page_keys: usize,
    /// The verifier's budget of store and host requests; `None`: unlimited.
    pub verify_budget: Option<BucketConfig>,
    /// How often each host's read path polls the stored phase, by host
    /// index (the last entry repeats for hosts beyond the list).
    pub phase_poll_ns: Vec<u64>,
    /// How long the operator, backfiller, verifier and read paths wait for a reply.
    pub request_timeout_ns: u64,
}

impl WorldConfig {
    /// The tenancies of the configured vaults, sorted and distinct.
    pub fn tenants(&self) -> Vec<TenantId> {
        let tenants: BTreeSet<TenantId> = self.vaults.iter().map(|(_, tenant)| *tenant).collect();
        tenants.into_iter().collect()
    }
}

/// A migration job (the backfiller or the verifier): it runs only while the
/// stored phase is its own, and can crash and restart meanwhile.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Job<T> {
    /// Not running: the stored phase is another.
    Absent,
    /// Running.
    Up(Arc<T>),
    /// Crashed; restarts from its bookmark.
    Down,
}

/// A host slot: up with its machine, or down with only its durable state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum HostSlot {
    Up(Arc<Host>),
    Down(Arc<LocalStore>),
}

/// The machines that exist once per shard: the shard's remote store (with
/// its log), the cell's hosts with their read paths and routers, the
/// publishers of its log partitions and its activator. Control-plane
/// workers and the migration's operator and jobs are not a cell's: they
/// belong to the world.
///
/// Each machine sits behind its own `Arc`, as before cells existed, so a
/// world clone copies pointers and a step copies only what it touches. The
/// base cell (shard 0) is held inline and the others in a `Vec` that is
/// empty unless the world shards: a `Vec` holding the base cell too would
/// allocate on every world clone, which the checker makes on every
/// transition (+2.6 % instructions under callgrind).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Cell {
    /// The remote store of the cell's shard.
    store: Arc<Store>,
    hosts: Vec<HostSlot>,
    /// The publishers of the cell's log partitions, by tenancy (async mode).
    publishers: BTreeMap<u32, Option<Arc<Publisher>>>,
    activator: Option<Arc<Activator>>,
    /// Each host's read path (migration worlds), `None` while the host is down.
    readers: Vec<Option<Arc<Reader>>>,
    /// Each host's router (the base cell of a sharded world), `None` while
    /// the host is down.
    routers: Vec<Option<Arc<Router>>>,
    /// The replication properties of this cell's log and hosts; `None` for
    /// the base cell, whose are the world's checker's.
    properties: Option<Arc<PropertyChecker>>,
}

impl Cell {
    fn new(store: Store) -> Cell {
        Cell {
            store: Arc::new(store),
            hosts: Vec::new(),
            publishers: BTreeMap::new(),
            activator: None,
            readers: Vec::new(),
            routers: Vec::new(),
            properties: None,
        }
    }

    /// Whether every up host of the cell is at its store's log head in every partition.
    fn hosts_caught_up(&self) -> bool {
        self.hosts.iter().all(|slot| match slot {
            HostSlot::Up(host) => {
                self.store.partitions().all(|tenant| host.durable().cursor(tenant) == self.store.head(tenant))
            }
            HostSlot::Down(_) => true,
        })
    }
}

/// What happened to one operation, for reports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperationRecord {
    /// The kind, for per-kind statistics.
    pub kind: OperationKind,
    /// When the client sent it.
    pub issued_at: Time,
    /// When the answer reached the client and whether the service served it
    /// (a success or a domain answer such as NotFound, as opposed to retries
    /// exhausted, an unknown outcome or a busy worker). A throttled request
    /// counts as served when its tenant was over its own quota (a correct 429
    /// to a client that sends too much) and as not served when the service
    /// capacity refused a tenant within its quota.
    pub answered: Option<(Time, bool)>,
    /// The requesting tenant, as the front door named it (only when the world
    /// throttles; see [`World::with_quotas`]).
    pub tenant: Option<u32>,
    /// The front door's refusal, if the request was throttled.
    pub throttled: Option<Throttle>,
    /// In a migrating world: the phase the store held when the request was
    /// issued (its code).
    pub phase: Option<u8>,
    /// In a migrating world, for a host read: where the read path answered
    /// it from (the first answer).
    pub source: Option<Source>,
    /// In a sharded world: the home shard of the vault the request acts on,
    /// when the base store had its route at issue (for per-shard availability).
    pub shard: Option<u32>,
}

/// A throttled request: who refused it and the retry-after the client was told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Throttle {
    /// Whether the tenant's own quota refused it (as opposed to the service capacity).
    pub over_quota: bool,
    /// Nanoseconds until the limits would admit it.
    pub retry_after_ns: u64,
}

/// The control plane's front door: the quota table that every client request
/// to a worker passes first, and the directory that names each request's
/// tenant (from its vault; a secret's tenant is learned from the create that
/// names its vault, as a path names its namespace).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FrontDoor {
    table: QuotaTable,
    vault_tenants: BTreeMap<VaultId, TenantId>,
    secret_tenants: BTreeMap<SecretId, TenantId>,
}

impl FrontDoor {
    /// The tenant of `operation`, learning a new secret's; `None` when the
    /// operation names a secret the front door has never seen created.
    fn tenant_of(&mut self, operation: &Operation) -> Option<TenantId> {
        match operation {
            Operation::CreateVault { vault, tenant } => {
                self.vault_tenants.insert(*vault, *tenant);
                Some(*tenant)
            }
            Operation::DeleteVault { vault } => self.vault_tenants.get(vault).copied(),
            Operation::CreateSecret { secret, vault, .. } => {
                let tenant = self.vault_tenants.get(vault).copied()?;
                self.secret_tenants.entry(*secret).or_insert(tenant);
                Some(tenant)
            }
            Operation::UpdateSecret { secret, .. }
            | Operation::ScheduleDeletion { secret }
            | Operation::DeleteSecret { secret, .. }
            | Operation::ReadSecret { secret } => self.secret_tenants.get(secret).copied(),
        }
    }
}

/// The kinds of client operation, for per-kind statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OperationKind {
    /// Create a vault.
    CreateVault,
    /// Delete a vault.
    DeleteVault,
    /// Create a secret.
    Create,
    /// Update a secret.
    Update,
    /// Schedule a secret's deletion.
    ScheduleDeletion,
    /// Delete a secret.
    Delete,
    /// Read a secret from the remote store.
    RemoteRead,
    /// Read a secret from a host.
    HostRead,
}

impl OperationKind {
    /// The kind of `operation`.
    pub fn of(operation: &Operation) -> OperationKind {
        match operation {
            Operation::CreateVault { .. } => OperationKind::CreateVault,
            Operation::DeleteVault { .. } => OperationKind::DeleteVault,
            Operation::CreateSecret { .. } => OperationKind::Create,
            Operation::UpdateSecret { .. } => OperationKind::Update,
            Operation::ScheduleDeletion { .. } => OperationKind::ScheduleDeletion,
            Operation::DeleteSecret { .. } => OperationKind::Delete,
            Operation::ReadSecret { .. } => OperationKind::RemoteRead,
        }
    }

    /// A short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            OperationKind::CreateVault => "create-vault",
            OperationKind::DeleteVault => "delete-vault",
            OperationKind::Create => "create",
            OperationKind::Update => "update",
            OperationKind::ScheduleDeletion => "schedule-deletion",
            OperationKind::Delete => "delete",
            OperationKind::RemoteRead => "remote-read",
            OperationKind::HostRead => "host-read",
        }
    }
}

/// What one step did, for the driver and the trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Messages sent by the step, in send order.
    pub sent: Vec<MessageId>,
    /// Messages the step lost (dropped, or addressed to a down or isolated node).
    pub lost: Vec<MessageId>,
    /// Nodes whose timer the step armed, re-armed or cleared.
    pub timers_changed: Vec<NodeId>,
    /// What the step showed the properties, in order.
    pub observations: Vec<Observation>,
    /// Properties the step violated.
    pub violations: Vec<Violation>,
    /// Throttled answers the client received in this step: the request and
    /// its retry-after, ns.
    pub throttled_answers: Vec<(RequestId, u64)>,
}

/// Each host's last digest entry per secret, as the verifier was sent it.
type Digests = BTreeMap<(u32, SecretId), Option<DigestEntry>>;

/// The world. See the module documentation.
#[derive(Clone, Debug)]
pub struct World {
    config: Arc<WorldConfig>,
    now: Time,
    /// The base cell (shard 0).
    base: Cell,
    /// The cells of shards 1 and up (sharded worlds only).
    shards: Vec<Cell>,
    /// The operator adding a shard live, once told to.
    adder: Job<ShardAddition>,
    workers: Vec<Option<Arc<Worker>>>,
    /// The migration operator, when the world migrates and it is up. It and
    /// the jobs migrate the base cell.
    operator: Option<Arc<Operator>>,
    backfiller: Job<Backfiller>,
    verifier: Job<Verifier>,
    /// The digest entry each host last sent the verifier, per secret: what a
    /// repair order was decided on (for MIG-4's observation).
    digests: Option<Arc<Digests>>,
    /// Behind `Arc`s: cheap to clone a world, cheap to move within the map.
    in_flight: BTreeMap<MessageId, Arc<Message>>,
    next_message: u64,
    timers: BTreeMap<NodeId, Time>,
    isolated: BTreeSet<NodeId>,
    /// Restarts of each node that has restarted (its incarnation; 0 if absent).
    incarnations: BTreeMap<NodeId, u32>,
    history: Arc<BTreeMap<RequestId, OperationRecord>>,
    properties: Arc<PropertyChecker>,
    /// The quota table and tenant directory; `None`: nothing is throttled.
    front_door: Option<Arc<FrontDoor>>,
    /// Counters of workers that crashed, so reports cover the whole run.
    retired_worker_stats: WorkerStats,
    /// Counters of read paths that died with their host, likewise.
    retired_read_stats: AccessorStats,
    steps: u64,
}

impl World {
    /// A world at time zero with the configured vaults in the store and every
    /// node up, each with its first timer armed.
    pub fn new(config: WorldConfig) -> World {
        assert!(config.workers > 0, "a world needs a worker");
        assert!(config.hosts > 0, "a world needs a host");
        assert!(
            config.migration.is_none() || config.sharding.is_none(),
            "a world migrates or shards, not both (not designed yet)"
        );
        let host_ids: Vec<u32> = (0..config.hosts).collect();
        let mut stores = stores_with_vaults(&config, &config.bugs).into_iter();
        let base = Cell::new(stores.next().expect("a base store"));
        let shards: Vec<Cell> = stores
            .enumerate()
            .map(|(index, store)| {
                let shard = index as u32 + 1;
                let hosts: Vec<u32> = (shard * config.hosts..(shard + 1) * config.hosts).collect();
                Cell { properties: Some(Arc::new(PropertyChecker::new(&hosts))), ..Cell::new(store) }
            })
            .collect();
        let mut world = World {
            now: Time::ZERO,
            base,
            shards,
            adder: Job::Absent,
            workers: Vec::new(),
            operator: None,
            backfiller: Job::Absent,
            verifier: Job::Absent,
            // `None` until the first digest: an `Arc` no world ever changes would be
            // shared by every state of a search, its count bumped by every clone on
            // every checker thread.
            digests: None,
            in_flight: BTreeMap::new(),
            next_message: 0,
            timers: BTreeMap::new(),
            isolated: BTreeSet::new(),
            incarnations: BTreeMap::new(),
            history: Arc::new(BTreeMap::new()),
            properties: Arc::new(match &config.migration {
                Some(migration) => {
                    let checker = PropertyChecker::new(&host_ids).with_migration();
                    match migration.backfill_budget {
                        Some(budget) => checker.with_job_budget(BACKFILL_JOB, budget_shape(budget)),
                        None => checker,
                    }
                }
                None => match &config.sharding {
                    Some(sharding) => PropertyChecker::new(&host_ids)
                        .with_routing(RoutingOptions { outages_only: sharding.outages_only, base_hosts: config.hosts }),
                    None => PropertyChecker::new(&host_ids),
                },
            }),
            front_door: None,
            retired_worker_stats: WorkerStats::default(),
            retired_read_stats: AccessorStats::default(),
            steps: 0,
            config: Arc::new(config),
        };
        let mut report = StepReport::default();
        world.observe_all(&world.initial_routing(), &mut report);
        for worker in 0..world.config.workers {
            world.restart_node(NodeId::Worker(worker), &mut report);
        }
        let shards = world.shard_count();
        for shard in 0..shards {
            for local in 0..world.config.hosts {
                let index = shard * world.config.hosts + local;
                let config = world.host_config(index);
                let host = Host::new(HostId(index), config, Time::ZERO).with_bugs(world.config.bugs.clone());
                world.cell_mut(shard).hosts.push(HostSlot::Up(Arc::new(host)));
                if world.is_router_host(index) {
                    world.base_mut().routers.push(None);
                    world.start_router(index);
                }
            }
        }
        for host in 0..shards * world.config.hosts {
            world.drain_host(host, &mut report);
        }
        for shard in 0..shards {
            if world.config.mode == InterceptorMode::Async {
                for tenant in world.config.tenants() {
                    world.restart_node(NodeId::Publisher(shard, tenant.0), &mut report);
                }
            }
            world.restart_node(NodeId::Activator(shard), &mut report);
        }
        if let Some(migration) = &world.config.migration {
            // The properties learn the secrets written before replication existed.
            let seeded: Vec<Observation> = (0..migration.seeded_secrets)
                .map(|secret| {
                    let entry = world.base().store.read(&Key::Secret(SecretId(secret)));
                    let Some(Value::Secret(record)) = &entry.value else { panic!("secret {secret} was seeded") };
                    let state = secret_state(record);
                    let tenant = record.tenant.0;
                    Observation::Committed { secret, tenant, state, commit: entry.version.0, replicated: false }
                })
                .collect();
            world.observe_all(&seeded, &mut report);
            for host in 0..world.config.hosts {
                world.base_mut().readers.push(None);
                world.start_reader(host, &mut report);
            }
            world.restart_node(NodeId::Operator, &mut report);
        }
        assert!(report.violations.is_empty(), "a new world violates nothing");
        world
    }

    /// The same world with a front door that admits or throttles every client
    /// request to a worker by `quotas` (one table for the whole control plane),
    /// and a property checker that judges THR-1 and THR-2 by the same limits.
    /// Call it on a new world, before any step.
    pub fn with_quotas(mut self, quotas: &QuotaTableConfig) -> Result<World, QuotaConfigError> {
        assert_eq!(self.steps, 0, "quotas are set up before the first step");
        let table = QuotaTable::new(quotas)?.with_bugs(self.config.bugs.clone());
        let vault_tenants = self.config.vaults.iter().copied().collect();
        let front_door = FrontDoor { table, vault_tenants, secret_tenants: BTreeMap::new() };
        self.front_door = Some(Arc::new(front_door));
        let properties = PropertyChecker::clone(&self.properties).with_throttle_limits(throttle_limits(quotas));
        self.properties = Arc::new(properties);
        Ok(self)
    }

    /// The front door's quota table, when the world throttles.
    pub fn quota_table(&self) -> Option<&QuotaTable> {
        self.front_door.as_deref().map(|front_door| &front_door.table)
    }

    /// The configuration.
    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// The current time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Messages in flight, by id.
    pub fn in_flight(&self) -> &BTreeMap<MessageId, Arc<Message>> {
        &self.in_flight
    }

    /// Armed timers: node and deadline.
    pub fn timers(&self) -> &BTreeMap<NodeId, Time> {
        &self.timers
    }

    /// Client operations and what became of them.
    pub fn history(&self) -> &BTreeMap<RequestId, OperationRecord> {
        &self.history
    }

    /// The remote store of the base cell.
    pub fn store(&self) -> &Store {
        &self.base().store
    }

    /// The remote store of `shard` (0: the base cell's).
    pub fn shard_store(&self, shard: u32) -> &Store {
        &self.cell(shard).store
    }

    /// Router counters of the base cell's hosts that are up (sharded worlds).
    pub fn router_stats(&self) -> Vec<(u32, RouterStats)> {
        let routers = self.base().routers.iter().enumerate();
        routers.filter_map(|(index, router)| Some((index as u32, router.as_deref()?.stats()))).collect()
    }

    /// The workers that are up, by index.
    pub fn workers(&self) -> impl Iterator<Item = (u32, &Worker)> {
        self.workers.iter().enumerate().filter_map(|(index, worker)| Some((index as u32, worker.as_deref()?)))
    }

    /// Worker counters over the whole run, crashed workers included.
    pub fn worker_stats(&self) -> WorkerStats {
        self.workers().fold(self.retired_worker_stats, |total, (_, worker)| add_stats(total, worker.stats()))
    }

    /// Read-path counters over the whole run (migration worlds), read paths
    /// of crashed hosts included.
    pub fn read_stats(&self) -> AccessorStats {
        self.base()
            .readers
            .iter()
            .flatten()
            .fold(self.retired_read_stats, |total, reader| add_read_stats(total, reader.accessor().stats()))
    }

    /// The route table of base-cell host `index`'s router (its applied
    /// rows and the rows its lookups learned), while it is up (sharded worlds).
    pub fn router_routes(&self, index: u32) -> Option<&RouteTable> {
        self.base().routers.get(index as usize)?.as_deref().map(Router::routes)
    }

    /// Every host of the base cell: its index, whether it is up, and its durable state.
    pub fn hosts(&self) -> impl Iterator<Item = (u32, bool, &LocalStore)> {
        self.cell_hosts(0)
    }

    /// Every host of `shard`'s cell: its index in the world, whether it is
    /// up, and its durable state.
    pub fn cell_hosts(&self, shard: u32) -> impl Iterator<Item = (u32, bool, &LocalStore)> {
        let first = shard * self.config.hosts;
        self.cell(shard).hosts.iter().enumerate().map(move |(local, slot)| match slot {
            HostSlot::Up(host) => (first + local as u32, true, host.durable()),
            HostSlot::Down(durable) => (first + local as u32, false, &**durable),
        })
    }

    /// The base cell's publishers that are up.
    pub fn publishers(&self) -> impl Iterator<Item = &Publisher> {
        self.base().publishers.values().filter_map(|publisher| publisher.as_deref())
    }

    /// Whether `node` is up.
    pub fn is_up(&self, node: NodeId) -> bool {
        match node {
            NodeId::Store(shard) => shard < self.shard_count(),
            NodeId::Client => true,
            NodeId::Worker(index) => self.workers.get(index as usize).is_some_and(Option::is_some),
            NodeId::Host(index) => {
                index < self.shard_count() * self.config.hosts && matches!(self.host_slot(index), HostSlot::Up(_))
            }
            NodeId::Publisher(shard, tenant) => {
                shard < self.shard_count() && self.cell(shard).publishers.get(&tenant).is_some_and(Option::is_some)
            }
            NodeId::Activator(shard) => shard < self.shard_count() && self.cell(shard).activator.is_some(),
            NodeId::Router(index) => self.base().routers.get(index as usize).is_some_and(Option::is_some),
            NodeId::ShardAdder => matches!(self.adder, Job::Up(_)),
            NodeId::Operator => self.operator.is_some(),
            NodeId::Backfiller => matches!(self.backfiller, Job::Up(_)),
            NodeId::Verifier => matches!(self.verifier, Job::Up(_)),
            NodeId::Reader(index) => self.base().readers.get(index as usize).is_some_and(Option::is_some),
        }
    }

    /// Nodes that can crash and restart.
    pub fn crashable_nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = (0..self.config.workers).map(NodeId::Worker).collect();
        nodes.extend((0..self.shard_count() * self.config.hosts).map(NodeId::Host));
        for shard in 0..self.shard_count() {
            nodes.extend(self.cell(shard).publishers.keys().map(|tenant| NodeId::Publisher(shard, *tenant)));
            nodes.push(NodeId::Activator(shard));
        }
        if self.adder != Job::Absent {
            nodes.push(NodeId::ShardAdder);
        }
        if self.config.migration.is_some() {
            nodes.push(NodeId::Operator);
            if self.backfiller != Job::Absent {
                nodes.push(NodeId::Backfiller);
            }
            if self.verifier != Job::Absent {
                nodes.push(NodeId::Verifier);
            }
        }
        nodes
    }

    /// The migration's read paths, by host of the base cell (`None` while the host is down).
    pub fn readers(&self) -> impl Iterator<Item = (u32, Option<&Reader>)> {
        self.base().readers.iter().enumerate().map(|(index, reader)| (index as u32, reader.as_deref()))
    }

    /// The migration operator, when up.
    pub fn operator(&self) -> Option<&Operator> {
        self.operator.as_deref()
    }

    /// The backfill job, when running.
    pub fn backfiller(&self) -> Option<&Backfiller> {
        match &self.backfiller {
            Job::Up(job) => Some(job),
            Job::Absent | Job::Down => None,
        }
    }

    /// The verify job, when running.
    pub fn verifier(&self) -> Option<&Verifier> {
        match &self.verifier {
            Job::Up(job) => Some(job),
            Job::Absent | Job::Down => None,
        }
    }

    /// The migration's configuration as the store holds it.
    pub fn stored_phase(&self) -> PhaseConfig {
        let entries = PhaseConfig::KEYS.map(|key| self.base().store.read(&key));
        PhaseConfig::from_entries(&entries)
    }

    /// Whether `node` is cut off.
    pub fn is_isolated(&self, node: NodeId) -> bool {
        self.isolated.contains(&node)
    }

    /// The enabled environment actions in a canonical order: deliver, drop and
    /// duplicate each message, fire each timer, crash or restart each node,
    /// isolate each node, heal. Client actions are not listed: the driver's
    /// workload decides them.
    pub fn actions(&self) -> Vec<Action> {
        let mut actions = Vec::new();
        for (id, message) in &self.in_flight {
            let at = self.now.max(message.sent_at);
            actions.push(Action::Deliver { message: *id, at });
            actions.push(Action::Drop(*id));
            actions.push(Action::Duplicate(*id));
        }
        actions.extend(self.timers.iter().map(|(node, deadline)| Action::FireTimer { node: *node, at: *deadline }));
        for node in self.crashable_nodes() {
            actions.push(if self.is_up(node) { Action::Crash(node) } else { Action::Restart(node) });
            if !self.isolated.contains(&node) {
                actions.push(Action::Isolate(node));
            }
        }
        if self.isolated.iter().any(|node| !matches!(node, NodeId::Store(_))) {
            actions.push(Action::Heal);
        }
        actions
    }

    /// Applies one action. Panics if the action is not enabled (a driver bug).
    pub fn step(&mut self, action: &Action) -> StepReport {
        let mut report = StepReport::default();
        self.steps += 1;
        let stranded_before = self.stranded_hosts();
        match action {
            Action::Deliver { message, at } => {
                self.advance(*at);
                let id = *message;
                let message = self.in_flight.remove(&id).unwrap_or_else(|| panic!("no message {id:?}"));
                let message = Arc::try_unwrap(message).unwrap_or_else(|shared| Message::clone(&shared));
                self.deliver(message, id, &mut report);
            }
            Action::Drop(id) => {
                assert!(self.in_flight.remove(id).is_some(), "no message {id:?} to drop");
                report.lost.push(*id);
            }
            Action::Duplicate(id) => {
                let copy = Arc::clone(self.in_flight.get(id).unwrap_or_else(|| panic!("no message {id:?} to copy")));
                let copy_id = self.enqueue_shared(copy);
                report.sent.push(copy_id);
            }
            Action::FireTimer { node, at } => {
                let deadline = self.timers.remove(node).unwrap_or_else(|| panic!("no timer armed for {node:?}"));
                report.timers_changed.push(*node);
                assert!(*at >= deadline, "{node:?} fired at {at:?}, before its deadline {deadline:?}");
                self.advance(*at);
                self.fire_timer(*node, &mut report);
            }
            Action::Crash(node) => self.crash_node(*node, &mut report),
            Action::Restart(node) => {
                assert!(!self.is_up(*node), "{node:?} is already up");
                *self.incarnations.entry(*node).or_default() += 1;
                self.restart_node(*node, &mut report);
            }
            Action::Isolate(node) => {
                assert!(!matches!(node, NodeId::Store(_)), "a store's outage is `Action::StoreOutage`");
                self.isolated.insert(*node);
            }
            // Store outages end by their own action.
            Action::Heal => self.isolated.retain(|node| matches!(node, NodeId::Store(_))),
            Action::Rollback { at } => {
                self.advance(*at);
                let now = self.now;
                let operator = self.operator.as_mut().expect("a rollback is told to an operator that is up");
                Arc::make_mut(operator).on_rollback(now);
                self.drain_operator(&mut report);
            }
            Action::Corrupt { host, secret } => self.corrupt(*host, *secret, &mut report),
            Action::Submit { request, worker, operation, at } => {
                self.advance(*at);
                self.record_issue(*request, OperationKind::of(operation));
                if let Some(shard) = self.operation_home(operation) {
                    Arc::make_mut(&mut self.history).get_mut(request).expect("just recorded").shard = Some(shard);
                }
                if let Some(front_door) = &mut self.front_door {
                    let tenant = Arc::make_mut(front_door).tenant_of(operation);
                    let history = Arc::make_mut(&mut self.history);
                    history.get_mut(request).expect("just recorded").tenant = tenant.map(|tenant| tenant.0);
                }
                let payload = Payload::ClientRequest { request: *request, operation: operation.clone() };
                report.sent.push(self.send(NodeId::Client, NodeId::Worker(*worker), payload));
            }
            Action::Read { request, host, secret, at } => {
                self.advance(*at);
                self.record_issue(*request, OperationKind::HostRead);
                let payload = Payload::HostRead { request: *request, secret: *secret };
                report.sent.push(self.send(NodeId::Client, NodeId::Host(*host), payload));
            }
            Action::RoutedRead { request, host, caller, secret, at } => {
                assert!(self.is_router_host(*host), "a routed read goes to a base-cell host of a sharded world");
                self.advance(*at);
                self.record_issue(*request, OperationKind::HostRead);
                // The world's truth: the vault the secret was created in, if its route is committed.
                if let Some(vault) = self.secret_vault(*secret) {
                    let shard = self.vault_home(vault);
                    Arc::make_mut(&mut self.history).get_mut(request).expect("just recorded").shard = shard;
                    let requested =
                        Observation::RouteRequested { request: request.0, vault: vault.0, caller: caller.0 };
                    self.observe_all(&[requested], &mut report);
                }
                let payload = Payload::RoutedRead { request: *request, caller: *caller, secret: *secret };
                report.sent.push(self.send(NodeId::Client, NodeId::Host(*host), payload));
            }
            Action::AddShard { at } => {
                let sharding = self.config.sharding.as_ref().expect("a shard is added to a sharded world");
                assert!(sharding.add_shard, "the world was not configured to add a shard");
                self.advance(*at);
                if self.adder == Job::Absent {
                    self.start_adder(&mut report);
                }
            }
            Action::StoreOutage { shard, down } => {
                assert!(*shard < self.shard_count(), "no shard {shard}");
                let store = NodeId::Store(*shard);
                let changed = if *down { self.isolated.insert(store) } else { self.isolated.remove(&store) };
                if changed {
                    self.observe_all(&[Observation::StoreOutage { shard: *shard, down: *down }], &mut report);
                }
            }
        }
        for host in self.stranded_hosts() {
            if !stranded_before.contains(&host) {
                let shard = self.host_place(host).0;
                self.observe_in(shard, &[Observation::HostStranded { host }], &mut report);
            }
        }
        report
    }

    /// Live hosts that nothing can wake any more: no timer armed and no
    /// message in flight to or from their current incarnation. A correct host
    /// always has one or the other (it polls forever), so becoming stranded
    /// breaks REP-6 at once, without waiting for an end of run that a stuck
    /// world never reaches. Cheap: only hosts without a timer scan the network.
    fn stranded_hosts(&self) -> Vec<u32> {
        let mut stranded = Vec::new();
        let hosts = (0..self.shard_count()).flat_map(|shard| self.cell(shard).hosts.iter());
        for (index, slot) in hosts.enumerate() {
            let node = NodeId::Host(index as u32);
            if !matches!(slot, HostSlot::Up(_)) || self.timers.contains_key(&node) {
                continue;
            }
            let incarnation = self.incarnation(node);
            let pending = self.in_flight.values().any(|message| {
                (message.to == node && message.to_incarnation == incarnation)
                    || (message.from == node && message.from_incarnation == incarnation)
            });
            if !pending {
                stranded.push(index as u32);
            }
        }
        stranded
    }

    fn advance(&mut self, at: Time) {
        self.now = self.now.max(at);
    }

    fn record_issue(&mut self, request: RequestId, kind: OperationKind) {
        let phase = self.config.migration.as_ref().map(|_| self.stored_phase().phase.code() as u8);
        let record = OperationRecord {
            kind,
            issued_at: self.now,
            answered: None,
            tenant: None,
            throttled: None,
            phase,
            source: None,
            shard: None,
        };
        let previous = Arc::make_mut(&mut self.history).insert(request, record);
        assert!(previous.is_none(), "request id {request:?} reused");
    }

    fn send(&mut self, from: NodeId, to: NodeId, payload: Payload) -> MessageId {
        let to_incarnation = self.incarnation(to);
        self.send_to_incarnation(from, to, to_incarnation, payload)
    }

    fn send_to_incarnation(&mut self, from: NodeId, to: NodeId, to_incarnation: u32, payload: Payload) -> MessageId {
        let from_incarnation = self.incarnation(from);
        self.enqueue(Message { from, from_incarnation, to, to_incarnation, sent_at: self.now, payload })
    }

    /// How many times `node` has restarted.
    pub fn incarnation(&self, node: NodeId) -> u32 {
        self.incarnations.get(&node).copied().unwrap_or(0)
    }

    fn enqueue(&mut self, message: Message) -> MessageId {
        self.enqueue_shared(Arc::new(message))
    }

    fn enqueue_shared(&mut self, message: Arc<Message>) -> MessageId {
        let id = MessageId(self.next_message);
        self.next_message += 1;
        self.in_flight.insert(id, message);
        id
    }

    fn deliver(&mut self, message: Message, id: MessageId, report: &mut StepReport) {
        // A host's read path and router are cut off with their host.
        let isolated = |node: NodeId| match node {
            NodeId::Reader(index) | NodeId::Router(index) => self.isolated.contains(&NodeId::Host(index)),
            node => self.isolated.contains(&node),
        };
        let cut = isolated(message.from) || isolated(message.to);
        let stale = message.to_incarnation != self.incarnation(message.to);
        if cut || stale || !self.is_up(message.to) {
            report.lost.push(id);
            return;
        }
        let Message { from, from_incarnation, to, payload, .. } = message;
        let now = self.now;
        match (to, payload) {
            (NodeId::Store(shard), Payload::StoreRequest { tag, request }) => {
                self.on_store_request(shard, from, from_incarnation, tag, request, report);
            }
            (NodeId::Worker(index), Payload::StoreReply { tag, reply }) => {
                self.worker_mut(index).on_store_reply(now, tag, reply);
                self.drain_worker(index, report);
            }
            (NodeId::Worker(index), Payload::ClientRequest { request, operation }) => {
                if self.admit(index, request, report) {
                    self.worker_mut(index).on_client_request(now, request, operation);
                    self.drain_worker(index, report);
                }
            }
            (NodeId::Host(index), Payload::StoreReply { tag, reply }) => self.on_host_reply(index, tag, reply, report),
            (NodeId::Host(index), Payload::HostRead { request, secret }) => {
                self.on_host_read(index, request, secret, report);
            }
            (NodeId::Host(index), Payload::RoutedRead { request, caller, secret }) => {
                self.router_mut(index).on_request(now, request, caller, Resource::Secret(secret));
                self.drain_router(index, report);
            }
            (NodeId::Host(index), Payload::Proxied { routed }) => {
                let NodeId::Host(peer) = from else { panic!("a proxied request from {from:?}") };
                self.on_proxied(index, peer, routed, report);
            }
            (NodeId::ShardAdder, Payload::StoreReply { tag, reply }) => {
                job_mut(&mut self.adder).on_store_reply(now, tag, reply);
                self.drain_adder(report);
            }
            (NodeId::Router(index), Payload::StoreReply { tag, reply }) => {
                self.router_mut(index).on_store_reply(now, tag, reply);
                self.drain_router(index, report);
            }
            (NodeId::Publisher(shard, tenant), Payload::StoreReply { tag, reply }) => {
                self.publisher_mut(shard, tenant).on_store_reply(now, tag, reply);
                self.drain_publisher(shard, tenant, report);
            }
            (NodeId::Activator(shard), Payload::StoreReply { tag, reply }) => {
                self.activator_mut(shard).on_store_reply(now, tag, reply);
                self.drain_activator(shard, report);
            }
            (NodeId::Activator(shard), Payload::Applied { host, cursors }) => {
                self.activator_mut(shard).on_host_applied(host, &cursors);
            }
            (NodeId::Operator, Payload::StoreReply { tag, reply }) => {
                self.operator_mut().on_store_reply(now, tag, reply);
                self.drain_operator(report);
            }
            (NodeId::Backfiller, Payload::StoreReply { tag, reply }) => {
                job_mut(&mut self.backfiller).on_store_reply(now, tag, reply);
                self.drain_backfiller(report);
            }
            (NodeId::Verifier, Payload::StoreReply { tag, reply }) => {
                job_mut(&mut self.verifier).on_store_reply(now, tag, reply);
                self.drain_verifier(report);
            }
            (NodeId::Verifier, Payload::DigestReply { tag, digest }) => {
                let NodeId::Host(host) = from else { panic!("a digest from {from:?}") };
                if !digest.is_empty() {
                    let digests = Arc::make_mut(self.digests.get_or_insert_with(Arc::default));
                    for (secret, entry) in &digest {
                        digests.insert((host, *secret), *entry);
                    }
                }
                job_mut(&mut self.verifier).on_digest(now, tag, digest);
                self.drain_verifier(report);
            }
            (NodeId::Verifier, Payload::RepairReply { tag, replaced }) => {
                job_mut(&mut self.verifier).on_repaired(now, tag, replaced);
                self.drain_verifier(report);
            }
            (NodeId::Host(index), Payload::DigestRequest { tag, secrets }) => {
                let digest = self.host(index).durable().digest(&secrets);
                let payload = Payload::DigestReply { tag, digest };
                report.sent.push(self.send_to_incarnation(NodeId::Host(index), from, from_incarnation, payload));
            }
            (NodeId::Host(index), Payload::RepairRequest { tag, secret, record }) => {
                let replaced = self.host_mut(index).repair(secret, &record);
                if replaced {
                    let state = secret_state(&record);
                    self.observe_all(&[Observation::Repaired { host: index, secret: secret.0, state }], report);
                }
                let payload = Payload::RepairReply { tag, replaced };
                report.sent.push(self.send_to_incarnation(NodeId::Host(index), from, from_incarnation, payload));
            }
            (NodeId::Reader(index), Payload::StoreReply { tag, reply }) => {
                self.on_reader_reply(index, tag, reply, report);
            }
            (NodeId::Client, Payload::ClientAnswer { request, result }) => self.on_answer(request, &result, report),
            (NodeId::Client, Payload::HostReadAnswer { request, read }) => self.record_answer(request, read.is_ok()),
            (NodeId::Client, Payload::RouteFailed { request, outcome }) => {
                // A route that does not exist is the service's answer; the others failed the client.
                self.record_answer(request, outcome == RouteOutcome::NotFound);
            }
            (to, payload) => panic!("{to:?} cannot receive {payload:?}"),
        }
    }

    fn on_store_request(
        &mut self,
        shard: u32,
        from: NodeId,
        from_incarnation: u32,
        tag: RequestTag,
        request: StoreRequest,
        report: &mut StepReport,
    ) {
        // Only the walk's live incarnation is judged: a scan a crashed or
        // stopped one sent is still served, but its reply reaches no one.
        let live = from_incarnation == self.incarnation(from) && self.is_up(from);
        if let (StoreRequest::Scan { after, limit, .. }, Some(walk), true) = (&request, walk_of(from), live) {
            let from = after.map_or(0, |key| match key {
                Key::Secret(secret) => u64::from(secret.0) + 1,
                other => panic!("a walk scans from {other:?}"),
            });
            let stored = match self.base().store.read(&Key::Bookmark(walk)).value {
                Some(Value::Bookmark(value)) => value,
                _ => 0,
            };
            let scan = Observation::WalkScan { walk: walk.0 as u8, from, stored, page_keys: *limit as u64 };
            self.observe_all(&[scan], report);
        }
        let reply = match request {
            // A commit is applied here rather than through `on_request` so the
            // properties can see its writes without copying the transaction.
            StoreRequest::Commit(transaction) => {
                let outcome = Arc::make_mut(&mut self.cell_mut(shard).store).commit(&transaction);
                self.observe_commit(shard, from, &transaction, &outcome, report);
                StoreReply::Commit(outcome)
            }
            request => Arc::make_mut(&mut self.cell_mut(shard).store).on_request(request),
        };
        // The reply goes back on the request's connection, to the incarnation that asked.
        let payload = Payload::StoreReply { tag, reply };
        report.sent.push(self.send_to_incarnation(NodeId::Store(shard), from, from_incarnation, payload));
    }

    fn observe_commit(
        &mut self,
        shard: u32,
        from: NodeId,
        transaction: &Transaction,
        outcome: &CommitOutcome,
        report: &mut StepReport,
    ) {
        let CommitOutcome::Committed { appended, commit } = outcome else { return };
        let mut observations = Vec::new();
        if from == NodeId::Backfiller {
            for write in &transaction.writes {
                if let Write::Append(mutation) | Write::Outbox(mutation) = write {
                    observations.push(Observation::BackfillEmitted {
                        secret: mutation.secret.0,
                        tenant: mutation.record.tenant.0,
                        state: secret_state(&mutation.record),
                    });
                }
            }
        }
        for write in &transaction.writes {
            if let Write::Put(Key::Secret(secret), Value::Secret(record)) = write {
                let state = secret_state(record);
                let replicated = transaction.writes.iter().any(|write| match write {
                    Write::Append(mutation) | Write::Outbox(mutation) => mutation.secret == *secret,
                    _ => false,
                });
                observations.push(Observation::Committed {
                    secret: secret.0,
                    tenant: record.tenant.0,
                    state,
                    commit: commit.0,
                    replicated,
                });
            }
        }
        for (tenant, seq) in appended {
            let event = &self.cell(shard).store.poll(*tenant, Seq(seq.0 - 1), 1)[0];
            let state = secret_state(&event.mutation.record);
            observations.push(Observation::Appended {
                tenant: tenant.0,
                seq: seq.0,
                secret: event.mutation.secret.0,
                state,
            });
        }
        for write in &transaction.writes {
            match write {
                Write::Put(Key::Bookmark(BACKFILL_BOOKMARK), Value::Bookmark(BOOKMARK_DONE)) => {
                    let since = self.stored_phase().since.expect("a backfill runs after t1 is stored");
                    observations.push(Observation::BackfillDone { since: since.0 });
                }
                Write::Put(Key::Bookmark(VERIFY_BOOKMARK), Value::Bookmark(BOOKMARK_DONE)) => {
                    observations.push(Observation::VerifyDone);
                }
                _ => {}
            }
        }
        let phase_written = transaction
            .writes
            .iter()
            .any(|write| matches!(write, Write::Put(key, _) | Write::Delete(key) if PhaseConfig::holds(key)));
        if phase_written {
            let stored = self.stored_phase();
            observations.push(Observation::PhaseStored {
                phase: stored.phase.code() as u8,
                since: stored.since.map(|since| since.0),
            });
        }
        self.observe_in(shard, &observations, report);
        if self.config.sharding.is_some() {
            let routing = routing_observations(shard, transaction);
            self.observe_all(&routing, report);
        }
        if phase_written {
            self.reconcile_jobs(report);
        }
    }

    /// Delivers a poll reply to a host and tells the properties what moved.
    ///
    /// What the host applied is exactly the log between its old and new
    /// cursors (events buffered from earlier replies included), so the world
    /// reports each secret of that range as the host now holds it, then the
    /// cursors. Unchanged records are reported too, which no property minds.
    fn on_host_reply(&mut self, index: u32, tag: RequestTag, reply: StoreReply, report: &mut StepReport) {
        let before: BTreeMap<TenantId, Seq> = self.host(index).durable().cursors().into_iter().collect();
        let routes_before = self.host(index).durable().routes().cursor();
        let now = self.now;
        self.host_mut(index).on_store_reply(now, tag, reply);
        self.feed_router(index, routes_before, report);
        if self.host(index).durable().routes().cursor() != routes_before {
            self.report_routes_applied(index, report);
        }
        let shard = self.host_place(index).0;
        let after = self.host(index).durable();
        let mut secrets = BTreeSet::new();
        let mut cursors = Vec::new();
        for (tenant, seq) in after.cursors() {
            let from = before.get(&tenant).copied().unwrap_or(Seq::ZERO);
            if from == seq {
                continue;
            }
            // A cursor that went back (a broken host) applied nothing new; the
            // properties judge it from the cursor observation alone.
            let count = usize::try_from(seq.0.saturating_sub(from.0)).expect("fits");
            let applied = self.cell(shard).store.poll(tenant, from, count);
            secrets.extend(applied.iter().map(|event| event.mutation.secret));
            cursors.push(Observation::HostCursor { host: index, tenant: tenant.0, seq: seq.0 });
        }
        // A secret the host should hold but does not is reported by REP-5
        // through the cursor observation, not by a panic here.
        let mut observations: Vec<Observation> = secrets
            .into_iter()
            .filter_map(|secret| {
                let record = after.record(secret)?;
                Some(Observation::HostHolds { host: index, secret: secret.0, state: secret_state(record) })
            })
            .collect();
        observations.extend(cursors);
        self.observe_in(shard, &observations, report);
        self.drain_host(index, report);
    }

    /// Hands host `index`'s router the routing events its host applied
    /// since its route cursor stood at `before`: the base store's routing
    /// partition between the two cursors, so router and host keep one table.
    fn feed_router(&mut self, index: u32, before: Seq, report: &mut StepReport) {
        let after = self.host(index).durable().routes().cursor();
        if after == before || !self.is_router_host(index) {
            return;
        }
        let count = usize::try_from(after.0 - before.0).expect("fits");
        let events = self.base.store.poll_routes(before, count).to_vec();
        let router = self.router_mut(index);
        for event in &events {
            router.on_route_event(event);
        }
        // The host now knows each shard whose registry row it applied (RTE-3).
        let known: BTreeSet<u32> = events
            .iter()
            .filter_map(|event| match event.row {
                RouteRow::Shard { shard, .. } => Some(shard.0),
                _ => None,
            })
            .collect();
        let observations: Vec<Observation> =
            known.into_iter().map(|shard| Observation::ShardKnown { host: index, shard }).collect();
        self.observe_all(&observations, report);
    }

    /// Tells the shard-adding operator, if up, how far base-cell host
    /// `index` has applied the routing partition.
    fn report_routes_applied(&mut self, index: u32, report: &mut StepReport) {
        if !self.is_router_host(index) || !matches!(self.adder, Job::Up(_)) {
            return;
        }
        let applied = self.host(index).durable().routes().applied_commit();
        let now = self.now;
        job_mut(&mut self.adder).on_routes_applied(now, HostId(index), applied);
        self.drain_adder(report);
    }

    /// Starts the shard-adding operator (a fresh incarnation) and tells it
    /// how far each up base-cell host has applied the routing partition, as
    /// a real operator would ask them.
    fn start_adder(&mut self, report: &mut StepReport) {
        let sharding = self.config.sharding.as_ref().expect("a shard is added to a sharded world");
        let config = ShardAdditionConfig {
            shard: ShardId(sharding.shards),
            base_hosts: (0..self.config.hosts).map(HostId).collect(),
            request_timeout_ns: sharding.route_timeout_ns,
            retry_delay_ns: sharding.route_timeout_ns / 4,
        };
        let addition = ShardAddition::new(config, self.now).with_bugs(self.config.bugs.clone());
        self.adder = Job::Up(Arc::new(addition));
        self.drain_adder(report);
        for index in 0..self.config.hosts {
            if self.is_up(NodeId::Host(index)) {
                self.report_routes_applied(index, report);
            }
        }
    }

    fn drain_adder(&mut self, report: &mut StepReport) {
        let node = NodeId::ShardAdder;
        while let Some(output) = job_mut(&mut self.adder).poll_output() {
            match output {
                ShardAdditionOutput::Store { tag, request } => self.send_store_request(node, 0, tag, request, report),
                ShardAdditionOutput::Timer { deadline } => self.arm_timer(node, deadline, report),
                ShardAdditionOutput::ProvisionCell { shard } => {
                    if shard.0 == self.shard_count() {
                        self.provision_cell(report);
                    }
                    let now = self.now;
                    job_mut(&mut self.adder).on_cell_ready(now);
                }
                // The world learns readiness from the store's commit of the row.
                ShardAdditionOutput::Admitted { .. } => {}
            }
        }
    }

    /// Builds the next shard's cell: an empty store, its hosts (polling at
    /// once), its publishers and activator, and its replication checker;
    /// the cell serves from then on.
    fn provision_cell(&mut self, report: &mut StepReport) {
        let shard = self.shard_count();
        let first = shard * self.config.hosts;
        let hosts: Vec<u32> = (first..first + self.config.hosts).collect();
        let store = Store::with_bugs(self.config.bugs.clone());
        let cell = Cell { properties: Some(Arc::new(PropertyChecker::new(&hosts))), ..Cell::new(store) };
        self.shards.push(cell);
        for index in hosts {
            let host = Host::new(HostId(index), self.host_config(index), self.now).with_bugs(self.config.bugs.clone());
            self.cell_mut(shard).hosts.push(HostSlot::Up(Arc::new(host)));
            self.drain_host(index, report);
        }
        if self.config.mode == InterceptorMode::Async {
            for tenant in self.config.tenants() {
                self.restart_node(NodeId::Publisher(shard, tenant.0), report);
            }
        }
        self.restart_node(NodeId::Activator(shard), report);
        self.observe_all(&[Observation::CellReady { shard }], report);
    }

    /// A proxied read reached host `index` from host `peer`: the cell checks
    /// the peer and the shard, then serves the read from the host's local
    /// store, answering the client.
    fn on_proxied(&mut self, index: u32, peer: u32, routed: RoutedRequest, report: &mut StepReport) {
        let shard = self.host_place(index).0;
        let peers = (0..self.config.hosts).map(HostId).collect();
        let auth = ProxyAuth::new(ShardId(shard), peers);
        let request = routed.request;
        if auth.check(HostId(peer), &routed).is_err() {
            let outcome = RouteOutcome::Refused;
            let answered = Observation::RequestAnswered { request: request.0, shard: Some(shard), outcome };
            self.observe_all(&[answered], report);
            let payload = Payload::RouteFailed { request, outcome };
            report.sent.push(self.send(NodeId::Host(index), NodeId::Client, payload));
            return;
        }
        self.serve_routed(index, routed, report);
    }

    /// Host `index` serves a routed read from its local store and answers the client.
    fn serve_routed(&mut self, index: u32, routed: RoutedRequest, report: &mut StepReport) {
        let shard = self.host_place(index).0;
        let Resource::Secret(secret) = routed.target else { panic!("the world routes secret reads only") };
        let read = self.host(index).read(secret);
        let found = match &read {
            LocalRead::Found(record) => Some(secret_state(record)),
            LocalRead::Missing => None,
        };
        self.observe_in(shard, &[Observation::HostRead { host: index, secret: secret.0, found }], report);
        let outcome = RouteOutcome::Served;
        let answered = Observation::RequestAnswered { request: routed.request.0, shard: Some(shard), outcome };
        self.observe_all(&[answered], report);
        let payload = Payload::HostReadAnswer { request: routed.request, read: Ok(read) };
        report.sent.push(self.send(NodeId::Host(index), NodeId::Client, payload));
    }

    fn drain_router(&mut self, index: u32, report: &mut StepReport) {
        let node = NodeId::Router(index);
        while let Some(output) = self.router_mut(index).poll_output() {
            match output {
                RouterOutput::Serve(routed) => {
                    let routed_to = Observation::Routed { host: index, request: routed.request.0, shard: 0 };
                    self.observe_all(&[routed_to], report);
                    self.serve_routed(index, routed, report);
                }
                RouterOutput::Proxy(routed) => {
                    let shard = routed.shard.0;
                    let routed_to = Observation::Routed { host: index, request: routed.request.0, shard };
                    self.observe_all(&[routed_to], report);
                    // The home cell's host in the same place as this one.
                    let target = shard * self.config.hosts + index % self.config.hosts;
                    let payload = Payload::Proxied { routed };
                    report.sent.push(self.send(NodeId::Host(index), NodeId::Host(target), payload));
                }
                RouterOutput::Store { tag, request } => self.send_store_request(node, 0, tag, request, report),
                RouterOutput::Timer { deadline } => self.arm_timer(node, deadline, report),
                RouterOutput::Answer { request, error } => {
                    let outcome = match error {
                        RouteError::NotFound => RouteOutcome::NotFound,
                        RouteError::Unavailable => RouteOutcome::Unavailable,
                        RouteError::Busy => RouteOutcome::Busy,
                    };
                    let answered = Observation::RequestAnswered { request: request.0, shard: None, outcome };
                    self.observe_all(&[answered], report);
                    let payload = Payload::RouteFailed { request, outcome };
                    report.sent.push(self.send(NodeId::Host(index), NodeId::Client, payload));
                }
            }
        }
    }

    fn on_host_read(&mut self, index: u32, request: RequestId, secret: SecretId, report: &mut StepReport) {
        let read = self.host(index).read(secret);
        if self.config.migration.is_some() {
            let now = self.now;
            self.reader_mut(index).on_read(now, request, secret, read);
            self.drain_reader(index, Some(secret), report);
            return;
        }
        let found = match &read {
            LocalRead::Found(record) => Some(secret_state(record)),
            LocalRead::Missing => None,
        };
        let shard = self.host_place(index).0;
        self.observe_in(shard, &[Observation::HostRead { host: index, secret: secret.0, found }], report);
        let payload = Payload::HostReadAnswer { request, read: Ok(read) };
        report.sent.push(self.send(NodeId::Host(index), NodeId::Client, payload));
    }

    /// A store reply to host `index`'s read path: a read's answer (the reply
    /// names the secret, whose local copy goes along for the shadow compare)
    /// or a phase poll's.
    fn on_reader_reply(&mut self, index: u32, tag: RequestTag, reply: StoreReply, report: &mut StepReport) {
        let secret = match &reply {
            StoreReply::Read(entries) => match entries.as_slice() {
                [ReadEntry { key: Key::Secret(secret), .. }] => Some(*secret),
                _ => None,
            },
            _ => None,
        };
        let local = secret.map_or(LocalRead::Missing, |secret| self.host(index).read(secret));
        let now = self.now;
        self.reader_mut(index).on_store_reply(now, tag, reply, local);
        self.drain_reader(index, None, report);
    }

    /// A storage fault on host `host`'s entry of `secret` (a no-op on a down
    /// host or an entry without content).
    fn corrupt(&mut self, host: u32, secret: SecretId, report: &mut StepReport) {
        if !self.is_up(NodeId::Host(host)) || !self.host_mut(host).flip_bit(secret) {
            return;
        }
        let record = self.host(host).durable().record(secret).expect("a damaged entry exists");
        let state = secret_state(record);
        self.observe_all(&[Observation::Corrupted { host, secret: secret.0, state }], report);
    }

    /// The front door of worker `index`: asks the quota table about a client
    /// request of a known tenant; a throttled one is answered at once with its
    /// retry-after and never reaches the worker. Returns whether it proceeds.
    fn admit(&mut self, index: u32, request: RequestId, report: &mut StepReport) -> bool {
        let now = self.now;
        let Some(front_door) = &mut self.front_door else { return true };
        let record = &self.history[&request];
        // A request whose tenant the front door cannot name matches no quota.
        let Some(tenant) = record.tenant else { return true };
        let admission = Arc::make_mut(front_door).table.on_request(now, TenantId(tenant));
        let (over_quota, retry_after_ns) = match admission {
            Admission::Admitted { .. } => {
                self.observe_all(&[Observation::Admitted { tenant, at_ns: now.0 }], report);
                return true;
            }
            Admission::Throttled { limit, retry_after_ns, .. } => (matches!(limit, Limit::Quota(_)), retry_after_ns),
        };
        assert!(retry_after_ns > 0, "a throttled request waits before it retries");
        let throttled = Observation::Throttled { tenant, at_ns: now.0, over_quota, retry_after_ns };
        self.observe_all(&[throttled], report);
        let history = Arc::make_mut(&mut self.history);
        // A duplicated request keeps the first decision.
        history
            .get_mut(&request)
            .expect("an issued request")
            .throttled
            .get_or_insert(Throttle { over_quota, retry_after_ns });
        let result = Err(ClientError::Throttled { retry_after_ns });
        report.sent.push(self.send(NodeId::Worker(index), NodeId::Client, Payload::ClientAnswer { request, result }));
        false
    }

    fn on_answer(&mut self, request: RequestId, result: &Result<Done, ClientError>, report: &mut StepReport) {
        if let Ok(Done::Secret { secret, version }) = result {
            let acknowledged = Observation::Acknowledged { secret: secret.0, version: version.0 };
            let shard = self.secret_home(*secret).expect("an acknowledged secret is routed");
            self.observe_in(shard, &[acknowledged], report);
        }
        if let Err(ClientError::Throttled { retry_after_ns }) = result {
            report.throttled_answers.push((request, *retry_after_ns));
            let over_quota = self.history[&request].throttled.is_some_and(|throttle| throttle.over_quota);
            self.record_answer(request, over_quota);
            return;
        }
        let served = match result {
            Ok(_) => true,
            Err(error) => {
                !matches!(error, ClientError::RetriesExhausted { .. } | ClientError::OutcomeUnknown | ClientError::Busy)
            }
        };
        self.record_answer(request, served);
    }

    fn record_answer(&mut self, request: RequestId, success: bool) {
        let now = self.now;
        let history = Arc::make_mut(&mut self.history);
        let record = history.get_mut(&request).unwrap_or_else(|| panic!("answer to unknown request {request:?}"));
        // A duplicated answer keeps the first arrival.
        record.answered.get_or_insert((now, success));
    }

    /// Shows `observations` to the checker of `shard`'s cell: the world's for
    /// the base cell, the cell's own for another shard.
    fn observe_in(&mut self, shard: u32, observations: &[Observation], report: &mut StepReport) {
        if shard == 0 || observations.is_empty() {
            return self.observe_all(observations, report);
        }
        let cell = self.cell_mut(shard);
        let properties = Arc::make_mut(cell.properties.as_mut().expect("a shard's cell has its checker"));
        for observation in observations {
            report.violations.extend(properties.observe(observation));
        }
        report.observations.extend_from_slice(observations);
    }

    fn observe_all(&mut self, observations: &[Observation], report: &mut StepReport) {
        if observations.is_empty() {
            return;
        }
        let properties = Arc::make_mut(&mut self.properties);
        for observation in observations {
            report.violations.extend(properties.observe(observation));
        }
        report.observations.extend_from_slice(observations);
    }

    fn fire_timer(&mut self, node: NodeId, report: &mut StepReport) {
        let now = self.now;
        match node {
            NodeId::Worker(index) => {
                self.worker_mut(index).on_timer(now);
                self.drain_worker(index, report);
            }
            NodeId::Host(index) => {
                self.host_mut(index).on_timer(now);
                self.drain_host(index, report);
            }
            NodeId::Publisher(shard, tenant) => {
                self.publisher_mut(shard, tenant).on_timer(now);
                self.drain_publisher(shard, tenant, report);
            }
            NodeId::Activator(shard) => {
                self.activator_mut(shard).on_timer(now);
                self.drain_activator(shard, report);
            }
            NodeId::Router(index) => {
                self.router_mut(index).on_timer(now);
                self.drain_router(index, report);
            }
            NodeId::ShardAdder => {
                job_mut(&mut self.adder).on_timer(now);
                self.drain_adder(report);
            }
            NodeId::Operator => {
                self.operator_mut().on_timer(now);
                self.drain_operator(report);
            }
            NodeId::Backfiller => {
                job_mut(&mut self.backfiller).on_timer(now);
                self.drain_backfiller(report);
            }
            NodeId::Verifier => {
                job_mut(&mut self.verifier).on_timer(now);
                self.drain_verifier(report);
            }
            NodeId::Reader(index) => {
                self.reader_mut(index).on_timer(now);
                self.drain_reader(index, None, report);
            }
            NodeId::Store(_) | NodeId::Client => panic!("{node:?} has no timer"),
        }
    }

    fn crash_node(&mut self, node: NodeId, report: &mut StepReport) {
        assert!(self.is_up(node), "{node:?} is already down");
        self.timers.remove(&node);
        report.timers_changed.push(node);
        match node {
            NodeId::Worker(index) => {
                let worker = self.workers[index as usize].take().expect("worker is up");
                self.retired_worker_stats = add_stats(self.retired_worker_stats, worker.stats());
            }
            NodeId::Host(index) => {
                let durable = Arc::new(self.host(index).durable().clone());
                *self.host_slot_mut(index) = HostSlot::Down(durable);
                if self.is_router_host(index) {
                    // The router dies with its host; its connections too.
                    self.base.routers[index as usize] = None;
                    self.timers.remove(&NodeId::Router(index));
                    report.timers_changed.push(NodeId::Router(index));
                    *self.incarnations.entry(NodeId::Router(index)).or_default() += 1;
                }
                let shard = self.host_place(index).0;
                // The cell by field, not `base_mut()`: the loop also borrows the world's timers.
                if let Some(reader) = self.base.readers.get_mut(index as usize) {
                    // The read path dies with its host; its connections too.
                    if let Some(reader) = reader.take() {
                        self.retired_read_stats = add_read_stats(self.retired_read_stats, reader.accessor().stats());
                    }
                    self.timers.remove(&NodeId::Reader(index));
                    report.timers_changed.push(NodeId::Reader(index));
                    *self.incarnations.entry(NodeId::Reader(index)).or_default() += 1;
                }
                if let Some(activator) = &mut self.cell_mut(shard).activator {
                    Arc::make_mut(activator).on_host_liveness(HostId(index), false);
                }
                self.observe_in(shard, &[Observation::HostCrashed { host: index }], report);
            }
            NodeId::Publisher(shard, tenant) => {
                self.cell_mut(shard).publishers.insert(tenant, None);
            }
            NodeId::Activator(shard) => self.cell_mut(shard).activator = None,
            NodeId::ShardAdder => self.adder = Job::Down,
            NodeId::Operator => self.operator = None,
            NodeId::Backfiller => self.backfiller = Job::Down,
            NodeId::Verifier => self.verifier = Job::Down,
            NodeId::Reader(_) | NodeId::Router(_) | NodeId::Store(_) | NodeId::Client => {
                panic!("{node:?} does not crash")
            }
        }
    }

    fn restart_node(&mut self, node: NodeId, report: &mut StepReport) {
        let now = self.now;
        match node {
            NodeId::Worker(index) => {
                let placer = self
                    .config
                    .sharding
                    .as_ref()
                    .map(|sharding| Placer::new(sharding.policy, sharding.shards + u32::from(sharding.add_shard)))
                    .map(|placer| placer.with_bugs(self.config.bugs.clone()));
                let config = WorkerConfig { mode: self.config.mode, placer, ..self.config.worker.clone() };
                let slot = Some(Arc::new(Worker::new(config).with_bugs(self.config.bugs.clone())));
                if (index as usize) < self.workers.len() {
                    self.workers[index as usize] = slot;
                } else {
                    self.workers.push(slot);
                }
            }
            NodeId::Host(index) => {
                let HostSlot::Down(durable) = self.host_slot(index) else { panic!("host {index} is up") };
                let durable = LocalStore::clone(durable);
                let host = Host::recover(HostId(index), self.host_config(index), durable, now)
                    .with_bugs(self.config.bugs.clone());
                *self.host_slot_mut(index) = HostSlot::Up(Arc::new(host));
                if self.is_router_host(index) {
                    self.start_router(index);
                }
                let shard = self.host_place(index).0;
                if self.config.migration.is_some() {
                    self.start_reader(index, report);
                }
                if let Some(activator) = &mut self.cell_mut(shard).activator {
                    Arc::make_mut(activator).on_host_liveness(HostId(index), true);
                }
                let durable = self.host(index).durable();
                let records = durable.records().map(|(secret, record)| (secret.0, secret_state(record))).collect();
                let cursors = durable.cursors().into_iter().map(|(tenant, seq)| (tenant.0, seq.0)).collect();
                self.observe_in(shard, &[Observation::HostRestarted { host: index, records, cursors }], report);
                self.drain_host(index, report);
            }
            NodeId::Publisher(shard, tenant) => {
                let config = PublisherConfig {
                    batch_events_max: self.config.publisher_batch_events_max,
                    publish_interval_ns: self.config.publish_interval_ns,
                    ..PublisherConfig::new(TenantId(tenant))
                };
                let publisher = Publisher::new(config, now).with_bugs(self.config.bugs.clone());
                self.cell_mut(shard).publishers.insert(tenant, Some(Arc::new(publisher)));
                self.drain_publisher(shard, tenant, report);
            }
            NodeId::Activator(shard) => {
                let first = shard * self.config.hosts;
                let hosts = (first..first + self.config.hosts).map(HostId).collect();
                let mut config = ActivatorConfig::new(hosts, self.config.mode);
                config.poll_interval_ns = self.config.activator_poll_interval_ns;
                let mut activator = Activator::new(config, now).with_bugs(self.config.bugs.clone());
                for (local, slot) in self.cell(shard).hosts.iter().enumerate() {
                    if matches!(slot, HostSlot::Down(_)) {
                        activator.on_host_liveness(HostId(first + local as u32), false);
                    }
                }
                self.cell_mut(shard).activator = Some(Arc::new(activator));
                self.drain_activator(shard, report);
            }
            NodeId::Operator => {
                let migration = self.config.migration.as_ref().expect("an operator in a migration world");
                let config = OperatorConfig {
                    schedule: migration.schedule.clone(),
                    request_timeout_ns: migration.request_timeout_ns,
                    retry_delay_ns: migration.request_timeout_ns / 4,
                };
                self.operator = Some(Arc::new(Operator::new(config, now)));
                self.drain_operator(report);
            }
            // A job stopped while it was down has nothing to restart.
            NodeId::Backfiller => {
                if self.backfiller == Job::Down {
                    self.start_backfiller(report);
                }
            }
            NodeId::Verifier => {
                if self.verifier == Job::Down {
                    self.start_verifier(report);
                }
            }
            // A fresh incarnation resumes from the registry row.
            NodeId::ShardAdder => self.start_adder(report),
            NodeId::Reader(_) | NodeId::Router(_) | NodeId::Store(_) | NodeId::Client => {
                panic!("{node:?} does not restart")
            }
        }
    }

    /// Sends a machine's store request from `node` to `shard`'s store.
    fn send_store_request(
        &mut self,
        node: NodeId,
        shard: u32,
        tag: RequestTag,
        request: StoreRequest,
        report: &mut StepReport,
    ) {
        report.sent.push(self.send(node, NodeId::Store(shard), Payload::StoreRequest { tag, request }));
    }

    /// Arms `node`'s one timer (replacing any it had).
    fn arm_timer(&mut self, node: NodeId, deadline: Time, report: &mut StepReport) {
        self.timers.insert(node, deadline);
        report.timers_changed.push(node);
    }

    fn drain_worker(&mut self, index: u32, report: &mut StepReport) {
        let node = NodeId::Worker(index);
        while let Some(output) = self.worker_mut(index).poll_output() {
            match output {
                WorkerOutput::Store { shard, tag, request } => {
                    assert!(shard.0 < self.shard_count(), "a store request to shard {shard:?}, which has no cell");
                    self.send_store_request(node, shard.0, tag, request, report);
                }
                WorkerOutput::Timer { deadline } => self.arm_timer(node, deadline, report),
                WorkerOutput::Answer { request, result } => {
                    report.sent.push(self.send(node, NodeId::Client, Payload::ClientAnswer { request, result }));
                }
            }
        }
    }

    fn drain_host(&mut self, index: u32, report: &mut StepReport) {
        let node = NodeId::Host(index);
        let shard = self.host_place(index).0;
        while let Some(output) = self.host_mut(index).poll_output() {
            match output {
                HostOutput::Store { tag, request } => self.send_store_request(node, shard, tag, request, report),
                HostOutput::Timer { deadline } => self.arm_timer(node, deadline, report),
                HostOutput::Applied { host, cursors } => {
                    report.sent.push(self.send(node, NodeId::Activator(shard), Payload::Applied { host, cursors }));
                }
            }
        }
    }

    fn drain_publisher(&mut self, shard: u32, tenant: u32, report: &mut StepReport) {
        let node = NodeId::Publisher(shard, tenant);
        while let Some(output) = self.publisher_mut(shard, tenant).poll_output() {
            match output {
                PublisherOutput::Store { tag, request } => self.send_store_request(node, shard, tag, request, report),
                PublisherOutput::Timer { deadline } => self.arm_timer(node, deadline, report),
            }
        }
    }

    fn drain_activator(&mut self, shard: u32, report: &mut StepReport) {
        let node = NodeId::Activator(shard);
        while let Some(output) = self.activator_mut(shard).poll_output() {
            match output {
                ActivatorOutput::Store { tag, request } => self.send_store_request(node, shard, tag, request, report),
                ActivatorOutput::Timer { deadline } => self.arm_timer(node, deadline, report),
            }
        }
    }

    fn drain_operator(&mut self, report: &mut StepReport) {
        while let Some(output) = self.operator_mut().poll_output() {
            match output {
                OperatorOutput::Store { tag, request } => {
                    self.send_store_request(NodeId::Operator, 0, tag, request, report)
                }
                OperatorOutput::Timer { deadline } => self.arm_timer(NodeId::Operator, deadline, report),
                // The world learns phases from the store's commits, not from the operator's word.
                OperatorOutput::Committed { .. } => {}
            }
        }
    }

    fn drain_backfiller(&mut self, report: &mut StepReport) {
        while let Some(output) = job_mut(&mut self.backfiller).poll_output() {
            match output {
                BackfillOutput::Store { tag, request } => {
                    let budgeted = Observation::BudgetedRequest { job: BACKFILL_JOB, at_ns: self.now.0 };
                    self.observe_all(&[budgeted], report);
                    self.send_store_request(NodeId::Backfiller, 0, tag, request, report);
                }
                BackfillOutput::Timer { deadline } => self.arm_timer(NodeId::Backfiller, deadline, report),
                // Judged from the store's commit of the finished bookmark
                // (see `observe_commit`), which a crash cannot lose.
                BackfillOutput::Done => {}
            }
        }
    }

    fn drain_verifier(&mut self, report: &mut StepReport) {
        while let Some(output) = job_mut(&mut self.verifier).poll_output() {
            match output {
                VerifyOutput::Store { tag, request } => {
                    self.send_store_request(NodeId::Verifier, 0, tag, request, report)
                }
                VerifyOutput::Digest { tag, host, secrets } => {
                    let payload = Payload::DigestRequest { tag, secrets };
                    report.sent.push(self.send(NodeId::Verifier, NodeId::Host(host.0), payload));
                }
                VerifyOutput::Repair { tag, host, secret, record } => {
                    let host_had = self
                        .digests
                        .as_ref()
                        .and_then(|digests| digests.get(&(host.0, secret)))
                        .copied()
                        .flatten()
                        .map(|entry| (entry.version.0, entry.checksum.map(|checksum| checksum.0)));
                    let remote = secret_state(&record);
                    let ordered = Observation::RepairOrdered { host: host.0, secret: secret.0, remote, host_had };
                    self.observe_all(&[ordered], report);
                    let payload = Payload::RepairRequest { tag, secret, record };
                    report.sent.push(self.send(NodeId::Verifier, NodeId::Host(host.0), payload));
                }
                VerifyOutput::Timer { deadline } => self.arm_timer(NodeId::Verifier, deadline, report),
                VerifyOutput::Done => {}
            }
        }
    }

    /// Drains host `index`'s read path; `read` is the secret of the read it
    /// was just handed, the only one it can answer from the local store at once.
    fn drain_reader(&mut self, index: u32, read: Option<SecretId>, report: &mut StepReport) {
        let node = NodeId::Reader(index);
        while let Some(output) = self.reader_mut(index).poll_output() {
            match output {
                ReaderOutput::Store { tag, request } => self.send_store_request(node, 0, tag, request, report),
                ReaderOutput::Timer { deadline } => self.arm_timer(node, deadline, report),
                ReaderOutput::Answer { request, result, source } => {
                    if source == Source::Local {
                        let secret = read.expect("a local answer comes with its read");
                        let found = match &result {
                            Ok(LocalRead::Found(record)) => Some(secret_state(record)),
                            Ok(LocalRead::Missing) | Err(_) => None,
                        };
                        self.observe_all(&[Observation::HostRead { host: index, secret: secret.0, found }], report);
                    }
                    let history = Arc::make_mut(&mut self.history);
                    if let Some(record) = history.get_mut(&request) {
                        record.source.get_or_insert(source);
                    }
                    let payload = Payload::HostReadAnswer { request, read: result };
                    report.sent.push(self.send(NodeId::Host(index), NodeId::Client, payload));
                }
                ReaderOutput::Repair { secret, record } => {
                    if self.host_mut(index).repair(secret, &record) {
                        let state = secret_state(&record);
                        self.observe_all(&[Observation::Repaired { host: index, secret: secret.0, state }], report);
                    }
                }
                ReaderOutput::Learned { phase } => {
                    let learned = Observation::PhaseLearned { host: index, phase: phase.code() as u8 };
                    self.observe_all(&[learned], report);
                }
            }
        }
    }

    fn start_reader(&mut self, index: u32, report: &mut StepReport) {
        let migration = self.config.migration.as_ref().expect("a read path in a migration world");
        let polls = &migration.phase_poll_ns;
        let phase_poll_ns = polls.get(index as usize).or(polls.last()).copied().unwrap_or(10_000_000);
        let config = ReaderConfig { phase_poll_ns, request_timeout_ns: migration.request_timeout_ns };
        let reader = Reader::new(config, self.now).with_bugs(self.config.bugs.clone());
        self.base_mut().readers[index as usize] = Some(Arc::new(reader));
        self.drain_reader(index, None, report);
    }

    fn start_backfiller(&mut self, report: &mut StepReport) {
        let migration = self.config.migration.as_ref().expect("a backfill in a migration world");
        let since = self.stored_phase().since.expect("a backfill runs after t1 is stored");
        let config = BackfillConfig {
            bookmark: BACKFILL_BOOKMARK,
            since,
            mode: self.config.mode,
            page_keys: migration.backfill_page_keys,
            budget: migration.backfill_budget,
            request_timeout_ns: migration.request_timeout_ns,
        };
        let backfiller = Backfiller::new(config, self.now).with_bugs(self.config.bugs.clone());
        self.backfiller = Job::Up(Arc::new(backfiller));
        self.drain_backfiller(report);
    }

    fn start_verifier(&mut self, report: &mut StepReport) {
        let migration = self.config.migration.as_ref().expect("a verify in a migration world");
        let config = VerifyConfig {
            bookmark: VERIFY_BOOKMARK,
            hosts: (0..self.config.hosts).map(HostId).collect(),
            page_keys: migration.verify_page_keys,
            budget: migration.verify_budget,
            request_timeout_ns: migration.request_timeout_ns,
            retry_delay_ns: migration.request_timeout_ns / 4,
        };
        let verifier = Verifier::new(config, self.now).with_bugs(self.config.bugs.clone());
        self.verifier = Job::Up(Arc::new(verifier));
        self.drain_verifier(report);
    }

    /// After the store committed a phase: the job of the stored phase starts
    /// (if it is not running), the other stops; a stopped job's requests in
    /// flight are answered to nobody.
    fn reconcile_jobs(&mut self, report: &mut StepReport) {
        let stored = self.stored_phase();
        let backfill = stored.phase == Phase::Backfill && stored.since.is_some();
        if backfill && self.backfiller == Job::Absent {
            self.start_backfiller(report);
        } else if !backfill && self.backfiller != Job::Absent {
            self.backfiller = Job::Absent;
            self.stop_job(NodeId::Backfiller, report);
        }
        let verify = stored.phase == Phase::Verify;
        if verify && self.verifier == Job::Absent {
            self.start_verifier(report);
        } else if !verify && self.verifier != Job::Absent {
            self.verifier = Job::Absent;
            self.stop_job(NodeId::Verifier, report);
        }
    }

    fn stop_job(&mut self, node: NodeId, report: &mut StepReport) {
        if self.timers.remove(&node).is_some() {
            report.timers_changed.push(node);
        }
        *self.incarnations.entry(node).or_default() += 1;
    }

    fn operator_mut(&mut self) -> &mut Operator {
        Arc::make_mut(self.operator.as_mut().expect("the operator is down"))
    }

    fn reader_mut(&mut self, index: u32) -> &mut Reader {
        let reader =
            self.base_mut().readers[index as usize].as_mut().unwrap_or_else(|| panic!("reader {index} is down"));
        Arc::make_mut(reader)
    }

    fn worker_mut(&mut self, index: u32) -> &mut Worker {
        let worker = self.workers[index as usize].as_mut().unwrap_or_else(|| panic!("worker {index} is down"));
        Arc::make_mut(worker)
    }

    fn host(&self, index: u32) -> &Host {
        match self.host_slot(index) {
            HostSlot::Up(host) => host,
            HostSlot::Down(_) => panic!("host {index} is down"),
        }
    }

    fn host_mut(&mut self, index: u32) -> &mut Host {
        match self.host_slot_mut(index) {
            HostSlot::Up(host) => Arc::make_mut(host),
            HostSlot::Down(_) => panic!("host {index} is down"),
        }
    }

    fn publisher_mut(&mut self, shard: u32, tenant: u32) -> &mut Publisher {
        let slot = self.cell_mut(shard).publishers.get_mut(&tenant).and_then(Option::as_mut);
        Arc::make_mut(slot.unwrap_or_else(|| panic!("publisher {tenant} of shard {shard} is down")))
    }

    fn activator_mut(&mut self, shard: u32) -> &mut Activator {
        Arc::make_mut(self.cell_mut(shard).activator.as_mut().unwrap_or_else(|| panic!("activator {shard} is down")))
    }

    /// The base cell (shard 0).
    fn base(&self) -> &Cell {
        &self.base
    }

    fn base_mut(&mut self) -> &mut Cell {
        &mut self.base
    }

    /// Shards, the base included (1 unless the world shards).
    pub fn shard_count(&self) -> u32 {
        1 + self.shards.len() as u32
    }

    /// Shard `shard`'s cell.
    fn cell(&self, shard: u32) -> &Cell {
        match shard {
            0 => &self.base,
            shard => &self.shards[shard as usize - 1],
        }
    }

    fn cell_mut(&mut self, shard: u32) -> &mut Cell {
        match shard {
            0 => &mut self.base,
            shard => &mut self.shards[shard as usize - 1],
        }
    }

    /// The shard of host `index`'s cell, and the host's place in it.
    fn host_place(&self, index: u32) -> (u32, usize) {
        (index / self.config.hosts, (index % self.config.hosts) as usize)
    }

    fn host_slot(&self, index: u32) -> &HostSlot {
        let (shard, local) = self.host_place(index);
        &self.cell(shard).hosts[local]
    }

    fn host_slot_mut(&mut self, index: u32) -> &mut HostSlot {
        let (shard, local) = self.host_place(index);
        &mut self.cell_mut(shard).hosts[local]
    }

    /// Whether host `index` has a router: it is a base-cell host of a sharded world.
    fn is_router_host(&self, index: u32) -> bool {
        self.config.sharding.is_some() && index < self.config.hosts
    }

    /// Host `index`'s knobs: a base-cell host of a sharded world also replicates the routing rows.
    fn host_config(&self, index: u32) -> HostConfig {
        HostConfig { replicate_routes: self.is_router_host(index), ..self.config.host.clone() }
    }

    /// Starts host `index`'s router from its durable route table.
    fn start_router(&mut self, index: u32) {
        let sharding = self.config.sharding.as_ref().expect("routers in a sharded world");
        let config = RouterConfig {
            shard: ShardId(0),
            request_timeout_ns: sharding.route_timeout_ns,
            lookups_max: sharding.lookups_max,
        };
        let router =
            Router::new(config, self.host(index).durable().routes().clone()).with_bugs(self.config.bugs.clone());
        self.base_mut().routers[index as usize] = Some(Arc::new(router));
    }

    fn router_mut(&mut self, index: u32) -> &mut Router {
        let router =
            self.base_mut().routers[index as usize].as_mut().unwrap_or_else(|| panic!("router {index} is down"));
        Arc::make_mut(router)
    }

    /// What the routing properties learn at the start of a sharded world:
    /// every shard registered `Ready` with its cell serving, and the
    /// configured vaults placed. Nothing in a world that does not shard.
    fn initial_routing(&self) -> Vec<Observation> {
        if self.config.sharding.is_none() {
            return Vec::new();
        }
        let mut observations = Vec::new();
        for shard in 0..self.shard_count() {
            observations.push(Observation::ShardRegistered { shard, ready: true });
            observations.push(Observation::CellReady { shard });
        }
        for (vault, _) in &self.config.vaults {
            let shard = self.vault_home(*vault).expect("a configured vault is placed");
            observations.push(Observation::Placed { vault: vault.0, shard });
        }
        observations
    }

    /// The home shard of `vault` as the base store routes it (shard 0 in a
    /// world that does not shard).
    fn vault_home(&self, vault: VaultId) -> Option<u32> {
        if self.config.sharding.is_none() {
            return Some(0);
        }
        match self.base.store.read(&Key::VaultRoute(vault)).value {
            Some(Value::VaultRoute(shard)) => Some(shard.0),
            _ => None,
        }
    }

    /// The vault of `secret` as the base store routes it (sharded worlds).
    fn secret_vault(&self, secret: SecretId) -> Option<VaultId> {
        match self.base.store.read(&Key::SecretRoute(secret)).value {
            Some(Value::SecretRoute(vault)) => Some(vault),
            _ => None,
        }
    }

    /// The shard whose cell holds `secret` (shard 0 in a world that does not
    /// shard), if the base store routes it.
    pub fn secret_home(&self, secret: SecretId) -> Option<u32> {
        if self.config.sharding.is_none() {
            return Some(0);
        }
        self.vault_home(self.secret_vault(secret)?)
    }

    /// The home shard of the resource `operation` acts on, if the base store routes it.
    fn operation_home(&self, operation: &Operation) -> Option<u32> {
        self.config.sharding.as_ref()?;
        match operation {
            Operation::CreateVault { .. } => None,
            Operation::DeleteVault { vault } | Operation::CreateSecret { vault, .. } => self.vault_home(*vault),
            Operation::UpdateSecret { secret, .. }
            | Operation::ScheduleDeletion { secret }
            | Operation::DeleteSecret { secret, .. }
            | Operation::ReadSecret { secret } => self.secret_home(*secret),
        }
    }

    /// The abstract view of the world, for end-of-run properties.
    pub fn view(&self) -> View {
        self.cell_view(0)
    }

    /// The abstract view of `shard`'s cell: its store's secrets and its hosts.
    pub fn cell_view(&self, shard: u32) -> View {
        let mut view = View::default();
        let cell = self.cell(shard);
        let first = shard * self.config.hosts;
        let secrets = cell.store.scan(vault::store::Table::Secrets, None, usize::MAX);
        for row in secrets.rows {
            if let (Key::Secret(secret), Some(Value::Secret(record))) = (row.key, &row.value) {
                view.remote.insert(secret.0, secret_state(record));
            }
        }
        for (index, slot) in cell.hosts.iter().enumerate() {
            let (live, durable) = match slot {
                HostSlot::Up(host) => (true, host.durable()),
                HostSlot::Down(durable) => (false, &**durable),
            };
            let records = durable.records().map(|(secret, record)| (secret.0, secret_state(record))).collect();
            view.hosts.insert(first + index as u32, HostView { live, records });
        }
        view
    }

    /// Checks the properties that hold only when healed and quiet, in every cell.
    pub fn check_quiescent(&self) -> Vec<Violation> {
        let mut violations = self.properties.check_quiescent(&self.view());
        for (index, cell) in self.shards.iter().enumerate() {
            let properties = cell.properties.as_ref().expect("a shard's cell has its checker");
            violations.extend(properties.check_quiescent(&self.cell_view(index as u32 + 1)));
        }
        violations
    }

    /// Whether nothing is left to do but periodic polls: no client operation in
    /// progress or in flight (a routed read counts until it is answered: at a
    /// router's lookup or on its proxied hop), no outbox row, no secret
    /// waiting for activation (while a host is up), every up host at the
    /// log's head, and no shard addition still running.
    pub fn is_quiet(&self) -> bool {
        let (outbox_empty, hosts_caught_up, none_creating) = self.cells_settled();
        self.clients_idle()
            && outbox_empty
            && hosts_caught_up
            && none_creating
            && self.migration_pending().is_none()
            && !self.shard_addition_pending()
    }

    /// No client operation in progress at a worker or a router, and no
    /// message of one in flight.
    fn clients_idle(&self) -> bool {
        self.workers().all(|(_, worker)| !worker.is_busy())
            && self.base().routers.iter().flatten().all(|router| !router.is_busy())
            && !self.in_flight.values().any(|message| is_client_message(message))
    }

    /// What keeps [`World::clients_idle`] false, in words.
    fn client_work(&self) -> String {
        let mut parts: Vec<String> = self
            .workers()
            .filter(|(_, worker)| worker.is_busy())
            .map(|(index, _)| format!("worker {index} busy"))
            .collect();
        let routers = self.base().routers.iter().enumerate();
        parts.extend(
            routers
                .filter(|(_, router)| router.as_ref().is_some_and(|router| router.is_busy()))
                .map(|(index, _)| format!("router {index} looking a route up")),
        );
        let messages: Vec<String> = self
            .in_flight
            .values()
            .filter(|message| is_client_message(message))
            .map(|message| format!("{:?}->{:?}", message.from, message.to))
            .collect();
        if !messages.is_empty() {
            parts.push(format!("in flight: {}", messages.join(", ")));
        }
        parts.join(", ")
    }

    /// Whether a shard addition was started and has not admitted its shard
    /// yet (a crashed operator counts: it restarts to finish).
    fn shard_addition_pending(&self) -> bool {
        match &self.adder {
            Job::Up(addition) => !addition.is_admitted(),
            Job::Down => true,
            Job::Absent => false,
        }
    }

    /// Whether, in every cell, the outbox is empty, every up host is at the
    /// log's head, and no secret waits for an activation (while a host is up).
    fn cells_settled(&self) -> (bool, bool, bool) {
        let (mut outbox_empty, mut caught_up, mut none_creating) = (true, true, true);
        for shard in 0..self.shard_count() {
            let cell = self.cell(shard);
            outbox_empty &= cell.store.scan(vault::store::Table::Outbox, None, 1).rows.is_empty();
            caught_up &= cell.hosts_caught_up();
            let any_host_up = cell.hosts.iter().any(|slot| matches!(slot, HostSlot::Up(_)));
            none_creating &= !any_host_up || !self.any_secret_creating(shard);
        }
        (outbox_empty, caught_up, none_creating)
    }

    /// Why the world is not quiet, in words (for the REP-6 timeout's message).
    pub fn why_not_quiet(&self) -> Option<String> {
        let mut waiting = Vec::new();
        if !self.clients_idle() {
            waiting.push(format!("client operations ({})", self.client_work()));
        }
        let (outbox_empty, caught_up, none_creating) = self.cells_settled();
        let settled = [
            (outbox_empty, "outbox rows"),
            (caught_up, "hosts catching up with the log"),
            (none_creating, "secrets still Creating"),
        ];
        waiting.extend(settled.iter().filter(|(done, _)| !done).map(|(_, what)| (*what).to_string()));
        waiting.extend(self.migration_pending());
        if self.shard_addition_pending() {
            waiting.push("the shard addition".to_string());
        }
        (!waiting.is_empty()).then(|| waiting.join("; "))
    }

    /// What the migration still has to do, if anything: its schedule, the
    /// operator reaching its target, the running job finishing, or a live
    /// host's read path learning the stored phase. `None` without a migration.
    pub fn migration_pending(&self) -> Option<String> {
        let migration = self.config.migration.as_ref()?;
        let stored = self.stored_phase();
        let schedule_done = migration.schedule.last().is_none_or(|(at, _)| self.now >= *at);
        let operator_idle = self.operator.as_ref().is_some_and(|operator| operator.target() == stored.phase)
            && stored.since.is_some() == stored.phase.replicates();
        let backfill_idle = match &self.backfiller {
            Job::Absent => true,
            Job::Up(job) => job.is_done(),
            Job::Down => false,
        };
        let verify_idle = match &self.verifier {
            Job::Absent => true,
            Job::Up(job) => job.is_done(),
            Job::Down => false,
        };
        let readers_learned = self.base().readers.iter().flatten().all(|reader| reader.phase() == Some(stored.phase));
        let pending = [
            (schedule_done, "the schedule"),
            (operator_idle, "the operator"),
            (backfill_idle, "the backfill"),
            (verify_idle, "the verify pass"),
            (readers_learned, "the hosts learning the phase"),
        ];
        let waiting: Vec<&str> = pending.iter().filter(|(done, _)| !done).map(|(_, what)| *what).collect();
        let operator = self.operator.as_ref().map(|operator| operator.target());
        (!waiting.is_empty()).then(|| {
            format!("migration waits for {} (stored {stored:?}, operator target {operator:?})", waiting.join(", "))
        })
    }

    /// Whether some secret waits for an activation that can come: without a
    /// migration, always; in one, only once the backfill has replicated
    /// everything (phase `Verify` on). Before that a secret written while
    /// replication was off has no event to activate it by until the backfill.
    fn any_secret_creating(&self, shard: u32) -> bool {
        if self.config.migration.is_some() && self.stored_phase().phase < Phase::Verify {
            return false;
        }
        let secrets = self.cell(shard).store.scan(vault::store::Table::Secrets, None, usize::MAX);
        secrets
            .rows
            .iter()
            .any(|row| matches!(&row.value, Some(Value::Secret(record)) if record.lifecycle == Lifecycle::Creating))
    }
}

/// The backfiller's job number in THR-3's observations: its walk's number.
const BACKFILL_JOB: u8 = BACKFILL_BOOKMARK.0 as u8;

/// A job's budget as THR-3 judges it.
fn budget_shape(budget: BucketConfig) -> model::LimitShape {
    model::LimitShape {
        rate: budget.rate,
        interval_ns: budget.interval_ns,
        burst: budget.burst,
        block_interval_ns: None,
    }
}

/// The bookmark a node walks with, if it is a migration walk.
fn walk_of(node: NodeId) -> Option<BookmarkId> {
    match node {
        NodeId::Backfiller => Some(BACKFILL_BOOKMARK),
        NodeId::Verifier => Some(VERIFY_BOOKMARK),
        _ => None,
    }
}

/// The machine of a running job.
fn job_mut<T: Clone>(job: &mut Job<T>) -> &mut T {
    match job {
        Job::Up(machine) => Arc::make_mut(machine),
        Job::Absent | Job::Down => panic!("the job is not running"),
    }
}

/// The limits of `quotas` in the properties' vocabulary.
fn throttle_limits(quotas: &QuotaTableConfig) -> model::ThrottleLimits {
    let mut limits = model::ThrottleLimits::default();
    for quota in &quotas.quotas {
        let shape = model::LimitShape {
            rate: quota.rate,
            interval_ns: quota.interval_ns,
            burst: quota.burst,
            block_interval_ns: quota.block_interval_ns,
        };
        match quota.scope {
            QuotaScope::Global => limits.global = Some(shape),
            QuotaScope::Tenant(tenant) => {
                limits.tenants.insert(tenant.0, shape);
            }
        }
    }
    limits.service_capacity = quotas.service_capacity.map(|capacity| model::LimitShape {
        rate: capacity.rate,
        interval_ns: capacity.interval_ns,
        burst: capacity.burst,
        block_interval_ns: None,
    });
    limits
}

fn add_read_stats(left: AccessorStats, right: AccessorStats) -> AccessorStats {
    AccessorStats {
        local: left.local + right.local,
        remote: left.remote + right.remote,
        fallback_missing: left.fallback_missing + right.fallback_missing,
        fallback_not_active: left.fallback_not_active + right.fallback_not_active,
        fallback_damaged: left.fallback_damaged + right.fallback_damaged,
        read_repairs: left.read_repairs + right.read_repairs,
        timeouts: left.timeouts + right.timeouts,
        shadow_matches: left.shadow_matches + right.shadow_matches,
        shadow_lagging: left.shadow_lagging + right.shadow_lagging,
        shadow_mismatches: left.shadow_mismatches + right.shadow_mismatches,
    }
}

fn add_stats(left: WorkerStats, right: WorkerStats) -> WorkerStats {
    WorkerStats {
        commits: left.commits + right.commits,
        conflicts: left.conflicts + right.conflicts,
        retries: left.retries + right.retries,
        timeouts: left.timeouts + right.timeouts,
    }
}

/// The stores at the start, the base shard's first: one store holding the
/// configured vaults and, in a migration world, the secrets written before
/// replication existed (no events), spread over the vaults in turn. In a
/// sharded world, one store per shard: vault `i` lives in shard `i mod
/// shards`'s store, and the base store registers every shard `Ready` and
/// routes every vault (routing events that base-cell hosts then replicate).
fn stores_with_vaults(config: &WorldConfig, bugs: &Bugs) -> Vec<Store> {
    let Some(sharding) = &config.sharding else { return vec![store_with_vaults(config, bugs)] };
    assert!(sharding.shards > 0, "a sharded world has a base shard");
    let mut stores: Vec<Store> = (0..sharding.shards)
        .map(|shard| {
            let homed: Vec<(VaultId, TenantId)> = config
                .vaults
                .iter()
                .enumerate()
                .filter(|(index, _)| *index as u32 % sharding.shards == shard)
                .map(|(_, vault)| *vault)
                .collect();
            store_with_vaults(&WorldConfig { vaults: homed, ..config.clone() }, bugs)
        })
        .collect();
    let mut writes: Vec<Write> = (0..sharding.shards)
        .map(|shard| {
            let vaults = config.vaults.iter().enumerate().filter(|(index, _)| *index as u32 % sharding.shards == shard);
            let record = ShardRecord { state: ShardState::Ready, vaults: vaults.count() as u64 };
            Write::Put(Key::Shard(ShardId(shard)), Value::Shard(record))
        })
        .collect();
    for (index, (vault, _)) in config.vaults.iter().enumerate() {
        let home = ShardId(index as u32 % sharding.shards);
        writes.push(Write::Put(Key::VaultRoute(*vault), Value::VaultRoute(home)));
    }
    let outcome = stores[0].commit(&Transaction { reads: Vec::new(), writes });
    assert!(matches!(outcome, CommitOutcome::Committed { .. }), "routing setup commit failed: {outcome:?}");
    stores
}

/// Whether `message` is part of a client operation: to or from a client, a
/// worker or a router, or a routed read on its proxied hop.
fn is_client_message(message: &Message) -> bool {
    let client_node = |node: NodeId| matches!(node, NodeId::Client | NodeId::Worker(_) | NodeId::Router(_));
    client_node(message.from) || client_node(message.to) || matches!(message.payload, Payload::Proxied { .. })
}

/// One store with `config.vaults` (and a migration's seeded secrets).
fn store_with_vaults(config: &WorldConfig, bugs: &Bugs) -> Store {
    let vaults = &config.vaults;
    let mut store = Store::with_bugs(bugs.clone());
    if vaults.is_empty() {
        return store;
    }
    let mut writes: Vec<Write> = vaults
        .iter()
        .map(|(vault, tenant)| {
            Write::Put(Key::Vault(*vault), Value::Vault(VaultRecord { tenant: *tenant, deleted: false }))
        })
        .collect();
    let seeded = config.migration.as_ref().map_or(0, |migration| migration.seeded_secrets);
    for secret in 0..seeded {
        let (vault, tenant) = vaults[secret as usize % vaults.len()];
        let record = SecretRecord {
            tenant,
            vault,
            version: Version(1),
            lifecycle: Lifecycle::Active,
            content: Some(Content::new(format!("seeded secret {secret}").as_bytes())),
        };
        writes.push(Write::Put(Key::Secret(SecretId(secret)), Value::Secret(record)));
    }
    let outcome = store.commit(&Transaction { reads: Vec::new(), writes });
    assert!(matches!(outcome, CommitOutcome::Committed { .. }), "setup commit failed: {outcome:?}");
    store
}

/// What the routing properties learn from a commit in `shard`'s store: a
/// shard registered or changing state and a vault placed (the base store's
/// rows), and a write to a secret of a vault (RTE-1: on its home shard).
fn routing_observations(shard: u32, transaction: &Transaction) -> Vec<Observation> {
    let mut observations = Vec::new();
    for write in &transaction.writes {
        match write {
            Write::Put(Key::Shard(registered), Value::Shard(record)) if shard == 0 => {
                let ready = record.state == ShardState::Ready;
                observations.push(Observation::ShardRegistered { shard: registered.0, ready });
            }
            Write::Put(Key::VaultRoute(vault), Value::VaultRoute(home)) if shard == 0 => {
                observations.push(Observation::Placed { vault: vault.0, shard: home.0 });
            }
            Write::Put(Key::Secret(_), Value::Secret(record)) => {
                observations.push(Observation::ShardWrite { shard, vault: record.vault.0 });
            }
            _ => {}
        }
    }
    observations
}

/// The abstract state of a record.
pub fn secret_state(record: &SecretRecord) -> SecretState {
    let lifecycle = match record.lifecycle {
        Lifecycle::Creating => model::Lifecycle::Creating,
        Lifecycle::Active => model::Lifecycle::Active,
        Lifecycle::PendingDeletion => model::Lifecycle::PendingDeletion,
        Lifecycle::Deleted => model::Lifecycle::Deleted,
    };
    // The checksum of the bytes as they are now, not the one stored beside
    // them: a flipped bit must show as data that was never committed (REP-1).
    let checksum = record.content.as_ref().map(|content| vault::types::Checksum::of(content.bytes()).0);
    SecretState { version: record.version.0, lifecycle, checksum }
}

impl PartialEq for World {
    fn eq(&self, other: &World) -> bool {
        self.now == other.now
            && self.base == other.base
            && self.shards == other.shards
            && self.adder == other.adder
            && self.workers == other.workers
            && self.operator == other.operator
            && self.backfiller == other.backfiller
            && self.verifier == other.verifier
            && self.digests == other.digests
            && self.timers == other.timers
            && self.isolated == other.isolated
            && self.incarnations == other.incarnations
            && self.history == other.history
            && self.properties == other.properties
            && self.front_door == other.front_door
            && self.retired_worker_stats == other.retired_worker_stats
            && self.retired_read_stats == other.retired_read_stats
            && sorted_messages(&self.in_flight) == sorted_messages(&other.in_flight)
    }
}

impl Eq for World {}

impl Hash for World {
    /// The base cell's machines are hashed where they stood before cells
    /// existed, so the world hashes exactly as it did then (the same
    /// fingerprints in the checker).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.now.hash(state);
        self.base.store.hash(state);
        self.workers.hash(state);
        self.base.hosts.hash(state);
        self.base.publishers.hash(state);
        self.base.activator.hash(state);
        self.operator.hash(state);
        self.backfiller.hash(state);
        self.verifier.hash(state);
        self.base.readers.hash(state);
        self.digests.hash(state);
        self.timers.hash(state);
        self.isolated.hash(state);
        self.incarnations.hash(state);
        self.history.hash(state);
        self.properties.hash(state);
        self.front_door.hash(state);
        self.retired_worker_stats.hash(state);
        self.retired_read_stats.hash(state);
        sorted_messages(&self.in_flight).hash(state);
        // Empty unless the world shards.
        self.base.routers.hash(state);
        self.shards.hash(state);
        self.adder.hash(state);
    }
}

/// The messages in flight as a sorted multiset, ignoring their ids.
fn sorted_messages(in_flight: &BTreeMap<MessageId, Arc<Message>>) -> Vec<&Message> {
    let mut messages: Vec<&Message> = in_flight.values().map(|message| &**message).collect();
    messages.sort();
    messages
}

#[cfg(test)]
mod tests;
