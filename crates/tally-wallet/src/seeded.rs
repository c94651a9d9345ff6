//! Seeded wallets (DESIGN §7, "Keys from a seed"): a wallet folder that also holds
//! `seed.json` and `counters.json` (see [`crate::seed`]) makes every key it hands out, for
//! accounts and coins alike, from one seed shown once as BIP-39 words, so that
//! [`Wallet::restore`] finds everything again from the words alone.
//!
//! What is where:
//! - `seed.json`: the seed, in clear or sealed with a passphrase. The passphrase protects
//!   the seed, and so every key the wallet will ever derive.
//! - `counters.json`: the next unused index per network and purpose, advanced on disk
//!   before a key is handed out, so no index serves two uses whatever crashes.
//! - `keys.json`: as in every wallet, each account's secret key, derived ones included. It
//!   is not encrypted, so everyday commands (balance, send) need no passphrase; only making
//!   a new key does. Whoever reads `keys.json` can spend the accounts it lists, passphrase
//!   or not.
//!
//! A folder without `seed.json` is a key-file wallet, as before: its keys are random and
//! live only in `keys.json`, and everything here treats it as it always was.

use std::path::{Path, PathBuf};

use tally_core::{NetworkId, SecretKey};

use crate::chain::ChainWalletError;
use crate::seed::{KeyCounters, KeyPurpose, Mnemonic, SeedError, SeedFile, SeedKeys};
use crate::wallet::{KeyEntry, Wallet, WalletError};

/// Why making or restoring a seeded wallet, or deriving one of its keys, failed.
#[derive(Debug, thiserror::Error)]
pub enum SeededError {
    /// The seed, its file or its counters (a wrong word, a wrong passphrase, …).
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// The wallet folder itself.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// A seed is only given to an empty wallet: keys already there would not come back
    /// from the words, and a second seed would replace the only record of the first.
    #[error(
        "{0} already holds a wallet (a seed or keys); a new or restored seed needs an empty \
         wallet folder"
    )]
    NotEmpty(PathBuf),
    /// A key-file wallet has no seed, so a passphrase would protect nothing.
    #[error("this wallet has no seed (its keys are random, in keys.json): it takes no passphrase")]
    NoSeed,
    /// Too few validators answered to be sure no used key is missed; nothing was written.
    #[error(
        "only {answered} of {validators} validators answered, {needed} are needed so that no \
         used key is missed; nothing was written: {reasons}"
    )]
    TooFewAnswers {
        answered: usize,
        validators: usize,
        needed: usize,
        reasons: String,
    },
    /// The miners of a proof-of-work network could not be asked; nothing was written.
    #[error(transparent)]
    Chain(#[from] ChainWalletError),
}

/// The label a derived account gets in `keys.json` when none is given: its index, which is
/// also how a restored wallet names it.
pub fn account_label(index: u64) -> String {
    format!("account {index}")
}

impl Wallet {
    /// Makes a seeded wallet in `dir` for `network`: fresh words, `seed.json` (sealed under
    /// `passphrase` if one is given), and account index 0 as the wallet's first account
    /// (labelled "account 0"; its counter advanced on disk before the key is used).
    /// Returns the wallet and the words, which the caller shows once: they are the only
    /// backup. Refuses a folder that already has a seed or keys, so it can never replace
    /// a seed or strand keys that would not come back from the words.
    pub fn init(
        dir: &Path,
        network: &NetworkId,
        passphrase: Option<&str>,
    ) -> Result<(Wallet, Mnemonic), SeededError> {
        if passphrase == Some("") {
            return Err(SeedError::EmptyPassphrase.into());
        }
        if holds_wallet(dir)? {
            return Err(SeededError::NotEmpty(dir.to_path_buf()));
        }
        let mnemonic = Mnemonic::generate()?;
        let file = SeedFile::create(dir, &mnemonic, passphrase)?;
        let mut keys = SeedKeys::from_file(dir, file)?;
        let (index, key) = keys.next_key(network, KeyPurpose::Account)?;
        let mut wallet = Wallet::open(dir)?;
        wallet.add_key(Some(key), Some(account_label(index)))?;
        Ok((wallet, mnemonic))
    }

    /// Whether this wallet derives its keys from a seed (`seed.json` is in its folder).
    pub fn is_seeded(&self) -> bool {
        SeedFile::exists(self.dir())
    }

    /// The next key for `purpose` on `network`. A seeded wallet derives it from its seed
    /// (opened with `passphrase` if sealed), the counter advanced on disk before the key is
    /// returned; a key-file wallet makes a random one (and refuses a passphrase, which
    /// would protect nothing). The key is not added to `keys.json`: a coin key travels
    /// with its coin; [`Wallet::new_account`] keeps an account's.
    pub fn next_key(
        &self,
        network: &NetworkId,
        purpose: KeyPurpose,
        passphrase: Option<&str>,
    ) -> Result<SecretKey, SeededError> {
        Ok(self.next_indexed(network, purpose, passphrase)?.1)
    }

    /// `count` fresh keys for `purpose` on `network`, as [`Wallet::next_key`] makes one,
    /// with one save of the counters and one opening of the seed for all of them.
    pub fn next_keys(
        &self,
        network: &NetworkId,
        purpose: KeyPurpose,
        passphrase: Option<&str>,
        count: usize,
    ) -> Result<Vec<SecretKey>, SeededError> {
        if !self.is_seeded() {
            if passphrase.is_some() {
                return Err(SeededError::NoSeed);
            }
            return Ok((0..count).map(|_| SecretKey::generate()).collect());
        }
        let mut keys = SeedKeys::open(self.dir(), passphrase)?;
        Ok(keys
            .next_keys(network, purpose, count)?
            .into_iter()
            .map(|(_, key)| key)
            .collect())
    }

