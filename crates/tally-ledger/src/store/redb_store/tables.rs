//! The redb schema: table names, `meta` keys and write sizes. The bytes stored in them are
//! laid out by [`crate::store::records`].

use redb::TableDefinition;

/// Account → account row, as of the last checkpoint.
pub(super) const ACCOUNTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accounts");
/// Lock row key → lock row value, as of the last checkpoint.
pub(super) const LOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("locks");
/// Escrow id → escrow row (its lock and how it stands), as of the last checkpoint; every
/// escrow ever opened, settled ones included (a settled escrow's id must stay known, so
/// that its lock slot is not voted again).
pub(super) const ESCROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("escrows");
/// The certificate log: log position → certificate record.
pub(super) const CERTIFICATES: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
/// Sender ‖ sequence → log position, as of the last checkpoint.
pub(super) const SENT: TableDefinition<&[u8], u64> = TableDefinition::new("sent");
/// Account ‖ log position of each certificate that moved its balance, as of the last
/// checkpoint.
pub(super) const TOUCHING: TableDefinition<&[u8], ()> = TableDefinition::new("touching");
/// Vote locks given since the last checkpoint: batch number → the batch's lock records
/// ([`crate::store::records::journal_row`]).
pub(super) const VOTES: TableDefinition<u64, &[u8]> = TableDefinition::new("votes");
/// Counters and markers, under the keys below.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub(super) const META_SUPPLY: &str = "supply";
pub(super) const META_LOG_LEN: &str = "log_len";
pub(super) const META_NETWORK_CHECK: &str = "network_prefix";
/// The log position up to which `accounts`, `escrows`, `locks`, `sent` and `touching` are
/// current.
/// Absent in data folders written before checkpoints existed: those tables were written
/// with every batch, so they cover the whole log.
pub(super) const META_CHECKPOINT: &str = "checkpoint";
/// The supply as of the checkpoint (intros after it mint again when the tail is re-applied).
pub(super) const META_CHECKPOINT_SUPPLY: &str = "checkpoint_supply";

/// Genesis accounts written per transaction.
pub(super) const GENESIS_CHUNK: usize = 65_536;
