//! `Split` transactions on a proof-of-work chain: one sender, one sequence, several
//! outputs, all or nothing — in the mempool, templates, block checks, state application
//! and reorganisations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use tally_chain::state::Overlay;
use tally_chain::{
    Block, BlockError, BlockOutcome, Chain, ChainError, Transaction, TxRejected, TxStatus,
    check_block,
};
use tally_core::{AccountId, MAX_SPLIT_OUTPUTS, SplitError};

fn dave() -> AccountId {
    key(0xd0).account()
}

fn rejects(chain: &mut Chain, block: Block) -> BlockError {
    match chain.accept_block(block, NOW) {
        Err(ChainError::Invalid { error, .. }) => error,
        other => panic!("expected an invalid block, got {other:?}"),
    }
}

fn balance(chain: &Chain, account: &AccountId) -> u64 {
    chain.account(account).balance.microcash()
}

/// Alice pays bob 10, carol 20 and dave 5 cash in one split at sequence 0.
fn three_way(sequence: u64) -> Transaction {
    split_micro(
        &alice(),
        &[
            (bob().account(), 10 * CASH),
            (carol().account(), 20 * CASH),
            (dave(), 5 * CASH),
        ],
        sequence,
    )
}

/// A split goes through the mempool into the miner's template, and the mined block debits
/// the sender the total once (one sequence) and credits every output; while pending, each
/// recipient sees its own output as pending in, the sender the total as pending out.
#[test]
fn a_mined_split_pays_every_output_and_debits_the_total() {
    let mut chain = chain();
    let split = three_way(0);
    chain.submit_transaction(split.clone()).unwrap();
    assert_eq!(chain.transaction_status(&split), TxStatus::Pending);
    let pool = chain.mempool();
    assert_eq!(
        pool.pending_outgoing(&alice().account()).microcash(),
        35 * CASH
    );
    assert_eq!(
        pool.pending_incoming(&carol().account()).microcash(),
        20 * CASH
    );
    assert_eq!(pool.pending_incoming(&dave()).microcash(), 5 * CASH);
    assert_eq!(pool.pending_incoming(&alice().account()).microcash(), 0);

    let block = mine_tip(&mut chain);
    assert_eq!(block.transactions, vec![split.clone()]);
    assert_eq!(balance(&chain, &alice().account()), 65 * CASH);
    assert_eq!(balance(&chain, &bob().account()), 60 * CASH);
    assert_eq!(balance(&chain, &carol().account()), 20 * CASH);
    assert_eq!(balance(&chain, &dave()), 5 * CASH);
    assert_eq!(chain.account(&alice().account()).next_sequence, 1);
    assert_eq!(chain.account(&carol().account()).next_sequence, 0);
    assert!(chain.mempool().is_empty());
    // The incoming index forgets what was mined.
    assert_eq!(
        chain
            .mempool()
            .pending_incoming(&carol().account())
            .microcash(),
        0
    );
    assert_eq!(chain.mempool().pending_incoming(&dave()).microcash(), 0);
    assert_eq!(
        chain.transaction_status(&split),
        TxStatus::Confirmed {
            height: 1,
            confirmations: 1
        }
    );
    assert_eq!(chain.supply(), chain.params().supply_at(1));
    assert_consistent(&chain);
}

/// Within one block, a split may be followed by the sender's next sequence and by a
/// recipient spending what the split just paid; a full split of 64 outputs applies too.
#[test]
fn a_block_mixes_splits_and_transfers_in_order() {
    let mut chain = chain();
    let p = chain.params().clone();
    let outputs: Vec<(AccountId, u64)> = (0..MAX_SPLIT_OUTPUTS)
        .map(|i| (key(64 + i as u8).account(), 1 + i as u64))
        .collect();
    let txs = vec![
        three_way(0),
        // Carol spends the 20 cash the split just paid her.
        transfer(&carol(), &bob(), 15, 0),
        split_micro(&alice(), &outputs, 1),
        transfer(&alice(), &carol(), 1, 2),
    ];
    let block = child(&p, genesis(&p), txs, 0);
    chain.accept_block(block, NOW).unwrap();
    assert_eq!(chain.height(), 1);
    let paid: u64 = outputs.iter().map(|(_, micro)| micro).sum();
    assert_eq!(balance(&chain, &alice().account()), 64 * CASH - paid);
    assert_eq!(chain.account(&alice().account()).next_sequence, 3);
    assert_eq!(balance(&chain, &carol().account()), 6 * CASH);
    assert_eq!(balance(&chain, &bob().account()), 75 * CASH);
    for (account, micro) in &outputs {
        assert_eq!(balance(&chain, account), *micro);
    }
    assert_consistent(&chain);
}

