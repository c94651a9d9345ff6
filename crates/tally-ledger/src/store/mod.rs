//! The validator's storage: the [`LedgerStore`] trait the engine writes and reads through,
//! the redb implementation a node runs on ([`RedbLedgerStore`]) and an in-memory one for
//! tests and the simulator ([`MemoryLedgerStore`]). Both pass the same conformance tests.

#[cfg(test)]
mod conformance;
mod ledger_store;
mod memory;
pub mod records;
mod redb_store;
#[cfg(test)]
mod test_fixture;

pub use ledger_store::{CertificatePage, LedgerStore, StoreError};
pub use memory::MemoryLedgerStore;
pub use redb_store::{DEFAULT_CHECKPOINT_EVERY, RedbLedgerStore};
