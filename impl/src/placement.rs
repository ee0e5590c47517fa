//! Placement: which shard a new vault lives on, and the routing rows that a
//! creation writes in the base store (shard 0).
//!
//! The base store keeps a registry row per shard ([`Key::Shard`]: its
//! [`ShardState`] and the vaults placed on it) and the routing rows
//! ([`Key::VaultRoute`]: vault → shard, [`Key::SecretRoute`]: secret → vault).
//! A [`Placer`] is the control plane's placement step, in the same shape as
//! the interceptor: the worker adds [`Placer::keys_to_read`] to its first
//! read, then hands every entry read to [`Placer::place`], a pure function that
//! returns the extra reads and writes to put in the creating transaction
//! ([`Placement::add_to`]).
//!
//! * `CreateVault`: the policy picks a `Ready` shard (RTE-3; never a
//!   `Provisioning` one). The transaction carries the version of every
//!   registry row read (absent rows included), so a racing change of any
//!   shard's state, a newly registered shard or a racing placement conflicts
//!   and the attempt is decided again on fresh rows: the choice is exact, not
//!   just safe. It writes the vault → shard row and the chosen shard's load
//!   with the vault, in one commit (RTE-1).
//! * `CreateSecret`: the vault's route names its home shard; the secret →
//!   vault row is written unless an earlier attempt of the same create already
//!   wrote it (a retry). When the home shard is the base shard, the row goes
//!   in the secret's own transaction. Otherwise this transaction commits in the
//!   base store before the secret commits in its shard (route before
//!   resource): a request routed in between reaches the home shard and reads
//!   `NotFound` there, which is right for a create not yet acknowledged, and
//!   a host never sees a secret whose route the base store lacks.
//!
//! Load is the number of vaults placed on a shard; deleting a vault does not
//! lower it (a tombstone keeps its id and its route).

use std::collections::BTreeSet;

#[cfg(feature = "bugzoo")]
use crate::bugzoo::Bug;
use crate::bugzoo::Bugs;
use crate::store::{Key, ReadEntry, Transaction, Value, Write};
use crate::types::{CommitSeq, SecretId, ShardId, ShardRecord, ShardState, VaultId};
use crate::worker::Operation;

/// The most shards a registry may hold: registry reads are bounded by it.
pub const SHARDS_MAX: u32 = 64;

/// How a new vault's shard is chosen among the `Ready` shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlacementPolicy {
    /// The `Ready` shard with the fewest vaults; ties go to the lowest shard id.
    #[default]
    LeastLoaded,
    /// Always this shard, refused unless it is `Ready`.
    Fixed(ShardId),
}

/// Why a creation cannot be placed. Every variant is an expected outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlacementError {
    /// No registered shard is `Ready`.
    NoReadyShard,
    /// The fixed policy's shard is unregistered or not `Ready`.
    ShardNotReady(ShardId),
    /// The vault already has a route: it exists, or existed.
    VaultExists,
    /// The secret's vault has no route: it was never created.
    VaultNotFound,
    /// The secret id is routed to another vault.
    SecretExists,
}

/// What placement adds to a creating transaction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Placement {
    /// The resource's home shard: where its own commit goes.
    pub shard: ShardId,
    /// Routing and registry keys read, with the versions read.
    pub reads: Vec<(Key, CommitSeq)>,
    /// Routing and registry rows written (none for a retried secret create).
    pub writes: Vec<Write>,
}

impl Placement {
    /// Adds the reads and writes to `transaction` and returns the home shard.
    pub fn add_to(self, transaction: &mut Transaction) -> ShardId {
        let mut keys: BTreeSet<Key> = transaction.reads.iter().map(|(key, _)| *key).collect();
        for (key, _) in &self.reads {
            assert!(keys.insert(*key), "{key:?} read twice in one transaction");
        }
        transaction.reads.extend(self.reads);
        transaction.writes.extend(self.writes);
        self.shard
    }
}

/// The placement step. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Placer {
    /// How a vault's shard is chosen.
    pub policy: PlacementPolicy,
    /// Shards `0..shards_max` are read from the registry (at most [`SHARDS_MAX`]).
    pub shards_max: u32,
    bugs: Bugs,
}

impl Placer {
    /// A placer with `policy` reading `shards_max` registry rows.
    pub fn new(policy: PlacementPolicy, shards_max: u32) -> Placer {
        assert!(shards_max > 0 && shards_max <= SHARDS_MAX, "shards_max {shards_max} outside 1..={SHARDS_MAX}");
        Placer { policy, shards_max, bugs: Bugs::none() }
    }

    /// The same placer running bug-zoo variants (none outside the bug zoo).
    pub fn with_bugs(mut self, bugs: Bugs) -> Placer {
        self.bugs = bugs;
        self
    }

    /// The keys `operation` must also read for [`Placer::place`]; none for an
    /// operation that creates nothing.
    pub fn keys_to_read(&self, operation: &Operation) -> Vec<Key> {
        match operation {
            Operation::CreateVault { vault, .. } => {
                let registry = (0..self.shards_max).map(|shard| Key::Shard(ShardId(shard)));
                std::iter::once(Key::VaultRoute(*vault)).chain(registry).collect()
            }
            Operation::CreateSecret { secret, vault, .. } => vec![Key::VaultRoute(*vault), Key::SecretRoute(*secret)],
            Operation::DeleteVault { .. }
            | Operation::UpdateSecret { .. }
            | Operation::ScheduleDeletion { .. }
            | Operation::DeleteSecret { .. }
            | Operation::ReadSecret { .. } => Vec::new(),
        }
    }

