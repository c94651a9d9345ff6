//! Moving the tip: undoing the main chain down to the fork point and applying the new
//! branch in one commit, and recording a branch found invalid when connected.

use std::collections::{HashMap, HashSet};

use tally_core::AccountId;
use tracing::{debug, info, warn};

use super::{Chain, TipChange};
use crate::block::{Block, BlockHash, Transaction};
use crate::error::{BlockError, ChainError, StoreError, invalid};
use crate::state::{Overlay, Undo, merge};
use crate::store::{ChainStore, WriteBatch};

impl<S: ChainStore> Chain<S> {
    /// Makes `candidate` (just added to the index, with its not yet stored ancestors and
    /// itself in `fresh`, oldest first) the tip: undo the main chain down to the fork
    /// point, apply the candidate's branch, all in an overlay, then commit everything, the
    /// fresh blocks included, in one write transaction. If a block of the branch breaks a
    /// rule, it and its descendants are marked invalid (the fresh blocks before it are
    /// stored as side-branch blocks) and the tip stays (or moves to the best valid block
    /// left, if that has more work).
    pub(super) fn activate(
        &mut self,
        candidate: BlockHash,
        fresh: Vec<Block>,
    ) -> Result<Option<TipChange>, ChainError> {
        match self.try_reorganise(candidate, &fresh) {
            Ok(change) => Ok(Some(change)),
            Err(Failure::Store(e)) => {
                for block in fresh.iter().rev() {
                    self.forget(&block.hash());
                }
                Err(e.into())
            }
            Err(Failure::Invalid { hash, error }) => {
                warn!(%hash, %error, "block failed when connected");
                if let Err(e) = self.mark_invalid(hash, &fresh) {
                    // Nothing was written: the fresh blocks were never stored, so they
                    // leave the index as after any failed commit.
                    for block in fresh.iter().rev() {
                        self.forget(&block.hash());
                    }
                    return Err(e.into());
                }
                // Fall back to the best valid block, if it beats the tip.
                let mut extra = None;
                while let Some(best) = self.best_valid_candidate() {
                    match self.try_reorganise(best, &[]) {
                        Ok(change) => {
                            extra = Some(change);
                            break;
                        }
                        Err(Failure::Invalid { hash, error }) => {
                            warn!(%hash, %error, "block failed when connected");
                            self.mark_invalid(hash, &[])?;
                        }
                        Err(Failure::Store(e)) => return Err(e.into()),
                    }
                }
                if let Some(change) = extra {
                    info!(tip = %change.new_tip, height = change.height, "tip moved to the best valid block");
                }
                Err(invalid(hash, error))
            }
        }
    }

    /// The valid block with the most work, if it has more than the tip.
    fn best_valid_candidate(&self) -> Option<BlockHash> {
        let tip_work = self.tip().work;
        self.index
            .iter()
            .filter(|(_, e)| !e.invalid && e.work > tip_work)
            .max_by(|a, b| a.1.work.cmp(&b.1.work).then_with(|| b.0.cmp(a.0)))
            .map(|(hash, _)| *hash)
    }

