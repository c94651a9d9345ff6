//! Blocks of low-work side branches, held in memory instead of written to disk.
//!
//! Early in a chain's history the target is easy, so a fork from deep history costs
//! almost nothing per block; were every such block stored, anyone could fill our disk.
//! A block whose branch is far behind the tip (see [`crate::ChainConfig::store_margin`]) is
//! therefore only held here, bounded in count and bytes, until its branch either catches
//! up (then the whole branch is written in one commit) or is evicted. Nothing here is
//! durable: after a restart, held blocks are simply fetched again.

use std::collections::{BTreeSet, HashMap, HashSet};

use tally_core::Encode;

use crate::block::{Block, BlockHash, BlockHeader};
use crate::u256::U256;

/// One held block.
pub(crate) struct HeldBlock {
    pub(crate) block: Block,
    /// Cumulative work of its branch up to and including it.
    pub(crate) work: U256,
    /// Whether its signatures were verified already (they are checked when the branch is
    /// written, not when held: a cheap block must not cost us a signature check each).
    pub(crate) signatures_checked: bool,
    arrival: u64,
}

/// The bounded pool of held blocks, keyed by hash and by parent so descendants extend it.
pub(crate) struct HeldBlocks {
    blocks: HashMap<BlockHash, HeldBlock>,
    by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    /// Eviction order: least cumulative work first, then oldest.
    eviction: BTreeSet<(U256, u64, BlockHash)>,
    bytes: usize,
    next_arrival: u64,
    max_blocks: usize,
    max_bytes: usize,
}

