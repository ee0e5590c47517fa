use super::*;
use crate::store::Store;

const MS: u64 = 1_000_000;

fn config(schedule: &[(u64, Phase)]) -> OperatorConfig {
    OperatorConfig {
        schedule: schedule.iter().map(|(ms, phase)| (Time(ms * MS), *phase)).collect(),
        request_timeout_ns: 5 * MS,
        retry_delay_ns: 2 * MS,
    }
}

/// Drives an operator against a store: answers every request at once and
/// fires its timer (the last one it armed) until nothing is due up to
/// `until`. Returns the configurations it reported committed.
struct Driver {
    operator: Operator,
    now: Time,
    timer: Option<Time>,
    committed: Vec<PhaseConfig>,
}

impl Driver {
    fn new(config: OperatorConfig) -> Driver {
        Driver { operator: Operator::new(config, Time(0)), now: Time(0), timer: None, committed: Vec::new() }
    }

    fn run_until(&mut self, store: &mut Store, until_ms: u64) {
        let until = Time(until_ms * MS);
        loop {
            let mut requests = Vec::new();
            while let Some(output) = self.operator.poll_output() {
                match output {
                    OperatorOutput::Store { tag, request } => requests.push((tag, request)),
                    OperatorOutput::Timer { deadline } => self.timer = Some(deadline),
                    OperatorOutput::Committed { config } => self.committed.push(config),
                }
            }
            if let Some((tag, request)) = requests.pop() {
                assert!(requests.is_empty(), "one request at a time");
                let reply = store.on_request(request);
                self.operator.on_store_reply(self.now, tag, reply);
                continue;
            }
            match self.timer.take() {
                Some(deadline) if deadline <= until => {
                    self.now = self.now.max(deadline);
                    self.operator.on_timer(self.now);
                }
                other => {
                    self.timer = other;
                    self.now = self.now.max(until);
                    return;
                }
            }
        }
    }
}

fn stored(store: &Store) -> PhaseConfig {
    let entries: Vec<ReadEntry> = PhaseConfig::keys().iter().map(|key| store.read(key)).collect();
    PhaseConfig::from_entries(&entries)
}

fn finish(store: &mut Store, bookmark: BookmarkId) {
    let write = Write::Put(Key::Bookmark(bookmark), Value::Bookmark(BOOKMARK_DONE));
    let outcome = store.commit(&Transaction { reads: Vec::new(), writes: vec![write] });
    assert!(matches!(outcome, CommitOutcome::Committed { .. }));
}

#[test]
fn phases_are_ordered_and_say_what_they_do() {
    assert_eq!(Phase::ALL.map(Phase::code), [0, 1, 2, 3, 4]);
    assert!(Phase::ALL.iter().all(|phase| Phase::from_code(phase.code()) == Some(*phase)));
    assert_eq!(Phase::from_code(5), None);
    assert_eq!((Phase::Off.previous(), Phase::Switchover.next()), (None, None));
    assert_eq!(Phase::Backfill.next(), Some(Phase::Verify));
    assert_eq!(Phase::ALL.map(Phase::replicates), [false, true, true, true, true]);
    assert_eq!(Phase::ALL.map(Phase::serves_locally), [false, false, false, false, true]);
    assert_eq!(PhaseConfig::from_entries(&[]), PhaseConfig { phase: Phase::Off, since: None });
}

#[test]
fn the_operator_follows_its_schedule_and_records_t1() {
    let mut store = Store::new();
    let schedule = [(1, Phase::Sync), (10, Phase::Backfill), (20, Phase::Verify), (30, Phase::Switchover)];
    let mut driver = Driver::new(config(&schedule));
    driver.run_until(&mut store, 0);
    assert_eq!(stored(&store).phase, Phase::Off, "nothing is due at 0 ms");
    driver.run_until(&mut store, 5);
    let sync = stored(&store);
    assert_eq!(sync.phase, Phase::Sync);
    // t1 is the commit that switched replication on.
    assert_eq!(sync.since, Some(store.read(&PHASE_KEY).version));
    driver.run_until(&mut store, 15);
    assert_eq!(stored(&store).phase, Phase::Backfill);
    assert_eq!(stored(&store).since, sync.since, "t1 stays");
    // Verify waits for the backfill to finish, whatever the schedule says.
    driver.run_until(&mut store, 25);
    assert_eq!(stored(&store).phase, Phase::Backfill);
    finish(&mut store, BACKFILL_BOOKMARK);
    driver.run_until(&mut store, 40);
    assert_eq!(stored(&store).phase, Phase::Verify, "switchover waits for the verifier");
    finish(&mut store, VERIFY_BOOKMARK);
    driver.run_until(&mut store, 45);
    assert_eq!(stored(&store).phase, Phase::Switchover);
    let phases: Vec<Phase> = driver.committed.iter().map(|config| config.phase).collect();
    assert_eq!(
        phases,
        [Phase::Off, Phase::Sync, Phase::Sync, Phase::Backfill, Phase::Verify, Phase::Switchover],
        "the first read, then one report per commit (t1 is a commit of its own)"
    );
}

