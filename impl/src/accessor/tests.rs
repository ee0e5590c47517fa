use super::*;
use crate::store::{CommitOutcome, Store, Transaction, Write};
use crate::types::{Content, TenantId, VaultId, Version};

const MS: u64 = 1_000_000;
const S1: SecretId = SecretId(1);

fn record(version: u64, lifecycle: Lifecycle, bytes: &[u8]) -> SecretRecord {
    let content = (lifecycle != Lifecycle::Deleted).then(|| Content::new(bytes));
    SecretRecord { tenant: TenantId(1), vault: VaultId(1), version: Version(version), lifecycle, content }
}

fn store_with(record: SecretRecord) -> Store {
    let mut store = Store::new();
    let write = Write::Put(Key::Secret(S1), Value::Secret(record));
    assert!(matches!(
        store.commit(&Transaction { reads: Vec::new(), writes: vec![write] }),
        CommitOutcome::Committed { .. }
    ));
    store
}

fn drain(accessor: &mut Accessor) -> Vec<AccessorOutput> {
    std::iter::from_fn(|| accessor.poll_output()).collect()
}

/// Reads S1 with `local` as the local copy, answering any store read from
/// `store` (with the same local copy); returns the answer and its source.
fn read(accessor: &mut Accessor, store: &mut Store, local: LocalRead) -> (Result<LocalRead, ReadError>, Source) {
    accessor.on_read(Time(0), RequestId(7), S1, local.clone());
    loop {
        let outputs = drain(accessor);
        if let Some(AccessorOutput::Store { tag, request }) =
            outputs.iter().find(|output| matches!(output, AccessorOutput::Store { .. })).cloned()
        {
            accessor.on_store_reply(Time(MS), tag, store.on_request(request), local.clone());
            continue;
        }
        let answer = outputs.into_iter().find_map(|output| match output {
            AccessorOutput::Answer { request, result, source } => Some((request, result, source)),
            _ => None,
        });
        let (request, result, source) = answer.expect("an answer");
        assert_eq!(request, RequestId(7));
        return (result, source);
    }
}

#[test]
fn local_mode_answers_from_the_local_store_only() {
    let mut store = store_with(record(1, Lifecycle::Active, b"remote"));
    let mut accessor = Accessor::new(ReadMode::Local, 10 * MS);
    assert_eq!(read(&mut accessor, &mut store, LocalRead::Missing), (Ok(LocalRead::Missing), Source::Local));
    assert_eq!(accessor.stats().local, 1);
}

#[test]
fn hybrid_mode_serves_locally_and_falls_back_on_a_miss_or_a_creating_secret() {
    let remote = record(2, Lifecycle::Active, b"remote");
    let mut store = store_with(remote.clone());
    let mut accessor = Accessor::new(ReadMode::Hybrid, 10 * MS);
    let local = LocalRead::Found(record(2, Lifecycle::Active, b"remote"));
    assert_eq!(read(&mut accessor, &mut store, local.clone()), (Ok(local), Source::Local));
    let missing = read(&mut accessor, &mut store, LocalRead::Missing);
    assert_eq!(missing, (Ok(LocalRead::Found(remote.clone())), Source::Fallback(Fallback::Missing)));
    let creating = read(&mut accessor, &mut store, LocalRead::Found(record(1, Lifecycle::Creating, b"old")));
    assert_eq!(creating, (Ok(LocalRead::Found(remote)), Source::Fallback(Fallback::NotActive)));
    // A tombstone replicated is served locally: the deletion is past Active.
    let tombstone = LocalRead::Found(record(3, Lifecycle::Deleted, b""));
    assert_eq!(read(&mut accessor, &mut store, tombstone.clone()), (Ok(tombstone), Source::Local));
    let stats = accessor.stats();
    assert_eq!((stats.local, stats.fallback_missing, stats.fallback_not_active, stats.remote), (2, 1, 1, 0));
}

