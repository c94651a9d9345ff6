//! Account state and the application of blocks to it, with undo records.
//!
//! A block is applied to an [`Overlay`] over the committed accounts: nothing touches the
//! committed map until the whole block (or the whole reorganisation) has succeeded, so a
//! failure needs no rollback, and the overlay's changes are exactly what storage must write.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tally_core::{AccountId, Amount};

use crate::block::{Block, Transaction};
use crate::error::BlockError;

/// What the chain knows about one account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountState {
    /// Confirmed balance.
    pub balance: Amount,
    /// The sequence number its next transaction must carry.
    pub next_sequence: u64,
}

impl AccountState {
    /// Bytes in [`AccountState::encode`].
    pub const LEN: usize = 16;

    /// `balance u64 LE ‖ next_sequence u64 LE`.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.balance.microcash().to_le_bytes());
        out[8..].copy_from_slice(&self.next_sequence.to_le_bytes());
        out
    }

    /// Parses [`AccountState::LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().ok()?;
        let mut balance = [0u8; 8];
        let mut sequence = [0u8; 8];
        balance.copy_from_slice(&bytes[..8]);
        sequence.copy_from_slice(&bytes[8..]);
        Some(AccountState {
            balance: Amount::from_microcash(u64::from_le_bytes(balance)),
            next_sequence: u64::from_le_bytes(sequence),
        })
    }

    /// An account nobody ever paid or used; such accounts are not stored.
    pub fn is_empty(&self) -> bool {
        *self == AccountState::default()
    }
}

/// The accounts as of the tip. Accounts in their default state are absent, so two equal
/// states always compare equal.
pub type Accounts = HashMap<AccountId, AccountState>;

/// What undoing a block needs: each touched account's state before the block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Undo {
    /// `(account, state before the block)`, in first-touch order.
    pub prior: Vec<(AccountId, AccountState)>,
}

impl Undo {
    /// `count u32 LE ‖ (account 32 ‖ state 16) × count`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.prior.len() * 48);
        let count = u32::try_from(self.prior.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for (account, state) in &self.prior {
            out.extend_from_slice(account.as_bytes());
            out.extend_from_slice(&state.encode());
        }
        out
    }

    /// Parses [`Undo::encode`]'s output; `None` if malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let count = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let body = bytes.get(4..)?;
        if body.len() != count.checked_mul(48)? {
            return None;
        }
        let prior = body
            .chunks_exact(48)
            .map(|chunk| {
                let account: [u8; 32] = chunk.get(..32)?.try_into().ok()?;
                Some((
                    AccountId::from(account),
                    AccountState::decode(chunk.get(32..)?)?,
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Undo { prior })
    }
}

/// Pending changes over the committed accounts.
pub struct Overlay<'a> {
    base: &'a Accounts,
    changes: HashMap<AccountId, AccountState>,
}

impl<'a> Overlay<'a> {
    /// An overlay with no changes.
    pub fn new(base: &'a Accounts) -> Self {
        Overlay {
            base,
            changes: HashMap::new(),
        }
    }

    /// The state of `account` with the pending changes.
    pub fn get(&self, account: &AccountId) -> AccountState {
        self.changes
            .get(account)
            .or_else(|| self.base.get(account))
            .copied()
            .unwrap_or_default()
    }

    fn set(&mut self, account: AccountId, state: AccountState) {
        self.changes.insert(account, state);
    }

    /// The pending changes (an empty state means "delete").
    pub fn into_changes(self) -> HashMap<AccountId, AccountState> {
        self.changes
    }

