//! The miner daemon: sockets, the chain behind a mutex, the mining thread, the tracker.
//!
//! Data flow. Every TCP connection (miner or wallet) gets a reader task and a writer task;
//! the reader parses frames (size- and time-limited) and handles each packet in order, the
//! writer drains a bounded queue. Chain work (signature checks, connecting blocks, the
//! durable commit) runs on blocking threads, never on the async workers. The mining thread
//! builds a template, searches nonces on `threads` threads and is stopped through a flag
//! whenever the tip moves or new transactions wait. Decisions that need no I/O live in
//! plain structs: [`PeerBook`] (scores and bans), [`PeerSync`] (when to ask for blocks),
//! [`Seen`] (gossip dedup).
//!
//! A store failure stops the node (crash-only, as the validator): memory may be ahead of
//! disk, and a restart reloads the last durable tip.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tally_chain::{
    Block, BlockOutcome, Chain, ChainConfig, ChainError, ChainParams, OpenError, Transaction,
    TxRejected, check_block, check_transactions, miner,
};
use tally_core::{AccountId, Amount, Digest, KeyCache, NetworkId, SecretKey};
use tally_proto::ConnectionError;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::pow::config::{MinerConfig, MinerFiles};
use crate::pow::peers::{Offense, PeerBook, ServingBudgets, Verdict};
use crate::pow::sync::{PeerSync, Seen};
use crate::pow::wire::{
    self, AcceptTransaction, Connect, ErrorMsg, HashBroadcast, LedgerAccount, MAX_BLOCKS_PER_BATCH,
    MAX_GOSSIP_TRANSACTIONS, MAX_LEDGER_PAGE, MAX_LOCATOR, PowPacket, ReceiveBlock, RejectBlock,
    RejectTransaction, ReqLedger, RespAccount, RespLedger, RespTxStatus, SendRequest, Tip,
    TransactionGossip, WireReader,
};

/// Packets queued for one connection's writer before it counts as too slow and is dropped.
const WRITE_QUEUE: usize = 1024;
/// Bytes queued for one connection's writer before it counts as too slow and is dropped
/// (a peer that does not read cannot make us hold more than this for it).
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Gossiped transactions refused for a reason that may pass once the tip moves (see
/// [`is_transient`]) remembered for a retry at most; beyond it they stay seen until the
/// dedup set forgets them.
const MAX_TRANSIENT_REFUSALS: usize = 10_000;

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

/// The milliseconds since 1970 by this machine's clock (the edge where time enters).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Who a peer is for scoring: its IP address, or on loopback (tests, a devnet on one
/// machine, where every node shares 127.0.0.1) the address it listens on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerKey {
    /// A remote host.
    Ip(IpAddr),
    /// A local node, by its listen address (or its connection's address before `CONNECT`).
    Local(String),
}

impl PeerKey {
    fn of(remote: SocketAddr, listen: Option<&str>) -> Self {
        match remote.ip().to_canonical() {
            ip if ip.is_loopback() => {
                PeerKey::Local(listen.map_or_else(|| remote.to_string(), str::to_string))
            }
            // One IPv6 host usually holds a whole /64: scores, bans and budgets go by it,
            // or a single host could take a fresh identity per address.
            IpAddr::V6(v6) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                PeerKey::Ip(IpAddr::V6(octets.into()))
            }
            ip => PeerKey::Ip(ip),
        }
    }
}

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerKey::Ip(ip) => write!(f, "{ip}"),
            PeerKey::Local(a) => write!(f, "{a}"),
        }
    }
}

/// A peer as the control API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The connection's remote address.
    pub remote: String,
    /// Where it listens, if it said.
    pub listen: Option<String>,
    /// Whether we dialed it.
    pub outbound: bool,
    /// Its tip height as it last announced it.
    pub height: Option<u64>,
}

/// What the control API's `status` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowStatus {
    /// The network id.
    pub network: NetworkId,
    /// The tip's height.
    pub height: u64,
    /// The tip's hash.
    pub tip: Digest,
    /// The main chain's total work (64 hex).
    pub work: String,
    /// Transactions waiting in the mempool.
    pub mempool: usize,
    /// Blocks held waiting for their parent.
    pub orphans: usize,
    /// Connected miners.
    pub peers: Vec<PeerStatus>,
    /// Hashes per second over the last second.
    pub hash_rate: u64,
    /// Whether this node mines.
    pub mining: bool,
    /// Mining threads.
    pub threads: usize,
    /// Where block rewards go.
    pub miner_account: AccountId,
    /// Blocks this node mined that were stored.
    pub blocks_mined: u64,
    /// Blocks received from peers and refused.
    pub blocks_rejected: u64,
    /// Peers banned now.
    pub banned: Vec<String>,
    /// Where miners and wallets connect.
    pub address: String,
}

struct Conn {
    tx: mpsc::Sender<Bytes>,
    /// Bytes queued and not yet written.
    queued: Arc<AtomicUsize>,
    remote: SocketAddr,
    /// The address we dialed (outbound connections).
    dialed: Option<String>,
    /// The address it listens on, from its `CONNECT`.
    listen: Option<String>,
    /// Whether it sent `CONNECT` (a miner, not a wallet): gossip goes to these only.
    miner: bool,
    /// Whether we sent our `CONNECT`.
    greeted: bool,
    /// The highest block it sent us that we stored (for display).
    best_height: u64,
    sync: PeerSync,
    cancel: CancellationToken,
}

impl Conn {
    /// Queues bytes for the writer, or drops a connection that is too slow to read.
    fn queue(&self, bytes: Bytes) {
        let len = bytes.len();
        if self.queued.load(Ordering::Relaxed).saturating_add(len) > MAX_QUEUED_BYTES
            || self.tx.try_send(bytes).is_err()
        {
            debug!(remote = %self.remote, "write queue full; dropping the connection");
            self.cancel.cancel();
            return;
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
    }
}

struct Shared {
    network: NetworkId,
    params: ChainParams,
    keys: Arc<KeyCache>,
    address: SocketAddr,
    key: SecretKey,
    proof_of_work: u64,
    tracker: Option<tally_tracker::TrackerClient>,
    config: MinerConfig,
    threads: usize,
    miner_account: AccountId,
    chain: Mutex<Chain>,
    conns: Mutex<HashMap<u64, Conn>>,
    /// Addresses being dialed, so one address is never dialed twice at once.
    dialing: Mutex<HashSet<String>>,
    book: Mutex<PeerBook<PeerKey>>,
    seen_tx: Mutex<Seen<Digest>>,
    /// Block-serving budgets per peer (`SEND_REQUEST`).
    serving: Mutex<ServingBudgets<PeerKey>>,
    /// Gossiped transactions in `seen_tx` that were refused for a transient reason: they
    /// are forgotten from `seen_tx` when the tip moves, so gossip can bring them again.
    transient_refusals: Mutex<HashSet<Digest>>,
    /// The main chain's tip, published under the chain lock on every change, so that
    /// `CONNECT`s and sync decisions read it without waiting for the chain.
    tip: watch::Sender<Tip>,
    next_conn: AtomicU64,
    /// Connections held ([`ConnSlot`]s), counted from the accept; changed only under
    /// `conns_per_ip`'s lock.
    open_conns: AtomicUsize,
    /// Connections held per remote IP address (no entry: none).
    conns_per_ip: Mutex<HashMap<IpAddr, usize>>,
    mining: AtomicBool,
    /// The mining thread saw `mining` off and holds no block in progress.
    miner_idle: AtomicBool,
    isolated: AtomicBool,
    mine_stop: Mutex<Arc<AtomicBool>>,
    hashes: AtomicU64,
    hash_rate: AtomicU64,
    mempool_gen: AtomicU64,
    template_gen: AtomicU64,
    template_ms: AtomicU64,
    blocks_mined: AtomicU64,
    blocks_rejected: AtomicU64,
    cancel: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is a bug elsewhere; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn chain(&self) -> MutexGuard<'_, Chain> {
        lock(&self.chain)
    }

