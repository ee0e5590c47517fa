use super::*;

fn base() -> Scenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/scenarios/noisy-neighbour.toml");
    Scenario::load(&path).expect("the shipped scenario parses")
}

fn measure(scenario: &Scenario) -> RunMeasure {
    RunMeasure::of(&run(scenario, &RunOptions { seed: 1, swarm: false, trace: false, bugs: Bugs::none() }))
}

#[test]
fn a_cell_scales_the_noisy_tenant_and_keeps_the_quiet_ones() {
    let base = base();
    let cell = cell_scenario(&base, 5, true, 400);
    // Global quota 100/s: the noisy tenant offers 500/s; the quiet ones keep 50/s each.
    assert_eq!(cell.workload.tenant_weights, vec![500, 50, 50]);
    assert_eq!(cell.workload.rate_per_second, 600);
    assert_eq!(cell.network.store_service_us, 400);
    assert_eq!(cell.quotas, base.quotas);
    let without = cell_scenario(&base, 5, false, 400);
    assert_eq!(without.quotas, None);
    assert_eq!(without.workload.tenant_weights, cell.workload.tenant_weights);
}

#[test]
fn quotas_keep_the_quiet_tenants_fast_when_the_noisy_one_overloads_the_store() {
    let base = base();
    let with = measure(&cell_scenario(&base, 20, true, 400));
    let without = measure(&cell_scenario(&base, 20, false, 400));
    assert!(!with.failed && !without.failed);
    // With quotas the noisy tenant is admitted near its quota, whatever it offers.
    assert!(with.noisy_admitted_per_second < with.noisy_offered_per_second / 4.0, "{with:?}");
    // Without quotas its requests queue at the store ahead of everyone's.
    assert_eq!(without.noisy_admitted_per_second, without.noisy_offered_per_second);
    assert!(without.quiet_p99_ms > 4.0 * with.quiet_p99_ms, "with {with:?}, without {without:?}");
}

#[test]
fn the_same_seeds_give_the_same_cells() {
    let base = base();
    let mut first = Vec::new();
    let scenario = cell_scenario(&base, 2, true, 400);
    for _ in 0..2 {
        first.push(measure(&scenario));
    }
    assert_eq!(first[0], first[1]);
}

#[test]
fn the_chart_has_a_line_per_group_and_setting() {
    let cell = |quotas, factor, quiet| NoisyCell {
        quotas,
        factor,
        noisy_offered_per_second: 100.0,
        noisy_admitted_per_second: 100.0,
        noisy_p99_ms: 10.0,
        quiet_p99_ms: quiet,
        quiet_availability: 1.0,
        failed_seeds: 0,
    };
    let cells = vec![cell(true, 1, 5.0), cell(true, 2, 5.0), cell(false, 1, 5.0), cell(false, 2, 50.0)];
    let chart = latency_chart(&cells);
    assert_eq!(chart.series.len(), 4);
    assert!(chart.series.iter().all(|series| series.points.len() == 2));
    let svg = chart.to_svg();
    assert_eq!(svg.matches("<polyline").count(), 4, "{svg}");
    assert!(svg.contains("quiet, no quotas"));
    assert!(to_table(&cells).lines().count() == 5);
    assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
}
