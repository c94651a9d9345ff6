//! Account and escrow state and the application of blocks to it, with undo records.
//!
//! A block is applied to an [`Overlay`] over the committed accounts and escrows: nothing
//! touches the committed maps until the whole block (or the whole reorganisation) has
//! succeeded, so a failure needs no rollback, and the overlay's changes are exactly what
//! storage must write.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tally_core::{
    AccountId, Amount, Decode, DecodeError, Digest, Encode, EscrowId, EscrowLock, EscrowState,
    NetworkId, Reader, Settlement,
};

use crate::block::{Block, Transaction};
use crate::error::{BlockError, TxRejected};
use crate::escrows::Escrows;
use crate::spend::{Effect, Settle, Spend};

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

/// What undoing a block needs: each touched account's and escrow's state before the block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Undo {
    /// `(account, state before the block)`, in first-touch order.
    pub prior: Vec<(AccountId, AccountState)>,
    /// `(escrow, state before the block)`, in first-touch order; `None` for an escrow the
    /// block locked.
    pub prior_escrows: Vec<(EscrowId, Option<EscrowState>)>,
}

impl Undo {
    /// Most accounts one undo record may name: a block touches one for its coinbase and,
    /// per transaction, its sender and each payment's recipient. A split's output takes 40
    /// bytes, so a block touches at most about one account per 40 of its bytes; this bound
    /// covers the largest block a contract can allow (`max_block_bytes` is a u32). It only
    /// rejects absurd counts: the decoder never allocates beyond the bytes it was given.
    pub const MAX_ACCOUNTS: usize = 1 << 27;

    /// Most escrows one undo record may name (at most one per transaction, and a lock takes
    /// more than 128 bytes); like [`Undo::MAX_ACCOUNTS`], a bound on absurd counts only.
    pub const MAX_ESCROWS: usize = 1 << 25;

    /// Its store record, tally-core's codec: `count u32 LE ‖ (account 32 ‖ state 16) × count`,
    /// then, only when the block touched escrows, `count u32 LE ‖ (escrow 32 ‖ option of
    /// its state) × count` (so the records of blocks without escrows keep the layout they
    /// always had).
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
        if !self.prior_escrows.is_empty() {
            let count = u32::try_from(self.prior_escrows.len()).unwrap_or(u32::MAX);
            count.encode_to(out);
            for (escrow, state) in &self.prior_escrows {
                escrow.encode_to(out);
                state.encode_to(out);
            }
        }
    }

    fn encoded_len(&self) -> usize {
        let escrows = if self.prior_escrows.is_empty() {
            0
        } else {
            4 + self
                .prior_escrows
                .iter()
                .map(|(id, state)| id.encoded_len() + state.encoded_len())
                .sum::<usize>()
        };
        4 + self.prior.len() * (32 + AccountState::LEN) + escrows
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
        let mut prior_escrows = Vec::new();
        if reader.remaining() > 0 {
            let at = reader.position();
            let count = reader.count("undo escrows", Self::MAX_ESCROWS, 33)?;
            // An empty section is written by leaving it out: one encoding per record.
            if count == 0 {
                return Err(DecodeError::Noncanonical {
                    what: "an empty escrow section",
                    at,
                });
            }
            prior_escrows.reserve(count);
            for _ in 0..count {
                prior_escrows.push((reader.read()?, reader.read()?));
            }
        }
        Ok(Undo {
            prior,
            prior_escrows,
        })
    }
}

/// Pending changes over the committed accounts and escrows.
pub struct Overlay<'a> {
    base: &'a Accounts,
    changes: HashMap<AccountId, AccountState>,
    escrow_base: &'a Escrows,
    escrow_changes: HashMap<EscrowId, Option<EscrowState>>,
    /// Hash locks of the escrows locked in the overlay.
    hash_locks: HashMap<Digest, EscrowId>,
}

/// What an overlay's changes come to: what storage must write and memory must merge.
pub struct Changes {
    /// Accounts to write; an empty state means "delete".
    pub accounts: HashMap<AccountId, AccountState>,
    /// Escrows to write; `None` means "delete" (an undone lock).
    pub escrows: HashMap<EscrowId, Option<EscrowState>>,
}

impl<'a> Overlay<'a> {
    /// An overlay with no changes.
    pub fn new(base: &'a Accounts, escrows: &'a Escrows) -> Self {
        Overlay {
            base,
            changes: HashMap::new(),
            escrow_base: escrows,
            escrow_changes: HashMap::new(),
            hash_locks: HashMap::new(),
        }
    }

    /// The escrow `id` with the pending changes.
    pub fn escrow(&self, id: &EscrowId) -> Option<EscrowState> {
        match self.escrow_changes.get(id) {
            Some(state) => *state,
            None => self.escrow_base.get(id).copied(),
        }
    }

    /// Whether an escrow (open or settled) uses `hash_lock`, with the pending changes.
    pub fn hash_lock_used(&self, hash_lock: &Digest) -> bool {
        let exists = |id: &EscrowId| self.escrow(id).is_some();
        self.hash_locks.get(hash_lock).is_some_and(exists)
            || self
                .escrow_base
                .by_hash_lock(hash_lock)
                .is_some_and(|id| exists(&id))
    }

