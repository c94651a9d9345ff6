//! `tally relay`, `tally chat` and `tally bench relay`: the LiveConnect chat relay, a
//! by-hand client, and the relay's benchmark.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tally_relay::client::{self, ClientConfig};
use tally_relay::{ClientError, Incoming, Notice, Relay, RelayConfig, RoomKind};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tracing::info;

use crate::duration::parse_duration;

/// Options of `tally relay`. Every limit defaults to the value documented in
/// PROTOCOL.md §7 (RelayConfig::default()).
#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "0.0.0.0:7777")]
    pub listen: SocketAddr,
    /// Longest line accepted, in bytes [default: 65536].
    #[arg(long)]
    pub max_line_bytes: Option<usize>,
    /// Most bytes queued for one member before it is dropped as a slow reader [default: 1048576].
    #[arg(long)]
    pub max_queue_bytes: Option<usize>,
    /// Close members silent for this long (500ms, 60s, 2m) [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Close connections that have not joined after this long [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub join_timeout: Option<Duration>,
    /// Drop members whose queued lines make no progress for this long [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub write_timeout: Option<Duration>,
    /// Time spent flushing and draining a connection being closed [default: 1s].
    #[arg(long, value_parser = parse_duration)]
    pub close_linger: Option<Duration>,
    /// Member cap of topic rooms [default: 64].
    #[arg(long)]
    pub topic_cap: Option<usize>,
    /// Most open connections in all [default: 10000].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Most open connections from one IP address [default: 32].
    #[arg(long)]
    pub max_connections_per_ip: Option<usize>,
    /// Sustained lines per second per connection, 0 for no limit [default: 200].
    #[arg(long)]
    pub lines_per_sec: Option<u32>,
    /// Line burst per connection [default: 1000].
    #[arg(long)]
    pub line_burst: Option<u32>,
    /// Sustained bytes per second per connection, 0 for no limit [default: 1048576].
    #[arg(long)]
    pub bytes_per_sec: Option<u64>,
    /// Byte burst per connection [default: 4194304].
    #[arg(long)]
    pub byte_burst: Option<u64>,
    /// Refused lines a connection may send before it is closed [default: 10].
    #[arg(long)]
    pub max_bad_lines: Option<u32>,
    /// Listen backlog [default: 1024].
    #[arg(long)]
    pub backlog: Option<u32>,
    /// After each read keep polling for this long instead of sleeping (50us, 1ms; 0 is off):
    /// lower latency on virtual machines for up to one core while lines flow. Use with
    /// `--threads 1` [default: 0].
    #[arg(long, value_parser = parse_duration)]
    pub busy_poll: Option<Duration>,
    /// Worker threads of a runtime of the relay's own (1 = a single-threaded runtime, the
    /// least CPU per line at moderate load); 0 runs the relay on the command's runtime, one
    /// worker per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl RelayArgs {
    fn config(&self) -> RelayConfig {
        let d = RelayConfig::default();
        RelayConfig {
            listen: self.listen,
            max_line_bytes: self.max_line_bytes.unwrap_or(d.max_line_bytes),
            max_queue_bytes: self.max_queue_bytes.unwrap_or(d.max_queue_bytes),
            idle_timeout: self.idle_timeout.unwrap_or(d.idle_timeout),
            join_timeout: self.join_timeout.unwrap_or(d.join_timeout),
            write_timeout: self.write_timeout.unwrap_or(d.write_timeout),
            close_linger: self.close_linger.unwrap_or(d.close_linger),
            topic_cap: self.topic_cap.unwrap_or(d.topic_cap),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_ip: self
                .max_connections_per_ip
                .unwrap_or(d.max_connections_per_ip),
            lines_per_sec: self.lines_per_sec.unwrap_or(d.lines_per_sec),
            line_burst: self.line_burst.unwrap_or(d.line_burst),
            bytes_per_sec: self.bytes_per_sec.unwrap_or(d.bytes_per_sec),
            byte_burst: self.byte_burst.unwrap_or(d.byte_burst),
            max_bad_lines: self.max_bad_lines.unwrap_or(d.max_bad_lines),
            backlog: self.backlog.unwrap_or(d.backlog),
            busy_poll: self.busy_poll.unwrap_or(d.busy_poll),
        }
    }
}

