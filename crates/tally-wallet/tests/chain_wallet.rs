//! The proof-of-work wallet against a real miner (in-process, over TCP): a payment waits
//! for its confirmations and becomes a receipt; a transfer left journaled (never pushed, or
//! given up on) is finished first by the next `send`, pushed again if the miners lost it;
//! one whose sequence another transfer took is dropped; refusals leave nothing journaled.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tally_core::{
    AccountId, Allocation, Amount, Mode, NetworkContract, PowParams, SecretKey, Transfer,
};
use tally_core::{Transaction, TxStatus};
use tally_node::pow::{MinerConfig, PowNode};
use tally_proto::pow::WireLimits;
use tally_wallet::chain::{self, ChainWalletError, Miners, SendEvent, Waiting};
use tally_wallet::{Wallet, miner};

fn cash(n: u64) -> Amount {
    Amount::from_microcash(n * 1_000_000)
}

/// A network without a tracker where `funded` holds 100 cash; blocks take a few ms.
fn contract(funded: AccountId) -> NetworkContract {
    NetworkContract {
        name: "wallet-test".into(),
        mode: Mode::Pow,
        unit: "cash".into(),
        faucet: Amount::ZERO,
        intro_pow_bits: 4,
        validators: vec![],
        tracker: None,
        genesis: vec![Allocation {
            account: funded,
            amount: cash(100),
        }],
        pow: Some(PowParams {
            initial_bits: 14,
            block_time_ms: 1000,
            retarget_window: 0,
            block_reward: cash(50),
            max_block_transactions: 1000,
            max_block_bytes: 200_000,
        }),
        max_clock_skew_ms: None,
    }
}

/// One miner (mining or not) and a wallet holding the funded key.
struct Setup {
    _dir: tempfile::TempDir,
    node: PowNode,
    wallet: Wallet,
    alice: SecretKey,
    miners: Miners,
}

async fn setup(mine: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut wallet = Wallet::open(&dir.path().join("wallet")).unwrap();
    let alice = SecretKey::generate();
    wallet
        .add_key(Some(alice.clone()), Some("alice".into()))
        .unwrap();
    let contract = contract(alice.account());
    let (node, miners) = start_miner(&contract, &dir.path().join("miner"), mine).await;
    Setup {
        _dir: dir,
        node,
        wallet,
        alice,
        miners,
    }
}

/// A miner of `contract` keeping its chain in `data`, and the wallet's view of it.
async fn start_miner(
    contract: &NetworkContract,
    data: &std::path::Path,
    mine: bool,
) -> (PowNode, Miners) {
    let mut config = MinerConfig::new(
        contract.clone(),
        SecretKey::generate(),
        "127.0.0.1:0".parse().unwrap(),
        data.to_path_buf(),
    );
    config.mine = mine;
    config.threads = 1;
    config.template_refresh = Duration::from_millis(50);
    let node = PowNode::start(config).await.unwrap();
    let miners = Miners::at(
        contract.id(),
        vec![node.address().to_string()],
        WireLimits::default(),
    );
    (node, miners)
}

