//! `tally wallet`: keys, proof of work, introduction, balances, payments, the ledger.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tally_core::pow::{check_intro_pow, expected_attempts};
use tally_core::{AccountId, Amount, Mode, NetworkContract};
use tally_proto::LedgerRequest;
use tally_wallet::pow::{PowOutcome, search};
use tally_wallet::{QuorumClient, Wallet, ops};

use crate::wallet_chain::{self, Miners};

/// `tally wallet`
#[derive(Args)]
pub struct WalletArgs {
    /// The wallet folder (created if missing).
    #[arg(long)]
    pub wallet: PathBuf,
    /// The network contract (contract.json).
    #[arg(long)]
    pub network: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for each validator's answer.
    #[arg(long, default_value_t = 5, global = true)]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: WalletCommand,
}

/// The wallet's commands.
#[derive(Subcommand)]
pub enum WalletCommand {
    /// Key management.
    #[command(subcommand)]
    Key(KeyCommand),
    /// List the wallet's accounts.
    Keys,
    /// Find the proof of work that admits a key (all cores; Ctrl-C pauses, rerun resumes).
    GenPow {
        /// Account (hex prefix or label); the first account by default.
        account: Option<String>,
        /// Threads to search on; all cores by default.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Introduce a key: it receives the network's faucet amount, once.
    Intro {
        /// Account (hex prefix or label); the first account by default.
        account: Option<String>,
    },
    /// An account's balance as every validator sees it.
    Balance {
        /// Any account (64 hex), or one of the wallet's (prefix or label).
        account: Option<String>,
    },
    /// Pay AMOUNT cash (exact decimal, like 1.504) to account TO.
    Send {
        to: String,
        amount: String,
        /// The paying account (hex prefix or label); the first account by default.
        #[arg(long)]
        from: Option<String>,
        /// Proof-of-work networks: confirmations to wait for.
        #[arg(long, default_value_t = 1)]
        confirmations: u64,
        /// Proof-of-work networks: seconds to wait for them before giving up (the transfer
        /// stays journaled and the next `send` finishes it).
        #[arg(long, default_value_t = 600)]
        wait: u64,
    },
    /// Every validator's view of the ledger and where they differ (pow: every account at
    /// the chain tip, and the supply).
    Ledger,
    /// The validators and whether each answers.
    Peers,
}

/// `tally wallet key …`
#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a new account.
    New {
        #[arg(long)]
        label: Option<String>,
    },
}

