//! Blocks and their canonical bytes (PROTOCOL.md, "Proof-of-work chain").
//!
//! Every byte layout here is fixed-size per field with little-endian integers, except the
//! target, which is big-endian so that "hash <= target" is a plain byte comparison. Decoding
//! is strict (exact lengths, no trailing bytes, bounded counts) because blocks come from
//! hostile peers, and it never panics.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tally_core::{AccountId, Amount, Digest, NetworkId, Order, Signature, SignedOrder, Transfer};

use crate::u256::U256;

/// The hash of a block: SHA-256d of its 156-byte header.
pub type BlockHash = Digest;

/// The only header version so far.
pub const HEADER_VERSION: u32 = 1;
/// Bytes in an encoded header.
pub const HEADER_LEN: usize = 156;
/// Offset of the nonce in the header: everything before it is fixed during a nonce search,
/// and the first 64 bytes form one whole SHA-256 block whose state the miner reuses.
pub const NONCE_OFFSET: usize = 148;
/// Bytes in an encoded coinbase.
pub const COINBASE_LEN: usize = 48;
/// Bytes in an encoded transaction.
pub const TRANSACTION_LEN: usize = 145;
/// Bytes of a block before its transactions: header, coinbase, transaction count.
pub const BLOCK_PREFIX_LEN: usize = HEADER_LEN + COINBASE_LEN + 4;

/// Domain tag of a coinbase's merkle leaf.
pub const COINBASE_TAG: &[u8] = b"TALLY-COINBASE-V1";
/// Domain tag of a transaction's merkle leaf (its id).
pub const TRANSACTION_TAG: &[u8] = b"TALLY-TX-V1";
/// Domain tag of the virtual genesis block's hash.
pub const GENESIS_TAG: &[u8] = b"TALLY-GENESIS-V1";
/// The byte in front of an inner merkle node's two children.
pub const MERKLE_NODE_PREFIX: u8 = 0x01;
/// The kind byte of a transfer (the same number as in an order's signing bytes).
pub const KIND_TRANSFER: u8 = 2;

/// Why bytes are not a block, header or transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("expected {expected} bytes, got {got}")]
    Length { expected: usize, got: usize },
    #[error("block is {got} bytes, shorter than the {min}-byte minimum")]
    TooShort { got: usize, min: usize },
    #[error("transaction {index} has unknown kind {kind}")]
    UnknownKind { index: usize, kind: u8 },
}

/// The block header. 156 bytes on the wire (see [`BlockHeader::encode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockHeader {
    /// Header format version, [`HEADER_VERSION`].
    #[serde(rename = "Version")]
    pub version: u32,
    /// The network this block belongs to: a block is worthless on any other.
    #[serde(rename = "Network")]
    pub network: NetworkId,
    /// Blocks since genesis (genesis is height 0, the first mined block height 1).
    #[serde(rename = "Height")]
    pub height: u64,
    /// The parent block's hash.
    #[serde(rename = "PreviousHash")]
    pub previous: BlockHash,
    /// Merkle root over the coinbase id and the transaction ids.
    #[serde(rename = "MerkleRoot")]
    pub merkle_root: Digest,
    /// Milliseconds since the Unix epoch, by the miner's clock.
    #[serde(rename = "Timestamp")]
    pub timestamp_ms: u64,
    /// The block hash, read as a big-endian number, must not exceed this.
    #[serde(rename = "Target")]
    pub target: U256,
    /// What the miner varies.
    #[serde(rename = "Nonce")]
    pub nonce: u64,
}

