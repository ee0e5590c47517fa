use super::*;
use vault::migration::Phase;
use vault::placement::PlacementPolicy;

fn load(name: &str) -> ModelConfig {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/models").join(format!("{name}.toml"));
    ModelConfig::load(&path).expect("a shipped model configuration parses")
}

#[test]
fn sync_one_host_converges_on_every_path() {
    let checker = CheckModel::new(load("sync-one-host"), Bugs::none()).checker().spawn_dfs().join();
    for property in PropertyId::ALL {
        assert!(checker.discovery(property.as_str()).is_none(), "{property} violated");
    }
    let converged = checker.discovery("converged").expect("some path converges");
    assert!(converged.last_state().script_done());
    // Models pin their numbers: a change to the state space shows in review.
    assert_eq!(checker.unique_state_count(), 7_920);
}

#[test]
fn a_script_step_waits_for_the_previous_answer_of_its_client() {
    let mut config = load("sync-one-host");
    config.script.push(ScriptStep {
        client: 0,
        op: "update".into(),
        secret: 0,
        worker: 0,
        host: 0,
        caller: None,
        vault: None,
    });
    config.script.push(ScriptStep {
        client: 1,
        op: "host-read".into(),
        secret: 0,
        worker: 0,
        host: 0,
        caller: None,
        vault: None,
    });
    let model = CheckModel::new(config, Bugs::none());
    let state = model.initial_state();
    // Client 0's create and client 1's read are ready; client 0's update is not.
    assert_eq!(model.ready_steps(&state), vec![0, 2]);
}

#[test]
fn budgets_gate_faults() {
    let model = CheckModel::new(load("sync-one-host"), Bugs::none());
    let state = model.initial_state();
    let mut actions = Vec::new();
    model.actions(&state, &mut actions);
    assert!(!actions.iter().any(|action| matches!(action, Action::Crash(_) | Action::Drop(_) | Action::Isolate(_))));
    let mut config = load("sync-one-host");
    config.budgets.crashes = 1;
    let model = CheckModel::new(config, Bugs::none());
    let mut actions = Vec::new();
    model.actions(&model.initial_state(), &mut actions);
    assert!(actions.contains(&Action::Crash(NodeId::Host(0))));
    assert!(!actions.contains(&Action::Crash(NodeId::Worker(0))), "only hosts are crashable by default");
}

#[test]
fn a_broken_model_configuration_names_its_field() {
    let text = "name = \"x\"\nmode = \"sync\"\nworkers = 1\nhosts = 1\ntenants = 1\nhorizon_ms = 5\nscript = [{ client = 0, op = \"explode\", secret = 0 }]\n";
    let error = ModelConfig::parse(std::path::Path::new("specs/models/x.toml"), text).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("script"), "{error}");
    assert_eq!(error.line, Some(7), "{error}");
    assert!(error.message.contains("explode"), "{error}");
}

#[test]
fn a_checker_path_becomes_a_trace_that_replays_and_renders() {
    let report = check(&load("sync-one-host"), &Bugs::none(), &CheckOptions { bfs: true, threads: 1, max_depth: None });
    assert!(report.passed, "{report:?}");
    let converged = report.properties.iter().find(|outcome| outcome.name == "converged").expect("listed");
    assert_eq!(converged.status, "reached");
    let text = converged.trace.as_ref().expect("an example path").join("\n") + "\n";
    assert!(text.lines().last().is_some_and(|line| line.starts_with("{\"final\"")), "ends with the quiet check");
    let summary = crate::trace::replay(&text).expect("a checker trace replays line for line");
    assert_eq!(Some(summary.steps as usize), converged.path_length);
    assert!(summary.violations.is_empty(), "{:?}", summary.violations);
    let diagram = crate::trace::render_mermaid(&text, 0, u64::MAX, true).expect("renders");
    assert!(diagram.contains("client->>worker_0: req0 create s0"), "{diagram}");
    let always: Vec<&str> = report
        .properties
        .iter()
        .filter(|outcome| outcome.expectation == "always")
        .map(|outcome| outcome.status)
        .collect();
    assert!(always.iter().all(|status| *status == "holds"), "{always:?}");
    assert_eq!(always.len(), 10, "REP-1..9 and REF-1");
}

