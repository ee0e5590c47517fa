//! The store engine against a plain serial reference model (REP-9, REP-4).
//!
//! Random sequences of transactions (reads with the current version, an earlier
//! version or a made-up stale one; puts and deletes of vaults, secrets, tokens,
//! bookmarks and config; log appends; outbox rows and their deletion; a few
//! malformed writes and records) interleaved with reads, scans (zero limits and
//! resume keys of other tables included), outbox reads and polls run
//! against `vault::store::Store` and against `Reference`, a map of key to
//! (version, value) plus one event list per partition, written here without the
//! engine's code. After every step both must agree on the reply, on every table
//! and on every partition, and `Store::check_invariants` must hold. If the engine
//! ever validated, conflicted or applied a transaction differently from serial
//! execution, or lost or reordered a log event, a step would disagree.
#![cfg(not(loom))]

use std::collections::{BTreeMap, BTreeSet};

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use vault::store::{
    BookmarkId, CommitOutcome, ConfigId, IdempotencyToken, InvalidWrite, Key, OutboxKey, ReadEntry, ScanPage, Store,
    StoreReply, StoreRequest, Table, TokenRecord, Transaction, Value, Write,
};
use vault::types::{
    CommitSeq, Content, Lifecycle, LogEvent, Mutation, SecretId, SecretRecord, Seq, ShardId, TenantId, VaultId,
    VaultRecord, Version,
};

/// Key-space bounds: small, so that transactions collide often.
const TENANTS: u32 = 3;
const SECRETS: u32 = 4;
const VAULTS: u32 = 3;
const SMALL_TABLE_KEYS: u32 = 2;
/// The longest generated sequence of steps.
const STEPS_MAX: usize = 30;
/// A scan limit that covers the whole of any generated table.
const SCAN_ALL_ROWS: usize = 10_000;

const TABLES: [Table; 7] =
    [Table::Vaults, Table::Secrets, Table::Tokens, Table::LogHeads, Table::Outbox, Table::Bookmarks, Table::Config];

/// The serial reference: what a store must look like after running the same
/// transactions one at a time, written as plainly as possible.
#[derive(Debug, Default)]
struct Reference {
    entries: BTreeMap<Key, (CommitSeq, Value)>,
    partitions: BTreeMap<TenantId, Vec<LogEvent>>,
    last_commit: u64,
    /// The version of every present key after each commit, oldest first.
    history: Vec<BTreeMap<Key, CommitSeq>>,
}

impl Reference {
    fn version(&self, key: &Key) -> CommitSeq {
        self.entries.get(key).map_or(CommitSeq(0), |(version, _)| *version)
    }

    fn read(&self, key: &Key) -> ReadEntry {
        let (version, value) = match self.entries.get(key) {
            Some((version, value)) => (*version, Some(value.clone())),
            None => (CommitSeq(0), None),
        };
        ReadEntry { key: *key, version, value }
    }

    fn commit(&mut self, transaction: &Transaction) -> CommitOutcome {
        let mut outbox_rows = BTreeSet::new();
        for write in &transaction.writes {
            if let Write::Outbox(mutation) = write {
                let row = (mutation.record.tenant, mutation.secret, mutation.record.version);
                if !outbox_rows.insert(row) {
                    return CommitOutcome::Invalid(InvalidWrite::DuplicateOutboxRow(row.0, row.1, row.2));
                }
            }
        }
        for write in &transaction.writes {
            let malformed = match write {
                Write::Put(key @ Key::LogHead(_), _)
                | Write::Delete(key @ Key::LogHead(_))
                | Write::Put(key @ Key::Outbox(_), _) => Some(InvalidWrite::ReservedKey(*key)),
                Write::Put(key, value) if !value_fits(key, value) => Some(InvalidWrite::ValueTableMismatch(*key)),
                Write::Put(Key::Secret(secret), Value::Secret(record)) if !record_shape_holds(record) => {
                    Some(InvalidWrite::MalformedRecord(*secret))
                }
                Write::Append(mutation) | Write::Outbox(mutation) if !record_shape_holds(&mutation.record) => {
                    Some(InvalidWrite::MalformedRecord(mutation.secret))
                }
                _ => None,
            };
            if let Some(malformed) = malformed {
                return CommitOutcome::Invalid(malformed);
            }
        }
        for (key, version) in &transaction.reads {
            if self.version(key) != *version {
                return CommitOutcome::Conflict { key: *key };
            }
        }
        self.last_commit += 1;
        let commit = CommitSeq(self.last_commit);
        let mut appended = Vec::new();
        for write in &transaction.writes {
            match write {
                Write::Put(key, value) => {
                    self.entries.insert(*key, (commit, value.clone()));
                }
                Write::Delete(key) => {
                    self.entries.remove(key);
                }
                Write::Append(mutation) => {
                    let tenant = mutation.record.tenant;
                    let partition = self.partitions.entry(tenant).or_default();
                    let seq = Seq(partition.len() as u64 + 1);
                    partition.push(LogEvent { seq, commit, mutation: mutation.clone() });
                    self.entries.insert(Key::LogHead(tenant), (commit, Value::LogHead(seq)));
                    appended.push((tenant, seq));
                }
                Write::Outbox(mutation) => {
                    let key = OutboxKey {
                        tenant: mutation.record.tenant,
                        commit,
                        secret: mutation.secret,
                        version: mutation.record.version,
                    };
                    self.entries.insert(Key::Outbox(key), (commit, Value::Outbox(mutation.clone())));
                }
            }
        }
        self.history.push(self.entries.iter().map(|(key, (version, _))| (*key, *version)).collect());
        CommitOutcome::Committed { commit, appended }
    }