impl BlockHeader {
    /// The canonical 156 bytes:
    /// `version u32 LE ‖ network 32 ‖ height u64 LE ‖ previous 32 ‖ merkle root 32 ‖
    /// timestamp u64 LE ‖ target 32 big-endian ‖ nonce u64 LE`.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(self.network.as_bytes());
        out[36..44].copy_from_slice(&self.height.to_le_bytes());
        out[44..76].copy_from_slice(self.previous.as_bytes());
        out[76..108].copy_from_slice(self.merkle_root.as_bytes());
        out[108..116].copy_from_slice(&self.timestamp_ms.to_le_bytes());
        out[116..148].copy_from_slice(&self.target.to_be_bytes());
        out[NONCE_OFFSET..HEADER_LEN].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Parses exactly [`HEADER_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let bytes: &[u8; HEADER_LEN] = bytes.try_into().map_err(|_| DecodeError::Length {
            expected: HEADER_LEN,
            got: bytes.len(),
        })?;
        let mut r = Reader::new(bytes);
        Ok(BlockHeader {
            version: r.u32(),
            network: NetworkId(Digest::from(r.array::<32>())),
            height: r.u64(),
            previous: Digest::from(r.array::<32>()),
            merkle_root: Digest::from(r.array::<32>()),
            timestamp_ms: r.u64(),
            target: U256::from_be_bytes(&r.array::<32>()),
            nonce: r.u64(),
        })
    }

    /// The block hash: SHA-256d of the encoded header.
    pub fn hash(&self) -> BlockHash {
        tally_core::sha256d(&self.encode())
    }

    /// Whether the hash, read big-endian, is at most the header's own target.
    pub fn meets_own_target(&self) -> bool {
        U256::from_be_bytes(self.hash().as_bytes()) <= self.target
    }
}

/// What the block pays its miner: the only way new cash appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coinbase {
    /// The account credited.
    #[serde(rename = "Miner")]
    pub miner: AccountId,
    /// Exactly the contract's block reward.
    #[serde(rename = "Amount")]
    pub amount: Amount,
    /// The block's height (so two coinbases to one miner never share an id).
    #[serde(rename = "Height")]
    pub height: u64,
}

impl Coinbase {
    /// `miner 32 ‖ amount u64 LE ‖ height u64 LE`.
    pub fn encode(&self) -> [u8; COINBASE_LEN] {
        let mut out = [0u8; COINBASE_LEN];
        out[0..32].copy_from_slice(self.miner.as_bytes());
        out[32..40].copy_from_slice(&self.amount.microcash().to_le_bytes());
        out[40..48].copy_from_slice(&self.height.to_le_bytes());
        out
    }

    /// Its merkle leaf: SHA-256(`TALLY-COINBASE-V1` ‖ encoding).
    pub fn id(&self) -> Digest {
        tally_core::sha256(&[COINBASE_TAG, &self.encode()])
    }
}

/// A transaction: a signed transfer order, exactly as the quorum networks use (the sender's
/// sequence number prevents replay; the signature covers the network id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// What the sender signed.
    pub transfer: Transfer,
    /// The sender's signature over the order's signing bytes.
    pub signature: Signature,
}

impl Transaction {
    /// Signs a transfer with the sender's key.
    pub fn sign(transfer: Transfer, key: &tally_core::SecretKey, network: &NetworkId) -> Self {
        let signed = SignedOrder::sign(Order::Transfer(transfer), key, network);
        Transaction {
            transfer,
            signature: signed.signature,
        }
    }

    /// The signed order (the JSON form wallets and packets use).
    pub fn to_signed_order(&self) -> SignedOrder {
        SignedOrder {
            order: Order::Transfer(self.transfer),
            signature: self.signature,
        }
    }

    /// The bytes the sender signed (see tally-core's order layout).
    pub fn signing_bytes(&self, network: &NetworkId) -> Vec<u8> {
        Order::Transfer(self.transfer).signing_bytes(network)
    }

    /// `kind 0x02 ‖ sender 32 ‖ recipient 32 ‖ amount u64 LE ‖ sequence u64 LE ‖ signature 64`.
    pub fn encode(&self) -> [u8; TRANSACTION_LEN] {
        let mut out = [0u8; TRANSACTION_LEN];
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut [u8; TRANSACTION_LEN]) {
        out[0] = KIND_TRANSFER;
        out[1..33].copy_from_slice(self.transfer.sender.as_bytes());
        out[33..65].copy_from_slice(self.transfer.recipient.as_bytes());
        out[65..73].copy_from_slice(&self.transfer.amount.microcash().to_le_bytes());
        out[73..81].copy_from_slice(&self.transfer.sequence.to_le_bytes());
        out[81..145].copy_from_slice(self.signature.as_bytes());
    }

    /// Parses exactly [`TRANSACTION_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_at(bytes, 0)
    }

    fn decode_at(bytes: &[u8], index: usize) -> Result<Self, DecodeError> {
        let bytes: &[u8; TRANSACTION_LEN] = bytes.try_into().map_err(|_| DecodeError::Length {
            expected: TRANSACTION_LEN,
            got: bytes.len(),
        })?;
        let mut r = Reader::new(bytes);
        let kind = r.u8();
        if kind != KIND_TRANSFER {
            return Err(DecodeError::UnknownKind { index, kind });
        }
        Ok(Transaction {
            transfer: Transfer {
                sender: AccountId::from(r.array::<32>()),
                recipient: AccountId::from(r.array::<32>()),
                amount: Amount::from_microcash(r.u64()),
                sequence: r.u64(),
            },
            signature: Signature::from(r.array::<64>()),
        })
    }

    /// Its id and merkle leaf: SHA-256(`TALLY-TX-V1` ‖ encoding). It covers the signature,
    /// so a block's hash pins every byte of every transaction.
    pub fn id(&self) -> Digest {
        tally_core::sha256(&[TRANSACTION_TAG, &self.encode()])
    }
}

