//! Scenarios as code: `specs/scenarios/*.toml`.
//!
//! A scenario names a topology, a workload, a network, faults, the replication
//! knobs, the run's length, the properties to check and the convergence bound.
//! Every field has a default except the name, so a scenario file says only what
//! differs. Unknown fields are errors (a typo must not silently become a
//! default). A broken file fails with its path, the line and the field.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One scenario. See the module documentation; field docs give units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name (used in reports and replay commands).
    pub name: String,
    /// One sentence on what it exercises.
    #[serde(default)]
    pub description: String,
    /// Nodes.
    #[serde(default)]
    pub topology: Topology,
    /// Client traffic.
    #[serde(default)]
    pub workload: Workload,
    /// Message latency and loss.
    #[serde(default)]
    pub network: Network,
    /// Crashes, partitions and clock drift.
    #[serde(default)]
    pub faults: Faults,
    /// Interceptor mode and replication knobs.
    #[serde(default)]
    pub replication: Replication,
    /// Run length, properties and the convergence bound.
    #[serde(default)]
    pub run: Run,
}

/// Nodes of the cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topology {
    /// Control-plane workers.
    pub workers: u32,
    /// Data-plane hosts.
    pub hosts: u32,
}

impl Default for Topology {
    fn default() -> Topology {
        Topology { workers: 2, hosts: 3 }
    }
}

/// Client traffic: open-loop arrivals of weighted operations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Tenancies (each has its own log partition).
    pub tenants: u32,
    /// Vaults per tenancy.
    pub vaults_per_tenant: u32,
    /// Most secrets created over the run.
    pub secrets_max: u32,
    /// Mean arrivals per simulated second.
    pub rate_per_second: u32,
    /// Zipf exponent of secret popularity (0 = uniform).
    pub zipf_exponent: f64,
    /// Relative weights of operation kinds.
    pub mix: Mix,
    /// Periods of higher arrival rate.
    pub bursts: Vec<Burst>,
}

impl Default for Workload {
    fn default() -> Workload {
        Workload {
            tenants: 2,
            vaults_per_tenant: 1,
            secrets_max: 64,
            rate_per_second: 200,
            zipf_exponent: 1.0,
            mix: Mix::default(),
            bursts: Vec::new(),
        }
    }
}

/// Relative weights of operation kinds (need not sum to anything).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    /// Create a new secret.
    pub create: u32,
    /// Update an existing secret.
    pub update: u32,
    /// Delete a secret.
    pub delete: u32,
    /// Read a secret from the remote store through a worker.
    pub remote_read: u32,
    /// Read a secret from a data-plane host.
    pub host_read: u32,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix { create: 20, update: 40, delete: 5, remote_read: 10, host_read: 25 }
    }
}

/// A period in which arrivals come `multiplier` times faster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// Start, in simulated milliseconds from the start of the run.
    pub at_ms: u64,
    /// Length in milliseconds.
    pub duration_ms: u64,
    /// Rate multiplier.
    pub multiplier: u32,
}

/// Message latency and loss, per message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// Smallest one-way latency, microseconds.
    pub latency_min_us: u64,
    /// Largest one-way latency, microseconds (uniform in between; this spread
    /// is what reorders messages).
    pub latency_max_us: u64,
    /// Latency to and from the remote store is multiplied by this (the store is
    /// farther than the hosts' local stores).
    pub store_latency_factor: u64,
    /// Chance of losing a message, per million, during the fault phase.
    pub drop_per_million: u32,
    /// Chance of duplicating a message, per million, during the fault phase.
    pub duplicate_per_million: u32,
    /// Chance of holding a message back by `reorder_delay_us` so that later
    /// messages overtake it, per million, during the fault phase.
    pub reorder_per_million: u32,
    /// The extra delay of a held-back message, microseconds.
    pub reorder_delay_us: u64,
    /// Latency overrides for links between kinds of node.
    pub links: Vec<Link>,
}

