//! Batch verification of a block's transaction signatures, with a cache of decompressed
//! sender keys.
//!
//! The batch equation is exactly tally-core's (ed25519-zebra's ZIP-215 batch check):
//! `[8](−(Σ zᵢsᵢ)B + Σ zᵢRᵢ + Σ (zᵢkᵢ)Aᵢ) = 0` with random 128-bit `zᵢ`, `s` canonical, `R`
//! and `A` decompressed under ZIP-215 rules. What is added is a memo of decompressed
//! public keys: decompressing a key costs about a fifth of a verification, and the same
//! senders sign block after block. When the batch fails (or any input is malformed) the
//! chunk is handed to tally-core's [`BatchVerifier`], which decides each signature, so
//! which signatures are valid is always tally-core's answer.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest as _, Sha512};
use tally_core::{AccountId, BatchVerifier, NetworkId};

use crate::block::Transaction;

/// Most keys the memo holds; it is emptied when full (simple, and bounded).
const MAX_CACHED_KEYS: usize = 500_000;

fn key_cache() -> &'static RwLock<HashMap<AccountId, EdwardsPoint>> {
    static CACHE: OnceLock<RwLock<HashMap<AccountId, EdwardsPoint>>> = OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::new()))
}

/// The decompressed keys of `accounts` (`None` for bytes that are not a point).
fn decompressed_keys(accounts: &[AccountId]) -> Vec<Option<EdwardsPoint>> {
    let mut out: Vec<Option<EdwardsPoint>> = Vec::with_capacity(accounts.len());
    let mut missing = Vec::new();
    {
        let cache = key_cache().read().ok();
        for (i, account) in accounts.iter().enumerate() {
            match cache.as_ref().and_then(|c| c.get(account)) {
                Some(point) => out.push(Some(*point)),
                None => {
                    out.push(None);
                    missing.push(i);
                }
            }
        }
    }
    if missing.is_empty() {
        return out;
    }
    let mut fresh = Vec::with_capacity(missing.len());
    for i in missing {
        let account = accounts[i];
        let point = CompressedEdwardsY(*account.as_bytes()).decompress();
        out[i] = point;
        if let Some(point) = point {
            fresh.push((account, point));
        }
    }
    if let Ok(mut cache) = key_cache().write() {
        if cache.len() + fresh.len() > MAX_CACHED_KEYS {
            cache.clear();
        }
        cache.extend(fresh);
    }
    out
}

/// Verifies one chunk; `result[i]` tells whether `txs[i]` is signed by its sender.
pub(crate) fn verify_chunk(network: &NetworkId, txs: &[Transaction]) -> Vec<bool> {
    if txs.is_empty() {
        return Vec::new();
    }
    if batch_holds(network, txs) {
        return vec![true; txs.len()];
    }
    let mut batch = BatchVerifier::with_capacity(txs.len());
    for tx in txs {
        batch.push(&tx.signer(), &tx.signature, &tx.signing_bytes(network));
    }
    batch.verify()
}

/// The batch equation over `txs`; false if it fails or any input is malformed.
#[allow(non_snake_case)]
fn batch_holds(network: &NetworkId, txs: &[Transaction]) -> bool {
    let senders: Vec<AccountId> = txs.iter().map(Transaction::signer).collect();
    let keys = decompressed_keys(&senders);
    let mut A_coeffs: HashMap<AccountId, (Scalar, EdwardsPoint)> = HashMap::new();
    let mut R_coeffs = Vec::with_capacity(txs.len());
    let mut Rs = Vec::with_capacity(txs.len());
    let mut B_coeff = Scalar::ZERO;
    for (tx, key) in txs.iter().zip(keys) {
        let Some(A) = key else {
            return false;
        };
        let sig = tx.signature.as_bytes();
        let mut r_bytes = [0u8; 32];
        let mut s_bytes = [0u8; 32];
        r_bytes.copy_from_slice(&sig[..32]);
        s_bytes.copy_from_slice(&sig[32..]);
        let Some(R) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let mut hasher = Sha512::new();
        hasher.update(r_bytes);
        hasher.update(tx.signer().as_bytes());
        hasher.update(tx.signing_bytes(network));
        let k = Scalar::from_bytes_mod_order_wide(&hasher.finalize().into());
        let z = Scalar::from(rand::random::<u128>());
        B_coeff -= z * s;
        Rs.push(R);
        R_coeffs.push(z);
        let entry = A_coeffs.entry(tx.signer()).or_insert((Scalar::ZERO, A));
        entry.0 += z * k;
    }
    let check = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&B_coeff)
            .chain(A_coeffs.values().map(|(c, _)| c))
            .chain(R_coeffs.iter()),
        std::iter::once(&ED25519_BASEPOINT_POINT)
            .chain(A_coeffs.values().map(|(_, a)| a))
            .chain(Rs.iter()),
    );
    check.mul_by_cofactor().is_identity()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tally_core::{Amount, Order, SecretKey, Signature, Transfer};

    fn network() -> NetworkId {
        NetworkId(tally_core::sha256(&[b"sigverify"]))
    }

    fn signed(seed: u8, amount: u64, sequence: u64) -> Transaction {
        let key = SecretKey::from_bytes([seed; 32]);
        Transaction::sign(
            Transfer {
                sender: key.account(),
                recipient: SecretKey::from_bytes([seed.wrapping_add(1); 32]).account(),
                amount: Amount::from_microcash(amount),
                sequence,
            },
            &key,
            &network(),
        )
    }

    fn core_says(txs: &[Transaction]) -> Vec<bool> {
        txs.iter()
            .map(|tx| tx.to_signed_order().verify(&network()))
            .collect()
    }

    #[test]
    fn valid_signatures_pass_and_repeat_senders_coalesce() {
        let txs: Vec<_> = (0..20u8)
            .map(|i| signed(i % 5, 1 + u64::from(i), u64::from(i)))
            .collect();
        assert_eq!(verify_chunk(&network(), &txs), vec![true; 20]);
        // Again, now with every key cached.
        assert_eq!(verify_chunk(&network(), &txs), vec![true; 20]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever is corrupted (a signature bit, the amount, the sender, a non-canonical
        /// s), the answer is tally-core's single verification, item by item.
        #[test]
        fn agrees_with_single_verification(
            n in 1usize..8, victim in 0usize..8, what in 0u8..5, bit in 0usize..512
        ) {
            let mut txs: Vec<_> = (0..n).map(|i| signed(i as u8 + 40, 5, i as u64)).collect();
            let v = victim % n;
            match what {
                0 => {
                    let mut sig = *txs[v].signature.as_bytes();
                    sig[bit / 8] ^= 1 << (bit % 8);
                    txs[v].signature = Signature::from(sig);
                }
                1 => {
                    if let Order::Transfer(t) = &mut txs[v].order {
                        t.amount = Amount::from_microcash(6);
                    }
                }
                2 => {
                    if let Order::Transfer(t) = &mut txs[v].order {
                        t.sender = AccountId::from([0xff; 32]);
                    }
                }
                3 => {
                    let mut sig = *txs[v].signature.as_bytes();
                    sig[63] |= 0xf0; // s far above the group order
                    txs[v].signature = Signature::from(sig);
                }
                _ => {}
            }
            prop_assert_eq!(verify_chunk(&network(), &txs), core_says(&txs));
        }
    }
}
