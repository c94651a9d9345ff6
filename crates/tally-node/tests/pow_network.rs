//! Proof-of-work networks over real TCP, with a real tracker (in-process) and
//! miners in-process: gossip and confirmation, partition and heal with a reorganisation,
//! a late joiner syncing 1,000 blocks, restart at the tip, and invalid blocks of each
//! kind refused with the sender scored and banned.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use tally_chain::{Chain, ChainConfig, Transaction, TxStatus, U256, miner};
use tally_core::{Amount, NetworkContract, NetworkId, SecretKey};
use tally_node::pow::PowNode;
use tally_proto::pow::{
    self, Connect, HashBroadcast, PowPacket, Tip, WireLimits, WireReader, WireWriter,
};
use tally_tracker::{Tracker, TrackerConfig, TrackerHandle};
use tally_wallet::miner::{self as client, MinerError as ClientError};

use common::bound_listener;
use common::pow::{
    broadcast, cash, contract, eventually, miner_config, pregenerate, reseal, transfer,
};

/// Leading zero bits of the gossip and partition tests' blocks: a few ms of hashing each.
const BITS: u32 = 14;

/// Turns `node`'s mining off and waits for its block in progress, failing the test (rather
/// than hanging it) if the mining thread has not let go within 60 s.
async fn stop_mining(node: &PowNode) {
    tokio::time::timeout(Duration::from_secs(60), node.stop_mining())
        .await
        .expect("the miner did not stop mining on request within 60 s");
}

/// A tracker of `contract` serving on `listener` (bound by the caller before the contract
/// named its address, and never let go of in between).
async fn start_tracker(
    dir: &Path,
    listener: std::net::TcpListener,
    contract: &NetworkContract,
) -> TrackerHandle {
    let limits = tally_tracker::Limits {
        requests_per_ip_per_sec: 0,
        max_connections_per_ip: 256,
        verify_threads: 1,
        ..tally_tracker::Limits::DEFAULT
    };
    let config = TrackerConfig::new(dir.join("tracker"))
        .limits(limits)
        .contract(contract.clone());
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    Tracker::with_listener(config, listener)
        .await
        .unwrap()
        .spawn()
}

/// One miner, not mining, of a fresh network where `alice` holds funds, beside an
/// in-memory copy of its chain from which tests forge blocks.
struct Lone {
    _dir: tempfile::TempDir,
    alice: SecretKey,
    contract: NetworkContract,
    node: PowNode,
    genesis: Tip,
    mirror: Chain,
}

impl Lone {
    async fn start() -> Lone {
        let dir = tempfile::tempdir().unwrap();
        let alice = SecretKey::generate();
        let contract = contract(8, None, &[alice.account()]);
        let node = PowNode::start(miner_config(&contract, dir.path()))
            .await
            .unwrap();
        let genesis: Tip = node.tip().into();
        let mirror = Chain::in_memory(&contract, ChainConfig::default()).unwrap();
        Lone {
            _dir: dir,
            alice,
            contract,
            node,
            genesis,
            mirror,
        }
    }
}

/// Two miners that stop on sibling blocks of equal work each keep their own (the block seen
/// first stays): `miner` mines one block above every tip, which all then adopt.
async fn settle(miner: &PowNode, all: &[&PowNode]) {
    let top = all.iter().map(|n| n.tip().height).max().unwrap();
    miner.set_mining(true);
    eventually("a block above every tip", 20, || miner.tip().height > top).await;
    stop_mining(miner).await;
    let tip = miner.tip().hash;
    for node in all {
        eventually("every miner on one tip", 20, || node.tip().hash == tip).await;
    }
}

fn status(node: &PowNode, tx: &Transaction) -> TxStatus {
    node.with_chain(|c| c.transaction_status(tx))
}

struct Network {
    dir: tempfile::TempDir,
    contract: NetworkContract,
    _tracker: TrackerHandle,
    nodes: Vec<PowNode>,
    alice: SecretKey,
}

