#![allow(clippy::unwrap_used, clippy::expect_used)]

use tally_core::{Amount, Counterpart, EscrowId, EscrowLock};

use super::*;
use crate::testkit::{
    NOW, amount, maker_key, network_a, network_b, payer_key, secret, signed, timing, want,
};

/// T_A: now + lock time (10 s) + Δ (5 s).
const T_A: u64 = NOW + 15_000;
/// The latest T_B a maker may choose: T_A − Δ.
const T_B: u64 = NOW + 10_000;

fn config() -> PayerConfig {
    PayerConfig {
        quote: signed(),
        want: want(),
        account: payer_key().account(),
        amount: amount(),
        timing: timing(),
        secret: secret(),
    }
}

fn claims(out: &[Action]) -> bool {
    out.iter().any(|a| matches!(a, Action::Claim { .. }))
}

fn refunds(out: &[Action]) -> bool {
    out.iter().any(|a| matches!(a, Action::Refund { .. }))
}

/// A payer whose lock on A is certified: (payer, its escrow id).
fn locked() -> (Payer, EscrowId) {
    let (mut payer, out) = Payer::new(config(), NOW).unwrap();
    let Action::Lock { terms, .. } = out[1] else {
        panic!("{out:?}")
    };
    let lock = terms.to_lock(payer_key().account(), 0);
    let escrow = escrow_id(&network_a(), &lock);
    let out = payer.handle(
        Event::Locked {
            network: network_a(),
            escrow,
            lock,
        },
        NOW + 500,
    );
    assert_eq!(out[0], Action::Journal);
    (payer, escrow)
}

/// The lock an honest maker makes on B for `escrow_a`.
fn maker_lock(escrow_a: EscrowId, t_b: u64) -> EscrowLock {
    EscrowLock {
        payer: maker_key().account(),
        sequence: 0,
        payee: payer_key().account(),
        amount: amount(),
        hash_lock: secret().hash_lock(),
        deadline: t_b,
        counterpart: Some(Counterpart {
            network: network_a(),
            escrow: Some(escrow_a),
            quote: Some(signed().hash()),
        }),
    }
}

fn seen(lock: EscrowLock, standing: Standing) -> Event {
    Event::Seen {
        network: network_b(),
        escrow: escrow_id(&network_b(), &lock),
        lock,
        standing,
    }
}

#[test]
fn it_journals_the_secret_before_locking_amount_plus_fee_until_t_a() {
    let (payer, out) = Payer::new(config(), NOW).unwrap();
    assert_eq!(
        out[0],
        Action::Journal,
        "the state (with s) is durable first"
    );
    let Action::Lock { network, terms } = out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(network, network_a());
    assert_eq!(terms.payee, signed().quote.maker_a);
    assert_eq!(terms.amount, Amount::from_microcash(10_026_000));
    assert_eq!(terms.hash_lock, secret().hash_lock());
    assert_eq!(terms.deadline_ms, T_A);
    let cites = Counterpart {
        network: network_b(),
        escrow: None,
        quote: Some(signed().hash()),
    };
    assert_eq!(terms.counterpart, cites);
    let json = serde_json::to_string(&payer.snapshot()).unwrap();
    let back: PayerState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, payer.snapshot());
    assert_eq!(back.config().secret, secret());
}

#[test]
fn a_bad_quote_is_refused_before_anything_is_locked() {
    let expired = Payer::new(config(), NOW + 60_000);
    assert!(matches!(expired, Err(QuoteError::Expired { .. })));
    let too_much = PayerConfig {
        amount: Amount::from_microcash(100_000_001),
        ..config()
    };
    assert!(matches!(
        Payer::new(too_much, NOW),
        Err(QuoteError::AmountOutOfRange { .. })
    ));
}

#[test]
fn once_locked_it_tells_the_maker_and_watches_both_networks() {
    let (mut payer, out) = Payer::new(config(), NOW).unwrap();
    let Action::Lock { terms, .. } = out[1] else {
        panic!()
    };
    let lock = terms.to_lock(payer_key().account(), 3);
    let escrow = escrow_id(&network_a(), &lock);
    let event = Event::Locked {
        network: network_a(),
        escrow,
        lock,
    };
    let out = payer.handle(event, NOW + 500);
    let target = Target::HashLock(secret().hash_lock());
    for network in [network_a(), network_b()] {
        assert!(out.contains(&Action::Watch { network, target }));
    }
    let notice = Message::PayerLocked {
        quote: signed().hash(),
        escrow,
    };
    assert!(out.contains(&Action::Send(notice)));
    assert_eq!(payer.phase(), &PayerPhase::AwaitingMaker);
}

