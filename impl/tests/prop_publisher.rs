//! Property: whatever the interleaving of async-mode outbox inserts, sync-mode
//! appends, publisher rounds, racing publisher instances, crashes, reordered,
//! lost and late requests and replies, every outbox row reaches the log exactly
//! once and in commit order, and once a publisher runs undisturbed the outbox
//! drains.
//!
//! After every step a conservation law is checked: the rows already published
//! (in log order) followed by the rows still in the outbox (in key order) are
//! exactly the rows inserted (in commit order). A lost, duplicated or reordered
//! row breaks it at the step that did it.

#![cfg(not(loom))]

use proptest::prelude::*;
use vault::publisher::{Publisher, PublisherConfig, PublisherOutput};
use vault::store::{CommitOutcome, Store, StoreReply, StoreRequest, Transaction, Value, Write};
use vault::types::{
    Content, Lifecycle, Mutation, RequestTag, SecretId, SecretRecord, Seq, TenantId, Time, VaultId, Version,
};

const TENANT: TenantId = TenantId(1);
/// Secrets appended directly by sync-mode writers are numbered from here.
const SYNC_SECRETS_FIRST: u32 = 1_000_000;
/// Publisher slots; a third "slot" in `Execute` names the crashed publishers' requests.
const SLOTS: usize = 2;

/// One step of the interleaving.
#[derive(Clone, Debug)]
enum Step {
    /// An async-mode writer commits this many outbox rows in one transaction.
    Insert(usize),
    /// A sync-mode writer appends an event directly, moving the head.
    SyncAppend,
    /// Time passes and the publisher in `slot` is woken.
    Wake { slot: usize, advance_ns: u64 },
    /// The store executes an outstanding request of `slot` (or of a crashed publisher).
    Execute { slot: usize, pick: usize },
    /// A reply reaches the publisher in `slot`.
    Deliver { slot: usize, pick: usize },
    /// The oldest request of `slot` is executed and answered at once.
    Prompt { slot: usize },
    /// A request or a reply of `slot` is lost.
    Lose { slot: usize, pick: usize, reply: bool },
    /// The publisher in `slot` crashes; its requests may still reach the store.
    Crash { slot: usize },
    /// A new publisher starts in `slot` if it is empty.
    Start { slot: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let slot = 0..SLOTS;
    prop_oneof![
        3 => (1usize..=3).prop_map(Step::Insert),
        1 => Just(Step::SyncAppend),
        3 => (slot.clone(), 0u64..3_000_000).prop_map(|(slot, advance_ns)| Step::Wake { slot, advance_ns }),
        4 => (0..=SLOTS, any::<usize>()).prop_map(|(slot, pick)| Step::Execute { slot, pick }),
        4 => (slot.clone(), any::<usize>()).prop_map(|(slot, pick)| Step::Deliver { slot, pick }),
        8 => slot.clone().prop_map(|slot| Step::Prompt { slot }),
        1 => (slot.clone(), any::<usize>(), any::<bool>()).prop_map(|(slot, pick, reply)| Step::Lose { slot, pick, reply }),
        1 => slot.clone().prop_map(|slot| Step::Crash { slot }),
        1 => slot.prop_map(|slot| Step::Start { slot }),
    ]
}

#[derive(Default)]
struct Slot {
    publisher: Option<Publisher>,
    /// Requests sent and not yet executed by the store.
    requests: Vec<(RequestTag, StoreRequest)>,
    /// Replies produced by the store and not yet delivered.
    replies: Vec<(RequestTag, StoreReply)>,
}

impl Slot {
    fn collect(&mut self) {
        let Some(publisher) = &mut self.publisher else { return };
        while let Some(output) = publisher.poll_output() {
            match output {
                PublisherOutput::Store { tag, request } => self.requests.push((tag, request)),
                PublisherOutput::Timer { .. } => {} // The interleaving decides when to wake.
            }
        }
    }
}

struct World {
    config: PublisherConfig,
    store: Store,
    now: Time,
    slots: [Slot; SLOTS],
    /// Requests of crashed publishers that may still reach the store.
    orphans: Vec<StoreRequest>,
    /// Every outbox row inserted, in commit order.
    inserted: Vec<Mutation>,
    /// Every event appended by sync-mode writers, in order.
    sync_appended: Vec<Mutation>,
    next_secret: u32,
}

fn mutation(secret: u32) -> Mutation {
    let record = SecretRecord {
        tenant: TENANT,
        vault: VaultId(1),
        version: Version(1),
        lifecycle: Lifecycle::Creating,
        content: Some(Content::new(&secret.to_le_bytes())),
    };
    Mutation { secret: SecretId(secret), record }
}

impl World {
    fn new(config: PublisherConfig) -> World {
        let mut world = World {
            config,
            store: Store::new(),
            now: Time::ZERO,
            slots: [Slot::default(), Slot::default()],
            orphans: Vec::new(),
            inserted: Vec::new(),
            sync_appended: Vec::new(),
            next_secret: 1,
        };
        world.start(0);
        world
    }

