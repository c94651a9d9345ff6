//! The quorum network under abuse: four `tally node` validators, a genesis of 1,001
//! accounts (a full ledger page is 1,000 of them, about 150 KB of answer). The honest
//! wallet pays one payment at a time and waits for it to be certified and applied by a
//! quorum. The stranger's expensive request is a full `REQ_LEDGER` page, aimed at every
//! validator at once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tally_core::{Amount, Order, SecretKey, SignedOrder, Transfer};
use tally_proto::{LedgerRequest, Packet, encode_frame};
use tally_wallet::QuorumClient;

use super::attack::Attack;
use super::{Abuse, Service, Target};
use crate::error::{BenchError, Context};
use crate::process::{Daemons, free_ports};
use crate::quorum::network::{Running, account_keys, start_validator_with, write_network};

/// Accounts in the genesis: a full ledger page and one more.
const ACCOUNTS: usize = 1001;

/// Four validators and the honest wallet: one account paying another.
pub(super) struct QuorumTarget {
    validators: Vec<Running>,
    logs: Vec<PathBuf>,
    client: QuorumClient,
    key: SecretKey,
    to: tally_core::AccountId,
    network: tally_core::NetworkId,
    quorum: usize,
    sequence: AtomicU64,
}

impl QuorumTarget {
    /// Writes the network into `work` and starts its validators, logging at INFO.
    pub(super) async fn start(
        work: &Path,
        tally: &Path,
        daemons: &Daemons,
    ) -> Result<QuorumTarget, BenchError> {
        let keys: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
        let accounts = account_keys(ACCOUNTS);
        let ports = free_ports(2 * keys.len())?;
        let contract = write_network(work, &keys, &accounts, &ports, "bench-abuse", None)?;
        let mut validators = Vec::with_capacity(keys.len());
        let mut logs = Vec::with_capacity(keys.len());
        for i in 0..keys.len() {
            let folder = work.join(format!("validator-{i}"));
            validators.push(
                start_validator_with(tally, &folder, daemons, &[("TALLY_LOG", "info")]).await?,
            );
            logs.push(folder.join("node.log"));
        }
        Ok(QuorumTarget {
            validators,
            logs,
            client: QuorumClient::new(contract.clone(), Duration::from_secs(10))
                .context("the honest wallet")?,
            key: accounts[0].clone(),
            to: accounts[1].account(),
            network: contract.id(),
            quorum: tally_core::Committee::new(&contract.validators)
                .context("the bench's committee")?
                .quorum(),
            sequence: AtomicU64::new(0),
        })
    }
}

fn frame(packet: &Packet) -> Vec<u8> {
    encode_frame(&serde_json::to_vec(packet).unwrap_or_default())
}

impl Target for QuorumTarget {
    fn service(&self) -> Service {
        Service::Quorum
    }

    fn honest_does(&self) -> &'static str {
        "pays one payment at a time to 4 `tally node` validators (certified and applied by a quorum)"
    }

    fn pids(&self) -> Vec<u32> {
        self.validators.iter().map(|v| v.pid).collect()
    }

    fn logs(&self) -> Vec<PathBuf> {
        self.logs.clone()
    }

    async fn honest(&self) -> Result<Duration, String> {
        let sequence = self.sequence.load(Ordering::Relaxed);
        let started = Instant::now();
        let order = SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: self.key.account(),
                recipient: self.to,
                amount: Amount::from_microcash(1),
                sequence,
            }),
            &self.key,
            &self.network,
        );
        let certificate = self
            .client
            .certify(&order)
            .await
            .map_err(|e| e.to_string())?;
        // Certified: the slot is used whatever the submissions say.
        self.sequence.store(sequence + 1, Ordering::Relaxed);
        let acks = self.client.submit(&certificate).await;
        let ok = acks.iter().filter(|a| a.result.is_ok()).count();
        if ok < self.quorum {
            return Err(format!("only {ok} validators applied the certificate"));
        }
        Ok(started.elapsed())
    }

    fn attacks(&self, abuse: Abuse) -> Option<Vec<Attack>> {
        let page = frame(&Packet::ReqLedger(LedgerRequest::default()));
        // One cheap real question: not idle, not abusive.
        let cheap = frame(&Packet::ReqLedger(LedgerRequest {
            accounts: Some(Vec::new()),
            ..LedgerRequest::default()
        }));
        let per_validator = |v: &Running| match abuse {
            Abuse::None => None,
            Abuse::NeverReads => Some(Attack::pipeline(v.address, 8, page.repeat(1000), false)),
            Abuse::ExpensivePipelined => {
                Some(Attack::pipeline(v.address, 4, page.repeat(16), true))
            }
            Abuse::MalformedFlood => Some(Attack::pipeline(v.address, 4, vec![0u8; 80_000], false)),
            Abuse::HoldsConnections => Some(Attack::Hold {
                to: v.address,
                prelude: Vec::new(),
                cheap: cheap.clone(),
            }),
            Abuse::HalfSentHttp => Some(Attack::HalfSentHttp { to: v.rpc }),
        };
        Some(self.validators.iter().filter_map(per_validator).collect())
    }
}
