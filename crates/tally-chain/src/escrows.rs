//! The escrows a proof-of-work chain holds (DESIGN §8): every escrow ever locked on the
//! main chain, open or settled, by id and by hash lock.
//!
//! On a proof-of-work network the chain's own order of transactions is the authority, and
//! deadlines are judged by the chain's median time past (the median of the last 11 block
//! timestamps, which never decreases along a chain): a claim is valid in a block whose
//! parent's median time is before the deadline, a refund only once it has reached it, and
//! the first settlement applied settles the escrow for good on that branch. Settled escrows stay, so that a hash lock is never reused and
//! the secret of every claim can be served by its hash lock.

use std::collections::HashMap;

use tally_core::{Amount, Digest, EscrowId, EscrowSecret, EscrowState, Settlement};

/// Every escrow of the main chain as of the tip, with the hash-lock index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Escrows {
    by_id: HashMap<EscrowId, EscrowState>,
    by_hash_lock: HashMap<Digest, EscrowId>,
}

impl Escrows {
    /// The escrow `id`, open or settled.
    pub fn get(&self, id: &EscrowId) -> Option<&EscrowState> {
        self.by_id.get(id)
    }

    /// The escrow locked under `hash_lock` (a chain holds at most one per hash lock).
    pub fn by_hash_lock(&self, hash_lock: &Digest) -> Option<EscrowId> {
        self.by_hash_lock.get(hash_lock).copied()
    }

    /// The secret a confirmed claim showed for `hash_lock`.
    pub fn secret_for(&self, hash_lock: &Digest) -> Option<EscrowSecret> {
        let id = self.by_hash_lock.get(hash_lock)?;
        match self.by_id.get(id)?.settlement {
            Settlement::Claimed(secret) => Some(secret),
            Settlement::Open | Settlement::Refunded => None,
        }
    }

    /// How many escrows there are, open or settled.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the chain holds no escrow.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every escrow, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&EscrowId, &EscrowState)> {
        self.by_id.iter()
    }

    /// The money in open escrows: in no balance, still part of the supply. `None` on
    /// overflow (impossible for a valid chain).
    pub fn escrowed(&self) -> Option<Amount> {
        self.by_id
            .values()
            .filter(|e| e.settlement == Settlement::Open)
            .try_fold(Amount::ZERO, |sum, e| sum.checked_add(e.lock.amount))
    }

    /// Sets escrow `id` (`None` removes it, as undoing its lock does), keeping the index.
    pub fn set(&mut self, id: EscrowId, state: Option<EscrowState>) {
        match state {
            Some(state) => {
                if let Some(old) = self.by_id.insert(id, state)
                    && old.lock.hash_lock != state.lock.hash_lock
                {
                    self.unindex(&old.lock.hash_lock, &id);
                }
                self.by_hash_lock.insert(state.lock.hash_lock, id);
            }
            None => {
                if let Some(old) = self.by_id.remove(&id) {
                    self.unindex(&old.lock.hash_lock, &id);
                }
            }
        }
    }

    /// Drops the index entry of `hash_lock` if it still names `id` (a new escrow under the
    /// same hash lock may have taken it in the same change).
    fn unindex(&mut self, hash_lock: &Digest, id: &EscrowId) {
        if self.by_hash_lock.get(hash_lock) == Some(id) {
            self.by_hash_lock.remove(hash_lock);
        }
    }

    /// Writes a set of changes (`None` removes). The order does not matter: a removal
    /// only drops an index entry that still names the removed escrow.
    pub fn merge(&mut self, changes: impl IntoIterator<Item = (EscrowId, Option<EscrowState>)>) {
        for (id, state) in changes {
            self.set(id, state);
        }
    }
}

impl FromIterator<(EscrowId, EscrowState)> for Escrows {
    fn from_iter<T: IntoIterator<Item = (EscrowId, EscrowState)>>(iter: T) -> Self {
        let mut escrows = Escrows::default();
        for (id, state) in iter {
            escrows.set(id, Some(state));
        }
        escrows
    }
}

/// Secrets shown by claims this node admitted to its mempool, by hash lock, whether or not
/// a block ever takes them: on a proof-of-work network the claim's broadcast is what
/// publishes the secret (DESIGN §8), and the other side of a wire may need it after the
/// claim itself failed (mined too late, or undone by a reorganisation). Kept in memory,
/// the oldest forgotten first beyond a bound; confirmed claims stay in [`Escrows`] for good.
#[derive(Debug)]
pub(crate) struct RevealedSecrets {
    by_hash_lock: HashMap<Digest, EscrowSecret>,
    order: std::collections::VecDeque<Digest>,
    max: usize,
}

impl RevealedSecrets {
    pub(crate) fn new(max: usize) -> Self {
        RevealedSecrets {
            by_hash_lock: HashMap::new(),
            order: std::collections::VecDeque::new(),
            max,
        }
    }

    /// Remembers `secret` (its hash lock is its SHA-256).
    pub(crate) fn insert(&mut self, secret: EscrowSecret) {
        let hash_lock = secret.hash_lock();
        if self.by_hash_lock.insert(hash_lock, secret).is_none() {
            self.order.push_back(hash_lock);
        }
        while self.order.len() > self.max {
            if let Some(oldest) = self.order.pop_front() {
                self.by_hash_lock.remove(&oldest);
            }
        }
    }

    pub(crate) fn get(&self, hash_lock: &Digest) -> Option<EscrowSecret> {
        self.by_hash_lock.get(hash_lock).copied()
    }
}
