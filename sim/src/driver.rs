//! The seeded simulator: drives a [`World`] with simulated time, a network
//! model, faults and an open-loop workload, all decided by one `u64` seed.
//!
//! A run has two phases. In the fault phase clients send operations at the
//! scenario's rate while the network delays, reorders, drops and duplicates
//! messages, nodes crash and restart, nodes are cut off, and clocks run slow.
//! At its end everything heals: isolation ends, crashed nodes restart, the
//! network stops losing messages and clients stop. The world must then become
//! quiet and converge (REP-6) within the scenario's bound.
//!
//! The driver only chooses actions; the world does everything else. Every
//! choice comes from [`SimRng`] streams of the seed, so a seed is a run.
//! In swarm mode a separate stream of the seed also decides which fault kinds
//! are on and several knobs (interceptor mode, batch sizes, retry budget).

use std::collections::{BTreeMap, BTreeSet};

use model::{Observation, PropertyId, Violation};
use vault::bugzoo::Bugs;
use vault::host::HostConfig;
use vault::interceptor::InterceptorMode;
use vault::placement::PlacementPolicy;
use vault::quota::BucketConfig;
use vault::store::{IdempotencyToken, Key, Value};
use vault::types::{Content, Lifecycle, SecretId, TenantId, Time, VaultId};
use vault::worker::{Operation, RequestId, WorkerConfig};

use crate::random::{zipf_cumulative, SimRng};
use crate::refinement::{Refinement, RefinementTracker};
use crate::scenario::{Migration, Mode, Scenario, Sharding};
use crate::trace::TraceWriter;
use crate::world::{Action, MessageId, MigrationConfig, NodeId, ShardingConfig, StepReport, World, WorldConfig};

const NS_PER_US: u64 = 1_000;
const NS_PER_MS: u64 = 1_000_000;
/// Steps between quietness checks in the converge phase (each scans the store).
const QUIET_CHECK_STEPS: u64 = 256;

/// The knobs of one run: the scenario's, or in swarm mode the seed's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Knobs {
    /// Interceptor mode.
    pub mode: InterceptorMode,
    /// Whether nodes crash.
    pub crashes: bool,
    /// Whether nodes are cut off.
    pub partitions: bool,
    /// Whether nodes stall.
    pub pauses: bool,
    /// Message reordering (a held-back message), per million.
    pub reorder_per_million: u32,
    /// Message loss, per million.
    pub drop_per_million: u32,
    /// Message duplication, per million.
    pub duplicate_per_million: u32,
    /// Largest clock drift, ppm.
    pub clock_drift_ppm_max: u32,
    /// Host poll batch.
    pub poll_events_max: usize,
    /// Publisher batch.
    pub publisher_batch_events_max: usize,
    /// Worker attempts per operation.
    pub commit_attempts_max: u32,
}

impl Knobs {
    /// The scenario's knobs, or (in swarm mode) knobs drawn from `seed`.
    pub fn for_run(scenario: &Scenario, seed: u64, swarm: bool) -> Knobs {
        let faults = &scenario.faults;
        let replication = &scenario.replication;
        let knobs = Knobs {
            mode: match replication.mode {
                Mode::Sync => InterceptorMode::Sync,
                Mode::Async => InterceptorMode::Async,
            },
            crashes: faults.crash_interval_ms > 0,
            partitions: faults.partition_interval_ms > 0,
            pauses: faults.pause_interval_ms > 0,
            reorder_per_million: scenario.network.reorder_per_million,
            drop_per_million: scenario.network.drop_per_million,
            duplicate_per_million: scenario.network.duplicate_per_million,
            clock_drift_ppm_max: faults.clock_drift_ppm_max,
            poll_events_max: replication.poll_events_max,
            publisher_batch_events_max: replication.publisher_batch_events_max,
            commit_attempts_max: replication.commit_attempts_max,
        };
        if !swarm {
            return knobs;
        }
        // Swarm testing: each fault kind is on or off for the whole run, and
        // knobs take small or large values, so rare combinations get runs.
        let mut rng = SimRng::new(seed, SWARM_STREAM);
        let on = |rng: &mut SimRng| rng.below(2) == 0;
        Knobs {
            mode: if on(&mut rng) { InterceptorMode::Sync } else { InterceptorMode::Async },
            crashes: knobs.crashes && on(&mut rng),
            partitions: knobs.partitions && on(&mut rng),
            pauses: knobs.pauses && on(&mut rng),
            reorder_per_million: if on(&mut rng) { knobs.reorder_per_million } else { 0 },
            drop_per_million: if on(&mut rng) { knobs.drop_per_million } else { 0 },
            duplicate_per_million: if on(&mut rng) { knobs.duplicate_per_million } else { 0 },
            clock_drift_ppm_max: if on(&mut rng) { knobs.clock_drift_ppm_max } else { 0 },
            poll_events_max: [1, 4, knobs.poll_events_max][rng.below(3) as usize],
            publisher_batch_events_max: [1, 4, knobs.publisher_batch_events_max][rng.below(3) as usize],
            commit_attempts_max: [1, 3, knobs.commit_attempts_max][rng.below(3) as usize],
        }
    }
}

const WORKLOAD_STREAM: u64 = 0;
/// The mix index of a vault creation.
const CREATE_VAULT: usize = 5;
const SWARM_STREAM: u64 = 1;

/// The world a scenario's run starts from.
pub fn world_config(scenario: &Scenario, knobs: &Knobs, bugs: &Bugs) -> WorldConfig {
    let workload = &scenario.workload;
    let replication = &scenario.replication;
    let mut vaults = Vec::new();
    for tenant in 0..workload.tenants {
        for index in 0..workload.vaults_per_tenant {
            vaults.push((VaultId(tenant * workload.vaults_per_tenant + index), TenantId(tenant)));
        }
    }
    let worker = WorkerConfig {
        mode: knobs.mode,
        commit_attempts_max: knobs.commit_attempts_max,
        retry_delay_ns: replication.retry_delay_us * NS_PER_US,
        retry_delay_max_ns: (replication.retry_delay_us * NS_PER_US * 64).max(1),
        request_timeout_ns: 200 * NS_PER_MS,
        queue_requests_max: 64,
        operations_max: scenario.topology.worker_operations_max,
        phase_fenced: scenario.migration.is_some(),
        placer: None,
    };
    let host = HostConfig {
        poll_interval_ns: replication.poll_interval_ms * NS_PER_MS,
        poll_events_max: knobs.poll_events_max,
        pending_events_max: 256,
        request_timeout_ns: 200 * NS_PER_MS,
        replicate_routes: false,
    };
    WorldConfig {
        workers: scenario.topology.workers,
        hosts: scenario.topology.hosts,
        vaults,
        mode: knobs.mode,
        worker,
        host,
        publisher_batch_events_max: knobs.publisher_batch_events_max,
        publish_interval_ns: replication.publish_interval_ms * NS_PER_MS,
        activator_poll_interval_ns: replication.poll_interval_ms * NS_PER_MS,
        bugs: bugs.clone(),
        migration: scenario.migration.as_ref().map(|migration| migration_config(migration, scenario.topology.hosts)),
        sharding: scenario.sharding.as_ref().map(|sharding| sharding_config(scenario, sharding, knobs)),
    }
}

