//! The remote store engine: one per shard.
//!
//! A transactional key-value store with optimistic concurrency. A transaction
//! carries the version of every key it read ([`Transaction::reads`]); commit
//! fails with [`CommitOutcome::Conflict`] naming the first key whose version
//! changed, and otherwise applies every write atomically under one new
//! [`CommitSeq`]. A key's version is the commit that last wrote it; an absent key
//! has version `CommitSeq(0)`. Deleting a key removes it, which is sound because
//! versions only grow: a reader that saw the key present conflicts, and a reader
//! that saw it absent sees it absent again.
//!
//! Tables: vaults, secrets, idempotency tokens, log heads and log partitions (one
//! per tenancy), the outbox, bookmarks and config; in the base store (shard 0)
//! also the shard registry and the routing rows (vault → shard, secret → vault),
//! written by the placement step and the shard-addition operator.
//!
//! Routing rows replicate through the log too: a commit whose `Put` changes what
//! a routing key routes to (a shard's state, a vault's shard, a secret's vault;
//! not a shard's load) appends a [`RouteEvent`] to the routing partition in the
//! same commit, so no routing row exists unlogged ([`Store::poll_routes`]).
//! Routing rows are never deleted. The log is written only
//! through [`Write::Append`], which puts the event at the partition head plus one
//! and bumps the head key; writers that read the head therefore contend on it
//! (the `sync` interceptor's optimistic-lock contention). Outbox rows are written
//! only through [`Write::Outbox`], keyed by the commit that wrote them, so they
//! never contend.
//!
//! Call protocol: [`Store::on_request`] takes a request and returns its reply at
//! once; the store is a pure state machine and never fails on its own.

mod shared;

pub use shared::{SharedStore, SharedStoreConfig};

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::bugzoo::Bugs;
use crate::types::{
    CommitSeq, LogEvent, Mutation, RouteEvent, RouteRow, SecretId, SecretRecord, Seq, ShardId, ShardRecord, TenantId,
    VaultId, VaultRecord, Version,
};

/// An idempotency token carried by a create request (OCI's retry token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdempotencyToken(pub u64);

/// The name of a persisted bookmark (for example the backfiller's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BookmarkId(pub u32);

/// The name of a config entry (for example the migration phase).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigId(pub u32);

/// The key of an outbox row: its partition, then the commit that wrote it, then
/// the secret and version it carries. Rows of one partition sort in commit order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboxKey {
    /// The partition the row will be published to.
    pub tenant: TenantId,
    /// The commit that wrote the row.
    pub commit: CommitSeq,
    /// The secret the row carries.
    pub secret: SecretId,
    /// The version the row carries.
    pub version: Version,
}

/// A key of the store. The variant is the table; keys sort table by table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// The vaults table.
    Vault(VaultId),
    /// The secrets table.
    Secret(SecretId),
    /// The idempotency tokens of creates.
    Token(IdempotencyToken),
    /// The head of a tenancy's log partition (written only by [`Write::Append`]).
    LogHead(TenantId),
    /// The outbox (written only by [`Write::Outbox`]).
    Outbox(OutboxKey),
    /// Persisted bookmarks.
    Bookmark(BookmarkId),
    /// Configuration.
    Config(ConfigId),
    /// The shard registry (base store).
    Shard(ShardId),
    /// Routing: the shard a vault lives on (base store).
    VaultRoute(VaultId),
    /// Routing: the vault a secret lives in (base store).
    SecretRoute(SecretId),
}

/// The tables of the store, in key order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// [`Key::Vault`].
    Vaults,
    /// [`Key::Secret`].
    Secrets,
    /// [`Key::Token`].
    Tokens,
    /// [`Key::LogHead`].
    LogHeads,
    /// [`Key::Outbox`].
    Outbox,
    /// [`Key::Bookmark`].
    Bookmarks,
    /// [`Key::Config`].
    Config,
    /// [`Key::Shard`].
    Shards,
    /// [`Key::VaultRoute`].
    VaultRoutes,
    /// [`Key::SecretRoute`].
    SecretRoutes,
}

