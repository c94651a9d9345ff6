//! The miner daemon, [`PowNode`]: opens the chain, binds the sockets, starts the tasks
//! (accepting, the ticker, the heartbeat, the tracker registration, the control API) and
//! the mining thread, and stops them.
//!
//! A store failure stops the node (crash-only, as the validator): memory may be ahead of
//! disk, and a restart reloads the last durable tip. [`PowNode::stopped`] resolves then.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tally_chain::{Chain, ChainConfig, OpenError};
use tokio::net::TcpListener;
use tracing::info;

pub use crate::pow::clock::now_ms;
use crate::pow::config::{MinerConfig, MinerFiles};
use crate::pow::handle::{self, PowNodeHandle, PowStatus};
use crate::pow::state::Miner;
use crate::pow::{discovery, miner_thread, net, rpc};

/// Why a miner could not start.
#[derive(Debug, thiserror::Error)]
pub enum PowNodeError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the data folder {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("chain: {0}")]
    Chain(#[from] OpenError),
    #[error("the chain's opening task failed: {0}")]
    Join(String),
}

/// A running miner (or, with mining off, a validating and relaying full node).
pub struct PowNode {
    miner: Arc<Miner>,
    rpc_address: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    miner_thread: Option<std::thread::JoinHandle<()>>,
}

