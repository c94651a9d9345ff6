//! A network of four real validators on 127.0.0.1 (real TCP, real redb files) and coin
//! wallets on it, for the coin tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod chain;
pub mod live;
pub mod maker;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use tally_core::{
    AccountId, Allocation, Amount, Coin, Denomination, Mode, NetworkContract, Order, Payment,
    SecretKey, SignedOrder, Split, ValidatorInfo,
};
use tally_node::server::NodeListeners;
use tally_node::{Node, NodeConfig};
use tally_proto::{Connection, LedgerRequest, Limits, Packet};
use tally_wallet::coins::{CoinFolder, CoinStore};
use tally_wallet::{QuorumClient, Wallet};

pub const CASH: i128 = 1_000_000;

/// A loopback socket for a validator, bound and kept: the validator serves on this very
/// socket ([`NodeListeners`]), so nothing can take its port between picking it and serving
/// (binding port 0, dropping the socket and binding the address again left that window).
///
/// The port is below the kernel's range for outgoing connections (which starts at 32768),
/// from a per-process counter at a per-process start, taken only if free: a validator a
/// test stops is restarted at the same address, and while it is down, wallets and peers
/// keep connecting to it; a port from the outgoing range could meanwhile become one of
/// those connections' own port (or a connection to itself), and the restart could not
/// bind it.
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

/// `count` loopback addresses that refuse connections at once: ports 1 and up, which no
/// test binds (they need privileges), unlike a port picked free, which another process
/// may take and serve on.
pub fn closed_addresses(count: u16) -> Vec<SocketAddr> {
    (1..=count)
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .collect()
}

/// Four validators; `payer` holds 1,000 cash at genesis.
pub struct Net {
    pub contract: NetworkContract,
    pub keys: Vec<SecretKey>,
    pub addresses: Vec<SocketAddr>,
    pub nodes: Vec<Option<Node>>,
    pub dir: tempfile::TempDir,
    pub payer: SecretKey,
    /// Networks escrows here may cite (the validators send them notices).
    pub counterparts: Vec<NetworkContract>,
}

/// A network's contract and its validators' sockets, bound, before any validator runs: two
/// networks that must know each other's contracts are prepared first, then launched.
pub struct Prepared {
    net: Net,
    listeners: Vec<TcpListener>,
}

impl Prepared {
    pub fn contract(&self) -> &NetworkContract {
        &self.net.contract
    }

    /// Starts the validators, each knowing `counterparts`.
    pub async fn launch(self, sync_interval: Duration, counterparts: Vec<NetworkContract>) -> Net {
        let Prepared { mut net, listeners } = self;
        net.counterparts = counterparts;
        for (i, listener) in listeners.into_iter().enumerate() {
            let listeners = NodeListeners {
                node: Some(listener),
                rpc: None,
            };
            let config = net.config(i, sync_interval);
            let node = Node::start_with_listeners(config, listeners).await.unwrap();
            net.nodes.push(Some(node));
        }
        net
    }
}

impl Net {
    pub async fn start(sync_interval: Duration) -> Net {
        Net::start_funded(sync_interval, 1000).await
    }

    /// Four validators; `payer` holds `genesis_cash` at genesis.
    pub async fn start_funded(sync_interval: Duration, genesis_cash: u64) -> Net {
        Net::prepare("coins", genesis_cash)
            .launch(sync_interval, Vec::new())
            .await
    }

    /// A network named `name` whose `payer` holds `genesis_cash`, its sockets bound and
    /// nothing running yet.
    pub fn prepare(name: &str, genesis_cash: u64) -> Prepared {
        let keys: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
        // Every socket is bound before the contract is written, and each validator
        // serves on its own.
        let listeners: Vec<TcpListener> = (0..4).map(|_| bound_listener()).collect();
        let addresses: Vec<SocketAddr> =
            listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let payer = SecretKey::generate();
        let contract = NetworkContract {
            name: name.into(),
            mode: Mode::Quorum,
            unit: "cash".into(),
            faucet: Amount::from_cash(10).unwrap(),
            intro_pow_bits: 4,
            validators: keys
                .iter()
                .zip(&addresses)
                .map(|(k, a)| ValidatorInfo {
                    key: k.account(),
                    address: a.to_string(),
                })
                .collect(),
            tracker: None,
            genesis: vec![Allocation {
                account: payer.account(),
                amount: Amount::from_cash(genesis_cash).unwrap(),
            }],
            pow: None,
            // Escrows: claims before the deadline, refunds 200 ms after it.
            max_clock_skew_ms: Some(200),
        };
        let net = Net {
            contract,
            keys,
            addresses,
            nodes: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            payer,
            counterparts: Vec::new(),
        };
        Prepared { net, listeners }
    }

