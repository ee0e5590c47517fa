//! `vaultsim`: the command line of the testbed.
//!
//! This is the only code that touches argv, stdout, stderr, the file system and
//! the wall clock (for progress and speed figures, never for simulated time).
//! With no subcommand it runs the default suite and exits non-zero on any
//! violation (or when the suite cannot be assembled).
#![allow(clippy::disallowed_methods)] // Wall-clock timing of runs, outside the simulation.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use sim::checker::{check, CheckModel, CheckOptions, CheckReport, ModelConfig};
use sim::driver::{run, RunOptions, RunResult};
use sim::report::{median, SweepSummary};
use sim::scenario::Scenario;
use sim::suite::Suite;
use vault::bugzoo::Bugs;

/// Model-check and simulate the vaultsim secrets service.
#[derive(Parser, Debug)]
#[command(name = "vaultsim", version)]
struct Cli {
    /// Folder holding `scenarios/*.toml`.
    #[arg(long, default_value = "specs", global = true)]
    specs: PathBuf,
    /// Print one JSON document on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate seeds of one scenario.
    Sim {
        /// A scenario name (`specs/scenarios/NAME.toml`) or a path to a scenario file.
        scenario: String,
        /// Seeds to run: `A..B` (B excluded) or one seed.
        #[arg(long, default_value = "0..8")]
        seeds: String,
        /// Let each seed also choose fault kinds and knobs.
        #[arg(long)]
        swarm: bool,
        /// Write every seed's trace here (failing seeds' traces are always written).
        #[arg(long)]
        trace_dir: Option<PathBuf>,
        /// Run each seed twice and compare trace hashes.
        #[arg(long)]
        check_determinism: bool,
        /// Switch on a bug-zoo variant of the real code (builds with `--features bugzoo`).
        #[arg(long = "bug")]
        bugs: Vec<String>,
    },
    /// Re-run a trace and confirm every line matches.
    Replay {
        /// The trace file.
        trace: PathBuf,
    },
    /// Render a trace as a diagram.
    Render {
        /// The trace file.
        trace: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "mermaid")]
        format: Format,
        /// First step shown.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Last step shown.
        #[arg(long, default_value_t = u64::MAX)]
        to: u64,
        /// Leave out polls that found nothing and the reports around them.
        #[arg(long)]
        hide_idle: bool,
    },
    /// Check model configurations exhaustively (within their bounds).
    Check {
        /// A configuration name (`specs/models/NAME.toml`), a path, or `all`.
        config: String,
        /// Breadth-first search (shortest counterexamples) instead of depth-first.
        #[arg(long)]
        bfs: bool,
        /// Checker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Explore paths of at most this many actions.
        #[arg(long)]
        max_depth: Option<usize>,
        /// Where counterexample traces go.
        #[arg(long, default_value = DEFAULT_TRACE_DIR)]
        trace_dir: PathBuf,
        /// Switch on a bug-zoo variant of the real code (builds with `--features bugzoo`).
        #[arg(long = "bug")]
        bugs: Vec<String>,
    },
    /// Sweep writers per tenancy in sync and async mode (`specs/scenarios/contention.toml`).
    Contention {
        /// Seeds per cell (seeds 0..N).
        #[arg(long, default_value_t = sim::contention::SEEDS_DEFAULT)]
        seeds: u64,
        /// Write `contention-throughput.svg`, `contention-conflicts.svg` (and with `--real`
        /// `contention-shapes.svg`) into this folder.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// JSON lines of `cargo bench -p vaultsim-impl --bench contention -- --json`, overlaid on the plots.
        #[arg(long)]
        real: Option<PathBuf>,
        /// Override the store's service time per request, µs (0: unlimited
        /// capacity). The charts' file names then end in `-store<N>us`.
        #[arg(long)]
        store_service_us: Option<u64>,
    },
    /// One tenant bursts to 1..20 times its quota, with quotas and without,
    /// against a store of finite capacity: p99 latency of it and of the others.
    Noisy {
        /// Seeds per cell (seeds 0..N).
        #[arg(long, default_value_t = sim::noisy::SEEDS_DEFAULT)]
        seeds: u64,
        /// The store's service time per request, µs, unless the scenario sets one.
        #[arg(long, default_value_t = sim::noisy::STORE_SERVICE_US_DEFAULT)]
        store_service_us: u64,
        /// Write `noisy-neighbour-latency.svg` into this folder.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Measure the migration (`specs/scenarios/migration-latency.toml`): host
    /// read latency while the backfill runs, with its rate limit, without it
    /// and with no backfill; read latency before and after switchover; and
    /// fallbacks of reads right after a create.
    Migrate {
        /// Seeds per variant (seeds 0..N).
        #[arg(long, default_value_t = sim::migrate::SEEDS_DEFAULT)]
        seeds: u64,
    },
    /// Serve the stateright Explorer for a model configuration on loopback.
    Explore {
        /// A configuration name or path.
        config: String,
        /// Address to serve on (loopback only).
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: String,
    },
    /// Run every bug-zoo entry's catch recipes (simulator and model checker)
    /// and report, per entry, whether each driver caught it (builds with `--features bugzoo`).
    Bugs {
        /// Only these entries (all when none is named).
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Checker threads (with one, every counterexample is always the same path).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Where the catches' traces go.
        #[arg(long, default_value = DEFAULT_TRACE_DIR)]
        trace_dir: PathBuf,
    },
    /// Measure the simulator's speed on `smoke` and `replication-faults`, and
    /// the checker's states per second and peak memory on every configuration.
    Bench {
        /// Seeds per scenario.
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// Checker runs per configuration, each in a fresh process so its peak memory is its own.
        #[arg(long, default_value_t = 3)]
        check_runs: usize,
        /// Checker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Format {
    /// A Mermaid sequence diagram.
    Mermaid,
}

/// Where traces of failing seeds go when no `--trace-dir` is given.
const DEFAULT_TRACE_DIR: &str = "target/vaultsim-traces";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        None => default_suite(&cli),
        Some(Command::Sim { scenario, seeds, swarm, trace_dir, check_determinism, bugs }) => {
            parse_bugs(bugs).and_then(|bugs| {
                let trace_dir = trace_dir.clone();
                let options = SweepOptions { swarm: *swarm, bugs, trace_dir, check_determinism: *check_determinism };
                sim_command(&cli, scenario, seeds, &options)
            })
        }
        Some(Command::Replay { trace }) => replay_command(&cli, trace),
        Some(Command::Render { trace, format: Format::Mermaid, from, to, hide_idle }) => {
            render_command(trace, *from, *to, *hide_idle)
        }
        Some(Command::Check { config, bfs, threads, max_depth, trace_dir, bugs }) => {
            let options = CheckOptions { bfs: *bfs, threads: *threads, max_depth: *max_depth };
            parse_bugs(bugs).and_then(|bugs| check_command(&cli, config, &options, &bugs, trace_dir))
        }
        Some(Command::Noisy { seeds, store_service_us, plot }) => noisy_command(&cli, *seeds, *store_service_us, plot),
        Some(Command::Explore { config, addr }) => explore_command(&cli, config, addr),
        Some(Command::Migrate { seeds }) => migrate_command(&cli, *seeds),
        Some(Command::Contention { seeds, plot, real, store_service_us }) => {
            contention_command(&cli, *seeds, plot, real, *store_service_us)
        }
        Some(Command::Bench { seeds, check_runs, threads }) => bench_command(&cli, *seeds, *check_runs, *threads),
        Some(Command::Bugs { bugs, threads, trace_dir }) => {
            parse_bugs(bugs).and_then(|bugs| bugs_command(&cli, &bugs, *threads, trace_dir))
        }
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("vaultsim: {message}");
            ExitCode::from(2)
        }
    }
}

