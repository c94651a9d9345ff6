//! `tally web`: serves the web wallet and explorer until Ctrl-C, after printing the address
//! to open (with its access token).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tally_core::NetworkContract;
use tally_web::{Web, WebConfig};

/// `tally web`
#[derive(Args)]
pub struct WebArgs {
    /// The wallet folder.
    #[arg(long)]
    pub wallet: PathBuf,
    /// A network contract the pages show (repeat for several quorum networks).
    #[arg(long, required = true)]
    pub network: Vec<PathBuf>,
    /// Where to listen. Keep it on 127.0.0.1 unless something in front of it adds TLS.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The LiveConnect relay for live transfers, HOST:PORT (without it the pages offer
    /// none).
    #[arg(long)]
    pub relay: Option<String>,
    /// Seconds to wait for each validator's answer.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

/// Loads the contracts, serves, and prints the address once listening.
pub async fn run(args: WebArgs) -> anyhow::Result<()> {
    let networks = args
        .network
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            NetworkContract::from_json(&text)
                .with_context(|| format!("contract {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let web = Web::start(WebConfig {
        wallet: args.wallet,
        networks,
        listen: args.listen,
        timeout: Duration::from_secs(args.timeout.max(1)),
        relay: args.relay,
    })
    .await?;
    println!("Tally web wallet: open {}", web.url());
    println!("(the address holds the access token: whoever has it can use this wallet)");
    crate::shutdown_signal().await;
    web.stop().await;
    Ok(())
}
