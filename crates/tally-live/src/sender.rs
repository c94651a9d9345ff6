//! The sender's side of a LiveConnect transfer (DESIGN §7): announce, prepare, seal, send,
//! check the receipt; or keep the coins (before message 24) or take them back after the
//! pown deadline plus the clock skew (after it).

use serde::{Deserialize, Serialize};
use tally_core::Amount;
use tally_proto::live::{Details, LiveMessage, MAX_SENT_LINE, MessageNumber, valid_base64};

use crate::common::{
    CoinSummary, ConfigError, FailReason, Incoming, Link, Timing, check_coins, coinable,
    same_coins, total,
};

/// What the sender is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderConfig {
    /// The amount to send: whole, non-zero cash.
    pub amount: Amount,
    /// The clocks.
    pub timing: Timing,
}

/// Something that happened, fed to [`Sender::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderEvent {
    /// The receiver is in the room (relay `@here` or `@arrived`).
    PeerJoined,
    /// The receiver left the room (relay `@left`). Not a failure by itself: it may come
    /// back; silence for the peer timeout is.
    PeerLeft,
    /// A line from the receiver, parsed with `tally_proto::live::parse_line`.
    Line(LiveMessage),
    /// A line from the receiver that did not parse (the parse error as text).
    BadLine(String),
    /// Time passed; send often enough (every second will do) for heartbeats and timeouts.
    Tick,
    /// The user gives up. Before message 24 the coins are kept; after it, the sender
    /// still waits for the pown deadline.
    Cancel,
    /// The wallet reached preparation step 5–10 (making change … fixing coins).
    PreparationStep(MessageNumber),
    /// [`SenderAction::PrepareCoins`] is done: these coins, in the hidden Sender wallet,
    /// total the amount.
    CoinsPrepared {
        /// The prepared coins.
        coins: Vec<CoinSummary>,
    },
    /// [`SenderAction::PrepareCoins`] failed.
    PreparationFailed(String),
    /// [`SenderAction::SealCoins`] is done: standard base64 of the sealed coins.
    CoinsSealed {
        /// What goes into message 24's `Coins`.
        coins_b64: String,
    },
    /// [`SenderAction::SealCoins`] failed.
    SealFailed(String),
    /// [`SenderAction::CheckReceipt`] is done: `Ok` with the coins the receipt's
    /// certificates show powned by the receiver, or why it does not verify.
    ReceiptChecked(Result<Vec<CoinSummary>, String>),
    /// The wallet learned from the validators that the receiver powned the coins, with
    /// the pown certificates as a receipt (standard base64); it is checked like message 17.
    ReceiverPowned {
        /// The certificates.
        receipt_b64: String,
    },
    /// [`SenderAction::Reclaim`] is done: each sent coin is back with the sender, was
    /// powned by the receiver, or is frozen.
    Reclaimed {
        /// Coins the sender powned back.
        reclaimed: Vec<CoinSummary>,
        /// Coins the receiver had powned.
        powned_by_receiver: Vec<CoinSummary>,
        /// Coins whose lock slot is split between orders so that none can complete
        /// (DESIGN §3): nobody can spend them; asking again would never end.
        frozen: Vec<CoinSummary>,
    },
    /// [`SenderAction::Reclaim`] could not finish (validators unreachable…); it is asked
    /// again one heartbeat interval later.
    ReclaimFailed(String),
}

/// What the driver must do. Every action may be issued again after a resume, so the
/// driver performs each idempotently (its wallet journals each step before it acts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderAction {
    /// Send this line (`LiveMessage::to_line`) to the room.
    Send(LiveMessage),
    /// A step was reached (sent or received): for showing progress.
    Step(MessageNumber),
    /// Make change, join, find, fix, detect and move coins worth exactly `amount` into
    /// the hidden Sender wallet; report steps 5–10 as reached, then
    /// [`SenderEvent::CoinsPrepared`] or [`SenderEvent::PreparationFailed`].
    PrepareCoins {
        /// The amount.
        amount: Amount,
    },
    /// Seal these coins with the session key, binding `pown_deadline_ms` (8 bytes,
    /// little-endian) as associated data; report [`SenderEvent::CoinsSealed`].
    SealCoins {
        /// The coins to seal.
        coins: Vec<CoinSummary>,
        /// The deadline message 24 will carry.
        pown_deadline_ms: u64,
    },
    /// Verify the pown certificates against the network contract; report
    /// [`SenderEvent::ReceiptChecked`].
    CheckReceipt {
        /// The certificates.
        receipt_b64: String,
        /// The coins that were sent.
        coins: Vec<CoinSummary>,
    },
    /// The pown deadline plus the skew has passed: pown back every sent coin the receiver
    /// did not pown (asking the validators first, completing any order already voted);
    /// report [`SenderEvent::Reclaimed`].
    Reclaim {
        /// The coins that were sent.
        coins: Vec<CoinSummary>,
    },
    /// The transfer failed (shown to the user); a [`SenderAction::Finished`] follows,
    /// at once before message 24, after the deadline after it.
    Failed(FailReason),
    /// The transfer is over; the driver may leave the room and forget the state.
    Finished(SenderOutcome),
}

