//! The packets miners and wallets exchange on a `pow` network (seed 004's names) and the
//! framed connection that carries them: a 4-byte big-endian length, then that many bytes of
//! JSON `{"Type": <NAME>, "Data": {…}}`, as on quorum networks (PROTOCOL.md §5). Every read
//! has a size limit (checked on the length prefix, before buffering) and a timeout; every
//! write has a timeout. PROTOCOL.md §8 "Packets" documents each packet.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tally_core::{
    AccountId, Amount, Block, BlockHash, Digest, EscrowId, EscrowLock, EscrowSecret, NetworkId,
    TipInfo, Transaction, TxStatus, U256,
};
use tokio::net::TcpStream;

use crate::connection::{self, ConnectionError, Limits, PacketReader, PacketWriter};
use crate::quorum::{EscrowQuery, EscrowStanding};

/// Most blocks one `RECEIVE_BLOCK` carries (and the most a `SEND_REQUEST` may ask for).
pub const MAX_BLOCKS_PER_BATCH: u32 = 500;
/// Most transactions one `TRANSACTION` gossip packet carries.
pub const MAX_GOSSIP_TRANSACTIONS: usize = 1_000;
/// Most hashes in a locator (a real one has about 10 + log2(height)).
pub const MAX_LOCATOR: usize = 64;

/// A chain tip as `CONNECT` and answers carry it: what fork choice compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tip {
    /// The tip block's hash (the genesis hash before the first block).
    #[serde(rename = "Hash")]
    pub hash: BlockHash,
    /// Its height.
    #[serde(rename = "Height")]
    pub height: u64,
    /// The main chain's cumulative work (64 hex digits).
    #[serde(rename = "Work")]
    pub work: U256,
}

impl From<TipInfo> for Tip {
    fn from(tip: TipInfo) -> Self {
        Tip {
            hash: tip.hash,
            height: tip.height,
            work: tip.work,
        }
    }
}

/// `CONNECT`: sent by both sides when a miner connection opens, and again every keep-alive
/// interval: who I am, where I listen, and my tip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    /// The network id; a different one closes the connection.
    #[serde(rename = "Network")]
    pub network: NetworkId,
    /// Where the sender accepts miner connections (absent: it does not).
    #[serde(rename = "Listen", default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The sender's tip.
    #[serde(rename = "Tip")]
    pub tip: Tip,
}

/// `SEND_REQUEST`: "send me the main-chain blocks after the newest of these I share".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// Block locator: hashes from the asker's tip back to genesis, dense then sparse.
    #[serde(rename = "Locator")]
    pub locator: Vec<BlockHash>,
    /// Most blocks wanted (capped at [`MAX_BLOCKS_PER_BATCH`]).
    #[serde(rename = "Max")]
    pub max: u32,
}

/// `RECEIVE_BLOCK`: the answer to `SEND_REQUEST`, oldest block first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveBlock {
    /// Consecutive main-chain blocks from one above the fork point (empty: nothing newer).
    #[serde(rename = "Blocks")]
    pub blocks: Vec<Block>,
    /// The sender's tip when it answered.
    #[serde(rename = "Tip")]
    pub tip: Tip,
}

/// `HASH_BROADCAST`: a new block, relayed once by every miner that stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashBroadcast {
    /// The block hash (must equal the block's: a mismatch is the sender's fault).
    #[serde(rename = "Hash")]
    pub hash: BlockHash,
    /// The block.
    #[serde(rename = "Block")]
    pub block: Block,
}

/// `REJECT_BLOCK`: informational, to the sender of a block that was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectBlock {
    /// The refused block's hash.
    #[serde(rename = "Hash")]
    pub hash: BlockHash,
    /// The rule it broke.
    #[serde(rename = "Reason")]
    pub reason: String,
}

/// `ACCEPT_TRANSACTION`: the miner took the pushed transaction into its mempool and
/// relays it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptTransaction {
    /// The transaction id.
    #[serde(rename = "Id")]
    pub id: Digest,
}

/// `REJECT_TRANSACTION`: the pushed transaction was refused; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectTransaction {
    /// The transaction id (absent when the packet could not be read as one).
    #[serde(rename = "Id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Digest>,
    /// Why (the mempool's reason).
    #[serde(rename = "Reason")]
    pub reason: String,
}

