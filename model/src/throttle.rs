//! The throttling properties THR-1, THR-2 and THR-3, checked incrementally.
//!
//! A driver reports each control-plane request that reached the quota table as
//! [`Observation::Admitted`](crate::Observation::Admitted) or
//! [`Observation::Throttled`](crate::Observation::Throttled), in time order,
//! with the tenant and the time as plain integers. The checker is built with
//! the configured limits ([`ThrottleLimits`], plain integers too) and judges
//! those observations against its own reference buckets, which it feeds only
//! with the admissions it saw; it never asks the implementation what its
//! buckets hold.
//!
//! * **THR-1** (admitted rate within limit plus burst): a limit of `rate`
//!   tokens per `interval_ns` with `burst` admits at most
//!   `burst + L * rate / interval_ns` requests in any window of `L` ns. A
//!   reference token bucket that starts full and gives a token to every
//!   admission goes below zero exactly when some window ending at that
//!   admission holds more (the standard token-bucket conformance argument),
//!   so the checker keeps one reference bucket per tenant with a quota and one
//!   for the service capacity, and flags an admission that finds its
//!   reference bucket without a whole token.
//! * **THR-2** (no throttling of a tenant within its quota while capacity
//!   remains): a throttled request whose tenant's reference bucket held a
//!   token and was not inside a block interval, while the service capacity's
//!   reference bucket held a token too (or there is none), was throttled
//!   because of someone else: a violation. A request that finds its quota
//!   empty starts the quota's block interval, as the quota semantics say, and
//!   the reference follows.
//!
//! * **THR-3** (a migration job's store traffic within its budget): the
//!   driver reports every store request a budgeted job sends as
//!   [`Observation::BudgetedRequest`](crate::Observation::BudgetedRequest)
//!   with the job and the time; a [`BudgetChecker`] built with each job's
//!   budget judges them exactly as THR-1 judges admissions, with one
//!   reference bucket per job that starts full at time zero and lives across
//!   the job's crashes and restarts: a budget bounds the job's traffic, not
//!   one incarnation's.
//!
//! Arithmetic is exact integers: a token is `interval_ns` units and a bucket
//! gains `rate` units per nanosecond.

use std::collections::BTreeMap;

use crate::properties::{PropertyId, Violation};

/// The shape of one limit: `rate` tokens per `interval_ns`, at most `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LimitShape {
    /// Tokens per interval; positive.
    pub rate: u64,
    /// The interval, ns; positive.
    pub interval_ns: u64,
    /// The most tokens held, and the initial fill; positive.
    pub burst: u64,
    /// How long a tenant is refused after exceeding the limit, ns (quotas only).
    pub block_interval_ns: Option<u64>,
}

impl LimitShape {
    /// The most admissions this limit allows in a window of `window_ns`.
    pub fn allowed_in(&self, window_ns: u64) -> u128 {
        u128::from(self.burst) + u128::from(window_ns) * u128::from(self.rate) / u128::from(self.interval_ns)
    }
}

/// Every configured limit, by the tenant indexes the driver uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ThrottleLimits {
    /// Tenants with a quota of their own.
    pub tenants: BTreeMap<u32, LimitShape>,
    /// The per-tenant default of every other tenant (one bucket per tenant).
    pub global: Option<LimitShape>,
    /// One bucket for the whole service.
    pub service_capacity: Option<LimitShape>,
}

impl ThrottleLimits {
    /// The quota that charges `tenant`: its own, else the global default.
    pub fn quota_of(&self, tenant: u32) -> Option<LimitShape> {
        self.tenants.get(&tenant).copied().or(self.global)
    }
}

/// A reference token bucket with exact integer refill.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ReferenceBucket {
    shape: LimitShape,
    /// The level at `updated`, in units (a token is `interval_ns` units).
    level_units: u128,
    updated_ns: u64,
    /// The admissions since the bucket was last full, and when that was: the
    /// window a THR-1 violation names.
    full_at_ns: u64,
    since_full: u64,
    blocked_until_ns: Option<u64>,
}

impl ReferenceBucket {
    fn new(shape: LimitShape) -> ReferenceBucket {
        ReferenceBucket {
            shape,
            level_units: ReferenceBucket::capacity(shape),
            updated_ns: 0,
            full_at_ns: 0,
            since_full: 0,
            blocked_until_ns: None,
        }
    }

    fn capacity(shape: LimitShape) -> u128 {
        u128::from(shape.burst) * u128::from(shape.interval_ns)
    }

    /// Refills up to `at_ns` (a time before the last update counts as it).
    fn refill(&mut self, at_ns: u64) {
        let elapsed = at_ns.saturating_sub(self.updated_ns);
        let capacity = ReferenceBucket::capacity(self.shape);
        let level = self.level_units.saturating_add(u128::from(elapsed) * u128::from(self.shape.rate));
        if level >= capacity {
            // Full now: every later take lies in a window that starts here,
            // the shortest one a later violation can name.
            self.full_at_ns = self.updated_ns.max(at_ns);
            self.since_full = 0;
        }
        self.level_units = level.min(capacity);
        self.updated_ns = self.updated_ns.max(at_ns);
    }

    fn has_token(&self) -> bool {
        self.level_units >= u128::from(self.shape.interval_ns)
    }

    fn blocked(&self, at_ns: u64) -> bool {
        self.blocked_until_ns.is_some_and(|until| until > at_ns)
    }

