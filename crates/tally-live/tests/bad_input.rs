//! Every bad input the brief lists, fed to one machine by hand or through the harness: each
//! fails the transfer with its reason and never costs a coin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use sim::{Faults, Sim};
use tally_core::{AccountId, Amount};
use tally_live::*;
use tally_proto::live::{Details, LiveMessage, MessageNumber as M, parse_line};

const BANK: [u64; 7] = [250, 100, 25, 5, 1, 1, 5];
const T0: u64 = 1_000_000;

fn cash(n: u64) -> Amount {
    Amount::from_cash(n).unwrap()
}

fn line(number: M, details: Details) -> LiveMessage {
    LiveMessage {
        from: Some("10.0.0.2".into()),
        number,
        details,
    }
}

fn coins_281() -> Vec<CoinSummary> {
    [250u64, 25, 5, 1]
        .iter()
        .enumerate()
        .map(|(i, d)| CoinSummary {
            account: AccountId::from([i as u8 + 1; 32]),
            denomination_cash: *d,
        })
        .collect()
}

fn sender() -> Sender {
    let config = SenderConfig {
        amount: cash(281),
        timing: sim::test_timing(),
    };
    Sender::new(config, T0).unwrap().0
}

fn failure(actions: &[SenderAction]) -> Option<FailReason> {
    actions.iter().find_map(|a| match a {
        SenderAction::Failed(reason) => Some(reason.clone()),
        _ => None,
    })
}

fn kept(actions: &[SenderAction]) -> Option<FailReason> {
    actions.iter().find_map(|a| match a {
        SenderAction::Finished(SenderOutcome::Kept { reason }) => Some(reason.clone()),
        _ => None,
    })
}

/// A sender that has announced the amount (sent 2 and 4).
fn sender_awaiting_echo() -> Sender {
    let mut s = sender();
    s.handle(SenderEvent::PeerJoined, T0 + 10);
    s.handle(
        SenderEvent::Line(line(M::ImportExportEmpty, Details::None)),
        T0 + 20,
    );
    assert_eq!(s.phase(), &SenderPhase::AwaitingEcho);
    s
}

/// A sender that sent message 24, with its deadline.
fn sender_with_coins_sent() -> (Sender, u64) {
    let mut s = sender_awaiting_echo();
    let acts = s.handle(
        SenderEvent::Line(line(M::MoneyToBeSent, Details::Amount(cash(281)))),
        T0 + 30,
    );
    assert!(acts.contains(&SenderAction::PrepareCoins { amount: cash(281) }));
    let acts = s.handle(SenderEvent::CoinsPrepared { coins: coins_281() }, T0 + 40);
    let deadline = acts
        .iter()
        .find_map(|a| match a {
            SenderAction::SealCoins {
                pown_deadline_ms, ..
            } => Some(*pown_deadline_ms),
            _ => None,
        })
        .unwrap();
    s.handle(
        SenderEvent::CoinsSealed {
            coins_b64: "AAAA".into(),
        },
        T0 + 50,
    );
    let acts = s.handle(
        SenderEvent::Line(line(M::ReadyToReceive, Details::None)),
        T0 + 60,
    );
    assert!(
        acts.iter()
            .any(|a| matches!(a, SenderAction::Send(m) if m.number == M::EncryptedCoins))
    );
    assert!(s.phase().coins_sent());
    (s, deadline)
}

/// The receiver confirming another amount fails the transfer; the coins are kept.
#[test]
fn other_amount_echoed_keeps_the_coins() {
    let mut s = sender_awaiting_echo();
    let acts = s.handle(
        SenderEvent::Line(line(M::MoneyToBeSent, Details::Amount(cash(280)))),
        T0 + 30,
    );
    let reason = FailReason::AmountMismatch {
        announced: cash(281),
        echoed: cash(280),
    };
    assert_eq!(kept(&acts), Some(reason));
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, SenderAction::PrepareCoins { .. }))
    );
}