/// A tracker and `n` miners that found each other through it (mining off).
async fn network(n: usize) -> Network {
    let dir = tempfile::tempdir().unwrap();
    let alice = SecretKey::generate();
    let tracker_listener = bound_listener();
    let tracker_address = tracker_listener.local_addr().unwrap();
    let contract = contract(BITS, Some(tracker_address), &[alice.account()]);
    let tracker = start_tracker(dir.path(), tracker_listener, &contract).await;
    let mut nodes = Vec::new();
    for i in 0..n {
        let config = miner_config(&contract, &dir.path().join(format!("miner-{i}")));
        nodes.push(PowNode::start(config).await.unwrap());
    }
    let net = Network {
        dir,
        contract,
        _tracker: tracker,
        nodes,
        alice,
    };
    for node in &net.nodes {
        eventually("every miner connected to every other", 20, || {
            node.status().peers.len() >= n - 1
        })
        .await;
    }
    net
}

/// A transaction pushed to one miner is gossiped to all and confirmed on one tip everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_transaction_reaches_every_miner_and_is_confirmed_everywhere() {
    let net = network(3).await;
    let network_id = net.contract.id();
    let bob = SecretKey::generate().account();
    let limits = WireLimits::default();
    let [a, b, c] = &net.nodes[..] else { panic!() };

    // The wallet pushes to C (not mining) only.
    let tx = transfer(
        &net.alice,
        bob,
        Amount::from_microcash(1_504_000),
        0,
        network_id,
    );
    let id = client::push_transaction(&c.address().to_string(), &tx, limits)
        .await
        .unwrap();
    assert_eq!(id, tx.id());
    // TRANSACTION gossip: it reaches the others' mempools.
    for node in [a, b] {
        eventually("the transaction reached the other miners", 10, || {
            status(node, &tx) == TxStatus::Pending
        })
        .await;
    }
    // Pushed again where it is pending already: taken (a wallet whose first answer was
    // lost learns the miner holds it).
    let again = client::push_transaction(&a.address().to_string(), &tx, limits).await;
    assert_eq!(again.unwrap(), tx.id());
    // Refusals come back with the reason.
    let overdraft = transfer(&net.alice, bob, cash(1000), 1, network_id);
    match client::push_transaction(&b.address().to_string(), &overdraft, limits).await {
        Err(ClientError::Rejected(reason)) => assert!(reason.contains("needed"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // Two miners mine; every node confirms it, with the same tip.
    a.set_mining(true);
    b.set_mining(true);
    for node in [a, b, c] {
        eventually("confirmed with 2 confirmations on every miner", 30, || {
            matches!(status(node, &tx), TxStatus::Confirmed { confirmations, .. } if confirmations >= 2)
        })
        .await;
    }
    stop_mining(a).await;
    stop_mining(b).await;
    settle(a, &[a, b, c]).await;

    // The wallet's queries.
    let info = client::account(&c.address().to_string(), &bob, limits)
        .await
        .unwrap();
    assert_eq!(info.balance, Amount::from_microcash(1_504_000));
    let info = client::account(&a.address().to_string(), &net.alice.account(), limits)
        .await
        .unwrap();
    assert_eq!(info.sequence, 1);
    assert_eq!(info.next_sequence, 1);
    assert_eq!(
        info.balance,
        Amount::from_microcash(100_000_000 - 1_504_000)
    );
    let (remote_status, tip) = client::transaction_status(&b.address().to_string(), &tx, limits)
        .await
        .unwrap();
    assert!(matches!(remote_status, TxStatus::Confirmed { .. }));
    assert_eq!(tip.hash, b.tip().hash);
    let s = a.status();
    assert!(
        s.blocks_mined > 0 && s.peers.len() == 2 && s.blocks_rejected == 0,
        "{s:?}"
    );
    // Supply is exact: genesis plus one reward per block.
    let height = a.tip().height;
    let supply = a.with_chain(|chain| chain.supply()).unwrap();
    assert_eq!(supply.microcash(), 100_000_000 + height * 50_000_000);
    for node in net.nodes {
        node.stop().await;
    }
    drop(net.dir);
}

/// A healed partition reorganises onto the heavier branch; orphaned transactions are mined again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_heal_onto_the_heavier_branch_and_orphaned_transactions_are_mined_again() {
    let net = network(3).await;
    let network_id = net.contract.id();
    let [a, b, c] = &net.nodes[..] else { panic!() };
    let bob = SecretKey::generate().account();

    // Partition: A alone; B and C together.
    a.set_isolated(true);
    eventually("A is cut off", 10, || {
        a.status().peers.is_empty() && b.status().peers.len() == 1 && c.status().peers.len() == 1
    })
    .await;
    let base = a.tip().height;

    // A takes a transaction and mines it on its own branch.
    let tx = transfer(&net.alice, bob, cash(7), 0, network_id);
    client::push_transaction(&a.address().to_string(), &tx, WireLimits::default())
        .await
        .unwrap();
    a.set_mining(true);
    eventually("A mines the transaction", 20, || {
        matches!(status(a, &tx), TxStatus::Confirmed { .. }) && a.tip().height >= base + 2
    })
    .await;
    stop_mining(a).await;
    let a_branch = a.tip();
    assert_eq!(status(b, &tx), TxStatus::Unknown, "the partition held");

    // B's side mines a heavier branch (same target, more blocks).
    b.set_mining(true);
    eventually("B's branch is heavier", 30, || {
        b.tip().height >= a_branch.height + 3
    })
    .await;
    stop_mining(b).await;
    eventually("C follows B", 10, || c.tip().hash == b.tip().hash).await;
    let heavy = b.tip();
    assert!(heavy.work > a_branch.work);

    // Heal: everyone converges on the heavier branch; A's transaction is back in its mempool.
    a.set_isolated(false);
    a.connect_to(&b.address().to_string());
    for node in [a, b, c] {
        eventually("converged on the heavier branch", 20, || {
            node.tip().hash == heavy.hash
        })
        .await;
    }
    assert!(!a.with_chain(|chain| chain.is_on_main_chain(&a_branch.hash)));
    assert_eq!(
        status(a, &tx),
        TxStatus::Pending,
        "orphaned transaction returned to the mempool"
    );

    // A relays it to the branch that never saw it; it is mined again there (by B, while A
    // does not mine) and confirmed everywhere.
    eventually("the orphaned transaction reached B", 10, || {
        status(b, &tx) == TxStatus::Pending
    })
    .await;
    b.set_mining(true);
    for node in [a, b, c] {
        eventually("the orphaned transaction is confirmed again", 30, || {
            matches!(status(node, &tx), TxStatus::Confirmed { .. })
        })
        .await;
    }
    stop_mining(b).await;
    let bob_balance = a.with_chain(|chain| chain.account(&bob).balance);
    assert_eq!(bob_balance, cash(7));
    for node in net.nodes {
        node.stop().await;
    }
}

/// A late joiner syncs 1,000 blocks, and a restarted miner resumes at its stored tip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_syncs_1000_blocks_and_a_restarted_miner_resumes_at_its_tip() {
    let dir = tempfile::tempdir().unwrap();
    let tracker_listener = bound_listener();
    let tracker_address = tracker_listener.local_addr().unwrap();
    let contract = contract(0, Some(tracker_address), &[]);
    let _tracker = start_tracker(dir.path(), tracker_listener, &contract).await;
    let old = dir.path().join("old");
    let expected = tokio::task::spawn_blocking({
        let (contract, old) = (contract.clone(), old.clone());
        move || pregenerate(&contract, &old, 1000)
    })
    .await
    .unwrap();
    assert_eq!(expected.height, 1000);
    let a = PowNode::start(miner_config(&contract, &old)).await.unwrap();
    assert_eq!(a.tip(), expected);

    let late_dir = dir.path().join("late");
    let late = PowNode::start(miner_config(&contract, &late_dir))
        .await
        .unwrap();
    eventually("the late joiner has all 1,000 blocks", 60, || {
        late.tip().hash == expected.hash
    })
    .await;
    assert_eq!(late.tip(), expected);

    // Stopped and restarted (with nobody to sync from): it resumes at its tip.
    late.stop().await;
    a.stop().await;
    let restarted = PowNode::start(miner_config(&contract, &late_dir))
        .await
        .unwrap();
    assert_eq!(restarted.tip(), expected);
    // And it mines on from there.
    restarted.set_mining(true);
    eventually("mining resumes on the tip", 20, || {
        restarted.tip().height > 1000
    })
    .await;
    stop_mining(&restarted).await;
    let tip = restarted.tip();
    restarted.stop().await;
    let again = PowNode::start(miner_config(&contract, &late_dir))
        .await
        .unwrap();
    assert_eq!(again.tip(), tip);
    again.stop().await;
}

