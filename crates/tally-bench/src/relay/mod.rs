//! `tally bench relay`: lines per second across private rooms, forwarding latency at a
//! fixed rate, and memory per idle connection, each judged against its target.
//!
//! The relay runs as a child process (`tally relay` from the same binary) so that its
//! memory and CPU are its own; the bench's clients run in this process, on the same
//! machine, over loopback.

mod child;
mod cpu;
mod latency;
mod memory;
mod settings;
mod throughput;

use std::path::Path;

pub use cpu::CpuUse;
pub use latency::Latency;
pub use memory::IdleMemory;
pub use settings::{Runs, Settings};
pub use throughput::Throughput;

use crate::error::BenchError;
use crate::process::cores;
use crate::procfs;
use crate::report::Report;

/// Everything one invocation measured (a run not asked for is absent).
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub throughput: Option<Throughput>,
    pub latency: Vec<Latency>,
    pub floor: Option<Latency>,
    pub memory: Option<IdleMemory>,
}

/// The p99 target of the latency run, in milliseconds.
const P99_TARGET_MS: f64 = 2.0;

/// Runs the benchmark with `tally` (the path of the `tally` executable) as the relay,
/// reporting each run as it ends.
pub async fn run(
    settings: &Settings,
    tally: &Path,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    let cores = cores();
    report.section(&format!(
        "tally bench relay: relay = child process `tally relay --threads {} --busy-poll {}us` ({}), \
         bench clients in this process, loopback, {cores} cores shared",
        settings.relay_threads,
        settings.relay_busy_poll.as_micros(),
        match settings.relay_threads {
            0 => format!("tokio multi-thread, {cores} workers"),
            1 => "tokio single-thread".to_owned(),
            n => format!("tokio multi-thread, {n} workers"),
        }
    ));
    let mut figures = Figures::default();
    if settings.runs.throughput {
        report.progress("measuring throughput…");
        let measured = throughput::run(settings, tally).await?;
        report.section(&format!(
            "throughput: {} private rooms, 1 sender + 1 receiver each, {:.1} s: {:.0} lines/s \
             ({:.1} MB/s delivered) [target >= 500000 lines/s: {}]\n  {}",
            settings.rooms,
            settings.seconds.as_secs_f64(),
            measured.lines_per_sec,
            measured.bytes_per_sec / 1e6,
            if measured.lines_per_sec >= 500_000.0 {
                "met"
            } else {
                "MISSED"
            },
            cpu::cpu_text(measured.cpu)
        ));
        figures.throughput = Some(measured);
    }
    if settings.runs.latency {
        latency_runs(settings, tally, report, &mut figures).await?;
    }
    if settings.runs.memory {
        report.progress(&format!("joining {} idle connections…", settings.idle));
        let memory = memory::run(settings, tally).await?;
        let delta = memory.after.saturating_sub(memory.before);
        report.section(&format!(
            "memory: {} idle joined connections ({} private rooms): relay RSS {:.1} MB before, \
             {:.1} MB with them (+{:.1} MB, {:.0} bytes per connection) [target < 150 MB: {}]",
            settings.idle,
            settings.idle.div_ceil(2),
            memory.before as f64 / 1e6,
            memory.after as f64 / 1e6,
            delta as f64 / 1e6,
            delta as f64 / settings.idle.max(1) as f64,
            if memory.after < 150_000_000 {
                "met"
            } else {
                "MISSED"
            }
        ));
        figures.memory = Some(memory);
    }
    Ok(figures)
}

/// The latency runs, their summary against the target, and the measurer's floor.
async fn latency_runs(
    settings: &Settings,
    tally: &Path,
    report: &dyn Report,
    figures: &mut Figures,
) -> Result<(), BenchError> {
    if settings.latency_runs == 0 {
        return Err(BenchError::Settings(
            "--latency-runs must be at least 1".into(),
        ));
    }
    let (mut all, mut calm) = (Vec::new(), Vec::new());
    for run in 1..=settings.latency_runs {
        report.progress(&format!(
            "measuring latency, run {run}/{}…",
            settings.latency_runs
        ));
        let latency = latency::through_relay(settings, tally).await?;
        let p99 = latency.samples.millis(99.0);
        let host_busy = latency.cpu.is_some_and(|c| c.disturbed());
        report.section(&format!(
            "latency run {run}/{}: {} private rooms, {} lines/s target ({:.0} achieved), {} \
             [p99 < 2 ms: {}]{}\n  {}",
            settings.latency_runs,
            settings.rooms,
            settings.latency_rate,
            latency.achieved_rate,
            distribution(&latency),
            if p99 < P99_TARGET_MS { "met" } else { "MISSED" },
            if host_busy {
                " (disturbed: the hypervisor took the CPU)"
            } else {
                ""
            },
            cpu::cpu_text(latency.cpu)
        ));
        all.push(p99);
        if !host_busy {
            calm.push(p99);
        }
        figures.latency.push(latency);
    }
    let mut summary = format!(
        "latency: p99 by run {}; of the runs the hypervisor left alone (steal < {} % of a \
         core): {}",
        p99_list(&mut all),
        CpuUse::DISTURBED_STEAL,
        p99_list(&mut calm),
    );
    let median = all[all.len() / 2];
    summary.push_str(&format!(
        "\n  median p99 of all {} runs: {median:.3} ms [target p99 < 2 ms: {}]{}",
        all.len(),
        if median < P99_TARGET_MS {
            "met"
        } else {
            "MISSED"
        },
        match calm.get(calm.len() / 2) {
            Some(calm_median) => format!("; of the undisturbed runs: {calm_median:.3} ms"),
            None => "; every run was disturbed, run again when the host is quieter".to_owned(),
        }
    ));
    report.section(&summary);
    report.progress("measuring the measurer's own floor…");
    let floor = latency::floor(settings).await?;
    report.section(&format!(
        "  the same measuring thread over direct loopback connections, no relay: {} \
         (its own delay and the machine's)\n  load average at the end: {}",
        distribution(&floor),
        procfs::load_average()
    ));
    figures.floor = Some(floor);
    Ok(())
}

/// Sorts p99 figures (ms) and lists them, or says there are none.
fn p99_list(p99s: &mut [f64]) -> String {
    if p99s.is_empty() {
        return "none".to_owned();
    }
    p99s.sort_by(f64::total_cmp);
    let shown: Vec<String> = p99s.iter().map(|p| format!("{p:.3}")).collect();
    format!("{} ms", shown.join(", "))
}

/// Sample count and percentiles of a run's latencies, in milliseconds.
fn distribution(latency: &Latency) -> String {
    let samples = &latency.samples;
    format!(
        "{} samples: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        samples.len(),
        samples.millis(50.0),
        samples.millis(90.0),
        samples.millis(99.0),
        samples.millis(99.9),
        samples.millis(100.0),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn p99_lists_sort_and_say_none() {
        assert_eq!(p99_list(&mut []), "none");
        assert_eq!(p99_list(&mut [2.5, 0.25]), "0.250, 2.500 ms");
    }
}
