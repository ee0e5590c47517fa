//! Driver 1: the world as a stateright `Model`, checked exhaustively.
//!
//! A model configuration (`specs/models/*.toml`) bounds a world: a few
//! workers and hosts, a script of client operations, budgets of faults (drops,
//! duplicates, crashes, partitions) and a time horizon. The checker explores
//! every interleaving of the same [`World`] and [`World::step`] the simulator
//! runs; no logic is copied.
//!
//! Time is abstract: any armed timer may fire, and firing moves the world's
//! time to its deadline. Deliveries happen at the current time. States whose
//! time passed the horizon are not expanded (`within_boundary`), which bounds
//! the endlessly re-armed poll timers.
//!
//! Properties: every REP property is an `always` over the violations the
//! world's property checker reported along the path. REP-6 (and the other
//! end-of-run checks) are evaluated at quiet states: once the script is done
//! and nothing is left to do, every host must equal the store. Liveness is
//! not stateright's `eventually` (unsound at boundaries) but "sometimes
//! converged" plus that check. Rare paths have `sometimes` properties so a
//! test proves the checker reaches them.
//!
//! A configuration with a `[migration]` checks a live migration: workers
//! fence their commits by the phase, the refinement uses the migration spec,
//! MIG-1 … MIG-7 are `always` properties, and rollbacks and bit flips are
//! budgeted faults. Its `start_phase` bounds the space: the world first runs
//! alone on one fixed schedule until the store commits that phase (the
//! operator's climb), and the search starts there.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use model::spec::SpecState;
use model::{Observation, PropertyId};
use serde::{Deserialize, Serialize};
use stateright::{Checker, HasDiscoveries, Model, Property};
use vault::bugzoo::Bugs;
use vault::host::HostConfig;
use vault::interceptor::InterceptorMode;
use vault::migration::{BACKFILL_BOOKMARK, BOOKMARK_DONE, VERIFY_BOOKMARK};
use vault::placement::PlacementPolicy;
use vault::store::{CommitOutcome, IdempotencyToken, Key, StoreReply, Value};
use vault::types::{Content, Lifecycle, SecretId, ShardId, ShardState, TenantId, VaultId};
use vault::worker::{Operation, RequestId, WorkerConfig};

use crate::driver::migration_config;
use crate::refinement::{abstract_state, abstract_state_after, Refinement, RefinementTracker};
use crate::scenario::{load_toml, parse_toml, Migration, Mode, PhaseName, ScenarioError, ScheduleEntry};
use crate::trace::TraceWriter;
use crate::world::{Action, MessageId, NodeId, Payload, ShardingConfig, StepReport, World, WorldConfig};

const NS_PER_MS: u64 = 1_000_000;

/// A bounded world to check exhaustively.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The configuration's name.
    pub name: String,
    /// What it exercises.
    #[serde(default)]
    pub description: String,
    /// Interceptor mode.
    pub mode: Mode,
    /// Control-plane workers.
    pub workers: u32,
    /// Data-plane hosts.
    pub hosts: u32,
    /// Tenancies; tenant `t` owns vault `t`, and secret `s` lives in vault `s % tenants`.
    pub tenants: u32,
    /// The clients' operations. A client sends its next operation once its
    /// previous one was answered; different clients run concurrently.
    pub script: Vec<ScriptStep>,
    /// Fault budgets.
    #[serde(default)]
    pub budgets: Budgets,
    /// Kinds of node that may crash: `worker`, `host`, `publisher`,
    /// `activator`, and with a migration `operator`, `backfiller`, `verifier`
    /// (a host's read path lives and dies with its host).
    #[serde(default = "default_crashable")]
    pub crashable: Vec<String>,
    /// States past this simulated time are not expanded, ms.
    pub horizon_ms: u64,
    /// Timings, ms.
    #[serde(default)]
    pub timings: Timings,
    /// A live migration of the cell onto its hosts; absent: the cell
    /// replicates from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<ModelMigration>,
    /// Sharding by vault: a cell per shard, routed reads through the base
    /// cell's hosts, and a shard added live; absent: one cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharding: Option<ModelSharding>,
    /// The unique states of the whole bounded space, without bugs. A full
    /// check whose count differs fails, so a change to the state space (a new
    /// message, a changed timer) shows in review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_unique_states: Option<usize>,
}

fn default_crashable() -> Vec<String> {
    vec!["host".to_string()]
}

/// A live migration in the checked world (see `vault::migration`): the cell
/// starts in phase `off` with `seeded_secrets` written before replication
/// existed (secret `s` in vault `s % tenants`), and the operator moves it
/// through the phases on `schedule`. Workers fence their commits by the
/// phase. Rollbacks and bit flips are fault budgets (`rollbacks`,
/// `bit_flips`) the checker may spend at any moment; the backfiller's and
/// verifier's request budgets are unlimited, and they, the operator and the
/// read paths wait `timings.request_timeout_ms` for a reply.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMigration {
    /// Secrets in the store at the start, without replication events.
    pub seeded_secrets: u32,
    /// Forward moves: from `at_ms` on, the operator's target is at least `phase`.
    pub schedule: Vec<ScheduleEntry>,
    /// Keys per backfill page (its bookmark interval).
    #[serde(default = "one_key")]
    pub backfill_page_keys: usize,
    /// Keys per verify page.
    #[serde(default = "one_key")]
    pub verify_page_keys: usize,
    /// Each host's phase poll interval, ms, by host index; the last entry
    /// repeats for further hosts.
    #[serde(default = "default_phase_poll_ms")]
    pub phase_poll_ms: Vec<u64>,
    /// Where exploring starts: the checker first runs the world alone (no
    /// client, no fault) on one fixed schedule, each message delivered in
    /// send order and otherwise the earliest timer fired, until the store
    /// commits this phase; the configuration is checked from that state on.
    /// Absent: from phase `off`, every interleaving of the operator's climb.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_phase: Option<PhaseName>,
}

fn one_key() -> usize {
    1
}

fn default_phase_poll_ms() -> Vec<u64> {
    vec![10]
}

impl ModelMigration {
    fn validate(&self, request_timeout_ms: u64) -> Result<(), (String, String)> {
        self.as_scenario(request_timeout_ms).validate()?;
        match self.start_phase {
            Some(start) if !self.reaches(start) => {
                Err(("migration.start_phase".to_string(), format!("the schedule never moves the cell to {start:?}")))
            }
            _ => Ok(()),
        }
    }

    /// The same migration as a scenario's `[migration]` section, so the
    /// checked world migrates exactly as a simulated one would.
    fn as_scenario(&self, request_timeout_ms: u64) -> Migration {
        Migration {
            seeded_secrets: self.seeded_secrets,
            schedule: self.schedule.clone(),
            backfill_page_keys: self.backfill_page_keys,
            backfill_rate_per_second: 0,
            verify_page_keys: self.verify_page_keys,
            verify_rate_per_second: 0,
            phase_poll_ms: self.phase_poll_ms.clone(),
            rollback_interval_ms: 0,
            bit_flip_interval_ms: 0,
            request_timeout_ms,
        }
    }

