//! The wallet folder: `keys.json` (accounts and their secret keys), `receipts/` (one
//! certificate a file, named by its order digest; `receipts/chain/` holds the confirmed
//! transactions of proof-of-work networks) and `pending/` (the signed order each account
//! has in flight; a batch of coin operations journals all its orders in one file, a
//! [`BatchJournal`]). Every file is written to a temporary name, synced, then renamed
//! over the old one, so a crash leaves either the old or the new file, never half of one.
//! Nothing is ever deleted except a pending order whose certificate is in `receipts/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tally_core::{AccountId, Certificate, Digest, SecretKey, SignedOrder};

use crate::fs::SyncBatch;
pub use crate::fs::write_atomic;

/// A wallet failure.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("this wallet has no account {0}")]
    UnknownAccount(String),
    #[error("this wallet has no accounts yet: create one with `tally wallet key new`")]
    NoAccounts,
    #[error("account prefix {0} matches more than one account")]
    Ambiguous(String),
    #[error(
        "another process using this wallet has held {what} for {waited:?}; try again when it is done"
    )]
    Busy { what: String, waited: Duration },
    #[error("a {0} order is signed by no key, so it has no account to be journaled under")]
    Unsigned(&'static str),
}

/// How long [`Wallet::lock_key`] waits for another process to let go of a key.
pub const KEY_LOCK_PATIENCE: Duration = Duration::from_secs(60);

/// A key or the coins held by this process ([`Wallet::lock_key`],
/// [`Wallet::lock_coins`]); let go when dropped.
#[derive(Debug)]
pub struct KeyLock {
    _file: fs::File,
    /// This process's turn (see [`local_turn`]), held as long as the file lock.
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

/// The in-process queue in front of a lock file: tasks of one process (a maker's wires
/// locking on one account at once) wait their turn here, woken in order, instead of each
/// polling the file lock.
fn local_turn(path: &Path) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock, PoisonError};
    static TURNS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut turns = TURNS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    turns.entry(path.to_path_buf()).or_default().clone()
}

/// One account the wallet holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyEntry {
    pub account: AccountId,
    /// The secret key's 32-byte seed, hex. Whoever reads this file can spend the account.
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The proof of work found for this key, once found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_of_work: Option<u64>,
    /// Where an interrupted proof-of-work search resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pow_resume_from: Option<u64>,
}

impl KeyEntry {
    /// The secret key.
    pub fn secret_key(&self) -> Result<SecretKey, WalletError> {
        self.secret
            .parse()
            .map_err(|e: tally_core::KeyError| WalletError::Corrupt {
                path: PathBuf::from("keys.json"),
                message: format!("secret of {}: {e}", self.account),
            })
    }
}

#[derive(Default, Serialize, Deserialize)]
struct KeyFile {
    accounts: Vec<KeyEntry>,
}

/// A transaction of a proof-of-work network that the chain confirmed: the signed order,
/// its id, and the block that holds it. Its proof is the chain itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReceipt {
    /// The transaction id.
    pub id: Digest,
    /// The height of the block that holds it.
    pub height: u64,
    /// Confirmations when the wallet stopped waiting.
    pub confirmations: u64,
    /// The signed transfer.
    pub order: SignedOrder,
}

/// A wallet folder.
pub struct Wallet {
    dir: PathBuf,
    keys: Vec<KeyEntry>,
    /// Where receipts and journal entries are written: each synced as it is made, or
    /// through a batch that one barrier makes durable ([`Wallet::batched`]).
    batch: Option<Arc<SyncBatch>>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalletError + '_ {
    move |source| WalletError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The JSON value in `path`, or `None` if there is no such file.
fn read_optional<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, WalletError> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| WalletError::Corrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WalletError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Every `.json` file in `dir` as a `T` (none if there is no such folder).
fn read_all<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<Vec<T>, WalletError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|e| e == "json")
            && let Some(value) = read_optional(&path)?
        {
            out.push(value);
        }
    }
    Ok(out)
}

/// File names of batch journals in `pending/` start with this (an account's own entry is
/// named by the account alone).
const BATCH_JOURNAL_PREFIX: &str = "batch-";

/// The orders a batch of coin operations journals together, with the fresh coins they
/// pay: one file for a whole batch where single operations write one per coin.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchJournal {
    #[serde(rename = "Orders")]
    pub orders: Vec<SignedOrder>,
    /// The fresh coins the orders pay, as one coin file (PROTOCOL §10): their keys must be
    /// durable before any validator sees an order paying them.
    #[serde(rename = "Coins")]
    pub coins: String,
}

