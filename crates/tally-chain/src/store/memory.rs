//! A chain store in memory, for deterministic simulations of nodes that crash and disks
//! that fail.
//!
//! The durable state lives in a [`MemoryDisk`], a shared handle that outlives the chain
//! using it: a simulation "crashes" a node by dropping its chain (all it held in memory
//! that was not committed is gone) and restarts it with [`MemoryStore::open`] on the same
//! disk, which then shows exactly the batches committed before. The disk can be told to
//! fail the next commits, so that the chain's failed-commit paths run. A commit applies in
//! full or (when it fails) not at all, like redb's durable write transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tally_core::{AccountId, EscrowId, EscrowState, NetworkId};

use super::api::{ChainStore, Loaded, StoredStatus, WriteBatch};
use crate::block::{Block, BlockHash, BlockHeader};
use crate::error::{StoreError, corrupt};
use crate::state::{AccountState, Accounts, Undo};

/// What a [`MemoryDisk`] holds: the tables of [`RedbStore`](super::RedbStore), as
/// committed.
#[derive(Default)]
struct Tables {
    network: Option<NetworkId>,
    /// Blocks in their encoding, decoded on every read as from a disk.
    blocks: HashMap<BlockHash, Vec<u8>>,
    headers: HashMap<BlockHash, (BlockHeader, StoredStatus)>,
    undo: HashMap<BlockHash, Vec<u8>>,
    accounts: HashMap<AccountId, AccountState>,
    escrows: HashMap<EscrowId, EscrowState>,
    main: BTreeMap<u64, BlockHash>,
    tip: Option<BlockHash>,
}

#[derive(Default)]
struct DiskState {
    tables: Tables,
    /// How many of the next commits fail.
    failing_commits: usize,
    /// Commits applied since the disk was made.
    commits: u64,
}

/// The durable state of a simulated chain database, shared by every clone of the handle:
/// what survives a crash of the node that uses it.
#[derive(Clone, Default)]
pub struct MemoryDisk {
    state: Arc<Mutex<DiskState>>,
}

impl MemoryDisk {
    /// An empty disk.
    pub fn new() -> Self {
        MemoryDisk::default()
    }

    /// Makes the next `count` commits fail with [`StoreError::Injected`], writing nothing
    /// (0 heals the disk).
    pub fn fail_next_commits(&self, count: usize) {
        self.lock().failing_commits = count;
    }

    /// How many commits were applied to this disk (failed ones not counted).
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // A panic elsewhere while the lock was held cannot have left a half-applied
        // commit: a commit is applied only after every check, by infallible inserts.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A chain store on a [`MemoryDisk`].
pub struct MemoryStore {
    disk: MemoryDisk,
}

impl MemoryStore {
    /// Opens the store on `disk` for `network`: a new disk takes the network, one of
    /// another network is refused (as [`RedbStore::open`](super::RedbStore::open) does).
    pub fn open(disk: &MemoryDisk, network: &NetworkId) -> Result<Self, StoreError> {
        let mut state = disk.lock();
        match state.tables.network {
            Some(found) if found != *network => {
                return Err(StoreError::WrongNetwork {
                    expected: network.0,
                    found: found.0,
                });
            }
            Some(_) => {}
            None => state.tables.network = Some(*network),
        }
        drop(state);
        Ok(MemoryStore { disk: disk.clone() })
    }

    /// The disk under this store.
    pub fn disk(&self) -> &MemoryDisk {
        &self.disk
    }
}

impl ChainStore for MemoryStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        let state = self.disk.lock();
        let tables = &state.tables;
        let headers = tables.headers.values().copied().collect();
        let accounts: Accounts = tables.accounts.iter().map(|(a, s)| (*a, *s)).collect();
        let mut main = Vec::with_capacity(tables.main.len());
        for (expected, (height, hash)) in tables.main.iter().enumerate() {
            if *height != expected as u64 + 1 {
                return Err(corrupt("main_chain", "gap in heights"));
            }
            main.push(*hash);
        }
        Ok(Loaded {
            headers,
            accounts,
            escrows: tables.escrows.iter().map(|(id, e)| (*id, *e)).collect(),
            tip: tables.tip,
            main,
        })
    }

    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        match self.disk.lock().tables.blocks.get(hash) {
            Some(bytes) => Block::decode(bytes)
                .map(Some)
                .map_err(|e| corrupt("blocks", e.to_string())),
            None => Ok(None),
        }
    }

    fn block_bytes(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.disk.lock().tables.blocks.get(hash).cloned())
    }

    fn undo(&self, hash: &BlockHash) -> Result<Option<Undo>, StoreError> {
        match self.disk.lock().tables.undo.get(hash) {
            Some(bytes) => Undo::decode(bytes)
                .map(Some)
                .ok_or_else(|| corrupt("undo", "malformed record")),
            None => Ok(None),
        }
    }

    fn commit(&mut self, batch: &WriteBatch) -> Result<(), StoreError> {
        let mut state = self.disk.lock();
        if state.failing_commits > 0 {
            state.failing_commits -= 1;
            return Err(StoreError::Injected);
        }
        let tables = &mut state.tables;
        for (hash, header, bytes) in &batch.blocks {
            tables.blocks.insert(*hash, bytes.clone());
            tables.headers.insert(*hash, (*header, StoredStatus::Valid));
        }
        for (hash, header) in &batch.invalid {
            tables
                .headers
                .insert(*hash, (*header, StoredStatus::Invalid));
        }
        for (hash, bytes) in &batch.undo {
            tables.undo.insert(*hash, bytes.clone());
        }
        for (account, state) in &batch.accounts {
            if state.is_empty() {
                tables.accounts.remove(account);
            } else {
                tables.accounts.insert(*account, *state);
            }
        }
        for (id, escrow) in &batch.escrows {
            match escrow {
                Some(escrow) => tables.escrows.insert(*id, *escrow),
                None => tables.escrows.remove(id),
            };
        }
        if let Some(above) = batch.main_truncate_above {
            tables.main.retain(|height, _| *height <= above);
        }
        for (height, hash) in &batch.main_set {
            tables.main.insert(*height, *hash);
        }
        if let Some(tip) = batch.tip {
            tables.tip = Some(tip);
        }
        state.commits += 1;
        Ok(())
    }
}

impl std::fmt::Debug for MemoryDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryDisk")
            .field("blocks", &state.tables.blocks.len())
            .field("tip", &state.tables.tip)
            .field("commits", &state.commits)
            .field("failing_commits", &state.failing_commits)
            .finish()
    }
}
