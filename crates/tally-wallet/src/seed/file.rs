//! `seed.json`: the wallet's seed at rest.
//!
//! In clear: `{"version":1,"entropy":"<hex>","check":"<8 hex>"}`, where `check` is the first
//! 4 bytes of SHA-256(`TALLY-SEED-CHECK` ‖ entropy), so a damaged file is noticed rather
//! than restoring someone else's keys. Encrypted: `{"version":1,"sealed":{...}}`, where
//! Argon2id of the passphrase (NFKD) with the stored salt and cost gives a 32-byte key, and
//! XChaCha20-Poly1305 seals the entropy with the header (version, cost, salt, nonce) as
//! associated data, so changing any stored field makes opening fail.

use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tally_core::codec::Encode;
use zeroize::Zeroizing;

use super::{Mnemonic, SeedError};
use crate::fs::write_atomic;

/// The file's name in the wallet folder.
const FILE_NAME: &str = "seed.json";
/// The only layout this code writes or reads.
const VERSION: u32 = 1;
/// Domain tag of the clear file's check.
const CHECK_TAG: &[u8] = b"TALLY-SEED-CHECK";
/// Domain tag in front of the associated data of the sealed file.
const SEAL_TAG: &[u8] = b"TALLY-SEED-V1";
/// Largest memory cost accepted from a file (4 GiB), so a damaged file cannot make opening
/// allocate without bound.
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// Largest time and lane counts accepted from a file.
const MAX_ITERATIONS: u32 = 64;
const MAX_PARALLELISM: u32 = 16;

/// The Argon2id cost of sealing a seed. Stored in the file, so opening uses the cost the
/// file was sealed with and a later default never locks out an old file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfCost {
    /// 64 MiB, 3 passes, 1 lane: about a second of work per guess on a laptop.
    pub const DEFAULT: KdfCost = KdfCost {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// Argon2 parameters for this cost, refusing costs Argon2 rejects or this wallet bounds.
    fn params(self) -> Result<Params, SeedError> {
        if self.memory_kib > MAX_MEMORY_KIB
            || self.iterations > MAX_ITERATIONS
            || self.parallelism > MAX_PARALLELISM
        {
            return Err(SeedError::BadCost(format!(
                "{self:?} exceeds {MAX_MEMORY_KIB} KiB, {MAX_ITERATIONS} passes or \
                 {MAX_PARALLELISM} lanes"
            )));
        }
        Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| SeedError::BadCost(format!("{self:?}: {e}")))
    }
}

impl Default for KdfCost {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The file as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entropy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<Sealed>,
}

/// The encrypted form's fields.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
}

/// A wallet's seed file, opened: the words it holds and whether a passphrase protects them.
/// Hand it to [`super::SeedKeys::from_file`] to derive keys.
#[derive(Debug)]
pub struct SeedFile {
    mnemonic: Mnemonic,
    encrypted: bool,
}

impl SeedFile {
    /// The path of the seed file in wallet folder `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Whether wallet folder `dir` has a seed (a seeded wallet) or not (a key-file wallet).
    pub fn exists(dir: &Path) -> bool {
        Self::path(dir).exists()
    }

    /// Stores `mnemonic` in `dir` (created if missing), sealed under `passphrase` if one is
    /// given, at [`KdfCost::DEFAULT`]. Refuses to replace an existing seed.
    pub fn create(
        dir: &Path,
        mnemonic: &Mnemonic,
        passphrase: Option<&str>,
    ) -> Result<SeedFile, SeedError> {
        Self::create_with_cost(dir, mnemonic, passphrase, KdfCost::DEFAULT)
    }

