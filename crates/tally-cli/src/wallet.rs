//! `tally wallet`: keys, proof of work, introduction, balances, payments, the ledger. The
//! arguments, the calls into `tally-wallet`, and what they return, printed (as text or
//! `--json`); proof-of-work networks' answers are printed by [`crate::wallet_chain`], and
//! seeded wallets (`init`, `restore`, `key new`) are handled by [`crate::wallet_seed`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tally_core::pow::expected_attempts;
use tally_core::{AccountId, Amount, Mode, NetworkContract, SignedCash};
use tally_wallet::chain::{self, Miners};
use tally_wallet::pow::{KeyProof, SearchProgress, find_key_proof};
use tally_wallet::views::NextSlot;
use tally_wallet::{KeyEntry, QuorumClient, Wallet, ops, views};

use crate::{wallet_chain, wallet_seed};

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
    /// The environment variable that holds the seed's passphrase (seeded wallets: `init`
    /// and `restore` seal the seed with it, `key new` opens the seed with it).
    #[arg(long, global = true, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    #[command(subcommand)]
    pub command: WalletCommand,
}

/// The wallet's commands.
#[derive(Subcommand)]
pub enum WalletCommand {
    /// Make a new wallet whose every key derives from one seed, shown once as 24 words.
    Init,
    /// Put a seeded wallet back from its words, finding every account and coin key the
    /// validators (or miners) know.
    Restore {
        /// The words, quoted as one argument; read from stdin when absent.
        #[arg(long)]
        words: Option<String>,
    },
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
    /// Pay every payment of FILE (CSV `recipient,amount` or JSON lines `{"to": …,
    /// "amount": …}`) from the wallet's accounts at once: each account pays its share one
    /// after another, all accounts together; a receipt per payment. Quorum networks.
    SendMany {
        file: std::path::PathBuf,
        /// Pay only from these accounts (hex prefix or label; repeat or comma-separate);
        /// every account of the wallet by default.
        #[arg(long, value_delimiter = ',')]
        from: Vec<String>,
    },
    /// Every validator's view of the ledger and where they differ (pow: every account at
    /// the chain tip, and the supply).
    Ledger,
    /// The validators and whether each answers.
    Peers,
    /// Bearer coins: every coin by folder, or a coin operation.
    Coins(crate::wallet_coins::CoinsArgs),
    /// LiveConnect transfers of coins through a relay.
    #[command(subcommand)]
    Live(crate::wallet_live::LiveCommand),
    /// Hash-locked escrows by hand: lock, claim, refund, show.
    #[command(subcommand)]
    Escrow(crate::wallet_escrow::EscrowCommand),
    /// Move AMOUNT to another network through a market maker (seed 002); or list, show,
    /// resume the wires kept.
    Wire(crate::wallet_wire::WireArgs),
}

