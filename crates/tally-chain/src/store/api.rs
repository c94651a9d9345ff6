//! What the chain needs from its store, and the records that cross that boundary.

use std::collections::HashMap;

use tally_core::{AccountId, EscrowId, EscrowState};

use crate::block::{Block, BlockHash, BlockHeader};
use crate::error::StoreError;
use crate::state::{AccountState, Accounts, Undo};

/// The durable half of a chain: blocks with their headers' status, undo records, the
/// accounts and escrows as of the tip, the main chain by height, and the tip.
///
/// The chain keeps its block tree in memory and writes through [`ChainStore::commit`] once
/// per change of the tip (one block, or a whole reorganisation), so a store must apply a
/// [`WriteBatch`] all or nothing: after a failed commit, or a crash at any moment, a
/// reopened store shows exactly the batches that were committed before. Everything the
/// chain holds besides (orphans, low-work side-branch blocks, the mempool) is lost on a
/// crash by design and fetched again.
///
/// Implementations: [`RedbStore`](crate::store::RedbStore) on disk, and
/// [`MemoryStore`](crate::store::MemoryStore) for deterministic simulations with crashes
/// and failing commits. The chain is generic over its store, so the store costs no dynamic
/// dispatch on the path of a sync.
pub trait ChainStore {
    /// Reads everything the in-memory chain is rebuilt from when it opens.
    fn load(&self) -> Result<Loaded, StoreError>;

    /// The stored block with this hash (valid or invalid, main chain or side branch).
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError>;

    /// The stored encoding of the block with this hash (serving peers without
    /// re-encoding).
    fn block_bytes(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError>;

    /// The undo record of a block connected to the main chain (kept after a
    /// reorganisation takes it off again).
    fn undo(&self, hash: &BlockHash) -> Result<Option<Undo>, StoreError>;

    /// Applies `batch` durably and atomically: on `Err` nothing of it may show, now or
    /// after a reopen.
    fn commit(&mut self, batch: &WriteBatch) -> Result<(), StoreError>;
}

/// A stored block header's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredStatus {
    /// Passed every check that needs no account state; may or may not be on the main chain.
    Valid,
    /// Failed when connected; never tried again.
    Invalid,
}

/// All that opening a chain reads back.
pub struct Loaded {
    /// Every stored header, in no order.
    pub headers: Vec<(BlockHeader, StoredStatus)>,
    /// The accounts as of the tip.
    pub accounts: Accounts,
    /// The escrows as of the tip, open or settled.
    pub escrows: Vec<(EscrowId, EscrowState)>,
    /// The tip (`None` for a new database).
    pub tip: Option<BlockHash>,
    /// Main-chain hashes from height 1 up.
    pub main: Vec<BlockHash>,
}

/// Everything one commit changes.
#[derive(Default)]
pub struct WriteBatch {
    /// New blocks to store with their headers (status valid).
    pub blocks: Vec<(BlockHash, BlockHeader, Vec<u8>)>,
    /// Headers whose status changes to invalid.
    pub invalid: Vec<(BlockHash, BlockHeader)>,
    /// Undo records of newly connected blocks.
    pub undo: Vec<(BlockHash, Vec<u8>)>,
    /// Accounts to write; an empty state deletes.
    pub accounts: HashMap<AccountId, AccountState>,
    /// Escrows to write; `None` deletes (an undone lock).
    pub escrows: HashMap<EscrowId, Option<EscrowState>>,
    /// Main-chain heights above this one are dropped before `main_set` is written.
    pub main_truncate_above: Option<u64>,
    /// `(height, hash)` of blocks now on the main chain.
    pub main_set: Vec<(u64, BlockHash)>,
    /// The new tip.
    pub tip: Option<BlockHash>,
}
