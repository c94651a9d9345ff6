//! How a miner finds and keeps its peers: the configured ones are dialed at start; the
//! tracker's are learned through the registration loop both daemons share
//! ([`crate::discovery::Registrar`], with the miner's schedule: join, renew every
//! `register_every`, list every heartbeat while it has few miners); and every heartbeat it
//! re-sends `CONNECT` to every miner (keep-alive and tip comparison) and sweeps the peer
//! book.

use std::sync::Arc;

use tally_core::SecretKey;
use tally_tracker::{Peer, TrackerClient};

use crate::discovery::{PeerFinder, Registrar, RegistrationSchedule};
use crate::pow::clock::now_ms;
use crate::pow::net::dial;
use crate::pow::state::{Miner, lock};

/// Miners wanted before the tracker is no longer asked for more on every heartbeat.
const WANTED_MINERS: usize = 8;

/// The miner's use of the tracker: every listed miner is dialed.
struct MinerPeers {
    miner: Arc<Miner>,
}

impl PeerFinder for MinerPeers {
    fn learn(&mut self, peers: &[Peer]) {
        for peer in peers {
            dial(&self.miner, peer.address.to_string());
        }
    }

    fn missing(&self) -> bool {
        self.miner.conns.miners() < self.miner.config.max_peers.min(WANTED_MINERS)
    }

    fn reachable(&self) -> bool {
        !self.miner.is_isolated()
    }
}

/// Registers `key` (with its `proof_of_work`) with the configured tracker, if any, and
/// dials the miners it lists, until the node stops.
pub async fn register(miner: Arc<Miner>, key: SecretKey, proof_of_work: u64) {
    let Some(tracker) = miner.config.tracker.clone() else {
        return;
    };
    let registrar = Registrar::new(
        TrackerClient::new(tracker, miner.config.tracker_client.clone()),
        miner.network,
        miner.address,
        vec![(key, proof_of_work)],
        RegistrationSchedule::miner(miner.config.heartbeat, miner.config.register_every),
    )
    .with_max_peers(Some(
        u32::try_from(miner.config.max_peers).unwrap_or(u32::MAX),
    ));
    let cancel = miner.cancel.clone();
    registrar.run(MinerPeers { miner }, cancel).await;
}

/// Dials the configured peers, then every heartbeat sends `CONNECT` to every miner and
/// forgets expired bans and decayed scores, until the node stops.
pub async fn heartbeat(miner: Arc<Miner>) {
    for peer in miner.config.peers.clone() {
        dial(&miner, peer);
    }
    let mut interval = tokio::time::interval(miner.config.heartbeat);
    loop {
        tokio::select! {
            _ = miner.cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        miner.conns.broadcast(&miner.connect_packet(), None);
        lock(&miner.book).sweep(now_ms());
    }
}
