//! The mining switches and counters the daemon and the mining thread share, and the
//! decisions about them that need no thread: when a template is stale, what the hash rate
//! is.
//!
//! The mining thread builds a template and searches nonces until its round's stop flag is
//! raised: whenever the tip moves, mining is switched, the node stops, or transactions
//! have waited `template_refresh` since the template was taken.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Mining state shared by the daemon, the ticker and the mining thread.
#[derive(Debug)]
pub struct MiningControl {
    /// Whether this node mines.
    on: AtomicBool,
    /// The mining thread saw `on` off and holds no block in progress.
    idle: AtomicBool,
    /// The current round's stop flag.
    round: Mutex<Arc<AtomicBool>>,
    /// Hashes tried since start (the nonce search adds to it).
    hashes: AtomicU64,
    /// Hashes per second over the last second.
    hash_rate: AtomicU64,
    /// Bumped whenever the mempool gained transactions.
    mempool_generation: AtomicU64,
    /// The mempool generation the current template was taken at.
    template_generation: AtomicU64,
    /// When the current template was taken (ms since 1970).
    template_ms: AtomicU64,
    /// Blocks this node mined that were stored.
    blocks_mined: AtomicU64,
}

impl MiningControl {
    /// Mining `on` or off at start.
    pub fn new(on: bool) -> Self {
        MiningControl {
            on: AtomicBool::new(on),
            idle: AtomicBool::new(!on),
            round: Mutex::new(Arc::new(AtomicBool::new(false))),
            hashes: AtomicU64::new(0),
            hash_rate: AtomicU64::new(0),
            mempool_generation: AtomicU64::new(0),
            template_generation: AtomicU64::new(0),
            template_ms: AtomicU64::new(0),
            blocks_mined: AtomicU64::new(0),
        }
    }

    /// Whether this node mines.
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }

    /// Switches mining and ends the round in progress.
    pub fn switch(&self, on: bool) {
        if on {
            self.idle.store(false, Ordering::SeqCst);
        }
        self.on.store(on, Ordering::SeqCst);
        self.stop_round();
    }

    /// The mining thread holds no block in progress (mining is off).
    pub fn set_idle(&self) {
        self.idle.store(true, Ordering::SeqCst);
    }

    /// Whether the mining thread is idle.
    pub fn is_idle(&self) -> bool {
        self.idle.load(Ordering::SeqCst)
    }

    /// The template in progress is stale (the tip moved, mining was switched, the node
    /// stops): end the round.
    pub fn stop_round(&self) {
        lock(&self.round).store(true, Ordering::Relaxed);
    }

    /// Starts a round: its stop flag, registered before the template is taken so that a
    /// tip change in between stops it.
    pub fn new_round(&self) -> Arc<AtomicBool> {
        let stop = Arc::new(AtomicBool::new(false));
        *lock(&self.round) = stop.clone();
        stop
    }

    /// The mempool gained transactions.
    pub fn mempool_grew(&self) {
        self.mempool_generation.fetch_add(1, Ordering::Relaxed);
    }

    /// A template is taken now (`now_ms`), with the mempool as it is.
    pub fn template_taken(&self, now_ms: u64) {
        self.template_generation.store(
            self.mempool_generation.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self.template_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Whether the template misses transactions that have waited `refresh` at `now_ms`.
    pub fn template_is_stale(&self, now_ms: u64, refresh: Duration) -> bool {
        let age = now_ms.saturating_sub(self.template_ms.load(Ordering::Relaxed));
        self.mempool_generation.load(Ordering::Relaxed)
            != self.template_generation.load(Ordering::Relaxed)
            && u128::from(age) >= refresh.as_millis()
    }

    /// The counter the nonce search adds its hashes to.
    pub fn hashes(&self) -> &AtomicU64 {
        &self.hashes
    }

    /// Hashes per second, as last sampled.
    pub fn hash_rate(&self) -> u64 {
        self.hash_rate.load(Ordering::Relaxed)
    }

    /// Records a hash-rate sample.
    pub fn set_hash_rate(&self, rate: u64) {
        self.hash_rate.store(rate, Ordering::Relaxed);
    }

    /// A block this node mined was stored.
    pub fn block_mined(&self) {
        self.blocks_mined.fetch_add(1, Ordering::Relaxed);
    }

    /// Blocks this node mined that were stored.
    pub fn blocks_mined(&self) -> u64 {
        self.blocks_mined.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock is a bug elsewhere; the flag is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The hash rate over sampling periods of at least a second.
#[derive(Clone, Debug)]
pub struct HashRateSampler {
    last_hashes: u64,
    last_sample: Instant,
}

impl HashRateSampler {
    /// Sampling from `now`, with no hashes yet.
    pub fn new(now: Instant) -> Self {
        HashRateSampler {
            last_hashes: 0,
            last_sample: now,
        }
    }

    /// With `hashes` tried in all at `now`: the rate since the last sample, once a second
    /// has passed.
    pub fn sample(&mut self, hashes: u64, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.last_sample);
        if elapsed < Duration::from_secs(1) {
            return None;
        }
        let rate = hashes.saturating_sub(self.last_hashes) as f64 / elapsed.as_secs_f64();
        self.last_hashes = hashes;
        self.last_sample = now;
        Some(rate as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A template is stale once transactions arrived after it was taken and have waited
    /// the refresh period; a new template is fresh again.
    #[test]
    fn a_template_is_refreshed_only_for_transactions_that_waited() {
        let control = MiningControl::new(true);
        let refresh = Duration::from_millis(50);
        control.template_taken(1000);
        assert!(!control.template_is_stale(5000, refresh), "nothing new");
        control.mempool_grew();
        assert!(!control.template_is_stale(1049, refresh));
        assert!(control.template_is_stale(1050, refresh));
        control.template_taken(1050);
        assert!(!control.template_is_stale(9000, refresh));
    }

    /// Switching mining off stops the round in progress; on again, the thread is busy.
    #[test]
    fn switching_stops_the_round_in_progress() {
        let control = MiningControl::new(false);
        assert!(control.is_idle() && !control.is_on());
        control.switch(true);
        assert!(control.is_on() && !control.is_idle());
        let round = control.new_round();
        assert!(!round.load(Ordering::Relaxed));
        control.switch(false);
        assert!(round.load(Ordering::Relaxed));
        assert!(
            !control.new_round().load(Ordering::Relaxed),
            "a fresh round"
        );
    }

    #[test]
    fn the_hash_rate_is_sampled_over_a_second_or_more() {
        let t0 = Instant::now();
        let mut sampler = HashRateSampler::new(t0);
        assert_eq!(sampler.sample(500, t0 + Duration::from_millis(900)), None);
        assert_eq!(sampler.sample(1000, t0 + Duration::from_secs(2)), Some(500));
        assert_eq!(sampler.sample(1000, t0 + Duration::from_secs(3)), Some(0));
    }
}
