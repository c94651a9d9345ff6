//! Valid spends drawn from the running state of the accounts model (`ledger.rs`).
//!
//! Shared by the property tests that generate blocks; a test file that needs it declares,
//! beside `mod common;`, `#[path = "common/ledger.rs"] mod ledger;` and
//! `#[path = "common/spends.rs"] mod spends;`.
#![allow(clippy::expect_used)]

use tally_chain::state::Accounts;
use tally_chain::{AccountState, Transaction};
use tally_core::{AccountId, Amount, NetworkId, SecretKey, Signature};

use crate::common::{alice, bob, carol, key, sign_split, sign_transfer};
use crate::ledger::{credit, put, state_of};

/// The keys the generators spend from: alice and bob (funded at genesis), carol, and the
/// miner, whom every coinbase pays.
pub fn spenders() -> [SecretKey; 4] {
    [alice(), bob(), carol(), key(0x33)]
}

/// The model's spend: the sender pays the total and moves to its next sequence, then each
/// recipient is credited (a transfer may pay its own sender).
pub fn model_pay(ledger: &mut Accounts, from: AccountId, outputs: &[(AccountId, u64)]) {
    let total: u64 = outputs.iter().map(|(_, micro)| micro).sum();
    let mut sender = state_of(ledger, &from);
    sender.balance = Amount::from_microcash(sender.balance.microcash() - total);
    sender.next_sequence += 1;
    put(ledger, from, sender);
    for (to, micro) in outputs {
        credit(ledger, *to, *micro);
    }
}

/// Signed, valid spends against `ledger`, which they update as they apply: each pick
/// `(from, to, fraction)` spends a fraction of a funded sender's balance at its next
/// sequence, as a transfer to `spenders()[to]` (the sender itself included) or, for
/// `to == 4`, as a split to the two next keys. Unfunded senders are skipped.
pub fn valid_spends(
    network: &NetworkId,
    ledger: &mut Accounts,
    picks: &[(u8, u8, u16)],
) -> Vec<Transaction> {
    let keys = spenders();
    let mut txs = Vec::new();
    for &(from, to, fraction) in picks {
        let from = from as usize % 4;
        let key = &keys[from];
        let state = state_of(ledger, &key.account());
        let balance = state.balance.microcash();
        if balance < 2 {
            continue;
        }
        let amount = 1 + ((balance - 1) as u128 * fraction as u128 / u16::MAX as u128) as u64;
        let tx = if to % 5 == 4 {
            let half = (amount / 2).max(1);
            let outputs = [
                (keys[(from + 1) % 4].account(), half),
                (keys[(from + 2) % 4].account(), half),
            ];
            model_pay(ledger, key.account(), &outputs);
            sign_split(network, key, &outputs, state.next_sequence)
        } else {
            let to = keys[to as usize % 5].account();
            model_pay(ledger, key.account(), &[(to, amount)]);
            sign_transfer(network, key, to, amount, state.next_sequence)
        };
        txs.push(tx);
    }
    txs
}

/// A key among `spenders()` with some balance in `ledger`, preferring `pick` (the miner is
/// always funded once its block's coinbase is counted).
pub fn funded(ledger: &Accounts, pick: u8) -> (SecretKey, AccountState) {
    let keys = spenders();
    (0..4)
        .map(|k| keys[(pick as usize + k) % 4].clone())
        .map(|key| {
            let state = state_of(ledger, &key.account());
            (key, state)
        })
        .find(|(_, state)| state.balance.microcash() > 0)
        .expect("the miner is funded")
}

pub fn flip_signature(tx: &mut Transaction) {
    let mut bytes = *tx.signature.as_bytes();
    bytes[7] ^= 0x10;
    tx.signature = Signature::from(bytes);
}
