//! Property test of apply and undo against a model of the accounts (`common/ledger.rs`):
//! valid spends drawn from the running state, interleaved with deliberate faults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/ledger.rs"]
mod ledger;
#[path = "common/spends.rs"]
mod spends;

use std::cell::RefCell;

use common::*;
use ledger::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestCaseResult, TestRunner};
use spends::*;
use tally_chain::state::{Accounts, Overlay, Undo, merge, total_balance};
use tally_chain::{BlockHash, BlockOutcome, Chain, ChainError, ChainStore, Escrows, Transaction};
use tally_core::Amount;

/// Everything of a chain that a refused block must leave alone.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tip: tally_chain::TipInfo,
    main: Vec<BlockHash>,
    accounts: Accounts,
    supply: Option<Amount>,
    orphans: usize,
}

fn snapshot<S: ChainStore>(chain: &Chain<S>) -> Snapshot {
    Snapshot {
        tip: chain.tip(),
        main: (0..=chain.height())
            .map(|h| chain.hash_at(h).unwrap())
            .collect(),
        accounts: chain.accounts().clone(),
        supply: chain.supply(),
        orphans: chain.orphan_count(),
    }
}

/// A deliberate fault in a block built on the tip: each breaks one rule (rule numbers of
/// PROTOCOL.md's "Validity").
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Rule 8: a would-be-valid transfer with one signature bit flipped.
    BadSignature,
    /// Rule 9: a transfer of one more than the sender's balance at that point.
    Overspend,
    /// Rule 9: a transfer one sequence ahead of the sender's next.
    SequenceGap,
    /// Rule 9: a transaction of an earlier main-chain block, again (`StaleSequence`).
    Replay,
    /// Rule 9: a transaction of this block twice (`DoubleSpend`).
    Duplicate,
    /// Rule 5: a transfer of nothing.
    ZeroAmount,
    /// Rule 5: a split paying its own sender.
    SplitPaysSender,
    /// Rule 4: a coinbase one microcash over the reward.
    WrongReward,
    /// Rule 7: a (harder) target other than the expected one.
    WrongTarget,
}

const FAULTS: [Fault; 9] = [
    Fault::BadSignature,
    Fault::Overspend,
    Fault::SequenceGap,
    Fault::Replay,
    Fault::Duplicate,
    Fault::ZeroAmount,
    Fault::SplitPaysSender,
    Fault::WrongReward,
    Fault::WrongTarget,
];

#[derive(Clone, Debug)]
struct Step {
    /// Valid spends drawn from the running state (see [`valid_spends`]).
    picks: Vec<(u8, u8, u16)>,
    /// About one block in four carries a fault besides its valid spends.
    fault: Option<Fault>,
    /// Whose key the fault uses.
    fault_sender: u8,
    /// After a valid block, undo it on the chain too, by a heavier sibling branch.
    undo_by_reorg: bool,
}

fn arb_step() -> impl Strategy<Value = Step> {
    (
        prop::collection::vec((0u8..4, 0u8..5, any::<u16>()), 1..4),
        0..FAULTS.len() * 4,
        0u8..4,
        prop::bool::weighted(0.2),
    )
        .prop_map(|(picks, fault, fault_sender, undo_by_reorg)| Step {
            picks,
            fault: FAULTS.get(fault).copied(),
            fault_sender,
            undo_by_reorg,
        })
}

#[derive(Debug, Default)]
struct ApplyStats {
    cases: usize,
    cases_with_transfers: usize,
    blocks: usize,
    blocks_with_transfers: usize,
    transactions: usize,
    faulty: usize,
    undone_by_reorg: usize,
}

