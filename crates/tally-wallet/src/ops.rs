//! What a wallet does with a quorum network: introduce a key, pay. Each order is journaled
//! in `pending/` before any validator sees it and cleared only once its certificate is a
//! receipt, so an interrupted payment is finished (never re-signed differently, which could
//! lock the account) the next time the wallet runs.

use std::path::PathBuf;
use std::time::Duration;

use tally_core::{
    AccountId, Amount, Certificate, IntroKey, Order, SecretKey, SignedOrder, Transfer,
};

use crate::{ClientError, QuorumClient, Wallet, WalletError};

/// A failed operation.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Refused(String),
    #[error("no validator answered")]
    NoValidatorAnswered,
    /// The account's next slot holds votes for different orders so that none can reach a
    /// quorum: no order for it can complete (DESIGN §3). Retrying cannot help.
    #[error(
        "account {} is frozen: votes for its next slot are split between {} different orders, so none can complete; two orders were signed for one slot (two copies of this key, or a mistake). Asking again cannot help",
        .account.short(),
        .orders.len()
    )]
    SlotFrozen {
        account: AccountId,
        orders: Vec<(tally_core::OrderDigest, usize)>,
    },
    /// Another copy of this key kept taking the account's next slot (or holds votes for an
    /// order no validator can hand out) for as long as the wallet waited.
    #[error(
        "account {} is busy: another copy of this key (a wallet restored on another device) kept signing for its next slot, {attempts} times; nothing was paid, try again when it is done",
        .account.short()
    )]
    SlotContended { account: AccountId, attempts: usize },
    /// Validators hold votes in the account's next slot for an order this wallet does not
    /// have and none of them can hand out (their locks were kept by an earlier build, which
    /// stored no orders, or they did not answer).
    #[error(
        "account {} is waiting on another copy of this key: validators hold votes in its next slot for order {} that this wallet did not sign and none of them can hand out; run the wallet that signed it (it finishes the order), then pay again",
        .account.short(),
        .order
    )]
    SlotHeldElsewhere {
        account: AccountId,
        order: tally_core::OrderDigest,
    },
}

/// How many rounds a payment gives its slot to another copy of the key before it stops.
const SLOT_ATTEMPTS: usize = 100;
/// How long a payment waits for another copy to finish an order whose votes validators
/// hold but which none can hand out (kept by an earlier build), before it looks again.
const HELD_ORDER_WAIT: Duration = Duration::from_millis(20);

/// A certified order, kept in the wallet.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub certificate: Certificate,
    /// Validators that confirmed they applied it.
    pub acknowledged: usize,
    /// Where the wallet keeps it.
    pub path: PathBuf,
    /// An interrupted earlier order that was finished first, if any.
    pub finished_pending: Option<Certificate>,
}

/// Which validators a wallet asks for votes first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asking {
    /// The signer's first voter alone, then the others ([`QuorumClient::certify`]): for
    /// an order that may be new to every validator.
    FirstVoterFirst,
    /// Everyone at once ([`QuorumClient::certify_held`]): for an order validators
    /// already hold votes for.
    Everyone,
}

/// Gathers the journaled order's certificate, keeps it as a receipt, hands it to every
/// validator and clears the journal; a refusal by every validator clears it too.
pub(crate) async fn certify_and_submit(
    wallet: &Wallet,
    client: &QuorumClient,
    order: &SignedOrder,
    asking: Asking,
) -> Result<(Certificate, usize, PathBuf), OpError> {
    let certified = match asking {
        Asking::FirstVoterFirst => client.certify(order).await,
        Asking::Everyone => client.certify_held(order).await,
    };
    let certificate = match certified {
        Ok(certificate) => certificate,
        Err(error) => {
            if matches!(
                error,
                ClientError::NoQuorum {
                    refused_everywhere: true,
                    ..
                }
            ) {
                // No validator holds a vote for it: nothing to finish later.
                wallet.clear_pending_of(&order.order)?;
            }
            return Err(error.into());
        }
    };
    let path = wallet.save_receipt(&certificate)?;
    let acknowledged = submit_counted(client, &certificate).await;
    wallet.clear_pending_of(&order.order)?;
    Ok((certificate, acknowledged, path))
}

/// Hands `certificate` to every validator; how many acknowledged it applied.
async fn submit_counted(client: &QuorumClient, certificate: &Certificate) -> usize {
    client
        .submit(certificate)
        .await
        .iter()
        .filter(|answer| answer.result.is_ok())
        .count()
}

