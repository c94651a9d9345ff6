//! Tally's proof-of-work chain (DESIGN §4, seed 004): blocks and their canonical bytes,
//! the consensus rules, the chain as a sans-I/O state machine with its redb storage, the
//! mempool, and the miner.
//!
//! The node drives it: [`Chain::accept_block`] for every block a peer sends (or the miner
//! finds), [`Chain::submit_transaction`] for every pushed or gossiped transaction,
//! [`Chain::block_template`] and [`miner::mine`] to mine, and the query methods to answer
//! `CONNECT` and `SEND_REQUEST`. Time comes in as an argument; nothing here opens a socket
//! or reads a clock.

pub mod bench;
pub mod block;
pub mod chain;
pub mod consensus;
pub mod error;
pub mod mempool;
pub mod miner;
mod sigverify;
pub mod state;
pub mod store;
pub mod u256;

pub use block::{Block, BlockHash, BlockHeader, Coinbase, Transaction, genesis_hash, merkle_root};
pub use chain::{
    BlockOutcome, Chain, ChainConfig, CheckedBlock, OpenError, TipChange, TipInfo, TxStatus,
    check_block, decode_block, verify_signatures,
};
pub use consensus::{ChainParams, ParamsError};
pub use error::{BlockError, ChainError, StoreError, TxRejected};
pub use mempool::{Mempool, MempoolLimits};
pub use state::AccountState;
pub use u256::U256;