/// A receiver expecting another amount refuses without echoing.
#[test]
fn receiver_refuses_an_unexpected_amount() {
    let config = ReceiverConfig {
        expected_amount: Some(cash(100)),
        timing: sim::test_timing(),
    };
    let (mut r, _) = Receiver::new(config, T0).unwrap();
    r.handle(
        ReceiverEvent::Line(line(M::EmptyImportExport, Details::None)),
        T0 + 10,
    );
    let acts = r.handle(
        ReceiverEvent::Line(line(M::MoneyToBeSent, Details::Amount(cash(281)))),
        T0 + 20,
    );
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, ReceiverAction::Send(m) if m.number == M::MoneyToBeSent))
    );
    assert!(
        acts.contains(&ReceiverAction::Finished(ReceiverOutcome::Aborted {
            reason: FailReason::UnexpectedAmount {
                expected: cash(100),
                announced: cash(281)
            }
        }))
    );
}

/// Amounts that coins cannot make are refused on both sides.
#[test]
fn uncoinable_amounts_are_refused() {
    for bad in [Amount::ZERO, Amount::from_microcash(500_000)] {
        let config = SenderConfig {
            amount: bad,
            timing: sim::test_timing(),
        };
        assert_eq!(
            Sender::new(config, T0).err(),
            Some(ConfigError::Amount(bad))
        );
        let config = ReceiverConfig {
            expected_amount: None,
            timing: sim::test_timing(),
        };
        let (mut r, _) = Receiver::new(config, T0).unwrap();
        r.handle(
            ReceiverEvent::Line(line(M::EmptyImportExport, Details::None)),
            T0 + 10,
        );
        let acts = r.handle(
            ReceiverEvent::Line(line(M::MoneyToBeSent, Details::Amount(bad))),
            T0 + 20,
        );
        assert_eq!(
            acts.last(),
            Some(&ReceiverAction::Finished(ReceiverOutcome::Aborted {
                reason: FailReason::AmountNotCoinable(bad)
            }))
        );
    }
    let timing = Timing {
        peer_timeout_ms: 1,
        ..sim::test_timing()
    };
    let config = SenderConfig {
        amount: cash(1),
        timing,
    };
    assert!(matches!(
        Sender::new(config, T0),
        Err(ConfigError::Timing(_))
    ));
}

/// Steps out of order fail the transfer on either side.
#[test]
fn out_of_order_steps_fail() {
    let mut s = sender();
    s.handle(SenderEvent::PeerJoined, T0 + 10);
    let acts = s.handle(
        SenderEvent::Line(line(M::ReadyToReceive, Details::None)),
        T0 + 20,
    );
    assert!(matches!(
        kept(&acts),
        Some(FailReason::UnexpectedMessage { number: 13, .. })
    ));

    let config = ReceiverConfig {
        expected_amount: None,
        timing: sim::test_timing(),
    };
    let (mut r, _) = Receiver::new(config.clone(), T0).unwrap();
    r.handle(
        ReceiverEvent::Line(line(M::EmptyImportExport, Details::None)),
        T0 + 10,
    );
    r.handle(
        ReceiverEvent::Line(line(M::MoneyToBeSent, Details::Amount(cash(5)))),
        T0 + 20,
    );
    r.handle(
        ReceiverEvent::Line(line(M::FindingChange, Details::None)),
        T0 + 30,
    );
    let acts = r.handle(
        ReceiverEvent::Line(line(M::JoiningCoins, Details::None)),
        T0 + 40,
    );
    assert!(matches!(
        acts.last(),
        Some(ReceiverAction::Finished(ReceiverOutcome::Aborted {
            reason: FailReason::UnexpectedMessage { number: 6, .. }
        }))
    ));

    // Coins before the receiver said it is ready.
    let (mut r, _) = Receiver::new(config, T0).unwrap();
    r.handle(
        ReceiverEvent::Line(line(M::EmptyImportExport, Details::None)),
        T0 + 10,
    );
    r.handle(
        ReceiverEvent::Line(line(M::MoneyToBeSent, Details::Amount(cash(5)))),
        T0 + 20,
    );
    let sealed = Details::SealedCoins {
        coins_b64: "AAAA".into(),
        pown_deadline_ms: T0 + 999_999,
    };
    let acts = r.handle(
        ReceiverEvent::Line(line(M::EncryptedCoins, sealed)),
        T0 + 30,
    );
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, ReceiverAction::OpenCoins { .. }))
    );
    assert!(r.is_finished());
}

