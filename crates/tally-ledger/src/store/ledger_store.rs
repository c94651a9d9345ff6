//! What the validator needs from its storage, whatever keeps it.

use tally_core::{AccountId, Certificate, EscrowId, LockSlot, NetworkContract, Order};

use crate::state::{AccountState, Changes, EscrowState, Settlement, Snapshot, Validator};

/// Certificates with their log positions, and where the next page starts if there is more.
pub type CertificatePage = (Vec<(u64, Certificate)>, Option<u64>);

/// A storage failure. The batch that hit it was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("this data folder belongs to another network")]
    WrongNetwork,
    /// A failure a test asked for (see `MemoryLedgerStore::fail_next_commit`), so that the
    /// failed-commit path can be exercised without breaking a disk.
    #[error("injected failure: {0}")]
    Injected(&'static str),
}

/// The validator's durable state: accounts, escrows, vote locks, the certificate log and
/// its indexes, and the peer sync cursors.
///
/// The engine is the only writer: it loads the ledger once at start, then commits one
/// [`Snapshot`] per batch and releases the batch's answers only after that commit returned,
/// so the contract every implementation keeps is:
///
/// - **a commit is atomic and durable**: when [`Self::commit_snapshot`] returns `Ok`, the
///   whole batch survives a crash; when it returns `Err` (or the process dies inside it),
///   none of it is visible, now or after a restart;
/// - **a restart recovers exactly what was committed**: [`Self::load`] on a reopened store
///   gives a validator the accounts, escrows, supply, log length and open vote locks of the
///   last committed batch, and no more;
/// - **reads see the last committed batch**, never a half of one.
///
/// The same conformance tests run against every implementation (`store::conformance`).
pub trait LedgerStore: Send + Sync {
    /// Loads the ledger into `validator`, or on an empty store funds the contract's genesis
    /// and makes it durable. Fails with [`StoreError::WrongNetwork`] on a store written
    /// for another contract.
    fn load(&self, validator: &mut Validator, contract: &NetworkContract)
    -> Result<(), StoreError>;

    /// Makes one batch durable from a [`Snapshot`] (which lets the validator go on deciding
    /// the next batch meanwhile), with the peer sync cursors the batch advanced. Snapshots
    /// must be committed in the order they were taken. An empty snapshot without cursors
    /// writes nothing.
    fn commit_snapshot(
        &self,
        snapshot: &Snapshot,
        cursors: &[(AccountId, u64)],
    ) -> Result<(), StoreError>;

    /// Makes one batch durable straight from the validator's `changes` (taken from it just
    /// now), then does any housekeeping that is due: the one-call form for callers that do
    /// not overlap deciding and writing.
    fn commit(
        &self,
        validator: &Validator,
        changes: &Changes,
        cursors: &[(AccountId, u64)],
    ) -> Result<(), StoreError> {
        let mut escrows: Vec<(EscrowId, EscrowState)> = changes
            .escrows
            .iter()
            .filter_map(|id| Some((*id, validator.escrow(id)?)))
            .collect();
        // In id order, so that a batch is always written the same way.
        escrows.sort_unstable_by_key(|(id, _)| *id);
        let snapshot = Snapshot {
            accounts: changes
                .accounts
                .iter()
                .map(|account| (*account, validator.account(account)))
                .collect(),
            locks: changes.locks.clone(),
            certificates: changes.certificates.clone(),
            escrows,
            supply: validator.supply(),
            log_len: validator.log_len(),
        };
        self.commit_snapshot(&snapshot, cursors)?;
        self.checkpoint_if_due()
    }

    /// Does the deferred work that has become due (a store that defers none has none).
    /// The engine calls it between batches, after their answers are out, so that the cost
    /// lands on no request's latency. A failure loses nothing committed, but leaves the
    /// store in doubt.
    fn checkpoint_if_due(&self) -> Result<(), StoreError>;

    /// Does all deferred work now, whether due or not.
    fn checkpoint(&self) -> Result<(), StoreError>;

    /// Checkpoints written since the store was opened, and the time they took in all (µs):
    /// the deferred part of the batches' cost, for benchmarks and the control API.
    fn checkpoints(&self) -> (u64, u64);

    /// Where syncing from `peer` should resume (0 if it never synced).
    fn cursor(&self, peer: &AccountId) -> Result<u64, StoreError>;

    /// Certificates at log positions `since..`, at most `limit`; and the position the next
    /// page starts at if there are more.
    fn certificates_since(&self, since: u64, limit: usize) -> Result<CertificatePage, StoreError>;

    /// Certificates of the orders `account` signed, from sequence `from`, at most `limit`;
    /// and the sequence the next page starts at if there are more.
    fn sent(
        &self,
        account: &AccountId,
        from: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError>;

    /// Certificates that moved `account`'s balance, at log positions `since..`, at most
    /// `limit`; and the position the next page starts at if there are more.
    fn touching(
        &self,
        account: &AccountId,
        since: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError>;

    /// Accounts after `after` in key order, at most `limit`, as of the last committed batch.
    fn accounts_page(
        &self,
        after: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<(AccountId, AccountState)>, StoreError>;
}

/// Whether a stored vote lock still binds `validator` (loaded up to the lock's batch or
/// later): a transfer lock whose sequence was since applied, and an intro lock of a key
/// since introduced, are history and are not restored.
pub(super) fn lock_is_live(validator: &Validator, slot: &LockSlot) -> bool {
    match slot {
        LockSlot::Sequence(account, sequence) => {
            *sequence >= validator.account(account).next_sequence
        }
        LockSlot::Intro(account) => !validator.account(account).introduced,
        LockSlot::Escrow(id) => validator
            .escrow(id)
            .is_none_or(|escrow| escrow.settlement == Settlement::Open),
    }
}

/// The accounts whose balance applying `order` moved, for the `touching` index: its sender
/// (an escrow lock's payer) or introduced key, its recipients, and for an escrow's claim or
/// refund the payee or payer of the escrow it settles, which only the ledger knows:
/// `escrow` finds it (the batch's own escrows first, then the store's). A settlement of an
/// escrow nobody holds cannot have been applied, so it is refused as corrupt.
pub(super) fn touched_by(
    order: &Order,
    escrow: impl FnOnce(&EscrowId) -> Result<Option<EscrowState>, StoreError>,
) -> Result<Vec<AccountId>, StoreError> {
    let mut touched = Vec::with_capacity(2);
    match order.lock_slot() {
        LockSlot::Sequence(sender, _) => touched.push(sender),
        LockSlot::Intro(account) => touched.push(account),
        LockSlot::Escrow(id) => {
            let escrow = escrow(&id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("a settlement of escrow {id}, which is not held"))
            })?;
            touched.push(match order {
                Order::EscrowClaim(_) => escrow.lock.payee,
                _ => escrow.lock.payer,
            });
        }
    }
    touched.extend(
        order
            .payments()
            .into_iter()
            .map(|payment| payment.recipient),
    );
    Ok(touched)
}