/// Finishes the order `account` left in flight, if it is still the account's next one.
pub(crate) async fn finish_pending(
    wallet: &Wallet,
    client: &QuorumClient,
    account: &AccountId,
    next_sequence: u64,
) -> Result<Option<Certificate>, OpError> {
    let Some(pending) = wallet.pending(account)? else {
        return Ok(None);
    };
    let still_open = match pending.order.sequence() {
        Some(sequence) => sequence >= next_sequence,
        None => true,
    };
    if !still_open {
        // Another copy (or another holder of a coin) may have finished this very order:
        // its certificate is then kept as the receipt (a coin's funding).
        if let Some(Settled::Ours(settled)) = settled_elsewhere(wallet, client, &pending).await? {
            return Ok(Some(settled.0));
        }
        wallet.clear_pending(account)?;
        return Ok(None);
    }
    match certify_and_submit(wallet, client, &pending, Asking::FirstVoterFirst).await {
        Ok((certificate, _, _)) => Ok(Some(certificate)),
        Err(error) => match settled_elsewhere(wallet, client, &pending).await? {
            Some(Settled::Ours(settled)) => Ok(Some(settled.0)),
            Some(Settled::Other) => Ok(None),
            None => Err(error),
        },
    }
}

/// Finishes the order `account` left in flight, as [`finish_pending`] does; and when that
/// order lost its slot's first voter to another order, or validators hold votes there for
/// another order, finishes the order that holds the most votes instead, as a payment does
/// before signing ([`settle_slot`]). That may be this wallet's own order after all (it
/// went past a silent first voter and holds a quorum without it), or another holder's: the
/// slot is settled either way, and the certificate returned says by which order. `None`
/// when nothing was left in flight or another order settled the slot and its certificate
/// is not at hand.
pub(crate) async fn finish_journaled(
    wallet: &Wallet,
    client: &QuorumClient,
    account: &AccountId,
) -> Result<Option<Certificate>, OpError> {
    let next = client.next_sequence(account).await?;
    match finish_pending(wallet, client, account, next).await {
        Err(
            error @ OpError::Client(
                ClientError::SlotTaken { .. } | ClientError::NoQuorum { conflicts: 1.., .. },
            ),
        ) => match finish_most_held(wallet, client, account, next).await? {
            Some(Slot::Finished(certificate)) => Ok(Some(certificate)),
            Some(Slot::Moved) => Ok(None),
            _ => Err(error),
        },
        other => other,
    }
}

/// How a slot that `order` was signed for was settled, once the account moved past it.
enum Settled {
    /// By `order` itself (another copy of the key finished it): its receipt is kept now;
    /// with the validators that acknowledged it when it was handed out.
    Ours(Box<(Certificate, PathBuf, usize)>),
    /// By another order: `order` can never be certified.
    Other,
}

/// After `order` failed to gather a quorum: finds the certificate that settled its slot,
/// if any validator has one (a certificate is proof on its own, however few validators
/// applied it), and hands it to every validator. When it is `order`'s own (another copy of
/// the key finished it, or its answers were lost, so validators refuse it as old), the
/// receipt is kept; either way the journal is cleared, since nothing is left to finish.
/// `None` while no certificate for the slot can be found: the caller reports its error.
async fn settled_elsewhere(
    wallet: &Wallet,
    client: &QuorumClient,
    order: &SignedOrder,
) -> Result<Option<Settled>, OpError> {
    let Some((account, sequence)) = order.order.spender() else {
        return Ok(None);
    };
    // A certificate for the slot is proof on its own (it is verified against the
    // committee), even where fewer than f + 1 validators have applied it yet.
    let Some(certificate) = client.sent_certificate(&account, sequence).await else {
        return Ok(None);
    };
    // Validators that have not applied it yet still see the slot open (and may decide the
    // account's next sequence): hand it to them all.
    let acknowledged = submit_counted(client, &certificate).await;
    let settled = if certificate.order == order.order {
        let path = wallet.save_receipt(&certificate)?;
        Settled::Ours(Box::new((certificate, path, acknowledged)))
    } else {
        Settled::Other
    };
    if wallet
        .pending(&account)?
        .is_some_and(|pending| pending.order.sequence() == Some(sequence))
    {
        wallet.clear_pending(&account)?;
    }
    Ok(Some(settled))
}

