//! Hash-locked escrows (DESIGN §8): the three orders of the cross-server wire.
//!
//! An [`EscrowLock`] takes `amount` from its payer (one of the payer's sequence slots, like
//! a transfer) and holds it for `payee` under a hash lock until `deadline`. Then exactly one
//! of two orders settles it, both in the escrow's own lock slot
//! ([`crate::LockSlot::Escrow`]), so that an honest validator votes for at most one of them
//! and at most one of their certificates can ever form:
//!
//! - [`EscrowClaim`] shows the secret whose SHA-256 is the lock, and pays the payee. It needs
//!   no signature: the secret is the authority, and the payee was fixed by the lock (as
//!   XRPL's `EscrowFinish`). Anyone may send it: the payee, the payer, a relay, or the
//!   counterpart network's validators with their notice.
//! - [`EscrowRefund`] returns the money to the payer once the deadline has passed (by
//!   more than the network's clock skew ε). It needs no signature either: the clock is the
//!   authority.
//!
//! Each claim and each refund of one escrow has exactly one encoding (the secret is fixed by
//! the hash, the signature field is [`crate::Signature::NONE`]), so no two senders can
//! split its votes between two spellings of one order.

use serde::{Deserialize, Serialize};

use crate::codec::{Decode, DecodeError, Encode, Reader};
use crate::{AccountId, Amount, Digest, EscrowSecret, NetworkId};

/// An escrow's id: the digest of its lock order on the network that holds it.
pub type EscrowId = Digest;

/// What a lock made for a wire says about the other side of it, so that validators know
/// where to send the secret once a claim is voted, and anyone can match the two halves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counterpart {
    /// The other network of the wire. Validators take an escrow citing a network only if
    /// they know its contract (they send it the notice).
    #[serde(rename = "Network")]
    pub network: NetworkId,
    /// The escrow on that network this one answers (the maker's lock on B cites the
    /// payer's lock on A; the payer's lock, made first, cites none).
    #[serde(rename = "Escrow", default, skip_serializing_if = "Option::is_none")]
    pub escrow: Option<EscrowId>,
    /// The hash of the maker's signed quote the wire follows.
    #[serde(rename = "Quote", default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<Digest>,
}

/// Lock `amount` of `payer`'s money for `payee` under `hash_lock` until `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowLock {
    #[serde(rename = "Fromkey")]
    pub payer: AccountId,
    #[serde(rename = "Sequence")]
    pub sequence: u64,
    #[serde(rename = "Tokey")]
    pub payee: AccountId,
    #[serde(rename = "Amount")]
    pub amount: Amount,
    /// SHA-256 of the secret that claims it ([`EscrowSecret::hash_lock`]).
    #[serde(rename = "Hashlock")]
    pub hash_lock: Digest,
    /// On a quorum network, milliseconds since the Unix epoch by the validators' clocks:
    /// claims are voted before it, refunds after it plus ε. On a proof-of-work network, a
    /// block height.
    #[serde(rename = "Deadline")]
    pub deadline: u64,
    #[serde(
        rename = "Counterpart",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub counterpart: Option<Counterpart>,
}

/// Claim escrow `escrow` for its payee by showing `secret`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowClaim {
    #[serde(rename = "Escrow")]
    pub escrow: EscrowId,
    #[serde(rename = "Secret")]
    pub secret: EscrowSecret,
}

/// Return escrow `escrow` to its payer: its deadline has passed without a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowRefund {
    #[serde(rename = "Escrow")]
    pub escrow: EscrowId,
}

/// `network ‖ escrow option ‖ quote option` (an option is `0`, or `1 ‖ 32 bytes`).
impl Encode for Counterpart {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.network.encode_to(out);
        self.escrow.encode_to(out);
        self.quote.encode_to(out);
    }

    fn encoded_len(&self) -> usize {
        32 + self.escrow.encoded_len() + self.quote.encoded_len()
    }
}

impl Decode for Counterpart {
    const MIN_ENCODED_LEN: usize = 32 + 1 + 1;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Counterpart {
            network: reader.read()?,
            escrow: reader.read()?,
            quote: reader.read()?,
        })
    }
}

/// `payer ‖ sequence u64 ‖ payee ‖ amount u64 ‖ hash lock ‖ deadline u64 ‖ counterpart
/// option`.
impl Encode for EscrowLock {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.payer.encode_to(out);
        self.sequence.encode_to(out);
        self.payee.encode_to(out);
        self.amount.encode_to(out);
        self.hash_lock.encode_to(out);
        self.deadline.encode_to(out);
        self.counterpart.encode_to(out);
    }

    fn encoded_len(&self) -> usize {
        32 + 8 + 32 + 8 + 32 + 8 + self.counterpart.encoded_len()
    }
}

