//! Summaries of simulation sweeps: what a reviewer reads after `vaultsim sim`.
//!
//! A [`SweepSummary`] folds the results of many seeds of one scenario into
//! counts, latency percentiles per operation kind, availability, contention
//! (conflicts and retries per commit), replication lag, and the failing seeds
//! with the exact command that replays each. It renders as a text table or as
//! JSON; the binary adds wall-clock figures, which the library never reads.
//!
//! Per tenant it reports the admitted rate over the traffic phase, the
//! requests throttled at the front door, p99 latency and availability; and an
//! SLO section, per tenant and per operation kind, judges availability against
//! [`SLO_AVAILABILITY`] (99.9 %) and p99 against [`SLO_P99_US`] (500 ms) over
//! the run, with the error budget left: allowed failures are 0.1 % of the
//! requests, and the budget left is `1 - failures / allowed` (negative when
//! overspent). A throttled request of a tenant over its own quota is a served
//! request (the 429 is the service doing its job); one refused by the service
//! capacity while its tenant was within its quota is a failure. Latency
//! percentiles leave throttled answers out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::driver::RunResult;

/// The availability objective: 99.9 % of requests served.
pub const SLO_AVAILABILITY: f64 = 0.999;
/// The latency objective: p99 within 500 ms.
pub const SLO_P99_US: u64 = 500_000;

/// One tenant's traffic over all seeds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TenantSummary {
    /// Requests issued.
    pub issued: u64,
    /// Requests not throttled (issued minus throttled; data-plane host reads
    /// never pass the front door, so they count here).
    pub admitted: u64,
    /// Admitted requests per simulated second of traffic, per seed.
    pub admitted_per_second: f64,
    /// Requests throttled (429).
    pub throttled: u64,
    /// Of those, refused by the service capacity while the tenant was within its quota.
    pub throttled_within_quota: u64,
    /// 99th percentile latency of answered, not throttled requests, µs.
    pub p99_us: u64,
    /// Fraction of issued requests served.
    pub availability: f64,
}

/// One line of the SLO section.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SloLine {
    /// Requests.
    pub requests: u64,
    /// Requests not served.
    pub failures: u64,
    /// Fraction served.
    pub availability: f64,
    /// Whether availability meets [`SLO_AVAILABILITY`].
    pub availability_met: bool,
    /// 99th percentile latency, µs.
    pub p99_us: u64,
    /// Whether p99 meets [`SLO_P99_US`].
    pub latency_met: bool,
    /// Failures the objective allows: 0.1 % of the requests.
    pub allowed_failures: f64,
    /// `1 - failures / allowed_failures`: 1 untouched, 0 spent, negative overspent.
    pub budget_left: f64,
}

impl SloLine {
    /// The SLO line of `requests` of which `served` were served, with latency
    /// samples `sorted_latencies_ns` (sorted).
    pub fn new(requests: u64, served: u64, sorted_latencies_ns: &[u64]) -> SloLine {
        assert!(served <= requests, "served {served} of {requests} requests");
        assert!(sorted_latencies_ns.is_sorted(), "percentiles of unsorted samples");
        let failures = requests - served;
        let availability = if requests == 0 { 1.0 } else { served as f64 / requests as f64 };
        let p99_us = percentile(sorted_latencies_ns, 990) / 1_000;
        // 0.1 % of the requests: 1 - SLO_AVAILABILITY, without its rounding.
        let allowed_failures = requests as f64 / 1_000.0;
        let budget_left = match (failures, allowed_failures > 0.0) {
            (0, _) => 1.0,
            (_, true) => 1.0 - failures as f64 / allowed_failures,
            (_, false) => f64::NEG_INFINITY,
        };
        SloLine {
            requests,
            failures,
            availability,
            availability_met: availability >= SLO_AVAILABILITY,
            p99_us,
            latency_met: p99_us <= SLO_P99_US,
            allowed_failures,
            budget_left,
        }
    }
}

