//! Hash-locked escrows on a proof-of-work network (DESIGN §8): lock money for a payee
//! under a hash lock until a deadline, claim it with the secret, refund it once the chain
//! is past the deadline, and see how one stands across the miners. A deadline is a time
//! (ms since the Unix epoch), judged by the chain's median time past: the next block takes
//! a claim while the tip's median time is before the deadline, a refund once it has
//! reached it. The contract's ε bounds how far that median trails true time.
//!
//! A lock is a spend like a transfer: journaled in `pending/` before any miner sees it,
//! followed to its confirmations, kept as a receipt, and sent again if a reorganisation
//! loses it. A claim or refund needs no key and no journal: anyone can send it again, and
//! it has one encoding per escrow. The chain, not a quorum, decides which settlement
//! wins: the first one a block takes. So a claimant sends its claim well before the
//! deadline (a claim mined just before it can still be undone by a reorganisation and the
//! escrow refunded instead) and waits for confirmations before counting on it.

use std::path::PathBuf;

use tally_core::{
    EscrowClaim, EscrowId, EscrowLock, EscrowRefund, EscrowSecret, NetworkContract, Order,
    SecretKey, SignedOrder, Transaction, TxStatus,
};
use tally_proto::EscrowQuery;
use tally_proto::EscrowStanding;
use tally_proto::pow::ChainEscrowView;

use super::{ChainWalletError, Miners, SendEvent, Waiting, confirmations, send_order, settle};
use crate::miner::{self, MinerError};
use crate::wallet::{ChainReceipt, Wallet};

/// What to lock: the same terms as on a quorum network; the deadline is judged by the
/// chain's median time past (claims while it is before it, refunds once it has reached it).
pub use crate::escrow::LockTerms;

/// A lock confirmed on the chain.
#[derive(Clone, Debug)]
pub struct ChainLocked {
    pub escrow: EscrowId,
    pub lock: EscrowLock,
    pub receipt: ChainReceipt,
    pub path: PathBuf,
}

/// Locks `terms.amount` of `key`'s money for `terms.payee` until `terms.deadline_ms`, and
/// waits for the lock's confirmations. Refused here, before anything is signed, when the
/// contract declares no ε (the network takes no escrows a wallet can time), or the
/// deadline leaves no time to claim: it must be more than twice ε plus the blocks of the
/// confirmations asked for (and one more) ahead of this machine's clock.
pub async fn lock(
    wallet: &Wallet,
    miners: &Miners,
    contract: &NetworkContract,
    key: &SecretKey,
    terms: LockTerms,
    waiting: Waiting,
    progress: &mut (dyn FnMut(SendEvent) + Send),
) -> Result<ChainLocked, ChainWalletError> {
    let payer = key.account();
    if terms.amount.is_zero() {
        return Err(ChainWalletError::ZeroAmount);
    }
    if terms.payee == payer {
        return Err(ChainWalletError::Refused(
            "an escrow cannot pay its own payer".into(),
        ));
    }
    let skew = contract.max_clock_skew_ms.ok_or_else(|| {
        ChainWalletError::Refused(format!(
            "network {} takes no escrows: its contract declares no clock skew bound",
            contract.name
        ))
    })?;
    let block_time = contract.pow.as_ref().map_or(0, |pow| pow.block_time_ms);
    let least = skew
        .saturating_mul(2)
        .saturating_add(block_time.saturating_mul(waiting.confirmations.saturating_add(1)));
    let now = crate::escrow::unix_ms();
    if terms.deadline_ms <= now.saturating_add(least) {
        return Err(ChainWalletError::Refused(format!(
            "the deadline is {} ms away; it must be more than {least} ms ahead (twice the chain's clock skew bound of {skew} ms, and {} blocks)",
            terms.deadline_ms.saturating_sub(now),
            waiting.confirmations.saturating_add(1)
        )));
    }
    let order = |sequence| {
        Order::from(EscrowLock {
            payer,
            sequence,
            payee: terms.payee,
            amount: terms.amount,
            hash_lock: terms.hash_lock,
            deadline: terms.deadline_ms,
            counterpart: terms.counterpart,
        })
    };
    let sent = send_order(wallet, miners, key, terms.amount, order, waiting, progress).await?;
    let Order::EscrowLock(lock) = &sent.receipt.order.order else {
        // The account's journal held an earlier spend, finished first; then this lock was
        // confirmed: `send_order` returns this one's receipt.
        return Err(ChainWalletError::Refused(format!(
            "the confirmed order is a {}, not the escrow lock",
            sent.receipt.order.order.kind_name()
        )));
    };
    Ok(ChainLocked {
        escrow: sent.receipt.order.order.digest(miners.network()),
        lock: **lock,
        receipt: sent.receipt.clone(),
        path: sent.path,
    })
}

