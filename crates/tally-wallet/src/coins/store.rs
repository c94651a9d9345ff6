//! The coin folders (DESIGN §7): one coin a file, named `<denomination>-<account>.coin`
//! so a listing reads no file, holding a one-coin coin file (PROTOCOL §10). A coin moves
//! between folders by rename, and both folders are synced, so after a crash it is in
//! exactly one of them; nothing is ever deleted.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tally_core::{AccountId, Coin, CoinFile, Denomination, NetworkId};

use super::CoinOpError;
use crate::fs::{SyncBatch, sync_dir, write_atomic};

/// Where a coin is, which says what the wallet knows about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum CoinFolder {
    /// Ours, and a quorum of validators agreed when it last arrived.
    Bank,
    /// Ours, but some validators lag (missing its funding certificate); `fix` helps them.
    Fracked,
    /// In the middle of an operation (journaled): `find` settles it.
    Limbo,
    /// A quorum says it holds nothing or was spent: worthless to us.
    Counterfeit,
    /// Received, not yet detected and powned.
    Import,
    /// Handed out as a file or token, not yet seen taken.
    Export,
    /// Handed out and taken by the receiver.
    Sent,
    /// No longer worth anything: spent by this wallet (deposited, powned, broken into
    /// change), or a fresh key whose funding order was refused. Kept, never deleted.
    Spent,
}

impl CoinFolder {
    /// Every folder.
    pub const ALL: [CoinFolder; 8] = [
        CoinFolder::Bank,
        CoinFolder::Fracked,
        CoinFolder::Limbo,
        CoinFolder::Counterfeit,
        CoinFolder::Import,
        CoinFolder::Export,
        CoinFolder::Sent,
        CoinFolder::Spent,
    ];

    /// The folder's name on disk and on screen.
    pub const fn name(self) -> &'static str {
        match self {
            CoinFolder::Bank => "Bank",
            CoinFolder::Fracked => "Fracked",
            CoinFolder::Limbo => "Limbo",
            CoinFolder::Counterfeit => "Counterfeit",
            CoinFolder::Import => "Import",
            CoinFolder::Export => "Export",
            CoinFolder::Sent => "Sent",
            CoinFolder::Spent => "Spent",
        }
    }

    /// Whether the wallet may spend coins here (they are its own and believed good).
    pub const fn spendable(self) -> bool {
        matches!(self, CoinFolder::Bank | CoinFolder::Fracked)
    }
}

/// A coin as the folders list it, without reading its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ListedCoin {
    pub account: AccountId,
    pub denomination: Denomination,
    pub folder: CoinFolder,
}

/// The coin folders of one network in a wallet: `<wallet>/coins/<network id>/<Folder>/`.
#[derive(Clone, Debug)]
pub struct CoinStore {
    dir: PathBuf,
    network: NetworkId,
    /// Writes and moves synced one by one, or through a batch ([`CoinStore::batched`]).
    batch: Option<Arc<SyncBatch>>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CoinOpError + '_ {
    move |source| CoinOpError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn file_name(denomination: Denomination, account: &AccountId) -> String {
    format!("{}-{account}.coin", denomination.cash())
}

/// The denomination and account a coin file's name gives, if it is one.
fn parse_name(name: &str) -> Option<(Denomination, AccountId)> {
    let stem = name.strip_suffix(".coin")?;
    let (cash, account) = stem.split_once('-')?;
    let denomination = Denomination::from_cash(cash.parse().ok()?)?;
    Some((denomination, account.parse().ok()?))
}

fn sort_largest_first(coins: &mut [ListedCoin]) {
    coins.sort_by(|a, b| {
        b.denomination
            .cash()
            .cmp(&a.denomination.cash())
            .then(a.account.cmp(&b.account))
    });
}

/// What `coins` are worth together, in whole cash.
pub fn cash_of(coins: &[ListedCoin]) -> u64 {
    coins.iter().map(|c| c.denomination.cash()).sum()
}

/// Coins from `available` (largest first) that add up to exactly `cash`, taken greedily;
/// `None` if they do not (making change first may help).
pub fn choose_exact(available: &[ListedCoin], cash: u64) -> Option<Vec<ListedCoin>> {
    let mut left = cash;
    let mut chosen = Vec::new();
    for coin in available {
        if coin.denomination.cash() <= left {
            left -= coin.denomination.cash();
            chosen.push(*coin);
        }
    }
    (left == 0).then_some(chosen)
}

impl CoinStore {
    /// The folders of `network` in the wallet at `wallet_dir`, created if missing.
    pub fn open(wallet_dir: &Path, network: NetworkId) -> Result<Self, CoinOpError> {
        let dir = wallet_dir.join("coins").join(network.to_string());
        for folder in CoinFolder::ALL {
            let path = dir.join(folder.name());
            fs::create_dir_all(&path).map_err(io(&path))?;
        }
        Ok(CoinStore {
            dir,
            network,
            batch: None,
        })
    }

