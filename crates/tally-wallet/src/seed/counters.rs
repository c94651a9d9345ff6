//! `counters.json`: the next unused key index per network and purpose, and [`SeedKeys`],
//! which hands out keys only after the advanced counter is on disk.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tally_core::{NetworkId, SecretKey};
use zeroize::Zeroizing;

use super::{KeyPurpose, SeedError, SeedFile, derive_key};
use crate::fs::write_atomic;

/// The file's name in the wallet folder.
const FILE_NAME: &str = "counters.json";

/// The next unused index of each purpose on one network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextIndices {
    /// The next account index.
    #[serde(default)]
    pub account: u64,
    /// The next coin index.
    #[serde(default)]
    pub coin: u64,
}

impl NextIndices {
    fn get(&self, purpose: KeyPurpose) -> u64 {
        match purpose {
            KeyPurpose::Account => self.account,
            KeyPurpose::Coin => self.coin,
        }
    }

    fn get_mut(&mut self, purpose: KeyPurpose) -> &mut u64 {
        match purpose {
            KeyPurpose::Account => &mut self.account,
            KeyPurpose::Coin => &mut self.coin,
        }
    }
}

/// Every network's next unused indices, as `counters.json` holds them
/// (`{"<network hex>": {"account": n, "coin": m}, ...}`). A network absent from the file
/// starts at 0. Changed only through [`SeedKeys`], which saves before handing out a key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyCounters {
    networks: BTreeMap<String, NextIndices>,
}

impl KeyCounters {
    /// The path of the counters file in wallet folder `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Reads the counters of `dir`; none yet if the file does not exist.
    pub fn load(dir: &Path) -> Result<Self, SeedError> {
        let path = Self::path(dir);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(SeedError::Io { path, source }),
        };
        let corrupt = |message: String| SeedError::Corrupt {
            path: path.clone(),
            message,
        };
        let networks: BTreeMap<String, NextIndices> =
            serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        for key in networks.keys() {
            let network: NetworkId = key
                .parse()
                .map_err(|_| corrupt(format!("{key:?} is not a network id")))?;
            // One spelling per network, so two entries can never count the same network.
            if network.to_string() != *key {
                return Err(corrupt(format!("{key:?} is not lower-case hex")));
            }
        }
        Ok(Self { networks })
    }

    /// The next unused index for `purpose` on `network`.
    pub fn next(&self, network: &NetworkId, purpose: KeyPurpose) -> u64 {
        self.networks
            .get(&network.to_string())
            .map_or(0, |next| next.get(purpose))
    }

    /// The networks with any counter, and their next indices.
    pub fn networks(&self) -> impl Iterator<Item = (NetworkId, NextIndices)> + '_ {
        self.networks
            .iter()
            .filter_map(|(key, next)| key.parse().ok().map(|network| (network, *next)))
    }

    /// These counters with `purpose` on `network` raised to `next` (never lowered).
    fn raised(&self, network: &NetworkId, purpose: KeyPurpose, next: u64) -> Self {
        let mut out = self.clone();
        let entry = out.networks.entry(network.to_string()).or_default();
        let slot = entry.get_mut(purpose);
        *slot = (*slot).max(next);
        out
    }

    /// Writes the counters to `dir`, atomically and durably.
    fn save(&self, dir: &Path) -> Result<(), SeedError> {
        let path = Self::path(dir);
        let text = serde_json::to_vec_pretty(&self.networks).map_err(|e| SeedError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &text)?;
        Ok(())
    }
}

/// A seeded wallet's key source: the 64-byte seed (held only here, wiped on drop) and the
/// counters. Every fresh key comes from [`SeedKeys::next_key`], which never returns an
/// index twice, across crashes and restarts.
pub struct SeedKeys {
    dir: PathBuf,
    seed: Zeroizing<[u8; 64]>,
    counters: KeyCounters,
}

