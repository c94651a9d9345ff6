//! The throughput run: lines per second across private rooms.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::child::{ChildRelay, pairs};
use super::cpu::{CpuSample, CpuUse, cpu_use};
use super::settings::Settings;
use crate::error::BenchError;

/// Lines a sender writes at once.
const BATCH: u64 = 128;

/// What the throughput run measured.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    pub lines_per_sec: f64,
    pub bytes_per_sec: f64,
    pub cpu: Option<CpuUse>,
}

struct RoomFlow {
    received: AtomicU64,
    progress: Notify,
}

/// Lines per second forwarded across `rooms` private rooms, each with one sender writing
/// as fast as its window allows and one receiver counting lines.
pub(super) async fn run(settings: &Settings, tally: &Path) -> Result<Throughput, BenchError> {
    let relay = ChildRelay::start(settings, tally).await?;
    let pairs = pairs(relay.addr, settings.rooms, "tp").await?;
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let total_bytes = Arc::new(AtomicU64::new(0));
    let line = b"<# Heartbeat 0123456789>\n";
    let block: Arc<Vec<u8>> = Arc::new(line.repeat(BATCH as usize));
    let window = settings.window.max(2 * BATCH);
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
    tokio::time::sleep(settings.warmup).await;
    let cpu0 = CpuSample::take(relay.pid);
    let (c0, b0, t0) = (
        total.load(Ordering::Relaxed),
        total_bytes.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(settings.seconds).await;
    let (c1, b1, t1) = (
        total.load(Ordering::Relaxed),
        total_bytes.load(Ordering::Relaxed),
        Instant::now(),
    );
    let cpu = cpu_use(cpu0, CpuSample::take(relay.pid));
    stop.store(true, Ordering::Relaxed);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    relay.stop();
    let dt = (t1 - t0).as_secs_f64();
    Ok(Throughput {
        lines_per_sec: (c1 - c0) as f64 / dt,
        bytes_per_sec: (b1 - b0) as f64 / dt,
        cpu,
    })
}