// ----- invalid blocks ------------------------------------------------------------------------

struct RawPeer {
    reader: WireReader,
    writer: WireWriter,
}

impl RawPeer {
    /// A hand-driven "miner" that says it listens at `listen` (its identity on loopback).
    async fn connect(
        node: &PowNode,
        net: NetworkId,
        genesis: Tip,
        listen: &str,
    ) -> (RawPeer, PowPacket) {
        let stream = pow::connect(&node.address().to_string(), WireLimits::default())
            .await
            .unwrap();
        let (reader, writer) = pow::split(stream, WireLimits::default());
        let mut peer = RawPeer { reader, writer };
        peer.send(&PowPacket::Connect(Connect {
            network: net,
            listen: Some(listen.into()),
            tip: genesis,
        }))
        .await;
        let first = peer.recv().await;
        (peer, first)
    }

    async fn send(&mut self, packet: &PowPacket) {
        self.writer.send(packet).await.unwrap();
    }

    async fn recv(&mut self) -> PowPacket {
        tokio::time::timeout(Duration::from_secs(10), self.reader.recv())
            .await
            .unwrap()
            .unwrap()
    }

    /// The next `REJECT_BLOCK`'s reason.
    async fn rejection(&mut self) -> String {
        loop {
            match self.recv().await {
                PowPacket::RejectBlock(r) => return r.reason,
                PowPacket::Connect(_) => continue,
                other => panic!("expected REJECT_BLOCK, got {other:?}"),
            }
        }
    }
}

