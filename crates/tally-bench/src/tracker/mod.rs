//! `tally bench tracker`: signed registrations per second through an in-process tracker,
//! and the memory a `tally tracker` process needs per live entry.

mod memory;
mod settings;
mod throughput;

use std::path::Path;

pub use memory::EntryMemory;
pub use settings::Settings;
pub use throughput::Throughput;

use crate::error::BenchError;
use crate::process::{Existing, WorkDir, cores};
use crate::report::Report;

/// Everything one invocation measured (a run not asked for is absent).
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub throughput: Option<Throughput>,
    pub memory: Option<EntryMemory>,
}

/// Runs the benchmark, with `tally` (the path of the `tally` executable) as the tracker
/// process whose memory is measured.
pub async fn run(
    settings: &Settings,
    tally: &Path,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    let root = WorkDir::new(settings.dir.as_deref(), Existing::Reuse, "tracker", false)?;
    report.section(&format!("tally bench tracker: {} cores", cores().max(1)));
    let mut figures = Figures::default();
    if settings.registrations > 0 {
        figures.throughput =
            Some(throughput::run(settings, &root.path().join("throughput"), report).await?);
    }
    if settings.entries > 0 {
        figures.memory =
            Some(memory::run(settings, &root.path().join("memory"), tally, report).await?);
    }
    Ok(figures)
}
