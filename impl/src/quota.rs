//! Throttling: token buckets and the quota table that admits or throttles each
//! client request (THR-1, THR-2), after HashiCorp Vault's rate-limit quotas.
//!
//! ## Token bucket
//!
//! A [`TokenBucket`] refills `rate` tokens per `interval_ns` and holds at most
//! `burst` tokens; it starts full. The arithmetic is integer and exact: the fill
//! level is kept in units where one token is `interval_ns` units and the bucket
//! gains `rate` units per nanosecond (both fit in a `u128`). So a bucket of 3
//! tokens per 1000 ns gains a token every 333⅓ ns, with no rounding drift and no
//! floating point, and the simulator replays byte for byte. Over any window of
//! `L` nanoseconds a bucket gives out at most `burst + L * rate / interval_ns`
//! tokens (THR-1 for one bucket). A refused take returns the exact wait: at
//! `now + retry_after_ns` the take succeeds, one nanosecond earlier it does not
//! (if nothing else takes meanwhile). The same type is the backfiller's budget
//! for store traffic (THR-3).
//!
//! ## Quotas and the three limits
//!
//! A quota ([`QuotaConfig`]) has a `rate` per `interval_ns`, a `burst`, an
//! optional `block_interval_ns` and a scope ([`QuotaScope`]): `Global` (the
//! service-wide default) or `Tenant(t)`. As in Vault, the most specific quota
//! wins and each request is charged to that one quota only: a request of tenant
//! `t` is charged to `t`'s tenant quota if there is one, else to the global
//! quota, else to no quota.
//!
//! * **Tenant quota**: one bucket, for that tenant.
//! * **Global quota**: a per-tenant default, not one shared bucket. Every tenant
//!   without its own quota gets its own bucket with the global quota's shape,
//!   the way Vault keys a quota's buckets per client. One bucket shared by all
//!   tenants would let one tenant's burst starve every other tenant, which is
//!   exactly what THR-2 forbids (and is a bug-zoo entry).
//! * **Service capacity** ([`QuotaTableConfig::service_capacity`], optional): one
//!   bucket for the whole service that every admitted request also consumes,
//!   whatever quota charged it. It bounds the service-wide rate (THR-1
//!   service-wide); without it the service-wide rate is only bounded by the sum
//!   of the tenants' quotas. When it is empty every tenant is throttled, which
//!   THR-2 allows ("while global capacity remains").
//!
//! A request is admitted only if both its quota's bucket and the service
//! capacity have a token, and then it takes one from each; a throttled request
//! takes nothing from either.
//!
//! ## Block interval and retry-after
//!
//! When a quota with a block interval refuses a request for lack of tokens, the
//! tenant's bucket is blocked until `now + block_interval_ns`: every request
//! charged to it before then is throttled ([`ThrottleReason::Blocked`]) without
//! touching any bucket, and a request during the block does not extend it.
//! Running out of service capacity never blocks a tenant.
//!
//! The retry-after of a throttled request is the time until every limit that
//! applies would admit it, with no other traffic: the later of the block's end,
//! the quota's next token and the service capacity's next token. It is exact for
//! the tenant's own limits; the service capacity may be taken by other tenants
//! meanwhile. The `limit` of [`Admission::Throttled`] names the first limit that
//! refused (the quota before the service capacity).
//!
//! ## Call protocol
//!
//! [`QuotaTable::on_request`] takes the time and the requesting tenant and
//! answers at once with an [`Admission`]; the table emits nothing else. `now`
//! should not decrease; if it does, the buckets treat it as their last update
//! (no refill, nothing negative). [`QuotaTable::sweep`] forgets per-tenant
//! buckets that are full and unblocked, which changes no later answer.

use std::collections::BTreeMap;
use std::fmt;

#[cfg(feature = "bugzoo")]
use crate::bugzoo::Bug;
use crate::bugzoo::Bugs;
use crate::types::{TenantId, Time};

/// The shape of a [`TokenBucket`]: `rate` tokens per `interval_ns`, at most
/// `burst` tokens held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketConfig {
    /// Tokens added per interval; positive.
    pub rate: u64,
    /// The interval, in nanoseconds; positive.
    pub interval_ns: u64,
    /// The most tokens the bucket holds (and its initial fill); positive.
    pub burst: u64,
}

