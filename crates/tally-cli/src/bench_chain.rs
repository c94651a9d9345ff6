//! `tally bench mine` and `tally bench sync`: the proof-of-work chain benchmarks.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// `tally bench mine`
#[derive(Args)]
pub struct BenchMineArgs {
    /// Seconds per measurement (three measurements).
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Threads for the multi-threaded figure (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `tally bench sync`
#[derive(Args)]
pub struct BenchSyncArgs {
    /// Blocks to validate and store.
    #[arg(long, default_value_t = 20)]
    pub blocks: usize,
    /// Transfers per block.
    #[arg(long, default_value_t = 5_000)]
    pub transfers: usize,
    /// Folder for the benchmark's chain database (default: a temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Miner hashes per second per thread beside raw SHA-256d of the same header.
pub fn bench_mine(args: &BenchMineArgs) -> anyhow::Result<()> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let m = tally_chain::bench::bench_mine(Duration::from_secs(args.seconds.max(1)), threads);
    println!("{m}");
    print_load();
    Ok(())
}

/// Validates and stores pre-generated blocks of transfers, as a syncing node does.
pub fn bench_sync(args: &BenchSyncArgs) -> anyhow::Result<()> {
    let temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = std::env::temp_dir().join(format!("tally-bench-sync-{}", std::process::id()));
            temp
        }
    };
    eprintln!(
        "generating {} blocks of {} signed transfers…",
        args.blocks, args.transfers
    );
    let result = tally_chain::bench::bench_sync(&dir, args.blocks, args.transfers);
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("{}", result?);
    print_load();
    Ok(())
}

fn print_load() {
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average: {}", load.trim());
    }
}
