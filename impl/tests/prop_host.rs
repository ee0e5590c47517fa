//! Property: a host that receives a partition's events in any order, with
//! duplicates, in any batching, ends with the same local store (records and
//! cursors) as one that applied them in order, and every record is the newest
//! version the log carried for its secret (forward-only apply).
//!
//! The events are built directly with consistent sequence numbers: several
//! tenants, several secrets per tenant, versions growing per secret through
//! creates, updates, scheduled deletions and deletes, plus backfill-like
//! replays of an older version after a newer one (which must never win).

#![cfg(not(loom))]

use std::collections::BTreeMap;

use proptest::prelude::*;
use vault::host::{Host, HostConfig, LocalStore};
use vault::types::{
    CommitSeq, Content, HostId, Lifecycle, LogEvent, Mutation, SecretId, SecretRecord, Seq, TenantId, Time, VaultId,
    Version,
};

const TENANTS: u32 = 3;
const SECRETS: u32 = 7;

/// What one generated operation does to its secret.
#[derive(Clone, Copy, Debug)]
enum Action {
    /// Creates the secret, or updates it with new content.
    Write,
    /// Schedules the deletion of a live secret.
    ScheduleDeletion,
    /// Deletes a live secret, leaving a tombstone.
    Delete,
    /// Re-emits an older (or the current) version, as a backfill might.
    Replay(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => Just(Action::Write),
        1 => Just(Action::ScheduleDeletion),
        1 => Just(Action::Delete),
        2 => any::<usize>().prop_map(Action::Replay),
    ]
}

fn operations() -> impl Strategy<Value = Vec<(u32, Action, u8)>> {
    prop::collection::vec((0..SECRETS, action(), any::<u8>()), 1..48)
}

/// Builds the partitions' events from the operations: exactly one event per
/// operation, per-tenant sequence numbers from 1, one commit per event.
fn build_events(operations: &[(u32, Action, u8)]) -> Vec<LogEvent> {
    let mut history: BTreeMap<SecretId, Vec<SecretRecord>> = BTreeMap::new();
    let mut heads: BTreeMap<TenantId, Seq> = BTreeMap::new();
    let mut events = Vec::new();
    for (index, (secret, action, byte)) in operations.iter().enumerate() {
        let tenant = TenantId(secret % TENANTS);
        let secret = SecretId(*secret);
        let versions = history.entry(secret).or_default();
        let record = match (versions.last(), *action) {
            (None, _) => SecretRecord {
                tenant,
                vault: VaultId(tenant.0),
                version: Version(1),
                lifecycle: Lifecycle::Creating,
                content: Some(Content::new(&[*byte])),
            },
            // Any version up to the current one, the current one included.
            (Some(_), Action::Replay(pick)) => versions[pick % versions.len()].clone(),
            (Some(last), _) if last.lifecycle == Lifecycle::Deleted => {
                // Nothing mutates a tombstone: replay the oldest version instead.
                versions[0].clone()
            }
            (Some(last), Action::Write) if last.lifecycle == Lifecycle::PendingDeletion => SecretRecord {
                version: last.version.next(),
                lifecycle: Lifecycle::Deleted,
                content: None,
                ..last.clone()
            },
            (Some(last), Action::Write) => SecretRecord {
                version: last.version.next(),
                lifecycle: Lifecycle::Active,
                content: Some(Content::new(&[*byte, 1])),
                ..last.clone()
            },
            (Some(last), Action::ScheduleDeletion) => {
                SecretRecord { version: last.version.next(), lifecycle: Lifecycle::PendingDeletion, ..last.clone() }
            }
            (Some(last), Action::Delete) => SecretRecord {
                version: last.version.next(),
                lifecycle: Lifecycle::Deleted,
                content: None,
                ..last.clone()
            },
        };
        record.check_invariants();
        if versions.last().is_none_or(|last| record.version > last.version) {
            versions.push(record.clone());
        }
        let head = heads.entry(tenant).or_default();
        *head = head.next();
        let commit = CommitSeq(index as u64 + 1);
        events.push(LogEvent { seq: *head, commit, mutation: Mutation { secret, record } });
    }
    events
}

/// A local store's contents: records in secret order, cursors in partition order.
type Contents = (Vec<(SecretId, SecretRecord)>, Vec<(TenantId, Seq)>);

