//! `tally network new quorum|pow`: the arguments, and what was made, printed. The
//! provisioning itself is `tally-network`'s.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use tally_core::Amount;
use tally_network::{
    CreatedPowNetwork, CreatedQuorumNetwork, PowSpec, ProvisionEvent, QuorumSpec, create_pow,
    create_quorum,
};

/// `tally network …`
#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a new network: its contract and one folder per validator or miner.
    #[command(subcommand)]
    New(NewNetwork),
    /// Make another network a counterpart of the network in DIR: its escrows may then cite
    /// it, and claims there reach it as notices (restart the validators or miners).
    Link {
        /// The network folder (its validators' node.json or miners' miner.json files change).
        #[arg(long)]
        dir: PathBuf,
        /// The other network's contract.json.
        #[arg(long)]
        counterpart: PathBuf,
    },
}

/// The kinds of network.
#[derive(Subcommand)]
pub enum NewNetwork {
    /// A Minicash network: a committee of validators certifies every order.
    Quorum(QuorumArgs),
    /// A proof-of-work network (seed 004): miners find each other through the tracker.
    Pow(PowArgs),
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
    /// The most any validator's clock may be off (`2s`, `500ms`): declared in the
    /// contract, it lets the network take hash-locked escrows (`0` takes none).
    #[arg(long, default_value = "2s", value_parser = crate::duration::parse_duration)]
    pub clock_skew: std::time::Duration,
}

impl From<QuorumArgs> for QuorumSpec {
    fn from(args: QuorumArgs) -> Self {
        QuorumSpec {
            dir: args.dir,
            validators: args.validators,
            name: args.name,
            faucet: args.faucet,
            pow_bits: args.pow_bits,
            base_port: args.base_port,
            fund: args.fund,
            fund_amount: args.fund_amount,
            tracker: args.tracker,
            clock_skew_ms: Some(u64::try_from(args.clock_skew.as_millis()).unwrap_or(u64::MAX))
                .filter(|ms| *ms > 0),
        }
    }
}

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

impl From<PowArgs> for PowSpec {
    fn from(args: PowArgs) -> Self {
        PowSpec {
            dir: args.dir,
            miners: args.miners,
            name: args.name,
            block_time: args.block_time,
            reward: args.reward,
            initial_bits: args.initial_bits,
            retarget_window: args.retarget_window,
            max_block_transactions: args.max_block_transactions,
            max_block_bytes: args.max_block_bytes,
            pow_bits: args.pow_bits,
            tracker: args.tracker,
            base_port: args.base_port,
            fund: args.fund,
            fund_amount: args.fund_amount,
        }
    }
}

pub fn run(command: NetworkCommand) -> anyhow::Result<()> {
    match command {
        NetworkCommand::New(NewNetwork::Quorum(args)) => {
            let created = create_quorum(&args.into(), &mut key_proof_spinner())?;
            print_quorum(&created);
        }
        NetworkCommand::New(NewNetwork::Pow(args)) => {
            let created = create_pow(&args.into())?;
            print_pow(&created);
        }
        NetworkCommand::Link { dir, counterpart } => {
            let changed = tally_network::link_counterpart(&dir, &counterpart)?;
            println!(
                "{} node{} of {} now know {} as a counterpart{}",
                changed.len(),
                if changed.len() == 1 { "" } else { "s" },
                dir.display(),
                counterpart.display(),
                if changed.is_empty() {
                    " (they knew it already)"
                } else {
                    "; restart them to use it"
                }
            );
        }
    }
    Ok(())
}

/// A spinner on the terminal while a node key's proof of work is searched for.
pub fn key_proof_spinner() -> impl FnMut(ProvisionEvent) {
    let mut spinner: Option<indicatif::ProgressBar> = None;
    move |event| match event {
        ProvisionEvent::SearchingKeyProof { account, bits } => {
            let bar = indicatif::ProgressBar::new_spinner().with_message(format!(
                "proof of work for validator key {} ({bits} bits)",
                account.short()
            ));
            bar.enable_steady_tick(Duration::from_millis(200));
            spinner = Some(bar);
        }
        ProvisionEvent::FoundKeyProof { .. } => {
            if let Some(bar) = spinner.take() {
                bar.finish_and_clear();
            }
        }
    }
}

fn print_quorum(created: &CreatedQuorumNetwork) {
    println!("network {}", created.contract.id());
    println!("contract  {}", created.contract_path.display());
    for dir in &created.validator_dirs {
        println!("validator {}", dir.display());
    }
    if let Some(wallet) = &created.genesis_wallet {
        println!("funded accounts in wallet {}", wallet.display());
    }
}

fn print_pow(created: &CreatedPowNetwork) {
    println!("network {}", created.contract.id());
    println!("contract  {}", created.contract_path.display());
    for dir in &created.miner_dirs {
        println!("miner     {}", dir.display());
    }
    if let Some(wallet) = &created.genesis_wallet {
        println!("funded accounts in wallet {}", wallet.display());
    }
}
