//! A ledger store in memory, for tests and the deterministic simulator: the same contract
//! as the redb store, with crashes and failed commits on demand.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tally_core::{AccountId, Amount, Certificate, LockSlot, NetworkContract, NetworkId};

use crate::state::{AccountState, LockChange, Snapshot, Validator, VoteLock};
use crate::store::ledger_store::{CertificatePage, LedgerStore, StoreError, lock_is_live};

/// A [`LedgerStore`] that keeps everything in memory.
///
/// A commit is applied whole or not at all, and what it applied is the store's "disk":
/// nothing is deferred, so there are no checkpoints. [`Self::crash`] gives what a restarted
/// process would find — exactly the committed batches — and [`Self::fail_next_commit`] /
/// [`Self::fail_next_checkpoint`] make the engine's failure paths reachable in tests.
#[derive(Default)]
pub struct MemoryLedgerStore {
    committed: Mutex<Committed>,
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
    /// Open vote locks, one per slot kind and account (a transfer lock is replaced by the
    /// account's next one).
    locks: BTreeMap<(bool, AccountId), VoteLock>,
    /// The certificate log; a certificate's log position is its index.
    log: Vec<Certificate>,
    /// Sender and sequence → log position.
    sent: BTreeMap<(AccountId, u64), u64>,
    /// Account and log position of each certificate that moved its balance.
    touching: BTreeSet<(AccountId, u64)>,
    cursors: HashMap<AccountId, u64>,
}

fn lock_key(slot: &LockSlot) -> (bool, AccountId) {
    match slot {
        LockSlot::Sequence(account, _) => (false, *account),
        LockSlot::Intro(account) => (true, *account),
    }
}

impl Committed {
    /// Applies a batch that [`Self::check`] accepted.
    fn apply(&mut self, snapshot: &Snapshot, cursors: &[(AccountId, u64)]) {
        for (account, state) in &snapshot.accounts {
            self.accounts.insert(*account, *state);
        }
        for change in &snapshot.locks {
            match change {
                LockChange::Set(lock) => {
                    self.locks.insert(lock_key(&lock.slot), lock.clone());
                }
                LockChange::Clear(slot) => {
                    self.locks.remove(&lock_key(slot));
                }
            }
        }
        for (position, certificate) in &snapshot.certificates {
            match certificate.order.lock_slot() {
                LockSlot::Sequence(sender, sequence) => {
                    self.sent.insert((sender, sequence), *position);
                    self.touching.insert((sender, *position));
                }
                LockSlot::Intro(account) => {
                    self.touching.insert((account, *position));
                }
            }
            for payment in certificate.order.payments() {
                self.touching.insert((payment.recipient, *position));
            }
            self.log.push(certificate.clone());
        }
        self.supply = snapshot.supply;
        for (peer, cursor) in cursors {
            self.cursors.insert(*peer, *cursor);
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
    /// the committed batches (and no armed failures). Commits this store takes afterwards,
    /// say from an engine thread still running, do not reach it.
    pub fn crash(&self) -> Self {
        MemoryLedgerStore {
            committed: Mutex::new(self.committed().clone()),
            ..Self::default()
        }
    }

    /// Makes the next commit that has something to write fail, writing nothing, as a full
    /// or broken disk would.
    pub fn fail_next_commit(&self) {
        self.fail_next_commit.store(true, Ordering::Relaxed);
    }

    /// Makes the next checkpoint fail (having lost nothing committed, as in redb).
    pub fn fail_next_checkpoint(&self) {
        self.fail_next_checkpoint.store(true, Ordering::Relaxed);
    }

    fn committed(&self) -> MutexGuard<'_, Committed> {
        // Committed state is replaced only by a finished `apply`, which cannot panic
        // half-way through a batch it checked; a panic elsewhere leaves it consistent.
        self.committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
        let mut committed = self.committed();
        committed.check(snapshot)?;
        committed.apply(snapshot, cursors);
        Ok(())
    }

    /// Nothing is ever deferred: succeeds, unless a failure was injected.
    fn checkpoint_if_due(&self) -> Result<(), StoreError> {
        self.checkpoint()
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        if self.fail_next_checkpoint.swap(false, Ordering::Relaxed) {
            return Err(StoreError::Injected("checkpoint"));
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
}
