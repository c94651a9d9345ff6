//! Sealing coins for the LiveConnect transfer (PROTOCOL.md §10): what is sealed opens only
//! with the same session key, room, message number and pown deadline, unaltered; anything else fails
//! cleanly, and sealed coins come back as the coins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tally_core::seal::{
    MAX_SEALED_COINS_LEN, NONCE_LEN, TAG_LEN, open, open_coins, seal, seal_coins, seal_with_nonce,
};
use tally_core::{
    AccountId, Amount, Certificate, Coin, CoinError, Denomination, Digest, KeyError, NetworkId,
    Order, SealError, SecretKey, SessionKey, Signature, Transfer, Vote, coin::encode_bundle,
};

/// The pown deadline the tests seal for (Unix ms).
const DEADLINE: u64 = 1_700_000_600_000;

fn rng() -> StdRng {
    StdRng::seed_from_u64(24)
}

fn key(byte: u8) -> SessionKey {
    SessionKey::from_bytes([byte; 32])
}

fn coins() -> Vec<Coin> {
    [Denomination::TwentyFive, Denomination::One]
        .into_iter()
        .enumerate()
        .map(|(i, denomination)| Coin {
            network: NetworkId(Digest::from([7; 32])),
            denomination,
            secret: SecretKey::from_bytes([i as u8 + 1; 32]),
            funding: None,
        })
        .collect()
}

#[test]
fn a_sealed_message_is_nonce_ciphertext_and_tag_and_opens() {
    let sealed = seal(&key(1), "room", 24, DEADLINE, b"coins", &mut rng()).unwrap();
    assert_eq!(sealed.len(), NONCE_LEN + 5 + TAG_LEN);
    assert_eq!(
        open(&key(1), "room", 24, DEADLINE, &sealed).unwrap(),
        b"coins"
    );
    // A fresh nonce each time: sealing the same thing twice gives different bytes.
    let mut r = rng();
    let again = seal(&key(1), "room", 24, DEADLINE, b"coins", &mut r).unwrap();
    assert_ne!(
        again,
        seal(&key(1), "room", 24, DEADLINE, b"coins", &mut r).unwrap()
    );
    // The nonce is in front.
    let fixed = seal_with_nonce(&key(1), "room", 24, DEADLINE, &[9; NONCE_LEN], b"coins").unwrap();
    assert_eq!(&fixed[..NONCE_LEN], &[9; NONCE_LEN]);
    assert_eq!(
        open(&key(1), "room", 24, DEADLINE, &fixed).unwrap(),
        b"coins"
    );
}

#[test]
fn a_sealed_message_opens_only_where_it_was_sealed() {
    let sealed = seal(&key(1), "room", 24, DEADLINE, b"coins", &mut rng()).unwrap();
    assert_eq!(
        open(&key(2), "room", 24, DEADLINE, &sealed),
        Err(SealError::Rejected)
    );
    assert_eq!(
        open(&key(1), "room2", 24, DEADLINE, &sealed),
        Err(SealError::Rejected)
    );
    assert_eq!(
        open(&key(1), "", 24, DEADLINE, &sealed),
        Err(SealError::Rejected)
    );
    assert_eq!(
        open(&key(1), "room", 25, DEADLINE, &sealed),
        Err(SealError::Rejected)
    );
    // Moving the deadline (what message 24 carries beside the coins) breaks the seal.
    for deadline in [DEADLINE + 1, DEADLINE - 1, 0, u64::MAX] {
        assert_eq!(
            open(&key(1), "room", 24, deadline, &sealed),
            Err(SealError::Rejected)
        );
    }
    for at in [0, NONCE_LEN, sealed.len() - 1] {
        let mut altered = sealed.clone();
        altered[at] ^= 1;
        assert_eq!(
            open(&key(1), "room", 24, DEADLINE, &altered),
            Err(SealError::Rejected),
            "byte {at}"
        );
    }
    assert_eq!(
        open(&key(1), "room", 24, DEADLINE, &sealed[..sealed.len() - 1]),
        Err(SealError::Rejected)
    );
    assert!(
        SealError::Rejected
            .to_string()
            .contains("wrong session key, room, message number or pown deadline")
    );
}

#[test]
fn input_too_short_for_a_nonce_and_tag_is_refused() {
    for len in [0, 1, NONCE_LEN, NONCE_LEN + TAG_LEN - 1] {
        assert_eq!(
            open(&key(1), "room", 24, DEADLINE, &vec![0; len]),
            Err(SealError::TooShort { len, min: 40 })
        );
    }
    // Long enough, but not sealed by anyone.
    assert_eq!(
        open(&key(1), "room", 24, DEADLINE, &[0; NONCE_LEN + TAG_LEN]),
        Err(SealError::Rejected)
    );
    // An empty plaintext seals to exactly a nonce and a tag, and opens.
    let empty = seal(&key(1), "room", 24, DEADLINE, b"", &mut rng()).unwrap();
    assert_eq!(empty.len(), NONCE_LEN + TAG_LEN);
    assert_eq!(open(&key(1), "room", 24, DEADLINE, &empty).unwrap(), b"");
}

