//! Errors: why a block is invalid (the peer's fault), why a transaction is refused (the
//! sender's), and why the chain itself failed (ours: storage).

use tally_core::{AccountId, Amount, Digest, EscrowId, EscrowShapeError, SplitError};

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
        "transaction {index} is a {kind} order; a proof-of-work network takes transfers, splits and escrows"
    )]
    NotASpend { index: usize, kind: &'static str },
    /// An escrow lock that breaks its shape rules (a zero amount, paying its payer, citing
    /// this network as its counterpart).
    #[error("transaction {index} is a malformed escrow lock: {reason}")]
    MalformedEscrow {
        index: usize,
        reason: EscrowShapeError,
    },
    /// A lock whose deadline is not after the median time past of the block's parent:
    /// nobody could ever claim it.
    #[error(
        "transaction {index} locks an escrow until {deadline} ms, not after the chain's median time {median_time} ms"
    )]
    EscrowExpired {
        index: usize,
        deadline: u64,
        median_time: u64,
    },
    /// A lock under a hash lock another escrow of this chain already uses.
    #[error("transaction {index} reuses hash lock {hash_lock}")]
    HashLockReused { index: usize, hash_lock: Digest },
    /// A claim or refund of an escrow the chain does not hold.
    #[error("transaction {index} settles escrow {escrow}, which is not on this chain")]
    UnknownEscrow { index: usize, escrow: EscrowId },
    /// A second settlement of one escrow.
    #[error("transaction {index} settles escrow {escrow}, which is settled already")]
    EscrowSettled { index: usize, escrow: EscrowId },
    /// A claim whose secret does not hash to the escrow's lock.
    #[error("transaction {index} claims escrow {escrow} with a secret that does not open it")]
    WrongSecret { index: usize, escrow: EscrowId },
    /// A claim in a block whose parent's median time past has reached the deadline.
    #[error(
        "transaction {index} claims escrow {escrow} at median time {median_time} ms, not before its deadline {deadline} ms"
    )]
    ClaimTooLate {
        index: usize,
        escrow: EscrowId,
        deadline: u64,
        median_time: u64,
    },
    /// A refund in a block whose parent's median time past is before the deadline.
    #[error(
        "transaction {index} refunds escrow {escrow} at median time {median_time} ms, before its deadline {deadline} ms"
    )]
    RefundTooEarly {
        index: usize,
        escrow: EscrowId,
        deadline: u64,
        median_time: u64,
    },
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
    #[error(
        "a {kind} order spends nothing; a proof-of-work network takes transfers, splits and escrows"
    )]
    NotASpend { kind: &'static str },
    /// An escrow lock that breaks its shape rules.
    #[error("malformed escrow lock: {0}")]
    MalformedEscrow(EscrowShapeError),
    /// The lock's deadline is not above the next block's height, or further ahead than the
    /// miner's policy takes.
    /// The lock's deadline is not after the chain's median time past, or further ahead
    /// than the miner's policy takes.
    #[error(
        "escrow deadline {deadline} ms is out of range: the chain's median time is {median_time} ms, and deadlines from {min} to {max} ms are taken"
    )]
    EscrowDeadline {
        deadline: u64,
        median_time: u64,
        min: u64,
        max: u64,
    },
    /// Another escrow on this chain (or pending) uses the hash lock.
    #[error("hash lock {0} is already used by an escrow on this chain")]
    HashLockReused(Digest),
    /// A claim or refund of an escrow the chain does not hold at its tip.
    #[error("no escrow {0} is open on this chain")]
    UnknownEscrow(EscrowId),
    /// The escrow was claimed or refunded already.
    #[error("escrow {0} was settled already")]
    EscrowSettled(EscrowId),
    /// The claim's secret does not hash to the escrow's lock.
    #[error("the secret does not open escrow {0}")]
    WrongSecret(EscrowId),
    /// The chain's median time past has reached the escrow's deadline: no block takes a
    /// claim any more.
    #[error(
        "escrow {escrow}'s deadline {deadline} ms has passed by the chain's median time ({median_time} ms): it takes no claim"
    )]
    ClaimTooLate {
        escrow: EscrowId,
        deadline: u64,
        median_time: u64,
    },
    /// The chain's median time past is before the escrow's deadline: no refund yet.
    #[error(
        "escrow {escrow} can be refunded once the chain's median time reaches {deadline} ms, not yet ({median_time} ms)"
    )]
    RefundTooEarly {
        escrow: EscrowId,
        deadline: u64,
        median_time: u64,
    },
    /// A claim or refund of this escrow is pending already.
    #[error("a settlement of escrow {0} is pending already")]
    SettlementPending(EscrowId),
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
