//! What the redb tables do not hold yet: every change since the last checkpoint.

use std::collections::{BTreeMap, BTreeSet};

use tally_core::{AccountId, Certificate, EscrowId, LockSlot};

use crate::state::{AccountState, Changes, EscrowState, LockChange, Validator};
use crate::store::records::{IndexKey, LockKey, index_key, lock_key, lock_row, transfer_lock};

/// Every change since the last checkpoint, as of the last committed batch. The same facts
/// are durable in the log's tail and the vote journal; this copy serves reads and feeds
/// the next checkpoint.
#[derive(Default)]
pub(super) struct Pending {
    /// Log position up to which the tables are current (the last checkpoint).
    pub(super) base: u64,
    /// The log length and supply after the last committed batch.
    pub(super) log_len: u64,
    pub(super) supply: u64,
    /// Changed accounts and their latest state.
    pub(super) accounts: BTreeMap<AccountId, AccountState>,
    /// Escrows opened or settled, and their latest state.
    pub(super) escrows: BTreeMap<EscrowId, EscrowState>,
    /// Lock rows to write (`Some`, the row's value) or delete (`None`).
    pub(super) locks: BTreeMap<LockKey, Option<Vec<u8>>>,
    /// `sent` rows: account ‖ sequence → log position.
    pub(super) sent: BTreeMap<IndexKey, u64>,
    /// `touching` rows: account ‖ log position.
    pub(super) touching: BTreeSet<IndexKey>,
    /// Vote records journaled since the checkpoint.
    pub(super) votes: u64,
    /// The next vote journal row.
    pub(super) next_vote_row: u64,
}

impl Pending {
    /// Records what a certificate at `position` adds to the indexes: its sender's `sent`
    /// row, and a `touching` row for each account it `touched`
    /// ([`crate::store::ledger_store::touched_by`]).
    pub(super) fn index(
        &mut self,
        position: u64,
        certificate: &Certificate,
        touched: &[AccountId],
    ) {
        if let Some((sender, sequence)) = certificate.order.spender() {
            self.sent.insert(index_key(&sender, sequence), position);
        }
        for account in touched {
            self.touching.insert(index_key(account, position));
        }
    }

    pub(super) fn lock(&mut self, change: &LockChange) {
        match change {
            LockChange::Set(lock) => {
                self.locks
                    .insert(lock_key(&lock.slot), Some(lock_row(lock)));
            }
            // A transfer lock's row is left behind when its certificate is applied (clearing
            // it would cost a write per certificate): it is skipped on load, since its
            // sequence is below the account's next one, and overwritten by the account's
            // next lock.
            LockChange::Clear(LockSlot::Sequence(..)) => {}
            LockChange::Clear(slot) => {
                self.locks.insert(lock_key(slot), None);
            }
        }
    }

    /// Whether a transfer lock row is below its account's next sequence as of the last
    /// committed batch (its certificate is applied).
    pub(super) fn lock_is_history(&self, key: &LockKey, value: &[u8]) -> bool {
        let Some((account, sequence)) = transfer_lock(key, value) else {
            return false;
        };
        self.accounts
            .get(&account)
            .is_some_and(|state| sequence < state.next_sequence)
    }

    pub(super) fn due(&self, every: u64) -> bool {
        self.log_len.saturating_sub(self.base) >= every || self.votes >= every.saturating_mul(2)
    }

    /// Adds the states of the accounts and escrows `changes` touched.
    pub(super) fn remember(&mut self, validator: &Validator, changes: &Changes) {
        for account in &changes.accounts {
            self.accounts.insert(*account, validator.account(account));
        }
        for id in &changes.escrows {
            if let Some(escrow) = validator.escrow(id) {
                self.escrows.insert(*id, escrow);
            }
        }
    }
}