#[test]
fn the_session_key_is_64_hex_digits_and_never_shown_by_debug() {
    let k = SessionKey::generate(&mut rng());
    assert_ne!(k, SessionKey::generate(&mut StdRng::seed_from_u64(25)));
    let text = k.to_string();
    assert_eq!(text.len(), 64);
    assert_eq!(text.parse::<SessionKey>().unwrap(), k);
    assert_eq!(format!(" {text}\n").parse::<SessionKey>().unwrap(), k);
    assert_eq!(text.to_uppercase().parse::<SessionKey>().unwrap(), k);
    assert!(!format!("{k:?}").contains(&text));
    assert!(matches!(
        "ab".parse::<SessionKey>(),
        Err(KeyError::Length { expected: 64, .. })
    ));
    assert!(matches!(
        "zz".repeat(32).parse::<SessionKey>(),
        Err(KeyError::NotHex(_))
    ));
    assert_eq!(key(5).as_bytes(), &[5; 32]);
}

#[test]
fn sealed_coins_open_as_the_coins() {
    let coins = coins();
    let sealed = seal_coins(&key(1), "room", 24, DEADLINE, &coins, &mut rng()).unwrap();
    assert_eq!(
        open_coins(&key(1), "room", 24, DEADLINE, &sealed).unwrap(),
        coins
    );
    // What is sealed is exactly the token's bundle.
    assert_eq!(
        open(&key(1), "room", 24, DEADLINE, &sealed).unwrap(),
        encode_bundle(&coins).unwrap()
    );
    assert_eq!(
        open_coins(&key(1), "room", 17, DEADLINE, &sealed),
        Err(SealError::Rejected)
    );
}

#[test]
fn sealing_refuses_what_cannot_be_a_bundle() {
    assert_eq!(
        seal_coins(&key(1), "room", 24, DEADLINE, &[], &mut rng()),
        Err(SealError::Coins(CoinError::NoCoins))
    );
    let mut twice = coins();
    twice.push(twice[0].clone());
    assert!(matches!(
        seal_coins(&key(1), "room", 24, DEADLINE, &twice, &mut rng()),
        Err(SealError::Coins(CoinError::DuplicateCoin(_)))
    ));
}

#[test]
fn opened_bytes_that_are_not_a_bundle_are_refused() {
    let sealed = seal(&key(1), "room", 24, DEADLINE, b"not coins", &mut rng()).unwrap();
    assert!(matches!(
        open_coins(&key(1), "room", 24, DEADLINE, &sealed),
        Err(SealError::Coins(CoinError::Malformed(_)))
    ));
}

/// Coins whose funding certificates carry many votes: a bundle past the size bound.
fn heavy_coins(count: u8) -> Vec<Coin> {
    (0..count)
        .map(|i| {
            let secret = SecretKey::from_bytes([i; 32]);
            let funding = Certificate {
                order: Order::Transfer(Transfer {
                    sender: AccountId::from([0xa1; 32]),
                    recipient: secret.account(),
                    amount: Amount::from_microcash(250_000_000),
                    sequence: 0,
                }),
                signature: Signature::from([1; 64]),
                checksum: Digest::from([2; 32]),
                votes: (0..1_000u32)
                    .map(|v| {
                        let mut validator = [0u8; 32];
                        validator[..4].copy_from_slice(&v.to_le_bytes());
                        Vote {
                            validator: AccountId::from(validator),
                            signature: Signature::from([3; 64]),
                        }
                    })
                    .collect(),
            };
            Coin {
                network: NetworkId(Digest::from([7; 32])),
                denomination: Denomination::TwoFifty,
                secret,
                funding: Some(funding),
            }
        })
        .collect()
}

#[test]
fn sealed_coins_are_bounded_in_size_both_ways() {
    // 50 coins of about 96 KB each: over 4 MiB.
    let heavy = heavy_coins(50);
    assert!(matches!(
        seal_coins(&key(1), "room", 24, DEADLINE, &heavy, &mut rng()),
        Err(SealError::TooLarge { max, .. }) if max == MAX_SEALED_COINS_LEN
    ));
    // A receiver refuses an oversized message before decrypting it.
    let huge = vec![0u8; MAX_SEALED_COINS_LEN + 1];
    assert_eq!(
        open_coins(&key(1), "room", 24, DEADLINE, &huge),
        Err(SealError::TooLarge {
            len: MAX_SEALED_COINS_LEN + 1,
            max: MAX_SEALED_COINS_LEN
        })
    );
    // A few heavy coins fit, and open.
    let few = heavy_coins(3);
    let sealed = seal_coins(&key(1), "room", 24, DEADLINE, &few, &mut rng()).unwrap();
    assert_eq!(
        open_coins(&key(1), "room", 24, DEADLINE, &sealed).unwrap(),
        few
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn anything_sealed_opens_with_the_same_key_room_and_number(
        k in any::<[u8; 32]>(),
        room in ".{0,40}",
        number in any::<u32>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..300),
        seed in any::<u64>(),
    ) {
        let k = SessionKey::from_bytes(k);
        let sealed = seal(&k, &room, number, DEADLINE, &plaintext, &mut StdRng::seed_from_u64(seed)).unwrap();
        prop_assert_eq!(sealed.len(), NONCE_LEN + plaintext.len() + TAG_LEN);
        prop_assert_eq!(open(&k, &room, number, DEADLINE, &sealed).unwrap(), plaintext);
        prop_assert_eq!(open(&k, &room, number.wrapping_add(1), DEADLINE, &sealed), Err(SealError::Rejected));
        let other_room = format!("{room}x");
        prop_assert_eq!(open(&k, &other_room, number, DEADLINE, &sealed), Err(SealError::Rejected));
    }

    #[test]
    fn arbitrary_bytes_never_open(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert!(open(&key(1), "room", 24, DEADLINE, &bytes).is_err());
        prop_assert!(open_coins(&key(1), "room", 24, DEADLINE, &bytes).is_err());
    }
}
