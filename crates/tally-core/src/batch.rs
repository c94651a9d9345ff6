//! Batch verification of Ed25519 signatures: the one implementation of the batch equation,
//! used by validators (votes, orders), the proof-of-work chain (transactions) and the
//! tracker (registrations).
//!
//! Rules are ZIP-215, the rules of ed25519-zebra that [`AccountId::verify`] applies: `s`
//! must be canonical, the key `A` and the commitment `R` may be any encoding of a curve
//! point (small-order and non-canonical ones included), and the equation is cofactored,
//! `[8](s·B − R − k·A) = 0` with `k = SHA-512(R ‖ A ‖ message)`. Under these rules a batch
//! holds exactly when every single check holds, so how a signature was checked never
//! changes whether it is valid.
//!
//! A batch checks `[8](−(Σ zᵢsᵢ)·B + Σ zᵢ·Rᵢ + Σ (zᵢkᵢ)·Aᵢ) = 0` with random 128-bit `zᵢ`,
//! one multiscalar multiplication for the lot (coefficients of a repeated key are summed).
//! If it fails, each signature is checked on its own, so one bad signature does not
//! condemn the honest ones beside it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{PoisonError, RwLock};

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest as _, Sha512};

use crate::{AccountId, Signature};

/// One queued check, with its challenge `k` already hashed (so the message is not kept).
struct Check {
    signer: AccountId,
    r: [u8; 32],
    s: [u8; 32],
    k: Scalar,
}

/// Collects signature checks and verifies them together (see the module documentation).
#[derive(Default)]
pub struct BatchVerifier {
    checks: Vec<Check>,
}

impl BatchVerifier {
    /// An empty batch with room for `capacity` checks.
    pub fn with_capacity(capacity: usize) -> Self {
        BatchVerifier {
            checks: Vec::with_capacity(capacity),
        }
    }

    /// Queues "`signer` signed `message` with `signature`"; returns its index in the result.
    pub fn push(&mut self, signer: &AccountId, signature: &Signature, message: &[u8]) -> usize {
        let bytes = signature.as_bytes();
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        let mut hasher = Sha512::new();
        hasher.update(r);
        hasher.update(signer.as_bytes());
        hasher.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&hasher.finalize().into());
        self.checks.push(Check {
            signer: *signer,
            r,
            s,
            k,
        });
        self.checks.len() - 1
    }

    /// How many checks are queued.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Verifies every queued check; `result[i]` tells whether check `i` holds.
    pub fn verify(self) -> Vec<bool> {
        self.verify_keys(None)
    }

    /// As [`BatchVerifier::verify`], taking decompressed keys from `keys` and adding the
    /// ones it lacks: for callers that see the same signers again and again.
    pub fn verify_with_cache(self, keys: &KeyCache) -> Vec<bool> {
        self.verify_keys(Some(keys))
    }

    fn verify_keys(self, cache: Option<&KeyCache>) -> Vec<bool> {
        if self.checks.is_empty() {
            return Vec::new();
        }
        // Each distinct signer once, in order of first appearance.
        let mut slot_of: HashMap<AccountId, usize> = HashMap::with_capacity(self.checks.len());
        let mut signers = Vec::new();
        let slots: Vec<usize> = self
            .checks
            .iter()
            .map(|check| {
                *slot_of.entry(check.signer).or_insert_with(|| {
                    signers.push(check.signer);
                    signers.len() - 1
                })
            })
            .collect();
        let keys = match cache {
            Some(cache) => cache.points(&signers),
            None => signers.iter().map(decompress_key).collect(),
        };
        if batch_holds(&self.checks, &slots, &keys) {
            return vec![true; self.checks.len()];
        }
        self.checks
            .iter()
            .zip(slots)
            .map(|(check, slot)| keys[slot].is_some_and(|key| single_holds(check, &key)))
            .collect()
    }
}

fn decompress_key(account: &AccountId) -> Option<EdwardsPoint> {
    CompressedEdwardsY(*account.as_bytes()).decompress()
}

