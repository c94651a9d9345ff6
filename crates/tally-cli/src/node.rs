//! `tally node`: runs one validator, or on a miner folder (`miner.json`, from
//! `tally network new pow`) one proof-of-work node, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tally_core::AccountId;
use tally_node::pow::MinerConfig;
use tally_node::{Node, NodeConfig};

/// `tally node`
#[derive(Args)]
pub struct NodeArgs {
    /// The validator's or miner's folder (from `tally network new`).
    #[arg(long)]
    pub dir: PathBuf,
    /// Control API address (JSON-RPC 2.0 over HTTP); default from the folder's config.
    #[arg(long)]
    pub rpc: Option<SocketAddr>,
    /// Node protocol address; default from the folder's config.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Mine (proof-of-work networks). Without it a miner folder runs a node that validates
    /// and relays blocks and transactions but does not mine.
    #[arg(long)]
    pub mine: bool,
    /// Mining threads (default: every core).
    #[arg(long, requires = "mine")]
    pub threads: Option<usize>,
    /// The account block rewards go to (default: the node key's).
    #[arg(long, requires = "mine")]
    pub miner_account: Option<AccountId>,
}

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    if MinerConfig::is_miner_dir(&args.dir) {
        return crate::pow::run_miner(
            &args.dir,
            crate::pow::MinerOptions {
                mine: args.mine,
                threads: args.threads.unwrap_or(0),
                miner_account: args.miner_account,
                rpc: args.rpc,
                listen: args.listen,
            },
        )
        .await;
    }
    if args.mine {
        anyhow::bail!(
            "{} is a validator folder: --mine needs a miner folder (tally network new pow)",
            args.dir.display()
        );
    }
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
    // A validator whose storage failed stops by itself (crash-only): exit with an error so
    // that a supervisor restarts it from the last durable state.
    let failed = tokio::select! {
        _ = crate::shutdown_signal() => false,
        _ = node.stopped() => true,
    };
    node.stop().await;
    if failed {
        anyhow::bail!(
            "the validator stopped: ledger storage failed (see the log); restart to resume from the last durable state"
        );
    }
    Ok(())
}
