use super::*;
use crate::store::{CommitOutcome, InvalidWrite, Store, Transaction, Value, Write};
use crate::types::ShardRecord;

const BASE: ShardId = ShardId(0);
const V1: VaultId = VaultId(1);
const S1: SecretId = SecretId(1);

fn put(store: &mut Store, writes: Vec<(Key, Value)>) -> CommitSeq {
    let writes = writes.into_iter().map(|(key, value)| Write::Put(key, value)).collect();
    match store.commit(&Transaction { reads: Vec::new(), writes }) {
        CommitOutcome::Committed { commit, .. } => commit,
        other => panic!("expected a commit, got {other:?}"),
    }
}

fn shard_row(state: ShardState, vaults: u64) -> Value {
    Value::Shard(ShardRecord { state, vaults })
}

/// Applies every routing event of `store` past the table's cursor.
fn catch_up(table: &mut RouteTable, store: &Store) {
    for event in store.poll_routes(table.cursor(), usize::MAX) {
        table.apply(event);
    }
    table.check_invariants();
}

#[test]
fn the_store_logs_a_routing_row_in_the_commit_that_writes_it_and_never_a_load_change() {
    let mut store = Store::new();
    let registered = put(&mut store, vec![(Key::Shard(ShardId(1)), shard_row(ShardState::Provisioning, 0))]);
    let ready = put(&mut store, vec![(Key::Shard(ShardId(1)), shard_row(ShardState::Ready, 0))]);
    let placed = put(
        &mut store,
        vec![
            (Key::VaultRoute(V1), Value::VaultRoute(ShardId(1))),
            (Key::Shard(ShardId(1)), shard_row(ShardState::Ready, 1)),
            (Key::SecretRoute(S1), Value::SecretRoute(V1)),
        ],
    );
    let events = store.poll_routes(Seq::ZERO, usize::MAX).to_vec();
    let rows: Vec<(Seq, CommitSeq, RouteRow)> =
        events.iter().map(|event| (event.seq, event.commit, event.row)).collect();
    assert_eq!(
        rows,
        vec![
            (Seq(1), registered, RouteRow::Shard { shard: ShardId(1), state: ShardState::Provisioning }),
            (Seq(2), ready, RouteRow::Shard { shard: ShardId(1), state: ShardState::Ready }),
            (Seq(3), placed, RouteRow::Vault { vault: V1, shard: ShardId(1) }),
            (Seq(4), placed, RouteRow::Secret { secret: S1, vault: V1 }),
        ],
        "the load bump in the placing commit is not a routing change"
    );
    assert_eq!(store.routes_head(), Seq(4));
    assert_eq!(store.poll_routes(Seq(2), 1), &events[2..3]);
    assert_eq!(store.version(&Key::VaultRoute(V1)), placed, "the event's commit is the row's version");
    let delete = Transaction { reads: Vec::new(), writes: vec![Write::Delete(Key::VaultRoute(V1))] };
    assert_eq!(store.commit(&delete), CommitOutcome::Invalid(InvalidWrite::ReservedKey(Key::VaultRoute(V1))));
    store.check_invariants();
}

#[test]
fn a_table_fed_by_the_routing_partition_resolves_by_the_resource() {
    let mut store = Store::new();
    put(&mut store, vec![(Key::Shard(ShardId(2)), shard_row(ShardState::Ready, 0))]);
    put(&mut store, vec![(Key::VaultRoute(V1), Value::VaultRoute(ShardId(2)))]);
    put(&mut store, vec![(Key::SecretRoute(S1), Value::SecretRoute(V1))]);
    let mut table = RouteTable::new();
    assert_eq!(table.resolve(Resource::Secret(S1), BASE), Resolution::Missing(Key::SecretRoute(S1)));
    catch_up(&mut table, &store);
    let home = Resolution::Home { vault: V1, shard: ShardId(2) };
    assert_eq!(table.resolve(Resource::Secret(S1), BASE), home);
    assert_eq!(table.resolve(Resource::Vault(V1), BASE), home);
    assert_eq!((table.cursor(), table.applied_commit()), (Seq(3), store.last_commit()));
}

