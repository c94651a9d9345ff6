//! What the integration tests share: ports, proofs of work, polling; `pow` for the miners.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tally_core::pow::IntroPowHasher;
use tally_core::{AccountId, Allocation, Amount, Mode, NetworkContract, SecretKey, ValidatorInfo};

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
    }
}