impl Key {
    /// The table this key belongs to.
    pub fn table(&self) -> Table {
        match self {
            Key::Vault(_) => Table::Vaults,
            Key::Secret(_) => Table::Secrets,
            Key::Token(_) => Table::Tokens,
            Key::LogHead(_) => Table::LogHeads,
            Key::Outbox(_) => Table::Outbox,
            Key::Bookmark(_) => Table::Bookmarks,
            Key::Config(_) => Table::Config,
            Key::Shard(_) => Table::Shards,
            Key::VaultRoute(_) => Table::VaultRoutes,
            Key::SecretRoute(_) => Table::SecretRoutes,
        }
    }

    /// Whether this key is a routing row (shard registry or route), which
    /// replicates through the routing partition.
    pub fn is_routing(&self) -> bool {
        matches!(self.table(), Table::Shards | Table::VaultRoutes | Table::SecretRoutes)
    }

    /// The smallest key of `table`.
    pub fn first_of(table: Table) -> Key {
        match table {
            Table::Vaults => Key::Vault(VaultId(0)),
            Table::Secrets => Key::Secret(SecretId(0)),
            Table::Tokens => Key::Token(IdempotencyToken(0)),
            Table::LogHeads => Key::LogHead(TenantId(0)),
            Table::Outbox => Key::Outbox(OutboxKey::first_of(TenantId(0))),
            Table::Bookmarks => Key::Bookmark(BookmarkId(0)),
            Table::Config => Key::Config(ConfigId(0)),
            Table::Shards => Key::Shard(ShardId(0)),
            Table::VaultRoutes => Key::VaultRoute(VaultId(0)),
            Table::SecretRoutes => Key::SecretRoute(SecretId(0)),
        }
    }
}

impl OutboxKey {
    /// The smallest outbox key of `tenant`'s partition.
    pub fn first_of(tenant: TenantId) -> OutboxKey {
        OutboxKey { tenant, commit: CommitSeq(0), secret: SecretId(0), version: Version::ABSENT }
    }
}

/// What a create's idempotency token remembers: the secret it created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenRecord {
    /// The secret the first attempt created.
    pub secret: SecretId,
    /// The version it created.
    pub version: Version,
}

/// A value of the store; the variant matches the key's table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    /// A vault.
    Vault(VaultRecord),
    /// A secret.
    Secret(SecretRecord),
    /// A used idempotency token.
    Token(TokenRecord),
    /// The sequence number of a partition's last event.
    LogHead(Seq),
    /// An outbox row: the mutation to publish.
    Outbox(Mutation),
    /// A bookmark's position.
    Bookmark(u64),
    /// A config value.
    Config(u64),
    /// A shard's registry row.
    Shard(ShardRecord),
    /// The shard a vault lives on.
    VaultRoute(ShardId),
    /// The vault a secret lives in.
    SecretRoute(VaultId),
}

impl Value {
    /// The table whose keys may hold this value.
    pub fn table(&self) -> Table {
        match self {
            Value::Vault(_) => Table::Vaults,
            Value::Secret(_) => Table::Secrets,
            Value::Token(_) => Table::Tokens,
            Value::LogHead(_) => Table::LogHeads,
            Value::Outbox(_) => Table::Outbox,
            Value::Bookmark(_) => Table::Bookmarks,
            Value::Config(_) => Table::Config,
            Value::Shard(_) => Table::Shards,
            Value::VaultRoute(_) => Table::VaultRoutes,
            Value::SecretRoute(_) => Table::SecretRoutes,
        }
    }
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Write {
    /// Sets a key of the vaults, secrets, tokens, bookmarks, config, shards or
    /// routing tables.
    Put(Key, Value),
    /// Removes a key of those tables, or an outbox row.
    Delete(Key),
    /// Appends the mutation to its tenancy's log partition at head + 1.
    Append(Mutation),
    /// Writes an outbox row for the mutation, keyed by this commit.
    Outbox(Mutation),
}

/// A transaction: the versions it read and the writes it makes.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Transaction {
    /// Every key the transaction's decisions depend on, with the version read.
    pub reads: Vec<(Key, CommitSeq)>,
    /// The writes, applied in order if the commit succeeds.
    pub writes: Vec<Write>,
}

/// The answer to a commit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommitOutcome {
    /// Every write was applied under `commit`.
    Committed {
        /// The commit's sequence number.
        commit: CommitSeq,
        /// For each [`Write::Append`], in order: its partition and position.
        appended: Vec<(TenantId, Seq)>,
    },
    /// A key read by the transaction changed since; nothing was written.
    Conflict {
        /// The first key (in read order) whose version differs.
        key: Key,
    },
    /// The transaction is malformed; nothing was written.
    Invalid(InvalidWrite),
}

