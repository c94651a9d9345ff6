//! Provisioning Tally networks (`tally network new quorum|pow`, `tally devnet`): a network
//! contract, genesis funding with its wallet, and one folder per validator or miner holding
//! its config and secret key, with the key's proof of work found in advance so the node can
//! register with the tracker from its first start.
//!
//! A crate of its own because it writes the folders of two others: the daemons'
//! (`tally-node`'s `node.json` and `miner.json`) and the wallet's (`tally-wallet`'s genesis
//! wallet); neither of those should depend on the other. Tests create networks with it
//! directly, without the CLI.

mod pow;
mod quorum;

use std::path::{Path, PathBuf};

use tally_core::{AccountId, Allocation, Amount};
use tally_wallet::{Wallet, WalletError};

pub use pow::{CreatedPowNetwork, PowSpec, create_pow};
pub use quorum::{CreatedQuorumNetwork, QuorumSpec, create_quorum};

/// Why a network could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A network already exists there; nothing was changed.
    #[error("{} already exists; choose another folder", .0.display())]
    Exists(PathBuf),
    /// The block interval is under the millisecond blocks are timed in.
    #[error("the block time {0:?} is under a millisecond, the unit blocks are timed in")]
    BlockTimeTooShort(std::time::Duration),
    /// Node `offset` ports above the base port do not exist.
    #[error("the base port {base} leaves no room for every node's ports")]
    Ports { base: u16 },
    /// The contract breaks a rule.
    #[error(transparent)]
    Contract(#[from] tally_core::ContractError),
    /// The proof-of-work parameters break a rule.
    #[error(transparent)]
    ChainParams(#[from] tally_chain::ParamsError),
    /// No nonce meets the key proof-of-work difficulty (only at absurd difficulties).
    #[error("no proof of work found for key {}", .0.short())]
    NoKeyProof(AccountId),
    /// A folder could not be created.
    #[error("creating {}", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// A file could not be written.
    #[error("writing {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        error: WalletError,
    },
    /// The genesis wallet failed.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// A node folder's config could not be put in JSON.
    #[error("encoding a node config: {0}")]
    Config(#[from] serde_json::Error),
}

/// What provisioning reports while it works, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProvisionEvent {
    /// Searching for the proof of work of a node key (on every core; seconds at 20 bits).
    SearchingKeyProof { account: AccountId, bits: u32 },
    /// Found it.
    FoundKeyProof { account: AccountId, nonce: u64 },
}

/// Port `base + offset`, if it exists.
fn port(base: u16, offset: u32) -> Result<u16, ProvisionError> {
    u16::try_from(u32::from(base) + offset).map_err(|_| ProvisionError::Ports { base })
}

/// Refuses a folder that already holds a contract; the contract's path otherwise.
fn fresh_contract_path(dir: &Path) -> Result<PathBuf, ProvisionError> {
    let contract_path = dir.join("contract.json");
    if contract_path.exists() {
        return Err(ProvisionError::Exists(contract_path));
    }
    Ok(contract_path)
}

/// Creates `dir` and any missing parents.
fn create_dir(dir: &Path) -> Result<(), ProvisionError> {
    std::fs::create_dir_all(dir).map_err(|error| ProvisionError::CreateDir {
        path: dir.to_path_buf(),
        error,
    })
}

/// Writes a network file atomically (the key files are readable by their owner only).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ProvisionError> {
    tally_wallet::wallet::write_atomic(path, bytes).map_err(|error| ProvisionError::Write {
        path: path.to_path_buf(),
        error,
    })
}

/// Generates `count` accounts into `DIR/genesis-wallet` (labelled `genesis-0`…) and their
/// genesis allocations of `amount` each; no wallet when `count` is 0.
fn fund_genesis(
    dir: &Path,
    count: u32,
    amount: Amount,
) -> Result<(Vec<Allocation>, Option<PathBuf>), ProvisionError> {
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
