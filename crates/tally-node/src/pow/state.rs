//! What every part of the miner daemon shares: its settings, the chain behind a mutex with
//! its published tip, the gossip dedup, the connections, the peer book and budgets, and the
//! mining switches. Each concern's rules live in its own module; this one only holds them
//! together and makes the few moves that span two of them (a chain change that forgets
//! gossip refused for now, a penalty that closes a banned peer's connections).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tally_chain::{BlockHash, Chain, ChainError, ChainParams};
use tally_core::{AccountId, KeyCache, NetworkId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::pow::clock::now_ms;
use crate::pow::config::MinerConfig;
use crate::pow::connections::Connections;
use crate::pow::gossip::GossipDedup;
use crate::pow::mining::MiningControl;
use crate::pow::peers::{Offense, PeerBook, PeerKey, ServingBudgets, Verdict};
use crate::pow::queries::LedgerSnapshot;
use tally_proto::admission::{Admission, AdmissionLimits};
use tally_proto::pow::{
    Connect, MAX_BLOCKS_PER_BATCH, MAX_LOCATOR, PowPacket, ReqLedger, RespLedger, SendRequest, Tip,
};

/// The miner daemon's shared state.
pub struct Miner {
    /// The network id.
    pub network: NetworkId,
    /// The chain's consensus parameters (for checks outside the chain lock).
    pub params: ChainParams,
    /// Decompressed signer keys, shared with the chain: checks outside the chain lock reuse
    /// what the chain already decompressed.
    pub keys: Arc<KeyCache>,
    /// Where miners and wallets connect (the announced address).
    pub address: SocketAddr,
    /// How it runs.
    pub config: MinerConfig,
    /// Mining threads.
    pub threads: usize,
    /// Where block rewards go.
    pub miner_account: AccountId,
    chain: Mutex<Chain>,
    /// The main chain's tip, published under the chain lock on every change, so that
    /// `CONNECT`s and sync decisions read it without waiting for the chain.
    tip: watch::Sender<Tip>,
    /// The accounts at the last tip a ledger page was asked at.
    ledger: Mutex<Option<Arc<LedgerSnapshot>>>,
    /// Ledger snapshots taken (each one pass over the accounts under the chain lock).
    pub ledger_snapshots: AtomicU64,
    /// The mempool's and the orphan pool's sizes when last seen (for the status).
    counts: (AtomicUsize, AtomicUsize),
    /// Transactions seen, and those refused for now.
    pub gossip: Mutex<GossipDedup>,
    /// Every connection, and their limits.
    pub conns: Connections,
    /// Scores and bans.
    pub book: Mutex<PeerBook<PeerKey>>,
    /// Block-serving budgets per peer (`SEND_REQUEST`).
    pub serving: Mutex<ServingBudgets<PeerKey>>,
    /// Ledger-page budgets per peer (`REQ_LEDGER`).
    pub pages: Mutex<ServingBudgets<PeerKey>>,
    /// Mining switches and counters.
    pub mining: MiningControl,
    /// Cut off from the network (tests): no connections to miners, no tracker.
    pub isolated: AtomicBool,
    /// Blocks received from peers and refused.
    pub blocks_rejected: AtomicU64,
    /// Stops the node: cancelled by `stop` or by a storage failure.
    pub cancel: CancellationToken,
    /// Claims to hand to counterpart networks (see `notices`); `None` without any.
    pub notices: Option<tokio::sync::mpsc::Sender<crate::notices::Notice>>,
}

/// Locks `m`; a panic while holding a lock is a bug elsewhere, and the data is still usable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Miner {
    /// The shared state of a miner serving `chain` as `config` says, announced at `address`,
    /// mining on `threads` threads.
    pub fn new(config: MinerConfig, chain: Chain, address: SocketAddr, threads: usize) -> Self {
        let params = chain.params().clone();
        let keys = chain.key_cache().clone();
        let tip: Tip = chain.tip().into();
        Miner {
            network: params.network,
            params,
            keys,
            address,
            threads,
            miner_account: config.miner_account.unwrap_or(config.key.account()),
            chain: Mutex::new(chain),
            tip: watch::Sender::new(tip),
            ledger: Mutex::new(None),
            ledger_snapshots: AtomicU64::new(0),
            counts: (AtomicUsize::new(0), AtomicUsize::new(0)),
            gossip: Mutex::new(GossipDedup::default()),
            conns: Connections::new(Admission::new(
                AdmissionLimits {
                    max_total: config.max_connections,
                    max_per_source: config.max_connections_per_ip,
                    reserved: 0,
                },
                [],
            )),
            book: Mutex::new(PeerBook::new(config.scoring)),
            serving: Mutex::new(ServingBudgets::new(
                config.block_requests.blocks_per_sec,
                config.block_requests.burst,
                config.max_connections.saturating_mul(4),
            )),
            pages: Mutex::new(ServingBudgets::new(
                config.ledger_pages_per_sec,
                config.ledger_pages_per_sec.saturating_mul(2),
                config.max_connections.saturating_mul(4),
            )),
            mining: MiningControl::new(config.mine),
            isolated: AtomicBool::new(false),
            blocks_rejected: AtomicU64::new(0),
            cancel: CancellationToken::new(),
            notices: None,
            config,
        }
    }

    /// Hands the notices that admitted claims call for to the counterpart networks: a
    /// claim of an escrow whose lock cites an escrow on another network this miner knows
    /// (the maker's lock on B cites the payer's on A) opens that one with the same secret.
    pub fn notice_claims<'a>(
        &self,
        admitted: impl IntoIterator<Item = &'a tally_core::Transaction>,
    ) {
        let Some(queue) = &self.notices else {
            return;
        };
        let claims: Vec<_> = admitted
            .into_iter()
            .filter_map(|tx| match &tx.order {
                tally_core::Order::EscrowClaim(claim) => Some(claim),
                _ => None,
            })
            .collect();
        if claims.is_empty() {
            return;
        }
        let chain = self.chain();
        for claim in claims {
            let Some(counterpart) = chain.escrow(&claim.escrow).and_then(|e| e.lock.counterpart)
            else {
                continue;
            };
            let Some(escrow) = counterpart.escrow else {
                continue;
            };
            let notice = crate::notices::Notice {
                network: counterpart.network,
                claim: tally_core::EscrowClaim {
                    escrow,
                    secret: claim.secret,
                },
            };
            if queue.try_send(notice).is_err() {
                tracing::warn!(escrow = %claim.escrow, "notice queue full; the claimant must claim itself");
            }
        }
    }

    /// The chain, locked (connections wait on it: keep it short).
    pub fn chain(&self) -> MutexGuard<'_, Chain> {
        lock(&self.chain)
    }

    /// The main chain's tip as last published (no chain lock).
    pub fn tip(&self) -> Tip {
        *self.tip.borrow()
    }

    /// A `REQ_LEDGER` page at the tip: from the snapshot of the tip, taken once per tip
    /// (the chain lock is held only to copy the accounts).
    pub fn ledger_page(&self, request: &ReqLedger) -> RespLedger {
        let published = self.tip();
        let cached = lock(&self.ledger)
            .as_ref()
            .filter(|snapshot| snapshot.tip() == published)
            .cloned();
        let snapshot = match cached {
            Some(snapshot) => snapshot,
            None => {
                let (tip, supply, accounts) = LedgerSnapshot::copy(&self.chain());
                self.ledger_snapshots.fetch_add(1, Ordering::Relaxed);
                let snapshot = Arc::new(LedgerSnapshot::sorted(tip, supply, accounts));
                *lock(&self.ledger) = Some(snapshot.clone());
                snapshot
            }
        };
        snapshot.page(request)
    }

    /// The mempool's and the orphan pool's sizes: read now if the chain is free, else as
    /// last seen (a status must not wait behind a reorganisation).
    pub fn chain_counts(&self) -> (usize, usize) {
        if let Ok(chain) = self.chain.try_lock() {
            self.counts
                .0
                .store(chain.mempool().len(), Ordering::Relaxed);
            self.counts.1.store(chain.orphan_count(), Ordering::Relaxed);
        }
        (
            self.counts.0.load(Ordering::Relaxed),
            self.counts.1.load(Ordering::Relaxed),
        )
    }

    /// Whether the node is cut off from the network.
    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::Relaxed)
    }

    /// Runs `change` (which may move the tip: a block stored, a reorganisation) on the
    /// chain and publishes the tip before the lock is released, so the published tip never
    /// goes back to an older one. When the tip moved, transactions refused from gossip for
    /// a transient reason may be taken again.
    pub fn change_chain<R>(&self, change: impl FnOnce(&mut Chain) -> R) -> R {
        let mut chain = self.chain();
        let result = change(&mut chain);
        let tip: Tip = chain.tip().into();
        self.counts
            .0
            .store(chain.mempool().len(), Ordering::Relaxed);
        self.counts.1.store(chain.orphan_count(), Ordering::Relaxed);
        let moved = self.tip.send_if_modified(|published| {
            let moved = *published != tip;
            *published = tip;
            moved
        });
        drop(chain);
        if moved {
            let retry = lock(&self.gossip).tip_moved();
            if retry > 0 {
                debug!(count = retry, "transactions refused for now may come again");
            }
        }
        result
    }

    /// Our `CONNECT`: network, where we listen, our tip.
    pub fn connect_packet(&self) -> PowPacket {
        PowPacket::Connect(Connect {
            network: self.network,
            listen: Some(self.address.to_string()),
            tip: self.tip(),
        })
    }

    /// A `SEND_REQUEST` from our main chain's locator.
    pub fn send_request(&self) -> PowPacket {
        self.send_request_after(None)
    }

    /// A `SEND_REQUEST` that continues after `newest`, the last stored block of the previous
    /// batch, when that block is on a side branch: the branch may need more than one batch
    /// to overtake our tip, and a locator of our unchanged main chain alone would ask for
    /// the same batch again, forever.
    pub fn send_request_after(&self, newest: Option<BlockHash>) -> PowPacket {
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

    /// Scores connection `id`'s peer; a ban closes its connections.
    pub fn penalise(&self, id: u64, offense: Offense) {
        let Some(key) = self.conns.peer_key(id) else {
            return;
        };
        let verdict = lock(&self.book).penalise(&key, offense, now_ms());
        match verdict {
            Verdict::Scored(score) => debug!(peer = %key, ?offense, score, "peer penalised"),
            Verdict::Banned => {
                warn!(peer = %key, ?offense, "peer banned");
                self.conns.close_peer(&key);
            }
        }
    }

    /// Whether `key` is banned now.
    pub fn is_banned(&self, key: &PeerKey) -> bool {
        lock(&self.book).is_banned(key, now_ms())
    }

    /// Storage failed: stops the node (crash-only). Memory may be ahead of disk; a restart
    /// reloads the last durable tip.
    pub fn fatal(&self, error: &ChainError) {
        tracing::error!(%error, "chain storage failed; stopping the node (restart reloads the last durable tip)");
        self.cancel.cancel();
        self.mining.stop_round();
    }
}

/// Runs `read` (which takes the chain lock) on a blocking thread; `None` if the runtime is
/// shutting down.
pub async fn off_the_runtime<T: Send + 'static>(
    miner: &Arc<Miner>,
    read: impl FnOnce(&Miner) -> T + Send + 'static,
) -> Option<T> {
    let miner = miner.clone();
    tokio::task::spawn_blocking(move || read(&miner)).await.ok()
}
