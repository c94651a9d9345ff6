//! Blocks whose parent is unknown, held until it arrives.
//!
//! A block that arrives before its parent (gossip out of order, a sync from a peer that is
//! ahead) cannot be checked against anything yet, so it waits here, bounded in count and
//! bytes, oldest evicted first. Nothing here is durable: after a restart, orphans are
//! simply fetched again.

use std::collections::{HashMap, VecDeque};

use tally_core::Encode;

use crate::block::{Block, BlockHash};

/// The bounded pool of orphans, keyed by hash and by their missing parent.
pub(crate) struct OrphanPool {
    /// Held blocks, and whether their signatures were checked.
    blocks: HashMap<BlockHash, (Block, bool)>,
    by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    /// Arrival order: the oldest is evicted first.
    order: VecDeque<BlockHash>,
    bytes: usize,
    max_blocks: usize,
    max_bytes: usize,
}

impl OrphanPool {
    pub(crate) fn new(max_blocks: usize, max_bytes: usize) -> Self {
        OrphanPool {
            blocks: HashMap::new(),
            by_parent: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_blocks,
            max_bytes,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    pub(crate) fn contains(&self, hash: &BlockHash) -> bool {
        self.blocks.contains_key(hash)
    }

    /// The held children of `parent`, in arrival order.
    pub(crate) fn children(&self, parent: &BlockHash) -> Vec<BlockHash> {
        self.by_parent.get(parent).cloned().unwrap_or_default()
    }

    /// Holds `block`, evicting the oldest orphans until it fits; a block larger than the
    /// whole pool (or any block, when the pool holds none) is not held.
    pub(crate) fn hold(&mut self, hash: BlockHash, block: Block, signatures_checked: bool) {
        let size = block.encoded_len();
        while !self.order.is_empty()
            && (self.blocks.len() >= self.max_blocks
                || self.bytes.saturating_add(size) > self.max_bytes)
        {
            if let Some(oldest) = self.order.pop_front() {
                self.remove(&oldest);
            }
        }
        if self.max_blocks == 0 || size > self.max_bytes {
            return;
        }
        self.by_parent
            .entry(block.header.previous)
            .or_default()
            .push(hash);
        self.order.push_back(hash);
        self.bytes += size;
        self.blocks.insert(hash, (block, signatures_checked));
    }

    /// The held descendants of `hash` whose signatures are not verified yet, parents before
    /// children, at most `limit` of them.
    pub(crate) fn unchecked_descendants(&self, hash: &BlockHash, limit: usize) -> Vec<Block> {
        let mut out = Vec::new();
        let mut queue = VecDeque::from([*hash]);
        while let Some(parent) = queue.pop_front() {
            for kid in self.by_parent.get(&parent).into_iter().flatten() {
                if out.len() >= limit {
                    return out;
                }
                if let Some((block, checked)) = self.blocks.get(kid) {
                    if !checked {
                        out.push(block.clone());
                    }
                    queue.push_back(*kid);
                }
            }
        }
        out
    }

    /// Records that a held block's signatures were verified.
    pub(crate) fn mark_checked(&mut self, hash: &BlockHash) {
        if let Some((_, checked)) = self.blocks.get_mut(hash) {
            *checked = true;
        }
    }

    /// Takes a held block out, with whether its signatures were checked.
    pub(crate) fn remove(&mut self, hash: &BlockHash) -> Option<(Block, bool)> {
        let (block, checked) = self.blocks.remove(hash)?;
        self.bytes = self.bytes.saturating_sub(block.encoded_len());
        if let Some(siblings) = self.by_parent.get_mut(&block.header.previous) {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.by_parent.remove(&block.header.previous);
            }
        }
        self.order.retain(|h| h != hash);
        Some((block, checked))
    }

    /// Drops every held descendant of `hash` (not `hash` itself) and returns their hashes.
    pub(crate) fn remove_descendants(&mut self, hash: BlockHash) -> Vec<BlockHash> {
        let mut dropped = Vec::new();
        let mut stack = vec![hash];
        while let Some(parent) = stack.pop() {
            for kid in self.by_parent.remove(&parent).unwrap_or_default() {
                self.remove(&kid);
                dropped.push(kid);
                stack.push(kid);
            }
        }
        dropped
    }
}