    /// The main chain's tip as last published (no chain lock).
    fn tip(&self) -> Tip {
        *self.tip.borrow()
    }

    /// Runs `change` (which may move the tip: a block stored, a reorganisation) on the
    /// chain and publishes the tip before the lock is released, so the published tip never
    /// goes back to an older one. When the tip moved, transactions refused from gossip for
    /// a transient reason may be taken again.
    fn change_chain<R>(&self, change: impl FnOnce(&mut Chain) -> R) -> R {
        let mut chain = self.chain();
        let result = change(&mut chain);
        let tip: Tip = chain.tip().into();
        let moved = self.tip.send_if_modified(|published| {
            let moved = *published != tip;
            *published = tip;
            moved
        });
        drop(chain);
        if moved {
            let retry = std::mem::take(&mut *lock(&self.transient_refusals));
            if !retry.is_empty() {
                let mut seen = lock(&self.seen_tx);
                for id in &retry {
                    seen.forget(id);
                }
                debug!(
                    count = retry.len(),
                    "transactions refused for now may come again"
                );
            }
        }
        result
    }

    fn connect_packet(&self) -> PowPacket {
        PowPacket::Connect(Connect {
            network: self.network,
            listen: Some(self.address.to_string()),
            tip: self.tip(),
        })
    }

    fn send_request(&self) -> PowPacket {
        self.send_request_after(None)
    }

    /// A `SEND_REQUEST` that continues after `newest`, the last stored block of the previous
    /// batch, when that block is on a side branch: the branch may need more than one batch
    /// to overtake our tip, and a locator of our unchanged main chain alone would ask for
    /// the same batch again, forever.
    fn send_request_after(&self, newest: Option<tally_chain::BlockHash>) -> PowPacket {
        let locator = {
            let chain = self.chain();
            let mut locator = Vec::with_capacity(MAX_LOCATOR);
            if let Some(hash) = newest
                && chain.header(&hash).is_some()
                && !chain.is_on_main_chain(&hash)
            {
                locator.push(hash);
            }
            locator.extend(chain.locator());
            locator.truncate(MAX_LOCATOR);
            locator
        };
        PowPacket::SendRequest(SendRequest {
            locator,
            max: MAX_BLOCKS_PER_BATCH,
        })
    }

    /// Queues `bytes` for connection `id`; a connection whose queue is full is too slow
    /// and is dropped (it syncs again when it reconnects).
    fn send_to(&self, id: u64, bytes: Bytes) {
        let conns = lock(&self.conns);
        if let Some(conn) = conns.get(&id) {
            conn.queue(bytes);
        }
    }

    fn reply(&self, id: u64, packet: &PowPacket) {
        self.send_to(id, packet.encode());
    }

    /// Sends to every miner peer but `except`.
    fn broadcast(&self, packet: &PowPacket, except: Option<u64>) {
        let bytes = packet.encode();
        let conns = lock(&self.conns);
        for (id, conn) in conns.iter() {
            if Some(*id) == except || !conn.miner {
                continue;
            }
            conn.queue(bytes.clone());
        }
    }

    fn peer_key(&self, id: u64) -> Option<PeerKey> {
        let conns = lock(&self.conns);
        conns
            .get(&id)
            .map(|c| PeerKey::of(c.remote, c.listen.as_deref()))
    }

    /// Scores connection `id`'s peer; a ban closes the connection.
    fn penalise(&self, id: u64, offense: Offense) {
        let Some(key) = self.peer_key(id) else {
            return;
        };
        let verdict = lock(&self.book).penalise(&key, offense, now_ms());
        match verdict {
            Verdict::Scored(score) => debug!(peer = %key, ?offense, score, "peer penalised"),
            Verdict::Banned => {
                warn!(peer = %key, ?offense, "peer banned");
                let conns = lock(&self.conns);
                for conn in conns.values() {
                    if PeerKey::of(conn.remote, conn.listen.as_deref()) == key {
                        conn.cancel.cancel();
                    }
                }
            }
        }
    }

    fn is_banned(&self, key: &PeerKey) -> bool {
        lock(&self.book).is_banned(key, now_ms())
    }

    /// The tip moved: the miner's template is stale.
    fn stop_mining_round(&self) {
        lock(&self.mine_stop).store(true, Ordering::Relaxed);
    }

    fn fatal(&self, error: &ChainError) {
        tracing::error!(%error, "chain storage failed; stopping the node (restart reloads the last durable tip)");
        self.cancel.cancel();
    }

    fn status(&self) -> PowStatus {
        let (tip, mempool, orphans) = {
            let chain = self.chain();
            (chain.tip(), chain.mempool().len(), chain.orphan_count())
        };
        let peers = {
            let conns = lock(&self.conns);
            let mut peers: Vec<PeerStatus> = conns
                .values()
                .filter(|c| c.miner)
                .map(|c| PeerStatus {
                    remote: c.remote.to_string(),
                    listen: c.listen.clone(),
                    outbound: c.dialed.is_some(),
                    height: c.sync.peer_tip().map(|t| t.height.max(c.best_height)),
                })
                .collect();
            peers.sort_by(|a, b| a.remote.cmp(&b.remote));
            peers
        };
        PowStatus {
            network: self.network,
            height: tip.height,
            tip: tip.hash,
            work: tip.work.to_string(),
            mempool,
            orphans,
            peers,
            hash_rate: self.hash_rate.load(Ordering::Relaxed),
            mining: self.mining.load(Ordering::Relaxed),
            threads: self.threads,
            miner_account: self.miner_account,
            blocks_mined: self.blocks_mined.load(Ordering::Relaxed),
            blocks_rejected: self.blocks_rejected.load(Ordering::Relaxed),
            banned: lock(&self.book)
                .banned(now_ms())
                .iter()
                .map(ToString::to_string)
                .collect(),
            address: self.address.to_string(),
        }
    }
}

/// A running miner (or, with mining off, a validating and relaying full node).
pub struct PowNode {
    shared: Arc<Shared>,
    rpc_address: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    miner_thread: Option<std::thread::JoinHandle<()>>,
}

/// A cheap handle on a running miner, for the control API and the terminal line.
#[derive(Clone)]
pub struct PowNodeHandle {
    shared: Arc<Shared>,
}

impl PowNodeHandle {
    /// The node's status now.
    pub fn status(&self) -> PowStatus {
        self.shared.status()
    }

    /// The node's status, read on a blocking thread (it takes the chain lock).
    pub async fn status_off_the_runtime(&self) -> Option<PowStatus> {
        off_the_runtime(&self.shared, Shared::status).await
    }

