//! Hash-locked escrows in the validator (DESIGN §8).
//!
//! A certified [`EscrowLock`] debits its payer and opens the escrow; the money is then in
//! no balance until a certified claim pays the payee or a certified refund returns it to
//! the payer. Claim and refund share the escrow's lock slot ([`LockSlot::Escrow`]): this
//! validator votes for at most one of them, ever, so two quorums (which share an honest
//! validator) can never certify both. Claims are voted while this validator's clock is
//! before the deadline, refunds only once it is past the deadline plus ε, the contract's
//! bound on clock skew: that ordering is what lets a claimant that follows the timing rule
//! win (liveness); safety needs no clock at all.
//!
//! The vote publishes the secret: the claim order voted for is kept with the vote (durable
//! before the vote leaves), and [`Validator::secret_for`] answers it by hash lock to anyone.

use tally_core::{
    Amount, Digest, EscrowClaim, EscrowId, EscrowLock, EscrowRefund, EscrowSecret, LockSlot,
    OrderDigest, SignedOrder,
};
pub use tally_core::{EscrowState, Settlement};

use super::{LedgerError, LockChange, Spend, Validator, VoteLock};

/// The longest an escrow may be locked for, in milliseconds (30 days): long enough for any
/// wire, short enough that nobody can freeze a validator's memory with escrows forever
/// pending.
pub const MAX_ESCROW_MS: u64 = 30 * 24 * 60 * 60 * 1000;

impl Validator {
    /// Decides a lock: the network takes escrows, the lock's shape, a known counterpart, a
    /// deadline not too far ahead, then the payer's slot exactly as a transfer of `amount`.
    ///
    /// A deadline already near or past is *not* refused. A lock takes the payer's sequence
    /// slot, and a rule that time can turn from yes to no would let a lock that gathered
    /// some votes (its wallet crashed, the network was cut) become one the others refuse
    /// once its deadline nears: the payer's slot would freeze for good. A late lock is
    /// harmless instead: it certifies, and its payer refunds it at once. Wallets never sign
    /// one (they want time to be claimed); the far limit is safe, since time only moves a
    /// deadline nearer.
    pub(super) fn decide_escrow_lock(
        &mut self,
        lock: &EscrowLock,
        digest: OrderDigest,
        order: &SignedOrder,
    ) -> Result<(), LedgerError> {
        self.max_clock_skew_ms.ok_or(LedgerError::NoEscrows)?;
        lock.check_shape(&self.network)?;
        if let Some(counterpart) = lock.counterpart
            && !self.counterparts.contains(&counterpart.network)
        {
            return Err(LedgerError::UnknownCounterpart(counterpart.network));
        }
        if lock.deadline > self.now_ms.saturating_add(MAX_ESCROW_MS) {
            return Err(LedgerError::DeadlineTooFar {
                deadline: lock.deadline,
            });
        }
        // Another lock under this hash lock; this very lock, applied already, is refused
        // below as a spent sequence, like any order asked for again.
        if self
            .hash_locks
            .get(&lock.hash_lock)
            .is_some_and(|existing| *existing != digest)
        {
            return Err(LedgerError::HashLockReused(lock.hash_lock));
        }
        let spend = Spend {
            sender: lock.payer,
            sequence: lock.sequence,
            total: lock.amount,
        };
        self.decide_spend(spend, digest, order)
    }

    /// Decides a claim: the escrow is open here, the secret opens it, and this validator's
    /// clock is before the deadline.
    pub(super) fn decide_escrow_claim(
        &mut self,
        claim: &EscrowClaim,
        digest: OrderDigest,
        order: &SignedOrder,
    ) -> Result<(), LedgerError> {
        let escrow = self.settleable(&claim.escrow)?;
        if self.holds_vote(&claim.escrow, &digest) {
            return Ok(());
        }
        if claim.secret.hash_lock() != escrow.lock.hash_lock {
            return Err(LedgerError::WrongSecret);
        }
        if self.now_ms >= escrow.lock.deadline {
            return Err(LedgerError::DeadlinePassed {
                deadline: escrow.lock.deadline,
                now: self.now_ms,
            });
        }
        self.lock_escrow_slot(claim.escrow, digest, order)?;
        self.secrets.insert(escrow.lock.hash_lock, claim.secret);
        Ok(())
    }

