//! Restoring a seeded wallet from its words (DESIGN §7): derive account keys at index 0, 1,
//! 2, … and ask the network which of them it knows, until [`GAP_LIMIT`] indices in a row
//! past the last one found are unknown; the same for coin keys. Quorum networks are asked
//! through `REQ_LEDGER` with many accounts a request, proof-of-work networks through one
//! `REQ_ACCOUNT` per key.
//!
//! Everything is asked before anything is written: a wrong word, an unreachable network
//! or too few answers leave the folder as it was. Then `seed.json`, the counters (one past
//! the highest index found, so no later key reuses one) and `keys.json` (every account
//! found) are written. Restoring again into the same folder with the same words is
//! allowed, and finishes a restore that was interrupted.

use std::collections::BTreeMap;
use std::path::Path;

use tally_core::{AccountId, Amount, NetworkId, SecretKey};
use tally_proto::{LedgerEntry, LedgerRequest};

use crate::chain::Miners;
use crate::client::QuorumClient;
use crate::seed::{KeyPurpose, Mnemonic, SeedError, SeedFile, SeedKeys, derive_key};
use crate::seeded::{SeededError, account_label, holds_keys};
use crate::wallet::Wallet;

/// How many unused indices in a row end the search (BIP-44's gap limit): a wallet that
/// handed out more keys than this without any of them being used may lose track of
/// the later ones on restore.
pub const GAP_LIMIT: u64 = 20;

/// Accounts asked about in one `REQ_LEDGER` (within [`LedgerRequest::MAX_ACCOUNTS`]).
const QUORUM_BATCH: u64 = 100;

/// An account a restore put back in `keys.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoredAccount {
    /// Its index among the seed's account keys.
    pub index: u64,
    /// The account.
    pub account: AccountId,
    /// Its balance in microcash, as most answering validators report it (below zero only
    /// on validators missing credits); the confirmed balance on a proof-of-work network.
    pub balance: i128,
}

/// A coin key a restore found in use. Its key is handed to the caller, which keeps the
/// coin; nothing about coins is written to the wallet folder here.
#[derive(Clone, Debug)]
pub struct RestoredCoin {
    /// Its index among the seed's coin keys.
    pub index: u64,
    /// The coin's secret key: whoever holds it can spend the coin.
    pub key: SecretKey,
    /// What the coin's account holds (a spent coin holds nothing).
    pub balance: Amount,
}

/// What a restore found and wrote.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The accounts now in `keys.json`, by index: every one the network knows, and
    /// account 0 (as `init` made it) when the network knows none.
    pub accounts: Vec<RestoredAccount>,
    /// The coin keys the network knows, by index.
    pub coins: Vec<RestoredCoin>,
    /// The next account index the wallet will derive.
    pub next_account: u64,
    /// The next coin index the wallet will derive.
    pub next_coin: u64,
}

