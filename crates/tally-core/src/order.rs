//! Orders (what an account signs), votes (what a validator signs) and certificates (an order
//! with a quorum of votes). The byte layouts below are the protocol: PROTOCOL.md lists them
//! with test vectors, and the tests at the bottom check those vectors.

use std::collections::HashSet;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{Decode, DecodeError, Encode, Reader, encode_seq, seq_encoded_len};
use crate::{
    AccountId, Amount, BatchVerifier, Committee, Digest, NetworkId, SecretKey, Signature, sha256,
};

mod escrow;

pub use escrow::{
    Counterpart, EscrowClaim, EscrowId, EscrowLock, EscrowRefund, EscrowShapeError, EscrowState,
    Settlement,
};

/// Domain tag in front of every order's signing bytes.
pub const ORDER_TAG: &[u8] = b"TALLY-ORDER-V1";
/// Domain tag in front of every vote's signing bytes.
pub const VOTE_TAG: &[u8] = b"TALLY-VOTE-V1";

/// The kind byte of an [`IntroKey`] order.
pub const KIND_INTRO_KEY: u8 = 1;
/// The kind byte of a [`Transfer`] order.
pub const KIND_TRANSFER: u8 = 2;
/// The kind byte of a [`Split`] order.
pub const KIND_SPLIT: u8 = 3;
/// The kind byte of an [`EscrowLock`] order.
pub const KIND_ESCROW_LOCK: u8 = 4;
/// The kind byte of an [`EscrowClaim`] order.
pub const KIND_ESCROW_CLAIM: u8 = 5;
/// The kind byte of an [`EscrowRefund`] order.
pub const KIND_ESCROW_REFUND: u8 = 6;

/// The most outputs one [`Split`] pays: enough for any withdrawal a person makes at once
/// (the wallet uses several orders beyond it), small enough that one order stays cheap to
/// check and to carry.
pub const MAX_SPLIT_OUTPUTS: usize = 64;

/// The digest of an order's signing bytes; what votes sign, and the order's id.
pub type OrderDigest = Digest;

/// Pay `amount` from `sender` to `recipient`; `sequence` is the sender's next order number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    #[serde(rename = "Fromkey")]
    pub sender: AccountId,
    #[serde(rename = "Tokey")]
    pub recipient: AccountId,
    #[serde(rename = "Amount")]
    pub amount: Amount,
    #[serde(rename = "Sequence")]
    pub sequence: u64,
}

/// Introduce `account` with its proof of work; it receives the faucet amount once.
///
/// The proof of work travels with the order (its encoding carries it, and each validator
/// checks it before voting) but is not part of what is signed and agreed: see
/// [`Order::signing_bytes`]. A key has exactly one introduction, whatever nonce it is sent
/// with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntroKey {
    #[serde(rename = "Key")]
    pub account: AccountId,
    #[serde(rename = "ProofOfWork")]
    pub proof_of_work: u64,
}

/// One output of a [`Split`]: `amount` to `recipient`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    #[serde(rename = "Tokey")]
    pub recipient: AccountId,
    #[serde(rename = "Amount")]
    pub amount: Amount,
}

/// Pay several recipients from `sender` at once, all or nothing: one lock slot (the
/// sender's `sequence`), one certificate. Withdrawing coins and breaking a coin into
/// smaller ones are each one `Split`, so a crash can never leave half of one done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    #[serde(rename = "Fromkey")]
    pub sender: AccountId,
    #[serde(rename = "Sequence")]
    pub sequence: u64,
    /// At most [`MAX_SPLIT_OUTPUTS`], distinct recipients, none the sender.
    #[serde(rename = "Outputs")]
    pub outputs: Vec<Payment>,
}

/// Why a [`Split`] can never be certified, whatever the ledger holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("a split pays between 1 and {MAX_SPLIT_OUTPUTS} outputs, not {0}")]
    OutputCount(usize),
    #[error("a split output pays zero")]
    ZeroAmount,
    #[error("a split pays its own sender")]
    PaysSender,
    #[error("a split pays one recipient twice")]
    DuplicateRecipient,
    #[error("a split's outputs add up to more than any amount")]
    Overflow,
}

