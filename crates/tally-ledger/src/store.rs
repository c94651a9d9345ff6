//! The validator's durable state in redb: accounts, vote locks, the certificate log and its
//! indexes.
//!
//! A batch is made durable by [`LedgerStore::commit_snapshot`] in one transaction that only
//! **appends**: the batch's certificates to the certificate log (keyed by log position) and
//! its new vote locks to the vote journal (one row per batch), plus a few `meta` counters.
//! Nothing of a batch is acknowledged before it returns. Appends touch only the right edge
//! of two B-trees, so a batch costs about what its bytes cost to write, however many
//! accounts the ledger holds.
//!
//! The random-access tables (account states, vote locks, and the `sent` and `touching`
//! indexes of the log) are brought up to date by a **checkpoint**: every
//! [`DEFAULT_CHECKPOINT_EVERY`] certificates or vote records, one transaction writes every
//! change since the previous checkpoint in key order (each B-tree page is then rewritten
//! once per checkpoint instead of once per batch), empties the vote journal and records the
//! log position it covers. Until then those changes live in memory ([`Pending`]) and the
//! readers here merge them in.
//!
//! Recovery: the durable state is always "the tables as of the last checkpoint, plus the
//! log after it, plus the vote journal". [`LedgerStore::load`] re-applies the log's tail to
//! the checkpointed accounts (certificates are deterministic state changes) and re-reads
//! the journal's votes, so a crash at any point — inside a batch, between batches or
//! inside a checkpoint — loses nothing that was acknowledged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use tally_core::{
    AccountId, Amount, Certificate, IntroKey, LockSlot, NetworkContract, Order, OrderDigest,
    Signature, Transfer, Vote,
};

use crate::{AccountState, Changes, LockChange, Snapshot, Validator};

const ACCOUNTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accounts");
const LOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("locks");
const CERTIFICATES: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
const SENT: TableDefinition<&[u8], u64> = TableDefinition::new("sent");
const TOUCHING: TableDefinition<&[u8], ()> = TableDefinition::new("touching");
/// Vote locks given since the last checkpoint: batch number → 73-byte lock records.
const VOTES: TableDefinition<u64, &[u8]> = TableDefinition::new("votes");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Genesis accounts written per transaction.
const GENESIS_CHUNK: usize = 65_536;

/// Certificates between checkpoints (or twice as many vote records, for votes no
/// certificate followed). A checkpoint rewrites about every page its tables' changes land
/// on, which costs nearly as much for 16,384 certificates as for 65,536 once the tables are
/// larger than that (measured: 16,384 doubled the checkpoint time per transfer at 100,000
/// accounts). The bound keeps the pending changes to about 25 MB and the log tail a restart
/// re-applies to about a second.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 65_536;

const META_SUPPLY: &str = "supply";
const META_LOG_LEN: &str = "log_len";
const META_NETWORK_CHECK: &str = "network_prefix";
/// The log position up to which `accounts`, `locks`, `sent` and `touching` are current.
/// Absent in data folders written before checkpoints existed: those tables were written
/// with every batch, so they cover the whole log.
const META_CHECKPOINT: &str = "checkpoint";
/// The supply as of the checkpoint (intros after it mint again when the tail is re-applied).
const META_CHECKPOINT_SUPPLY: &str = "checkpoint_supply";

/// First byte of a binary certificate record (a JSON record starts with `{`).
const CERT_FORMAT_V1: u8 = 1;
const LOCK_RECORD: usize = 33 + 40;

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

fn lock_value(slot: &LockSlot, digest: &OrderDigest) -> [u8; 40] {
    let sequence = match slot {
        LockSlot::Sequence(_, s) => *s,
        LockSlot::Intro(_) => 0,
    };
    let mut value = [0u8; 40];
    value[..8].copy_from_slice(&sequence.to_le_bytes());
    value[8..].copy_from_slice(digest.as_bytes());
    value
}

fn decode_lock(key: &[u8], value: &[u8]) -> Result<(LockSlot, OrderDigest), StoreError> {
    let corrupt = || StoreError::Corrupt("lock record".into());
    if key.len() != 33 || value.len() != 40 {
        return Err(corrupt());
    }
    let account = decode_account_id(&key[1..])?;
    let sequence = u64::from_le_bytes(value[..8].try_into().map_err(|_| corrupt())?);
    let digest: [u8; 32] = value[8..].try_into().map_err(|_| corrupt())?;
    let slot = match key[0] {
        1 => LockSlot::Sequence(account, sequence),
        2 => LockSlot::Intro(account),
        _ => return Err(StoreError::Corrupt("lock kind".into())),
    };
    Ok((slot, OrderDigest::from(digest)))
}

