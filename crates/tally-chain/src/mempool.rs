//! The mempool: transactions waiting for a block, each account's kept in sequence order.
//!
//! It is bounded (in total and per account) so a flood cannot exhaust memory, and it is
//! deterministic: templates take accounts in the order they first arrived, and each
//! account's transactions in sequence order.

use std::collections::{BTreeMap, HashMap};

use tally_core::{AccountId, Amount, Encode};

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

    /// Every pending transaction: accounts in arrival order, each in sequence order.
    pub fn transactions(&self) -> impl Iterator<Item = &Transaction> + '_ {
        self.arrival
            .values()
            .filter_map(|account| self.accounts.get(account))
            .flat_map(|p| p.by_sequence.values())
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
    /// (saturating: display only). Walks the whole mempool; for wallets' "pending"
    /// balance, not for hot paths.
    pub fn pending_incoming(&self, account: &AccountId) -> Amount {
        self.transactions()
            .filter_map(|tx| Spend::of(tx).ok())
            .fold(Amount::ZERO, |sum, spend| {
                sum.checked_add(spend.paid_to(account))
                    .unwrap_or(Amount::from_microcash(u64::MAX))
            })
    }

    /// Admits `tx` (its signature already checked) given the sender's confirmed state: it
    /// must be a spend (a transfer of a positive amount or a well-formed split), its
    /// sequence unused and not too far ahead (a transfer and a split for one sequence
    /// conflict: they take the same lock slot), and the sender's balance must cover its
    /// total and its other pending spends.
    pub fn insert(&mut self, tx: Transaction, sender: AccountState) -> Result<(), TxRejected> {
        let t = Spend::of(&tx)?;
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
    /// transaction holding the same sequence (the mined one is what the sender's later
    /// transactions were built on). Dropped when the mempool is full, or if it is not a
    /// spend (no valid block holds another kind).
    pub fn insert_returned(&mut self, tx: Transaction) -> bool {
        let Ok(spend) = Spend::of(&tx) else {
            return false;
        };
        let (sender, sequence) = (spend.sender, spend.sequence);
        if let Some(pending) = self.accounts.get_mut(&sender)
            && let Some(slot) = pending.by_sequence.get_mut(&sequence)
        {
            *slot = tx;
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
        if pending.by_sequence.insert(sequence, tx).is_none() {
            self.len += 1;
        }
    }

    /// Drops `account`'s transactions that its confirmed state has passed.
    pub fn prune(&mut self, account: &AccountId, state: AccountState) {
        let Some(pending) = self.accounts.get_mut(account) else {
            return;
        };
        let keep = pending.by_sequence.split_off(&state.next_sequence);
        self.len -= pending.by_sequence.len();
        pending.by_sequence = keep;
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
        if pending.by_sequence.is_empty() {
            let stamp = pending.stamp;
            self.accounts.remove(sender);
            self.arrival.remove(&stamp);
        }
        Some(removed)
    }

    /// Picks transactions for a block on top of `view`: accounts in arrival order, each
    /// account's consecutive sequences from its next one while its balance lasts, until
    /// `max_count` transactions or `max_bytes` of their encodings. Applies them to `view`.
    pub fn select(
        &self,
        view: &mut Overlay<'_>,
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
                if !view.apply_transaction(tx) {
                    break;
                }
                bytes += len;
                chosen.push(tx.clone());
            }
        }
        chosen
    }
}
