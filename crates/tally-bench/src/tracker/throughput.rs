//! The throughput run: pre-signed registrations sent by concurrent clients to an
//! in-process tracker, each answered after its durable commit.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use tally_core::pow::IntroPowHasher;
use tally_core::{NetworkId, SecretKey};
use tally_tracker::{Limits, Request, Tracker, TrackerConfig, now_ms, sign_registration};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use super::settings::{Settings, bench_contract};
use crate::error::{BenchError, Context, fail};
use crate::percentile::Distribution;
use crate::procfs::{self, Process};
use crate::report::Report;

/// What the throughput run measured.
#[derive(Clone, Debug)]
pub struct Throughput {
    pub clients: usize,
    pub pipeline: usize,
    pub accepted: usize,
    pub refused: usize,
    pub elapsed: Duration,
    /// CPU time of this process (tracker and clients together) over the run.
    pub cpu: Duration,
    /// Answer latency per registration, measured with a pipeline of 1 only.
    pub latencies: Option<Distribution>,
    pub load_average: String,
    pub live_entries: usize,
    pub registry_bytes: u64,
}

impl fmt::Display for Throughput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let elapsed = self.elapsed.as_secs_f64();
        let cpu = self.cpu.as_secs_f64();
        writeln!(
            f,
            "throughput: {} clients, pipeline {}: {} registrations accepted, {} refused, in {elapsed:.2} s = {:.0} registrations/s",
            self.clients,
            self.pipeline,
            self.accepted,
            self.refused,
            self.accepted as f64 / elapsed
        )?;
        writeln!(
            f,
            "cpu: {cpu:.2} cpu-seconds used by tracker and clients together = {:.1} us per registration; {:.2} cores busy on average",
            cpu * 1e6 / self.accepted.max(1) as f64,
            cpu / elapsed
        )?;
        if let Some(latencies) = &self.latencies {
            let ms = |p: f64| {
                latencies
                    .percentile(p)
                    .map_or(0.0, |d| d.as_secs_f64() * 1e3)
            };
            writeln!(
                f,
                "latency per registration (answer after durable commit): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                ms(50.0),
                ms(99.0),
                ms(100.0)
            )?;
        }
        writeln!(f, "load average at the end: {}", self.load_average)?;
        write!(
            f,
            "tracker after the run: {} live entries, registry tables {:.1} MB",
            self.live_entries,
            self.registry_bytes as f64 / 1e6
        )
    }
}

pub(super) async fn run(
    settings: &Settings,
    dir: &Path,
    report: &dyn Report,
) -> Result<Throughput, BenchError> {
    let clients = settings.clients.max(1);
    let rounds = settings.rounds.max(1);
    let pipeline = settings.pipeline.max(1);
    let contract = bench_contract();
    let network = contract.id();
    let key_count = settings.registrations.div_ceil(rounds);

    report.progress(&format!(
        "preparing {key_count} keys and {} signed registrations...",
        key_count * rounds
    ));
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
                    frames.push(tally_proto::encode_frame(&body));
                }
            }
            frames
        })
        .collect();
    let total: usize = plans.iter().map(Vec::len).sum();
    report.section(&verify_cost(&keys, network));
    let frame_bytes = plans.first().and_then(|p| p.first()).map_or(0, Vec::len);
    report.section(&format!(
        "prepared in {:.1} s ({frame_bytes} bytes per request frame)",
        prep.elapsed().as_secs_f64()
    ));

    let d = Limits::DEFAULT;
    let limits = Limits {
        max_connections_per_ip: clients + 16,
        requests_per_ip_per_sec: 0,
        max_entries: (key_count + 1024).max(d.max_entries),
        max_entries_per_ip: key_count + 1024,
        max_entries_per_address: usize::MAX,
        pipeline_depth: pipeline.max(d.pipeline_depth),
        ..Limits::DEFAULT
    };
    let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let config = TrackerConfig::new(dir)
        .listen(listen)
        .contract(contract)
        .limits(limits);
    let tracker = Tracker::bind(config)
        .await
        .context("starting the tracker")?
        .spawn();
    let addr = tracker.local_addr();

    report.progress(&format!("sending {total} registrations…"));
    let cpu_before = procfs::cpu_time(Process::This)?;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for frames in plans {
        tasks.spawn(run_client(addr, frames, pipeline));
    }
    let mut accepted = 0usize;
    let mut refused = 0usize;
    let mut latencies = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        let (o, f, lat) = done.context("a client task failed")??;
        accepted += o;
        refused += f;
        latencies.extend(lat);
    }
    let elapsed = start.elapsed();
    let cpu = procfs::cpu_time(Process::This)?.saturating_sub(cpu_before);
    let stats = tracker.stats();
    let figures = Throughput {
        clients,
        pipeline,
        accepted,
        refused,
        elapsed,
        cpu,
        latencies: (pipeline == 1).then(|| Distribution::new(latencies)),
        load_average: procfs::load_average(),
        live_entries: stats.entries,
        registry_bytes: stats.registry_bytes as u64,
    };
    report.section(&figures.to_string());
    tracker.shutdown().await.context("stopping the tracker")?;
    if refused > 0 {
        fail!("{refused} registrations were refused");
    }
    Ok(figures)
}