#[test]
fn a_full_check_fails_when_the_pinned_state_count_changes() {
    let options = CheckOptions { bfs: false, threads: 1, max_depth: None };
    let shipped = load("sync-one-host");
    let report = check(&shipped, &Bugs::none(), &options);
    assert_eq!((report.passed, report.pinned_unique_states), (true, Some(7_920)));
    let mut stale = shipped.clone();
    stale.pinned_unique_states = Some(7_919);
    assert!(!check(&stale, &Bugs::none(), &options).passed, "a stale pin must fail the check");
    // A depth-bounded search covers part of the space: the pin does not apply.
    let bounded = check(&stale, &Bugs::none(), &CheckOptions { max_depth: Some(5), ..options });
    assert_eq!(bounded.pinned_unique_states, None);
}

#[test]
fn every_shipped_configuration_pins_its_state_count() {
    // Bug-zoo configurations are pinned by the bug-zoo tests, with the bug on.
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/models");
    let mut unpinned = Vec::new();
    for entry in std::fs::read_dir(&folder).expect("specs/models exists") {
        let path = entry.expect("readable").path();
        let name = path.file_stem().expect("a file name").to_string_lossy().to_string();
        if name.starts_with("zoo-") || path.extension().is_none_or(|extension| extension != "toml") {
            continue;
        }
        if ModelConfig::load(&path).expect("parses").pinned_unique_states.is_none() {
            unpinned.push(name);
        }
    }
    assert!(unpinned.is_empty(), "configurations without `pinned_unique_states`: {unpinned:?}");
}

#[test]
fn rare_paths_are_expected_where_the_configuration_makes_them_possible() {
    // The default suite fails a full check whose expected paths are unreached,
    // so these lists are what CI proves the checker reaches.
    assert_eq!(expected_sometimes(&load("sync-one-host")), vec!["converged"]);
    assert_eq!(expected_sometimes(&load("sync-duplicate")), vec!["converged", "duplicate absorbed"]);
    assert_eq!(expected_sometimes(&load("sync-host-crash")), vec!["converged", "crash between apply and report"]);
    assert_eq!(expected_sometimes(&load("sync-contention")), vec!["converged", "conflict", "conflict storm"]);
    assert_eq!(expected_sometimes(&load("async-one-host")), vec!["converged"]);
    assert_eq!(
        expected_sometimes(&load("migration-backfill-race")),
        vec!["converged", "backfill raced an update", "backfill raced a delete", "backfill skipped a live write"]
    );
    assert_eq!(expected_sometimes(&load("migration-backfill-crash")), vec!["converged", "job crashed mid-walk"]);
    assert_eq!(
        expected_sometimes(&load("migration-backfill-rollback")),
        vec!["converged", "backfill raced an update", "backfill skipped a live write", "rollback stored"]
    );
    assert_eq!(
        expected_sometimes(&load("migration-verify-race")),
        vec!["converged", "verifier saw lag", "digest behind a live write", "verifier repaired"]
    );
    assert_eq!(
        expected_sometimes(&load("migration-switchover-read")),
        vec!["converged", "read fell back: missing", "read fell back: not active", "local read"]
    );
}

