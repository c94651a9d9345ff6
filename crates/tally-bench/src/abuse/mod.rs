//! `tally bench abuse`: what one host can make a Tally service spend. Each service runs as
//! real processes on 127.0.0.1 logging at INFO (4 validators; a miner and the tracker it
//! registers with; a relay); an honest client on 127.0.0.1 does one thing at a time (a
//! payment certified, a transaction taken into the mempool, a peer list, a chat line
//! across a private room, a block announced by a miner peer) while, scenario after
//! scenario, one stranger on 127.0.0.2 (127.0.0.3 for the blocks, so that a ban earned in
//! the miner's scenarios does not carry over) abuses the service: never reading its
//! answers, pipelining its most expensive request, holding every connection it is allowed,
//! half-sent HTTP requests to a control API, floods of malformed input. Each scenario reports the service's largest resident memory, how fast
//! its logs grew, its CPU, and the honest client's latency.

mod attack;
mod blocks;
mod miner;
mod quorum;
mod relay;
mod tracker;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Context, fail};
use crate::percentile::Distribution;
use crate::process::{Daemons, in_work_dir};
use crate::procfs::{self, Process};
use crate::report::Report;

use attack::Attack;

/// How long a service may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long each scenario's abuse lasts.
    pub seconds: u64,
    /// The services to abuse, in order (all by default).
    pub services: Vec<Service>,
    /// The scenarios to run against each, in order (all that apply by default).
    pub scenarios: Vec<Abuse>,
    /// Keep the networks' folder here (must not exist); a temporary one otherwise.
    pub dir: Option<PathBuf>,
    /// Keep the temporary folder.
    pub keep: bool,
}

impl Settings {
    pub const DEFAULT: Settings = Settings {
        seconds: 10,
        services: Vec::new(),
        scenarios: Vec::new(),
        dir: None,
        keep: false,
    };
}

/// The services a stranger can reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Four validators of a quorum network.
    Quorum,
    /// A proof-of-work node (not mining, so that hashing does not take the cores).
    Miner,
    /// The same node taking blocks from an honest miner peer.
    Blocks,
    /// The tracker miners register with.
    Tracker,
    /// The LiveConnect relay.
    Relay,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Quorum,
        Service::Miner,
        Service::Blocks,
        Service::Tracker,
        Service::Relay,
    ];

    /// The service's short name, as `--services` takes it.
    pub fn key(self) -> &'static str {
        match self {
            Service::Quorum => "quorum",
            Service::Miner => "miner",
            Service::Blocks => "blocks",
            Service::Tracker => "tracker",
            Service::Relay => "relay",
        }
    }

    /// The service called `key`.
    pub fn from_key(key: &str) -> Option<Service> {
        Service::ALL
            .into_iter()
            .find(|service| service.key() == key)
    }
}

/// The kinds of abuse, in the order they run. What each means for each service is in
/// that service's module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abuse {
    /// Nothing: the honest client alone.
    None,
    /// Connections pipelining the most expensive request and never reading.
    NeverReads,
    /// Connections pipelining the most expensive request and reading every answer.
    ExpensivePipelined,
    /// As many connections as the service will hold, each asking a cheap question a
    /// second.
    HoldsConnections,
    /// Half-sent HTTP requests to every control API, reopened as they close.
    HalfSentHttp,
    /// Connections writing malformed input, reconnecting when closed.
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
            Abuse::ExpensivePipelined => "pipelined-expensive",
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
            Abuse::ExpensivePipelined => "pipelines expensive requests",
            Abuse::HoldsConnections => "holds every connection allowed",
            Abuse::HalfSentHttp => "half-sent control API requests",
            Abuse::MalformedFlood => "floods malformed input",
        }
    }
}

