//! Abuse of a miner over real TCP by hand-driven peers: `SEND_REQUEST` floods, batches of
//! blocks nobody asked for, bursts of connections beyond the limits, and gossip that must
//! be retried once the tip moves. Each test says the behaviour it protects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tally_chain::{Chain, ChainConfig, Transaction, TxStatus};
use tally_core::{AccountId, Amount, NetworkContract, NetworkId, SecretKey};
use tally_node::pow::PowNode;
use tally_node::pow::config::BlockRequestLimits;
use tally_proto::pow::{
    self, Connect, HashBroadcast, PowPacket, ReceiveBlock, ReqAccount, ReqTxStatus, SendRequest,
    Tip, TransactionGossip, WireLimits, WireReader, WireWriter,
};

use common::pow::{cash, eventually, miner_config, pregenerate, reseal, transfer};

/// A `pow` network without tracker where `funded` hold 100 cash each.
fn contract(bits: u32, funded: &[AccountId]) -> NetworkContract {
    common::pow::contract(bits, None, funded)
}

/// A hand-driven peer on one TCP connection.
struct RawPeer {
    reader: WireReader,
    writer: WireWriter,
}

/// What the node did with a connection: kept it (answered `CONNECT`) or closed it.
#[derive(Debug, PartialEq, Eq)]
enum Greeting {
    Answered(Box<PowPacket>),
    Closed,
}

impl RawPeer {
    /// A raw connection to `node` from `local_ip`.
    async fn open(node: &PowNode, local_ip: &str) -> RawPeer {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(format!("{local_ip}:0").parse::<SocketAddr>().unwrap())
            .unwrap();
        let stream = socket.connect(node.address()).await.unwrap();
        let (reader, writer) = pow::split(stream, WireLimits::default());
        RawPeer { reader, writer }
    }

    /// `n` raw connections from 127.0.0.1, all connected (their handshakes done, waiting
    /// in the listener's backlog) before this task yields: on a current-thread runtime the
    /// node then accepts them in one burst, before any connection task runs.
    fn burst(node: &PowNode, n: usize) -> Vec<RawPeer> {
        let streams: Vec<std::net::TcpStream> = (0..n)
            .map(|_| std::net::TcpStream::connect(node.address()).unwrap())
            .collect();
        streams
            .into_iter()
            .map(|stream| {
                stream.set_nonblocking(true).unwrap();
                let stream = tokio::net::TcpStream::from_std(stream).unwrap();
                let (reader, writer) = pow::split(stream, WireLimits::default());
                RawPeer { reader, writer }
            })
            .collect()
    }

    /// A "miner" on 127.0.0.1 that says it listens at `listen` (its identity on loopback)
    /// and has `tip`; returns the node's first answer.
    async fn connect(
        node: &PowNode,
        net: NetworkId,
        tip: Tip,
        listen: &str,
    ) -> (RawPeer, PowPacket) {
        let mut peer = RawPeer::open(node, "127.0.0.1").await;
        let Greeting::Answered(first) = peer.hello(net, tip, listen).await else {
            panic!("the node closed the connection of {listen}");
        };
        (peer, *first)
    }

    /// Sends `CONNECT` and waits (at most 10 s, a hang guard) for the first answer.
    async fn hello(&mut self, net: NetworkId, tip: Tip, listen: &str) -> Greeting {
        let hello = PowPacket::Connect(Connect {
            network: net,
            listen: Some(listen.into()),
            tip,
        });
        // A refused connection may be closed before or after the write.
        if self.writer.send(&hello).await.is_err() {
            return Greeting::Closed;
        }
        match tokio::time::timeout(Duration::from_secs(10), self.reader.recv()).await {
            Ok(Ok(packet)) => Greeting::Answered(Box::new(packet)),
            Ok(Err(_)) => Greeting::Closed,
            Err(_) => panic!("no answer and no close within 10 s"),
        }
    }

    async fn send(&mut self, packet: &PowPacket) {
        self.writer.send(packet).await.unwrap();
    }

