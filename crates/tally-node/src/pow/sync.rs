//! Sync decisions with one peer, sans-I/O: when to send `SEND_REQUEST`, and when a batch
//! calls for the next one. Time comes in as an argument.
//!
//! Rules: ask a peer for blocks when it announces more work than our tip (its `CONNECT`),
//! when it sent a block whose parent we lack (an orphan), or when its last batch moved us
//! and it still has more work than we do. At most one request per peer is in flight, so a
//! peer cannot make us flood it and we never process the same range twice; a request that
//! gets no answer within the timeout no longer blocks the next.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

use tally_proto::pow::Tip;

/// Sync state with one peer.
#[derive(Clone, Debug)]
pub struct PeerSync {
    /// When our outstanding `SEND_REQUEST` was sent, if one is.
    in_flight_since: Option<u64>,
    /// The peer's tip as it last told us.
    peer_tip: Option<Tip>,
    /// How long an answer may take before we may ask again, in milliseconds.
    timeout_ms: u64,
    /// Requests in a row that got no answer within the timeout.
    unanswered: u32,
    /// Requests sent and not yet answered (at most [`MAX_UNANSWERED`] + 1): each entitles
    /// the peer to one `RECEIVE_BLOCK`, so a late answer to a timed-out request is still
    /// welcome, and a batch beyond them is unsolicited.
    outstanding: u32,
}

/// Requests in a row a peer may leave unanswered before it is dropped: it holds a sync slot
/// and its announced work could keep us from looking elsewhere.
pub const MAX_UNANSWERED: u32 = 3;

impl PeerSync {
    /// A peer we have not heard from yet.
    pub fn new(timeout_ms: u64) -> Self {
        PeerSync {
            in_flight_since: None,
            peer_tip: None,
            timeout_ms,
            unanswered: 0,
            outstanding: 0,
        }
    }

    /// Whether the peer left [`MAX_UNANSWERED`] requests in a row unanswered.
    pub fn is_unresponsive(&self) -> bool {
        self.unanswered >= MAX_UNANSWERED
    }

    /// The peer's tip, as it last announced it.
    pub fn peer_tip(&self) -> Option<Tip> {
        self.peer_tip
    }

    fn can_ask(&self, now_ms: u64) -> bool {
        self.in_flight_since
            .is_none_or(|since| now_ms.saturating_sub(since) >= self.timeout_ms)
    }

    fn ask(&mut self, now_ms: u64) -> bool {
        if self.can_ask(now_ms) {
            if self.in_flight_since.is_some() {
                self.unanswered = self.unanswered.saturating_add(1);
            }
            self.in_flight_since = Some(now_ms);
            self.outstanding = (self.outstanding + 1).min(MAX_UNANSWERED + 1);
            true
        } else {
            false
        }
    }

    /// The peer announced its tip (`CONNECT`). `true`: send it a `SEND_REQUEST` now.
    pub fn on_peer_tip(&mut self, peer: Tip, ours: Tip, now_ms: u64) -> bool {
        self.peer_tip = Some(peer);
        peer.work > ours.work && self.ask(now_ms)
    }

    /// The peer sent a block whose parent we lack. `true`: send it a `SEND_REQUEST` now.
    pub fn on_orphan(&mut self, now_ms: u64) -> bool {
        self.ask(now_ms)
    }

    /// A `RECEIVE_BLOCK` arrived: whether it answers one of our requests (and then it
    /// counts as that answer). `false`: the peer sent blocks nobody asked for.
    pub fn take_answer(&mut self) -> bool {
        if self.outstanding == 0 {
            return false;
        }
        self.outstanding -= 1;
        true
    }

    /// A `RECEIVE_BLOCK` arrived with `received` blocks, of which `progressed` says whether
    /// any was new to us and none invalid. `true`: ask for the next batch.
    pub fn on_batch(
        &mut self,
        received: usize,
        progressed: bool,
        peer: Tip,
        ours: Tip,
        now_ms: u64,
    ) -> bool {
        self.in_flight_since = None;
        self.unanswered = 0;
        self.peer_tip = Some(peer);
        received > 0 && progressed && peer.work > ours.work && self.ask(now_ms)
    }
}

/// A bounded set of recently seen ids (transactions, blocks): gossip is relayed once and
/// work is not repeated for something already handled. The oldest ids are forgotten first.
#[derive(Clone, Debug)]
pub struct Seen<T> {
    set: HashSet<T>,
    order: VecDeque<T>,
    capacity: usize,
}

