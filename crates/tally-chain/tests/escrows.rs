//! Hash-locked escrows on a proof-of-work chain (DESIGN §8): a lock debits its payer into
//! the escrow, a claim showing the secret pays the payee in a block whose parent's median
//! time past is before the deadline, a refund pays the payer back once that median time
//! has reached it, and whichever a branch applies first settles the escrow for good on that
//! branch. Supply (balances plus open escrows) stays genesis plus rewards through all of
//! it, reorgs too.
//!
//! Test blocks are stamped `T0 + 1000 × height` (plus a salt): the median time past of a
//! parent at height n is the timestamp of block ⌈n/2⌉.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use tally_chain::{
    BlockError, BlockOutcome, Chain, ChainConfig, ChainError, Transaction, TxRejected, TxStatus,
};
use tally_core::{
    Amount, EscrowClaim, EscrowId, EscrowLock, EscrowRefund, EscrowSecret, Order, SecretKey,
    Settlement, Signature, SignedOrder,
};

fn secret(n: u8) -> EscrowSecret {
    EscrowSecret::from([n; 32])
}

/// A lock of `cash` from `payer` to `payee` under `secret`'s hash until `deadline` (ms).
fn lock(
    payer: &SecretKey,
    payee: &SecretKey,
    cash: u64,
    secret: EscrowSecret,
    deadline: u64,
    sequence: u64,
) -> (Transaction, EscrowId) {
    let order = Order::from(EscrowLock {
        payer: payer.account(),
        sequence,
        payee: payee.account(),
        amount: Amount::from_microcash(cash * CASH),
        hash_lock: secret.hash_lock(),
        deadline,
        counterpart: None,
    });
    let id = order.digest(&params().network);
    (Transaction::sign(order, payer, &params().network), id)
}

fn claim(escrow: EscrowId, secret: EscrowSecret) -> Transaction {
    Transaction::from(SignedOrder::unsigned(Order::EscrowClaim(EscrowClaim {
        escrow,
        secret,
    })))
}

fn refund(escrow: EscrowId) -> Transaction {
    Transaction::from(SignedOrder::unsigned(Order::EscrowRefund(EscrowRefund {
        escrow,
    })))
}

fn balance(chain: &Chain, key: &SecretKey) -> u64 {
    chain.account(&key.account()).balance.microcash() / CASH
}

fn conserved(chain: &Chain) {
    assert_eq!(
        chain.supply(),
        chain.params().supply_at(chain.height()),
        "balances plus open escrows are genesis plus rewards"
    );
}

/// Mines blocks until the chain's median time past has reached `deadline`.
fn mine_past(chain: &mut Chain, deadline: u64) {
    while chain.median_time() < deadline {
        mine_tip(chain);
    }
}

/// A deadline no test reaches.
const FAR: u64 = T0 + 1_000_000_000;

fn block_error(result: Result<BlockOutcome, ChainError>) -> BlockError {
    match result {
        Err(ChainError::Invalid { error, .. }) => error,
        other => panic!("expected an invalid block, got {other:?}"),
    }
}

