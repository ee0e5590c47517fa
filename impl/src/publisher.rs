//! The publisher of one log partition (`async` interceptor mode).
//!
//! One publisher runs per partition. Each round it reads the partition head and
//! the oldest outbox rows (commit order, at most `batch_events_max`), then
//! commits one transaction that deletes those rows and appends their mutations
//! to the log in the same order. The transaction carries the versions of the
//! head and of every row, so a round that raced anything (a second publisher
//! after a restart, a late commit of a crashed one) conflicts and writes
//! nothing: every row reaches the log exactly once, in commit order.
//!
//! The publisher keeps no durable state; the outbox is its queue. Call
//! protocol: [`Publisher::on_timer`], [`Publisher::on_store_reply`]; drain
//! [`Publisher::poll_output`].

use std::collections::VecDeque;

#[cfg(feature = "bugzoo")]
use crate::bugzoo::Bug;
use crate::bugzoo::Bugs;
use crate::store::{CommitOutcome, Key, ReadEntry, StoreReply, StoreRequest, Transaction, Value, Write};
use crate::types::{RequestTag, TenantId, Time};

/// Limits and knobs of a publisher.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublisherConfig {
    /// The partition published.
    pub tenant: TenantId,
    /// Most outbox rows moved per round.
    pub batch_events_max: usize,
    /// Time between rounds when the outbox is drained.
    pub publish_interval_ns: u64,
    /// How long to wait for a store reply.
    pub request_timeout_ns: u64,
}

impl PublisherConfig {
    /// A configuration for `tenant` with moderate limits.
    pub fn new(tenant: TenantId) -> PublisherConfig {
        PublisherConfig {
            tenant,
            batch_events_max: 32,
            publish_interval_ns: 5_000_000,
            request_timeout_ns: 200_000_000,
        }
    }
}

/// What a publisher asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PublisherOutput {
    /// Send `request` to the store.
    Store {
        /// Tag to return with the reply.
        tag: RequestTag,
        /// The request.
        request: StoreRequest,
    },
    /// Call [`Publisher::on_timer`] at or after `deadline`.
    Timer {
        /// When to wake the publisher.
        deadline: Time,
    },
}

/// Counters a publisher keeps for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublisherStats {
    /// Rows moved into the log.
    pub published: u64,
    /// Rounds refused with a conflict.
    pub conflicts: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Step {
    Idle,
    ReadOutbox,
    Commit { rows: usize },
}

/// The publisher of one partition. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Publisher {
    config: PublisherConfig,
    step: Step,
    /// The outstanding request, and when it is abandoned.
    in_flight: Option<(RequestTag, Time)>,
    next_round: Time,
    next_tag: RequestTag,
    outputs: VecDeque<PublisherOutput>,
    stats: PublisherStats,
    bugs: Bugs,
}

impl Publisher {
    /// A publisher whose first round is due at `now`.
    pub fn new(config: PublisherConfig, now: Time) -> Publisher {
        assert!(config.batch_events_max > 0, "a round moves at least one row");
        assert!(config.publish_interval_ns > 0, "a zero interval spins");
        let mut publisher = Publisher {
            config,
            step: Step::Idle,
            in_flight: None,
            next_round: now,
            next_tag: RequestTag::default(),
            outputs: VecDeque::new(),
            stats: PublisherStats::default(),
            bugs: Bugs::none(),
        };
        publisher.outputs.push_back(PublisherOutput::Timer { deadline: now });
        publisher
    }

