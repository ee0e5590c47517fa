use super::*;

use crate::types::{Content, Lifecycle};

const TENANT: TenantId = TenantId(1);
const OTHER_TENANT: TenantId = TenantId(2);

fn record(tenant: TenantId, version: u64) -> SecretRecord {
    SecretRecord {
        tenant,
        vault: VaultId(1),
        version: Version(version),
        lifecycle: Lifecycle::Active,
        content: Some(Content::new(format!("content {version}").as_bytes())),
    }
}

fn mutation(tenant: TenantId, secret: u32, version: u64) -> Mutation {
    Mutation { secret: SecretId(secret), record: record(tenant, version) }
}

fn put_secret(secret: u32, version: u64) -> Write {
    Write::Put(Key::Secret(SecretId(secret)), Value::Secret(record(TENANT, version)))
}

fn transaction(reads: Vec<(Key, CommitSeq)>, writes: Vec<Write>) -> Transaction {
    Transaction { reads, writes }
}

/// Commits `transaction` and returns its commit and appends, failing the test otherwise.
fn commit_ok(store: &mut Store, transaction: Transaction) -> (CommitSeq, Vec<(TenantId, Seq)>) {
    match store.on_request(StoreRequest::Commit(transaction)) {
        StoreReply::Commit(CommitOutcome::Committed { commit, appended }) => {
            store.check_invariants();
            (commit, appended)
        }
        other => panic!("expected a commit, got {other:?}"),
    }
}

fn seqs(events: &[LogEvent]) -> Vec<(TenantId, u64)> {
    events.iter().map(|event| (event.tenant(), event.seq.0)).collect()
}

#[test]
fn commit_returns_increasing_commit_seq() {
    let mut store = Store::new();
    assert_eq!(store.last_commit(), CommitSeq(0));
    for expected in 1..=3 {
        let (commit, appended) = commit_ok(&mut store, transaction(vec![], vec![put_secret(expected as u32, 1)]));
        assert_eq!(commit, CommitSeq(expected));
        assert!(appended.is_empty(), "no append was asked for");
        assert_eq!(store.last_commit(), commit);
        assert_eq!(store.version(&Key::Secret(SecretId(expected as u32))), commit, "a write carries its commit");
    }
    // An empty transaction still commits and takes the next number.
    let (commit, _) = commit_ok(&mut store, Transaction::default());
    assert_eq!(commit, CommitSeq(4));
    // Earlier writes keep the version of the commit that wrote them.
    assert_eq!(store.version(&Key::Secret(SecretId(1))), CommitSeq(1));
}

#[test]
fn conflict_names_the_first_changed_key_and_writes_nothing() {
    let mut store = Store::new();
    let a = Key::Secret(SecretId(1));
    let b = Key::Secret(SecretId(2));
    let c = Key::Vault(VaultId(3));
    commit_ok(&mut store, transaction(vec![], vec![put_secret(1, 1), put_secret(2, 1)]));
    commit_ok(&mut store, transaction(vec![], vec![put_secret(2, 2)]));
    assert_eq!(store.version(&b), CommitSeq(2));
    let before = store.clone();

    // `a` is current; `b` and `c` are stale; `b` comes first in read order.
    let stale = transaction(
        vec![(a, CommitSeq(1)), (b, CommitSeq(1)), (c, CommitSeq(7))],
        vec![put_secret(9, 1), Write::Append(mutation(TENANT, 9, 1)), Write::Outbox(mutation(TENANT, 9, 1))],
    );
    assert_eq!(store.commit(&stale), CommitOutcome::Conflict { key: b });
    assert_eq!(store, before, "a conflicting commit writes nothing");
    assert_eq!(store.last_commit(), CommitSeq(2), "a conflict takes no commit number");
    assert_eq!(store.head(TENANT), Seq::ZERO);

    // Reversing the read order names the other stale key.
    let reversed = transaction(vec![(c, CommitSeq(7)), (b, CommitSeq(1))], vec![]);
    assert_eq!(store.commit(&reversed), CommitOutcome::Conflict { key: c });

    // Reading the current versions commits.
    let current = transaction(vec![(a, CommitSeq(1)), (b, CommitSeq(2)), (c, CommitSeq(0))], vec![put_secret(9, 1)]);
    assert_eq!(store.commit(&current), CommitOutcome::Committed { commit: CommitSeq(3), appended: vec![] });
}

