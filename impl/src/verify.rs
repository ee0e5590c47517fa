//! The verifier of live migration's phase 3: a one-time pass that compares
//! every remote secret with every host's copy and repairs real mismatches.
//!
//! The verifier walks the secrets table in key order, a page of `page_keys`
//! keys at a time from a persisted bookmark, like the backfiller. For each page
//! it asks every host for a digest of those secrets ([`DigestEntry`]: the
//! local version and the checksum of the local bytes as they are) and
//! compares, version-aware ([`compare`]):
//!
//! * the host holds an older version, or nothing: **lag**, replication has not
//!   reached it yet; not a mismatch;
//! * the host holds a newer version than the page read: the store moved on
//!   since the scan; also lag;
//! * the same version with the same checksum: a **match**;
//! * the same version with another checksum: a **mismatch** (a damaged local
//!   entry).
//!
//! A mismatch is repaired by sending that host the remote record; the host
//! replaces its entry only by a record of the same version that differs from
//! it ([`crate::host::LocalStore::repair`]), so a repair never moves a host
//! back, even if replication moved it on meanwhile (MIG-4). Repairs go to the
//! host directly, not through the log: only the damaged host needs the
//! record, and a live event never repeats a secret's version (REP-4).
//!
//! A page is done when every host answered its digest and every repair was
//! acknowledged; then the bookmark moves past it, in a commit that reads the
//! bookmark at the version read, so two incarnations never both move it and a
//! crash loses at most the page in progress (MIG-3). A host that does not
//! answer in time (down, cut off) makes the page start over after
//! `retry_delay_ns`: the pass waits for it rather than skip it (MIG-5). Every
//! store and host request takes a token from the budget first.
//!
//! Call protocol: [`Verifier::on_timer`], [`Verifier::on_store_reply`],
//! [`Verifier::on_digest`], [`Verifier::on_repaired`]; drain
//! [`Verifier::poll_output`].

use std::collections::{BTreeMap, VecDeque};

#[cfg(feature = "bugzoo")]
use crate::bugzoo::Bug;
use crate::bugzoo::Bugs;
use crate::host::DigestEntry;
use crate::quota::{BucketConfig, TokenBucket};
use crate::store::{BookmarkId, CommitOutcome, Key, ReadEntry, ScanPage, StoreReply, StoreRequest, Transaction};
use crate::store::{Value, Write};
use crate::types::{Checksum, HostId, RequestTag, SecretId, SecretRecord, Time};
use crate::walk::{self, Bookmark};

/// Limits and knobs of a verifier.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VerifyConfig {
    /// Where the bookmark is persisted.
    pub bookmark: BookmarkId,
    /// The hosts to verify.
    pub hosts: Vec<HostId>,
    /// Keys compared per page; the bookmark is persisted after every page.
    pub page_keys: usize,
    /// The budget of requests (store and host alike); its burst must cover
    /// asking every host at once. `None`: unlimited (no waiting at all).
    pub budget: Option<BucketConfig>,
    /// How long to wait for a reply.
    pub request_timeout_ns: u64,
    /// How long to wait before redoing a page a host did not answer.
    pub retry_delay_ns: u64,
}

/// What a verifier asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VerifyOutput {
    /// Send `request` to the store.
    Store {
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The request.
        request: StoreRequest,
    },
    /// Ask `host` for the digest of `secrets` (answer with [`Verifier::on_digest`]).
    Digest {
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The host asked.
        host: HostId,
        /// The secrets, in key order.
        secrets: Vec<SecretId>,
    },
    /// Ask `host` to repair its entry of `secret` with `record` (answer with
    /// [`Verifier::on_repaired`]).
    Repair {
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The host with the damaged entry.
        host: HostId,
        /// The secret.
        secret: SecretId,
        /// The remote record, at the version the host holds.
        record: SecretRecord,
    },
    /// Call [`Verifier::on_timer`] at or after `deadline`.
    Timer {
        /// When to wake the verifier.
        deadline: Time,
    },
    /// The pass reached the end of the secrets table.
    Done,
}

/// Counters a verifier keeps for reports (pages whose bookmark committed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VerifyStats {
    /// Secrets compared.
    pub keys_compared: u64,
    /// (host, secret) pairs that matched.
    pub matches: u64,
    /// (host, secret) pairs where the host was behind (or ahead of the scan).
    pub lagging: u64,
    /// (host, secret) pairs at one version with different checksums.
    pub mismatches: u64,
    /// Repairs a host acknowledged as applied.
    pub repairs: u64,
    /// Pages redone because the bookmark moved under them.
    pub conflicts: u64,
    /// Pages redone because a host did not answer in time.
    pub host_timeouts: u64,
    /// Times the verifier waited for a token.
    pub throttled: u64,
}