#[test]
fn a_migration_configuration_migrates_with_fenced_workers_and_the_migration_spec() {
    let config = load("migration-backfill-race");
    let world = config.world_config(&Bugs::none());
    assert!(world.worker.phase_fenced, "workers read the phase in every commit");
    let migration = world.migration.expect("the world migrates");
    assert_eq!(migration.seeded_secrets, 2);
    assert_eq!(migration.backfill_page_keys, 2);
    assert_eq!(migration.schedule, vec![(vault::types::Time::ZERO, Phase::Backfill)]);
    assert_eq!(config.secrets(), BTreeSet::from([0, 1]), "the seeded secrets are the script's");
    let model = CheckModel::new(config, Bugs::none());
    assert!(model.refinement().migration());
    // The warm-up ran the operator's climb alone: exploring starts with the
    // backfill committed and nothing in flight, before the backfiller ran.
    let state = model.initial_state();
    assert_eq!(state.world.stored_phase().phase, Phase::Backfill);
    assert!(state.world.in_flight().is_empty());
    assert!(state.world.backfiller().is_some_and(|backfill| !backfill.is_done()));
    assert!(state.violated.is_empty(), "{:?}", state.violated);
    let names: Vec<&str> = model.properties().iter().map(|property| property.name).collect();
    for property in PropertyId::ALL.iter().filter(|property| property.as_str().starts_with("MIG")) {
        assert!(names.contains(&property.as_str()), "{property} is checked");
    }
    let plain: Vec<&str> = CheckModel::new(load("sync-one-host"), Bugs::none())
        .properties()
        .iter()
        .map(|property| property.name)
        .collect();
    assert!(!plain.contains(&"MIG-1"), "no MIG property without a migration");
}

#[test]
fn migration_faults_are_budgeted_and_cover_the_new_nodes() {
    let mut config = load("migration-verify-race");
    config.budgets = Budgets { crashes: 1, rollbacks: 1, bit_flips: 1, ..Budgets::default() };
    config.crashable = vec!["operator".into(), "verifier".into(), "host".into()];
    let model = CheckModel::new(config, Bugs::none());
    // Until the host's first poll it holds nothing that could flip.
    let mut state = model.initial_state();
    let mut actions = Vec::new();
    model.actions(&state, &mut actions);
    assert!(!actions.iter().any(|action| matches!(action, Action::Corrupt { .. })));
    let poll = Action::FireTimer { node: NodeId::Host(0), at: state.world.timers()[&NodeId::Host(0)] };
    state = model.next_state(&state, poll).expect("a step");
    while let Some((id, message)) = state.world.in_flight().iter().next() {
        assert!(matches!(message.to, NodeId::Store(0) | NodeId::Host(_) | NodeId::Activator(0)), "{message:?}");
        let deliver = Action::Deliver { message: *id, at: state.world.now() };
        state = model.next_state(&state, deliver).expect("a step");
    }
    assert!(state.world.hosts().next().is_some_and(|(_, _, durable)| durable.record(SecretId(0)).is_some()));
    let mut actions = Vec::new();
    model.actions(&state, &mut actions);
    let now = state.world.now();
    for expected in [
        Action::Crash(NodeId::Operator),
        Action::Crash(NodeId::Verifier),
        Action::Crash(NodeId::Host(0)),
        Action::Rollback { at: now },
        Action::Corrupt { host: 0, secret: SecretId(0) },
    ] {
        assert!(actions.contains(&expected), "{expected:?} among {actions:?}");
    }
    assert!(!actions.contains(&Action::Crash(NodeId::Backfiller)), "not crashable here, and not running");
    assert!(!actions.iter().any(|action| matches!(action, Action::Crash(NodeId::Reader(_)))), "dies with its host");
    // Each budget is spent once.
    let rolled = model.next_state(&state, Action::Rollback { at: now }).expect("a step");
    let mut actions = Vec::new();
    model.actions(&rolled, &mut actions);
    assert!(!actions.iter().any(|action| matches!(action, Action::Rollback { .. })));
    let flipped = model.next_state(&state, Action::Corrupt { host: 0, secret: SecretId(0) }).expect("a step");
    let mut actions = Vec::new();
    model.actions(&flipped, &mut actions);
    assert!(!actions.iter().any(|action| matches!(action, Action::Corrupt { .. })));
    // A crashed host's entries cannot flip.
    let crashed = model.next_state(&state, Action::Crash(NodeId::Host(0))).expect("a step");
    let mut actions = Vec::new();
    model.actions(&crashed, &mut actions);
    assert!(!actions.iter().any(|action| matches!(action, Action::Corrupt { .. })));
}