impl std::fmt::Debug for SeedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedKeys")
            .field("dir", &self.dir)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl SeedKeys {
    /// Opens the seed (with its passphrase, if encrypted) and the counters of wallet `dir`.
    pub fn open(dir: &Path, passphrase: Option<&str>) -> Result<Self, SeedError> {
        let file = SeedFile::open(dir, passphrase)?;
        Self::from_file(dir, file)
    }

    /// Takes an opened (or just created) seed file of wallet `dir`, saving a second
    /// passphrase stretch.
    pub fn from_file(dir: &Path, file: SeedFile) -> Result<Self, SeedError> {
        let seed = file.into_mnemonic().to_seed("");
        Ok(Self {
            dir: dir.to_path_buf(),
            seed,
            counters: KeyCounters::load(dir)?,
        })
    }

    /// A fresh key for `purpose` on `network`, and its index. The advanced counter is on
    /// disk before the key is returned: a crash after this call leaves the index used, and
    /// a failed save returns the error and hands out nothing.
    pub fn next_key(
        &mut self,
        network: &NetworkId,
        purpose: KeyPurpose,
    ) -> Result<(u64, SecretKey), SeedError> {
        let mut keys = self.next_keys(network, purpose, 1)?;
        keys.pop().ok_or(SeedError::CounterExhausted)
    }

    /// `count` fresh keys for `purpose` on `network`, with their indices, reserved with one
    /// save of the counters (durable before any key is returned, as for
    /// [`SeedKeys::next_key`]).
    pub fn next_keys(
        &mut self,
        network: &NetworkId,
        purpose: KeyPurpose,
        count: usize,
    ) -> Result<Vec<(u64, SecretKey)>, SeedError> {
        let first = self.counters.next(network, purpose);
        let after = u64::try_from(count)
            .ok()
            .and_then(|count| first.checked_add(count))
            .ok_or(SeedError::CounterExhausted)?;
        let counters = self.counters.raised(network, purpose, after);
        counters.save(&self.dir)?;
        self.counters = counters;
        Ok((first..after)
            .map(|index| (index, self.key_at(network, purpose, index)))
            .collect())
    }

    /// The key at `index`, used or not: for signing with a known key, and for restore,
    /// which walks indices asking the validators which hold anything.
    pub fn key_at(&self, network: &NetworkId, purpose: KeyPurpose, index: u64) -> SecretKey {
        derive_key(&self.seed, network, purpose, index)
    }

    /// Raises the next index for `purpose` on `network` to at least `next`, durably: after
    /// a restore found keys in use up to `next - 1`, no later key reuses one. Never lowers.
    pub fn set_at_least(
        &mut self,
        network: &NetworkId,
        purpose: KeyPurpose,
        next: u64,
    ) -> Result<(), SeedError> {
        if self.counters.next(network, purpose) >= next {
            return Ok(());
        }
        let counters = self.counters.raised(network, purpose, next);
        counters.save(&self.dir)?;
        self.counters = counters;
        Ok(())
    }

    /// The counters as they are on disk.
    pub fn counters(&self) -> &KeyCounters {
        &self.counters
    }

    /// The wallet folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tally_core::Digest;

    use super::*;
    use crate::seed::Mnemonic;

    fn network(byte: u8) -> NetworkId {
        NetworkId(Digest::from([byte; 32]))
    }

    fn seeded() -> (tempfile::TempDir, Mnemonic) {
        let dir = tempfile::tempdir().unwrap();
        let m = Mnemonic::generate().unwrap();
        SeedFile::create(dir.path(), &m, None).unwrap();
        (dir, m)
    }

    /// Keys come out at 0, 1, 2 per network and purpose, match `key_at` and the plain
    /// derivation, and the counters reopen as they were.
    #[test]
    fn counters_survive_reopen() {
        let (dir, m) = seeded();
        let (a, b) = (network(1), network(2));
        let mut keys = SeedKeys::open(dir.path(), None).unwrap();
        for expected in 0..3 {
            let (index, key) = keys.next_key(&a, KeyPurpose::Account).unwrap();
            assert_eq!(index, expected);
            assert_eq!(
                key.to_bytes(),
                keys.key_at(&a, KeyPurpose::Account, index).to_bytes()
            );
            assert_eq!(
                key.to_bytes(),
                derive_key(&m.to_seed(""), &a, KeyPurpose::Account, index).to_bytes()
            );
        }
        assert_eq!(keys.next_key(&a, KeyPurpose::Coin).unwrap().0, 0);
        assert_eq!(keys.next_key(&b, KeyPurpose::Account).unwrap().0, 0);
        drop(keys);

        let reopened = SeedKeys::open(dir.path(), None).unwrap();
        let counters = reopened.counters();
        assert_eq!(counters.next(&a, KeyPurpose::Account), 3);
        assert_eq!(counters.next(&a, KeyPurpose::Coin), 1);
        assert_eq!(counters.next(&b, KeyPurpose::Account), 1);
        assert_eq!(counters.next(&b, KeyPurpose::Coin), 0);
        assert_eq!(counters.next(&network(3), KeyPurpose::Coin), 0);
        assert_eq!(counters, &KeyCounters::load(dir.path()).unwrap());
        assert_eq!(counters.networks().count(), 2);
    }

    /// `set_at_least` raises durably and never lowers.
    #[test]
    fn set_at_least_only_raises() {
        let (dir, _) = seeded();
        let net = network(9);
        let mut keys = SeedKeys::open(dir.path(), None).unwrap();
        keys.set_at_least(&net, KeyPurpose::Coin, 10).unwrap();
        keys.set_at_least(&net, KeyPurpose::Coin, 4).unwrap();
        assert_eq!(
            KeyCounters::load(dir.path())
                .unwrap()
                .next(&net, KeyPurpose::Coin),
            10
        );
        assert_eq!(keys.next_key(&net, KeyPurpose::Coin).unwrap().0, 10);
        assert_eq!(keys.counters().next(&net, KeyPurpose::Account), 0);
    }

    /// A counter at `u64::MAX` refuses to hand out a key rather than wrap to 0.
    #[test]
    fn exhausted_counter_refused() {
        let (dir, _) = seeded();
        let net = network(4);
        let mut keys = SeedKeys::open(dir.path(), None).unwrap();
        keys.set_at_least(&net, KeyPurpose::Account, u64::MAX)
            .unwrap();
        assert!(matches!(
            keys.next_key(&net, KeyPurpose::Account),
            Err(SeedError::CounterExhausted)
        ));
    }

    /// A failed save hands out no key and leaves the counter where it was.
    #[test]
    fn failed_save_hands_out_nothing() {
        let (dir, _) = seeded();
        let net = network(5);
        let mut keys = SeedKeys::open(dir.path(), None).unwrap();
        keys.next_key(&net, KeyPurpose::Coin).unwrap();
        // A directory where the temporary file would go makes the write fail, even as root.
        fs::create_dir(dir.path().join("counters.tmp")).unwrap();
        assert!(matches!(
            keys.next_key(&net, KeyPurpose::Coin),
            Err(SeedError::Write(_))
        ));
        assert_eq!(keys.counters().next(&net, KeyPurpose::Coin), 1);
        fs::remove_dir(dir.path().join("counters.tmp")).unwrap();
        assert_eq!(keys.next_key(&net, KeyPurpose::Coin).unwrap().0, 1);
    }

    /// Damaged counters are refused, never read as zero (which would reuse indices).
    #[test]
    fn corrupt_counters_refused() {
        let (dir, _) = seeded();
        for text in [
            "not json",
            r#"{"zz": {"account": 1}}"#,
            &format!(r#"{{"{}": {{"account": -1}}}}"#, network(1)),
            &format!(r#"{{"{}": {{"acount": 1}}}}"#, network(1)),
            &format!(
                r#"{{"{}": {{"account": 1}}}}"#,
                network(0xab).to_string().to_uppercase()
            ),
        ] {
            fs::write(KeyCounters::path(dir.path()), text).unwrap();
            assert!(
                matches!(
                    KeyCounters::load(dir.path()),
                    Err(SeedError::Corrupt { .. })
                ),
                "{text}"
            );
            assert!(SeedKeys::open(dir.path(), None).is_err());
        }
    }
}
