//! What one remote host may make a server hold: how many connections it may open
//! ([`Admission`]), and how many lines its misbehaviour may write to the log ([`LogGate`]).
//!
//! Every Tally server (validator, miner, tracker, relay) counts by [`Source`]: one IPv4
//! address, or one IPv6 /64, since a single host is usually handed a whole /64 and could
//! otherwise open connections from 2^64 addresses. Counting happens at the accept, before a
//! connection's task runs, so a burst cannot pass the check before the first is counted.
//! Plain data and a mutex: no runtime, so the rules are tested without sockets.

use std::collections::HashMap;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The unit every per-host limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// One IPv4 address (an IPv4-mapped IPv6 address counts as its IPv4 address).
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl Source {
    /// The source an address belongs to.
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => {
                    let bits = u128::from(v6);
                    // The top 64 bits of a 128-bit value always fit.
                    Source::V6(u64::try_from(bits >> 64).unwrap_or(u64::MAX))
                }
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::V4(v4) => write!(f, "{v4}"),
            Source::V6(prefix) => {
                let groups = [
                    prefix >> 48,
                    (prefix >> 32) & 0xffff,
                    (prefix >> 16) & 0xffff,
                ];
                write!(
                    f,
                    "{:x}:{:x}:{:x}:{:x}::/64",
                    groups[0],
                    groups[1],
                    groups[2],
                    prefix & 0xffff
                )
            }
        }
    }
}

/// How many connections a server holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections held at once, in all.
    pub max_total: usize,
    /// Inbound connections one [`Source`] may hold (trusted sources excepted).
    pub max_per_source: usize,
    /// Of `max_total`, how many only trusted sources (a committee's own addresses) may
    /// take, so that strangers filling the server never lock its peers out.
    pub reserved: usize,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the server holds as many connections as it serves")]
    Full,
    #[error("this address holds as many connections as one address may")]
    SourceFull,
    #[error("this address sent malformed data; it is refused for a while")]
    Penalised,
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    per_source: HashMap<Source, usize>,
    /// Sources refused until the given time (strangers that sent malformed data).
    penalised: HashMap<Source, Instant>,
}

/// Connection counting shared by a server's accept loop and its connections.
#[derive(Clone, Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    trusted: Arc<HashSet<Source>>,
    counts: Arc<Mutex<Counts>>,
}

impl Admission {
    /// Counts within `limits`; `trusted` addresses may use the reserved room and are not
    /// held to the per-source limit (on one host, a devnet's validators share 127.0.0.1).
    pub fn new(limits: AdmissionLimits, trusted: impl IntoIterator<Item = IpAddr>) -> Self {
        Admission {
            limits,
            trusted: Arc::new(trusted.into_iter().map(Source::of).collect()),
            counts: Arc::new(Mutex::new(Counts::default())),
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // The counts are integers updated in one step each: a panic elsewhere while the
        // lock was held cannot leave them half-written.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts an inbound connection from `ip`, or says why it may not be held.
    pub fn admit(&self, ip: IpAddr) -> Result<Admitted, Refused> {
        let source = Source::of(ip);
        let trusted = self.trusted.contains(&source);
        let mut counts = self.counts();
        let room = if trusted {
            self.limits.max_total
        } else {
            self.limits.max_total.saturating_sub(self.limits.reserved)
        };
        if !trusted && let Some(until) = counts.penalised.get(&source) {
            if Instant::now() < *until {
                return Err(Refused::Penalised);
            }
            counts.penalised.remove(&source);
        }
        if counts.open >= room {
            return Err(Refused::Full);
        }
        let from_source = counts.per_source.get(&source).copied().unwrap_or(0);
        if !trusted && from_source >= self.limits.max_per_source {
            return Err(Refused::SourceFull);
        }
        counts.open += 1;
        counts.per_source.insert(source, from_source + 1);
        Ok(Admitted {
            admission: self.clone(),
            source: Some(source),
        })
    }

    /// Counts a connection we dialed, held to the total only (a server dials few, and its
    /// own choices are not a stranger's); `None` when the server is full.
    pub fn admit_outbound(&self) -> Option<Admitted> {
        let mut counts = self.counts();
        if counts.open >= self.limits.max_total {
            return None;
        }
        counts.open += 1;
        Some(Admitted {
            admission: self.clone(),
            source: None,
        })
    }

    /// Refuses new connections from `ip`'s source for `period` (trusted sources never):
    /// a host whose connection was closed for malformed data does not get a fresh one at
    /// once, so reconnecting in a loop costs the server an accept, not a connection.
    pub fn penalise(&self, ip: IpAddr, period: Duration) {
        let source = Source::of(ip);
        if self.trusted.contains(&source) {
            return;
        }
        let mut counts = self.counts();
        let now = Instant::now();
        if counts.penalised.len() >= MAX_SOURCES {
            counts.penalised.retain(|_, until| *until > now);
        }
        if counts.penalised.len() < MAX_SOURCES {
            counts.penalised.insert(source, now + period);
        }
    }

    /// Whether `ip` is one of the trusted addresses.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.contains(&Source::of(ip))
    }

    /// Connections held.
    pub fn open(&self) -> usize {
        self.counts().open
    }

    /// Connections held from `ip`'s source.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.counts()
            .per_source
            .get(&Source::of(ip))
            .copied()
            .unwrap_or(0)
    }

