//! The router of a base-cell host: sends each request to its resource's home
//! shard, and the check a cell makes before serving a proxied request.
//!
//! A [`Router`] resolves a request by the resource it names, through its
//! [`RouteTable`], never by the caller's tenancy (RTE-4): the caller travels
//! with the request, for the home shard to authorize (cross-tenancy and
//! on-behalf-of requests), and is never read here. A request whose home is
//! this host's shard is handed back to be served locally
//! ([`RouterOutput::Serve`]); any other is proxied to its shard's cell over an
//! authenticated channel ([`RouterOutput::Proxy`]).
//!
//! A host that lacks a routing row (its log is behind, or it restarted) does
//! not answer `NotFound`: it reads the row from the base store and routes by
//! the answer, one read per missing row (secret → vault, vault → shard, the
//! shard's registry row), at most three per request (RTE-2). Rows read are
//! kept in the table ([`RouteTable::learn`]). Only when the base store holds
//! no route either is the request answered [`RouteError::NotFound`]. A request
//! whose lookups get no answer within `request_timeout_ns` of its arrival is
//! answered [`RouteError::Unavailable`]; requests waiting on lookups are
//! bounded by `lookups_max`, past which a request is answered
//! [`RouteError::Busy`]. A request with a known route never waits on the base
//! store, so a base-store outage fails only requests whose routes the host
//! lacks, and a shard's outage fails only the requests proxied to it (RTE-5).
//!
//! On the receiving side, [`ProxyAuth`] accepts a proxied request only from a
//! configured peer and only for its own shard.
//!
//! Call protocol: [`Router::on_request`], [`Router::on_store_reply`],
//! [`Router::on_timer`], and [`Router::on_route_event`] for each event of the
//! base store's routing partition, in order; after each call drain
//! [`Router::poll_output`]. A `Timer` output replaces any earlier one. Replies
//! whose tag is not outstanding are ignored (they answer an abandoned lookup).
//! The route table is the durable part; [`Router::new`] restarts from it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[cfg(feature = "bugzoo")]
use crate::bugzoo::Bug;
use crate::bugzoo::Bugs;
use crate::routes::{Resolution, Resource, RouteTable};
use crate::store::{Key, StoreReply, StoreRequest};
use crate::types::{HostId, RequestTag, RouteEvent, ShardId, TenantId, Time, VaultId};
use crate::worker::RequestId;

/// Limits and knobs of a router.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouterConfig {
    /// The shard of this host's cell.
    pub shard: ShardId,
    /// How long a request may wait on base-store lookups.
    pub request_timeout_ns: u64,
    /// Requests waiting on lookups at once.
    pub lookups_max: usize,
}

/// A request with its home: what a cell serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoutedRequest {
    /// The client's request.
    pub request: RequestId,
    /// The caller's tenancy, for the home shard's authorization; not for routing.
    pub caller: TenantId,
    /// What the request acts on.
    pub target: Resource,
    /// The resource's vault.
    pub vault: VaultId,
    /// The vault's home shard.
    pub shard: ShardId,
}

/// Why a request could not be routed. Every variant is an expected outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteError {
    /// The base store has no route for the resource: it does not exist.
    NotFound,
    /// The base store did not answer a lookup in time, or routes to a shard it
    /// has no registry row for.
    Unavailable,
    /// Too many requests are waiting on lookups; nothing was attempted.
    Busy,
}

/// What a router asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouterOutput {
    /// Serve the request in this host's cell.
    Serve(RoutedRequest),
    /// Send the request to the cell of `request.shard` over the authenticated channel.
    Proxy(RoutedRequest),
    /// Send `request` (a lookup) to the base store; hand its reply back with `tag`.
    Store {
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The request.
        request: StoreRequest,
    },
    /// Call [`Router::on_timer`] at or after `deadline`.
    Timer {
        /// When to wake the router.
        deadline: Time,
    },
    /// Answer the client with an error.
    Answer {
        /// The client's request.
        request: RequestId,
        /// Why it was not routed.
        error: RouteError,
    },
}

/// Counters for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouterStats {
    /// Requests served in this host's cell.
    pub local: u64,
    /// Requests proxied to another cell.
    pub proxied: u64,
    /// Base-store reads for missing routing rows (the fallback).
    pub lookups: u64,
    /// Requests answered `NotFound` (no route in the base store).
    pub not_found: u64,
    /// Requests answered `Unavailable` because their lookups timed out.
    pub timeouts: u64,
    /// Requests answered `Unavailable` because their route names an unregistered shard.
    pub unknown_shard: u64,
    /// Requests answered `Busy`.
    pub busy: u64,
}