/// Runs `steps` on a chain and on the model: valid blocks must apply exactly as the model
/// says and undo (through the undo record's bytes) to exactly the state before; faulty ones
/// must be refused and change nothing.
fn apply_undo_case(steps: &[Step], stats: &mut ApplyStats) -> TestCaseResult {
    let p = params();
    let mut chain = chain();
    let mut ledger = genesis_ledger();
    prop_assert_eq!(chain.accounts(), &ledger);
    // The transactions of the main chain's blocks, for replays.
    let mut history: Vec<Transaction> = Vec::new();
    let mut tip = genesis(&p);
    let mut carried_any = false;
    for (n, step) in steps.iter().enumerate() {
        let salt = n as u64 % 500;
        let mut after = ledger.clone();
        credit(&mut after, miner_account(), REWARD);
        let mut txs = valid_spends(&p.network, &mut after, &step.picks);
        let carried = txs.len();
        let Some(fault) = step.fault else {
            let block = child(&p, tip, txs, salt);
            let before = snapshot(&chain);
            prop_assert_eq!(&before.accounts, &ledger);

            // The state machine alone: apply, then undo through the record's bytes.
            let no_escrows = Escrows::default();
            let mut overlay = Overlay::new(&before.accounts, &no_escrows);
            let undo = overlay
                .apply_block(&block, 0)
                .map_err(|e| TestCaseError::fail(format!("valid block refused: {e}")))?;
            let mut applied = before.accounts.clone();
            merge(&mut applied, overlay.into_changes().accounts);
            prop_assert_eq!(&applied, &after, "apply differs from the model");
            prop_assert_eq!(
                total_balance(&applied).unwrap().microcash(),
                total_balance(&before.accounts).unwrap().microcash() + REWARD
            );
            let undo = Undo::decode(&undo.encode()).unwrap();
            let mut back = Overlay::new(&applied, &no_escrows);
            back.undo_block(&undo);
            let mut restored = applied.clone();
            merge(&mut restored, back.into_changes().accounts);
            prop_assert_eq!(
                &restored,
                &before.accounts,
                "undo did not restore the state"
            );

            // The chain: the block extends the tip with exactly the model's state.
            match chain.accept_block(block.clone(), NOW) {
                Ok(BlockOutcome::Stored {
                    tip_change: Some(change),
                    ..
                }) => {
                    prop_assert_eq!(change.new_tip, block.hash());
                    prop_assert!(!change.is_reorg());
                }
                other => return Err(TestCaseError::fail(format!("valid block: {other:?}"))),
            }
            prop_assert_eq!(chain.tip().hash, block.hash());
            prop_assert_eq!(chain.height(), before.tip.height + 1);
            prop_assert_eq!(chain.accounts(), &after);
            prop_assert_eq!(chain.supply(), p.supply_at(chain.height()));
            stats.blocks += 1;
            if carried > 0 {
                stats.blocks_with_transfers += 1;
                stats.transactions += carried;
                carried_any = true;
            }

            if step.undo_by_reorg {
                // The chain undoes it too: a sibling of equal work changes nothing (the
                // block seen first stays), and a second block on the sibling makes that
                // branch heavier, so the block is disconnected.
                let at_block = snapshot(&chain);
                let s1 = child(&p, tip, vec![], 500 + salt);
                let s2 = child(&p, parent_of(&s1), vec![], 500 + salt);
                let outcome = chain.accept_block(s1.clone(), NOW).unwrap();
                prop_assert!(
                    matches!(
                        outcome,
                        BlockOutcome::Stored {
                            tip_change: None,
                            ..
                        }
                    ),
                    "{:?}",
                    outcome
                );
                prop_assert_eq!(&snapshot(&chain), &at_block);
                match chain.accept_block(s2.clone(), NOW) {
                    Ok(BlockOutcome::Stored {
                        tip_change: Some(change),
                        ..
                    }) => {
                        prop_assert_eq!(change.disconnected, vec![block.hash()]);
                        prop_assert_eq!(change.connected, vec![s1.hash(), s2.hash()]);
                    }
                    other => return Err(TestCaseError::fail(format!("reorg: {other:?}"))),
                }
                let mut expected = ledger.clone();
                credit(&mut expected, miner_account(), 2 * REWARD);
                prop_assert_eq!(chain.tip().hash, s2.hash());
                prop_assert_eq!(chain.accounts(), &expected, "reorg did not undo the block");
                prop_assert_eq!(chain.supply(), p.supply_at(chain.height()));
                ledger = expected;
                tip = parent_of(&s2);
                stats.undone_by_reorg += 1;
                continue;
            }
            ledger = after;
            tip = parent_of(&block);
            history.extend(block.transactions);
            continue;
        };

        // A faulty block: the valid spends, and the fault.
        let (key, state) = funded(&after, step.fault_sender);
        let balance = state.balance.microcash();
        let next = state.next_sequence;
        let to = bob().account();
        let mut block = draft(&p, tip, vec![], salt);
        match fault {
            Fault::BadSignature => {
                let mut tx = sign_transfer(&p.network, &key, to, 1, next);
                flip_signature(&mut tx);
                txs.push(tx);
            }
            Fault::Overspend => txs.push(sign_transfer(&p.network, &key, to, balance + 1, next)),
            Fault::SequenceGap => txs.push(sign_transfer(&p.network, &key, to, 1, next + 1)),
            Fault::Replay | Fault::Duplicate => {
                let old = match (fault, history.last()) {
                    (Fault::Replay, Some(old)) => old.clone(),
                    _ => {
                        if txs.is_empty() {
                            txs.push(sign_transfer(&p.network, &key, to, 1, next));
                        }
                        txs[0].clone()
                    }
                };
                txs.push(old);
            }
            Fault::ZeroAmount => txs.push(sign_transfer(&p.network, &key, to, 0, next)),
            Fault::SplitPaysSender => {
                let outputs = [(key.account(), 1), (alice().account(), 1)];
                txs.push(sign_split(&p.network, &key, &outputs, next));
            }
            Fault::WrongReward => {
                block.coinbase.amount = Amount::from_microcash(REWARD + 1);
            }
            Fault::WrongTarget => block.header.target = p.initial_target.shr(1),
        }
        block.transactions = txs;
        let block = seal(block);
        let before = snapshot(&chain);
        let result = chain.accept_block(block.clone(), NOW);
        prop_assert!(
            matches!(result, Err(ChainError::Invalid { .. })),
            "{:?} not refused: {:?}",
            fault,
            result
        );
        prop_assert_eq!(
            &snapshot(&chain),
            &before,
            "a refused block changed the chain"
        );
        prop_assert!(!chain.is_on_main_chain(&block.hash()));
        // Offered again, it is refused again, still changing nothing.
        prop_assert!(chain.accept_block(block, NOW).is_err());
        prop_assert_eq!(snapshot(&chain), before);
        stats.faulty += 1;
    }
    stats.cases += 1;
    if carried_any {
        stats.cases_with_transfers += 1;
    }
    Ok(())
}

