//! `tally wallet … coins …`: bearer coins (DESIGN §7). Parses, calls
//! `tally_wallet::coins`, prints the folders and what moved (text or `--json`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tally_core::{Amount, Coin, CoinFile, Mode, NetworkContract, encode_token};
use tally_wallet::chain::{Miners, Waiting};
use tally_wallet::coins::{
    self, ChainCoins, CoinFolder, CoinLedger, CoinStore, Detection, FindReport, ImportOutcome,
    ListedCoin, WalletKeys, cash_of,
};
use tally_wallet::{QuorumClient, Wallet};

/// `tally wallet coins`: with no subcommand, every coin by folder.
#[derive(Args)]
pub struct CoinsArgs {
    #[command(subcommand)]
    pub command: Option<CoinsCommand>,
    /// Proof-of-work networks: blocks a coin's spend must be buried under before it
    /// counts.
    #[arg(long, default_value_t = 1, global = true)]
    pub confirmations: u64,
    /// Proof-of-work networks: seconds to wait for those confirmations (an operation that
    /// runs out stays journaled; `coins find` finishes it).
    #[arg(long, default_value_t = 600, global = true)]
    pub wait: u64,
}

/// The coin commands.
#[derive(Subcommand)]
pub enum CoinsCommand {
    /// An account pays fresh coin keys AMOUNT (whole cash) in the fewest coins, one order.
    Withdraw {
        amount: String,
        /// The paying account (hex prefix or label); the first account by default.
        #[arg(long)]
        from: Option<String>,
    },
    /// Coins pay their value back into an account.
    Deposit {
        /// Coins (account hex prefixes); `--all` for every coin in the Bank and Fracked.
        coins: Vec<String>,
        #[arg(long, conflicts_with = "coins")]
        all: bool,
        /// The receiving account (hex prefix or label); the first account by default.
        #[arg(long)]
        to: Option<String>,
    },
    /// Ask every validator about coins (all held coins by default) and grade them.
    /// Changes nothing.
    Detect { coins: Vec<String> },
    /// Move coins to fresh keys of this wallet (every coin in Import by default).
    Pown { coins: Vec<String> },
    /// Hand fracked coins' certificates to the validators that lack them (all coins in
    /// the Bank and Fracked by default).
    Fix { coins: Vec<String> },
    /// Settle what an interrupted operation left in Limbo, and learn which exported coins
    /// were taken.
    Find,
    /// Break a coin into smaller denominations (one order).
    Change { coin: String },
    /// Merge coins whose total is a denomination into one coin.
    Join {
        #[arg(required = true, num_args = 2..)]
        coins: Vec<String>,
    },
    /// Take coins worth exactly AMOUNT (whole cash) out of the wallet as a coin file or a
    /// token; they are no longer this wallet's to spend.
    Export {
        amount: String,
        /// Write the coin file here (the default prints a token).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print a token string (also with --out).
        #[arg(long)]
        token: bool,
    },
    /// Take back exported coins (all in Export by default) by powning them: a race with
    /// whoever holds the file or token.
    Reclaim { coins: Vec<String> },
    /// Take in a coin file or a token: detected, then powned to fresh keys of this wallet.
    Import {
        /// A coin file's path, or a token (`tallycoin1…`).
        source: String,
    },
}

fn coin_json(coin: &ListedCoin) -> Value {
    json!({"coin": coin.account, "denomination": coin.denomination.cash(), "folder": coin.folder})
}

/// A whole, non-zero cash amount, as coins can hold.
fn whole_cash(text: &str) -> anyhow::Result<Amount> {
    let amount: Amount = text.parse().with_context(|| format!("amount {text:?}"))?;
    tally_core::fewest_coins(amount).with_context(|| format!("amount {text}"))?;
    Ok(amount)
}

/// The coins `queries` name, or `default` when there are none.
fn pick(
    store: &CoinStore,
    queries: &[String],
    default: &[CoinFolder],
) -> anyhow::Result<Vec<ListedCoin>> {
    if queries.is_empty() {
        let mut all = Vec::new();
        for folder in default {
            all.extend(store.list(*folder)?);
        }
        return Ok(all);
    }
    queries
        .iter()
        .map(|q| store.find(q).map_err(anyhow::Error::from))
        .collect()
}

/// Runs one coin command; returns what to print.
pub async fn run(
    args: &CoinsArgs,
    wallet: &Wallet,
    contract: NetworkContract,
    timeout: std::time::Duration,
    passphrase: Option<&str>,
) -> anyhow::Result<(Value, String)> {
    let store = CoinStore::open(wallet.dir(), contract.id())?;
    let Some(command) = &args.command else {
        return list(&store);
    };
    let network = contract.id();
    let keys = WalletKeys::new(wallet, network, passphrase);
    if contract.mode == Mode::Pow {
        let net = ChainCoins {
            miners: Miners::locate(&contract, timeout).await?,
            waiting: Waiting {
                confirmations: args.confirmations.max(1),
                patience: std::time::Duration::from_secs(args.wait),
            },
        };
        return run_on(command, wallet, &net, &store, keys).await;
    }
    let client = QuorumClient::located(contract, timeout).await?;
    run_on(command, wallet, &client, &store, keys).await
}

