//! What the backfiller and the verifier share: a walk of the secrets table in
//! key order, a page at a time, from a bookmark persisted in the store.
//!
//! A bookmark's value is one past the last secret id of the last committed
//! page (`0`: from the start) or [`DONE`] once the walk reached the end. It
//! moves only in a commit that reads it at the version it was read, so two
//! walkers on one bookmark never both move it, and a restarted walker resumes
//! after the last committed page.

use crate::store::{BookmarkId, Key, ReadEntry, ScanPage, StoreRequest, Table, Value};
use crate::types::{CommitSeq, SecretId};

/// The bookmark value of a finished walk.
pub(crate) const DONE: u64 = u64::MAX;

/// A bookmark as read: its value and the version of its entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Bookmark {
    /// One past the last secret id walked, or [`DONE`].
    pub(crate) value: u64,
    /// The version the bookmark's entry had when read (or was committed at).
    pub(crate) version: CommitSeq,
}

impl Bookmark {
    /// The read of bookmark `id`.
    pub(crate) fn read(id: BookmarkId) -> StoreRequest {
        StoreRequest::Read { keys: vec![Key::Bookmark(id)] }
    }

    /// The bookmark in the answer to [`Bookmark::read`].
    pub(crate) fn from_entries(id: BookmarkId, entries: &[ReadEntry]) -> Bookmark {
        let [entry] = entries else { panic!("one bookmark read, {} entries answered", entries.len()) };
        assert_eq!(entry.key, Key::Bookmark(id), "another key answered");
        let value = match entry.value {
            None => 0,
            Some(Value::Bookmark(value)) => value,
            Some(ref other) => panic!("bookmark holds {other:?}"),
        };
        Bookmark { value, version: entry.version }
    }

    /// Whether the walk is finished.
    pub(crate) fn is_done(self) -> bool {
        self.value == DONE
    }

    /// The scan of the next page of `page_keys` secrets.
    pub(crate) fn scan(self, page_keys: usize) -> StoreRequest {
        assert!(!self.is_done(), "a finished walk scans nothing");
        let after = self.value.checked_sub(1).map(|last| Key::Secret(SecretId(last as u32)));
        StoreRequest::Scan { table: Table::Secrets, after, limit: page_keys }
    }
}

/// The bookmark value after `page`: one past its last key, or [`DONE`] at the end.
pub(crate) fn past(page: &ScanPage) -> u64 {
    match page.resume_after {
        None => DONE,
        Some(Key::Secret(secret)) => u64::from(secret.0) + 1,
        Some(other) => panic!("a secrets scan resumes after {other:?}"),
    }
}

/// The secret of a secrets-table key.
pub(crate) fn secret_of(key: Key) -> SecretId {
    match key {
        Key::Secret(secret) => secret,
        other => panic!("a secrets scan returned {other:?}"),
    }
}