/// The bug-zoo entries named by `--bug` flags.
fn parse_bugs(names: &[String]) -> Result<Bugs, String> {
    Bugs::parse(names.iter().map(String::as_str))
        .map_err(|name| format!("--bug {name}: no such bug-zoo entry in this build (the zoo needs --features bugzoo)"))
}

struct SweepOptions {
    swarm: bool,
    bugs: Bugs,
    trace_dir: Option<PathBuf>,
    check_determinism: bool,
}

/// Every scenario for its default number of seeds; one table.
fn default_suite(cli: &Cli) -> Result<bool, String> {
    let suite = Suite::discover(&cli.specs).map_err(|error| error.to_string())?;
    let options = SweepOptions { swarm: false, bugs: Bugs::none(), trace_dir: None, check_determinism: false };
    let mut summaries = Vec::new();
    for path in &suite.scenarios {
        let scenario = Scenario::load(path).map_err(|error| error.to_string())?;
        let seeds: Vec<u64> = (0..scenario.run.seeds).collect();
        summaries.push(sweep(&scenario, path, &seeds, &options)?);
    }
    let configs = model_configs(&cli.specs, "all")?;
    let check_options = CheckOptions { bfs: false, threads: 2, max_depth: None };
    let checked = run_checks(&configs, &check_options, &Bugs::none(), Path::new(DEFAULT_TRACE_DIR))?;
    let failed: u64 = summaries.iter().map(|(summary, _)| summary.failed).sum::<u64>()
        + checked.iter().filter(|one| !one.report.passed).count() as u64;
    if cli.json {
        let scenarios: Vec<_> = summaries.iter().map(|(summary, wall)| json_with_wall(summary, *wall)).collect();
        let models: Vec<_> = checked.iter().map(checked_json).collect();
        let report = serde_json::json!({
            "scenarios": scenarios,
            "model_configurations": models,
            "violations": failed,
        });
        println!("{report}");
    } else {
        println!("vaultsim default suite: {} scenarios", summaries.len());
        for (summary, wall) in &summaries {
            print!("{}", summary.to_table());
            println!(
                "  events/s {:.0}  simulated s per wall s {:.0}",
                summary.steps as f64 / wall,
                summary.simulated_ns as f64 / 1e9 / wall
            );
        }
        println!("model configurations: {}", checked.len());
        for one in &checked {
            print!("{}", checked_table(one));
        }
        println!("failures: {failed}");
    }
    Ok(failed == 0)
}