/// `tally wallet key …`
#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a new account (derived from the seed in a seeded wallet).
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
    let timeout = Duration::from_secs(args.timeout.max(1));
    let passphrase = wallet_seed::passphrase(args.passphrase_env.as_deref())?;
    let passphrase = passphrase.as_deref();
    // Before the folder is opened (which creates it): a refused restore writes nothing.
    match &args.command {
        WalletCommand::Init => {
            let (value, text) = wallet_seed::init(&args.wallet, &contract, passphrase)?;
            output(args.json, value, text);
            return Ok(());
        }
        WalletCommand::Restore { words } => {
            let (value, text) = wallet_seed::restore(
                &args.wallet,
                contract,
                words.as_deref(),
                passphrase,
                timeout,
            )
            .await?;
            output(args.json, value, text);
            return Ok(());
        }
        _ => {}
    }
    let mut wallet = Wallet::open(&args.wallet)?;
    let pow = contract.mode == Mode::Pow;
    // An unfinished wire may have a claim or refund due: each is driven on for a moment
    // first (`wire` itself drives them fully).
    if !matches!(args.command, WalletCommand::Wire(_)) {
        crate::wallet_wire::resume_open(&wallet, timeout).await;
    }
    let (value, text) = match &args.command {
        WalletCommand::Init | WalletCommand::Restore { .. } => {
            bail!("handled before the wallet is opened")
        }
        WalletCommand::Key(KeyCommand::New { label }) => {
            wallet_seed::new_account(&mut wallet, &contract, label.clone(), passphrase)?
        }
        WalletCommand::Keys => keys(&wallet),
        WalletCommand::GenPow { account, threads } => {
            gen_pow(
                &mut wallet,
                &contract,
                account.as_deref(),
                *threads,
                args.json,
            )
            .await?
        }
        WalletCommand::Intro { .. } if pow => {
            bail!("a proof-of-work network has no faucet: coins come from mining blocks")
        }
        WalletCommand::Intro { account } => {
            intro(&wallet, contract, account.as_deref(), timeout).await?
        }
        WalletCommand::Balance { account } => {
            let account = wallet.resolve(account.as_deref())?;
            if pow {
                let miners = Miners::locate(&contract, timeout).await?;
                wallet_chain::balance(&chain::balance(&wallet, &miners, &account).await?)
            } else {
                quorum_balance(contract, &account, timeout).await?
            }
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
            if pow {
                let waiting = chain::Waiting {
                    confirmations: (*confirmations).max(1),
                    patience: Duration::from_secs(*wait),
                };
                let miners = Miners::locate(&contract, timeout).await?;
                chain_send(&wallet, &miners, &entry, to, amount, waiting, args.json).await?
            } else {
                quorum_send(&wallet, contract, &entry, to, amount, timeout).await?
            }
        }
        WalletCommand::SendMany { .. } if pow => {
            bail!("send-many pays on quorum networks; on a proof-of-work network use send")
        }
        WalletCommand::SendMany { file, from } => {
            crate::wallet_send_many::run(&wallet, contract, file, from, timeout).await?
        }
        WalletCommand::Ledger if pow => {
            let miners = Miners::locate(&contract, timeout).await?;
            wallet_chain::ledger(&wallet, &chain::ledger(&miners).await?)
        }
        WalletCommand::Ledger => quorum_ledger(contract, timeout).await?,
        WalletCommand::Peers if pow => {
            let miners = Miners::locate(&contract, timeout).await?;
            let probe = wallet.keys().first().map_or_else(
                || tally_core::SecretKey::generate().account(),
                |k| k.account,
            );
            wallet_chain::peers(&chain::probe_miners(&miners, &probe).await)
        }
        WalletCommand::Peers => quorum_peers(contract, timeout).await?,
        WalletCommand::Coins(coins) => {
            crate::wallet_coins::run(coins, &wallet, contract, timeout, passphrase).await?
        }
        WalletCommand::Live(command) => {
            crate::wallet_live::run(&wallet, contract, command, timeout, args.json, passphrase)
                .await?
        }
        WalletCommand::Escrow(command) if pow => {
            crate::wallet_escrow_chain::run(&wallet, contract, command, timeout, args.json).await?
        }
        WalletCommand::Escrow(command) => {
            crate::wallet_escrow::run(&wallet, contract, command, timeout).await?
        }

        WalletCommand::Wire(wire) => {
            crate::wallet_wire::run(&wallet, contract, wire, timeout, args.json).await?
        }
    };
    output(args.json, value, text);
    Ok(())
}

fn keys(wallet: &Wallet) -> (Value, String) {
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
    (
        json!({"accounts": list}),
        if text.is_empty() {
            "no accounts".into()
        } else {
            text
        },
    )
}

/// `gen-pow`: the search runs on every core with a progress line; Ctrl-C interrupts it
/// and the wallet resumes from there next time.
async fn gen_pow(
    wallet: &mut Wallet,
    contract: &NetworkContract,
    account: Option<&str>,
    threads: Option<usize>,
    quiet: bool,
) -> anyhow::Result<(Value, String)> {
    let account = wallet.find(account)?.account;
    let bits = contract.intro_pow_bits;
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let stop = Arc::new(AtomicBool::new(false));
    let interrupt = tokio::spawn({
        let stop = stop.clone();
        async move {
            crate::shutdown_signal().await;
            stop.store(true, Ordering::Relaxed);
        }
    });
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
    let expected = expected_attempts(bits);
    let mut show = |progress: SearchProgress| {
        let rate = progress.hashes as f64 / progress.elapsed.as_secs_f64().max(1e-3);
        let eta = (expected / rate.max(1.0)).max(0.0);
        bar.set_message(format!(
            "{} hashes, {:.2} MH/s on {threads} threads, {bits} bits: ~{eta:.0} s expected in all",
            progress.hashes,
            rate / 1e6
        ));
        bar.tick();
    };
    let proof = tokio::task::block_in_place(|| {
        find_key_proof(wallet, &account, bits, threads, &stop, &mut show)
    });
    interrupt.abort();
    bar.finish_and_clear();
    Ok(match proof? {
        KeyProof::Known(nonce) => (
            json!({"account": account, "proof_of_work": nonce, "bits": bits}),
            format!("proof of work already found: {nonce}"),
        ),
        KeyProof::Found(nonce) => (
            json!({"account": account, "proof_of_work": nonce, "bits": bits}),
            format!("proof of work found: {nonce} ({bits} bits)"),
        ),
        KeyProof::Interrupted { resume_from } => (
            json!({"account": account, "interrupted": true, "resume_from": resume_from}),
            format!("interrupted; run gen-pow again to resume from nonce {resume_from}"),
        ),
    })
}