    fn set_escrow(&mut self, id: EscrowId, state: Option<EscrowState>) {
        if let Some(state) = &state {
            self.hash_locks.insert(state.lock.hash_lock, id);
        }
        self.escrow_changes.insert(id, state);
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

    /// The pending changes.
    pub fn into_changes(self) -> Changes {
        Changes {
            accounts: self.changes,
            escrows: self.escrow_changes,
        }
    }

    /// Applies `block`'s coinbase and transactions in order, checking each sequence,
    /// balance and escrow rule; returns what undoing it needs. `median_time` is the median
    /// time past of the block's parent (the bound its own timestamp must exceed): escrow
    /// deadlines are judged by it. On error the overlay may hold part of the block: the
    /// caller drops it.
    pub fn apply_block(&mut self, block: &Block, median_time: u64) -> Result<Undo, BlockError> {
        let network = block.header.network;
        let mut prior_escrows: Vec<(EscrowId, Option<EscrowState>)> = Vec::new();
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
            match Effect::of(tx, &network).map_err(|error| error.in_block(index))? {
                Effect::Spend { spend, lock } => {
                    touch(self, &mut prior, &mut order, spend.sender);
                    for payment in spend.payments() {
                        touch(self, &mut prior, &mut order, payment.recipient);
                    }
                    let before_block = prior.get(&spend.sender).copied().unwrap_or_default();
                    if let Some(lock) = lock {
                        let id = tx.order.digest(&network);
                        self.check_lock(lock, index, median_time)?;
                        self.apply_spend(&spend, index, before_block.next_sequence)?;
                        // A lock's id is its order's digest, which includes the payer's
                        // sequence: the spend above already refused a second one.
                        prior_escrows.push((id, None));
                        self.set_escrow(id, Some(EscrowState::open(*lock)));
                    } else {
                        self.apply_spend(&spend, index, before_block.next_sequence)?;
                    }
                }
                Effect::Settle(settle) => {
                    let escrow = self
                        .settleable(&settle, median_time)
                        .map_err(|error| error.in_block(index, settle.escrow, median_time))?;
                    let to = paid_by(&escrow, &settle);
                    touch(self, &mut prior, &mut order, to);
                    if !self.credit(&to, escrow.lock.amount) {
                        return Err(BlockError::BalanceOverflow { index: Some(index) });
                    }
                    prior_escrows.push((settle.escrow, Some(escrow)));
                    self.set_escrow(settle.escrow, Some(settled(escrow, &settle)));
                }
            }
        }
        let prior = order
            .into_iter()
            .map(|account| (account, prior.get(&account).copied().unwrap_or_default()))
            .collect();
        Ok(Undo {
            prior,
            prior_escrows,
        })
    }

    /// Checks a lock in a block whose parent's median time past is `median_time`: its
    /// deadline lies after it (else nobody could ever claim it), and no escrow of this
    /// chain uses its hash lock.
    fn check_lock(
        &self,
        lock: &EscrowLock,
        index: usize,
        median_time: u64,
    ) -> Result<(), BlockError> {
        if lock.deadline <= median_time {
            return Err(BlockError::EscrowExpired {
                index,
                deadline: lock.deadline,
                median_time,
            });
        }
        if self.hash_lock_used(&lock.hash_lock) {
            return Err(BlockError::HashLockReused {
                index,
                hash_lock: lock.hash_lock,
            });
        }
        Ok(())
    }

