//! Summaries of simulation sweeps: what a reviewer reads after `vaultsim sim`.
//!
//! A [`SweepSummary`] folds the results of many seeds of one scenario into
//! counts, latency percentiles per operation kind, availability, contention
//! (conflicts and retries per commit), replication lag, and the failing seeds
//! with the exact command that replays each. It renders as a text table or as
//! JSON; the binary adds wall-clock figures, which the library never reads.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::driver::RunResult;

/// Latency percentiles of one operation kind, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Operations issued.
    pub issued: u64,
    /// Operations answered without an availability failure.
    pub served: u64,
    /// Median latency of answered operations, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
}

/// A failing seed and how to see it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailingSeed {
    /// The seed.
    pub seed: u64,
    /// The property's stable ID.
    pub property: String,
    /// What broke.
    pub detail: String,
    /// The step that showed it (0: the end-of-run check).
    pub step: u64,
    /// The trace file, when written.
    pub trace: Option<String>,
    /// The command that replays it.
    pub replay: String,
}

/// One scenario's sweep over seeds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SweepSummary {
    /// The scenario.
    pub scenario: String,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds that failed.
    pub failed: u64,
    /// Steps (world actions) over all seeds.
    pub steps: u64,
    /// Simulated time over all seeds, ns.
    pub simulated_ns: u64,
    /// Per operation kind.
    pub operations: BTreeMap<String, Latency>,
    /// Fraction of issued operations served.
    pub availability: f64,
    /// Commits over all seeds.
    pub commits: u64,
    /// Conflicts per commit.
    pub conflicts_per_commit: f64,
    /// Retries per commit.
    pub retries_per_commit: f64,
    /// 99th percentile of replication lag (append to applied), µs.
    pub replication_lag_p99_us: u64,
    /// Failing seeds.
    pub failures: Vec<FailingSeed>,
}

impl SweepSummary {
    /// Folds `results` (one per seed) of `scenario`; `failure_of` gives each
    /// failing seed's trace path and replay command.
    pub fn new(
        scenario: &str,
        results: &[RunResult],
        failure_of: impl Fn(&RunResult) -> (Option<String>, String),
    ) -> SweepSummary {
        let mut summary =
            SweepSummary { scenario: scenario.to_string(), seeds: results.len() as u64, ..SweepSummary::default() };
        let mut latencies: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        let mut lag = Vec::new();
        let (mut conflicts, mut retries, mut issued, mut served) = (0, 0, 0, 0);
        for result in results {
            let stats = &result.stats;
            summary.steps += stats.steps;
            summary.simulated_ns += stats.simulated_ns;
            summary.commits += stats.commits;
            conflicts += stats.conflicts;
            retries += stats.retries;
            for (kind, count) in &stats.issued {
                summary.operations.entry((*kind).to_string()).or_default().issued += count;
                issued += count;
            }
            for (kind, count) in &stats.served {
                summary.operations.entry((*kind).to_string()).or_default().served += count;
                served += count;
            }
            for (kind, samples) in &stats.latencies {
                latencies.entry(kind).or_default().extend_from_slice(samples);
            }
            lag.extend_from_slice(&stats.replication_lag);
            if let Some(failure) = &result.failure {
                let (trace, replay) = failure_of(result);
                summary.failures.push(FailingSeed {
                    seed: result.seed,
                    property: failure.violation.property.to_string(),
                    detail: failure.violation.detail.clone(),
                    step: failure.step,
                    trace,
                    replay,
                });
            }
        }
        summary.failed = summary.failures.len() as u64;
        for (kind, mut samples) in latencies {
            samples.sort_unstable();
            let latency = summary.operations.entry(kind.to_string()).or_default();
            latency.p50_us = percentile(&samples, 500) / 1_000;
            latency.p99_us = percentile(&samples, 990) / 1_000;
            latency.p999_us = percentile(&samples, 999) / 1_000;
        }
        lag.sort_unstable();
        summary.replication_lag_p99_us = percentile(&lag, 990) / 1_000;
        summary.availability = if issued == 0 { 1.0 } else { served as f64 / issued as f64 };
        let commits = summary.commits.max(1) as f64;
        summary.conflicts_per_commit = conflicts as f64 / commits;
        summary.retries_per_commit = retries as f64 / commits;
        summary
    }

    /// The summary as a text table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let status = if self.failed == 0 { "ok".to_string() } else { format!("{} FAILED", self.failed) };
        out.push_str(&format!(
            "scenario {}: {} seeds, {status}; {} steps, {:.1} simulated s\n",
            self.scenario,
            self.seeds,
            self.steps,
            self.simulated_ns as f64 / 1e9
        ));
        out.push_str(&format!(
            "  availability {:.4}  commits {}  conflicts/commit {:.3}  retries/commit {:.3}  replication lag p99 {} us\n",
            self.availability, self.commits, self.conflicts_per_commit, self.retries_per_commit, self.replication_lag_p99_us
        ));
        out.push_str(&format!(
            "  {:<18} {:>8} {:>8} {:>10} {:>10} {:>10}\n",
            "operation", "issued", "served", "p50 us", "p99 us", "p99.9 us"
        ));
        for (kind, latency) in &self.operations {
            out.push_str(&format!(
                "  {:<18} {:>8} {:>8} {:>10} {:>10} {:>10}\n",
                kind, latency.issued, latency.served, latency.p50_us, latency.p99_us, latency.p999_us
            ));
        }
        for failure in &self.failures {
            out.push_str(&format!(
                "  FAIL seed {} {} at step {}: {}\n    replay: {}\n",
                failure.seed, failure.property, failure.step, failure.detail, failure.replay
            ));
        }
        out
    }
}

/// The command that replays a trace written by a run with `bugs` switched on.
pub fn replay_command(trace: &str, bugs: &vault::bugzoo::Bugs) -> String {
    if bugs.names().is_empty() {
        format!("vaultsim replay {trace}")
    } else {
        // A bug-zoo run replays only in a build that has the zoo.
        format!("cargo run -p vaultsim-sim --features bugzoo -- replay {trace}")
    }
}

/// The `permille`-th per-mille of sorted `samples` (nearest rank), 0 when empty.
pub fn percentile(samples: &[u64], permille: u64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    let rank = (samples.len() as u64 * permille).div_ceil(1000).max(1);
    samples[(rank - 1) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&samples, 500), 500);
        assert_eq!(percentile(&samples, 990), 990);
        assert_eq!(percentile(&samples, 999), 999);
        assert_eq!(percentile(&[7], 999), 7);
        assert_eq!(percentile(&[], 500), 0);
    }
}