    fn scan(&self, table: Table, after: Option<Key>, limit: usize) -> ScanPage {
        if limit == 0 {
            return ScanPage { rows: Vec::new(), resume_after: after };
        }
        let mut rows: Vec<ReadEntry> = self
            .entries
            .keys()
            .filter(|key| key.table() == table && after.is_none_or(|after| **key > after))
            .map(|key| self.read(key))
            .collect();
        if rows.len() <= limit {
            return ScanPage { rows, resume_after: None };
        }
        rows.truncate(limit);
        ScanPage { resume_after: rows.last().map(|row| row.key), rows }
    }

    fn outbox(&self, tenant: TenantId, limit: usize) -> Vec<ReadEntry> {
        let rows: Vec<ReadEntry> = self
            .entries
            .keys()
            .filter(|key| matches!(key, Key::Outbox(outbox) if outbox.tenant == tenant))
            .take(limit)
            .map(|key| self.read(key))
            .collect();
        let commits: Vec<CommitSeq> = rows.iter().map(|row| row.version).collect();
        assert!(commits.is_sorted(), "reference outbox rows are in commit order: {commits:?}");
        rows
    }

    fn poll(&self, tenant: TenantId, after: Seq, limit: usize) -> Vec<LogEvent> {
        let partition = self.partitions.get(&tenant).map_or(&[][..], Vec::as_slice);
        partition.iter().filter(|event| event.seq > after).take(limit).cloned().collect()
    }

    fn poll_all(&self, cursors: &[(TenantId, Seq)], limit: usize) -> Vec<LogEvent> {
        let mut events = Vec::new();
        for tenant in self.partitions.keys() {
            let after = cursors.iter().find(|(listed, _)| listed == tenant).map_or(Seq::ZERO, |(_, after)| *after);
            events.extend(self.poll(*tenant, after, limit));
        }
        events
    }

    /// The highest version of `secret` appended to `tenant`'s partition.
    fn last_appended(&self, tenant: TenantId, secret: SecretId) -> u64 {
        let partition = self.partitions.get(&tenant).map_or(&[][..], Vec::as_slice);
        partition
            .iter()
            .filter(|event| event.mutation.secret == secret)
            .map(|event| event.mutation.record.version.0)
            .max()
            .unwrap_or(0)
    }

    fn outbox_keys(&self) -> Vec<Key> {
        self.entries.keys().filter(|key| key.table() == Table::Outbox).copied().collect()
    }
}

/// Whether `value` may be put under `key`, spelled out pair by pair.
fn value_fits(key: &Key, value: &Value) -> bool {
    matches!(
        (key, value),
        (Key::Vault(_), Value::Vault(_))
            | (Key::Secret(_), Value::Secret(_))
            | (Key::Token(_), Value::Token(_))
            | (Key::LogHead(_), Value::LogHead(_))
            | (Key::Outbox(_), Value::Outbox(_))
            | (Key::Bookmark(_), Value::Bookmark(_))
            | (Key::Config(_), Value::Config(_))
    )
}

/// Whether a secret record has a version, and content exactly when it is not deleted.
fn record_shape_holds(record: &SecretRecord) -> bool {
    let deleted = record.lifecycle == Lifecycle::Deleted;
    let has_content = record.content.is_some();
    record.version.0 >= 1 && deleted != has_content
}

