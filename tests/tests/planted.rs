//! Planted violations: a known-bad variant of the real code must be caught by
//! the simulator, named by its property, and replayed from its trace.
//!
//! The variants live behind the `bugzoo` feature, which this package switches
//! on for the workspace's test build only; `cargo run --release` builds `sim`
//! alone and carries none of them.

use sim::driver::{run, RunOptions};
use sim::scenario::Scenario;
use vault::bugzoo::{Bug, Bugs};
use vaultsim_tests::workspace_root;

fn contention() -> Scenario {
    Scenario::load(&workspace_root().join("specs/scenarios/contention.toml")).expect("shipped scenario")
}

#[test]
fn unvalidated_commits_are_caught_as_rep9_and_replay_from_their_trace() {
    let scenario = contention();
    let options = RunOptions { seed: 0, swarm: false, trace: true, bugs: Bugs::with(Bug::UnvalidatedCommit) };
    let result = run(&scenario, &options);
    let failure = result.failure.expect("the simulator catches commits that skip validation");
    assert_eq!(failure.violation.property, model::PropertyId::Rep9, "{}", failure.violation);
    assert!(failure.step > 0, "caught while running, not only at the end");

    // What `vaultsim replay` does with the trace the failing run wrote.
    let text = result.trace.expect("recorded").join("\n") + "\n";
    let summary = sim::trace::replay(&text).expect("every line of the trace matches on replay");
    assert_eq!(summary.steps, failure.step, "the trace ends at the violating step");
    assert!(summary.violations.iter().any(|violation| violation.starts_with("REP-9")), "{:?}", summary.violations);
    let command = sim::report::replay_command("t.jsonl", &options.bugs);
    assert_eq!(command, "cargo run -p vaultsim-sim --features bugzoo -- replay t.jsonl");
}

#[test]
fn the_same_seed_without_the_bug_holds() {
    let scenario = contention();
    let result = run(&scenario, &RunOptions { seed: 0, swarm: false, trace: false, bugs: Bugs::none() });
    assert_eq!(result.failure, None);
    assert_eq!(sim::report::replay_command("t.jsonl", &Bugs::none()), "vaultsim replay t.jsonl");
}