    /// Whether the schedule moves the cell to `phase` (or beyond).
    pub fn reaches(&self, phase: PhaseName) -> bool {
        self.schedule.iter().any(|entry| entry.phase >= phase)
    }
}

/// Sharding in the checked world (see `vault::router`): `shards` cells of
/// `hosts` hosts each, vault `v` (of tenancy `v`) placed on shard
/// `v mod shards`, every shard `Ready`. Base-cell hosts replicate the routing
/// rows and route `routed-read` steps; workers place `create-vault` steps
/// (least loaded); an `add-shard` step tells the operator to add shard
/// number `shards` live. RTE-1 … RTE-4 are `always` properties. RTE-5 is
/// not judged: any armed timer may fire before any delivery here, so a
/// router's lookup timing out is a fault-free path, and RTE-5 holds only
/// where store outages are the only way to time out.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSharding {
    /// Shards at the start, the base shard included.
    pub shards: u32,
    /// How long a router waits on base-store lookups for one request, and
    /// the shard-adding operator for a store reply (a quarter of it before
    /// it reads again), ms.
    pub route_timeout_ms: u64,
    /// Requests a router lets wait on lookups at once.
    #[serde(default = "default_lookups_max")]
    pub lookups_max: usize,
    /// Where exploring starts: `true`, the checker first runs the world
    /// alone (no client, no fault) on one fixed schedule, each message
    /// delivered in send order and otherwise the earliest timer fired, until
    /// every base-cell host has replicated every routing row of the start
    /// (each shard's registry row and each vault's route) and nothing is in
    /// flight; `false`: from time zero, the hosts knowing no route yet.
    #[serde(default)]
    pub settled: bool,
    /// A shard is being added when exploring starts: after the warm-up of
    /// `settled`, the operator is told to add shard number `shards`, and the
    /// world runs on alone the same way until the base store has registered
    /// it `Provisioning` and nothing is in flight (its cell is built, no base
    /// host has the row yet, it is not ready). The script then has no
    /// `add-shard` step. What the search explores is the rest of the
    /// addition: the row's replication and the `Ready` commit.
    #[serde(default)]
    pub shard_registered: bool,
}

fn default_lookups_max() -> usize {
    1
}

impl ModelSharding {
    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, message: String| Err((format!("sharding.{field}"), message));
        if !(1..vault::placement::SHARDS_MAX).contains(&self.shards) {
            let most = vault::placement::SHARDS_MAX - 1;
            return fail("shards", format!("between 1 and {most} (room for an added shard)"));
        }
        if self.route_timeout_ms == 0 {
            return fail("route_timeout_ms", "must be at least 1 ms".into());
        }
        if self.lookups_max == 0 {
            return fail("lookups_max", "must be at least 1".into());
        }
        if self.shard_registered && !self.settled {
            return fail("shard_registered", "starts from settled routes: set `settled = true`".into());
        }
        Ok(())
    }
}

/// One client operation of a script.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptStep {
    /// The client (its steps run in order).
    pub client: u32,
    /// `create`, `update`, `delete`, `schedule-deletion`, `remote-read`,
    /// `host-read`; with a `[sharding]` also `routed-read` (a read through a
    /// base-cell host's router), `create-vault` and `add-shard` (the
    /// operator is told to add a shard; at most one, answered once told).
    pub op: String,
    /// The secret (not for `create-vault` and `add-shard`).
    #[serde(default)]
    pub secret: u32,
    /// The worker it is sent to (not for `host-read`).
    #[serde(default)]
    pub worker: u32,
    /// The host it is sent to (`host-read` and `routed-read` only; a
    /// routed read goes to a base-cell host, `0 .. hosts`).
    #[serde(default)]
    pub host: u32,
    /// The caller's tenancy (`routed-read` only); absent: the secret's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<u32>,
    /// The vault to create (`create-vault` only): a new one, numbered from
    /// `tenants` on, owned by tenancy `vault mod tenants`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<u32>,
}

impl ScriptStep {
    /// Whether the step acts on its `secret`.
    fn names_secret(&self) -> bool {
        !matches!(self.op.as_str(), "create-vault" | "add-shard")
    }

    /// Whether the step writes (a read or the operator's command does not).
    fn writes(&self) -> bool {
        !matches!(self.op.as_str(), "remote-read" | "host-read" | "routed-read" | "add-shard")
    }
}

/// How many faults of each kind the checker may inject along one path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budgets {
    /// Lost messages.
    pub drops: u8,
    /// Duplicated messages.
    pub duplicates: u8,
    /// Node crashes.
    pub crashes: u8,
    /// Node isolations.
    pub partitions: u8,
    /// Rollback commands to the migration operator (migration only).
    #[serde(skip_serializing_if = "is_zero")]
    pub rollbacks: u8,
    /// Flipped bits in hosts' local entries (migration only).
    #[serde(skip_serializing_if = "is_zero")]
    pub bit_flips: u8,
}

fn is_zero(count: &u8) -> bool {
    *count == 0
}

/// Timer intervals of the checked world, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timings {
    /// Host and activator poll interval.
    pub poll_interval_ms: u64,
    /// Publisher round interval.
    pub publish_interval_ms: u64,
    /// How long a worker, host, publisher or activator waits for a reply.
    pub request_timeout_ms: u64,
    /// Worker backoff after a conflict.
    pub retry_delay_ms: u64,
    /// Worker attempts per operation.
    pub commit_attempts_max: u32,
    /// Activator poll interval, when not `poll_interval_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activator_poll_interval_ms: Option<u64>,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            poll_interval_ms: 10,
            publish_interval_ms: 10,
            request_timeout_ms: 30,
            retry_delay_ms: 5,
            commit_attempts_max: 3,
            activator_poll_interval_ms: None,
        }
    }
}

impl ModelConfig {
    /// Reads and validates a model configuration file.
    pub fn load(path: &Path) -> Result<ModelConfig, ScenarioError> {
        load_toml(path, ModelConfig::validate)
    }

