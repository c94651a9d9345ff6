//! Peer scoring and bans, sans-I/O: the node reports misbehaviour with the current time and
//! asks whether a peer is banned; nothing here touches a socket or a clock.
//!
//! Why a score and not an immediate ban: a peer can send one bad thing through no fault of
//! its own (a block that was valid on a branch we since marked invalid, a relayed
//! transaction a reorganisation made stale is not scored at all), but a peer that keeps
//! sending invalid data is hostile or broken, and either way costs us CPU. Scores decay so
//! that rare honest mistakes never add up to a ban.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use tally_core::rate::TokenBucket;

/// Who a peer is for scoring, bans and budgets: its IP address, or on 127.0.0.1 or ::1
/// (a devnet on one machine, where every node shares the address) the address it listens
/// on. Other loopback addresses (127.0.0.2 …) count as hosts of their own, as tests and
/// benchmarks use them to stand for other machines.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerKey {
    /// A remote host.
    Ip(IpAddr),
    /// A local node, by its listen address (or its connection's address before `CONNECT`).
    Local(String),
}

impl PeerKey {
    /// The key of the peer at `remote` that says it listens at `listen`.
    pub fn of(remote: SocketAddr, listen: Option<&str>) -> Self {
        match remote.ip().to_canonical() {
            ip if ip == IpAddr::from([127, 0, 0, 1]) || ip == IpAddr::from(Ipv6Addr::LOCALHOST) => {
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

/// What a peer did wrong, and how much it costs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offense {
    /// A frame that is not a packet (bad JSON, unknown type or field, oversized).
    Malformed,
    /// A block that breaks a consensus rule (any [`tally_chain::BlockError`] that is the
    /// peer's fault).
    InvalidBlock,
    /// A `HASH_BROADCAST` whose hash is not its block's.
    WrongHash,
    /// A relayed transaction with a bad signature or no amount (a miner relays only what
    /// it accepted, and these never pass).
    InvalidTransaction,
    /// A packet that makes no sense in its place (an answer nobody asked for, an oversized
    /// batch).
    Protocol,
    /// A `SEND_REQUEST` beyond the connection's block-serving budget (blocks served per
    /// second and burst, `miner.json`'s `block_requests`). An honest miner asks one batch
    /// at a time and validates it before asking again, which stays far below the budget;
    /// a peer that keeps asking faster makes us read and send blocks for nothing.
    RequestFlood,
    /// A `RECEIVE_BLOCK` answering no `SEND_REQUEST` of ours. Blocks arrive unasked only as
    /// `HASH_BROADCAST` (one at a time, relayed once); a batch nobody asked for is never
    /// sent by an honest miner and could carry hundreds of blocks to check, so it is dropped
    /// unread and costs as much as an invalid block: never cheaper than gossip.
    UnsolicitedBlocks,
}

impl Offense {
    /// Points added to the peer's score.
    pub fn points(self) -> u32 {
        match self {
            Offense::Malformed => 25,
            Offense::InvalidBlock => 25,
            Offense::WrongHash => 25,
            Offense::InvalidTransaction => 10,
            Offense::Protocol => 10,
            // Ten refused requests in a row ban; one honest overshoot decays in minutes.
            Offense::RequestFlood => 10,
            Offense::UnsolicitedBlocks => 25,
        }
    }
}

/// Scoring policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScorePolicy {
    /// A peer whose score reaches this is banned (default 100: four invalid blocks).
    pub ban_threshold: u32,
    /// How long a ban lasts, in milliseconds (default one hour).
    pub ban_ms: u64,
    /// One point is forgiven per this many milliseconds (default one minute).
    pub decay_ms: u64,
}

impl Default for ScorePolicy {
    fn default() -> Self {
        ScorePolicy {
            ban_threshold: 100,
            ban_ms: 60 * 60 * 1000,
            decay_ms: 60 * 1000,
        }
    }
}

/// The verdict after an offense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep talking; the score is now this.
    Scored(u32),
    /// The peer is now banned: close its connections, refuse new ones.
    Banned,
}

#[derive(Clone, Copy, Debug)]
struct Record {
    score: u32,
    updated_ms: u64,
    banned_until_ms: Option<u64>,
}

/// Scores and bans, keyed by whatever identifies a peer (the node uses the IP address,
/// or on loopback the address a peer listens on).
#[derive(Clone, Debug)]
pub struct PeerBook<K> {
    policy: ScorePolicy,
    records: HashMap<K, Record>,
    max_records: usize,
}

impl<K: Hash + Eq + Clone> PeerBook<K> {
    /// An empty book.
    pub fn new(policy: ScorePolicy) -> Self {
        PeerBook {
            policy,
            records: HashMap::new(),
            max_records: 100_000,
        }
    }