/// Each kind of invalid block is refused with its reason and the tip unchanged; one offence
/// bans nobody, a peer that keeps sending invalid data is banned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_blocks_of_each_kind_are_refused_and_the_sender_is_banned() {
    let Lone {
        _dir,
        alice,
        contract,
        node,
        genesis,
        mirror,
    } = Lone::start().await;
    let net = contract.id();
    let now = tally_node::pow::node::now_ms();
    let me = SecretKey::generate().account();
    let template = || mirror.block_template(me, now);
    let bob = SecretKey::generate().account();

    let mut bad: Vec<(&str, PowPacket)> = Vec::new();
    {
        // Proof of work: a nonce whose hash misses the target.
        let mut b = template();
        let mut hasher = miner::HeaderHasher::new(&b.header);
        b.header.nonce = (0..).find(|n| !hasher.meets_target(*n)).unwrap();
        bad.push(("does not meet its target", broadcast(&b)));
    }
    {
        let mut b = template();
        b.header.network = NetworkId(tally_core::sha256(&[b"another network"]));
        bad.push(("not this one", broadcast(&reseal(b))));
    }
    {
        let mut b = reseal(template());
        b.coinbase.miner = bob;
        b.header = miner::solve(&b.header).unwrap();
        bad.push(("merkle root", broadcast(&b)));
    }
    {
        let mut b = template();
        b.coinbase.amount = cash(51);
        bad.push(("coinbase pays", broadcast(&reseal(b))));
    }
    {
        let mut b = template();
        b.coinbase.height = 7;
        bad.push(("coinbase height", broadcast(&reseal(b))));
    }
    {
        let mut b = template();
        let mut tx = transfer(&alice, bob, cash(1), 0, net);
        tx.signature = transfer(&alice, bob, cash(2), 0, net).signature;
        b.transactions.push(tx);
        bad.push(("bad signature", broadcast(&reseal(b))));
    }
    {
        let mut b = template();
        b.transactions
            .push(transfer(&alice, bob, cash(500), 0, net));
        bad.push(("the sender has", broadcast(&reseal(b))));
    }
    {
        let mut b = template();
        b.transactions.push(transfer(&alice, bob, cash(1), 3, net));
        bad.push(("skips to sequence", broadcast(&reseal(b))));
    }
    {
        let mut b = template();
        b.header.target = U256::from_leading_zero_bits(7);
        bad.push(("is not the expected", broadcast(&reseal(b))));
    }
    {
        let mut b = template();
        b.header.height = 2;
        b.coinbase.height = 2;
        bad.push(("does not follow the parent", broadcast(&reseal(b))));
    }
    {
        let mut b = template();
        b.header.timestamp_ms = 0;
        bad.push(("is not after the median", broadcast(&reseal(b))));
    }
    {
        let b = reseal(template());
        let other = reseal(mirror.block_template(bob, now));
        bad.push((
            "not the block's",
            PowPacket::HashBroadcast(HashBroadcast {
                hash: other.hash(),
                block: b,
            }),
        ));
    }

    // Each kind from a fresh peer: refused with its reason, the tip unchanged.
    for (i, (reason, packet)) in bad.iter().enumerate() {
        let listen = format!("127.0.0.1:{}", 40_000 + i);
        let (mut peer, hello) = RawPeer::connect(&node, net, genesis, &listen).await;
        assert!(matches!(hello, PowPacket::Connect(_)), "{hello:?}");
        peer.send(packet).await;
        let got = peer.rejection().await;
        assert!(got.contains(reason), "expected {reason:?}, got {got:?}");
        assert_eq!(node.tip().height, 0);
    }
    // The refusal is sent before it is counted: wait for the count.
    eventually("every refusal counted", 10, || {
        node.status().blocks_rejected >= 10
    })
    .await;
    assert!(
        node.status().banned.is_empty(),
        "one offense each bans nobody"
    );

    // Malformed frames are answered and scored too; a peer that keeps sending invalid
    // data is banned: its connection closes and it cannot come back.
    let (mut peer, _) = RawPeer::connect(&node, net, genesis, "127.0.0.1:1").await;
    let stream_closed = async {
        for (_, packet) in bad.iter().take(3) {
            peer.send(packet).await;
        }
        let _ = peer
            .writer
            .send_bytes(bytes::Bytes::from_static(b"{not json"))
            .await;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), peer.reader.recv()).await {
                Ok(Ok(_)) => continue,
                Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    };
    assert!(
        stream_closed.await,
        "the banned peer's connection was closed"
    );
    assert_eq!(node.status().banned, vec!["127.0.0.1:1".to_string()]);
    let (_, answer) = RawPeer::connect(&node, net, genesis, "127.0.0.1:1").await;
    assert!(
        matches!(&answer, PowPacket::Error(e) if e.reason == "banned"),
        "{answer:?}"
    );

    // Relayed transactions that no honest miner would relay (bad signatures) score too.
    let (mut forger, _) = RawPeer::connect(&node, net, genesis, "127.0.0.1:3").await;
    for i in 1..=10u64 {
        let mut tx = transfer(&alice, bob, Amount::from_microcash(i), 0, net);
        tx.signature = transfer(&alice, bob, cash(99), 0, net).signature;
        let gossip = PowPacket::Transaction(tally_proto::pow::TransactionGossip {
            transactions: vec![tx],
        });
        if forger.writer.send(&gossip).await.is_err() {
            break;
        }
    }
    eventually("the forger is banned", 10, || {
        node.status().banned.contains(&"127.0.0.1:3".to_string())
    })
    .await;
    assert_eq!(node.with_chain(|c| c.mempool().len()), 0);

    // A length prefix beyond the frame limit closes the connection before anything is
    // buffered; the node keeps serving.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut raw = tokio::net::TcpStream::connect(node.address())
            .await
            .unwrap();
        raw.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        raw.write_all(b"{}").await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    }

    // The node is unharmed: a valid block from an honest peer is taken and relayed.
    let (mut honest, _) = RawPeer::connect(&node, net, genesis, "127.0.0.1:2").await;
    let good = reseal(template());
    honest.send(&broadcast(&good)).await;
    eventually("the valid block is stored", 10, || {
        node.tip().hash == good.hash()
    })
    .await;
    node.stop().await;
}

