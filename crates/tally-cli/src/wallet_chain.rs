//! The wallet commands on a proof-of-work network (DESIGN §4): `balance`, `send`, `ledger`,
//! `peers`.
//!
//! Miners are found through the contract's tracker. A transfer is journaled in `pending/`
//! before any miner sees it, handed to one miner (`PUSH_TRANSACTION`), and followed
//! (`REQ_TX_STATUS`) until it has the confirmations asked for; then it becomes a receipt in
//! `receipts/chain/`. A wallet interrupted while waiting finds the journaled transfer on its
//! next `send` and finishes it first: pushed again if the miners lost it, never replaced
//! by a different transfer with the same sequence.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tally_chain::{Transaction, TxStatus};
use tally_core::{AccountId, Amount, NetworkContract, Order, SecretKey, SignedOrder, Transfer};
use tally_node::pow::client as miner;
use tally_node::pow::wire::{MAX_LEDGER_PAGE, RespAccount, Tip, WireLimits};
use tally_wallet::{ChainReceipt, Wallet};

/// The miners of a network, as its tracker lists them, tried in turn.
pub struct Miners {
    addresses: Vec<String>,
    limits: WireLimits,
}

impl Miners {
    /// Asks the contract's tracker for live miners.
    pub async fn locate(contract: &NetworkContract, timeout: Duration) -> anyhow::Result<Self> {
        let Some(tracker) = &contract.tracker else {
            bail!("this proof-of-work network names no tracker: its miners cannot be found");
        };
        let config = tally_tracker::ClientConfig {
            answer_timeout: timeout,
            connect_timeout: timeout,
            max_attempts: 2,
            ..tally_tracker::ClientConfig::default()
        };
        let peers = tally_tracker::TrackerClient::new(tracker.clone(), config)
            .peers(contract.id(), Some(16))
            .await
            .with_context(|| format!("asking the tracker {tracker} for miners"))?;
        if peers.is_empty() {
            bail!("the tracker {tracker} lists no live miner of this network");
        }
        let max_block_bytes = contract.pow.as_ref().map_or(1 << 20, |p| p.max_block_bytes);
        Ok(Miners {
            addresses: peers.iter().map(|p| p.address.to_string()).collect(),
            limits: WireLimits {
                read_timeout: timeout,
                write_timeout: timeout,
                connect_timeout: timeout,
                ..WireLimits::for_blocks(max_block_bytes)
            },
        })
    }

    /// The first answer of any miner to `call`, with the miner's address; a refusal of the
    /// request itself is final, an unreachable miner is skipped.
    async fn ask<T, F, Fut>(&self, call: F) -> anyhow::Result<(T, &str)>
    where
        F: Fn(String, WireLimits) -> Fut,
        Fut: std::future::Future<Output = Result<T, miner::ClientError>>,
    {
        let mut errors = Vec::new();
        for address in &self.addresses {
            match call(address.clone(), self.limits).await {
                Ok(answer) => return Ok((answer, address)),
                Err(error @ miner::ClientError::Rejected(_)) => return Err(error.into()),
                Err(error) => errors.push(format!("{address}: {error}")),
            }
        }
        bail!("no miner answered: {}", errors.join("; "))
    }

    /// An account's state at a miner's tip.
    pub async fn account(&self, account: &AccountId) -> anyhow::Result<(RespAccount, &str)> {
        self.ask(|address, limits| async move { miner::account(&address, account, limits).await })
            .await
    }

    /// What became of `tx`.
    pub async fn status(&self, tx: &Transaction) -> anyhow::Result<(TxStatus, Tip)> {
        let (answer, _) =
            self.ask(|address, limits| async move {
                miner::transaction_status(&address, tx, limits).await
            })
            .await?;
        Ok(answer)
    }

    /// Hands `tx` to one miner, which relays it to the others.
    pub async fn push(&self, tx: &Transaction) -> anyhow::Result<&str> {
        let (_, address) =
            self.ask(|address, limits| async move {
                miner::push_transaction(&address, tx, limits).await
            })
            .await?;
        Ok(address)
    }
}

/// The transfer journaled for `account`, as a transaction.
fn journaled(wallet: &Wallet, account: &AccountId) -> anyhow::Result<Option<Transaction>> {
    Ok(wallet
        .pending(account)?
        .and_then(|order| match order.order {
            Order::Transfer(_) => Some(Transaction::from(order)),
            Order::IntroKey(_) => None,
        }))
}

/// Confirmations of a status, if it is in the chain.
fn confirmations(status: &TxStatus) -> Option<(u64, u64)> {
    match *status {
        TxStatus::Confirmed {
            height,
            confirmations,
        } => Some((height, confirmations)),
        TxStatus::Buried { confirmations } => Some((0, confirmations)),
        TxStatus::Pending | TxStatus::Unknown => None,
    }
}

