//! The types Malachite's core is generic over (its `Context`), as the epoch close would
//! define them: four validators with Ed25519 keys, one vote each, and a value that is an
//! epoch-close record's digest.

use std::fmt;

use ed25519_zebra::{SigningKey, VerificationKey, VerificationKeyBytes};
use malachitebft_core_types as mt;
use mt::{NilOrVal, Round, SignedMessage, VoteType};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr(pub u32);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl mt::Address for Addr {}

/// One agreement height. The spike decides one height: the close of one epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mt::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0 + n)
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// What the validators agree on: the epoch and the digest of its close record (the closing
/// set, the ledger digest, the next committee; here a digest of a set of certificate ids).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CloseValue {
    pub epoch: u64,
    pub digest: [u8; 32],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CloseId(pub [u8; 32]);

impl fmt::Display for CloseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl CloseValue {
    /// The close value of a set of certificate ids (sorted, so the set's order is irrelevant).
    pub fn of_certificates(epoch: u64, ids: &[u64]) -> Self {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut h = Sha256::new();
        h.update(b"TALLY-EPOCH-CLOSE-SPIKE");
        h.update(epoch.to_le_bytes());
        for id in ids {
            h.update(id.to_le_bytes());
        }
        CloseValue {
            epoch,
            digest: h.finalize().into(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.epoch.to_le_bytes().to_vec();
        out.extend_from_slice(&self.digest);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let epoch = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let digest = bytes.get(8..40)?.try_into().ok()?;
        Some(CloseValue { epoch, digest })
    }
}

impl mt::Value for CloseValue {
    type Id = CloseId;

    fn id(&self) -> CloseId {
        let mut h = Sha256::new();
        h.update(self.to_bytes());
        CloseId(h.finalize().into())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: CloseValue,
    pub pol_round: Round,
    pub proposer: Addr,
}

impl mt::Proposal<Ctx> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &CloseValue {
        &self.value
    }
    fn take_value(self) -> CloseValue {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Addr {
        &self.proposer
    }
}

/// Unused: the spike runs in `ValuePayload::ProposalOnly` mode (the value is small).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoParts;

impl mt::ProposalPart<Ctx> for NoParts {
    fn is_first(&self) -> bool {
        true
    }
    fn is_last(&self) -> bool {
        true
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vote {
    pub kind: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<CloseId>,
    pub voter: Addr,
}

impl Vote {
    fn signing_bytes(&self) -> Vec<u8> {
        let mut out = b"TALLY-CLOSE-VOTE".to_vec();
        out.push(match self.kind {
            VoteType::Prevote => 1,
            VoteType::Precommit => 2,
        });
        out.extend_from_slice(&self.height.0.to_le_bytes());
        out.extend_from_slice(&self.round.as_i64().to_le_bytes());
        match &self.value {
            NilOrVal::Nil => out.push(0),
            NilOrVal::Val(id) => {
                out.push(1);
                out.extend_from_slice(&id.0);
            }
        }
        out.extend_from_slice(&self.voter.0.to_le_bytes());
        out
    }
}

impl mt::Vote<Ctx> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<CloseId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<CloseId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.kind
    }
    fn validator_address(&self) -> &Addr {
        &self.voter
    }
    fn extension(&self) -> Option<&mt::SignedExtension<Ctx>> {
        None
    }
    fn take_extension(&mut self) -> Option<mt::SignedExtension<Ctx>> {
        None
    }
    fn extend(self, _extension: mt::SignedExtension<Ctx>) -> Self {
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub address: Addr,
    pub public_key: [u8; 32],
}

impl mt::Validator<Ctx> for Validator {
    fn address(&self) -> &Addr {
        &self.address
    }
    fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }
    fn voting_power(&self) -> mt::VotingPower {
        1
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet(pub Vec<Validator>);

impl mt::ValidatorSet<Ctx> for ValidatorSet {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn total_voting_power(&self) -> mt::VotingPower {
        self.0.len() as u64
    }
    fn get_by_address(&self, address: &Addr) -> Option<&Validator> {
        self.0.iter().find(|v| v.address == *address)
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.0.get(index)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sig(pub [u8; 64]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519;

impl mt::SigningScheme for Ed25519 {
    type DecodingError = String;
    type Signature = Sig;
    type PublicKey = [u8; 32];
    type PrivateKey = [u8; 32];

    fn decode_signature(bytes: &[u8]) -> Result<Sig, String> {
        bytes
            .try_into()
            .map(Sig)
            .map_err(|_| "signature is not 64 bytes".to_string())
    }

    fn encode_signature(signature: &Sig) -> Vec<u8> {
        signature.0.to_vec()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Ctx;

impl mt::Context for Ctx {
    type Address = Addr;
    type Height = Height;
    type ProposalPart = NoParts;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Value = CloseValue;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        let n = validator_set.0.len() as u64;
        let r = round.as_u32().unwrap_or(0) as u64;
        &validator_set.0[((height.0 + r) % n) as usize]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: CloseValue,
        pol_round: Round,
        address: Addr,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<CloseId>,
        address: Addr,
    ) -> Vote {
        Vote {
            kind: VoteType::Prevote,
            height,
            round,
            value: value_id,
            voter: address,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<CloseId>,
        address: Addr,
    ) -> Vote {
        Vote {
            kind: VoteType::Precommit,
            height,
            round,
            value: value_id,
            voter: address,
        }
    }
}

fn proposal_signing_bytes(p: &Proposal) -> Vec<u8> {
    let mut out = b"TALLY-CLOSE-PROPOSAL".to_vec();
    out.extend_from_slice(&p.height.0.to_le_bytes());
    out.extend_from_slice(&p.round.as_i64().to_le_bytes());
    out.extend_from_slice(&p.value.to_bytes());
    out.extend_from_slice(&p.pol_round.as_i64().to_le_bytes());
    out.extend_from_slice(&p.proposer.0.to_le_bytes());
    out
}

fn verify(bytes: &[u8], sig: &Sig, public_key: &[u8; 32]) -> bool {
    let Ok(key) = VerificationKey::try_from(VerificationKeyBytes::from(*public_key)) else {
        return false;
    };
    key.verify(&ed25519_zebra::Signature::from(sig.0), bytes)
        .is_ok()
}

/// One validator's signing key; also verifies (Malachite asks for both through effects).
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    pub fn new(seed: [u8; 32]) -> Self {
        Signer {
            key: SigningKey::from(seed),
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        VerificationKeyBytes::from(&self.key).into()
    }

    fn sign(&self, bytes: &[u8]) -> Sig {
        Sig(self.key.sign(bytes).into())
    }

    /// Checks a consensus message's signature.
    pub fn verify_message(
        &self,
        msg: &malachitebft_core_consensus::ConsensusMsg<Ctx>,
        sig: &Sig,
        public_key: &[u8; 32],
    ) -> bool {
        match msg {
            malachitebft_core_consensus::ConsensusMsg::Vote(v) => {
                verify(&v.signing_bytes(), sig, public_key)
            }
            malachitebft_core_consensus::ConsensusMsg::Proposal(p) => {
                verify(&proposal_signing_bytes(p), sig, public_key)
            }
        }
    }
}

impl mt::SigningProvider<Ctx> for Signer {
    fn sign_vote(&self, vote: Vote) -> SignedMessage<Ctx, Vote> {
        let sig = self.sign(&vote.signing_bytes());
        SignedMessage::new(vote, sig)
    }

    fn verify_signed_vote(&self, vote: &Vote, signature: &Sig, public_key: &[u8; 32]) -> bool {
        verify(&vote.signing_bytes(), signature, public_key)
    }

    fn sign_proposal(&self, proposal: Proposal) -> SignedMessage<Ctx, Proposal> {
        let sig = self.sign(&proposal_signing_bytes(&proposal));
        SignedMessage::new(proposal, sig)
    }

    fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Sig,
        public_key: &[u8; 32],
    ) -> bool {
        verify(&proposal_signing_bytes(proposal), signature, public_key)
    }

    fn sign_proposal_part(&self, part: NoParts) -> SignedMessage<Ctx, NoParts> {
        SignedMessage::new(part, Sig([0; 64]))
    }

    fn verify_signed_proposal_part(&self, _: &NoParts, _: &Sig, _: &[u8; 32]) -> bool {
        false
    }

    fn sign_vote_extension(&self, extension: ()) -> SignedMessage<Ctx, ()> {
        SignedMessage::new(extension, Sig([0; 64]))
    }

    fn verify_signed_vote_extension(&self, _: &(), _: &Sig, _: &[u8; 32]) -> bool {
        false
    }
}