/// A block that does not join the main chain has only passed the rules that
/// need no state (§8 "Validity" 1–8), so it is stored but never relayed. A side-branch
/// sibling that overdraws its sender, sent between two valid blocks, must not reach a
/// third miner; the valid blocks do. (Packets from one peer are handled in order and one
/// peer's queue keeps its order, so the side block would arrive before the second valid one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_branch_block_is_stored_but_not_relayed_before_it_is_connected() {
    let Lone {
        _dir,
        alice,
        contract,
        node,
        genesis,
        mut mirror,
    } = Lone::start().await;
    let net = contract.id();
    let now = tally_node::pow::node::now_ms();
    let me = SecretKey::generate().account();
    let bob = SecretKey::generate().account();

    let a1 = reseal(mirror.block_template(me, now));
    let side = {
        let mut b = mirror.block_template(bob, now);
        b.transactions
            .push(transfer(&alice, bob, cash(500), 0, net));
        reseal(b)
    };
    mirror.accept_block(a1.clone(), now).unwrap();
    let a2 = reseal(mirror.block_template(me, now + 1));

    let (mut watcher, _) = RawPeer::connect(&node, net, genesis, "127.0.0.1:7001").await;
    let (mut sender, _) = RawPeer::connect(&node, net, genesis, "127.0.0.1:7002").await;
    eventually("both peers are miners", 10, || {
        node.status().peers.len() == 2
    })
    .await;
    for block in [&a1, &side, &a2] {
        sender.send(&broadcast(block)).await;
    }
    let mut relayed = Vec::new();
    while relayed.last() != Some(&a2.hash()) {
        match watcher.recv().await {
            PowPacket::HashBroadcast(hb) => relayed.push(hb.hash),
            PowPacket::Connect(_) | PowPacket::SendRequest(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        relayed,
        vec![a1.hash(), a2.hash()],
        "the side block was relayed"
    );
    assert_eq!(node.tip().hash, a2.hash());
    assert!(
        node.with_chain(|c| c.header(&side.hash()).is_some()),
        "stored"
    );
    node.stop().await;
}

/// A heavier branch that forks deeper than one batch (500 blocks) and only
/// overtakes our tip after it. The first batch is stored on a side branch and does not move
/// the tip; the next `SEND_REQUEST` must continue from that batch, not from our unchanged
/// main chain (which asked for the same 500 blocks again, forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavier_branch_forking_deeper_than_one_batch_is_synced() {
    let dir = tempfile::tempdir().unwrap();
    let contract = contract(0, None, &[]);
    let (light_dir, heavy_dir) = (dir.path().join("light"), dir.path().join("heavy"));
    let (light_tip, heavy_tip) = tokio::task::spawn_blocking({
        let (contract, light_dir, heavy_dir) =
            (contract.clone(), light_dir.clone(), heavy_dir.clone());
        move || {
            (
                pregenerate(&contract, &light_dir, 520),
                pregenerate(&contract, &heavy_dir, 600),
            )
        }
    })
    .await
    .unwrap();
    assert!(heavy_tip.work > light_tip.work);
    let light = PowNode::start(miner_config(&contract, &light_dir))
        .await
        .unwrap();
    let heavy = PowNode::start(miner_config(&contract, &heavy_dir))
        .await
        .unwrap();
    assert_eq!(light.tip(), light_tip);
    light.connect_to(&heavy.address().to_string());
    eventually(
        "the light miner reorganises onto the heavy branch",
        60,
        || light.tip().hash == heavy_tip.hash,
    )
    .await;
    assert_eq!(light.tip(), heavy_tip);
    light.stop().await;
    heavy.stop().await;
}