/// Runs one coin command on the network `net`.
async fn run_on<L: CoinLedger>(
    command: &CoinsCommand,
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    mut keys: WalletKeys<'_>,
) -> anyhow::Result<(Value, String)> {
    // One process at a time moves this wallet's coins (detect only reads).
    let _held = match command {
        CoinsCommand::Detect { .. } => None,
        _ => Some(wallet.lock_coins(net.network()).await?),
    };
    match command {
        CoinsCommand::Withdraw { amount, from } => {
            let amount = whole_cash(amount)?;
            let key = wallet.find(from.as_deref())?.secret_key()?;
            let banked = coins::withdraw(wallet, net, store, &mut keys, &key, amount).await?;
            moved("withdrew", &banked)
        }
        CoinsCommand::Deposit { coins, all, to } => {
            if coins.is_empty() && !*all {
                bail!("name the coins to deposit, or --all");
            }
            let to = wallet.resolve(to.as_deref())?;
            let picked = pick(store, coins, &[CoinFolder::Bank, CoinFolder::Fracked])?;
            for coin in &picked {
                coins::deposit(wallet, net, store, coin, to).await?;
            }
            Ok((
                json!({"deposited": picked.iter().map(coin_json).collect::<Vec<_>>(), "to": to, "cash": cash_of(&picked)}),
                format!(
                    "deposited {} coins, {} cash, into {to}",
                    picked.len(),
                    cash_of(&picked)
                ),
            ))
        }
        CoinsCommand::Detect { coins } => {
            let picked = pick(store, coins, &HELD)?;
            let own = coins::own_orders(wallet, store, &picked)?;
            let pairs: Vec<_> = picked.iter().map(|c| (c.account, c.denomination)).collect();
            Ok(detections(&net.detect(&pairs, &own).await))
        }
        CoinsCommand::Pown { coins } => {
            let picked = pick(store, coins, &[CoinFolder::Import])?;
            let mut powned = Vec::new();
            for result in coins::pown_many(wallet, net, store, &mut keys, &picked).await? {
                powned.push(result?.0);
            }
            moved("powned", &powned)
        }
        CoinsCommand::Fix { coins } => {
            let picked = pick(store, coins, &[CoinFolder::Bank, CoinFolder::Fracked])?;
            Ok(detections(&coins::fix(wallet, net, store, &picked).await?))
        }
        CoinsCommand::Find => Ok(found(&coins::find(wallet, net, store, &mut keys).await?)),
        CoinsCommand::Change { coin } => {
            let coin = store.find(coin)?;
            let made = coins::change(wallet, net, store, &mut keys, &coin).await?;
            moved("changed into", &made)
        }
        CoinsCommand::Reclaim { coins } => {
            let picked = pick(store, coins, &[CoinFolder::Export])?;
            let mut back = Vec::new();
            for coin in &picked {
                back.push(coins::reclaim(wallet, net, store, &mut keys, coin).await?.0);
            }
            let (value, text) = moved("reclaimed", &back)?;
            Ok((
                value,
                format!("{text}\n(whoever held a copy of these coins can no longer spend them)"),
            ))
        }
        CoinsCommand::Join { coins } => {
            let parts = pick(store, coins, &[])?;
            let joined = coins::join(wallet, net, store, &mut keys, &parts).await?;
            moved("joined into", &[joined])
        }
        CoinsCommand::Export { amount, out, token } => {
            let amount = whole_cash(amount)?;
            let exported = coins::export(wallet, net, store, &mut keys, amount).await?;
            export_output(&exported, out.as_ref(), *token)
        }
        CoinsCommand::Import { source } => {
            let arrived = read_coins(source)?;
            let outcomes = coins::import(wallet, net, store, &mut keys, arrived).await?;
            imported(&outcomes)
        }
    }
}

/// The folders whose coins the wallet holds (not yet given out or spent).
const HELD: [CoinFolder; 5] = [
    CoinFolder::Bank,
    CoinFolder::Fracked,
    CoinFolder::Limbo,
    CoinFolder::Import,
    CoinFolder::Export,
];

