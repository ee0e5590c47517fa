//! The abstract routing spec: sharding by vault, the base store's routing
//! partition, the base-cell hosts' route tables, and adding a shard live, as
//! a small stateright model checked exhaustively on its own (like
//! [`super::ReplicationSpec`]), with RTE-1 … RTE-3 as state invariants.
//!
//! State: each shard's registry row in the base store (absent, `Provisioning`
//! or `Ready`) and whether its cell serves; each vault's placement (at most
//! one shard); the base store's routing partition, an ordered list of routing
//! events (registry rows and vault routes, in commit order); each base-cell
//! host's applied prefix of that partition (its cursor), the routes it learned
//! by lookups and not yet applied, and whether it is up; and the requests
//! that arrived, each with the vault it names and how it was routed.
//!
//! Actions, as the machines of `vault` take them:
//! * [`RoutingAction::Register`]: shard addition commits a shard's row
//!   `Provisioning`, logged in the routing partition.
//! * [`RoutingAction::CellReady`]: the registered shard's cell serves.
//! * [`RoutingAction::MarkReady`]: shard addition commits the row `Ready`,
//!   only once the cell serves and every configured base-cell host (up or
//!   down: the gate waits for a report from each) has applied the routing
//!   partition through the `Provisioning` row.
//! * [`RoutingAction::Place`]: a vault creation places the vault by the
//!   placer's default rule, the `Ready` shard with the fewest vaults, ties to
//!   the lowest id, and logs the route. (The same commit also bumps the
//!   shard's load in its registry row; the row's state is unchanged, so the
//!   base store logs no routing event for it, and the spec has no load.)
//! * [`RoutingAction::Apply`]: an up host applies the next routing event.
//! * [`RoutingAction::Crash`], [`RoutingAction::Restart`]: the applied
//!   prefix is durable, so a crash keeps the cursor; the routes learned by
//!   lookups live only in the router's memory (`vault::router::Router` keeps
//!   them in its own table and restarts from the host's durable one), so a
//!   crash loses them and the next request for such a vault looks it up again.
//! * [`RoutingAction::Route`]: the next request arrives at an up host naming
//!   a vault, and is routed by the host's table if it holds the vault's
//!   route; else by a lookup of the base store (the current placement; the
//!   host keeps the row read); else it is answered `NotFound`.
//! * [`RoutingAction::Learn`]: an up host reads a placed vault's route
//!   from the base store by a lookup and keeps it, without routing by it:
//!   the request that looked it up still waits on the route's shard row (a
//!   host whose table lacks it), or gives up. The row is the placement, as
//!   a lookup's is.
//! * [`RoutingAction::Answer`]: a routed request is answered by the cell of
//!   the shard it was routed to, which must serve.
//!
//! A request is one routing decision: the router's lookups (at most one per
//! missing row) are folded into the step that routes it, so a lookup reads
//! the base store as it stands at that step (a vault's route never changes
//! once written, so an earlier read finds the same), except a lookup that
//! keeps a vault's route and routes nothing yet ([`RoutingAction::Learn`]). A route whose shard the host's
//! table lacks would make the router look the registry row up too; RTE-3 says
//! that never happens, so the spec has no such step.
//!
//! The properties:
//! * RTE-1 ([`RoutingSpec::check_rte_1`]): a vault is placed at most once and
//!   never moves. The partition is append-only, so "never moves" is a state
//!   invariant over it: it holds at most one route event per vault, the
//!   placement is that event, and every host's table agrees. Writes are not
//!   in this spec ("its writes commit there" is the world's to check).
//! * RTE-2 ([`RoutingSpec::check_rte_2`]): every routed or answered request
//!   went to its vault's home shard; a request answered `NotFound` names a
//!   vault without a route in the partition as it stood when the request
//!   was routed (each such request keeps that length).
//! * RTE-3 ([`RoutingSpec::check_rte_3`]): every placement names a `Ready`
//!   shard, every `Ready` shard's cell serves, and every base-cell host, up
//!   or down, has applied every `Ready` shard's registry row, so every route
//!   a table holds names a cell the host knows.
//! * RTE-4 (routing by resource, not by the caller's tenancy) is structural
//!   here: a request carries only the vault it names and routing reads
//!   nothing else, so there is no caller to route by and nothing to check.
//! * RTE-5 (a shard's outage fails only its requests) is not in this spec: it
//!   has no outages.
//!
//! Four "sometimes" properties show the check is not vacuous: a request
//! answered by another shard's cell than the base shard's (proxied), a
//! lookup fallback, a `NotFound`, and a vault placed on a shard added live.
//!
//! Refinement (REF-1 for a sharded world): [`RoutingSpec::explains`] names
//! the spec steps that take one state to the next, as
//! [`super::ReplicationSpec::explains`] does, each checked by
//! [`RoutingSpec::step`] and the last compared whole with the state after;
//! one world step may take several (a poll reply applies several events; a
//! router that serves in its own cell routes and answers at once). The
//! simulator (`sim::refinement::routing`) maps the world onto
//! [`RoutingState`]: the base store's registry rows, vault routes and
//! routing partition (without its secret-route events), its cells, each
//! base-cell host's liveness, cursor and the vault routes its router
//! learned, and the requests routers routed and cells answered. A router's
//! lookups span several world steps: the one that reads a vault's route is
//! a `Learn` (when the request then waits on the shard's row) or part of the
//! `Route` that decides; the others change nothing here. What the mapping
//! leaves out (a router's own answers, secrets, refused proxies) and why is
//! in that module's documentation.

