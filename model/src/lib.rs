//! `model`: abstract specifications of vaultsim and the properties both drivers
//! check, written over an abstract view of the world.
//!
//! This crate knows nothing of the implementation (`vault`) nor of the testbed
//! (`sim`); the simulator maps its world onto the types here. The specifications
//! and the property catalogue of `docs/ARCHITECTURE.md` arrive with the
//! simulator and checker issues.