/// How a transfer ended for the sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SenderOutcome {
    /// The receipt checked: the receiver owns the coins.
    Delivered {
        /// The pown certificates.
        receipt_b64: String,
    },
    /// Failed before the coins were sent: the driver moves whatever the hidden Sender
    /// wallet holds back to the Bank (once its preparation work, if any, has stopped).
    Kept {
        /// Why.
        reason: FailReason,
    },
    /// Failed after the coins were sent; after the deadline the sender took back what the
    /// receiver had not powned.
    Reclaimed {
        /// Why the transfer failed.
        reason: FailReason,
        /// What came back.
        reclaimed: Amount,
        /// What the receiver had powned nonetheless.
        powned_by_receiver: Amount,
        /// What is frozen: coins whose slot was split (by someone holding the secret
        /// besides the sender: the receiver), spendable by no one.
        #[serde(default)]
        frozen: Amount,
    },
}

/// Where the sender stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SenderPhase {
    /// Waiting for the receiver to join.
    WaitingForReceiver,
    /// Sent 2, waiting for 3.
    AwaitingEmpty,
    /// Sent 4, waiting for the echo.
    AwaitingEcho,
    /// The wallet prepares the coins; `last_step` is the last of 5–10 sent.
    Preparing { last_step: u8 },
    /// Sent 11 and 12; the wallet seals; waiting for the seal and for 13.
    Sealing {
        coins: Vec<CoinSummary>,
        pown_deadline_ms: u64,
        coins_b64: Option<String>,
        receiver_ready: bool,
    },
    /// Sent 24: waiting for the receipt (17).
    AwaitingReceipt {
        coins: Vec<CoinSummary>,
        pown_deadline_ms: u64,
    },
    /// The wallet checks a receipt; `failure` is set if the transfer had already failed.
    CheckingReceipt {
        coins: Vec<CoinSummary>,
        pown_deadline_ms: u64,
        receipt_b64: String,
        failure: Option<FailReason>,
    },
    /// Failed after 24: waiting for the deadline plus the skew (a good receipt still wins).
    AwaitingDeadline {
        coins: Vec<CoinSummary>,
        pown_deadline_ms: u64,
        reason: FailReason,
    },
    /// The wallet takes the coins back.
    Reclaiming {
        coins: Vec<CoinSummary>,
        reason: FailReason,
        /// `None` while the driver works on it; else when to ask again (after a failed
        /// or inconsistent report, one heartbeat interval later).
        retry_at_ms: Option<u64>,
    },
    /// Over.
    Finished(SenderOutcome),
}

impl SenderPhase {
    fn name(&self) -> &'static str {
        match self {
            SenderPhase::WaitingForReceiver => "waiting for the receiver",
            SenderPhase::AwaitingEmpty => "waiting for message 3",
            SenderPhase::AwaitingEcho => "waiting for the amount's echo",
            SenderPhase::Preparing { .. } => "preparing the coins",
            SenderPhase::Sealing { .. } => "sealing the coins",
            SenderPhase::AwaitingReceipt { .. } => "waiting for the receipt",
            SenderPhase::CheckingReceipt { .. } => "checking the receipt",
            SenderPhase::AwaitingDeadline { .. } => "waiting for the pown deadline",
            SenderPhase::Reclaiming { .. } => "taking the coins back",
            SenderPhase::Finished(_) => "finished",
        }
    }

    /// Whether message 24 may have left: from here on the receiver may hold the coins'
    /// secrets, and only the deadline rule protects them.
    pub fn coins_sent(&self) -> bool {
        matches!(
            self,
            SenderPhase::AwaitingReceipt { .. }
                | SenderPhase::CheckingReceipt { .. }
                | SenderPhase::AwaitingDeadline { .. }
                | SenderPhase::Reclaiming { .. }
        )
    }
}