impl Split {
    /// The sum of the outputs, once the split is well formed: 1 to [`MAX_SPLIT_OUTPUTS`]
    /// outputs, none zero, none to the sender, no recipient twice, no overflow.
    pub fn total(&self) -> Result<Amount, SplitError> {
        if self.outputs.is_empty() || self.outputs.len() > MAX_SPLIT_OUTPUTS {
            return Err(SplitError::OutputCount(self.outputs.len()));
        }
        let mut seen = HashSet::with_capacity(self.outputs.len());
        let mut total = Amount::ZERO;
        for output in &self.outputs {
            if output.amount.is_zero() {
                return Err(SplitError::ZeroAmount);
            }
            if output.recipient == self.sender {
                return Err(SplitError::PaysSender);
            }
            if !seen.insert(output.recipient) {
                return Err(SplitError::DuplicateRecipient);
            }
            total = total
                .checked_add(output.amount)
                .ok_or(SplitError::Overflow)?;
        }
        Ok(total)
    }
}

/// Something validators vote for: signed by an account, or (an escrow's claim or refund)
/// authorised by a secret or the clock instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    IntroKey(IntroKey),
    Transfer(Transfer),
    Split(Split),
    /// Boxed: a lock is several times the size of any other order, and every packet and
    /// certificate would carry that size.
    EscrowLock(Box<EscrowLock>),
    EscrowClaim(EscrowClaim),
    EscrowRefund(EscrowRefund),
}

/// The slot a validator locks when it votes: at most one vote per slot, ever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockSlot {
    /// An account's order with this sequence number.
    Sequence(AccountId, u64),
    /// The one introduction of a key.
    Intro(AccountId),
    /// The one settlement (claim or refund) of an escrow.
    Escrow(EscrowId),
}

impl Order {
    /// The account that must sign this order; `None` for an escrow's claim or refund,
    /// which no key signs (their signature field is [`Signature::NONE`]).
    pub fn signer(&self) -> Option<AccountId> {
        match self {
            Order::IntroKey(intro) => Some(intro.account),
            Order::Transfer(transfer) => Some(transfer.sender),
            Order::Split(split) => Some(split.sender),
            Order::EscrowLock(lock) => Some(lock.payer),
            Order::EscrowClaim(_) | Order::EscrowRefund(_) => None,
        }
    }

    /// The account whose sequence slot this order takes, with that sequence: the orders
    /// that spend from an account (transfers, splits, escrow locks).
    pub fn spender(&self) -> Option<(AccountId, u64)> {
        match self.lock_slot() {
            LockSlot::Sequence(account, sequence) => Some((account, sequence)),
            LockSlot::Intro(_) | LockSlot::Escrow(_) => None,
        }
    }

    /// The slot a vote for this order locks.
    pub fn lock_slot(&self) -> LockSlot {
        match self {
            Order::IntroKey(intro) => LockSlot::Intro(intro.account),
            Order::Transfer(t) => LockSlot::Sequence(t.sender, t.sequence),
            Order::Split(split) => LockSlot::Sequence(split.sender, split.sequence),
            Order::EscrowLock(lock) => LockSlot::Sequence(lock.payer, lock.sequence),
            Order::EscrowClaim(claim) => LockSlot::Escrow(claim.escrow),
            Order::EscrowRefund(refund) => LockSlot::Escrow(refund.escrow),
        }
    }

    /// The sender's sequence number, for the orders that spend from an account.
    pub fn sequence(&self) -> Option<u64> {
        self.spender().map(|(_, sequence)| sequence)
    }

