//! Why a network could not be created.

use std::path::PathBuf;

use tally_core::AccountId;
use tally_wallet::WalletError;

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
    /// A file could not be read.
    #[error("reading {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// A network named as its own counterpart.
    #[error("{} is this network's own contract, not a counterpart", .0.display())]
    SelfCounterpart(PathBuf),
    /// A folder with no validator or miner in it.
    #[error("{} holds no validator or miner folders (validator-*/node.json, miner-*/miner.json)", .0.display())]
    NoValidators(PathBuf),
    /// A node folder's config could not be put in JSON.
    #[error("encoding a node config: {0}")]
    Config(#[from] serde_json::Error),
}