/// The oracle: the newest version of each secret, and per tenant the number of events.
fn expected(events: &[LogEvent]) -> Contents {
    let mut records: BTreeMap<SecretId, SecretRecord> = BTreeMap::new();
    let mut cursors: BTreeMap<TenantId, Seq> = BTreeMap::new();
    for event in events {
        let newest = records.entry(event.mutation.secret).or_insert_with(|| event.mutation.record.clone());
        if event.mutation.record.version > newest.version {
            *newest = event.mutation.record.clone();
        }
        let cursor = cursors.entry(event.tenant()).or_default();
        *cursor = (*cursor).max(event.seq);
    }
    (records.into_iter().collect(), cursors.into_iter().collect())
}

/// The events applied one by one in partition order.
fn in_order(events: &[LogEvent]) -> LocalStore {
    let mut sorted = events.to_vec();
    sorted.sort_by_key(|event| (event.tenant(), event.seq));
    let mut local = LocalStore::new();
    for event in &sorted {
        local.apply(event);
    }
    local
}

fn check_converged(local: &LocalStore, events: &[LogEvent]) -> Result<(), TestCaseError> {
    let (records, cursors) = expected(events);
    let actual: Vec<(SecretId, SecretRecord)> = local.records().map(|(id, record)| (id, record.clone())).collect();
    prop_assert_eq!(actual, records, "every record is its secret's newest version");
    prop_assert_eq!(local.cursors(), cursors, "every cursor is at its partition's end");
    prop_assert_eq!(local, &in_order(events), "the same local store as in-order apply");
    Ok(())
}

/// Events, then every event plus some duplicates in a shuffled order, then batch sizes.
fn shuffled_delivery() -> impl Strategy<Value = (Vec<LogEvent>, Vec<LogEvent>, Vec<usize>)> {
    operations().prop_map(|operations| build_events(&operations)).prop_flat_map(|events| {
        let count = events.len();
        (Just(events), prop::collection::vec(0..count, 0..=count)).prop_flat_map(|(events, duplicates)| {
            let mut delivery = events.clone();
            delivery.extend(duplicates.iter().map(|index| events[*index].clone()));
            let length = delivery.len();
            (Just(events), Just(delivery).prop_shuffle(), prop::collection::vec(1..=length, 1..6))
        })
    })
}

/// Cuts `delivery` into batches of the given sizes, cycling through them.
fn batches(delivery: &[LogEvent], sizes: &[usize]) -> Vec<Vec<LogEvent>> {
    let mut batches = Vec::new();
    let mut rest = delivery;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at((*size).min(rest.len()));
        batches.push(batch.to_vec());
        rest = tail;
    }
    batches
}

/// A deterministic shuffle driven by `seed` (a splitmix64 stream).
fn shuffle(events: &mut [LogEvent], seed: u64) {
    let mut state = seed;
    for index in (1..events.len()).rev() {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^= mixed >> 31;
        let other = usize::try_from(mixed % (index as u64 + 1)).expect("index fits");
        events.swap(index, other);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// With room to buffer everything, any delivery converges in one pass.
    #[test]
    fn any_order_with_duplicates_converges_to_in_order_apply(
        (events, delivery, sizes) in shuffled_delivery(),
    ) {
        let config = HostConfig { pending_events_max: delivery.len(), ..HostConfig::default() };
        let mut host = Host::new(HostId(1), config, Time::ZERO);
        for batch in batches(&delivery, &sizes) {
            host.on_events(&batch);
            host.check_invariants();
        }
        check_converged(host.durable(), &events)?;
    }

    /// With a small buffer, events past it are dropped; re-delivering what is
    /// not yet applied (as re-polls do) still converges, and every round moves.
    #[test]
    fn small_buffer_converges_under_redelivery(
        events in operations().prop_map(|operations| build_events(&operations)),
        pending_events_max in 1usize..4,
        seeds in prop::collection::vec(any::<u64>(), 1..6),
        batch_size in 1usize..6,
        duplicates in 0usize..4,
    ) {
        let config = HostConfig { pending_events_max, ..HostConfig::default() };
        let mut host = Host::new(HostId(1), config, Time::ZERO);
        let mut rounds = 0;
        loop {
            let durable = host.durable().clone();
            let mut remainder: Vec<LogEvent> =
                events.iter().filter(|event| event.seq > durable.cursor(event.tenant())).cloned().collect();
            if remainder.is_empty() {
                break;
            }
            // A few already-applied events come back too.
            remainder.extend(events.iter().filter(|event| event.seq <= durable.cursor(event.tenant())).take(duplicates).cloned());
            shuffle(&mut remainder, seeds[rounds % seeds.len()]);
            for batch in remainder.chunks(batch_size) {
                host.on_events(batch);
                host.check_invariants();
            }
            rounds += 1;
            prop_assert!(host.durable() != &durable, "round {} applied nothing: the host is stuck", rounds);
        }
        check_converged(host.durable(), &events)?;
    }
}