    /// Who receives what straight from this order when it is applied. Empty for an
    /// introduction (the contract fixes its faucet amount) and for an escrow's orders: a
    /// lock pays nobody yet, and its claim or refund pays the payee or payer the lock
    /// named, which only the ledger knows.
    pub fn payments(&self) -> Vec<Payment> {
        match self {
            Order::Transfer(t) => vec![Payment {
                recipient: t.recipient,
                amount: t.amount,
            }],
            Order::Split(split) => split.outputs.clone(),
            Order::IntroKey(_)
            | Order::EscrowLock(_)
            | Order::EscrowClaim(_)
            | Order::EscrowRefund(_) => Vec::new(),
        }
    }

    /// Its kind byte, the first byte of its encoding.
    pub fn kind(&self) -> u8 {
        match self {
            Order::IntroKey(_) => KIND_INTRO_KEY,
            Order::Transfer(_) => KIND_TRANSFER,
            Order::Split(_) => KIND_SPLIT,
            Order::EscrowLock(_) => KIND_ESCROW_LOCK,
            Order::EscrowClaim(_) => KIND_ESCROW_CLAIM,
            Order::EscrowRefund(_) => KIND_ESCROW_REFUND,
        }
    }

    /// Its kind's name, for messages a person reads.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Order::IntroKey(_) => "IntroKey",
            Order::Transfer(_) => "Transfer",
            Order::Split(_) => "Split",
            Order::EscrowLock(_) => "EscrowLock",
            Order::EscrowClaim(_) => "EscrowClaim",
            Order::EscrowRefund(_) => "EscrowRefund",
        }
    }

    /// `TALLY-ORDER-V1 ‖ network id ‖ the order's signed body`: what the signer signs, and
    /// (hashed into [`Self::digest`]) what validators vote for and lock the slot on.
    ///
    /// The signed body is the order's encoding (kind byte, then its fields), except that an
    /// `IntroKey` contributes only `kind 1 ‖ account`, without its proof of work. Many
    /// nonces are valid proofs for one key; were the nonce signed, one key sent with two
    /// valid nonces to different validators would be two orders for the one intro slot, the
    /// votes could split between them and the key could never be introduced. The proof of
    /// work is admission evidence — each validator checks the one it is sent before voting —
    /// not part of what the validators agree on, so every introduction of a key has one
    /// digest and gathers one set of votes, whichever valid proof accompanies each request.
    /// (Anyone may therefore swap the nonce of a signed intro without breaking its
    /// signature; that gains nothing, since the key and the faucet amount stay the same and
    /// an invalid nonce is refused by a validator that has not voted.)
    pub fn signing_bytes(&self, network: &NetworkId) -> Vec<u8> {
        let mut out = Vec::with_capacity(ORDER_TAG.len() + 32 + self.encoded_len());
        out.extend_from_slice(ORDER_TAG);
        network.encode_to(&mut out);
        match self {
            Order::IntroKey(intro) => {
                out.push(KIND_INTRO_KEY);
                intro.account.encode_to(&mut out);
            }
            _ => self.encode_to(&mut out),
        }
        out
    }

    /// SHA-256 of the signing bytes: the order's id, which votes sign. For an `IntroKey` it
    /// does not depend on the proof of work (see [`Self::signing_bytes`]).
    pub fn digest(&self, network: &NetworkId) -> OrderDigest {
        sha256(&[&self.signing_bytes(network)])
    }

    /// The transfer inside, if this is one.
    pub fn as_transfer(&self) -> Option<&Transfer> {
        match self {
            Order::Transfer(t) => Some(t),
            _ => None,
        }
    }
}

impl From<Transfer> for Order {
    fn from(transfer: Transfer) -> Self {
        Order::Transfer(transfer)
    }
}

impl From<EscrowLock> for Order {
    fn from(lock: EscrowLock) -> Self {
        Order::EscrowLock(Box::new(lock))
    }
}

impl From<IntroKey> for Order {
    fn from(intro: IntroKey) -> Self {
        Order::IntroKey(intro)
    }
}