/// Unknown numbers and non-JSON lines (as the driver reports them) fail the transfer.
#[test]
fn unreadable_lines_fail() {
    for text in [
        r##"{"from": "10.0.0.2", "Message Number": 21, "Message_Details": null}"##,
        "this is not json",
    ] {
        let error = parse_line(text).unwrap_err().to_string();
        let mut s = sender_awaiting_echo();
        let acts = s.handle(SenderEvent::BadLine(error.clone()), T0 + 30);
        assert_eq!(kept(&acts), Some(FailReason::BadLine(error)));
    }
}

/// An identical repeat is ignored; a repeat with other content fails the transfer.
#[test]
fn repeats() {
    let mut s = sender_awaiting_echo();
    let acts = s.handle(
        SenderEvent::Line(line(M::ImportExportEmpty, Details::None)),
        T0 + 25,
    );
    assert!(failure(&acts).is_none());
    assert_eq!(s.phase(), &SenderPhase::AwaitingEcho);

    let (mut s, _) = sender_with_coins_sent();
    s.handle(SenderEvent::Line(line(M::Received, Details::None)), T0 + 70);
    assert!(
        s.handle(SenderEvent::Line(line(M::Received, Details::None)), T0 + 71)
            .is_empty()
    );
    let acts = s.handle(
        SenderEvent::Line(line(M::Receipt, Details::Receipt("AAAA".into()))),
        T0 + 80,
    );
    assert!(
        acts.iter()
            .any(|a| matches!(a, SenderAction::CheckReceipt { .. }))
    );
    s.handle(
        SenderEvent::ReceiptChecked(Err("bad votes".into())),
        T0 + 90,
    );
    let acts = s.handle(
        SenderEvent::Line(line(M::Receipt, Details::Receipt("BBBB".into()))),
        T0 + 100,
    );
    // Already failed after 24: the conflict changes nothing, the deadline still rules.
    assert!(acts.is_empty() || failure(&acts).is_none());
    assert!(matches!(
        s.phase(),
        SenderPhase::AwaitingDeadline {
            reason: FailReason::ReceiptRejected(_),
            ..
        }
    ));
}

