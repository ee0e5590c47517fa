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
use sim::driver::{run, RunOptions, RunResult};
use sim::report::SweepSummary;
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
    /// Measure the simulator's speed on `smoke` and `replication-faults`.
    Bench {
        /// Seeds per scenario.
        #[arg(long, default_value_t = 5)]
        seeds: u64,
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
            match Bugs::parse(bugs.iter().map(String::as_str)) {
                Ok(bugs) => {
                    let trace_dir = trace_dir.clone();
                    let options =
                        SweepOptions { swarm: *swarm, bugs, trace_dir, check_determinism: *check_determinism };
                    sim_command(&cli, scenario, seeds, &options)
                }
                Err(name) => {
                    Err(format!("--bug {name}: no such bug-zoo entry in this build (the zoo needs --features bugzoo)"))
                }
            }
        }
        Some(Command::Replay { trace }) => replay_command(&cli, trace),
        Some(Command::Render { trace, format: Format::Mermaid, from, to, hide_idle }) => {
            render_command(trace, *from, *to, *hide_idle)
        }
        Some(Command::Bench { seeds }) => bench_command(&cli, *seeds),
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
    let failed: u64 = summaries.iter().map(|(summary, _)| summary.failed).sum();
    if cli.json {
        let scenarios: Vec<_> = summaries.iter().map(|(summary, wall)| json_with_wall(summary, *wall)).collect();
        let report = serde_json::json!({
            "scenarios": scenarios,
            "model_configurations_run": 0,
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
        println!("model configurations: 0 (the model checker has not landed yet)");
        println!("violations: {failed}");
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
    print!("{diagram}");
    Ok(true)
}

/// Simulator speed with traces off; medians over seeds.
fn bench_command(cli: &Cli, seeds: u64) -> Result<bool, String> {
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
        rows.push((name, median(&mut events_per_second), median(&mut simulated_per_wall)));
    }
    if cli.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(name, events, simulated)| serde_json::json!({"scenario": name, "events_per_second": events, "simulated_seconds_per_wall_second": simulated, "seeds": seeds}))
            .collect();
        println!("{}", serde_json::json!({ "bench": rows }));
    } else {
        println!("{:<20} {:>16} {:>26}", "scenario", "events/s", "simulated s per wall s");
        for (name, events, simulated) in rows {
            println!("{name:<20} {events:>16.0} {simulated:>26.0}");
        }
        println!("(medians over {seeds} seeds, traces off, properties on, one thread)");
    }
    Ok(true)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
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
