//! The wall clock, in the unit every timestamp of the tracker protocol uses, and the
//! [`Clock`] the server reads it through, so that tests can drive expiry, the replay guard
//! and the request rate limit with a [`ManualClock`] instead of racing real time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Milliseconds since 1970 by the system clock (0 before 1970, `u64::MAX` past its range).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Where the tracker server reads the time (milliseconds since 1970): the system clock
/// (the default) or a [`ManualClock`] that only moves when told to.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system clock ([`now_ms`]).
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The time now, in milliseconds since 1970.
    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => now_ms(),
        }
    }
}

/// A clock for tests: it stands still until [`ManualClock::advance`] moves it. Hand its
/// [`ManualClock::clock`] to the tracker ([`crate::TrackerConfig::clock`]).
#[derive(Clone, Debug)]
pub struct ManualClock {
    ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `ms` milliseconds since 1970.
    pub fn starting_at(ms: u64) -> ManualClock {
        ManualClock {
            ms: Arc::new(AtomicU64::new(ms)),
        }
    }

    /// A clock standing at the system clock's time now.
    pub fn starting_now() -> ManualClock {
        ManualClock::starting_at(now_ms())
    }

    /// The [`Clock`] that reads this one.
    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(Arc::clone(&self.ms)),
        }
    }

    /// The time it shows.
    pub fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }

    /// Moves it forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // `fetch_update` with a closure that always returns `Some` cannot fail.
        let _ = self
            .ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |ms| {
                Some(ms.saturating_add(by))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manual clock stands still until advanced, and every `Clock` made from it reads
    /// the same time; the default clock is the system's.
    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let manual = ManualClock::starting_at(1_000);
        let clock = manual.clock();
        assert_eq!(clock.now_ms(), 1_000);
        manual.advance(Duration::from_millis(250));
        assert_eq!((clock.now_ms(), manual.now_ms()), (1_250, 1_250));
        assert_eq!(clock.clone().now_ms(), 1_250);
        let before = now_ms();
        let system = Clock::system().now_ms();
        assert!(system >= before && system <= now_ms());
    }
}