/// `tally relay`: runs the relay until Ctrl-C or SIGTERM, then stops cleanly. Prints
/// `relay listening on ADDR` on stdout once bound, for scripts and tests.
pub async fn run(args: RelayArgs) -> anyhow::Result<()> {
    let config = args.config();
    if !config.busy_poll.is_zero() && args.threads != 1 {
        tracing::warn!(
            "--busy-poll works best with --threads 1: on a multi-threaded runtime another \
             worker may hold the sockets' poller while one spins"
        );
    }
    if args.threads == 0 {
        let relay = bind_and_announce(config).await?;
        relay.serve(crate::shutdown_signal()).await?;
        return Ok(());
    }
    // A runtime of the relay's own, on its own thread; this one only waits for the signal.
    let threads = args.threads;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    std::thread::Builder::new()
        .name("relay".into())
        .spawn(move || {
            let result = (|| {
                let runtime = if threads == 1 {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                } else {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(threads)
                        .enable_all()
                        .build()?
                };
                runtime.block_on(async move {
                    let relay = bind_and_announce(config).await?;
                    relay
                        .serve(async move {
                            let _ = stop_rx.await;
                        })
                        .await?;
                    anyhow::Ok(())
                })
            })();
            let _ = done_tx.send(result);
        })?;
    tokio::select! {
        () = crate::shutdown_signal() => {
            let _ = stop_tx.send(());
            done_rx.await?
        }
        done = &mut done_rx => done?,
    }
}

/// Binds the relay and prints `relay listening on ADDR` on stdout.
async fn bind_and_announce(config: RelayConfig) -> anyhow::Result<Relay> {
    let relay = Relay::bind(config.clone()).await?;
    let addr = relay.local_addr();
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "relay listening on {addr}")?;
        stdout.flush()?;
    }
    info!(%addr, ?config, "relay started");
    Ok(relay)
}

/// Options of `tally chat`.
#[derive(clap::Args, Debug)]
pub struct ChatArgs {
    /// The relay, as HOST:PORT.
    pub relay: String,
    /// The room to join.
    pub room: String,
    /// The room's join token (the first member sets it).
    pub token: String,
    /// Join a topic room (TOPIC) instead of a private two-member room (JOIN).
    #[arg(long)]
    pub topic: bool,
}

/// Reads stdin lines on a plain thread and hands them over; lines longer than `max` are
/// reported and skipped. A thread, not a tokio blocking task: a stdin read cannot be
/// cancelled, and the runtime would wait for it forever at exit.
fn spawn_stdin_lines(max: usize) -> mpsc::Receiver<String> {
    use std::io::{BufRead, Read};
    let (tx, rx) = mpsc::channel(64);
    let reader = move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        let mut buf = Vec::new();
        let limit = (max + 2) as u64;
        loop {
            buf.clear();
            match (&mut stdin).take(limit).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if buf.last() != Some(&b'\n') && buf.len() as u64 >= limit {
                eprintln!("chat: line longer than {max} bytes, not sent");
                // Skip the rest of the over-long line.
                loop {
                    buf.clear();
                    match (&mut stdin).take(64 * 1024).read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if buf.last() == Some(&b'\n') => break,
                        Ok(_) => {}
                    }
                }
                continue;
            }
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            let Ok(line) = String::from_utf8(buf.clone()) else {
                eprintln!("chat: line is not UTF-8, not sent");
                continue;
            };
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    };
    if let Err(error) = std::thread::Builder::new()
        .name("chat-stdin".into())
        .spawn(reader)
    {
        eprintln!("chat: cannot read stdin: {error}");
    }
    rx
}

