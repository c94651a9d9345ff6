//! The memory run: a `tally tracker` process loading many live entries.

use std::fmt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tally_core::{AccountId, NetworkId, sha256};
use tally_tracker::registry::{Entry, ip_bytes};
use tally_tracker::store::Store;
use tally_tracker::{ClientConfig, TrackerClient, now_ms};

use super::settings::{Settings, bench_contract};
use crate::error::{BenchError, Context};
use crate::process::Daemon;
use crate::procfs::Memory;
use crate::report::Report;

/// How long a tracker child may take to load its entries and listen.
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// What the memory run measured.
#[derive(Clone, Debug)]
pub struct EntryMemory {
    pub entries: usize,
    /// The tracker process holding `entries` live entries.
    pub full: Memory,
    /// The tracker process holding none.
    pub empty: Memory,
    /// From starting the full tracker to its listening.
    pub load: Duration,
    /// Peers a LIST returned from the full tracker (proof that the entries are served).
    pub listed: usize,
}

impl EntryMemory {
    /// Resident bytes per entry above the empty tracker.
    pub fn bytes_per_entry(&self) -> f64 {
        (self
            .full
            .resident_kib
            .saturating_sub(self.empty.resident_kib) as f64
            * 1024.0)
            / self.entries as f64
    }
}

impl fmt::Display for EntryMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memory: tracker process with {} live entries: RSS {:.1} MB (peak {:.1} MB); empty tracker {:.1} MB; {:.0} bytes per entry; loaded and listening in {:.1} s; LIST returned {} peers",
            self.entries,
            mb(self.full.resident_kib),
            mb(self.full.peak_kib),
            mb(self.empty.resident_kib),
            self.bytes_per_entry(),
            self.load.as_secs_f64(),
            self.listed
        )
    }
}

/// KiB (as /proc reports them) to MB (10^6 bytes).
fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// Starts `tally tracker` as a child on `dir` and returns it once it listens.
async fn start_tracker(
    tally: &Path,
    dir: &Path,
    contract: &Path,
    max_entries: usize,
) -> Result<(Daemon, std::net::SocketAddr), BenchError> {
    let mut command = Command::new(tally);
    command
        .args(["tracker", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .arg("--contract")
        .arg(contract)
        .args(["--max-entries", &max_entries.to_string()]);
    let (daemon, line) = Daemon::start(
        command,
        "tracker child",
        "tracker listening on ",
        None,
        START_TIMEOUT,
    )
    .await?;
    let addr = line
        .trim()
        .parse()
        .with_context(|| format!("the tracker child's address {line:?}"))?;
    Ok((daemon, addr))
}

pub(super) async fn run(
    settings: &Settings,
    dir: &Path,
    tally: &Path,
    report: &dyn Report,
) -> Result<EntryMemory, BenchError> {
    let contract = bench_contract();
    let network: NetworkId = contract.id();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let contract_file = dir.join("bench-contract.json");
    std::fs::write(&contract_file, contract.to_pretty_json())
        .with_context(|| format!("writing {}", contract_file.display()))?;
    let max_entries = settings.entries + 1024;

    // A tracker with nothing stored, for the baseline.
    let (tracker, _) =
        start_tracker(tally, &dir.join("empty"), &contract_file, max_entries).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let empty = tracker.memory()?;
    drop(tracker);

    report.progress(&format!(
        "writing {} live entries to a tracker database...",
        settings.entries
    ));
    let full = dir.join("full");
    let write_start = Instant::now();
    write_entries(&full, network, settings.entries)?;
    report.section(&format!(
        "written in {:.1} s",
        write_start.elapsed().as_secs_f64()
    ));

    let load_start = Instant::now();
    let (tracker, addr) = start_tracker(tally, &full, &contract_file, max_entries).await?;
    let load = load_start.elapsed();
    // Show that the entries are live and served.
    let client = TrackerClient::new(addr.to_string(), ClientConfig::default());
    let peers = client
        .peers(network, Some(64))
        .await
        .context("listing the loaded tracker's peers")?;
    let memory = EntryMemory {
        entries: settings.entries,
        full: tracker.memory()?,
        empty,
        load,
        listed: peers.len(),
    };
    drop(tracker);
    report.section(&memory.to_string());
    Ok(memory)
}

/// Writes `entries` live registrations into the tracker database in `dir`, as a tracker
/// stores them, in commits of 100,000.
fn write_entries(dir: &Path, network: NetworkId, entries: usize) -> Result<(), BenchError> {
    let writing = || format!("writing the tracker database in {}", dir.display());
    let mut store = Store::open(dir, 64 * 1024 * 1024).with_context(writing)?;
    let now = now_ms();
    let mut done = 0usize;
    while done < entries {
        let n = (entries - done).min(100_000);
        let rows: Vec<(NetworkId, Entry)> = (done..done + n)
            .map(|i| {
                let seed = sha256(&[b"bench-entry", &(i as u64).to_be_bytes()]);
                let account = AccountId::from(*seed.as_bytes());
                let ip = std::net::IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
                (
                    network,
                    Entry {
                        account,
                        ip: ip_bytes(ip),
                        source: ip_bytes(ip),
                        proof_of_work: i as u64,
                        timestamp: now,
                        seen: now,
                        port: 2222,
                    },
                )
            })
            .collect();
        store.commit(&rows, None).with_context(writing)?;
        done += n;
    }
    Ok(())
}