impl PowNode {
    /// Opens the chain, binds the sockets, joins the network through the tracker and
    /// starts serving (and mining, if configured).
    pub async fn start(config: MinerConfig) -> Result<PowNode, PowNodeError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| PowNodeError::DataDir(config.data_dir.display().to_string(), e))?;
        let path = config.data_dir.join(MinerFiles::CHAIN_DB);
        let contract = config.contract.clone();
        let chain = tokio::task::spawn_blocking(move || {
            Chain::open(&path, &contract, ChainConfig::default())
        })
        .await
        .map_err(|e| PowNodeError::Join(e.to_string()))??;
        let bind = |address: SocketAddr| async move {
            TcpListener::bind(address)
                .await
                .map_err(|source| PowNodeError::Bind { address, source })
        };
        let listener = bind(config.listen).await?;
        let bound = listener.local_addr().map_err(|source| PowNodeError::Bind {
            address: config.listen,
            source,
        })?;
        let address = config.announce.unwrap_or(bound);
        let rpc_listener = match config.rpc {
            Some(rpc) => Some(bind(rpc).await?),
            None => None,
        };
        let rpc_address = rpc_listener.as_ref().and_then(|l| l.local_addr().ok());
        let proof_of_work = intro_proof(&config).await;
        let threads = if config.threads == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            config.threads
        };
        let key = config.key.clone();
        let counterparts = config.counterparts.clone();
        let mut miner = Miner::new(config, chain, address, threads);
        let notices = (!counterparts.is_empty()).then(|| {
            let (queue, receiver) = tokio::sync::mpsc::channel(crate::notices::QUEUE);
            miner.notices = Some(queue);
            receiver
        });
        let miner = Arc::new(miner);
        info!(%address, network = %miner.network, mining = miner.config.mine, threads, "miner started");
        let mut tasks = vec![
            tokio::spawn(net::accept_loop(miner.clone(), listener)),
            tokio::spawn(miner_thread::ticker(miner.clone())),
            tokio::spawn(discovery::heartbeat(miner.clone())),
            tokio::spawn(discovery::register(miner.clone(), key, proof_of_work)),
        ];
        if let Some(receiver) = notices {
            tasks.push(tokio::spawn(crate::notices::run(
                counterparts,
                crate::notices::TIMEOUT,
                receiver,
                miner.cancel.clone(),
            )));
        }
        if let Some(listener) = rpc_listener {
            tasks.push(tokio::spawn(rpc::serve(
                listener,
                PowNodeHandle::new(miner.clone()),
                miner.cancel.clone(),
            )));
        }
        let thread_miner = miner.clone();
        let miner_thread = std::thread::Builder::new()
            .name("tally-miner".into())
            .spawn(move || miner_thread::run(thread_miner))
            .ok();
        Ok(PowNode {
            miner,
            rpc_address,
            tasks,
            miner_thread,
        })
    }

    /// Where miners and wallets connect (the announced address).
    pub fn address(&self) -> SocketAddr {
        self.miner.address
    }

    /// The control API's address, if it runs.
    pub fn rpc_address(&self) -> Option<SocketAddr> {
        self.rpc_address
    }

    /// A handle for status queries.
    pub fn handle(&self) -> PowNodeHandle {
        PowNodeHandle::new(self.miner.clone())
    }

    /// The node's status now.
    pub fn status(&self) -> PowStatus {
        handle::status(&self.miner)
    }

    /// Connections held now (miners and wallets, in and out): what the connection limits
    /// count.
    pub fn open_connections(&self) -> usize {
        self.miner.conns.open()
    }

    /// Ledger snapshots taken so far: one pass over the accounts under the chain lock
    /// each, at most one per tip however many `REQ_LEDGER` pages are asked.
    pub fn ledger_snapshots(&self) -> u64 {
        self.miner
            .ledger_snapshots
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The main chain's tip, read from the chain (it takes the chain's lock: for tests and
    /// tools; the status and the connections read the tip published on every change).
    pub fn tip(&self) -> tally_chain::TipInfo {
        self.miner.chain().tip()
    }

    /// Runs `f` on the chain (queries in tests and tools; keep it short, the node waits).
    pub fn with_chain<R>(&self, f: impl FnOnce(&Chain) -> R) -> R {
        f(&self.miner.chain())
    }

    /// Turns mining on or off (a node keeps validating and relaying either way).
    pub fn set_mining(&self, on: bool) {
        self.miner.mining.switch(on);
    }

    /// Turns mining off and waits until the mining thread has finished its block in
    /// progress (stored or dropped), so the tip no longer moves by our own hand.
    pub async fn stop_mining(&self) {
        self.set_mining(false);
        while !self.miner.mining.is_idle() && !self.miner.cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Cuts this node off (drops every connection, refuses new ones, dials nobody) or
    /// lets it reconnect: how tests make a network partition and heal it.
    pub fn set_isolated(&self, isolated: bool) {
        self.miner
            .isolated
            .store(isolated, std::sync::atomic::Ordering::Relaxed);
        if isolated {
            self.miner.conns.close_all();
        }
    }

    /// Dials a miner now (besides the ones the tracker lists).
    pub fn connect_to(&self, address: &str) {
        net::dial(&self.miner, address.to_string());
    }

    /// Whether the node stopped by itself (a storage failure).
    pub fn is_stopped(&self) -> bool {
        self.miner.cancel.is_cancelled()
    }

    /// Resolves when the node stops by itself.
    pub async fn stopped(&self) {
        self.miner.cancel.cancelled().await;
    }

    /// Stops serving and mining and waits for every task; the chain is durable at its last
    /// tip change.
    pub async fn stop(mut self) {
        self.miner.cancel.cancel();
        self.miner.mining.stop_round();
        self.miner.conns.close_all();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Some(thread) = self.miner_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        // Connection tasks hold the chain; wait until they let go so the database closes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.miner) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        info!(address = %self.miner.address, "miner stopped");
    }
}

impl Drop for PowNode {
    fn drop(&mut self) {
        self.miner.cancel.cancel();
        self.miner.mining.stop_round();
    }
}

/// The node key's intro proof of work, which the tracker checks: the configured one if it
/// is right, else searched now (the contract's `intro_pow_bits` are small for miners).
async fn intro_proof(config: &MinerConfig) -> u64 {
    let account = config.key.account();
    let bits = config.contract.intro_pow_bits;
    if let Some(nonce) = config.proof_of_work
        && tally_core::pow::check_intro_pow(&account, nonce, bits)
    {
        return nonce;
    }
    tokio::task::spawn_blocking(move || {
        tally_core::pow::IntroPowHasher::new(&account)
            .search(0..u64::MAX, bits)
            .unwrap_or(0)
    })
    .await
    .unwrap_or(0)
}
