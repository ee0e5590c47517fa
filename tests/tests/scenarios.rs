//! Scenario sweeps: every shipped scenario holds for a band of seeds, in its
//! own configuration and in swarm mode, and its traces replay and render.
//!
//! Bounded so CI stays fast: a few seeds each (the default suite, `cargo run
//! --release`, runs each scenario's own seed count on top of this).

use sim::driver::{run, RunOptions};
use sim::scenario::Scenario;
use sim::suite::Suite;
use vault::bugzoo::Bugs;
use vaultsim_tests::workspace_root;

const SEEDS: u64 = 4;
const SWARM_SEEDS: u64 = 8;

fn scenarios() -> Vec<Scenario> {
    let suite = Suite::discover(&workspace_root().join("specs")).expect("specs folder");
    assert!(suite.scenarios.len() >= 3, "smoke, replication-faults and contention ship");
    suite.scenarios.iter().map(|path| Scenario::load(path).expect("shipped scenarios parse")).collect()
}

#[test]
fn every_scenario_holds_for_its_seeds() {
    for scenario in scenarios() {
        for seed in 0..SEEDS {
            let result = run(&scenario, &RunOptions { seed, swarm: false, trace: false, bugs: Bugs::none() });
            assert_eq!(result.failure, None, "scenario {} seed {seed}", scenario.name);
            assert!(result.stats.converged, "scenario {} seed {seed} became quiet", scenario.name);
            assert!(result.stats.commits > 0, "scenario {} seed {seed} did work", scenario.name);
        }
    }
}

#[test]
fn every_scenario_holds_in_swarm_mode() {
    for scenario in scenarios() {
        for seed in 100..100 + SWARM_SEEDS {
            let result = run(&scenario, &RunOptions { seed, swarm: true, trace: false, bugs: Bugs::none() });
            assert_eq!(result.failure, None, "scenario {} swarm seed {seed} ({:?})", scenario.name, result.knobs);
        }
    }
}

#[test]
fn traces_are_deterministic_replay_and_render() {
    for scenario in scenarios() {
        let options = RunOptions { seed: 7, swarm: true, trace: true, bugs: Bugs::none() };
        let first = run(&scenario, &options);
        let second = run(&scenario, &options);
        assert_eq!(first.trace_hash, second.trace_hash, "scenario {} is deterministic", scenario.name);
        let text = first.trace.expect("recorded").join("\n") + "\n";
        let summary = sim::trace::replay(&text).expect("replays");
        assert_eq!(summary.steps, first.stats.steps, "scenario {}", scenario.name);
        let diagram = sim::trace::render_mermaid(&text, 0, 40, false).expect("renders");
        assert!(diagram.starts_with("sequenceDiagram\n"), "{diagram}");
        assert!(diagram.contains("participant store as store"), "{diagram}");
        assert!(diagram.contains("->>"), "a delivered message is drawn: {diagram}");
        let quiet = sim::trace::render_mermaid(&text, 0, u64::MAX, true).expect("renders");
        assert!(!quiet.contains(": poll\n"), "idle polls are hidden");
        assert!(quiet.contains("->>client: req"), "answers to clients stay: {quiet}");
    }
}

/// Adding a shard live fails no request: `add-shard` without its crashes,
/// partitions and drops, so RTE-5 judges every `Unavailable` answer and
/// every request must be served, the new shard's too.
#[test]
fn adding_a_shard_under_load_fails_no_request() {
    let path = workspace_root().join("specs/scenarios/add-shard.toml");
    let mut scenario = Scenario::load(&path).expect("add-shard parses");
    scenario.faults = Default::default();
    scenario.network.drop_per_million = 0;
    scenario.network.duplicate_per_million = 0;
    let mut added = 0;
    for seed in 0..SWARM_SEEDS {
        let result = run(&scenario, &RunOptions { seed, swarm: false, trace: false, bugs: Bugs::none() });
        assert_eq!(result.failure, None, "seed {seed}");
        assert!(result.stats.converged, "seed {seed} became quiet");
        added += result.stats.shards.get(&2).map_or(0, |shard| shard.issued);
        for (shard, stats) in &result.stats.shards {
            assert_eq!(stats.served, stats.issued, "seed {seed}: shard {shard} failed a request");
        }
    }
    // Most traffic goes to the oldest secrets, so the new shard's share is
    // small; some of it must reach it for the check to mean anything.
    assert!(added > 0, "requests reached the added shard");
}