/// `tally chat HOST:PORT ROOM TOKEN`: stdin lines go to the room, everything the relay
/// sends (member lines and `@` notices, the join's `@ok` and `@here` included) goes to
/// stdout, one line each. Sends an empty keepalive line when stdin is quiet. Ends when
/// stdin ends (leaving the room) or the relay closes the connection (an error then).
pub async fn chat(args: ChatArgs) -> anyhow::Result<()> {
    let kind = if args.topic {
        RoomKind::Topic
    } else {
        RoomKind::Private
    };
    let config = ClientConfig::default();
    let joined =
        match client::join(args.relay.as_str(), kind, &args.room, &args.token, &config).await {
            Ok(joined) => joined,
            Err(ClientError::Refused { code, text }) => bail!("the relay refused: {code} {text}"),
            Err(error) => {
                return Err(error).context(format!("joining {} at {}", args.room, args.relay));
            }
        };
    let welcome = joined.welcome;
    let mut out = tokio::io::stdout();
    let mut hello = Notice::Ok {
        kind: welcome.kind,
        room: welcome.room.clone(),
        id: welcome.id,
        ip: welcome.ip,
        members: welcome.members,
        cap: welcome.cap,
        idle_ms: u64::try_from(welcome.idle_timeout.as_millis()).unwrap_or(u64::MAX),
        max_line: welcome.max_line,
    }
    .to_line();
    for peer in &welcome.present {
        hello.extend_from_slice(
            &Notice::Here {
                id: peer.id,
                ip: peer.ip,
            }
            .to_line(),
        );
    }
    out.write_all(&hello).await?;
    out.flush().await?;

    let (mut reader, writer) = (joined.reader, joined.writer);
    let mut writer = Some(writer);
    let keepalive_every = (welcome.idle_timeout / 3).max(Duration::from_millis(50));
    let mut keepalive = tokio::time::interval(keepalive_every);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stdin = spawn_stdin_lines(welcome.max_line);
    let mut sent_since_tick = false;
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            line = stdin.recv(), if writer.is_some() => match line {
                Some(line) => {
                    if let Some(w) = writer.as_mut() {
                        match w.send(&line).await {
                            Ok(()) => sent_since_tick = true,
                            Err(ClientError::InvalidLine(why)) => eprintln!("chat: not sent: {why}"),
                            Err(error) => return Err(error.into()),
                        }
                    }
                }
                None => {
                    // Stdin ended: leave the room, then print what is still arriving.
                    if let Some(w) = writer.take() {
                        w.close().await?;
                    }
                }
            },
            _ = keepalive.tick(), if writer.is_some() => {
                if !sent_since_tick && let Some(w) = writer.as_mut() {
                    w.keepalive().await?;
                }
                sent_since_tick = false;
            }
            incoming = reader.recv_line() => match incoming {
                Ok(Some(line)) => {
                    if let Incoming::Error { code, text } = Incoming::from_line(line.clone()) {
                        last_error = Some(format!("{code} {text}"));
                    }
                    out.write_all(line.as_bytes()).await?;
                    out.write_all(b"\n").await?;
                    out.flush().await?;
                }
                Ok(None) => break,
                Err(ClientError::Timeout(_)) => {}
                Err(error) => {
                    if writer.is_none() {
                        break;
                    }
                    return Err(error.into());
                }
            },
        }
    }
    if writer.is_some() {
        match last_error {
            Some(error) => bail!("the relay closed the connection: {error}"),
            None => bail!("the relay closed the connection"),
        }
    }
    Ok(())
}

/// Options of `tally bench relay`. The relay runs as a child process (`tally relay` from
/// this same binary) so its memory can be measured on its own; the bench clients run in
/// this process, on the same machine.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Private rooms for the throughput and latency runs (one sender, one receiver each).
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// Seconds measured in the throughput run (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Warm-up seconds before each measurement.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Lines each sender may have in flight in the throughput run (keeps every receiver's
    /// queue far below the relay's limit: a relay never slows a sender down, it drops
    /// receivers that fall behind).
    #[arg(long, default_value_t = 4096)]
    pub window: u64,
    /// Aggregate lines per second in the latency run.
    #[arg(long, default_value_t = 20_000)]
    pub latency_rate: u64,
    /// Seconds measured in each latency run.
    #[arg(long, default_value_t = 5.0)]
    pub latency_seconds: f64,
    /// Latency runs, each with a fresh relay. The target is judged on the median p99 of the
    /// runs: on a shared VM the host's steal time decides a single run's tail (every run is
    /// printed with its steal; the median of the undisturbed ones is shown beside it).
    #[arg(long, default_value_t = 5)]
    pub latency_runs: usize,
    /// Idle joined connections in the memory run.
    #[arg(long, default_value_t = 10_000)]
    pub idle: usize,
    /// Passed to the relay child as `--threads` (0: the relay on its command's runtime, one
    /// worker per core; 1: a single-threaded runtime, which busy polling needs).
    #[arg(long, default_value_t = 0)]
    pub relay_threads: usize,
    /// Passed to the relay child as `--busy-poll` (0 is off): the relay keeps polling its
    /// sockets this long after each read instead of sleeping.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    pub relay_busy_poll: Duration,
    /// Runs to do: any of throughput, latency, memory (default: all three).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// A relay child process for one bench run.
struct ChildRelay {
    child: tokio::process::Child,
    addr: SocketAddr,
    pid: u32,
}

