//! `sim`: the vaultsim testbed.
//!
//! Today it holds the default suite's discovery of scenario files; the world,
//! the seeded simulator and the model-checking driver arrive with their issues
//! (see `docs/ARCHITECTURE.md`). Everything here is deterministic: no clock
//! readings, no ambient randomness, no hash-ordered iteration.

pub mod checker;
pub mod contention;
pub mod driver;
pub mod plot;
pub mod random;
pub mod refinement;
pub mod report;
pub mod scenario;
pub mod suite;
pub mod trace;
pub mod world;
