//! What a relay run measures.

use std::time::Duration;

use crate::error::BenchError;

/// Which of the three runs to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runs {
    pub throughput: bool,
    pub latency: bool,
    pub memory: bool,
}

impl Runs {
    /// All three.
    pub const ALL: Runs = Runs {
        throughput: true,
        latency: true,
        memory: true,
    };

    /// The runs named (`throughput`, `latency`, `memory`); all three when none is.
    pub fn named<S: AsRef<str>>(names: &[S]) -> Result<Runs, BenchError> {
        if names.is_empty() {
            return Ok(Runs::ALL);
        }
        let mut runs = Runs {
            throughput: false,
            latency: false,
            memory: false,
        };
        for name in names {
            match name.as_ref() {
                "throughput" => runs.throughput = true,
                "latency" => runs.latency = true,
                "memory" => runs.memory = true,
                other => {
                    return Err(BenchError::Settings(format!(
                        "unknown run {other:?}: use throughput, latency or memory"
                    )));
                }
            }
        }
        Ok(runs)
    }
}

/// What `tally bench relay` measures, and how much of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Private rooms for the throughput and latency runs (one sender, one receiver each).
    pub rooms: usize,
    /// Time measured in the throughput run (after the warm-up).
    pub seconds: Duration,
    /// Warm-up before each measurement.
    pub warmup: Duration,
    /// Lines each sender may have in flight in the throughput run (keeps every receiver's
    /// queue far below the relay's limit: a relay never slows a sender down, it drops
    /// receivers that fall behind).
    pub window: u64,
    /// Aggregate lines per second in the latency run.
    pub latency_rate: u64,
    /// Time measured in each latency run.
    pub latency_seconds: Duration,
    /// Latency runs, each with a fresh relay; the target is judged on their median p99.
    pub latency_runs: usize,
    /// Idle joined connections in the memory run.
    pub idle: usize,
    /// The relay child's `--threads`.
    pub relay_threads: usize,
    /// The relay child's `--busy-poll` (zero is off).
    pub relay_busy_poll: Duration,
    pub runs: Runs,
}

impl Settings {
    /// The figures BENCHMARKS.md records are taken with these unless it says otherwise.
    pub const DEFAULT: Settings = Settings {
        rooms: 100,
        seconds: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        window: 4096,
        latency_rate: 20_000,
        latency_seconds: Duration::from_secs(5),
        latency_runs: 5,
        idle: 10_000,
        relay_threads: 0,
        relay_busy_poll: Duration::ZERO,
        runs: Runs::ALL,
    };
}

impl Default for Settings {
    fn default() -> Self {
        Settings::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn runs_are_named_or_all() {
        assert_eq!(Runs::named::<&str>(&[]).unwrap(), Runs::ALL);
        let latency = Runs::named(&["latency"]).unwrap();
        assert!(latency.latency && !latency.throughput && !latency.memory);
        let error = Runs::named(&["speed"]).unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown run \"speed\": use throughput, latency or memory"
        );
    }
}