/// The latency of messages from one kind of node to another (overrides the
/// network's default and its store factor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Sender kind: `worker`, `host`, `publisher`, `activator`, `store` or `client`.
    pub from: String,
    /// Receiver kind, as `from`.
    pub to: String,
    /// Smallest one-way latency, microseconds.
    pub latency_min_us: u64,
    /// Largest one-way latency, microseconds.
    pub latency_max_us: u64,
}

/// The kinds of node a [`Link`] may name.
pub const NODE_KINDS: [&str; 6] = ["worker", "host", "publisher", "activator", "store", "client"];

impl Default for Network {
    fn default() -> Network {
        Network {
            latency_min_us: 200,
            latency_max_us: 1_000,
            store_latency_factor: 2,
            drop_per_million: 0,
            duplicate_per_million: 0,
            reorder_per_million: 0,
            reorder_delay_us: 5_000,
            links: Vec::new(),
        }
    }
}

/// Node faults during the fault phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Mean time between crashes, ms (0 = no crashes).
    pub crash_interval_ms: u64,
    /// How long a crashed node stays down, ms.
    pub crash_down_ms: u64,
    /// Mean time between partitions, ms (0 = no partitions).
    pub partition_interval_ms: u64,
    /// How long a partition lasts, ms.
    pub partition_duration_ms: u64,
    /// Largest clock drift of a node, parts per million (timers of a node
    /// with drift d fire after `interval * (1 + d / 1e6)`).
    pub clock_drift_ppm_max: u32,
    /// Mean time between pauses, ms (0 = no pauses). A paused node handles no
    /// message and no timer until the pause ends (a stop-the-world stall).
    pub pause_interval_ms: u64,
    /// Longest pause, ms.
    pub pause_duration_ms: u64,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            crash_interval_ms: 0,
            crash_down_ms: 200,
            partition_interval_ms: 0,
            partition_duration_ms: 200,
            clock_drift_ppm_max: 0,
            pause_interval_ms: 0,
            pause_duration_ms: 50,
        }
    }
}

/// How mutations reach the hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Replication {
    /// `sync` or `async`.
    pub mode: Mode,
    /// Host poll interval, ms.
    pub poll_interval_ms: u64,
    /// Events per partition per poll.
    pub poll_events_max: usize,
    /// Publisher rows per round (async).
    pub publisher_batch_events_max: usize,
    /// Publisher round interval, ms (async).
    pub publish_interval_ms: u64,
    /// Worker attempts per operation.
    pub commit_attempts_max: u32,
    /// Worker backoff after the first conflict, microseconds.
    pub retry_delay_us: u64,
}

impl Default for Replication {
    fn default() -> Replication {
        Replication {
            mode: Mode::Async,
            poll_interval_ms: 10,
            poll_events_max: 64,
            publisher_batch_events_max: 32,
            publish_interval_ms: 5,
            commit_attempts_max: 8,
            retry_delay_us: 1_000,
        }
    }
}

/// The interceptor mode, as written in scenario files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Append in the mutation's transaction.
    Sync,
    /// Outbox row and publisher.
    Async,
}

/// Run length and checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Run {
    /// Length of the fault phase (client traffic and faults), ms.
    pub fault_phase_ms: u64,
    /// After the fault phase, everything must converge (REP-6) within this, ms.
    pub converge_within_ms: u64,
    /// Seeds the default suite runs.
    pub seeds: u64,
    /// Properties checked (stable IDs); empty means all.
    pub properties: Vec<String>,
}

impl Default for Run {
    fn default() -> Run {
        Run { fault_phase_ms: 2_000, converge_within_ms: 2_000, seeds: 8, properties: Vec::new() }
    }
}