impl HeldBlocks {
    pub(crate) fn new(max_blocks: usize, max_bytes: usize) -> Self {
        HeldBlocks {
            blocks: HashMap::new(),
            by_parent: HashMap::new(),
            eviction: BTreeSet::new(),
            bytes: 0,
            next_arrival: 0,
            max_blocks,
            max_bytes,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn contains(&self, hash: &BlockHash) -> bool {
        self.blocks.contains_key(hash)
    }

    pub(crate) fn get(&self, hash: &BlockHash) -> Option<&HeldBlock> {
        self.blocks.get(hash)
    }

    pub(crate) fn header(&self, hash: &BlockHash) -> Option<&BlockHeader> {
        self.blocks.get(hash).map(|held| &held.block.header)
    }

    pub(crate) fn mark_checked(&mut self, hash: &BlockHash) {
        if let Some(held) = self.blocks.get_mut(hash) {
            held.signatures_checked = true;
        }
    }

    /// Holds `block`, then evicts until the bounds hold again: the block with the least
    /// work first (ties: the oldest), each with its held descendants, which can no longer
    /// connect. Least work first, rather than oldest first, so that cheap blocks from deep
    /// history cannot push out the base of a heavier branch that is still arriving.
    ///
    /// The held ancestors of `block` are never evicted for it: the base of a branch is
    /// always its least-work block, so evicting it would take the whole branch, `block`
    /// included, and the next block of an honest deep fork would wipe out the fork. Only
    /// other blocks are evicted, and `block` itself competes with them by its work; if
    /// `block` would be the next to go (its own ancestors fill the pool, or every other
    /// held block has more work), it is not held and the pool is left as it was.
    /// Returns every hash evicted, or `None` when `block` was not held.
    pub(crate) fn insert(
        &mut self,
        hash: BlockHash,
        block: Block,
        work: U256,
        signatures_checked: bool,
    ) -> Option<Vec<BlockHash>> {
        if self.blocks.contains_key(&hash) {
            return Some(Vec::new());
        }
        let size = block.encoded_len();
        // The held ancestors, with the bytes and count they take: these stay whatever else
        // must go.
        let mut ancestors = HashSet::new();
        let mut ancestor_bytes = 0usize;
        let mut current = block.header.previous;
        while let Some(held) = self.blocks.get(&current) {
            ancestors.insert(current);
            ancestor_bytes = ancestor_bytes.saturating_add(held.block.encoded_len());
            current = held.block.header.previous;
        }
        if ancestors.len() >= self.max_blocks
            || ancestor_bytes.saturating_add(size) > self.max_bytes
        {
            return None;
        }
        let arrival = self.next_arrival;
        let key = (work, arrival, hash);
        // Which blocks would go, least work first, before anything is changed: if `block`
        // itself would be among them, nothing is.
        let mut count = self.blocks.len() + 1;
        let mut bytes = self.bytes.saturating_add(size);
        let mut victims = Vec::new();
        let mut gone = HashSet::new();
        for &(victim_work, victim_arrival, victim) in &self.eviction {
            if count <= self.max_blocks && bytes <= self.max_bytes {
                break;
            }
            if (victim_work, victim_arrival, victim) > key {
                // `block` has less work than anything left to evict: it goes first.
                return None;
            }
            if gone.contains(&victim) || ancestors.contains(&victim) {
                continue;
            }
            // Its held descendants go with it (none is an ancestor of `block`: then the
            // victim would be one too).
            let mut stack = vec![victim];
            while let Some(h) = stack.pop() {
                if !gone.insert(h) {
                    continue;
                }
                if let Some(held) = self.blocks.get(&h) {
                    count -= 1;
                    bytes = bytes.saturating_sub(held.block.encoded_len());
                }
                if let Some(kids) = self.by_parent.get(&h) {
                    stack.extend(kids.iter().copied());
                }
            }
            victims.push(victim);
        }
        if count > self.max_blocks || bytes > self.max_bytes {
            // Unreachable (the ancestors and `block` fit, checked above), but never hold
            // more than the bounds.
            return None;
        }
        let mut evicted = Vec::new();
        for victim in victims {
            evicted.extend(self.remove_with_descendants(&victim));
        }
        self.next_arrival += 1;
        self.bytes = self.bytes.saturating_add(size);
        self.by_parent
            .entry(block.header.previous)
            .or_default()
            .push(hash);
        self.eviction.insert(key);
        self.blocks.insert(
            hash,
            HeldBlock {
                block,
                work,
                signatures_checked,
                arrival,
            },
        );
        Some(evicted)
    }

    /// Takes one block out (its held children stay, keyed by their parent).
    pub(crate) fn remove(&mut self, hash: &BlockHash) -> Option<HeldBlock> {
        let held = self.blocks.remove(hash)?;
        self.bytes = self.bytes.saturating_sub(held.block.encoded_len());
        self.eviction.remove(&(held.work, held.arrival, *hash));
        let parent = held.block.header.previous;
        if let Some(siblings) = self.by_parent.get_mut(&parent) {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.by_parent.remove(&parent);
            }
        }
        Some(held)
    }

    /// Takes a block and all its held descendants out; returns their hashes.
    pub(crate) fn remove_with_descendants(&mut self, hash: &BlockHash) -> Vec<BlockHash> {
        let mut removed = Vec::new();
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            if let Some(kids) = self.by_parent.get(&h) {
                stack.extend(kids.iter().copied());
            }
            if self.remove(&h).is_some() {
                removed.push(h);
            }
        }
        removed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::block::{Coinbase, HEADER_VERSION};
    use tally_core::{Amount, Digest, NetworkId};

    fn block(previous: BlockHash, nonce: u64) -> Block {
        Block {
            header: BlockHeader {
                version: HEADER_VERSION,
                network: NetworkId(Digest::default()),
                height: 1,
                previous,
                merkle_root: Digest::default(),
                timestamp_ms: 0,
                target: U256::MAX,
                nonce,
            },
            coinbase: Coinbase {
                miner: tally_core::SecretKey::from_bytes([1; 32]).account(),
                amount: Amount::ZERO,
                height: 1,
            },
            transactions: vec![],
        }
    }

    #[test]
    fn the_least_work_goes_first_with_its_descendants() {
        let mut pool = HeldBlocks::new(3, usize::MAX);
        let base = block(Digest::default(), 1);
        let base_hash = base.hash();
        let kid = block(base_hash, 2);
        let kid_hash = kid.hash();
        assert!(
            pool.insert(base_hash, base, U256::from_u64(10), false)
                .unwrap()
                .is_empty()
        );
        assert!(
            pool.insert(kid_hash, kid, U256::from_u64(20), false)
                .unwrap()
                .is_empty()
        );
        let heavy = block(Digest::default(), 3);
        let heavy_hash = heavy.hash();
        assert!(
            pool.insert(heavy_hash, heavy, U256::from_u64(100), false)
                .unwrap()
                .is_empty()
        );
        // A fourth block overflows: the least-work block goes, and its child with it.
        let other = block(Digest::default(), 4);
        let other_hash = other.hash();
        let mut evicted = pool
            .insert(other_hash, other, U256::from_u64(50), false)
            .unwrap();
        evicted.sort();
        let mut expected = vec![base_hash, kid_hash];
        expected.sort();
        assert_eq!(evicted, expected);
        assert_eq!(pool.len(), 2);
        assert!(pool.contains(&heavy_hash) && pool.contains(&other_hash));
    }

    #[test]
    fn bytes_are_bounded_and_counted_back() {
        let one = block(Digest::default(), 1);
        let size = one.encoded_len();
        let mut pool = HeldBlocks::new(100, 2 * size);
        for nonce in 1..=5 {
            let b = block(Digest::default(), nonce);
            // Each block has more work than those held: it takes the place of the least.
            assert!(
                pool.insert(b.hash(), b, U256::from_u64(nonce), false)
                    .is_some()
            );
            assert!(pool.bytes() <= 2 * size);
        }
        assert_eq!(pool.len(), 2);
        let survivors: Vec<BlockHash> = pool.blocks.keys().copied().collect();
        for hash in survivors {
            pool.remove(&hash);
        }
        assert_eq!(pool.bytes(), 0);
        assert!(pool.eviction.is_empty() && pool.by_parent.is_empty());
    }

    /// A chain of `count` distinct blocks on `from`, parent first.
    fn branch(from: BlockHash, salt: u64, count: u64) -> Vec<Block> {
        let mut parent = from;
        (0..count)
            .map(|i| {
                let b = block(parent, salt * 1_000 + i);
                parent = b.hash();
                b
            })
            .collect()
    }

    #[test]
    fn a_branch_longer_than_the_pool_keeps_its_first_blocks_and_the_next_is_refused() {
        let mut pool = HeldBlocks::new(3, usize::MAX);
        let blocks = branch(Digest::default(), 1, 4);
        for (i, b) in blocks.iter().take(3).enumerate() {
            let work = U256::from_u64(10 * (i as u64 + 1));
            assert_eq!(pool.insert(b.hash(), b.clone(), work, false), Some(vec![]));
        }
        // The fourth block would have to evict its own base (the least work), and with
        // it the whole branch: it is refused instead, and the branch stays.
        let fourth = &blocks[3];
        assert_eq!(
            pool.insert(fourth.hash(), fourth.clone(), U256::from_u64(40), false),
            None
        );
        assert_eq!(pool.len(), 3);
        assert!(blocks[..3].iter().all(|b| pool.contains(&b.hash())));
        assert!(!pool.contains(&fourth.hash()));
        assert_eq!(pool.bytes(), 3 * fourth.encoded_len());
        assert_eq!(pool.eviction.len(), 3);

        // The same under a byte bound.
        let size = fourth.encoded_len();
        let mut pool = HeldBlocks::new(100, 2 * size);
        for (i, b) in blocks.iter().take(2).enumerate() {
            let work = U256::from_u64(10 * (i as u64 + 1));
            assert_eq!(pool.insert(b.hash(), b.clone(), work, false), Some(vec![]));
        }
        assert_eq!(
            pool.insert(
                blocks[2].hash(),
                blocks[2].clone(),
                U256::from_u64(30),
                false
            ),
            None
        );
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.bytes(), 2 * size);
    }

