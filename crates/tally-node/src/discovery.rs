//! Registration with the network's tracker, for both daemons (DESIGN §5; PROTOCOL.md §8
//! "Joining" and §9 "How Tally nodes and wallets use it"): one loop, [`Registrar`], whose
//! timing is a plain [`RegistrationSchedule`] and whose use of the answers is the daemon's
//! [`PeerFinder`].
//!
//! A validator registers its key, its proof of work and its reachable address (`REGUP`) at
//! start, then every 2 s while some committee member is still unknown and every 60 s after,
//! well inside the tracker's expiry; the answer's list tells it where the other committee
//! members are now ([`CommitteePeers`] keeps them in an [`AddressBook`]). The contract's
//! addresses stay the fallback: the tracker only ever adds a candidate address for a key
//! the contract already trusts, and a peer still has to answer `HELLO` as that key before
//! it is used.
//!
//! A miner joins with seed 004's `INITIALIZE` flow (retried every heartbeat until it
//! succeeds), renews its registration (`REG`) every few minutes, and asks for more peers
//! (`LIST`) on every heartbeat while it has few.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tally_core::{AccountId, NetworkId, SecretKey};
use tally_tracker::{ClientConfig, ClientError, Peer, Registered, TrackerClient};
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
            // The registration loop is the retry: one attempt each round, answered or not
            // in 10 s.
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
/// registration loop (writer) and the peer sync tasks (readers).
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

/// One exchange with the tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackerCall {
    /// Seed 004's join (`INITIALIZE` → `SEND_LIST` → `ACKNOWLEDGE_LIST` →
    /// `ACCEPT_ACKNOWLEDGE`): registers and lists.
    Join,
    /// `REGUP`: registers and lists.
    RegisterAndList,
    /// `REG`: registers only.
    Register,
    /// `LIST`: lists only (needs no key).
    List,
}

impl TrackerCall {
    /// Whether the answer lists peers.
    pub fn lists(self) -> bool {
        !matches!(self, TrackerCall::Register)
    }

    /// Whether the call (re)registers this node.
    pub fn registers(self) -> bool {
        !matches!(self, TrackerCall::List)
    }
}

/// When to talk to the tracker and how, sans-I/O: the loop passes the time in and reports
/// what succeeded. A round makes the first registration until one succeeds; after it, the
/// renewal once `renew_every` has passed since the last registration, and a `LIST` when
/// someone is missing and the renewal did not list. The next round comes after `retry`
/// while someone is missing, after `interval` otherwise.
#[derive(Clone, Debug)]
pub struct RegistrationSchedule {
    first: TrackerCall,
    renewal: TrackerCall,
    renew_every: Duration,
    retry: Duration,
    interval: Duration,
    /// When the last registration succeeded.
    registered_at: Option<Instant>,
}

impl RegistrationSchedule {
    /// A validator's: `REGUP` every round, every `retry` while a committee member is
    /// unknown and every `interval` once all are known.
    pub fn validator(retry: Duration, interval: Duration) -> Self {
        RegistrationSchedule {
            first: TrackerCall::RegisterAndList,
            renewal: TrackerCall::RegisterAndList,
            renew_every: Duration::ZERO,
            retry,
            interval,
            registered_at: None,
        }
    }

    /// A miner's: a round every `heartbeat`; the join until it succeeds, then `REG` every
    /// `renew_every`, and `LIST` while it has fewer miners than it wants.
    pub fn miner(heartbeat: Duration, renew_every: Duration) -> Self {
        RegistrationSchedule {
            first: TrackerCall::Join,
            renewal: TrackerCall::Register,
            renew_every,
            retry: heartbeat,
            interval: heartbeat,
            registered_at: None,
        }
    }

    /// The exchanges of the round starting at `now`, in order; `missing` says whether a
    /// peer the daemon wants is still unknown.
    pub fn calls(&self, now: Instant, missing: bool) -> Vec<TrackerCall> {
        let Some(registered_at) = self.registered_at else {
            return vec![self.first];
        };
        let mut calls = Vec::with_capacity(2);
        if now.saturating_duration_since(registered_at) >= self.renew_every {
            calls.push(self.renewal);
        }
        if missing && !calls.iter().any(|call| call.lists()) {
            calls.push(TrackerCall::List);
        }
        calls
    }

    /// `call` was answered at `now`.
    pub fn succeeded(&mut self, call: TrackerCall, now: Instant) {
        if call.registers() {
            self.registered_at = Some(now);
        }
    }

    /// Whether a registration has succeeded yet.
    pub fn is_registered(&self) -> bool {
        self.registered_at.is_some()
    }

