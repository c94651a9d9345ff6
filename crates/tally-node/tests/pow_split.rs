//! `Split` on a proof-of-work network over real TCP: a wallet pushes a split to a real
//! miner, which reports it pending (out for the sender, in for each recipient), refuses a
//! transfer for the same sequence and malformed splits with their reason, mines it, and
//! then answers every output's confirmed balance; the wallet's `send_split` pays several
//! recipients in one confirmed transaction.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use tally_chain::{Transaction, TxStatus};
use tally_core::{AccountId, Amount, IntroKey, Order, Payment, SecretKey, Split};
use tally_node::pow::PowNode;
use tally_proto::pow::WireLimits;
use tally_wallet::Wallet;
use tally_wallet::chain::{self as wallet_chain, Miners, Waiting};
use tally_wallet::miner::{self as client, MinerError as ClientError};

use common::pow::{cash, contract, eventually, miner_config, transfer};

/// Leading zero bits of the blocks: a few ms of hashing each.
const BITS: u32 = 12;

/// Turns `node`'s mining off and waits for its block in progress, failing the test (rather
/// than hanging it) if the mining thread has not let go within 60 s.
async fn stop_mining(node: &PowNode) {
    tokio::time::timeout(Duration::from_secs(60), node.stop_mining())
        .await
        .expect("the miner did not stop mining on request within 60 s");
}

fn split(
    from: &SecretKey,
    outputs: &[(AccountId, Amount)],
    net: tally_core::NetworkId,
) -> Transaction {
    Transaction::sign(
        Order::Split(Split {
            sender: from.account(),
            sequence: 0,
            outputs: outputs
                .iter()
                .map(|&(recipient, amount)| Payment { recipient, amount })
                .collect(),
        }),
        from,
        &net,
    )
}

async fn refused(address: &str, tx: &Transaction) -> String {
    match client::push_transaction(address, tx, WireLimits::default()).await {
        Err(ClientError::Rejected(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A split pushed to a miner is pending (out for the sender, in for each output), a
/// conflicting transfer, malformed splits and an introduction are refused with their
/// reason, and once mined every output's balance is confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_pushed_over_tcp_is_mined_and_every_output_is_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let alice = SecretKey::generate();
    let contract = contract(BITS, None, &[alice.account()]);
    let net = contract.id();
    let node = PowNode::start(miner_config(&contract, dir.path()))
        .await
        .unwrap();
    let address = node.address().to_string();
    let limits = WireLimits::default();
    let outputs: Vec<(AccountId, Amount)> = (1..=3u64)
        .map(|i| (SecretKey::generate().account(), cash(i * 5)))
        .collect();

    // Malformed splits and an introduction are refused with their reason, nothing taken.
    let twice = split(&alice, &[outputs[0], outputs[0]], net);
    let reason = refused(&address, &twice).await;
    assert!(
        reason.contains("malformed split") && reason.contains("twice"),
        "{reason}"
    );
    let to_self = split(&alice, &[(alice.account(), cash(1))], net);
    assert!(refused(&address, &to_self).await.contains("its own sender"));
    let intro = Transaction::sign(
        IntroKey {
            account: alice.account(),
            proof_of_work: 0,
        },
        &alice,
        &net,
    );
    assert!(refused(&address, &intro).await.contains("spends nothing"));

    let tx = split(&alice, &outputs, net);
    assert_eq!(
        client::push_transaction(&address, &tx, limits)
            .await
            .unwrap(),
        tx.id()
    );
    // A transfer for the same sequence conflicts with the pending split.
    let rival = transfer(&alice, outputs[0].0, cash(1), 0, net);
    assert!(refused(&address, &rival).await.contains("sequence 0"));
    let sender = client::account(&address, &alice.account(), limits)
        .await
        .unwrap();
    assert_eq!((sender.sequence, sender.next_sequence), (0, 1));
    assert_eq!(sender.pending_out, cash(30));
    for (account, amount) in &outputs {
        let seen = client::account(&address, account, limits).await.unwrap();
        assert_eq!((seen.balance, seen.pending_in), (Amount::ZERO, *amount));
    }

    node.set_mining(true);
    eventually("the split is confirmed", 30, || {
        matches!(
            node.with_chain(|c| c.transaction_status(&tx)),
            TxStatus::Confirmed { .. }
        )
    })
    .await;
    stop_mining(&node).await;

    let (status, _) = client::transaction_status(&address, &tx, limits)
        .await
        .unwrap();
    assert!(matches!(status, TxStatus::Confirmed { .. }), "{status:?}");
    let sender = client::account(&address, &alice.account(), limits)
        .await
        .unwrap();
    assert_eq!((sender.balance, sender.sequence), (cash(70), 1));
    assert_eq!(sender.pending_out, Amount::ZERO);
    let ledger = client::ledger(&address, None, 1000, limits).await.unwrap();
    for (account, amount) in &outputs {
        let seen = client::account(&address, account, limits).await.unwrap();
        assert_eq!((seen.balance, seen.pending_in), (*amount, Amount::ZERO));
        let row = ledger.accounts.iter().find(|a| a.account == *account);
        assert_eq!(row.map(|a| a.balance), Some(*amount));
    }
    let height = node.tip().height;
    assert_eq!(ledger.supply, cash(100 + 50 * height));
    node.stop().await;
}

/// The wallet's `send_split` pays several recipients in one transaction, confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallet_pays_several_recipients_in_one_confirmed_split() {
    let dir = tempfile::tempdir().unwrap();
    let mut wallet = Wallet::open(&dir.path().join("wallet")).unwrap();
    let alice = SecretKey::generate();
    wallet
        .add_key(Some(alice.clone()), Some("alice".into()))
        .unwrap();
    let contract = contract(BITS, None, &[alice.account()]);
    let mut config = miner_config(&contract, &dir.path().join("miner"));
    config.mine = true;
    let node = PowNode::start(config).await.unwrap();
    let address = node.address().to_string();
    let miners = Miners::at(contract.id(), vec![address.clone()], WireLimits::default());
    let payments: Vec<Payment> = [7, 11]
        .into_iter()
        .map(|n| Payment {
            recipient: SecretKey::generate().account(),
            amount: cash(n),
        })
        .collect();
    let waiting = Waiting {
        confirmations: 1,
        patience: Duration::from_secs(60),
    };

    // A malformed split is refused before anything is signed or journaled.
    let duplicate = vec![payments[0], payments[0]];
    let error = wallet_chain::send_split(&wallet, &miners, &alice, duplicate, waiting, &mut |_| {})
        .await
        .unwrap_err();
    assert!(error.to_string().contains("invalid split"), "{error}");
    assert_eq!(
        wallet_chain::journaled(&wallet, &alice.account()).unwrap(),
        None
    );

    let sent = wallet_chain::send_split(
        &wallet,
        &miners,
        &alice,
        payments.clone(),
        waiting,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(sent.receipt.confirmations >= 1);
    assert!(matches!(sent.receipt.order.order, Order::Split(_)));
    assert_eq!(
        wallet_chain::journaled(&wallet, &alice.account()).unwrap(),
        None
    );
    for payment in &payments {
        let seen = client::account(&address, &payment.recipient, WireLimits::default())
            .await
            .unwrap();
        assert_eq!(seen.balance, payment.amount);
    }
    let state = client::account(&address, &alice.account(), WireLimits::default())
        .await
        .unwrap();
    assert_eq!((state.balance, state.sequence), (cash(82), 1));
    node.stop().await;
}
