//! Every packet of the quorum protocol. PROTOCOL.md documents each with an example.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tally_core::order::vote_map;
use tally_core::{
    AccountId, Amount, Certificate, Digest, EscrowId, EscrowLock, EscrowSecret, NetworkId,
    OrderDigest, SecretKey, Settlement, Signature, SignedOrder, Vote, sha256,
};

/// Domain tag in front of a validator's signed ledger view.
pub const LEDGER_TAG: &[u8] = b"TALLY-LEDGER-V2";

/// A packet: `{"Type": "<NAME>", "Data": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "Type", content = "Data")]
pub enum Packet {
    /// Both directions: who is speaking, on which network.
    #[serde(rename = "HELLO")]
    Hello(Hello),
    /// Ask for a validator's view of some or all accounts.
    #[serde(rename = "REQ_LEDGER")]
    ReqLedger(LedgerRequest),
    /// A validator's signed view of accounts.
    #[serde(rename = "RESP_LEDGER")]
    RespLedger(LedgerView),
    /// Ask for a vote on an `IntroKey` order.
    #[serde(rename = "REQ_INTRO_KEY")]
    ReqIntroKey(SignedOrder),
    /// A validator's vote on an `IntroKey` order.
    #[serde(rename = "RESP_INTRO_KEY")]
    RespIntroKey(VoteReply),
    /// The certificate of an `IntroKey` order, to apply.
    #[serde(rename = "REQ_INTRO_KEY_END")]
    ReqIntroKeyEnd(Certificate),
    /// The validator applied (or had already applied) that certificate.
    #[serde(rename = "RESP_INTRO_KEY_END")]
    RespIntroKeyEnd(EndAck),
    /// Ask for a vote on a `Transfer` order.
    #[serde(rename = "REQ_PAY")]
    ReqPay(SignedOrder),
    /// A validator's vote on a `Transfer` order.
    #[serde(rename = "RESP_PAY")]
    RespPay(VoteReply),
    /// The certificate of a `Transfer`, to apply.
    #[serde(rename = "REQ_PAY_END")]
    ReqPayEnd(Certificate),
    /// The validator applied (or had already applied) that certificate.
    #[serde(rename = "RESP_PAY_END")]
    RespPayEnd(EndAck),
    /// Ask for certificates a validator has applied (catch-up after a restart or a gap).
    #[serde(rename = "REQ_CERTS")]
    ReqCerts(CertQuery),
    /// Certificates, oldest first.
    #[serde(rename = "RESP_CERTS")]
    RespCerts(CertificatesPage),
    /// Ask which signed order a validator holds its vote for in an account's next slot.
    #[serde(rename = "REQ_HELD_ORDER")]
    ReqHeldOrder(HeldOrderRequest),
    /// The order voted for in that slot, if the validator holds a vote there.
    #[serde(rename = "RESP_HELD_ORDER")]
    RespHeldOrder(HeldOrder),
    /// Ask how an escrow stands, by its id or by its hash lock (was the secret revealed?).
    #[serde(rename = "REQ_ESCROW")]
    ReqEscrow(EscrowQuery),
    /// How the escrow stands at this validator, the secret if a claim showed it, and the
    /// validator's clock.
    #[serde(rename = "RESP_ESCROW")]
    RespEscrow(Box<EscrowView>),
    /// The request could not be served; nothing changed.
    #[serde(rename = "ERROR")]
    Error(ErrorReply),
}

