//! Property tests of fork choice between two branches fed in random order: in memory, and
//! on disk with side branches held in a tiny pool across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::*;
use proptest::prelude::*;
use tally_chain::{Block, BlockOutcome, Chain, ChainConfig};
use tally_core::AccountId;

/// Two branches from genesis of `len_a` and `len_b` blocks, paying among three keys as
/// `pays` says (each branch funds its payments from genesis on its own). A payment whose
/// `from` is 3 or more is a split from `from % 3` paying `amount` to each of the two other
/// keys, so reorganisations undo and redo splits as well as transfers.
fn two_branches(len_a: usize, len_b: usize, pays: &[(u8, u8, u64)]) -> (Vec<Block>, Vec<Block>) {
    let p = params();
    let keys = [alice(), bob(), carol()];
    let branch = |len: usize, salt: u64| {
        let mut blocks: Vec<Block> = Vec::new();
        let mut balances: HashMap<AccountId, u64> = HashMap::from([
            (alice().account(), 100 * CASH),
            (bob().account(), 50 * CASH),
        ]);
        let mut sequences: HashMap<AccountId, u64> = HashMap::new();
        for i in 0..len {
            let parent = blocks.last().map(parent_of).unwrap_or(genesis(&p));
            let mut txs = Vec::new();
            for (j, (from, to, amount)) in pays.iter().enumerate() {
                if (j + i) % 3 != 0 {
                    continue;
                }
                let is_split = *from >= 3;
                let sender = *from as usize % 3;
                let recipients: Vec<usize> = if is_split {
                    (0..3).filter(|k| *k != sender).collect()
                } else {
                    vec![*to as usize % 3]
                };
                let from = &keys[sender];
                let total = amount * recipients.len() as u64;
                let balance = balances.entry(from.account()).or_default();
                if *balance < total {
                    continue;
                }
                *balance -= total;
                for k in &recipients {
                    *balances.entry(keys[*k].account()).or_default() += amount;
                }
                let seq = sequences.entry(from.account()).or_default();
                txs.push(if is_split {
                    let outputs: Vec<(AccountId, u64)> = recipients
                        .iter()
                        .map(|k| (keys[*k].account(), *amount))
                        .collect();
                    split_micro(from, &outputs, *seq)
                } else {
                    transfer_micro(from, keys[*to as usize % 3].account(), *amount, *seq)
                });
                *seq += 1;
            }
            blocks.push(child(&p, parent, txs, salt));
        }
        blocks
    };
    (branch(len_a, 1), branch(len_b, 2))
}

/// The blocks of both branches in a deterministic shuffle.
fn shuffled<'a>(a: &'a [Block], b: &'a [Block], order_seed: u64) -> Vec<&'a Block> {
    let mut all: Vec<&Block> = a.iter().chain(b).collect();
    let mut state = order_seed | 1;
    for i in (1..all.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        all.swap(i, (state % (i as u64 + 1)) as usize);
    }
    all
}

