use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use super::*;

const T1: TenantId = TenantId(1);
const T2: TenantId = TenantId(2);
const T3: TenantId = TenantId(3);

fn bucket(rate: u64, interval_ns: u64, burst: u64) -> TokenBucket {
    TokenBucket::new(BucketConfig { rate, interval_ns, burst }).expect("a valid bucket")
}

fn table(quotas: Vec<QuotaConfig>, service_capacity: Option<BucketConfig>) -> QuotaTable {
    QuotaTable::new(&QuotaTableConfig { quotas, service_capacity }).expect("a valid table")
}

fn admitted(admission: Admission) -> bool {
    matches!(admission, Admission::Admitted { .. })
}

/// Sends requests of `tenant` at `now` until one is throttled; returns how many were admitted.
fn drain(table: &mut QuotaTable, now: Time, tenant: TenantId) -> u64 {
    let mut admitted_count = 0;
    while admitted(table.on_request(now, tenant)) {
        admitted_count += 1;
        assert!(admitted_count <= 1_000, "a quota without a limit");
    }
    table.check_invariants();
    admitted_count
}

// Token bucket.

#[test]
fn bucket_starts_full_and_gives_out_its_burst() {
    let mut bucket = bucket(1, 100, 3);
    assert!(bucket.is_full(Time(0)));
    assert_eq!(bucket.tokens(Time(0)), 3);
    for _ in 0..3 {
        assert_eq!(bucket.try_take(Time(0), 1), Ok(()));
    }
    assert_eq!(bucket.tokens(Time(0)), 0);
    assert_eq!(bucket.try_take(Time(0), 1), Err(Shortfall { retry_after_ns: 100 }));
}

#[test]
fn bucket_refills_rate_tokens_per_interval_and_stops_at_its_burst() {
    let mut bucket = bucket(2, 1_000, 4);
    assert_eq!(bucket.try_take(Time(0), 4), Ok(()));
    assert_eq!(bucket.tokens(Time(499)), 0);
    assert_eq!(bucket.tokens(Time(500)), 1);
    assert_eq!(bucket.tokens(Time(1_000)), 2);
    assert_eq!(bucket.tokens(Time(2_000)), 4);
    assert_eq!(bucket.tokens(Time(1_000_000)), 4, "the refill stops at the burst");
    assert!(bucket.is_full(Time(2_000)));
    assert!(!bucket.is_full(Time(1_999)));
}

#[test]
fn bucket_refill_with_a_fractional_period_does_not_drift() {
    // 3 tokens per 1000 ns: a token every 333⅓ ns, exactly 3000 tokens per 1 ms.
    let mut bucket = bucket(3, 1_000, 3);
    assert_eq!(bucket.try_take(Time(0), 3), Ok(()));
    assert_eq!(bucket.try_take(Time(333), 1), Err(Shortfall { retry_after_ns: 1 }));
    assert_eq!(bucket.try_take(Time(334), 1), Ok(()));
    // A third of a nanosecond is carried over: the next token is due at 666⅔.
    assert_eq!(bucket.try_take(Time(666), 1), Err(Shortfall { retry_after_ns: 1 }));
    assert_eq!(bucket.try_take(Time(667), 1), Ok(()));
    assert_eq!(bucket.try_take(Time(1_000), 1), Ok(()));
    let mut taken = 0;
    for nanosecond in 1_001..=1_000_000 {
        taken += u64::from(bucket.try_take(Time(nanosecond), 1).is_ok());
    }
    assert_eq!(taken, 2_997, "3 per 1000 ns over 999 000 ns");
}

#[test]
fn bucket_of_burst_one_does_not_bank_a_fraction_of_a_token() {
    // Tokens and fractions beyond the burst are lost, as in any token bucket.
    let mut bucket = bucket(3, 1_000, 1);
    assert_eq!(bucket.try_take(Time(0), 1), Ok(()));
    assert_eq!(bucket.try_take(Time(334), 1), Ok(()), "full at 333⅓, capped there");
    assert_eq!(bucket.try_take(Time(667), 1), Err(Shortfall { retry_after_ns: 1 }), "due at 334 + 333⅓");
    assert_eq!(bucket.try_take(Time(668), 1), Ok(()));
}