impl BucketConfig {
    /// Vault's shape: `rate` tokens per `interval_ns`, with a burst of `rate`.
    pub fn per_interval(rate: u64, interval_ns: u64) -> BucketConfig {
        BucketConfig { rate, interval_ns, burst: rate }
    }

    /// The first field that is zero, if any.
    pub fn validate(&self) -> Result<(), ConfigField> {
        if self.rate == 0 {
            return Err(ConfigField::Rate);
        }
        if self.interval_ns == 0 {
            return Err(ConfigField::IntervalNs);
        }
        if self.burst == 0 {
            return Err(ConfigField::Burst);
        }
        Ok(())
    }

    /// Units per token (see the module documentation).
    fn units_per_token(&self) -> u128 {
        u128::from(self.interval_ns)
    }

    fn capacity_units(&self) -> u128 {
        u128::from(self.burst) * self.units_per_token()
    }
}

/// A field of a bucket or quota configuration; as an error, the field that must
/// be positive and is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigField {
    /// `rate`.
    Rate,
    /// `interval_ns`.
    IntervalNs,
    /// `burst`.
    Burst,
    /// `block_interval_ns` (zero; leave it out for no block).
    BlockIntervalNs,
}

impl fmt::Display for ConfigField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ConfigField::Rate => "rate",
            ConfigField::IntervalNs => "interval_ns",
            ConfigField::Burst => "burst",
            ConfigField::BlockIntervalNs => "block_interval_ns",
        };
        write!(f, "`{name}` must be positive")
    }
}

impl std::error::Error for ConfigField {}

/// A refused take: the bucket holds too few tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shortfall {
    /// Nanoseconds until the take would succeed, if nothing else takes meanwhile.
    pub retry_after_ns: u64,
}

/// A token bucket with exact integer refill. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenBucket {
    config: BucketConfig,
    /// The fill level at `updated`, in units (a token is `interval_ns` units).
    level_units: u128,
    /// The time of the last take; the level grows `rate` units per ns after it.
    updated: Time,
}

impl TokenBucket {
    /// A full bucket, or the field of `config` that is invalid.
    pub fn new(config: BucketConfig) -> Result<TokenBucket, ConfigField> {
        config.validate()?;
        Ok(TokenBucket { config, level_units: config.capacity_units(), updated: Time::ZERO })
    }

    /// An empty bucket that starts filling at `now`, or the field of
    /// `config` that is invalid.
    pub fn empty(config: BucketConfig, now: Time) -> Result<TokenBucket, ConfigField> {
        config.validate()?;
        Ok(TokenBucket { config, level_units: 0, updated: now })
    }

    /// The bucket's shape.
    pub fn config(&self) -> BucketConfig {
        self.config
    }

    /// Whole tokens available at `now`.
    pub fn tokens(&self, now: Time) -> u64 {
        let tokens = self.level_at(now) / self.config.units_per_token();
        u64::try_from(tokens).expect("a bucket holds at most `burst` tokens")
    }

    /// Whether the bucket is full at `now` (indistinguishable from a new one).
    pub fn is_full(&self, now: Time) -> bool {
        self.level_at(now) == self.config.capacity_units()
    }

    /// The earliest time, not before `now`, at which `tokens` can be taken if
    /// nothing else takes meanwhile.
    ///
    /// Panics if `tokens` exceeds the burst: such a take never succeeds.
    pub fn ready_at(&self, now: Time, tokens: u64) -> Time {
        assert!(
            tokens <= self.config.burst,
            "a take of {tokens} tokens from a bucket of burst {} never succeeds",
            self.config.burst
        );
        let needed = u128::from(tokens) * self.config.units_per_token();
        let level = self.level_at(now);
        if level >= needed {
            return now;
        }
        let rate = u128::from(self.config.rate);
        let wait_ns = (needed - level).div_ceil(rate);
        let from = now.max(self.updated);
        from.plus_ns(u64::try_from(wait_ns).unwrap_or(u64::MAX))
    }

    /// Takes `tokens` at `now`, or says how long until it could.
    ///
    /// Panics if `tokens` exceeds the burst: such a take never succeeds.
    pub fn try_take(&mut self, now: Time, tokens: u64) -> Result<(), Shortfall> {
        let ready = self.ready_at(now, tokens);
        if ready > now {
            let retry_after_ns = ready.0 - now.0;
            assert!(retry_after_ns > 0, "a shortfall waits");
            return Err(Shortfall { retry_after_ns });
        }
        let needed = u128::from(tokens) * self.config.units_per_token();
        let level = self.level_at(now);
        assert!(level >= needed, "a ready bucket holds the tokens taken");
        self.level_units = level - needed;
        self.updated = now.max(self.updated);
        self.check_invariants();
        Ok(())
    }

