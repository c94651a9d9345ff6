//! Anti-DoS rules for blocks that cost little: side branches far behind the tip are held in
//! memory, never written to disk, yet a heavier branch arriving block by block still wins;
//! orphans must carry real work; the mempool follows the tip through a reorganisation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use tally_chain::store::{ChainStore, RedbStore};
use tally_chain::{
    Block, BlockError, BlockOutcome, Chain, ChainConfig, ChainError, Transaction, U256,
    check_block, miner,
};
use tally_core::{Amount, Encode, NetworkContract, SecretKey, Transfer};

/// Proof-of-work at 6 bits (~64 hashes) retargeting every 2 blocks of 1 s: blocks mined
/// 10 ms apart make the target 4 times harder at each retarget, blocks a second apart keep
/// it. So a fast chain's history starts easy and gets hard, like a real network's.
fn retargeting() -> NetworkContract {
    contract_with(6, 2, 10)
}

fn config(store_margin: u64) -> ChainConfig {
    ChainConfig {
        store_margin,
        ..ChainConfig::default()
    }
}

/// A transfer signed for `chain`'s network (the common `transfer` signs for the default
/// contract's).
fn pay(chain: &Chain, from: &SecretKey, to: &SecretKey, cash: u64, sequence: u64) -> Transaction {
    Transaction::sign(
        Transfer {
            sender: from.account(),
            recipient: to.account(),
            amount: Amount::from_microcash(cash * CASH),
            sequence,
        },
        from,
        &chain.params().network,
    )
}

/// Mines `count` blocks on `chain`'s tip, each `step_ms` after the previous one.
fn mine_spaced(chain: &mut Chain, count: usize, step_ms: u64) -> Vec<Block> {
    (0..count)
        .map(|_| {
            let ts = chain.tip().timestamp_ms.max(T0) + step_ms;
            let mut block = chain.block_template(miner_account(), ts);
            block.header = miner::solve(&block.header).unwrap();
            chain.accept_block(block.clone(), NOW).unwrap();
            block
        })
        .collect()
}

/// A second node ("the other side of a partition") that shares `shared` with us.
fn other_side(contract: &NetworkContract, shared: &[Block]) -> Chain {
    let mut chain = Chain::in_memory(contract, ChainConfig::default()).unwrap();
    for block in shared {
        chain.accept_block(block.clone(), NOW).unwrap();
    }
    chain
}

/// How many block headers the database at `path` holds.
fn stored_headers(path: &Path, contract: &NetworkContract) -> usize {
    let params = tally_chain::ChainParams::from_contract(contract).unwrap();
    let store = RedbStore::open(path, &params.network).unwrap();
    store.load().unwrap().headers.len()
}

/// Replays the main chain into a fresh chain: a correct chain has the same tip and state.
fn assert_consistent(chain: &Chain, contract: &NetworkContract) {
    let mut fresh = Chain::in_memory(contract, ChainConfig::default()).unwrap();
    for height in 1..=chain.height() {
        let block = chain.block_at(height).unwrap().expect("main-chain block");
        fresh.accept_block(block, NOW).unwrap();
    }
    assert_eq!(fresh.tip(), chain.tip());
    assert_eq!(fresh.accounts(), chain.accounts());
    assert_eq!(chain.supply(), chain.params().supply_at(chain.height()));
}

#[test]
fn a_cheap_branch_from_easy_history_is_held_not_stored_and_does_not_move_the_tip() {
    let contract = retargeting();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let mut chain = Chain::open(&path, &contract, config(2)).unwrap();
    // The honest chain: fast blocks, so from height 4 on its targets get hard.
    let honest = mine_spaced(&mut chain, 9, 10);
    let tip = chain.tip();
    assert!(honest[8].header.target < honest[0].header.target.mul_div(1, 16).unwrap());

    // The attacker forks after block 1 and keeps the easy early target (on schedule).
    let mut attacker = other_side(&contract, &honest[..1]);
    let cheap = mine_spaced(&mut attacker, 30, 1000);
    assert!(
        cheap
            .iter()
            .all(|b| b.header.target == honest[0].header.target)
    );
    assert!(
        !chain.fits_parent(&cheap[0], NOW),
        "no signature check is worth spending on it"
    );
    for block in &cheap {
        assert_eq!(
            chain.accept_block(block.clone(), NOW).unwrap(),
            BlockOutcome::Held {
                height: block.header.height
            }
        );
    }
    assert_eq!(chain.tip(), tip);
    assert_eq!(chain.held_blocks().0, 30);
    assert!(chain.knows_block(&cheap[5].hash()));
    assert_eq!(
        chain.accept_block(cheap[5].clone(), NOW).unwrap(),
        BlockOutcome::Duplicate
    );
    assert_eq!(chain.block(&cheap[5].hash()).unwrap(), None);
    drop(chain);

    // Nothing of it reached the disk.
    assert_eq!(stored_headers(&path, &contract), honest.len());
    let chain = Chain::open(&path, &contract, config(2)).unwrap();
    assert_eq!(chain.tip(), tip);
    for block in &cheap {
        assert!(!chain.knows_block(&block.hash()));
        assert_eq!(chain.block(&block.hash()).unwrap(), None);
    }
    assert_consistent(&chain, &contract);
}