/// Claims escrow `escrow` for its payee with `secret` and waits for the claim's
/// confirmations (anyone may: no key signs a claim).
pub async fn claim(
    wallet: &Wallet,
    miners: &Miners,
    escrow: EscrowId,
    secret: EscrowSecret,
    waiting: Waiting,
    progress: &mut (dyn FnMut(SendEvent) + Send),
) -> Result<(ChainReceipt, PathBuf), ChainWalletError> {
    let order = Order::EscrowClaim(EscrowClaim { escrow, secret });
    settle_escrow(wallet, miners, order, waiting, progress).await
}

/// Returns escrow `escrow` to its payer once the chain is past its deadline, and waits for
/// the refund's confirmations.
pub async fn refund(
    wallet: &Wallet,
    miners: &Miners,
    escrow: EscrowId,
    waiting: Waiting,
    progress: &mut (dyn FnMut(SendEvent) + Send),
) -> Result<(ChainReceipt, PathBuf), ChainWalletError> {
    let order = Order::EscrowRefund(EscrowRefund { escrow });
    settle_escrow(wallet, miners, order, waiting, progress).await
}

/// Sends a claim or refund (unless the miners already hold it, pending or mined) and
/// follows it to its confirmations; the receipt is kept like a payment's.
async fn settle_escrow(
    wallet: &Wallet,
    miners: &Miners,
    order: Order,
    waiting: Waiting,
    progress: &mut (dyn FnMut(SendEvent) + Send),
) -> Result<(ChainReceipt, PathBuf), ChainWalletError> {
    let tx = Transaction::from(SignedOrder::unsigned(order));
    let (status, _) = miners.status(&tx).await?;
    if status == TxStatus::Unknown {
        miners.push(&tx).await?;
    }
    settle(wallet, miners, &tx, waiting, progress).await
}

/// How an escrow stands across the miners that answered.
#[derive(Clone, Debug, Default)]
pub struct ChainEscrowStatus {
    /// The answer of the miner with the highest tip (the chain most likely to last).
    pub best: Option<ChainEscrowView>,
    /// The secret, once any miner saw a claim show it (checked against the hash lock).
    pub secret: Option<EscrowSecret>,
    /// Miners asked, and those that answered.
    pub asked: usize,
    pub answered: usize,
}

impl ChainEscrowStatus {
    /// The escrow's id, lock and standing at the best tip.
    pub fn lock(&self) -> Option<EscrowLock> {
        self.best.as_ref().and_then(|view| view.lock)
    }

    /// How it stands at the best tip (`None`: its lock is not on that chain).
    pub fn standing(&self) -> Option<EscrowStanding> {
        self.best.as_ref().and_then(|view| view.standing)
    }

    /// The best tip's height.
    pub fn tip_height(&self) -> Option<u64> {
        self.best.as_ref().map(|view| view.tip.height)
    }

    /// The best tip's median time past: what deadlines are judged by.
    pub fn median_time_ms(&self) -> Option<u64> {
        self.best.as_ref().map(|view| view.median_time_ms)
    }

    /// The confirmations of the lock and of the settlement at the best tip.
    pub fn depths(&self) -> (Option<u64>, Option<u64>) {
        let depth = |status: Option<&TxStatus>| {
            status
                .and_then(confirmations)
                .map(|(_, confirmations)| confirmations)
        };
        match &self.best {
            Some(view) => (
                depth(view.lock_status.as_ref()),
                depth(view.settled_status.as_ref()),
            ),
            None => (None, None),
        }
    }
}

