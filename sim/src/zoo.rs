//! The bug zoo, caught: every entry's catch recipe, and running it.
//!
//! Each entry of [`Bug::ALL`] has a [`Recipe`]: for each driver, how the
//! testbed catches it, or why that driver has no recipe. A simulator recipe
//! is a scenario, swarm or not, a range of seeds and the properties judged;
//! the first failing seed is the catch. A model recipe is a configuration
//! and the property whose shortest counterexample is the catch. [`recipe`]
//! matches every variant of [`Bug`], so a new entry does not compile until
//! its recipe is written (or its absence explained).
//!
//! The recipes are data in code rather than a file under `specs/`: the table
//! is keyed by the enum the zoo is made of, and the compiler checks that it is
//! complete and that every property it names exists. `vaultsim bugs` runs
//! every recipe and reports what it found; `tests/tests/bugzoo.rs` runs the
//! same recipes and pins what each one finds (seed, step, state count, path).
//!
//! Running a recipe ([`simulate`], [`check_model`]) is kept apart from
//! confirming its catch ([`confirm_simulation`], [`confirm_model`]: the trace
//! replays with the violation reproduced, and the same seed or configuration
//! without the bug holds), so a caller can time the catch alone. The module
//! exists only with the `bugzoo` feature.
#![cfg(feature = "bugzoo")]

use std::ops::Range;
use std::path::Path;

use model::{PropertyId, Violation};
use serde::Serialize;
use stateright::{Checker, Model};
use vault::bugzoo::{Bug, Bugs};

use crate::checker::{shortest_discovery, CheckModel, ModelConfig};
use crate::driver::{run, RunOptions};
use crate::scenario::Scenario;
use crate::world::Action;

/// How the testbed catches one entry of the zoo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipe {
    /// The entry.
    pub bug: Bug,
    /// The seeded simulator's recipe, if it has one.
    pub simulator: Option<SimRecipe>,
    /// The model checker's recipe, if it has one.
    pub model: Option<ModelRecipe>,
    /// Why a driver has no recipe, or why a catch names another property
    /// than the entry's own; empty when there is nothing to say.
    pub note: &'static str,
}

/// A simulator catch: the first failing seed of a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRecipe {
    /// The scenario (`specs/scenarios/NAME.toml`).
    pub scenario: &'static str,
    /// Whether each seed also chooses fault kinds and knobs.
    pub swarm: bool,
    /// Seeds tried, in order.
    pub seeds: Range<u64>,
    /// The properties judged.
    pub properties: Properties,
    /// The property the first failing seed violates.
    pub expect: PropertyId,
}

/// Which of a scenario's properties a simulator recipe judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Properties {
    /// Those the scenario names (every property when it names none).
    Scenario,
    /// Those the scenario names, but these.
    Except(&'static [PropertyId]),
}

/// A model-checker catch: a configuration and the property it violates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRecipe {
    /// The configuration (`specs/models/NAME.toml`).
    pub config: &'static str,
    /// The `always` property its shortest counterexample violates.
    pub property: PropertyId,
}

/// Seeds a simulator recipe tries unless it says otherwise.
pub const SEEDS: Range<u64> = 0..20;

