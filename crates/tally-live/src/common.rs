//! What both sides share: timing rules, coin summaries, failure reasons, and the link to the
//! peer (what was sent and received, when the peer was last heard).

use serde::{Deserialize, Serialize};
use tally_core::{AccountId, Amount};
use tally_proto::live::{Details, LiveMessage, MessageNumber};

/// The denominations a coin may have, in whole cash (DESIGN §7, CloudCoin's set).
pub const COIN_DENOMINATIONS_CASH: [u64; 5] = [1, 5, 25, 100, 250];

/// The transfer's clocks, in milliseconds. Every `now` given to the machines is Unix time in
/// milliseconds (the pown deadline is a wall-clock time both parties and the validators
/// understand).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// How often each side sends a heartbeat (message 1). Default 5 s.
    pub heartbeat_ms: u64,
    /// A peer heard from before and then silent this long fails the transfer. Default 30 s;
    /// at least twice `heartbeat_ms`, and under the relay's idle timeout is not required
    /// (heartbeats keep the relay connection alive).
    pub peer_timeout_ms: u64,
    /// A peer never heard from within this long of the start (or of a resume) fails the
    /// transfer. Default 10 min: time to hand the connection file over.
    pub join_timeout_ms: u64,
    /// Sender: the pown deadline is this long after the coins are sealed. Default 10 min.
    pub pown_window_ms: u64,
    /// Receiver: refuses sealed coins whose deadline leaves less than this to pown them.
    /// Default 2 min.
    pub min_pown_window_ms: u64,
    /// The network's maximum clock skew (its contract's ε): the sender takes unpowned coins
    /// back only after the deadline plus this. Default 5 s.
    pub skew_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_ms: 5_000,
            peer_timeout_ms: 30_000,
            join_timeout_ms: 600_000,
            pown_window_ms: 600_000,
            min_pown_window_ms: 120_000,
            skew_ms: 5_000,
        }
    }
}

/// Why a machine cannot be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A timing rule is broken; the text says which.
    #[error("bad timing: {0}")]
    Timing(&'static str),
    /// The amount is zero or not whole cash (coins are whole cash).
    #[error("{0} cannot be paid in coins: coins are whole, non-zero cash")]
    Amount(Amount),
}

impl Timing {
    /// Checks that the clocks make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_ms == 0 {
            return Err(ConfigError::Timing(
                "the heartbeat interval must be above zero",
            ));
        }
        if self.peer_timeout_ms < 2 * self.heartbeat_ms {
            return Err(ConfigError::Timing(
                "the peer timeout must be at least two heartbeats",
            ));
        }
        if self.join_timeout_ms < self.peer_timeout_ms {
            return Err(ConfigError::Timing(
                "the join timeout must be at least the peer timeout",
            ));
        }
        if self.min_pown_window_ms == 0 || self.pown_window_ms <= self.min_pown_window_ms {
            return Err(ConfigError::Timing(
                "the pown window must exceed the receiver's minimum, itself above zero",
            ));
        }
        Ok(())
    }
}

/// Whether `amount` can be paid in coins: whole, non-zero cash.
pub fn coinable(amount: Amount) -> bool {
    !amount.is_zero()
        && amount
            .microcash()
            .is_multiple_of(tally_core::amount::MICROCASH_PER_CASH)
}

/// What the machines know of a coin: which account and how much. Never its secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CoinSummary {
    /// The coin's account.
    pub account: AccountId,
    /// Its denomination in whole cash.
    pub denomination_cash: u64,
}

/// The total of `coins`, or `None` on overflow.
pub fn total(coins: &[CoinSummary]) -> Option<Amount> {
    coins.iter().try_fold(Amount::ZERO, |sum, coin| {
        sum.checked_add(Amount::from_cash(coin.denomination_cash)?)
    })
}

/// Checks that `coins` are distinct, of valid denominations, and total exactly `amount`.
pub fn check_coins(coins: &[CoinSummary], amount: Amount) -> Result<(), FailReason> {
    if let Some(coin) = coins
        .iter()
        .find(|c| !COIN_DENOMINATIONS_CASH.contains(&c.denomination_cash))
    {
        return Err(FailReason::BadCoins(format!(
            "coin {} has denomination {}, not one of 1, 5, 25, 100, 250",
            coin.account.short(),
            coin.denomination_cash
        )));
    }
    let mut accounts: Vec<AccountId> = coins.iter().map(|c| c.account).collect();
    accounts.sort_unstable();
    accounts.dedup();
    if accounts.len() != coins.len() {
        return Err(FailReason::BadCoins("a coin is listed twice".into()));
    }
    match total(coins) {
        Some(got) if got == amount => Ok(()),
        got => Err(FailReason::WrongTotal {
            expected: amount,
            got: got.unwrap_or(Amount::from_microcash(u64::MAX)),
        }),
    }
}