    /// The next packet that is not a keep-alive `CONNECT`.
    async fn recv_answer(&mut self) -> PowPacket {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let packet = tokio::time::timeout_at(deadline, self.reader.recv())
                .await
                .expect("an answer within 10 s")
                .expect("the connection is open");
            if !matches!(packet, PowPacket::Connect(_)) {
                return packet;
            }
        }
    }

    /// Asks for an account and waits for the answer: packets of one connection are
    /// handled in order, so everything sent before has been handled.
    async fn round_trip(&mut self, account: AccountId) -> tally_proto::pow::RespAccount {
        self.send(&PowPacket::ReqAccount(ReqAccount { account }))
            .await;
        match self.recv_answer().await {
            PowPacket::RespAccount(answer) => answer,
            other => panic!("expected RESP_ACCOUNT, got {other:?}"),
        }
    }

    async fn tx_status(&mut self, tx: &Transaction) -> TxStatus {
        self.send(&PowPacket::ReqTxStatus(ReqTxStatus {
            transaction: tx.clone(),
        }))
        .await;
        match self.recv_answer().await {
            PowPacket::RespTxStatus(answer) => answer.status,
            other => panic!("expected RESP_TX_STATUS, got {other:?}"),
        }
    }

    /// Reads until the node closes the connection; `false` if it stays open for 10 s
    /// (keep-alives keep coming on an open one).
    async fn closed(&mut self) -> bool {
        let until_closed = async { while self.reader.recv().await.is_ok() {} };
        tokio::time::timeout(Duration::from_secs(10), until_closed)
            .await
            .is_ok()
    }
}

/// A node serving a 20-block chain with a small block-serving budget: a request for the
/// whole chain costs 1 + 20 tokens, the burst of 45 pays two, and the rate (1 a second)
/// earns a third only after 20 s.
struct Served {
    contract: NetworkContract,
    node: PowNode,
    net: NetworkId,
    genesis: Tip,
    tip: tally_chain::TipInfo,
}

impl Served {
    async fn start(dir: &std::path::Path) -> Served {
        let contract = contract(0, &[]);
        let served_dir = dir.join("served");
        let tip = tokio::task::spawn_blocking({
            let (contract, served_dir) = (contract.clone(), served_dir.clone());
            move || pregenerate(&contract, &served_dir, 20)
        })
        .await
        .unwrap();
        let mut config = miner_config(&contract, &served_dir);
        config.block_requests = BlockRequestLimits {
            blocks_per_sec: 1,
            burst: 45,
        };
        let node = PowNode::start(config).await.unwrap();
        let genesis: Tip = Chain::in_memory(&contract, ChainConfig::default())
            .unwrap()
            .tip()
            .into();
        Served {
            net: contract.id(),
            contract,
            node,
            genesis,
            tip,
        }
    }
}