#[test]
fn deleted_key_reads_as_absent_and_a_reader_that_saw_it_conflicts() {
    let mut store = Store::new();
    let key = Key::Secret(SecretId(4));
    let absent_reader =
        transaction(vec![(key, CommitSeq(0))], vec![Write::Put(Key::Config(ConfigId(0)), Value::Config(1))]);

    let (created, _) = commit_ok(&mut store, transaction(vec![(key, CommitSeq(0))], vec![put_secret(4, 1)]));
    let present = store.read(&key);
    assert_eq!(present.version, created);
    assert_eq!(present.value, Some(Value::Secret(record(TENANT, 1))));
    assert_eq!(store.commit(&absent_reader), CommitOutcome::Conflict { key }, "it is no longer absent");

    let (deleted, _) = commit_ok(&mut store, transaction(vec![(key, created)], vec![Write::Delete(key)]));
    assert_eq!(deleted, CommitSeq(2));
    assert_eq!(store.read(&key), ReadEntry { key, version: CommitSeq(0), value: None });

    // A reader that saw the key present conflicts, on that key.
    let present_reader = transaction(vec![(key, created)], vec![put_secret(4, 2)]);
    assert_eq!(store.commit(&present_reader), CommitOutcome::Conflict { key });
    assert_eq!(store.read(&key).value, None, "the conflicting write was not applied");

    // A reader that saw it absent before the create sees it absent again.
    assert!(matches!(store.commit(&absent_reader), CommitOutcome::Committed { commit: CommitSeq(3), .. }));

    // Deleting an absent key is a no-op write that still commits.
    let (commit, _) = commit_ok(&mut store, transaction(vec![], vec![Write::Delete(Key::Vault(VaultId(8)))]));
    assert_eq!(commit, CommitSeq(4));
    assert_eq!(store.version(&Key::Vault(VaultId(8))), CommitSeq(0));
}

#[test]
fn append_assigns_head_plus_one_and_bumps_the_head_version() {
    let mut store = Store::new();
    let head_key = Key::LogHead(TENANT);
    assert_eq!(store.read(&head_key), ReadEntry { key: head_key, version: CommitSeq(0), value: None });

    let writes = vec![
        Write::Append(mutation(TENANT, 1, 1)),
        Write::Append(mutation(OTHER_TENANT, 1, 1)),
        Write::Append(mutation(TENANT, 2, 1)),
    ];
    let (first, appended) = commit_ok(&mut store, transaction(vec![(head_key, CommitSeq(0))], writes));
    assert_eq!(appended, vec![(TENANT, Seq(1)), (OTHER_TENANT, Seq(1)), (TENANT, Seq(2))]);
    assert_eq!(store.read(&head_key), ReadEntry { key: head_key, version: first, value: Some(Value::LogHead(Seq(2))) });
    assert_eq!(store.head(TENANT), Seq(2));
    assert_eq!(store.head(OTHER_TENANT), Seq(1));
    assert_eq!(store.partitions().collect::<Vec<_>>(), vec![TENANT, OTHER_TENANT]);

    // An unrelated commit leaves the head version alone.
    commit_ok(&mut store, transaction(vec![], vec![put_secret(5, 1)]));
    assert_eq!(store.version(&head_key), first);

    // Two writers read the same head version: the first wins, the second
    // conflicts on the head key.
    let writer = |secret: u32| {
        transaction(vec![(head_key, first)], vec![Write::Append(mutation(TENANT, secret, 2)), put_secret(secret, 2)])
    };
    let (third, appended) = commit_ok(&mut store, writer(1));
    assert_eq!(appended, vec![(TENANT, Seq(3))]);
    assert_eq!(store.version(&head_key), third);
    assert_eq!(store.commit(&writer(2)), CommitOutcome::Conflict { key: head_key });
    assert_eq!(store.head(TENANT), Seq(3));

    let events = store.poll(TENANT, Seq::ZERO, 10);
    let expected: Vec<_> = [(1, 1, first), (2, 2, first), (3, 1, third)]
        .into_iter()
        .map(|(seq, secret, commit)| (Seq(seq), SecretId(secret), commit))
        .collect();
    let actual: Vec<_> = events.iter().map(|event| (event.seq, event.mutation.secret, event.commit)).collect();
    assert_eq!(actual, expected);
}