    /// Parses and validates model configuration `text`; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<ModelConfig, ScenarioError> {
        parse_toml(path, text, ModelConfig::validate)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, message: String| Err((field.to_string(), message));
        if self.workers == 0 || self.hosts == 0 || self.tenants == 0 {
            return fail("workers", "workers, hosts and tenants must each be at least 1".into());
        }
        for step in &self.script {
            if operation_kinds().iter().all(|kind| *kind != step.op) {
                return fail("script", format!("unknown op `{}`; one of {:?}", step.op, operation_kinds()));
            }
            if step.worker >= self.workers || step.host >= self.hosts {
                return fail(
                    "script",
                    format!("step names worker {} or host {} beyond the topology", step.worker, step.host),
                );
            }
            self.validate_sharded_step(step)?;
        }
        let registered = self.sharding.as_ref().is_some_and(|sharding| sharding.shard_registered);
        let additions = self.script.iter().filter(|step| step.op == "add-shard").count() + usize::from(registered);
        if additions > 1 {
            return fail(
                "script",
                "at most one `add-shard` step, and none with `shard_registered`: the world adds one shard".into(),
            );
        }
        let mut kinds = vec!["worker", "host", "publisher", "activator"];
        if self.migration.is_some() {
            kinds.extend(["operator", "backfiller", "verifier"]);
        }
        if self.adds_shard() {
            kinds.push("shard-adder");
        }
        if let Some(kind) = self.crashable.iter().find(|kind| !kinds.contains(&kind.as_str())) {
            return fail("crashable", format!("unknown kind `{kind}`; one of {kinds:?}"));
        }
        if let Some(sharding) = &self.sharding {
            if self.migration.is_some() {
                return fail("sharding", "a configuration migrates or shards, not both".into());
            }
            sharding.validate()?;
        }
        match &self.migration {
            Some(migration) => migration.validate(self.timings.request_timeout_ms)?,
            None if self.budgets.rollbacks > 0 || self.budgets.bit_flips > 0 => {
                return fail("budgets", "rollbacks and bit flips need a `[migration]`".into());
            }
            None => {}
        }
        if self.horizon_ms == 0 {
            return fail("horizon_ms", "must be at least 1".into());
        }
        let timings = &self.timings;
        if timings.poll_interval_ms == 0
            || timings.publish_interval_ms == 0
            || timings.request_timeout_ms == 0
            || timings.activator_poll_interval_ms == Some(0)
        {
            return fail("timings", "intervals and timeouts must be at least 1 ms".into());
        }
        if timings.commit_attempts_max == 0 {
            return fail("timings.commit_attempts_max", "must be at least 1".into());
        }
        Ok(())
    }

    /// The checks of a script step that only a sharded world runs.
    fn validate_sharded_step(&self, step: &ScriptStep) -> Result<(), (String, String)> {
        let fail = |message: String| Err(("script".to_string(), message));
        let sharded = matches!(step.op.as_str(), "routed-read" | "create-vault" | "add-shard");
        if sharded && self.sharding.is_none() {
            return fail(format!("op `{}` needs a `[sharding]` section", step.op));
        }
        if step.caller.is_some() && step.op != "routed-read" {
            return fail(format!("`caller` is for `routed-read` steps, not `{}`", step.op));
        }
        if let Some(caller) = step.caller.filter(|caller| *caller >= self.tenants) {
            return fail(format!("caller {caller} is not one of the {} tenancies", self.tenants));
        }
        match (step.op.as_str(), step.vault) {
            ("create-vault", None) => fail("a `create-vault` step names its `vault`".into()),
            ("create-vault", Some(vault)) if vault < self.tenants => {
                fail(format!("vault {vault} exists from the start (vaults 0 .. {}); create a new one", self.tenants))
            }
            ("create-vault", Some(_)) | (_, None) => Ok(()),
            (op, Some(_)) => fail(format!("`vault` is for `create-vault` steps, not `{op}`")),
        }
    }

    /// Whether a shard is added live (by the script or before exploring).
    pub fn adds_shard(&self) -> bool {
        self.sharding
            .as_ref()
            .is_some_and(|sharding| sharding.shard_registered || self.script.iter().any(|step| step.op == "add-shard"))
    }

    /// The world the checker starts from.
    pub fn world_config(&self, bugs: &Bugs) -> WorldConfig {
        let mode = match self.mode {
            Mode::Sync => InterceptorMode::Sync,
            Mode::Async => InterceptorMode::Async,
        };
        let timings = &self.timings;
        let worker = WorkerConfig {
            mode,
            commit_attempts_max: timings.commit_attempts_max,
            retry_delay_ns: timings.retry_delay_ms * NS_PER_MS,
            retry_delay_max_ns: timings.retry_delay_ms * NS_PER_MS * 4,
            request_timeout_ns: timings.request_timeout_ms * NS_PER_MS,
            queue_requests_max: 8,
            operations_max: 1,
            phase_fenced: self.migration.is_some(),
            placer: None,
        };
        let host = HostConfig {
            poll_interval_ns: timings.poll_interval_ms * NS_PER_MS,
            poll_events_max: 8,
            pending_events_max: 16,
            request_timeout_ns: timings.request_timeout_ms * NS_PER_MS,
            replicate_routes: false,
        };
        WorldConfig {
            workers: self.workers,
            hosts: self.hosts,
            vaults: (0..self.tenants).map(|tenant| (VaultId(tenant), TenantId(tenant))).collect(),
            mode,
            worker,
            host,
            publisher_batch_events_max: 4,
            publish_interval_ns: timings.publish_interval_ms * NS_PER_MS,
            activator_poll_interval_ns: timings.activator_poll_interval_ms.unwrap_or(timings.poll_interval_ms)
                * NS_PER_MS,
            bugs: bugs.clone(),
            migration: self
                .migration
                .as_ref()
                .map(|migration| migration_config(&migration.as_scenario(timings.request_timeout_ms), self.hosts)),
            sharding: self.sharding.as_ref().map(|sharding| ShardingConfig {
                shards: sharding.shards,
                policy: PlacementPolicy::LeastLoaded,
                route_timeout_ns: sharding.route_timeout_ms * NS_PER_MS,
                lookups_max: sharding.lookups_max,
                // RTE-5 judges nothing here (see `ModelSharding`).
                outages_only: false,
                add_shard: self.adds_shard(),
            }),
        }
    }

    /// Every secret the configuration names: the seeded ones and the script's.
    pub fn secrets(&self) -> BTreeSet<u32> {
        let seeded = self.migration.as_ref().map_or(0, |migration| migration.seeded_secrets);
        let named = self.script.iter().filter(|step| step.names_secret()).map(|step| step.secret);
        (0..seeded).chain(named).collect()
    }

    fn operation(&self, index: usize) -> Option<Operation> {
        let step = &self.script[index];
        let secret = SecretId(step.secret);
        let content = Content::new(format!("{}:{index}", step.secret).as_bytes());
        Some(match step.op.as_str() {
            "create" => {
                let vault = VaultId(step.secret % self.tenants);
                Operation::CreateSecret { secret, vault, content, token: IdempotencyToken(index as u64) }
            }
            "update" => Operation::UpdateSecret { secret, content, expected: None },
            "delete" => Operation::DeleteSecret { secret, expected: None },
            "schedule-deletion" => Operation::ScheduleDeletion { secret },
            "remote-read" => Operation::ReadSecret { secret },
            "create-vault" => {
                let vault = step.vault.expect("a validated `create-vault` names its vault");
                Operation::CreateVault { vault: VaultId(vault), tenant: TenantId(vault % self.tenants) }
            }
            _ => return None, // A host read or the operator's command is not a worker operation.
        })
    }
}

