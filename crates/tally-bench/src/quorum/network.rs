//! The networks the quorum benchmark runs: a contract funding the bench's accounts and one
//! folder per validator, on free loopback ports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tally_core::{Allocation, Amount, Mode, NetworkContract, SecretKey, ValidatorInfo, sha256};
use tally_node::NodeFiles;

use super::settings::{FUND_MICROCASH, START_TIMEOUT};
use crate::error::{BenchError, Context};

/// Deterministic account keys (the seeds do not matter; the validator keys make the
/// network unique), generated on every core.
pub(crate) fn account_keys(count: usize) -> Vec<SecretKey> {
    (0..count as u64)
        .into_par_iter()
        .map(|i| {
            let seed = sha256(&[b"tally-bench-account", &i.to_le_bytes()]);
            SecretKey::from_bytes(*seed.as_bytes())
        })
        .collect()
}

/// Writes `dir/contract.json` (compact JSON; escrows taken with a clock skew bound) and one folder `validator-<i>` per validator,
/// validator i listening on `ports[2i]` with its control API on `ports[2i + 1]`.
pub(crate) fn write_network(
    dir: &Path,
    validators: &[SecretKey],
    accounts: &[SecretKey],
    ports: &[u16],
    name: &str,
    clock_skew_ms: Option<u64>,
) -> Result<NetworkContract, BenchError> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let contract = NetworkContract {
        name: name.into(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: Amount::from_microcash(10_000_000),
        intro_pow_bits: 20,
        validators: validators
            .iter()
            .enumerate()
            .map(|(i, key)| ValidatorInfo {
                key: key.account(),
                address: format!("127.0.0.1:{}", ports[2 * i]),
            })
            .collect(),
        tracker: None,
        genesis: accounts
            .iter()
            .map(|key| Allocation {
                account: key.account(),
                amount: Amount::from_microcash(FUND_MICROCASH),
            })
            .collect(),
        pow: None,
        max_clock_skew_ms: clock_skew_ms,
    };
    contract.validate().context("the bench's contract")?;
    let path = dir.join("contract.json");
    std::fs::write(&path, contract.canonical_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    for (i, key) in validators.iter().enumerate() {
        let folder = dir.join(format!("validator-{i}"));
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        let files = NodeFiles {
            contract: PathBuf::from("../contract.json"),
            listen: SocketAddr::from(([127, 0, 0, 1], ports[2 * i])),
            rpc: SocketAddr::from(([127, 0, 0, 1], ports[2 * i + 1])),
            key_pow: None,
            advertise: None,
            counterparts: Vec::new(),
        };
        let config = serde_json::to_string_pretty(&files).context("encoding node.json")?;
        std::fs::write(folder.join(NodeFiles::CONFIG), config)
            .with_context(|| format!("writing {}", folder.display()))?;
        std::fs::write(folder.join(NodeFiles::KEY), key.to_hex())
            .with_context(|| format!("writing {}", folder.display()))?;
    }
    Ok(contract)
}

/// A running `tally node`: its process (killed through [`crate::process::Daemons`]) and
/// its addresses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Running {
    pub pid: u32,
    pub address: SocketAddr,
    pub rpc: SocketAddr,
}

/// Starts `tally node --dir folder`, waits until it listens, and hands it to `daemons`.
pub(crate) async fn start_validator(
    tally: &Path,
    folder: &Path,
    daemons: &crate::process::Daemons,
) -> Result<Running, BenchError> {
    start_validator_with(tally, folder, daemons, &[]).await
}

/// [`start_validator`] with these environment variables (`TALLY_LOG` to log more than
/// warnings).
pub(crate) async fn start_validator_with(
    tally: &Path,
    folder: &Path,
    daemons: &crate::process::Daemons,
    env: &[(&str, &str)],
) -> Result<Running, BenchError> {
    start_node(tally, folder, daemons, env, "validator").await
}

/// Starts `tally node --dir folder` (a `validator` or a `miner` folder, as `kind` says and
/// its start line names it) with these environment variables, waits until it listens,
/// and hands it to `daemons`; it logs to `folder/node.log`.
pub(crate) async fn start_node(
    tally: &Path,
    folder: &Path,
    daemons: &crate::process::Daemons,
    env: &[(&str, &str)],
    kind: &str,
) -> Result<Running, BenchError> {
    let mut command = std::process::Command::new(tally);
    command.arg("node").arg("--dir").arg(folder);
    command.envs(env.iter().copied());
    let (daemon, line) = crate::process::Daemon::start(
        command,
        &format!("{kind} {}", folder.display()),
        &format!("{kind} listening on "),
        Some(&folder.join("node.log")),
        START_TIMEOUT,
    )
    .await?;
    let pid = daemon.pid();
    daemons.adopt(daemon);
    // `ADDR (control API RPC)`
    let odd = || BenchError::Check(format!("odd start line: {line}"));
    let mut words = line.split_whitespace();
    let address: SocketAddr = words.next().and_then(|w| w.parse().ok()).ok_or_else(odd)?;
    let rpc: SocketAddr = words
        .nth(2)
        .map(|w| w.trim_end_matches(')'))
        .and_then(|w| w.parse().ok())
        .ok_or_else(odd)?;
    Ok(Running { pid, address, rpc })
}