    /// Records `offense` by `peer` at `now_ms`.
    pub fn penalise(&mut self, peer: &K, offense: Offense, now_ms: u64) -> Verdict {
        if self.is_banned(peer, now_ms) {
            return Verdict::Banned;
        }
        if self.records.len() >= self.max_records {
            self.sweep(now_ms);
        }
        let policy = self.policy;
        let record = self.records.entry(peer.clone()).or_insert(Record {
            score: 0,
            updated_ms: now_ms,
            banned_until_ms: None,
        });
        decay(record, &policy, now_ms);
        record.score = record.score.saturating_add(offense.points());
        if record.score >= policy.ban_threshold {
            record.banned_until_ms = Some(now_ms.saturating_add(policy.ban_ms));
            record.score = 0;
            Verdict::Banned
        } else {
            Verdict::Scored(record.score)
        }
    }

    /// Whether `peer` is banned at `now_ms`.
    pub fn is_banned(&self, peer: &K, now_ms: u64) -> bool {
        self.records
            .get(peer)
            .and_then(|r| r.banned_until_ms)
            .is_some_and(|until| now_ms < until)
    }

    /// The peer's current score (0 for unknown peers).
    pub fn score(&self, peer: &K, now_ms: u64) -> u32 {
        self.records.get(peer).map_or(0, |r| {
            let mut r = *r;
            decay(&mut r, &self.policy, now_ms);
            r.score
        })
    }

    /// Peers banned at `now_ms`.
    pub fn banned(&self, now_ms: u64) -> Vec<K> {
        self.records
            .iter()
            .filter(|(_, r)| r.banned_until_ms.is_some_and(|u| now_ms < u))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Forgets expired bans and fully decayed scores (bounds memory).
    pub fn sweep(&mut self, now_ms: u64) {
        let policy = self.policy;
        self.records.retain(|_, r| {
            decay(r, &policy, now_ms);
            r.score > 0 || r.banned_until_ms.is_some_and(|u| now_ms < u)
        });
    }
}

/// Block-serving budgets (`SEND_REQUEST`), one token bucket per peer rather than per
/// connection: a peer that reconnects, or opens many connections, still draws on one
/// budget. Buckets that have refilled completely carry nothing a fresh one would not, so
/// they are forgotten first when the book is full.
#[derive(Clone, Debug)]
pub struct ServingBudgets<K> {
    blocks_per_sec: u64,
    burst: u64,
    buckets: HashMap<K, TokenBucket>,
    max_peers: usize,
}

impl<K: Hash + Eq + Clone> ServingBudgets<K> {
    /// Budgets of `blocks_per_sec` tokens a second up to `burst` (a rate of 0: no limit),
    /// remembered for at most `max_peers` peers at once.
    pub fn new(blocks_per_sec: u64, burst: u64, max_peers: usize) -> Self {
        ServingBudgets {
            blocks_per_sec,
            burst,
            buckets: HashMap::new(),
            max_peers: max_peers.max(1),
        }
    }

    /// Takes `cost` tokens from `peer`'s budget at `now`; `false` (nothing taken) when it
    /// cannot pay.
    pub fn take(&mut self, peer: &K, cost: u64, now: Instant) -> bool {
        if self.blocks_per_sec == 0 {
            return true;
        }
        if !self.buckets.contains_key(peer) && self.buckets.len() >= self.max_peers {
            self.buckets.retain(|_, bucket| {
                bucket.refill(now);
                !bucket.is_full()
            });
            if self.buckets.len() >= self.max_peers {
                // Every remembered peer is drawing on its budget: an attacker with that
                // many addresses. Forget them all rather than grow; each starts full again.
                self.buckets.clear();
            }
        }
        let (rate, burst) = (self.blocks_per_sec, self.burst);
        let bucket = self
            .buckets
            .entry(peer.clone())
            .or_insert_with(|| TokenBucket::new(rate, burst, now));
        bucket.refill(now);
        bucket.take(cost)
    }