/// A peer that floods `SEND_REQUEST` is served what its budget pays (the burst),
/// then refused with an `ERROR` and scored for every request beyond it, and banned; an
/// honest miner syncing from the same node afterwards still gets every block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_send_request_is_refused_scored_and_banned_while_honest_sync_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let Served {
        contract,
        node,
        net,
        genesis,
        tip: expected,
    } = Served::start(dir.path()).await;

    let flooder = "127.0.0.1:9001";
    let (mut peer, hello) = RawPeer::connect(&node, net, genesis, flooder).await;
    assert!(matches!(hello, PowPacket::Connect(_)), "{hello:?}");
    let request = PowPacket::SendRequest(SendRequest {
        locator: vec![genesis.hash],
        max: 500,
    });
    // One request at a time, each answer read before the next request (a ban cancels
    // the connection's queue, so answers pipelined behind it could be lost).
    let (mut served, mut refused) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    'flood: for _ in 0..30 {
        if peer.writer.send(&request).await.is_err() {
            break;
        }
        loop {
            // Keep-alives keep coming while the connection is open: a deadline, not a
            // timeout per packet, guards the hang.
            match tokio::time::timeout_at(deadline, peer.reader.recv()).await {
                Ok(Ok(PowPacket::ReceiveBlock(batch))) => {
                    assert_eq!(batch.blocks.len(), 20);
                    served += 1;
                    break;
                }
                Ok(Ok(PowPacket::Error(e))) => {
                    assert!(e.reason.contains("too many block requests"), "{e:?}");
                    refused += 1;
                    break;
                }
                Ok(Ok(PowPacket::Connect(_))) => continue,
                Ok(Ok(other)) => panic!("unexpected {other:?}"),
                Ok(Err(_)) => break 'flood,
                Err(_) => panic!("no answer ({served} served, {refused} refused)"),
            }
        }
    }
    assert!(
        peer.closed().await,
        "the flooder is disconnected ({served} served, {refused} refused)"
    );
    assert!(served >= 2, "the burst is served: {served}");
    assert!(served < 30, "not every request was served");
    assert!(refused >= 1, "requests beyond the budget are refused");
    assert!(
        node.status().banned.contains(&flooder.to_string()),
        "{:?}",
        node.status().banned
    );

    // An honest late joiner (its own budget) syncs everything from the same node.
    let late = PowNode::start(miner_config(&contract, &dir.path().join("late")))
        .await
        .unwrap();
    late.connect_to(&node.address().to_string());
    eventually("the late joiner has every block", 30, || {
        late.tip().hash == expected.hash
    })
    .await;
    assert!(node.status().banned.iter().all(|b| b == flooder));
    late.stop().await;
    node.stop().await;
}

/// The block-serving budget belongs to the peer, not to its connection: a peer that spent
/// it and reconnects is refused, while another peer still has its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_does_not_refill_the_block_serving_budget() {
    let dir = tempfile::tempdir().unwrap();
    let Served {
        node, net, genesis, ..
    } = Served::start(dir.path()).await;
    let request = PowPacket::SendRequest(SendRequest {
        locator: vec![genesis.hash],
        max: 500,
    });
    async fn ask(peer: &mut RawPeer, request: &PowPacket) -> PowPacket {
        peer.writer.send(request).await.unwrap();
        loop {
            let answer = tokio::time::timeout(Duration::from_secs(10), peer.reader.recv())
                .await
                .expect("an answer")
                .unwrap();
            if !matches!(answer, PowPacket::Connect(_)) {
                return answer;
            }
        }
    }
    let (mut first, _) = RawPeer::connect(&node, net, genesis, "127.0.0.1:9301").await;
    for _ in 0..2 {
        let answer = ask(&mut first, &request).await;
        assert!(matches!(answer, PowPacket::ReceiveBlock(_)), "{answer:?}");
    }
    // Reconnect once the node has seen the first connection close: while it is open, a
    // second inbound connection of the same miner is a duplicate and is closed.
    let open = node.open_connections();
    drop(first);
    eventually("the first connection is closed", 10, || {
        node.open_connections() < open
    })
    .await;
    let (mut again, _) = RawPeer::connect(&node, net, genesis, "127.0.0.1:9301").await;
    let answer = ask(&mut again, &request).await;
    assert!(
        matches!(&answer, PowPacket::Error(e) if e.reason.contains("too many block requests")),
        "a new connection of the same peer starts with what the peer left: {answer:?}"
    );
    let (mut other, _) = RawPeer::connect(&node, net, genesis, "127.0.0.1:9302").await;
    let answer = ask(&mut other, &request).await;
    assert!(
        matches!(answer, PowPacket::ReceiveBlock(_)),
        "another peer has its own budget: {answer:?}"
    );
    node.stop().await;
}

