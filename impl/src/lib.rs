//! `vault`: the real code of the vaultsim secrets service.
//!
//! Every machine here is sans-IO. It never reads a clock, never does IO, never
//! spawns, never draws entropy. Inputs arrive through `on_<event>(&mut self, now, …)`
//! methods; outputs are queued inside the machine and drained by the caller with
//! `poll_output()`. The caller (the simulator, the model checker, or a real
//! service runtime) owns the network, the disks, the clocks and the faults.
//!
//! The machines:
//! * [`store::Store`]: the remote store engine (one per shard), a transactional
//!   key-value store with optimistic concurrency, ordered scans and log polls.
//! * [`worker::Worker`]: the control-plane worker that turns client operations into
//!   transactions, retries on conflict within a budget and answers the client.
//! * [`interceptor`]: turns a mutation into a replication write, `sync` (log append
//!   in the same transaction) or `async` (an outbox row).
//! * [`publisher::Publisher`]: moves outbox rows of one partition into its log.
//! * [`host::Host`]: a data-plane host with its local store and cursors.
//! * [`activator::Activator`]: marks a secret `Active` once every live host of
//!   its cell has applied it.
//! * [`quota::QuotaTable`]: admits or throttles client requests with per-tenant
//!   and global quotas and a service capacity, on exact integer
//!   [`quota::TokenBucket`]s (also the backfiller's store-traffic budget).
//! * [`migration::Operator`]: moves live migration's phase (stored in the
//!   remote store) forward on a schedule and back on rollback.
//! * [`backfill::Backfiller`]: live migration's phase 2, emits events for the
//!   secrets last written before replication was switched on, page by page
//!   under a persisted bookmark and a store-traffic budget.
//! * [`accessor::Accessor`]: a host's read path during a migration: local,
//!   remote (with a shadow compare), or local with a counted fallback.
//! * [`verify::Verifier`]: live migration's phase 3, compares every remote
//!   secret with every host's copy, version-aware, and repairs damaged entries.
//! * [`placement::Placer`]: the control plane's placement step: picks a ready
//!   shard for a new vault and writes its routing rows with it.
//! * [`router::Router`]: a base-cell host's router: serves its own shard's
//!   requests, proxies the others to their cells ([`router::ProxyAuth`] on the
//!   receiving side), and looks a missing route up in the base store.
//! * [`routes::RouteTable`]: a base-cell host's routing rows, applied from the
//!   base store's routing partition, resolving a request by its resource.
//! * [`shard_addition::ShardAddition`]: adds a shard live, marking it ready
//!   only once its cell serves and every base-cell host has its registry row.
//! * [`store::SharedStore`]: the same engine behind shared memory for a real
//!   multi-threaded deployment, checked with loom through [`sync`].

pub mod accessor;
pub mod activator;
pub mod backfill;
pub mod bugzoo;
pub mod host;
pub mod interceptor;
pub mod migration;
pub mod placement;
pub mod publisher;
pub mod quota;
pub mod reader;
pub mod router;
pub mod routes;
pub mod shard_addition;
pub mod store;
pub mod sync;
pub mod types;
pub mod verify;
mod walk;
pub mod worker;