use std::collections::{BTreeMap, BTreeSet};

use stateright::{Model, Property};

use crate::properties::{PropertyId, Violation};

/// The base shard: its store holds the registry and the routing partition,
/// and the hosts of this spec are its cell's.
pub const BASE_SHARD: u32 = 0;

/// Name of the "sometimes" property: a request was answered by the cell of a
/// shard other than the base shard (it was proxied).
pub const PROXIED_TO_OTHER_SHARD: &str = "a request was proxied to another shard's cell";
/// Name of the "sometimes" property: a request was routed by a lookup of the
/// base store because the host's table lacked the route.
pub const LOOKUP_FALLBACK: &str = "a request was routed by a lookup";
/// Name of the "sometimes" property: a request was answered `NotFound`.
pub const ANSWERED_NOT_FOUND: &str = "a request was answered NotFound";
/// Name of the "sometimes" property: a vault was placed on a shard added live.
pub const ADDED_SHARD_CHOSEN: &str = "a shard added live was chosen by a placement";

/// A shard's registry row in the base store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShardRow {
    /// Registered; placements never choose it.
    Provisioning,
    /// Placements may choose it.
    Ready,
}

/// One event of the base store's routing partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteEvent {
    /// `shard`'s registry row was committed as `row`.
    Shard {
        /// The shard.
        shard: u32,
        /// Its row.
        row: ShardRow,
    },
    /// `vault` was placed on `shard`.
    Vault {
        /// The vault.
        vault: u32,
        /// Its home shard.
        shard: u32,
    },
}

/// A base-cell host: its route table is the applied prefix of the routing
/// partition plus the routes it learned by lookups.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoutingHost {
    /// Whether the host is up.
    pub up: bool,
    /// The number of routing events applied (durable).
    pub cursor: usize,
    /// Vault routes read from the base store by lookups whose event the
    /// host has not applied yet (in the router's memory: a crash loses
    /// them); applying the event drops the entry, so equal tables are
    /// stored alike.
    pub learned: BTreeMap<u32, u32>,
}

/// How a request was routed and answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestOutcome {
    /// Sent to `shard`'s cell, not answered yet.
    Routed {
        /// The shard it was sent to.
        shard: u32,
        /// Whether the route came from a lookup of the base store.
        lookup: bool,
    },
    /// Answered by `shard`'s cell.
    Answered {
        /// The shard whose cell answered.
        shard: u32,
        /// Whether the route came from a lookup of the base store.
        lookup: bool,
    },
    /// Answered `NotFound` by the router.
    NotFound {
        /// The length of the routing partition when the request was routed.
        routing_events: usize,
    },
}

/// A request that arrived at a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoutingRequest {
    /// The vault the request names (its own, or the vault of a secret it names).
    pub vault: u32,
    /// How it was routed and answered.
    pub outcome: RequestOutcome,
}

/// The routing spec's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoutingState {
    /// Each registered shard's registry row (absent: not registered).
    pub shards: BTreeMap<u32, ShardRow>,
    /// The shards whose cell serves.
    pub cells: BTreeSet<u32>,
    /// Each placed vault's home shard.
    pub placements: BTreeMap<u32, u32>,
    /// The base store's routing partition, in commit order.
    pub routing_log: Vec<RouteEvent>,
    /// The base cell's hosts.
    pub hosts: BTreeMap<u32, RoutingHost>,
    /// The requests that arrived, sorted: two requests are told apart only
    /// by their vault and outcome, so the order they arrived in is no state
    /// (an index into this list names a request within one state).
    pub requests: Vec<RoutingRequest>,
}

impl RoutingState {
    /// The events `host` has applied (empty for an unknown host).
    pub fn applied(&self, host: u32) -> &[RouteEvent] {
        self.hosts.get(&host).map_or(&[], |entry| &self.routing_log[..entry.cursor.min(self.routing_log.len())])
    }

    /// The home shard of `vault` in `host`'s table: applied, else learned.
    pub fn table_route(&self, host: u32, vault: u32) -> Option<u32> {
        let applied = route_in(self.applied(host), vault);
        applied.or_else(|| self.hosts.get(&host).and_then(|entry| entry.learned.get(&vault).copied()))
    }