/// What [`settle_slot`] found in an account's next slot.
enum Slot {
    /// Nothing holds it: the wallet may sign an order for `sequence`.
    Free { sequence: u64 },
    /// An order was in flight there (this wallet's own journaled one, or one another copy
    /// of the key signed) and is now certified and applied: look again.
    Finished(Certificate),
    /// The order in flight there failed, and the account had moved past the slot (the
    /// views it was read from were a moment old): the certificate that settled it was
    /// found. Look again.
    Moved,
    /// Validators hold votes there for an order (this digest, when their views show it
    /// yet) that none can hand out: another copy is presumably finishing it; look again
    /// shortly.
    Held(Option<tally_core::OrderDigest>),
}

/// Before signing for `account`'s next slot, finishes what holds it: the order this
/// wallet journaled, else an order another copy of the key signed (validators hand it
/// out). A wallet never signs a second order for a slot that holds a vote (DESIGN §3).
async fn settle_slot(
    wallet: &Wallet,
    client: &QuorumClient,
    account: &AccountId,
) -> Result<Slot, OpError> {
    let slot = client.next_slot(account).await?;
    let mut taken = false;
    match finish_pending(wallet, client, account, slot.sequence).await {
        Ok(Some(certificate)) => return Ok(Slot::Finished(certificate)),
        Ok(None) => {}
        // Our journaled order lost the first voter to another copy's order, or (the first
        // voter not answering) validators hold their votes for another order: the order
        // holding the most votes is finished instead (it may be ours after all).
        Err(OpError::Client(
            ClientError::SlotTaken { .. } | ClientError::NoQuorum { conflicts: 1.., .. },
        )) => taken = true,
        Err(error) => return Err(error),
    }
    let Some(held) = slot.state.held().first().copied() else {
        if taken {
            // The first voter's order is not in the views yet: look again.
            return Ok(Slot::Held(None));
        }
        return Ok(Slot::Free {
            sequence: slot.sequence,
        });
    };
    Ok(finish_most_held(wallet, client, account, slot.sequence)
        .await?
        .unwrap_or(Slot::Held(Some(held))))
}

/// Finishes the order that holds the most votes in `account`'s slot `sequence` among those
/// validators hand out (ties broken by digest, so that two copies looking at the same slot
/// pick the same one); `None` when no validator hands one out. Only that one is finished:
/// a less held order pushed to validators that hold no vote yet could split a slot the
/// most held one can still win.
async fn finish_most_held(
    wallet: &Wallet,
    client: &QuorumClient,
    account: &AccountId,
    sequence: u64,
) -> Result<Option<Slot>, OpError> {
    let Some((order, _)) = client
        .held_orders(account, sequence)
        .await
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    tracing::info!(
        account = %account.short(),
        sequence,
        "finishing the order that holds the most votes in the slot"
    );
    // Journaled as ours: whichever copy finishes it, the slot is settled once.
    wallet.set_pending(&order)?;
    match certify_and_submit(wallet, client, &order, Asking::Everyone).await {
        Ok((certificate, _, _)) => Ok(Some(Slot::Finished(certificate))),
        Err(error) => match settled_elsewhere(wallet, client, &order).await? {
            Some(Settled::Ours(settled)) => Ok(Some(Slot::Finished(settled.0))),
            Some(Settled::Other) => Ok(Some(Slot::Moved)),
            None => Err(error),
        },
    }
}

/// Introduces `key` with its proof of work: it receives the faucet amount once.
pub async fn intro(
    wallet: &Wallet,
    client: &QuorumClient,
    key: &SecretKey,
    proof_of_work: u64,
) -> Result<Receipt, OpError> {
    let account = key.account();
    // One process at a time signs for this account (two could each sign for one slot).
    let _held = wallet.lock_key(&account).await?;
    let order = match wallet.pending(&account)? {
        Some(pending) if matches!(pending.order, Order::IntroKey(_)) => pending,
        _ => SignedOrder::sign(
            Order::IntroKey(IntroKey {
                account,
                proof_of_work,
            }),
            key,
            client.network(),
        ),
    };
    wallet.set_pending(&order)?;
    let (certificate, acknowledged, path) =
        certify_and_submit(wallet, client, &order, Asking::FirstVoterFirst).await?;
    Ok(Receipt {
        certificate,
        acknowledged,
        path,
        finished_pending: None,
    })
}

/// Pays `amount` from `key` to `recipient`.
pub async fn pay(
    wallet: &Wallet,
    client: &QuorumClient,
    key: &SecretKey,
    recipient: AccountId,
    amount: Amount,
) -> Result<Receipt, OpError> {
    if amount.is_zero() {
        return Err(OpError::Refused("amount must be more than zero".into()));
    }
    if recipient == key.account() {
        return Err(OpError::Refused("an account cannot pay itself".into()));
    }
    let account = key.account();
    spend(wallet, client, key, Resign::OnANewSlot, |sequence| {
        Order::Transfer(Transfer {
            sender: account,
            recipient,
            amount,
            sequence,
        })
    })
    .await
}