fn waiting(confirmations: u64, patience: Duration) -> Waiting {
    Waiting {
        confirmations,
        patience,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_waits_for_its_confirmations_and_becomes_a_receipt() {
    let s = setup(true).await;
    let bob = SecretKey::generate().account();
    let mut events = Vec::new();
    let sent = chain::send(
        &s.wallet,
        &s.miners,
        &s.alice,
        bob,
        Amount::from_microcash(1_504_000),
        waiting(2, Duration::from_secs(60)),
        &mut |event| events.push(event),
    )
    .await
    .unwrap();
    assert!(sent.receipt.confirmations >= 2 && sent.receipt.height >= 1);
    assert_eq!(sent.miner, s.node.address().to_string());
    assert!(sent.finished.is_none());
    assert!(sent.path.exists(), "the receipt is kept");
    assert_eq!(
        chain::journaled(&s.wallet, &s.alice.account()).unwrap(),
        None,
        "the journal is cleared"
    );
    assert!(matches!(
        events.first(),
        Some(SendEvent::Following { id, wanted: 2 }) if *id == sent.receipt.id
    ));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SendEvent::Progress { confirmations, .. } if *confirmations >= 2))
    );

    let bob_now = chain::balance(&s.wallet, &s.miners, &bob).await.unwrap();
    assert_eq!(bob_now.state.balance, Amount::from_microcash(1_504_000));
    assert_eq!(bob_now.in_flight, None);
    assert_eq!(bob_now.miner, s.node.address().to_string());

    // The ledger: every account at one tip, the supply exactly genesis plus the rewards.
    tokio::time::timeout(Duration::from_secs(60), s.node.stop_mining())
        .await
        .expect("the miner did not stop mining on request within 60 s");
    let ledger = chain::ledger(&s.miners).await.unwrap();
    assert!(ledger.complete);
    assert_eq!(
        ledger.supply,
        Amount::from_microcash(100_000_000 + 50_000_000 * ledger.tip.height)
    );
    assert!(
        ledger
            .accounts
            .iter()
            .any(|a| a.account == bob && a.balance == Amount::from_microcash(1_504_000))
    );
    let listed: u64 = ledger.accounts.iter().map(|a| a.balance.microcash()).sum();
    assert_eq!(listed, ledger.supply.microcash());

    // Probing: the miner answers with its tip; a closed port does not.
    let closed = closed_address();
    let both = Miners::at(
        *s.miners.network(),
        vec![s.node.address().to_string(), closed.to_string()],
        WireLimits::default(),
    );
    let probes = chain::probe_miners(&both, &bob).await;
    assert_eq!(probes[0].tip.as_ref().unwrap().hash, s.node.tip().hash);
    assert!(probes[1].tip.is_err());
    s.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_transfer_is_finished_first_and_pushed_again_if_it_was_lost() {
    let s = setup(false).await;
    let network = *s.miners.network();
    let bob = SecretKey::generate().account();

    // A wallet that crashed after journaling, before any miner saw the transfer.
    let lost = Transaction::sign(
        Transfer {
            sender: s.alice.account(),
            recipient: bob,
            amount: cash(1),
            sequence: 0,
        },
        &s.alice,
        &network,
    );
    s.wallet.set_pending(&lost.to_signed_order()).unwrap();

    // Patience runs out before a confirmation (nobody mines): the lost transfer was pushed
    // again, and stays journaled.
    let mut events = Vec::new();
    let error = chain::send(
        &s.wallet,
        &s.miners,
        &s.alice,
        bob,
        cash(2),
        waiting(1, Duration::ZERO),
        &mut |event| events.push(event),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, ChainWalletError::NotConfirmed { id, wanted: 1, .. } if id == lost.id()),
        "{error:?}"
    );
    assert!(events.contains(&SendEvent::PushedAgain { id: lost.id() }));
    assert_eq!(
        s.node.with_chain(|c| c.transaction_status(&lost)),
        TxStatus::Pending
    );
    assert_eq!(
        chain::journaled(&s.wallet, &s.alice.account()).unwrap(),
        Some(lost.clone())
    );
    let shown = chain::balance(&s.wallet, &s.miners, &s.alice.account())
        .await
        .unwrap();
    let in_flight = shown.in_flight.unwrap();
    assert_eq!((in_flight.id, in_flight.confirmations), (lost.id(), 0));
    assert_eq!(shown.state.pending_out, cash(1));

    // With a miner at work, the next send settles it first, then pays at the next sequence.
    s.node.set_mining(true);
    let sent = chain::send(
        &s.wallet,
        &s.miners,
        &s.alice,
        bob,
        cash(2),
        waiting(1, Duration::from_secs(60)),
        &mut |_| {},
    )
    .await
    .unwrap();
    let finished = sent.finished.unwrap();
    assert_eq!(finished.id, lost.id());
    assert_eq!(sent.receipt.order.order.signer(), Some(s.alice.account()));
    assert!(matches!(
        sent.receipt.order.order,
        tally_core::Order::Transfer(Transfer { sequence: 1, .. })
    ));
    let bob_now = chain::balance(&s.wallet, &s.miners, &bob).await.unwrap();
    assert_eq!(bob_now.state.balance, cash(3));
    s.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_transfer_whose_sequence_was_taken_is_dropped_and_refusals_leave_nothing() {
    let s = setup(true).await;
    let network = *s.miners.network();
    let (bob, carol) = (
        SecretKey::generate().account(),
        SecretKey::generate().account(),
    );
    let transfer = |recipient, amount| {
        Transaction::sign(
            Transfer {
                sender: s.alice.account(),
                recipient,
                amount,
                sequence: 0,
            },
            &s.alice,
            &network,
        )
    };
    // Journaled here, but another transfer with the same sequence, signed elsewhere, is
    // the one the chain confirms.
    let journaled = transfer(bob, cash(1));
    s.wallet.set_pending(&journaled.to_signed_order()).unwrap();
    let elsewhere = transfer(carol, cash(4));
    let address = s.node.address().to_string();
    miner::push_transaction(&address, &elsewhere, WireLimits::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !matches!(
        s.node.with_chain(|c| c.transaction_status(&elsewhere)),
        TxStatus::Confirmed { .. }
    ) {
        assert!(tokio::time::Instant::now() < deadline, "never confirmed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let sent = chain::send(
        &s.wallet,
        &s.miners,
        &s.alice,
        bob,
        cash(2),
        waiting(1, Duration::from_secs(60)),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(sent.finished.is_none(), "the stale transfer is dropped");
    assert!(matches!(
        sent.receipt.order.order,
        tally_core::Order::Transfer(Transfer { sequence: 1, .. })
    ));

    // Refused before anything is signed: nothing is journaled.
    let overdraft = chain::send(
        &s.wallet,
        &s.miners,
        &s.alice,
        bob,
        cash(1_000),
        waiting(1, Duration::from_secs(1)),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(overdraft, ChainWalletError::InsufficientFunds { amount, .. } if amount == cash(1_000)),
        "{overdraft:?}"
    );
    assert!(
        overdraft
            .to_string()
            .contains("not enough to pay 1000 cash")
    );
    for (recipient, amount) in [(s.alice.account(), cash(1)), (bob, Amount::ZERO)] {
        let refused = chain::send(
            &s.wallet,
            &s.miners,
            &s.alice,
            recipient,
            amount,
            waiting(1, Duration::from_secs(1)),
            &mut |_| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                refused,
                ChainWalletError::SelfPayment | ChainWalletError::ZeroAmount
            ),
            "{refused:?}"
        );
    }
    assert_eq!(
        chain::journaled(&s.wallet, &s.alice.account()).unwrap(),
        None
    );

    // No miner answers: every address is named in the error.
    let nobody = Miners::at(
        network,
        vec![closed_address().to_string()],
        WireLimits {
            connect_timeout: Duration::from_secs(1),
            ..WireLimits::default()
        },
    );
    let error = chain::balance(&s.wallet, &nobody, &bob).await.unwrap_err();
    assert!(
        matches!(&error, ChainWalletError::NoMinerAnswered(reasons) if reasons.len() == 1),
        "{error:?}"
    );
    s.node.stop().await;
}

/// Confirmations are not finality: a chain can lose a receipted transfer (a
/// reorganisation deeper than its confirmations, then the miners that held it in their
/// mempools restart). Here the network's only miner loses its whole chain and a new one
/// starts from the genesis. The next `send` must send the receipted transfer again first
/// and sign the new one after it; signing the new one at the sequence the chain expects
/// (the old behaviour) would reuse the receipted payment's sequence, so bob would never be
/// paid although alice holds a receipt saying he was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipted_transfer_the_chain_lost_is_sent_again_before_a_new_one() {
    let s = setup(true).await;
    let bob = SecretKey::generate().account();
    let carol = SecretKey::generate().account();
    let first = chain::send(
        &s.wallet,
        &s.miners,
        &s.alice,
        bob,
        cash(1),
        waiting(1, Duration::from_secs(60)),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(first.restored.is_empty());
    s.node.stop().await;

    // The chain that held it is gone; a new miner mines the same network from its genesis.
    let (node, miners) = start_miner(
        &contract(s.alice.account()),
        &s._dir.path().join("another-miner"),
        true,
    )
    .await;
    assert_eq!(
        node.with_chain(|c| c.account(&s.alice.account()).next_sequence),
        0
    );
    let mut events = Vec::new();
    let second = chain::send(
        &s.wallet,
        &miners,
        &s.alice,
        carol,
        cash(2),
        waiting(1, Duration::from_secs(60)),
        &mut |event| events.push(event),
    )
    .await
    .unwrap();
    assert_eq!(
        second.restored.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![first.receipt.id]
    );
    assert!(events.contains(&SendEvent::Restoring {
        id: first.receipt.id,
        sequence: 0
    }));
    // Both payments happened, in order, each once; the receipt of the first was renewed.
    let (bob_paid, carol_paid, alice_next) = node.with_chain(|c| {
        (
            c.account(&bob).balance,
            c.account(&carol).balance,
            c.account(&s.alice.account()).next_sequence,
        )
    });
    assert_eq!((bob_paid, carol_paid, alice_next), (cash(1), cash(2), 2));
    assert_eq!(second.receipt.order.order.sequence(), Some(1));
    let renewed = s.wallet.chain_receipt(&first.receipt.id).unwrap().unwrap();
    assert!(renewed.confirmations >= 1);
    node.stop().await;
}

/// A loopback address nothing listens on: port 1, which no test binds (it needs
/// privileges), unlike a port picked free, which another process may take and serve on.
fn closed_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1))
}
