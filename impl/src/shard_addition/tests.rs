use super::*;
use crate::placement::{PlacementPolicy, Placer};
use crate::router::{RoutedRequest, Router, RouterConfig, RouterOutput};
use crate::routes::{Resource, RouteTable};
use crate::store::Store;
use crate::types::{Seq, TenantId, VaultId};
use crate::worker::{Operation, RequestId};

const MS: u64 = 1_000_000;
const NEW: ShardId = ShardId(1);
const H1: HostId = HostId(1);
const H2: HostId = HostId(2);

fn config() -> ShardAdditionConfig {
    ShardAdditionConfig {
        shard: NEW,
        base_hosts: [H1, H2].into_iter().collect(),
        request_timeout_ns: 10 * MS,
        retry_delay_ns: 2 * MS,
    }
}

fn commit(store: &mut Store, writes: Vec<Write>) -> CommitSeq {
    match store.commit(&Transaction { reads: Vec::new(), writes }) {
        CommitOutcome::Committed { commit, .. } => commit,
        other => panic!("a setup commit: {other:?}"),
    }
}

fn row(store: &Store, shard: ShardId) -> Option<ShardRecord> {
    match store.read(&Key::Shard(shard)).value {
        None => None,
        Some(Value::Shard(record)) => Some(record),
        Some(other) => panic!("registry holds {other:?}"),
    }
}

/// A base store whose base shard is ready with `vaults` placed.
fn base_store(vaults: u64) -> Store {
    let mut store = Store::new();
    let base = ShardRecord { state: ShardState::Ready, vaults };
    commit(&mut store, vec![Write::Put(Key::Shard(ShardId(0)), Value::Shard(base))]);
    store
}

/// Runs the operator against `store`, answering every request at once, and
/// returns what it told the caller (store traffic and timers left out).
fn pump(operator: &mut ShardAddition, store: &mut Store, now: Time) -> Vec<ShardAdditionOutput> {
    let mut told = Vec::new();
    while let Some(output) = operator.poll_output() {
        match output {
            ShardAdditionOutput::Store { tag, request } => operator.on_store_reply(now, tag, store.on_request(request)),
            ShardAdditionOutput::Timer { .. } => {}
            other => told.push(other),
        }
    }
    told
}

/// Store requests the operator has asked for and not yet been answered.
fn requests(operator: &mut ShardAddition) -> Vec<(RequestTag, StoreRequest)> {
    std::iter::from_fn(|| operator.poll_output())
        .filter_map(|output| match output {
            ShardAdditionOutput::Store { tag, request } => Some((tag, request)),
            _ => None,
        })
        .collect()
}

fn place(store: &mut Store, vault: VaultId) -> ShardId {
    let placer = Placer::new(PlacementPolicy::LeastLoaded, 4);
    let operation = Operation::CreateVault { vault, tenant: TenantId(1) };
    let entries = match store.on_request(StoreRequest::Read { keys: placer.keys_to_read(&operation) }) {
        StoreReply::Read(entries) => entries,
        other => panic!("a read answered with {other:?}"),
    };
    let placement = placer.place(&operation, &entries).expect("placeable").expect("a placement");
    let mut transaction = Transaction::default();
    let shard = placement.add_to(&mut transaction);
    assert!(matches!(store.commit(&transaction), CommitOutcome::Committed { .. }));
    shard
}

fn catch_up(router: &mut Router, store: &Store) {
    for event in store.poll_routes(router.routes().cursor(), usize::MAX) {
        router.on_route_event(event);
    }
}

/// Routes a request for `vault` on `router`, answering lookups from `store`.
fn route(router: &mut Router, store: &mut Store, vault: VaultId) -> RouterOutput {
    router.on_request(Time(0), RequestId(1), TenantId(2), Resource::Vault(vault));
    loop {
        let outputs: Vec<RouterOutput> = std::iter::from_fn(|| router.poll_output()).collect();
        if let Some(fate) = outputs.iter().find(|output| {
            matches!(output, RouterOutput::Serve(_) | RouterOutput::Proxy(_) | RouterOutput::Answer { .. })
        }) {
            return fate.clone();
        }
        let Some(RouterOutput::Store { tag, request }) =
            outputs.into_iter().find(|output| matches!(output, RouterOutput::Store { .. }))
        else {
            panic!("a request is routed, answered or looked up");
        };
        router.on_store_reply(Time(0), tag, store.on_request(request));
    }
}