    /// As [`SeedFile::create`], with the Argon2id cost chosen (tests use a small one).
    pub fn create_with_cost(
        dir: &Path,
        mnemonic: &Mnemonic,
        passphrase: Option<&str>,
        cost: KdfCost,
    ) -> Result<SeedFile, SeedError> {
        let path = Self::path(dir);
        if path.exists() {
            return Err(SeedError::AlreadyExists(path));
        }
        fs::create_dir_all(dir).map_err(|source| SeedError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let entropy = mnemonic.entropy();
        let record = match passphrase {
            None => Record {
                version: VERSION,
                entropy: Some(hex::encode(entropy.as_slice())),
                check: Some(hex::encode(check(&entropy))),
                sealed: None,
            },
            Some("") => return Err(SeedError::EmptyPassphrase),
            Some(passphrase) => Record {
                version: VERSION,
                entropy: None,
                check: None,
                sealed: Some(seal(&entropy, passphrase, cost)?),
            },
        };
        let text = serde_json::to_vec_pretty(&record).map_err(|e| SeedError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &text)?;
        Ok(SeedFile {
            mnemonic: mnemonic.clone(),
            encrypted: passphrase.is_some(),
        })
    }

    /// Whether the seed in `dir` is encrypted, so a caller knows to ask for a passphrase.
    pub fn is_encrypted(dir: &Path) -> Result<bool, SeedError> {
        let (_, record) = read(dir)?;
        Ok(record.sealed.is_some())
    }

    /// Opens the seed in `dir`. An encrypted seed needs its passphrase; a clear one refuses
    /// a passphrase (it would not be protecting anything).
    pub fn open(dir: &Path, passphrase: Option<&str>) -> Result<SeedFile, SeedError> {
        let (path, record) = read(dir)?;
        let corrupt = |message: &str| SeedError::Corrupt {
            path: path.clone(),
            message: message.to_string(),
        };
        if record.version != VERSION {
            return Err(corrupt(&format!("unknown version {}", record.version)));
        }
        let (entropy, encrypted) = match (&record.entropy, &record.check, &record.sealed) {
            (Some(entropy), Some(stored), None) => {
                if passphrase.is_some() {
                    return Err(SeedError::UnexpectedPassphrase(path));
                }
                let entropy = Zeroizing::new(
                    hex::decode(entropy).map_err(|_| corrupt("entropy is not hex"))?,
                );
                if hex::encode(check(&entropy)) != *stored {
                    return Err(corrupt("the entropy does not match its check"));
                }
                (entropy, false)
            }
            (None, None, Some(sealed)) => {
                let passphrase = match passphrase {
                    None => return Err(SeedError::PassphraseRequired(path)),
                    Some(passphrase) => passphrase,
                };
                (unseal(&path, sealed, passphrase)?, true)
            }
            _ => return Err(corrupt("needs either entropy and check, or sealed")),
        };
        if entropy.len() != 16 && entropy.len() != 32 {
            return Err(corrupt("the entropy is neither 16 nor 32 bytes"));
        }
        Ok(SeedFile {
            mnemonic: Mnemonic::from_entropy(&entropy)?,
            encrypted,
        })
    }

    /// The words, for showing the backup again to the person who holds the passphrase.
    pub fn mnemonic(&self) -> &Mnemonic {
        &self.mnemonic
    }

    /// Whether a passphrase protects the file.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// The words, consuming the opened file.
    pub fn into_mnemonic(self) -> Mnemonic {
        self.mnemonic
    }
}

/// Reads and parses `seed.json` in `dir`.
fn read(dir: &Path) -> Result<(PathBuf, Record), SeedError> {
    let path = SeedFile::path(dir);
    let text = match fs::read(&path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SeedError::NotFound(path));
        }
        Err(source) => return Err(SeedError::Io { path, source }),
    };
    let record = serde_json::from_slice(&text).map_err(|e| SeedError::Corrupt {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok((path, record))
}

/// The clear file's check over `entropy`.
fn check(entropy: &[u8]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(CHECK_TAG)
        .chain_update(entropy)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The associated data: every stored field but the ciphertext.
fn header(cost: KdfCost, salt: &[u8; 16], nonce: &[u8; 24]) -> Vec<u8> {
    let mut out = SEAL_TAG.to_vec();
    VERSION.encode_to(&mut out);
    cost.memory_kib.encode_to(&mut out);
    cost.iterations.encode_to(&mut out);
    cost.parallelism.encode_to(&mut out);
    salt.encode_to(&mut out);
    nonce.encode_to(&mut out);
    out
}

/// Argon2id of `passphrase` (NFKD-normalized, so the same passphrase typed on another
/// system opens the file) with `salt` at `cost`.
fn stretch(
    passphrase: &str,
    salt: &[u8; 16],
    cost: KdfCost,
) -> Result<Zeroizing<[u8; 32]>, SeedError> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, cost.params()?);
    let mut normalized = Cow::Borrowed(passphrase);
    bip39::Mnemonic::normalize_utf8_cow(&mut normalized);
    let normalized = Zeroizing::new(normalized.into_owned());
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(normalized.as_bytes(), salt, key.as_mut())
        .map_err(|e| SeedError::BadCost(e.to_string()))?;
    Ok(key)
}

/// Seals `entropy` under `passphrase` with a fresh salt and nonce.
fn seal(entropy: &[u8], passphrase: &str, cost: KdfCost) -> Result<Sealed, SeedError> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    OsRng
        .try_fill_bytes(&mut salt)
        .and_then(|()| OsRng.try_fill_bytes(&mut nonce))
        .map_err(|e| SeedError::Randomness(e.to_string()))?;
    let key = stretch(passphrase, &salt, cost)?;
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let aad = header(cost, &salt, &nonce);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: entropy,
                aad: &aad,
            },
        )
        .map_err(|_| SeedError::Randomness("sealing failed".to_string()))?;
    Ok(Sealed {
        memory_kib: cost.memory_kib,
        iterations: cost.iterations,
        parallelism: cost.parallelism,
        salt: hex::encode(salt),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ciphertext),
    })
}

