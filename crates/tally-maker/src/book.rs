//! The quotes the maker signed, kept in `maker/quotes.json` (written before a quote is
//! announced): a payer's lock cites a quote by hash, maybe after the maker restarted, and the
//! maker honours exactly the quotes it signed, no others.

use std::path::{Path, PathBuf};

use tally_core::Digest;
use tally_swap::SignedQuote;
use tally_wallet::fs::write_atomic;

use crate::MakerError;

/// How long a quote is kept after it expires: a lock made just before expiry must still be
/// answered after a restart, but the saga refuses a lock first seen more than its grace
/// (the time to certify plus the notice time, seconds) after the expiry, so ten minutes is
/// plenty. A wire already started keeps its quote in its own journal.
const KEEP_AFTER_EXPIRY_MS: u64 = 10 * 60 * 1000;

pub(crate) struct QuoteBook {
    path: PathBuf,
    quotes: Vec<(Digest, SignedQuote)>,
}

impl QuoteBook {
    /// The book in folder `dir` (empty when the file does not exist yet).
    pub fn load(dir: &Path) -> Result<QuoteBook, MakerError> {
        let path = dir.join("quotes.json");
        let quotes: Vec<SignedQuote> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| MakerError::Journal {
                path: path.display().to_string(),
                reason: error.to_string(),
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => {
                return Err(MakerError::Journal {
                    path: path.display().to_string(),
                    reason: error.to_string(),
                });
            }
        };
        Ok(QuoteBook {
            path,
            quotes: quotes.into_iter().map(|q| (q.hash(), q)).collect(),
        })
    }

    /// Keeps `quote` (durably) and forgets quotes long expired; then it may be announced.
    pub fn add(&mut self, quote: SignedQuote, now: u64) -> Result<(), MakerError> {
        self.quotes
            .retain(|(_, known)| known.quote.expires_ms.saturating_add(KEEP_AFTER_EXPIRY_MS) > now);
        self.quotes.push((quote.hash(), quote));
        let all: Vec<&SignedQuote> = self.quotes.iter().map(|(_, q)| q).collect();
        let json = serde_json::to_vec(&all).map_err(|error| MakerError::Journal {
            path: self.path.display().to_string(),
            reason: error.to_string(),
        })?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|error| MakerError::Journal {
                path: dir.display().to_string(),
                reason: error.to_string(),
            })?;
        }
        write_atomic(&self.path, &json)?;
        Ok(())
    }

    /// The quote with this hash, if this maker signed it.
    pub fn get(&self, hash: &Digest) -> Option<&SignedQuote> {
        self.quotes
            .iter()
            .find(|(known, _)| known == hash)
            .map(|(_, quote)| quote)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tally_core::{Amount, NetworkId, SecretKey, sha256};
    use tally_swap::Quote;

    fn quote(key: &SecretKey, expires_ms: u64, nonce: u64) -> SignedQuote {
        Quote {
            maker: key.account(),
            asset: "cash".into(),
            network_a: NetworkId(sha256(&[b"a"])),
            network_b: NetworkId(sha256(&[b"b"])),
            min_amount: Amount::from_microcash(1),
            max_amount: Amount::from_microcash(100),
            fee_ppm: 5_000,
            fee_fixed: Amount::ZERO,
            maker_a: key.account(),
            maker_b: key.account(),
            lock_time_ms: 60_000,
            delta_ms: 30_000,
            expires_ms,
            nonce,
        }
        .sign(key)
    }

    /// A lock may cite a quote after the maker restarted: the book is on disk, and it
    /// forgets only quotes long expired.
    #[test]
    fn quotes_survive_a_restart_and_long_expired_ones_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let old = quote(&key, 1_000, 1);
        let fresh = quote(&key, 10 * KEEP_AFTER_EXPIRY_MS, 2);
        let mut book = QuoteBook::load(dir.path()).unwrap();
        book.add(old.clone(), 500).unwrap();
        book.add(fresh.clone(), 2 * KEEP_AFTER_EXPIRY_MS).unwrap();
        let book = QuoteBook::load(dir.path()).unwrap();
        assert_eq!(book.get(&fresh.hash()), Some(&fresh));
        assert_eq!(book.get(&old.hash()), None);
    }
}