    /// Whether `host`'s table holds `shard`'s registry row (applied).
    pub fn knows_shard(&self, host: u32, shard: u32) -> bool {
        self.applied(host)
            .iter()
            .any(|event| matches!(event, RouteEvent::Shard { shard: known, .. } if *known == shard))
    }

    /// The number of vaults placed on `shard` (its load).
    pub fn load(&self, shard: u32) -> usize {
        self.placements.values().filter(|home| **home == shard).count()
    }
}

/// A step of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoutingAction {
    /// Commit `shard`'s registry row `Provisioning`.
    Register {
        /// The shard added.
        shard: u32,
    },
    /// `shard`'s cell serves.
    CellReady {
        /// The shard.
        shard: u32,
    },
    /// Commit `shard`'s registry row `Ready`.
    MarkReady {
        /// The shard.
        shard: u32,
    },
    /// Place `vault` by the least-loaded rule and log its route.
    Place {
        /// The vault created.
        vault: u32,
    },
    /// `host` applies the next routing event.
    Apply {
        /// The host.
        host: u32,
    },
    /// `host` crashes; its applied prefix survives, its learned routes do not.
    Crash {
        /// The host.
        host: u32,
    },
    /// `host` restarts from its table.
    Restart {
        /// The host.
        host: u32,
    },
    /// The next request arrives at `host` naming `vault` and is routed.
    Route {
        /// The host it arrives at.
        host: u32,
        /// The vault it names.
        vault: u32,
    },
    /// `host` reads `vault`'s route from the base store by a lookup and
    /// keeps it, without routing a request by it yet: the request that
    /// looked it up waits on another row (the route's shard), or gives up.
    Learn {
        /// The host.
        host: u32,
        /// The vault whose route it read.
        vault: u32,
    },
    /// The cell `request` was routed to answers it.
    Answer {
        /// The request (its index in [`RoutingState::requests`]).
        request: usize,
    },
}

/// A known-bad variant of a rule, for tests that show a property catches
/// it; only a test build can switch one on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoutingBug {
    /// Mark a shard `Ready` once its cell serves, without waiting for the
    /// base-cell hosts to apply its registry row (breaks RTE-3).
    ReadyBeforeHostsApplied,
    /// Place among all registered shards, `Provisioning` ones too (RTE-3).
    PlaceOnProvisioning,
    /// Answer `NotFound` when the table lacks the route, without a lookup (RTE-2).
    NotFoundWithoutLookup,
}

/// The routing spec: its parameters, and its rules as a stateright [`Model`]
/// over [`RoutingState`]. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingSpec {
    /// Shards `0..initial_shards` are `Ready` and serve from the start, and
    /// every host has applied their rows (at least 1: the base shard).
    pub initial_shards: u32,
    /// Shards `initial_shards..shard_count` may be added live.
    pub shard_count: u32,
    /// Vaults `0..vault_count` may be created.
    pub vault_count: u32,
    /// The base cell's hosts are `0..host_count`.
    pub host_count: u32,
    /// Bound of the exhaustive check: at most this many requests arrive.
    pub requests_max: u32,
    /// Bound of the exhaustive check: at most this many hosts down at once
    /// (0 disables crashes).
    pub hosts_down_max: u32,
    /// A known-bad rule to use instead of the right one.
    #[cfg(test)]
    pub(crate) bug: Option<RoutingBug>,
}

impl RoutingSpec {
    /// Default of [`RoutingSpec::hosts_down_max`].
    pub const HOSTS_DOWN_MAX_DEFAULT: u32 = 1;

    /// A spec of `shard_count` shards of which `initial_shards` exist from
    /// the start, `vault_count` vaults, `host_count` base-cell hosts and at
    /// most `requests_max` requests, with at most one host down at once.
    pub fn new(initial_shards: u32, shard_count: u32, vault_count: u32, host_count: u32, requests_max: u32) -> Self {
        assert!(initial_shards >= 1, "the base shard exists from the start");
        assert!(initial_shards <= shard_count, "{initial_shards} initial shards of {shard_count}");
        assert!(host_count >= 1, "a base cell has hosts");
        RoutingSpec {
            initial_shards,
            shard_count,
            vault_count,
            host_count,
            requests_max,
            hosts_down_max: Self::HOSTS_DOWN_MAX_DEFAULT,
            #[cfg(test)]
            bug: None,
        }
    }

    /// The same spec with at most `hosts_down_max` hosts down at once.
    pub fn with_hosts_down_max(self, hosts_down_max: u32) -> Self {
        RoutingSpec { hosts_down_max, ..self }
    }

    /// The same spec with a known-bad rule.
    #[cfg(test)]
    pub(crate) fn with_bug(self, bug: RoutingBug) -> Self {
        RoutingSpec { bug: Some(bug), ..self }
    }

