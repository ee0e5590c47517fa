//! Traces: one JSON Lines format for every run.
//!
//! Line 1 is a header: the format version, the crate version, the scenario (in
//! full, so a trace replays without its file), the seed and the swarm flag.
//! Each following line is one action with its effects: the step number, the
//! time after it, the action, the messages it sent (id, sender, receiver, a
//! short label), the messages it lost, and the properties it violated. The last
//! line, when the run reached its end, holds the end-of-run check.
//!
//! [`replay`] rebuilds the world from the header, re-applies every action and
//! re-renders every line; a trace replays only if every line matches byte for
//! byte. [`render_mermaid`] turns a trace into a sequence diagram.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Value as Json};
use vault::bugzoo::Bugs;
use vault::store::{CommitOutcome, IdempotencyToken, StoreReply, StoreRequest};
use vault::types::{Content, SecretId, TenantId, Time, VaultId, Version};
use vault::worker::{Done, Operation, RequestId};

use crate::checker::{CheckModel, ModelConfig};
use crate::driver::{build_world, end_of_run_violations, refinement_for, Knobs};
use crate::refinement::RefinementTracker;
use crate::scenario::Scenario;
use crate::world::{Action, Message, MessageId, NodeId, Payload, StepReport, World};

/// The trace format's version; bump it when a line's shape changes.
pub const FORMAT_VERSION: u64 = 1;

/// Builds a trace while a run goes.
#[derive(Clone, Debug)]
pub struct TraceWriter {
    lines: Vec<String>,
}

impl TraceWriter {
    /// A trace with its header.
    pub fn new(scenario: &Scenario, seed: u64, swarm: bool, bugs: &Bugs) -> TraceWriter {
        let header = json!({
            "vaultsim_trace": FORMAT_VERSION,
            "version": env!("CARGO_PKG_VERSION"),
            "scenario": scenario.name,
            "seed": seed,
            "swarm": swarm,
            "bugs": bugs.names(),
            "config": scenario,
        });
        TraceWriter { lines: vec![header.to_string()] }
    }

    /// A trace of a model-checker path through `config`, with its header.
    pub fn for_model(config: &ModelConfig, bugs: &Bugs) -> TraceWriter {
        let header = json!({
            "vaultsim_trace": FORMAT_VERSION,
            "version": env!("CARGO_PKG_VERSION"),
            "model": config.name,
            "bugs": bugs.names(),
            "check": config,
        });
        TraceWriter { lines: vec![header.to_string()] }
    }

    /// Records one step.
    pub fn step(&mut self, world: &World, action: &Action, report: &StepReport) {
        self.lines.push(step_line(world, action, report));
    }

    /// Records the end-of-run check.
    pub fn finish(&mut self, world: &World, quiet: bool, violations: &[model::Violation]) {
        self.lines.push(final_line(world, quiet, violations));
    }

    /// FNV-1a hash of the whole text (lines joined by newlines).
    pub fn hash(&self) -> u64 {
        vault::types::Checksum::of(self.text().as_bytes()).0
    }

    /// The whole text, newline-terminated.
    pub fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }

    /// The lines.
    pub fn into_lines(self) -> Vec<String> {
        self.lines
    }
}

fn step_line(world: &World, action: &Action, report: &StepReport) -> String {
    let sent: Vec<Json> = report
        .sent
        .iter()
        .map(|id| {
            let message = &world.in_flight()[id];
            json!([id.0, node_name(message.from), node_name(message.to), label(message)])
        })
        .collect();
    let lost: Vec<u64> = report.lost.iter().map(|id| id.0).collect();
    let violations: Vec<String> = report.violations.iter().map(ToString::to_string).collect();
    let mut line = json!({
        "step": world.steps(),
        "now": world.now().0,
        "action": action_to_json(action),
    });
    let object = line.as_object_mut().expect("an object");
    if !sent.is_empty() {
        object.insert("sent".into(), Json::from(sent));
    }
    if !lost.is_empty() {
        object.insert("lost".into(), Json::from(lost));
    }
    if !violations.is_empty() {
        object.insert("violations".into(), Json::from(violations));
    }
    line.to_string()
}

fn final_line(world: &World, quiet: bool, violations: &[model::Violation]) -> String {
    let violations: Vec<String> = violations.iter().map(ToString::to_string).collect();
    json!({ "final": { "steps": world.steps(), "now": world.now().0, "quiet": quiet, "violations": violations } })
        .to_string()
}

