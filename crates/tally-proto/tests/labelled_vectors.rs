//! The labelled test vectors of PROTOCOL.md for what tally-proto signs, made with the keys
//! of §6's vectors (validator i's seed is 32 × `0x10 + i`, alice's 32 × `0xa1`, bob's
//! 32 × `0xb0`): the ledger view of §6 and an IPv6 tracker registration of §9. Each
//! value is read from the document (the code block under its `- **label**:` line), and
//! checked twice: against the library's own functions, and against bytes this test lays
//! out by hand from the documented field layout, so neither the code nor the document can
//! drift from the other.
//!
//! `TALLY_PRINT_VECTORS=1 cargo test -p tally-proto --test labelled_vectors -- --nocapture`
//! prints the computed values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tally_core::{
    AccountId, Amount, NetworkContract, NetworkId, Order, Payment, SecretKey, Signature, Split,
};
use tally_proto::tracker::{KeyEntry, Registration, Request, SignedBytes};
use tally_proto::{LedgerEntry, LedgerView, Packet};

/// The value PROTOCOL.md shows under the label `- **name**:`.
fn documented(name: &str) -> &'static str {
    tally_vectors::labelled(name)
}

fn documented_bytes(name: &str) -> Vec<u8> {
    hex::decode(documented(name)).unwrap_or_else(|e| panic!("{name} is hex: {e}"))
}

fn documented_key(name: &str) -> AccountId {
    documented(name).parse().unwrap()
}

/// Compares computed values with the document (printing them first when asked).
fn assert_documented(computed: &[(&str, String)]) {
    if std::env::var_os("TALLY_PRINT_VECTORS").is_some() {
        for (name, value) in computed {
            println!("- **{name}**:\n\n  ```\n  {value}\n  ```");
        }
    }
    for (name, value) in computed {
        assert_eq!(value, documented(name), "PROTOCOL.md's vector {name}");
    }
}

fn key(seed: u8) -> SecretKey {
    SecretKey::from_bytes([seed; 32])
}

/// The §6 vector contract.
fn contract() -> NetworkContract {
    tally_vectors::vector_contract()
}

// ---- §6: the ledger view (`RESP_LEDGER`) -------------------------------------------------

const VIEW_CERTIFICATES: u64 = 2;
const VIEW_SUPPLY: u64 = 10_000_000;
const ALICE_BALANCE: i128 = 8_496_000;
const BOB_BALANCE: i128 = 1_504_000;

/// §6's split: alice pays bob 1 cash and carol 0.5 cash at sequence 1.
fn split() -> Order {
    Order::Split(Split {
        sender: key(0xa1).account(),
        sequence: 1,
        outputs: vec![
            Payment {
                recipient: key(0xb0).account(),
                amount: Amount::from_microcash(1_000_000),
            },
            Payment {
                recipient: key(0xc0).account(),
                amount: Amount::from_microcash(500_000),
            },
        ],
    })
}

/// Validator 0's view after alice's intro and her transfer to bob (2 certificates, the
/// faucet's 10 cash in existence), holding its vote for alice's split in her next slot.
fn ledger() -> BTreeMap<AccountId, LedgerEntry> {
    let network = contract().id();
    BTreeMap::from([
        (
            key(0xa1).account(),
            LedgerEntry {
                balance: ALICE_BALANCE,
                next_sequence: 1,
                introduced: true,
                locked: Some(split().digest(&network)),
            },
        ),
        (
            key(0xb0).account(),
            LedgerEntry {
                balance: BOB_BALANCE,
                next_sequence: 0,
                introduced: false,
                locked: None,
            },
        ),
    ])
}

fn ledger_view() -> LedgerView {
    LedgerView::sign(
        &key(0x10),
        &contract().id(),
        VIEW_CERTIFICATES,
        Amount::from_microcash(VIEW_SUPPLY),
        ledger(),
    )
}

#[test]
fn the_ledger_view_vectors_hold() {
    let network = contract().id();
    let view = ledger_view();
    let signing = LedgerView::signing_bytes(
        &network,
        VIEW_CERTIFICATES,
        Amount::from_microcash(VIEW_SUPPLY),
        &view.ledger,
    );
    let packet = serde_json::to_string(&Packet::RespLedger(view.clone())).unwrap();
    assert_documented(&[
        ("ledger view signing bytes", hex::encode(&signing)),
        ("ledger view signature", view.signature.to_hex()),
        ("ledger view packet", packet),
    ]);
}