    fn release(&self, source: Option<Source>) {
        let mut counts = self.counts();
        counts.open = counts.open.saturating_sub(1);
        if let Some(source) = source
            && let Some(count) = counts.per_source.get_mut(&source)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.per_source.remove(&source);
            }
        }
    }
}

/// One connection's place in an [`Admission`], given back when dropped.
#[derive(Debug)]
pub struct Admitted {
    admission: Admission,
    source: Option<Source>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.release(self.source);
    }
}

/// Lets a few log lines per [`Source`] through in each window and counts the rest, so a
/// host sending malformed bytes as fast as it can costs the log a few lines a second, not a
/// line per frame: the next line that passes says how many were held back.
#[derive(Debug)]
pub struct LogGate {
    per_window: u32,
    window: Duration,
    windows: Mutex<HashMap<Source, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    passed: u32,
    held_back: u64,
}

/// Sources remembered at once; past this the table is cleared (it only spares the log).
const MAX_SOURCES: usize = 4096;

impl LogGate {
    /// At most `per_window` lines per source in each `window`.
    pub fn new(per_window: u32, window: Duration) -> Self {
        LogGate {
            per_window,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a line about `ip` may be written at `now`: `Some(n)` (write it, and say `n`
    /// lines were held back before it) or `None` (count it and stay quiet).
    pub fn pass(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= MAX_SOURCES && !windows.contains_key(&Source::of(ip)) {
            windows.clear();
        }
        let window = windows.entry(Source::of(ip)).or_insert(Window {
            started: now,
            passed: 0,
            held_back: 0,
        });
        if now.saturating_duration_since(window.started) >= self.window {
            window.started = now;
            window.passed = 0;
        }
        if window.passed < self.per_window {
            window.passed += 1;
            Some(std::mem::take(&mut window.held_back))
        } else {
            window.held_back += 1;
            None
        }
    }
}

impl Default for LogGate {
    /// Three lines per source per second.
    fn default() -> Self {
        LogGate::new(3, Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn limits(max_total: usize, max_per_source: usize, reserved: usize) -> AdmissionLimits {
        AdmissionLimits {
            max_total,
            max_per_source,
            reserved,
        }
    }

    #[test]
    fn one_source_is_held_to_its_share_and_gets_it_back_as_connections_close() {
        let admission = Admission::new(limits(10, 2, 0), []);
        let a = admission.admit(ip("10.0.0.1")).unwrap();
        let _b = admission.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.1")).unwrap_err(),
            Refused::SourceFull
        );
        let _other = admission.admit(ip("10.0.0.2")).unwrap();
        drop(a);
        assert!(admission.admit(ip("10.0.0.1")).is_ok());
        assert_eq!(admission.open_from(ip("10.0.0.1")), 1);
    }

    #[test]
    fn an_ipv6_host_counts_as_its_slash_64_and_a_mapped_ipv4_as_the_ipv4() {
        let admission = Admission::new(limits(10, 2, 0), []);
        let _a = admission.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = admission.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            admission.admit(ip("2001:db8:1:2:abcd::1")).unwrap_err(),
            Refused::SourceFull
        );
        assert!(admission.admit(ip("2001:db8:1:3::1")).is_ok());
        let _c = admission.admit(ip("192.0.2.7")).unwrap();
        let _d = admission.admit(ip("::ffff:192.0.2.7")).unwrap();
        assert_eq!(
            admission.admit(ip("192.0.2.7")).unwrap_err(),
            Refused::SourceFull
        );
        assert_eq!(
            Source::of(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn strangers_cannot_take_the_room_kept_for_trusted_sources() {
        let admission = Admission::new(limits(4, 4, 2), [ip("127.0.0.1")]);
        let _a = admission.admit(ip("10.0.0.1")).unwrap();
        let _b = admission.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(admission.admit(ip("10.0.0.3")).unwrap_err(), Refused::Full);
        let _c = admission.admit(ip("127.0.0.1")).unwrap();
        let _d = admission.admit(ip("127.0.0.1")).unwrap();
        assert_eq!(admission.admit(ip("127.0.0.1")).unwrap_err(), Refused::Full);
        assert_eq!(admission.open(), 4);
    }

    #[test]
    fn trusted_sources_are_not_held_to_the_per_source_limit() {
        let admission = Admission::new(limits(10, 1, 0), [ip("127.0.0.1")]);
        let held: Vec<_> = (0..5)
            .map(|_| admission.admit(ip("127.0.0.1")).unwrap())
            .collect();
        assert_eq!(held.len(), 5);
        let _stranger = admission.admit(ip("127.0.0.2")).unwrap();
        assert_eq!(
            admission.admit(ip("127.0.0.2")).unwrap_err(),
            Refused::SourceFull
        );
    }

    #[test]
    fn a_penalised_stranger_is_refused_for_the_period_and_a_trusted_source_never() {
        let admission = Admission::new(limits(10, 10, 0), [ip("127.0.0.1")]);
        admission.penalise(ip("10.0.0.1"), Duration::from_millis(100));
        admission.penalise(ip("127.0.0.1"), Duration::from_secs(60));
        assert_eq!(
            admission.admit(ip("10.0.0.1")).unwrap_err(),
            Refused::Penalised
        );
        assert!(admission.admit(ip("10.0.0.2")).is_ok());
        assert!(admission.admit(ip("127.0.0.1")).is_ok());
        std::thread::sleep(Duration::from_millis(120));
        assert!(admission.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn outbound_connections_count_toward_the_total_only() {
        let admission = Admission::new(limits(2, 1, 0), []);
        let _out = admission.admit_outbound().unwrap();
        let _in = admission.admit(ip("10.0.0.1")).unwrap();
        assert!(admission.admit_outbound().is_none());
        assert_eq!(admission.open(), 2);
    }

    #[test]
    fn the_log_gate_passes_a_few_lines_per_window_and_counts_the_rest() {
        let gate = LogGate::new(2, Duration::from_secs(1));
        let start = Instant::now();
        let noisy = ip("10.0.0.1");
        assert_eq!(gate.pass(noisy, start), Some(0));
        assert_eq!(gate.pass(noisy, start), Some(0));
        for _ in 0..1000 {
            assert_eq!(gate.pass(noisy, start), None);
        }
        // Another host is not silenced by the noisy one.
        assert_eq!(gate.pass(ip("10.0.0.2"), start), Some(0));
        // The next window's first line says how many were held back.
        let later = start + Duration::from_secs(1);
        assert_eq!(gate.pass(noisy, later), Some(1000));
        assert_eq!(gate.pass(noisy, later), Some(0));
        assert_eq!(gate.pass(noisy, later), None);
    }
}