/// A node's name in traces: `store`, `client`, `activator`, `worker:N`,
/// `host:N`, `publisher:T`; a cell of another shard than the base names its
/// shard: `store:S`, `activator:S`, `publisher:S.T`.
pub fn node_name(node: NodeId) -> String {
    match node {
        NodeId::Store(0) => "store".into(),
        NodeId::Store(shard) => format!("store:{shard}"),
        NodeId::Client => "client".into(),
        NodeId::Activator(0) => "activator".into(),
        NodeId::Activator(shard) => format!("activator:{shard}"),
        NodeId::Router(index) => format!("router:{index}"),
        NodeId::ShardAdder => "shard-adder".into(),
        NodeId::Operator => "operator".into(),
        NodeId::Backfiller => "backfiller".into(),
        NodeId::Verifier => "verifier".into(),
        NodeId::Reader(index) => format!("reader:{index}"),
        NodeId::Worker(index) => format!("worker:{index}"),
        NodeId::Host(index) => format!("host:{index}"),
        NodeId::Publisher(0, tenant) => format!("publisher:{tenant}"),
        NodeId::Publisher(shard, tenant) => format!("publisher:{shard}.{tenant}"),
    }
}

/// The node named `name` in a trace.
pub fn parse_node(name: &str) -> Option<NodeId> {
    match name {
        "store" => return Some(NodeId::Store(0)),
        "client" => return Some(NodeId::Client),
        "activator" => return Some(NodeId::Activator(0)),
        "operator" => return Some(NodeId::Operator),
        "backfiller" => return Some(NodeId::Backfiller),
        "verifier" => return Some(NodeId::Verifier),
        "shard-adder" => return Some(NodeId::ShardAdder),
        _ => {}
    }
    let (kind, index) = name.split_once(':')?;
    if let ("publisher", Some((shard, tenant))) = (kind, index.split_once('.')) {
        return Some(NodeId::Publisher(shard.parse().ok()?, tenant.parse().ok()?));
    }
    let index: u32 = index.parse().ok()?;
    match kind {
        "store" => Some(NodeId::Store(index)),
        "activator" => Some(NodeId::Activator(index)),
        "router" => Some(NodeId::Router(index)),
        "worker" => Some(NodeId::Worker(index)),
        "host" => Some(NodeId::Host(index)),
        "publisher" => Some(NodeId::Publisher(0, index)),
        "reader" => Some(NodeId::Reader(index)),
        _ => None,
    }
}

/// A short description of a message for traces and diagrams.
pub fn label(message: &Message) -> String {
    match &message.payload {
        Payload::StoreRequest { request, .. } => match request {
            StoreRequest::Read { keys } => format!("read {} keys", keys.len()),
            StoreRequest::Commit(transaction) => format!("commit {} writes", transaction.writes.len()),
            StoreRequest::Scan { table, .. } => format!("scan {table:?}"),
            StoreRequest::ReadOutbox { .. } => "read outbox".into(),
            StoreRequest::Poll { .. } => "poll".into(),
            StoreRequest::PollRoutes { .. } => "poll routes".into(),
        },
        Payload::StoreReply { reply, .. } => match reply {
            StoreReply::Read(entries) => format!("{} entries", entries.len()),
            StoreReply::Commit(CommitOutcome::Committed { commit, .. }) => format!("committed c{}", commit.0),
            StoreReply::Commit(CommitOutcome::Conflict { key }) => format!("conflict on {key:?}"),
            StoreReply::Commit(CommitOutcome::Invalid(invalid)) => format!("invalid {invalid:?}"),
            StoreReply::Scan(page) => format!("{} rows", page.rows.len()),
            StoreReply::Outbox { rows, .. } => format!("{} outbox rows", rows.len()),
            StoreReply::Poll(events) => format!("{} events", events.len()),
            StoreReply::Routes(events) => format!("{} routing events", events.len()),
        },
        Payload::ClientRequest { request, operation } => format!("req{} {}", request.0, operation_label(operation)),
        Payload::ClientAnswer { request, result } => match result {
            Ok(done) => format!("req{} ok {}", request.0, done_label(done)),
            Err(error) => format!("req{} error {error:?}", request.0),
        },
        Payload::HostRead { request, secret } => format!("req{} read {secret}", request.0),
        Payload::HostReadAnswer { request, read } => match read {
            Ok(vault::host::LocalRead::Found(record)) => format!("req{} found v{}", request.0, record.version.0),
            Ok(vault::host::LocalRead::Missing) => format!("req{} missing", request.0),
            Err(error) => format!("req{} error {error:?}", request.0),
        },
        Payload::DigestRequest { secrets, .. } => format!("digest {} secrets", secrets.len()),
        Payload::DigestReply { digest, .. } => format!("{} digest entries", digest.len()),
        Payload::RepairRequest { secret, record, .. } => format!("repair {secret} v{}", record.version.0),
        Payload::RepairReply { replaced, .. } => format!("repaired: {replaced}"),
        Payload::Applied { .. } => "applied".into(),
        Payload::RoutedRead { request, caller, secret } => format!("req{} read {secret} as {caller}", request.0),
        Payload::Proxied { routed } => format!("req{} proxied to shard {}", routed.request.0, routed.shard.0),
        Payload::RouteFailed { request, outcome } => format!("req{} {outcome:?}", request.0),
    }
}

