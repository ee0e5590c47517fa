//! The router properties RTE-1 … RTE-5, checked incrementally.
//!
//! A [`RoutingChecker`] is owned by the [`PropertyChecker`] of a world that
//! shards its vaults (see [`PropertyChecker::with_routing`]); it judges the
//! sharding observations (`ShardRegistered` … `StoreOutage`) and ignores every
//! other. It keeps each shard's registry state and whether its cell serves,
//! each vault's home shard, the shards whose store is down, and the requests
//! in flight (their vault, their caller, whether their vault was placed when
//! they were sent, and the shards whose store was down while they waited). A
//! request is forgotten once answered, so its memory is bounded by the
//! requests in flight plus one entry per shard and per vault.
//!
//! * **RTE-1**: a vault is placed at most once (`Placed` naming another shard
//!   than its first is a violation; the same shard again is not), and every
//!   `ShardWrite` to a vault's secret commits on the vault's home shard; a
//!   write to a vault never placed is a violation.
//! * **RTE-2**: at `RequestAnswered`, a cell that answered is the home shard
//!   of the request's vault, and a request is not answered `NotFound` when its
//!   vault was placed before the request was sent (the router must then find
//!   the route in the base store). A vault placed after the request was sent
//!   may still be `NotFound`: its create was not acknowledged before.
//! * **RTE-3**: at `Placed`, the shard's registry row is `Ready` and its cell
//!   serves (`ShardRegistered { ready: true }` and `CellReady`, both observed
//!   earlier); at `Routed`, the same holds for the shard the request goes to.
//!   And a shard added live (registered `Provisioning` first) is marked
//!   `Ready` only once each of the [`RoutingOptions::base_hosts`] base-cell
//!   hosts has applied its registry row (`ShardKnown`), so no host meets a
//!   route to a shard its table lacks.
//! * **RTE-4**: at `Routed`, the request goes to the home shard of the vault
//!   it names, whatever the caller's tenancy (the detail names it).
//! * **RTE-5**: with [`RoutingOptions::outages_only`], an answer `Unavailable`
//!   is allowed only if the store of the request's home shard or of the base
//!   shard (0) was down at some moment between the request and its answer.
//!   The judgment is sound only in worlds whose only faults are store
//!   outages (a lost message or a crashed host fails a request too), so
//!   without the option RTE-5 judges nothing.
//!
//! An answer to a request that is not in flight (never sent, or answered
//! already: a duplicated answer) judges nothing.
//!
//! [`PropertyChecker`]: crate::PropertyChecker
//! [`PropertyChecker::with_routing`]: crate::PropertyChecker::with_routing

use std::collections::{BTreeMap, BTreeSet};

use crate::properties::{PropertyId, Violation};
use crate::view::{Observation, RouteOutcome};

/// The base shard: its store holds the routing metadata.
const BASE_SHARD: u32 = 0;

/// What the world promises about its faults, for the judgments that need it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoutingOptions {
    /// Store outages (`StoreOutage`) are the world's only faults: no message
    /// is lost and no node crashes or pauses. Only then does RTE-5 judge.
    pub outages_only: bool,
    /// The base cell's hosts are `0..base_hosts`: each must know a shard
    /// added live before it is marked `Ready` (RTE-3).
    pub base_hosts: u32,
}

/// A request sent and not yet answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Pending {
    /// The vault of the resource it names.
    vault: u32,
    /// The caller's tenancy.
    caller: u32,
    /// Whether its vault was placed when it was sent (RTE-2's `NotFound`).
    placed_when_sent: bool,
    /// The shards whose store was down at some moment since it was sent
    /// (RTE-5; kept only with `outages_only`).
    outages_seen: BTreeSet<u32>,
}

/// The incremental checker of RTE-1 … RTE-5. See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RoutingChecker {
    /// What the world promises about its faults.
    options: RoutingOptions,
    /// Each registered shard's registry state: `Ready` (true) or `Provisioning`.
    registry: BTreeMap<u32, bool>,
    /// Shards whose cell serves.
    cells_ready: BTreeSet<u32>,
    /// The base-cell hosts that applied each shard's registry row.
    known_by: BTreeMap<u32, BTreeSet<u32>>,
    /// Each placed vault's home shard.
    homes: BTreeMap<u32, u32>,
    /// Shards whose store is down now.
    stores_down: BTreeSet<u32>,
    /// Requests sent and not yet answered.
    pending: BTreeMap<u64, Pending>,
}