/// Opens `sealed` with `passphrase`.
fn unseal(path: &Path, sealed: &Sealed, passphrase: &str) -> Result<Zeroizing<Vec<u8>>, SeedError> {
    let corrupt = |message: &str| SeedError::Corrupt {
        path: path.to_path_buf(),
        message: message.to_string(),
    };
    let salt: [u8; 16] =
        decode_hex(&sealed.salt).ok_or_else(|| corrupt("salt is not 16 hex bytes"))?;
    let nonce: [u8; 24] =
        decode_hex(&sealed.nonce).ok_or_else(|| corrupt("nonce is not 24 hex bytes"))?;
    let ciphertext =
        hex::decode(&sealed.ciphertext).map_err(|_| corrupt("ciphertext is not hex"))?;
    // 16 or 32 bytes of entropy and the 16-byte tag: refuse anything else before working.
    if ciphertext.len() != 32 && ciphertext.len() != 48 {
        return Err(corrupt("ciphertext has the wrong length"));
    }
    let cost = KdfCost {
        memory_kib: sealed.memory_kib,
        iterations: sealed.iterations,
        parallelism: sealed.parallelism,
    };
    let key = stretch(passphrase, &salt, cost)?;
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let aad = header(cost, &salt, &nonce);
    cipher
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SeedError::WrongPassphrase(path.to_path_buf()))
}

