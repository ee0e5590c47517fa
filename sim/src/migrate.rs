//! The migration's measurements (`vaultsim migrate`): what the write-up
//! reports, reproduced on one scenario (`specs/scenarios/migration-latency.toml`).
//!
//! Each seed runs three variants of the scenario:
//!
//! * as written: the backfill under its rate limit;
//! * `unlimited`: the backfill without a rate limit (in effect a million
//!   requests per second);
//! * `no backfill`: the schedule stops at `Sync`, so no backfill runs.
//!
//! The backfill's cost to customers is the p99 latency of host reads issued
//! while the backfill runs (from the store's `Backfill` commit until the
//! backfiller reports done); the `no backfill` run is measured over the
//! rate-limited run's window of the same seed. Before `Switchover` every host read goes
//! to the remote store; after it, the read path serves locally, so read
//! latency before and after switchover (by the phase the store held when the
//! read was issued) shows the cut the write-up reports. Reads of a secret
//! right after its create (`workload.read_after_create`) in `Switchover` show
//! how often the read path falls back to the store, and why.
//!
//! Per-seed figures are folded by their median over the seeds.

use serde::Serialize;
use vault::accessor::{Fallback, Source};
use vault::bugzoo::Bugs;

use crate::driver::{run, HostReadSample, RunOptions, RunResult};
use crate::report::{median, percentile};
use crate::scenario::{PhaseName, Scenario};

/// Seeds by default.
pub const SEEDS_DEFAULT: u64 = 5;

const BACKFILL: u8 = 2;
const SWITCHOVER: u8 = 4;
const NS_PER_MS: f64 = 1e6;

/// Read latency while the backfill runs, for one variant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackfillImpact {
    /// `rate-limited`, `unlimited` or `no backfill`.
    pub variant: &'static str,
    /// How long the backfill ran, ms (the window measured).
    pub window_ms: f64,
    /// Host reads issued in the window.
    pub reads: f64,
    /// Their p50 and p99 latency, ms.
    pub p50_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Seeds that violated a property.
    pub failed_seeds: usize,
}

/// Host read latency before and after switchover.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SwitchoverCut {
    /// Host reads issued in `Sync` to `Verify`.
    pub reads_before: f64,
    /// p50 before, ms.
    pub p50_before_ms: f64,
    /// p99 before, ms.
    pub p99_before_ms: f64,
    /// Host reads issued in `Switchover`.
    pub reads_after: f64,
    /// p50 after, ms.
    pub p50_after_ms: f64,
    /// p99 after, ms.
    pub p99_after_ms: f64,
    /// 1 − p50 after / p50 before, in percent.
    pub p50_cut_percent: f64,
    /// 1 − p99 after / p99 before, in percent.
    pub p99_cut_percent: f64,
}

/// Reads of a secret right after its create, in `Switchover`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReadsAfterCreate {
    /// Such reads.
    pub reads: f64,
    /// Served from the local store.
    pub local: f64,
    /// Fell back: the host had not applied the secret yet.
    pub fallback_missing: f64,
    /// Fell back: the host holds it `Creating`.
    pub fallback_not_active: f64,
    /// Read remotely: the host's read path had not learned `Switchover` yet.
    pub remote: f64,
    /// The share that fell back, percent.
    pub fallback_percent: f64,
    /// p99 latency of these reads, ms.
    pub p99_ms: f64,
}

/// Everything `vaultsim migrate` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MigrationLatency {
    /// Seeds run per variant.
    pub seeds: usize,
    /// The backfill's cost to customer reads, per variant.
    pub backfill: Vec<BackfillImpact>,
    /// Read latency before and after switchover (rate-limited runs).
    pub switchover: SwitchoverCut,
    /// Reads right after a create (rate-limited runs).
    pub after_create: ReadsAfterCreate,
}

/// The variant of `base` without a backfill rate limit.
pub fn unlimited(base: &Scenario) -> Scenario {
    let mut scenario = base.clone();
    scenario.name = format!("{}-unlimited", base.name);
    if let Some(migration) = &mut scenario.migration {
        migration.backfill_rate_per_second = 0;
    }
    scenario
}

/// The variant of `base` whose schedule stops at `Sync`.
pub fn without_backfill(base: &Scenario) -> Scenario {
    let mut scenario = base.clone();
    scenario.name = format!("{}-no-backfill", base.name);
    if let Some(migration) = &mut scenario.migration {
        migration.schedule.retain(|entry| entry.phase == PhaseName::Sync);
    }
    scenario
}

