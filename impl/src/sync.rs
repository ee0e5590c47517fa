//! The one place where concurrent code gets its primitives.
//!
//! Under `cfg(loom)` these are loom's model-checked versions; otherwise std's.
//! Code in this crate never imports `std::sync` or `std::cell` for shared state
//! directly, so the loom suite sees every synchronisation point.

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(loom)]
pub use loom::sync::{Arc, Mutex, MutexGuard};

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub use std::sync::{Arc, Mutex, MutexGuard};

/// A cell whose accesses loom tracks for data races.
///
/// With std this is a thin wrapper over `std::cell::UnsafeCell` exposing loom's
/// closure-based API, so the same code compiles under both.
#[cfg(loom)]
pub use loom::cell::UnsafeCell;

/// A cell whose accesses loom tracks for data races (std build).
#[cfg(not(loom))]
#[derive(Debug)]
pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> UnsafeCell<T> {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Gives `f` a shared raw pointer to the contents.
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Gives `f` a mutable raw pointer to the contents.
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