#[test]
fn outbox_rows_are_keyed_by_commit_and_scanned_in_commit_order() {
    let mut store = Store::new();
    // No reads: outbox writers never contend, even for the same secret and version.
    let (first, _) = commit_ok(&mut store, transaction(vec![], vec![Write::Outbox(mutation(TENANT, 5, 1))]));
    let (second, _) = commit_ok(&mut store, transaction(vec![], vec![Write::Outbox(mutation(OTHER_TENANT, 1, 1))]));
    let (third, _) = commit_ok(&mut store, transaction(vec![], vec![Write::Outbox(mutation(TENANT, 2, 1))]));
    let (fourth, _) = commit_ok(&mut store, transaction(vec![], vec![Write::Outbox(mutation(TENANT, 5, 1))]));
    assert_eq!((first, second, third, fourth), (CommitSeq(1), CommitSeq(2), CommitSeq(3), CommitSeq(4)));
    assert_eq!(store.head(TENANT), Seq::ZERO, "an outbox row is not a log event");

    let rows = store.scan_outbox(TENANT, 10);
    let keys: Vec<_> = rows.iter().map(|row| row.key).collect();
    let outbox_key = |commit, secret| {
        Key::Outbox(OutboxKey { tenant: TENANT, commit, secret: SecretId(secret), version: Version(1) })
    };
    // Commit order, not secret order: secret 5 (commit 1) before secret 2 (commit 3).
    assert_eq!(keys, vec![outbox_key(first, 5), outbox_key(third, 2), outbox_key(fourth, 5)]);
    assert_eq!(rows[1].version, third, "a row's version is the commit that wrote it");
    assert_eq!(rows[1].value, Some(Value::Outbox(mutation(TENANT, 2, 1))));
    assert_eq!(store.scan_outbox(TENANT, 2).len(), 2, "limit is honoured");
    assert_eq!(store.scan_outbox(OTHER_TENANT, 10).len(), 1, "partitions do not mix");
    assert!(store.scan_outbox(TenantId(9), 10).is_empty());

    // A publisher deletes a row it moved into the log.
    let delete = transaction(vec![(outbox_key(first, 5), first)], vec![Write::Delete(outbox_key(first, 5))]);
    commit_ok(&mut store, delete);
    let keys: Vec<_> = store.scan_outbox(TENANT, 10).into_iter().map(|row| row.key).collect();
    assert_eq!(keys, vec![outbox_key(third, 2), outbox_key(fourth, 5)]);
}

#[test]
fn malformed_writes_are_invalid_and_write_nothing() {
    let mut store = Store::new();
    commit_ok(&mut store, transaction(vec![], vec![Write::Append(mutation(TENANT, 1, 1))]));
    let before = store.clone();
    let head_key = Key::LogHead(TENANT);
    let outbox_key = Key::Outbox(OutboxKey::first_of(TENANT));
    let secret_key = Key::Secret(SecretId(1));
    let cases = [
        (Write::Put(head_key, Value::LogHead(Seq(7))), InvalidWrite::ReservedKey(head_key)),
        (Write::Delete(head_key), InvalidWrite::ReservedKey(head_key)),
        (Write::Put(outbox_key, Value::Outbox(mutation(TENANT, 1, 1))), InvalidWrite::ReservedKey(outbox_key)),
        (Write::Put(secret_key, Value::Bookmark(3)), InvalidWrite::ValueTableMismatch(secret_key)),
        (
            Write::Put(Key::Bookmark(BookmarkId(1)), Value::Secret(record(TENANT, 1))),
            InvalidWrite::ValueTableMismatch(Key::Bookmark(BookmarkId(1))),
        ),
    ];
    for (bad, expected) in cases {
        // The bad write comes after good ones: nothing of the transaction is applied.
        let writes = vec![put_secret(2, 1), Write::Append(mutation(TENANT, 3, 1)), bad.clone()];
        let outcome = store.commit(&transaction(vec![], writes));
        assert_eq!(outcome, CommitOutcome::Invalid(expected), "for {bad:?}");
        assert_eq!(store, before, "an invalid commit writes nothing ({bad:?})");
    }
    // The first malformed write is named, and shape is judged before reads.
    let two_bad = vec![Write::Delete(head_key), Write::Put(secret_key, Value::Config(1))];
    let stale_reads = vec![(secret_key, CommitSeq(99))];
    let outcome = store.commit(&transaction(stale_reads, two_bad));
    assert_eq!(outcome, CommitOutcome::Invalid(InvalidWrite::ReservedKey(head_key)));
    assert_eq!(store.last_commit(), CommitSeq(1));
}

