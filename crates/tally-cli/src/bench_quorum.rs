//! `tally bench quorum`: FastPay's benchmark, run against Tally's quorum validator.
//!
//! 1. **Throughput.** One validator runs as its own process (`tally node`, a child of the
//!    bench) in a committee of four; the other three are not running, but the bench holds
//!    their keys. Before the clock starts the bench signs every transfer order, assembles
//!    each order's certificate from the votes of validators 0 (the measured one), 1 and 2,
//!    exactly as a wallet would, and encodes every frame. Timed: the pre-encoded load goes
//!    out pipelined over a few connections, in rounds of `--batch` transfers: a round's
//!    orders, then the same round's certificates, then the next round (a connection carries
//!    all the traffic of its senders, so each certificate follows its order and precedes the
//!    sender's next order). The clock stops at the last acknowledgement.
//! 2. **Memory.** The validator's resident set (`/proc/PID/status`) once it has loaded its
//!    `--accounts` funded accounts, and its peak.
//! 3. **End to end.** Four `tally node` processes; `--clients` concurrent wallets, each with
//!    its own [`QuorumClient`], certify and submit payments; payments per second and
//!    latency percentiles.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use rayon::prelude::*;
use tally_core::{
    AccountId, Allocation, Amount, Certificate, Mode, NetworkContract, NetworkId, Order, SecretKey,
    SignedOrder, Transfer, ValidatorInfo, Vote, sha256,
};
use tally_node::NodeFiles;
use tally_proto::{Connection, Hello, Limits, Packet};
use tally_wallet::QuorumClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `tally bench quorum`
#[derive(clap::Args)]
pub struct BenchQuorumArgs {
    /// Accounts funded at genesis; the validator's memory is measured holding them.
    #[arg(long, default_value_t = 100_000)]
    pub accounts: usize,
    /// Transfers for the throughput run, each one order and one certificate (0: only load
    /// the validator and measure its memory).
    #[arg(long, default_value_t = 100_000)]
    pub transfers: usize,
    /// Connections the throughput load is spread over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Transfers per round: a round's orders go out, then its certificates (at most
    /// --accounts, so that a round's senders are distinct).
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Payments for the end-to-end run (0 skips it).
    #[arg(long, default_value_t = 4_000)]
    pub payments: usize,
    /// Concurrent wallets in the end-to-end run.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Work folder (must not exist yet); default: a fresh folder in the system temporary
    /// folder, removed afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the default work folder instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

/// Every transfer moves one microcash; every funded account holds plenty.
const TRANSFER_MICROCASH: u64 = 1;
const FUND_MICROCASH: u64 = 1_000_000_000;
/// How long a validator may take to load its ledger before the bench gives up.
const START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the bench waits for any one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// One answer in this many is parsed and checked in full (the others by their type).
const SAMPLE_EVERY: usize = 64;

pub async fn run(args: BenchQuorumArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    // The bench runs in its own task (parts of it compute for seconds without yielding), so
    // that Ctrl-C or SIGTERM is seen at once: the validators are killed from here, and the
    // task's guards remove the work folder when it is dropped.
    let children = Children::default();
    let mut task = tokio::spawn(bench(args, children.clone()));
    tokio::select! {
        result = &mut task => {
            children.stop();
            result.context("the bench task failed")?
        }
        () = crate::shutdown_signal() => {
            children.stop();
            task.abort();
            bail!("interrupted")
        }
    }
}

fn check_args(args: &BenchQuorumArgs) -> anyhow::Result<()> {
    if args.accounts < 2 {
        bail!("--accounts must be at least 2 (transfers need a sender and a recipient)");
    }
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if args.batch == 0 || args.batch > args.accounts {
        bail!(
            "--batch must be between 1 and --accounts ({}): a round's senders must be distinct",
            args.accounts
        );
    }
    if args.payments > 0 && args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    Ok(())
}

async fn bench(args: BenchQuorumArgs, children: Children) -> anyhow::Result<()> {
    let work = WorkDir::new(args.dir.clone(), args.keep)?;
    println!(
        "tally bench quorum: {} cores, work folder {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        work.path.display()
    );
    let exe = std::env::current_exe().context("finding the tally executable")?;

    let figures = throughput(&args, &work.path.join("throughput"), &exe, &children).await?;
    figures.print();

    if args.payments > 0 {
        let e2e = end_to_end(&args, &work.path.join("end-to-end"), &exe, &children).await?;
        e2e.print();
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Throughput and memory.

struct ThroughputFigures {
    accounts: usize,
    transfers: usize,
    connections: usize,
    batch: usize,
    prepare: Duration,
    load: Duration,
    elapsed: Duration,
    rss_loaded: Memory,
    rss_after: Memory,
    validator_cpu: Duration,
    bench_cpu: Duration,
    engine: Option<EngineCounts>,
    /// The machine's CPU pressure over the run (other work competing for the cores).
    pressure: Option<String>,
    /// The load average just before and just after the timed run.
    loadavg_before: String,
    loadavg_after: String,
}

struct EngineCounts {
    batches: u64,
    requests: u64,
    /// Store checkpoints (the deferred, sorted writes of accounts and indexes) and the
    /// time they took, in µs.
    checkpoints: u64,
    checkpoint_micros: u64,
}

impl ThroughputFigures {
    fn print(&self) {
        println!();
        println!(
            "validator: one `tally node` process, committee of 4, {} funded accounts",
            self.accounts
        );
        println!(
            "  loaded in {:.2} s; resident {} (peak {})",
            self.load.as_secs_f64(),
            mb(self.rss_loaded.rss_kb),
            mb(self.rss_loaded.peak_kb)
        );
        if self.transfers == 0 {
            println!("  load average (/proc/loadavg): {}", self.loadavg_before);
            return;
        }
        let seconds = self.elapsed.as_secs_f64();
        println!(
            "  load prepared in {:.2} s (orders signed, certificates assembled, frames encoded)",
            self.prepare.as_secs_f64()
        );
        println!(
            "  {} transfers ({} orders + {} certificates) over {} connections, rounds of {}",
            self.transfers, self.transfers, self.transfers, self.connections, self.batch
        );
        println!(
            "  {:.3} s: {:.0} transfers/s ({:.0} requests/s)",
            seconds,
            self.transfers as f64 / seconds,
            2.0 * self.transfers as f64 / seconds
        );
        println!(
            "  CPU: validator {:.2} s ({:.0} µs per transfer), bench client {:.2} s",
            self.validator_cpu.as_secs_f64(),
            self.validator_cpu.as_secs_f64() * 1e6 / self.transfers as f64,
            self.bench_cpu.as_secs_f64()
        );
        if let Some(engine) = &self.engine {
            println!(
                "  engine: {} batches, {:.0} requests per batch on average",
                engine.batches,
                engine.requests as f64 / engine.batches.max(1) as f64
            );
            println!(
                "  store: {} checkpoints during the run, {:.0} ms in all ({:.1} µs per transfer)",
                engine.checkpoints,
                engine.checkpoint_micros as f64 / 1e3,
                engine.checkpoint_micros as f64 / self.transfers as f64
            );
        }
        println!(
            "  validator resident after the run {} (peak {})",
            mb(self.rss_after.rss_kb),
            mb(self.rss_after.peak_kb)
        );
        if let Some(pressure) = &self.pressure {
            println!("  machine CPU pressure at the end (/proc/pressure/cpu): {pressure}");
        }
        println!(
            "  load average (/proc/loadavg) before the run: {}; after: {}",
            self.loadavg_before, self.loadavg_after
        );
    }
}

/// One transfer of the load: which connection carries it and what it expects back.
struct Planned {
    connection: usize,
    order_frame: Vec<u8>,
    cert_frame: Vec<u8>,
    /// The measured validator's vote, checked in full for sampled transfers.
    vote: Vote,
}

/// What one connection sends and expects.
#[derive(Default)]
struct Stream {
    bytes: Vec<u8>,
    expect: Vec<Expect>,
}

#[derive(Clone, Copy)]
enum Expect {
    Vote(Option<Vote>),
    Ack(bool),
}

async fn throughput(
    args: &BenchQuorumArgs,
    dir: &Path,
    exe: &Path,
    nodes: &Children,
) -> anyhow::Result<ThroughputFigures> {
    println!(
        "generating {} account keys and a committee of 4…",
        args.accounts
    );
    let validators: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    let accounts = account_keys(args.accounts);
    let ports = free_ports(2 * validators.len())?;
    let contract = write_network(dir, &validators, &accounts, &ports, "bench-throughput")?;
    let network = contract.id();
    let genesis_accounts: Vec<AccountId> = contract.genesis.iter().map(|a| a.account).collect();
    drop(contract);

    let started = Instant::now();
    let validator = nodes.spawn(exe, &dir.join("validator-0")).await?;
    let load = started.elapsed();
    let pid = validator.pid;
    let rss_loaded = memory(pid)?;

    let prepare_started = Instant::now();
    let streams = if args.transfers > 0 {
        println!(
            "signing {} orders and assembling their certificates…",
            args.transfers
        );
        plan_load(args, &network, &validators, &accounts, &genesis_accounts)
    } else {
        Vec::new()
    };
    let prepare = prepare_started.elapsed();
    drop(accounts);

    let mut figures = ThroughputFigures {
        accounts: args.accounts,
        transfers: args.transfers,
        connections: args.connections,
        batch: args.batch,
        prepare,
        load,
        elapsed: Duration::ZERO,
        rss_loaded,
        rss_after: rss_loaded,
        validator_cpu: Duration::ZERO,
        bench_cpu: Duration::ZERO,
        engine: None,
        pressure: None,
        loadavg_before: loadavg(),
        loadavg_after: String::new(),
    };
    if args.transfers == 0 {
        nodes.stop();
        return Ok(figures);
    }

    // Connect first: connection set-up is not part of the measurement.
    let mut sockets = Vec::with_capacity(streams.len());
    for _ in &streams {
        let stream = TcpStream::connect(validator.address)
            .await
            .with_context(|| format!("connecting to the validator at {}", validator.address))?;
        stream.set_nodelay(true)?;
        sockets.push(stream);
    }
    let engine_before = engine_counts(validator.rpc).await;
    figures.loadavg_before = loadavg();
    let validator_cpu_before = cpu_time(&pid.to_string())?;
    let bench_cpu_before = cpu_time("self")?;
    println!(
        "sending {} transfers to the validator at {}…",
        args.transfers, validator.address
    );
    let clock = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (socket, stream) in sockets.into_iter().zip(streams) {
        tasks.spawn(drive(socket, stream, network));
    }
    let mut failures = Vec::new();
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failures.push(format!("{error:#}")),
            Err(error) => failures.push(error.to_string()),
        }
    }
    figures.elapsed = clock.elapsed();
    figures.validator_cpu = cpu_time(&pid.to_string())?.saturating_sub(validator_cpu_before);
    figures.bench_cpu = cpu_time("self")?.saturating_sub(bench_cpu_before);
    figures.rss_after = memory(pid)?;
    figures.pressure = cpu_pressure();
    figures.loadavg_after = loadavg();
    if let (Some(before), Some(after)) = (engine_before, engine_counts(validator.rpc).await) {
        figures.engine = Some(EngineCounts {
            batches: after.batches - before.batches,
            requests: after.requests - before.requests,
            checkpoints: after.checkpoints - before.checkpoints,
            checkpoint_micros: after.checkpoint_micros - before.checkpoint_micros,
        });
    }
    if !failures.is_empty() {
        bail!(
            "the throughput run failed on {} of {} connections: {}",
            failures.len(),
            args.connections,
            failures.join("; ")
        );
    }
    // The validator's own count must agree: every certificate applied exactly once.
    let applied = applied_certificates(validator.address, network).await?;
    if applied != args.transfers as u64 {
        bail!(
            "the validator reports {applied} applied certificates, {} were sent",
            args.transfers
        );
    }
    nodes.stop();
    Ok(figures)
}

/// Deterministic account keys (the seeds do not matter; the validator keys make the
/// network unique), generated on every core.
fn account_keys(count: usize) -> Vec<SecretKey> {
    (0..count as u64)
        .into_par_iter()
        .map(|i| {
            let seed = sha256(&[b"tally-bench-account", &i.to_le_bytes()]);
            SecretKey::from_bytes(*seed.as_bytes())
        })
        .collect()
}

/// Writes `dir/contract.json` (compact JSON) and one folder per validator.
fn write_network(
    dir: &Path,
    validators: &[SecretKey],
    accounts: &[SecretKey],
    ports: &[u16],
    name: &str,
) -> anyhow::Result<NetworkContract> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let contract = NetworkContract {
        name: name.into(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: Amount::from_microcash(10_000_000),
        intro_pow_bits: 20,
        validators: validators
            .iter()
            .enumerate()
            .map(|(i, key)| ValidatorInfo {
                key: key.account(),
                address: format!("127.0.0.1:{}", ports[2 * i]),
            })
            .collect(),
        tracker: None,
        genesis: accounts
            .iter()
            .map(|key| Allocation {
                account: key.account(),
                amount: Amount::from_microcash(FUND_MICROCASH),
            })
            .collect(),
        pow: None,
    };
    contract.validate()?;
    let path = dir.join("contract.json");
    std::fs::write(&path, contract.canonical_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    for (i, key) in validators.iter().enumerate() {
        let folder = dir.join(format!("validator-{i}"));
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        let files = NodeFiles {
            contract: PathBuf::from("../contract.json"),
            listen: SocketAddr::from(([127, 0, 0, 1], ports[2 * i])),
            rpc: SocketAddr::from(([127, 0, 0, 1], ports[2 * i + 1])),
            key_pow: None,
            advertise: None,
        };
        std::fs::write(
            folder.join(NodeFiles::CONFIG),
            serde_json::to_string_pretty(&files)?,
        )
        .with_context(|| format!("writing {}", folder.display()))?;
        std::fs::write(folder.join(NodeFiles::KEY), key.to_hex())
            .with_context(|| format!("writing {}", folder.display()))?;
    }
    Ok(contract)
}

/// Signs every order, assembles every certificate from the votes of validators 0, 1 and 2,
/// and lays the frames out per connection: per round, its orders, then its certificates.
fn plan_load(
    args: &BenchQuorumArgs,
    network: &NetworkId,
    validators: &[SecretKey],
    accounts: &[SecretKey],
    ids: &[AccountId],
) -> Vec<Stream> {
    let count = accounts.len();
    let mut streams: Vec<Stream> = (0..args.connections).map(|_| Stream::default()).collect();
    let mut first = 0;
    while first < args.transfers {
        let end = (first + args.batch).min(args.transfers);
        let round: Vec<Planned> = (first..end)
            .into_par_iter()
            .map(|t| {
                let sender = t % count;
                let order = SignedOrder::sign(
                    Order::Transfer(Transfer {
                        sender: ids[sender],
                        recipient: ids[(sender + 1) % count],
                        amount: Amount::from_microcash(TRANSFER_MICROCASH),
                        sequence: (t / count) as u64,
                    }),
                    &accounts[sender],
                    network,
                );
                let digest = order.order.digest(network);
                let votes: Vec<Vote> = validators[..3]
                    .iter()
                    .map(|key| Vote::sign(key, network, &digest))
                    .collect();
                let vote = votes[0];
                let certificate = Certificate::new(order, network, votes);
                Planned {
                    connection: sender % args.connections,
                    order_frame: frame(&Packet::ReqPay(order)),
                    cert_frame: frame(&Packet::ReqPayEnd(certificate)),
                    vote,
                }
            })
            .collect();
        for (i, planned) in round.iter().enumerate() {
            let stream = &mut streams[planned.connection];
            stream.bytes.extend_from_slice(&planned.order_frame);
            let sampled = (first + i) % SAMPLE_EVERY == 0;
            stream
                .expect
                .push(Expect::Vote(sampled.then_some(planned.vote)));
        }
        for (i, planned) in round.iter().enumerate() {
            let stream = &mut streams[planned.connection];
            stream.bytes.extend_from_slice(&planned.cert_frame);
            stream
                .expect
                .push(Expect::Ack((first + i) % SAMPLE_EVERY == 0));
        }
        first = end;
    }
    streams.retain(|s| !s.expect.is_empty());
    streams
}

/// A 4-byte big-endian length, then the packet's JSON.
fn frame(packet: &Packet) -> Vec<u8> {
    // Serialising a packet of plain fields cannot fail.
    let json = serde_json::to_vec(packet).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// Writes one connection's whole load while reading its answers.
async fn drive(socket: TcpStream, stream: Stream, network: NetworkId) -> anyhow::Result<()> {
    let (mut reader, mut writer) = socket.into_split();
    let Stream { bytes, expect } = stream;
    let write = async move {
        writer.write_all(&bytes).await.context("sending the load")?;
        writer.flush().await.context("sending the load")?;
        // Keep the write half open until the answers are in.
        Ok::<_, anyhow::Error>(writer)
    };
    let read = async move {
        let mut reader = tokio::io::BufReader::with_capacity(1 << 16, &mut reader);
        let mut buffer = Vec::with_capacity(1024);
        for (i, expected) in expect.iter().enumerate() {
            let mut length = [0u8; 4];
            tokio::time::timeout(ANSWER_TIMEOUT, reader.read_exact(&mut length))
                .await
                .map_err(|_| anyhow!("no answer within {ANSWER_TIMEOUT:?} (answer {i})"))?
                .with_context(|| format!("reading answer {i}"))?;
            buffer.resize(u32::from_be_bytes(length) as usize, 0);
            reader
                .read_exact(&mut buffer)
                .await
                .with_context(|| format!("reading answer {i}"))?;
            check_answer(&buffer, expected, &network).with_context(|| format!("answer {i}"))?;
        }
        Ok::<_, anyhow::Error>(())
    };
    let (written, read) = tokio::join!(write, read);
    read?;
    written?;
    Ok(())
}

const VOTE_PREFIX: &[u8] = br#"{"Type":"RESP_PAY","#;
const ACK_PREFIX: &[u8] = br#"{"Type":"RESP_PAY_END","#;

/// Every answer is checked by its type; sampled answers are parsed and checked in full.
fn check_answer(bytes: &[u8], expected: &Expect, network: &NetworkId) -> anyhow::Result<()> {
    let (prefix, full) = match expected {
        Expect::Vote(vote) => (VOTE_PREFIX, vote.is_some()),
        Expect::Ack(sampled) => (ACK_PREFIX, *sampled),
    };
    if bytes.starts_with(prefix) && !full {
        return Ok(());
    }
    let packet: Packet = serde_json::from_slice(bytes)
        .with_context(|| format!("unparsable answer {}", String::from_utf8_lossy(bytes)))?;
    match (expected, packet) {
        (Expect::Vote(Some(vote)), Packet::RespPay(reply)) => {
            if reply.votes.as_slice() != [*vote] || !vote.verify(network, &reply.checksum) {
                bail!("the validator's vote is not the one expected");
            }
        }
        (Expect::Vote(None), Packet::RespPay(_)) => {}
        (Expect::Ack(_), Packet::RespPayEnd(ack)) => {
            if !ack.new {
                bail!("a certificate was acknowledged as applied before");
            }
        }
        (_, Packet::Error(error)) => bail!("refused: {:?}: {}", error.code, error.reason),
        (_, other) => bail!("unexpected answer {}", other.name()),
    }
    Ok(())
}

/// Asks the validator how many certificates it has applied.
async fn applied_certificates(address: SocketAddr, network: NetworkId) -> anyhow::Result<u64> {
    let mut connection =
        Connection::connect(&address.to_string(), Limits::default(), ANSWER_TIMEOUT).await?;
    let hello = Packet::Hello(Hello {
        network,
        validator: None,
        address: None,
        certificates: None,
    });
    match connection.call(&hello).await? {
        Packet::Hello(Hello {
            certificates: Some(certificates),
            ..
        }) => Ok(certificates),
        other => bail!("unexpected answer to HELLO: {}", other.name()),
    }
}

/// The engine's batch counters from the control API (`status`), if it answers.
async fn engine_counts(rpc: SocketAddr) -> Option<EngineCounts> {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"status"}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {rpc}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = TcpStream::connect(rpc).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        Some(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()??;
    let start = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let value: serde_json::Value = serde_json::from_slice(&answer[start..]).ok()?;
    let result = value.get("result")?;
    Some(EngineCounts {
        batches: result.get("batches")?.as_u64()?,
        requests: result.get("requests")?.as_u64()?,
        checkpoints: result.get("checkpoints")?.as_u64()?,
        checkpoint_micros: result.get("checkpoint_micros")?.as_u64()?,
    })
}

// ---------------------------------------------------------------------------------------
// End to end.

struct EndToEndFigures {
    payments: usize,
    clients: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl EndToEndFigures {
    fn print(&self) {
        let seconds = self.elapsed.as_secs_f64();
        println!();
        println!(
            "end to end: 4 `tally node` processes, {} wallets (QuorumClient: certify, then submit to all 4)",
            self.clients
        );
        println!(
            "  {} payments in {:.3} s: {:.0} payments/s",
            self.payments,
            seconds,
            self.payments as f64 / seconds
        );
        println!(
            "  latency p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
            millis(percentile(&self.latencies, 50)),
            millis(percentile(&self.latencies, 90)),
            millis(percentile(&self.latencies, 99)),
            millis(self.latencies.last().copied().unwrap_or_default()),
        );
    }
}

async fn end_to_end(
    args: &BenchQuorumArgs,
    dir: &Path,
    exe: &Path,
    nodes: &Children,
) -> anyhow::Result<EndToEndFigures> {
    let validators: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    // Wallet k pays wallet k+1; the last pays an extra account.
    let accounts = account_keys(args.clients + 1);
    let ports = free_ports(2 * validators.len())?;
    let contract = write_network(dir, &validators, &accounts, &ports, "bench-end-to-end")?;
    for i in 0..validators.len() {
        nodes
            .spawn(exe, &dir.join(format!("validator-{i}")))
            .await?;
    }
    let network = contract.id();
    let contract = Arc::new(contract);
    let quorum = tally_core::Committee::new(&contract.validators)?.quorum();

    // Connect every wallet to every validator before the clock starts.
    let mut wallets = Vec::with_capacity(args.clients);
    for k in 0..args.clients {
        let client = QuorumClient::new((*contract).clone(), Duration::from_secs(30))?;
        for answer in client.hello_all().await {
            answer
                .result
                .with_context(|| format!("wallet {k}: HELLO to {}", answer.address))?;
        }
        let share = args.payments / args.clients + usize::from(k < args.payments % args.clients);
        wallets.push((
            client,
            accounts[k].clone(),
            accounts[k + 1].account(),
            share,
        ));
    }
    println!(
        "paying {} times end to end with {} wallets…",
        args.payments, args.clients
    );
    let clock = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (client, key, recipient, share) in wallets {
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for sequence in 0..share as u64 {
                let started = Instant::now();
                let order = SignedOrder::sign(
                    Order::Transfer(Transfer {
                        sender: key.account(),
                        recipient,
                        amount: Amount::from_microcash(TRANSFER_MICROCASH),
                        sequence,
                    }),
                    &key,
                    &network,
                );
                let certificate = client
                    .certify(&order)
                    .await
                    .with_context(|| format!("certifying payment {sequence}"))?;
                let acks = client.submit(&certificate).await;
                let ok = acks.iter().filter(|a| a.result.is_ok()).count();
                if ok < quorum {
                    let reasons: Vec<String> = acks
                        .into_iter()
                        .filter_map(|a| a.result.err().map(|e| format!("{}: {e}", a.address)))
                        .collect();
                    bail!(
                        "payment {sequence}: only {ok} validators applied the certificate: {}",
                        reasons.join("; ")
                    );
                }
                latencies.push(started.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(args.payments);
    while let Some(result) = tasks.join_next().await {
        latencies.extend(result.context("a wallet task failed")??);
    }
    let elapsed = clock.elapsed();
    nodes.stop();
    latencies.sort_unstable();
    Ok(EndToEndFigures {
        payments: args.payments,
        clients: args.clients,
        elapsed,
        latencies,
    })
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn millis(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------------------------------
// Processes, ports, folders and /proc.

/// A running `tally node`.
#[derive(Clone, Copy)]
struct Running {
    pid: u32,
    address: SocketAddr,
    rpc: SocketAddr,
}

/// The validators the bench started, shared between the bench task and [`run`]: killed by
/// [`Children::stop`] or when the last handle is dropped, whatever the exit path.
#[derive(Clone, Default)]
struct Children {
    registry: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    children: std::sync::Mutex<Vec<Child>>,
}

impl Registry {
    fn stop(&self) {
        let mut children = self
            .children
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for child in children.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        children.clear();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Children {
    /// Starts `tally node --dir folder` and waits until it listens.
    async fn spawn(&self, exe: &Path, folder: &Path) -> anyhow::Result<Running> {
        let log_path = folder.join("node.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Command::new(exe)
            .arg("node")
            .arg("--dir")
            .arg(folder)
            .env("TALLY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {} node", exe.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take();
        self.registry
            .children
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(child);
        let stdout = stdout.ok_or_else(|| anyhow!("no stdout from the validator"))?;
        // `validator listening on ADDR (control API RPC)`; then keep draining stdout.
        let (sender, receiver) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("validator listening on ") {
                    let _ = sender.send(rest.to_owned());
                    break;
                }
            }
            for _ in lines {}
        });
        let started = tokio::time::timeout(START_TIMEOUT, receiver).await;
        let Ok(Ok(line)) = started else {
            bail!(
                "validator {} did not start: {}",
                folder.display(),
                log_tail(&log_path)
            );
        };
        let mut words = line.split_whitespace();
        let address: SocketAddr = words
            .next()
            .ok_or_else(|| anyhow!("odd start line: {line}"))?
            .parse()
            .with_context(|| format!("odd start line: {line}"))?;
        let rpc: SocketAddr = words
            .nth(2)
            .map(|w| w.trim_end_matches(')'))
            .ok_or_else(|| anyhow!("odd start line: {line}"))?
            .parse()
            .with_context(|| format!("odd start line: {line}"))?;
        Ok(Running { pid, address, rpc })
    }

    /// Kills every validator started so far and reaps it.
    fn stop(&self) {
        self.registry.stop();
    }
}

fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    if tail.is_empty() {
        format!("it exited without a word (see {})", path.display())
    } else {
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

/// Ports nothing listens on right now (bound, noted, released).
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The bench's folder; removed on drop unless the user named it or asked to keep it.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    fn new(dir: Option<PathBuf>, keep: bool) -> anyhow::Result<Self> {
        let (path, remove) = match dir {
            Some(path) => (path, false),
            None => (
                std::env::temp_dir().join(format!("tally-bench-quorum-{}", std::process::id())),
                !keep,
            ),
        };
        if path.exists() {
            bail!("{} already exists; choose another --dir", path.display());
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path, remove })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A process's resident set and its peak, in KiB.
#[derive(Clone, Copy)]
struct Memory {
    rss_kb: u64,
    peak_kb: u64,
}

fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .ok_or_else(|| anyhow!("{path} has no {name}"))
    };
    Ok(Memory {
        rss_kb: field("VmRSS:")?,
        peak_kb: field("VmHWM:")?,
    })
}

/// User plus system CPU time of a process (`self` or a pid), all threads.
fn cpu_time(pid: &str) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| anyhow!("odd {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("odd {path}"))
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name; USER_HZ is 100
    // on Linux.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// `some avg10=… avg60=…` from `/proc/pressure/cpu`: how much runnable work waited for a
/// core (other programs on a shared machine show up here).
fn cpu_pressure() -> Option<String> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let line = text.lines().find(|l| l.starts_with("some "))?;
    Some(
        line.split_whitespace()
            .filter(|w| w.starts_with("avg10=") || w.starts_with("avg60="))
            .map(|w| format!("{w}%"))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minutes): figures from a shared
/// machine mean little without them.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}