/// A request waiting on a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Lookup {
    request: RequestId,
    caller: TenantId,
    target: Resource,
    /// The routing row read.
    key: Key,
    /// When the request is answered `Unavailable` (from its arrival).
    abandon_at: Time,
}

/// A base-cell host's router. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Router {
    config: RouterConfig,
    routes: RouteTable,
    in_flight: BTreeMap<RequestTag, Lookup>,
    next_tag: RequestTag,
    outputs: VecDeque<RouterOutput>,
    stats: RouterStats,
    bugs: Bugs,
    /// Bug `route-by-tenancy`: the shard each caller tenancy is pinned to.
    #[cfg(feature = "bugzoo")]
    tenancy_shards: BTreeMap<TenantId, ShardId>,
}

impl Router {
    /// A router with the durable `routes` (empty for a new host).
    pub fn new(config: RouterConfig, routes: RouteTable) -> Router {
        assert!(config.request_timeout_ns > 0, "a zero timeout never waits");
        assert!(config.lookups_max > 0, "a router has room for one lookup");
        routes.check_invariants();
        Router {
            config,
            routes,
            in_flight: BTreeMap::new(),
            next_tag: RequestTag::default(),
            outputs: VecDeque::new(),
            stats: RouterStats::default(),
            bugs: Bugs::none(),
            #[cfg(feature = "bugzoo")]
            tenancy_shards: BTreeMap::new(),
        }
    }

