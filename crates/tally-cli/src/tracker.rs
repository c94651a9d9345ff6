//! Placeholder for the tracker commands: replaced by the tracker crate's work in this session.

#[derive(clap::Args)]
pub struct TrackerArgs {}

#[derive(clap::Args)]
pub struct BenchArgs {}

pub async fn run(_args: TrackerArgs) -> anyhow::Result<()> {
    anyhow::bail!("tally tracker is not built yet")
}

pub async fn bench(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("tally bench tracker is not built yet")
}