    /// Asserts the bucket's invariants.
    pub fn check_invariants(&self) {
        assert!(self.config.validate().is_ok(), "a bucket with an invalid shape: {:?}", self.config);
        assert!(self.level_units <= self.config.capacity_units(), "bucket over its burst: {self:?}");
    }

    /// The level at `now` in units: the level at the last take plus the refill
    /// since, capped at the burst. A `now` before the last take counts as it.
    fn level_at(&self, now: Time) -> u128 {
        let elapsed_ns = now.0.saturating_sub(self.updated.0);
        let refill = u128::from(elapsed_ns) * u128::from(self.config.rate);
        self.level_units.saturating_add(refill).min(self.config.capacity_units())
    }
}

/// What a quota applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaScope {
    /// The service-wide default: one bucket per tenant that has no quota of its own.
    Global,
    /// One tenant.
    Tenant(TenantId),
}

impl fmt::Display for QuotaScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaScope::Global => write!(f, "global"),
            QuotaScope::Tenant(tenant) => write!(f, "{tenant}"),
        }
    }
}

/// A rate-limit quota, after Vault's: `rate` requests per `interval_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaConfig {
    /// What the quota applies to.
    pub scope: QuotaScope,
    /// Requests per interval; positive.
    pub rate: u64,
    /// The interval, in nanoseconds; positive.
    pub interval_ns: u64,
    /// Requests admitted at once from a full bucket; positive (Vault: `rate`).
    pub burst: u64,
    /// How long a tenant is refused after exceeding the quota; `None` for no block.
    pub block_interval_ns: Option<u64>,
}

impl QuotaConfig {
    /// Vault's defaults: a burst of `rate` and no block interval.
    pub fn new(scope: QuotaScope, rate: u64, interval_ns: u64) -> QuotaConfig {
        QuotaConfig { scope, rate, interval_ns, burst: rate, block_interval_ns: None }
    }

    /// The same quota with another burst.
    pub fn with_burst(self, burst: u64) -> QuotaConfig {
        QuotaConfig { burst, ..self }
    }

    /// The same quota with a block interval.
    pub fn with_block_interval_ns(self, block_interval_ns: u64) -> QuotaConfig {
        QuotaConfig { block_interval_ns: Some(block_interval_ns), ..self }
    }

    /// The shape of each of its buckets.
    pub fn bucket(&self) -> BucketConfig {
        BucketConfig { rate: self.rate, interval_ns: self.interval_ns, burst: self.burst }
    }

    /// The first field that is zero, if any.
    pub fn validate(&self) -> Result<(), ConfigField> {
        self.bucket().validate()?;
        if self.block_interval_ns == Some(0) {
            return Err(ConfigField::BlockIntervalNs);
        }
        Ok(())
    }
}

/// The quotas of a service and its optional service capacity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct QuotaTableConfig {
    /// At most one quota per scope.
    pub quotas: Vec<QuotaConfig>,
    /// One bucket consumed by every admitted request; `None` for no service-wide limit.
    pub service_capacity: Option<BucketConfig>,
}

/// A limit that throttles requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Limit {
    /// The quota of this scope (for `Global`, the requesting tenant's bucket of it).
    Quota(QuotaScope),
    /// The service capacity.
    ServiceCapacity,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Quota(scope) => write!(f, "quota {scope}"),
            Limit::ServiceCapacity => write!(f, "service capacity"),
        }
    }
}

/// Why a configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaConfigError {
    /// A field of a limit is zero where it must be positive.
    NotPositive {
        /// The limit whose configuration is wrong.
        limit: Limit,
        /// The offending field.
        field: ConfigField,
    },
    /// Two quotas have the same scope (Vault allows one quota per path).
    DuplicateScope {
        /// The scope configured twice.
        scope: QuotaScope,
    },
}

impl fmt::Display for QuotaConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaConfigError::NotPositive { limit, field } => write!(f, "{limit}: {field}"),
            QuotaConfigError::DuplicateScope { scope } => write!(f, "two quotas for scope {scope}"),
        }
    }
}

