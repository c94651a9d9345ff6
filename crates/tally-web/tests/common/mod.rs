//! What the browser tests stand on: a quorum network of four real validators on
//! 127.0.0.1 (real TCP, real redb files), wallet folders, and a headless Chromium driven
//! over WebDriver ([`browser`]).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod browser;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use tally_core::{Allocation, Amount, Mode, NetworkContract, SecretKey, ValidatorInfo};
use tally_node::server::NodeListeners;
use tally_node::{Node, NodeConfig};
use tally_web::{Web, WebConfig};

/// Four validators; `payer` holds 1,000 cash at genesis.
pub struct Net {
    pub contract: NetworkContract,
    pub nodes: Vec<Node>,
    pub dir: tempfile::TempDir,
    pub payer: SecretKey,
    /// A LiveConnect relay on 127.0.0.1, and its address.
    pub relay_handle: tally_relay::RelayHandle,
    pub relay: Option<String>,
}

/// A network's contract, keys and bound sockets, before any validator runs: two networks
/// that must know each other's contracts are prepared first, then launched.
pub struct Prepared {
    contract: NetworkContract,
    keys: Vec<SecretKey>,
    listeners: Vec<TcpListener>,
    payer: SecretKey,
}

impl Prepared {
    pub fn new(name: &str) -> Prepared {
        let keys: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
        let listeners: Vec<TcpListener> = (0..4)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let payer = SecretKey::generate();
        let contract = NetworkContract {
            name: name.into(),
            mode: Mode::Quorum,
            unit: "cash".into(),
            faucet: Amount::from_cash(10).unwrap(),
            intro_pow_bits: 4,
            validators: keys
                .iter()
                .zip(&listeners)
                .map(|(k, l)| ValidatorInfo {
                    key: k.account(),
                    address: l.local_addr().unwrap().to_string(),
                })
                .collect(),
            tracker: None,
            genesis: vec![Allocation {
                account: payer.account(),
                amount: Amount::from_cash(1000).unwrap(),
            }],
            pow: None,
            max_clock_skew_ms: Some(200),
        };
        Prepared {
            contract,
            keys,
            listeners,
            payer,
        }
    }

    pub fn contract(&self) -> &NetworkContract {
        &self.contract
    }

    /// Starts the validators (each knowing `counterparts`) and a relay.
    pub async fn launch(self, counterparts: Vec<NetworkContract>) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for (i, listener) in self.listeners.into_iter().enumerate() {
            let mut config = NodeConfig::new(
                self.contract.clone(),
                self.keys[i].clone(),
                listener.local_addr().unwrap(),
                dir.path().join(format!("validator-{i}")),
            );
            config.sync_interval = Duration::from_millis(200);
            config.counterparts = counterparts.clone();
            let listeners = NodeListeners {
                node: Some(listener),
                rpc: None,
            };
            nodes.push(Node::start_with_listeners(config, listeners).await.unwrap());
        }
        let relay_handle = tally_relay::Relay::bind(tally_relay::RelayConfig::listening_on(
            "127.0.0.1:0".parse().unwrap(),
        ))
        .await
        .unwrap()
        .spawn();
        Net {
            contract: self.contract,
            nodes,
            dir,
            payer: self.payer,
            relay: Some(relay_handle.local_addr().to_string()),
            relay_handle,
        }
    }
}

impl Net {
    /// Four validators and a relay; `payer` holds 1,000 cash at genesis.
    pub async fn start() -> Net {
        Prepared::new("web").launch(Vec::new()).await
    }

    /// Networks A and B that know each other (escrows on one cite the other).
    pub async fn pair() -> (Net, Net) {
        let (a, b) = (Prepared::new("A"), Prepared::new("B"));
        let (contract_a, contract_b) = (a.contract().clone(), b.contract().clone());
        (
            a.launch(vec![contract_b]).await,
            b.launch(vec![contract_a]).await,
        )
    }

    /// A wallet folder named `name`, holding `key` if given.
    pub fn wallet(&self, name: &str, key: Option<&SecretKey>) -> PathBuf {
        let dir = self.dir.path().join(name);
        let mut wallet = tally_wallet::Wallet::open(&dir).unwrap();
        if let Some(key) = key {
            wallet
                .add_key(Some(key.clone()), Some(name.into()))
                .unwrap();
        }
        dir
    }

    /// `tally web` on wallet folder `wallet`, on a free port.
    pub async fn web(&self, wallet: PathBuf) -> Web {
        self.web_on(wallet, vec![self.contract.clone()]).await
    }

    /// `tally web` on wallet folder `wallet` showing `networks`, with this net's relay.
    pub async fn web_on(&self, wallet: PathBuf, networks: Vec<NetworkContract>) -> Web {
        Web::start(WebConfig {
            wallet,
            networks,
            listen: "127.0.0.1:0".parse().unwrap(),
            timeout: Duration::from_secs(2),
            relay: self.relay.clone(),
        })
        .await
        .unwrap()
    }

    pub async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
        self.relay_handle.shutdown().await.unwrap();
    }
}
