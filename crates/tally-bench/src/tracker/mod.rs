//! `tally bench tracker`: signed registrations per second through an in-process tracker,
//! and the memory a `tally tracker` process needs per live entry.

mod memory;
mod throughput;

use std::path::{Path, PathBuf};

use tally_core::{Amount, Mode, NetworkContract, SecretKey, ValidatorInfo};

pub use memory::EntryMemory;
pub use throughput::Throughput;

use crate::error::BenchError;
use crate::process::{Existing, WorkDir, cores};
use crate::report::Report;

/// What `tally bench tracker` measures, and how much of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Concurrent clients, one connection each.
    pub clients: usize,
    /// Signed registrations to time (each key re-registers `rounds` times); 0 skips the
    /// throughput run.
    pub registrations: usize,
    /// Registrations per key.
    pub rounds: usize,
    /// Requests each client keeps in flight (1: one at a time, waiting for each answer).
    pub pipeline: usize,
    /// Live entries for the memory measurement (0 skips it).
    pub entries: usize,
    /// Folder for the benchmark's databases; `None`: a fresh one under the temporary
    /// folder, removed afterwards.
    pub dir: Option<PathBuf>,
}

impl Settings {
    /// The figures BENCHMARKS.md records are taken with these unless it says otherwise.
    pub const DEFAULT: Settings = Settings {
        clients: 64,
        registrations: 200_000,
        rounds: 4,
        pipeline: 16,
        entries: 1_000_000,
        dir: None,
    };
}

impl Default for Settings {
    fn default() -> Self {
        Settings::DEFAULT
    }
}

/// Everything one invocation measured (a run not asked for is absent).
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub throughput: Option<Throughput>,
    pub memory: Option<EntryMemory>,
}

/// Runs the benchmark, with `tally` (the path of the `tally` executable) as the tracker
/// process whose memory is measured.
pub async fn run(
    settings: &Settings,
    tally: &Path,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    let root = WorkDir::new(settings.dir.as_deref(), Existing::Reuse, "tracker", false)?;
    report.section(&format!("tally bench tracker: {} cores", cores().max(1)));
    let mut figures = Figures::default();
    if settings.registrations > 0 {
        figures.throughput =
            Some(throughput::run(settings, &root.path().join("throughput"), report).await?);
    }
    if settings.entries > 0 {
        figures.memory =
            Some(memory::run(settings, &root.path().join("memory"), tally, report).await?);
    }
    Ok(figures)
}

/// The bench's network.
fn bench_contract() -> NetworkContract {
    NetworkContract {
        name: "bench".into(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: Amount::from_microcash(10_000_000),
        // The tracker checks one hash per key whatever the difficulty; a low one keeps
        // the bench's own key generation short.
        intro_pow_bits: 4,
        validators: vec![ValidatorInfo {
            key: SecretKey::from_bytes([1; 32]).account(),
            address: "127.0.0.1:2222".into(),
        }],
        tracker: None,
        genesis: vec![],
        pow: None,
    }
}

/// KiB (as /proc reports them) to MB (10^6 bytes).
fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}
