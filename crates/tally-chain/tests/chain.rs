//! The chain state machine: extension, supply, fork choice and reorganisation, orphans,
//! every invalid-block rule, the mempool, templates, retargeting and sync queries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use tally_chain::{
    Block, BlockError, BlockOutcome, Chain, ChainConfig, ChainError, ChainParams, Transaction,
    TxRejected, TxStatus, U256, check_block, miner,
};
use tally_core::{Amount, Encode, IntroKey, NetworkId, Order, SignedOrder};

fn rejects(chain: &mut Chain, block: Block) -> BlockError {
    match chain.accept_block(block, NOW) {
        Err(ChainError::Invalid { error, .. }) => error,
        other => panic!("expected an invalid block, got {other:?}"),
    }
}

fn supply_holds(chain: &Chain) {
    assert_eq!(
        chain.supply(),
        chain.params().supply_at(chain.height()),
        "supply at height {}",
        chain.height()
    );
}

#[test]
fn mining_extends_the_chain_and_supply_is_genesis_plus_rewards() {
    let mut chain = chain();
    supply_holds(&chain);
    let (a, b, c) = (alice(), bob(), carol());
    chain.submit_transaction(transfer(&a, &b, 10, 0)).unwrap();
    chain
        .submit_transaction(transfer(&b, &c, 55, 0))
        .unwrap_err(); // bob has only 50
    chain.submit_transaction(transfer(&b, &c, 5, 0)).unwrap();
    let block = mine_tip(&mut chain);
    assert_eq!(block.transactions.len(), 2);
    assert_eq!(chain.height(), 1);
    assert_eq!(chain.tip().hash, block.hash());
    assert_eq!(chain.account(&a.account()).balance.microcash(), 90 * CASH);
    assert_eq!(chain.account(&b.account()).balance.microcash(), 55 * CASH);
    assert_eq!(chain.account(&c.account()).balance.microcash(), 5 * CASH);
    assert_eq!(chain.account(&miner_account()).balance.microcash(), REWARD);
    assert_eq!(chain.account(&a.account()).next_sequence, 1);
    assert!(chain.mempool().is_empty());
    supply_holds(&chain);
    for _ in 0..5 {
        mine_tip(&mut chain);
        supply_holds(&chain);
    }
    assert_eq!(chain.height(), 6);
    assert!(chain.tip().work > U256::from_u64(6));
}

#[test]
fn a_block_may_spend_what_an_earlier_transaction_of_it_paid() {
    let mut chain = chain();
    let (a, c) = (alice(), carol());
    chain.submit_transaction(transfer(&a, &c, 10, 0)).unwrap();
    // Carol has nothing confirmed yet: the mempool refuses her spend for now.
    assert!(matches!(
        chain.submit_transaction(transfer(&c, &a, 4, 0)),
        Err(TxRejected::InsufficientFunds { .. })
    ));
    let p = chain.params().clone();
    let block = child(
        &p,
        genesis(&p),
        vec![transfer(&a, &c, 10, 0), transfer(&c, &a, 4, 0)],
        0,
    );
    chain.accept_block(block, NOW).unwrap();
    assert_eq!(chain.account(&c.account()).balance.microcash(), 6 * CASH);
    assert!(
        chain.mempool().is_empty(),
        "the mined transfer left the mempool"
    );
}

