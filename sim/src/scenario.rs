//! Scenarios as code: `specs/scenarios/*.toml`.
//!
//! A scenario names a topology, a workload, a network, faults, the replication
//! knobs, the run's length, the properties to check and the convergence bound.
//! Every field has a default except the name, so a scenario file says only what
//! differs. Unknown fields are errors (a typo must not silently become a
//! default). A broken file fails with its path, the line and the field.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vault::quota::{
    BucketConfig, ConfigField, Limit, QuotaConfig, QuotaConfigError, QuotaScope, QuotaTable, QuotaTableConfig,
};
use vault::types::TenantId;

/// One scenario. See the module documentation; field docs give units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name (used in reports and replay commands).
    pub name: String,
    /// One sentence on what it exercises.
    #[serde(default)]
    pub description: String,
    /// Nodes.
    #[serde(default)]
    pub topology: Topology,
    /// Client traffic.
    #[serde(default)]
    pub workload: Workload,
    /// Message latency and loss.
    #[serde(default)]
    pub network: Network,
    /// Crashes, partitions and clock drift.
    #[serde(default)]
    pub faults: Faults,
    /// Interceptor mode and replication knobs.
    #[serde(default)]
    pub replication: Replication,
    /// Run length, properties and the convergence bound.
    #[serde(default)]
    pub run: Run,
    /// Rate-limit quotas at the control plane's front door; absent: no throttling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
    /// A live migration of the cell onto its hosts; absent: the cell
    /// replicates from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Migration>,
    /// Shards by vault, a cell of `topology.hosts` hosts per shard; absent:
    /// one cell holds every vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharding: Option<Sharding>,
}

/// Sharding by vault (see `vault::router`): the configured vaults start
/// placed on the shards in turn; host reads go through a base-cell host's
/// router, which serves them or proxies them to the home shard's cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sharding {
    /// Shards, the base shard included.
    pub shards: u32,
    /// Host reads whose caller is another tenancy than the secret's
    /// (cross-tenancy and on-behalf-of traffic), per million.
    pub cross_tenancy_per_million: u32,
    /// How long a router waits on base-store lookups for one request, ms.
    pub route_timeout_ms: u64,
    /// Requests a router lets wait on lookups at once.
    pub lookups_max: usize,
    /// Store outages during the fault phase.
    pub outages: Vec<StoreOutage>,
    /// When the operator is told to add one more shard live, ms; absent: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_shard_at_ms: Option<u64>,
}

impl Default for Sharding {
    fn default() -> Sharding {
        Sharding {
            shards: 3,
            cross_tenancy_per_million: 200_000,
            route_timeout_ms: 200,
            lookups_max: 16,
            outages: Vec::new(),
            add_shard_at_ms: None,
        }
    }
}

/// One shard's store down for a while.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreOutage {
    /// The shard.
    pub shard: u32,
    /// When it goes down, ms.
    pub at_ms: u64,
    /// For how long, ms.
    pub duration_ms: u64,
}

impl Sharding {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, message: &str| Err((format!("sharding.{field}"), message.to_string()));
        if !(1..vault::placement::SHARDS_MAX).contains(&self.shards) {
            return fail(
                "shards",
                &format!(
                    "between 1 and {} (one below the most a registry holds, room for an added shard)",
                    vault::placement::SHARDS_MAX - 1
                ),
            );
        }
        if self.cross_tenancy_per_million > 1_000_000 {
            return fail("cross_tenancy_per_million", "a chance per million is at most 1000000");
        }
        if self.route_timeout_ms == 0 {
            return fail("route_timeout_ms", "must be at least 1 ms");
        }
        if self.lookups_max == 0 {
            return fail("lookups_max", "must be at least 1");
        }
        if let Some(outage) = self.outages.iter().find(|outage| outage.shard >= self.shards) {
            return fail("outages", &format!("shard {} is not one of the {} shards", outage.shard, self.shards));
        }
        if self.outages.iter().any(|outage| outage.duration_ms == 0) {
            return fail("outages", "an outage lasts at least 1 ms");
        }
        Ok(())
    }
}

