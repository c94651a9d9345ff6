//! Every Tally benchmark, behind one harness.
//!
//! - [`abuse`]: what one host can make each service spend (`tally bench abuse`).
//! - [`web`]: the web wallet's pages beside a paying network (`tally bench web`).
//! - [`quorum`], [`tracker`], [`relay`], [`mine`] and [`sync`]: the runs behind
//!   `tally bench quorum|tracker|relay|mine|sync`. The daemons under measurement run as
//!   child processes of the `tally` executable the caller names, so that their memory and
//!   CPU time are their own.
//! - One harness: [`percentile`] (nearest rank, the one definition every latency figure
//!   uses), [`procfs`] (the one reader of `/proc`: memory, CPU time, steal, load average),
//!   and [`Report`] (the one way figures and progress go out, as each part is known).
//! - The criterion micro-benchmarks live in `benches/` (`cargo bench -p tally-bench`).
//!
//! Speed is measured here, never asserted in tests; the figures and how they were taken
//! are in BENCHMARKS.md.

pub mod abuse;
pub mod coins;
mod error;
pub mod live;
pub mod mine;
pub mod percentile;
mod process;
pub mod procfs;
pub mod quorum;
pub mod relay;
mod report;
pub mod sync;
pub mod tracker;
pub mod web;
pub mod wire;

pub use error::BenchError;
pub use report::Report;