    /// Whether the known-bad rule `bug` is on (never outside tests).
    #[cfg(test)]
    fn has_bug(&self, bug: RoutingBug) -> bool {
        self.bug == Some(bug)
    }

    /// Whether the known-bad rule `bug` is on (never outside tests).
    #[cfg(not(test))]
    fn has_bug(&self, _bug: RoutingBug) -> bool {
        false
    }

    /// The shard a new vault is placed on in `state`: the `Ready` shard with
    /// the fewest vaults, ties to the lowest id (`Placer`'s least-loaded
    /// rule); `None` if no shard is `Ready`.
    pub fn placement_for(&self, state: &RoutingState) -> Option<u32> {
        let placeable = |row: ShardRow| row == ShardRow::Ready || self.has_bug(RoutingBug::PlaceOnProvisioning);
        let candidates = state.shards.iter().filter(|(_, row)| placeable(**row)).map(|(shard, _)| *shard);
        candidates.min_by_key(|shard| (state.load(*shard), *shard))
    }

    /// Whether `shard` may be marked `Ready` in `state`: it is
    /// `Provisioning`, its cell serves, and every host has applied the
    /// routing partition through its `Provisioning` row.
    pub fn ready_gate(&self, state: &RoutingState, shard: u32) -> Result<(), String> {
        if state.shards.get(&shard) != Some(&ShardRow::Provisioning) {
            return Err(format!("shard {shard} is not provisioning"));
        }
        if !state.cells.contains(&shard) {
            return Err(format!("shard {shard}'s cell does not serve yet"));
        }
        if self.has_bug(RoutingBug::ReadyBeforeHostsApplied) {
            return Ok(());
        }
        let registered = state
            .routing_log
            .iter()
            .position(|event| *event == RouteEvent::Shard { shard, row: ShardRow::Provisioning })
            .expect("a provisioning shard's row is logged");
        match state.hosts.iter().find(|(_, entry)| entry.cursor <= registered) {
            Some((host, entry)) => Err(format!(
                "host {host} has applied {} routing events, not yet shard {shard}'s row at position {}",
                entry.cursor,
                registered + 1
            )),
            None => Ok(()),
        }
    }

    /// The state after `action`, following the rules but not the model's
    /// bounds; `Err` says why `action` is not enabled in `state`.
    pub fn step(&self, state: &RoutingState, action: &RoutingAction) -> Result<RoutingState, String> {
        let mut next = state.clone();
        match *action {
            RoutingAction::Register { shard } => {
                if shard >= self.shard_count || state.shards.contains_key(&shard) {
                    return Err(format!("shard {shard} cannot be registered"));
                }
                next.shards.insert(shard, ShardRow::Provisioning);
                next.routing_log.push(RouteEvent::Shard { shard, row: ShardRow::Provisioning });
            }
            RoutingAction::CellReady { shard } => {
                if !state.shards.contains_key(&shard) || state.cells.contains(&shard) {
                    return Err(format!("shard {shard} is unregistered or its cell serves already"));
                }
                next.cells.insert(shard);
            }
            RoutingAction::MarkReady { shard } => {
                self.ready_gate(state, shard)?;
                next.shards.insert(shard, ShardRow::Ready);
                next.routing_log.push(RouteEvent::Shard { shard, row: ShardRow::Ready });
            }
            RoutingAction::Place { vault } => {
                if vault >= self.vault_count || state.placements.contains_key(&vault) {
                    return Err(format!("vault {vault} is unknown to the spec or placed already"));
                }
                let shard = self.placement_for(state).ok_or("no shard is ready")?;
                next.placements.insert(vault, shard);
                next.routing_log.push(RouteEvent::Vault { vault, shard });
            }
            RoutingAction::Apply { host } => {
                let entry = up_host(&mut next, host)?;
                let event = *state.routing_log.get(entry.cursor).ok_or(format!("host {host} applied everything"))?;
                entry.cursor += 1;
                if let RouteEvent::Vault { vault, .. } = event {
                    entry.learned.remove(&vault);
                }
            }
            RoutingAction::Crash { host } => {
                let entry = up_host(&mut next, host)?;
                entry.up = false;
                entry.learned.clear();
            }
            RoutingAction::Restart { host } => {
                let entry = next.hosts.get_mut(&host).ok_or(format!("host {host} does not exist"))?;
                if entry.up {
                    return Err(format!("host {host} is up"));
                }
                entry.up = true;
            }
            RoutingAction::Route { host, vault } => {
                let outcome = self.route(&mut next, host, vault)?;
                let request = RoutingRequest { vault, outcome };
                let position = next.requests.partition_point(|entry| *entry <= request);
                next.requests.insert(position, request);
            }
            RoutingAction::Learn { host, vault } => {
                if state.table_route(host, vault).is_some() {
                    return Err(format!("host {host}'s table routes vault {vault} already"));
                }
                let shard = *state.placements.get(&vault).ok_or(format!("vault {vault} has no route to read"))?;
                up_host(&mut next, host)?.learned.insert(vault, shard);
            }
            RoutingAction::Answer { request } => {
                let entry = next.requests.get_mut(request).ok_or(format!("request {request} has not arrived"))?;
                let RequestOutcome::Routed { shard, lookup } = entry.outcome else {
                    return Err(format!("request {request} is not waiting for a cell"));
                };
                if !state.cells.contains(&shard) {
                    return Err(format!("request {request}: shard {shard}'s cell does not serve"));
                }
                entry.outcome = RequestOutcome::Answered { shard, lookup };
                next.requests.sort_unstable();
            }
        }
        Ok(next)
    }

