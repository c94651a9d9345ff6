//! Property test of fork choice on random block trees (with retargets, invalid blocks and
//! restarts) against a reference model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/ledger.rs"]
mod ledger;
#[path = "common/spends.rs"]
mod spends;

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};

use common::*;
use ledger::*;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as RunnerConfig, TestCaseResult, TestRunner};
use spends::*;
use tally_chain::block::{BlockHeader, HEADER_VERSION};
use tally_chain::consensus::{retarget, work};
use tally_chain::state::Accounts;
use tally_chain::{
    Block, Chain, ChainConfig, ChainParams, ChainStore, Coinbase, MemoryDisk, MemoryStore, U256,
};
use tally_core::Digest;

/// Retarget every 2 blocks: on paths of at most [`MAX_DEPTH`] blocks that is at heights 4
/// and 6, so branches of one length carry different work, and a shorter branch may be the
/// heavier.
const WINDOW: u64 = 2;
const MAX_DEPTH: u64 = 7;

/// One block of a random tree.
#[derive(Clone, Debug)]
struct NodeSpec {
    /// 0: on genesis; 1 to 4: on the block before it; 5, 6: two before; 7: three before
    /// (or on genesis when there is none; a path that would pass [`MAX_DEPTH`] forks from
    /// its block at height 2 to 4 instead).
    parent: u8,
    /// 14: overspends; 15: sequence gap; 16: bad signature; 17: wrong (harder) target;
    /// anything else: valid (one block in twelve is invalid, and so are its descendants).
    kind: u8,
    /// Its time after its parent: 0.55 s to 1.8 s (plus its index, so that siblings
    /// differ), so that each retarget moves the target by 0.55 to 1.82 times, and two by
    /// 0.30 to 3.3 times: never clamped, and never 16 times easier than the tip's next
    /// target (so no honest orphan is refused as too easy).
    delay: u8,
    picks: Vec<(u8, u8, u16)>,
}

fn arb_node() -> impl Strategy<Value = NodeSpec> {
    (
        0u8..8,
        0u8..48,
        // Fast or slow, so that retargets move the target well away from 1.
        prop_oneof![0u8..4, 22u8..26],
        prop::collection::vec((0u8..4, 0u8..5, any::<u16>()), 0..3),
    )
        .prop_map(|(parent, kind, delay, picks)| NodeSpec {
            parent,
            kind,
            delay,
            picks,
        })
}

/// A block of the tree, with what the model knows of it.
struct Node {
    block: Block,
    parent: Option<usize>,
    /// Valid itself and all its ancestors.
    valid: bool,
    /// Cumulative work (meaningful for valid blocks).
    work: U256,
    /// The accounts after it (valid blocks), per the model.
    ledger: Accounts,
}

fn build_tree(p: &ChainParams, specs: &[NodeSpec]) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::with_capacity(specs.len());
    let genesis_ledger = genesis_ledger();
    for (i, spec) in specs.iter().enumerate() {
        let mut parent = match spec.parent {
            0 => None,
            1..=4 => i.checked_sub(1),
            5 | 6 => i.checked_sub(2),
            _ => i.checked_sub(3),
        };
        // A path at its full depth forks instead, from its block at height 2, 3 or 4: deep
        // branches that compete across the retargets.
        if parent.is_some_and(|j| nodes[j].block.header.height >= MAX_DEPTH) {
            let fork_height = 2 + u64::from(spec.delay % 3);
            while let Some(j) = parent.filter(|j| nodes[*j].block.header.height > fork_height) {
                parent = nodes[j].parent;
            }
        }
        let (previous, height, parent_ts, parent_target, parent_work, parent_ledger, parent_valid) =
            match parent {
                None => (
                    p.genesis_hash,
                    0,
                    T0,
                    p.initial_target,
                    U256::ZERO,
                    &genesis_ledger,
                    true,
                ),
                Some(j) => {
                    let n = &nodes[j];
                    let h = &n.block.header;
                    (
                        n.block.hash(),
                        h.height,
                        h.timestamp_ms,
                        h.target,
                        n.work,
                        &n.ledger,
                        n.valid,
                    )
                }
            };
        let height = height + 1;
        let mut target = if p.is_retarget_height(height) {
            // The ancestor at height - 1 - WINDOW starts the window.
            let first_height = height - 1 - p.retarget_window;
            let mut at = parent;
            while let Some(j) = at {
                if nodes[j].block.header.height == first_height {
                    break;
                }
                at = nodes[j].parent;
            }
            let first_ms = nodes[at.expect("a full window behind")]
                .block
                .header
                .timestamp_ms;
            retarget(p, parent_target, first_ms, parent_ts)
        } else {
            parent_target
        };
        let timestamp_ms = parent_ts + 550 + 50 * spec.delay as u64 + i as u64;
        let mut ledger = parent_ledger.clone();
        credit(&mut ledger, miner_account(), REWARD);
        let mut txs = valid_spends(&p.network, &mut ledger, &spec.picks);
        let (key, state) = funded(&ledger, spec.kind);
        let own_valid = match spec.kind {
            14 => {
                let over = state.balance.microcash() + 1;
                txs.push(sign_transfer(
                    &p.network,
                    &key,
                    carol().account(),
                    over,
                    state.next_sequence,
                ));
                false
            }
            15 => {
                txs.push(sign_transfer(
                    &p.network,
                    &key,
                    carol().account(),
                    1,
                    state.next_sequence + 1,
                ));
                false
            }
            16 => {
                let mut tx =
                    sign_transfer(&p.network, &key, carol().account(), 1, state.next_sequence);
                flip_signature(&mut tx);
                txs.push(tx);
                false
            }
            17 => {
                target = target.shr(1);
                false
            }
            _ => true,
        };
        let block = seal(Block {
            header: BlockHeader {
                version: HEADER_VERSION,
                network: p.network,
                height,
                previous,
                merkle_root: Digest::default(),
                timestamp_ms,
                target,
                nonce: 0,
            },
            coinbase: Coinbase {
                miner: miner_account(),
                amount: p.block_reward,
                height,
            },
            transactions: txs,
        });
        nodes.push(Node {
            block,
            parent,
            valid: parent_valid && own_valid,
            work: parent_work.saturating_add(&work(&target)),
            ledger,
        });
    }
    nodes
}

