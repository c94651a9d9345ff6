//! `tally wallet … live send|receive`: the LiveConnect transfer (DESIGN §7). Parses the
//! arguments, calls `tally_wallet::live`, prints each step as it happens (text mode) and
//! the outcome (text, or one JSON document with `--json`). A failed transfer prints its
//! outcome and exits non-zero. Running the same command again after an interruption
//! resumes the journaled transfer.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use tally_core::{Amount, Mode, NetworkContract};
use tally_live::{ReceiverOutcome, SenderOutcome, Timing};
use tally_proto::live::ConnectionFile;
use tally_wallet::chain::{Miners, Waiting};
use tally_wallet::coins::{ChainCoins, CoinStore, WalletKeys};
use tally_wallet::live::{self, LiveLedger, Progress, ReceiveRequest, SendRequest, Side};
use tally_wallet::{QuorumClient, Wallet};

/// `tally wallet … live`
#[derive(Subcommand)]
pub enum LiveCommand {
    /// Send AMOUNT whole cash in coins to whoever gets the connection file, through a relay.
    Send {
        /// Whole cash, like 281.
        amount: String,
        /// The relay, HOST:PORT.
        #[arg(long)]
        relay: String,
        /// Where to write the connection file to hand to the receiver (privately: whoever
        /// has it can take part). If it names a transfer this wallet began, that one resumes.
        #[arg(long, default_value = "connection.txt")]
        out: PathBuf,
        /// The account to withdraw from when the Bank's coins do not cover the amount
        /// (hex prefix or label).
        #[arg(long)]
        from: Option<String>,
    },
    /// Receive the coins of the transfer a connection file describes.
    Receive {
        /// The connection file the sender handed over.
        connection_file: PathBuf,
        /// Refuse the transfer unless the sender announces exactly this amount.
        #[arg(long)]
        amount: Option<String>,
    },
    /// The transfers this wallet journaled; an unfinished one resumes when its `send` or
    /// `receive` command is run again.
    List,
    /// Resume the journaled transfer of ROOM (see `list`) without its connection file.
    Resume {
        /// The room `live list` shows.
        room: String,
    },
}

/// Heartbeats every second; the other clocks as the protocol's defaults.
fn timing() -> Timing {
    Timing {
        heartbeat_ms: 1_000,
        ..Timing::default()
    }
}

fn parse_amount(text: &str) -> anyhow::Result<Amount> {
    text.parse().with_context(|| format!("amount {text:?}"))
}

/// Prints a step as it happens (text mode only).
fn show(json_mode: bool, steps: &mut Vec<u8>, progress: Progress) {
    match progress {
        Progress::Step(number) => {
            steps.push(number.number());
            if !json_mode {
                println!("{:>3}  {}", number.number(), number.name());
            }
        }
        Progress::Failed(reason) => {
            if !json_mode {
                println!("  !  {reason}");
            }
        }
        Progress::Lingering(wait) => {
            if !json_mode {
                println!(
                    "     delivered; the receiver left before the confirmation reached it: waiting up to {} s for it to come back",
                    wait.as_secs()
                );
            }
        }
    }
}

/// The first Ctrl-C (or SIGTERM) cancels the transfer the protocol's way: before the coins
/// leave they go back to the Bank; after, the wallet still waits for the pown deadline.
/// A second one stops at once; the journal lets the same command resume later.
fn cancel_on_signal(json_mode: bool) -> tokio::sync::watch::Receiver<bool> {
    let (cancel, cancelled) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        if !json_mode {
            println!(
                "cancelling: coins not yet sent go back to the Bank; once sent, the wallet waits for the pown deadline (interrupt again to stop now and resume later)"
            );
        }
        let _ = cancel.send(true);
        crate::shutdown_signal().await;
        std::process::exit(130);
    });
    cancelled
}

/// Runs a `live` command; returns what `tally wallet` prints.
pub async fn run(
    wallet: &Wallet,
    contract: NetworkContract,
    command: &LiveCommand,
    timeout: Duration,
    json_mode: bool,
    passphrase: Option<&str>,
) -> anyhow::Result<(Value, String)> {
    if let LiveCommand::List = command {
        return list(wallet);
    }
    // `resume` is the journaled transfer's own `send` or `receive`, with the journal's copy
    // of its connection file.
    let resumed;
    let command = match command {
        LiveCommand::Resume { room } => {
            let Some(found) = live::resumable(wallet.dir(), room)? else {
                bail!("this wallet journaled no transfer in room {room:?} (see `live list`)");
            };
            resumed = match found.side {
                Side::Sender => {
                    let text = std::fs::read_to_string(&found.connection_file)
                        .with_context(|| found.connection_file.display().to_string())?;
                    let file = ConnectionFile::parse(&text)
                        .with_context(|| found.connection_file.display().to_string())?;
                    LiveCommand::Send {
                        amount: found.amount.unwrap_or(Amount::ZERO).to_string(),
                        relay: file.relay,
                        out: found.connection_file,
                        from: None,
                    }
                }
                Side::Receiver => LiveCommand::Receive {
                    connection_file: found.connection_file,
                    amount: None,
                },
            };
            &resumed
        }
        other => other,
    };
    let store = CoinStore::open(wallet.dir(), contract.id())?;
    // Coin keys from the seed when the wallet has one, so `restore` finds them.
    let keys = WalletKeys::new(wallet, contract.id(), passphrase);
    if contract.mode == Mode::Pow {
        // A pown counts once buried under a block; the receiver waits up to the default
        // pown window for it.
        let net = ChainCoins {
            miners: Miners::locate(&contract, timeout).await?,
            waiting: Waiting {
                confirmations: 1,
                patience: Duration::from_millis(Timing::default().pown_window_ms),
            },
        };
        return run_on(wallet, &net, &store, keys, command, json_mode).await;
    }
    let client = QuorumClient::located(contract, timeout).await?;
    run_on(wallet, &client, &store, keys, command, json_mode).await
}