fn list(store: &CoinStore) -> anyhow::Result<(Value, String)> {
    let mut lines = Vec::new();
    let mut all = Vec::new();
    let mut folders = serde_json::Map::new();
    for folder in CoinFolder::ALL {
        let coins = store.list(folder)?;
        folders.insert(
            folder.name().into(),
            json!({"coins": coins.len(), "cash": cash_of(&coins)}),
        );
        if folder != CoinFolder::Spent || !coins.is_empty() {
            let mut counts: Vec<String> = Vec::new();
            for denomination in tally_core::Denomination::ALL {
                let n = coins
                    .iter()
                    .filter(|c| c.denomination == denomination)
                    .count();
                if n > 0 {
                    counts.push(format!("{n}×{}", denomination.cash()));
                }
            }
            lines.push(format!(
                "{:<12} {:>8} cash  {}",
                folder.name(),
                cash_of(&coins),
                counts.join(" ")
            ));
        }
        all.extend(coins);
    }
    let bank: u64 = cash_of(
        &all.iter()
            .filter(|c| c.folder.spendable())
            .copied()
            .collect::<Vec<_>>(),
    );
    lines.push(format!("spendable {bank} cash"));
    Ok((
        json!({
            "coins": all.iter().map(coin_json).collect::<Vec<_>>(),
            "folders": folders,
            "spendable": bank,
        }),
        lines.join("\n"),
    ))
}

fn moved(verb: &str, coins: &[ListedCoin]) -> anyhow::Result<(Value, String)> {
    let counts: Vec<String> = coins
        .iter()
        .map(|c| c.denomination.cash().to_string())
        .collect();
    Ok((
        json!({"coins": coins.iter().map(coin_json).collect::<Vec<_>>(), "cash": cash_of(coins)}),
        format!(
            "{verb} {} cash in {} coins ({}), now in the Bank",
            cash_of(coins),
            coins.len(),
            counts.join(" + ")
        ),
    ))
}

fn detections(found: &[Detection]) -> (Value, String) {
    let text = found
        .iter()
        .map(|d| {
            format!(
                "{}  {:>4} cash  {:?}  (good {}, lagging {}, spent {}, foreign votes {}, no answer {})",
                d.account.short(),
                d.denomination.cash(),
                d.grade,
                d.good,
                d.lagging.len(),
                d.spent,
                d.contested,
                d.unanswered
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    (
        json!({"detections": found}),
        if text.is_empty() {
            "no coins".into()
        } else {
            text
        },
    )
}

fn found(report: &FindReport) -> (Value, String) {
    let mut text = vec![format!(
        "finished {} interrupted orders; banked {} coins, {} spent or never funded, {} exported coins taken, {} still in Limbo",
        report.finished,
        report.banked.len(),
        report.spent.len(),
        report.sent.len(),
        report.limbo.len()
    )];
    for (account, why) in &report.unfinished {
        text.push(format!(
            "not finished yet: the order of {} ({why}); run `coins find` again",
            account.short()
        ));
    }
    (json!(report), text.join("\n"))
}

fn export_output(
    exported: &[Coin],
    out: Option<&PathBuf>,
    token: bool,
) -> anyhow::Result<(Value, String)> {
    let cash: u64 = exported.iter().map(|c| c.denomination.cash()).sum();
    let mut value = json!({"cash": cash, "coins": exported.len()});
    let mut text = Vec::new();
    if let Some(path) = out {
        let file = CoinFile::new(exported.to_vec())?;
        tally_wallet::wallet::write_atomic(path, file.to_json().as_bytes())?;
        value["file"] = json!(path);
        text.push(format!(
            "wrote {} coins, {cash} cash, to {}",
            exported.len(),
            path.display()
        ));
    }
    if out.is_none() || token {
        let token = encode_token(exported)?;
        value["token"] = json!(token);
        text.push(token);
    }
    text.push("these coins are in Export: whoever holds the file or token can take them".into());
    Ok((value, text.join("\n")))
}

/// The coins in a coin file, or in a token.
fn read_coins(source: &str) -> anyhow::Result<Vec<Coin>> {
    let trimmed = source.trim();
    if trimmed.starts_with(tally_core::coin::TOKEN_PREFIX) {
        return coins::offered_coins(trimmed).context("the token");
    }
    let text = std::fs::read_to_string(trimmed).with_context(|| {
        format!("{trimmed:?} is neither a token (tallycoin1…) nor a readable coin file")
    })?;
    coins::offered_coins(&text).with_context(|| format!("coin file {trimmed}"))
}

fn imported(outcomes: &[ImportOutcome]) -> anyhow::Result<(Value, String)> {
    let mut lines = Vec::new();
    let mut banked = 0;
    for outcome in outcomes {
        banked += outcome.banked_cash();
        lines.push(outcome.to_string());
    }
    lines.push(format!("{banked} cash added to the Bank"));
    let value = json!({"outcomes": outcomes, "banked": banked});
    if banked == 0 && !outcomes.is_empty() {
        if outcomes
            .iter()
            .all(|o| matches!(o, ImportOutcome::AlreadyHeld { .. }))
        {
            bail!(
                "{}\nnothing new: every coin was imported before",
                lines.join("\n")
            );
        }
        if outcomes
            .iter()
            .any(|o| matches!(o, ImportOutcome::Refused { .. }))
        {
            bail!("{}\nno coin was accepted", lines.join("\n"));
        }
    }
    Ok((value, lines.join("\n")))
}