    fn try_reorganise(
        &mut self,
        candidate: BlockHash,
        fresh: &[Block],
    ) -> Result<TipChange, Failure> {
        let fresh: HashMap<BlockHash, &Block> = fresh.iter().map(|b| (b.hash(), b)).collect();
        // The branch from the fork point up to the candidate.
        let mut branch = Vec::new();
        let mut current = candidate;
        while !self.is_on_main_chain(&current) {
            let Some(entry) = self.index.get(&current) else {
                return Err(Failure::Store(StoreError::Corrupt {
                    table: "headers",
                    detail: format!("block {current} has no stored ancestry"),
                }));
            };
            branch.push(current);
            current = entry.header.previous;
        }
        branch.reverse();
        let fork_height = self
            .index
            .get(&current)
            .map(|e| e.header.height)
            .unwrap_or(0);
        let old_tip = self.tip_hash();
        let old_height = self.height();

        let mut overlay = Overlay::new(&self.accounts, &self.escrows);
        let mut batch = WriteBatch::default();
        let mut disconnected = Vec::new();
        let mut returned = Vec::new();
        for height in (fork_height + 1..=old_height).rev() {
            let Some(hash) = self.hash_at(height) else {
                break;
            };
            let undo = self
                .store
                .undo(&hash)
                .map_err(Failure::Store)?
                .ok_or_else(|| missing("undo", &hash))?;
            let block = self
                .store
                .block(&hash)
                .map_err(Failure::Store)?
                .ok_or_else(|| missing("blocks", &hash))?;
            overlay.undo_block(&undo);
            returned.extend(block.transactions);
            disconnected.push(hash);
        }

        let mut connected = Vec::with_capacity(branch.len());
        for hash in &branch {
            let stored;
            let is_fresh = fresh.contains_key(hash);
            let block = match fresh.get(hash) {
                Some(b) => *b,
                None => {
                    stored = self
                        .store
                        .block(hash)
                        .map_err(Failure::Store)?
                        .ok_or_else(|| missing("blocks", hash))?;
                    &stored
                }
            };
            let median_time = self.median_time_past(&block.header.previous);
            let undo: Undo = overlay
                .apply_block(block, median_time)
                .map_err(|error| Failure::Invalid { hash: *hash, error })?;
            let height = block.header.height;
            batch.undo.push((*hash, undo.encode()));
            batch.main_set.push((height, *hash));
            if is_fresh {
                batch.blocks.push((*hash, block.header, block.encode()));
            }
            connected.push((*hash, height, block.transactions.clone()));
        }
        let changes = overlay.into_changes();
        batch.accounts = changes.accounts;
        batch.escrows = changes.escrows;
        batch.main_truncate_above = Some(fork_height);
        batch.tip = Some(candidate);
        self.store.commit(&batch).map_err(Failure::Store)?;

        // Committed: now bring memory in line.
        // Every account whose confirmed state moved (senders, recipients, miners, on either
        // branch): its pending transactions are checked again against the new tip.
        let mut touched: HashSet<AccountId> = batch.accounts.keys().copied().collect();
        merge(&mut self.accounts, std::mem::take(&mut batch.accounts));
        self.escrows.merge(std::mem::take(&mut batch.escrows));
        self.main.truncate(fork_height as usize + 1);
        self.main.extend(branch.iter().copied());
        for tx in &returned {
            self.mempool.insert_returned(tx.clone());
            touched.extend(tx.signer());
            // A claim undone keeps its secret known here, mined again or not (the other
            // side of a wire may need it).
            if let tally_core::Order::EscrowClaim(claim) = &tx.order {
                self.revealed.insert(claim.secret);
            }
        }
        self.recent.truncate_above(fork_height);
        for (_, height, txs) in &connected {
            touched.extend(txs.iter().filter_map(Transaction::signer));
            self.recent.push(*height, txs);
        }
        for account in &touched {
            let state = self.account(account);
            self.mempool.revalidate(account, state);
        }
        self.revalidate_escrow_orders();
        let returned_to_mempool = returned.iter().filter(|tx| self.is_pending(tx)).count();
        let change = TipChange {
            old_tip,
            new_tip: candidate,
            height: self.height(),
            disconnected,
            connected: connected.into_iter().map(|(h, _, _)| h).collect(),
            returned_to_mempool,
        };
        if change.is_reorg() {
            info!(
                from = %old_tip,
                to = %candidate,
                fork_height,
                undone = change.disconnected.len(),
                applied = change.connected.len(),
                returned = returned_to_mempool,
                "reorganised"
            );
        } else {
            debug!(tip = %candidate, height = change.height, "tip extended");
        }
        Ok(change)
    }

    /// Marks `hash` and every known descendant invalid, durably, in one commit with the
    /// blocks of `fresh` (indexed, not yet stored) that stay valid, stored as side-branch
    /// blocks: every indexed block must be on disk. Memory changes only once the commit
    /// succeeded; if it fails, no flag is set and the caller forgets `fresh`.
    pub(super) fn mark_invalid(
        &mut self,
        hash: BlockHash,
        fresh: &[Block],
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let mut condemned = HashSet::new();
        let mut stack = vec![hash];
        while let Some(h) = stack.pop() {
            if let Some(entry) = self.index.get(&h)
                && condemned.insert(h)
            {
                batch.invalid.push((h, entry.header));
            }
            if let Some(kids) = self.children.get(&h) {
                stack.extend(kids.iter().copied());
            }
        }
        for block in fresh {
            let h = block.hash();
            if !condemned.contains(&h) {
                batch.blocks.push((h, block.header, block.encode()));
            }
        }
        self.store.commit(&batch)?;
        for h in &condemned {
            if let Some(entry) = self.index.get_mut(h) {
                entry.invalid = true;
            }
        }
        Ok(())
    }

    /// Drops a block from the index (its commit failed).
    pub(super) fn forget(&mut self, hash: &BlockHash) {
        if let Some(entry) = self.index.remove(hash)
            && let Some(kids) = self.children.get_mut(&entry.header.previous)
        {
            kids.retain(|k| k != hash);
        }
    }
}
enum Failure {
    Invalid { hash: BlockHash, error: BlockError },
    Store(StoreError),
}
fn missing(table: &'static str, hash: &BlockHash) -> Failure {
    Failure::Store(StoreError::Corrupt {
        table,
        detail: format!("no record for main-chain block {hash}"),
    })
}