/// A live migration (see `vault::migration`): the cell starts in phase `off`
/// with `seeded_secrets` written before replication existed, and the
/// operator moves it through the phases on `schedule`. During the fault phase
/// the operator may be told to roll back, and hosts' disks may flip bits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Migration {
    /// Secrets in the store at the start, without replication events.
    pub seeded_secrets: u32,
    /// Forward moves: from `at_ms` on, the operator's target is at least `phase`.
    pub schedule: Vec<ScheduleEntry>,
    /// Keys per backfill page (its bookmark interval).
    pub backfill_page_keys: usize,
    /// The backfiller's store requests per second (0: no budget, it never waits).
    pub backfill_rate_per_second: u64,
    /// Keys per verify page.
    pub verify_page_keys: usize,
    /// The verifier's requests (store and hosts) per second (0: no budget).
    pub verify_rate_per_second: u64,
    /// Each host's phase poll interval, ms, by host index; the last entry
    /// repeats for further hosts. Unequal intervals make a mixed fleet.
    pub phase_poll_ms: Vec<u64>,
    /// Mean time between rollback commands during the fault phase, ms (0: none).
    pub rollback_interval_ms: u64,
    /// Mean time between flipped bits in hosts' local entries during the fault phase, ms (0: none).
    pub bit_flip_interval_ms: u64,
    /// How long the operator, jobs and read paths wait for a store reply, ms.
    pub request_timeout_ms: u64,
}

impl Default for Migration {
    fn default() -> Migration {
        Migration {
            seeded_secrets: 20,
            schedule: Vec::new(),
            backfill_page_keys: 8,
            backfill_rate_per_second: 0,
            verify_page_keys: 8,
            verify_rate_per_second: 0,
            phase_poll_ms: vec![20],
            rollback_interval_ms: 0,
            bit_flip_interval_ms: 0,
            request_timeout_ms: 200,
        }
    }
}

/// One entry of a migration schedule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    /// From when, ms.
    pub at_ms: u64,
    /// The phase: `sync`, `backfill`, `verify` or `switchover`.
    pub phase: PhaseName,
}

/// A migration phase as scenario files name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseName {
    /// `vault::migration::Phase::Sync`.
    Sync,
    /// `vault::migration::Phase::Backfill`.
    Backfill,
    /// `vault::migration::Phase::Verify`.
    Verify,
    /// `vault::migration::Phase::Switchover`.
    Switchover,
}

impl PhaseName {
    /// The phase.
    pub fn phase(self) -> vault::migration::Phase {
        use vault::migration::Phase;
        match self {
            PhaseName::Sync => Phase::Sync,
            PhaseName::Backfill => Phase::Backfill,
            PhaseName::Verify => Phase::Verify,
            PhaseName::Switchover => Phase::Switchover,
        }
    }
}

impl Migration {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, message: &str| Err((format!("migration.{field}"), message.to_string()));
        if self.schedule.windows(2).any(|pair| pair[0].at_ms > pair[1].at_ms || pair[0].phase >= pair[1].phase) {
            return fail("schedule", "entries move forward: later times, later phases");
        }
        if self.backfill_page_keys == 0 || self.verify_page_keys == 0 {
            return fail("backfill_page_keys", "pages hold at least one key");
        }
        if self.phase_poll_ms.is_empty() || self.phase_poll_ms.contains(&0) {
            return fail("phase_poll_ms", "one or more intervals, each at least 1 ms");
        }
        if self.request_timeout_ms == 0 {
            return fail("request_timeout_ms", "must be at least 1 ms");
        }
        Ok(())
    }
}

/// Rate-limit quotas, after Vault's (see `vault::quota`): a global per-tenant
/// default, per-tenant overrides and an optional service capacity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// The quota of every tenant without its own (one bucket per tenant).
    #[serde(default)]
    pub global: Option<QuotaSpec>,
    /// Per-tenant overrides, by tenant index.
    #[serde(default)]
    pub tenants: Vec<TenantQuota>,
    /// One bucket that every admitted request also consumes.
    #[serde(default)]
    pub service_capacity: Option<CapacitySpec>,
    /// Times a client resends a throttled request after its retry-after.
    #[serde(default = "Quotas::default_client_retries_max")]
    pub client_retries_max: u32,
}