impl Packet {
    /// The packet's `Type` name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Hello(_) => "HELLO",
            Packet::ReqLedger(_) => "REQ_LEDGER",
            Packet::RespLedger(_) => "RESP_LEDGER",
            Packet::ReqIntroKey(_) => "REQ_INTRO_KEY",
            Packet::RespIntroKey(_) => "RESP_INTRO_KEY",
            Packet::ReqIntroKeyEnd(_) => "REQ_INTRO_KEY_END",
            Packet::RespIntroKeyEnd(_) => "RESP_INTRO_KEY_END",
            Packet::ReqPay(_) => "REQ_PAY",
            Packet::RespPay(_) => "RESP_PAY",
            Packet::ReqPayEnd(_) => "REQ_PAY_END",
            Packet::RespPayEnd(_) => "RESP_PAY_END",
            Packet::ReqCerts(_) => "REQ_CERTS",
            Packet::RespCerts(_) => "RESP_CERTS",
            Packet::ReqHeldOrder(_) => "REQ_HELD_ORDER",
            Packet::RespHeldOrder(_) => "RESP_HELD_ORDER",
            Packet::ReqEscrow(_) => "REQ_ESCROW",
            Packet::RespEscrow(_) => "RESP_ESCROW",
            Packet::Error(_) => "ERROR",
        }
    }

    /// An `ERROR` packet.
    pub fn error(code: ErrorCode, reason: impl Into<String>) -> Packet {
        Packet::Error(ErrorReply {
            code,
            reason: reason.into(),
        })
    }
}

/// `HELLO`: a wallet or peer says which network it speaks; a validator answers with its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    #[serde(rename = "Network")]
    pub network: NetworkId,
    /// The validator's key (in a validator's answer).
    #[serde(rename = "Validator", default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<AccountId>,
    /// Where the speaker's node protocol listens, if it has one.
    #[serde(rename = "Address", default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// How many certificates the validator has applied (in a validator's answer).
    #[serde(
        rename = "Certificates",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificates: Option<u64>,
}

/// `REQ_LEDGER`: the given accounts, or a page of all accounts in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerRequest {
    /// Just these accounts (at most [`LedgerRequest::MAX_ACCOUNTS`]).
    #[serde(rename = "Accounts", default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<AccountId>>,
    /// Otherwise: accounts after this one, in key order.
    #[serde(rename = "After", default, skip_serializing_if = "Option::is_none")]
    pub after: Option<AccountId>,
    /// Otherwise: at most this many (capped at [`LedgerRequest::MAX_ACCOUNTS`]).
    #[serde(rename = "Limit", default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl LedgerRequest {
    /// The most accounts one `RESP_LEDGER` carries.
    pub const MAX_ACCOUNTS: usize = 1000;
}

/// One account as a validator sees it; the default is an account it never saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    /// Microcash. Negative only on a validator that applied an account's debits before the
    /// credits that funded them (it is missing certificates; see ARCHITECTURE.md).
    #[serde(rename = "Balance")]
    pub balance: i128,
    /// The account's next order number.
    #[serde(rename = "Sequence")]
    pub next_sequence: u64,
    /// Whether its `IntroKey` certificate was applied.
    #[serde(rename = "Introduced")]
    pub introduced: bool,
    /// The order this validator voted for in the account's next lock slot, if it holds a
    /// vote there: a coin whose next slot holds a vote for an order its holder did not make
    /// is not authentic (DESIGN §7, detect), and a wallet resuming a pown completes that
    /// order instead of signing another.
    #[serde(rename = "Locked", default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<OrderDigest>,
}

/// Where an account's next lock slot stands, by the votes the validators at its agreed
/// sequence hold for it (`Locked` in their signed views).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum NextSlot {
    /// No validator holds a vote for it.
    Free,
    /// Votes are held for one order only: it is being certified, or was left half done
    /// (the wallet that signed it finishes it).
    Voting { order: OrderDigest, votes: usize },
    /// Votes are held for different orders, and one may still reach a quorum with the
    /// votes of the validators that hold none.
    Contested { orders: Vec<(OrderDigest, usize)> },
    /// Votes are split between different orders so that none can reach a quorum even with
    /// every remaining validator: the slot is frozen (DESIGN §3), and so is the account.
    Split { orders: Vec<(OrderDigest, usize)> },
}

