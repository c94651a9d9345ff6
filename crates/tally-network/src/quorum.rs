//! A quorum network: a committee of validators certifies every order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};

use tally_core::{AccountId, Amount, Mode, NetworkContract, SecretKey, ValidatorInfo};
use tally_node::NodeFiles;
use tally_wallet::pow::PowOutcome;

use crate::error::ProvisionError;
use crate::files::{create_dir, fresh_contract_path, fund_genesis, port, write_file};

/// What provisioning reports while it works, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProvisionEvent {
    /// Searching for the proof of work of a validator key (on every core; seconds at 20
    /// bits).
    SearchingKeyProof { account: AccountId, bits: u32 },
    /// Found it.
    FoundKeyProof { account: AccountId, nonce: u64 },
}

/// What quorum network to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumSpec {
    /// Folder to create the network in.
    pub dir: PathBuf,
    /// Committee size (n = 3f+1 tolerates f faulty validators).
    pub validators: u16,
    /// The network's name.
    pub name: String,
    /// What an introduced key receives.
    pub faucet: Amount,
    /// Leading zero bits a key's proof of work needs.
    pub pow_bits: u32,
    /// Validator i listens on 127.0.0.1:(P + 2i), its control API on P + 2i + 1.
    pub base_port: u16,
    /// Fund this many generated accounts at genesis; their keys go to DIR/genesis-wallet.
    pub fund: u32,
    /// What each funded account holds.
    pub fund_amount: Amount,
    /// A tracker for nodes and wallets to find each other (host:port).
    pub tracker: Option<String>,
    /// ε, the bound on validator clock skew (ms) the contract declares: with it the network
    /// takes hash-locked escrows; without, none.
    pub clock_skew_ms: Option<u64>,
}

/// What [`create_quorum`] made.
#[derive(Clone, Debug)]
pub struct CreatedQuorumNetwork {
    /// The contract written.
    pub contract: NetworkContract,
    /// Where: `DIR/contract.json`.
    pub contract_path: PathBuf,
    /// `DIR/validator-<i>`, each with `node.json` and `key`.
    pub validator_dirs: Vec<PathBuf>,
    /// `DIR/genesis-wallet`, holding the funded accounts, if any were funded.
    pub genesis_wallet: Option<PathBuf>,
}

/// Creates a quorum network in `spec.dir`: `contract.json`, a genesis wallet, and one
/// `validator-<i>/` folder per validator. With a tracker, each validator key's proof of work
/// is found now (on every core; `progress` hears of each search).
pub fn create_quorum(
    spec: &QuorumSpec,
    progress: &mut dyn FnMut(ProvisionEvent),
) -> Result<CreatedQuorumNetwork, ProvisionError> {
    let contract_path = fresh_contract_path(&spec.dir)?;
    create_dir(&spec.dir)?;
    let keys: Vec<SecretKey> = (0..spec.validators)
        .map(|_| SecretKey::generate())
        .collect();
    let mut listens = Vec::with_capacity(keys.len());
    let mut rpcs = Vec::with_capacity(keys.len());
    for i in 0..u32::from(spec.validators) {
        listens.push(SocketAddr::from((
            [127, 0, 0, 1],
            port(spec.base_port, 2 * i)?,
        )));
        rpcs.push(SocketAddr::from((
            [127, 0, 0, 1],
            port(spec.base_port, 2 * i + 1)?,
        )));
    }
    let validators = keys
        .iter()
        .zip(&listens)
        .map(|(key, listen)| ValidatorInfo {
            key: key.account(),
            address: listen.to_string(),
        })
        .collect();
    let (genesis, genesis_wallet) = fund_genesis(&spec.dir, spec.fund, spec.fund_amount)?;
    let contract = NetworkContract {
        name: spec.name.clone(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: spec.faucet,
        intro_pow_bits: spec.pow_bits,
        validators,
        tracker: spec.tracker.clone(),
        genesis,
        pow: None,
        max_clock_skew_ms: spec.clock_skew_ms,
    };
    contract.validate()?;
    // The tracker admits a key only with its proof of work: find each validator's now, so
    // that its node can register from its first start.
    let key_proofs = match &contract.tracker {
        Some(_) => keys
            .iter()
            .map(|key| validator_key_proof(&key.account(), contract.intro_pow_bits, progress))
            .collect::<Result<Vec<u64>, ProvisionError>>()?,
        None => Vec::new(),
    };
    write_file(&contract_path, contract.to_pretty_json().as_bytes())?;
    let mut validator_dirs = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let dir = spec.dir.join(format!("validator-{i}"));
        create_dir(&dir)?;
        let files = NodeFiles {
            contract: PathBuf::from("../contract.json"),
            listen: listens[i],
            rpc: rpcs[i],
            key_pow: key_proofs.get(i).copied(),
            advertise: None,
            counterparts: Vec::new(),
        };
        write_file(
            &dir.join(NodeFiles::CONFIG),
            &serde_json::to_vec_pretty(&files)?,
        )?;
        write_file(&dir.join(NodeFiles::KEY), key.to_hex().as_bytes())?;
        validator_dirs.push(dir);
    }
    Ok(CreatedQuorumNetwork {
        contract,
        contract_path,
        validator_dirs,
        genesis_wallet,
    })
}

/// The proof of work of a validator key, on every core.
fn validator_key_proof(
    account: &AccountId,
    bits: u32,
    progress: &mut dyn FnMut(ProvisionEvent),
) -> Result<u64, ProvisionError> {
    progress(ProvisionEvent::SearchingKeyProof {
        account: *account,
        bits,
    });
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let never = AtomicBool::new(false);
    let hashes = AtomicU64::new(0);
    match tally_wallet::pow::search(account, bits, 0, threads, &never, &hashes) {
        PowOutcome::Found(nonce) => {
            progress(ProvisionEvent::FoundKeyProof {
                account: *account,
                nonce,
            });
            Ok(nonce)
        }
        PowOutcome::Stopped { .. } => Err(ProvisionError::NoKeyProof(*account)),
    }
}