/// Only miners ask for blocks: a `SEND_REQUEST` on a connection that has not sent
/// `CONNECT` (a wallet's, or a stranger's) is not served, while a later query on it is; the
/// same connection is served once it has said `CONNECT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_request_before_connect_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let Served {
        node, net, genesis, ..
    } = Served::start(dir.path()).await;
    let request = PowPacket::SendRequest(SendRequest {
        locator: vec![genesis.hash],
        max: 500,
    });
    let mut peer = RawPeer::open(&node, "127.0.0.1").await;
    peer.send(&request).await;
    // Packets of one connection are handled in order: an answer to the request would
    // arrive before this one.
    let anyone = SecretKey::generate().account();
    assert_eq!(peer.round_trip(anyone).await.balance, Amount::ZERO);
    assert!(matches!(
        peer.hello(net, genesis, "127.0.0.1:9401").await,
        Greeting::Answered(_)
    ));
    peer.send(&request).await;
    match peer.recv_answer().await {
        PowPacket::ReceiveBlock(batch) => assert_eq!(batch.blocks.len(), 20),
        other => panic!("expected RECEIVE_BLOCK, got {other:?}"),
    }
    node.stop().await;
}

/// A `RECEIVE_BLOCK` that answers no `SEND_REQUEST` of ours is dropped unread (even
/// a valid block) and costs as much as an invalid block, so four of them ban; the same
/// block sent as the answer to our request is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsolicited_blocks_are_dropped_and_scored_and_solicited_ones_taken() {
    let dir = tempfile::tempdir().unwrap();
    let contract = contract(8, &[]);
    let net = contract.id();
    let node = PowNode::start(miner_config(&contract, dir.path()))
        .await
        .unwrap();
    let genesis: Tip = node.tip().into();
    let mut mirror = Chain::in_memory(&contract, ChainConfig::default()).unwrap();
    let me = SecretKey::generate().account();
    let block = reseal(mirror.block_template(me, tally_node::pow::node::now_ms()));
    mirror
        .accept_block(block.clone(), tally_node::pow::node::now_ms())
        .unwrap();
    let heavier: Tip = mirror.tip().into();
    let batch = PowPacket::ReceiveBlock(ReceiveBlock {
        blocks: vec![block.clone()],
        tip: heavier,
    });

    let pusher = "127.0.0.1:9101";
    let (mut peer, _) = RawPeer::connect(&node, net, genesis, pusher).await;
    for _ in 0..3 {
        peer.send(&batch).await;
    }
    peer.round_trip(me).await;
    assert_eq!(node.tip().height, 0, "an unsolicited block was stored");
    assert!(node.status().banned.is_empty(), "three cost 75 points");
    peer.send(&batch).await;
    assert!(peer.closed().await, "the fourth bans");
    assert_eq!(node.status().banned, vec![pusher.to_string()]);
    assert_eq!(node.tip().height, 0);

    // An honest peer announcing more work is asked, and its answer is taken.
    let (mut honest, _) = RawPeer::connect(&node, net, heavier, "127.0.0.1:9102").await;
    match honest.recv_answer().await {
        PowPacket::SendRequest(_) => {}
        other => panic!("expected SEND_REQUEST, got {other:?}"),
    }
    honest.send(&batch).await;
    honest.round_trip(me).await;
    assert_eq!(node.tip().hash, block.hash());
    node.stop().await;
}

/// A node of a fresh network with `limit` applied to its settings, and its genesis tip.
async fn limited_node(
    dir: &std::path::Path,
    limit: impl FnOnce(&mut tally_node::pow::MinerConfig),
) -> (PowNode, NetworkId, Tip) {
    let contract = contract(8, &[]);
    let mut config = miner_config(&contract, dir);
    config.max_peers = 100;
    limit(&mut config);
    let node = PowNode::start(config).await.unwrap();
    let genesis: Tip = node.tip().into();
    (node, contract.id(), genesis)
}

/// Opens `n` connections in one burst, then greets on each (listening at `port + i`);
/// returns those the node kept.
async fn burst_kept(
    node: &PowNode,
    net: NetworkId,
    tip: Tip,
    n: usize,
    port: usize,
) -> Vec<RawPeer> {
    let mut kept = Vec::new();
    for (i, mut peer) in RawPeer::burst(node, n).into_iter().enumerate() {
        if let Greeting::Answered(_) = peer
            .hello(net, tip, &format!("127.0.0.1:{}", port + i))
            .await
        {
            kept.push(peer);
        }
    }
    kept
}

