//! A proof-of-work node under abuse: one `tally node` on a miner folder (not mining, so
//! hashing does not take the cores the measurement needs), registered with a `tally
//! tracker` (the next module abuses that one). A genesis of 1,001 funded accounts makes a
//! full `REQ_LEDGER` page (1,000 accounts) the stranger's expensive request. The honest
//! wallet hands the node one transfer at a time (`PUSH_TRANSACTION`, answered once the
//! transfer is checked and in the mempool) every 2 ms, from 1,000 accounts in turn so no
//! account's pending transfers reach the mempool's per-account cap.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tally_core::{
    Allocation, Amount, NetworkContract, NetworkId, SecretKey, Transaction, Transfer,
};
use tally_network::{PowSpec, create_pow};
use tally_node::pow::MinerFiles;
use tally_proto::encode_frame;
use tally_proto::pow::{MAX_LEDGER_PAGE, PowPacket, ReqAccount, ReqLedger, WireLimits};

use super::attack::Attack;
use super::{Abuse, START_TIMEOUT, Service, Target};
use crate::error::{BenchError, Context};
use crate::process::{Daemon, Daemons, free_ports};
use crate::quorum::network::{Running, account_keys, start_node};

/// Accounts in the genesis: a full ledger page and one more.
const ACCOUNTS: usize = 1001;
/// The accounts the honest wallet pays from, in turn: at its pace, a thousand accounts'
/// pending transfers stay under the mempool's caps (1,000 per account, 200,000 in all) for
/// several minutes of scenarios.
const PAYERS: usize = 1000;

/// A tracker and one miner registered with it.
pub(super) struct PowNetwork {
    pub(super) contract: NetworkContract,
    pub(super) accounts: Vec<SecretKey>,
    pub(super) tracker: SocketAddr,
    pub(super) tracker_pid: u32,
    pub(super) tracker_log: PathBuf,
    pub(super) miner: Running,
    pub(super) miner_log: PathBuf,
}

impl PowNetwork {
    /// Creates the network in `work` and starts the tracker, then the miner, both
    /// logging at INFO.
    pub(super) async fn start(
        work: &Path,
        tally: &Path,
        daemons: &Daemons,
    ) -> Result<PowNetwork, BenchError> {
        let ports = free_ports(3)?;
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let tracker = at(ports[0]);
        let created = create_pow(&PowSpec {
            dir: work.to_path_buf(),
            miners: 1,
            name: "bench-abuse-pow".into(),
            block_time: Duration::from_secs(10),
            reward: Amount::from_microcash(50_000_000),
            // Low, so that the block scenarios' honest miner mines a block in a few
            // milliseconds (this node does not mine).
            initial_bits: 12,
            retarget_window: 0,
            max_block_transactions: 1000,
            max_block_bytes: 1_000_000,
            pow_bits: 8,
            tracker: tracker.to_string(),
            base_port: ports[1],
            fund: 0,
            fund_amount: Amount::ZERO,
        })
        .context("creating the proof-of-work network")?;
        // Fund the bench's own accounts, and give the miner the free ports.
        let accounts = account_keys(ACCOUNTS);
        let mut contract = created.contract;
        contract.genesis = accounts
            .iter()
            .map(|key| Allocation {
                account: key.account(),
                amount: Amount::from_microcash(1_000_000_000),
            })
            .collect();
        contract.validate().context("the bench's pow contract")?;
        write(&created.contract_path, contract.to_pretty_json().as_bytes())?;
        let folder = created
            .miner_dirs
            .first()
            .cloned()
            .ok_or_else(|| BenchError::Check("no miner folder was created".into()))?;
        let config_path = folder.join(MinerFiles::CONFIG);
        let mut files: MinerFiles = serde_json::from_slice(
            &std::fs::read(&config_path)
                .with_context(|| format!("reading {}", config_path.display()))?,
        )
        .context("the miner's config")?;
        files.listen = at(ports[1]);
        files.rpc = at(ports[2]);
        write(
            &config_path,
            &serde_json::to_vec_pretty(&files).context("encoding the miner's config")?,
        )?;

        let tracker_log = work.join("tracker.log");
        let mut command = std::process::Command::new(tally);
        command
            .args(["tracker", "--listen", &tracker.to_string(), "--data-dir"])
            .arg(work.join("tracker-data"))
            .arg("--contract")
            .arg(&created.contract_path)
            .env("TALLY_LOG", "info");
        let (daemon, _) = Daemon::start(
            command,
            "tracker",
            "tracker listening on ",
            Some(&tracker_log),
            START_TIMEOUT,
        )
        .await?;
        let tracker_pid = daemon.pid();
        daemons.adopt(daemon);
        let miner = start_node(tally, &folder, daemons, &[("TALLY_LOG", "info")], "miner").await?;
        Ok(PowNetwork {
            contract,
            accounts,
            tracker,
            tracker_pid,
            tracker_log,
            miner,
            miner_log: folder.join("node.log"),
        })
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub(super) fn frame(packet: &PowPacket) -> Vec<u8> {
    encode_frame(&packet.encode())
}

/// The miner, and the honest wallet's accounts and their next sequences.
pub(super) struct MinerTarget<'a> {
    network: &'a PowNetwork,
    id: NetworkId,
    paid: AtomicU64,
}

impl<'a> MinerTarget<'a> {
    pub(super) fn new(network: &'a PowNetwork) -> MinerTarget<'a> {
        MinerTarget {
            network,
            id: network.contract.id(),
            paid: AtomicU64::new(0),
        }
    }
}

impl Target for MinerTarget<'_> {
    fn service(&self) -> Service {
        Service::Miner
    }

