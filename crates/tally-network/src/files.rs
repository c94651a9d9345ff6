//! What both kinds of network write: the contract's place, folders, files written
//! atomically, the genesis wallet, and the ports of the nodes.

use std::path::{Path, PathBuf};

use tally_core::{Allocation, Amount};
use tally_wallet::Wallet;

use crate::error::ProvisionError;

/// Port `base + offset`, if it exists.
pub(crate) fn port(base: u16, offset: u32) -> Result<u16, ProvisionError> {
    u16::try_from(u32::from(base) + offset).map_err(|_| ProvisionError::Ports { base })
}

/// Refuses a folder that already holds a contract; the contract's path otherwise.
pub(crate) fn fresh_contract_path(dir: &Path) -> Result<PathBuf, ProvisionError> {
    let contract_path = dir.join("contract.json");
    if contract_path.exists() {
        return Err(ProvisionError::Exists(contract_path));
    }
    Ok(contract_path)
}

/// Creates `dir` and any missing parents.
pub(crate) fn create_dir(dir: &Path) -> Result<(), ProvisionError> {
    std::fs::create_dir_all(dir).map_err(|error| ProvisionError::CreateDir {
        path: dir.to_path_buf(),
        error,
    })
}

/// Writes a network file atomically (the key files are readable by their owner only).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ProvisionError> {
    tally_wallet::wallet::write_atomic(path, bytes).map_err(|error| ProvisionError::Write {
        path: path.to_path_buf(),
        error,
    })
}

/// Generates `count` accounts into `DIR/genesis-wallet` (labelled `genesis-0`…) and their
/// genesis allocations of `amount` each; no wallet when `count` is 0.
pub(crate) fn fund_genesis(
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
