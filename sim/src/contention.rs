//! The contention sweep: writers per tenancy against the interceptor mode, in
//! the simulator (DESIGN.md, "Phenomena to reproduce").
//!
//! From a base scenario (`specs/scenarios/contention.toml`) the sweep derives
//! one scenario per (mode, writers): `topology.workers = writers`, one
//! tenancy, `replication.mode = mode`, and the base's per-worker offered load
//! kept per worker. The driver spreads `workload.rate_per_second` (a total)
//! uniformly over the workers, so the derived rate is
//! `writers * base.rate_per_second / base.workers`; `workload.secrets_max`
//! scales the same way, so each writer keeps the base's share of secrets and
//! only the tenancy's log head is shared more as writers grow. The
//! convergence bound (`run.converge_within_ms`) scales the same way, never
//! below the base's: after the heal, every writer's queue of up to
//! `queue_requests_max` operations must still drain, and a sync writer among
//! 32 commits a few times a second (REP-6 is checked against that bound).
//! Everything else (mix, Zipf exponent, network, fault phase) is the base's.
//!
//! Each cell runs a few seeds; a cell reports medians over its seeds of:
//! committed writes per simulated second while clients offer load (the fault
//! phase), conflicts and retries per commit and the p99 latency of write
//! operations over the whole run (queued operations drain after the fault
//! phase), and the share of writes not served. The run's
//! [`crate::driver::RunStats`] count the whole run, so the commits of the
//! fault phase come from re-stepping the run's trace in a fresh world up to
//! the phase's end and reading [`crate::world::World::worker_stats`] there.
//! Same seeds, same table: nothing here reads a clock.

use serde::Serialize;
use vault::bugzoo::Bugs;

use crate::driver::{run, RunOptions, RunResult};
use crate::plot::{Chart, Series};
use crate::report::{median, percentile};
use crate::scenario::{Mode, Scenario};
use crate::trace::{action_from_json, parse_header};

/// Writers per tenancy swept by default.
pub const WRITERS: [u32; 6] = [1, 2, 4, 8, 16, 32];
/// Interceptor modes swept, in table order.
pub const MODES: [Mode; 2] = [Mode::Sync, Mode::Async];
/// Seeds per cell by default.
pub const SEEDS_DEFAULT: u64 = 5;

/// Operation kinds (as [`crate::world::OperationKind::name`] spells them) that write.
const WRITE_KINDS: [&str; 3] = ["create", "update", "delete"];

/// What to sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepPlan {
    /// Interceptor modes, in table order.
    pub modes: Vec<Mode>,
    /// Writers per tenancy, ascending.
    pub writers: Vec<u32>,
    /// Seeds run in every cell.
    pub seeds: Vec<u64>,
    /// Overrides the base's `run.fault_phase_ms` (shorter runs for tests).
    pub fault_phase_ms: Option<u64>,
}

impl SweepPlan {
    /// Every mode and writer count of the default sweep, seeds `0..seeds`.
    pub fn standard(seeds: u64) -> SweepPlan {
        SweepPlan {
            modes: MODES.to_vec(),
            writers: WRITERS.to_vec(),
            seeds: (0..seeds).collect(),
            fault_phase_ms: None,
        }
    }

    /// Runs in the whole sweep.
    pub fn runs(&self) -> usize {
        self.modes.len() * self.writers.len() * self.seeds.len()
    }
}

/// The scenario of one cell, derived from `base` (see the module documentation).
pub fn cell_scenario(base: &Scenario, mode: Mode, writers: u32) -> Scenario {
    assert!(writers > 0, "a cell has at least one writer");
    assert!(base.topology.workers > 0, "the base scenario has workers");
    let per_writer = |total: u32| (u64::from(total) * u64::from(writers) / u64::from(base.topology.workers)).max(1);
    let mut scenario = base.clone();
    scenario.name = format!("{}-{}-{writers}w", base.name, mode_name(mode));
    scenario.description = format!("{writers} writers on one tenancy, {} interception", mode_name(mode));
    scenario.topology.workers = writers;
    scenario.workload.tenants = 1;
    scenario.workload.rate_per_second =
        u32::try_from(per_writer(base.workload.rate_per_second)).expect("an offered rate fits in u32");
    scenario.workload.secrets_max =
        u32::try_from(per_writer(base.workload.secrets_max)).expect("a secret count fits in u32");
    scenario.replication.mode = mode;
    let converge_ms = base.run.converge_within_ms;
    scenario.run.converge_within_ms =
        (converge_ms * u64::from(writers) / u64::from(base.topology.workers)).max(converge_ms);
    scenario
}

