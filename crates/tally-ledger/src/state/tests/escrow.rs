//! Escrows in the validator: the lock takes the payer's slot and money; exactly one of claim
//! (with the secret, before the deadline) and refund (after the deadline plus ε) can ever
//! be certified, whatever the validators' clocks say; the vote publishes the secret.

use super::*;
use tally_core::{Counterpart, EscrowClaim, EscrowLock, EscrowRefund, EscrowSecret};

const SKEW: u64 = 500;
const NOW: u64 = 1_000_000;
const DEADLINE: u64 = NOW + 60_000;

/// Four validators on a network that takes escrows, `payer` funded.
fn escrow_network(payer: &SecretKey) -> (NetworkContract, Vec<Validator>) {
    let (mut contract, keys) = network(4, &[(payer.account(), 1_000_000)]);
    contract.max_clock_skew_ms = Some(SKEW);
    let mut validators = validators(&contract, &keys);
    for v in &mut validators {
        v.set_clock(NOW);
    }
    (contract, validators)
}

fn lock_order(
    payer: &SecretKey,
    payee: AccountId,
    secret: &EscrowSecret,
    net: &NetworkId,
) -> SignedOrder {
    SignedOrder::sign(
        Order::from(EscrowLock {
            payer: payer.account(),
            sequence: 0,
            payee,
            amount: Amount::from_microcash(400_000),
            hash_lock: secret.hash_lock(),
            deadline: DEADLINE,
            counterpart: None,
        }),
        payer,
        net,
    )
}

fn claim(escrow: EscrowId, secret: EscrowSecret) -> SignedOrder {
    SignedOrder::unsigned(Order::EscrowClaim(EscrowClaim { escrow, secret }))
}

fn refund(escrow: EscrowId) -> SignedOrder {
    SignedOrder::unsigned(Order::EscrowRefund(EscrowRefund { escrow }))
}

/// Supply equals every balance plus what open escrows hold.
fn conserved(v: &Validator) -> bool {
    let balances: i128 = v.accounts().map(|(_, a)| a.balance).sum();
    balances + i128::from(v.escrowed().microcash()) == i128::from(v.supply().microcash())
}

/// Locks an escrow certified and applied at every validator; its id and secret.
fn opened(
    validators: &mut [Validator],
    payer: &SecretKey,
    payee: AccountId,
) -> (EscrowId, EscrowSecret) {
    let net = *validators[0].network();
    let secret = EscrowSecret::from([7; 32]);
    let order = lock_order(payer, payee, &secret, &net);
    let cert = certify(validators, &order);
    for v in validators.iter_mut() {
        assert!(v.handle_certificate(&cert, true).unwrap().new);
        assert!(conserved(v));
    }
    (cert.checksum, secret)
}

#[test]
fn a_claim_with_the_secret_pays_the_payee_and_publishes_the_secret_at_the_vote() {
    let (payer, payee) = (user(1), user(2));
    let (_, mut validators) = escrow_network(&payer);
    let (escrow, secret) = opened(&mut validators, &payer, payee.account());
    // The lock took the payer's money and slot; nobody holds it now.
    assert_eq!(validators[0].account(&payer.account()).balance, 600_000);
    assert_eq!(validators[0].account(&payer.account()).next_sequence, 1);
    assert_eq!(validators[0].escrowed(), Amount::from_microcash(400_000));
    assert_eq!(validators[0].secret_for(&secret.hash_lock()), None);

    let order = claim(escrow, secret);
    let cert = certify(&mut validators, &order);
    // Each voter published the secret with its vote, before any certificate exists.
    for v in &validators[..3] {
        assert_eq!(v.secret_for(&secret.hash_lock()), Some(secret));
    }
    for v in &mut validators {
        v.handle_certificate(&cert, true).unwrap();
        assert!(conserved(v));
        assert_eq!(v.account(&payee.account()).balance, 400_000);
        assert_eq!(v.escrowed(), Amount::ZERO);
        assert_eq!(
            v.escrow(&escrow).unwrap().settlement,
            Settlement::Claimed(secret)
        );
        assert_eq!(v.secret_for(&secret.hash_lock()), Some(secret));
    }
    // Applying it again changes nothing; a refund can no longer be voted.
    assert!(!validators[0].handle_certificate(&cert, true).unwrap().new);
    validators[0].set_clock(DEADLINE + SKEW);
    assert_eq!(
        validators[0].decide_order(&refund(escrow), true),
        Err(LedgerError::EscrowSettled(escrow))
    );
}

