//! The properties, over the world of `world`: money is conserved after every step (checked
//! inside [`World::run`]); a maker locks on B at most once per payer escrow; a wire between
//! parties that follow the rule ends claimed on both sides or refunded on both; a party
//! that follows the rule never pays without receiving, whatever the other does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::world::{Net, Who, World};
use super::{MakerKind, Params, PayerKind};
use crate::wire::{Outcome, Standing};

/// Every property of the module's header that applies to this run's parties.
fn check(world: &World) {
    let (a, b) = (world.standing(Net::A), world.standing(Net::B));
    let p = &world.p;
    let context = format!(
        "{p:?}: A {a:?}, B {b:?}, payer {:?}, maker {:?}",
        world.outcome(Who::Payer),
        world.outcome(Who::Maker)
    );
    for (wire, locks) in &world.maker_locks {
        assert!(
            locks.len() <= 1,
            "the maker locked twice for {wire:?}: {context}"
        );
    }
    // Whoever claimed got exactly the quoted sums.
    let quote = &world.quote.quote;
    let amount = tally_core::Amount::from_microcash(p.amount);
    let total = quote.total_for(amount).unwrap().microcash();
    let (payer, maker) = (world.account(Who::Payer), world.account(Who::Maker));
    let received_b = if b == Some(Standing::Claimed) {
        p.amount
    } else {
        0
    };
    assert_eq!(world.b.balance(&payer), received_b, "{context}");
    let received_a = if a == Some(Standing::Claimed) {
        total
    } else {
        0
    };
    assert_eq!(world.a.balance(&maker), received_a, "{context}");
    let payer_follows = matches!(p.payer, PayerKind::Honest | PayerKind::NeverClaims);
    let maker_follows = p.maker == MakerKind::Honest;
    if payer_follows {
        assert!(
            b == Some(Standing::Claimed) || matches!(a, None | Some(Standing::Refunded)),
            "the payer paid without receiving: {context}"
        );
        let expected = match (a, b) {
            (_, Some(Standing::Claimed)) => Outcome::Completed,
            (Some(Standing::Refunded), _) => Outcome::Refunded,
            // Nothing locked: refused, or the driver died before its first journal.
            (None, _) => {
                let outcome = world.outcome(Who::Payer);
                let never_started = outcome.is_none() && !world.journaled(Who::Payer);
                let aborted = matches!(outcome, Some(Outcome::Aborted(_)));
                return assert!(never_started || aborted, "{context}");
            }
            _ => panic!("the payer's escrow is left {a:?}: {context}"),
        };
        assert_eq!(world.outcome(Who::Payer), Some(&expected), "{context}");
    }
    if maker_follows {
        assert!(
            b != Some(Standing::Claimed) || a == Some(Standing::Claimed),
            "the maker paid on B without receiving on A: {context}"
        );
        if matches!(p.payer, PayerKind::Greedy { .. }) {
            return;
        }
        assert_ne!(
            b,
            Some(Standing::Open),
            "the maker's escrow is left open: {context}"
        );
        match (b, world.outcome(Who::Maker)) {
            (Some(Standing::Claimed), outcome) => {
                assert_eq!(outcome, Some(&Outcome::Completed), "{context}")
            }
            (Some(Standing::Refunded), outcome) => {
                assert_eq!(outcome, Some(&Outcome::Refunded), "{context}")
            }
            (None, None | Some(Outcome::Aborted(_))) => {}
            (_, outcome) => panic!("maker outcome {outcome:?}: {context}"),
        }
    }
    if payer_follows && maker_follows {
        assert!(
            matches!(
                (a, b),
                (Some(Standing::Claimed), Some(Standing::Claimed))
                    | (Some(Standing::Refunded), None | Some(Standing::Refunded))
            ),
            "the wire ended half done: {context}"
        );
    }
}

fn run(p: Params) -> World {
    let mut world = World::new(p);
    world.run();
    check(&world);
    world
}

/// Without faults the wire completes: the payer receives the amount on B, the maker the
/// amount plus fee on A.
#[test]
fn clean_wire_completes() {
    for seed in 0..20 {
        let world = run(Params::clean(seed));
        assert_eq!(
            world.standing(Net::A),
            Some(Standing::Claimed),
            "seed {seed}"
        );
        assert_eq!(
            world.standing(Net::B),
            Some(Standing::Claimed),
            "seed {seed}"
        );
        let quote = &world.quote.quote;
        let amount = tally_core::Amount::from_microcash(world.p.amount);
        let total = quote.total_for(amount).unwrap().microcash();
        assert_eq!(world.b.balance(&world.account(Who::Payer)), world.p.amount);
        assert_eq!(world.a.balance(&world.account(Who::Maker)), total);
        assert_eq!(world.outcome(Who::Payer), Some(&Outcome::Completed));
        assert_eq!(world.outcome(Who::Maker), Some(&Outcome::Completed));
    }
}