/// Why a transaction was refused as malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InvalidWrite {
    /// A `Put` whose value does not belong to the key's table.
    ValueTableMismatch(Key),
    /// A `Put` or `Delete` of a log head, or a `Put` of an outbox row: those are
    /// written only by `Append` and `Outbox`. Or a `Delete` of a routing row:
    /// those replicate by their puts and are never removed.
    ReservedKey(Key),
    /// Two `Outbox` writes of one transaction carry the same partition, secret
    /// and version (they would share a key).
    DuplicateOutboxRow(TenantId, SecretId, Version),
    /// An `Append` to a partition the shared store was not built with.
    UnknownPartition(TenantId),
    /// An `Append` past the shared store's fixed partition capacity.
    PartitionFull(TenantId),
    /// A secret record (put, appended or written to the outbox) without a version,
    /// or whose content is present when deleted or absent when not.
    MalformedRecord(SecretId),
}

/// One key as read: its version and value (`None` when absent).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReadEntry {
    /// The key read.
    pub key: Key,
    /// Its version; `CommitSeq(0)` when absent.
    pub version: CommitSeq,
    /// Its value.
    pub value: Option<Value>,
}

/// A page of an ordered scan.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScanPage {
    /// Present keys in key order.
    pub rows: Vec<ReadEntry>,
    /// Where to resume (exclusive), or `None` when the table is exhausted; a
    /// zero-limit page echoes the request's `after` instead (see [`Store::scan`]).
    pub resume_after: Option<Key>,
}

/// A request to the store.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoreRequest {
    /// Reads keys at the current state.
    Read {
        /// Keys to read.
        keys: Vec<Key>,
    },
    /// Commits a transaction.
    Commit(Transaction),
    /// Scans a table in key order.
    Scan {
        /// Table to scan.
        table: Table,
        /// Resume key (exclusive); `None` to start at the beginning. A key of
        /// another table is placed in key order (see [`Store::scan`]).
        after: Option<Key>,
        /// Page size; zero reads nothing and echoes `after`.
        limit: usize,
    },
    /// Reads a partition's head and its first outbox rows, in commit order.
    ReadOutbox {
        /// The partition.
        tenant: TenantId,
        /// Most rows returned.
        limit: usize,
    },
    /// Reads events of every partition after the given cursors.
    Poll {
        /// A cursor per partition; partitions not listed are read from the start.
        cursors: Vec<(TenantId, Seq)>,
        /// Most events returned per partition.
        limit_per_partition: usize,
    },
    /// Reads events of the routing partition after `after` ([`Store::poll_routes`]).
    PollRoutes {
        /// The last routing event the reader applied.
        after: Seq,
        /// Most events returned.
        limit: usize,
    },
}

