//! Keys from the seed: HKDF-SHA256, one key per network, purpose and index.

use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tally_core::codec::Encode;
use tally_core::{NetworkId, SecretKey};
use zeroize::Zeroizing;

/// The HKDF salt: versions the derivation, so a later scheme never collides with this one.
pub const KEY_SALT: &[u8] = b"TALLY-KEY-V1";

/// What a derived key is for. Accounts and coins draw from separate index sequences, so
/// restoring can scan each on its own, and a coin key handed to someone never shares an
/// index with an account key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyPurpose {
    /// An account the wallet keeps.
    Account,
    /// A bearer coin's key, which travels with the coin.
    Coin,
}

impl KeyPurpose {
    /// The byte that names the purpose in the HKDF info (PROTOCOL.md).
    pub const fn tag(self) -> u8 {
        match self {
            KeyPurpose::Account => 1,
            KeyPurpose::Coin => 2,
        }
    }
}

/// The secret key at `index` for `purpose` on `network`:
/// HKDF-SHA256(salt = `TALLY-KEY-V1`, ikm = `seed`,
/// info = network id (32 bytes) ‖ purpose tag (1 byte) ‖ index (u64 little-endian)),
/// 32 bytes of output taken as the ed25519 secret seed. Deterministic, so the same words
/// give the same keys on any machine; the network in the info keeps keys of different
/// networks unrelated.
pub fn derive_key(
    seed: &[u8; 64],
    network: &NetworkId,
    purpose: KeyPurpose,
    index: u64,
) -> SecretKey {
    let mut info = Vec::with_capacity(41);
    network.encode_to(&mut info);
    purpose.tag().encode_to(&mut info);
    index.encode_to(&mut info);
    let hkdf = Hkdf::<Sha256>::new(Some(KEY_SALT), seed);
    let mut okm = Zeroizing::new([0u8; 32]);
    if hkdf.expand(&info, okm.as_mut()).is_err() {
        // HKDF-SHA256 refuses only outputs over 255 × 32 bytes; this one is 32.
        unreachable!("a 32-byte HKDF-SHA256 output is always within its limit");
    }
    SecretKey::from_bytes(*okm)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;
    use tally_core::Digest;

    use super::*;
    use crate::seed::Mnemonic;

    /// The derivation vector in PROTOCOL.md (checked independently with Python's
    /// hashlib/hmac and the `cryptography` package's ed25519).
    const VECTOR_WORDS: &str = "abandon abandon abandon abandon abandon abandon \
        abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
        abandon abandon abandon abandon abandon abandon abandon art";

    fn network(byte: u8) -> NetworkId {
        NetworkId(Digest::from([byte; 32]))
    }

    /// Fixed words, network and index give fixed keys: the vector other implementations
    /// check against. If this changes, every restored wallet loses its coins.
    #[test]
    fn derivation_vector() {
        let seed = Mnemonic::parse(VECTOR_WORDS).unwrap().to_seed("");
        let net = network(0x11);
        let account0 = derive_key(&seed, &net, KeyPurpose::Account, 0);
        let coin7 = derive_key(&seed, &net, KeyPurpose::Coin, 7);
        assert_eq!(
            hex::encode(seed.as_ref()),
            "408b285c123836004f4b8842c89324c1f01382450c0d439af345ba7fc49acf705489c6fc77dbd4e3dc1dd8cc6bc9f043db8ada1e243c4a0eafb290d399480840"
        );
        assert_eq!(
            account0.to_hex(),
            "de7e95154769b5588e1da6043a77c1d091d1f71a59c8f76d6c3319cda3de468e"
        );
        assert_eq!(
            account0.account().to_hex(),
            "2db97edeb6bea22ed46bd3737e3f64ae7d5b890917b409cfd3d5d082ed759a52"
        );
        assert_eq!(
            coin7.to_hex(),
            "894ad0994aa838cb9fa26130eda5bd4e67fb06cff521b4c71b00e0f5b550784e"
        );
        assert_eq!(
            coin7.account().to_hex(),
            "6046121ba3b234e461fac906a91a5de6304002c15072df765c441e3328acd69b"
        );
    }

    proptest! {
        /// Changing the network, the purpose or the index changes the key, and the same
        /// inputs always give the same key.
        #[test]
        fn keys_differ_per_network_purpose_and_index(
            seed in prop::array::uniform32(any::<u8>()),
            a in any::<u8>(), b in any::<u8>(),
            i in any::<u64>(), j in any::<u64>(),
        ) {
            let mut full = [0u8; 64];
            full[..32].copy_from_slice(&seed);
            let key = derive_key(&full, &network(a), KeyPurpose::Account, i);
            prop_assert_eq!(
                key.to_bytes(),
                derive_key(&full, &network(a), KeyPurpose::Account, i).to_bytes()
            );
            prop_assert_ne!(
                key.to_bytes(),
                derive_key(&full, &network(a), KeyPurpose::Coin, i).to_bytes()
            );
            if a != b {
                prop_assert_ne!(
                    key.to_bytes(),
                    derive_key(&full, &network(b), KeyPurpose::Account, i).to_bytes()
                );
            }
            if i != j {
                prop_assert_ne!(
                    key.to_bytes(),
                    derive_key(&full, &network(a), KeyPurpose::Account, j).to_bytes()
                );
            }
        }

        /// Different seeds give different keys for the same slot.
        #[test]
        fn keys_differ_per_seed(x in prop::array::uniform32(any::<u8>()),
                                y in prop::array::uniform32(any::<u8>()), i in any::<u64>()) {
            prop_assume!(x != y);
            let (mut sx, mut sy) = ([0u8; 64], [0u8; 64]);
            sx[32..].copy_from_slice(&x);
            sy[32..].copy_from_slice(&y);
            prop_assert_ne!(
                derive_key(&sx, &network(1), KeyPurpose::Coin, i).to_bytes(),
                derive_key(&sy, &network(1), KeyPurpose::Coin, i).to_bytes()
            );
        }
    }
}
