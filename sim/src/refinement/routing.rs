//! Refinement of a sharded world onto the abstract routing spec
//! (`model::spec::RoutingSpec`): REF-1 for worlds with
//! [`WorldConfig::sharding`](crate::world::WorldConfig::sharding).
//!
//! [`abstract_routing`] maps the world's routing metadata onto a
//! [`RoutingState`]:
//! * each shard's registry row in the base store (`Provisioning` or
//!   `Ready`; the load a row also carries is not in it, and its bump by a
//!   placement commits no routing event, since the row's state is unchanged);
//! * the shards whose cell serves: the world's cells (a cell is built
//!   serving, and never stops: a store outage is a fault of the network,
//!   which the spec leaves out);
//! * each vault's route in the base store (its placement);
//! * the base store's routing partition without its secret-route events
//!   (the spec's requests name vaults, see below), so a host's cursor is
//!   the number of shard and vault events among the events it applied;
//! * each base-cell host: whether it is up, that cursor, and the vault
//!   routes its router's table holds that its applied prefix does not (or
//!   routes elsewhere): the rows its lookups learned, which a crash loses.
//!
//! The requests are not world state the abstraction can read back, so
//! [`RoutingTracker`] keeps them from the step's observations. A request
//! enters the abstraction when a router decides where it goes (`Routed`):
//! it names the vault of the secret read, as the base store routes that
//! secret at that step (the world's truth: a router routes only by rows the
//! base store holds), and is routed "by lookup" exactly when the host's
//! table, as the abstraction held it before the step, lacked the vault's
//! route. It is `Answered` when a cell serves it (the first answer), and
//! leaves the followed abstraction after that step (no spec step reads or
//! changes an answered request, so every verdict is the same). The
//! router's lookups, which span several world steps, are thus one spec
//! `Route`, at the step the router decided; a lookup reads the base store
//! earlier than that, but what it read (a vault's route) never changes
//! once written (RTE-1), so the spec's read at the deciding step finds the
//! same.
//!
//! Left out, and why:
//! * A router's own answers (`NotFound`, `Unavailable`, `Busy`): no routing
//!   decision was made. A `NotFound` is, in the world, mostly a read of a
//!   secret that has no route (never created): the spec has no secrets, and
//!   its vault-level `NotFound` cannot say so. And the world's `NotFound`
//!   follows a lookup answered at an earlier step than the answer: a route
//!   committed in between makes the answer right in the world, yet no spec
//!   step at the answer's step explains it. RTE-2's `NotFound` clause and
//!   RTE-5 stay judged on the observations (`model::RoutingChecker`).
//! * A proxied request a cell refuses (`Refused`): it stays `Routed` (a
//!   refusal needs a wrong peer or a wrong shard; the second is already a
//!   `Route` the spec does not explain).
//! * A request routed again (a duplicated client message) is a second
//!   request; only the client's first answer is observed, so one may stay
//!   `Routed`, which the spec allows.
//! * Secret routes and registry rows learned by lookups: the spec routes
//!   vaults, and RTE-3 makes a shard's row reach every host before a vault
//!   is placed there (the world's initial shards excepted: its hosts start
//!   with empty tables, so the first abstract state is behind the spec's
//!   initial one in every host's cursor).
//! * Placement by a fixed shard (`PlacementPolicy::Fixed`): the spec
//!   places by the least-loaded rule only, so such a world is not judged.
//!
//! The tracker rebuilds the abstraction only after a step that can have
//! changed it: a routing event committed, a cell added, a base-cell host's
//! liveness, cursor or count of vault routes changed, or a request routed
//! or answered; at the end of a run it compares the abstraction with the
//! whole recomputed one.

use std::collections::{BTreeMap, VecDeque};

use model::spec::routing::{
    RequestOutcome, RouteEvent, RoutingHost, RoutingRequest, RoutingSpec, RoutingState, ShardRow,
};
use model::{Observation, PropertyId, RouteOutcome, Violation};
use vault::placement::PlacementPolicy;
use vault::routes::RouteTable;
use vault::store::{Key, Store, Table, Value};
use vault::types::{RouteRow, SecretId, Seq, ShardState};

use crate::world::{Action, StepReport, World};

/// The routing refinement check of one sharded world configuration.
#[derive(Clone, Debug)]
pub struct RoutingRefinement {
    spec: RoutingSpec,
}

impl RoutingRefinement {
    /// The check for `world`, if it shards by the least-loaded rule; `None`
    /// otherwise (a world that does not shard, or places by a fixed shard).
    pub fn of(world: &World) -> Option<RoutingRefinement> {
        let config = world.config();
        let sharding = config.sharding.as_ref()?;
        if sharding.policy != PlacementPolicy::LeastLoaded {
            return None;
        }
        let shard_count = sharding.shards + u32::from(sharding.add_shard);
        // The world bounds its vaults and requests, not the spec.
        let spec = RoutingSpec::new(sharding.shards, shard_count, u32::MAX, config.hosts, u32::MAX);
        Some(RoutingRefinement { spec })
    }

