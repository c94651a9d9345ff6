//! `tally tracker` (the peer-discovery server) and `tally bench tracker`.

use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rayon::prelude::*;
use tally_core::pow::IntroPowHasher;
use tally_core::{NetworkContract, NetworkId, SecretKey};
use tally_tracker::registry::{Entry, ip_bytes};
use tally_tracker::store::Store;
use tally_tracker::{
    ClientConfig, Limits, Request, Tracker, TrackerClient, TrackerConfig, now_ms, sign_registration,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};

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

/// `tally bench tracker`: signed registrations per second and memory per live entry.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Concurrent clients, one connection each.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Signed registrations to time (each key re-registers `--rounds` times).
    #[arg(long, default_value_t = 200_000)]
    pub registrations: usize,
    /// Registrations per key.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Requests each client keeps in flight (1: one at a time, waiting for each answer).
    #[arg(long, default_value_t = 16)]
    pub pipeline: usize,
    /// Live entries for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    pub entries: usize,
    /// Folder for the benchmark's databases (default: a fresh one under the temp dir,
    /// removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

fn bench_contract() -> NetworkContract {
    NetworkContract {
        name: "bench".into(),
        mode: tally_core::Mode::Quorum,
        unit: "cash".into(),
        faucet: tally_core::Amount::from_microcash(10_000_000),
        // The tracker checks one hash per key whatever the difficulty; a low one keeps
        // the bench's own key generation short.
        intro_pow_bits: 4,
        validators: vec![tally_core::ValidatorInfo {
            key: SecretKey::from_bytes([1; 32]).account(),
            address: "127.0.0.1:2222".into(),
        }],
        tracker: None,
        genesis: vec![],
        pow: None,
    }
}

struct TempDir(PathBuf, bool);

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs the tracker benchmark.
pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let root = match &args.dir {
        Some(dir) => TempDir(dir.clone(), false),
        None => TempDir(
            std::env::temp_dir().join(format!(
                "tally-bench-tracker-{}-{}",
                std::process::id(),
                now_ms()
            )),
            true,
        ),
    };
    std::fs::create_dir_all(&root.0)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("tally bench tracker: {cores} cores");
    if args.registrations > 0 {
        throughput(&args, &root.0.join("throughput")).await?;
    }
    if args.entries > 0 {
        memory(&args, &root.0.join("memory")).await?;
    }
    Ok(())
}

