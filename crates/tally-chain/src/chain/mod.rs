//! The chain state machine: the block tree, fork choice, validation, reorganisation, the
//! mempool and block templates.
//!
//! It does no networking and reads no clock: the node hands it blocks, transactions and the
//! current time, and acts on what it returns (relay, request a missing parent, restart the
//! miner, penalise a peer). Its only side effect is its store (a [`ChainStore`]), written
//! once per tip change.
//!
//! By concern: `open` rebuilds the chain from its store, `queries` answers the node and
//! wallets, `transactions` feeds the mempool, `template` builds blocks to mine, `accept`
//! places an arriving block (stored, held, orphaned or refused), `rules` checks a header
//! against its parent, and `reorg` moves the tip and records invalid branches. The checks
//! that need no chain are in the crate's `checks` module; the two in-memory pools, orphans
//! and low-work side-branch blocks, are its `orphans` and `held` modules.
//!
//! [`ChainStore`]: crate::store::ChainStore

mod accept;
mod escrows;
mod open;
mod outcome;
mod queries;
mod recent;
mod reorg;
mod rules;
mod template;
mod transactions;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tally_core::KeyCache;

use crate::block::{BlockHash, BlockHeader};
pub use crate::checks::{
    CheckedBlock, CheckedTransactions, check_block, check_transactions, decode_block,
    verify_signatures,
};
use crate::consensus::{ChainParams, ParamsError};
use crate::error::StoreError;
use crate::escrows::{Escrows, RevealedSecrets};
use crate::held::HeldBlocks;
use crate::mempool::{Mempool, MempoolLimits};
use crate::orphans::OrphanPool;
use crate::state::Accounts;
use crate::store::RedbStore;
use crate::u256::U256;
pub use outcome::{BlockOutcome, TipChange, TipInfo, TxStatus};
use recent::RecentTransactions;

/// Tunables that are local policy, not consensus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainConfig {
    /// Mempool bounds.
    pub mempool: MempoolLimits,
    /// Most blocks held while their parent is missing.
    pub max_orphans: usize,
    /// Most bytes of blocks held while their parent is missing.
    pub max_orphan_bytes: usize,
    /// How easy an orphan's target may be, as a multiple of the target the next block on
    /// our tip must carry. An orphan cannot be checked against its parent, so its target is
    /// the sender's choice; without this bound near-free orphans would flush the orphan
    /// pool. 16 allows two retarget windows of the fastest easing (×4 each), so an honest
    /// block from a peer whose difficulty fell behind ours still gets through; flooding the
    /// pool then costs at least 1/16 of a block's work per orphan. 0 refuses every orphan.
    /// An orphan refused for this ([`BlockError::OrphanTargetTooEasy`]) is not held against
    /// its sender: a miner whose difficulty fell further behind is honest, only behind.
    pub orphan_target_multiple: u64,
    /// A side-branch block is written to disk only if its branch has at least the work
    /// the main chain had this many blocks below the tip; branches further behind are
    /// held in memory (see `max_held_blocks`) until they catch up. 64 keeps every
    /// ordinary fork and a partition of up to 64 blocks on disk as before, while a fork
    /// from deep history, where targets were easy, must first redo nearly all the work
    /// since its fork point. Smaller would hold more honest branches in memory; larger
    /// would lengthen the start of a network (its first `store_margin` blocks) during which
    /// any valid side block is stored. With the held pool, reorganisations up to about
    /// `store_margin` + `max_held_blocks` deep (fewer for full blocks, by
    /// `max_held_bytes`) still arrive block by block.
    pub store_margin: u64,
    /// Most low-work side-branch blocks held in memory. When the pool is full, the held
    /// block with the least work goes first, with its held descendants, but never an
    /// ancestor of the block being held: a branch longer than the pool keeps its first
    /// blocks and the next is refused ([`BlockError::HeldPoolFull`], not the sender's
    /// fault), as is a block with less work than every other held block. It bounds, with
    /// `store_margin`, how deep a reorganisation can arrive block by block.
    pub max_held_blocks: usize,
    /// Most bytes of low-work side-branch blocks held in memory.
    pub max_held_bytes: usize,
    /// Most decompressed signer keys kept for signature checks (about 200 bytes each; the
    /// cache is emptied when full). It should hold the senders of a few blocks.
    pub max_cached_keys: usize,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            mempool: MempoolLimits::default(),
            max_orphans: 256,
            max_orphan_bytes: 64 << 20,
            orphan_target_multiple: 16,
            store_margin: 64,
            max_held_blocks: 2_048,
            max_held_bytes: 128 << 20,
            max_cached_keys: 500_000,
        }
    }
}

/// Why a chain could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The contract cannot drive a chain.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// The database cannot be opened or is not this chain's.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A block in the tree: stored (valid or invalid), or genesis.
struct Entry {
    header: BlockHeader,
    /// Cumulative work up to and including this block.
    work: U256,
    invalid: bool,
}

/// The proof-of-work chain of one network, over its store: a [`RedbStore`] for a node
/// (the default), or any other [`ChainStore`](crate::store::ChainStore), such as the
/// in-memory one of a simulation.
pub struct Chain<S = RedbStore> {
    params: ChainParams,
    config: ChainConfig,
    store: S,
    index: HashMap<BlockHash, Entry>,
    children: HashMap<BlockHash, Vec<BlockHash>>,
    /// `main[h]` is the hash of the main-chain block at height `h`; `main[0]` is genesis.
    main: Vec<BlockHash>,
    accounts: Accounts,
    /// Every escrow locked on the main chain, open or settled.
    escrows: Escrows,
    /// Secrets shown by claims this node admitted, mined or not.
    revealed: RevealedSecrets,
    mempool: Mempool,
    /// Blocks waiting for their parent.
    orphans: OrphanPool,
    /// Low-work side-branch blocks, in memory only.
    held: HeldBlocks,
    rejected: HashSet<BlockHash>,
    recent: RecentTransactions,
    /// Decompressed signer keys, shared with checks run off the chain.
    keys: Arc<KeyCache>,
}

/// Most secrets remembered from claims seen but not confirmed.
const MAX_REVEALED: usize = 100_000;

/// Most hashes remembered as rejected (the set is emptied when full).
const MAX_REJECTED: usize = 10_000;
