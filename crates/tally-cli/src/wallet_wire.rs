//! `tally wallet … wire …`: move money from this wallet's network (A) to another (B)
//! through a market maker (seed 002), and the wires kept: list, show, resume. Parses, calls
//! `tally_wallet::wire`, prints each step as it happens and the receipt.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tally_core::{Amount, NetworkContract};
use tally_wallet::Wallet;
use tally_wallet::wire::payer::{self, WireRecord, WireRequest, WireStep};
use tally_wallet::wire::{Bounds, Proof, Reach};

use crate::duration::parse_positive_duration;

/// `tally wallet … wire`
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WireArgs {
    #[command(subcommand)]
    pub command: Option<WireCommand>,
    /// What arrives on B (exact decimal cash); the fee comes on top, paid on A.
    pub amount: Option<String>,
    /// Network B's contract: where the money arrives, to the same account.
    #[arg(long)]
    pub to: Option<PathBuf>,
    /// The relay (HOST:PORT) where makers announce their quotes.
    #[arg(long)]
    pub relay: Option<String>,
    /// The paying account (hex prefix or label); the first account by default.
    #[arg(long)]
    pub from: Option<String>,
    /// The most fee accepted (exact decimal cash).
    #[arg(long)]
    pub max_fee: Option<String>,
    /// How long to listen for quotes.
    #[arg(long, value_parser = parse_positive_duration, default_value = "2s")]
    pub listen: Duration,
}

/// The wires this wallet keeps.
#[derive(Subcommand)]
pub enum WireCommand {
    /// Every wire, newest first.
    List,
    /// One wire and its receipt (id: a hex prefix).
    Show { id: String },
    /// Drive an unfinished wire on from its journal.
    Resume { id: String },
}

pub async fn run(
    wallet: &Wallet,
    contract: NetworkContract,
    args: &WireArgs,
    timeout: Duration,
    json_mode: bool,
) -> anyhow::Result<(Value, String)> {
    let show = move |step: WireStep, _| {
        let line = step.to_string();
        if json_mode {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    match &args.command {
        Some(WireCommand::List) => {
            let records = payer::list(wallet)?;
            let text = records
                .iter()
                .map(|record| {
                    let config = record.state.config();
                    format!(
                        "{}  {} → {}  {} cash  {}",
                        record.id.short(),
                        record.contract_a.name,
                        record.contract_b.name,
                        config.amount,
                        record.outcome_words()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let value = json!(
                records
                    .iter()
                    .map(|record| json!({"id": record.id, "a": record.contract_a.name, "b": record.contract_b.name, "amount": record.state.config().amount.microcash(), "outcome": record.outcome}))
                    .collect::<Vec<_>>()
            );
            Ok((
                value,
                if text.is_empty() {
                    "no wires".into()
                } else {
                    text
                },
            ))
        }
        Some(WireCommand::Show { id }) => {
            let (_, record) = payer::find(wallet, id)?;
            Ok(receipt(&record))
        }
        Some(WireCommand::Resume { id }) => {
            let (_, record) = payer::find(wallet, id)?;
            let key = wallet
                .find(Some(&record.state.config().account.to_string()))?
                .secret_key()?;
            let record = payer::resume(wallet, id, key, timeout, &Bounds::default(), show).await?;
            Ok(receipt(&record))
        }
        None => {
            let (Some(amount), Some(to), Some(relay)) = (&args.amount, &args.to, &args.relay)
            else {
                bail!("a wire needs AMOUNT, --to B/contract.json and --relay HOST:PORT");
            };
            let amount: Amount = amount
                .parse()
                .with_context(|| format!("amount {amount:?}"))?;
            if amount.is_zero() {
                bail!("a wire of zero moves nothing");
            }
            let max_fee = args
                .max_fee
                .as_deref()
                .map(|fee| {
                    fee.parse::<Amount>()
                        .with_context(|| format!("fee {fee:?}"))
                })
                .transpose()?;
            let text = std::fs::read_to_string(to)
                .with_context(|| format!("reading contract {}", to.display()))?;
            let contract_b = NetworkContract::from_json(&text)
                .with_context(|| format!("contract {}", to.display()))?;
            if contract_b.id() == contract.id() {
                bail!("--to names this wallet's own network; use `send` within one network");
            }
            let key = wallet.find(args.from.as_deref())?.secret_key()?;
            let request = WireRequest {
                key,
                client_a: Reach::connect(&contract, timeout, &Bounds::default()).await?,
                client_b: Reach::connect(&contract_b, timeout, &Bounds::default()).await?,
                relay: relay.clone(),
                amount,
                max_fee,
                bounds: Bounds::default(),
                listen: args.listen,
                known_quotes: Vec::new(),
            };
            let record = payer::wire(wallet, request, show).await?;
            Ok(receipt(&record))
        }
    }
}

/// Drives each unfinished wire on for a moment (what is due: a claim, a refund), before
/// another wallet command; one that needs longer is left for `wire resume`.
pub async fn resume_open(wallet: &Wallet, timeout: Duration) {
    let Ok(records) = payer::list(wallet) else {
        return;
    };
    for record in records.into_iter().filter(WireRecord::is_open) {
        let (id, short) = (record.id.to_hex(), record.id.short());
        let Ok(key) = wallet
            .find(Some(&record.state.config().account.to_string()))
            .and_then(|entry| entry.secret_key())
        else {
            continue;
        };
        let quiet = |_: WireStep, _| {};
        match tokio::time::timeout(
            Duration::from_secs(3),
            payer::resume(wallet, &id, key, timeout, &Bounds::default(), quiet),
        )
        .await
        {
            Ok(Ok(record)) => eprintln!("wire {short}: {}", record.outcome_words()),
            Ok(Err(error)) => eprintln!("wire {short}: {error}"),
            Err(_) => eprintln!(
                "wire {short} is still running; `wire resume {short}` follows it to the end"
            ),
        }
    }
}

fn receipt(record: &WireRecord) -> (Value, String) {
    let receipt = record.receipt();
    let value = serde_json::to_value(&receipt).unwrap_or(Value::Null);
    let certificate = |name: &str, proof: &Option<Proof>| {
        proof.as_ref().map(|proof| match proof {
            Proof::Certificate(cert) => format!(
                "\n  {name}: certificate {} ({} votes)",
                cert.checksum,
                cert.votes.len()
            ),
            Proof::Chain(receipt) => format!(
                "\n  {name}: transaction {} mined at height {} ({} confirmations)",
                receipt.id, receipt.height, receipt.confirmations
            ),
        })
    };
    let mut text = format!(
        "wire {}: {}\n  {} → {}: {} cash, fee {} cash, maker {}\n  quote {}",
        record.id,
        record.outcome_words(),
        record.contract_a.name,
        record.contract_b.name,
        receipt.amount,
        receipt.fee.unwrap_or(Amount::ZERO),
        receipt.quote.quote.maker.short(),
        receipt.quote.hash()
    );
    for line in [
        certificate("lock on A", &receipt.lock_a),
        certificate("maker's lock on B", &receipt.lock_b),
        certificate("claim on B", &receipt.claim_b),
        certificate("refund on A", &receipt.refund_a),
    ]
    .into_iter()
    .flatten()
    {
        text.push_str(&line);
    }
    (value, text)
}
