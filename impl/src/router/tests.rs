use super::*;
use crate::placement::{PlacementPolicy, Placer};
use crate::store::{CommitOutcome, IdempotencyToken, ReadEntry, Store, Transaction, Value, Write};
use crate::types::{Content, SecretId, Seq, ShardRecord, ShardState};
use crate::worker::Operation;

const MS: u64 = 1_000_000;
const BASE: ShardId = ShardId(0);
const OTHER: ShardId = ShardId(1);
const TENANT_A: TenantId = TenantId(1);
const TENANT_B: TenantId = TenantId(2);
/// Tenant A's vault and secret, on the base shard.
const VAULT_A: VaultId = VaultId(10);
const SECRET_A: SecretId = SecretId(100);
/// Tenant B's vault and secret, on the other shard.
const VAULT_B: VaultId = VaultId(20);
const SECRET_B: SecretId = SecretId(200);

fn config() -> RouterConfig {
    RouterConfig { shard: BASE, request_timeout_ns: 10 * MS, lookups_max: 2 }
}

fn commit(store: &mut Store, transaction: &Transaction) {
    assert!(matches!(store.commit(transaction), CommitOutcome::Committed { .. }), "a setup commit");
}

fn read(store: &mut Store, keys: Vec<Key>) -> Vec<ReadEntry> {
    match store.on_request(StoreRequest::Read { keys }) {
        StoreReply::Read(entries) => entries,
        other => panic!("a read answered with {other:?}"),
    }
}

/// Places `operation` with `placer` and commits only its routing rows (the
/// resources themselves live in their shards' stores, not needed here).
fn place(store: &mut Store, placer: &Placer, operation: &Operation) {
    let entries = read(store, placer.keys_to_read(operation));
    let placement = placer.place(operation, &entries).expect("placeable").expect("a placement");
    let mut transaction = Transaction::default();
    placement.add_to(&mut transaction);
    commit(store, &transaction);
}

/// The base store: two ready shards, tenant A's vault on the base shard and
/// tenant B's on the other, one secret in each.
fn base_store() -> Store {
    let mut store = Store::new();
    for shard in [BASE, OTHER] {
        let row = Value::Shard(ShardRecord { state: ShardState::Ready, vaults: 0 });
        commit(&mut store, &Transaction { reads: Vec::new(), writes: vec![Write::Put(Key::Shard(shard), row)] });
    }
    let create_secret = |secret: SecretId, vault| Operation::CreateSecret {
        secret,
        vault,
        content: Content::new(b"x"),
        token: IdempotencyToken(secret.0.into()),
    };
    for (tenant, vault, secret, shard) in [(TENANT_A, VAULT_A, SECRET_A, BASE), (TENANT_B, VAULT_B, SECRET_B, OTHER)] {
        let placer = Placer::new(PlacementPolicy::Fixed(shard), 4);
        place(&mut store, &placer, &Operation::CreateVault { vault, tenant });
        place(&mut store, &placer, &create_secret(secret, vault));
    }
    store
}

/// A router whose table has applied every routing event of `store`.
fn caught_up(store: &Store) -> Router {
    let mut router = Router::new(config(), RouteTable::new());
    for event in store.poll_routes(Seq::ZERO, usize::MAX) {
        router.on_route_event(event);
    }
    router
}

fn drain(router: &mut Router) -> Vec<RouterOutput> {
    std::iter::from_fn(|| router.poll_output()).collect()
}

/// Sends one request and answers every lookup from `store` at once; returns
/// the request's fate (Serve, Proxy or Answer).
fn route(router: &mut Router, store: &mut Store, caller: TenantId, target: Resource) -> RouterOutput {
    router.on_request(Time(0), RequestId(7), caller, target);
    loop {
        let mut fate = None;
        let mut lookup = None;
        for output in drain(router) {
            match output {
                RouterOutput::Store { tag, request } => lookup = Some((tag, request)),
                RouterOutput::Timer { .. } => {}
                other => fate = Some(other),
            }
        }
        if let Some(fate) = fate {
            assert!(lookup.is_none(), "a request is routed or looked up, not both");
            return fate;
        }
        let (tag, request) = lookup.expect("a request is routed, answered or looked up");
        router.on_store_reply(Time(MS), tag, store.on_request(request));
    }
}

fn routed(caller: TenantId, target: Resource, vault: VaultId, shard: ShardId) -> RoutedRequest {
    RoutedRequest { request: RequestId(7), caller, target, vault, shard }
}

