//! Contention of sync versus async interception with real threads on the real
//! concurrent store (DESIGN.md, "Phenomena to reproduce").
//!
//! For each interceptor mode and each number of writers of one tenancy, the
//! writers run on std threads for a fixed wall-clock duration against one
//! [`SharedStore`]. Each writer updates its own secret over and over, so the
//! only key writers share is the tenancy's log head, which only `sync` mode
//! reads. An update is assembled the way [`vault::worker::Worker`] assembles an
//! `UpdateSecret`: read the secret with its version; in `sync` mode read the
//! log head (the key [`Interceptor::keys_to_read`] names); build the new record;
//! let [`Interceptor::on_mutation`] add the replication write (an append that
//! carries the head's version, or an outbox row); commit. A conflict starts a
//! new attempt, up to the worker's default `commit_attempts_max`; an update
//! that runs out of attempts counts as exhausted. Nothing publishes the outbox
//! during the run.
//!
//! Honest caveats. The machine this was written on has two cores, so at most
//! two writers run at once. A conflict needs another writer to commit between
//! an attempt's head read and its commit; a real store round trip leaves that
//! window open for a network delay, while here it is a few hundred
//! nanoseconds. So each writer calls `std::thread::yield_now()` between its
//! reads and its commit (the "round trip"), which lets any runnable writer
//! commit in the window, as on a loaded service. `--no-yield` removes it;
//! conflicts then come only from true parallelism and preemption. Retries do
//! not sleep: the worker's backoff is a timer in simulated time, and sleeping
//! here would measure the sleep. Figures are wall-clock and vary from run to
//! run; the shape (sync collapsing, async flat) is the result, not the digits.
//!
//! Usage: `cargo bench -p vaultsim-impl --bench contention -- [--json]
//! [--duration-ms N] [--no-yield]`; `VAULTSIM_BENCH_DURATION_MS` also sets the
//! duration per cell (default 300 ms). Each partition holds
//! `VAULTSIM_BENCH_PARTITION_EVENTS` events (default 4 000 000); a cell whose
//! partition fills up stops early and is marked `full`.
#![allow(clippy::disallowed_methods)] // Wall-clock timing of real threads, outside any machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use vault::interceptor::{Interceptor, InterceptorMode};
use vault::store::{
    CommitOutcome, InvalidWrite, Key, ReadEntry, SharedStore, SharedStoreConfig, Transaction, Value, Write,
};
use vault::types::{Content, Lifecycle, Mutation, SecretId, SecretRecord, TenantId, VaultId, VaultRecord, Version};
use vault::worker::WorkerConfig;

const TENANT: TenantId = TenantId(1);
const VAULT: VaultId = VaultId(1);
const WRITERS: [u32; 6] = [1, 2, 4, 8, 16, 32];
const DURATION_MS_DEFAULT: u64 = 300;
const PARTITION_EVENTS_DEFAULT: usize = 4_000_000;

/// Command-line and environment options.
#[derive(Clone, Copy, Debug)]
struct Options {
    json: bool,
    duration: Duration,
    yield_before_commit: bool,
    partition_events_max: usize,
}

/// What one writer counted.
#[derive(Debug, Default)]
struct WriterTally {
    commits: u64,
    conflicts: u64,
    retries: u64,
    exhausted: u64,
    full: bool,
    /// Latency of each committed update, first attempt to commit, in ns.
    latencies_ns: Vec<u64>,
}

/// One row of the table.
#[derive(Debug)]
struct Cell {
    mode: InterceptorMode,
    writers: u32,
    elapsed: Duration,
    commits: u64,
    conflicts: u64,
    retries: u64,
    exhausted: u64,
    full: bool,
    p50_us: f64,
    p99_us: f64,
}

impl Cell {
    fn commits_per_second(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64()
    }

    fn conflicts_per_commit(&self) -> f64 {
        if self.commits == 0 {
            return f64::NAN;
        }
        self.conflicts as f64 / self.commits as f64
    }

    fn mode_name(&self) -> &'static str {
        match self.mode {
            InterceptorMode::Sync => "sync",
            InterceptorMode::Async => "async",
        }
    }
}

fn main() {
    let options = parse_options();
    if !options.json {
        println!(
            "{:<6} {:>7} {:>12} {:>16} {:>9} {:>9} {:>9} {:>9}  note",
            "mode", "writers", "commits/s", "conflicts/commit", "retries", "exhausted", "p50_us", "p99_us"
        );
    }
    for mode in [InterceptorMode::Sync, InterceptorMode::Async] {
        for writers in WRITERS {
            eprintln!("contention: {mode:?} with {writers} writers");
            let cell = run_cell(mode, writers, &options);
            if options.json {
                print_json(&cell, &options);
            } else {
                print_row(&cell);
            }
        }
    }
}