fn account_and_u64(account: &AccountId, n: u64) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..32].copy_from_slice(account.as_bytes());
    out[32..].copy_from_slice(&n.to_be_bytes());
    out
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, StoreError> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| StoreError::Corrupt("short record".into()))
}

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], StoreError> {
    bytes
        .get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt("short record".into()))
}

/// The certificate log's record: `1 ‖ kind ‖ order fields ‖ signature ‖ checksum ‖ n ‖ n ×
/// (validator ‖ vote signature)`, integers little-endian as in the signing bytes. About
/// half the size of the JSON and an order of magnitude cheaper to write and read.
fn encode_certificate(certificate: &Certificate, out: &mut Vec<u8>) {
    out.push(CERT_FORMAT_V1);
    match &certificate.order {
        Order::IntroKey(intro) => {
            out.push(1);
            out.extend_from_slice(intro.account.as_bytes());
            out.extend_from_slice(&intro.proof_of_work.to_le_bytes());
        }
        Order::Transfer(t) => {
            out.push(2);
            out.extend_from_slice(t.sender.as_bytes());
            out.extend_from_slice(t.recipient.as_bytes());
            out.extend_from_slice(&t.amount.microcash().to_le_bytes());
            out.extend_from_slice(&t.sequence.to_le_bytes());
        }
    }
    out.extend_from_slice(certificate.signature.as_bytes());
    out.extend_from_slice(certificate.checksum.as_bytes());
    // A certificate holds at most one vote per committee member; a committee of more than
    // 255 would need a wider count (the JSON form below still stores it).
    out.push(certificate.votes.len() as u8);
    for vote in &certificate.votes {
        out.extend_from_slice(vote.validator.as_bytes());
        out.extend_from_slice(vote.signature.as_bytes());
    }
}

/// The log record of `certificate` into `out`: binary, or JSON for a committee too large
/// for the binary form's vote count.
fn certificate_record(certificate: &Certificate, out: &mut Vec<u8>) -> Result<(), StoreError> {
    out.clear();
    if certificate.votes.len() > usize::from(u8::MAX) {
        serde_json::to_writer(out, certificate).map_err(|e| StoreError::Database(e.to_string()))
    } else {
        encode_certificate(certificate, out);
        Ok(())
    }
}

fn parse_certificate(bytes: &[u8]) -> Result<Certificate, StoreError> {
    match bytes.first() {
        Some(&CERT_FORMAT_V1) => decode_certificate(bytes),
        // Records written before the binary form, and oversized committees.
        _ => serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(format!("certificate: {e}"))),
    }
}

fn decode_certificate(bytes: &[u8]) -> Result<Certificate, StoreError> {
    let kind = *bytes
        .get(1)
        .ok_or_else(|| StoreError::Corrupt("short certificate".into()))?;
    let (order, mut at) = match kind {
        1 => (
            Order::IntroKey(IntroKey {
                account: AccountId::from(array_at::<32>(bytes, 2)?),
                proof_of_work: u64_at(bytes, 34)?,
            }),
            42,
        ),
        2 => (
            Order::Transfer(Transfer {
                sender: AccountId::from(array_at::<32>(bytes, 2)?),
                recipient: AccountId::from(array_at::<32>(bytes, 34)?),
                amount: Amount::from_microcash(u64_at(bytes, 66)?),
                sequence: u64_at(bytes, 74)?,
            }),
            82,
        ),
        _ => return Err(StoreError::Corrupt("certificate kind".into())),
    };
    let signature = Signature::from(array_at::<64>(bytes, at)?);
    let checksum = OrderDigest::from(array_at::<32>(bytes, at + 64)?);
    at += 96;
    let count = usize::from(
        *bytes
            .get(at)
            .ok_or_else(|| StoreError::Corrupt("short certificate".into()))?,
    );
    at += 1;
    if bytes.len() != at + 96 * count {
        return Err(StoreError::Corrupt("certificate length".into()));
    }
    let mut votes = Vec::with_capacity(count);
    for _ in 0..count {
        votes.push(Vote {
            validator: AccountId::from(array_at::<32>(bytes, at)?),
            signature: Signature::from(array_at::<64>(bytes, at + 32)?),
        });
        at += 96;
    }
    Ok(Certificate {
        order,
        signature,
        checksum,
        votes,
    })
}

/// Certificates with their log positions, and where the next page starts if there is more.
pub type CertificatePage = (Vec<(u64, Certificate)>, Option<u64>);

/// What the durable tables do not hold yet: every change since the last checkpoint, as of
/// the last committed batch. The same facts are durable in the log's tail and the vote
/// journal; this copy serves reads and feeds the next checkpoint.
#[derive(Default)]
struct Pending {
    /// Log position up to which the tables are current (the last checkpoint).
    base: u64,
    /// The log length and supply after the last committed batch.
    log_len: u64,
    supply: u64,
    /// Changed accounts and their latest state.
    accounts: BTreeMap<AccountId, AccountState>,
    /// Lock rows to write (`Some`) or delete (`None`).
    locks: BTreeMap<[u8; 33], Option<[u8; 40]>>,
    /// `sent` rows: account ‖ sequence → log position.
    sent: BTreeMap<[u8; 40], u64>,
    /// `touching` rows: account ‖ log position.
    touching: BTreeSet<[u8; 40]>,
    /// Vote records journaled since the checkpoint.
    votes: u64,
    /// The next vote journal row.
    next_vote_row: u64,
}