/// The documented signing bytes are the documented layout of §6 ("Ledger view
/// signature"), written here field by field from the document's other vectors, and the
/// documented signature is validator 0's over them.
#[test]
fn the_ledger_view_layout_is_the_documented_one() {
    let network = documented_bytes("network id");
    let alice = documented_bytes("alice account");
    let bob = documented_bytes("bob account");
    let mut bytes = b"TALLY-LEDGER-V2".to_vec();
    assert_eq!(bytes.len(), 15);
    bytes.extend_from_slice(&network);
    bytes.extend_from_slice(&VIEW_CERTIFICATES.to_le_bytes());
    bytes.extend_from_slice(&VIEW_SUPPLY.to_le_bytes());
    bytes.extend_from_slice(&2u64.to_le_bytes());
    // Key order: bob's key (705f…) sorts before alice's (bc7c…).
    assert!(bob < alice);
    bytes.extend_from_slice(&bob);
    bytes.extend_from_slice(&BOB_BALANCE.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&alice);
    bytes.extend_from_slice(&ALICE_BALANCE.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(&[1, 1]);
    bytes.extend_from_slice(&documented_bytes("split digest"));
    assert_eq!(bytes.len(), 15 + 32 + 24 + (32 + 16 + 8 + 2) * 2 + 32);
    assert_eq!(hex::encode(&bytes), documented("ledger view signing bytes"));

    let validator = documented_key("validator-0 key");
    let signature: Signature = documented("ledger view signature").parse().unwrap();
    assert!(validator.verify(&signature, &bytes));
}

/// The documented `RESP_LEDGER` packet decodes to the view, and the view verifies.
#[test]
fn the_documented_ledger_view_packet_verifies() {
    let packet: Packet = serde_json::from_str(documented("ledger view packet")).unwrap();
    let Packet::RespLedger(view) = packet else {
        panic!("a RESP_LEDGER packet")
    };
    assert_eq!(view, ledger_view());
    assert_eq!(view.validator, documented_key("validator-0 key"));
    let network: NetworkId = documented("network id").parse().unwrap();
    assert!(view.verify(&network));
    let mut forged = view.clone();
    forged.ledger.get_mut(&key(0xa1).account()).unwrap().locked = None;
    assert!(!forged.verify(&network), "the held vote is signed");
}

// ---- §9: an IPv6 tracker registration ---------------------------------------------------

/// Validator 0's proof of work for its key: the first nonce valid at the vector contract's
/// 8 bits (SHA-256 of `"5c9c6df2…84_568"` starts `0053fff1`).
const V0_POW: u64 = 568;
const REG_TIMESTAMP: u64 = 1_700_000_000_000;
const REG_ADDRESS: &str = "[2001:db8::10]:2222";

fn registration() -> Registration {
    let network = contract().id();
    let validator = key(0x10);
    let address: SocketAddr = REG_ADDRESS.parse().unwrap();
    let signed = SignedBytes::new(
        &network,
        &validator.account(),
        V0_POW,
        REG_TIMESTAMP,
        &address,
    );
    Registration {
        network,
        address: REG_ADDRESS.into(),
        timestamp: REG_TIMESTAMP,
        keys: vec![KeyEntry {
            fingerprint: validator.account(),
            proof_of_work: V0_POW,
            signature: validator.sign(signed.as_bytes()),
        }],
        max: None,
    }
}

#[test]
fn the_ipv6_registration_vectors_hold() {
    let reg = registration();
    let address: SocketAddr = REG_ADDRESS.parse().unwrap();
    let signed = SignedBytes::new(
        &reg.network,
        &reg.keys[0].fingerprint,
        V0_POW,
        REG_TIMESTAMP,
        &address,
    );
    assert!(tally_core::pow::check_intro_pow(
        &reg.keys[0].fingerprint,
        V0_POW,
        contract().intro_pow_bits
    ));
    let packet = serde_json::to_string(&Request::RegUp(reg.clone())).unwrap();
    assert_documented(&[
        (
            "IPv6 registration signing bytes",
            hex::encode(signed.as_bytes()),
        ),
        (
            "IPv6 registration signature",
            reg.keys[0].signature.to_hex(),
        ),
        ("IPv6 REGUP packet", packet),
    ]);
}

/// The documented bytes are §9's layout ("Signed bytes") written here field by field, 119
/// bytes for an IPv6 address, and the documented signature is validator 0's over them.
#[test]
fn the_ipv6_registration_layout_is_the_documented_one() {
    let mut bytes = b"TALLY-TRACKER-REG-V2".to_vec();
    assert_eq!(bytes.len(), 20);
    bytes.extend_from_slice(&documented_bytes("network id"));
    bytes.extend_from_slice(&documented_bytes("validator-0 key"));
    bytes.extend_from_slice(&V0_POW.to_le_bytes());
    bytes.extend_from_slice(&REG_TIMESTAMP.to_le_bytes());
    bytes.push(6);
    // 2001:db8::10 in network order.
    bytes.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ]);
    bytes.extend_from_slice(&2222u16.to_le_bytes());
    assert_eq!(bytes.len(), tally_proto::tracker::MAX_SIGNED_LEN);
    assert_eq!(
        hex::encode(&bytes),
        documented("IPv6 registration signing bytes")
    );
    let validator = documented_key("validator-0 key");
    let signature: Signature = documented("IPv6 registration signature").parse().unwrap();
    assert!(validator.verify(&signature, &bytes));
}

/// The documented `REGUP` packet parses to the registration, and carries the documented
/// signature.
#[test]
fn the_documented_regup_packet_parses() {
    let request: Request = serde_json::from_str(documented("IPv6 REGUP packet")).unwrap();
    let Request::RegUp(reg) = request else {
        panic!("a REGUP request")
    };
    assert_eq!(reg, registration());
    assert_eq!(
        reg.keys[0].signature.to_hex(),
        documented("IPv6 registration signature")
    );
}