impl Quotas {
    fn default_client_retries_max() -> u32 {
        1
    }
}

/// One quota: `rate` requests per `interval_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSpec {
    /// Requests per interval.
    pub rate: u64,
    /// The interval, ms.
    pub interval_ms: u64,
    /// Requests admitted at once from a full bucket (default: `rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// How long a tenant is refused after exceeding the quota, ms (default: no block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_interval_ms: Option<u64>,
}

/// A tenant's own quota.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantQuota {
    /// The tenant index (below `workload.tenants`).
    pub tenant: u32,
    /// Requests per interval.
    pub rate: u64,
    /// The interval, ms.
    pub interval_ms: u64,
    /// Requests admitted at once from a full bucket (default: `rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// How long the tenant is refused after exceeding the quota, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_interval_ms: Option<u64>,
}

/// The service capacity: `rate` requests per `interval_ms`, all tenants together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySpec {
    /// Requests per interval.
    pub rate: u64,
    /// The interval, ms.
    pub interval_ms: u64,
    /// Requests admitted at once from a full bucket (default: `rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

const NS_PER_MS: u64 = 1_000_000;

impl QuotaSpec {
    fn quota(&self, scope: QuotaScope) -> QuotaConfig {
        QuotaConfig {
            scope,
            rate: self.rate,
            interval_ns: self.interval_ms.saturating_mul(NS_PER_MS),
            burst: self.burst.unwrap_or(self.rate),
            block_interval_ns: self.block_interval_ms.map(|ms| ms.saturating_mul(NS_PER_MS)),
        }
    }
}

impl Quotas {
    /// The quota table's configuration.
    pub fn table_config(&self) -> QuotaTableConfig {
        let mut quotas: Vec<QuotaConfig> = self.global.iter().map(|global| global.quota(QuotaScope::Global)).collect();
        for tenant in &self.tenants {
            let spec = QuotaSpec {
                rate: tenant.rate,
                interval_ms: tenant.interval_ms,
                burst: tenant.burst,
                block_interval_ms: tenant.block_interval_ms,
            };
            quotas.push(spec.quota(QuotaScope::Tenant(TenantId(tenant.tenant))));
        }
        let service_capacity = self.service_capacity.as_ref().map(|capacity| BucketConfig {
            rate: capacity.rate,
            interval_ns: capacity.interval_ms.saturating_mul(NS_PER_MS),
            burst: capacity.burst.unwrap_or(capacity.rate),
        });
        QuotaTableConfig { quotas, service_capacity }
    }

    /// Checks the quotas against a workload of `tenants`: the field and why.
    fn validate(&self, tenants: u32) -> Result<(), (String, String)> {
        if let Some(tenant) = self.tenants.iter().find(|quota| quota.tenant >= tenants) {
            let message = format!("tenant {} is not below workload.tenants = {tenants}", tenant.tenant);
            return Err(("quotas.tenants".to_string(), message));
        }
        QuotaTable::new(&self.table_config())
            .map(|_| ())
            .map_err(|error| (quota_error_field(&error), error.to_string()))
    }
}

/// The scenario field a quota configuration error is about.
fn quota_error_field(error: &QuotaConfigError) -> String {
    match error {
        QuotaConfigError::NotPositive { limit, field } => {
            let field = match field {
                ConfigField::Rate => "rate",
                ConfigField::IntervalNs => "interval_ms",
                ConfigField::Burst => "burst",
                ConfigField::BlockIntervalNs => "block_interval_ms",
            };
            match limit {
                Limit::Quota(QuotaScope::Global) => format!("quotas.global.{field}"),
                Limit::Quota(QuotaScope::Tenant(_)) => format!("quotas.tenants.{field}"),
                Limit::ServiceCapacity => format!("quotas.service_capacity.{field}"),
            }
        }
        QuotaConfigError::DuplicateScope { .. } => "quotas.tenants".to_string(),
    }
}