/// The world's sharding for a scenario's `[sharding]` section.
fn sharding_config(scenario: &Scenario, sharding: &Sharding, knobs: &Knobs) -> ShardingConfig {
    let faults = &scenario.faults;
    // RTE-5 judges only a world whose faults are store outages alone.
    let outages_only = faults.crash_interval_ms == 0
        && faults.partition_interval_ms == 0
        && faults.pause_interval_ms == 0
        && knobs.drop_per_million == 0
        && knobs.duplicate_per_million == 0;
    ShardingConfig {
        shards: sharding.shards,
        policy: PlacementPolicy::LeastLoaded,
        route_timeout_ns: sharding.route_timeout_ms * NS_PER_MS,
        lookups_max: sharding.lookups_max,
        outages_only,
        add_shard: sharding.add_shard_at_ms.is_some(),
    }
}

/// The world's migration for a scenario's `[migration]` section.
pub(crate) fn migration_config(migration: &Migration, hosts: u32) -> MigrationConfig {
    // A rate of 0 is no budget at all: the job never waits for a token.
    let per_second = |rate: u64| (rate > 0).then_some(rate);
    MigrationConfig {
        seeded_secrets: migration.seeded_secrets,
        schedule: migration.schedule.iter().map(|entry| (Time(entry.at_ms * NS_PER_MS), entry.phase.phase())).collect(),
        backfill_page_keys: migration.backfill_page_keys,
        // A burst of a tenth of a second's budget, at least one request.
        backfill_budget: per_second(migration.backfill_rate_per_second).map(|rate| BucketConfig {
            rate,
            interval_ns: 1_000_000_000,
            burst: (rate / 10).max(1),
        }),
        verify_page_keys: migration.verify_page_keys,
        // The verifier asks every host at once: its burst covers them and the store.
        verify_budget: per_second(migration.verify_rate_per_second).map(|rate| BucketConfig {
            rate,
            interval_ns: 1_000_000_000,
            burst: (rate / 10).max(u64::from(hosts) + 1),
        }),
        phase_poll_ns: migration.phase_poll_ms.iter().map(|ms| ms * NS_PER_MS).collect(),
        request_timeout_ns: migration.request_timeout_ms * NS_PER_MS,
    }
}

/// The world a scenario's run starts from, with the scenario's quotas at the
/// front door when it has a `[quotas]` section.
pub fn build_world(scenario: &Scenario, knobs: &Knobs, bugs: &Bugs) -> World {
    let world = World::new(world_config(scenario, knobs, bugs));
    match &scenario.quotas {
        Some(quotas) => world.with_quotas(&quotas.table_config()).expect("scenario quotas are validated"),
        None => world,
    }
}

/// How to run one seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// The seed.
    pub seed: u64,
    /// Whether the seed also decides fault kinds and knobs.
    pub swarm: bool,
    /// Whether to record a trace.
    pub trace: bool,
    /// Bug-zoo variants of the real code to run (none outside the bug zoo).
    pub bugs: Bugs,
}

/// The first violation of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The step that showed it (0 for the end-of-run check).
    pub step: u64,
    /// The violation.
    pub violation: Violation,
}

/// What a run measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Steps taken (actions applied).
    pub steps: u64,
    /// Simulated time at the end, ns.
    pub simulated_ns: u64,
    /// Latencies of answered operations by kind, ns (throttled answers excluded).
    pub latencies: BTreeMap<&'static str, Vec<u64>>,
    /// Operations throttled at the front door by kind.
    pub throttled: BTreeMap<&'static str, u64>,
    /// Per tenant.
    pub tenants: BTreeMap<u32, TenantStats>,
    /// Per home shard of the resource a request acted on (sharded
    /// scenarios; requests whose resource had no route at issue are left
    /// out), with a tenant's counters.
    pub shards: BTreeMap<u32, TenantStats>,
    /// Length of the phase with client traffic, ns.
    pub traffic_ns: u64,
    /// Operations issued by kind.
    pub issued: BTreeMap<&'static str, u64>,
    /// Operations served (answered without an availability failure) by kind.
    pub served: BTreeMap<&'static str, u64>,
    /// Commits, conflicts, retries and timeouts of the workers.
    pub commits: u64,
    /// Commits refused with a conflict.
    pub conflicts: u64,
    /// Attempts after the first.
    pub retries: u64,
    /// Replication lag samples (append to applied on a host), ns.
    pub replication_lag: Vec<u64>,
    /// Whether the world became quiet after the fault phase.
    pub converged: bool,
    /// Migration counters by name (migration scenarios only; see
    /// `Simulation::observe_migration`).
    pub migration: BTreeMap<&'static str, u64>,
    /// Every host read of a migration scenario, in request order.
    pub host_reads: Vec<HostReadSample>,
    /// When the store committed each migration phase: (ns, phase code).
    pub phase_times: Vec<(u64, u8)>,
    /// When a backfiller reported its walk done, ns, each time.
    pub backfill_done_times: Vec<u64>,
}

/// One host read of a migration run, for latency by phase and source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostReadSample {
    /// When it was issued, ns.
    pub issued_ns: u64,
    /// Issue to answer, ns; `None` if never answered.
    pub latency_ns: Option<u64>,
    /// The stored phase at issue.
    pub phase: u8,
    /// Where the read path answered from.
    pub source: Option<vault::accessor::Source>,
    /// Whether it was a client's read of a secret it had just created.
    pub after_create: bool,
}

/// What a run measured of one tenant's requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantStats {
    /// Requests issued (retries of throttled requests are requests too).
    pub issued: u64,
    /// Requests answered without an availability failure (over-quota throttles included).
    pub served: u64,
    /// Requests throttled at the front door.
    pub throttled: u64,
    /// Of those, refused by the service capacity while within the tenant's own quota.
    pub throttled_within_quota: u64,
    /// Latencies of answered, not throttled requests, ns.
    pub latencies: Vec<u64>,
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The seed.
    pub seed: u64,
    /// The knobs used.
    pub knobs: Knobs,
    /// The first violation, if any.
    pub failure: Option<Failure>,
    /// Measurements.
    pub stats: RunStats,
    /// The trace lines (header first), when recorded.
    pub trace: Option<Vec<String>>,
    /// FNV-1a hash of the trace text (0 when not recorded).
    pub trace_hash: u64,
}