#[test]
fn heavier_branch_wins_and_orphaned_transactions_return_to_the_mempool() {
    let mut chain = chain();
    let p = chain.params().clone();
    let (a, b) = (alice(), bob());
    let t1 = transfer(&a, &b, 10, 0);
    let t2 = transfer(&a, &b, 5, 1);
    let a1 = child(&p, genesis(&p), vec![t1.clone()], 0);
    let a2 = child(&p, parent_of(&a1), vec![t2.clone()], 0);
    chain.accept_block(a1.clone(), NOW).unwrap();
    chain.accept_block(a2.clone(), NOW).unwrap();
    assert_eq!(chain.tip().hash, a2.hash());

    // A competing branch from genesis, with t1 only.
    let b1 = child(&p, genesis(&p), vec![t1], 7);
    let b2 = child(&p, parent_of(&b1), vec![], 7);
    let b3 = child(&p, parent_of(&b2), vec![], 7);
    let outcome = chain.accept_block(b1.clone(), NOW).unwrap();
    assert!(matches!(
        outcome,
        BlockOutcome::Stored {
            tip_change: None,
            ..
        }
    ));
    let outcome = chain.accept_block(b2.clone(), NOW).unwrap();
    assert!(
        matches!(
            outcome,
            BlockOutcome::Stored {
                tip_change: None,
                ..
            }
        ),
        "equal work does not move the tip"
    );
    assert_eq!(chain.tip().hash, a2.hash());

    let BlockOutcome::Stored {
        tip_change: Some(change),
        ..
    } = chain.accept_block(b3.clone(), NOW).unwrap()
    else {
        panic!("b3 makes the b branch heavier")
    };
    assert!(change.is_reorg());
    assert_eq!(change.old_tip, a2.hash());
    assert_eq!(change.new_tip, b3.hash());
    assert_eq!(change.disconnected, vec![a2.hash(), a1.hash()]);
    assert_eq!(change.connected, vec![b1.hash(), b2.hash(), b3.hash()]);
    assert_eq!(
        change.returned_to_mempool, 1,
        "t1 is in b1; only t2 returns"
    );
    assert_eq!(chain.mempool().get(&a.account(), 1), Some(&t2));
    assert_eq!(chain.hash_at(1), Some(b1.hash()));
    assert_eq!(chain.account(&a.account()).balance.microcash(), 90 * CASH);
    supply_holds(&chain);

    // The next block mines the returned transaction again.
    let next = mine_tip(&mut chain);
    assert_eq!(next.transactions, vec![t2]);
    assert_eq!(chain.account(&a.account()).balance.microcash(), 85 * CASH);
    supply_holds(&chain);
}

#[test]
fn orphans_wait_for_their_parent_and_then_connect() {
    let mut chain = chain();
    let p = chain.params().clone();
    let b1 = child(&p, genesis(&p), vec![transfer(&alice(), &bob(), 1, 0)], 0);
    let b2 = child(&p, parent_of(&b1), vec![], 0);
    let b3 = child(&p, parent_of(&b2), vec![], 0);
    assert_eq!(
        chain.accept_block(b3.clone(), NOW).unwrap(),
        BlockOutcome::Orphan {
            missing_parent: b2.hash()
        }
    );
    assert_eq!(
        chain.accept_block(b3.clone(), NOW).unwrap(),
        BlockOutcome::Duplicate
    );
    chain.accept_block(b2.clone(), NOW).unwrap();
    assert_eq!(chain.orphan_count(), 2);
    assert_eq!(chain.height(), 0);
    let BlockOutcome::Stored {
        tip_change: Some(change),
        adopted_orphans,
        ..
    } = chain.accept_block(b1.clone(), NOW).unwrap()
    else {
        panic!("b1 connects the held blocks")
    };
    assert_eq!(adopted_orphans, vec![b2.hash(), b3.hash()]);
    assert_eq!(change.new_tip, b3.hash());
    assert_eq!(chain.height(), 3);
    assert_eq!(chain.orphan_count(), 0);
    assert!(chain.knows_block(&b2.hash()));
}

#[test]
fn the_orphan_pool_is_bounded() {
    let config = ChainConfig {
        max_orphans: 3,
        ..ChainConfig::default()
    };
    let mut chain = Chain::in_memory(&contract(), config).unwrap();
    let p = chain.params().clone();
    let mut parent = child(&p, genesis(&p), vec![], 0);
    for _ in 0..6 {
        let block = child(&p, parent_of(&parent), vec![], 0);
        chain.accept_block(block.clone(), NOW).unwrap();
        parent = block;
    }
    assert_eq!(chain.orphan_count(), 3);
}

