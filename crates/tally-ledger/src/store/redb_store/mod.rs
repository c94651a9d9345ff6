//! The validator's durable state in redb: accounts, escrows, vote locks, the certificate
//! log and its indexes.
//!
//! A batch is made durable by [`LedgerStore::commit_snapshot`] in one transaction that only
//! **appends**: the batch's certificates to the certificate log (keyed by log position) and
//! its new vote locks to the vote journal (one row per batch), plus a few `meta` counters.
//! Nothing of a batch is acknowledged before it returns. Appends touch only the right edge
//! of two B-trees, so a batch costs about what its bytes cost to write, however many
//! accounts the ledger holds.
//!
//! The random-access tables (account states, escrows, vote locks, and the `sent` and
//! `touching` indexes of the log) are brought up to date by a **checkpoint**: every
//! [`DEFAULT_CHECKPOINT_EVERY`] certificates or vote records, one transaction writes every
//! change since the previous checkpoint in key order (each B-tree page is then rewritten
//! once per checkpoint instead of once per batch), empties the vote journal and records the
//! log position it covers. Until then those changes live in memory ([`Pending`]) and the
//! readers here merge them in (`queries`).
//!
//! Recovery (`recovery`): the durable state is always "the tables as of the last
//! checkpoint, plus the log after it, plus the vote journal". [`LedgerStore::load`]
//! re-applies the log's tail to the checkpointed accounts and escrows (certificates are
//! deterministic state changes, and only certificates open or settle an escrow) and
//! re-reads the journal's votes, so a crash at any point — inside a batch, between batches
//! or inside a checkpoint — loses nothing that was acknowledged. An escrow row is therefore
//! written only by a checkpoint, never ahead of the log position it records: re-applying
//! a claim on an escrow already stored as claimed would fail.
//!
//! The bytes of every row are laid out in [`crate::store::records`].

mod pending;
mod queries;
mod recovery;
mod tables;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use redb::Database;
use tally_core::{AccountId, EscrowId, NetworkContract};

use self::pending::Pending;
use self::tables::{
    ACCOUNTS, CERTIFICATES, ESCROWS, LOCKS, META, META_CHECKPOINT, META_CHECKPOINT_SUPPLY,
    META_LOG_LEN, META_SUPPLY, SENT, TOUCHING, VOTES,
};
use crate::state::{AccountState, EscrowState, LockChange, Snapshot, Validator, VoteLock};
use crate::store::ledger_store::{CertificatePage, LedgerStore, StoreError, touched_by};
use crate::store::records::{
    certificate_record, cursor_key, decode_escrow, encode_account, encode_escrow, journal_row,
};

