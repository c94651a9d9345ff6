//! `tally tracker`: the peer-discovery server.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tally_core::NetworkContract;
use tally_tracker::{Limits, Tracker, TrackerConfig};

/// `tally tracker`: serves the networks of the given contracts.
#[derive(clap::Args)]
pub struct TrackerArgs {
    /// Address to listen on (the Minicash peer server's port by default).
    #[arg(long, default_value = "0.0.0.0:9999")]
    pub listen: SocketAddr,
    /// Folder for the tracker's database (tracker.redb).
    #[arg(long, default_value = "tracker-data")]
    pub data_dir: PathBuf,
    /// A network contract (JSON) to serve; repeat for several networks.
    #[arg(long = "contract", value_name = "FILE", required = true)]
    pub contracts: Vec<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

const D: Limits = Limits::DEFAULT;

/// Every limit of PROTOCOL.md's tracker section, defaults shown in `--help`.
#[derive(clap::Args)]
pub struct LimitArgs {
    /// Seconds an entry lives after its last registration.
    #[arg(long, default_value_t = D.ttl.as_secs())]
    pub ttl_secs: u64,
    /// Largest request frame, in bytes.
    #[arg(long, default_value_t = D.max_request_bytes)]
    pub max_request_bytes: usize,
    /// Seconds to wait for one complete request before closing the connection.
    #[arg(long, default_value_t = D.read_timeout.as_secs())]
    pub read_timeout_secs: u64,
    /// Seconds writing one answer may take.
    #[arg(long, default_value_t = D.write_timeout.as_secs())]
    pub write_timeout_secs: u64,
    /// Seconds to wait for room in the verification queue before answering "busy".
    #[arg(long, default_value_t = D.request_timeout.as_secs())]
    pub request_timeout_secs: u64,
    /// Open connections in all.
    #[arg(long, default_value_t = D.max_connections)]
    pub max_connections: usize,
    /// Open connections from one IP address.
    #[arg(long, default_value_t = D.max_connections_per_ip)]
    pub max_connections_per_ip: usize,
    /// Requests per second from one IP address (0: unlimited); bursts of twice that.
    #[arg(long, default_value_t = D.requests_per_ip_per_sec)]
    pub requests_per_ip_per_sec: u32,
    /// Failed requests on one connection before it is closed.
    #[arg(long, default_value_t = D.max_failures_per_connection)]
    pub max_failures_per_connection: u32,
    /// Requests a client may have unanswered on one connection.
    #[arg(long, default_value_t = D.pipeline_depth)]
    pub pipeline_depth: usize,
    /// Stored entries in all.
    #[arg(long, default_value_t = D.max_entries)]
    pub max_entries: usize,
    /// Stored entries registered from one IP address.
    #[arg(long, default_value_t = D.max_entries_per_ip)]
    pub max_entries_per_ip: usize,
    /// Stored entries (keys) listed at one reachable address.
    #[arg(long, default_value_t = D.max_entries_per_address)]
    pub max_entries_per_address: usize,
    /// Keys in one registration.
    #[arg(long, default_value_t = D.max_keys_per_request)]
    pub max_keys_per_request: usize,
    /// Seconds a registration's timestamp may differ from the tracker's clock.
    #[arg(long, default_value_t = D.max_clock_skew.as_secs())]
    pub max_clock_skew_secs: u64,
    /// Seconds between sweeps of expired entries.
    #[arg(long, default_value_t = D.sweep_interval.as_secs())]
    pub sweep_interval_secs: u64,
    /// Most peers in one SEND_LIST.
    #[arg(long, default_value_t = D.max_list_peers)]
    pub max_list_peers: usize,
    /// Most entries in a REGUP answer's Maps.
    #[arg(long, default_value_t = D.max_maps)]
    pub max_maps: usize,
    /// Most signatures verified, and registrations committed, as one batch.
    #[arg(long, default_value_t = D.max_batch)]
    pub max_batch: usize,
    /// Signature-verifying threads (0: one per core).
    #[arg(long, default_value_t = D.verify_threads)]
    pub verify_threads: usize,
    /// Database page cache, in MiB.
    #[arg(long, default_value_t = D.db_cache_bytes / (1024 * 1024))]
    pub db_cache_mib: usize,
}

impl LimitArgs {
    fn to_limits(&self) -> Limits {
        Limits {
            max_request_bytes: self.max_request_bytes,
            read_timeout: Duration::from_secs(self.read_timeout_secs),
            write_timeout: Duration::from_secs(self.write_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            requests_per_ip_per_sec: self.requests_per_ip_per_sec,
            max_failures_per_connection: self.max_failures_per_connection,
            pipeline_depth: self.pipeline_depth,
            max_entries: self.max_entries,
            max_entries_per_ip: self.max_entries_per_ip,
            max_entries_per_address: self.max_entries_per_address,
            max_keys_per_request: self.max_keys_per_request,
            ttl: Duration::from_secs(self.ttl_secs),
            max_clock_skew: Duration::from_secs(self.max_clock_skew_secs),
            sweep_interval: Duration::from_secs(self.sweep_interval_secs.max(1)),
            max_list_peers: self.max_list_peers,
            max_maps: self.max_maps,
            max_batch: self.max_batch,
            queue_capacity: D.queue_capacity,
            verify_threads: self.verify_threads,
            db_cache_bytes: self.db_cache_mib.saturating_mul(1024 * 1024),
        }
    }
}

fn load_contract(path: &Path) -> anyhow::Result<NetworkContract> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading contract {}", path.display()))?;
    NetworkContract::from_json(&text).with_context(|| format!("contract {}", path.display()))
}

/// Runs the tracker until Ctrl-C or SIGTERM.
pub async fn run(args: TrackerArgs) -> anyhow::Result<()> {
    let mut config = TrackerConfig::new(&args.data_dir)
        .listen(args.listen)
        .limits(args.limits.to_limits());
    for path in &args.contracts {
        let contract = load_contract(path)?;
        tracing::info!(network = %contract.id(), name = %contract.name, pow_bits = contract.intro_pow_bits, "serving network");
        config = config.contract(contract);
    }
    let tracker = Tracker::bind(config)
        .await
        .context("starting the tracker")?;
    let addr = tracker.local_addr();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "tracker listening on {addr}")?;
        out.flush()?;
    }
    tracker
        .serve_until(crate::shutdown_signal())
        .await
        .context("tracker")?;
    Ok(())
}