    /// These folders, writing and moving coins through `batch`: nothing is durable before
    /// `batch`'s next barrier. For operations on many coins at once, which pass the
    /// barrier before the network hears of what they wrote.
    pub fn batched(&self, batch: &Arc<SyncBatch>) -> CoinStore {
        CoinStore {
            batch: Some(Arc::clone(batch)),
            ..self.clone()
        }
    }

    /// Renames a coin file between folders (of this store or another): synced now, both
    /// folders, or at the batch's barrier.
    fn rename(&self, from: &Path, into: &Path) -> Result<(), CoinOpError> {
        if let Some(batch) = &self.batch {
            return Ok(batch.rename(from, into)?);
        }
        fs::rename(from, into).map_err(io(from))?;
        for dir in [into.parent(), from.parent()].into_iter().flatten() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// The network these coins live on.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    fn folder_dir(&self, folder: CoinFolder) -> PathBuf {
        self.dir.join(folder.name())
    }

    fn path(&self, folder: CoinFolder, denomination: Denomination, account: &AccountId) -> PathBuf {
        self.folder_dir(folder)
            .join(file_name(denomination, account))
    }

    /// Writes `coin` into `folder` (replacing the file a coin of that key has there), durably.
    /// A coin of another network is refused.
    pub fn put(&self, folder: CoinFolder, coin: &Coin) -> Result<(), CoinOpError> {
        if coin.network != self.network {
            return Err(CoinOpError::WrongNetwork {
                coin: coin.network,
                wallet: self.network,
            });
        }
        let path = self.path(folder, coin.denomination, &coin.account());
        let file = CoinFile::new(vec![coin.clone()])?;
        match &self.batch {
            Some(batch) => batch.write(&path, file.to_json().as_bytes())?,
            None => write_atomic(&path, file.to_json().as_bytes())?,
        }
        Ok(())
    }

    /// Reads the coin `listed` names.
    pub fn read(&self, listed: &ListedCoin) -> Result<Coin, CoinOpError> {
        let path = self.path(listed.folder, listed.denomination, &listed.account);
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        let corrupt = |message: String| CoinOpError::Corrupt {
            path: path.clone(),
            message,
        };
        let mut coins = CoinFile::from_json(&text)
            .map_err(|e| corrupt(e.to_string()))?
            .into_coins();
        match (coins.pop(), coins.is_empty()) {
            (Some(coin), true)
                if coin.account() == listed.account
                    && coin.denomination == listed.denomination
                    && coin.network == self.network =>
            {
                Ok(coin)
            }
            _ => Err(corrupt("does not hold the one coin its name says".into())),
        }
    }

    /// Moves a coin between folders: a rename, then both folders synced (now, or at the
    /// batch's barrier).
    pub fn move_to(&self, listed: &ListedCoin, to: CoinFolder) -> Result<ListedCoin, CoinOpError> {
        let moved = ListedCoin {
            folder: to,
            ..*listed
        };
        if listed.folder != to {
            let from = self.path(listed.folder, listed.denomination, &listed.account);
            let into = self.path(to, listed.denomination, &listed.account);
            self.rename(&from, &into)?;
        }
        Ok(moved)
    }

    /// Moves a coin from this store into `folder` of `other` (a sub-wallet of the same
    /// network, such as a live transfer's hidden Sender or Receiver wallet, on the same
    /// file system): one rename, then both folders synced (now, or at the batch's barrier),
    /// so after a crash the coin is in
    /// exactly one of the two stores, never both, never neither.
    pub fn move_into(
        &self,
        listed: &ListedCoin,
        other: &CoinStore,
        folder: CoinFolder,
    ) -> Result<ListedCoin, CoinOpError> {
        if other.network != self.network {
            return Err(CoinOpError::WrongNetwork {
                coin: self.network,
                wallet: other.network,
            });
        }
        let from = self.path(listed.folder, listed.denomination, &listed.account);
        let into = other.path(folder, listed.denomination, &listed.account);
        if from != into {
            self.rename(&from, &into)?;
        }
        Ok(ListedCoin { folder, ..*listed })
    }