    /// How long to wait before the next round.
    pub fn wait(&self, missing: bool) -> Duration {
        if missing { self.retry } else { self.interval }
    }
}

/// What a daemon does with the tracker's answers. Called from the registration loop;
/// implementations decide, they do not wait.
pub trait PeerFinder: Send {
    /// The tracker listed `peers` (this node's own entry may be among them).
    fn learn(&mut self, peers: &[Peer]);

    /// Whether a peer the daemon wants is still unknown (or, for a miner, unconnected).
    fn missing(&self) -> bool;

    /// Whether to talk to the tracker this round (a miner cut off from the network does
    /// not).
    fn reachable(&self) -> bool {
        true
    }
}

/// The registration loop: one per daemon, validator or miner.
pub struct Registrar {
    client: TrackerClient,
    network: NetworkId,
    /// The address registered for this node.
    address: SocketAddr,
    /// The keys registered, each with its proof of work.
    keys: Vec<(SecretKey, u64)>,
    /// Peers asked for in a join or a list (`None`: the tracker's cap).
    max_peers: Option<u32>,
    schedule: RegistrationSchedule,
}

impl Registrar {
    /// A loop registering `keys` at `address` in `network` with `client`'s tracker.
    pub fn new(
        client: TrackerClient,
        network: NetworkId,
        address: SocketAddr,
        keys: Vec<(SecretKey, u64)>,
        schedule: RegistrationSchedule,
    ) -> Self {
        Registrar {
            client,
            network,
            address,
            keys,
            max_peers: None,
            schedule,
        }
    }

    /// A validator's loop, as `settings` say, registering `key` at `advertise`.
    pub fn validator(
        settings: &TrackerSettings,
        network: NetworkId,
        key: SecretKey,
        advertise: SocketAddr,
    ) -> Self {
        Registrar::new(
            TrackerClient::new(settings.address.clone(), settings.client.clone()),
            network,
            advertise,
            vec![(key, settings.key_pow)],
            RegistrationSchedule::validator(settings.retry, settings.interval),
        )
    }

    /// Asks for at most `max` peers in a join or a list.
    pub fn with_max_peers(mut self, max: Option<u32>) -> Self {
        self.max_peers = max;
        self
    }

