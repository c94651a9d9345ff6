//! Properties of the canonical codec: every value reads back as itself, its length is what
//! `encoded_len` says, a cut or extended encoding is refused, and arbitrary bytes never make
//! a decoder panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use tally_core::{
    AccountId, Amount, Block, BlockHeader, Certificate, Coinbase, Decode, Digest, Encode, IntroKey,
    MAX_SPLIT_OUTPUTS, NetworkId, Order, Payment, Signature, SignedOrder, Split, Transaction,
    Transfer, U256, Vote,
};

fn arb_account() -> impl Strategy<Value = AccountId> {
    any::<[u8; 32]>().prop_map(AccountId::from)
}

fn arb_signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(r, s)| {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&r);
        bytes[32..].copy_from_slice(&s);
        Signature::from(bytes)
    })
}

fn arb_order() -> impl Strategy<Value = Order> {
    prop_oneof![
        (arb_account(), any::<u64>()).prop_map(|(account, proof_of_work)| {
            Order::IntroKey(IntroKey {
                account,
                proof_of_work,
            })
        }),
        (arb_account(), arb_account(), any::<u64>(), any::<u64>()).prop_map(
            |(sender, recipient, amount, sequence)| {
                Order::Transfer(Transfer {
                    sender,
                    recipient,
                    amount: Amount::from_microcash(amount),
                    sequence,
                })
            }
        ),
        (
            arb_account(),
            any::<u64>(),
            proptest::collection::vec((arb_account(), any::<u64>()), 0..=MAX_SPLIT_OUTPUTS)
        )
            .prop_map(|(sender, sequence, outputs)| {
                Order::Split(Split {
                    sender,
                    sequence,
                    outputs: outputs
                        .into_iter()
                        .map(|(recipient, amount)| Payment {
                            recipient,
                            amount: Amount::from_microcash(amount),
                        })
                        .collect(),
                })
            }),
    ]
}

fn arb_signed_order() -> impl Strategy<Value = SignedOrder> {
    (arb_order(), arb_signature()).prop_map(|(order, signature)| SignedOrder { order, signature })
}

fn arb_vote() -> impl Strategy<Value = Vote> {
    (arb_account(), arb_signature()).prop_map(|(validator, signature)| Vote {
        validator,
        signature,
    })
}

fn arb_certificate() -> impl Strategy<Value = Certificate> {
    (
        arb_signed_order(),
        any::<[u8; 32]>(),
        prop::collection::vec(arb_vote(), 0..6),
    )
        .prop_map(|(signed, checksum, votes)| Certificate {
            order: signed.order,
            signature: signed.signature,
            checksum: Digest::from(checksum),
            votes,
        })
}

fn arb_header() -> impl Strategy<Value = BlockHeader> {
    (
        any::<u32>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<u64>(),
    )
        .prop_map(
            |(version, network, height, previous, merkle_root, timestamp_ms, target, nonce)| {
                BlockHeader {
                    version,
                    network: NetworkId(Digest::from(network)),
                    height,
                    previous: Digest::from(previous),
                    merkle_root: Digest::from(merkle_root),
                    timestamp_ms,
                    target: U256::from_be_bytes(&target),
                    nonce,
                }
            },
        )
}

fn arb_coinbase() -> impl Strategy<Value = Coinbase> {
    (arb_account(), any::<u64>(), any::<u64>()).prop_map(|(miner, amount, height)| Coinbase {
        miner,
        amount: Amount::from_microcash(amount),
        height,
    })
}

fn arb_transaction() -> impl Strategy<Value = Transaction> {
    arb_signed_order().prop_map(Transaction::from)
}

fn arb_block() -> impl Strategy<Value = Block> {
    (
        arb_header(),
        arb_coinbase(),
        prop::collection::vec(arb_transaction(), 0..6),
    )
        .prop_map(|(header, coinbase, transactions)| Block {
            header,
            coinbase,
            transactions,
        })
}

