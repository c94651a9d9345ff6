//! The node: binds its sockets, starts the engine, serves connections, and stops cleanly,
//! or by itself when its storage fails (crash-only; see [`crate::engine`]).

use std::net::SocketAddr;
use std::sync::Arc;

use tally_core::{ContractError, NetworkContract};
use tally_ledger::{LedgerStore, RedbLedgerStore, StoreError, Validator};
use tally_proto::admission::{Admission, LogGate, Refused};
use tally_proto::{ErrorCode, Packet};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::NodeConfig;
use crate::connection::Shared;
use crate::discovery::{AddressBook, CommitteePeers, Registrar, TrackerSettings};
use crate::engine::{self, EngineHandle};
use crate::notices;
use crate::pow::peers::ServingBudgets;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    /// A socket given in [`NodeListeners`] could not be used.
    #[error("cannot serve on the given listener: {0}")]
    Listener(std::io::Error),
    #[error("cannot create the data folder {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("ledger storage: {0}")]
    Store(#[from] StoreError),
    #[error("contract: {0}")]
    Contract(#[from] ContractError),
    #[error("the node's key is not in the contract's committee")]
    NotAValidator,
    #[error("cannot start the engine thread: {0}")]
    Engine(std::io::Error),
}

/// A running validator.
pub struct Node {
    address: SocketAddr,
    rpc_address: Option<SocketAddr>,
    engine: EngineHandle,
    book: AddressBook,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    engine_thread: std::thread::JoinHandle<()>,
}

/// Sockets the caller bound before starting the node, for [`Node::start_with_listeners`].
///
/// A quorum contract names every validator's address before any validator starts, so a
/// caller that picks free ports (tests, a benchmark on a busy machine) must know them before
/// the nodes bind them. Binding port 0 and dropping the socket to learn a port leaves a
/// window in which another process may take it; binding here, reading the address back,
/// writing the contract and handing the very socket to the node leaves none. A given socket
/// keeps the backlog it was bound with (std's `bind` asks for 128).
#[derive(Debug, Default)]
pub struct NodeListeners {
    /// The node protocol's socket, served instead of binding [`NodeConfig::listen`] (which
    /// is then unused); `None` binds `listen`.
    pub node: Option<std::net::TcpListener>,
    /// The control API's socket, served instead of binding [`NodeConfig::rpc`] (which is
    /// then unused, and may be `None`); `None` binds `rpc` if it is set.
    pub rpc: Option<std::net::TcpListener>,
}

impl Node {
    /// Opens the ledger, binds the configured addresses and starts serving.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        Node::start_with_listeners(config, NodeListeners::default()).await
    }

    /// Like [`Node::start`], but serves on the sockets in `listeners` where given (binding
    /// the configured address for the others), so the node listens on exactly the socket
    /// the caller bound, with no window for another process to take its port.
    pub async fn start_with_listeners(
        config: NodeConfig,
        listeners: NodeListeners,
    ) -> Result<Node, NodeError> {
        let me = config.key.account();
        if !config.contract.validators.iter().any(|v| v.key == me) {
            return Err(NodeError::NotAValidator);
        }
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| NodeError::DataDir(config.data_dir.display().to_string(), e))?;
        let listener = match listeners.node {
            Some(prebound) => adopt(prebound)?,
            None => bind(config.listen).await?,
        };
        let address = listener.local_addr().map_err(|source| NodeError::Bind {
            address: config.listen,
            source,
        })?;
        let rpc_listener = match (listeners.rpc, config.rpc) {
            (Some(prebound), _) => Some(adopt(prebound)?),
            (None, Some(rpc)) => Some(bind(rpc).await?),
            (None, None) => None,
        };

        let path = config.data_dir.join("ledger.redb");
        let (validator, store, mut config) =
            tokio::task::spawn_blocking(move || -> Result<_, NodeError> {
                let store = RedbLedgerStore::open(&path, config.cache_bytes)?;
                let mut validator = Validator::new(config.key.clone(), &config.contract)?;
                validator.set_counterparts(config.counterparts.iter().map(NetworkContract::id));
                store.load(&mut validator, &config.contract)?;
                Ok((validator, store, config))
            })
            .await
            .map_err(|e| NodeError::Store(StoreError::Database(e.to_string())))??;
        // The genesis now lives in the ledger; the running node keeps no copy of it (a
        // contract may fund millions of accounts), so the network id is computed once.
        let network = *validator.network();
        config.contract.genesis = Vec::new();
        let config = Arc::new(config);
        tracing::info!(
            validator = %me.short(),
            network = %network,
            accounts = validator.account_count(),
            certificates = validator.log_len(),
            "ledger loaded"
        );
        let store: Arc<dyn LedgerStore> = Arc::new(store);
        let (notice_sender, notice_queue) = if config.counterparts.is_empty() {
            (None, None)
        } else {
            let (sender, queue) = tokio::sync::mpsc::channel(notices::QUEUE);
            (Some(sender), Some(queue))
        };
        let (engine, engine_thread) = engine::start(
            validator,
            store.clone(),
            config.max_batch,
            address.to_string(),
            notice_sender,
        )
        .map_err(NodeError::Engine)?;

        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        if let Some(queue) = notice_queue {
            tasks.spawn(notices::run(
                config.counterparts.clone(),
                notices::TIMEOUT,
                queue,
                cancel.clone(),
            ));
        }
        tasks.spawn(stop_on_storage_failure(engine.clone(), cancel.clone()));
        tasks.spawn(accept_loop(
            listener,
            engine.clone(),
            store.clone(),
            config.clone(),
            cancel.clone(),
        ));
        let book = AddressBook::default();
        let mut rpc_address = None;
        if let Some(rpc_listener) = rpc_listener {
            rpc_address = rpc_listener.local_addr().ok();
            tasks.spawn(crate::rpc::serve(
                rpc_listener,
                engine.clone(),
                book.clone(),
                config.clone(),
                network,
                cancel.clone(),
            ));
        }
        if let Some(settings) = &config.tracker {
            let registrar = Registrar::validator(
                settings,
                network,
                config.key.clone(),
                advertised_address(&config, settings, address),
            );
            let committee = CommitteePeers::new(
                book.clone(),
                config.contract.validators.iter().map(|v| v.key).collect(),
                me,
                settings.address.clone(),
            );
            tasks.spawn(registrar.run(committee, cancel.clone()));
        }
        for peer in config.contract.validators.iter().filter(|v| v.key != me) {
            tasks.spawn(crate::sync::sync_with_peer(
                peer.clone(),
                network,
                engine.clone(),
                store.clone(),
                config.clone(),
                book.clone(),
                cancel.clone(),
            ));
        }
        tracing::info!(%address, rpc = ?rpc_address, "validator listening");
        Ok(Node {
            address,
            rpc_address,
            engine,
            book,
            cancel,
            tasks,
            engine_thread,
        })
    }

    /// The other validators' addresses learned from the tracker.
    pub fn learned_peers(&self) -> Vec<(tally_core::AccountId, SocketAddr)> {
        self.book.entries()
    }

    /// Where the node protocol listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where the control API listens, if it runs.
    pub fn rpc_address(&self) -> Option<SocketAddr> {
        self.rpc_address
    }

    /// The engine, for in-process callers (benchmarks, the control API).
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// Whether the node stopped by itself: its storage failed, it closed its listener and
    /// its connections, and only [`Node::stop`] is left to call.
    pub fn is_stopped(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when the node stops by itself (a storage failure): the caller should
    /// [`Node::stop`] it and exit with an error, so that a supervisor restarts it from the
    /// last durable state.
    pub async fn stopped(&self) {
        self.cancel.cancelled().await;
    }

    /// Stops accepting, closes connections, lets the engine finish its batch, and waits.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
        drop(self.engine);
        let thread = self.engine_thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        tracing::info!("validator stopped");
    }
}

