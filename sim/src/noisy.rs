//! The noisy-neighbour sweep: one tenant bursts to a growing multiple of its
//! quota, with quotas and without, against a store of finite capacity
//! (DESIGN.md, "Throttling").
//!
//! From a base scenario (`specs/scenarios/noisy-neighbour.toml`: a noisy
//! tenant 0 and quiet tenants) each cell derives a scenario in which tenant 0
//! offers `factor` times the global quota's rate while every other tenant
//! offers the base's share (the workload's weights and total rate are
//! rescaled so the quiet tenants' load stays the same), and the store serves
//! one request at a time (`network.store_service_us`, the sweep's
//! `store_service_us` unless the base sets one). Without quotas the `[quotas]`
//! section is dropped: nothing is throttled, and the noisy tenant's requests
//! queue at the store ahead of everyone's. Each cell reports medians over its
//! seeds of the noisy tenant's offered and admitted rates and of the p99
//! latency and availability of the noisy and the quiet tenants.

use serde::Serialize;
use vault::bugzoo::Bugs;

use crate::driver::{run, RunOptions, RunResult};
use crate::plot::{Chart, Series};
use crate::report::{median, percentile};
use crate::scenario::Scenario;

/// The noisy tenant's offered load, as multiples of the global quota's rate.
pub const FACTORS: [u32; 5] = [1, 2, 5, 10, 20];
/// Seeds per cell by default.
pub const SEEDS_DEFAULT: u64 = 3;
/// The store's service time when the base scenario sets none, µs.
pub const STORE_SERVICE_US_DEFAULT: u64 = 400;

const NS_PER_MS: f64 = 1e6;

/// One (quotas, factor) cell: medians over seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NoisyCell {
    /// Whether the scenario's quotas were on.
    pub quotas: bool,
    /// The noisy tenant's offered load over the global quota's rate.
    pub factor: u32,
    /// Requests the noisy tenant issued per simulated second of traffic.
    pub noisy_offered_per_second: f64,
    /// Of those, admitted (not throttled) per simulated second of traffic;
    /// host reads count as admitted (they never pass the front door).
    pub noisy_admitted_per_second: f64,
    /// The noisy tenant's p99 latency of answered, admitted requests, ms.
    pub noisy_p99_ms: f64,
    /// The quiet tenants' p99 latency (all quiet tenants' requests together), ms.
    pub quiet_p99_ms: f64,
    /// The quiet tenants' availability (served over issued).
    pub quiet_availability: f64,
    /// Seeds that violated a property.
    pub failed_seeds: usize,
}

/// The scenario of one cell. Panics if the base has no quotas or fewer than
/// two tenants (it is not a noisy-neighbour scenario).
pub fn cell_scenario(base: &Scenario, factor: u32, quotas: bool, store_service_us: u64) -> Scenario {
    let base_quotas = base.quotas.as_ref().expect("a noisy-neighbour base has quotas");
    let quota_rate = base_quotas.global.as_ref().expect("a global quota").rate;
    let workload = &base.workload;
    let tenants = workload.tenants as usize;
    assert!(tenants >= 2, "a noisy neighbour needs a quiet one");
    let weights: Vec<u64> = if workload.tenant_weights.is_empty() {
        vec![1; tenants]
    } else {
        workload.tenant_weights.iter().map(|weight| u64::from(*weight)).collect()
    };
    let total_weight: u64 = weights.iter().sum();
    // The quiet tenants keep the requests per second the base gives them.
    let base_rate = u64::from(workload.rate_per_second);
    let quiet_rates: Vec<u64> = weights[1..].iter().map(|weight| base_rate * weight / total_weight).collect();
    let noisy_rate = quota_rate * u64::from(factor);
    let mut scenario = base.clone();
    scenario.name = format!("{}-x{factor}{}", base.name, if quotas { "" } else { "-no-quotas" });
    scenario.workload.rate_per_second = fits(noisy_rate + quiet_rates.iter().sum::<u64>());
    // Weights in requests per second: tenant 0 the noisy rate, the others their base rate.
    scenario.workload.tenant_weights = std::iter::once(noisy_rate).chain(quiet_rates).map(fits).collect();
    if scenario.network.store_service_us == 0 {
        scenario.network.store_service_us = store_service_us;
    }
    if !quotas {
        scenario.quotas = None;
    }
    scenario
}

/// A rate in requests per second as the workload holds it.
fn fits(rate: u64) -> u32 {
    u32::try_from(rate).expect("a rate that fits")
}

/// What one run measured.
#[derive(Clone, Debug, PartialEq)]
struct RunMeasure {
    noisy_offered_per_second: f64,
    noisy_admitted_per_second: f64,
    noisy_p99_ms: f64,
    quiet_p99_ms: f64,
    quiet_availability: f64,
    failed: bool,
}