    #[test]
    fn a_heavier_branch_grows_by_evicting_a_cheaper_one_never_its_own_ancestors() {
        let mut pool = HeldBlocks::new(4, usize::MAX);
        // A cheap branch of two blocks, then a heavier one of two.
        let cheap = branch(Digest::default(), 1, 2);
        let heavy = branch(Digest::default(), 2, 3);
        for (i, b) in cheap.iter().enumerate() {
            let work = U256::from_u64(i as u64 + 1);
            assert_eq!(pool.insert(b.hash(), b.clone(), work, false), Some(vec![]));
        }
        for (i, b) in heavy.iter().take(2).enumerate() {
            let work = U256::from_u64(100 * (i as u64 + 1));
            assert_eq!(pool.insert(b.hash(), b.clone(), work, false), Some(vec![]));
        }
        // The heavy branch's third block evicts the cheap branch (base and child).
        let mut evicted = pool
            .insert(
                heavy[2].hash(),
                heavy[2].clone(),
                U256::from_u64(300),
                false,
            )
            .unwrap();
        evicted.sort();
        let mut expected = vec![cheap[0].hash(), cheap[1].hash()];
        expected.sort();
        assert_eq!(evicted, expected);
        assert!(heavy.iter().all(|b| pool.contains(&b.hash())));

        // A block cheaper than every other held block would be the first to go: refused,
        // and nothing is evicted for it.
        let cheaper = block(Digest::default(), 99);
        assert_eq!(
            pool.insert(cheaper.hash(), cheaper.clone(), U256::from_u64(1), false),
            Some(vec![])
        );
        let cheapest = block(Digest::default(), 98);
        assert_eq!(
            pool.insert(cheapest.hash(), cheapest, U256::from_u64(0), false),
            None
        );
        assert_eq!(pool.len(), 4);
        assert!(pool.contains(&cheaper.hash()));
    }
}