/// The whole life of a claimed escrow through the mempool and mined blocks: the secret is
/// served as soon as the claim is admitted, and the payee is paid once it is mined.
#[test]
fn a_lock_then_a_claim_pays_the_payee_and_publishes_the_secret_on_admission() {
    let mut chain = chain();
    let (a, b) = (alice(), bob());
    let (a0, b0) = (balance(&chain, &a), balance(&chain, &b));
    let s = secret(1);
    let (lock_tx, id) = lock(&a, &b, 30, s, FAR, 0);
    chain.submit_transaction(lock_tx.clone()).unwrap();
    assert_eq!(chain.transaction_status(&lock_tx), TxStatus::Pending);
    mine_tip(&mut chain);
    assert!(matches!(
        chain.transaction_status(&lock_tx),
        TxStatus::Confirmed { height: 1, .. }
    ));
    let escrow = chain.escrow(&id).unwrap();
    assert_eq!(escrow.settlement, Settlement::Open);
    assert_eq!(chain.escrow_by_hash_lock(&s.hash_lock()), Some(id));
    assert_eq!(balance(&chain, &a), a0 - 30, "the payer is debited at once");
    assert_eq!(balance(&chain, &b), b0, "the payee is paid only by a claim");
    assert_eq!(
        chain.escrows().escrowed(),
        Some(Amount::from_microcash(30 * CASH))
    );
    conserved(&chain);

    assert_eq!(chain.secret_for(&s.hash_lock()), None);
    let mut signed_claim = claim(id, s);
    signed_claim.signature = Signature::from([1; 64]);
    assert_eq!(
        chain.submit_transaction(signed_claim),
        Err(TxRejected::BadSignature),
        "a settlement carries no signature but the empty one"
    );
    assert_eq!(
        chain.secret_for(&s.hash_lock()),
        None,
        "and publishes nothing"
    );
    let claim_tx = claim(id, s);
    chain.submit_transaction(claim_tx.clone()).unwrap();
    assert_eq!(
        chain.secret_for(&s.hash_lock()),
        Some(s),
        "the admitted claim publishes the secret before any block"
    );
    assert_eq!(
        chain.submit_transaction(claim_tx.clone()),
        Err(TxRejected::Duplicate)
    );
    assert_eq!(chain.transaction_status(&claim_tx), TxStatus::Pending);
    mine_tip(&mut chain);
    assert!(matches!(
        chain.transaction_status(&claim_tx),
        TxStatus::Confirmed { height: 2, .. }
    ));
    assert_eq!(
        chain.escrow(&id).unwrap().settlement,
        Settlement::Claimed(s)
    );
    assert_eq!(balance(&chain, &b), b0 + 30);
    assert_eq!(chain.escrows().escrowed(), Some(Amount::ZERO));
    assert!(chain.mempool().is_empty());
    conserved(&chain);
    assert_consistent(&chain);

    // Settled for good: neither a second claim nor a refund.
    assert_eq!(
        chain.submit_transaction(refund(id)),
        Err(TxRejected::EscrowSettled(id))
    );
    assert_eq!(
        chain.submit_transaction(lock(&a, &b, 1, s, FAR, 1).0),
        Err(TxRejected::HashLockReused(s.hash_lock())),
        "a hash lock is never used twice on one chain"
    );
}

/// The deadline splits time in two: claims up to it, refunds after it, never both.
#[test]
fn claims_are_taken_up_to_the_deadline_and_refunds_only_after_it() {
    let mut chain = chain();
    let (a, b) = (alice(), bob());
    let a0 = balance(&chain, &a);
    let s = secret(2);
    let deadline = T0 + 4_000;
    let (lock_tx, id) = lock(&a, &b, 5, s, deadline, 0);
    chain.submit_transaction(lock_tx).unwrap();
    mine_tip(&mut chain);
    let median_time = chain.median_time();
    assert!(median_time < deadline);
    assert_eq!(
        chain.submit_transaction(refund(id)),
        Err(TxRejected::RefundTooEarly {
            escrow: id,
            deadline,
            median_time
        })
    );
    assert_eq!(
        chain.submit_transaction(claim(id, secret(3))),
        Err(TxRejected::WrongSecret(id))
    );
    mine_past(&mut chain, deadline);
    assert_eq!(
        chain.submit_transaction(claim(id, s)),
        Err(TxRejected::ClaimTooLate {
            escrow: id,
            deadline,
            median_time: chain.median_time()
        }),
        "the chain's median time has reached the deadline"
    );
    assert_eq!(
        chain.secret_for(&s.hash_lock()),
        None,
        "a refused claim publishes nothing"
    );
    let refund_tx = refund(id);
    chain.submit_transaction(refund_tx.clone()).unwrap();
    mine_tip(&mut chain);
    assert_eq!(chain.escrow(&id).unwrap().settlement, Settlement::Refunded);
    assert!(matches!(
        chain.transaction_status(&refund_tx),
        TxStatus::Confirmed { height, .. } if height == chain.height()
    ));
    assert_eq!(balance(&chain, &a), a0, "the payer has it all back");
    conserved(&chain);
    assert_consistent(&chain);
}

/// What a refused block's error must be.
type Expected = fn(&BlockError) -> bool;

