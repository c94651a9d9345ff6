//! The handle the control API and the terminal line read a running miner through, and what
//! they show: [`PowStatus`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tally_core::{AccountId, Digest, NetworkId};

use crate::pow::clock::now_ms;
use crate::pow::queries;
use crate::pow::state::{Miner, lock, off_the_runtime};
use tally_proto::pow::RespAccount;

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

/// A cheap handle on a running miner, for the control API and the terminal line.
#[derive(Clone)]
pub struct PowNodeHandle {
    miner: Arc<Miner>,
}

impl PowNodeHandle {
    pub(crate) fn new(miner: Arc<Miner>) -> Self {
        PowNodeHandle { miner }
    }

    /// The node's status now.
    pub fn status(&self) -> PowStatus {
        status(&self.miner)
    }

    /// The node's status, read on a blocking thread (it takes the chain lock).
    pub async fn status_off_the_runtime(&self) -> Option<PowStatus> {
        off_the_runtime(&self.miner, status).await
    }

    /// An account's state, read on a blocking thread (it takes the chain lock).
    pub async fn account_off_the_runtime(&self, account: AccountId) -> Option<RespAccount> {
        off_the_runtime(&self.miner, move |miner| {
            queries::account(&miner.chain(), &account)
        })
        .await
    }

    /// An account's state at the tip with its pending transfers (`REQ_ACCOUNT`'s answer).
    pub fn account(&self, account: &AccountId) -> RespAccount {
        queries::account(&self.miner.chain(), account)
    }
}

/// The status of `miner` now.
pub(crate) fn status(miner: &Miner) -> PowStatus {
    // The published tip and the counts last seen: the status never waits on the chain's
    // lock, which a long reorganisation or a peer's requests may hold.
    let tip = miner.tip();
    let (mempool, orphans) = miner.chain_counts();
    let peers = {
        let conns = miner.conns.lock();
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
        network: miner.network,
        height: tip.height,
        tip: tip.hash,
        work: tip.work.to_string(),
        mempool,
        orphans,
        peers,
        hash_rate: miner.mining.hash_rate(),
        mining: miner.mining.is_on(),
        threads: miner.threads,
        miner_account: miner.miner_account,
        blocks_mined: miner.mining.blocks_mined(),
        blocks_rejected: miner
            .blocks_rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        banned: lock(&miner.book)
            .banned(now_ms())
            .iter()
            .map(ToString::to_string)
            .collect(),
        address: miner.address.to_string(),
    }
}
