//! Property tests: apply/undo round-trips, supply, fork choice over random branches fed in
//! random order, encodings, and the miner's hash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::*;
use proptest::prelude::*;
use tally_chain::block::{BlockHeader, HEADER_VERSION};
use tally_chain::miner::HeaderHasher;
use tally_chain::state::{Accounts, Overlay, merge, total_balance};
use tally_chain::{
    AccountState, Block, BlockOutcome, Chain, ChainConfig, Coinbase, Transaction, U256,
};
use tally_core::{
    AccountId, Amount, Digest, Encode, NetworkId, Order, Payment, Signature, Split, Transfer,
};

fn account(i: u8) -> AccountId {
    AccountId::from([i; 32])
}

prop_compose! {
    fn arb_accounts()(balances in prop::collection::vec((0u64..1_000, 0u64..5), 1..6)) -> Accounts {
        balances
            .into_iter()
            .enumerate()
            .filter(|(_, (b, s))| *b > 0 || *s > 0)
            .map(|(i, (balance, next_sequence))| {
                (account(i as u8), AccountState {
                    balance: Amount::from_microcash(balance),
                    next_sequence,
                })
            })
            .collect()
    }
}

prop_compose! {
    /// Transfers and splits among 6 accounts with mostly plausible sequences (signatures
    /// are not checked by state application). A split pays `outputs` accounts from `to`
    /// on, so some pay their own sender or an account twice (malformed: the block fails).
    fn arb_transfers()(raw in prop::collection::vec(
        (0u8..6, 0u8..6, 1u64..400, 0u64..6, 0usize..8), 0..12
    )) -> Vec<Transaction> {
        raw.into_iter()
            .map(|(from, to, amount, sequence, outputs)| {
                let order = if outputs < 2 {
                    Order::Transfer(Transfer {
                        sender: account(from),
                        recipient: account(to),
                        amount: Amount::from_microcash(amount),
                        sequence,
                    })
                } else {
                    Order::Split(Split {
                        sender: account(from),
                        sequence,
                        outputs: (0..outputs - 1)
                            .map(|i| Payment {
                                recipient: account((to + i as u8) % 7),
                                amount: Amount::from_microcash(amount + i as u64),
                            })
                            .collect(),
                    })
                };
                Transaction { order, signature: Signature::from([0; 64]) }
            })
            .collect()
    }
}

fn block_of(transactions: Vec<Transaction>, reward: u64) -> Block {
    Block {
        header: BlockHeader {
            version: HEADER_VERSION,
            network: NetworkId(Digest::default()),
            height: 1,
            previous: Digest::default(),
            merkle_root: Digest::default(),
            timestamp_ms: 1,
            target: U256::MAX,
            nonce: 0,
        },
        coinbase: Coinbase {
            miner: account(2),
            amount: Amount::from_microcash(reward),
            height: 1,
        },
        transactions,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn apply_then_undo_restores_the_exact_state(
        accounts in arb_accounts(), txs in arb_transfers(), reward in 0u64..100
    ) {
        let block = block_of(txs, reward);
        let before_total = total_balance(&accounts).unwrap();
        let mut overlay = Overlay::new(&accounts);
        match overlay.apply_block(&block) {
            Ok(undo) => {
                let mut after = accounts.clone();
                merge(&mut after, overlay.into_changes());
                // Supply grows by exactly the reward.
                prop_assert_eq!(
                    total_balance(&after).unwrap().microcash(),
                    before_total.microcash() + reward
                );
                // Undo through its bytes, as storage does.
                let undo = tally_chain::state::Undo::decode(&undo.encode()).unwrap();
                let mut back = Overlay::new(&after);
                back.undo_block(&undo);
                let changes = back.into_changes();
                let mut restored = after.clone();
                merge(&mut restored, changes);
                prop_assert_eq!(restored, accounts);
            }
            Err(_) => {
                // A failed block changes nothing committed.
                prop_assert_eq!(total_balance(&accounts).unwrap(), before_total);
            }
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..800)) {
        let _ = Block::decode(&bytes);
        let _ = BlockHeader::decode(&bytes);
        let _ = Transaction::decode(&bytes);
        let _ = tally_chain::state::Undo::decode(&bytes);
    }

    #[test]
    fn blocks_round_trip_through_their_bytes(
        txs in arb_transfers(), nonce in any::<u64>(), ts in any::<u64>(), target in any::<[u8; 32]>()
    ) {
        let mut block = block_of(txs, 7);
        block.header.nonce = nonce;
        block.header.timestamp_ms = ts;
        block.header.target = U256::from_be_bytes(&target);
        let bytes = block.encode();
        prop_assert_eq!(bytes.len(), block.encoded_len());
        prop_assert_eq!(Block::decode(&bytes).unwrap(), block.clone());
        // Any truncation or extension is refused, not misread.
        prop_assert!(Block::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(Block::decode(&longer).is_err());
    }

    #[test]
    fn the_miners_hash_is_the_block_hash(
        height in any::<u64>(), ts in any::<u64>(), nonce in any::<u64>(), prev in any::<[u8; 32]>()
    ) {
        let header = BlockHeader {
            version: HEADER_VERSION,
            network: NetworkId(tally_core::sha256(&[b"p"])),
            height,
            previous: Digest::from(prev),
            merkle_root: tally_core::sha256(&[b"m"]),
            timestamp_ms: ts,
            target: U256::from_leading_zero_bits(8),
            nonce: 0,
        };
        let mut hasher = HeaderHasher::new(&header);
        let with_nonce = BlockHeader { nonce, ..header };
        prop_assert_eq!(hasher.hash(nonce), with_nonce.hash());
        prop_assert_eq!(hasher.meets_target(nonce), with_nonce.meets_own_target());
    }
}

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
/// order. The chain must end on the heavier branch (the first one to reach the greater
/// length, since each block has the same work) with exactly the state of replaying it.
fn fork_case(len_a: usize, len_b: usize, order_seed: u64, pays: &[(u8, u8, u64)]) {
    let (a, b) = two_branches(len_a, len_b, pays);
    let all = shuffled(&a, &b, order_seed);
    let mut chain = Chain::in_memory(&contract(), ChainConfig::default()).unwrap();
    for block in &all {
        let outcome = chain.accept_block((*block).clone(), NOW).unwrap();
        assert_ne!(outcome, BlockOutcome::Duplicate);
        assert_eq!(chain.supply(), chain.params().supply_at(chain.height()));
    }
    let expected_tip = match len_a.cmp(&len_b) {
        std::cmp::Ordering::Greater => a.last(),
        std::cmp::Ordering::Less => b.last(),
        // Equal work: whichever branch reached full length first.
        std::cmp::Ordering::Equal => None,
    };
    if let Some(tip) = expected_tip {
        assert_eq!(chain.tip().hash, tip.hash());
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
    assert_eq!(replay.tip(), chain.tip());
    assert_eq!(replay.accounts(), chain.accounts());
    assert_eq!(chain.orphan_count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

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

    #[test]
    fn held_side_branches_never_lose_an_honest_block_or_the_disk(
        len_a in 1usize..7, len_b in 1usize..7, seed in any::<u64>(),
        pays in prop::collection::vec((0u8..6, 0u8..3, 1u64..30_000_000), 0..6),
        store_margin in 0u64..3, max_held_blocks in 1usize..4,
    ) {
        held_case(len_a, len_b, seed, &pays, store_margin, max_held_blocks);
    }
}
