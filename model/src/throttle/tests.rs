use super::*;
use crate::view::Observation;
use crate::PropertyChecker;

/// 2 tokens per 1000 ns, burst 3.
fn shape() -> LimitShape {
    LimitShape { rate: 2, interval_ns: 1_000, burst: 3, block_interval_ns: None }
}

fn ids(violations: &[Violation]) -> Vec<PropertyId> {
    violations.iter().map(|violation| violation.property).collect()
}

fn admitted(checker: &mut ThrottleChecker, tenant: u32, at_ns: u64) -> Vec<PropertyId> {
    let mut out = Vec::new();
    checker.on_admitted(tenant, at_ns, &mut out);
    ids(&out)
}

fn throttled(checker: &mut ThrottleChecker, tenant: u32, at_ns: u64) -> Vec<PropertyId> {
    let mut out = Vec::new();
    checker.on_throttled(tenant, at_ns, &mut out);
    ids(&out)
}

#[test]
fn thr1_holds_for_a_burst_then_the_rate() {
    let mut checker = ThrottleChecker::new(ThrottleLimits { global: Some(shape()), ..ThrottleLimits::default() });
    for _ in 0..3 {
        assert!(admitted(&mut checker, 0, 0).is_empty(), "the burst is admitted at once");
    }
    // One token every 500 ns from then on.
    assert!(admitted(&mut checker, 0, 500).is_empty());
    assert!(admitted(&mut checker, 0, 1_000).is_empty());
    // Another tenant has its own bucket of the global quota.
    assert!(admitted(&mut checker, 1, 1_000).is_empty());
}

#[test]
fn thr1_flags_one_admission_more_than_burst_plus_rate_in_a_window() {
    let mut checker = ThrottleChecker::new(ThrottleLimits { global: Some(shape()), ..ThrottleLimits::default() });
    for at in [0, 0, 0, 500] {
        assert!(admitted(&mut checker, 0, at).is_empty());
    }
    // 5 admissions in [0, 999]: the bound is 3 + 999 * 2 / 1000 = 4.
    let mut out = Vec::new();
    checker.on_admitted(0, 999, &mut out);
    assert_eq!(ids(&out), [PropertyId::Thr1]);
    assert!(out[0].detail.contains("tenant 0 had 5 requests admitted in the 999 ns"), "{}", out[0].detail);
}

#[test]
fn thr1_bounds_the_service_capacity_over_all_tenants() {
    let limits = ThrottleLimits { service_capacity: Some(shape()), ..ThrottleLimits::default() };
    let mut checker = ThrottleChecker::new(limits);
    for tenant in 0..3 {
        assert!(admitted(&mut checker, tenant, 10).is_empty());
    }
    assert_eq!(admitted(&mut checker, 7, 10), [PropertyId::Thr1], "a fourth tenant, no token left service-wide");
}

#[test]
fn thr2_holds_when_the_tenant_is_over_its_quota_or_capacity_is_gone() {
    let limits = ThrottleLimits {
        tenants: BTreeMap::from([(0, shape())]),
        global: None,
        service_capacity: Some(LimitShape { rate: 1, interval_ns: 1_000, burst: 4, block_interval_ns: None }),
    };
    let mut checker = ThrottleChecker::new(limits);
    for _ in 0..3 {
        assert!(admitted(&mut checker, 0, 0).is_empty());
    }
    assert!(throttled(&mut checker, 0, 0).is_empty(), "tenant 0 is over its quota");
    assert!(admitted(&mut checker, 1, 0).is_empty(), "tenant 1 has no quota; one service token left");
    assert!(throttled(&mut checker, 1, 0).is_empty(), "the service capacity is empty");
}

#[test]
fn thr2_flags_a_tenant_throttled_within_its_quota() {
    let mut checker = ThrottleChecker::new(ThrottleLimits { global: Some(shape()), ..ThrottleLimits::default() });
    for _ in 0..3 {
        assert!(admitted(&mut checker, 0, 0).is_empty());
    }
    assert!(throttled(&mut checker, 0, 1).is_empty(), "tenant 0 spent its burst");
    // Tenant 1 never sent anything: its own bucket is full.
    assert_eq!(throttled(&mut checker, 1, 2), [PropertyId::Thr2]);
}