#[test]
fn a_heavier_deep_fork_arriving_block_by_block_wins_with_exact_supply() {
    let contract = retargeting();
    // Margin 0: the fork's blocks are held until one of them leads, then all are
    // written with the reorganisation. Margin 2: the middle of the fork is stored first.
    // Margin 144, beyond the height of these chains: nothing is held (the old behaviour).
    for margin in [0, 2, 144] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        let mut chain = Chain::open(&path, &contract, config(margin)).unwrap();
        let shared = mine_spaced(&mut chain, 1, 1000);
        // Our side of the partition: slow blocks at the easy target, one paying bob.
        let to_bob = pay(&chain, &alice(), &bob(), 10, 0);
        chain.submit_transaction(to_bob).unwrap();
        mine_spaced(&mut chain, 11, 1000);
        assert_eq!(chain.height(), 12);

        // The other side: more hash rate, its targets harden; alice paid carol there.
        let mut other = other_side(&contract, &shared);
        let to_carol = pay(&other, &alice(), &carol(), 5, 0);
        other.submit_transaction(to_carol).unwrap();
        let fork = mine_spaced(&mut other, 6, 10);
        assert!(other.tip().work > chain.tip().work);

        let mut held = 0;
        for block in &fork {
            match chain.accept_block(block.clone(), NOW).unwrap() {
                BlockOutcome::Held { .. } => held += 1,
                BlockOutcome::Stored { .. } => {}
                other => panic!("margin {margin}: unexpected {other:?}"),
            }
        }
        match margin {
            0 => assert_eq!(held, 4, "held until the block that leads"),
            2 => assert_eq!(held, 3, "held until within the margin"),
            _ => assert_eq!(held, 0),
        }
        assert_eq!(chain.tip().hash, other.tip().hash, "margin {margin}");
        assert_eq!(chain.accounts(), other.accounts());
        assert_eq!(chain.supply(), chain.params().supply_at(7));
        assert_eq!(chain.held_blocks(), (0, 0));
        // Alice's payment to bob conflicts with the winning branch: gone.
        assert!(chain.mempool().is_empty());
        let tip = chain.tip();
        drop(chain);

        let chain = Chain::open(&path, &contract, config(margin)).unwrap();
        assert_eq!(chain.tip(), tip);
        for block in &fork {
            assert_eq!(chain.block(&block.hash()).unwrap().as_ref(), Some(block));
        }
        assert_consistent(&chain, &contract);
    }
}

#[test]
fn a_side_block_within_the_margin_is_stored_and_one_behind_it_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let mut chain = Chain::open(&path, &contract(), config(2)).unwrap();
    for _ in 0..10 {
        mine_tip(&mut chain);
    }
    let p = chain.params().clone();
    let near_parent = parent_of(&chain.block_at(8).unwrap().unwrap());
    let near = child(&p, near_parent, vec![], 7);
    assert!(chain.fits_parent(&near, NOW));
    assert!(matches!(
        chain.accept_block(near.clone(), NOW).unwrap(),
        BlockOutcome::Stored {
            tip_change: None,
            ..
        }
    ));
    let far_parent = parent_of(&chain.block_at(6).unwrap().unwrap());
    let far = child(&p, far_parent, vec![], 7);
    assert_eq!(
        chain.accept_block(far.clone(), NOW).unwrap(),
        BlockOutcome::Held { height: 7 }
    );
    drop(chain);
    let chain = Chain::open(&path, &contract(), config(2)).unwrap();
    assert_eq!(chain.block(&near.hash()).unwrap().as_ref(), Some(&near));
    assert_eq!(chain.block(&far.hash()).unwrap(), None);
}

