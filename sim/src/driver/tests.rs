use super::*;

fn scenario(name: &str) -> Scenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/scenarios").join(format!("{name}.toml"));
    Scenario::load(&path).expect("a shipped scenario parses")
}

fn options(seed: u64) -> RunOptions {
    RunOptions { seed, swarm: false, trace: true, bugs: Bugs::none() }
}

#[test]
fn smoke_holds_and_converges() {
    let result = run(&scenario("smoke"), &options(1));
    assert_eq!(result.failure, None);
    assert!(result.stats.converged, "the world became quiet after the heal");
    assert!(result.stats.issued.values().sum::<u64>() > 100, "{:?}", result.stats.issued);
    assert!(result.stats.commits > 50, "{:?}", result.stats);
    assert!(!result.stats.replication_lag.is_empty());
}

#[test]
fn a_seed_gives_the_same_trace_and_another_seed_does_not() {
    let smoke = scenario("smoke");
    let first = run(&smoke, &options(5));
    let second = run(&smoke, &options(5));
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.trace, second.trace);
    assert_ne!(first.trace_hash, run(&smoke, &options(6)).trace_hash);
}

#[test]
fn a_trace_replays_line_for_line() {
    let result = run(&scenario("replication-faults"), &options(3));
    let text = result.trace.expect("recorded").join("\n") + "\n";
    let summary = crate::trace::replay(&text).expect("replays");
    assert_eq!(summary.steps, result.stats.steps);
    // A tampered line is caught and named.
    let mut lines: Vec<&str> = text.lines().collect();
    let tampered = lines[5].replace("\"now\":", "\"now\":1");
    lines[5] = &tampered;
    let error = crate::trace::replay(&(lines.join("\n") + "\n")).unwrap_err();
    assert_eq!(error.line, 6, "{error}");
}

#[test]
fn faults_hold_safety_and_converge() {
    let faults = scenario("replication-faults");
    for seed in 0..3 {
        let result = run(&faults, &RunOptions { seed, swarm: false, trace: false, bugs: Bugs::none() });
        assert_eq!(result.failure, None, "seed {seed}");
        assert!(result.stats.converged, "seed {seed}");
    }
}

#[test]
fn sync_contention_conflicts_and_async_does_not() {
    let mut contention = scenario("contention");
    let sync = run(&contention, &RunOptions { seed: 2, swarm: false, trace: false, bugs: Bugs::none() });
    contention.replication.mode = crate::scenario::Mode::Async;
    let asynchronous = run(&contention, &RunOptions { seed: 2, swarm: false, trace: false, bugs: Bugs::none() });
    assert_eq!(sync.failure, None);
    assert_eq!(asynchronous.failure, None);
    // In async mode writers still conflict when two update one secret (and
    // with the activator), but no longer on the tenancy's log head.
    let (sync_conflicts, async_conflicts) = (sync.stats.conflicts, asynchronous.stats.conflicts);
    assert!(sync_conflicts > 10 * async_conflicts.max(1), "sync {sync_conflicts} vs async {async_conflicts} conflicts");
}

#[test]
fn swarm_knobs_come_from_the_seed() {
    let faults = scenario("replication-faults");
    let knobs: Vec<Knobs> = (0..16).map(|seed| Knobs::for_run(&faults, seed, true)).collect();
    assert_eq!(knobs[3], Knobs::for_run(&faults, 3, true));
    assert!(knobs.iter().any(|knobs| knobs.crashes) && knobs.iter().any(|knobs| !knobs.crashes));
    assert!(knobs.iter().any(|knobs| knobs.mode == InterceptorMode::Sync));
    assert!(knobs.iter().any(|knobs| knobs.mode == InterceptorMode::Async));
}

#[test]
fn a_store_with_a_service_time_serves_one_request_at_a_time() {
    let mut smoke = scenario("smoke");
    smoke.network.store_service_us = 2_000;
    let result = run(&smoke, &options(1));
    assert!(result.failure.is_none(), "{:?}", result.failure);
    // Messages sent to the store, by id, and the times their deliveries took effect.
    let mut to_store = std::collections::BTreeSet::new();
    let mut served = Vec::new();
    for line in result.trace.expect("recorded") {
        let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        if let Some(message) = json["action"]["deliver"]["message"].as_u64() {
            if to_store.contains(&message) {
                served.push(json["now"].as_u64().expect("a time"));
            }
        }
        for sent in json["sent"].as_array().into_iter().flatten() {
            if sent[2] == "store" {
                to_store.insert(sent[0].as_u64().expect("a message id"));
            }
        }
    }
    assert!(served.len() > 100, "{} store requests", served.len());
    for pair in served.windows(2) {
        assert!(pair[1] >= pair[0] + 2_000_000, "store requests served at {} and {} ns", pair[0], pair[1]);
    }
}
