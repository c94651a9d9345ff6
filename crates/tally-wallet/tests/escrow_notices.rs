//! The counterpart notice (DESIGN §8; the wiring seed's server-to-server notice) between two
//! real networks of four validators each that know each other's contracts. Alice locks on
//! A for Bob (the maker); Bob locks on B for Alice under the same hash lock, citing Alice's
//! escrow. What is protected: once B's validators vote Alice's claim, they hand the secret
//! to A's validators themselves, so Bob is paid on A without doing anything (he may be
//! offline), and Alice cannot collect the claim certificate on B, keep it to herself and
//! take her money back on A after its deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Net, cash};
use tally_core::{Counterpart, EscrowClaim, EscrowId, EscrowSecret, Order, SignedOrder};
use tally_proto::{ErrorCode, EscrowQuery};
use tally_wallet::escrow::{self, LockTerms};
use tally_wallet::ops::OpError;
use tally_wallet::{ClientError, QuorumClient};

/// A and B, each knowing the other; A's payer is Alice, B's is Bob.
async fn two_networks() -> (Net, Net) {
    let (a, b) = (Net::prepare("A", 1000), Net::prepare("B", 1000));
    let (contract_a, contract_b) = (a.contract().clone(), b.contract().clone());
    let sync = Duration::from_millis(200);
    let a = a.launch(sync, vec![contract_b]).await;
    let b = b.launch(sync, vec![contract_a]).await;
    (a, b)
}

/// Alice's lock on A for Bob, then Bob's on B for Alice citing it: the two escrow ids.
async fn locked_both_ways(
    a: &Net,
    b: &Net,
    secret: &EscrowSecret,
    (a_within, b_within): (u64, u64),
) -> (EscrowId, EscrowId) {
    let (alice, bob) = (&a.payer, &b.payer);
    let (alice_wallet, _) = a.wallet("alice", Some(alice));
    let (bob_wallet, _) = b.wallet("bob", Some(bob));
    let on_a = escrow::lock(
        &alice_wallet,
        &a.client(),
        alice,
        LockTerms {
            payee: bob.account(),
            amount: cash(30),
            hash_lock: secret.hash_lock(),
            deadline_ms: escrow::unix_ms() + a_within,
            counterpart: Some(Counterpart {
                network: b.contract.id(),
                escrow: None,
                quote: None,
            }),
        },
    )
    .await
    .unwrap();
    let on_b = escrow::lock(
        &bob_wallet,
        &b.client(),
        bob,
        LockTerms {
            payee: alice.account(),
            amount: cash(25),
            hash_lock: secret.hash_lock(),
            deadline_ms: escrow::unix_ms() + b_within,
            counterpart: Some(Counterpart {
                network: a.contract.id(),
                escrow: Some(on_a.escrow),
                quote: None,
            }),
        },
    )
    .await
    .unwrap();
    (on_a.escrow, on_b.escrow)
}

