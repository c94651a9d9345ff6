//! The chain's redb storage: blocks, headers with their status, undo records, accounts,
//! escrows, the main chain by height, and the tip, each in its own table.
//!
//! Every change to the tip — one block, or a whole reorganisation — is one [`WriteBatch`]
//! committed in one durable redb write transaction, so a crash at any moment leaves the
//! database at the state before or after it, never between.

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use tally_core::{AccountId, Decode, Digest, Encode, EscrowId, EscrowState, NetworkId};

use super::api::{ChainStore, Loaded, StoredStatus, WriteBatch};
use crate::block::{Block, BlockHash, BlockHeader, HEADER_LEN};
use crate::error::{StoreError, corrupt};
use crate::state::{AccountState, Accounts, Undo};

const BLOCKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks");
const HEADERS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("headers");
const UNDO: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("undo");
const ACCOUNTS: TableDefinition<&[u8; 32], &[u8; 16]> = TableDefinition::new("accounts");
/// Escrow id → the escrow's record (tally-core's codec of [`EscrowState`], the layout a
/// validator's ledger stores too). A table a chain folder of an earlier build lacks is
/// created empty when opened: such a chain holds no escrow.
const ESCROWS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("escrows");
const MAIN: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("main_chain");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const META_NETWORK: &str = "network";
const META_TIP: &str = "tip";

/// The redb database of one chain.
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    /// Opens (or creates) the database file at `path` for `network`.
    pub fn open(path: &Path, network: &NetworkId) -> Result<Self, StoreError> {
        let db = Database::create(path)?;
        Self::init(db, network)
    }

    /// A database in memory (tests, tools): same code paths, nothing on disk.
    pub fn in_memory(network: &NetworkId) -> Result<Self, StoreError> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::init(db, network)
    }

    /// Opens a database on any redb backend (tests inject failing disks with this).
    pub fn with_backend(
        backend: impl redb::StorageBackend,
        network: &NetworkId,
    ) -> Result<Self, StoreError> {
        let db = Database::builder().create_with_backend(backend)?;
        Self::init(db, network)
    }

    fn init(db: Database, network: &NetworkId) -> Result<Self, StoreError> {
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get(META_NETWORK)?.map(|v| v.value().to_vec());
            match found {
                Some(bytes) => {
                    let found: [u8; 32] = bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| corrupt("meta", "network id length"))?;
                    if &found != network.as_bytes() {
                        return Err(StoreError::WrongNetwork {
                            expected: network.0,
                            found: Digest::from(found),
                        });
                    }
                }
                None => {
                    meta.insert(META_NETWORK, network.as_bytes().as_slice())?;
                }
            }
            txn.open_table(BLOCKS)?;
            txn.open_table(HEADERS)?;
            txn.open_table(UNDO)?;
            txn.open_table(ACCOUNTS)?;
            txn.open_table(ESCROWS)?;
            txn.open_table(MAIN)?;
        }
        txn.commit()?;
        Ok(RedbStore { db })
    }
}

impl ChainStore for RedbStore {
    /// Reads everything the in-memory chain is rebuilt from.
    fn load(&self) -> Result<Loaded, StoreError> {
        let txn = self.db.begin_read()?;
        let headers_table = txn.open_table(HEADERS)?;
        let mut headers = Vec::with_capacity(headers_table.len()? as usize);
        for entry in headers_table.iter()? {
            let (_, value) = entry?;
            let bytes = value.value();
            if bytes.len() != HEADER_LEN + 1 {
                return Err(corrupt("headers", "record length"));
            }
            let header = BlockHeader::decode(&bytes[..HEADER_LEN])
                .map_err(|e| corrupt("headers", e.to_string()))?;
            let status = match bytes[HEADER_LEN] {
                0 => StoredStatus::Valid,
                _ => StoredStatus::Invalid,
            };
            headers.push((header, status));
        }
        let mut accounts = Accounts::new();
        for entry in txn.open_table(ACCOUNTS)?.iter()? {
            let (key, value) = entry?;
            let state = AccountState::decode(value.value())
                .ok_or_else(|| corrupt("accounts", "record length"))?;
            accounts.insert(AccountId::from(*key.value()), state);
        }
        let mut escrows = Vec::new();
        for entry in txn.open_table(ESCROWS)?.iter()? {
            let (key, value) = entry?;
            let escrow = EscrowState::from_bytes(value.value())
                .map_err(|e| corrupt("escrows", e.to_string()))?;
            escrows.push((EscrowId::from(*key.value()), escrow));
        }
        let mut main = Vec::new();
        for (expected, entry) in txn.open_table(MAIN)?.iter()?.enumerate() {
            let (height, hash) = entry?;
            if height.value() != expected as u64 + 1 {
                return Err(corrupt("main_chain", "gap in heights"));
            }
            main.push(Digest::from(*hash.value()));
        }
        let tip = match txn.open_table(META)?.get(META_TIP)? {
            Some(value) => {
                let bytes: [u8; 32] = value
                    .value()
                    .try_into()
                    .map_err(|_| corrupt("meta", "tip length"))?;
                Some(Digest::from(bytes))
            }
            None => None,
        };
        Ok(Loaded {
            headers,
            accounts,
            escrows,
            tip,
            main,
        })
    }

