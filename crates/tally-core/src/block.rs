//! Proof-of-work blocks, their headers, coinbases and transactions, with their canonical
//! bytes (PROTOCOL.md §8, "Proof-of-work chain"), the merkle root and the genesis hash.
//!
//! Every layout is the codec's (fixed-size fields, little-endian integers), except the
//! target, which is big-endian so that "hash <= target" is a plain byte comparison.
//! Decoding is strict and bounded because blocks come from hostile peers, and it never
//! panics. Which transactions a chain accepts is not decided here: a transaction carries
//! any kind of signed order, and the chain's rules say which kinds count.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::codec::{Decode, DecodeError, Encode, Reader, encode_seq, seq_encoded_len};
use crate::u256::U256;
use crate::{
    AccountId, Amount, Digest, NetworkId, Order, SecretKey, Signature, SignedOrder, Transfer,
};

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
    /// The canonical 156 bytes as an array (the miner and the hash need no allocation):
    /// `version u32 ‖ network 32 ‖ height u64 ‖ previous 32 ‖ merkle root 32 ‖
    /// timestamp u64 ‖ target 32 big-endian ‖ nonce u64`.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(self.network.0.as_bytes());
        out[36..44].copy_from_slice(&self.height.to_le_bytes());
        out[44..76].copy_from_slice(self.previous.as_bytes());
        out[76..108].copy_from_slice(self.merkle_root.as_bytes());
        out[108..116].copy_from_slice(&self.timestamp_ms.to_le_bytes());
        out[116..NONCE_OFFSET].copy_from_slice(&self.target.to_be_bytes());
        out[NONCE_OFFSET..HEADER_LEN].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Parses exactly [`HEADER_LEN`] bytes ([`Decode::from_bytes`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_bytes(bytes)
    }

    /// The block hash: SHA-256d of the encoded header.
    pub fn hash(&self) -> BlockHash {
        crate::sha256d(&self.encode())
    }

    /// Whether the hash, read big-endian, is at most the header's own target.
    pub fn meets_own_target(&self) -> bool {
        U256::from_be_bytes(self.hash().as_bytes()) <= self.target
    }
}

impl Encode for BlockHeader {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.encode());
    }
    fn encoded_len(&self) -> usize {
        HEADER_LEN
    }
}

impl Decode for BlockHeader {
    const MIN_ENCODED_LEN: usize = HEADER_LEN;
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(BlockHeader {
            version: reader.u32()?,
            network: reader.read()?,
            height: reader.u64()?,
            previous: reader.read()?,
            merkle_root: reader.read()?,
            timestamp_ms: reader.u64()?,
            target: reader.read()?,
            nonce: reader.u64()?,
        })
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
    /// The canonical 48 bytes as an array: `miner 32 ‖ amount u64 ‖ height u64`.
    pub fn encode(&self) -> [u8; COINBASE_LEN] {
        let mut out = [0u8; COINBASE_LEN];
        out[0..32].copy_from_slice(self.miner.as_bytes());
        out[32..40].copy_from_slice(&self.amount.microcash().to_le_bytes());
        out[40..48].copy_from_slice(&self.height.to_le_bytes());
        out
    }

    /// Its merkle leaf: SHA-256(`TALLY-COINBASE-V1` ‖ encoding).
    pub fn id(&self) -> Digest {
        crate::sha256(&[COINBASE_TAG, &self.encode()])
    }
}

impl Encode for Coinbase {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.encode());
    }
    fn encoded_len(&self) -> usize {
        COINBASE_LEN
    }
}

impl Decode for Coinbase {
    const MIN_ENCODED_LEN: usize = COINBASE_LEN;
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Coinbase {
            miner: reader.read()?,
            amount: reader.read()?,
            height: reader.u64()?,
        })
    }
}

/// A transaction: a signed order, exactly as the quorum networks use it (the signature
/// covers the network id; a transfer's sequence number prevents replay). It may carry any
/// kind of order; the chain's rules decide which kinds a network accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// What the signer signed.
    pub order: Order,
    /// The signer's signature over the order's signing bytes.
    pub signature: Signature,
}