    /// An account's state, read on a blocking thread (it takes the chain lock).
    pub async fn account_off_the_runtime(&self, account: AccountId) -> Option<RespAccount> {
        off_the_runtime(&self.shared, move |shared| account_info(shared, &account)).await
    }

    /// An account's state at the tip with its pending transfers (`REQ_ACCOUNT`'s answer).
    pub fn account(&self, account: &AccountId) -> RespAccount {
        account_info(&self.shared, account)
    }
}

fn account_info(shared: &Shared, account: &AccountId) -> RespAccount {
    let chain = shared.chain();
    let state = chain.account(account);
    let pending = chain.mempool().pending_for(account);
    let next_sequence = pending
        .iter()
        .filter_map(|tx| tx.transfer().map(|t| t.sequence + 1))
        .max()
        .unwrap_or(state.next_sequence)
        .max(state.next_sequence);
    RespAccount {
        account: *account,
        balance: state.balance,
        sequence: state.next_sequence,
        next_sequence,
        pending_out: chain.mempool().pending_outgoing(account),
        pending_in: chain.mempool().pending_incoming(account),
        tip: chain.tip().into(),
    }
}

/// Runs `read` (which takes the chain lock) on a blocking thread; `None` if the runtime is
/// shutting down.
async fn off_the_runtime<T: Send + 'static>(
    shared: &Arc<Shared>,
    read: impl FnOnce(&Shared) -> T + Send + 'static,
) -> Option<T> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || read(&shared))
        .await
        .ok()
}