fn store_with_secrets(secrets: u32) -> Store {
    let mut store = Store::new();
    let mut writes: Vec<Write> = (0..secrets).map(|secret| put_secret(secret, 1)).collect();
    // Neighbours on both sides of the secrets table.
    writes.push(Write::Put(Key::Vault(VaultId(1)), Value::Vault(VaultRecord { tenant: TENANT, deleted: false })));
    writes.push(Write::Put(
        Key::Token(IdempotencyToken(0)),
        Value::Token(TokenRecord { secret: SecretId(0), version: Version(1) }),
    ));
    writes.push(Write::Put(Key::Bookmark(BookmarkId(0)), Value::Bookmark(0)));
    commit_ok(&mut store, transaction(vec![], writes));
    store
}

/// Pages through `table` with `limit`, returning the keys of each page.
fn scan_pages(store: &mut Store, table: Table, limit: usize) -> Vec<Vec<Key>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let StoreReply::Scan(page) = store.on_request(StoreRequest::Scan { table, after, limit }) else {
            panic!("a scan answers with a page");
        };
        assert!(page.rows.len() <= limit);
        assert!(page.rows.iter().all(|row| row.key.table() == table && row.value.is_some()));
        pages.push(page.rows.iter().map(|row| row.key).collect());
        assert!(pages.len() <= 100, "scan does not terminate");
        match page.resume_after {
            Some(resume) => {
                assert_eq!(Some(resume), page.rows.last().map(|row| row.key), "resume at the last row");
                after = Some(resume);
            }
            None => return pages,
        }
    }
}

#[test]
fn scan_pages_through_a_table_exactly_once() {
    let mut store = store_with_secrets(7);
    let secret = |id| Key::Secret(SecretId(id));
    let pages = scan_pages(&mut store, Table::Secrets, 3);
    assert_eq!(
        pages,
        vec![vec![secret(0), secret(1), secret(2)], vec![secret(3), secret(4), secret(5)], vec![secret(6)],]
    );
    // A table that is an exact multiple of the page ends without an empty page.
    let mut store = store_with_secrets(6);
    let pages = scan_pages(&mut store, Table::Secrets, 3);
    assert_eq!(pages.len(), 2);
    assert_eq!(pages.concat(), (0..6).map(secret).collect::<Vec<_>>());
    // One row per page still visits every row once, in order.
    let pages = scan_pages(&mut store, Table::Secrets, 1);
    assert_eq!(pages.concat(), (0..6).map(secret).collect::<Vec<_>>());
}

#[test]
fn scan_stops_at_the_table_boundary() {
    let store = store_with_secrets(3);
    let vaults = store.scan(Table::Vaults, None, 10);
    assert_eq!(vaults.rows.iter().map(|row| row.key).collect::<Vec<_>>(), vec![Key::Vault(VaultId(1))]);
    assert_eq!(vaults.resume_after, None);
    let empty = store.scan(Table::Config, None, 10);
    assert_eq!(empty, ScanPage { rows: vec![], resume_after: None });
    let page = store.scan(Table::Secrets, Some(Key::Secret(SecretId(2))), 10);
    assert_eq!(page, ScanPage { rows: vec![], resume_after: None }, "nothing after the last secret");
    let tokens = store.scan(Table::Tokens, None, 1);
    assert_eq!(tokens.rows.len(), 1);
    assert_eq!(tokens.resume_after, None, "the next key is a bookmark, not a token");
}

