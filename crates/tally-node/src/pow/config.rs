//! How a miner is configured. A miner folder (written by `tally network new pow`) holds
//! `miner.json` and the node's secret `key`; the chain lives in `chain.redb` beside them.
//! This is separate from the validator's `node.json` because a miner has no committee seat
//! and needs the tracker, mining threads and a reward account instead.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tally_core::{AccountId, Mode, NetworkContract, SecretKey};

use crate::pow::peers::ScorePolicy;
use tally_proto::pow::{MAX_BLOCKS_PER_BATCH, WireLimits};

/// How many blocks one connection may have us read and send (`SEND_REQUEST`), as a token
/// bucket: a request costs one token for its lookup plus one per block it returns, and a
/// request the bucket cannot pay is refused and scored
/// ([`Offense::RequestFlood`](crate::pow::peers::Offense::RequestFlood)). Without it, a
/// peer could make us read and encode blocks from disk as fast as it can ask.
///
/// `miner.json` sets it as `"block_requests": {"blocks_per_sec": …, "burst": …}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRequestLimits {
    /// Tokens earned per second (0: no limit). Default 5,000: ten full batches
    /// ([`MAX_BLOCKS_PER_BATCH`]) a second, while an honest miner asks one batch at a time
    /// and validates its blocks before asking for the next.
    pub blocks_per_sec: u64,
    /// Tokens saved up at most, and what a new connection starts with. Default 10,000:
    /// an initial sync of ten thousand blocks goes at full speed, the rest at the rate.
    /// Must pay at least one full batch.
    pub burst: u64,
}

impl BlockRequestLimits {
    /// What one `SEND_REQUEST` answered in full costs: the lookup and a full batch.
    pub const FULL_BATCH_COST: u64 = MAX_BLOCKS_PER_BATCH as u64 + 1;
}

impl Default for BlockRequestLimits {
    fn default() -> Self {
        BlockRequestLimits {
            blocks_per_sec: 5_000,
            burst: 10_000,
        }
    }
}

/// What a miner folder's `miner.json` says.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinerFiles {
    /// The contract, relative to the folder or absolute.
    pub contract: PathBuf,
    /// Where the miner accepts connections from miners and wallets.
    pub listen: SocketAddr,
    /// Where the control API listens.
    pub rpc: SocketAddr,
    /// The proof of work of the node key at the contract's `intro_pow_bits`, which the
    /// tracker asks for; computed at start when absent or wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_of_work: Option<u64>,
    /// Where block rewards go (default: the node key's account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miner_account: Option<AccountId>,
    /// Blocks served per connection (`SEND_REQUEST`'s rate limit); defaults when absent.
    #[serde(default)]
    pub block_requests: BlockRequestLimits,
    /// Contracts of networks this chain's escrows answer (relative to the folder or
    /// absolute): a claim this miner admits, of an escrow whose lock cites one of them, is
    /// handed to that network as a notice (DESIGN §8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counterparts: Vec<PathBuf>,
}

impl MinerFiles {
    /// The config file of a miner folder.
    pub const CONFIG: &'static str = "miner.json";
    /// The secret key file of a miner folder.
    pub const KEY: &'static str = "key";
    /// The chain database inside the data folder.
    pub const CHAIN_DB: &'static str = "chain.redb";
}