/// A page of the accounts at the tip in account order (`REQ_LEDGER`'s answer): one pass
/// over the accounts keeping the smallest `limit` after `after`, so a page costs time linear
/// in the number of accounts and memory linear in the page.
fn ledger_page(shared: &Shared, request: &ReqLedger) -> RespLedger {
    let limit = request.limit.clamp(1, MAX_LEDGER_PAGE) as usize;
    let chain = shared.chain();
    let accounts = chain.accounts();
    let mut page: std::collections::BinaryHeap<(AccountId, u64, u64)> =
        std::collections::BinaryHeap::with_capacity(limit + 1);
    for (account, state) in accounts {
        if request.after.is_some_and(|after| *account <= after) {
            continue;
        }
        page.push((*account, state.balance.microcash(), state.next_sequence));
        if page.len() > limit {
            page.pop();
        }
    }
    let page = page.into_sorted_vec();
    let after_last = page.last().map(|(account, ..)| *account);
    let more = after_last
        .is_some_and(|last| page.len() == limit && accounts.keys().any(|account| *account > last));
    RespLedger {
        tip: chain.tip().into(),
        supply: chain.supply().unwrap_or(Amount::ZERO),
        total: accounts.len() as u64,
        accounts: page
            .into_iter()
            .map(|(account, balance, sequence)| LedgerAccount {
                account,
                balance: Amount::from_microcash(balance),
                sequence,
            })
            .collect(),
        next: if more { after_last } else { None },
    }
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
        let params = chain.params().clone();
        let keys = chain.key_cache().clone();
        let initial_tip: Tip = chain.tip().into();
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| PowNodeError::Bind {
                    address: config.listen,
                    source,
                })?;
        let bound = listener.local_addr().map_err(|source| PowNodeError::Bind {
            address: config.listen,
            source,
        })?;
        let address = config.announce.unwrap_or(bound);
        let rpc_listener = match config.rpc {
            Some(addr) => {
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| PowNodeError::Bind {
                            address: addr,
                            source,
                        })?,
                )
            }
            None => None,
        };
        let rpc_address = rpc_listener.as_ref().and_then(|l| l.local_addr().ok());
        let proof_of_work = intro_proof(&config).await;
        let threads = if config.threads == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            config.threads
        };
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            network: params.network,
            params,
            keys,
            address,
            proof_of_work,
            tracker: config
                .tracker
                .clone()
                .map(|t| tally_tracker::TrackerClient::new(t, config.tracker_client.clone())),
            threads,
            miner_account: config.miner_account.unwrap_or(config.key.account()),
            key: config.key.clone(),
            chain: Mutex::new(chain),
            conns: Mutex::new(HashMap::new()),
            dialing: Mutex::new(HashSet::new()),
            book: Mutex::new(PeerBook::new(config.scoring)),
            seen_tx: Mutex::new(Seen::new(200_000)),
            serving: Mutex::new(ServingBudgets::new(
                config.block_requests.blocks_per_sec,
                config.block_requests.burst,
                config.max_connections.saturating_mul(4),
            )),
            transient_refusals: Mutex::new(HashSet::new()),
            tip: watch::Sender::new(initial_tip),
            next_conn: AtomicU64::new(1),
            open_conns: AtomicUsize::new(0),
            conns_per_ip: Mutex::new(HashMap::new()),
            mining: AtomicBool::new(config.mine),
            miner_idle: AtomicBool::new(!config.mine),
            isolated: AtomicBool::new(false),
            mine_stop: Mutex::new(Arc::new(AtomicBool::new(false))),
            hashes: AtomicU64::new(0),
            hash_rate: AtomicU64::new(0),
            mempool_gen: AtomicU64::new(0),
            template_gen: AtomicU64::new(0),
            template_ms: AtomicU64::new(0),
            blocks_mined: AtomicU64::new(0),
            blocks_rejected: AtomicU64::new(0),
            cancel: cancel.clone(),
            config,
        });
        info!(%address, network = %shared.network, mining = shared.config.mine, threads, "miner started");
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(accept_loop(shared.clone(), listener)));
        tasks.push(tokio::spawn(ticker(shared.clone())));
        tasks.push(tokio::spawn(discovery(shared.clone())));
        if let Some(listener) = rpc_listener {
            tasks.push(tokio::spawn(crate::pow::rpc::serve(
                listener,
                PowNodeHandle {
                    shared: shared.clone(),
                },
                cancel.clone(),
            )));
        }
        let miner_shared = shared.clone();
        let miner_thread = std::thread::Builder::new()
            .name("tally-miner".into())
            .spawn(move || miner_loop(miner_shared))
            .ok();
        Ok(PowNode {
            shared,
            rpc_address,
            tasks,
            miner_thread,
        })
    }

    /// Where miners and wallets connect (the announced address).
    pub fn address(&self) -> SocketAddr {
        self.shared.address
    }

    /// The control API's address, if it runs.
    pub fn rpc_address(&self) -> Option<SocketAddr> {
        self.rpc_address
    }

    /// A handle for status queries.
    pub fn handle(&self) -> PowNodeHandle {
        PowNodeHandle {
            shared: self.shared.clone(),
        }
    }

    /// The node's status now.
    pub fn status(&self) -> PowStatus {
        self.shared.status()
    }

    /// Connections held now (miners and wallets, in and out): what the connection limits
    /// count.
    pub fn open_connections(&self) -> usize {
        self.shared.open_conns.load(Ordering::Relaxed)
    }

    /// The main chain's tip.
    pub fn tip(&self) -> tally_chain::TipInfo {
        self.shared.chain().tip()
    }

    /// Runs `f` on the chain (queries in tests and tools; keep it short, the node waits).
    pub fn with_chain<R>(&self, f: impl FnOnce(&Chain) -> R) -> R {
        f(&self.shared.chain())
    }

    /// Turns mining on or off (a node keeps validating and relaying either way).
    pub fn set_mining(&self, on: bool) {
        if on {
            self.shared.miner_idle.store(false, Ordering::SeqCst);
        }
        self.shared.mining.store(on, Ordering::SeqCst);
        self.shared.stop_mining_round();
    }

    /// Turns mining off and waits until the mining thread has finished its block in
    /// progress (stored or dropped), so the tip no longer moves by our own hand.
    pub async fn stop_mining(&self) {
        self.set_mining(false);
        while !self.shared.miner_idle.load(Ordering::SeqCst) && !self.shared.cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Cuts this node off (drops every connection, refuses new ones, dials nobody) or
    /// lets it reconnect: how tests make a network partition and heal it.
    pub fn set_isolated(&self, isolated: bool) {
        self.shared.isolated.store(isolated, Ordering::Relaxed);
        if isolated {
            for conn in lock(&self.shared.conns).values() {
                conn.cancel.cancel();
            }
        }
    }

    /// Dials a miner now (besides the ones the tracker lists).
    pub fn connect_to(&self, address: &str) {
        dial(&self.shared, address.to_string());
    }

    /// Whether the node stopped by itself (a storage failure).
    pub fn is_stopped(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    /// Resolves when the node stops by itself.
    pub async fn stopped(&self) {
        self.shared.cancel.cancelled().await;
    }

    /// Stops serving and mining and waits for every task; the chain is durable at its last
    /// tip change.
    pub async fn stop(mut self) {
        self.shared.cancel.cancel();
        self.shared.stop_mining_round();
        for conn in lock(&self.shared.conns).values() {
            conn.cancel.cancel();
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Some(thread) = self.miner_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        // Connection tasks hold the chain; wait until they let go so the database closes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.shared) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        info!(address = %self.shared.address, "miner stopped");
    }
}

impl Drop for PowNode {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        self.shared.stop_mining_round();
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

// ----- connections -------------------------------------------------------------------------

/// One connection's place in the limits (`max_connections`, `max_connections_per_ip`):
/// reserved when the connection is accepted or dialed, before its task runs, and released
/// when dropped. Counting at the accept keeps the limits exact: a burst of connections
/// cannot all pass the check before the first of them is counted.
struct ConnSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl ConnSlot {
    /// Reserves a slot for a connection with `ip`; `None` when an inbound connection
    /// (`inbound`) would exceed a limit. Outbound connections are counted but only held to
    /// `max_connections`: we dial few, and on one host (a devnet) every miner shares an IP.
    fn reserve(shared: &Arc<Shared>, ip: IpAddr, inbound: bool) -> Option<ConnSlot> {
        let ip = ip.to_canonical();
        let mut per_ip = lock(&shared.conns_per_ip);
        let from_ip = per_ip.get(&ip).copied().unwrap_or(0);
        if shared.open_conns.load(Ordering::Relaxed) >= shared.config.max_connections
            || (inbound && from_ip >= shared.config.max_connections_per_ip)
        {
            return None;
        }
        shared.open_conns.fetch_add(1, Ordering::Relaxed);
        per_ip.insert(ip, from_ip + 1);
        Some(ConnSlot {
            shared: shared.clone(),
            ip,
        })
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut per_ip = lock(&self.shared.conns_per_ip);
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.shared.open_conns.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Isolation refuses miners only (at their `CONNECT`): wallets are still served.
        if shared.is_banned(&PeerKey::of(remote, None)) {
            drop(stream);
            continue;
        }
        let Some(slot) = ConnSlot::reserve(&shared, remote.ip(), true) else {
            debug!(%remote, "connection limit reached; refused");
            drop(stream);
            continue;
        };
        tokio::spawn(serve(shared.clone(), slot, stream, remote, None));
    }
}

/// Dials `address` unless it is us, already connected, banned, or we are isolated.
fn dial(shared: &Arc<Shared>, address: String) {
    if shared.isolated.load(Ordering::Relaxed) || shared.cancel.is_cancelled() {
        return;
    }
    if address == shared.address.to_string() {
        return;
    }
    {
        let conns = lock(&shared.conns);
        let miners = conns
            .values()
            .filter(|c| c.miner || c.dialed.is_some())
            .count();
        if miners >= shared.config.max_peers
            || conns.values().any(|c| {
                c.dialed.as_deref() == Some(address.as_str())
                    || c.listen.as_deref() == Some(address.as_str())
            })
        {
            return;
        }
    }
    if let Ok(addr) = address.parse::<SocketAddr>()
        && shared.is_banned(&PeerKey::of(addr, Some(&address)))
    {
        return;
    }
    if !lock(&shared.dialing).insert(address.clone()) {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        match wire::connect(&address, shared.config.wire).await {
            Ok(stream) => {
                let remote = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                match ConnSlot::reserve(&shared, remote.ip(), false) {
                    Some(slot) => {
                        serve(shared.clone(), slot, stream, remote, Some(address.clone())).await
                    }
                    None => debug!(%address, "connection limit reached; not dialing"),
                }
            }
            Err(error) => debug!(%address, %error, "cannot reach peer"),
        }
        lock(&shared.dialing).remove(&address);
    });
}

/// Serves one connection until it closes, times out, misbehaves or the node stops; its
/// `slot` is released when it ends.
async fn serve(
    shared: Arc<Shared>,
    slot: ConnSlot,
    stream: TcpStream,
    remote: SocketAddr,
    dialed: Option<String>,
) {
    let (mut reader, mut writer) = wire::split(stream, shared.config.wire);
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let cancel = shared.cancel.child_token();
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    let outbound = dialed.is_some();
    {
        let mut conns = lock(&shared.conns);
        // A dialed peer is a miner (we dial only miners); it gets our CONNECT first.
        conns.insert(
            id,
            Conn {
                tx: tx.clone(),
                queued: queued.clone(),
                remote,
                dialed: dialed.clone(),
                listen: dialed.clone(),
                miner: outbound,
                greeted: outbound,
                best_height: 0,
                sync: PeerSync::new(duration_ms(shared.config.sync_timeout)),
                cancel: cancel.clone(),
            },
        );
    }
    if outbound {
        shared.send_to(id, shared.connect_packet().encode());
    }
    drop(tx);
    let writer_cancel = cancel.clone();
    let writer_task = tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                _ = writer_cancel.cancelled() => break,
                next = rx.recv() => next,
            };
            let Some(bytes) = next else { break };
            let len = bytes.len();
            let sent = writer.send_bytes(bytes).await;
            queued.fetch_sub(len, Ordering::Relaxed);
            if let Err(error) = sent {
                debug!(%error, "write failed; closing");
                writer_cancel.cancel();
                break;
            }
        }
    });
    debug!(%remote, outbound, "connection open");
    read_loop(&shared, id, &mut reader, &cancel).await;
    // Dropping the queue's last sender lets the writer send what is queued (a last
    // `ERROR`, say) and end; a ban or the node stopping cancels it at once instead.
    lock(&shared.conns).remove(&id);
    let write_timeout = shared.config.wire.write_timeout;
    let abort = writer_task.abort_handle();
    if tokio::time::timeout(write_timeout, writer_task)
        .await
        .is_err()
    {
        abort.abort();
    }
    cancel.cancel();
    drop(slot);
    debug!(%remote, "connection closed");
}

