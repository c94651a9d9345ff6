//! The LiveConnect transfer driven for real (DESIGN §7): a relay on 127.0.0.1, four
//! validators on real TCP with redb files, two wallets on disk, each side a task running
//! `tally_wallet::live::{send, receive}`. What is protected: the receiver ends with exactly
//! the amount, the sender loses exactly the amount, the receipt checks against the
//! contract, and a side killed mid-transfer and started again from its journal finishes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tally_core::{Amount, NetworkContract, SecretKey};
use tally_live::{CoinSummary, ReceiverOutcome, SenderOutcome, Timing};
use tally_proto::live::MessageNumber;
use tally_relay::{Relay, RelayConfig, RelayHandle};
use tally_wallet::coins::{self, CoinFolder, CoinStore, RandomKeys};
use tally_wallet::live::{self, ReceiveReport, SendReport, SendRequest, check_receipt};
use tally_wallet::{QuorumClient, Wallet};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

mod common;

use common::live::{banked, wait_for_file};

/// Four validators (the harness's: `payer` holds 1,000 cash at genesis) and a relay.
struct Net {
    validators: common::Net,
    contract: NetworkContract,
    payer: SecretKey,
    relay: Option<RelayHandle>,
    relay_address: SocketAddr,
    dir: PathBuf,
}

impl Net {
    async fn start() -> Net {
        let validators = common::Net::start(Duration::from_millis(200)).await;
        let relay = Relay::bind(RelayConfig::listening_on("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap()
            .spawn();
        Net {
            contract: validators.contract.clone(),
            payer: validators.payer.clone(),
            dir: validators.dir.path().to_path_buf(),
            validators,
            relay_address: relay.local_addr(),
            relay: Some(relay),
        }
    }

    /// Stops the relay (every connection drops) and starts a fresh one, with no rooms, on
    /// the same address `pause` later.
    async fn restart_relay(&mut self, pause: Duration) {
        if let Some(old) = self.relay.take() {
            old.shutdown().await.unwrap();
        }
        tokio::time::sleep(pause).await;
        self.relay = Some(
            Relay::bind(RelayConfig::listening_on(self.relay_address))
                .await
                .unwrap()
                .spawn(),
        );
    }

    fn client(&self) -> QuorumClient {
        QuorumClient::new(self.contract.clone(), Duration::from_secs(2)).unwrap()
    }

    fn wallet_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn store(&self, name: &str) -> CoinStore {
        CoinStore::open(&self.wallet_dir(name), self.contract.id()).unwrap()
    }

    async fn shutdown(self) {
        self.validators.shutdown().await;
        if let Some(relay) = self.relay {
            relay.shutdown().await.unwrap();
        }
    }
}

fn cash(n: u64) -> Amount {
    Amount::from_cash(n).unwrap()
}

/// Clocks short enough for a test.
fn timing() -> Timing {
    common::live::timing(12_000)
}

/// A send of 281 through the net's relay, its connection file in the net's folder.
fn send_281(net: &Net) -> (PathBuf, SendRequest) {
    let file = net.dir.join("connection.txt");
    let request = SendRequest {
        amount: cash(281),
        relay: net.relay_address.to_string(),
        connection_file: file.clone(),
        timing: timing(),
        cancel: None,
    };
    (file, request)
}

/// Starts the sender as a task; its steps come out of the channel.
fn spawn_send(
    net: &Net,
    wallet: &str,
    request: SendRequest,
    from: Option<SecretKey>,
) -> (JoinHandle<SendReport>, UnboundedReceiver<MessageNumber>) {
    let (dir, store) = (net.wallet_dir(wallet), net.store(wallet));
    common::live::spawn_send(dir, net.client(), store, request, from)
}

/// Starts the receiver as a task; its steps come out of the channel.
fn spawn_receive(
    net: &Net,
    wallet: &str,
    connection_file: &Path,
) -> (JoinHandle<ReceiveReport>, UnboundedReceiver<MessageNumber>) {
    let (dir, store) = (net.wallet_dir(wallet), net.store(wallet));
    common::live::spawn_receive(dir, net.client(), store, connection_file, timing())
}

/// Waits until `step` comes out of `steps`.
async fn reach(steps: &mut UnboundedReceiver<MessageNumber>, step: MessageNumber) {
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(n) = steps.recv().await {
            if n == step {
                return;
            }
        }
        panic!("the side finished before step {step:?}");
    })
    .await
    .expect("step reached in time");
}