#[test]
fn remote_mode_reads_the_store_and_the_shadow_counts_discrepancies_version_aware() {
    let mut store = store_with(record(2, Lifecycle::Active, b"remote"));
    let mut accessor = Accessor::new(ReadMode::Remote { shadow: true }, 10 * MS);
    let same = LocalRead::Found(record(2, Lifecycle::Active, b"remote"));
    let (answer, source) = read(&mut accessor, &mut store, same);
    assert_eq!((answer, source), (Ok(LocalRead::Found(record(2, Lifecycle::Active, b"remote"))), Source::Remote));
    for local in [record(1, Lifecycle::Active, b"older"), record(2, Lifecycle::Active, b"damaged")] {
        let (answer, _) = read(&mut accessor, &mut store, LocalRead::Found(local));
        assert_eq!(answer, Ok(LocalRead::Found(record(2, Lifecycle::Active, b"remote"))), "the answer is the store's");
    }
    let stats = accessor.stats();
    assert_eq!((stats.remote, stats.shadow_matches, stats.shadow_lagging, stats.shadow_mismatches), (3, 1, 1, 1));
    // Without shadow nothing is compared.
    accessor.set_mode(ReadMode::Remote { shadow: false });
    assert_eq!(read(&mut accessor, &mut store, LocalRead::Missing).1, Source::Remote);
    assert_eq!(accessor.stats().shadow_lagging, 1);
}

#[test]
fn a_remote_read_without_a_reply_is_answered_unavailable_and_its_late_reply_ignored() {
    let mut store = store_with(record(1, Lifecycle::Active, b"remote"));
    let mut accessor = Accessor::new(ReadMode::Remote { shadow: false }, 10 * MS);
    accessor.on_read(Time(0), RequestId(1), S1, LocalRead::Missing);
    let outputs = drain(&mut accessor);
    let Some(AccessorOutput::Store { tag, request }) = outputs.first().cloned() else { panic!("{outputs:?}") };
    assert_eq!(outputs.last(), Some(&AccessorOutput::Timer { deadline: Time(10 * MS) }));
    accessor.on_timer(Time(5 * MS));
    assert!(drain(&mut accessor).iter().all(|output| !matches!(output, AccessorOutput::Answer { .. })), "not yet");
    accessor.on_timer(Time(10 * MS));
    let answers = drain(&mut accessor);
    assert_eq!(
        answers,
        vec![AccessorOutput::Answer {
            request: RequestId(1),
            result: Err(ReadError::Unavailable),
            source: Source::Remote
        }]
    );
    accessor.on_store_reply(Time(11 * MS), tag, store.on_request(request), LocalRead::Missing);
    assert_eq!(drain(&mut accessor), Vec::new(), "the late reply answers nothing");
    assert_eq!(accessor.stats().timeouts, 1);
}

#[test]
fn hybrid_mode_never_serves_a_damaged_local_entry() {
    let remote = record(2, Lifecycle::Active, b"remote");
    let mut store = store_with(remote.clone());
    let mut accessor = Accessor::new(ReadMode::Hybrid, 10 * MS);
    let mut damaged = remote.clone();
    damaged.content = damaged.content.map(|content| content.with_flipped_bit());
    accessor.on_read(Time(0), RequestId(7), S1, LocalRead::Found(damaged.clone()));
    let outputs = drain(&mut accessor);
    let Some(AccessorOutput::Store { tag, request }) = outputs.first().cloned() else { panic!("{outputs:?}") };
    accessor.on_store_reply(Time(MS), tag, store.on_request(request), LocalRead::Found(damaged));
    let outputs = drain(&mut accessor);
    let answer = AccessorOutput::Answer {
        request: RequestId(7),
        result: Ok(LocalRead::Found(remote.clone())),
        source: Source::Fallback(Fallback::Damaged),
    };
    // The host is asked to repair with the remote record, and the client gets it.
    assert_eq!(outputs, vec![AccessorOutput::Repair { secret: S1, record: remote }, answer]);
    let stats = accessor.stats();
    assert_eq!((stats.fallback_damaged, stats.read_repairs, stats.local), (1, 1, 0));
}
