//! `model`: abstract specifications of vaultsim and the properties both drivers
//! check, written over an abstract view of the world.
//!
//! This crate knows nothing of the implementation (`vault`) nor of the testbed
//! (`sim`). A driver translates what happens in its world into [`Observation`]s
//! (small facts in this crate's own vocabulary) and feeds them, one step at a
//! time, to a [`PropertyChecker`]; at the end of a run it hands over a
//! [`View`] for the properties that are only checkable when the system is quiet
//! (convergence). A world that runs a live migration also turns on the MIG
//! properties ([`PropertyChecker::with_migration`]), and a world that shards
//! its vaults the RTE properties ([`PropertyChecker::with_routing`]). Every
//! property has a stable [`PropertyId`], the same as in `specs/invariants.md`.

pub mod migration;
pub mod properties;
pub mod routing;
pub mod spec;
pub mod throttle;
pub mod view;

pub use migration::MigrationChecker;
pub use properties::{PropertyChecker, PropertyId, Violation};
pub use routing::{RoutingChecker, RoutingOptions};
pub use throttle::{BudgetChecker, LimitShape, ThrottleChecker, ThrottleLimits};
pub use view::{HostView, Lifecycle, Observation, RouteOutcome, SecretState, View};

// The abstract specs, as stateright models.
pub use spec::routing::RoutingSpec;
