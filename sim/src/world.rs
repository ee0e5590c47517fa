//! The world: every machine of one cell, the messages between them, their
//! timers, crashed nodes, the partition, and the property checker.
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
use vault::activator::{Activator, ActivatorConfig, ActivatorOutput};
use vault::bugzoo::Bugs;
use vault::host::{Host, HostConfig, HostOutput, LocalRead, LocalStore};
use vault::interceptor::InterceptorMode;
use vault::migration::Phase;
use vault::publisher::{Publisher, PublisherConfig, PublisherOutput};
use vault::quota::{Admission, BucketConfig, Limit, QuotaConfigError, QuotaScope, QuotaTable, QuotaTableConfig};
use vault::store::{CommitOutcome, Key, Store, StoreReply, StoreRequest, Transaction, Value, Write};
use vault::types::{HostId, Lifecycle, RequestTag, SecretId, SecretRecord, Seq, TenantId, Time, VaultId, VaultRecord};
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
        /// What the host holds.
        read: LocalRead,
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
    /// The backfiller's budget of store requests.
    pub backfill_budget: BucketConfig,
    /// Keys per verify page (its bookmark interval).
    pub verify_page_keys: usize,
    /// The verifier's budget of store and host requests.
    pub verify_budget: BucketConfig,
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

/// A host slot: up with its machine, or down with only its durable state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum HostSlot {
    Up(Arc<Host>),
    Down(Arc<LocalStore>),
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

/// The world. See the module documentation.
#[derive(Clone, Debug)]
pub struct World {
    config: Arc<WorldConfig>,
    now: Time,
    store: Arc<Store>,
    workers: Vec<Option<Arc<Worker>>>,
    hosts: Vec<HostSlot>,
    publishers: BTreeMap<u32, Option<Arc<Publisher>>>,
    activator: Option<Arc<Activator>>,
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
            store: Arc::new(store_with_vaults(&config.vaults, &config.bugs)),
            workers: Vec::new(),
            hosts: Vec::new(),
            publishers: BTreeMap::new(),
            activator: None,
            in_flight: BTreeMap::new(),
            next_message: 0,
            timers: BTreeMap::new(),
            isolated: BTreeSet::new(),
            incarnations: BTreeMap::new(),
            history: Arc::new(BTreeMap::new()),
            properties: Arc::new(PropertyChecker::new(&host_ids)),
            front_door: None,
            retired_worker_stats: WorkerStats::default(),
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
            world.hosts.push(HostSlot::Up(Arc::new(host)));
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

    /// The remote store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The workers that are up, by index.
    pub fn workers(&self) -> impl Iterator<Item = (u32, &Worker)> {
        self.workers.iter().enumerate().filter_map(|(index, worker)| Some((index as u32, worker.as_deref()?)))
    }

    /// Worker counters over the whole run, crashed workers included.
    pub fn worker_stats(&self) -> WorkerStats {
        self.workers().fold(self.retired_worker_stats, |total, (_, worker)| add_stats(total, worker.stats()))
    }

    /// Every host: its index, whether it is up, and its durable state.
    pub fn hosts(&self) -> impl Iterator<Item = (u32, bool, &LocalStore)> {
        self.hosts.iter().enumerate().map(|(index, slot)| match slot {
            HostSlot::Up(host) => (index as u32, true, host.durable()),
            HostSlot::Down(durable) => (index as u32, false, &**durable),
        })
    }

    /// The publishers that are up.
    pub fn publishers(&self) -> impl Iterator<Item = &Publisher> {
        self.publishers.values().filter_map(|publisher| publisher.as_deref())
    }

    /// Whether `node` is up.
    pub fn is_up(&self, node: NodeId) -> bool {
        match node {
            NodeId::Store | NodeId::Client => true,
            NodeId::Worker(index) => self.workers.get(index as usize).is_some_and(Option::is_some),
            NodeId::Host(index) => matches!(self.hosts.get(index as usize), Some(HostSlot::Up(_))),
            NodeId::Publisher(tenant) => self.publishers.get(&tenant).is_some_and(Option::is_some),
            NodeId::Activator => self.activator.is_some(),
        }
    }

