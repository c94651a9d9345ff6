//! Where the CPU went during a relay run: the relay, the bench, other processes, and the
//! hypervisor's steal.

use std::fmt;
use std::time::{Duration, Instant};

use crate::procfs::{self, MachineCpu, Process};

/// CPU time counters at one moment.
#[derive(Clone, Copy, Debug)]
pub(super) struct CpuSample {
    at: Instant,
    machine: MachineCpu,
    bench: Duration,
    relay: Duration,
}

impl CpuSample {
    /// The counters now, with the relay's (process `relay_pid`); `None` without `/proc`.
    pub(super) fn take(relay_pid: u32) -> Option<CpuSample> {
        Some(CpuSample {
            at: Instant::now(),
            machine: procfs::machine_cpu().ok()?,
            bench: procfs::cpu_time(Process::This).ok()?,
            relay: procfs::cpu_time(Process::Id(relay_pid)).ok()?,
        })
    }
}

/// Where the CPU went between two samples, in percent of one core.
#[derive(Clone, Copy, Debug)]
pub struct CpuUse {
    pub relay: f64,
    pub bench: f64,
    pub others: f64,
    /// Time the hypervisor gave the virtual CPUs' host threads to someone else while they
    /// had work: nothing on this machine runs then, the relay and the bench included.
    pub stolen: f64,
}

impl CpuUse {
    /// Steal above this disturbs a latency run enough that its tail is the host's, not the
    /// relay's (1 % of a core is 10 ms a second, the size of a whole p99 budget).
    pub const DISTURBED_STEAL: f64 = 1.0;

    pub(super) fn between(a: &CpuSample, b: &CpuSample) -> CpuUse {
        let secs = (b.at - a.at).as_secs_f64().max(1e-9);
        let pct = |time: Duration| 100.0 * time.as_secs_f64() / secs;
        let relay = b.relay.saturating_sub(a.relay);
        let bench = b.bench.saturating_sub(a.bench);
        let others = b
            .machine
            .busy
            .saturating_sub(a.machine.busy)
            .saturating_sub(relay + bench);
        CpuUse {
            relay: pct(relay),
            bench: pct(bench),
            others: pct(others),
            stolen: pct(b.machine.steal.saturating_sub(a.machine.steal)),
        }
    }

    /// Whether the hypervisor stole enough to decide a latency run's tail.
    pub fn disturbed(&self) -> bool {
        self.stolen >= Self::DISTURBED_STEAL
    }
}

impl fmt::Display for CpuUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CPU in % of one core: relay {:.0}, bench client {:.0}, other processes {:.0}, \
             stolen by the hypervisor {:.1}",
            self.relay, self.bench, self.others, self.stolen
        )
    }
}

/// The CPU use between two samples, if both were taken.
pub(super) fn cpu_use(a: Option<CpuSample>, b: Option<CpuSample>) -> Option<CpuUse> {
    Some(CpuUse::between(&a?, &b?))
}

/// How a run's CPU use reads in the report.
pub(super) fn cpu_text(cpu: Option<CpuUse>) -> String {
    cpu.map_or_else(
        || "CPU use unknown (no /proc)".to_owned(),
        |c| c.to_string(),
    )
}