/// Round trip, exact length, and strictness at both ends.
fn check_round_trip<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Encode + Decode + PartialEq + std::fmt::Debug,
{
    let bytes = value.to_bytes();
    prop_assert_eq!(bytes.len(), value.encoded_len());
    prop_assert_eq!(&T::from_bytes(&bytes).unwrap(), value);
    prop_assert!(T::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    prop_assert!(T::from_bytes(&longer).is_err());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn orders_round_trip(order in arb_order()) {
        check_round_trip(&order)?;
    }

    #[test]
    fn signed_orders_round_trip(signed in arb_signed_order()) {
        check_round_trip(&signed)?;
    }

    #[test]
    fn votes_round_trip(vote in arb_vote()) {
        check_round_trip(&vote)?;
    }

    #[test]
    fn certificates_round_trip(certificate in arb_certificate()) {
        check_round_trip(&certificate)?;
    }

    #[test]
    fn headers_round_trip(header in arb_header()) {
        check_round_trip(&header)?;
        prop_assert_eq!(header.to_bytes(), header.encode().to_vec());
    }

    #[test]
    fn coinbases_round_trip(coinbase in arb_coinbase()) {
        check_round_trip(&coinbase)?;
    }

    /// A transaction's bytes are its signed order's, whatever the kind.
    #[test]
    fn transactions_round_trip(tx in arb_transaction()) {
        check_round_trip(&tx)?;
        prop_assert_eq!(tx.to_bytes(), tx.to_signed_order().to_bytes());
    }

    #[test]
    fn blocks_round_trip(block in arb_block()) {
        check_round_trip(&block)?;
        let count = block.transactions.len();
        prop_assert_eq!(Block::decode_limited(&block.to_bytes(), count), Ok(block.clone()));
        if count > 0 {
            let refused = Block::decode_limited(&block.to_bytes(), count - 1);
            prop_assert!(
                matches!(refused, Err(tally_core::DecodeError::TooMany { .. })),
                "{:?}",
                refused
            );
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Order::from_bytes(&bytes);
        let _ = SignedOrder::from_bytes(&bytes);
        let _ = Vote::from_bytes(&bytes);
        let _ = Certificate::from_bytes(&bytes);
        let _ = BlockHeader::from_bytes(&bytes);
        let _ = Coinbase::from_bytes(&bytes);
        let _ = Transaction::from_bytes(&bytes);
        let _ = Block::from_bytes(&bytes);
    }

    /// A block's bytes with one byte changed: decoding returns a value or an error, and a
    /// value it returns encodes back to exactly those bytes.
    #[test]
    fn a_changed_block_byte_decodes_canonically_or_not_at_all(
        block in arb_block(), at in any::<prop::sample::Index>(), byte in any::<u8>()
    ) {
        let mut bytes = block.to_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(decoded) = Block::from_bytes(&bytes) {
            prop_assert_eq!(decoded.to_bytes(), bytes);
        }
    }

    /// Valid encodings with one byte changed: decoding returns a value or an error, and a
    /// value it returns encodes back to exactly those bytes (one encoding per value).
    #[test]
    fn a_changed_byte_decodes_canonically_or_not_at_all(
        certificate in arb_certificate(), at in any::<prop::sample::Index>(), byte in any::<u8>()
    ) {
        let mut bytes = certificate.to_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(decoded) = Certificate::from_bytes(&bytes) {
            prop_assert_eq!(decoded.to_bytes(), bytes);
        }
    }
}

#[test]
fn an_unknown_order_kind_is_named() {
    let mut bytes = Order::IntroKey(IntroKey {
        account: AccountId::from([7; 32]),
        proof_of_work: 1,
    })
    .to_bytes();
    bytes[0] = 9;
    assert_eq!(
        Order::from_bytes(&bytes),
        Err(tally_core::DecodeError::UnknownKind {
            what: "order",
            kind: 9,
            at: 0
        })
    );
}