/// A key named by table and index; outbox keys pick among the rows present.
#[derive(Clone, Copy, Debug)]
struct KeyChoice {
    table: Table,
    index: u32,
}

impl KeyChoice {
    fn resolve(self, reference: &Reference) -> Key {
        let index = self.index;
        match self.table {
            Table::Vaults => Key::Vault(VaultId(index % VAULTS)),
            Table::Secrets => Key::Secret(SecretId(index % SECRETS)),
            Table::Tokens => Key::Token(IdempotencyToken(u64::from(index % SMALL_TABLE_KEYS))),
            Table::LogHeads => Key::LogHead(TenantId(index % TENANTS)),
            Table::Outbox => {
                let rows = reference.outbox_keys();
                if rows.is_empty() {
                    Key::Outbox(OutboxKey::first_of(TenantId(index % TENANTS)))
                } else {
                    rows[index as usize % rows.len()]
                }
            }
            Table::Bookmarks => Key::Bookmark(BookmarkId(index % SMALL_TABLE_KEYS)),
            Table::Config => Key::Config(ConfigId(index % SMALL_TABLE_KEYS)),
            // The routing tables are not drawn (see TABLES); named for exhaustiveness.
            Table::Shards => Key::Shard(ShardId(index % SMALL_TABLE_KEYS)),
            Table::VaultRoutes => Key::VaultRoute(VaultId(index % VAULTS)),
            Table::SecretRoutes => Key::SecretRoute(SecretId(index % SECRETS)),
        }
    }
}

/// Which version a transaction claims to have read.
#[derive(Clone, Copy, Debug)]
enum VersionChoice {
    /// The version now.
    Current,
    /// The version after some earlier commit (often stale, sometimes not).
    Earlier(usize),
    /// A version the key never had at this point.
    Stale(u8),
}

impl VersionChoice {
    fn resolve(self, reference: &Reference, key: &Key) -> CommitSeq {
        let current = reference.version(key);
        match self {
            VersionChoice::Current => current,
            VersionChoice::Earlier(_) if reference.history.is_empty() => CommitSeq(0),
            VersionChoice::Earlier(back) => {
                let snapshot = &reference.history[back % reference.history.len()];
                snapshot.get(key).copied().unwrap_or(CommitSeq(0))
            }
            VersionChoice::Stale(offset) if current.0 > 0 && offset % 2 == 0 => CommitSeq(current.0 - 1),
            VersionChoice::Stale(offset) => CommitSeq(current.0 + 1 + u64::from(offset)),
        }
    }
}

/// One write of a generated transaction, resolved against the reference.
#[derive(Clone, Debug)]
enum WriteChoice {
    PutSecret {
        secret: u32,
        tenant: u32,
        version: u64,
        lifecycle: Lifecycle,
    },
    PutVault {
        vault: u32,
        tenant: u32,
        deleted: bool,
    },
    PutToken {
        token: u32,
        secret: u32,
    },
    PutBookmark {
        bookmark: u32,
        position: u64,
    },
    PutConfig {
        config: u32,
        value: u64,
    },
    Delete(KeyChoice),
    /// Appends the next version (plus `skip`) of the secret to its partition.
    Append {
        tenant: u32,
        secret: u32,
        lifecycle: Lifecycle,
        skip: u64,
    },
    Outbox {
        tenant: u32,
        secret: u32,
        version: u64,
        lifecycle: Lifecycle,
    },
    /// A write the store must refuse.
    Malformed(Write),
}

fn record(tenant: u32, version: u64, lifecycle: Lifecycle) -> SecretRecord {
    let content = (lifecycle != Lifecycle::Deleted).then(|| Content::new(format!("v{version}").as_bytes()));
    SecretRecord { tenant: TenantId(tenant), vault: VaultId(tenant), version: Version(version), lifecycle, content }
}