/// Whether a miner's answer is about the escrow asked for: no escrow at all, or a lock
/// whose order digest is the id given with it and which is the one asked about.
fn genuine(view: &ChainEscrowView, query: &EscrowQuery, network: &tally_core::NetworkId) -> bool {
    match (view.escrow, view.lock) {
        (None, None) => true,
        (Some(id), Some(lock)) => {
            Order::from(lock).digest(network) == id
                && match query {
                    EscrowQuery::Id(asked) => id == *asked,
                    EscrowQuery::HashLock(hash_lock) => lock.hash_lock == *hash_lock,
                }
        }
        _ => false,
    }
}

impl Miners {
    /// Asks every miner about an escrow at once.
    pub async fn escrow_all(
        &self,
        query: &EscrowQuery,
    ) -> Vec<Result<ChainEscrowView, MinerError>> {
        let asks = self
            .addresses
            .iter()
            .map(|address| miner::escrow(address, query, self.limits));
        futures::future::join_all(asks).await
    }
}

/// Asks every miner how `query`'s escrow stands. An answer whose lock is not the escrow it
/// names (its id is the lock order's digest), or not the one asked about, is dropped.
pub async fn status(miners: &Miners, query: &EscrowQuery) -> ChainEscrowStatus {
    let answers = miners.escrow_all(query).await;
    let asked = answers.len();
    let network = *miners.network();
    let views: Vec<ChainEscrowView> = answers
        .into_iter()
        .filter_map(Result::ok)
        .filter(|view| genuine(view, query, &network))
        .collect();
    let hash_lock = match query {
        EscrowQuery::HashLock(hash_lock) => Some(*hash_lock),
        EscrowQuery::Id(_) => views.iter().find_map(|v| v.lock.map(|l| l.hash_lock)),
    };
    let secret = views
        .iter()
        .filter_map(|view| view.secret)
        .find(|secret| Some(secret.hash_lock()) == hash_lock);
    ChainEscrowStatus {
        answered: views.len(),
        best: views.into_iter().max_by_key(|view| view.tip.height),
        secret,
        asked,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tally_core::{AccountId, Amount, Digest, NetworkId};
    use tally_proto::pow::Tip;

    /// A miner's answer is taken only for the escrow asked about, with the lock its id
    /// names: a lock swapped under a real id, or another escrow's answer, is dropped.
    #[test]
    fn only_answers_about_the_escrow_asked_for_count() {
        let network = NetworkId(Digest::from([7; 32]));
        let secret = EscrowSecret::from([1; 32]);
        let lock = EscrowLock {
            payer: AccountId::from([2; 32]),
            sequence: 0,
            payee: AccountId::from([3; 32]),
            amount: Amount::from_microcash(5),
            hash_lock: secret.hash_lock(),
            deadline: 10,
            counterpart: None,
        };
        let id = Order::from(lock).digest(&network);
        let view = |escrow, lock| ChainEscrowView {
            escrow,
            lock,
            standing: None,
            lock_status: None,
            lock_transaction: None,
            settled_status: None,
            pending: None,
            secret: None,
            tip: Tip {
                hash: Digest::default(),
                height: 0,
                work: Default::default(),
            },
            median_time_ms: 0,
        };
        let by_id = EscrowQuery::Id(id);
        let by_hash = EscrowQuery::HashLock(lock.hash_lock);
        assert!(genuine(&view(Some(id), Some(lock)), &by_id, &network));
        assert!(genuine(&view(Some(id), Some(lock)), &by_hash, &network));
        assert!(genuine(&view(None, None), &by_id, &network), "unknown here");
        let swapped = EscrowLock {
            amount: Amount::from_microcash(6),
            ..lock
        };
        assert!(!genuine(&view(Some(id), Some(swapped)), &by_id, &network));
        assert!(!genuine(
            &view(Some(id), Some(lock)),
            &EscrowQuery::Id(Digest::from([9; 32])),
            &network
        ));
        assert!(!genuine(
            &view(Some(id), Some(lock)),
            &EscrowQuery::HashLock(Digest::from([9; 32])),
            &network
        ));
        assert!(!genuine(&view(Some(id), None), &by_id, &network));
    }
}