fn parse_options() -> Options {
    let mut options = Options {
        json: false,
        duration: Duration::from_millis(env_number("VAULTSIM_BENCH_DURATION_MS").unwrap_or(DURATION_MS_DEFAULT)),
        yield_before_commit: true,
        partition_events_max: env_number("VAULTSIM_BENCH_PARTITION_EVENTS")
            .map_or(PARTITION_EVENTS_DEFAULT, |events| usize::try_from(events).expect("a partition size")),
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--json" => options.json = true,
            "--no-yield" => options.yield_before_commit = false,
            "--duration-ms" => {
                let value = arguments.next().and_then(|text| text.parse().ok());
                let millis = value.unwrap_or_else(|| panic!("--duration-ms takes a number of milliseconds"));
                options.duration = Duration::from_millis(millis);
            }
            // `cargo bench` passes `--bench`; filters make no sense for one sweep.
            "--bench" => {}
            other => eprintln!("contention: ignoring argument {other:?}"),
        }
    }
    assert!(options.duration > Duration::ZERO, "a cell runs for a positive duration");
    assert!(options.partition_events_max > 0, "a partition holds at least one event");
    options
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(text.parse().unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")))
}

/// Runs `writers` threads in `mode` for the configured duration.
fn run_cell(mode: InterceptorMode, writers: u32, options: &Options) -> Cell {
    let config = SharedStoreConfig { tenants: vec![TENANT], partition_events_max: options.partition_events_max };
    let store = SharedStore::new(&config);
    let interceptor = Interceptor { mode };
    set_up(&store, interceptor, writers);
    let attempts_max = WorkerConfig::new(mode).commit_attempts_max;
    let barrier = Barrier::new(writers as usize + 1);
    let stop = AtomicBool::new(false);
    let (tallies, elapsed) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|writer| {
                let (store, barrier, stop) = (&store, &barrier, &stop);
                scope.spawn(move || {
                    barrier.wait();
                    write_until_stopped(store, interceptor, SecretId(writer), attempts_max, stop, options)
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        std::thread::sleep(options.duration);
        stop.store(true, Ordering::Relaxed);
        let tallies: Vec<WriterTally> =
            handles.into_iter().map(|handle| handle.join().expect("a writer panicked")).collect();
        (tallies, started.elapsed())
    });
    summarize(mode, writers, elapsed, tallies)
}

/// Creates the vault and one secret per writer, each through the interceptor.
fn set_up(store: &SharedStore, interceptor: Interceptor, writers: u32) {
    let vault = VaultRecord { tenant: TENANT, deleted: false };
    let transaction =
        Transaction { reads: Vec::new(), writes: vec![Write::Put(Key::Vault(VAULT), Value::Vault(vault))] };
    assert!(matches!(store.commit(&transaction), CommitOutcome::Committed { .. }), "the vault is created");
    for writer in 0..writers {
        let secret = SecretId(writer);
        let entry = store.read(&[Key::Secret(secret)]).pop().expect("one entry per key");
        assert!(entry.value.is_none(), "{secret} is new");
        let record = SecretRecord {
            tenant: TENANT,
            vault: VAULT,
            version: Version(1),
            lifecycle: Lifecycle::Creating,
            content: Some(Content::new(&writer.to_le_bytes())),
        };
        let outcome = attempt(store, interceptor, &entry, Mutation { secret, record }, false);
        assert!(matches!(outcome, CommitOutcome::Committed { .. }), "set-up runs alone: {outcome:?}");
    }
}

/// One writer: updates its secret until `stop`, retrying conflicts within the budget.
fn write_until_stopped(
    store: &SharedStore,
    interceptor: Interceptor,
    secret: SecretId,
    attempts_max: u32,
    stop: &AtomicBool,
    options: &Options,
) -> WriterTally {
    let mut tally = WriterTally::default();
    let content = Content::new(&secret.0.to_be_bytes());
    while !stop.load(Ordering::Relaxed) && !tally.full {
        let started = Instant::now();
        for attempt_number in 1..=attempts_max {
            if attempt_number > 1 {
                tally.retries += 1;
            }
            let entry = store.read(&[Key::Secret(secret)]).pop().expect("one entry per key");
            let Some(Value::Secret(current)) = &entry.value else {
                panic!("{secret} was created in set-up");
            };
            let record =
                SecretRecord { version: current.version.next(), content: Some(content.clone()), ..current.clone() };
            let mutation = Mutation { secret, record };
            match attempt(store, interceptor, &entry, mutation, options.yield_before_commit) {
                CommitOutcome::Committed { .. } => {
                    tally.commits += 1;
                    let latency_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    tally.latencies_ns.push(latency_ns);
                    break;
                }
                CommitOutcome::Conflict { key } => {
                    assert_eq!(key, Key::LogHead(TENANT), "writers share nothing but the log head");
                    tally.conflicts += 1;
                    tally.exhausted += u64::from(attempt_number == attempts_max);
                }
                CommitOutcome::Invalid(InvalidWrite::PartitionFull(_)) => {
                    tally.full = true;
                    break;
                }
                CommitOutcome::Invalid(invalid) => panic!("the bench built an invalid transaction: {invalid:?}"),
            }
        }
    }
    tally
}

/// One attempt of a mutation whose secret was read as `entry`: the head read
/// (sync mode), the interceptor's write, the commit.
fn attempt(
    store: &SharedStore,
    interceptor: Interceptor,
    entry: &ReadEntry,
    mutation: Mutation,
    yield_before_commit: bool,
) -> CommitOutcome {
    let head = interceptor.keys_to_read(mutation.record.tenant).map(|key| {
        let mut entries = store.read(&[key]);
        assert_eq!(entries.len(), 1, "one entry per key");
        entries.pop().expect("one entry")
    });
    let mut transaction = Transaction {
        reads: vec![(entry.key, entry.version)],
        writes: vec![Write::Put(Key::Secret(mutation.secret), Value::Secret(mutation.record.clone()))],
    };
    interceptor.on_mutation(&mut transaction, mutation, head.as_ref());
    if yield_before_commit {
        std::thread::yield_now();
    }
    store.commit(&transaction)
}

fn summarize(mode: InterceptorMode, writers: u32, elapsed: Duration, tallies: Vec<WriterTally>) -> Cell {
    let mut latencies_ns = Vec::new();
    let mut cell = Cell {
        mode,
        writers,
        elapsed,
        commits: 0,
        conflicts: 0,
        retries: 0,
        exhausted: 0,
        full: false,
        p50_us: f64::NAN,
        p99_us: f64::NAN,
    };
    for tally in tallies {
        cell.commits += tally.commits;
        cell.conflicts += tally.conflicts;
        cell.retries += tally.retries;
        cell.exhausted += tally.exhausted;
        cell.full |= tally.full;
        latencies_ns.extend(tally.latencies_ns);
    }
    assert_eq!(latencies_ns.len() as u64, cell.commits, "one latency per commit");
    latencies_ns.sort_unstable();
    cell.p50_us = percentile_us(&latencies_ns, 50);
    cell.p99_us = percentile_us(&latencies_ns, 99);
    cell
}

/// The nearest-rank percentile, in microseconds; NaN when nothing committed.
fn percentile_us(sorted_ns: &[u64], percent: usize) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = (sorted_ns.len() * percent).div_ceil(100).max(1);
    sorted_ns[rank - 1] as f64 / 1_000.0
}