fn sim_command(cli: &Cli, scenario: &str, seeds: &str, options: &SweepOptions) -> Result<bool, String> {
    let path = scenario_path(&cli.specs, scenario);
    let scenario = Scenario::load(&path).map_err(|error| error.to_string())?;
    let seeds = parse_seeds(seeds)?;
    let (summary, wall) = sweep(&scenario, &path, &seeds, options)?;
    if cli.json {
        println!("{}", json_with_wall(&summary, wall));
    } else {
        print!("{}", summary.to_table());
        println!(
            "  events/s {:.0}  simulated s per wall s {:.0}",
            summary.steps as f64 / wall,
            summary.simulated_ns as f64 / 1e9 / wall
        );
    }
    Ok(summary.failed == 0)
}

/// Runs `seeds` of `scenario`, writing traces where asked and for every failure.
fn sweep(
    scenario: &Scenario,
    path: &Path,
    seeds: &[u64],
    options: &SweepOptions,
) -> Result<(SweepSummary, f64), String> {
    let started = Instant::now();
    let mut results = Vec::with_capacity(seeds.len());
    let mut progress = Progress::new(&scenario.name, seeds.len());
    for (index, seed) in seeds.iter().enumerate() {
        let record = options.trace_dir.is_some() || options.check_determinism;
        let run_options = RunOptions { seed: *seed, swarm: options.swarm, trace: record, bugs: options.bugs.clone() };
        let mut result = run(scenario, &run_options);
        if options.check_determinism {
            let again = run(scenario, &run_options);
            if again.trace_hash != result.trace_hash {
                return Err(format!(
                    "scenario {} seed {seed} is not deterministic: trace hashes {:016x} and {:016x}",
                    scenario.name, result.trace_hash, again.trace_hash
                ));
            }
        }
        if result.failure.is_some() && result.trace.is_none() {
            result = run(scenario, &RunOptions { trace: true, ..run_options });
        }
        if let (Some(lines), true) = (&result.trace, options.trace_dir.is_some() || result.failure.is_some()) {
            let folder = options.trace_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_TRACE_DIR));
            write_trace(&folder, &trace_name(scenario, result.seed, options.swarm), lines)?;
        }
        results.push(result);
        progress.update(index + 1);
    }
    progress.finish();
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let trace_dir = options.trace_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_TRACE_DIR));
    let summary = SweepSummary::new(&scenario.name, &results, |result: &RunResult| {
        let trace = trace_dir.join(trace_name(scenario, result.seed, options.swarm));
        let swarm = if options.swarm { " --swarm" } else { "" };
        let bugs: String = options.bugs.names().iter().map(|name| format!(" --bug {name}")).collect();
        let rerun = format!("vaultsim sim {} --seeds {}{swarm}{bugs}", path.display(), result.seed);
        let replay = sim::report::replay_command(&trace.display().to_string(), &options.bugs);
        (Some(trace.display().to_string()), format!("{replay}   (or: {rerun})"))
    });
    Ok((summary, wall))
}

fn trace_name(scenario: &Scenario, seed: u64, swarm: bool) -> String {
    let swarm = if swarm { "-swarm" } else { "" };
    format!("{}-seed{seed}{swarm}.jsonl", scenario.name)
}

fn write_trace(folder: &Path, name: &str, lines: &[String]) -> Result<(), String> {
    std::fs::create_dir_all(folder).map_err(|error| format!("cannot create {}: {error}", folder.display()))?;
    let path = folder.join(name);
    let text = lines.join("\n") + "\n";
    std::fs::write(&path, text).map_err(|error| format!("cannot write {}: {error}", path.display()))
}

fn replay_command(cli: &Cli, trace: &Path) -> Result<bool, String> {
    let text = std::fs::read_to_string(trace).map_err(|error| format!("cannot read {}: {error}", trace.display()))?;
    let summary = sim::trace::replay(&text).map_err(|error| format!("{}:{error}", trace.display()))?;
    if cli.json {
        let report = serde_json::json!({
            "trace": trace.display().to_string(),
            "scenario": summary.scenario,
            "seed": summary.seed,
            "steps": summary.steps,
            "matched": true,
            "violations": summary.violations,
        });
        println!("{report}");
    } else {
        println!(
            "{}: scenario {} seed {}: {} steps replayed, every line matches",
            trace.display(),
            summary.scenario,
            summary.seed,
            summary.steps
        );
        for violation in &summary.violations {
            println!("  violation reproduced: {violation}");
        }
    }
    Ok(true)
}