/// The coins the sender's hidden wallet lists in `folder` for the transfer in `room`.
fn hidden(net: &Net, wallet: &str, room: &str, folder: CoinFolder) -> Vec<CoinSummary> {
    let dir = net
        .wallet_dir(wallet)
        .join("live")
        .join(room)
        .join("sender");
    CoinStore::open(&dir, net.contract.id())
        .unwrap()
        .list(folder)
        .unwrap()
        .iter()
        .map(|c| CoinSummary {
            account: c.account,
            denomination_cash: c.denomination.cash(),
        })
        .collect()
}

/// Alice holds 250 + 25 + 25 in coins; she has to make change to send 281.
async fn alice_with_300(net: &Net) {
    let alice = Wallet::open(&net.wallet_dir("alice")).unwrap();
    let store = net.store("alice");
    coins::withdraw(
        &alice,
        &net.client(),
        &store,
        &mut RandomKeys,
        &net.payer,
        cash(300),
    )
    .await
    .unwrap();
    assert_eq!(banked(&store), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_transfer_of_281_moves_exactly_281_and_the_receipt_checks() {
    let net = Net::start().await;
    alice_with_300(&net).await;
    let (file, request) = send_281(&net);
    let (sender, mut sender_steps) = spawn_send(&net, "alice", request, None);
    let connection = wait_for_file(&file).await;
    assert_eq!(connection.network, net.contract.id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the connection file is private");
    }
    let (receiver, _) = spawn_receive(&net, "bob", &file);
    let sent = tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .unwrap()
        .unwrap();
    let received = tokio::time::timeout(Duration::from_secs(30), receiver)
        .await
        .unwrap()
        .unwrap();

    let SenderOutcome::Delivered { receipt_b64 } = &sent.outcome else {
        panic!("not delivered: {:?}", sent.outcome);
    };
    assert!(
        matches!(
            &received.outcome,
            ReceiverOutcome::Received { announced, received, receipt_b64: r, .. }
                if *announced == cash(281) && *received == cash(281) && r == receipt_b64
        ),
        "{:?}",
        received.outcome
    );
    // Exactly 281 moved: alice keeps 19 of her 300, bob's Bank holds 281.
    assert_eq!(banked(&net.store("alice")), 19);
    assert_eq!(banked(&net.store("bob")), 281);
    // The receipt verifies against the contract and covers exactly the coins sent.
    let coins_sent = hidden(&net, "alice", &connection.room, CoinFolder::Sent);
    let client = net.client();
    let mut powned = check_receipt(
        receipt_b64,
        client.committee(),
        client.network(),
        &coins_sent,
    )
    .unwrap();
    let mut expected = coins_sent.clone();
    powned.sort();
    expected.sort();
    assert_eq!(powned, expected);
    assert_eq!(
        coins_sent.iter().map(|c| c.denomination_cash).sum::<u64>(),
        281
    );
    // The steps were reported in the protocol's order, ending with the confirmation.
    let mut steps = Vec::new();
    while let Ok(step) = sender_steps.try_recv() {
        steps.push(step.number());
    }
    assert_eq!(steps.first(), Some(&2), "{steps:?}");
    assert_eq!(steps.last(), Some(&19), "{steps:?}");
    // Each wallet lists the transfer, over.
    for (wallet, side) in [("alice", live::Side::Sender), ("bob", live::Side::Receiver)] {
        let listed = live::transfers(&net.wallet_dir(wallet)).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].room, connection.room);
        assert_eq!(listed[0].side, side);
        assert!(listed[0].finished);
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_killed_after_the_coins_arrive_resumes_from_its_journal_alone() {
    let net = Net::start().await;
    // Alice's Bank is empty: the coins are withdrawn from her account first.
    let (file, request) = send_281(&net);
    let (sender, _) = spawn_send(&net, "alice", request, Some(net.payer.clone()));
    let connection = wait_for_file(&file).await;
    let (receiver, mut steps) = spawn_receive(&net, "bob", &file);
    reach(&mut steps, MessageNumber::EncryptedCoins).await;
    receiver.abort();
    assert!(receiver.await.unwrap_err().is_cancelled());

    // The connection file is gone too: the journal's copy resumes the transfer.
    std::fs::remove_file(&file).unwrap();
    let bob = net.wallet_dir("bob");
    assert_eq!(live::resumable(&bob, "no-such-room").unwrap(), None);
    assert_eq!(
        live::resumable(&bob, "../escape").unwrap(),
        None,
        "another room, not a path"
    );
    let found = live::resumable(&bob, &connection.room).unwrap().unwrap();
    assert_eq!(found.side, live::Side::Receiver);
    let (receiver, _) = spawn_receive(&net, "bob", &found.connection_file);
    let received = tokio::time::timeout(Duration::from_secs(30), receiver)
        .await
        .unwrap()
        .unwrap();
    assert!(received.resumed);
    assert!(
        matches!(received.outcome, ReceiverOutcome::Received { received, .. } if received == cash(281)),
        "{:?}",
        received.outcome
    );
    let sent = tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(sent.outcome, SenderOutcome::Delivered { .. }),
        "{:?}",
        sent.outcome
    );
    assert_eq!(banked(&net.store("bob")), 281);
    assert_eq!(banked(&net.store("alice")), 0);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sender_killed_after_sending_the_coins_learns_the_receiver_powned() {
    let net = Net::start().await;
    alice_with_300(&net).await;
    let (file, request) = send_281(&net);
    let (sender, mut steps) = spawn_send(&net, "alice", request.clone(), None);
    wait_for_file(&file).await;
    let (receiver, _) = spawn_receive(&net, "bob", &file);
    reach(&mut steps, MessageNumber::EncryptedCoins).await;
    sender.abort();
    assert!(sender.await.unwrap_err().is_cancelled());
    // The killed transfer is listed, not finished, until it is resumed.
    let listed = live::transfers(&net.wallet_dir("alice")).unwrap();
    assert!(
        listed.len() == 1 && !listed[0].finished && listed[0].side == live::Side::Sender,
        "{listed:?}"
    );

    let (sender, _) = spawn_send(&net, "alice", request, None);
    let sent = tokio::time::timeout(Duration::from_secs(40), sender)
        .await
        .unwrap()
        .unwrap();
    assert!(sent.resumed);
    eprintln!("the restarted sender ended with {:?}", sent.outcome);
    // Either the receipt reached the restarted sender, or after the deadline it asked the
    // validators: both say the receiver powned everything, and nothing was taken back.
    match &sent.outcome {
        SenderOutcome::Delivered { .. } => {}
        SenderOutcome::Reclaimed {
            reclaimed,
            powned_by_receiver,
            ..
        } => {
            assert_eq!(*reclaimed, Amount::ZERO);
            assert_eq!(*powned_by_receiver, cash(281));
        }
        other => panic!("{other:?}"),
    }
    let received = tokio::time::timeout(Duration::from_secs(30), receiver)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(received.outcome, ReceiverOutcome::Received { received, .. } if received == cash(281)),
        "{:?}",
        received.outcome
    );
    assert_eq!(banked(&net.store("alice")), 19);
    assert_eq!(banked(&net.store("bob")), 281);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_that_fails_before_the_coins_leave_returns_them_to_the_bank() {
    let net = Net::start().await;
    alice_with_300(&net).await;
    let (file, request) = send_281(&net);
    let (sender, _) = spawn_send(&net, "alice", request, None);
    let connection = wait_for_file(&file).await;
    let (receiver, mut steps) = spawn_receive(&net, "bob", &file);
    // The receiver vanishes once the sender has begun preparing the coins (message 5).
    reach(&mut steps, MessageNumber::MakingChange).await;
    receiver.abort();
    let sent = tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .unwrap()
        .unwrap();
    eprintln!("the abandoned sender ended with {:?}", sent.outcome);
    match &sent.outcome {
        // Message 24 never left: the prepared coins come back from the hidden wallet.
        SenderOutcome::Kept { .. } => {}
        // (Had 13 slipped out before the abort, the coins left and came back by reclaim.)
        SenderOutcome::Reclaimed {
            reclaimed,
            powned_by_receiver,
            ..
        } => {
            assert_eq!(*reclaimed, cash(281));
            assert_eq!(*powned_by_receiver, Amount::ZERO);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(banked(&net.store("alice")), 300);
    assert_eq!(banked(&net.store("bob")), 0);
    for folder in CoinFolder::ALL {
        let left = hidden(&net, "alice", &connection.room, folder);
        assert!(
            folder == CoinFolder::Spent || left.is_empty(),
            "the hidden Sender wallet still holds {left:?} in {folder:?}"
        );
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sender_back_after_the_receiver_left_learns_from_the_validators() {
    let net = Net::start().await;
    alice_with_300(&net).await;
    let (file, request) = send_281(&net);
    let (sender, mut steps) = spawn_send(&net, "alice", request.clone(), None);
    wait_for_file(&file).await;
    let (receiver, _) = spawn_receive(&net, "bob", &file);
    reach(&mut steps, MessageNumber::EncryptedCoins).await;
    sender.abort();
    assert!(sender.await.unwrap_err().is_cancelled());
    // The receiver powns, sends the receipt to nobody, and gives up waiting for the
    // confirmation: the coins are its.
    let received = tokio::time::timeout(Duration::from_secs(30), receiver)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            received.outcome,
            ReceiverOutcome::Received { received, confirmed: false, .. } if received == cash(281)
        ),
        "{:?}",
        received.outcome
    );

    // The sender comes back to an empty room: it asks the validators, finds every coin
    // spent, takes the receiver's pown certificates from them as the receipt, checks it,
    // and is done well before the pown deadline, taking nothing back.
    let back = std::time::Instant::now();
    let (sender, _) = spawn_send(&net, "alice", request, None);
    let sent = tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&sent.outcome, SenderOutcome::Delivered { .. }),
        "{:?}",
        sent.outcome
    );
    assert!(
        back.elapsed() < Duration::from_millis(timing().pown_window_ms),
        "learned only at the deadline"
    );
    assert_eq!(banked(&net.store("alice")), 19);
    assert_eq!(banked(&net.store("bob")), 281);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coins_a_vanished_receiver_did_not_pown_are_powned_back_after_the_deadline() {
    let net = Net::start().await;
    alice_with_300(&net).await;
    let (file, request) = send_281(&net);
    let (sender, _) = spawn_send(&net, "alice", request, None);
    let connection = wait_for_file(&file).await;
    let (receiver, mut steps) = spawn_receive(&net, "bob", &file);
    reach(&mut steps, MessageNumber::EncryptedCoins).await;
    receiver.abort();
    let sent = tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .unwrap()
        .unwrap();
    let SenderOutcome::Reclaimed {
        reclaimed,
        powned_by_receiver,
        ..
    } = sent.outcome
    else {
        panic!("{:?}", sent.outcome);
    };
    // Whatever the receiver managed before it vanished is its; the rest came back.
    assert_eq!(reclaimed.checked_add(powned_by_receiver), Some(cash(281)));
    assert_eq!(
        banked(&net.store("alice")),
        19 + reclaimed.microcash() / 1_000_000
    );
    // The sent coins' old secrets are worthless now: each was powned by one side.
    let client = net.client();
    let sent_coins: Vec<_> = [CoinFolder::Spent, CoinFolder::Sent]
        .into_iter()
        .flat_map(|f| hidden(&net, "alice", &connection.room, f))
        .map(|c| {
            (
                c.account,
                tally_core::Denomination::from_cash(c.denomination_cash).unwrap(),
            )
        })
        .collect();
    let grades = coins::detect(&client, &sent_coins, &Default::default()).await;
    assert!(
        grades.iter().all(|d| d.grade == coins::Grade::Counterfeit),
        "{grades:?}"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_send_cancelled_before_anyone_joins_keeps_the_coins() {
    let net = Net::start().await;
    alice_with_300(&net).await;
    let (cancel, cancelled) = tokio::sync::watch::channel(false);
    let request = SendRequest {
        amount: cash(281),
        relay: net.relay_address.to_string(),
        connection_file: net.dir.join("connection.txt"),
        timing: timing(),
        cancel: Some(cancelled),
    };
    let (sender, _) = spawn_send(&net, "alice", request, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.send(true).unwrap();
    let sent = tokio::time::timeout(Duration::from_secs(10), sender)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sent.outcome,
        SenderOutcome::Kept {
            reason: tally_live::FailReason::Cancelled
        }
    );
    assert_eq!(banked(&net.store("alice")), 300);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_restart_in_the_middle_of_the_transfer_is_survived() {
    let mut net = Net::start().await;
    alice_with_300(&net).await;
    let (file, request) = send_281(&net);
    let (sender, _) = spawn_send(&net, "alice", request, None);
    wait_for_file(&file).await;
    let (receiver, mut steps) = spawn_receive(&net, "bob", &file);
    // Both connections drop once the coins are on their way; both sides join again when
    // the relay is back and re-send what the other may have missed.
    reach(&mut steps, MessageNumber::EncryptedCoins).await;
    net.restart_relay(Duration::from_millis(1_500)).await;
    let sent = tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .unwrap()
        .unwrap();
    let received = tokio::time::timeout(Duration::from_secs(30), receiver)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(sent.outcome, SenderOutcome::Delivered { .. }),
        "{:?}",
        sent.outcome
    );
    assert!(
        matches!(
            received.outcome,
            // The sender's confirmation came through the new relay.
            ReceiverOutcome::Received { received, confirmed: true, .. } if received == cash(281)
        ),
        "{:?}",
        received.outcome
    );
    assert_eq!(banked(&net.store("alice")), 19);
    assert_eq!(banked(&net.store("bob")), 281);
    net.shutdown().await;
}

/// The sender's hidden store for the transfer in `room`.
fn hidden_store(net: &Net, wallet: &str, room: &str) -> CoinStore {
    let dir = net
        .wallet_dir(wallet)
        .join("live")
        .join(room)
        .join("sender");
    CoinStore::open(&dir, net.contract.id()).unwrap()
}

/// The previous holder of a sent coin (the sender itself, which knows its secret) races
/// the receiver's pown with a conflicting order that two of the four validators vote
/// for. The receiver never counts that coin (it sees a foreign vote and signs nothing for
/// it); the sender ends the transfer naming it frozen; if the receiver's pown got there
/// first instead, the race is refused and the transfer completes. Either way no cash is
/// counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coin_raced_by_its_previous_holder_is_never_counted_twice() {
    use tally_core::{Order, SignedOrder, Transfer};

    let net = Net::start().await;
    alice_with_300(&net).await;
    let (file, request) = send_281(&net);
    let (sender, mut steps) = spawn_send(&net, "alice", request, None);
    let connection = wait_for_file(&file).await;
    let (receiver, _) = spawn_receive(&net, "bob", &file);
    reach(&mut steps, MessageNumber::EncryptingCoins).await;

    // The 250 is in the hidden wallet's Bank or, once sealed, its Export.
    let store = hidden_store(&net, "alice", &connection.room);
    let secret = loop {
        let found = [CoinFolder::Bank, CoinFolder::Export]
            .into_iter()
            .flat_map(|f| store.list(f).unwrap())
            .find(|c| c.denomination.cash() == 250);
        // Between listing and reading, sealing may move it: look again.
        if let Some(listed) = found
            && let Ok(coin) = store.read(&listed)
        {
            break coin.secret;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let race = SignedOrder::sign(
        Order::Transfer(Transfer {
            sender: secret.account(),
            recipient: SecretKey::generate().account(),
            amount: cash(250),
            sequence: 0,
        }),
        &secret,
        &net.contract.id(),
    );
    for i in 0..2 {
        // A validator already voting for the receiver's pown refuses: that is the race lost.
        net.validators.pay_at(i, &race).await;
    }

    let received = tokio::time::timeout(Duration::from_secs(40), receiver)
        .await
        .unwrap()
        .unwrap();
    let sent = tokio::time::timeout(Duration::from_secs(40), sender)
        .await
        .unwrap()
        .unwrap();
    let bob = banked(&net.store("bob"));
    let alice = banked(&net.store("alice"));
    match sent.outcome {
        SenderOutcome::Delivered { .. } => {
            eprintln!("the receiver's pown won the race");
            assert_eq!(bob, 281);
            assert_eq!(alice, 19);
        }
        SenderOutcome::Reclaimed {
            reclaimed,
            powned_by_receiver,
            frozen,
            ..
        } => {
            eprintln!("the race split the 250's slot");
            assert_eq!(frozen, cash(250), "{:?}", received.outcome);
            assert_eq!(powned_by_receiver, cash(31));
            assert_eq!(reclaimed, Amount::ZERO);
            assert_eq!(bob, 31, "the receiver counts only what it powned");
            assert!(
                matches!(received.outcome, ReceiverOutcome::Received { received, announced, .. } if received == cash(31) && announced == cash(281)),
                "{:?}",
                received.outcome
            );
            assert_eq!(alice, 19);
        }
        other => panic!("{other:?}"),
    }
    net.shutdown().await;
}