/// A miner that breaks an escrow rule makes an invalid block, and the chain stays as it was.
#[test]
fn blocks_breaking_an_escrow_rule_are_refused() {
    let p = params();
    let mut chain = chain();
    let (a, b) = (alice(), bob());
    let s = secret(4);
    // Blocks 1 to 5 are stamped T0+1000 to T0+5000: a block on block 1 judges escrows at
    // T0+1000, a block on block 5 at T0+3000.
    let deadline = T0 + 3_000;
    let (lock_tx, id) = lock(&a, &b, 5, s, deadline, 0);
    let b1 = child(&p, genesis(&p), vec![lock_tx], 0);
    chain.accept_block(b1.clone(), NOW).unwrap();
    let tip = parent_of(&b1);
    let before = (
        chain.tip(),
        chain.accounts().clone(),
        chain.escrows().clone(),
    );

    let cases: Vec<(Vec<Transaction>, Expected)> = vec![
        (vec![claim(id, secret(5))], |e| {
            matches!(e, BlockError::WrongSecret { index: 0, .. })
        }),
        (vec![refund(id)], |e| {
            matches!(
                e,
                BlockError::RefundTooEarly {
                    deadline: d,
                    median_time: m,
                    ..
                } if *d == T0 + 3_000 && *m == T0 + 1_000
            )
        }),
        (vec![claim(id, s), refund(id)], |e| {
            matches!(e, BlockError::EscrowSettled { index: 1, .. })
        }),
        (vec![claim(id, s), claim(id, s)], |e| {
            matches!(e, BlockError::EscrowSettled { index: 1, .. })
        }),
        (
            vec![claim(Order::digest(&refund(id).order, &p.network), s)],
            |e| matches!(e, BlockError::UnknownEscrow { .. }),
        ),
        (vec![lock(&b, &a, 1, s, FAR, 0).0], |e| {
            matches!(e, BlockError::HashLockReused { .. })
        }),
        (vec![lock(&b, &a, 1, secret(6), T0 + 1_000, 0).0], |e| {
            matches!(
                e,
                BlockError::EscrowExpired {
                    deadline: d,
                    median_time: m,
                    ..
                } if *d == T0 + 1_000 && *m == T0 + 1_000
            )
        }),
        (vec![lock(&b, &a, 0, secret(6), FAR, 0).0], |e| {
            matches!(e, BlockError::MalformedEscrow { .. })
        }),
        (vec![lock(&b, &b, 1, secret(6), FAR, 0).0], |e| {
            matches!(e, BlockError::MalformedEscrow { .. })
        }),
        (
            {
                let mut forged = claim(id, s);
                forged.signature = Signature::from([1; 64]);
                vec![forged]
            },
            |e| matches!(e, BlockError::BadSignature { index: 0 }),
        ),
    ];
    for (n, (txs, expected)) in cases.into_iter().enumerate() {
        let block = child(&p, tip, txs, 100 + n as u64);
        let error = block_error(chain.accept_block(block, NOW));
        assert!(expected(&error), "case {n}: {error}");
        assert_eq!(
            (
                chain.tip(),
                chain.accounts().clone(),
                chain.escrows().clone()
            ),
            before,
            "case {n} changed the chain"
        );
    }

    // The last block that takes a claim is the one on block 4 (median T0+2000); on block 5
    // the median time reaches the deadline: a claim there is too late, a refund valid.
    let mut parent = tip;
    for _ in 2..=5 {
        let block = child(&p, parent, vec![], 0);
        chain.accept_block(block.clone(), NOW).unwrap();
        parent = parent_of(&block);
    }
    assert_eq!(chain.median_time(), T0 + 3_000);
    let late = child(&p, parent, vec![claim(id, s)], 1);
    assert!(matches!(
        block_error(chain.accept_block(late, NOW)),
        BlockError::ClaimTooLate { median_time: m, .. } if m == T0 + 3_000
    ));
    let b6 = child(&p, parent, vec![refund(id)], 1);
    chain.accept_block(b6, NOW).unwrap();
    assert_eq!(chain.escrow(&id).unwrap().settlement, Settlement::Refunded);
    conserved(&chain);
    assert_consistent(&chain);
}

