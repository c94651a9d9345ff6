//! What one host can make a validator spend, over real TCP: a stranger on 127.0.0.2 abuses
//! a one-validator network on 127.0.0.1 while an honest wallet on 127.0.0.1 pays. Each test
//! names the hole an outside probe found and fails without its fix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tally_core::{NetworkContract, SecretKey};
use tally_node::server::NodeListeners;
use tally_node::{Node, NodeConfig};
use tally_proto::{ErrorCode, Hello, LedgerRequest, Packet, encode_frame};
use tally_wallet::{QuorumClient, Wallet, ops};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Where the stranger connects from: another address than the committee's.
const STRANGER: [u8; 4] = [127, 0, 0, 2];

struct OneValidator {
    node: Node,
    contract: NetworkContract,
    funded: Vec<SecretKey>,
    _dir: tempfile::TempDir,
}

impl OneValidator {
    /// A one-validator network whose genesis funds `funded` accounts, with `tune` applied
    /// to the validator's config.
    async fn start(funded: usize, tune: impl FnOnce(&mut NodeConfig)) -> OneValidator {
        let key = SecretKey::generate();
        let node_listener = common::bound_listener();
        let rpc_listener = common::bound_listener();
        let address = node_listener.local_addr().unwrap();
        let funded: Vec<SecretKey> = (0..funded).map(|_| SecretKey::generate()).collect();
        let contract = common::quorum_contract(
            "abuse",
            std::slice::from_ref(&key),
            [address.to_string()],
            None,
            &funded,
            4,
        );
        let dir = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::new(contract.clone(), key, address, dir.path().join("v"));
        config.rpc = Some(rpc_listener.local_addr().unwrap());
        tune(&mut config);
        let node = Node::start_with_listeners(
            config,
            NodeListeners {
                node: Some(node_listener),
                rpc: Some(rpc_listener),
            },
        )
        .await
        .unwrap();
        OneValidator {
            node,
            contract,
            funded,
            _dir: dir,
        }
    }

    /// Pays `count` payments one at a time from the first funded account, as an honest
    /// wallet on 127.0.0.1 would; each must be certified.
    async fn honest_payments(&self, count: usize) {
        let wallet_dir = tempfile::tempdir().unwrap();
        let wallet = Wallet::open(wallet_dir.path()).unwrap();
        let client = QuorumClient::new(self.contract.clone(), Duration::from_secs(5)).unwrap();
        let to = SecretKey::generate().account();
        for _ in 0..count {
            let receipt = ops::pay(
                &wallet,
                &client,
                &self.funded[0],
                to,
                "0.01".parse().unwrap(),
            )
            .await
            .unwrap();
            assert_eq!(receipt.acknowledged, 1);
        }
    }
}

/// A connection to `to` from the stranger's address.
async fn stranger(to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((STRANGER, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

fn frame(packet: &Packet) -> Vec<u8> {
    encode_frame(&serde_json::to_vec(packet).unwrap())
}

/// Reads until the server closes the connection (or `limit` passes); the bytes read and
/// whether it was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (usize, bool) {
    let mut total = 0;
    let mut buffer = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return (total, false),
            Ok(Ok(0) | Err(_)) => return (total, true),
            Ok(Ok(n)) => total += n,
        }
    }
}

/// The peak resident memory of this process (VmHWM), in bytes.
fn peak_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Hole: a client that pipelines full ledger pages and never reads its answers held up to
/// 4,096 finished answers per connection (1.2 GB from one connection). Now the validator
/// stops reading a connection whose answers are not taken, closes it once an answer waits
/// longer than the write timeout, and its memory stays flat while an honest wallet pays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_not_read_and_then_closed() {
    let net = OneValidator::start(1000, |config| {
        config.limits.write_timeout = Duration::from_secs(1);
    })
    .await;
    let before = peak_memory();
    let page = frame(&Packet::ReqLedger(LedgerRequest::default()));
    let mut attackers = Vec::new();
    for _ in 0..8 {
        let mut stream = stranger(net.node.address()).await;
        let page = page.clone();
        attackers.push(tokio::spawn(async move {
            // Full pages (about 150 KB of answer each) asked as fast as the socket takes
            // them, none read: once the validator stops reading, the writes stall, and
            // once it closes the connection they fail.
            let requests: Vec<u8> = page.repeat(10_000);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                match tokio::time::timeout_at(deadline, stream.write_all(&requests)).await {
                    Err(_) => return false,
                    Ok(Err(_)) => return true,
                    Ok(Ok(())) => {}
                }
            }
        }));
    }
    net.honest_payments(20).await;
    for attacker in attackers {
        assert!(
            attacker.await.unwrap(),
            "the validator closes a connection that does not read"
        );
    }
    let grown = peak_memory().saturating_sub(before);
    assert!(
        grown < 150 * 1024 * 1024,
        "peak memory grew by {} MB",
        grown >> 20
    );
    net.node.stop().await;
}

