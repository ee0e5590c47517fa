//! What a base-cell host knows of routing: the [`RouteTable`] it builds from
//! the base store's routing partition, and how it resolves a request's
//! [`Resource`] to its home shard.
//!
//! Replication. The base store logs every change of a routing row in its
//! routing partition, in the commit that made it (see [`crate::store`]). A host
//! applies those events with [`RouteTable::apply`] under the same discipline as
//! secrets ([`crate::host::LocalStore::apply`]): strictly in partition order,
//! the cursor moved in the same step as the row, forward-only by version (a
//! row's version is the commit that wrote it), so a replayed or older event is
//! a no-op. A row read from the base store by a lookup ([`RouteTable::learn`])
//! carries its store version, the same number, so a looked-up row and the same
//! row arriving later through the log meet at one version and the second
//! changes nothing. Learning never moves the cursor: the cursor says only what
//! the log has delivered, which is what the shard-addition gate waits for.
//!
//! Resolution is by resource only: a secret names its vault, a vault its
//! shard. The caller's tenancy plays no part (RTE-4). A host proxies only to a
//! shard it knows (its registry row reached the host), so a route to a shard
//! the host has not heard of asks for that row too.

use std::collections::BTreeMap;

use crate::host::ApplyEffect;
use crate::store::{route_row, Key, ReadEntry};
use crate::types::{CommitSeq, RouteEvent, RouteRow, SecretId, Seq, ShardId, ShardState, VaultId};

/// What a request names: the resource it acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// A vault (vault operations, and creating a secret in it).
    Vault(VaultId),
    /// A secret.
    Secret(SecretId),
}

/// Where a resource lives, as far as a route table knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resolution {
    /// The resource's vault and the vault's home shard.
    Home {
        /// The vault (the resource itself, or the secret's vault).
        vault: VaultId,
        /// Its home shard.
        shard: ShardId,
    },
    /// The table lacks this routing row; it must be looked up in the base store.
    Missing(Key),
}

/// A base-cell host's routing rows and the routing partition's cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteTable {
    shards: BTreeMap<ShardId, (ShardState, CommitSeq)>,
    vaults: BTreeMap<VaultId, (ShardId, CommitSeq)>,
    secrets: BTreeMap<SecretId, (VaultId, CommitSeq)>,
    /// The last routing event applied.
    cursor: Seq,
    /// The commit of the last routing event applied.
    applied_commit: CommitSeq,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> RouteTable {
        RouteTable::default()
    }

    /// Applies the next event of the routing partition: the row moves forward
    /// if the event is newer, and the cursor moves to the event, in one step.
    pub fn apply(&mut self, event: &RouteEvent) -> ApplyEffect {
        assert_eq!(event.seq, self.cursor.next(), "routing events applied out of order");
        assert!(event.commit >= self.applied_commit, "the routing partition is in commit order");
        let effect = self.insert(event.row, event.commit);
        self.cursor = event.seq;
        self.applied_commit = event.commit;
        effect
    }

    /// Learns a routing row from a base-store read (a lookup): forward-only by
    /// the entry's version, cursor untouched. `None` when the key is absent
    /// from the base store.
    pub fn learn(&mut self, entry: &ReadEntry) -> Option<ApplyEffect> {
        assert!(entry.key.is_routing(), "a lookup reads routing keys, not {:?}", entry.key);
        let value = entry.value.as_ref()?;
        let row = route_row(&entry.key, value).unwrap_or_else(|| panic!("{:?} holds {value:?}", entry.key));
        assert!(entry.version > CommitSeq(0), "a present key has a version");
        Some(self.insert(row, entry.version))
    }

    /// The last routing event applied (`Seq::ZERO`: none).
    pub fn cursor(&self) -> Seq {
        self.cursor
    }

    /// The commit of the last routing event applied: every routing row
    /// committed at or before it has reached this table through the log.
    pub fn applied_commit(&self) -> CommitSeq {
        self.applied_commit
    }

    /// The home shard of `vault`, if known.
    pub fn shard_of(&self, vault: VaultId) -> Option<ShardId> {
        self.vaults.get(&vault).map(|(shard, _)| *shard)
    }

    /// Every vault route the table holds (applied or learned), in vault order.
    pub fn vaults(&self) -> impl Iterator<Item = (VaultId, ShardId)> + '_ {
        self.vaults.iter().map(|(vault, (shard, _))| (*vault, *shard))
    }

    /// The number of vault routes the table holds (applied or learned).
    pub fn vault_count(&self) -> usize {
        self.vaults.len()
    }

    /// The vault of `secret`, if known.
    pub fn vault_of(&self, secret: SecretId) -> Option<VaultId> {
        self.secrets.get(&secret).map(|(vault, _)| *vault)
    }

    /// The state of `shard`, if its registry row is known.
    pub fn shard_state(&self, shard: ShardId) -> Option<ShardState> {
        self.shards.get(&shard).map(|(state, _)| *state)
    }

    /// Where `target` lives, for a host of shard `own`: by the resource alone.
    /// The own shard needs no registry row; another shard does (it names the
    /// cell to proxy to).
    pub fn resolve(&self, target: Resource, own: ShardId) -> Resolution {
        let vault = match target {
            Resource::Vault(vault) => vault,
            Resource::Secret(secret) => match self.vault_of(secret) {
                Some(vault) => vault,
                None => return Resolution::Missing(Key::SecretRoute(secret)),
            },
        };
        match self.shard_of(vault) {
            None => Resolution::Missing(Key::VaultRoute(vault)),
            Some(shard) if shard != own && !self.shards.contains_key(&shard) => Resolution::Missing(Key::Shard(shard)),
            Some(shard) => Resolution::Home { vault, shard },
        }
    }

    fn insert(&mut self, row: RouteRow, version: CommitSeq) -> ApplyEffect {
        match row {
            RouteRow::Shard { shard, state } => insert_forward(&mut self.shards, shard, state, version),
            RouteRow::Vault { vault, shard } => insert_forward(&mut self.vaults, vault, shard, version),
            RouteRow::Secret { secret, vault } => insert_forward(&mut self.secrets, secret, vault, version),
        }
    }

    /// Asserts the table's invariants: every row has a version, and the
    /// cursor and its commit move together.
    pub fn check_invariants(&self) {
        let versions = self.shards.values().map(|(_, version)| *version);
        let versions = versions.chain(self.vaults.values().map(|(_, version)| *version));
        let versions = versions.chain(self.secrets.values().map(|(_, version)| *version));
        for version in versions {
            assert!(version > CommitSeq(0), "a routing row without a version");
        }
        assert_eq!(self.cursor == Seq::ZERO, self.applied_commit == CommitSeq(0), "cursor and its commit disagree");
    }
}

/// Sets `key` to `value` at `version` if that is newer than what `map` holds.
fn insert_forward<K: Ord, V>(
    map: &mut BTreeMap<K, (V, CommitSeq)>,
    key: K,
    value: V,
    version: CommitSeq,
) -> ApplyEffect {
    match map.get(&key) {
        Some((_, held)) if *held >= version => ApplyEffect::Stale,
        Some(_) | None => {
            map.insert(key, (value, version));
            ApplyEffect::Applied
        }
    }
}

#[cfg(test)]
mod tests;