#[test]
fn scan_is_total_on_a_zero_limit_and_a_resume_key_of_another_table() {
    // Postmortem: `scan` asserted `limit > 0` and a resume key of the scanned
    // table, so a peer's malformed `StoreRequest::Scan` panicked the store.
    let mut store = store_with_secrets(3);
    let secret = |id| Key::Secret(SecretId(id));
    let scan =
        |store: &mut Store, table, after, limit| match store.on_request(StoreRequest::Scan { table, after, limit }) {
            StoreReply::Scan(page) => page,
            other => panic!("a scan answers with a page, not {other:?}"),
        };
    // A zero limit reads nothing and leaves the caller where it was.
    assert_eq!(
        scan(&mut store, Table::Secrets, Some(secret(0)), 0),
        ScanPage { rows: vec![], resume_after: Some(secret(0)) }
    );
    assert_eq!(scan(&mut store, Table::Secrets, None, 0), ScanPage { rows: vec![], resume_after: None });
    // A resume key of an earlier table scans from the start, of a later one finds nothing.
    let from_vault = scan(&mut store, Table::Secrets, Some(Key::Vault(VaultId(9))), 2);
    assert_eq!(from_vault.rows.iter().map(|row| row.key).collect::<Vec<_>>(), vec![secret(0), secret(1)]);
    assert_eq!(from_vault.resume_after, Some(secret(1)));
    let from_token = scan(&mut store, Table::Secrets, Some(Key::Token(IdempotencyToken(0))), 2);
    assert_eq!(from_token, ScanPage { rows: vec![], resume_after: None });
    let from_secret = scan(&mut store, Table::Vaults, Some(secret(0)), 2);
    assert_eq!(from_secret, ScanPage { rows: vec![], resume_after: None });
    store.check_invariants();
}

fn store_with_log() -> Store {
    let mut store = Store::new();
    for secret in 1..=5 {
        commit_ok(&mut store, transaction(vec![], vec![Write::Append(mutation(TENANT, secret, 1))]));
    }
    for secret in 1..=2 {
        commit_ok(&mut store, transaction(vec![], vec![Write::Append(mutation(OTHER_TENANT, secret, 1))]));
    }
    store
}

#[test]
fn poll_reads_after_the_cursor_up_to_the_limit() {
    let store = store_with_log();
    assert_eq!(seqs(store.poll(TENANT, Seq::ZERO, 2)), vec![(TENANT, 1), (TENANT, 2)]);
    assert_eq!(seqs(store.poll(TENANT, Seq(2), 10)), vec![(TENANT, 3), (TENANT, 4), (TENANT, 5)]);
    assert!(store.poll(TENANT, Seq(5), 10).is_empty(), "nothing after the head");
    assert!(store.poll(TENANT, Seq(9), 10).is_empty(), "a cursor past the head reads nothing");
    assert!(store.poll(TENANT, Seq(1), 0).is_empty(), "limit zero reads nothing");
    assert!(store.poll(TenantId(9), Seq::ZERO, 10).is_empty(), "no such partition");
    assert_eq!(store.poll(TENANT, Seq(3), 1)[0].mutation.secret, SecretId(4));
}

