//! Loom: threads committing to, and polling, one partition of
//! `vault::store::SharedStore`, in every interleaving loom explores (all of them
//! for two threads, those within a preemption bound for three). Guards REP-4 and
//! REP-5.
//!
//! Writers run the `sync` interceptor's optimistic loop: read the partition head
//! version, commit a transaction that read it and appends one event, retry on
//! conflict within a budget. Whatever the schedule, no committed append is lost
//! or duplicated, the partition has no gap, every failed attempt is a conflict on
//! the head key caused by another writer's commit, and two attempts that read
//! the same head version never both commit. A poller that takes no lock never
//! sees a head ahead of its data: the slot write and the `Release` store of the
//! published length must be ordered before the `Acquire` load, and loom reports
//! a causality violation (a data race on the slot) if they are not.
//!
//! Compiled only with `--cfg loom`; see docs/TESTING.md for the command.
#![cfg(loom)]

use std::collections::BTreeSet;

use loom::thread;

use vault::store::{CommitOutcome, InvalidWrite, Key, SharedStore, SharedStoreConfig, Transaction, Write};
use vault::sync::Arc;
use vault::types::{
    CommitSeq, Content, Lifecycle, LogEvent, Mutation, SecretId, SecretRecord, Seq, TenantId, VaultId, Version,
};

const TENANT: TenantId = TenantId(1);
/// The preemption bound of the three-writer models (about 92,000 executions
/// each, a few seconds in release mode). The two-thread models run unbounded:
/// they finish in a few thousand executions. `LOOM_MAX_PREEMPTIONS` overrides both.
const THREE_WRITERS_PREEMPTIONS_MAX: usize = 5;

/// Runs `body` under loom, with at most `preemptions_max` preemptions per
/// execution if given, and asserts that more than one schedule was explored.
fn model(preemptions_max: Option<usize>, body: impl Fn() + Send + Sync + 'static) {
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    if let Some(preemptions_max) = preemptions_max {
        builder.preemption_bound.get_or_insert(preemptions_max);
    }
    let counter = std::sync::Arc::clone(&executions);
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        body();
    });
    let executions = executions.load(std::sync::atomic::Ordering::Relaxed);
    assert!(executions > 1, "loom explored a single schedule: the test checks nothing concurrent");
}

/// What the executions of one model reached, collected across executions to
/// show that the interesting schedules were explored ("sometimes" properties).
#[derive(Clone, Default)]
struct Reached(std::sync::Arc<std::sync::Mutex<BTreeSet<u64>>>);

impl Reached {
    fn insert(&self, value: u64) {
        self.0.lock().expect("reached set poisoned").insert(value);
    }

    fn values(&self) -> Vec<u64> {
        self.0.lock().expect("reached set poisoned").iter().copied().collect()
    }
}

fn shared_store(partition_events_max: usize) -> Arc<SharedStore> {
    Arc::new(SharedStore::new(&SharedStoreConfig { tenants: vec![TENANT], partition_events_max }))
}

/// Version 1 of `secret`: one event per writer, so versions grow trivially.
fn mutation(secret: u32) -> Mutation {
    let record = SecretRecord {
        tenant: TENANT,
        vault: VaultId(1),
        version: Version(1),
        lifecycle: Lifecycle::Active,
        content: Some(Content::new(&secret.to_le_bytes())),
    };
    Mutation { secret: SecretId(secret), record }
}

fn append(head_version: CommitSeq, secret: u32) -> Transaction {
    Transaction { reads: vec![(Key::LogHead(TENANT), head_version)], writes: vec![Write::Append(mutation(secret))] }
}

/// One commit attempt of a writer: the head version it read and what happened.
#[derive(Debug)]
struct Attempt {
    head_version: CommitSeq,
    outcome: CommitOutcome,
}

