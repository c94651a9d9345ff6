//! The receiver's side of a LiveConnect transfer (DESIGN §7): confirm the amount, follow the
//! sender's preparation, take the sealed coins, open and pown them before the deadline,
//! send the receipt.

use serde::{Deserialize, Serialize};
use tally_core::Amount;
use tally_proto::live::{Details, LiveMessage, MessageNumber, valid_base64};

use crate::common::{
    CoinSummary, ConfigError, FailReason, Incoming, Link, Timing, check_coins, coinable, total,
};

/// What the receiver accepts. The driver starts a receiver only with an empty hidden
/// Receiver wallet (that is what message 3 asserts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverConfig {
    /// The amount the user expects, if they said; another announced amount fails.
    pub expected_amount: Option<Amount>,
    /// The clocks.
    pub timing: Timing,
}

/// Something that happened, fed to [`Receiver::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// The sender is in the room (relay `@here` or `@arrived`).
    PeerJoined,
    /// The sender left the room; only silence for the peer timeout counts.
    PeerLeft,
    /// A line from the sender, parsed with `tally_proto::live::parse_line`.
    Line(LiveMessage),
    /// A line from the sender that did not parse (the parse error as text).
    BadLine(String),
    /// Time passed; send often enough (every second will do).
    Tick,
    /// The user gives up. Ignored while powning (a pown in flight completes).
    Cancel,
    /// [`ReceiverAction::OpenCoins`] is done: the coins in the hidden Receiver wallet.
    CoinsOpened {
        /// The opened coins.
        coins: Vec<CoinSummary>,
    },
    /// [`ReceiverAction::OpenCoins`] failed (wrong key, tampered, undecodable).
    OpenFailed(String),
    /// [`ReceiverAction::PownCoins`] is done: `powned` (all or some of the coins) are
    /// ours, certified; `receipt_b64` is standard base64 of their pown certificates.
    CoinsPowned {
        /// The certificates.
        receipt_b64: String,
        /// The coins powned.
        powned: Vec<CoinSummary>,
    },
    /// [`ReceiverAction::PownCoins`] failed and no coin was powned.
    PownFailed(String),
}

/// What the driver must do. Every action may be issued again after a resume, so the
/// driver performs each idempotently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiverAction {
    /// Send this line (`LiveMessage::to_line`) to the room.
    Send(LiveMessage),
    /// A step was reached (sent or received): for showing progress.
    Step(MessageNumber),
    /// Decode `coins_b64`, open it with the session key and `pown_deadline_ms` (8 bytes,
    /// little-endian) as associated data, put the coins in the hidden Receiver wallet;
    /// report [`ReceiverEvent::CoinsOpened`] or [`ReceiverEvent::OpenFailed`].
    OpenCoins {
        /// Message 24's `Coins`.
        coins_b64: String,
        /// Message 24's `PownDeadline`.
        pown_deadline_ms: u64,
    },
    /// Pown the coins (each to a fresh key of ours, asking the validators first). Sign no
    /// new pown order at or after `sign_before_ms`; complete any already journaled. Report
    /// [`ReceiverEvent::CoinsPowned`] or [`ReceiverEvent::PownFailed`].
    PownCoins {
        /// The coins.
        coins: Vec<CoinSummary>,
        /// The deadline.
        pown_deadline_ms: u64,
        /// The deadline less the clock skew: the last moment a new pown order may be
        /// signed. An order signed later could still be gathering votes when the sender,
        /// at the deadline plus the skew, powns back what it sees unspent; stopping a skew
        /// early leaves twice the skew between the two.
        sign_before_ms: u64,
    },
    /// The transfer failed (shown to the user); a [`ReceiverAction::Finished`] follows.
    Failed(FailReason),
    /// The transfer is over; the driver may leave the room and forget the state. On
    /// [`ReceiverOutcome::Aborted`] it discards any unpowned coins of this transfer.
    Finished(ReceiverOutcome),
}

/// How a transfer ended for the receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiverOutcome {
    /// Coins were powned: they are ours.
    Received {
        /// What the sender announced.
        announced: Amount,
        /// What was powned (less than announced if some coins failed to pown).
        received: Amount,
        /// The pown certificates sent as message 17.
        receipt_b64: String,
        /// Whether the sender confirmed (18, 19).
        confirmed: bool,
    },
    /// Nothing was received.
    Aborted {
        /// Why.
        reason: FailReason,
    },
}