    /// The spec steps that take `before` to `after`: none for a stutter,
    /// else, in this order, one step per routing event the base store
    /// logged (`Register`, `MarkReady` or `Place`, in log order), the cells
    /// that began serving (`CellReady`), the hosts that restarted, one
    /// `Apply` per event each host applied, one `Route` per request routed
    /// (at the first up host, in id order, that routes it so and leads to
    /// `after`), one `Learn` per route a host learned that no `Route` of the
    /// step did, one `Answer` per request answered, and the hosts that
    /// crashed. Several steps at once are what one world step can do: a
    /// poll reply applies several events, and a router that serves a
    /// request in its own cell routes and answers it at once. Each step
    /// must be allowed by [`RoutingSpec::step`] and the last must reach
    /// `after` exactly; `Err` says what no such sequence explains. Follows
    /// the rules, not the model's bounds.
    pub fn explains(&self, before: &RoutingState, after: &RoutingState) -> Result<Vec<RoutingAction>, String> {
        if before == after {
            return Ok(Vec::new());
        }
        let plan = self.plan(before, after)?;
        let mut taken = Vec::with_capacity(plan.len());
        self.run_plan(&plan, before.clone(), after, &mut taken)?;
        Ok(taken)
    }

    /// The steps of [`RoutingSpec::explains`], with each `Route`'s host left open.
    fn plan(&self, before: &RoutingState, after: &RoutingState) -> Result<Vec<Planned>, String> {
        let mut plan = Vec::new();
        if !after.routing_log.starts_with(&before.routing_log) {
            return Err(format!(
                "the routing partition changed other than by appending: {:?} became {:?}",
                before.routing_log, after.routing_log
            ));
        }
        for event in &after.routing_log[before.routing_log.len()..] {
            plan.push(Planned::Step(match *event {
                RouteEvent::Shard { shard, row: ShardRow::Provisioning } => RoutingAction::Register { shard },
                RouteEvent::Shard { shard, row: ShardRow::Ready } => RoutingAction::MarkReady { shard },
                RouteEvent::Vault { vault, .. } => RoutingAction::Place { vault },
            }));
        }
        if !after.cells.is_superset(&before.cells) {
            return Err(format!(
                "cells {:?} stopped serving",
                before.cells.difference(&after.cells).collect::<Vec<_>>()
            ));
        }
        plan.extend(
            after.cells.difference(&before.cells).map(|&shard| Planned::Step(RoutingAction::CellReady { shard })),
        );
        if !before.hosts.keys().eq(after.hosts.keys()) {
            return Err(format!("hosts {:?} became {:?}", before.hosts.keys(), after.hosts.keys()));
        }
        let hosts = || before.hosts.iter().zip(after.hosts.values()).map(|((host, old), new)| (*host, old, new));
        plan.extend(
            hosts()
                .filter(|(_, old, new)| !old.up && new.up)
                .map(|(host, ..)| Planned::Step(RoutingAction::Restart { host })),
        );
        for (host, old, new) in hosts() {
            if new.cursor < old.cursor {
                return Err(format!("host {host}'s cursor went back from {} to {}", old.cursor, new.cursor));
            }
            plan.extend((old.cursor..new.cursor).map(|_| Planned::Step(RoutingAction::Apply { host })));
        }
        let (mut removed, added) = multiset_difference(&before.requests, &after.requests);
        let mut answers = Vec::new();
        for request in added {
            let RequestOutcome::Answered { shard, lookup } = request.outcome else {
                plan.push(Planned::Route(request));
                continue;
            };
            let routed = RoutingRequest { vault: request.vault, outcome: RequestOutcome::Routed { shard, lookup } };
            match removed.iter().position(|entry| *entry == routed) {
                Some(position) => {
                    removed.remove(position);
                }
                None => plan.push(Planned::Route(routed)),
            }
            answers.push(Planned::Answer(routed));
        }
        if let Some(request) = removed.first() {
            return Err(format!("request {request:?} vanished or changed other than by its answer"));
        }
        for (host, old, new) in hosts() {
            let learned = new.learned.iter().filter(|(vault, shard)| old.learned.get(vault) != Some(shard));
            plan.extend(learned.map(|(&vault, _)| Planned::Learn { host, vault }));
        }
        plan.extend(answers);
        plan.extend(
            hosts()
                .filter(|(_, old, new)| old.up && !new.up)
                .map(|(host, ..)| Planned::Step(RoutingAction::Crash { host })),
        );
        Ok(plan)
    }