    /// Checks that `before` → `after` is a sequence of routing-spec steps or a stutter.
    pub fn check(&self, before: &RoutingState, after: &RoutingState) -> Result<(), Violation> {
        self.spec.explains(before, after).map(|_| ()).map_err(|detail| Violation {
            property: PropertyId::Ref1,
            detail: format!("no step of the routing spec explains this step: {detail}"),
        })
    }
}

/// What can change the world's part of the abstraction: the routing
/// partition's length, the number of cells, and each base-cell host's
/// liveness, route cursor and number of vault routes in its router's table.
type Fingerprint = (Seq, u32, Vec<(bool, Seq, usize)>);

/// Follows a sharded world step by step, checking each step that changed
/// the abstraction against the routing spec. See the module documentation.
#[derive(Clone, Debug)]
pub struct RoutingTracker {
    refinement: RoutingRefinement,
    /// The abstraction of the world as followed so far.
    state: RoutingState,
    fingerprint: Fingerprint,
    /// The secret each routed read names, by request id.
    secrets: BTreeMap<u64, SecretId>,
    /// The requests routed and not yet answered, by request id (a request
    /// delivered twice is routed twice), in routing order.
    routed: BTreeMap<u64, VecDeque<RoutingRequest>>,
    /// The requests answered, in answer order: taken out of the abstraction
    /// after the step that answered them, since no spec step reads or
    /// changes an answered request (the same steps explain a step with or
    /// without them), so a step costs what is in flight, not the run so far.
    answered: Vec<RoutingRequest>,
}

impl RoutingTracker {
    /// Starts following `world` (in its current state) with `refinement`.
    pub fn new(refinement: RoutingRefinement, world: &World) -> RoutingTracker {
        RoutingTracker {
            refinement,
            state: abstract_routing(world),
            fingerprint: fingerprint(world),
            secrets: BTreeMap::new(),
            routed: BTreeMap::new(),
            answered: Vec::new(),
        }
    }

    /// The requests answered so far, in answer order.
    pub fn answered(&self) -> &[RoutingRequest] {
        &self.answered
    }

    /// The abstraction as followed so far.
    pub fn state(&self) -> &RoutingState {
        &self.state
    }

    /// After `world` took `action` (which produced `report`), adds a REF-1
    /// violation to the report if no routing-spec steps explain the change.
    pub fn on_step(&mut self, world: &World, action: &Action, report: &mut StepReport) {
        if let Action::RoutedRead { request, secret, .. } = action {
            self.secrets.insert(request.0, *secret);
        }
        let requests_moved = report.observations.iter().any(|observation| {
            matches!(observation, Observation::Routed { .. } | Observation::RequestAnswered { shard: Some(_), .. })
        });
        let (head, cells, hosts) = &self.fingerprint;
        let unchanged = *head == world.store().routes_head()
            && *cells == world.shard_count()
            && hosts.iter().copied().eq(host_fingerprints(world));
        if !requests_moved && unchanged {
            return; // Nothing the abstraction holds can have changed.
        }
        if !unchanged {
            self.fingerprint = fingerprint(world);
        }
        let mut after = abstract_routing(world);
        after.requests = std::mem::take(&mut self.state.requests);
        let before = RoutingState { requests: after.requests.clone(), ..std::mem::take(&mut self.state) };
        let judged = self.follow_requests(world, &before, &mut after, &report.observations);
        if let Err(violation) = judged.and_then(|()| self.refinement.check(&before, &after)) {
            report.violations.push(violation);
        }
        let answered = |request: &RoutingRequest| matches!(request.outcome, RequestOutcome::Answered { .. });
        self.answered.extend(after.requests.iter().filter(|request| answered(request)));
        after.requests.retain(|request| !answered(request));
        self.state = after;
    }

