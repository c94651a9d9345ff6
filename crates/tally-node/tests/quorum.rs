//! Four validators on 127.0.0.1 over real TCP and real redb files, driven by the wallet's
//! client: the behaviours issue 2 lists, each asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bound_listener, wait_until};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tally_core::{
    AccountId, Amount, Certificate, IntroKey, NetworkContract, Order, SecretKey, SignedOrder,
    Transfer, Vote,
};
use tally_node::server::NodeListeners;
use tally_node::{Node, NodeConfig};
use tally_proto::{Connection, ErrorCode, Hello, LedgerRequest, Limits, Packet};
use tally_wallet::{ClientError, QuorumClient, Wallet, ops};

/// The proof of work of `account` at this file's difficulty.
fn proof_at(account: &AccountId) -> u64 {
    common::proof(account, BITS)
}

const BITS: u32 = 4;

struct Net {
    contract: NetworkContract,
    keys: Vec<SecretKey>,
    addresses: Vec<SocketAddr>,
    /// Each validator's control API.
    rpcs: Vec<SocketAddr>,
    nodes: Vec<Option<Node>>,
    dir: tempfile::TempDir,
    funded: Vec<SecretKey>,
}

impl Net {
    async fn start(funded: usize) -> Net {
        let keys: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
        // Every socket is bound before the contract is written, and each node serves on
        // its own: no port is free between picking it and serving on it.
        let listeners: Vec<NodeListeners> = (0..4)
            .map(|_| NodeListeners {
                node: Some(bound_listener()),
                rpc: Some(bound_listener()),
            })
            .collect();
        let local = |listener: &Option<std::net::TcpListener>| {
            listener.as_ref().unwrap().local_addr().unwrap()
        };
        let addresses: Vec<SocketAddr> = listeners.iter().map(|l| local(&l.node)).collect();
        let rpcs: Vec<SocketAddr> = listeners.iter().map(|l| local(&l.rpc)).collect();
        let funded: Vec<SecretKey> = (0..funded).map(|_| SecretKey::generate()).collect();
        let contract = common::quorum_contract(
            "it",
            &keys,
            addresses.iter().map(SocketAddr::to_string),
            None,
            &funded,
            BITS,
        );
        let mut net = Net {
            contract,
            keys,
            addresses,
            rpcs,
            nodes: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            funded,
        };
        for (i, listeners) in listeners.into_iter().enumerate() {
            let config = net.config(i, Duration::from_millis(200));
            let node = Node::start_with_listeners(config, listeners).await.unwrap();
            assert_eq!(node.address(), net.addresses[i]);
            net.nodes.push(Some(node));
        }
        net
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("validator-{i}"))
    }

    /// Validator `i`'s config, at its address in the contract.
    fn config(&self, i: usize, sync_interval: Duration) -> NodeConfig {
        let mut config = NodeConfig::new(
            self.contract.clone(),
            self.keys[i].clone(),
            self.addresses[i],
            self.data_dir(i),
        );
        config.sync_interval = sync_interval;
        config.rpc = Some(self.rpcs[i]);
        config.idle_timeout = Duration::from_secs(5);
        config.limits.max_frame = 64 * 1024;
        config
    }

    /// Validator `i` again, at the addresses it served on before it stopped: they are
    /// fixed by the contract, so they must be bound again (the listeners are gone with
    /// the stopped node); a port let go a moment ago may still be settling, so retry
    /// briefly.
    async fn start_node(&self, i: usize, sync_interval: Duration) -> Node {
        let config = self.config(i, sync_interval);
        for _ in 0..50 {
            match Node::start(config.clone()).await {
                Ok(node) => return node,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Node::start(config).await.unwrap()
    }

    async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.stop().await;
        }
    }

    async fn restart(&mut self, i: usize, sync_interval: Duration) {
        let node = self.start_node(i, sync_interval).await;
        self.nodes[i] = Some(node);
    }

    fn client(&self) -> QuorumClient {
        QuorumClient::new(self.contract.clone(), Duration::from_secs(3)).unwrap()
    }

    async fn balances(&self, account: &AccountId) -> Vec<Option<i128>> {
        let client = self.client();
        let request = LedgerRequest {
            accounts: Some(vec![*account]),
            ..LedgerRequest::default()
        };
        client
            .ledger_all(&request)
            .await
            .into_iter()
            .map(|a| {
                a.result
                    .ok()
                    .map(|v| v.ledger.get(account).map_or(0, |e| e.balance))
            })
            .collect()
    }

    async fn shutdown(mut self) {
        for i in 0..4 {
            self.stop(i).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introduce_two_keys_and_pay_between_them() {
    let net = Net::start(0).await;
    let wallet_dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::open(wallet_dir.path()).unwrap();
    let client = net.client();
    let alice = SecretKey::generate();
    let bob = SecretKey::generate();
    for key in [&alice, &bob] {
        let receipt = ops::intro(&wallet, &client, key, proof_at(&key.account()))
            .await
            .unwrap();
        assert_eq!(receipt.acknowledged, 4);
        receipt
            .certificate
            .verify(client.committee(), client.network())
            .unwrap();
    }
    // A second introduction of the same key is refused everywhere.
    let again = ops::intro(&wallet, &client, &alice, proof_at(&alice.account())).await;
    assert!(
        matches!(
            again,
            Err(ops::OpError::Client(ClientError::NoQuorum { votes: 0, .. }))
        ),
        "{again:?}"
    );

    let receipt = ops::pay(
        &wallet,
        &client,
        &alice,
        bob.account(),
        "3.25".parse().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(receipt.acknowledged, 4);
    assert!(
        receipt.path.exists(),
        "the certificate is kept as a receipt"
    );
    assert_eq!(
        net.balances(&alice.account()).await,
        vec![Some(6_750_000); 4]
    );
    assert_eq!(
        net.balances(&bob.account()).await,
        vec![Some(13_250_000); 4]
    );
    // The certificate was applied everywhere: no validator holds a vote in alice's slot.
    let request = LedgerRequest {
        accounts: Some(vec![alice.account()]),
        ..LedgerRequest::default()
    };
    for answer in net.client().ledger_all(&request).await {
        assert_eq!(answer.result.unwrap().ledger[&alice.account()].locked, None);
    }
    // Overdraft: refused by every validator, nothing moves.
    let overdraft = ops::pay(
        &wallet,
        &client,
        &alice,
        bob.account(),
        "7".parse().unwrap(),
    )
    .await;
    assert!(
        matches!(
            overdraft,
            Err(ops::OpError::Client(ClientError::NoQuorum { votes: 0, .. }))
        ),
        "{overdraft:?}"
    );
    assert_eq!(
        net.balances(&alice.account()).await,
        vec![Some(6_750_000); 4]
    );
    assert!(
        wallet.pending(&alice.account()).unwrap().is_none(),
        "a refused order is not left pending"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_spend_never_certifies_both_orders() {
    let net = Net::start(1).await;
    let payer = net.funded[0].clone();
    let network = net.contract.id();
    let order = |n: u8| {
        SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: payer.account(),
                recipient: SecretKey::from_bytes([n; 32]).account(),
                amount: Amount::from_cash(60).unwrap(),
                sequence: 0,
            }),
            &payer,
            &network,
        )
    };
    let (a, b) = (order(1), order(2));
    // Each validator gets both orders at once, in a different order on each, over
    // separate connections.
    let mut tasks = Vec::new();
    for (i, address) in net.addresses.iter().enumerate() {
        for (first, second) in if i % 2 == 0 {
            [(a.clone(), b.clone())]
        } else {
            [(b.clone(), a.clone())]
        } {
            for o in [first, second] {
                let address = address.to_string();
                tasks.push(tokio::spawn(async move {
                    let mut conn =
                        Connection::connect(&address, Limits::default(), Duration::from_secs(3))
                            .await
                            .unwrap();
                    (o.clone(), conn.call(&Packet::ReqPay(o)).await.unwrap())
                }));
            }
        }
    }
    let mut votes_a = Vec::new();
    let mut votes_b = Vec::new();
    for task in tasks {
        let (o, answer) = task.await.unwrap();
        if let Packet::RespPay(reply) = answer {
            if o == a {
                votes_a.extend(reply.votes)
            } else {
                votes_b.extend(reply.votes)
            }
        } else {
            assert!(
                matches!(answer, Packet::Error(ref e) if e.code == ErrorCode::Conflict),
                "{answer:?}"
            );
        }
    }
    assert_eq!(
        votes_a.len() + votes_b.len(),
        4,
        "each validator votes exactly once for the slot"
    );
    assert!(
        votes_a.len() < 3 || votes_b.len() < 3,
        "both orders gathered a quorum"
    );
    // Every validator's signed view names the order it holds its vote for in the slot.
    let client = net.client();
    let request = LedgerRequest {
        accounts: Some(vec![payer.account()]),
        ..LedgerRequest::default()
    };
    let held: Vec<_> = client
        .ledger_all(&request)
        .await
        .into_iter()
        .map(|answer| answer.result.unwrap().ledger[&payer.account()].locked)
        .collect();
    let (digest_a, digest_b) = (a.order.digest(&network), b.order.digest(&network));
    assert_eq!(
        held.iter().filter(|h| **h == Some(digest_a)).count(),
        votes_a.len()
    );
    assert_eq!(
        held.iter().filter(|h| **h == Some(digest_b)).count(),
        votes_b.len()
    );
    // The client cannot certify both either, however it asks.
    let certified = [
        client.certify(&a).await.is_ok(),
        client.certify(&b).await.is_ok(),
    ];
    assert!(!(certified[0] && certified[1]));
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_validator_down_still_certifies_two_down_changes_nothing() {
    let mut net = Net::start(2).await;
    let wallet_dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::open(wallet_dir.path()).unwrap();
    let (payer, payee) = (net.funded[0].clone(), net.funded[1].clone());
    net.stop(3).await;
    let client = net.client();
    let receipt = ops::pay(
        &wallet,
        &client,
        &payer,
        payee.account(),
        Amount::from_cash(5).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(receipt.acknowledged, 3);
    assert_eq!(receipt.certificate.votes.len(), 3);

    net.stop(2).await;
    let client = net.client();
    let before = net.balances(&payer.account()).await;
    let result = ops::pay(
        &wallet,
        &client,
        &payer,
        payee.account(),
        Amount::from_cash(5).unwrap(),
    )
    .await;
    match result {
        Err(ops::OpError::Client(ClientError::NoQuorum { votes, needed, .. })) => {
            assert_eq!((votes, needed), (2, 3))
        }
        other => panic!("expected no quorum, got {other:?}"),
    }
    assert_eq!(
        net.balances(&payer.account()).await,
        before,
        "no balance moved"
    );
    assert_eq!(before[..2], [Some(95_000_000), Some(95_000_000)]);
    // The order stays journaled: the validators that voted hold a lock for it.
    assert!(wallet.pending(&payer.account()).unwrap().is_some());

    // Once a validator is back, the next payment first finishes the interrupted one.
    net.restart(2, Duration::from_millis(200)).await;
    let client = net.client();
    let receipt = ops::pay(
        &wallet,
        &client,
        &payer,
        payee.account(),
        Amount::from_cash(1).unwrap(),
    )
    .await
    .unwrap();
    assert!(receipt.finished_pending.is_some());
    assert!(
        wait_until(|| async { net.balances(&payer.account()).await[..3] == [Some(89_000_000); 3] })
            .await
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_validator_catches_up_from_its_peers() {
    let mut net = Net::start(2).await;
    let wallet_dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::open(wallet_dir.path()).unwrap();
    let (payer, payee) = (net.funded[0].clone(), net.funded[1].clone());
    net.stop(3).await;
    let client = net.client();
    for _ in 0..5 {
        ops::pay(
            &wallet,
            &client,
            &payer,
            payee.account(),
            Amount::from_cash(2).unwrap(),
        )
        .await
        .unwrap();
    }
    net.restart(3, Duration::from_millis(100)).await;
    let caught_up =
        wait_until(|| async { net.balances(&payee.account()).await == vec![Some(110_000_000); 4] })
            .await;
    assert!(
        caught_up,
        "validator 3 did not catch up: {:?}",
        net.balances(&payee.account()).await
    );
    let views = client.ledger_all(&LedgerRequest::default()).await;
    let fingerprints: Vec<_> = views
        .iter()
        .map(|v| v.result.as_ref().unwrap().fingerprint(client.network()))
        .collect();
    assert!(
        fingerprints.windows(2).all(|w| w[0] == w[1]),
        "all four validators hold the same ledger"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_pushes_missing_certificates_to_a_lagging_validator() {
    let mut net = Net::start(2).await;
    let wallet_dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::open(wallet_dir.path()).unwrap();
    let (payer, payee) = (net.funded[0].clone(), net.funded[1].clone());
    net.stop(3).await;
    let client = net.client();
    for _ in 0..3 {
        ops::pay(
            &wallet,
            &client,
            &payer,
            payee.account(),
            Amount::from_cash(30).unwrap(),
        )
        .await
        .unwrap();
    }
    // Back, but with peer sync effectively off: only the wallet can bring it up to date.
    net.restart(3, Duration::from_secs(3600)).await;
    let client = net.client();
    // The payee spends money it received while validator 3 was down.
    let receipt = ops::pay(
        &wallet,
        &client,
        &payee,
        payer.account(),
        Amount::from_cash(150).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        receipt.certificate.votes.len(),
        4,
        "the lagging validator voted after being brought up to date"
    );
    assert_eq!(
        net.balances(&payee.account()).await,
        vec![Some(40_000_000); 4]
    );
    assert_eq!(
        net.balances(&payer.account()).await,
        vec![Some(160_000_000); 4]
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let net = Net::start(1).await;
    let payer = net.funded[0].clone();
    let network = net.contract.id();
    let address = net.addresses[0].to_string();
    let mut conn = Connection::connect(&address, Limits::default(), Duration::from_secs(3))
        .await
        .unwrap();
    let code = |p: Packet| match p {
        Packet::Error(e) => Some(e.code),
        _ => None,
    };

    // Wrong network.
    let other = NetworkContract {
        name: "other".into(),
        ..net.contract.clone()
    };
    let hello = Packet::Hello(Hello {
        network: other.id(),
        validator: None,
        address: None,
        certificates: None,
    });
    assert_eq!(
        code(conn.call(&hello).await.unwrap()),
        Some(ErrorCode::WrongNetwork)
    );
    // An order signed for another network does not verify here.
    let foreign = SignedOrder::sign(
        Order::Transfer(Transfer {
            sender: payer.account(),
            recipient: SecretKey::generate().account(),
            amount: Amount::from_cash(1).unwrap(),
            sequence: 0,
        }),
        &payer,
        &other.id(),
    );
    assert_eq!(
        code(conn.call(&Packet::ReqPay(foreign)).await.unwrap()),
        Some(ErrorCode::BadSignature)
    );
    // A bad signature.
    let mut forged = SignedOrder::sign(
        Order::Transfer(Transfer {
            sender: payer.account(),
            recipient: SecretKey::generate().account(),
            amount: Amount::from_cash(1).unwrap(),
            sequence: 0,
        }),
        &payer,
        &network,
    );
    forged.signature = SecretKey::generate().sign(b"something else");
    assert_eq!(
        code(conn.call(&Packet::ReqPay(forged)).await.unwrap()),
        Some(ErrorCode::BadSignature)
    );
    // Out of sequence, zero amount, overdraft.
    let order = |amount: u64, sequence: u64| {
        SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: payer.account(),
                recipient: SecretKey::from_bytes([7; 32]).account(),
                amount: Amount::from_microcash(amount),
                sequence,
            }),
            &payer,
            &network,
        )
    };
    assert_eq!(
        code(conn.call(&Packet::ReqPay(order(1, 5))).await.unwrap()),
        Some(ErrorCode::Sequence)
    );
    assert_eq!(
        code(conn.call(&Packet::ReqPay(order(0, 0))).await.unwrap()),
        Some(ErrorCode::BadAmount)
    );
    assert_eq!(
        code(
            conn.call(&Packet::ReqPay(order(101_000_000, 0)))
                .await
                .unwrap()
        ),
        Some(ErrorCode::InsufficientFunds)
    );
    // A bad proof of work.
    let newcomer = SecretKey::generate();
    let bad_nonce = (0..)
        .find(|n| !tally_core::pow::check_intro_pow(&newcomer.account(), *n, BITS))
        .unwrap();
    let intro = SignedOrder::sign(
        Order::IntroKey(IntroKey {
            account: newcomer.account(),
            proof_of_work: bad_nonce,
        }),
        &newcomer,
        &network,
    );
    assert_eq!(
        code(conn.call(&Packet::ReqIntroKey(intro)).await.unwrap()),
        Some(ErrorCode::BadProofOfWork)
    );

    // Certificates: too few signers, a duplicate signer, an outsider, a forged vote.
    let good = order(1_000_000, 0);
    let digest = good.order.digest(&network);
    let vote = |i: usize| Vote::sign(&net.keys[i], &network, &digest);
    let outsider = Vote::sign(&SecretKey::generate(), &network, &digest);
    let mut forged_vote = vote(2);
    forged_vote.signature = vote(1).signature;
    for votes in [
        vec![vote(0), vote(1)],
        vec![vote(0), vote(1), vote(0)],
        vec![vote(0), vote(1), outsider],
        vec![vote(0), vote(1), forged_vote],
    ] {
        let cert = Certificate::new(good.clone(), &network, votes);
        assert_eq!(
            code(conn.call(&Packet::ReqPayEnd(cert)).await.unwrap()),
            Some(ErrorCode::BadCertificate)
        );
    }
    // A certificate whose checksum lies.
    let mut lying = Certificate::new(good.clone(), &network, vec![vote(0), vote(1), vote(2)]);
    lying.checksum = order(2, 0).order.digest(&network);
    assert_eq!(
        code(conn.call(&Packet::ReqPayEnd(lying)).await.unwrap()),
        Some(ErrorCode::BadCertificate)
    );
    // A certificate out of sequence waits for its predecessor.
    let later = order(1, 1);
    let later_digest = later.order.digest(&network);
    let later_cert = Certificate::new(
        later,
        &network,
        (0..3)
            .map(|i| Vote::sign(&net.keys[i], &network, &later_digest))
            .collect(),
    );
    assert_eq!(
        code(conn.call(&Packet::ReqPayEnd(later_cert)).await.unwrap()),
        Some(ErrorCode::MissingPredecessor)
    );

    // Malformed JSON and unknown types: an error answer, and the connection goes on.
    conn.send_raw(bytes::Bytes::from_static(b"{not json"))
        .await
        .unwrap();
    assert_eq!(code(conn.recv().await.unwrap()), Some(ErrorCode::Malformed));
    conn.send_raw(bytes::Bytes::from_static(
        br#"{"Type":"REQ_STEAL","Data":{}}"#,
    ))
    .await
    .unwrap();
    assert_eq!(code(conn.recv().await.unwrap()), Some(ErrorCode::Malformed));
    conn.send_raw(bytes::Bytes::from_static(
        br#"{"Type":"RESP_PAY","Data":{"Checksum":"00","Signatures":{}}}"#,
    ))
    .await
    .unwrap();
    assert_eq!(code(conn.recv().await.unwrap()), Some(ErrorCode::Malformed));

    // Nothing above changed the ledger.
    assert_eq!(
        net.balances(&payer.account()).await,
        vec![Some(100_000_000); 4]
    );

    // An oversized frame closes that connection; the validator serves others.
    let mut raw = tokio::net::TcpStream::connect(&address).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(&(10u32 * 1024 * 1024).to_be_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "connection must be closed, got {read:?}"
    );
    // A peer that connects and says nothing is dropped after the idle timeout.
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(15), silent.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "idle connection must be closed"
    );
    let mut fresh = Connection::connect(&address, Limits::default(), Duration::from_secs(3))
        .await
        .unwrap();
    let hello = Packet::Hello(Hello {
        network,
        validator: None,
        address: None,
        certificates: None,
    });
    assert!(matches!(
        fresh.call(&hello).await.unwrap(),
        Packet::Hello(_)
    ));
    net.shutdown().await;
}

/// What is protected (DESIGN §3, containment): the control API reports a frozen slot for
/// what it is. The owner of an account signs two transfers for one sequence and each gets
/// the votes of two of the four validators: every validator's `slots` names the account,
/// the slot as `split`, both orders with two votes each, and counts one frozen slot; an
/// order still gathering votes is reported as `voting`, not frozen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_reports_a_split_slot_as_frozen() {
    let net = Net::start(2).await;
    let network = net.contract.id();
    let order = |payer: &SecretKey, n: u8| {
        SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: payer.account(),
                recipient: SecretKey::from_bytes([n; 32]).account(),
                amount: Amount::from_cash(1).unwrap(),
                sequence: 0,
            }),
            payer,
            &network,
        )
    };
    let (split, voting) = (&net.funded[0], &net.funded[1]);
    let (one, two) = (order(split, 1), order(split, 2));
    let half = order(voting, 3);
    for (i, address) in net.addresses.iter().enumerate() {
        let mut conn = Connection::connect(
            &address.to_string(),
            Limits::default(),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
        let chosen = if i < 2 { &one } else { &two };
        assert!(matches!(
            conn.call(&Packet::ReqPay(chosen.clone())).await.unwrap(),
            Packet::RespPay(_)
        ));
        if i == 0 {
            assert!(matches!(
                conn.call(&Packet::ReqPay(half.clone())).await.unwrap(),
                Packet::RespPay(_)
            ));
        }
    }
    for i in 0..4 {
        let answer = common::control(net.rpcs[i], "slots").await;
        let report = &answer["result"];
        assert_eq!(report["answered"], 4, "{answer}");
        assert_eq!(report["frozen"], 1, "{answer}");
        let slots = report["slots"].as_array().unwrap();
        let frozen = slots
            .iter()
            .find(|slot| slot["account"] == serde_json::json!(split.account()))
            .unwrap();
        assert_eq!(frozen["state"], "split", "{answer}");
        assert_eq!(frozen["sequence"], 0);
        let mut orders: Vec<(String, u64)> = frozen["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["order"].as_str().unwrap().to_owned(),
                    o["votes"].as_u64().unwrap(),
                )
            })
            .collect();
        orders.sort();
        let mut expected = vec![
            (one.order.digest(&network).to_string(), 2),
            (two.order.digest(&network).to_string(), 2),
        ];
        expected.sort();
        assert_eq!(orders, expected);
        let in_flight = slots
            .iter()
            .find(|slot| slot["account"] == serde_json::json!(voting.account()));
        if i == 0 {
            assert_eq!(in_flight.unwrap()["state"], "voting", "{answer}");
        } else {
            assert!(
                in_flight.is_none(),
                "only a validator that voted lists it: {answer}"
            );
        }
    }
    net.shutdown().await;
}
