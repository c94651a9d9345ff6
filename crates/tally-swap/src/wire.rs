//! What both sagas share: the observations a driver feeds them ([`Event`]), the work they
//! hand back ([`Action`]), the messages between payer and maker ([`Message`]) and how a wire
//! ends for one party ([`Outcome`]).

use crate::quote::SignedQuote;
use serde::{Deserialize, Serialize};
use tally_core::{
    AccountId, Amount, Counterpart, Digest, EscrowId, EscrowLock, EscrowSecret, NetworkId, Order,
};

/// How an escrow stands on its network, as the driver saw it (a certificate applied by a
/// quorum, not one validator's word).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Standing {
    /// Locked, neither claimed nor refunded.
    Open,
    /// Claimed for the payee.
    Claimed,
    /// Returned to the payer.
    Refunded,
}

/// Why a network would not certify a claim or refund: final for that order at that time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// A claim at or past the deadline by the validators' clocks.
    TooLate,
    /// A refund before the deadline plus ε by the validators' clocks.
    TooEarly,
    /// The escrow is already settled (by this or the other order); its standing says how.
    Settled,
    /// Anything else (votes split, validators unreachable…), as text.
    Other(String),
}

/// What a lock must say; the driver's wallet adds its payer and sequence and signs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockTerms {
    /// Who a claim pays.
    pub payee: AccountId,
    /// How much is locked.
    pub amount: Amount,
    /// SHA-256 of the secret.
    pub hash_lock: Digest,
    /// Claims are voted before it, refunds from it plus ε (ms since the Unix epoch).
    pub deadline_ms: u64,
    /// The other half of the wire.
    pub counterpart: Counterpart,
}

impl LockTerms {
    /// Whether `lock` carries exactly these terms (its payer and sequence are the
    /// wallet's).
    pub fn matches(&self, lock: &EscrowLock) -> bool {
        lock.payee == self.payee
            && lock.amount == self.amount
            && lock.hash_lock == self.hash_lock
            && lock.deadline == self.deadline_ms
            && lock.counterpart == Some(self.counterpart)
    }

    /// The lock order these terms make for `payer` at its `sequence`.
    pub fn to_lock(&self, payer: AccountId, sequence: u64) -> EscrowLock {
        EscrowLock {
            payer,
            sequence,
            payee: self.payee,
            amount: self.amount,
            hash_lock: self.hash_lock,
            deadline: self.deadline_ms,
            counterpart: Some(self.counterpart),
        }
    }
}

/// The id a lock has on `network`: the digest of its order. The sagas recompute it rather
/// than trust an id and a lock reported side by side.
pub fn escrow_id(network: &NetworkId, lock: &EscrowLock) -> EscrowId {
    Order::from(*lock).digest(network)
}

/// Between payer and maker, over the relay. Only hints: each side acts on what it sees
/// certified on the networks, never on a message alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum Message {
    /// The payer locked on A (DESIGN §8 step 3), following the quote with this hash.
    #[serde(rename_all = "PascalCase")]
    PayerLocked { quote: Digest, escrow: EscrowId },
    /// The maker locked on B (step 4), answering the payer's escrow `escrow_a`.
    #[serde(rename_all = "PascalCase")]
    MakerLocked {
        escrow_a: EscrowId,
        escrow: EscrowId,
    },
    /// The maker will not lock for the payer's escrow `escrow_a`; the payer's money comes
    /// back by refund after its deadline.
    #[serde(rename_all = "PascalCase")]
    Declined { escrow_a: EscrowId, reason: String },
}

/// The token every wire topic room is joined with: topics are public, so the token is too
/// (the relay requires one; a fixed one lets every maker and payer meet in the room).
pub const TOPIC_TOKEN: &str = "tally-wire";

/// One line in a wire topic room, as JSON: a maker's quote (re-announced on a timer), or a
/// message between a payer and a maker. Every member sees every line; each acts only on the
/// lines that name its own quote or escrow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicLine {
    Quote(Box<SignedQuote>),
    Wire(Message),
}