/// Protects rule 9 and the undo records: a valid block (transfers and splits drawn from
/// the running state: funded keys, right sequences, amounts within balance) applies exactly
/// as an independent model of the accounts says, grows supply by one reward, and undoing it
/// (from the undo record's bytes, as storage keeps it, and on the chain by a reorganisation)
/// restores exactly the state before; a block with a fault (bad signature, overspend,
/// sequence gap, replay, duplicate, zero amount, malformed split, wrong reward or target) is
/// refused and leaves tip, main chain, accounts, sequences and supply exactly as they were.
#[test]
fn apply_then_undo_restores_the_exact_state() {
    let stats = RefCell::new(ApplyStats::default());
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 64,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    runner
        .run(&prop::collection::vec(arb_step(), 1..12), |steps| {
            apply_undo_case(&steps, &mut stats.borrow_mut())
        })
        .unwrap();
    let stats = stats.into_inner();
    eprintln!("apply/undo: {stats:?}");
    // The generator must make the property bite: most blocks carry real spends.
    let all_blocks = stats.blocks + stats.faulty;
    assert!(
        2 * stats.blocks_with_transfers > all_blocks,
        "too few blocks carried spends: {stats:?}"
    );
    assert!(
        4 * stats.cases_with_transfers > 3 * stats.cases,
        "{stats:?}"
    );
    assert!(stats.faulty > 0 && stats.undone_by_reorg > 0, "{stats:?}");
}
