use super::*;
use crate::store::Store;
use crate::types::{Content, VaultId};

const H1: HostId = HostId(1);
const H2: HostId = HostId(2);
const T1: TenantId = TenantId(1);
const S1: SecretId = SecretId(1);
const S2: SecretId = SecretId(2);

/// An activator wired to a store that answers every request at once.
struct Cell {
    activator: Activator,
    store: Store,
    now: Time,
    interval_ns: u64,
}

impl Cell {
    fn new(mode: InterceptorMode) -> Cell {
        let config = ActivatorConfig::new(vec![H1, H2], mode);
        let interval_ns = config.poll_interval_ns;
        Cell { activator: Activator::new(config, Time::ZERO), store: Store::new(), now: Time::ZERO, interval_ns }
    }

    /// Wakes the activator and answers its requests until it only waits.
    fn tick(&mut self) {
        self.activator.on_timer(self.now);
        for _ in 0..100 {
            let requests: Vec<(RequestTag, StoreRequest)> = std::iter::from_fn(|| self.activator.poll_output())
                .filter_map(|output| match output {
                    ActivatorOutput::Store { tag, request } => Some((tag, request)),
                    ActivatorOutput::Timer { .. } => None,
                })
                .collect();
            if requests.is_empty() {
                self.activator.check_invariants();
                return;
            }
            for (tag, request) in requests {
                let reply = self.store.on_request(request);
                self.activator.on_store_reply(self.now, tag, reply);
            }
        }
        panic!("the activator did not settle");
    }

    /// Runs `rounds` poll intervals.
    fn run(&mut self, rounds: u32) {
        for _ in 0..rounds {
            self.tick();
            self.now = self.now.plus_ns(self.interval_ns);
        }
    }

    /// Commits `secret` at `version` in `lifecycle` and appends its event
    /// (as a sync-mode worker, or a publisher, does).
    fn mutate(&mut self, secret: SecretId, version: u64, lifecycle: Lifecycle) -> Seq {
        self.mutate_in(T1, secret, version, lifecycle)
    }

    /// [`Cell::mutate`] in `tenant`'s partition.
    fn mutate_in(&mut self, tenant: TenantId, secret: SecretId, version: u64, lifecycle: Lifecycle) -> Seq {
        let record = SecretRecord {
            tenant,
            vault: VaultId(1),
            version: Version(version),
            lifecycle,
            content: Some(Content::new(&version.to_le_bytes())),
        };
        let writes = vec![
            Write::Put(Key::Secret(secret), Value::Secret(record.clone())),
            Write::Append(Mutation { secret, record }),
        ];
        match self.store.commit(&Transaction { reads: Vec::new(), writes }) {
            CommitOutcome::Committed { appended, .. } => appended[0].1,
            other => panic!("setup commit refused: {other:?}"),
        }
    }

    fn record(&self, secret: SecretId) -> SecretRecord {
        match self.store.read(&Key::Secret(secret)).value {
            Some(Value::Secret(record)) => record,
            other => panic!("{secret} holds {other:?}"),
        }
    }

    fn lifecycle(&self, secret: SecretId) -> (Version, Lifecycle) {
        let record = self.record(secret);
        (record.version, record.lifecycle)
    }
}

#[test]
fn active_only_after_every_live_host_reached_the_creating_event() {
    let mut cell = Cell::new(InterceptorMode::Sync);
    let seq = cell.mutate(S1, 1, Lifecycle::Creating);
    cell.run(2);
    assert_eq!(cell.lifecycle(S1), (Version(1), Lifecycle::Creating), "no host has applied it");

    cell.activator.on_host_applied(H1, &[(T1, seq)]);
    cell.activator.on_host_applied(HostId(9), &[(T1, seq)]); // Not of this cell: ignored.
    cell.activator.on_host_applied(H2, &[(T1, Seq::ZERO)]);
    cell.run(3);
    assert_eq!(cell.lifecycle(S1), (Version(1), Lifecycle::Creating), "H2 has not applied it");
    assert_eq!(cell.activator.activated(), 0);

    cell.activator.on_host_applied(H2, &[(T1, seq)]);
    cell.activator.on_host_applied(H2, &[(T1, Seq::ZERO)]); // A late, older report is ignored.
    cell.run(1);
    let active = cell.record(S1);
    assert_eq!((active.version, active.lifecycle), (Version(2), Lifecycle::Active));
    assert_eq!(active.content, Some(Content::new(&1u64.to_le_bytes())), "activation keeps the content");
    assert_eq!(cell.activator.activated(), 1);
    let events = cell.store.poll(T1, Seq::ZERO, usize::MAX);
    assert_eq!(events.len(), 2, "sync activation appends its event");
    assert_eq!(events[1].mutation, Mutation { secret: S1, record: active });

    cell.run(3);
    assert_eq!(cell.activator.activated(), 1, "activated once");
    assert_eq!(cell.store.head(T1), Seq(2));
}