/// The running sums of `weights`, for [`SimRng::weighted_prefix`].
fn cumulative(weights: &[u32]) -> Vec<u64> {
    weights
        .iter()
        .scan(0u64, |sum, weight| {
            *sum += u64::from(*weight);
            Some(*sum)
        })
        .collect()
}

/// What the driver plans to do at a time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Planned {
    Deliver(MessageId),
    Pause,
    Arrival,
    Crash,
    Restart(NodeId),
    Partition,
    Heal,
    EndFaultPhase,
    /// A client resends a throttled request (by the throttled request's id).
    Retry(RequestId),
    /// The operator is told to roll back (migration scenarios).
    Rollback,
    /// A disk flips a bit of a host's local entry (migration scenarios).
    BitFlip,
    /// A client reads the secret it just created (`workload.read_after_create`).
    ReadAfterCreate(SecretId),
    /// The operator is told to add a shard (`sharding.add_shard_at_ms`).
    AddShard,
    /// A shard's store goes down or comes back (`sharding.outages`).
    StoreOutage {
        /// The shard.
        shard: u32,
        /// Down or back.
        down: bool,
    },
}

/// One simulated run in progress.
struct Simulation<'a> {
    scenario: &'a Scenario,
    knobs: Knobs,
    rng: SimRng,
    world: World,
    plan: BTreeMap<(Time, u64), Planned>,
    plan_counter: u64,
    /// When each node's armed timer really fires (drift and pauses applied).
    timers: BTreeMap<NodeId, Time>,
    /// The same, ordered by firing time.
    timer_queue: BTreeSet<(Time, NodeId)>,
    drift_ppm: BTreeMap<NodeId, u64>,
    /// Nodes stalled until a time: no delivery to them and no timer of theirs.
    paused_until: BTreeMap<NodeId, Time>,
    fault_phase: bool,
    /// When each shard's store finishes the requests queued at it (see
    /// `Network::store_service_us`); each store serves its own queue.
    store_busy_until: BTreeMap<u32, Time>,
    next_request: u64,
    secrets_created: u32,
    /// Vaults created by clients (beyond the configured ones).
    vaults_created: u32,
    /// The vaults clients created whose placement committed, in that order:
    /// new secrets are spread over them too (see `vault_for_new_secret`).
    placed_vaults: Vec<VaultId>,
    /// The secrets created in those vaults; every other secret `s` is in
    /// configured vault `s % vaults`.
    secrets_in_placed: BTreeMap<SecretId, VaultId>,
    /// Secrets whose last acknowledged write left them existing, oldest first:
    /// the targets of updates, deletes and reads.
    live_secrets: Vec<SecretId>,
    /// The refinement check, following the world.
    refinement: RefinementTracker,
    zipf: Vec<u64>,
    properties: Vec<PropertyId>,
    append_times: BTreeMap<(u32, u32), Vec<Time>>,
    host_cursors: BTreeMap<(u32, u32), u64>,
    lag: Vec<u64>,
    trace: Option<TraceWriter>,
    /// The tenant of each request, by request id (see `tenant_of_secret`).
    request_tenants: Vec<u32>,
    /// Per-tenant creations (with `workload.tenant_weights`).
    created_by_tenant: BTreeMap<u32, u32>,
    /// Control-plane operations sent, their worker and attempt (only with quotas:
    /// what a client resends after a throttled answer).
    submitted: BTreeMap<RequestId, (Operation, u32, u32)>,
    /// Migration counters (see `observe_migration`).
    migration: BTreeMap<&'static str, u64>,
    /// The last phase the store committed, as a code.
    stored_phase: u8,
    /// Each host's last learned phase.
    learned: BTreeMap<u32, u8>,
    /// When the store committed each phase.
    phase_times: Vec<(u64, u8)>,
    /// Reads of a secret just created (`workload.read_after_create`).
    reads_after_create: BTreeSet<RequestId>,
    /// When a backfiller reported done.
    backfill_done_times: Vec<u64>,
}

/// Runs one seed of `scenario`.
pub fn run(scenario: &Scenario, options: &RunOptions) -> RunResult {
    let knobs = Knobs::for_run(scenario, options.seed, options.swarm);
    let world = build_world(scenario, &knobs, &options.bugs);
    let refinement = RefinementTracker::new(refinement_for(scenario, &world), &world);
    let trace = options.trace.then(|| TraceWriter::new(scenario, options.seed, options.swarm, &options.bugs));
    let mut simulation = Simulation {
        scenario,
        rng: SimRng::new(options.seed, WORKLOAD_STREAM),
        drift_ppm: BTreeMap::new(),
        paused_until: BTreeMap::new(),
        zipf: zipf_cumulative(scenario.workload.secrets_max.max(1) as usize, scenario.workload.zipf_exponent),
        properties: scenario.properties(),
        knobs,
        world,
        plan: BTreeMap::new(),
        plan_counter: 0,
        store_busy_until: BTreeMap::new(),
        timers: BTreeMap::new(),
        timer_queue: BTreeSet::new(),
        fault_phase: true,
        next_request: 0,
        secrets_created: 0,
        live_secrets: Vec::new(),
        refinement,
        append_times: BTreeMap::new(),
        host_cursors: BTreeMap::new(),
        lag: Vec::new(),
        trace,
        request_tenants: Vec::new(),
        created_by_tenant: BTreeMap::new(),
        vaults_created: 0,
        placed_vaults: Vec::new(),
        secrets_in_placed: BTreeMap::new(),
        submitted: BTreeMap::new(),
        migration: BTreeMap::new(),
        stored_phase: 0,
        learned: BTreeMap::new(),
        phase_times: Vec::new(),
        reads_after_create: BTreeSet::new(),
        backfill_done_times: Vec::new(),
    };
    let (failure, converged) = simulation.run();
    let stats = simulation.stats(converged);
    let (trace, trace_hash) = match simulation.trace {
        Some(writer) => {
            let hash = writer.hash();
            (Some(writer.into_lines()), hash)
        }
        None => (None, 0),
    };
    RunResult { seed: options.seed, knobs: simulation.knobs, failure, stats, trace, trace_hash }
}