/// Listens on `address`.
async fn bind(address: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| NodeError::Bind { address, source })
}

/// Serves on a socket the caller bound: tokio needs it non-blocking.
fn adopt(listener: std::net::TcpListener) -> Result<TcpListener, NodeError> {
    listener
        .set_nonblocking(true)
        .map_err(NodeError::Listener)?;
    TcpListener::from_std(listener).map_err(NodeError::Listener)
}

/// Stops the node (`cancel`: the listener, every connection, the registration and the sync
/// tasks) once the engine reports a storage failure.
async fn stop_on_storage_failure(engine: EngineHandle, cancel: CancellationToken) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = engine.failed() => {
            tracing::error!(
                "storage failed: the validator stops (restart it to resume from the last durable state)"
            );
            cancel.cancel();
        }
    }
}

/// The address other validators should use: the configured one, else where we listen,
/// unless that is every interface, in which case the contract's address for us.
fn advertised_address(
    config: &NodeConfig,
    settings: &TrackerSettings,
    listening: SocketAddr,
) -> SocketAddr {
    if let Some(advertise) = settings.advertise {
        return advertise;
    }
    if !listening.ip().is_unspecified() {
        return listening;
    }
    let me = config.key.account();
    config
        .contract
        .validators
        .iter()
        .find(|v| v.key == me)
        .and_then(|v| v.address.parse::<SocketAddr>().ok())
        .unwrap_or(listening)
}