/// Turns generated choices into a transaction valid against `reference`'s state,
/// except for the deliberately stale reads and malformed writes.
fn build_transaction(
    reference: &Reference,
    reads: &[(KeyChoice, VersionChoice)],
    writes: &[WriteChoice],
) -> Transaction {
    let reads = reads
        .iter()
        .map(|(key, version)| {
            let key = key.resolve(reference);
            (key, version.resolve(reference, &key))
        })
        .collect();
    // Appended versions of a secret must grow along its partition, also within
    // one transaction.
    let mut appended_versions: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    let mut outbox_rows: BTreeSet<(u32, u32, u64)> = BTreeSet::new();
    let writes = writes
        .iter()
        .map(|write| match write {
            WriteChoice::PutSecret { secret, tenant, version, lifecycle } => {
                Write::Put(Key::Secret(SecretId(*secret)), Value::Secret(record(*tenant, *version, *lifecycle)))
            }
            WriteChoice::PutVault { vault, tenant, deleted } => Write::Put(
                Key::Vault(VaultId(*vault)),
                Value::Vault(VaultRecord { tenant: TenantId(*tenant), deleted: *deleted }),
            ),
            WriteChoice::PutToken { token, secret } => Write::Put(
                Key::Token(IdempotencyToken(u64::from(*token))),
                Value::Token(TokenRecord { secret: SecretId(*secret), version: Version(1) }),
            ),
            WriteChoice::PutBookmark { bookmark, position } => {
                Write::Put(Key::Bookmark(BookmarkId(*bookmark)), Value::Bookmark(*position))
            }
            WriteChoice::PutConfig { config, value } => {
                Write::Put(Key::Config(ConfigId(*config)), Value::Config(*value))
            }
            WriteChoice::Delete(key) => Write::Delete(key.resolve(reference)),
            WriteChoice::Append { tenant, secret, lifecycle, skip } => {
                let last = appended_versions
                    .entry((*tenant, *secret))
                    .or_insert_with(|| reference.last_appended(TenantId(*tenant), SecretId(*secret)));
                *last += 1 + skip;
                Write::Append(Mutation { secret: SecretId(*secret), record: record(*tenant, *last, *lifecycle) })
            }
            WriteChoice::Outbox { tenant, secret, version, lifecycle } => {
                // Mostly one row per secret version, as callers write; every
                // fourth repeat is kept so the engine's refusal is exercised.
                let mut version = *version;
                while !outbox_rows.insert((*tenant, *secret, version)) && !outbox_rows.len().is_multiple_of(4) {
                    version += 1;
                }
                Write::Outbox(Mutation { secret: SecretId(*secret), record: record(*tenant, version, *lifecycle) })
            }
            WriteChoice::Malformed(write) => write.clone(),
        })
        .collect();
    Transaction { reads, writes }
}

/// One step of a generated run.
#[derive(Clone, Debug)]
enum Step {
    Commit {
        reads: Vec<(KeyChoice, VersionChoice)>,
        writes: Vec<WriteChoice>,
    },
    Read(Vec<KeyChoice>),
    /// `after` names a key of the scanned table, or (`Some` table) of any table.
    Scan {
        table: Table,
        after: Option<(Option<Table>, u32)>,
        limit: usize,
    },
    ReadOutbox {
        tenant: u32,
        limit: usize,
    },
    Poll {
        cursors: BTreeMap<u32, u64>,
        limit: usize,
    },
}

fn table() -> impl Strategy<Value = Table> {
    proptest::sample::select(TABLES.to_vec())
}

fn key_choice() -> impl Strategy<Value = KeyChoice> {
    (table(), 0..8u32).prop_map(|(table, index)| KeyChoice { table, index })
}

fn writable_key_choice() -> impl Strategy<Value = KeyChoice> {
    let tables = vec![
        Table::Vaults,
        Table::Secrets,
        Table::Secrets,
        Table::Tokens,
        Table::Outbox,
        Table::Bookmarks,
        Table::Config,
    ];
    (proptest::sample::select(tables), 0..8u32).prop_map(|(table, index)| KeyChoice { table, index })
}

fn version_choice() -> impl Strategy<Value = VersionChoice> {
    prop_oneof![
        6 => Just(VersionChoice::Current),
        2 => any::<usize>().prop_map(VersionChoice::Earlier),
        1 => (0..4u8).prop_map(VersionChoice::Stale),
    ]
}

fn lifecycle() -> impl Strategy<Value = Lifecycle> {
    proptest::sample::select(vec![
        Lifecycle::Creating,
        Lifecycle::Active,
        Lifecycle::PendingDeletion,
        Lifecycle::Deleted,
    ])
}

