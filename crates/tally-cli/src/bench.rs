//! `tally bench quorum|tracker|relay|mine|sync`: the arguments, a call into `tally-bench`,
//! and the rendering: figures on stdout, progress on stderr (a spinner on a terminal).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use tally_bench::{Report, abuse, coins, live, mine, quorum, relay, sync, tracker, web, wire};

use crate::duration::parse_duration;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// The quorum validator: transfers per second, end-to-end latency, memory.
    Quorum(QuorumArgs),
    /// The tracker: signed registrations per second, memory per entry.
    Tracker(TrackerArgs),
    /// The relay: lines per second, forwarding latency, memory per idle connection.
    Relay(RelayArgs),
    /// The proof-of-work miner: hashes per second per thread beside raw SHA-256d.
    Mine(MineArgs),
    /// Proof-of-work sync: validate and store blocks of transfers, transfers per second.
    Sync(SyncArgs),
    /// Bearer coins: coins powned per second against four validators, and listing a
    /// wallet of many coins.
    Coins(CoinsArgs),
    /// The web wallet: its wallet page for a wallet of many receipts and coins, and the
    /// explorer's page views beside a paying network.
    Web(WebArgs),
    /// LiveConnect transfers between two wallets through a relay: latency from `live
    /// send` to the checked receipt.
    Live(LiveArgs),
    /// Cross-server wires through a market maker between two networks: each step's
    /// latency from the chosen quote to the claim on B.
    Wire(WireArgs),
    /// What one host can make each service spend (validators, a miner, the tracker, the
    /// relay): memory, log lines and an honest client's latency while a stranger abuses
    /// it, scenario by scenario.
    Abuse(AbuseArgs),
}

const ABUSE: abuse::Settings = abuse::Settings::DEFAULT;

fn parse_service(key: &str) -> Result<abuse::Service, String> {
    abuse::Service::from_key(key).ok_or_else(|| {
        let known: Vec<&str> = abuse::Service::ALL.iter().map(|s| s.key()).collect();
        format!("no service {key:?}; known: {}", known.join(", "))
    })
}

fn parse_abuse(key: &str) -> Result<abuse::Abuse, String> {
    abuse::Abuse::from_key(key).ok_or_else(|| {
        let known: Vec<&str> = abuse::Abuse::ALL.iter().map(|a| a.key()).collect();
        format!("no scenario {key:?}; known: {}", known.join(", "))
    })
}

/// `tally bench abuse`
#[derive(clap::Args)]
pub struct AbuseArgs {
    /// Seconds each scenario's abuse lasts.
    #[arg(long, default_value_t = ABUSE.seconds)]
    pub seconds: u64,
    /// Services to abuse, in order (comma-separated; default all): quorum, miner, blocks
    /// (the miner taking blocks from a peer), tracker, relay.
    #[arg(long, value_delimiter = ',', value_parser = parse_service)]
    pub services: Vec<abuse::Service>,
    /// Scenarios to run, in order (comma-separated; default all that apply): baseline,
    /// never-reads, pipelined-expensive, holds-connections, half-sent-http, malformed-flood.
    #[arg(long, value_delimiter = ',', value_parser = parse_abuse)]
    pub scenarios: Vec<abuse::Abuse>,
    /// Work folder (must not exist yet); default: a fresh temporary folder, removed
    /// afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the default work folder.
    #[arg(long)]
    pub keep: bool,
}

const WIRE: wire::Settings = wire::Settings::DEFAULT;

/// `tally bench wire`
#[derive(clap::Args)]
pub struct WireArgs {
    /// Wires in all.
    #[arg(long, default_value_t = WIRE.wires)]
    pub wires: usize,
    /// Payers wiring at once, each its share one after another.
    #[arg(long, default_value_t = WIRE.payers)]
    pub payers: usize,
    /// Accounts the maker pays from on B, side by side.
    #[arg(long, default_value_t = WIRE.accounts)]
    pub accounts: usize,
    /// Whole cash each wire delivers.
    #[arg(long, default_value_t = WIRE.cash)]
    pub cash: u64,
    /// How long the payers listen for the maker's quote, once (500ms, 2s).
    #[arg(long, value_parser = parse_duration, default_value = "300ms")]
    pub listen: Duration,
    /// Work folder (must not exist yet); default: a fresh temporary folder, removed
    /// afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the default work folder.
    #[arg(long)]
    pub keep: bool,
}

