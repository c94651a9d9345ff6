//! The mempool: transactions waiting for a block, each account's kept in sequence order,
//! and escrow settlements (claims and refunds, which have no sender) by escrow.
//!
//! It is bounded (in total and per account) so a flood cannot exhaust memory, and it is
//! deterministic: templates take accounts in the order they first arrived, and each
//! account's transactions in sequence order, then settlements in the order they arrived.

use std::collections::{BTreeMap, HashMap};

use tally_core::{AccountId, Amount, Digest, Encode, EscrowId, NetworkId, Order};

use crate::block::Transaction;
use crate::error::TxRejected;
use crate::spend::Spend;
use crate::state::{AccountState, Overlay};

/// How much the mempool holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Most transactions in all.
    pub max_transactions: usize,
    /// Most transactions pending per sender; also how far ahead of the sender's next
    /// sequence a transaction may be.
    pub max_per_account: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_transactions: 200_000,
            max_per_account: 1_000,
        }
    }
}

struct Pending {
    stamp: u64,
    by_sequence: BTreeMap<u64, Transaction>,
}

/// What a pending transaction debits its sender: a transfer's amount, a split's total.
/// Every pending transaction is a spend (the only kind [`Mempool::insert`] and
/// [`Mempool::insert_returned`] admit).
fn spends(tx: &Transaction) -> Amount {
    Spend::of(tx).map_or(Amount::ZERO, |spend| spend.total)
}

/// Pending transactions.
pub struct Mempool {
    limits: MempoolLimits,
    accounts: HashMap<AccountId, Pending>,
    arrival: BTreeMap<u64, AccountId>,
    /// Pending claims and refunds, one per escrow, with their arrival stamp.
    settlements: HashMap<EscrowId, (u64, Transaction)>,
    settlement_arrival: BTreeMap<u64, EscrowId>,
    /// The hash lock of each pending escrow lock, with its `(payer, sequence)`: a chain
    /// holds one escrow per hash lock, so the mempool admits one lock per hash lock too.
    lock_hashes: HashMap<Digest, (AccountId, u64)>,
    /// What pending spends pay each account, in microcash (a u128 sum of u64 amounts
    /// cannot overflow): a wallet's "pending incoming" without a walk of the mempool.
    incoming: HashMap<AccountId, u128>,
    next_stamp: u64,
    len: usize,
}

impl Mempool {
    /// An empty mempool.
    pub fn new(limits: MempoolLimits) -> Self {
        Mempool {
            limits,
            accounts: HashMap::new(),
            arrival: BTreeMap::new(),
            settlements: HashMap::new(),
            settlement_arrival: BTreeMap::new(),
            lock_hashes: HashMap::new(),
            incoming: HashMap::new(),
            next_stamp: 0,
            len: 0,
        }
    }

    /// How many transactions are pending.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The limits it was built with.
    pub fn limits(&self) -> MempoolLimits {
        self.limits
    }

    /// The pending transaction of `sender` with `sequence`.
    pub fn get(&self, sender: &AccountId, sequence: u64) -> Option<&Transaction> {
        self.accounts.get(sender)?.by_sequence.get(&sequence)
    }

    /// `sender`'s pending transactions in sequence order.
    pub fn pending_for(&self, account: &AccountId) -> Vec<Transaction> {
        self.accounts
            .get(account)
            .map(|p| p.by_sequence.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every pending transaction: accounts in arrival order, each in sequence order, then
    /// settlements in arrival order.
    pub fn transactions(&self) -> impl Iterator<Item = &Transaction> + '_ {
        self.arrival
            .values()
            .filter_map(|account| self.accounts.get(account))
            .flat_map(|p| p.by_sequence.values())
            .chain(self.settlements_in_order())
    }

    fn settlements_in_order(&self) -> impl Iterator<Item = &Transaction> + '_ {
        self.settlement_arrival
            .values()
            .filter_map(|escrow| self.settlements.get(escrow).map(|(_, tx)| tx))
    }

    /// The pending claim or refund of `escrow`.
    pub fn settlement(&self, escrow: &EscrowId) -> Option<&Transaction> {
        self.settlements.get(escrow).map(|(_, tx)| tx)
    }

    /// The pending lock under `hash_lock`, as `(payer, sequence)`.
    pub fn lock_under(&self, hash_lock: &Digest) -> Option<(AccountId, u64)> {
        self.lock_hashes.get(hash_lock).copied()
    }

