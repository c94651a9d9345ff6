//! Issue 12 §3: a node handed sockets its caller bound serves on exactly those sockets, so
//! a test can write every validator's address into the contract before any validator
//! starts without letting go of a port in between.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::bound_listener;

use std::time::Duration;

use tally_core::SecretKey;
use tally_node::server::NodeListeners;
use tally_node::{Node, NodeConfig, NodeError};
use tally_proto::{Connection, Hello, Limits, Packet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_on_the_very_sockets_it_is_given() {
    let (socket, rpc_socket) = (bound_listener(), bound_listener());
    let (address, rpc) = (
        socket.local_addr().unwrap(),
        rpc_socket.local_addr().unwrap(),
    );
    let key = SecretKey::generate();
    let contract = common::quorum_contract(
        "prebound",
        std::slice::from_ref(&key),
        [address.to_string()],
        None,
        &[],
        4,
    );
    let hello = Packet::Hello(Hello {
        network: contract.id(),
        validator: None,
        address: None,
        certificates: None,
    });

    // A client connects and asks before the node exists: the kernel queues the connection
    // on the socket, so only a node serving on this very socket can ever answer it.
    let mut early = Connection::connect(
        &address.to_string(),
        Limits::default(),
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    early.send(&hello).await.unwrap();

    // The configured addresses cannot be bound here (192.0.2.1 is TEST-NET-1, no local
    // address), so a node that starts at all did not bind them; nor is `rpc` configured.
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::new(
        contract.clone(),
        key.clone(),
        "192.0.2.1:9".parse().unwrap(),
        dir.path().join("validator"),
    );
    config.rpc = None;
    let node = Node::start_with_listeners(
        config,
        NodeListeners {
            node: Some(socket),
            rpc: Some(rpc_socket),
        },
    )
    .await
    .unwrap();
    assert_eq!(node.address(), address);
    assert_eq!(node.rpc_address(), Some(rpc));

    let answer = tokio::time::timeout(Duration::from_secs(10), early.recv())
        .await
        .expect("the connection queued before the start is answered")
        .unwrap();
    let Packet::Hello(answer) = answer else {
        panic!("expected HELLO, got {answer:?}");
    };
    assert_eq!(answer.validator, Some(key.account()));
    assert_eq!(
        answer.address.as_deref(),
        Some(address.to_string().as_str()),
        "the node names the socket it serves on"
    );
    let status = common::control(rpc, "status").await;
    assert_eq!(
        status["result"]["validator"],
        serde_json::json!(key.account()),
        "{status}"
    );

    // The node owned the sockets: stopping it closes them, and their ports are free again.
    node.stop().await;
    drop(early);
    for closed in [address, rpc] {
        assert!(tokio::net::TcpStream::connect(closed).await.is_err());
        drop(std::net::TcpListener::bind(closed).unwrap());
    }

    // Without a socket the node binds its configured address, as before: here one that
    // is taken, which it reports.
    let taken = bound_listener();
    let mut config = NodeConfig::new(
        contract,
        key,
        taken.local_addr().unwrap(),
        dir.path().join("validator"),
    );
    config.rpc = None;
    let refused = Node::start(config)
        .await
        .err()
        .expect("the address is taken");
    assert!(
        matches!(&refused, NodeError::Bind { address, .. } if *address == taken.local_addr().unwrap()),
        "{refused}"
    );
}