    /// Places `operation` given `entries`, which hold (in any order, among
    /// other keys) every key of [`Placer::keys_to_read`]. Pure: the same
    /// entries give the same placement. `Ok(None)` for an operation that
    /// creates nothing.
    pub fn place(&self, operation: &Operation, entries: &[ReadEntry]) -> Result<Option<Placement>, PlacementError> {
        match operation {
            Operation::CreateVault { vault, .. } => self.place_vault(*vault, entries).map(Some),
            Operation::CreateSecret { secret, vault, .. } => place_secret(*secret, *vault, entries).map(Some),
            Operation::DeleteVault { .. }
            | Operation::UpdateSecret { .. }
            | Operation::ScheduleDeletion { .. }
            | Operation::DeleteSecret { .. }
            | Operation::ReadSecret { .. } => Ok(None),
        }
    }

    fn place_vault(&self, vault: VaultId, entries: &[ReadEntry]) -> Result<Placement, PlacementError> {
        let route = entry(entries, Key::VaultRoute(vault));
        if shard_of(route).is_some() {
            return Err(PlacementError::VaultExists);
        }
        let registry: Vec<(ShardId, Option<ShardRecord>, CommitSeq)> = (0..self.shards_max)
            .map(|shard| {
                let row = entry(entries, Key::Shard(ShardId(shard)));
                (ShardId(shard), registry_record(row), row.version)
            })
            .collect();
        let (shard, record) = choose(self.policy, &registry, |state| self.admits(state))?;
        assert!(self.admits(record.state), "placement chose a shard that is not ready (RTE-3)");
        let mut reads = vec![(route.key, route.version)];
        reads.extend(registry.iter().map(|(shard, _, version)| (Key::Shard(*shard), *version)));
        let load = ShardRecord { vaults: record.vaults.checked_add(1).expect("vault count overflow"), ..record };
        let writes = vec![
            Write::Put(Key::VaultRoute(vault), Value::VaultRoute(shard)),
            Write::Put(Key::Shard(shard), Value::Shard(load)),
        ];
        Ok(Placement { shard, reads, writes })
    }

    /// Whether a shard in `state` may take new vaults: only a `Ready` one (RTE-3).
    fn admits(&self, state: ShardState) -> bool {
        #[cfg(feature = "bugzoo")]
        if self.bugs.is_on(Bug::RouteBeforeReady) {
            return true; // Bug: registered is taken for ready.
        }
        state == ShardState::Ready
    }
}

fn place_secret(secret: SecretId, vault: VaultId, entries: &[ReadEntry]) -> Result<Placement, PlacementError> {
    let vault_route = entry(entries, Key::VaultRoute(vault));
    let secret_route = entry(entries, Key::SecretRoute(secret));
    let shard = shard_of(vault_route).ok_or(PlacementError::VaultNotFound)?;
    let writes = match vault_of(secret_route) {
        None => vec![Write::Put(Key::SecretRoute(secret), Value::SecretRoute(vault))],
        Some(routed) if routed == vault => Vec::new(), // An earlier attempt wrote it.
        Some(_) => return Err(PlacementError::SecretExists),
    };
    let reads = vec![(vault_route.key, vault_route.version), (secret_route.key, secret_route.version)];
    Ok(Placement { shard, reads, writes })
}

/// The shard `policy` picks among the `registry` rows whose state `admits`, with its row.
fn choose(
    policy: PlacementPolicy,
    registry: &[(ShardId, Option<ShardRecord>, CommitSeq)],
    admits: impl Fn(ShardState) -> bool,
) -> Result<(ShardId, ShardRecord), PlacementError> {
    let mut ready = registry.iter().filter_map(|(shard, record, _)| match record {
        Some(record) if admits(record.state) => Some((*shard, *record)),
        Some(_) | None => None,
    });
    match policy {
        PlacementPolicy::LeastLoaded => {
            ready.min_by_key(|(shard, record)| (record.vaults, *shard)).ok_or(PlacementError::NoReadyShard)
        }
        PlacementPolicy::Fixed(fixed) => {
            ready.find(|(shard, _)| *shard == fixed).ok_or(PlacementError::ShardNotReady(fixed))
        }
    }
}

/// The entry of `key` among `entries`.
fn entry(entries: &[ReadEntry], key: Key) -> &ReadEntry {
    entries.iter().find(|entry| entry.key == key).unwrap_or_else(|| panic!("placement needs {key:?} read"))
}

fn registry_record(entry: &ReadEntry) -> Option<ShardRecord> {
    match &entry.value {
        None => None,
        Some(Value::Shard(record)) => Some(*record),
        Some(other) => panic!("registry key holds {other:?}"),
    }
}

fn shard_of(entry: &ReadEntry) -> Option<ShardId> {
    match &entry.value {
        None => None,
        Some(Value::VaultRoute(shard)) => Some(*shard),
        Some(other) => panic!("vault route holds {other:?}"),
    }
}

fn vault_of(entry: &ReadEntry) -> Option<VaultId> {
    match &entry.value {
        None => None,
        Some(Value::SecretRoute(vault)) => Some(*vault),
        Some(other) => panic!("secret route holds {other:?}"),
    }
}

#[cfg(test)]
mod tests;
