//! The coin test vectors PROTOCOL.md publishes (§10). If one of these changes, the coin,
//! token or sealing format changed. Each value must also appear in the document, so the two
//! cannot drift apart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tally_core::coin::encode_bundle;
use tally_core::seal::{open_coins, seal_with_nonce};
use tally_core::{
    Coin, Decode, Denomination, Digest, Encode, NetworkId, SecretKey, SessionKey, decode_token,
    encode_token,
};

const ROOM: &str = "vectors";
const MESSAGE_NUMBER: u32 = 24;
const NONCE: [u8; 24] = [0x33; 24];
const POWN_DEADLINE_MS: u64 = 1_700_000_600_000;

fn session_key() -> SessionKey {
    SessionKey::from_bytes([0x5e; 32])
}

/// A 25-cash coin (secret 32 × 0xc1) and a 1-cash coin (32 × 0xc2), unfunded, on the
/// network whose id is 32 × 0x4e.
fn coins() -> Vec<Coin> {
    [(Denomination::TwentyFive, 0xc1), (Denomination::One, 0xc2)]
        .into_iter()
        .map(|(denomination, seed)| Coin {
            network: NetworkId(Digest::from([0x4e; 32])),
            denomination,
            secret: SecretKey::from_bytes([seed; 32]),
            funding: None,
        })
        .collect()
}

/// `TALLY-LIVE-SEAL-V2 ‖ room length u32 ‖ room ‖ message number u32 ‖ pown deadline u64`,
/// written out here
/// independently of the library (the sealed vector checks the library uses the same).
fn associated_data() -> Vec<u8> {
    let mut out = b"TALLY-LIVE-SEAL-V2".to_vec();
    out.extend_from_slice(&(ROOM.len() as u32).to_le_bytes());
    out.extend_from_slice(ROOM.as_bytes());
    out.extend_from_slice(&MESSAGE_NUMBER.to_le_bytes());
    out.extend_from_slice(&POWN_DEADLINE_MS.to_le_bytes());
    out
}

fn vectors() -> Vec<(&'static str, String)> {
    let coins = coins();
    let bundle = encode_bundle(&coins).unwrap();
    let sealed = seal_with_nonce(
        &session_key(),
        ROOM,
        MESSAGE_NUMBER,
        POWN_DEADLINE_MS,
        &NONCE,
        &bundle,
    )
    .unwrap();
    vec![
        ("coin account", coins[0].account().to_hex()),
        ("coin encoding", hex::encode(coins[0].to_bytes())),
        ("coin bundle", hex::encode(&bundle)),
        ("coin token", encode_token(&coins).unwrap()),
        ("seal associated data", hex::encode(associated_data())),
        ("sealed coins", hex::encode(sealed)),
    ]
}

const EXPECTED: &[(&str, &str)] = &[
    (
        "coin account",
        "acdcc8494d458f44a7aaac1d6a84ec624daee88436db2ae26e67ba645a106228",
    ),
    (
        "coin encoding",
        "014e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e19c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c100",
    ),
    (
        "coin bundle",
        "4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e0200000019c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c10001c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c200",
    ),
    (
        "coin token",
        "tallycoin1Tk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk4CAAAAGcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBAAHCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwgA",
    ),
    (
        "seal associated data",
        "54414c4c592d4c4956452d5345414c2d563207000000766563746f727318000000c08feecf8b010000",
    ),
    (
        "sealed coins",
        "333333333333333333333333333333333333333333333333a6d0f3e79e0c90e24b8101752316cf3eb9a9fe821bd3fcb6320cbf18fe5e79351b92011e2ceef929c42a71a9d02f9fe25c67be5312b6fad681182f50cf71b9f12cdf4c3c900021e8df20660b70b84a5709ddf517db95d6e8761034762710dd7a6930d28ec57df342f0d51e7bbf53af7a172edbf9038392d1",
    ),
];

#[test]
fn published_vectors_hold() {
    let actual = vectors();
    if std::env::var_os("TALLY_PRINT_VECTORS").is_some() {
        for (name, value) in &actual {
            println!("(\"{name}\", \"{value}\"),");
        }
    }
    assert_eq!(actual.len(), EXPECTED.len(), "vector count");
    for ((name, value), (expected_name, expected)) in actual.iter().zip(EXPECTED) {
        assert_eq!(name, expected_name);
        assert_eq!(value, expected, "{name}");
        assert!(
            tally_vectors::PROTOCOL.contains(expected),
            "PROTOCOL.md does not show the vector {name}"
        );
    }
}

#[test]
fn the_published_vectors_read_back_as_the_coins() {
    let value = |name: &str| EXPECTED.iter().find(|(n, _)| *n == name).unwrap().1;
    let coins = coins();
    assert_eq!(
        Coin::from_bytes(&hex::decode(value("coin encoding")).unwrap()),
        Ok(coins[0].clone())
    );
    assert_eq!(decode_token(value("coin token")).unwrap(), coins);
    let sealed = hex::decode(value("sealed coins")).unwrap();
    assert_eq!(&sealed[..24], &NONCE);
    assert_eq!(
        open_coins(
            &session_key(),
            ROOM,
            MESSAGE_NUMBER,
            POWN_DEADLINE_MS,
            &sealed
        )
        .unwrap(),
        coins
    );
}
