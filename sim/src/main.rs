//! `vaultsim`: the command line of the testbed.
//!
//! This is the only code that touches argv, stdout, the file system and the
//! wall clock. With no subcommand it runs the default suite and exits non-zero
//! on any violation (or when the suite cannot be assembled).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sim::suite::Suite;

/// Model-check and simulate the vaultsim secrets service.
#[derive(Parser, Debug)]
#[command(name = "vaultsim", version)]
struct Cli {
    /// Folder holding `scenarios/*.toml`.
    #[arg(long, default_value = "specs")]
    specs: PathBuf,
    /// Print one JSON document on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let suite = match Suite::discover(&cli.specs) {
        Ok(suite) => suite,
        Err(error) => {
            eprintln!("vaultsim: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.json {
        let scenarios: Vec<String> = suite.scenarios.iter().map(|path| path.display().to_string()).collect();
        let report = serde_json::json!({
            "scenarios_found": scenarios,
            "scenarios_run": 0,
            "model_configurations_run": 0,
            "violations": 0,
        });
        println!("{report}");
    } else {
        println!("vaultsim default suite");
        println!("  scenarios found:  {}", suite.scenarios.len());
        println!("  scenarios run:    0 (the simulator has not landed yet)");
        println!("  model configs:    0 (the model checker has not landed yet)");
        println!("  violations:       0");
    }
    ExitCode::SUCCESS
}