    fn start(&mut self, slot: usize) {
        if self.slots[slot].publisher.is_none() {
            self.slots[slot].publisher = Some(Publisher::new(self.config.clone(), self.now));
            self.slots[slot].collect();
        }
    }

    fn commit(&mut self, writes: Vec<Write>) {
        let outcome = self.store.on_request(StoreRequest::Commit(Transaction { reads: Vec::new(), writes }));
        assert!(matches!(outcome, StoreReply::Commit(CommitOutcome::Committed { .. })), "{outcome:?}");
    }

    fn on_step(&mut self, step: &Step) {
        match *step {
            Step::Insert(rows) => {
                // Secrets grow within the commit, so key order is write order.
                let mutations: Vec<Mutation> =
                    (0..rows).map(|offset| mutation(self.next_secret + offset as u32)).collect();
                self.next_secret += rows as u32;
                self.inserted.extend(mutations.iter().cloned());
                self.commit(mutations.into_iter().map(Write::Outbox).collect());
            }
            Step::SyncAppend => {
                let appended = mutation(SYNC_SECRETS_FIRST + self.sync_appended.len() as u32);
                self.sync_appended.push(appended.clone());
                self.commit(vec![Write::Append(appended)]);
            }
            Step::Wake { slot, advance_ns } => {
                self.now = self.now.plus_ns(advance_ns);
                if let Some(publisher) = &mut self.slots[slot].publisher {
                    publisher.on_timer(self.now);
                }
                self.slots[slot].collect();
            }
            Step::Execute { slot, pick } if slot == SLOTS => {
                if !self.orphans.is_empty() {
                    let request = self.orphans.remove(pick % self.orphans.len());
                    self.store.on_request(request); // A crashed publisher's late request lands.
                }
            }
            Step::Execute { slot, pick } => {
                let slot = &mut self.slots[slot];
                if !slot.requests.is_empty() {
                    let (tag, request) = slot.requests.remove(pick % slot.requests.len());
                    slot.replies.push((tag, self.store.on_request(request)));
                }
            }
            Step::Deliver { slot, pick } => self.deliver(slot, pick),
            Step::Prompt { slot } => {
                if !self.slots[slot].requests.is_empty() {
                    self.on_step(&Step::Execute { slot, pick: 0 });
                    let newest = self.slots[slot].replies.len() - 1;
                    self.deliver(slot, newest);
                }
            }
            Step::Lose { slot, pick, reply } => {
                let slot = &mut self.slots[slot];
                if reply && !slot.replies.is_empty() {
                    slot.replies.remove(pick % slot.replies.len());
                } else if !reply && !slot.requests.is_empty() {
                    slot.requests.remove(pick % slot.requests.len());
                }
            }
            Step::Crash { slot } => {
                let slot = &mut self.slots[slot];
                slot.publisher = None;
                self.orphans.extend(slot.requests.drain(..).map(|(_, request)| request));
                slot.replies.clear();
            }
            Step::Start { slot } => self.start(slot),
        }
        for publisher in self.slots.iter().filter_map(|slot| slot.publisher.as_ref()) {
            publisher.check_invariants();
        }
    }