/// The reference: it sees only the valid blocks. A block is seen when it and its parent
/// are both known (a block whose parent is missing waits, and waiting blocks are forgotten
/// on a restart; seen blocks are durable); a block that lets waiting children in lets
/// them in breadth first, each parent's children in arrival order. The tip is the valid
/// block with the most cumulative work, on equal work the one seen first.
struct Reference {
    seen: HashSet<usize>,
    waiting: Vec<usize>,
    tip: Option<usize>,
    tip_work: U256,
    /// Blocks seen with exactly the tip's work, not taken (the tie rule at work).
    ties: usize,
    tip_changes: usize,
    /// Tip changes to a block no higher than the old tip (work, not height, decided).
    work_not_height: usize,
    /// The greatest height seen, and whether a tip was ever below it (more work on a
    /// shorter branch).
    max_height: u64,
    shorter_tip: bool,
}

impl Reference {
    fn new() -> Self {
        Reference {
            seen: HashSet::new(),
            waiting: Vec::new(),
            tip: None,
            tip_work: U256::ZERO,
            ties: 0,
            tip_changes: 0,
            work_not_height: 0,
            max_height: 0,
            shorter_tip: false,
        }
    }

    fn deliver(&mut self, i: usize, nodes: &[Node]) {
        if !nodes[i].valid || self.seen.contains(&i) {
            return;
        }
        let parent_seen = nodes[i].parent.is_none_or(|j| self.seen.contains(&j));
        if !parent_seen {
            if !self.waiting.contains(&i) {
                self.waiting.push(i);
            }
            return;
        }
        self.see(i, nodes);
        let mut queue = VecDeque::from([i]);
        while let Some(parent) = queue.pop_front() {
            let kids: Vec<usize> = self
                .waiting
                .iter()
                .copied()
                .filter(|k| nodes[*k].parent == Some(parent))
                .collect();
            for kid in kids {
                self.waiting.retain(|k| *k != kid);
                self.see(kid, nodes);
                queue.push_back(kid);
            }
        }
    }

    fn see(&mut self, i: usize, nodes: &[Node]) {
        self.seen.insert(i);
        if nodes[i].work > self.tip_work {
            let old_height = self.tip.map_or(0, |t| nodes[t].block.header.height);
            if nodes[i].block.header.height <= old_height {
                self.work_not_height += 1;
            }
            self.tip = Some(i);
            self.tip_work = nodes[i].work;
            self.tip_changes += 1;
        } else if nodes[i].work == self.tip_work {
            self.ties += 1;
        }
        self.max_height = self.max_height.max(nodes[i].block.header.height);
        let tip_height = self.tip.map_or(0, |t| nodes[t].block.header.height);
        self.shorter_tip |= tip_height < self.max_height;
    }

    fn restart(&mut self) {
        self.waiting.clear();
    }
}

#[derive(Debug, Default)]
struct ForkStats {
    cases: usize,
    blocks: usize,
    invalid_blocks: usize,
    retargeted: usize,
    deliveries: usize,
    restarts: usize,
    ties: usize,
    tip_changes: usize,
    work_not_height: usize,
    /// Cases where a tip was shorter than a valid branch seen (work beat length).
    work_beats_length: usize,
}

