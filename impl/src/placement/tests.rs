use proptest::prelude::*;

use super::*;
use crate::store::{CommitOutcome, IdempotencyToken, Store, StoreReply, StoreRequest};
use crate::types::{Content, TenantId, VaultRecord};

const V1: VaultId = VaultId(1);
const V2: VaultId = VaultId(2);
const S1: SecretId = SecretId(1);

fn create_vault(vault: VaultId) -> Operation {
    Operation::CreateVault { vault, tenant: TenantId(1) }
}

fn create_secret(secret: SecretId, vault: VaultId) -> Operation {
    Operation::CreateSecret { secret, vault, content: Content::new(b"x"), token: IdempotencyToken(secret.0.into()) }
}

fn committed(store: &mut Store, transaction: &Transaction) -> CommitSeq {
    match store.commit(transaction) {
        CommitOutcome::Committed { commit, .. } => commit,
        other => panic!("expected a commit, got {other:?}"),
    }
}

/// Registers `shard` in `state` with `vaults` placed, as the shard-addition operator would.
fn register(store: &mut Store, shard: u32, state: ShardState, vaults: u64) {
    let write = Write::Put(Key::Shard(ShardId(shard)), Value::Shard(ShardRecord { state, vaults }));
    committed(store, &Transaction { reads: Vec::new(), writes: vec![write] });
}

fn read(store: &mut Store, keys: Vec<Key>) -> Vec<ReadEntry> {
    match store.on_request(StoreRequest::Read { keys }) {
        StoreReply::Read(entries) => entries,
        other => panic!("a read answered with {other:?}"),
    }
}

/// What a worker's first read of a create would return: the vault, then the placement keys.
fn read_for(store: &mut Store, placer: &Placer, operation: &Operation, vault: VaultId) -> Vec<ReadEntry> {
    let mut keys = vec![Key::Vault(vault)];
    keys.extend(placer.keys_to_read(operation));
    read(store, keys)
}

/// The vault-creating transaction a worker would build: the vault row plus the placement.
fn vault_transaction(entries: &[ReadEntry], vault: VaultId, placement: Placement) -> (Transaction, ShardId) {
    let vault_entry = &entries[0];
    assert_eq!(vault_entry.key, Key::Vault(vault));
    let mut transaction = Transaction {
        reads: vec![(vault_entry.key, vault_entry.version)],
        writes: vec![Write::Put(Key::Vault(vault), Value::Vault(VaultRecord { tenant: TenantId(1), deleted: false }))],
    };
    let shard = placement.add_to(&mut transaction);
    (transaction, shard)
}

fn place_vault(store: &mut Store, placer: &Placer, vault: VaultId) -> Result<ShardId, PlacementError> {
    let operation = create_vault(vault);
    let entries = read_for(store, placer, &operation, vault);
    let placement = placer.place(&operation, &entries)?.expect("a vault create places");
    let (transaction, shard) = vault_transaction(&entries, vault, placement);
    committed(store, &transaction);
    Ok(shard)
}

fn load(store: &Store, shard: u32) -> u64 {
    match store.read(&Key::Shard(ShardId(shard))).value {
        Some(Value::Shard(record)) => record.vaults,
        other => panic!("shard {shard} row holds {other:?}"),
    }
}

#[test]
fn least_loaded_picks_the_ready_shard_with_fewest_vaults_and_the_lowest_id_on_a_tie() {
    let mut store = Store::new();
    register(&mut store, 0, ShardState::Ready, 5);
    register(&mut store, 1, ShardState::Ready, 2);
    register(&mut store, 2, ShardState::Ready, 2);
    let placer = Placer::new(PlacementPolicy::LeastLoaded, 4);
    assert_eq!(place_vault(&mut store, &placer, VaultId(10)), Ok(ShardId(1)), "tie 1/2 goes to the lower id");
    assert_eq!(place_vault(&mut store, &placer, VaultId(11)), Ok(ShardId(2)), "1 now has 3, 2 has 2");
    assert_eq!(place_vault(&mut store, &placer, VaultId(12)), Ok(ShardId(1)), "tie again at 3");
    assert_eq!((load(&store, 0), load(&store, 1), load(&store, 2)), (5, 4, 3));
}

