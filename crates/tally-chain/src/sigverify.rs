//! The signatures of a chunk of transactions, verified as one batch by tally-core's
//! [`BatchVerifier`] with the chain's [`KeyCache`]: the same senders sign block after
//! block, and decompressing a key costs about a fifth of a verification. Which signatures
//! are valid is tally-core's answer (ZIP-215, batch and single checks agree).

use tally_core::{BatchVerifier, KeyCache, NetworkId, Signature};

use crate::block::Transaction;

/// Verifies one chunk; `result[i]` tells whether `txs[i]` is signed by its signer for
/// `network`.
pub(crate) fn verify_chunk(network: &NetworkId, keys: &KeyCache, txs: &[Transaction]) -> Vec<bool> {
    let mut batch = BatchVerifier::with_capacity(txs.len());
    // An order no key signs (an escrow's claim or refund) is never signed by a signer: the
    // chain takes none of them as signed transactions.
    // An order no key signs (an escrow's claim or refund) is valid with exactly
    // `Signature::NONE`, as `SignedOrder::verify` says.
    let checks: Vec<Result<usize, bool>> = txs
        .iter()
        .map(|tx| match tx.signer() {
            Some(signer) => Ok(batch.push(&signer, &tx.signature, &tx.signing_bytes(network))),
            None => Err(tx.signature == Signature::NONE),
        })
        .collect();
    let verdicts = batch.verify_with_cache(keys);
    checks
        .into_iter()
        .map(|check| match check {
            Ok(i) => verdicts.get(i).copied().unwrap_or(false),
            Err(unsigned_ok) => unsigned_ok,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tally_core::{AccountId, Amount, IntroKey, Order, SecretKey, Signature, Transfer};

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

    fn transfer(tx: &mut Transaction) -> Option<&mut Transfer> {
        match &mut tx.order {
            Order::Transfer(t) => Some(t),
            _ => None,
        }
    }

    fn core_says(txs: &[Transaction]) -> Vec<bool> {
        txs.iter()
            .map(|tx| tx.to_signed_order().verify(&network()))
            .collect()
    }

    #[test]
    fn valid_signatures_pass_and_repeat_senders_coalesce() {
        let keys = KeyCache::new(1_000);
        let txs: Vec<_> = (0..20u8)
            .map(|i| signed(i % 5, 1 + u64::from(i), u64::from(i)))
            .collect();
        assert_eq!(verify_chunk(&network(), &keys, &txs), vec![true; 20]);
        assert_eq!(keys.len(), 5);
        // Again, now with every key cached.
        assert_eq!(verify_chunk(&network(), &keys, &txs), vec![true; 20]);
    }

    #[test]
    fn any_kind_of_order_is_checked_against_its_signer() {
        let key = SecretKey::from_bytes([7; 32]);
        let intro = Transaction::sign(
            IntroKey {
                account: key.account(),
                proof_of_work: 3,
            },
            &key,
            &network(),
        );
        let mut forged = intro.clone();
        forged.signature = signed(7, 1, 0).signature;
        let keys = KeyCache::new(10);
        assert_eq!(
            verify_chunk(&network(), &keys, &[intro, forged]),
            vec![true, false]
        );
    }

    /// A split is signed by its sender over every output: changing any output's amount or
    /// recipient after signing makes the signature fail, in a batch as alone.
    #[test]
    fn a_split_is_checked_against_its_sender_over_every_output() {
        let key = SecretKey::from_bytes([9; 32]);
        let outputs = (0..3u8)
            .map(|i| tally_core::Payment {
                recipient: AccountId::from([20 + i; 32]),
                amount: Amount::from_microcash(1 + u64::from(i)),
            })
            .collect();
        let split = Transaction::sign(
            Order::Split(tally_core::Split {
                sender: key.account(),
                sequence: 4,
                outputs,
            }),
            &key,
            &network(),
        );
        let mut more = split.clone();
        let mut redirected = split.clone();
        if let (Order::Split(m), Order::Split(r)) = (&mut more.order, &mut redirected.order) {
            m.outputs[2].amount = Amount::from_microcash(100);
            r.outputs[0].recipient = AccountId::from([99; 32]);
        }
        let txs = vec![split, more, redirected, signed(3, 1, 0)];
        let keys = KeyCache::new(10);
        assert_eq!(
            verify_chunk(&network(), &keys, &txs),
            vec![true, false, false, true]
        );
        assert_eq!(verify_chunk(&network(), &keys, &txs), core_says(&txs));
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
                    if let Some(t) = transfer(&mut txs[v]) {
                        t.amount = Amount::from_microcash(6);
                    }
                }
                2 => {
                    if let Some(t) = transfer(&mut txs[v]) {
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
            let keys = KeyCache::new(4);
            prop_assert_eq!(verify_chunk(&network(), &keys, &txs), core_says(&txs));
        }
    }
}