/// A scenario or model-configuration file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The field (dotted path), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// Reads and validates the scenario file at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        load_toml(path, Scenario::validate)
    }

    /// Parses and validates scenario `text`; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        parse_toml(path, text, Scenario::validate)
    }

    /// Checks relations that the types cannot: returns the field and why.
    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, message: &str| Err((field.to_string(), message.to_string()));
        if self.name.trim().is_empty() {
            return fail("name", "must not be empty");
        }
        if self.topology.workers == 0 {
            return fail("topology.workers", "must be at least 1");
        }
        if self.topology.hosts == 0 {
            return fail("topology.hosts", "must be at least 1");
        }
        if self.workload.tenants == 0 {
            return fail("workload.tenants", "must be at least 1");
        }
        if self.workload.vaults_per_tenant == 0 {
            return fail("workload.vaults_per_tenant", "must be at least 1");
        }
        if !(0.0..=4.0).contains(&self.workload.zipf_exponent) {
            return fail("workload.zipf_exponent", "must be between 0 and 4");
        }
        let mix = &self.workload.mix;
        if mix.create + mix.update + mix.delete + mix.remote_read + mix.host_read == 0 {
            return fail("workload.mix", "at least one weight must be positive");
        }
        if self.network.latency_min_us > self.network.latency_max_us {
            return fail("network.latency_min_us", "must not exceed network.latency_max_us");
        }
        if self.network.reorder_per_million >= 1_000_000 {
            return fail("network.reorder_per_million", "a chance per million must be below 1000000");
        }
        for link in &self.network.links {
            if !NODE_KINDS.contains(&link.from.as_str()) || !NODE_KINDS.contains(&link.to.as_str()) {
                let message = format!("a link joins two of {NODE_KINDS:?}, not `{}` and `{}`", link.from, link.to);
                return Err(("network.links".to_string(), message));
            }
            if link.latency_min_us > link.latency_max_us {
                return fail("network.links", "a link's latency_min_us must not exceed its latency_max_us");
            }
        }
        if self.network.store_latency_factor == 0 {
            return fail("network.store_latency_factor", "must be at least 1");
        }
        if self.network.drop_per_million >= 1_000_000 || self.network.duplicate_per_million >= 1_000_000 {
            return fail("network.drop_per_million", "a chance per million must be below 1000000");
        }
        if self.replication.poll_interval_ms == 0 || self.replication.publish_interval_ms == 0 {
            return fail("replication.poll_interval_ms", "intervals must be at least 1 ms");
        }
        if self.replication.poll_events_max == 0 || self.replication.publisher_batch_events_max == 0 {
            return fail("replication.poll_events_max", "batches must hold at least one event");
        }
        if self.replication.commit_attempts_max == 0 {
            return fail("replication.commit_attempts_max", "must be at least 1");
        }
        if self.run.fault_phase_ms == 0 {
            return fail("run.fault_phase_ms", "must be at least 1");
        }
        if let Some(unknown) = self.run.properties.iter().find(|id| model::PropertyId::parse(id).is_none()) {
            return Err(("run.properties".to_string(), format!("unknown property ID `{unknown}`")));
        }
        Ok(())
    }

    /// The properties to check (all when the file names none).
    pub fn properties(&self) -> Vec<model::PropertyId> {
        if self.run.properties.is_empty() {
            return model::PropertyId::ALL.to_vec();
        }
        self.run.properties.iter().filter_map(|id| model::PropertyId::parse(id)).collect()
    }
}

/// Reads a TOML spec file and checks it with `validate` (which names the
/// offending field); errors name the file, line and field.
pub(crate) fn load_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    validate: impl Fn(&T) -> Result<(), (String, String)>,
) -> Result<T, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|error| ScenarioError {
        path: path.to_path_buf(),
        line: None,
        field: None,
        message: format!("cannot read: {error}"),
    })?;
    parse_toml(path, &text, validate)
}

/// Parses TOML `text` (from `path`) and checks it with `validate`.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    validate: impl Fn(&T) -> Result<(), (String, String)>,
) -> Result<T, ScenarioError> {
    let value: T = toml::from_str(text).map_err(|error| {
        let line = error.span().map(|span| line_of(text, span.start));
        let message = error.message().trim().to_string();
        let field = field_in_message(&message).or_else(|| line.and_then(|line| field_at_line(text, line)));
        ScenarioError { path: path.to_path_buf(), line, field, message }
    })?;
    validate(&value).map_err(|(field, message)| ScenarioError {
        path: path.to_path_buf(),
        line: line_of_field(text, &field),
        field: Some(field),
        message,
    })?;
    Ok(value)
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|byte| *byte == b'\n').count() + 1
}

