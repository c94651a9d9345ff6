//! What the wallet commands on a proof-of-work network print (`tally-wallet`'s
//! [`tally_wallet::chain`] does the work): text for a person, or one JSON document with
//! `--json`, and a progress bar while `send` waits for confirmations.

use std::time::Duration;

use serde_json::{Value, json};
use tally_core::{AccountId, Amount};
use tally_wallet::Wallet;
use tally_wallet::chain::{ChainBalance, ChainLedger, MinerProbe, SendEvent, Sent};

/// `balance`: confirmed and pending amounts at a miner's tip, and the confirmations of the
/// transfer this wallet has in flight for the account, if any.
pub fn balance(seen: &ChainBalance) -> (Value, String) {
    let state = &seen.state;
    let (in_flight, in_flight_text) = match &seen.in_flight {
        Some(tx) => (
            json!({"id": tx.id, "amount": tx.amount.microcash(), "to": tx.recipient, "confirmations": tx.confirmations}),
            format!(
                "; in flight: {} cash to {} ({} confirmations)",
                tx.amount,
                tx.recipient.short(),
                tx.confirmations
            ),
        ),
        None => (Value::Null, String::new()),
    };
    let json = json!({
        "account": seen.account,
        "balance": state.balance.microcash(),
        "pending_in": state.pending_in.microcash(),
        "pending_out": state.pending_out.microcash(),
        "sequence": state.sequence,
        "next_sequence": state.next_sequence,
        "tip": {"height": state.tip.height, "hash": state.tip.hash.to_string()},
        "miner": seen.miner,
        "in_flight": in_flight,
    });
    let text = format!(
        "{}: {} cash confirmed at height {} (pending +{} / -{} cash){in_flight_text}",
        seen.account.short(),
        state.balance,
        state.tip.height,
        state.pending_in,
        state.pending_out
    );
    (json, text)
}

/// `send`: the confirmed transfer, and an interrupted earlier one settled first, if any.
pub fn sent(sent: &Sent, from: AccountId, to: AccountId, amount: Amount) -> (Value, String) {
    let mut text = String::new();
    if let Some(earlier) = &sent.finished {
        text.push_str(&format!(
            "settled an interrupted earlier transfer first: {}\n",
            earlier.id
        ));
    }
    for restored in &sent.restored {
        text.push_str(&format!(
            "sent again a receipted transfer the chain had lost in a reorganisation: {} (now in block {})\n",
            restored.id, restored.height
        ));
    }
    text.push_str(&format!(
        "paid {amount} cash to {}; transaction {} in block {} with {} confirmations",
        to.short(),
        sent.receipt.id,
        sent.receipt.height,
        sent.receipt.confirmations
    ));
    (
        json!({"from": from, "to": to, "amount": amount.microcash(), "transaction": sent.receipt.id, "height": sent.receipt.height, "confirmations": sent.receipt.confirmations, "miner": sent.miner, "receipt": sent.path, "restored": sent.restored.iter().map(|r| r.id).collect::<Vec<_>>()}),
        text,
    )
}

/// `peers`: the miners the tracker lists and the tip each reports.
pub fn peers(probes: &[MinerProbe]) -> (Value, String) {
    let mut list = Vec::new();
    let mut text = Vec::new();
    for probe in probes {
        let address = &probe.address;
        match &probe.tip {
            Ok(tip) => {
                list.push(json!({"address": address, "up": true, "height": tip.height, "tip": tip.hash.to_string()}));
                text.push(format!(
                    "{address}  up, tip {} at height {}",
                    tip.hash, tip.height
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

/// `ledger`: the chain tip, the supply and every account at the tip, the wallet's own
/// marked with their labels.
pub fn ledger(wallet: &Wallet, seen: &ChainLedger) -> (Value, String) {
    let label = |account: &AccountId| {
        wallet
            .keys()
            .iter()
            .find(|k| &k.account == account)
            .map(|k| k.label.clone().unwrap_or_else(|| "(yours)".into()))
    };
    let (tip, miner) = (&seen.tip, &seen.miner);
    let mut text = vec![format!(
        "tip {} at height {} (miner {miner}); supply {} cash in {} accounts",
        tip.hash, tip.height, seen.supply, seen.total
    )];
    for entry in &seen.accounts {
        text.push(format!(
            "  {}  {:>20}  seq {}  {}",
            entry.account,
            entry.balance,
            entry.sequence,
            label(&entry.account).unwrap_or_default()
        ));
    }
    if !seen.complete {
        text.push(format!(
            "  … {} more accounts not shown",
            seen.total.saturating_sub(seen.accounts.len() as u64)
        ));
    }
    let list: Vec<Value> = seen
        .accounts
        .iter()
        .map(|e| json!({"account": e.account, "balance": e.balance.microcash(), "sequence": e.sequence, "label": label(&e.account)}))
        .collect();
    (
        json!({"tip": {"height": tip.height, "hash": tip.hash.to_string(), "work": tip.work}, "miner": miner, "supply": seen.supply.microcash(), "total": seen.total, "accounts": list, "complete": seen.complete}),
        text.join("\n"),
    )
}

/// The progress bar of `send`: confirmations of the transaction being followed (none with
/// `--json`).
pub struct SendProgress {
    quiet: bool,
    bar: Option<(indicatif::ProgressBar, u64)>,
}

impl SendProgress {
    pub fn new(quiet: bool) -> Self {
        SendProgress { quiet, bar: None }
    }

    /// Shows what `send` reports.
    pub fn show(&mut self, event: SendEvent) {
        match event {
            SendEvent::Following { wanted, .. } => {
                self.finish();
                let bar = if self.quiet {
                    indicatif::ProgressBar::hidden()
                } else {
                    indicatif::ProgressBar::new(wanted)
                };
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {msg} [{bar:20}] {pos}/{len} confirmations, {elapsed}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar.enable_steady_tick(Duration::from_millis(200));
                self.bar = Some((bar, wanted));
            }
            SendEvent::Progress {
                tip_height,
                confirmations,
            } => {
                if let Some((bar, wanted)) = &self.bar {
                    bar.set_message(format!("tip {tip_height}"));
                    bar.set_position(confirmations.min(*wanted));
                }
            }
            SendEvent::PushedAgain { .. } => {}
            SendEvent::Restoring { id, sequence } => {
                self.finish();
                if !self.quiet {
                    eprintln!(
                        "transfer {id} (sequence {sequence}) was confirmed before but the chain no longer holds it: sending it again"
                    );
                }
            }
        }
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if let Some((bar, _)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
