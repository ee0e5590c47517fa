//! The bug zoo, caught: every known-bad variant of the real code
//! (`vault::bugzoo::Bug`) is caught by the seeded simulator, named by the
//! property it breaks and replayed from its trace, and by the model checker,
//! whose shortest counterexample and state count are pinned. The same seed or
//! configuration without the bug holds, so each catch is the bug's doing.
//!
//! Where a catch names another property than the entry's own, or where a
//! driver cannot catch an entry, a `// Postmortem:` comment says why.
//!
//! Pins: a model test pins the unique states of the whole bounded space with
//! the bug on, the length of its shortest counterexample and the path itself,
//! rendered compactly (`t=<ms> <what>`, deliveries named by sender, receiver
//! and payload). A mismatch prints the new path ready to paste.

use std::collections::BTreeSet;

use model::PropertyId;
use sim::checker::{shortest_discovery, CheckModel, CheckOptions, ModelConfig};
use sim::driver::{run, Failure, RunOptions};
use sim::scenario::Scenario;
use sim::world::{Action, NodeId, Payload, World};
use stateright::{Checker, Model};
use vault::bugzoo::{Bug, Bugs};
use vault::store::{CommitOutcome, StoreReply, StoreRequest};
use vault::types::Time;
use vault::worker::Operation;
use vaultsim_tests::workspace_root;

/// Seeds tried per entry.
const SEEDS: u64 = 20;

/// Every entry and the test of this file (or `planted.rs`) that catches it.
const CAUGHT: [(Bug, &str); 9] = [
    (Bug::CorruptingApply, "corrupting_apply_*"),
    (Bug::UnversionedApply, "unversioned_apply_*"),
    (Bug::PublishWithoutReads, "publish_without_reads_*"),
    (Bug::CursorBeforeData, "cursor_before_data_*"),
    (Bug::StopPollingWhenIdle, "stop_polling_when_idle_*"),
    (Bug::ActivateOnCommit, "activate_on_commit_*"),
    (Bug::AcknowledgeBeforeCommit, "acknowledge_before_commit_*"),
    (Bug::UnvalidatedCommit, "planted.rs, unvalidated_commit_*"),
    (Bug::SharedBucket, "one_bucket_for_all_tenants_*"),
];

#[test]
fn every_entry_of_the_zoo_has_a_catch() {
    let caught: BTreeSet<Bug> = CAUGHT.iter().map(|(bug, _)| *bug).collect();
    let all: BTreeSet<Bug> = Bug::ALL.into_iter().collect();
    assert_eq!(caught, all, "a bug-zoo entry without a test that catches it");
    for (bug, _) in CAUGHT {
        assert!(PropertyId::parse(bug.breaks()).is_some(), "{} breaks an unknown property", bug.name());
    }
}

// --- unvalidated-commit (REP-9) --------------------------------------------

#[test]
fn unvalidated_commit_is_caught_by_the_model_checker_as_rep9() {
    // The simulator's catch is in `planted.rs`. Two writers update one secret
    // on the same read; without validation both commit the same version.
    let catch = check("zoo-unvalidated-commit", Bug::UnvalidatedCommit, "REP-9");
    assert_eq!(catch.unique_states, 74_802);
    assert_path(
        &catch.path,
        &[
            "t=0ms submit req0 create s0 to worker0",
            "t=0ms submit req2 update s0 to worker1",
            "t=0ms deliver client->worker0 request create s0",
            "t=0ms deliver client->worker1 request update s0",
            "t=0ms deliver worker0->store read 3 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store commit (3 reads, 3 writes)",
            "t=0ms deliver worker1->store read 1 keys",
            "t=0ms deliver store->worker0 commit reply: committed",
            "t=0ms deliver store->worker1 read reply",
            "t=0ms deliver worker0->client answer ok",
            "t=0ms submit req1 update s0 to worker0",
            "t=0ms deliver client->worker0 request update s0",
            "t=0ms deliver worker0->store read 1 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store commit (1 reads, 2 writes)",
            "t=0ms deliver worker1->store commit (1 reads, 2 writes)",
        ],
    );
}

// --- corrupting-apply (REP-1) ----------------------------------------------