#[test]
fn the_held_pool_is_bounded_and_evicts_the_least_work_first() {
    let c = contract();
    let config = ChainConfig {
        store_margin: 1,
        max_held_blocks: 4,
        ..ChainConfig::default()
    };
    let mut chain = Chain::in_memory(&c, config).unwrap();
    let p = chain.params().clone();
    let main: Vec<Block> = (0..10).map(|_| mine_tip(&mut chain)).collect();
    // Two low-work branches: one from genesis, one from block 4 (more work at its base).
    let branch = |from: common::Parent, salt: u64| {
        let mut parent = from;
        let mut out = Vec::new();
        for _ in 0..3 {
            let block = child(&p, parent, vec![], salt);
            parent = parent_of(&block);
            out.push(block);
        }
        out
    };
    let light = branch(genesis(&p), 1);
    let heavier = branch(parent_of(&main[3]), 2);
    for block in light.iter().chain(&heavier) {
        assert!(matches!(
            chain.accept_block(block.clone(), NOW).unwrap(),
            BlockOutcome::Held { .. }
        ));
        assert!(chain.held_blocks().0 <= 4);
    }
    // The light branch's base went first, and its descendants with it.
    assert_eq!(chain.held_blocks().0, 3);
    assert!(light.iter().all(|b| !chain.is_held(&b.hash())));
    assert!(heavier.iter().all(|b| chain.is_held(&b.hash())));

    // A byte bound holds too.
    let size = heavier[0].encoded_len();
    let config = ChainConfig {
        store_margin: 1,
        max_held_bytes: 2 * size,
        ..ChainConfig::default()
    };
    let mut chain = Chain::in_memory(&c, config).unwrap();
    for block in &main {
        chain.accept_block(block.clone(), NOW).unwrap();
    }
    for block in &heavier[..2] {
        chain.accept_block(block.clone(), NOW).unwrap();
        assert!(chain.held_blocks().1 <= 2 * size);
    }
    // The third would only fit by evicting its own ancestors: it is refused instead.
    assert_not_held_for_want_of_room(chain.accept_block(heavier[2].clone(), NOW), &heavier[2]);
    assert_eq!(chain.held_blocks(), (2, 2 * size));
}

#[test]
fn a_held_block_with_a_bad_signature_is_refused_cleanly_when_its_branch_catches_up() {
    let c = contract();
    let mut chain = Chain::in_memory(&c, config(0)).unwrap();
    let p = chain.params().clone();
    for _ in 0..6 {
        mine_tip(&mut chain);
    }
    let tip = chain.tip();
    let mut forged = transfer(&alice(), &bob(), 1, 0);
    forged.signature = transfer(&alice(), &bob(), 2, 0).signature;
    let mut branch = Vec::new();
    let mut parent = genesis(&p);
    for height in 1..=7u64 {
        let txs = if height == 2 {
            vec![forged.clone()]
        } else {
            vec![]
        };
        let block = child(&p, parent, txs, 3);
        parent = parent_of(&block);
        branch.push(block);
    }
    // Held without a signature check: cheap blocks cost us no CPU.
    for block in &branch[..5] {
        assert!(matches!(
            chain.accept_block(block.clone(), NOW).unwrap(),
            BlockOutcome::Held { .. }
        ));
    }
    // Block 6 brings the branch level with the tip: now its signatures are checked.
    match chain.accept_block(branch[5].clone(), NOW) {
        Err(ChainError::Invalid { hash, error }) => {
            assert_eq!(hash, branch[1].hash());
            assert_eq!(error, BlockError::BadSignature { index: 0 });
            assert!(error.is_peer_fault());
        }
        other => panic!("expected a bad signature, got {other:?}"),
    }
    assert_eq!(chain.tip(), tip);
    assert!(
        chain.is_held(&branch[0].hash()),
        "the valid base stays held"
    );
    assert_eq!(chain.held_blocks().0, 1);
    for block in &branch[1..6] {
        assert!(chain.block(&block.hash()).unwrap().is_none());
    }
    match chain.accept_block(branch[6].clone(), NOW) {
        Err(ChainError::Invalid {
            error: BlockError::InvalidAncestor(parent),
            ..
        }) => assert_eq!(parent, branch[5].hash()),
        other => panic!("expected an invalid ancestor, got {other:?}"),
    }
    assert_eq!(chain.supply(), chain.params().supply_at(6));
}

