//! `tally bench quorum` (being built in this session).

/// `tally bench quorum`
#[derive(clap::Args)]
pub struct BenchQuorumArgs {}

pub async fn run(_args: BenchQuorumArgs) -> anyhow::Result<()> {
    anyhow::bail!("tally bench quorum is not built yet")
}