#[test]
fn bucket_retry_after_is_exact() {
    let mut bucket = bucket(7, 10_000, 5);
    assert_eq!(bucket.try_take(Time(50), 5), Ok(()));
    // Needs 3 tokens = 30 000 units at 7 units/ns: ceil(30 000 / 7) = 4 286 ns.
    let Err(Shortfall { retry_after_ns }) = bucket.try_take(Time(50), 3) else {
        panic!("an empty bucket refuses");
    };
    assert_eq!(retry_after_ns, 4_286);
    assert_eq!(bucket.ready_at(Time(50), 3), Time(50 + 4_286));
    assert!(bucket.clone().try_take(Time(50 + 4_285), 3).is_err(), "one nanosecond early is too early");
    assert_eq!(bucket.try_take(Time(50 + 4_286), 3), Ok(()));
}

#[test]
fn bucket_treats_an_earlier_now_as_its_last_take() {
    let mut bucket = bucket(1, 100, 2);
    assert_eq!(bucket.try_take(Time(1_000), 2), Ok(()));
    assert_eq!(bucket.tokens(Time(500)), 0, "no refill before the last take");
    assert_eq!(bucket.try_take(Time(500), 1), Err(Shortfall { retry_after_ns: 600 }));
    assert_eq!(bucket.try_take(Time(1_100), 1), Ok(()));
    bucket.check_invariants();
}

#[test]
fn bucket_take_of_nothing_always_succeeds() {
    let mut bucket = bucket(1, 100, 1);
    assert_eq!(bucket.try_take(Time(0), 1), Ok(()));
    assert_eq!(bucket.try_take(Time(0), 0), Ok(()));
    assert_eq!(bucket.ready_at(Time(0), 0), Time(0));
}

#[test]
#[should_panic(expected = "never succeeds")]
fn bucket_take_larger_than_its_burst_is_a_bug() {
    let _ = bucket(1, 100, 2).try_take(Time(0), 3);
}

#[test]
fn bucket_with_extreme_parameters_does_not_overflow() {
    let mut bucket = bucket(1, u64::MAX, u64::MAX);
    assert_eq!(bucket.try_take(Time(0), u64::MAX), Ok(()));
    assert_eq!(bucket.try_take(Time(u64::MAX - 1), 1), Err(Shortfall { retry_after_ns: 1 }));
    assert_eq!(bucket.try_take(Time(u64::MAX), 1), Ok(()));
    let mut fast = self::bucket(u64::MAX, 1, 1);
    assert_eq!(fast.try_take(Time(0), 1), Ok(()));
    assert_eq!(fast.try_take(Time(0), 1), Err(Shortfall { retry_after_ns: 1 }));
    assert_eq!(fast.try_take(Time(u64::MAX), 1), Ok(()));
}

// Configuration.

#[test]
fn config_errors_name_the_limit_and_the_field() {
    let global = Limit::Quota(QuotaScope::Global);
    let tenant = Limit::Quota(QuotaScope::Tenant(T1));
    let cases = [
        (vec![QuotaConfig::new(QuotaScope::Global, 0, 10)], None, global, ConfigField::Rate),
        (vec![QuotaConfig::new(QuotaScope::Tenant(T1), 1, 0)], None, tenant, ConfigField::IntervalNs),
        (vec![QuotaConfig::new(QuotaScope::Global, 1, 10).with_burst(0)], None, global, ConfigField::Burst),
        (
            vec![QuotaConfig::new(QuotaScope::Global, 1, 10).with_block_interval_ns(0)],
            None,
            global,
            ConfigField::BlockIntervalNs,
        ),
        (Vec::new(), Some(BucketConfig::per_interval(0, 10)), Limit::ServiceCapacity, ConfigField::Rate),
        (
            Vec::new(),
            Some(BucketConfig { rate: 1, interval_ns: 10, burst: 0 }),
            Limit::ServiceCapacity,
            ConfigField::Burst,
        ),
    ];
    for (quotas, service_capacity, limit, field) in cases {
        let error = QuotaTable::new(&QuotaTableConfig { quotas, service_capacity }).expect_err("a zero field");
        assert_eq!(error, QuotaConfigError::NotPositive { limit, field });
    }
    let error = QuotaTable::new(&QuotaTableConfig {
        quotas: vec![QuotaConfig::new(QuotaScope::Global, 1, 10).with_burst(0)],
        service_capacity: None,
    })
    .expect_err("a zero burst");
    assert_eq!(error.to_string(), "quota global: `burst` must be positive");
    assert_eq!(TokenBucket::new(BucketConfig::per_interval(1, 0)), Err(ConfigField::IntervalNs));
}

