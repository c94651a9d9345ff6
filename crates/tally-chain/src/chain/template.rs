//! Block templates: what a miner works on.

use tally_core::{AccountId, Digest};

use super::Chain;
use crate::block::{BLOCK_PREFIX_LEN, Block, BlockHeader, Coinbase, HEADER_VERSION, merkle_root};
use crate::checks::leaf_ids;
use crate::state::Overlay;
use crate::store::ChainStore;

impl<S: ChainStore> Chain<S> {
    /// A block for `miner` to mine on the tip: the coinbase, mempool transactions that
    /// apply in order, the expected target, a timestamp of `now_ms` (or just past the
    /// median time if the clock is behind), and nonce 0.
    pub fn block_template(&self, miner: AccountId, now_ms: u64) -> Block {
        let tip = self.tip_hash();
        let height = self.height() + 1;
        let coinbase = Coinbase {
            miner,
            amount: self.params.block_reward,
            height,
        };
        let mut view = Overlay::new(&self.accounts, &self.escrows);
        // The coinbase applies first, as in `apply_block`.
        let transactions = if view.credit(&miner, coinbase.amount) {
            let max_bytes = (self.params.max_block_bytes as usize).saturating_sub(BLOCK_PREFIX_LEN);
            self.mempool.select(
                &mut view,
                &self.params.network,
                self.median_time_past(&tip),
                self.params.max_block_transactions as usize,
                max_bytes,
            )
        } else {
            Vec::new()
        };
        let mut block = Block {
            header: BlockHeader {
                version: HEADER_VERSION,
                network: self.params.network,
                height,
                previous: tip,
                merkle_root: Digest::default(),
                timestamp_ms: now_ms.max(self.median_time_past(&tip).saturating_add(1)),
                target: self.expected_target(&tip),
                nonce: 0,
            },
            coinbase,
            transactions,
        };
        block.header.merkle_root = merkle_root(leaf_ids(&block));
        block
    }
}
