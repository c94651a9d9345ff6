//! Notices (DESIGN §8; the wiring seed's server-to-server notice, steps 9–11): when this
//! validator votes a claim for an escrow whose lock answers an escrow on another network
//! (the maker's lock on B cites the payer's lock on A), it hands that network's validators
//! the same secret, as `EscrowClaim {escrow on A, secret}`, gathers their votes into a
//! certificate and gives it to them. The maker is paid on A even while it is offline, and a
//! payer that collected the claim certificate on B cannot hide the secret and refund on A.
//!
//! A notice leaves only once the batch holding the vote is durable (the committer sends it
//! after the commit), and goes as any client's claim would: every validator of this network
//! that voted sends it, so one slow or faulty validator does not stop it. To a
//! proof-of-work counterpart it goes as a transaction handed to a miner (found through the
//! contract's tracker), which relays it to the others; its broadcast publishes the secret
//! there too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tally_core::{
    EscrowClaim, EscrowId, Mode, NetworkContract, NetworkId, Order, SignedOrder, Transaction,
    TxStatus,
};
use tally_ledger::Validator;
use tally_proto::{EscrowQuery, EscrowStanding};
use tally_wallet::{ChainWalletError, MinerError, Miners, QuorumClient};
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// A claim to hand to a counterpart network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The network that holds the escrow the claim opens.
    pub network: NetworkId,
    pub claim: EscrowClaim,
}

/// Notices waiting at most; more are dropped with a warning (every other validator that
/// voted, and the claimant, deliver the same claim).
pub const QUEUE: usize = 1024;
/// How long a notice waits for each counterpart validator's answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Notices delivered at once.
const CONCURRENT: usize = 16;
/// Pauses between attempts at one notice; after the last, it is given up (with a warning).
const BACKOFF_MS: [u64; 6] = [0, 250, 500, 1_000, 2_000, 4_000];

/// The notice a vote for `order` calls for: a claim this validator just voted for, of an
/// escrow whose lock cites an escrow on another network.
pub fn notice_for(validator: &Validator, order: &Order) -> Option<Notice> {
    let Order::EscrowClaim(claim) = order else {
        return None;
    };
    let counterpart = validator.escrow(&claim.escrow)?.lock.counterpart?;
    Some(Notice {
        network: counterpart.network,
        claim: EscrowClaim {
            escrow: counterpart.escrow?,
            secret: claim.secret,
        },
    })
}

/// Delivers notices from `queue` until `cancel`, to the networks in `counterparts`.
pub async fn run(
    counterparts: Vec<NetworkContract>,
    timeout: Duration,
    mut queue: mpsc::Receiver<Notice>,
    cancel: CancellationToken,
) {
    let mut clients: HashMap<NetworkId, Arc<Counterpart>> = HashMap::new();
    for contract in counterparts {
        let id = contract.id();
        if contract.mode == Mode::Pow {
            clients.insert(id, Arc::new(Counterpart::Chain(contract, timeout)));
            continue;
        }
        match QuorumClient::new(contract, timeout) {
            Ok(client) => {
                clients.insert(id, Arc::new(Counterpart::Quorum(client)));
            }
            Err(error) => {
                tracing::warn!(network = %id, %error, "counterpart network unusable; no notices to it")
            }
        }
    }
    let slots = Arc::new(Semaphore::new(CONCURRENT));
    let in_flight: Arc<Mutex<HashSet<EscrowId>>> = Arc::default();
    loop {
        let notice = tokio::select! {
            () = cancel.cancelled() => return,
            notice = queue.recv() => match notice {
                Some(notice) => notice,
                None => return,
            },
        };
        let Some(client) = clients.get(&notice.network).cloned() else {
            tracing::warn!(network = %notice.network, "a claim cites a network this node does not know; no notice sent");
            continue;
        };
        if !in_flight.lock().await.insert(notice.claim.escrow) {
            continue;
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (in_flight, cancel) = (in_flight.clone(), cancel.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = deliver(&client, notice) => {}
            }
            in_flight.lock().await.remove(&notice.claim.escrow);
            drop(permit);
        });
    }
}

