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
//!
//! How each entry is caught (scenario, swarm, seeds and properties judged;
//! model configuration and property) is not written here: it is the entry's
//! recipe in `sim::zoo`, the same one `vaultsim bugs` runs. These tests pin
//! what the recipes find.

use std::collections::BTreeSet;
use std::path::PathBuf;

use model::PropertyId;
use sim::checker::{CheckModel, CheckOptions};
use sim::driver::Failure;
use sim::world::{Action, NodeId, Payload, World};
use sim::zoo::{self, ModelRecipe, Properties, SimRecipe};
use vault::bugzoo::{Bug, Bugs};
use vault::store::{CommitOutcome, StoreReply, StoreRequest};
use vault::types::Time;
use vault::worker::Operation;
use vaultsim_tests::workspace_root;

/// Every entry and the test of this file (or `planted.rs`) that catches it.
const CAUGHT: [(Bug, &str); 19] = [
    (Bug::CorruptingApply, "corrupting_apply_*"),
    (Bug::UnversionedApply, "unversioned_apply_*"),
    (Bug::PublishWithoutReads, "publish_without_reads_*"),
    (Bug::CursorBeforeData, "cursor_before_data_*"),
    (Bug::StopPollingWhenIdle, "stop_polling_when_idle_*"),
    (Bug::ActivateOnCommit, "activate_on_commit_*"),
    (Bug::AcknowledgeBeforeCommit, "acknowledge_before_commit_*"),
    (Bug::UnvalidatedCommit, "unvalidated_commit_*, planted.rs"),
    (Bug::SharedBucket, "one_bucket_for_all_tenants_*"),
    (Bug::UnconditionalBackfillEvents, "unconditional_backfill_events_*"),
    (Bug::DeleteWithoutTombstone, "delete_without_tombstone_*"),
    (Bug::VolatileBookmark, "volatile_bookmark_*"),
    (Bug::VersionBlindVerifier, "version_blind_verifier_*"),
    (Bug::SwitchoverWithoutFallback, "switchover_without_fallback_*"),
    (Bug::UnthrottledBackfill, "unthrottled_backfill_*"),
    (Bug::NoRouteFallback, "no_route_fallback_*"),
    (Bug::RouteBeforeReady, "route_before_ready_*"),
    (Bug::RouteByTenancy, "route_by_tenancy_*"),
    (Bug::ReadyBeforeEveryHost, "ready_before_every_host_*"),
];

#[test]
fn every_entry_of_the_zoo_has_a_catch() {
    let caught: BTreeSet<Bug> = CAUGHT.iter().map(|(bug, _)| *bug).collect();
    let all: BTreeSet<Bug> = Bug::ALL.into_iter().collect();
    assert_eq!(caught, all, "a bug-zoo entry without a test that catches it");
    for (bug, _) in CAUGHT {
        assert!(PropertyId::parse(bug.breaks()).is_some(), "{} breaks an unknown property", bug.name());
    }
    let recipes: Vec<Bug> = zoo::recipes().iter().map(|recipe| recipe.bug).collect();
    assert_eq!(recipes, Bug::ALL.to_vec(), "`vaultsim bugs` runs a recipe per entry, in zoo order");
}

// --- unvalidated-commit (REP-9) --------------------------------------------