/// A split and a transfer for one sequence take the same lock slot: whichever arrives
/// second conflicts. The funds check counts a pending split's whole total.
#[test]
fn a_split_and_a_transfer_for_one_sequence_conflict_in_the_mempool() {
    let mut chain = chain();
    chain
        .submit_transaction(transfer(&alice(), &bob(), 60, 0))
        .unwrap();
    assert_eq!(
        chain.submit_transaction(three_way(0)),
        Err(TxRejected::Conflict { sequence: 0 })
    );

    let mut other = chain_fresh();
    other.submit_transaction(three_way(0)).unwrap();
    assert_eq!(
        other.submit_transaction(transfer(&alice(), &bob(), 60, 0)),
        Err(TxRejected::Conflict { sequence: 0 })
    );
    assert_eq!(
        other.submit_transaction(three_way(0)),
        Err(TxRejected::Duplicate)
    );

    // 60 pending out of 100: a split of 35 more fits, then one of 10 more does not.
    chain.submit_transaction(three_way(1)).unwrap();
    let short = split_micro(
        &alice(),
        &[(bob().account(), 4 * CASH), (carol().account(), 6 * CASH)],
        2,
    );
    assert_eq!(
        chain.submit_transaction(short),
        Err(TxRejected::InsufficientFunds {
            available: tally_core::Amount::from_microcash(5 * CASH),
            amount: tally_core::Amount::from_microcash(10 * CASH),
        })
    );
    assert_eq!(chain.mempool().len(), 2);
    let block = mine_tip(&mut chain);
    assert_eq!(block.transactions.len(), 2);
    assert_eq!(balance(&chain, &alice().account()), 5 * CASH);
}

fn chain_fresh() -> Chain {
    chain()
}

/// Every way a split can be malformed, with the reason it must be refused for.
fn malformed() -> Vec<(Transaction, SplitError)> {
    let a = alice();
    let (b, c) = (bob().account(), carol().account());
    let too_many: Vec<(AccountId, u64)> = (0..=MAX_SPLIT_OUTPUTS)
        .map(|i| (key(64 + i as u8).account(), 1))
        .collect();
    vec![
        (split_micro(&a, &[], 0), SplitError::OutputCount(0)),
        (
            split_micro(&a, &too_many, 0),
            SplitError::OutputCount(MAX_SPLIT_OUTPUTS + 1),
        ),
        (
            split_micro(&a, &[(b, 1), (c, 0)], 0),
            SplitError::ZeroAmount,
        ),
        (
            split_micro(&a, &[(b, 1), (a.account(), 1)], 0),
            SplitError::PaysSender,
        ),
        (
            split_micro(&a, &[(b, 1), (c, 1), (b, 2)], 0),
            SplitError::DuplicateRecipient,
        ),
        (
            split_micro(&a, &[(b, u64::MAX), (c, 1)], 0),
            SplitError::Overflow,
        ),
    ]
}

/// A malformed split is refused by the mempool and makes a block invalid, naming the
/// transaction's index and the reason, by the context-free checks and by state application
/// alike (a reorganisation applies blocks without the former); nothing changes.
#[test]
fn malformed_splits_are_refused_with_their_reason_and_change_nothing() {
    let mut chain = chain();
    let p = chain.params().clone();
    let accounts = chain.accounts().clone();
    for (split, reason) in malformed() {
        assert_eq!(
            chain.submit_transaction(split.clone()),
            Err(TxRejected::MalformedSplit(reason))
        );
        let checked = tally_chain::check_transactions(&p, chain.key_cache(), vec![split.clone()]);
        assert_eq!(
            chain.submit_checked(checked),
            vec![Err(TxRejected::MalformedSplit(reason))]
        );
        let block = child(
            &p,
            genesis(&p),
            vec![transfer(&bob(), &carol(), 1, 0), split],
            0,
        );
        let refused = BlockError::MalformedSplit { index: 1, reason };
        assert!(
            refused
                .to_string()
                .contains("transaction 1 is a malformed split")
        );
        assert_eq!(
            check_block(&p, chain.key_cache(), block.clone())
                .unwrap_err()
                .block_error(),
            Some(&refused)
        );
        assert_eq!(
            Overlay::new(&accounts, &tally_chain::Escrows::default()).apply_block(&block, 0),
            Err(refused.clone())
        );
        assert_eq!(rejects(&mut chain, block), refused);
        assert_eq!(chain.height(), 0);
        assert_eq!(chain.accounts(), &accounts);
        assert!(chain.mempool().is_empty());
    }
}