    /// Applies `block`'s coinbase and transactions in order, checking each sequence and
    /// balance; returns what undoing it needs. On error the overlay may hold part of the
    /// block: the caller drops it.
    pub fn apply_block(&mut self, block: &Block) -> Result<Undo, BlockError> {
        let mut prior: HashMap<AccountId, AccountState> =
            HashMap::with_capacity(2 * block.transactions.len() + 1);
        let mut order = Vec::with_capacity(2 * block.transactions.len() + 1);
        let touch = |overlay: &Self,
                     prior: &mut HashMap<AccountId, AccountState>,
                     order: &mut Vec<AccountId>,
                     account: AccountId| {
            prior.entry(account).or_insert_with(|| {
                order.push(account);
                overlay.get(&account)
            });
        };
        // The coinbase first: a miner may spend its reward within the same block.
        let miner = block.coinbase.miner;
        touch(self, &mut prior, &mut order, miner);
        let mut state = self.get(&miner);
        state.balance = state
            .balance
            .checked_add(block.coinbase.amount)
            .ok_or(BlockError::BalanceOverflow { index: None })?;
        self.set(miner, state);

        for (index, tx) in block.transactions.iter().enumerate() {
            let Some(t) = tx.transfer() else {
                return Err(BlockError::NotATransfer {
                    index,
                    kind: tx.order.kind_name(),
                });
            };
            touch(self, &mut prior, &mut order, t.sender);
            touch(self, &mut prior, &mut order, t.recipient);
            let before_block = prior.get(&t.sender).copied().unwrap_or_default();
            let mut sender = self.get(&t.sender);
            if t.sequence != sender.next_sequence {
                return Err(if t.sequence < before_block.next_sequence {
                    BlockError::StaleSequence {
                        index,
                        expected: sender.next_sequence,
                        got: t.sequence,
                    }
                } else if t.sequence < sender.next_sequence {
                    BlockError::DoubleSpend {
                        index,
                        sender: t.sender,
                        sequence: t.sequence,
                    }
                } else {
                    BlockError::SequenceGap {
                        index,
                        expected: sender.next_sequence,
                        got: t.sequence,
                    }
                });
            }
            sender.balance = sender
                .balance
                .checked_sub(t.amount)
                .ok_or(BlockError::Overdraft {
                    index,
                    balance: sender.balance,
                    amount: t.amount,
                })?;
            sender.next_sequence =
                sender
                    .next_sequence
                    .checked_add(1)
                    .ok_or(BlockError::SequenceGap {
                        index,
                        expected: sender.next_sequence,
                        got: t.sequence,
                    })?;
            self.set(t.sender, sender);
            let mut recipient = self.get(&t.recipient);
            recipient.balance = recipient
                .balance
                .checked_add(t.amount)
                .ok_or(BlockError::BalanceOverflow { index: Some(index) })?;
            self.set(t.recipient, recipient);
        }
        let prior = order
            .into_iter()
            .map(|account| (account, prior.get(&account).copied().unwrap_or_default()))
            .collect();
        Ok(Undo { prior })
    }

    /// Credits `amount` to `account`; false (and nothing changed) on overflow.
    pub fn credit(&mut self, account: &AccountId, amount: Amount) -> bool {
        let mut state = self.get(account);
        match state.balance.checked_add(amount) {
            Some(balance) => {
                state.balance = balance;
                self.set(*account, state);
                true
            }
            None => false,
        }
    }

    /// Restores every account `undo` names to its state before the block.
    pub fn undo_block(&mut self, undo: &Undo) {
        for (account, state) in &undo.prior {
            self.set(*account, *state);
        }
    }

    /// Applies one transaction on its own if it is a transfer and its sequence and the
    /// sender's balance allow (template building); returns whether it did.
    pub fn apply_transaction(&mut self, tx: &Transaction) -> bool {
        let Some(t) = tx.transfer() else {
            return false;
        };
        let mut sender = self.get(&t.sender);
        if t.sequence != sender.next_sequence || t.amount.is_zero() {
            return false;
        }
        let (Some(balance), Some(next)) = (
            sender.balance.checked_sub(t.amount),
            sender.next_sequence.checked_add(1),
        ) else {
            return false;
        };
        sender.balance = balance;
        sender.next_sequence = next;
        let before = if t.recipient == t.sender {
            sender
        } else {
            self.get(&t.recipient)
        };
        let Some(credited) = before.balance.checked_add(t.amount) else {
            return false;
        };
        self.set(t.sender, sender);
        let mut recipient = self.get(&t.recipient);
        recipient.balance = credited;
        self.set(t.recipient, recipient);
        true
    }
}

/// Writes `changes` into `accounts`, dropping accounts back in their empty state.
pub fn merge(accounts: &mut Accounts, changes: HashMap<AccountId, AccountState>) {
    for (account, state) in changes {
        if state.is_empty() {
            accounts.remove(&account);
        } else {
            accounts.insert(account, state);
        }
    }
}

/// The sum of all balances, or `None` on overflow (impossible for a valid chain).
pub fn total_balance(accounts: &Accounts) -> Option<Amount> {
    accounts
        .values()
        .try_fold(Amount::ZERO, |sum, s| sum.checked_add(s.balance))
}