/// The recipe of `bug`.
pub fn recipe(bug: Bug) -> Recipe {
    let sim =
        |scenario, expect| SimRecipe { scenario, swarm: false, seeds: SEEDS, properties: Properties::Scenario, expect };
    let model = |config, property| ModelRecipe { config, property };
    let (simulator, model, note) = match bug {
        Bug::CorruptingApply => {
            (Some(sim("smoke", PropertyId::Rep1)), Some(model("sync-one-host", PropertyId::Rep1)), "")
        }
        Bug::UnversionedApply => (
            Some(SimRecipe {
                swarm: true,
                properties: Properties::Except(&[PropertyId::Ref1]),
                ..sim("replication-faults", PropertyId::Rep2)
            }),
            Some(model("zoo-unversioned-apply", PropertyId::Ref1)),
            "REP-2 shows only once the host restarts from the record that moved back. Judging every property, \
             the simulator names REF-1 first (seed 3, step 1296), so this recipe leaves REF-1 out; swarm knobs \
             (small poll batches) let late replies overtake. The checker names REF-1 at the step the late reply \
             is applied; REP-2 there needs a crash budget and over a million states.",
        ),
        Bug::PublishWithoutReads => (
            Some(sim("replication-faults", PropertyId::Rep4)),
            Some(model("zoo-publish-without-reads", PropertyId::Rep4)),
            "",
        ),
        Bug::CursorBeforeData => {
            (Some(sim("smoke", PropertyId::Rep5)), Some(model("sync-one-host", PropertyId::Rep5)), "")
        }
        Bug::StopPollingWhenIdle => (
            Some(sim("smoke", PropertyId::Rep6)),
            Some(model("zoo-stop-polling-when-idle", PropertyId::Rep6)),
            "the zoo configuration shortens the request timeout so the stale poll deadline fires within the horizon",
        ),
        Bug::ActivateOnCommit => {
            (Some(sim("smoke", PropertyId::Rep7)), Some(model("sync-one-host", PropertyId::Rep7)), "")
        }
        Bug::AcknowledgeBeforeCommit => {
            (Some(sim("smoke", PropertyId::Rep8)), Some(model("sync-one-host", PropertyId::Rep8)), "")
        }
        Bug::UnvalidatedCommit => {
            (Some(sim("contention", PropertyId::Rep9)), Some(model("zoo-unvalidated-commit", PropertyId::Rep9)), "")
        }
        Bug::SharedBucket => (
            Some(sim("noisy-neighbour", PropertyId::Thr2)),
            None,
            "no model recipe: the model configurations have no quotas (THR-1 and THR-2 simply hold there)",
        ),
        Bug::UnconditionalBackfillEvents => (
            Some(sim("migration-budget", PropertyId::Mig1)),
            Some(model("migration-backfill-race", PropertyId::Mig1)),
            "The tight budget spaces a page's scan and commit apart, so live writes land between them. The \
             checker finds REP-4 and REF-1 on the same path: the second event of a version is a duplicate.",
        ),
        Bug::DeleteWithoutTombstone => (
            Some(sim("migration", PropertyId::Rep5)),
            Some(model("migration-backfill-race", PropertyId::Rep5)),
            "caught as REP-5, not REP-3: the host's cursor passes the delete while it holds nothing of it. No \
             path resurrects the secret: every later event of it in the log is newer than the delete (REP-4, \
             MIG-1), so even without the tombstone nothing older comes back. A restart shows REP-2 and a quiet \
             end REP-6; the checker also finds MIG-2 (the deleted secret never reaches the host).",
        ),
        Bug::VolatileBookmark => (
            Some(sim("migration", PropertyId::Mig3)),
            Some(model("migration-backfill-crash", PropertyId::Mig3)),
            "both the scenario and the configuration crash the backfiller mid-walk",
        ),
        Bug::VersionBlindVerifier => {
            (Some(sim("migration", PropertyId::Mig4)), Some(model("migration-verify-race", PropertyId::Mig4)), "")
        }
        Bug::SwitchoverWithoutFallback => (
            Some(sim("migration-switchover", PropertyId::Mig6)),
            Some(model("migration-switchover-read", PropertyId::Mig6)),
            "On `migration` the simulator names REP-1 \
             first: the local-only read path also skips the hybrid checksum check and serves a bit-flipped \
             entry; `migration-switchover` has no bit flips and many reads of secrets just activated.",
        ),
        Bug::UnthrottledBackfill => (
            Some(sim("migration-budget", PropertyId::Thr3)),
            None,
            "no model recipe: the model configurations' jobs have no budget (a budget's level differs with every \
             request's time and multiplies the space). Only a budget below the walk's own pace shows \
             it: on `migration` (400 requests/s, burst 40) the short walk stays within budget even unthrottled; \
             `migration-budget` allows 60 requests/s, burst 6.",
        ),
        Bug::NoRouteFallback => {
            (Some(sim("sharded", PropertyId::Rte2)), Some(model("zoo-no-route-fallback", PropertyId::Rte2)), "")
        }
        Bug::RouteBeforeReady => {
            (Some(sim("add-shard", PropertyId::Rte3)), Some(model("zoo-route-before-ready", PropertyId::Rte3)), "")
        }
        Bug::ReadyBeforeEveryHost => (
            Some(sim("add-shard", PropertyId::Rte3)),
            None,
            "no model recipe: the sharded model configurations have one base-cell host, for which one host \
             is every host (the routing spec's own tests catch a shard marked ready before every host applied \
             its row)",
        ),
        Bug::RouteByTenancy => {
            (Some(sim("sharded", PropertyId::Rte4)), Some(model("zoo-route-by-tenancy", PropertyId::Rte4)), "")
        }
    };
    Recipe { bug, simulator, model, note }
}