/// Whether every base-cell host has replicated the routing rows of the
/// start: each shard's registry row and the route of each of `vaults`.
fn routes_settled(world: &World, vaults: &[VaultId]) -> bool {
    world.hosts().all(|(_, up, durable)| {
        let routes = durable.routes();
        up && (0..world.shard_count()).all(|shard| routes.shard_state(ShardId(shard)).is_some())
            && vaults.iter().all(|vault| routes.shard_of(*vault).is_some())
    })
}

fn operation_kinds() -> [&'static str; 9] {
    [
        "create",
        "update",
        "delete",
        "schedule-deletion",
        "remote-read",
        "host-read",
        "routed-read",
        "create-vault",
        "add-shard",
    ]
}

/// Rare paths the checker must prove it reaches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Marks {
    /// A commit was refused with a conflict.
    pub conflict: bool,
    /// Two or more conflicts along one path (a conflict storm).
    pub conflict_storm: bool,
    /// A duplicated message was delivered and absorbed.
    pub duplicate_absorbed: bool,
    /// A host crashed after applying events but before its report reached the activator.
    pub crash_between_apply_and_report: bool,
    /// A backfill page was refused because a live update committed between
    /// its scan and its commit (it is scanned again).
    pub backfill_raced_update: bool,
    /// Likewise, a live delete.
    pub backfill_raced_delete: bool,
    /// A committed backfill page skipped a secret written live since `t1`.
    pub backfill_skipped_live: bool,
    /// A committed verify page counted a host behind the store.
    pub verify_lag: bool,
    /// A host answered the verifier's digest with an older version of a
    /// secret than the store held: a live write not yet replicated to it.
    pub digest_behind_write: bool,
    /// The verifier repaired a damaged host entry.
    pub verify_repair: bool,
    /// A read in switchover fell back to the store: the secret was not yet
    /// applied on the host (a read racing replication).
    pub fallback_missing: bool,
    /// A read in switchover fell back to the store: the host held the secret
    /// still `Creating` (a read racing activation).
    pub fallback_not_active: bool,
    /// A read in switchover was answered from the host's local store.
    pub local_read: bool,
    /// The stored phase went back.
    pub rollback_stored: bool,
    /// The backfiller or the verifier crashed after its walk committed a
    /// page and before it finished: its successor must resume from the bookmark.
    pub job_crashed_mid_walk: bool,
    /// A router lacked a routing row and read it from the base store: a
    /// routed read beat the row's replication to its host.
    pub route_looked_up: bool,
    /// A routed read was routed from its host's replicated table on arrival:
    /// the row's replication beat the read.
    pub route_from_table: bool,
    /// A vault was placed while the shard being added was registered but
    /// not yet ready: the placement raced the shard's readiness (and must
    /// not have chosen it).
    pub placed_before_ready: bool,
    /// A vault was placed on the shard added live.
    pub placed_on_added_shard: bool,
}

/// A state of the checked world. Equality and hashing leave out
/// `abstraction`, a function of `world` kept only to save recomputing it.
#[derive(Clone, Debug)]
pub struct CheckState {
    /// The world.
    pub world: World,
    /// Script steps issued, by index.
    pub issued: Vec<bool>,
    /// Fault budgets left.
    pub budgets: Budgets,
    /// Properties violated along the path.
    pub violated: BTreeSet<PropertyId>,
    /// Copies made by `Duplicate`, not yet delivered.
    pub copies: BTreeSet<MessageId>,
    /// Rare paths reached.
    pub marks: Marks,
    /// The world's abstraction ([`abstract_state`]), for the refinement check
    /// of each step out of this state.
    abstraction: Arc<SpecState>,
}

impl CheckState {
    fn key(&self) -> (&World, &Vec<bool>, &Budgets, &BTreeSet<PropertyId>, &BTreeSet<MessageId>, &Marks) {
        (&self.world, &self.issued, &self.budgets, &self.violated, &self.copies, &self.marks)
    }
}

impl PartialEq for CheckState {
    fn eq(&self, other: &CheckState) -> bool {
        self.key() == other.key()
    }
}

impl Eq for CheckState {}

impl Hash for CheckState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl CheckState {
    /// Whether every script step was issued and answered.
    pub fn script_done(&self) -> bool {
        self.issued.iter().enumerate().all(|(index, issued)| *issued && self.answered(index))
    }

    /// Whether issued step `index` was answered. A step with no request
    /// record (the operator's `add-shard`) is done once issued.
    fn answered(&self, index: usize) -> bool {
        let request = RequestId(index as u64);
        self.world.history().get(&request).is_none_or(|record| record.answered.is_some())
    }
}

/// The checked model: a configuration and its starting world.
#[derive(Clone, Debug)]
pub struct CheckModel {
    /// The configuration.
    pub config: ModelConfig,
    /// Bug-zoo variants of the code being checked.
    pub bugs: Bugs,
    initial: World,
    /// Properties the warm-up to the migration's `start_phase` violated.
    initial_violations: BTreeSet<PropertyId>,
    refinement: Refinement,
}

impl CheckModel {
    /// The model of `config` running the real code with `bugs` switched on.
    pub fn new(config: ModelConfig, bugs: Bugs) -> CheckModel {
        let initial = World::new(config.world_config(&bugs));
        let placeholder = Refinement::new(initial.config().mode, [], 0);
        let initial_violations = BTreeSet::new();
        let mut model = CheckModel { config, bugs, initial, initial_violations, refinement: placeholder };
        model.refinement = model.refinement();
        let start = model.config.migration.as_ref().and_then(|migration| migration.start_phase);
        if let Some(start) = start {
            let phase = start.phase();
            model.warm_up(&format!("{phase:?}"), |world| world.stored_phase().phase == phase);
        }
        let sharding = model.config.sharding.clone();
        if sharding.as_ref().is_some_and(|sharding| sharding.settled) {
            let vaults: Vec<VaultId> = model.initial.config().vaults.iter().map(|(vault, _)| *vault).collect();
            model.warm_up("settled routes", |world| routes_settled(world, &vaults));
        }
        if let Some(sharding) = sharding.filter(|sharding| sharding.shard_registered) {
            let add = Action::AddShard { at: model.initial.now() };
            let report = model.initial.step(&add);
            model.initial_violations.extend(report.violations.iter().map(|violation| violation.property));
            let added = Key::Shard(ShardId(sharding.shards));
            model.warm_up("the added shard registered", |world| world.store().read(&added).value.is_some());
        }
        model
    }

