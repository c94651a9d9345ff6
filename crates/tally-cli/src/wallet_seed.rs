//! `tally wallet init`, `restore` and `key new`: wallets whose keys derive from one seed
//! (`tally-wallet`'s [`tally_wallet::seeded`] and [`tally_wallet::restore`] do the work).
//! The passphrase, when there is one, comes from an environment variable named by
//! `--passphrase-env`, so scripts and tests never put it on a command line.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tally_core::{Mode, NetworkContract, SignedCash};
use tally_wallet::coins::{self, CoinStore, ListedCoin};
use tally_wallet::seed::SeedError;
use tally_wallet::{Miners, QuorumClient, Restored, SeededError, Wallet};

/// What `init` says with the words: they are the only backup, and they are the money.
const WARNING: &str = "These words are shown only this once. Write them down, in order, and \
keep them offline: whoever has them can spend everything this wallet holds, and without them \
a lost wallet cannot be restored.";

/// The passphrase in environment variable `var`, if `--passphrase-env` named one.
pub fn passphrase(var: Option<&str>) -> anyhow::Result<Option<String>> {
    match var {
        None => Ok(None),
        Some(var) => std::env::var(var).map(Some).with_context(|| {
            format!("--passphrase-env {var}: the environment variable is not set")
        }),
    }
}

/// A library error, with what to do about a missing passphrase.
fn explain(error: SeededError) -> anyhow::Error {
    match error {
        SeededError::Seed(SeedError::PassphraseRequired(_)) => anyhow::anyhow!(
            "{error} (name the environment variable that holds it with --passphrase-env VAR)"
        ),
        other => other.into(),
    }
}

/// `init`: a new seeded wallet; the words, printed once, and the first account.
pub fn init(
    dir: &Path,
    contract: &NetworkContract,
    passphrase: Option<&str>,
) -> anyhow::Result<(Value, String)> {
    let (wallet, words) = Wallet::init(dir, &contract.id(), passphrase).map_err(explain)?;
    let first = wallet.find(None)?.account;
    let list = words.words();
    let columns: Vec<String> = list
        .chunks(4)
        .enumerate()
        .map(|(row, chunk)| {
            chunk
                .iter()
                .enumerate()
                .map(|(i, word)| format!("{:>3}. {word:<9}", row * 4 + i + 1))
                .collect::<Vec<_>>()
                .join(" ")
                .trim_end()
                .to_owned()
        })
        .collect();
    let stored = if passphrase.is_some() {
        "sealed with the passphrase"
    } else {
        "in clear (no passphrase)"
    };
    let text = format!(
        "new seeded wallet in {}; its seed is stored {stored}\nfirst account: {first} \
         (account 0)\n\n{WARNING}\n\n{}",
        dir.display(),
        columns.join("\n")
    );
    Ok((
        json!({"words": list.join(" "), "account": first, "encrypted": passphrase.is_some(), "warning": WARNING}),
        text,
    ))
}

/// The words to restore from: `--words`, else everything on stdin.
fn read_words(words: Option<&str>) -> anyhow::Result<String> {
    if let Some(words) = words {
        return Ok(words.to_owned());
    }
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("type the recovery words, then Enter and Ctrl-D:");
    }
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .context("reading the recovery words from stdin")?;
    Ok(text)
}

/// `restore`: asks the validators (or miners) which of the seed's keys are in use and
/// puts the wallet back in `dir`; prints what it found.
pub async fn restore(
    dir: &Path,
    contract: NetworkContract,
    words: Option<&str>,
    passphrase: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<(Value, String)> {
    let words = read_words(words)?;
    if words.trim().is_empty() {
        bail!("no recovery words: give them with --words or on stdin");
    }
    if contract.mode == Mode::Pow {
        let miners = Miners::locate(&contract, timeout).await?;
        let (_, restored) = Wallet::restore_pow(dir, &words, passphrase, &miners)
            .await
            .map_err(explain)?;
        return Ok(restored_output(dir, &restored, &[]));
    }
    let network = contract.id();
    let client = QuorumClient::located(contract, timeout).await?;
    let (wallet, restored) = Wallet::restore(dir, &words, passphrase, &client)
        .await
        .map_err(explain)?;
    // The coin keys holding a denomination are coins again: into the Bank.
    let store = CoinStore::open(wallet.dir(), network)?;
    let banked = coins::bank_restored(&store, &restored.coins)?;
    Ok(restored_output(dir, &restored, &banked))
}

/// What `restore` found.
fn restored_output(dir: &Path, restored: &Restored, banked: &[ListedCoin]) -> (Value, String) {
    let mut text = vec![format!(
        "restored the wallet in {}: {} accounts, {} coin keys in use",
        dir.display(),
        restored.accounts.len(),
        restored.coins.len()
    )];
    let mut accounts = Vec::new();
    for found in &restored.accounts {
        let cash = SignedCash(found.balance).to_string();
        text.push(format!(
            "account {:<3} {}  {cash} cash",
            found.index, found.account
        ));
        accounts.push(json!({"index": found.index, "account": found.account, "balance": found.balance, "balance_cash": cash}));
    }
    let mut coins = Vec::new();
    for coin in &restored.coins {
        let account = coin.key.account();
        text.push(format!(
            "coin key {:<3} {account}  {} cash",
            coin.index, coin.balance
        ));
        coins.push(json!({"index": coin.index, "account": account, "balance": coin.balance.microcash(), "balance_cash": coin.balance.to_string()}));
    }
    let banked_cash: u64 = banked.iter().map(|c| c.denomination.cash()).sum();
    text.push(format!(
        "{} coins, {banked_cash} cash, back in the Bank",
        banked.len()
    ));
    text.push(format!(
        "new keys continue at account {} and coin {}",
        restored.next_account, restored.next_coin
    ));
    (
        json!({"accounts": accounts, "coins": coins, "banked": banked_cash, "next_account": restored.next_account, "next_coin": restored.next_coin}),
        text.join("\n"),
    )
}

/// `key new`: an account derived from the seed in a seeded wallet, a random one otherwise.
pub fn new_account(
    wallet: &mut Wallet,
    contract: &NetworkContract,
    label: Option<String>,
    passphrase: Option<&str>,
) -> anyhow::Result<(Value, String)> {
    let seeded = wallet.is_seeded();
    let entry = wallet
        .new_account(&contract.id(), label, passphrase)
        .map_err(explain)?;
    let from = if seeded { " (from the seed)" } else { "" };
    Ok((
        json!({"account": entry.account, "label": entry.label, "seeded": seeded}),
        format!("new account {}{from}", entry.account),
    ))
}