impl TopicLine {
    /// The line as sent (one line of JSON, no newline).
    pub fn to_line(&self) -> String {
        // A `TopicLine` is made of structs, strings and numbers only: serializing it cannot
        // fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a line from the room.
    pub fn parse(line: &str) -> Result<TopicLine, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// Something the driver observed, fed to a saga's `handle`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The saga's [`Action::Lock`] was certified: the lock as signed and its id.
    Locked {
        network: NetworkId,
        escrow: EscrowId,
        lock: EscrowLock,
    },
    /// The saga's [`Action::Lock`] can never be certified (funds, deadline, a reused hash
    /// lock…): the driver abandoned that order for good.
    LockRefused { network: NetworkId, reason: String },
    /// A claim of `escrow` was certified.
    Claimed {
        network: NetworkId,
        escrow: EscrowId,
    },
    /// The saga's claim was refused.
    ClaimRefused {
        network: NetworkId,
        escrow: EscrowId,
        refusal: Refusal,
    },
    /// A refund of `escrow` was certified.
    Refunded {
        network: NetworkId,
        escrow: EscrowId,
    },
    /// The saga's refund was refused.
    RefundRefused {
        network: NetworkId,
        escrow: EscrowId,
        refusal: Refusal,
    },
    /// A watched escrow as certified on `network`: its lock and standing.
    Seen {
        network: NetworkId,
        escrow: EscrowId,
        lock: EscrowLock,
        standing: Standing,
    },
    /// A secret was revealed on `network` (a validator voted a claim showing it, or a
    /// notice carried it). The saga checks it against its hash lock.
    SecretRevealed {
        network: NetworkId,
        secret: EscrowSecret,
    },
    /// A message from the counterpart.
    Message(Message),
    /// Time passed (a [`Action::WakeAt`] came due, or the driver's own period).
    Tick,
}

/// What a watch follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    /// One escrow, by id.
    Escrow(EscrowId),
    /// The escrow under this hash lock (one per network), and its secret once revealed.
    HashLock(Digest),
}

/// What the driver must do, in order. Each may be issued again after a resume, so the
/// driver performs each idempotently (its wallet journals each order it signs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Journal the saga's `snapshot()` now, before performing any action after this one.
    Journal,
    /// Lock on `network` with these terms; report [`Event::Locked`] or
    /// [`Event::LockRefused`]. Issued again after a crash with the same terms: the wallet
    /// must finish the order it journaled, never sign a second one.
    Lock {
        network: NetworkId,
        terms: LockTerms,
    },
    /// Claim `escrow` on `network` with `secret` (sent to every validator at once);
    /// report [`Event::Claimed`] or [`Event::ClaimRefused`].
    Claim {
        network: NetworkId,
        escrow: EscrowId,
        secret: EscrowSecret,
    },
    /// Refund `escrow` on `network`; report [`Event::Refunded`] or
    /// [`Event::RefundRefused`].
    Refund {
        network: NetworkId,
        escrow: EscrowId,
    },
    /// Keep reporting `target` on `network`: [`Event::Seen`] whenever its standing
    /// changes, [`Event::SecretRevealed`] once its secret is out.
    Watch { network: NetworkId, target: Target },
    /// Send this to the counterpart.
    Send(Message),
    /// Feed [`Event::Tick`] no later than this moment (ms since the Unix epoch).
    WakeAt(u64),
    /// The wire is over for this party; the driver may forget the journal.
    Done(Outcome),
}

/// Puts [`Action::Journal`] in front of a step's actions when the step changed the state
/// (`before` to `after`): nothing a step asks for may happen before the state that asked
/// for it is durable. Both sagas end every step with it.
pub(crate) fn journal_first<S: PartialEq>(before: &S, after: &S, out: &mut Vec<Action>) {
    if before != after {
        out.insert(0, Action::Journal);
    }
}

/// How a wire ended for one party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Payer: claimed on B. Maker: claimed on A.
    Completed,
    /// The party's own lock came back by refund.
    Refunded,
    /// Nothing of the party's was ever locked (quote, lock or terms refused).
    Aborted(String),
    /// The party's lock went to the other side and it received nothing: possible only when
    /// the timing assumptions failed (it acted after its last moment).
    Lost(String),
}
