//! The proof of work that admits a key (Minicash): SHA-256 of the ASCII string
//! `"<64 hex digits of the key>_<decimal nonce>"` must start with `bits` zero bits.
//!
//! The key's 64 hex digits fill exactly one SHA-256 block, so a search hashes that block
//! once and then only the short tail per nonce.

use sha2::{Digest as _, Sha256};

use crate::{AccountId, Digest};

/// The hash a nonce is judged by.
pub fn intro_pow_hash(account: &AccountId, nonce: u64) -> Digest {
    let mut hasher = IntroPowHasher::new(account);
    hasher.hash(nonce)
}

/// Whether `nonce` is a valid proof of work for `account` at `bits` difficulty.
pub fn check_intro_pow(account: &AccountId, nonce: u64, bits: u32) -> bool {
    leading_zero_bits(&intro_pow_hash(account, nonce)) >= bits
}

/// The number of leading zero bits of a digest.
pub fn leading_zero_bits(digest: &Digest) -> u32 {
    let mut bits = 0;
    for byte in digest.as_bytes() {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// Expected number of hashes to find a proof at `bits` difficulty.
pub fn expected_attempts(bits: u32) -> f64 {
    2f64.powi(bits.min(1023) as i32)
}

/// Hashes nonces for one key, reusing the state after the key's block.
#[derive(Clone)]
pub struct IntroPowHasher {
    after_key: Sha256,
}

impl IntroPowHasher {
    /// A hasher for `account`.
    pub fn new(account: &AccountId) -> Self {
        let mut after_key = Sha256::new();
        after_key.update(account.to_hex().as_bytes());
        IntroPowHasher { after_key }
    }

    /// The hash for `nonce`.
    pub fn hash(&mut self, nonce: u64) -> Digest {
        let mut tail = [0u8; 21];
        tail[0] = b'_';
        let len = 1 + write_decimal(nonce, &mut tail[1..]);
        let mut hasher = self.after_key.clone();
        hasher.update(&tail[..len]);
        Digest::from(<[u8; 32]>::from(hasher.finalize()))
    }

    /// Searches `range` for a nonce meeting `bits`; returns the first found.
    pub fn search(&mut self, range: std::ops::Range<u64>, bits: u32) -> Option<u64> {
        range
            .into_iter()
            .find(|nonce| leading_zero_bits(&self.hash(*nonce)) >= bits)
    }
}

fn write_decimal(mut value: u64, out: &mut [u8]) -> usize {
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (value % 10) as u8;
        n += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for i in 0..n {
        out[i] = digits[n - 1 - i];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;

    #[test]
    fn hash_is_sha256_of_the_documented_string() {
        let account = SecretKey::from_bytes([7; 32]).account();
        let text = format!("{}_{}", account.to_hex(), 2514606u64);
        let expected = Digest::from(<[u8; 32]>::from(Sha256::digest(text.as_bytes())));
        assert_eq!(intro_pow_hash(&account, 2514606), expected);
        assert_eq!(
            intro_pow_hash(&account, 0),
            Digest::from(<[u8; 32]>::from(Sha256::digest(
                format!("{}_0", account.to_hex()).as_bytes()
            )))
        );
        assert_eq!(
            intro_pow_hash(&account, u64::MAX),
            Digest::from(<[u8; 32]>::from(Sha256::digest(
                format!("{}_{}", account.to_hex(), u64::MAX).as_bytes()
            )))
        );
    }

    #[test]
    fn search_finds_a_proof_that_checks() {
        let account = SecretKey::from_bytes([8; 32]).account();
        let nonce = IntroPowHasher::new(&account).search(0..1_000_000, 10);
        let nonce = nonce.unwrap_or_else(|| panic!("no proof in a million tries at 10 bits"));
        assert!(check_intro_pow(&account, nonce, 10));
        assert!(leading_zero_bits(&intro_pow_hash(&account, nonce)) >= 10);
    }

    #[test]
    fn counts_leading_zero_bits() {
        let mut bytes = [0xffu8; 32];
        assert_eq!(leading_zero_bits(&Digest::from(bytes)), 0);
        bytes[0] = 0;
        bytes[1] = 0x1f;
        assert_eq!(leading_zero_bits(&Digest::from(bytes)), 11);
        assert_eq!(leading_zero_bits(&Digest::from([0u8; 32])), 256);
    }
}
