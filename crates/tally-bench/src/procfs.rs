//! The one reader of Linux's `/proc` for every benchmark: a process's memory and CPU time,
//! the machine's CPU time and steal, its load average and CPU pressure, and the open-files
//! limit.
//!
//! Figures from a shared machine mean little without these, and each benchmark used to
//! parse them its own way. Parsing is separate from reading so that it is tested on fixed
//! text; on a system without `/proc` the readers fail (or answer `None` or "unknown"), and
//! the benchmarks say so instead of printing a figure.

use std::path::PathBuf;
use std::time::Duration;

/// Clock ticks per second in `/proc/*/stat` and `/proc/stat` (`USER_HZ`, 100 on Linux).
pub const TICKS_PER_SECOND: u64 = 100;

/// Which process to read: this one (`/proc/self`) or another by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    /// The benchmark's own process.
    This,
    /// A child (a daemon under measurement) by process id.
    Id(u32),
}

impl Process {
    fn file(self, name: &str) -> PathBuf {
        match self {
            Process::This => PathBuf::from(format!("/proc/self/{name}")),
            Process::Id(pid) => PathBuf::from(format!("/proc/{pid}/{name}")),
        }
    }
}

/// Why a `/proc` file gave no figure.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be read (no `/proc`: not Linux; or the process is gone).
    #[error("reading {} (the figure needs Linux's /proc)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but holds no such field.
    #[error("{} has no {field}", path.display())]
    Missing { path: PathBuf, field: &'static str },
}

fn read(path: PathBuf) -> Result<(String, PathBuf), ProcError> {
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, path)),
        Err(source) => Err(ProcError::Read { path, source }),
    }
}

/// A process's resident set and its peak (`VmRSS`, `VmHWM` of `/proc/PID/status`), in KiB
/// as the kernel reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    pub resident_kib: u64,
    pub peak_kib: u64,
}

impl Memory {
    /// The resident set in bytes.
    pub fn resident_bytes(&self) -> u64 {
        self.resident_kib.saturating_mul(1024)
    }
}

/// The resident set and its peak of `process`.
pub fn memory(process: Process) -> Result<Memory, ProcError> {
    let (status, path) = read(process.file("status"))?;
    let field = |name: &'static str| {
        status_field(&status, name).ok_or_else(|| ProcError::Missing {
            path: path.clone(),
            field: name,
        })
    };
    Ok(Memory {
        resident_kib: field("VmRSS")?,
        peak_kib: field("VmHWM")?,
    })
}

/// The number in a `Name:   1234 kB` line of `/proc/PID/status`.
fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// User plus system CPU time `process` has used, all its threads together.
pub fn cpu_time(process: Process) -> Result<Duration, ProcError> {
    let (stat, path) = read(process.file("stat"))?;
    let ticks = process_ticks(&stat).ok_or(ProcError::Missing {
        path,
        field: "utime and stime",
    })?;
    Ok(ticks_to_duration(ticks))
}

/// `utime + stime` of a `/proc/PID/stat` line, in ticks. The fields after the command name
/// (which may hold spaces and parentheses) start after its last `)`; utime and stime are
/// fields 14 and 15 of the line, 12th and 13th after the name.
fn process_ticks(stat: &str) -> Option<u64> {
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks.saturating_mul(1000 / TICKS_PER_SECOND))
}

/// CPU time of the whole machine since boot (`/proc/stat`, all cores added up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineCpu {
    /// Time spent running anything: user, nice, system, irq and softirq.
    pub busy: Duration,
    /// Time the hypervisor ran something else while a virtual CPU wanted to run: nothing
    /// on this machine runs then, the benchmark included.
    pub steal: Duration,
}

/// The machine's CPU time so far.
pub fn machine_cpu() -> Result<MachineCpu, ProcError> {
    let (stat, path) = read(PathBuf::from("/proc/stat"))?;
    parse_machine_cpu(&stat).ok_or(ProcError::Missing {
        path,
        field: "the cpu line",
    })
}

fn parse_machine_cpu(stat: &str) -> Option<MachineCpu> {
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal …
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?;
    Some(MachineCpu {
        busy: ticks_to_duration(busy),
        steal: ticks_to_duration(*v.get(7)?),
    })
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), as the kernel writes them, or
/// "unknown".
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| parse_load_average(&text))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn parse_load_average(text: &str) -> Option<String> {
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(" "))
}

/// `avg10=…% avg60=…%` of the `some` line of `/proc/pressure/cpu`: how much runnable work
/// waited for a core (other programs on a shared machine show up here).
pub fn cpu_pressure() -> Option<String> {
    parse_cpu_pressure(&std::fs::read_to_string("/proc/pressure/cpu").ok()?)
}

fn parse_cpu_pressure(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    Some(
        line.split_whitespace()
            .filter(|w| w.starts_with("avg10=") || w.starts_with("avg60="))
            .map(|w| format!("{w}%"))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// This process's soft limit on open files (`/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    parse_open_files_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

fn parse_open_files_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn status_fields_are_found_by_exact_name() {
        let status = "Name:\ttally\nVmHWMX:\t1 kB\nVmHWM:\t  277000 kB\nVmRSS:\t  167600 kB\n";
        assert_eq!(status_field(status, "VmRSS"), Some(167_600));
        assert_eq!(status_field(status, "VmHWM"), Some(277_000));
        assert_eq!(status_field(status, "VmSwap"), None);
    }

    #[test]
    fn process_ticks_skip_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (tally (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(process_ticks(stat), Some(325));
        assert_eq!(ticks_to_duration(325), Duration::from_millis(3250));
        assert_eq!(process_ticks("4242 (tally) S 1 2"), None);
    }

    #[test]
    fn machine_cpu_counts_busy_fields_and_steal() {
        let stat = "cpu  100 2 30 9000 50 4 6 7 0 0\ncpu0 50 1 15 4500 25 2 3 3 0 0\n";
        let cpu = parse_machine_cpu(stat).unwrap();
        assert_eq!(cpu.busy, ticks_to_duration(100 + 2 + 30 + 4 + 6));
        assert_eq!(cpu.steal, ticks_to_duration(7));
        assert_eq!(parse_machine_cpu("intr 1 2 3\n"), None);
    }

    #[test]
    fn load_average_pressure_and_limits_parse() {
        assert_eq!(
            parse_load_average("2.38 3.23 3.72 1/234 5678\n").as_deref(),
            Some("2.38 3.23 3.72")
        );
        assert_eq!(parse_load_average("2.38\n"), None);
        let pressure = "some avg10=1.50 avg60=0.75 avg300=0.10 total=123\n\
                        full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(
            parse_cpu_pressure(pressure).as_deref(),
            Some("avg10=1.50% avg60=0.75%")
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_files_limit(limits), Some(1024));
    }

    #[test]
    fn this_process_is_readable_on_linux() {
        if !std::path::Path::new("/proc/self/status").exists() {
            return;
        }
        let memory = memory(Process::This).unwrap();
        assert!(memory.resident_kib > 0 && memory.peak_kib >= memory.resident_kib);
        cpu_time(Process::This).unwrap();
        machine_cpu().unwrap();
        assert_ne!(load_average(), "unknown");
    }
}
