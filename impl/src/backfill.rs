//! The backfiller of live migration's phase 2: replicates the secrets that
//! were last mutated before replication was switched on.
//!
//! From `t1` on (phase 1, sync) every mutation emits a replication event, but
//! a secret last written before `t1` has never been in the log. The backfiller
//! walks the secrets table in key order, a page of `page_keys` keys at a time,
//! and for each secret whose entry was last committed at or before `t1` emits
//! an event carrying the record it read, through the same [`Interceptor`] as a
//! live write. `t1` is a [`CommitSeq`], the last commit made without
//! replication: every later commit emitted its own event, so entries
//! committed after it are skipped.
//!
//! One page is one transaction: the events of the page and the bookmark that
//! moves past it commit together, and the transaction reads every emitted
//! secret at the version scanned and the bookmark at the version read. So:
//!
//! * a live write to a secret of the page between the scan and the commit
//!   makes the page conflict; the page is scanned again, and the secret, now
//!   mutated since `t1`, is skipped: a backfill event never carries an older
//!   record than a live event committed before it (MIG-1), and a deleted
//!   secret's tombstone is a record like any other, so no backfill
//!   resurrects it;
//! * a crash loses at most the page in progress: after a restart the
//!   backfiller reads its bookmark and resumes after the last committed page
//!   (MIG-3); two incarnations racing on one bookmark conflict;
//! * tombstones older than `t1` are emitted too, so hosts converge on the
//!   store's contents exactly.
//!
//! Every store request takes a token from a [`TokenBucket`] first (THR-3):
//! the backfiller never sends faster than its budget, whatever the store
//! answers. Without a token it sleeps until one is due. A fresh incarnation's
//! bucket starts empty, not full: a restart (after a crash, or when a
//! rollback brings the phase back to `Backfill`) must not hand the job a new
//! burst, or a job that restarts often would send more than its budget.
//!
//! Call protocol: [`Backfiller::on_timer`], [`Backfiller::on_store_reply`];
//! drain [`Backfiller::poll_output`].

use std::collections::{BTreeSet, VecDeque};

#[cfg(feature = "bugzoo")]
use crate::bugzoo::Bug;
use crate::bugzoo::Bugs;
use crate::interceptor::{Interceptor, InterceptorMode};
use crate::quota::{BucketConfig, TokenBucket};
use crate::store::{BookmarkId, CommitOutcome, Key, ReadEntry, ScanPage, StoreReply, StoreRequest, Transaction};
use crate::store::{Value, Write};
use crate::types::{CommitSeq, Mutation, RequestTag, TenantId, Time};
use crate::walk::{self, Bookmark};

/// Limits and knobs of a backfiller.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackfillConfig {
    /// Where the bookmark is persisted.
    pub bookmark: BookmarkId,
    /// `t1`: the last commit before replication was switched on. Entries
    /// committed after it are skipped.
    pub since: CommitSeq,
    /// How events are emitted (as the live writers do).
    pub mode: InterceptorMode,
    /// Keys scanned per page; the bookmark is persisted after every page.
    pub page_keys: usize,
    /// The budget of store requests; `None`: unlimited (no waiting at all).
    pub budget: Option<BucketConfig>,
    /// How long to wait for a store reply.
    pub request_timeout_ns: u64,
}

/// What a backfiller asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackfillOutput {
    /// Send `request` to the store.
    Store {
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The request.
        request: StoreRequest,
    },
    /// Call [`Backfiller::on_timer`] at or after `deadline`.
    Timer {
        /// When to wake the backfiller.
        deadline: Time,
    },
    /// The walk reached the end of the secrets table (reported once per
    /// incarnation, also when it starts from a finished bookmark).
    Done,
}

/// Counters a backfiller keeps for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackfillStats {
    /// Keys scanned in committed pages.
    pub keys_scanned: u64,
    /// Events emitted in committed pages.
    pub events_emitted: u64,
    /// Secrets skipped because they were mutated since `t1`, in committed pages.
    pub skipped_live: u64,
    /// Pages refused with a conflict (and redone).
    pub conflicts: u64,
    /// Store requests sent (each took one token).
    pub requests: u64,
    /// Times the backfiller waited for a token.
    pub throttled: u64,
}

/// Where the walk is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    /// Nothing outstanding; the next request is `next`.
    Ready(Next),
    /// Waiting for the reply to a request.
    Waiting(Pending),
    /// The walk is finished.
    Done,
}

/// The request to send when a token allows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Next {
    ReadBookmark,
    Scan,
    ReadHeads { page: ScanPage },
    Commit { page: ScanPage, heads: Vec<ReadEntry> },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Pending {
    tag: RequestTag,
    abandon_at: Time,
    /// What the request was.
    next: Next,
}

/// The backfiller. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Backfiller {
    config: BackfillConfig,
    interceptor: Interceptor,
    bucket: Option<TokenBucket>,
    step: Step,
    /// The bookmark as last read or committed.
    bookmark: Option<Bookmark>,
    next_tag: RequestTag,
    outputs: VecDeque<BackfillOutput>,
    stats: BackfillStats,
    bugs: Bugs,
}

