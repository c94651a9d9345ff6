//! The validator's durable state in redb: accounts, vote locks, the certificate log and its
//! indexes. [`LedgerStore::commit`] writes one batch's [`Changes`] in one durable
//! transaction; nothing of a batch is acknowledged before it returns.

use std::collections::HashMap;
use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use tally_core::{AccountId, Amount, Certificate, LockSlot, NetworkContract, OrderDigest};

use crate::{AccountState, Changes, LockChange, Snapshot, Validator};

const ACCOUNTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accounts");
const LOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("locks");
const CERTIFICATES: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
const SENT: TableDefinition<&[u8], u64> = TableDefinition::new("sent");
const TOUCHING: TableDefinition<&[u8], ()> = TableDefinition::new("touching");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Genesis accounts written per transaction.
const GENESIS_CHUNK: usize = 65_536;

const META_SUPPLY: &str = "supply";
const META_LOG_LEN: &str = "log_len";
const META_NETWORK_CHECK: &str = "network_prefix";

/// A storage failure. The batch that hit it was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("this data folder belongs to another network")]
    WrongNetwork,
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn encode_account(state: &AccountState) -> [u8; 25] {
    let mut out = [0u8; 25];
    out[..16].copy_from_slice(&state.balance.to_le_bytes());
    out[16..24].copy_from_slice(&state.next_sequence.to_le_bytes());
    out[24] = u8::from(state.introduced);
    out
}

fn decode_account(bytes: &[u8]) -> Result<AccountState, StoreError> {
    let corrupt = || StoreError::Corrupt("account record".into());
    if bytes.len() != 25 {
        return Err(corrupt());
    }
    let balance = i128::from_le_bytes(bytes[..16].try_into().map_err(|_| corrupt())?);
    let next_sequence = u64::from_le_bytes(bytes[16..24].try_into().map_err(|_| corrupt())?);
    Ok(AccountState {
        balance,
        next_sequence,
        introduced: bytes[24] == 1,
    })
}

fn decode_account_id(bytes: &[u8]) -> Result<AccountId, StoreError> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("account key".into()))?;
    Ok(AccountId::from(array))
}

fn lock_key(slot: &LockSlot) -> [u8; 33] {
    let mut out = [0u8; 33];
    let account = match slot {
        LockSlot::Sequence(account, _) => {
            out[0] = 1;
            account
        }
        LockSlot::Intro(account) => {
            out[0] = 2;
            account
        }
    };
    out[1..].copy_from_slice(account.as_bytes());
    out
}

fn account_and_u64(account: &AccountId, n: u64) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..32].copy_from_slice(account.as_bytes());
    out[32..].copy_from_slice(&n.to_be_bytes());
    out
}

/// Certificates with their log positions, and where the next page starts if there is more.
pub type CertificatePage = (Vec<(u64, Certificate)>, Option<u64>);

/// The validator's database.
pub struct LedgerStore {
    db: Database,
}

