//! The two machines driven together through the harness: the clean transfer, a crash and
//! restart of either side after every one of its steps, and random crash schedules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use proptest::prelude::*;
use sim::{CrashMode, Faults, SideId, Sim};
use tally_live::{ReceiverOutcome, SenderOutcome};

const BANK: [u64; 7] = [250, 100, 25, 5, 1, 1, 5];
const AMOUNT: u64 = 281;

fn bank_total() -> u64 {
    BANK.iter().sum()
}

/// A clean transfer walks every step of the table on both sides and moves exactly the
/// amount to the receiver.
#[test]
fn clean_transfer_completes() {
    let mut sim = Sim::new(&BANK, AMOUNT, Faults::default());
    sim.run();
    sim.assert_consistent(bank_total());
    assert!(
        sim.completed(),
        "{:?} {:?}",
        sim.sender_outcome,
        sim.receiver_outcome
    );
    let all: Vec<u8> = (2..=19).chain([24]).collect();
    for n in &all {
        assert!(sim.sender_steps.contains(n), "sender missed step {n}");
    }
    assert!(matches!(
        sim.receiver_outcome,
        Some(ReceiverOutcome::Received {
            confirmed: true,
            ..
        })
    ));
    assert_eq!(sim.world.held(sim::Holder::Receiver), AMOUNT);
}

fn clean_calls() -> (usize, usize) {
    let mut sim = Sim::new(&BANK, AMOUNT, Faults::default());
    sim.run();
    // Every step of the table is a handle call on each side, plus ticks and reports.
    assert!(sim.sender_calls > 20 && sim.receiver_calls > 15);
    (sim.sender_calls, sim.receiver_calls)
}

/// A crash of either side after any of its handle calls (so after every step, message
/// numbers included), with the actions lost or performed, and a short downtime: the
/// transfer still completes, coins conserved.
#[test]
fn crash_and_restart_after_every_step_completes() {
    let (sender_calls, receiver_calls) = clean_calls();
    for (side, calls) in [
        (SideId::Sender, sender_calls),
        (SideId::Receiver, receiver_calls),
    ] {
        for call in 1..=calls {
            for mode in [CrashMode::BeforeActions, CrashMode::AfterActions] {
                let mut sim = Sim::new(&BANK, AMOUNT, Faults::default());
                sim.crash(side, call, mode, 3_000);
                sim.run();
                sim.assert_consistent(bank_total());
                assert_eq!(
                    sim.crashes(side).0,
                    1,
                    "{side:?} call {call}: the crash happened"
                );
                assert!(
                    sim.completed(),
                    "{side:?} crash after call {call} ({mode:?}): {:?} / {:?}",
                    sim.sender_outcome,
                    sim.receiver_outcome
                );
            }
        }
    }
}

/// A crash with a downtime beyond the peer timeout: the transfer completes or rolls back
/// (kept before 24, reclaimed after the deadline), never loses or doubles a coin.
#[test]
fn long_crash_after_every_step_completes_or_rolls_back() {
    let (sender_calls, receiver_calls) = clean_calls();
    let mut kinds = std::collections::BTreeSet::new();
    for (side, calls) in [
        (SideId::Sender, sender_calls),
        (SideId::Receiver, receiver_calls),
    ] {
        for call in 1..=calls {
            for downtime in [30_000, 400_000] {
                let mut sim = Sim::new(&BANK, AMOUNT, Faults::default());
                sim.crash(side, call, CrashMode::BeforeActions, downtime);
                sim.run();
                sim.assert_consistent(bank_total());
                let outcome = sim.sender_outcome.clone().unwrap();
                assert!(
                    sim.completed()
                        || matches!(
                            outcome,
                            SenderOutcome::Kept { .. } | SenderOutcome::Reclaimed { .. }
                        ),
                    "{side:?} after call {call}: {outcome:?}"
                );
                kinds.insert(match outcome {
                    SenderOutcome::Delivered { .. } => "delivered",
                    SenderOutcome::Kept { .. } => "kept",
                    SenderOutcome::Reclaimed { .. } => "reclaimed",
                });
            }
        }
    }
    // Every way to end is exercised: completion, keeping and reclaiming.
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Random crash schedules on both sides: coins are always conserved and every outcome
    /// agrees with who holds the coins.
    #[test]
    fn random_crashes_conserve_coins(
        crashes in proptest::collection::vec(
            (any::<bool>(), 1usize..40, any::<bool>(), prop_oneof![Just(500u64), Just(5_000), Just(20_000), Just(400_000)]),
            0..5,
        )
    ) {
        let mut sim = Sim::new(&BANK, AMOUNT, Faults::default());
        for (sender, call, before, downtime) in crashes {
            let side = if sender { SideId::Sender } else { SideId::Receiver };
            let mode = if before { CrashMode::BeforeActions } else { CrashMode::AfterActions };
            sim.crash(side, call, mode, downtime);
        }
        sim.run();
        sim.assert_consistent(bank_total());
    }
}