impl NextSlot {
    /// The orders votes are held for, most held first (ties by digest).
    pub fn held(&self) -> Vec<OrderDigest> {
        match self {
            NextSlot::Free => Vec::new(),
            NextSlot::Voting { order, .. } => vec![*order],
            NextSlot::Contested { orders } | NextSlot::Split { orders } => {
                orders.iter().map(|(order, _)| *order).collect()
            }
        }
    }

    /// Whether the slot is frozen: no order can reach a quorum any more.
    pub fn is_split(&self) -> bool {
        matches!(self, NextSlot::Split { .. })
    }

    /// The slot as the entries of validators at sequence `next_sequence` show it, on a
    /// committee of `members` with this `quorum`.
    pub fn of(
        entries: impl IntoIterator<Item = LedgerEntry>,
        next_sequence: u64,
        members: usize,
        quorum: usize,
    ) -> NextSlot {
        let mut held: BTreeMap<OrderDigest, usize> = BTreeMap::new();
        for entry in entries {
            if entry.next_sequence == next_sequence
                && let Some(order) = entry.locked
            {
                *held.entry(order).or_default() += 1;
            }
        }
        let voted: usize = held.values().sum();
        let uncommitted = members.saturating_sub(voted);
        let mut orders: Vec<(OrderDigest, usize)> = held.into_iter().collect();
        orders.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        match orders.as_slice() {
            [] => NextSlot::Free,
            [(order, votes)] => NextSlot::Voting {
                order: *order,
                votes: *votes,
            },
            [(_, most), ..] if most + uncommitted < quorum => NextSlot::Split { orders },
            _ => NextSlot::Contested { orders },
        }
    }
}

/// `RESP_LEDGER`: a validator's signed view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerView {
    #[serde(rename = "Validator")]
    pub validator: AccountId,
    /// Certificates applied so far (the view's height).
    #[serde(rename = "Certificates")]
    pub certificates: u64,
    /// Microcash in existence by this validator's count.
    #[serde(rename = "Supply")]
    pub supply: Amount,
    /// Accounts in the view, by key; an account the validator never saw is absent.
    #[serde(rename = "Ledger")]
    pub ledger: BTreeMap<AccountId, LedgerEntry>,
    /// The validator's signature over [`LedgerView::signing_bytes`].
    #[serde(rename = "Signature")]
    pub signature: Signature,
}

impl LedgerView {
    /// `TALLY-LEDGER-V2 ‖ network ‖ certificates u64 ‖ supply u64 ‖ count u64 ‖
    /// (account ‖ balance i128 ‖ sequence u64 ‖ introduced u8 ‖ locked u8 ‖ [digest])*`,
    /// little-endian, accounts in key order; `locked` is 1 and the digest follows when the
    /// validator holds a vote in the account's next slot, else 0.
    pub fn signing_bytes(
        network: &NetworkId,
        certificates: u64,
        supply: Amount,
        ledger: &BTreeMap<AccountId, LedgerEntry>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(15 + 32 + 24 + ledger.len() * 90);
        out.extend_from_slice(LEDGER_TAG);
        out.extend_from_slice(network.as_bytes());
        out.extend_from_slice(&certificates.to_le_bytes());
        out.extend_from_slice(&supply.microcash().to_le_bytes());
        out.extend_from_slice(&(ledger.len() as u64).to_le_bytes());
        for (account, entry) in ledger {
            out.extend_from_slice(account.as_bytes());
            out.extend_from_slice(&entry.balance.to_le_bytes());
            out.extend_from_slice(&entry.next_sequence.to_le_bytes());
            out.push(u8::from(entry.introduced));
            match &entry.locked {
                None => out.push(0),
                Some(digest) => {
                    out.push(1);
                    out.extend_from_slice(digest.as_bytes());
                }
            }
        }
        out
    }

    /// Builds and signs a view.
    pub fn sign(
        key: &SecretKey,
        network: &NetworkId,
        certificates: u64,
        supply: Amount,
        ledger: BTreeMap<AccountId, LedgerEntry>,
    ) -> Self {
        let signature = key.sign(&Self::signing_bytes(network, certificates, supply, &ledger));
        LedgerView {
            validator: key.account(),
            certificates,
            supply,
            ledger,
            signature,
        }
    }