/// `TRANSACTION`: transactions a miner accepted, shared with the other miners.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionGossip {
    /// At most [`MAX_GOSSIP_TRANSACTIONS`].
    #[serde(rename = "Transactions")]
    pub transactions: Vec<Transaction>,
}

/// `REQ_ACCOUNT`: a wallet asks for an account's confirmed state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReqAccount {
    /// The account.
    #[serde(rename = "Account")]
    pub account: AccountId,
}

/// `RESP_ACCOUNT`: an account's state at the miner's tip, and its pending transfers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespAccount {
    /// The account.
    #[serde(rename = "Account")]
    pub account: AccountId,
    /// Confirmed balance at the tip.
    #[serde(rename = "Balance")]
    pub balance: Amount,
    /// The sequence its next transfer must carry, counting confirmed transfers only.
    #[serde(rename = "Sequence")]
    pub sequence: u64,
    /// The sequence after its pending (mempool) transfers: what a new transfer should use.
    #[serde(rename = "NextSequence")]
    pub next_sequence: u64,
    /// Sum of its pending outgoing spends (a transfer's amount, a split's total).
    #[serde(rename = "PendingOut")]
    pub pending_out: Amount,
    /// Sum of what pending spends pay it (transfers to it and split outputs to it).
    #[serde(rename = "PendingIn")]
    pub pending_in: Amount,
    /// The tip these figures are at.
    #[serde(rename = "Tip")]
    pub tip: Tip,
}

/// Most accounts one `RESP_LEDGER` page carries.
pub const MAX_LEDGER_PAGE: u32 = 1_000;

/// `REQ_LEDGER`: a wallet asks for a page of the accounts at the tip, in account order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReqLedger {
    /// Start after this account (absent: from the first).
    #[serde(rename = "After", default, skip_serializing_if = "Option::is_none")]
    pub after: Option<AccountId>,
    /// Most accounts wanted (capped at [`MAX_LEDGER_PAGE`]).
    #[serde(rename = "Limit")]
    pub limit: u32,
}

/// One account of a `RESP_LEDGER` page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerAccount {
    /// The account.
    #[serde(rename = "Account")]
    pub account: AccountId,
    /// Confirmed balance at the tip.
    #[serde(rename = "Balance")]
    pub balance: Amount,
    /// The sequence its next transfer must carry (confirmed transfers only).
    #[serde(rename = "Sequence")]
    pub sequence: u64,
}

/// `RESP_LEDGER`: a page of the accounts at the tip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespLedger {
    /// The tip the page is at.
    #[serde(rename = "Tip")]
    pub tip: Tip,
    /// The sum of every balance at the tip: genesis plus every block reward.
    #[serde(rename = "Supply")]
    pub supply: Amount,
    /// How many accounts hold something or have sent.
    #[serde(rename = "Total")]
    pub total: u64,
    /// Accounts in increasing order, after `After`.
    #[serde(rename = "Accounts")]
    pub accounts: Vec<LedgerAccount>,
    /// Where the next page starts (absent: this was the last).
    #[serde(rename = "Next", default, skip_serializing_if = "Option::is_none")]
    pub next: Option<AccountId>,
}

/// `REQ_TX_STATUS`: a wallet asks what became of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReqTxStatus {
    /// The transaction.
    #[serde(rename = "Transaction")]
    pub transaction: Transaction,
}

/// `RESP_TX_STATUS`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespTxStatus {
    /// The transaction id.
    #[serde(rename = "Id")]
    pub id: Digest,
    /// Pending, confirmed (height and confirmations), buried, or unknown.
    #[serde(rename = "Status")]
    pub status: TxStatus,
    /// The tip the status is at.
    #[serde(rename = "Tip")]
    pub tip: Tip,
}

