//! Errors: why a block is invalid (the peer's fault), why a transaction is refused (the
//! sender's), and why the chain itself failed (ours: storage).

use tally_core::{AccountId, Amount, Digest, SplitError};

use crate::block::{BlockHash, DecodeError};
use crate::u256::U256;

/// Why a block is not valid. Each rule has its own variant so the node can log and score
/// precisely; [`BlockError::is_peer_fault`] says whether the sender deserves a penalty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("malformed block: {0}")]
    Decode(#[from] DecodeError),
    #[error("header version {0} is not supported")]
    Version(u32),
    #[error("block is for network {got}, not this one")]
    WrongNetwork { got: Digest },
    #[error("block hash {hash} does not meet its target {target}")]
    InsufficientWork { hash: BlockHash, target: U256 },
    #[error("target {got} is not the expected {expected}")]
    WrongTarget { expected: U256, got: U256 },
    #[error("height {got} does not follow the parent's (expected {expected})")]
    WrongHeight { expected: u64, got: u64 },
    #[error("timestamp {got} is not after the median of the last 11 blocks ({median})")]
    TimestampTooOld { median: u64, got: u64 },
    #[error("timestamp {got} is too far in the future (limit {limit})")]
    TimestampTooFarInFuture { limit: u64, got: u64 },
    #[error("{count} transactions, at most {max} allowed")]
    TooManyTransactions { count: usize, max: u32 },
    #[error("block is {bytes} bytes, at most {max} allowed")]
    TooLarge { bytes: usize, max: u32 },
    #[error("merkle root {got} does not match the contents ({expected})")]
    BadMerkleRoot { expected: Digest, got: Digest },
    #[error("coinbase height {got} differs from the block height {expected}")]
    CoinbaseHeight { expected: u64, got: u64 },
    #[error("coinbase pays {got} cash, the block reward is {expected} cash")]
    CoinbaseAmount { expected: Amount, got: Amount },
    /// A kind of order that spends nothing (an `IntroKey`): a proof-of-work network takes
    /// only transfers and splits.
    #[error(
        "transaction {index} is a {kind} order; a proof-of-work network takes only transfers and splits"
    )]
    NotASpend { index: usize, kind: &'static str },
    #[error("transaction {index} transfers nothing")]
    ZeroAmount { index: usize },
    /// A split that breaks its shape rules (PROTOCOL §3): it can never apply, whatever the
    /// accounts hold.
    #[error("transaction {index} is a malformed split: {reason}")]
    MalformedSplit { index: usize, reason: SplitError },
    #[error("transaction {index} has a bad signature")]
    BadSignature { index: usize },
    #[error("transaction {index} replays sequence {got}; the sender is at {expected}")]
    StaleSequence {
        index: usize,
        expected: u64,
        got: u64,
    },
    #[error("transaction {index} skips to sequence {got}; the sender is at {expected}")]
    SequenceGap {
        index: usize,
        expected: u64,
        got: u64,
    },
    #[error("transaction {index} spends sequence {sequence} of {sender} a second time")]
    DoubleSpend {
        index: usize,
        sender: AccountId,
        sequence: u64,
    },
    #[error("transaction {index} spends {amount} cash but the sender has {balance} cash")]
    Overdraft {
        index: usize,
        balance: Amount,
        amount: Amount,
    },
    #[error("a balance would overflow (transaction {index:?})")]
    BalanceOverflow { index: Option<usize> },
    #[error("block {0} is already known to be invalid")]
    KnownInvalid(BlockHash),
    #[error("the block descends from invalid block {0}")]
    InvalidAncestor(BlockHash),
    /// An orphan (parent unknown) whose own target is far easier than our tip's: it
    /// carries too little work to be held, or near-free orphans could flush the pool.
    /// Not the sender's fault: an honest miner whose difficulty fell far behind ours
    /// mines such blocks. It is refused, neither held nor remembered, and not scored.
    #[error("orphan's target {got} is easier than the limit {limit} for orphans")]
    OrphanTargetTooEasy { limit: U256, got: U256 },
    /// A block of a low-work side branch (see [`crate::ChainConfig::store_margin`]) that
    /// the held pool has no room for: its own held ancestors fill the pool, or every other
    /// held block has more work. Not the sender's fault (an honest fork deeper than the
    /// pool arrives this way): it is refused, neither held nor remembered, and not scored;
    /// the branch's held blocks stay.
    #[error("no room to hold this block of a low-work side branch")]
    HeldPoolFull,
}

impl BlockError {
    /// Whether the peer that sent the block should be penalised. Three refusals are not
    /// held against the sender: a block a little ahead of our clock (it may become
    /// valid), an orphan too easy for the orphan pool (an honest miner whose difficulty
    /// fell behind ours sends such), and a low-work side-branch block the held pool has no
    /// room for.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            BlockError::TimestampTooFarInFuture { .. }
                | BlockError::OrphanTargetTooEasy { .. }
                | BlockError::HeldPoolFull
        )
    }
}

/// Why a transaction was not taken into the mempool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxRejected {
    /// A kind of order that spends nothing (an `IntroKey`).
    #[error("a {kind} order spends nothing; a proof-of-work network takes transfers and splits")]
    NotASpend { kind: &'static str },
    #[error("the transfer moves nothing")]
    ZeroAmount,
    /// A split that breaks its shape rules (PROTOCOL §3).
    #[error("malformed split: {0}")]
    MalformedSplit(SplitError),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("sequence {got} is already used; the sender is at {next}")]
    StaleSequence { next: u64, got: u64 },
    #[error("sequence {got} is too far ahead of the sender's next sequence {next}")]
    TooFarAhead { next: u64, got: u64 },
    #[error("already in the mempool")]
    Duplicate,
    #[error("another transaction with sequence {sequence} from this sender is pending")]
    Conflict { sequence: u64 },
    #[error("the sender has {available} cash after its pending transactions, {amount} cash needed")]
    InsufficientFunds { available: Amount, amount: Amount },
    #[error("the sender already has {0} pending transactions")]
    AccountFull(usize),
    #[error("the mempool is full ({0} transactions)")]
    MempoolFull(usize),
}

/// Storage failed: our fault, not the peer's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Redb(Box<redb::Error>),
    #[error("corrupt record in table {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("the database belongs to network {found}, not {expected}")]
    WrongNetwork { expected: Digest, found: Digest },
    /// A commit that a simulation told its [`MemoryDisk`](crate::store::MemoryDisk) to
    /// fail (failure injection: nothing of it was written).
    #[error("injected storage failure")]
    Injected,
}

/// A [`StoreError::Corrupt`] for a record of `table`.
pub(crate) fn corrupt(table: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.into(),
    }
}

macro_rules! redb_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(Box::new(redb::Error::from(e)))
            }
        }
    )*};
}
redb_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Why the chain could not take a block.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The block breaks a rule.
    #[error("invalid block {hash}: {error}")]
    Invalid { hash: BlockHash, error: BlockError },
    /// Storage failed; the chain in memory still matches the last commit.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ChainError {
    /// The rule broken, if the block was invalid.
    pub fn block_error(&self) -> Option<&BlockError> {
        match self {
            ChainError::Invalid { error, .. } => Some(error),
            ChainError::Store(_) => None,
        }
    }
}

/// A [`ChainError::Invalid`] for `hash`.
pub(crate) fn invalid(hash: BlockHash, error: BlockError) -> ChainError {
    ChainError::Invalid { hash, error }
}