    /// Moves the requests of `after` (copied from `before`) by the step's
    /// observations: a request routed enters, a request served is answered.
    fn follow_requests(
        &mut self,
        world: &World,
        before: &RoutingState,
        after: &mut RoutingState,
        observations: &[Observation],
    ) -> Result<(), Violation> {
        for observation in observations {
            match *observation {
                Observation::Routed { host, request, shard } => {
                    let secret = *self.secrets.get(&request).expect("a routed request was sent as a RoutedRead");
                    let Some(vault) = secret_vault(world.store(), secret) else {
                        return Err(Violation {
                            property: PropertyId::Ref1,
                            detail: format!(
                                "host {host} routed request {request} for {secret:?} to shard {shard}, \
                                 but the base store has no route for the secret"
                            ),
                        });
                    };
                    let lookup = before.table_route(host, vault).is_none();
                    let entry = RoutingRequest { vault, outcome: RequestOutcome::Routed { shard, lookup } };
                    insert_sorted(&mut after.requests, entry);
                    self.routed.entry(request).or_default().push_back(entry);
                }
                Observation::RequestAnswered { request, shard: Some(shard), outcome: RouteOutcome::Served } => {
                    let Some(entry) = self.routed.get_mut(&request).and_then(VecDeque::pop_front) else { continue };
                    let RequestOutcome::Routed { lookup, .. } = entry.outcome else { unreachable!("kept routed") };
                    let position = after.requests.binary_search(&entry).expect("a routed request is held");
                    after.requests.remove(position);
                    let answered = RequestOutcome::Answered { shard, lookup };
                    insert_sorted(&mut after.requests, RoutingRequest { vault: entry.vault, outcome: answered });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// At the end of a run: a REF-1 violation if the world's routing changed
    /// in a way no step showed (the whole abstraction differs from the followed one).
    pub fn end_check(&self, world: &World) -> Option<Violation> {
        let whole = RoutingState { requests: self.state.requests.clone(), ..abstract_routing(world) };
        (whole != self.state).then(|| Violation {
            property: PropertyId::Ref1,
            detail: "the world's routing changed in a way no step showed".to_string(),
        })
    }
}

/// The world's routing metadata seen as a state of the routing spec, without
/// requests (see the module documentation).
pub fn abstract_routing(world: &World) -> RoutingState {
    let store = world.store();
    let mut state = RoutingState::default();
    for row in store.scan(Table::Shards, None, usize::MAX).rows {
        if let (Key::Shard(shard), Some(Value::Shard(record))) = (row.key, &row.value) {
            let row = match record.state {
                ShardState::Provisioning => ShardRow::Provisioning,
                ShardState::Ready => ShardRow::Ready,
            };
            state.shards.insert(shard.0, row);
        }
    }
    state.cells = (0..world.shard_count()).collect();
    for row in store.scan(Table::VaultRoutes, None, usize::MAX).rows {
        if let (Key::VaultRoute(vault), Some(Value::VaultRoute(shard))) = (row.key, &row.value) {
            state.placements.insert(vault.0, shard.0);
        }
    }
    // For each prefix of the world's partition, how many events the spec's holds.
    let events = store.poll_routes(Seq::ZERO, usize::MAX);
    let mut kept = Vec::with_capacity(events.len() + 1);
    kept.push(0);
    for event in events {
        let projected = match event.row {
            RouteRow::Shard { shard, state: ShardState::Provisioning } => {
                Some(RouteEvent::Shard { shard: shard.0, row: ShardRow::Provisioning })
            }
            RouteRow::Shard { shard, state: ShardState::Ready } => {
                Some(RouteEvent::Shard { shard: shard.0, row: ShardRow::Ready })
            }
            RouteRow::Vault { vault, shard } => Some(RouteEvent::Vault { vault: vault.0, shard: shard.0 }),
            RouteRow::Secret { .. } => None,
        };
        state.routing_log.extend(projected);
        kept.push(state.routing_log.len());
    }
    for (host, up, durable) in world.hosts() {
        let cursor = usize::try_from(durable.routes().cursor().0).expect("fits");
        let cursor = *kept.get(cursor).unwrap_or_else(|| panic!("host {host} applied past the routing partition"));
        let mut entry = RoutingHost { up, cursor, learned: BTreeMap::new() };
        if let Some(table) = world.router_routes(host).filter(|_| up) {
            let applied = &state.routing_log[..cursor];
            for (vault, shard) in table.vaults() {
                let in_log = applied.contains(&RouteEvent::Vault { vault: vault.0, shard: shard.0 });
                if !in_log {
                    entry.learned.insert(vault.0, shard.0);
                }
            }
        }
        state.hosts.insert(host, entry);
    }
    state
}

fn fingerprint(world: &World) -> Fingerprint {
    (world.store().routes_head(), world.shard_count(), host_fingerprints(world).collect())
}

/// Each base-cell host's part of the [`Fingerprint`].
fn host_fingerprints(world: &World) -> impl Iterator<Item = (bool, Seq, usize)> + '_ {
    world.hosts().map(|(host, up, durable)| {
        let routes = world.router_routes(host).map_or(0, RouteTable::vault_count);
        (up, durable.routes().cursor(), routes)
    })
}

/// The vault of `secret` as the base store routes it.
fn secret_vault(store: &Store, secret: SecretId) -> Option<u32> {
    match store.read(&Key::SecretRoute(secret)).value {
        Some(Value::SecretRoute(vault)) => Some(vault.0),
        _ => None,
    }
}

fn insert_sorted(requests: &mut Vec<RoutingRequest>, request: RoutingRequest) {
    let position = requests.partition_point(|entry| *entry <= request);
    requests.insert(position, request);
}

#[cfg(test)]
mod tests;