/// Nodes of the cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topology {
    /// Control-plane workers.
    pub workers: u32,
    /// Data-plane hosts (per cell, in a sharded scenario).
    pub hosts: u32,
    /// Operations each worker runs at once (`vault::worker::WorkerConfig::operations_max`).
    pub worker_operations_max: usize,
}

impl Default for Topology {
    fn default() -> Topology {
        Topology { workers: 2, hosts: 3, worker_operations_max: 1 }
    }
}

/// Client traffic: open-loop arrivals of weighted operations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Tenancies (each has its own log partition).
    pub tenants: u32,
    /// Vaults per tenancy.
    pub vaults_per_tenant: u32,
    /// Most secrets created over the run.
    pub secrets_max: u32,
    /// Mean arrivals per simulated second.
    pub rate_per_second: u32,
    /// Zipf exponent of secret popularity (0 = uniform).
    pub zipf_exponent: f64,
    /// Relative weights of operation kinds.
    pub mix: Mix,
    /// Periods of higher arrival rate.
    pub bursts: Vec<Burst>,
    /// Relative arrival weights of the tenants, one per tenant; empty: a
    /// request's tenant follows from its secret's popularity alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tenant_weights: Vec<u32>,
    /// Whether a client reads each secret it created from a host as soon as
    /// the create is acknowledged (read-your-write traffic). Such reads are
    /// extra to `rate_per_second`.
    pub read_after_create: bool,
}

impl Default for Workload {
    fn default() -> Workload {
        Workload {
            tenants: 2,
            vaults_per_tenant: 1,
            secrets_max: 64,
            rate_per_second: 200,
            zipf_exponent: 1.0,
            mix: Mix::default(),
            bursts: Vec::new(),
            tenant_weights: Vec::new(),
            read_after_create: false,
        }
    }
}

/// Relative weights of operation kinds (need not sum to anything).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    /// Create a new secret.
    pub create: u32,
    /// Update an existing secret.
    pub update: u32,
    /// Delete a secret.
    pub delete: u32,
    /// Read a secret from the remote store through a worker.
    pub remote_read: u32,
    /// Read a secret from a data-plane host.
    pub host_read: u32,
    /// Create a vault (placed on a shard in a sharded scenario); it holds no
    /// secrets, which live in the configured vaults.
    pub create_vault: u32,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix { create: 20, update: 40, delete: 5, remote_read: 10, host_read: 25, create_vault: 0 }
    }
}

/// A period in which arrivals come `multiplier` times faster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// Start, in simulated milliseconds from the start of the run.
    pub at_ms: u64,
    /// Length in milliseconds.
    pub duration_ms: u64,
    /// Rate multiplier.
    pub multiplier: u32,
}

/// Message latency and loss, per message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// Smallest one-way latency, microseconds.
    pub latency_min_us: u64,
    /// Largest one-way latency, microseconds (uniform in between; this spread
    /// is what reorders messages).
    pub latency_max_us: u64,
    /// Latency to and from the remote store is multiplied by this (the store is
    /// farther than the hosts' local stores).
    pub store_latency_factor: u64,
    /// Chance of losing a message, per million, during the fault phase.
    pub drop_per_million: u32,
    /// Chance of duplicating a message, per million, during the fault phase.
    pub duplicate_per_million: u32,
    /// Chance of holding a message back by `reorder_delay_us` so that later
    /// messages overtake it, per million, during the fault phase.
    pub reorder_per_million: u32,
    /// The extra delay of a held-back message, microseconds.
    pub reorder_delay_us: u64,
    /// Latency overrides for links between kinds of node.
    pub links: Vec<Link>,
    /// The remote store's service time per request, microseconds: the store
    /// serves one request at a time, in the order they were sent, so requests
    /// queue when they come faster than it serves them. Zero: unlimited
    /// capacity, every request is served on arrival.
    #[serde(skip_serializing_if = "is_zero")]
    pub store_service_us: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The latency of messages from one kind of node to another (overrides the
/// network's default and its store factor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Sender kind: `worker`, `host`, `publisher`, `activator`, `store` or `client`.
    pub from: String,
    /// Receiver kind, as `from`.
    pub to: String,
    /// Smallest one-way latency, microseconds.
    pub latency_min_us: u64,
    /// Largest one-way latency, microseconds.
    pub latency_max_us: u64,
}