    /// The stored block with this hash.
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        match table.get(hash.as_bytes())? {
            Some(value) => Block::decode(value.value())
                .map(Some)
                .map_err(|e| corrupt("blocks", e.to_string())),
            None => Ok(None),
        }
    }

    /// The stored encoding of the block with this hash (serving peers without re-encoding).
    fn block_bytes(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        Ok(table.get(hash.as_bytes())?.map(|v| v.value().to_vec()))
    }

    /// The undo record of a connected block.
    fn undo(&self, hash: &BlockHash) -> Result<Option<Undo>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UNDO)?;
        match table.get(hash.as_bytes())? {
            Some(value) => Undo::decode(value.value())
                .map(Some)
                .ok_or_else(|| corrupt("undo", "malformed record")),
            None => Ok(None),
        }
    }

    /// Commits `batch` in one durable write transaction.
    fn commit(&mut self, batch: &WriteBatch) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut blocks = txn.open_table(BLOCKS)?;
            let mut headers = txn.open_table(HEADERS)?;
            let mut record = [0u8; HEADER_LEN + 1];
            for (hash, header, bytes) in &batch.blocks {
                blocks.insert(hash.as_bytes(), bytes.as_slice())?;
                record[..HEADER_LEN].copy_from_slice(&header.encode());
                record[HEADER_LEN] = 0;
                headers.insert(hash.as_bytes(), record.as_slice())?;
            }
            for (hash, header) in &batch.invalid {
                record[..HEADER_LEN].copy_from_slice(&header.encode());
                record[HEADER_LEN] = 1;
                headers.insert(hash.as_bytes(), record.as_slice())?;
            }
        }
        {
            let mut undo = txn.open_table(UNDO)?;
            for (hash, bytes) in &batch.undo {
                undo.insert(hash.as_bytes(), bytes.as_slice())?;
            }
        }
        {
            let mut accounts = txn.open_table(ACCOUNTS)?;
            // In key order: neighbouring inserts then touch the same B-tree pages.
            let mut sorted: Vec<_> = batch.accounts.iter().collect();
            sorted.sort_unstable_by_key(|(account, _)| **account);
            for (account, state) in sorted {
                if state.is_empty() {
                    accounts.remove(account.as_bytes())?;
                } else {
                    accounts.insert(account.as_bytes(), &state.encode())?;
                }
            }
        }
        {
            let mut escrows = txn.open_table(ESCROWS)?;
            for (id, escrow) in &batch.escrows {
                match escrow {
                    Some(escrow) => {
                        escrows.insert(id.as_bytes(), escrow.to_bytes().as_slice())?;
                    }
                    None => {
                        escrows.remove(id.as_bytes())?;
                    }
                }
            }
        }
        {
            let mut main = txn.open_table(MAIN)?;
            if let Some(above) = batch.main_truncate_above {
                main.retain_in((above + 1).., |_, _| false)?;
            }
            for (height, hash) in &batch.main_set {
                main.insert(*height, hash.as_bytes())?;
            }
        }
        if let Some(tip) = &batch.tip {
            let mut meta = txn.open_table(META)?;
            meta.insert(META_TIP, tip.as_bytes().as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }
}