#[test]
fn every_kind_of_invalid_block_is_refused_with_its_reason() {
    let mut chain = chain();
    let p = chain.params().clone();
    let g = genesis(&p);
    let (a, b) = (alice(), bob());

    let mut x = draft(&p, g, vec![], 0);
    x.header.version = 2;
    assert_eq!(rejects(&mut chain, seal(x)), BlockError::Version(2));

    let mut x = draft(&p, g, vec![], 0);
    x.header.network = NetworkId(tally_core::sha256(&[b"elsewhere"]));
    assert!(matches!(
        rejects(&mut chain, seal(x)),
        BlockError::WrongNetwork { .. }
    ));

    let x = unmined(draft(&p, g, vec![], 0));
    assert!(matches!(
        rejects(&mut chain, x),
        BlockError::InsufficientWork { .. }
    ));

    let mut x = draft(&p, g, vec![], 0);
    x.header.target = U256::MAX; // easier than the chain allows here
    assert_eq!(
        rejects(&mut chain, seal(x)),
        BlockError::WrongTarget {
            expected: p.initial_target,
            got: U256::MAX
        }
    );

    let mut x = draft(&p, g, vec![], 0);
    x.header.height = 2;
    x.coinbase.height = 2;
    assert_eq!(
        rejects(&mut chain, seal(x)),
        BlockError::WrongHeight {
            expected: 1,
            got: 2
        }
    );

    let mut x = draft(&p, g, vec![], 0);
    x.coinbase.height = 9;
    assert_eq!(
        rejects(&mut chain, seal(x)),
        BlockError::CoinbaseHeight {
            expected: 1,
            got: 9
        }
    );

    let mut x = draft(&p, g, vec![], 0);
    x.coinbase.amount = Amount::from_microcash(REWARD + 1);
    assert!(matches!(
        rejects(&mut chain, seal(x)),
        BlockError::CoinbaseAmount { .. }
    ));

    let mut x = seal(draft(&p, g, vec![transfer(&a, &b, 1, 0)], 0));
    x.header.merkle_root = tally_core::sha256(&[b"not it"]);
    x.header = miner::solve(&x.header).unwrap();
    assert!(matches!(
        rejects(&mut chain, x),
        BlockError::BadMerkleRoot { .. }
    ));

    let mut forged = transfer(&a, &b, 1, 0);
    forge_amount(&mut forged, 2 * CASH);
    assert_eq!(
        rejects(
            &mut chain,
            child(&p, g, vec![transfer(&b, &a, 1, 0), forged], 0)
        ),
        BlockError::BadSignature { index: 1 }
    );

    let zero = transfer_micro(&a, b.account(), 0, 0);
    assert_eq!(
        rejects(&mut chain, child(&p, g, vec![zero], 0)),
        BlockError::ZeroAmount { index: 0 }
    );

    assert_eq!(
        rejects(&mut chain, child(&p, g, vec![transfer(&a, &b, 1, 1)], 0)),
        BlockError::SequenceGap {
            index: 0,
            expected: 0,
            got: 1
        }
    );

    let spend = transfer(&a, &b, 1, 0);
    let again = transfer(&a, &carol(), 1, 0);
    assert_eq!(
        rejects(&mut chain, child(&p, g, vec![spend.clone(), again], 0)),
        BlockError::DoubleSpend {
            index: 1,
            sender: a.account(),
            sequence: 0
        }
    );

    assert_eq!(
        rejects(&mut chain, child(&p, g, vec![transfer(&b, &a, 51, 0)], 0)),
        BlockError::Overdraft {
            index: 0,
            balance: Amount::from_microcash(50 * CASH),
            amount: Amount::from_microcash(51 * CASH)
        }
    );

    // A replay of a transaction confirmed in an earlier block.
    let b1 = child(&p, g, vec![spend.clone()], 0);
    chain.accept_block(b1.clone(), NOW).unwrap();
    assert_eq!(
        rejects(&mut chain, child(&p, parent_of(&b1), vec![spend], 0)),
        BlockError::StaleSequence {
            index: 0,
            expected: 1,
            got: 0
        }
    );

    let mut x = draft(&p, parent_of(&b1), vec![], 0);
    x.header.timestamp_ms = b1.header.timestamp_ms; // not after the median
    assert!(matches!(
        rejects(&mut chain, seal(x)),
        BlockError::TimestampTooOld { .. }
    ));

    let mut x = draft(&p, parent_of(&b1), vec![], 0);
    x.header.timestamp_ms = NOW + 11 * 60 * 1000;
    let error = rejects(&mut chain, seal(x.clone()));
    assert!(matches!(error, BlockError::TimestampTooFarInFuture { .. }));
    assert!(!error.is_peer_fault());
    // Later, the same block is fine.
    chain.accept_block(seal(x), NOW + 2 * 60 * 1000).unwrap();

    let small = ChainParams {
        max_block_transactions: 1,
        ..p.clone()
    };
    let two = child(
        &p,
        g,
        vec![transfer(&b, &a, 1, 0), transfer(&b, &a, 1, 1)],
        3,
    );
    assert!(matches!(
        check_block(&small, chain.key_cache(), two.clone()),
        Err(ChainError::Invalid {
            error: BlockError::TooManyTransactions { count: 2, max: 1 },
            ..
        })
    ));
    // Decoding refuses the count before it parses the transactions, with the same reason.
    assert!(matches!(
        tally_chain::decode_block(&small, &two.encode()),
        Err(ChainError::Invalid {
            error: BlockError::TooManyTransactions { count: 2, max: 1 },
            ..
        })
    ));
    let tiny = ChainParams {
        max_block_bytes: 300,
        ..p.clone()
    };
    assert!(matches!(
        check_block(&tiny, chain.key_cache(), two),
        Err(ChainError::Invalid {
            error: BlockError::TooLarge { .. },
            ..
        })
    ));

    // Height never moved past the valid blocks.
    assert_eq!(chain.height(), 2);
    supply_holds(&chain);
}