/// The backfill's window of a run: from the store's first `Backfill` commit
/// to the backfiller's first report that it is done (or the next phase
/// commit, or the end of traffic, whichever comes first), ns.
fn backfill_window(result: &RunResult) -> Option<(u64, u64)> {
    let stats = &result.stats;
    let start_index = stats.phase_times.iter().position(|(_, phase)| *phase == BACKFILL)?;
    let start = stats.phase_times[start_index].0;
    let next_phase = stats.phase_times.get(start_index + 1).map_or(stats.traffic_ns, |(at, _)| *at);
    let done = stats.backfill_done_times.iter().copied().find(|at| *at >= start).unwrap_or(u64::MAX);
    Some((start, next_phase.min(done)))
}

/// The sorted latencies of answered reads that `keep` selects, ns.
fn latencies(reads: &[HostReadSample], keep: impl Fn(&HostReadSample) -> bool) -> Vec<u64> {
    let mut samples: Vec<u64> = reads.iter().filter(|read| keep(read)).filter_map(|read| read.latency_ns).collect();
    samples.sort_unstable();
    samples
}

fn ms(ns: u64) -> f64 {
    ns as f64 / NS_PER_MS
}

/// Runs the three variants of `base` for `seeds`; `on_run` is told of each run.
pub fn measure(base: &Scenario, seeds: &[u64], mut on_run: impl FnMut()) -> MigrationLatency {
    assert!(!seeds.is_empty(), "a measurement runs at least one seed");
    assert!(base.migration.is_some(), "a migration scenario");
    let run_seed = |scenario: &Scenario, seed: u64| {
        run(scenario, &RunOptions { seed, swarm: false, trace: false, bugs: Bugs::none() })
    };
    let variants =
        [("rate-limited", base.clone()), ("unlimited", unlimited(base)), ("no backfill", without_backfill(base))];
    let mut impacts: Vec<Vec<Impact>> = vec![Vec::new(); variants.len()];
    let mut before_after = Vec::new();
    let mut after_create = Vec::new();
    for seed in seeds {
        let mut limited_window = None;
        for (index, (_, scenario)) in variants.iter().enumerate() {
            let result = run_seed(scenario, *seed);
            on_run();
            let window = backfill_window(&result).or(limited_window).unwrap_or((0, 0));
            if index == 0 {
                limited_window = Some(window);
                before_after.push(switchover_cut(&result.stats.host_reads));
                after_create.push(reads_after_create(&result.stats.host_reads));
            }
            let reads = &result.stats.host_reads;
            let samples = latencies(reads, |read| (window.0..window.1).contains(&read.issued_ns));
            impacts[index].push((
                ms(window.1 - window.0),
                samples.len() as f64,
                ms(percentile(&samples, 500)),
                ms(percentile(&samples, 990)),
                result.failure.is_some(),
            ));
        }
    }
    let backfill = variants
        .iter()
        .zip(&impacts)
        .map(|((variant, _), runs)| {
            let column = |field: fn(&Impact) -> f64| median(runs.iter().map(field).collect());
            BackfillImpact {
                variant,
                window_ms: column(|run| run.0),
                reads: column(|run| run.1),
                p50_ms: column(|run| run.2),
                p99_ms: column(|run| run.3),
                failed_seeds: runs.iter().filter(|run| run.4).count(),
            }
        })
        .collect();
    MigrationLatency {
        seeds: seeds.len(),
        backfill,
        switchover: fold_cuts(&before_after),
        after_create: fold_after_create(&after_create),
    }
}

/// One run's backfill window: (window ms, reads, p50 ms, p99 ms, failed).
type Impact = (f64, f64, f64, f64, bool);

/// (reads before, p50 before, p99 before, reads after, p50 after, p99 after), ms.
type Cut = (f64, f64, f64, f64, f64, f64);

fn switchover_cut(reads: &[HostReadSample]) -> Cut {
    let before = latencies(reads, |read| (1..SWITCHOVER).contains(&read.phase));
    let after = latencies(reads, |read| read.phase == SWITCHOVER);
    (
        before.len() as f64,
        ms(percentile(&before, 500)),
        ms(percentile(&before, 990)),
        after.len() as f64,
        ms(percentile(&after, 500)),
        ms(percentile(&after, 990)),
    )
}