#[test]
fn broken_migration_sections_name_their_field() {
    let base = "name = \"x\"\nmode = \"sync\"\nworkers = 1\nhosts = 1\ntenants = 1\nhorizon_ms = 5\nscript = []\n";
    let parse =
        |extra: &str| ModelConfig::parse(std::path::Path::new("specs/models/x.toml"), &format!("{base}{extra}"));
    let error = parse("[budgets]\nrollbacks = 1\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("budgets"), "{error}");
    let error = parse("crashable = [\"verifier\"]\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("crashable"), "{error}");
    let migration = "[migration]\nseeded_secrets = 1\nschedule = [{ at_ms = 0, phase = \"backfill\" }]\n";
    let error = parse(&format!("{migration}start_phase = \"verify\"\n")).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("migration.start_phase"), "{error}");
    let error = parse(&format!("{migration}backfill_page_keys = 0\n")).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("migration.backfill_page_keys"), "{error}");
    assert!(parse(&format!("{migration}start_phase = \"backfill\"\n")).is_ok());
}

#[test]
fn the_smallest_migration_configuration_holds_at_its_pinned_count() {
    let config = load("migration-verify-race");
    let report = check(&config, &Bugs::none(), &CheckOptions { bfs: false, threads: 2, max_depth: None });
    assert!(report.passed, "{report:?}");
    assert_eq!(report.unique_states, 41_360);
    // Its example paths replay from the same warmed-up start, bit flip included.
    for name in ["converged", "verifier repaired"] {
        let outcome = report.properties.iter().find(|outcome| outcome.name == name).expect("listed");
        let text = outcome.trace.as_ref().expect("an example path").join("\n") + "\n";
        let summary = crate::trace::replay(&text).expect("a migration trace replays line for line");
        assert_eq!(Some(summary.steps as usize), outcome.path_length, "{name}");
        assert!(summary.violations.is_empty(), "{name}: {:?}", summary.violations);
    }
}

#[test]
fn a_sharding_section_maps_onto_the_world() {
    let config = load("sharded-route-race");
    let sharding = config.world_config(&Bugs::none()).sharding.expect("the world shards");
    let expected = ShardingConfig {
        shards: 2,
        policy: PlacementPolicy::LeastLoaded,
        route_timeout_ns: 50 * NS_PER_MS,
        lookups_max: 1,
        outages_only: false,
        add_shard: false,
    };
    assert_eq!(sharding, expected);
    assert_eq!(config.secrets(), BTreeSet::from([1]), "the routed read names the created secret");
    // The warm-up settled the routes of the start on the base-cell host.
    let model = CheckModel::new(config, Bugs::none());
    let state = model.initial_state();
    assert!(state.world.in_flight().is_empty());
    assert!(state.violated.is_empty(), "{:?}", state.violated);
    let (_, up, durable) = state.world.hosts().next().expect("a base-cell host");
    assert!(up);
    assert_eq!(durable.routes().shard_of(VaultId(1)), Some(ShardId(1)), "vault 1 starts on shard 1");
    assert_eq!(durable.routes().shard_state(ShardId(1)), Some(ShardState::Ready));
    assert_eq!(durable.routes().vault_of(SecretId(1)), None, "the script has not created it yet");
    let names: Vec<&str> = model.properties().iter().map(|property| property.name).collect();
    for name in ["RTE-1", "RTE-2", "RTE-3", "RTE-4", "route looked up", "route from the table"] {
        assert!(names.contains(&name), "{name} is checked");
    }
    assert!(!names.contains(&"RTE-5"), "not judged where a lookup may time out without a fault");
    assert!(!names.contains(&"REF-1"), "a sharded world is not refined");
    let plain = CheckModel::new(load("sync-one-host"), Bugs::none());
    let plain: Vec<&str> = plain.properties().iter().map(|property| property.name).collect();
    assert!(plain.contains(&"REF-1") && !plain.contains(&"RTE-1"));
}