#[test]
fn a_heavier_branch_with_an_invalid_block_is_marked_and_its_children_refused() {
    let mut chain = chain();
    let p = chain.params().clone();
    let (a, b) = (alice(), bob());
    let a1 = child(&p, genesis(&p), vec![], 0);
    chain.accept_block(a1.clone(), NOW).unwrap();
    // Branch b: b1 is fine on its own; b2 overdraws (only checkable against the state),
    // and would make the branch heavier.
    let b1 = child(&p, genesis(&p), vec![transfer(&b, &a, 40, 0)], 5);
    let b2 = child(&p, parent_of(&b1), vec![transfer(&b, &a, 40, 1)], 5);
    chain.accept_block(b1.clone(), NOW).unwrap();
    assert_eq!(chain.tip().hash, a1.hash());
    assert!(matches!(
        rejects(&mut chain, b2.clone()),
        BlockError::Overdraft { index: 0, .. }
    ));
    assert_eq!(
        chain.tip().hash,
        a1.hash(),
        "the tip stays on the valid chain"
    );
    assert!(matches!(
        rejects(&mut chain, b2.clone()),
        BlockError::KnownInvalid(_)
    ));
    let b3 = child(&p, parent_of(&b2), vec![], 5);
    assert!(matches!(
        rejects(&mut chain, b3),
        BlockError::InvalidAncestor(_)
    ));
    supply_holds(&chain);
}

#[test]
fn the_mempool_refuses_with_reasons_and_orders_by_sequence() {
    let mut chain = chain();
    let (a, b) = (alice(), bob());
    let t0 = transfer(&a, &b, 1, 0);
    let t1 = transfer(&a, &b, 2, 1);
    let t2 = transfer(&a, &b, 3, 2);
    // Out of order: sequence 2 and 1 wait for 0.
    chain.submit_transaction(t2.clone()).unwrap();
    chain.submit_transaction(t1.clone()).unwrap();
    assert_eq!(
        chain.submit_transaction(t1.clone()),
        Err(TxRejected::Duplicate)
    );
    assert_eq!(
        chain.submit_transaction(transfer(&a, &carol(), 2, 1)),
        Err(TxRejected::Conflict { sequence: 1 })
    );
    let mut forged = transfer(&a, &b, 1, 5);
    forge_amount(&mut forged, 7);
    assert_eq!(
        chain.submit_transaction(forged),
        Err(TxRejected::BadSignature)
    );
    assert_eq!(
        chain.submit_transaction(transfer_micro(&a, b.account(), 0, 3)),
        Err(TxRejected::ZeroAmount)
    );
    assert!(matches!(
        chain.submit_transaction(transfer(&a, &b, 1, 5_000)),
        Err(TxRejected::TooFarAhead { .. })
    ));
    assert!(matches!(
        chain.submit_transaction(transfer(&a, &b, 96, 3)),
        Err(TxRejected::InsufficientFunds { .. })
    ));
    let intro = SignedOrder::sign(
        Order::IntroKey(IntroKey {
            account: a.account(),
            proof_of_work: 0,
        }),
        &a,
        &chain.params().network,
    );
    assert_eq!(
        chain.submit_order(intro),
        Err(TxRejected::NotASpend { kind: "IntroKey" })
    );

    // Nothing mineable until sequence 0 arrives.
    let template = chain.block_template(miner_account(), T0 + 1000);
    assert!(template.transactions.is_empty());
    chain.submit_order(t0.to_signed_order()).unwrap();
    let template = chain.block_template(miner_account(), T0 + 1000);
    assert_eq!(template.transactions, vec![t0.clone(), t1.clone(), t2]);
    assert_eq!(chain.transaction_status(&t1), TxStatus::Pending);

    mine_tip(&mut chain);
    assert_eq!(
        chain.transaction_status(&t1),
        TxStatus::Confirmed {
            height: 1,
            confirmations: 1
        }
    );
    mine_tip(&mut chain);
    assert_eq!(
        chain.transaction_status(&t1),
        TxStatus::Confirmed {
            height: 1,
            confirmations: 2
        }
    );
    assert_eq!(
        chain.submit_transaction(t0),
        Err(TxRejected::StaleSequence { next: 3, got: 0 })
    );
    assert_eq!(
        chain.transaction_status(&transfer(&a, &carol(), 2, 1)),
        TxStatus::Unknown
    );
}

