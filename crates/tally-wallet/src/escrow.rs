//! Hash-locked escrows by hand (DESIGN §8): lock money for a payee under a hash lock until a
//! deadline, claim it with the secret, refund it after the deadline, and see how one
//! stands. The cross-server wire drives the same operations.
//!
//! A secret this wallet draws is kept in its folder (`secrets/`, durable) before the lock
//! that uses it is signed, so a crash can never leave money locked under a secret nobody
//! has.

use std::time::{SystemTime, UNIX_EPOCH};

use tally_core::{
    AccountId, Amount, Counterpart, Digest, EscrowClaim, EscrowId, EscrowLock, EscrowRefund,
    EscrowSecret, Order, SecretKey, SignedOrder,
};
use tally_proto::{EscrowQuery, EscrowStanding, EscrowView};

use crate::ops::{self, Asking, OpError, Receipt};
use crate::{ClientError, QuorumClient, Wallet};

/// What to lock.
#[derive(Clone, Copy, Debug)]
pub struct LockTerms {
    pub payee: AccountId,
    pub amount: Amount,
    /// The hash lock: SHA-256 of the secret that claims it.
    pub hash_lock: Digest,
    /// Milliseconds since the Unix epoch, by the validators' clocks.
    pub deadline_ms: u64,
    pub counterpart: Option<Counterpart>,
}

/// A certified lock.
#[derive(Debug, Clone)]
pub struct Locked {
    pub escrow: EscrowId,
    pub lock: EscrowLock,
    pub receipt: Receipt,
}

/// This machine's clock, in milliseconds since the Unix epoch (what a person's deadline
/// is counted from; a client's own clock is [`QuorumClient::now_ms`]).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Draws a secret and keeps it in the wallet (durable) before returning it.
pub fn new_secret(wallet: &Wallet) -> Result<EscrowSecret, OpError> {
    let secret = EscrowSecret::generate();
    wallet.keep_secret(&secret)?;
    Ok(secret)
}

/// Locks `terms.amount` of `key`'s money for `terms.payee` (one of the account's sequence
/// slots, journaled like a payment). Refused here, before anything is signed, when the
/// network takes no escrows or the deadline leaves no time to claim (it must be more than
/// the network's clock skew bound ahead of this machine's clock).
pub async fn lock(
    wallet: &Wallet,
    client: &QuorumClient,
    key: &SecretKey,
    terms: LockTerms,
) -> Result<Locked, OpError> {
    let skew = client.contract().max_clock_skew_ms.ok_or_else(|| {
        OpError::Refused(format!(
            "network {} takes no escrows: its contract declares no clock skew bound",
            client.contract().name
        ))
    })?;
    if terms.amount.is_zero() {
        return Err(OpError::Refused("an escrow of zero locks nothing".into()));
    }
    if terms.payee == key.account() {
        return Err(OpError::Refused(
            "an escrow cannot pay its own payer".into(),
        ));
    }
    let now = client.now_ms();
    if terms.deadline_ms <= now.saturating_add(2 * skew) {
        return Err(OpError::Refused(format!(
            "the deadline is {} ms away; it must be more than twice the network's clock skew bound ({skew} ms) ahead",
            terms.deadline_ms.saturating_sub(now)
        )));
    }
    let payer = key.account();
    // A hash lock is used once per network: the lock is never signed again for another
    // slot with the same terms (the caller locks again with a new secret).
    let receipt = ops::spend(wallet, client, key, ops::Resign::Never, |sequence| {
        Order::from(EscrowLock {
            payer,
            sequence,
            payee: terms.payee,
            amount: terms.amount,
            hash_lock: terms.hash_lock,
            deadline: terms.deadline_ms,
            counterpart: terms.counterpart,
        })
    })
    .await?;
    let Order::EscrowLock(lock) = &receipt.certificate.order else {
        // The account's journal held an earlier order, finished first, and then this one
        // was certified: `spend` returns this one's certificate.
        return Err(OpError::Refused(format!(
            "the certified order is a {}, not the escrow lock",
            receipt.certificate.order.kind_name()
        )));
    };
    Ok(Locked {
        escrow: receipt.certificate.checksum,
        lock: **lock,
        receipt,
    })
}

/// Claims escrow `escrow` for its payee with `secret` (anyone may: no key signs a claim).
pub async fn claim(
    wallet: &Wallet,
    client: &QuorumClient,
    escrow: EscrowId,
    secret: EscrowSecret,
) -> Result<Receipt, OpError> {
    settle(
        wallet,
        client,
        Order::EscrowClaim(EscrowClaim { escrow, secret }),
    )
    .await
}

/// Returns escrow `escrow` to its payer once the deadline (plus the skew bound) passed.
pub async fn refund(
    wallet: &Wallet,
    client: &QuorumClient,
    escrow: EscrowId,
) -> Result<Receipt, OpError> {
    settle(wallet, client, Order::EscrowRefund(EscrowRefund { escrow })).await
}