/// What signature checking alone costs on one thread (batches of 1 and 64), to put the
/// end-to-end figure in context.
fn verify_cost(keys: &[(SecretKey, u64)], network: NetworkId) -> String {
    let addr = SocketAddr::from(([10, 0, 0, 1], 2222));
    let n = keys.len().min(4096);
    let regs: Vec<_> = keys[..n]
        .iter()
        .map(|k| sign_registration(network, addr, 1, std::slice::from_ref(k)))
        .collect();
    let mut lines = Vec::new();
    for batch in [1usize, 64] {
        let start = Instant::now();
        for chunk in regs.chunks(batch) {
            let mut v = tally_core::BatchVerifier::with_capacity(batch);
            for r in chunk {
                let signed = tally_proto::tracker::SignedBytes::new(
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
        lines.push(format!(
            "signature check alone, batches of {batch}: {:.1} us per signature (one thread)",
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        ));
    }
    lines.join("\n")
}

/// One bench client: with `pipeline` 1 it sends a frame and waits for its answer; with
/// more it keeps `pipeline` requests in flight as a sliding window, and whenever it has
/// read every answer already received it sends, in one write, as many new frames as it
/// got answers (so neither side makes a system call per request).
async fn run_client(
    addr: SocketAddr,
    frames: Vec<Vec<u8>>,
    pipeline: usize,
) -> Result<(usize, usize, Vec<Duration>), BenchError> {
    const SUCCESS: &[u8] = b"\"Response\":\"Success\"";
    let talking = || format!("talking to the tracker at {addr}");
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(talking)?;
    stream.set_nodelay(true).with_context(talking)?;
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
            write.write_all(&out).await.with_context(talking)?;
        }
        let len = read.read_u32().await.with_context(talking)? as usize;
        body.resize(len, 0);
        read.read_exact(&mut body).await.with_context(talking)?;
        answered += 1;
        if pipeline == 1 {
            latencies.push(sent_at.elapsed());
        }
        if body.windows(SUCCESS.len()).take(64).any(|w| w == SUCCESS) {
            ok += 1;
        } else {
            failed += 1;
            if failed == 1 {
                tracing::warn!(answer = %String::from_utf8_lossy(&body), "registration refused");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_buffered_only_when_whole() {
        assert!(!frame_buffered(&[0, 0]));
        assert!(!frame_buffered(&[0, 0, 0, 2, b'{']));
        assert!(frame_buffered(&[0, 0, 0, 2, b'{', b'}']));
        assert!(frame_buffered(&[0, 0, 0, 0]));
    }
}