#[test]
fn templates_respect_the_block_limits() {
    let c = contract_with(4, 1_000_000, 3);
    let mut chain = Chain::in_memory(&c, ChainConfig::default()).unwrap();
    let network = chain.params().network;
    let a = alice();
    let txs: Vec<_> = (0..5)
        .map(|seq| {
            tally_chain::Transaction::sign(
                tally_core::Transfer {
                    sender: a.account(),
                    recipient: bob().account(),
                    amount: Amount::from_microcash(CASH),
                    sequence: seq,
                },
                &a,
                &network,
            )
        })
        .collect();
    let results = chain.submit_transactions(txs);
    assert!(results.iter().all(Result::is_ok));
    let block = mine_tip(&mut chain);
    assert_eq!(block.transactions.len(), 3);
    let block = mine_tip(&mut chain);
    assert_eq!(block.transactions.len(), 2);
    assert!(chain.mempool().is_empty());
}

#[test]
fn retargeting_makes_fast_blocks_harder_and_is_enforced() {
    // Window of 2 blocks of 1 s; blocks 10 ms apart are far too fast.
    let c = contract_with(1, 2, 10);
    let mut chain = Chain::in_memory(&c, ChainConfig::default()).unwrap();
    let initial = chain.params().initial_target;
    let mut last_target = initial;
    let mut ts = T0;
    for height in 1..=8u64 {
        ts += 10;
        let mut block = chain.block_template(miner_account(), ts);
        if chain.params().is_retarget_height(height) {
            assert!(
                block.header.target < last_target,
                "height {height} retargets"
            );
            // A block that keeps the old target is refused.
            let mut stale = block.clone();
            stale.header.target = last_target;
            stale.header = miner::solve(&stale.header).unwrap();
            match chain.accept_block(stale, ts) {
                Err(ChainError::Invalid {
                    error: BlockError::WrongTarget { .. },
                    ..
                }) => {}
                other => panic!("expected WrongTarget, got {other:?}"),
            }
        } else {
            assert_eq!(block.header.target, last_target);
        }
        last_target = block.header.target;
        block.header = miner::solve(&block.header).unwrap();
        chain.accept_block(block, ts).unwrap();
    }
    // Clamped at 4x per retarget: three retargets (heights 4, 6, 8) at most 64x harder.
    assert_eq!(last_target, initial.mul_div(1, 64).unwrap());
}