impl RunMeasure {
    fn of(result: &RunResult) -> RunMeasure {
        let stats = &result.stats;
        let seconds = (stats.traffic_ns as f64 / 1e9).max(1e-9);
        let noisy = stats.tenants.get(&0).cloned().unwrap_or_default();
        let mut noisy_latencies = noisy.latencies.clone();
        noisy_latencies.sort_unstable();
        let mut quiet_latencies = Vec::new();
        let (mut quiet_issued, mut quiet_served) = (0, 0);
        for (_, tenant) in stats.tenants.iter().filter(|(tenant, _)| **tenant != 0) {
            quiet_latencies.extend_from_slice(&tenant.latencies);
            quiet_issued += tenant.issued;
            quiet_served += tenant.served;
        }
        quiet_latencies.sort_unstable();
        RunMeasure {
            noisy_offered_per_second: noisy.issued as f64 / seconds,
            noisy_admitted_per_second: (noisy.issued - noisy.throttled) as f64 / seconds,
            noisy_p99_ms: percentile(&noisy_latencies, 990) as f64 / NS_PER_MS,
            quiet_p99_ms: percentile(&quiet_latencies, 990) as f64 / NS_PER_MS,
            quiet_availability: if quiet_issued == 0 { 1.0 } else { quiet_served as f64 / quiet_issued as f64 },
            failed: result.failure.is_some(),
        }
    }
}

/// Runs every cell (quotas on, then off; factors ascending) for `seeds`;
/// `on_run` is told of each run, for progress.
pub fn sweep(
    base: &Scenario,
    seeds: &[u64],
    store_service_us: u64,
    mut on_run: impl FnMut(&Scenario, u64),
) -> Vec<NoisyCell> {
    assert!(!seeds.is_empty(), "a sweep runs at least one seed");
    let mut cells = Vec::new();
    for quotas in [true, false] {
        for factor in FACTORS {
            let scenario = cell_scenario(base, factor, quotas, store_service_us);
            let measures: Vec<RunMeasure> = seeds
                .iter()
                .map(|seed| {
                    let result =
                        run(&scenario, &RunOptions { seed: *seed, swarm: false, trace: false, bugs: Bugs::none() });
                    on_run(&scenario, *seed);
                    RunMeasure::of(&result)
                })
                .collect();
            let column = |field: fn(&RunMeasure) -> f64| median(measures.iter().map(field).collect());
            cells.push(NoisyCell {
                quotas,
                factor,
                noisy_offered_per_second: column(|measure| measure.noisy_offered_per_second),
                noisy_admitted_per_second: column(|measure| measure.noisy_admitted_per_second),
                noisy_p99_ms: column(|measure| measure.noisy_p99_ms),
                quiet_p99_ms: column(|measure| measure.quiet_p99_ms),
                quiet_availability: column(|measure| measure.quiet_availability),
                failed_seeds: measures.iter().filter(|measure| measure.failed).count(),
            });
        }
    }
    cells
}

/// The cells as a text table.
pub fn to_table(cells: &[NoisyCell]) -> String {
    let mut out = format!(
        "{:<7} {:>6} {:>14} {:>15} {:>14} {:>14} {:>13} {:>6}\n",
        "quotas", "factor", "noisy offer/s", "noisy admit/s", "noisy p99 ms", "quiet p99 ms", "quiet avail", "failed"
    );
    for cell in cells {
        out.push_str(&format!(
            "{:<7} {:>6} {:>14.0} {:>15.0} {:>14.1} {:>14.1} {:>13.4} {:>6}\n",
            if cell.quotas { "on" } else { "off" },
            cell.factor,
            cell.noisy_offered_per_second,
            cell.noisy_admitted_per_second,
            cell.noisy_p99_ms,
            cell.quiet_p99_ms,
            cell.quiet_availability,
            cell.failed_seeds,
        ));
    }
    out
}

/// p99 latency of the quiet and the noisy tenants against the noisy tenant's
/// offered load, with quotas (solid) and without (dashed).
pub fn latency_chart(cells: &[NoisyCell]) -> Chart {
    let mut chart = Chart::new(
        "Noisy neighbour: p99 latency against the noisy tenant's load",
        "noisy tenant's offered load (multiples of its quota)",
        "p99 latency, ms",
    );
    chart.x_log2 = true;
    chart.y_log2 = true;
    for quotas in [true, false] {
        let of = |field: fn(&NoisyCell) -> f64| -> Vec<(f64, f64)> {
            cells
                .iter()
                .filter(|cell| cell.quotas == quotas)
                .map(|cell| (f64::from(cell.factor), field(cell).max(0.001)))
                .collect()
        };
        let suffix = if quotas { "quotas" } else { "no quotas" };
        for (colour, (who, field)) in [
            ("quiet", (|cell: &NoisyCell| cell.quiet_p99_ms) as fn(&NoisyCell) -> f64),
            ("noisy", |cell: &NoisyCell| cell.noisy_p99_ms),
        ]
        .into_iter()
        .enumerate()
        {
            let mut series = Series::new(&format!("{who}, {suffix}"), of(field));
            series.colour = Some(colour);
            series.dashed = !quotas;
            chart.series.push(series);
        }
    }
    chart
}

#[cfg(test)]
mod tests;
