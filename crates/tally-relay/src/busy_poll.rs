//! Busy polling: after traffic, keep the relay's runtime checking its sockets for a short
//! window instead of sleeping in `epoll_wait`.
//!
//! Why: a thread that sleeps gives its CPU back, and on a virtual machine the hypervisor may
//! then halt that virtual CPU. Waking it for the next packet costs the host's scheduling
//! delay, which on a shared 2-vCPU guest reaches whole milliseconds, far above the relay's
//! own tens of microseconds per line. The same problem and the same cure exist in the
//! kernel (`SO_BUSY_POLL`, guest halt polling) and in messaging systems (a busy-spin idle
//! strategy). Spinning only while lines keep coming bounds the cost: an idle relay sleeps
//! as before, a busy one trades up to one core for latency.
//!
//! It works by keeping one task ready: [`BusyPoller::run`] yields in a loop while the last
//! read was less than `window` ago. A runtime with a ready task polls its I/O driver
//! without blocking between tasks, so readiness is seen as soon as the kernel has it. This
//! is effective on a single-threaded runtime, whose one thread owns the driver; on a
//! multi-threaded runtime a parked worker may hold the driver and the spin helps less.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// When the relay last read from a socket, shared by every connection task and the poller.
#[derive(Debug)]
pub(crate) struct Activity {
    started: Instant,
    /// Nanoseconds from `started` to the last read.
    last_read: AtomicU64,
    /// The poller is asleep and must be woken by the next read.
    parked: AtomicBool,
    wake: Notify,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_read: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    /// Records a read at `now` and wakes the poller if it sleeps. Cheap: one store, one
    /// load, and a notification only while the poller sleeps (it clears `parked` itself
    /// when it wakes).
    pub(crate) fn read_at(&self, now: Instant) {
        self.last_read.store(self.nanos(now), Ordering::Relaxed);
        if self.parked.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_nanos()).unwrap_or(u64::MAX)
    }

    fn quiet_for(&self, now: Instant) -> Duration {
        Duration::from_nanos(
            self.nanos(now)
                .saturating_sub(self.last_read.load(Ordering::Relaxed)),
        )
    }
}

/// The task that keeps the runtime polling while reads keep coming.
#[derive(Debug)]
pub(crate) struct BusyPoller {
    pub(crate) window: Duration,
}

impl BusyPoller {
    /// Spins (yielding to every other task between checks) while the last read is less
    /// than the window old, sleeps until the next read otherwise; returns at shutdown.
    pub(crate) async fn run(self, activity: &Activity, shutdown: &CancellationToken) {
        loop {
            while activity.quiet_for(Instant::now()) < self.window {
                if shutdown.is_cancelled() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            activity.parked.store(true, Ordering::Relaxed);
            // A read between the check above and `parked` leaves a stored permit or a
            // recent `last_read`: at worst one spell is not spun, nothing waits forever.
            if activity.quiet_for(Instant::now()) < self.window {
                activity.parked.store(false, Ordering::Relaxed);
                continue;
            }
            tokio::select! {
                () = activity.wake.notified() => activity.parked.store(false, Ordering::Relaxed),
                () = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    /// The poller spins after a read for as long as the window lasts (however often it is
    /// polled), goes to sleep once the window has passed, wakes on the next read for a
    /// whole window again, and stops at shutdown. The test polls the poller itself, step by
    /// step, on tokio's paused clock, which only the test moves: no wall-clock window to
    /// race, and a broken poller fails an assertion instead of hanging.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn spins_after_reads_sleeps_when_quiet_and_stops_at_shutdown() {
        let window = Duration::from_millis(20);
        let activity = Activity::new();
        let shutdown = CancellationToken::new();
        let mut poller = pin!(BusyPoller { window }.run(&activity, &shutdown));
        let mut step = || {
            poller
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
        };
        let spinning = |activity: &Activity| !activity.parked.load(Ordering::Relaxed);

        // The window counts from the start, as if a read had just happened.
        for _ in 0..100 {
            assert!(step().is_pending());
            assert!(spinning(&activity), "it spins within the window");
        }
        tokio::time::advance(window).await;
        assert!(step().is_pending());
        assert!(!spinning(&activity), "it sleeps once the window has passed");
        assert!(step().is_pending());
        assert!(!spinning(&activity), "and stays asleep without reads");

        tokio::time::advance(Duration::from_secs(5)).await;
        activity.read_at(Instant::now());
        assert!(
            !spinning(&activity),
            "only the poller itself says it is awake"
        );
        for _ in 0..100 {
            assert!(step().is_pending());
            assert!(spinning(&activity), "a read woke it and it spins");
        }
        tokio::time::advance(window - Duration::from_millis(1)).await;
        for _ in 0..100 {
            assert!(step().is_pending());
            assert!(
                spinning(&activity),
                "it still spins 1 ms before the window ends"
            );
        }
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(step().is_pending());
        assert!(!spinning(&activity), "it sleeps once the window has passed");

        shutdown.cancel();
        assert!(step().is_ready(), "it stops at shutdown");
    }
}
