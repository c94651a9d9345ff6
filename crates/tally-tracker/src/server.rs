//! The tracker server: its shared state, its limits per address, and the accept loop; each
//! connection is served by [`crate::session`], which reads length-prefixed JSON requests
//! under the configured limits and feeds registrations through the batched
//! verify-and-commit pipeline.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use tally_proto::admission::LogGate;
use tally_proto::tracker::{Answer, AnswerPacket, PeerEntry, Refusal, answer_type};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::check::{CheckedRegistration, Networks, canonical_ip};
use crate::clock::Clock;
use crate::config::{Limits, TrackerConfig};
use crate::pipeline::{Job, JobKind, WriterSettings, run_verifier, run_writer};
use crate::registry::{Entry, Registry, RegistryLimits};
use crate::store::{Store, StoreError};

/// Why a tracker could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("network contract {name:?}: {source}")]
    Contract {
        name: String,
        source: tally_core::ContractError,
    },
    #[error("starting a worker thread: {0}")]
    Thread(std::io::Error),
    #[error("a worker task failed: {0}")]
    Join(String),
}

/// Numbers a caller may want to show or check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Entries stored (live or awaiting the sweep).
    pub entries: usize,
    /// Open connections.
    pub connections: usize,
    /// Bytes the registry's tables hold.
    pub registry_bytes: usize,
}

struct IpState {
    connections: usize,
    tokens: f64,
    /// When `tokens` was last brought up to date (the tracker's clock, ms).
    refilled_ms: u64,
}

/// Tokens `rate` per second adds between `from_ms` and `to_ms`.
fn refill(rate: f64, from_ms: u64, to_ms: u64) -> f64 {
    to_ms.saturating_sub(from_ms) as f64 / 1000.0 * rate
}

pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) networks: Networks,
    pub(crate) registry: Arc<RwLock<Registry>>,
    jobs: mpsc::Sender<Job>,
    ips: Mutex<HashMap<IpAddr, IpState>>,
    connections: AtomicUsize,
    pub(crate) clock: Clock,
    /// A few log lines per host per second: one host's floods cost the log little.
    log: LogGate,
}

impl Shared {
    fn stats(&self) -> Stats {
        let registry = self.registry.read();
        Stats {
            entries: registry.len(),
            connections: self.connections.load(Ordering::Relaxed),
            registry_bytes: registry.memory_bytes(),
        }
    }

    /// Whether a log line about `peer` may be written now: `Some(n)` (write it, saying
    /// `n` lines about its host were held back before it) or `None` (stay quiet).
    pub(crate) fn loud(&self, peer: &SocketAddr) -> Option<u64> {
        self.log.pass(peer.ip(), std::time::Instant::now())
    }

    /// Admits a connection from `ip` or says why not.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionGuard, Refusal> {
        if self.connections.load(Ordering::Relaxed) >= self.limits.max_connections {
            return Err(Refusal::TooManyConnections);
        }
        let mut ips = self.ips.lock();
        if ips.len() > 2 * self.limits.max_connections {
            let now = self.clock.now_ms();
            let burst = self.burst();
            let rate = f64::from(self.limits.requests_per_ip_per_sec);
            ips.retain(|_, s| {
                s.connections > 0
                    || (rate > 0.0 && s.tokens + refill(rate, s.refilled_ms, now) < burst)
            });
        }
        let burst = self.burst();
        let state = ips.entry(ip).or_insert_with(|| IpState {
            connections: 0,
            tokens: burst,
            refilled_ms: self.clock.now_ms(),
        });
        if state.connections >= self.limits.max_connections_per_ip {
            return Err(Refusal::TooManyConnectionsFromAddress);
        }
        state.connections += 1;
        self.connections.fetch_add(1, Ordering::Relaxed);
        Ok(ConnectionGuard {
            shared: Arc::clone(self),
            ip,
        })
    }

    fn burst(&self) -> f64 {
        2.0 * f64::from(self.limits.requests_per_ip_per_sec)
    }

    /// Takes one request token for `ip`; false when it has none left.
    pub(crate) fn allow_request(&self, ip: IpAddr) -> bool {
        let rate = self.limits.requests_per_ip_per_sec;
        if rate == 0 {
            return true;
        }
        let burst = self.burst();
        let mut ips = self.ips.lock();
        let Some(state) = ips.get_mut(&ip) else {
            return true;
        };
        let now = self.clock.now_ms();
        state.tokens = (state.tokens + refill(f64::from(rate), state.refilled_ms, now)).min(burst);
        state.refilled_ms = now;
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Sends a checked registration through the pipeline and waits for its outcome.
    pub(crate) async fn submit(
        &self,
        reg: CheckedRegistration,
        kind: JobKind,
    ) -> Result<CheckedRegistration, Refusal> {
        let (reply, answer) = oneshot::channel();
        let job = Job { reg, kind, reply };
        match tokio::time::timeout(self.limits.request_timeout, self.jobs.send(job)).await {
            Err(_) => return Err(Refusal::Busy),
            Ok(Err(_)) => return Err(Refusal::ShuttingDown),
            Ok(Ok(())) => {}
        }
        answer.await.map_err(|_| Refusal::ShuttingDown)
    }

    pub(crate) fn peers(
        &self,
        network: &tally_core::NetworkId,
        n: usize,
        exclude: impl Fn(&Entry) -> bool,
    ) -> Vec<PeerEntry> {
        let now = self.clock.now_ms();
        let registry = self.registry.read();
        registry
            .sample(
                network,
                n,
                now,
                self.limits.ttl_ms(),
                &mut rand::thread_rng(),
                exclude,
            )
            .into_iter()
            .map(|e| PeerEntry {
                fingerprint: e.account,
                proof_of_work: e.proof_of_work,
                address: e.address(),
                last_seen: e.seen,
            })
            .collect()
    }
}

