//! A ledger store in memory, for tests and the deterministic simulator: the same contract
//! as the redb store, with crashes, failed commits and a crash at any write on demand.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tally_core::{AccountId, Amount, Certificate, EscrowId, LockSlot, NetworkContract, NetworkId};

use crate::state::{AccountState, EscrowState, LockChange, Snapshot, Validator, VoteLock};
use crate::store::ledger_store::{
    CertificatePage, LedgerStore, StoreError, lock_is_live, touched_by,
};

/// A [`LedgerStore`] that keeps everything in memory.
///
/// The store models a disk. A commit writes its batch as rows (one per account, lock change,
/// escrow, certificate and cursor, then the supply), seals them with a commit record
/// and syncs; only a sealed transaction counts, so a batch is applied whole or not at all.
/// Nothing is deferred, so a checkpoint writes nothing. [`Self::crash`] gives what a
/// restarted process would find — exactly the committed batches, the writes not yet synced
/// lost — and [`Self::crash_keeping_unsynced`] the same when those writes did reach the
/// disk. [`Self::fail_next_commit`] / [`Self::fail_next_checkpoint`] make the engine's
/// failure paths reachable in tests, and [`Self::crash_at_write`] kills the store at any
/// write of a commit.
#[derive(Default)]
pub struct MemoryLedgerStore {
    disk: Mutex<Disk>,
    fail_next_commit: AtomicBool,
    fail_next_checkpoint: AtomicBool,
}

/// Everything the committed batches left.
#[derive(Clone, Default)]
struct Committed {
    /// The network the store was loaded for; `None` until the genesis is written.
    network: Option<NetworkId>,
    supply: Amount,
    accounts: BTreeMap<AccountId, AccountState>,
    /// Every escrow opened, with how it stands.
    escrows: BTreeMap<EscrowId, EscrowState>,
    /// Open vote locks, one per slot kind and account or escrow (a transfer lock is replaced
    /// by the account's next one).
    locks: BTreeMap<SlotKey, VoteLock>,
    /// The certificate log; a certificate's log position is its index.
    log: Vec<Certificate>,
    /// Sender and sequence → log position.
    sent: BTreeMap<(AccountId, u64), u64>,
    /// Account and log position of each certificate that moved its balance.
    touching: BTreeSet<(AccountId, u64)>,
    cursors: HashMap<AccountId, u64>,
}

/// Where a vote lock is kept: a transfer lock is keyed by its account alone, so that the
/// account's next lock replaces it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SlotKey {
    Sequence(AccountId),
    Intro(AccountId),
    Escrow(EscrowId),
}

/// One write of a commit.
#[derive(Clone)]
enum Row {
    Account(AccountId, AccountState),
    Lock(LockChange),
    /// An escrow's state after the batch (it replaces the one before).
    Escrow(EscrowId, EscrowState),
    /// A certificate at its log position, with the accounts whose balance it moved (found
    /// when the batch was written: a settlement's payee or payer is in its escrow).
    Certificate(u64, Certificate, Vec<AccountId>),
    Cursor(AccountId, u64),
    Supply(Amount),
    /// Seals the rows written before it: a transaction without it is ignored on recovery.
    Commit,
}

/// The store's disk: the state of every sealed and synced transaction, and the rows written
/// since, which a crash loses or keeps.
#[derive(Default)]
struct Disk {
    committed: Committed,
    unsynced: Vec<Row>,
    /// Writes (rows and syncs) left before the armed crash, if one is armed.
    crash_in: Option<u64>,
    /// The armed crash happened: nothing more reaches this disk.
    crashed: bool,
}