/// Certificates between checkpoints (or twice as many vote records, for votes no
/// certificate followed). A checkpoint rewrites about every page its tables' changes land
/// on, which costs nearly as much for 16,384 certificates as for 65,536 once the tables are
/// larger than that (measured: 16,384 doubled the checkpoint time per transfer at 100,000
/// accounts). The bound keeps the pending changes to about 25 MB and the log tail a restart
/// re-applies to about a second.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 65_536;

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The validator's database: a redb file and the changes its random-access tables do not
/// hold yet.
pub struct RedbLedgerStore {
    db: Database,
    /// Serialises writers: a batch's transaction and its `pending` update go together.
    writer: Mutex<()>,
    pending: Mutex<Pending>,
    checkpoint_every: u64,
    checkpoints: AtomicU64,
    checkpoint_micros: AtomicU64,
    /// Makes the next commit abandon its transaction just before committing it, so that
    /// tests see a failed batch leave nothing behind.
    #[cfg(test)]
    fail_next_commit: std::sync::atomic::AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is only changed after a successful write; a panic elsewhere leaves
    // it consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RedbLedgerStore {
    /// Opens (or creates) the database at `path` with a page cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
        Self::on_database(db)
    }

    /// Opens (or creates) the database on any redb storage `backend`, with a page cache of
    /// `cache_bytes`: an in-memory one, or one that fails on purpose so that tests can
    /// crash the store at any write.
    pub fn open_on(
        backend: impl redb::StorageBackend,
        cache_bytes: usize,
    ) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_backend(backend)?;
        Self::on_database(db)
    }

    fn on_database(db: Database) -> Result<Self, StoreError> {
        let txn = db.begin_write()?;
        for table in [ACCOUNTS, ESCROWS, LOCKS] {
            txn.open_table(table)?;
        }
        txn.open_table(CERTIFICATES)?;
        txn.open_table(SENT)?;
        txn.open_table(TOUCHING)?;
        txn.open_table(VOTES)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(RedbLedgerStore {
            db,
            writer: Mutex::new(()),
            pending: Mutex::new(Pending::default()),
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            checkpoints: AtomicU64::new(0),
            checkpoint_micros: AtomicU64::new(0),
            #[cfg(test)]
            fail_next_commit: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Sets how many certificates accumulate between checkpoints (see
    /// [`DEFAULT_CHECKPOINT_EVERY`]):
    /// fewer means less memory and a shorter replay at start, more means cheaper batches.
    pub fn with_checkpoint_every(mut self, every: u64) -> Self {
        self.checkpoint_every = every.max(1);
        self
    }

    /// How many logged certificates a restart would re-apply (those after the last
    /// checkpoint).
    #[cfg(test)]
    pub(crate) fn replay_tail(&self) -> u64 {
        let pending = lock(&self.pending);
        pending.log_len - pending.base
    }

    /// Makes the next commit that has something to write fail after it has written its
    /// rows into the transaction, but before committing it.
    #[cfg(test)]
    pub(crate) fn fail_next_commit(&self) {
        self.fail_next_commit.store(true, Ordering::Relaxed);
    }

    /// The accounts each certificate of `snapshot` touched, found before anything of the
    /// batch is written: a settlement's escrow is looked up among the batch's escrows, then
    /// the pending ones, then the checkpointed table. The caller holds the writer lock, so
    /// no checkpoint moves escrows from one to the other meanwhile.
    fn touched(&self, snapshot: &Snapshot) -> Result<Vec<Vec<AccountId>>, StoreError> {
        let batch: HashMap<&EscrowId, &EscrowState> =
            snapshot.escrows.iter().map(|(id, e)| (id, e)).collect();
        snapshot
            .certificates
            .iter()
            .map(|(_, certificate)| {
                touched_by(&certificate.order, |id| {
                    if let Some(escrow) = batch.get(id) {
                        return Ok(Some(**escrow));
                    }
                    if let Some(escrow) = lock(&self.pending).escrows.get(id) {
                        return Ok(Some(*escrow));
                    }
                    self.read_escrow(id)
                })
            })
            .collect()
    }

    /// An escrow as of the last checkpoint.
    fn read_escrow(&self, id: &EscrowId) -> Result<Option<EscrowState>, StoreError> {
        let txn = self.db.begin_read()?;
        let escrows = txn.open_table(ESCROWS)?;
        escrows
            .get(id.as_bytes().as_slice())?
            .map(|row| decode_escrow(row.value()))
            .transpose()
    }
}

impl LedgerStore for RedbLedgerStore {
    fn load(
        &self,
        validator: &mut Validator,
        contract: &NetworkContract,
    ) -> Result<(), StoreError> {
        self.recover(validator, contract)
    }

    /// Appends only; the engine calls [`LedgerStore::checkpoint_if_due`] after the batch's
    /// answers are out.
    fn commit_snapshot(
        &self,
        snapshot: &Snapshot,
        cursors: &[(AccountId, u64)],
    ) -> Result<(), StoreError> {
        if snapshot.is_empty() && cursors.is_empty() {
            return Ok(());
        }
        let _writer = lock(&self.writer);
        let touched = self.touched(snapshot)?;
        let next_vote_row = lock(&self.pending).next_vote_row;
        let new_locks: Vec<&VoteLock> = snapshot
            .locks
            .iter()
            .filter_map(|change| match change {
                LockChange::Set(lock) => Some(lock),
                LockChange::Clear(_) => None,
            })
            .collect();
        let votes = journal_row(new_locks.iter().copied());
        let txn = self.db.begin_write()?;
        {
            let mut certificates = txn.open_table(CERTIFICATES)?;
            let mut record = Vec::with_capacity(512);
            for (index, certificate) in &snapshot.certificates {
                certificate_record(certificate, &mut record)?;
                certificates.insert(*index, record.as_slice())?;
            }
            if !votes.is_empty() {
                txn.open_table(VOTES)?
                    .insert(next_vote_row, votes.as_slice())?;
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(META_SUPPLY, snapshot.supply.microcash())?;
            meta.insert(META_LOG_LEN, snapshot.log_len)?;
            for (peer, cursor) in cursors {
                meta.insert(cursor_key(peer).as_str(), *cursor)?;
            }
        }
        #[cfg(test)]
        if self.fail_next_commit.swap(false, Ordering::Relaxed) {
            // Dropping the transaction uncommitted is what a failed commit leaves.
            return Err(StoreError::Injected("commit"));
        }
        txn.commit()?;
        let mut pending = lock(&self.pending);
        for (account, state) in &snapshot.accounts {
            pending.accounts.insert(*account, *state);
        }
        for change in &snapshot.locks {
            pending.lock(change);
        }
        for (id, escrow) in &snapshot.escrows {
            pending.escrows.insert(*id, *escrow);
        }
        for ((index, certificate), touched) in snapshot.certificates.iter().zip(&touched) {
            pending.index(*index, certificate, touched);
        }
        if !votes.is_empty() {
            pending.votes += new_locks.len() as u64;
            pending.next_vote_row += 1;
        }
        pending.log_len = snapshot.log_len;
        pending.supply = snapshot.supply.microcash();
        Ok(())
    }

    fn checkpoint_if_due(&self) -> Result<(), StoreError> {
        if lock(&self.pending).due(self.checkpoint_every) {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Brings the account, escrow, lock and index tables up to the last committed batch in
    /// one transaction, in key order, and empties the vote journal. Readers of the indexes
    /// wait while it runs.
    fn checkpoint(&self) -> Result<(), StoreError> {
        let _writer = lock(&self.writer);
        let mut pending = lock(&self.pending);
        if pending.base == pending.log_len
            && pending.votes == 0
            && pending.locks.is_empty()
            && pending.escrows.is_empty()
        {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let txn = self.db.begin_write()?;
        {
            let mut accounts = txn.open_table(ACCOUNTS)?;
            for (account, state) in &pending.accounts {
                accounts.insert(
                    account.as_bytes().as_slice(),
                    encode_account(state).as_slice(),
                )?;
            }
            drop(accounts);
            let mut escrows = txn.open_table(ESCROWS)?;
            for (id, escrow) in &pending.escrows {
                escrows.insert(id.as_bytes().as_slice(), encode_escrow(escrow).as_slice())?;
            }
            drop(escrows);
            let mut locks = txn.open_table(LOCKS)?;
            for (key, value) in &pending.locks {
                match value {
                    // Most transfer locks are history by now (their certificate followed in
                    // a later batch): such a row would be skipped on load anyway, so it is
                    // not written. Any older row of that account is stale as well.
                    Some(value) if pending.lock_is_history(key, value) => None,
                    Some(value) => locks.insert(key.as_slice(), value.as_slice())?,
                    None => locks.remove(key.as_slice())?,
                };
            }
            drop(locks);
            let mut sent = txn.open_table(SENT)?;
            for (key, position) in &pending.sent {
                sent.insert(key.as_slice(), *position)?;
            }
            drop(sent);
            let mut touching = txn.open_table(TOUCHING)?;
            for key in &pending.touching {
                touching.insert(key.as_slice(), ())?;
            }
            drop(touching);
            txn.delete_table(VOTES)?;
            txn.open_table(VOTES)?;
            let mut meta = txn.open_table(META)?;
            meta.insert(META_CHECKPOINT, pending.log_len)?;
            meta.insert(META_CHECKPOINT_SUPPLY, pending.supply)?;
        }
        txn.commit()?;
        let (certificates, accounts) = (pending.log_len - pending.base, pending.accounts.len());
        *pending = Pending {
            base: pending.log_len,
            log_len: pending.log_len,
            supply: pending.supply,
            ..Pending::default()
        };
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.checkpoint_micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        tracing::debug!(
            certificates,
            accounts,
            took = ?started.elapsed(),
            "checkpoint written"
        );
        Ok(())
    }

    fn checkpoints(&self) -> (u64, u64) {
        (
            self.checkpoints.load(Ordering::Relaxed),
            self.checkpoint_micros.load(Ordering::Relaxed),
        )
    }

    fn cursor(&self, peer: &AccountId) -> Result<u64, StoreError> {
        self.read_cursor(peer)
    }

    fn certificates_since(&self, since: u64, limit: usize) -> Result<CertificatePage, StoreError> {
        self.read_log(since, limit)
    }

    fn sent(
        &self,
        account: &AccountId,
        from: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError> {
        self.read_sent(account, from, limit)
    }

    fn touching(
        &self,
        account: &AccountId,
        since: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError> {
        self.read_touching(account, since, limit)
    }

    fn accounts_page(
        &self,
        after: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<(AccountId, AccountState)>, StoreError> {
        self.read_accounts(after, limit)
    }
}