async fn read_loop(
    shared: &Arc<Shared>,
    id: u64,
    reader: &mut WireReader,
    cancel: &CancellationToken,
) {
    loop {
        let received = tokio::select! {
            _ = cancel.cancelled() => return,
            received = reader.recv() => received,
        };
        match received {
            Ok(packet) => {
                if !handle(shared, id, packet).await {
                    return;
                }
            }
            Err(ConnectionError::Malformed(error)) => {
                shared.reply(
                    id,
                    &PowPacket::Error(ErrorMsg {
                        reason: format!("malformed packet: {error}"),
                    }),
                );
                shared.penalise(id, Offense::Malformed);
            }
            Err(error) => {
                if error.is_peer_fault() {
                    shared.penalise(id, Offense::Malformed);
                }
                debug!(%error, "connection ends");
                return;
            }
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Handles one packet; `false` closes the connection.
async fn handle(shared: &Arc<Shared>, id: u64, packet: PowPacket) -> bool {
    match packet {
        PowPacket::Connect(connect) => on_connect(shared, id, connect),
        PowPacket::PushTransaction(tx) => {
            on_push(shared, id, tx).await;
            true
        }
        PowPacket::Transaction(gossip) => {
            on_gossip(shared, id, gossip).await;
            true
        }
        PowPacket::HashBroadcast(hb) => {
            if hb.block.hash() != hb.hash {
                shared.penalise(id, Offense::WrongHash);
                shared.reply(
                    id,
                    &PowPacket::RejectBlock(RejectBlock {
                        hash: hb.hash,
                        reason: "the hash is not the block's".into(),
                    }),
                );
                return true;
            }
            on_blocks(shared, id, vec![hb.block], None).await;
            true
        }
        PowPacket::SendRequest(request) => {
            on_send_request(shared, id, request).await;
            true
        }
        PowPacket::ReceiveBlock(batch) => {
            if batch.blocks.len() > MAX_BLOCKS_PER_BATCH as usize {
                shared.penalise(id, Offense::Protocol);
                return true;
            }
            // Blocks arrive unasked only one at a time (`HASH_BROADCAST`); a batch answers
            // a `SEND_REQUEST` of ours or is dropped unread.
            let asked = lock(&shared.conns)
                .get_mut(&id)
                .is_some_and(|conn| conn.sync.take_answer());
            if !asked {
                debug!(
                    blocks = batch.blocks.len(),
                    "RECEIVE_BLOCK nobody asked for; dropped"
                );
                shared.penalise(id, Offense::UnsolicitedBlocks);
                return true;
            }
            on_blocks(shared, id, batch.blocks, Some(batch.tip)).await;
            true
        }
        // Wallet queries wait for the chain lock, which a block commit or a reorganisation
        // may hold for a while: they wait on a blocking thread, never on an async worker.
        PowPacket::ReqAccount(request) => {
            let answer = off_the_runtime(shared, move |shared| {
                PowPacket::RespAccount(account_info(shared, &request.account))
            });
            if let Some(answer) = answer.await {
                shared.reply(id, &answer);
            }
            true
        }
        PowPacket::ReqLedger(request) => {
            let answer = off_the_runtime(shared, move |shared| {
                PowPacket::RespLedger(ledger_page(shared, &request))
            });
            if let Some(answer) = answer.await {
                shared.reply(id, &answer);
            }
            true
        }
        PowPacket::ReqTxStatus(request) => {
            let answer = off_the_runtime(shared, move |shared| {
                let chain = shared.chain();
                PowPacket::RespTxStatus(RespTxStatus {
                    id: request.transaction.id(),
                    status: chain.transaction_status(&request.transaction),
                    tip: chain.tip().into(),
                })
            });
            if let Some(answer) = answer.await {
                shared.reply(id, &answer);
            }
            true
        }
        PowPacket::RejectBlock(reject) => {
            debug!(hash = %reject.hash, reason = %reject.reason, "a peer refused our block");
            true
        }
        PowPacket::Error(error) => {
            debug!(reason = %error.reason, "peer reports an error");
            true
        }
        other @ (PowPacket::AcceptTransaction(_)
        | PowPacket::RejectTransaction(_)
        | PowPacket::RespAccount(_)
        | PowPacket::RespLedger(_)
        | PowPacket::RespTxStatus(_)) => {
            debug!(packet = other.name(), "unexpected answer");
            shared.penalise(id, Offense::Protocol);
            true
        }
    }
}

fn on_connect(shared: &Arc<Shared>, id: u64, connect: Connect) -> bool {
    if connect.network != shared.network {
        shared.reply(
            id,
            &PowPacket::Error(ErrorMsg {
                reason: format!("wrong network: this is {}", shared.network),
            }),
        );
        return false;
    }
    // `Listen` is the sender's word: believed only when it names the host the connection
    // comes from. Otherwise anyone could claim a connected miner's address and have that
    // miner's connection closed as a duplicate (and never dialed again, since "we are
    // connected to it").
    let (listen, key) = {
        let conns = lock(&shared.conns);
        let Some(conn) = conns.get(&id) else {
            return false;
        };
        let listen = connect
            .listen
            .clone()
            .filter(|listen| listens_at(conn.remote, listen));
        // As it will be known: by the believed `Listen`, else by the address we dialed.
        let key = PeerKey::of(conn.remote, listen.as_deref().or(conn.listen.as_deref()));
        (listen, key)
    };
    // A banned or refused peer is turned away before it can displace anyone.
    if shared.isolated.load(Ordering::Relaxed) {
        return false;
    }
    if shared.is_banned(&key) {
        shared.reply(
            id,
            &PowPacket::Error(ErrorMsg {
                reason: "banned".into(),
            }),
        );
        return false;
    }
    let ours = shared.tip();
    let now = now_ms();
    let (greet, ask) = {
        let mut conns = lock(&shared.conns);
        if let Some(listen) = &listen
            && !keep_connection(&shared.address.to_string(), &conns, id, listen)
        {
            return false;
        }
        let Some(conn) = conns.get_mut(&id) else {
            return false;
        };
        conn.miner = true;
        if let Some(listen) = listen {
            conn.listen = Some(listen);
        } else if let Some(claimed) = &connect.listen {
            debug!(remote = %conn.remote, %claimed, "listen address of another host; ignored");
        }
        let greet = !conn.greeted;
        conn.greeted = true;
        let ask = conn.sync.on_peer_tip(connect.tip, ours, now);
        if conn.sync.is_unresponsive() {
            // It claims more work but never sends the blocks: drop it, look elsewhere.
            debug!(remote = %conn.remote, "peer leaves SEND_REQUEST unanswered; closing");
            return false;
        }
        (greet, ask)
    };
    if greet {
        shared.reply(id, &shared.connect_packet());
    }
    if ask {
        shared.reply(id, &shared.send_request());
    }
    true
}

/// Whether `listen` (a `CONNECT`'s `Listen`) is an address of the host at `remote`.
fn listens_at(remote: SocketAddr, listen: &str) -> bool {
    listen
        .parse::<SocketAddr>()
        .is_ok_and(|claimed| claimed.ip().to_canonical() == remote.ip().to_canonical())
}

/// Two miners that dialed each other at once hold two connections; both sides keep the
/// one dialed by the miner with the smaller address (the same one, seen from either side)
/// and close the other. `false`: close connection `id`.
fn keep_connection(me: &str, conns: &HashMap<u64, Conn>, id: u64, listen: &str) -> bool {
    let Some(this) = conns.get(&id) else {
        return false;
    };
    let Some((_, other)) = conns
        .iter()
        .find(|(other_id, c)| **other_id != id && c.miner && c.listen.as_deref() == Some(listen))
    else {
        return true;
    };
    let this_outbound = this.dialed.is_some();
    let other_outbound = other.dialed.is_some();
    if this_outbound == other_outbound {
        // The same direction twice: keep the older.
        return false;
    }
    let keep_outbound = me < listen;
    if this_outbound == keep_outbound {
        other.cancel.cancel();
        true
    } else {
        false
    }
}

/// Checks transactions' signatures and then takes them into the mempool, on a blocking
/// thread: the signatures are verified before the chain is locked, so a burst of gossip
/// never holds the chain (and with it every connection that needs it) for its whole batch,
/// and no async worker waits on the lock. `None` if the task failed.
async fn submit(
    shared: &Arc<Shared>,
    txs: Vec<Transaction>,
) -> Option<Vec<Result<(), TxRejected>>> {
    let worker = shared.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let checked = check_transactions(&worker.params, &worker.keys, txs);
        worker.chain().submit_checked(checked)
    })
    .await;
    match outcome {
        Ok(results) => Some(results),
        Err(error) => {
            warn!(%error, "transaction task failed");
            None
        }
    }
}

async fn on_push(shared: &Arc<Shared>, id: u64, tx: Transaction) {
    let tx_id = tx.id();
    if tx.transfer().is_some_and(|t| t.amount.is_zero()) {
        // Refused before any signature work, as the chain would.
        shared.reply(
            id,
            &PowPacket::RejectTransaction(RejectTransaction {
                id: Some(tx_id),
                reason: TxRejected::ZeroAmount.to_string(),
            }),
        );
        return;
    }
    let Some(result) = submit(shared, vec![tx])
        .await
        .and_then(|r| r.into_iter().next())
    else {
        return;
    };
    match result {
        Ok(()) => {
            lock(&shared.seen_tx).insert(tx_id);
            shared.mempool_gen.fetch_add(1, Ordering::Relaxed);
            shared.reply(
                id,
                &PowPacket::AcceptTransaction(AcceptTransaction { id: tx_id }),
            );
            shared.broadcast(
                &PowPacket::Transaction(TransactionGossip {
                    transactions: vec![tx],
                }),
                Some(id),
            );
        }
        Err(reason) => shared.reply(
            id,
            &PowPacket::RejectTransaction(RejectTransaction {
                id: Some(tx_id),
                reason: reason.to_string(),
            }),
        ),
    }
}

async fn on_gossip(shared: &Arc<Shared>, id: u64, gossip: TransactionGossip) {
    if gossip.transactions.len() > MAX_GOSSIP_TRANSACTIONS {
        shared.penalise(id, Offense::Protocol);
        return;
    }
    let fresh: Vec<Transaction> = {
        let mut seen = lock(&shared.seen_tx);
        gossip
            .transactions
            .into_iter()
            .filter(|tx| seen.insert(tx.id()))
            .collect()
    };
    if fresh.is_empty() {
        return;
    }
    let Some(results) = submit(shared, fresh.clone()).await else {
        return;
    };
    let mut accepted = Vec::new();
    let mut faulty = false;
    let mut transient = Vec::new();
    for (tx, result) in fresh.into_iter().zip(results) {
        match result {
            Ok(()) => accepted.push(tx),
            // Never accepted by an honest miner, so never relayed by one.
            Err(TxRejected::BadSignature | TxRejected::ZeroAmount | TxRejected::NotATransfer) => {
                faulty = true;
            }
            // A race with a block or another transaction: nobody's fault.
            Err(reason) => {
                debug!(%reason, "relayed transaction not taken");
                if is_transient(&reason) {
                    transient.push(tx.id());
                }
            }
        }
    }
    if !transient.is_empty() {
        let mut retry = lock(&shared.transient_refusals);
        for id in transient {
            if retry.len() >= MAX_TRANSIENT_REFUSALS {
                break;
            }
            retry.insert(id);
        }
    }
    if faulty {
        shared.penalise(id, Offense::InvalidTransaction);
    }
    if !accepted.is_empty() {
        shared.mempool_gen.fetch_add(1, Ordering::Relaxed);
        shared.broadcast(
            &PowPacket::Transaction(TransactionGossip {
                transactions: accepted,
            }),
            Some(id),
        );
    }
}

/// Whether a transaction refused for `reason` may be taken once the tip moves: its sender
/// may be funded by a block, the mempool may drain, the sender's earlier sequences may be
/// mined. These stay in the gossip dedup only until the tip moves; the rest (stale
/// sequences, duplicates, conflicts with a pending transaction) never pass on this tip's
/// descendants and stay seen.
fn is_transient(reason: &TxRejected) -> bool {
    matches!(
        reason,
        TxRejected::InsufficientFunds { .. }
            | TxRejected::TooFarAhead { .. }
            | TxRejected::AccountFull(_)
            | TxRejected::MempoolFull(_)
    )
}

/// Answers a `SEND_REQUEST` within the peer's block-serving budget (one per peer, not per
/// connection): one token for the lookup, taken before the chain is touched, then one per
/// block the answer may carry, taken before any block is read, with what the byte cap kept
/// out given back. A request the budget cannot pay is refused with an `ERROR` and scored
/// ([`Offense::RequestFlood`]); nothing is read for it. Only miners (after `CONNECT`) ask
/// for blocks: a request before it is out of place.
async fn on_send_request(shared: &Arc<Shared>, id: u64, request: SendRequest) {
    if request.locator.len() > MAX_LOCATOR {
        shared.penalise(id, Offense::Protocol);
        return;
    }
    let miner = lock(&shared.conns).get(&id).is_some_and(|c| c.miner);
    let Some(key) = shared.peer_key(id).filter(|_| miner) else {
        shared.penalise(id, Offense::Protocol);
        return;
    };
    if !lock(&shared.serving).take(&key, 1, Instant::now()) {
        refuse_block_request(shared, id);
        return;
    }
    let max = request.max.clamp(1, MAX_BLOCKS_PER_BATCH) as usize;
    // Binary size is about a third of the JSON form; a quarter of the frame is safe.
    let max_bytes = shared.config.wire.max_frame / 4;
    let worker = shared.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let chain = worker.chain();
        let fork = chain.find_fork(&request.locator);
        // The blocks the answer may carry (the byte cap may make it fewer).
        let count = chain.height().saturating_sub(fork).min(max as u64);
        if !lock(&worker.serving).take(&key, count, Instant::now()) {
            return None;
        }
        let blocks = chain.blocks_from(fork + 1, max, max_bytes);
        if let Ok(sent) = &blocks {
            let unused = count.saturating_sub(sent.len() as u64);
            lock(&worker.serving).refund(&key, unused);
        }
        Some(blocks.map(|blocks| ReceiveBlock {
            blocks,
            tip: chain.tip().into(),
        }))
    })
    .await;
    match answer {
        Ok(Some(Ok(batch))) => shared.reply(id, &PowPacket::ReceiveBlock(batch)),
        Ok(Some(Err(error))) => shared.fatal(&error.into()),
        Ok(None) => refuse_block_request(shared, id),
        Err(error) => warn!(%error, "block lookup task failed"),
    }
}