impl<T: Hash + Eq + Clone> Seen<T> {
    /// A set remembering at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Seen {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `id`; `true` if it is new.
    pub fn insert(&mut self, id: T) -> bool {
        if !self.set.insert(id.clone()) {
            return false;
        }
        self.order.push_back(id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// Forgets `id` now, so that it counts as new again (a transaction refused for a reason
    /// that may pass later). Its place in the eviction order stays until it is evicted:
    /// the set may then forget a re-inserted `id` early, which costs at most a repeated
    /// check, never a missed one.
    pub fn forget(&mut self, id: &T) {
        self.set.remove(id);
    }

    /// Whether `id` was seen (and not yet forgotten).
    pub fn contains(&self, id: &T) -> bool {
        self.set.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_chain::U256;
    use tally_core::Digest;

    fn tip(work: u64) -> Tip {
        Tip {
            hash: Digest::default(),
            height: work,
            work: U256::from_u64(work),
        }
    }

    #[test]
    fn asks_heavier_peers_once_at_a_time_and_continues_batches() {
        let mut s = PeerSync::new(1000);
        assert!(
            !s.on_peer_tip(tip(5), tip(5), 0),
            "equal work: nothing to fetch"
        );
        assert!(s.on_peer_tip(tip(9), tip(5), 0));
        assert!(!s.on_peer_tip(tip(9), tip(5), 10), "one request in flight");
        assert!(!s.on_orphan(20));
        // The batch moved us to 7; the peer still has more.
        assert!(s.on_batch(2, true, tip(9), tip(7), 30));
        // The last batch: we caught up.
        assert!(!s.on_batch(2, true, tip(9), tip(9), 40));
        // An unanswered request stops blocking after the timeout.
        assert!(s.on_orphan(50));
        assert!(!s.on_orphan(60));
        assert!(s.on_orphan(1050));
        // An empty or useless batch ends the exchange.
        assert!(!s.on_batch(0, false, tip(12), tip(9), 1060));
    }

    #[test]
    fn a_peer_that_leaves_requests_unanswered_is_unresponsive_and_an_answer_forgives() {
        let mut s = PeerSync::new(1000);
        assert!(s.on_peer_tip(tip(9), tip(5), 0));
        for round in 1..MAX_UNANSWERED {
            assert!(s.on_peer_tip(tip(9), tip(5), u64::from(round) * 1000));
            assert!(!s.is_unresponsive(), "{round} unanswered is tolerated");
        }
        assert!(s.on_peer_tip(tip(9), tip(5), u64::from(MAX_UNANSWERED) * 1000));
        assert!(s.is_unresponsive());
        // An answer resets the count.
        assert!(!s.on_batch(1, true, tip(9), tip(9), 10_000));
        assert!(!s.is_unresponsive());
    }

    #[test]
    fn only_answers_to_our_requests_are_solicited() {
        let mut s = PeerSync::new(1000);
        assert!(!s.take_answer(), "nothing asked yet");
        assert!(s.on_peer_tip(tip(9), tip(5), 0));
        // The request times out and is sent again: both answers are welcome, a third not.
        assert!(s.on_orphan(1000));
        assert!(s.take_answer());
        assert!(s.take_answer());
        assert!(!s.take_answer());
        // However often we ask an unresponsive peer, its credit stays bounded.
        for round in 0..10u64 {
            assert!(s.on_orphan(2000 + round * 1000));
        }
        for _ in 0..=MAX_UNANSWERED {
            assert!(s.take_answer());
        }
        assert!(!s.take_answer());
    }

    #[test]
    fn forgotten_ids_are_new_again() {
        let mut seen = Seen::new(3);
        assert!(seen.insert(1));
        seen.forget(&1);
        assert!(!seen.contains(&1));
        assert!(seen.insert(1), "new after being forgotten");
        assert!(seen.insert(2) && seen.insert(3) && seen.insert(4));
        assert!(seen.contains(&4));
        assert!(seen.contains(&3));
    }

    #[test]
    fn seen_forgets_the_oldest() {
        let mut seen = Seen::new(2);
        assert!(seen.insert(1));
        assert!(!seen.insert(1));
        assert!(seen.insert(2));
        assert!(seen.insert(3));
        assert!(!seen.contains(&1));
        assert!(seen.contains(&3));
    }
}
