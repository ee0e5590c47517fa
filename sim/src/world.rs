//! The world: the control plane, the machines of each cell (one cell per
//! shard; so far only the base cell, shard 0), the messages between them,
//! their timers, crashed nodes, the partition, and the property checker.
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

use model::{HostView, Observation, PropertyChecker, SecretState, View, Violation};
use vault::accessor::{AccessorStats, ReadError, Source};
use vault::activator::{Activator, ActivatorConfig, ActivatorOutput};
use vault::backfill::{BackfillConfig, BackfillOutput, Backfiller};
use vault::bugzoo::Bugs;
use vault::host::DigestEntry;
use vault::host::{Host, HostConfig, HostOutput, LocalRead, LocalStore};
use vault::interceptor::InterceptorMode;
use vault::migration::{Operator, OperatorConfig, OperatorOutput, Phase, PhaseConfig};
use vault::migration::{BACKFILL_BOOKMARK, BOOKMARK_DONE, VERIFY_BOOKMARK};
use vault::publisher::{Publisher, PublisherConfig, PublisherOutput};
use vault::quota::{Admission, BucketConfig, Limit, QuotaConfigError, QuotaScope, QuotaTable, QuotaTableConfig};
use vault::reader::{Reader, ReaderConfig, ReaderOutput};
use vault::store::{BookmarkId, ReadEntry};
use vault::store::{CommitOutcome, Key, Store, StoreReply, StoreRequest, Transaction, Value, Write};
use vault::types::{Content, HostId, Lifecycle, RequestTag, SecretId, SecretRecord, Seq, TenantId, Time, VaultId};
use vault::types::{ShardId, VaultRecord, Version};
use vault::verify::{Verifier, VerifyConfig, VerifyOutput};
use vault::worker::{ClientError, Done, Operation, RequestId, Worker, WorkerConfig, WorkerOutput, WorkerStats};

/// A node of the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeId {
    /// The remote store of the cell.
    Store,
    /// A control-plane worker.
    Worker(u32),
    /// A data-plane host.
    Host(u32),
    /// The publisher of a tenancy's partition (async mode).
    Publisher(u32),
    /// The cell's activator.
    Activator,
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
    Isolate(NodeId),
    /// End every isolation.
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
/// its log), the cell's hosts with their read paths, the publishers of its
/// log partitions and its activator. Control-plane workers and the
/// migration's operator and jobs are not a cell's: they belong to the world.
///
/// Each machine sits behind its own `Arc`, as before cells existed, so a
/// world clone copies pointers and a step copies only what it touches. The
/// world has one cell today, the base cell (shard 0), held inline: a `Vec`
/// of cells would allocate on every world clone, which the checker makes on
/// every transition (+2.6 % instructions under callgrind).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cell {
    /// The remote store of the cell's shard.
    store: Arc<Store>,
    hosts: Vec<HostSlot>,
    /// The publishers of the cell's log partitions, by tenancy (async mode).
    publishers: BTreeMap<u32, Option<Arc<Publisher>>>,
    activator: Option<Arc<Activator>>,
    /// Each host's read path (migration worlds), `None` while the host is down.
    readers: Vec<Option<Arc<Reader>>>,
}

