//! Escrows on the chain (DESIGN §8): admitting locks, claims and refunds to the mempool,
//! keeping them valid as the tip moves, and answering what a wallet or a maker asks about
//! an escrow. Deadlines are times (ms since the Unix epoch) judged by the chain's median
//! time past, the clock block timestamps are checked against (ARCHITECTURE.md, "Escrows
//! on a proof-of-work network").

use tally_core::{
    Digest, EscrowId, EscrowSecret, EscrowState, LockSlot, Order, Settlement, TxStatus,
};

use super::Chain;
use crate::block::Transaction;
use crate::error::TxRejected;
use crate::escrows::Escrows;
use crate::spend::{Effect, Settle};
use crate::state::Overlay;
use crate::store::ChainStore;

/// The longest a miner's mempool takes an escrow to be locked for (30 days, as a
/// validator's ledger). Local policy, not consensus: a block may hold any lock whose
/// deadline is after its parent's median time past.
const MAX_ESCROW_MS: u64 = 30 * 24 * 60 * 60 * 1000;

impl<S: ChainStore> Chain<S> {
    /// Every escrow of the main chain as of the tip.
    pub fn escrows(&self) -> &Escrows {
        &self.escrows
    }

    /// The escrow `id`, open or settled, as of the tip.
    pub fn escrow(&self, id: &EscrowId) -> Option<EscrowState> {
        self.escrows.get(id).copied()
    }

    /// The escrow locked under `hash_lock` on the main chain.
    pub fn escrow_by_hash_lock(&self, hash_lock: &Digest) -> Option<EscrowId> {
        self.escrows.by_hash_lock(hash_lock)
    }

    /// The secret behind `hash_lock` as soon as this node has seen a valid claim show it
    /// (admitted to its mempool, or confirmed): a resuming wallet or maker asks this first.
    pub fn secret_for(&self, hash_lock: &Digest) -> Option<EscrowSecret> {
        self.escrows
            .secret_for(hash_lock)
            .or_else(|| self.revealed.get(hash_lock))
    }

    /// How deep the escrow `id`'s lock and (once settled) its settlement are, as a
    /// transaction's status: a wallet waits for enough confirmations of a lock before it
    /// acts on it, and for enough of a claim before it counts it as paid.
    pub fn escrow_depth(&self, id: &EscrowId) -> Option<(TxStatus, Option<TxStatus>)> {
        let escrow = self.escrows.get(id)?;
        let lock = self.slot_depth(&LockSlot::Sequence(escrow.lock.payer, escrow.lock.sequence));
        let settlement = match escrow.settlement {
            Settlement::Open => None,
            Settlement::Claimed(_) | Settlement::Refunded => {
                Some(self.slot_depth(&LockSlot::Escrow(*id)))
            }
        };
        Some((lock, settlement))
    }

    /// The signed lock of escrow `id` while its block is among the recent ones (a wire's
    /// receipt keeps it: the payer's signature over the terms, and where it was mined).
    pub fn escrow_lock_transaction(&self, id: &EscrowId) -> Option<(u64, Transaction)> {
        let escrow = self.escrows.get(id)?;
        self.recent
            .get(&LockSlot::Sequence(escrow.lock.payer, escrow.lock.sequence))
            .filter(|(_, tx)| tx.order.digest(&self.params.network) == *id)
    }

    /// The status of the main-chain transaction in `slot`, known to be applied: exact
    /// while its block is among the recent ones, "buried" below them.
    fn slot_depth(&self, slot: &LockSlot) -> TxStatus {
        match self.recent.get(slot) {
            Some((height, _)) => TxStatus::Confirmed {
                height,
                confirmations: self.height().saturating_sub(height) + 1,
            },
            None => {
                let oldest = self.recent.oldest_height().unwrap_or(self.height() + 1);
                TxStatus::Buried {
                    confirmations: self.height().saturating_sub(oldest) + 1,
                }
            }
        }
    }

    /// The median time past of the tip: what the next block's escrow orders are judged
    /// by (a claim while it is before the deadline, a refund once it has reached it).
    pub fn median_time(&self) -> u64 {
        self.median_time_past(&self.tip_hash())
    }

    /// The deadlines the mempool takes for a new lock: after the chain's median time past,
    /// and at most 30 days after it (without a far bound before the first block, whose
    /// median time is 0).
    pub fn lock_deadline_range(&self) -> (u64, u64) {
        let median = self.median_time();
        let max = if median == 0 {
            u64::MAX
        } else {
            median.saturating_add(MAX_ESCROW_MS)
        };
        (median.saturating_add(1), max)
    }

    /// Checks what the mempool needs of a lock beyond what any spend needs: a deadline in
    /// range and a hash lock no escrow of the chain uses.
    pub(super) fn admit_lock(&self, tx: &Transaction) -> Result<(), TxRejected> {
        let Order::EscrowLock(lock) = &tx.order else {
            return Ok(());
        };
        let (min, max) = self.lock_deadline_range();
        if !(min..=max).contains(&lock.deadline) {
            return Err(TxRejected::EscrowDeadline {
                deadline: lock.deadline,
                median_time: self.median_time(),
                min,
                max,
            });
        }
        if self.escrows.by_hash_lock(&lock.hash_lock).is_some() {
            return Err(TxRejected::HashLockReused(lock.hash_lock));
        }
        Ok(())
    }

    /// Admits a claim or refund (its signature field already checked) valid in the next
    /// block; a claim's secret is remembered from then on, mined or not.
    pub(super) fn submit_settlement(
        &mut self,
        tx: Transaction,
        settle: Settle,
    ) -> Result<(), TxRejected> {
        let median_time = self.median_time();
        Overlay::new(&self.accounts, &self.escrows)
            .settleable(&settle, median_time)
            .map_err(|error| error.rejected(settle.escrow, median_time))?;
        self.mempool.insert_settlement(settle.escrow, tx)?;
        if let Some(secret) = settle.secret {
            self.revealed.insert(secret);
        }
        Ok(())
    }

    /// After the tip moved: drops the pending settlements and locks the next block could
    /// no longer take.
    pub(super) fn revalidate_escrow_orders(&mut self) {
        let median_time = self.median_time();
        let network = self.params.network;
        let view = Overlay::new(&self.accounts, &self.escrows);
        self.mempool.retain_settlements(|tx| {
            matches!(Effect::of(tx, &network), Ok(Effect::Settle(settle))
                if view.settleable(&settle, median_time).is_ok())
        });
        let escrows = &self.escrows;
        self.mempool.retain_locks(|tx| match &tx.order {
            Order::EscrowLock(lock) => {
                lock.deadline > median_time && escrows.by_hash_lock(&lock.hash_lock).is_none()
            }
            _ => true,
        });
    }

    /// Whether `tx` itself is pending in the mempool.
    pub(super) fn is_pending(&self, tx: &Transaction) -> bool {
        match tx.order.lock_slot() {
            LockSlot::Sequence(sender, sequence) => self.mempool.get(&sender, sequence) == Some(tx),
            LockSlot::Escrow(escrow) => self.mempool.settlement(&escrow) == Some(tx),
            LockSlot::Intro(_) => false,
        }
    }
}