fn malformed_write() -> impl Strategy<Value = Write> {
    (0..TENANTS, 0..SECRETS).prop_flat_map(|(tenant, secret)| {
        let head = Key::LogHead(TenantId(tenant));
        let outbox = Key::Outbox(OutboxKey::first_of(TenantId(tenant)));
        let mutation = Mutation { secret: SecretId(secret), record: record(tenant, 1, Lifecycle::Active) };
        let deleted_with_content =
            SecretRecord { content: Some(Content::new(b"kept")), ..record(tenant, 2, Lifecycle::Deleted) };
        let live_without_content = SecretRecord { content: None, ..record(tenant, 2, Lifecycle::Creating) };
        let without_version = record(tenant, 0, Lifecycle::Active);
        let bad = |record: &SecretRecord| Mutation { secret: SecretId(secret), record: record.clone() };
        proptest::sample::select(vec![
            Write::Put(head, Value::LogHead(Seq(1))),
            Write::Delete(head),
            Write::Put(outbox, Value::Outbox(mutation)),
            Write::Put(Key::Secret(SecretId(secret)), Value::Bookmark(1)),
            Write::Put(Key::Vault(VaultId(secret)), Value::Secret(record(tenant, 1, Lifecycle::Deleted))),
            Write::Put(Key::Config(ConfigId(secret)), Value::LogHead(Seq(1))),
            Write::Put(Key::Secret(SecretId(secret)), Value::Secret(deleted_with_content.clone())),
            Write::Append(bad(&live_without_content)),
            Write::Outbox(bad(&without_version)),
            Write::Append(bad(&deleted_with_content)),
        ])
    })
}