impl Pending {
    /// Records what a batch's certificates add to the indexes (and the intro locks they
    /// close).
    fn index(&mut self, position: u64, certificate: &Certificate) {
        match &certificate.order {
            Order::Transfer(t) => {
                self.sent
                    .insert(account_and_u64(&t.sender, t.sequence), position);
                self.touching.insert(account_and_u64(&t.sender, position));
                self.touching
                    .insert(account_and_u64(&t.recipient, position));
            }
            Order::IntroKey(intro) => {
                self.touching
                    .insert(account_and_u64(&intro.account, position));
            }
        }
    }

    fn lock(&mut self, change: &LockChange) {
        match change {
            LockChange::Set(slot, digest) => {
                self.locks
                    .insert(lock_key(slot), Some(lock_value(slot, digest)));
            }
            // A transfer lock's row is left behind when its certificate is applied (clearing
            // it would cost a write per certificate): it is skipped on load, since its
            // sequence is below the account's next one, and overwritten by the account's
            // next lock.
            LockChange::Clear(LockSlot::Sequence(..)) => {}
            LockChange::Clear(slot) => {
                self.locks.insert(lock_key(slot), None);
            }
        }
    }

    /// Whether a transfer lock row is below its account's next sequence as of the last
    /// committed batch (its certificate is applied).
    fn lock_is_history(&self, key: &[u8; 33], value: &[u8; 40]) -> bool {
        if key[0] != 1 {
            return false;
        }
        let (Ok(account), Ok(sequence)) = (decode_account_id(&key[1..]), u64_at(value, 0)) else {
            return false;
        };
        self.accounts
            .get(&account)
            .is_some_and(|state| sequence < state.next_sequence)
    }

    fn due(&self, every: u64) -> bool {
        self.log_len.saturating_sub(self.base) >= every || self.votes >= every.saturating_mul(2)
    }
}

