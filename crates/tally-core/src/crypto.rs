//! Keys, signatures and digests. Ed25519 under ZIP-215 rules (ed25519-zebra), so that batch
//! verification ([`crate::batch`]) and single verification accept exactly the same
//! signatures: a certificate can never be valid to one validator and invalid to another
//! because of how it was checked.

use std::fmt;
use std::str::FromStr;

use ed25519_zebra::{SigningKey, VerificationKey, VerificationKeyBytes};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Why a string or byte slice is not a key, signature or digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("expected {expected} hex digits, got {got:?}")]
    Length { expected: usize, got: String },
    #[error("not hexadecimal: {0:?}")]
    NotHex(String),
    #[error("{0} is not a valid Ed25519 public key")]
    NotAPoint(String),
}

fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], KeyError> {
    if text.len() != 2 * N {
        let shown: String = text.chars().take(80).collect();
        return Err(KeyError::Length {
            expected: 2 * N,
            got: shown,
        });
    }
    let mut out = [0u8; N];
    if !decode_hex(text.as_bytes(), &mut out) {
        return Err(KeyError::NotHex(text.chars().take(80).collect()));
    }
    Ok(out)
}

/// Hex digit values; 0xff marks a byte that is not a hex digit (either case is accepted).
const HEX_VALUES: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Decodes `2 × out.len()` hex digits into `out`; false if any is not a hex digit. A table
/// lookup per digit: a validator decodes about 1,200 hex digits per transfer, and the
/// `hex` crate's decoder was a visible share of its CPU time.
fn decode_hex(text: &[u8], out: &mut [u8]) -> bool {
    if text.len() != 2 * out.len() {
        return false;
    }
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let high = HEX_VALUES[usize::from(pair[0])];
        let low = HEX_VALUES[usize::from(pair[1])];
        bad |= (high | low) & 0xf0;
        *byte = (high << 4) | (low & 0x0f);
    }
    bad == 0
}

/// Lower-case hex of `bytes` into `out` (exactly twice as long).
fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// Parses a hex string field without first copying it into a `String` (serde_json hands
/// over borrowed text whenever the field has no escapes).
struct HexVisitor<const N: usize>;

impl<'de, const N: usize> serde::de::Visitor<'de> for HexVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} hex digits", 2 * N)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<[u8; N], E> {
        parse_hex::<N>(text).map_err(E::custom)
    }
}

macro_rules! hex_bytes {
    ($name:ident, $len:expr) => {
        impl $name {
            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
            /// Lower-case hex of the bytes.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }
        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }
        impl FromStr for $name {
            type Err = KeyError;
            fn from_str(text: &str) -> Result<Self, KeyError> {
                parse_hex::<$len>(text).map(Self)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut buf = [0u8; 2 * $len];
                encode_hex(&self.0, &mut buf);
                s.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(HexVisitor::<$len>).map(Self)
            }
        }
    };
}

/// An account: an Ed25519 public key. Shown as 64 hex digits; [`AccountId::short`] gives the
/// first 16, the length of a Minicash fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId([u8; 32]);
hex_bytes!(AccountId, 32);

impl AccountId {
    /// The first 16 hex digits, for display.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..8])
    }

    /// Whether the bytes decode to a curve point. Wallets refuse to pay to an account that
    /// is not one, since no secret key could ever spend it.
    pub fn is_valid_key(&self) -> bool {
        VerificationKey::try_from(self.0).is_ok()
    }

    /// Parses hex and also requires a valid public key.
    pub fn parse_key(text: &str) -> Result<Self, KeyError> {
        let account: AccountId = text.parse()?;
        if account.is_valid_key() {
            Ok(account)
        } else {
            Err(KeyError::NotAPoint(text.to_owned()))
        }
    }

    /// Checks one signature by this account over `message`.
    pub fn verify(&self, signature: &Signature, message: &[u8]) -> bool {
        match VerificationKey::try_from(self.0) {
            Ok(key) => key
                .verify(&ed25519_zebra::Signature::from_bytes(&signature.0), message)
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// An Ed25519 signature (64 bytes, 128 hex digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);
hex_bytes!(Signature, 64);

impl Signature {
    /// The signature field of an order that no key signs (an escrow's claim or refund,
    /// whose authority is the secret or the clock): 64 zero bytes, and nothing else, so
    /// that such an order has one encoding.
    pub const NONE: Signature = Signature([0; 64]);
}

/// The secret that opens a hash-locked escrow (DESIGN §8): 32 random bytes, whose SHA-256
/// is the escrow's lock. Whoever shows it claims the escrow for its payee.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EscrowSecret([u8; 32]);
hex_bytes!(EscrowSecret, 32);

impl EscrowSecret {
    /// A fresh secret from the operating system's random source.
    pub fn generate() -> Self {
        EscrowSecret(rand::random())
    }

    /// Its hash lock: plain SHA-256 of the 32 bytes, as hash-locked contracts elsewhere
    /// use, so the same secret can open escrows on other systems too.
    pub fn hash_lock(&self) -> Digest {
        sha256(&[&self.0])
    }
}

/// A SHA-256 digest (32 bytes, 64 hex digits).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest([u8; 32]);
hex_bytes!(Digest, 32);

impl Digest {
    /// The first 16 hex digits, for people and logs (an escrow, a wire, a network).
    pub fn short(&self) -> String {
        hex::encode(&self.0[..8])
    }
}

/// SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> Digest {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    Digest(hasher.finalize().into())
}

/// SHA-256 of SHA-256 (block hashes).
pub fn sha256d(bytes: &[u8]) -> Digest {
    let first: [u8; 32] = Sha256::digest(bytes).into();
    Digest(Sha256::digest(first).into())
}

/// A secret key. Its `Debug` never prints the secret.
#[derive(Clone)]
pub struct SecretKey {
    signing: SigningKey,
    public: AccountId,
}

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self::from_bytes(rand::random())
    }

    /// The key whose 32-byte seed is `seed`.
    pub fn from_bytes(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from(seed);
        let public = AccountId(VerificationKeyBytes::from(&signing).into());
        SecretKey { signing, public }
    }

    /// The 32-byte seed, for storing the key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.signing.into()
    }

    /// The seed as hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// The account this key controls.
    pub fn account(&self) -> AccountId {
        self.public
    }

    /// Signs `message` (deterministic, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }
}

impl FromStr for SecretKey {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Self, KeyError> {
        parse_hex::<32>(text.trim()).map(Self::from_bytes)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(for {})", self.public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms_round_trip_and_reject_garbage() {
        let key = SecretKey::from_bytes([3; 32]);
        let account = key.account();
        assert_eq!(account.to_string().parse::<AccountId>(), Ok(account));
        assert_eq!(
            serde_json::from_str::<AccountId>(&serde_json::to_string(&account).unwrap_or_default())
                .ok(),
            Some(account)
        );
        assert!("abc".parse::<AccountId>().is_err());
        assert!("zz".repeat(32).parse::<AccountId>().is_err());
        assert_eq!(account.short().len(), 16);
        let secret: SecretKey = key
            .to_hex()
            .parse()
            .unwrap_or_else(|_| SecretKey::generate());
        assert_eq!(secret.account(), account);
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }
}