/// A service under abuse, as the scenarios see it.
trait Target {
    /// Which service this is.
    fn service(&self) -> Service;
    /// What the honest client does once, and who it does it with (for the report).
    fn honest_does(&self) -> &'static str;
    /// The processes whose memory and CPU count.
    fn pids(&self) -> Vec<u32>;
    /// Their logs.
    fn logs(&self) -> Vec<PathBuf>;
    /// The honest client's one action: how long it took, or why it failed.
    async fn honest(&self) -> Result<Duration, String>;
    /// The pause between honest actions, to stay within what the service allows one
    /// honest host (none by default).
    fn pace(&self) -> Duration {
        Duration::ZERO
    }
    /// The stranger's address (a loopback address other than the honest client's 127.0.0.1).
    fn stranger(&self) -> [u8; 4] {
        attack::STRANGER
    }
    /// The stranger's attacks for `abuse` (none for [`Abuse::None`]), or `None` when the
    /// service has nothing it applies to (a service without a control API).
    fn attacks(&self, abuse: Abuse) -> Option<Vec<Attack>>;
}

/// What one scenario measured.
#[derive(Clone, Debug)]
pub struct ScenarioFigures {
    pub abuse: Abuse,
    /// The largest resident set any of the service's processes had, sampled every 100 ms.
    pub peak_resident_bytes: u64,
    /// Lines the service's logs grew by, per second of abuse.
    pub log_lines_per_sec: f64,
    /// Connections the stranger held at the end (for [`Abuse::HoldsConnections`]) or
    /// opened in all.
    pub stranger_connections: u64,
    /// CPU the service's processes, and this process (the stranger and the honest
    /// client), used per second of abuse, in cores.
    pub service_cores: f64,
    pub bench_cores: f64,
    /// Honest actions done, and those refused or failed.
    pub done: usize,
    pub failed: usize,
    pub latencies: Distribution,
}

/// One service's scenarios.
#[derive(Clone, Debug)]
pub struct ServiceFigures {
    pub service: Service,
    /// What the honest client did.
    pub honest_does: &'static str,
    /// Where the stranger came from.
    pub stranger: std::net::Ipv4Addr,
    pub scenarios: Vec<ScenarioFigures>,
}

/// Every service's figures.
#[derive(Clone, Debug)]
pub struct Figures {
    pub services: Vec<ServiceFigures>,
}

impl fmt::Display for ScenarioFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<32} peak RSS {:>4} MB  log {:>5.1} lines/s  stranger conns {:>6}  CPU service {:.2} + bench {:.2} cores  honest: {} done, {} failed, p50 {:.1} ms, p99 {:.1} ms",
            self.abuse.name(),
            self.peak_resident_bytes >> 20,
            self.log_lines_per_sec,
            self.stranger_connections,
            self.service_cores,
            self.bench_cores,
            self.done,
            self.failed,
            self.latencies.millis(50.0),
            self.latencies.millis(99.0),
        )
    }
}

impl fmt::Display for ServiceFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: abuse from {}; the honest client on 127.0.0.1 {}",
            self.service.key(),
            self.stranger,
            self.honest_does
        )?;
        for scenario in &self.scenarios {
            writeln!(f, "  {scenario}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for service in &self.services {
            write!(f, "{service}")?;
        }
        Ok(())
    }
}

/// Runs every scenario against every service chosen.
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
        async |work, daemons| services(&settings, work, tally, daemons, report).await,
    )
    .await?;
    report.section(&figures.to_string());
    Ok(figures)
}