    /// Runs the initial world alone on one fixed schedule (each message
    /// delivered in send order, otherwise the earliest timer fired) until
    /// `reached` (the store commits the start phase: the job of the phase
    /// has not run yet; or the routes settled) and then, delivering only,
    /// until no message is in flight (the last round trip). Checks every
    /// step as the search does; `goal` names the goal in a panic.
    fn warm_up(&mut self, goal: &str, reached: impl Fn(&World) -> bool) {
        const STEPS_MAX: usize = 10_000;
        let mut tracker = RefinementTracker::full(self.refinement(), &self.initial);
        for _ in 0..STEPS_MAX {
            let reached = reached(&self.initial);
            if reached && self.initial.in_flight().is_empty() {
                return;
            }
            let actions = self.initial.actions();
            let deliver = actions.iter().find(|action| matches!(action, Action::Deliver { .. }));
            let timer =
                actions.iter().filter(|action| matches!(action, Action::FireTimer { .. })).min_by_key(|action| {
                    match action {
                        Action::FireTimer { at, .. } => *at,
                        _ => unreachable!("only timers"),
                    }
                });
            let timer = timer.filter(|_| !reached);
            let action = deliver.or(timer).expect("a polling world always has a message or a timer").clone();
            let mut report = self.initial.step(&action);
            tracker.on_step(&self.initial, &action, &mut report);
            self.initial_violations.extend(report.violations.iter().map(|violation| violation.property));
        }
        panic!("{}: the warm-up did not reach {goal} in {STEPS_MAX} steps", self.config.name);
    }

    /// The refinement check of this configuration: secret `s` lives in
    /// tenancy `s % tenants`.
    pub fn refinement(&self) -> Refinement {
        let tenants = self.config.tenants;
        let mode = self.initial.config().mode;
        let secrets = self.config.secrets().into_iter().map(|secret| (secret, secret % tenants));
        let refinement = Refinement::new(mode, secrets, self.config.hosts);
        if self.config.migration.is_some() {
            refinement.with_migration()
        } else {
            refinement
        }
    }

    /// The trace of a path (the actions from the initial state), in the
    /// simulator's format: it replays with `vaultsim replay` and renders with
    /// `vaultsim render`. Ends with the end-of-run check when the path ends
    /// with the script done and the world quiet.
    pub fn trace(&self, actions: &[Action]) -> Vec<String> {
        let mut state = self.initial_state();
        let mut tracker = RefinementTracker::full(self.refinement(), &state.world);
        let mut writer = TraceWriter::for_model(&self.config, &self.bugs);
        for action in actions {
            let mut report = state.world.step(action);
            tracker.on_step(&state.world, action, &mut report);
            writer.step(&state.world, action, &report);
            if let Some(index) = self.step_issued(action) {
                state.issued[index] = true;
            }
        }
        if state.script_done() && state.world.is_quiet() {
            let mut violations = state.world.check_quiescent();
            violations.extend(tracker.end_check(&state.world));
            writer.finish(&state.world, true, &violations);
        }
        writer.into_lines()
    }

    /// The starting state.
    pub fn initial_state(&self) -> CheckState {
        CheckState {
            world: self.initial.clone(),
            issued: vec![false; self.config.script.len()],
            budgets: self.config.budgets.clone(),
            violated: self.initial_violations.clone(),
            copies: BTreeSet::new(),
            marks: Marks::default(),
            abstraction: Arc::new(abstract_state(&self.initial)),
        }
    }

    /// The script steps that may be issued now: each client's first unissued
    /// step, once its previous step was answered.
    fn ready_steps(&self, state: &CheckState) -> Vec<usize> {
        let clients: BTreeSet<u32> = self.config.script.iter().map(|step| step.client).collect();
        let mut ready = Vec::new();
        for client in clients {
            let mine: Vec<usize> =
                (0..self.config.script.len()).filter(|index| self.config.script[*index].client == client).collect();
            let Some(position) = mine.iter().position(|index| !state.issued[*index]) else { continue };
            let previous_answered = position == 0 || state.answered(mine[position - 1]);
            if previous_answered {
                ready.push(mine[position]);
            }
        }
        ready
    }

    fn issue(&self, state: &CheckState, index: usize) -> Action {
        let step = &self.config.script[index];
        let request = RequestId(index as u64);
        let at = state.world.now();
        let secret = SecretId(step.secret);
        match self.config.operation(index) {
            Some(operation) => Action::Submit { request, worker: step.worker, operation, at },
            None if step.op == "add-shard" => Action::AddShard { at },
            None if step.op == "routed-read" => {
                let caller = TenantId(step.caller.unwrap_or(step.secret % self.config.tenants));
                Action::RoutedRead { request, host: step.host, caller, secret, at }
            }
            None => Action::Read { request, host: step.host, secret, at },
        }
    }

    /// The script step `action` issues, if it is a client's or the operator's command.
    fn step_issued(&self, action: &Action) -> Option<usize> {
        match action {
            Action::Submit { request, .. } | Action::Read { request, .. } | Action::RoutedRead { request, .. } => {
                Some(request.0 as usize)
            }
            Action::AddShard { .. } => self.config.script.iter().position(|step| step.op == "add-shard"),
            _ => None,
        }
    }

    fn crashable(&self, node: NodeId) -> bool {
        let kind = match node {
            NodeId::Worker(_) => "worker",
            NodeId::Host(_) => "host",
            NodeId::Publisher(..) => "publisher",
            NodeId::Activator(_) => "activator",
            NodeId::Operator => "operator",
            NodeId::Backfiller => "backfiller",
            NodeId::Verifier => "verifier",
            NodeId::ShardAdder => "shard-adder",
            NodeId::Reader(_) | NodeId::Router(_) | NodeId::Store(_) | NodeId::Client => return false,
        };
        self.config.crashable.iter().any(|crashable| crashable == kind)
    }

    fn allowed(&self, state: &CheckState, action: &Action) -> bool {
        let budgets = &state.budgets;
        match action {
            Action::Drop(_) => budgets.drops > 0,
            Action::Duplicate(id) => budgets.duplicates > 0 && !state.copies.contains(id),
            Action::Crash(node) => budgets.crashes > 0 && self.crashable(*node),
            Action::Isolate(_) => budgets.partitions > 0,
            _ => true,
        }
    }

    /// The migration's faults that may be injected now: a rollback while the
    /// operator is up, a bit flip in any live host's entry that has content.
    fn migration_faults(&self, state: &CheckState, actions: &mut Vec<Action>) {
        if self.config.migration.is_none() {
            return;
        }
        if state.budgets.rollbacks > 0 && state.world.is_up(NodeId::Operator) {
            actions.push(Action::Rollback { at: state.world.now() });
        }
        if state.budgets.bit_flips > 0 {
            for (host, _, durable) in state.world.hosts().filter(|(_, up, _)| *up) {
                let damageable = durable.records().filter(|(_, record)| record.content.is_some());
                actions.extend(damageable.map(|(secret, _)| Action::Corrupt { host, secret }));
            }
        }
    }

