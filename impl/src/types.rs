//! Domain types shared by every machine: identifiers, versions, lifecycle,
//! content with its checksum, log sequence numbers and time.
//!
//! Ordering facts are logical: a [`CommitSeq`] orders commits of one store, a
//! [`Seq`] orders the events of one log partition. Clock readings ([`Time`]) are
//! only inputs to machines, for deadlines; they are never stored in replicated
//! data.

use std::fmt;
use std::sync::Arc;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// A tenancy: the owner of vaults, and the unit of log partitioning.
    TenantId,
    "t"
);
id_type!(
    /// A vault: the unit of sharding; holds secrets.
    VaultId,
    "v"
);
id_type!(
    /// A secret: the unit of replication.
    SecretId,
    "s"
);
id_type!(
    /// A shard: one remote store and one cell of data-plane hosts. Shard 0 is the base.
    ShardId,
    "shard"
);
id_type!(
    /// A data-plane host.
    HostId,
    "h"
);

/// The version of a secret record. Every mutation (create, update, activation,
/// deletion) increments it by one; the first committed version is 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version(pub u64);

impl Version {
    /// The version a record has before it exists.
    pub const ABSENT: Version = Version(0);

    /// The version that follows this one.
    pub fn next(self) -> Version {
        Version(self.0.checked_add(1).expect("version overflow"))
    }
}

/// A log sequence number inside one partition. The first event has `Seq(1)`;
/// `Seq(0)` is the cursor of a host that has applied nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u64);

impl Seq {
    /// The position before the first event.
    pub const ZERO: Seq = Seq(0);

    /// The sequence number that follows this one.
    pub fn next(self) -> Seq {
        Seq(self.0.checked_add(1).expect("sequence overflow"))
    }
}

/// The sequence number of a committed transaction in one store. A key's version
/// in the store is the `CommitSeq` that last wrote it; `CommitSeq(0)` means
/// "never written".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CommitSeq(pub u64);

/// The lifecycle of a secret, after OCI's secret states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lifecycle {
    /// Committed, but not yet applied on every live host of its cell.
    Creating,
    /// Applied on every live host of its cell; readable everywhere.
    Active,
    /// Scheduled for deletion; reads are refused, the content is kept.
    PendingDeletion,
    /// Deleted: a versioned tombstone without content.
    Deleted,
}

/// The content of a secret: opaque bytes and their checksum.
///
/// The bytes sit behind an `Arc` so that cloning a record (which the model
/// checker does on every transition) copies a pointer, not the secret.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Content {
    bytes: Arc<[u8]>,
    checksum: Checksum,
}

impl Content {
    /// Wraps `bytes` and computes their checksum.
    pub fn new(bytes: &[u8]) -> Content {
        Content { bytes: Arc::from(bytes), checksum: Checksum::of(bytes) }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The checksum computed when the content was made.
    pub fn checksum(&self) -> Checksum {
        self.checksum
    }

    /// Whether the bytes still match the checksum (a flipped bit does not).
    pub fn is_intact(&self) -> bool {
        Checksum::of(&self.bytes) == self.checksum
    }

    /// The same content with the lowest bit of its first byte flipped and the
    /// checksum left as it was: what a damaged disk or a corrupting write
    /// stores. Empty content has no bit to flip and comes back unchanged.
    pub fn with_flipped_bit(&self) -> Content {
        let mut bytes = self.bytes.to_vec();
        if let Some(first) = bytes.first_mut() {
            *first ^= 1;
        }
        Content { bytes: Arc::from(bytes.as_slice()), checksum: self.checksum }
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secret bytes, only their size and checksum.
        write!(f, "Content({} bytes, {:?})", self.bytes.len(), self.checksum)
    }
}

/// A 64-bit FNV-1a checksum: deterministic across platforms and runs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checksum(pub u64);

impl Checksum {
    /// The checksum of `bytes`.
    pub fn of(bytes: &[u8]) -> Checksum {
        const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET_BASIS;
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
        Checksum(hash)
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:016x}", self.0)
    }
}

/// A point in time in nanoseconds, passed into machines by their caller.
///
/// Machines compare `Time`s to compute deadlines; they never read a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub u64);

impl Time {
    /// The start of time.
    pub const ZERO: Time = Time(0);

    /// `self` plus `duration_ns` nanoseconds, saturating.
    pub fn plus_ns(self, duration_ns: u64) -> Time {
        Time(self.0.saturating_add(duration_ns))
    }
}

/// Names one request a machine sent to the store, so that its reply (or a late
/// reply to an earlier, abandoned request) can be told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RequestTag(pub u64);

impl RequestTag {
    /// Returns this tag and advances `self` to the next one.
    pub fn take_next(&mut self) -> RequestTag {
        let tag = *self;
        self.0 = self.0.checked_add(1).expect("request tag overflow");
        tag
    }
}