/// Where the receiver stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiverPhase {
    /// Waiting for 2.
    AwaitingRequest,
    /// Sent 3, waiting for 4.
    AwaitingAmount,
    /// Echoed 4; following the sender's steps 5–12.
    FollowingSender { amount: Amount, last_step: u8 },
    /// Sent 13, waiting for 24.
    AwaitingCoins { amount: Amount },
    /// The wallet opens the sealed coins.
    Opening {
        amount: Amount,
        coins_b64: String,
        pown_deadline_ms: u64,
    },
    /// The wallet powns the coins.
    Powning {
        amount: Amount,
        coins: Vec<CoinSummary>,
        pown_deadline_ms: u64,
    },
    /// Sent 17; waiting for 18 and 19.
    AwaitingConfirmation {
        amount: Amount,
        received: Amount,
        receipt_b64: String,
    },
    /// Over.
    Finished(ReceiverOutcome),
}

impl ReceiverPhase {
    fn name(&self) -> &'static str {
        match self {
            ReceiverPhase::AwaitingRequest => "waiting for message 2",
            ReceiverPhase::AwaitingAmount => "waiting for the amount",
            ReceiverPhase::FollowingSender { .. } => "following the sender's preparation",
            ReceiverPhase::AwaitingCoins { .. } => "waiting for the coins",
            ReceiverPhase::Opening { .. } => "opening the coins",
            ReceiverPhase::Powning { .. } => "powning the coins",
            ReceiverPhase::AwaitingConfirmation { .. } => "waiting for the confirmation",
            ReceiverPhase::Finished(_) => "finished",
        }
    }
}

/// The receiver's saved state: journal it (serde) after every [`Receiver::handle`], before
/// performing the actions, and give it to [`Receiver::resume`] after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverState {
    config: ReceiverConfig,
    link: Link,
    phase: ReceiverPhase,
}

impl ReceiverState {
    /// Where the transfer stands.
    pub fn phase(&self) -> &ReceiverPhase {
        &self.phase
    }
}

/// The receiver's state machine. No I/O: events and `now` (Unix ms) in, actions out.
#[derive(Clone, Debug)]
pub struct Receiver {
    state: ReceiverState,
}

type Out = Vec<ReceiverAction>;

impl Receiver {
    /// Starts at `now`: checks the configuration, starts the heartbeat.
    pub fn new(config: ReceiverConfig, now: u64) -> Result<(Receiver, Out), ConfigError> {
        config.timing.validate()?;
        if let Some(amount) = config.expected_amount.filter(|a| !coinable(*a)) {
            return Err(ConfigError::Amount(amount));
        }
        let receiver = Receiver {
            state: ReceiverState {
                config,
                link: Link::new(now),
                phase: ReceiverPhase::AwaitingRequest,
            },
        };
        let heartbeat = LiveMessage::outgoing(MessageNumber::Heartbeat, Details::None);
        Ok((receiver, vec![ReceiverAction::Send(heartbeat)]))
    }

    /// Restarts from a journaled state at `now`: re-issues the action in flight (to be
    /// performed idempotently) and gives the sender fresh timeouts. The driver rejoins the
    /// room; [`ReceiverEvent::PeerJoined`] then re-sends everything sent so far.
    pub fn resume(state: ReceiverState, now: u64) -> (Receiver, Out) {
        let mut receiver = Receiver { state };
        receiver.state.link.resumed(now);
        let mut out = Vec::new();
        match &receiver.state.phase {
            ReceiverPhase::Opening {
                coins_b64,
                pown_deadline_ms,
                ..
            } => out.push(ReceiverAction::OpenCoins {
                coins_b64: coins_b64.clone(),
                pown_deadline_ms: *pown_deadline_ms,
            }),
            ReceiverPhase::Powning {
                coins,
                pown_deadline_ms,
                ..
            } => out.push(ReceiverAction::PownCoins {
                coins: coins.clone(),
                pown_deadline_ms: *pown_deadline_ms,
                sign_before_ms: pown_deadline_ms
                    .saturating_sub(receiver.state.config.timing.skew_ms),
            }),
            ReceiverPhase::Finished(outcome) => out.push(ReceiverAction::Finished(outcome.clone())),
            _ => {}
        }
        receiver.on_time(now, &mut out);
        (receiver, out)
    }

    /// The state to journal.
    pub fn state(&self) -> &ReceiverState {
        &self.state
    }

    /// Where the transfer stands.
    pub fn phase(&self) -> &ReceiverPhase {
        &self.state.phase
    }

    /// Whether the transfer is over.
    pub fn is_finished(&self) -> bool {
        matches!(self.state.phase, ReceiverPhase::Finished(_))
    }