/// How one host's copy of one secret compares with the remote record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Comparison {
    /// Same version, same checksum.
    Match,
    /// The host is behind (or holds nothing yet), or ahead of the page's scan.
    Lag,
    /// Same version, different checksum: the host's entry is damaged.
    Mismatch,
}

/// Compares a host's digest entry with the remote record it should hold.
pub fn compare(remote: &SecretRecord, host: Option<DigestEntry>) -> Comparison {
    let Some(host) = host else { return Comparison::Lag };
    if host.version != remote.version {
        return Comparison::Lag;
    }
    let remote_checksum = remote.content.as_ref().map(|content| Checksum::of(content.bytes()));
    if host.checksum == remote_checksum {
        Comparison::Match
    } else {
        Comparison::Mismatch
    }
}

/// The comparisons and repairs of one page, counted when its bookmark commits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Tally {
    matches: u64,
    lagging: u64,
    mismatches: u64,
    repairs: u64,
}

/// One host's digest of a page.
type Digest = Vec<(SecretId, Option<DigestEntry>)>;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    /// The next request to send when a token allows.
    Ready(Next),
    /// Host requests (digests or a repair) are outstanding; the hosts still
    /// to answer are in `Verifier::asked`.
    Hosts { work: Next, abandon_at: Time },
    /// A store request is outstanding.
    Store { tag: RequestTag, abandon_at: Time, work: Next },
    /// Waiting before redoing a page.
    Backoff { until: Time },
    /// The pass is finished.
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Next {
    ReadBookmark,
    Scan,
    /// Ask every host for the page's digests (one token each).
    Digests {
        page: ScanPage,
        answers: BTreeMap<HostId, Digest>,
    },
    /// Send the first repair of `repairs`, then the rest one by one.
    Repair {
        page: ScanPage,
        repairs: VecDeque<(HostId, SecretId, SecretRecord)>,
        tally: Tally,
    },
    /// Move the bookmark past the page.
    Commit {
        page: ScanPage,
        tally: Tally,
    },
}

/// The verifier. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Verifier {
    config: VerifyConfig,
    bucket: Option<TokenBucket>,
    step: Step,
    /// Outstanding host requests of the current page, by tag.
    asked: BTreeMap<RequestTag, HostId>,
    bookmark: Option<Bookmark>,
    next_tag: RequestTag,
    outputs: VecDeque<VerifyOutput>,
    stats: VerifyStats,
    bugs: Bugs,
}

impl Verifier {
    /// A verifier (a fresh incarnation) that starts by reading its bookmark at `now`.
    pub fn new(config: VerifyConfig, now: Time) -> Verifier {
        assert!(config.page_keys > 0, "a page holds at least one key");
        assert!(config.request_timeout_ns > 0 && config.retry_delay_ns > 0, "zero waits spin");
        assert!(
            config.budget.is_none_or(|budget| config.hosts.len() as u64 <= budget.burst),
            "asking every host of a page takes one token each: the budget's burst must cover the hosts"
        );
        let bucket = config
            .budget
            .map(|budget| TokenBucket::new(budget).unwrap_or_else(|field| panic!("verify budget: {field}")));
        let mut verifier = Verifier {
            config,
            bucket,
            step: Step::Ready(Next::ReadBookmark),
            asked: BTreeMap::new(),
            bookmark: None,
            next_tag: RequestTag::default(),
            outputs: VecDeque::new(),
            stats: VerifyStats::default(),
            bugs: Bugs::none(),
        };
        verifier.outputs.push_back(VerifyOutput::Timer { deadline: now });
        verifier
    }

