//! What the chain tells its driver: the tip, how it moved, what became of a block or a
//! transaction.

use crate::block::BlockHash;
pub use tally_core::{TipInfo, TxStatus};

/// A change of the main chain's tip.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TipChange {
    /// The tip before.
    pub old_tip: BlockHash,
    /// The tip after.
    pub new_tip: BlockHash,
    /// The new tip's height.
    pub height: u64,
    /// Blocks taken off the main chain, newest first (empty unless it was a reorganisation).
    pub disconnected: Vec<BlockHash>,
    /// Blocks put on the main chain, oldest first.
    pub connected: Vec<BlockHash>,
    /// Transactions of disconnected blocks now back in the mempool.
    pub returned_to_mempool: usize,
}

impl TipChange {
    /// Whether blocks left the main chain.
    pub fn is_reorg(&self) -> bool {
        !self.disconnected.is_empty()
    }

    pub(super) fn then(mut self, next: TipChange) -> TipChange {
        self.new_tip = next.new_tip;
        self.height = next.height;
        self.disconnected.extend(next.disconnected);
        self.connected.extend(next.connected);
        self.returned_to_mempool += next.returned_to_mempool;
        self
    }
}

/// What became of a block the chain accepted (rejections are [`ChainError`]s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Already known (stored, held as an orphan, or held as a low-work side-branch
    /// block): nothing to do, nothing to relay.
    Duplicate,
    /// Its parent is unknown; it is held until the parent arrives. The node should fetch
    /// the parent (`SEND_REQUEST`).
    Orphan {
        /// The block to fetch.
        missing_parent: BlockHash,
    },
    /// Valid and stored. `tip_change` is set when the main chain moved (the miner should
    /// restart); `adopted_orphans` are held blocks that could now be connected.
    Stored {
        /// The block's height.
        height: u64,
        /// How the main chain moved, if it did.
        tip_change: Option<TipChange>,
        /// Held blocks connected after it, parents first.
        adopted_orphans: Vec<BlockHash>,
    },
    /// Valid as far as its header goes, but its branch has far less work than the main
    /// chain (see [`ChainConfig::store_margin`]), so it is held in memory only, not
    /// stored (and may be evicted later for a block of another branch with more work; a
    /// block the full pool has no room for is refused instead, with
    /// [`BlockError::HeldPoolFull`], so `Held` always means held). Its signatures and
    /// transactions are checked only if its branch catches up.
    /// The node must not relay it (it may never be connected) nor penalise the sender (a
    /// heavier branch arrives this way, block by block from its fork point); a sync may
    /// go on after it, since [`Chain::header`] knows it.
    ///
    /// [`ChainConfig::store_margin`]: crate::ChainConfig::store_margin
    /// [`BlockError::HeldPoolFull`]: crate::BlockError::HeldPoolFull
    /// [`Chain::header`]: crate::Chain::header
    Held {
        /// The block's height.
        height: u64,
    },
}
