//! Issue 3: "a node started with a tracker finds the other nodes through it".
//!
//! The contract's validator addresses are deliberately wrong (nothing listens there), so
//! every validator-to-validator and wallet-to-validator connection below can only have
//! been made at an address learned from the tracker: real TCP, a real tracker with its
//! redb file, four real validators.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bound_listener, wait_until};

use std::net::SocketAddr;
use std::time::Duration;

use tally_core::{AccountId, Amount, NetworkContract, SecretKey};
use tally_node::{Node, NodeConfig, TrackerSettings};
use tally_proto::LedgerRequest;
use tally_tracker::{Tracker, TrackerConfig, TrackerHandle};
use tally_wallet::{QuorumClient, TcpTransport, Wallet, ops};

/// The proof of work of `account` at this file's difficulty.
fn proof_at(account: &AccountId) -> u64 {
    common::proof(account, BITS)
}

const BITS: u32 = 6;

struct Net {
    contract: NetworkContract,
    keys: Vec<SecretKey>,
    nodes: Vec<Option<Node>>,
    tracker: Option<TrackerHandle>,
    dir: tempfile::TempDir,
    funded: Vec<SecretKey>,
}

impl Net {
    async fn start() -> Net {
        let dir = tempfile::tempdir().unwrap();
        // The tracker's address is part of the contract the tracker is given: the test
        // binds it first and hands the tracker the bound socket, so the port is never free
        // between. The validators bind port 0 themselves: nothing has to know their
        // addresses before they serve.
        let tracker_listener = bound_listener();
        let tracker_address = tracker_listener.local_addr().unwrap();
        tracker_listener.set_nonblocking(true).unwrap();
        let keys: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
        let funded: Vec<SecretKey> = (0..2).map(|_| SecretKey::generate()).collect();
        // Ports 1-4 of the loopback: refused at once, never a validator.
        let contract = common::quorum_contract(
            "discovery",
            &keys,
            (1..=4).map(|port| format!("127.0.0.1:{port}")),
            Some(tracker_address.to_string()),
            &funded,
            BITS,
        );
        let tracker = Tracker::with_listener(
            TrackerConfig::new(dir.path().join("tracker")).contract(contract.clone()),
            tokio::net::TcpListener::from_std(tracker_listener).unwrap(),
        )
        .await
        .unwrap()
        .spawn();
        let mut net = Net {
            contract,
            keys,
            nodes: Vec::new(),
            tracker: Some(tracker),
            dir,
            funded,
        };
        for i in 0..4 {
            let node = net.start_node(i).await;
            net.nodes.push(Some(node));
        }
        net
    }

    /// Validator `i` on a fresh port: only the tracker can tell the others where it is.
    async fn start_node(&self, i: usize) -> Node {
        let mut config = NodeConfig::new(
            self.contract.clone(),
            self.keys[i].clone(),
            "127.0.0.1:0".parse().unwrap(),
            self.dir.path().join(format!("validator-{i}")),
        );
        config.sync_interval = Duration::from_millis(100);
        let mut tracker = TrackerSettings::new(
            self.contract.tracker.clone().unwrap(),
            proof_at(&self.keys[i].account()),
        );
        tracker.retry = Duration::from_millis(100);
        tracker.interval = Duration::from_millis(300);
        config.tracker = Some(tracker);
        Node::start(config).await.unwrap()
    }

    fn address(&self, i: usize) -> SocketAddr {
        self.nodes[i].as_ref().unwrap().address()
    }

    /// Whether validator `i` knows every other running validator's current address.
    fn knows_everyone(&self, i: usize) -> bool {
        let Some(node) = &self.nodes[i] else {
            return false;
        };
        let learned = node.learned_peers();
        (0..4).filter(|j| *j != i).all(|j| {
            self.nodes[j]
                .as_ref()
                .is_none_or(|other| learned.contains(&(self.keys[j].account(), other.address())))
        })
    }

    async fn client(&self) -> QuorumClient {
        let mut transport = TcpTransport::new(self.contract.clone(), Duration::from_secs(3));
        let located = transport
            .locate(tally_tracker::ClientConfig::default())
            .await
            .unwrap();
        // A stopped validator stays listed until its entry expires: at least the running.
        assert!(
            located >= self.nodes.iter().filter(|n| n.is_some()).count(),
            "the tracker lists every running validator ({located} located)"
        );
        QuorumClient::with_transport(self.contract.clone(), Box::new(transport)).unwrap()
    }

    async fn shutdown(mut self) {
        for node in self.nodes.iter_mut() {
            if let Some(node) = node.take() {
                node.stop().await;
            }
        }
        if let Some(tracker) = self.tracker.take() {
            tracker.shutdown().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_with_a_tracker_finds_the_other_nodes_through_it() {
    let mut net = Net::start().await;
    assert!(
        wait_until(|| async { (0..4).all(|i| net.knows_everyone(i)) }).await,
        "every validator learned every other's address from the tracker"
    );

    // A wallet that has only the contract (whose addresses are wrong) pays through the
    // addresses the tracker gives it, while validator 3 is down.
    net.nodes[3].take().unwrap().stop().await;
    let wallet_dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::open(wallet_dir.path()).unwrap();
    let client = net.client().await;
    let (payer, payee) = (net.funded[0].clone(), net.funded[1].clone());
    for _ in 0..3 {
        ops::pay(
            &wallet,
            &client,
            &payer,
            payee.account(),
            Amount::from_cash(5).unwrap(),
        )
        .await
        .unwrap();
    }

    // Validator 3 comes back on another port: it registers its new address, the others
    // learn it, and it pulls the payments it missed from peers it found via the tracker.
    let node = net.start_node(3).await;
    net.nodes[3] = Some(node);
    let moved = net.address(3);
    assert!(
        wait_until(|| async { (0..4).all(|i| net.knows_everyone(i)) }).await,
        "the others learned validator 3's new address {moved}"
    );
    let client = net.client().await;
    let request = LedgerRequest {
        accounts: Some(vec![payee.account()]),
        ..LedgerRequest::default()
    };
    let caught_up = wait_until(|| async {
        client.ledger_all(&request).await.iter().all(|answer| {
            answer.result.as_ref().is_ok_and(|view| {
                view.ledger.get(&payee.account()).map(|e| e.balance) == Some(115_000_000)
            })
        })
    })
    .await;
    assert!(
        caught_up,
        "validator 3 caught up through peers found via the tracker"
    );
    net.shutdown().await;
}