fn done_label(done: &Done) -> String {
    match done {
        Done::Vault(vault) => vault.to_string(),
        Done::Secret { secret, version } => format!("{secret} v{}", version.0),
        Done::Read(record) => format!("read v{} {:?}", record.version.0, record.lifecycle),
    }
}

fn operation_label(operation: &Operation) -> String {
    match operation {
        Operation::CreateVault { vault, .. } => format!("create {vault}"),
        Operation::DeleteVault { vault } => format!("delete {vault}"),
        Operation::CreateSecret { secret, .. } => format!("create {secret}"),
        Operation::UpdateSecret { secret, .. } => format!("update {secret}"),
        Operation::ScheduleDeletion { secret } => format!("schedule deletion {secret}"),
        Operation::DeleteSecret { secret, .. } => format!("delete {secret}"),
        Operation::ReadSecret { secret } => format!("read {secret}"),
    }
}

/// An action as JSON.
pub fn action_to_json(action: &Action) -> Json {
    match action {
        Action::Deliver { message, at } => json!({ "deliver": { "message": message.0, "at": at.0 } }),
        Action::Drop(message) => json!({ "drop": message.0 }),
        Action::Duplicate(message) => json!({ "duplicate": message.0 }),
        Action::FireTimer { node, at } => json!({ "fire": { "node": node_name(*node), "at": at.0 } }),
        Action::Crash(node) => json!({ "crash": node_name(*node) }),
        Action::Restart(node) => json!({ "restart": node_name(*node) }),
        Action::Isolate(node) => json!({ "isolate": node_name(*node) }),
        Action::Heal => json!({ "heal": true }),
        Action::Submit { request, worker, operation, at } => json!({ "submit": {
            "request": request.0, "worker": worker, "at": at.0, "operation": operation_to_json(operation),
        } }),
        Action::Read { request, host, secret, at } => json!({ "read": {
            "request": request.0, "host": host, "secret": secret.0, "at": at.0,
        } }),
        Action::Rollback { at } => json!({ "rollback": { "at": at.0 } }),
        Action::Corrupt { host, secret } => json!({ "corrupt": { "host": host, "secret": secret.0 } }),
        Action::RoutedRead { request, host, caller, secret, at } => json!({ "routed_read": {
            "request": request.0, "host": host, "caller": caller.0, "secret": secret.0, "at": at.0,
        } }),
        Action::StoreOutage { shard, down } => json!({ "store_outage": { "shard": shard, "down": down } }),
        Action::AddShard { at } => json!({ "add_shard": { "at": at.0 } }),
    }
}

