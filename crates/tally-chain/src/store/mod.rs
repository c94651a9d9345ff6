//! The chain's storage: the [`ChainStore`] contract, its redb implementation for nodes,
//! and an in-memory one for deterministic simulations.

mod api;
mod memory;
mod redb_store;

pub use api::{ChainStore, Loaded, StoredStatus, WriteBatch};
pub use memory::{MemoryDisk, MemoryStore};
pub use redb_store::RedbStore;