    /// The coins in `folder`, largest first (then by account), read from their names only.
    pub fn list(&self, folder: CoinFolder) -> Result<Vec<ListedCoin>, CoinOpError> {
        let dir = self.folder_dir(folder);
        let mut coins = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let name = entry.map_err(io(&dir))?.file_name();
            // Temporary files of an interrupted write, and anything else, are not coins.
            if let Some((denomination, account)) = name.to_str().and_then(parse_name) {
                coins.push(ListedCoin {
                    account,
                    denomination,
                    folder,
                });
            }
        }
        sort_largest_first(&mut coins);
        Ok(coins)
    }

    /// The coins this wallet may spend (Bank, then Fracked), largest first.
    pub fn spendable(&self) -> Result<Vec<ListedCoin>, CoinOpError> {
        let mut coins = self.list(CoinFolder::Bank)?;
        coins.extend(self.list(CoinFolder::Fracked)?);
        sort_largest_first(&mut coins);
        Ok(coins)
    }

    /// Every coin in every folder.
    pub fn list_all(&self) -> Result<Vec<ListedCoin>, CoinOpError> {
        let mut all = Vec::new();
        for folder in CoinFolder::ALL {
            all.extend(self.list(folder)?);
        }
        Ok(all)
    }

    /// Where the coin of `account` is, if this wallet has it anywhere.
    pub fn locate(&self, account: &AccountId) -> Result<Option<ListedCoin>, CoinOpError> {
        for folder in CoinFolder::ALL {
            for denomination in Denomination::ALL {
                if self.path(folder, denomination, account).exists() {
                    return Ok(Some(ListedCoin {
                        account: *account,
                        denomination,
                        folder,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Finds the coin of `account` (or of the one account starting with `prefix`) among
    /// the coins listed.
    pub fn find(&self, query: &str) -> Result<ListedCoin, CoinOpError> {
        let query = query.trim().to_ascii_lowercase();
        let matches: Vec<ListedCoin> = self
            .list_all()?
            .into_iter()
            .filter(|c| c.account.to_string().starts_with(&query))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(CoinOpError::UnknownCoin(query)),
            _ => Err(CoinOpError::AmbiguousCoin(query)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn network() -> NetworkId {
        NetworkId(tally_core::sha256(&[b"coin store"]))
    }

    #[test]
    fn a_coin_moves_between_folders_and_is_always_in_exactly_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = CoinStore::open(dir.path(), network()).unwrap();
        let coin = Coin::generate(network(), Denomination::TwentyFive);
        store.put(CoinFolder::Limbo, &coin).unwrap();
        let listed = store.locate(&coin.account()).unwrap().unwrap();
        assert_eq!(listed.folder, CoinFolder::Limbo);
        let listed = store.move_to(&listed, CoinFolder::Bank).unwrap();
        assert_eq!(store.list(CoinFolder::Bank).unwrap(), vec![listed]);
        assert!(store.list(CoinFolder::Limbo).unwrap().is_empty());
        assert_eq!(store.read(&listed).unwrap(), coin);
        assert_eq!(
            store.find(&coin.account().to_string()[..10]).unwrap(),
            listed
        );

        // Reopening finds it where it was.
        let store = CoinStore::open(dir.path(), network()).unwrap();
        assert_eq!(store.list_all().unwrap(), vec![listed]);
    }

    #[test]
    fn coins_of_another_network_and_stray_files_are_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let store = CoinStore::open(dir.path(), network()).unwrap();
        let other = NetworkId(tally_core::sha256(&[b"elsewhere"]));
        assert!(matches!(
            store.put(CoinFolder::Bank, &Coin::generate(other, Denomination::One)),
            Err(CoinOpError::WrongNetwork { .. })
        ));
        let bank = dir
            .path()
            .join("coins")
            .join(network().to_string())
            .join("Bank");
        fs::write(bank.join("notes.txt"), "hello").unwrap();
        fs::write(bank.join("7-abc.coin"), "not a coin").unwrap();
        assert!(store.list_all().unwrap().is_empty());

        // A file whose content does not match its name is reported, not trusted.
        let coin = Coin::generate(network(), Denomination::Five);
        let wrong = ListedCoin {
            account: coin.account(),
            denomination: Denomination::Hundred,
            folder: CoinFolder::Bank,
        };
        fs::write(
            bank.join(file_name(Denomination::Hundred, &coin.account())),
            CoinFile::new(vec![coin]).unwrap().to_json(),
        )
        .unwrap();
        assert!(matches!(
            store.read(&wrong),
            Err(CoinOpError::Corrupt { .. })
        ));
    }
}