    /// The escrow `settle` names, if it may be settled so in a block whose parent's median
    /// time past is `median_time`: it is open, and a claim shows its secret while that time
    /// is before the deadline, a refund comes once it has reached it. The median time past
    /// never decreases along a chain, so on one branch every claim comes before every
    /// refund, and the first settlement a block takes is the only one.
    pub(crate) fn settleable(
        &self,
        settle: &Settle,
        median_time: u64,
    ) -> Result<EscrowState, SettleError> {
        let escrow = self.escrow(&settle.escrow).ok_or(SettleError::Unknown)?;
        if escrow.settlement != Settlement::Open {
            return Err(SettleError::Settled);
        }
        let deadline = escrow.lock.deadline;
        match settle.secret {
            Some(secret) if secret.hash_lock() != escrow.lock.hash_lock => {
                Err(SettleError::WrongSecret)
            }
            Some(_) if median_time >= deadline => Err(SettleError::TooLate { deadline }),
            None if median_time < deadline => Err(SettleError::TooEarly { deadline }),
            _ => Ok(escrow),
        }
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

    /// Restores every account and escrow `undo` names to its state before the block.
    pub fn undo_block(&mut self, undo: &Undo) {
        for (account, state) in &undo.prior {
            self.set(*account, *state);
        }
        // Latest first, so that an escrow a block both locked and settled ends absent.
        for (escrow, state) in undo.prior_escrows.iter().rev() {
            self.escrow_changes.insert(*escrow, *state);
        }
    }

    /// Applies one transaction on its own, in a block of `network` whose parent's median
    /// time past is `median_time`, if the rules allow (template building); returns whether
    /// it did. Nothing changes when it does not.
    pub fn apply_transaction(
        &mut self,
        tx: &Transaction,
        network: &NetworkId,
        median_time: u64,
    ) -> bool {
        match Effect::of(tx, network) {
            Ok(Effect::Spend { spend, lock }) => {
                if let Some(lock) = lock
                    && self.check_lock(lock, 0, median_time).is_err()
                {
                    return false;
                }
                let next = self.get(&spend.sender).next_sequence;
                if self.apply_spend(&spend, 0, next).is_err() {
                    return false;
                }
                if let Some(lock) = lock {
                    self.set_escrow(tx.order.digest(network), Some(EscrowState::open(*lock)));
                }
                true
            }
            Ok(Effect::Settle(settle)) => {
                let Ok(escrow) = self.settleable(&settle, median_time) else {
                    return false;
                };
                let to = paid_by(&escrow, &settle);
                if !self.credit(&to, escrow.lock.amount) {
                    return false;
                }
                self.set_escrow(settle.escrow, Some(settled(escrow, &settle)));
                true
            }
            Err(_) => false,
        }
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

/// Why an escrow cannot be settled so in a block with some parent median time past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SettleError {
    /// No escrow with that id.
    Unknown,
    /// Claimed or refunded already.
    Settled,
    /// The claim's secret does not hash to the lock.
    WrongSecret,
    /// A claim once the median time past has reached the deadline.
    TooLate { deadline: u64 },
    /// A refund while the median time past is before the deadline.
    TooEarly { deadline: u64 },
}

impl SettleError {
    /// The block rule a settlement of `escrow` at `index` breaks in a block whose parent's
    /// median time past is `median_time`.
    pub(crate) fn in_block(self, index: usize, escrow: EscrowId, median_time: u64) -> BlockError {
        match self {
            SettleError::Unknown => BlockError::UnknownEscrow { index, escrow },
            SettleError::Settled => BlockError::EscrowSettled { index, escrow },
            SettleError::WrongSecret => BlockError::WrongSecret { index, escrow },
            SettleError::TooLate { deadline } => BlockError::ClaimTooLate {
                index,
                escrow,
                deadline,
                median_time,
            },
            SettleError::TooEarly { deadline } => BlockError::RefundTooEarly {
                index,
                escrow,
                deadline,
                median_time,
            },
        }
    }

    /// Why the mempool refuses a settlement of `escrow` for the next block, whose parent's
    /// median time past is `median_time`.
    pub(crate) fn rejected(self, escrow: EscrowId, median_time: u64) -> TxRejected {
        match self {
            SettleError::Unknown => TxRejected::UnknownEscrow(escrow),
            SettleError::Settled => TxRejected::EscrowSettled(escrow),
            SettleError::WrongSecret => TxRejected::WrongSecret(escrow),
            SettleError::TooLate { deadline } => TxRejected::ClaimTooLate {
                escrow,
                deadline,
                median_time,
            },
            SettleError::TooEarly { deadline } => TxRejected::RefundTooEarly {
                escrow,
                deadline,
                median_time,
            },
        }
    }
}

/// The escrow once `settle` is applied to it.
fn settled(escrow: EscrowState, settle: &Settle) -> EscrowState {
    EscrowState {
        settlement: match settle.secret {
            Some(secret) => Settlement::Claimed(secret),
            None => Settlement::Refunded,
        },
        ..escrow
    }
}

/// Who `settle` pays: a claim the payee, a refund the payer.
fn paid_by(escrow: &EscrowState, settle: &Settle) -> AccountId {
    match settle.secret {
        Some(_) => escrow.lock.payee,
        None => escrow.lock.payer,
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
            prior_escrows: Vec::new(),
        };
        let mut record = 1u32.to_le_bytes().to_vec();
        record.extend_from_slice(account.as_bytes());
        record.extend_from_slice(&expected);
        assert_eq!(undo.encode(), record);
        assert_eq!(Undo::decode(&record), Some(undo));
        assert_eq!(Undo::decode(&record[..record.len() - 1]), None);
        // A count the bytes cannot hold is refused before anything is allocated.
        assert_eq!(Undo::decode(&u32::MAX.to_le_bytes()), None);
        // A record without escrows leaves the section out; written empty, it is refused
        // (one encoding per record).
        let mut empty_section = record.clone();
        empty_section.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(Undo::decode(&empty_section), None);
        // With escrows: the section follows, each escrow's id and the option of its state.
        let escrow = Digest::from([4; 32]);
        let with_escrows = Undo {
            prior: vec![(account, state)],
            prior_escrows: vec![(escrow, None)],
        };
        let mut expected_record = record.clone();
        expected_record.extend_from_slice(&1u32.to_le_bytes());
        expected_record.extend_from_slice(escrow.as_bytes());
        expected_record.push(0);
        assert_eq!(with_escrows.encode(), expected_record);
        assert_eq!(Undo::decode(&expected_record), Some(with_escrows));
    }
}