#[test]
fn orphans_must_carry_real_work() {
    let mut chain = chain();
    let p = chain.params().clone();
    for _ in 0..3 {
        mine_tip(&mut chain);
    }
    let unknown = Parent {
        hash: tally_core::sha256(&[b"nobody has this block"]),
        height: 3,
    };
    // The easiest target there is: a near-free orphan.
    let mut free = draft(&p, unknown, vec![], 0);
    free.header.target = U256::MAX;
    let free = seal(free);
    // Its target is judged before its transactions are hashed: with a wrong merkle root
    // too, the target is what it is refused for.
    let mut garbled = free.clone();
    garbled.header.merkle_root = tally_core::sha256(&[b"not these transactions"]);
    garbled.header = miner::solve(&garbled.header).unwrap();
    assert!(matches!(
        chain.accept_block(garbled, NOW),
        Err(ChainError::Invalid {
            error: BlockError::OrphanTargetTooEasy { .. },
            ..
        })
    ));
    match chain.accept_block(free.clone(), NOW) {
        Err(ChainError::Invalid {
            error: error @ BlockError::OrphanTargetTooEasy { .. },
            ..
        }) => assert!(
            !error.is_peer_fault(),
            "refused, but not scored: an honest miner whose difficulty fell far behind \
             ours sends such orphans"
        ),
        other => panic!("expected OrphanTargetTooEasy, got {other:?}"),
    }
    assert_eq!(chain.orphan_count(), 0);
    assert!(
        !chain.knows_block(&free.hash()),
        "not remembered: it may fit once we have its parent"
    );
    // Just within the allowed multiple of the next target: held.
    let mut easy = draft(&p, unknown, vec![], 1);
    easy.header.target = chain
        .next_target()
        .mul_div(ChainConfig::default().orphan_target_multiple, 1)
        .unwrap();
    let easy = seal(easy);
    assert!(matches!(
        chain.accept_block(easy, NOW).unwrap(),
        BlockOutcome::Orphan { .. }
    ));
    let real = child(&p, unknown, vec![], 2);
    assert!(matches!(
        chain.accept_block(real, NOW).unwrap(),
        BlockOutcome::Orphan { .. }
    ));
    assert_eq!(chain.orphan_count(), 2);
}

#[test]
fn after_a_reorganisation_the_mempool_holds_only_what_the_new_tip_allows() {
    let mut chain = chain();
    let p = chain.params().clone();
    let (a, b, c) = (alice(), bob(), carol());
    // Our branch: alice pays carol 10; carol then spends 8 of it, and bob 1, pending.
    let a1 = child(&p, genesis(&p), vec![transfer(&a, &c, 10, 0)], 0);
    chain.accept_block(a1, NOW).unwrap();
    chain.submit_transaction(transfer(&c, &b, 8, 0)).unwrap();
    chain.submit_transaction(transfer(&b, &a, 1, 0)).unwrap();
    assert_eq!(chain.mempool().len(), 2);

    // The heavier branch spent alice's sequence 0 on bob instead: carol never got paid.
    let b1 = child(&p, genesis(&p), vec![transfer(&a, &b, 10, 0)], 9);
    let b2 = child(&p, parent_of(&b1), vec![], 9);
    chain.accept_block(b1, NOW).unwrap();
    let outcome = chain.accept_block(b2.clone(), NOW).unwrap();
    assert!(matches!(
        outcome,
        BlockOutcome::Stored {
            tip_change: Some(ref change),
            ..
        } if change.is_reorg()
    ));
    assert_eq!(chain.tip().hash, b2.hash());
    assert_eq!(chain.account(&c.account()).balance.microcash(), 0);
    // Carol's spend would overdraw; alice's old payment is a stale sequence; bob's stays.
    let pending: Vec<_> = chain.mempool().transactions().cloned().collect();
    assert_eq!(pending, vec![transfer(&b, &a, 1, 0)]);
    let template = chain.block_template(miner_account(), NOW);
    assert_eq!(template.transactions, pending);
    assert_eq!(chain.supply(), chain.params().supply_at(2));
}