/// A lock and its claim may share a block (the lock first); undoing that block removes the
/// escrow altogether.
#[test]
fn a_lock_and_its_claim_in_one_block_undo_to_nothing() {
    let p = params();
    let mut chain = chain();
    let (a, b) = (alice(), bob());
    let s = secret(7);
    let (lock_tx, id) = lock(&a, &b, 9, s, FAR, 0);
    let main1 = child(&p, genesis(&p), vec![lock_tx, claim(id, s)], 0);
    chain.accept_block(main1, NOW).unwrap();
    assert_eq!(
        chain.escrow(&id).unwrap().settlement,
        Settlement::Claimed(s)
    );
    conserved(&chain);
    // A heavier branch without them.
    let side1 = child(&p, genesis(&p), vec![], 1);
    let side2 = child(&p, parent_of(&side1), vec![], 1);
    chain.accept_block(side1, NOW).unwrap();
    chain.accept_block(side2, NOW).unwrap();
    assert_eq!(chain.height(), 2);
    assert_eq!(chain.escrow(&id), None, "the lock is undone with its claim");
    assert_eq!(chain.escrow_by_hash_lock(&s.hash_lock()), None);
    conserved(&chain);
    assert_consistent(&chain);
}

/// The reorganisation every claimant must allow for: its claim mined at the deadline is
/// undone, and the branch that wins refunds the escrow instead. The secret stays known to
/// the node that saw the claim, which is what lets the other side of a wire still claim.
#[test]
fn a_reorganisation_can_turn_a_claim_into_a_refund_and_the_secret_stays_known() {
    let p = params();
    let mut chain = chain();
    let (a, b) = (alice(), bob());
    let (a0, b0) = (balance(&chain, &a), balance(&chain, &b));
    let s = secret(8);
    let (lock_tx, id) = lock(&a, &b, 12, s, T0 + 2_000, 0);
    let b1 = child(&p, genesis(&p), vec![lock_tx], 0);
    chain.accept_block(b1.clone(), NOW).unwrap();
    // The claim is admitted and mined in the last block before the deadline.
    let claim_tx = claim(id, s);
    chain.submit_transaction(claim_tx.clone()).unwrap();
    let main2 = child(&p, parent_of(&b1), vec![claim_tx.clone()], 0);
    chain.accept_block(main2, NOW).unwrap();
    assert_eq!(balance(&chain, &b), b0 + 12);

    // A heavier branch from block 1 that leaves the claim out, then refunds: on its block 3
    // the median time is its block 2's stamp, T0+2007, past the deadline.
    let side2 = child(&p, parent_of(&b1), vec![], 7);
    let side3 = child(&p, parent_of(&side2), vec![], 7);
    let side4 = child(&p, parent_of(&side3), vec![refund(id)], 7);
    chain.accept_block(side2, NOW).unwrap();
    let reorg = chain.accept_block(side3, NOW).unwrap();
    chain.accept_block(side4, NOW).unwrap();
    match reorg {
        BlockOutcome::Stored {
            tip_change: Some(change),
            ..
        } => assert!(change.is_reorg()),
        other => panic!("expected a reorganisation, got {other:?}"),
    }
    assert_eq!(chain.escrow(&id).unwrap().settlement, Settlement::Refunded);
    assert_eq!((balance(&chain, &a), balance(&chain, &b)), (a0, b0));
    assert_eq!(
        chain.transaction_status(&claim_tx),
        TxStatus::Unknown,
        "the returned claim is too late for the new tip and leaves the mempool"
    );
    assert!(chain.mempool().is_empty());
    assert_eq!(chain.secret_for(&s.hash_lock()), Some(s));
    conserved(&chain);
    assert_consistent(&chain);
}