    /// Nodes that can crash and restart.
    pub fn crashable_nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = (0..self.config.workers).map(NodeId::Worker).collect();
        nodes.extend((0..self.config.hosts).map(NodeId::Host));
        nodes.extend(self.publishers.keys().map(|tenant| NodeId::Publisher(*tenant)));
        nodes.push(NodeId::Activator);
        nodes
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
        for (index, slot) in self.hosts.iter().enumerate() {
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
        let record = OperationRecord { kind, issued_at: self.now, answered: None, tenant: None, throttled: None };
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
        let cut = self.isolated.contains(&message.from) || self.isolated.contains(&message.to);
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
            (NodeId::Client, Payload::ClientAnswer { request, result }) => self.on_answer(request, &result, report),
            (NodeId::Client, Payload::HostReadAnswer { request, .. }) => self.record_answer(request, true),
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
        let reply = match request {
            // A commit is applied here rather than through `on_request` so the
            // properties can see its writes without copying the transaction.
            StoreRequest::Commit(transaction) => {
                let outcome = Arc::make_mut(&mut self.store).commit(&transaction);
                self.observe_commit(&transaction, &outcome, report);
                StoreReply::Commit(outcome)
            }
            request => Arc::make_mut(&mut self.store).on_request(request),
        };
        // The reply goes back on the request's connection, to the incarnation that asked.
        let payload = Payload::StoreReply { tag, reply };
        report.sent.push(self.send_to_incarnation(NodeId::Store, from, from_incarnation, payload));
    }