/// `kind u8 ‖ fields`: kind 1 `account ‖ proof_of_work u64`, kind 2 `sender ‖ recipient ‖
/// amount u64 ‖ sequence u64`, kind 3 `sender ‖ sequence u64 ‖ count u32 ‖ (recipient ‖
/// amount u64)*`, kinds 4–6 the escrow orders (their layouts are with their types). The
/// kind byte makes it self-delimiting. The encoding of an `IntroKey`
/// keeps its proof of work (validators must see it to check it before voting), although
/// its signing bytes leave it out ([`Order::signing_bytes`]).
impl Encode for Order {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.push(self.kind());
        match self {
            Order::IntroKey(intro) => {
                intro.account.encode_to(out);
                intro.proof_of_work.encode_to(out);
            }
            Order::Transfer(t) => {
                t.sender.encode_to(out);
                t.recipient.encode_to(out);
                t.amount.encode_to(out);
                t.sequence.encode_to(out);
            }
            Order::Split(split) => {
                split.sender.encode_to(out);
                split.sequence.encode_to(out);
                encode_seq(&split.outputs, out);
            }
            Order::EscrowLock(lock) => lock.encode_to(out),
            Order::EscrowClaim(claim) => claim.encode_to(out),
            Order::EscrowRefund(refund) => refund.encode_to(out),
        }
    }

    fn encoded_len(&self) -> usize {
        1 + match self {
            Order::IntroKey(_) => 32 + 8,
            Order::Transfer(_) => 32 + 32 + 8 + 8,
            Order::Split(split) => 32 + 8 + seq_encoded_len(&split.outputs),
            Order::EscrowLock(lock) => lock.encoded_len(),
            Order::EscrowClaim(claim) => claim.encoded_len(),
            Order::EscrowRefund(refund) => refund.encoded_len(),
        }
    }
}

impl Decode for Order {
    /// The shortest order: a refund (kind and escrow id).
    const MIN_ENCODED_LEN: usize = 1 + 32;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = reader.position();
        match reader.u8()? {
            KIND_INTRO_KEY => Ok(Order::IntroKey(IntroKey {
                account: reader.read()?,
                proof_of_work: reader.u64()?,
            })),
            KIND_TRANSFER => Ok(Order::Transfer(Transfer {
                sender: reader.read()?,
                recipient: reader.read()?,
                amount: reader.read()?,
                sequence: reader.u64()?,
            })),
            KIND_SPLIT => Ok(Order::Split(Split {
                sender: reader.read()?,
                sequence: reader.u64()?,
                outputs: reader.seq("split outputs", MAX_SPLIT_OUTPUTS)?,
            })),
            KIND_ESCROW_LOCK => reader.read::<EscrowLock>().map(Order::from),
            KIND_ESCROW_CLAIM => reader.read().map(Order::EscrowClaim),
            KIND_ESCROW_REFUND => reader.read().map(Order::EscrowRefund),
            kind => Err(DecodeError::UnknownKind {
                what: "order",
                kind,
                at,
            }),
        }
    }
}

/// `recipient ‖ amount u64`.
impl Encode for Payment {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.recipient.encode_to(out);
        self.amount.encode_to(out);
    }

    fn encoded_len(&self) -> usize {
        32 + 8
    }
}

impl Decode for Payment {
    const MIN_ENCODED_LEN: usize = 32 + 8;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Payment {
            recipient: reader.read()?,
            amount: reader.read()?,
        })
    }
}

/// An order with its signer's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedOrder {
    #[serde(rename = "Order")]
    pub order: Order,
    #[serde(rename = "Sig")]
    pub signature: Signature,
}

impl SignedOrder {
    /// Signs `order` with `key`; `key` should be the order's signer.
    pub fn sign(order: Order, key: &SecretKey, network: &NetworkId) -> Self {
        let signature = key.sign(&order.signing_bytes(network));
        SignedOrder { order, signature }
    }

    /// An order no key signs (an escrow's claim or refund), with [`Signature::NONE`].
    pub fn unsigned(order: Order) -> Self {
        SignedOrder {
            order,
            signature: Signature::NONE,
        }
    }

    /// Checks the signer's signature alone; an order no key signs must carry
    /// [`Signature::NONE`] and nothing else.
    pub fn verify(&self, network: &NetworkId) -> bool {
        match self.order.signer() {
            Some(signer) => signer.verify(&self.signature, &self.order.signing_bytes(network)),
            None => self.signature == Signature::NONE,
        }
    }
}