#[test]
fn a_shard_registered_at_the_start_is_not_ready_and_no_base_host_has_its_row() {
    let config = load("sharded-placement-race");
    assert!(config.adds_shard());
    let sharding = config.world_config(&Bugs::none()).sharding.expect("the world shards");
    assert_eq!((sharding.shards, sharding.add_shard), (1, true));
    let state = CheckModel::new(config, Bugs::none()).initial_state();
    assert_eq!(state.world.shard_count(), 2, "the new shard's cell is built");
    let row = state.world.store().read(&Key::Shard(ShardId(1))).value;
    assert!(matches!(row, Some(Value::Shard(record)) if record.state == ShardState::Provisioning), "{row:?}");
    let (_, _, durable) = state.world.hosts().next().expect("a base-cell host");
    assert_eq!(durable.routes().shard_state(ShardId(1)), None, "the row has not replicated yet");
    assert!(state.world.in_flight().is_empty());
    assert!(state.violated.is_empty(), "{:?}", state.violated);
}

#[test]
fn sharded_script_steps_issue_routed_reads_vault_creations_and_the_shard_addition() {
    let mut config = load("sharded-route-race");
    config.script = vec![
        ScriptStep { client: 0, op: "routed-read".into(), secret: 1, worker: 0, host: 0, caller: Some(0), vault: None },
        ScriptStep { client: 1, op: "routed-read".into(), secret: 1, worker: 0, host: 0, caller: None, vault: None },
        ScriptStep {
            client: 2,
            op: "create-vault".into(),
            secret: 0,
            worker: 0,
            host: 0,
            caller: None,
            vault: Some(3),
        },
        ScriptStep { client: 3, op: "add-shard".into(), secret: 0, worker: 0, host: 0, caller: None, vault: None },
    ];
    let model = CheckModel::new(config, Bugs::none());
    let state = model.initial_state();
    let at = state.world.now();
    let routed = |request: u64, caller: u32| Action::RoutedRead {
        request: RequestId(request),
        host: 0,
        caller: TenantId(caller),
        secret: SecretId(1),
        at,
    };
    assert_eq!(model.issue(&state, 0), routed(0, 0));
    assert_eq!(model.issue(&state, 1), routed(1, 1), "by default the caller is the secret's own tenancy");
    let vault = Operation::CreateVault { vault: VaultId(3), tenant: TenantId(1) };
    assert_eq!(model.issue(&state, 2), Action::Submit { request: RequestId(2), worker: 0, operation: vault, at });
    assert_eq!(model.issue(&state, 3), Action::AddShard { at });
    assert_eq!(model.config.secrets(), BTreeSet::from([1]), "a vault creation names no secret");
    // The operator's command is done once issued; a read, once answered.
    let added = model.next_state(&state, Action::AddShard { at }).expect("a step");
    assert_eq!(added.issued, vec![false, false, false, true]);
    assert!(added.answered(3));
    let read = model.next_state(&added, routed(0, 0)).expect("a step");
    assert!(read.issued[0] && !read.answered(0));
    assert!(read.world.is_up(NodeId::ShardAdder), "the operator started");
}

