#![allow(clippy::unwrap_used, clippy::expect_used)]

use tally_core::{AccountId, Amount, Counterpart, EscrowId, EscrowLock, EscrowSecret};

use super::*;
use crate::testkit::{NOW, maker_key, network_a, network_b, payer_key, secret, signed, timing};
use crate::timing::check_deadlines;

const T_A: u64 = NOW + 15_000;

/// The payer's lock on A as an honest payer makes it at `NOW` (10 cash plus fee).
fn payer_lock(deadline: u64) -> EscrowLock {
    EscrowLock {
        payer: payer_key().account(),
        sequence: 0,
        payee: maker_key().account(),
        amount: Amount::from_microcash(10_026_000),
        hash_lock: secret().hash_lock(),
        deadline,
        counterpart: Some(Counterpart {
            network: network_b(),
            escrow: None,
            quote: Some(signed().hash()),
        }),
    }
}

fn maker_for(lock: &EscrowLock) -> (Maker, EscrowId) {
    let escrow_a = escrow_id(&network_a(), lock);
    let config = MakerConfig::new(signed(), timing());
    let (maker, out) = Maker::new(config, escrow_a, NOW + 500).unwrap();
    assert_eq!(out[0], Action::Journal);
    let watch = Action::Watch {
        network: network_a(),
        target: Target::Escrow(escrow_a),
    };
    assert_eq!(out[1], watch);
    (maker, escrow_a)
}

fn seen_a(lock: EscrowLock, standing: Standing) -> Event {
    Event::Seen {
        network: network_a(),
        escrow: escrow_id(&network_a(), &lock),
        lock,
        standing,
    }
}

fn lock_terms(out: &[Action]) -> Option<LockTerms> {
    out.iter().find_map(|action| match action {
        Action::Lock { network, terms } if *network == network_b() => Some(*terms),
        _ => None,
    })
}

fn declined(out: &[Action]) -> bool {
    lock_terms(out).is_none()
        && out
            .iter()
            .any(|a| matches!(a, Action::Send(Message::Declined { .. })))
        && matches!(out.last(), Some(Action::Done(Outcome::Aborted(_))))
}

/// A maker whose lock on B (T_B = T_A − Δ) is certified: (maker, escrow A, escrow B, T_B).
fn locked() -> (Maker, EscrowId, EscrowId, u64) {
    let lock = payer_lock(T_A);
    let (mut maker, escrow_a) = maker_for(&lock);
    let terms = lock_terms(&maker.handle(seen_a(lock, Standing::Open), NOW + 1_000)).unwrap();
    let lock_b = terms.to_lock(maker_key().account(), 0);
    let escrow_b = escrow_id(&network_b(), &lock_b);
    let event = Event::Locked {
        network: network_b(),
        escrow: escrow_b,
        lock: lock_b,
    };
    let out = maker.handle(event, NOW + 1_500);
    let told = Message::MakerLocked {
        escrow_a,
        escrow: escrow_b,
    };
    assert!(out.contains(&Action::Send(told)));
    let target = Target::HashLock(secret().hash_lock());
    for network in [network_a(), network_b()] {
        assert!(out.contains(&Action::Watch { network, target }));
    }
    (maker, escrow_a, escrow_b, terms.deadline_ms)
}

#[test]
fn a_good_lock_gets_the_mirror_lock_with_t_b_delta_before_t_a() {
    let lock = payer_lock(T_A);
    let (mut maker, escrow_a) = maker_for(&lock);
    let out = maker.handle(seen_a(lock, Standing::Open), NOW + 1_000);
    assert_eq!(
        out[0],
        Action::Journal,
        "the terms are durable before the lock"
    );
    let terms = lock_terms(&out).unwrap();
    assert_eq!(terms.payee, payer_key().account());
    assert_eq!(terms.amount, Amount::from_microcash(10_000_000));
    assert_eq!(terms.hash_lock, secret().hash_lock());
    // The quoted 10 s from now would be NOW + 11 s: shortened to T_A − Δ.
    assert_eq!(terms.deadline_ms, NOW + 10_000);
    assert_eq!(check_deadlines(T_A, terms.deadline_ms, 5_000), Ok(()));
    let cites = Counterpart {
        network: network_a(),
        escrow: Some(escrow_a),
        quote: Some(signed().hash()),
    };
    assert_eq!(terms.counterpart, cites);
    // A generous T_A: the full lock time.
    let roomy = payer_lock(NOW + 40_000);
    let (mut maker, _) = maker_for(&roomy);
    let terms = lock_terms(&maker.handle(seen_a(roomy, Standing::Open), NOW + 1_000)).unwrap();
    assert_eq!(terms.deadline_ms, NOW + 11_000);
}