#[test]
fn the_own_shard_is_served_locally_and_another_shard_is_proxied() {
    let mut store = base_store();
    let mut router = caught_up(&store);
    assert_eq!(
        route(&mut router, &mut store, TENANT_A, Resource::Secret(SECRET_A)),
        RouterOutput::Serve(routed(TENANT_A, Resource::Secret(SECRET_A), VAULT_A, BASE))
    );
    assert_eq!(
        route(&mut router, &mut store, TENANT_B, Resource::Vault(VAULT_B)),
        RouterOutput::Proxy(routed(TENANT_B, Resource::Vault(VAULT_B), VAULT_B, OTHER))
    );
    assert_eq!((router.stats().local, router.stats().proxied, router.stats().lookups), (1, 1, 0));
}

#[test]
fn routing_is_by_the_resource_never_by_the_callers_tenancy() {
    let mut store = base_store();
    let mut router = caught_up(&store);
    // A caller of tenancy A acting on B's vault (on behalf of B, or shared
    // across tenancies) reaches B's shard, carrying A for B's shard to authorize.
    for target in [Resource::Vault(VAULT_B), Resource::Secret(SECRET_B)] {
        for caller in [TENANT_A, TENANT_B, TenantId(99)] {
            assert_eq!(
                route(&mut router, &mut store, caller, target),
                RouterOutput::Proxy(routed(caller, target, VAULT_B, OTHER)),
                "{caller} asking for {target:?}"
            );
        }
    }
    // And tenancy B acting on A's secret is served on A's shard, here.
    assert_eq!(
        route(&mut router, &mut store, TENANT_B, Resource::Secret(SECRET_A)),
        RouterOutput::Serve(routed(TENANT_B, Resource::Secret(SECRET_A), VAULT_A, BASE))
    );
}

#[test]
fn a_host_without_the_route_looks_it_up_in_the_base_store_instead_of_answering_not_found() {
    let mut store = base_store();
    // A host whose log has delivered nothing yet.
    let mut router = Router::new(config(), RouteTable::new());
    assert_eq!(
        route(&mut router, &mut store, TENANT_A, Resource::Secret(SECRET_B)),
        RouterOutput::Proxy(routed(TENANT_A, Resource::Secret(SECRET_B), VAULT_B, OTHER))
    );
    assert_eq!(router.stats().lookups, 3, "secret → vault, vault → shard, the shard's registry row");
    assert_eq!(router.stats().not_found, 0);
    // The rows were kept: the same request is routed without the base store.
    assert_eq!(
        route(&mut router, &mut store, TENANT_B, Resource::Vault(VAULT_B)),
        RouterOutput::Proxy(routed(TENANT_B, Resource::Vault(VAULT_B), VAULT_B, OTHER))
    );
    assert_eq!(router.stats().lookups, 3);
    // When the log catches up, the learned rows arrive again and change nothing.
    for event in store.poll_routes(Seq::ZERO, usize::MAX) {
        router.on_route_event(event);
    }
    let home = Resolution::Home { vault: VAULT_B, shard: OTHER };
    assert_eq!(router.routes().resolve(Resource::Secret(SECRET_B), BASE), home);
    assert_eq!(router.routes().cursor(), store.routes_head());
}

#[test]
fn not_found_only_when_the_base_store_has_no_route_either() {
    let mut store = base_store();
    let mut router = caught_up(&store);
    let unknown_secret = route(&mut router, &mut store, TENANT_A, Resource::Secret(SecretId(999)));
    assert_eq!(unknown_secret, RouterOutput::Answer { request: RequestId(7), error: RouteError::NotFound });
    let unknown_vault = route(&mut router, &mut store, TENANT_A, Resource::Vault(VaultId(999)));
    assert_eq!(unknown_vault, RouterOutput::Answer { request: RequestId(7), error: RouteError::NotFound });
    assert_eq!((router.stats().lookups, router.stats().not_found), (2, 2));
}

#[test]
fn a_lookup_without_an_answer_is_answered_unavailable_at_its_deadline() {
    let store = base_store();
    let mut router = Router::new(config(), RouteTable::new());
    assert!(!router.is_busy(), "a new router waits on nothing");
    router.on_request(Time(0), RequestId(1), TENANT_A, Resource::Secret(SECRET_B));
    assert!(router.is_busy(), "a request waits on its lookup");
    let outputs = drain(&mut router);
    let Some(RouterOutput::Store { tag, request }) = outputs.first().cloned() else { panic!("a lookup: {outputs:?}") };
    assert_eq!(outputs[1], RouterOutput::Timer { deadline: Time(10 * MS) });
    // Woken early: nothing is answered and the deadline is armed again.
    router.on_timer(Time(5 * MS));
    assert_eq!(drain(&mut router), vec![RouterOutput::Timer { deadline: Time(10 * MS) }]);
    router.on_timer(Time(10 * MS));
    assert_eq!(
        drain(&mut router),
        vec![RouterOutput::Answer { request: RequestId(1), error: RouteError::Unavailable }]
    );
    assert_eq!(router.stats().timeouts, 1);
    assert!(!router.is_busy(), "an answered request waits no more");
    // The base store's late answer is ignored: the request was answered once.
    let mut store = store;
    router.on_store_reply(Time(11 * MS), tag, store.on_request(request));
    assert_eq!(drain(&mut router), Vec::new());
}