/// Exactly `N` bytes of hex, or `None`.
fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Small enough for tests to run quickly.
    pub(crate) const CHEAP: KdfCost = KdfCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn sealed_file(dir: &Path) -> Mnemonic {
        let m = Mnemonic::generate().unwrap();
        SeedFile::create_with_cost(dir, &m, Some("correct horse"), CHEAP).unwrap();
        m
    }

    fn edit(dir: &Path, change: impl FnOnce(&mut serde_json::Value)) {
        let path = SeedFile::path(dir);
        let mut value: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        change(&mut value);
        fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
    }

    /// A clear seed opens to the same words, without a passphrase, and is written 0600.
    #[test]
    fn clear_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mnemonic::generate().unwrap();
        SeedFile::create(dir.path(), &m, None).unwrap();
        assert!(SeedFile::exists(dir.path()));
        assert!(!SeedFile::is_encrypted(dir.path()).unwrap());
        let opened = SeedFile::open(dir.path(), None).unwrap();
        assert_eq!(opened.mnemonic(), &m);
        assert!(!opened.encrypted());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(SeedFile::path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// A sealed seed opens with its passphrase, and the file holds no entropy in clear.
    #[test]
    fn passphrase_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let m = sealed_file(dir.path());
        assert!(SeedFile::is_encrypted(dir.path()).unwrap());
        let text = fs::read_to_string(SeedFile::path(dir.path())).unwrap();
        assert!(!text.contains(&hex::encode(m.entropy().as_slice())));
        let opened = SeedFile::open(dir.path(), Some("correct horse")).unwrap();
        assert_eq!(opened.mnemonic(), &m);
        assert!(opened.encrypted());
    }

    /// A passphrase typed in another Unicode form (composed vs decomposed) still opens.
    #[test]
    fn passphrase_is_normalized() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mnemonic::generate().unwrap();
        SeedFile::create_with_cost(dir.path(), &m, Some("caf\u{e9}"), CHEAP).unwrap();
        let opened = SeedFile::open(dir.path(), Some("cafe\u{301}")).unwrap();
        assert_eq!(opened.mnemonic(), &m);
    }

    /// A wrong passphrase is refused with a typed error.
    #[test]
    fn wrong_passphrase_refused() {
        let dir = tempfile::tempdir().unwrap();
        sealed_file(dir.path());
        assert!(matches!(
            SeedFile::open(dir.path(), Some("correct horse ")),
            Err(SeedError::WrongPassphrase(_))
        ));
    }

    /// An encrypted seed without a passphrase, and a clear one with one, are refused.
    #[test]
    fn missing_or_needless_passphrase_refused() {
        let sealed = tempfile::tempdir().unwrap();
        sealed_file(sealed.path());
        assert!(matches!(
            SeedFile::open(sealed.path(), None),
            Err(SeedError::PassphraseRequired(_))
        ));
        let clear = tempfile::tempdir().unwrap();
        SeedFile::create(clear.path(), &Mnemonic::generate().unwrap(), None).unwrap();
        assert!(matches!(
            SeedFile::open(clear.path(), Some("x")),
            Err(SeedError::UnexpectedPassphrase(_))
        ));
    }

    /// Changing any sealed field (the cost, salt, nonce or ciphertext) makes opening fail,
    /// because the header is associated data and the rest is the key's input or the box.
    #[test]
    fn tampered_sealed_file_refused() {
        type Change = fn(&mut serde_json::Value);
        let changes: [Change; 4] = [
            |v| v["sealed"]["iterations"] = 2.into(),
            |v| v["sealed"]["salt"] = "00".repeat(16).into(),
            |v| v["sealed"]["nonce"] = "00".repeat(24).into(),
            |v| {
                let mut c = hex::decode(v["sealed"]["ciphertext"].as_str().unwrap()).unwrap();
                c[0] ^= 1;
                v["sealed"]["ciphertext"] = hex::encode(c).into();
            },
        ];
        for change in changes {
            let dir = tempfile::tempdir().unwrap();
            sealed_file(dir.path());
            edit(dir.path(), change);
            assert!(matches!(
                SeedFile::open(dir.path(), Some("correct horse")),
                Err(SeedError::WrongPassphrase(_))
            ));
        }
    }

    /// Damaged clear files, unknown fields and versions, and wild costs give `Corrupt` or
    /// `BadCost`, never a panic or a huge allocation.
    #[test]
    fn corrupt_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        SeedFile::create(dir.path(), &Mnemonic::generate().unwrap(), None).unwrap();
        edit(dir.path(), |v| {
            let mut e = hex::decode(v["entropy"].as_str().unwrap()).unwrap();
            e[5] ^= 0x40;
            v["entropy"] = hex::encode(e).into();
        });
        assert!(matches!(
            SeedFile::open(dir.path(), None),
            Err(SeedError::Corrupt { .. })
        ));

        for (change, bad_cost) in [
            (
                (|v| v["version"] = 2.into()) as fn(&mut serde_json::Value),
                false,
            ),
            (|v| v["extra"] = 1.into(), false),
            (|v| v["sealed"]["nonce"] = "00".into(), false),
            (|v| v["sealed"]["ciphertext"] = "zz".into(), false),
            (|v| v["sealed"]["memory_kib"] = u32::MAX.into(), true),
            (|v| v["sealed"]["parallelism"] = 0.into(), true),
            (|v| v["entropy"] = "00".into(), false),
        ] {
            let dir = tempfile::tempdir().unwrap();
            sealed_file(dir.path());
            edit(dir.path(), change);
            let result = SeedFile::open(dir.path(), Some("correct horse"));
            if bad_cost {
                assert!(matches!(result, Err(SeedError::BadCost(_))), "{result:?}");
            } else {
                assert!(
                    matches!(result, Err(SeedError::Corrupt { .. })),
                    "{result:?}"
                );
            }
        }

        fs::write(SeedFile::path(dir.path()), b"\xff{not json").unwrap();
        assert!(matches!(
            SeedFile::open(dir.path(), None),
            Err(SeedError::Corrupt { .. })
        ));
    }

    /// An existing seed is never overwritten, and a missing one is reported as such.
    #[test]
    fn no_overwrite_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!SeedFile::exists(dir.path()));
        assert!(matches!(
            SeedFile::open(dir.path(), None),
            Err(SeedError::NotFound(_))
        ));
        let first = Mnemonic::generate().unwrap();
        SeedFile::create(dir.path(), &first, None).unwrap();
        assert!(matches!(
            SeedFile::create(dir.path(), &Mnemonic::generate().unwrap(), None),
            Err(SeedError::AlreadyExists(_))
        ));
        assert_eq!(SeedFile::open(dir.path(), None).unwrap().mnemonic(), &first);
    }

    /// An empty passphrase is refused at creation.
    #[test]
    fn empty_passphrase_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            SeedFile::create(dir.path(), &Mnemonic::generate().unwrap(), Some("")),
            Err(SeedError::EmptyPassphrase)
        ));
        assert!(!SeedFile::exists(dir.path()));
    }

    /// The default cost is the one DESIGN asks for, and it is recorded in the file.
    #[test]
    fn cost_is_recorded() {
        assert_eq!(
            KdfCost::DEFAULT,
            KdfCost {
                memory_kib: 65536,
                iterations: 3,
                parallelism: 1
            }
        );
        let dir = tempfile::tempdir().unwrap();
        sealed_file(dir.path());
        let value: serde_json::Value =
            serde_json::from_slice(&fs::read(SeedFile::path(dir.path())).unwrap()).unwrap();
        assert_eq!(value["sealed"]["memory_kib"], 64);
        assert_eq!(value["sealed"]["iterations"], 1);
    }
}