/// Tells the peer its `SEND_REQUEST` exceeds its budget, and scores it.
fn refuse_block_request(shared: &Shared, id: u64) {
    debug!(id, "block requests beyond the budget; refused");
    shared.reply(
        id,
        &PowPacket::Error(ErrorMsg {
            reason: "too many block requests: over the blocks-served budget".into(),
        }),
    );
    shared.penalise(id, Offense::RequestFlood);
}

/// What became of a block from a peer.
enum Fate {
    New { tip_moved: bool },
    Known,
    Orphan,
    Refused,
}

/// Checks and stores blocks from connection `id` in order (a `HASH_BROADCAST` has one, a
/// `RECEIVE_BLOCK` up to a batch), relays new ones, and asks for more when needed.
async fn on_blocks(shared: &Arc<Shared>, id: u64, blocks: Vec<Block>, batch_tip: Option<Tip>) {
    let count = blocks.len();
    let single = batch_tip.is_none();
    let worker = shared.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut fates = Vec::with_capacity(blocks.len());
        for block in blocks {
            let hash = block.hash();
            if worker.chain().knows_block(&hash) {
                // Known, or known invalid: the chain answers that without checking again.
                let known =
                    worker.change_chain(|chain| chain.accept_block(block.clone(), now_ms()));
                fates.push((block, fate_of(&worker, id, hash, known)));
                continue;
            }
            // The header against its parent first: the header's own target is the sender's
            // choice (the pow limit costs nothing), so only a block that fits its parent
            // is worth a signature check per transaction. The rest are refused, or held as
            // orphans, by the chain before any signature is checked.
            let fits = worker.chain().fits_parent(&block, now_ms());
            let result = if fits {
                // A block that lets a held (low-work) branch catch up has that branch's
                // signatures checked too: here, before the chain is locked, once the block
                // itself passed, and only up to the first that fails (the chain refuses that
                // one under the lock).
                check_block(&worker.params, &worker.keys, block.clone()).and_then(|checked| {
                    let ancestors = worker.chain().unchecked_held_ancestors(&block);
                    let verified: Vec<_> = ancestors
                        .into_iter()
                        .map_while(|held| check_block(&worker.params, &worker.keys, held).ok())
                        .collect();
                    worker.change_chain(|chain| {
                        chain.note_checked_held(&verified);
                        chain.accept_checked(checked, now_ms())
                    })
                })
            } else {
                worker.change_chain(|chain| chain.accept_block(block.clone(), now_ms()))
            };
            let fate = fate_of(&worker, id, hash, result);
            let stop = matches!(fate, Fate::Refused);
            fates.push((block, fate));
            if stop {
                break;
            }
        }
        fates
    })
    .await;
    let fates = match outcome {
        Ok(fates) => fates,
        Err(error) => {
            warn!(%error, "block task failed");
            return;
        }
    };
    let mut progressed = false;
    let mut refused = false;
    let mut orphan = false;
    let mut tip_moved = false;
    let mut newest = None;
    // The last block of the batch that is stored (new or known): the next request
    // continues after it.
    let mut last_stored = None;
    for (block, fate) in fates {
        if matches!(fate, Fate::New { .. } | Fate::Known) {
            last_stored = Some(block.hash());
        }
        match fate {
            Fate::New { tip_moved: moved } => {
                progressed = true;
                tip_moved |= moved;
                // Relay each new block once (the chain remembers it, so never twice), and
                // only once it is connected: a block stored on a side branch has not been
                // checked against the state (rule 9), and may never be.
                if single && moved {
                    shared.broadcast(
                        &PowPacket::HashBroadcast(HashBroadcast {
                            hash: block.hash(),
                            block: block.clone(),
                        }),
                        Some(id),
                    );
                }
                newest = Some(block);
            }
            Fate::Orphan => orphan = true,
            Fate::Refused => refused = true,
            // Known already (another peer was faster): the exchange may go on.
            Fate::Known => progressed = true,
        }
    }
    let newest_height = newest.as_ref().map_or(0, |b: &Block| b.header.height);
    if tip_moved {
        shared.stop_mining_round();
        // After a sync batch, announce only the new tip: peers fetch what they lack.
        if !single {
            let tip = shared.tip();
            if let Some(block) = newest.filter(|b| b.hash() == tip.hash) {
                shared.broadcast(
                    &PowPacket::HashBroadcast(HashBroadcast {
                        hash: block.hash(),
                        block,
                    }),
                    Some(id),
                );
            }
        }
    }
    let ours = shared.tip();
    let now = now_ms();
    // `Some(continue_after)`: send a `SEND_REQUEST`.
    let ask = {
        let mut conns = lock(&shared.conns);
        match conns.get_mut(&id) {
            None => None,
            Some(conn) => {
                conn.best_height = conn.best_height.max(newest_height);
                match batch_tip {
                    Some(peer_tip) => {
                        if conn
                            .sync
                            .on_batch(count, progressed && !refused, peer_tip, ours, now)
                        {
                            Some(last_stored)
                        } else {
                            (orphan && conn.sync.on_orphan(now)).then_some(None)
                        }
                    }
                    None => (orphan && conn.sync.on_orphan(now)).then_some(None),
                }
            }
        }
    };
    if let Some(after) = ask {
        shared.reply(id, &shared.send_request_after(after));
    }
}

