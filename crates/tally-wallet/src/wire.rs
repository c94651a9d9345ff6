//! The cross-server wire (seed 002, DESIGN §8) as this wallet drives it: the networks and
//! their escrows ([`exec`]), one saga driven to its end with its journal ([`runner`]), the
//! relay topic where quotes and hints pass ([`topic`]), and the payer's side — collect
//! quotes, take the cheapest, lock, claim, keep the receipt ([`payer`]). The market maker's
//! daemon drives the other saga with the same parts.

mod chain_side;
pub mod exec;
pub mod payer;
pub mod runner;
pub mod topic;

use serde::{Deserialize, Serialize};
use tally_core::{Certificate, Digest, Mode, NetworkContract, Order};
use tally_swap::Timing;

use crate::{ChainReceipt, WalletError};

pub use chain_side::ChainReach;
pub use exec::{Reach, Side, Sides};
pub use runner::{Driven, Runner};
pub use topic::{Heard, TopicRoom};

/// What shows that a lock, claim or refund took effect on its network, for a wire's
/// receipt: a quorum's certificate, or a proof-of-work transaction with the block that
/// holds it (its proof is the chain: anyone can ask the network's miners).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Proof {
    Certificate(Certificate),
    Chain(ChainReceipt),
}

impl Proof {
    /// The order it proves.
    pub fn order(&self) -> &Order {
        match self {
            Proof::Certificate(certificate) => &certificate.order,
            Proof::Chain(receipt) => &receipt.order.order,
        }
    }

    /// The certificate's checksum, or the transaction's id: one per order.
    pub fn id(&self) -> Digest {
        match self {
            Proof::Certificate(certificate) => certificate.checksum,
            Proof::Chain(receipt) => receipt.id,
        }
    }
}

/// Adds `proof` to a receipt's proofs unless it is there already (a step repeated after a
/// resume hands the same one again).
pub fn keep_once(proofs: &mut Vec<Proof>, proof: Proof) {
    if !proofs.iter().any(|known| known.id() == proof.id()) {
        proofs.push(proof);
    }
}

/// Writes a wire's journal (the payer's record, a maker's wire) atomically and durably,
/// its folder made if missing.
pub fn write_journal<T: serde::Serialize>(
    path: &std::path::Path,
    value: &T,
) -> Result<(), WireError> {
    let journal_error = |at: &std::path::Path, error: &dyn std::fmt::Display| WireError::Journal {
        path: at.display().to_string(),
        reason: error.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|error| journal_error(dir, &error))?;
    }
    let json = serde_json::to_vec_pretty(value).map_err(|error| journal_error(path, &error))?;
    crate::fs::write_atomic(path, &json)?;
    Ok(())
}

/// Reads back what [`write_journal`] wrote.
pub fn read_journal<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> Result<T, WireError> {
    let journal_error = |error: &dyn std::fmt::Display| WireError::Journal {
        path: path.display().to_string(),
        reason: error.to_string(),
    };
    let bytes = std::fs::read(path).map_err(|error| journal_error(&error))?;
    serde_json::from_slice(&bytes).map_err(|error| journal_error(&error))
}

/// Why a wire could not go on.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Op(#[from] crate::OpError),
    #[error("the journal {path} cannot be read: {reason}")]
    Journal { path: String, reason: String },
    #[error("{0}")]
    Refused(String),
    #[error("network {0} takes no escrows: its contract declares no clock skew bound")]
    NoEscrows(String),
    #[error("no wire {0} in this wallet")]
    Unknown(String),
}

/// The bounds a party puts on its own setup, in ms (DESIGN §8): how long a lock or claim
/// takes to reach every honest validator, how long a revealed secret takes to reach it, and
/// a margin. With the networks' declared clock skews they make the timing rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub certify_ms: u64,
    pub notice_ms: u64,
    pub margin_ms: u64,
    /// On a proof-of-work network, the confirmations an escrow order needs before the wire
    /// counts it (a lock seen, a claim or refund settled): what stands in for a
    /// certificate there.
    pub confirmations: u64,
}

impl Default for Bounds {
    /// Generous for a LAN or the Internet between healthy validators: 2 s to certify, 2 s
    /// to notice, 1 s margin; two confirmations on a proof-of-work network.
    fn default() -> Self {
        Bounds {
            certify_ms: 2_000,
            notice_ms: 2_000,
            margin_ms: 1_000,
            confirmations: 2,
        }
    }
}

/// How many blocks' time the confirmations of an order take at worst, as a multiple of
/// what they take on average: blocks come at random, and a slow run of three times the
/// average is rare enough to plan for (the margin and ε cover the rest).
const SLOW_BLOCKS: u64 = 3;

impl Bounds {
    /// The timing rule's inputs for a wire from `a` to `b`: refused when either network
    /// declares no clock skew bound (it takes no escrows).
    pub fn timing(&self, a: &NetworkContract, b: &NetworkContract) -> Result<Timing, WireError> {
        let skew = |contract: &NetworkContract| {
            contract
                .max_clock_skew_ms
                .ok_or_else(|| WireError::NoEscrows(contract.name.clone()))
        };
        Ok(Timing {
            skew_a: skew(a)?,
            skew_b: skew(b)?,
            certify_a: self.certify(a),
            certify_b: self.certify(b),
            notice: self.notice_ms,
            margin: self.margin_ms,
        })
    }

    /// How long an order takes to count on `contract`'s network: certified by a quorum,
    /// or mined with [`Bounds::confirmations`] blocks on a proof-of-work chain (a slow run
    /// of blocks allowed for).
    pub fn certify(&self, contract: &NetworkContract) -> u64 {
        match (contract.mode, &contract.pow) {
            (Mode::Pow, Some(pow)) => self.certify_ms.saturating_add(
                pow.block_time_ms
                    .saturating_mul(self.confirmations.saturating_add(1))
                    .saturating_mul(SLOW_BLOCKS),
            ),
            _ => self.certify_ms,
        }
    }
}