/// What [`spend`] does when the order it signed lost its slot to another order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resign {
    /// Sign the same terms again for the next slot (a payment).
    OnANewSlot,
    /// Give up and say so: the terms must not be signed twice (an escrow lock's hash lock
    /// is used once per network; the caller draws a new secret).
    Never,
}

/// Signs and certifies the order `make` builds for `key`'s next sequence slot (a transfer,
/// an escrow lock): journaled first, never beside a vote another copy of the key holds in
/// that slot (that order is finished first), retried on a fresh slot when another order
/// settled the one it was signed for.
pub(crate) async fn spend(
    wallet: &Wallet,
    client: &QuorumClient,
    key: &SecretKey,
    resign: Resign,
    make: impl Fn(u64) -> Order,
) -> Result<Receipt, OpError> {
    let account = key.account();
    // One process at a time signs for this account (two could each sign for one slot).
    let _held = wallet.lock_key(&account).await?;
    let mut finished_pending = None;
    let mut waited_on = None;
    for _ in 0..SLOT_ATTEMPTS {
        let sequence = match settle_slot(wallet, client, &account).await {
            Ok(Slot::Free { sequence }) => sequence,
            Ok(Slot::Finished(certificate)) => {
                finished_pending = Some(certificate);
                continue;
            }
            Ok(Slot::Moved) => continue,
            Ok(Slot::Held(order)) => {
                waited_on = order.or(waited_on);
                client.pause(HELD_ORDER_WAIT).await;
                continue;
            }
            Err(error) => return Err(explain_split(client, account, error).await),
        };
        let order = SignedOrder::sign(make(sequence), key, client.network());
        wallet.set_pending(&order)?;
        match certify_and_submit(wallet, client, &order, Asking::FirstVoterFirst).await {
            Ok((certificate, acknowledged, path)) => {
                return Ok(Receipt {
                    certificate,
                    acknowledged,
                    path,
                    finished_pending,
                });
            }
            // Only the first voter saw this order, and it refused: the order holds no
            // vote anywhere, so it is dropped and the other copy's order finished.
            Err(OpError::Client(ClientError::SlotTaken { .. })) => {
                wallet.clear_pending(&account)?;
                if resign == Resign::Never {
                    return Err(lost_slot(account));
                }
            }
            // No quorum: if the account moved past this sequence meanwhile, the certificate
            // that settled the slot says whose order it was.
            Err(error @ OpError::Client(ClientError::NoQuorum { .. })) => {
                match settled_elsewhere(wallet, client, &order).await? {
                    // Another copy of the key finished this very order.
                    Some(Settled::Ours(settled)) => {
                        // `settled_elsewhere` handed it to every validator already.
                        let (certificate, path, acknowledged) = *settled;
                        return Ok(Receipt {
                            certificate,
                            acknowledged,
                            path,
                            finished_pending,
                        });
                    }
                    // Another order settled the slot: this one can never be certified.
                    Some(Settled::Other) if resign == Resign::Never => {
                        return Err(lost_slot(account));
                    }
                    Some(Settled::Other) => {}
                    None => return Err(explain_split(client, account, error).await),
                }
            }
            Err(error) => return Err(explain_split(client, account, error).await),
        }
    }
    Err(match waited_on {
        Some(order) => OpError::SlotHeldElsewhere { account, order },
        None => OpError::SlotContended {
            account,
            attempts: SLOT_ATTEMPTS,
        },
    })
}

/// The order signed lost its slot to another, and is not signed again.
fn lost_slot(account: AccountId) -> OpError {
    OpError::Refused(format!(
        "another order of {} took the slot this one was signed for; nothing was paid, try again",
        account.short()
    ))
}

/// Says so in words when a slot is split ([`OpError::SlotFrozen`]), rather than "no
/// quorum" or "slot taken"; any other error as it is.
async fn explain_split(client: &QuorumClient, account: AccountId, error: OpError) -> OpError {
    if matches!(
        error,
        OpError::Client(ClientError::NoQuorum { .. } | ClientError::SlotTaken { .. })
    ) && let Ok(seen) = crate::views::balance(client, &account).await
        && let crate::views::NextSlot::Split { orders } = seen.next_slot
    {
        return OpError::SlotFrozen { account, orders };
    }
    error
}