/// After a reorganisation, shares the transactions of the undone blocks that went back to
/// the mempool: miners on the winning branch may never have seen them (they were mined
/// during a partition), and someone must mine them again.
fn relay_returned(shared: &Shared, disconnected: &[tally_chain::BlockHash]) {
    let returned: Vec<Transaction> = {
        let chain = shared.chain();
        disconnected
            .iter()
            .filter_map(|hash| chain.block(hash).ok().flatten())
            .flat_map(|block| block.transactions)
            .filter(|tx| chain.transaction_status(tx) == tally_chain::TxStatus::Pending)
            .collect()
    };
    if returned.is_empty() {
        return;
    }
    shared.mempool_gen.fetch_add(1, Ordering::Relaxed);
    for chunk in returned.chunks(MAX_GOSSIP_TRANSACTIONS) {
        shared.broadcast(
            &PowPacket::Transaction(TransactionGossip {
                transactions: chunk.to_vec(),
            }),
            None,
        );
    }
}

/// Interprets the chain's verdict on one block: scores the sender for invalid ones.
fn fate_of(
    shared: &Arc<Shared>,
    id: u64,
    hash: tally_chain::BlockHash,
    result: Result<BlockOutcome, ChainError>,
) -> Fate {
    match result {
        Ok(BlockOutcome::Duplicate) => Fate::Known,
        // A low-work side-branch block, in memory only: not relayed, not held against the
        // sender (a heavier branch arrives this way), and a sync goes on after it.
        Ok(BlockOutcome::Held { height }) => {
            debug!(%hash, height, "low-work side-branch block held in memory");
            Fate::Known
        }
        Ok(BlockOutcome::Orphan { missing_parent }) => {
            debug!(%hash, %missing_parent, "orphan block");
            Fate::Orphan
        }
        Ok(BlockOutcome::Stored {
            height, tip_change, ..
        }) => {
            if let Some(change) = &tip_change {
                if change.is_reorg() {
                    info!(
                        height = change.height,
                        disconnected = change.disconnected.len(),
                        connected = change.connected.len(),
                        returned = change.returned_to_mempool,
                        "reorganisation"
                    );
                    relay_returned(shared, &change.disconnected);
                } else {
                    debug!(height, %hash, "new tip");
                }
            }
            Fate::New {
                tip_moved: tip_change.is_some(),
            }
        }
        Err(ChainError::Invalid { hash, error }) => {
            shared.reply(
                id,
                &PowPacket::RejectBlock(RejectBlock {
                    hash,
                    reason: error.to_string(),
                }),
            );
            if error.is_peer_fault() {
                shared.blocks_rejected.fetch_add(1, Ordering::Relaxed);
                debug!(%hash, %error, "invalid block");
                shared.penalise(id, Offense::InvalidBlock);
            }
            Fate::Refused
        }
        Err(error @ ChainError::Store(_)) => {
            shared.fatal(&error);
            Fate::Refused
        }
    }
}