fn write_choice() -> impl Strategy<Value = WriteChoice> {
    prop_oneof![
        3 => (0..SECRETS, 0..TENANTS, 1..5u64, lifecycle())
            .prop_map(|(secret, tenant, version, lifecycle)| WriteChoice::PutSecret { secret, tenant, version, lifecycle }),
        1 => (0..VAULTS, 0..TENANTS, any::<bool>())
            .prop_map(|(vault, tenant, deleted)| WriteChoice::PutVault { vault, tenant, deleted }),
        1 => (0..SMALL_TABLE_KEYS, 0..SECRETS).prop_map(|(token, secret)| WriteChoice::PutToken { token, secret }),
        1 => (0..SMALL_TABLE_KEYS, 0..100u64)
            .prop_map(|(bookmark, position)| WriteChoice::PutBookmark { bookmark, position }),
        1 => (0..SMALL_TABLE_KEYS, 0..10u64).prop_map(|(config, value)| WriteChoice::PutConfig { config, value }),
        3 => writable_key_choice().prop_map(WriteChoice::Delete),
        4 => (0..TENANTS, 0..SECRETS, lifecycle(), 0..2u64)
            .prop_map(|(tenant, secret, lifecycle, skip)| WriteChoice::Append { tenant, secret, lifecycle, skip }),
        2 => (0..TENANTS, 0..SECRETS, 1..4u64, lifecycle())
            .prop_map(|(tenant, secret, version, lifecycle)| WriteChoice::Outbox { tenant, secret, version, lifecycle }),
        1 => malformed_write().prop_map(WriteChoice::Malformed),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (vec((key_choice(), version_choice()), 0..4), vec(write_choice(), 0..5))
            .prop_map(|(reads, writes)| Step::Commit { reads, writes }),
        1 => vec(key_choice(), 1..4).prop_map(Step::Read),
        1 => (table(), proptest::option::of((proptest::option::weighted(0.25, table()), 0..8u32)), 0..5usize)
            .prop_map(|(table, after, limit)| Step::Scan { table, after, limit }),
        1 => (0..TENANTS, 0..4usize).prop_map(|(tenant, limit)| Step::ReadOutbox { tenant, limit }),
        1 => (btree_map(0..TENANTS, 0..6u64, 0..3), 0..4usize).prop_map(|(cursors, limit)| Step::Poll { cursors, limit }),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    vec(step(), 1..=STEPS_MAX)
}

/// Runs one step against both; returns the request and the two replies.
fn run_step(store: &mut Store, reference: &mut Reference, step: &Step) -> (StoreRequest, StoreReply, StoreReply) {
    let (request, expected) = match step {
        Step::Commit { reads, writes } => {
            let transaction = build_transaction(reference, reads, writes);
            let expected = StoreReply::Commit(reference.commit(&transaction));
            (StoreRequest::Commit(transaction), expected)
        }
        Step::Read(keys) => {
            let keys: Vec<Key> = keys.iter().map(|key| key.resolve(reference)).collect();
            let expected = StoreReply::Read(keys.iter().map(|key| reference.read(key)).collect());
            (StoreRequest::Read { keys }, expected)
        }
        Step::Scan { table, after, limit } => {
            let after =
                after.map(|(other, index)| KeyChoice { table: other.unwrap_or(*table), index }.resolve(reference));
            let expected = StoreReply::Scan(reference.scan(*table, after, *limit));
            (StoreRequest::Scan { table: *table, after, limit: *limit }, expected)
        }
        Step::ReadOutbox { tenant, limit } => {
            let tenant = TenantId(*tenant);
            let head = reference.read(&Key::LogHead(tenant));
            let expected = StoreReply::Outbox { head, rows: reference.outbox(tenant, *limit) };
            (StoreRequest::ReadOutbox { tenant, limit: *limit }, expected)
        }
        Step::Poll { cursors, limit } => {
            let cursors: Vec<(TenantId, Seq)> =
                cursors.iter().map(|(tenant, seq)| (TenantId(*tenant), Seq(*seq))).collect();
            let expected = StoreReply::Poll(reference.poll_all(&cursors, *limit));
            (StoreRequest::Poll { cursors, limit_per_partition: *limit }, expected)
        }
    };
    let actual = store.on_request(request.clone());
    (request, actual, expected)
}

/// Asserts that `store` holds exactly what `reference` holds.
fn assert_same_state(store: &Store, reference: &Reference) -> Result<(), TestCaseError> {
    prop_assert_eq!(store.last_commit(), CommitSeq(reference.last_commit));
    for table in TABLES {
        let actual = store.scan(table, None, SCAN_ALL_ROWS);
        prop_assert_eq!(actual, reference.scan(table, None, SCAN_ALL_ROWS), "table {:?}", table);
    }
    let partitions: Vec<TenantId> = store.partitions().collect();
    prop_assert_eq!(&partitions, &reference.partitions.keys().copied().collect::<Vec<_>>());
    for tenant in partitions {
        prop_assert_eq!(store.poll(tenant, Seq::ZERO, usize::MAX), &reference.partitions[&tenant][..]);
        prop_assert_eq!(store.head(tenant), Seq(reference.partitions[&tenant].len() as u64));
    }
    Ok(())
}

fn run(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut store = Store::new();
    let mut reference = Reference::default();
    for (index, step) in steps.iter().enumerate() {
        let (request, actual, expected) = run_step(&mut store, &mut reference, step);
        prop_assert_eq!(actual, expected, "step {} {:?}", index, request);
        store.check_invariants();
        assert_same_state(&store, &reference)?;
    }
    Ok(())
}

proptest! {
    #[test]
    fn store_agrees_with_the_serial_reference(steps in steps()) {
        run(&steps)?;
    }
}

/// The outcomes a generated run reaches, to show the generator is not vacuous.
#[derive(Debug, Default)]
struct Reached {
    committed: usize,
    appended: usize,
    conflicts: usize,
    conflicts_on_log_heads: usize,
    conflicts_on_absent_keys: usize,
    invalid: usize,
    deletes_applied: usize,
}

#[test]
fn generated_runs_reach_every_outcome() {
    let mut runner = TestRunner::deterministic();
    let mut reached = Reached::default();
    for _ in 0..64 {
        let steps = steps().new_tree(&mut runner).expect("the strategy generates").current();
        let mut store = Store::new();
        let mut reference = Reference::default();
        for step in &steps {
            let (request, actual, expected) = run_step(&mut store, &mut reference, step);
            assert_eq!(actual, expected);
            let (StoreRequest::Commit(transaction), StoreReply::Commit(outcome)) = (request, actual) else {
                continue;
            };
            match outcome {
                CommitOutcome::Committed { appended, .. } => {
                    reached.committed += 1;
                    reached.appended += appended.len();
                    let deletes = transaction.writes.iter().filter(|write| matches!(write, Write::Delete(_))).count();
                    reached.deletes_applied += deletes;
                }
                CommitOutcome::Conflict { key } => {
                    reached.conflicts += 1;
                    reached.conflicts_on_log_heads += usize::from(key.table() == Table::LogHeads);
                    reached.conflicts_on_absent_keys += usize::from(store.version(&key) == CommitSeq(0));
                }
                CommitOutcome::Invalid(_) => reached.invalid += 1,
            }
        }
    }
    let counts = [
        reached.committed,
        reached.appended,
        reached.conflicts,
        reached.conflicts_on_log_heads,
        reached.conflicts_on_absent_keys,
        reached.invalid,
        reached.deletes_applied,
    ];
    assert!(counts.iter().all(|count| *count >= 5), "some outcome is rarely generated: {reached:?}");
    assert!(reached.committed > reached.conflicts + reached.invalid, "most transactions should commit: {reached:?}");
}
