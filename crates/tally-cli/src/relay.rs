//! Placeholder for the relay commands: replaced by the relay crate's work in this session.

#[derive(clap::Args)]
pub struct RelayArgs {}

#[derive(clap::Args)]
pub struct BenchArgs {}

pub async fn run(_args: RelayArgs) -> anyhow::Result<()> {
    anyhow::bail!("tally relay is not built yet")
}

pub async fn bench(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("tally bench relay is not built yet")
}

#[derive(clap::Args)]
pub struct ChatArgs {}

pub async fn chat(_args: ChatArgs) -> anyhow::Result<()> {
    anyhow::bail!("tally chat is not built yet")
}
