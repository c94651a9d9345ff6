//! `tally wallet … send-many FILE`: a file of payments (CSV `recipient,amount` or JSON
//! lines) paid from the wallet's accounts at once, with a progress bar; parsing, spreading
//! and paying are `tally_wallet::payroll`'s.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tally_core::{Amount, NetworkContract, SecretKey};
use tally_wallet::client::QuorumClient;
use tally_wallet::payroll::{self, PaymentOutcome};
use tally_wallet::views;
use tally_wallet::wallet::Wallet;

/// Reads `file`, pays every payment from the accounts `from` names (all of the wallet's
/// by default), and says what became of each.
pub async fn run(
    wallet: &Wallet,
    contract: NetworkContract,
    file: &Path,
    from: &[String],
    timeout: Duration,
) -> anyhow::Result<(Value, String)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let payments = payroll::parse_payments(&text)
        .with_context(|| format!("payments file {}", file.display()))?;
    let entries = if from.is_empty() {
        wallet.keys().to_vec()
    } else {
        from.iter()
            .map(|query| wallet.find(Some(query)).cloned())
            .collect::<Result<Vec<_>, _>>()?
    };
    if entries.is_empty() {
        bail!("the wallet has no account to pay from");
    }
    let client = QuorumClient::located(contract.clone(), timeout).await?;
    // What each payer holds now, as a quorum agrees: payments are spread within it.
    let mut payers: Vec<(SecretKey, Amount)> = Vec::with_capacity(entries.len());
    for entry in &entries {
        let seen = views::balance(&client, &entry.account).await?;
        let held = u64::try_from(seen.balance.max(0)).unwrap_or(0);
        payers.push((entry.secret_key()?, Amount::from_microcash(held)));
    }
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(payments.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} payments, {per_sec}, {msg} failed",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut failed = 0usize;
    // The payers' tasks use the contract as located (the tracker's current addresses).
    let located = client.contract().clone();
    let outcomes = payroll::send_many(wallet, &located, timeout, &payers, &payments, |outcome| {
        if outcome.result.is_err() {
            failed += 1;
        }
        bar.set_message(failed.to_string());
        bar.inc(1);
    })
    .await;
    bar.finish_and_clear();
    Ok(render(&outcomes, started.elapsed(), payers.len()))
}

fn render(outcomes: &[PaymentOutcome], elapsed: Duration, payers: usize) -> (Value, String) {
    let paid = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let mut text = format!(
        "paid {paid} of {} payments from {payers} accounts in {:.2} s ({:.0} payments/s)",
        outcomes.len(),
        seconds,
        paid as f64 / seconds
    );
    let mut rows = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let payment = &outcome.payment;
        match &outcome.result {
            Ok(receipt) => rows.push(json!({
                "payment": outcome.index + 1,
                "to": payment.recipient,
                "amount": payment.amount.microcash(),
                "from": outcome.from,
                "certificate": receipt.certificate.checksum,
                "acknowledged": receipt.acknowledged,
                "receipt": receipt.path,
            })),
            Err(error) => {
                text.push_str(&format!(
                    "\npayment {} ({} cash to {}) failed: {error}",
                    outcome.index + 1,
                    payment.amount,
                    payment.recipient.short()
                ));
                rows.push(json!({
                    "payment": outcome.index + 1,
                    "to": payment.recipient,
                    "amount": payment.amount.microcash(),
                    "from": outcome.from,
                    "error": error.to_string(),
                }));
            }
        }
    }
    if let Some(receipt) = outcomes.iter().find_map(|o| o.result.as_ref().ok())
        && let Some(folder) = receipt.path.parent()
    {
        text.push_str(&format!("\nreceipts in {}", folder.display()));
    }
    (
        json!({"paid": paid, "failed": outcomes.len() - paid, "seconds": seconds, "payments": rows}),
        text,
    )
}