impl ChildRelay {
    async fn start(args: &BenchArgs) -> anyhow::Result<ChildRelay> {
        let exe = std::env::current_exe().context("finding the tally binary")?;
        let mut command = tokio::process::Command::new(exe);
        command
            .args([
                "relay",
                "--listen",
                "127.0.0.1:0",
                "--lines-per-sec",
                "0",
                "--bytes-per-sec",
                "0",
                "--max-connections",
                "30000",
                "--max-connections-per-ip",
                "30000",
                "--idle-timeout",
                "10m",
                "--backlog",
                "4096",
            ])
            .args(["--threads", &args.relay_threads.to_string()])
            .args([
                "--busy-poll",
                &format!("{}us", args.relay_busy_poll.as_micros()),
            ])
            .env("TALLY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .context("starting the relay child process")?;
        let pid = child.id().context("relay child has no pid")?;
        let stdout = child.stdout.take().context("relay child has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("relay child did not start within 10 s")??
            .context("relay child exited before listening")?;
        let addr = line
            .strip_prefix("relay listening on ")
            .context("unexpected first line from the relay child")?
            .parse()?;
        Ok(ChildRelay { child, addr, pid })
    }

    /// Resident memory of the relay process, in bytes (Linux /proc).
    fn rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .context("reading the relay's /proc status (Linux only)")?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmRSS in /proc status")?;
        Ok(kb * 1024)
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Connects and joins `room`, returning the stream once the relay's welcome lines
/// (`@ok` and one `@here` per member present) have been read.
async fn bench_join(addr: SocketAddr, room: &str) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    stream
        .write_all(format!("JOIN {room} bench\n").as_bytes())
        .await?;
    // Read byte-wise up to the end of the welcome so no later line is consumed here.
    let mut line = Vec::new();
    let mut expected_lines = 1usize;
    let mut seen = 0usize;
    while seen < expected_lines {
        let byte = tokio::time::timeout(Duration::from_secs(30), stream.read_u8())
            .await
            .context("no welcome from the relay")??;
        if byte != b'\n' {
            line.push(byte);
            if line.len() > 1024 {
                bail!("over-long welcome line");
            }
            continue;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        line.clear();
        seen += 1;
        match Notice::parse(&text) {
            Some(Notice::Ok { members, .. }) if seen == 1 => expected_lines = members,
            Some(Notice::Here { .. }) if seen > 1 => {}
            _ => bail!("join refused: {text}"),
        }
    }
    Ok(stream)
}

/// Reads `@arrived` (the only line expected before the bench starts sending).
async fn bench_read_line(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut line = Vec::new();
    loop {
        let byte = tokio::time::timeout(Duration::from_secs(30), stream.read_u8())
            .await
            .context("no line from the relay")??;
        if byte == b'\n' {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(byte);
        if line.len() > 1024 {
            bail!("over-long line");
        }
    }
}

/// Opens `rooms` private rooms: (sender, receiver) pairs.
async fn bench_pairs(
    addr: SocketAddr,
    rooms: usize,
    tag: &str,
) -> anyhow::Result<Vec<(TcpStream, TcpStream)>> {
    let mut pairs = Vec::with_capacity(rooms);
    for room in 0..rooms {
        let name = format!("{tag}-{room}");
        let mut sender = bench_join(addr, &name).await?;
        let receiver = bench_join(addr, &name).await?;
        let arrived = bench_read_line(&mut sender).await?;
        if !arrived.starts_with("@arrived ") {
            bail!("expected @arrived, got {arrived}");
        }
        pairs.push((sender, receiver));
    }
    Ok(pairs)
}

fn secs(value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|e| anyhow::anyhow!("bad duration {value}: {e}"))
}

/// CPU time counters, in clock ticks (1/100 s on Linux), from /proc.
#[derive(Clone, Copy)]
struct CpuSnapshot {
    at: Instant,
    busy_all: u64,
    /// Time the hypervisor ran something else while a virtual CPU wanted to run.
    steal: u64,
    this: u64,
    relay: u64,
}

fn proc_ticks(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may contain spaces): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn cpu_snapshot(relay_pid: u32) -> Option<CpuSnapshot> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy_all = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?;
    Some(CpuSnapshot {
        at: Instant::now(),
        busy_all,
        steal: *v.get(7)?,
        this: proc_ticks("/proc/self/stat")?,
        relay: proc_ticks(&format!("/proc/{relay_pid}/stat"))?,
    })
}

/// Where the CPU went between two snapshots, in percent of one core.
#[derive(Clone, Copy, Debug)]
struct CpuUse {
    relay: f64,
    bench: f64,
    others: f64,
    /// Time the hypervisor gave the virtual CPUs' host threads to someone else while they
    /// had work: nothing on this machine runs then, the relay and the bench included.
    stolen: f64,
}

impl CpuUse {
    /// Steal above this disturbs a latency run enough that its tail is the host's, not the
    /// relay's (1 % of a core is 10 ms a second, the size of a whole p99 budget).
    const DISTURBED_STEAL: f64 = 1.0;

    fn between(a: &CpuSnapshot, b: &CpuSnapshot) -> CpuUse {
        let secs = (b.at - a.at).as_secs_f64().max(1e-9);
        let pct = |ticks: u64| ticks as f64 / secs; // 100 ticks a second = 100 %
        let relay = b.relay.saturating_sub(a.relay);
        let this = b.this.saturating_sub(a.this);
        let others = b
            .busy_all
            .saturating_sub(a.busy_all)
            .saturating_sub(relay + this);
        CpuUse {
            relay: pct(relay),
            bench: pct(this),
            others: pct(others),
            stolen: pct(b.steal.saturating_sub(a.steal)),
        }
    }

    fn disturbed(&self) -> bool {
        self.stolen >= Self::DISTURBED_STEAL
    }
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CPU in % of one core: relay {:.0}, bench client {:.0}, other processes {:.0}, \
             stolen by the hypervisor {:.1}",
            self.relay, self.bench, self.others, self.stolen
        )
    }
}