impl Wallet {
    /// Opens the wallet in `dir`, creating the folder if needed.
    pub fn open(dir: &Path) -> Result<Self, WalletError> {
        for sub in ["", "receipts", "pending"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(io(&path))?;
        }
        let path = dir.join("keys.json");
        let keys = match fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str::<KeyFile>(&text)
                    .map_err(|e| WalletError::Corrupt {
                        path: path.clone(),
                        message: e.to_string(),
                    })?
                    .accounts
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(WalletError::Io { path, source: e }),
        };
        Ok(Wallet {
            dir: dir.to_path_buf(),
            keys,
            batch: None,
        })
    }

    /// This wallet writing its receipts and journal through `batch`: nothing it writes is
    /// durable before `batch`'s next barrier. For operations on many coins at once, which
    /// pass the barrier before the network hears of what they journaled. Keys are still
    /// saved one by one, durably.
    pub fn batched(&self, batch: &Arc<SyncBatch>) -> Wallet {
        Wallet {
            dir: self.dir.clone(),
            keys: self.keys.clone(),
            batch: Some(Arc::clone(batch)),
        }
    }

    /// Writes a receipt or a journal entry, durably now or at the batch's barrier.
    fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), WalletError> {
        match &self.batch {
            Some(batch) => batch.write(path, bytes),
            None => write_atomic(path, bytes),
        }
    }

    /// [`Self::write`] of `value` as JSON (`pretty` for files people may read).
    fn write_json(
        &self,
        path: &Path,
        value: &impl Serialize,
        pretty: bool,
    ) -> Result<(), WalletError> {
        let text = if pretty {
            serde_json::to_vec_pretty(value)
        } else {
            serde_json::to_vec(value)
        }
        .map_err(|e| WalletError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        self.write(path, &text)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every account, oldest first.
    pub fn keys(&self) -> &[KeyEntry] {
        &self.keys
    }

    fn save_keys(&self) -> Result<(), WalletError> {
        let file = KeyFile {
            accounts: self.keys.clone(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| WalletError::Corrupt {
            path: self.dir.join("keys.json"),
            message: e.to_string(),
        })?;
        write_atomic(&self.dir.join("keys.json"), &text)
    }

    /// Adds a key (a fresh one if `key` is `None`) and saves before returning it.
    pub fn add_key(
        &mut self,
        key: Option<SecretKey>,
        label: Option<String>,
    ) -> Result<KeyEntry, WalletError> {
        let key = key.unwrap_or_else(SecretKey::generate);
        if let Some(existing) = self.keys.iter().find(|k| k.account == key.account()) {
            return Ok(existing.clone());
        }
        let entry = KeyEntry {
            account: key.account(),
            secret: key.to_hex(),
            label,
            proof_of_work: None,
            pow_resume_from: None,
        };
        self.keys.push(entry.clone());
        self.save_keys()?;
        Ok(entry)
    }

    /// Finds an account by full hex, unique hex prefix, or label; the first account if
    /// `query` is `None`.
    pub fn find(&self, query: Option<&str>) -> Result<&KeyEntry, WalletError> {
        let Some(query) = query else {
            return self.keys.first().ok_or(WalletError::NoAccounts);
        };
        let lower = query.to_ascii_lowercase();
        let matches: Vec<&KeyEntry> = self
            .keys
            .iter()
            .filter(|k| k.label.as_deref() == Some(query) || k.account.to_hex().starts_with(&lower))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(WalletError::UnknownAccount(query.to_owned())),
            _ => Err(WalletError::Ambiguous(query.to_owned())),
        }
    }

    /// An account named by its 64 hex digits (any account, the wallet's or not), or one of
    /// the wallet's by unique hex prefix or label; the first account if `query` is `None`.
    pub fn resolve(&self, query: Option<&str>) -> Result<AccountId, WalletError> {
        if let Some(text) = query
            && text.len() == 64
            && let Ok(account) = text.parse()
        {
            return Ok(account);
        }
        Ok(self.find(query)?.account)
    }

    /// Records a proof-of-work result or resume point for `account`.
    pub fn set_pow(
        &mut self,
        account: &AccountId,
        found: Option<u64>,
        resume_from: Option<u64>,
    ) -> Result<(), WalletError> {
        let entry = self
            .keys
            .iter_mut()
            .find(|k| k.account == *account)
            .ok_or_else(|| WalletError::UnknownAccount(account.to_hex()))?;
        if found.is_some() {
            entry.proof_of_work = found;
            entry.pow_resume_from = None;
        } else {
            entry.pow_resume_from = resume_from;
        }
        self.save_keys()
    }

    /// Keeps an escrow secret this wallet drew (durable before it returns), under its hash
    /// lock: before any lock using it is signed.
    pub fn keep_secret(&self, secret: &tally_core::EscrowSecret) -> Result<(), WalletError> {
        let path = self.secret_path(&secret.hash_lock());
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        self.write(&path, secret.to_hex().as_bytes())
    }

    /// The secret behind `hash_lock`, if this wallet drew it.
    pub fn secret(
        &self,
        hash_lock: &tally_core::Digest,
    ) -> Result<Option<tally_core::EscrowSecret>, WalletError> {
        let path = self.secret_path(hash_lock);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(WalletError::Io { path, source: e }),
        };
        let secret: tally_core::EscrowSecret =
            text.trim()
                .parse()
                .map_err(|e: tally_core::KeyError| WalletError::Corrupt {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
        if secret.hash_lock() != *hash_lock {
            return Err(WalletError::Corrupt {
                path,
                message: "the secret does not match its hash lock".into(),
            });
        }
        Ok(Some(secret))
    }

    fn secret_path(&self, hash_lock: &tally_core::Digest) -> PathBuf {
        self.dir.join("secrets").join(format!("{hash_lock}"))
    }

    /// Keeps a certificate as a receipt; returns its path.
    pub fn save_receipt(&self, certificate: &Certificate) -> Result<PathBuf, WalletError> {
        let path = self
            .dir
            .join("receipts")
            .join(format!("{}.json", certificate.checksum));
        self.write_json(&path, certificate, true)?;
        Ok(path)
    }

    /// Keeps a confirmed transaction of a proof-of-work network as a receipt (in
    /// `receipts/chain/`, apart from the certificates); returns its path.
    pub fn save_chain_receipt(&self, receipt: &ChainReceipt) -> Result<PathBuf, WalletError> {
        let dir = self.dir.join("receipts").join("chain");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(format!("{}.json", receipt.id));
        self.write_json(&path, receipt, true)?;
        Ok(path)
    }

    /// The receipt of the proof-of-work transaction `id`, if the wallet keeps it.
    pub fn chain_receipt(&self, id: &Digest) -> Result<Option<ChainReceipt>, WalletError> {
        read_optional(
            &self
                .dir
                .join("receipts")
                .join("chain")
                .join(format!("{id}.json")),
        )
    }

    /// Every proof-of-work receipt in the wallet.
    pub fn chain_receipts(&self) -> Result<Vec<ChainReceipt>, WalletError> {
        read_all(&self.dir.join("receipts").join("chain"))
    }

    /// The receipt of the order with `digest`, if the wallet keeps it.
    pub fn receipt(&self, digest: &Digest) -> Result<Option<Certificate>, WalletError> {
        read_optional(&self.dir.join("receipts").join(format!("{digest}.json")))
    }

    /// Every receipt in the wallet.
    pub fn receipts(&self) -> Result<Vec<Certificate>, WalletError> {
        read_all(&self.dir.join("receipts"))
    }

    /// The ids (order digests) of every receipt the wallet keeps, without reading them: a
    /// receipt never changes once kept, so a reader that remembers the ones it read needs
    /// to read only the new ones.
    pub fn receipt_ids(&self) -> Result<Vec<Digest>, WalletError> {
        let dir = self.dir.join("receipts");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let name = entry.map_err(io(&dir))?.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|name| name.strip_suffix(".json"))
                .and_then(|stem| stem.parse().ok())
            {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Holds `account` for this process until the lock is dropped, waiting up to
    /// [`KEY_LOCK_PATIENCE`] for another process of the same wallet folder to let go: two
    /// processes of one wallet never read "nothing journaled" for one key at once and each
    /// sign an order for the same lock slot, which could freeze it (DESIGN §3). The lock is
    /// the operating system's (`flock`), so a process that dies lets go.
    pub async fn lock_key(&self, account: &AccountId) -> Result<KeyLock, WalletError> {
        self.lock(&format!("{account}.lock"), || format!("account {account}"))
            .await
    }

    /// Holds this wallet's coins of `network` for this process until the lock is dropped,
    /// as [`Wallet::lock_key`] holds an account: two processes never pick the same coin
    /// from the Bank and each sign an order for it. A coin command or a live transfer's
    /// piece of work holds it for its whole length; the coin operations themselves take
    /// no lock (they call each other), so their callers do.
    pub async fn lock_coins(
        &self,
        network: &tally_core::NetworkId,
    ) -> Result<KeyLock, WalletError> {
        self.lock(&format!("coins-{network}.lock"), || {
            format!("the coins of network {network}")
        })
        .await
    }

    async fn lock(&self, name: &str, what: impl Fn() -> String) -> Result<KeyLock, WalletError> {
        let dir = self.dir.join("locks");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        let started = std::time::Instant::now();
        // Free at once in the common case, which needs no timer (the simulator runs wallets
        // on an executor without one); only a wait does.
        let local = local_turn(&path);
        let turn = match local.clone().try_lock_owned() {
            Ok(turn) => turn,
            Err(_) => match tokio::time::timeout(KEY_LOCK_PATIENCE, local.lock_owned()).await {
                Ok(turn) => turn,
                Err(_) => {
                    return Err(WalletError::Busy {
                        what: what(),
                        waited: started.elapsed(),
                    });
                }
            },
        };
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(KeyLock {
                        _file: file,
                        _turn: turn,
                    });
                }
                Err(fs::TryLockError::WouldBlock) if started.elapsed() < KEY_LOCK_PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(WalletError::Busy {
                        what: what(),
                        waited: started.elapsed(),
                    });
                }
                Err(fs::TryLockError::Error(error)) => return Err(io(&path)(error)),
            }
        }
    }

    fn pending_path(&self, account: &AccountId) -> PathBuf {
        self.dir.join("pending").join(format!("{account}.json"))
    }

    /// Journals a batch's orders and the fresh coins they pay in one file, before any
    /// validator sees them (durable now, or at the batch's barrier). Returns its path.
    pub fn set_pending_batch(&self, journal: &BatchJournal) -> Result<PathBuf, WalletError> {
        let first = journal
            .orders
            .first()
            .and_then(|order| order.order.signer())
            .map(|signer| signer.to_string())
            .unwrap_or_default();
        let path = self
            .dir
            .join("pending")
            .join(format!("{BATCH_JOURNAL_PREFIX}{first}.json"));
        // Compact: a batch journal holds hundreds of orders and is read back only after a
        // crash.
        self.write_json(&path, journal, false)?;
        Ok(path)
    }

    /// Every batch journal in `pending/`, with its path: the batch running now, or what an
    /// interrupted one left.
    pub fn pending_batches(&self) -> Result<Vec<(PathBuf, BatchJournal)>, WalletError> {
        let dir = self.dir.join("pending");
        let mut batches = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            let is_batch = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|name| {
                    name.starts_with(BATCH_JOURNAL_PREFIX) && name.ends_with(".json")
                });
            if is_batch && let Some(journal) = read_optional(&path)? {
                batches.push((path, journal));
            }
        }
        batches.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(batches)
    }

    /// Forgets a batch journal (each of its orders settled, refused, or journaled on its
    /// own since).
    pub fn clear_pending_batch(&self, path: &Path) -> Result<(), WalletError> {
        if let Some(batch) = &self.batch {
            return batch.remove(path);
        }
        match fs::remove_file(path) {
            Ok(()) => crate::fs::sync_dir(&self.dir.join("pending")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(WalletError::Io {
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }

    /// Journals the order `account` is about to send, before any validator sees it: after
    /// a crash the wallet finishes this order instead of signing a conflicting one.
    pub fn set_pending(&self, order: &SignedOrder) -> Result<(), WalletError> {
        let signer = order
            .order
            .signer()
            .ok_or(WalletError::Unsigned(order.order.kind_name()))?;
        self.write_json(&self.pending_path(&signer), order, true)
    }

    /// The order `account` has in flight, if any: its own journal entry, or its entry in
    /// a batch journal.
    pub fn pending(&self, account: &AccountId) -> Result<Option<SignedOrder>, WalletError> {
        if let Some(order) = read_optional(&self.pending_path(account))? {
            return Ok(Some(order));
        }
        for (_, journal) in self.pending_batches()? {
            if let Some(order) = journal
                .orders
                .into_iter()
                .find(|order| order.order.signer() == Some(*account))
            {
                return Ok(Some(order));
            }
        }
        Ok(None)
    }

    /// Forgets the in-flight order of `account` (its certificate is in `receipts/`).
    /// Clears the journal entry of `order`'s signer (nothing for an order no key signs,
    /// which is never journaled).
    pub fn clear_pending_of(&self, order: &tally_core::Order) -> Result<(), WalletError> {
        match order.signer() {
            Some(signer) => self.clear_pending(&signer),
            None => Ok(()),
        }
    }

    /// Clears `account`'s journal entry.
    pub fn clear_pending(&self, account: &AccountId) -> Result<(), WalletError> {
        let path = self.pending_path(account);
        if let Some(batch) = &self.batch {
            return batch.remove(&path);
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(WalletError::Io { path, source: e }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn keys_survive_reopening_and_are_found_by_prefix_or_label() {
        let dir = tempfile::tempdir().unwrap();
        let mut wallet = Wallet::open(dir.path()).unwrap();
        let a = wallet.add_key(None, Some("alice".into())).unwrap();
        let b = wallet.add_key(None, None).unwrap();
        let wallet = Wallet::open(dir.path()).unwrap();
        assert_eq!(wallet.keys().len(), 2);
        assert_eq!(wallet.find(Some("alice")).unwrap().account, a.account);
        assert_eq!(
            wallet
                .find(Some(&b.account.to_hex()[..12]))
                .unwrap()
                .account,
            b.account
        );
        assert_eq!(wallet.find(None).unwrap().account, a.account);
        assert!(matches!(
            wallet.find(Some("zz")),
            Err(WalletError::UnknownAccount(_))
        ));
        assert_eq!(
            wallet
                .find(Some("alice"))
                .unwrap()
                .secret_key()
                .unwrap()
                .account(),
            a.account
        );
    }

    /// The receipt ids list exactly the receipts kept (what a reader that remembers the
    /// ones it read relies on), and each id reads back its own receipt; other files in the
    /// folder are not receipts.
    #[test]
    fn receipt_ids_name_exactly_the_receipts_kept() {
        let dir = tempfile::tempdir().unwrap();
        let wallet = Wallet::open(dir.path()).unwrap();
        assert!(wallet.receipt_ids().unwrap().is_empty());
        let network = tally_core::NetworkId(tally_core::sha256(&[b"receipt-ids"]));
        let payer = SecretKey::generate();
        let validator = SecretKey::generate();
        let mut kept = Vec::new();
        for sequence in 0..3 {
            let order = tally_core::SignedOrder::sign(
                tally_core::Order::Transfer(tally_core::Transfer {
                    sender: payer.account(),
                    recipient: SecretKey::generate().account(),
                    amount: tally_core::Amount::from_microcash(1),
                    sequence,
                }),
                &payer,
                &network,
            );
            let digest = order.order.digest(&network);
            let vote = tally_core::Vote::sign(&validator, &network, &digest);
            let certificate = Certificate::new(order, &network, vec![vote]);
            wallet.save_receipt(&certificate).unwrap();
            kept.push(certificate);
        }
        fs::write(dir.path().join("receipts").join("notes.txt"), "x").unwrap();
        let mut ids = wallet.receipt_ids().unwrap();
        ids.sort();
        let mut expected: Vec<Digest> = kept.iter().map(|c| c.checksum).collect();
        expected.sort();
        assert_eq!(ids, expected);
        for certificate in &kept {
            assert_eq!(
                wallet.receipt(&certificate.checksum).unwrap().as_ref(),
                Some(certificate)
            );
        }
    }

    #[test]
    fn any_full_account_resolves_and_the_wallets_own_by_label_or_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut wallet = Wallet::open(dir.path()).unwrap();
        let a = wallet.add_key(None, Some("alice".into())).unwrap();
        let stranger = SecretKey::generate().account();
        assert_eq!(
            wallet.resolve(Some(&stranger.to_hex())).unwrap(),
            stranger,
            "an account the wallet does not hold"
        );
        assert_eq!(wallet.resolve(Some("alice")).unwrap(), a.account);
        assert_eq!(wallet.resolve(None).unwrap(), a.account);
        assert_eq!(
            wallet.resolve(Some(&a.account.to_hex()[..10])).unwrap(),
            a.account
        );
        assert!(matches!(
            wallet.resolve(Some(&"g".repeat(64))),
            Err(WalletError::UnknownAccount(_))
        ));
    }
}