async fn throughput(args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    let clients = args.clients.max(1);
    let rounds = args.rounds.max(1);
    let pipeline = args.pipeline.max(1);
    let contract = bench_contract();
    let network = contract.id();
    let key_count = args.registrations.div_ceil(rounds);

    println!(
        "preparing {key_count} keys and {} signed registrations...",
        key_count * rounds
    );
    let prep = Instant::now();
    let keys: Vec<(SecretKey, u64)> = (0..key_count)
        .into_par_iter()
        .map(|_| {
            let secret = SecretKey::generate();
            let nonce = IntroPowHasher::new(&secret.account())
                .search(0..u64::MAX, contract.intro_pow_bits)
                .unwrap_or(0);
            (secret, nonce)
        })
        .collect();
    let base = now_ms();
    // Client c registers keys c, c + clients, ... once per round, rounds in order, so each
    // key's timestamps arrive increasing.
    let plans: Vec<Vec<Vec<u8>>> = (0..clients)
        .into_par_iter()
        .map(|c| {
            let mine: Vec<usize> = (c..key_count).step_by(clients).collect();
            let mut frames = Vec::with_capacity(mine.len() * rounds);
            for round in 0..rounds {
                for &k in &mine {
                    let port = 1024 + u16::try_from(k % 60_000).unwrap_or(0);
                    let reg = sign_registration(
                        network,
                        SocketAddr::from(([10, 0, (k >> 8) as u8, k as u8], port)),
                        base + round as u64,
                        std::slice::from_ref(&keys[k]),
                    );
                    let body = Request::Reg(reg).to_json();
                    let mut frame = Vec::with_capacity(4 + body.len());
                    frame.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes());
                    frame.extend_from_slice(&body);
                    frames.push(frame);
                }
            }
            frames
        })
        .collect();
    let total: usize = plans.iter().map(Vec::len).sum();
    verify_cost(&keys, network);
    let frame_bytes = plans.first().and_then(|p| p.first()).map_or(0, Vec::len);
    println!(
        "prepared in {:.1} s ({frame_bytes} bytes per request frame)",
        prep.elapsed().as_secs_f64()
    );

    let limits = Limits {
        max_connections_per_ip: clients + 16,
        requests_per_ip_per_sec: 0,
        max_entries: (key_count + 1024).max(D.max_entries),
        max_entries_per_ip: key_count + 1024,
        pipeline_depth: pipeline.max(D.pipeline_depth),
        ..Limits::DEFAULT
    };
    let config = TrackerConfig::new(dir)
        .listen("127.0.0.1:0".parse()?)
        .contract(contract)
        .limits(limits);
    let tracker = Tracker::bind(config).await?.spawn();
    let addr = tracker.local_addr();

    let cpu_before = process_cpu_secs();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for frames in plans {
        tasks.spawn(run_client(addr, frames, pipeline));
    }
    let mut ok = 0usize;
    let mut failed = 0usize;
    let mut latencies = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        let (o, f, lat) = done??;
        ok += o;
        failed += f;
        latencies.extend(lat);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = process_cpu_secs() - cpu_before;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d: &Duration| d.as_secs_f64() * 1000.0)
    };
    let stats = tracker.stats();
    println!(
        "throughput: {clients} clients, pipeline {pipeline}: {ok} registrations accepted, {failed} refused, in {elapsed:.2} s = {:.0} registrations/s",
        ok as f64 / elapsed
    );
    println!(
        "cpu: {cpu:.2} cpu-seconds used by tracker and clients together = {:.1} us per registration; {:.2} cores busy on average",
        cpu * 1e6 / ok.max(1) as f64,
        cpu / elapsed
    );
    if pipeline == 1 {
        println!(
            "latency per registration (answer after durable commit): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
    }
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".to_owned())
    );
    println!(
        "tracker after the run: {} live entries, registry tables {:.1} MB",
        stats.entries,
        stats.registry_bytes as f64 / 1e6
    );
    tracker.shutdown().await?;
    if failed > 0 {
        bail!("{failed} registrations were refused");
    }
    Ok(())
}