impl RoutingChecker {
    /// A checker of a world that promises `options`, before any shard exists.
    pub fn new(options: RoutingOptions) -> RoutingChecker {
        RoutingChecker { options, ..RoutingChecker::default() }
    }

    /// What the world promised about its faults.
    pub fn options(&self) -> RoutingOptions {
        self.options
    }

    /// The home shard of `vault`, once placed.
    pub fn home(&self, vault: u32) -> Option<u32> {
        self.homes.get(&vault).copied()
    }

    /// How many requests are sent and not yet answered.
    pub fn requests_in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Checks one observation and records it, pushing the violations it shows
    /// onto `out`. Observations other than the sharding ones are ignored.
    pub fn observe(&mut self, observation: &Observation, out: &mut Vec<Violation>) {
        match observation {
            Observation::ShardRegistered { shard, ready } => self.on_shard_registered(*shard, *ready, out),
            Observation::CellReady { shard } => {
                self.cells_ready.insert(*shard);
            }
            Observation::ShardKnown { host, shard } => {
                self.known_by.entry(*shard).or_default().insert(*host);
            }
            Observation::Placed { vault, shard } => self.on_placed(*vault, *shard, out),
            Observation::ShardWrite { shard, vault } => self.on_shard_write(*shard, *vault, out),
            Observation::RouteRequested { request, vault, caller } => {
                self.on_route_requested(*request, *vault, *caller)
            }
            Observation::Routed { host, request, shard } => self.on_routed(*host, *request, *shard, out),
            Observation::RequestAnswered { request, shard, outcome } => {
                self.on_request_answered(*request, *shard, *outcome, out);
            }
            Observation::StoreOutage { shard, down } => self.on_store_outage(*shard, *down),
            _ => {}
        }
    }

    /// Whether placements and routes may name `shard` (RTE-3): its registry
    /// row is `Ready` and its cell serves.
    fn is_ready(&self, shard: u32) -> bool {
        self.registry.get(&shard).copied().unwrap_or(false) && self.cells_ready.contains(&shard)
    }