/// `RESP_ESCROW` on a proof-of-work network: what one miner knows of an escrow at its tip.
/// Not signed: the lock is checked against its id, the secret against the hash lock, and
/// blocks, not this answer, are what settle an escrow (a wallet asks several miners and
/// waits for confirmations).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainEscrowView {
    /// The escrow's id, when its lock is on the main chain.
    #[serde(rename = "Escrow", default, skip_serializing_if = "Option::is_none")]
    pub escrow: Option<EscrowId>,
    /// The lock order, when on the main chain.
    #[serde(rename = "Lock", default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<EscrowLock>,
    /// How it stands at the tip, when its lock is on the main chain.
    #[serde(rename = "State", default, skip_serializing_if = "Option::is_none")]
    pub standing: Option<EscrowStanding>,
    /// How deep the lock is.
    #[serde(
        rename = "LockStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub lock_status: Option<TxStatus>,
    /// The signed lock transaction, while its block is among the miner's recent ones.
    #[serde(
        rename = "LockTransaction",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub lock_transaction: Option<Transaction>,
    /// How deep the claim or refund that settled it is.
    #[serde(
        rename = "SettledStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub settled_status: Option<TxStatus>,
    /// The claim or refund pending in this miner's mempool.
    #[serde(rename = "Pending", default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Transaction>,
    /// The secret behind the hash lock, as soon as this miner has admitted a claim showing
    /// it (mined or not).
    #[serde(rename = "Secret", default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<EscrowSecret>,
    /// The tip the answer is at.
    #[serde(rename = "Tip")]
    pub tip: Tip,
    /// The tip's median time past (ms since the Unix epoch): the next block takes a claim
    /// while it is before the deadline, a refund once it has reached it.
    #[serde(rename = "MedianTime")]
    pub median_time_ms: u64,
}

/// `ERROR`: a request could not be served (malformed, wrong network, banned, busy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorMsg {
    /// Why.
    #[serde(rename = "Reason")]
    pub reason: String,
}

/// A packet of a `pow` network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Type", content = "Data")]
pub enum PowPacket {
    /// Miner ↔ miner: hello and tip (and keep-alive).
    #[serde(rename = "CONNECT")]
    Connect(Connect),
    /// Wallet → miner: take this transaction.
    #[serde(rename = "PUSH_TRANSACTION")]
    PushTransaction(Transaction),
    /// Miner → wallet: taken.
    #[serde(rename = "ACCEPT_TRANSACTION")]
    AcceptTransaction(AcceptTransaction),
    /// Miner → wallet: refused, with the reason.
    #[serde(rename = "REJECT_TRANSACTION")]
    RejectTransaction(RejectTransaction),
    /// Miner → miner: transactions to share.
    #[serde(rename = "TRANSACTION")]
    Transaction(TransactionGossip),
    /// Miner → miner: a new block.
    #[serde(rename = "HASH_BROADCAST")]
    HashBroadcast(HashBroadcast),
    /// Miner → miner: a block was refused (informational).
    #[serde(rename = "REJECT_BLOCK")]
    RejectBlock(RejectBlock),
    /// Miner → miner: ask for blocks.
    #[serde(rename = "SEND_REQUEST")]
    SendRequest(SendRequest),
    /// Miner → miner: blocks asked for.
    #[serde(rename = "RECEIVE_BLOCK")]
    ReceiveBlock(ReceiveBlock),
    /// Wallet → miner: an account's state.
    #[serde(rename = "REQ_ACCOUNT")]
    ReqAccount(ReqAccount),
    /// Miner → wallet.
    #[serde(rename = "RESP_ACCOUNT")]
    RespAccount(RespAccount),
    /// Wallet → miner: a page of the accounts at the tip.
    #[serde(rename = "REQ_LEDGER")]
    ReqLedger(ReqLedger),
    /// Miner → wallet.
    #[serde(rename = "RESP_LEDGER")]
    RespLedger(RespLedger),
    /// Wallet → miner: a transaction's status.
    #[serde(rename = "REQ_TX_STATUS")]
    ReqTxStatus(ReqTxStatus),
    /// Miner → wallet.
    #[serde(rename = "RESP_TX_STATUS")]
    RespTxStatus(RespTxStatus),
    /// Wallet → miner: an escrow by id or by hash lock.
    #[serde(rename = "REQ_ESCROW")]
    ReqEscrow(EscrowQuery),
    /// Miner → wallet.
    #[serde(rename = "RESP_ESCROW")]
    RespEscrow(Box<ChainEscrowView>),
    /// Either way: a request could not be served.
    #[serde(rename = "ERROR")]
    Error(ErrorMsg),
}

