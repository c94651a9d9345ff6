//! `tally wallet escrow …` on a proof-of-work network: the same escrows, their deadlines
//! judged by the chain's median time past and their orders followed to confirmations
//! (DESIGN §8). Parses, calls `tally_wallet::chain::escrow`, prints.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tally_core::{EscrowId, EscrowSecret, NetworkContract};
use tally_proto::{EscrowQuery, EscrowStanding};
use tally_wallet::chain::escrow::{self, ChainEscrowStatus};
use tally_wallet::{ChainReceipt, Miners, Wallet};

use crate::wallet_chain::SendProgress;
use crate::wallet_escrow::{EscrowCommand, LockInputs, digest, lock_inputs, parse_secret, query};

pub async fn run(
    wallet: &Wallet,
    contract: NetworkContract,
    command: &EscrowCommand,
    timeout: Duration,
    json_mode: bool,
) -> anyhow::Result<(Value, String)> {
    let miners = Miners::locate(&contract, timeout).await?;
    let mut progress = SendProgress::new(json_mode);
    match command {
        EscrowCommand::Lock {
            to,
            amount,
            within,
            hash_lock,
            from,
            waiting,
        } => {
            let LockInputs {
                entry,
                secret,
                terms,
            } = lock_inputs(
                wallet,
                to,
                amount,
                *within,
                hash_lock.as_deref(),
                from.as_deref(),
            )?;
            let (payee, amount, hash_lock) = (terms.payee, terms.amount, terms.hash_lock);
            let locked = escrow::lock(
                wallet,
                &miners,
                &contract,
                &entry.secret_key()?,
                terms,
                waiting.waiting(),
                &mut |event| progress.show(event),
            )
            .await;
            progress.finish();
            let locked = locked?;
            let mut text = format!(
                "locked {amount} cash for {} until {} ms (Unix time, by the chain's median time)\nescrow {}\nhash lock {hash_lock}\nmined at height {} ({} confirmations)",
                payee.short(),
                locked.lock.deadline,
                locked.escrow,
                locked.receipt.height,
                locked.receipt.confirmations,
            );
            if let Some(secret) = secret {
                text.push_str(&format!(
                    "\nsecret {secret} (kept in the wallet; whoever has it can claim the escrow for {})",
                    payee.short()
                ));
            }
            Ok((
                json!({"escrow": locked.escrow, "payer": entry.account, "payee": payee, "amount": amount.microcash(), "hash_lock": hash_lock, "deadline_ms": locked.lock.deadline, "secret": secret, "height": locked.receipt.height, "confirmations": locked.receipt.confirmations, "receipt": locked.path}),
                text,
            ))
        }
        EscrowCommand::Claim {
            escrow: id,
            secret,
            waiting,
        } => {
            let id = digest(id, "escrow")?;
            let secret = match secret {
                Some(text) => parse_secret(text)?,
                None => own_secret(wallet, &miners, id).await?,
            };
            let claimed = escrow::claim(
                wallet,
                &miners,
                id,
                secret,
                waiting.waiting(),
                &mut |event| progress.show(event),
            )
            .await;
            progress.finish();
            let (receipt, path) = claimed?;
            Ok(settled(id, "claimed", &receipt, path))
        }
        EscrowCommand::Refund {
            escrow: id,
            waiting,
        } => {
            let id = digest(id, "escrow")?;
            let refunded = escrow::refund(wallet, &miners, id, waiting.waiting(), &mut |event| {
                progress.show(event)
            })
            .await;
            progress.finish();
            let (receipt, path) = refunded?;
            Ok(settled(id, "refunded", &receipt, path))
        }
        EscrowCommand::Show {
            escrow: id,
            hash_lock,
        } => {
            let query = query(id.as_deref(), hash_lock.as_deref())?;
            let status = escrow::status(&miners, &query).await;
            Ok(show(&query, &status))
        }
    }
}

fn settled(
    id: EscrowId,
    how: &str,
    receipt: &ChainReceipt,
    path: std::path::PathBuf,
) -> (Value, String) {
    (
        json!({"escrow": id, how: true, "transaction": receipt.id, "height": receipt.height, "confirmations": receipt.confirmations, "receipt": path}),
        format!(
            "{how} escrow {id}; transaction {} mined at height {} ({} confirmations)",
            receipt.id, receipt.height, receipt.confirmations
        ),
    )
}

/// The secret of escrow `id`: published by a claim some miner saw, or drawn by this wallet.
async fn own_secret(
    wallet: &Wallet,
    miners: &Miners,
    id: EscrowId,
) -> anyhow::Result<EscrowSecret> {
    let status = escrow::status(miners, &EscrowQuery::Id(id)).await;
    let Some(lock) = status.lock() else {
        bail!(
            "no miner that answered ({}/{}) holds escrow {id} on its main chain",
            status.answered,
            status.asked
        );
    };
    if let Some(secret) = status.secret {
        return Ok(secret);
    }
    wallet.secret(&lock.hash_lock)?.with_context(|| {
        format!(
            "this wallet does not hold the secret of hash lock {}; pass --secret",
            lock.hash_lock
        )
    })
}

fn show(query: &EscrowQuery, status: &ChainEscrowStatus) -> (Value, String) {
    let standing = match status.standing() {
        Some(EscrowStanding::Open) => "open",
        Some(EscrowStanding::Claimed) => "claimed",
        Some(EscrowStanding::Refunded) => "refunded",
        None => "unknown",
    };
    let (lock_depth, settled_depth) = status.depths();
    let escrow = status.best.as_ref().and_then(|view| view.escrow);
    let mut text = match status.lock() {
        Some(lock) => format!(
            "escrow {}: {standing}\n  {} cash from {} to {}, deadline {} ms (Unix time), hash lock {}",
            escrow.map(|e| e.to_string()).unwrap_or_default(),
            lock.amount,
            lock.payer.short(),
            lock.payee.short(),
            lock.deadline,
            lock.hash_lock
        ),
        None => match query {
            EscrowQuery::Id(id) => format!("no miner that answered holds escrow {id}"),
            EscrowQuery::HashLock(h) => format!("no escrow under hash lock {h} on the main chain"),
        },
    };
    let or_dash = |n: Option<u64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    text.push_str(&format!(
        "\n  {}/{} miners answered; best tip at height {}, median time {} ms",
        status.answered,
        status.asked,
        or_dash(status.tip_height()),
        or_dash(status.median_time_ms()),
    ));
    if let Some(depth) = lock_depth {
        text.push_str(&format!("\n  lock: {depth} confirmations"));
    }
    if let Some(depth) = settled_depth {
        text.push_str(&format!("\n  {standing}: {depth} confirmations"));
    }
    if status
        .best
        .as_ref()
        .is_some_and(|view| view.pending.is_some())
    {
        text.push_str("\n  a settlement is pending in the mempool");
    }
    if let Some(secret) = status.secret {
        text.push_str(&format!("\n  secret revealed: {secret}"));
    }
    (
        json!({"escrow": escrow, "state": standing, "lock": status.lock(), "answered": status.answered, "asked": status.asked, "tip_height": status.tip_height(), "median_time_ms": status.median_time_ms(), "lock_confirmations": lock_depth, "settled_confirmations": settled_depth, "secret": status.secret}),
        text,
    )
}