impl Decode for EscrowLock {
    const MIN_ENCODED_LEN: usize = 32 + 8 + 32 + 8 + 32 + 8 + 1;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(EscrowLock {
            payer: reader.read()?,
            sequence: reader.u64()?,
            payee: reader.read()?,
            amount: reader.read()?,
            hash_lock: reader.read()?,
            deadline: reader.u64()?,
            counterpart: reader.read()?,
        })
    }
}

/// `escrow ‖ secret`.
impl Encode for EscrowClaim {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.escrow.encode_to(out);
        self.secret.encode_to(out);
    }

    fn encoded_len(&self) -> usize {
        32 + 32
    }
}

impl Decode for EscrowClaim {
    const MIN_ENCODED_LEN: usize = 32 + 32;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(EscrowClaim {
            escrow: reader.read()?,
            secret: reader.read()?,
        })
    }
}

/// `escrow`.
impl Encode for EscrowRefund {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.escrow.encode_to(out);
    }

    fn encoded_len(&self) -> usize {
        32
    }
}

impl Decode for EscrowRefund {
    const MIN_ENCODED_LEN: usize = 32;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(EscrowRefund {
            escrow: reader.read()?,
        })
    }
}

/// Why an [`EscrowLock`] can never be certified, whatever the ledger holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EscrowShapeError {
    #[error("an escrow of zero locks nothing")]
    ZeroAmount,
    #[error("an escrow cannot pay its own payer")]
    PaysPayer,
    #[error("an escrow cannot cite its own network as its counterpart")]
    CitesItself,
}

/// How an escrow stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Locked: neither claimed nor refunded.
    Open,
    /// Claimed for the payee with this secret.
    Claimed(EscrowSecret),
    /// Returned to the payer after the deadline.
    Refunded,
}

/// An escrow as a network keeps it (a validator's ledger, a proof-of-work chain's state):
/// the lock that opened it and how it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EscrowState {
    pub lock: EscrowLock,
    pub settlement: Settlement,
}

impl EscrowState {
    /// An escrow its lock just opened.
    pub fn open(lock: EscrowLock) -> Self {
        EscrowState {
            lock,
            settlement: Settlement::Open,
        }
    }

    /// Who the money went to, once settled.
    pub fn paid_to(&self) -> Option<AccountId> {
        match self.settlement {
            Settlement::Open => None,
            Settlement::Claimed(_) => Some(self.lock.payee),
            Settlement::Refunded => Some(self.lock.payer),
        }
    }
}

const SETTLEMENT_OPEN: u8 = 0;
const SETTLEMENT_CLAIMED: u8 = 1;
const SETTLEMENT_REFUNDED: u8 = 2;

/// `lock ‖ settlement`, the settlement `0` (open), `1 ‖ secret` (claimed) or `2`
/// (refunded): the record stores keep.
impl Encode for EscrowState {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.lock.encode_to(out);
        match &self.settlement {
            Settlement::Open => out.push(SETTLEMENT_OPEN),
            Settlement::Claimed(secret) => {
                out.push(SETTLEMENT_CLAIMED);
                secret.encode_to(out);
            }
            Settlement::Refunded => out.push(SETTLEMENT_REFUNDED),
        }
    }

    fn encoded_len(&self) -> usize {
        self.lock.encoded_len()
            + match self.settlement {
                Settlement::Claimed(_) => 33,
                Settlement::Open | Settlement::Refunded => 1,
            }
    }
}

impl Decode for EscrowState {
    const MIN_ENCODED_LEN: usize = EscrowLock::MIN_ENCODED_LEN + 1;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let lock = reader.read()?;
        let at = reader.position();
        let settlement = match reader.u8()? {
            SETTLEMENT_OPEN => Settlement::Open,
            SETTLEMENT_CLAIMED => Settlement::Claimed(reader.read()?),
            SETTLEMENT_REFUNDED => Settlement::Refunded,
            other => {
                return Err(DecodeError::UnknownKind {
                    what: "escrow settlement",
                    kind: other,
                    at,
                });
            }
        };
        Ok(EscrowState { lock, settlement })
    }
}

impl EscrowLock {
    /// Checks what does not depend on the ledger: a positive amount, a payee other than
    /// the payer, a counterpart other than `network` itself.
    pub fn check_shape(&self, network: &NetworkId) -> Result<(), EscrowShapeError> {
        if self.amount.is_zero() {
            return Err(EscrowShapeError::ZeroAmount);
        }
        if self.payer == self.payee {
            return Err(EscrowShapeError::PaysPayer);
        }
        if self
            .counterpart
            .is_some_and(|counterpart| counterpart.network == *network)
        {
            return Err(EscrowShapeError::CitesItself);
        }
        Ok(())
    }
}
