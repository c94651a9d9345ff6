//! Proof-of-work networks on the command line: `tally network new pow` (the contract and
//! one folder per miner) and `tally node --mine` on a miner folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tally_core::pow::IntroPowHasher;
use tally_core::{AccountId, Amount, Mode, NetworkContract, SecretKey};
use tally_node::pow::config::BlockRequestLimits;
use tally_node::pow::{MinerConfig, MinerFiles, PowNode};

use crate::network::{fund_genesis, port, write_file};

/// `tally network new pow`
#[derive(Args, Clone)]
pub struct PowArgs {
    /// Folder to create the network in.
    #[arg(long)]
    pub dir: PathBuf,
    /// Miner folders to create.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub miners: u16,
    /// The network's name.
    #[arg(long, default_value = "tally-pow")]
    pub name: String,
    /// The block interval retargeting aims for (`5s`, `500ms`, `2m`).
    #[arg(long, default_value = "5s", value_parser = crate::duration::parse_positive_duration)]
    pub block_time: Duration,
    /// What each block pays its miner, in cash (exact decimal).
    #[arg(long, default_value = "50")]
    pub reward: Amount,
    /// Leading zero bits of the first blocks' target (retargeting takes over after
    /// `--retarget-window` blocks).
    #[arg(long, default_value_t = 22, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub initial_bits: u32,
    /// Blocks between retargets (0: never).
    #[arg(long, default_value_t = 20)]
    pub retarget_window: u64,
    /// Most transfers in one block.
    #[arg(long, default_value_t = 5_000)]
    pub max_block_transactions: u32,
    /// Most bytes of one block.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_block_bytes: u32,
    /// Leading zero bits of a node key's proof of work (the tracker checks it).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=32))]
    pub pow_bits: u32,
    /// The tracker miners join through (host:port).
    #[arg(long, default_value = "127.0.0.1:9999")]
    pub tracker: String,
    /// Miner i listens on 127.0.0.1:(P + 2i), its control API on P + 2i + 1.
    #[arg(long, default_value_t = 3333)]
    pub base_port: u16,
    /// Fund this many generated accounts at genesis; their keys go to DIR/genesis-wallet.
    #[arg(long, default_value_t = 0)]
    pub fund: u32,
    /// What each funded account holds, in cash.
    #[arg(long, default_value = "1000")]
    pub fund_amount: Amount,
}

/// What `network new pow` made.
pub struct CreatedPowNetwork {
    pub contract: NetworkContract,
    pub contract_path: PathBuf,
    pub miner_dirs: Vec<PathBuf>,
    pub genesis_wallet: Option<PathBuf>,
}

/// Prints what `network new pow` made.
pub fn run_new(args: &PowArgs) -> anyhow::Result<()> {
    let created = create_pow(args)?;
    println!("network {}", created.contract.id());
    println!("contract  {}", created.contract_path.display());
    for dir in &created.miner_dirs {
        println!("miner     {}", dir.display());
    }
    if let Some(wallet) = &created.genesis_wallet {
        println!("funded accounts in wallet {}", wallet.display());
    }
    Ok(())
}

/// Creates a proof-of-work network in `args.dir`: `contract.json` and `miner-<i>/` folders
/// each holding `miner.json` and a `key` (with its tracker proof of work computed now).
pub fn create_pow(args: &PowArgs) -> anyhow::Result<CreatedPowNetwork> {
    let contract_path = args.dir.join("contract.json");
    if contract_path.exists() {
        bail!(
            "{} already exists; choose another --dir",
            contract_path.display()
        );
    }
    let block_time_ms = u64::try_from(args.block_time.as_millis()).unwrap_or(u64::MAX);
    if block_time_ms == 0 {
        bail!(
            "--block-time {:?} is under a millisecond, the unit blocks are timed in",
            args.block_time
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let (genesis, genesis_wallet) = fund_genesis(&args.dir, args.fund, args.fund_amount)?;
    let mut pow = tally_chain::default_pow_params(block_time_ms, args.reward, args.initial_bits);
    pow.retarget_window = args.retarget_window;
    pow.max_block_transactions = args.max_block_transactions;
    pow.max_block_bytes = args.max_block_bytes;
    let contract = NetworkContract {
        name: args.name.clone(),
        mode: Mode::Pow,
        unit: "cash".into(),
        faucet: Amount::ZERO,
        intro_pow_bits: args.pow_bits,
        validators: vec![],
        tracker: Some(args.tracker.clone()),
        genesis,
        pow: Some(pow),
    };
    contract.validate()?;
    tally_chain::ChainParams::from_contract(&contract)?;
    write_file(&contract_path, contract.to_pretty_json().as_bytes())?;
    let mut miner_dirs = Vec::new();
    for i in 0..u32::from(args.miners) {
        let dir = args.dir.join(format!("miner-{i}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let key = SecretKey::generate();
        let proof = IntroPowHasher::new(&key.account())
            .search(0..u64::MAX, args.pow_bits)
            .context("no proof of work found for a miner key")?;
        let files = MinerFiles {
            contract: PathBuf::from("../contract.json"),
            listen: SocketAddr::from(([127, 0, 0, 1], port(args.base_port, 2 * i)?)),
            rpc: SocketAddr::from(([127, 0, 0, 1], port(args.base_port, 2 * i + 1)?)),
            proof_of_work: Some(proof),
            miner_account: None,
            block_requests: BlockRequestLimits::default(),
        };
        write_file(
            &dir.join(MinerFiles::CONFIG),
            serde_json::to_string_pretty(&files)?.as_bytes(),
        )?;
        tally_wallet::wallet::write_atomic(&dir.join(MinerFiles::KEY), key.to_hex().as_bytes())
            .with_context(|| format!("writing the key in {}", dir.display()))?;
        miner_dirs.push(dir);
    }
    Ok(CreatedPowNetwork {
        contract,
        contract_path,
        miner_dirs,
        genesis_wallet,
    })
}

/// How `tally node` runs a miner folder.
pub struct MinerOptions {
    pub mine: bool,
    pub threads: usize,
    pub miner_account: Option<AccountId>,
    pub rpc: Option<SocketAddr>,
    pub listen: Option<SocketAddr>,
}

/// Runs the miner in `dir` until Ctrl-C or SIGTERM, with a live status line on the
/// terminal (tip, peers, mempool, hash rate).
pub async fn run_miner(dir: &Path, options: MinerOptions) -> anyhow::Result<()> {
    let mut config = MinerConfig::load(dir)
        .with_context(|| format!("loading miner folder {}", dir.display()))?;
    config.mine = options.mine;
    config.threads = options.threads;
    if options.miner_account.is_some() {
        config.miner_account = options.miner_account;
    }
    if let Some(rpc) = options.rpc {
        config.rpc = Some(rpc);
    }
    if let Some(listen) = options.listen {
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