#[test]
fn a_down_host_is_not_waited_for_until_it_is_back() {
    let mut cell = Cell::new(InterceptorMode::Sync);
    let first = cell.mutate(S1, 1, Lifecycle::Creating);
    cell.activator.on_host_liveness(H2, false);
    cell.activator.on_host_applied(H1, &[(T1, first)]);
    cell.run(2);
    assert_eq!(cell.lifecycle(S1), (Version(2), Lifecycle::Active));

    cell.activator.on_host_liveness(H2, true);
    let second = cell.mutate(S2, 1, Lifecycle::Creating);
    cell.activator.on_host_applied(H1, &[(T1, second)]);
    cell.run(3);
    assert_eq!(cell.lifecycle(S2), (Version(1), Lifecycle::Creating), "H2 is live again and behind");
    cell.activator.on_host_applied(H2, &[(T1, second)]);
    cell.run(1);
    assert_eq!(cell.lifecycle(S2), (Version(2), Lifecycle::Active));
    assert_eq!(cell.activator.activated(), 2);
}

#[test]
fn with_no_live_host_nothing_is_activated() {
    let mut cell = Cell::new(InterceptorMode::Sync);
    let seq = cell.mutate(S1, 1, Lifecycle::Creating);
    cell.activator.on_host_applied(H1, &[(T1, seq)]);
    cell.activator.on_host_applied(H2, &[(T1, seq)]);
    cell.activator.on_host_liveness(H1, false);
    cell.activator.on_host_liveness(H2, false);
    cell.run(5);
    assert_eq!(cell.lifecycle(S1), (Version(1), Lifecycle::Creating));
    assert_eq!(cell.activator.activated(), 0);

    cell.activator.on_host_liveness(H1, true);
    cell.run(1);
    assert_eq!(cell.lifecycle(S1), (Version(2), Lifecycle::Active), "H1 is back and has applied it");
}

#[test]
fn a_secret_updated_while_creating_is_activated_at_the_newer_version_only() {
    let mut cell = Cell::new(InterceptorMode::Sync);
    let created = cell.mutate(S1, 1, Lifecycle::Creating);
    cell.run(1); // The activator has read the create.
    let updated = cell.mutate(S1, 2, Lifecycle::Creating);

    // Both hosts applied the create but not the update: the activator finds the
    // secret moved on and waits for the update instead.
    cell.activator.on_host_applied(H1, &[(T1, created)]);
    cell.activator.on_host_applied(H2, &[(T1, created)]);
    cell.run(4);
    assert_eq!(cell.lifecycle(S1), (Version(2), Lifecycle::Creating));
    assert_eq!(cell.activator.activated(), 0);

    cell.activator.on_host_applied(H1, &[(T1, updated)]);
    cell.activator.on_host_applied(H2, &[(T1, updated)]);
    cell.run(1);
    let active = cell.record(S1);
    assert_eq!((active.version, active.lifecycle), (Version(3), Lifecycle::Active));
    assert_eq!(active.content, Some(Content::new(&2u64.to_le_bytes())), "the newer content is activated");
    assert_eq!(cell.activator.activated(), 1);
}

#[test]
fn a_secret_that_left_creating_is_not_activated() {
    let mut cell = Cell::new(InterceptorMode::Sync);
    let created = cell.mutate(S1, 1, Lifecycle::Creating);
    let scheduled = cell.mutate(S1, 2, Lifecycle::PendingDeletion);
    cell.activator.on_host_applied(H1, &[(T1, scheduled)]);
    cell.activator.on_host_applied(H2, &[(T1, created)]);
    cell.run(4);
    assert_eq!(cell.lifecycle(S1), (Version(2), Lifecycle::PendingDeletion));
    assert_eq!(cell.activator.activated(), 0);
}

