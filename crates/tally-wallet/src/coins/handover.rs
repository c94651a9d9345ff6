//! Coins handed between wallets: [`export`] takes coins worth an amount out of this
//! wallet (the caller writes them as a file or a token), [`import`] takes coins in,
//! detects them and powns the good ones to fresh keys, so only coins really ours reach
//! the Bank.

use std::collections::HashMap;

use serde::Serialize;
use tally_core::{Amount, Coin, Denomination, fewest_coins};

use super::detect::Grade;
use super::ledger::CoinLedger;
use super::ops::{change, counterfeit, pairs};
use super::store::{CoinFolder, CoinStore, ListedCoin, cash_of, choose_exact};
use super::{CoinOpError, FreshKeys};
use crate::Wallet;

/// What [`import`] did with one coin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ImportOutcome {
    /// Detected good and powned: the new coin is in the Bank.
    Banked { coin: ListedCoin },
    /// This wallet has the coin already (a second import is harmless).
    AlreadyHeld { coin: ListedCoin },
    /// Not ours to count: into `Counterfeit`.
    Refused { coin: ListedCoin, grade: Grade },
    /// The validators could not tell yet: it waits in `Import`.
    Undecided { coin: ListedCoin },
}

impl ImportOutcome {
    /// Cash this outcome added to the Bank.
    pub fn banked_cash(&self) -> u64 {
        match self {
            ImportOutcome::Banked { coin } => coin.denomination.cash(),
            _ => 0,
        }
    }
}

impl std::fmt::Display for ImportOutcome {
    /// One line a person reads: "25 cash  banked as 1a2b…".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportOutcome::Banked { coin } => write!(
                f,
                "{:>4} cash  banked as {}",
                coin.denomination.cash(),
                coin.account.short()
            ),
            ImportOutcome::AlreadyHeld { coin } => write!(
                f,
                "{:>4} cash  already in this wallet ({})",
                coin.denomination.cash(),
                coin.folder.name()
            ),
            ImportOutcome::Refused { coin, grade } => write!(
                f,
                "{:>4} cash  refused: {grade:?}, moved to Counterfeit",
                coin.denomination.cash()
            ),
            ImportOutcome::Undecided { coin } => write!(
                f,
                "{:>4} cash  undecided: waits in Import (run `coins pown` later)",
                coin.denomination.cash()
            ),
        }
    }
}

/// Moves coins worth exactly `amount` (whole cash) into `Export` and returns them, making
/// change from a larger coin first when the Bank has no exact set. The caller writes them
/// out (a file or a token); they are not this wallet's to spend any more.
pub async fn export<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    amount: Amount,
) -> Result<Vec<Coin>, CoinOpError> {
    fewest_coins(amount)?;
    let cash = amount.microcash() / 1_000_000;
    loop {
        let available = store.spendable()?;
        let have = cash_of(&available);
        if have < cash {
            return Err(CoinOpError::NotEnoughCoins {
                have: Amount::from_microcash(have.saturating_mul(1_000_000)),
                need: amount,
            });
        }
        if let Some(chosen) = choose_exact(&available, cash) {
            let mut coins = Vec::with_capacity(chosen.len());
            for listed in &chosen {
                coins.push(store.read(listed)?);
                store.move_to(listed, CoinFolder::Export)?;
            }
            return Ok(coins);
        }
        // Break the smallest coin that can be broken and try again: each round makes
        // smaller coins, so this ends (at worst in ones) within a few rounds.
        let breakable = available
            .iter()
            .rev()
            .find(|c| c.denomination != Denomination::One)
            .copied()
            .ok_or_else(|| CoinOpError::NotEnoughCoins {
                have: Amount::from_microcash(have.saturating_mul(1_000_000)),
                need: amount,
            })?;
        change(wallet, net, store, keys, &breakable).await?;
    }
}

/// Takes coins in: each new one is written to `Import`, detected, and powned to a fresh
/// key of this wallet if good, so only coins really ours reach the Bank. Coins of another
/// network refuse the whole import before anything is written.
pub async fn import<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    coins: Vec<Coin>,
) -> Result<Vec<ImportOutcome>, CoinOpError> {
    if let Some(stranger) = coins.iter().find(|c| c.network != *store.network()) {
        return Err(CoinOpError::WrongNetwork {
            coin: stranger.network,
            wallet: *store.network(),
        });
    }
    let mut outcomes = Vec::with_capacity(coins.len());
    let mut arrived = Vec::new();
    for coin in &coins {
        match store.locate(&coin.account())? {
            Some(held) => outcomes.push(ImportOutcome::AlreadyHeld { coin: held }),
            None => {
                store.put(CoinFolder::Import, coin)?;
                let listed = store
                    .locate(&coin.account())?
                    .ok_or_else(|| CoinOpError::UnknownCoin(coin.account().to_string()))?;
                arrived.push(listed);
            }
        }
    }
    let mut detections = net.detect(&pairs(&arrived), &HashMap::new()).await;
    // Validators that have not seen a coin funded are handed the certificate that funded
    // it (the coin carries it), then every coin is asked about again: a coin handed over
    // before its funding reached a quorum is not counterfeit (a forged funding certificate
    // is refused by the validators, and the coin stays unfunded in their eyes).
    let mut helped = false;
    for (listed, detection) in arrived.iter().zip(&detections) {
        if !detection.lagging.is_empty() {
            net.help_laggards(store, listed, &detection.lagging).await?;
            helped = true;
        }
    }
    if helped {
        detections = net.detect(&pairs(&arrived), &HashMap::new()).await;
    }
    let mut good = Vec::new();
    for (listed, detection) in arrived.iter().zip(detections) {
        match detection.grade {
            Grade::Authentic | Grade::Fracked => good.push(*listed),
            // Undecided, unless someone else's order holds a vote on its slot: the sender
            // still knows the secret and used it, so the coin is not ours, whoever wins.
            Grade::Limbo if detection.contested == 0 => {
                outcomes.push(ImportOutcome::Undecided { coin: *listed })
            }
            Grade::Counterfeit if !counterfeit(net, store, listed, &detection)? => {
                outcomes.push(ImportOutcome::Undecided { coin: *listed })
            }
            Grade::Counterfeit | Grade::Frozen | Grade::Limbo => {
                let coin = store.move_to(listed, CoinFolder::Counterfeit)?;
                outcomes.push(ImportOutcome::Refused {
                    coin,
                    grade: detection.grade,
                });
            }
        }
    }
    // The good ones are powned together, in pipelined batches.
    let mut first_error = None;
    for powned in super::batch::pown_many(wallet, net, store, keys, &good).await? {
        match powned {
            Ok((coin, _)) => outcomes.push(ImportOutcome::Banked { coin }),
            Err(error) => {
                tracing::warn!(%error, "an imported coin could not be powned");
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(outcomes),
    }
}