/// The sender's saved state: journal it (serde) after every [`Sender::handle`], before
/// performing the actions, and give it to [`Sender::resume`] after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderState {
    config: SenderConfig,
    link: Link,
    phase: SenderPhase,
}

impl SenderState {
    /// Where the transfer stands.
    pub fn phase(&self) -> &SenderPhase {
        &self.phase
    }

    /// What was asked.
    pub fn config(&self) -> &SenderConfig {
        &self.config
    }
}

/// The sender's state machine. No I/O: events and `now` (Unix ms) in, actions out.
#[derive(Clone, Debug)]
pub struct Sender {
    state: SenderState,
}

type Out = Vec<SenderAction>;

impl Sender {
    /// Starts a transfer at `now`: checks the configuration, starts the heartbeat.
    pub fn new(config: SenderConfig, now: u64) -> Result<(Sender, Out), ConfigError> {
        config.timing.validate()?;
        if !coinable(config.amount) {
            return Err(ConfigError::Amount(config.amount));
        }
        let sender = Sender {
            state: SenderState {
                config,
                link: Link::new(now),
                phase: SenderPhase::WaitingForReceiver,
            },
        };
        let heartbeat = LiveMessage::outgoing(MessageNumber::Heartbeat, Details::None);
        Ok((sender, vec![SenderAction::Send(heartbeat)]))
    }

    /// Restarts from a journaled state at `now`: re-issues the action that was in flight
    /// (the driver must perform it idempotently) and gives the receiver fresh timeouts.
    /// The driver then rejoins the room; the relay's `@here`/`@arrived` becomes
    /// [`SenderEvent::PeerJoined`], which re-sends everything sent so far.
    pub fn resume(state: SenderState, now: u64) -> (Sender, Out) {
        let mut sender = Sender { state };
        sender.state.link.resumed(now);
        let mut out = Vec::new();
        let amount = sender.state.config.amount;
        match &mut sender.state.phase {
            SenderPhase::Preparing { .. } => out.push(SenderAction::PrepareCoins { amount }),
            SenderPhase::Sealing {
                coins,
                pown_deadline_ms,
                coins_b64: None,
                ..
            } => out.push(SenderAction::SealCoins {
                coins: coins.clone(),
                pown_deadline_ms: *pown_deadline_ms,
            }),
            SenderPhase::CheckingReceipt {
                coins, receipt_b64, ..
            } => out.push(SenderAction::CheckReceipt {
                receipt_b64: receipt_b64.clone(),
                coins: coins.clone(),
            }),
            SenderPhase::Reclaiming {
                coins, retry_at_ms, ..
            } => {
                *retry_at_ms = None;
                out.push(SenderAction::Reclaim {
                    coins: coins.clone(),
                });
            }
            SenderPhase::Finished(outcome) => out.push(SenderAction::Finished(outcome.clone())),
            _ => {}
        }
        sender.on_time(now, &mut out);
        (sender, out)
    }

    /// The state to journal.
    pub fn state(&self) -> &SenderState {
        &self.state
    }

    /// Where the transfer stands.
    pub fn phase(&self) -> &SenderPhase {
        &self.state.phase
    }

    /// Whether the transfer is over.
    pub fn is_finished(&self) -> bool {
        matches!(self.state.phase, SenderPhase::Finished(_))
    }

    /// Feeds one event at `now`; returns what the driver must do, in order.
    pub fn handle(&mut self, event: SenderEvent, now: u64) -> Out {
        let mut out = Vec::new();
        if self.is_finished() {
            if event == SenderEvent::PeerJoined {
                self.resend(&mut out);
            }
            return out;
        }
        match event {
            SenderEvent::PeerJoined => {
                self.state.link.heard(now);
                self.resend(&mut out);
                self.start_if_waiting(&mut out);
            }
            SenderEvent::PeerLeft | SenderEvent::Tick => {}
            SenderEvent::Line(message) => self.on_line(message, now, &mut out),
            SenderEvent::BadLine(error) => {
                self.state.link.heard(now);
                self.violation(FailReason::BadLine(error), &mut out);
            }
            SenderEvent::Cancel => match self.state.phase {
                SenderPhase::AwaitingReceipt { .. } => {
                    self.violation(FailReason::Cancelled, &mut out)
                }
                ref phase if !phase.coins_sent() => self.keep(FailReason::Cancelled, &mut out),
                _ => {}
            },
            other => self.on_wallet(other, now, &mut out),
        }
        self.on_time(now, &mut out);
        out
    }