#[test]
fn broken_sharding_sections_and_steps_name_their_field() {
    let base = "name = \"x\"\nmode = \"sync\"\nworkers = 1\nhosts = 1\ntenants = 2\nhorizon_ms = 5\n";
    let parse = |text: &str| ModelConfig::parse(std::path::Path::new("specs/models/x.toml"), &format!("{base}{text}"));
    let section = "[sharding]\nshards = 2\nroute_timeout_ms = 50\n";
    let read = "script = [{ client = 0, op = \"routed-read\", secret = 1 }]\n";
    assert!(parse(&format!("{read}{section}")).is_ok());
    let cases = [
        ("script = []\n[sharding]\nshards = 0\nroute_timeout_ms = 50\n", "sharding.shards", 9),
        ("script = []\n[sharding]\nshards = 2\nroute_timeout_ms = 0\n", "sharding.route_timeout_ms", 10),
        (&format!("script = []\n{section}lookups_max = 0\n"), "sharding.lookups_max", 11),
        (&format!("script = []\n{section}shard_registered = true\n"), "sharding.shard_registered", 11),
        (&format!("script = []\n{section}colour = 1\n"), "colour", 11),
        (read, "script", 7),
        (
            "script = [{ client = 0, op = \"create-vault\" }]\n[sharding]\nshards = 1\nroute_timeout_ms = 5\n",
            "script",
            7,
        ),
    ];
    for (text, field, line) in cases {
        let error = parse(text).unwrap_err();
        assert_eq!((error.field.as_deref(), error.line), (Some(field), Some(line)), "{error}");
        assert!(error.to_string().contains("x.toml"), "{error}");
    }
    let messages = [
        ("script = [{ client = 0, op = \"create-vault\", vault = 1 }]\n", "exists from the start"),
        ("script = [{ client = 0, op = \"routed-read\", secret = 1, caller = 2 }]\n", "not one of the 2 tenancies"),
        ("script = [{ client = 0, op = \"host-read\", secret = 1, caller = 0 }]\n", "`caller` is for `routed-read`"),
        ("script = [{ client = 0, op = \"update\", secret = 1, vault = 3 }]\n", "`vault` is for `create-vault`"),
        ("script = [{ client = 0, op = \"add-shard\" }, { client = 1, op = \"add-shard\" }]\n", "at most one"),
    ];
    for (script, message) in messages {
        let error = parse(&format!("{script}{section}")).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("script"), "{error}");
        assert!(error.message.contains(message), "{message}: {error}");
    }
    let migrating = "[migration]\nseeded_secrets = 1\nschedule = [{ at_ms = 0, phase = \"backfill\" }]\n";
    let error = parse(&format!("script = []\n{section}{migrating}")).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("sharding"), "{error}");
}

#[test]
fn the_routing_races_are_expected_where_the_script_sets_them_up() {
    assert_eq!(
        expected_sometimes(&load("sharded-route-race")),
        vec!["converged", "route looked up", "route from the table"]
    );
    assert_eq!(
        expected_sometimes(&load("sharded-placement-race")),
        vec!["converged", "placed before the added shard was ready", "placed on the added shard"]
    );
    // A routed read of a secret the script does not create races nothing.
    let mut config = load("sharded-route-race");
    config.script.remove(0);
    assert_eq!(expected_sometimes(&config), vec!["converged"]);
}

#[test]
fn a_placement_on_the_added_shard_waits_for_it_and_its_path_replays() {
    let model = CheckModel::new(load("sharded-placement-race"), Bugs::none());
    let path = shortest_discovery(&model, "placed on the added shard", 1).expect("reached");
    let text = model.trace(&path).join("\n") + "\n";
    let summary = crate::trace::replay(&text).expect("a sharded checker trace replays line for line");
    assert_eq!(summary.steps as usize, path.len());
    assert!(summary.violations.is_empty(), "{:?}", summary.violations);
    // Along the path the shard turned ready before the vault was placed on it.
    let mut state = model.initial_state();
    let mut ready_at = None;
    for (index, action) in path.iter().enumerate() {
        state = model.next_state(&state, action.clone()).expect("a step");
        let row = state.world.store().read(&Key::Shard(ShardId(1))).value;
        if ready_at.is_none() && matches!(row, Some(Value::Shard(record)) if record.state == ShardState::Ready) {
            ready_at = Some(index);
        }
    }
    assert!(state.marks.placed_on_added_shard);
    assert!(ready_at.is_some_and(|ready| ready < path.len() - 1), "ready at {ready_at:?} of {}", path.len());
    let route = state.world.store().read(&Key::VaultRoute(VaultId(1))).value;
    assert_eq!(route, Some(Value::VaultRoute(ShardId(1))));
}
