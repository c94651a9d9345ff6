//! `tally bench quorum`: FastPay's benchmark, run against Tally's quorum validator.
//!
//! 1. **Throughput.** One validator runs as its own process (`tally node`, a child of the
//!    bench) in a committee of four; the other three are not running, but the bench holds
//!    their keys. Before the clock starts the bench signs every transfer order, assembles
//!    each order's certificate from the votes of validators 0 (the measured one), 1 and 2,
//!    exactly as a wallet would, and encodes every frame. Timed: the pre-encoded load goes
//!    out pipelined over a few connections, in rounds of `batch` transfers: a round's
//!    orders, then the same round's certificates, then the next round (a connection carries
//!    all the traffic of its senders, so each certificate follows its order and precedes the
//!    sender's next order). The clock stops at the last acknowledgement.
//! 2. **Memory.** The validator's resident set (`/proc/PID/status`) once it has loaded its
//!    `accounts` funded accounts, and its peak.
//! 3. **End to end.** Four `tally node` processes; `clients` concurrent wallets, each with
//!    its own [`tally_wallet::QuorumClient`], certify and submit payments; payments per
//!    second and latency percentiles.

mod end_to_end;
mod load;
mod network;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use end_to_end::EndToEndFigures;
pub use load::{EngineCounts, ThroughputFigures};

use crate::error::BenchError;
use crate::process::{Daemons, Existing, WorkDir, cores};
use crate::report::Report;

/// What `tally bench quorum` measures, and how much of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Accounts funded at genesis; the validator's memory is measured holding them.
    pub accounts: usize,
    /// Transfers for the throughput run, each one order and one certificate (0: only load
    /// the validator and measure its memory).
    pub transfers: usize,
    /// Connections the throughput load is spread over.
    pub connections: usize,
    /// Transfers per round: a round's orders go out, then its certificates (at most
    /// `accounts`, so that a round's senders are distinct).
    pub batch: usize,
    /// Payments for the end-to-end run (0 skips it).
    pub payments: usize,
    /// Concurrent wallets in the end-to-end run.
    pub clients: usize,
    /// Work folder (must not exist yet); `None`: a fresh folder in the system temporary
    /// folder, removed afterwards.
    pub dir: Option<PathBuf>,
    /// Keep the default work folder instead of removing it.
    pub keep: bool,
}

impl Settings {
    /// The figures BENCHMARKS.md records are taken with these unless it says otherwise.
    pub const DEFAULT: Settings = Settings {
        accounts: 100_000,
        transfers: 100_000,
        connections: 4,
        batch: 10_000,
        payments: 4_000,
        clients: 16,
        dir: None,
        keep: false,
    };

    fn check(&self) -> Result<(), BenchError> {
        let refuse = |why: String| Err(BenchError::Settings(why));
        if self.accounts < 2 {
            return refuse(
                "--accounts must be at least 2 (transfers need a sender and a recipient)".into(),
            );
        }
        if self.connections == 0 {
            return refuse("--connections must be at least 1".into());
        }
        if self.batch == 0 || self.batch > self.accounts {
            return refuse(format!(
                "--batch must be between 1 and --accounts ({}): a round's senders must be distinct",
                self.accounts
            ));
        }
        if self.payments > 0 && self.clients == 0 {
            return refuse("--clients must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::DEFAULT
    }
}

/// Everything one run measured.
#[derive(Clone, Debug)]
pub struct Figures {
    pub throughput: ThroughputFigures,
    /// `None` when `payments` was 0.
    pub end_to_end: Option<EndToEndFigures>,
}

/// The report's first line.
struct Header<'a> {
    work: &'a std::path::Path,
}

impl fmt::Display for Header<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tally bench quorum: {} cores, work folder {}",
            cores(),
            self.work.display()
        )
    }
}

/// Runs the benchmark with `tally` (the path of the `tally` executable) as the validators,
/// reporting to `report`, until done or until `stop` resolves (Ctrl-C): then the
/// validators are killed at once and the work folder is removed.
pub async fn run(
    settings: Settings,
    tally: PathBuf,
    report: Arc<dyn Report>,
    stop: impl Future<Output = ()>,
) -> Result<Figures, BenchError> {
    settings.check()?;
    // The bench runs in its own task (parts of it compute for seconds without yielding), so
    // that `stop` is seen at once: the validators are killed from here, and the task's
    // guards remove the work folder when it is dropped.
    let daemons = Daemons::default();
    let mut task = tokio::spawn(bench(settings, tally, report, daemons.clone()));
    tokio::select! {
        result = &mut task => {
            daemons.stop();
            result.map_err(|error| BenchError::Step {
                step: "the bench task failed".into(),
                source: Box::new(error),
            })?
        }
        () = stop => {
            daemons.stop();
            task.abort();
            Err(BenchError::Interrupted)
        }
    }
}

async fn bench(
    settings: Settings,
    tally: PathBuf,
    report: Arc<dyn Report>,
    daemons: Daemons,
) -> Result<Figures, BenchError> {
    let work = WorkDir::new(
        settings.dir.as_deref(),
        Existing::Refuse,
        "quorum",
        settings.keep,
    )?;
    report.section(&Header { work: work.path() }.to_string());

    let throughput = load::throughput(
        &settings,
        &work.path().join("throughput"),
        &tally,
        &daemons,
        report.as_ref(),
    )
    .await?;
    report.section(&throughput.to_string());

    let end_to_end = if settings.payments > 0 {
        let figures = end_to_end::run(
            &settings,
            &work.path().join("end-to-end"),
            &tally,
            &daemons,
            report.as_ref(),
        )
        .await?;
        report.section(&figures.to_string());
        Some(figures)
    } else {
        None
    };
    Ok(Figures {
        throughput,
        end_to_end,
    })
}

/// How long a validator may take to load its ledger before the bench gives up.
const START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the bench waits for any one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Every transfer moves one microcash; every funded account holds plenty.
const TRANSFER_MICROCASH: u64 = 1;
const FUND_MICROCASH: u64 = 1_000_000_000;

/// KiB (as /proc reports them) in the unit this benchmark has always printed as "MB"
/// (1,048,576 bytes); kept so that its figures stay comparable with those recorded.
fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_make_a_run_are_refused_with_the_flag() {
        let refused = |settings: Settings| match settings.check() {
            Err(BenchError::Settings(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(
            refused(Settings {
                accounts: 1,
                ..Settings::DEFAULT
            })
            .starts_with("--accounts")
        );
        assert!(
            refused(Settings {
                connections: 0,
                ..Settings::DEFAULT
            })
            .starts_with("--connections")
        );
        assert!(
            refused(Settings {
                batch: 100_001,
                ..Settings::DEFAULT
            })
            .starts_with("--batch")
        );
        assert!(
            refused(Settings {
                clients: 0,
                ..Settings::DEFAULT
            })
            .starts_with("--clients")
        );
        assert!(
            Settings {
                clients: 0,
                payments: 0,
                ..Settings::DEFAULT
            }
            .check()
            .is_ok()
        );
        assert!(Settings::default().check().is_ok());
    }
}
