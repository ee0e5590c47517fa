//! `sim`: the vaultsim testbed.
//!
//! The world, the seeded simulator (`driver`), the model-checking driver
//! (`checker`), refinement against the abstract spec, traces, reports and the
//! measured sweeps (`contention`, `noisy`); see `docs/ARCHITECTURE.md`.
//! Everything here is deterministic: no clock readings, no ambient
//! randomness, no hash-ordered iteration.

pub mod checker;
pub mod contention;
pub mod driver;
pub mod migrate;
pub mod noisy;
pub mod plot;
pub mod random;
pub mod refinement;
pub mod report;
pub mod scenario;
pub mod suite;
pub mod trace;
pub mod world;
pub mod zoo;