#[test]
fn a_request_keeps_its_deadline_across_its_lookups() {
    let mut store = base_store();
    let mut router = Router::new(config(), RouteTable::new());
    router.on_request(Time(0), RequestId(1), TENANT_A, Resource::Secret(SECRET_B));
    let Some(RouterOutput::Store { tag, request }) = drain(&mut router).first().cloned() else { panic!() };
    // The first lookup is answered late in the window; the second inherits the deadline.
    router.on_store_reply(Time(9 * MS), tag, store.on_request(request));
    let outputs = drain(&mut router);
    assert!(matches!(&outputs[0], RouterOutput::Store { request: StoreRequest::Read { keys }, .. }
        if keys == &vec![Key::VaultRoute(VAULT_B)]));
    assert_eq!(outputs[1], RouterOutput::Timer { deadline: Time(10 * MS) });
}

#[test]
fn a_base_store_outage_fails_only_requests_whose_route_the_host_lacks() {
    let store = base_store();
    let mut router = caught_up(&store);
    let lagging = VaultId(30);
    router.on_request(Time(0), RequestId(1), TENANT_A, Resource::Vault(lagging));
    router.on_request(Time(0), RequestId(2), TENANT_A, Resource::Vault(VAULT_B));
    router.on_request(Time(0), RequestId(3), TENANT_B, Resource::Secret(SECRET_A));
    router.on_timer(Time(10 * MS)); // The base store never answers.
    let fates: Vec<RouterOutput> = drain(&mut router)
        .into_iter()
        .filter(|output| !matches!(output, RouterOutput::Store { .. } | RouterOutput::Timer { .. }))
        .collect();
    assert_eq!(
        fates,
        vec![
            RouterOutput::Proxy(RoutedRequest {
                request: RequestId(2),
                ..routed(TENANT_A, Resource::Vault(VAULT_B), VAULT_B, OTHER)
            }),
            RouterOutput::Serve(RoutedRequest {
                request: RequestId(3),
                ..routed(TENANT_B, Resource::Secret(SECRET_A), VAULT_A, BASE)
            }),
            RouterOutput::Answer { request: RequestId(1), error: RouteError::Unavailable },
        ]
    );
}

#[test]
fn lookups_are_bounded_and_a_request_past_the_bound_is_busy() {
    let mut router = Router::new(config(), RouteTable::new());
    for request in 1..=3 {
        router.on_request(Time(0), RequestId(request), TENANT_A, Resource::Vault(VAULT_A));
    }
    let answers: Vec<RouterOutput> =
        drain(&mut router).into_iter().filter(|output| matches!(output, RouterOutput::Answer { .. })).collect();
    assert_eq!(answers, vec![RouterOutput::Answer { request: RequestId(3), error: RouteError::Busy }]);
    assert_eq!((router.stats().lookups, router.stats().busy), (2, 1));
}

#[test]
fn a_route_to_a_shard_the_registry_lacks_is_unavailable_not_misrouted() {
    let mut store = Store::new();
    // A broken base store: a route to shard 5, which was never registered.
    let writes = vec![Write::Put(Key::VaultRoute(VaultId(1)), Value::VaultRoute(ShardId(5)))];
    commit(&mut store, &Transaction { reads: Vec::new(), writes });
    let mut router = Router::new(config(), RouteTable::new());
    let fate = route(&mut router, &mut store, TENANT_A, Resource::Vault(VaultId(1)));
    assert_eq!(fate, RouterOutput::Answer { request: RequestId(7), error: RouteError::Unavailable });
    assert_eq!(router.stats().unknown_shard, 1);
}

#[test]
fn a_cell_serves_proxies_only_from_its_peers_and_only_for_its_shard() {
    let peers = [HostId(1), HostId(2)].into_iter().collect();
    let auth = ProxyAuth::new(OTHER, peers);
    let request = routed(TENANT_A, Resource::Vault(VAULT_B), VAULT_B, OTHER);
    assert_eq!(auth.check(HostId(1), &request), Ok(()));
    assert_eq!(auth.check(HostId(9), &request), Err(ProxyRefusal::UnknownPeer(HostId(9))));
    let misrouted = RoutedRequest { shard: ShardId(2), ..request };
    assert_eq!(auth.check(HostId(2), &misrouted), Err(ProxyRefusal::WrongShard(ShardId(2))));
    assert_eq!(
        auth.check(HostId(9), &misrouted),
        Err(ProxyRefusal::UnknownPeer(HostId(9))),
        "an unknown peer learns nothing else"
    );
}
