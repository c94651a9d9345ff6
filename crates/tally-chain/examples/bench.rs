//! Prints the figures of `tally bench mine` and `tally bench sync`.
//!
//! `cargo run --release -p tally-chain --example bench [-- mine|sync] [--blocks N]`

use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("all");
    let blocks = args
        .iter()
        .position(|a| a == "--blocks")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20usize);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if which == "all" || which == "mine" {
        let m = tally_chain::bench::bench_mine(Duration::from_secs(3), threads);
        println!(
            "mine: raw SHA-256d (64-byte midstate reused), 1 thread: {:>12.0} H/s",
            m.raw_sha256d_per_sec
        );
        println!(
            "mine: miner, 1 thread:                             {:>12.0} H/s ({:.0}% of raw)",
            m.miner_per_thread_per_sec,
            100.0 * m.ratio()
        );
        println!(
            "mine: miner, {} threads:                            {:>12.0} H/s",
            m.threads, m.miner_total_per_sec
        );
    }
    if which == "all" || which == "sync" {
        let dir = std::env::temp_dir().join(format!("tally-bench-{}", std::process::id()));
        let s = tally_chain::bench::bench_sync(&dir, blocks, 5_000)?;
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "sync: {} blocks x {} transfers in {:.2} s: {:.0} transfers/s, {:.1} ms/block (generating took {:.1} s)",
            s.blocks,
            s.transfers / s.blocks.max(1),
            s.sync_seconds,
            s.transfers_per_sec(),
            s.ms_per_block(),
            s.generate_seconds
        );
    }
    Ok(())
}