async fn services(
    settings: &Settings,
    work: &Path,
    tally: &Path,
    daemons: &Daemons,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    let chosen = if settings.services.is_empty() {
        Service::ALL.to_vec()
    } else {
        settings.services.clone()
    };
    let mut figures = Vec::new();
    let mut pow = None;
    for service in chosen {
        report.progress(&format!("starting the {}…", service.key()));
        let service_figures = match service {
            Service::Quorum => {
                let target =
                    quorum::QuorumTarget::start(&work.join("quorum"), tally, daemons).await?;
                scenarios(&target, settings, report).await?
            }
            Service::Miner | Service::Blocks | Service::Tracker => {
                if pow.is_none() {
                    pow = Some(miner::PowNetwork::start(&work.join("pow"), tally, daemons).await?);
                }
                let Some(network) = &pow else {
                    fail!("the proof-of-work network did not start");
                };
                match service {
                    Service::Miner => {
                        scenarios(&miner::MinerTarget::new(network), settings, report).await?
                    }
                    Service::Blocks => {
                        scenarios(&blocks::BlocksTarget::new(network)?, settings, report).await?
                    }
                    _ => {
                        scenarios(&tracker::TrackerTarget::new(network)?, settings, report).await?
                    }
                }
            }
            Service::Relay => {
                let target = relay::RelayTarget::start(&work.join("relay"), tally, daemons).await?;
                scenarios(&target, settings, report).await?
            }
        };
        figures.push(service_figures);
    }
    Ok(Figures { services: figures })
}

async fn scenarios<T: Target>(
    target: &T,
    settings: &Settings,
    report: &dyn Report,
) -> Result<ServiceFigures, BenchError> {
    let chosen = if settings.scenarios.is_empty() {
        Abuse::ALL.to_vec()
    } else {
        settings.scenarios.clone()
    };
    let mut scenarios = Vec::new();
    for abuse in chosen {
        let Some(attacks) = target.attacks(abuse) else {
            continue;
        };
        report.progress(&format!(
            "{}: {}: {} s…",
            target.service().key(),
            abuse.name(),
            settings.seconds
        ));
        let figures = scenario(
            target,
            abuse,
            attacks,
            Duration::from_secs(settings.seconds),
        )
        .await?;
        report.progress(&figures.to_string());
        scenarios.push(figures);
    }
    Ok(ServiceFigures {
        service: target.service(),
        honest_does: target.honest_does(),
        stranger: target.stranger().into(),
        scenarios,
    })
}

async fn scenario<T: Target>(
    target: &T,
    abuse: Abuse,
    attacks: Vec<Attack>,
    length: Duration,
) -> Result<ScenarioFigures, BenchError> {
    let (pids, logs) = (target.pids(), target.logs());
    let lines_before = count_lines(&logs);
    let cpu = || {
        let service: Duration = pids
            .iter()
            .filter_map(|pid| procfs::cpu_time(Process::Id(*pid)).ok())
            .sum();
        (service, procfs::cpu_time(Process::This).unwrap_or_default())
    };
    let cpu_before = cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    // The stranger runs on its own thread and runtime, as another host would: the honest
    // client's tasks never wait behind its loops, only the machine's cores are shared.
    let attacker = {
        let (stop, opened) = (stop.clone(), opened.clone());
        let from = target.stranger();
        std::thread::spawn(move || -> std::io::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                for attack in attacks {
                    attack::spawn(attack, from, &stop, &opened, &mut tasks);
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
            for pid in &pids {
                if let Ok(memory) = procfs::memory(Process::Id(*pid)) {
                    peak = peak.max(memory.resident_bytes());
                }
            }
            next_sample = Instant::now() + Duration::from_millis(100);
        }
        let pace = target.pace();
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
        match tokio::time::timeout(Duration::from_secs(10), target.honest()).await {
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
    let lines = count_lines(&logs).saturating_sub(lines_before);
    Ok(ScenarioFigures {
        abuse,
        peak_resident_bytes: peak,
        log_lines_per_sec: lines as f64 / elapsed.as_secs_f64(),
        stranger_connections: held,
        service_cores: cpu_after.0.saturating_sub(cpu_before.0).as_secs_f64()
            / elapsed.as_secs_f64(),
        bench_cores: cpu_after.1.saturating_sub(cpu_before.1).as_secs_f64() / elapsed.as_secs_f64(),
        done: latencies.len(),
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
