//! A daemon whose storage fails stops (crash-only) and a restart resumes from the last
//! durable state: what the validator acknowledged survives, what it could not record was
//! never acknowledged. The disk refuses writes for real: the process's file size limit
//! (`RLIMIT_FSIZE`) is lowered under a running node, so every write to its database fails
//! (`EFBIG`), as on a full disk.
//!
//! The limit holds for the whole process, so the tests of this file take turns
//! ([`DISK`]) and no other test may live here.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{free_port, wait_until};
use rustix::process::{Resource, Rlimit, Signal, getrlimit, setrlimit};
use tally_core::{Amount, Order, SecretKey, SignedOrder, Transfer};
use tally_node::pow::PowNode;
use tally_node::{Node, NodeConfig};
use tally_proto::{Connection, ErrorCode, Limits, Packet};

/// Held while a test lowers the file size limit.
static DISK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The file size limit lowered to one byte until dropped: every write past the first byte
/// of any file fails, and the kernel's `SIGXFSZ` is caught rather than fatal.
struct FullDisk {
    before: Rlimit,
    _sigxfsz: tokio::signal::unix::Signal,
}

impl FullDisk {
    fn now() -> FullDisk {
        let sigxfsz = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(
            Signal::XFSZ.as_raw(),
        ))
        .unwrap();
        let before = getrlimit(Resource::Fsize);
        setrlimit(
            Resource::Fsize,
            Rlimit {
                current: Some(1),
                maximum: before.maximum,
            },
        )
        .unwrap();
        FullDisk {
            before,
            _sigxfsz: sigxfsz,
        }
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = setrlimit(Resource::Fsize, self.before);
    }
}

fn transfer(payer: &SecretKey, recipient: u8, network: &tally_core::NetworkId) -> Packet {
    Packet::ReqPay(SignedOrder::sign(
        Order::Transfer(Transfer {
            sender: payer.account(),
            recipient: SecretKey::from_bytes([recipient; 32]).account(),
            amount: Amount::from_cash(1).unwrap(),
            sequence: 0,
        }),
        payer,
        network,
    ))
}

fn error_code(answer: &Packet) -> Option<ErrorCode> {
    match answer {
        Packet::Error(error) => Some(error.code),
        _ => None,
    }
}

async fn connect(address: SocketAddr) -> Connection {
    Connection::connect(
        &address.to_string(),
        Limits::default(),
        Duration::from_secs(3),
    )
    .await
    .unwrap()
}

/// A validator whose commit fails answers `Internal` (no vote leaves), then stops as a
/// whole: `stopped()` resolves, its listener and connections close. Restarted, it still
/// holds the vote it gave before and nothing of the order it could not record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_whose_commit_fails_stops_and_resumes_from_what_was_durable() {
    let _turn = DISK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    let funded: Vec<SecretKey> = (0..2).map(|_| SecretKey::generate()).collect();
    // Only validator 0 runs; the others' addresses lead nowhere.
    let contract = common::quorum_contract(
        "storage-failure",
        &keys,
        (0..4).map(|_| free_port().to_string()),
        None,
        &funded,
        4,
    );
    let network = contract.id();
    let config = NodeConfig::new(
        contract,
        keys[0].clone(),
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("validator"),
    );
    let node = Node::start(config.clone()).await.unwrap();
    let address = node.address();
    let mut conn = connect(address).await;
    let acknowledged = conn.call(&transfer(&funded[0], 1, &network)).await.unwrap();
    assert!(
        matches!(acknowledged, Packet::RespPay(_)),
        "{acknowledged:?}"
    );

    let refused = {
        let _full = FullDisk::now();
        conn.call(&transfer(&funded[1], 2, &network)).await.unwrap()
    };
    assert_eq!(
        error_code(&refused),
        Some(ErrorCode::Internal),
        "no vote leaves a batch that is not durable: {refused:?}"
    );
    tokio::time::timeout(Duration::from_secs(10), node.stopped())
        .await
        .expect("the validator stops by itself");
    assert!(node.is_stopped());
    assert!(
        wait_until(|| async { tokio::net::TcpStream::connect(address).await.is_err() }).await,
        "it no longer listens"
    );
    let after = conn.call(&transfer(&funded[1], 3, &network)).await;
    assert!(
        !matches!(after, Ok(Packet::RespPay(_))),
        "nothing is voted after the failure: {after:?}"
    );
    node.stop().await;

    let node = Node::start(config).await.unwrap();
    let mut conn = connect(node.address()).await;
    // The vote given before the failure is durable: a conflicting order is refused.
    let conflicting = conn.call(&transfer(&funded[0], 4, &network)).await.unwrap();
    assert_eq!(
        error_code(&conflicting),
        Some(ErrorCode::Conflict),
        "{conflicting:?}"
    );
    // The order that could not be recorded left no lock: another order of the same payer
    // and sequence gets a vote, and no vote for the first one was ever sent.
    let other = conn.call(&transfer(&funded[1], 5, &network)).await.unwrap();
    assert!(matches!(other, Packet::RespPay(_)), "{other:?}");
    node.stop().await;
}

/// A miner whose chain commit fails stops by itself, and restarts at its last durable tip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_whose_commit_fails_stops_and_restarts_at_its_durable_tip() {
    let _turn = DISK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let contract = common::pow::contract(8, None, &[]);
    let mut config = common::pow::miner_config(&contract, dir.path());
    config.mine = true;
    let node = PowNode::start(config.clone()).await.unwrap();
    common::pow::eventually("a few blocks are mined", 30, || node.tip().height >= 2).await;
    let durable = {
        let _full = FullDisk::now();
        let stopped = tokio::time::timeout(Duration::from_secs(30), node.stopped()).await;
        let height = node.tip().height;
        stopped.expect("the miner stops by itself at its next block");
        height
    };
    assert!(node.is_stopped());
    node.stop().await;

    config.mine = false;
    let node = PowNode::start(config).await.unwrap();
    assert_eq!(
        node.tip().height,
        durable,
        "the tip it had stored before the failure, and nothing after"
    );
    node.stop().await;
}
