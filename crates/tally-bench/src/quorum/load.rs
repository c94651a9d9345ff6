//! The throughput and memory run: one validator, a pre-signed load sent pipelined.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use tally_core::{
    AccountId, Amount, Certificate, NetworkId, Order, SecretKey, SignedOrder, Transfer, Vote,
};
use tally_proto::{Connection, Hello, Limits, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::network::{account_keys, start_validator, write_network};
use super::settings::{ANSWER_TIMEOUT, Settings, TRANSFER_MICROCASH};
use crate::error::{BenchError, Context, fail};
use crate::process::{Daemons, free_ports};
use crate::procfs::{self, Memory, Process};
use crate::report::Report;

/// One answer in this many is parsed and checked in full (the others by their type).
const SAMPLE_EVERY: usize = 64;

/// What the throughput and memory run measured.
#[derive(Clone, Debug)]
pub struct ThroughputFigures {
    pub accounts: usize,
    pub transfers: usize,
    pub connections: usize,
    pub batch: usize,
    /// Signing the orders, assembling the certificates, encoding the frames (not timed).
    pub prepare: Duration,
    /// From starting the validator to its listening (loading its ledger).
    pub load: Duration,
    /// From the first byte sent to the last acknowledgement.
    pub elapsed: Duration,
    pub rss_loaded: Memory,
    pub rss_after: Memory,
    pub validator_cpu: Duration,
    pub bench_cpu: Duration,
    pub engine: Option<EngineCounts>,
    /// The machine's CPU pressure over the run (other work competing for the cores).
    pub pressure: Option<String>,
    /// The load average just before and just after the timed run.
    pub loadavg_before: String,
    pub loadavg_after: String,
}

/// The validator engine's counters over the run, from its control API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineCounts {
    pub batches: u64,
    pub requests: u64,
    /// Store checkpoints (the deferred, sorted writes of accounts and indexes) and the
    /// time they took, in µs.
    pub checkpoints: u64,
    pub checkpoint_micros: u64,
}

impl fmt::Display for ThroughputFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f)?;
        writeln!(
            f,
            "validator: one `tally node` process, committee of 4, {} funded accounts",
            self.accounts
        )?;
        write!(
            f,
            "  loaded in {:.2} s; resident {} (peak {})",
            self.load.as_secs_f64(),
            mb(self.rss_loaded.resident_kib),
            mb(self.rss_loaded.peak_kib)
        )?;
        if self.transfers == 0 {
            return write!(
                f,
                "\n  load average (/proc/loadavg): {}",
                self.loadavg_before
            );
        }
        let seconds = self.elapsed.as_secs_f64();
        writeln!(f)?;
        writeln!(
            f,
            "  load prepared in {:.2} s (orders signed, certificates assembled, frames encoded)",
            self.prepare.as_secs_f64()
        )?;
        writeln!(
            f,
            "  {} transfers ({} orders + {} certificates) over {} connections, rounds of {}",
            self.transfers, self.transfers, self.transfers, self.connections, self.batch
        )?;
        writeln!(
            f,
            "  {:.3} s: {:.0} transfers/s ({:.0} requests/s)",
            seconds,
            self.transfers as f64 / seconds,
            2.0 * self.transfers as f64 / seconds
        )?;
        writeln!(
            f,
            "  CPU: validator {:.2} s ({:.0} µs per transfer), bench client {:.2} s",
            self.validator_cpu.as_secs_f64(),
            self.validator_cpu.as_secs_f64() * 1e6 / self.transfers as f64,
            self.bench_cpu.as_secs_f64()
        )?;
        if let Some(engine) = &self.engine {
            writeln!(
                f,
                "  engine: {} batches, {:.0} requests per batch on average",
                engine.batches,
                engine.requests as f64 / engine.batches.max(1) as f64
            )?;
            writeln!(
                f,
                "  store: {} checkpoints during the run, {:.0} ms in all ({:.1} µs per transfer)",
                engine.checkpoints,
                engine.checkpoint_micros as f64 / 1e3,
                engine.checkpoint_micros as f64 / self.transfers as f64
            )?;
        }
        writeln!(
            f,
            "  validator resident after the run {} (peak {})",
            mb(self.rss_after.resident_kib),
            mb(self.rss_after.peak_kib)
        )?;
        if let Some(pressure) = &self.pressure {
            writeln!(
                f,
                "  machine CPU pressure at the end (/proc/pressure/cpu): {pressure}"
            )?;
        }
        write!(
            f,
            "  load average (/proc/loadavg) before the run: {}; after: {}",
            self.loadavg_before, self.loadavg_after
        )
    }
}