#[test]
fn corrupting_apply_is_caught_by_the_simulator_as_rep1() {
    let (seed, failure) = first_failure(&scenario("smoke"), false, Bug::CorruptingApply, None);
    assert_eq!(failure.violation.property, PropertyId::Rep1, "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 90));
}

#[test]
fn corrupting_apply_is_caught_by_the_model_checker_as_rep1() {
    let catch = check("sync-one-host", Bug::CorruptingApply, "REP-1");
    assert_eq!(catch.unique_states, 7_920);
    assert_path(
        &catch.path,
        &[
            "t=0ms submit req0 create s0 to worker0",
            "t=0ms deliver client->worker0 request create s0",
            "t=0ms deliver worker0->store read 3 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store read 1 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store commit (4 reads, 3 writes)",
            "t=0ms fire host0",
            "t=0ms deliver host0->store poll []",
            "t=0ms deliver store->host0 poll reply [1:s0v1]",
        ],
    );
}

// --- unversioned-apply (REP-2) ---------------------------------------------

#[test]
fn unversioned_apply_is_caught_by_the_simulator_as_ref1_then_rep2() {
    // Postmortem: a late reply moves a secret back without moving the host's
    // cursor, and the world reports what a host holds only for the log range
    // its cursor crossed, or in full when it restarts. So REP-2 shows at the
    // host's next restart; before that, the refinement check (REF-1) sees the
    // host's record change in a way no spec step explains, at the host's next
    // apply or at the latest at its crash. REF-1 is genuinely broken by this
    // bug, and it fires first. Scenario runs need swarm knobs (small poll
    // batches, so hosts poll back to back) for late replies to overtake.
    let faults = scenario("replication-faults");
    let (seed, failure) = first_failure(&faults, true, Bug::UnversionedApply, None);
    assert_eq!(failure.violation.property, PropertyId::Ref1, "{}", failure.violation);
    assert_eq!((seed, failure.step), (3, 1296));
    // The same regression, judged by the replication properties alone: REP-2
    // when the host restarts from the durable state that moved back.
    let replication_only: Vec<&str> =
        PropertyId::ALL.into_iter().filter(|id| *id != PropertyId::Ref1).map(PropertyId::as_str).collect();
    let (seed, failure) = first_failure(&faults, true, Bug::UnversionedApply, Some(&replication_only));
    assert_eq!(failure.violation.property, PropertyId::Rep2, "{}", failure.violation);
    assert!(failure.violation.detail.contains("before its crash"), "{}", failure.violation);
    assert_eq!((seed, failure.step), (3, 2253));
}

#[test]
fn unversioned_apply_is_caught_by_the_model_checker_as_ref1() {
    // Postmortem: REP-2 needs the host to restart after the late reply (see
    // the simulator test above); with a crash budget the shortest path is 24
    // actions deep and the search to it visits over a million states (about
    // 20 s). The checker's refinement check compares the whole abstraction
    // on every step, so it names the regression (REF-1) at the very step the
    // late reply is applied, in a space one crash smaller.
    let catch = check("zoo-unversioned-apply", Bug::UnversionedApply, "REF-1");
    assert_eq!(catch.unique_states, 137_640);
    assert_path(
        &catch.path,
        &[
            "t=0ms submit req0 create s0 to worker0",
            "t=0ms deliver client->worker0 request create s0",
            "t=0ms deliver worker0->store read 3 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store read 1 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store commit (4 reads, 3 writes)",
            "t=0ms deliver store->worker0 commit reply: committed",
            "t=0ms deliver worker0->client answer ok",
            "t=0ms submit req1 update s0 to worker0",
            "t=0ms deliver client->worker0 request update s0",
            "t=0ms deliver worker0->store read 1 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store read 1 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms fire host0",
            "t=0ms deliver host0->store poll []",
            "t=0ms deliver worker0->store commit (2 reads, 2 writes)",
            "t=1ms fire host0",
            "t=1ms deliver host0->store poll []",
            "t=1ms deliver store->host0 poll reply [1:s0v1 2:s0v2]",
            "t=1ms deliver store->host0 poll reply [1:s0v1]",
        ],
    );
}

// --- publish-without-reads (REP-4) -----------------------------------------

#[test]
fn publish_without_reads_is_caught_by_the_simulator_as_rep4() {
    let (seed, failure) = first_failure(&scenario("replication-faults"), false, Bug::PublishWithoutReads, None);
    assert_eq!(failure.violation.property, PropertyId::Rep4, "{}", failure.violation);
    assert_eq!((seed, failure.step), (1, 2655));
}

#[test]
fn publish_without_reads_is_caught_by_the_model_checker_as_rep4() {
    let catch = check("zoo-publish-without-reads", Bug::PublishWithoutReads, "REP-4");
    assert_eq!(catch.unique_states, 10_957);
    assert_path(
        &catch.path,
        &[
            "t=0ms submit req0 create s0 to worker0",
            "t=0ms deliver client->worker0 request create s0",
            "t=0ms deliver worker0->store read 3 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store commit (3 reads, 3 writes)",
            "t=0ms fire publisher0",
            "t=0ms deliver publisher0->store read-outbox",
            "t=0ms deliver store->publisher0 outbox reply: 1 rows",
            "crash publisher0",
            "restart publisher0",
            "t=0ms fire publisher0",
            "t=0ms deliver publisher0->store read-outbox",
            "t=0ms deliver store->publisher0 outbox reply: 1 rows",
            "t=0ms deliver publisher0->store commit (0 reads, 2 writes)",
            "t=0ms deliver publisher0->store commit (0 reads, 2 writes)",
        ],
    );
}

// --- cursor-before-data (REP-5) --------------------------------------------

#[test]
fn cursor_before_data_is_caught_by_the_simulator_as_rep5() {
    // The world reads a host's durable state after every poll reply, so the
    // cursor that passed records still in the volatile buffer is seen at once,
    // before any crash makes the loss real.
    let (seed, failure) = first_failure(&scenario("smoke"), false, Bug::CursorBeforeData, None);
    assert_eq!(failure.violation.property, PropertyId::Rep5, "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 90));
}

#[test]
fn cursor_before_data_is_caught_by_the_model_checker_as_rep5() {
    let catch = check("sync-one-host", Bug::CursorBeforeData, "REP-5");
    assert_eq!(catch.unique_states, 8_080);
    assert_path(
        &catch.path,
        &[
            "t=0ms submit req0 create s0 to worker0",
            "t=0ms deliver client->worker0 request create s0",
            "t=0ms deliver worker0->store read 3 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store read 1 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store commit (4 reads, 3 writes)",
            "t=0ms fire host0",
            "t=0ms deliver host0->store poll []",
            "t=0ms deliver store->host0 poll reply [1:s0v1]",
        ],
    );
}

// --- stop-polling-when-idle (REP-6) ----------------------------------------

#[test]
fn stop_polling_when_idle_is_caught_by_the_simulator_as_rep6() {
    // Every host's first poll finds an empty log and its loop ends; once its
    // stale poll deadline fires and its report is delivered, nothing can wake
    // it again, and the world reports it stranded: REP-6 at that step, long
    // before an end of run that the stuck world would never reach quietly.
    let (seed, failure) = first_failure(&scenario("smoke"), false, Bug::StopPollingWhenIdle, None);
    assert_eq!(failure.violation.property, PropertyId::Rep6, "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 620));
    assert!(failure.violation.detail.contains("can never catch up"), "{}", failure.violation);
}

#[test]
fn stop_polling_when_idle_is_caught_by_the_model_checker_as_rep6() {
    // Postmortem: in `sync-one-host` the stale poll deadline (30 ms) lies past
    // the 10 ms horizon, so the stopped host still looks armed in every state
    // the checker expands. The zoo configuration shortens the request timeout
    // to 10 ms; the deadline fires at the horizon and the stranded host shows.
    let catch = check("zoo-stop-polling-when-idle", Bug::StopPollingWhenIdle, "REP-6");
    assert_eq!(catch.unique_states, 30_742);
    assert_path(
        &catch.path,
        &[
            "t=0ms fire host0",
            "t=0ms deliver host0->store poll []",
            "t=0ms deliver store->host0 poll reply []",
            "t=0ms deliver host0->activator applied []",
            "t=10ms fire host0",
        ],
    );
}

#[test]
fn a_depth_first_check_still_reports_a_shortest_counterexample() {
    // DFS finds REP-6 along a long path first; `check` replaces it with a
    // shortest one before anyone reads it.
    let config = model_config("zoo-stop-polling-when-idle");
    let options = CheckOptions { bfs: false, threads: 2, max_depth: None };
    let report = sim::checker::check(&config, &Bugs::with(Bug::StopPollingWhenIdle), &options);
    assert!(!report.passed);
    let rep6 = report.properties.iter().find(|outcome| outcome.name == "REP-6").expect("listed");
    assert_eq!((rep6.status, rep6.path_length), ("violated", Some(5)));
    let trace = rep6.trace.as_ref().expect("a counterexample trace").join("\n") + "\n";
    let summary = sim::trace::replay(&trace).expect("replays");
    assert!(summary.violations.iter().any(|violation| violation.starts_with("REP-6")), "{:?}", summary.violations);
}

// --- activate-on-commit (REP-7) --------------------------------------------

#[test]
fn activate_on_commit_is_caught_by_the_simulator_as_rep7() {
    let (seed, failure) = first_failure(&scenario("smoke"), false, Bug::ActivateOnCommit, None);
    assert_eq!(failure.violation.property, PropertyId::Rep7, "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 635));
}

#[test]
fn activate_on_commit_is_caught_by_the_model_checker_as_rep7() {
    let catch = check("sync-one-host", Bug::ActivateOnCommit, "REP-7");
    assert_eq!(catch.unique_states, 12_415);
    assert_path(
        &catch.path,
        &[
            "t=0ms submit req0 create s0 to worker0",
            "t=0ms deliver client->worker0 request create s0",
            "t=0ms deliver worker0->store read 3 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store read 1 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store commit (4 reads, 3 writes)",
            "t=0ms fire activator",
            "t=0ms deliver activator->store poll []",
            "t=0ms deliver store->activator poll reply [1:s0v1]",
            "t=0ms deliver activator->store read 2 keys",
            "t=0ms deliver store->activator read reply",
            "t=0ms deliver activator->store commit (2 reads, 2 writes)",
        ],
    );
}

// --- acknowledge-before-commit (REP-8) -------------------------------------

#[test]
fn acknowledge_before_commit_is_caught_by_the_simulator_as_rep8() {
    let (seed, failure) = first_failure(&scenario("smoke"), false, Bug::AcknowledgeBeforeCommit, None);
    assert_eq!(failure.violation.property, PropertyId::Rep8, "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 31));
}

#[test]
fn acknowledge_before_commit_is_caught_by_the_model_checker_as_rep8() {
    let catch = check("sync-one-host", Bug::AcknowledgeBeforeCommit, "REP-8");
    assert_eq!(catch.unique_states, 13_785);
    assert_path(
        &catch.path,
        &[
            "t=0ms submit req0 create s0 to worker0",
            "t=0ms deliver client->worker0 request create s0",
            "t=0ms deliver worker0->store read 3 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store read 1 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->client answer ok",
        ],
    );
}

// --- one-bucket-for-all-tenants (THR-2) ------------------------------------

#[test]
fn one_bucket_for_all_tenants_is_caught_by_the_simulator_as_thr2() {
    // Postmortem: only the simulator catches it; the model configurations
    // have no quotas (THR-1 and THR-2 simply hold there).
    let noisy = scenario("noisy-neighbour");
    let (seed, failure) = first_failure(&noisy, false, Bug::SharedBucket, None);
    assert_eq!(failure.violation.property, PropertyId::Thr2, "{}", failure.violation);
    // The first victim is the noisy tenant itself: a quiet tenant took a
    // token of the one shared bucket that tenant 0's own bucket would still hold.
    assert!(failure.violation.detail.contains("while its own quota held a token"), "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 202));
}

// --- the simulator ----------------------------------------------------------

fn scenario(name: &str) -> Scenario {
    Scenario::load(&workspace_root().join(format!("specs/scenarios/{name}.toml"))).expect("shipped scenario")
}

/// Runs seeds `0..SEEDS` of `scenario` with `bug` on (checking only the
/// properties `only`, if given) and returns the first failing seed and its
/// failure, having checked that its trace replays with the violation
/// reproduced and that the same seed without the bug holds.
fn first_failure(scenario: &Scenario, swarm: bool, bug: Bug, only: Option<&[&str]>) -> (u64, Failure) {
    let mut scenario = scenario.clone();
    if let Some(only) = only {
        scenario.run.properties = only.iter().map(ToString::to_string).collect();
    }
    for seed in 0..SEEDS {
        let options = RunOptions { seed, swarm, trace: true, bugs: Bugs::with(bug) };
        let result = run(&scenario, &options);
        let Some(failure) = result.failure else { continue };
        // What `vaultsim replay` does with the trace the failing run wrote.
        let text = result.trace.expect("recorded").join("\n") + "\n";
        let summary = sim::trace::replay(&text).unwrap_or_else(|error| panic!("{} seed {seed}: {error:?}", bug.name()));
        if failure.step > 0 {
            assert_eq!(summary.steps, failure.step, "the trace ends at the violating step");
        }
        let violation = failure.violation.to_string();
        assert!(summary.violations.contains(&violation), "replay lost `{violation}`: {:?}", summary.violations);
        let control = run(&scenario, &RunOptions { seed, swarm, trace: false, bugs: Bugs::none() });
        assert_eq!(control.failure, None, "seed {seed} fails without {}", bug.name());
        return (seed, failure);
    }
    panic!("{} survived seeds 0..{SEEDS} of {}", bug.name(), scenario.name);
}

// --- the model checker ------------------------------------------------------

fn model_config(name: &str) -> ModelConfig {
    ModelConfig::load(&workspace_root().join(format!("specs/models/{name}.toml"))).expect("shipped model")
}

/// What the checker found for one entry.
struct ModelCatch {
    /// Unique states of the whole bounded space with the bug on.
    unique_states: usize,
    /// A shortest counterexample, rendered by [`describe_path`].
    path: Vec<String>,
}

/// Checks the model `config_name` with `bug` on: `property` is violated
/// somewhere in the bounded space; [`shortest_discovery`] gives a shortest
/// counterexample; its trace replays; and the same model without the bug does
/// not violate `property`.
fn check(config_name: &str, bug: Bug, property: &'static str) -> ModelCatch {
    let config = model_config(config_name);
    let model = CheckModel::new(config.clone(), Bugs::with(bug));
    let whole = model.clone().checker().spawn_bfs().join();
    assert!(whole.discovery(property).is_some(), "{} escapes the checker in {config_name}", bug.name());
    let actions = shortest_discovery(&model, property, 1).expect("found again");
    let text = model.trace(&actions).join("\n") + "\n";
    let summary = sim::trace::replay(&text).unwrap_or_else(|error| panic!("the counterexample replays: {error:?}"));
    assert_eq!(summary.steps as usize, actions.len());
    assert!(
        summary.violations.iter().any(|violation| violation.starts_with(property)),
        "{property} not reproduced on replay: {:?}",
        summary.violations
    );
    let control = CheckModel::new(config, Bugs::none()).checker().spawn_bfs().join();
    assert!(control.discovery(property).is_none(), "{config_name} violates {property} without {}", bug.name());
    ModelCatch { unique_states: whole.unique_state_count(), path: describe_path(&model, &actions) }
}

/// Compares a path with its pin; on a mismatch prints the path as a literal to paste.
fn assert_path(actual: &[String], expected: &[&str]) {
    if actual.iter().map(String::as_str).ne(expected.iter().copied()) {
        let literal: String = actual.iter().map(|line| format!("        {line:?},\n")).collect();
        panic!("the counterexample changed ({} actions); it is now:\n    &[\n{literal}    ]", actual.len());
    }
}

/// The actions of a path, each rendered against the world it applies to.
fn describe_path(model: &CheckModel, actions: &[Action]) -> Vec<String> {
    let mut world = model.initial_state().world;
    actions
        .iter()
        .map(|action| {
            let line = describe(&world, action);
            world.step(action);
            line
        })
        .collect()
}

fn describe(world: &World, action: &Action) -> String {
    let message = |id| {
        let message = &world.in_flight()[id];
        format!("{}->{} {}", node(message.from), node(message.to), payload(&message.payload))
    };
    match action {
        Action::Deliver { message: id, at } => format!("{} deliver {}", time(*at), message(id)),
        Action::Drop(id) => format!("drop {}", message(id)),
        Action::Duplicate(id) => format!("duplicate {}", message(id)),
        Action::FireTimer { node: fired, at } => format!("{} fire {}", time(*at), node(*fired)),
        Action::Crash(crashed) => format!("crash {}", node(*crashed)),
        Action::Restart(restarted) => format!("restart {}", node(*restarted)),
        Action::Isolate(isolated) => format!("isolate {}", node(*isolated)),
        Action::Heal => "heal".to_string(),
        Action::Submit { request, worker, operation, at } => {
            format!("{} submit req{} {} to worker{worker}", time(*at), request.0, operation_name(operation))
        }
        Action::Read { request, host, secret, at } => {
            format!("{} host-read req{} s{} at host{host}", time(*at), request.0, secret.0)
        }
    }
}

fn time(at: Time) -> String {
    format!("t={}ms", at.0 as f64 / 1e6)
}

fn node(node: NodeId) -> String {
    match node {
        NodeId::Store => "store".to_string(),
        NodeId::Worker(index) => format!("worker{index}"),
        NodeId::Host(index) => format!("host{index}"),
        NodeId::Publisher(tenant) => format!("publisher{tenant}"),
        NodeId::Activator => "activator".to_string(),
        NodeId::Client => "client".to_string(),
    }
}

fn operation_name(operation: &Operation) -> String {
    match operation {
        Operation::CreateVault { vault, .. } => format!("create-vault v{}", vault.0),
        Operation::DeleteVault { vault } => format!("delete-vault v{}", vault.0),
        Operation::CreateSecret { secret, .. } => format!("create s{}", secret.0),
        Operation::UpdateSecret { secret, .. } => format!("update s{}", secret.0),
        Operation::ScheduleDeletion { secret } => format!("schedule-deletion s{}", secret.0),
        Operation::DeleteSecret { secret, .. } => format!("delete s{}", secret.0),
        Operation::ReadSecret { secret } => format!("read s{}", secret.0),
    }
}

fn payload(payload: &Payload) -> String {
    match payload {
        Payload::StoreRequest { request, .. } => match request {
            StoreRequest::Read { keys } => format!("read {} keys", keys.len()),
            StoreRequest::Commit(transaction) => {
                format!("commit ({} reads, {} writes)", transaction.reads.len(), transaction.writes.len())
            }
            StoreRequest::Scan { .. } => "scan".to_string(),
            StoreRequest::ReadOutbox { .. } => "read-outbox".to_string(),
            StoreRequest::Poll { cursors, .. } => {
                let cursors: Vec<String> =
                    cursors.iter().map(|(tenant, seq)| format!("t{}@{}", tenant.0, seq.0)).collect();
                format!("poll [{}]", cursors.join(" "))
            }
        },
        Payload::StoreReply { reply, .. } => match reply {
            StoreReply::Read(_) => "read reply".to_string(),
            StoreReply::Commit(CommitOutcome::Committed { .. }) => "commit reply: committed".to_string(),
            StoreReply::Commit(CommitOutcome::Conflict { .. }) => "commit reply: conflict".to_string(),
            StoreReply::Commit(CommitOutcome::Invalid(_)) => "commit reply: invalid".to_string(),
            StoreReply::Scan(_) => "scan reply".to_string(),
            StoreReply::Outbox { rows, .. } => format!("outbox reply: {} rows", rows.len()),
            StoreReply::Poll(events) => {
                let events: Vec<String> = events
                    .iter()
                    .map(|event| {
                        format!("{}:s{}v{}", event.seq.0, event.mutation.secret.0, event.mutation.record.version.0)
                    })
                    .collect();
                format!("poll reply [{}]", events.join(" "))
            }
        },
        Payload::ClientRequest { operation, .. } => format!("request {}", operation_name(operation)),
        Payload::ClientAnswer { result, .. } => match result {
            Ok(_) => "answer ok".to_string(),
            Err(error) => format!("answer {error:?}"),
        },
        Payload::HostRead { secret, .. } => format!("host-read s{}", secret.0),
        Payload::HostReadAnswer { .. } => "host-read answer".to_string(),
        Payload::Applied { cursors, .. } => {
            let cursors: Vec<String> = cursors.iter().map(|(tenant, seq)| format!("t{}@{}", tenant.0, seq.0)).collect();
            format!("applied [{}]", cursors.join(" "))
        }
    }
}
