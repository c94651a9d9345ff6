//! What the integration tests share: sockets and ports, proofs of work, polling, the
//! control API; `pow` for the miners.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use tally_core::pow::IntroPowHasher;
use tally_core::{AccountId, Allocation, Amount, Mode, NetworkContract, SecretKey, ValidatorInfo};

pub mod pow;

/// A loopback socket, bound and kept, for [`tally_node::server::NodeListeners`]: the node
/// serves on this very socket, so nothing can take its port between picking it and serving
/// (binding port 0 and dropping the socket, then binding the address again, left that
/// window open). Bind every validator's socket first, write their addresses into the
/// contract, then start each node on its own.
///
/// The port is below the kernel's range for outgoing connections (32768 and up on Linux),
/// from a per-process counter at a per-process start, taken only if free: a test that
/// stops a validator and restarts it at the same address must bind that port again, and
/// while the validator is down, peers and wallets keep connecting to it; a port from the
/// outgoing range could meanwhile become one of those connections' own port (or a
/// connection to itself), and the restart could not bind it.
pub fn bound_listener() -> TcpListener {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let port = LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let address = SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).unwrap()));
        if let Ok(listener) = TcpListener::bind(address) {
            return listener;
        }
    }
}

/// Calls `method` (no params) on the control API at `rpc`; the JSON-RPC answer.
pub async fn control(rpc: SocketAddr, method: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}"}}"#);
    let mut stream = tokio::net::TcpStream::connect(rpc).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

/// The first proof of work of `account` at `bits`.
pub fn proof(account: &AccountId, bits: u32) -> u64 {
    IntroPowHasher::new(account)
        .search(0..u64::MAX, bits)
        .unwrap()
}

/// Polls `check` every 100 ms until it holds, for at most 15 s; whether it held.
pub async fn wait_until<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A quorum network of `keys` at `addresses` (one each) whose intros cost `bits` of proof
/// of work and pay 10 cash, where `funded` hold 100 cash each.
pub fn quorum_contract(
    name: &str,
    keys: &[SecretKey],
    addresses: impl IntoIterator<Item = String>,
    tracker: Option<String>,
    funded: &[SecretKey],
    bits: u32,
) -> NetworkContract {
    NetworkContract {
        name: name.into(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: Amount::from_cash(10).unwrap(),
        intro_pow_bits: bits,
        validators: keys
            .iter()
            .zip(addresses)
            .map(|(k, address)| ValidatorInfo {
                key: k.account(),
                address,
            })
            .collect(),
        tracker,
        genesis: funded
            .iter()
            .map(|k| Allocation {
                account: k.account(),
                amount: Amount::from_cash(100).unwrap(),
            })
            .collect(),
        pow: None,
        max_clock_skew_ms: None,
    }
}