#[test]
fn config_with_two_quotas_for_one_scope_is_refused() {
    let quotas = vec![QuotaConfig::new(QuotaScope::Tenant(T2), 1, 10), QuotaConfig::new(QuotaScope::Tenant(T2), 2, 10)];
    let error = QuotaTable::new(&QuotaTableConfig { quotas, service_capacity: None }).expect_err("a duplicate");
    assert_eq!(error, QuotaConfigError::DuplicateScope { scope: QuotaScope::Tenant(T2) });
    assert_eq!(error.to_string(), "two quotas for scope t2");
}

// Quota table.

#[test]
fn most_specific_quota_wins() {
    let quotas =
        vec![QuotaConfig::new(QuotaScope::Global, 2, 1_000), QuotaConfig::new(QuotaScope::Tenant(T1), 5, 1_000)];
    let mut table = table(quotas, None);
    assert_eq!(table.scope_of(T1), Some(QuotaScope::Tenant(T1)));
    assert_eq!(table.scope_of(T2), Some(QuotaScope::Global));
    assert_eq!(table.on_request(Time(0), T1), Admission::Admitted { quota: Some(QuotaScope::Tenant(T1)) });
    assert_eq!(table.on_request(Time(0), T2), Admission::Admitted { quota: Some(QuotaScope::Global) });
    assert_eq!(drain(&mut table, Time(0), T1), 4, "T1 has its own burst of 5, not the global 2");
    assert_eq!(drain(&mut table, Time(0), T2), 1);
    let Admission::Throttled { limit, .. } = table.on_request(Time(0), T1) else { panic!("T1 is drained") };
    assert_eq!(limit, Limit::Quota(QuotaScope::Tenant(T1)), "charged to one quota only");
    assert_eq!(table.counters_of_scope(QuotaScope::Tenant(T1)).admitted, 5);
    assert_eq!(table.counters_of_scope(QuotaScope::Global).admitted, 2);
}

#[test]
fn tenant_without_any_quota_is_limited_by_service_capacity_only() {
    let mut table = table(vec![QuotaConfig::new(QuotaScope::Tenant(T1), 1, 1_000)], None);
    assert_eq!(table.scope_of(T2), None);
    for _ in 0..100 {
        assert_eq!(table.on_request(Time(0), T2), Admission::Admitted { quota: None });
    }
    assert_eq!(table.quota_tokens(Time(0), T2), None);
    let mut limited = self::table(Vec::new(), Some(BucketConfig::per_interval(3, 1_000)));
    assert_eq!(drain(&mut limited, Time(0), T2), 3);
}

#[test]
fn global_quota_keeps_one_bucket_per_tenant() {
    let mut table = table(vec![QuotaConfig::new(QuotaScope::Global, 3, 1_000)], None);
    assert_eq!(drain(&mut table, Time(0), T1), 3, "T1 bursts through its own bucket");
    assert_eq!(table.quota_tokens(Time(0), T1), Some(0));
    assert_eq!(table.quota_tokens(Time(0), T2), Some(3), "T2's bucket is untouched");
    assert_eq!(drain(&mut table, Time(0), T2), 3);
    assert_eq!(table.counters(T1).throttled_by_quota, 1);
    assert_eq!(table.counters(T2).throttled_by_quota, 1);
}

#[test]
fn one_tenants_burst_does_not_throttle_another_within_its_quota() {
    let quotas = vec![QuotaConfig::new(QuotaScope::Global, 1, 100), QuotaConfig::new(QuotaScope::Tenant(T3), 50, 100)];
    let mut table = table(quotas, Some(BucketConfig::per_interval(1_000, 100)));
    for step in 0..100u64 {
        let now = Time(step * 100);
        // T3 sends its whole quota every interval; T1 sends one request, within its quota.
        assert_eq!(drain(&mut table, now, T3), 50);
        assert_eq!(table.on_request(now, T1), Admission::Admitted { quota: Some(QuotaScope::Global) });
    }
    assert_eq!(table.counters(T1), Counters { admitted: 100, ..Counters::default() });
    assert_eq!(table.counters(T3).admitted, 5_000);
}