// ----- background tasks --------------------------------------------------------------------

/// Samples the hash rate every second and restarts the miner on a fresh template when new
/// transactions have waited `template_refresh`.
async fn ticker(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    let mut last_hashes = 0u64;
    let mut last_sample = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(last_sample);
        if elapsed >= Duration::from_secs(1) {
            let hashes = shared.hashes.load(Ordering::Relaxed);
            let rate = (hashes.saturating_sub(last_hashes)) as f64 / elapsed.as_secs_f64();
            shared.hash_rate.store(rate as u64, Ordering::Relaxed);
            last_hashes = hashes;
            last_sample = now;
        }
        let age = now_ms().saturating_sub(shared.template_ms.load(Ordering::Relaxed));
        if shared.mempool_gen.load(Ordering::Relaxed) != shared.template_gen.load(Ordering::Relaxed)
            && age >= duration_ms(shared.config.template_refresh)
        {
            shared.stop_mining_round();
        }
    }
}

/// Joins through the tracker (seed 004's INITIALIZE flow), dials the peers it lists and
/// the configured ones; then every heartbeat re-sends `CONNECT` to every miner, asks the
/// tracker for peers when few are connected, and renews the registration.
async fn discovery(shared: Arc<Shared>) {
    let keys = [(shared.key.clone(), shared.proof_of_work)];
    let max = u32::try_from(shared.config.max_peers).unwrap_or(u32::MAX);
    for peer in shared.config.peers.clone() {
        dial(&shared, peer);
    }
    let mut joined = false;
    let mut last_registration = tokio::time::Instant::now();
    let mut interval = tokio::time::interval(shared.config.heartbeat);
    loop {
        if let Some(tracker) = &shared.tracker
            && !shared.isolated.load(Ordering::Relaxed)
        {
            if !joined {
                match tracker
                    .join(shared.network, shared.address, &keys, Some(max))
                    .await
                {
                    Ok(result) => {
                        joined = true;
                        last_registration = tokio::time::Instant::now();
                        info!(
                            peers = result.peers.len(),
                            tracker = tracker.addr(),
                            "joined the network"
                        );
                        for peer in result.peers {
                            dial(&shared, peer.address.to_string());
                        }
                    }
                    Err(error) => {
                        warn!(%error, tracker = tracker.addr(), "cannot join through the tracker; retrying later")
                    }
                }
            } else {
                if last_registration.elapsed() >= shared.config.register_every {
                    match tracker
                        .register(shared.network, shared.address, &keys)
                        .await
                    {
                        Ok(_) => last_registration = tokio::time::Instant::now(),
                        Err(error) => warn!(%error, "tracker registration failed"),
                    }
                }
                let miners = lock(&shared.conns).values().filter(|c| c.miner).count();
                if miners < shared.config.max_peers.min(8) {
                    match tracker.peers(shared.network, Some(max)).await {
                        Ok(peers) => {
                            for peer in peers {
                                dial(&shared, peer.address.to_string());
                            }
                        }
                        Err(error) => debug!(%error, "tracker list failed"),
                    }
                }
            }
        }
        let hello = shared.connect_packet();
        shared.broadcast(&hello, None);
        lock(&shared.book).sweep(now_ms());
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
    }
}

/// The mining thread: template, nonce search on all mining threads, store and broadcast;
/// again on every tip change or when new transactions waited long enough.
fn miner_loop(shared: Arc<Shared>) {
    while !shared.cancel.is_cancelled() {
        if !shared.mining.load(Ordering::SeqCst) {
            shared.miner_idle.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        // Register the stop flag before taking the template, so a tip change in between
        // stops this round.
        let stop = Arc::new(AtomicBool::new(false));
        *lock(&shared.mine_stop) = stop.clone();
        if shared.cancel.is_cancelled() {
            break;
        }
        if !shared.mining.load(Ordering::SeqCst) {
            continue;
        }
        shared.template_gen.store(
            shared.mempool_gen.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        shared.template_ms.store(now_ms(), Ordering::Relaxed);
        let mut block = shared
            .chain()
            .block_template(shared.miner_account, now_ms());
        let Some(header) = miner::mine(&block.header, shared.threads, &stop, &shared.hashes) else {
            continue;
        };
        block.header = header;
        let hash = block.hash();
        // The signature checks run before the chain is locked (the lock is for applying
        // and committing only: connections wait on it).
        let result = check_block(&shared.params, &shared.keys, block.clone()).and_then(|checked| {
            shared.change_chain(|chain| chain.accept_checked(checked, now_ms()))
        });
        match result {
            Ok(BlockOutcome::Stored { height, .. }) => {
                shared.blocks_mined.fetch_add(1, Ordering::Relaxed);
                debug!(height, %hash, txs = block.transactions.len(), "mined a block");
                shared.broadcast(
                    &PowPacket::HashBroadcast(HashBroadcast { hash, block }),
                    None,
                );
            }
            Ok(other) => debug!(?other, "mined block not stored"),
            Err(error @ ChainError::Store(_)) => {
                shared.fatal(&error);
                break;
            }
            Err(error) => warn!(%error, "our own block was refused"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Peers are known by host: an IPv6 /64 is one peer (a host can take a new address in
    /// its /64 at will), an IPv4-mapped address is its IPv4 address, and local nodes are
    /// told apart by the address they listen on.
    #[test]
    fn peers_are_keyed_by_host() {
        let at = |text: &str| text.parse::<SocketAddr>().unwrap();
        let one = PeerKey::of(at("[2001:db8:1:2::5]:7000"), None);
        assert_eq!(one, PeerKey::of(at("[2001:db8:1:2:ffff::9]:7001"), None));
        assert_ne!(one, PeerKey::of(at("[2001:db8:1:3::5]:7000"), None));
        assert_eq!(
            PeerKey::of(at("[::ffff:192.0.2.7]:1"), None),
            PeerKey::Ip("192.0.2.7".parse().unwrap())
        );
        assert_eq!(
            PeerKey::of(at("[::ffff:127.0.0.1]:5"), Some("127.0.0.1:9000")),
            PeerKey::Local("127.0.0.1:9000".into())
        );
        assert_ne!(
            PeerKey::of(at("127.0.0.1:5"), Some("127.0.0.1:9000")),
            PeerKey::of(at("127.0.0.1:6"), Some("127.0.0.1:9001"))
        );
    }
}
