//! The quote's test vectors PROTOCOL.md publishes (§6, "Wire quotes"): its signing bytes,
//! signature, hash, the topic of its pair, its line in the topic, and the fee it charges.
//! If one of these changes, the protocol changed: each computed value must equal the one
//! the document shows under its label.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tally_core::{Amount, NetworkId, SecretKey};
use tally_swap::{Quote, SignedQuote, TopicLine, topic};

/// Bob (32 × `0xb0`) quotes carrying cash from the §6 vector network to network 32 × `0xbb`.
fn quote() -> SignedQuote {
    let bob = SecretKey::from_bytes([0xb0; 32]);
    Quote {
        maker: bob.account(),
        asset: "cash".into(),
        network_a: tally_vectors::vector_contract().id(),
        network_b: NetworkId([0xbb; 32].into()),
        min_amount: Amount::from_cash(1).unwrap(),
        max_amount: Amount::from_cash(100).unwrap(),
        fee_ppm: 5_000,
        fee_fixed: Amount::from_microcash(1_000),
        maker_a: bob.account(),
        maker_b: bob.account(),
        lock_time_ms: 120_000,
        delta_ms: 30_000,
        expires_ms: 1_700_000_100_000,
        nonce: 7,
    }
    .sign(&bob)
}

fn vectors() -> Vec<(&'static str, String)> {
    let signed = quote();
    let quote = &signed.quote;
    vec![
        ("quote signing bytes", hex(&quote.signing_bytes())),
        ("quote signature", signed.signature.to_string()),
        ("quote hash", signed.hash().to_string()),
        (
            "quote topic",
            topic(&quote.asset, &quote.network_a, &quote.network_b),
        ),
        (
            "quote fee on 1.504 cash",
            quote
                .fee_for("1.504".parse().unwrap())
                .unwrap()
                .microcash()
                .to_string(),
        ),
        (
            "quote topic line",
            TopicLine::Quote(Box::new(signed.clone())).to_line(),
        ),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn published_quote_vectors_hold() {
    let actual = vectors();
    if std::env::var_os("TALLY_PRINT_VECTORS").is_some() {
        for (name, value) in &actual {
            println!("- **{name}**:\n\n  ```\n  {value}\n  ```");
        }
    }
    for (name, value) in &actual {
        assert_eq!(
            value,
            tally_vectors::labelled(name),
            "PROTOCOL.md's vector {name}"
        );
    }
}

/// The documented line reads back as the documented quote, and its signature verifies.
#[test]
fn the_documented_topic_line_is_the_quote() {
    let line = tally_vectors::labelled("quote topic line");
    let TopicLine::Quote(read) = TopicLine::parse(line).unwrap() else {
        panic!("not a quote line");
    };
    assert_eq!(*read, quote());
    assert!(read.verify());
}