fn cpu_use(a: Option<CpuSnapshot>, b: Option<CpuSnapshot>) -> Option<CpuUse> {
    Some(CpuUse::between(&a?, &b?))
}

/// How a run's CPU use reads in the report.
fn cpu_text(cpu: Option<CpuUse>) -> String {
    cpu.map_or_else(
        || "CPU use unknown (no /proc)".to_owned(),
        |c| c.to_string(),
    )
}

struct RoomFlow {
    received: AtomicU64,
    progress: Notify,
}

/// Lines per second forwarded across `rooms` private rooms, each with one sender writing
/// as fast as its window allows and one receiver counting lines.
async fn bench_throughput(args: &BenchArgs) -> anyhow::Result<(f64, f64, String)> {
    let relay = ChildRelay::start(args).await?;
    let pairs = bench_pairs(relay.addr, args.rooms, "tp").await?;
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let total_bytes = Arc::new(AtomicU64::new(0));
    const BATCH: u64 = 128;
    let line = b"<# Heartbeat 0123456789>\n";
    let block: Arc<Vec<u8>> = Arc::new(line.repeat(BATCH as usize));
    let window = args.window.max(2 * BATCH);
    let mut tasks = tokio::task::JoinSet::new();
    for (mut sender, mut receiver) in pairs {
        let flow = Arc::new(RoomFlow {
            received: AtomicU64::new(0),
            progress: Notify::new(),
        });
        {
            let (flow, stop, block) = (flow.clone(), stop.clone(), block.clone());
            tasks.spawn(async move {
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    while sent + BATCH > flow.received.load(Ordering::Acquire) + window {
                        let notified = flow.progress.notified();
                        if sent + BATCH <= flow.received.load(Ordering::Acquire) + window {
                            break;
                        }
                        if tokio::time::timeout(Duration::from_millis(100), notified)
                            .await
                            .is_err()
                            && stop.load(Ordering::Relaxed)
                        {
                            return;
                        }
                    }
                    if sender.write_all(&block).await.is_err() {
                        return;
                    }
                    sent += BATCH;
                }
            });
        }
        let (total, total_bytes) = (total.clone(), total_bytes.clone());
        tasks.spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match receiver.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let lines = buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                flow.received.fetch_add(lines, Ordering::Release);
                flow.progress.notify_one();
                total.fetch_add(lines, Ordering::Relaxed);
                total_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(secs(args.warmup)?).await;
    let cpu0 = cpu_snapshot(relay.pid);
    let (c0, b0, t0) = (
        total.load(Ordering::Relaxed),
        total_bytes.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(secs(args.seconds)?).await;
    let (c1, b1, t1) = (
        total.load(Ordering::Relaxed),
        total_bytes.load(Ordering::Relaxed),
        Instant::now(),
    );
    let cpu = cpu_text(cpu_use(cpu0, cpu_snapshot(relay.pid)));
    stop.store(true, Ordering::Relaxed);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    relay.stop().await;
    let dt = (t1 - t0).as_secs_f64();
    Ok(((c1 - c0) as f64 / dt, (b1 - b0) as f64 / dt, cpu))
}

struct Latency {
    samples: Vec<u64>,
    achieved_rate: f64,
    cpu: Option<CpuUse>,
}

/// Forwarding latency (send to receive, both in this process) at a fixed aggregate rate.
async fn bench_latency(args: &BenchArgs) -> anyhow::Result<Latency> {
    let relay = ChildRelay::start(args).await?;
    let pairs = bench_pairs(relay.addr, args.rooms, "lat").await?;
    let mut senders = Vec::with_capacity(pairs.len());
    let mut receivers = Vec::with_capacity(pairs.len());
    for (sender, receiver) in pairs {
        senders.push(sender.into_std()?);
        receivers.push(receiver.into_std()?);
    }
    let latency = paced_latency(args, senders, receivers, Some(relay.pid)).await;
    relay.stop().await;
    latency
}

/// The same paced clients over direct loopback connections, with no relay between sender
/// and receiver: what the measuring clients and the machine's scheduling cost by
/// themselves. The relay's figure can be no better than this floor.
async fn bench_client_floor(args: &BenchArgs) -> anyhow::Result<Latency> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut senders = Vec::with_capacity(args.rooms);
    let mut receivers = Vec::with_capacity(args.rooms);
    for _ in 0..args.rooms {
        let sender = TcpStream::connect(addr).await?;
        sender.set_nodelay(true)?;
        let (receiver, _) = listener.accept().await?;
        receiver.set_nodelay(true)?;
        senders.push(sender.into_std()?);
        receivers.push(receiver.into_std()?);
    }
    paced_latency(args, senders, receivers, None).await
}