    fn mark(state: &mut CheckState, action: &Action, before: &World, report: &StepReport) {
        let conflicts = state.world.worker_stats().conflicts;
        state.marks.conflict |= conflicts >= 1;
        state.marks.conflict_storm |= conflicts >= 2;
        if state.world.config().migration.is_some() {
            CheckModel::mark_migration(state, before, report);
        }
        if state.world.config().sharding.is_some() {
            CheckModel::mark_sharding(state, action, before, report);
        }
        match action {
            Action::Deliver { message, .. } if state.copies.remove(message) => {
                state.marks.duplicate_absorbed |= state.violated.is_empty();
            }
            Action::Crash(node @ (NodeId::Backfiller | NodeId::Verifier)) => {
                let bookmark = if *node == NodeId::Backfiller { BACKFILL_BOOKMARK } else { VERIFY_BOOKMARK };
                let mid_walk = matches!(
                    before.store().read(&Key::Bookmark(bookmark)).value,
                    Some(Value::Bookmark(position)) if position != BOOKMARK_DONE
                );
                state.marks.job_crashed_mid_walk |= mid_walk;
            }
            Action::Crash(NodeId::Host(index)) => {
                let report_in_flight = before.in_flight().values().any(|message| {
                    message.from == NodeId::Host(*index) && matches!(message.payload, Payload::Applied { .. })
                });
                state.marks.crash_between_apply_and_report |= report_in_flight;
            }
            _ => {}
        }
    }

    /// Marks the routing races: how a routed read found its route, and where
    /// a placement went while a shard was being added.
    fn mark_sharding(state: &mut CheckState, action: &Action, before: &World, report: &StepReport) {
        let marks = &mut state.marks;
        marks.route_looked_up |= state.world.router_stats().iter().any(|(_, stats)| stats.lookups > 0);
        let arrived = match action {
            Action::Deliver { message, .. } => before
                .in_flight()
                .get(message)
                .is_some_and(|message| matches!(message.payload, Payload::RoutedRead { .. })),
            _ => false,
        };
        let routed = report.observations.iter().any(|observation| matches!(observation, Observation::Routed { .. }));
        marks.route_from_table |= arrived && routed;
        let Some(sharding) = state.world.config().sharding.as_ref().filter(|sharding| sharding.add_shard) else {
            return;
        };
        let added = sharding.shards;
        for observation in &report.observations {
            if let Observation::Placed { shard, .. } = observation {
                let registered = match before.store().read(&Key::Shard(ShardId(added))).value {
                    Some(Value::Shard(record)) => Some(record.state),
                    _ => None,
                };
                marks.placed_before_ready |= registered.is_some_and(|state| state != ShardState::Ready);
                marks.placed_on_added_shard |= *shard == added;
            }
        }
    }

    /// Marks the migration's races from the jobs' and read paths' counters
    /// (a crashed job's counters are gone, but its marks stay).
    fn mark_migration(state: &mut CheckState, before: &World, report: &StepReport) {
        let marks = &mut state.marks;
        if let Some(backfill) = state.world.backfiller() {
            marks.backfill_skipped_live |= backfill.stats().skipped_live > 0;
        }
        let store = state.world.store();
        let remote_version = |secret: SecretId| match store.read(&Key::Secret(secret)).value {
            Some(Value::Secret(record)) => Some(record.version),
            _ => None,
        };
        for message in report.sent.iter().filter_map(|id| state.world.in_flight().get(id)) {
            match &message.payload {
                // A host's digest, as it answered: older than the store holds.
                Payload::DigestReply { digest, .. } => {
                    marks.digest_behind_write |= digest.iter().any(|(secret, entry)| {
                        entry.is_some_and(|entry| remote_version(*secret).is_some_and(|remote| entry.version < remote))
                    });
                }
                // A backfill page refused on a secret: the store now holds the
                // live write that moved it (the page committed nothing).
                Payload::StoreReply {
                    reply: StoreReply::Commit(CommitOutcome::Conflict { key: key @ Key::Secret(_) }),
                    ..
                } if message.to == NodeId::Backfiller => {
                    let deleted = match store.read(key).value {
                        Some(Value::Secret(record)) => record.lifecycle == Lifecycle::Deleted,
                        _ => true,
                    };
                    marks.backfill_raced_delete |= deleted;
                    marks.backfill_raced_update |= !deleted;
                }
                _ => {}
            }
        }
        if let Some(verify) = state.world.verifier() {
            let stats = verify.stats();
            marks.verify_lag |= stats.lagging > 0;
            marks.verify_repair |= stats.repairs > 0;
        }
        let reads = state.world.read_stats();
        marks.fallback_missing |= reads.fallback_missing > 0;
        marks.fallback_not_active |= reads.fallback_not_active > 0;
        marks.local_read |= reads.local > 0;
        marks.rollback_stored |= state.world.stored_phase().phase < before.stored_phase().phase;
    }
}

impl Model for CheckModel {
    type State = CheckState;
    type Action = Action;

    fn init_states(&self) -> Vec<CheckState> {
        vec![self.initial_state()]
    }

    fn actions(&self, state: &CheckState, actions: &mut Vec<Action>) {
        for index in self.ready_steps(state) {
            actions.push(self.issue(state, index));
        }
        actions.extend(state.world.actions().into_iter().filter(|action| self.allowed(state, action)));
        self.migration_faults(state, actions);
    }

    fn next_state(&self, last: &CheckState, action: Action) -> Option<CheckState> {
        let mut next = last.clone();
        if let Some(index) = self.step_issued(&action) {
            next.issued[index] = true;
        }
        match &action {
            Action::Drop(_) => next.budgets.drops -= 1,
            Action::Duplicate(_) => next.budgets.duplicates -= 1,
            Action::Crash(_) => next.budgets.crashes -= 1,
            Action::Isolate(_) => next.budgets.partitions -= 1,
            Action::Rollback { .. } => next.budgets.rollbacks -= 1,
            Action::Corrupt { .. } => next.budgets.bit_flips -= 1,
            _ => {}
        }
        let report = next.world.step(&action);
        // The abstraction of the whole world, recomputed wherever the step
        // changed it (not only where observations say), so a change no
        // observation reports is a REF-1 at its step. Unchanged: a stutter.
        // A sharded world is not refined: the replication spec has one log
        // (REF-1 is not judged there, as in the simulator).
        let refined = self.config.sharding.is_none();
        let abstraction = if refined {
            abstract_state_after(&last.abstraction, &last.world, &next.world)
        } else {
            Arc::clone(&last.abstraction)
        };
        if !Arc::ptr_eq(&abstraction, &last.abstraction) {
            if let Err(violation) = self.refinement.check(&last.abstraction, &abstraction) {
                next.violated.insert(violation.property);
            }
            next.abstraction = abstraction;
        }
        if matches!(action, Action::Duplicate(_)) {
            next.copies.extend(report.sent.iter().copied());
        }
        next.violated.extend(report.violations.iter().map(|violation| violation.property));
        if next.script_done() && next.world.is_quiet() {
            next.violated.extend(next.world.check_quiescent().iter().map(|violation| violation.property));
        }
        CheckModel::mark(&mut next, &action, &last.world, &report);
        Some(next)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            Property::always("REP-1", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rep1)),
            Property::always("REP-2", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rep2)),
            Property::always("REP-3", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rep3)),
            Property::always("REP-4", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rep4)),
            Property::always("REP-5", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rep5)),
            Property::always("REP-6", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rep6)),
            Property::always("REP-7", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rep7)),
            Property::always("REP-8", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rep8)),
            Property::always("REP-9", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rep9)),
            Property::sometimes("converged", |_: &CheckModel, state: &CheckState| {
                state.violated.is_empty() && state.script_done() && state.world.is_quiet()
            }),
            Property::sometimes("conflict", |_: &CheckModel, state: &CheckState| state.marks.conflict),
            Property::sometimes("conflict storm", |_: &CheckModel, state: &CheckState| state.marks.conflict_storm),
            Property::sometimes("duplicate absorbed", |_: &CheckModel, state: &CheckState| {
                state.marks.duplicate_absorbed
            }),
            Property::sometimes("crash between apply and report", |_: &CheckModel, state: &CheckState| {
                state.marks.crash_between_apply_and_report
            }),
        ];
        // A sharded world is not refined (see `next_state`): REF-1 is not judged.
        if self.config.sharding.is_none() {
            let refines = |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Ref1);
            properties.insert(9, Property::always("REF-1", refines));
        }
        if self.config.migration.is_some() {
            properties.extend(migration_properties());
        }
        if self.config.sharding.is_some() {
            properties.extend(sharding_properties());
        }
        properties
    }

    fn within_boundary(&self, state: &CheckState) -> bool {
        state.world.now().0 <= self.config.horizon_ms * NS_PER_MS
    }
}