#[test]
fn block_interval_throttles_every_request_until_it_ends() {
    let quota = QuotaConfig::new(QuotaScope::Tenant(T1), 1, 100).with_block_interval_ns(1_000);
    let mut table = table(vec![quota], None);
    assert!(admitted(table.on_request(Time(0), T1)));
    let exhausted = Admission::Throttled {
        limit: Limit::Quota(QuotaScope::Tenant(T1)),
        reason: ThrottleReason::Exhausted,
        retry_after_ns: 1_000,
    };
    assert_eq!(table.on_request(Time(0), T1), exhausted, "retry-after is the whole block");
    // The bucket refills at 100, but the block lasts until 1 000 and is not extended.
    for now in [100, 500, 999] {
        let blocked = Admission::Throttled {
            limit: Limit::Quota(QuotaScope::Tenant(T1)),
            reason: ThrottleReason::Blocked,
            retry_after_ns: 1_000 - now,
        };
        assert_eq!(table.on_request(Time(now), T1), blocked);
    }
    assert_eq!(table.quota_tokens(Time(999), T1), Some(1), "a blocked request takes no token");
    assert!(admitted(table.on_request(Time(1_000), T1)));
    assert_eq!(
        table.counters(T1),
        Counters { admitted: 2, throttled_by_quota: 1, throttled_while_blocked: 3, ..Counters::default() }
    );
}

#[test]
fn block_shorter_than_the_refill_waits_for_the_token() {
    let quota = QuotaConfig::new(QuotaScope::Global, 1, 1_000).with_block_interval_ns(10);
    let mut table = table(vec![quota], None);
    assert!(admitted(table.on_request(Time(0), T2)));
    let Admission::Throttled { reason, retry_after_ns, .. } = table.on_request(Time(0), T2) else {
        panic!("the bucket is empty");
    };
    assert_eq!((reason, retry_after_ns), (ThrottleReason::Exhausted, 1_000));
    let Admission::Throttled { reason, retry_after_ns, .. } = table.on_request(Time(5), T2) else {
        panic!("the block holds");
    };
    assert_eq!((reason, retry_after_ns), (ThrottleReason::Blocked, 995));
    // At 20 the block is over but no token has come: exhausted again, blocked again.
    let Admission::Throttled { reason, retry_after_ns, .. } = table.on_request(Time(20), T2) else {
        panic!("no token yet");
    };
    assert_eq!((reason, retry_after_ns), (ThrottleReason::Exhausted, 980));
    assert!(admitted(table.on_request(Time(1_000), T2)));
}

#[test]
fn retry_after_of_a_quota_is_exact() {
    let quotas = vec![QuotaConfig::new(QuotaScope::Global, 3, 1_000).with_burst(2)];
    let mut table = table(quotas, None);
    assert_eq!(drain(&mut table, Time(10), T1), 2);
    let Admission::Throttled { retry_after_ns, .. } = table.on_request(Time(10), T1) else {
        panic!("drained");
    };
    assert_eq!(retry_after_ns, 334, "ceil(1000 / 3)");
    let mut early = table.clone();
    assert!(!admitted(early.on_request(Time(10 + retry_after_ns - 1), T1)));
    assert!(admitted(table.on_request(Time(10 + retry_after_ns), T1)));
}