    /// Takes the steps of `plan` from `state`, trying each up host for a
    /// `Route`, until the last step reaches `after`; the steps taken are
    /// left in `taken`.
    fn run_plan(
        &self,
        plan: &[Planned],
        state: RoutingState,
        after: &RoutingState,
        taken: &mut Vec<RoutingAction>,
    ) -> Result<(), String> {
        let Some((first, rest)) = plan.split_first() else {
            return if state == *after {
                Ok(())
            } else {
                Err(format!("the spec steps {taken:?} lead to {state:?}, not to {after:?}"))
            };
        };
        let candidates: Vec<RoutingAction> = match *first {
            Planned::Step(action) => vec![action],
            // Learned by a `Route` of this step already: nothing to take.
            Planned::Learn { host, vault }
                if state.hosts.get(&host).and_then(|entry| entry.learned.get(&vault))
                    == after.hosts.get(&host).and_then(|entry| entry.learned.get(&vault)) =>
            {
                return self.run_plan(rest, state, after, taken);
            }
            Planned::Learn { host, vault } => vec![RoutingAction::Learn { host, vault }],
            Planned::Route(request) => {
                let up = state.hosts.iter().filter(|(_, entry)| entry.up).map(|(host, _)| *host);
                up.map(|host| RoutingAction::Route { host, vault: request.vault }).collect()
            }
            Planned::Answer(request) => {
                let index = state.requests.iter().position(|entry| *entry == request);
                let index = index.ok_or(format!("no request {request:?} to answer after {taken:?}"))?;
                vec![RoutingAction::Answer { request: index }]
            }
        };
        let mut why = format!("no up host to route {first:?} after {taken:?}");
        for action in candidates {
            let next = match self.step(&state, &action) {
                Ok(next) => next,
                Err(refused) => {
                    why = format!("{action:?} after {taken:?}: {refused}");
                    continue;
                }
            };
            if let Planned::Route(request) = *first {
                if !next.requests.contains(&request)
                    || multiset_difference(&state.requests, &next.requests).1 != [request]
                {
                    why = format!("{action:?} after {taken:?} does not route as {request:?}");
                    continue;
                }
            }
            taken.push(action);
            match self.run_plan(rest, next, after, taken) {
                Ok(()) => return Ok(()),
                Err(deeper) => why = deeper,
            }
            taken.pop();
        }
        Err(why)
    }

    /// Routes a request for `vault` arriving at `host`: by the table, else
    /// by a lookup (the host keeps the row read), else `NotFound`.
    fn route(&self, state: &mut RoutingState, host: u32, vault: u32) -> Result<RequestOutcome, String> {
        if vault >= self.vault_count {
            return Err(format!("vault {vault} is unknown to the spec"));
        }
        up_host(state, host)?;
        if let Some(shard) = state.table_route(host, vault) {
            return Ok(RequestOutcome::Routed { shard, lookup: false });
        }
        let not_found = RequestOutcome::NotFound { routing_events: state.routing_log.len() };
        if self.has_bug(RoutingBug::NotFoundWithoutLookup) {
            return Ok(not_found);
        }
        let Some(&shard) = state.placements.get(&vault) else { return Ok(not_found) };
        up_host(state, host)?.learned.insert(vault, shard);
        Ok(RequestOutcome::Routed { shard, lookup: true })
    }

    /// Every invariant (RTE-1 … RTE-3) that `state` breaks, as (property,
    /// what broke), one per property.
    pub fn violations(&self, state: &RoutingState) -> Vec<Violation> {
        let checks: [(PropertyId, RoutingCheck); 3] = [
            (PropertyId::Rte1, Self::check_rte_1),
            (PropertyId::Rte2, Self::check_rte_2),
            (PropertyId::Rte3, Self::check_rte_3),
        ];
        checks
            .into_iter()
            .filter_map(|(property, check)| check(self, state).err().map(|detail| Violation { property, detail }))
            .collect()
    }

    /// RTE-1: the routing partition holds at most one route event per vault,
    /// a vault is placed exactly when its event is logged and on the shard
    /// it names, and every host's table routes it there or not at all.
    pub fn check_rte_1(&self, state: &RoutingState) -> Result<(), String> {
        let mut logged: BTreeMap<u32, u32> = BTreeMap::new();
        for event in &state.routing_log {
            if let RouteEvent::Vault { vault, shard } = *event {
                if let Some(first) = logged.insert(vault, shard) {
                    return Err(format!("vault {vault} was placed twice: on shard {first}, then on shard {shard}"));
                }
            }
        }
        if logged != state.placements {
            return Err(format!("placements {:?}, but the routing partition routes {logged:?}", state.placements));
        }
        for &host in state.hosts.keys() {
            for vault in 0..self.vault_count {
                let home = state.placements.get(&vault).copied();
                if let Some(shard) = state.table_route(host, vault).filter(|shard| Some(*shard) != home) {
                    return Err(format!("host {host} routes vault {vault} to shard {shard}, but its home is {home:?}"));
                }
            }
        }
        Ok(())
    }

