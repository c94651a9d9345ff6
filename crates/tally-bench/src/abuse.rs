//! `tally bench abuse`: what one host can make a quorum network spend. Four `tally node`
//! processes on 127.0.0.1 log at INFO; an honest wallet on 127.0.0.1 pays one payment at
//! a time while, scenario after scenario, one stranger on 127.0.0.2 abuses every validator
//! at once: never reading its answers, pipelining the most expensive requests, holding
//! every connection it is allowed, half-sent HTTP requests to the control API, floods of
//! malformed frames. Each scenario reports the validators' largest resident memory, how
//! fast their logs grew, and the honest payments' latency.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tally_core::{Amount, Order, SecretKey, SignedOrder, Transfer};
use tally_proto::{LedgerRequest, Packet, encode_frame};
use tally_wallet::QuorumClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::error::{BenchError, Context, fail};
use crate::percentile::Distribution;
use crate::process::{Daemons, free_ports, in_work_dir};
use crate::procfs::{self, Process};
use crate::quorum::network::{Running, account_keys, start_validator_with, write_network};
use crate::report::Report;

/// Where the stranger connects from.
const STRANGER: [u8; 4] = [127, 0, 0, 2];
/// Accounts in the genesis: a full ledger page is 1,000 of them (about 150 KB of answer).
const ACCOUNTS: usize = 1001;

/// What to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long each scenario's abuse lasts.
    pub seconds: u64,
    /// The scenarios to run, in order (all by default).
    pub scenarios: Vec<Abuse>,
    /// Keep the network's folder here (must not exist); a temporary one otherwise.
    pub dir: Option<PathBuf>,
    /// Keep the temporary folder.
    pub keep: bool,
}

impl Settings {
    pub const DEFAULT: Settings = Settings {
        seconds: 10,
        scenarios: Vec::new(),
        dir: None,
        keep: false,
    };
}

/// The kinds of abuse, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abuse {
    /// Nothing: the honest wallet alone.
    None,
    /// 8 connections per validator pipelining full ledger pages, never reading.
    NeverReads,
    /// 4 connections per validator pipelining full ledger pages and reading every answer.
    ExpensivePipelined,
    /// As many connections per validator as it will hold, each asking a cheap question a
    /// second.
    HoldsConnections,
    /// Half-sent HTTP requests to every control API, reopened as they close.
    HalfSentHttp,
    /// 4 connections per validator writing zero-length frames, reconnecting when closed.
    MalformedFlood,
}

impl Abuse {
    pub const ALL: [Abuse; 6] = [
        Abuse::None,
        Abuse::NeverReads,
        Abuse::ExpensivePipelined,
        Abuse::HoldsConnections,
        Abuse::HalfSentHttp,
        Abuse::MalformedFlood,
    ];

    /// The scenario's short name, as `--scenarios` takes it.
    pub fn key(self) -> &'static str {
        match self {
            Abuse::None => "baseline",
            Abuse::NeverReads => "never-reads",
            Abuse::ExpensivePipelined => "pipelined-pages",
            Abuse::HoldsConnections => "holds-connections",
            Abuse::HalfSentHttp => "half-sent-http",
            Abuse::MalformedFlood => "malformed-flood",
        }
    }

    /// The scenario called `key`.
    pub fn from_key(key: &str) -> Option<Abuse> {
        Abuse::ALL.into_iter().find(|abuse| abuse.key() == key)
    }

    fn name(self) -> &'static str {
        match self {
            Abuse::None => "no abuse (baseline)",
            Abuse::NeverReads => "never reads its answers",
            Abuse::ExpensivePipelined => "pipelines full ledger pages",
            Abuse::HoldsConnections => "holds every connection allowed",
            Abuse::HalfSentHttp => "half-sent control API requests",
            Abuse::MalformedFlood => "floods malformed frames",
        }
    }
}