#[test]
fn a_valid_maker_lock_is_claimed_at_once_after_journaling() {
    let (mut payer, escrow_a) = locked();
    let lock = maker_lock(escrow_a, T_B);
    let out = payer.handle(seen(lock, Standing::Open), NOW + 2_000);
    assert_eq!(out[0], Action::Journal);
    let claim = Action::Claim {
        network: network_b(),
        escrow: escrow_id(&network_b(), &lock),
        secret: secret(),
    };
    assert!(out.contains(&claim), "{out:?}");
    assert_eq!(payer.phase(), &PayerPhase::Claiming);
}

#[test]
fn any_other_lock_under_the_hash_is_ignored() {
    let (payer, escrow_a) = locked();
    let good = maker_lock(escrow_a, T_B);
    let other = EscrowId::from([5; 32]);
    let bad = [
        EscrowLock {
            payee: maker_key().account(),
            ..good
        },
        EscrowLock {
            amount: Amount::from_microcash(9_999_999),
            ..good
        },
        EscrowLock {
            amount: Amount::from_microcash(10_000_001),
            ..good
        },
        EscrowLock {
            hash_lock: EscrowId::from([1; 32]),
            ..good
        },
        EscrowLock {
            counterpart: Some(Counterpart {
                escrow: Some(other),
                ..good.counterpart.unwrap()
            }),
            ..good
        },
        EscrowLock {
            counterpart: Some(Counterpart {
                quote: None,
                ..good.counterpart.unwrap()
            }),
            ..good
        },
        EscrowLock {
            counterpart: None,
            ..good
        },
        // T_A < T_B + Δ: the maker would have time to lose, the payer none to claim A back.
        EscrowLock {
            deadline: T_B + 1,
            ..good
        },
    ];
    for lock in bad {
        let mut payer = payer.clone();
        let out = payer.handle(seen(lock, Standing::Open), NOW + 2_000);
        assert!(!claims(&out), "{lock:?} claimed");
        assert_eq!(payer.phase(), &PayerPhase::AwaitingMaker);
    }
    // An id that is not the lock's.
    let mut payer = payer.clone();
    let event = Event::Seen {
        network: network_b(),
        escrow: other,
        lock: good,
        standing: Standing::Open,
    };
    assert!(!claims(&payer.handle(event, NOW + 2_000)));
}

#[test]
fn a_valid_lock_seen_after_the_last_moment_to_claim_is_not_claimed() {
    let (payer, escrow_a) = locked();
    let lock = maker_lock(escrow_a, T_B);
    let last = last_claim_at(T_B, 700, 300);
    assert_eq!(last, T_B - 1_000);
    let mut in_time = payer.clone();
    assert!(claims(&in_time.handle(seen(lock, Standing::Open), last)));
    let mut late = payer.clone();
    assert!(!claims(&late.handle(seen(lock, Standing::Open), last + 1)));
}

#[test]
fn without_a_maker_lock_it_refunds_from_t_a_plus_skew() {
    let (mut payer, escrow_a) = locked();
    let give_up = last_claim_at(T_B, 700, 300);
    payer.handle(Event::Tick, give_up);
    assert_eq!(payer.phase(), &PayerPhase::AwaitingMaker);
    let out = payer.handle(Event::Tick, give_up + 1);
    assert_eq!(payer.phase(), &PayerPhase::AwaitingRefund);
    assert!(out.contains(&Action::WakeAt(T_A + 500)));
    assert!(!refunds(&payer.handle(Event::Tick, T_A + 499)));
    let out = payer.handle(Event::Tick, T_A + 500);
    let refund = Action::Refund {
        network: network_a(),
        escrow: escrow_a,
    };
    assert_eq!(out[0], Action::Journal);
    assert!(out.contains(&refund));
    // Too early for some validators: asked again a second later.
    let refused = Event::RefundRefused {
        network: network_a(),
        escrow: escrow_a,
        refusal: Refusal::TooEarly,
    };
    assert!(!refunds(&payer.handle(refused, T_A + 600)));
    assert!(!refunds(
        &payer.handle(Event::Tick, T_A + 600 + RETRY_MS - 1)
    ));
    assert!(refunds(&payer.handle(Event::Tick, T_A + 600 + RETRY_MS)));
    let done = Event::Refunded {
        network: network_a(),
        escrow: escrow_a,
    };
    assert_eq!(
        payer.handle(done, T_A + 2_000).last(),
        Some(&Action::Done(Outcome::Refunded))
    );
}

