//! A wire's proof-of-work side: the saga's locks, claims and refunds as chain
//! transactions, and the escrows it watches as the miners report them.
//!
//! What stands in for a certificate is depth: an escrow is reported once its lock has the
//! confirmations the wire asks for ([`Bounds::confirmations`]) at the best tip the miners
//! report, and settled once its claim or refund has them too. A secret is reported from
//! any miner that saw a claim show it, mined or not (checked against the hash lock). The
//! deadlines are times judged by the chain's median time past, so the sagas' timing rule
//! holds with the contract's ε as it does on a quorum network (ARCHITECTURE.md, "Escrows
//! on a proof-of-work network").

use tally_core::{
    AccountId, EscrowId, EscrowLock, EscrowSecret, NetworkContract, NetworkId, Order, SecretKey,
    Transaction,
};
use tally_proto::{EscrowQuery, EscrowStanding};
use tally_swap::{Event, LockTerms, Refusal, Standing};

use super::exec::{Settling, Transient};
use super::{Bounds, Proof};
use crate::chain::escrow as chain_escrow;
use crate::chain::{self, ChainWalletError, Miners, Waiting, confirmations};
use crate::miner::MinerError;
use crate::{ChainReceipt, Wallet};

/// How long a lock, claim or refund is followed to its confirmations before the driver
/// tries again later (a slow run of blocks).
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// A proof-of-work network of a wire, as this party reaches it.
pub struct ChainReach {
    pub miners: Miners,
    pub contract: NetworkContract,
    /// The confirmations an order needs before the wire counts it, and how long to wait.
    pub waiting: Waiting,
}

impl ChainReach {
    /// The network of `contract` through `miners`, counting orders at `bounds`'s depth.
    pub fn new(miners: Miners, contract: NetworkContract, bounds: &Bounds) -> Self {
        ChainReach {
            miners,
            contract,
            waiting: Waiting {
                confirmations: bounds.confirmations.max(1),
                patience: PATIENCE,
            },
        }
    }
}

/// Locks on the chain with `terms`, signed by `key`: a lock of these terms by this payer
/// already on the chain (a crash after it was sent) or journaled in the wallet is followed
/// to its confirmations, never signed again.
pub(super) async fn lock(
    wallet: &Wallet,
    reach: &ChainReach,
    network: NetworkId,
    terms: &LockTerms,
    key: &SecretKey,
) -> Result<(Event, Option<Proof>), Transient> {
    let payer = key.account();
    let status = chain_escrow::status(&reach.miners, &EscrowQuery::HashLock(terms.hash_lock)).await;
    if let (Some(view), Some(lock)) = (&status.best, status.lock())
        && lock.payer == payer
        && terms.matches(&lock)
    {
        let deep = status
            .depths()
            .0
            .is_some_and(|depth| depth >= reach.waiting.confirmations);
        return match (deep, view.escrow) {
            (true, Some(escrow)) => Ok((
                Event::Locked {
                    network,
                    escrow,
                    lock,
                },
                None,
            )),
            _ => Err(Transient(
                "the lock is on the chain, not deep enough yet".into(),
            )),
        };
    }
    let journaled =
        chain::journaled(wallet, &payer).map_err(|error| Transient(error.to_string()))?;
    let answer = match journaled {
        Some(tx) if matches!(&tx.order, Order::EscrowLock(lock) if terms.matches(lock)) => {
            chain::settle(wallet, &reach.miners, &tx, reach.waiting, &mut |_| {})
                .await
                .map(|(receipt, _)| receipt)
        }
        _ => {
            let asked = crate::escrow::LockTerms {
                payee: terms.payee,
                amount: terms.amount,
                hash_lock: terms.hash_lock,
                deadline_ms: terms.deadline_ms,
                counterpart: Some(terms.counterpart),
            };
            chain_escrow::lock(
                wallet,
                &reach.miners,
                &reach.contract,
                key,
                asked,
                reach.waiting,
                &mut |_| {},
            )
            .await
            .map(|locked| locked.receipt)
        }
    };
    match answer {
        Ok(receipt) => match &receipt.order.order {
            Order::EscrowLock(lock) => Ok((
                Event::Locked {
                    network,
                    escrow: receipt.order.order.digest(&network),
                    lock: **lock,
                },
                Some(Proof::Chain(receipt.clone())),
            )),
            other => Err(Transient(format!(
                "the confirmed order is a {}, not the lock",
                other.kind_name()
            ))),
        },
        Err(error) if lock_refused_for_good(&error) => {
            let reason = error.to_string();
            Ok((Event::LockRefused { network, reason }, None))
        }
        Err(error) => Err(Transient(error.to_string())),
    }
}