impl std::error::Error for QuotaConfigError {}

/// Why a request was throttled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ThrottleReason {
    /// The limit had no token left.
    Exhausted,
    /// The tenant is inside its quota's block interval.
    Blocked,
}

/// The answer to a request (HTTP 429 with `Retry-After` when throttled).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Admission {
    /// The request may proceed.
    Admitted {
        /// The quota it was charged to; `None` when no quota applies.
        quota: Option<QuotaScope>,
    },
    /// The request is refused; nothing was charged.
    Throttled {
        /// The first limit that refused it.
        limit: Limit,
        /// Why that limit refused it.
        reason: ThrottleReason,
        /// Nanoseconds until every limit that applies would admit it (see the
        /// module documentation).
        retry_after_ns: u64,
    },
}

/// Request counts of one tenant, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Counters {
    /// Requests admitted.
    pub admitted: u64,
    /// Requests throttled because their quota had no token.
    pub throttled_by_quota: u64,
    /// Requests throttled inside their quota's block interval.
    pub throttled_while_blocked: u64,
    /// Requests throttled because the service capacity had no token.
    pub throttled_by_service_capacity: u64,
}

impl Counters {
    /// Requests throttled, for any reason.
    pub fn throttled(&self) -> u64 {
        self.throttled_by_quota + self.throttled_while_blocked + self.throttled_by_service_capacity
    }

    /// Requests answered.
    pub fn requests(&self) -> u64 {
        self.admitted + self.throttled()
    }

    fn add(&mut self, other: &Counters) {
        self.admitted += other.admitted;
        self.throttled_by_quota += other.throttled_by_quota;
        self.throttled_while_blocked += other.throttled_while_blocked;
        self.throttled_by_service_capacity += other.throttled_by_service_capacity;
    }
}

/// A tenant's bucket of the quota charged for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TenantBucket {
    bucket: TokenBucket,
    /// Requests before this time are throttled (block interval).
    blocked_until: Option<Time>,
}

/// What a request's quota says at `now`, before anything is charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QuotaVerdict {
    /// No quota applies, or it has a token and no block.
    Ready,
    /// The quota refuses until `until`.
    Wait { until: Time, reason: ThrottleReason },
}

/// The quotas of a service, their per-tenant buckets, the service capacity and
/// the counters. See the module documentation for semantics and call protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuotaTable {
    quotas: BTreeMap<QuotaScope, QuotaConfig>,
    service_capacity: Option<TokenBucket>,
    /// Buckets of tenants that were charged and not swept; an absent tenant's
    /// bucket is full and unblocked.
    buckets: BTreeMap<TenantId, TenantBucket>,
    counters: BTreeMap<TenantId, Counters>,
    /// Bug-zoo variants (none outside the zoo).
    bugs: Bugs,
}

/// The key under which the bug-zoo entry `one-bucket-for-all-tenants` files
/// the one bucket it shares among every tenant charged to the global quota.
#[cfg(feature = "bugzoo")]
const SHARED_BUCKET_KEY: TenantId = TenantId(u32::MAX);

impl QuotaTable {
    /// A table with full buckets, or the first configuration error.
    pub fn new(config: &QuotaTableConfig) -> Result<QuotaTable, QuotaConfigError> {
        let mut quotas = BTreeMap::new();
        for quota in &config.quotas {
            let limit = Limit::Quota(quota.scope);
            quota.validate().map_err(|field| QuotaConfigError::NotPositive { limit, field })?;
            if quotas.insert(quota.scope, *quota).is_some() {
                return Err(QuotaConfigError::DuplicateScope { scope: quota.scope });
            }
        }
        let service_capacity = config
            .service_capacity
            .map(TokenBucket::new)
            .transpose()
            .map_err(|field| QuotaConfigError::NotPositive { limit: Limit::ServiceCapacity, field })?;
        let table = QuotaTable {
            quotas,
            service_capacity,
            buckets: BTreeMap::new(),
            counters: BTreeMap::new(),
            bugs: Bugs::none(),
        };
        table.check_invariants();
        Ok(table)
    }

    /// The same table running bug-zoo variants `bugs`.
    pub fn with_bugs(self, bugs: Bugs) -> QuotaTable {
        QuotaTable { bugs, ..self }
    }

