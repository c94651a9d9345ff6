//! `tally bench mine`: the miner's hashes per second beside the raw SHA-256d rate of the
//! same header.
//!
//! Rates are `f64` for display only; nothing here feeds consensus.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tally_chain::block::{HEADER_VERSION, NONCE_OFFSET};
use tally_chain::{BlockHeader, U256, miner};
use tally_core::{NetworkId, sha256};

use crate::procfs;
use crate::report::Report;

/// What `tally bench mine` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Length of each of the three measurements.
    pub duration: Duration,
    /// Threads for the multi-threaded figure.
    pub threads: usize,
}

impl Settings {
    /// Three seconds per measurement, every core.
    pub fn for_this_machine() -> Settings {
        Settings {
            duration: Duration::from_secs(3),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// Figures of the mining benchmark.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// Threads used for the multi-threaded figure.
    pub threads: usize,
    /// SHA-256d of the same 156-byte header per second on one thread, done the plain way
    /// with the state after the first 64 bytes reused (clone, update the other 92 bytes,
    /// finalise, hash again): the yardstick.
    pub raw_sha256d_per_sec: f64,
    /// The miner's hashes per second on one thread.
    pub miner_per_thread_per_sec: f64,
    /// The miner's hashes per second on `threads` threads.
    pub miner_total_per_sec: f64,
}

impl Figures {
    /// Miner per thread ÷ raw SHA-256d: the target is at least 0.9.
    pub fn ratio(&self) -> f64 {
        self.miner_per_thread_per_sec / self.raw_sha256d_per_sec.max(f64::MIN_POSITIVE)
    }
}

/// The report: one line per figure, with the target.
impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "raw SHA-256d (64-byte midstate reused), 1 thread: {:>12.0} H/s",
            self.raw_sha256d_per_sec
        )?;
        writeln!(
            f,
            "miner, 1 thread:                                  {:>12.0} H/s ({:.0}% of raw; target >= 90%)",
            self.miner_per_thread_per_sec,
            100.0 * self.ratio()
        )?;
        write!(
            f,
            "miner, {} threads:                                 {:>12.0} H/s",
            self.threads, self.miner_total_per_sec
        )
    }
}

fn bench_header() -> BlockHeader {
    BlockHeader {
        version: HEADER_VERSION,
        network: NetworkId(sha256(&[b"bench"])),
        height: 1,
        previous: sha256(&[b"previous"]),
        merkle_root: sha256(&[b"merkle"]),
        timestamp_ms: 1_700_000_000_000,
        // No hash meets a zero target: the search never stops early.
        target: U256::ZERO,
        nonce: 0,
    }
}

/// Measures raw SHA-256d and the miner, each for about `settings.duration`, and reports
/// the figures with the load average (the machine may be shared).
pub fn run(settings: Settings, report: &dyn Report) -> Figures {
    let header = bench_header();
    let threads = settings.threads.max(1);
    report.progress("hashing: raw SHA-256d, then the miner on 1 thread…");
    let raw = raw_sha256d_rate(&header, settings.duration);
    let one = miner_rate(&header, 1, settings.duration);
    report.progress(&format!("hashing: the miner on {threads} threads…"));
    let all = miner_rate(&header, threads, settings.duration);
    let figures = Figures {
        threads,
        raw_sha256d_per_sec: raw,
        miner_per_thread_per_sec: one,
        miner_total_per_sec: all,
    };
    report.section(&figures.to_string());
    report.section(&format!("load average: {}", procfs::load_average()));
    figures
}

fn raw_sha256d_rate(header: &BlockHeader, duration: Duration) -> f64 {
    let bytes = header.encode();
    let mut midstate = Sha256::new();
    midstate.update(&bytes[..64]);
    let mut tail = [0u8; 92];
    tail.copy_from_slice(&bytes[64..]);
    let start = Instant::now();
    let mut nonce = 0u64;
    let mut sink = 0u8;
    while start.elapsed() < duration {
        for _ in 0..miner::BATCH {
            tail[NONCE_OFFSET - 64..].copy_from_slice(&nonce.to_le_bytes());
            let mut hasher = midstate.clone();
            hasher.update(tail);
            let first = hasher.finalize();
            let second = Sha256::digest(first);
            sink ^= second[0];
            nonce += 1;
        }
    }
    std::hint::black_box(sink);
    nonce as f64 / start.elapsed().as_secs_f64()
}

fn miner_rate(header: &BlockHeader, threads: usize, duration: Duration) -> f64 {
    let stop = AtomicBool::new(false);
    let hashes = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(duration);
            stop.store(true, Ordering::Relaxed);
        });
        miner::mine(header, threads, &stop, &hashes);
    });
    hashes.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Transcript;

    #[test]
    fn a_short_run_counts_hashes_of_both_kinds() {
        let transcript = Transcript::default();
        let figures = run(
            Settings {
                duration: Duration::from_millis(20),
                threads: 2,
            },
            &transcript,
        );
        assert_eq!(figures.threads, 2);
        assert!(figures.raw_sha256d_per_sec > 0.0);
        assert!(figures.miner_per_thread_per_sec > 0.0);
        assert!(figures.miner_total_per_sec > 0.0);
        let sections = transcript.sections();
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0], figures.to_string());
        assert_eq!(sections[0].lines().count(), 3);
        assert!(sections[0].contains("% of raw; target >= 90%"));
        assert!(sections[1].starts_with("load average: "));
    }
}