    /// The same publisher running bug-zoo variants (none outside the bug zoo).
    pub fn with_bugs(mut self, bugs: Bugs) -> Publisher {
        self.bugs = bugs;
        self
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<PublisherOutput> {
        self.outputs.pop_front()
    }

    /// Counters for reports.
    pub fn stats(&self) -> PublisherStats {
        self.stats
    }

    /// The partition this publisher serves.
    pub fn tenant(&self) -> TenantId {
        self.config.tenant
    }

    /// The timer may have expired: start a round if one is due, or abandon a
    /// request that timed out.
    pub fn on_timer(&mut self, now: Time) {
        if let Some((_, abandon_at)) = self.in_flight {
            if now < abandon_at {
                // Woken early: the fired timer is gone, so arm the abandon deadline again.
                self.outputs.push_back(PublisherOutput::Timer { deadline: abandon_at });
                return;
            }
            // A timed-out commit may still land; the next round's versions
            // make a duplicate append impossible.
            self.in_flight = None;
            self.step = Step::Idle;
        }
        if now >= self.next_round {
            let request = StoreRequest::ReadOutbox { tenant: self.config.tenant, limit: self.config.batch_events_max };
            self.send(now, Step::ReadOutbox, request);
        } else {
            self.outputs.push_back(PublisherOutput::Timer { deadline: self.next_round });
        }
        self.check_invariants();
    }

    /// The store answered the request tagged `tag`.
    pub fn on_store_reply(&mut self, now: Time, tag: RequestTag, reply: StoreReply) {
        let Some((expected, _)) = self.in_flight else { return };
        if expected != tag {
            return; // A late reply to an abandoned request.
        }
        self.in_flight = None;
        match (self.step, reply) {
            (Step::ReadOutbox, StoreReply::Outbox { head, rows }) => self.on_outbox(now, &head, &rows),
            (Step::Commit { rows }, StoreReply::Commit(outcome)) => self.on_commit(now, rows, &outcome),
            (step, reply) => panic!("store answered {step:?} with {reply:?}"),
        }
        self.check_invariants();
    }

    fn on_outbox(&mut self, now: Time, head: &ReadEntry, rows: &[ReadEntry]) {
        assert_eq!(head.key, Key::LogHead(self.config.tenant), "head of another partition");
        assert!(rows.len() <= self.config.batch_events_max, "store sent more rows than asked");
        if rows.is_empty() {
            self.wait(now);
            return;
        }
        let mut transaction =
            Transaction { reads: vec![(head.key, head.version)], writes: Vec::with_capacity(rows.len() * 2) };
        for row in rows {
            let Some(Value::Outbox(mutation)) = &row.value else {
                panic!("outbox row {:?} holds {:?}", row.key, row.value);
            };
            assert_eq!(mutation.record.tenant, self.config.tenant, "row of another partition");
            transaction.reads.push((row.key, row.version));
            transaction.writes.push(Write::Delete(row.key));
            transaction.writes.push(Write::Append(mutation.clone()));
        }
        #[cfg(feature = "bugzoo")]
        if self.bugs.is_on(Bug::PublishWithoutReads) {
            // Bug: the round "just moves rows", so nothing it read is validated.
            transaction.reads.clear();
        }
        self.send(now, Step::Commit { rows: rows.len() }, StoreRequest::Commit(transaction));
    }

    fn on_commit(&mut self, now: Time, rows: usize, outcome: &CommitOutcome) {
        match outcome {
            CommitOutcome::Committed { appended, .. } => {
                assert_eq!(appended.len(), rows, "one append per row");
                self.stats.published += rows as u64;
                if rows == self.config.batch_events_max {
                    // The outbox may hold more: go again at once.
                    self.next_round = now;
                    self.on_timer(now);
                } else {
                    self.wait(now);
                }
            }
            CommitOutcome::Conflict { .. } => {
                self.stats.conflicts += 1;
                self.wait(now);
            }
            CommitOutcome::Invalid(invalid) => panic!("publisher built an invalid transaction: {invalid:?}"),
        }
    }

    fn wait(&mut self, now: Time) {
        self.step = Step::Idle;
        self.next_round = now.plus_ns(self.config.publish_interval_ns);
        self.outputs.push_back(PublisherOutput::Timer { deadline: self.next_round });
    }

    fn send(&mut self, now: Time, step: Step, request: StoreRequest) {
        let tag = self.next_tag.take_next();
        let abandon_at = now.plus_ns(self.config.request_timeout_ns);
        self.step = step;
        self.in_flight = Some((tag, abandon_at));
        self.outputs.push_back(PublisherOutput::Store { tag, request });
        self.outputs.push_back(PublisherOutput::Timer { deadline: abandon_at });
    }

    /// Asserts the publisher's invariants.
    pub fn check_invariants(&self) {
        assert_eq!(
            self.in_flight.is_some(),
            self.step != Step::Idle,
            "a request is outstanding exactly when a round is in progress"
        );
        if let Step::Commit { rows } = self.step {
            assert!(rows > 0 && rows <= self.config.batch_events_max, "commit of {rows} rows");
        }
    }
}

#[cfg(test)]
mod tests;