#[test]
fn service_capacity_throttles_every_tenant_without_blocking_or_charging_quotas() {
    let quota = QuotaConfig::new(QuotaScope::Global, 10, 1_000).with_block_interval_ns(5_000);
    let mut table = table(vec![quota], Some(BucketConfig::per_interval(2, 1_000)));
    assert!(admitted(table.on_request(Time(0), T1)));
    assert!(admitted(table.on_request(Time(0), T1)));
    let service =
        Admission::Throttled { limit: Limit::ServiceCapacity, reason: ThrottleReason::Exhausted, retry_after_ns: 500 };
    assert_eq!(table.on_request(Time(0), T1), service);
    assert_eq!(table.on_request(Time(0), T2), service, "an idle tenant is throttled by the service too");
    assert_eq!(table.service_capacity_tokens(Time(0)), Some(0));
    assert_eq!(table.quota_tokens(Time(0), T1), Some(8), "a throttled request takes no quota token");
    assert_eq!(table.quota_tokens(Time(0), T2), Some(10));
    assert!(admitted(table.on_request(Time(500), T1)), "the service capacity throttling set no block");
    assert_eq!(table.counters(T2).throttled_by_service_capacity, 1);
}

#[test]
fn retry_after_covers_the_service_capacity_too() {
    let quotas =
        vec![QuotaConfig::new(QuotaScope::Tenant(T1), 1, 100), QuotaConfig::new(QuotaScope::Tenant(T2), 1, 100)];
    let mut table = table(quotas, Some(BucketConfig::per_interval(1, 1_000)));
    assert!(admitted(table.on_request(Time(0), T1)));
    let Admission::Throttled { limit, retry_after_ns, .. } = table.on_request(Time(0), T1) else {
        panic!("T1's quota is empty");
    };
    assert_eq!(limit, Limit::Quota(QuotaScope::Tenant(T1)), "the quota refuses first");
    assert_eq!(retry_after_ns, 1_000, "the quota's token comes at 100, the service's at 1 000");
    assert!(!admitted(table.on_request(Time(999), T2)));
    assert!(admitted(table.on_request(Time(1_000), T1)));
}

#[test]
fn counters_add_up_per_tenant_per_scope_and_in_total() {
    let quotas = vec![QuotaConfig::new(QuotaScope::Global, 1, 100), QuotaConfig::new(QuotaScope::Tenant(T1), 2, 100)];
    let mut table = table(quotas, None);
    for tenant in [T1, T1, T1, T2, T2, T3] {
        table.on_request(Time(0), tenant);
    }
    let counters: Vec<_> = table.counters_by_tenant().collect();
    assert_eq!(
        counters,
        vec![
            (T1, Counters { admitted: 2, throttled_by_quota: 1, ..Counters::default() }),
            (T2, Counters { admitted: 1, throttled_by_quota: 1, ..Counters::default() }),
            (T3, Counters { admitted: 1, ..Counters::default() }),
        ]
    );
    assert_eq!(
        table.counters_of_scope(QuotaScope::Global),
        Counters { admitted: 2, throttled_by_quota: 1, ..Counters::default() }
    );
    assert_eq!(table.totals().requests(), 6);
    assert_eq!(table.totals().throttled(), 2);
    assert_eq!(table.counters(TenantId(9)), Counters::default());
}

#[test]
fn sweep_forgets_only_full_unblocked_buckets() {
    let quota = QuotaConfig::new(QuotaScope::Global, 1, 100).with_burst(2).with_block_interval_ns(1_000);
    let mut table = table(vec![quota], None);
    assert!(admitted(table.on_request(Time(0), T1)));
    assert_eq!(drain(&mut table, Time(0), T2), 2);
    assert_eq!(table.sweep(Time(50)), 0, "T1 is refilling and T2 is blocked");
    assert_eq!(table.sweep(Time(100)), 1, "T1 is full again");
    let before = table.clone();
    assert_eq!(table.sweep(Time(999)), 0, "T2 is still blocked");
    assert_eq!(table, before);
    assert_eq!(table.sweep(Time(1_000)), 1);
    assert_eq!(drain(&mut table, Time(1_000), T1), 2, "a forgotten bucket comes back full");
    table.check_invariants();
}

// Properties.