#[test]
fn readiness_waits_for_the_cell_and_for_every_base_host_to_have_the_row() {
    let mut store = base_store(0);
    let mut operator = ShardAddition::new(config(), Time(0));
    assert_eq!(pump(&mut operator, &mut store, Time(0)), vec![ShardAdditionOutput::ProvisionCell { shard: NEW }]);
    let registered = store.version(&Key::Shard(NEW));
    assert_eq!(row(&store, NEW), Some(ShardRecord { state: ShardState::Provisioning, vaults: 0 }));
    // Each report alone leaves the shard provisioning.
    operator.on_cell_ready(Time(1));
    operator.on_routes_applied(Time(1), H1, registered);
    operator.on_routes_applied(Time(1), H2, CommitSeq(registered.0 - 1)); // Behind the row.
    operator.on_routes_applied(Time(1), HostId(9), registered); // Not a base host.
    assert_eq!(requests(&mut operator), Vec::new(), "no commit before every base host has the row");
    assert!(!operator.is_admitted());
    // The last base host catches up: the shard is marked ready.
    operator.on_routes_applied(Time(2), H2, registered);
    let [(tag, request)] = &requests(&mut operator)[..] else { panic!("one commit") };
    operator.on_store_reply(Time(2), *tag, store.on_request(request.clone()));
    assert_eq!(pump(&mut operator, &mut store, Time(2)), vec![ShardAdditionOutput::Admitted { shard: NEW }]);
    assert_eq!(row(&store, NEW), Some(ShardRecord { state: ShardState::Ready, vaults: 0 }));
    assert!(operator.is_admitted());
}

#[test]
fn the_cell_is_waited_for_even_when_every_host_has_the_row() {
    let mut store = base_store(0);
    let mut operator = ShardAddition::new(config(), Time(0));
    pump(&mut operator, &mut store, Time(0));
    let registered = store.version(&Key::Shard(NEW));
    operator.on_routes_applied(Time(1), H1, registered);
    operator.on_routes_applied(Time(1), H2, registered);
    assert_eq!(requests(&mut operator), Vec::new());
    operator.on_cell_ready(Time(2));
    assert_eq!(requests(&mut operator).len(), 1, "now the ready commit");
}

#[test]
fn a_shard_added_live_gets_placements_only_once_admitted_and_no_request_is_misrouted() {
    let mut store = base_store(5);
    let old = VaultId(1);
    assert_eq!(place(&mut store, old), ShardId(0));
    let router_config = RouterConfig { shard: ShardId(0), request_timeout_ns: 10 * MS, lookups_max: 4 };
    let mut hosts = [Router::new(router_config, RouteTable::new()), Router::new(router_config, RouteTable::new())];
    for host in &mut hosts {
        catch_up(host, &store);
    }
    let mut operator = ShardAddition::new(config(), Time(0));
    pump(&mut operator, &mut store, Time(0));
    // Provisioning: the empty new shard is the least loaded, and still not chosen.
    assert_eq!(place(&mut store, VaultId(2)), ShardId(0));
    operator.on_cell_ready(Time(1));
    for (host, id) in hosts.iter_mut().zip([H1, H2]) {
        catch_up(host, &store);
        operator.on_routes_applied(Time(1), id, host.routes().applied_commit());
        assert_eq!(host.routes().shard_state(NEW), Some(ShardState::Provisioning), "{id} knows the new cell");
    }
    assert_eq!(pump(&mut operator, &mut store, Time(1)), vec![ShardAdditionOutput::Admitted { shard: NEW }]);
    // Admitted: the next vault goes to the new shard.
    let new = VaultId(3);
    assert_eq!(place(&mut store, new), NEW);
    // H1 has applied the new route; H2 has not and looks it up: both proxy to the new cell.
    catch_up(&mut hosts[0], &store);
    for host in &mut hosts {
        let fate = route(host, &mut store, new);
        assert!(matches!(fate, RouterOutput::Proxy(RoutedRequest { shard: NEW, .. })), "{fate:?}");
        let fate = route(host, &mut store, old);
        assert!(matches!(fate, RouterOutput::Serve(RoutedRequest { shard: ShardId(0), .. })), "{fate:?}");
    }
    assert_eq!((hosts[0].stats().lookups, hosts[1].stats().lookups), (0, 1));
}