/// The field a toml message names, as in "unknown field `x`" or "missing field `x`".
fn field_in_message(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    let named = message[..start].contains("field");
    named.then(|| message[start..end].to_string())
}

/// The key assigned on a 1-based line, qualified by its table header.
fn field_at_line(text: &str, line: usize) -> Option<String> {
    let mut table = String::new();
    for (index, content) in text.lines().enumerate() {
        let content = content.trim();
        if content.starts_with('[') {
            table = content.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
        if index + 1 == line {
            let key = content.split('=').next()?.trim();
            if key.is_empty() || key.starts_with('[') {
                return (!table.is_empty()).then_some(table);
            }
            return Some(if table.is_empty() { key.to_string() } else { format!("{table}.{key}") });
        }
    }
    None
}

/// The 1-based line where dotted `field` is assigned, if the file assigns it.
fn line_of_field(text: &str, field: &str) -> Option<usize> {
    let (table, key) = match field.rsplit_once('.') {
        Some((table, key)) => (table, key),
        None => ("", field),
    };
    let mut current = String::new();
    for (index, content) in text.lines().enumerate() {
        let content = content.trim();
        if content.starts_with('[') {
            current = content.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            if current == field {
                return Some(index + 1);
            }
            continue;
        }
        let assigned = content.split('=').next().map(str::trim);
        if current == table && assigned == Some(key) {
            return Some(index + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(Path::new("specs/scenarios/broken.toml"), text)
    }

    #[test]
    fn a_name_alone_is_a_scenario_with_defaults() {
        let scenario = parse("name = \"tiny\"\n").expect("valid");
        assert_eq!(scenario.name, "tiny");
        assert_eq!(scenario.topology, Topology::default());
        assert_eq!(scenario.properties().len(), model::PropertyId::ALL.len());
    }

    #[test]
    fn an_unknown_field_names_file_line_and_field() {
        let error = parse("name = \"x\"\n\n[topology]\nworkers = 2\nhostz = 3\n").unwrap_err();
        assert_eq!(error.line, Some(5), "{error}");
        assert_eq!(error.field.as_deref(), Some("hostz"), "{error}");
        let text = error.to_string();
        assert!(text.starts_with("specs/scenarios/broken.toml:5: field `hostz`"), "{text}");
    }

    #[test]
    fn a_wrong_type_names_the_line_and_field() {
        let error = parse("name = \"x\"\n[network]\nlatency_max_us = \"fast\"\n").unwrap_err();
        assert_eq!(error.line, Some(3), "{error}");
        assert_eq!(error.field.as_deref(), Some("network.latency_max_us"), "{error}");
    }

    #[test]
    fn a_missing_name_is_reported() {
        let error = parse("[topology]\nworkers = 1\n").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("name"), "{error}");
    }

    #[test]
    fn an_invalid_value_names_its_line() {
        let error = parse("name = \"x\"\n[topology]\nworkers = 0\n").unwrap_err();
        assert_eq!(error.line, Some(3), "{error}");
        assert_eq!(error.field.as_deref(), Some("topology.workers"), "{error}");
        let error = parse("name = \"x\"\n[run]\nproperties = [\"REP-1\", \"REP-42\"]\n").unwrap_err();
        assert_eq!(error.line, Some(3), "{error}");
        assert!(error.message.contains("REP-42"), "{error}");
    }

    #[test]
    fn links_name_known_kinds() {
        let text = "name = \"x\"\n[network]\nlinks = [{ from = \"host\", to = \"toaster\", latency_min_us = 1, latency_max_us = 2 }]\n";
        let error = parse(text).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("network.links"), "{error}");
        assert_eq!(error.line, Some(3), "{error}");
        assert!(error.message.contains("toaster"), "{error}");
    }

    #[test]
    fn mode_is_lowercase_in_files() {
        let scenario = parse("name = \"x\"\n[replication]\nmode = \"sync\"\n").expect("valid");
        assert_eq!(scenario.replication.mode, Mode::Sync);
        assert!(parse("name = \"x\"\n[replication]\nmode = \"Sync\"\n").is_err());
    }
}