impl Disk {
    /// Counts one write towards the armed crash; fails (and kills the disk) at the crash.
    fn tick(&mut self) -> Result<(), StoreError> {
        if self.crashed {
            return Err(StoreError::Injected("the store crashed"));
        }
        match self.crash_in {
            Some(0) => {
                self.crash_in = None;
                self.crashed = true;
                Err(StoreError::Injected("crash at a write"))
            }
            Some(left) => {
                self.crash_in = Some(left - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn write(&mut self, row: Row) -> Result<(), StoreError> {
        self.tick()?;
        self.unsynced.push(row);
        Ok(())
    }

    /// Makes the written rows durable and applies the transaction they seal.
    fn sync(&mut self) -> Result<(), StoreError> {
        self.tick()?;
        let rows = std::mem::take(&mut self.unsynced);
        self.committed.replay(rows);
        Ok(())
    }

    /// What a restarted process reads from this disk.
    fn recover(&self, keep_unsynced: bool) -> Committed {
        let mut committed = self.committed.clone();
        if keep_unsynced {
            committed.replay(self.unsynced.clone());
        }
        committed
    }
}

fn lock_key(slot: &LockSlot) -> SlotKey {
    match slot {
        LockSlot::Sequence(account, _) => SlotKey::Sequence(*account),
        LockSlot::Intro(account) => SlotKey::Intro(*account),
        LockSlot::Escrow(id) => SlotKey::Escrow(*id),
    }
}

/// A batch as the rows a commit writes on top of `committed`, the commit record last.
fn rows(
    snapshot: &Snapshot,
    cursors: &[(AccountId, u64)],
    committed: &Committed,
) -> Result<Vec<Row>, StoreError> {
    let mut rows = Vec::with_capacity(
        snapshot.accounts.len()
            + snapshot.locks.len()
            + snapshot.escrows.len()
            + snapshot.certificates.len()
            + cursors.len()
            + 2,
    );
    rows.extend(
        snapshot
            .accounts
            .iter()
            .map(|(account, state)| Row::Account(*account, *state)),
    );
    rows.extend(snapshot.locks.iter().cloned().map(Row::Lock));
    rows.extend(
        snapshot
            .escrows
            .iter()
            .map(|(id, escrow)| Row::Escrow(*id, *escrow)),
    );
    // A settlement's escrow is among the batch's own (settling it changed it); the
    // committed one is the fallback.
    let batch: HashMap<&EscrowId, &EscrowState> =
        snapshot.escrows.iter().map(|(id, e)| (id, e)).collect();
    for (position, certificate) in &snapshot.certificates {
        let touched = touched_by(&certificate.order, |id| {
            Ok(batch
                .get(id)
                .map(|escrow| **escrow)
                .or_else(|| committed.escrows.get(id).copied()))
        })?;
        rows.push(Row::Certificate(*position, certificate.clone(), touched));
    }
    rows.extend(
        cursors
            .iter()
            .map(|(peer, cursor)| Row::Cursor(*peer, *cursor)),
    );
    rows.push(Row::Supply(snapshot.supply));
    rows.push(Row::Commit);
    Ok(rows)
}

impl Committed {
    /// Applies the transaction of `rows` if a commit record seals it; a torn one (the
    /// process died while writing it) is ignored whole.
    fn replay(&mut self, mut rows: Vec<Row>) {
        if !matches!(rows.pop(), Some(Row::Commit)) {
            return;
        }
        for row in rows {
            self.apply(row);
        }
    }

    /// Applies one row of a sealed transaction whose batch [`Self::check`] accepted.
    fn apply(&mut self, row: Row) {
        match row {
            Row::Account(account, state) => {
                self.accounts.insert(account, state);
            }
            Row::Lock(LockChange::Set(lock)) => {
                self.locks.insert(lock_key(&lock.slot), lock);
            }
            Row::Lock(LockChange::Clear(slot)) => {
                self.locks.remove(&lock_key(&slot));
            }
            Row::Escrow(id, escrow) => {
                self.escrows.insert(id, escrow);
            }
            Row::Certificate(position, certificate, touched) => {
                if let Some(spender) = certificate.order.spender() {
                    self.sent.insert(spender, position);
                }
                for account in touched {
                    self.touching.insert((account, position));
                }
                self.log.push(certificate);
            }
            Row::Cursor(peer, cursor) => {
                self.cursors.insert(peer, cursor);
            }
            Row::Supply(supply) => self.supply = supply,
            Row::Commit => {}
        }
    }

    /// Refuses a batch that would not extend the log in order (a snapshot committed out of
    /// turn), before anything of it is applied.
    fn check(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let mut next = self.log.len() as u64;
        for (position, _) in &snapshot.certificates {
            if *position != next {
                return Err(StoreError::Corrupt(format!(
                    "certificate for log position {position} where the log ends at {next}"
                )));
            }
            next += 1;
        }
        if next != snapshot.log_len {
            return Err(StoreError::Corrupt(format!(
                "a batch ending the log at {} carries certificates up to {next}",
                snapshot.log_len
            )));
        }
        Ok(())
    }

    /// The certificates at the log positions of `rows` ((cursor, position), in order): at
    /// most `limit`, and the cursor of the next row if there is one.
    fn page(&self, rows: Vec<(u64, u64)>, limit: usize) -> Result<CertificatePage, StoreError> {
        let next = rows.get(limit).map(|(cursor, _)| *cursor);
        let mut out = Vec::with_capacity(rows.len().min(limit));
        for (_, position) in rows.into_iter().take(limit) {
            let certificate = usize::try_from(position)
                .ok()
                .and_then(|at| self.log.get(at))
                .ok_or_else(|| StoreError::Corrupt(format!("an index points at {position}")))?;
            out.push((position, certificate.clone()));
        }
        Ok((out, next))
    }
}

impl MemoryLedgerStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// What a restarted process finds after this one died now: a new store holding exactly
    /// the committed batches (and no armed failures); what a commit in progress wrote but
    /// did not sync is lost. Commits this store takes afterwards, say from an engine thread
    /// still running, do not reach it.
    pub fn crash(&self) -> Self {
        self.restarted(false)
    }

    /// [`Self::crash`] on a disk that kept every write made before the process died, synced
    /// or not: the commit in progress counts only if its commit record was written.
    pub fn crash_keeping_unsynced(&self) -> Self {
        self.restarted(true)
    }

    fn restarted(&self, keep_unsynced: bool) -> Self {
        MemoryLedgerStore {
            disk: Mutex::new(Disk {
                committed: self.disk().recover(keep_unsynced),
                ..Disk::default()
            }),
            ..Self::default()
        }
    }

    /// Kills the store at its `k`-th write from now (counting from 0; each row of a commit
    /// is a write, and so is the sync that ends it; a checkpoint writes nothing): that
    /// write fails and does not happen, and so does every later one, as when the process
    /// dies there. [`Self::crash`] or [`Self::crash_keeping_unsynced`] then gives the
    /// restarted store.
    pub fn crash_at_write(&self, k: u64) {
        self.disk().crash_in = Some(k);
    }

    /// Whether the crash armed by [`Self::crash_at_write`] happened.
    pub fn has_crashed(&self) -> bool {
        self.disk().crashed
    }

    /// Makes the next commit that has something to write fail, writing nothing, as a full
    /// or broken disk would.
    pub fn fail_next_commit(&self) {
        self.fail_next_commit.store(true, Ordering::Relaxed);
    }

    /// Disarms the failures armed by [`Self::fail_next_commit`] and
    /// [`Self::fail_next_checkpoint`] that have not struck yet.
    pub fn disarm(&self) {
        self.fail_next_commit.store(false, Ordering::Relaxed);
        self.fail_next_checkpoint.store(false, Ordering::Relaxed);
    }

    /// Makes the next checkpoint fail (having lost nothing committed, as in redb).
    pub fn fail_next_checkpoint(&self) {
        self.fail_next_checkpoint.store(true, Ordering::Relaxed);
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        // Committed state is changed only by a replay, which cannot panic half-way through a
        // batch it checked; a panic elsewhere leaves it consistent.
        self.disk.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn committed(&self) -> MappedCommitted<'_> {
        MappedCommitted(self.disk())
    }
}

/// The committed state, borrowed from the locked disk.
struct MappedCommitted<'a>(MutexGuard<'a, Disk>);

impl std::ops::Deref for MappedCommitted<'_> {
    type Target = Committed;
    fn deref(&self) -> &Committed {
        &self.0.committed
    }
}

impl std::ops::DerefMut for MappedCommitted<'_> {
    fn deref_mut(&mut self) -> &mut Committed {
        &mut self.0.committed
    }
}