/// The `sync` interceptor's loop: read the head version, append, and retry on
/// conflict, at most `attempts_max` times.
fn append_with_retries(store: &SharedStore, secret: u32, attempts_max: usize) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    for _ in 0..attempts_max {
        let head_version = store.read(&[Key::LogHead(TENANT)])[0].version;
        let outcome = store.commit(&append(head_version, secret));
        let committed = matches!(outcome, CommitOutcome::Committed { .. });
        attempts.push(Attempt { head_version, outcome });
        if committed {
            break;
        }
    }
    attempts
}

/// Runs one writer per element of `secrets` concurrently; returns their attempts.
fn run_writers(store: &Arc<SharedStore>, secrets: &[u32], attempts_max: usize) -> Vec<Vec<Attempt>> {
    let writers: Vec<_> = secrets
        .iter()
        .map(|secret| {
            let store = Arc::clone(store);
            let secret = *secret;
            thread::spawn(move || append_with_retries(&store, secret, attempts_max))
        })
        .collect();
    writers.into_iter().map(|writer| writer.join().expect("writer panicked")).collect()
}

/// A committed attempt: who, where, under which commit, after reading which head.
struct Committed {
    secret: u32,
    seq: Seq,
    commit: CommitSeq,
    head_version: CommitSeq,
}

/// Checks the writers' reports against the published log and the engine.
/// Returns the number of committed appends.
fn check_writers(store: &SharedStore, secrets: &[u32], results: &[Vec<Attempt>], attempts_max: usize) -> usize {
    let mut committed = Vec::new();
    let mut conflicted_versions = Vec::new();
    for (secret, attempts) in secrets.iter().zip(results) {
        assert!(!attempts.is_empty() && attempts.len() <= attempts_max, "writer {secret} kept its budget");
        for (index, attempt) in attempts.iter().enumerate() {
            match &attempt.outcome {
                CommitOutcome::Committed { commit, appended } => {
                    assert_eq!(index + 1, attempts.len(), "writer {secret} stops after committing");
                    assert_eq!(appended.len(), 1, "one append per transaction: {appended:?}");
                    assert_eq!(appended[0].0, TENANT);
                    let seq = appended[0].1;
                    committed.push(Committed {
                        secret: *secret,
                        seq,
                        commit: *commit,
                        head_version: attempt.head_version,
                    });
                }
                CommitOutcome::Conflict { key } => {
                    assert_eq!(*key, Key::LogHead(TENANT), "writer {secret} failed on another key");
                    conflicted_versions.push((*secret, attempt.head_version));
                }
                CommitOutcome::Invalid(invalid) => panic!("writer {secret} was refused: {invalid:?}"),
            }
        }
        let gave_up = !matches!(attempts.last().map(|attempt| &attempt.outcome), Some(CommitOutcome::Committed { .. }));
        assert!(!gave_up || attempts.len() == attempts_max, "writer {secret} gave up early");
    }

    // Two attempts that read the same head version never both commit.
    let mut head_versions: Vec<CommitSeq> = committed.iter().map(|append| append.head_version).collect();
    head_versions.sort_unstable();
    head_versions.dedup();
    assert_eq!(head_versions.len(), committed.len(), "two commits read the same head version");

    // A conflict means another writer committed on the version it read.
    for (secret, version) in &conflicted_versions {
        let overtaken_by = committed.iter().find(|append| append.head_version == *version);
        let overtaken_by =
            overtaken_by.unwrap_or_else(|| panic!("writer {secret} conflicted on {version:?}, no commit read it"));
        assert_ne!(overtaken_by.secret, *secret, "writer {secret} conflicted with itself");
    }

    // The log holds exactly the committed appends, at the reported positions, gap-free.
    let count = committed.len();
    let events: Vec<LogEvent> = store.poll(TENANT, Seq::ZERO, secrets.len() + 1);
    assert_eq!(events.len(), count, "published log has {} events for {count} commits", events.len());
    assert_eq!(store.head(TENANT), Seq(count as u64));
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.seq, Seq(index as u64 + 1), "gap or reorder in the published log");
    }
    for append in &committed {
        let event = &events[usize::try_from(append.seq.0 - 1).expect("small seq")];
        assert_eq!((event.mutation.secret, event.commit), (SecretId(append.secret), append.commit));
        let copies = events.iter().filter(|event| event.mutation.secret == SecretId(append.secret)).count();
        assert_eq!(copies, 1, "writer {}'s event is in the log {copies} times", append.secret);
    }
    store.with_engine(|engine| {
        engine.check_invariants();
        assert_eq!(engine.poll(TENANT, Seq::ZERO, secrets.len() + 1), &events[..], "engine and published log differ");
        assert_eq!(engine.last_commit(), CommitSeq(count as u64), "a failed attempt took a commit number");
    });
    count
}