    /// Takes a token (or what is left of one: a violation was reported).
    fn take(&mut self) {
        self.level_units = self.level_units.saturating_sub(u128::from(self.shape.interval_ns));
        self.since_full += 1;
        self.blocked_until_ns = None;
    }
}

/// The incremental checker of THR-1 and THR-2. See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ThrottleChecker {
    limits: ThrottleLimits,
    /// Reference buckets of the tenants that were charged.
    tenants: BTreeMap<u32, ReferenceBucket>,
    service: Option<ReferenceBucket>,
}

impl ThrottleChecker {
    /// A checker for `limits`, every bucket full.
    pub fn new(limits: ThrottleLimits) -> ThrottleChecker {
        let service = limits.service_capacity.map(ReferenceBucket::new);
        ThrottleChecker { limits, tenants: BTreeMap::new(), service }
    }

    /// The limits judged against.
    pub fn limits(&self) -> &ThrottleLimits {
        &self.limits
    }

    /// A request of `tenant` was admitted at `at_ns` (THR-1).
    pub fn on_admitted(&mut self, tenant: u32, at_ns: u64, out: &mut Vec<Violation>) {
        if let Some(bucket) = self.tenant_bucket(tenant, at_ns) {
            if !bucket.has_token() {
                out.push(window_violation(PropertyId::Thr1, &format!("tenant {tenant}"), bucket, at_ns));
            }
            bucket.take();
        }
        if let Some(bucket) = &mut self.service {
            bucket.refill(at_ns);
            if !bucket.has_token() {
                out.push(window_violation(PropertyId::Thr1, "the service", bucket, at_ns));
            }
            bucket.take();
        }
    }

    /// A request of `tenant` was throttled at `at_ns` (THR-2).
    pub fn on_throttled(&mut self, tenant: u32, at_ns: u64, out: &mut Vec<Violation>) {
        let service_has_token = match &mut self.service {
            Some(bucket) => {
                bucket.refill(at_ns);
                bucket.has_token()
            }
            None => true,
        };
        let quota_ready = match self.tenant_bucket(tenant, at_ns) {
            Some(bucket) if bucket.blocked(at_ns) => false,
            Some(bucket) if !bucket.has_token() => {
                // The quota refuses; its block interval (if any) starts now.
                if let Some(block_ns) = bucket.shape.block_interval_ns {
                    bucket.blocked_until_ns = Some(at_ns.saturating_add(block_ns));
                }
                false
            }
            _ => true,
        };
        if quota_ready && service_has_token {
            out.push(Violation {
                property: PropertyId::Thr2,
                detail: format!(
                    "tenant {tenant} was throttled at {at_ns} ns while its own quota held a token \
                     and service capacity remained"
                ),
            });
        }
    }

    /// The reference bucket of `tenant`'s quota, refilled to `at_ns`; `None`
    /// when no quota charges the tenant.
    fn tenant_bucket(&mut self, tenant: u32, at_ns: u64) -> Option<&mut ReferenceBucket> {
        let shape = self.limits.quota_of(tenant)?;
        let bucket = self.tenants.entry(tenant).or_insert_with(|| ReferenceBucket::new(shape));
        bucket.refill(at_ns);
        Some(bucket)
    }
}

/// The incremental checker of THR-3: each budgeted job's store requests
/// against a reference bucket of its budget. See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BudgetChecker {
    /// Each job's reference bucket, by job.
    jobs: BTreeMap<u8, ReferenceBucket>,
}

impl BudgetChecker {
    /// The same checker, also judging `job`'s requests against `budget` (its
    /// reference bucket full at time zero). `block_interval_ns` is ignored.
    pub fn with_budget(mut self, job: u8, budget: LimitShape) -> BudgetChecker {
        let shape = LimitShape { block_interval_ns: None, ..budget };
        self.jobs.insert(job, ReferenceBucket::new(shape));
        self
    }

    /// The budget of `job`, if it has one.
    pub fn budget(&self, job: u8) -> Option<LimitShape> {
        self.jobs.get(&job).map(|bucket| bucket.shape)
    }

    /// Job `job` sent a store request at `at_ns` (THR-3). A job without a
    /// budget is not judged.
    pub fn on_request(&mut self, job: u8, at_ns: u64, out: &mut Vec<Violation>) {
        let Some(bucket) = self.jobs.get_mut(&job) else { return };
        bucket.refill(at_ns);
        if !bucket.has_token() {
            out.push(window_violation(PropertyId::Thr3, &format!("migration job {job}"), bucket, at_ns));
        }
        bucket.take();
    }
}

fn window_violation(property: PropertyId, whom: &str, bucket: &ReferenceBucket, at_ns: u64) -> Violation {
    let window_ns = at_ns.saturating_sub(bucket.full_at_ns);
    let shape = bucket.shape;
    let what = if property == PropertyId::Thr3 { "store requests sent" } else { "requests admitted" };
    Violation {
        property,
        detail: format!(
            "{whom} had {} {what} in the {window_ns} ns up to {at_ns} ns, more than burst {} + \
             window × {} / {} ns = {}",
            bucket.since_full + 1,
            shape.burst,
            shape.rate,
            shape.interval_ns,
            shape.allowed_in(window_ns)
        ),
    }
}

#[cfg(test)]
mod tests;