/// How long `send` follows a transaction.
#[derive(Clone, Copy)]
pub struct Waiting {
    /// Confirmations to wait for.
    pub confirmations: u64,
    /// Give up (leaving the transfer journaled) after this long.
    pub patience: Duration,
    /// No progress line (for `--json`).
    pub quiet: bool,
}

/// Follows `tx` until it has the confirmations asked for or patience runs out, pushing it
/// again if the miners lost it (a reorganisation dropped it, or a miner restarted).
async fn await_confirmations(
    miners: &Miners,
    tx: &Transaction,
    waiting: Waiting,
) -> anyhow::Result<(u64, u64)> {
    let Waiting {
        confirmations: wanted,
        patience,
        quiet,
    } = waiting;
    let progress = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(wanted)
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:20}] {pos}/{len} confirmations, {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    let started = Instant::now();
    let outcome = loop {
        let (status, tip) = miners.status(tx).await?;
        progress.set_message(format!("tip {}", tip.height));
        match confirmations(&status) {
            Some((height, have)) => {
                progress.set_position(have.min(wanted));
                if have >= wanted {
                    break Ok((height, have));
                }
            }
            None if status == TxStatus::Unknown => {
                miners.push(tx).await?;
            }
            None => {}
        }
        if started.elapsed() > patience {
            break Err(anyhow::anyhow!(
                "transaction {} has not reached {wanted} confirmations after {}s; it stays \
                 journaled and the next `send` from this account finishes it first",
                tx.id(),
                patience.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    progress.finish_and_clear();
    outcome
}

/// Settles the transfer `account` left in flight, if any: waits for it (pushing it again
/// if it was lost) unless the chain already moved past its sequence.
async fn finish_journaled(
    wallet: &Wallet,
    miners: &Miners,
    account: &AccountId,
    waiting: Waiting,
) -> anyhow::Result<Option<ChainReceipt>> {
    let Some(tx) = journaled(wallet, account)? else {
        return Ok(None);
    };
    let (status, _) = miners.status(&tx).await?;
    let (state, _) = miners.account(account).await?;
    if confirmations(&status).is_none()
        && tx.transfer().is_some_and(|t| t.sequence < state.sequence)
    {
        // Another transfer took this sequence (signed elsewhere): this one can never confirm.
        wallet.clear_pending(account)?;
        return Ok(None);
    }
    let (receipt, _) = settle(wallet, miners, &tx, waiting).await?;
    Ok(Some(receipt))
}

/// Waits for `tx`'s confirmations, keeps it as a receipt and clears its journal entry.
async fn settle(
    wallet: &Wallet,
    miners: &Miners,
    tx: &Transaction,
    waiting: Waiting,
) -> anyhow::Result<(ChainReceipt, std::path::PathBuf)> {
    let (height, confirmations) = await_confirmations(miners, tx, waiting).await?;
    let receipt = ChainReceipt {
        id: tx.id(),
        height,
        confirmations,
        order: tx.to_signed_order(),
    };
    let path = wallet.save_chain_receipt(&receipt)?;
    wallet.clear_pending(&tx.signer())?;
    Ok((receipt, path))
}

/// What `send` did.
pub struct Sent {
    pub receipt: ChainReceipt,
    pub path: std::path::PathBuf,
    pub miner: String,
    /// An interrupted earlier transfer that was settled first.
    pub finished: Option<ChainReceipt>,
}

/// Pays `amount` from `key` to `recipient` and waits for its confirmations.
pub async fn send(
    wallet: &Wallet,
    miners: &Miners,
    contract: &NetworkContract,
    key: &SecretKey,
    recipient: AccountId,
    amount: Amount,
    waiting: Waiting,
) -> anyhow::Result<Sent> {
    let account = key.account();
    if recipient == account {
        bail!("an account cannot pay itself");
    }
    let finished = finish_journaled(wallet, miners, &account, waiting).await?;
    let (state, _) = miners.account(&account).await?;
    let spendable = state.balance.checked_sub(state.pending_out);
    if spendable.is_none_or(|spendable| spendable < amount) {
        bail!(
            "{} holds {} cash ({} pending out): not enough to pay {amount}",
            account.short(),
            state.balance,
            state.pending_out
        );
    }
    let transfer = Transfer {
        sender: account,
        recipient,
        amount,
        sequence: state.next_sequence,
    };
    let tx = Transaction::sign(transfer, key, &contract.id());
    wallet.set_pending(&SignedOrder {
        order: Order::Transfer(transfer),
        signature: tx.signature,
    })?;
    let miner = match miners.push(&tx).await {
        Ok(miner) => miner.to_owned(),
        Err(error) => {
            // Refused by a miner, or no miner took it: nobody holds it, nothing to finish.
            wallet.clear_pending(&account)?;
            return Err(error.context("pushing the transaction"));
        }
    };
    let (receipt, path) = settle(wallet, miners, &tx, waiting).await?;
    Ok(Sent {
        receipt,
        path,
        miner,
        finished,
    })
}

/// `balance`: confirmed and pending amounts at a miner's tip, and the confirmations of the
/// transfer this wallet has in flight for the account, if any.
pub async fn balance(
    wallet: &Wallet,
    miners: &Miners,
    account: &AccountId,
) -> anyhow::Result<(Value, String)> {
    let (state, address) = miners.account(account).await?;
    let mut in_flight = Value::Null;
    let mut in_flight_text = String::new();
    if let Some(tx) = journaled(wallet, account)?
        && let Some(&transfer) = tx.transfer()
    {
        let (status, _) = miners.status(&tx).await?;
        let have = confirmations(&status).map_or(0, |(_, have)| have);
        in_flight = json!({"id": tx.id(), "amount": transfer.amount.microcash(), "to": transfer.recipient, "confirmations": have});
        in_flight_text = format!(
            "; in flight: {} cash to {} ({have} confirmations)",
            transfer.amount,
            transfer.recipient.short()
        );
    }
    let json = json!({
        "account": account,
        "balance": state.balance.microcash(),
        "pending_in": state.pending_in.microcash(),
        "pending_out": state.pending_out.microcash(),
        "sequence": state.sequence,
        "next_sequence": state.next_sequence,
        "tip": {"height": state.tip.height, "hash": state.tip.hash.to_string()},
        "miner": address,
        "in_flight": in_flight,
    });
    let text = format!(
        "{}: {} cash confirmed at height {} (pending +{} / -{}){in_flight_text}",
        account.short(),
        state.balance,
        state.tip.height,
        state.pending_in,
        state.pending_out
    );
    Ok((json, text))
}

/// `peers`: the miners the tracker lists and the tip each reports.
pub async fn peers(miners: &Miners, probe: &AccountId) -> (Value, String) {
    let mut list = Vec::new();
    let mut text = Vec::new();
    for address in &miners.addresses {
        match miner::account(address, probe, miners.limits).await {
            Ok(state) => {
                list.push(json!({"address": address, "up": true, "height": state.tip.height, "tip": state.tip.hash.to_string()}));
                text.push(format!(
                    "{address}  up, tip {} at height {}",
                    state.tip.hash, state.tip.height
                ));
            }
            Err(error) => {
                list.push(json!({"address": address, "up": false, "error": error.to_string()}));
                text.push(format!("{address}  DOWN: {error}"));
            }
        }
    }
    (json!({"miners": list}), text.join("\n"))
}

/// Most ledger pages `ledger` reads (a page holds up to 1,000 accounts).
const MAX_LEDGER_PAGES: usize = 100;

/// `ledger`: the chain tip, the supply and every account at the tip (the wallet's own
/// marked with their labels), all from one miner.
pub async fn ledger(wallet: &Wallet, miners: &Miners) -> anyhow::Result<(Value, String)> {
    let (first, address) = miners
        .ask(|address, limits| async move {
            miner::ledger(&address, None, MAX_LEDGER_PAGE, limits).await
        })
        .await?;
    let address = address.to_owned();
    let (tip, supply, total) = (first.tip, first.supply, first.total);
    let mut accounts = first.accounts;
    let mut next = first.next;
    let mut pages = 1;
    while let Some(after) = next {
        if pages >= MAX_LEDGER_PAGES {
            break;
        }
        let page = miner::ledger(&address, Some(after), MAX_LEDGER_PAGE, miners.limits).await?;
        if page.tip != tip {
            // The chain moved: start again at the new tip rather than mix two states.
            return Box::pin(ledger(wallet, miners)).await;
        }
        accounts.extend(page.accounts);
        next = page.next;
        pages += 1;
    }
    let label = |account: &AccountId| {
        wallet
            .keys()
            .iter()
            .find(|k| &k.account == account)
            .map(|k| k.label.clone().unwrap_or_else(|| "(yours)".into()))
    };
    let mut text = vec![format!(
        "tip {} at height {} (miner {address}); supply {supply} cash in {total} accounts",
        tip.hash, tip.height
    )];
    for entry in &accounts {
        text.push(format!(
            "  {}  {:>20}  seq {}  {}",
            entry.account,
            entry.balance,
            entry.sequence,
            label(&entry.account).unwrap_or_default()
        ));
    }
    if next.is_some() {
        text.push(format!(
            "  … {} more accounts not shown",
            total.saturating_sub(accounts.len() as u64)
        ));
    }
    let list: Vec<Value> = accounts
        .iter()
        .map(|e| json!({"account": e.account, "balance": e.balance.microcash(), "sequence": e.sequence, "label": label(&e.account)}))
        .collect();
    Ok((
        json!({"tip": {"height": tip.height, "hash": tip.hash.to_string(), "work": tip.work}, "miner": address, "supply": supply.microcash(), "total": total, "accounts": list, "complete": next.is_none()}),
        text.join("\n"),
    ))
}
