//! The tracker's test vectors of PROTOCOL.md §9: the document's values are parsed from the
//! file itself and recomputed here, so the document cannot drift from the code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tally_core::{NetworkId, SecretKey};
use tally_proto::tracker::{MAX_SIGNED_LEN, REG_TAG, SignedBytes};

const DOC: &str = include_str!("../../../PROTOCOL.md");

/// The named values of the document's ```tracker-vectors block: a line starting with a
/// name starts a value, an indented line continues it, and spaces only separate fields.
fn documented() -> BTreeMap<String, String> {
    let open = "```tracker-vectors\n";
    let start = DOC
        .find(open)
        .expect("a ```tracker-vectors block in PROTOCOL.md");
    let body = &DOC[start + open.len()..];
    let end = body.find("```").expect("the block ends");
    let mut values = BTreeMap::new();
    let mut current = None;
    for line in body[..end].lines() {
        let mut words = line.split_whitespace();
        if !line.starts_with(' ') {
            current = words.next().map(str::to_owned);
        }
        let name = current.clone().expect("a value starts with its name");
        values.entry(name).or_insert_with(String::new).extend(words);
    }
    values
}

fn computed() -> BTreeMap<String, String> {
    let key = SecretKey::from_bytes([1; 32]);
    let network = NetworkId(tally_core::sha256(&[b"net"]));
    let v4: SocketAddr = "203.0.113.5:2222".parse().unwrap();
    let signed = SignedBytes::new(&network, &key.account(), 7, 1_700_000_000_000, &v4);
    let v6: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
    let signed_v6 = SignedBytes::new(&network, &key.account(), 0, 0, &v6);
    assert_eq!(signed_v6.as_bytes().len(), MAX_SIGNED_LEN);
    [
        ("key", key.account().to_hex()),
        ("network", network.to_string()),
        ("signed", hex::encode(signed.as_bytes())),
        ("signature", key.sign(signed.as_bytes()).to_hex()),
        ("signed-v6", hex::encode(signed_v6.as_bytes())),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

#[test]
fn protocol_md_tracker_vectors_match_the_code() {
    let documented = documented();
    let computed = computed();
    for (name, value) in &computed {
        assert_eq!(
            documented.get(name),
            Some(value),
            "PROTOCOL.md §9 vector {name:?} differs from the code"
        );
    }
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        computed.keys().collect::<Vec<_>>(),
        "every documented vector is checked"
    );
    assert!(documented["signed"].starts_with(&hex::encode(REG_TAG)));
}