impl LedgerStore for MemoryLedgerStore {
    fn load(
        &self,
        validator: &mut Validator,
        contract: &NetworkContract,
    ) -> Result<(), StoreError> {
        let network = contract.id();
        let mut committed = self.committed();
        match committed.network {
            None => {
                validator
                    .apply_genesis(contract)
                    .map_err(|e| StoreError::Corrupt(format!("genesis: {e}")))?;
                drop(validator.take_changes());
                committed.accounts = validator.accounts().map(|(a, s)| (*a, *s)).collect();
                committed.supply = validator.supply();
                committed.network = Some(network);
                return Ok(());
            }
            Some(stored) if stored != network => return Err(StoreError::WrongNetwork),
            Some(_) => {}
        }
        validator.restore(
            committed.accounts.iter().map(|(a, s)| (*a, *s)).collect(),
            Vec::new(),
            committed.supply,
            committed.log.len() as u64,
        );
        // Before the locks: whether an escrow's vote still binds depends on the escrow.
        validator.restore_escrows(committed.escrows.iter().map(|(id, e)| (*id, *e)));
        let live = committed
            .locks
            .values()
            .filter(|lock| lock_is_live(validator, &lock.slot))
            .cloned()
            .collect();
        validator.restore_locks(live);
        Ok(())
    }