fn print_row(cell: &Cell) {
    let note = if cell.full { "partition full, stopped early" } else { "" };
    println!(
        "{:<6} {:>7} {:>12.0} {:>16.3} {:>9} {:>9} {:>9.1} {:>9.1}  {note}",
        cell.mode_name(),
        cell.writers,
        cell.commits_per_second(),
        cell.conflicts_per_commit(),
        cell.retries,
        cell.exhausted,
        cell.p50_us,
        cell.p99_us,
    );
}

fn print_json(cell: &Cell, options: &Options) {
    let number = |value: f64| if value.is_finite() { format!("{value:.3}") } else { "null".to_string() };
    println!(
        "{{\"mode\":\"{}\",\"writers\":{},\"elapsed_ms\":{},\"commits\":{},\"commits_per_s\":{},\
         \"conflicts\":{},\"conflicts_per_commit\":{},\"retries\":{},\"exhausted\":{},\"p50_us\":{},\
         \"p99_us\":{},\"partition_full\":{},\"yield_before_commit\":{}}}",
        cell.mode_name(),
        cell.writers,
        cell.elapsed.as_millis(),
        cell.commits,
        number(cell.commits_per_second()),
        cell.conflicts,
        number(cell.conflicts_per_commit()),
        cell.retries,
        cell.exhausted,
        number(cell.p50_us),
        number(cell.p99_us),
        cell.full,
        options.yield_before_commit,
    );
}
