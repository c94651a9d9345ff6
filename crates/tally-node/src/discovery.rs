//! Finding the other validators through the network's tracker (DESIGN §5).
//!
//! A validator registers its key, its proof of work and its reachable address with the
//! tracker named in the contract (`REGUP`), at start and then on a timer well inside the
//! tracker's expiry, and learns from the same answer where the other committee members are
//! now. The contract's addresses stay the fallback: the tracker only ever adds a candidate
//! address for a key the contract already trusts, and a peer still has to answer `HELLO`
//! as that key before it is used.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tally_core::{AccountId, NetworkId, SecretKey};
use tally_tracker::{ClientConfig, Peer, TrackerClient};
use tokio_util::sync::CancellationToken;

/// How a validator uses its network's tracker.
#[derive(Clone, Debug)]
pub struct TrackerSettings {
    /// The tracker (`host:port`), from the contract.
    pub address: String,
    /// The proof of work of the validator's key at the network's difficulty.
    pub key_pow: u64,
    /// The address registered for this validator; `None` registers where the node
    /// listens (or, when it listens on every interface, its address in the contract).
    pub advertise: Option<SocketAddr>,
    /// Time between registrations once every peer is known; well below the tracker's
    /// time to live (10 minutes by default).
    pub interval: Duration,
    /// Time between registrations while some committee member is still unknown.
    pub retry: Duration,
    /// Timeouts of one exchange with the tracker.
    pub client: ClientConfig,
}

impl TrackerSettings {
    /// Defaults around the tracker's address and the key's proof of work.
    pub fn new(address: String, key_pow: u64) -> Self {
        TrackerSettings {
            address,
            key_pow,
            advertise: None,
            interval: Duration::from_secs(60),
            retry: Duration::from_secs(2),
            // The loop below is the retry: one attempt each round, answered or not in 10 s.
            client: ClientConfig {
                answer_timeout: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(5),
                max_attempts: 1,
                ..ClientConfig::default()
            },
        }
    }
}

/// Where each committee member was last seen, as learned from the tracker. Shared by the
/// discovery task (writer) and the peer sync tasks (readers).
#[derive(Clone, Debug, Default)]
pub struct AddressBook {
    learned: Arc<RwLock<HashMap<AccountId, SocketAddr>>>,
}

impl AddressBook {
    /// The address the tracker last gave for `key`.
    pub fn get(&self, key: &AccountId) -> Option<SocketAddr> {
        self.learned.read().ok()?.get(key).copied()
    }

    /// Every learned address.
    pub fn entries(&self) -> Vec<(AccountId, SocketAddr)> {
        self.learned
            .read()
            .map(|book| book.iter().map(|(k, a)| (*k, *a)).collect())
            .unwrap_or_default()
    }

    /// Records the addresses of the listed keys that belong to `committee`, other than
    /// `me`; returns how many addresses are new or moved.
    pub fn learn(&self, peers: &[Peer], committee: &HashSet<AccountId>, me: &AccountId) -> usize {
        let Ok(mut book) = self.learned.write() else {
            return 0;
        };
        let mut changed = 0;
        for peer in peers {
            if &peer.account == me || !committee.contains(&peer.account) {
                continue;
            }
            if book.insert(peer.account, peer.address) != Some(peer.address) {
                changed += 1;
            }
        }
        changed
    }

    /// How many committee members have an address.
    pub fn len(&self) -> usize {
        self.learned.read().map(|book| book.len()).unwrap_or(0)
    }

    /// Whether nothing was learned yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything the discovery task needs.
pub struct Discovery {
    pub settings: TrackerSettings,
    pub network: NetworkId,
    pub key: SecretKey,
    /// The address registered for this validator.
    pub advertise: SocketAddr,
    /// The committee's keys.
    pub committee: HashSet<AccountId>,
    pub book: AddressBook,
}

impl Discovery {
    /// Registers and learns until `cancel`: every `retry` while a peer is unknown, then
    /// every `interval`.
    pub async fn run(self, cancel: CancellationToken) {
        let client =
            TrackerClient::new(self.settings.address.clone(), self.settings.client.clone());
        let me = self.key.account();
        let keys = [(self.key.clone(), self.settings.key_pow)];
        let peers_wanted = self.committee.len().saturating_sub(1);
        loop {
            let registered = tokio::select! {
                _ = cancel.cancelled() => return,
                answer = client.register_and_list(self.network, self.advertise, &keys) => answer,
            };
            match registered {
                Ok((registered, peers)) => {
                    if let Some((_, reason)) = registered.refused.first() {
                        tracing::warn!(tracker = %client.addr(), %reason, "tracker refused this validator's key");
                    }
                    let changed = self.book.learn(&peers, &self.committee, &me);
                    if changed > 0 {
                        tracing::info!(
                            tracker = %client.addr(),
                            known = self.book.len(),
                            of = peers_wanted,
                            "learned validator addresses from the tracker"
                        );
                    }
                }
                Err(error) => {
                    tracing::warn!(tracker = %client.addr(), %error, "cannot register with the tracker");
                }
            }
            let wait = if self.book.len() < peers_wanted {
                self.settings.retry
            } else {
                self.settings.interval
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(account: AccountId, port: u16) -> Peer {
        Peer {
            account,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            proof_of_work: 0,
            last_seen_ms: 0,
        }
    }

    #[test]
    fn learns_only_other_committee_members_and_counts_moves() {
        let keys: Vec<AccountId> = (0..3).map(|_| SecretKey::generate().account()).collect();
        let stranger = SecretKey::generate().account();
        let committee: HashSet<AccountId> = keys.iter().copied().collect();
        let book = AddressBook::default();
        let listed = [
            peer(keys[0], 1000),
            peer(keys[1], 1001),
            peer(stranger, 1002),
        ];
        // keys[0] is this validator: never learned; the stranger is not in the committee.
        assert_eq!(book.learn(&listed, &committee, &keys[0]), 1);
        assert_eq!(book.get(&keys[1]).map(|a| a.port()), Some(1001));
        assert_eq!(book.get(&keys[0]), None);
        assert_eq!(book.get(&stranger), None);
        // The same list again changes nothing; a moved peer counts once.
        assert_eq!(book.learn(&listed, &committee, &keys[0]), 0);
        assert_eq!(book.learn(&[peer(keys[1], 2001)], &committee, &keys[0]), 1);
        assert_eq!(book.get(&keys[1]).map(|a| a.port()), Some(2001));
        assert_eq!(book.len(), 1);
    }
}