/// What signature checking alone costs on one thread, to put the end-to-end figure in
/// context.
fn verify_cost(keys: &[(SecretKey, u64)], network: NetworkId) {
    let addr = SocketAddr::from(([10, 0, 0, 1], 2222));
    let n = keys.len().min(4096);
    let regs: Vec<_> = keys[..n]
        .iter()
        .map(|k| sign_registration(network, addr, 1, std::slice::from_ref(k)))
        .collect();
    for batch in [1usize, 64] {
        let start = Instant::now();
        for chunk in regs.chunks(batch) {
            let mut v = tally_core::BatchVerifier::with_capacity(batch);
            for r in chunk {
                let signed = tally_tracker::wire::SignedBytes::new(
                    &network,
                    &r.keys[0].fingerprint,
                    r.keys[0].proof_of_work,
                    1,
                    &addr,
                );
                v.push(
                    &r.keys[0].fingerprint,
                    &r.keys[0].signature,
                    signed.as_bytes(),
                );
            }
            std::hint::black_box(v.verify());
        }
        println!(
            "signature check alone, batches of {batch}: {:.1} us per signature (one thread)",
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}

/// One bench client: with `pipeline` 1 it sends a frame and waits for its answer; with
/// more it keeps `pipeline` requests in flight as a sliding window, and whenever it has
/// read every answer already received it sends, in one write, as many new frames as it
/// got answers (so neither side makes a system call per request).
async fn run_client(
    addr: SocketAddr,
    frames: Vec<Vec<u8>>,
    pipeline: usize,
) -> anyhow::Result<(usize, usize, Vec<Duration>)> {
    const SUCCESS: &[u8] = b"\"Response\":\"Success\"";
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(64 * 1024, read);
    let (mut ok, mut failed) = (0, 0);
    let mut latencies = Vec::with_capacity(if pipeline == 1 { frames.len() } else { 0 });
    let mut body = Vec::new();
    let mut sent = 0usize;
    let mut answered = 0usize;
    let mut out = Vec::new();
    let mut sent_at = Instant::now();
    while answered < frames.len() {
        // Top the window up, in one write, once every buffered answer has been read.
        if sent < frames.len() && sent - answered < pipeline && !frame_buffered(read.buffer()) {
            let upto = (answered + pipeline).min(frames.len());
            out.clear();
            for frame in &frames[sent..upto] {
                out.extend_from_slice(frame);
            }
            sent = upto;
            sent_at = Instant::now();
            write.write_all(&out).await?;
        }
        let len = read.read_u32().await? as usize;
        body.resize(len, 0);
        read.read_exact(&mut body).await?;
        answered += 1;
        if pipeline == 1 {
            latencies.push(sent_at.elapsed());
        }
        if body.windows(SUCCESS.len()).take(64).any(|w| w == SUCCESS) {
            ok += 1;
        } else {
            failed += 1;
            if failed == 1 {
                eprintln!("refused: {}", String::from_utf8_lossy(&body));
            }
        }
    }
    Ok((ok, failed, latencies))
}

/// Whether `buf` starts with a whole length-prefixed frame.
fn frame_buffered(buf: &[u8]) -> bool {
    buf.get(..4)
        .and_then(|len| <[u8; 4]>::try_from(len).ok())
        .is_some_and(|len| buf.len() >= 4 + u32::from_be_bytes(len) as usize)
}

/// KiB (as /proc reports) to MB (10^6 bytes).
fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// CPU time (user + system) this process has used, from /proc/self/stat (Linux).
fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at ") ".
    let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here (0-based 11, 12).
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc (the memory figure needs Linux)")?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// Starts `tally tracker` as a child on `dir` and returns it once it listens.
fn spawn_tracker(
    dir: &Path,
    contract: &Path,
    max_entries: usize,
) -> anyhow::Result<(std::process::Child, SocketAddr)> {
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["tracker", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .arg("--contract")
        .arg(contract)
        .args(["--max-entries", &max_entries.to_string()])
        .env("TALLY_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("tracker listening on ")
        .with_context(|| format!("unexpected first line from the tracker: {line:?}"))?
        .parse()?;
    Ok((child, addr))
}

fn stop_child(mut child: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

async fn memory(args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    let contract = bench_contract();
    let network: NetworkId = contract.id();
    std::fs::create_dir_all(dir)?;
    let contract_file = dir.join("bench-contract.json");
    std::fs::write(&contract_file, contract.to_pretty_json())?;
    let max_entries = args.entries + 1024;

    // A tracker with nothing stored, for the baseline.
    let empty = dir.join("empty");
    let (child, _) = spawn_tracker(&empty, &contract_file, max_entries)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (base_rss, _) = rss_kib(child.id())?;
    stop_child(child);

    println!(
        "writing {} live entries to a tracker database...",
        args.entries
    );
    let full = dir.join("full");
    let write_start = Instant::now();
    {
        let mut store = Store::open(&full, 64 * 1024 * 1024)?;
        let now = now_ms();
        let mut done = 0usize;
        while done < args.entries {
            let n = (args.entries - done).min(100_000);
            let rows: Vec<(NetworkId, Entry)> = (done..done + n)
                .map(|i| {
                    let seed = tally_core::sha256(&[b"bench-entry", &(i as u64).to_be_bytes()]);
                    let account = tally_core::AccountId::from(*seed.as_bytes());
                    let ip = std::net::IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
                    (
                        network,
                        Entry {
                            account,
                            ip: ip_bytes(ip),
                            source: ip_bytes(ip),
                            proof_of_work: i as u64,
                            timestamp: now,
                            seen: now,
                            port: 2222,
                        },
                    )
                })
                .collect();
            store.commit(&rows, None)?;
            done += n;
        }
    }
    println!("written in {:.1} s", write_start.elapsed().as_secs_f64());

    let load_start = Instant::now();
    let (child, addr) = spawn_tracker(&full, &contract_file, max_entries)?;
    let load_secs = load_start.elapsed().as_secs_f64();
    // Show that the entries are live and served.
    let client = TrackerClient::new(addr.to_string(), ClientConfig::default());
    let peers = client.peers(network, Some(64)).await?;
    let (rss, hwm) = rss_kib(child.id())?;
    stop_child(child);
    let per_entry = (rss.saturating_sub(base_rss) as f64 * 1024.0) / args.entries as f64;
    println!(
        "memory: tracker process with {} live entries: RSS {:.1} MB (peak {:.1} MB); empty tracker {:.1} MB; {:.0} bytes per entry; loaded and listening in {load_secs:.1} s; LIST returned {} peers",
        args.entries,
        mb(rss),
        mb(hwm),
        mb(base_rss),
        per_entry,
        peers.len()
    );
    Ok(())
}