impl LedgerStore {
    /// Opens (or creates) the database at `path` with a page cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
        let txn = db.begin_write()?;
        for table in [ACCOUNTS, LOCKS] {
            txn.open_table(table)?;
        }
        txn.open_table(CERTIFICATES)?;
        txn.open_table(SENT)?;
        txn.open_table(TOUCHING)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(LedgerStore { db })
    }

    /// Loads the ledger into `validator`, or on a fresh database funds the contract's
    /// genesis and stores it.
    pub fn load(
        &self,
        validator: &mut Validator,
        contract: &NetworkContract,
    ) -> Result<(), StoreError> {
        let network_prefix = u64::from_le_bytes(
            contract.id().as_bytes()[..8]
                .try_into()
                .map_err(|_| StoreError::WrongNetwork)?,
        );
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let stored_network = meta.get(META_NETWORK_CHECK)?.map(|v| v.value());
        match stored_network {
            None => {
                drop(meta);
                drop(txn);
                validator
                    .apply_genesis(contract)
                    .map_err(|e| StoreError::Corrupt(format!("genesis: {e}")))?;
                drop(validator.take_changes());
                // A genesis may fund millions of accounts: write them in key order (appends
                // are much cheaper than random inserts) and in bounded transactions, so the
                // memory a write transaction holds stays small. The network marker goes in
                // last: a crash before it makes the next start write the genesis again.
                let mut accounts: Vec<AccountId> = validator.accounts().map(|(a, _)| *a).collect();
                accounts.sort_unstable();
                for chunk in accounts.chunks(GENESIS_CHUNK) {
                    let snapshot = Snapshot {
                        accounts: chunk.iter().map(|a| (*a, validator.account(a))).collect(),
                        supply: validator.supply(),
                        ..Snapshot::default()
                    };
                    self.commit_with(&snapshot, &[], None)?;
                }
                let marker = Snapshot {
                    supply: validator.supply(),
                    ..Snapshot::default()
                };
                self.commit_with(&marker, &[], Some(network_prefix))?;
                return Ok(());
            }
            Some(prefix) if prefix != network_prefix => return Err(StoreError::WrongNetwork),
            Some(_) => {}
        }
        let supply = meta.get(META_SUPPLY)?.map(|v| v.value()).unwrap_or(0);
        let log_len = meta.get(META_LOG_LEN)?.map(|v| v.value()).unwrap_or(0);
        let accounts_table = txn.open_table(ACCOUNTS)?;
        let mut accounts = HashMap::with_capacity(accounts_table.len()? as usize);
        for row in accounts_table.iter()? {
            let (key, value) = row?;
            accounts.insert(
                decode_account_id(key.value())?,
                decode_account(value.value())?,
            );
        }
        let mut locks = Vec::new();
        for row in txn.open_table(LOCKS)?.iter()? {
            let (key, value) = row?;
            let (key, value) = (key.value(), value.value());
            if key.len() != 33 || value.len() != 40 {
                return Err(StoreError::Corrupt("lock record".into()));
            }
            let account = decode_account_id(&key[1..])?;
            let sequence = u64::from_le_bytes(
                value[..8]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("lock".into()))?,
            );
            let digest: [u8; 32] = value[8..]
                .try_into()
                .map_err(|_| StoreError::Corrupt("lock".into()))?;
            let slot = match key[0] {
                1 => LockSlot::Sequence(account, sequence),
                2 => LockSlot::Intro(account),
                _ => return Err(StoreError::Corrupt("lock kind".into())),
            };
            // A transfer lock whose order was since applied is history: its row is left
            // behind (clearing it would cost a write per certificate) and is overwritten
            // by the account's next lock.
            if let LockSlot::Sequence(account, sequence) = slot
                && accounts
                    .get(&account)
                    .is_some_and(|state| sequence < state.next_sequence)
            {
                continue;
            }
            locks.push((slot, OrderDigest::from(digest)));
        }
        validator.restore(accounts, locks, Amount::from_microcash(supply), log_len);
        Ok(())
    }

    /// Makes one batch durable: account states, lock changes, appended certificates and
    /// the given peer sync cursors, in one transaction.
    pub fn commit(
        &self,
        validator: &Validator,
        changes: &Changes,
        cursors: &[(AccountId, u64)],
    ) -> Result<(), StoreError> {
        let snapshot = Snapshot {
            accounts: changes
                .accounts
                .iter()
                .map(|account| (*account, validator.account(account)))
                .collect(),
            locks: changes.locks.clone(),
            certificates: changes.certificates.clone(),
            supply: validator.supply(),
            log_len: validator.log_len(),
        };
        self.commit_with(&snapshot, cursors, None)
    }

    /// Makes one batch durable from a [`Snapshot`], which lets the validator go on deciding
    /// the next batch meanwhile. Snapshots must be committed in the order they were taken.
    pub fn commit_snapshot(
        &self,
        snapshot: &Snapshot,
        cursors: &[(AccountId, u64)],
    ) -> Result<(), StoreError> {
        self.commit_with(snapshot, cursors, None)
    }

    fn commit_with(
        &self,
        changes: &Snapshot,
        cursors: &[(AccountId, u64)],
        network_prefix: Option<u64>,
    ) -> Result<(), StoreError> {
        if changes.is_empty() && cursors.is_empty() && network_prefix.is_none() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut accounts = txn.open_table(ACCOUNTS)?;
            for (account, state) in &changes.accounts {
                accounts.insert(
                    account.as_bytes().as_slice(),
                    encode_account(state).as_slice(),
                )?;
            }
            let mut locks = txn.open_table(LOCKS)?;
            for change in &changes.locks {
                match change {
                    LockChange::Set(slot, digest) => {
                        let sequence = match slot {
                            LockSlot::Sequence(_, s) => *s,
                            LockSlot::Intro(_) => 0,
                        };
                        let mut value = [0u8; 40];
                        value[..8].copy_from_slice(&sequence.to_le_bytes());
                        value[8..].copy_from_slice(digest.as_bytes());
                        locks.insert(lock_key(slot).as_slice(), value.as_slice())?;
                    }
                    // Stale transfer locks are skipped on load (see `load`).
                    LockChange::Clear(LockSlot::Sequence(..)) => {}
                    LockChange::Clear(slot) => {
                        locks.remove(lock_key(slot).as_slice())?;
                    }
                }
            }
            let mut certificates = txn.open_table(CERTIFICATES)?;
            let mut sent = txn.open_table(SENT)?;
            let mut touching = txn.open_table(TOUCHING)?;
            for (index, certificate) in &changes.certificates {
                let bytes = serde_json::to_vec(certificate)
                    .map_err(|e| StoreError::Database(e.to_string()))?;
                certificates.insert(*index, bytes.as_slice())?;
                match &certificate.order {
                    tally_core::Order::Transfer(t) => {
                        sent.insert(account_and_u64(&t.sender, t.sequence).as_slice(), *index)?;
                        touching.insert(account_and_u64(&t.sender, *index).as_slice(), ())?;
                        touching.insert(account_and_u64(&t.recipient, *index).as_slice(), ())?;
                    }
                    tally_core::Order::IntroKey(intro) => {
                        touching.insert(account_and_u64(&intro.account, *index).as_slice(), ())?;
                    }
                }
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(META_SUPPLY, changes.supply.microcash())?;
            meta.insert(META_LOG_LEN, changes.log_len)?;
            if let Some(prefix) = network_prefix {
                meta.insert(META_NETWORK_CHECK, prefix)?;
            }
            for (peer, cursor) in cursors {
                meta.insert(cursor_key(peer).as_str(), *cursor)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Where syncing from `peer` should resume.
    pub fn cursor(&self, peer: &AccountId) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta
            .get(cursor_key(peer).as_str())?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// Certificates at log positions `since..`, at most `limit`; and where the next page
    /// starts if there are more.
    pub fn certificates_since(
        &self,
        since: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CERTIFICATES)?;
        let mut out = Vec::new();
        for row in table.range(since..)? {
            let (index, bytes) = row?;
            if out.len() == limit {
                return Ok((out, Some(index.value())));
            }
            out.push((index.value(), parse_certificate(bytes.value())?));
        }
        Ok((out, None))
    }

    /// Certificates of the orders `account` signed from sequence `from`, at most `limit`.
    pub fn sent(
        &self,
        account: &AccountId,
        from: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError> {
        let txn = self.db.begin_read()?;
        let sent = txn.open_table(SENT)?;
        let certificates = txn.open_table(CERTIFICATES)?;
        let start = account_and_u64(account, from);
        let end = account_and_u64(account, u64::MAX);
        let mut out = Vec::new();
        for row in sent.range(start.as_slice()..=end.as_slice())? {
            let (key, index) = row?;
            if out.len() == limit {
                let sequence = u64::from_be_bytes(
                    key.value()[32..]
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("sent".into()))?,
                );
                return Ok((out, Some(sequence)));
            }
            let index = index.value();
            let bytes = certificates
                .get(index)?
                .ok_or_else(|| StoreError::Corrupt(format!("sent index points at {index}")))?;
            out.push((index, parse_certificate(bytes.value())?));
        }
        Ok((out, None))
    }

    /// Certificates that moved `account`'s balance, at log positions `since..`.
    pub fn touching(
        &self,
        account: &AccountId,
        since: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError> {
        let txn = self.db.begin_read()?;
        let touching = txn.open_table(TOUCHING)?;
        let certificates = txn.open_table(CERTIFICATES)?;
        let start = account_and_u64(account, since);
        let end = account_and_u64(account, u64::MAX);
        let mut out = Vec::new();
        for row in touching.range(start.as_slice()..=end.as_slice())? {
            let (key, _) = row?;
            let index = u64::from_be_bytes(
                key.value()[32..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("touching".into()))?,
            );
            if out.len() == limit {
                return Ok((out, Some(index)));
            }
            let bytes = certificates
                .get(index)?
                .ok_or_else(|| StoreError::Corrupt(format!("touching index points at {index}")))?;
            out.push((index, parse_certificate(bytes.value())?));
        }
        Ok((out, None))
    }

    /// Accounts after `after` in key order, at most `limit`.
    pub fn accounts_page(
        &self,
        after: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<(AccountId, AccountState)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        let mut out = Vec::with_capacity(limit.min(1024));
        let rows = match after {
            Some(after) => {
                let mut rows = table.range(after.as_bytes().as_slice()..)?;
                // Skip `after` itself if it is present.
                let mut first = Vec::new();
                if let Some(row) = rows.next() {
                    let (key, value) = row?;
                    if key.value() != after.as_bytes().as_slice() {
                        first.push((
                            decode_account_id(key.value())?,
                            decode_account(value.value())?,
                        ));
                    }
                }
                out.extend(first);
                rows
            }
            None => table.range::<&[u8]>(..)?,
        };
        for row in rows {
            if out.len() >= limit {
                break;
            }
            let (key, value) = row?;
            out.push((
                decode_account_id(key.value())?,
                decode_account(value.value())?,
            ));
        }
        out.truncate(limit);
        Ok(out)
    }
}

fn cursor_key(peer: &AccountId) -> String {
    format!("cursor/{peer}")
}

fn parse_certificate(bytes: &[u8]) -> Result<Certificate, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("certificate: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tally_core::{
        Allocation, Mode, Order, SecretKey, SignedOrder, Transfer, ValidatorInfo, Vote,
    };

    #[test]
    fn a_committed_batch_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<SecretKey> = (0..4u8)
            .map(|i| SecretKey::from_bytes([i + 1; 32]))
            .collect();
        let alice = SecretKey::from_bytes([0xa1; 32]);
        let bob = SecretKey::from_bytes([0xb0; 32]);
        let contract = NetworkContract {
            name: "store".into(),
            mode: Mode::Quorum,
            unit: "cash".into(),
            faucet: Amount::from_microcash(10),
            intro_pow_bits: 0,
            validators: keys
                .iter()
                .map(|k| ValidatorInfo {
                    key: k.account(),
                    address: "127.0.0.1:1".into(),
                })
                .collect(),
            tracker: None,
            genesis: vec![Allocation {
                account: alice.account(),
                amount: Amount::from_microcash(1000),
            }],
            pow: None,
        };
        let net = contract.id();
        let path = dir.path().join("ledger.redb");
        let digest_locked;
        {
            let store = LedgerStore::open(&path, 1 << 20).unwrap();
            let mut v = Validator::new(keys[0].clone(), &contract).unwrap();
            store.load(&mut v, &contract).unwrap();
            let order = |seq, amount| {
                SignedOrder::sign(
                    Order::Transfer(Transfer {
                        sender: alice.account(),
                        recipient: bob.account(),
                        amount: Amount::from_microcash(amount),
                        sequence: seq,
                    }),
                    &alice,
                    &net,
                )
            };
            let first = order(0, 300);
            let votes: Vec<Vote> = keys[..3]
                .iter()
                .map(|k| Vote::sign(k, &net, &first.order.digest(&net)))
                .collect();
            v.handle_order(&first, true).unwrap();
            v.handle_certificate(&Certificate::new(first, &net, votes), true)
                .unwrap();
            let second = order(1, 5);
            v.handle_order(&second, true).unwrap();
            digest_locked = second.order.digest(&net);
            let changes = v.take_changes();
            store.commit(&v, &changes, &[(bob.account(), 7)]).unwrap();
        }
        let store = LedgerStore::open(&path, 1 << 20).unwrap();
        let mut v = Validator::new(keys[0].clone(), &contract).unwrap();
        store.load(&mut v, &contract).unwrap();
        assert_eq!(v.account(&alice.account()).balance, 700);
        assert_eq!(v.account(&bob.account()).balance, 300);
        assert_eq!(v.log_len(), 1);
        assert_eq!(v.supply(), Amount::from_microcash(1000));
        assert_eq!(store.cursor(&bob.account()).unwrap(), 7);
        // The vote lock for sequence 1 survived: a conflicting order gets no vote.
        let conflicting = SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: alice.account(),
                recipient: bob.account(),
                amount: Amount::from_microcash(6),
                sequence: 1,
            }),
            &alice,
            &net,
        );
        assert_eq!(
            v.handle_order(&conflicting, true),
            Err(crate::LedgerError::Conflict {
                voted: digest_locked
            })
        );
        let (log, next) = store.certificates_since(0, 10).unwrap();
        assert_eq!((log.len(), next), (1, None));
        assert_eq!(store.sent(&alice.account(), 0, 10).unwrap().0.len(), 1);
        assert_eq!(store.touching(&bob.account(), 0, 10).unwrap().0.len(), 1);
        let page = store.accounts_page(None, 1).unwrap();
        assert_eq!(page.len(), 1);
        let rest = store.accounts_page(Some(&page[0].0), 10).unwrap();
        assert_eq!(rest.len(), 1);
        assert_ne!(rest[0].0, page[0].0);
    }

    #[test]
    fn a_lock_whose_certificate_was_applied_is_not_restored() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<SecretKey> = (0..4u8)
            .map(|i| SecretKey::from_bytes([i + 1; 32]))
            .collect();
        let alice = SecretKey::from_bytes([0xa1; 32]);
        let bob = SecretKey::from_bytes([0xb0; 32]);
        let contract = NetworkContract {
            name: "locks".into(),
            mode: Mode::Quorum,
            unit: "cash".into(),
            faucet: Amount::from_microcash(10),
            intro_pow_bits: 0,
            validators: keys
                .iter()
                .map(|k| ValidatorInfo {
                    key: k.account(),
                    address: "127.0.0.1:1".into(),
                })
                .collect(),
            tracker: None,
            genesis: vec![Allocation {
                account: alice.account(),
                amount: Amount::from_microcash(1000),
            }],
            pow: None,
        };
        let net = contract.id();
        let path = dir.path().join("ledger.redb");
        let order = |seq, amount| {
            SignedOrder::sign(
                Order::Transfer(Transfer {
                    sender: alice.account(),
                    recipient: bob.account(),
                    amount: Amount::from_microcash(amount),
                    sequence: seq,
                }),
                &alice,
                &net,
            )
        };
        {
            let store = LedgerStore::open(&path, 1 << 20).unwrap();
            let mut v = Validator::new(keys[0].clone(), &contract).unwrap();
            store.load(&mut v, &contract).unwrap();
            // The vote and the certificate in separate batches, as under load.
            let first = order(0, 300);
            v.handle_order(&first, true).unwrap();
            store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
            let votes: Vec<Vote> = keys[..3]
                .iter()
                .map(|k| Vote::sign(k, &net, &first.order.digest(&net)))
                .collect();
            v.handle_certificate(&Certificate::new(first, &net, votes), true)
                .unwrap();
            store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        }
        let store = LedgerStore::open(&path, 1 << 20).unwrap();
        let mut v = Validator::new(keys[0].clone(), &contract).unwrap();
        store.load(&mut v, &contract).unwrap();
        assert_eq!(v.account(&alice.account()).next_sequence, 1);
        // The stale row for sequence 0 neither blocks sequence 1 nor counts as a vote.
        assert!(!v.has_voted_for(&order(0, 300).order, &order(0, 300).order.digest(&net)));
        assert!(v.handle_order(&order(1, 5), true).is_ok());
    }
}