/// The MIG properties and the migration's rare paths, for configurations
/// with a `[migration]`.
fn migration_properties() -> Vec<Property<CheckModel>> {
    vec![
        Property::always("MIG-1", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Mig1)),
        Property::always("MIG-2", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Mig2)),
        Property::always("MIG-3", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Mig3)),
        Property::always("MIG-4", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Mig4)),
        Property::always("MIG-5", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Mig5)),
        Property::always("MIG-6", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Mig6)),
        Property::always("MIG-7", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Mig7)),
        Property::sometimes("backfill raced an update", |_: &CheckModel, state: &CheckState| {
            state.marks.backfill_raced_update
        }),
        Property::sometimes("backfill raced a delete", |_: &CheckModel, state: &CheckState| {
            state.marks.backfill_raced_delete
        }),
        Property::sometimes("backfill skipped a live write", |_: &CheckModel, state: &CheckState| {
            state.marks.backfill_skipped_live
        }),
        Property::sometimes("verifier saw lag", |_: &CheckModel, state: &CheckState| state.marks.verify_lag),
        Property::sometimes("digest behind a live write", |_: &CheckModel, state: &CheckState| {
            state.marks.digest_behind_write
        }),
        Property::sometimes("verifier repaired", |_: &CheckModel, state: &CheckState| state.marks.verify_repair),
        Property::sometimes("read fell back: missing", |_: &CheckModel, state: &CheckState| {
            state.marks.fallback_missing
        }),
        Property::sometimes("read fell back: not active", |_: &CheckModel, state: &CheckState| {
            state.marks.fallback_not_active
        }),
        Property::sometimes("local read", |_: &CheckModel, state: &CheckState| state.marks.local_read),
        Property::sometimes("rollback stored", |_: &CheckModel, state: &CheckState| state.marks.rollback_stored),
        Property::sometimes("job crashed mid-walk", |_: &CheckModel, state: &CheckState| {
            state.marks.job_crashed_mid_walk
        }),
    ]
}

/// RTE-1 … RTE-4 and the routing races, for configurations with a
/// `[sharding]` (RTE-5: see [`ModelSharding`]).
fn sharding_properties() -> Vec<Property<CheckModel>> {
    vec![
        Property::always("RTE-1", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rte1)),
        Property::always("RTE-2", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rte2)),
        Property::always("RTE-3", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rte3)),
        Property::always("RTE-4", |_: &CheckModel, state: &CheckState| !state.violated.contains(&PropertyId::Rte4)),
        Property::sometimes("route looked up", |_: &CheckModel, state: &CheckState| state.marks.route_looked_up),
        Property::sometimes("route from the table", |_: &CheckModel, state: &CheckState| state.marks.route_from_table),
        Property::sometimes("placed before the added shard was ready", |_: &CheckModel, state: &CheckState| {
            state.marks.placed_before_ready
        }),
        Property::sometimes("placed on the added shard", |_: &CheckModel, state: &CheckState| {
            state.marks.placed_on_added_shard
        }),
    ]
}

/// How to run the checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Breadth-first (shortest counterexamples) instead of depth-first.
    pub bfs: bool,
    /// Worker threads.
    pub threads: usize,
    /// Explore paths of at most this many actions (`None`: bounded by the horizon only).
    pub max_depth: Option<usize>,
}

/// The outcome of one property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PropertyOutcome {
    /// The property's name (a stable ID for `always` properties).
    pub name: String,
    /// `always` or `sometimes`.
    pub expectation: &'static str,
    /// `holds` or `violated` (always); `reached` or `unreached` (sometimes).
    pub status: &'static str,
    /// Whether the check fails unless this property holds (always) or is
    /// reached (sometimes: see [`expected_sometimes`]).
    pub required: bool,
    /// The path (as trace lines) of a counterexample or example.
    #[serde(skip)]
    pub trace: Option<Vec<String>>,
    /// Its length in actions.
    pub path_length: Option<usize>,
}

/// The outcome of checking one configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The configuration.
    pub name: String,
    /// States generated (with revisits).
    pub states: usize,
    /// Distinct states.
    pub unique_states: usize,
    /// Deepest path explored.
    pub max_depth: usize,
    /// Per property.
    pub properties: Vec<PropertyOutcome>,
    /// The configuration's pinned unique-state count, when this check covers
    /// what the pin covers (the whole space, no bugs).
    pub pinned_unique_states: Option<usize>,
    /// Whether every `always` holds, every expected `sometimes` was reached
    /// and the pinned count matches.
    pub passed: bool,
}

/// Checks `config` exhaustively (within its bounds) running the real code with `bugs`.
pub fn check(config: &ModelConfig, bugs: &Bugs, options: &CheckOptions) -> CheckReport {
    let model = CheckModel::new(config.clone(), bugs.clone());
    let properties = model.properties();
    let mut builder = model.clone().checker().threads(options.threads.max(1));
    if let Some(depth) = options.max_depth {
        // stateright evaluates properties on paths of at most `depth - 2` actions.
        builder = builder.target_max_depth(depth + 2);
    }
    if options.bfs {
        report(config, &model, &properties, builder.spawn_bfs().join(), options)
    } else {
        report(config, &model, &properties, builder.spawn_dfs().join(), options)
    }
}