/// A peer heard once and then silent fails the transfer before 24 (coins kept); after 24
/// the sender waits for the deadline plus the skew, then reclaims.
#[test]
fn silent_peer() {
    let timing = sim::test_timing();
    let mut s = sender_awaiting_echo();
    assert!(
        s.handle(SenderEvent::Tick, T0 + 20 + timing.peer_timeout_ms - 1)
            .iter()
            .all(|a| matches!(a, SenderAction::Send(_)))
    );
    let acts = s.handle(SenderEvent::Tick, T0 + 20 + timing.peer_timeout_ms);
    assert!(matches!(kept(&acts), Some(FailReason::PeerSilent(_))));

    let (mut s, deadline) = sender_with_coins_sent();
    let acts = s.handle(SenderEvent::Tick, T0 + 60 + timing.peer_timeout_ms);
    assert!(matches!(failure(&acts), Some(FailReason::PeerSilent(_))));
    let before = s.handle(SenderEvent::Tick, deadline + timing.skew_ms - 1);
    assert!(
        !before
            .iter()
            .any(|a| matches!(a, SenderAction::Reclaim { .. }))
    );
    let due = s.handle(SenderEvent::Tick, deadline + timing.skew_ms);
    assert!(due.contains(&SenderAction::Reclaim { coins: coins_281() }));
    // A report that does not match the coins sent is refused and the reclaim asked again.
    let acts = s.handle(
        SenderEvent::Reclaimed {
            reclaimed: coins_281()[..1].to_vec(),
            powned_by_receiver: vec![],
            frozen: vec![],
        },
        deadline + timing.skew_ms + 1,
    );
    assert!(matches!(
        failure(&acts),
        Some(FailReason::InconsistentReport(_))
    ));
    let acts = s.handle(SenderEvent::Tick, deadline + timing.skew_ms + 2);
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, SenderAction::Reclaim { .. }))
    );
    let acts = s.handle(
        SenderEvent::Tick,
        deadline + timing.skew_ms + 1 + timing.heartbeat_ms,
    );
    assert!(acts.contains(&SenderAction::Reclaim { coins: coins_281() }));
    let (back, powned) = (coins_281()[..2].to_vec(), coins_281()[2..].to_vec());
    let acts = s.handle(
        SenderEvent::Reclaimed {
            reclaimed: back,
            powned_by_receiver: powned,
            frozen: vec![],
        },
        deadline + timing.skew_ms + 2 + timing.heartbeat_ms,
    );
    assert!(
        acts.contains(&SenderAction::Finished(SenderOutcome::Reclaimed {
            reason: FailReason::PeerSilent(timing.peer_timeout_ms),
            reclaimed: cash(275),
            powned_by_receiver: cash(6),
            frozen: Amount::ZERO,
        }))
    );
}

/// Learning the receiver's pown from the validators after a failure still delivers.
#[test]
fn receiver_pown_learned_late_delivers() {
    let (mut s, _) = sender_with_coins_sent();
    s.handle(SenderEvent::Cancel, T0 + 70);
    let acts = s.handle(
        SenderEvent::ReceiverPowned {
            receipt_b64: "AAAA".into(),
        },
        T0 + 80,
    );
    assert!(
        acts.iter()
            .any(|a| matches!(a, SenderAction::CheckReceipt { .. }))
    );
    let acts = s.handle(SenderEvent::ReceiptChecked(Ok(coins_281())), T0 + 90);
    assert!(
        acts.contains(&SenderAction::Finished(SenderOutcome::Delivered {
            receipt_b64: "AAAA".into()
        }))
    );
}

/// Sealed coins too large for one relay line are never sent; the coins are kept.
#[test]
fn oversized_payload_is_kept() {
    let mut s = sender_awaiting_echo();
    s.handle(
        SenderEvent::Line(line(M::MoneyToBeSent, Details::Amount(cash(281)))),
        T0 + 30,
    );
    s.handle(SenderEvent::CoinsPrepared { coins: coins_281() }, T0 + 40);
    s.handle(
        SenderEvent::Line(line(M::ReadyToReceive, Details::None)),
        T0 + 50,
    );
    let big = "A".repeat(tally_proto::live::MAX_SENT_LINE);
    let acts = s.handle(SenderEvent::CoinsSealed { coins_b64: big }, T0 + 60);
    assert!(matches!(kept(&acts), Some(FailReason::PayloadTooLarge(_))));
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, SenderAction::Send(m) if m.number == M::EncryptedCoins))
    );
}

/// Prepared coins of another total never get sealed.
#[test]
fn prepared_coins_of_another_total_are_kept() {
    let mut s = sender_awaiting_echo();
    s.handle(
        SenderEvent::Line(line(M::MoneyToBeSent, Details::Amount(cash(281)))),
        T0 + 30,
    );
    let acts = s.handle(
        SenderEvent::CoinsPrepared {
            coins: coins_281()[1..].to_vec(),
        },
        T0 + 40,
    );
    assert_eq!(
        kept(&acts),
        Some(FailReason::WrongTotal {
            expected: cash(281),
            got: cash(31)
        })
    );
}