/// A split whose total exceeds the sender's balance is an overdraft of the total, even
/// when every output alone would be covered; the block changes nothing.
#[test]
fn a_split_overdrawing_its_total_refuses_the_block() {
    let mut chain = chain();
    let p = chain.params().clone();
    let accounts = chain.accounts().clone();
    let split = split_micro(
        &alice(),
        &[(bob().account(), 60 * CASH), (carol().account(), 50 * CASH)],
        0,
    );
    assert_eq!(
        chain.submit_transaction(split.clone()),
        Err(TxRejected::InsufficientFunds {
            available: tally_core::Amount::from_microcash(100 * CASH),
            amount: tally_core::Amount::from_microcash(110 * CASH),
        })
    );
    let block = child(&p, genesis(&p), vec![split], 0);
    assert_eq!(
        rejects(&mut chain, block),
        BlockError::Overdraft {
            index: 0,
            balance: tally_core::Amount::from_microcash(100 * CASH),
            amount: tally_core::Amount::from_microcash(110 * CASH),
        }
    );
    assert_eq!(chain.accounts(), &accounts);
    // A split replaying a sequence the chain used, or skipping one, is refused as a
    // transfer would be.
    let block = child(&p, genesis(&p), vec![three_way(0), three_way(0)], 1);
    assert!(matches!(
        rejects(&mut chain, block),
        BlockError::DoubleSpend { index: 1, .. }
    ));
    let block = child(&p, genesis(&p), vec![three_way(1)], 2);
    assert!(matches!(
        rejects(&mut chain, block),
        BlockError::SequenceGap { index: 0, .. }
    ));
    assert_eq!(chain.accounts(), &accounts);
}

/// A reorganisation that undoes a block holding a split restores the sender and every
/// recipient, returns the split to the mempool, and a later block mines it again.
#[test]
fn undoing_a_split_in_a_reorganisation_restores_every_recipient() {
    let mut chain = chain();
    let p = chain.params().clone();
    let genesis_accounts = chain.accounts().clone();
    let split = three_way(0);
    let main = child(&p, genesis(&p), vec![split.clone()], 0);
    chain.accept_block(main, NOW).unwrap();
    assert_eq!(balance(&chain, &dave()), 5 * CASH);

    let side1 = child(&p, genesis(&p), vec![], 7);
    let side2 = child(&p, parent_of(&side1), vec![], 7);
    chain.accept_block(side1, NOW).unwrap();
    let outcome = chain.accept_block(side2.clone(), NOW).unwrap();
    let BlockOutcome::Stored {
        tip_change: Some(change),
        ..
    } = outcome
    else {
        panic!("the heavier branch should take the tip: {outcome:?}");
    };
    assert!(change.is_reorg());
    assert_eq!(change.returned_to_mempool, 1);
    assert_eq!(chain.tip().hash, side2.hash());
    for account in [
        alice().account(),
        bob().account(),
        carol().account(),
        dave(),
    ] {
        assert_eq!(
            chain.account(&account),
            genesis_accounts.get(&account).copied().unwrap_or_default(),
            "{account} is back to its genesis state"
        );
    }
    assert_eq!(chain.transaction_status(&split), TxStatus::Pending);
    assert_eq!(chain.mempool().get(&alice().account(), 0), Some(&split));

    let block = mine_tip(&mut chain);
    assert_eq!(block.transactions, vec![split]);
    assert_eq!(balance(&chain, &carol().account()), 20 * CASH);
    assert_consistent(&chain);
}