/// `order ‖ signature (64)`.
impl Encode for SignedOrder {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.order.encode_to(out);
        self.signature.encode_to(out);
    }

    fn encoded_len(&self) -> usize {
        self.order.encoded_len() + 64
    }
}

impl Decode for SignedOrder {
    const MIN_ENCODED_LEN: usize = Order::MIN_ENCODED_LEN + 64;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SignedOrder {
            order: reader.read()?,
            signature: reader.read()?,
        })
    }
}

/// A validator's signature over an order digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    pub validator: AccountId,
    pub signature: Signature,
}

impl Vote {
    /// `TALLY-VOTE-V1 ‖ network id ‖ order digest`.
    pub fn signing_bytes(network: &NetworkId, order: &OrderDigest) -> [u8; 13 + 32 + 32] {
        let mut out = [0u8; 13 + 32 + 32];
        out[..13].copy_from_slice(VOTE_TAG);
        out[13..45].copy_from_slice(network.as_bytes());
        out[45..].copy_from_slice(order.as_bytes());
        out
    }

    /// The vote of `validator_key` for the order with this digest.
    pub fn sign(validator_key: &SecretKey, network: &NetworkId, order: &OrderDigest) -> Self {
        Vote {
            validator: validator_key.account(),
            signature: validator_key.sign(&Self::signing_bytes(network, order)),
        }
    }

    /// Checks this vote's signature alone.
    pub fn verify(&self, network: &NetworkId, order: &OrderDigest) -> bool {
        self.validator
            .verify(&self.signature, &Self::signing_bytes(network, order))
    }
}

/// `validator (32) ‖ signature (64)`.
impl Encode for Vote {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.validator.encode_to(out);
        self.signature.encode_to(out);
    }

    fn encoded_len(&self) -> usize {
        32 + 64
    }
}

impl Decode for Vote {
    const MIN_ENCODED_LEN: usize = 32 + 64;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Vote {
            validator: reader.read()?,
            signature: reader.read()?,
        })
    }
}

/// Why a certificate is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("checksum {claimed} does not match the order's digest {actual}")]
    ChecksumMismatch { claimed: Digest, actual: Digest },
    #[error("{0} is not a validator of this network")]
    NotInCommittee(AccountId),
    #[error("validator {0} signed twice")]
    DuplicateSigner(AccountId),
    #[error("{have} votes, {need} needed")]
    TooFewVotes { have: usize, need: usize },
    #[error("the vote of {0} has a bad signature")]
    BadVote(AccountId),
}

/// An order plus the votes of a quorum of the committee: proof that the network accepted
/// it. Self-verifying given the contract, and the receipt Tally hands to users.
///
/// JSON: `{"Order": …, "Sig": …, "Checksum": <order digest>, "Signatures": {validator: sig}}`,
/// the shape of the seed's `REQ_PAY_END`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    #[serde(rename = "Order")]
    pub order: Order,
    #[serde(rename = "Sig")]
    pub signature: Signature,
    #[serde(rename = "Checksum")]
    pub checksum: OrderDigest,
    #[serde(rename = "Signatures", with = "vote_map")]
    pub votes: Vec<Vote>,
}

impl Certificate {
    /// Most votes a decoded certificate may carry: far more than any committee's quorum
    /// (a certificate needs one vote per distinct member), so it only bounds hostile input.
    pub const MAX_VOTES: usize = 65_535;

    /// Assembles a certificate (does not check it).
    pub fn new(order: SignedOrder, network: &NetworkId, votes: Vec<Vote>) -> Self {
        Certificate {
            checksum: order.order.digest(network),
            order: order.order,
            signature: order.signature,
            votes,
        }
    }

    /// The signed order inside.
    pub fn signed_order(&self) -> SignedOrder {
        SignedOrder {
            order: self.order.clone(),
            signature: self.signature,
        }
    }

