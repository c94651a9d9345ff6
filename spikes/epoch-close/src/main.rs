//! `cargo run --release -- [SEEDS]`: runs every scenario over SEEDS seeds (default 100) and
//! prints the figures README.md quotes.

use std::time::Instant;

use epoch_close_spike::sim::{run, Crash, N};

/// A scenario: its name, and what it does to seed s (who crashes, whether one is cut off).
type Scenario = (&'static str, fn(u64) -> (Crash, bool));

fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let scenarios: [Scenario; 4] = [
        ("all four up", |_| (Crash::None, false)),
        ("one silent from the start", |s| {
            (Crash::Silent((s % N as u64) as usize), false)
        }),
        ("one crashes mid-run", |s| {
            (
                Crash::At((s % N as u64) as usize, 20 + (s * 37) % 400),
                false,
            )
        }),
        ("all up, one cut off for a while", |_| (Crash::None, true)),
    ];
    let mut failed = 0;
    for (name, setup) in scenarios {
        let started = Instant::now();
        let mut times = Vec::new();
        let mut rounds = Vec::new();
        let (mut sent, mut dropped, mut errors, mut ok, mut synced) = (0, 0, 0, 0, 0);
        for seed in 0..seeds {
            let (crash, partition) = setup(seed);
            let out = run(seed, crash, partition);
            sent += out.sent;
            dropped += out.dropped;
            errors += out.errors;
            synced += out.synced;
            match out.check() {
                Ok(_) => {
                    ok += 1;
                    let last = out
                        .decisions
                        .iter()
                        .flatten()
                        .map(|d| d.1)
                        .max()
                        .unwrap_or(0);
                    times.push(last);
                    rounds.push(out.max_round);
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("FAIL {e} ({:?}, {:?})", out.crash, out.faults);
                }
            }
        }
        times.sort_unstable();
        rounds.sort_unstable();
        let pct = |v: &[u64], p: usize| {
            v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        println!(
            "{name}: {ok}/{seeds} seeds agreed; simulated ms to last decision p50 {} p90 {} max {}; \
             highest round p50 {} max {}; {sent} messages sent, {dropped} lost; {synced} decisions by value sync; {errors} inputs refused; wall {:.2} s",
            pct(&times, 50),
            pct(&times, 90),
            times.last().copied().unwrap_or(0),
            rounds.get(rounds.len() / 2).copied().unwrap_or(0),
            rounds.last().copied().unwrap_or(0),
            started.elapsed().as_secs_f64()
        );
    }
    if failed > 0 {
        eprintln!("{failed} runs failed");
        std::process::exit(1);
    }
}
