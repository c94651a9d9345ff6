//! Keys from a seed (DESIGN §7): every key a seeded wallet makes, accounts and coins alike,
//! derives from one secret shown once as BIP-39 words, so `restore` from the words finds
//! every account and coin again by asking the validators.
//!
//! - [`Mnemonic`]: the words (12 or 24, English), and the 64-byte BIP-39 seed they stand for.
//! - [`derive_key`]: HKDF-SHA256 from the seed, per network, purpose and index.
//! - [`SeedFile`]: `seed.json` in the wallet folder, the seed's entropy in hex, or sealed
//!   with a passphrase (Argon2id, then XChaCha20-Poly1305).
//! - [`KeyCounters`] and [`SeedKeys`]: `counters.json`, the next unused index per network
//!   and purpose, advanced durably before a key is handed out, so no index ever serves two
//!   uses, whatever crashes.

mod counters;
mod derive;
mod file;
mod words;

use std::path::PathBuf;

pub use counters::{KeyCounters, NextIndices, SeedKeys};
pub use derive::{KEY_SALT, KeyPurpose, derive_key};
pub use file::{KdfCost, SeedFile};
pub use words::Mnemonic;

use crate::wallet::WalletError;

/// Why the seed, its file or its counters could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Recovery phrases are 12 or 24 words; anything else is a typing slip.
    #[error("a recovery phrase has 12 or 24 words, not {count}")]
    WrongWordCount { count: usize },
    /// A word outside the BIP-39 English list (the word itself is not repeated, since the
    /// message may end up in a log and a near miss would give a secret word away).
    #[error("word {position} of the recovery phrase is not a BIP-39 English word")]
    UnknownWord { position: usize },
    /// Every word is known but the checksum they carry does not match.
    #[error("the recovery phrase's checksum does not match: a word is wrong, or two are swapped")]
    BadChecksum,
    /// The operating system's random source failed.
    #[error("the operating system's random source failed: {0}")]
    Randomness(String),
    /// `seed.json` is never overwritten: the words it holds may be the only copy.
    #[error("{0} already exists; a wallet's seed is never replaced")]
    AlreadyExists(PathBuf),
    /// The folder holds no `seed.json`.
    #[error("{0} does not exist: this wallet has no seed")]
    NotFound(PathBuf),
    /// The seed is encrypted and no passphrase was given.
    #[error("{0} is encrypted: a passphrase is needed")]
    PassphraseRequired(PathBuf),
    /// A passphrase was given for a seed stored in clear, which it does not protect.
    #[error("{0} is not encrypted; it takes no passphrase")]
    UnexpectedPassphrase(PathBuf),
    /// An empty passphrase would only look like protection.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// Decryption failed: the authentication tag covers the header and the sealed seed, so
    /// a wrong passphrase and an altered file read the same.
    #[error("{0}: the passphrase is wrong, or the file was altered")]
    WrongPassphrase(PathBuf),
    /// Argon2 cost parameters outside what this wallet accepts.
    #[error("key-stretching cost {0}")]
    BadCost(String),
    /// A file that does not have the expected form.
    #[error("{path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing a file failed.
    #[error(transparent)]
    Write(#[from] WalletError),
    /// A counter reached `u64::MAX`: no fresh index is left.
    #[error("no fresh key index is left for this network and purpose")]
    CounterExhausted,
}