/// Everything a running miner needs.
#[derive(Clone, Debug)]
pub struct MinerConfig {
    /// The network (mode `pow`).
    pub contract: NetworkContract,
    /// The node key: its identity at the tracker, and the default reward account.
    pub key: SecretKey,
    /// Its proof of work at the contract's `intro_pow_bits` (`None`: computed at start).
    pub proof_of_work: Option<u64>,
    /// Where to accept connections (port 0 picks one).
    pub listen: SocketAddr,
    /// The address announced to the tracker and peers (default: the bound address).
    pub announce: Option<SocketAddr>,
    /// The control API's address; `None` runs without one.
    pub rpc: Option<SocketAddr>,
    /// Where `chain.redb` lives.
    pub data_dir: PathBuf,
    /// The tracker (`host:port`; default: the contract's). `None` and no contract
    /// tracker: peers only come from [`MinerConfig::peers`] and inbound connections.
    pub tracker: Option<String>,
    /// Peers to dial at start besides the tracker's list.
    pub peers: Vec<String>,
    /// Whether to mine (a node that only validates and relays when false).
    pub mine: bool,
    /// Mining threads (0: one per core).
    pub threads: usize,
    /// Where block rewards go (default: the node key's account).
    pub miner_account: Option<AccountId>,
    /// Frame size and socket timeouts.
    pub wire: WireLimits,
    /// Peer scoring.
    pub scoring: ScorePolicy,
    /// Blocks served per connection (`SEND_REQUEST`'s rate limit).
    pub block_requests: BlockRequestLimits,
    /// `REQ_LEDGER` pages one peer (one host, or one miner on loopback) has answered per
    /// second, up to twice that at once (0: no limit). A page is a thousand accounts
    /// encoded, about a millisecond of CPU: beyond the rate the peer's pages wait, so one
    /// host pipelining them cannot take the cores that blocks and payments need. Default
    /// 20, the validator's page rate; an honest wallet reads the ledger a page at a time.
    pub ledger_pages_per_sec: u64,
    /// Most miner connections (in and out).
    pub max_peers: usize,
    /// Most connections in all (miners and wallets).
    pub max_connections: usize,
    /// Most connections from one IP address (so one host cannot take every slot).
    pub max_connections_per_ip: usize,
    /// How often a miner re-sends `CONNECT` (keep-alive and tip comparison), asks the
    /// tracker for peers when it has few, and renews its registration.
    pub heartbeat: Duration,
    /// How often the tracker registration is renewed (below the tracker's TTL).
    pub register_every: Duration,
    /// How long a `SEND_REQUEST` may go unanswered.
    pub sync_timeout: Duration,
    /// Mining restarts on a fresh template this often when new transactions arrived.
    pub template_refresh: Duration,
    /// Tracker client timeouts and retries.
    pub tracker_client: tally_tracker::ClientConfig,
    /// Networks this chain's escrows answer: a claim admitted here of an escrow whose lock
    /// cites one of them is handed to it (a notice).
    pub counterparts: Vec<NetworkContract>,
}