fn operation_to_json(operation: &Operation) -> Json {
    match operation {
        Operation::CreateVault { vault, tenant } => json!({ "create_vault": { "vault": vault.0, "tenant": tenant.0 } }),
        Operation::DeleteVault { vault } => json!({ "delete_vault": { "vault": vault.0 } }),
        Operation::CreateSecret { secret, vault, content, token } => json!({ "create_secret": {
            "secret": secret.0, "vault": vault.0, "content": hex(content.bytes()), "token": token.0,
        } }),
        Operation::UpdateSecret { secret, content, expected } => json!({ "update_secret": {
            "secret": secret.0, "content": hex(content.bytes()), "expected": expected.map(|version| version.0),
        } }),
        Operation::ScheduleDeletion { secret } => json!({ "schedule_deletion": { "secret": secret.0 } }),
        Operation::DeleteSecret { secret, expected } => json!({ "delete_secret": {
            "secret": secret.0, "expected": expected.map(|version| version.0),
        } }),
        Operation::ReadSecret { secret } => json!({ "read_secret": { "secret": secret.0 } }),
    }
}

/// Why a trace could not be read or did not replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for TraceError {}

/// Reads fields of one JSON object, naming the line in errors.
struct Fields<'a> {
    json: &'a Json,
    line: usize,
}

impl<'a> Fields<'a> {
    fn error(&self, message: String) -> TraceError {
        TraceError { line: self.line, message }
    }

    fn get(&self, field: &str) -> Result<&'a Json, TraceError> {
        self.json.get(field).ok_or_else(|| self.error(format!("missing field `{field}`")))
    }

    fn u64(&self, field: &str) -> Result<u64, TraceError> {
        self.get(field)?.as_u64().ok_or_else(|| self.error(format!("field `{field}` is not an unsigned integer")))
    }

    fn u32(&self, field: &str) -> Result<u32, TraceError> {
        u32::try_from(self.u64(field)?).map_err(|_| self.error(format!("field `{field}` does not fit 32 bits")))
    }

    fn optional_u64(&self, field: &str) -> Result<Option<u64>, TraceError> {
        match self.get(field)? {
            Json::Null => Ok(None),
            value => value.as_u64().map(Some).ok_or_else(|| self.error(format!("field `{field}` is not an integer"))),
        }
    }

    fn node(&self, value: &Json) -> Result<NodeId, TraceError> {
        let name = value.as_str().ok_or_else(|| self.error("a node is a string".into()))?;
        parse_node(name).ok_or_else(|| self.error(format!("unknown node `{name}`")))
    }

    fn content(&self, field: &str) -> Result<Content, TraceError> {
        let text = self.get(field)?.as_str().ok_or_else(|| self.error(format!("field `{field}` is not a string")))?;
        let bytes = unhex(text).ok_or_else(|| self.error(format!("field `{field}` is not hex")))?;
        Ok(Content::new(&bytes))
    }

    fn nested(&self, json: &'a Json) -> Fields<'a> {
        Fields { json, line: self.line }
    }
}

/// Parses an action written by [`action_to_json`]; `line` names it in errors.
pub fn action_from_json(json: &Json, line: usize) -> Result<Action, TraceError> {
    let fields = Fields { json, line };
    let object = json.as_object().ok_or_else(|| fields.error("an action is an object".into()))?;
    let (kind, body) = object.iter().next().ok_or_else(|| fields.error("an empty action".into()))?;
    let body_fields = fields.nested(body);
    let message =
        |body: &Json| body.as_u64().map(MessageId).ok_or_else(|| fields.error(format!("`{kind}` names a message id")));
    Ok(match kind.as_str() {
        "deliver" => {
            Action::Deliver { message: MessageId(body_fields.u64("message")?), at: Time(body_fields.u64("at")?) }
        }
        "drop" => Action::Drop(message(body)?),
        "duplicate" => Action::Duplicate(message(body)?),
        "fire" => Action::FireTimer { node: fields.node(body_fields.get("node")?)?, at: Time(body_fields.u64("at")?) },
        "crash" => Action::Crash(fields.node(body)?),
        "restart" => Action::Restart(fields.node(body)?),
        "isolate" => Action::Isolate(fields.node(body)?),
        "heal" => Action::Heal,
        "submit" => Action::Submit {
            request: RequestId(body_fields.u64("request")?),
            worker: body_fields.u32("worker")?,
            operation: operation_from_json(&body_fields.nested(body_fields.get("operation")?))?,
            at: Time(body_fields.u64("at")?),
        },
        "read" => Action::Read {
            request: RequestId(body_fields.u64("request")?),
            host: body_fields.u32("host")?,
            secret: SecretId(body_fields.u32("secret")?),
            at: Time(body_fields.u64("at")?),
        },
        "rollback" => Action::Rollback { at: Time(body_fields.u64("at")?) },
        "corrupt" => Action::Corrupt { host: body_fields.u32("host")?, secret: SecretId(body_fields.u32("secret")?) },
        "routed_read" => Action::RoutedRead {
            request: RequestId(body_fields.u64("request")?),
            host: body_fields.u32("host")?,
            caller: TenantId(body_fields.u32("caller")?),
            secret: SecretId(body_fields.u32("secret")?),
            at: Time(body_fields.u64("at")?),
        },
        "add_shard" => Action::AddShard { at: Time(body_fields.u64("at")?) },
        "store_outage" => Action::StoreOutage {
            shard: body_fields.u32("shard")?,
            down: body_fields
                .get("down")?
                .as_bool()
                .ok_or_else(|| body_fields.error("field `down` is not a boolean".into()))?,
        },
        other => return Err(fields.error(format!("unknown action `{other}`"))),
    })
}