/// The failed attempts of a run (each a conflict, as `check_writers` asserts).
fn conflicts(results: &[Vec<Attempt>]) -> u64 {
    let failed = results.iter().flatten().filter(|attempt| !matches!(attempt.outcome, CommitOutcome::Committed { .. }));
    failed.count() as u64
}

#[test]
fn two_writers_lose_no_append() {
    let conflicts_reached = Reached::default();
    let reached = conflicts_reached.clone();
    model(None, move || {
        let secrets = [1, 2];
        let store = shared_store(secrets.len());
        // With two writers a second attempt always succeeds: only one other commit exists.
        let results = run_writers(&store, &secrets, 2);
        let committed = check_writers(&store, &secrets, &results, 2);
        assert_eq!(committed, secrets.len(), "every writer commits within its budget");
        reached.insert(conflicts(&results));
    });
    assert_eq!(conflicts_reached.values(), vec![0, 1], "runs without and with a conflict were explored");
}

#[test]
fn three_writers_lose_no_append() {
    let conflicts_reached = Reached::default();
    let reached = conflicts_reached.clone();
    model(Some(THREE_WRITERS_PREEMPTIONS_MAX), move || {
        let secrets = [1, 2, 3];
        let store = shared_store(secrets.len());
        // A writer conflicts at most once per other writer's commit: three attempts suffice.
        let results = run_writers(&store, &secrets, 3);
        let committed = check_writers(&store, &secrets, &results, 3);
        assert_eq!(committed, secrets.len(), "every writer commits within its budget");
        reached.insert(conflicts(&results));
    });
    // The k-th writer to commit conflicted at most k - 1 times: at most 0 + 1 + 2.
    assert_eq!(conflicts_reached.values(), vec![0, 1, 2, 3], "every number of conflicts was explored");
}

#[test]
fn three_writers_with_a_short_budget_lose_no_append() {
    let committed_reached = Reached::default();
    let reached = committed_reached.clone();
    model(Some(THREE_WRITERS_PREEMPTIONS_MAX), move || {
        let secrets = [1, 2, 3];
        let store = shared_store(secrets.len());
        // Two attempts each: a writer overtaken twice gives up, and its event must
        // then be absent while the others' are present exactly once.
        let results = run_writers(&store, &secrets, 2);
        let committed = check_writers(&store, &secrets, &results, 2);
        assert!(committed >= 2, "at most one writer can be overtaken twice");
        reached.insert(committed as u64);
    });
    assert_eq!(committed_reached.values(), vec![2, 3], "runs where a writer gives up were explored");
}

#[test]
fn two_writers_that_read_the_same_head_version_do_not_both_commit() {
    let winners_reached = Reached::default();
    let reached = winners_reached.clone();
    model(None, move || {
        let store = shared_store(2);
        let writers: Vec<_> = [1, 2]
            .into_iter()
            .map(|secret| {
                let store = Arc::clone(&store);
                thread::spawn(move || store.commit(&append(CommitSeq(0), secret)))
            })
            .collect();
        let outcomes: Vec<CommitOutcome> =
            writers.into_iter().map(|writer| writer.join().expect("writer panicked")).collect();
        let winners: Vec<u64> = (1..)
            .zip(&outcomes)
            .filter(|(_, outcome)| matches!(outcome, CommitOutcome::Committed { .. }))
            .map(|(secret, _)| secret)
            .collect();
        assert_eq!(winners.len(), 1, "exactly one of two same-version writers commits: {outcomes:?}");
        assert!(outcomes.contains(&CommitOutcome::Conflict { key: Key::LogHead(TENANT) }), "{outcomes:?}");
        let events = store.poll(TENANT, Seq::ZERO, 2);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].mutation.secret, SecretId(winners[0] as u32), "the log holds the winner's event");
        reached.insert(winners[0]);
    });
    assert_eq!(winners_reached.values(), vec![1, 2], "either writer can win");
}