#[test]
fn a_lock_that_leaves_no_room_for_t_b_plus_delta_is_declined() {
    // T_B ≤ T_A − Δ = NOW + 10 s must still leave the 3.4 s claim window.
    let lock = payer_lock(T_A);
    let (maker, _) = maker_for(&lock);
    let mut in_time = maker.clone();
    assert!(lock_terms(&in_time.handle(seen_a(lock, Standing::Open), NOW + 6_600)).is_some());
    let mut late = maker.clone();
    assert!(declined(
        &late.handle(seen_a(lock, Standing::Open), NOW + 6_601)
    ));
    let short = payer_lock(NOW + 8_000);
    let (mut maker, _) = maker_for(&short);
    assert!(declined(
        &maker.handle(seen_a(short, Standing::Open), NOW + 1_000)
    ));
}

#[test]
fn every_other_mismatch_is_declined() {
    let good = payer_lock(T_A);
    let cited = good.counterpart.unwrap();
    let bad = [
        EscrowLock {
            payee: payer_key().account(),
            payer: maker_key().account(),
            ..good
        },
        EscrowLock {
            payee: AccountId::from([3; 32]),
            ..good
        },
        EscrowLock {
            amount: Amount::from_microcash(10_026_001),
            ..good
        },
        EscrowLock {
            amount: Amount::from_microcash(1_000),
            ..good
        },
        EscrowLock {
            counterpart: None,
            ..good
        },
        EscrowLock {
            counterpart: Some(Counterpart {
                quote: None,
                ..cited
            }),
            ..good
        },
        EscrowLock {
            counterpart: Some(Counterpart {
                network: network_a(),
                ..cited
            }),
            ..good
        },
        EscrowLock {
            counterpart: Some(Counterpart {
                escrow: Some(EscrowId::from([4; 32])),
                ..cited
            }),
            ..good
        },
    ];
    for lock in bad {
        let (mut maker, _) = maker_for(&lock);
        let out = maker.handle(seen_a(lock, Standing::Open), NOW + 1_000);
        assert!(declined(&out), "{lock:?}: {out:?}");
    }
    let (maker, _) = maker_for(&good);
    let mut settled = maker.clone();
    assert!(declined(
        &settled.handle(seen_a(good, Standing::Refunded), NOW + 1_000)
    ));
    let mut stale = maker.clone();
    assert!(declined(
        &stale.handle(seen_a(good, Standing::Open), NOW + 62_301)
    ));
    // A lock whose id is not the escrow the saga answers is no news at all.
    let mut other = maker.clone();
    let event = Event::Seen {
        network: network_a(),
        escrow: EscrowId::from([6; 32]),
        lock: good,
        standing: Standing::Open,
    };
    assert!(other.handle(event, NOW + 1_000).is_empty());
}

#[test]
fn the_secret_from_either_network_claims_a_until_the_last_moment() {
    let (maker, escrow_a, _, _) = locked();
    let claim = Action::Claim {
        network: network_a(),
        escrow: escrow_a,
        secret: secret(),
    };
    let last = last_claim_at(T_A, 500, 300);
    for network in [network_b(), network_a()] {
        let mut maker = maker.clone();
        let out = maker.handle(
            Event::SecretRevealed {
                network,
                secret: secret(),
            },
            last,
        );
        assert_eq!(out[0], Action::Journal);
        assert!(out.contains(&claim), "{out:?}");
        let done = Event::Claimed {
            network: network_a(),
            escrow: escrow_a,
        };
        assert_eq!(
            maker.handle(done, last + 100).last(),
            Some(&Action::Done(Outcome::Completed))
        );
    }
    let mut wrong = maker.clone();
    let other = EscrowSecret::from([1; 32]);
    let out = wrong.handle(
        Event::SecretRevealed {
            network: network_b(),
            secret: other,
        },
        NOW + 3_000,
    );
    assert!(!out.contains(&Action::Claim {
        network: network_a(),
        escrow: escrow_a,
        secret: other
    }));
    let mut late = maker.clone();
    let out = late.handle(
        Event::SecretRevealed {
            network: network_b(),
            secret: secret(),
        },
        last + 1,
    );
    assert!(
        !out.iter().any(|a| matches!(a, Action::Claim { .. })),
        "never after the last moment"
    );
}