/// Sends paced `<# t=NANOS>` lines round robin over `senders` and measures, on
/// `receivers[i]`, when each line sent on `senders[i]` arrives.
async fn paced_latency(
    args: &BenchArgs,
    senders: Vec<std::net::TcpStream>,
    receivers: Vec<std::net::TcpStream>,
    relay_pid: Option<u32>,
) -> anyhow::Result<Latency> {
    let rooms = senders.len();
    if args.latency_rate == 0 || rooms == 0 {
        bail!("the latency run needs a rate and rooms");
    }
    let base = Instant::now();
    let warmup = secs(args.warmup)?;
    let measure = secs(args.latency_seconds)?;
    let plan = Pacing {
        base,
        rate: args.latency_rate as f64,
        window: (warmup, warmup + measure),
    };
    let measurer = std::thread::Builder::new()
        .name("bench-measure".to_owned())
        .spawn(move || plan.run(senders, receivers))?;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep(warmup.saturating_sub(base.elapsed())).await;
        let a = relay_pid.and_then(cpu_snapshot);
        tokio::time::sleep((warmup + measure).saturating_sub(base.elapsed())).await;
        cpu_use(a, relay_pid.and_then(cpu_snapshot))
    });
    let (sent, mut samples) = tokio::task::spawn_blocking(move || measurer.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the measuring thread panicked"))??;
    samples.sort_unstable();
    let lost = sent.saturating_sub(samples.len() as u64);
    if lost > 0 {
        bail!("{lost} of {sent} measured lines never arrived");
    }
    Ok(Latency {
        achieved_rate: sent as f64 / measure.as_secs_f64(),
        cpu: cpu.await?,
        samples,
    })
}

/// The latency run's schedule: line `k` is due `k / rate` seconds after `base`, and lines
/// sent inside `window` are the ones measured.
struct Pacing {
    base: Instant,
    rate: f64,
    window: (Duration, Duration),
}

impl Pacing {
    /// How long after the window the senders keep the load on while the last measured
    /// lines are in flight.
    const TAIL: Duration = Duration::from_millis(100);
    /// How long after the window a measured line may still arrive.
    const GRACE: Duration = Duration::from_secs(2);

