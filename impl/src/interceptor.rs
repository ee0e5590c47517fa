//! The replication interceptor: turns a committed mutation into a replication
//! event, inside the mutation's own transaction.
//!
//! * [`InterceptorMode::Sync`]: the transaction reads the head of its tenancy's
//!   log partition and appends the event. Every writer of a tenancy reads that
//!   head, so concurrent writers conflict on it (optimistic-lock contention).
//! * [`InterceptorMode::Async`]: the transaction writes an outbox row keyed by
//!   its own commit; no shared key is read, so writers of a tenancy do not
//!   contend. A [`crate::publisher::Publisher`] moves the rows into the log.
//!
//! The interceptor is stateless: a mode and two functions that callers use in
//! order, [`Interceptor::keys_to_read`] while reading and
//! [`Interceptor::on_mutation`] while building the transaction.

use crate::store::{Key, ReadEntry, Transaction, Value, Write};
use crate::types::{Mutation, TenantId};

/// How mutations reach the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InterceptorMode {
    /// Append to the partition in the mutation's transaction.
    Sync,
    /// Write an outbox row; a publisher appends it later.
    Async,
}

/// The interceptor of one control-plane component. See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interceptor {
    /// The mode.
    pub mode: InterceptorMode,
}

impl Interceptor {
    /// The key the transaction must read before mutating a secret of `tenant`:
    /// the partition head in `sync` mode, nothing in `async` mode.
    pub fn keys_to_read(&self, tenant: TenantId) -> Option<Key> {
        match self.mode {
            InterceptorMode::Sync => Some(Key::LogHead(tenant)),
            InterceptorMode::Async => None,
        }
    }

    /// Adds the replication write for `mutation` to `transaction`. In `sync`
    /// mode `head` must be the entry read for [`Interceptor::keys_to_read`].
    pub fn on_mutation(&self, transaction: &mut Transaction, mutation: Mutation, head: Option<&ReadEntry>) {
        mutation.record.check_invariants();
        match self.mode {
            InterceptorMode::Sync => {
                let head = head.expect("sync interception needs the partition head it read");
                let expected_key = Key::LogHead(mutation.record.tenant);
                assert_eq!(head.key, expected_key, "head read for another partition");
                assert!(matches!(head.value, None | Some(Value::LogHead(_))), "a log head holds a sequence number");
                transaction.reads.push((head.key, head.version));
                transaction.writes.push(Write::Append(mutation));
            }
            InterceptorMode::Async => {
                assert!(head.is_none(), "async interception reads no head");
                transaction.writes.push(Write::Outbox(mutation));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CommitOutcome, Store, StoreReply, StoreRequest};
    use crate::types::{Content, Lifecycle, SecretId, SecretRecord, VaultId, Version};

    fn mutation(secret: u32) -> Mutation {
        Mutation {
            secret: SecretId(secret),
            record: SecretRecord {
                tenant: TenantId(1),
                vault: VaultId(1),
                version: Version(1),
                lifecycle: Lifecycle::Creating,
                content: Some(Content::new(b"x")),
            },
        }
    }

    fn transaction_for(store: &mut Store, interceptor: Interceptor, secret: u32) -> Transaction {
        let head = interceptor.keys_to_read(TenantId(1)).map(|key| {
            let StoreReply::Read(mut entries) = store.on_request(StoreRequest::Read { keys: vec![key] }) else {
                panic!("read answered with another reply");
            };
            entries.pop().expect("one entry per key")
        });
        let mut transaction = Transaction::default();
        interceptor.on_mutation(&mut transaction, mutation(secret), head.as_ref());
        transaction
    }

    #[test]
    fn sync_writers_of_one_tenancy_conflict_on_the_head() {
        let interceptor = Interceptor { mode: InterceptorMode::Sync };
        let mut store = Store::new();
        let first = transaction_for(&mut store, interceptor, 1);
        let second = transaction_for(&mut store, interceptor, 2);
        assert!(matches!(store.commit(&first), CommitOutcome::Committed { .. }));
        assert_eq!(store.commit(&second), CommitOutcome::Conflict { key: Key::LogHead(TenantId(1)) });
        assert_eq!(store.head(TenantId(1)).0, 1);
    }

    #[test]
    fn async_writers_of_one_tenancy_do_not_conflict() {
        let interceptor = Interceptor { mode: InterceptorMode::Async };
        let mut store = Store::new();
        let first = transaction_for(&mut store, interceptor, 1);
        let second = transaction_for(&mut store, interceptor, 2);
        assert!(matches!(store.commit(&first), CommitOutcome::Committed { .. }));
        assert!(matches!(store.commit(&second), CommitOutcome::Committed { .. }));
        assert_eq!(store.head(TenantId(1)).0, 0, "nothing reaches the log before publishing");
        assert_eq!(store.scan_outbox(TenantId(1), 10).len(), 2);
    }
}