/// A crash of either party after each of its steps, with none, some or all of that step's
/// actions done: the journal always resumes to a settled wire, never a lock made twice.
#[test]
fn crash_after_every_step_settles() {
    let base = Params {
        max_crashes: 1,
        maker_downtime: 1_500,
        ..Params::clean(3)
    };
    let clean = run(base.clone());
    for who in [Who::Payer, Who::Maker] {
        for call in 1..=clean.calls(who) {
            for prefix in [0, 1, 2, usize::MAX] {
                let mut world = World::with_crash(base.clone(), Some((who, call, prefix)));
                world.run();
                check(&world);
                assert_eq!(world.crashes(who), 1, "{who:?} call {call} prefix {prefix}");
            }
        }
    }
}

fn timing_params() -> impl Strategy<Value = Params> {
    (
        (
            any::<u64>(),
            0u64..1_500,
            0u64..1_500,
            1u64..200,
            0u64..300,
            0u64..100,
        ),
        (
            100u64..400,
            0u64..60,
            0u32..4,
            0u64..3_000,
            proptest::option::of(1u64..500),
        ),
        (
            proptest::option::of((0u64..20_000, 0u64..30_000)),
            proptest::option::of((0u64..20_000, 0u64..30_000)),
            0u64..300,
            any::<bool>(),
        ),
        (
            0u64..5_000,
            0u64..3_000,
            0u32..100_000,
            0u64..100_000,
            1_000_000u64..=100_000_000,
        ),
    )
        .prop_map(|(t, f, o, q)| {
            let (seed, skew_a, skew_b, delivery, event_delay, clock_err) = t;
            let (poll, crash_per_mille, max_crashes, maker_downtime, notice_delay) = f;
            let (payer_offline, maker_offline, loss_per_mille, validator_down) = o;
            let (extra_lock, extra_delta, fee_ppm, fee_fixed, amount) = q;
            Params {
                seed,
                skew_a,
                skew_b,
                delivery,
                event_delay,
                clock_err,
                poll,
                notice_delay,
                crash_per_mille,
                max_crashes,
                maker_downtime,
                payer_offline,
                maker_offline,
                loss_per_mille,
                validator_down,
                payer: PayerKind::Honest,
                maker: MakerKind::Honest,
                extra_lock,
                extra_delta,
                fee_ppm,
                fee_fixed,
                amount,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Both parties follow the rule; clocks, delays, crashes, offline periods, lost
    /// messages and a crashed validator stay within the bounds the sagas were given.
    #[test]
    fn honest_wires_settle_on_both_sides(p in timing_params()) {
        run(p);
    }

    /// One party deviates: a payer that never claims, or a maker that never locks. The
    /// other one, following the rule, still ends whole.
    #[test]
    fn a_deviating_counterpart_takes_nothing(p in timing_params(), never_claims in any::<bool>()) {
        let p = if never_claims {
            Params { payer: PayerKind::NeverClaims, ..p }
        } else {
            Params { maker: MakerKind::NeverLocks, ..p }
        };
        let world = run(p);
        if !world.journaled(Who::Payer) {
            // The payer's driver died before its first journal: no wire was ever started.
            return Ok(());
        }
        if never_claims {
            prop_assert_ne!(world.standing(Net::B), Some(Standing::Claimed));
        } else {
            prop_assert_eq!(world.standing(Net::B), None);
            prop_assert_eq!(world.standing(Net::A), Some(Standing::Refunded));
        }
    }

    /// A cheating payer (short T_A, early refund, late claim) never gets both escrows from
    /// a maker that follows the rule.
    #[test]
    fn a_greedy_payer_never_robs_an_honest_maker(
        p in timing_params(),
        cut in prop_oneof![0u64..2_000, 0u64..20_000],
        lead in 0u64..3_000,
    ) {
        let p = Params {
            payer: PayerKind::Greedy { cut, lead },
            payer_offline: None,
            ..p
        };
        run(p);
    }
}

/// The Δ check is what protects the maker: with it switched off, the greedy payer's
/// short T_A lets it refund A and then claim B, in every run. The same runs with the check
/// (`run` checks them): the maker declines, both sides get their money back.
#[test]
fn a_maker_skipping_the_delta_check_loses() {
    let mut losses = 0;
    for seed in 0..20 {
        let p = Params {
            payer: PayerKind::Greedy {
                cut: 6_000,
                lead: 1_000,
            },
            extra_lock: 6_000,
            ..Params::clean(seed)
        };
        run(p.clone());
        let mut world = World::new(Params {
            maker: MakerKind::SkipsDeltaCheck,
            ..p
        });
        world.run();
        let (a, b) = (world.standing(Net::A), world.standing(Net::B));
        if b == Some(Standing::Claimed) && a == Some(Standing::Refunded) {
            losses += 1;
        }
    }
    assert_eq!(
        losses, 20,
        "skipping the check lets the greedy payer rob the maker, every time"
    );
}
