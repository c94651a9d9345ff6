//! The network contract: the JSON document that defines one ledger. Its id, the SHA-256 of
//! its canonical bytes, is named by every signed object so nothing replays across networks.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{AccountId, Amount, Digest, KeyError, sha256};

/// Domain tag hashed in front of a contract's canonical bytes.
pub const CONTRACT_TAG: &[u8] = b"TALLY-CONTRACT-V1";

/// The id of a network: SHA-256(`TALLY-CONTRACT-V1` ‖ canonical contract JSON).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NetworkId(pub Digest);

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for NetworkId {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Self, KeyError> {
        text.parse().map(NetworkId)
    }
}

impl NetworkId {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The first 16 hex digits, for people and logs.
    pub fn short(&self) -> String {
        self.0.short()
    }
}

/// How a network orders its payments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Minicash: a fixed committee certifies each order with more than 2/3 of its votes.
    Quorum,
    /// Seed 004: miners order transactions in a proof-of-work chain.
    Pow,
}

/// One member of a quorum network's committee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorInfo {
    /// The validator's signing key.
    pub key: AccountId,
    /// Where its node protocol listens (`ip:port`).
    pub address: String,
}

/// Cash that exists from the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub account: AccountId,
    pub amount: Amount,
}

/// A network contract (DESIGN §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkContract {
    /// A human name; not unique (the id is).
    pub name: String,
    pub mode: Mode,
    /// The unit's name, "cash" by default.
    pub unit: String,
    /// What a newly introduced key receives, once.
    pub faucet: Amount,
    /// Leading zero bits required of SHA-256("<key hex>_<nonce>") to introduce a key.
    pub intro_pow_bits: u32,
    /// The committee, in a fixed order (a vote names its validator by key).
    pub validators: Vec<ValidatorInfo>,
    /// The tracker nodes and wallets may use to find each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker: Option<String>,
    /// Accounts funded at genesis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub genesis: Vec<Allocation>,
    /// The chain parameters of a proof-of-work network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pow: Option<PowParams>,
    /// ε: how far, in milliseconds, any honest validator's clock may be from true time. A
    /// quorum network that declares it takes hash-locked escrows (DESIGN §8): claims are
    /// voted before an escrow's deadline, refunds only after the deadline plus ε. Without
    /// it the network takes none (left out of the JSON, it leaves older contracts' ids as
    /// they were). On a proof-of-work network, escrow deadlines are judged by the chain's
    /// median time past, and ε bounds how far that may trail (or, with an honest majority
    /// of hash power, lead) true time; wallets and makers time their claims by it, and
    /// lock no escrow on a chain that declares none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clock_skew_ms: Option<u64>,
}

/// The parameters of a proof-of-work network (DESIGN §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowParams {
    /// The genesis target, as a number of leading zero bits of the block hash.
    pub initial_bits: u32,
    /// The block interval the retargeting aims for, in milliseconds.
    pub block_time_ms: u64,
    /// How many blocks between retargets.
    pub retarget_window: u64,
    /// What the coinbase of each block pays its miner.
    pub block_reward: Amount,
    /// The most transactions a block may carry (the coinbase not counted).
    pub max_block_transactions: u32,
    /// The most bytes a block's encoding may take.
    pub max_block_bytes: u32,
}

/// Why a contract cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("contract is not valid JSON of a network contract: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a quorum network needs at least one validator")]
    NoValidators,
    #[error("validator {0} appears twice in the committee")]
    DuplicateValidator(AccountId),
    #[error("genesis supply overflows")]
    SupplyOverflow,
    #[error("intro_pow_bits {0} is above 64")]
    PowBits(u32),
    #[error("a pow network needs its `pow` parameters")]
    NoPowParams,
}

impl NetworkContract {
    /// Parses and checks a contract.
    pub fn from_json(text: &str) -> Result<Self, ContractError> {
        let contract: NetworkContract = serde_json::from_str(text)?;
        contract.validate()?;
        Ok(contract)
    }

    /// Checks what serde cannot: a usable committee, no overflow.
    pub fn validate(&self) -> Result<(), ContractError> {
        if self.intro_pow_bits > 64 {
            return Err(ContractError::PowBits(self.intro_pow_bits));
        }
        match self.mode {
            Mode::Quorum => {
                Committee::new(&self.validators)?;
            }
            Mode::Pow => {
                if self.pow.is_none() {
                    return Err(ContractError::NoPowParams);
                }
            }
        }
        self.genesis_supply().ok_or(ContractError::SupplyOverflow)?;
        Ok(())
    }