fn operation_from_json(fields: &Fields<'_>) -> Result<Operation, TraceError> {
    let object = fields.json.as_object().ok_or_else(|| fields.error("an operation is an object".into()))?;
    let (kind, body) = object.iter().next().ok_or_else(|| fields.error("an empty operation".into()))?;
    let body = fields.nested(body);
    let secret = || Ok::<_, TraceError>(SecretId(body.u32("secret")?));
    let expected = || Ok::<_, TraceError>(body.optional_u64("expected")?.map(Version));
    Ok(match kind.as_str() {
        "create_vault" => {
            Operation::CreateVault { vault: VaultId(body.u32("vault")?), tenant: TenantId(body.u32("tenant")?) }
        }
        "delete_vault" => Operation::DeleteVault { vault: VaultId(body.u32("vault")?) },
        "create_secret" => Operation::CreateSecret {
            secret: secret()?,
            vault: VaultId(body.u32("vault")?),
            content: body.content("content")?,
            token: IdempotencyToken(body.u64("token")?),
        },
        "update_secret" => {
            Operation::UpdateSecret { secret: secret()?, content: body.content("content")?, expected: expected()? }
        }
        "schedule_deletion" => Operation::ScheduleDeletion { secret: secret()? },
        "delete_secret" => Operation::DeleteSecret { secret: secret()?, expected: expected()? },
        "read_secret" => Operation::ReadSecret { secret: secret()? },
        other => return Err(fields.error(format!("unknown operation `{other}`"))),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok()).collect()
}

/// What a trace was recorded from.
#[derive(Clone, Debug)]
pub enum TraceSource {
    /// A simulator run.
    Scenario {
        /// The scenario, as embedded.
        scenario: Box<Scenario>,
        /// The seed.
        seed: u64,
        /// Whether the run was a swarm run.
        swarm: bool,
    },
    /// A model-checker path.
    Model {
        /// The model configuration, as embedded.
        config: Box<ModelConfig>,
    },
}

/// The header of a trace.
#[derive(Clone, Debug)]
pub struct TraceHeader {
    /// What the trace was recorded from.
    pub source: TraceSource,
    /// Bug-zoo variants the run used.
    pub bugs: Bugs,
}

impl TraceHeader {
    /// The scenario's or model configuration's name.
    pub fn name(&self) -> &str {
        match &self.source {
            TraceSource::Scenario { scenario, .. } => &scenario.name,
            TraceSource::Model { config } => &config.name,
        }
    }

    /// The seed (0 for a model-checker path).
    pub fn seed(&self) -> u64 {
        match &self.source {
            TraceSource::Scenario { seed, .. } => *seed,
            TraceSource::Model { .. } => 0,
        }
    }

    /// The world the trace starts from, and the refinement check that follows it.
    pub fn start(&self) -> (World, RefinementTracker) {
        match &self.source {
            TraceSource::Scenario { scenario, seed, swarm } => {
                let knobs = Knobs::for_run(scenario, *seed, *swarm);
                let world = build_world(scenario, &knobs, &self.bugs);
                let tracker = RefinementTracker::new(refinement_for(scenario, &world), &world);
                (world, tracker)
            }
            TraceSource::Model { config } => {
                let model = CheckModel::new((**config).clone(), self.bugs.clone());
                let world = model.initial_state().world;
                let tracker = RefinementTracker::full(model.refinement(), &world);
                (world, tracker)
            }
        }
    }

    /// The end-of-run violations of `world`, as the recording driver computed them.
    pub fn end_of_run(&self, world: &World, quiet: bool, tracker: &RefinementTracker) -> Vec<model::Violation> {
        match &self.source {
            TraceSource::Scenario { scenario, .. } => end_of_run_violations(world, scenario, quiet, tracker),
            TraceSource::Model { .. } => {
                let mut violations = world.check_quiescent();
                violations.extend(tracker.end_check(world));
                violations
            }
        }
    }
}

/// Parses a trace's header line.
pub fn parse_header(first_line: &str) -> Result<TraceHeader, TraceError> {
    let json: Json =
        serde_json::from_str(first_line).map_err(|error| TraceError { line: 1, message: error.to_string() })?;
    let fields = Fields { json: &json, line: 1 };
    let format = fields.u64("vaultsim_trace")?;
    if format != FORMAT_VERSION {
        return Err(fields.error(format!("trace format {format}, this build reads {FORMAT_VERSION}")));
    }
    let names = fields.get("bugs")?.as_array().ok_or_else(|| fields.error("field `bugs` is not a list".into()))?;
    let names: Vec<&str> = names.iter().map(|name| name.as_str().unwrap_or("?")).collect();
    let bugs = Bugs::parse(names.iter().copied()).map_err(|name| {
        fields.error(format!(
            "the trace runs bug-zoo entry `{name}`, which this build lacks (build with --features bugzoo)"
        ))
    })?;
    let source = if let Some(check) = json.get("check") {
        let config: ModelConfig =
            serde_json::from_value(check.clone()).map_err(|error| fields.error(format!("field `check`: {error}")))?;
        TraceSource::Model { config: Box::new(config) }
    } else {
        let scenario: Scenario = serde_json::from_value(fields.get("config")?.clone())
            .map_err(|error| fields.error(format!("field `config`: {error}")))?;
        let swarm =
            fields.get("swarm")?.as_bool().ok_or_else(|| fields.error("field `swarm` is not a boolean".into()))?;
        TraceSource::Scenario { scenario: Box::new(scenario), seed: fields.u64("seed")?, swarm }
    };
    Ok(TraceHeader { source, bugs })
}

/// What a successful replay saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplaySummary {
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Step lines re-applied.
    pub steps: u64,
    /// Violations recorded in (and reproduced from) the trace.
    pub violations: Vec<String>,
}

