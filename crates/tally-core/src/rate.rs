//! Token buckets for flood limits (the relay's lines and bytes, the miner's block requests),
//! driven by the caller's clock: no I/O, no timers.

use std::time::Instant;

/// A token bucket: `rate` tokens a second, at most `burst` saved up. A rate of 0 never
/// refuses.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket as of `now`.
    pub fn new(rate: u64, burst: u64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: now,
        }
    }

    /// Adds the tokens earned since the last refill.
    pub fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.last = now;
    }

    /// Gives back `n` tokens taken for work that was not done (never past the burst).
    pub fn refund(&mut self, n: u64) {
        self.tokens = (self.tokens + n as f64).min(self.burst);
    }

    /// Whether the bucket is full: it then remembers nothing a fresh bucket would not.
    pub fn is_full(&self) -> bool {
        self.tokens >= self.burst
    }

    /// Takes `n` tokens if there are that many; `false` means the limit is exceeded.
    pub fn take(&mut self, n: u64) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let n = n as f64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;

    /// A burst is allowed, then the sustained rate; a zero rate never refuses.
    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        assert!((0..5).all(|_| b.take(1)));
        assert!(!b.take(1));
        b.refill(t0 + Duration::from_millis(200));
        assert!(b.take(1) && b.take(1));
        assert!(!b.take(1));
        b.refill(t0 + Duration::from_secs(100));
        assert!((0..5).all(|_| b.take(1)));
        assert!(!b.take(1), "never more than the burst");
        let mut free = TokenBucket::new(0, 0, t0);
        assert!((0..1000).all(|_| free.take(1_000_000)));
    }

    /// Refunds give back unused tokens, never past the burst; a full bucket says so.
    #[test]
    fn refunds_stop_at_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        assert!(b.is_full());
        assert!(b.take(5) && !b.take(1));
        assert!(!b.is_full());
        b.refund(3);
        assert!(b.take(3) && !b.take(1));
        b.refund(100);
        assert!(b.is_full());
        assert!(b.take(5) && !b.take(1), "refunds never pass the burst");
    }
}