/// A shortest path from the initial state to a state where `property` is
/// discovered (an `always` violated or a `sometimes` reached), or `None` if
/// the bounded space has none.
///
/// stateright 0.31 keeps the last discovery it visits, so a whole search
/// reports a long path, and a breadth-first search stopped at its first
/// discovery stops only at the end of a block of states. So: stop at the
/// first discovery, then search again bounded one action shorter until no
/// path is found. States at depth `target_max_depth` and beyond are not
/// checked and the initial state has depth 1, so a bound of `len + 1`
/// searches every shorter path.
pub fn shortest_discovery(model: &CheckModel, property: &'static str, threads: usize) -> Option<Vec<Action>> {
    let first_only = HasDiscoveries::AnyOf(BTreeSet::from([property]));
    let search = |bound: Option<usize>| {
        let mut builder = model.clone().checker().threads(threads.max(1)).finish_when(first_only.clone());
        if let Some(bound) = bound {
            builder = builder.target_max_depth(bound);
        }
        builder.spawn_bfs().join().discovery(property).map(|path| path.into_actions())
    };
    let mut actions = search(None)?;
    while let Some(shorter) = search(Some(actions.len() + 1)) {
        actions = shorter;
    }
    Some(actions)
}

fn report(
    config: &ModelConfig,
    model: &CheckModel,
    properties: &[Property<CheckModel>],
    checker: impl Checker<CheckModel>,
    options: &CheckOptions,
) -> CheckReport {
    let expected = expected_sometimes(config);
    let mut passed = true;
    let outcomes = properties
        .iter()
        .map(|property| {
            let discovery = checker.discovery(property.name);
            let always = property.expectation == stateright::Expectation::Always;
            let status = match (always, discovery.is_some()) {
                (true, true) => "violated",
                (true, false) => "holds",
                (false, true) => "reached",
                (false, false) => "unreached",
            };
            let required = always || expected.contains(&property.name);
            passed &= status != "violated" && !(status == "unreached" && required);
            // A counterexample is read by people: make it a shortest one.
            let actions = match discovery {
                Some(_) if always => shortest_discovery(model, property.name, options.threads),
                other => other.map(|path| path.into_actions()),
            };
            PropertyOutcome {
                name: property.name.to_string(),
                expectation: if always { "always" } else { "sometimes" },
                status,
                required,
                path_length: actions.as_ref().map(Vec::len),
                trace: actions.as_deref().map(|actions| model.trace(actions)),
            }
        })
        .collect();
    let whole_space = options.max_depth.is_none() && model.bugs == Bugs::none();
    let pinned_unique_states = config.pinned_unique_states.filter(|_| whole_space);
    passed &= pinned_unique_states.is_none_or(|pinned| pinned == checker.unique_state_count());
    CheckReport {
        name: config.name.clone(),
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        max_depth: checker.max_depth(),
        properties: outcomes,
        pinned_unique_states,
        passed,
    }
}

/// Which properties a configuration is expected to reach: the `always` ones
/// and those `sometimes` ones whose fault budget makes them possible.
pub fn expected_sometimes(config: &ModelConfig) -> Vec<&'static str> {
    let mut expected = vec!["converged"];
    if config.budgets.duplicates > 0 {
        expected.push("duplicate absorbed");
    }
    if config.budgets.crashes > 0 && config.crashable.iter().any(|kind| kind == "host") {
        expected.push("crash between apply and report");
    }
    // Sync writers of one tenancy all read its log head: two clients writing
    // concurrently must be able to conflict, and to conflict again on retry.
    let writing_clients: BTreeSet<u32> =
        config.script.iter().filter(|step| step.writes()).map(|step| step.client).collect();
    if config.mode == Mode::Sync && config.tenants == 1 && writing_clients.len() >= 2 {
        expected.extend(["conflict", "conflict storm"]);
    }
    if let Some(migration) = &config.migration {
        expected.extend(expected_migration_races(config, migration));
    }
    if config.sharding.is_some() {
        expected.extend(expected_routing_races(config));
    }
    expected
}

/// The routing races a configuration sets up: a routed read of a secret the
/// script creates races the route's replication to the host (either may
/// win); a vault created while a shard is added races the shard's
/// readiness (placed before it, and on it once ready).
fn expected_routing_races(config: &ModelConfig) -> Vec<&'static str> {
    let mut expected = Vec::new();
    let created: BTreeSet<u32> =
        config.script.iter().filter(|step| step.op == "create").map(|step| step.secret).collect();
    if config.script.iter().any(|step| step.op == "routed-read" && created.contains(&step.secret)) {
        expected.extend(["route looked up", "route from the table"]);
    }
    if config.adds_shard() && config.script.iter().any(|step| step.op == "create-vault") {
        expected.extend(["placed before the added shard was ready", "placed on the added shard"]);
    }
    expected
}

/// The migration's races a configuration sets up: a live write to a seeded
/// secret racing the backfill, a verify pass racing replication (and a bit
/// flip it must repair), a host read in switchover racing activation, and a
/// rollback.
fn expected_migration_races(config: &ModelConfig, migration: &ModelMigration) -> Vec<&'static str> {
    let mut expected = Vec::new();
    // A phase the search sees: one the schedule reaches, not passed in the warm-up.
    let explored =
        |phase: PhaseName| migration.reaches(phase) && migration.start_phase.is_none_or(|start| start <= phase);
    let writes_seeded =
        |op: &str| config.script.iter().any(|step| step.op == op && step.secret < migration.seeded_secrets);
    let writes = config.script.iter().any(|step| !matches!(step.op.as_str(), "remote-read" | "host-read"));
    let creates = config.script.iter().any(|step| step.op == "create");
    let host_reads = config.script.iter().any(|step| step.op == "host-read");
    if explored(PhaseName::Backfill) {
        if writes_seeded("update") {
            expected.push("backfill raced an update");
        }
        if writes_seeded("delete") {
            expected.push("backfill raced a delete");
        }
        if writes_seeded("update") || writes_seeded("delete") {
            expected.push("backfill skipped a live write");
        }
    }
    if explored(PhaseName::Verify) && writes {
        expected.extend(["verifier saw lag", "digest behind a live write"]);
    }
    if explored(PhaseName::Verify) && config.budgets.bit_flips > 0 {
        expected.push("verifier repaired");
    }
    if explored(PhaseName::Switchover) && host_reads {
        if creates {
            expected.extend(["read fell back: missing", "read fell back: not active"]);
        }
        expected.push("local read");
    }
    if config.budgets.rollbacks > 0 {
        expected.push("rollback stored");
    }
    let crashable =
        |kind: &str| config.budgets.crashes > 0 && config.crashable.iter().any(|crashable| crashable == kind);
    if (explored(PhaseName::Backfill) && crashable("backfiller"))
        || (explored(PhaseName::Verify) && crashable("verifier"))
    {
        expected.push("job crashed mid-walk");
    }
    expected
}

#[cfg(test)]
mod tests;