#[test]
fn sync_queries_serve_blocks_and_find_the_fork() {
    let mut chain = chain();
    let mut blocks = Vec::new();
    for _ in 0..25 {
        blocks.push(mine_tip(&mut chain));
    }
    assert_eq!(chain.block_at(0).unwrap(), None);
    assert_eq!(chain.block_at(3).unwrap().as_ref(), Some(&blocks[2]));
    let served = chain.blocks_from(10, 5, usize::MAX).unwrap();
    assert_eq!(served, blocks[9..14].to_vec());
    let one = chain.blocks_from(10, 5, 1).unwrap();
    assert_eq!(one.len(), 1, "at least one block, even past the byte limit");
    let locator = chain.locator();
    assert_eq!(locator.first(), Some(&chain.tip().hash));
    assert_eq!(locator.last(), Some(&chain.params().genesis_hash));

    // A peer that has the first 12 blocks finds the fork at 12 and fetches the rest.
    let mut peer = tally_chain::Chain::in_memory(&contract(), ChainConfig::default()).unwrap();
    for block in &blocks[..12] {
        peer.accept_block(block.clone(), NOW).unwrap();
    }
    let fork = chain.find_fork(&peer.locator());
    assert_eq!(fork, 12);
    for block in chain.blocks_from(fork + 1, 100, usize::MAX).unwrap() {
        peer.accept_block(block, NOW).unwrap();
    }
    assert_eq!(peer.tip(), chain.tip());
    assert_eq!(peer.accounts(), chain.accounts());
}

/// A transaction may carry any kind of order: one that is not a transfer decodes, and the
/// chain's rules refuse it, in a block (before its signature is even checked) and in the
/// mempool.
#[test]
fn a_proof_of_work_network_refuses_orders_that_spend_nothing() {
    let mut chain = chain();
    let p = chain.params().clone();
    let a = alice();
    let intro: Transaction = SignedOrder::sign(
        Order::IntroKey(IntroKey {
            account: a.account(),
            proof_of_work: 0,
        }),
        &a,
        &p.network,
    )
    .into();
    assert_eq!(Transaction::decode(&intro.encode()).unwrap(), intro);

    let block = child(
        &p,
        genesis(&p),
        vec![transfer(&a, &bob(), 1, 0), intro.clone()],
        0,
    );
    assert_eq!(Block::decode(&block.encode()).unwrap(), block);
    let refused = BlockError::NotASpend {
        index: 1,
        kind: "IntroKey",
    };
    assert_eq!(
        check_block(&p, chain.key_cache(), block.clone())
            .unwrap_err()
            .block_error(),
        Some(&refused)
    );
    assert_eq!(rejects(&mut chain, block.clone()), refused);
    assert_eq!(chain.height(), 0);
    // The state rule on its own, as a reorganisation applies blocks.
    let mut overlay = tally_chain::state::Overlay::new(chain.accounts(), chain.escrows());
    assert_eq!(overlay.apply_block(&block, 0).unwrap_err(), refused);

    assert_eq!(
        chain.submit_transaction(intro.clone()),
        Err(TxRejected::NotASpend { kind: "IntroKey" })
    );
    let checked = tally_chain::check_transactions(&p, chain.key_cache(), vec![intro]);
    assert_eq!(
        chain.submit_checked(checked),
        vec![Err(TxRejected::NotASpend { kind: "IntroKey" })]
    );
    assert!(chain.mempool().is_empty());
}

#[test]
fn blocks_round_trip_through_bytes_and_json() {
    let p = params();
    let block = child(
        &p,
        genesis(&p),
        vec![
            transfer(&alice(), &bob(), 3, 0),
            transfer(&bob(), &carol(), 1, 0),
        ],
        0,
    );
    let bytes = block.encode();
    assert_eq!(bytes.len(), block.encoded_len());
    assert_eq!(Block::decode(&bytes).unwrap(), block);
    let json = serde_json::to_string(&block).unwrap();
    assert!(json.contains("\"PreviousHash\""));
    assert!(json.contains("\"Fromkey\""));
    assert_eq!(serde_json::from_str::<Block>(&json).unwrap(), block);
    let mut chain = chain();
    chain.accept_block_bytes(&bytes, NOW).unwrap();
    assert_eq!(chain.tip().hash, block.hash());
    let _ = p;
}