/// The validator's database.
pub struct LedgerStore {
    db: Database,
    /// Serialises writers: a batch's transaction and its `pending` update go together.
    writer: Mutex<()>,
    pending: Mutex<Pending>,
    checkpoint_every: u64,
    checkpoints: AtomicU64,
    checkpoint_micros: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is only changed after a successful write; a panic elsewhere leaves
    // it consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
        txn.open_table(VOTES)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(LedgerStore {
            db,
            writer: Mutex::new(()),
            pending: Mutex::new(Pending::default()),
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            checkpoints: AtomicU64::new(0),
            checkpoint_micros: AtomicU64::new(0),
        })
    }

    /// Sets how many certificates accumulate between checkpoints (see
    /// [`DEFAULT_CHECKPOINT_EVERY`]):
    /// fewer means less memory and a shorter replay at start, more means cheaper batches.
    pub fn with_checkpoint_every(mut self, every: u64) -> Self {
        self.checkpoint_every = every.max(1);
        self
    }

    /// Checkpoints written since the store was opened, and the time they took in all (µs):
    /// the deferred part of the batches' cost, for benchmarks and the control API.
    pub fn checkpoints(&self) -> (u64, u64) {
        (
            self.checkpoints.load(Ordering::Relaxed),
            self.checkpoint_micros.load(Ordering::Relaxed),
        )
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
                return self.write_genesis(validator, contract, network_prefix);
            }
            Some(prefix) if prefix != network_prefix => return Err(StoreError::WrongNetwork),
            Some(_) => {}
        }
        let get = |key: &str| -> Result<Option<u64>, StoreError> {
            Ok(meta.get(key)?.map(|v| v.value()))
        };
        let supply = get(META_SUPPLY)?.unwrap_or(0);
        let log_len = get(META_LOG_LEN)?.unwrap_or(0);
        let recorded_base = get(META_CHECKPOINT)?;
        let base = recorded_base.unwrap_or(log_len);
        let base_supply = get(META_CHECKPOINT_SUPPLY)?.unwrap_or(supply);
        if base > log_len {
            return Err(StoreError::Corrupt("checkpoint beyond the log".into()));
        }

        let accounts_table = txn.open_table(ACCOUNTS)?;
        let mut accounts = HashMap::with_capacity(accounts_table.len()? as usize);
        for row in accounts_table.iter()? {
            let (key, value) = row?;
            accounts.insert(
                decode_account_id(key.value())?,
                decode_account(value.value())?,
            );
        }
        drop(accounts_table);
        validator.restore(
            accounts,
            Vec::new(),
            Amount::from_microcash(base_supply),
            base,
        );

        let mut pending = Pending {
            base,
            log_len,
            supply,
            ..Pending::default()
        };
        // Votes given since the checkpoint, in the order they were given.
        for row in txn.open_table(VOTES)?.iter()? {
            let (row, records) = row?;
            let records = records.value();
            if records.len() % LOCK_RECORD != 0 {
                return Err(StoreError::Corrupt("vote journal".into()));
            }
            for record in records.chunks_exact(LOCK_RECORD) {
                let (slot, digest) = decode_lock(&record[..33], &record[33..])?;
                pending.lock(&LockChange::Set(slot, digest));
                pending.votes += 1;
            }
            pending.next_vote_row = row.value() + 1;
        }
        // The log after the checkpoint: re-apply it (a certificate's effect depends only on
        // the state before it, and these were checked before they were logged).
        let certificates = txn.open_table(CERTIFICATES)?;
        let mut position = base;
        for row in certificates.range(base..log_len)? {
            let (index, bytes) = row?;
            if index.value() != position {
                return Err(StoreError::Corrupt(format!(
                    "certificate {position} is missing"
                )));
            }
            let certificate = parse_certificate(bytes.value())?;
            match validator.handle_certificate(&certificate, true) {
                Ok(applied) if applied.new => {}
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "certificate {position} does not re-apply: {other:?}"
                    )));
                }
            }
            pending.index(position, &certificate);
            if let Order::IntroKey(intro) = &certificate.order {
                pending.lock(&LockChange::Clear(LockSlot::Intro(intro.account)));
            }
            position += 1;
            // Keep memory flat while re-applying a long tail.
            if position % 4096 == 0 {
                let changes = validator.take_changes();
                remember_accounts(&mut pending, validator, &changes);
            }
        }
        if position != log_len {
            return Err(StoreError::Corrupt(format!(
                "the log ends at {position}, not {log_len}"
            )));
        }
        let changes = validator.take_changes();
        remember_accounts(&mut pending, validator, &changes);
        if validator.supply().microcash() != supply || validator.log_len() != log_len {
            return Err(StoreError::Corrupt(
                "the log does not re-apply to the recorded supply".into(),
            ));
        }

        // Locks: the checkpointed rows, then the journal's (newer) ones. A transfer lock whose
        // order was since applied, and an intro lock of an introduced key, are history.
        let mut locks: BTreeMap<[u8; 33], [u8; 40]> = BTreeMap::new();
        for row in txn.open_table(LOCKS)?.iter()? {
            let (key, value) = row?;
            let key: [u8; 33] = key
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("lock key".into()))?;
            let value: [u8; 40] = value
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("lock record".into()))?;
            locks.insert(key, value);
        }
        for (key, value) in &pending.locks {
            match value {
                Some(value) => locks.insert(*key, *value),
                None => locks.remove(key),
            };
        }
        let mut live = Vec::new();
        for (key, value) in &locks {
            let (slot, digest) = decode_lock(key, value)?;
            let stale = match slot {
                LockSlot::Sequence(account, sequence) => {
                    sequence < validator.account(&account).next_sequence
                }
                LockSlot::Intro(account) => validator.account(&account).introduced,
            };
            if !stale {
                live.push((slot, digest));
            }
        }
        validator.restore_locks(live);
        drop(txn);
        if recorded_base.is_none() {
            // A data folder from before checkpoints: its tables cover the whole log. Say so,
            // so that batches appended from now on are re-applied after a crash.
            let txn = self.db.begin_write()?;
            {
                let mut meta = txn.open_table(META)?;
                meta.insert(META_CHECKPOINT, base)?;
                meta.insert(META_CHECKPOINT_SUPPLY, base_supply)?;
            }
            txn.commit()?;
        }
        *lock(&self.pending) = pending;
        Ok(())
    }

    /// Funds a fresh database from the contract's genesis.
    fn write_genesis(
        &self,
        validator: &mut Validator,
        contract: &NetworkContract,
        network_prefix: u64,
    ) -> Result<(), StoreError> {
        validator
            .apply_genesis(contract)
            .map_err(|e| StoreError::Corrupt(format!("genesis: {e}")))?;
        drop(validator.take_changes());
        // A genesis may fund millions of accounts: write them in key order (appends are much
        // cheaper than random inserts) and in bounded transactions, so the memory a write
        // transaction holds stays small. The network marker goes in last: a crash before it
        // makes the next start write the genesis again.
        let mut accounts: Vec<AccountId> = validator.accounts().map(|(a, _)| *a).collect();
        accounts.sort_unstable();
        for chunk in accounts.chunks(GENESIS_CHUNK) {
            let txn = self.db.begin_write()?;
            {
                let mut table = txn.open_table(ACCOUNTS)?;
                for account in chunk {
                    table.insert(
                        account.as_bytes().as_slice(),
                        encode_account(&validator.account(account)).as_slice(),
                    )?;
                }
            }
            txn.commit()?;
        }
        let supply = validator.supply().microcash();
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(META_SUPPLY, supply)?;
            meta.insert(META_LOG_LEN, 0)?;
            meta.insert(META_CHECKPOINT, 0)?;
            meta.insert(META_CHECKPOINT_SUPPLY, supply)?;
            meta.insert(META_NETWORK_CHECK, network_prefix)?;
        }
        txn.commit()?;
        *lock(&self.pending) = Pending {
            supply,
            ..Pending::default()
        };
        Ok(())
    }

    /// Makes one batch durable (account states, lock changes, appended certificates and
    /// the given peer sync cursors) and checkpoints if one is due.
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
        self.commit_snapshot(&snapshot, cursors)?;
        self.checkpoint_if_due()
    }

    /// Makes one batch durable from a [`Snapshot`], which lets the validator go on deciding
    /// the next batch meanwhile. Snapshots must be committed in the order they were taken.
    /// Appends only; call [`Self::checkpoint_if_due`] after the batch's answers are out.
    pub fn commit_snapshot(
        &self,
        snapshot: &Snapshot,
        cursors: &[(AccountId, u64)],
    ) -> Result<(), StoreError> {
        if snapshot.is_empty() && cursors.is_empty() {
            return Ok(());
        }
        let _writer = lock(&self.writer);
        let next_vote_row = lock(&self.pending).next_vote_row;
        let mut votes = Vec::new();
        for change in &snapshot.locks {
            if let LockChange::Set(slot, digest) = change {
                votes.extend_from_slice(&lock_key(slot));
                votes.extend_from_slice(&lock_value(slot, digest));
            }
        }
        let txn = self.db.begin_write()?;
        {
            let mut certificates = txn.open_table(CERTIFICATES)?;
            let mut record = Vec::with_capacity(512);
            for (index, certificate) in &snapshot.certificates {
                certificate_record(certificate, &mut record)?;
                certificates.insert(*index, record.as_slice())?;
            }
            if !votes.is_empty() {
                txn.open_table(VOTES)?
                    .insert(next_vote_row, votes.as_slice())?;
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(META_SUPPLY, snapshot.supply.microcash())?;
            meta.insert(META_LOG_LEN, snapshot.log_len)?;
            for (peer, cursor) in cursors {
                meta.insert(cursor_key(peer).as_str(), *cursor)?;
            }
        }
        txn.commit()?;
        let mut pending = lock(&self.pending);
        for (account, state) in &snapshot.accounts {
            pending.accounts.insert(*account, *state);
        }
        for change in &snapshot.locks {
            pending.lock(change);
        }
        for (index, certificate) in &snapshot.certificates {
            pending.index(*index, certificate);
        }
        if !votes.is_empty() {
            pending.votes += (votes.len() / LOCK_RECORD) as u64;
            pending.next_vote_row += 1;
        }
        pending.log_len = snapshot.log_len;
        pending.supply = snapshot.supply.microcash();
        Ok(())
    }

    /// Writes a checkpoint if enough has accumulated since the last one.
    pub fn checkpoint_if_due(&self) -> Result<(), StoreError> {
        if lock(&self.pending).due(self.checkpoint_every) {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Brings the account, lock and index tables up to the last committed batch in one
    /// transaction, in key order, and empties the vote journal. Readers of the indexes wait
    /// while it runs.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let _writer = lock(&self.writer);
        let mut pending = lock(&self.pending);
        if pending.base == pending.log_len && pending.votes == 0 && pending.locks.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let txn = self.db.begin_write()?;
        {
            let mut accounts = txn.open_table(ACCOUNTS)?;
            for (account, state) in &pending.accounts {
                accounts.insert(
                    account.as_bytes().as_slice(),
                    encode_account(state).as_slice(),
                )?;
            }
            drop(accounts);
            let mut locks = txn.open_table(LOCKS)?;
            for (key, value) in &pending.locks {
                match value {
                    // Most transfer locks are history by now (their certificate followed in
                    // a later batch): such a row would be skipped on load anyway, so it is
                    // not written. Any older row of that account is stale as well.
                    Some(value) if pending.lock_is_history(key, value) => None,
                    Some(value) => locks.insert(key.as_slice(), value.as_slice())?,
                    None => locks.remove(key.as_slice())?,
                };
            }
            drop(locks);
            let mut sent = txn.open_table(SENT)?;
            for (key, position) in &pending.sent {
                sent.insert(key.as_slice(), *position)?;
            }
            drop(sent);
            let mut touching = txn.open_table(TOUCHING)?;
            for key in &pending.touching {
                touching.insert(key.as_slice(), ())?;
            }
            drop(touching);
            txn.delete_table(VOTES)?;
            txn.open_table(VOTES)?;
            let mut meta = txn.open_table(META)?;
            meta.insert(META_CHECKPOINT, pending.log_len)?;
            meta.insert(META_CHECKPOINT_SUPPLY, pending.supply)?;
        }
        txn.commit()?;
        let (certificates, accounts) = (pending.log_len - pending.base, pending.accounts.len());
        *pending = Pending {
            base: pending.log_len,
            log_len: pending.log_len,
            supply: pending.supply,
            ..Pending::default()
        };
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.checkpoint_micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        tracing::debug!(
            certificates,
            accounts,
            took = ?started.elapsed(),
            "checkpoint written"
        );
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
        let start = account_and_u64(account, from);
        let end = account_and_u64(account, u64::MAX);
        // The pending rows first (a copy: the lock is not held while reading the disk), then
        // the table's rows below the checkpoint they were taken at. A sender's sequence grows
        // with the log position, so the table's rows all come first.
        let (base, tail): (u64, Vec<(u64, u64)>) = {
            let pending = lock(&self.pending);
            let tail = pending
                .sent
                .range(start..=end)
                .take(limit + 1)
                .map(|(key, position)| Ok((be_u64(&key[32..])?, *position)))
                .collect::<Result<_, StoreError>>()?;
            (pending.base, tail)
        };
        let txn = self.db.begin_read()?;
        let sent = txn.open_table(SENT)?;
        let mut rows: Vec<(u64, u64)> = Vec::new();
        for row in sent.range(start.as_slice()..=end.as_slice())? {
            if rows.len() > limit {
                break;
            }
            let (key, position) = row?;
            let position = position.value();
            if position < base {
                rows.push((be_u64(&key.value()[32..])?, position));
            }
        }
        rows.extend(tail);
        let certificates = txn.open_table(CERTIFICATES)?;
        page(&certificates, rows, limit)
    }

    /// Certificates that moved `account`'s balance, at log positions `since..`.
    pub fn touching(
        &self,
        account: &AccountId,
        since: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError> {
        let start = account_and_u64(account, since);
        let end = account_and_u64(account, u64::MAX);
        let (base, tail): (u64, Vec<(u64, u64)>) = {
            let pending = lock(&self.pending);
            let tail = pending
                .touching
                .range(start..=end)
                .take(limit + 1)
                .map(|key| be_u64(&key[32..]).map(|position| (position, position)))
                .collect::<Result<_, StoreError>>()?;
            (pending.base, tail)
        };
        let txn = self.db.begin_read()?;
        let touching = txn.open_table(TOUCHING)?;
        let mut rows: Vec<(u64, u64)> = Vec::new();
        for row in touching.range(start.as_slice()..=end.as_slice())? {
            if rows.len() > limit {
                break;
            }
            let (key, _) = row?;
            let position = be_u64(&key.value()[32..])?;
            if position < base {
                rows.push((position, position));
            }
        }
        rows.extend(tail);
        let certificates = txn.open_table(CERTIFICATES)?;
        page(&certificates, rows, limit)
    }

    /// Accounts after `after` in key order, at most `limit`, as of the last committed batch.
    pub fn accounts_page(
        &self,
        after: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<(AccountId, AccountState)>, StoreError> {
        let lower = match after {
            Some(after) => Bound::Excluded(*after),
            None => Bound::Unbounded,
        };
        let recent: Vec<(AccountId, AccountState)> = lock(&self.pending)
            .accounts
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(a, s)| (*a, *s))
            .collect();
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        let after_bytes = after.map(|a| *a.as_bytes());
        let rows = match &after_bytes {
            Some(after) => {
                table.range::<&[u8]>((Bound::Excluded(after.as_slice()), Bound::Unbounded))?
            }
            None => table.range::<&[u8]>(..)?,
        };
        let mut stored = Vec::with_capacity(limit.min(1024));
        for row in rows.take(limit) {
            let (key, value) = row?;
            stored.push((
                decode_account_id(key.value())?,
                decode_account(value.value())?,
            ));
        }
        // Merge the two key-ordered lists; the recent state wins.
        let mut out = Vec::with_capacity(limit.min(1024));
        let (mut a, mut b) = (stored.into_iter().peekable(), recent.into_iter().peekable());
        while out.len() < limit {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                (Some(x), Some(y)) if x.0 == y.0 => {
                    a.next();
                    b.next()
                }
                (Some(_), Some(_)) | (None, Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, None) => None,
            };
            match next {
                Some(entry) => out.push(entry),
                None => break,
            }
        }
        Ok(out)
    }
}

/// Adds the states of the accounts `changes` touched to `pending`.
fn remember_accounts(pending: &mut Pending, validator: &Validator, changes: &Changes) {
    for account in &changes.accounts {
        pending
            .accounts
            .insert(*account, validator.account(account));
    }
}

fn be_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("index key".into()))
}

