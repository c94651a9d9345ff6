//! What a wallet does with a quorum network: introduce a key, pay. Each order is journaled
//! in `pending/` before any validator sees it and cleared only once its certificate is a
//! receipt, so an interrupted payment is finished (never re-signed differently, which could
//! lock the account) the next time the wallet runs.

use std::path::PathBuf;

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
}

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

/// Gathers the journaled order's certificate, keeps it as a receipt, hands it to every
/// validator and clears the journal; a refusal by every validator clears it too.
pub(crate) async fn certify_and_submit(
    wallet: &Wallet,
    client: &QuorumClient,
    order: &SignedOrder,
) -> Result<(Certificate, usize, PathBuf), OpError> {
    let certificate = match client.certify(order).await {
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
                wallet.clear_pending(&order.order.signer())?;
            }
            return Err(error.into());
        }
    };
    let path = wallet.save_receipt(&certificate)?;
    let acknowledged = client
        .submit(&certificate)
        .await
        .iter()
        .filter(|a| a.result.is_ok())
        .count();
    wallet.clear_pending(&order.order.signer())?;
    Ok((certificate, acknowledged, path))
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
        wallet.clear_pending(account)?;
        return Ok(None);
    }
    let (certificate, _, _) = certify_and_submit(wallet, client, &pending).await?;
    Ok(Some(certificate))
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
    let (certificate, acknowledged, path) = certify_and_submit(wallet, client, &order).await?;
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
    // One process at a time signs for this account (two could each sign for one slot).
    let _held = wallet.lock_key(&account).await?;
    let mut sequence = client.next_sequence(&account).await?;
    let finished_pending = finish_pending(wallet, client, &account, sequence).await?;
    if finished_pending.is_some() {
        sequence = client.next_sequence(&account).await?;
    }
    let order = SignedOrder::sign(
        Order::Transfer(Transfer {
            sender: account,
            recipient,
            amount,
            sequence,
        }),
        key,
        client.network(),
    );
    wallet.set_pending(&order)?;
    let (certificate, acknowledged, path) = match certify_and_submit(wallet, client, &order).await {
        Ok(done) => done,
        Err(error @ OpError::Client(ClientError::NoQuorum { .. })) => {
            // Say so in words when the slot is split, rather than "no quorum".
            if let Ok(seen) = crate::views::balance(client, &account).await
                && let crate::views::NextSlot::Split { orders } = seen.next_slot
            {
                return Err(OpError::SlotFrozen { account, orders });
            }
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    Ok(Receipt {
        certificate,
        acknowledged,
        path,
        finished_pending,
    })
}