/// Whether two coin lists hold the same coins, in any order.
pub fn same_coins(a: &[CoinSummary], b: &[CoinSummary]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a.dedup();
    b.dedup();
    a == b && a.len() == b.len()
}

/// Why a transfer failed. Serialisable: it is part of the saved state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum FailReason {
    /// The peer was heard from, then silent for the peer timeout.
    #[error("the peer has been silent for {0} ms")]
    PeerSilent(u64),
    /// The peer never appeared within the join timeout.
    #[error("the peer did not join within {0} ms")]
    PeerNeverJoined(u64),
    /// The receiver echoed another amount than the sender announced.
    #[error("the receiver confirmed {echoed}, not the {announced} announced")]
    AmountMismatch { announced: Amount, echoed: Amount },
    /// The sender announced another amount than the receiver expects.
    #[error("the sender announced {announced}, the receiver expects {expected}")]
    UnexpectedAmount { expected: Amount, announced: Amount },
    /// The announced amount is zero or not whole cash.
    #[error("{0} cannot be paid in coins")]
    AmountNotCoinable(Amount),
    /// The peer sent a message this side does not expect now.
    #[error("unexpected message {number} while {phase}")]
    UnexpectedMessage { number: u8, phase: String },
    /// The peer repeated a message with different content.
    #[error("message {0} repeated with different content")]
    ConflictingRepeat(u8),
    /// The peer sent a line that is not a LiveConnect message.
    #[error("unreadable line from the peer: {0}")]
    BadLine(String),
    /// The sender's wallet could not prepare the coins.
    #[error("preparing the coins failed: {0}")]
    PreparationFailed(String),
    /// Coins are malformed (denomination, duplicates).
    #[error("bad coins: {0}")]
    BadCoins(String),
    /// Coins total another amount than announced.
    #[error("the coins total {got}, not {expected}")]
    WrongTotal { expected: Amount, got: Amount },
    /// Sealing the coins failed.
    #[error("sealing the coins failed: {0}")]
    SealFailed(String),
    /// Message 24 would be longer than the relay takes.
    #[error("the sealed coins make a {0}-byte line, over the limit: send fewer coins")]
    PayloadTooLarge(usize),
    /// The receiver could not open the sealed coins.
    #[error("opening the sealed coins failed: {0}")]
    OpenFailed(String),
    /// The pown deadline leaves the receiver too little time.
    #[error("the pown deadline {deadline_ms} leaves less than {min_ms} ms from {now_ms}")]
    DeadlineTooSoon {
        deadline_ms: u64,
        now_ms: u64,
        min_ms: u64,
    },
    /// The receiver's pown failed; none of the coins moved.
    #[error("powning the coins failed: {0}")]
    PownFailed(String),
    /// The receipt does not verify.
    #[error("the receipt does not verify: {0}")]
    ReceiptRejected(String),
    /// The receipt verifies but covers other coins than were sent.
    #[error("the receipt covers other coins than were sent")]
    ReceiptIncomplete,
    /// The pown deadline passed without a good receipt.
    #[error("the pown deadline passed without a receipt")]
    DeadlinePassed,
    /// The user cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The driver reported something that contradicts what the machine asked for.
    #[error("inconsistent report from the wallet: {0}")]
    InconsistentReport(String),
}

/// How a peer's message relates to what was received before.
pub(crate) enum Incoming {
    /// A heartbeat: only proves the peer is alive.
    Heartbeat,
    /// Received before with the same content (a re-send after a reconnect): ignored.
    Duplicate,
    /// Received before with other content: a protocol violation.
    Conflict,
    /// Not received before.
    New,
}

/// The link to the peer: the transcript both ways and the liveness clocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Link {
    /// Every message sent but heartbeats, in order: re-sent whole when the peer (re)joins,
    /// since it may have missed any suffix of it.
    pub sent: Vec<LiveMessage>,
    /// Every message accepted from the peer but heartbeats (`from` cleared).
    pub received: Vec<LiveMessage>,
    /// When this side started or last resumed.
    pub started_ms: u64,
    /// When the peer was last heard (line or arrival); `None` if never since the start.
    pub last_heard_ms: Option<u64>,
    /// When this side last sent a heartbeat.
    pub last_heartbeat_ms: u64,
}

impl Link {
    pub fn new(now: u64) -> Link {
        Link {
            sent: Vec::new(),
            received: Vec::new(),
            started_ms: now,
            last_heard_ms: None,
            last_heartbeat_ms: now,
        }
    }

    /// After a restart: the peer gets fresh timeouts, as it may have been waiting for us.
    pub fn resumed(&mut self, now: u64) {
        self.started_ms = now;
        self.last_heard_ms = None;
        self.last_heartbeat_ms = 0;
    }

    pub fn heard(&mut self, now: u64) {
        self.last_heard_ms = Some(now);
    }