/// The kinds of node a [`Link`] may name.
pub const NODE_KINDS: [&str; 10] =
    ["worker", "host", "publisher", "activator", "store", "client", "operator", "backfiller", "verifier", "reader"];

impl Default for Network {
    fn default() -> Network {
        Network {
            latency_min_us: 200,
            latency_max_us: 1_000,
            store_latency_factor: 2,
            drop_per_million: 0,
            duplicate_per_million: 0,
            reorder_per_million: 0,
            reorder_delay_us: 5_000,
            links: Vec::new(),
            store_service_us: 0,
        }
    }
}

/// Node faults during the fault phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Mean time between crashes, ms (0 = no crashes).
    pub crash_interval_ms: u64,
    /// How long a crashed node stays down, ms.
    pub crash_down_ms: u64,
    /// Mean time between partitions, ms (0 = no partitions).
    pub partition_interval_ms: u64,
    /// How long a partition lasts, ms.
    pub partition_duration_ms: u64,
    /// Largest clock drift of a node, parts per million (timers of a node
    /// with drift d fire after `interval * (1 + d / 1e6)`).
    pub clock_drift_ppm_max: u32,
    /// Mean time between pauses, ms (0 = no pauses). A paused node handles no
    /// message and no timer until the pause ends (a stop-the-world stall).
    pub pause_interval_ms: u64,
    /// Longest pause, ms.
    pub pause_duration_ms: u64,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            crash_interval_ms: 0,
            crash_down_ms: 200,
            partition_interval_ms: 0,
            partition_duration_ms: 200,
            clock_drift_ppm_max: 0,
            pause_interval_ms: 0,
            pause_duration_ms: 50,
        }
    }
}

/// How mutations reach the hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Replication {
    /// `sync` or `async`.
    pub mode: Mode,
    /// Host poll interval, ms.
    pub poll_interval_ms: u64,
    /// Events per partition per poll.
    pub poll_events_max: usize,
    /// Publisher rows per round (async).
    pub publisher_batch_events_max: usize,
    /// Publisher round interval, ms (async).
    pub publish_interval_ms: u64,
    /// Worker attempts per operation.
    pub commit_attempts_max: u32,
    /// Worker backoff after the first conflict, microseconds.
    pub retry_delay_us: u64,
}

impl Default for Replication {
    fn default() -> Replication {
        Replication {
            mode: Mode::Async,
            poll_interval_ms: 10,
            poll_events_max: 64,
            publisher_batch_events_max: 32,
            publish_interval_ms: 5,
            commit_attempts_max: 8,
            retry_delay_us: 1_000,
        }
    }
}

/// The interceptor mode, as written in scenario files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Append in the mutation's transaction.
    Sync,
    /// Outbox row and publisher.
    Async,
}

/// Run length and checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Run {
    /// Length of the fault phase (client traffic and faults), ms.
    pub fault_phase_ms: u64,
    /// After the fault phase, everything must converge (REP-6) within this, ms.
    pub converge_within_ms: u64,
    /// Seeds the default suite runs.
    pub seeds: u64,
    /// Properties checked (stable IDs); empty means all.
    pub properties: Vec<String>,
}

impl Default for Run {
    fn default() -> Run {
        Run { fault_phase_ms: 2_000, converge_within_ms: 2_000, seeds: 8, properties: Vec::new() }
    }
}