#[test]
fn a_certified_claim_is_final_no_refund_ever_follows() {
    let (mut payer, escrow_a) = locked();
    let lock = maker_lock(escrow_a, T_B);
    payer.handle(seen(lock, Standing::Open), NOW + 2_000);
    let escrow = escrow_id(&network_b(), &lock);
    let out = payer.handle(
        Event::Claimed {
            network: network_b(),
            escrow,
        },
        NOW + 2_500,
    );
    assert_eq!(out.last(), Some(&Action::Done(Outcome::Completed)));
    for now in [T_A, T_A + 500, T_A + 60_000] {
        assert!(payer.handle(Event::Tick, now).is_empty());
    }
}

#[test]
fn after_a_claim_it_refunds_only_once_the_claim_cannot_succeed() {
    let (payer, escrow_a) = locked();
    let lock = maker_lock(escrow_a, T_B);
    let escrow = escrow_id(&network_b(), &lock);
    let mut claimed = payer.clone();
    claimed.handle(seen(lock, Standing::Open), NOW + 2_000);
    // No answer yet: it waits while a claim could still be voted (T_B + ε_B) and seen.
    let hopeless = T_B + 700 + 2_000;
    for now in [T_B, T_B + 700, hopeless - 1] {
        claimed.handle(Event::Tick, now);
        assert_eq!(claimed.phase(), &PayerPhase::Claiming, "at {now}");
    }
    let mut silent = claimed.clone();
    silent.handle(Event::Tick, hopeless);
    assert_eq!(silent.phase(), &PayerPhase::AwaitingRefund);
    // Refused as too late: the claim failed; the refund comes at T_A + ε_A.
    let mut late = claimed.clone();
    let refused = Event::ClaimRefused {
        network: network_b(),
        escrow,
        refusal: Refusal::TooLate,
    };
    late.handle(refused, NOW + 3_000);
    assert_eq!(late.phase(), &PayerPhase::AwaitingRefund);
    assert!(refunds(&late.handle(Event::Tick, T_A + 500)));
    // Refused as settled: it looks before deciding, and a claim found there is success.
    let mut settled = claimed.clone();
    let refused = Event::ClaimRefused {
        network: network_b(),
        escrow,
        refusal: Refusal::Settled,
    };
    let out = settled.handle(refused, NOW + 3_000);
    assert!(out.contains(&Action::Watch {
        network: network_b(),
        target: Target::Escrow(escrow)
    }));
    assert_eq!(settled.phase(), &PayerPhase::Claiming);
    let out = settled.handle(seen(lock, Standing::Claimed), NOW + 3_200);
    assert_eq!(out.last(), Some(&Action::Done(Outcome::Completed)));
    // Unreachable validators: the same claim again, while still in time.
    let mut retried = claimed.clone();
    let refused = Event::ClaimRefused {
        network: network_b(),
        escrow,
        refusal: Refusal::Other("no quorum answered".into()),
    };
    retried.handle(refused, NOW + 3_000);
    assert!(claims(&retried.handle(Event::Tick, NOW + 3_000 + RETRY_MS)));
}

#[test]
fn a_resumed_payer_resends_its_claim_only_while_in_time() {
    let (mut payer, escrow_a) = locked();
    let lock = maker_lock(escrow_a, T_B);
    payer.handle(seen(lock, Standing::Open), NOW + 2_000);
    let json = serde_json::to_string(&payer.snapshot()).unwrap();
    let state: PayerState = serde_json::from_str(&json).unwrap();
    let last = last_claim_at(T_B, 700, 300);
    let (_, out) = Payer::resume(state.clone(), last);
    assert!(claims(&out), "{out:?}");
    let (resumed, out) = Payer::resume(state, last + 1);
    assert!(!claims(&out), "{out:?}");
    assert_eq!(resumed.phase(), &PayerPhase::Claiming);
    let target = Target::HashLock(secret().hash_lock());
    assert!(out.contains(&Action::Watch {
        network: network_b(),
        target
    }));
}

#[test]
fn a_resumed_locking_payer_asks_for_the_same_lock() {
    let (payer, first) = Payer::new(config(), NOW).unwrap();
    let (_, again) = Payer::resume(payer.snapshot(), NOW + 9_999);
    assert_eq!(again, vec![first[1].clone()], "same terms, same T_A");
}