async fn accept_loop(
    listener: TcpListener,
    engine: EngineHandle,
    store: Arc<dyn LedgerStore>,
    config: Arc<NodeConfig>,
    cancel: CancellationToken,
) {
    let admission = Admission::new(config.admission, committee_addresses(&config.contract));
    let shared = Arc::new(Shared {
        engine,
        store,
        config: config.clone(),
        cancel: cancel.clone(),
        bulk: Arc::new(Semaphore::new(config.max_bulk_answers.max(1))),
        log: Arc::new(LogGate::default()),
        admission: admission.clone(),
        bulk_rate: std::sync::Mutex::new(ServingBudgets::new(
            config.bulk_per_sec,
            config.bulk_per_sec.saturating_mul(2),
            4096,
        )),
    });
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = match admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refused) => {
                refuse(&stream, &refused);
                if let Some(held_back) = shared.log.pass(peer.ip(), std::time::Instant::now()) {
                    tracing::warn!(%peer, held_back, "{refused}; refusing");
                }
                continue;
            }
        };
        let trusted = admission.is_trusted(peer.ip());
        let shared = shared.clone();
        connections.spawn(async move {
            crate::connection::serve(stream, peer, trusted, shared).await;
            drop(admitted);
        });
    }
    connections.shutdown().await;
}

/// The IP addresses the contract gives the committee: their connections may use the
/// room kept for them and are not held to the per-address limit.
fn committee_addresses(contract: &NetworkContract) -> Vec<std::net::IpAddr> {
    contract
        .validators
        .iter()
        .filter_map(|v| v.address.parse::<SocketAddr>().ok())
        .map(|address| address.ip())
        .collect()
}

/// Tells a refused client why in one `ERROR` frame, if its socket takes it at once, and
/// lets the socket close: a refusal never waits on the refused. A host serving a penalty
/// for malformed data was told why when it earned it; its reconnects are closed without a
/// word, so a flood of them costs an accept and a close, nothing more.
fn refuse(stream: &TcpStream, refused: &Refused) {
    if matches!(refused, Refused::Penalised) {
        return;
    }
    let packet = Packet::error(ErrorCode::Busy, format!("{refused}; try again later"));
    if let Ok(body) = serde_json::to_vec(&packet) {
        let _ = stream.try_write(&tally_proto::encode_frame(&body));
    }
}