/// The lowercase name of a mode, as scenario files spell it.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Sync => "sync",
        Mode::Async => "async",
    }
}

/// What one seed of one cell measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeedMeasure {
    /// The seed.
    pub seed: u64,
    /// Worker commits while clients offered load (the fault phase).
    pub offered_commits: u64,
    /// Worker commits over the whole run (every committed write transaction).
    pub commits: u64,
    /// Worker commits refused with a conflict.
    pub conflicts: u64,
    /// Worker attempts after the first.
    pub retries: u64,
    /// Write operations issued by clients.
    pub writes_issued: u64,
    /// Write operations served (committed, or a domain answer).
    pub writes_served: u64,
    /// 99th percentile of answered write operations' latency, ns.
    pub write_p99_ns: u64,
    /// The fault phase (clients offering load), ns.
    pub offered_ns: u64,
    /// The whole run including the drain and convergence, ns.
    pub simulated_ns: u64,
    /// The property the run violated and how (it must not), if any.
    pub failure: Option<String>,
}

impl SeedMeasure {
    /// Reads the measures of one run of `scenario`, recorded with its trace.
    pub fn of(scenario: &Scenario, result: &RunResult) -> SeedMeasure {
        let stats = &result.stats;
        let lines = result.trace.as_deref().expect("a contention run records its trace");
        let offered_ns = scenario.run.fault_phase_ms * 1_000_000;
        let count = |counts: &std::collections::BTreeMap<&'static str, u64>| -> u64 {
            WRITE_KINDS.iter().filter_map(|kind| counts.get(kind)).sum()
        };
        let mut latencies: Vec<u64> =
            WRITE_KINDS.iter().filter_map(|kind| stats.latencies.get(kind)).flatten().copied().collect();
        latencies.sort_unstable();
        SeedMeasure {
            seed: result.seed,
            offered_commits: worker_commits_until(lines, offered_ns),
            commits: stats.commits,
            conflicts: stats.conflicts,
            retries: stats.retries,
            writes_issued: count(&stats.issued),
            writes_served: count(&stats.served),
            write_p99_ns: percentile(&latencies, 990),
            offered_ns,
            simulated_ns: stats.simulated_ns,
            failure: result.failure.as_ref().map(|failure| failure.violation.to_string()),
        }
    }

    /// Commits per simulated second of the fault phase.
    pub fn committed_per_second(&self) -> f64 {
        self.offered_commits as f64 / (self.offered_ns.max(1) as f64 / 1e9)
    }

    /// Conflicts per commit (0 when nothing committed and nothing conflicted).
    pub fn conflicts_per_commit(&self) -> f64 {
        ratio(self.conflicts, self.commits)
    }

    /// Retries per commit.
    pub fn retries_per_commit(&self) -> f64 {
        ratio(self.retries, self.commits)
    }

    /// The share of issued writes not served (busy, retries exhausted, unknown).
    pub fn unserved_share(&self) -> f64 {
        ratio(self.writes_issued - self.writes_served, self.writes_issued)
    }
}

/// The workers' commits at simulated time `until_ns`, by re-stepping the
/// trace `lines` (header first) in a fresh world.
fn worker_commits_until(lines: &[String], until_ns: u64) -> u64 {
    let (header, steps) = lines.split_first().expect("a trace has a header");
    let header = parse_header(header).expect("the driver writes a valid header");
    let (mut world, _) = header.start();
    for (index, line) in steps.iter().enumerate() {
        let json: serde_json::Value = serde_json::from_str(line).expect("the driver writes JSON lines");
        let Some(action) = json.get("action") else { break }; // The end-of-run line.
        if action_time_ns(action).is_some_and(|at| at > until_ns) {
            break;
        }
        let action = action_from_json(action, index + 2).expect("the driver writes valid actions");
        world.step(&action);
        assert_eq!(Some(world.steps()), json["step"].as_u64(), "the re-stepped world follows the trace");
    }
    assert!(world.now().0 <= until_ns, "re-stepped past the fault phase");
    world.worker_stats().commits
}