    /// Decides a refund: the escrow is open here and this validator's clock is past the
    /// deadline plus ε.
    pub(super) fn decide_escrow_refund(
        &mut self,
        refund: &EscrowRefund,
        digest: OrderDigest,
        order: &SignedOrder,
    ) -> Result<(), LedgerError> {
        let escrow = self.settleable(&refund.escrow)?;
        if self.holds_vote(&refund.escrow, &digest) {
            return Ok(());
        }
        let skew = self.max_clock_skew_ms.unwrap_or(0);
        let from = escrow.lock.deadline.saturating_add(skew);
        if self.now_ms < from {
            return Err(LedgerError::RefundTooEarly {
                from,
                now: self.now_ms,
            });
        }
        self.lock_escrow_slot(refund.escrow, digest, order)
    }

    /// Whether this validator holds its vote in escrow `id`'s slot for exactly the order
    /// of `digest`. Asked again, it votes again whatever its clock says now: a claimant
    /// whose vote answers were lost must be able to assemble the certificate its votes
    /// already make, even once the deadline has passed (else an escrow a quorum voted to
    /// claim would freeze).
    fn holds_vote(&self, id: &EscrowId, digest: &OrderDigest) -> bool {
        self.escrow_votes
            .get(id)
            .is_some_and(|(voted, _)| voted == digest)
    }

    /// The escrow `id` if a claim or refund of it may be voted: while it is open here (a
    /// planted `VoteClaimAndRefund` forgets that it was settled, which is voting for both).
    fn settleable(&self, id: &EscrowId) -> Result<EscrowState, LedgerError> {
        #[cfg(feature = "planted-bugs")]
        if self.planted == Some(super::PlantedBug::VoteClaimAndRefund)
            && let Some(escrow) = self.escrows.get(id)
        {
            return Ok(*escrow);
        }
        self.open_escrow(id)
    }

    /// The escrow `id` while it is open here.
    fn open_escrow(&self, id: &EscrowId) -> Result<EscrowState, LedgerError> {
        let escrow = self
            .escrows
            .get(id)
            .copied()
            .ok_or(LedgerError::UnknownEscrow(*id))?;
        if escrow.settlement != Settlement::Open {
            return Err(LedgerError::EscrowSettled(*id));
        }
        Ok(escrow)
    }

    /// Holds this validator's one vote in escrow `id`'s slot for `order`, or refuses if it
    /// voted for the other settlement.
    fn lock_escrow_slot(
        &mut self,
        id: EscrowId,
        digest: OrderDigest,
        order: &SignedOrder,
    ) -> Result<(), LedgerError> {
        if let Some((voted, _)) = self.escrow_votes.get(&id) {
            #[cfg(feature = "planted-bugs")]
            let votes_twice = matches!(
                self.planted,
                Some(super::PlantedBug::VoteTwice | super::PlantedBug::VoteClaimAndRefund)
            );
            #[cfg(not(feature = "planted-bugs"))]
            let votes_twice = false;
            if *voted != digest && !votes_twice {
                return Err(LedgerError::Conflict { voted: *voted });
            }
            if *voted == digest {
                return Ok(());
            }
            // Only a planted second vote gets here: it takes the slot's lock.
        }
        self.escrow_votes.insert(id, (digest, Some(order.clone())));
        self.changes.locks.push(LockChange::Set(VoteLock {
            slot: LockSlot::Escrow(id),
            digest,
            order: Some(order.clone()),
        }));
        Ok(())
    }

    /// Applies a certified lock: the payer pays `amount` into the new escrow `id`.
    pub(super) fn apply_escrow_lock(
        &mut self,
        lock: &EscrowLock,
        id: EscrowId,
        order: &tally_core::Order,
    ) -> Result<(), LedgerError> {
        let spend = Spend {
            sender: lock.payer,
            sequence: lock.sequence,
            total: lock.amount,
        };
        self.apply_spend(spend, order)?;
        self.hash_locks.entry(lock.hash_lock).or_insert(id);
        self.escrows.insert(
            id,
            EscrowState {
                lock: *lock,
                settlement: Settlement::Open,
            },
        );
        self.changes.escrows.insert(id);
        Ok(())
    }