/// A burst of connections beyond `max_connections` keeps exactly the limit (the
/// rest are closed at once), and a closed connection frees its slot. (One runtime thread:
/// the burst is accepted before any connection task runs, which is where counting only in
/// the connection tasks let every connection of the burst in.)
#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_connections_keeps_exactly_max_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (node, net, genesis) = limited_node(dir.path(), |c| c.max_connections = 4).await;
    // All connect before any says anything: the node accepts them in one burst.
    let mut kept = burst_kept(&node, net, genesis, 16, 20_000).await;
    assert_eq!(kept.len(), 4, "exactly max_connections kept");
    assert_eq!(node.open_connections(), 4);
    assert_eq!(node.status().peers.len(), 4);

    // Closing one frees its slot for a newcomer.
    drop(kept.pop());
    eventually("the closed connection's slot is released", 10, || {
        node.open_connections() == 3
    })
    .await;
    let mut newcomer = RawPeer::open(&node, "127.0.0.1").await;
    assert!(matches!(
        newcomer.hello(net, genesis, "127.0.0.1:21000").await,
        Greeting::Answered(_)
    ));
    assert_eq!(node.open_connections(), 4);
    node.stop().await;
}

/// One host cannot hold more than `max_connections_per_ip`, however fast it
/// connects (a burst on one runtime thread, as above); another host still gets in.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_from_one_host_keeps_exactly_max_connections_per_ip() {
    let dir = tempfile::tempdir().unwrap();
    let (node, net, genesis) = limited_node(dir.path(), |c| c.max_connections_per_ip = 3).await;
    let kept = burst_kept(&node, net, genesis, 12, 22_000).await;
    assert_eq!(kept.len(), 3, "exactly max_connections_per_ip kept");
    let mut other_host = RawPeer::open(&node, "127.0.0.2").await;
    assert!(matches!(
        other_host.hello(net, genesis, "127.0.0.2:23000").await,
        Greeting::Answered(_)
    ));
    assert_eq!(node.open_connections(), 4);
    node.stop().await;
}

/// A gossiped transaction refused for a transient reason (its sender not
/// yet funded) is taken when gossip brings it again after the tip moved (the block that
/// funds the sender), instead of staying "seen" forever; the node's `CONNECT`s announce the
/// new tip without reading the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_refused_before_its_funding_block_is_taken_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let alice = SecretKey::generate();
    let contract = contract(8, &[alice.account()]);
    let net = contract.id();
    let node = PowNode::start(miner_config(&contract, dir.path()))
        .await
        .unwrap();
    let genesis: Tip = node.tip().into();
    let mirror = Chain::in_memory(&contract, ChainConfig::default()).unwrap();
    let bob = SecretKey::generate();
    let carol = SecretKey::generate().account();
    let funding = transfer(&alice, bob.account(), cash(10), 0, net);
    let spend = transfer(&bob, carol, cash(5), 0, net);
    let gossip_spend = PowPacket::Transaction(TransactionGossip {
        transactions: vec![spend.clone()],
    });

    let (mut peer, _) = RawPeer::connect(&node, net, genesis, "127.0.0.1:9201").await;
    peer.send(&gossip_spend).await;
    assert_eq!(
        peer.tx_status(&spend).await,
        TxStatus::Unknown,
        "bob has nothing yet"
    );

    let block = {
        let mut b = mirror.block_template(
            SecretKey::generate().account(),
            tally_node::pow::node::now_ms(),
        );
        b.transactions.push(funding);
        reseal(b)
    };
    peer.send(&PowPacket::HashBroadcast(HashBroadcast {
        hash: block.hash(),
        block: block.clone(),
    }))
    .await;
    assert_eq!(peer.round_trip(bob.account()).await.balance, cash(10));
    assert_eq!(node.tip().hash, block.hash());

    peer.send(&gossip_spend).await;
    assert_eq!(
        peer.tx_status(&spend).await,
        TxStatus::Pending,
        "the refusal was forgotten when the tip moved"
    );

    // The keep-alive `CONNECT` carries the new tip (published, not read under the lock).
    loop {
        let packet = tokio::time::timeout(Duration::from_secs(10), peer.reader.recv())
            .await
            .expect("a keep-alive within 10 s")
            .unwrap();
        if let PowPacket::Connect(hello) = packet {
            assert_eq!(hello.tip.hash, block.hash());
            break;
        }
    }
    node.stop().await;
}