/// The time an action (as traced) happens at, if it carries one.
fn action_time_ns(action: &serde_json::Value) -> Option<u64> {
    let (_, body) = action.as_object()?.iter().next()?;
    body.get("at")?.as_u64()
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if numerator == 0 {
        return 0.0;
    }
    numerator as f64 / denominator.max(1) as f64
}

/// One (mode, writers) cell: medians over its seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cell {
    /// `sync` or `async`.
    pub mode: &'static str,
    /// Writers (workers) on the one tenancy.
    pub writers: u32,
    /// Offered arrivals per simulated second (all writers together).
    pub offered_per_second: u32,
    /// Median committed writes per simulated second of the fault phase.
    pub committed_per_second: f64,
    /// The same divided by the writers.
    pub committed_per_second_per_writer: f64,
    /// Median conflicts per commit.
    pub conflicts_per_commit: f64,
    /// Median retries per commit.
    pub retries_per_commit: f64,
    /// Median p99 write latency, ms of simulated time.
    pub write_p99_ms: f64,
    /// Median share of issued writes not served.
    pub unserved_share: f64,
    /// Seeds that violated a property (must be 0).
    pub failed_seeds: u64,
    /// The measures of each seed.
    pub seeds: Vec<SeedMeasure>,
}

impl Cell {
    /// Folds the measures of one cell's seeds.
    pub fn new(scenario: &Scenario, measures: Vec<SeedMeasure>) -> Cell {
        assert!(!measures.is_empty(), "a cell has at least one seed");
        let median_of = |value: fn(&SeedMeasure) -> f64| median(measures.iter().map(value).collect());
        let committed_per_second = median_of(SeedMeasure::committed_per_second);
        Cell {
            mode: mode_name(scenario.replication.mode),
            writers: scenario.topology.workers,
            offered_per_second: scenario.workload.rate_per_second,
            committed_per_second,
            committed_per_second_per_writer: committed_per_second / f64::from(scenario.topology.workers),
            conflicts_per_commit: median_of(SeedMeasure::conflicts_per_commit),
            retries_per_commit: median_of(SeedMeasure::retries_per_commit),
            write_p99_ms: median_of(|measure| measure.write_p99_ns as f64 / 1e6),
            unserved_share: median_of(SeedMeasure::unserved_share),
            failed_seeds: measures.iter().filter(|measure| measure.failure.is_some()).count() as u64,
            seeds: measures,
        }
    }
}

/// The whole sweep: cells in plan order (modes outer, writers inner).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepTable {
    /// The base scenario's name.
    pub base: String,
    /// Seeds run per cell.
    pub seeds: Vec<u64>,
    /// Simulated fault phase per run, ms.
    pub fault_phase_ms: u64,
    /// The cells.
    pub cells: Vec<Cell>,
}

/// Runs the sweep of `plan` over `base`; `on_run` hears after each run.
pub fn sweep(base: &Scenario, plan: &SweepPlan, mut on_run: impl FnMut(&Scenario, u64)) -> SweepTable {
    assert!(!plan.seeds.is_empty(), "a sweep runs at least one seed");
    let mut cells = Vec::with_capacity(plan.modes.len() * plan.writers.len());
    let mut fault_phase_ms = base.run.fault_phase_ms;
    for mode in &plan.modes {
        for writers in &plan.writers {
            let mut scenario = cell_scenario(base, *mode, *writers);
            if let Some(fault_phase_ms) = plan.fault_phase_ms {
                scenario.run.fault_phase_ms = fault_phase_ms;
            }
            fault_phase_ms = scenario.run.fault_phase_ms;
            let mut measures = Vec::with_capacity(plan.seeds.len());
            for seed in &plan.seeds {
                let options = RunOptions { seed: *seed, swarm: false, trace: true, bugs: Bugs::none() };
                let result = run(&scenario, &options);
                measures.push(SeedMeasure::of(&scenario, &result));
                on_run(&scenario, *seed);
            }
            cells.push(Cell::new(&scenario, measures));
        }
    }
    SweepTable { base: base.name.clone(), seeds: plan.seeds.clone(), fault_phase_ms, cells }
}