/// A coin whose slot was split (the receiver signed two powns for it) is reported frozen:
/// the transfer ends, with the frozen cash named, instead of asking again for ever.
#[test]
fn frozen_coins_end_the_reclaim() {
    let timing = sim::test_timing();
    let (mut s, deadline) = sender_with_coins_sent();
    s.handle(SenderEvent::Tick, T0 + 60 + timing.peer_timeout_ms);
    let due = s.handle(SenderEvent::Tick, deadline + timing.skew_ms);
    assert!(due.contains(&SenderAction::Reclaim { coins: coins_281() }));
    let acts = s.handle(
        SenderEvent::Reclaimed {
            reclaimed: coins_281()[1..].to_vec(),
            powned_by_receiver: vec![],
            frozen: coins_281()[..1].to_vec(),
        },
        deadline + timing.skew_ms + 1,
    );
    assert!(
        acts.contains(&SenderAction::Finished(SenderOutcome::Reclaimed {
            reason: FailReason::PeerSilent(timing.peer_timeout_ms),
            reclaimed: cash(31),
            powned_by_receiver: Amount::ZERO,
            frozen: cash(250),
        })),
        "{acts:?}"
    );
}

/// A receiver that got message 24 (coins worth 5, the deadline `deadline`) at `T0 + 40`,
/// and what it did then.
fn receiver_at_24(deadline: u64) -> (Receiver, Vec<ReceiverAction>) {
    let config = ReceiverConfig {
        expected_amount: None,
        timing: sim::test_timing(),
    };
    let (mut r, _) = Receiver::new(config, T0).unwrap();
    r.handle(
        ReceiverEvent::Line(line(M::EmptyImportExport, Details::None)),
        T0 + 10,
    );
    r.handle(
        ReceiverEvent::Line(line(M::MoneyToBeSent, Details::Amount(cash(5)))),
        T0 + 20,
    );
    r.handle(
        ReceiverEvent::Line(line(M::EncryptingCoins, Details::None)),
        T0 + 30,
    );
    let sealed = Details::SealedCoins {
        coins_b64: "AAAA".into(),
        pown_deadline_ms: deadline,
    };
    let acts = r.handle(
        ReceiverEvent::Line(line(M::EncryptedCoins, sealed)),
        T0 + 40,
    );
    (r, acts)
}

/// A deadline that leaves the receiver too little time is refused before opening.
#[test]
fn deadline_too_soon_is_refused() {
    let timing = sim::test_timing();
    let (_, acts) = receiver_at_24(T0 + 40 + timing.min_pown_window_ms - 1);
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, ReceiverAction::OpenCoins { .. }))
    );
    assert!(matches!(
        acts.last(),
        Some(ReceiverAction::Finished(ReceiverOutcome::Aborted {
            reason: FailReason::DeadlineTooSoon { .. }
        }))
    ));
}

/// A receiver whose coins (one of 5) open at `opened_at`: what it does then.
fn receiver_opening(deadline: u64, opened_at: u64) -> Vec<ReceiverAction> {
    let (mut r, _) = receiver_at_24(deadline);
    let coin = CoinSummary {
        account: AccountId::from([7; 32]),
        denomination_cash: 5,
    };
    r.handle(ReceiverEvent::CoinsOpened { coins: vec![coin] }, opened_at)
}