#[test]
fn claims_and_refunds_are_refused_outside_their_time_and_without_the_secret() {
    let (payer, payee) = (user(1), user(2));
    let (_, mut validators) = escrow_network(&payer);
    let (escrow, secret) = opened(&mut validators, &payer, payee.account());
    let v = &mut validators[0];
    v.take_changes();
    assert_eq!(
        v.decide_order(&claim(escrow, EscrowSecret::from([8; 32])), true),
        Err(LedgerError::WrongSecret)
    );
    assert!(matches!(
        v.decide_order(&refund(escrow), true),
        Err(LedgerError::RefundTooEarly { .. })
    ));
    // At the deadline a claim is too late, and a refund still too early until ε later.
    v.set_clock(DEADLINE);
    assert!(matches!(
        v.decide_order(&claim(escrow, secret), true),
        Err(LedgerError::DeadlinePassed { .. })
    ));
    v.set_clock(DEADLINE + SKEW - 1);
    assert!(matches!(
        v.decide_order(&refund(escrow), true),
        Err(LedgerError::RefundTooEarly { .. })
    ));
    // A claim or refund must carry no signature at all.
    let mut signed = refund(escrow);
    signed.signature = payer.sign(b"anything");
    assert!(!signed.verify(v.network()));
    v.set_clock(DEADLINE + SKEW);
    // Nothing above changed anything.
    assert!(v.take_changes().is_empty());
    v.decide_order(&refund(escrow), true).unwrap();
}

#[test]
fn a_refund_returns_the_money_and_a_validator_never_votes_both() {
    let (payer, payee) = (user(1), user(2));
    let (_, mut validators) = escrow_network(&payer);
    let (escrow, secret) = opened(&mut validators, &payer, payee.account());
    // Validator 3 voted the claim just before the deadline by its clock...
    validators[3].set_clock(DEADLINE - 1);
    validators[3]
        .decide_order(&claim(escrow, secret), true)
        .unwrap();
    // Asked again after the deadline (its answer was lost), it votes for that claim again.
    validators[3].set_clock(DEADLINE + SKEW);
    validators[3]
        .decide_order(&claim(escrow, secret), true)
        .unwrap();
    // ...so after the deadline it refuses the refund, and the others refund.
    for v in &mut validators {
        v.set_clock(DEADLINE + SKEW);
    }
    assert!(matches!(
        validators[3].decide_order(&refund(escrow), true),
        Err(LedgerError::Conflict { .. })
    ));
    let cert = certify(&mut validators, &refund(escrow));
    for v in &mut validators {
        v.handle_certificate(&cert, true).unwrap();
        assert!(conserved(v));
        assert_eq!(v.account(&payer.account()).balance, 1_000_000);
        assert_eq!(v.escrow(&escrow).unwrap().settlement, Settlement::Refunded);
    }
    // The claim validator 3 voted is history: its lock was cleared with the refund.
    assert!(validators[3].held_settlement(&escrow).is_none());
}

#[test]
fn locks_the_network_cannot_take_are_refused() {
    let (payer, payee) = (user(1), user(2));
    let (_, mut validators) = escrow_network(&payer);
    let net = *validators[0].network();
    let secret = EscrowSecret::from([7; 32]);
    let lock = |change: &dyn Fn(&mut EscrowLock)| {
        let SignedOrder {
            order: Order::EscrowLock(mut lock),
            ..
        } = lock_order(&payer, payee.account(), &secret, &net)
        else {
            unreachable!()
        };
        change(&mut lock);
        SignedOrder::sign(Order::EscrowLock(lock), &payer, &net)
    };
    let v = &mut validators[0];
    let refused = |v: &mut Validator, order: SignedOrder| v.decide_order(&order, true).unwrap_err();
    assert!(matches!(
        refused(v, lock(&|l| l.deadline = NOW + MAX_ESCROW_MS + 1)),
        LedgerError::DeadlineTooFar { .. }
    ));
    assert!(matches!(
        refused(v, lock(&|l| l.amount = Amount::ZERO)),
        LedgerError::BadEscrow(_)
    ));
    assert!(matches!(
        refused(v, lock(&|l| l.payee = l.payer)),
        LedgerError::BadEscrow(_)
    ));
    let elsewhere = NetworkId(tally_core::sha256(&[b"another network"]));
    let cites = |network| {
        move |l: &mut EscrowLock| {
            l.counterpart = Some(Counterpart {
                network,
                escrow: None,
                quote: None,
            })
        }
    };
    assert_eq!(
        refused(v, lock(&cites(elsewhere))),
        LedgerError::UnknownCounterpart(elsewhere)
    );
    assert!(matches!(
        refused(v, lock(&cites(net))),
        LedgerError::BadEscrow(_)
    ));
    assert!(matches!(
        refused(v, lock(&|l| l.amount = Amount::from_microcash(2_000_000))),
        LedgerError::InsufficientFunds { .. }
    ));
    assert!(v.take_changes().is_empty());
    // A known counterpart is fine.
    v.set_counterparts([elsewhere]);
    v.decide_order(&lock(&cites(elsewhere)), true).unwrap();

    // A network without a skew bound takes no escrows at all.
    let (contract, keys) = network(4, &[(payer.account(), 1_000_000)]);
    let mut plain = super::validators(&contract, &keys);
    plain[0].set_clock(NOW);
    let order = lock_order(&payer, payee.account(), &secret, plain[0].network());
    assert_eq!(
        plain[0].decide_order(&order, true),
        Err(LedgerError::NoEscrows)
    );
}