/// Hole: one host held ~1,030 idle connections per validator and locked every honest
/// wallet out. Now one address holds at most its share, is told why it is refused, and a
/// wallet on another address (and another stranger) still gets in and pays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_only_its_share_of_connections() {
    let net = OneValidator::start(1, |config| {
        config.admission.max_per_source = 4;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(stranger(net.node.address()).await);
    }
    let mut refused = stranger(net.node.address()).await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), refused.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let busy: Packet = serde_json::from_slice(answer.get(4..).unwrap()).unwrap();
    assert!(
        matches!(&busy, Packet::Error(e) if e.code == ErrorCode::Busy && e.reason.contains("address")),
        "{busy:?}"
    );
    // Another host is not held to the first one's count.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 3], 0))).unwrap();
    let mut other = socket.connect(net.node.address()).await.unwrap();
    other
        .write_all(&frame(&Packet::ReqLedger(LedgerRequest {
            accounts: Some(vec![net.funded[0].account()]),
            ..LedgerRequest::default()
        })))
        .await
        .unwrap();
    let mut length = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), other.read_exact(&mut length))
        .await
        .unwrap()
        .unwrap();
    net.honest_payments(3).await;
    drop(held);
    net.node.stop().await;
}

/// Hole: the idle timeout was per frame, so a `HELLO` a minute held a connection for
/// ever. Now a connection that sends nothing but `HELLO`s is closed after the idle
/// timeout, while one that keeps asking real questions stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_only_connections_are_closed_after_the_idle_timeout() {
    let net = OneValidator::start(1, |config| {
        config.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let hello = frame(&Packet::Hello(Hello {
        network: net.contract.id(),
        validator: None,
        address: None,
        certificates: None,
    }));
    let asking = frame(&Packet::ReqLedger(LedgerRequest {
        accounts: Some(vec![net.funded[0].account()]),
        ..LedgerRequest::default()
    }));
    let mut idle = stranger(net.node.address()).await;
    let mut busy = stranger(net.node.address()).await;
    let mut idle_closed = false;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if idle.write_all(&hello).await.is_err() {
            idle_closed = true;
        }
        busy.write_all(&asking).await.unwrap();
    }
    // Three seconds of HELLOs every 200 ms: the first was closed after one second.
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(2)).await;
    assert!(idle_closed || closed, "a HELLO-only connection was kept");
    let (_, busy_closed) = read_until_closed(&mut busy, Duration::from_millis(300)).await;
    assert!(
        !busy_closed,
        "a connection asking real questions was closed"
    );
    net.node.stop().await;
}

/// Hole: every malformed frame was answered and logged, for as long as the peer sent
/// them. Now each gets an error, and after a few the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_malformed_frames_is_cut_short() {
    let net = OneValidator::start(1, |_| {}).await;
    let mut stream = stranger(net.node.address()).await;
    // 20,000 zero-length frames.
    let _ = stream.write_all(&[0u8; 80_000]).await;
    let mut answers = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answers)).await;
    let mut count = 0;
    let mut rest = answers.as_slice();
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let packet: Packet = serde_json::from_slice(&rest[4..4 + len]).unwrap();
        assert!(matches!(packet, Packet::Error(ref e) if e.code == ErrorCode::Malformed));
        rest = &rest[4 + len..];
        count += 1;
    }
    assert_eq!(count, tally_node::connection::MAX_MALFORMED as usize);
    net.node.stop().await;
}

/// Hole: the control API had no connection cap and no header timeout; thousands of
/// half-sent requests held file descriptors for minutes. Now one address holds at most
/// its share, half-sent headers are dropped after the header timeout, and another client
/// is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_control_requests_neither_pile_up_nor_lock_others_out() {
    use tally_node::jsonrpc::{HEADER_TIMEOUT, MAX_CONNECTIONS_PER_SOURCE};
    let net = OneValidator::start(1, |_| {}).await;
    let rpc = net.node.rpc_address().unwrap();
    let mut half_sent = Vec::new();
    for _ in 0..MAX_CONNECTIONS_PER_SOURCE + 8 {
        let mut stream = stranger(rpc).await;
        let _ = stream
            .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
            .await;
        half_sent.push(stream);
    }
    // Those over the share are closed at once.
    let mut closed_at_once = 0;
    for stream in &mut half_sent {
        if read_until_closed(stream, Duration::from_millis(50)).await.1 {
            closed_at_once += 1;
        }
    }
    assert_eq!(closed_at_once, 8);
    // Meanwhile a client on another address is served.
    let status = common::control(rpc, "status").await;
    assert!(status["result"]["certificates"].is_u64(), "{status}");
    // And the half-sent ones are closed once the header timeout passes.
    for stream in &mut half_sent {
        let (_, closed) = read_until_closed(stream, HEADER_TIMEOUT + Duration::from_secs(3)).await;
        assert!(closed, "a half-sent request outlived the header timeout");
    }
    net.node.stop().await;
}
