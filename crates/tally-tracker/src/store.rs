//! Durable registrations in redb: one row per (network, key), written in batches, one
//! durable commit per batch.
//!
//! Row key: network id (32 bytes) ‖ key (32 bytes). Row value (59 bytes): version byte 1,
//! address IP (16, IPv4 mapped), address port (u16 BE), source IP (16), proof of work
//! (u64 BE), timestamp (u64 BE), seen (u64 BE).

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use tally_core::{AccountId, NetworkId};

use crate::registry::{Entry, IpBytes, Registry};

const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
const VERSION: u8 = 1;
const VALUE_LEN: usize = 59;

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

/// The row key of an entry.
pub fn row_key(network: &NetworkId, account: &AccountId) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(network.as_bytes());
    key[32..].copy_from_slice(account.as_bytes());
    key
}

/// The row value of an entry.
pub fn row_value(entry: &Entry) -> [u8; VALUE_LEN] {
    let mut v = [0u8; VALUE_LEN];
    v[0] = VERSION;
    v[1..17].copy_from_slice(&entry.ip);
    v[17..19].copy_from_slice(&entry.port.to_be_bytes());
    v[19..35].copy_from_slice(&entry.source);
    v[35..43].copy_from_slice(&entry.proof_of_work.to_be_bytes());
    v[43..51].copy_from_slice(&entry.timestamp.to_be_bytes());
    v[51..59].copy_from_slice(&entry.seen.to_be_bytes());
    v
}

/// Decodes a row; `None` for a row of another version or length.
pub fn decode_row(key: &[u8], value: &[u8]) -> Option<(NetworkId, Entry)> {
    if key.len() != 64 || value.len() != VALUE_LEN || value[0] != VERSION {
        return None;
    }
    let network = NetworkId(<[u8; 32]>::try_from(&key[..32]).ok()?.into());
    let account = AccountId::from(<[u8; 32]>::try_from(&key[32..]).ok()?);
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_be_bytes(value.get(at..at + 8)?.try_into().ok()?))
    };
    let ip: IpBytes = value[1..17].try_into().ok()?;
    let source: IpBytes = value[19..35].try_into().ok()?;
    Some((
        network,
        Entry {
            account,
            ip,
            port: u16::from_be_bytes([value[17], value[18]]),
            source,
            proof_of_work: u64_at(35)?,
            timestamp: u64_at(43)?,
            seen: u64_at(51)?,
        },
    ))
}

/// The tracker's database.
pub struct Store {
    db: Database,
}