/// A header may name any target up to the pow limit (here, as in every
/// contract, all ones: no work at all), so free blocks must not cost signature checks. A
/// block that does not fit its parent is refused for that before its signatures are
/// checked, and an orphan is held unchecked (its signatures are checked if its parent ever
/// arrives) and answered with a `SEND_REQUEST` — not with a signature check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_blocks_are_refused_or_held_before_any_signature_check() {
    let Lone {
        _dir,
        alice,
        contract,
        node,
        genesis,
        mirror,
    } = Lone::start().await;
    let net = contract.id();
    let now = tally_node::pow::node::now_ms();
    let me = SecretKey::generate().account();
    let bob = SecretKey::generate().account();
    let forged = |seq| {
        let mut tx = transfer(&alice, bob, cash(1), seq, net);
        tx.signature = transfer(&alice, bob, cash(2), seq, net).signature;
        tx
    };

    // On a known parent, with no work and a forged signature: refused for its target.
    let free = {
        let mut b = mirror.block_template(me, now);
        b.header.target = U256::MAX;
        b.transactions.push(forged(0));
        reseal(b)
    };
    let (mut peer, _) = RawPeer::connect(&node, net, genesis, "127.0.0.1:7101").await;
    peer.send(&broadcast(&free)).await;
    let reason = peer.rejection().await;
    assert!(reason.contains("is not the expected"), "{reason}");

    // On an unknown parent with a near-free target: refused as an orphan, not held.
    let orphan = |target: U256| {
        let mut b = mirror.block_template(me, now);
        b.header.previous = tally_core::sha256(&[b"nobody has this block"]);
        b.header.height = 5;
        b.coinbase.height = 5;
        b.header.target = target;
        b.transactions.push(forged(0));
        reseal(b)
    };
    let (mut peer, _) = RawPeer::connect(&node, net, genesis, "127.0.0.1:7102").await;
    peer.send(&broadcast(&orphan(U256::MAX))).await;
    let reason = peer.rejection().await;
    assert!(
        reason.contains("limit") && reason.contains("orphans"),
        "{reason}"
    );
    assert_eq!(node.status().orphans, 0);

    // On an unknown parent with the work our next block needs: held, and its parent asked
    // for (its signatures are checked only once the parent arrives).
    let (mut peer, _) = RawPeer::connect(&node, net, genesis, "127.0.0.1:7103").await;
    peer.send(&broadcast(&orphan(mirror.next_target()))).await;
    loop {
        match peer.recv().await {
            PowPacket::Connect(_) => continue,
            PowPacket::SendRequest(_) => break,
            other => panic!("expected SEND_REQUEST for the orphan's parent, got {other:?}"),
        }
    }
    assert_eq!(node.status().orphans, 1);
    assert_eq!(node.tip().height, 0);
    node.stop().await;
}

