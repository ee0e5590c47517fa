use super::*;
use crate::host::{ApplyEffect, LocalStore};
use crate::store::Store;
use crate::types::{Content, Lifecycle, Mutation, Seq, TenantId, VaultId, Version};

const T1: TenantId = TenantId(1);
const MS: u64 = 1_000_000;

fn record(version: u64, lifecycle: Lifecycle, bytes: &[u8]) -> SecretRecord {
    let content = (lifecycle != Lifecycle::Deleted).then(|| Content::new(bytes));
    SecretRecord { tenant: T1, vault: VaultId(1), version: Version(version), lifecycle, content }
}

/// A replicated write: the record and its log event (sync mode).
fn write(store: &mut Store, secret: u32, record: SecretRecord) {
    let mutation = Mutation { secret: SecretId(secret), record: record.clone() };
    let writes = vec![Write::Put(Key::Secret(SecretId(secret)), Value::Secret(record)), Write::Append(mutation)];
    assert!(matches!(store.commit(&Transaction { reads: Vec::new(), writes }), CommitOutcome::Committed { .. }));
}

/// Applies every event of the log past the host's cursor; returns the effects.
fn catch_up(host: &mut LocalStore, store: &Store) -> Vec<ApplyEffect> {
    let events = store.poll(T1, host.cursor(T1), usize::MAX).to_vec();
    events.iter().map(|event| host.apply(event)).collect()
}

/// A storage fault: flips a bit of a host's copy of `secret`.
fn damage(host: &mut LocalStore, secret: u32) {
    assert!(host.flip_bit(SecretId(secret)));
}

fn config(hosts: u32, page_keys: usize) -> VerifyConfig {
    VerifyConfig {
        bookmark: BookmarkId(3),
        hosts: (0..hosts).map(HostId).collect(),
        page_keys,
        budget: Some(BucketConfig::per_interval(1_000, 1_000 * MS)),
        request_timeout_ns: 20 * MS,
        retry_delay_ns: 5 * MS,
    }
}

/// Drives a verifier at its timers, answering store requests at once and
/// host requests from `hosts` unless `lose` says to lose one. Stops when done
/// or after `steps` answers. `between` runs before each request is answered.
fn run(
    verifier: &mut Verifier,
    store: &mut Store,
    hosts: &mut [LocalStore],
    steps: usize,
    mut lose: impl FnMut(&VerifyOutput) -> bool,
    mut between: impl FnMut(&mut Store, &mut [LocalStore], &VerifyOutput),
) {
    let mut now = Time(0);
    let mut timer = None;
    let mut answered = 0;
    while answered < steps && !verifier.is_done() {
        let mut work = Vec::new();
        while let Some(output) = verifier.poll_output() {
            match output {
                VerifyOutput::Timer { deadline } => timer = Some(deadline),
                VerifyOutput::Done => {}
                other => work.push(other),
            }
        }
        if work.is_empty() {
            now = now.max(timer.take().expect("an idle verifier has a timer"));
            verifier.on_timer(now);
            continue;
        }
        for output in work {
            answered += 1;
            between(store, hosts, &output);
            if lose(&output) {
                continue;
            }
            match output {
                VerifyOutput::Store { tag, request } => verifier.on_store_reply(now, tag, store.on_request(request)),
                VerifyOutput::Digest { tag, host, secrets } => {
                    verifier.on_digest(now, tag, hosts[host.0 as usize].digest(&secrets));
                }
                VerifyOutput::Repair { tag, host, secret, record } => {
                    let replaced = hosts[host.0 as usize].repair(secret, &record);
                    verifier.on_repaired(now, tag, replaced);
                }
                VerifyOutput::Timer { .. } | VerifyOutput::Done => unreachable!("filtered above"),
            }
        }
    }
}

/// A store of four replicated secrets (one deleted) and two caught-up hosts.
fn replicated() -> (Store, Vec<LocalStore>) {
    let mut store = Store::new();
    for secret in 0..4 {
        write(&mut store, secret, record(1, Lifecycle::Active, &[secret as u8]));
    }
    write(&mut store, 3, record(2, Lifecycle::Deleted, b""));
    let mut hosts = vec![LocalStore::new(), LocalStore::new()];
    for host in &mut hosts {
        catch_up(host, &store);
    }
    (store, hosts)
}

#[test]
fn compare_is_version_aware() {
    let remote = record(2, Lifecycle::Active, b"abc");
    let same = DigestEntry { version: Version(2), checksum: Some(Checksum::of(b"abc")) };
    assert_eq!(compare(&remote, Some(same)), Comparison::Match);
    assert_eq!(compare(&remote, None), Comparison::Lag);
    assert_eq!(compare(&remote, Some(DigestEntry { version: Version(1), checksum: None })), Comparison::Lag);
    assert_eq!(compare(&remote, Some(DigestEntry { version: Version(3), ..same })), Comparison::Lag);
    let flipped = DigestEntry { checksum: Some(Checksum::of(b"abd")), ..same };
    assert_eq!(compare(&remote, Some(flipped)), Comparison::Mismatch);
    let tombstone = record(4, Lifecycle::Deleted, b"");
    assert_eq!(compare(&tombstone, Some(DigestEntry { version: Version(4), checksum: None })), Comparison::Match);
}