/// The reply to a [`StoreRequest`], variant for variant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoreReply {
    /// The keys, in request order.
    Read(Vec<ReadEntry>),
    /// The commit's outcome.
    Commit(CommitOutcome),
    /// A scan page.
    Scan(ScanPage),
    /// The partition head and outbox rows.
    Outbox {
        /// The [`Key::LogHead`] entry.
        head: ReadEntry,
        /// Outbox rows of the partition in commit order.
        rows: Vec<ReadEntry>,
    },
    /// Events in (partition, seq) order.
    Poll(Vec<LogEvent>),
    /// Routing partition events in order.
    Routes(Vec<RouteEvent>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Entry {
    version: CommitSeq,
    value: Value,
}

/// The remote store engine. See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Store {
    entries: BTreeMap<Key, Entry>,
    partitions: BTreeMap<TenantId, Vec<LogEvent>>,
    /// The routing partition: every change of a routing row, in commit order.
    routes: Vec<RouteEvent>,
    last_commit: CommitSeq,
    bugs: Bugs,
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// An empty store running bug-zoo variants (none outside the bug zoo).
    pub fn with_bugs(bugs: Bugs) -> Store {
        Store { bugs, ..Store::default() }
    }

    /// Answers one request.
    pub fn on_request(&mut self, request: StoreRequest) -> StoreReply {
        let reply = match request {
            StoreRequest::Read { keys } => StoreReply::Read(keys.iter().map(|key| self.read(key)).collect()),
            StoreRequest::Commit(transaction) => StoreReply::Commit(self.commit(&transaction)),
            StoreRequest::Scan { table, after, limit } => StoreReply::Scan(self.scan(table, after, limit)),
            StoreRequest::ReadOutbox { tenant, limit } => {
                StoreReply::Outbox { head: self.read(&Key::LogHead(tenant)), rows: self.scan_outbox(tenant, limit) }
            }
            StoreRequest::Poll { cursors, limit_per_partition } => {
                StoreReply::Poll(self.poll_all(&cursors, limit_per_partition))
            }
            StoreRequest::PollRoutes { after, limit } => StoreReply::Routes(self.poll_routes(after, limit).to_vec()),
        };
        // A bug-zoo variant breaks these invariants on purpose: the testbed's
        // checkers, not the store's own assertions, must catch it.
        debug_assert!(self.bugs != Bugs::none() || self.invariants_hold());
        reply
    }

    /// Reads one key.
    pub fn read(&self, key: &Key) -> ReadEntry {
        match self.entries.get(key) {
            Some(entry) => ReadEntry { key: *key, version: entry.version, value: Some(entry.value.clone()) },
            None => ReadEntry { key: *key, version: CommitSeq(0), value: None },
        }
    }

    /// The version of `key`: the commit that last wrote it, or `CommitSeq(0)`.
    pub fn version(&self, key: &Key) -> CommitSeq {
        self.entries.get(key).map_or(CommitSeq(0), |entry| entry.version)
    }

    /// The last commit's sequence number.
    pub fn last_commit(&self) -> CommitSeq {
        self.last_commit
    }

    /// Validates and applies a transaction.
    pub fn commit(&mut self, transaction: &Transaction) -> CommitOutcome {
        if let Some(invalid) = Self::commit_validate_shape(transaction) {
            return CommitOutcome::Invalid(invalid);
        }
        #[cfg(feature = "bugzoo")]
        let validate = !self.bugs.is_on(crate::bugzoo::Bug::UnvalidatedCommit);
        #[cfg(not(feature = "bugzoo"))]
        let validate = true;
        for (key, version_read) in transaction.reads.iter().filter(|_| validate) {
            if self.version(key) != *version_read {
                return CommitOutcome::Conflict { key: *key };
            }
        }
        let commit = CommitSeq(self.last_commit.0 + 1);
        let mut appended = Vec::new();
        for write in &transaction.writes {
            self.commit_apply(commit, write, &mut appended);
        }
        self.last_commit = commit;
        CommitOutcome::Committed { commit, appended }
    }

    fn commit_validate_shape(transaction: &Transaction) -> Option<InvalidWrite> {
        let mut outbox_rows = std::collections::BTreeSet::new();
        for write in &transaction.writes {
            if let Write::Outbox(mutation) = write {
                let row = (mutation.record.tenant, mutation.secret, mutation.record.version);
                if !outbox_rows.insert(row) {
                    return Some(InvalidWrite::DuplicateOutboxRow(row.0, row.1, row.2));
                }
            }
        }
        transaction.writes.iter().find_map(|write| match write {
            Write::Put(key, _) | Write::Delete(key) if key.table() == Table::LogHeads => {
                Some(InvalidWrite::ReservedKey(*key))
            }
            Write::Put(key, _) if key.table() == Table::Outbox => Some(InvalidWrite::ReservedKey(*key)),
            Write::Delete(key) if key.is_routing() => Some(InvalidWrite::ReservedKey(*key)),
            Write::Put(key, value) if key.table() != value.table() => Some(InvalidWrite::ValueTableMismatch(*key)),
            Write::Put(Key::Secret(secret), Value::Secret(record)) if !record.is_well_formed() => {
                Some(InvalidWrite::MalformedRecord(*secret))
            }
            Write::Append(mutation) | Write::Outbox(mutation) if !mutation.record.is_well_formed() => {
                Some(InvalidWrite::MalformedRecord(mutation.secret))
            }
            _ => None,
        })
    }

    /// Applies one write of a transaction that passed `commit_validate_shape`:
    /// its records are well formed, so the checks here are our own invariants.
    fn commit_apply(&mut self, commit: CommitSeq, write: &Write, appended: &mut Vec<(TenantId, Seq)>) {
        match write {
            Write::Put(key, value) => {
                value_check(value);
                let entry = Entry { version: commit, value: value.clone() };
                let previous = self.entries.insert(*key, entry);
                let before = previous.and_then(|previous| route_row(key, &previous.value));
                if let Some(row) = route_row(key, value).filter(|row| before != Some(*row)) {
                    self.routes.push(RouteEvent { seq: Seq(self.routes.len() as u64 + 1), commit, row });
                }
            }
            Write::Delete(key) => {
                self.entries.remove(key);
            }
            Write::Append(mutation) => {
                value_check_mutation(mutation);
                let tenant = mutation.record.tenant;
                let partition = self.partitions.entry(tenant).or_default();
                let seq = Seq(partition.len() as u64 + 1);
                partition.push(LogEvent { seq, commit, mutation: mutation.clone() });
                let head = Entry { version: commit, value: Value::LogHead(seq) };
                self.entries.insert(Key::LogHead(tenant), head);
                appended.push((tenant, seq));
            }
            Write::Outbox(mutation) => {
                value_check_mutation(mutation);
                let key = Key::Outbox(OutboxKey {
                    tenant: mutation.record.tenant,
                    commit,
                    secret: mutation.secret,
                    version: mutation.record.version,
                });
                let row = Entry { version: commit, value: Value::Outbox(mutation.clone()) };
                let previous = self.entries.insert(key, row);
                assert!(previous.is_none(), "outbox key written twice: {key:?}");
            }
        }
    }

    /// Scans `table` in key order after `after` (exclusive), at most `limit` rows.
    ///
    /// Total on every input, since requests come from peers. A resume key of
    /// another table is placed in key order like any key (tables sort in
    /// [`Table`] order): one of an earlier table scans `table` from its start,
    /// one of a later table finds nothing. A zero limit reads nothing: the page is
    /// empty and `resume_after` is `after`, so the caller resumes where it was.
    pub fn scan(&self, table: Table, after: Option<Key>, limit: usize) -> ScanPage {
        if limit == 0 {
            return ScanPage { rows: Vec::new(), resume_after: after };
        }
        let first = Key::first_of(table);
        let start = match after {
            Some(after) if after >= first => Bound::Excluded(after),
            Some(_) | None => Bound::Included(first),
        };
        let mut rows = Vec::new();
        let mut more = false;
        for (key, entry) in self.entries.range((start, Bound::Unbounded)) {
            if key.table() != table {
                break;
            }
            if rows.len() == limit {
                more = true;
                break;
            }
            rows.push(ReadEntry { key: *key, version: entry.version, value: Some(entry.value.clone()) });
        }
        let resume_after = if more { rows.last().map(|row| row.key) } else { None };
        ScanPage { rows, resume_after }
    }

    /// The outbox rows of `tenant`'s partition in commit order, at most `limit`.
    pub fn scan_outbox(&self, tenant: TenantId, limit: usize) -> Vec<ReadEntry> {
        let start = Key::Outbox(OutboxKey::first_of(tenant));
        self.entries
            .range(start..)
            .take_while(|(key, _)| matches!(key, Key::Outbox(outbox) if outbox.tenant == tenant))
            .take(limit)
            .map(|(key, entry)| ReadEntry { key: *key, version: entry.version, value: Some(entry.value.clone()) })
            .collect()
    }

    /// The events of `tenant`'s partition after `after`, at most `limit`.
    pub fn poll(&self, tenant: TenantId, after: Seq, limit: usize) -> &[LogEvent] {
        let Some(partition) = self.partitions.get(&tenant) else {
            return &[];
        };
        let start = usize::try_from(after.0).expect("cursor fits in memory").min(partition.len());
        let end = start.saturating_add(limit).min(partition.len());
        let events = &partition[start..end];
        if let Some(first) = events.first() {
            assert_eq!(first.seq, after.next(), "partition position is seq - 1");
        }
        events
    }

    /// Events of every partition after its cursor (partitions without a cursor
    /// from the start), at most `limit_per_partition` each, in (partition, seq) order.
    pub fn poll_all(&self, cursors: &[(TenantId, Seq)], limit_per_partition: usize) -> Vec<LogEvent> {
        let mut events = Vec::new();
        for tenant in self.partitions.keys() {
            let after =
                cursors.iter().find(|(cursor_tenant, _)| cursor_tenant == tenant).map_or(Seq::ZERO, |(_, seq)| *seq);
            events.extend_from_slice(self.poll(*tenant, after, limit_per_partition));
        }
        events
    }

    /// The events of the routing partition after `after`, at most `limit`.
    pub fn poll_routes(&self, after: Seq, limit: usize) -> &[RouteEvent] {
        let start = usize::try_from(after.0).expect("cursor fits in memory").min(self.routes.len());
        let end = start.saturating_add(limit).min(self.routes.len());
        let events = &self.routes[start..end];
        if let Some(first) = events.first() {
            assert_eq!(first.seq, after.next(), "routing partition position is seq - 1");
        }
        events
    }

    /// The head of the routing partition (`Seq::ZERO` when empty).
    pub fn routes_head(&self) -> Seq {
        Seq(self.routes.len() as u64)
    }

    /// The tenancies that have a log partition.
    pub fn partitions(&self) -> impl Iterator<Item = TenantId> + '_ {
        self.partitions.keys().copied()
    }

    /// The head of `tenant`'s partition (`Seq::ZERO` when empty).
    pub fn head(&self, tenant: TenantId) -> Seq {
        self.partitions.get(&tenant).map_or(Seq::ZERO, |partition| Seq(partition.len() as u64))
    }

    /// Whether every structural invariant holds (O(size); for tests and debug builds).
    pub fn invariants_hold(&self) -> bool {
        self.check_invariants();
        true
    }

    /// Asserts the store's invariants: every partition is gap-free from 1, its head
    /// key agrees, per-secret versions grow along it, and no version is newer than
    /// the last commit.
    pub fn check_invariants(&self) {
        for (key, entry) in &self.entries {
            assert!(entry.version <= self.last_commit, "{key:?} newer than the last commit");
            assert!(entry.version > CommitSeq(0), "{key:?} stored without a version");
            assert_eq!(key.table(), entry.value.table(), "{key:?} holds another table's value");
        }
        for (tenant, partition) in &self.partitions {
            let mut versions: BTreeMap<SecretId, Version> = BTreeMap::new();
            for (index, event) in partition.iter().enumerate() {
                assert_eq!(event.seq, Seq(index as u64 + 1), "gap in partition {tenant}");
                assert_eq!(event.tenant(), *tenant, "event in the wrong partition");
                let last = versions.insert(event.mutation.secret, event.mutation.record.version);
                // A migration's backfill may repeat a secret's last version
                // (a re-emission after a rollback to `Off`); never go below it.
                assert!(
                    last <= Some(event.mutation.record.version),
                    "versions of {} go back in partition {tenant}",
                    event.mutation.secret
                );
            }
            let head = self.entries.get(&Key::LogHead(*tenant)).map(|entry| &entry.value);
            let expected = Value::LogHead(Seq(partition.len() as u64));
            assert_eq!(head, Some(&expected), "head of partition {tenant} disagrees");
        }
        let mut last_commit = CommitSeq(0);
        for (index, event) in self.routes.iter().enumerate() {
            assert_eq!(event.seq, Seq(index as u64 + 1), "gap in the routing partition");
            assert!(
                event.commit >= last_commit && event.commit <= self.last_commit,
                "routing events out of commit order"
            );
            last_commit = event.commit;
        }
    }
}

/// The routing row a `Put` of `value` at `key` writes, if `key` is a routing key.
pub fn route_row(key: &Key, value: &Value) -> Option<RouteRow> {
    match (key, value) {
        (Key::Shard(shard), Value::Shard(record)) => Some(RouteRow::Shard { shard: *shard, state: record.state }),
        (Key::VaultRoute(vault), Value::VaultRoute(shard)) => Some(RouteRow::Vault { vault: *vault, shard: *shard }),
        (Key::SecretRoute(secret), Value::SecretRoute(vault)) => {
            Some(RouteRow::Secret { secret: *secret, vault: *vault })
        }
        _ => None,
    }
}

fn value_check(value: &Value) {
    if let Value::Secret(record) = value {
        record.check_invariants();
    }
}

fn value_check_mutation(mutation: &Mutation) {
    mutation.record.check_invariants();
}

#[cfg(test)]
mod tests;