fn render_command(trace: &Path, from: u64, to: u64, hide_idle: bool) -> Result<bool, String> {
    let text = std::fs::read_to_string(trace).map_err(|error| format!("cannot read {}: {error}", trace.display()))?;
    let diagram = sim::trace::render_mermaid(&text, from, to, hide_idle)
        .map_err(|error| format!("{}:{error}", trace.display()))?;
    print_all(&diagram)?;
    Ok(true)
}

/// Simulator speed with traces off (medians over seeds), then checker speed
/// and memory per configuration (medians over runs, DFS).
fn bench_command(cli: &Cli, seeds: u64, check_runs: usize, threads: usize) -> Result<bool, String> {
    if seeds == 0 {
        return Err("--seeds: the bench runs at least one seed".into());
    }
    let mut rows = Vec::new();
    for name in ["smoke", "replication-faults"] {
        let scenario = Scenario::load(&scenario_path(&cli.specs, name)).map_err(|error| error.to_string())?;
        let mut events_per_second = Vec::new();
        let mut simulated_per_wall = Vec::new();
        for seed in 0..seeds {
            let started = Instant::now();
            let result = run(&scenario, &RunOptions { seed, swarm: false, trace: false, bugs: Bugs::none() });
            let wall = started.elapsed().as_secs_f64().max(1e-9);
            events_per_second.push(result.stats.steps as f64 / wall);
            simulated_per_wall.push(result.stats.simulated_ns as f64 / 1e9 / wall);
        }
        rows.push((name, median(events_per_second), median(simulated_per_wall)));
    }
    let checks = bench_checks(cli, check_runs, threads)?;
    if cli.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(name, events, simulated)| serde_json::json!({"scenario": name, "events_per_second": events, "simulated_seconds_per_wall_second": simulated, "seeds": seeds}))
            .collect();
        let checks: Vec<_> = checks
            .iter()
            .map(|row| serde_json::json!({"configuration": row.name, "unique_states": row.unique_states, "states_per_second": row.states_per_second, "peak_memory_mb": row.peak_memory_mb, "seconds": row.seconds, "runs": check_runs, "threads": threads}))
            .collect();
        println!("{}", serde_json::json!({ "bench": rows, "check": checks }));
    } else {
        println!("{:<20} {:>16} {:>26}", "scenario", "events/s", "simulated s per wall s");
        for (name, events, simulated) in rows {
            println!("{name:<20} {events:>16.0} {simulated:>26.0}");
        }
        println!("(medians over {seeds} seeds, traces off, properties on, one thread)\n");
        // The first column is as wide as the longest configuration name.
        let width = checks.iter().map(|row| row.name.len()).chain(["configuration".len()]).max().unwrap_or(0);
        println!(
            "{:<width$} {:>14} {:>14} {:>10} {:>16}",
            "configuration", "unique states", "states/s", "seconds", "peak memory MB"
        );
        for row in &checks {
            println!(
                "{:<width$} {:>14} {:>14.0} {:>10.2} {:>16.1}",
                row.name, row.unique_states, row.states_per_second, row.seconds, row.peak_memory_mb
            );
        }
        println!("(medians over {check_runs} runs, DFS, {threads} threads, each run in its own process)");
    }
    Ok(true)
}

/// One configuration's checker figures in `vaultsim bench`.
struct CheckBench {
    name: String,
    unique_states: u64,
    states_per_second: f64,
    seconds: f64,
    peak_memory_mb: f64,
}

/// Runs `vaultsim check <config> --json` in a child process per run, so each
/// peak resident size belongs to one configuration alone.
fn bench_checks(cli: &Cli, runs: usize, threads: usize) -> Result<Vec<CheckBench>, String> {
    let exe = std::env::current_exe().map_err(|error| format!("cannot find this executable: {error}"))?;
    let mut rows = Vec::new();
    for config in model_configs(&cli.specs, "all")? {
        let (mut rates, mut seconds, mut memory, mut unique) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for run in 0..runs.max(1) {
            eprintln!("bench: checking {} (run {} of {runs})", config.name, run + 1);
            let output = std::process::Command::new(&exe)
                .arg("--specs")
                .arg(&cli.specs)
                .args(["--json", "check", &config.name, "--threads", &threads.to_string()])
                .output()
                .map_err(|error| format!("cannot run {}: {error}", exe.display()))?;
            let text = String::from_utf8_lossy(&output.stdout);
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|error| format!("check {} printed no report ({error}): {text}", config.name))?;
            let report = &json["configurations"][0];
            let number = |field: &str| {
                report[field].as_f64().ok_or_else(|| format!("check {} report lacks `{field}`", config.name))
            };
            rates.push(number("states_per_second")?);
            seconds.push(number("seconds")?);
            memory.push(number("peak_memory_mb")?);
            unique = number("unique_states")? as u64;
        }
        rows.push(CheckBench {
            name: config.name.clone(),
            unique_states: unique,
            states_per_second: median(rates),
            seconds: median(seconds),
            peak_memory_mb: median(memory),
        });
    }
    Ok(rows)
}