/// `intro`: the key's certificate, with the faucet amount it brought.
async fn intro(
    wallet: &Wallet,
    contract: NetworkContract,
    account: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<(Value, String)> {
    let entry = wallet.find(account)?.clone();
    let Some(nonce) = entry.proof_of_work else {
        bail!(
            "account {} has no proof of work yet: run `tally wallet gen-pow` first",
            entry.account.short()
        );
    };
    let (validators, faucet) = (contract.validators.len(), contract.faucet);
    let client = QuorumClient::located(contract, timeout).await?;
    let receipt = ops::intro(wallet, &client, &entry.secret_key()?, nonce).await?;
    Ok((
        json!({"account": entry.account, "certificate": receipt.certificate.checksum, "acknowledged": receipt.acknowledged, "validators": validators, "faucet": faucet.microcash(), "receipt": receipt.path}),
        format!(
            "introduced {}: +{faucet} cash; certificate {} acknowledged by {}/{validators} validators",
            entry.account.short(),
            receipt.certificate.checksum,
            receipt.acknowledged,
        ),
    ))
}

/// `balance` on a quorum network: what most validators say, and each one's view.
async fn quorum_balance(
    contract: NetworkContract,
    account: &AccountId,
    timeout: Duration,
) -> anyhow::Result<(Value, String)> {
    let client = QuorumClient::located(contract, timeout).await?;
    let seen = views::balance(&client, account).await?;
    let per_validator: Vec<Value> = seen
        .views
        .iter()
        .map(|answer| match &answer.result {
            Ok(entry) => json!({"validator": answer.validator, "balance": entry.balance, "sequence": entry.next_sequence}),
            Err(error) => json!({"validator": answer.validator, "error": error.to_string()}),
        })
        .collect();
    let shown = SignedCash(seen.balance).to_string();
    let slot = match &seen.next_slot {
        NextSlot::Free | NextSlot::Voting { .. } => String::new(),
        NextSlot::Contested { orders } => format!(
            "\nits next slot is contested: votes for {} different orders ({}); one may still complete",
            orders.len(),
            votes_for(orders)
        ),
        NextSlot::Split { orders } => format!(
            "\nits next slot is FROZEN: votes are split between {} different orders ({}), so none can reach a quorum and the account cannot pay; two orders were signed for one slot (two copies of this key, or a mistake)",
            orders.len(),
            votes_for(orders)
        ),
    };
    Ok((
        json!({"account": account, "balance": seen.balance, "balance_cash": shown, "sequence": seen.next_sequence, "agree": seen.agree, "validators": seen.views.len(), "quorum": client.committee().quorum(), "next_slot": seen.next_slot, "views": per_validator}),
        format!(
            "{}: {shown} cash ({} of {} validators agree; next sequence {}){slot}",
            account.short(),
            seen.agree,
            seen.views.len(),
            seen.next_sequence
        ),
    ))
}

/// "order 1a2b… (2 votes), order 3c4d… (2 votes)".
fn votes_for(orders: &[(tally_core::OrderDigest, usize)]) -> String {
    orders
        .iter()
        .map(|(order, votes)| {
            format!(
                "order {} ({votes} votes)",
                order.to_string().chars().take(16).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `send` on a quorum network: the certificate, and an interrupted earlier order finished
/// first, if there was one.
async fn quorum_send(
    wallet: &Wallet,
    contract: NetworkContract,
    from: &KeyEntry,
    to: AccountId,
    amount: Amount,
    timeout: Duration,
) -> anyhow::Result<(Value, String)> {
    let validators = contract.validators.len();
    let client = QuorumClient::located(contract, timeout).await?;
    let receipt = ops::pay(wallet, &client, &from.secret_key()?, to, amount).await?;
    let mut text = String::new();
    if let Some(earlier) = &receipt.finished_pending {
        text.push_str(&format!(
            "finished an interrupted earlier order first: {}\n",
            earlier.checksum
        ));
    }
    text.push_str(&format!(
        "paid {amount} cash to {}; certificate {} acknowledged by {}/{validators} validators",
        to.short(),
        receipt.certificate.checksum,
        receipt.acknowledged,
    ));
    Ok((
        json!({"from": from.account, "to": to, "amount": amount.microcash(), "certificate": receipt.certificate.checksum, "acknowledged": receipt.acknowledged, "validators": validators, "receipt": receipt.path}),
        text,
    ))
}

/// `ledger` on a quorum network: every validator's view and how many agree.
async fn quorum_ledger(
    contract: NetworkContract,
    timeout: Duration,
) -> anyhow::Result<(Value, String)> {
    let client = QuorumClient::located(contract, timeout).await?;
    let seen = views::ledger(&client).await;
    let mut list = Vec::new();
    let mut text = Vec::new();
    for answer in &seen.views {
        match &answer.result {
            Ok(fingerprinted) => {
                let view = &fingerprinted.view;
                let fp = fingerprinted.fingerprint.to_hex()[..16].to_owned();
                list.push(json!({"validator": answer.validator, "certificates": view.certificates, "supply": view.supply.microcash(), "fingerprint": fp, "accounts": view.ledger.iter().map(|(a, e)| json!({"account": a, "balance": e.balance, "sequence": e.next_sequence, "introduced": e.introduced})).collect::<Vec<_>>()}));
                text.push(format!(
                    "validator {}: {} certificates, supply {} cash, {} accounts, view {fp}",
                    answer.validator.short(),
                    view.certificates,
                    view.supply,
                    view.ledger.len(),
                ));
            }
            Err(error) => {
                list.push(json!({"validator": answer.validator, "error": error.to_string()}));
                text.push(format!("validator {}: {error}", answer.validator.short()));
            }
        }
    }
    if let Some(view) = seen.first() {
        for (account, entry) in &view.ledger {
            text.push(format!(
                "  {}  {:>20}  seq {}",
                account,
                SignedCash(entry.balance).to_string(),
                entry.next_sequence
            ));
        }
    }
    text.push(format!(
        "{} of {} validators hold the same view",
        seen.agree,
        seen.views.len()
    ));
    Ok((
        json!({"validators": list, "agree": seen.agree}),
        text.join("\n"),
    ))
}

/// `peers` on a quorum network: each validator and whether it answers.
async fn quorum_peers(
    contract: NetworkContract,
    timeout: Duration,
) -> anyhow::Result<(Value, String)> {
    let client = QuorumClient::located(contract, timeout).await?;
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
    Ok((json!({"validators": list}), text))
}

/// The recipient and amount of `send`, checked.
pub(crate) fn payment(to: &str, amount: &str) -> anyhow::Result<(AccountId, Amount)> {
    let to = AccountId::parse_key(to).with_context(|| format!("recipient {to:?}"))?;
    let amount: Amount = amount
        .parse()
        .with_context(|| format!("amount {amount:?}"))?;
    if amount.is_zero() {
        bail!("amount must be more than zero");
    }
    Ok((to, amount))
}

/// `send` on a proof-of-work network, with a progress bar while confirmations come.
async fn chain_send(
    wallet: &Wallet,
    miners: &Miners,
    from: &KeyEntry,
    to: AccountId,
    amount: Amount,
    waiting: chain::Waiting,
    json_mode: bool,
) -> anyhow::Result<(Value, String)> {
    let mut progress = wallet_chain::SendProgress::new(json_mode);
    let sent = chain::send(
        wallet,
        miners,
        &from.secret_key()?,
        to,
        amount,
        waiting,
        &mut |event| progress.show(event),
    )
    .await;
    progress.finish();
    Ok(wallet_chain::sent(&sent?, from.account, to, amount))
}