const LIVE: live::Settings = live::Settings::DEFAULT;

/// `tally bench live`
#[derive(clap::Args)]
pub struct LiveArgs {
    /// Transfers, one after another.
    #[arg(long, default_value_t = LIVE.transfers)]
    pub transfers: usize,
    /// Whole cash each transfer sends.
    #[arg(long, default_value_t = LIVE.cash)]
    pub cash: u64,
    /// Work folder (must not exist yet); default: a fresh temporary folder, removed
    /// afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the default work folder.
    #[arg(long)]
    pub keep: bool,
}

const WEB: web::Settings = web::Settings::DEFAULT;

/// `tally bench web`
#[derive(clap::Args)]
pub struct WebArgs {
    /// Receipts the wallet keeps (paid untimed).
    #[arg(long, default_value_t = WEB.receipts)]
    pub receipts: usize,
    /// Coins the wallet holds, about (withdrawn untimed).
    #[arg(long, default_value_t = WEB.coins)]
    pub coins: usize,
    /// Wallet page views timed one after another.
    #[arg(long, default_value_t = WEB.pages)]
    pub pages: usize,
    /// Payments a second offered while the explorer is measured.
    #[arg(long, default_value_t = WEB.rate)]
    pub rate: u64,
    /// Explorer page views a second asked beside the payments (0: as fast as served).
    #[arg(long, default_value_t = WEB.views)]
    pub views: u64,
    /// Seconds of payments alone, and again with the explorer's load.
    #[arg(long, default_value_t = WEB.seconds)]
    pub seconds: u64,
    /// Work folder (must not exist yet); default: a fresh temporary folder, removed
    /// afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the default work folder.
    #[arg(long)]
    pub keep: bool,
}

const COINS: coins::Settings = coins::Settings::DEFAULT;

/// `tally bench coins`
#[derive(clap::Args)]
pub struct CoinsArgs {
    /// Coins to withdraw (untimed) and then pown one after another (timed).
    #[arg(long, default_value_t = COINS.coins)]
    pub coins: usize,
    /// Coins in the wallet whose listing is timed (0 skips it).
    #[arg(long, default_value_t = COINS.listed)]
    pub listed: usize,
    /// Work folder (must not exist yet); default: a fresh temporary folder, removed
    /// afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the default work folder.
    #[arg(long)]
    pub keep: bool,
}

const QUORUM: quorum::Settings = quorum::Settings::DEFAULT;