/// The configuration a generated run uses: a global quota or none, tenant quotas
/// for some of three tenants, a service capacity or none.
fn table_config() -> impl Strategy<Value = QuotaTableConfig> {
    let quota_shape = (1..4u64, 10..400u64, 1..5u64, prop::option::of(1..600u64));
    let quota = move |scope: QuotaScope| {
        prop::option::of(quota_shape.clone().prop_map(move |(rate, interval_ns, burst, block_interval_ns)| {
            QuotaConfig { scope, rate, interval_ns, burst, block_interval_ns }
        }))
    };
    let service =
        prop::option::of((1..8u64, 10..200u64, 1..8u64).prop_map(|(rate, interval_ns, burst)| BucketConfig {
            rate,
            interval_ns,
            burst,
        }));
    (quota(QuotaScope::Global), quota(QuotaScope::Tenant(T1)), quota(QuotaScope::Tenant(T2)), service).prop_map(
        |(global, first, second, service_capacity)| QuotaTableConfig {
            quotas: [global, first, second].into_iter().flatten().collect(),
            service_capacity,
        },
    )
}

/// Arrivals: a gap in nanoseconds since the previous one and a tenant (1 to 3).
fn arrivals() -> impl Strategy<Value = Vec<(u64, TenantId)>> {
    vec((prop_oneof![3 => 0..5u64, 2 => 0..200u64], (1..4u32).prop_map(TenantId)), 1..160)
}

/// Runs `arrivals` through a table built from `config`: each arrival's time,
/// tenant and answer.
fn run(config: &QuotaTableConfig, arrivals: &[(u64, TenantId)]) -> Vec<(Time, TenantId, Admission)> {
    let mut table = QuotaTable::new(config).expect("generated configurations are valid");
    let mut now = Time::ZERO;
    let mut answers = Vec::new();
    for (gap_ns, tenant) in arrivals {
        now = now.plus_ns(*gap_ns);
        answers.push((now, *tenant, table.on_request(now, *tenant)));
        table.check_invariants();
    }
    let totals = table.totals();
    assert_eq!(totals.requests(), arrivals.len() as u64);
    assert_eq!(totals.admitted, answers.iter().filter(|(_, _, answer)| admitted(*answer)).count() as u64);
    answers
}

/// THR-1 for one bucket shape: in every window [a, b] between two admitted
/// requests, the number admitted is at most `burst + (b - a) * rate / interval_ns`.
fn window_bound_holds(admitted_at: &[Time], shape: BucketConfig) -> Result<(), TestCaseError> {
    for (first, start) in admitted_at.iter().enumerate() {
        for (last, end) in admitted_at.iter().enumerate().skip(first) {
            let count = (last - first + 1) as u128;
            let length_ns = u128::from(end.0 - start.0);
            let bound = u128::from(shape.burst) + length_ns * u128::from(shape.rate) / u128::from(shape.interval_ns);
            prop_assert!(count <= bound, "{count} admitted in [{start:?}, {end:?}] over {shape:?}");
        }
    }
    Ok(())
}

/// A tenant that sends at most its own rate: one request every
/// `ceil(interval_ns / rate)` nanoseconds or more.
fn polite_arrivals(shape: BucketConfig, extra_gaps: &[u64]) -> Vec<Time> {
    let period_ns = shape.interval_ns.div_ceil(shape.rate);
    let mut now = Time::ZERO;
    extra_gaps
        .iter()
        .map(|extra_ns| {
            now = now.plus_ns(period_ns + extra_ns);
            now
        })
        .collect()
}