#[test]
fn poll_all_uses_each_cursor_and_starts_unlisted_partitions_at_zero() {
    let mut store = store_with_log();
    let events = store.poll_all(&[(TENANT, Seq(3))], 1);
    assert_eq!(seqs(&events), vec![(TENANT, 4), (OTHER_TENANT, 1)]);
    let events = store.poll_all(&[(OTHER_TENANT, Seq(1)), (TenantId(9), Seq(4))], 10);
    let mut expected: Vec<_> = (1..=5).map(|seq| (TENANT, seq)).collect();
    expected.push((OTHER_TENANT, 2));
    assert_eq!(seqs(&events), expected, "(partition, seq) order; unknown cursors ignored");
    let request =
        StoreRequest::Poll { cursors: vec![(TENANT, Seq(5)), (OTHER_TENANT, Seq(2))], limit_per_partition: 10 };
    assert_eq!(store.on_request(request), StoreReply::Poll(vec![]), "every cursor at its head");
    let request = StoreRequest::Poll { cursors: vec![(TENANT, Seq(4))], limit_per_partition: 2 };
    let StoreReply::Poll(events) = store.on_request(request) else { panic!("a poll answers with events") };
    assert_eq!(seqs(&events), vec![(TENANT, 5), (OTHER_TENANT, 1), (OTHER_TENANT, 2)]);
}

#[test]
fn read_outbox_returns_the_head_and_the_first_rows() {
    let mut store = Store::new();
    let request = StoreRequest::ReadOutbox { tenant: TENANT, limit: 2 };
    let empty_head = ReadEntry { key: Key::LogHead(TENANT), version: CommitSeq(0), value: None };
    assert_eq!(store.on_request(request.clone()), StoreReply::Outbox { head: empty_head, rows: vec![] });

    for secret in 1..=3 {
        commit_ok(&mut store, transaction(vec![], vec![Write::Outbox(mutation(TENANT, secret, 1))]));
    }
    let (appended_at, _) = commit_ok(&mut store, transaction(vec![], vec![Write::Append(mutation(TENANT, 1, 1))]));
    let StoreReply::Outbox { head, rows } = store.on_request(request) else { panic!("ReadOutbox answers Outbox") };
    assert_eq!(
        head,
        ReadEntry { key: Key::LogHead(TENANT), version: appended_at, value: Some(Value::LogHead(Seq(1))) }
    );
    assert_eq!(rows, store.scan_outbox(TENANT, 2));
    let secrets: Vec<_> = rows
        .iter()
        .map(|row| match &row.value {
            Some(Value::Outbox(mutation)) => mutation.secret,
            other => panic!("an outbox row holds a mutation: {other:?}"),
        })
        .collect();
    assert_eq!(secrets, vec![SecretId(1), SecretId(2)]);
}

#[test]
fn read_request_answers_in_request_order() {
    let mut store = store_with_secrets(2);
    let keys = vec![Key::Secret(SecretId(1)), Key::Config(ConfigId(0)), Key::Secret(SecretId(0))];
    let StoreReply::Read(entries) = store.on_request(StoreRequest::Read { keys: keys.clone() }) else {
        panic!("a read answers with entries")
    };
    assert_eq!(entries.iter().map(|entry| entry.key).collect::<Vec<_>>(), keys);
    assert_eq!(entries[0].value, Some(Value::Secret(record(TENANT, 1))));
    assert_eq!((entries[1].version, entries[1].value.clone()), (CommitSeq(0), None));
}

#[test]
fn committing_a_malformed_record_is_invalid_and_writes_nothing() {
    // Postmortem: a put, append or outbox row whose record had content while
    // deleted, no content while live, or version 0 reached `commit_apply`, whose
    // record check panicked the store on a peer's malformed transaction.
    let mut store = Store::new();
    commit_ok(&mut store, transaction(vec![], vec![put_secret(1, 1), Write::Append(mutation(TENANT, 1, 1))]));
    let before = store.clone();
    let deleted_with_content = SecretRecord { lifecycle: Lifecycle::Deleted, ..record(TENANT, 2) };
    let live_without_content = SecretRecord { content: None, ..record(TENANT, 2) };
    let without_version = SecretRecord { version: Version::ABSENT, ..record(TENANT, 2) };
    for bad in [deleted_with_content, live_without_content, without_version] {
        assert!(!bad.is_well_formed(), "{bad:?}");
        let secret = SecretId(7);
        let writes = [
            Write::Put(Key::Secret(secret), Value::Secret(bad.clone())),
            Write::Append(Mutation { secret, record: bad.clone() }),
            Write::Outbox(Mutation { secret, record: bad.clone() }),
        ];
        for write in writes {
            let good_first = vec![put_secret(2, 1), Write::Append(mutation(TENANT, 3, 1)), write.clone()];
            let outcome = store.on_request(StoreRequest::Commit(transaction(vec![], good_first)));
            let expected = StoreReply::Commit(CommitOutcome::Invalid(InvalidWrite::MalformedRecord(secret)));
            assert_eq!(outcome, expected, "for {write:?}");
            assert_eq!(store, before, "an invalid commit writes nothing ({write:?})");
        }
    }
    // A well-formed tombstone is fine.
    let tombstone = SecretRecord { lifecycle: Lifecycle::Deleted, content: None, ..record(TENANT, 2) };
    assert!(tombstone.is_well_formed());
    let writes = vec![
        Write::Put(Key::Secret(SecretId(1)), Value::Secret(tombstone.clone())),
        Write::Append(Mutation { secret: SecretId(1), record: tombstone }),
    ];
    commit_ok(&mut store, transaction(vec![], writes));
}