    /// Records `number`/`details` as sent and returns the message to send.
    pub fn send(&mut self, number: MessageNumber, details: Details) -> LiveMessage {
        let message = LiveMessage::outgoing(number, details);
        self.sent.push(message.clone());
        message
    }

    pub fn classify(&self, message: &LiveMessage) -> Incoming {
        if message.number == MessageNumber::Heartbeat {
            return Incoming::Heartbeat;
        }
        match self.received.iter().find(|m| m.number == message.number) {
            Some(before) if before.details == message.details => Incoming::Duplicate,
            Some(_) => Incoming::Conflict,
            None => Incoming::New,
        }
    }

    pub fn accept(&mut self, message: &LiveMessage) {
        self.received.push(LiveMessage {
            from: None,
            ..message.clone()
        });
    }

    pub fn has_received(&self, number: MessageNumber) -> bool {
        self.received.iter().any(|m| m.number == number)
    }

    /// Whether a heartbeat is due; if so, records it as sent now.
    pub fn heartbeat_due(&mut self, now: u64, timing: &Timing) -> bool {
        if now.saturating_sub(self.last_heartbeat_ms) >= timing.heartbeat_ms {
            self.last_heartbeat_ms = now;
            true
        } else {
            false
        }
    }

    /// Why the peer counts as gone at `now`, if it does.
    pub fn silence(&self, now: u64, timing: &Timing) -> Option<FailReason> {
        match self.last_heard_ms {
            Some(heard) if now.saturating_sub(heard) >= timing.peer_timeout_ms => {
                Some(FailReason::PeerSilent(now.saturating_sub(heard)))
            }
            Some(_) => None,
            None if now.saturating_sub(self.started_ms) >= timing.join_timeout_ms => {
                Some(FailReason::PeerNeverJoined(timing.join_timeout_ms))
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn coin(n: u8, denomination_cash: u64) -> CoinSummary {
        CoinSummary {
            account: AccountId::from([n; 32]),
            denomination_cash,
        }
    }

    /// Coins must be distinct, of the five denominations, and total the amount exactly.
    #[test]
    fn coin_checks() {
        let amount = Amount::from_cash(30).unwrap();
        assert_eq!(check_coins(&[coin(1, 25), coin(2, 5)], amount), Ok(()));
        assert!(matches!(
            check_coins(&[coin(1, 25), coin(1, 5)], amount),
            Err(FailReason::BadCoins(_))
        ));
        assert!(matches!(
            check_coins(&[coin(1, 20), coin(2, 10)], amount),
            Err(FailReason::BadCoins(_))
        ));
        assert_eq!(
            check_coins(&[coin(1, 25)], amount),
            Err(FailReason::WrongTotal {
                expected: amount,
                got: Amount::from_cash(25).unwrap()
            })
        );
        assert!(check_coins(&[], amount).is_err());
        assert!(same_coins(
            &[coin(1, 5), coin(2, 1)],
            &[coin(2, 1), coin(1, 5)]
        ));
        assert!(!same_coins(&[coin(1, 5)], &[coin(1, 5), coin(2, 1)]));
    }

    /// Only whole, non-zero cash can be paid in coins.
    #[test]
    fn coinable_amounts() {
        assert!(coinable(Amount::from_cash(1).unwrap()));
        assert!(!coinable(Amount::ZERO));
        assert!(!coinable(Amount::from_microcash(1_500_000)));
    }

    /// The default clocks are valid; inconsistent ones are refused.
    #[test]
    fn timing_rules() {
        assert_eq!(Timing::default().validate(), Ok(()));
        let d = Timing::default();
        for bad in [
            Timing {
                heartbeat_ms: 0,
                ..d
            },
            Timing {
                peer_timeout_ms: d.heartbeat_ms,
                ..d
            },
            Timing {
                join_timeout_ms: d.peer_timeout_ms - 1,
                ..d
            },
            Timing {
                pown_window_ms: d.min_pown_window_ms,
                ..d
            },
            Timing {
                min_pown_window_ms: 0,
                ..d
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(ConfigError::Timing(_))),
                "{bad:?}"
            );
        }
    }

    /// Silence counts from the last contact, or from the start when there was none.
    #[test]
    fn silence_rules() {
        let t = Timing::default();
        let mut link = Link::new(1_000);
        assert_eq!(link.silence(1_000 + t.join_timeout_ms - 1, &t), None);
        assert_eq!(
            link.silence(1_000 + t.join_timeout_ms, &t),
            Some(FailReason::PeerNeverJoined(t.join_timeout_ms))
        );
        link.heard(2_000);
        assert_eq!(link.silence(2_000 + t.peer_timeout_ms - 1, &t), None);
        assert_eq!(
            link.silence(2_000 + t.peer_timeout_ms, &t),
            Some(FailReason::PeerSilent(t.peer_timeout_ms))
        );
    }
}