    /// RTE-2: every routed or answered request went to its vault's home
    /// shard, and a `NotFound` names a vault that had no route in the
    /// partition when the request was routed.
    pub fn check_rte_2(&self, state: &RoutingState) -> Result<(), String> {
        for (request, entry) in state.requests.iter().enumerate() {
            let home = state.placements.get(&entry.vault).copied();
            match entry.outcome {
                RequestOutcome::Routed { shard, .. } | RequestOutcome::Answered { shard, .. } => {
                    if home != Some(shard) {
                        return Err(format!(
                            "request {request} for vault {} went to shard {shard}, but the vault's home is {home:?}",
                            entry.vault
                        ));
                    }
                }
                RequestOutcome::NotFound { routing_events } => {
                    if let Some(shard) = route_in(&state.routing_log[..routing_events], entry.vault) {
                        return Err(format!(
                            "request {request} was answered NotFound, but vault {} was placed on shard {shard} \
                             before it was routed",
                            entry.vault
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// RTE-3: every placement names a `Ready` shard, every `Ready` shard's
    /// cell serves, and every host (up or down) has applied the registry row
    /// of every `Ready` shard.
    pub fn check_rte_3(&self, state: &RoutingState) -> Result<(), String> {
        for (vault, shard) in &state.placements {
            if state.shards.get(shard) != Some(&ShardRow::Ready) {
                return Err(format!(
                    "vault {vault} is placed on shard {shard}, which is {:?}",
                    state.shards.get(shard)
                ));
            }
        }
        for shard in state.shards.iter().filter(|(_, row)| **row == ShardRow::Ready).map(|(shard, _)| *shard) {
            if !state.cells.contains(&shard) {
                return Err(format!("shard {shard} is ready, but its cell does not serve"));
            }
            if let Some(host) = state.hosts.keys().find(|host| !state.knows_shard(**host, shard)) {
                return Err(format!("shard {shard} is ready, but host {host} has not applied its registry row"));
            }
        }
        Ok(())
    }
}

/// A step of [`RoutingSpec::explains`]'s plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Planned {
    /// This step.
    Step(RoutingAction),
    /// A `Route` that adds this request, at a host to be found.
    Route(RoutingRequest),
    /// The `Answer` of this request (routed, not answered).
    Answer(RoutingRequest),
    /// A `Learn`, unless a `Route` of the same step learned the row.
    Learn {
        /// The host.
        host: u32,
        /// The vault.
        vault: u32,
    },
}

/// The entries of sorted `before` missing from sorted `after`, and those of
/// `after` missing from `before`, counting repeats.
fn multiset_difference(
    before: &[RoutingRequest],
    after: &[RoutingRequest],
) -> (Vec<RoutingRequest>, Vec<RoutingRequest>) {
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut old, mut new) = (before.iter().peekable(), after.iter().peekable());
    loop {
        match (old.peek(), new.peek()) {
            (Some(a), Some(b)) if a == b => {
                old.next();
                new.next();
            }
            (Some(a), Some(b)) if a < b => removed.push(*old.next().expect("peeked")),
            (Some(_), Some(_)) | (None, Some(_)) => added.push(*new.next().expect("peeked")),
            (Some(_), None) => removed.push(*old.next().expect("peeked")),
            (None, None) => return (removed, added),
        }
    }
}

/// One invariant check of [`RoutingSpec`]: `Err` says what broke.
type RoutingCheck = fn(&RoutingSpec, &RoutingState) -> Result<(), String>;

/// The host `host`, if it exists and is up.
fn up_host(state: &mut RoutingState, host: u32) -> Result<&mut RoutingHost, String> {
    match state.hosts.get_mut(&host) {
        Some(entry) if entry.up => Ok(entry),
        Some(_) => Err(format!("host {host} is down")),
        None => Err(format!("host {host} does not exist")),
    }
}

/// The shard `events` route `vault` to, if any (the first route event).
fn route_in(events: &[RouteEvent], vault: u32) -> Option<u32> {
    events.iter().find_map(|event| match *event {
        RouteEvent::Vault { vault: routed, shard } if routed == vault => Some(shard),
        RouteEvent::Vault { .. } | RouteEvent::Shard { .. } => None,
    })
}

impl Model for RoutingSpec {
    type State = RoutingState;
    type Action = RoutingAction;

    fn init_states(&self) -> Vec<RoutingState> {
        let shards: BTreeMap<u32, ShardRow> = (0..self.initial_shards).map(|shard| (shard, ShardRow::Ready)).collect();
        let routing_log: Vec<RouteEvent> =
            shards.iter().map(|(&shard, &row)| RouteEvent::Shard { shard, row }).collect();
        let host = RoutingHost { up: true, cursor: routing_log.len(), learned: BTreeMap::new() };
        vec![RoutingState {
            cells: shards.keys().copied().collect(),
            shards,
            placements: BTreeMap::new(),
            hosts: (0..self.host_count).map(|id| (id, host.clone())).collect(),
            routing_log,
            requests: Vec::new(),
        }]
    }

    fn actions(&self, state: &RoutingState, actions: &mut Vec<RoutingAction>) {
        for shard in self.initial_shards..self.shard_count {
            match state.shards.get(&shard) {
                None => actions.push(RoutingAction::Register { shard }),
                Some(ShardRow::Provisioning) => {
                    if !state.cells.contains(&shard) {
                        actions.push(RoutingAction::CellReady { shard });
                    } else if self.ready_gate(state, shard).is_ok() {
                        actions.push(RoutingAction::MarkReady { shard });
                    }
                }
                Some(ShardRow::Ready) => {}
            }
        }
        if self.placement_for(state).is_some() {
            let unplaced = (0..self.vault_count).filter(|vault| !state.placements.contains_key(vault));
            actions.extend(unplaced.map(|vault| RoutingAction::Place { vault }));
        }
        let down = state.hosts.values().filter(|entry| !entry.up).count();
        for (&host, entry) in &state.hosts {
            if !entry.up {
                actions.push(RoutingAction::Restart { host });
                continue;
            }
            if entry.cursor < state.routing_log.len() {
                actions.push(RoutingAction::Apply { host });
            }
            if down < self.hosts_down_max as usize {
                actions.push(RoutingAction::Crash { host });
            }
            if state.requests.len() < self.requests_max as usize {
                actions.extend((0..self.vault_count).map(|vault| RoutingAction::Route { host, vault }));
                // A lookup is made for a request not yet routed: the bound on
                // requests bounds lookups too.
                let unknown = state.placements.keys().filter(|vault| state.table_route(host, **vault).is_none());
                actions.extend(unknown.map(|&vault| RoutingAction::Learn { host, vault }));
            }
        }
        for (request, entry) in state.requests.iter().enumerate() {
            let waiting = matches!(entry.outcome, RequestOutcome::Routed { shard, .. } if state.cells.contains(&shard));
            // Of equal requests only the first: answering either leads to the same state.
            if waiting && (request == 0 || state.requests[request - 1] != *entry) {
                actions.push(RoutingAction::Answer { request });
            }
        }
    }

    fn next_state(&self, state: &RoutingState, action: RoutingAction) -> Option<RoutingState> {
        match self.step(state, &action) {
            Ok(next) => Some(next),
            Err(why) => panic!("the model enabled {action:?}, which the spec refuses: {why}"),
        }
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(PropertyId::Rte1.as_str(), |spec, state| spec.check_rte_1(state).is_ok()),
            Property::always(PropertyId::Rte2.as_str(), |spec, state| spec.check_rte_2(state).is_ok()),
            Property::always(PropertyId::Rte3.as_str(), |spec, state| spec.check_rte_3(state).is_ok()),
            Property::sometimes(PROXIED_TO_OTHER_SHARD, |_, state| proxied_to_other_shard(state)),
            Property::sometimes(LOOKUP_FALLBACK, |_, state| lookup_fallback(state)),
            Property::sometimes(ANSWERED_NOT_FOUND, |_, state| answered_not_found(state)),
            Property::sometimes(ADDED_SHARD_CHOSEN, added_shard_chosen),
        ]
    }
}

/// Whether some request was answered by a cell other than the base shard's.
fn proxied_to_other_shard(state: &RoutingState) -> bool {
    state
        .requests
        .iter()
        .any(|entry| matches!(entry.outcome, RequestOutcome::Answered { shard, .. } if shard != BASE_SHARD))
}

/// Whether some request was routed by a lookup of the base store.
fn lookup_fallback(state: &RoutingState) -> bool {
    state.requests.iter().any(|entry| {
        matches!(
            entry.outcome,
            RequestOutcome::Routed { lookup: true, .. } | RequestOutcome::Answered { lookup: true, .. }
        )
    })
}

/// Whether some request was answered `NotFound`.
fn answered_not_found(state: &RoutingState) -> bool {
    state.requests.iter().any(|entry| matches!(entry.outcome, RequestOutcome::NotFound { .. }))
}

/// Whether some vault lives on a shard added live.
fn added_shard_chosen(spec: &RoutingSpec, state: &RoutingState) -> bool {
    state.placements.values().any(|shard| *shard >= spec.initial_shards)
}

#[cfg(test)]
mod tests;