/// Two branches from genesis with random transactions; every block is fed in a random
/// order. The chain must end on the heavier branch (every block has the same work, so the
/// longer one) with exactly the state of replaying it. On equal length the documented tie
/// rule decides: "on equal work the block seen first stays", and a branch's full-length
/// tip is seen (connected: orphans wait for their parent) when the last of its blocks
/// arrives, so the branch whose blocks have all arrived first wins.
fn fork_case(len_a: usize, len_b: usize, order_seed: u64, pays: &[(u8, u8, u64)]) {
    let (a, b) = two_branches(len_a, len_b, pays);
    let all = shuffled(&a, &b, order_seed);
    let mut chain = Chain::in_memory(&contract(), ChainConfig::default()).unwrap();
    for block in &all {
        let outcome = chain.accept_block((*block).clone(), NOW).unwrap();
        assert_ne!(outcome, BlockOutcome::Duplicate);
        assert_eq!(chain.supply(), chain.params().supply_at(chain.height()));
    }
    // When each branch's last missing block arrived.
    let complete_at = |branch: &[Block]| {
        branch
            .iter()
            .map(|block| all.iter().position(|b| b.hash() == block.hash()).unwrap())
            .max()
            .unwrap()
    };
    let expected_tip = match len_a.cmp(&len_b) {
        std::cmp::Ordering::Greater => a.last(),
        std::cmp::Ordering::Less => b.last(),
        std::cmp::Ordering::Equal if complete_at(&a) < complete_at(&b) => a.last(),
        std::cmp::Ordering::Equal => b.last(),
    };
    assert_eq!(
        chain.tip().hash,
        expected_tip.unwrap().hash(),
        "the heavier branch, or on equal work the one complete first"
    );
    let winner = if chain.tip().hash == a.last().map(Block::hash).unwrap_or_default() {
        &a
    } else {
        &b
    };
    let mut replay = Chain::in_memory(&contract(), ChainConfig::default()).unwrap();
    for block in winner {
        replay.accept_block(block.clone(), NOW).unwrap();
    }
    assert_eq!(replay.tip(), chain.tip());
    assert_eq!(replay.accounts(), chain.accounts());
    assert_eq!(chain.orphan_count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Protects fork choice between two branches fed in any order: the heavier wins, on
    /// equal work the one complete first, with exactly its state.
    #[test]
    fn fork_choice_ends_on_the_heavier_branch_with_its_exact_state(
        len_a in 1usize..6, len_b in 1usize..6, seed in any::<u64>(),
        pays in prop::collection::vec((0u8..6, 0u8..3, 1u64..30_000_000), 0..6)
    ) {
        fork_case(len_a, len_b, seed, &pays);
    }
}

/// The same two honest branches, fed in a random order to an on-disk chain whose side
/// branches are held in memory almost at once (`store_margin`) in a tiny pool: no block is
/// ever refused as the sender's fault, supply stays exact, and the chain on disk always
/// reopens to the tip and accounts in memory. Then, after a restart with room for a whole
/// branch in the pool, each branch is sent again in order, as a sync would: the chain ends
/// on the heavier branch with exactly its state, on disk too.
fn held_case(
    len_a: usize,
    len_b: usize,
    order_seed: u64,
    pays: &[(u8, u8, u64)],
    store_margin: u64,
    max_held_blocks: usize,
) {
    let (a, b) = two_branches(len_a, len_b, pays);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let config = ChainConfig {
        store_margin,
        max_held_blocks,
        ..ChainConfig::default()
    };
    let (tip, accounts) = {
        let mut chain = Chain::open(&path, &contract(), config).unwrap();
        for block in shuffled(&a, &b, order_seed) {
            if let Err(error) = chain.accept_block(block.clone(), NOW) {
                match error {
                    tally_chain::ChainError::Invalid { error, .. } => {
                        assert!(!error.is_peer_fault(), "an honest block refused: {error}")
                    }
                    other => panic!("{other}"),
                }
            }
            assert_eq!(chain.supply(), chain.params().supply_at(chain.height()));
        }
        (chain.tip(), chain.accounts().clone())
    };
    let reopened = Chain::open(&path, &contract(), config).unwrap();
    assert_eq!(reopened.tip(), tip, "disk and memory agree on the tip");
    assert_eq!(reopened.accounts(), &accounts);
    drop(reopened);
    // A restart (held blocks are memory only) with room for a whole branch in the pool.
    let config = ChainConfig {
        max_held_blocks: 8,
        ..config
    };
    let mut chain = Chain::open(&path, &contract(), config).unwrap();
    for block in a.iter().chain(&b) {
        let _ = chain.accept_block(block.clone(), NOW);
        assert_eq!(chain.supply(), chain.params().supply_at(chain.height()));
    }
    let heavier = if len_a > len_b { &a } else { &b };
    if len_a != len_b {
        assert_eq!(chain.tip().hash, heavier.last().map(Block::hash).unwrap());
    } else {
        // Equal work: a full-length tip stored before the restart stays (seen first);
        // otherwise `a`, sent first, completes first.
        let last = |branch: &[Block]| branch.last().map(Block::hash).unwrap();
        let expected = if tip.hash == last(&b) {
            last(&b)
        } else {
            last(&a)
        };
        assert_eq!(
            chain.tip().hash,
            expected,
            "equal work: the tip seen first stays"
        );
    }
    let winner = if chain.tip().hash == a.last().map(Block::hash).unwrap_or_default() {
        &a
    } else {
        &b
    };
    let mut replay = Chain::in_memory(&contract(), ChainConfig::default()).unwrap();
    for block in winner {
        replay.accept_block(block.clone(), NOW).unwrap();
    }
    assert_eq!(replay.accounts(), chain.accounts());
    drop(chain);
    let chain = Chain::open(&path, &contract(), config).unwrap();
    assert_eq!(replay.tip(), chain.tip());
    assert_eq!(replay.accounts(), chain.accounts());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Protects held side branches: no honest block refused as the sender's fault, disk and
    /// memory agree, and after a restart and a sync the heavier branch (on equal work, the
    /// tip seen first) wins with its exact state.
    #[test]
    fn held_side_branches_never_lose_an_honest_block_or_the_disk(
        len_a in 1usize..7, len_b in 1usize..7, seed in any::<u64>(),
        pays in prop::collection::vec((0u8..6, 0u8..3, 1u64..30_000_000), 0..6),
        store_margin in 0u64..3, max_held_blocks in 1usize..4,
    ) {
        held_case(len_a, len_b, seed, &pays, store_margin, max_held_blocks);
    }
}
