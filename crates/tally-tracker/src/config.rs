//! What a tracker serves and every limit it enforces. Each limit exists because the
//! Minicash peer server had none (no socket timeouts, no size limits, no caps per address);
//! the defaults are documented in PROTOCOL.md and repeated on each field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tally_core::NetworkContract;

use crate::clock::Clock;

/// The file inside the data directory that holds the registrations.
pub const DB_FILE: &str = "tracker.redb";

/// Limits and timings of a tracker. `Limits::DEFAULT` is what `tally tracker` uses unless a
/// flag says otherwise; tests shorten the timings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request frame body accepted, in bytes (default 16 KiB). A bigger length
    /// prefix is answered `Fail` and the connection is closed.
    pub max_request_bytes: usize,
    /// Longest wait for one complete request frame, counted from when the tracker starts
    /// waiting for it (default 30 s). Slow or half-open connections are closed after it.
    pub read_timeout: Duration,
    /// Longest time writing one answer (or the answers ready together, written at once) may
    /// take before the connection is dropped (default 10 s): a client that does not read
    /// cannot pin the tracker's memory.
    pub write_timeout: Duration,
    /// Longest wait for room in the verification queue before answering `Fail` "tracker
    /// busy" without storing anything (default 10 s).
    pub request_timeout: Duration,
    /// Open connections in all (default 4096); more are closed at once.
    pub max_connections: usize,
    /// Open connections from one IP address (default 32).
    pub max_connections_per_ip: usize,
    /// Requests one IP address may make per second, sustained; 0 means unlimited
    /// (default 200). A burst of twice that is allowed.
    pub requests_per_ip_per_sec: u32,
    /// Failed requests on one connection before it is closed (default 16).
    pub max_failures_per_connection: u32,
    /// Requests a client may send on one connection before reading the answers (default 32).
    pub pipeline_depth: usize,
    /// Stored entries (one per network and key) in all (default 2,000,000).
    pub max_entries: usize,
    /// Stored entries registered from one IP address (default 1024).
    pub max_entries_per_ip: usize,
    /// Stored entries (keys) listed at one reachable address, IP and port (default 16, the
    /// most keys one registration carries): with every address tied to its registering
    /// host, what a host lists points at itself, and no address gathers more than this.
    pub max_entries_per_address: usize,
    /// Keys in one registration (default 16).
    pub max_keys_per_request: usize,
    /// How long an entry lives after its last registration (default 10 minutes).
    pub ttl: Duration,
    /// How far a registration's timestamp may be from the tracker's clock (default 2 minutes).
    pub max_clock_skew: Duration,
    /// How often expired entries are deleted from memory and disk (default 30 s). Lists
    /// never show an expired entry, swept or not.
    pub sweep_interval: Duration,
    /// Most peers in one `SEND_LIST` (default 64); a client may ask for fewer.
    pub max_list_peers: usize,
    /// Most entries in a `REGUP` answer's `Maps` (default 4096); above it, a random sample.
    pub max_maps: usize,
    /// Most registrations committed, and signatures verified, as one batch (default 2048).
    /// Verification batches are further capped at 128 signatures per verifier thread so
    /// that checking one batch overlaps with committing the previous one.
    pub max_batch: usize,
    /// Registrations waiting for verification before new ones wait (default 16384).
    pub queue_capacity: usize,
    /// Threads verifying signatures; 0 means one per available core (default 0).
    pub verify_threads: usize,
    /// Page cache of the database, in bytes (default 16 MiB).
    pub db_cache_bytes: usize,
}

impl Limits {
    /// The documented defaults.
    pub const DEFAULT: Limits = Limits {
        max_request_bytes: 16 * 1024,
        read_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
        max_connections: 4096,
        max_connections_per_ip: 32,
        requests_per_ip_per_sec: 200,
        max_failures_per_connection: 16,
        pipeline_depth: 32,
        max_entries: 2_000_000,
        max_entries_per_ip: 1024,
        max_entries_per_address: 16,
        max_keys_per_request: 16,
        ttl: Duration::from_secs(600),
        max_clock_skew: Duration::from_secs(120),
        sweep_interval: Duration::from_secs(30),
        max_list_peers: 64,
        max_maps: 4096,
        max_batch: 2048,
        queue_capacity: 16384,
        verify_threads: 0,
        db_cache_bytes: 16 * 1024 * 1024,
    };

    /// `ttl` in milliseconds, saturating.
    pub fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// `max_clock_skew` in milliseconds, saturating.
    pub fn skew_ms(&self) -> u64 {
        u64::try_from(self.max_clock_skew.as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Everything a tracker needs to start.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Where to listen (default 0.0.0.0:9999, the Minicash peer server's port).
    pub listen: SocketAddr,
    /// Folder holding `tracker.redb`; created if missing.
    pub data_dir: PathBuf,
    /// The networks served: a key's proof of work is checked against its contract's
    /// `intro_pow_bits`; requests naming any other network get `Fail` "unknown network".
    pub contracts: Vec<NetworkContract>,
    /// Limits and timings.
    pub limits: Limits,
    /// Where the server reads the time: expiry, the timestamp check, the replay guard and
    /// the request rate limit all follow it (default: the system clock; tests pass a
    /// [`crate::ManualClock`]'s).
    pub clock: Clock,
}

impl TrackerConfig {
    /// A config with the default address and limits and no networks yet.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        TrackerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 9999)),
            data_dir: data_dir.into(),
            contracts: Vec::new(),
            limits: Limits::DEFAULT,
            clock: Clock::system(),
        }
    }

    /// Sets the listening address (port 0 picks a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Adds a network.
    pub fn contract(mut self, contract: NetworkContract) -> Self {
        self.contracts.push(contract);
        self
    }

    /// Replaces the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Replaces the clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}