    fn send(&mut self, number: MessageNumber, details: Details, out: &mut Out) {
        let message = self.state.link.send(number, details);
        out.push(SenderAction::Send(message));
        out.push(SenderAction::Step(number));
    }

    fn resend(&self, out: &mut Out) {
        out.extend(self.state.link.sent.iter().cloned().map(SenderAction::Send));
    }

    fn start_if_waiting(&mut self, out: &mut Out) {
        if self.state.phase == SenderPhase::WaitingForReceiver {
            self.send(MessageNumber::EmptyImportExport, Details::None, out);
            self.state.phase = SenderPhase::AwaitingEmpty;
        }
    }

    fn on_line(&mut self, message: LiveMessage, now: u64, out: &mut Out) {
        self.state.link.heard(now);
        match self.state.link.classify(&message) {
            Incoming::Heartbeat => return self.start_if_waiting(out),
            Incoming::Duplicate => return,
            Incoming::Conflict => {
                let number = message.number.number();
                return self.violation(FailReason::ConflictingRepeat(number), out);
            }
            Incoming::New => {}
        }
        self.start_if_waiting(out);
        let number = message.number;
        let accepted = match (&mut self.state.phase, &message.details) {
            (SenderPhase::AwaitingEmpty, _) if number == MessageNumber::ImportExportEmpty => {
                let amount = self.state.config.amount;
                self.state.phase = SenderPhase::AwaitingEcho;
                out.push(SenderAction::Step(number));
                self.send(MessageNumber::MoneyToBeSent, Details::Amount(amount), out);
                true
            }
            (SenderPhase::AwaitingEcho, Details::Amount(echoed))
                if number == MessageNumber::MoneyToBeSent =>
            {
                let (announced, echoed) = (self.state.config.amount, *echoed);
                out.push(SenderAction::Step(number));
                if echoed == announced {
                    self.state.phase = SenderPhase::Preparing { last_step: 4 };
                    out.push(SenderAction::PrepareCoins { amount: announced });
                } else {
                    self.keep(FailReason::AmountMismatch { announced, echoed }, out);
                }
                true
            }
            (
                SenderPhase::Sealing {
                    receiver_ready: ready @ false,
                    ..
                },
                _,
            ) if number == MessageNumber::ReadyToReceive => {
                *ready = true;
                out.push(SenderAction::Step(number));
                self.send_coins_if_ready(out);
                true
            }
            (SenderPhase::AwaitingReceipt { .. } | SenderPhase::AwaitingDeadline { .. }, _)
                if receiver_progress(number) =>
            {
                let later = (number.number() + 1..=17)
                    .filter_map(|n| MessageNumber::from_number(u64::from(n)))
                    .any(|m| self.state.link.has_received(m));
                if later {
                    false
                } else {
                    out.push(SenderAction::Step(number));
                    true
                }
            }
            (
                SenderPhase::AwaitingReceipt { .. } | SenderPhase::AwaitingDeadline { .. },
                Details::Receipt(receipt_b64),
            ) if number == MessageNumber::Receipt => {
                out.push(SenderAction::Step(number));
                self.check_receipt(receipt_b64.clone(), out);
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

    fn check_receipt(&mut self, receipt_b64: String, out: &mut Out) {
        let (coins, pown_deadline_ms, failure) = match &self.state.phase {
            SenderPhase::AwaitingReceipt {
                coins,
                pown_deadline_ms,
            } => (coins.clone(), *pown_deadline_ms, None),
            SenderPhase::AwaitingDeadline {
                coins,
                pown_deadline_ms,
                reason,
            } => (coins.clone(), *pown_deadline_ms, Some(reason.clone())),
            _ => return,
        };
        out.push(SenderAction::CheckReceipt {
            receipt_b64: receipt_b64.clone(),
            coins: coins.clone(),
        });
        self.state.phase = SenderPhase::CheckingReceipt {
            coins,
            pown_deadline_ms,
            receipt_b64,
            failure,
        };
    }

    fn on_wallet(&mut self, event: SenderEvent, now: u64, out: &mut Out) {
        let amount = self.state.config.amount;
        let retry = self.state.config.timing.heartbeat_ms;
        match (event, &mut self.state.phase) {
            (SenderEvent::PreparationStep(step), SenderPhase::Preparing { last_step })
                if (5..=10).contains(&step.number()) && step.number() > *last_step =>
            {
                *last_step = step.number();
                self.send(step, Details::None, out);
            }
            (SenderEvent::CoinsPrepared { coins }, SenderPhase::Preparing { .. }) => {
                if let Err(reason) = check_coins(&coins, amount) {
                    return self.keep(reason, out);
                }
                self.send(MessageNumber::PuttingCoinsInExport, Details::None, out);
                self.send(MessageNumber::EncryptingCoins, Details::None, out);
                let pown_deadline_ms = now.saturating_add(self.state.config.timing.pown_window_ms);
                out.push(SenderAction::SealCoins {
                    coins: coins.clone(),
                    pown_deadline_ms,
                });
                self.state.phase = SenderPhase::Sealing {
                    coins,
                    pown_deadline_ms,
                    coins_b64: None,
                    receiver_ready: false,
                };
            }
            (SenderEvent::PreparationFailed(why), SenderPhase::Preparing { .. }) => {
                self.keep(FailReason::PreparationFailed(why), out)
            }
            (
                SenderEvent::CoinsSealed { coins_b64: sealed },
                SenderPhase::Sealing {
                    coins_b64: slot @ None,
                    ..
                },
            ) => {
                if !valid_base64(&sealed) {
                    let why = "the sealed coins are not padded standard base64".to_owned();
                    return self.keep(FailReason::SealFailed(why), out);
                }
                *slot = Some(sealed);
                self.send_coins_if_ready(out);
            }
            (SenderEvent::SealFailed(why), SenderPhase::Sealing { .. }) => {
                self.keep(FailReason::SealFailed(why), out)
            }
            (SenderEvent::ReceiptChecked(result), SenderPhase::CheckingReceipt { .. }) => {
                self.on_receipt_checked(result, out)
            }
            (
                SenderEvent::ReceiverPowned { receipt_b64 },
                SenderPhase::AwaitingReceipt { .. } | SenderPhase::AwaitingDeadline { .. },
            ) => self.check_receipt(receipt_b64, out),
            (
                SenderEvent::Reclaimed {
                    reclaimed,
                    powned_by_receiver,
                    frozen,
                },
                SenderPhase::Reclaiming {
                    coins,
                    reason,
                    retry_at_ms,
                },
            ) => {
                let all: Vec<CoinSummary> = reclaimed
                    .iter()
                    .chain(&powned_by_receiver)
                    .chain(&frozen)
                    .copied()
                    .collect();
                match (
                    total(&reclaimed),
                    total(&powned_by_receiver),
                    total(&frozen),
                ) {
                    (Some(back), Some(powned), Some(frozen))
                        if same_coins(&all, coins) && all.len() == coins.len() =>
                    {
                        let outcome = SenderOutcome::Reclaimed {
                            reason: reason.clone(),
                            reclaimed: back,
                            powned_by_receiver: powned,
                            frozen,
                        };
                        self.finish(outcome, out);
                    }
                    _ => {
                        *retry_at_ms = Some(now.saturating_add(retry));
                        let why = "the reclaimed and powned coins are not the coins sent";
                        out.push(SenderAction::Failed(FailReason::InconsistentReport(
                            why.into(),
                        )));
                    }
                }
            }
            (SenderEvent::ReclaimFailed(_), SenderPhase::Reclaiming { retry_at_ms, .. }) => {
                *retry_at_ms = Some(now.saturating_add(retry));
            }
            // Late, repeated or misplaced reports (after a resume, or after the transfer
            // failed) change nothing.
            _ => {}
        }
    }

    fn on_receipt_checked(&mut self, result: Result<Vec<CoinSummary>, String>, out: &mut Out) {
        let SenderPhase::CheckingReceipt {
            coins,
            pown_deadline_ms,
            receipt_b64,
            failure,
        } = &self.state.phase
        else {
            return;
        };
        let verdict = match result {
            Ok(powned) if same_coins(&powned, coins) => Ok(()),
            Ok(_) => Err(FailReason::ReceiptIncomplete),
            Err(why) => Err(FailReason::ReceiptRejected(why)),
        };
        match verdict {
            Ok(()) => {
                let receipt_b64 = receipt_b64.clone();
                self.send(
                    MessageNumber::ConfirmingChangeOfOwnership,
                    Details::None,
                    out,
                );
                self.send(MessageNumber::CoinsConfirmed, Details::None, out);
                self.finish(SenderOutcome::Delivered { receipt_b64 }, out);
            }
            Err(reason) => {
                if failure.is_none() {
                    out.push(SenderAction::Failed(reason.clone()));
                }
                self.state.phase = SenderPhase::AwaitingDeadline {
                    coins: coins.clone(),
                    pown_deadline_ms: *pown_deadline_ms,
                    reason: failure.clone().unwrap_or(reason),
                };
            }
        }
    }

    fn send_coins_if_ready(&mut self, out: &mut Out) {
        let SenderPhase::Sealing {
            coins,
            pown_deadline_ms,
            coins_b64: Some(coins_b64),
            receiver_ready: true,
        } = &self.state.phase
        else {
            return;
        };
        let details = Details::SealedCoins {
            coins_b64: coins_b64.clone(),
            pown_deadline_ms: *pown_deadline_ms,
        };
        let line = LiveMessage::outgoing(MessageNumber::EncryptedCoins, details.clone()).to_line();
        if line.len() > MAX_SENT_LINE {
            return self.keep(FailReason::PayloadTooLarge(line.len()), out);
        }
        self.state.phase = SenderPhase::AwaitingReceipt {
            coins: coins.clone(),
            pown_deadline_ms: *pown_deadline_ms,
        };
        self.send(MessageNumber::EncryptedCoins, details, out);
    }

    /// A protocol violation or a failure from the peer's side: before 24 the coins are
    /// kept; while waiting for the receipt, wait for the deadline; later, nothing changes
    /// (a receipt is being checked, or the transfer already failed).
    fn violation(&mut self, reason: FailReason, out: &mut Out) {
        match &self.state.phase {
            SenderPhase::AwaitingReceipt {
                coins,
                pown_deadline_ms,
            } => {
                out.push(SenderAction::Failed(reason.clone()));
                self.state.phase = SenderPhase::AwaitingDeadline {
                    coins: coins.clone(),
                    pown_deadline_ms: *pown_deadline_ms,
                    reason,
                };
            }
            phase if !phase.coins_sent() => self.keep(reason, out),
            _ => {}
        }
    }

    fn keep(&mut self, reason: FailReason, out: &mut Out) {
        out.push(SenderAction::Failed(reason.clone()));
        self.finish(SenderOutcome::Kept { reason }, out);
    }

    fn finish(&mut self, outcome: SenderOutcome, out: &mut Out) {
        out.push(SenderAction::Finished(outcome.clone()));
        self.state.phase = SenderPhase::Finished(outcome);
    }

    fn on_time(&mut self, now: u64, out: &mut Out) {
        if self.is_finished() {
            return;
        }
        let timing = self.state.config.timing;
        if self.state.link.heartbeat_due(now, &timing) {
            let heartbeat = LiveMessage::outgoing(MessageNumber::Heartbeat, Details::None);
            out.push(SenderAction::Send(heartbeat));
        }
        let silence = self.state.link.silence(now, &timing);
        match &mut self.state.phase {
            SenderPhase::AwaitingReceipt {
                pown_deadline_ms, ..
            } => {
                if now >= pown_deadline_ms.saturating_add(timing.skew_ms) {
                    self.violation(FailReason::DeadlinePassed, out);
                } else if let Some(reason) = silence {
                    self.violation(reason, out);
                }
            }
            phase if !phase.coins_sent() => {
                if let Some(reason) = silence {
                    self.keep(reason, out);
                }
            }
            _ => {}
        }
        match &mut self.state.phase {
            SenderPhase::AwaitingDeadline {
                coins,
                pown_deadline_ms,
                reason,
            } if now >= pown_deadline_ms.saturating_add(timing.skew_ms) => {
                let coins = std::mem::take(coins);
                out.push(SenderAction::Reclaim {
                    coins: coins.clone(),
                });
                self.state.phase = SenderPhase::Reclaiming {
                    coins,
                    reason: reason.clone(),
                    retry_at_ms: None,
                };
            }
            SenderPhase::Reclaiming {
                coins, retry_at_ms, ..
            } if retry_at_ms.is_some_and(|at| now >= at) => {
                *retry_at_ms = None;
                out.push(SenderAction::Reclaim {
                    coins: coins.clone(),
                });
            }
            _ => {}
        }
    }
}

fn receiver_progress(number: MessageNumber) -> bool {
    matches!(
        number,
        MessageNumber::Received | MessageNumber::DecryptingCoins | MessageNumber::PowningCoins
    )
}