#[cfg(not(loom))]
mod shared {
    use super::*;

    fn shared_store(partition_events_max: usize) -> SharedStore {
        SharedStore::new(&SharedStoreConfig { tenants: vec![TENANT, OTHER_TENANT], partition_events_max })
    }

    fn append(store: &SharedStore, tenant: TenantId, secret: u32) -> CommitOutcome {
        let head = store.read(&[Key::LogHead(tenant)])[0].version;
        store.commit(&transaction(vec![(Key::LogHead(tenant), head)], vec![Write::Append(mutation(tenant, secret, 1))]))
    }

    #[test]
    fn commit_publishes_appends_to_pollers() {
        let store = shared_store(4);
        assert_eq!(store.head(TENANT), Seq::ZERO);
        assert!(store.poll(TENANT, Seq::ZERO, 10).is_empty());
        let outcome = append(&store, TENANT, 1);
        assert_eq!(outcome, CommitOutcome::Committed { commit: CommitSeq(1), appended: vec![(TENANT, Seq(1))] });
        let writes = vec![Write::Append(mutation(TENANT, 2, 1)), Write::Append(mutation(OTHER_TENANT, 2, 1))];
        let outcome = store.commit(&transaction(vec![], writes));
        assert_eq!(
            outcome,
            CommitOutcome::Committed { commit: CommitSeq(2), appended: vec![(TENANT, Seq(2)), (OTHER_TENANT, Seq(1))] }
        );
        assert_eq!(store.head(TENANT), Seq(2));
        assert_eq!(store.head(OTHER_TENANT), Seq(1));
        assert_eq!(store.head(TenantId(9)), Seq::ZERO, "unknown partitions are empty");
        assert!(store.poll(TenantId(9), Seq::ZERO, 10).is_empty());

        let published = store.poll(TENANT, Seq::ZERO, 10);
        let engine = store.with_engine(|engine| engine.poll(TENANT, Seq::ZERO, 10).to_vec());
        assert_eq!(published, engine, "the published log equals the engine's");
        assert_eq!(seqs(&store.poll(TENANT, Seq(1), 10)), vec![(TENANT, 2)]);
        assert_eq!(seqs(&store.poll(TENANT, Seq::ZERO, 1)), vec![(TENANT, 1)]);
        assert!(store.poll(TENANT, Seq(2), 10).is_empty());
        assert!(store.poll(TENANT, Seq(7), 10).is_empty(), "a cursor past the head reads nothing");
        store.with_engine(Store::check_invariants);
    }

    #[test]
    fn shared_commit_conflicts_like_the_engine() {
        let store = shared_store(4);
        let stale =
            transaction(vec![(Key::LogHead(TENANT), CommitSeq(0))], vec![Write::Append(mutation(TENANT, 2, 1))]);
        assert!(matches!(append(&store, TENANT, 1), CommitOutcome::Committed { .. }));
        assert_eq!(store.commit(&stale), CommitOutcome::Conflict { key: Key::LogHead(TENANT) });
        assert_eq!(store.head(TENANT), Seq(1), "a conflict publishes nothing");
        let entries = store.read(&[Key::LogHead(TENANT), Key::LogHead(OTHER_TENANT)]);
        assert_eq!(entries[0].value, Some(Value::LogHead(Seq(1))));
        assert_eq!(entries[1].value, None);
    }