/// `vaultsim bugs`: runs each bug-zoo entry's catch recipes (`sim::zoo`),
/// timing each catch, writing its trace and confirming it (the trace replays,
/// the same seed or configuration without the bug holds). Fails when an
/// entry escapes a driver that has a recipe for it, or its catch is not what
/// the recipe says.
#[cfg(feature = "bugzoo")]
fn bugs_command(cli: &Cli, only: &Bugs, threads: usize, trace_dir: &Path) -> Result<bool, String> {
    use sim::zoo::{check_model, confirm_model, confirm_simulation, simulate, DriverReport, EntryReport};
    let started = Instant::now();
    let recipes: Vec<_> =
        sim::zoo::recipes().into_iter().filter(|recipe| only.names().is_empty() || only.is_on(recipe.bug)).collect();
    let mut entries = Vec::new();
    for recipe in recipes {
        let bug = recipe.bug;
        let simulator = match &recipe.simulator {
            None => DriverReport::no_recipe(),
            Some(sim_recipe) => {
                let seeds = (sim_recipe.seeds.end - sim_recipe.seeds.start) as usize;
                let mut progress = Progress::new(&format!("{} simulator", bug.name()), seeds);
                let clock = Instant::now();
                let outcome = simulate(bug, sim_recipe, &cli.specs, |done| progress.update(done))?;
                let wall = clock.elapsed().as_secs_f64();
                progress.finish();
                let (problems, trace) = match &outcome.catch {
                    None => (Vec::new(), None),
                    Some(catch) => {
                        write_trace(trace_dir, &catch.trace_name(bug, sim_recipe), &catch.trace)?;
                        let problems = confirm_simulation(bug, sim_recipe, &cli.specs, catch);
                        (problems, Some(trace_dir.join(catch.trace_name(bug, sim_recipe))))
                    }
                };
                DriverReport::simulated(bug, sim_recipe, &outcome, problems, wall, trace.as_deref())
            }
        };
        let checker = match &recipe.model {
            None => DriverReport::no_recipe(),
            Some(model_recipe) => {
                eprintln!("{} checker: {} ({threads} threads)...", bug.name(), model_recipe.config);
                let clock = Instant::now();
                let outcome = check_model(bug, model_recipe, &cli.specs, threads)?;
                let wall = clock.elapsed().as_secs_f64();
                let (problems, trace) = match &outcome.catch {
                    None => (Vec::new(), None),
                    Some(catch) => {
                        write_trace(trace_dir, &model_recipe.trace_name(bug), &catch.trace)?;
                        let problems = confirm_model(bug, model_recipe, &cli.specs, catch, threads);
                        (problems, Some(trace_dir.join(model_recipe.trace_name(bug))))
                    }
                };
                DriverReport::checked(bug, model_recipe, &outcome, problems, wall, trace.as_deref())
            }
        };
        entries.push(EntryReport { bug, note: recipe.note, simulator, checker });
    }
    let wall = started.elapsed().as_secs_f64();
    let failed = entries.iter().filter(|entry| !entry.passed()).count();
    if cli.json {
        let entries: Vec<_> = entries.iter().map(EntryReport::to_json).collect();
        println!("{}", serde_json::json!({ "entries": entries, "failed": failed, "wall_seconds": wall }));
    } else {
        println!("bug zoo: {} entries", entries.len());
        print!("{}", EntryReport::table_header());
        for entry in &entries {
            print!("{}", entry.to_table());
        }
        println!(
            "escaped or miscaught: {failed}; wall time {wall:.1} s (catches confirmed by replay and a control run)"
        );
    }
    Ok(failed == 0)
}

/// `vaultsim bugs` in a build without the zoo: says how to get one.
#[cfg(not(feature = "bugzoo"))]
fn bugs_command(_cli: &Cli, _only: &Bugs, _threads: usize, _trace_dir: &Path) -> Result<bool, String> {
    Err("bugs: this build has no bug zoo; build with --features bugzoo, \
         e.g. `cargo run --release -p vaultsim-sim --features bugzoo -- bugs`"
        .into())
}