    /// Feeds one event at `now`; returns what the driver must do, in order.
    pub fn handle(&mut self, event: ReceiverEvent, now: u64) -> Out {
        let mut out = Vec::new();
        if self.is_finished() {
            if event == ReceiverEvent::PeerJoined {
                self.resend(&mut out);
            }
            return out;
        }
        match event {
            ReceiverEvent::PeerJoined => {
                self.state.link.heard(now);
                self.resend(&mut out);
            }
            ReceiverEvent::PeerLeft | ReceiverEvent::Tick => {}
            ReceiverEvent::Line(message) => self.on_line(message, now, &mut out),
            ReceiverEvent::BadLine(error) => {
                self.state.link.heard(now);
                self.violation(FailReason::BadLine(error), &mut out);
            }
            ReceiverEvent::Cancel => self.violation(FailReason::Cancelled, &mut out),
            other => self.on_wallet(other, now, &mut out),
        }
        self.on_time(now, &mut out);
        out
    }

    fn send(&mut self, number: MessageNumber, details: Details, out: &mut Out) {
        let message = self.state.link.send(number, details);
        out.push(ReceiverAction::Send(message));
        out.push(ReceiverAction::Step(number));
    }

    fn resend(&self, out: &mut Out) {
        out.extend(
            self.state
                .link
                .sent
                .iter()
                .cloned()
                .map(ReceiverAction::Send),
        );
    }

    fn on_line(&mut self, message: LiveMessage, now: u64, out: &mut Out) {
        self.state.link.heard(now);
        match self.state.link.classify(&message) {
            Incoming::Heartbeat | Incoming::Duplicate => return,
            Incoming::Conflict => {
                let number = message.number.number();
                return self.violation(FailReason::ConflictingRepeat(number), out);
            }
            Incoming::New => {}
        }
        let number = message.number;
        let timing = self.state.config.timing;
        let accepted = match (&mut self.state.phase, &message.details) {
            (ReceiverPhase::AwaitingRequest, _) if number == MessageNumber::EmptyImportExport => {
                out.push(ReceiverAction::Step(number));
                self.send(MessageNumber::ImportExportEmpty, Details::None, out);
                self.state.phase = ReceiverPhase::AwaitingAmount;
                true
            }
            (ReceiverPhase::AwaitingAmount, Details::Amount(amount))
                if number == MessageNumber::MoneyToBeSent =>
            {
                let amount = *amount;
                out.push(ReceiverAction::Step(number));
                match self.state.config.expected_amount {
                    _ if !coinable(amount) => {
                        self.abort(FailReason::AmountNotCoinable(amount), out)
                    }
                    Some(expected) if expected != amount => self.abort(
                        FailReason::UnexpectedAmount {
                            expected,
                            announced: amount,
                        },
                        out,
                    ),
                    _ => {
                        self.send(MessageNumber::MoneyToBeSent, Details::Amount(amount), out);
                        self.state.phase = ReceiverPhase::FollowingSender {
                            amount,
                            last_step: 4,
                        };
                    }
                }
                true
            }
            (ReceiverPhase::FollowingSender { amount, last_step }, Details::None)
                if (5..=12).contains(&number.number()) && number.number() > *last_step =>
            {
                *last_step = number.number();
                let amount = *amount;
                out.push(ReceiverAction::Step(number));
                if number == MessageNumber::EncryptingCoins {
                    self.send(MessageNumber::ReadyToReceive, Details::None, out);
                    self.state.phase = ReceiverPhase::AwaitingCoins { amount };
                }
                true
            }
            (
                ReceiverPhase::AwaitingCoins { amount },
                Details::SealedCoins {
                    coins_b64,
                    pown_deadline_ms,
                },
            ) if number == MessageNumber::EncryptedCoins => {
                let (amount, deadline) = (*amount, *pown_deadline_ms);
                out.push(ReceiverAction::Step(number));
                if now.saturating_add(timing.min_pown_window_ms) > deadline {
                    let reason = FailReason::DeadlineTooSoon {
                        deadline_ms: deadline,
                        now_ms: now,
                        min_ms: timing.min_pown_window_ms,
                    };
                    self.abort(reason, out);
                } else {
                    self.send(MessageNumber::Received, Details::None, out);
                    self.send(MessageNumber::DecryptingCoins, Details::None, out);
                    out.push(ReceiverAction::OpenCoins {
                        coins_b64: coins_b64.clone(),
                        pown_deadline_ms: deadline,
                    });
                    self.state.phase = ReceiverPhase::Opening {
                        amount,
                        coins_b64: coins_b64.clone(),
                        pown_deadline_ms: deadline,
                    };
                }
                true
            }
            (ReceiverPhase::AwaitingConfirmation { .. }, Details::None)
                if number == MessageNumber::ConfirmingChangeOfOwnership =>
            {
                out.push(ReceiverAction::Step(number));
                true
            }
            (ReceiverPhase::AwaitingConfirmation { .. }, Details::None)
                if number == MessageNumber::CoinsConfirmed
                    && self
                        .state
                        .link
                        .has_received(MessageNumber::ConfirmingChangeOfOwnership) =>
            {
                out.push(ReceiverAction::Step(number));
                self.settle(true, out);
                true
            }
            _ => false,
        };
        if accepted {
            self.state.link.accept(&message);
        } else {
            let phase = self.state.phase.name().to_owned();
            let number = number.number();
            self.violation(FailReason::UnexpectedMessage { number, phase }, out);
        }
    }