impl Simulation<'_> {
    fn run(&mut self) -> (Option<Failure>, bool) {
        self.setup();
        let fault_end = Time(self.scenario.run.fault_phase_ms * NS_PER_MS);
        let deadline = fault_end.plus_ns(self.scenario.run.converge_within_ms * NS_PER_MS);
        while let Some(action) = self.next_action() {
            if action_time(&action).is_some_and(|at| at > deadline) {
                break;
            }
            let report = self.apply(&action);
            if let Some(violation) = self.first_checked(&report.violations) {
                return (Some(Failure { step: self.world.steps(), violation }), false);
            }
            self.after_step(&report);
            let quiet_check = !self.fault_phase && self.world.steps().is_multiple_of(QUIET_CHECK_STEPS);
            if quiet_check && self.plan_is_idle() && self.world.is_quiet() {
                return (self.final_check(true), true);
            }
        }
        let quiet = self.world.is_quiet();
        (self.final_check(quiet), quiet)
    }

    fn setup(&mut self) {
        let nodes = self.world.crashable_nodes();
        if self.knobs.clock_drift_ppm_max > 0 {
            for node in &nodes {
                let drift = self.rng.below(u64::from(self.knobs.clock_drift_ppm_max) + 1);
                self.drift_ppm.insert(*node, drift);
            }
        }
        let armed: Vec<NodeId> = self.world.timers().keys().copied().collect();
        for node in armed {
            self.refresh_timer(node);
        }
        let fault_end = Time(self.scenario.run.fault_phase_ms * NS_PER_MS);
        self.schedule(fault_end, Planned::EndFaultPhase);
        self.schedule_arrival(Time::ZERO);
        if self.knobs.crashes {
            let gap = self.rng.exponential_ns(self.scenario.faults.crash_interval_ms * NS_PER_MS);
            self.schedule(Time(gap), Planned::Crash);
        }
        if self.knobs.partitions {
            let gap = self.rng.exponential_ns(self.scenario.faults.partition_interval_ms * NS_PER_MS);
            self.schedule(Time(gap), Planned::Partition);
        }
        if self.knobs.pauses {
            let gap = self.rng.exponential_ns(self.scenario.faults.pause_interval_ms * NS_PER_MS);
            self.schedule(Time(gap), Planned::Pause);
        }
        if let Some(sharding) = &self.scenario.sharding {
            if let Some(at_ms) = sharding.add_shard_at_ms {
                self.schedule(Time(at_ms * NS_PER_MS), Planned::AddShard);
            }
            for outage in &sharding.outages {
                let (shard, at) = (outage.shard, Time(outage.at_ms * NS_PER_MS));
                self.schedule(at, Planned::StoreOutage { shard, down: true });
                self.schedule(at.plus_ns(outage.duration_ms * NS_PER_MS), Planned::StoreOutage { shard, down: false });
            }
        }
        if let Some(migration) = &self.scenario.migration {
            // The secrets written before replication existed are there to touch.
            self.secrets_created = migration.seeded_secrets;
            self.live_secrets = (0..migration.seeded_secrets).map(SecretId).collect();
            if migration.rollback_interval_ms > 0 {
                let gap = self.rng.exponential_ns(migration.rollback_interval_ms * NS_PER_MS);
                self.schedule(Time(gap), Planned::Rollback);
            }
            if migration.bit_flip_interval_ms > 0 {
                let gap = self.rng.exponential_ns(migration.bit_flip_interval_ms * NS_PER_MS);
                self.schedule(Time(gap), Planned::BitFlip);
            }
        }
    }

    /// The next action: the earliest planned event or timer (plans first on ties).
    fn next_action(&mut self) -> Option<Action> {
        loop {
            let planned = self.plan.first_key_value().map(|((at, _), _)| *at);
            let timer = self.timer_queue.first().copied();
            match (planned, timer) {
                (None, None) => return None,
                (Some(at), Some((fires, node))) if fires < at => return Some(self.fire(node, fires)),
                (None, Some((fires, node))) => return Some(self.fire(node, fires)),
                _ => {
                    let ((at, _), planned) = self.plan.pop_first().expect("a planned event");
                    if let Some(action) = self.realize(at, planned) {
                        return Some(action);
                    }
                }
            }
        }
    }

    /// `at`, or the end of `node`'s pause if it is stalled then.
    fn unpaused(&self, node: NodeId, at: Time) -> Time {
        self.paused_until.get(&node).map_or(at, |until| at.max(*until))
    }

    fn fire(&mut self, node: NodeId, at: Time) -> Action {
        let fires = self.timers.remove(&node).expect("a queued timer");
        assert!(self.timer_queue.remove(&(fires, node)), "timer queue out of step");
        Action::FireTimer { node, at: at.max(self.world.now()) }
    }

    /// Turns a planned event into an action, or into nothing (and new plans).
    fn realize(&mut self, at: Time, planned: Planned) -> Option<Action> {
        let at = at.max(self.world.now());
        match planned {
            Planned::Deliver(message) => {
                let to = self.world.in_flight().get(&message).map(|message| message.to);
                let resume = to.map_or(at, |to| self.unpaused(to, at));
                if resume > at {
                    self.schedule(resume, Planned::Deliver(message));
                    return None;
                }
                Some(Action::Deliver { message, at })
            }
            Planned::Pause => {
                if !self.fault_phase {
                    return None;
                }
                let gap = self.rng.exponential_ns(self.scenario.faults.pause_interval_ms * NS_PER_MS);
                self.schedule(at.plus_ns(gap.max(1)), Planned::Pause);
                let nodes = self.world.crashable_nodes();
                let node = nodes[self.rng.below(nodes.len() as u64) as usize];
                let duration = self.rng.between(1, self.scenario.faults.pause_duration_ms.max(1) * NS_PER_MS);
                self.paused_until.insert(node, at.plus_ns(duration));
                self.refresh_timer(node);
                None
            }
            Planned::Arrival => {
                if !self.fault_phase {
                    return None;
                }
                let action = self.arrival(at);
                self.schedule_arrival(at);
                Some(action)
            }
            Planned::Crash => {
                if !self.fault_phase {
                    return None;
                }
                let gap = self.rng.exponential_ns(self.scenario.faults.crash_interval_ms * NS_PER_MS);
                self.schedule(at.plus_ns(gap.max(1)), Planned::Crash);
                let up: Vec<NodeId> =
                    self.world.crashable_nodes().into_iter().filter(|node| self.world.is_up(*node)).collect();
                if up.is_empty() {
                    return None;
                }
                let node = up[self.rng.below(up.len() as u64) as usize];
                let down_ns = self.rng.between(1, self.scenario.faults.crash_down_ms.max(1) * NS_PER_MS);
                self.schedule(at.plus_ns(down_ns), Planned::Restart(node));
                Some(Action::Crash(node))
            }
            Planned::Restart(node) => (!self.world.is_up(node)).then_some(Action::Restart(node)),
            Planned::Partition => {
                if !self.fault_phase {
                    return None;
                }
                let gap = self.rng.exponential_ns(self.scenario.faults.partition_interval_ms * NS_PER_MS);
                self.schedule(at.plus_ns(gap.max(1)), Planned::Partition);
                let nodes = self.world.crashable_nodes();
                let node = nodes[self.rng.below(nodes.len() as u64) as usize];
                let duration = self.rng.between(1, self.scenario.faults.partition_duration_ms.max(1) * NS_PER_MS);
                self.schedule(at.plus_ns(duration), Planned::Heal);
                (!self.world.is_isolated(node)).then_some(Action::Isolate(node))
            }
            Planned::Heal => Some(Action::Heal),
            Planned::AddShard => Some(Action::AddShard { at }),
            Planned::StoreOutage { shard, down } => {
                // An outage still running when the fault phase ends ended with it.
                let starts = down && !self.fault_phase;
                (!starts && self.world.is_isolated(NodeId::Store(shard)) != down)
                    .then_some(Action::StoreOutage { shard, down })
            }
            Planned::EndFaultPhase => {
                self.end_fault_phase(at);
                None
            }
            Planned::Rollback => {
                if !self.fault_phase {
                    return None;
                }
                let interval_ms =
                    self.scenario.migration.as_ref().map_or(0, |migration| migration.rollback_interval_ms);
                let gap = self.rng.exponential_ns(interval_ms * NS_PER_MS);
                self.schedule(at.plus_ns(gap.max(1)), Planned::Rollback);
                self.world.is_up(NodeId::Operator).then_some(Action::Rollback { at })
            }
            Planned::BitFlip => {
                if !self.fault_phase {
                    return None;
                }
                let interval_ms =
                    self.scenario.migration.as_ref().map_or(0, |migration| migration.bit_flip_interval_ms);
                let gap = self.rng.exponential_ns(interval_ms * NS_PER_MS);
                self.schedule(at.plus_ns(gap.max(1)), Planned::BitFlip);
                let host = self.rng.below(u64::from(self.scenario.topology.hosts)) as u32;
                let secret = SecretId(self.rng.below(u64::from(self.secrets_created.max(1))) as u32);
                Some(Action::Corrupt { host, secret })
            }
            Planned::ReadAfterCreate(secret) => {
                let request = RequestId(self.next_request);
                self.next_request += 1;
                self.request_tenants.push(self.tenant_of_secret(secret));
                self.reads_after_create.insert(request);
                Some(self.host_read(request, secret, at))
            }
            Planned::Retry(throttled) => {
                if !self.fault_phase {
                    return None;
                }
                let (operation, worker, attempt) = self.submitted[&throttled].clone();
                let request = RequestId(self.next_request);
                self.next_request += 1;
                let tenant = self.request_tenants[throttled.0 as usize];
                self.request_tenants.push(tenant);
                self.submitted.insert(request, (operation.clone(), worker, attempt + 1));
                Some(Action::Submit { request, worker, operation, at })
            }
        }
    }

    /// Heals everything: no more isolation, crashed nodes restart now, and the
    /// network stops losing messages. Clients stop sending.
    fn end_fault_phase(&mut self, at: Time) {
        self.fault_phase = false;
        self.schedule(at, Planned::Heal);
        for shard in 0..self.world.shard_count() {
            if self.world.is_isolated(NodeId::Store(shard)) {
                self.schedule(at, Planned::StoreOutage { shard, down: false });
            }
        }
        for node in self.world.crashable_nodes() {
            if !self.world.is_up(node) {
                self.schedule(at, Planned::Restart(node));
            }
        }
    }

    fn schedule(&mut self, at: Time, planned: Planned) {
        self.plan.insert((at, self.plan_counter), planned);
        self.plan_counter += 1;
    }

    fn schedule_arrival(&mut self, after: Time) {
        let rate = u64::from(self.scenario.workload.rate_per_second).max(1) * self.burst_multiplier(after);
        let gap = self.rng.exponential_ns(1_000_000_000 / rate.max(1));
        self.schedule(after.plus_ns(gap.max(1)), Planned::Arrival);
    }

    fn burst_multiplier(&self, at: Time) -> u64 {
        let at_ms = at.0 / NS_PER_MS;
        let burst = self
            .scenario
            .workload
            .bursts
            .iter()
            .find(|burst| (burst.at_ms..burst.at_ms + burst.duration_ms).contains(&at_ms));
        burst.map_or(1, |burst| u64::from(burst.multiplier.max(1)))
    }

    /// A client operation, labelled with its tenant; with quotas, remembered
    /// for a resend after a throttled answer.
    fn arrival(&mut self, at: Time) -> Action {
        let action = if self.scenario.workload.tenant_weights.is_empty() {
            self.untargeted_arrival(at)
        } else {
            self.tenant_arrival(at)
        };
        let tenant = match &action {
            Action::Submit { operation: Operation::CreateVault { tenant, .. }, .. } => tenant.0,
            Action::Submit { operation, .. } => self.tenant_of_secret(operation_secret(operation)),
            Action::Read { secret, .. } | Action::RoutedRead { secret, .. } => self.tenant_of_secret(*secret),
            _ => unreachable!("an arrival is a client action"),
        };
        self.request_tenants.push(tenant);
        if let (Some(_), Action::Submit { request, worker, operation, .. }) = (&self.scenario.quotas, &action) {
            self.submitted.insert(*request, (operation.clone(), *worker, 0));
        }
        action
    }

    /// A client's read of `secret` from a host drawn uniformly; in a sharded
    /// world, through a base-cell host's router, as the secret's tenancy or
    /// (`sharding.cross_tenancy_per_million`) as another one drawn uniformly.
    fn host_read(&mut self, request: RequestId, secret: SecretId, at: Time) -> Action {
        let host = self.rng.below(u64::from(self.scenario.topology.hosts)) as u32;
        let Some(sharding) = &self.scenario.sharding else { return Action::Read { request, host, secret, at } };
        let tenants = self.scenario.workload.tenants;
        let mut caller = self.tenant_of_secret(secret);
        if tenants > 1 && self.rng.chance_per_million(sharding.cross_tenancy_per_million) {
            caller = (caller + 1 + self.rng.below(u64::from(tenants - 1)) as u32) % tenants;
        }
        Action::RoutedRead { request, host, caller: TenantId(caller), secret, at }
    }

    /// A client creates the next vault, of tenancy `vault mod tenants`, at a
    /// worker drawn uniformly.
    fn create_vault(&mut self, request: RequestId, at: Time) -> Action {
        let vault = self.world.config().vaults.len() as u32 + self.vaults_created;
        self.vaults_created += 1;
        let tenant = self.tenant_of_created_vault(VaultId(vault));
        let worker = self.rng.below(u64::from(self.scenario.topology.workers)) as u32;
        Action::Submit { request, worker, operation: Operation::CreateVault { vault: VaultId(vault), tenant }, at }
    }

    /// The tenancy of secret `s`: that of its vault (`vault_for_new_secret`).
    fn tenant_of_secret(&self, secret: SecretId) -> u32 {
        if let Some(vault) = self.secrets_in_placed.get(&secret) {
            return self.tenant_of_created_vault(*vault).0;
        }
        let vaults = &self.world.config().vaults;
        vaults[(secret.0 as usize) % vaults.len()].1 .0
    }

    /// The vault a new secret `s` is created in: `s % n` among the `n`
    /// configured vaults and the client-created vaults already placed, so
    /// that vaults placed on a shard added live hold secrets that clients
    /// then read and write. Without vault creations, or with
    /// `workload.tenant_weights` (whose secret ids follow the configured
    /// vaults), configured vault `s % vaults`.
    fn vault_for_new_secret(&mut self, secret: SecretId) -> VaultId {
        let vaults = &self.world.config().vaults;
        let configured = vaults.len();
        let placed = if self.scenario.workload.tenant_weights.is_empty() { self.placed_vaults.len() } else { 0 };
        let index = secret.0 as usize % (configured + placed);
        if index < configured {
            return vaults[index].0;
        }
        let vault = self.placed_vaults[index - configured];
        self.secrets_in_placed.insert(secret, vault);
        vault
    }

    /// The tenancy a client-created vault belongs to: `vault mod tenants`.
    fn tenant_of_created_vault(&self, vault: VaultId) -> TenantId {
        TenantId(vault.0 % self.scenario.workload.tenants)
    }

    /// A client operation: kind by the mix, secret by Zipf popularity.
    fn untargeted_arrival(&mut self, at: Time) -> Action {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let mix = &self.scenario.workload.mix;
        let kinds = cumulative(&[mix.create, mix.update, mix.delete, mix.remote_read, mix.host_read, mix.create_vault]);
        let mut kind = self.rng.weighted_prefix(&kinds, kinds.len());
        let can_create = self.secrets_created < self.scenario.workload.secrets_max;
        if kind == 0 && !can_create {
            kind = 1; // Every secret exists: update instead.
        }
        if kind != 0 && self.live_secrets.is_empty() && can_create {
            kind = 0; // Nothing to touch yet: create.
        }
        if kind == CREATE_VAULT {
            return self.create_vault(request, at);
        }
        let secret = if kind == 0 {
            self.secrets_created += 1;
            SecretId(self.secrets_created - 1)
        } else if self.live_secrets.is_empty() {
            SecretId(0) // Every secret was deleted: the operation answers NotFound.
        } else {
            // Popularity by age among the secrets clients know to exist.
            let rank = self.rng.weighted_prefix(&self.zipf, self.live_secrets.len().min(self.zipf.len()));
            self.live_secrets[rank]
        };
        self.client_action(kind, secret, request, at)
    }

    /// A client operation of a tenant drawn by `workload.tenant_weights`: kind
    /// by the mix, secret by Zipf popularity among that tenant's secrets. The
    /// tenant's `n`-th secret is in its vault `n % vaults_per_tenant`.
    fn tenant_arrival(&mut self, at: Time) -> Action {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let workload = &self.scenario.workload;
        let tenants = cumulative(&workload.tenant_weights);
        let tenant = self.rng.weighted_prefix(&tenants, tenants.len()) as u32;
        let mix = &workload.mix;
        let kinds = cumulative(&[mix.create, mix.update, mix.delete, mix.remote_read, mix.host_read, mix.create_vault]);
        let mut kind = self.rng.weighted_prefix(&kinds, kinds.len());
        let per_tenant = workload.vaults_per_tenant;
        let vaults = workload.tenants * per_tenant;
        let created = self.created_by_tenant.get(&tenant).copied().unwrap_or(0);
        let next = SecretId((created / per_tenant) * vaults + tenant * per_tenant + created % per_tenant);
        let can_create = next.0 < workload.secrets_max;
        let live: Vec<SecretId> =
            self.live_secrets.iter().copied().filter(|secret| self.tenant_of_secret(*secret) == tenant).collect();
        if kind == 0 && !can_create {
            kind = 1;
        }
        if kind != 0 && live.is_empty() && can_create {
            kind = 0;
        }
        if kind == CREATE_VAULT {
            return self.create_vault(request, at);
        }
        let secret = if kind == 0 {
            self.secrets_created += 1;
            self.created_by_tenant.insert(tenant, created + 1);
            next
        } else if live.is_empty() {
            SecretId(tenant * per_tenant) // The tenant's first secret, deleted: NotFound.
        } else {
            let rank = self.rng.weighted_prefix(&self.zipf, live.len().min(self.zipf.len()));
            live[rank]
        };
        self.client_action(kind, secret, request, at)
    }

    /// The client's action of mix index `kind` on `secret`: a read from a host
    /// drawn uniformly, or an operation sent to a worker drawn uniformly. A
    /// create goes to the vault `vault_for_new_secret` picks.
    fn client_action(&mut self, kind: usize, secret: SecretId, request: RequestId, at: Time) -> Action {
        if kind == 4 {
            return self.host_read(request, secret, at);
        }
        let content = Content::new(format!("{}:{}", secret.0, request.0).as_bytes());
        let operation = match kind {
            0 => {
                let vault = self.vault_for_new_secret(secret);
                Operation::CreateSecret { secret, vault, content, token: IdempotencyToken(request.0) }
            }
            1 => Operation::UpdateSecret { secret, content, expected: None },
            2 => Operation::DeleteSecret { secret, expected: None },
            _ => Operation::ReadSecret { secret },
        };
        let worker = self.rng.below(u64::from(self.scenario.topology.workers)) as u32;
        Action::Submit { request, worker, operation, at }
    }

    /// Decides the fate of messages just sent and records lag samples.
    fn after_step(&mut self, report: &StepReport) {
        let now = self.world.now();
        for id in &report.sent {
            let Some(message) = self.world.in_flight().get(id) else { continue };
            let link = (message.from, message.to);
            if self.fault_phase && self.rng.chance_per_million(self.knobs.drop_per_million) {
                self.apply(&Action::Drop(*id));
                continue;
            }
            if self.fault_phase && self.rng.chance_per_million(self.knobs.duplicate_per_million) {
                for copy_id in self.apply(&Action::Duplicate(*id)).sent {
                    let latency = self.latency(link);
                    let at = self.served_at(link.1, now.plus_ns(latency));
                    self.schedule(at, Planned::Deliver(copy_id));
                }
            }
            let mut latency = self.latency(link);
            if self.fault_phase && self.rng.chance_per_million(self.knobs.reorder_per_million) {
                latency += self.scenario.network.reorder_delay_us * NS_PER_US;
            }
            let at = self.served_at(link.1, now.plus_ns(latency));
            self.schedule(at, Planned::Deliver(*id));
        }
        let retries_max = self.scenario.quotas.as_ref().map_or(0, |quotas| quotas.client_retries_max);
        for (request, retry_after_ns) in &report.throttled_answers {
            let attempt = self.submitted.get(request).map_or(u32::MAX, |(_, _, attempt)| *attempt);
            if self.fault_phase && attempt < retries_max {
                self.schedule(now.plus_ns(*retry_after_ns), Planned::Retry(*request));
            }
        }
        for observation in &report.observations {
            self.observe_migration(observation);
            self.observe_lag(now, observation);
            if let Observation::Placed { vault, .. } = observation {
                let configured = self.world.config().vaults.len() as u32;
                if *vault >= configured && !self.placed_vaults.contains(&VaultId(*vault)) {
                    self.placed_vaults.push(VaultId(*vault));
                }
            }
            if let Observation::Acknowledged { secret, version } = observation {
                self.observe_acknowledged(SecretId(*secret));
                if *version == 1 && self.scenario.workload.read_after_create && self.fault_phase {
                    self.schedule(now, Planned::ReadAfterCreate(SecretId(*secret)));
                }
            }
        }
    }

    /// Counts what the migration did, for the summary.
    fn observe_migration(&mut self, observation: &Observation) {
        let mut count = |name: &'static str| *self.migration.entry(name).or_default() += 1;
        match observation {
            Observation::PhaseStored { phase, .. } => {
                self.phase_times.push((self.world.now().0, *phase));
                count("phase commits");
                if *phase < self.stored_phase {
                    count("rollbacks");
                }
                self.stored_phase = *phase;
            }
            Observation::BackfillEmitted { .. } => count("backfill events"),
            Observation::BackfillDone { .. } => {
                self.backfill_done_times.push(self.world.now().0);
                count("backfills done");
            }
            Observation::VerifyDone => count("verifies done"),
            Observation::Corrupted { .. } => count("bit flips"),
            Observation::RepairOrdered { .. } => count("repairs ordered"),
            Observation::Repaired { .. } => count("repairs"),
            Observation::PhaseLearned { host, phase } => {
                self.learned.insert(*host, *phase);
                let first = self.learned.values().next().copied();
                if self.learned.values().any(|learned| Some(*learned) != first) {
                    count("steps with mixed phases");
                }
            }
            _ => {}
        }
    }

    /// Applies an action to the world, checks refinement (REF-1) when the step
    /// told the properties something, and records it in the trace.
    fn apply(&mut self, action: &Action) -> StepReport {
        let mut report = self.world.step(action);
        self.refinement.on_step(&self.world, action, &mut report);
        if let Some(trace) = &mut self.trace {
            trace.step(&self.world, action, &report);
        }
        let mut changed = report.timers_changed.clone();
        changed.sort_unstable();
        changed.dedup();
        for node in changed {
            self.refresh_timer(node);
        }
        report
    }

    /// When a message arriving at `to` at `arrival` takes effect: at once,
    /// unless `to` is a store with a service time, which serves one request
    /// at a time in the order they were sent (a request's effect and reply
    /// happen when its service ends).
    fn served_at(&mut self, to: NodeId, arrival: Time) -> Time {
        let service_ns = self.scenario.network.store_service_us * NS_PER_US;
        let NodeId::Store(shard) = to else { return arrival };
        if service_ns == 0 {
            return arrival;
        }
        let busy_until = self.store_busy_until.entry(shard).or_insert(Time(0));
        let done = arrival.max(*busy_until).plus_ns(service_ns);
        *busy_until = done;
        done
    }

    /// A one-way latency for a message from `link.0` to `link.1`: the link's
    /// own range if the scenario names one, else the default (times the store
    /// factor when the store is an end).
    fn latency(&mut self, link: (NodeId, NodeId)) -> u64 {
        let network = &self.scenario.network;
        let named = network.links.iter().find(|named| named.from == node_kind(link.0) && named.to == node_kind(link.1));
        if let Some(named) = named {
            return self.rng.between(named.latency_min_us, named.latency_max_us) * NS_PER_US;
        }
        let latency = self.rng.between(network.latency_min_us, network.latency_max_us) * NS_PER_US;
        let touches_store = matches!(link.0, NodeId::Store(_)) || matches!(link.1, NodeId::Store(_));
        if touches_store {
            latency * network.store_latency_factor
        } else {
            latency
        }
    }

    /// Keeps the workload's targets to secrets that exist, as the store has
    /// them once a client was told its write committed.
    fn observe_acknowledged(&mut self, secret: SecretId) {
        let home = self.world.secret_home(secret).expect("an acknowledged secret is routed");
        let entry = self.world.shard_store(home).read(&Key::Secret(secret));
        let exists = matches!(&entry.value, Some(Value::Secret(record)) if record.lifecycle != Lifecycle::Deleted);
        let known = self.live_secrets.iter().position(|live| *live == secret);
        match (exists, known) {
            (true, None) => self.live_secrets.push(secret),
            (false, Some(position)) => {
                self.live_secrets.remove(position);
            }
            _ => {}
        }
    }

    fn observe_lag(&mut self, now: Time, observation: &Observation) {
        match observation {
            Observation::Appended { tenant, seq, secret, .. } => {
                let shard = self.world.secret_home(SecretId(*secret)).expect("an appended secret is routed");
                let times = self.append_times.entry((shard, *tenant)).or_default();
                assert_eq!(times.len() as u64 + 1, *seq, "appends observed in order");
                times.push(now);
            }
            Observation::HostCursor { host, tenant, seq } => {
                let previous = self.host_cursors.insert((*host, *tenant), *seq).unwrap_or(0);
                let shard = host / self.scenario.topology.hosts;
                let times = self.append_times.get(&(shard, *tenant)).map_or(&[][..], Vec::as_slice);
                for position in previous..(*seq).min(times.len() as u64) {
                    self.lag.push(now.0.saturating_sub(times[position as usize].0));
                }
            }
            _ => {}
        }
    }

    /// Brings the driver's firing time of `node`'s timer in step with the
    /// world's deadline, stretched by the node's clock drift and its pause.
    fn refresh_timer(&mut self, node: NodeId) {
        if let Some(fires) = self.timers.remove(&node) {
            self.timer_queue.remove(&(fires, node));
        }
        let Some(deadline) = self.world.timers().get(&node).copied() else { return };
        let drift = self.drift_ppm.get(&node).copied().unwrap_or(0);
        let wait = deadline.0.saturating_sub(self.world.now().0);
        let late = wait / 1_000_000 * drift + wait % 1_000_000 * drift / 1_000_000;
        let fires = self.unpaused(node, deadline.plus_ns(late));
        self.timers.insert(node, fires);
        self.timer_queue.insert((fires, node));
    }

    /// Whether the driver plans no more faults or heals (deliveries and
    /// polls do not count: the world judges whether they still carry work).
    fn plan_is_idle(&self) -> bool {
        self.plan
            .values()
            .all(|planned| !matches!(planned, Planned::Restart(_) | Planned::Heal | Planned::EndFaultPhase))
    }

    fn first_checked(&self, violations: &[Violation]) -> Option<Violation> {
        violations.iter().find(|violation| self.properties.contains(&violation.property)).cloned()
    }

    fn final_check(&mut self, quiet: bool) -> Option<Failure> {
        let violations = end_of_run_violations(&self.world, self.scenario, quiet, &self.refinement);
        if let Some(trace) = &mut self.trace {
            trace.finish(&self.world, quiet, &violations);
        }
        self.first_checked(&violations).map(|violation| Failure { step: 0, violation })
    }

    fn stats(&self, converged: bool) -> RunStats {
        let mut stats =
            RunStats { steps: self.world.steps(), simulated_ns: self.world.now().0, converged, ..RunStats::default() };
        stats.traffic_ns = self.scenario.run.fault_phase_ms * NS_PER_MS;
        for (request, record) in self.world.history() {
            let kind = record.kind.name();
            let tenant = stats.tenants.entry(self.request_tenants[request.0 as usize]).or_default();
            *stats.issued.entry(kind).or_default() += 1;
            tenant.issued += 1;
            if let Some(throttle) = record.throttled {
                *stats.throttled.entry(kind).or_default() += 1;
                tenant.throttled += 1;
                tenant.throttled_within_quota += u64::from(!throttle.over_quota);
            }
            if let Some((answered_at, served)) = record.answered {
                if record.throttled.is_none() {
                    stats.latencies.entry(kind).or_default().push(answered_at.0 - record.issued_at.0);
                    tenant.latencies.push(answered_at.0 - record.issued_at.0);
                }
                if served {
                    *stats.served.entry(kind).or_default() += 1;
                    tenant.served += 1;
                }
            }
            if let Some(shard) = record.shard {
                let counts = stats.shards.entry(shard).or_default();
                counts.issued += 1;
                if let Some((answered_at, served)) = record.answered {
                    counts.latencies.push(answered_at.0 - record.issued_at.0);
                    counts.served += u64::from(served);
                }
            }
        }
        let workers = self.world.worker_stats();
        stats.commits = workers.commits;
        stats.conflicts = workers.conflicts;
        stats.retries = workers.retries;
        stats.replication_lag = self.lag.clone();
        if self.scenario.migration.is_some() {
            stats.migration = self.migration.clone();
            let reads = self.world.read_stats();
            stats.migration.insert("runs ending in switchover", u64::from(self.stored_phase == 4));
            let mixed = self.migration.contains_key("steps with mixed phases");
            stats.migration.insert("runs with mixed phases", u64::from(mixed));
            stats.migration.insert("local reads", reads.local);
            stats.migration.insert("remote reads", reads.remote);
            stats.migration.insert("fallbacks: missing", reads.fallback_missing);
            stats.migration.insert("fallbacks: not active", reads.fallback_not_active);
            stats.migration.insert("fallbacks: damaged", reads.fallback_damaged);
            stats.migration.insert("read repairs", reads.read_repairs);
            stats.migration.insert("shadow mismatches", reads.shadow_mismatches);
            stats.phase_times = self.phase_times.clone();
            stats.backfill_done_times = self.backfill_done_times.clone();
            stats.host_reads = self
                .world
                .history()
                .iter()
                .filter(|(_, record)| record.kind == crate::world::OperationKind::HostRead)
                .map(|(request, record)| HostReadSample {
                    issued_ns: record.issued_at.0,
                    latency_ns: record.answered.map(|(at, _)| at.0 - record.issued_at.0),
                    phase: record.phase.unwrap_or(0),
                    source: record.source,
                    after_create: self.reads_after_create.contains(request),
                })
                .collect();
        }
        stats
    }
}

