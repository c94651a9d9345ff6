//! One miner of a `pow` network, as a wallet talks to it: hand it a transaction
//! (`PUSH_TRANSACTION` → `ACCEPT_TRANSACTION` or `REJECT_TRANSACTION`), ask for an
//! account's state (`REQ_ACCOUNT`), the accounts at the tip (`REQ_LEDGER`), a
//! transaction's fate (`REQ_TX_STATUS`) or an escrow's (`REQ_ESCROW`). Each call opens one connection, sends one request
//! and waits for its answer within the limits.

use tally_core::{AccountId, Digest};
use tally_core::{Transaction, TxStatus};
use tally_proto::EscrowQuery;
use tally_proto::pow::{
    self, ChainEscrowView, PowPacket, ReqAccount, ReqLedger, ReqTxStatus, RespAccount, RespLedger,
    Tip, WireLimits,
};

/// Why a request to a miner failed.
#[derive(Debug, thiserror::Error)]
pub enum MinerError {
    /// The miner refused the transaction; nothing changed.
    #[error("refused: {0}")]
    Rejected(String),
    /// The miner answered `ERROR`.
    #[error("miner error: {0}")]
    Remote(String),
    /// Connecting, reading or writing failed, or timed out.
    #[error(transparent)]
    Wire(#[from] tally_proto::ConnectionError),
    /// The miner answered something else.
    #[error("unexpected answer {0}")]
    Unexpected(&'static str),
}

async fn call(
    address: &str,
    request: &PowPacket,
    limits: WireLimits,
) -> Result<PowPacket, MinerError> {
    let stream = pow::connect(address, limits).await?;
    let (mut reader, mut writer) = pow::split(stream, limits);
    writer.send(request).await?;
    match reader.recv().await? {
        PowPacket::Error(error) => Err(MinerError::Remote(error.reason)),
        answer => Ok(answer),
    }
}

/// Hands `tx` to the miner at `address` (`PUSH_TRANSACTION`). `Ok` is its id: the miner
/// took it into its mempool and relays it to the other miners (`TRANSACTION`).
pub async fn push_transaction(
    address: &str,
    tx: &Transaction,
    limits: WireLimits,
) -> Result<Digest, MinerError> {
    match call(address, &PowPacket::PushTransaction(tx.clone()), limits).await? {
        PowPacket::AcceptTransaction(accept) => Ok(accept.id),
        PowPacket::RejectTransaction(reject) => Err(MinerError::Rejected(reject.reason)),
        other => Err(MinerError::Unexpected(other.name())),
    }
}

/// An account's balance and sequences at the miner's tip, with its pending transfers.
/// A new transfer should carry `next_sequence`.
pub async fn account(
    address: &str,
    account: &AccountId,
    limits: WireLimits,
) -> Result<RespAccount, MinerError> {
    let request = PowPacket::ReqAccount(ReqAccount { account: *account });
    match call(address, &request, limits).await? {
        PowPacket::RespAccount(info) => Ok(info),
        other => Err(MinerError::Unexpected(other.name())),
    }
}

/// A page of the accounts at the miner's tip, after `after`, at most `limit`
/// (`REQ_LEDGER`); the answer's `next` says where the next page starts.
pub async fn ledger(
    address: &str,
    after: Option<AccountId>,
    limit: u32,
    limits: WireLimits,
) -> Result<RespLedger, MinerError> {
    let request = PowPacket::ReqLedger(ReqLedger { after, limit });
    match call(address, &request, limits).await? {
        PowPacket::RespLedger(page) => Ok(page),
        other => Err(MinerError::Unexpected(other.name())),
    }
}

/// What became of `tx` at the miner (pending, confirmed with its confirmations, buried,
/// unknown), and the tip that is at.
pub async fn transaction_status(
    address: &str,
    tx: &Transaction,
    limits: WireLimits,
) -> Result<(TxStatus, Tip), MinerError> {
    let request = PowPacket::ReqTxStatus(ReqTxStatus {
        transaction: tx.clone(),
    });
    match call(address, &request, limits).await? {
        PowPacket::RespTxStatus(resp) => Ok((resp.status, resp.tip)),
        other => Err(MinerError::Unexpected(other.name())),
    }
}

/// What the miner knows of an escrow, by id or by hash lock (`REQ_ESCROW`).
pub async fn escrow(
    address: &str,
    query: &EscrowQuery,
    limits: WireLimits,
) -> Result<ChainEscrowView, MinerError> {
    match call(address, &PowPacket::ReqEscrow(*query), limits).await? {
        PowPacket::RespEscrow(view) => Ok(*view),
        other => Err(MinerError::Unexpected(other.name())),
    }
}