    /// Gives `peer` back `unused` tokens taken for blocks that were not sent.
    pub fn refund(&mut self, peer: &K, unused: u64) {
        if let Some(bucket) = self.buckets.get_mut(peer) {
            bucket.refund(unused);
        }
    }

    /// Peers whose budget is remembered now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no peer's budget is remembered.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

fn decay(record: &mut Record, policy: &ScorePolicy, now_ms: u64) {
    let elapsed = now_ms.saturating_sub(record.updated_ms);
    let forgiven = elapsed / policy.decay_ms.max(1);
    if forgiven > 0 {
        record.score = record
            .score
            .saturating_sub(u32::try_from(forgiven).unwrap_or(u32::MAX));
        record.updated_ms = now_ms;
    }
    if record.banned_until_ms.is_some_and(|u| now_ms >= u) {
        record.banned_until_ms = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    /// Peers are known by host: an IPv6 /64 is one peer (a host can take a new address in
    /// its /64 at will), an IPv4-mapped address is its IPv4 address, and local nodes on
    /// 127.0.0.1 are told apart by the address they listen on.
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
        // Another loopback address stands for another host: all its connections are one
        // peer, whatever ports they come from, so a ban holds across its reconnects.
        assert_eq!(
            PeerKey::of(at("127.0.0.2:5"), None),
            PeerKey::of(at("127.0.0.2:6"), Some("127.0.0.2:9000"))
        );
        assert_eq!(
            PeerKey::of(at("127.0.0.2:5"), None),
            PeerKey::Ip("127.0.0.2".parse().unwrap())
        );
    }

    /// One budget per peer: whatever it spent stays spent across connections; refunds
    /// give back what was not sent; full buckets are forgotten first when the book is full.
    #[test]
    fn serving_budgets_are_per_peer_refundable_and_bounded() {
        let t0 = Instant::now();
        let mut budgets = ServingBudgets::new(10, 100, 2);
        let (a, b, c) = ("a".to_string(), "b".to_string(), "c".to_string());
        assert!(budgets.take(&a, 90, t0));
        assert!(!budgets.take(&a, 20, t0), "a reconnect would not refill it");
        budgets.refund(&a, 15);
        assert!(budgets.take(&a, 20, t0));
        assert!(budgets.take(&b, 1, t0));
        // Full: `b` has refilled after a second, `a` has not, so `b` is forgotten.
        let t1 = t0 + Duration::from_secs(1);
        assert!(budgets.take(&c, 1, t1));
        assert_eq!(budgets.len(), 2);
        assert!(!budgets.take(&a, 50, t1), "a keeps its spent budget");
        let mut open = ServingBudgets::new(0, 0, 1);
        assert!(
            open.take(&a, u64::MAX, t0) && open.is_empty(),
            "a rate of 0 never refuses"
        );
    }

    #[test]
    fn four_invalid_blocks_ban_and_the_ban_expires() {
        let mut book = PeerBook::new(ScorePolicy::default());
        let p = "peer".to_string();
        assert_eq!(
            book.penalise(&p, Offense::InvalidBlock, 0),
            Verdict::Scored(25)
        );
        assert_eq!(
            book.penalise(&p, Offense::InvalidBlock, 0),
            Verdict::Scored(50)
        );
        assert_eq!(
            book.penalise(&p, Offense::InvalidBlock, 0),
            Verdict::Scored(75)
        );
        assert!(!book.is_banned(&p, 0));
        assert_eq!(book.penalise(&p, Offense::InvalidBlock, 0), Verdict::Banned);
        assert!(book.is_banned(&p, 1));
        assert_eq!(book.banned(1), vec![p.clone()]);
        let later = ScorePolicy::default().ban_ms;
        assert!(!book.is_banned(&p, later));
        assert_eq!(book.score(&p, later), 0);
    }

    #[test]
    fn scores_decay_so_rare_mistakes_never_ban() {
        let mut book = PeerBook::new(ScorePolicy::default());
        let minute = ScorePolicy::default().decay_ms;
        for i in 0..100u64 {
            // One invalid block every half hour.
            let verdict = book.penalise(&1u32, Offense::InvalidBlock, i * 30 * minute);
            assert_eq!(verdict, Verdict::Scored(25));
        }
        book.sweep(10_000 * minute);
        assert_eq!(book.score(&1u32, 10_000 * minute), 0);
    }
}
