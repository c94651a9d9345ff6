//! Durable registrations in redb, written as an append-only log: each stored registration
//! is one row under the next sequence number, so a batch's rows land together at the end
//! of the tree and one durable commit writes a few pages, not one page per registration.
//! A key's newest row wins on reload. Rows older than the TTL are either expired or
//! superseded, so the sweep deletes the log's oldest rows up to the first one still young.
//!
//! Row key: sequence number (u64). Row value (123 bytes): version byte 1, network id (32),
//! key (32), address IP (16, IPv4 mapped), address port (u16 BE), source IP (16), proof of
//! work (u64 BE), timestamp (u64 BE), seen (u64 BE).

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use tally_core::{AccountId, NetworkId};

use crate::registry::{Entry, IpBytes, Registry};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("registrations");
const VERSION: u8 = 1;
const VALUE_LEN: usize = 123;
/// Most rows one sweep deletes, so a sweep never stalls a commit for long.
const MAX_SWEEP_ROWS: usize = 200_000;

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(Box<redb::Error>),
    #[error("creating the data directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

fn dberr<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(Box::new(e.into()))
}

/// The row value of an entry.
pub fn row_value(network: &NetworkId, entry: &Entry) -> [u8; VALUE_LEN] {
    let mut v = [0u8; VALUE_LEN];
    v[0] = VERSION;
    v[1..33].copy_from_slice(network.as_bytes());
    v[33..65].copy_from_slice(entry.account.as_bytes());
    v[65..81].copy_from_slice(&entry.ip);
    v[81..83].copy_from_slice(&entry.port.to_be_bytes());
    v[83..99].copy_from_slice(&entry.source);
    v[99..107].copy_from_slice(&entry.proof_of_work.to_be_bytes());
    v[107..115].copy_from_slice(&entry.timestamp.to_be_bytes());
    v[115..123].copy_from_slice(&entry.seen.to_be_bytes());
    v
}

/// Decodes a row; `None` for a row of another version or length.
pub fn decode_row(value: &[u8]) -> Option<(NetworkId, Entry)> {
    if value.len() != VALUE_LEN || value[0] != VERSION {
        return None;
    }
    let bytes32 = |at: usize| -> Option<[u8; 32]> { value.get(at..at + 32)?.try_into().ok() };
    let bytes16 = |at: usize| -> Option<IpBytes> { value.get(at..at + 16)?.try_into().ok() };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_be_bytes(value.get(at..at + 8)?.try_into().ok()?))
    };
    Some((
        NetworkId(bytes32(1)?.into()),
        Entry {
            account: AccountId::from(bytes32(33)?),
            ip: bytes16(65)?,
            port: u16::from_be_bytes([value[81], value[82]]),
            source: bytes16(83)?,
            proof_of_work: u64_at(99)?,
            timestamp: u64_at(107)?,
            seen: u64_at(115)?,
        },
    ))
}

/// The tracker's database.
pub struct Store {
    db: Database,
    next_seq: u64,
}

/// What loading found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoadReport {
    /// Live entries of served networks, now in the registry.
    pub loaded: usize,
    /// Rows read (live, superseded, expired or of other networks).
    pub rows: usize,
    /// Expired rows deleted from the front of the log.
    pub deleted: usize,
    /// Live rows of networks not served now, left until they expire.
    pub other_networks: usize,
    /// Rows that could not be decoded (skipped).
    pub corrupt: usize,
}

