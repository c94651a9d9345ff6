//! What a tracker run measures, and the network it registers in.

use std::path::PathBuf;

use tally_core::{Amount, Mode, NetworkContract, SecretKey, ValidatorInfo};

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

/// The bench's network.
pub(super) fn bench_contract() -> NetworkContract {
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
        max_clock_skew_ms: None,
    }
}