/// `work`'s result, run on its own thread and awaited with a deadline: a failed test
/// naming `what` if it has not returned within 60 s (a hang guard, not a timing: a miner
/// that ignores its stop flag never returns).
fn within<T: Send + 'static>(what: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    use std::sync::mpsc::{RecvTimeoutError, channel};
    let (tx, rx) = channel();
    std::thread::spawn(move || tx.send(work()));
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not return within 60 s"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// The threaded miner finds a nonce that meets the header's target, and stops on request:
/// with its stop flag raised before it starts, and raised while it searches a target no
/// hash meets. Every search runs under a deadline ([`within`]), so a miner that ignored
/// the flag fails this test instead of hanging the run.
#[test]
fn the_threaded_miner_finds_a_valid_nonce_and_stops_on_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let mut chain = chain();
    let template = chain.block_template(miner_account(), T0 + 1000);
    let easy = template.header;
    let (header, hashes) = within("the search for a valid nonce", move || {
        let hashes = AtomicU64::new(0);
        let found = miner::mine(&easy, 2, &AtomicBool::new(false), &hashes);
        (found.unwrap(), hashes.into_inner())
    });
    assert!(header.meets_own_target());
    assert!(hashes >= 1);
    let mut block = template;
    block.header = header;
    chain.accept_block(block, NOW).unwrap();

    let mut impossible = chain.block_template(miner_account(), T0 + 2000).header;
    impossible.target = U256::ZERO;
    let found = within("a search stopped before it began", move || {
        miner::mine(&impossible, 2, &AtomicBool::new(true), &AtomicU64::new(0))
    });
    assert_eq!(found, None);
    // Raised once the threads have hashed: they notice within a batch of nonces.
    let (stop, hashes) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let (flag, counted) = (stop.clone(), hashes.clone());
    std::thread::spawn(move || {
        while counted.load(Ordering::Relaxed) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        flag.store(true, Ordering::Relaxed);
    });
    let found = within("a search stopped while it ran", move || {
        miner::mine(&impossible, 2, &stop, &hashes)
    });
    assert_eq!(found, None);
}

#[test]
fn the_chain_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<Chain>();
    send::<Block>();
}

#[test]
fn a_bad_held_orphan_is_dropped_with_its_descendants_when_its_parent_arrives() {
    let mut chain = chain();
    let p = chain.params().clone();
    let b1 = child(&p, genesis(&p), vec![], 0);
    let mut forged = transfer(&alice(), &bob(), 1, 0);
    forge_amount(&mut forged, 3 * CASH);
    let b2 = child(&p, parent_of(&b1), vec![forged], 0);
    let b3 = child(&p, parent_of(&b2), vec![], 0);
    for block in [&b3, &b2] {
        assert!(matches!(
            chain.accept_block(block.clone(), NOW).unwrap(),
            BlockOutcome::Orphan { .. }
        ));
    }
    let BlockOutcome::Stored {
        adopted_orphans, ..
    } = chain.accept_block(b1.clone(), NOW).unwrap()
    else {
        panic!("b1 is valid")
    };
    assert!(adopted_orphans.is_empty());
    assert_eq!(chain.tip().hash, b1.hash());
    assert_eq!(chain.orphan_count(), 0);
    assert!(matches!(
        rejects(&mut chain, b3),
        BlockError::KnownInvalid(_)
    ));
}

#[test]
fn transactions_checked_off_the_chain_are_taken_like_submitted_ones() {
    let mut chain = chain();
    let (a, b) = (alice(), bob());
    let good = transfer(&a, &b, 1, 0);
    let mut forged = transfer(&a, &b, 2, 1);
    forged.signature = transfer(&a, &b, 3, 1).signature;
    let checked = tally_chain::check_transactions(
        chain.params(),
        chain.key_cache(),
        vec![good.clone(), forged.clone()],
    );
    assert_eq!(checked.transactions(), &[good, forged]);
    assert_eq!(
        chain.submit_checked(checked),
        vec![Ok(()), Err(TxRejected::BadSignature)]
    );
    // Signed and checked for another network: checked again here, not trusted.
    let mut other = chain.params().clone();
    other.network = NetworkId(tally_core::sha256(&[b"elsewhere"]));
    let foreign = tally_chain::Transaction::sign(transfer(&a, &b, 1, 1).order, &a, &other.network);
    let checked = tally_chain::check_transactions(&other, chain.key_cache(), vec![foreign]);
    assert_eq!(
        chain.submit_checked(checked),
        vec![Err(TxRejected::BadSignature)]
    );
    assert_eq!(chain.mempool().len(), 1);
}
