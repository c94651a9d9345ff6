//! Bearer coins in the wallet (DESIGN §7): the folders they live in ([`CoinStore`]),
//! what the network says about them ([`CoinLedger::detect`]), and the operations that move
//! value between accounts and coins ([`withdraw`], [`deposit`], [`pown`], [`find`],
//! [`fix`], [`export`], [`import`]), on a quorum network ([`crate::QuorumClient`]) or a
//! proof-of-work one ([`ChainCoins`]).
//!
//! Every operation writes what it is about to do before any validator hears of it: fresh
//! coin keys go to `Limbo` and the signed order to the wallet's `pending/` journal, so a
//! crash at any point is settled by [`find`] (it finishes the journaled order, which the
//! lock slot makes idempotent) and no coin is lost. Before a coin's order is signed, the
//! validators are asked whether a vote is held for another order on its slot: if so the
//! wallet does not sign a second one.

mod batch;
mod chain;
mod detect;
mod handover;
mod ledger;
mod ops;
mod store;

use std::path::PathBuf;

use tally_core::{AccountId, Amount, CoinError, NetworkId, SecretKey};

use crate::RestoredCoin;
use crate::seed::KeyPurpose;

pub use batch::{Powned, pown_many, recover_batches};
pub use chain::ChainCoins;
pub use detect::{Detection, Grade, detect};
pub use handover::{ImportOutcome, export, import};
pub use ledger::{CoinLedger, NotSpent};
pub use ops::{FindReport, change, deposit, find, fix, join, own_orders, pown, reclaim, withdraw};
pub use store::{CoinFolder, CoinStore, ListedCoin, cash_of, choose_exact};

use crate::{ChainWalletError, ClientError, OpError, SeededError, Wallet, WalletError};

/// The coins a person hands the wallet as text: a token (`tallycoin1…`) or the contents of
/// a coin file. Nothing is checked with the validators here; [`import`] does that.
pub fn offered_coins(text: &str) -> Result<Vec<tally_core::Coin>, CoinError> {
    let text = text.trim();
    if text.starts_with(tally_core::coin::TOKEN_PREFIX) {
        tally_core::decode_token(text)
    } else {
        Ok(tally_core::CoinFile::from_json(text)?.into_coins())
    }
}

/// Why a coin operation failed. Whatever failed, every coin is in exactly one folder.
#[derive(Debug, thiserror::Error)]
pub enum CoinOpError {
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Chain(#[from] ChainWalletError),
    #[error(transparent)]
    Op(#[from] OpError),
    #[error(transparent)]
    Coin(#[from] CoinError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("the coin is of network {coin}, this wallet's is {wallet}")]
    WrongNetwork { coin: NetworkId, wallet: NetworkId },
    #[error("no coin {0} in this wallet")]
    UnknownCoin(String),
    #[error("coin prefix {0} matches more than one coin")]
    AmbiguousCoin(String),
    #[error("coin {account} is in {folder:?}, not spendable")]
    NotSpendable {
        account: AccountId,
        folder: CoinFolder,
    },
    #[error("the Bank holds {have} cash in coins, less than {need}")]
    NotEnoughCoins { have: Amount, need: Amount },
    #[error(
        "a validator holds a vote for an order this wallet did not make on coin {0}: it may be spent by someone else"
    )]
    Contested(AccountId),
    #[error("the validators refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Seeded(#[from] SeededError),
}

/// Where fresh keys for coins come from: a seeded wallet derives them (so `restore` finds
/// them again), a key-file wallet draws them at random.
pub trait FreshKeys {
    /// A key never handed out before.
    fn fresh_key(&mut self) -> Result<SecretKey, CoinOpError>;

    /// `count` keys never handed out before (a source that can reserve them together, as a
    /// seeded wallet does with one save of its counters, does so).
    fn fresh_keys(&mut self, count: usize) -> Result<Vec<SecretKey>, CoinOpError> {
        (0..count).map(|_| self.fresh_key()).collect()
    }
}

/// Fresh keys from the operating system's random source.
pub struct RandomKeys;

impl FreshKeys for RandomKeys {
    fn fresh_key(&mut self) -> Result<SecretKey, CoinOpError> {
        Ok(SecretKey::generate())
    }
}

/// The wallet's own coin keys: derived from its seed when it has one (each index advanced
/// durably before use, so `restore` finds the coin again), random otherwise.
pub struct WalletKeys<'a> {
    wallet: &'a Wallet,
    network: NetworkId,
    passphrase: Option<&'a str>,
}

impl<'a> WalletKeys<'a> {
    /// Coin keys of `wallet` on `network`; `passphrase` opens a sealed seed.
    pub fn new(wallet: &'a Wallet, network: NetworkId, passphrase: Option<&'a str>) -> Self {
        WalletKeys {
            wallet,
            network,
            passphrase,
        }
    }
}

impl FreshKeys for WalletKeys<'_> {
    fn fresh_key(&mut self) -> Result<SecretKey, CoinOpError> {
        Ok(self
            .wallet
            .next_key(&self.network, KeyPurpose::Coin, self.passphrase)?)
    }

    fn fresh_keys(&mut self, count: usize) -> Result<Vec<SecretKey>, CoinOpError> {
        Ok(self
            .wallet
            .next_keys(&self.network, KeyPurpose::Coin, self.passphrase, count)?)
    }
}

/// Puts the coin keys `restore` found holding a whole denomination into the Bank (those
/// this wallet already has stay where they are); returns the coins banked. A key holding
/// any other amount is not a coin and is left out.
pub fn bank_restored(
    store: &CoinStore,
    found: &[RestoredCoin],
) -> Result<Vec<ListedCoin>, CoinOpError> {
    let mut banked = Vec::new();
    for restored in found {
        let Some(denomination) = tally_core::Denomination::from_amount(restored.balance) else {
            continue;
        };
        if store.locate(&restored.key.account())?.is_some() {
            continue;
        }
        let coin = tally_core::Coin {
            network: *store.network(),
            denomination,
            secret: restored.key.clone(),
            funding: None,
        };
        store.put(CoinFolder::Bank, &coin)?;
        banked.extend(store.locate(&coin.account())?);
    }
    Ok(banked)
}
