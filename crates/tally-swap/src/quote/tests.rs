#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use tally_core::codec::{Decode, DecodeError, Encode};
use tally_core::{Amount, sha256};

use super::*;
use crate::testkit::{
    NOW, amount, maker_key, network_a, network_b, payer_key, quote, signed, timing, want,
};

fn check(signed: &SignedQuote, amount: Amount, now: u64) -> Result<(), QuoteError> {
    signed.check(&want(), &payer_key().account(), amount, &timing(), now)
}

#[test]
fn a_signed_quote_verifies_and_any_change_breaks_it() {
    let good = signed();
    assert!(good.verify());
    assert_eq!(check(&good, amount(), NOW), Ok(()));
    let mut changed = good.clone();
    changed.quote.fee_ppm += 1;
    assert!(!changed.verify());
    assert_eq!(
        check(&changed, amount(), NOW),
        Err(QuoteError::BadSignature)
    );
    let by_other = quote().sign(&payer_key());
    assert!(!by_other.verify(), "signed by someone else than its maker");
}

#[test]
fn the_hash_covers_the_signed_encoding() {
    let good = signed();
    let mut bytes = QUOTE_TAG.to_vec();
    bytes.extend(good.quote.to_bytes());
    bytes.extend(good.signature.as_bytes());
    assert_eq!(good.hash(), sha256(&[&bytes]));
    let other = Quote {
        nonce: 2,
        ..quote()
    }
    .sign(&maker_key());
    assert_ne!(good.hash(), other.hash());
    assert!(good.quote.signing_bytes().starts_with(b"TALLY-QUOTE-V1"));
}

#[test]
fn the_encoding_round_trips_and_refuses_what_is_not_canonical() {
    let good = signed();
    let bytes = good.to_bytes();
    assert_eq!(bytes.len(), good.encoded_len());
    assert_eq!(bytes.len(), Quote::MIN_ENCODED_LEN + "cash".len() + 64);
    assert_eq!(SignedQuote::from_bytes(&bytes), Ok(good.clone()));
    assert!(matches!(
        SignedQuote::from_bytes(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Truncated { .. })
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        SignedQuote::from_bytes(&longer),
        Err(DecodeError::TrailingBytes { .. })
    ));
    // The asset name: after the maker (32) and its length (4).
    let mut not_utf8 = bytes.clone();
    not_utf8[36] = 0xff;
    assert!(matches!(
        SignedQuote::from_bytes(&not_utf8),
        Err(DecodeError::UnknownKind {
            at: 36,
            kind: 0xff,
            ..
        })
    ));
    let long = Quote {
        asset: "x".repeat(MAX_ASSET_LEN + 1),
        ..quote()
    };
    assert!(matches!(
        Quote::from_bytes(&long.to_bytes()),
        Err(DecodeError::TooMany { .. })
    ));
}

#[test]
fn json_uses_the_protocols_pascal_case_and_refuses_unknown_fields() {
    let good = signed();
    let json = serde_json::to_string(&good).unwrap();
    for field in [
        "\"Quote\"",
        "\"Sig\"",
        "\"NetworkA\"",
        "\"MinAmount\"",
        "\"FeePpm\"",
        "\"MakerB\"",
        "\"LockTimeMs\"",
        "\"DeltaMs\"",
        "\"ExpiresMs\"",
    ] {
        assert!(json.contains(field), "{field} in {json}");
    }
    assert_eq!(serde_json::from_str::<SignedQuote>(&json).unwrap(), good);
    let extra = json.replacen("\"Nonce\"", "\"Extra\":1,\"Nonce\"", 1);
    assert!(serde_json::from_str::<SignedQuote>(&extra).is_err());
}

#[test]
fn the_fee_rounds_up_and_never_overflows_silently() {
    let quote = quote();
    // 0.25 % of 10 cash = 25,000 microcash, plus 1,000 fixed.
    assert_eq!(
        quote.fee_for(amount()),
        Some(Amount::from_microcash(26_000))
    );
    let tiny = Quote {
        fee_ppm: 1,
        fee_fixed: Amount::ZERO,
        ..quote.clone()
    };
    assert_eq!(
        tiny.fee_for(Amount::from_microcash(1)),
        Some(Amount::from_microcash(1))
    );
    assert_eq!(tiny.fee_for(Amount::ZERO), Some(Amount::ZERO));
    let huge = Quote {
        fee_ppm: u32::MAX,
        ..quote.clone()
    };
    assert_eq!(huge.fee_for(Amount::from_microcash(u64::MAX)), None);
    let fixed = Quote {
        fee_fixed: Amount::from_microcash(u64::MAX),
        ..quote.clone()
    };
    assert_eq!(fixed.fee_for(Amount::from_microcash(1_000)), None);
    assert_eq!(
        quote.total_for(amount()),
        Some(Amount::from_microcash(10_026_000))
    );
}