/// A `CONNECT`'s `Listen` is only the sender's word. A stranger (another host:
/// 127.0.0.2) that claims a connected miner's address must not get that miner's
/// connection closed as a duplicate of its own; blocks keep flowing from the real miner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_claiming_a_peers_listen_address_does_not_evict_it() {
    let dir = tempfile::tempdir().unwrap();
    let contract = contract(BITS, None, &[]);
    let net = contract.id();
    let mut nodes = Vec::new();
    for i in 0..2 {
        let config = miner_config(&contract, &dir.path().join(format!("miner-{i}")));
        nodes.push(PowNode::start(config).await.unwrap());
    }
    // `big` dials `small`: on a cross-direction duplicate, `big` keeps the inbound one.
    nodes.sort_by_key(|n| n.address().to_string());
    let [small, big] = &nodes[..] else { panic!() };
    big.connect_to(&small.address().to_string());
    for node in [small, big] {
        eventually("the miners are connected", 20, || {
            node.status().peers.len() == 1
        })
        .await;
    }

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(big.address()).await.unwrap();
    let (reader, writer) = pow::split(stream, WireLimits::default());
    let mut stranger = RawPeer { reader, writer };
    stranger
        .send(&PowPacket::Connect(Connect {
            network: net,
            listen: Some(small.address().to_string()),
            tip: big.tip().into(),
        }))
        .await;
    assert!(matches!(stranger.recv().await, PowPacket::Connect(_)));

    // The real `small` is still connected: what it mines reaches `big`.
    small.set_mining(true);
    eventually("small's blocks reach big", 30, || big.tip().height >= 1).await;
    stop_mining(small).await;
    drop(stranger);
    for node in nodes {
        node.stop().await;
    }
}