/// What one scenario measured.
#[derive(Clone, Debug)]
pub struct ScenarioFigures {
    pub abuse: Abuse,
    /// The largest resident set any validator had, sampled every 100 ms.
    pub peak_resident_bytes: u64,
    /// Lines the four validators' logs grew by, per second of abuse.
    pub log_lines_per_sec: f64,
    /// Connections the stranger held at the end (for [`Abuse::HoldsConnections`]) or
    /// opened in all.
    pub stranger_connections: u64,
    /// CPU the four validators, and this process (the stranger and the honest wallet),
    /// used per second of abuse, in cores.
    pub validator_cores: f64,
    pub bench_cores: f64,
    /// Honest payments certified, and those refused or failed.
    pub paid: usize,
    pub failed: usize,
    pub latencies: Distribution,
}

/// Every scenario's figures.
#[derive(Clone, Debug)]
pub struct Figures {
    pub scenarios: Vec<ScenarioFigures>,
}

impl fmt::Display for ScenarioFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<32} peak RSS {:>4} MB  log {:>5.1} lines/s  stranger conns {:>6}  CPU validators {:.2} + bench {:.2} cores  honest: {} paid, {} failed, p50 {:.1} ms, p99 {:.1} ms",
            self.abuse.name(),
            self.peak_resident_bytes >> 20,
            self.log_lines_per_sec,
            self.stranger_connections,
            self.validator_cores,
            self.bench_cores,
            self.paid,
            self.failed,
            self.latencies.millis(50.0),
            self.latencies.millis(99.0),
        )
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "abuse from 127.0.0.2 against 4 `tally node` processes; one honest wallet on 127.0.0.1 pays one payment at a time"
        )?;
        for scenario in &self.scenarios {
            writeln!(f, "  {scenario}")?;
        }
        Ok(())
    }
}

/// Runs every scenario.
pub async fn run(
    settings: Settings,
    tally: &Path,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    if settings.seconds == 0 {
        fail!("--seconds must be at least 1");
    }
    let (_work, figures) = in_work_dir(
        "abuse",
        settings.dir.as_deref(),
        settings.keep,
        report,
        async |work, daemons| scenarios(&settings, work, tally, daemons, report).await,
    )
    .await?;
    report.section(&figures.to_string());
    Ok(figures)
}

async fn scenarios(
    settings: &Settings,
    work: &Path,
    tally: &Path,
    daemons: &Daemons,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    let validators: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    let accounts = account_keys(ACCOUNTS);
    let ports = free_ports(2 * validators.len())?;
    let contract = write_network(work, &validators, &accounts, &ports, "bench-abuse", None)?;
    let mut running = Vec::with_capacity(validators.len());
    let mut logs = Vec::with_capacity(validators.len());
    for i in 0..validators.len() {
        let folder = work.join(format!("validator-{i}"));
        running
            .push(start_validator_with(tally, &folder, daemons, &[("TALLY_LOG", "info")]).await?);
        logs.push(folder.join("node.log"));
    }
    let honest = Honest {
        client: QuorumClient::new(contract.clone(), Duration::from_secs(10))
            .context("the honest wallet")?,
        key: accounts[0].clone(),
        to: accounts[1].account(),
        network: contract.id(),
        quorum: tally_core::Committee::new(&contract.validators)
            .context("the bench's committee")?
            .quorum(),
        sequence: AtomicU64::new(0),
    };
    let mut scenarios = Vec::new();
    let chosen = if settings.scenarios.is_empty() {
        Abuse::ALL.to_vec()
    } else {
        settings.scenarios.clone()
    };
    for abuse in chosen {
        report.progress(&format!("{}: {} s…", abuse.name(), settings.seconds));
        let figures = scenario(
            abuse,
            Duration::from_secs(settings.seconds),
            &running,
            &logs,
            &honest,
        )
        .await?;
        report.progress(&figures.to_string());
        scenarios.push(figures);
    }
    Ok(Figures { scenarios })
}