/// Releases a connection's slot when the connection ends.
pub(crate) struct ConnectionGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
        let mut ips = self.shared.ips.lock();
        if let Some(state) = ips.get_mut(&self.ip) {
            state.connections = state.connections.saturating_sub(1);
            if state.connections == 0 && self.shared.limits.requests_per_ip_per_sec == 0 {
                ips.remove(&self.ip);
            }
        }
    }
}

/// A bound tracker, ready to serve.
pub struct Tracker {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Tracker {
    /// Opens the database, reloads live entries (dropping expired ones), starts the
    /// verifier and writer threads and binds the listener. Port 0 picks a free port, which
    /// [`Tracker::local_addr`] reads back before the tracker serves.
    pub async fn bind(config: TrackerConfig) -> Result<Tracker, TrackerError> {
        Tracker::start(config, None, None).await
    }

    /// As [`Tracker::bind`], but serves on `listener`, already bound by the caller
    /// (`config.listen` is not used). A caller that must know the port, or hold it, before
    /// the tracker starts never has to let go of it: no other program can take it between.
    pub async fn with_listener(
        config: TrackerConfig,
        listener: TcpListener,
    ) -> Result<Tracker, TrackerError> {
        Tracker::start(config, Some(listener), None).await
    }

    /// As [`Tracker::bind`], but keeps its registrations in `store`, already opened by the
    /// caller (`config.data_dir` is not used): for a store on a storage backend of the
    /// caller's choosing ([`Store::with_backend`]).
    pub async fn with_store(config: TrackerConfig, store: Store) -> Result<Tracker, TrackerError> {
        Tracker::start(config, None, Some(store)).await
    }