/// The SLO section: per tenant and per operation kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Slo {
    /// The availability objective.
    pub availability_target: f64,
    /// The p99 objective, µs.
    pub p99_target_us: u64,
    /// Per tenant.
    pub tenants: BTreeMap<u32, SloLine>,
    /// Per home shard (sharded scenarios): a shard outage's blast radius.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub shards: BTreeMap<u32, SloLine>,
    /// Per operation kind.
    pub operations: BTreeMap<String, SloLine>,
}

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
    /// Operations throttled at the front door.
    pub throttled: u64,
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
    /// Per tenant.
    pub tenants: BTreeMap<u32, TenantSummary>,
    /// Availability and latency against the objectives, with error budgets.
    pub slo: Slo,
    /// Migration counters summed over the seeds (migration scenarios only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub migration: BTreeMap<String, u64>,
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
        let mut tenants: BTreeMap<u32, (crate::driver::TenantStats, Vec<u64>)> = BTreeMap::new();
        let mut shards: BTreeMap<u32, (u64, u64, Vec<u64>)> = BTreeMap::new();
        let mut traffic_ns = 0;
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
            for (kind, count) in &stats.throttled {
                summary.operations.entry((*kind).to_string()).or_default().throttled += count;
            }
            for (kind, samples) in &stats.latencies {
                latencies.entry(kind).or_default().extend_from_slice(samples);
            }
            traffic_ns += stats.traffic_ns;
            for (tenant, counts) in &stats.tenants {
                let (total, samples) = tenants.entry(*tenant).or_default();
                total.issued += counts.issued;
                total.served += counts.served;
                total.throttled += counts.throttled;
                total.throttled_within_quota += counts.throttled_within_quota;
                samples.extend_from_slice(&counts.latencies);
            }
            for (shard, counts) in &stats.shards {
                let (issued, served, samples) = shards.entry(*shard).or_default();
                *issued += counts.issued;
                *served += counts.served;
                samples.extend_from_slice(&counts.latencies);
            }
            lag.extend_from_slice(&stats.replication_lag);
            for (name, count) in &stats.migration {
                *summary.migration.entry((*name).to_string()).or_default() += count;
            }
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
        summary.slo = Slo { availability_target: SLO_AVAILABILITY, p99_target_us: SLO_P99_US, ..Slo::default() };
        for (kind, latency) in &mut summary.operations {
            let mut samples = latencies.remove(kind.as_str()).unwrap_or_default();
            samples.sort_unstable();
            latency.p50_us = percentile(&samples, 500) / 1_000;
            latency.p99_us = percentile(&samples, 990) / 1_000;
            latency.p999_us = percentile(&samples, 999) / 1_000;
            summary.slo.operations.insert(kind.clone(), SloLine::new(latency.issued, latency.served, &samples));
        }
        let traffic_s = traffic_ns as f64 / 1e9;
        for (tenant, (counts, mut samples)) in tenants {
            samples.sort_unstable();
            let line = SloLine::new(counts.issued, counts.served, &samples);
            let admitted = counts.issued - counts.throttled;
            summary.tenants.insert(
                tenant,
                TenantSummary {
                    issued: counts.issued,
                    admitted,
                    admitted_per_second: if traffic_s > 0.0 { admitted as f64 / traffic_s } else { 0.0 },
                    throttled: counts.throttled,
                    throttled_within_quota: counts.throttled_within_quota,
                    p99_us: line.p99_us,
                    availability: line.availability,
                },
            );
            summary.slo.tenants.insert(tenant, line);
        }
        for (shard, (issued, served, mut samples)) in shards {
            samples.sort_unstable();
            summary.slo.shards.insert(shard, SloLine::new(issued, served, &samples));
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
            "  {:<18} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10}\n",
            "operation", "issued", "served", "p50 us", "p99 us", "p99.9 us", "throttled"
        ));
        for (kind, latency) in &self.operations {
            out.push_str(&format!(
                "  {:<18} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10}\n",
                kind,
                latency.issued,
                latency.served,
                latency.p50_us,
                latency.p99_us,
                latency.p999_us,
                latency.throttled
            ));
        }
        out.push_str(&self.tenants_table());
        out.push_str(&self.slo_table());
        if !self.migration.is_empty() {
            let counters: Vec<String> = self.migration.iter().map(|(name, count)| format!("{name} {count}")).collect();
            out.push_str(&format!("  migration: {}\n", counters.join(", ")));
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

impl SweepSummary {
    /// The per-tenant table (throttled counts and admitted rates).
    fn tenants_table(&self) -> String {
        let mut out = format!(
            "  {:<18} {:>8} {:>8} {:>10} {:>10} {:>10} {:>12}\n",
            "tenant", "issued", "admitted", "admitted/s", "throttled", "p99 us", "availability"
        );
        for (tenant, line) in &self.tenants {
            out.push_str(&format!(
                "  {:<18} {:>8} {:>8} {:>10.1} {:>10} {:>10} {:>12.4}\n",
                tenant,
                line.issued,
                line.admitted,
                line.admitted_per_second,
                line.throttled,
                line.p99_us,
                line.availability
            ));
        }
        out
    }

    /// The SLO section: availability and p99 against the objectives, budget left.
    fn slo_table(&self) -> String {
        let mut out = format!(
            "  SLO (availability {:.1} %, p99 {} ms) {:>10} {:>8} {:>12} {:>10} {:>12}\n",
            self.slo.availability_target * 100.0,
            self.slo.p99_target_us / 1_000,
            "requests",
            "failures",
            "availability",
            "p99 us",
            "budget left"
        );
        let lines = self.slo.tenants.iter().map(|(tenant, line)| (format!("tenant {tenant}"), line));
        let lines = lines.chain(self.slo.shards.iter().map(|(shard, line)| (format!("shard {shard}"), line)));
        let lines = lines.chain(self.slo.operations.iter().map(|(kind, line)| (kind.clone(), line)));
        for (name, line) in lines {
            let met = |ok: bool| if ok { " " } else { "!" };
            out.push_str(&format!(
                "    {:<35} {:>10} {:>8} {:>11.4}{} {:>9}{} {:>12.3}\n",
                name,
                line.requests,
                line.failures,
                line.availability,
                met(line.availability_met),
                line.p99_us,
                met(line.latency_met),
                line.budget_left
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

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "the median of nothing");
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
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

    /// One seed: tenant 0 sent 2000 updates (1000 throttled over its quota,
    /// 3 failed), tenant 1 sent 1000 (1 refused by the service capacity), over
    /// 2 simulated seconds of traffic.
    fn constructed() -> SweepSummary {
        use crate::driver::{Knobs, RunStats, TenantStats};
        let mut stats = RunStats { traffic_ns: 2_000_000_000, ..RunStats::default() };
        // Latencies: 1..=1000 ms for tenant 0's admitted requests, 1 ms for tenant 1's.
        let noisy: Vec<u64> = (1..=1000).map(|ms| ms * 1_000_000).collect();
        let quiet = vec![1_000_000; 999];
        stats.tenants.insert(
            0,
            TenantStats {
                issued: 2000,
                served: 1997,
                throttled: 1000,
                throttled_within_quota: 0,
                latencies: noisy.clone(),
            },
        );
        stats.tenants.insert(
            1,
            TenantStats {
                issued: 1000,
                served: 999,
                throttled: 1,
                throttled_within_quota: 1,
                latencies: quiet.clone(),
            },
        );
        stats.issued.insert("update", 3000);
        stats.served.insert("update", 2996);
        stats.throttled.insert("update", 1001);
        stats.latencies.insert("update", noisy.into_iter().chain(quiet).collect());
        let scenario =
            crate::scenario::Scenario::parse(std::path::Path::new("x.toml"), "name = \"x\"\n").expect("valid");
        let knobs = Knobs::for_run(&scenario, 0, false);
        let result = RunResult { seed: 0, knobs, failure: None, stats, trace: None, trace_hash: 0 };
        SweepSummary::new("x", &[result], |_| (None, String::new()))
    }

    #[test]
    fn tenants_report_admitted_rate_throttles_p99_and_availability() {
        let summary = constructed();
        let noisy = &summary.tenants[&0];
        assert_eq!((noisy.issued, noisy.admitted, noisy.throttled), (2000, 1000, 1000));
        assert_eq!(noisy.admitted_per_second, 500.0);
        assert_eq!(noisy.p99_us, 990_000);
        assert_eq!(noisy.availability, 0.9985);
        let quiet = &summary.tenants[&1];
        assert_eq!((quiet.admitted, quiet.throttled, quiet.throttled_within_quota), (999, 1, 1));
        assert_eq!(quiet.p99_us, 1_000);
        assert_eq!(quiet.availability, 0.999);
        assert_eq!(summary.operations["update"].throttled, 1001);
        let table = summary.to_table();
        assert!(table.contains("admitted/s"), "{table}");
        assert!(table.contains("tenant 1"), "{table}");
    }

    #[test]
    fn the_slo_section_judges_objectives_and_error_budgets() {
        let summary = constructed();
        assert_eq!((summary.slo.availability_target, summary.slo.p99_target_us), (0.999, 500_000));
        let noisy = &summary.slo.tenants[&0];
        assert_eq!((noisy.requests, noisy.failures), (2000, 3));
        assert!(!noisy.availability_met, "99.85 % is below 99.9 %: {noisy:?}");
        assert!((noisy.allowed_failures - 2.0).abs() < 1e-9, "{noisy:?}");
        assert!((noisy.budget_left - -0.5).abs() < 1e-9, "3 failures of 2 allowed overspend half: {noisy:?}");
        assert!(!noisy.latency_met, "p99 990 ms misses 500 ms");
        let quiet = &summary.slo.tenants[&1];
        assert!(quiet.availability_met && quiet.latency_met, "{quiet:?}");
        assert!((quiet.budget_left - 0.0).abs() < 1e-9, "1 failure of 1 allowed spends it all: {quiet:?}");
        let update = &summary.slo.operations["update"];
        // 1999 samples: 1000 of 1 ms, then 2..=1000 ms; rank ceil(1999 * 0.99) = 1980 is 981 ms.
        assert_eq!((update.requests, update.failures, update.p99_us), (3000, 4, 981_000));
        assert!((update.budget_left - (1.0 - 4.0 / 3.0)).abs() < 1e-9, "{update:?}");
        assert_eq!(SloLine::new(0, 0, &[]).budget_left, 1.0, "no requests, no budget spent");
    }
}