    fn commit_snapshot(
        &self,
        snapshot: &Snapshot,
        cursors: &[(AccountId, u64)],
    ) -> Result<(), StoreError> {
        if snapshot.is_empty() && cursors.is_empty() {
            return Ok(());
        }
        if self.fail_next_commit.swap(false, Ordering::Relaxed) {
            return Err(StoreError::Injected("commit"));
        }
        let mut disk = self.disk();
        if disk.crashed {
            return Err(StoreError::Injected("the store crashed"));
        }
        disk.committed.check(snapshot)?;
        for row in rows(snapshot, cursors, &disk.committed)? {
            disk.write(row)?;
        }
        disk.sync()
    }

    /// Nothing is ever deferred: succeeds, unless a failure was injected.
    fn checkpoint_if_due(&self) -> Result<(), StoreError> {
        self.checkpoint()
    }

    /// Writes nothing (nothing is deferred); fails when a failure was injected or the store
    /// crashed.
    fn checkpoint(&self) -> Result<(), StoreError> {
        if self.fail_next_checkpoint.swap(false, Ordering::Relaxed) {
            return Err(StoreError::Injected("checkpoint"));
        }
        if self.disk().crashed {
            return Err(StoreError::Injected("the store crashed"));
        }
        Ok(())
    }

    /// Always none: nothing is deferred.
    fn checkpoints(&self) -> (u64, u64) {
        (0, 0)
    }

    fn cursor(&self, peer: &AccountId) -> Result<u64, StoreError> {
        Ok(self.committed().cursors.get(peer).copied().unwrap_or(0))
    }

    fn certificates_since(&self, since: u64, limit: usize) -> Result<CertificatePage, StoreError> {
        let committed = self.committed();
        let end = committed.log.len() as u64;
        let rows = (since..end)
            .take(limit.saturating_add(1))
            .map(|p| (p, p))
            .collect();
        committed.page(rows, limit)
    }

