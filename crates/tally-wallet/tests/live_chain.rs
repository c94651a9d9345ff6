//! The LiveConnect transfer on a proof-of-work network: a real miner (in-process, over
//! TCP, its chain in files), a relay on 127.0.0.1, two wallets on disk, each side a task
//! running `tally_wallet::live::{send, receive}`. What is protected: the receiver ends
//! with exactly the amount, its powns buried in the chain; the sender's account pays
//! exactly the amount; the sender accepts the receipt only because the chain confirms it;
//! and a receiver stopped after the coins arrived finishes from its journal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::live::{banked, wait_for_file};

use tally_core::{AccountId, Amount, NetworkContract, SecretKey};
use tally_live::{ReceiverOutcome, SenderOutcome, Timing};
use tally_node::pow::PowNode;
use tally_proto::live::MessageNumber;
use tally_relay::{Relay, RelayConfig, RelayHandle};
use tally_wallet::Wallet;
use tally_wallet::coins::{ChainCoins, CoinStore};
use tally_wallet::live::{ReceiveReport, SendReport, SendRequest};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

fn cash(n: u64) -> Amount {
    Amount::from_cash(n).unwrap()
}

/// A mining node, a relay, and a folder for wallets; `alice` holds 1,000 cash.
struct Net {
    node: PowNode,
    relay: RelayHandle,
    contract: NetworkContract,
    alice: SecretKey,
    dir: tempfile::TempDir,
}

impl Net {
    async fn start() -> Net {
        let dir = tempfile::tempdir().unwrap();
        let alice = SecretKey::generate();
        let contract = common::chain::contract("live-chain-test", alice.account(), 1000);
        let node = common::chain::start_miner(&contract, &dir.path().join("miner")).await;
        let relay = Relay::bind(RelayConfig::listening_on("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap()
            .spawn();
        Net {
            node,
            relay,
            contract,
            alice,
            dir,
        }
    }

    fn chain(&self) -> ChainCoins {
        common::chain::coins(&self.contract, &self.node)
    }

    fn wallet_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store(&self, name: &str) -> CoinStore {
        CoinStore::open(&self.wallet_dir(name), self.contract.id()).unwrap()
    }

    async fn balance(&self, account: &AccountId) -> u64 {
        let (state, _) = self.chain().miners.account(account).await.unwrap();
        state.balance.microcash() / 1_000_000
    }
}

fn timing() -> Timing {
    common::live::timing(15_000)
}

fn spawn_send(net: &Net, request: SendRequest) -> JoinHandle<SendReport> {
    let dir = net.wallet_dir("alice");
    let mut wallet = Wallet::open(&dir).unwrap();
    wallet.add_key(Some(net.alice.clone()), None).unwrap();
    let from = Some(net.alice.clone());
    common::live::spawn_send(dir, net.chain(), net.store("alice"), request, from).0
}

fn spawn_receive(
    net: &Net,
    connection_file: &Path,
) -> (JoinHandle<ReceiveReport>, UnboundedReceiver<MessageNumber>) {
    let (dir, store) = (net.wallet_dir("bob"), net.store("bob"));
    common::live::spawn_receive(dir, net.chain(), store, connection_file, timing())
}

fn send_request(net: &Net) -> SendRequest {
    SendRequest {
        amount: cash(281),
        relay: net.relay.local_addr().to_string(),
        connection_file: net.dir.path().join("connection.txt"),
        timing: timing(),
        cancel: None,
    }
}

async fn check_delivered(net: &Net, sent: SendReport, received: ReceiveReport) {
    assert!(
        matches!(sent.outcome, SenderOutcome::Delivered { .. }),
        "{:?}",
        sent.outcome
    );
    assert!(
        matches!(received.outcome, ReceiverOutcome::Received { received, .. } if received == cash(281)),
        "{:?}",
        received.outcome
    );
    assert_eq!(banked(&net.store("bob")), 281);
    let alice_left = net.balance(&net.alice.account()).await;
    assert_eq!(
        alice_left + banked(&net.store("alice")) + banked(&net.store("bob")),
        1000,
        "the account paid exactly what the receiver holds"
    );
    // The sender kept the chain's word for the receiver's powns.
    let receipts = Wallet::open(&net.wallet_dir("alice"))
        .unwrap()
        .chain_receipts()
        .unwrap();
    assert!(receipts.len() >= 4, "{receipts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_transfer_of_281_on_a_proof_of_work_network_moves_exactly_281() {
    let net = Net::start().await;
    let request = send_request(&net);
    let sender = spawn_send(&net, request.clone());
    wait_for_file(&request.connection_file).await;
    let (receiver, _) = spawn_receive(&net, &request.connection_file);
    let received = tokio::time::timeout(Duration::from_secs(60), receiver)
        .await
        .unwrap()
        .unwrap();
    let sent = tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .unwrap()
        .unwrap();
    check_delivered(&net, sent, received).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_stopped_after_the_coins_arrive_on_a_chain_finishes_from_its_journal() {
    let net = Net::start().await;
    let request = send_request(&net);
    let sender = spawn_send(&net, request.clone());
    wait_for_file(&request.connection_file).await;
    let (receiver, mut steps) = spawn_receive(&net, &request.connection_file);
    while let Some(step) = steps.recv().await {
        if step == MessageNumber::EncryptedCoins {
            break;
        }
    }
    receiver.abort();
    assert!(receiver.await.unwrap_err().is_cancelled());
    let (receiver, _) = spawn_receive(&net, &request.connection_file);
    let received = tokio::time::timeout(Duration::from_secs(60), receiver)
        .await
        .unwrap()
        .unwrap();
    assert!(received.resumed);
    let sent = tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .unwrap()
        .unwrap();
    check_delivered(&net, sent, received).await;
}

/// A chain receipt proves nothing unless the chain holds it: a well-formed pown of a sent
/// coin that was never mined, a transaction that is not a pown, or one whose signature is
/// not the coin's are each refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_receipt_the_chain_does_not_confirm_is_refused() {
    use tally_core::{Denomination, Transaction, Transfer};
    use tally_live::CoinSummary;
    use tally_wallet::live::{LiveLedger, ReceiptError};

    let net = Net::start().await;
    let chain = net.chain();
    let coin = SecretKey::generate();
    let sent = [CoinSummary {
        account: coin.account(),
        denomination_cash: 25,
    }];
    // A transfer from the coin's account, signed by `key` (the coin's, or a forger's).
    let pown = |amount: Amount, key: &SecretKey| {
        Transaction::sign(
            Transfer {
                sender: coin.account(),
                recipient: SecretKey::generate().account(),
                amount,
                sequence: 0,
            },
            key,
            &net.contract.id(),
        )
    };
    let receipt = |tx: Transaction| tally_wallet::live::encode_receipt(&[tx]);

    let never_mined = pown(Denomination::TwentyFive.amount(), &coin);
    assert!(matches!(
        chain.check_receipt(&receipt(never_mined), &sent).await,
        Err(ReceiptError::Unverified { .. })
    ));
    let not_whole = pown(cash(24), &coin);
    assert!(matches!(
        chain.check_receipt(&receipt(not_whole), &sent).await,
        Err(ReceiptError::NotAPown { .. })
    ));
    let forged = pown(Denomination::TwentyFive.amount(), &SecretKey::generate());
    assert!(matches!(
        chain.check_receipt(&receipt(forged), &sent).await,
        Err(ReceiptError::Unverified { .. })
    ));
    assert!(matches!(
        chain.check_receipt("not base64!", &sent).await,
        Err(ReceiptError::NotBase64)
    ));
}