/// The state of a secret as the remote store holds it and as replication
/// carries it: every event is the whole record at one version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRecord {
    /// The tenancy that owns the secret (through its vault); names its log partition.
    pub tenant: TenantId,
    /// The vault holding the secret.
    pub vault: VaultId,
    /// The record version; see [`Version`].
    pub version: Version,
    /// The lifecycle state at this version.
    pub lifecycle: Lifecycle,
    /// The content; `None` once deleted.
    pub content: Option<Content>,
}

impl SecretRecord {
    /// Whether the record has a legal shape: a version, and content exactly
    /// when not deleted. [`SecretRecord::check_invariants`] asserts the same rules;
    /// this answers them as a value, for records that come from outside.
    pub fn is_well_formed(&self) -> bool {
        self.version > Version::ABSENT && self.content.is_none() == (self.lifecycle == Lifecycle::Deleted)
    }

    /// Asserts the shape invariants of a record.
    pub fn check_invariants(&self) {
        assert!(self.version > Version::ABSENT, "a stored record has a version");
        assert_eq!(
            self.content.is_none(),
            self.lifecycle == Lifecycle::Deleted,
            "content is absent exactly when the secret is deleted: {self:?}"
        );
    }
}

/// A vault as the remote store holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VaultRecord {
    /// The owning tenancy.
    pub tenant: TenantId,
    /// Whether the vault was deleted (a tombstone keeps its id from being reused).
    pub deleted: bool,
}

/// Where a shard is in its life. Placements go only to `Ready` shards (RTE-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShardState {
    /// Registered; its store and cell are being built or its routing rows are
    /// still reaching the base cell's hosts. Takes no placements.
    Provisioning,
    /// Its cell serves and every base-cell host knows it; takes placements.
    Ready,
}

/// A shard as the base store's registry holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardRecord {
    /// Whether it takes placements.
    pub state: ShardState,
    /// Vaults placed on it so far: its load for placement.
    pub vaults: u64,
}

/// One mutation of a secret to replicate: the record at its new version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mutation {
    /// The secret mutated.
    pub secret: SecretId,
    /// The record after the mutation.
    pub record: SecretRecord,
}

/// An event of a log partition: a mutation at its position.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogEvent {
    /// Position in the partition of `mutation.record.tenant`.
    pub seq: Seq,
    /// The commit that appended this event.
    pub commit: CommitSeq,
    /// What happened.
    pub mutation: Mutation,
}

impl LogEvent {
    /// The partition this event belongs to.
    pub fn tenant(&self) -> TenantId {
        self.mutation.record.tenant
    }
}

/// A routing row as the base store's routing partition carries it to the
/// base cell's hosts: what one routing key maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteRow {
    /// A shard is registered in this state.
    Shard {
        /// The shard.
        shard: ShardId,
        /// Its state.
        state: ShardState,
    },
    /// A vault lives on a shard.
    Vault {
        /// The vault.
        vault: VaultId,
        /// Its home shard.
        shard: ShardId,
    },
    /// A secret lives in a vault.
    Secret {
        /// The secret.
        secret: SecretId,
        /// Its vault.
        vault: VaultId,
    },
}

/// An event of the base store's routing partition: a routing row at its
/// position, logged by the commit that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteEvent {
    /// Position in the routing partition.
    pub seq: Seq,
    /// The commit that wrote the row: the row's version.
    pub commit: CommitSeq,
    /// The row.
    pub row: RouteRow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_fnv1a() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(Checksum::of(b"").0, 0xcbf2_9ce4_8422_2325);
        assert_eq!(Checksum::of(b"a").0, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Checksum::of(b"foobar").0, 0x8594_4171_f739_67e8);
    }

    #[test]
    fn content_detects_a_flipped_bit() {
        let content = Content::new(b"hunter2");
        assert!(content.is_intact());
        let mut bytes = content.bytes().to_vec();
        bytes[0] ^= 1;
        let corrupted = Content { bytes: Arc::from(bytes.as_slice()), checksum: content.checksum() };
        assert!(!corrupted.is_intact());
    }

    #[test]
    fn a_flipped_bit_keeps_the_checksum_and_breaks_the_bytes() {
        let content = Content::new(b"hunter2");
        let flipped = content.with_flipped_bit();
        assert_eq!(flipped.checksum(), content.checksum());
        assert_ne!(flipped.bytes(), content.bytes());
        assert!(!flipped.is_intact());
        assert_eq!(Content::new(b"").with_flipped_bit(), Content::new(b""));
    }

    #[test]
    fn debug_never_prints_secret_bytes() {
        let text = format!("{:?}", Content::new(b"hunter2"));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("7 bytes"), "{text}");
    }

    #[test]
    #[should_panic(expected = "content is absent exactly when the secret is deleted")]
    fn deleted_record_with_content_is_a_bug() {
        SecretRecord {
            tenant: TenantId(1),
            vault: VaultId(1),
            version: Version(2),
            lifecycle: Lifecycle::Deleted,
            content: Some(Content::new(b"x")),
        }
        .check_invariants();
    }
}
