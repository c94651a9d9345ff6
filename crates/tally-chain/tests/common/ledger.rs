//! A model of the accounts, written apart from `state.rs`: what a block must do to them.
//!
//! Shared by the property tests; a test file that needs it declares, beside `mod common;`,
//! `#[path = "common/ledger.rs"] mod ledger;` (and `spends.rs` builds on it under that name).

use tally_chain::AccountState;
use tally_chain::state::Accounts;
use tally_core::{AccountId, Amount};

use crate::common::{CASH, alice, bob};

pub fn state_of(ledger: &Accounts, account: &AccountId) -> AccountState {
    ledger.get(account).copied().unwrap_or_default()
}

/// Writes an account's state; empty accounts are absent, as in the chain's map.
pub fn put(ledger: &mut Accounts, account: AccountId, state: AccountState) {
    if state.is_empty() {
        ledger.remove(&account);
    } else {
        ledger.insert(account, state);
    }
}

pub fn credit(ledger: &mut Accounts, account: AccountId, micro: u64) {
    let mut state = state_of(ledger, &account);
    state.balance = Amount::from_microcash(state.balance.microcash() + micro);
    put(ledger, account, state);
}

/// The accounts at genesis of `contract_with(..)`: alice 100 cash, bob 50.
pub fn genesis_ledger() -> Accounts {
    let mut ledger = Accounts::new();
    credit(&mut ledger, alice().account(), 100 * CASH);
    credit(&mut ledger, bob().account(), 50 * CASH);
    ledger
}