/// Every entry's recipe, in zoo order.
pub fn recipes() -> Vec<Recipe> {
    Bug::ALL.into_iter().map(recipe).collect()
}

impl SimRecipe {
    /// The scenario as the recipe runs it (its properties narrowed), from `specs`.
    pub fn load(&self, specs: &Path) -> Result<Scenario, String> {
        let path = specs.join("scenarios").join(format!("{}.toml", self.scenario));
        let mut scenario = Scenario::load(&path).map_err(|error| error.to_string())?;
        if let Properties::Except(left_out) = self.properties {
            let judged = scenario.properties().into_iter().filter(|property| !left_out.contains(property));
            scenario.run.properties = judged.map(|property| property.as_str().to_string()).collect();
        }
        Ok(scenario)
    }

    /// The recipe in a few words: `replication-faults seeds 0..20 swarm, all but REF-1`.
    pub fn describe(&self) -> String {
        let swarm = if self.swarm { " swarm" } else { "" };
        let properties = match self.properties {
            Properties::Scenario => String::new(),
            Properties::Except(left_out) => {
                let names: Vec<&str> = left_out.iter().map(|property| property.as_str()).collect();
                format!(", all but {}", names.join(" "))
            }
        };
        format!("{} seeds {}..{}{swarm}{properties}", self.scenario, self.seeds.start, self.seeds.end)
    }

    fn options(&self, seed: u64, trace: bool, bugs: Bugs) -> RunOptions {
        RunOptions { seed, swarm: self.swarm, trace, bugs }
    }
}

impl ModelRecipe {
    /// The configuration, from `specs`.
    pub fn load(&self, specs: &Path) -> Result<ModelConfig, String> {
        let path = specs.join("models").join(format!("{}.toml", self.config));
        ModelConfig::load(&path).map_err(|error| error.to_string())
    }
}

/// What the simulator found with a recipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOutcome {
    /// Seeds run (up to and including the failing one).
    pub seeds_run: u64,
    /// The first failing seed's catch; `None` when every seed held.
    pub catch: Option<SimCatch>,
}

/// The first failing seed of a simulator recipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimCatch {
    /// The seed.
    pub seed: u64,
    /// The step that showed the violation (0: the end-of-run check).
    pub step: u64,
    /// The first violation.
    pub violation: Violation,
    /// The run's trace, ending at the violating step.
    pub trace: Vec<String>,
}

/// Runs the recipe's seeds with `bug` on until one fails. `on_seed` hears
/// how many seeds are done after each one.
pub fn simulate(
    bug: Bug,
    recipe: &SimRecipe,
    specs: &Path,
    mut on_seed: impl FnMut(usize),
) -> Result<SimOutcome, String> {
    let scenario = recipe.load(specs)?;
    for (index, seed) in recipe.seeds.clone().enumerate() {
        // Traces cost memory and time: record one only for the failing seed.
        let result = run(&scenario, &recipe.options(seed, false, Bugs::with(bug)));
        on_seed(index + 1);
        let Some(failure) = result.failure else { continue };
        let recorded = run(&scenario, &recipe.options(seed, true, Bugs::with(bug)));
        assert_eq!(recorded.failure.as_ref(), Some(&failure), "seed {seed} of {} is not deterministic", scenario.name);
        let trace = recorded.trace.expect("a recorded run has a trace");
        let catch = SimCatch { seed, step: failure.step, violation: failure.violation, trace };
        return Ok(SimOutcome { seeds_run: index as u64 + 1, catch: Some(catch) });
    }
    Ok(SimOutcome { seeds_run: recipe.seeds.end.saturating_sub(recipe.seeds.start), catch: None })
}