    /// The same verifier running bug-zoo variants (none outside the bug zoo).
    pub fn with_bugs(mut self, bugs: Bugs) -> Verifier {
        self.bugs = bugs;
        self
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<VerifyOutput> {
        self.outputs.pop_front()
    }

    /// Counters for reports.
    pub fn stats(&self) -> VerifyStats {
        self.stats
    }

    /// Whether the pass is finished.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// The timer may have expired: abandon what timed out, or send what is due.
    pub fn on_timer(&mut self, now: Time) {
        match &self.step {
            Step::Store { abandon_at, .. } | Step::Hosts { abandon_at, .. } | Step::Backoff { until: abandon_at }
                if now < *abandon_at =>
            {
                // Woken early: the fired timer is gone, so arm the deadline again.
                self.outputs.push_back(VerifyOutput::Timer { deadline: *abandon_at });
            }
            Step::Store { .. } | Step::Backoff { .. } => self.send(now, Next::ReadBookmark),
            Step::Hosts { .. } => {
                // A host did not answer: redo the page after a pause.
                self.stats.host_timeouts += 1;
                self.asked.clear();
                let until = now.plus_ns(self.config.retry_delay_ns);
                self.step = Step::Backoff { until };
                self.outputs.push_back(VerifyOutput::Timer { deadline: until });
            }
            Step::Ready(next) => {
                let next = next.clone();
                self.send(now, next);
            }
            Step::Done => {}
        }
        self.check_invariants();
    }

    /// The store answered the request tagged `tag`.
    pub fn on_store_reply(&mut self, now: Time, tag: RequestTag, reply: StoreReply) {
        let Step::Store { tag: expected, work, .. } = &self.step else { return };
        if *expected != tag {
            return; // A late reply to an abandoned request.
        }
        match (work.clone(), reply) {
            (Next::ReadBookmark, StoreReply::Read(entries)) => self.on_bookmark(now, &entries),
            (Next::Scan, StoreReply::Scan(page)) => self.on_page(now, page),
            (Next::Commit { page, tally }, StoreReply::Commit(outcome)) => self.on_commit(now, &page, tally, &outcome),
            (work, reply) => panic!("store answered {work:?} with {reply:?}"),
        }
        self.check_invariants();
    }

    /// A host answered the digest request tagged `tag`.
    pub fn on_digest(&mut self, now: Time, tag: RequestTag, digest: Digest) {
        let Some(host) = self.asked.remove(&tag) else { return }; // Late or unknown.
        let Step::Hosts { work: Next::Digests { answers, .. }, .. } = &mut self.step else {
            panic!("a digest answered outside a page's digests");
        };
        answers.insert(host, digest);
        if self.asked.is_empty() {
            let Step::Hosts { work: Next::Digests { page, answers }, .. } =
                std::mem::replace(&mut self.step, Step::Done)
            else {
                unreachable!("matched above")
            };
            self.on_digests(now, page, &answers);
        }
        self.check_invariants();
    }

    /// A host answered the repair request tagged `tag`: `replaced` tells
    /// whether its entry was damaged and is now repaired.
    pub fn on_repaired(&mut self, now: Time, tag: RequestTag, replaced: bool) {
        if self.asked.remove(&tag).is_none() {
            return; // Late or unknown.
        }
        let Step::Hosts { work: Next::Repair { page, mut repairs, mut tally }, .. } =
            std::mem::replace(&mut self.step, Step::Done)
        else {
            panic!("a repair answered outside a page's repairs");
        };
        repairs.pop_front();
        tally.repairs += u64::from(replaced);
        self.next_repair(now, page, repairs, tally);
        self.check_invariants();
    }

    fn on_bookmark(&mut self, now: Time, entries: &[ReadEntry]) {
        let bookmark = Bookmark::from_entries(self.config.bookmark, entries);
        self.bookmark = Some(bookmark);
        if bookmark.is_done() {
            self.finish();
        } else {
            self.send(now, Next::Scan);
        }
    }

    fn on_page(&mut self, now: Time, page: ScanPage) {
        assert!(page.rows.len() <= self.config.page_keys, "store sent more rows than asked");
        if page.rows.is_empty() || self.config.hosts.is_empty() {
            self.on_digests(now, page, &BTreeMap::new());
        } else {
            self.send(now, Next::Digests { page, answers: BTreeMap::new() });
        }
    }

    fn on_digests(&mut self, now: Time, page: ScanPage, answers: &BTreeMap<HostId, Digest>) {
        let mut repairs = VecDeque::new();
        let mut tally = Tally::default();
        for row in &page.rows {
            let (Key::Secret(secret), Some(Value::Secret(record))) = (row.key, &row.value) else {
                panic!("a secrets scan returned {row:?}");
            };
            for (host, digest) in answers {
                let entry = digest.iter().find(|(asked, _)| *asked == secret).map(|(_, entry)| *entry);
                match self.compare(record, entry.expect("a digest answers every secret asked")) {
                    Comparison::Match => tally.matches += 1,
                    Comparison::Lag => tally.lagging += 1,
                    Comparison::Mismatch => {
                        tally.mismatches += 1;
                        repairs.push_back((*host, secret, record.clone()));
                    }
                }
            }
        }
        self.next_repair(now, page, repairs, tally);
    }

    /// How the verifier judges one host's digest entry against the remote record.
    fn compare(&self, remote: &SecretRecord, host: Option<DigestEntry>) -> Comparison {
        #[cfg(feature = "bugzoo")]
        if self.bugs.is_on(Bug::VersionBlindVerifier) {
            // Bug: anything but the remote version with its checksum is a mismatch, lag included.
            let checksum = remote.content.as_ref().map(|content| Checksum::of(content.bytes()));
            let same = host == Some(DigestEntry { version: remote.version, checksum });
            return if same { Comparison::Match } else { Comparison::Mismatch };
        }
        compare(remote, host)
    }

    /// Sends the next repair of the page, or commits the page when none is left.
    fn next_repair(
        &mut self,
        now: Time,
        page: ScanPage,
        repairs: VecDeque<(HostId, SecretId, SecretRecord)>,
        tally: Tally,
    ) {
        if repairs.is_empty() {
            self.send(now, Next::Commit { page, tally });
        } else {
            self.send(now, Next::Repair { page, repairs, tally });
        }
    }

    fn on_commit(&mut self, now: Time, page: &ScanPage, tally: Tally, outcome: &CommitOutcome) {
        match outcome {
            CommitOutcome::Committed { commit, .. } => {
                self.stats.keys_compared += page.rows.len() as u64;
                self.stats.matches += tally.matches;
                self.stats.lagging += tally.lagging;
                self.stats.mismatches += tally.mismatches;
                self.stats.repairs += tally.repairs;
                let bookmark = Bookmark { value: walk::past(page), version: *commit };
                self.bookmark = Some(bookmark);
                if bookmark.is_done() {
                    self.finish();
                } else {
                    self.send(now, Next::Scan);
                }
            }
            CommitOutcome::Conflict { .. } => {
                // Another incarnation moved the bookmark: continue from where it is.
                self.stats.conflicts += 1;
                self.send(now, Next::ReadBookmark);
            }
            CommitOutcome::Invalid(invalid) => panic!("verifier built an invalid transaction: {invalid:?}"),
        }
    }

    fn finish(&mut self) {
        self.step = Step::Done;
        self.outputs.push_back(VerifyOutput::Done);
    }

    /// Sends `next` if the budget has tokens for it; otherwise sleeps until it has.
    fn send(&mut self, now: Time, next: Next) {
        let tokens = match &next {
            Next::Digests { .. } => self.config.hosts.len() as u64,
            _ => 1,
        };
        let taken = self.bucket.as_mut().map_or(Ok(()), |bucket| bucket.try_take(now, tokens));
        if let Err(shortfall) = taken {
            self.stats.throttled += 1;
            self.step = Step::Ready(next);
            self.outputs.push_back(VerifyOutput::Timer { deadline: now.plus_ns(shortfall.retry_after_ns) });
            return;
        }
        let abandon_at = now.plus_ns(self.config.request_timeout_ns);
        match &next {
            Next::Digests { page, .. } => {
                let secrets: Vec<SecretId> = page.rows.iter().map(|row| walk::secret_of(row.key)).collect();
                for host in &self.config.hosts {
                    let tag = self.next_tag.take_next();
                    self.asked.insert(tag, *host);
                    self.outputs.push_back(VerifyOutput::Digest { tag, host: *host, secrets: secrets.clone() });
                }
                self.step = Step::Hosts { work: next, abandon_at };
            }
            Next::Repair { repairs, .. } => {
                let (host, secret, record) = repairs.front().cloned().expect("a repair to send");
                let tag = self.next_tag.take_next();
                self.asked.insert(tag, host);
                self.outputs.push_back(VerifyOutput::Repair { tag, host, secret, record });
                self.step = Step::Hosts { work: next, abandon_at };
            }
            _ => {
                let request = self.request(&next);
                let tag = self.next_tag.take_next();
                self.outputs.push_back(VerifyOutput::Store { tag, request });
                self.step = Step::Store { tag, abandon_at, work: next };
            }
        }
        self.outputs.push_back(VerifyOutput::Timer { deadline: abandon_at });
    }

    fn request(&self, next: &Next) -> StoreRequest {
        match next {
            Next::ReadBookmark => Bookmark::read(self.config.bookmark),
            Next::Scan => self.bookmark.expect("a scan follows a bookmark read").scan(self.config.page_keys),
            Next::Commit { page, .. } => {
                let bookmark = self.bookmark.expect("a commit follows a bookmark read");
                let key = Key::Bookmark(self.config.bookmark);
                let write = Write::Put(key, Value::Bookmark(walk::past(page)));
                StoreRequest::Commit(Transaction { reads: vec![(key, bookmark.version)], writes: vec![write] })
            }
            Next::Digests { .. } | Next::Repair { .. } => panic!("hosts are not asked through the store"),
        }
    }

    /// Asserts the verifier's invariants.
    pub fn check_invariants(&self) {
        let hosts_outstanding = matches!(self.step, Step::Hosts { .. });
        assert_eq!(!self.asked.is_empty(), hosts_outstanding, "hosts are asked exactly while a page waits for them");
        if let Step::Hosts { work: Next::Repair { .. }, .. } = self.step {
            assert_eq!(self.asked.len(), 1, "one repair at a time");
        }
        if self.step == Step::Done {
            assert!(self.bookmark.is_some_and(Bookmark::is_done), "done only at the finished bookmark");
        }
        if let Some(bucket) = &self.bucket {
            bucket.check_invariants();
        }
    }
}

#[cfg(test)]
mod tests;