/// KiB (as /proc reports them) in the unit this benchmark has always printed as "MB"
/// (1,048,576 bytes); kept so that its figures stay comparable with those recorded.
fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
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

pub(super) async fn throughput(
    settings: &Settings,
    dir: &Path,
    tally: &Path,
    daemons: &Daemons,
    report: &dyn Report,
) -> Result<ThroughputFigures, BenchError> {
    report.progress(&format!(
        "generating {} account keys and a committee of 4…",
        settings.accounts
    ));
    let validators: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    let accounts = account_keys(settings.accounts);
    let ports = free_ports(2 * validators.len())?;
    let contract = write_network(
        dir,
        &validators,
        &accounts,
        &ports,
        "bench-throughput",
        None,
    )?;
    let network = contract.id();
    let genesis_accounts: Vec<AccountId> = contract.genesis.iter().map(|a| a.account).collect();
    drop(contract);

    let started = Instant::now();
    let validator = start_validator(tally, &dir.join("validator-0"), daemons).await?;
    let load = started.elapsed();
    let pid = Process::Id(validator.pid);
    let rss_loaded = procfs::memory(pid)?;

    let prepare_started = Instant::now();
    let streams = if settings.transfers > 0 {
        report.progress(&format!(
            "signing {} orders and assembling their certificates…",
            settings.transfers
        ));
        plan_load(
            settings,
            &network,
            &validators,
            &accounts,
            &genesis_accounts,
        )
    } else {
        Vec::new()
    };
    let prepare = prepare_started.elapsed();
    drop(accounts);

    let mut figures = ThroughputFigures {
        accounts: settings.accounts,
        transfers: settings.transfers,
        connections: settings.connections,
        batch: settings.batch,
        prepare,
        load,
        elapsed: Duration::ZERO,
        rss_loaded,
        rss_after: rss_loaded,
        validator_cpu: Duration::ZERO,
        bench_cpu: Duration::ZERO,
        engine: None,
        pressure: None,
        loadavg_before: procfs::load_average(),
        loadavg_after: String::new(),
    };
    if settings.transfers == 0 {
        daemons.stop();
        return Ok(figures);
    }

    // Connect first: connection set-up is not part of the measurement.
    let mut sockets = Vec::with_capacity(streams.len());
    for _ in &streams {
        let connecting = || format!("connecting to the validator at {}", validator.address);
        let stream = TcpStream::connect(validator.address)
            .await
            .with_context(connecting)?;
        stream.set_nodelay(true).with_context(connecting)?;
        sockets.push(stream);
    }
    let engine_before = engine_counts(validator.rpc).await;
    figures.loadavg_before = procfs::load_average();
    let validator_cpu_before = procfs::cpu_time(pid)?;
    let bench_cpu_before = procfs::cpu_time(Process::This)?;
    report.progress(&format!(
        "sending {} transfers to the validator at {}…",
        settings.transfers, validator.address
    ));
    let clock = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (socket, stream) in sockets.into_iter().zip(streams) {
        tasks.spawn(drive(socket, stream, network));
    }
    let mut failures = Vec::new();
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failures.push(crate::error::chain(&error)),
            Err(error) => failures.push(error.to_string()),
        }
    }
    figures.elapsed = clock.elapsed();
    figures.validator_cpu = procfs::cpu_time(pid)?.saturating_sub(validator_cpu_before);
    figures.bench_cpu = procfs::cpu_time(Process::This)?.saturating_sub(bench_cpu_before);
    figures.rss_after = procfs::memory(pid)?;
    figures.pressure = procfs::cpu_pressure();
    figures.loadavg_after = procfs::load_average();
    if let (Some(before), Some(after)) = (engine_before, engine_counts(validator.rpc).await) {
        figures.engine = Some(EngineCounts {
            batches: after.batches - before.batches,
            requests: after.requests - before.requests,
            checkpoints: after.checkpoints - before.checkpoints,
            checkpoint_micros: after.checkpoint_micros - before.checkpoint_micros,
        });
    }
    if !failures.is_empty() {
        fail!(
            "the throughput run failed on {} of {} connections: {}",
            failures.len(),
            settings.connections,
            failures.join("; ")
        );
    }
    // The validator's own count must agree: every certificate applied exactly once.
    let applied = applied_certificates(validator.address, network).await?;
    if applied != settings.transfers as u64 {
        fail!(
            "the validator reports {applied} applied certificates, {} were sent",
            settings.transfers
        );
    }
    daemons.stop();
    Ok(figures)
}

