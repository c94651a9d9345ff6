//! A lock slot split for real: the owner of an account signs two different transfers for
//! one sequence and sends each to two of four validators (real TCP, real redb files).
//! What is protected: `balance` reports the slot as split, naming both orders and their
//! votes, where before it showed nothing wrong; a payment from the account is refused in
//! words (the slot is frozen), not retried.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Net, cash};
use tally_core::{Order, SecretKey, SignedOrder, Transfer};
use tally_proto::Packet;
use tally_wallet::views::{self, NextSlot};
use tally_wallet::{ClientError, QuorumClient, Wallet, ops};

/// `order` sent straight to validators `which`, each of which votes for it.
async fn vote_at(net: &Net, order: &SignedOrder, which: std::ops::Range<usize>) {
    for i in which {
        assert!(matches!(net.pay_at(i, order).await, Packet::RespPay(_)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_slot_is_reported_with_both_orders() {
    let net = Net::start(Duration::from_millis(200)).await;
    let client = net.client();
    let payer = net.payer.account();
    let before = views::balance(&client, &payer).await.unwrap();
    assert_eq!(before.next_slot, NextSlot::Free);

    let transfer = |to: &SecretKey| {
        SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: payer,
                recipient: to.account(),
                amount: cash(1),
                sequence: 0,
            }),
            &net.payer,
            &net.contract.id(),
        )
    };
    let (one, two) = (
        transfer(&SecretKey::generate()),
        transfer(&SecretKey::generate()),
    );
    vote_at(&net, &one, 0..1).await;
    let voting = views::balance(&client, &payer).await.unwrap();
    assert_eq!(
        voting.next_slot,
        NextSlot::Voting {
            order: one.order.digest(&net.contract.id()),
            votes: 1
        }
    );
    vote_at(&net, &one, 1..2).await;
    vote_at(&net, &two, 2..4).await;

    let split = views::balance(&client, &payer).await.unwrap();
    let NextSlot::Split { orders } = &split.next_slot else {
        panic!("{:?}", split.next_slot);
    };
    let mut digests: Vec<_> = orders.iter().map(|(d, votes)| (*d, *votes)).collect();
    digests.sort();
    let mut expected = vec![
        (one.order.digest(&net.contract.id()), 2),
        (two.order.digest(&net.contract.id()), 2),
    ];
    expected.sort();
    assert_eq!(digests, expected);

    // A payment from the split account gets no certificate.
    let dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::open(dir.path()).unwrap();
    let refused = ops::pay(
        &wallet,
        &client,
        &net.payer,
        SecretKey::generate().account(),
        cash(1),
    )
    .await;
    match refused {
        Err(ops::OpError::SlotFrozen { account, orders }) => {
            assert_eq!(account, payer);
            assert_eq!(orders.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    net.shutdown().await;
}

/// What is protected (DESIGN §3, prevention): another copy of the key signed an order for
/// the account's next slot and left it with two votes of four (it stopped, say). A wallet
/// that never journaled that order does not sign a second one for the slot, which would
/// split it: it learns the order from the validators (`REQ_HELD_ORDER`), finishes it, and
/// pays at the following slot. Both payments are applied, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_finishes_the_order_another_copy_left_in_flight() {
    let net = Net::start(Duration::from_millis(200)).await;
    let client = net.client();
    let payer = net.payer.account();
    let (first, second) = (SecretKey::generate(), SecretKey::generate());
    let in_flight = SignedOrder::sign(
        Order::Transfer(Transfer {
            sender: payer,
            recipient: first.account(),
            amount: cash(1),
            sequence: 0,
        }),
        &net.payer,
        &net.contract.id(),
    );
    vote_at(&net, &in_flight, 0..2).await;

    let dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::open(dir.path()).unwrap();
    let receipt = ops::pay(&wallet, &client, &net.payer, second.account(), cash(2))
        .await
        .unwrap();
    let finished = receipt
        .finished_pending
        .expect("the other copy's order first");
    assert_eq!(finished.order, in_flight.order);
    assert_eq!(receipt.certificate.order.sequence(), Some(1));

    let seen = views::balance(&client, &payer).await.unwrap();
    assert_eq!(seen.next_slot, NextSlot::Free);
    for (recipient, amount) in [(first, cash(1)), (second, cash(2))] {
        let got = views::balance(&client, &recipient.account()).await.unwrap();
        assert_eq!(got.balance, i128::from(amount.microcash()));
    }
    net.shutdown().await;
}

/// What is protected (the (f+1)-th highest sequence rule): a wallet reads an account's next
/// slot only from at least f+1 validators (2 of 4), for fewer could all be faulty ones
/// claiming the account is further on than it is, and the wallet would then sign for a
/// slot no honest validator votes in. With only one validator answering, `next_slot` and
/// `next_sequence` are errors (before, the one answer alone was taken), and a payment
/// fails before anything is signed: no order is left journaled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_slot_is_not_read_from_fewer_than_f_plus_one_validators() {
    let mut net = Net::start(Duration::from_millis(200)).await;
    let client = net.client();
    let payer = net.payer.account();

    // Two validators of four (f + 1) still vouch for the slot.
    for i in 2..4 {
        net.stop(i).await;
    }
    assert_eq!(client.next_slot(&payer).await.unwrap().sequence, 0);

    // One alone does not.
    net.stop(1).await;
    match client.next_slot(&payer).await {
        Err(ClientError::Unreachable(_)) => {}
        other => panic!("the slot read from one validator's word: {other:?}"),
    }
    match client.next_sequence(&payer).await {
        Err(ClientError::Unreachable(_)) => {}
        other => panic!("the sequence read from one validator's word: {other:?}"),
    }

    let dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::open(dir.path()).unwrap();
    let refused = ops::pay(
        &wallet,
        &client,
        &net.payer,
        SecretKey::generate().account(),
        cash(1),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(ops::OpError::Client(ClientError::Unreachable(_)))
        ),
        "{refused:?}"
    );
    assert!(
        wallet.pending(&payer).unwrap().is_none(),
        "an order was signed for a slot only one validator vouched for"
    );
    net.shutdown().await;
}

/// What is protected (DESIGN §3, a journaled order that lost its slot): two copies of one
/// key each signed an order for slot 0. Copy A journaled its order but no validator votes
/// for it; copy B's order holds the votes of the three validators other than the signer's
/// first voter, and that first voter is down. When A next pays, finishing its journaled
/// order gathers no quorum (the first voter does not answer, the other three hold their
/// votes for B's order): A finishes B's order instead (the validators hand it out) and
/// pays at slot 1 with the three live validators. Before, `pay` failed with that "no
/// quorum" and the account could not pay until the first voter came back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_order_that_lost_its_slot_gives_way_while_the_first_voter_is_down() {
    let mut net = Net::start(Duration::from_millis(200)).await;
    let payer = net.payer.account();
    let first = tally_core::first_voter(&payer, net.keys.len());
    let (key, network) = (net.payer.clone(), net.contract.id());
    let transfer = |to: &SecretKey, amount, sequence| {
        SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: payer,
                recipient: to.account(),
                amount,
                sequence,
            }),
            &key,
            &network,
        )
    };
    let (theirs_to, ours_to, paid_to) = (
        SecretKey::generate(),
        SecretKey::generate(),
        SecretKey::generate(),
    );
    let theirs = transfer(&theirs_to, cash(1), 0);
    let ours = transfer(&ours_to, cash(5), 0);

    net.stop(first).await;
    for i in (0..net.keys.len()).filter(|i| *i != first) {
        assert!(matches!(net.pay_at(i, &theirs).await, Packet::RespPay(_)));
    }
    let dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::open(dir.path()).unwrap();
    wallet.set_pending(&ours).unwrap();

    // A short timeout: the first voter is not waited on for long.
    let client = QuorumClient::new(net.contract.clone(), Duration::from_secs(1)).unwrap();
    assert_eq!(client.first_voter(&ours.order), Some(first));
    let receipt = match ops::pay(&wallet, &client, &net.payer, paid_to.account(), cash(2)).await {
        Ok(receipt) => receipt,
        Err(error) => panic!("the payment gave up on the slot: {error}"),
    };
    let finished = receipt
        .finished_pending
        .expect("the other copy's order finished first");
    assert_eq!(finished.order, theirs.order);
    assert_eq!(
        receipt.certificate.order,
        transfer(&paid_to, cash(2), 1).order
    );
    assert!(wallet.pending(&payer).unwrap().is_none());

    let seen = views::balance(&client, &payer).await.unwrap();
    assert_eq!(seen.next_sequence, 2);
    assert_eq!(seen.next_slot, NextSlot::Free);
    for (recipient, amount) in [(theirs_to, 1), (ours_to, 0), (paid_to, 2)] {
        let got = views::balance(&client, &recipient.account()).await.unwrap();
        assert_eq!(got.balance, i128::from(amount) * common::CASH);
    }
    net.shutdown().await;
}