/// The contention sweep: a table (or JSON), and with `--plot` its SVG charts.
/// Runs a sweep of `runs` runs with a progress line (`sweep` calls its
/// argument after each run); returns the sweep's result and the wall time, s.
fn timed_sweep<T>(label: &str, runs: usize, sweep: impl FnOnce(&mut dyn FnMut()) -> T) -> (T, f64) {
    let started = Instant::now();
    let mut progress = Progress::new(label, runs);
    let mut done = 0;
    let result = sweep(&mut || {
        done += 1;
        progress.update(done);
    });
    progress.finish();
    (result, started.elapsed().as_secs_f64())
}

/// The noisy-neighbour sweep: a table (or JSON) and, with `--plot`, its chart.
fn noisy_command(cli: &Cli, seeds: u64, store_service_us: u64, plot: &Option<PathBuf>) -> Result<bool, String> {
    if seeds == 0 {
        return Err("--seeds: a sweep runs at least one seed".into());
    }
    let base = Scenario::load(&scenario_path(&cli.specs, "noisy-neighbour")).map_err(|error| error.to_string())?;
    if base.quotas.as_ref().and_then(|quotas| quotas.global.as_ref()).is_none() || base.workload.tenants < 2 {
        return Err("noisy-neighbour: the sweep needs a global quota and at least two tenants".into());
    }
    let seeds: Vec<u64> = (0..seeds).collect();
    let runs = seeds.len() * 2 * sim::noisy::FACTORS.len();
    let (cells, wall) =
        timed_sweep("noisy", runs, |tick| sim::noisy::sweep(&base, &seeds, store_service_us, |_, _| tick()));
    if let Some(folder) = plot {
        std::fs::create_dir_all(folder).map_err(|error| format!("cannot create {}: {error}", folder.display()))?;
        let path = folder.join("noisy-neighbour-latency.svg");
        std::fs::write(&path, sim::noisy::latency_chart(&cells).to_svg())
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if cli.json {
        let json = serde_json::json!({"noisy": cells, "seeds": seeds.len(), "store_service_us": store_service_us, "wall_seconds": wall});
        println!("{json}");
    } else {
        print!("{}", sim::noisy::to_table(&cells));
        println!(
            "(medians over {} seeds; store service time {store_service_us} µs unless the scenario sets one)",
            seeds.len()
        );
        println!("wall time {wall:.1} s");
    }
    Ok(cells.iter().all(|cell| cell.failed_seeds == 0))
}

/// Writes `text` to stdout; a reader that stopped reading (`| head`) ends
/// the output quietly instead of a panic.
fn print_all(text: &str) -> Result<(), String> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("cannot write to stdout: {error}")),
        _ => Ok(()),
    }
}

/// The migration's measurements: tables (or JSON).
fn migrate_command(cli: &Cli, seeds: u64) -> Result<bool, String> {
    if seeds == 0 {
        return Err("--seeds: a measurement runs at least one seed".into());
    }
    let base = Scenario::load(&scenario_path(&cli.specs, "migration-latency")).map_err(|error| error.to_string())?;
    if base.migration.is_none() {
        return Err("migration-latency: the measurement needs a [migration] section".into());
    }
    let seeds: Vec<u64> = (0..seeds).collect();
    let (measured, wall) = timed_sweep("migrate", seeds.len() * 3, |tick| sim::migrate::measure(&base, &seeds, tick));
    if cli.json {
        println!("{}", serde_json::json!({"migrate": measured, "wall_seconds": wall}));
    } else {
        print!("{}", sim::migrate::to_table(&measured));
        println!("(medians over {} seeds; scenario migration-latency)", seeds.len());
        println!("wall time {wall:.1} s");
    }
    Ok(measured.backfill.iter().all(|impact| impact.failed_seeds == 0))
}

