//! `tally maker`: the market maker of the cross-server wire. Parses, starts
//! `tally_maker::run` and its control API, shows the status line.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tally_core::{Amount, NetworkContract};
use tally_maker::{MakerSettings, MakerStatus};
use tally_wallet::wire::Bounds;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::duration::parse_positive_duration;

/// Options of `tally maker`.
#[derive(clap::Args, Debug)]
pub struct MakerArgs {
    /// The wallet folder whose key trades (the same account on every network).
    #[arg(long)]
    pub wallet: PathBuf,
    /// The account (hex prefix or label); the wallet's first by default.
    #[arg(long)]
    pub account: Option<String>,
    /// A pair carried, A/contract.json:B/contract.json (money paid on A arrives on B);
    /// repeat for several.
    #[arg(long, required = true)]
    pub pair: Vec<String>,
    /// The relay (HOST:PORT) whose topics it sits in.
    #[arg(long)]
    pub relay: String,
    /// The proportional fee, as a percentage of the amount carried (0.5%).
    #[arg(long, default_value = "0.5%")]
    pub fee: String,
    /// A fixed fee on top (exact decimal cash).
    #[arg(long, default_value = "0")]
    pub fee_fixed: String,
    /// The least amount carried.
    #[arg(long, default_value = "0.01")]
    pub min: String,
    /// The most amount carried (less when less is held on B).
    #[arg(long, default_value = "1000")]
    pub max: String,
    /// How long the maker's lock on B runs: the payer's window to claim.
    #[arg(long, value_parser = parse_positive_duration, default_value = "2m")]
    pub lock_time: Duration,
    /// Δ between the deadlines on A and B, when more than the timing rule's least.
    #[arg(long, value_parser = parse_positive_duration)]
    pub delta: Option<Duration>,
    /// How often quotes are announced again.
    #[arg(long, value_parser = parse_positive_duration, default_value = "10s")]
    pub announce_every: Duration,
    /// How many of the wallet's accounts it pays from on B (a quote each; their locks are
    /// certified side by side).
    #[arg(long, default_value_t = 1)]
    pub accounts: usize,
    /// The most wires open at once for one taker (its account).
    #[arg(long, default_value_t = 4)]
    pub max_open_per_taker: usize,
    /// The control API's address (JSON-RPC: status, wires, quotes).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub control: SocketAddr,
    /// Seconds to wait for each validator's answer.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

pub async fn run(args: MakerArgs) -> anyhow::Result<()> {
    let mut pairs = Vec::new();
    for pair in &args.pair {
        let Some((a, b)) = pair.split_once(':') else {
            bail!("--pair {pair:?}: expected A/contract.json:B/contract.json");
        };
        pairs.push((contract(a)?, contract(b)?));
    }
    let amount = |text: &str, what: &str| -> anyhow::Result<Amount> {
        text.parse().with_context(|| format!("{what} {text:?}"))
    };
    let settings = MakerSettings {
        wallet_dir: args.wallet.clone(),
        account: args.account.clone(),
        pairs,
        relay: args.relay.clone(),
        fee_ppm: fee_ppm(&args.fee)?,
        fee_fixed: amount(&args.fee_fixed, "fixed fee")?,
        min: amount(&args.min, "least amount")?,
        max: amount(&args.max, "most amount")?,
        lock_time: args.lock_time,
        delta: args.delta,
        announce_every: args.announce_every,
        max_open_per_taker: args.max_open_per_taker,
        accounts: args.accounts,
        bounds: Bounds::default(),
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    let listener = tokio::net::TcpListener::bind(args.control)
        .await
        .with_context(|| format!("binding the control API on {}", args.control))?;
    println!("maker control API on {}", listener.local_addr()?);
    let (status_tx, status_rx) = watch::channel(MakerStatus::default());
    let cancel = CancellationToken::new();
    let api = tokio::spawn(tally_maker::rpc::serve(
        listener,
        status_rx.clone(),
        cancel.clone(),
    ));
    let line = tokio::spawn(status_line(status_rx));
    let stop = cancel.clone();
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        stop.cancel();
    });
    let result = tally_maker::run(settings, status_tx, cancel.clone()).await;
    cancel.cancel();
    line.abort();
    let _ = api.await;
    result?;
    Ok(())
}

/// The status line: redrawn in place on a terminal, logged every 10 s otherwise.
async fn status_line(mut status: watch::Receiver<MakerStatus>) {
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut logged = tokio::time::Instant::now();
    let mut last = String::new();
    while status.changed().await.is_ok() {
        let text = summary(&status.borrow_and_update());
        if terminal {
            bar.set_message(text);
            bar.tick();
        } else if text != last && logged.elapsed() >= Duration::from_secs(10) {
            tracing::info!("{text}");
            logged = tokio::time::Instant::now();
            last = text;
        }
    }
}

fn summary(status: &MakerStatus) -> String {
    let liquidity = status
        .pairs
        .iter()
        .map(|pair| {
            let cash = |v: Option<i128>| {
                v.and_then(|v| u64::try_from(v).ok())
                    .map_or("?".into(), |v| Amount::from_microcash(v).to_string())
            };
            format!(
                "{} {} / {} {}{}",
                pair.a,
                cash(pair.liquidity_a),
                pair.b,
                cash(pair.liquidity_b),
                if pair.joined { "" } else { " (relay down)" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} open, {} completed, {} refunded; fees {} cash; {liquidity}",
        status.open,
        status.completed,
        status.refunded,
        Amount::from_microcash(status.fees_earned)
    )
}

fn contract(path: &str) -> anyhow::Result<NetworkContract> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading contract {path}"))?;
    NetworkContract::from_json(&text).with_context(|| format!("contract {path}"))
}

/// `0.5%` → 5000 parts per million (at most four decimals, at most 100%).
fn fee_ppm(text: &str) -> anyhow::Result<u32> {
    let Some(number) = text.trim().strip_suffix('%') else {
        bail!("--fee {text:?}: a percentage like 0.5%");
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > 4
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        bail!("--fee {text:?}: a percentage with at most four decimals, like 0.5%");
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse()? };
    let fraction: u64 = format!("{fraction:0<4}").parse()?;
    let ppm = whole
        .checked_mul(10_000)
        .and_then(|w| w.checked_add(fraction))
        .filter(|ppm| *ppm <= 1_000_000)
        .with_context(|| format!("--fee {text:?}: at most 100%"))?;
    Ok(u32::try_from(ppm)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::fee_ppm;

    #[test]
    fn fees_are_percentages_with_four_decimals_at_most() {
        assert_eq!(fee_ppm("0.5%").unwrap(), 5_000);
        assert_eq!(fee_ppm("1%").unwrap(), 10_000);
        assert_eq!(fee_ppm(".25%").unwrap(), 2_500);
        assert_eq!(fee_ppm("100%").unwrap(), 1_000_000);
        for bad in ["0.5", "101%", "0.00001%", "-1%", "%", "a%", "1e2%"] {
            assert!(fee_ppm(bad).is_err(), "{bad}");
        }
    }
}