/// Who is asked whether a key is in use.
enum Source<'a> {
    Quorum(&'a QuorumClient),
    Pow(&'a Miners),
}

/// A key the network knows, and its balance.
struct Used {
    index: u64,
    key: SecretKey,
    balance: i128,
}

impl Wallet {
    /// Restores the wallet of `words` into `dir` from a quorum network: every account and
    /// coin key of the seed that any validator knows (a balance, a sent order, or an
    /// introduction). At least a quorum of validators must answer, so that a key in use is
    /// not missed. The seed is sealed under `passphrase` if one is given. `dir` must hold
    /// no wallet, or the same seed (which resumes an interrupted restore).
    pub async fn restore(
        dir: &Path,
        words: &str,
        passphrase: Option<&str>,
        client: &QuorumClient,
    ) -> Result<(Wallet, Restored), SeededError> {
        restore_from(
            dir,
            words,
            passphrase,
            client.network(),
            &Source::Quorum(client),
        )
        .await
    }

    /// As [`Wallet::restore`], asking the miners of a proof-of-work network (the first that
    /// answers, per key): a key is in use if it holds anything, has sent, or has a payment
    /// pending to or from it at the miner's tip.
    pub async fn restore_pow(
        dir: &Path,
        words: &str,
        passphrase: Option<&str>,
        miners: &Miners,
    ) -> Result<(Wallet, Restored), SeededError> {
        restore_from(
            dir,
            words,
            passphrase,
            miners.network(),
            &Source::Pow(miners),
        )
        .await
    }
}

async fn restore_from(
    dir: &Path,
    words: &str,
    passphrase: Option<&str>,
    network: &NetworkId,
    source: &Source<'_>,
) -> Result<(Wallet, Restored), SeededError> {
    let mnemonic = Mnemonic::parse(words)?;
    if passphrase == Some("") {
        return Err(SeedError::EmptyPassphrase.into());
    }
    let resuming = check_target(dir, &mnemonic, passphrase)?;
    let seed = mnemonic.to_seed("");
    let accounts = scan(&seed, network, KeyPurpose::Account, source).await?;
    let coins = scan(&seed, network, KeyPurpose::Coin, source).await?;

    let file = if resuming {
        SeedFile::open(dir, passphrase)?
    } else {
        SeedFile::create(dir, &mnemonic, passphrase)?
    };
    let mut keys = SeedKeys::from_file(dir, file)?;
    let next_account = accounts.last().map_or(1, |used| used.index + 1);
    let next_coin = coins.last().map_or(0, |used| used.index + 1);
    keys.set_at_least(network, KeyPurpose::Account, next_account)?;
    keys.set_at_least(network, KeyPurpose::Coin, next_coin)?;

    let mut wallet = Wallet::open(dir)?;
    let mut restored_accounts = Vec::with_capacity(accounts.len().max(1));
    if accounts.is_empty() {
        let key = keys.key_at(network, KeyPurpose::Account, 0);
        restored_accounts.push(RestoredAccount {
            index: 0,
            account: key.account(),
            balance: 0,
        });
        wallet.add_key(Some(key), Some(account_label(0)))?;
    }
    for used in accounts {
        restored_accounts.push(RestoredAccount {
            index: used.index,
            account: used.key.account(),
            balance: used.balance,
        });
        wallet.add_key(Some(used.key), Some(account_label(used.index)))?;
    }
    let coins = coins
        .into_iter()
        .map(|used| RestoredCoin {
            index: used.index,
            key: used.key,
            balance: Amount::from_microcash(u64::try_from(used.balance.max(0)).unwrap_or(u64::MAX)),
        })
        .collect();
    let next = keys.counters();
    Ok((
        wallet,
        Restored {
            accounts: restored_accounts,
            coins,
            next_account: next.next(network, KeyPurpose::Account),
            next_coin: next.next(network, KeyPurpose::Coin),
        },
    ))
}

/// Whether `dir` may receive the seed of `mnemonic`: it holds no wallet (false), or a seed
/// with the same words (true: an interrupted restore is finished). Reads only.
fn check_target(
    dir: &Path,
    mnemonic: &Mnemonic,
    passphrase: Option<&str>,
) -> Result<bool, SeededError> {
    if SeedFile::exists(dir) {
        let existing = SeedFile::open(dir, passphrase)?;
        if existing.mnemonic() == mnemonic {
            return Ok(true);
        }
        return Err(SeededError::NotEmpty(dir.to_path_buf()));
    }
    if crate::seed::KeyCounters::path(dir).exists() || holds_keys(dir)? {
        return Err(SeededError::NotEmpty(dir.to_path_buf()));
    }
    Ok(false)
}

/// Every key of `purpose` the network knows, by index, asked in batches: the search ends
/// at the first index that follows [`GAP_LIMIT`] unknown ones in a row (counting from
/// index 0, or from the last known one), whatever the batch size.
async fn scan(
    seed: &[u8; 64],
    network: &NetworkId,
    purpose: KeyPurpose,
    source: &Source<'_>,
) -> Result<Vec<Used>, SeededError> {
    let batch = match source {
        Source::Quorum(_) => QUORUM_BATCH,
        Source::Pow(_) => GAP_LIMIT,
    };
    let mut found: Vec<Used> = Vec::new();
    // Indices below this are asked about.
    let mut end = GAP_LIMIT;
    let mut start = 0u64;
    while start < end {
        let stop = start.saturating_add(batch);
        let keys: Vec<SecretKey> = (start..stop)
            .map(|index| derive_key(seed, network, purpose, index))
            .collect();
        let accounts: Vec<AccountId> = keys.iter().map(SecretKey::account).collect();
        let seen = source.look(&accounts).await?;
        for ((index, key), balance) in (start..stop).zip(keys).zip(seen) {
            if index >= end {
                return Ok(found);
            }
            if let Some(balance) = balance {
                end = index.saturating_add(1).saturating_add(GAP_LIMIT);
                found.push(Used {
                    index,
                    key,
                    balance,
                });
            }
        }
        start = stop;
    }
    Ok(found)
}

impl Source<'_> {
    /// For each of `accounts`, in order: its balance if the network knows it, else `None`.
    async fn look(&self, accounts: &[AccountId]) -> Result<Vec<Option<i128>>, SeededError> {
        match self {
            Source::Quorum(client) => look_quorum(client, accounts).await,
            Source::Pow(miners) => {
                let mut out = Vec::with_capacity(accounts.len());
                for account in accounts {
                    let (state, _) = miners.account(account).await?;
                    let used = !state.balance.is_zero()
                        || state.sequence > 0
                        || state.next_sequence > 0
                        || !state.pending_in.is_zero()
                        || !state.pending_out.is_zero();
                    out.push(used.then(|| i128::from(state.balance.microcash())));
                }
                Ok(out)
            }
        }
    }
}