/// Re-runs a trace and checks that every line matches, byte for byte.
pub fn replay(text: &str) -> Result<ReplaySummary, TraceError> {
    let mut lines = text.lines().enumerate().map(|(index, line)| (index + 1, line));
    let (_, first) = lines.next().ok_or(TraceError { line: 1, message: "empty trace".into() })?;
    let header = parse_header(first)?;
    let (mut world, mut refinement) = header.start();
    let mut summary =
        ReplaySummary { scenario: header.name().to_string(), seed: header.seed(), steps: 0, violations: Vec::new() };
    for (number, line) in lines {
        let json: Json =
            serde_json::from_str(line).map_err(|error| TraceError { line: number, message: error.to_string() })?;
        let rendered = if let Some(end) = json.get("final") {
            let quiet = end
                .get("quiet")
                .and_then(Json::as_bool)
                .ok_or(TraceError { line: number, message: "final line without `quiet`".into() })?;
            let violations = header.end_of_run(&world, quiet, &refinement);
            summary.violations.extend(violations.iter().map(ToString::to_string));
            final_line(&world, quiet, &violations)
        } else {
            let action = action_from_json(Fields { json: &json, line: number }.get("action")?, number)?;
            let mut report = world.step(&action);
            refinement.on_step(&world, &action, &mut report);
            summary.steps += 1;
            summary.violations.extend(report.violations.iter().map(ToString::to_string));
            step_line(&world, &action, &report)
        };
        if rendered != line {
            return Err(TraceError {
                line: number,
                message: format!("replay diverged:\n  recorded: {line}\n  replayed: {rendered}"),
            });
        }
    }
    Ok(summary)
}

/// Labels of the background chatter a reviewer usually wants out of the way:
/// polls that found nothing and the reports around them.
const IDLE_LABELS: [&str; 5] = ["poll", "read outbox", "applied", "0 events", "0 outbox rows"];