#[test]
fn a_held_branch_that_breaks_a_state_rule_when_it_leads_is_refused_and_the_tip_stays() {
    let contract = retargeting();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let mut chain = Chain::open(&path, &contract, config(0)).unwrap();
    let shared = mine_spaced(&mut chain, 1, 1000);
    mine_spaced(&mut chain, 11, 1000);
    let tip = chain.tip();

    // A fast branch (its targets harden at heights 4 and 6, as the retarget demands) whose
    // block 3 has bob spend more than he has: only applying it shows that.
    let p = chain.params().clone();
    let overdraft = pay(&chain, &bob(), &carol(), 60, 0);
    let mut parent = parent_of(&shared[0]);
    let mut ts = shared[0].header.timestamp_ms;
    let mut target = p.initial_target;
    let mut branch = Vec::new();
    for height in 2..=6u64 {
        if height == 4 || height == 6 {
            target = target.mul_div(1, 4).unwrap();
        }
        ts += 10;
        let txs = if height == 3 {
            vec![overdraft.clone()]
        } else {
            vec![]
        };
        let mut block = draft(&p, parent, txs, 0);
        block.header.timestamp_ms = ts;
        block.header.target = target;
        let block = seal(block);
        parent = parent_of(&block);
        branch.push(block);
    }
    for block in &branch[..4] {
        assert!(matches!(
            chain.accept_block(block.clone(), NOW).unwrap(),
            BlockOutcome::Held { .. }
        ));
    }
    // Block 6 carries the branch past the tip in one step: connecting it fails at block 3.
    match chain.accept_block(branch[4].clone(), NOW) {
        Err(ChainError::Invalid { hash, error }) => {
            assert_eq!(hash, branch[1].hash());
            assert!(matches!(error, BlockError::Overdraft { index: 0, .. }));
        }
        other => panic!("expected an overdraft, got {other:?}"),
    }
    assert_eq!(chain.tip(), tip);
    assert_eq!(chain.held_blocks(), (0, 0));
    assert_eq!(chain.supply(), chain.params().supply_at(12));
    drop(chain);

    let chain = Chain::open(&path, &contract, config(0)).unwrap();
    assert_eq!(chain.tip(), tip);
    // Block 2 broke no rule: stored as a side-branch block. The rest is known invalid.
    assert_eq!(
        chain.block(&branch[0].hash()).unwrap().as_ref(),
        Some(&branch[0])
    );
    for block in &branch[1..] {
        assert!(chain.knows_block(&block.hash()));
        assert_eq!(chain.block(&block.hash()).unwrap(), None);
    }
    assert_consistent(&chain, &contract);
}

/// A chain of `count` blocks on `from`, all distinct by `salt`.
fn side_branch(p: &tally_chain::ChainParams, from: Parent, salt: u64, count: usize) -> Vec<Block> {
    let mut parent = from;
    (0..count)
        .map(|_| {
            let block = child(p, parent, vec![], salt);
            parent = parent_of(&block);
            block
        })
        .collect()
}

fn assert_not_held_for_want_of_room(result: Result<BlockOutcome, ChainError>, block: &Block) {
    match result {
        Err(ChainError::Invalid { hash, error }) => {
            assert_eq!(hash, block.hash());
            assert_eq!(error, BlockError::HeldPoolFull);
            assert!(
                !error.is_peer_fault(),
                "an honest deep fork arrives this way"
            );
        }
        other => panic!("expected HeldPoolFull, got {other:?}"),
    }
}