#[test]
fn unvalidated_commit_is_caught_by_the_simulator_as_rep9() {
    // `planted.rs` checks the same catch step by step on `contention` seed 0.
    let (seed, failure) = first_failure(Bug::UnvalidatedCommit);
    assert_eq!(failure.violation.property, PropertyId::Rep9, "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 191));
}

#[test]
fn unvalidated_commit_is_caught_by_the_model_checker_as_rep9() {
    // Two writers update one secret
    // on the same read; without validation both commit the same version.
    let catch = check(Bug::UnvalidatedCommit);
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
    let (seed, failure) = first_failure(Bug::CorruptingApply);
    assert_eq!(failure.violation.property, PropertyId::Rep1, "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 90));
}

#[test]
fn corrupting_apply_is_caught_by_the_model_checker_as_rep1() {
    let catch = check(Bug::CorruptingApply);
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
    let recipe = zoo::recipe(Bug::UnversionedApply).simulator.expect("a simulator recipe");
    let every_property = SimRecipe { properties: Properties::Scenario, expect: PropertyId::Ref1, ..recipe };
    let (seed, failure) = first_failure_of(Bug::UnversionedApply, &every_property);
    assert_eq!(failure.violation.property, PropertyId::Ref1, "{}", failure.violation);
    assert_eq!((seed, failure.step), (3, 1296));
    // The same regression, judged by the replication properties alone (the
    // zoo's recipe): REP-2 when the host restarts from the durable state that
    // moved back.
    let (seed, failure) = first_failure(Bug::UnversionedApply);
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
    let catch = check(Bug::UnversionedApply);
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
    let (seed, failure) = first_failure(Bug::PublishWithoutReads);
    assert_eq!(failure.violation.property, PropertyId::Rep4, "{}", failure.violation);
    assert_eq!((seed, failure.step), (1, 2655));
}

#[test]
fn publish_without_reads_is_caught_by_the_model_checker_as_rep4() {
    let catch = check(Bug::PublishWithoutReads);
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
    let (seed, failure) = first_failure(Bug::CursorBeforeData);
    assert_eq!(failure.violation.property, PropertyId::Rep5, "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 90));
}

#[test]
fn cursor_before_data_is_caught_by_the_model_checker_as_rep5() {
    let catch = check(Bug::CursorBeforeData);
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
    let (seed, failure) = first_failure(Bug::StopPollingWhenIdle);
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
    let catch = check(Bug::StopPollingWhenIdle);
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
    let config = model_recipe(Bug::StopPollingWhenIdle).load(&specs()).expect("shipped model");
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
    let (seed, failure) = first_failure(Bug::ActivateOnCommit);
    assert_eq!(failure.violation.property, PropertyId::Rep7, "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 635));
}

#[test]
fn activate_on_commit_is_caught_by_the_model_checker_as_rep7() {
    let catch = check(Bug::ActivateOnCommit);
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
    let (seed, failure) = first_failure(Bug::AcknowledgeBeforeCommit);
    assert_eq!(failure.violation.property, PropertyId::Rep8, "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 31));
}

#[test]
fn acknowledge_before_commit_is_caught_by_the_model_checker_as_rep8() {
    let catch = check(Bug::AcknowledgeBeforeCommit);
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
    let (seed, failure) = first_failure(Bug::SharedBucket);
    assert_eq!(failure.violation.property, PropertyId::Thr2, "{}", failure.violation);
    // The first victim is the noisy tenant itself: a quiet tenant took a
    // token of the one shared bucket that tenant 0's own bucket would still hold.
    assert!(failure.violation.detail.contains("while its own quota held a token"), "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 202));
}

// --- the migration entries --------------------------------------------------
//
// Each is caught by the simulator and by the checker, on the migration
// configurations (`specs/models/migration-*.toml`), except
// `unthrottled-backfill`: the model configurations' jobs have no budget.

#[test]
fn unconditional_backfill_events_is_caught_by_the_simulator_as_mig1() {
    // A live update of seeded secret 0 lands between the page's scan and its
    // commit (the budget spaces them apart); the commit validates none of the
    // rows it read, so it goes through and emits the older record after the
    // live one.
    let (seed, failure) = first_failure(Bug::UnconditionalBackfillEvents);
    assert_eq!(failure.violation.property, PropertyId::Mig1, "{}", failure.violation);
    assert!(failure.violation.detail.contains("emitted secret 0 at version 1"), "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 492));
}

#[test]
fn unconditional_backfill_events_is_caught_by_the_model_checker_as_mig1() {
    // The client's update lands between the page's scan and its commit; the
    // commit validates none of the rows it read and emits the older record.
    let catch = check(Bug::UnconditionalBackfillEvents);
    assert_eq!(catch.unique_states, 287_064);
    assert_path(
        &catch.path,
        &[
            "t=0ms submit req0 update s0 to worker0",
            "t=0ms deliver client->worker0 request update s0",
            "t=0ms deliver worker0->store read 2 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store read 1 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms fire backfiller",
            "t=0ms deliver backfiller->store read 1 keys",
            "t=0ms deliver store->backfiller read reply",
            "t=0ms deliver backfiller->store scan",
            "t=0ms deliver worker0->store commit (3 reads, 2 writes)",
            "t=0ms deliver store->backfiller scan reply",
            "t=0ms deliver backfiller->store read 1 keys",
            "t=0ms deliver store->backfiller read reply",
            "t=0ms deliver backfiller->store commit (3 reads, 3 writes)",
        ],
    );
}

#[test]
fn delete_without_tombstone_is_caught_by_the_simulator_as_rep5() {
    // Postmortem: the design expected a resurrection (REP-3), but none is
    // reachable: every event of a secret that follows its delete in the log
    // is newer (REP-4, MIG-1), so even a host without the tombstone never
    // meets an older record to take back. What the bug does break is REP-5:
    // the host's cursor passes the delete while it holds nothing of it, at
    // the first delete a host applies. (Later a restart would show REP-2 and
    // a quiet end REP-6.)
    let (seed, failure) = first_failure(Bug::DeleteWithoutTombstone);
    assert_eq!(failure.violation.property, PropertyId::Rep5, "{}", failure.violation);
    assert!(failure.violation.detail.contains("passed secret 0 version 2"), "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 726));
}

#[test]
fn delete_without_tombstone_is_caught_by_the_model_checker_as_rep5() {
    // The host applies the delete without a tombstone: its cursor passes
    // the delete while it holds nothing of the secret.
    let catch = check(Bug::DeleteWithoutTombstone);
    assert_eq!(catch.unique_states, 262_188);
    assert_path(
        &catch.path,
        &[
            "t=0ms submit req0 update s0 to worker0",
            "t=0ms deliver client->worker0 request update s0",
            "t=0ms deliver worker0->store read 2 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store read 1 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store commit (3 reads, 2 writes)",
            "t=0ms deliver store->worker0 commit reply: committed",
            "t=0ms deliver worker0->client answer ok",
            "t=10ms fire host0",
            "t=10ms submit req1 delete s1 to worker0",
            "t=10ms deliver client->worker0 request delete s1",
            "t=10ms deliver worker0->store read 2 keys",
            "t=10ms deliver store->worker0 read reply",
            "t=10ms deliver worker0->store read 1 keys",
            "t=10ms deliver store->worker0 read reply",
            "t=10ms deliver worker0->store commit (3 reads, 2 writes)",
            "t=10ms deliver host0->store poll []",
            "t=10ms deliver store->host0 poll reply [1:s0v2 2:s1v2]",
        ],
    );
}

#[test]
fn volatile_bookmark_is_caught_by_the_simulator_as_mig3() {
    // The backfiller crashes mid-walk; its next incarnation reads the stored
    // bookmark (32) only for its version and scans from the start.
    let (seed, failure) = first_failure(Bug::VolatileBookmark);
    assert_eq!(failure.violation.property, PropertyId::Mig3, "{}", failure.violation);
    assert!(failure.violation.detail.contains("position 0 behind its stored bookmark 32"), "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 1147));
}

#[test]
fn volatile_bookmark_is_caught_by_the_model_checker_as_mig3() {
    // The backfiller crashes after its first page; the next incarnation
    // scans from the start, behind its stored bookmark.
    let catch = check(Bug::VolatileBookmark);
    assert_eq!(catch.unique_states, 88_276);
    assert_path(
        &catch.path,
        &[
            "t=0ms fire backfiller",
            "t=0ms deliver backfiller->store read 1 keys",
            "t=0ms deliver store->backfiller read reply",
            "t=0ms deliver backfiller->store scan",
            "t=0ms deliver store->backfiller scan reply",
            "t=0ms deliver backfiller->store read 1 keys",
            "t=0ms deliver store->backfiller read reply",
            "t=0ms deliver backfiller->store commit (3 reads, 2 writes)",
            "t=0ms deliver store->backfiller commit reply: committed",
            "t=0ms deliver backfiller->store scan",
            "t=0ms deliver store->backfiller scan reply",
            "t=0ms deliver backfiller->store read 1 keys",
            "t=0ms deliver store->backfiller read reply",
            "crash backfiller",
            "restart backfiller",
            "t=0ms fire backfiller",
            "t=0ms deliver backfiller->store read 1 keys",
            "t=0ms deliver backfiller->store commit (3 reads, 2 writes)",
            "t=0ms deliver store->backfiller read reply",
            "t=0ms deliver backfiller->store scan",
        ],
    );
}

#[test]
fn version_blind_verifier_is_caught_by_the_simulator_as_mig4() {
    let (seed, failure) = first_failure(Bug::VersionBlindVerifier);
    assert_eq!(failure.violation.property, PropertyId::Mig4, "{}", failure.violation);
    assert!(failure.violation.detail.contains("a lag, not a mismatch"), "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 3552));
}

#[test]
fn version_blind_verifier_is_caught_by_the_model_checker_as_mig4() {
    // The host's digest is behind a live update: a lag, reported as a mismatch.
    let catch = check(Bug::VersionBlindVerifier);
    assert_eq!(catch.unique_states, 50_899);
    assert_path(
        &catch.path,
        &[
            "t=7.5ms fire verifier",
            "t=7.5ms deliver verifier->store read 1 keys",
            "t=7.5ms deliver store->verifier read reply",
            "t=7.5ms deliver verifier->store scan",
            "t=7.5ms deliver store->verifier scan reply",
            "t=7.5ms deliver verifier->host0 digest of 1 secrets",
            "t=7.5ms deliver host0->verifier digest reply: 1 entries",
        ],
    );
}

#[test]
fn switchover_without_fallback_is_caught_by_the_simulator_as_rep1_then_mig6() {
    // Postmortem: the local-only read path also skips the hybrid mode's
    // checksum check, so on `migration`, whose disks flip bits, it first
    // serves a damaged entry: REP-1, genuinely broken too.
    let recipe = zoo::recipe(Bug::SwitchoverWithoutFallback).simulator.expect("a simulator recipe");
    let bit_flips = SimRecipe { scenario: "migration", expect: PropertyId::Rep1, ..recipe };
    let (seed, failure) = first_failure_of(Bug::SwitchoverWithoutFallback, &bit_flips);
    assert_eq!(failure.violation.property, PropertyId::Rep1, "{}", failure.violation);
    assert_eq!((seed, failure.step), (1, 2727));
    // The recipe's scenario has no bit flips and many reads of secrets just
    // activated: a host still holding one `Creating` answers it as is.
    let (seed, failure) = first_failure(Bug::SwitchoverWithoutFallback);
    assert_eq!(failure.violation.property, PropertyId::Mig6, "{}", failure.violation);
    assert!(failure.violation.detail.contains("answered Creating version 1"), "{}", failure.violation);
    assert_eq!((seed, failure.step), (1, 2253));
}

#[test]
fn switchover_without_fallback_is_caught_by_the_model_checker_as_mig6() {
    // The activator commits the secret `Active` while the host still holds
    // it `Creating`; the host read that follows is answered locally, `Creating`.
    let catch = check(Bug::SwitchoverWithoutFallback);
    assert_eq!(catch.unique_states, 211_455);
    assert_path(
        &catch.path,
        &[
            "t=15ms submit req0 create s0 to worker0",
            "t=15ms deliver client->worker0 request create s0",
            "t=15ms deliver worker0->store read 4 keys",
            "t=15ms deliver store->worker0 read reply",
            "t=15ms deliver worker0->store read 1 keys",
            "t=15ms deliver store->worker0 read reply",
            "t=15ms deliver worker0->store commit (5 reads, 3 writes)",
            "t=15ms deliver store->worker0 commit reply: committed",
            "t=15ms deliver worker0->client answer ok",
            "t=15ms host-read req1 s0 at host0",
            "t=20ms fire host0",
            "t=20ms deliver host0->store poll []",
            "t=20ms fire reader0",
            "t=20ms deliver reader0->store read 2 keys",
            "t=20ms deliver store->reader0 read reply",
            "t=30ms fire activator",
            "t=30ms deliver store->host0 poll reply [1:s0v1]",
            "t=30ms deliver activator->store poll []",
            "t=30ms deliver host0->activator applied [t0@1]",
            "t=30ms deliver store->activator poll reply [1:s0v1]",
            "t=30ms deliver activator->store read 2 keys",
            "t=30ms deliver store->activator read reply",
            "t=30ms deliver activator->store commit (2 reads, 2 writes)",
            "t=30ms deliver client->host0 host-read s0",
        ],
    );
}

#[test]
fn unthrottled_backfill_is_caught_by_the_simulator_as_thr3() {
    // The walk sends as fast as replies come: the eighth request within 24 ms
    // of the budget's last full moment exceeds burst 6 + 24 ms × 60/s.
    let (seed, failure) = first_failure(Bug::UnthrottledBackfill);
    assert_eq!(failure.violation.property, PropertyId::Thr3, "{}", failure.violation);
    assert!(failure.violation.detail.contains("had 8 store requests sent in the 23988000 ns"), "{}", failure.violation);
    assert_eq!((seed, failure.step), (0, 288));
}

// --- routing (RTE-2 … RTE-4) -------------------------------------------------

#[test]
fn no_route_fallback_is_caught_by_the_simulator_as_rte2() {
    // A base-cell host that lacks a secret's route (its routing log is
    // behind) answers NotFound for a secret of vault 0, placed at the start.
    let caught = simulator_catch(Bug::NoRouteFallback, PropertyId::Rte2, "answered NotFound, but vault 0 was placed");
    assert_eq!(caught, (3, 253));
}

#[test]
fn route_before_ready_is_caught_by_the_simulator_as_rte3() {
    // A vault created while the live-added shard 2 waits for the base-cell
    // hosts to apply its registry row goes there: least loaded, but still
    // provisioning. Seed 0 creates no vault inside that window.
    let detail = "placed on shard 2, which is still provisioning in the registry";
    assert_eq!(simulator_catch(Bug::RouteBeforeReady, PropertyId::Rte3, detail), (1, 1149));
}

#[test]
fn ready_before_every_host_is_caught_by_the_simulator_as_rte3() {
    // The shard addition marks shard 2 ready as soon as one base-cell host
    // has applied its registry row; the other had not polled it yet.
    // No model recipe: the sharded model configurations have one base-cell host.
    let detail = "shard 2 was marked ready before base-cell host(s)";
    assert_eq!(simulator_catch(Bug::ReadyBeforeEveryHost, PropertyId::Rte3, detail), (0, 1239));
}

#[test]
fn route_by_tenancy_is_caught_by_the_simulator_as_rte4() {
    // Tenancy 1's first routed read pinned it to shard 0 (its vault 3); a
    // later read of its vault 2, which lives on shard 2, follows the pin.
    let detail = "of caller tenancy 1 to shard 0, but its resource's vault 2 lives on shard 2";
    assert_eq!(simulator_catch(Bug::RouteByTenancy, PropertyId::Rte4, detail), (0, 1178));
}

#[test]
fn no_route_fallback_is_caught_by_the_model_checker_as_rte2() {
    let catch = check(Bug::NoRouteFallback);
    assert_eq!(catch.unique_states, 2_152);
    assert_path(
        &catch.path,
        &[
            "t=0ms submit req0 create s1 to worker0",
            "t=0ms deliver client->worker0 request create s1",
            "t=0ms deliver worker0->store read 2 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store commit (2 reads, 1 writes)",
            "t=0ms deliver store->worker0 commit reply: committed",
            "t=0ms deliver worker0->store1 read 3 keys",
            "t=0ms deliver store1->worker0 read reply",
            "t=0ms deliver worker0->store1 read 1 keys",
            "t=0ms deliver store1->worker0 read reply",
            "t=0ms deliver worker0->store1 commit (4 reads, 3 writes)",
            "t=0ms deliver store1->worker0 commit reply: committed",
            "t=0ms deliver worker0->client answer ok",
            "t=0ms routed-read req1 s1 as t0 at host0",
            "t=0ms deliver client->host0 routed-read s1 as t0",
        ],
    );
}

#[test]
fn route_before_ready_is_caught_by_the_model_checker_as_rte3() {
    let catch = check(Bug::RouteBeforeReady);
    assert_eq!(catch.unique_states, 960);
    assert_path(
        &catch.path,
        &[
            "t=0ms submit req0 create-vault v1 to worker0",
            "t=0ms deliver client->worker0 request create-vault v1",
            "t=0ms deliver worker0->store read 3 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store commit (3 reads, 2 writes)",
        ],
    );
}

#[test]
fn route_by_tenancy_is_caught_by_the_model_checker_as_rte4() {
    let catch = check(Bug::RouteByTenancy);
    assert_eq!(catch.unique_states, 6_414);
    assert_path(
        &catch.path,
        &[
            "t=0ms submit req0 create s0 to worker0",
            "t=0ms deliver client->worker0 request create s0",
            "t=0ms deliver worker0->store read 2 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store read 3 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store read 1 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store commit (6 reads, 4 writes)",
            "t=0ms deliver store->worker0 commit reply: committed",
            "t=0ms deliver worker0->client answer ok",
            "t=0ms submit req1 create s1 to worker0",
            "t=0ms deliver client->worker0 request create s1",
            "t=0ms deliver worker0->store read 2 keys",
            "t=0ms deliver store->worker0 read reply",
            "t=0ms deliver worker0->store commit (2 reads, 1 writes)",
            "t=0ms deliver store->worker0 commit reply: committed",
            "t=0ms deliver worker0->store1 read 3 keys",
            "t=0ms deliver store1->worker0 read reply",
            "t=0ms deliver worker0->store1 read 1 keys",
            "t=0ms deliver store1->worker0 read reply",
            "t=0ms deliver worker0->store1 commit (4 reads, 3 writes)",
            "t=0ms deliver store1->worker0 commit reply: committed",
            "t=0ms deliver worker0->client answer ok",
            "t=0ms routed-read req2 s0 as t0 at host0",
            "t=0ms deliver client->host0 routed-read s0 as t0",
            "t=0ms deliver router0->store read 1 keys",
            "t=0ms deliver store->router0 read reply",
            "t=0ms deliver host0->client host-read answer",
            "t=0ms routed-read req3 s1 as t0 at host0",
            "t=0ms deliver client->host0 routed-read s1 as t0",
            "t=0ms deliver router0->store read 1 keys",
            "t=0ms deliver store->router0 read reply",
        ],
    );
}

// --- the simulator ----------------------------------------------------------

fn specs() -> PathBuf {
    workspace_root().join("specs")
}

/// The first failing seed of `bug`'s simulator recipe (`sim::zoo`) and its
/// failure, having checked that its trace replays with the violation
/// reproduced and that the same seed without the bug holds.
fn first_failure(bug: Bug) -> (u64, Failure) {
    let recipe = zoo::recipe(bug).simulator.unwrap_or_else(|| panic!("{} has no simulator recipe", bug.name()));
    first_failure_of(bug, &recipe)
}

/// The seed and step where the zoo's simulator recipe catches `bug`,
/// asserting it is caught as `property` with a detail containing `detail`.
fn simulator_catch(bug: Bug, property: PropertyId, detail: &str) -> (u64, u64) {
    let (seed, failure) = first_failure(bug);
    assert_eq!(failure.violation.property, property, "{}", failure.violation);
    assert!(failure.violation.detail.contains(detail), "{}", failure.violation);
    (seed, failure.step)
}

/// [`first_failure`] with another recipe than the zoo's.
fn first_failure_of(bug: Bug, recipe: &SimRecipe) -> (u64, Failure) {
    let outcome = zoo::simulate(bug, recipe, &specs(), |_| {}).expect("the recipe runs");
    let Some(catch) = outcome.catch else { panic!("{} survived {}", bug.name(), recipe.describe()) };
    let problems = zoo::confirm_simulation(bug, recipe, &specs(), &catch);
    assert!(problems.is_empty(), "{} seed {}: {problems:?}", bug.name(), catch.seed);
    (catch.seed, Failure { step: catch.step, violation: catch.violation })
}

// --- the model checker ------------------------------------------------------

fn model_recipe(bug: Bug) -> ModelRecipe {
    zoo::recipe(bug).model.unwrap_or_else(|| panic!("{} has no model recipe", bug.name()))
}

/// What the checker found for one entry.
struct ModelCatch {
    /// Unique states of the whole bounded space with the bug on.
    unique_states: usize,
    /// A shortest counterexample, rendered by [`describe_path`].
    path: Vec<String>,
}

/// Checks `bug`'s model recipe (`sim::zoo`): its property is violated
/// somewhere in the bounded space; [`sim::checker::shortest_discovery`] gives
/// a shortest counterexample; its trace replays; and the same model without
/// the bug does not violate the property.
fn check(bug: Bug) -> ModelCatch {
    let recipe = model_recipe(bug);
    let outcome = zoo::check_model(bug, &recipe, &specs(), 1).expect("the recipe checks");
    let Some(catch) = outcome.catch else { panic!("{} escapes the checker in {}", bug.name(), recipe.config) };
    let problems = zoo::confirm_model(bug, &recipe, &specs(), &catch, 1);
    assert!(problems.is_empty(), "{} in {}: {problems:?}", bug.name(), recipe.config);
    let model = CheckModel::new(recipe.load(&specs()).expect("shipped model"), Bugs::with(bug));
    ModelCatch { unique_states: outcome.unique_states, path: describe_path(&model, &catch.actions) }
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
        Action::Rollback { at } => format!("{} rollback", time(*at)),
        Action::Corrupt { host, secret } => format!("bit flip s{} at host{host}", secret.0),
        Action::RoutedRead { request, host, caller, secret, at } => {
            format!("{} routed-read req{} s{} as t{} at host{host}", time(*at), request.0, secret.0, caller.0)
        }
        Action::AddShard { at } => format!("{} add a shard", time(*at)),
        Action::StoreOutage { shard, down } => format!("store{shard} {}", if *down { "down" } else { "back" }),
    }
}

fn time(at: Time) -> String {
    format!("t={}ms", at.0 as f64 / 1e6)
}

fn node(node: NodeId) -> String {
    match node {
        NodeId::Store(0) => "store".to_string(),
        NodeId::Store(shard) => format!("store{shard}"),
        NodeId::Worker(index) => format!("worker{index}"),
        NodeId::Host(index) => format!("host{index}"),
        NodeId::Publisher(0, tenant) => format!("publisher{tenant}"),
        NodeId::Publisher(shard, tenant) => format!("publisher{shard}.{tenant}"),
        NodeId::Activator(0) => "activator".to_string(),
        NodeId::Activator(shard) => format!("activator{shard}"),
        NodeId::Client => "client".to_string(),
        NodeId::Operator => "operator".to_string(),
        NodeId::Backfiller => "backfiller".to_string(),
        NodeId::Verifier => "verifier".to_string(),
        NodeId::Reader(index) => format!("reader{index}"),
        NodeId::Router(index) => format!("router{index}"),
        NodeId::ShardAdder => "shard-adder".to_string(),
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
            StoreRequest::PollRoutes { after, .. } => format!("poll routes after {}", after.0),
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
            StoreReply::Routes(events) => format!("routes reply: {} events", events.len()),
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
        Payload::DigestRequest { secrets, .. } => format!("digest of {} secrets", secrets.len()),
        Payload::DigestReply { digest, .. } => format!("digest reply: {} entries", digest.len()),
        Payload::RepairRequest { secret, record, .. } => format!("repair s{} v{}", secret.0, record.version.0),
        Payload::RepairReply { replaced, .. } => format!("repair reply: replaced {replaced}"),
        Payload::RoutedRead { secret, caller, .. } => format!("routed-read s{} as t{}", secret.0, caller.0),
        Payload::Proxied { routed } => format!("proxied to shard {}", routed.shard.0),
        Payload::RouteFailed { outcome, .. } => format!("route failed: {outcome:?}"),
    }
}