/// Pending escrow orders follow the tip: a pending lock whose deadline the chain reaches
/// leaves the mempool (with the payer's later transactions, which depended on it), a
/// second lock under one hash lock is refused, and deadlines out of range are refused.
#[test]
fn the_mempool_keeps_only_escrow_orders_the_next_block_can_take() {
    let mut chain = chain();
    let (a, b, c) = (alice(), bob(), carol());
    let s = secret(9);
    let p = params();
    let b1 = child(&p, genesis(&p), vec![], 0);
    chain.accept_block(b1.clone(), NOW).unwrap();
    let (min, max) = chain.lock_deadline_range();
    assert_eq!(min, T0 + 1_001, "a deadline after the chain's median time");
    assert_eq!(
        max,
        T0 + 1_000 + 30 * 24 * 3_600_000,
        "at most 30 days after it"
    );
    assert!(matches!(
        chain.submit_transaction(lock(&a, &b, 1, s, T0 + 1_000, 0).0),
        Err(TxRejected::EscrowDeadline { .. })
    ));
    assert!(matches!(
        chain.submit_transaction(lock(&a, &b, 1, s, max + 1, 0).0),
        Err(TxRejected::EscrowDeadline { .. })
    ));
    let (pending_lock, _) = lock(&a, &b, 1, s, T0 + 1_500, 0);
    chain.submit_transaction(pending_lock.clone()).unwrap();
    let after_it = transfer(&a, &c, 1, 1);
    chain.submit_transaction(after_it.clone()).unwrap();
    assert_eq!(
        chain.submit_transaction(lock(&b, &c, 1, s, FAR, 0).0),
        Err(TxRejected::HashLockReused(s.hash_lock())),
        "one pending lock per hash lock"
    );
    // Blocks that leave the lock out until the median time reaches its deadline: nothing
    // can mine it now.
    let b2 = child(&p, parent_of(&b1), vec![], 0);
    let b3 = child(&p, parent_of(&b2), vec![], 0);
    chain.accept_block(b2, NOW).unwrap();
    assert_eq!(chain.mempool().len(), 2, "still in time");
    chain.accept_block(b3, NOW).unwrap();
    assert_eq!(chain.transaction_status(&pending_lock), TxStatus::Unknown);
    assert_eq!(chain.transaction_status(&after_it), TxStatus::Unknown);
    assert!(chain.mempool().is_empty());
    // The hash lock is free again for a new lock.
    chain
        .submit_transaction(lock(&b, &c, 1, s, FAR, 0).0)
        .unwrap();
}

/// Escrows are part of the chain's durable state: a node that restarts finds them as they
/// were, settled or open, and carries on settling them.
#[test]
fn escrows_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let (a, b) = (alice(), bob());
    let (open_id, claimed_id) = {
        let mut chain = Chain::open(&path, &contract(), ChainConfig::default()).unwrap();
        let (l1, open_id) = lock(&a, &b, 2, secret(10), T0 + 6_000, 0);
        let (l2, claimed_id) = lock(&a, &b, 3, secret(11), T0 + 6_000, 1);
        chain.submit_transaction(l1).unwrap();
        chain.submit_transaction(l2).unwrap();
        mine_tip(&mut chain);
        chain
            .submit_transaction(claim(claimed_id, secret(11)))
            .unwrap();
        mine_tip(&mut chain);
        (open_id, claimed_id)
    };
    let mut chain = Chain::open(&path, &contract(), ChainConfig::default()).unwrap();
    assert_eq!(
        chain.escrow(&open_id).map(|e| e.settlement),
        Some(Settlement::Open)
    );
    assert_eq!(
        chain.escrow(&claimed_id).map(|e| e.settlement),
        Some(Settlement::Claimed(secret(11)))
    );
    assert_eq!(chain.secret_for(&secret(11).hash_lock()), Some(secret(11)));
    conserved(&chain);
    mine_past(&mut chain, T0 + 6_000);
    chain.submit_transaction(refund(open_id)).unwrap();
    mine_tip(&mut chain);
    assert_eq!(
        chain.escrow(&open_id).map(|e| e.settlement),
        Some(Settlement::Refunded)
    );
    conserved(&chain);
}

/// A claim that reaches this node only inside a block, and is undone with it, leaves its
/// secret known here: the claim is refused once too late, but the secret it showed is not
/// forgotten (the other side of a wire may need it).
#[test]
fn a_claim_seen_only_in_an_undone_block_keeps_its_secret_known() {
    let p = params();
    let mut chain = chain();
    let (a, b) = (alice(), bob());
    let s = secret(12);
    let (lock_tx, id) = lock(&a, &b, 4, s, T0 + 2_000, 0);
    let b1 = child(&p, genesis(&p), vec![lock_tx], 0);
    chain.accept_block(b1.clone(), NOW).unwrap();
    // The claim arrives inside a block, never through the mempool.
    let main2 = child(&p, parent_of(&b1), vec![claim(id, s)], 0);
    chain.accept_block(main2, NOW).unwrap();
    // A heavier branch without it, on which the deadline passes.
    let side2 = child(&p, parent_of(&b1), vec![], 9);
    let side3 = child(&p, parent_of(&side2), vec![], 9);
    chain.accept_block(side2, NOW).unwrap();
    chain.accept_block(side3, NOW).unwrap();
    assert_eq!(chain.escrow(&id).unwrap().settlement, Settlement::Open);
    assert!(chain.mempool().is_empty(), "too late to be mined again");
    assert_eq!(chain.secret_for(&s.hash_lock()), Some(s));
}