impl PowPacket {
    /// The packet's `Type`, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            PowPacket::Connect(_) => "CONNECT",
            PowPacket::PushTransaction(_) => "PUSH_TRANSACTION",
            PowPacket::AcceptTransaction(_) => "ACCEPT_TRANSACTION",
            PowPacket::RejectTransaction(_) => "REJECT_TRANSACTION",
            PowPacket::Transaction(_) => "TRANSACTION",
            PowPacket::HashBroadcast(_) => "HASH_BROADCAST",
            PowPacket::RejectBlock(_) => "REJECT_BLOCK",
            PowPacket::SendRequest(_) => "SEND_REQUEST",
            PowPacket::ReceiveBlock(_) => "RECEIVE_BLOCK",
            PowPacket::ReqAccount(_) => "REQ_ACCOUNT",
            PowPacket::RespAccount(_) => "RESP_ACCOUNT",
            PowPacket::ReqLedger(_) => "REQ_LEDGER",
            PowPacket::RespLedger(_) => "RESP_LEDGER",
            PowPacket::ReqTxStatus(_) => "REQ_TX_STATUS",
            PowPacket::RespTxStatus(_) => "RESP_TX_STATUS",
            PowPacket::ReqEscrow(_) => "REQ_ESCROW",
            PowPacket::RespEscrow(_) => "RESP_ESCROW",
            PowPacket::Error(_) => "ERROR",
        }
    }

    /// The packet's JSON bytes (serialising these plain structs cannot fail; an empty
    /// frame would be refused by the peer, never misread).
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Frame size and socket timeouts of a `pow` connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireLimits {
    /// The largest frame accepted or sent, in bytes.
    pub max_frame: usize,
    /// How long a read may wait for one whole frame.
    pub read_timeout: Duration,
    /// How long a write may wait for the peer to take the bytes.
    pub write_timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

impl WireLimits {
    /// Limits for a network whose blocks are at most `max_block_bytes`: a block's JSON form
    /// is under three times its binary size, so a frame of four times that plus slack
    /// carries any valid block; anything bigger is refused from its length prefix.
    pub fn for_blocks(max_block_bytes: u32) -> Self {
        WireLimits {
            max_frame: (max_block_bytes as usize)
                .saturating_mul(4)
                .saturating_add(1 << 20)
                .max(4 << 20),
            ..WireLimits::default()
        }
    }

    /// The frame and socket limits the framed connection keeps.
    pub fn frames(&self) -> Limits {
        Limits {
            max_frame: self.max_frame,
            read_timeout: self.read_timeout,
            write_timeout: self.write_timeout,
        }
    }
}

impl Default for WireLimits {
    fn default() -> Self {
        WireLimits {
            max_frame: 8 << 20,
            read_timeout: Duration::from_secs(120),
            write_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Reading half of a miner or wallet connection.
pub type WireReader = PacketReader<PowPacket>;

/// Writing half of a miner or wallet connection.
pub type WireWriter = PacketWriter;

/// Splits a stream into a size- and time-limited packet reader and writer.
pub fn split(stream: TcpStream, limits: WireLimits) -> (WireReader, WireWriter) {
    connection::split(stream, limits.frames())
}

/// Connects to `address` within the connect timeout.
pub async fn connect(address: &str, limits: WireLimits) -> Result<TcpStream, ConnectionError> {
    tokio::time::timeout(limits.connect_timeout, TcpStream::connect(address))
        .await
        .map_err(|_| ConnectionError::Timeout(limits.connect_timeout))?
        .map_err(ConnectionError::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn packets_have_the_seed_names_and_refuse_unknown_fields() {
        let p = PowPacket::Error(ErrorMsg { reason: "x".into() });
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"Type": "ERROR", "Data": {"Reason": "x"}})
        );
        assert!(
            serde_json::from_str::<PowPacket>(r#"{"Type":"ERROR","Data":{"Reason":"x","Y":1}}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<PowPacket>(r#"{"Type":"NOPE","Data":{}}"#).is_err());
        let req = PowPacket::SendRequest(SendRequest {
            locator: vec![],
            max: 3,
        });
        let back: PowPacket = serde_json::from_slice(&req.encode()).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.name(), "SEND_REQUEST");
    }

    #[test]
    fn frames_fit_the_largest_block() {
        let limits = WireLimits::for_blocks(1_000_000);
        assert!(limits.max_frame >= 4_000_000);
    }
}