/// The error for a signed order that is not a transfer (pow networks carry only transfers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only transfer orders can be proof-of-work transactions")]
pub struct NotATransfer;

impl TryFrom<SignedOrder> for Transaction {
    type Error = NotATransfer;
    fn try_from(signed: SignedOrder) -> Result<Self, NotATransfer> {
        match signed.order {
            Order::Transfer(transfer) => Ok(Transaction {
                transfer,
                signature: signed.signature,
            }),
            Order::IntroKey(_) => Err(NotATransfer),
        }
    }
}

impl Serialize for Transaction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_signed_order().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Transaction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let signed = SignedOrder::deserialize(d)?;
        Transaction::try_from(signed).map_err(serde::de::Error::custom)
    }
}

/// A block: header, coinbase, transactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// What the proof of work covers.
    #[serde(rename = "Header")]
    pub header: BlockHeader,
    /// The miner's reward.
    #[serde(rename = "Coinbase")]
    pub coinbase: Coinbase,
    /// Applied in this order.
    #[serde(rename = "Transactions")]
    pub transactions: Vec<Transaction>,
}

impl Block {
    /// The block hash.
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// The size of [`Block::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        BLOCK_PREFIX_LEN + TRANSACTION_LEN * self.transactions.len()
    }

    /// `header 156 ‖ coinbase 48 ‖ transaction count u32 LE ‖ transactions (145 each)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&self.header.encode());
        out.extend_from_slice(&self.coinbase.encode());
        let count = u32::try_from(self.transactions.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        let mut buf = [0u8; TRANSACTION_LEN];
        for tx in &self.transactions {
            tx.encode_into(&mut buf);
            out.extend_from_slice(&buf);
        }
        out
    }

    /// Parses a block; the count must match the remaining bytes exactly, so a hostile
    /// count cannot make us allocate more than the bytes we were given.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < BLOCK_PREFIX_LEN {
            return Err(DecodeError::TooShort {
                got: bytes.len(),
                min: BLOCK_PREFIX_LEN,
            });
        }
        let header = BlockHeader::decode(&bytes[..HEADER_LEN])?;
        let mut r = Reader::new(&bytes[HEADER_LEN..BLOCK_PREFIX_LEN]);
        let coinbase = Coinbase {
            miner: AccountId::from(r.array::<32>()),
            amount: Amount::from_microcash(r.u64()),
            height: r.u64(),
        };
        let count = r.u32() as usize;
        let body = &bytes[BLOCK_PREFIX_LEN..];
        let expected = count.saturating_mul(TRANSACTION_LEN);
        if body.len() != expected {
            return Err(DecodeError::Length {
                expected: BLOCK_PREFIX_LEN.saturating_add(expected),
                got: bytes.len(),
            });
        }
        let transactions = body
            .chunks_exact(TRANSACTION_LEN)
            .enumerate()
            .map(|(index, chunk)| Transaction::decode_at(chunk, index))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Block {
            header,
            coinbase,
            transactions,
        })
    }

    /// The merkle leaves: the coinbase id, then each transaction id in order.
    pub fn leaves(&self) -> Vec<Digest> {
        let mut leaves = Vec::with_capacity(1 + self.transactions.len());
        leaves.push(self.coinbase.id());
        leaves.extend(self.transactions.iter().map(Transaction::id));
        leaves
    }

    /// The merkle root this block's contents call for.
    pub fn compute_merkle_root(&self) -> Digest {
        merkle_root(self.leaves())
    }
}

/// The merkle root of `leaves`: pair neighbours level by level with
/// SHA-256(`0x01` ‖ left ‖ right); an odd last node moves up unchanged (never duplicated,
/// so no two different leaf lists share a root). The root of one leaf is that leaf; of none,
/// 32 zero bytes.
pub fn merkle_root(mut level: Vec<Digest>) -> Digest {
    if level.is_empty() {
        return Digest::default();
    }
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [left, right] => {
                    let mut hasher = Sha256::new();
                    hasher.update([MERKLE_NODE_PREFIX]);
                    hasher.update(left.as_bytes());
                    hasher.update(right.as_bytes());
                    next.push(Digest::from(<[u8; 32]>::from(hasher.finalize())));
                }
                [single] => next.push(*single),
                _ => {}
            }
        }
        level = next;
    }
    level.first().copied().unwrap_or_default()
}

/// The hash standing for the genesis block of `network`: there is no genesis block on the
/// wire (the contract is the genesis), so block 1's parent is this value.
pub fn genesis_hash(network: &NetworkId) -> BlockHash {
    tally_core::sha256(&[GENESIS_TAG, network.as_bytes()])
}

/// Reads fixed-size fields from a slice whose length the caller has checked.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(slice) = self.bytes.get(self.at..self.at + N) {
            out.copy_from_slice(slice);
        }
        self.at += N;
        out
    }

    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}