    /// The same router running bug-zoo variants (none outside the bug zoo).
    pub fn with_bugs(mut self, bugs: Bugs) -> Router {
        self.bugs = bugs;
        self
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<RouterOutput> {
        self.outputs.pop_front()
    }

    /// The route table (the durable part).
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Counters for reports.
    pub fn stats(&self) -> RouterStats {
        self.stats
    }

    /// Whether a lookup is in progress (a request waits on the base store).
    pub fn is_busy(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// The next event of the base store's routing partition reached this host.
    pub fn on_route_event(&mut self, event: &RouteEvent) {
        self.routes.apply(event);
        self.check_invariants();
    }

    /// A client (of tenancy `caller`) sends `request` acting on `target`.
    pub fn on_request(&mut self, now: Time, request: RequestId, caller: TenantId, target: Resource) {
        match self.routes.resolve(target, self.config.shard) {
            Resolution::Home { vault, shard } => self.route(RoutedRequest { request, caller, target, vault, shard }),
            #[cfg(feature = "bugzoo")]
            Resolution::Missing(_) if self.bugs.is_on(Bug::NoRouteFallback) => {
                // Bug: a missing row means no such resource; the base store is never asked.
                self.stats.not_found += 1;
                self.outputs.push_back(RouterOutput::Answer { request, error: RouteError::NotFound });
            }
            Resolution::Missing(_) if self.in_flight.len() >= self.config.lookups_max => {
                self.stats.busy += 1;
                self.outputs.push_back(RouterOutput::Answer { request, error: RouteError::Busy });
            }
            Resolution::Missing(key) => {
                let abandon_at = now.plus_ns(self.config.request_timeout_ns);
                self.look_up(Lookup { request, caller, target, key, abandon_at });
            }
        }
        self.arm();
        self.check_invariants();
    }

    /// The base store answered the lookup tagged `tag`.
    pub fn on_store_reply(&mut self, _now: Time, tag: RequestTag, reply: StoreReply) {
        let Some(lookup) = self.in_flight.remove(&tag) else { return }; // Late: already answered.
        let StoreReply::Read(entries) = reply else { panic!("a lookup answered with {reply:?}") };
        let [entry] = &entries[..] else { panic!("one key looked up, {} entries answered", entries.len()) };
        assert_eq!(entry.key, lookup.key, "another key answered");
        if self.routes.learn(entry).is_none() {
            let error = if matches!(lookup.key, Key::Shard(_)) {
                // A route to a shard the registry lacks: placement never makes one (RTE-3).
                self.stats.unknown_shard += 1;
                RouteError::Unavailable
            } else {
                self.stats.not_found += 1;
                RouteError::NotFound
            };
            self.outputs.push_back(RouterOutput::Answer { request: lookup.request, error });
        } else {
            match self.routes.resolve(lookup.target, self.config.shard) {
                Resolution::Home { vault, shard } => self.route(RoutedRequest {
                    request: lookup.request,
                    caller: lookup.caller,
                    target: lookup.target,
                    vault,
                    shard,
                }),
                Resolution::Missing(key) => {
                    assert_ne!(key, lookup.key, "a row just learned is still missing");
                    // The next row of the same request, within its own deadline.
                    self.look_up(Lookup { key, ..lookup });
                }
            }
        }
        self.arm();
        self.check_invariants();
    }

    /// The timer may have expired: answer requests whose lookups are overdue.
    pub fn on_timer(&mut self, now: Time) {
        let overdue: Vec<RequestTag> =
            self.in_flight.iter().filter(|(_, lookup)| lookup.abandon_at <= now).map(|(tag, _)| *tag).collect();
        for tag in overdue {
            let lookup = self.in_flight.remove(&tag).expect("just listed");
            self.stats.timeouts += 1;
            self.outputs.push_back(RouterOutput::Answer { request: lookup.request, error: RouteError::Unavailable });
        }
        self.arm();
        self.check_invariants();
    }

    fn route(&mut self, routed: RoutedRequest) {
        #[cfg(feature = "bugzoo")]
        let routed = if self.bugs.is_on(Bug::RouteByTenancy) {
            // Bug: the caller's tenancy decides; its first route pins it.
            let shard = *self.tenancy_shards.entry(routed.caller).or_insert(routed.shard);
            RoutedRequest { shard, ..routed }
        } else {
            routed
        };
        if routed.shard == self.config.shard {
            self.stats.local += 1;
            self.outputs.push_back(RouterOutput::Serve(routed));
        } else {
            assert!(self.routes.shard_state(routed.shard).is_some(), "proxy only to a known cell");
            self.stats.proxied += 1;
            self.outputs.push_back(RouterOutput::Proxy(routed));
        }
    }

    fn look_up(&mut self, lookup: Lookup) {
        assert!(lookup.key.is_routing(), "a lookup reads a routing row, not {:?}", lookup.key);
        let tag = self.next_tag.take_next();
        self.stats.lookups += 1;
        self.in_flight.insert(tag, lookup);
        self.outputs.push_back(RouterOutput::Store { tag, request: StoreRequest::Read { keys: vec![lookup.key] } });
    }

    /// Arms the one timer at the earliest deadline of the lookups in flight.
    fn arm(&mut self) {
        if let Some(deadline) = self.in_flight.values().map(|lookup| lookup.abandon_at).min() {
            self.outputs.push_back(RouterOutput::Timer { deadline });
        }
    }

    /// Asserts the router's invariants.
    pub fn check_invariants(&self) {
        assert!(self.in_flight.len() <= self.config.lookups_max, "lookups over their bound");
        for (tag, lookup) in &self.in_flight {
            assert!(*tag < self.next_tag, "a lookup with a tag never issued");
            assert!(lookup.key.is_routing(), "a lookup reads a routing row");
        }
        self.routes.check_invariants();
    }
}

/// Why a cell refused a proxied request. Every variant is an expected outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProxyRefusal {
    /// The channel's authenticated peer is not one this cell accepts proxies from.
    UnknownPeer(HostId),
    /// The request was routed to another shard than this cell's.
    WrongShard(ShardId),
}

/// A cell's check of proxied requests: only configured peers, only its own shard.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProxyAuth {
    shard: ShardId,
    peers: BTreeSet<HostId>,
}

impl ProxyAuth {
    /// The check of the cell of `shard`, accepting proxies from `peers` (the base cell's hosts).
    pub fn new(shard: ShardId, peers: BTreeSet<HostId>) -> ProxyAuth {
        ProxyAuth { shard, peers }
    }

    /// Whether to serve `request`, proxied by the authenticated peer `from`.
    /// An unknown peer learns nothing else about the request.
    pub fn check(&self, from: HostId, request: &RoutedRequest) -> Result<(), ProxyRefusal> {
        if !self.peers.contains(&from) {
            return Err(ProxyRefusal::UnknownPeer(from));
        }
        if request.shard != self.shard {
            return Err(ProxyRefusal::WrongShard(request.shard));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