/// The honest wallet: one account paying another, one payment at a time.
struct Honest {
    client: QuorumClient,
    key: SecretKey,
    to: tally_core::AccountId,
    network: tally_core::NetworkId,
    quorum: usize,
    sequence: AtomicU64,
}

impl Honest {
    /// Pays once; how long it took to be certified and applied by a quorum, or why not.
    async fn pay(&self) -> Result<Duration, String> {
        let sequence = self.sequence.load(Ordering::Relaxed);
        let started = Instant::now();
        let order = SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: self.key.account(),
                recipient: self.to,
                amount: Amount::from_microcash(1),
                sequence,
            }),
            &self.key,
            &self.network,
        );
        let certificate = self
            .client
            .certify(&order)
            .await
            .map_err(|e| e.to_string())?;
        // Certified: the slot is used whatever the submissions say.
        self.sequence.store(sequence + 1, Ordering::Relaxed);
        let acks = self.client.submit(&certificate).await;
        let ok = acks.iter().filter(|a| a.result.is_ok()).count();
        if ok < self.quorum {
            return Err(format!("only {ok} validators applied the certificate"));
        }
        Ok(started.elapsed())
    }
}

async fn scenario(
    abuse: Abuse,
    length: Duration,
    running: &[Running],
    logs: &[PathBuf],
    honest: &Honest,
) -> Result<ScenarioFigures, BenchError> {
    let lines_before = count_lines(logs);
    let cpu = || {
        let validators: Duration = running
            .iter()
            .filter_map(|v| procfs::cpu_time(Process::Id(v.pid)).ok())
            .sum();
        (
            validators,
            procfs::cpu_time(Process::This).unwrap_or_default(),
        )
    };
    let cpu_before = cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    // The stranger runs on its own thread and runtime, as another host would: the honest
    // wallet's tasks never wait behind its loops, only the machine's cores are shared.
    let attacker = {
        let (running, stop, opened) = (running.to_vec(), stop.clone(), opened.clone());
        std::thread::spawn(move || -> std::io::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                for validator in &running {
                    attack(abuse, validator, &stop, &opened, &mut tasks);
                }
                while tasks.join_next().await.is_some() {}
            });
            Ok(())
        })
    };
    let started = Instant::now();
    let mut peak = 0u64;
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut next_sample = Instant::now();
    while started.elapsed() < length {
        if Instant::now() >= next_sample {
            for validator in running {
                if let Ok(memory) = procfs::memory(Process::Id(validator.pid)) {
                    peak = peak.max(memory.resident_bytes());
                }
            }
            next_sample = Instant::now() + Duration::from_millis(100);
        }
        match tokio::time::timeout(Duration::from_secs(10), honest.pay()).await {
            Ok(Ok(latency)) => latencies.push(latency),
            Ok(Err(_)) | Err(_) => failed += 1,
        }
    }
    let elapsed = started.elapsed();
    let cpu_after = cpu();
    let held = opened.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    // Every attack task sees `stop` within its next write's timeout and lets go of its
    // sockets.
    tokio::task::spawn_blocking(move || attacker.join())
        .await
        .context("the stranger's thread")?
        .map_err(|_| BenchError::Check("the stranger's thread panicked".into()))?
        .context("the stranger's runtime")?;
    let lines = count_lines(logs).saturating_sub(lines_before);
    Ok(ScenarioFigures {
        abuse,
        peak_resident_bytes: peak,
        log_lines_per_sec: lines as f64 / elapsed.as_secs_f64(),
        stranger_connections: held,
        validator_cores: cpu_after.0.saturating_sub(cpu_before.0).as_secs_f64()
            / elapsed.as_secs_f64(),
        bench_cores: cpu_after.1.saturating_sub(cpu_before.1).as_secs_f64() / elapsed.as_secs_f64(),
        paid: latencies.len(),
        failed,
        latencies: Distribution::new(latencies),
    })
}

