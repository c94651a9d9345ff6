//! How a validator is configured: its folder holds `node.json` and its secret `key`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tally_core::{NetworkContract, SecretKey};
use tally_proto::Limits;
use tally_proto::admission::AdmissionLimits;

use crate::discovery::TrackerSettings;

/// What a validator folder's `node.json` says.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFiles {
    /// The contract, relative to the folder or absolute.
    pub contract: PathBuf,
    /// Where the node protocol listens.
    pub listen: SocketAddr,
    /// Where the control API listens.
    pub rpc: SocketAddr,
    /// The proof of work of the validator's key, which the contract's tracker asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pow: Option<u64>,
    /// The address to register with the tracker, when it is not where the node listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<SocketAddr>,
    /// Contracts of other networks that escrows here may cite as their counterpart (the
    /// validator sends their validators the secret a claim here reveals: DESIGN §8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counterparts: Vec<PathBuf>,
}

impl NodeFiles {
    /// The name of the config file in a validator folder.
    pub const CONFIG: &'static str = "node.json";
    /// The name of the secret key file in a validator folder.
    pub const KEY: &'static str = "key";
}

/// Everything a running validator needs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub contract: NetworkContract,
    pub key: SecretKey,
    pub listen: SocketAddr,
    /// The control API's address; `None` runs without one.
    pub rpc: Option<SocketAddr>,
    /// Where `ledger.redb` lives.
    pub data_dir: PathBuf,
    /// Frame size and socket timeouts.
    pub limits: Limits,
    /// How long an idle client connection is kept.
    pub idle_timeout: Duration,
    /// How many connections are served at once, from one address, and kept for the
    /// committee's own addresses.
    pub admission: AdmissionLimits,
    /// The most requests one connection may have in flight (read and not yet answered
    /// whole): a client that stops reading stops being read.
    pub max_in_flight: usize,
    /// The largest request frame read, in bytes (answers may be up to
    /// [`Limits::max_frame`]): the memory a half-sent request can hold.
    pub max_request: usize,
    /// Bulk answers (certificate and ledger pages) all strangers' connections together may
    /// have computed or unwritten at once.
    pub max_bulk_answers: usize,
    /// Bulk requests one stranger address may have served per second (twice that in a
    /// burst; 0: no limit). The committee's own addresses are not held to it.
    pub bulk_per_sec: u64,
    /// The most requests in one engine batch.
    pub max_batch: usize,
    /// How often to ask peers for certificates we miss.
    pub sync_interval: Duration,
    /// redb page cache.
    pub cache_bytes: usize,
    /// Registration with the contract's tracker; `None` relies on the contract's addresses.
    pub tracker: Option<TrackerSettings>,
    /// Networks escrows here may cite (see [`NodeFiles::counterparts`]).
    pub counterparts: Vec<NetworkContract>,
}

/// Why a validator folder cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl NodeConfig {
    /// Defaults around the three things that differ per validator.
    pub fn new(
        contract: NetworkContract,
        key: SecretKey,
        listen: SocketAddr,
        data_dir: PathBuf,
    ) -> Self {
        NodeConfig {
            contract,
            key,
            listen,
            rpc: None,
            data_dir,
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(120),
            admission: AdmissionLimits {
                max_total: 1024,
                max_per_source: 64,
                reserved: 64,
            },
            max_in_flight: 256,
            max_request: 1024 * 1024,
            max_bulk_answers: 8,
            bulk_per_sec: 20,
            max_batch: 8192,
            sync_interval: Duration::from_secs(1),
            cache_bytes: 32 * 1024 * 1024,
            tracker: None,
            counterparts: Vec::new(),
        }
    }

    /// Loads a validator folder written by `tally network new`.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let read = |path: PathBuf| {
            std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path, source })
        };
        let config_path = dir.join(NodeFiles::CONFIG);
        let files: NodeFiles = serde_json::from_str(&read(config_path.clone())?).map_err(|e| {
            ConfigError::Invalid {
                path: config_path,
                message: e.to_string(),
            }
        })?;
        let contract_path = dir.join(&files.contract);
        let contract = NetworkContract::from_json(&read(contract_path.clone())?).map_err(|e| {
            ConfigError::Invalid {
                path: contract_path,
                message: e.to_string(),
            }
        })?;
        let key_path = dir.join(NodeFiles::KEY);
        let key: SecretKey =
            read(key_path.clone())?
                .parse()
                .map_err(|e: tally_core::KeyError| ConfigError::Invalid {
                    path: key_path.clone(),
                    message: e.to_string(),
                })?;
        if !contract.validators.iter().any(|v| v.key == key.account()) {
            return Err(ConfigError::Invalid {
                path: key_path,
                message: format!("key {} is not in the contract's committee", key.account()),
            });
        }
        let tracker = match (&contract.tracker, files.key_pow) {
            (Some(address), Some(key_pow)) => {
                let mut settings = TrackerSettings::new(address.clone(), key_pow);
                settings.advertise = files.advertise;
                Some(settings)
            }
            (Some(address), None) => {
                tracing::warn!(
                    tracker = %address,
                    "the contract names a tracker but node.json has no key_pow; not registering"
                );
                None
            }
            (None, _) => None,
        };
        let mut counterparts = Vec::with_capacity(files.counterparts.len());
        for path in &files.counterparts {
            let path = dir.join(path);
            let counterpart = NetworkContract::from_json(&read(path.clone())?).map_err(|e| {
                ConfigError::Invalid {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?;
            counterparts.push(counterpart);
        }
        let mut config = NodeConfig::new(contract, key, files.listen, dir.to_path_buf());
        config.rpc = Some(files.rpc);
        config.tracker = tracker;
        config.counterparts = counterparts;
        Ok(config)
    }
}