    /// Paces the senders and reads the receivers on this one thread, which never sleeps:
    /// between sends it asks epoll (through mio) for readable receivers with a zero
    /// timeout. A measurer that sleeps adds its own wake-up delay to every sample, and on
    /// a small VM that delay alone reaches milliseconds at the tail; a spinning one reads a
    /// line as soon as the kernel has it, so what is left is the path being measured. The
    /// price is one core for the length of the run. Returns the lines sent inside the
    /// window and their latencies in nanoseconds.
    fn run(
        self,
        mut senders: Vec<std::net::TcpStream>,
        receivers: Vec<std::net::TcpStream>,
    ) -> anyhow::Result<(u64, Vec<u64>)> {
        use std::io::{Read, Write};
        let (start, end) = self.window;
        let poll_error = |error: std::io::Error| anyhow::anyhow!("polling the receivers: {error}");
        let mut poll = mio::Poll::new().map_err(poll_error)?;
        let mut events = mio::Events::with_capacity(receivers.len());
        let mut streams = Vec::with_capacity(receivers.len());
        for (i, receiver) in receivers.into_iter().enumerate() {
            receiver.set_nonblocking(true)?;
            let mut stream = mio::net::TcpStream::from_std(receiver);
            poll.registry()
                .register(&mut stream, mio::Token(i), mio::Interest::READABLE)
                .map_err(poll_error)?;
            streams.push((stream, Vec::<u8>::with_capacity(256)));
        }
        for sender in &senders {
            sender.set_nonblocking(false)?;
            // A relay that stops reading fails the run instead of hanging it.
            sender.set_write_timeout(Some(Self::GRACE))?;
        }
        let rooms = senders.len() as u64;
        let mut line = Vec::with_capacity(64);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut samples = Vec::with_capacity((self.rate * (end - start).as_secs_f64()) as usize);
        let (mut k, mut sent) = (0u64, 0u64);
        loop {
            let now = self.base.elapsed();
            let sending = now < end + Self::TAIL;
            while sending && Duration::from_secs_f64(k as f64 / self.rate) <= now {
                // The time just before the write goes into the line.
                let at = self.base.elapsed();
                line.clear();
                writeln!(line, "<# t={}>", at.as_nanos())?;
                senders[(k % rooms) as usize]
                    .write_all(&line)
                    .context("sending a measured line")?;
                if at >= start && at < end {
                    sent += 1;
                }
                k += 1;
            }
            if !sending && (samples.len() as u64 >= sent || now > end + Self::GRACE) {
                return Ok((sent, samples));
            }
            poll.poll(&mut events, Some(Duration::ZERO))
                .map_err(poll_error)?;
            for event in &events {
                let (stream, pending) = &mut streams[event.token().0];
                // mio is edge-triggered: read until the socket is empty.
                loop {
                    match stream.read(&mut chunk) {
                        Ok(0) => bail!("the relay closed a receiver"),
                        Ok(n) => {
                            let arrived = self.base.elapsed();
                            pending.extend_from_slice(&chunk[..n]);
                            let whole = pending
                                .iter()
                                .rposition(|&b| b == b'\n')
                                .map_or(0, |i| i + 1);
                            for text in pending[..whole].split(|&b| b == b'\n') {
                                if let Some(at) = sent_at(text)
                                    && at >= start
                                    && at < end
                                {
                                    samples.push(arrived.saturating_sub(at).as_nanos() as u64);
                                }
                            }
                            pending.drain(..whole);
                        }
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(error) => return Err(error).context("reading a measured line"),
                    }
                }
            }
        }
    }
}

/// The send time carried by a measured line (`<IP t=NANOS>`), since the run's base.
fn sent_at(line: &[u8]) -> Option<Duration> {
    let at = line.windows(2).position(|w| w == b"t=")? + 2;
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let nanos: u64 = std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_nanos(nanos))
}

/// The first three fields of /proc/loadavg (Linux), for the record of a run.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Sorts p99 figures (ms) and lists them, or says there are none.
fn p99_list(p99s: &mut [f64]) -> String {
    if p99s.is_empty() {
        return "none".to_owned();
    }
    p99s.sort_by(f64::total_cmp);
    let shown: Vec<String> = p99s.iter().map(|p| format!("{p:.3}")).collect();
    format!("{} ms", shown.join(", "))
}

/// Sample count and percentiles of sorted nanosecond latencies, in milliseconds.
fn distribution(sorted: &[u64]) -> String {
    format!(
        "{} samples: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        sorted.len(),
        percentile(sorted, 50.0),
        percentile(sorted, 90.0),
        percentile(sorted, 99.0),
        percentile(sorted, 99.9),
        percentile(sorted, 100.0),
    )
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1e6
}

/// The soft limit on open files of this process, from /proc (Linux).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Relay memory for `idle` joined, idle connections (pairs in private rooms).
async fn bench_memory(args: &BenchArgs) -> anyhow::Result<(u64, u64)> {
    let need = args.idle as u64 + 256;
    if let Some(limit) = open_files_limit()
        && limit < need
    {
        bail!(
            "the open-files limit is {limit}, the memory run needs {need} in this process and in the \
             relay: raise it (ulimit -n {need}) or lower --idle"
        );
    }
    let relay = ChildRelay::start(args).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = relay.rss()?;
    let addr = relay.addr;
    let mut streams = Vec::with_capacity(args.idle);
    let pairs = args.idle.div_ceil(2);
    let mut next_room = 0;
    while next_room < pairs {
        let batch = (pairs - next_room).min(64);
        let mut joins = tokio::task::JoinSet::new();
        for room in next_room..next_room + batch {
            joins.spawn(async move {
                let name = format!("idle-{room}");
                let a = bench_join(addr, &name).await?;
                let b = bench_join(addr, &name).await?;
                anyhow::Ok((a, b))
            });
        }
        while let Some(joined) = joins.join_next().await {
            let (a, b) = joined??;
            streams.push(a);
            streams.push(b);
        }
        next_room += batch;
    }
    streams.truncate(args.idle);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = relay.rss()?;
    drop(streams);
    relay.stop().await;
    Ok((before, after))
}

