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
use tally_wallet::{Wallet, ops};

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
