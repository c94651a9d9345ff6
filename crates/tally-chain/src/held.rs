//! Blocks of low-work side branches, held in memory instead of written to disk.
//!
//! Early in a chain's history the target is easy, so a fork from deep history costs
//! almost nothing per block; were every such block stored, anyone could fill our disk.
//! A block whose branch is far behind the tip (see [`crate::ChainConfig::store_margin`]) is
//! therefore only held here, bounded in count and bytes, until its branch either catches
//! up (then the whole branch is written in one commit) or is evicted. Nothing here is
//! durable: after a restart, held blocks are simply fetched again.

use std::collections::{BTreeSet, HashMap};

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
    /// Returns every hash evicted (possibly `hash` itself).
    pub(crate) fn insert(
        &mut self,
        hash: BlockHash,
        block: Block,
        work: U256,
        signatures_checked: bool,
    ) -> Vec<BlockHash> {
        if self.blocks.contains_key(&hash) {
            return Vec::new();
        }
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.bytes = self.bytes.saturating_add(block.encoded_len());
        self.by_parent
            .entry(block.header.previous)
            .or_default()
            .push(hash);
        self.eviction.insert((work, arrival, hash));
        self.blocks.insert(
            hash,
            HeldBlock {
                block,
                work,
                signatures_checked,
                arrival,
            },
        );
        let mut evicted = Vec::new();
        while self.blocks.len() > self.max_blocks || self.bytes > self.max_bytes {
            let Some(&(_, _, victim)) = self.eviction.first() else {
                break;
            };
            evicted.extend(self.remove_with_descendants(&victim));
        }
        evicted
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
                .is_empty()
        );
        assert!(
            pool.insert(kid_hash, kid, U256::from_u64(20), false)
                .is_empty()
        );
        let heavy = block(Digest::default(), 3);
        let heavy_hash = heavy.hash();
        assert!(
            pool.insert(heavy_hash, heavy, U256::from_u64(100), false)
                .is_empty()
        );
        // A fourth block overflows: the least-work block goes, and its child with it.
        let other = block(Digest::default(), 4);
        let other_hash = other.hash();
        let mut evicted = pool.insert(other_hash, other, U256::from_u64(50), false);
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
            pool.insert(b.hash(), b, U256::from_u64(nonce), false);
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
}