/// A counterpart network as notices reach it.
enum Counterpart {
    /// Its validators.
    Quorum(QuorumClient),
    /// Its contract: the miners are found through its tracker at each delivery.
    Chain(NetworkContract, Duration),
}

async fn deliver(counterpart: &Counterpart, notice: Notice) {
    match counterpart {
        Counterpart::Quorum(client) => deliver_certified(client, notice).await,
        Counterpart::Chain(contract, timeout) => deliver_mined(contract, *timeout, notice).await,
    }
}

/// Hands the claim to one of the chain's miners (which relays it), retrying with pauses
/// while no miner takes it; stops once a miner holds it (pending or mined) or the escrow
/// cannot take it any more (settled, or past its deadline: the claimant's own concern).
async fn deliver_mined(contract: &NetworkContract, timeout: Duration, notice: Notice) {
    let tx = Transaction::from(SignedOrder::unsigned(Order::EscrowClaim(notice.claim)));
    let escrow = notice.claim.escrow;
    for pause in BACKOFF_MS {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let miners = match Miners::locate(contract, timeout).await {
            Ok(miners) => miners,
            Err(error) => {
                tracing::debug!(escrow = %escrow, %error, "no miner found for the notice yet");
                continue;
            }
        };
        if let Ok((TxStatus::Pending | TxStatus::Confirmed { .. } | TxStatus::Buried { .. }, _)) =
            miners.status(&tx).await
        {
            tracing::debug!(escrow = %escrow, "the counterpart chain holds the claim already");
            return;
        }
        match miners.push(&tx).await {
            Ok(miner) => {
                tracing::info!(escrow = %escrow, network = %notice.network, %miner, "notice: claim handed to the counterpart chain");
                return;
            }
            Err(ChainWalletError::Miner(MinerError::Rejected(reason))) => {
                tracing::info!(escrow = %escrow, %reason, "the counterpart chain takes no claim of this escrow");
                return;
            }
            Err(error) => tracing::debug!(escrow = %escrow, %error, "notice not taken yet"),
        }
    }
    tracing::warn!(escrow = %escrow, network = %notice.network, "notice given up; the claimant must claim itself");
}

/// Certifies the claim on the counterpart network and hands the certificate to its
/// validators, retrying with pauses while it cannot; stops once the escrow is settled
/// there (by this notice, another validator's, or the claimant).
async fn deliver_certified(client: &QuorumClient, notice: Notice) {
    let order = SignedOrder::unsigned(Order::EscrowClaim(notice.claim));
    let escrow = notice.claim.escrow;
    for pause in BACKOFF_MS {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if settled(client, &escrow).await {
            tracing::debug!(escrow = %escrow, "counterpart escrow already settled");
            return;
        }
        match client.certify_held(&order).await {
            Ok(certificate) => {
                let applied = client
                    .submit(&certificate)
                    .await
                    .iter()
                    .filter(|answer| answer.result.is_ok())
                    .count();
                tracing::info!(escrow = %escrow, network = %notice.network, applied, "notice: claim certified on the counterpart network");
                return;
            }
            Err(error) => {
                tracing::debug!(escrow = %escrow, %error, "notice not certified yet");
            }
        }
    }
    tracing::warn!(escrow = %escrow, network = %notice.network, "notice given up; the claimant must claim itself");
}

/// Whether a quorum of the counterpart's validators report the escrow settled.
async fn settled(client: &QuorumClient, escrow: &EscrowId) -> bool {
    let settled = client
        .escrow_all(&EscrowQuery::Id(*escrow))
        .await
        .into_iter()
        .filter_map(|answer| answer.result.ok())
        .filter(|view| {
            matches!(
                view.standing,
                Some(EscrowStanding::Claimed | EscrowStanding::Refunded)
            )
        })
        .count();
    settled >= client.committee().quorum()
}
