//! Placing an arriving block: a duplicate, an orphan to hold until its parent arrives, a
//! low-work side-branch block to hold in memory, a block to store (moving the tip when its
//! branch leads), or a refusal; then the orphans it lets in.

use std::collections::VecDeque;

use tracing::{debug, warn};

use super::{BlockOutcome, Chain, Entry, MAX_REJECTED, TipChange};
use crate::block::{Block, BlockHash, BlockHeader};
use crate::checks::{CheckedBlock, check_context_free, check_signatures, decode_block};
use crate::consensus::work;
use crate::error::{BlockError, ChainError, invalid};
use crate::store::{ChainStore, WriteBatch};
use crate::u256::U256;

impl<S: ChainStore> Chain<S> {
    /// Checks a block fully and stores it, moving the tip if its branch now has the most
    /// work (reorganising if needed), then connects any held orphans that descend from it.
    ///
    /// `now_ms` is the local clock, for the "not too far in the future" rule. On
    /// `Err(ChainError::Invalid)` the block broke a rule; the tip may still have moved to
    /// a valid part of a heavier branch in that case, which [`Chain::tip`] shows.
    pub fn accept_block(&mut self, block: Block, now_ms: u64) -> Result<BlockOutcome, ChainError> {
        let hash = block.hash();
        if let Some(known) = self.known_outcome(&hash) {
            return known;
        }
        // An orphan's target is all the work it is known to carry, and it is a header
        // field: refuse a too-easy one before hashing its transactions.
        let parent = &block.header.previous;
        if !self.index.contains_key(parent) && !self.held.contains(parent) {
            self.check_orphan_target(&block)
                .map_err(|error| invalid(hash, error))?;
        }
        check_context_free(&self.params, &block, &hash).map_err(|error| invalid(hash, error))?;
        self.accept_inner(hash, block, false, now_ms)
    }

    /// Accepts a block that [`check_block`] already checked (signatures included), so the
    /// node can check the next block of a sync on other threads while this one is applied
    /// and committed.
    pub fn accept_checked(
        &mut self,
        checked: CheckedBlock,
        now_ms: u64,
    ) -> Result<BlockOutcome, ChainError> {
        let CheckedBlock { block, hash } = checked;
        if block.header.network != self.params.network {
            // Checked against another network's parameters: check again here.
            return self.accept_block(block, now_ms);
        }
        if let Some(known) = self.known_outcome(&hash) {
            return known;
        }
        self.accept_inner(hash, block, true, now_ms)
    }

    pub(super) fn known_outcome(
        &self,
        hash: &BlockHash,
    ) -> Option<Result<BlockOutcome, ChainError>> {
        if let Some(entry) = self.index.get(hash) {
            if entry.invalid {
                return Some(Err(invalid(*hash, BlockError::KnownInvalid(*hash))));
            }
            return Some(Ok(BlockOutcome::Duplicate));
        }
        if self.orphans.contains(hash) || self.held.contains(hash) {
            return Some(Ok(BlockOutcome::Duplicate));
        }
        if self.rejected.contains(hash) {
            return Some(Err(invalid(*hash, BlockError::KnownInvalid(*hash))));
        }
        None
    }