/// Signs every order, assembles every certificate from the votes of validators 0, 1 and 2,
/// and lays the frames out per connection: per round, its orders, then its certificates.
fn plan_load(
    settings: &Settings,
    network: &NetworkId,
    validators: &[SecretKey],
    accounts: &[SecretKey],
    ids: &[AccountId],
) -> Vec<Stream> {
    let count = accounts.len();
    let mut streams: Vec<Stream> = (0..settings.connections)
        .map(|_| Stream::default())
        .collect();
    let mut first = 0;
    while first < settings.transfers {
        let end = (first + settings.batch).min(settings.transfers);
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
                let certificate = Certificate::new(order.clone(), network, votes);
                Planned {
                    connection: sender % settings.connections,
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
    tally_proto::encode_frame(&json)
}

/// Writes one connection's whole load while reading its answers.
async fn drive(socket: TcpStream, stream: Stream, network: NetworkId) -> Result<(), BenchError> {
    let (mut reader, mut writer) = socket.into_split();
    let Stream { bytes, expect } = stream;
    let write = async move {
        writer.write_all(&bytes).await.context("sending the load")?;
        writer.flush().await.context("sending the load")?;
        // Keep the write half open until the answers are in.
        Ok::<_, BenchError>(writer)
    };
    let read = async move {
        let mut reader = tokio::io::BufReader::with_capacity(1 << 16, &mut reader);
        let mut buffer = Vec::with_capacity(1024);
        for (i, expected) in expect.iter().enumerate() {
            let mut length = [0u8; 4];
            tokio::time::timeout(ANSWER_TIMEOUT, reader.read_exact(&mut length))
                .await
                .map_err(|_| {
                    BenchError::Check(format!("no answer within {ANSWER_TIMEOUT:?} (answer {i})"))
                })?
                .with_context(|| format!("reading answer {i}"))?;
            buffer.resize(u32::from_be_bytes(length) as usize, 0);
            reader
                .read_exact(&mut buffer)
                .await
                .with_context(|| format!("reading answer {i}"))?;
            check_answer(&buffer, expected, &network).with_context(|| format!("answer {i}"))?;
        }
        Ok::<_, BenchError>(())
    };
    let (written, read) = tokio::join!(write, read);
    read?;
    written?;
    Ok(())
}

const VOTE_PREFIX: &[u8] = br#"{"Type":"RESP_PAY","#;
const ACK_PREFIX: &[u8] = br#"{"Type":"RESP_PAY_END","#;

/// Every answer is checked by its type; sampled answers are parsed and checked in full.
fn check_answer(bytes: &[u8], expected: &Expect, network: &NetworkId) -> Result<(), BenchError> {
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
                fail!("the validator's vote is not the one expected");
            }
        }
        (Expect::Vote(None), Packet::RespPay(_)) => {}
        (Expect::Ack(_), Packet::RespPayEnd(ack)) => {
            if !ack.new {
                fail!("a certificate was acknowledged as applied before");
            }
        }
        (_, Packet::Error(error)) => fail!("refused: {:?}: {}", error.code, error.reason),
        (_, other) => fail!("unexpected answer {}", other.name()),
    }
    Ok(())
}

/// Asks the validator how many certificates it has applied.
async fn applied_certificates(address: SocketAddr, network: NetworkId) -> Result<u64, BenchError> {
    let asking = || format!("asking the validator at {address} for its count");
    let mut connection =
        Connection::connect(&address.to_string(), Limits::default(), ANSWER_TIMEOUT)
            .await
            .with_context(asking)?;
    let hello = Packet::Hello(Hello {
        network,
        validator: None,
        address: None,
        certificates: None,
    });
    match connection.call(&hello).await.with_context(asking)? {
        Packet::Hello(Hello {
            certificates: Some(certificates),
            ..
        }) => Ok(certificates),
        other => fail!("unexpected answer to HELLO: {}", other.name()),
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