    fn deliver(&mut self, slot: usize, pick: usize) {
        let now = self.now;
        let slot = &mut self.slots[slot];
        if slot.replies.is_empty() {
            return;
        }
        let (tag, reply) = slot.replies.remove(pick % slot.replies.len());
        if let Some(publisher) = &mut slot.publisher {
            publisher.on_store_reply(now, tag, reply);
        }
        slot.collect();
    }

    /// The outbox-row mutations in the log, in log order.
    fn published(&self) -> Vec<Mutation> {
        self.log().into_iter().filter(|mutation| mutation.secret.0 < SYNC_SECRETS_FIRST).collect()
    }

    fn log(&self) -> Vec<Mutation> {
        self.store.poll(TENANT, Seq::ZERO, usize::MAX).iter().map(|event| event.mutation.clone()).collect()
    }

    fn outbox(&self) -> Vec<Mutation> {
        self.store
            .scan_outbox(TENANT, usize::MAX)
            .into_iter()
            .map(|row| match row.value {
                Some(Value::Outbox(mutation)) => mutation,
                other => panic!("outbox row holds {other:?}"),
            })
            .collect()
    }

    fn check_conservation(&self) -> Result<(), TestCaseError> {
        let mut accounted = self.published();
        accounted.extend(self.outbox());
        prop_assert_eq!(&accounted, &self.inserted, "published then waiting must be exactly the inserted rows");
        let sync: Vec<Mutation> =
            self.log().into_iter().filter(|mutation| mutation.secret.0 >= SYNC_SECRETS_FIRST).collect();
        prop_assert_eq!(&sync, &self.sync_appended, "sync-mode appends are untouched");
        Ok(())
    }

    /// Lets crashed publishers' requests land, retires slot 1, and runs the
    /// publisher of slot 0 (a new one if it crashed) with a prompt network
    /// until the outbox is empty.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        self.on_step(&Step::Crash { slot: 1 });
        for request in std::mem::take(&mut self.orphans) {
            self.store.on_request(request);
        }
        self.start(0);
        let rounds_max = 4 * (self.inserted.len() + 2);
        for _ in 0..rounds_max {
            while !self.slots[0].replies.is_empty() {
                self.deliver(0, 0);
                self.check_conservation()?;
            }
            while !self.slots[0].requests.is_empty() {
                self.on_step(&Step::Prompt { slot: 0 });
                self.check_conservation()?;
            }
            if self.outbox().is_empty() {
                return Ok(());
            }
            let advance_ns = self.config.request_timeout_ns.max(self.config.publish_interval_ns);
            self.on_step(&Step::Wake { slot: 0, advance_ns });
        }
        prop_assert!(false, "the outbox did not drain in {} rounds: {:?}", rounds_max, self.outbox());
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn every_outbox_row_is_published_exactly_once_in_commit_order(
        steps in prop::collection::vec(step(), 1..120),
        batch_events_max in 1usize..4,
    ) {
        let config = PublisherConfig {
            batch_events_max,
            publish_interval_ns: 1_000_000,
            request_timeout_ns: 5_000_000,
            ..PublisherConfig::new(TENANT)
        };
        let mut world = World::new(config);
        for step in &steps {
            world.on_step(step);
            world.check_conservation()?;
        }
        world.drain()?;
        prop_assert!(world.outbox().is_empty());
        prop_assert_eq!(world.published(), world.inserted.clone());
        prop_assert_eq!(world.store.scan_outbox(TENANT, 1).len(), 0);
    }
}
