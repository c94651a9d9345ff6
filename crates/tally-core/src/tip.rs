//! What a proof-of-work chain reports about itself: its tip and what became of a
//! transaction. Vocabulary shared by the chain, its packets and wallets, so that a wallet
//! reads them without depending on the chain's storage.

use serde::{Deserialize, Serialize};

use crate::block::BlockHash;
use crate::u256::U256;

/// The tip of the main chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipInfo {
    /// Its hash (the genesis hash before the first block).
    pub hash: BlockHash,
    /// Its height (0 before the first block).
    pub height: u64,
    /// Total work of the main chain: what fork choice compares, and what `CONNECT` sends.
    pub work: U256,
    /// Its timestamp in milliseconds (0 at genesis).
    pub timestamp_ms: u64,
}

/// What became of a proof-of-work transaction: what a miner answers `REQ_TX_STATUS` with
/// (tally-chain's `Chain::transaction_status` decides it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxStatus {
    /// Waiting in the mempool.
    Pending,
    /// In the main-chain block at `height`; `confirmations` is 1 when that block is the
    /// tip, one more for each block on top.
    Confirmed {
        /// The block's height.
        height: u64,
        /// Blocks from it to the tip, both counted.
        confirmations: u64,
    },
    /// Its sender's sequence has passed it in a block older than the recent blocks the
    /// chain indexes: at least `confirmations` deep. (Another transaction with the same
    /// sequence could have been the one confirmed; a wallet that signs one order per
    /// sequence never sees that.)
    Buried {
        /// A lower bound on its confirmations.
        confirmations: u64,
    },
    /// Neither pending nor confirmed (rejected, dropped, or replaced in a reorganisation).
    Unknown,
}