#[test]
fn thr2_allows_throttling_inside_a_block_interval() {
    let blocking = LimitShape { block_interval_ns: Some(5_000), ..shape() };
    let mut checker = ThrottleChecker::new(ThrottleLimits { global: Some(blocking), ..ThrottleLimits::default() });
    for _ in 0..3 {
        assert!(admitted(&mut checker, 0, 0).is_empty());
    }
    assert!(throttled(&mut checker, 0, 100).is_empty(), "exhausted: the block starts");
    assert!(throttled(&mut checker, 0, 4_000).is_empty(), "tokens are back, but the tenant is blocked");
    assert_eq!(throttled(&mut checker, 0, 5_100), [PropertyId::Thr2], "the block is over and a token waits");
}

#[test]
fn the_property_checker_judges_throttling_only_with_limits() {
    let throttled = Observation::Throttled { tenant: 1, at_ns: 5, over_quota: true, retry_after_ns: 10 };
    let mut without = PropertyChecker::new(&[0]);
    assert!(without.observe(&Observation::Admitted { tenant: 1, at_ns: 5 }).is_empty());
    assert_eq!(ids(&without.observe(&throttled)), [PropertyId::Thr2], "nothing configured throttles");
    let limits = ThrottleLimits { global: Some(shape()), ..ThrottleLimits::default() };
    let mut with = PropertyChecker::new(&[0]).with_throttle_limits(limits);
    for _ in 0..3 {
        assert!(with.observe(&Observation::Admitted { tenant: 1, at_ns: 5 }).is_empty());
    }
    assert!(with.observe(&throttled).is_empty());
    assert_eq!(PropertyId::parse("THR-1"), Some(PropertyId::Thr1));
    assert_eq!(PropertyId::Thr2.as_str(), "THR-2");
}

#[test]
fn thr1_names_the_window_from_the_last_moment_the_bucket_was_full() {
    // Full since time 0 but first charged at 10 000 ns: the window a later
    // violation names starts there, not at 0.
    let mut checker = ThrottleChecker::new(ThrottleLimits { global: Some(shape()), ..ThrottleLimits::default() });
    for _ in 0..3 {
        assert!(admitted(&mut checker, 0, 10_000).is_empty());
    }
    let mut out = Vec::new();
    checker.on_admitted(0, 10_100, &mut out);
    assert_eq!(ids(&out), [PropertyId::Thr1]);
    assert!(out[0].detail.contains("tenant 0 had 4 requests admitted in the 100 ns"), "{}", out[0].detail);
}

fn sent(checker: &mut BudgetChecker, job: u8, at_ns: u64) -> Vec<PropertyId> {
    let mut out = Vec::new();
    checker.on_request(job, at_ns, &mut out);
    ids(&out)
}

#[test]
fn thr3_holds_for_a_burst_then_the_rate() {
    let mut checker = BudgetChecker::default().with_budget(1, shape());
    for _ in 0..3 {
        assert!(sent(&mut checker, 1, 0).is_empty(), "the burst goes at once");
    }
    assert!(sent(&mut checker, 1, 500).is_empty());
    assert!(sent(&mut checker, 1, 1_000).is_empty());
    assert_eq!(checker.budget(1), Some(shape()));
}

#[test]
fn thr3_flags_one_request_more_than_burst_plus_rate_in_a_window() {
    let mut checker = BudgetChecker::default().with_budget(1, shape());
    for at in [0, 0, 0, 500] {
        assert!(sent(&mut checker, 1, at).is_empty());
    }
    let mut out = Vec::new();
    checker.on_request(1, 999, &mut out);
    assert_eq!(ids(&out), [PropertyId::Thr3]);
    assert!(out[0].detail.contains("migration job 1 had 5 store requests sent in the 999 ns"), "{}", out[0].detail);
}

#[test]
fn thr3_judges_only_jobs_with_a_budget_and_each_against_its_own() {
    let mut checker = BudgetChecker::default().with_budget(1, shape());
    for _ in 0..10 {
        assert!(sent(&mut checker, 2, 0).is_empty(), "job 2 has no budget");
    }
    for _ in 0..3 {
        assert!(sent(&mut checker, 1, 0).is_empty(), "job 2's requests took nothing from job 1's budget");
    }
}

#[test]
fn thr3_reaches_the_property_checker_through_its_observation() {
    let mut checker = PropertyChecker::new(&[0]).with_job_budget(1, shape());
    let request = Observation::BudgetedRequest { job: 1, at_ns: 0 };
    for _ in 0..3 {
        assert!(checker.observe(&request).is_empty());
    }
    assert_eq!(ids(&checker.observe(&request)), [PropertyId::Thr3]);
    // Without a budget the observation is not judged.
    let mut unbudgeted = PropertyChecker::new(&[0]);
    for _ in 0..10 {
        assert!(unbudgeted.observe(&request).is_empty());
    }
}