/// The refinement check of a scenario's world: secret `s` lives in vault
/// `s % vaults`, so in that vault's tenancy.
pub fn refinement_for(scenario: &Scenario, world: &World) -> Refinement {
    let vaults = &world.config().vaults;
    let seeded = scenario.migration.as_ref().map_or(0, |migration| migration.seeded_secrets);
    let secrets = scenario.workload.secrets_max.max(seeded).max(1);
    let secret_tenants = (0..secrets).map(|secret| (secret, vaults[(secret as usize) % vaults.len()].1 .0));
    Refinement::new(world.config().mode, secret_tenants, world.config().hosts)
}

/// The end-of-run check: the quiescent properties, and REP-6's bound when the
/// world did not become quiet in time.
pub fn end_of_run_violations(
    world: &World,
    scenario: &Scenario,
    quiet: bool,
    refinement: &RefinementTracker,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    if !quiet {
        violations.push(Violation {
            property: PropertyId::Rep6,
            detail: format!(
                "the world did not become quiet within {} ms of the heal{}",
                scenario.run.converge_within_ms,
                world.why_not_quiet().map_or(String::new(), |why| format!("; still waiting for: {why}"))
            ),
        });
    }
    violations.extend(world.check_quiescent());
    violations.extend(refinement.end_check(world));
    violations
}