/// Whether a lock's failure is for good: refused before anything was signed (the terms,
/// the funds), or signed and refused by the first miner it was handed to (nobody holds
/// it: the wallet cleared its journal). Anything after a miner took it — confirmations
/// slow to come, a lost transaction refused when pushed again, the wallet failing to keep
/// the receipt — may pass: the lock may still be mined, so the driver asks again and finds
/// it on the chain or in the wallet's journal.
fn lock_refused_for_good(error: &ChainWalletError) -> bool {
    match error {
        ChainWalletError::Refused(_)
        | ChainWalletError::ZeroAmount
        | ChainWalletError::SelfPayment
        | ChainWalletError::Split(_)
        | ChainWalletError::InsufficientFunds { .. } => true,
        ChainWalletError::NotPushed(inner) => {
            matches!(**inner, ChainWalletError::Miner(MinerError::Rejected(_)))
        }
        ChainWalletError::NoTracker
        | ChainWalletError::Tracker { .. }
        | ChainWalletError::NoMiners { .. }
        | ChainWalletError::NoMinerAnswered(_)
        | ChainWalletError::Miner(_)
        | ChainWalletError::NotConfirmed { .. }
        | ChainWalletError::Wallet(_) => false,
    }
}

/// Claims (`secret` given) or refunds `escrow` and follows it to its confirmations: the
/// event the saga reads, and the receipt. A refusal is judged from the escrow afterwards:
/// settled already (by this settlement: done), past the deadline by the chain's median
/// time (a claim too late), before it (a refund too early), or anything else.
pub(super) async fn settle(
    wallet: &Wallet,
    reach: &ChainReach,
    network: NetworkId,
    escrow: EscrowId,
    secret: Option<EscrowSecret>,
) -> (Event, Option<Proof>) {
    let settling = Settling::of(secret);
    let answer = match secret {
        Some(secret) => {
            chain_escrow::claim(
                wallet,
                &reach.miners,
                escrow,
                secret,
                reach.waiting,
                &mut |_| {},
            )
            .await
        }
        None => {
            chain_escrow::refund(wallet, &reach.miners, escrow, reach.waiting, &mut |_| {}).await
        }
    };
    let error = match answer {
        Ok((receipt, _)) => {
            return (settling.done(network, escrow), Some(Proof::Chain(receipt)));
        }
        Err(error) => error,
    };
    let status = chain_escrow::status(&reach.miners, &EscrowQuery::Id(escrow)).await;
    let refusal = |refusal| (settling.refused(network, escrow, refusal), None);
    let (Some(lock), Some(standing), Some(median)) =
        (status.lock(), status.standing(), status.median_time_ms())
    else {
        return refusal(Refusal::Other(error.to_string()));
    };
    match (standing_of(standing), settling) {
        (Standing::Open, Settling::Claim) if median >= lock.deadline => refusal(Refusal::TooLate),
        (Standing::Open, Settling::Refund) if median < lock.deadline => refusal(Refusal::TooEarly),
        (Standing::Open, _) => refusal(Refusal::Other(error.to_string())),
        (settled, _) if settled == settling.standing() => {
            // Settled by this very order (sent earlier, or by someone else): done once
            // deep enough, else asked again later.
            match status.depths().1 {
                Some(depth) if depth >= reach.waiting.confirmations => {
                    (settling.done(network, escrow), None)
                }
                _ => refusal(Refusal::Other(error.to_string())),
            }
        }
        _ => refusal(Refusal::Settled),
    }
}

/// What a watch sees on the chain: the escrow once its lock is deep enough, settled once
/// its settlement is, and the secret once any miner saw it.
pub(super) async fn observe(
    reach: &ChainReach,
    network: NetworkId,
    query: &EscrowQuery,
) -> Vec<Event> {
    let status = chain_escrow::status(&reach.miners, query).await;
    let mut events = Vec::new();
    let wanted = reach.waiting.confirmations;
    let (lock_depth, settled_depth) = status.depths();
    if let (Some(view), Some(lock), Some(standing)) =
        (&status.best, status.lock(), status.standing())
        && let Some(escrow) = view.escrow
        && lock_depth.is_some_and(|depth| depth >= wanted)
    {
        let standing = match standing_of(standing) {
            Standing::Open => Standing::Open,
            settled if settled_depth.is_some_and(|depth| depth >= wanted) => settled,
            _ => Standing::Open,
        };
        events.push(Event::Seen {
            network,
            escrow,
            lock,
            standing,
        });
    }
    if let Some(secret) = status.secret {
        events.push(Event::SecretRevealed { network, secret });
    }
    events
}

/// The lock's transaction and the block that holds it, as the miners report it.
pub(super) async fn lock_proof(
    reach: &ChainReach,
    network: &NetworkId,
    lock: &EscrowLock,
) -> Option<Proof> {
    let id = tally_swap::escrow_id(network, lock);
    let status = chain_escrow::status(&reach.miners, &EscrowQuery::Id(id)).await;
    let view = status.best?;
    let tx: Transaction = view.lock_transaction?;
    let (height, depth) = view.lock_status.as_ref().and_then(confirmations)?;
    (tx.order == Order::from(*lock)).then(|| {
        Proof::Chain(ChainReceipt {
            id: tx.id(),
            height,
            confirmations: depth,
            order: tx.to_signed_order(),
        })
    })
}

/// `account`'s confirmed balance at a miner's tip.
pub(super) async fn balance(reach: &ChainReach, account: &AccountId) -> Option<i128> {
    let (state, _) = reach.miners.account(account).await.ok()?;
    Some(i128::from(state.balance.microcash()))
}

fn standing_of(standing: EscrowStanding) -> Standing {
    match standing {
        EscrowStanding::Open => Standing::Open,
        EscrowStanding::Claimed => Standing::Claimed,
        EscrowStanding::Refunded => Standing::Refunded,
    }
}