fn contention_command(
    cli: &Cli,
    seeds: u64,
    plot: &Option<PathBuf>,
    real: &Option<PathBuf>,
    store_service_us: Option<u64>,
) -> Result<bool, String> {
    use sim::contention::{conflicts_chart, parse_real, shapes_chart, sweep, throughput_chart, SweepPlan};
    if seeds == 0 {
        return Err("--seeds: a sweep runs at least one seed".into());
    }
    let mut base = Scenario::load(&scenario_path(&cli.specs, "contention")).map_err(|error| error.to_string())?;
    if let Some(service) = store_service_us {
        base.network.store_service_us = service;
    }
    let suffix = store_service_us.map_or(String::new(), |service| format!("-store{service}us"));
    let real = match real {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            Some(parse_real(&text).map_err(|error| format!("{}: {error}", path.display()))?)
        }
        None => None,
    };
    let plan = SweepPlan::standard(seeds);
    let (table, wall) = timed_sweep("contention", plan.runs(), |tick| sweep(&base, &plan, |_, _| tick()));
    if let Some(folder) = plot {
        std::fs::create_dir_all(folder).map_err(|error| format!("cannot create {}: {error}", folder.display()))?;
        let mut charts = vec![
            ("contention-throughput", throughput_chart(&table)),
            ("contention-conflicts", conflicts_chart(&table, real.as_deref())),
        ];
        if let Some(real) = &real {
            charts.push(("contention-shapes", shapes_chart(&table, real)));
        }
        for (name, chart) in charts {
            let path = folder.join(format!("{name}{suffix}.svg"));
            std::fs::write(&path, chart.to_svg())
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    if cli.json {
        let mut json = serde_json::to_value(&table).expect("a sweep table serializes");
        json["real_threads"] = serde_json::json!(real);
        json["wall_seconds"] = serde_json::json!(wall);
        json["store_service_us"] = serde_json::json!(base.network.store_service_us);
        println!("{json}");
    } else {
        print!("{}", table.to_table());
        let service = base.network.store_service_us;
        match 1_000_000u64.checked_div(service) {
            Some(capacity) => println!("store service time {service} µs per request (capacity {capacity} requests/s)"),
            None => println!("store service time 0 (unlimited capacity)"),
        }
        if let Some(real) = &real {
            println!("real threads (medians over the runs in the file):");
            println!("{:<6} {:>7} {:>12} {:>16} {:>5}", "mode", "writers", "commits/s", "conflicts/commit", "runs");
            for cell in real {
                println!(
                    "{:<6} {:>7} {:>12.0} {:>16.3} {:>5}",
                    cell.mode, cell.writers, cell.commits_per_second, cell.conflicts_per_commit, cell.runs
                );
            }
        }
        println!("wall time {wall:.1} s");
    }
    Ok(table.cells.iter().all(|cell| cell.failed_seeds == 0))
}

/// The model configurations named by `config`: one name or path, or `all`.
fn model_configs(specs: &Path, config: &str) -> Result<Vec<ModelConfig>, String> {
    let paths = if config == "all" {
        let folder = specs.join("models");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(|error| format!("cannot read {}: {error}", folder.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|extension| extension == "toml"))
            // Bug-zoo models exist to be violated; the bug-zoo tests run them.
            .filter(|path| !path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("zoo-")))
            .collect();
        paths.sort();
        paths
    } else {
        let as_path = PathBuf::from(config);
        if as_path.extension().is_some_and(|extension| extension == "toml") {
            vec![as_path]
        } else {
            vec![specs.join("models").join(format!("{config}.toml"))]
        }
    };
    paths.iter().map(|path| ModelConfig::load(path).map_err(|error| error.to_string())).collect()
}

/// A configuration's check with its wall time and the process's peak memory.
struct Checked {
    report: CheckReport,
    seconds: f64,
    peak_memory_mb: Option<f64>,
    traces: Vec<(String, PathBuf)>,
}

fn run_checks(
    configs: &[ModelConfig],
    options: &CheckOptions,
    bugs: &Bugs,
    trace_dir: &Path,
) -> Result<Vec<Checked>, String> {
    let mut checked = Vec::new();
    for config in configs {
        eprintln!(
            "checking {} ({}, {} threads)...",
            config.name,
            if options.bfs { "bfs" } else { "dfs" },
            options.threads
        );
        let started = Instant::now();
        let report = check(config, bugs, options);
        let seconds = started.elapsed().as_secs_f64();
        let mut traces = Vec::new();
        for outcome in report.properties.iter().filter(|outcome| outcome.status == "violated") {
            let lines = outcome.trace.as_ref().expect("a violation has a path");
            let name = format!("check-{}-{}.jsonl", config.name, outcome.name);
            write_trace(trace_dir, &name, lines)?;
            traces.push((outcome.name.clone(), trace_dir.join(name)));
        }
        checked.push(Checked { report, seconds, peak_memory_mb: peak_memory_mb(), traces });
    }
    Ok(checked)
}

fn check_command(
    cli: &Cli,
    config: &str,
    options: &CheckOptions,
    bugs: &Bugs,
    trace_dir: &Path,
) -> Result<bool, String> {
    let configs = model_configs(&cli.specs, config)?;
    let checked = run_checks(&configs, options, bugs, trace_dir)?;
    if cli.json {
        let reports: Vec<_> = checked.iter().map(checked_json).collect();
        println!("{}", serde_json::json!({ "configurations": reports }));
    } else {
        for one in &checked {
            print!("{}", checked_table(one));
        }
    }
    Ok(checked.iter().all(|one| one.report.passed))
}

