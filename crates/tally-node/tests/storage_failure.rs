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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::wait_until;
use rustix::process::{Resource, Rlimit, Signal, getrlimit, setrlimit};
use tally_core::{Amount, BlockHash, NetworkId, Order, SecretKey, SignedOrder, Transfer};
use tally_node::pow::PowNode;
use tally_node::{Node, NodeConfig};
use tally_proto::pow::{self, Connect, PowPacket, WireLimits};
use tally_proto::{Connection, ErrorCode, Limits, Packet};
use tokio::task::JoinHandle;

/// What a watching peer heard: `(height, hash)` of announced blocks and tips, and whether
/// any was a `HASH_BROADCAST`.
type Heard = (Vec<(u64, BlockHash)>, bool);

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
    // Only validator 0 runs; the others' addresses lead nowhere (loopback ports 1-4
    // refuse at once: nothing unprivileged listens there).
    let contract = common::quorum_contract(
        "storage-failure",
        &keys,
        (1..=4).map(|port| format!("127.0.0.1:{port}")),
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

/// A peer that only listens to `node`: the `(height, hash)` of every block `node`
/// announced to it (`HASH_BROADCAST`) and of every tip its `CONNECT`s claimed, as they
/// arrive, and whether any was a `HASH_BROADCAST`; the task ends when the connection
/// closes.
async fn watch(node: &PowNode, network: NetworkId) -> (Arc<Mutex<Heard>>, JoinHandle<()>) {
    let stream = tokio::net::TcpStream::connect(node.address())
        .await
        .unwrap();
    let (mut reader, mut writer) = pow::split(stream, WireLimits::default());
    let tip = node.tip();
    writer
        .send(&PowPacket::Connect(Connect {
            network,
            listen: None,
            tip: tip.into(),
        }))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new((Vec::new(), false)));
    let heard = seen.clone();
    let task = tokio::spawn(async move {
        let _writer = writer;
        while let Ok(packet) = reader.recv().await {
            let mut heard = heard.lock().unwrap();
            match packet {
                PowPacket::HashBroadcast(b) => {
                    heard.0.push((b.block.header.height, b.hash));
                    heard.1 = true;
                }
                PowPacket::Connect(hello) => heard.0.push((hello.tip.height, hello.tip.hash)),
                _ => {}
            }
        }
    });
    (seen, task)
}

/// A miner whose chain commit fails stops by itself, and restarts at exactly its durable
/// tip (height and hash): what it had shown as its tip when it stopped, and nothing after.
/// Nothing it could not store was ever announced: every block it told a peer about
/// (`HASH_BROADCAST`, or the tip of its `CONNECT`) is on its chain after the restart, so a
/// miner that announced a block before (or without) committing it fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_whose_commit_fails_stops_and_restarts_at_its_durable_tip() {
    let _turn = DISK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let contract = common::pow::contract(8, None, &[]);
    let mut config = common::pow::miner_config(&contract, dir.path());
    config.mine = true;
    let node = PowNode::start(config.clone()).await.unwrap();
    let (seen, watcher) = watch(&node, contract.id()).await;
    common::pow::eventually("a few blocks are mined and announced", 30, || {
        node.tip().height >= 2 && seen.lock().unwrap().1
    })
    .await;
    let durable = {
        let _full = FullDisk::now();
        let stopped = tokio::time::timeout(Duration::from_secs(30), node.stopped()).await;
        let tip = node.tip();
        stopped.expect("the miner stops by itself at its next block");
        tip
    };
    assert!(node.is_stopped());
    node.stop().await;
    // Everything it sent before its connections closed has been read.
    tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .expect("the stopped miner closed its connection")
        .unwrap();

    config.mine = false;
    let node = PowNode::start(config).await.unwrap();
    let restarted = node.tip();
    assert_eq!(
        (restarted.height, restarted.hash),
        (durable.height, durable.hash),
        "the tip it had stored before the failure, and nothing after"
    );
    let announced = seen.lock().unwrap().0.clone();
    for (height, hash) in &announced {
        assert_eq!(
            node.with_chain(|chain| chain.hash_at(*height)),
            Some(*hash),
            "block {height} was announced but is not on the chain the disk kept \
             (durable tip {durable:?}; announced {announced:?})"
        );
    }
    node.stop().await;
}
