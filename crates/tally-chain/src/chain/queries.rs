//! What the node and wallets ask the chain: the tip, blocks and headers, locators and fork
//! points for a sync, accounts and the fate of transactions.

use std::sync::Arc;

use tally_core::{AccountId, Amount, Encode, KeyCache, Order, Settlement};

use super::{Chain, TipInfo, TxStatus};
use crate::block::{Block, BlockHash, BlockHeader, Transaction};
use crate::consensus::ChainParams;
use crate::error::StoreError;
use crate::mempool::Mempool;
use crate::state::{AccountState, Accounts, total_balance};
use crate::store::ChainStore;
use crate::u256::U256;

impl<S: ChainStore> Chain<S> {
    /// The consensus parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The cache of decompressed signer keys this chain's signature checks use. A node
    /// clones the handle to pass to [`check_block`] and [`check_transactions`] when it runs
    /// them without holding the chain.
    pub fn key_cache(&self) -> &Arc<KeyCache> {
        &self.keys
    }

    /// The main chain's tip.
    pub fn tip(&self) -> TipInfo {
        let hash = self.tip_hash();
        let entry = self.index.get(&hash);
        TipInfo {
            hash,
            height: self.height(),
            work: entry.map(|e| e.work).unwrap_or_default(),
            timestamp_ms: entry.map(|e| e.header.timestamp_ms).unwrap_or_default(),
        }
    }

    pub(super) fn tip_hash(&self) -> BlockHash {
        self.main
            .last()
            .copied()
            .unwrap_or(self.params.genesis_hash)
    }

    /// The main chain's height.
    pub fn height(&self) -> u64 {
        self.main.len().saturating_sub(1) as u64
    }

    /// The hash of the main-chain block at `height` (0 gives the genesis hash).
    pub fn hash_at(&self, height: u64) -> Option<BlockHash> {
        self.main.get(usize::try_from(height).ok()?).copied()
    }

    /// The header of any stored valid or invalid block, or of a held low-work side-branch
    /// block (not orphans): a sync continues after a held block like after a stored one.
    pub fn header(&self, hash: &BlockHash) -> Option<BlockHeader> {
        self.index
            .get(hash)
            .map(|e| e.header)
            .or_else(|| self.held.header(hash).copied())
    }

    /// Whether the chain has seen this block (stored, held as orphan or as a low-work
    /// side-branch block, or rejected): gossip uses it to relay each block once and not
    /// fetch it twice.
    pub fn knows_block(&self, hash: &BlockHash) -> bool {
        self.index.contains_key(hash)
            || self.orphans.contains(hash)
            || self.held.contains(hash)
            || self.rejected.contains(hash)
    }

    /// Whether `hash` is held in memory as a low-work side-branch block (not stored).
    pub fn is_held(&self, hash: &BlockHash) -> bool {
        self.held.contains(hash)
    }

    /// How many low-work side-branch blocks are held in memory, and their bytes.
    pub fn held_blocks(&self) -> (usize, usize) {
        (self.held.len(), self.held.bytes())
    }

    /// Whether `hash` is on the main chain.
    pub fn is_on_main_chain(&self, hash: &BlockHash) -> bool {
        self.index
            .get(hash)
            .and_then(|e| self.hash_at(e.header.height))
            .is_some_and(|h| h == *hash)
    }

    /// A stored block by hash.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        self.store.block(hash)
    }

    /// The main-chain block at `height` (`None` for 0: genesis is the contract, not a block).
    pub fn block_at(&self, height: u64) -> Result<Option<Block>, StoreError> {
        match self.hash_at(height) {
            Some(hash) if height > 0 => self.store.block(&hash),
            _ => Ok(None),
        }
    }

    /// Main-chain blocks from `height` upward, at most `max_blocks` of them and no more
    /// than `max_bytes` in all (at least one if any): the answer to a `SEND_REQUEST`.
    pub fn blocks_from(
        &self,
        height: u64,
        max_blocks: usize,
        max_bytes: usize,
    ) -> Result<Vec<Block>, StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut h = height.max(1);
        while out.len() < max_blocks {
            let Some(block) = self.block_at(h)? else {
                break;
            };
            bytes = bytes.saturating_add(block.encoded_len());
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(block);
            h += 1;
        }
        Ok(out)
    }

    /// A block locator: main-chain hashes from the tip back, dense at first, then doubling
    /// the step, ending at genesis. A peer finds the fork point from it with
    /// [`Chain::find_fork`].
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut height = self.height();
        let mut step = 1u64;
        loop {
            if let Some(hash) = self.hash_at(height) {
                out.push(hash);
            }
            if height == 0 {
                break;
            }
            if out.len() >= 10 {
                step = step.saturating_mul(2);
            }
            height = height.saturating_sub(step);
        }
        out
    }

    /// The height of the newest locator entry on our main chain (0 if none): send blocks
    /// from one above it.
    pub fn find_fork(&self, locator: &[BlockHash]) -> u64 {
        locator
            .iter()
            .find(|hash| self.is_on_main_chain(hash))
            .and_then(|hash| self.index.get(hash))
            .map(|e| e.header.height)
            .unwrap_or(0)
    }

    /// The confirmed state of `account`.
    pub fn account(&self, account: &AccountId) -> AccountState {
        self.accounts.get(account).copied().unwrap_or_default()
    }

    /// Every account with a balance or a used sequence.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The sum of all balances and of the money in open escrows: always genesis plus one
    /// reward per block.
    pub fn supply(&self) -> Option<Amount> {
        total_balance(&self.accounts)?.checked_add(self.escrows.escrowed()?)
    }

    /// What became of `tx`: pending, confirmed at a height, buried deeper than the recent
    /// index reaches, or unknown. Wallets poll this to count confirmations.
    pub fn transaction_status(&self, tx: &Transaction) -> TxStatus {
        let slot = tx.order.lock_slot();
        if let Some((height, confirmed)) = self.recent.get(&slot) {
            if confirmed == *tx {
                return TxStatus::Confirmed {
                    height,
                    confirmations: self.height().saturating_sub(height) + 1,
                };
            }
            return TxStatus::Unknown;
        }
        if self.is_pending(tx) {
            return TxStatus::Pending;
        }
        if self.slot_passed(tx) {
            let oldest = self.recent.oldest_height().unwrap_or(self.height() + 1);
            return TxStatus::Buried {
                confirmations: self.height().saturating_sub(oldest) + 1,
            };
        }
        TxStatus::Unknown
    }

    /// Whether the chain's state shows `tx` applied, beyond what the recent-block index
    /// can place: a spend's sequence passed, or its escrow settled the way it settles.
    fn slot_passed(&self, tx: &Transaction) -> bool {
        match &tx.order {
            Order::EscrowClaim(claim) => self
                .escrow(&claim.escrow)
                .is_some_and(|e| e.settlement == Settlement::Claimed(claim.secret)),
            Order::EscrowRefund(refund) => self
                .escrow(&refund.escrow)
                .is_some_and(|e| e.settlement == Settlement::Refunded),
            order => order
                .spender()
                .is_some_and(|(sender, sequence)| self.account(&sender).next_sequence > sequence),
        }
    }

    /// The pending transactions.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// How many blocks are held waiting for their parent.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// The target the next block on the tip must carry.
    pub fn next_target(&self) -> U256 {
        self.expected_target(&self.tip_hash())
    }

    /// The timestamp the next block must exceed (median of the last 11).
    pub fn next_min_timestamp(&self) -> u64 {
        self.median_time_past(&self.tip_hash())
    }
}