/// What is protected (DESIGN §3, finishing a contested slot): another copy of the key left
/// two orders in slot 0, one voted by two validators that are not the signer's first
/// voter, the other by the first voter alone; the fourth validator holds no vote. A wallet
/// paying from the account finishes the most held order by asking every validator (the
/// fourth makes its quorum) and then pays. Before, it asked the most held order's first
/// voter alone, gave that order up at its refusal, and pushed the less held one instead:
/// the fourth validator voted for it, two votes against two, and the account froze.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contested_slot_is_won_by_its_most_held_order_not_split() {
    let net = Net::start(Duration::from_millis(200)).await;
    let payer = net.payer.account();
    let first = tally_core::first_voter(&payer, net.keys.len());
    let transfer = |to: &SecretKey, amount, sequence| {
        SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: payer,
                recipient: to.account(),
                amount,
                sequence,
            }),
            &net.payer,
            &net.contract.id(),
        )
    };
    let (most_to, least_to, paid_to) = (
        SecretKey::generate(),
        SecretKey::generate(),
        SecretKey::generate(),
    );
    let most_held = transfer(&most_to, cash(1), 0);
    let least_held = transfer(&least_to, cash(3), 0);
    let others: Vec<usize> = (0..net.keys.len()).filter(|i| *i != first).collect();
    for i in &others[..2] {
        assert!(matches!(
            net.pay_at(*i, &most_held).await,
            Packet::RespPay(_)
        ));
    }
    assert!(matches!(
        net.pay_at(first, &least_held).await,
        Packet::RespPay(_)
    ));

    let client = net.client();
    let dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::open(dir.path()).unwrap();
    let receipt = match ops::pay(&wallet, &client, &net.payer, paid_to.account(), cash(2)).await {
        Ok(receipt) => receipt,
        Err(error) => panic!("the slot was not won by its most held order: {error}"),
    };
    let finished = receipt
        .finished_pending
        .expect("the most held order finished first");
    assert_eq!(finished.order, most_held.order);
    assert_eq!(
        receipt.certificate.order,
        transfer(&paid_to, cash(2), 1).order
    );
    for (recipient, amount) in [(most_to, 1), (least_to, 0), (paid_to, 2)] {
        let got = views::balance(&client, &recipient.account()).await.unwrap();
        assert_eq!(got.balance, i128::from(amount) * common::CASH);
    }
    net.shutdown().await;
}