impl Cell {
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
    /// The base cell (shard 0), the only one so far; the cells of other
    /// shards join it when the world shards (issue 6).
    base: Cell,
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
        let host_ids: Vec<u32> = (0..config.hosts).collect();
        let mut world = World {
            now: Time::ZERO,
            base: Cell {
                store: Arc::new(store_with_vaults(&config, &config.bugs)),
                hosts: Vec::new(),
                publishers: BTreeMap::new(),
                activator: None,
                readers: Vec::new(),
            },
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
                None => PropertyChecker::new(&host_ids),
            }),
            front_door: None,
            retired_worker_stats: WorkerStats::default(),
            retired_read_stats: AccessorStats::default(),
            steps: 0,
            config: Arc::new(config),
        };
        let mut report = StepReport::default();
        for worker in 0..world.config.workers {
            world.restart_node(NodeId::Worker(worker), &mut report);
        }
        for host in 0..world.config.hosts {
            let host =
                Host::new(HostId(host), world.config.host.clone(), Time::ZERO).with_bugs(world.config.bugs.clone());
            world.base_mut().hosts.push(HostSlot::Up(Arc::new(host)));
        }
        for host in 0..world.config.hosts {
            world.drain_host(host, &mut report);
        }
        if world.config.mode == InterceptorMode::Async {
            for tenant in world.config.tenants() {
                world.restart_node(NodeId::Publisher(tenant.0), &mut report);
            }
        }
        world.restart_node(NodeId::Activator, &mut report);
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

    /// Every host of the base cell: its index, whether it is up, and its durable state.
    pub fn hosts(&self) -> impl Iterator<Item = (u32, bool, &LocalStore)> {
        self.base().hosts.iter().enumerate().map(|(index, slot)| match slot {
            HostSlot::Up(host) => (index as u32, true, host.durable()),
            HostSlot::Down(durable) => (index as u32, false, &**durable),
        })
    }

    /// The base cell's publishers that are up.
    pub fn publishers(&self) -> impl Iterator<Item = &Publisher> {
        self.base().publishers.values().filter_map(|publisher| publisher.as_deref())
    }

    /// Whether `node` is up.
    pub fn is_up(&self, node: NodeId) -> bool {
        match node {
            NodeId::Store | NodeId::Client => true,
            NodeId::Worker(index) => self.workers.get(index as usize).is_some_and(Option::is_some),
            NodeId::Host(index) => matches!(self.base().hosts.get(index as usize), Some(HostSlot::Up(_))),
            NodeId::Publisher(tenant) => self.base().publishers.get(&tenant).is_some_and(Option::is_some),
            NodeId::Activator => self.base().activator.is_some(),
            NodeId::Operator => self.operator.is_some(),
            NodeId::Backfiller => matches!(self.backfiller, Job::Up(_)),
            NodeId::Verifier => matches!(self.verifier, Job::Up(_)),
            NodeId::Reader(index) => self.base().readers.get(index as usize).is_some_and(Option::is_some),
        }
    }

    /// Nodes that can crash and restart.
    pub fn crashable_nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = (0..self.config.workers).map(NodeId::Worker).collect();
        nodes.extend((0..self.config.hosts).map(NodeId::Host));
        nodes.extend(self.base().publishers.keys().map(|tenant| NodeId::Publisher(*tenant)));
        nodes.push(NodeId::Activator);
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
        if !self.isolated.is_empty() {
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
                self.isolated.insert(*node);
            }
            Action::Heal => self.isolated.clear(),
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
        }
        let stranded: Vec<Observation> = self
            .stranded_hosts()
            .into_iter()
            .filter(|host| !stranded_before.contains(host))
            .map(|host| Observation::HostStranded { host })
            .collect();
        self.observe_all(&stranded, &mut report);
        report
    }

    /// Live hosts that nothing can wake any more: no timer armed and no
    /// message in flight to or from their current incarnation. A correct host
    /// always has one or the other (it polls forever), so becoming stranded
    /// breaks REP-6 at once, without waiting for an end of run that a stuck
    /// world never reaches. Cheap: only hosts without a timer scan the network.
    fn stranded_hosts(&self) -> Vec<u32> {
        let mut stranded = Vec::new();
        for (index, slot) in self.base().hosts.iter().enumerate() {
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
        // A host's read path is cut off with its host.
        let isolated = |node: NodeId| match node {
            NodeId::Reader(index) => self.isolated.contains(&NodeId::Host(index)),
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
            (NodeId::Store, Payload::StoreRequest { tag, request }) => {
                self.on_store_request(from, from_incarnation, tag, request, report);
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
            (NodeId::Publisher(tenant), Payload::StoreReply { tag, reply }) => {
                self.publisher_mut(tenant).on_store_reply(now, tag, reply);
                self.drain_publisher(tenant, report);
            }
            (NodeId::Activator, Payload::StoreReply { tag, reply }) => {
                self.activator_mut().on_store_reply(now, tag, reply);
                self.drain_activator(report);
            }
            (NodeId::Activator, Payload::Applied { host, cursors }) => {
                self.activator_mut().on_host_applied(host, &cursors);
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
            (to, payload) => panic!("{to:?} cannot receive {payload:?}"),
        }
    }

    fn on_store_request(
        &mut self,
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
                let outcome = Arc::make_mut(&mut self.base_mut().store).commit(&transaction);
                self.observe_commit(from, &transaction, &outcome, report);
                StoreReply::Commit(outcome)
            }
            request => Arc::make_mut(&mut self.base_mut().store).on_request(request),
        };
        // The reply goes back on the request's connection, to the incarnation that asked.
        let payload = Payload::StoreReply { tag, reply };
        report.sent.push(self.send_to_incarnation(NodeId::Store, from, from_incarnation, payload));
    }

    fn observe_commit(
        &mut self,
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
            let event = &self.base().store.poll(*tenant, Seq(seq.0 - 1), 1)[0];
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
        self.observe_all(&observations, report);
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
        let now = self.now;
        self.host_mut(index).on_store_reply(now, tag, reply);
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
            let applied = self.base().store.poll(tenant, from, count);
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
        self.observe_all(&observations, report);
        self.drain_host(index, report);
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
        self.observe_all(&[Observation::HostRead { host: index, secret: secret.0, found }], report);
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
            self.observe_all(&[acknowledged], report);
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
            NodeId::Publisher(tenant) => {
                self.publisher_mut(tenant).on_timer(now);
                self.drain_publisher(tenant, report);
            }
            NodeId::Activator => {
                self.activator_mut().on_timer(now);
                self.drain_activator(report);
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
            NodeId::Store | NodeId::Client => panic!("{node:?} has no timer"),
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
                self.base_mut().hosts[index as usize] = HostSlot::Down(durable);
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
                if let Some(activator) = &mut self.base_mut().activator {
                    Arc::make_mut(activator).on_host_liveness(HostId(index), false);
                }
                self.observe_all(&[Observation::HostCrashed { host: index }], report);
            }
            NodeId::Publisher(tenant) => {
                self.base_mut().publishers.insert(tenant, None);
            }
            NodeId::Activator => self.base_mut().activator = None,
            NodeId::Operator => self.operator = None,
            NodeId::Backfiller => self.backfiller = Job::Down,
            NodeId::Verifier => self.verifier = Job::Down,
            NodeId::Reader(_) | NodeId::Store | NodeId::Client => panic!("{node:?} does not crash"),
        }
    }

    fn restart_node(&mut self, node: NodeId, report: &mut StepReport) {
        let now = self.now;
        match node {
            NodeId::Worker(index) => {
                let config = WorkerConfig { mode: self.config.mode, ..self.config.worker.clone() };
                let slot = Some(Arc::new(Worker::new(config).with_bugs(self.config.bugs.clone())));
                if (index as usize) < self.workers.len() {
                    self.workers[index as usize] = slot;
                } else {
                    self.workers.push(slot);
                }
            }
            NodeId::Host(index) => {
                let HostSlot::Down(durable) = &self.base().hosts[index as usize] else { panic!("host {index} is up") };
                let durable = LocalStore::clone(durable);
                let host = Host::recover(HostId(index), self.config.host.clone(), durable, now)
                    .with_bugs(self.config.bugs.clone());
                self.base_mut().hosts[index as usize] = HostSlot::Up(Arc::new(host));
                if self.config.migration.is_some() {
                    self.start_reader(index, report);
                }
                if let Some(activator) = &mut self.base_mut().activator {
                    Arc::make_mut(activator).on_host_liveness(HostId(index), true);
                }
                let durable = self.host(index).durable();
                let records = durable.records().map(|(secret, record)| (secret.0, secret_state(record))).collect();
                let cursors = durable.cursors().into_iter().map(|(tenant, seq)| (tenant.0, seq.0)).collect();
                self.observe_all(&[Observation::HostRestarted { host: index, records, cursors }], report);
                self.drain_host(index, report);
            }
            NodeId::Publisher(tenant) => {
                let config = PublisherConfig {
                    batch_events_max: self.config.publisher_batch_events_max,
                    publish_interval_ns: self.config.publish_interval_ns,
                    ..PublisherConfig::new(TenantId(tenant))
                };
                let publisher = Publisher::new(config, now).with_bugs(self.config.bugs.clone());
                self.base_mut().publishers.insert(tenant, Some(Arc::new(publisher)));
                self.drain_publisher(tenant, report);
            }
            NodeId::Activator => {
                let hosts = (0..self.config.hosts).map(HostId).collect();
                let mut config = ActivatorConfig::new(hosts, self.config.mode);
                config.poll_interval_ns = self.config.activator_poll_interval_ns;
                let mut activator = Activator::new(config, now).with_bugs(self.config.bugs.clone());
                for (index, slot) in self.base().hosts.iter().enumerate() {
                    if matches!(slot, HostSlot::Down(_)) {
                        activator.on_host_liveness(HostId(index as u32), false);
                    }
                }
                self.base_mut().activator = Some(Arc::new(activator));
                self.drain_activator(report);
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
            NodeId::Reader(_) | NodeId::Store | NodeId::Client => panic!("{node:?} does not restart"),
        }
    }

    /// Sends a machine's store request from `node`.
    fn send_store_request(&mut self, node: NodeId, tag: RequestTag, request: StoreRequest, report: &mut StepReport) {
        report.sent.push(self.send(node, NodeId::Store, Payload::StoreRequest { tag, request }));
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
                    // Workers have no placer here: everything is in the one store.
                    assert_eq!(shard, ShardId(0), "a world without shards has only the base store");
                    self.send_store_request(node, tag, request, report);
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
        while let Some(output) = self.host_mut(index).poll_output() {
            match output {
                HostOutput::Store { tag, request } => self.send_store_request(node, tag, request, report),
                HostOutput::Timer { deadline } => self.arm_timer(node, deadline, report),
                HostOutput::Applied { host, cursors } => {
                    report.sent.push(self.send(node, NodeId::Activator, Payload::Applied { host, cursors }));
                }
            }
        }
    }

    fn drain_publisher(&mut self, tenant: u32, report: &mut StepReport) {
        let node = NodeId::Publisher(tenant);
        while let Some(output) = self.publisher_mut(tenant).poll_output() {
            match output {
                PublisherOutput::Store { tag, request } => self.send_store_request(node, tag, request, report),
                PublisherOutput::Timer { deadline } => self.arm_timer(node, deadline, report),
            }
        }
    }

    fn drain_activator(&mut self, report: &mut StepReport) {
        while let Some(output) = self.activator_mut().poll_output() {
            match output {
                ActivatorOutput::Store { tag, request } => {
                    self.send_store_request(NodeId::Activator, tag, request, report)
                }
                ActivatorOutput::Timer { deadline } => self.arm_timer(NodeId::Activator, deadline, report),
            }
        }
    }

    fn drain_operator(&mut self, report: &mut StepReport) {
        while let Some(output) = self.operator_mut().poll_output() {
            match output {
                OperatorOutput::Store { tag, request } => {
                    self.send_store_request(NodeId::Operator, tag, request, report)
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
                    self.send_store_request(NodeId::Backfiller, tag, request, report);
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
                VerifyOutput::Store { tag, request } => self.send_store_request(NodeId::Verifier, tag, request, report),
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
                ReaderOutput::Store { tag, request } => self.send_store_request(node, tag, request, report),
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
        match &self.base().hosts[index as usize] {
            HostSlot::Up(host) => host,
            HostSlot::Down(_) => panic!("host {index} is down"),
        }
    }

    fn host_mut(&mut self, index: u32) -> &mut Host {
        match &mut self.base_mut().hosts[index as usize] {
            HostSlot::Up(host) => Arc::make_mut(host),
            HostSlot::Down(_) => panic!("host {index} is down"),
        }
    }

    fn publisher_mut(&mut self, tenant: u32) -> &mut Publisher {
        let slot = self.base_mut().publishers.get_mut(&tenant).and_then(Option::as_mut);
        Arc::make_mut(slot.unwrap_or_else(|| panic!("publisher {tenant} is down")))
    }

    fn activator_mut(&mut self) -> &mut Activator {
        Arc::make_mut(self.base_mut().activator.as_mut().expect("activator is down"))
    }

    /// The base cell (shard 0).
    fn base(&self) -> &Cell {
        &self.base
    }

    fn base_mut(&mut self) -> &mut Cell {
        &mut self.base
    }

    /// The abstract view of the world, for end-of-run properties.
    pub fn view(&self) -> View {
        let mut view = View::default();
        let cell = self.base();
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
            view.hosts.insert(index as u32, HostView { live, records });
        }
        view
    }

    /// Checks the properties that hold only when healed and quiet.
    pub fn check_quiescent(&self) -> Vec<Violation> {
        self.properties.check_quiescent(&self.view())
    }

    /// Whether nothing is left to do but periodic polls: no client operation in
    /// progress or in flight, no outbox row, no secret waiting for activation
    /// (while a host is up), and every up host at the log's head.
    pub fn is_quiet(&self) -> bool {
        let workers_idle = self.workers().all(|(_, worker)| !worker.is_busy());
        let clients_idle = self.in_flight.values().all(|message| {
            !matches!(message.from, NodeId::Client | NodeId::Worker(_))
                && !matches!(message.to, NodeId::Client | NodeId::Worker(_))
        });
        let cell = self.base();
        let outbox_empty = cell.store.scan(vault::store::Table::Outbox, None, 1).rows.is_empty();
        let hosts_caught_up = cell.hosts_caught_up();
        let any_host_up = cell.hosts.iter().any(|slot| matches!(slot, HostSlot::Up(_)));
        let none_creating = !any_host_up || !self.any_secret_creating();
        self.unquiet_reason(workers_idle && clients_idle, outbox_empty, hosts_caught_up, none_creating).is_none()
    }

    /// Why the world is not quiet, in words (for the REP-6 timeout's message).
    pub fn why_not_quiet(&self) -> Option<String> {
        if self.is_quiet() {
            return None;
        }
        let clients = self.workers().all(|(_, worker)| !worker.is_busy());
        let outbox = self.base().store.scan(vault::store::Table::Outbox, None, 1).rows.is_empty();
        let caught_up = self.base().hosts_caught_up();
        self.unquiet_reason(clients, outbox, caught_up, !self.any_secret_creating())
    }

    fn unquiet_reason(
        &self,
        clients_idle: bool,
        outbox_empty: bool,
        caught_up: bool,
        none_creating: bool,
    ) -> Option<String> {
        let mut waiting: Vec<String> = [
            (clients_idle, "client operations"),
            (outbox_empty, "outbox rows"),
            (caught_up, "hosts catching up with the log"),
            (none_creating, "secrets still Creating"),
        ]
        .iter()
        .filter(|(done, _)| !done)
        .map(|(_, what)| (*what).to_string())
        .collect();
        waiting.extend(self.migration_pending());
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
    fn any_secret_creating(&self) -> bool {
        if self.config.migration.is_some() && self.stored_phase().phase < Phase::Verify {
            return false;
        }
        let secrets = self.base().store.scan(vault::store::Table::Secrets, None, usize::MAX);
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

/// The store at the start: the configured vaults and, in a migration world,
/// the secrets written before replication existed (no events), spread over
/// the vaults in turn.
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