    /// The canonical bytes: compact JSON with fields in declaration order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serialising plain structs, strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The network id.
    pub fn id(&self) -> NetworkId {
        NetworkId(sha256(&[CONTRACT_TAG, &self.canonical_bytes()]))
    }

    /// The sum of the genesis allocations, or `None` on overflow.
    pub fn genesis_supply(&self) -> Option<Amount> {
        self.genesis
            .iter()
            .try_fold(Amount::ZERO, |sum, a| sum.checked_add(a.amount))
    }

    /// Pretty JSON for writing to disk (it parses back to the same contract and id).
    pub fn to_pretty_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The validator that every copy of `signer`'s wallet asks for a vote before any other, in
/// a committee of `members` (DESIGN §3): two copies racing for one slot both ask it first,
/// so the one it refuses learns of the other's order before anyone else saw its own. The
/// first 8 bytes of the key, little-endian, modulo the committee size.
pub fn first_voter(signer: &AccountId, members: usize) -> usize {
    let mut head = [0u8; 8];
    head.copy_from_slice(&signer.as_bytes()[..8]);
    (u64::from_le_bytes(head) % members.max(1) as u64) as usize
}

/// The committee of a quorum network: who may vote and how many votes make a certificate.
#[derive(Clone, Debug)]
pub struct Committee {
    members: Vec<AccountId>,
    index: HashMap<AccountId, usize>,
}

impl Committee {
    /// The committee of these validators, in this order.
    pub fn new(validators: &[ValidatorInfo]) -> Result<Self, ContractError> {
        if validators.is_empty() {
            return Err(ContractError::NoValidators);
        }
        let mut index = HashMap::with_capacity(validators.len());
        for (i, v) in validators.iter().enumerate() {
            if index.insert(v.key, i).is_some() {
                return Err(ContractError::DuplicateValidator(v.key));
            }
        }
        Ok(Committee {
            members: validators.iter().map(|v| v.key).collect(),
            index,
        })
    }

    /// The members in contract order.
    pub fn members(&self) -> &[AccountId] {
        &self.members
    }

    /// The number of members, n.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// The position of `key` in the committee, if it is a member.
    pub fn position(&self, key: &AccountId) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// The votes a certificate needs: more than two thirds of n (2f+1 when n = 3f+1).
    pub fn quorum(&self) -> usize {
        self.members.len() * 2 / 3 + 1
    }

    /// How many members may fail or lie while the network stays safe and live: n - quorum.
    pub fn max_faulty(&self) -> usize {
        self.members.len() - self.quorum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;

    fn validators(n: u8) -> Vec<ValidatorInfo> {
        (0..n)
            .map(|i| ValidatorInfo {
                key: SecretKey::from_bytes([i; 32]).account(),
                address: format!("127.0.0.1:{}", 2222 + u16::from(i)),
            })
            .collect()
    }

    #[test]
    fn quorum_is_more_than_two_thirds() {
        for (n, q) in [(1, 1), (3, 3), (4, 3), (5, 4), (7, 5), (10, 7)] {
            let c = Committee::new(&validators(n)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.quorum(), q, "n = {n}");
            assert!(3 * c.quorum() > 2 * usize::from(n));
        }
    }

    #[test]
    fn id_is_stable_over_a_json_round_trip_and_changes_with_content() {
        let contract = NetworkContract {
            name: "test".into(),
            mode: Mode::Quorum,
            unit: "cash".into(),
            faucet: Amount::from_microcash(10_000_000),
            intro_pow_bits: 8,
            validators: validators(4),
            tracker: None,
            genesis: vec![],
            pow: None,
            max_clock_skew_ms: None,
        };
        let back = NetworkContract::from_json(&contract.to_pretty_json())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.id(), contract.id());
        let mut other = contract.clone();
        other.faucet = Amount::from_microcash(1);
        assert_ne!(other.id(), contract.id());
    }

    #[test]
    fn duplicate_validators_are_refused() {
        let mut v = validators(3);
        v.push(v[0].clone());
        assert!(matches!(
            Committee::new(&v),
            Err(ContractError::DuplicateValidator(_))
        ));
    }
}