#[test]
fn a_damaged_entry_is_found_and_repaired_and_healthy_hosts_are_untouched() {
    let (mut store, mut hosts) = replicated();
    damage(&mut hosts[1], 2);
    let healthy = hosts[0].clone();
    let mut verifier = Verifier::new(config(2, 3), Time(0));
    run(&mut verifier, &mut store, &mut hosts, 100, |_: &VerifyOutput| false, |_, _, _| {});
    assert!(verifier.is_done());
    let stats = verifier.stats();
    assert_eq!((stats.keys_compared, stats.matches, stats.lagging, stats.mismatches, stats.repairs), (4, 7, 0, 1, 1));
    assert_eq!(hosts[0], healthy, "a healthy host is untouched");
    assert_eq!(hosts[1], healthy, "the damaged host holds the remote record again");
    assert!(store.poll(T1, Seq(5), usize::MAX).is_empty(), "a repair adds nothing to the log");
}

#[test]
fn a_lagging_host_is_not_a_mismatch() {
    let (mut store, mut hosts) = replicated();
    // A newer version the hosts have not polled yet.
    write(&mut store, 1, record(2, Lifecycle::Active, b"new"));
    let mut verifier = Verifier::new(config(2, 10), Time(0));
    run(&mut verifier, &mut store, &mut hosts, 100, |_: &VerifyOutput| false, |_, _, _| {});
    let stats = verifier.stats();
    assert_eq!((stats.lagging, stats.mismatches, stats.repairs), (2, 0, 0));
}

#[test]
fn a_repair_that_replication_overtook_never_moves_the_host_back() {
    let (mut store, mut hosts) = replicated();
    damage(&mut hosts[0], 0);
    let mut verifier = Verifier::new(config(2, 10), Time(0));
    run(
        &mut verifier,
        &mut store,
        &mut hosts,
        100,
        |_: &VerifyOutput| false,
        |store, hosts, output| {
            if matches!(output, VerifyOutput::Repair { .. }) {
                // A live write reaches the damaged host before the repair does.
                write(store, 0, record(2, Lifecycle::Active, b"live"));
                assert_eq!(catch_up(&mut hosts[0], store), vec![ApplyEffect::Applied]);
            }
        },
    );
    let stats = verifier.stats();
    assert_eq!((stats.mismatches, stats.repairs), (1, 0), "the repair found nothing left to repair");
    assert_eq!(hosts[0].version(SecretId(0)), Version(2));
    assert_eq!(hosts[0].record(SecretId(0)).and_then(|record| record.content.clone()), Some(Content::new(b"live")));
}

#[test]
fn a_host_that_does_not_answer_holds_the_page_until_it_does() {
    let (mut store, mut hosts) = replicated();
    damage(&mut hosts[1], 1);
    let mut verifier = Verifier::new(config(2, 10), Time(0));
    // Host 1 loses its first digest request and its first repair request.
    let (mut digest_lost, mut repair_lost) = (false, false);
    let lose_two = |output: &VerifyOutput| match output {
        VerifyOutput::Digest { host: HostId(1), .. } if !digest_lost => {
            digest_lost = true;
            true
        }
        VerifyOutput::Repair { .. } if !repair_lost => {
            repair_lost = true;
            true
        }
        _ => false,
    };
    let mut repairs_sent = 0;
    run(&mut verifier, &mut store, &mut hosts, 100, lose_two, |_, _, output| {
        repairs_sent += u32::from(matches!(output, VerifyOutput::Repair { .. }));
    });
    assert!(verifier.is_done());
    let stats = verifier.stats();
    assert_eq!((stats.host_timeouts, stats.repairs, repairs_sent), (2, 1, 2), "host 1 was verified and repaired");
    assert_eq!(hosts[1], hosts[0]);
}

#[test]
fn a_restart_resumes_after_the_last_committed_page() {
    let (mut store, mut hosts) = replicated();
    let mut first = Verifier::new(config(2, 2), Time(0));
    // Bookmark, scan, two digests, commit: page one; then page two's scan.
    run(&mut first, &mut store, &mut hosts, 6, |_: &VerifyOutput| false, |_, _, _| {});
    assert_eq!(first.stats().keys_compared, 2);
    let mut second = Verifier::new(config(2, 2), Time(0));
    run(&mut second, &mut store, &mut hosts, 100, |_: &VerifyOutput| false, |_, _, _| {});
    assert!(second.is_done());
    assert_eq!(second.stats().keys_compared, 2, "the committed page is not compared again");
}

#[test]
fn the_budget_must_cover_every_host_of_a_page() {
    let mut config = config(3, 2);
    config.budget = Some(BucketConfig::per_interval(2, MS));
    let refused = std::panic::catch_unwind(|| Verifier::new(config, Time(0)));
    assert!(refused.is_err(), "a budget whose burst cannot ask every host would never send a page");
}

#[test]
fn the_budget_spaces_requests() {
    let (mut store, mut hosts) = replicated();
    let mut config = config(2, 1);
    config.budget = Some(BucketConfig { rate: 2, interval_ns: 10 * MS, burst: 2 });
    let mut verifier = Verifier::new(config, Time(0));
    run(&mut verifier, &mut store, &mut hosts, 1_000, |_: &VerifyOutput| false, |_, _, _| {});
    assert!(verifier.is_done());
    assert!(verifier.stats().throttled > 0);
}