/// The base of a branch is its least-work block, so evicting least work first
/// took a deep fork's whole branch, the new block included, as soon as it outgrew the pool
/// (and `Held` was still reported). Now a block never evicts its own ancestors: a branch
/// longer than the pool keeps its first blocks and the next one is refused, not scored,
/// not remembered; a cheaper unrelated branch still makes way for a heavier one.
#[test]
fn a_branch_longer_than_the_held_pool_keeps_its_first_blocks_and_evicts_only_cheaper_branches() {
    let c = contract();
    let config = ChainConfig {
        store_margin: 1,
        max_held_blocks: 3,
        ..ChainConfig::default()
    };
    let mut chain = Chain::in_memory(&c, config).unwrap();
    let p = chain.params().clone();
    let main: Vec<Block> = (0..10).map(|_| mine_tip(&mut chain)).collect();
    let tip = chain.tip();

    // A deep fork from genesis, one block longer than the pool.
    let deep = side_branch(&p, genesis(&p), 1, 4);
    for block in &deep[..3] {
        assert_eq!(
            chain.accept_block(block.clone(), NOW).unwrap(),
            BlockOutcome::Held {
                height: block.header.height
            }
        );
    }
    assert_not_held_for_want_of_room(chain.accept_block(deep[3].clone(), NOW), &deep[3]);
    assert!(deep[..3].iter().all(|b| chain.is_held(&b.hash())));
    assert!(
        !chain.knows_block(&deep[3].hash()),
        "not remembered: sent again once there is room, it is taken"
    );
    assert_eq!(chain.held_blocks().0, 3);
    assert_eq!(chain.tip(), tip);

    // A heavier branch (from block 4) grows by evicting the cheaper deep fork, base first
    // with its descendants, and never its own base.
    let heavier = side_branch(&p, parent_of(&main[3]), 2, 4);
    for block in &heavier[..3] {
        assert!(matches!(
            chain.accept_block(block.clone(), NOW).unwrap(),
            BlockOutcome::Held { .. }
        ));
        assert!(chain.held_blocks().0 <= 3);
    }
    assert!(deep.iter().all(|b| !chain.is_held(&b.hash())));
    assert!(heavier[..3].iter().all(|b| chain.is_held(&b.hash())));
    // Now its own blocks fill the pool: its fourth is refused and the three stay.
    assert_not_held_for_want_of_room(chain.accept_block(heavier[3].clone(), NOW), &heavier[3]);
    assert!(heavier[..3].iter().all(|b| chain.is_held(&b.hash())));
    // A block cheaper than everything held gets no room either.
    assert_not_held_for_want_of_room(chain.accept_block(deep[0].clone(), NOW), &deep[0]);
    assert!(heavier[..3].iter().all(|b| chain.is_held(&b.hash())));
    assert_eq!(chain.tip(), tip);
}

/// A block that the held pool did not keep was reported held, and its waiting
/// orphans were then adopted onto a parent nobody had: refused as `InvalidAncestor` and
/// remembered as invalid forever, so the honest peer that sent them again was scored.
/// Orphans whose parent is not kept (refused, or evicted for a sibling) stay orphans.
#[test]
fn orphans_of_a_block_the_held_pool_did_not_keep_are_never_marked_invalid() {
    let c = contract();
    let config = ChainConfig {
        store_margin: 1,
        max_held_blocks: 2,
        ..ChainConfig::default()
    };
    let mut chain = Chain::in_memory(&c, config).unwrap();
    let p = chain.params().clone();
    for _ in 0..10 {
        mine_tip(&mut chain);
    }

    // The pool refuses the parent: its orphan waits on.
    let deep = side_branch(&p, genesis(&p), 1, 4);
    assert!(matches!(
        chain.accept_block(deep[3].clone(), NOW).unwrap(),
        BlockOutcome::Orphan { .. }
    ));
    for block in &deep[..2] {
        assert!(matches!(
            chain.accept_block(block.clone(), NOW).unwrap(),
            BlockOutcome::Held { .. }
        ));
    }
    assert_not_held_for_want_of_room(chain.accept_block(deep[2].clone(), NOW), &deep[2]);
    assert_eq!(chain.orphan_count(), 1);
    assert_eq!(
        chain.accept_block(deep[3].clone(), NOW).unwrap(),
        BlockOutcome::Duplicate,
        "still an orphan, not known invalid"
    );

    // Siblings adopted together: the second (same work, newer) evicts the first, whose
    // own orphan child must then wait, not be condemned.
    let mut chain = Chain::in_memory(&c, config).unwrap();
    for _ in 0..10 {
        mine_tip(&mut chain);
    }
    let base = child(&p, genesis(&p), vec![], 5);
    let first = child(&p, parent_of(&base), vec![], 6);
    let second = child(&p, parent_of(&base), vec![], 7);
    let grandchild = child(&p, parent_of(&first), vec![], 8);
    for block in [&grandchild, &first, &second] {
        assert!(matches!(
            chain.accept_block(block.clone(), NOW).unwrap(),
            BlockOutcome::Orphan { .. }
        ));
    }
    assert_eq!(
        chain.accept_block(base.clone(), NOW).unwrap(),
        BlockOutcome::Held { height: 1 }
    );
    assert!(chain.is_held(&base.hash()) && chain.is_held(&second.hash()));
    assert!(!chain.knows_block(&first.hash()), "evicted for its sibling");
    assert_eq!(chain.orphan_count(), 1);
    assert_eq!(
        chain.accept_block(grandchild.clone(), NOW).unwrap(),
        BlockOutcome::Duplicate,
        "still an orphan, not known invalid"
    );
}

