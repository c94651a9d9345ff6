//! Making two networks counterparts (DESIGN §8): every validator (or miner) of one learns
//! the other's contract, so escrows there may cite it and claims there reach it as notices.

use std::path::{Path, PathBuf};

use tally_node::NodeFiles;
use tally_node::pow::MinerFiles;

use crate::ProvisionError;
use crate::files::write_file;

/// Adds `counterpart` (a contract file) to the `node.json` of every validator folder (or the
/// `miner.json` of every miner folder) in network folder `dir`, as an absolute path; a node
/// that has it already is left as it is. The nodes read it when they start. Returns the
/// config files changed.
pub fn link_counterpart(dir: &Path, counterpart: &Path) -> Result<Vec<PathBuf>, ProvisionError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|error| ProvisionError::Read {
            path: path.to_path_buf(),
            error,
        })
    };
    let text = read(counterpart)?;
    // The counterpart must be a contract, and not this network's own.
    let other = tally_core::NetworkContract::from_json(&text)?;
    let own = tally_core::NetworkContract::from_json(&read(&dir.join("contract.json"))?)?;
    if other.id() == own.id() {
        return Err(ProvisionError::SelfCounterpart(counterpart.to_path_buf()));
    }
    let absolute = std::path::absolute(counterpart).map_err(|error| ProvisionError::Read {
        path: counterpart.to_path_buf(),
        error,
    })?;
    let mut changed = Vec::new();
    let folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|error| ProvisionError::Read {
            path: dir.to_path_buf(),
            error,
        })?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    let configs = |name: &str| {
        let mut found: Vec<PathBuf> = folders
            .iter()
            .map(|folder| folder.join(name))
            .filter(|config| config.is_file())
            .collect();
        found.sort();
        found
    };
    let (validators, miners) = (configs(NodeFiles::CONFIG), configs(MinerFiles::CONFIG));
    if validators.is_empty() && miners.is_empty() {
        return Err(ProvisionError::NoValidators(dir.to_path_buf()));
    }
    for config in validators {
        let mut files: NodeFiles = serde_json::from_str(&read(&config)?)?;
        if files.counterparts.contains(&absolute) {
            continue;
        }
        files.counterparts.push(absolute.clone());
        write_file(&config, &serde_json::to_vec_pretty(&files)?)?;
        changed.push(config);
    }
    for config in miners {
        let mut files: MinerFiles = serde_json::from_str(&read(&config)?)?;
        if files.counterparts.contains(&absolute) {
            continue;
        }
        files.counterparts.push(absolute.clone());
        write_file(&config, &serde_json::to_vec_pretty(&files)?)?;
        changed.push(config);
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{QuorumSpec, create_quorum};
    use tally_core::Amount;

    fn network(dir: &Path, name: &str, base_port: u16) -> PathBuf {
        create_quorum(
            &QuorumSpec {
                dir: dir.join(name),
                validators: 4,
                name: name.into(),
                faucet: Amount::ZERO,
                pow_bits: 0,
                base_port,
                fund: 0,
                fund_amount: Amount::ZERO,
                tracker: None,
                clock_skew_ms: Some(500),
            },
            &mut |_| {},
        )
        .unwrap();
        dir.join(name)
    }

    /// Every validator learns the counterpart once (linking twice changes nothing), and a
    /// network cannot be its own counterpart.
    #[test]
    fn every_validator_learns_the_counterpart_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = network(dir.path(), "a", 20_000);
        let b = network(dir.path(), "b", 20_100);
        let changed = link_counterpart(&a, &b.join("contract.json")).unwrap();
        assert_eq!(changed.len(), 4);
        assert!(
            link_counterpart(&a, &b.join("contract.json"))
                .unwrap()
                .is_empty()
        );
        let config = tally_node::NodeConfig::load(&a.join("validator-2")).unwrap();
        assert_eq!(config.counterparts.len(), 1);
        assert_eq!(config.counterparts[0].name, "b");
        assert!(matches!(
            link_counterpart(&a, &a.join("contract.json")),
            Err(ProvisionError::SelfCounterpart(_))
        ));
    }
}
