//! `tally node`: runs one validator until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tally_node::{Node, NodeConfig};

/// `tally node`
#[derive(Args)]
pub struct NodeArgs {
    /// The validator's folder (from `tally network new`).
    #[arg(long)]
    pub dir: PathBuf,
    /// Control API address (JSON-RPC 2.0 over HTTP); default from the folder's node.json.
    #[arg(long)]
    pub rpc: Option<SocketAddr>,
    /// Node protocol address; default from node.json.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let mut config = NodeConfig::load(&args.dir)
        .with_context(|| format!("loading validator folder {}", args.dir.display()))?;
    if let Some(rpc) = args.rpc {
        config.rpc = Some(rpc);
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let node = Node::start(config).await?;
    println!(
        "validator listening on {} (control API {})",
        node.address(),
        node.rpc_address().map_or("off".into(), |a| a.to_string())
    );
    crate::shutdown_signal().await;
    node.stop().await;
    Ok(())
}