impl Backfiller {
    /// A backfiller (a fresh incarnation) that starts by reading its bookmark
    /// at `now`, as soon as its budget, empty at `now`, has a token.
    pub fn new(config: BackfillConfig, now: Time) -> Backfiller {
        assert!(config.page_keys > 0, "a page holds at least one key");
        assert!(config.request_timeout_ns > 0, "a zero timeout abandons every request");
        let bucket = config
            .budget
            .map(|budget| TokenBucket::empty(budget, now).unwrap_or_else(|field| panic!("backfill budget: {field}")));
        let interceptor = Interceptor { mode: config.mode };
        let mut backfiller = Backfiller {
            config,
            interceptor,
            bucket,
            step: Step::Ready(Next::ReadBookmark),
            bookmark: None,
            next_tag: RequestTag::default(),
            outputs: VecDeque::new(),
            stats: BackfillStats::default(),
            bugs: Bugs::none(),
        };
        backfiller.outputs.push_back(BackfillOutput::Timer { deadline: now });
        backfiller
    }

    /// The same backfiller running bug-zoo variants (none outside the bug zoo).
    pub fn with_bugs(mut self, bugs: Bugs) -> Backfiller {
        self.bugs = bugs;
        self
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<BackfillOutput> {
        self.outputs.pop_front()
    }

    /// Counters for reports.
    pub fn stats(&self) -> BackfillStats {
        self.stats
    }

    /// Whether the walk is finished.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// The timer may have expired: abandon a request that timed out, or send
    /// the next request if a token is available.
    pub fn on_timer(&mut self, now: Time) {
        if let Step::Waiting(pending) = &self.step {
            if now < pending.abandon_at {
                // Woken early: the fired timer is gone, so arm the abandon deadline again.
                self.outputs.push_back(BackfillOutput::Timer { deadline: pending.abandon_at });
                return;
            }
            // A timed-out commit may still land: start the page over from the
            // bookmark, whose version tells whether it did.
            self.step = Step::Ready(Next::ReadBookmark);
        }
        if let Step::Ready(next) = &self.step {
            let next = next.clone();
            self.send(now, next);
        }
        self.check_invariants();
    }

    /// The store answered the request tagged `tag`.
    pub fn on_store_reply(&mut self, now: Time, tag: RequestTag, reply: StoreReply) {
        let Step::Waiting(pending) = &self.step else { return };
        if pending.tag != tag {
            return; // A late reply to an abandoned request.
        }
        let next = pending.next.clone();
        match (next, reply) {
            (Next::ReadBookmark, StoreReply::Read(entries)) => self.on_bookmark(now, &entries),
            (Next::Scan, StoreReply::Scan(page)) => self.on_page(now, page),
            (Next::ReadHeads { page }, StoreReply::Read(heads)) => self.send(now, Next::Commit { page, heads }),
            (Next::Commit { page, .. }, StoreReply::Commit(outcome)) => self.on_commit(now, &page, &outcome),
            (next, reply) => panic!("store answered {next:?} with {reply:?}"),
        }
        self.check_invariants();
    }

    fn on_bookmark(&mut self, now: Time, entries: &[ReadEntry]) {
        #[cfg_attr(not(feature = "bugzoo"), allow(unused_mut))]
        let mut bookmark = Bookmark::from_entries(self.config.bookmark, entries);
        #[cfg(feature = "bugzoo")]
        if self.bugs.is_on(Bug::VolatileBookmark) {
            // Bug: the position lives in memory (the start, for a fresh
            // incarnation); the stored bookmark lends only its version.
            bookmark.value = self.bookmark.map_or(0, |held| held.value);
        }
        self.bookmark = Some(bookmark);
        if bookmark.is_done() {
            self.finish();
        } else {
            self.send(now, Next::Scan);
        }
    }

    fn on_page(&mut self, now: Time, page: ScanPage) {
        assert!(page.rows.len() <= self.config.page_keys, "store sent more rows than asked");
        let tenants = self.emitted_tenants(&page);
        if tenants.is_empty() || self.config.mode == InterceptorMode::Async {
            self.send(now, Next::Commit { page, heads: Vec::new() });
        } else {
            self.send(now, Next::ReadHeads { page });
        }
    }

    fn on_commit(&mut self, now: Time, page: &ScanPage, outcome: &CommitOutcome) {
        match outcome {
            CommitOutcome::Committed { commit, .. } => {
                let emitted = self.emitted(page).count() as u64;
                self.stats.keys_scanned += page.rows.len() as u64;
                self.stats.events_emitted += emitted;
                self.stats.skipped_live += page.rows.len() as u64 - emitted;
                let bookmark = Bookmark { value: walk::past(page), version: *commit };
                self.bookmark = Some(bookmark);
                if bookmark.is_done() {
                    self.finish();
                } else {
                    self.send(now, Next::Scan);
                }
            }
            CommitOutcome::Conflict { .. } => {
                // A live write or another incarnation got there first: read
                // the bookmark again and redo the page from there.
                self.stats.conflicts += 1;
                self.send(now, Next::ReadBookmark);
            }
            CommitOutcome::Invalid(invalid) => panic!("backfiller built an invalid transaction: {invalid:?}"),
        }
    }

    fn finish(&mut self) {
        self.step = Step::Done;
        self.outputs.push_back(BackfillOutput::Done);
    }

    /// Sends `next` if the budget has a token; otherwise sleeps until it has.
    fn send(&mut self, now: Time, next: Next) {
        #[cfg(feature = "bugzoo")]
        let throttled = !self.bugs.is_on(Bug::UnthrottledBackfill); // Bug: no token taken.
        #[cfg(not(feature = "bugzoo"))]
        let throttled = true;
        let taken = match &mut self.bucket {
            Some(bucket) if throttled => bucket.try_take(now, 1),
            _ => Ok(()),
        };
        if let Err(shortfall) = taken {
            self.stats.throttled += 1;
            self.step = Step::Ready(next);
            self.outputs.push_back(BackfillOutput::Timer { deadline: now.plus_ns(shortfall.retry_after_ns) });
            return;
        }
        let request = self.request(&next);
        let tag = self.next_tag.take_next();
        let abandon_at = now.plus_ns(self.config.request_timeout_ns);
        self.stats.requests += 1;
        self.step = Step::Waiting(Pending { tag, abandon_at, next });
        self.outputs.push_back(BackfillOutput::Store { tag, request });
        self.outputs.push_back(BackfillOutput::Timer { deadline: abandon_at });
    }

    fn request(&self, next: &Next) -> StoreRequest {
        match next {
            Next::ReadBookmark => Bookmark::read(self.config.bookmark),
            Next::Scan => self.bookmark.expect("a scan follows a bookmark read").scan(self.config.page_keys),
            Next::ReadHeads { page } => {
                let tenants = self.emitted_tenants(page);
                StoreRequest::Read { keys: tenants.into_iter().map(Key::LogHead).collect() }
            }
            Next::Commit { page, heads } => StoreRequest::Commit(self.page_transaction(page, heads)),
        }
    }

    /// The page's events and the bookmark past it, validated against every
    /// version they depend on.
    fn page_transaction(&self, page: &ScanPage, heads: &[ReadEntry]) -> Transaction {
        let bookmark = self.bookmark.expect("a commit follows a bookmark read");
        let key = Key::Bookmark(self.config.bookmark);
        let mut transaction = Transaction { reads: vec![(key, bookmark.version)], writes: Vec::new() };
        #[cfg(feature = "bugzoo")]
        let validate_rows = !self.bugs.is_on(Bug::UnconditionalBackfillEvents); // Bug: rows not validated.
        #[cfg(not(feature = "bugzoo"))]
        let validate_rows = true;
        for (row, mutation) in self.emitted(page) {
            if validate_rows {
                transaction.reads.push((row.key, row.version));
            }
            let head = heads.iter().find(|head| head.key == Key::LogHead(mutation.record.tenant));
            self.interceptor.on_mutation(&mut transaction, mutation, head);
        }
        transaction.writes.push(Write::Put(key, Value::Bookmark(walk::past(page))));
        transaction
    }

    /// Asserts the backfiller's invariants.
    pub fn check_invariants(&self) {
        let next = match &self.step {
            Step::Ready(next) | Step::Waiting(Pending { next, .. }) => Some(next),
            Step::Done => None,
        };
        if next.is_some_and(|next| *next != Next::ReadBookmark) {
            assert!(self.bookmark.is_some(), "a page is worked on only after the bookmark was read");
        }
        if self.step == Step::Done {
            assert!(self.bookmark.is_some_and(Bookmark::is_done), "done only at the finished bookmark");
        }
        if let Some(bucket) = &self.bucket {
            bucket.check_invariants();
        }
    }

    /// The rows of `page` this backfiller emits, with their mutations.
    fn emitted<'a>(&self, page: &'a ScanPage) -> impl Iterator<Item = (&'a ReadEntry, Mutation)> {
        #[cfg(feature = "bugzoo")]
        if self.bugs.is_on(Bug::UnconditionalBackfillEvents) {
            // Bug: every row is emitted, also one mutated (and replicated) since `t1`.
            return emitted(page, CommitSeq(u64::MAX));
        }
        emitted(page, self.config.since)
    }

    fn emitted_tenants(&self, page: &ScanPage) -> BTreeSet<TenantId> {
        self.emitted(page).map(|(_, mutation)| mutation.record.tenant).collect()
    }
}

/// The rows of `page` the backfiller emits (last committed at or before
/// `since`) with their mutations.
fn emitted(page: &ScanPage, since: CommitSeq) -> impl Iterator<Item = (&ReadEntry, Mutation)> {
    page.rows.iter().filter(move |row| row.version <= since).map(|row| {
        let (Key::Secret(secret), Some(Value::Secret(record))) = (row.key, &row.value) else {
            panic!("a secrets scan returned {row:?}");
        };
        (row, Mutation { secret, record: record.clone() })
    })
}

#[cfg(test)]
mod tests;
