//! The conformance suite every [`LedgerStore`] passes: the same tests, instantiated for each
//! implementation by [`conformance_tests!`], check the trait's contract — commits read back,
//! a restart recovers exactly what was committed, a batch is all or nothing, re-applying is
//! idempotent, checkpoints change nothing a reader sees, and every query pages alike.
//! [`crash_tests!`] crashes each store at every write of a commit and of a checkpoint
//! ([`CrashHarness`]; redb runs on a [`FaultyDisk`]). Escrows have cases of their own
//! (`escrow_cases`, `escrow_crash_cases`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;
mod crash_cases;
mod escrow_cases;
mod escrow_crash_cases;
mod faulty_disk;

use std::path::PathBuf;

use crate::store::ledger_store::LedgerStore;
use crate::store::memory::MemoryLedgerStore;
use crate::store::redb_store::RedbLedgerStore;

use self::faulty_disk::FaultyDisk;

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

/// What a crash does to the writes that were not synced yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsynced {
    /// Lost, as in a power cut.
    Lost,
    /// On the disk, as when only the process died.
    Kept,
}

/// How the crash cases kill one kind of store at a chosen write and restart it.
pub(crate) trait CrashHarness: Harness {
    /// Kills `store` at its `k`-th write from now (counting from 0): that write fails, and
    /// nothing after it reaches the disk.
    fn crash_at_write(&mut self, store: &Self::Store, k: u64);

    /// Whether the armed crash happened.
    fn crashed(&self, store: &Self::Store) -> bool;

    /// The store a restarted process finds after the crash of `store`.
    fn restart_after_crash(&mut self, store: &Self::Store, unsynced: Unsynced) -> Self::Store;
}

impl CrashHarness for Memory {
    fn crash_at_write(&mut self, store: &MemoryLedgerStore, k: u64) {
        store.crash_at_write(k);
    }

    fn crashed(&self, store: &MemoryLedgerStore) -> bool {
        store.has_crashed()
    }

    fn restart_after_crash(
        &mut self,
        store: &MemoryLedgerStore,
        unsynced: Unsynced,
    ) -> MemoryLedgerStore {
        match unsynced {
            Unsynced::Lost => store.crash(),
            Unsynced::Kept => store.crash_keeping_unsynced(),
        }
    }
}

/// redb on a [`FaultyDisk`]: the real store, on a disk that dies at the write a test
/// chooses; a restart opens redb again on what the disk kept.
pub(crate) struct RedbOnFaultyDisk {
    /// The disk of the store opened last.
    disk: FaultyDisk,
    /// The disk a crash was armed on.
    armed: FaultyDisk,
    checkpoint_every: u64,
}

impl RedbOnFaultyDisk {
    pub(crate) fn new(checkpoint_every: u64) -> Self {
        RedbOnFaultyDisk {
            disk: FaultyDisk::default(),
            armed: FaultyDisk::default(),
            checkpoint_every,
        }
    }

    fn open(&mut self, disk: FaultyDisk) -> RedbLedgerStore {
        self.disk = disk.clone();
        RedbLedgerStore::open_on(disk, 1 << 20)
            .unwrap()
            .with_checkpoint_every(self.checkpoint_every)
    }
}

impl Harness for RedbOnFaultyDisk {
    type Store = RedbLedgerStore;

    fn fresh(&mut self) -> RedbLedgerStore {
        self.open(FaultyDisk::default())
    }

    /// A power cut: the machine keeps what was synced, and nothing the dying process might
    /// still write reaches the disk.
    fn restart(&mut self, store: RedbLedgerStore) -> RedbLedgerStore {
        let disk = self.disk.clone();
        disk.crash_now();
        drop(store);
        self.open(disk.after_restart(false))
    }

    fn fail_next_commit(store: &RedbLedgerStore) {
        store.fail_next_commit();
    }

    fn replay_tail(store: &RedbLedgerStore) -> Option<u64> {
        Some(store.replay_tail())
    }
}

impl CrashHarness for RedbOnFaultyDisk {
    fn crash_at_write(&mut self, _: &RedbLedgerStore, k: u64) {
        self.armed = self.disk.clone();
        self.armed.crash_at_write(k);
    }

    fn crashed(&self, _: &RedbLedgerStore) -> bool {
        self.armed.crashed()
    }

    fn restart_after_crash(&mut self, _: &RedbLedgerStore, unsynced: Unsynced) -> RedbLedgerStore {
        let disk = self.armed.after_restart(unsynced == Unsynced::Kept);
        self.open(disk)
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
            fn batches_absorbed_into_one_commit_read_back_as_committed_apart() {
                cases::batches_absorbed_into_one_commit_read_back_as_committed_apart($harness);
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
            #[test]
            fn an_open_escrow_and_its_claim_vote_survive_reopening() {
                escrow_cases::an_open_escrow_and_its_claim_vote_survive_reopening($harness);
            }
            #[test]
            fn a_claimed_escrow_survives_reopening() {
                escrow_cases::a_claimed_escrow_survives_reopening($harness);
            }
            #[test]
            fn a_refunded_escrow_survives_reopening() {
                escrow_cases::a_refunded_escrow_survives_reopening($harness);
            }
            #[test]
            fn escrowed_money_is_conserved_across_reopening() {
                escrow_cases::escrowed_money_is_conserved_across_reopening($harness);
            }
            #[test]
            fn a_settlement_is_indexed_from_the_stored_escrow() {
                escrow_cases::a_settlement_is_indexed_from_the_stored_escrow($harness);
            }
        }
    )*};
}

conformance_tests! {
    redb => Redb::new(5),
    redb_checkpoint_every_batch => Redb::new(1),
    redb_on_faulty_disk => RedbOnFaultyDisk::new(5),
    memory => Memory,
}

/// Instantiates the crash cases for each `backend => harness`.
macro_rules! crash_tests {
    ($($backend:ident => $harness:expr),* $(,)?) => {$(
        mod $backend {
            use super::*;

            #[test]
            fn a_crash_at_any_write_of_a_commit_keeps_the_batch_whole() {
                crash_cases::a_crash_at_any_write_of_a_commit_keeps_the_batch_whole($harness);
            }
            #[test]
            fn a_crash_at_any_write_of_a_checkpoint_loses_nothing() {
                crash_cases::a_crash_at_any_write_of_a_checkpoint_loses_nothing($harness);
            }
            #[test]
            fn a_crash_at_any_write_of_a_settling_commit_keeps_the_batch_whole() {
                escrow_crash_cases::a_crash_at_any_write_of_a_settling_commit_keeps_the_batch_whole(
                    $harness,
                );
            }
            #[test]
            fn a_crash_at_any_write_of_a_settling_checkpoint_loses_nothing() {
                escrow_crash_cases::a_crash_at_any_write_of_a_settling_checkpoint_loses_nothing(
                    $harness,
                );
            }
        }
    )*};
}

mod crash {
    use super::*;

    crash_tests! {
        memory => Memory,
        redb => RedbOnFaultyDisk::new(5),
        redb_checkpoint_every_batch => RedbOnFaultyDisk::new(1),
    }
}