/// `tally bench relay`: lines per second across private rooms, forwarding latency at a
/// fixed rate, and memory per idle connection. Prints the figures and the targets.
pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let wants = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    for name in &args.only {
        if !["throughput", "latency", "memory"].contains(&name.as_str()) {
            bail!("unknown run {name:?}: use throughput, latency or memory");
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "tally bench relay: relay = child process `tally relay --threads {} --busy-poll {}us` ({}), \
         bench clients in this process, loopback, {cores} cores shared",
        args.relay_threads,
        args.relay_busy_poll.as_micros(),
        match args.relay_threads {
            0 => format!("tokio multi-thread, {cores} workers"),
            1 => "tokio single-thread".to_owned(),
            n => format!("tokio multi-thread, {n} workers"),
        }
    );
    if wants("throughput") {
        let (lines, bytes, cpu) = bench_throughput(&args).await?;
        println!(
            "throughput: {} private rooms, 1 sender + 1 receiver each, {:.1} s: {:.0} lines/s \
             ({:.1} MB/s delivered) [target >= 500000 lines/s: {}]",
            args.rooms,
            args.seconds,
            lines,
            bytes / 1e6,
            if lines >= 500_000.0 { "met" } else { "MISSED" }
        );
        println!("  {cpu}");
    }
    if wants("latency") {
        if args.latency_runs == 0 {
            bail!("--latency-runs must be at least 1");
        }
        let (mut all, mut calm) = (Vec::new(), Vec::new());
        for run in 1..=args.latency_runs {
            let latency = bench_latency(&args).await?;
            let p99 = percentile(&latency.samples, 99.0);
            let host_busy = latency.cpu.is_some_and(|c| c.disturbed());
            println!(
                "latency run {run}/{}: {} private rooms, {} lines/s target ({:.0} achieved), {} \
                 [p99 < 2 ms: {}]{}",
                args.latency_runs,
                args.rooms,
                args.latency_rate,
                latency.achieved_rate,
                distribution(&latency.samples),
                if p99 < 2.0 { "met" } else { "MISSED" },
                if host_busy {
                    " (disturbed: the hypervisor took the CPU)"
                } else {
                    ""
                }
            );
            println!("  {}", cpu_text(latency.cpu));
            all.push(p99);
            if !host_busy {
                calm.push(p99);
            }
        }
        println!(
            "latency: p99 by run {}; of the runs the hypervisor left alone (steal < {} % of a \
             core): {}",
            p99_list(&mut all),
            CpuUse::DISTURBED_STEAL,
            p99_list(&mut calm),
        );
        let median = all[all.len() / 2];
        println!(
            "  median p99 of all {} runs: {median:.3} ms [target p99 < 2 ms: {}]{}",
            all.len(),
            if median < 2.0 { "met" } else { "MISSED" },
            match calm.get(calm.len() / 2) {
                Some(calm_median) => format!("; of the undisturbed runs: {calm_median:.3} ms"),
                None => "; every run was disturbed, run again when the host is quieter".to_owned(),
            }
        );
        let floor = bench_client_floor(&args).await?;
        println!(
            "  the same measuring thread over direct loopback connections, no relay: {} \
             (its own delay and the machine's)",
            distribution(&floor.samples)
        );
        println!("  load average at the end: {}", load_average());
    }
    if wants("memory") {
        let (before, after) = bench_memory(&args).await?;
        let delta = after.saturating_sub(before);
        println!(
            "memory: {} idle joined connections ({} private rooms): relay RSS {:.1} MB before, \
             {:.1} MB with them (+{:.1} MB, {:.0} bytes per connection) [target < 150 MB: {}]",
            args.idle,
            args.idle.div_ceil(2),
            before as f64 / 1e6,
            after as f64 / 1e6,
            delta as f64 / 1e6,
            delta as f64 / args.idle.max(1) as f64,
            if after < 150_000_000 { "met" } else { "MISSED" }
        );
    }
    Ok(())
}
