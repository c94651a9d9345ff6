//! The conformance suite every [`LedgerStore`] passes: the same tests, instantiated for each
//! implementation by [`conformance_tests!`], check the trait's contract — commits read back,
//! a restart recovers exactly what was committed, a batch is all or nothing, re-applying is
//! idempotent, checkpoints change nothing a reader sees, and every query pages alike.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;

use std::path::PathBuf;

use crate::store::ledger_store::LedgerStore;
use crate::store::memory::MemoryLedgerStore;
use crate::store::redb_store::RedbLedgerStore;

/// How the suite opens, restarts and breaks one kind of store.
pub(crate) trait Harness {
    type Store: LedgerStore;

    /// A new, empty store.
    fn fresh(&mut self) -> Self::Store;

    /// The store a restarted process finds after `store`'s process died without warning.
    fn restart(&mut self, store: Self::Store) -> Self::Store;

    /// Makes `store`'s next commit that has something to write fail.
    fn fail_next_commit(store: &Self::Store);

    /// How many logged certificates a restart of `store` re-applies; `None` for a store
    /// that defers no work.
    fn replay_tail(store: &Self::Store) -> Option<u64>;
}

/// redb in a temporary folder; a restart drops the database and opens the file again.
pub(crate) struct Redb {
    dir: tempfile::TempDir,
    checkpoint_every: u64,
}

impl Redb {
    pub(crate) fn new(checkpoint_every: u64) -> Self {
        Redb {
            dir: tempfile::tempdir().unwrap(),
            checkpoint_every,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("ledger.redb")
    }

    fn open(&self) -> RedbLedgerStore {
        RedbLedgerStore::open(&self.path(), 1 << 20)
            .unwrap()
            .with_checkpoint_every(self.checkpoint_every)
    }
}

impl Harness for Redb {
    type Store = RedbLedgerStore;

    fn fresh(&mut self) -> RedbLedgerStore {
        let _ = std::fs::remove_file(self.path());
        self.open()
    }

    fn restart(&mut self, store: RedbLedgerStore) -> RedbLedgerStore {
        // No final checkpoint: dropping the store is what a killed process leaves.
        drop(store);
        self.open()
    }

    fn fail_next_commit(store: &RedbLedgerStore) {
        store.fail_next_commit();
    }

    fn replay_tail(store: &RedbLedgerStore) -> Option<u64> {
        Some(store.replay_tail())
    }
}

/// The in-memory store; a restart is [`MemoryLedgerStore::crash`].
pub(crate) struct Memory;

impl Harness for Memory {
    type Store = MemoryLedgerStore;

    fn fresh(&mut self) -> MemoryLedgerStore {
        MemoryLedgerStore::new()
    }

    fn restart(&mut self, store: MemoryLedgerStore) -> MemoryLedgerStore {
        store.crash()
    }

    fn fail_next_commit(store: &MemoryLedgerStore) {
        store.fail_next_commit();
    }

    fn replay_tail(_: &MemoryLedgerStore) -> Option<u64> {
        None
    }
}

/// Instantiates every case of the suite for each `backend => harness`, as a module of
/// tests named after the backend.
macro_rules! conformance_tests {
    ($($backend:ident => $harness:expr),* $(,)?) => {$(
        mod $backend {
            use super::*;

            #[test]
            fn a_fresh_store_holds_the_genesis() {
                cases::a_fresh_store_holds_the_genesis($harness);
            }
            #[test]
            fn commit_then_read_back() {
                cases::commit_then_read_back($harness);
            }
            #[test]
            fn a_committed_batch_survives_reopening() {
                cases::a_committed_batch_survives_reopening($harness);
            }
            #[test]
            fn a_restart_loses_exactly_what_was_not_committed() {
                cases::a_restart_loses_exactly_what_was_not_committed($harness);
            }
            #[test]
            fn a_failed_commit_leaves_nothing() {
                cases::a_failed_commit_leaves_nothing($harness);
            }
            #[test]
            fn reapplying_changes_nothing() {
                cases::reapplying_changes_nothing($harness);
            }
            #[test]
            fn a_lock_whose_certificate_was_applied_is_not_restored() {
                cases::a_lock_whose_certificate_was_applied_is_not_restored($harness);
            }
            #[test]
            fn a_held_order_survives_a_restart() {
                cases::a_held_order_survives_a_restart($harness);
            }
            #[test]
            fn a_crash_between_checkpoints_loses_nothing() {
                cases::a_crash_between_checkpoints_loses_nothing($harness);
            }
            #[test]
            fn a_checkpoint_changes_nothing_a_reader_sees() {
                cases::a_checkpoint_changes_nothing_a_reader_sees($harness);
            }
            #[test]
            fn queries_page_alike() {
                cases::queries_page_alike($harness);
            }
            #[test]
            fn a_split_is_indexed_for_its_sender_and_every_recipient() {
                cases::a_split_is_indexed_for_its_sender_and_every_recipient($harness);
            }
        }
    )*};
}

conformance_tests! {
    redb => Redb::new(5),
    redb_checkpoint_every_batch => Redb::new(1),
    memory => Memory,
}