impl SweepTable {
    /// The cells of one mode, in writer order.
    pub fn cells_of(&self, mode: Mode) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(move |cell| cell.mode == mode_name(mode))
    }

    /// The table as text (medians over seeds).
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "contention sweep from `{}`: {} seeds per cell, {} ms of offered load per run (medians over seeds)\n",
            self.base,
            self.seeds.len(),
            self.fault_phase_ms
        );
        out.push_str(&format!(
            "{:<6} {:>7} {:>10} {:>12} {:>10} {:>12} {:>12} {:>10} {:>9} {:>6}\n",
            "mode",
            "writers",
            "offered/s",
            "committed/s",
            "per writer",
            "conflicts/c",
            "retries/c",
            "p99 ms",
            "unserved",
            "failed"
        ));
        for cell in &self.cells {
            out.push_str(&format!(
                "{:<6} {:>7} {:>10} {:>12.1} {:>10.1} {:>12.3} {:>12.3} {:>10.1} {:>9.3} {:>6}\n",
                cell.mode,
                cell.writers,
                cell.offered_per_second,
                cell.committed_per_second,
                cell.committed_per_second_per_writer,
                cell.conflicts_per_commit,
                cell.retries_per_commit,
                cell.write_p99_ms,
                cell.unserved_share,
                cell.failed_seeds
            ));
        }
        for cell in &self.cells {
            for seed in cell.seeds.iter().filter(|seed| seed.failure.is_some()) {
                let failure = seed.failure.as_deref().unwrap_or_default();
                out.push_str(&format!("FAIL {} {} writers seed {}: {failure}\n", cell.mode, cell.writers, seed.seed));
            }
        }
        out
    }
}

/// One cell of the real-threads bench (`impl/benches/contention.rs`, `--json`):
/// medians over the runs found for its (mode, writers).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RealCell {
    /// `sync` or `async`.
    pub mode: String,
    /// Writer threads.
    pub writers: u32,
    /// Runs of this cell found.
    pub runs: usize,
    /// Median commits per wall-clock second.
    pub commits_per_second: f64,
    /// Median conflicts per commit.
    pub conflicts_per_commit: f64,
}

/// Parses the bench's JSON lines (one or more runs, concatenated); other
/// lines are skipped. Cells come out sorted by mode (sync first) and writers.
pub fn parse_real(text: &str) -> Result<Vec<RealCell>, String> {
    let mut samples: Vec<(u8, u32, String, f64, f64)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let Ok(json) = serde_json::from_str::<serde_json::Value>(line.trim()) else { continue };
        let field = |name: &str| json.get(name).ok_or_else(|| format!("line {}: no field `{name}`", index + 1));
        let mode = field("mode")?.as_str().ok_or_else(|| format!("line {}: `mode` is not text", index + 1))?;
        let order = match mode {
            "sync" => 0,
            "async" => 1,
            other => return Err(format!("line {}: unknown mode `{other}`", index + 1)),
        };
        let writers = field("writers")?.as_u64().and_then(|writers| u32::try_from(writers).ok());
        let writers = writers.ok_or_else(|| format!("line {}: `writers` is not a count", index + 1))?;
        // The bench writes null for a ratio without commits.
        let number = |name: &str| field(name).map(|value| value.as_f64().unwrap_or(f64::NAN));
        samples.push((order, writers, mode.to_string(), number("commits_per_s")?, number("conflicts_per_commit")?));
    }
    if samples.is_empty() {
        return Err("no bench lines (expected the JSON lines of `--bench contention -- --json`)".into());
    }
    samples.sort_by_key(|sample| (sample.0, sample.1));
    let mut cells: Vec<RealCell> = Vec::new();
    for group in samples.chunk_by(|left, right| (left.0, left.1) == (right.0, right.1)) {
        let (_, writers, mode, _, _) = &group[0];
        cells.push(RealCell {
            mode: mode.clone(),
            writers: *writers,
            runs: group.len(),
            commits_per_second: median(group.iter().map(|sample| sample.3).collect()),
            conflicts_per_commit: median(group.iter().map(|sample| sample.4).collect()),
        });
    }
    Ok(cells)
}