#[test]
fn placement_never_picks_a_shard_that_is_not_ready() {
    let mut store = Store::new();
    register(&mut store, 0, ShardState::Ready, 100);
    register(&mut store, 1, ShardState::Provisioning, 0);
    let least = Placer::new(PlacementPolicy::LeastLoaded, 4);
    assert_eq!(place_vault(&mut store, &least, V1), Ok(ShardId(0)), "the empty shard is still provisioning");
    let fixed = Placer::new(PlacementPolicy::Fixed(ShardId(1)), 4);
    assert_eq!(place_vault(&mut store, &fixed, V2), Err(PlacementError::ShardNotReady(ShardId(1))));
    let unregistered = Placer::new(PlacementPolicy::Fixed(ShardId(3)), 4);
    assert_eq!(place_vault(&mut store, &unregistered, V2), Err(PlacementError::ShardNotReady(ShardId(3))));
    let mut empty = Store::new();
    register(&mut empty, 0, ShardState::Provisioning, 0);
    assert_eq!(place_vault(&mut empty, &least, V1), Err(PlacementError::NoReadyShard));
    assert_eq!(empty.read(&Key::VaultRoute(V1)).value, None, "a refused placement writes nothing");
}

#[test]
fn the_route_and_the_load_commit_with_the_vault_or_not_at_all() {
    let mut store = Store::new();
    register(&mut store, 0, ShardState::Ready, 0);
    register(&mut store, 1, ShardState::Ready, 0);
    let placer = Placer::default_for_tests();
    let operation = create_vault(V1);
    // Two attempts to create V1 decide on the same rows.
    let entries = read_for(&mut store, &placer, &operation, V1);
    let first = placer.place(&operation, &entries).expect("placeable").expect("a placement");
    let second = placer.place(&operation, &entries).expect("placeable").expect("a placement");
    assert_eq!(first, second, "placement is a pure function of what was read");
    let (first, shard) = vault_transaction(&entries, V1, first);
    let (second, _) = vault_transaction(&entries, V1, second);
    let commit = committed(&mut store, &first);
    assert_eq!(shard, ShardId(0));
    for key in [Key::Vault(V1), Key::VaultRoute(V1), Key::Shard(shard)] {
        assert_eq!(store.version(&key), commit, "{key:?} written in the vault's own commit");
    }
    assert_eq!(store.read(&Key::VaultRoute(V1)).value, Some(Value::VaultRoute(ShardId(0))));
    assert!(matches!(store.commit(&second), CommitOutcome::Conflict { .. }));
    assert_eq!(load(&store, 0), 1, "the conflicting attempt counted nothing");
    assert_eq!(store.last_commit(), commit, "and wrote nothing");
    // Decided again on fresh rows, the retry finds the vault routed.
    let entries = read_for(&mut store, &placer, &operation, V1);
    assert_eq!(placer.place(&operation, &entries), Err(PlacementError::VaultExists));
}

#[test]
fn a_racing_readiness_change_conflicts_and_the_retry_places_by_the_new_state() {
    let mut store = Store::new();
    register(&mut store, 0, ShardState::Ready, 3);
    register(&mut store, 1, ShardState::Provisioning, 0);
    let placer = Placer::default_for_tests();
    let operation = create_vault(V1);
    let entries = read_for(&mut store, &placer, &operation, V1);
    let placement = placer.place(&operation, &entries).expect("placeable").expect("a placement");
    let (stale, shard) = vault_transaction(&entries, V1, placement);
    assert_eq!(shard, ShardId(0));
    // The shard-addition operator marks shard 1 ready between the read and the commit.
    let row = store.read(&Key::Shard(ShardId(1)));
    let ready = ShardRecord { state: ShardState::Ready, vaults: 0 };
    committed(
        &mut store,
        &Transaction {
            reads: vec![(row.key, row.version)],
            writes: vec![Write::Put(Key::Shard(ShardId(1)), Value::Shard(ready))],
        },
    );
    assert_eq!(store.commit(&stale), CommitOutcome::Conflict { key: Key::Shard(ShardId(1)) });
    assert_eq!(store.read(&Key::VaultRoute(V1)).value, None);
    assert_eq!(place_vault(&mut store, &placer, V1), Ok(ShardId(1)), "least loaded under the new state");
}

#[test]
fn a_racing_placement_on_the_same_shard_conflicts_instead_of_losing_a_count() {
    let mut store = Store::new();
    register(&mut store, 0, ShardState::Ready, 0);
    let placer = Placer::default_for_tests();
    let (one, two) = (create_vault(V1), create_vault(V2));
    let entries_one = read_for(&mut store, &placer, &one, V1);
    let entries_two = read_for(&mut store, &placer, &two, V2);
    let (first, _) = vault_transaction(&entries_one, V1, placer.place(&one, &entries_one).unwrap().unwrap());
    let (second, _) = vault_transaction(&entries_two, V2, placer.place(&two, &entries_two).unwrap().unwrap());
    committed(&mut store, &first);
    assert_eq!(store.commit(&second), CommitOutcome::Conflict { key: Key::Shard(ShardId(0)) });
    assert_eq!(place_vault(&mut store, &placer, V2), Ok(ShardId(0)));
    assert_eq!(load(&store, 0), 2);
}