/// A scenario or model-configuration file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The field (dotted path), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// Reads and validates the scenario file at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        load_toml(path, Scenario::validate)
    }

    /// Parses and validates scenario `text`; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        parse_toml(path, text, Scenario::validate)
    }

    /// Checks relations that the types cannot: returns the field and why.
    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, message: &str| Err((field.to_string(), message.to_string()));
        if self.name.trim().is_empty() {
            return fail("name", "must not be empty");
        }
        if self.topology.workers == 0 {
            return fail("topology.workers", "must be at least 1");
        }
        if self.topology.hosts == 0 {
            return fail("topology.hosts", "must be at least 1");
        }
        if self.topology.worker_operations_max == 0 {
            return fail("topology.worker_operations_max", "must be at least 1");
        }
        if self.workload.tenants == 0 {
            return fail("workload.tenants", "must be at least 1");
        }
        if self.workload.vaults_per_tenant == 0 {
            return fail("workload.vaults_per_tenant", "must be at least 1");
        }
        if !(0.0..=4.0).contains(&self.workload.zipf_exponent) {
            return fail("workload.zipf_exponent", "must be between 0 and 4");
        }
        let weights = &self.workload.tenant_weights;
        if !weights.is_empty() && (weights.len() != self.workload.tenants as usize || weights.iter().all(|w| *w == 0)) {
            return fail("workload.tenant_weights", "one weight per tenant, at least one positive");
        }
        let mix = &self.workload.mix;
        if mix.create + mix.update + mix.delete + mix.remote_read + mix.host_read + mix.create_vault == 0 {
            return fail("workload.mix", "at least one weight must be positive");
        }
        if self.network.latency_min_us > self.network.latency_max_us {
            return fail("network.latency_min_us", "must not exceed network.latency_max_us");
        }
        if self.network.reorder_per_million >= 1_000_000 {
            return fail("network.reorder_per_million", "a chance per million must be below 1000000");
        }
        for link in &self.network.links {
            if !NODE_KINDS.contains(&link.from.as_str()) || !NODE_KINDS.contains(&link.to.as_str()) {
                let message = format!("a link joins two of {NODE_KINDS:?}, not `{}` and `{}`", link.from, link.to);
                return Err(("network.links".to_string(), message));
            }
            if link.latency_min_us > link.latency_max_us {
                return fail("network.links", "a link's latency_min_us must not exceed its latency_max_us");
            }
        }
        if self.network.store_latency_factor == 0 {
            return fail("network.store_latency_factor", "must be at least 1");
        }
        if self.network.drop_per_million >= 1_000_000 || self.network.duplicate_per_million >= 1_000_000 {
            return fail("network.drop_per_million", "a chance per million must be below 1000000");
        }
        if self.replication.poll_interval_ms == 0 || self.replication.publish_interval_ms == 0 {
            return fail("replication.poll_interval_ms", "intervals must be at least 1 ms");
        }
        if self.replication.poll_events_max == 0 || self.replication.publisher_batch_events_max == 0 {
            return fail("replication.poll_events_max", "batches must hold at least one event");
        }
        if self.replication.commit_attempts_max == 0 {
            return fail("replication.commit_attempts_max", "must be at least 1");
        }
        if self.run.fault_phase_ms == 0 {
            return fail("run.fault_phase_ms", "must be at least 1");
        }
        if let Some(unknown) = self.run.properties.iter().find(|id| model::PropertyId::parse(id).is_none()) {
            return Err(("run.properties".to_string(), format!("unknown property ID `{unknown}`")));
        }
        if let Some(quotas) = &self.quotas {
            quotas.validate(self.workload.tenants)?;
        }
        if let Some(migration) = &self.migration {
            migration.validate()?;
        }
        if let Some(sharding) = &self.sharding {
            if self.migration.is_some() {
                return fail("sharding", "a scenario migrates or shards, not both");
            }
            sharding.validate()?;
        }
        Ok(())
    }

    /// The properties to check (all when the file names none).
    pub fn properties(&self) -> Vec<model::PropertyId> {
        if self.run.properties.is_empty() {
            return model::PropertyId::ALL.to_vec();
        }
        self.run.properties.iter().filter_map(|id| model::PropertyId::parse(id)).collect()
    }
}

