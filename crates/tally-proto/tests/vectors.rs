//! The test vectors of PROTOCOL.md for what tally-proto signs (the ledger view of §3, the
//! tracker's registration of §9): the document's values are parsed from the file itself
//! and recomputed here, so the document cannot drift from the code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tally_core::{Amount, NetworkId, SecretKey};
use tally_proto::tracker::{MAX_SIGNED_LEN, REG_TAG, SignedBytes};
use tally_proto::{LedgerEntry, LedgerView, quorum::LEDGER_TAG};

/// The named values of the document's ```<block> block.
fn documented(block: &str) -> BTreeMap<String, String> {
    tally_vectors::fields(block)
}

fn named(values: Vec<(&str, String)>) -> BTreeMap<String, String> {
    values
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// Every computed value is in the block, and the block holds nothing else.
fn assert_documented(block: &str, computed: &BTreeMap<String, String>) {
    let documented = documented(block);
    for (name, value) in computed {
        assert_eq!(
            documented.get(name),
            Some(value),
            "PROTOCOL.md {block} vector {name:?} differs from the code"
        );
    }
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        computed.keys().collect::<Vec<_>>(),
        "every documented vector is checked"
    );
}

fn tracker_computed() -> BTreeMap<String, String> {
    let key = SecretKey::from_bytes([1; 32]);
    let network = NetworkId(tally_core::sha256(&[b"net"]));
    let v4: SocketAddr = "203.0.113.5:2222".parse().unwrap();
    let signed = SignedBytes::new(&network, &key.account(), 7, 1_700_000_000_000, &v4);
    let v6: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
    let signed_v6 = SignedBytes::new(&network, &key.account(), 0, 0, &v6);
    assert_eq!(signed_v6.as_bytes().len(), MAX_SIGNED_LEN);
    named(vec![
        ("key", key.account().to_hex()),
        ("network", network.to_string()),
        ("signed", hex::encode(signed.as_bytes())),
        ("signature", key.sign(signed.as_bytes()).to_hex()),
        ("signed-v6", hex::encode(signed_v6.as_bytes())),
    ])
}

#[test]
fn protocol_md_tracker_vectors_match_the_code() {
    let computed = tracker_computed();
    assert_documented("tracker-vectors", &computed);
    assert!(computed["signed"].starts_with(&hex::encode(REG_TAG)));
}

/// A view of two accounts: one whose next slot holds the validator's vote, one it saw
/// overdrawn (missing a credit) with no vote held.
fn ledger_computed() -> BTreeMap<String, String> {
    let key = SecretKey::from_bytes([1; 32]);
    let network = NetworkId(tally_core::sha256(&[b"net"]));
    let held = SecretKey::from_bytes([2; 32]).account();
    let short = SecretKey::from_bytes([3; 32]).account();
    let ledger = BTreeMap::from([
        (
            held,
            LedgerEntry {
                balance: 10_000_000,
                next_sequence: 1,
                introduced: true,
                locked: Some(tally_core::sha256(&[b"order"])),
            },
        ),
        (
            short,
            LedgerEntry {
                balance: -2,
                next_sequence: 0,
                introduced: false,
                locked: None,
            },
        ),
    ]);
    let supply = Amount::from_microcash(9_999_998);
    let signed = LedgerView::signing_bytes(&network, 5, supply, &ledger);
    let view = LedgerView::sign(&key, &network, 5, supply, ledger);
    assert!(view.verify(&network));
    named(vec![
        ("validator", key.account().to_hex()),
        ("network", network.to_string()),
        ("signed", hex::encode(&signed)),
        ("signature", view.signature.to_hex()),
    ])
}

#[test]
fn protocol_md_ledger_view_vectors_match_the_code() {
    let computed = ledger_computed();
    assert_documented("ledger-vectors", &computed);
    assert!(computed["signed"].starts_with(&hex::encode(LEDGER_TAG)));
}
