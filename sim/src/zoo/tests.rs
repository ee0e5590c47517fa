use std::path::{Path, PathBuf};

use stateright::{Expectation, Model};

use super::*;

fn specs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs")
}

#[test]
fn every_entry_has_a_recipe_that_loads_and_names_a_checked_property() {
    let recipes = recipes();
    assert_eq!(recipes.iter().map(|recipe| recipe.bug).collect::<Vec<_>>(), Bug::ALL.to_vec());
    for recipe in &recipes {
        let name = recipe.bug.name();
        assert!(recipe.simulator.is_some() || recipe.model.is_some(), "{name}: no driver catches it");
        let mut properties = Vec::new();
        if let Some(simulator) = &recipe.simulator {
            let scenario = simulator.load(&specs()).unwrap_or_else(|error| panic!("{name}: {error}"));
            assert!(
                scenario.properties().contains(&simulator.expect),
                "{name}: the recipe does not judge its property"
            );
            assert!(!simulator.seeds.is_empty(), "{name}: no seeds");
            properties.push(simulator.expect);
        }
        if let Some(model) = &recipe.model {
            let config = model.load(&specs()).unwrap_or_else(|error| panic!("{name}: {error}"));
            let checked = CheckModel::new(config, Bugs::none()).properties();
            let always = checked.iter().find(|property| property.name == model.property.as_str());
            assert!(
                always.is_some_and(|property| property.expectation == Expectation::Always),
                "{name}: the checker has no `always` {}",
                model.property
            );
            properties.push(model.property);
        }
        // A catch under another property than the entry's own, or a driver
        // without a recipe, is explained.
        let own = properties.iter().all(|property| property.as_str() == recipe.bug.breaks());
        let complete = recipe.simulator.is_some() && recipe.model.is_some();
        assert!((own && complete) || !recipe.note.is_empty(), "{name}: a recipe to explain has no note");
    }
}

#[test]
fn acknowledge_before_commit_is_caught_by_both_drivers_and_its_traces_replay() {
    let bug = Bug::AcknowledgeBeforeCommit;
    let recipe = recipe(bug);

    let simulator = recipe.simulator.as_ref().expect("a simulator recipe");
    let mut seeds_heard = 0;
    let outcome = simulate(bug, simulator, &specs(), |done| seeds_heard = done).expect("runs");
    let catch = outcome.catch.as_ref().expect("the simulator catches it");
    assert_eq!(catch.violation.property, PropertyId::Rep8, "{}", catch.violation);
    assert_eq!((catch.seed, catch.step, outcome.seeds_run, seeds_heard), (0, 31, 1, 1));
    assert_eq!(confirm_simulation(bug, simulator, &specs(), catch), Vec::<String>::new());
    let report = DriverReport::simulated(bug, simulator, &outcome, Vec::new(), 0.5, Some(Path::new("t/s.jsonl")));
    assert!(report.passed());
    assert_eq!((report.property, report.steps, report.seed), (Some("REP-8"), Some(31), Some(0)));
    assert_eq!(catch.trace_name(bug, simulator), "zoo-acknowledge-before-commit-smoke-seed0.jsonl");

    let model = recipe.model.as_ref().expect("a model recipe");
    let outcome = check_model(bug, model, &specs(), 1).expect("checks");
    let catch = outcome.catch.as_ref().expect("the checker catches it");
    assert_eq!((outcome.unique_states, catch.actions.len()), (13_785, 7));
    assert_eq!(confirm_model(bug, model, &specs(), catch, 1), Vec::<String>::new());
    let report = DriverReport::checked(bug, model, &outcome, Vec::new(), 0.5, Some(Path::new("t/c.jsonl")));
    assert_eq!((report.status, report.property, report.steps), ("caught", Some("REP-8"), Some(7)));
    assert_eq!(report.replay.as_deref(), Some("cargo run -p vaultsim-sim --features bugzoo -- replay t/c.jsonl"));
}

#[test]
fn a_catch_as_another_property_is_a_problem() {
    // acknowledge-before-commit's recipe told to expect REP-1: its catch
    // (REP-8) is flagged, so a drifting recipe fails the command.
    let bug = Bug::AcknowledgeBeforeCommit;
    let wrong =
        SimRecipe { expect: PropertyId::Rep1, seeds: 0..1, ..recipe(bug).simulator.expect("a simulator recipe") };
    let outcome = simulate(bug, &wrong, &specs(), |_| {}).expect("runs");
    let catch = outcome.catch.as_ref().expect("caught");
    let problems = confirm_simulation(bug, &wrong, &specs(), catch);
    assert_eq!(problems, vec!["caught as REP-8, the recipe expects REP-1".to_string()]);
    let report = DriverReport::simulated(bug, &wrong, &outcome, problems, 0.1, None);
    assert!(!report.passed());
    let entry = EntryReport { bug, note: "", simulator: report, checker: DriverReport::no_recipe() };
    assert!(!entry.passed());
    let table = entry.to_table();
    assert!(table.contains("CAUGHT?") && table.contains("problem: caught as REP-8"), "{table}");
    assert_eq!(entry.to_json()["checker"]["status"], "no recipe");
}

#[test]
fn an_escape_fails_the_entry_and_a_missing_recipe_does_not() {
    let bug = Bug::AcknowledgeBeforeCommit;
    let recipe = recipe(bug).simulator.expect("a simulator recipe");
    let escaped =
        DriverReport::simulated(bug, &recipe, &SimOutcome { seeds_run: 20, catch: None }, Vec::new(), 1.0, None);
    assert_eq!(escaped.status, "escaped");
    let entry = EntryReport { bug, note: "", simulator: escaped, checker: DriverReport::no_recipe() };
    assert!(!entry.passed());
    assert!(entry.to_table().contains("ESCAPED"), "{}", entry.to_table());
    assert!(entry.to_table().contains("smoke seeds 0..20: 20 seeds held"), "{}", entry.to_table());
    let nothing =
        EntryReport { bug, note: "", simulator: DriverReport::no_recipe(), checker: DriverReport::no_recipe() };
    assert!(nothing.passed());
}

#[test]
fn a_narrowed_recipe_judges_every_property_but_those_left_out() {
    let recipe = recipe(Bug::UnversionedApply).simulator.expect("a simulator recipe");
    assert_eq!(recipe.describe(), "replication-faults seeds 0..20 swarm, all but REF-1");
    let scenario = recipe.load(&specs()).expect("loads");
    let judged = scenario.properties();
    assert!(!judged.contains(&PropertyId::Ref1) && judged.contains(&PropertyId::Rep2), "{judged:?}");
    assert_eq!(judged.len(), PropertyId::ALL.len() - 1);
}
