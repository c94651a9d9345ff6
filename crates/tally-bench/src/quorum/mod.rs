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
pub(crate) mod network;
mod settings;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

pub use end_to_end::EndToEndFigures;
pub use load::{EngineCounts, ThroughputFigures};
pub use settings::Settings;

use crate::error::BenchError;
use crate::process::{Daemons, Existing, WorkDir, cores};
use crate::report::Report;

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