    fn on_wallet(&mut self, event: ReceiverEvent, now: u64, out: &mut Out) {
        match (event, &self.state.phase) {
            (
                ReceiverEvent::CoinsOpened { coins },
                ReceiverPhase::Opening {
                    amount,
                    pown_deadline_ms,
                    ..
                },
            ) => {
                let (amount, deadline) = (*amount, *pown_deadline_ms);
                if let Err(reason) = check_coins(&coins, amount) {
                    return self.abort(reason, out);
                }
                let sign_before = deadline.saturating_sub(self.state.config.timing.skew_ms);
                if now >= sign_before {
                    return self.abort(FailReason::DeadlinePassed, out);
                }
                self.send(MessageNumber::PowningCoins, Details::None, out);
                out.push(ReceiverAction::PownCoins {
                    coins: coins.clone(),
                    pown_deadline_ms: deadline,
                    sign_before_ms: sign_before,
                });
                self.state.phase = ReceiverPhase::Powning {
                    amount,
                    coins,
                    pown_deadline_ms: deadline,
                };
            }
            (ReceiverEvent::OpenFailed(why), ReceiverPhase::Opening { .. }) => {
                self.abort(FailReason::OpenFailed(why), out)
            }
            (
                ReceiverEvent::CoinsPowned {
                    receipt_b64,
                    powned,
                },
                ReceiverPhase::Powning { amount, coins, .. },
            ) => {
                let amount = *amount;
                let mut distinct = powned.clone();
                distinct.sort_unstable();
                distinct.dedup();
                let subset = powned.iter().all(|p| coins.contains(p))
                    && distinct.len() == powned.len()
                    && !powned.is_empty();
                let received = total(&powned);
                match received {
                    Some(received) if subset && valid_base64(&receipt_b64) => {
                        self.send(MessageNumber::Receipt, Details::Receipt(receipt_b64.clone()), out);
                        self.state.phase = ReceiverPhase::AwaitingConfirmation {
                            amount,
                            received,
                            receipt_b64,
                        };
                    }
                    _ => out.push(ReceiverAction::Failed(FailReason::InconsistentReport(
                        "the powned coins are not some of the coins opened, or the receipt is not base64"
                            .into(),
                    ))),
                }
            }
            (ReceiverEvent::PownFailed(why), ReceiverPhase::Powning { .. }) => {
                self.abort(FailReason::PownFailed(why), out)
            }
            // Late or repeated reports change nothing.
            _ => {}
        }
    }

    /// A protocol violation, silence or cancel: before the pown, nothing was received and
    /// the transfer is aborted; while powning it changes nothing (the pown completes);
    /// after it, the receiver is done without the sender's confirmation.
    fn violation(&mut self, reason: FailReason, out: &mut Out) {
        match self.state.phase {
            ReceiverPhase::Powning { .. } | ReceiverPhase::Finished(_) => {}
            ReceiverPhase::AwaitingConfirmation { .. } => self.settle(false, out),
            _ => self.abort(reason, out),
        }
    }

    fn abort(&mut self, reason: FailReason, out: &mut Out) {
        out.push(ReceiverAction::Failed(reason.clone()));
        self.finish(ReceiverOutcome::Aborted { reason }, out);
    }

    fn settle(&mut self, confirmed: bool, out: &mut Out) {
        if let ReceiverPhase::AwaitingConfirmation {
            amount,
            received,
            receipt_b64,
        } = &self.state.phase
        {
            let outcome = ReceiverOutcome::Received {
                announced: *amount,
                received: *received,
                receipt_b64: receipt_b64.clone(),
                confirmed,
            };
            self.finish(outcome, out);
        }
    }

    fn finish(&mut self, outcome: ReceiverOutcome, out: &mut Out) {
        out.push(ReceiverAction::Finished(outcome.clone()));
        self.state.phase = ReceiverPhase::Finished(outcome);
    }

    fn on_time(&mut self, now: u64, out: &mut Out) {
        if self.is_finished() {
            return;
        }
        let timing = self.state.config.timing;
        if self.state.link.heartbeat_due(now, &timing) {
            let heartbeat = LiveMessage::outgoing(MessageNumber::Heartbeat, Details::None);
            out.push(ReceiverAction::Send(heartbeat));
        }
        // Once the coins are here, the sender's presence no longer matters until the
        // receipt is sent.
        if matches!(self.state.phase, ReceiverPhase::Opening { .. }) {
            return;
        }
        if let Some(reason) = self.state.link.silence(now, &timing) {
            self.violation(reason, out);
        }
    }
}