/// A lock whose deadline has come (a wallet's journaled lock finished after an outage) is
/// still voted, so that a lock some validators voted for before the outage can always
/// complete and free the payer's slot; its payer takes the money back at once.
#[test]
fn a_lock_whose_deadline_has_passed_still_completes_and_is_refunded_at_once() {
    let (payer, payee) = (user(1), user(2));
    let (_, mut validators) = escrow_network(&payer);
    let net = *validators[0].network();
    let secret = EscrowSecret::from([7; 32]);
    let order = lock_order(&payer, payee.account(), &secret, &net);
    // Validator 0 voted before the outage; the others see the lock only after its deadline.
    validators[0].decide_order(&order, true).unwrap();
    for v in &mut validators {
        v.set_clock(DEADLINE + SKEW);
    }
    let votes: Vec<Vote> = std::iter::once(validators[0].vote(&order.order.digest(&net)))
        .chain(
            validators[1..3]
                .iter_mut()
                .map(|v| v.handle_order(&order, true).unwrap()),
        )
        .collect();
    let cert = Certificate::new(order.clone(), &net, votes);
    for v in &mut validators {
        v.handle_certificate(&cert, true).unwrap();
    }
    let refund = certify(&mut validators, &refund(cert.checksum));
    for v in &mut validators {
        v.handle_certificate(&refund, true).unwrap();
        assert!(conserved(v));
        assert_eq!(v.account(&payer.account()).balance, 1_000_000);
        assert_eq!(v.account(&payer.account()).next_sequence, 1);
    }
}

#[test]
fn a_hash_lock_is_used_once_and_a_settlement_waits_for_its_lock() {
    let (payer, payee) = (user(1), user(2));
    let (_, mut validators) = escrow_network(&payer);
    let net = *validators[0].network();
    let (escrow, secret) = opened(&mut validators, &payer, payee.account());
    // The very lock asked for again is an old sequence, as any order applied already.
    assert!(matches!(
        validators[0].decide_order(&lock_order(&payer, payee.account(), &secret, &net), true),
        Err(LedgerError::Sequence { .. })
    ));
    let mut again = lock_order(&payer, payee.account(), &secret, &net);
    if let Order::EscrowLock(lock) = &mut again.order {
        lock.sequence = 1;
    }
    let again = SignedOrder::sign(again.order, &payer, &net);
    assert_eq!(
        validators[0].decide_order(&again, true),
        Err(LedgerError::HashLockReused(secret.hash_lock()))
    );
    // A validator that has not applied the lock takes no claim, and applies no claim
    // certificate before the lock's.
    let (contract, keys) = network(4, &[(payer.account(), 1_000_000)]);
    let mut contract = contract;
    contract.max_clock_skew_ms = Some(SKEW);
    let mut lagging = super::validators(&contract, &keys).remove(0);
    lagging.set_clock(NOW);
    let cert = certify(&mut validators, &claim(escrow, secret));
    assert_eq!(
        lagging.decide_order(&claim(escrow, secret), true),
        Err(LedgerError::UnknownEscrow(escrow))
    );
    assert_eq!(
        lagging.handle_certificate(&cert, true),
        Err(LedgerError::MissingEscrow(escrow))
    );
}

proptest! {
    /// Whatever each validator's clock says (skewed anywhere around the deadline, moving
    /// on between the two requests) and in whatever order claims and refunds reach them,
    /// at most one of the two certificates can be assembled: every honest validator votes
    /// for at most one.
    #[test]
    fn never_both_a_claim_and_a_refund_certificate(
        clocks in proptest::collection::vec(
            (DEADLINE - 2 * SKEW..DEADLINE + 3 * SKEW, 0..3 * SKEW),
            4,
        ),
        claim_first in proptest::collection::vec(any::<bool>(), 4),
    ) {
        let (payer, payee) = (user(1), user(2));
        let (_, mut validators) = escrow_network(&payer);
        let (escrow, secret) = opened(&mut validators, &payer, payee.account());
        let (mut claims, mut refunds) = (0, 0);
        for ((v, (clock, later)), first) in validators.iter_mut().zip(&clocks).zip(&claim_first) {
            let orders = if *first {
                [claim(escrow, secret), refund(escrow)]
            } else {
                [refund(escrow), claim(escrow, secret)]
            };
            let mut voted = 0;
            for (order, at) in orders.into_iter().zip([*clock, clock + later]) {
                v.set_clock(at);
                if v.decide_order(&order, true).is_ok() {
                    voted += 1;
                    match order.order {
                        Order::EscrowClaim(_) => claims += 1,
                        _ => refunds += 1,
                    }
                }
            }
            prop_assert!(voted <= 1, "a validator voted both");
        }
        prop_assert!(!(claims >= 3 && refunds >= 3));
    }
}