/// `R` and `s` of a check, or `None` if `R` is not a point or `s` is not canonical.
fn commitment_and_response(check: &Check) -> Option<(EdwardsPoint, Scalar)> {
    let r = CompressedEdwardsY(check.r).decompress()?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(check.s))?;
    Some((r, s))
}

/// The batch equation; false if it fails or any input is malformed.
fn batch_holds(checks: &[Check], slots: &[usize], keys: &[Option<EdwardsPoint>]) -> bool {
    let Some(keys) = keys.iter().copied().collect::<Option<Vec<EdwardsPoint>>>() else {
        return false;
    };
    let mut key_coefficients = vec![Scalar::ZERO; keys.len()];
    let mut commitment_coefficients = Vec::with_capacity(checks.len());
    let mut commitments = Vec::with_capacity(checks.len());
    let mut base_coefficient = Scalar::ZERO;
    for (check, &slot) in checks.iter().zip(slots) {
        let Some((r, s)) = commitment_and_response(check) else {
            return false;
        };
        let z = Scalar::from(rand::random::<u128>());
        base_coefficient -= z * s;
        commitments.push(r);
        commitment_coefficients.push(z);
        key_coefficients[slot] += z * check.k;
    }
    EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&base_coefficient)
            .chain(&key_coefficients)
            .chain(&commitment_coefficients),
        std::iter::once(&ED25519_BASEPOINT_POINT)
            .chain(&keys)
            .chain(&commitments),
    )
    .mul_by_cofactor()
    .is_identity()
}

/// One signature alone: `[8](R − (s·B − k·A)) = 0`.
fn single_holds(check: &Check, key: &EdwardsPoint) -> bool {
    let Some((r, s)) = commitment_and_response(check) else {
        return false;
    };
    let expected = EdwardsPoint::vartime_double_scalar_mul_basepoint(&check.k, &-key, &s);
    (r - expected).mul_by_cofactor().is_identity()
}

/// Decompressed public keys, kept between batches by whoever owns it (a chain keeps one for
/// its blocks' senders). Decompressing a key costs about a fifth of a verification, and
/// the same senders sign block after block. Shared between threads; bounded: when full it
/// is emptied (simple, and the working set refills it at once).
pub struct KeyCache {
    points: RwLock<HashMap<AccountId, EdwardsPoint>>,
    max_keys: usize,
}