/// The secret an operation names (vault operations: none, secret 0).
fn operation_secret(operation: &Operation) -> SecretId {
    match operation {
        Operation::CreateSecret { secret, .. }
        | Operation::UpdateSecret { secret, .. }
        | Operation::ScheduleDeletion { secret }
        | Operation::DeleteSecret { secret, .. }
        | Operation::ReadSecret { secret } => *secret,
        Operation::CreateVault { .. } | Operation::DeleteVault { .. } => SecretId(0),
    }
}

/// The kind of a node, as scenario links name it.
fn node_kind(node: NodeId) -> &'static str {
    match node {
        NodeId::Worker(_) => "worker",
        NodeId::Host(_) => "host",
        NodeId::Publisher(..) => "publisher",
        NodeId::Activator(_) => "activator",
        NodeId::Operator => "operator",
        NodeId::Backfiller => "backfiller",
        NodeId::Verifier => "verifier",
        NodeId::Reader(_) => "reader",
        NodeId::Router(_) => "router",
        NodeId::ShardAdder => "shard-adder",
        NodeId::Store(_) => "store",
        NodeId::Client => "client",
    }
}

fn action_time(action: &Action) -> Option<Time> {
    match action {
        Action::Deliver { at, .. }
        | Action::FireTimer { at, .. }
        | Action::Submit { at, .. }
        | Action::Read { at, .. }
        | Action::Rollback { at } => Some(*at),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