/// Reads the certificates of `rows` ((cursor, log position), in order): at most `limit`,
/// and the cursor of the next one if there is one.
fn page(
    certificates: &redb::ReadOnlyTable<u64, &[u8]>,
    rows: Vec<(u64, u64)>,
    limit: usize,
) -> Result<CertificatePage, StoreError> {
    let next = rows.get(limit).map(|(cursor, _)| *cursor);
    let mut out = Vec::with_capacity(rows.len().min(limit));
    for (_, position) in rows.into_iter().take(limit) {
        let bytes = certificates
            .get(position)?
            .ok_or_else(|| StoreError::Corrupt(format!("an index points at {position}")))?;
        out.push((position, parse_certificate(bytes.value())?));
    }
    Ok((out, next))
}

fn cursor_key(peer: &AccountId) -> String {
    format!("cursor/{peer}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tally_core::{
        Allocation, Mode, Order, SecretKey, SignedOrder, Transfer, ValidatorInfo, Vote,
    };

    /// A committee of four fixed keys and two accounts, alice and bob, of which the first
    /// `funded` hold 1000 microcash at genesis.
    fn fixture(
        name: &str,
        funded: usize,
    ) -> (NetworkContract, Vec<SecretKey>, SecretKey, SecretKey) {
        let keys: Vec<SecretKey> = (0..4u8)
            .map(|i| SecretKey::from_bytes([i + 1; 32]))
            .collect();
        let alice = SecretKey::from_bytes([0xa1; 32]);
        let bob = SecretKey::from_bytes([0xb0; 32]);
        let contract = NetworkContract {
            name: name.into(),
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
            genesis: [&alice, &bob]
                .iter()
                .take(funded)
                .map(|k| Allocation {
                    account: k.account(),
                    amount: Amount::from_microcash(1000),
                })
                .collect(),
            pow: None,
        };
        (contract, keys, alice, bob)
    }

    fn certificate(
        keys: &[SecretKey],
        order: SignedOrder,
        net: &tally_core::NetworkId,
    ) -> Certificate {
        let digest = order.order.digest(net);
        let votes = keys[..3]
            .iter()
            .map(|k| Vote::sign(k, net, &digest))
            .collect();
        Certificate::new(order, net, votes)
    }

    /// Everything a reader can see of a store, for comparing two stores.
    fn view(store: &LedgerStore, accounts: &[AccountId]) -> Vec<String> {
        let mut out = Vec::new();
        for account in accounts {
            // Small pages, so that pages straddle the checkpointed rows and the pending ones.
            let mut from = 0;
            loop {
                let (page, next) = store.sent(account, from, 2).unwrap();
                out.extend(
                    page.iter()
                        .map(|(i, c)| format!("sent {account} {i} {c:?}")),
                );
                match next {
                    Some(next) => from = next,
                    None => break,
                }
            }
            let mut since = 0;
            loop {
                let (page, next) = store.touching(account, since, 3).unwrap();
                out.extend(page.iter().map(|(i, _)| format!("touching {account} {i}")));
                match next {
                    Some(next) => since = next,
                    None => break,
                }
            }
        }
        let mut after = None;
        loop {
            let page = store.accounts_page(after.as_ref(), 1).unwrap();
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            out.extend(page.iter().map(|(a, s)| format!("account {a} {s:?}")));
        }
        out
    }

    #[test]
    fn certificate_records_round_trip_and_old_json_records_still_read() {
        let (contract, keys, alice, bob) = fixture("records", 2);
        let net = contract.id();
        let transfer = certificate(
            &keys,
            SignedOrder::sign(
                Order::Transfer(Transfer {
                    sender: alice.account(),
                    recipient: bob.account(),
                    amount: Amount::from_microcash(123_456),
                    sequence: 7,
                }),
                &alice,
                &net,
            ),
            &net,
        );
        let intro = certificate(
            &keys,
            SignedOrder::sign(
                Order::IntroKey(tally_core::IntroKey {
                    account: bob.account(),
                    proof_of_work: 99,
                }),
                &bob,
                &net,
            ),
            &net,
        );
        for cert in [&transfer, &intro] {
            let mut record = Vec::new();
            certificate_record(cert, &mut record).unwrap();
            assert_eq!(record[0], CERT_FORMAT_V1);
            assert_eq!(&parse_certificate(&record).unwrap(), cert);
            let json = serde_json::to_vec(cert).unwrap();
            assert!(json.len() > record.len());
            assert_eq!(&parse_certificate(&json).unwrap(), cert);
            // A truncated or padded record is refused, not misread.
            assert!(parse_certificate(&record[..record.len() - 1]).is_err());
            record.push(0);
            assert!(parse_certificate(&record).is_err());
        }
    }

    /// Batches, checkpoints, more batches, then a "crash" (the store is dropped without a
    /// final checkpoint): a reopened store re-applies the log's tail and the vote journal
    /// and shows exactly what the live one showed.
    #[test]
    fn a_crash_between_checkpoints_loses_nothing() {
        let (contract, keys, alice, bob) = fixture("crash", 2);
        let net = contract.id();
        let carol = SecretKey::from_bytes([0xc0; 32]);
        let path_dir = tempfile::tempdir().unwrap();
        let path = path_dir.path().join("ledger.redb");
        let pay = |from: &SecretKey, to: &SecretKey, amount, seq| {
            SignedOrder::sign(
                Order::Transfer(Transfer {
                    sender: from.account(),
                    recipient: to.account(),
                    amount: Amount::from_microcash(amount),
                    sequence: seq,
                }),
                from,
                &net,
            )
        };
        let everyone = [alice.account(), bob.account(), carol.account()];
        let (live_view, live_accounts, open_lock) = {
            let store = LedgerStore::open(&path, 1 << 20)
                .unwrap()
                .with_checkpoint_every(5);
            let mut v = Validator::new(keys[0].clone(), &contract).unwrap();
            store.load(&mut v, &contract).unwrap();
            // Twelve payments in batches of two (an order and, next batch, its certificate),
            // so checkpoints fall in between and the log's tail is not empty at the end.
            let mut sequences = [0u64; 2];
            for round in 0..12u64 {
                let (from, to, who) = match round % 3 {
                    0 => (&alice, &bob, 0),
                    1 => (&bob, &carol, 1),
                    _ => (&alice, &carol, 0),
                };
                let order = pay(from, to, 10 + round, sequences[who]);
                sequences[who] += 1;
                v.handle_order(&order, true).unwrap();
                store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
                store.checkpoint_if_due().unwrap();
                v.handle_certificate(&certificate(&keys, order, &net), true)
                    .unwrap();
                store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
                store.checkpoint_if_due().unwrap();
            }
            // Carol is introduced after the last checkpoint, and alice's next order gets a
            // vote that no certificate followed yet.
            let intro = SignedOrder::sign(
                Order::IntroKey(tally_core::IntroKey {
                    account: carol.account(),
                    proof_of_work: 1,
                }),
                &carol,
                &net,
            );
            v.handle_order(&intro, true).unwrap();
            v.handle_certificate(&certificate(&keys, intro, &net), true)
                .unwrap();
            let open = pay(&alice, &bob, 1, sequences[0]);
            v.handle_order(&open, true).unwrap();
            store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
            assert!(store.checkpoints().0 >= 2);
            {
                let pending = lock(&store.pending);
                assert!(
                    pending.log_len > pending.base,
                    "the log's tail is not empty"
                );
            }
            let mut accounts: Vec<(AccountId, AccountState)> =
                v.accounts().map(|(a, s)| (*a, *s)).collect();
            accounts.sort_unstable_by_key(|(a, _)| *a);
            (view(&store, &everyone), accounts, (open, sequences[0]))
        };
        let store = LedgerStore::open(&path, 1 << 20).unwrap();
        let mut v = Validator::new(keys[0].clone(), &contract).unwrap();
        store.load(&mut v, &contract).unwrap();
        let mut accounts: Vec<(AccountId, AccountState)> =
            v.accounts().map(|(a, s)| (*a, *s)).collect();
        accounts.sort_unstable_by_key(|(a, _)| *a);
        assert_eq!(accounts, live_accounts);
        assert_eq!(v.log_len(), 13);
        assert_eq!(v.supply(), Amount::from_microcash(2010));
        assert!(v.account(&carol.account()).introduced);
        assert_eq!(view(&store, &everyone), live_view);
        assert_eq!(
            live_view.iter().filter(|l| l.starts_with("sent")).count(),
            12
        );
        // The open vote survived; a conflicting order gets none, the same one is re-voted.
        let (open, sequence) = open_lock;
        assert!(matches!(
            v.handle_order(&pay(&alice, &bob, 2, sequence), true),
            Err(crate::LedgerError::Conflict { .. })
        ));
        assert!(v.handle_order(&open, true).is_ok());
        // A checkpoint now, then a reopen: the same again, from the tables alone.
        store.checkpoint().unwrap();
        drop(store);
        let store = LedgerStore::open(&path, 1 << 20).unwrap();
        let mut again = Validator::new(keys[0].clone(), &contract).unwrap();
        store.load(&mut again, &contract).unwrap();
        assert_eq!(lock(&store.pending).base, 13);
        assert_eq!(view(&store, &everyone), live_view);
        assert!(again.has_voted_for(&open.order, &open.order.digest(&net)));
    }

    #[test]
    fn a_committed_batch_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (contract, keys, alice, bob) = fixture("store", 1);
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
        let (contract, keys, alice, bob) = fixture("locks", 1);
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