/// Waits (up to 15 s) until a quorum of `net`'s validators report `escrow` claimed.
async fn claimed_on(net: &Net, escrow: EscrowId) -> bool {
    let client = net.client();
    for _ in 0..150 {
        let status = escrow::status(&client, &EscrowQuery::Id(escrow)).await;
        if status.claimed >= 3 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bs_validators_claim_on_a_for_the_maker_while_it_is_offline() {
    let (a, b) = two_networks().await;
    let (alice_wallet, _) = a.wallet("alice", Some(&a.payer));
    let secret = escrow::new_secret(&alice_wallet).unwrap();
    let (on_a, on_b) = locked_both_ways(&a, &b, &secret, (60_000, 30_000)).await;
    // From here Bob does nothing at all. Alice claims her side on B.
    let claimed = escrow::claim(&alice_wallet, &b.client(), on_b, secret)
        .await
        .unwrap();
    assert_eq!(claimed.acknowledged, 4);
    assert_eq!(b.balance(&a.payer.account()).await, 25_000_000);
    // B's validators hand the secret to A's: Bob's escrow there is claimed for him.
    assert!(claimed_on(&a, on_a).await, "the notice never claimed on A");
    assert_eq!(a.balance(&b.payer.account()).await, 30_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_claim_certificate_does_not_let_the_payer_refund_on_a() {
    let (a, b) = two_networks().await;
    let (alice_wallet, _) = a.wallet("alice", Some(&a.payer));
    let secret = escrow::new_secret(&alice_wallet).unwrap();
    let (on_a, on_b) = locked_both_ways(&a, &b, &secret, (3_000, 1_500)).await;
    // Alice gathers B's votes for her claim and keeps the certificate to herself.
    let claim = SignedOrder::unsigned(Order::EscrowClaim(EscrowClaim {
        escrow: on_b,
        secret,
    }));
    let withheld = b.client().certify_held(&claim).await.unwrap();
    assert_eq!(withheld.votes.len(), 4);
    // After A's deadline (plus its 200 ms skew bound) she asks A for her money back.
    tokio::time::sleep(Duration::from_millis(3_400)).await;
    let refused = escrow::refund(&alice_wallet, &a.client(), on_a)
        .await
        .unwrap_err();
    let closed = matches!(&refused, OpError::Client(ClientError::NoQuorum { reasons, .. })
        if reasons.contains(&format!("{:?}", ErrorCode::EscrowClosed)));
    assert!(closed, "{refused}");
    // The secret her votes published reached A in time: Bob was paid there.
    assert!(claimed_on(&a, on_a).await);
    assert_eq!(a.balance(&b.payer.account()).await, 30_000_000);
    assert_eq!(a.balance(&a.payer.account()).await, 970_000_000);
    let status = escrow::status(
        &QuorumClient::new(a.contract.clone(), Duration::from_secs(2)).unwrap(),
        &EscrowQuery::HashLock(secret.hash_lock()),
    )
    .await;
    assert_eq!(status.secret, Some(secret));
}

/// Alice's claim on B reaches only two of B's four validators before B's deadline (she sent
/// it late, or the network lost the rest). Two votes are no certificate, and after the
/// deadline neither the claim nor Bob's refund can gather three: B's escrow is frozen, and
/// only Alice, the late claimant, loses by it. The two votes published the secret, so B's
/// validators still claim Bob's escrow on A for him, and Alice's refund there is refused.
/// Never both certificates on either network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_split_at_the_deadline_hurts_only_the_late_claimant() {
    let (a, b) = two_networks().await;
    let (alice_wallet, _) = a.wallet("alice", Some(&a.payer));
    let (bob_wallet, _) = b.wallet("bob", Some(&b.payer));
    let secret = escrow::new_secret(&alice_wallet).unwrap();
    let (on_a, on_b) = locked_both_ways(&a, &b, &secret, (4_000, 1_500)).await;
    let claim = SignedOrder::unsigned(Order::EscrowClaim(EscrowClaim {
        escrow: on_b,
        secret,
    }));
    for i in 0..2 {
        let answer = b.pay_at(i, &claim).await;
        assert!(
            matches!(answer, tally_proto::Packet::RespPay(_)),
            "validator {i} should vote the claim: {answer:?}"
        );
    }
    // Past B's deadline and its skew bound: the claim can gather no more votes, the refund
    // no more than the two validators that hold none.
    tokio::time::sleep(Duration::from_millis(1_900)).await;
    assert!(
        escrow::claim(&alice_wallet, &b.client(), on_b, secret)
            .await
            .is_err()
    );
    assert!(
        escrow::refund(&bob_wallet, &b.client(), on_b)
            .await
            .is_err()
    );
    // The votes published the secret: Bob is paid on A without doing anything.
    assert!(claimed_on(&a, on_a).await, "the notice never claimed on A");
    assert_eq!(a.balance(&b.payer.account()).await, 30_000_000);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        escrow::refund(&alice_wallet, &a.client(), on_a)
            .await
            .is_err()
    );
    // B: neither settlement certified anywhere; Alice has nothing on B, Bob's 25 stay locked.
    let status = escrow::status(&b.client(), &EscrowQuery::Id(on_b)).await;
    assert_eq!((status.claimed, status.refunded), (0, 0), "{status:?}");
    assert_eq!(status.claim_votes, 2, "{status:?}");
    assert_eq!(b.balance(&a.payer.account()).await, 0);
    assert_eq!(b.balance(&b.payer.account()).await, 975_000_000);
}