    /// A new account, kept in `keys.json` before it is returned: derived from the seed in
    /// a seeded wallet (labelled "account N" unless `label` says otherwise), random in a
    /// key-file wallet.
    pub fn new_account(
        &mut self,
        network: &NetworkId,
        label: Option<String>,
        passphrase: Option<&str>,
    ) -> Result<KeyEntry, SeededError> {
        let (index, key) = self.next_indexed(network, KeyPurpose::Account, passphrase)?;
        let label = label.or_else(|| index.map(account_label));
        Ok(self.add_key(Some(key), label)?)
    }

    /// The next key and, in a seeded wallet, its index.
    fn next_indexed(
        &self,
        network: &NetworkId,
        purpose: KeyPurpose,
        passphrase: Option<&str>,
    ) -> Result<(Option<u64>, SecretKey), SeededError> {
        if !self.is_seeded() {
            if passphrase.is_some() {
                return Err(SeededError::NoSeed);
            }
            return Ok((None, SecretKey::generate()));
        }
        let mut keys = SeedKeys::open(self.dir(), passphrase)?;
        let (index, key) = keys.next_key(network, purpose)?;
        Ok((Some(index), key))
    }
}

/// Whether `dir` already holds a wallet: a seed, key counters, or at least one key. Reads
/// only; a folder that does not exist holds nothing.
pub(crate) fn holds_wallet(dir: &Path) -> Result<bool, SeededError> {
    if SeedFile::exists(dir) || KeyCounters::path(dir).exists() {
        return Ok(true);
    }
    holds_keys(dir)
}

/// Whether `dir/keys.json` lists any key. Reads only.
pub(crate) fn holds_keys(dir: &Path) -> Result<bool, SeededError> {
    if !dir.join("keys.json").exists() {
        return Ok(false);
    }
    Ok(!Wallet::open(dir)?.keys().is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tally_core::Digest;

    use super::*;
    use crate::seed::derive_key;

    fn network() -> NetworkId {
        NetworkId(Digest::from([7; 32]))
    }

    /// `init` writes the seed and account 0, which derives from the words it returns; new
    /// accounts continue at 1, coins at 0, each from the seed.
    #[test]
    fn init_derives_every_key_from_the_words() {
        let dir = tempfile::tempdir().unwrap();
        let net = network();
        let (mut wallet, words) = Wallet::init(dir.path(), &net, None).unwrap();
        let seed = words.to_seed("");
        assert!(wallet.is_seeded());
        assert_eq!(wallet.keys().len(), 1);
        assert_eq!(wallet.keys()[0].label.as_deref(), Some("account 0"));
        assert_eq!(
            wallet.keys()[0].account,
            derive_key(&seed, &net, KeyPurpose::Account, 0).account()
        );
        let second = wallet.new_account(&net, None, None).unwrap();
        assert_eq!(
            second.account,
            derive_key(&seed, &net, KeyPurpose::Account, 1).account()
        );
        assert_eq!(second.label.as_deref(), Some("account 1"));
        let coin = wallet.next_key(&net, KeyPurpose::Coin, None).unwrap();
        assert_eq!(
            coin.account(),
            derive_key(&seed, &net, KeyPurpose::Coin, 0).account()
        );
        assert_eq!(
            Wallet::open(dir.path()).unwrap().keys().len(),
            2,
            "a coin key is not an account of the wallet"
        );
        let counters = KeyCounters::load(dir.path()).unwrap();
        assert_eq!(counters.next(&net, KeyPurpose::Account), 2);
        assert_eq!(counters.next(&net, KeyPurpose::Coin), 1);
    }

    /// A folder with a seed, counters or keys is refused by `init`, and nothing in it
    /// changes; an empty passphrase is refused before anything is written.
    #[test]
    fn init_refuses_a_folder_that_holds_a_wallet() {
        let net = network();
        let seeded = tempfile::tempdir().unwrap();
        Wallet::init(seeded.path(), &net, None).unwrap();
        let before = std::fs::read(SeedFile::path(seeded.path())).unwrap();
        assert!(matches!(
            Wallet::init(seeded.path(), &net, None),
            Err(SeededError::NotEmpty(_))
        ));
        assert_eq!(
            std::fs::read(SeedFile::path(seeded.path())).unwrap(),
            before
        );

        let keyed = tempfile::tempdir().unwrap();
        Wallet::open(keyed.path())
            .unwrap()
            .add_key(None, None)
            .unwrap();
        assert!(matches!(
            Wallet::init(keyed.path(), &net, None),
            Err(SeededError::NotEmpty(_))
        ));
        assert!(!SeedFile::exists(keyed.path()));

        let fresh = tempfile::tempdir().unwrap();
        assert!(matches!(
            Wallet::init(fresh.path(), &net, Some("")),
            Err(SeededError::Seed(SeedError::EmptyPassphrase))
        ));
        assert!(!SeedFile::exists(fresh.path()));
    }

    /// A key-file wallet keeps making random keys and refuses a passphrase.
    #[test]
    fn key_file_wallets_make_random_keys() {
        let dir = tempfile::tempdir().unwrap();
        let net = network();
        let mut wallet = Wallet::open(dir.path()).unwrap();
        assert!(!wallet.is_seeded());
        let a = wallet.new_account(&net, Some("a".into()), None).unwrap();
        let b = wallet.new_account(&net, None, None).unwrap();
        assert_ne!(a.account, b.account);
        assert_eq!(b.label, None);
        assert!(matches!(
            wallet.next_key(&net, KeyPurpose::Coin, Some("x")),
            Err(SeededError::NoSeed)
        ));
        assert!(!SeedFile::exists(dir.path()));
        assert!(!KeyCounters::path(dir.path()).exists());
    }
}