/// What is wrong with a simulator catch (empty: nothing): a property other
/// than the recipe's, a trace that does not replay to the same violation at
/// the same step, or a seed that fails without the bug too.
pub fn confirm_simulation(bug: Bug, recipe: &SimRecipe, specs: &Path, catch: &SimCatch) -> Vec<String> {
    let mut problems = Vec::new();
    if catch.violation.property != recipe.expect {
        problems.push(format!("caught as {}, the recipe expects {}", catch.violation.property, recipe.expect));
    }
    let violation = catch.violation.to_string();
    match crate::trace::replay(&(catch.trace.join("\n") + "\n")) {
        Err(error) => problems.push(format!("the trace does not replay: line {}: {}", error.line, error.message)),
        Ok(summary) => {
            if catch.step > 0 && summary.steps != catch.step {
                problems
                    .push(format!("the trace has {} steps, the violation was at step {}", summary.steps, catch.step));
            }
            if !summary.violations.contains(&violation) {
                problems.push(format!("replay lost `{violation}`"));
            }
        }
    }
    match recipe.load(specs) {
        Err(error) => problems.push(error),
        Ok(scenario) => {
            let control = run(&scenario, &recipe.options(catch.seed, false, Bugs::none()));
            if let Some(failure) = control.failure {
                problems.push(format!("seed {} fails without {} too: {}", catch.seed, bug.name(), failure.violation));
            }
        }
    }
    problems
}

/// What the model checker found with a recipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelOutcome {
    /// Unique states of the whole bounded space with the bug on.
    pub unique_states: usize,
    /// The shortest counterexample; `None` when the property holds.
    pub catch: Option<ModelCatch>,
}

/// A shortest counterexample of a model recipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelCatch {
    /// Its actions from the initial state.
    pub actions: Vec<Action>,
    /// Its trace (replayable with `vaultsim replay`).
    pub trace: Vec<String>,
}

/// Checks the recipe's configuration with `bug` on: the whole bounded space
/// breadth first, then (if the property is violated) a shortest
/// counterexample. `threads` runs both searches; with one thread the path
/// found is always the same.
pub fn check_model(bug: Bug, recipe: &ModelRecipe, specs: &Path, threads: usize) -> Result<ModelOutcome, String> {
    let model = CheckModel::new(recipe.load(specs)?, Bugs::with(bug));
    let property = recipe.property.as_str();
    let whole = model.clone().checker().threads(threads.max(1)).spawn_bfs().join();
    let unique_states = whole.unique_state_count();
    if whole.discovery(property).is_none() {
        return Ok(ModelOutcome { unique_states, catch: None });
    }
    let actions = shortest_discovery(&model, property, threads).expect("a discovered property is found again");
    let trace = model.trace(&actions);
    Ok(ModelOutcome { unique_states, catch: Some(ModelCatch { actions, trace }) })
}

/// What is wrong with a model catch (empty: nothing): a trace that does not
/// replay to the property, or a configuration that violates it without the
/// bug too.
pub fn confirm_model(bug: Bug, recipe: &ModelRecipe, specs: &Path, catch: &ModelCatch, threads: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let property = recipe.property.as_str();
    match crate::trace::replay(&(catch.trace.join("\n") + "\n")) {
        Err(error) => problems.push(format!("the trace does not replay: line {}: {}", error.line, error.message)),
        Ok(summary) => {
            if summary.steps as usize != catch.actions.len() {
                problems.push(format!("the trace has {} steps, the path {}", summary.steps, catch.actions.len()));
            }
            if !summary.violations.iter().any(|violation| violation.starts_with(property)) {
                problems.push(format!("{property} not reproduced on replay"));
            }
        }
    }
    match recipe.load(specs) {
        Err(error) => problems.push(error),
        Ok(config) => {
            let control = CheckModel::new(config, Bugs::none()).checker().threads(threads.max(1)).spawn_bfs().join();
            if control.discovery(property).is_some() {
                problems.push(format!("{} violates {property} without {} too", recipe.config, bug.name()));
            }
        }
    }
    problems
}

