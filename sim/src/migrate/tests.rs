use std::path::Path;

use super::*;

fn base() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/scenarios/migration-latency.toml");
    Scenario::load(&path).expect("the measurement scenario loads")
}

#[test]
fn the_variants_drop_the_rate_limit_or_the_backfill_and_nothing_else() {
    let base = base();
    let unlimited = unlimited(&base);
    assert_eq!(unlimited.migration.as_ref().map(|migration| migration.backfill_rate_per_second), Some(0));
    assert_eq!(unlimited.workload, base.workload);
    let none = without_backfill(&base);
    let schedule = &none.migration.as_ref().expect("a migration").schedule;
    assert_eq!(schedule.iter().map(|entry| entry.phase).collect::<Vec<_>>(), [PhaseName::Sync]);
    assert_eq!(none.network, base.network);
}

#[test]
fn one_seed_measures_every_variant_and_local_reads_are_faster() {
    let mut runs = 0;
    let measured = measure(&base(), &[0], || runs += 1);
    assert_eq!(runs, 3);
    assert_eq!(measured.backfill.len(), 3);
    assert!(measured.backfill.iter().all(|impact| impact.failed_seeds == 0), "{measured:?}");
    // The backfill ran in both backfilling variants; the unlimited one is shorter.
    let (limited, unlimited) = (&measured.backfill[0], &measured.backfill[1]);
    assert!(unlimited.window_ms > 0.0 && unlimited.window_ms < limited.window_ms, "{measured:?}");
    // The no-backfill run is measured over the limited run's window.
    assert_eq!(measured.backfill[2].window_ms, limited.window_ms);
    let cut = &measured.switchover;
    assert!(cut.reads_before > 0.0 && cut.reads_after > 0.0, "{cut:?}");
    assert!(cut.p50_after_ms < cut.p50_before_ms, "{cut:?}");
    let created = &measured.after_create;
    assert!(created.reads > 0.0, "{created:?}");
    assert_eq!(created.reads, created.local + created.fallback_missing + created.fallback_not_active + created.remote);
}