#[test]
fn a_restarted_operator_resumes_from_the_stored_row() {
    let mut store = base_store(0);
    let provisioning = ShardRecord { state: ShardState::Provisioning, vaults: 0 };
    let registered = commit(&mut store, vec![Write::Put(Key::Shard(NEW), Value::Shard(provisioning))]);
    let mut operator = ShardAddition::new(config(), Time(0));
    assert_eq!(pump(&mut operator, &mut store, Time(0)), vec![ShardAdditionOutput::ProvisionCell { shard: NEW }]);
    assert_eq!(store.version(&Key::Shard(NEW)), registered, "the row was not written again");
    operator.on_cell_ready(Time(1));
    operator.on_routes_applied(Time(1), H1, registered);
    operator.on_routes_applied(Time(1), H2, registered);
    assert_eq!(pump(&mut operator, &mut store, Time(1)), vec![ShardAdditionOutput::Admitted { shard: NEW }]);
    // An incarnation that finds the shard ready is done at once, writing nothing.
    let last = store.last_commit();
    let mut again = ShardAddition::new(config(), Time(2));
    assert_eq!(pump(&mut again, &mut store, Time(2)), vec![ShardAdditionOutput::Admitted { shard: NEW }]);
    assert_eq!(store.last_commit(), last);
}

#[test]
fn racing_incarnations_conflict_and_each_reads_again() {
    let mut store = base_store(0);
    let mut first = ShardAddition::new(config(), Time(0));
    let mut second = ShardAddition::new(config(), Time(0));
    // Both read the row absent, then both try to register it.
    let [(tag_first, read_first)] = &requests(&mut first)[..] else { panic!("one read") };
    let [(tag_second, read_second)] = &requests(&mut second)[..] else { panic!("one read") };
    first.on_store_reply(Time(0), *tag_first, store.on_request(read_first.clone()));
    second.on_store_reply(Time(0), *tag_second, store.on_request(read_second.clone()));
    assert_eq!(pump(&mut first, &mut store, Time(0)), vec![ShardAdditionOutput::ProvisionCell { shard: NEW }]);
    assert_eq!(pump(&mut second, &mut store, Time(0)), Vec::new(), "its register conflicted");
    // After its backoff the second reads the row provisioning and waits too.
    second.on_timer(Time(2 * MS));
    assert_eq!(pump(&mut second, &mut store, Time(2 * MS)), vec![ShardAdditionOutput::ProvisionCell { shard: NEW }]);
    let registered = store.version(&Key::Shard(NEW));
    for operator in [&mut first, &mut second] {
        operator.on_cell_ready(Time(3 * MS));
        operator.on_routes_applied(Time(3 * MS), H1, registered);
        operator.on_routes_applied(Time(3 * MS), H2, registered);
    }
    assert_eq!(pump(&mut first, &mut store, Time(3 * MS)), vec![ShardAdditionOutput::Admitted { shard: NEW }]);
    assert_eq!(pump(&mut second, &mut store, Time(3 * MS)), Vec::new(), "its ready commit conflicted");
    second.on_timer(Time(5 * MS));
    assert_eq!(pump(&mut second, &mut store, Time(5 * MS)), vec![ShardAdditionOutput::Admitted { shard: NEW }]);
    assert_eq!(row(&store, NEW), Some(ShardRecord { state: ShardState::Ready, vaults: 0 }));
}

#[test]
fn a_request_without_an_answer_is_read_again_after_its_timeout() {
    let mut store = base_store(0);
    let mut operator = ShardAddition::new(config(), Time(0));
    let outputs: Vec<ShardAdditionOutput> = std::iter::from_fn(|| operator.poll_output()).collect();
    let [ShardAdditionOutput::Store { tag: lost, .. }, ShardAdditionOutput::Timer { deadline }] = &outputs[..] else {
        panic!("a read and its timer: {outputs:?}")
    };
    assert_eq!(*deadline, Time(10 * MS));
    operator.on_timer(Time(5 * MS));
    assert_eq!(
        std::iter::from_fn(|| operator.poll_output()).collect::<Vec<_>>(),
        vec![ShardAdditionOutput::Timer { deadline: Time(10 * MS) }],
        "woken early: the deadline again"
    );
    operator.on_timer(Time(10 * MS));
    let retried = requests(&mut operator);
    assert_eq!(retried.len(), 1, "a fresh read");
    assert_ne!(retried[0].0, *lost);
    // The lost read's late answer is ignored.
    let late = store.on_request(StoreRequest::Read { keys: vec![Key::Shard(NEW)] });
    operator.on_store_reply(Time(11 * MS), *lost, late);
    assert_eq!(requests(&mut operator), Vec::new());
    assert_eq!(store.routes_head(), Seq(1), "only the base shard's row is logged");
}