/// Reads a TOML spec file and checks it with `validate` (which names the
/// offending field); errors name the file, line and field.
pub(crate) fn load_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    validate: impl Fn(&T) -> Result<(), (String, String)>,
) -> Result<T, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|error| ScenarioError {
        path: path.to_path_buf(),
        line: None,
        field: None,
        message: format!("cannot read: {error}"),
    })?;
    parse_toml(path, &text, validate)
}

/// Parses TOML `text` (from `path`) and checks it with `validate`.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    validate: impl Fn(&T) -> Result<(), (String, String)>,
) -> Result<T, ScenarioError> {
    let value: T = toml::from_str(text).map_err(|error| {
        let line = error.span().map(|span| line_of(text, span.start));
        let message = error.message().trim().to_string();
        let field = field_in_message(&message).or_else(|| line.and_then(|line| field_at_line(text, line)));
        ScenarioError { path: path.to_path_buf(), line, field, message }
    })?;
    validate(&value).map_err(|(field, message)| ScenarioError {
        path: path.to_path_buf(),
        line: line_of_field_or_parent(text, &field),
        field: Some(field),
        message,
    })?;
    Ok(value)
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|byte| *byte == b'\n').count() + 1
}

/// The field a toml message names, as in "unknown field `x`" or "missing field `x`".
fn field_in_message(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    let named = message[..start].contains("field");
    named.then(|| message[start..end].to_string())
}