/// A Mermaid sequence diagram of a trace's steps `from..=to` (by step number);
/// with `hide_idle`, empty polls and their reports are left out.
pub fn render_mermaid(text: &str, from: u64, to: u64, hide_idle: bool) -> Result<String, TraceError> {
    let mut lines = text.lines().enumerate().map(|(index, line)| (index + 1, line));
    let (_, first) = lines.next().ok_or(TraceError { line: 1, message: "empty trace".into() })?;
    let header = parse_header(first)?;
    let mut messages: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    let mut body = Vec::new();
    let mut participants: Vec<String> = Vec::new();
    for (number, line) in lines {
        let json: Json =
            serde_json::from_str(line).map_err(|error| TraceError { line: number, message: error.to_string() })?;
        if json.get("final").is_some() {
            continue;
        }
        let step = json.get("step").and_then(Json::as_u64).unwrap_or(0);
        for sent in json.get("sent").and_then(Json::as_array).into_iter().flatten() {
            let field = |index: usize| sent.get(index).and_then(Json::as_str).unwrap_or("?").to_string();
            messages.insert(sent.get(0).and_then(Json::as_u64).unwrap_or(0), (field(1), field(2), field(3)));
        }
        if !(from..=to).contains(&step) {
            continue;
        }
        let action = action_from_json(Fields { json: &json, line: number }.get("action")?, number)?;
        let lost: Vec<u64> =
            json.get("lost").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_u64).collect();
        let idle = match &action {
            Action::Deliver { message, .. } | Action::Drop(message) => {
                messages.get(&message.0).is_some_and(|(_, _, label)| IDLE_LABELS.contains(&label.as_str()))
            }
            _ => false,
        };
        if !(hide_idle && idle) {
            render_action(&action, &lost, &messages, &mut participants, &mut body);
        }
        for violation in json.get("violations").and_then(Json::as_array).into_iter().flatten() {
            let anchor = participants.first().cloned().unwrap_or_else(|| "client".into());
            body.push(format!(
                "    Note over {}: step {step} {}",
                mermaid_id(&anchor),
                violation.as_str().unwrap_or("?")
            ));
        }
    }
    let mut out = vec![
        "sequenceDiagram".to_string(),
        format!(
            "    %% vaultsim trace: {} seed {} steps {from}..{}",
            header.name(),
            header.seed(),
            if to == u64::MAX { "end".to_string() } else { to.to_string() }
        ),
    ];
    out.extend(participants.iter().map(|name| format!("    participant {} as {name}", mermaid_id(name))));
    out.extend(body);
    Ok(out.join("\n") + "\n")
}

fn render_action(
    action: &Action,
    lost: &[u64],
    messages: &BTreeMap<u64, (String, String, String)>,
    participants: &mut Vec<String>,
    body: &mut Vec<String>,
) {
    let touch = |name: &str, participants: &mut Vec<String>| {
        if !participants.iter().any(|known| known == name) {
            participants.push(name.to_string());
        }
        mermaid_id(name)
    };
    match action {
        Action::Deliver { message, .. } | Action::Drop(message) => {
            let Some((from, to, label)) = messages.get(&message.0) else { return };
            let (from, to) = (touch(from, participants), touch(to, participants));
            let label = label.replace(';', ",");
            let dropped = matches!(action, Action::Drop(_)) || lost.contains(&message.0);
            let arrow = if dropped { "-x" } else { "->>" };
            let suffix = if dropped { " (lost)" } else { "" };
            body.push(format!("    {from}{arrow}{to}: {label}{suffix}"));
        }
        Action::Duplicate(message) => {
            let Some((from, to, _)) = messages.get(&message.0) else { return };
            let (from, to) = (touch(from, participants), touch(to, participants));
            body.push(format!("    Note over {from},{to}: message {} duplicated", message.0));
        }
        Action::Crash(node) | Action::Restart(node) | Action::Isolate(node) => {
            let name = node_name(*node);
            let verb = match action {
                Action::Crash(_) => "crash",
                Action::Restart(_) => "restart",
                _ => "isolated",
            };
            body.push(format!("    Note over {}: {verb}", touch(&name, participants)));
        }
        Action::Heal => {
            if let Some(first) = participants.first().cloned() {
                body.push(format!("    Note over {}: heal", mermaid_id(&first)));
            }
        }
        Action::Rollback { .. } => body.push(format!("    Note over {}: rollback", touch("operator", participants))),
        Action::Corrupt { host, secret } => {
            let name = node_name(NodeId::Host(*host));
            body.push(format!("    Note over {}: bit flip in {secret}", touch(&name, participants)));
        }
        Action::AddShard { .. } => {
            body.push(format!("    Note over {}: add a shard", touch("shard-adder", participants)));
        }
        Action::StoreOutage { shard, down } => {
            let name = node_name(NodeId::Store(*shard));
            let what = if *down { "outage" } else { "back" };
            body.push(format!("    Note over {}: {what}", touch(&name, participants)));
        }
        Action::FireTimer { .. } | Action::Submit { .. } | Action::Read { .. } | Action::RoutedRead { .. } => {}
    }
}