/// Committed writes per simulated second against writers: all writers
/// together and per writer, sync and async (log2 axes).
pub fn throughput_chart(table: &SweepTable) -> Chart {
    let mut chart = Chart::new(
        "Committed writes per simulated second, one tenancy",
        "writers per tenancy",
        "committed writes per simulated s",
    );
    chart.x_log2 = true;
    chart.y_log2 = true;
    for (colour, mode) in MODES.iter().enumerate() {
        let cells: Vec<&Cell> = table.cells_of(*mode).collect();
        let total = cells.iter().map(|cell| (f64::from(cell.writers), cell.committed_per_second)).collect();
        let mut series = Series::new(&format!("{} (all writers)", mode_name(*mode)), total);
        series.colour = Some(colour);
        chart.series.push(series);
        let per_writer = cells
            .iter()
            .map(|cell| (f64::from(cell.writers), cell.committed_per_second / f64::from(cell.writers)))
            .collect();
        let mut series = Series::new(&format!("{} (per writer)", mode_name(*mode)), per_writer);
        series.colour = Some(colour);
        series.dashed = true;
        chart.series.push(series);
    }
    chart
}

/// Conflicts per commit against writers, sync and async; with `real`, the
/// real-threads bench's as dashed lines.
pub fn conflicts_chart(table: &SweepTable, real: Option<&[RealCell]>) -> Chart {
    let mut chart = Chart::new("Conflicts per commit, one tenancy", "writers per tenancy", "conflicts per commit");
    chart.x_log2 = true;
    for (colour, mode) in MODES.iter().enumerate() {
        let points = table.cells_of(*mode).map(|cell| (f64::from(cell.writers), cell.conflicts_per_commit)).collect();
        let mut series = Series::new(&format!("{} (simulated)", mode_name(*mode)), points);
        series.colour = Some(colour);
        chart.series.push(series);
    }
    for (colour, mode) in MODES.iter().enumerate() {
        let Some(real) = real else { break };
        let points = real_cells(real, *mode).map(|cell| (f64::from(cell.writers), cell.conflicts_per_commit)).collect();
        let mut series = Series::new(&format!("{} (real threads)", mode_name(*mode)), points);
        series.colour = Some(colour);
        series.dashed = true;
        chart.series.push(series);
    }
    chart
}

/// Throughput relative to each curve's own 1-writer value, simulated and
/// real threads, so the shapes compare (log2 axes).
pub fn shapes_chart(table: &SweepTable, real: &[RealCell]) -> Chart {
    let mut chart = Chart::new(
        "Throughput relative to one writer: simulated and real threads",
        "writers per tenancy",
        "commits per s / commits per s with 1 writer",
    );
    chart.x_log2 = true;
    chart.y_log2 = true;
    for (colour, mode) in MODES.iter().enumerate() {
        let simulated: Vec<(f64, f64)> =
            table.cells_of(*mode).map(|cell| (f64::from(cell.writers), cell.committed_per_second)).collect();
        let mut series = Series::new(&format!("{} (simulated)", mode_name(*mode)), normalised(&simulated));
        series.colour = Some(colour);
        chart.series.push(series);
    }
    for (colour, mode) in MODES.iter().enumerate() {
        let measured: Vec<(f64, f64)> =
            real_cells(real, *mode).map(|cell| (f64::from(cell.writers), cell.commits_per_second)).collect();
        let mut series = Series::new(&format!("{} (real threads)", mode_name(*mode)), normalised(&measured));
        series.colour = Some(colour);
        series.dashed = true;
        chart.series.push(series);
    }
    chart
}

fn real_cells(real: &[RealCell], mode: Mode) -> impl Iterator<Item = &RealCell> {
    real.iter().filter(move |cell| cell.mode == mode_name(mode))
}

/// `points` with every y divided by the y at x = 1 (empty without one).
fn normalised(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let Some((_, base)) = points.iter().find(|(x, _)| *x == 1.0) else { return Vec::new() };
    points.iter().map(|(x, y)| (*x, y / base)).collect()
}

#[cfg(test)]
mod tests;
