//! `tally node`: runs one validator, or on a miner folder (`miner.json`, from
//! `tally network new pow`) one proof-of-work node, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tally_core::AccountId;
use tally_node::pow::{MinerConfig, PowNode};
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
        return run_miner(&args.dir, &args).await;
    }
    if args.mine {
        bail!(
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

/// Runs the miner in `dir` until Ctrl-C or SIGTERM, with a live status line on the
/// terminal (tip, peers, mempool, hash rate).
async fn run_miner(dir: &Path, args: &NodeArgs) -> anyhow::Result<()> {
    let mut config = MinerConfig::load(dir)
        .with_context(|| format!("loading miner folder {}", dir.display()))?;
    config.mine = args.mine;
    config.threads = args.threads.unwrap_or(0);
    if args.miner_account.is_some() {
        config.miner_account = args.miner_account;
    }
    if let Some(rpc) = args.rpc {
        config.rpc = Some(rpc);
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let node = PowNode::start(config).await?;
    println!(
        "miner listening on {} (control API {})",
        node.address(),
        node.rpc_address().map_or("off".into(), |a| a.to_string())
    );
    let line = indicatif::ProgressBar::new_spinner();
    line.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let handle = node.handle();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = node.stopped() => {
                line.finish_and_clear();
                bail!("the miner stopped: chain storage failed (see the log); restart to resume at the last durable tip");
            }
            _ = tick.tick() => {
                let Some(s) = handle.status_off_the_runtime().await else { break };
                line.set_message(format!(
                    "height {} tip {} | peers {} | mempool {} | {} | mined {}{}",
                    s.height,
                    &s.tip.to_string()[..16],
                    s.peers.len(),
                    s.mempool,
                    if s.mining { format_rate(s.hash_rate) } else { "not mining".into() },
                    s.blocks_mined,
                    if s.banned.is_empty() { String::new() } else { format!(" | banned {}", s.banned.len()) },
                ));
                line.tick();
            }
        }
    }
    line.finish_and_clear();
    drop(handle);
    node.stop().await;
    Ok(())
}

fn format_rate(rate: u64) -> String {
    let r = rate as f64;
    if r >= 1e9 {
        format!("{:.2} GH/s", r / 1e9)
    } else if r >= 1e6 {
        format!("{:.2} MH/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} kH/s", r / 1e3)
    } else {
        format!("{rate} H/s")
    }
}