    /// Registers and learns until `cancel`, as the schedule says.
    pub async fn run(mut self, mut finder: impl PeerFinder, cancel: CancellationToken) {
        loop {
            if finder.reachable() {
                for call in self.schedule.calls(Instant::now(), finder.missing()) {
                    let answer = tokio::select! {
                        _ = cancel.cancelled() => return,
                        answer = self.exchange(call) => answer,
                    };
                    match answer {
                        Ok(peers) => {
                            self.schedule.succeeded(call, Instant::now());
                            finder.learn(&peers);
                        }
                        Err(error) => self.report(call, &error),
                    }
                }
            }
            let wait = self.schedule.wait(finder.missing());
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Makes one exchange; the peers it listed (none for `REG`).
    async fn exchange(&self, call: TrackerCall) -> Result<Vec<Peer>, ClientError> {
        let client = &self.client;
        let (network, address, keys) = (self.network, self.address, self.keys.as_slice());
        let (registered, peers) = match call {
            TrackerCall::Join => {
                let joined = client.join(network, address, keys, self.max_peers).await?;
                tracing::info!(
                    peers = joined.peers.len(),
                    tracker = client.addr(),
                    "joined the network"
                );
                (joined.registered, joined.peers)
            }
            TrackerCall::RegisterAndList => {
                client.register_and_list(network, address, keys).await?
            }
            TrackerCall::Register => (client.register(network, address, keys).await?, Vec::new()),
            TrackerCall::List => (
                Registered::default(),
                client.peers(network, self.max_peers).await?,
            ),
        };
        if let Some((_, reason)) = registered.refused.first() {
            tracing::warn!(tracker = client.addr(), %reason, "the tracker refused this node's key");
        }
        Ok(peers)
    }

    fn report(&self, call: TrackerCall, error: &ClientError) {
        let tracker = self.client.addr();
        match call {
            TrackerCall::List => tracing::debug!(tracker, %error, "tracker list failed"),
            TrackerCall::Join => {
                tracing::warn!(tracker, %error, "cannot join through the tracker; retrying later")
            }
            TrackerCall::RegisterAndList | TrackerCall::Register => {
                tracing::warn!(tracker, %error, "cannot register with the tracker")
            }
        }
    }
}

/// A validator's use of the tracker: the other committee members' addresses, into the
/// [`AddressBook`] the sync tasks and the control API read.
pub struct CommitteePeers {
    book: AddressBook,
    committee: HashSet<AccountId>,
    me: AccountId,
    tracker: String,
}

impl CommitteePeers {
    /// Learns `committee`'s addresses (other than `me`'s) from `tracker` into `book`.
    pub fn new(
        book: AddressBook,
        committee: HashSet<AccountId>,
        me: AccountId,
        tracker: String,
    ) -> Self {
        CommitteePeers {
            book,
            committee,
            me,
            tracker,
        }
    }

    fn wanted(&self) -> usize {
        self.committee.len().saturating_sub(1)
    }
}

impl PeerFinder for CommitteePeers {
    fn learn(&mut self, peers: &[Peer]) {
        let changed = self.book.learn(peers, &self.committee, &self.me);
        if changed > 0 {
            tracing::info!(
                tracker = %self.tracker,
                known = self.book.len(),
                of = self.wanted(),
                "learned validator addresses from the tracker"
            );
        }
    }

    fn missing(&self) -> bool {
        self.book.len() < self.wanted()
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

    /// A committee member is missing until the tracker listed every other member.
    #[test]
    fn a_validator_misses_peers_until_every_other_member_is_listed() {
        let keys: Vec<AccountId> = (0..3).map(|_| SecretKey::generate().account()).collect();
        let book = AddressBook::default();
        let mut finder = CommitteePeers::new(
            book.clone(),
            keys.iter().copied().collect(),
            keys[0],
            "tracker".into(),
        );
        assert!(finder.missing());
        finder.learn(&[peer(keys[0], 1000), peer(keys[1], 1001)]);
        assert!(finder.missing(), "keys[2] is still unknown");
        finder.learn(&[peer(keys[2], 1002)]);
        assert!(!finder.missing());
        assert_eq!(book.len(), 2);
    }

    /// The validator's documented timing: `REGUP` every round, every 2 s while someone is
    /// unknown, every 60 s after; a failed round is retried on the same rule.
    #[test]
    fn a_validator_registers_and_lists_every_round_fast_while_someone_is_missing() {
        let settings = TrackerSettings::new("tracker".into(), 0);
        let mut schedule = RegistrationSchedule::validator(settings.retry, settings.interval);
        let t0 = Instant::now();
        assert_eq!(schedule.calls(t0, true), [TrackerCall::RegisterAndList]);
        assert_eq!(schedule.wait(true), Duration::from_secs(2));
        // Unanswered: the same call again next round.
        assert!(!schedule.is_registered());
        assert_eq!(schedule.calls(t0, false), [TrackerCall::RegisterAndList]);
        schedule.succeeded(TrackerCall::RegisterAndList, t0);
        assert!(schedule.is_registered());
        // Registered: the next round registers again, listing as it does.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(schedule.calls(t1, true), [TrackerCall::RegisterAndList]);
        assert_eq!(schedule.calls(t1, false), [TrackerCall::RegisterAndList]);
        assert_eq!(schedule.wait(false), Duration::from_secs(60));
    }

    /// The miner's documented timing: join until joined (every heartbeat), then `REG` once
    /// the renewal period passed and `LIST` on every heartbeat while it has few miners.
    #[test]
    fn a_miner_joins_once_renews_on_its_period_and_lists_while_it_has_few_peers() {
        let heartbeat = Duration::from_secs(30);
        let renew = Duration::from_secs(240);
        let mut schedule = RegistrationSchedule::miner(heartbeat, renew);
        let t0 = Instant::now();
        assert_eq!(schedule.calls(t0, true), [TrackerCall::Join]);
        assert_eq!(schedule.calls(t0, false), [TrackerCall::Join]);
        assert_eq!(
            (schedule.wait(true), schedule.wait(false)),
            (heartbeat, heartbeat)
        );
        // A failed list does not count as joining.
        schedule.succeeded(TrackerCall::List, t0);
        assert!(!schedule.is_registered());
        schedule.succeeded(TrackerCall::Join, t0);
        let t1 = t0 + heartbeat;
        assert_eq!(schedule.calls(t1, true), [TrackerCall::List]);
        assert!(
            schedule.calls(t1, false).is_empty(),
            "enough peers, not due"
        );
        let due = t0 + renew;
        assert_eq!(
            schedule.calls(due, true),
            [TrackerCall::Register, TrackerCall::List]
        );
        assert_eq!(schedule.calls(due, false), [TrackerCall::Register]);
        schedule.succeeded(TrackerCall::Register, due);
        assert!(schedule.calls(due + heartbeat, false).is_empty());
    }
}