    /// Applies a certified claim (`Some(secret)`) or refund (`None`) of escrow `id`.
    pub(super) fn apply_settlement(
        &mut self,
        id: EscrowId,
        claimed: Option<EscrowSecret>,
    ) -> Result<(), LedgerError> {
        let escrow = self.open_escrow(&id).map_err(|error| match error {
            LedgerError::UnknownEscrow(id) => LedgerError::MissingEscrow(id),
            other => other,
        })?;
        let (settlement, to) = match claimed {
            Some(secret) => (Settlement::Claimed(secret), escrow.lock.payee),
            None => (Settlement::Refunded, escrow.lock.payer),
        };
        self.accounts.entry(to).or_default().balance += i128::from(escrow.lock.amount.microcash());
        self.changes.accounts.insert(to);
        if let Some(secret) = claimed {
            self.secrets.insert(escrow.lock.hash_lock, secret);
        }
        self.escrows.insert(
            id,
            EscrowState {
                settlement,
                ..escrow
            },
        );
        self.changes.escrows.insert(id);
        if self.escrow_votes.remove(&id).is_some() {
            self.changes
                .locks
                .push(LockChange::Clear(LockSlot::Escrow(id)));
        }
        Ok(())
    }

    /// The escrow `id`, if its lock was applied here.
    pub fn escrow(&self, id: &EscrowId) -> Option<EscrowState> {
        self.escrows.get(id).copied()
    }

    /// The escrow locked under `hash_lock` here, if any.
    pub fn escrow_by_hash_lock(&self, hash_lock: &Digest) -> Option<EscrowId> {
        self.hash_locks.get(hash_lock).copied()
    }

    /// The secret behind `hash_lock`, as soon as this validator has voted for (or applied)
    /// a claim that shows it: the vote publishes the secret (DESIGN §8).
    pub fn secret_for(&self, hash_lock: &Digest) -> Option<EscrowSecret> {
        self.secrets.get(hash_lock).copied()
    }

    /// The claim or refund this validator voted for in escrow `id`'s slot, while the
    /// escrow is not settled here.
    pub fn held_settlement(&self, id: &EscrowId) -> Option<&SignedOrder> {
        self.escrow_votes
            .get(id)
            .and_then(|(_, order)| order.as_ref())
    }

    /// Microcash held in open escrows: in no balance, still part of the supply.
    pub fn escrowed(&self) -> Amount {
        Amount::from_microcash(
            self.escrows
                .values()
                .filter(|e| e.settlement == Settlement::Open)
                .map(|e| e.lock.amount.microcash())
                .sum(),
        )
    }

    /// Every escrow this validator knows, for the store and audits.
    pub fn escrows(&self) -> impl Iterator<Item = (&EscrowId, &EscrowState)> {
        self.escrows.iter()
    }

    /// Restores escrows loaded from a store (before [`Self::restore_locks`]).
    pub fn restore_escrows(&mut self, escrows: impl IntoIterator<Item = (EscrowId, EscrowState)>) {
        for (id, escrow) in escrows {
            self.hash_locks.entry(escrow.lock.hash_lock).or_insert(id);
            if let Settlement::Claimed(secret) = escrow.settlement {
                self.secrets.insert(escrow.lock.hash_lock, secret);
            }
            self.escrows.insert(id, escrow);
        }
    }

    /// Restores the vote held in an escrow's slot (from [`Self::restore_locks`]).
    pub(super) fn restore_escrow_vote(
        &mut self,
        id: EscrowId,
        digest: OrderDigest,
        order: Option<SignedOrder>,
    ) {
        if let Some(tally_core::Order::EscrowClaim(claim)) = order.as_ref().map(|o| &o.order) {
            self.secrets.insert(claim.secret.hash_lock(), claim.secret);
        }
        self.escrow_votes.insert(id, (digest, order));
    }
}