    async fn start(
        config: TrackerConfig,
        listener: Option<TcpListener>,
        store: Option<Store>,
    ) -> Result<Tracker, TrackerError> {
        for contract in &config.contracts {
            contract
                .validate()
                .map_err(|source| TrackerError::Contract {
                    name: contract.name.clone(),
                    source,
                })?;
        }
        let limits = config.limits.clone();
        let networks = Networks::from_contracts(&config.contracts);
        let registry_limits = RegistryLimits {
            max_entries: limits.max_entries,
            max_entries_per_ip: limits.max_entries_per_ip,
            max_entries_per_address: limits.max_entries_per_address,
        };
        let data_dir = config.data_dir.clone();
        let nets = networks.clone();
        let ttl_ms = limits.ttl_ms();
        let cache = limits.db_cache_bytes;
        let clock = config.clock.clone();
        let load_clock = clock.clone();
        let (store, registry) = tokio::task::spawn_blocking(move || {
            let mut store = match store {
                Some(store) => store,
                None => Store::open(&data_dir, cache)?,
            };
            let mut registry = Registry::new(nets.ids(), registry_limits);
            let report = store.load(
                &mut registry,
                &|id| nets.get(id).is_some(),
                load_clock.now_ms(),
                ttl_ms,
            )?;
            tracing::info!(
                loaded = report.loaded,
                rows = report.rows,
                deleted = report.deleted,
                other_networks = report.other_networks,
                corrupt = report.corrupt,
                "tracker database loaded"
            );
            Ok::<_, StoreError>((store, registry))
        })
        .await
        .map_err(|e| TrackerError::Join(e.to_string()))??;

        let listener = match listener {
            Some(listener) => listener,
            None => {
                TcpListener::bind(config.listen)
                    .await
                    .map_err(|source| TrackerError::Bind {
                        addr: config.listen,
                        source,
                    })?
            }
        };
        let local_addr = listener.local_addr().map_err(|source| TrackerError::Bind {
            addr: config.listen,
            source,
        })?;

        let registry = Arc::new(RwLock::new(registry));
        let (job_tx, job_rx) = mpsc::channel(limits.queue_capacity.max(1));
        let (write_tx, write_rx) = std::sync::mpsc::sync_channel(limits.queue_capacity.max(1));
        let verifiers = if limits.verify_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
        } else {
            limits.verify_threads
        };
        // The verifier thread checks one share of each batch itself; the pool's threads
        // check the others.
        let pool = if verifiers > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(verifiers - 1)
                    .thread_name(|i| format!("tracker-verify-{}", i + 1))
                    .build()
                    .map_err(|e| TrackerError::Thread(std::io::Error::other(e)))?,
            )
        } else {
            None
        };
        let mut threads = Vec::with_capacity(2);
        let writer_registry = Arc::clone(&registry);
        let settings = WriterSettings {
            max_batch: limits.max_batch.max(1),
            ttl_ms,
            sweep_interval: limits.sweep_interval,
            clock: clock.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name("tracker-writer".into())
                .spawn(move || run_writer(write_rx, store, writer_registry, settings))
                .map_err(TrackerError::Thread)?,
        );
        let max_batch = limits.max_batch.max(1);
        threads.push(
            std::thread::Builder::new()
                .name("tracker-verify-0".into())
                .spawn(move || run_verifier(job_rx, write_tx, max_batch, pool))
                .map_err(TrackerError::Thread)?,
        );
        tracing::info!(
            addr = %local_addr,
            networks = networks.len(),
            entries = registry.read().len(),
            "tracker bound"
        );
        Ok(Tracker {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                limits,
                networks,
                registry,
                jobs: job_tx,
                ips: Mutex::new(HashMap::new()),
                connections: AtomicUsize::new(0),
                clock,
                log: LogGate::default(),
            }),
            threads,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Current figures.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Serves until `shutdown` completes, then closes every connection, lets the writer
    /// finish its last commit and returns.
    pub async fn serve_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), TrackerError> {
        let Tracker {
            listener,
            local_addr,
            shared,
            threads,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let ip = canonical_ip(peer.ip());
                        match shared.admit(ip) {
                            Ok(guard) => {
                                tasks.spawn(crate::session::connection(
                                    Arc::clone(&shared),
                                    guard,
                                    stream,
                                    peer,
                                    stop_rx.clone(),
                                ));
                            }
                            Err(why) => {
                                if let Some(held_back) = shared.loud(&peer) {
                                    tracing::warn!(%peer, held_back, reason = %why, "connection refused");
                                }
                                let body = AnswerPacket::encode(answer_type::FAIL, &Answer::fail(why.to_string()));
                                let frame = tally_proto::encode_frame(&body);
                                // Best effort and never blocking: a fresh socket's buffer is empty.
                                let _ = stream.try_write(&frame);
                            }
                        }
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        tracing::info!(addr = %local_addr, "tracker stopping");
        drop(listener);
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        drop(shared);
        tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await
        .map_err(|e| TrackerError::Join(e.to_string()))?;
        tracing::info!(addr = %local_addr, "tracker stopped");
        Ok(())
    }

    /// Serves in a background task; the handle stops it.
    pub fn spawn(self) -> TrackerHandle {
        let addr = self.local_addr;
        let shared = Arc::downgrade(&self.shared);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve_until(async move {
            let _ = stopped.await;
        }));
        TrackerHandle {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

/// A tracker serving in the background (tests, `tally devnet`). Dropping it stops the
/// tracker without waiting; [`TrackerHandle::shutdown`] waits for a clean stop.
pub struct TrackerHandle {
    addr: SocketAddr,
    // Weak: the job queue closes (and the worker threads end) only when every strong
    // reference is gone.
    shared: std::sync::Weak<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), TrackerError>>>,
}

impl TrackerHandle {
    /// The address the tracker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Current figures (all zero once the tracker has stopped).
    pub fn stats(&self) -> Stats {
        self.shared.upgrade().map_or(
            Stats {
                entries: 0,
                connections: 0,
                registry_bytes: 0,
            },
            |s| s.stats(),
        )
    }

    /// Stops the tracker and waits until its database is closed.
    pub async fn shutdown(mut self) -> Result<(), TrackerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|e| TrackerError::Join(e.to_string()))?,
            None => Ok(()),
        }
    }
}

impl Drop for TrackerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
