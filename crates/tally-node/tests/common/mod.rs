//! What the integration tests share: ports, proofs of work, polling; `pow` for the miners.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tally_core::AccountId;
use tally_core::pow::IntroPowHasher;

pub mod pow;

/// A loopback port free a moment ago.
pub fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
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
