//! Account state and the application of blocks to it, with undo records.
//!
//! A block is applied to an [`Overlay`] over the committed accounts: nothing touches the
//! committed map until the whole block (or the whole reorganisation) has succeeded, so a
//! failure needs no rollback, and the overlay's changes are exactly what storage must write.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tally_core::{AccountId, Amount, Decode, DecodeError, Encode, Reader};

use crate::block::{Block, Transaction};
use crate::error::BlockError;
use crate::spend::Spend;

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

    /// Its store record, tally-core's codec: `balance u64 LE ‖ next_sequence u64 LE`, as the
    /// fixed-size value the store's table holds.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        for (slot, byte) in out.iter_mut().zip(self.to_bytes()) {
            *slot = byte;
        }
        out
    }

    /// Parses exactly [`AccountState::LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        Self::from_bytes(bytes).ok()
    }

    /// An account nobody ever paid or used; such accounts are not stored.
    pub fn is_empty(&self) -> bool {
        *self == AccountState::default()
    }
}

impl Encode for AccountState {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.balance.encode_to(out);
        self.next_sequence.encode_to(out);
    }

    fn encoded_len(&self) -> usize {
        Self::LEN
    }
}

impl Decode for AccountState {
    const MIN_ENCODED_LEN: usize = Self::LEN;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AccountState {
            balance: reader.read()?,
            next_sequence: reader.read()?,
        })
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
    /// Most accounts one undo record may name: a block touches one for its coinbase and,
    /// per transaction, its sender and each payment's recipient. A split's output takes 40
    /// bytes, so a block touches at most about one account per 40 of its bytes; this bound
    /// covers the largest block a contract can allow (`max_block_bytes` is a u32). It only
    /// rejects absurd counts: the decoder never allocates beyond the bytes it was given.
    pub const MAX_ACCOUNTS: usize = 1 << 27;

    /// Its store record, tally-core's codec: `count u32 LE ‖ (account 32 ‖ state 16) × count`.
    pub fn encode(&self) -> Vec<u8> {
        self.to_bytes()
    }

    /// Parses [`Undo::encode`]'s output; `None` if malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        Self::from_bytes(bytes).ok()
    }
}

impl Encode for Undo {
    fn encode_to(&self, out: &mut Vec<u8>) {
        let count = u32::try_from(self.prior.len()).unwrap_or(u32::MAX);
        count.encode_to(out);
        for (account, state) in &self.prior {
            account.encode_to(out);
            state.encode_to(out);
        }
    }

    fn encoded_len(&self) -> usize {
        4 + self.prior.len() * (32 + AccountState::LEN)
    }
}

impl Decode for Undo {
    const MIN_ENCODED_LEN: usize = 4;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = reader.count("undo accounts", Self::MAX_ACCOUNTS, 32 + AccountState::LEN)?;
        let mut prior = Vec::with_capacity(count);
        for _ in 0..count {
            prior.push((reader.read()?, reader.read()?));
        }
        Ok(Undo { prior })
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
            let spend = Spend::of(tx).map_err(|error| error.in_block(index))?;
            touch(self, &mut prior, &mut order, spend.sender);
            for payment in spend.payments() {
                touch(self, &mut prior, &mut order, payment.recipient);
            }
            let before_block = prior.get(&spend.sender).copied().unwrap_or_default();
            self.apply_spend(&spend, index, before_block.next_sequence)?;
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

    /// Applies one transaction on its own if it is a spend (a transfer or a split) and its
    /// sequence and the sender's balance allow (template building); returns whether it did.
    /// Nothing changes when it does not.
    pub fn apply_transaction(&mut self, tx: &Transaction) -> bool {
        let Ok(spend) = Spend::of(tx) else {
            return false;
        };
        let next = self.get(&spend.sender).next_sequence;
        self.apply_spend(&spend, 0, next).is_ok()
    }

    /// Debits the sender the spend's total, advances its sequence and credits every
    /// payment, all or nothing: every new state is computed before any is written, so a
    /// refused spend leaves the overlay as it was. `index` names the transaction in errors;
    /// `next_before_block` is the sender's next sequence before the block, which tells a
    /// replay of an earlier block (`StaleSequence`) from one of this block (`DoubleSpend`).
    fn apply_spend(
        &mut self,
        spend: &Spend<'_>,
        index: usize,
        next_before_block: u64,
    ) -> Result<(), BlockError> {
        let mut sender = self.get(&spend.sender);
        if spend.sequence != sender.next_sequence {
            return Err(if spend.sequence < next_before_block {
                BlockError::StaleSequence {
                    index,
                    expected: sender.next_sequence,
                    got: spend.sequence,
                }
            } else if spend.sequence < sender.next_sequence {
                BlockError::DoubleSpend {
                    index,
                    sender: spend.sender,
                    sequence: spend.sequence,
                }
            } else {
                BlockError::SequenceGap {
                    index,
                    expected: sender.next_sequence,
                    got: spend.sequence,
                }
            });
        }
        sender.balance = sender
            .balance
            .checked_sub(spend.total)
            .ok_or(BlockError::Overdraft {
                index,
                balance: sender.balance,
                amount: spend.total,
            })?;
        sender.next_sequence =
            sender
                .next_sequence
                .checked_add(1)
                .ok_or(BlockError::SequenceGap {
                    index,
                    expected: sender.next_sequence,
                    got: spend.sequence,
                })?;
        // New states, sender first; a transfer may pay its own sender, so a recipient is
        // looked up among them before the overlay.
        let mut updates: Vec<(AccountId, AccountState)> =
            Vec::with_capacity(spend.payments().len() + 1);
        updates.push((spend.sender, sender));
        for payment in spend.payments() {
            let known = updates.iter_mut().find(|(a, _)| *a == payment.recipient);
            let mut state = known
                .as_ref()
                .map_or_else(|| self.get(&payment.recipient), |(_, s)| *s);
            state.balance = state
                .balance
                .checked_add(payment.amount)
                .ok_or(BlockError::BalanceOverflow { index: Some(index) })?;
            match known {
                Some((_, slot)) => *slot = state,
                None => updates.push((payment.recipient, state)),
            }
        }
        for (account, state) in updates {
            self.set(account, state);
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The store's account and undo records are tally-core's codec, with the layout the
    /// stores have always had (so chain folders need no migration).
    #[test]
    fn account_and_undo_records_keep_their_layout() {
        let state = AccountState {
            balance: Amount::from_microcash(0x0102),
            next_sequence: 7,
        };
        let mut expected = 0x0102u64.to_le_bytes().to_vec();
        expected.extend_from_slice(&7u64.to_le_bytes());
        assert_eq!(state.encode().to_vec(), expected);
        assert_eq!(AccountState::decode(&expected), Some(state));
        assert_eq!(AccountState::decode(&expected[..15]), None);

        let account = AccountId::from([9u8; 32]);
        let undo = Undo {
            prior: vec![(account, state)],
        };
        let mut record = 1u32.to_le_bytes().to_vec();
        record.extend_from_slice(account.as_bytes());
        record.extend_from_slice(&expected);
        assert_eq!(undo.encode(), record);
        assert_eq!(Undo::decode(&record), Some(undo));
        assert_eq!(Undo::decode(&record[..record.len() - 1]), None);
        // A count the bytes cannot hold is refused before anything is allocated.
        assert_eq!(Undo::decode(&u32::MAX.to_le_bytes()), None);
    }
}