    /// Whether the validator really signed this view for `network`.
    pub fn verify(&self, network: &NetworkId) -> bool {
        let bytes = Self::signing_bytes(network, self.certificates, self.supply, &self.ledger);
        self.validator.verify(&self.signature, &bytes)
    }

    /// A short fingerprint of the view's accounts, to compare validators at a glance.
    pub fn fingerprint(&self, network: &NetworkId) -> Digest {
        let bytes = Self::signing_bytes(network, 0, Amount::ZERO, &self.ledger);
        sha256(&[&bytes])
    }
}

/// `REQ_HELD_ORDER`: before a wallet signs an order for an account's next slot, it asks
/// whether a vote is held there already, and for which order: another copy of the same
/// key (a wallet restored on a second device) may have signed one, and signing a second
/// would split the slot (DESIGN §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldOrderRequest {
    #[serde(rename = "Account")]
    pub account: AccountId,
}

/// `RESP_HELD_ORDER`: the validator's next sequence for the account, the digest of the
/// order it holds its vote for in that slot (if any) and the signed order itself (a
/// validator stores it with the vote; only a lock an earlier build kept comes without it).
/// Not signed by the validator: the order carries its owner's signature, and the wallet
/// checks that.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldOrder {
    #[serde(rename = "Account")]
    pub account: AccountId,
    #[serde(rename = "Sequence")]
    pub next_sequence: u64,
    #[serde(rename = "Locked", default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<OrderDigest>,
    #[serde(rename = "Order", default, skip_serializing_if = "Option::is_none")]
    pub order: Option<SignedOrder>,
}

/// `REQ_ESCROW`: an escrow by its id, or by its hash lock (a resuming wallet or maker asks
/// first whether the secret was revealed, then whether the deadline passed: DESIGN §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum EscrowQuery {
    #[serde(rename = "Escrow")]
    Id(EscrowId),
    #[serde(rename = "Hashlock")]
    HashLock(Digest),
}

/// How an escrow stands at one validator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EscrowStanding {
    /// Locked, neither claimed nor refunded here.
    Open,
    /// A claim certificate was applied here.
    Claimed,
    /// A refund certificate was applied here.
    Refunded,
}

impl From<Settlement> for EscrowStanding {
    fn from(settlement: Settlement) -> Self {
        match settlement {
            Settlement::Open => EscrowStanding::Open,
            Settlement::Claimed(_) => EscrowStanding::Claimed,
            Settlement::Refunded => EscrowStanding::Refunded,
        }
    }
}

/// `RESP_ESCROW`: what one validator knows of an escrow. Not signed by the validator: the
/// lock is checked against its id, the secret against the hash lock, and a certificate,
/// not this answer, is what proves a settlement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowView {
    /// The escrow's id, when the validator has applied its lock.
    #[serde(rename = "Escrow", default, skip_serializing_if = "Option::is_none")]
    pub escrow: Option<EscrowId>,
    /// The lock order, when applied here.
    #[serde(rename = "Lock", default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<EscrowLock>,
    /// How it stands, when its lock is applied here.
    #[serde(rename = "State", default, skip_serializing_if = "Option::is_none")]
    pub standing: Option<EscrowStanding>,
    /// The secret behind the hash lock, as soon as this validator voted a claim showing it.
    #[serde(rename = "Secret", default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<EscrowSecret>,
    /// The claim or refund this validator holds its vote for, while not settled here.
    #[serde(rename = "Held", default, skip_serializing_if = "Option::is_none")]
    pub held: Option<SignedOrder>,
    /// The validator's clock (ms since the Unix epoch) when it answered: deadlines are
    /// judged by it.
    #[serde(rename = "Clock")]
    pub clock_ms: u64,
}