fn check_against_reference<S: ChainStore>(
    chain: &Chain<S>,
    reference: &Reference,
    nodes: &[Node],
    genesis: &Accounts,
    context: &str,
) -> TestCaseResult {
    let (hash, ledger) = match reference.tip {
        None => (chain.params().genesis_hash, genesis),
        Some(i) => (nodes[i].block.hash(), &nodes[i].ledger),
    };
    prop_assert_eq!(
        chain.tip().hash,
        hash,
        "tip differs from the reference {}",
        context
    );
    prop_assert_eq!(chain.tip().work, reference.tip_work);
    prop_assert_eq!(
        chain.accounts(),
        ledger,
        "accounts differ from the model {}",
        context
    );
    prop_assert_eq!(chain.supply(), chain.params().supply_at(chain.height()));
    Ok(())
}

fn fork_tree_case(
    specs: &[NodeSpec],
    order: &[usize],
    extra: &[(Index, Index)],
    restarts: &[Index],
    stats: &mut ForkStats,
) -> TestCaseResult {
    let contract = contract_with(4, WINDOW, 100);
    let p = ChainParams::from_contract(&contract).unwrap();
    let nodes = build_tree(&p, specs);
    let n = nodes.len();
    // Every block in a random order, some twice, then everything again parents first (a
    // sync), so each case ends with every block known.
    let mut schedule = order.to_vec();
    for (at, node) in extra {
        schedule.insert(at.index(schedule.len() + 1), node.index(n));
    }
    let restart_after: HashSet<usize> = restarts.iter().map(|i| i.index(schedule.len())).collect();
    schedule.extend(0..n);

    let disk = MemoryDisk::new();
    let open = || {
        let store = MemoryStore::open(&disk, &p.network).unwrap();
        Chain::with_store(store, p.clone(), ChainConfig::default()).unwrap()
    };
    let genesis = genesis_ledger();
    let mut chain = open();
    let mut reference = Reference::new();
    for (step, &i) in schedule.iter().enumerate() {
        let result = chain.accept_block(nodes[i].block.clone(), NOW);
        if nodes[i].valid {
            prop_assert!(result.is_ok(), "valid block {} refused: {:?}", i, result);
        }
        reference.deliver(i, &nodes);
        let context = format!("after delivering block {i} (step {step})");
        check_against_reference(&chain, &reference, &nodes, &genesis, &context)?;
        if restart_after.contains(&step) {
            drop(chain);
            chain = open();
            reference.restart();
            stats.restarts += 1;
            check_against_reference(&chain, &reference, &nodes, &genesis, "after a restart")?;
        }
    }
    // Every valid block was seen by the end.
    prop_assert_eq!(
        reference.seen.len(),
        nodes.iter().filter(|n| n.valid).count()
    );
    if reference.shorter_tip {
        stats.work_beats_length += 1;
    }
    stats.cases += 1;
    stats.blocks += n;
    stats.invalid_blocks += nodes.iter().filter(|n| !n.valid).count();
    stats.retargeted += nodes
        .iter()
        .filter(|n| {
            n.block.header.target != p.initial_target
                && n.block.header.target != p.initial_target.shr(1)
        })
        .count();
    stats.deliveries += schedule.len();
    stats.ties += reference.ties;
    stats.tip_changes += reference.tip_changes;
    stats.work_not_height += reference.work_not_height;
    Ok(())
}

/// Protects fork choice as PROTOCOL.md states it ("the main chain ends at the valid block
/// with the most cumulative work; on equal work the block seen first stays"): random block
/// trees (several branches, a retarget that makes branches of one length differ in work,
/// blocks that overspend, skip a sequence, carry a bad signature or a wrong target, and
/// their descendants), delivered in random order with duplicates and restarts of the chain
/// over its store (orphans are lost, stored blocks kept), then synced in full. After every
/// delivery and restart the chain's tip, work and accounts equal a reference model's (most
/// work among the valid blocks seen, first seen on ties; accounts replayed by the model),
/// and no valid block is ever refused.
#[test]
fn fork_choice_follows_the_reference_on_random_trees() {
    let stats = RefCell::new(ForkStats::default());
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 320,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let strategy = prop::collection::vec(arb_node(), 4..24).prop_flat_map(|specs| {
        let n = specs.len();
        (
            Just(specs),
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            prop::collection::vec((any::<Index>(), any::<Index>()), 0..4),
            prop::collection::vec(any::<Index>(), 0..3),
        )
    });
    runner
        .run(&strategy, |(specs, order, extra, restarts)| {
            fork_tree_case(&specs, &order, &extra, &restarts, &mut stats.borrow_mut())
        })
        .unwrap();
    let stats = stats.into_inner();
    eprintln!("fork choice: {stats:?}");
    assert!(
        stats.ties > 0 && stats.restarts > 0 && stats.work_not_height > 0,
        "{stats:?}"
    );
}