impl KeyCache {
    /// A cache of at most `max_keys` keys (about 200 bytes each).
    pub fn new(max_keys: usize) -> Self {
        KeyCache {
            points: RwLock::new(HashMap::new()),
            max_keys,
        }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.points
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The decompressed keys of `accounts` (`None` for bytes that are not a point, which
    /// are never cached); the ones it lacked are added.
    fn points(&self, accounts: &[AccountId]) -> Vec<Option<EdwardsPoint>> {
        let mut out = Vec::with_capacity(accounts.len());
        let mut missing = Vec::new();
        {
            // A panic cannot leave the map half-changed (inserts are whole), so a poisoned
            // lock still guards a sound map.
            let points = self.points.read().unwrap_or_else(PoisonError::into_inner);
            for (i, account) in accounts.iter().enumerate() {
                let point = points.get(account).copied();
                if point.is_none() {
                    missing.push(i);
                }
                out.push(point);
            }
        }
        if missing.is_empty() {
            return out;
        }
        let mut fresh = Vec::with_capacity(missing.len());
        for i in missing {
            let point = decompress_key(&accounts[i]);
            out[i] = point;
            if let Some(point) = point {
                fresh.push((accounts[i], point));
            }
        }
        let mut points = self.points.write().unwrap_or_else(PoisonError::into_inner);
        if points.len() + fresh.len() > self.max_keys {
            points.clear();
        }
        points.extend(fresh.into_iter().take(self.max_keys));
        out
    }
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("keys", &self.len())
            .field("max_keys", &self.max_keys)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;
    use proptest::prelude::*;

    fn flip(signature: &Signature, bit: usize) -> Signature {
        let mut bytes = *signature.as_bytes();
        bytes[bit / 8] ^= 1 << (bit % 8);
        Signature::from(bytes)
    }

    #[test]
    fn batch_verification_finds_the_one_bad_signature() {
        let keys: Vec<SecretKey> = (0..8u8).map(|i| SecretKey::from_bytes([i; 32])).collect();
        let mut batch = BatchVerifier::default();
        for (i, key) in keys.iter().enumerate() {
            let message = [i as u8; 10];
            let mut sig = key.sign(&message);
            if i == 5 {
                sig = flip(&sig, 0);
            }
            batch.push(&key.account(), &sig, &message);
        }
        let result = batch.verify();
        assert_eq!(result.iter().filter(|ok| !**ok).count(), 1);
        assert!(!result[5]);
    }

    #[test]
    fn single_verification_agrees_with_batch() {
        let key = SecretKey::from_bytes([9; 32]);
        let sig = key.sign(b"tally");
        assert!(key.account().verify(&sig, b"tally"));
        assert!(!key.account().verify(&sig, b"tallx"));
        let mut batch = BatchVerifier::default();
        batch.push(&key.account(), &sig, b"tally");
        assert_eq!(batch.verify(), vec![true]);
        assert!(BatchVerifier::default().verify().is_empty());
    }

    /// ZIP-215 accepts a small-order key with the trivial signature (R the identity, s
    /// zero): single verification (ed25519-zebra) and the batch must agree on it.
    #[test]
    fn a_small_order_key_is_judged_alike_by_batch_and_single() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let key = AccountId::from(identity);
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let sig = Signature::from(sig);
        let single = key.verify(&sig, b"anything");
        let mut batch = BatchVerifier::default();
        batch.push(&key, &sig, b"anything");
        let honest = SecretKey::from_bytes([1; 32]);
        batch.push(&honest.account(), &honest.sign(b"x"), b"x");
        assert_eq!(batch.verify(), vec![single, true]);
        assert!(single, "ZIP-215 accepts small-order keys");
    }

    #[test]
    fn the_cache_is_bounded_and_changes_no_answer() {
        let cache = KeyCache::new(3);
        let keys: Vec<SecretKey> = (0..5u8).map(|i| SecretKey::from_bytes([i; 32])).collect();
        for round in 0..3 {
            let mut batch = BatchVerifier::default();
            for key in &keys {
                batch.push(&key.account(), &key.sign(b"m"), b"m");
            }
            // Not a point: never cached.
            batch.push(&AccountId::from([0xff; 32]), &keys[0].sign(b"m"), b"m");
            let result = batch.verify_with_cache(&cache);
            assert_eq!(result, vec![true, true, true, true, true, false], "{round}");
            assert!(cache.len() <= 3);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever is corrupted (a signature bit, the message, the signer, a non-canonical
        /// s), batch answers, with or without the cache, are single verification's, item
        /// by item.
        #[test]
        fn batch_agrees_with_single_verification(
            n in 1usize..8, victim in 0usize..8, what in 0u8..5, bit in 0usize..512,
            repeat in 1usize..4
        ) {
            let mut items: Vec<(AccountId, Signature, Vec<u8>)> = (0..n)
                .map(|i| {
                    let key = SecretKey::from_bytes([(i % repeat) as u8 + 40; 32]);
                    let message = vec![i as u8; 1 + i];
                    (key.account(), key.sign(&message), message)
                })
                .collect();
            let v = victim % n;
            match what {
                0 => items[v].1 = flip(&items[v].1, bit),
                1 => items[v].2.push(0),
                2 => items[v].0 = AccountId::from([0xff; 32]),
                3 => {
                    let mut sig = *items[v].1.as_bytes();
                    sig[63] |= 0xf0; // s far above the group order
                    items[v].1 = Signature::from(sig);
                }
                _ => {}
            }
            let single: Vec<bool> =
                items.iter().map(|(key, sig, message)| key.verify(sig, message)).collect();
            let cache = KeyCache::new(16);
            for cached in [false, true, true] {
                let mut batch = BatchVerifier::default();
                for (key, sig, message) in &items {
                    batch.push(key, sig, message);
                }
                let result = if cached { batch.verify_with_cache(&cache) } else { batch.verify() };
                prop_assert_eq!(&result, &single);
            }
        }
    }
}