    /// Why `shard` is not ready, for a violation's detail.
    fn unreadiness(&self, shard: u32) -> &'static str {
        match (self.registry.get(&shard), self.cells_ready.contains(&shard)) {
            (None, _) => "is not registered",
            (Some(false), true) => "is still provisioning in the registry",
            (Some(false), false) => "is still provisioning and its cell does not serve yet",
            (Some(true), _) => "is registered ready but its cell does not serve yet",
        }
    }

    /// RTE-3: a shard that was provisioning turns `Ready` only once every
    /// base-cell host has applied its registry row.
    fn on_shard_registered(&mut self, shard: u32, ready: bool, out: &mut Vec<Violation>) {
        let was_provisioning = self.registry.insert(shard, ready) == Some(false);
        if !(ready && was_provisioning) {
            return;
        }
        let known = self.known_by.get(&shard);
        let lacking: Vec<String> = (0..self.options.base_hosts)
            .filter(|host| !known.is_some_and(|hosts| hosts.contains(host)))
            .map(|host| host.to_string())
            .collect();
        if !lacking.is_empty() {
            out.push(violation(
                PropertyId::Rte3,
                format!(
                    "shard {shard} was marked ready before base-cell host(s) {} applied its registry row",
                    lacking.join(", ")
                ),
            ));
        }
    }

    /// RTE-1: one home per vault; RTE-3: only on a ready shard.
    fn on_placed(&mut self, vault: u32, shard: u32, out: &mut Vec<Violation>) {
        if !self.is_ready(shard) {
            out.push(violation(
                PropertyId::Rte3,
                format!("vault {vault} was placed on shard {shard}, which {}", self.unreadiness(shard)),
            ));
        }
        match self.homes.get(&vault) {
            Some(home) if *home != shard => out.push(violation(
                PropertyId::Rte1,
                format!("vault {vault} was placed on shard {shard} while it already lives on shard {home}"),
            )),
            Some(_) => {}
            None => {
                self.homes.insert(vault, shard);
            }
        }
    }

    /// RTE-1: a vault's writes commit on its home shard.
    fn on_shard_write(&self, shard: u32, vault: u32, out: &mut Vec<Violation>) {
        match self.homes.get(&vault) {
            Some(home) if *home == shard => {}
            Some(home) => out.push(violation(
                PropertyId::Rte1,
                format!("shard {shard}'s store committed a write to vault {vault}, which lives on shard {home}"),
            )),
            None => out.push(violation(
                PropertyId::Rte1,
                format!("shard {shard}'s store committed a write to vault {vault}, which was never placed"),
            )),
        }
    }

    fn on_route_requested(&mut self, request: u64, vault: u32, caller: u32) {
        let outages_seen = if self.options.outages_only { self.stores_down.clone() } else { BTreeSet::new() };
        let placed_when_sent = self.homes.contains_key(&vault);
        self.pending.insert(request, Pending { vault, caller, placed_when_sent, outages_seen });
    }

    /// RTE-3: a route goes to a ready shard; RTE-4: to its vault's home.
    fn on_routed(&self, host: u32, request: u64, shard: u32, out: &mut Vec<Violation>) {
        if !self.is_ready(shard) {
            out.push(violation(
                PropertyId::Rte3,
                format!("host {host} routed request {request} to shard {shard}, which {}", self.unreadiness(shard)),
            ));
        }
        let Some(pending) = self.pending.get(&request) else { return };
        let (vault, caller) = (pending.vault, pending.caller);
        match self.homes.get(&vault) {
            Some(home) if *home == shard => {}
            Some(home) => out.push(violation(
                PropertyId::Rte4,
                format!(
                    "host {host} routed request {request} of caller tenancy {caller} to shard {shard}, but its \
                     resource's vault {vault} lives on shard {home}: routed by something other than the resource"
                ),
            )),
            None => out.push(violation(
                PropertyId::Rte4,
                format!(
                    "host {host} routed request {request} of caller tenancy {caller} to shard {shard}, but its \
                     resource's vault {vault} was never placed, so no route leads anywhere"
                ),
            )),
        }
    }

    /// RTE-2 (the answering cell is the home; no `NotFound` for a vault
    /// placed before the request) and RTE-5 (`Unavailable` only under an
    /// outage of the home or the base store). The request is then forgotten.
    fn on_request_answered(
        &mut self,
        request: u64,
        shard: Option<u32>,
        outcome: RouteOutcome,
        out: &mut Vec<Violation>,
    ) {
        let Some(pending) = self.pending.remove(&request) else { return };
        let vault = pending.vault;
        let home = self.homes.get(&vault).copied();
        match (shard, home) {
            (Some(shard), Some(home)) if shard != home => out.push(violation(
                PropertyId::Rte2,
                format!(
                    "request {request} was answered {outcome:?} by shard {shard}, but vault {vault} lives on shard \
                     {home}"
                ),
            )),
            (Some(shard), None) => out.push(violation(
                PropertyId::Rte2,
                format!(
                    "request {request} was answered {outcome:?} by shard {shard}, but vault {vault} was never placed"
                ),
            )),
            (None, _) if matches!(outcome, RouteOutcome::Served | RouteOutcome::Refused) => out.push(violation(
                PropertyId::Rte2,
                format!("request {request} of vault {vault} was answered {outcome:?} by no cell at all"),
            )),
            _ => {}
        }
        if outcome == RouteOutcome::NotFound && pending.placed_when_sent {
            let home = home.map_or("?".to_string(), |home| home.to_string());
            out.push(violation(
                PropertyId::Rte2,
                format!(
                    "request {request} was answered NotFound, but vault {vault} was placed on shard {home} before \
                     the request was sent: the router must find the route in the base store"
                ),
            ));
        }
        if outcome == RouteOutcome::Unavailable && self.options.outages_only {
            let mut excusing = [Some(BASE_SHARD), home].into_iter().flatten();
            let excused = excusing.any(|shard| pending.outages_seen.contains(&shard));
            if !excused {
                let home = home.map_or("none yet".to_string(), |home| format!("shard {home}"));
                out.push(violation(
                    PropertyId::Rte5,
                    format!(
                        "request {request} of vault {vault} was answered Unavailable, but neither its home ({home}) \
                         nor the base shard's store was down while it waited"
                    ),
                ));
            }
        }
    }

    /// RTE-5: every request in flight sees the outage.
    fn on_store_outage(&mut self, shard: u32, down: bool) {
        if !down {
            self.stores_down.remove(&shard);
            return;
        }
        self.stores_down.insert(shard);
        if self.options.outages_only {
            for pending in self.pending.values_mut() {
                pending.outages_seen.insert(shard);
            }
        }
    }
}

fn violation(property: PropertyId, detail: String) -> Violation {
    Violation { property, detail }
}

#[cfg(test)]
mod tests;