    /// Admits the claim or refund `tx` of `escrow`, which the chain found valid for the
    /// next block: one per escrow.
    pub fn insert_settlement(
        &mut self,
        escrow: EscrowId,
        tx: Transaction,
    ) -> Result<(), TxRejected> {
        if let Some((_, pending)) = self.settlements.get(&escrow) {
            return Err(if *pending == tx {
                TxRejected::Duplicate
            } else {
                TxRejected::SettlementPending(escrow)
            });
        }
        if self.len >= self.limits.max_transactions {
            return Err(TxRejected::MempoolFull(self.len));
        }
        self.put_settlement(escrow, tx);
        Ok(())
    }

    fn put_settlement(&mut self, escrow: EscrowId, tx: Transaction) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.settlement_arrival.insert(stamp, escrow);
        self.settlements.insert(escrow, (stamp, tx));
        self.len += 1;
    }

    /// Keeps only the settlements `valid` approves (after the tip moved: settled
    /// escrows, claims past their deadline, escrows a reorganisation undid).
    pub fn retain_settlements(&mut self, mut valid: impl FnMut(&Transaction) -> bool) {
        let arrival = &mut self.settlement_arrival;
        let before = self.settlements.len();
        self.settlements.retain(|_, (stamp, tx)| {
            let keep = valid(tx);
            if !keep {
                arrival.remove(stamp);
            }
            keep
        });
        self.len -= before - self.settlements.len();
    }

    /// Drops every pending lock `valid` refuses (its hash lock now used on the chain, its
    /// deadline no longer above the next block), with the payer's later transactions,
    /// which could never be mined without it.
    pub fn retain_locks(&mut self, mut valid: impl FnMut(&Transaction) -> bool) {
        let doomed: Vec<(AccountId, u64)> = self
            .lock_hashes
            .values()
            .filter(|(payer, sequence)| self.get(payer, *sequence).is_some_and(|tx| !valid(tx)))
            .copied()
            .collect();
        for (payer, sequence) in doomed {
            self.remove_from(&payer, sequence);
        }
    }

    /// The sum of `account`'s pending outgoing amounts (saturating: display only).
    pub fn pending_outgoing(&self, account: &AccountId) -> Amount {
        self.accounts
            .get(account)
            .map(|p| {
                p.by_sequence.values().fold(Amount::ZERO, |sum, tx| {
                    sum.checked_add(spends(tx))
                        .unwrap_or(Amount::from_microcash(u64::MAX))
                })
            })
            .unwrap_or(Amount::ZERO)
    }

    /// The sum of what pending transactions pay `account`, transfers and split outputs
    /// (saturating: display only), from an index kept as transactions come and go.
    pub fn pending_incoming(&self, account: &AccountId) -> Amount {
        let sum = self.incoming.get(account).copied().unwrap_or(0);
        Amount::from_microcash(u64::try_from(sum).unwrap_or(u64::MAX))
    }

    /// Admits `tx` (its signature already checked) given the sender's confirmed state: it
    /// must be a spend (a transfer of a positive amount or a well-formed split), its
    /// sequence unused and not too far ahead (a transfer and a split for one sequence
    /// conflict: they take the same lock slot), and the sender's balance must cover its
    /// total and its other pending spends.
    pub fn insert(&mut self, tx: Transaction, sender: AccountState) -> Result<(), TxRejected> {
        let t = Spend::of(&tx)?;
        if let Order::EscrowLock(lock) = &tx.order
            && self
                .lock_under(&lock.hash_lock)
                .is_some_and(|slot| slot != (lock.payer, lock.sequence))
        {
            return Err(TxRejected::HashLockReused(lock.hash_lock));
        }
        if t.sequence < sender.next_sequence {
            return Err(TxRejected::StaleSequence {
                next: sender.next_sequence,
                got: t.sequence,
            });
        }
        if t.sequence - sender.next_sequence >= self.limits.max_per_account as u64 {
            return Err(TxRejected::TooFarAhead {
                next: sender.next_sequence,
                got: t.sequence,
            });
        }
        if let Some(existing) = self.get(&t.sender, t.sequence) {
            return Err(if *existing == tx {
                TxRejected::Duplicate
            } else {
                TxRejected::Conflict {
                    sequence: t.sequence,
                }
            });
        }
        let pending = self
            .accounts
            .get(&t.sender)
            .map_or(0, |p| p.by_sequence.len());
        if pending >= self.limits.max_per_account {
            return Err(TxRejected::AccountFull(pending));
        }
        if self.len >= self.limits.max_transactions {
            return Err(TxRejected::MempoolFull(self.len));
        }
        let outgoing = self.pending_outgoing(&t.sender);
        let available = sender.balance.checked_sub(outgoing).unwrap_or(Amount::ZERO);
        if available < t.total {
            return Err(TxRejected::InsufficientFunds {
                available,
                amount: t.total,
            });
        }
        let (sender, sequence) = (t.sender, t.sequence);
        self.put(sender, sequence, tx);
        Ok(())
    }

    /// Puts back a transaction from a block that left the main chain; it replaces a pending
    /// transaction holding the same sequence or escrow (the mined one is what the sender's
    /// later transactions were built on). Dropped when the mempool is full, or if it is
    /// neither a spend nor a settlement (no valid block holds another kind). The chain
    /// checks returned settlements against the new tip afterwards.
    pub fn insert_returned(&mut self, tx: Transaction) -> bool {
        if let Order::EscrowClaim(_) | Order::EscrowRefund(_) = &tx.order {
            let tally_core::LockSlot::Escrow(escrow) = tx.order.lock_slot() else {
                return false;
            };
            if let Some((_, slot)) = self.settlements.get_mut(&escrow) {
                *slot = tx;
                return true;
            }
            if self.len >= self.limits.max_transactions {
                return false;
            }
            self.put_settlement(escrow, tx);
            return true;
        }
        let Ok(spend) = Spend::of(&tx) else {
            return false;
        };
        let (sender, sequence) = (spend.sender, spend.sequence);
        if let Some(pending) = self.accounts.get_mut(&sender)
            && let Some(slot) = pending.by_sequence.get_mut(&sequence)
        {
            let old = std::mem::replace(slot, tx);
            forget(&mut self.lock_hashes, &mut self.incoming, [&old]);
            count_incoming(&mut self.incoming, slot);
            if let Order::EscrowLock(lock) = &slot.order {
                self.lock_hashes.insert(lock.hash_lock, (sender, sequence));
            }
            return true;
        }
        if self.len >= self.limits.max_transactions {
            return false;
        }
        self.put(sender, sequence, tx);
        true
    }

    fn put(&mut self, sender: AccountId, sequence: u64, tx: Transaction) {
        let pending = self.accounts.entry(sender).or_insert_with(|| {
            let stamp = self.next_stamp;
            self.next_stamp += 1;
            self.arrival.insert(stamp, sender);
            Pending {
                stamp,
                by_sequence: BTreeMap::new(),
            }
        });
        // What the slot held before leaves the indexes before the new one enters them.
        if let Some(old) = pending.by_sequence.remove(&sequence) {
            self.len -= 1;
            forget(&mut self.lock_hashes, &mut self.incoming, [&old]);
        }
        if let Order::EscrowLock(lock) = &tx.order {
            self.lock_hashes.insert(lock.hash_lock, (sender, sequence));
        }
        count_incoming(&mut self.incoming, &tx);
        pending.by_sequence.insert(sequence, tx);
        self.len += 1;
    }

    /// Drops `account`'s transactions that its confirmed state has passed.
    pub fn prune(&mut self, account: &AccountId, state: AccountState) {
        let Some(pending) = self.accounts.get_mut(account) else {
            return;
        };
        let keep = pending.by_sequence.split_off(&state.next_sequence);
        let gone = std::mem::replace(&mut pending.by_sequence, keep);
        self.len -= gone.len();
        forget(&mut self.lock_hashes, &mut self.incoming, gone.values());
        if pending.by_sequence.is_empty() {
            let stamp = pending.stamp;
            self.accounts.remove(account);
            self.arrival.remove(&stamp);
        }
    }

    /// Brings `account`'s pending transactions in line with its confirmed state after the
    /// tip moved: drops those its sequence has passed, those now too far ahead of it, and,
    /// highest sequence first, those its balance no longer covers (a reorganisation can
    /// take back what it received). What is left is what [`Mempool::insert`] would admit.
    pub fn revalidate(&mut self, account: &AccountId, state: AccountState) {
        self.prune(account, state);
        let max_ahead = self.limits.max_per_account as u64;
        let Some(pending) = self.accounts.get_mut(account) else {
            return;
        };
        let too_far = pending
            .by_sequence
            .split_off(&state.next_sequence.saturating_add(max_ahead));
        // The longest run from the lowest sequence that the balance covers.
        let mut sum = Amount::ZERO;
        let first_uncovered = pending.by_sequence.iter().find_map(|(sequence, tx)| {
            match sum.checked_add(spends(tx)) {
                Some(next) if next <= state.balance => {
                    sum = next;
                    None
                }
                _ => Some(*sequence),
            }
        });
        let uncovered = first_uncovered
            .map(|sequence| pending.by_sequence.split_off(&sequence))
            .unwrap_or_default();
        let dropped = too_far.len() + uncovered.len();
        self.len -= dropped;
        forget(
            &mut self.lock_hashes,
            &mut self.incoming,
            too_far.values().chain(uncovered.values()),
        );
        if pending.by_sequence.is_empty() {
            let stamp = pending.stamp;
            self.accounts.remove(account);
            self.arrival.remove(&stamp);
        }
    }

    /// Removes one transaction (for instance one that can never be mined).
    pub fn remove(&mut self, sender: &AccountId, sequence: u64) -> Option<Transaction> {
        let pending = self.accounts.get_mut(sender)?;
        let removed = pending.by_sequence.remove(&sequence)?;
        self.len -= 1;
        forget(&mut self.lock_hashes, &mut self.incoming, [&removed]);
        if pending.by_sequence.is_empty() {
            let stamp = pending.stamp;
            self.accounts.remove(sender);
            self.arrival.remove(&stamp);
        }
        Some(removed)
    }

    /// Removes `sender`'s pending transaction `sequence` and every later one.
    fn remove_from(&mut self, sender: &AccountId, sequence: u64) {
        let Some(pending) = self.accounts.get_mut(sender) else {
            return;
        };
        let gone = pending.by_sequence.split_off(&sequence);
        self.len -= gone.len();
        forget(&mut self.lock_hashes, &mut self.incoming, gone.values());
        if pending.by_sequence.is_empty() {
            let stamp = pending.stamp;
            self.accounts.remove(sender);
            self.arrival.remove(&stamp);
        }
    }

    /// Picks transactions for a block of `network` whose parent's median time past is
    /// `median_time`, on top of `view`: accounts
    /// in arrival order, each account's consecutive sequences from its next one while its
    /// balance lasts, then the settlements that apply, until `max_count` transactions or
    /// `max_bytes` of their encodings. Applies them to `view`.
    pub fn select(
        &self,
        view: &mut Overlay<'_>,
        network: &NetworkId,
        median_time: u64,
        max_count: usize,
        max_bytes: usize,
    ) -> Vec<Transaction> {
        let mut chosen = Vec::new();
        let mut bytes = 0usize;
        for account in self.arrival.values() {
            let Some(pending) = self.accounts.get(account) else {
                continue;
            };
            let next = view.get(account).next_sequence;
            for tx in pending.by_sequence.range(next..).map(|(_, tx)| tx) {
                let len = tx.encoded_len();
                if chosen.len() >= max_count || bytes.saturating_add(len) > max_bytes {
                    return chosen;
                }
                if !view.apply_transaction(tx, network, median_time) {
                    break;
                }
                bytes += len;
                chosen.push(tx.clone());
            }
        }
        for tx in self.settlements_in_order() {
            let len = tx.encoded_len();
            if chosen.len() >= max_count || bytes.saturating_add(len) > max_bytes {
                break;
            }
            if view.apply_transaction(tx, network, median_time) {
                bytes += len;
                chosen.push(tx.clone());
            }
        }
        chosen
    }
}