fn output(json_mode: bool, value: Value, text: String) {
    if json_mode {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

pub async fn run(args: WalletArgs) -> anyhow::Result<()> {
    let contract_text = std::fs::read_to_string(&args.network)
        .with_context(|| format!("reading contract {}", args.network.display()))?;
    let contract = NetworkContract::from_json(&contract_text)
        .with_context(|| format!("contract {}", args.network.display()))?;
    let mut wallet = Wallet::open(&args.wallet)?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    let json_mode = args.json;
    if contract.mode == Mode::Pow
        && let Some((value, text)) = run_chain(&args, &contract, &wallet, timeout).await?
    {
        output(json_mode, value, text);
        return Ok(());
    }
    match args.command {
        WalletCommand::Key(KeyCommand::New { label }) => {
            let entry = wallet.add_key(None, label)?;
            output(
                json_mode,
                json!({"account": entry.account, "label": entry.label}),
                format!("new account {}", entry.account),
            );
        }
        WalletCommand::Keys => {
            let list: Vec<Value> = wallet
                .keys()
                .iter()
                .map(|k| json!({"account": k.account, "label": k.label, "proof_of_work": k.proof_of_work}))
                .collect();
            let text = wallet
                .keys()
                .iter()
                .map(|k| {
                    format!(
                        "{}  {}{}",
                        k.account,
                        k.label.clone().unwrap_or_default(),
                        if k.proof_of_work.is_some() {
                            "  (proof of work found)"
                        } else {
                            ""
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            output(
                json_mode,
                json!({"accounts": list}),
                if text.is_empty() {
                    "no accounts".into()
                } else {
                    text
                },
            );
        }
        WalletCommand::GenPow { account, threads } => {
            let entry = wallet.find(account.as_deref())?.clone();
            let bits = contract.intro_pow_bits;
            if let Some(nonce) = entry
                .proof_of_work
                .filter(|n| check_intro_pow(&entry.account, *n, bits))
            {
                output(
                    json_mode,
                    json!({"account": entry.account, "proof_of_work": nonce, "bits": bits}),
                    format!("proof of work already found: {nonce}"),
                );
                return Ok(());
            }
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let outcome = gen_pow(
                &entry.account,
                bits,
                entry.pow_resume_from.unwrap_or(0),
                threads,
                json_mode,
            )
            .await?;
            match outcome {
                PowOutcome::Found(nonce) => {
                    wallet.set_pow(&entry.account, Some(nonce), None)?;
                    output(
                        json_mode,
                        json!({"account": entry.account, "proof_of_work": nonce, "bits": bits}),
                        format!("proof of work found: {nonce} ({bits} bits)"),
                    );
                }
                PowOutcome::Stopped { resume_from } => {
                    wallet.set_pow(&entry.account, None, Some(resume_from))?;
                    output(
                        json_mode,
                        json!({"account": entry.account, "interrupted": true, "resume_from": resume_from}),
                        format!(
                            "interrupted; run gen-pow again to resume from nonce {resume_from}"
                        ),
                    );
                }
            }
        }
        WalletCommand::Intro { account } => {
            let entry = wallet.find(account.as_deref())?.clone();
            let Some(nonce) = entry.proof_of_work else {
                bail!(
                    "account {} has no proof of work yet: run `tally wallet gen-pow` first",
                    entry.account.short()
                );
            };
            let client = quorum_client(&contract, timeout).await?;
            let receipt = ops::intro(&wallet, &client, &entry.secret_key()?, nonce).await?;
            output(
                json_mode,
                json!({"account": entry.account, "certificate": receipt.certificate.checksum, "acknowledged": receipt.acknowledged, "validators": contract.validators.len(), "faucet": contract.faucet.microcash(), "receipt": receipt.path}),
                format!(
                    "introduced {}: +{} cash; certificate {} acknowledged by {}/{} validators",
                    entry.account.short(),
                    contract.faucet,
                    receipt.certificate.checksum,
                    receipt.acknowledged,
                    contract.validators.len()
                ),
            );
        }
        WalletCommand::Balance { account } => {
            let account = resolve_account(&wallet, account.as_deref())?;
            let client = quorum_client(&contract, timeout).await?;
            let request = LedgerRequest {
                accounts: Some(vec![account]),
                ..LedgerRequest::default()
            };
            let answers = client.ledger_all(&request).await;
            let mut tally: BTreeMap<(i128, u64), usize> = BTreeMap::new();
            let mut per_validator = Vec::new();
            for answer in &answers {
                match &answer.result {
                    Ok(view) => {
                        let entry = view.ledger.get(&account).copied().unwrap_or(
                            tally_proto::LedgerEntry {
                                balance: 0,
                                next_sequence: 0,
                                introduced: false,
                            },
                        );
                        *tally
                            .entry((entry.balance, entry.next_sequence))
                            .or_default() += 1;
                        per_validator.push(json!({"validator": answer.validator, "balance": entry.balance, "sequence": entry.next_sequence}));
                    }
                    Err(error) => per_validator
                        .push(json!({"validator": answer.validator, "error": error.to_string()})),
                }
            }
            let Some(((balance, sequence), agree)) =
                tally.iter().max_by_key(|(_, n)| **n).map(|(k, n)| (*k, *n))
            else {
                bail!("no validator answered");
            };
            let shown = signed_amount(balance);
            output(
                json_mode,
                json!({"account": account, "balance": balance, "balance_cash": shown, "sequence": sequence, "agree": agree, "validators": answers.len(), "quorum": client.committee().quorum(), "views": per_validator}),
                format!(
                    "{}: {} cash ({} of {} validators agree; next sequence {})",
                    account.short(),
                    shown,
                    agree,
                    answers.len(),
                    sequence
                ),
            );
        }
        WalletCommand::Send {
            to, amount, from, ..
        } => {
            let (to, amount) = payment(&to, &amount)?;
            let entry = wallet.find(from.as_deref())?.clone();
            let client = quorum_client(&contract, timeout).await?;
            let receipt = ops::pay(&wallet, &client, &entry.secret_key()?, to, amount).await?;
            if let Some(earlier) = &receipt.finished_pending
                && !json_mode
            {
                println!(
                    "finished an interrupted earlier order first: {}",
                    earlier.checksum
                );
            }
            output(
                json_mode,
                json!({"from": entry.account, "to": to, "amount": amount.microcash(), "certificate": receipt.certificate.checksum, "acknowledged": receipt.acknowledged, "validators": contract.validators.len(), "receipt": receipt.path}),
                format!(
                    "paid {} cash to {}; certificate {} acknowledged by {}/{} validators",
                    amount,
                    to.short(),
                    receipt.certificate.checksum,
                    receipt.acknowledged,
                    contract.validators.len()
                ),
            );
        }
        WalletCommand::Ledger => {
            let client = quorum_client(&contract, timeout).await?;
            let answers = client.ledger_all(&LedgerRequest::default()).await;
            let mut views = Vec::new();
            let mut fingerprints: BTreeMap<String, usize> = BTreeMap::new();
            let mut text = Vec::new();
            for answer in &answers {
                match &answer.result {
                    Ok(view) => {
                        let fp = view.fingerprint(client.network()).to_hex()[..16].to_owned();
                        *fingerprints.entry(fp.clone()).or_default() += 1;
                        views.push(json!({"validator": answer.validator, "certificates": view.certificates, "supply": view.supply.microcash(), "fingerprint": fp, "accounts": view.ledger.iter().map(|(a, e)| json!({"account": a, "balance": e.balance, "sequence": e.next_sequence, "introduced": e.introduced})).collect::<Vec<_>>()}));
                        text.push(format!(
                            "validator {}: {} certificates, supply {}, {} accounts, view {}",
                            answer.validator.short(),
                            view.certificates,
                            view.supply,
                            view.ledger.len(),
                            fp
                        ));
                    }
                    Err(error) => {
                        views.push(
                            json!({"validator": answer.validator, "error": error.to_string()}),
                        );
                        text.push(format!("validator {}: {error}", answer.validator.short()));
                    }
                }
            }
            let agree = fingerprints.values().max().copied().unwrap_or(0);
            if let Some(Ok(view)) = answers.iter().map(|a| &a.result).find(|r| r.is_ok()) {
                for (account, entry) in &view.ledger {
                    text.push(format!(
                        "  {}  {:>20}  seq {}",
                        account,
                        signed_amount(entry.balance),
                        entry.next_sequence
                    ));
                }
            }
            text.push(format!(
                "{agree} of {} validators hold the same view",
                answers.len()
            ));
            output(
                json_mode,
                json!({"validators": views, "agree": agree}),
                text.join("\n"),
            );
        }
        WalletCommand::Peers => {
            let client = quorum_client(&contract, timeout).await?;
            let answers = client.hello_all().await;
            let list: Vec<Value> = answers
                .iter()
                .map(|a| match &a.result {
                    Ok(hello) => json!({"validator": a.validator, "address": a.address, "up": true, "certificates": hello.certificates}),
                    Err(error) => json!({"validator": a.validator, "address": a.address, "up": false, "error": error.to_string()}),
                })
                .collect();
            let text = answers
                .iter()
                .map(|a| match &a.result {
                    Ok(hello) => format!(
                        "{}  {}  up, {} certificates",
                        a.validator.short(),
                        a.address,
                        hello.certificates.unwrap_or(0)
                    ),
                    Err(error) => format!("{}  {}  DOWN: {error}", a.validator.short(), a.address),
                })
                .collect::<Vec<_>>()
                .join("\n");
            output(json_mode, json!({"validators": list}), text);
        }
    }
    Ok(())
}

/// The recipient and amount of `send`, checked.
fn payment(to: &str, amount: &str) -> anyhow::Result<(AccountId, Amount)> {
    let to = AccountId::parse_key(to).with_context(|| format!("recipient {to:?}"))?;
    let amount: Amount = amount
        .parse()
        .with_context(|| format!("amount {amount:?}"))?;
    if amount.is_zero() {
        bail!("amount must be more than zero");
    }
    Ok((to, amount))
}

/// The commands that talk to a proof-of-work network's miners; `None` for those that work
/// the same on every network (keys, proof of work).
async fn run_chain(
    args: &WalletArgs,
    contract: &NetworkContract,
    wallet: &Wallet,
    timeout: Duration,
) -> anyhow::Result<Option<(Value, String)>> {
    let answer = match &args.command {
        WalletCommand::Key(_) | WalletCommand::Keys | WalletCommand::GenPow { .. } => {
            return Ok(None);
        }
        WalletCommand::Intro { .. } => {
            bail!("a proof-of-work network has no faucet: coins come from mining blocks")
        }
        WalletCommand::Balance { account } => {
            let account = resolve_account(wallet, account.as_deref())?;
            let miners = Miners::locate(contract, timeout).await?;
            wallet_chain::balance(wallet, &miners, &account).await?
        }
        WalletCommand::Send {
            to,
            amount,
            from,
            confirmations,
            wait,
        } => {
            let (to, amount) = payment(to, amount)?;
            let entry = wallet.find(from.as_deref())?.clone();
            let miners = Miners::locate(contract, timeout).await?;
            let waiting = wallet_chain::Waiting {
                confirmations: (*confirmations).max(1),
                patience: Duration::from_secs(*wait),
                quiet: args.json,
            };
            let sent = wallet_chain::send(
                wallet,
                &miners,
                contract,
                &entry.secret_key()?,
                to,
                amount,
                waiting,
            )
            .await?;
            let mut text = String::new();
            if let Some(earlier) = &sent.finished {
                text.push_str(&format!(
                    "settled an interrupted earlier transfer first: {}\n",
                    earlier.id
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
                json!({"from": entry.account, "to": to, "amount": amount.microcash(), "transaction": sent.receipt.id, "height": sent.receipt.height, "confirmations": sent.receipt.confirmations, "miner": sent.miner, "receipt": sent.path}),
                text,
            )
        }
        WalletCommand::Ledger => {
            let miners = Miners::locate(contract, timeout).await?;
            wallet_chain::ledger(wallet, &miners).await?
        }
        WalletCommand::Peers => {
            let miners = Miners::locate(contract, timeout).await?;
            let probe = wallet.keys().first().map_or_else(
                || tally_core::SecretKey::generate().account(),
                |k| k.account,
            );
            wallet_chain::peers(&miners, &probe).await
        }
    };
    Ok(Some(answer))
}

/// A client of the network's validators, located through the contract's tracker when it
/// names one (the contract's addresses stay the fallback when the tracker cannot help).
async fn quorum_client(
    contract: &NetworkContract,
    timeout: Duration,
) -> anyhow::Result<QuorumClient> {
    let mut client = QuorumClient::new(contract.clone(), timeout)?;
    if let Some(tracker) = &contract.tracker {
        let config = tally_tracker::ClientConfig {
            answer_timeout: timeout,
            connect_timeout: timeout,
            max_attempts: 1,
            ..tally_tracker::ClientConfig::default()
        };
        match client.locate_validators(config).await {
            Ok(located) => tracing::debug!(%tracker, located, "validators located"),
            Err(error) => {
                tracing::warn!(%tracker, %error, "tracker unavailable; using the contract's addresses")
            }
        }
    }
    Ok(client)
}

fn signed_amount(microcash: i128) -> String {
    let magnitude =
        Amount::from_microcash(u64::try_from(microcash.unsigned_abs()).unwrap_or(u64::MAX));
    if microcash < 0 {
        format!("-{magnitude}")
    } else {
        magnitude.to_string()
    }
}

fn resolve_account(wallet: &Wallet, query: Option<&str>) -> anyhow::Result<AccountId> {
    if let Some(text) = query
        && text.len() == 64
    {
        return Ok(text.parse()?);
    }
    Ok(wallet.find(query)?.account)
}

async fn gen_pow(
    account: &AccountId,
    bits: u32,
    start: u64,
    threads: usize,
    quiet: bool,
) -> anyhow::Result<PowOutcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let hashes = Arc::new(AtomicU64::new(0));
    let expected = expected_attempts(bits);
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} proof of work: {msg} [{elapsed_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let search_task = {
        let (stop, hashes, account) = (stop.clone(), hashes.clone(), *account);
        tokio::task::spawn_blocking(move || search(&account, bits, start, threads, &stop, &hashes))
    };
    tokio::pin!(search_task);
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            result = &mut search_task => {
                bar.finish_and_clear();
                return Ok(result?);
            }
            _ = crate::shutdown_signal() => {
                stop.store(true, Ordering::Relaxed);
            }
            _ = tick.tick() => {
                let done = hashes.load(Ordering::Relaxed);
                let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let eta = (expected / rate.max(1.0)).max(0.0);
                bar.set_message(format!("{done} hashes, {:.2} MH/s on {threads} threads, {bits} bits: ~{:.0} s expected in all", rate / 1e6, eta));
                bar.tick();
            }
        }
    }
}