    fn honest_does(&self) -> &'static str {
        "hands one transfer at a time to a `tally node` miner (checked and taken into its mempool)"
    }

    /// A transfer every 2 ms or so: a busy wallet, not a flood.
    fn pace(&self) -> Duration {
        Duration::from_millis(2)
    }

    fn pids(&self) -> Vec<u32> {
        vec![self.network.miner.pid]
    }

    fn logs(&self) -> Vec<PathBuf> {
        vec![self.network.miner_log.clone()]
    }

    async fn honest(&self) -> Result<Duration, String> {
        let n = self.paid.load(Ordering::Relaxed);
        let payer = &self.network.accounts[(n % PAYERS as u64) as usize];
        let to = self.network.accounts[PAYERS].account();
        let transaction = Transaction::sign(
            Transfer {
                sender: payer.account(),
                recipient: to,
                amount: Amount::from_microcash(1),
                sequence: n / PAYERS as u64,
            },
            payer,
            &self.id,
        );
        let started = Instant::now();
        let address = self.network.miner.address.to_string();
        let taken =
            tally_wallet::miner::push_transaction(&address, &transaction, WireLimits::default())
                .await;
        // Taken or refused, the sequence is spoken for only if taken.
        taken.map_err(|e| e.to_string())?;
        self.paid.store(n + 1, Ordering::Relaxed);
        Ok(started.elapsed())
    }

    fn attacks(&self, abuse: Abuse) -> Option<Vec<Attack>> {
        let to = self.network.miner.address;
        let page = frame(&PowPacket::ReqLedger(ReqLedger {
            after: None,
            limit: MAX_LEDGER_PAGE,
        }));
        let attack = match abuse {
            Abuse::None => return Some(Vec::new()),
            Abuse::NeverReads => Attack::pipeline(to, 8, page.repeat(1000), false),
            Abuse::ExpensivePipelined => Attack::pipeline(to, 4, page.repeat(16), true),
            Abuse::MalformedFlood => Attack::pipeline(to, 4, vec![0u8; 80_000], false),
            Abuse::HoldsConnections => Attack::Hold {
                to,
                prelude: Vec::new(),
                cheap: frame(&PowPacket::ReqAccount(ReqAccount {
                    account: self.network.accounts[0].account(),
                })),
            },
            Abuse::HalfSentHttp => Attack::HalfSentHttp {
                to: self.network.miner.rpc,
            },
        };
        Some(vec![attack])
    }
}