/// A peer asking for ledger pages as fast as it can costs the chain lock one pass over
/// the accounts per tip, not one per page: every page of a 20,000-account ledger is served,
/// in order and complete, from one snapshot, and a new tip takes exactly one more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_pages_asked_as_fast_as_possible_take_the_chain_lock_once_per_tip() {
    let dir = tempfile::tempdir().unwrap();
    let funded: Vec<AccountId> = (0..20_000)
        .map(|_| SecretKey::generate().account())
        .collect();
    let contract = contract(0, &funded);
    let node = PowNode::start(miner_config(&contract, dir.path()))
        .await
        .unwrap();
    let mut peer = RawPeer::open(&node, "127.0.0.2").await;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        peer.send(&PowPacket::ReqLedger(tally_proto::pow::ReqLedger {
            after,
            limit: 100,
        }))
        .await;
        let PowPacket::RespLedger(page) = peer.recv_answer().await else {
            panic!("expected RESP_LEDGER");
        };
        seen.extend(page.accounts.iter().map(|entry| entry.account));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut expected = funded.clone();
    expected.sort();
    assert_eq!(seen, expected, "every account once, in order");
    assert_eq!(
        node.ledger_snapshots(),
        1,
        "one pass for 200 pages at one tip"
    );
    // A block moves the tip: the next page takes one new snapshot.
    node.set_mining(true);
    let start = node.tip().height;
    eventually("a block", 20, || node.tip().height > start).await;
    node.stop_mining().await;
    let snapshots_before = node.ledger_snapshots();
    peer.send(&PowPacket::ReqLedger(tally_proto::pow::ReqLedger {
        after: None,
        limit: 1,
    }))
    .await;
    let PowPacket::RespLedger(page) = peer.recv_answer().await else {
        panic!("expected RESP_LEDGER");
    };
    assert!(page.tip.height > start);
    assert_eq!(page.total, 20_001, "the block's reward account joined");
    assert_eq!(snapshots_before, 1);
    assert_eq!(node.ledger_snapshots(), 2);
    node.stop().await;
}

/// Ledger pages are served within a budget per host, not per connection: a host that
/// spent its burst waits for the rate even on a fresh connection, while another host's
/// page is answered at once. The wait delays the host's pages; it refuses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_pages_beyond_a_hosts_rate_wait_while_other_hosts_are_served() {
    let dir = tempfile::tempdir().unwrap();
    // One page a second, two at once.
    let (node, _, _) = limited_node(dir.path(), |config| config.ledger_pages_per_sec = 1).await;
    let page = PowPacket::ReqLedger(tally_proto::pow::ReqLedger {
        after: None,
        limit: 10,
    });
    let mut first = RawPeer::open(&node, "127.0.0.2").await;
    for _ in 0..2 {
        first.send(&page).await;
    }
    for _ in 0..2 {
        assert!(matches!(
            first.recv_answer().await,
            PowPacket::RespLedger(_)
        ));
    }

    let mut again = RawPeer::open(&node, "127.0.0.2").await;
    again.send(&page).await;
    let mut other = RawPeer::open(&node, "127.0.0.3").await;
    other.send(&page).await;
    assert!(
        matches!(other.recv_answer().await, PowPacket::RespLedger(_)),
        "another host's page is answered while the first host waits"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), again.recv_answer())
            .await
            .is_err(),
        "a fresh connection from the same host does not get a fresh budget"
    );
    assert!(
        matches!(again.recv_answer().await, PowPacket::RespLedger(_)),
        "the page is answered once the rate allows"
    );
    node.stop().await;
}
