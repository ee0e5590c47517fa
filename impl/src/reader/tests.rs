use super::*;
use crate::accessor::Fallback;
use crate::migration::PHASE_KEY;
use crate::store::{CommitOutcome, Key, Store, Transaction, Value, Write};
use crate::types::{Content, Lifecycle, SecretRecord, TenantId, VaultId, Version};

const MS: u64 = 1_000_000;
const S1: SecretId = SecretId(1);

fn config() -> ReaderConfig {
    ReaderConfig { phase_poll_ns: 50 * MS, request_timeout_ns: 20 * MS }
}

fn record(version: u64, lifecycle: Lifecycle) -> SecretRecord {
    SecretRecord {
        tenant: TenantId(1),
        vault: VaultId(1),
        version: Version(version),
        lifecycle,
        content: Some(Content::new(b"secret")),
    }
}

fn commit(store: &mut Store, writes: Vec<Write>) {
    let outcome = store.commit(&Transaction { reads: Vec::new(), writes });
    assert!(matches!(outcome, CommitOutcome::Committed { .. }), "{outcome:?}");
}

fn set_phase(store: &mut Store, phase: Phase) {
    commit(store, vec![Write::Put(PHASE_KEY, Value::Config(phase.code()))]);
}

fn drain(reader: &mut Reader) -> Vec<ReaderOutput> {
    std::iter::from_fn(|| reader.poll_output()).collect()
}

/// Answers every store request in `outputs` from `store` at `now` (with
/// `local` as the local copy), until the reader asks for nothing more; returns
/// every other output, in order.
fn serve(reader: &mut Reader, store: &mut Store, now: Time, local: &LocalRead) -> Vec<ReaderOutput> {
    let mut seen = Vec::new();
    let mut outputs = drain(reader);
    while !outputs.is_empty() {
        for output in outputs {
            match output {
                ReaderOutput::Store { tag, request } => {
                    reader.on_store_reply(now, tag, store.on_request(request), local.clone());
                }
                other => seen.push(other),
            }
        }
        outputs = drain(reader);
    }
    reader.check_invariants();
    seen
}

fn answers(outputs: &[ReaderOutput]) -> Vec<(Result<LocalRead, ReadError>, Source)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            ReaderOutput::Answer { result, source, .. } => Some((result.clone(), *source)),
            _ => None,
        })
        .collect()
}

#[test]
fn before_learning_a_phase_reads_go_to_the_remote_store() {
    let mut store = Store::new();
    commit(&mut store, vec![Write::Put(Key::Secret(S1), Value::Secret(record(2, Lifecycle::Active)))]);
    let mut reader = Reader::new(config(), Time(0));
    let local = LocalRead::Found(record(1, Lifecycle::Active));
    reader.on_read(Time(0), RequestId(1), S1, local.clone());
    let outputs = serve(&mut reader, &mut store, Time(MS), &local);
    assert_eq!(answers(&outputs), vec![(Ok(LocalRead::Found(record(2, Lifecycle::Active))), Source::Remote)]);
}

#[test]
fn the_phase_is_learned_by_polling_and_switches_the_read_mode() {
    let mut store = Store::new();
    commit(&mut store, vec![Write::Put(Key::Secret(S1), Value::Secret(record(2, Lifecycle::Active)))]);
    set_phase(&mut store, Phase::Verify);
    let local = LocalRead::Found(record(2, Lifecycle::Active));
    let mut reader = Reader::new(config(), Time(0));
    reader.on_timer(Time(0));
    let outputs = serve(&mut reader, &mut store, Time(MS), &local);
    assert!(outputs.contains(&ReaderOutput::Learned { phase: Phase::Verify }), "{outputs:?}");
    assert_eq!(reader.accessor().mode(), ReadMode::Remote { shadow: true });
    // The next poll is due one interval after the reply.
    assert_eq!(outputs.last(), Some(&ReaderOutput::Timer { deadline: Time(51 * MS) }));

    set_phase(&mut store, Phase::Switchover);
    reader.on_timer(Time(51 * MS));
    let outputs = serve(&mut reader, &mut store, Time(52 * MS), &local);
    assert!(outputs.contains(&ReaderOutput::Learned { phase: Phase::Switchover }));
    reader.on_read(Time(53 * MS), RequestId(2), S1, local.clone());
    let outputs = serve(&mut reader, &mut store, Time(53 * MS), &local);
    assert_eq!(answers(&outputs), vec![(Ok(local.clone()), Source::Local)]);
    reader.on_read(Time(53 * MS), RequestId(3), S1, LocalRead::Missing);
    let outputs = serve(&mut reader, &mut store, Time(54 * MS), &LocalRead::Missing);
    assert_eq!(answers(&outputs), vec![(Ok(local), Source::Fallback(Fallback::Missing))]);

    // A rollback is learned at the next poll: reads go remote again.
    set_phase(&mut store, Phase::Verify);
    reader.on_timer(Time(104 * MS));
    let outputs = serve(&mut reader, &mut store, Time(105 * MS), &LocalRead::Missing);
    assert!(outputs.contains(&ReaderOutput::Learned { phase: Phase::Verify }));
    assert_eq!(reader.accessor().mode(), ReadMode::Remote { shadow: true });
}

#[test]
fn a_lost_poll_is_abandoned_and_sent_again() {
    let mut store = Store::new();
    set_phase(&mut store, Phase::Sync);
    let mut reader = Reader::new(config(), Time(0));
    assert_eq!(drain(&mut reader), vec![ReaderOutput::Timer { deadline: Time(0) }]);
    reader.on_timer(Time(0));
    let lost = drain(&mut reader);
    assert!(matches!(lost[0], ReaderOutput::Store { .. }), "{lost:?}");
    assert_eq!(lost.last(), Some(&ReaderOutput::Timer { deadline: Time(20 * MS) }));
    reader.on_timer(Time(20 * MS));
    let outputs = serve(&mut reader, &mut store, Time(21 * MS), &LocalRead::Missing);
    assert!(outputs.contains(&ReaderOutput::Learned { phase: Phase::Sync }));
    assert_eq!(reader.phase(), Some(Phase::Sync));
}

#[test]
fn a_read_without_a_store_reply_is_answered_unavailable_on_time() {
    let mut reader = Reader::new(config(), Time(0));
    reader.on_read(Time(0), RequestId(9), S1, LocalRead::Missing);
    let outputs = drain(&mut reader);
    assert!(outputs.iter().any(|output| matches!(output, ReaderOutput::Store { tag, .. } if *tag < POLL_TAGS)));
    // The poll is due at 0 and the read's deadline at 20 ms: the timer says 0.
    reader.on_timer(Time(20 * MS));
    let outputs = drain(&mut reader);
    let answer = outputs.iter().find_map(|output| match output {
        ReaderOutput::Answer { request, result, .. } => Some((*request, result.clone())),
        _ => None,
    });
    assert_eq!(answer, Some((RequestId(9), Err(ReadError::Unavailable))));
}