    pub(super) fn accept_inner(
        &mut self,
        hash: BlockHash,
        block: Block,
        signatures_checked: bool,
        now_ms: u64,
    ) -> Result<BlockOutcome, ChainError> {
        let parent = block.header.previous;
        match self.index.get(&parent) {
            None if self.held.contains(&parent) => {}
            None => {
                if self.rejected.contains(&parent) {
                    self.remember_rejected(hash);
                    return Err(invalid(hash, BlockError::InvalidAncestor(parent)));
                }
                // Not remembered as rejected: the same block may be worth holding once we
                // have caught up with the sender's chain.
                self.check_orphan_target(&block)
                    .map_err(|error| invalid(hash, error))?;
                debug!(%hash, %parent, "orphan block held");
                self.orphans.hold(hash, block, signatures_checked);
                return Ok(BlockOutcome::Orphan {
                    missing_parent: parent,
                });
            }
            Some(entry) if entry.invalid => {
                self.remember_rejected(hash);
                return Err(invalid(hash, BlockError::InvalidAncestor(parent)));
            }
            Some(_) => {}
        }
        let height = block.header.height;
        let tip_change = self.accept_with_parent(hash, block, signatures_checked, now_ms)?;
        let (adopted, more) = self.adopt_orphans(hash, now_ms)?;
        let tip_change = match (tip_change, more) {
            (Some(a), Some(b)) => Some(a.then(b)),
            (a, b) => a.or(b),
        };
        // Held, unless orphans that it let in carried its branch past the margin.
        if !self.index.contains_key(&hash) {
            if self.held.contains(&hash) {
                return Ok(BlockOutcome::Held { height });
            }
            // An adopted orphan's branch caught up and a signature check condemned this
            // block or an ancestor of it.
            if self.rejected.contains(&hash) {
                return Err(invalid(hash, BlockError::KnownInvalid(hash)));
            }
            return Err(invalid(hash, BlockError::HeldPoolFull));
        }
        Ok(BlockOutcome::Stored {
            height,
            tip_change,
            adopted_orphans: adopted,
        })
    }

    /// Refuses an orphan whose header's target is easier than
    /// [`ChainConfig::orphan_target_multiple`] times the next target on our tip: its
    /// parent is unknown, so that target is all the work it is known to carry.
    pub(super) fn check_orphan_target(&self, block: &Block) -> Result<(), BlockError> {
        let limit = self
            .next_target()
            .mul_div(self.config.orphan_target_multiple, 1)
            .unwrap_or(U256::MAX);
        if block.header.target > limit {
            return Err(BlockError::OrphanTargetTooEasy {
                limit,
                got: block.header.target,
            });
        }
        Ok(())
    }