#[test]
fn an_idle_operator_wakes_for_its_next_schedule_entry() {
    let mut store = Store::new();
    let mut driver = Driver::new(config(&[(1, Phase::Sync), (50, Phase::Backfill)]));
    driver.run_until(&mut store, 10);
    assert_eq!(driver.timer, Some(Time(50 * MS)), "the one timer is the next entry");
    driver.run_until(&mut store, 60);
    assert_eq!(stored(&store).phase, Phase::Backfill);
}

#[test]
fn a_rollback_moves_back_one_phase_and_off_starts_over() {
    let mut store = Store::new();
    let schedule = [(1, Phase::Sync), (2, Phase::Backfill), (3, Phase::Verify)];
    let mut driver = Driver::new(config(&schedule));
    finish(&mut store, BACKFILL_BOOKMARK);
    driver.run_until(&mut store, 10);
    assert_eq!(stored(&store).phase, Phase::Verify);
    driver.operator.on_rollback(driver.now);
    driver.run_until(&mut store, 20);
    assert_eq!(stored(&store).phase, Phase::Backfill);
    assert!(store.read(&Key::Bookmark(BACKFILL_BOOKMARK)).value.is_some(), "the walk's bookmark stays");
    driver.operator.on_rollback(driver.now);
    driver.run_until(&mut store, 30);
    driver.operator.on_rollback(driver.now);
    driver.run_until(&mut store, 40);
    assert_eq!(stored(&store), PhaseConfig { phase: Phase::Off, since: None });
    assert_eq!(store.read(&Key::Bookmark(BACKFILL_BOOKMARK)).value, None, "a fresh migration walks again");
    // The schedule's entries are spent: the rollback holds.
    driver.run_until(&mut store, 100);
    assert_eq!(stored(&store).phase, Phase::Off);
}

#[test]
fn two_operators_never_skip_a_phase() {
    let mut store = Store::new();
    let schedule = [(1, Phase::Sync), (1, Phase::Backfill)];
    let mut first = Driver::new(config(&schedule));
    let mut second = Driver::new(config(&schedule));
    for ms in 1..20 {
        first.run_until(&mut store, ms);
        second.run_until(&mut store, ms);
    }
    assert_eq!(stored(&store).phase, Phase::Backfill);
    assert!(stored(&store).since.is_some());
    for driver in [&first, &second] {
        for pair in driver.committed.windows(2) {
            assert!(pair[0].phase.code().abs_diff(pair[1].phase.code()) <= 1, "{:?}", driver.committed);
        }
    }
}

#[test]
fn a_timed_out_round_is_read_again() {
    let mut store = Store::new();
    let mut operator = Operator::new(config(&[(0, Phase::Sync)]), Time(0));
    operator.on_timer(Time(0));
    let outputs: Vec<OperatorOutput> = std::iter::from_fn(|| operator.poll_output()).collect();
    let Some(OperatorOutput::Store { tag, request }) =
        outputs.iter().find(|output| matches!(output, OperatorOutput::Store { .. })).cloned()
    else {
        panic!("a read: {outputs:?}")
    };
    let late = store.on_request(request);
    operator.on_timer(Time(5 * MS));
    let again: Vec<OperatorOutput> = std::iter::from_fn(|| operator.poll_output()).collect();
    assert!(again.iter().any(|output| matches!(output, OperatorOutput::Store { tag: retry, .. } if *retry != tag)));
    operator.on_store_reply(Time(5 * MS), tag, late);
    assert_eq!(operator.poll_output(), None, "the late reply changed nothing");
}
