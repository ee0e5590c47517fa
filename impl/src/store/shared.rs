//! The store engine behind shared memory, for a real multi-threaded deployment.
//!
//! Writers commit through one mutex around the same [`Store`] engine, so a
//! transaction is validated and applied exactly as in the simulator. Readers of
//! the log (data-plane pollers) do not take that mutex: every partition is also
//! published into a fixed-capacity, append-only array of slots whose length is
//! an atomic counter. A committer fills a slot, then publishes the new length
//! with `Release`; a poller loads the length with `Acquire` and reads only slots
//! below it. A slot is written once and never again.
//!
//! All primitives come from [`crate::sync`], so the loom suite
//! (`impl/tests/loom_shared_store.rs`) checks every interleaving of this code.
#![allow(unsafe_code)]

use std::collections::BTreeMap;

use super::{CommitOutcome, InvalidWrite, Key, ReadEntry, Store, Transaction, Write};
use crate::sync::{AtomicU64, Mutex, Ordering, UnsafeCell};
use crate::types::{LogEvent, Seq, TenantId};

/// The shape of a [`SharedStore`], fixed at construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedStoreConfig {
    /// The tenancies that have a log partition.
    pub tenants: Vec<TenantId>,
    /// Capacity of each partition, in events.
    pub partition_events_max: usize,
}

/// The remote store engine shared between threads. See the module documentation.
#[derive(Debug)]
pub struct SharedStore {
    engine: Mutex<Store>,
    logs: BTreeMap<TenantId, PublishedLog>,
}

#[derive(Debug)]
struct PublishedLog {
    slots: Box<[UnsafeCell<Option<LogEvent>>]>,
    /// Number of slots filled; slot `i` holds the event with `Seq(i + 1)`.
    published: AtomicU64,
}

// SAFETY: a slot is written only by the committer holding the engine mutex, and
// only while its index is at or above `published`; it is read only once its
// index is below `published`, which is stored with `Release` after the write
// and loaded with `Acquire` before the read. No slot is written after it is
// published, so a read never overlaps a write.
unsafe impl Sync for PublishedLog {}

impl SharedStore {
    /// An empty store with one partition per tenant of `config`.
    pub fn new(config: &SharedStoreConfig) -> SharedStore {
        assert!(config.partition_events_max > 0, "a partition holds at least one event");
        let logs = config
            .tenants
            .iter()
            .map(|tenant| {
                let slots = (0..config.partition_events_max).map(|_| UnsafeCell::new(None)).collect();
                let log = PublishedLog { slots, published: AtomicU64::new(0) };
                (*tenant, log)
            })
            .collect();
        SharedStore { engine: Mutex::new(Store::new()), logs }
    }

    /// Reads keys at one consistent state.
    pub fn read(&self, keys: &[Key]) -> Vec<ReadEntry> {
        let engine = self.engine.lock().expect("store mutex poisoned");
        keys.iter().map(|key| engine.read(key)).collect()
    }

    /// Validates and applies a transaction, then publishes its appends.
    pub fn commit(&self, transaction: &Transaction) -> CommitOutcome {
        let mut engine = self.engine.lock().expect("store mutex poisoned");
        if let Some(invalid) = self.commit_check_capacity(&engine, transaction) {
            return CommitOutcome::Invalid(invalid);
        }
        let outcome = engine.commit(transaction);
        if let CommitOutcome::Committed { appended, .. } = &outcome {
            for (tenant, seq) in appended {
                let event = engine.poll(*tenant, Seq(seq.0 - 1), 1);
                assert_eq!(event.len(), 1, "engine lost the event it appended");
                self.logs[tenant].publish(event[0].clone());
            }
        }
        outcome
    }

    fn commit_check_capacity(&self, engine: &Store, transaction: &Transaction) -> Option<InvalidWrite> {
        let mut appends: BTreeMap<TenantId, usize> = BTreeMap::new();
        for write in &transaction.writes {
            if let Write::Append(mutation) = write {
                *appends.entry(mutation.record.tenant).or_default() += 1;
            }
        }
        appends.into_iter().find_map(|(tenant, count)| {
            let Some(log) = self.logs.get(&tenant) else {
                return Some(InvalidWrite::UnknownPartition(tenant));
            };
            let head = usize::try_from(engine.head(tenant).0).expect("head fits in memory");
            (head + count > log.slots.len()).then_some(InvalidWrite::PartitionFull(tenant))
        })
    }

    /// Events of `tenant`'s partition after `after`, at most `limit`, without
    /// taking the engine mutex.
    pub fn poll(&self, tenant: TenantId, after: Seq, limit: usize) -> Vec<LogEvent> {
        self.logs.get(&tenant).map_or_else(Vec::new, |log| log.read(after, limit))
    }

    /// The number of events published in `tenant`'s partition.
    pub fn head(&self, tenant: TenantId) -> Seq {
        self.logs.get(&tenant).map_or(Seq::ZERO, |log| Seq(log.published.load(Ordering::Acquire)))
    }

    /// Runs `f` on the engine under the mutex (for inspection in tests).
    pub fn with_engine<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.engine.lock().expect("store mutex poisoned"))
    }
}

impl PublishedLog {
    /// Fills the next slot and publishes it. Called only under the engine mutex.
    fn publish(&self, event: LogEvent) {
        let published = self.published.load(Ordering::Relaxed);
        assert_eq!(event.seq, Seq(published + 1), "publishing out of order");
        let index = usize::try_from(published).expect("index fits in memory");
        self.slots[index].with_mut(|slot| {
            // SAFETY: `index` is not yet published, so no reader touches it, and
            // the engine mutex excludes every other writer.
            let slot = unsafe { &mut *slot };
            assert!(slot.is_none(), "slot {index} written twice");
            *slot = Some(event);
        });
        self.published.store(published + 1, Ordering::Release);
    }

    fn read(&self, after: Seq, limit: usize) -> Vec<LogEvent> {
        let published = self.published.load(Ordering::Acquire);
        let end = published.min(after.0.saturating_add(limit as u64));
        (after.0..end)
            .map(|position| {
                let index = usize::try_from(position).expect("index fits in memory");
                self.slots[index].with(|slot| {
                    // SAFETY: `index` is below `published` (loaded with Acquire), so
                    // its write happened before and no write follows.
                    let slot = unsafe { &*slot };
                    let event = slot.clone().expect("a published slot is filled");
                    assert_eq!(event.seq, Seq(position + 1), "slot holds the wrong event");
                    event
                })
            })
            .collect()
    }
}