/// `tally bench quorum`
#[derive(clap::Args)]
pub struct QuorumArgs {
    /// Accounts funded at genesis; the validator's memory is measured holding them.
    #[arg(long, default_value_t = QUORUM.accounts)]
    pub accounts: usize,
    /// Transfers for the throughput run, each one order and one certificate (0: only load
    /// the validator and measure its memory).
    #[arg(long, default_value_t = QUORUM.transfers)]
    pub transfers: usize,
    /// Connections the throughput load is spread over.
    #[arg(long, default_value_t = QUORUM.connections)]
    pub connections: usize,
    /// Transfers per round: a round's orders go out, then its certificates (at most
    /// --accounts, so that a round's senders are distinct).
    #[arg(long, default_value_t = QUORUM.batch)]
    pub batch: usize,
    /// Payments for the end-to-end run (0 skips it).
    #[arg(long, default_value_t = QUORUM.payments)]
    pub payments: usize,
    /// Concurrent wallets in the end-to-end run.
    #[arg(long, default_value_t = QUORUM.clients)]
    pub clients: usize,
    /// Payments for the one-wallet run after it: one wallet holding the --clients
    /// accounts pays them all with send-many (0 skips it).
    #[arg(long, default_value_t = QUORUM.payroll)]
    pub payroll: usize,
    /// Work folder (must not exist yet); default: a fresh folder in the system temporary
    /// folder, removed afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the default work folder instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

const TRACKER: tracker::Settings = tracker::Settings::DEFAULT;

/// `tally bench tracker`: signed registrations per second and memory per live entry.
#[derive(clap::Args)]
pub struct TrackerArgs {
    /// Concurrent clients, one connection each.
    #[arg(long, default_value_t = TRACKER.clients)]
    pub clients: usize,
    /// Signed registrations to time (each key re-registers `--rounds` times).
    #[arg(long, default_value_t = TRACKER.registrations)]
    pub registrations: usize,
    /// Registrations per key.
    #[arg(long, default_value_t = TRACKER.rounds)]
    pub rounds: usize,
    /// Requests each client keeps in flight (1: one at a time, waiting for each answer).
    #[arg(long, default_value_t = TRACKER.pipeline)]
    pub pipeline: usize,
    /// Live entries for the memory measurement (0 skips it).
    #[arg(long, default_value_t = TRACKER.entries)]
    pub entries: usize,
    /// Folder for the benchmark's databases (default: a fresh one under the temp dir,
    /// removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const RELAY: relay::Settings = relay::Settings::DEFAULT;

/// Options of `tally bench relay`. The relay runs as a child process (`tally relay` from
/// this same binary) so its memory can be measured on its own; the bench clients run in
/// this process, on the same machine.
#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// Private rooms for the throughput and latency runs (one sender, one receiver each).
    #[arg(long, default_value_t = RELAY.rooms)]
    pub rooms: usize,
    /// Seconds measured in the throughput run (after the warm-up).
    #[arg(long, default_value_t = RELAY.seconds.as_secs_f64())]
    pub seconds: f64,
    /// Warm-up seconds before each measurement.
    #[arg(long, default_value_t = RELAY.warmup.as_secs_f64())]
    pub warmup: f64,
    /// Lines each sender may have in flight in the throughput run (keeps every receiver's
    /// queue far below the relay's limit: a relay never slows a sender down, it drops
    /// receivers that fall behind).
    #[arg(long, default_value_t = RELAY.window)]
    pub window: u64,
    /// Aggregate lines per second in the latency run.
    #[arg(long, default_value_t = RELAY.latency_rate)]
    pub latency_rate: u64,
    /// Seconds measured in each latency run.
    #[arg(long, default_value_t = RELAY.latency_seconds.as_secs_f64())]
    pub latency_seconds: f64,
    /// Latency runs, each with a fresh relay. The target is judged on the median p99 of the
    /// runs: on a shared VM the host's steal time decides a single run's tail (every run is
    /// printed with its steal; the median of the undisturbed ones is shown beside it).
    #[arg(long, default_value_t = RELAY.latency_runs)]
    pub latency_runs: usize,
    /// Idle joined connections in the memory run.
    #[arg(long, default_value_t = RELAY.idle)]
    pub idle: usize,
    /// Passed to the relay child as `--threads` (0: the relay on its command's runtime, one
    /// worker per core; 1: a single-threaded runtime, which busy polling needs).
    #[arg(long, default_value_t = RELAY.relay_threads)]
    pub relay_threads: usize,
    /// Passed to the relay child as `--busy-poll` (0 is off): the relay keeps polling its
    /// sockets this long after each read instead of sleeping.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    pub relay_busy_poll: Duration,
    /// Runs to do: any of throughput, latency, memory (default: all three).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// `tally bench mine`
#[derive(clap::Args)]
pub struct MineArgs {
    /// Seconds per measurement (three measurements).
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Threads for the multi-threaded figure (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

const SYNC: sync::Settings = sync::Settings::DEFAULT;

/// `tally bench sync`
#[derive(clap::Args)]
pub struct SyncArgs {
    /// Blocks to validate and store.
    #[arg(long, default_value_t = SYNC.blocks)]
    pub blocks: usize,
    /// Transfers per block.
    #[arg(long, default_value_t = SYNC.transfers)]
    pub transfers: usize,
    /// Folder for the benchmark's chain database (default: a temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// A positive or zero number of seconds from the command line.
fn seconds(value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|e| anyhow::anyhow!("bad duration {value}: {e}"))
}

impl RelayArgs {
    fn settings(&self) -> anyhow::Result<relay::Settings> {
        Ok(relay::Settings {
            rooms: self.rooms,
            seconds: seconds(self.seconds)?,
            warmup: seconds(self.warmup)?,
            window: self.window,
            latency_rate: self.latency_rate,
            latency_seconds: seconds(self.latency_seconds)?,
            latency_runs: self.latency_runs,
            idle: self.idle,
            relay_threads: self.relay_threads,
            relay_busy_poll: self.relay_busy_poll,
            runs: relay::Runs::named(&self.only)?,
        })
    }
}

/// Runs one benchmark and prints its report.
pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    let console = Arc::new(Console::default());
    let report: Arc<dyn Report> = console.clone();
    let tally = || std::env::current_exe().context("finding the tally executable");
    let result = match command {
        BenchCommand::Quorum(args) => {
            let settings = quorum::Settings {
                accounts: args.accounts,
                transfers: args.transfers,
                connections: args.connections,
                batch: args.batch,
                payments: args.payments,
                clients: args.clients,
                payroll: args.payroll,
                dir: args.dir,
                keep: args.keep,
            };
            quorum::run(settings, tally()?, report, crate::shutdown_signal())
                .await
                .map(drop)
        }
        BenchCommand::Live(args) => {
            let settings = live::Settings {
                transfers: args.transfers,
                cash: args.cash,
                dir: args.dir,
                keep: args.keep,
            };
            live::run(settings, &tally()?, console.as_ref())
                .await
                .map(drop)
        }
        BenchCommand::Wire(args) => {
            let settings = wire::Settings {
                wires: args.wires,
                payers: args.payers,
                accounts: args.accounts,
                cash: args.cash,
                listen: args.listen,
                dir: args.dir,
                keep: args.keep,
            };
            wire::run(settings, &tally()?, console.as_ref())
                .await
                .map(drop)
        }
        BenchCommand::Abuse(args) => {
            let settings = abuse::Settings {
                seconds: args.seconds,
                services: args.services,
                scenarios: args.scenarios,
                dir: args.dir,
                keep: args.keep,
            };
            abuse::run(settings, &tally()?, console.as_ref())
                .await
                .map(drop)
        }
        BenchCommand::Web(args) => {
            let settings = web::Settings {
                receipts: args.receipts,
                coins: args.coins,
                pages: args.pages,
                rate: args.rate,
                views: args.views,
                seconds: args.seconds,
                dir: args.dir,
                keep: args.keep,
            };
            web::run(settings, &tally()?, console.as_ref())
                .await
                .map(drop)
        }
        BenchCommand::Coins(args) => {
            let settings = coins::Settings {
                coins: args.coins,
                listed: args.listed,
                dir: args.dir,
                keep: args.keep,
            };
            coins::run(settings, &tally()?, console.as_ref())
                .await
                .map(drop)
        }
        BenchCommand::Tracker(args) => {
            let settings = tracker::Settings {
                clients: args.clients,
                registrations: args.registrations,
                rounds: args.rounds,
                pipeline: args.pipeline,
                entries: args.entries,
                dir: args.dir,
            };
            tracker::run(&settings, &tally()?, console.as_ref())
                .await
                .map(drop)
        }
        BenchCommand::Relay(args) => {
            let settings = args.settings()?;
            relay::run(&settings, &tally()?, console.as_ref())
                .await
                .map(drop)
        }
        BenchCommand::Mine(args) => {
            let mut settings = mine::Settings::for_this_machine();
            settings.duration = Duration::from_secs(args.seconds.max(1));
            if let Some(threads) = args.threads {
                settings.threads = threads;
            }
            mine::run(settings, console.as_ref());
            Ok(())
        }
        BenchCommand::Sync(args) => {
            let settings = sync::Settings {
                blocks: args.blocks,
                transfers: args.transfers,
                dir: args.dir,
            };
            sync::run(&settings, console.as_ref()).map(drop)
        }
    };
    console.end_step();
    Ok(result?)
}

/// The terminal: figures on stdout as they come; progress on stderr, as a spinner with the
/// step's time when stderr is a terminal and as plain lines otherwise.
#[derive(Default)]
struct Console {
    step: Mutex<Option<ProgressBar>>,
}

impl Console {
    /// Clears the spinner of the step under way, if any.
    fn end_step(&self) {
        let step = self
            .step
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(bar) = step {
            bar.finish_and_clear();
        }
    }
}

impl Report for Console {
    fn progress(&self, step: &str) {
        self.end_step();
        if !std::io::stderr().is_terminal() {
            eprintln!("{step}");
            return;
        }
        let bar = ProgressBar::new_spinner().with_message(step.to_owned());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        *self.step.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar);
    }

    fn section(&self, text: &str) {
        self.end_step();
        println!("{text}");
    }
}