fn count_lines(logs: &[PathBuf]) -> u64 {
    logs.iter()
        .filter_map(|path| std::fs::read(path).ok())
        .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count() as u64)
        .sum()
}

/// A connection to `to` from the stranger's address.
async fn connect(to: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((STRANGER, 0))).ok()?;
    tokio::time::timeout(Duration::from_secs(2), socket.connect(to))
        .await
        .ok()?
        .ok()
}

fn frame(packet: &Packet) -> Vec<u8> {
    encode_frame(&serde_json::to_vec(packet).unwrap_or_default())
}

/// Starts `abuse` against one validator; every task ends when `stop` is set.
fn attack(
    abuse: Abuse,
    validator: &Running,
    stop: &Arc<AtomicBool>,
    opened: &Arc<AtomicU64>,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let page = frame(&Packet::ReqLedger(LedgerRequest::default()));
    let (address, rpc) = (validator.address, validator.rpc);
    let spawn = |tasks: &mut tokio::task::JoinSet<()>,
                 count: usize,
                 target: SocketAddr,
                 bytes: Vec<u8>,
                 read: bool| {
        for _ in 0..count {
            let (stop, opened, bytes) = (stop.clone(), opened.clone(), bytes.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Some(stream) = connect(target).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    let (mut reader, mut writer) = stream.into_split();
                    let drain = read.then(|| {
                        let stop = stop.clone();
                        tokio::spawn(async move {
                            let mut sink = vec![0u8; 64 * 1024];
                            while !stop.load(Ordering::Relaxed)
                                && matches!(reader.read(&mut sink).await, Ok(n) if n > 0)
                            {
                            }
                        })
                    });
                    while !stop.load(Ordering::Relaxed) {
                        let written = tokio::time::timeout(
                            Duration::from_millis(200),
                            writer.write_all(&bytes),
                        )
                        .await;
                        if matches!(written, Ok(Err(_))) {
                            break;
                        }
                    }
                    if let Some(drain) = drain {
                        drain.abort();
                    }
                }
            });
        }
    };
    match abuse {
        Abuse::None => {}
        Abuse::NeverReads => spawn(tasks, 8, address, page.repeat(1000), false),
        Abuse::ExpensivePipelined => spawn(tasks, 4, address, page.repeat(16), true),
        Abuse::MalformedFlood => spawn(tasks, 4, address, vec![0u8; 80_000], false),
        Abuse::HoldsConnections => {
            let (stop, opened) = (stop.clone(), opened.clone());
            tasks.spawn(async move {
                // One cheap real question a second: not idle, not abusive.
                let cheap = frame(&Packet::ReqLedger(LedgerRequest {
                    accounts: Some(Vec::new()),
                    ..LedgerRequest::default()
                }));
                let mut held = Vec::new();
                let mut refusals = 0;
                while !stop.load(Ordering::Relaxed) && refusals < 50 && held.len() < 5000 {
                    match connect(address).await {
                        Some(mut stream) => {
                            // A refused connection gets one ERROR and is closed.
                            let mut probe = [0u8; 1];
                            let refused = tokio::time::timeout(
                                Duration::from_millis(20),
                                stream.read(&mut probe),
                            )
                            .await
                            .is_ok();
                            if refused {
                                refusals += 1;
                            } else {
                                held.push(stream);
                                opened.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        None => refusals += 1,
                    }
                }
                while !stop.load(Ordering::Relaxed) {
                    for stream in &mut held {
                        let _ = stream.write_all(&cheap).await;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        Abuse::HalfSentHttp => {
            let (stop, opened) = (stop.clone(), opened.clone());
            tasks.spawn(async move {
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if held.len() < 2000 {
                        if let Some(mut stream) = connect(rpc).await {
                            let _ = stream
                                .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
                                .await;
                            held.push(stream);
                            opened.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        held.clear();
                    }
                }
            });
        }
    }
}