/// A node verifies a held branch's signatures before it locks the chain: the chain lists
/// the held ancestors still unverified (oldest first), takes the blocks `check_block`
/// verified, and the catch-up block then connects the branch without checking them again.
#[test]
fn a_held_branch_can_be_verified_before_the_block_that_lets_it_catch_up() {
    let contract = retargeting();
    let mut chain = Chain::in_memory(&contract, config(0)).unwrap();
    let shared = mine_spaced(&mut chain, 1, 1000);
    mine_spaced(&mut chain, 11, 1000);
    let mut other = other_side(&contract, &shared);
    let to_carol = pay(&other, &alice(), &carol(), 5, 0);
    other.submit_transaction(to_carol).unwrap();
    let fork = mine_spaced(&mut other, 6, 10);
    let (held, rest) = fork.split_at(4);
    for block in held {
        assert!(matches!(
            chain.accept_block(block.clone(), NOW).unwrap(),
            BlockOutcome::Held { .. }
        ));
    }
    let catch_up = &rest[0];
    assert!(chain.fits_parent(catch_up, NOW));
    let unchecked = chain.unchecked_held_ancestors(catch_up);
    assert_eq!(
        unchecked.iter().map(Block::hash).collect::<Vec<_>>(),
        held.iter().map(Block::hash).collect::<Vec<_>>(),
        "the whole held branch, oldest first"
    );
    let verified: Vec<_> = unchecked
        .into_iter()
        .map(|b| check_block(chain.params(), chain.key_cache(), b).unwrap())
        .collect();
    chain.note_checked_held(&verified);
    assert!(chain.unchecked_held_ancestors(catch_up).is_empty());
    let checked = check_block(chain.params(), chain.key_cache(), catch_up.clone()).unwrap();
    chain.accept_checked(checked, NOW).unwrap();
    chain.accept_block(rest[1].clone(), NOW).unwrap();
    assert_eq!(chain.tip().hash, other.tip().hash);
    assert_eq!(chain.accounts(), other.accounts());
    assert_eq!(chain.held_blocks(), (0, 0));
}

/// Orphans a block would adopt are handed out to be verified before the chain is locked
/// (a node checks them on other threads); once noted as checked they are not handed out
/// again, and adopting them stores the whole branch.
#[test]
fn orphans_a_block_lets_in_are_verified_before_the_chain_is_locked() {
    let mut chain = chain();
    let params = params();
    let tx = transfer(&alice(), &bob(), 1, 0);
    let b1 = child(&params, genesis(&params), vec![], 0);
    let b2 = child(&params, parent_of(&b1), vec![tx], 0);
    let b3 = child(&params, parent_of(&b2), vec![], 0);
    for orphan in [&b3, &b2] {
        assert!(matches!(
            chain.accept_block(orphan.clone(), NOW).unwrap(),
            tally_chain::BlockOutcome::Orphan { .. }
        ));
    }
    let unchecked = chain.unchecked_orphans_of(&b1.hash(), 16);
    assert_eq!(
        unchecked.iter().map(|b| b.hash()).collect::<Vec<_>>(),
        vec![b2.hash(), b3.hash()],
        "parents first"
    );
    assert_eq!(
        chain.unchecked_orphans_of(&b1.hash(), 1).len(),
        1,
        "bounded"
    );
    let keys = chain.key_cache().clone();
    let checked: Vec<_> = unchecked
        .into_iter()
        .map(|block| tally_chain::check_block(&params, &keys, block).unwrap())
        .collect();
    chain.note_checked_held(&checked);
    assert!(chain.unchecked_orphans_of(&b1.hash(), 16).is_empty());
    chain.accept_block(b1, NOW).unwrap();
    assert_eq!(chain.tip().height, 3);
}