#[test]
fn without_the_secret_it_refunds_b_from_t_b_plus_skew() {
    let (mut maker, _, escrow_b, t_b) = locked();
    let refund = Action::Refund {
        network: network_b(),
        escrow: escrow_b,
    };
    assert!(!maker.handle(Event::Tick, t_b + 699).contains(&refund));
    assert!(maker.handle(Event::Tick, t_b + 700).contains(&refund));
    let done = Event::Refunded {
        network: network_b(),
        escrow: escrow_b,
    };
    assert_eq!(
        maker.handle(done, t_b + 900).last(),
        Some(&Action::Done(Outcome::Refunded))
    );
}

#[test]
fn a_refund_refused_because_the_payer_claimed_turns_into_a_claim_on_a() {
    let (mut maker, escrow_a, escrow_b, t_b) = locked();
    maker.handle(Event::Tick, t_b + 700);
    let refused = Event::RefundRefused {
        network: network_b(),
        escrow: escrow_b,
        refusal: Refusal::Settled,
    };
    let out = maker.handle(refused, t_b + 800);
    assert!(out.contains(&Action::Watch {
        network: network_b(),
        target: Target::Escrow(escrow_b)
    }));
    let out = maker.handle(
        Event::SecretRevealed {
            network: network_b(),
            secret: secret(),
        },
        t_b + 900,
    );
    assert!(out.contains(&Action::Claim {
        network: network_a(),
        escrow: escrow_a,
        secret: secret()
    }));
    // Someone else's claim on A (B's validators' notice) counts as well.
    let (mut maker, escrow_a, _, _) = locked();
    let lock = payer_lock(T_A);
    let event = Event::Seen {
        network: network_a(),
        escrow: escrow_a,
        lock,
        standing: Standing::Claimed,
    };
    assert_eq!(
        maker.handle(event, T_A).last(),
        Some(&Action::Done(Outcome::Completed))
    );
}

#[test]
fn it_never_locks_twice_for_one_payer_escrow() {
    let lock = payer_lock(T_A);
    let (mut maker, _) = maker_for(&lock);
    let first = lock_terms(&maker.handle(seen_a(lock, Standing::Open), NOW + 1_000)).unwrap();
    // Seen again (a second watch answer, a repeated notice): nothing new.
    assert!(lock_terms(&maker.handle(seen_a(lock, Standing::Open), NOW + 2_000)).is_none());
    // A restart later re-issues exactly the journaled terms, never decides again.
    let json = serde_json::to_string(&maker.snapshot()).unwrap();
    let state: MakerState = serde_json::from_str(&json).unwrap();
    assert_eq!(state.terms_b(), Some(&first));
    let (_, out) = Maker::resume(state, NOW + 5_000);
    assert_eq!(lock_terms(&out), Some(first));
}

/// What the Δ check prevents, shown directly: with it off, a payer lock with T_A only
/// 8 s away gets a maker lock until NOW + 11 s, past T_A: the payer can refund A at
/// T_A + ε_A and still claim B before T_B (the world model plays it out:
/// `sim::props::a_maker_skipping_the_delta_check_loses`).
#[test]
fn without_the_delta_check_the_maker_would_lock_past_t_a() {
    let short = payer_lock(NOW + 8_000);
    let escrow_a = escrow_id(&network_a(), &short);
    let mut config = MakerConfig::new(signed(), timing());
    config.skip_delta_check = true;
    let (mut maker, _) = Maker::new(config, escrow_a, NOW + 500).unwrap();
    let terms = lock_terms(&maker.handle(seen_a(short, Standing::Open), NOW + 1_000)).unwrap();
    assert_eq!(terms.deadline_ms, NOW + 11_000);
    assert!(check_deadlines(short.deadline, terms.deadline_ms, 5_000).is_err());
    let payer_refunds_from = refund_from(short.deadline, 500);
    let payer_claims_until = last_claim_at(terms.deadline_ms, 700, 300);
    assert!(
        payer_refunds_from < payer_claims_until,
        "refund A, then claim B"
    );
}

#[test]
fn a_quote_its_own_timing_cannot_honour_is_refused() {
    let timing = Timing {
        notice: 4_000,
        ..timing()
    };
    let config = MakerConfig::new(signed(), timing);
    let refused = Maker::new(config, EscrowId::from([1; 32]), NOW);
    assert!(matches!(refused, Err(QuoteError::DeltaTooSmall { .. })));
}