    /// The quota a request of `tenant` is charged to: its own, else the global one.
    pub fn scope_of(&self, tenant: TenantId) -> Option<QuotaScope> {
        [QuotaScope::Tenant(tenant), QuotaScope::Global].into_iter().find(|scope| self.quotas.contains_key(scope))
    }

    /// The quota configured for `scope`, if any.
    pub fn quota(&self, scope: QuotaScope) -> Option<&QuotaConfig> {
        self.quotas.get(&scope)
    }

    /// Admits or throttles one request of `tenant` at `now`, charging one token
    /// of its quota and one of the service capacity when admitted.
    pub fn on_request(&mut self, now: Time, tenant: TenantId) -> Admission {
        let scope = self.scope_of(tenant);
        let key = self.bucket_key(tenant, scope);
        let quota_verdict = self.quota_verdict(now, key, scope);
        let service_ready = self.service_capacity.as_ref().map_or(now, |bucket| bucket.ready_at(now, 1));
        assert!(service_ready >= now, "a bucket is never ready in the past");
        let admission = match (quota_verdict, scope) {
            (QuotaVerdict::Ready, _) if service_ready == now => self.admit(now, key, scope),
            (QuotaVerdict::Ready, _) => {
                let retry_after_ns = service_ready.0 - now.0;
                Admission::Throttled {
                    limit: Limit::ServiceCapacity,
                    reason: ThrottleReason::Exhausted,
                    retry_after_ns,
                }
            }
            (QuotaVerdict::Wait { until, reason }, Some(scope)) => {
                let until = self.block_on_exhaustion(now, key, scope, until, reason);
                let retry_after_ns = until.max(service_ready).0 - now.0;
                Admission::Throttled { limit: Limit::Quota(scope), reason, retry_after_ns }
            }
            (QuotaVerdict::Wait { .. }, None) => panic!("{tenant} waits for a quota it does not have"),
        };
        self.count(tenant, &admission);
        admission
    }

    /// The key of the bucket that charges `tenant`: the tenant itself (one
    /// bucket per tenant, also for the global quota).
    fn bucket_key(&self, tenant: TenantId, scope: Option<QuotaScope>) -> TenantId {
        #[cfg(feature = "bugzoo")]
        if self.bugs.is_on(Bug::SharedBucket) && scope == Some(QuotaScope::Global) {
            return SHARED_BUCKET_KEY;
        }
        let _ = (&self.bugs, scope);
        tenant
    }

    /// The counters of `tenant` (zero if it never sent a request).
    pub fn counters(&self, tenant: TenantId) -> Counters {
        self.counters.get(&tenant).copied().unwrap_or_default()
    }