/// What loading found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoadReport {
    /// Live entries of served networks, now in the registry.
    pub loaded: usize,
    /// Expired entries, deleted.
    pub expired: usize,
    /// Live entries of networks not served now, left on disk until they expire.
    pub other_networks: usize,
    /// Rows that could not be decoded, deleted.
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
        let txn = db.begin_write().map_err(dberr)?;
        txn.open_table(ENTRIES).map_err(dberr)?;
        txn.commit().map_err(dberr)?;
        Ok(Store { db })
    }

    /// Loads every live entry of the registry's networks into it and deletes expired or
    /// undecodable rows.
    pub fn load(
        &self,
        registry: &mut Registry,
        served: &dyn Fn(&NetworkId) -> bool,
        now: u64,
        ttl_ms: u64,
    ) -> Result<LoadReport, StoreError> {
        let mut report = LoadReport::default();
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        {
            let txn = self.db.begin_read().map_err(dberr)?;
            let table = txn.open_table(ENTRIES).map_err(dberr)?;
            let rows = table.len().map_err(dberr)?;
            let mut reserved = false;
            for row in table.iter().map_err(dberr)? {
                let (key, value) = row.map_err(dberr)?;
                match decode_row(key.value(), value.value()) {
                    None => {
                        report.corrupt += 1;
                        doomed.push(key.value().to_vec());
                    }
                    Some((_, entry)) if !entry.is_live(now, ttl_ms) => {
                        report.expired += 1;
                        doomed.push(key.value().to_vec());
                    }
                    Some((network, _)) if !served(&network) => report.other_networks += 1,
                    Some((network, entry)) => {
                        if !reserved {
                            // Most trackers serve one network: size it once, not by doubling.
                            registry.reserve(&network, usize::try_from(rows).unwrap_or(0));
                            reserved = true;
                        }
                        registry.insert_unchecked(&network, entry);
                        report.loaded += 1;
                    }
                }
            }
        }
        if !doomed.is_empty() {
            let txn = self.db.begin_write().map_err(dberr)?;
            {
                let mut table = txn.open_table(ENTRIES).map_err(dberr)?;
                for key in &doomed {
                    table.remove(key.as_slice()).map_err(dberr)?;
                }
            }
            txn.commit().map_err(dberr)?;
        }
        Ok(report)
    }

    /// Deletes `removes`, then writes `puts`, in one durable commit.
    pub fn commit(
        &self,
        puts: &[(NetworkId, Entry)],
        removes: &[(NetworkId, AccountId)],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(dberr)?;
        {
            let mut table = txn.open_table(ENTRIES).map_err(dberr)?;
            // Removals first: a key swept and registered again in one batch must stay.
            for (network, account) in removes {
                table
                    .remove(row_key(network, account).as_slice())
                    .map_err(dberr)?;
            }
            for (network, entry) in puts {
                table
                    .insert(
                        row_key(network, &entry.account).as_slice(),
                        row_value(entry).as_slice(),
                    )
                    .map_err(dberr)?;
            }
        }
        txn.commit().map_err(dberr)
    }

    /// How many rows are stored.
    pub fn row_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(dberr)?;
        let table = txn.open_table(ENTRIES).map_err(dberr)?;
        table.len().map_err(dberr)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::registry::{RegistryLimits, ip_bytes};
    use std::net::IpAddr;

    #[test]
    fn rows_round_trip() {
        let e = Entry {
            account: tally_core::SecretKey::from_bytes([1; 32]).account(),
            ip: ip_bytes(IpAddr::from([1, 2, 3, 4])),
            source: ip_bytes("2001:db8::1".parse().unwrap()),
            proof_of_work: 77,
            timestamp: 123,
            seen: 456,
            port: 2222,
        };
        let n = NetworkId(tally_core::sha256(&[b"n"]));
        let (n2, e2) = decode_row(&row_key(&n, &e.account), &row_value(&e)).unwrap();
        assert_eq!((n2, e2), (n, e));
        assert!(decode_row(&[0; 64], &[2; VALUE_LEN]).is_none());
        assert!(decode_row(&[0; 63], &row_value(&e)).is_none());
        assert!(decode_row(&[0; 64], &row_value(&e)[..58]).is_none());
    }

    #[test]
    fn load_keeps_live_drops_expired_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let n = NetworkId(tally_core::sha256(&[b"n"]));
        let other = NetworkId(tally_core::sha256(&[b"o"]));
        let mk = |k: u8, seen: u64| Entry {
            account: tally_core::SecretKey::from_bytes([k; 32]).account(),
            ip: ip_bytes(IpAddr::from([1, 2, 3, k])),
            source: ip_bytes(IpAddr::from([1, 2, 3, 4])),
            proof_of_work: 1,
            timestamp: 1,
            seen,
            port: 1,
        };
        {
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            store
                .commit(
                    &[(n, mk(1, 1000)), (n, mk(2, 10)), (other, mk(3, 1000))],
                    &[],
                )
                .unwrap();
            let txn = store.db.begin_write().unwrap();
            txn.open_table(ENTRIES)
                .unwrap()
                .insert([7u8; 5].as_slice(), [1u8; 3].as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let limits = RegistryLimits {
            max_entries: 10,
            max_entries_per_ip: 10,
        };
        let mut reg = Registry::new([&n], limits);
        let report = store.load(&mut reg, &|id| *id == n, 1050, 100).unwrap();
        assert_eq!(
            report,
            LoadReport {
                loaded: 1,
                expired: 1,
                other_networks: 1,
                corrupt: 1
            }
        );
        assert_eq!(reg.len(), 1);
        assert_eq!(store.row_count().unwrap(), 2);
    }
}