    /// Validator `i`'s config, at its address in the contract.
    fn config(&self, i: usize, sync_interval: Duration) -> NodeConfig {
        let mut config = NodeConfig::new(
            self.contract.clone(),
            self.keys[i].clone(),
            self.addresses[i],
            self.dir.path().join(format!("validator-{i}")),
        );
        config.sync_interval = sync_interval;
        config.idle_timeout = Duration::from_secs(5);
        config.counterparts = self.counterparts.clone();
        config
    }

    /// Validator `i` again, at its address in the contract, which it must bind anew (its
    /// socket closed when it stopped); a port let go a moment ago may still be settling,
    /// so retry briefly.
    pub async fn start_node(&self, i: usize, sync_interval: Duration) -> Node {
        let config = self.config(i, sync_interval);
        for _ in 0..50 {
            match Node::start(config.clone()).await {
                Ok(node) => return node,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Node::start(config).await.unwrap()
    }

    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.stop().await;
        }
    }

    pub async fn restart(&mut self, i: usize, sync_interval: Duration) {
        self.nodes[i] = Some(self.start_node(i, sync_interval).await);
    }

    pub fn client(&self) -> QuorumClient {
        QuorumClient::new(self.contract.clone(), Duration::from_secs(2)).unwrap()
    }

    /// A wallet folder holding `key` (if any) and its coin folders.
    pub fn wallet(&self, name: &str, key: Option<&SecretKey>) -> (Wallet, CoinStore) {
        let dir = self.dir.path().join(name);
        let mut wallet = Wallet::open(&dir).unwrap();
        if let Some(key) = key {
            wallet.add_key(Some(key.clone()), None).unwrap();
        }
        let store = CoinStore::open(&dir, self.contract.id()).unwrap();
        (wallet, store)
    }

    /// What the first validator that answers says `account` holds.
    pub async fn balance(&self, account: &AccountId) -> i128 {
        let request = LedgerRequest {
            accounts: Some(vec![*account]),
            ..LedgerRequest::default()
        };
        self.client()
            .ledger_all(&request)
            .await
            .into_iter()
            .find_map(|a| a.result.ok())
            .map_or(0, |view| view.ledger.get(account).map_or(0, |e| e.balance))
    }

    /// `order` sent straight to validator `i`, as no wallet would: its answer.
    pub async fn pay_at(&self, i: usize, order: &SignedOrder) -> Packet {
        let mut conn = Connection::connect(
            &self.addresses[i].to_string(),
            Limits::default(),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        conn.call(&Packet::ReqPay(order.clone())).await.unwrap()
    }

    /// `count` coins of 1 cash (at most 64), paid to fresh keys by the payer's order of
    /// `sequence` and put in `store`'s Bank.
    pub async fn one_cash_coins(
        &self,
        store: &CoinStore,
        sequence: u64,
        count: usize,
    ) -> Vec<Coin> {
        let coins: Vec<Coin> = (0..count)
            .map(|_| Coin {
                network: self.contract.id(),
                denomination: Denomination::One,
                secret: SecretKey::generate(),
                funding: None,
            })
            .collect();
        let split = SignedOrder::sign(
            Order::Split(Split {
                sender: self.payer.account(),
                sequence,
                outputs: coins
                    .iter()
                    .map(|c| Payment {
                        recipient: c.account(),
                        amount: c.amount(),
                    })
                    .collect(),
            }),
            &self.payer,
            &self.contract.id(),
        );
        let client = self.client();
        let certificate = client.certify(&split).await.unwrap();
        client.submit(&certificate).await;
        for coin in &coins {
            store.put(CoinFolder::Bank, coin).unwrap();
        }
        coins
    }

    pub async fn shutdown(mut self) {
        for i in 0..4 {
            self.stop(i).await;
        }
    }
}

pub fn cash(n: u64) -> Amount {
    Amount::from_cash(n).unwrap()
}

pub fn held(store: &CoinStore, folder: CoinFolder) -> Vec<u64> {
    store
        .list(folder)
        .unwrap()
        .iter()
        .map(|c| c.denomination.cash())
        .collect()
}

/// Files in the wallet's journal folder: entries of its own and batch journals.
pub fn pending_files(wallet: &Wallet) -> usize {
    std::fs::read_dir(wallet.dir().join("pending"))
        .unwrap()
        .count()
}

pub fn total(store: &CoinStore) -> i128 {
    let mut sum = 0;
    for folder in [CoinFolder::Bank, CoinFolder::Fracked] {
        sum += store
            .list(folder)
            .unwrap()
            .iter()
            .map(|c| i128::from(c.denomination.cash()) * CASH)
            .sum::<i128>();
    }
    sum
}