impl Store {
    /// Opens (or creates) `dir/tracker.redb` with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(crate::config::DB_FILE);
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(dberr)?;
        Store::on(db)
    }

    /// Opens (or creates) the database on `backend` instead of a file of its own: for
    /// storage the caller provides, such as a backend that fails on purpose in tests.
    pub fn with_backend(
        backend: impl redb::StorageBackend,
        cache_bytes: usize,
    ) -> Result<Store, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_backend(backend)
            .map_err(dberr)?;
        Store::on(db)
    }

    fn on(db: Database) -> Result<Store, StoreError> {
        let txn = db.begin_write().map_err(dberr)?;
        let next_seq = {
            let table = txn.open_table(LOG).map_err(dberr)?;
            let last = table.last().map_err(dberr)?;
            last.map_or(0, |(k, _)| k.value().saturating_add(1))
        };
        txn.commit().map_err(dberr)?;
        Ok(Store { db, next_seq })
    }

    /// Loads every live entry of the served networks into `registry` (a key's newest row
    /// wins) and deletes the expired rows at the front of the log.
    pub fn load(
        &mut self,
        registry: &mut Registry,
        served: &dyn Fn(&NetworkId) -> bool,
        now: u64,
        ttl_ms: u64,
    ) -> Result<LoadReport, StoreError> {
        let mut report = LoadReport::default();
        {
            let txn = self.db.begin_read().map_err(dberr)?;
            let table = txn.open_table(LOG).map_err(dberr)?;
            let rows = usize::try_from(table.len().map_err(dberr)?).unwrap_or(0);
            let mut reserved = false;
            for row in table.iter().map_err(dberr)? {
                let (_, value) = row.map_err(dberr)?;
                report.rows += 1;
                match decode_row(value.value()) {
                    None => report.corrupt += 1,
                    Some((network, entry)) if !entry.is_live(now, ttl_ms) => {
                        // A newer row expired: the key's older rows are gone with it.
                        registry.remove(&network, &entry.account);
                    }
                    Some((network, _)) if !served(&network) => report.other_networks += 1,
                    Some((network, entry)) => {
                        if !reserved {
                            // Most trackers serve one network: size it once, not by doubling.
                            registry.reserve(&network, rows);
                            reserved = true;
                        }
                        registry.insert_unchecked(&network, entry);
                    }
                }
            }
        }
        report.loaded = registry.len();
        report.deleted = self.commit(&[], now.checked_sub(ttl_ms))?;
        Ok(report)
    }

    /// Appends `puts` and, with `expire_before`, deletes the log's oldest rows seen at or
    /// before it (up to the first younger row), all in one durable commit: with
    /// `expire_before = now - ttl` these are the rows [`Entry::is_live`] calls expired.
    /// Returns the number of rows deleted. On an error nothing is written.
    pub fn commit(
        &mut self,
        puts: &[(NetworkId, Entry)],
        expire_before: Option<u64>,
    ) -> Result<usize, StoreError> {
        let txn = self.db.begin_write().map_err(dberr)?;
        let mut seq = self.next_seq;
        let mut deleted = 0;
        {
            let mut table = txn.open_table(LOG).map_err(dberr)?;
            if let Some(cutoff) = expire_before {
                let mut end = None;
                for row in table.range::<u64>(..).map_err(dberr)? {
                    let (key, value) = row.map_err(dberr)?;
                    let old = decode_row(value.value()).is_none_or(|(_, e)| e.seen <= cutoff);
                    if !old || deleted == MAX_SWEEP_ROWS {
                        break;
                    }
                    end = Some(key.value());
                    deleted += 1;
                }
                if let Some(end) = end {
                    table.retain_in(..=end, |_, _| false).map_err(dberr)?;
                }
            }
            for (network, entry) in puts {
                table
                    .insert(seq, row_value(network, entry).as_slice())
                    .map_err(dberr)?;
                seq += 1;
            }
        }
        txn.commit().map_err(dberr)?;
        self.next_seq = seq;
        Ok(deleted)
    }

    /// How many rows the log holds.
    pub fn row_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(dberr)?;
        let table = txn.open_table(LOG).map_err(dberr)?;
        table.len().map_err(dberr)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::registry::{RegistryLimits, ip_bytes};
    use std::net::IpAddr;

    fn mk(k: u8, ts: u64, seen: u64) -> Entry {
        Entry {
            account: tally_core::SecretKey::from_bytes([k; 32]).account(),
            ip: ip_bytes(IpAddr::from([1, 2, 3, k])),
            source: ip_bytes("2001:db8::1".parse().unwrap()),
            proof_of_work: 77,
            timestamp: ts,
            seen,
            port: 2222,
        }
    }

    #[test]
    fn rows_round_trip() {
        let e = mk(1, 123, 456);
        let n = NetworkId(tally_core::sha256(&[b"n"]));
        assert_eq!(decode_row(&row_value(&n, &e)), Some((n, e)));
        let mut other_version = row_value(&n, &e);
        other_version[0] = 2;
        assert!(decode_row(&other_version).is_none());
        assert!(decode_row(&row_value(&n, &e)[..122]).is_none());
    }

    #[test]
    fn load_keeps_the_newest_live_rows_and_deletes_the_expired_front() {
        let dir = tempfile::tempdir().unwrap();
        let n = NetworkId(tally_core::sha256(&[b"n"]));
        let other = NetworkId(tally_core::sha256(&[b"o"]));
        let limits = RegistryLimits {
            max_entries: 10,
            max_entries_per_ip: 10,
            max_entries_per_address: 1000,
        };
        {
            let mut store = Store::open(dir.path(), 1 << 20).unwrap();
            store
                .commit(&[(n, mk(1, 1, 10)), (n, mk(2, 1, 20))], None)
                .unwrap();
            // Key 1 re-registers (its first row is now superseded), key 3 arrives, and a
            // row of a network no longer served.
            store
                .commit(
                    &[
                        (n, mk(1, 2, 1000)),
                        (n, mk(3, 1, 1010)),
                        (other, mk(4, 1, 1020)),
                    ],
                    None,
                )
                .unwrap();
            let txn = store.db.begin_write().unwrap();
            txn.open_table(LOG)
                .unwrap()
                .insert(99, [1u8; 3].as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let mut store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.next_seq, 100);
        let mut reg = Registry::new([&n], limits);
        let report = store.load(&mut reg, &|id| *id == n, 1050, 100).unwrap();
        assert_eq!(
            report,
            LoadReport {
                loaded: 2,
                rows: 6,
                deleted: 2,
                other_networks: 1,
                corrupt: 1
            }
        );
        assert_eq!(
            reg.get(&n, &mk(1, 0, 0).account).map(|e| e.seen),
            Some(1000)
        );
        assert!(reg.get(&n, &mk(2, 0, 0).account).is_none());
        assert_eq!(store.row_count().unwrap(), 4);
        // A later sweep deletes rows up to the first young one.
        assert_eq!(store.commit(&[], Some(1015)).unwrap(), 2);
        assert_eq!(store.row_count().unwrap(), 2);
    }
}
