//! The transactions of the most recent main-chain blocks, so that a wallet's question
//! "how deep is my transaction?" is answered without a per-transaction index on disk.

use std::collections::{HashMap, VecDeque};

use tally_core::LockSlot;

use crate::block::Transaction;

/// Transactions of the most recent main-chain blocks by lock slot (`(sender, sequence)`,
/// or the escrow a claim or refund settles), bounded, so confirmations can be counted
/// without a per-transaction index on disk.
pub(super) struct RecentTransactions {
    by_key: HashMap<LockSlot, (u64, Transaction)>,
    blocks: VecDeque<(u64, Vec<LockSlot>)>,
    max_entries: usize,
}

impl RecentTransactions {
    pub(super) fn new(max_entries: usize) -> Self {
        RecentTransactions {
            by_key: HashMap::new(),
            blocks: VecDeque::new(),
            max_entries,
        }
    }

    pub(super) fn get(&self, slot: &LockSlot) -> Option<(u64, Transaction)> {
        self.by_key.get(slot).cloned()
    }

    pub(super) fn oldest_height(&self) -> Option<u64> {
        self.blocks.front().map(|(h, _)| *h)
    }

    pub(super) fn push(&mut self, height: u64, txs: &[Transaction]) {
        let mut keys = Vec::with_capacity(txs.len());
        for tx in txs {
            let key = tx.order.lock_slot();
            keys.push(key);
            self.by_key.insert(key, (height, tx.clone()));
        }
        self.blocks.push_back((height, keys));
        while self.by_key.len() > self.max_entries && self.blocks.len() > 1 {
            if let Some((_, keys)) = self.blocks.pop_front() {
                for key in keys {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    pub(super) fn truncate_above(&mut self, height: u64) {
        while self.blocks.back().is_some_and(|(h, _)| *h > height) {
            if let Some((_, keys)) = self.blocks.pop_back() {
                for key in keys {
                    self.by_key.remove(&key);
                }
            }
        }
    }
}

/// How many recent transactions [`Chain::transaction_status`] can place exactly.
///
/// [`Chain::transaction_status`]: crate::Chain::transaction_status
pub(super) const RECENT_TRANSACTIONS: usize = 200_000;
/// How many blocks back the recent index is rebuilt from when the chain opens.
pub(super) const RECENT_BLOCKS_ON_OPEN: u64 = 100;