impl Transaction {
    /// Signs an order (a [`Transfer`], say) with its signer's key.
    pub fn sign(order: impl Into<Order>, key: &SecretKey, network: &NetworkId) -> Self {
        SignedOrder::sign(order.into(), key, network).into()
    }

    /// The account that signed it (`None` for an escrow's claim or refund, which no key
    /// signs).
    pub fn signer(&self) -> Option<AccountId> {
        self.order.signer()
    }

    /// The transfer it makes, if it is one.
    pub fn transfer(&self) -> Option<&Transfer> {
        self.order.as_transfer()
    }

    /// The signed order (the JSON form wallets and packets use).
    pub fn to_signed_order(&self) -> SignedOrder {
        SignedOrder {
            order: self.order.clone(),
            signature: self.signature,
        }
    }

    /// The bytes the signer signed (see the order layout).
    pub fn signing_bytes(&self, network: &NetworkId) -> Vec<u8> {
        self.order.signing_bytes(network)
    }

    /// The canonical bytes: those of the signed order (145 for a transfer).
    pub fn encode(&self) -> Vec<u8> {
        self.to_bytes()
    }

    /// Parses exactly one transaction ([`Decode::from_bytes`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_bytes(bytes)
    }

    /// Its id and merkle leaf: SHA-256(`TALLY-TX-V1` ‖ encoding). It covers the signature,
    /// so a block's hash pins every byte of every transaction.
    pub fn id(&self) -> Digest {
        crate::sha256(&[TRANSACTION_TAG, &self.to_bytes()])
    }
}

impl From<SignedOrder> for Transaction {
    fn from(signed: SignedOrder) -> Self {
        Transaction {
            order: signed.order,
            signature: signed.signature,
        }
    }
}

impl From<Transaction> for SignedOrder {
    fn from(tx: Transaction) -> Self {
        tx.to_signed_order()
    }
}

/// The signed order's layout: `order ‖ signature (64)`.
impl Encode for Transaction {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.to_signed_order().encode_to(out);
    }
    fn encoded_len(&self) -> usize {
        self.to_signed_order().encoded_len()
    }
}

impl Decode for Transaction {
    const MIN_ENCODED_LEN: usize = SignedOrder::MIN_ENCODED_LEN;
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        SignedOrder::decode_from(reader).map(Transaction::from)
    }
}

impl Serialize for Transaction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_signed_order().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Transaction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SignedOrder::deserialize(d).map(Transaction::from)
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

    /// The canonical bytes: `header 156 ‖ coinbase 48 ‖ transaction count u32 ‖
    /// transactions`.
    pub fn encode(&self) -> Vec<u8> {
        self.to_bytes()
    }

    /// Parses exactly one block, at most as many transactions as the bytes can hold
    /// ([`Decode::from_bytes`]; see [`Block::decode_limited`] for a tighter bound).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_bytes(bytes)
    }

    /// Parses exactly one block of at most `max_transactions` transactions.
    pub fn decode_limited(bytes: &[u8], max_transactions: usize) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let block = Self::decode_bounded(&mut reader, max_transactions)?;
        reader.finish()?;
        Ok(block)
    }

    fn decode_bounded(
        reader: &mut Reader<'_>,
        max_transactions: usize,
    ) -> Result<Self, DecodeError> {
        Ok(Block {
            header: reader.read()?,
            coinbase: reader.read()?,
            transactions: reader.seq("transactions", max_transactions)?,
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

impl Encode for Block {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.header.encode_to(out);
        self.coinbase.encode_to(out);
        encode_seq(&self.transactions, out);
    }
    fn encoded_len(&self) -> usize {
        HEADER_LEN + COINBASE_LEN + seq_encoded_len(&self.transactions)
    }
}

impl Decode for Block {
    const MIN_ENCODED_LEN: usize = BLOCK_PREFIX_LEN;
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_bounded(reader, usize::MAX)
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
    crate::sha256(&[GENESIS_TAG, network.0.as_bytes()])
}