/// Drops what `gone` (transactions leaving the mempool) put in the indexes: the hash locks
/// of its escrow locks, and what its spends pay.
fn forget<'a>(
    lock_hashes: &mut HashMap<Digest, (AccountId, u64)>,
    incoming: &mut HashMap<AccountId, u128>,
    gone: impl IntoIterator<Item = &'a Transaction>,
) {
    for tx in gone {
        if let Order::EscrowLock(lock) = &tx.order
            && lock_hashes.get(&lock.hash_lock) == Some(&(lock.payer, lock.sequence))
        {
            lock_hashes.remove(&lock.hash_lock);
        }
        if let Ok(spend) = Spend::of(tx) {
            for payment in spend.payments() {
                if let Some(sum) = incoming.get_mut(&payment.recipient) {
                    *sum = sum.saturating_sub(u128::from(payment.amount.microcash()));
                    if *sum == 0 {
                        incoming.remove(&payment.recipient);
                    }
                }
            }
        }
    }
}

/// Adds what `tx` (entering the mempool) pays to the incoming index.
fn count_incoming(incoming: &mut HashMap<AccountId, u128>, tx: &Transaction) {
    if let Ok(spend) = Spend::of(tx) {
        for payment in spend.payments() {
            *incoming.entry(payment.recipient).or_insert(0) +=
                u128::from(payment.amount.microcash());
        }
    }
}