    fn observe_commit(&mut self, transaction: &Transaction, outcome: &CommitOutcome, report: &mut StepReport) {
        let CommitOutcome::Committed { appended, commit } = outcome else { return };
        let mut observations = Vec::new();
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
            let event = &self.store.poll(*tenant, Seq(seq.0 - 1), 1)[0];
            let state = secret_state(&event.mutation.record);
            observations.push(Observation::Appended {
                tenant: tenant.0,
                seq: seq.0,
                secret: event.mutation.secret.0,
                state,
            });
        }
        self.observe_all(&observations, report);
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
            let applied = self.store.poll(tenant, from, count);
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
        let found = match &read {
            LocalRead::Found(record) => Some(secret_state(record)),
            LocalRead::Missing => None,
        };
        self.observe_all(&[Observation::HostRead { host: index, secret: secret.0, found }], report);
        let payload = Payload::HostReadAnswer { request, read };
        report.sent.push(self.send(NodeId::Host(index), NodeId::Client, payload));
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
                self.hosts[index as usize] = HostSlot::Down(durable);
                if let Some(activator) = &mut self.activator {
                    Arc::make_mut(activator).on_host_liveness(HostId(index), false);
                }
                self.observe_all(&[Observation::HostCrashed { host: index }], report);
            }
            NodeId::Publisher(tenant) => {
                self.publishers.insert(tenant, None);
            }
            NodeId::Activator => self.activator = None,
            NodeId::Store | NodeId::Client => panic!("{node:?} does not crash"),
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
                let HostSlot::Down(durable) = &self.hosts[index as usize] else { panic!("host {index} is up") };
                let durable = LocalStore::clone(durable);
                let host = Host::recover(HostId(index), self.config.host.clone(), durable, now)
                    .with_bugs(self.config.bugs.clone());
                self.hosts[index as usize] = HostSlot::Up(Arc::new(host));
                if let Some(activator) = &mut self.activator {
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
                self.publishers.insert(tenant, Some(Arc::new(publisher)));
                self.drain_publisher(tenant, report);
            }
            NodeId::Activator => {
                let hosts = (0..self.config.hosts).map(HostId).collect();
                let mut config = ActivatorConfig::new(hosts, self.config.mode);
                config.poll_interval_ns = self.config.activator_poll_interval_ns;
                let mut activator = Activator::new(config, now).with_bugs(self.config.bugs.clone());
                for (index, slot) in self.hosts.iter().enumerate() {
                    if matches!(slot, HostSlot::Down(_)) {
                        activator.on_host_liveness(HostId(index as u32), false);
                    }
                }
                self.activator = Some(Arc::new(activator));
                self.drain_activator(report);
            }
            NodeId::Store | NodeId::Client => panic!("{node:?} does not restart"),
        }
    }

    fn drain_worker(&mut self, index: u32, report: &mut StepReport) {
        let node = NodeId::Worker(index);
        while let Some(output) = self.worker_mut(index).poll_output() {
            match output {
                WorkerOutput::Store { tag, request } => {
                    report.sent.push(self.send(node, NodeId::Store, Payload::StoreRequest { tag, request }));
                }
                WorkerOutput::Timer { deadline } => {
                    self.timers.insert(node, deadline);
                    report.timers_changed.push(node);
                }
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
                HostOutput::Store { tag, request } => {
                    report.sent.push(self.send(node, NodeId::Store, Payload::StoreRequest { tag, request }));
                }
                HostOutput::Timer { deadline } => {
                    self.timers.insert(node, deadline);
                    report.timers_changed.push(node);
                }
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
                PublisherOutput::Store { tag, request } => {
                    report.sent.push(self.send(node, NodeId::Store, Payload::StoreRequest { tag, request }));
                }
                PublisherOutput::Timer { deadline } => {
                    self.timers.insert(node, deadline);
                    report.timers_changed.push(node);
                }
            }
        }
    }

    fn drain_activator(&mut self, report: &mut StepReport) {
        while let Some(output) = self.activator_mut().poll_output() {
            match output {
                ActivatorOutput::Store { tag, request } => {
                    let payload = Payload::StoreRequest { tag, request };
                    report.sent.push(self.send(NodeId::Activator, NodeId::Store, payload));
                }
                ActivatorOutput::Timer { deadline } => {
                    self.timers.insert(NodeId::Activator, deadline);
                    report.timers_changed.push(NodeId::Activator);
                }
            }
        }
    }

    fn worker_mut(&mut self, index: u32) -> &mut Worker {
        let worker = self.workers[index as usize].as_mut().unwrap_or_else(|| panic!("worker {index} is down"));
        Arc::make_mut(worker)
    }

    fn host(&self, index: u32) -> &Host {
        match &self.hosts[index as usize] {
            HostSlot::Up(host) => host,
            HostSlot::Down(_) => panic!("host {index} is down"),
        }
    }

    fn host_mut(&mut self, index: u32) -> &mut Host {
        match &mut self.hosts[index as usize] {
            HostSlot::Up(host) => Arc::make_mut(host),
            HostSlot::Down(_) => panic!("host {index} is down"),
        }
    }

    fn publisher_mut(&mut self, tenant: u32) -> &mut Publisher {
        let slot = self.publishers.get_mut(&tenant).and_then(Option::as_mut);
        Arc::make_mut(slot.unwrap_or_else(|| panic!("publisher {tenant} is down")))
    }

    fn activator_mut(&mut self) -> &mut Activator {
        Arc::make_mut(self.activator.as_mut().expect("activator is down"))
    }

    /// The abstract view of the world, for end-of-run properties.
    pub fn view(&self) -> View {
        let mut view = View::default();
        let secrets = self.store.scan(vault::store::Table::Secrets, None, usize::MAX);
        for row in secrets.rows {
            if let (Key::Secret(secret), Some(Value::Secret(record))) = (row.key, &row.value) {
                view.remote.insert(secret.0, secret_state(record));
            }
        }
        for (index, slot) in self.hosts.iter().enumerate() {
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
        let outbox_empty = self.store.scan(vault::store::Table::Outbox, None, 1).rows.is_empty();
        let hosts_caught_up = self.hosts.iter().all(|slot| match slot {
            HostSlot::Up(host) => {
                self.store.partitions().all(|tenant| host.durable().cursor(tenant) == self.store.head(tenant))
            }
            HostSlot::Down(_) => true,
        });
        let any_host_up = self.hosts.iter().any(|slot| matches!(slot, HostSlot::Up(_)));
        let none_creating = !any_host_up || !self.any_secret_creating();
        workers_idle && clients_idle && outbox_empty && hosts_caught_up && none_creating
    }

    fn any_secret_creating(&self) -> bool {
        let secrets = self.store.scan(vault::store::Table::Secrets, None, usize::MAX);
        secrets
            .rows
            .iter()
            .any(|row| matches!(&row.value, Some(Value::Secret(record)) if record.lifecycle == Lifecycle::Creating))
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

fn add_stats(left: WorkerStats, right: WorkerStats) -> WorkerStats {
    WorkerStats {
        commits: left.commits + right.commits,
        conflicts: left.conflicts + right.conflicts,
        retries: left.retries + right.retries,
        timeouts: left.timeouts + right.timeouts,
    }
}

fn store_with_vaults(vaults: &[(VaultId, TenantId)], bugs: &Bugs) -> Store {
    let mut store = Store::with_bugs(bugs.clone());
    if vaults.is_empty() {
        return store;
    }
    let writes = vaults
        .iter()
        .map(|(vault, tenant)| {
            Write::Put(Key::Vault(*vault), Value::Vault(VaultRecord { tenant: *tenant, deleted: false }))
        })
        .collect();
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
            && self.store == other.store
            && self.workers == other.workers
            && self.hosts == other.hosts
            && self.publishers == other.publishers
            && self.activator == other.activator
            && self.timers == other.timers
            && self.isolated == other.isolated
            && self.incarnations == other.incarnations
            && self.history == other.history
            && self.properties == other.properties
            && self.front_door == other.front_door
            && self.retired_worker_stats == other.retired_worker_stats
            && sorted_messages(&self.in_flight) == sorted_messages(&other.in_flight)
    }
}

impl Eq for World {}

impl Hash for World {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.now.hash(state);
        self.store.hash(state);
        self.workers.hash(state);
        self.hosts.hash(state);
        self.publishers.hash(state);
        self.activator.hash(state);
        self.timers.hash(state);
        self.isolated.hash(state);
        self.incarnations.hash(state);
        self.history.hash(state);
        self.properties.hash(state);
        self.front_door.hash(state);
        self.retired_worker_stats.hash(state);
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