/// Certifies a claim or refund (from every validator at once: no copy of a wallet can
/// sign a second one) and hands the certificate to every validator. When validators hold
/// their votes for the other settlement (a refund asked for where a claim was voted, or
/// the other way round), the settlement most of them hold is finished instead, as a
/// payment finishes a held order: the escrow is settled either way, and the receipt's
/// certificate says how.
async fn settle(wallet: &Wallet, client: &QuorumClient, order: Order) -> Result<Receipt, OpError> {
    let order = SignedOrder::unsigned(order);
    let escrow = match order.order.lock_slot() {
        tally_core::LockSlot::Escrow(escrow) => escrow,
        _ => return Err(OpError::Refused("not an escrow's claim or refund".into())),
    };
    // The payer keeps its lock's certificate (a receipt named by the escrow's id): it hands
    // it over first, so that validators that missed it (the network lost it, or the payer
    // died before handing it out) know the escrow before they are asked to settle it.
    if let Some(lock) = wallet.receipt(&escrow)?
        && matches!(lock.order, Order::EscrowLock(_))
    {
        client.submit(&lock).await;
    }
    let certified = match ops::certify_and_submit(wallet, client, &order, Asking::Everyone).await {
        Err(error @ OpError::Client(ClientError::NoQuorum { conflicts: 1.., .. })) => {
            match most_held(client, &escrow).await {
                Some(held) if held != order => {
                    ops::certify_and_submit(wallet, client, &held, Asking::Everyone).await?
                }
                _ => return Err(error),
            }
        }
        other => other?,
    };
    let (certificate, acknowledged, path) = certified;
    Ok(Receipt {
        certificate,
        acknowledged,
        path,
        finished_pending: None,
    })
}

/// The claim or refund of `escrow` that most validators hold their vote for (a held claim
/// only if its secret opens the escrow's hash lock).
async fn most_held(client: &QuorumClient, escrow: &EscrowId) -> Option<SignedOrder> {
    let views: Vec<EscrowView> = client
        .escrow_all(&EscrowQuery::Id(*escrow))
        .await
        .into_iter()
        .filter_map(|answer| answer.result.ok())
        .collect();
    let hash_lock = views.iter().find_map(|view| view.lock)?.hash_lock;
    let mut held: Vec<(SignedOrder, usize)> = Vec::new();
    for order in views.into_iter().filter_map(|view| view.held) {
        let genuine = match &order.order {
            Order::EscrowClaim(claim) => claim.secret.hash_lock() == hash_lock,
            Order::EscrowRefund(_) => true,
            _ => false,
        };
        if !genuine {
            continue;
        }
        match held.iter_mut().find(|(known, _)| *known == order) {
            Some((_, count)) => *count += 1,
            None => held.push((order, 1)),
        }
    }
    held.into_iter()
        .max_by_key(|(_, count)| *count)
        .map(|(order, _)| order)
}

/// How an escrow stands across the committee.
#[derive(Debug, Clone, Default)]
pub struct EscrowStatus {
    /// The lock, as validators that applied it report it (checked against the id).
    pub lock: Option<EscrowLock>,
    pub escrow: Option<EscrowId>,
    /// Validators that answered, and how many of them see it open, claimed or refunded.
    pub answered: usize,
    pub open: usize,
    pub claimed: usize,
    pub refunded: usize,
    /// Validators holding a vote for a claim, or for a refund, not yet applied.
    pub claim_votes: usize,
    pub refund_votes: usize,
    /// The secret, once any validator voted a claim showing it.
    pub secret: Option<EscrowSecret>,
    /// The validators' clocks, lowest and highest.
    pub clocks: Option<(u64, u64)>,
}

impl EscrowStatus {
    /// Adds up the validators' answers.
    pub fn of(views: impl IntoIterator<Item = EscrowView>) -> Self {
        let mut status = EscrowStatus::default();
        for view in views {
            status.answered += 1;
            status.lock = status.lock.or(view.lock);
            status.escrow = status.escrow.or(view.escrow);
            status.secret = status.secret.or(view.secret);
            match view.standing {
                Some(EscrowStanding::Open) => status.open += 1,
                Some(EscrowStanding::Claimed) => status.claimed += 1,
                Some(EscrowStanding::Refunded) => status.refunded += 1,
                None => {}
            }
            match view.held.map(|held| held.order) {
                Some(Order::EscrowClaim(_)) => status.claim_votes += 1,
                Some(Order::EscrowRefund(_)) => status.refund_votes += 1,
                _ => {}
            }
            status.clocks = Some(match status.clocks {
                None => (view.clock_ms, view.clock_ms),
                Some((low, high)) => (low.min(view.clock_ms), high.max(view.clock_ms)),
            });
        }
        status
    }
}

/// Asks every validator how `query`'s escrow stands.
pub async fn status(client: &QuorumClient, query: &EscrowQuery) -> EscrowStatus {
    EscrowStatus::of(
        client
            .escrow_all(query)
            .await
            .into_iter()
            .filter_map(|answer| answer.result.ok()),
    )
}
