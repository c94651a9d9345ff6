//! `tally network new`: writes a network contract and its validators' folders.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::sync::atomic::{AtomicBool, AtomicU64};

use tally_core::{AccountId, Allocation, Amount, Mode, NetworkContract, SecretKey, ValidatorInfo};
use tally_node::NodeFiles;
use tally_wallet::Wallet;
use tally_wallet::pow::PowOutcome;

/// `tally network …`
#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a new network: its contract and one folder per validator.
    #[command(subcommand)]
    New(NewNetwork),
}

/// The kinds of network.
#[derive(Subcommand)]
pub enum NewNetwork {
    /// A Minicash network: a committee of validators certifies every order.
    Quorum(QuorumArgs),
    /// A proof-of-work network (seed 004): miners find each other through the tracker.
    Pow(crate::pow::PowArgs),
}

/// `tally network new quorum`
#[derive(Args, Clone)]
pub struct QuorumArgs {
    /// Folder to create the network in.
    #[arg(long)]
    pub dir: PathBuf,
    /// Committee size (n = 3f+1 tolerates f faulty validators).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub validators: u16,
    /// The network's name.
    #[arg(long, default_value = "tally")]
    pub name: String,
    /// What an introduced key receives, in cash (exact decimal).
    #[arg(long, default_value = "10")]
    pub faucet: Amount,
    /// Leading zero bits a key's proof of work needs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub pow_bits: u32,
    /// Validator i listens on 127.0.0.1:(P + 2i), its control API on P + 2i + 1.
    #[arg(long, default_value_t = 2222)]
    pub base_port: u16,
    /// Fund this many generated accounts at genesis; their keys go to DIR/genesis-wallet.
    #[arg(long, default_value_t = 0)]
    pub fund: u32,
    /// What each funded account holds, in cash.
    #[arg(long, default_value = "1000")]
    pub fund_amount: Amount,
    /// A tracker for nodes and wallets to find each other (host:port).
    #[arg(long)]
    pub tracker: Option<String>,
}

/// What `network new quorum` made.
pub struct CreatedNetwork {
    pub contract: NetworkContract,
    pub contract_path: PathBuf,
    pub validator_dirs: Vec<PathBuf>,
    pub genesis_wallet: Option<PathBuf>,
}

pub fn run(command: NetworkCommand) -> anyhow::Result<()> {
    match command {
        NetworkCommand::New(NewNetwork::Pow(args)) => crate::pow::run_new(&args),
        NetworkCommand::New(NewNetwork::Quorum(args)) => {
            let created = create_quorum(&args)?;
            println!("network {}", created.contract.id());
            println!("contract  {}", created.contract_path.display());
            for dir in &created.validator_dirs {
                println!("validator {}", dir.display());
            }
            if let Some(wallet) = &created.genesis_wallet {
                println!("funded accounts in wallet {}", wallet.display());
            }
            Ok(())
        }
    }
}

/// Port `base + offset`, if it exists.
pub fn port(base: u16, offset: u32) -> anyhow::Result<u16> {
    u16::try_from(u32::from(base) + offset)
        .context("--base-port leaves no room for every node's ports")
}

/// Creates a quorum network in `args.dir`.
pub fn create_quorum(args: &QuorumArgs) -> anyhow::Result<CreatedNetwork> {
    let contract_path = args.dir.join("contract.json");
    if contract_path.exists() {
        bail!(
            "{} already exists; choose another --dir",
            contract_path.display()
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let keys: Vec<SecretKey> = (0..args.validators)
        .map(|_| SecretKey::generate())
        .collect();
    let mut validators = Vec::new();
    let mut rpcs = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let i = i as u32;
        validators.push(ValidatorInfo {
            key: key.account(),
            address: format!("127.0.0.1:{}", port(args.base_port, 2 * i)?),
        });
        rpcs.push(SocketAddr::from((
            [127, 0, 0, 1],
            port(args.base_port, 2 * i + 1)?,
        )));
    }
    let (genesis, genesis_wallet) = fund_genesis(&args.dir, args.fund, args.fund_amount)?;
    let contract = NetworkContract {
        name: args.name.clone(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: args.faucet,
        intro_pow_bits: args.pow_bits,
        validators,
        tracker: args.tracker.clone(),
        genesis,
        pow: None,
    };
    contract.validate()?;
    // The tracker admits a key only with its proof of work: find each validator's now, so
    // that its node can register from its first start.
    let key_pows = match &contract.tracker {
        Some(_) => keys
            .iter()
            .map(|key| validator_key_pow(&key.account(), contract.intro_pow_bits))
            .collect::<anyhow::Result<Vec<u64>>>()?,
        None => Vec::new(),
    };
    write_file(&contract_path, contract.to_pretty_json().as_bytes())?;
    let mut validator_dirs = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let dir = args.dir.join(format!("validator-{i}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let files = NodeFiles {
            contract: PathBuf::from("../contract.json"),
            listen: contract.validators[i].address.parse()?,
            rpc: rpcs[i],
            key_pow: key_pows.get(i).copied(),
            advertise: None,
        };
        write_file(
            &dir.join(NodeFiles::CONFIG),
            serde_json::to_string_pretty(&files)?.as_bytes(),
        )?;
        tally_wallet::wallet::write_atomic(&dir.join(NodeFiles::KEY), key.to_hex().as_bytes())?;
        validator_dirs.push(dir);
    }
    Ok(CreatedNetwork {
        contract,
        contract_path,
        validator_dirs,
        genesis_wallet,
    })
}

/// The proof of work of a validator key, on every core, with a spinner for slow ones.
fn validator_key_pow(account: &AccountId, bits: u32) -> anyhow::Result<u64> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let stop = AtomicBool::new(false);
    let hashes = AtomicU64::new(0);
    let progress = indicatif::ProgressBar::new_spinner().with_message(format!(
        "proof of work for validator key {} ({bits} bits)",
        account.short()
    ));
    progress.enable_steady_tick(std::time::Duration::from_millis(200));
    let outcome = tally_wallet::pow::search(account, bits, 0, threads, &stop, &hashes);
    progress.finish_and_clear();
    match outcome {
        PowOutcome::Found(nonce) => Ok(nonce),
        PowOutcome::Stopped { .. } => bail!("no proof of work found for {}", account.short()),
    }
}

/// Generates `count` accounts into `DIR/genesis-wallet` (labelled `genesis-0`…) and their
/// genesis allocations of `amount` each; no wallet when `count` is 0.
pub fn fund_genesis(
    dir: &Path,
    count: u32,
    amount: Amount,
) -> anyhow::Result<(Vec<Allocation>, Option<PathBuf>)> {
    if count == 0 {
        return Ok((Vec::new(), None));
    }
    let wallet_dir = dir.join("genesis-wallet");
    let mut wallet = Wallet::open(&wallet_dir)?;
    let mut genesis = Vec::with_capacity(count as usize);
    for i in 0..count {
        let entry = wallet.add_key(None, Some(format!("genesis-{i}")))?;
        genesis.push(Allocation {
            account: entry.account,
            amount,
        });
    }
    Ok((genesis, Some(wallet_dir)))
}

/// Writes a network file atomically, naming it in the error.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    tally_wallet::wallet::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}
