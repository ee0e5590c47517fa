//! The simulator's only source of randomness: a seeded ChaCha8 generator with
//! integer helpers.
//!
//! `rand_chacha` is pinned to an exact version so a seed means the same run
//! forever. Floating-point sampling avoids platform `libm` functions (whose last
//! bits may differ between systems): the logarithm and exponential here use
//! only IEEE-exact arithmetic, so a seed replays byte for byte on any machine.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A seeded generator. Cloning it forks an identical stream.
#[derive(Clone, Debug)]
pub struct SimRng {
    inner: ChaCha8Rng,
}

impl SimRng {
    /// The generator of `seed`, on stream `stream` (independent streams of one
    /// seed let swarm decisions not shift the run's other draws).
    pub fn new(seed: u64, stream: u64) -> SimRng {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream);
        SimRng { inner }
    }

    /// A uniform `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A uniform integer in `0..bound` (bound > 0), without modulo bias worth
    /// naming (Lemire's multiply-shift).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "an empty range has no element");
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A uniform integer in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "inverted range {low}..={high}");
        low + self.below(high - low + 1)
    }

    /// True with probability `chance / 1_000_000`.
    pub fn chance_per_million(&mut self, chance: u32) -> bool {
        chance > 0 && self.below(1_000_000) < u64::from(chance)
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exponentially distributed duration with mean `mean_ns`.
    pub fn exponential_ns(&mut self, mean_ns: u64) -> u64 {
        let u = 1.0 - self.unit(); // In (0, 1]: the logarithm is finite.
        let sample = -ln(u) * mean_ns as f64;
        // Cap at 20 means: the tail past it is below one in 10^8.
        sample.min(mean_ns as f64 * 20.0) as u64
    }

    /// An index drawn from cumulative integer weights restricted to the first
    /// `len` entries (`cumulative` is non-decreasing, `cumulative[len - 1] > 0`).
    pub fn weighted_prefix(&mut self, cumulative: &[u64], len: usize) -> usize {
        assert!(len > 0 && len <= cumulative.len(), "prefix {len} of {}", cumulative.len());
        let total = cumulative[len - 1];
        let target = self.below(total);
        cumulative[..len].partition_point(|sum| *sum <= target)
    }
}

/// The natural logarithm of a positive finite `x`, from IEEE-exact operations.
pub fn ln(x: f64) -> f64 {
    assert!(x > 0.0 && x.is_finite(), "ln of {x}");
    const LN_2: f64 = std::f64::consts::LN_2;
    // x = m * 2^e with m in [1, 2): take the exponent from the bits.
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64;
    assert!(exponent > 0, "subnormal input {x}");
    let mantissa = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    // Center m near 1 so the series converges fast: m in [0.75, 1.5).
    let (mantissa, exponent) =
        if mantissa > 1.5 { (mantissa / 2.0, exponent - 1022) } else { (mantissa, exponent - 1023) };
    // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.2.
    let s = (mantissa - 1.0) / (mantissa + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    for k in 0..14 {
        sum += term / f64::from(2 * k + 1);
        term *= s2;
    }
    2.0 * sum + exponent as f64 * LN_2
}

/// `e^x` for moderate `x` (|x| < 700), from IEEE-exact operations.
pub fn exp(x: f64) -> f64 {
    assert!(x.abs() < 700.0, "exp of {x}");
    const LN_2: f64 = std::f64::consts::LN_2;
    // x = k ln 2 + r with |r| <= ln 2 / 2; e^x = 2^k e^r.
    let k = (x / LN_2).round();
    let r = x - k * LN_2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..20 {
        term *= r / f64::from(n);
        sum += term;
    }
    let scale = f64::from_bits(((k as i64 + 1023) as u64) << 52);
    sum * scale
}

/// Cumulative integer weights of a Zipf law with `exponent` over `len` ranks:
/// rank `k` (from 0) weighs `1 / (k + 1)^exponent`.
pub fn zipf_cumulative(len: usize, exponent: f64) -> Vec<u64> {
    const SCALE: f64 = 1e9;
    let mut total = 0u64;
    (0..len)
        .map(|rank| {
            let weight = SCALE * exp(-exponent * ln(rank as f64 + 1.0));
            total += (weight as u64).max(1);
            total
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_stream() {
        let mut first = SimRng::new(42, 0);
        let mut second = SimRng::new(42, 0);
        let draws: Vec<u64> = (0..8).map(|_| first.next_u64()).collect();
        assert_eq!(draws, (0..8).map(|_| second.next_u64()).collect::<Vec<_>>());
        let mut other_stream = SimRng::new(42, 1);
        assert_ne!(draws[0], other_stream.next_u64());
    }

    #[test]
    fn the_generator_is_the_pinned_chacha8() {
        // Pins the algorithm and version: if this changes, old seeds no longer
        // replay and the trace format version must change with it.
        let mut rng = SimRng::new(0, 0);
        let first = rng.next_u64();
        let mut reference = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(first, reference.next_u64());
        assert_eq!(SimRng::new(1, 0).below(1_000_000), SimRng::new(1, 0).below(1_000_000));
    }

    #[test]
    fn ln_and_exp_match_the_platform_closely() {
        for x in [1e-9, 0.001, 0.3, 0.75, 1.0, 1.49, 1.51, 2.0, 10.0, 12345.678] {
            let error = (ln(x) - x.ln()).abs();
            assert!(error < 1e-12 * x.ln().abs().max(1.0), "ln({x}) off by {error}");
        }
        for x in [-30.0, -1.0, -0.1, 0.0, 0.5, 1.0, 20.0] {
            let relative = ((exp(x) - x.exp()) / x.exp()).abs();
            assert!(relative < 1e-13, "exp({x}) off by {relative}");
        }
    }

    #[test]
    fn exponential_has_the_requested_mean() {
        let mut rng = SimRng::new(7, 0);
        let samples = 20_000;
        let total: u64 = (0..samples).map(|_| rng.exponential_ns(1_000_000)).sum();
        let mean = total / samples;
        assert!((950_000..1_050_000).contains(&mean), "mean {mean}");
    }

    #[test]
    fn zipf_prefers_low_ranks_and_respects_the_prefix() {
        let cumulative = zipf_cumulative(100, 1.0);
        let mut rng = SimRng::new(3, 0);
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            let index = rng.weighted_prefix(&cumulative, 10);
            assert!(index < 10);
            counts[index] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[9], "{counts:?}");
        let uniform = zipf_cumulative(4, 0.0);
        assert_eq!(uniform, vec![1_000_000_000, 2_000_000_000, 3_000_000_000, 4_000_000_000]);
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SimRng::new(9, 0);
        assert!((0..1000).all(|_| rng.below(3) < 3));
        assert!((0..1000).all(|_| (5..=7).contains(&rng.between(5, 7))));
        assert!(!rng.chance_per_million(0));
    }
}