fn checked_json(checked: &Checked) -> serde_json::Value {
    let mut json = serde_json::to_value(&checked.report).expect("a report serializes");
    json["seconds"] = serde_json::json!(checked.seconds);
    json["states_per_second"] = serde_json::json!(checked.report.states as f64 / checked.seconds.max(1e-9));
    json["peak_memory_mb"] = serde_json::json!(checked.peak_memory_mb);
    let traces: serde_json::Map<String, serde_json::Value> = checked
        .traces
        .iter()
        .map(|(name, path)| (name.clone(), serde_json::json!(path.display().to_string())))
        .collect();
    json["counterexample_traces"] = serde_json::Value::Object(traces);
    json
}

fn checked_table(checked: &Checked) -> String {
    let report = &checked.report;
    let status = if report.passed { "ok" } else { "FAILED" };
    let pin = match report.pinned_unique_states {
        Some(pinned) if pinned == report.unique_states => " (as pinned)".to_string(),
        Some(pinned) => format!(" (PINNED {pinned}: update `pinned_unique_states` if the change is meant)"),
        None => String::new(),
    };
    let memory = checked.peak_memory_mb.map_or("?".to_string(), |mb| format!("{mb:.0} MB"));
    let mut out = format!(
        "model {}: {status}; {} states, {} unique{pin}, depth {}, {:.2} s, {:.0} states/s, peak memory {memory}\n",
        report.name,
        report.states,
        report.unique_states,
        report.max_depth,
        checked.seconds,
        report.states as f64 / checked.seconds.max(1e-9),
    );
    for outcome in &report.properties {
        let length = outcome.path_length.map_or(String::new(), |length| format!(" ({length} steps)"));
        let optional = if outcome.required { "" } else { " (not required here)" };
        out.push_str(&format!(
            "  {:<34} {:<9} {}{length}{optional}\n",
            outcome.name, outcome.expectation, outcome.status
        ));
    }
    for (name, path) in &checked.traces {
        out.push_str(&format!("  counterexample {name}: vaultsim replay {}\n", path.display()));
    }
    out
}

/// The process's peak resident memory, from the kernel (Linux only).
fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes / 1024.0)
}

fn explore_command(cli: &Cli, config: &str, addr: &str) -> Result<bool, String> {
    use stateright::Model;
    let configs = model_configs(&cli.specs, config)?;
    let [config] = configs.as_slice() else { return Err("explore takes one configuration".into()) };
    let address: std::net::SocketAddr = addr.parse().map_err(|error| format!("--addr {addr}: {error}"))?;
    if !address.ip().is_loopback() {
        return Err(format!("--addr {addr}: the Explorer serves on loopback only"));
    }
    eprintln!("serving the stateright Explorer for {} on http://{address}", config.name);
    CheckModel::new(config.clone(), Bugs::none()).checker().threads(2).serve(address);
    Ok(true)
}

fn json_with_wall(summary: &SweepSummary, wall: f64) -> serde_json::Value {
    let mut json = serde_json::to_value(summary).expect("a summary serializes");
    json["wall_seconds"] = serde_json::json!(wall);
    json["events_per_second"] = serde_json::json!(summary.steps as f64 / wall);
    json
}

fn scenario_path(specs: &Path, scenario: &str) -> PathBuf {
    let as_path = PathBuf::from(scenario);
    if as_path.extension().is_some_and(|extension| extension == "toml") || as_path.exists() {
        as_path
    } else {
        specs.join("scenarios").join(format!("{scenario}.toml"))
    }
}

fn parse_seeds(seeds: &str) -> Result<Vec<u64>, String> {
    let number = |text: &str| text.trim().parse::<u64>().map_err(|_| format!("--seeds: `{text}` is not a number"));
    match seeds.split_once("..") {
        Some((start, end)) => {
            let (start, end) = (number(start)?, number(end)?);
            if start >= end {
                return Err(format!("--seeds {seeds}: the range is empty (A..B excludes B)"));
            }
            Ok((start..end).collect())
        }
        None => Ok(vec![number(seeds)?]),
    }
}

/// A progress line on stderr: redrawn in place on a terminal, every quarter otherwise.
struct Progress {
    label: String,
    total: usize,
    terminal: bool,
    started: Instant,
}

impl Progress {
    fn new(label: &str, total: usize) -> Progress {
        Progress { label: label.to_string(), total, terminal: std::io::stderr().is_terminal(), started: Instant::now() }
    }

    fn update(&mut self, done: usize) {
        let quarter = (self.total / 4).max(1);
        if self.terminal {
            let width = 30;
            let filled = done * width / self.total.max(1);
            eprint!(
                "\r{} [{}{}] {done}/{} seeds {:.1}s",
                self.label,
                "#".repeat(filled),
                " ".repeat(width - filled),
                self.total,
                self.started.elapsed().as_secs_f64()
            );
        } else if done.is_multiple_of(quarter) || done == self.total {
            eprintln!("{}: {done}/{} seeds, {:.1}s", self.label, self.total, self.started.elapsed().as_secs_f64());
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}