#[test]
fn the_maker_reads_the_amount_back_from_the_total() {
    let quote = quote();
    let total = quote.total_for(amount()).unwrap();
    assert_eq!(quote.amount_for_total(total), Some(amount()));
    assert_eq!(
        quote.amount_for_total(total.checked_add(Amount::from_microcash(1)).unwrap()),
        None
    );
    // Below the range's least total, above its greatest: none.
    assert_eq!(
        quote.amount_for_total(Amount::from_microcash(1_000_000)),
        None
    );
    assert_eq!(
        quote.amount_for_total(Amount::from_microcash(u64::MAX)),
        None
    );
}

#[test]
fn the_topic_is_the_hex_hash_of_asset_and_both_ids() {
    let topic_ab = topic("cash", &network_a(), &network_b());
    let expected = sha256(&[b"cash", network_a().as_bytes(), network_b().as_bytes()]).to_hex();
    assert_eq!(topic_ab, expected);
    assert_eq!(topic_ab.len(), 64);
    assert!(
        topic_ab
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(
        topic_ab,
        topic("cash", &network_b(), &network_a()),
        "direction matters"
    );
    assert_ne!(topic_ab, topic("gold", &network_a(), &network_b()));
    assert_eq!(quote().topic(), topic_ab);
}

#[test]
fn each_reason_to_refuse_a_quote_is_named() {
    let good = signed();
    let expired = Err(QuoteError::Expired {
        expires_ms: NOW + 60_000,
        now_ms: NOW + 60_000,
    });
    assert_eq!(check(&good, amount(), NOW + 60_000), expired);
    let low = Amount::from_microcash(999_999);
    assert!(matches!(
        check(&good, low, NOW),
        Err(QuoteError::AmountOutOfRange { .. })
    ));
    let high = Amount::from_microcash(100_000_001);
    assert!(matches!(
        check(&good, high, NOW),
        Err(QuoteError::AmountOutOfRange { .. })
    ));
    let short_delta = Quote {
        delta_ms: 3_599,
        ..quote()
    }
    .sign(&maker_key());
    let too_small = Err(QuoteError::DeltaTooSmall {
        delta_ms: 3_599,
        min_ms: 3_600,
    });
    assert_eq!(check(&short_delta, amount(), NOW), too_small);
    let short_lock = Quote {
        lock_time_ms: 3_399,
        ..quote()
    }
    .sign(&maker_key());
    let too_short = Err(QuoteError::LockTimeTooShort {
        lock_ms: 3_399,
        min_ms: 3_400,
    });
    assert_eq!(check(&short_lock, amount(), NOW), too_short);
    let swapped = Quote {
        network_a: network_b(),
        network_b: network_a(),
        ..quote()
    };
    assert_eq!(
        check(&swapped.sign(&maker_key()), amount(), NOW),
        Err(QuoteError::NotWanted)
    );
    let gold = Quote {
        asset: "gold".into(),
        ..quote()
    }
    .sign(&maker_key());
    assert_eq!(check(&gold, amount(), NOW), Err(QuoteError::NotWanted));
    let to_payer = Quote {
        maker_b: payer_key().account(),
        ..quote()
    }
    .sign(&maker_key());
    assert_eq!(check(&to_payer, amount(), NOW), Err(QuoteError::PaysItself));
    let empty_range = Quote {
        min_amount: Amount::from_microcash(5),
        max_amount: Amount::from_microcash(4),
        ..quote()
    };
    assert!(matches!(
        check(&empty_range.sign(&maker_key()), amount(), NOW),
        Err(QuoteError::Malformed(_))
    ));
    let one_network = Quote {
        network_b: network_a(),
        ..quote()
    };
    assert!(matches!(
        one_network.check_shape(),
        Err(QuoteError::Malformed(_))
    ));
}

proptest! {
    /// Whatever the fee, every amount in range is read back from its total, and the total
    /// grows with the amount.
    #[test]
    fn totals_identify_their_amount(
        ppm in 0u32..=1_000_000,
        fixed in 0u64..1_000_000,
        amount in 1_000_000u64..=100_000_000,
    ) {
        let quote = Quote { fee_ppm: ppm, fee_fixed: Amount::from_microcash(fixed), ..quote() };
        let amount = Amount::from_microcash(amount);
        let total = quote.total_for(amount).unwrap();
        prop_assert!(total >= amount);
        prop_assert_eq!(quote.amount_for_total(total), Some(amount));
        let next = quote.total_for(Amount::from_microcash(amount.microcash() + 1)).unwrap();
        prop_assert!(next > total);
    }
}