/// Runs a `send` or `receive` on the network `net`.
async fn run_on<L: LiveLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    mut keys: WalletKeys<'_>,
    command: &LiveCommand,
    json_mode: bool,
) -> anyhow::Result<(Value, String)> {
    let mut steps = Vec::new();
    match command {
        LiveCommand::Send {
            amount,
            relay,
            out,
            from,
        } => {
            let from = match from {
                Some(query) => Some(wallet.find(Some(query))?.secret_key()?),
                None => None,
            };
            let request = SendRequest {
                amount: parse_amount(amount)?,
                relay: relay.clone(),
                connection_file: out.clone(),
                timing: timing(),
                cancel: Some(cancel_on_signal(json_mode)),
            };
            if !json_mode {
                println!(
                    "connection file: {} (hand it to the receiver privately)",
                    out.display()
                );
            }
            let mut progress = |p: Progress| show(json_mode, &mut steps, p);
            let report = live::send(
                wallet,
                net,
                store,
                &mut keys,
                from.as_ref(),
                &request,
                &mut progress,
            )
            .await?;
            let (ok, text) = match &report.outcome {
                SenderOutcome::Delivered { .. } => (
                    true,
                    format!(
                        "delivered {} cash: the receipt of the receiver's powns checks",
                        report.amount
                    ),
                ),
                SenderOutcome::Kept { reason } => (
                    false,
                    format!("not sent ({reason}); the coins are back in the Bank"),
                ),
                SenderOutcome::Reclaimed {
                    reason,
                    reclaimed,
                    powned_by_receiver,
                    frozen,
                } => (
                    false,
                    format!(
                        "failed after the coins left ({reason}); {reclaimed} cash taken back, {powned_by_receiver} cash powned by the receiver{}",
                        if frozen.is_zero() {
                            String::new()
                        } else {
                            format!(
                                "; {frozen} cash frozen: someone holding those coins' secret signed two different orders for them, so neither can complete and nobody can spend them"
                            )
                        }
                    ),
                ),
            };
            let text = if report.resumed {
                format!(
                    "(resumed the transfer {} journaled for {}; use another --out for a new one)\n{text}",
                    report.room,
                    out.display()
                )
            } else {
                text
            };
            let value = json!({"ok": ok, "steps": steps, "report": serde_json::to_value(&report)?});
            finish(json_mode, ok, value, text)
        }
        LiveCommand::List | LiveCommand::Resume { .. } => list(wallet),
        LiveCommand::Receive {
            connection_file,
            amount,
        } => {
            let request = ReceiveRequest {
                connection_file: connection_file.clone(),
                expected_amount: amount.as_deref().map(parse_amount).transpose()?,
                timing: timing(),
                cancel: Some(cancel_on_signal(json_mode)),
            };
            let mut progress = |p: Progress| show(json_mode, &mut steps, p);
            let report =
                live::receive(wallet, net, store, &mut keys, &request, &mut progress).await?;
            let (ok, text) = match &report.outcome {
                ReceiverOutcome::Received {
                    announced,
                    received,
                    confirmed,
                    ..
                } => (
                    true,
                    format!(
                        "received {received} of the {announced} cash announced; the coins are in the Bank{}",
                        if *confirmed {
                            ", and the sender confirmed the receipt"
                        } else {
                            " (the sender did not confirm the receipt)"
                        }
                    ),
                ),
                ReceiverOutcome::Aborted { reason } => {
                    (false, format!("nothing received: {reason}"))
                }
            };
            let value = json!({"ok": ok, "steps": steps, "report": serde_json::to_value(&report)?});
            finish(json_mode, ok, value, text)
        }
    }
}

/// A transfer that failed is printed here and ends the command with an error; one that
/// worked is returned for `tally wallet` to print.
fn finish(
    json_mode: bool,
    ok: bool,
    value: Value,
    text: String,
) -> anyhow::Result<(Value, String)> {
    if ok {
        return Ok((value, text));
    }
    if json_mode {
        println!("{value}");
    } else {
        println!("{text}");
    }
    bail!("the live transfer failed")
}

/// `live list`: one line a transfer.
fn list(wallet: &Wallet) -> anyhow::Result<(Value, String)> {
    let transfers = live::transfers(wallet.dir())?;
    let text = if transfers.is_empty() {
        "no live transfers".to_owned()
    } else {
        transfers
            .iter()
            .map(|t| format!("{}  {:?}  {}", t.room, t.side, t.phase))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok((
        json!({"transfers": serde_json::to_value(&transfers)?}),
        text,
    ))
}