/// One `REQ_LEDGER` for `accounts` to every validator. An account is known if any answering
/// validator reports it in use; its balance is the one most of them report (the higher on
/// a tie). Fewer answers than a quorum is an error: the missing validators might be the
/// only ones that applied a key's orders.
async fn look_quorum(
    client: &QuorumClient,
    accounts: &[AccountId],
) -> Result<Vec<Option<i128>>, SeededError> {
    let request = LedgerRequest {
        accounts: Some(accounts.to_vec()),
        ..LedgerRequest::default()
    };
    let mut views = Vec::new();
    let mut reasons = Vec::new();
    for answer in client.ledger_all(&request).await {
        match answer.result {
            Ok(view) => views.push(view),
            Err(error) => reasons.push(format!("{}: {error}", answer.address)),
        }
    }
    let validators = client.contract().validators.len();
    let needed = client.committee().quorum();
    if views.len() < needed {
        return Err(SeededError::TooFewAnswers {
            answered: views.len(),
            validators,
            needed,
            reasons: reasons.join("; "),
        });
    }
    Ok(accounts
        .iter()
        .map(|account| {
            let entries: Vec<LedgerEntry> = views
                .iter()
                .map(|view| view.ledger.get(account).copied().unwrap_or_default())
                .collect();
            let used = entries.iter().any(|e| {
                e.balance != 0 || e.next_sequence > 0 || e.introduced || e.locked.is_some()
            });
            used.then(|| most_common_balance(&entries))
        })
        .collect())
}

/// The balance most entries report, the higher one on a tie.
fn most_common_balance(entries: &[LedgerEntry]) -> i128 {
    let mut counts: BTreeMap<i128, usize> = BTreeMap::new();
    for entry in entries {
        *counts.entry(entry.balance).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(_, count)| *count)
        .map_or(0, |(balance, _)| balance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(balance: i128) -> LedgerEntry {
        LedgerEntry {
            balance,
            next_sequence: 1,
            introduced: true,
            locked: None,
        }
    }

    /// A lagging validator's balance does not outvote the others; ties go to the higher.
    #[test]
    fn the_balance_most_validators_report_wins() {
        assert_eq!(
            most_common_balance(&[entry(5), entry(7), entry(7), entry(-2)]),
            7
        );
        assert_eq!(most_common_balance(&[entry(5), entry(9)]), 9);
        assert_eq!(most_common_balance(&[]), 0);
    }
}