/// How one driver fared with one entry, as `vaultsim bugs` reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriverReport {
    /// `caught`, `escaped` or `no recipe`.
    pub status: &'static str,
    /// The recipe in a few words.
    pub recipe: Option<String>,
    /// The property the recipe expects.
    pub expected: Option<&'static str>,
    /// The property the catch violated.
    pub property: Option<&'static str>,
    /// What broke, in one sentence.
    pub detail: Option<String>,
    /// The simulator's first failing seed.
    pub seed: Option<u64>,
    /// Seeds the simulator ran.
    pub seeds_run: Option<u64>,
    /// The counterexample's length: the simulator's violating step (0: the
    /// end-of-run check), the checker's shortest path in actions.
    pub steps: Option<u64>,
    /// Unique states of the checker's whole bounded space with the bug on.
    pub unique_states: Option<usize>,
    /// Wall time of the catch (confirming it not included), seconds.
    pub wall_seconds: Option<f64>,
    /// Where the catch's trace was written.
    pub trace: Option<String>,
    /// The command that replays it.
    pub replay: Option<String>,
    /// What is wrong with the catch (see [`confirm_simulation`] and [`confirm_model`]).
    pub problems: Vec<String>,
}

impl DriverReport {
    /// A driver without a recipe for the entry.
    pub fn no_recipe() -> DriverReport {
        DriverReport {
            status: "no recipe",
            recipe: None,
            expected: None,
            property: None,
            detail: None,
            seed: None,
            seeds_run: None,
            steps: None,
            unique_states: None,
            wall_seconds: None,
            trace: None,
            replay: None,
            problems: Vec::new(),
        }
    }

    /// The simulator's report of `outcome`, its trace written to `trace`.
    pub fn simulated(
        bug: Bug,
        recipe: &SimRecipe,
        outcome: &SimOutcome,
        problems: Vec<String>,
        wall_seconds: f64,
        trace: Option<&Path>,
    ) -> DriverReport {
        let catch = outcome.catch.as_ref();
        DriverReport {
            status: if catch.is_some() { "caught" } else { "escaped" },
            recipe: Some(recipe.describe()),
            expected: Some(recipe.expect.as_str()),
            property: catch.map(|catch| catch.violation.property.as_str()),
            detail: catch.map(|catch| catch.violation.detail.clone()),
            seed: catch.map(|catch| catch.seed),
            seeds_run: Some(outcome.seeds_run),
            steps: catch.map(|catch| catch.step),
            wall_seconds: Some(wall_seconds),
            problems,
            ..DriverReport::no_recipe()
        }
        .with_trace(bug, trace)
    }

    /// The model checker's report of `outcome`, its trace written to `trace`.
    pub fn checked(
        bug: Bug,
        recipe: &ModelRecipe,
        outcome: &ModelOutcome,
        problems: Vec<String>,
        wall_seconds: f64,
        trace: Option<&Path>,
    ) -> DriverReport {
        let catch = outcome.catch.as_ref();
        DriverReport {
            status: if catch.is_some() { "caught" } else { "escaped" },
            recipe: Some(recipe.config.to_string()),
            expected: Some(recipe.property.as_str()),
            property: catch.map(|_| recipe.property.as_str()),
            steps: catch.map(|catch| catch.actions.len() as u64),
            unique_states: Some(outcome.unique_states),
            wall_seconds: Some(wall_seconds),
            problems,
            ..DriverReport::no_recipe()
        }
        .with_trace(bug, trace)
    }