/// The receiver stops signing new powns one clock skew before the deadline, so an order
/// it signed is never still gathering votes when the sender powns back at the deadline
/// plus the skew: coins opened inside that last skew are not powned.
#[test]
fn no_new_pown_is_signed_within_a_skew_of_the_deadline() {
    let timing = sim::test_timing();
    let deadline = T0 + 40 + timing.min_pown_window_ms;
    let sign_before = deadline - timing.skew_ms;
    let acts = receiver_opening(deadline, sign_before - 1);
    assert!(
        acts.iter().any(|a| matches!(
            a,
            ReceiverAction::PownCoins { sign_before_ms, pown_deadline_ms, .. }
                if *sign_before_ms == sign_before && *pown_deadline_ms == deadline
        )),
        "{acts:?}"
    );
    let acts = receiver_opening(deadline, sign_before);
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, ReceiverAction::PownCoins { .. })),
        "{acts:?}"
    );
    assert!(matches!(
        acts.last(),
        Some(ReceiverAction::Finished(ReceiverOutcome::Aborted {
            reason: FailReason::DeadlinePassed
        }))
    ));
}

fn bank_total() -> u64 {
    BANK.iter().sum()
}

/// Sealed coins that fail to open: the receiver aborts, the sender reclaims everything
/// after the deadline.
#[test]
fn coins_that_fail_to_open_come_back() {
    let mut sim = Sim::new(
        &BANK,
        281,
        Faults {
            open_fails: true,
            ..Faults::default()
        },
    );
    sim.run();
    sim.assert_consistent(bank_total());
    assert!(matches!(
        sim.receiver_outcome,
        Some(ReceiverOutcome::Aborted {
            reason: FailReason::OpenFailed(_)
        })
    ));
    assert!(
        matches!(sim.sender_outcome, Some(SenderOutcome::Reclaimed { reclaimed, .. }) if reclaimed == cash(281))
    );
}

/// Sealed coins that hold another total: refused, reclaimed.
#[test]
fn coins_of_another_total_come_back() {
    let mut sim = Sim::new(
        &BANK,
        281,
        Faults {
            open_drops_a_coin: true,
            ..Faults::default()
        },
    );
    sim.run();
    sim.assert_consistent(bank_total());
    assert!(matches!(
        sim.receiver_outcome,
        Some(ReceiverOutcome::Aborted {
            reason: FailReason::WrongTotal { .. }
        })
    ));
    assert!(
        matches!(sim.sender_outcome, Some(SenderOutcome::Reclaimed { reclaimed, .. }) if reclaimed == cash(281))
    );
}

/// A receipt that fails the check: the sender waits for the deadline and learns on reclaim
/// that the receiver powned everything; nothing is lost or doubled.
#[test]
fn rejected_receipt_resolves_at_the_deadline() {
    let mut sim = Sim::new(
        &BANK,
        281,
        Faults {
            receipt_rejected: true,
            ..Faults::default()
        },
    );
    sim.run();
    sim.assert_consistent(bank_total());
    assert!(matches!(
        sim.sender_outcome,
        Some(SenderOutcome::Reclaimed { reason: FailReason::ReceiptRejected(_), powned_by_receiver, .. }) if powned_by_receiver == cash(281)
    ));
    assert!(matches!(
        sim.receiver_outcome,
        Some(ReceiverOutcome::Received {
            confirmed: false,
            ..
        })
    ));
}

/// A receiver that never comes: the sender keeps its coins after the join timeout.
#[test]
fn absent_receiver_keeps_the_coins() {
    let mut sim = Sim::new(
        &BANK,
        281,
        Faults {
            receiver_absent: true,
            ..Faults::default()
        },
    );
    sim.run();
    sim.assert_consistent(bank_total());
    assert!(matches!(
        sim.sender_outcome,
        Some(SenderOutcome::Kept {
            reason: FailReason::PeerNeverJoined(_)
        })
    ));
    assert_eq!(sim.world.held(sim::Holder::SenderBank), bank_total());
}

/// A receiver that vanishes at any point: coins kept or reclaimed, never lost.
#[test]
fn vanishing_receiver_never_costs_coins() {
    for after in 1..40 {
        let faults = Faults {
            receiver_vanishes_after: Some(after),
            ..Faults::default()
        };
        let mut sim = Sim::new(&BANK, 281, faults);
        sim.run();
        sim.assert_consistent(bank_total());
    }
}