#[test]
fn apply_is_forward_only_and_moves_the_cursor_with_the_row() {
    let mut table = RouteTable::new();
    let row = |shard| RouteRow::Vault { vault: V1, shard: ShardId(shard) };
    let first = RouteEvent { seq: Seq(1), commit: CommitSeq(5), row: row(1) };
    assert_eq!(table.apply(&first), ApplyEffect::Applied);
    // A row learned at a newer version (a lookup) wins over an older log event.
    let learned =
        ReadEntry { key: Key::VaultRoute(V1), version: CommitSeq(9), value: Some(Value::VaultRoute(ShardId(3))) };
    assert_eq!(table.learn(&learned), Some(ApplyEffect::Applied));
    let older = RouteEvent { seq: Seq(2), commit: CommitSeq(7), row: row(2) };
    assert_eq!(table.apply(&older), ApplyEffect::Stale);
    assert_eq!(table.shard_of(V1), Some(ShardId(3)));
    assert_eq!((table.cursor(), table.applied_commit()), (Seq(2), CommitSeq(7)), "the cursor moved all the same");
    let same = RouteEvent { seq: Seq(3), commit: CommitSeq(9), row: row(3) };
    assert_eq!(table.apply(&same), ApplyEffect::Stale, "the learned row arriving through the log");
    table.check_invariants();
}

#[test]
fn learning_never_moves_the_cursor_and_an_absent_row_teaches_nothing() {
    let mut table = RouteTable::new();
    let absent = ReadEntry { key: Key::SecretRoute(S1), version: CommitSeq(0), value: None };
    assert_eq!(table.learn(&absent), None);
    let entry = ReadEntry { key: Key::SecretRoute(S1), version: CommitSeq(4), value: Some(Value::SecretRoute(V1)) };
    assert_eq!(table.learn(&entry), Some(ApplyEffect::Applied));
    assert_eq!(table.learn(&entry), Some(ApplyEffect::Stale));
    assert_eq!(table.vault_of(S1), Some(V1));
    assert_eq!((table.cursor(), table.applied_commit()), (Seq::ZERO, CommitSeq(0)));
    table.check_invariants();
}

#[test]
fn resolution_asks_for_each_missing_row_in_turn_and_the_own_shard_needs_no_registry_row() {
    let mut table = RouteTable::new();
    let target = Resource::Secret(S1);
    let learn = |table: &mut RouteTable, key: Key, value: Value| {
        table.learn(&ReadEntry { key, version: CommitSeq(1), value: Some(value) });
    };
    assert_eq!(table.resolve(target, BASE), Resolution::Missing(Key::SecretRoute(S1)));
    learn(&mut table, Key::SecretRoute(S1), Value::SecretRoute(V1));
    assert_eq!(table.resolve(target, BASE), Resolution::Missing(Key::VaultRoute(V1)));
    learn(&mut table, Key::VaultRoute(V1), Value::VaultRoute(ShardId(4)));
    assert_eq!(table.resolve(target, BASE), Resolution::Missing(Key::Shard(ShardId(4))));
    assert_eq!(table.resolve(target, ShardId(4)), Resolution::Home { vault: V1, shard: ShardId(4) });
    learn(&mut table, Key::Shard(ShardId(4)), shard_row(ShardState::Ready, 1));
    assert_eq!(table.resolve(target, BASE), Resolution::Home { vault: V1, shard: ShardId(4) });
    assert_eq!(table.shard_state(ShardId(4)), Some(ShardState::Ready));
}

#[test]
#[should_panic(expected = "routing events applied out of order")]
fn applying_past_a_gap_is_a_bug() {
    let mut table = RouteTable::new();
    table.apply(&RouteEvent { seq: Seq(2), commit: CommitSeq(1), row: RouteRow::Secret { secret: S1, vault: V1 } });
}