/// Asserts that `events`, polled after `after`, are the writer's events in order.
fn check_published(events: &[LogEvent], after: Seq) {
    for (index, event) in events.iter().enumerate() {
        let seq = after.0 + index as u64 + 1;
        assert_eq!(event.seq, Seq(seq), "slot holds the wrong event");
        let secret = u32::try_from(seq).expect("small seq");
        assert_eq!(event.mutation, mutation(secret), "slot holds another writer's data");
    }
}

/// The poller: reads the head, then polls up to it and past it, twice.
/// Returns the heads it saw.
fn poll_twice(store: &SharedStore, events_max: usize) -> Vec<Seq> {
    let mut heads = Vec::new();
    for _ in 0..2 {
        let head = store.head(TENANT);
        assert!(heads.last().is_none_or(|last| *last <= head), "head went back: {heads:?} then {head:?}");
        heads.push(head);
        // A seen head is followed by a poll that returns that many events, filled.
        let events = store.poll(TENANT, Seq::ZERO, usize::try_from(head.0).expect("small head"));
        assert_eq!(events.len() as u64, head.0, "head {head:?} but {} events", events.len());
        check_published(&events, Seq::ZERO);
        // A cursor part-way reads only what follows it, possibly past the head seen.
        let tail = store.poll(TENANT, Seq(1), events_max);
        assert!(tail.len() as u64 + 1 >= head.0, "head {head:?} but {} events after seq 1", tail.len());
        check_published(&tail, Seq(1));
    }
    heads
}

#[test]
fn a_poller_never_sees_a_head_ahead_of_its_data() {
    let heads_reached = Reached::default();
    let reached = heads_reached.clone();
    model(None, move || {
        const EVENTS: u32 = 2;
        let store = shared_store(EVENTS as usize);
        // The writer is spawned before the poller and the poller runs on its own
        // thread: with the poller on the main thread, or loading before the
        // writer's first load, loom 0.7's DPOR finds no dependency between the
        // poller's loads and the writer's load-then-store of the published length
        // and explores a single schedule (tokio-rs/loom#166, #392). `model`
        // asserts that more than one schedule ran, and the heads reached below
        // show that the poller ran before, between and after the commits.
        let writer = {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                for secret in 1..=EVENTS {
                    let head_version = store.read(&[Key::LogHead(TENANT)])[0].version;
                    let outcome = store.commit(&append(head_version, secret));
                    assert!(matches!(outcome, CommitOutcome::Committed { .. }), "a lone writer commits: {outcome:?}");
                }
                // The partition is full now: one more is refused, not dropped.
                let outcome = store.commit(&append(CommitSeq(u64::from(EVENTS)), EVENTS + 1));
                assert_eq!(outcome, CommitOutcome::Invalid(InvalidWrite::PartitionFull(TENANT)));
            })
        };
        let poller = {
            let store = Arc::clone(&store);
            thread::spawn(move || poll_twice(&store, EVENTS as usize))
        };
        writer.join().expect("writer panicked");
        for head in poller.join().expect("poller panicked") {
            reached.insert(head.0);
        }
        let events = store.poll(TENANT, Seq::ZERO, EVENTS as usize + 1);
        assert_eq!(events.len(), EVENTS as usize);
        check_published(&events, Seq::ZERO);
        assert_eq!(store.head(TENANT), Seq(u64::from(EVENTS)));
    });
    assert_eq!(heads_reached.values(), vec![0, 1, 2], "the poller saw every head");
}