proptest! {
    #[test]
    fn admitted_in_any_window_stays_within_burst_plus_rate(
        config in table_config(),
        arrivals in arrivals(),
    ) {
        let answers = run(&config, &arrivals);
        let table = QuotaTable::new(&config).expect("valid");
        for tenant in [T1, T2, T3] {
            let Some(scope) = table.scope_of(tenant) else { continue };
            let admitted_at: Vec<Time> = answers
                .iter()
                .filter(|(_, who, answer)| *who == tenant && admitted(*answer))
                .map(|(now, _, _)| *now)
                .collect();
            window_bound_holds(&admitted_at, table.quota(scope).expect("scoped").bucket())?;
        }
        if let Some(service) = config.service_capacity {
            let admitted_at: Vec<Time> =
                answers.iter().filter(|(_, _, answer)| admitted(*answer)).map(|(now, _, _)| *now).collect();
            window_bound_holds(&admitted_at, service)?;
        }
    }

    #[test]
    fn tenant_within_its_rate_is_never_throttled_by_its_quota(
        config in table_config(),
        own_quota in any::<bool>(),
        polite_gaps in vec(0..50u64, 1..60),
        noise in arrivals(),
    ) {
        // T3 is the polite tenant, charged to its own quota or to the global one;
        // T1 and T2 send whatever `noise` says, bursts included.
        let mut config = config;
        let shape = QuotaConfig::new(QuotaScope::Global, 2, 300).with_burst(2).with_block_interval_ns(700);
        let scope = if own_quota { QuotaScope::Tenant(T3) } else { QuotaScope::Global };
        config.quotas.retain(|quota| quota.scope != scope);
        config.quotas.push(QuotaConfig { scope, ..shape });
        let polite = polite_arrivals(shape.bucket(), &polite_gaps);
        let mut others = Vec::new();
        let mut now = Time::ZERO;
        for (gap_ns, tenant) in &noise {
            now = now.plus_ns(*gap_ns);
            others.push((now, if *tenant == T3 { T1 } else { *tenant }));
        }
        // Merge by time; at equal times the noise goes first, which is worst for T3.
        let mut events: Vec<(Time, u8, TenantId)> = others.iter().map(|(at, who)| (*at, 0, *who)).collect();
        events.extend(polite.iter().map(|at| (*at, 1, T3)));
        events.sort();
        let mut table = QuotaTable::new(&config).expect("valid");
        for (now, _, tenant) in events {
            let capacity_before = table.service_capacity_tokens(now);
            let answer = table.on_request(now, tenant);
            if tenant == T3 {
                if let Admission::Throttled { limit, .. } = answer {
                    prop_assert_eq!(limit, Limit::ServiceCapacity, "T3 throttled by its own quota at {:?}", now);
                    prop_assert_eq!(capacity_before, Some(0), "T3 throttled while service capacity remained");
                }
            }
        }
        table.check_invariants();
        prop_assert_eq!(table.counters(T3).throttled_by_quota + table.counters(T3).throttled_while_blocked, 0);
    }

    #[test]
    fn bucket_retry_after_is_exact_from_any_state(
        rate in 1..1_000u64,
        interval_ns in 1..100_000u64,
        burst in 1..10u64,
        takes in vec((0..5_000u64, 0..10u64), 1..40),
    ) {
        let mut bucket = TokenBucket::new(BucketConfig { rate, interval_ns, burst }).expect("valid");
        let mut now = Time::ZERO;
        for (gap_ns, tokens) in takes {
            now = now.plus_ns(gap_ns);
            let tokens = tokens.min(burst);
            if let Err(Shortfall { retry_after_ns }) = bucket.try_take(now, tokens) {
                prop_assert!(retry_after_ns > 0);
                let mut early = bucket.clone();
                prop_assert!(early.try_take(now.plus_ns(retry_after_ns - 1), tokens).is_err(), "ready before retry-after");
                prop_assert_eq!(bucket.clone().try_take(now.plus_ns(retry_after_ns), tokens), Ok(()), "not ready at retry-after");
            }
            bucket.check_invariants();
        }
    }
}

/// The generated runs throttle for every reason, so the properties above are not vacuous.
#[test]
fn generated_runs_reach_every_throttle() {
    let mut runner = TestRunner::deterministic();
    let mut reached = Counters::default();
    for _ in 0..64 {
        let config = table_config().new_tree(&mut runner).expect("the strategy generates").current();
        let arrivals = arrivals().new_tree(&mut runner).expect("the strategy generates").current();
        for (_, _, answer) in run(&config, &arrivals) {
            match answer {
                Admission::Admitted { .. } => reached.admitted += 1,
                Admission::Throttled { limit: Limit::ServiceCapacity, .. } => {
                    reached.throttled_by_service_capacity += 1
                }
                Admission::Throttled { reason: ThrottleReason::Exhausted, .. } => reached.throttled_by_quota += 1,
                Admission::Throttled { reason: ThrottleReason::Blocked, .. } => reached.throttled_while_blocked += 1,
            }
        }
    }
    let counts = [
        reached.admitted,
        reached.throttled_by_quota,
        reached.throttled_while_blocked,
        reached.throttled_by_service_capacity,
    ];
    assert!(counts.iter().all(|count| *count >= 20), "some answer is rarely generated: {reached:?}");
}
