//! Tally's proof-of-work chain (DESIGN §4, seed 004): the consensus rules, the chain as a
//! sans-I/O state machine over its storage (redb, or in memory for simulations), the
//! mempool, and the miner. Blocks and transactions and their bytes are tally-core's
//! ([`tally_core::block`]); they are re-exported here under their old paths.
//!
//! The node drives it (seed 004's names):
//!
//! - `PUSH_TRANSACTION` / `TRANSACTION`: [`Chain::submit_order`] or
//!   [`Chain::submit_transaction`] (or [`Chain::submit_transactions`] for a burst); `Ok` is
//!   `ACCEPT_TRANSACTION` and the transaction is relayed once, `Err(TxRejected)` is the
//!   reason to send back.
//! - `HASH_BROADCAST` / `RECEIVE_BLOCK`: [`Chain::accept_block`] (or
//!   [`Chain::accept_block_bytes`]). [`BlockOutcome::Stored`] means valid: relay it, and if
//!   `tip_change` is set restart the miner. [`BlockOutcome::Orphan`] names the parent to
//!   fetch. [`BlockOutcome::Held`] is a block of a side branch far behind the tip, kept in
//!   memory only: do not relay it, do not penalise the sender, and a sync may continue
//!   after it. `Err(ChainError::Invalid)` is the peer's fault when
//!   [`BlockError::is_peer_fault`] says so; `Err(ChainError::Store)` is ours.
//! - `CONNECT`: send [`Chain::tip`] (hash, height, total work) and [`Chain::locator`]; the
//!   side with less work asks. `SEND_REQUEST`: the answerer runs [`Chain::find_fork`] on the
//!   asker's locator and sends [`Chain::blocks_from`] the height above it, in batches. A
//!   syncing node may run [`check_block`] (signatures, on all cores, with the chain's
//!   [`Chain::key_cache`]) for the next block while [`Chain::accept_checked`] connects the
//!   previous one.
//! - Mining: [`Chain::block_template`], then [`miner::mine`] on a blocking thread with a
//!   stop flag raised on every tip change and a counter read for the hash rate; put the
//!   returned header in the template and [`Chain::accept_block`] it.
//! - Wallet queries: [`Chain::account`], [`Chain::transaction_status`],
//!   [`Mempool::pending_outgoing`], [`Mempool::pending_incoming`].
//!
//! Time comes in as an argument; nothing here opens a socket or reads a clock. The chain is
//! `Send`: a node keeps it behind a mutex.

pub mod block;
pub mod chain;
mod checks;
pub mod consensus;
pub mod error;
pub mod escrows;
mod held;
pub mod mempool;
pub mod miner;
mod orphans;
mod sigverify;
pub mod spend;
pub mod state;
pub mod store;
pub mod u256;

pub use block::{Block, BlockHash, BlockHeader, Coinbase, Transaction, genesis_hash, merkle_root};
pub use chain::{
    BlockOutcome, Chain, ChainConfig, CheckedBlock, CheckedTransactions, OpenError, TipChange,
    TipInfo, TxStatus, check_block, check_transactions, decode_block, verify_signatures,
};
pub use consensus::{ChainParams, ParamsError, default_pow_params};
pub use error::{BlockError, ChainError, StoreError, TxRejected};
pub use escrows::Escrows;
pub use mempool::{Mempool, MempoolLimits};
pub use spend::{Effect, Settle, Spend, SpendError};
pub use state::AccountState;
pub use store::{ChainStore, MemoryDisk, MemoryStore, RedbStore};
pub use u256::U256;