/// The key assigned on a 1-based line, qualified by its table header.
fn field_at_line(text: &str, line: usize) -> Option<String> {
    let mut table = String::new();
    for (index, content) in text.lines().enumerate() {
        let content = content.trim();
        if content.starts_with('[') {
            table = content.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
        if index + 1 == line {
            let key = content.split('=').next()?.trim();
            if key.is_empty() || key.starts_with('[') {
                return (!table.is_empty()).then_some(table);
            }
            return Some(if table.is_empty() { key.to_string() } else { format!("{table}.{key}") });
        }
    }
    None
}

/// The line of `field`, else of the nearest enclosing field the file assigns
/// (a key inside an inline table or an array of tables has no line of its own).
fn line_of_field_or_parent(text: &str, field: &str) -> Option<usize> {
    let mut field = field;
    loop {
        if let Some(line) = line_of_field(text, field) {
            return Some(line);
        }
        field = field.rsplit_once('.')?.0;
    }
}

/// The 1-based line where dotted `field` is assigned, if the file assigns it.
fn line_of_field(text: &str, field: &str) -> Option<usize> {
    let (table, key) = match field.rsplit_once('.') {
        Some((table, key)) => (table, key),
        None => ("", field),
    };
    let mut current = String::new();
    for (index, content) in text.lines().enumerate() {
        let content = content.trim();
        if content.starts_with('[') {
            current = content.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            if current == field {
                return Some(index + 1);
            }
            continue;
        }
        let assigned = content.split('=').next().map(str::trim);
        if current == table && assigned == Some(key) {
            return Some(index + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(Path::new("specs/scenarios/broken.toml"), text)
    }

    #[test]
    fn a_name_alone_is_a_scenario_with_defaults() {
        let scenario = parse("name = \"tiny\"\n").expect("valid");
        assert_eq!(scenario.name, "tiny");
        assert_eq!(scenario.topology, Topology::default());
        assert_eq!(scenario.properties().len(), model::PropertyId::ALL.len());
    }

    #[test]
    fn an_unknown_field_names_file_line_and_field() {
        let error = parse("name = \"x\"\n\n[topology]\nworkers = 2\nhostz = 3\n").unwrap_err();
        assert_eq!(error.line, Some(5), "{error}");
        assert_eq!(error.field.as_deref(), Some("hostz"), "{error}");
        let text = error.to_string();
        assert!(text.starts_with("specs/scenarios/broken.toml:5: field `hostz`"), "{text}");
    }

    #[test]
    fn a_wrong_type_names_the_line_and_field() {
        let error = parse("name = \"x\"\n[network]\nlatency_max_us = \"fast\"\n").unwrap_err();
        assert_eq!(error.line, Some(3), "{error}");
        assert_eq!(error.field.as_deref(), Some("network.latency_max_us"), "{error}");
    }

    #[test]
    fn a_missing_name_is_reported() {
        let error = parse("[topology]\nworkers = 1\n").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("name"), "{error}");
    }

    #[test]
    fn an_invalid_value_names_its_line() {
        let error = parse("name = \"x\"\n[topology]\nworkers = 0\n").unwrap_err();
        assert_eq!(error.line, Some(3), "{error}");
        assert_eq!(error.field.as_deref(), Some("topology.workers"), "{error}");
        let error = parse("name = \"x\"\n[topology]\nworker_operations_max = 0\n").unwrap_err();
        assert_eq!(error.line, Some(3), "{error}");
        assert_eq!(error.field.as_deref(), Some("topology.worker_operations_max"), "{error}");
        let error = parse("name = \"x\"\n[run]\nproperties = [\"REP-1\", \"REP-42\"]\n").unwrap_err();
        assert_eq!(error.line, Some(3), "{error}");
        assert!(error.message.contains("REP-42"), "{error}");
    }

    #[test]
    fn links_name_known_kinds() {
        let text = "name = \"x\"\n[network]\nlinks = [{ from = \"host\", to = \"toaster\", latency_min_us = 1, latency_max_us = 2 }]\n";
        let error = parse(text).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("network.links"), "{error}");
        assert_eq!(error.line, Some(3), "{error}");
        assert!(error.message.contains("toaster"), "{error}");
    }

    const QUOTAS: &str = "name = \"x\"\n[workload]\ntenants = 3\n[quotas]\n\
        global = { rate = 50, interval_ms = 1000, burst = 10, block_interval_ms = 200 }\n\
        service_capacity = { rate = 400, interval_ms = 1000 }\n\
        tenants = [{ tenant = 2, rate = 5, interval_ms = 100 }]\n";

    #[test]
    fn quotas_map_onto_the_quota_table() {
        let scenario = parse(QUOTAS).expect("valid");
        let config = scenario.quotas.as_ref().expect("quotas").table_config();
        let global =
            QuotaConfig::new(QuotaScope::Global, 50, 1_000_000_000).with_burst(10).with_block_interval_ns(200_000_000);
        let tenant = QuotaConfig::new(QuotaScope::Tenant(TenantId(2)), 5, 100_000_000);
        assert_eq!(config.quotas, vec![global, tenant]);
        assert_eq!(config.service_capacity, Some(BucketConfig::per_interval(400, 1_000_000_000)));
        assert_eq!(scenario.quotas.as_ref().map(|quotas| quotas.client_retries_max), Some(1));
        assert!(parse("name = \"x\"\n").expect("valid").quotas.is_none(), "no section, no quotas");
    }

    #[test]
    fn a_broken_quota_names_its_line_and_field() {
        let error = parse(&QUOTAS.replace("rate = 400", "rate = 0")).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("quotas.service_capacity.rate"), "{error}");
        assert_eq!(error.line, Some(6), "{error}");
        assert!(error.message.contains("must be positive"), "{error}");
        let text = "name = \"x\"\n[quotas]\n\n[quotas.global]\nrate = 5\ninterval_ms = 0\n";
        let error = parse(text).unwrap_err();
        assert_eq!((error.field.as_deref(), error.line), (Some("quotas.global.interval_ms"), Some(6)), "{error}");
        let error = parse(&QUOTAS.replace("tenant = 2", "tenant = 3")).unwrap_err();
        assert_eq!((error.field.as_deref(), error.line), (Some("quotas.tenants"), Some(7)), "{error}");
        let error = parse(&QUOTAS.replace("interval_ms = 100 }", "interval_ms = 100, burts = 1 }")).unwrap_err();
        assert_eq!((error.field.as_deref(), error.line), (Some("burts"), Some(7)), "{error}");
    }

    #[test]
    fn mode_is_lowercase_in_files() {
        let scenario = parse("name = \"x\"\n[replication]\nmode = \"sync\"\n").expect("valid");
        assert_eq!(scenario.replication.mode, Mode::Sync);
        assert!(parse("name = \"x\"\n[replication]\nmode = \"Sync\"\n").is_err());
    }
}
