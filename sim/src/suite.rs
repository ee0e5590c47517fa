//! The default suite: which scenarios and model configurations exist.
//!
//! `vaultsim` with no arguments runs every scenario in `specs/scenarios/` and
//! every model configuration. Until the simulator lands there is nothing to run
//! a scenario with, so the suite only discovers and reports them.

use std::fmt;
use std::path::{Path, PathBuf};

/// What the default suite found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suite {
    /// Scenario files, sorted by path.
    pub scenarios: Vec<PathBuf>,
}

/// Why the suite could not be assembled.
#[derive(Debug)]
pub enum SuiteError {
    /// The specs folder is missing or unreadable.
    SpecsUnreadable {
        /// The folder looked at.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

impl fmt::Display for SuiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuiteError::SpecsUnreadable { path, source } => {
                write!(f, "cannot read scenario folder {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for SuiteError {}

impl Suite {
    /// Finds the scenario files (`*.toml`) under `specs/scenarios` of `specs`.
    pub fn discover(specs: &Path) -> Result<Suite, SuiteError> {
        let folder = specs.join("scenarios");
        let unreadable = |source| SuiteError::SpecsUnreadable { path: folder.clone(), source };
        let mut scenarios = Vec::new();
        for entry in std::fs::read_dir(&folder).map_err(unreadable)? {
            let path = entry.map_err(unreadable)?.path();
            if path.extension().is_some_and(|extension| extension == "toml") {
                scenarios.push(path);
            }
        }
        // Directory order differs between file systems: sort for determinism.
        scenarios.sort();
        Ok(Suite { scenarios })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_only_toml_files_in_sorted_order() {
        let root = std::env::temp_dir().join(format!("vaultsim-suite-{}", std::process::id()));
        let folder = root.join("scenarios");
        std::fs::create_dir_all(&folder).expect("temporary folder");
        for name in ["b.toml", "a.toml", "notes.md"] {
            std::fs::write(folder.join(name), "").expect("temporary file");
        }
        let suite = Suite::discover(&root).expect("readable folder");
        let names: Vec<_> = suite.scenarios.iter().map(|path| path.file_name().unwrap().to_owned()).collect();
        std::fs::remove_dir_all(&root).expect("cleanup");
        assert_eq!(names, ["a.toml", "b.toml"]);
    }

    #[test]
    fn missing_folder_names_the_path() {
        let error = Suite::discover(Path::new("no-such-specs-folder")).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("no-such-specs-folder"), "{message}");
    }
}
