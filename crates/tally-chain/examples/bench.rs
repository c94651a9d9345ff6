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
        println!(
            "{}",
            tally_chain::bench::bench_mine(Duration::from_secs(3), threads)
        );
    }
    if which == "all" || which == "sync" {
        let dir = std::env::temp_dir().join(format!("tally-bench-{}", std::process::id()));
        let result = tally_chain::bench::bench_sync(&dir, blocks, 5_000);
        let _ = std::fs::remove_dir_all(&dir);
        println!("{}", result?);
    }
    Ok(())
}
