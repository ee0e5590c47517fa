use super::*;

/// The shipped base scenario, compiled in (no file access at test time).
fn base() -> Scenario {
    let text = include_str!("../../../specs/scenarios/contention.toml");
    Scenario::parse(std::path::Path::new("specs/scenarios/contention.toml"), text).expect("the base parses")
}

/// A short sweep whose writers share nothing but the tenancy: every write
/// creates a new secret, so in async mode no two transactions read a key
/// that another writes, and in sync mode they all read the log head.
fn share_nothing_sweep(modes: Vec<Mode>, writers: Vec<u32>) -> SweepTable {
    let mut base = base();
    let mix = &mut base.workload.mix;
    (mix.create, mix.update, mix.delete, mix.remote_read, mix.host_read) = (1, 0, 0, 0, 0);
    base.workload.secrets_max = 100_000;
    let plan = SweepPlan { modes, writers, seeds: vec![3], fault_phase_ms: Some(150) };
    sweep(&base, &plan, |_, _| {})
}

#[test]
fn a_cell_keeps_the_load_per_writer_on_one_tenancy() {
    let base = base();
    let cell = cell_scenario(&base, Mode::Async, 32);
    assert_eq!(cell.topology.workers, 32);
    assert_eq!(cell.workload.tenants, 1);
    assert_eq!(cell.replication.mode, Mode::Async);
    let per_worker = base.workload.rate_per_second / base.topology.workers;
    assert_eq!(cell.workload.rate_per_second, 32 * per_worker);
    assert_eq!(cell.workload.secrets_max, 32 * base.workload.secrets_max / base.topology.workers);
    assert_eq!(cell.workload.mix, base.workload.mix);
    assert_eq!(cell.network, base.network);
    assert_eq!(cell.run.converge_within_ms, 4 * base.run.converge_within_ms, "32 writers drain 4 times 8");
    assert_eq!(cell_scenario(&base, Mode::Sync, 2).run.converge_within_ms, base.run.converge_within_ms);
    assert_eq!(cell_scenario(&base, Mode::Sync, 1).workload.rate_per_second, per_worker);
}

#[test]
fn sync_writers_conflict_on_the_head_and_async_writers_never_do() {
    let table = share_nothing_sweep(vec![Mode::Sync, Mode::Async], vec![1, 4]);
    let cell = |mode: &str, writers: u32| {
        table.cells.iter().find(|cell| cell.mode == mode && cell.writers == writers).expect("a swept cell")
    };
    for cell in &table.cells {
        assert_eq!(cell.failed_seeds, 0, "{cell:?}");
        let seed = &cell.seeds[0];
        assert!(seed.offered_commits > 0 && seed.offered_commits <= seed.commits, "{seed:?}");
        assert!(seed.writes_served <= seed.writes_issued, "{seed:?}");
    }
    for writers in [1, 4] {
        let seed = &cell("async", writers).seeds[0];
        assert_eq!((seed.conflicts, seed.retries), (0, 0), "async writers share no key: {seed:?}");
    }
    let (one, four) = (cell("sync", 1), cell("sync", 4));
    assert!(four.seeds[0].conflicts > 0, "four sync writers race for the head: {four:?}");
    assert!(
        four.conflicts_per_commit > one.conflicts_per_commit,
        "more sync writers, more conflicts per commit: {one:?} {four:?}"
    );
    assert!(four.retries_per_commit > 0.0);
    assert!(
        four.committed_per_second_per_writer < cell("async", 4).committed_per_second_per_writer,
        "a sync writer commits less than an async one under the same load"
    );
}

#[test]
fn the_same_seeds_give_the_same_table() {
    let first = share_nothing_sweep(vec![Mode::Sync], vec![2]);
    let second = share_nothing_sweep(vec![Mode::Sync], vec![2]);
    assert_eq!(first, second);
    assert_eq!(first.to_table(), second.to_table());
    assert!(first.cells[0].seeds[0].commits > 0);
}

#[test]
fn medians_take_the_middle() {
    assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    assert_eq!(median(vec![f64::NAN, 1.0, 2.0]), 2.0, "NaN sorts last");
}

#[test]
fn real_bench_lines_fold_into_medians_per_cell() {
    let text = "\
{\"mode\":\"async\",\"writers\":1,\"commits_per_s\":10.0,\"conflicts_per_commit\":0.000}
contention: Sync with 1 writers
{\"mode\":\"sync\",\"writers\":2,\"commits_per_s\":5.0,\"conflicts_per_commit\":1.5}
{\"mode\":\"sync\",\"writers\":2,\"commits_per_s\":7.0,\"conflicts_per_commit\":0.5}
{\"mode\":\"sync\",\"writers\":2,\"commits_per_s\":6.0,\"conflicts_per_commit\":null}
";
    let cells = parse_real(text).expect("bench lines");
    assert_eq!(cells.len(), 2);
    assert_eq!((cells[0].mode.as_str(), cells[0].writers, cells[0].runs), ("sync", 2, 3));
    assert_eq!(cells[0].commits_per_second, 6.0);
    assert_eq!(cells[0].conflicts_per_commit, 1.5, "null (no commits) sorts as NaN, last");
    assert_eq!((cells[1].mode.as_str(), cells[1].commits_per_second), ("async", 10.0));
    assert!(parse_real("no json here\n").is_err());
    assert!(parse_real("{\"mode\":\"eventual\",\"writers\":1}\n").is_err());
}

#[test]
fn charts_have_a_line_per_mode_and_overlay_the_real_threads() {
    let table = share_nothing_sweep(vec![Mode::Sync, Mode::Async], vec![1, 2]);
    let real = parse_real(
        "{\"mode\":\"sync\",\"writers\":1,\"commits_per_s\":100.0,\"conflicts_per_commit\":0}\n\
         {\"mode\":\"sync\",\"writers\":2,\"commits_per_s\":50.0,\"conflicts_per_commit\":1}\n",
    )
    .expect("bench lines");
    assert_eq!(throughput_chart(&table).series.len(), 4, "all writers and per writer, per mode");
    let conflicts = conflicts_chart(&table, Some(&real));
    assert_eq!(conflicts.series.len(), 4);
    assert_eq!(conflicts.series[2].points, vec![(1.0, 0.0), (2.0, 1.0)]);
    let shapes = shapes_chart(&table, &real);
    assert_eq!(shapes.series[2].points, vec![(1.0, 1.0), (2.0, 0.5)], "real sync relative to its 1-writer value");
    assert_eq!(shapes.series[0].points[0], (1.0, 1.0), "simulated sync starts at 1");
    assert!(shapes.series[3].points.is_empty(), "no real async lines given");
}