/// `RESP_PAY` / `RESP_INTRO_KEY`: one validator's vote, in the seed's shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteReply {
    /// The digest of the order voted for.
    #[serde(rename = "Checksum")]
    pub checksum: OrderDigest,
    /// `{validator: signature}`, exactly one entry.
    #[serde(rename = "Signatures", with = "vote_map")]
    pub votes: Vec<Vote>,
}

/// `RESP_PAY_END` / `RESP_INTRO_KEY_END`: the certificate is applied and durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndAck {
    #[serde(rename = "Checksum")]
    pub checksum: OrderDigest,
    /// False when this validator had applied it before (applying is idempotent).
    #[serde(rename = "New")]
    pub new: bool,
    #[serde(rename = "Validator")]
    pub validator: AccountId,
}

/// `REQ_CERTS`: which certificates to send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum CertQuery {
    /// The validator's log from position `Since` (peers catching up).
    Log {
        #[serde(rename = "Since")]
        since: u64,
        #[serde(rename = "Limit")]
        limit: u32,
    },
    /// The orders `Account` signed, from sequence `From` (to fill a sequence gap).
    Sent {
        #[serde(rename = "Account")]
        account: AccountId,
        #[serde(rename = "From")]
        from: u64,
        #[serde(rename = "Limit")]
        limit: u32,
    },
    /// Every certificate that moved `Account`'s balance, in log order from position `Since`.
    Touching {
        #[serde(rename = "Account")]
        account: AccountId,
        #[serde(rename = "Since")]
        since: u64,
        #[serde(rename = "Limit")]
        limit: u32,
    },
}

impl CertQuery {
    /// The most certificates one `RESP_CERTS` carries.
    pub const MAX_LIMIT: u32 = 512;
}

/// `RESP_CERTS`: certificates with their positions in the validator's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatesPage {
    #[serde(rename = "Certificates")]
    pub certificates: Vec<LoggedCertificate>,
    /// Where the next page starts, if there is more.
    #[serde(rename = "Next", default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// A certificate and its position in a validator's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedCertificate {
    #[serde(rename = "Index")]
    pub index: u64,
    #[serde(rename = "Certificate")]
    pub certificate: Certificate,
}

/// Why a request failed. Nothing changed on the validator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Not a packet, or not one a validator answers.
    Malformed,
    /// The object names another network.
    WrongNetwork,
    /// A signature does not verify.
    BadSignature,
    /// The order's sequence is not the account's next one; `Reason` names the expected one.
    Sequence,
    /// A certificate for a later order arrived before the ones before it.
    MissingPredecessor,
    /// The account cannot pay the amount.
    InsufficientFunds,
    /// This validator already voted for a different order in the same lock slot.
    Conflict,
    /// The key was introduced before.
    AlreadyIntroduced,
    /// The proof of work does not meet the network's difficulty.
    BadProofOfWork,
    /// The certificate is not one (too few or duplicate signers, outsiders, bad checksum).
    BadCertificate,
    /// The amount is zero, the arithmetic would overflow, an account pays itself, or a
    /// split's outputs are malformed (`Reason` says which).
    BadAmount,
    /// An escrow lock this network does not take: no escrows here, an unknown counterpart
    /// network, a deadline too far ahead, a hash lock already used (`Reason` says).
    BadEscrow,
    /// No such escrow is open here (unknown, or settled already).
    EscrowClosed,
    /// The secret does not open the escrow.
    WrongSecret,
    /// A claim after the deadline, or a refund before the deadline plus the skew bound,
    /// by this validator's clock.
    Deadline,
    /// The validator is overloaded or shutting down; try again.
    Busy,
    /// The validator's storage failed; nothing was acknowledged.
    Internal,
}

/// `ERROR`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorReply {
    #[serde(rename = "Code")]
    pub code: ErrorCode,
    #[serde(rename = "Reason")]
    pub reason: String,
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.reason)
    }
}