    /// Decodes and accepts a block's canonical bytes (peers send these).
    pub fn accept_block_bytes(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<BlockOutcome, ChainError> {
        let block = decode_block(&self.params, bytes)?;
        self.accept_block(block, now_ms)
    }

    /// Header rules against the parent (stored or held), then places the block: a branch
    /// far behind the tip is held in memory without any signature check; otherwise every
    /// signature of the block and of its held ancestors is checked (unless already), and
    /// they are stored together, moving the tip if the branch now leads. Returns the tip
    /// change, if any; the block is in the index exactly when it was stored.
    pub(super) fn accept_with_parent(
        &mut self,
        hash: BlockHash,
        block: Block,
        signatures_checked: bool,
        now_ms: u64,
    ) -> Result<Option<TipChange>, ChainError> {
        if let Err(error) = self.check_against_parent(&block, now_ms) {
            // Past the merkle check the hash pins the whole block, so remember it (unless
            // it may become valid later).
            if error.is_peer_fault() {
                self.remember_rejected(hash);
            }
            return Err(invalid(hash, error));
        }
        let parent = block.header.previous;
        let parent_work = self.known_work(&parent).unwrap_or_default();
        let block_work = parent_work.saturating_add(&work(&block.header.target));
        if block_work < self.store_threshold() {
            let height = block.header.height;
            // Its held ancestors are never evicted for it; if it would have to go itself,
            // it is refused (not remembered: it may fit later) and its branch stays held.
            let Some(evicted) = self
                .held
                .insert(hash, block, block_work, signatures_checked)
            else {
                debug!(%hash, height, "held pool full; low-work side-branch block refused");
                return Err(invalid(hash, BlockError::HeldPoolFull));
            };
            debug!(%hash, height, "low-work side-branch block held");
            if !evicted.is_empty() {
                debug!(count = evicted.len(), "held blocks evicted");
            }
            return Ok(None);
        }

        // The held ancestors, oldest first, then the block: all are stored together.
        let mut branch = Vec::new();
        let mut current = parent;
        while let Some(held) = self.held.get(&current) {
            branch.push((current, held.signatures_checked));
            current = held.block.header.previous;
        }
        branch.reverse();
        // The held branch hangs from a stored block; if that was found invalid since, the
        // branch is invalid too.
        if self.index.get(&current).is_some_and(|e| e.invalid) {
            let base = branch.first().map_or(hash, |(h, _)| *h);
            for dropped in self.held.remove_with_descendants(&base) {
                self.remember_rejected(dropped);
            }
            self.remember_rejected(hash);
            return Err(invalid(hash, BlockError::InvalidAncestor(current)));
        }
        for (ancestor, checked) in &branch {
            if *checked {
                continue;
            }
            let result = match self.held.get(ancestor) {
                Some(held) => check_signatures(&self.params, &self.keys, &held.block),
                None => Ok(()),
            };
            match result {
                Ok(()) => self.held.mark_checked(ancestor),
                Err(error) => {
                    warn!(hash = %ancestor, %error, "held block failed when its branch caught up");
                    for dropped in self.held.remove_with_descendants(ancestor) {
                        self.remember_rejected(dropped);
                    }
                    self.remember_rejected(hash);
                    return Err(invalid(*ancestor, error));
                }
            }
        }
        if !signatures_checked
            && let Err(error) = check_signatures(&self.params, &self.keys, &block)
        {
            self.remember_rejected(hash);
            return Err(invalid(hash, error));
        }
        let mut fresh = Vec::with_capacity(branch.len() + 1);
        for (ancestor, _) in &branch {
            if let Some(held) = self.held.remove(ancestor) {
                self.insert_entry(*ancestor, held.block.header, held.work);
                fresh.push(held.block);
            }
        }
        self.insert_entry(hash, block.header, block_work);
        fresh.push(block);

        if block_work <= self.tip().work {
            let batch = WriteBatch {
                blocks: fresh
                    .iter()
                    .map(|b| (b.hash(), b.header, b.encode()))
                    .collect(),
                ..WriteBatch::default()
            };
            if let Err(e) = self.store.commit(&batch) {
                for b in fresh.iter().rev() {
                    self.forget(&b.hash());
                }
                return Err(e.into());
            }
            debug!(%hash, blocks = fresh.len(), "side-branch block stored");
            return Ok(None);
        }
        self.activate(hash, fresh)
    }

    pub(super) fn insert_entry(&mut self, hash: BlockHash, header: BlockHeader, work: U256) {
        self.index.insert(
            hash,
            Entry {
                header,
                work,
                invalid: false,
            },
        );
        self.children.entry(header.previous).or_default().push(hash);
    }

    /// The least cumulative work a side branch needs to be stored: what the main chain had
    /// [`ChainConfig::store_margin`] blocks below the tip.
    pub(super) fn store_threshold(&self) -> U256 {
        let height = self.height().saturating_sub(self.config.store_margin);
        self.hash_at(height)
            .and_then(|hash| self.index.get(&hash))
            .map(|e| e.work)
            .unwrap_or_default()
    }

    /// The cumulative work of a stored or held block.
    pub(super) fn known_work(&self, hash: &BlockHash) -> Option<U256> {
        match self.index.get(hash) {
            Some(entry) => Some(entry.work),
            None => self.held.get(hash).map(|held| held.work),
        }
    }

    /// The held ancestors of `block` whose signatures are not verified yet, oldest first:
    /// what accepting `block` would otherwise verify while the caller holds the chain (up
    /// to a whole held branch, when `block` lets it catch up). A node verifies them first
    /// on other threads with [`check_block`] and hands them to
    /// [`Chain::note_checked_held`], so the chain's lock is held only to apply and commit.
    pub fn unchecked_held_ancestors(&self, block: &Block) -> Vec<Block> {
        let mut out = Vec::new();
        let mut current = block.header.previous;
        while let Some(held) = self.held.get(&current) {
            if !held.signatures_checked {
                out.push(held.block.clone());
            }
            current = held.block.header.previous;
        }
        out.reverse();
        out
    }

    /// The orphans accepting the block `hash` would adopt (its held descendants, parents
    /// first, at most `limit`) whose signatures are not verified yet: like
    /// [`Chain::unchecked_held_ancestors`], for a node to verify on other threads before it
    /// takes the chain's lock, and hand to [`Chain::note_checked_held`].
    pub fn unchecked_orphans_of(&self, hash: &BlockHash, limit: usize) -> Vec<Block> {
        self.orphans.unchecked_descendants(hash, limit)
    }

    /// Records that held blocks' or orphans' signatures were verified ([`check_block`]:
    /// the hash pins the bytes, network included); blocks no longer held are ignored.
    pub fn note_checked_held(&mut self, checked: &[CheckedBlock]) {
        for block in checked {
            self.orphans.mark_checked(&block.hash);
            if self.held.contains(&block.hash) {
                self.held.mark_checked(&block.hash);
            }
        }
    }

    /// Whether `block` is worth verifying the signatures of before [`Chain::accept_checked`]:
    /// its parent is known and valid, its header passes the rules against the parent
    /// (height, expected target, timestamps), and its branch has enough work to be stored.
    /// Those rules are what make a block cost work (the header's own target is the sender's
    /// choice), so a node checks them before it spends a signature check per transaction.
    /// Blocks that do not fit go to [`Chain::accept_block`], which refuses them, or holds
    /// them (orphans, low-work side branches), before any signature check (a held block's
    /// signatures are checked when its parent arrives or its branch catches up).
    pub fn fits_parent(&self, block: &Block, now_ms: u64) -> bool {
        let parent = &block.header.previous;
        let parent_valid = match self.index.get(parent) {
            Some(entry) => !entry.invalid,
            None => self.held.contains(parent),
        };
        parent_valid
            && self.check_against_parent(block, now_ms).is_ok()
            && self
                .known_work(parent)
                .unwrap_or_default()
                .saturating_add(&work(&block.header.target))
                >= self.store_threshold()
    }

    pub(super) fn remember_rejected(&mut self, hash: BlockHash) {
        if self.rejected.len() >= MAX_REJECTED {
            self.rejected.clear();
        }
        self.rejected.insert(hash);
    }

    /// Connects held orphans descending from `parent`, breadth first. Orphans whose parent
    /// is no longer known (a low-work block that the held pool evicted since, for a
    /// heavier one) stay in the orphan pool, waiting for it again: a missing parent is no
    /// fault of theirs. Only a parent found invalid condemns them. A store failure is
    /// passed up (the node must stop), not taken for the orphan's fault.
    pub(super) fn adopt_orphans(
        &mut self,
        parent: BlockHash,
        now_ms: u64,
    ) -> Result<(Vec<BlockHash>, Option<TipChange>), ChainError> {
        let mut adopted = Vec::new();
        let mut change: Option<TipChange> = None;
        let mut queue = VecDeque::from([parent]);
        while let Some(parent) = queue.pop_front() {
            let kids = self.orphans.children(&parent);
            for hash in kids {
                // Checked before each child: adopting one may evict or condemn the parent.
                if !self.index.contains_key(&parent) && !self.held.contains(&parent) {
                    if self.rejected.contains(&parent) {
                        self.orphans.remove(&hash);
                        self.remember_rejected(hash);
                        self.drop_orphan_descendants(hash, true);
                        continue;
                    }
                    break;
                }
                let Some((block, checked)) = self.orphans.remove(&hash) else {
                    continue;
                };
                match self.accept_with_parent(hash, block, checked, now_ms) {
                    Ok(next) => {
                        // Held blocks (low-work branch) are not connected, but orphans
                        // may still extend them.
                        if self.index.contains_key(&hash) {
                            adopted.push(hash);
                        }
                        queue.push_back(hash);
                        change = match (change, next) {
                            (Some(a), Some(b)) => Some(a.then(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    Err(ChainError::Store(error)) => return Err(ChainError::Store(error)),
                    Err(error) => {
                        warn!(%hash, %error, "held orphan rejected");
                        let condemned = error.block_error().is_some_and(BlockError::is_peer_fault);
                        self.drop_orphan_descendants(hash, condemned);
                    }
                }
            }
        }
        Ok((adopted, change))
    }

    /// Drops the held descendants of a block that failed; `condemned` remembers them as
    /// invalid (not when the failure may pass later, like a timestamp ahead of our clock).
    pub(super) fn drop_orphan_descendants(&mut self, hash: BlockHash, condemned: bool) {
        for kid in self.orphans.remove_descendants(hash) {
            if condemned {
                self.remember_rejected(kid);
            }
        }
    }
}
