//! A proof-of-work network (seed 004): miners find each other through the tracker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tally_core::pow::IntroPowHasher;
use tally_core::{Amount, Mode, NetworkContract, SecretKey};
use tally_node::pow::MinerFiles;
use tally_node::pow::config::BlockRequestLimits;

use crate::error::ProvisionError;
use crate::files::{create_dir, fresh_contract_path, fund_genesis, port, write_file};

/// What proof-of-work network to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowSpec {
    /// Folder to create the network in.
    pub dir: PathBuf,
    /// Miner folders to create.
    pub miners: u16,
    /// The network's name.
    pub name: String,
    /// The block interval retargeting aims for (at least a millisecond).
    pub block_time: Duration,
    /// What each block pays its miner.
    pub reward: Amount,
    /// Leading zero bits of the first blocks' target (retargeting takes over after
    /// `retarget_window` blocks).
    pub initial_bits: u32,
    /// Blocks between retargets (0: never).
    pub retarget_window: u64,
    /// Most transfers in one block.
    pub max_block_transactions: u32,
    /// Most bytes of one block.
    pub max_block_bytes: u32,
    /// Leading zero bits of a node key's proof of work (the tracker checks it).
    pub pow_bits: u32,
    /// The tracker miners join through (host:port).
    pub tracker: String,
    /// Miner i listens on 127.0.0.1:(P + 2i), its control API on P + 2i + 1.
    pub base_port: u16,
    /// Fund this many generated accounts at genesis; their keys go to DIR/genesis-wallet.
    pub fund: u32,
    /// What each funded account holds.
    pub fund_amount: Amount,
}

/// What [`create_pow`] made.
#[derive(Clone, Debug)]
pub struct CreatedPowNetwork {
    /// The contract written.
    pub contract: NetworkContract,
    /// Where: `DIR/contract.json`.
    pub contract_path: PathBuf,
    /// `DIR/miner-<i>`, each with `miner.json` and `key`.
    pub miner_dirs: Vec<PathBuf>,
    /// `DIR/genesis-wallet`, holding the funded accounts, if any were funded.
    pub genesis_wallet: Option<PathBuf>,
}

/// The ε a new proof-of-work network declares: how far its median time past (the median of
/// the last 11 block timestamps, which escrow deadlines are judged by) may trail true time.
/// It trails by about six block intervals; 20 covers the slow runs of blocks that happen
/// by chance, and honest miners' clocks add little.
pub fn pow_clock_skew_ms(block_time_ms: u64) -> u64 {
    block_time_ms.saturating_mul(20)
}

/// Creates a proof-of-work network in `spec.dir`: `contract.json`, a genesis wallet, and
/// `miner-<i>/` folders each holding `miner.json` and a `key` (with its tracker proof of
/// work computed now). A block time or ports the network cannot have are refused before
/// anything is written.
pub fn create_pow(spec: &PowSpec) -> Result<CreatedPowNetwork, ProvisionError> {
    let contract_path = fresh_contract_path(&spec.dir)?;
    let block_time_ms = u64::try_from(spec.block_time.as_millis()).unwrap_or(u64::MAX);
    if block_time_ms == 0 {
        return Err(ProvisionError::BlockTimeTooShort(spec.block_time));
    }
    let mut addresses = Vec::with_capacity(usize::from(spec.miners));
    for i in 0..u32::from(spec.miners) {
        let at =
            |offset| port(spec.base_port, offset).map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        addresses.push((at(2 * i)?, at(2 * i + 1)?));
    }
    create_dir(&spec.dir)?;
    let (genesis, genesis_wallet) = fund_genesis(&spec.dir, spec.fund, spec.fund_amount)?;
    let mut pow = tally_chain::default_pow_params(block_time_ms, spec.reward, spec.initial_bits);
    pow.retarget_window = spec.retarget_window;
    pow.max_block_transactions = spec.max_block_transactions;
    pow.max_block_bytes = spec.max_block_bytes;
    let contract = NetworkContract {
        name: spec.name.clone(),
        mode: Mode::Pow,
        unit: "cash".into(),
        faucet: Amount::ZERO,
        intro_pow_bits: spec.pow_bits,
        validators: vec![],
        tracker: Some(spec.tracker.clone()),
        genesis,
        pow: Some(pow),
        max_clock_skew_ms: Some(pow_clock_skew_ms(block_time_ms)),
    };
    contract.validate()?;
    tally_chain::ChainParams::from_contract(&contract)?;
    write_file(&contract_path, contract.to_pretty_json().as_bytes())?;
    let mut miner_dirs = Vec::with_capacity(usize::from(spec.miners));
    for (i, (listen, rpc)) in addresses.into_iter().enumerate() {
        let dir = spec.dir.join(format!("miner-{i}"));
        create_dir(&dir)?;
        let key = SecretKey::generate();
        let proof = IntroPowHasher::new(&key.account())
            .search(0..u64::MAX, spec.pow_bits)
            .ok_or(ProvisionError::NoKeyProof(key.account()))?;
        let files = MinerFiles {
            contract: PathBuf::from("../contract.json"),
            listen,
            rpc,
            proof_of_work: Some(proof),
            miner_account: None,
            block_requests: BlockRequestLimits::default(),
            counterparts: Vec::new(),
        };
        write_file(
            &dir.join(MinerFiles::CONFIG),
            &serde_json::to_vec_pretty(&files)?,
        )?;
        write_file(&dir.join(MinerFiles::KEY), key.to_hex().as_bytes())?;
        miner_dirs.push(dir);
    }
    Ok(CreatedPowNetwork {
        contract,
        contract_path,
        miner_dirs,
        genesis_wallet,
    })
}