fn fold_cuts(cuts: &[Cut]) -> SwitchoverCut {
    let column = |field: fn(&Cut) -> f64| median(cuts.iter().map(field).collect());
    let (p50_before_ms, p99_before_ms) = (column(|cut| cut.1), column(|cut| cut.2));
    let (p50_after_ms, p99_after_ms) = (column(|cut| cut.4), column(|cut| cut.5));
    // No cut to speak of when either side has no reads.
    let measured = column(|cut| cut.0) > 0.0 && column(|cut| cut.3) > 0.0;
    let cut =
        |before: f64, after: f64| if measured && before > 0.0 { 100.0 * (1.0 - after / before) } else { f64::NAN };
    SwitchoverCut {
        reads_before: column(|cut| cut.0),
        p50_before_ms,
        p99_before_ms,
        reads_after: column(|cut| cut.3),
        p50_after_ms,
        p99_after_ms,
        p50_cut_percent: cut(p50_before_ms, p50_after_ms),
        p99_cut_percent: cut(p99_before_ms, p99_after_ms),
    }
}

/// (reads, local, fallback missing, fallback not active, p99 ms, remote).
type AfterCreate = (f64, f64, f64, f64, f64, f64);

fn reads_after_create(reads: &[HostReadSample]) -> AfterCreate {
    let selected: Vec<&HostReadSample> =
        reads.iter().filter(|read| read.after_create && read.phase == SWITCHOVER).collect();
    let count = |source: Source| selected.iter().filter(|read| read.source == Some(source)).count() as f64;
    let samples = latencies(reads, |read| read.after_create && read.phase == SWITCHOVER);
    (
        selected.len() as f64,
        count(Source::Local),
        count(Source::Fallback(Fallback::Missing)),
        count(Source::Fallback(Fallback::NotActive)),
        ms(percentile(&samples, 990)),
        count(Source::Remote),
    )
}

fn fold_after_create(runs: &[AfterCreate]) -> ReadsAfterCreate {
    let column = |field: fn(&AfterCreate) -> f64| median(runs.iter().map(field).collect());
    // The share is of the totals, so a seed with few reads weighs little.
    let reads: f64 = runs.iter().map(|run| run.0).sum();
    let fell_back: f64 = runs.iter().map(|run| run.2 + run.3).sum();
    ReadsAfterCreate {
        reads: column(|run| run.0),
        local: column(|run| run.1),
        fallback_missing: column(|run| run.2),
        fallback_not_active: column(|run| run.3),
        remote: column(|run| run.5),
        fallback_percent: if reads > 0.0 { 100.0 * fell_back / reads } else { 0.0 },
        p99_ms: column(|run| run.4),
    }
}

/// The measurements as text tables.
pub fn to_table(measured: &MigrationLatency) -> String {
    let mut out = String::from("host reads while the backfill runs\n");
    out.push_str(&format!(
        "  {:<13} {:>10} {:>8} {:>8} {:>8} {:>6}\n",
        "variant", "window ms", "reads", "p50 ms", "p99 ms", "failed"
    ));
    for impact in &measured.backfill {
        out.push_str(&format!(
            "  {:<13} {:>10.0} {:>8.0} {:>8.2} {:>8.2} {:>6}\n",
            impact.variant, impact.window_ms, impact.reads, impact.p50_ms, impact.p99_ms, impact.failed_seeds
        ));
    }
    let cut = &measured.switchover;
    out.push_str("host reads before and after switchover\n");
    out.push_str(&format!("  {:<8} {:>8} {:>8} {:>8}\n", "phase", "reads", "p50 ms", "p99 ms"));
    out.push_str(&format!(
        "  {:<8} {:>8.0} {:>8.2} {:>8.2}\n",
        "before", cut.reads_before, cut.p50_before_ms, cut.p99_before_ms
    ));
    out.push_str(&format!(
        "  {:<8} {:>8.0} {:>8.2} {:>8.2}\n",
        "after", cut.reads_after, cut.p50_after_ms, cut.p99_after_ms
    ));
    out.push_str(&format!("  cut: p50 {:.0} %, p99 {:.0} %\n", cut.p50_cut_percent, cut.p99_cut_percent));
    let created = &measured.after_create;
    out.push_str(&format!(
        "reads right after a create, in switchover: {:.0} reads, {:.0} local, {:.0} fell back (missing {:.0}, \
         not active {:.0}), {:.0} remote before the host learned the phase: {:.1} % fell back; p99 {:.2} ms\n",
        created.reads,
        created.local,
        created.fallback_missing + created.fallback_not_active,
        created.fallback_missing,
        created.fallback_not_active,
        created.remote,
        created.fallback_percent,
        created.p99_ms
    ));
    out
}

#[cfg(test)]
mod tests;
