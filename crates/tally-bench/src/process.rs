//! What the benchmarks of daemons share: a `tally` daemon started as a child process (so
//! that its memory and CPU time are its own), the work folder, and free ports.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{BenchError, Context};
use crate::procfs::{self, Memory, ProcError, Process};

/// A `tally` daemon started by a benchmark, killed and reaped when dropped, whatever the
/// exit path.
pub(crate) struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts `command` (a `tally` subcommand; `TALLY_LOG=warn` unless it sets its own, no stdin, its stderr to
    /// `log` or to ours) and waits up to `timeout` for its stdout line starting with
    /// `ready` (such as `relay listening on `). Returns the daemon and the rest of that
    /// line; stdout is drained afterwards so that the daemon never blocks on it.
    pub(crate) async fn start(
        mut command: Command,
        what: &str,
        ready: &str,
        log: Option<&Path>,
        timeout: Duration,
    ) -> Result<(Daemon, String), BenchError> {
        let stderr = match log {
            Some(path) => Stdio::from(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            ),
            None => Stdio::inherit(),
        };
        if !command.get_envs().any(|(name, _)| name == "TALLY_LOG") {
            command.env("TALLY_LOG", "warn");
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting the {what}"))?;
        let stdout = child.stdout.take();
        let daemon = Daemon { child };
        let stdout =
            stdout.ok_or_else(|| BenchError::Check(format!("no stdout from the {what}")))?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let ready = ready.to_owned();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix(ready.as_str()) {
                    let _ = sender.send(rest.to_owned());
                    break;
                }
            }
            for _ in lines {}
        });
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(rest)) => Ok((daemon, rest)),
            Ok(Err(_)) => Err(BenchError::Check(format!(
                "the {what} exited before it listened: {}",
                log.map_or_else(|| "see its log above".to_owned(), log_tail)
            ))),
            Err(_) => Err(BenchError::Check(format!(
                "the {what} did not start within {timeout:?}{}",
                log.map_or_else(String::new, |path| format!(": {}", log_tail(path)))
            ))),
        }
    }

    /// The daemon's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's resident set and its peak.
    pub(crate) fn memory(&self) -> Result<Memory, ProcError> {
        procfs::memory(Process::Id(self.pid()))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a daemon's log, for the error that says it did not start.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    if tail.is_empty() {
        format!("it exited without a word (see {})", path.display())
    } else {
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

/// Daemons shared between a benchmark task and whoever watches for Ctrl-C: [`Self::stop`]
/// kills them at once, even while the task computes without yielding.
#[derive(Clone, Default)]
pub(crate) struct Daemons {
    running: Arc<Mutex<Vec<Daemon>>>,
}

impl Daemons {
    /// Keeps `daemon` until [`Self::stop`].
    pub(crate) fn adopt(&self, daemon: Daemon) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(daemon);
    }

    /// Kills and reaps every daemon adopted so far.
    pub(crate) fn stop(&self) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Runs the benchmark `name`'s `body` in a fresh work folder (the one the user named, which
/// must not exist yet, or a temporary one), said in a `report` section with the cores it
/// runs on; the daemons `body` adopts are stopped when it returns, whatever it returns. The
/// folder lives as long as the returned [`WorkDir`] (removed unless kept).
pub(crate) async fn in_work_dir<T>(
    name: &str,
    named: Option<&Path>,
    keep: bool,
    report: &dyn crate::report::Report,
    body: impl AsyncFnOnce(&Path, &Daemons) -> Result<T, BenchError>,
) -> Result<(WorkDir, T), BenchError> {
    let work = WorkDir::new(named, Existing::Refuse, name, keep)?;
    report.section(&format!(
        "tally bench {name}: {} cores, work folder {}",
        cores(),
        work.path().display()
    ));
    let daemons = Daemons::default();
    let result = body(work.path(), &daemons).await;
    daemons.stop();
    Ok((work, result?))
}

/// Whether a folder the user named may exist already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    /// It must not exist (the benchmark writes a network into it).
    Refuse,
    /// It may exist (the benchmark replaces only its own files).
    Reuse,
}

/// A benchmark's work folder: one the user named (kept), or a fresh one under the system's
/// temporary folder, removed when dropped unless asked to keep it.
pub(crate) struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    /// `named` if given, else `tally-bench-<what>-<pid>-<ms>` under the temporary folder.
    pub(crate) fn new(
        named: Option<&Path>,
        existing: Existing,
        what: &str,
        keep: bool,
    ) -> Result<Self, BenchError> {
        let (path, remove, existing) = match named {
            Some(path) => (path.to_path_buf(), false, existing),
            None => {
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let name = format!("tally-bench-{what}-{}-{ms}", std::process::id());
                (std::env::temp_dir().join(name), !keep, Existing::Refuse)
            }
        };
        if existing == Existing::Refuse && path.exists() {
            return Err(BenchError::Settings(format!(
                "{} already exists; choose another --dir",
                path.display()
            )));
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path, remove })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Ports nothing listens on right now (bound, noted, released).
pub(crate) fn free_ports(count: usize) -> Result<Vec<u16>, BenchError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr().context("finding free ports")?.port()))
        .collect()
}

/// The machine's cores, as the benchmarks' headers print them.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_temporary_work_dir_goes_away_unless_kept() {
        let dir = WorkDir::new(None, Existing::Reuse, "unit", false).unwrap();
        let path = dir.path().to_path_buf();
        assert!(path.is_dir());
        drop(dir);
        assert!(!path.exists());
        let kept = WorkDir::new(None, Existing::Reuse, "unit-kept", true).unwrap();
        let path = kept.path().to_path_buf();
        drop(kept);
        assert!(path.is_dir());
        std::fs::remove_dir_all(path).unwrap();
    }

    #[test]
    fn a_named_work_dir_is_kept_and_may_be_refused_when_it_exists() {
        let root = tempfile::tempdir().unwrap();
        let named = root.path().join("work");
        drop(WorkDir::new(Some(&named), Existing::Refuse, "unit", false).unwrap());
        assert!(named.is_dir());
        assert!(matches!(
            WorkDir::new(Some(&named), Existing::Refuse, "unit", false),
            Err(BenchError::Settings(_))
        ));
        drop(WorkDir::new(Some(&named), Existing::Reuse, "unit", false).unwrap());
        assert!(named.is_dir());
    }

    #[tokio::test]
    async fn a_daemon_is_ready_on_its_line_and_killed_when_dropped() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo noise; echo 'up on 127.0.0.1:9 (x)'; exec sleep 60",
        ]);
        let (daemon, rest) =
            Daemon::start(command, "shell", "up on ", None, Duration::from_secs(10))
                .await
                .unwrap();
        assert_eq!(rest, "127.0.0.1:9 (x)");
        let pid = daemon.pid();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(daemon);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[tokio::test]
    async fn a_daemon_that_exits_early_is_reported_with_its_log() {
        let root = tempfile::tempdir().unwrap();
        let log = root.path().join("log");
        let mut command = Command::new("sh");
        command.args(["-c", "echo 'bad contract' >&2; exit 3"]);
        let error = Daemon::start(
            command,
            "shell",
            "up on ",
            Some(&log),
            Duration::from_secs(10),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(
            error.to_string(),
            "the shell exited before it listened: bad contract"
        );
    }
}