    fn with_trace(mut self, bug: Bug, trace: Option<&Path>) -> DriverReport {
        if let Some(path) = trace {
            let path = path.display().to_string();
            self.replay = Some(crate::report::replay_command(&path, &Bugs::with(bug)));
            self.trace = Some(path);
        }
        self
    }

    /// Whether the driver has no recipe, or caught the entry as its recipe says.
    pub fn passed(&self) -> bool {
        self.status != "escaped" && self.problems.is_empty()
    }

    /// Where the catch was found, in a few words.
    fn found(&self) -> String {
        let recipe = self.recipe.as_deref().unwrap_or("");
        match (self.seed, self.unique_states) {
            (Some(seed), _) => format!("{recipe}: seed {seed}"),
            (None, Some(states)) => format!("{recipe}: {states} unique states"),
            (None, None) => match self.seeds_run {
                Some(seeds) => format!("{recipe}: {seeds} seeds held"),
                None => recipe.to_string(),
            },
        }
    }
}

impl SimCatch {
    /// The file name of this catch's trace.
    pub fn trace_name(&self, bug: Bug, recipe: &SimRecipe) -> String {
        let swarm = if recipe.swarm { "-swarm" } else { "" };
        format!("zoo-{}-{}-seed{}{swarm}.jsonl", bug.name(), recipe.scenario, self.seed)
    }
}

impl ModelRecipe {
    /// The file name of this recipe's counterexample trace.
    pub fn trace_name(&self, bug: Bug) -> String {
        format!("zoo-{}-check-{}-{}.jsonl", bug.name(), self.config, self.property.as_str())
    }
}

/// One entry's lines in `vaultsim bugs`.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryReport {
    /// The entry.
    pub bug: Bug,
    /// Its recipe's note.
    pub note: &'static str,
    /// The seeded simulator.
    pub simulator: DriverReport,
    /// The model checker.
    pub checker: DriverReport,
}

impl EntryReport {
    /// Whether every driver with a recipe caught the entry as its recipe says.
    pub fn passed(&self) -> bool {
        self.simulator.passed() && self.checker.passed()
    }

    /// The entry as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "entry": self.bug.name(),
            "breaks": self.bug.breaks(),
            "passed": self.passed(),
            "note": self.note,
            "simulator": self.simulator,
            "checker": self.checker,
        })
    }

    /// The entry as a table: a line naming it, a row per driver, and each
    /// catch's replay command and problems under its row.
    pub fn to_table(&self) -> String {
        let mut out = format!("{} (breaks {})\n", self.bug.name(), self.bug.breaks());
        for (driver, report) in [("simulator", &self.simulator), ("checker", &self.checker)] {
            let status =
                if report.status == "caught" && !report.problems.is_empty() { "CAUGHT?" } else { report.status };
            let status = if status == "escaped" { "ESCAPED" } else { status };
            let number = |value: Option<u64>| value.map_or("-".to_string(), |value| value.to_string());
            let wall = report.wall_seconds.map_or("-".to_string(), |wall| format!("{wall:.3}"));
            let row = format!(
                "  {driver:<9}  {status:<9}  {:<6}  {:>6}  {:>7}  {}",
                report.property.unwrap_or("-"),
                number(report.steps),
                wall,
                report.found(),
            );
            out.push_str(row.trim_end());
            out.push('\n');
            if let Some(replay) = &report.replay {
                out.push_str(&format!("  {:<9}  replay: {replay}\n", ""));
            }
            for problem in &report.problems {
                out.push_str(&format!("  {:<9}  problem: {problem}\n", ""));
            }
        }
        if !self.note.is_empty() {
            out.push_str(&format!("  note: {}\n", self.note));
        }
        out
    }

    /// The header of [`EntryReport::to_table`]'s driver rows.
    pub fn table_header() -> String {
        format!("  {:<9}  {:<9}  {:<6}  {:>6}  {:>7}  {}\n", "driver", "status", "seen", "steps", "wall s", "catch")
    }
}

#[cfg(test)]
mod tests;