#[test]
fn async_activation_writes_an_outbox_row_not_an_event() {
    let mut cell = Cell::new(InterceptorMode::Async);
    let seq = cell.mutate(S1, 1, Lifecycle::Creating); // As published.
    cell.activator.on_host_applied(H1, &[(T1, seq)]);
    cell.activator.on_host_applied(H2, &[(T1, seq)]);
    cell.run(2);
    let active = cell.record(S1);
    assert_eq!((active.version, active.lifecycle), (Version(2), Lifecycle::Active));
    assert_eq!(cell.store.head(T1), Seq(1), "nothing appended to the log");
    let rows = cell.store.scan_outbox(T1, usize::MAX);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].value, Some(Value::Outbox(Mutation { secret: S1, record: active })));
    assert_eq!(cell.activator.activated(), 1);
}

#[test]
fn woken_early_with_a_request_outstanding_rearms_the_abandon_deadline() {
    // Postmortem: `on_timer` returned without a `Timer` output when woken before
    // an outstanding request's abandon deadline; the caller had already deleted
    // the fired timer, so a lost reply left the activator with no timer, stuck forever.
    let config = ActivatorConfig::new(vec![H1, H2], InterceptorMode::Sync);
    let timeout_ns = config.request_timeout_ns;
    let mut activator = Activator::new(config, Time::ZERO);
    assert_eq!(activator.poll_output(), Some(ActivatorOutput::Timer { deadline: Time::ZERO }));
    activator.on_timer(Time::ZERO);
    let outputs: Vec<ActivatorOutput> = std::iter::from_fn(|| activator.poll_output()).collect();
    assert!(matches!(outputs[..], [ActivatorOutput::Store { request: StoreRequest::Poll { .. }, .. }, _]));

    activator.on_timer(Time(1));
    let outputs: Vec<ActivatorOutput> = std::iter::from_fn(|| activator.poll_output()).collect();
    assert_eq!(outputs, vec![ActivatorOutput::Timer { deadline: Time(timeout_ns) }]);
    activator.check_invariants();
}

#[test]
fn waiting_secrets_stay_within_their_bound_and_every_secret_is_activated() {
    // Postmortem: `waiting_secrets_max` only gated whether to poll; one poll
    // remembered every `Creating` event it returned (up to `poll_events_max` per
    // partition), so the waiting set grew past its bound.
    let t2 = TenantId(2);
    let mut config = ActivatorConfig::new(vec![H1, H2], InterceptorMode::Sync);
    config.waiting_secrets_max = 2;
    let interval_ns = config.poll_interval_ns;
    let mut cell =
        Cell { activator: Activator::new(config, Time::ZERO), store: Store::new(), now: Time::ZERO, interval_ns };
    let mut secrets = Vec::new();
    for (tenant, first) in [(T1, 1), (t2, 11)] {
        for secret in (first..first + 5).map(SecretId) {
            let seq = cell.mutate_in(tenant, secret, 1, Lifecycle::Creating);
            for host in [H1, H2] {
                cell.activator.on_host_applied(host, &[(tenant, seq)]);
            }
            secrets.push(secret);
        }
    }

    // The poll asks for no more events than there is room for.
    assert_eq!(cell.activator.poll_output(), Some(ActivatorOutput::Timer { deadline: Time::ZERO }));
    cell.activator.on_timer(Time::ZERO);
    let Some(ActivatorOutput::Store { tag, request }) = cell.activator.poll_output() else {
        panic!("a poll first");
    };
    assert_eq!(request, StoreRequest::Poll { cursors: Vec::new(), limit_per_partition: 2 });
    // Two events of each partition come back: the partitions take turns, and
    // the rest is left unread.
    let reply = cell.store.on_request(request);
    cell.activator.on_store_reply(Time::ZERO, tag, reply);
    assert_eq!(cell.activator.cursors, BTreeMap::from([(T1, Seq(1)), (t2, Seq(1))]));
    assert!(cell.activator.waiting.len() <= 2);

    let mut rounds = 0;
    while cell.activator.activated() < secrets.len() as u64 {
        rounds += 1;
        assert!(rounds <= 50, "activation stalled: {} of {}", cell.activator.activated(), secrets.len());
        cell.now = cell.now.plus_ns(interval_ns);
        cell.tick();
        assert!(cell.activator.waiting.len() <= 2, "waiting over its bound");
    }
    for secret in secrets {
        assert_eq!(cell.lifecycle(secret), (Version(2), Lifecycle::Active), "{secret}");
    }
    cell.run(3);
    assert!(cell.activator.waiting.is_empty());
    assert_eq!(cell.activator.activated(), 10, "activated once each");
}