    #[test]
    fn an_append_past_capacity_is_partition_full() {
        let store = shared_store(2);
        let three = (1..=3).map(|secret| Write::Append(mutation(TENANT, secret, 1))).collect();
        assert_eq!(
            store.commit(&transaction(vec![], three)),
            CommitOutcome::Invalid(InvalidWrite::PartitionFull(TENANT))
        );
        assert_eq!(store.with_engine(Store::last_commit), CommitSeq(0), "nothing was written");
        assert!(matches!(append(&store, TENANT, 1), CommitOutcome::Committed { .. }));
        assert!(matches!(append(&store, TENANT, 2), CommitOutcome::Committed { .. }));
        assert_eq!(append(&store, TENANT, 3), CommitOutcome::Invalid(InvalidWrite::PartitionFull(TENANT)));
        assert_eq!(store.head(TENANT), Seq(2));
        // Other partitions keep their own capacity.
        assert!(matches!(append(&store, OTHER_TENANT, 1), CommitOutcome::Committed { .. }));
        // Non-append writes are not limited by the log.
        let put = store.commit(&transaction(vec![], vec![put_secret(1, 1)]));
        assert!(matches!(put, CommitOutcome::Committed { .. }));
    }

    #[test]
    fn a_malformed_record_is_refused_and_publishes_nothing() {
        let store = shared_store(2);
        let bad = SecretRecord { content: None, ..record(TENANT, 1) };
        let writes = vec![Write::Append(Mutation { secret: SecretId(1), record: bad })];
        assert_eq!(
            store.commit(&transaction(vec![], writes)),
            CommitOutcome::Invalid(InvalidWrite::MalformedRecord(SecretId(1)))
        );
        assert_eq!(store.head(TENANT), Seq::ZERO);
        assert_eq!(store.with_engine(Store::last_commit), CommitSeq(0), "nothing was written");
        assert!(matches!(append(&store, TENANT, 1), CommitOutcome::Committed { .. }));
    }

    #[test]
    fn an_append_to_an_unconfigured_partition_is_refused() {
        let store = shared_store(2);
        let writes = vec![put_secret(1, 1), Write::Append(mutation(TenantId(3), 1, 1))];
        assert_eq!(
            store.commit(&transaction(vec![], writes)),
            CommitOutcome::Invalid(InvalidWrite::UnknownPartition(TenantId(3)))
        );
        assert_eq!(store.with_engine(|engine| engine.version(&Key::Secret(SecretId(1)))), CommitSeq(0));
        assert!(store.poll(TenantId(3), Seq::ZERO, 10).is_empty());
        // An outbox row for that tenant is fine: it is not a log write.
        let outbox = store.commit(&transaction(vec![], vec![Write::Outbox(mutation(TenantId(3), 1, 1))]));
        assert!(matches!(outbox, CommitOutcome::Committed { .. }));
    }
}

#[test]
fn two_outbox_rows_of_one_version_in_one_transaction_are_invalid() {
    let mut store = Store::new();
    let mutation = Mutation {
        secret: SecretId(4),
        record: SecretRecord {
            tenant: TenantId(1),
            vault: VaultId(1),
            version: Version(1),
            lifecycle: crate::types::Lifecycle::Creating,
            content: Some(crate::types::Content::new(b"x")),
        },
    };
    let transaction =
        Transaction { reads: Vec::new(), writes: vec![Write::Outbox(mutation.clone()), Write::Outbox(mutation)] };
    assert_eq!(
        store.commit(&transaction),
        CommitOutcome::Invalid(InvalidWrite::DuplicateOutboxRow(TenantId(1), SecretId(4), Version(1)))
    );
    assert_eq!(store.last_commit(), CommitSeq(0), "nothing was written");
}