/// A Mermaid-safe participant id for a node name (`worker:1` → `worker_1`,
/// `publisher:1.2` → `publisher_1_2`).
fn mermaid_id(name: &str) -> String {
    name.replace([':', '.'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip() {
        let nodes = [
            NodeId::Store(0),
            NodeId::Client,
            NodeId::Activator(0),
            NodeId::Worker(3),
            NodeId::Host(0),
            NodeId::Publisher(0, 7),
            NodeId::Publisher(2, 7),
            NodeId::Store(1),
            NodeId::Activator(3),
            NodeId::Router(1),
        ];
        for node in nodes {
            assert_eq!(parse_node(&node_name(node)), Some(node));
        }
        assert_eq!(parse_node("host:x"), None);
        assert_eq!(parse_node("robot:1"), None);
    }

    #[test]
    fn actions_round_trip_through_json() {
        let actions = vec![
            Action::Deliver { message: MessageId(4), at: Time(9) },
            Action::Drop(MessageId(1)),
            Action::Duplicate(MessageId(2)),
            Action::FireTimer { node: NodeId::Host(1), at: Time(5) },
            Action::Crash(NodeId::Publisher(0, 2)),
            Action::Restart(NodeId::Activator(0)),
            Action::Isolate(NodeId::Worker(0)),
            Action::Heal,
            Action::Read { request: RequestId(8), host: 2, secret: SecretId(3), at: Time(11) },
            Action::Rollback { at: Time(12) },
            Action::Corrupt { host: 1, secret: SecretId(4) },
            Action::RoutedRead {
                request: RequestId(14),
                host: 1,
                caller: TenantId(2),
                secret: SecretId(5),
                at: Time(15),
            },
            Action::StoreOutage { shard: 2, down: true },
            Action::AddShard { at: Time(16) },
            Action::Crash(NodeId::ShardAdder),
            Action::Crash(NodeId::Backfiller),
            Action::FireTimer { node: NodeId::Reader(2), at: Time(13) },
            Action::Submit {
                request: RequestId(9),
                worker: 1,
                at: Time(12),
                operation: Operation::CreateSecret {
                    secret: SecretId(1),
                    vault: VaultId(2),
                    content: Content::new(b"\x00\xffab"),
                    token: IdempotencyToken(9),
                },
            },
            Action::Submit {
                request: RequestId(10),
                worker: 0,
                at: Time(13),
                operation: Operation::UpdateSecret {
                    secret: SecretId(1),
                    content: Content::new(b"x"),
                    expected: Some(Version(2)),
                },
            },
            Action::Submit {
                request: RequestId(11),
                worker: 0,
                at: Time(14),
                operation: Operation::DeleteSecret { secret: SecretId(1), expected: None },
            },
        ];
        for action in actions {
            let json = action_to_json(&action);
            assert_eq!(action_from_json(&json, 1), Ok(action));
        }
    }

    #[test]
    fn a_malformed_action_names_its_line() {
        let error = action_from_json(&json!({ "fire": { "node": "toaster", "at": 1 } }), 17).unwrap_err();
        assert_eq!(error.line, 17);
        assert!(error.message.contains("toaster"), "{error}");
        let error = action_from_json(&json!({ "deliver": { "message": 1 } }), 3).unwrap_err();
        assert!(error.message.contains("`at`"), "{error}");
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(unhex(&hex(b"\x00\x10\xfe")), Some(b"\x00\x10\xfe".to_vec()));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