#[test]
fn a_secret_create_routes_to_its_vault_and_a_retry_writes_the_route_once() {
    let mut store = Store::new();
    register(&mut store, 0, ShardState::Ready, 9);
    register(&mut store, 1, ShardState::Ready, 0);
    let placer = Placer::default_for_tests();
    assert_eq!(place_vault(&mut store, &placer, V1), Ok(ShardId(1)));
    let operation = create_secret(S1, V1);
    let entries = read(&mut store, placer.keys_to_read(&operation));
    let placement = placer.place(&operation, &entries).expect("placeable").expect("a placement");
    assert_eq!(placement.shard, ShardId(1), "the secret's home is its vault's shard");
    assert_eq!(placement.writes, vec![Write::Put(Key::SecretRoute(S1), Value::SecretRoute(V1))]);
    let mut transaction = Transaction::default();
    placement.add_to(&mut transaction);
    committed(&mut store, &transaction);
    // A retry of the same create (its secret commit on shard 1 was lost) keeps the route.
    let entries = read(&mut store, placer.keys_to_read(&operation));
    let retry = placer.place(&operation, &entries).expect("placeable").expect("a placement");
    assert_eq!((retry.shard, retry.writes.len()), (ShardId(1), 0));
    // The same id in another vault, and a vault never created, are refused.
    assert_eq!(place_vault(&mut store, &placer, V2), Ok(ShardId(1)), "1 vault against 9");
    let other = create_secret(S1, V2);
    let entries = read(&mut store, placer.keys_to_read(&other));
    assert_eq!(placer.place(&other, &entries), Err(PlacementError::SecretExists));
    let orphan = create_secret(SecretId(2), VaultId(99));
    let entries = read(&mut store, placer.keys_to_read(&orphan));
    assert_eq!(placer.place(&orphan, &entries), Err(PlacementError::VaultNotFound));
}

#[test]
fn operations_that_create_nothing_place_nothing() {
    let placer = Placer::default_for_tests();
    for operation in [
        Operation::DeleteVault { vault: V1 },
        Operation::ReadSecret { secret: S1 },
        Operation::ScheduleDeletion { secret: S1 },
        Operation::UpdateSecret { secret: S1, content: Content::new(b"y"), expected: None },
        Operation::DeleteSecret { secret: S1, expected: None },
    ] {
        assert!(placer.keys_to_read(&operation).is_empty());
        assert_eq!(placer.place(&operation, &[]), Ok(None));
    }
}

#[test]
#[should_panic(expected = "shards_max 0 outside")]
fn a_placer_reads_at_least_one_shard() {
    Placer::new(PlacementPolicy::LeastLoaded, 0);
}

impl Placer {
    fn default_for_tests() -> Placer {
        Placer::new(PlacementPolicy::default(), 4)
    }
}

/// A registry of up to 6 shards, each absent, provisioning or ready, with a load.
fn registry() -> impl Strategy<Value = Vec<Option<(bool, u64)>>> {
    proptest::collection::vec(proptest::option::of((any::<bool>(), 0u64..4)), 1..=6)
}

proptest! {
    /// Whatever the registry, least-loaded placement picks a ready shard of
    /// minimum load (lowest id among those), and fails only when none is ready.
    #[test]
    fn least_loaded_is_ready_minimal_and_deterministic(rows in registry()) {
        let mut store = Store::new();
        for (shard, row) in rows.iter().enumerate() {
            if let Some((ready, vaults)) = row {
                let state = if *ready { ShardState::Ready } else { ShardState::Provisioning };
                register(&mut store, shard as u32, state, *vaults);
            }
        }
        let placer = Placer::new(PlacementPolicy::LeastLoaded, rows.len() as u32);
        let expected = rows
            .iter()
            .enumerate()
            .filter_map(|(shard, row)| row.filter(|(ready, _)| *ready).map(|(_, vaults)| (vaults, shard as u32)))
            .min()
            .map(|(_, shard)| ShardId(shard));
        let placed = place_vault(&mut store, &placer, V1);
        match expected {
            Some(shard) => {
                prop_assert_eq!(placed, Ok(shard));
                prop_assert_eq!(store.read(&Key::VaultRoute(V1)).value, Some(Value::VaultRoute(shard)));
            }
            None => prop_assert_eq!(placed, Err(PlacementError::NoReadyShard)),
        }
    }
}