    /// The counters of every tenant that sent a request, in tenant order.
    pub fn counters_by_tenant(&self) -> impl Iterator<Item = (TenantId, Counters)> + '_ {
        self.counters.iter().map(|(tenant, counters)| (*tenant, *counters))
    }

    /// The counters of the requests charged to `scope` (for `Global`, summed over
    /// the tenants without their own quota).
    pub fn counters_of_scope(&self, scope: QuotaScope) -> Counters {
        let mut total = Counters::default();
        for (tenant, counters) in &self.counters {
            if self.scope_of(*tenant) == Some(scope) {
                total.add(counters);
            }
        }
        total
    }

    /// The counters of every request.
    pub fn totals(&self) -> Counters {
        let mut total = Counters::default();
        self.counters.values().for_each(|counters| total.add(counters));
        total
    }

    /// Whole tokens of service capacity left at `now`; `None` when unlimited.
    pub fn service_capacity_tokens(&self, now: Time) -> Option<u64> {
        self.service_capacity.as_ref().map(|bucket| bucket.tokens(now))
    }

    /// Whole tokens left at `now` in the bucket that charges `tenant`; `None`
    /// when no quota applies.
    pub fn quota_tokens(&self, now: Time, tenant: TenantId) -> Option<u64> {
        let scope = self.scope_of(tenant)?;
        let key = self.bucket_key(tenant, Some(scope));
        Some(self.buckets.get(&key).map_or(self.quotas[&scope].burst, |state| state.bucket.tokens(now)))
    }

    /// Forgets the buckets that are full and unblocked at `now` (a forgotten
    /// bucket is recreated full, so with a non-decreasing `now` no later answer
    /// changes). Returns how many were forgotten.
    pub fn sweep(&mut self, now: Time) -> usize {
        let before = self.buckets.len();
        self.buckets.retain(|_, state| {
            let blocked = state.blocked_until.is_some_and(|until| until > now);
            blocked || !state.bucket.is_full(now)
        });
        before - self.buckets.len()
    }

    /// Asserts the table's invariants.
    pub fn check_invariants(&self) {
        for (scope, quota) in &self.quotas {
            assert_eq!(*scope, quota.scope, "quota filed under another scope");
            assert!(quota.validate().is_ok(), "an invalid quota was accepted: {quota:?}");
        }
        if let Some(bucket) = &self.service_capacity {
            bucket.check_invariants();
        }
        for (tenant, state) in &self.buckets {
            self.check_tenant_bucket(*tenant, state);
        }
    }

    fn check_tenant_bucket(&self, tenant: TenantId, state: &TenantBucket) {
        let scope = self.scope_of(tenant).unwrap_or_else(|| panic!("{tenant} has a bucket but no quota"));
        let quota = &self.quotas[&scope];
        assert_eq!(state.bucket.config(), quota.bucket(), "{tenant}'s bucket has another shape than {scope}");
        assert!(
            state.blocked_until.is_none() || quota.block_interval_ns.is_some(),
            "{tenant} blocked by {scope}, which has no block interval"
        );
        state.bucket.check_invariants();
    }

    fn quota_verdict(&self, now: Time, tenant: TenantId, scope: Option<QuotaScope>) -> QuotaVerdict {
        let Some(scope) = scope else {
            return QuotaVerdict::Ready;
        };
        let Some(state) = self.buckets.get(&tenant) else {
            // A bucket never charged is full: `burst` is positive.
            assert!(self.quotas[&scope].burst > 0, "a quota admits at least one request");
            return QuotaVerdict::Ready;
        };
        let token_ready = state.bucket.ready_at(now, 1);
        match state.blocked_until {
            Some(until) if until > now => {
                QuotaVerdict::Wait { until: until.max(token_ready), reason: ThrottleReason::Blocked }
            }
            _ if token_ready > now => QuotaVerdict::Wait { until: token_ready, reason: ThrottleReason::Exhausted },
            _ => QuotaVerdict::Ready,
        }
    }

    /// Starts the block interval of `tenant` if its quota has one and refused
    /// for lack of tokens; returns when the quota admits again.
    fn block_on_exhaustion(
        &mut self,
        now: Time,
        tenant: TenantId,
        scope: QuotaScope,
        until: Time,
        reason: ThrottleReason,
    ) -> Time {
        let (ThrottleReason::Exhausted, Some(block_interval_ns)) = (reason, self.quotas[&scope].block_interval_ns)
        else {
            return until;
        };
        let state = self.buckets.get_mut(&tenant).expect("an exhausted bucket was charged before");
        let blocked_until = now.plus_ns(block_interval_ns);
        state.blocked_until = Some(blocked_until);
        until.max(blocked_until)
    }

    fn admit(&mut self, now: Time, tenant: TenantId, scope: Option<QuotaScope>) -> Admission {
        if let Some(scope) = scope {
            let config = self.quotas[&scope].bucket();
            let state = self.buckets.entry(tenant).or_insert_with(|| TenantBucket {
                bucket: TokenBucket::new(config).expect("quotas are validated"),
                blocked_until: None,
            });
            state.blocked_until = None;
            state.bucket.try_take(now, 1).expect("a ready quota holds a token");
        }
        if let Some(bucket) = &mut self.service_capacity {
            bucket.try_take(now, 1).expect("a ready service capacity holds a token");
        }
        if let Some(state) = self.buckets.get(&tenant) {
            self.check_tenant_bucket(tenant, state);
        }
        Admission::Admitted { quota: scope }
    }

    fn count(&mut self, tenant: TenantId, admission: &Admission) {
        let counters = self.counters.entry(tenant).or_default();
        let requests_before = counters.requests();
        match admission {
            Admission::Admitted { .. } => counters.admitted += 1,
            Admission::Throttled { limit: Limit::ServiceCapacity, .. } => counters.throttled_by_service_capacity += 1,
            Admission::Throttled { reason: ThrottleReason::Exhausted, .. } => counters.throttled_by_quota += 1,
            Admission::Throttled { reason: ThrottleReason::Blocked, .. } => counters.throttled_while_blocked += 1,
        }
        assert_eq!(counters.requests(), requests_before + 1, "each request is counted once");
    }
}

#[cfg(test)]
mod tests;