/// Why a miner folder cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MinerConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl MinerConfig {
    /// Defaults around the things that differ per miner.
    pub fn new(
        contract: NetworkContract,
        key: SecretKey,
        listen: SocketAddr,
        data_dir: PathBuf,
    ) -> Self {
        let wire = contract.pow.as_ref().map_or_else(WireLimits::default, |p| {
            WireLimits::for_blocks(p.max_block_bytes)
        });
        MinerConfig {
            tracker: contract.tracker.clone(),
            contract,
            key,
            proof_of_work: None,
            listen,
            announce: None,
            rpc: None,
            data_dir,
            peers: Vec::new(),
            mine: false,
            threads: 0,
            miner_account: None,
            wire,
            scoring: ScorePolicy::default(),
            block_requests: BlockRequestLimits::default(),
            ledger_pages_per_sec: 20,
            max_peers: 32,
            max_connections: 512,
            max_connections_per_ip: 64,
            heartbeat: Duration::from_secs(30),
            register_every: Duration::from_secs(240),
            sync_timeout: Duration::from_secs(30),
            template_refresh: Duration::from_secs(1),
            tracker_client: tally_tracker::ClientConfig::default(),
            counterparts: Vec::new(),
        }
    }

    /// Whether `dir` is a miner folder (has `miner.json`).
    pub fn is_miner_dir(dir: &Path) -> bool {
        dir.join(MinerFiles::CONFIG).exists()
    }

    /// Loads a miner folder written by `tally network new pow`.
    pub fn load(dir: &Path) -> Result<Self, MinerConfigError> {
        let read = |path: PathBuf| {
            std::fs::read_to_string(&path).map_err(|source| MinerConfigError::Read { path, source })
        };
        let config_path = dir.join(MinerFiles::CONFIG);
        let invalid = |message: String| MinerConfigError::Invalid {
            path: config_path.clone(),
            message,
        };
        let files: MinerFiles = serde_json::from_str(&read(config_path.clone())?)
            .map_err(|e| invalid(e.to_string()))?;
        let block_requests = files.block_requests;
        if block_requests.blocks_per_sec > 0
            && block_requests.burst < BlockRequestLimits::FULL_BATCH_COST
        {
            return Err(invalid(format!(
                "block_requests.burst must be at least {} (one full batch), or every full batch \
                 is refused",
                BlockRequestLimits::FULL_BATCH_COST
            )));
        }
        let contract_path = dir.join(&files.contract);
        let contract = NetworkContract::from_json(&read(contract_path.clone())?).map_err(|e| {
            MinerConfigError::Invalid {
                path: contract_path.clone(),
                message: e.to_string(),
            }
        })?;
        if contract.mode != Mode::Pow {
            return Err(MinerConfigError::Invalid {
                path: contract_path,
                message: "not a proof-of-work network".into(),
            });
        }
        let key_path = dir.join(MinerFiles::KEY);
        let key: SecretKey =
            read(key_path.clone())?
                .trim()
                .parse()
                .map_err(|e: tally_core::KeyError| MinerConfigError::Invalid {
                    path: key_path,
                    message: e.to_string(),
                })?;
        let mut counterparts = Vec::with_capacity(files.counterparts.len());
        for path in &files.counterparts {
            let path = dir.join(path);
            let counterpart = NetworkContract::from_json(&read(path.clone())?).map_err(|e| {
                MinerConfigError::Invalid {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?;
            counterparts.push(counterpart);
        }
        let mut config = MinerConfig::new(contract, key, files.listen, dir.to_path_buf());
        config.counterparts = counterparts;
        config.rpc = Some(files.rpc);
        config.proof_of_work = files.proof_of_work;
        config.miner_account = files.miner_account;
        config.block_requests = block_requests;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tally_core::{Amount, PowParams};

    /// A miner folder whose `miner.json` has `extra` fields besides the required ones.
    fn folder(extra: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let contract = NetworkContract {
            name: "pow-config".into(),
            mode: Mode::Pow,
            unit: "cash".into(),
            faucet: Amount::ZERO,
            intro_pow_bits: 4,
            validators: vec![],
            tracker: None,
            genesis: vec![],
            pow: Some(PowParams {
                initial_bits: 8,
                block_time_ms: 1000,
                retarget_window: 0,
                block_reward: Amount::from_microcash(1),
                max_block_transactions: 10,
                max_block_bytes: 100_000,
            }),
            max_clock_skew_ms: None,
        };
        std::fs::write(dir.path().join("contract.json"), contract.to_pretty_json()).unwrap();
        std::fs::write(
            dir.path().join(MinerFiles::KEY),
            SecretKey::generate().to_hex(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(MinerFiles::CONFIG),
            format!(
                r#"{{"contract": "contract.json", "listen": "127.0.0.1:1", "rpc": "127.0.0.1:2"{extra}}}"#
            ),
        )
        .unwrap();
        dir
    }

    /// The block-serving budget is read from `miner.json` when given, defaults otherwise,
    /// and a burst that cannot pay one full batch (every honest sync would stall) or an
    /// unknown field is refused with the file named.
    #[test]
    fn block_request_limits_come_from_miner_json() {
        let plain = MinerConfig::load(folder("").path()).unwrap();
        assert_eq!(plain.block_requests, BlockRequestLimits::default());

        let tuned = folder(r#", "block_requests": {"blocks_per_sec": 100, "burst": 1000}"#);
        let tuned = MinerConfig::load(tuned.path()).unwrap();
        assert_eq!(
            tuned.block_requests,
            BlockRequestLimits {
                blocks_per_sec: 100,
                burst: 1000
            }
        );

        let small = folder(r#", "block_requests": {"blocks_per_sec": 100, "burst": 10}"#);
        let error = MinerConfig::load(small.path()).unwrap_err().to_string();
        assert!(error.contains("burst must be at least 501"), "{error}");

        let typo = folder(r#", "block_request": {"blocks_per_sec": 100, "burst": 1000}"#);
        let error = MinerConfig::load(typo.path()).unwrap_err().to_string();
        assert!(error.contains("miner.json"), "{error}");
    }
}