    fn sent(
        &self,
        account: &AccountId,
        from: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError> {
        let committed = self.committed();
        let rows = committed
            .sent
            .range((*account, from)..=(*account, u64::MAX))
            .take(limit.saturating_add(1))
            .map(|((_, sequence), position)| (*sequence, *position))
            .collect();
        committed.page(rows, limit)
    }

    fn touching(
        &self,
        account: &AccountId,
        since: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError> {
        let committed = self.committed();
        let rows = committed
            .touching
            .range((*account, since)..=(*account, u64::MAX))
            .take(limit.saturating_add(1))
            .map(|(_, position)| (*position, *position))
            .collect();
        committed.page(rows, limit)
    }

    fn accounts_page(
        &self,
        after: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<(AccountId, AccountState)>, StoreError> {
        let lower = match after {
            Some(after) => Bound::Excluded(*after),
            None => Bound::Unbounded,
        };
        Ok(self
            .committed()
            .accounts
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(a, s)| (*a, *s))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::test_fixture::{Network, view};

    #[test]
    fn a_crash_copies_the_committed_state_and_later_commits_do_not_reach_it() {
        let n = Network::new("crash copy", 2);
        let store = MemoryLedgerStore::new();
        let mut v = n.load(&store);
        let first = n.certificate(n.pay(&n.alice, &n.bob, 10, 0));
        v.handle_certificate(&first, true).unwrap();
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        let crashed = store.crash();
        let seen = view(&crashed, &n.everyone());
        assert_eq!(seen, view(&store, &n.everyone()));
        // The dead process's engine commits once more: the restarted one never sees it.
        let second = n.certificate(n.pay(&n.alice, &n.bob, 10, 1));
        v.handle_certificate(&second, true).unwrap();
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        assert_eq!(view(&crashed, &n.everyone()), seen);
        assert_eq!(store.certificates_since(0, 9).unwrap().0.len(), 2);
        assert_eq!(n.load(&crashed).log_len(), 1);
    }

    #[test]
    fn a_batch_out_of_turn_is_refused_whole() {
        let n = Network::new("out of turn", 2);
        let store = MemoryLedgerStore::new();
        let mut v = n.load(&store);
        let certificate = n.certificate(n.pay(&n.alice, &n.bob, 10, 0));
        v.handle_certificate(&certificate, true).unwrap();
        let mut snapshot = v.take_snapshot();
        snapshot.certificates[0].0 = 1;
        let peer = n.keys[1].account();
        assert!(matches!(
            store.commit_snapshot(&snapshot, &[(peer, 1)]),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(store.cursor(&peer).unwrap(), 0);
        assert!(store.certificates_since(0, 9).unwrap().0.is_empty());
        assert_eq!(store.accounts_page(None, 9).unwrap()[0].1.balance, 1000);
    }

    #[test]
    fn injected_failures_fire_once() {
        let n = Network::new("failures", 2);
        let store = MemoryLedgerStore::new();
        let mut v = n.load(&store);
        store.fail_next_checkpoint();
        assert!(matches!(
            store.checkpoint_if_due(),
            Err(StoreError::Injected("checkpoint"))
        ));
        store.checkpoint_if_due().unwrap();
        store.fail_next_commit();
        // An empty batch writes nothing, so it does not use up the failure.
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        v.handle_certificate(&n.certificate(n.pay(&n.alice, &n.bob, 10, 0)), true)
            .unwrap();
        let snapshot = v.take_snapshot();
        assert!(matches!(
            store.commit_snapshot(&snapshot, &[]),
            Err(StoreError::Injected("commit"))
        ));
        store.commit_snapshot(&snapshot, &[]).unwrap();
        assert_eq!(store.certificates_since(0, 9).unwrap().0.len(), 1);
    }

    #[test]
    fn a_crash_at_a_write_kills_the_store_and_only_a_sealed_batch_survives() {
        let n = Network::new("crash at a write", 2);
        let store = MemoryLedgerStore::new();
        let mut v = n.load(&store);
        v.handle_certificate(&n.certificate(n.pay(&n.alice, &n.bob, 10, 0)), true)
            .unwrap();
        let snapshot = v.take_snapshot();
        // Two accounts, a certificate, the supply, the commit record, then the sync.
        let writes = rows(&snapshot, &[], &Committed::default()).unwrap().len() as u64 + 1;
        assert_eq!(writes, 6);
        let before = view(&store, &n.everyone());
        // Dies at the sync: the commit record was written, not synced.
        store.crash_at_write(writes - 1);
        assert!(!store.has_crashed());
        assert!(store.commit_snapshot(&snapshot, &[]).is_err());
        assert!(store.has_crashed());
        assert_eq!(view(&store.crash(), &n.everyone()), before);
        assert_eq!(
            store
                .crash_keeping_unsynced()
                .certificates_since(0, 9)
                .unwrap()
                .0
                .len(),
            1
        );
        // Dead for good: no later commit or checkpoint reaches the disk.
        assert!(store.commit_snapshot(&snapshot, &[]).is_err());
        assert!(store.checkpoint().is_err());
        // One write earlier, the batch is torn: ignored whether or not its rows were kept.
        let store = n_store_after(&n, &before);
        store.crash_at_write(writes - 2);
        assert!(store.commit_snapshot(&snapshot, &[]).is_err());
        assert_eq!(view(&store.crash_keeping_unsynced(), &n.everyone()), before);
    }

    /// A fresh store of `n` holding its genesis, checked against `expected`.
    fn n_store_after(n: &Network, expected: &[String]) -> MemoryLedgerStore {
        let store = MemoryLedgerStore::new();
        drop(n.load(&store));
        assert_eq!(view(&store, &n.everyone()), expected);
        store
    }
}