    /// Checks everything but the vote signatures: the checksum, that every signer is a
    /// distinct committee member, and that there are enough of them. Returns the digest.
    pub fn check_structure(
        &self,
        committee: &Committee,
        network: &NetworkId,
    ) -> Result<OrderDigest, CertificateError> {
        let actual = self.order.digest(network);
        if actual != self.checksum {
            return Err(CertificateError::ChecksumMismatch {
                claimed: self.checksum,
                actual,
            });
        }
        let mut seen = HashSet::with_capacity(self.votes.len());
        for vote in &self.votes {
            if committee.position(&vote.validator).is_none() {
                return Err(CertificateError::NotInCommittee(vote.validator));
            }
            if !seen.insert(vote.validator) {
                return Err(CertificateError::DuplicateSigner(vote.validator));
            }
        }
        if seen.len() < committee.quorum() {
            return Err(CertificateError::TooFewVotes {
                have: seen.len(),
                need: committee.quorum(),
            });
        }
        Ok(actual)
    }

    /// Queues the vote signature checks into `batch`; returns the index range they took.
    pub fn queue_vote_checks(
        &self,
        batch: &mut BatchVerifier,
        network: &NetworkId,
    ) -> std::ops::Range<usize> {
        let message = Vote::signing_bytes(network, &self.checksum);
        let start = batch.len();
        for vote in &self.votes {
            batch.push(&vote.validator, &vote.signature, &message);
        }
        start..batch.len()
    }

    /// Checks the whole certificate on its own. Validators use [`Self::check_structure`] and
    /// a shared batch instead; wallets use this for receipts.
    pub fn verify(
        &self,
        committee: &Committee,
        network: &NetworkId,
    ) -> Result<OrderDigest, CertificateError> {
        let digest = self.check_structure(committee, network)?;
        let mut batch = BatchVerifier::with_capacity(self.votes.len());
        self.queue_vote_checks(&mut batch, network);
        if let Some(bad) = batch.verify().iter().position(|ok| !ok) {
            return Err(CertificateError::BadVote(self.votes[bad].validator));
        }
        Ok(digest)
    }
}

/// `order ‖ signature (64) ‖ checksum (32) ‖ vote count u32 ‖ votes`. Decoding refuses more
/// than [`Certificate::MAX_VOTES`] votes; it does not check the certificate.
impl Encode for Certificate {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.order.encode_to(out);
        self.signature.encode_to(out);
        self.checksum.encode_to(out);
        encode_seq(&self.votes, out);
    }

    fn encoded_len(&self) -> usize {
        self.order.encoded_len() + 64 + 32 + seq_encoded_len(&self.votes)
    }
}

impl Decode for Certificate {
    const MIN_ENCODED_LEN: usize = Order::MIN_ENCODED_LEN + 64 + 32 + 4;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Certificate {
            order: reader.read()?,
            signature: reader.read()?,
            checksum: reader.read()?,
            votes: reader.seq("votes", Certificate::MAX_VOTES)?,
        })
    }
}

/// `Signatures` as a JSON object `{validator hex: signature hex}`. Parsing keeps duplicate
/// keys (a JSON object may repeat one) so that they are refused, not silently merged.
pub mod vote_map {
    use super::*;

    pub fn serialize<S: Serializer>(votes: &[Vote], s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(votes.len()))?;
        for vote in votes {
            map.serialize_entry(&vote.validator, &vote.signature)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vote>, D::Error> {
        struct VotesVisitor;
        impl<'de> Visitor<'de> for VotesVisitor {
            type Value = Vec<Vote>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of validator keys to signatures")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Vote>, A::Error> {
                let mut votes = Vec::with_capacity(map.size_hint().unwrap_or(4).min(64));
                while let Some((validator, signature)) = map.next_entry::<AccountId, Signature>()? {
                    votes.push(Vote {
                        validator,
                        signature,
                    });
                }
                Ok(votes)
            }
        }
        d.deserialize_map(VotesVisitor)
    }
}

#[cfg(test)]
mod tests;
