//! Bearer coins (PROTOCOL.md §10): denominations and how amounts break into them, the
//! coin's canonical bytes, the coin file and the token. Every refusal a hostile or
//! mistaken input can meet is tested here, and every form reads back as what was written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use tally_core::coin::{
    COIN_FILE_FORMAT, MAX_COINS_PER_AMOUNT, MAX_COINS_PER_FILE, TOKEN_PREFIX, decode_bundle,
    encode_bundle,
};
use tally_core::{
    AccountId, Amount, Certificate, Coin, CoinError, CoinFile, Decode, DecodeError, Denomination,
    Digest, Encode, NetworkId, Order, SecretKey, Signature, Transfer, Vote, break_down,
    decode_token, encode_token, fewest_coins,
};

const CASH: u64 = 1_000_000;

fn network(byte: u8) -> NetworkId {
    NetworkId(Digest::from([byte; 32]))
}

fn cash(n: u64) -> Amount {
    Amount::from_microcash(n * CASH)
}

/// A structurally complete certificate (the codecs never check its signatures).
fn certificate(recipient: AccountId, amount: Amount, votes: usize) -> Certificate {
    let payer = SecretKey::from_bytes([0xa1; 32]);
    Certificate {
        order: Order::Transfer(Transfer {
            sender: payer.account(),
            recipient,
            amount,
            sequence: 7,
        }),
        signature: Signature::from([0x51; 64]),
        checksum: Digest::from([0xcc; 32]),
        votes: (0..votes)
            .map(|i| Vote {
                validator: AccountId::from([i as u8; 32]),
                signature: Signature::from([0x52; 64]),
            })
            .collect(),
    }
}

fn coin(net: u8, denomination: Denomination, seed: u8, funded: bool) -> Coin {
    let secret = SecretKey::from_bytes([seed; 32]);
    let funding = funded.then(|| certificate(secret.account(), denomination.amount(), 3));
    Coin {
        network: network(net),
        denomination,
        secret,
        funding,
    }
}

fn arb_denomination() -> impl Strategy<Value = Denomination> {
    prop::sample::select(Denomination::ALL.to_vec())
}

/// Coins of one network with distinct secrets, some funded.
fn arb_coins(max: usize) -> impl Strategy<Value = Vec<Coin>> {
    (
        any::<[u8; 32]>(),
        prop::collection::btree_map(
            any::<[u8; 32]>(),
            (arb_denomination(), any::<bool>(), 0..4usize),
            1..max,
        ),
    )
        .prop_map(|(net, secrets)| {
            secrets
                .into_iter()
                .map(|(seed, (denomination, funded, votes))| {
                    let secret = SecretKey::from_bytes(seed);
                    let funding =
                        funded.then(|| certificate(secret.account(), denomination.amount(), votes));
                    Coin {
                        network: NetworkId(Digest::from(net)),
                        denomination,
                        secret,
                        funding,
                    }
                })
                .collect()
        })
}

/// The fewest coins of `set` summing to `cash`, by exhaustive dynamic programming.
fn fewest_by_search(cash: u64, set: &[u64]) -> Option<u64> {
    let mut best = vec![None; cash as usize + 1];
    best[0] = Some(0u64);
    for total in 1..=cash as usize {
        best[total] = set
            .iter()
            .filter(|&&d| d as usize <= total)
            .filter_map(|&d| best[total - d as usize].map(|n| n + 1))
            .min();
    }
    best[cash as usize]
}

#[test]
fn denominations_are_the_five_cloudcoin_values_largest_first() {
    let values: Vec<u64> = Denomination::ALL.iter().map(|d| d.cash()).collect();
    assert_eq!(values, vec![250, 100, 25, 5, 1]);
    for d in Denomination::ALL {
        assert_eq!(d.amount(), cash(d.cash()));
        assert_eq!(Denomination::from_amount(d.amount()), Some(d));
        assert_eq!(Denomination::from_cash(d.cash()), Some(d));
    }
    for not_one in [0, 2, 10, 50, 500] {
        assert_eq!(Denomination::from_cash(not_one), None);
        assert_eq!(Denomination::from_amount(cash(not_one)), None);
    }
    assert_eq!(
        Denomination::from_amount(Amount::from_microcash(25 * CASH + 1)),
        None
    );
    assert_eq!(Denomination::TwentyFive.to_string(), "25 cash");
}

#[test]
fn denominations_parse_from_a_number_of_cash_and_nothing_else() {
    assert_eq!("25".parse(), Ok(Denomination::TwentyFive));
    assert_eq!("250 cash".parse(), Ok(Denomination::TwoFifty));
    assert_eq!(" 1 ".parse(), Ok(Denomination::One));
    for bad in [
        "2",
        "",
        "cash",
        "+5",
        "-1",
        "5.0",
        "0x19",
        "twenty-five",
        "1000",
    ] {
        assert!(
            matches!(
                bad.parse::<Denomination>(),
                Err(CoinError::NotADenomination(_))
            ),
            "{bad:?} must not parse"
        );
    }
}

#[test]
fn denominations_are_a_json_number_of_cash() {
    assert_eq!(
        serde_json::to_string(&Denomination::Hundred).unwrap(),
        "100"
    );
    assert_eq!(
        serde_json::from_str::<Denomination>("5").unwrap(),
        Denomination::Five
    );
    for bad in ["2", "\"25\"", "25.5", "-5", "null"] {
        assert!(serde_json::from_str::<Denomination>(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_denomination_is_one_byte_its_cash_value() {
    for d in Denomination::ALL {
        assert_eq!(d.to_bytes(), vec![d.cash() as u8]);
        assert_eq!(Denomination::from_bytes(&[d.cash() as u8]), Ok(d));
    }
    for byte in 0..=u8::MAX {
        let known = [1, 5, 25, 100, 250].contains(&byte);
        assert_eq!(Denomination::from_bytes(&[byte]).is_ok(), known, "{byte}");
    }
    assert_eq!(
        Denomination::from_bytes(&[2]),
        Err(DecodeError::UnknownKind {
            what: "denomination",
            kind: 2,
            at: 0
        })
    );
}

#[test]
fn fewest_coins_takes_the_largest_first() {
    use Denomination::*;
    assert_eq!(
        fewest_coins(cash(381)).unwrap(),
        vec![TwoFifty, Hundred, TwentyFive, Five, One]
    );
    assert_eq!(fewest_coins(cash(4)).unwrap(), vec![One; 4]);
    assert_eq!(fewest_coins(cash(500)).unwrap(), vec![TwoFifty, TwoFifty]);
}

#[test]
fn fewest_coins_refuses_what_coins_cannot_make() {
    assert_eq!(fewest_coins(Amount::ZERO), Err(CoinError::ZeroAmount));
    let fraction = Amount::from_microcash(1_500_000);
    assert_eq!(
        fewest_coins(fraction),
        Err(CoinError::NotWholeCash(fraction))
    );
    assert!(
        fewest_coins(fraction)
            .unwrap_err()
            .to_string()
            .contains("1.5 cash is not a whole number")
    );
    // 10,000 coins of 250 is the most one call makes; one cash more needs one coin more.
    let most = cash(250 * MAX_COINS_PER_AMOUNT as u64);
    assert_eq!(fewest_coins(most).unwrap().len(), MAX_COINS_PER_AMOUNT);
    assert_eq!(
        fewest_coins(cash(250 * MAX_COINS_PER_AMOUNT as u64 + 1)),
        Err(CoinError::TooManyCoins {
            amount: cash(250 * MAX_COINS_PER_AMOUNT as u64 + 1),
            needed: MAX_COINS_PER_AMOUNT as u64 + 1,
            max: MAX_COINS_PER_AMOUNT
        })
    );
    // The largest amount there is is refused by counting, not by allocating.
    let huge = Amount::from_microcash(u64::MAX / CASH * CASH);
    assert!(matches!(
        fewest_coins(huge),
        Err(CoinError::TooManyCoins { needed, .. }) if needed > 70_000_000_000
    ));
}

#[test]
fn breaking_a_coin_makes_the_fewest_smaller_coins() {
    use Denomination::*;
    assert_eq!(
        break_down(TwoFifty),
        vec![Hundred, Hundred, TwentyFive, TwentyFive]
    );
    assert_eq!(break_down(Hundred), vec![TwentyFive; 4]);
    assert_eq!(break_down(TwentyFive), vec![Five; 5]);
    assert_eq!(break_down(Five), vec![One; 5]);
    assert_eq!(break_down(One), Vec::<Denomination>::new());
    for d in [TwoFifty, Hundred, TwentyFive, Five] {
        let parts = break_down(d);
        assert_eq!(parts.iter().map(|p| p.cash()).sum::<u64>(), d.cash());
        assert!(parts.iter().all(|p| *p < d));
        let smaller: Vec<u64> = Denomination::ALL
            .iter()
            .map(|x| x.cash())
            .filter(|&c| c < d.cash())
            .collect();
        assert_eq!(
            Some(parts.len() as u64),
            fewest_by_search(d.cash(), &smaller)
        );
    }
}

#[test]
fn a_coin_is_its_secret_keys_account() {
    let c = coin(1, Denomination::Five, 0xc1, false);
    assert_eq!(c.account(), SecretKey::from_bytes([0xc1; 32]).account());
    assert_eq!(c.amount(), cash(5));
    let fresh = Coin::generate(network(1), Denomination::One);
    assert_ne!(
        fresh.account(),
        Coin::generate(network(1), Denomination::One).account()
    );
    assert_eq!(fresh.funding, None);
    // Debug never shows the secret.
    assert!(!format!("{c:?}").contains(&c.secret.to_hex()));
}

#[test]
fn a_coin_encodes_as_the_documented_layout() {
    let c = coin(0x4e, Denomination::TwentyFive, 0xc1, false);
    let bytes = c.to_bytes();
    assert_eq!(bytes.len(), 1 + 32 + 1 + 32 + 1);
    assert_eq!(bytes[0], 1);
    assert_eq!(&bytes[1..33], &[0x4e; 32]);
    assert_eq!(bytes[33], 25);
    assert_eq!(&bytes[34..66], &[0xc1; 32]);
    assert_eq!(bytes[66], 0);

    let funded = coin(0x4e, Denomination::TwentyFive, 0xc1, true);
    let bytes = funded.to_bytes();
    assert_eq!(bytes[66], 1);
    assert_eq!(&bytes[67..], funded.funding.as_ref().unwrap().to_bytes());
    assert_eq!(Coin::from_bytes(&bytes), Ok(funded));
}

#[test]
fn a_malformed_coin_is_refused() {
    let good = coin(0x4e, Denomination::TwentyFive, 0xc1, false).to_bytes();
    let with = |at: usize, byte: u8| {
        let mut bytes = good.clone();
        bytes[at] = byte;
        Coin::from_bytes(&bytes)
    };
    assert_eq!(
        with(0, 2),
        Err(DecodeError::UnknownKind {
            what: "coin version",
            kind: 2,
            at: 0
        })
    );
    assert_eq!(
        with(33, 26),
        Err(DecodeError::UnknownKind {
            what: "denomination",
            kind: 26,
            at: 33
        })
    );
    assert_eq!(with(66, 2), Err(DecodeError::NotABool { at: 66, value: 2 }));
    // The flag says a certificate follows, but none does.
    assert!(matches!(with(66, 1), Err(DecodeError::Truncated { .. })));
    assert!(matches!(
        Coin::from_bytes(&good[..40]),
        Err(DecodeError::Truncated { .. })
    ));
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(
        Coin::from_bytes(&longer),
        Err(DecodeError::TrailingBytes { at: 67, count: 1 })
    );
}

#[test]
fn a_token_is_the_prefix_then_base64url_of_the_bundle() {
    let coins = vec![
        coin(7, Denomination::One, 1, false),
        coin(7, Denomination::TwoFifty, 2, true),
    ];
    let token = encode_token(&coins).unwrap();
    assert!(token.starts_with(TOKEN_PREFIX));
    assert!(
        token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let bundle = encode_bundle(&coins).unwrap();
    assert_eq!(&bundle[..32], &[7; 32]);
    assert_eq!(&bundle[32..36], &2u32.to_le_bytes());
    assert_eq!(decode_bundle(&bundle).unwrap(), coins);
    assert_eq!(decode_token(&token).unwrap(), coins);
    // Pasted with surrounding whitespace and a line break, it still reads.
    assert_eq!(decode_token(&format!("  {token}\n")).unwrap(), coins);
}

#[test]
fn a_token_refuses_what_cannot_be_one_bundle() {
    assert_eq!(encode_token(&[]), Err(CoinError::NoCoins));
    let mixed = [
        coin(1, Denomination::One, 1, false),
        coin(2, Denomination::One, 2, false),
    ];
    assert_eq!(
        encode_token(&mixed),
        Err(CoinError::MixedNetworks {
            first: network(1),
            other: network(2)
        })
    );
    let twice = [
        coin(1, Denomination::One, 1, false),
        coin(1, Denomination::Five, 1, false),
    ];
    assert_eq!(
        encode_token(&twice),
        Err(CoinError::DuplicateCoin(twice[0].account()))
    );
}

#[test]
fn a_token_with_the_wrong_prefix_says_what_a_token_starts_with() {
    let token = encode_token(&[coin(1, Denomination::One, 1, false)]).unwrap();
    let other = token.replacen("tallycoin1", "tallycoin2", 1);
    let err = decode_token(&other).unwrap_err();
    assert_eq!(
        err,
        CoinError::UnknownPrefix {
            expected: "tallycoin1",
            found: "tallycoin2".into()
        }
    );
    assert!(err.to_string().contains("\"tallycoin1\""));
    assert!(matches!(
        decode_token(""),
        Err(CoinError::UnknownPrefix { .. })
    ));
    assert!(matches!(
        decode_token("cashuAeyJ0b2tlbiI6W3..."),
        Err(CoinError::UnknownPrefix { .. })
    ));
}

#[test]
fn a_token_that_is_not_base64url_is_refused() {
    let token = encode_token(&[coin(1, Denomination::One, 1, false)]).unwrap();
    for bad in [
        format!("{token}="),            // padding
        format!("{TOKEN_PREFIX}A"),     // a length base64 cannot have
        format!("{token}+"),            // the standard alphabet, not the URL one
        format!("{token}/"),            // the standard alphabet, not the URL one
        format!("{TOKEN_PREFIX}ab cd"), // whitespace inside
    ] {
        assert!(
            matches!(decode_token(&bad), Err(CoinError::BadBase64(_))),
            "{bad}"
        );
    }
}

/// A token of exactly these bundle bytes.
fn token_of(bundle: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bundle)
    )
}

#[test]
fn a_malformed_bundle_is_refused() {
    let good = encode_bundle(&[coin(1, Denomination::Five, 1, false)]).unwrap();
    // Truncated, inside the coin and inside the network id.
    for cut in [good.len() - 1, 20] {
        assert!(matches!(
            decode_token(&token_of(&good[..cut])),
            Err(CoinError::Malformed(DecodeError::Truncated { .. }))
        ));
    }
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(
        decode_token(&token_of(&longer)),
        Err(CoinError::Malformed(DecodeError::TrailingBytes {
            at: good.len(),
            count: 1
        }))
    );
    let mut none = good[..32].to_vec();
    none.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(decode_token(&token_of(&none)), Err(CoinError::NoCoins));
    let mut over = good[..32].to_vec();
    over.extend_from_slice(&(MAX_COINS_PER_FILE as u32 + 1).to_le_bytes());
    assert!(matches!(
        decode_token(&token_of(&over)),
        Err(CoinError::Malformed(DecodeError::TooMany { count, .. })) if count == 10_001
    ));
    // A count the bytes behind it cannot hold is refused before allocating.
    let mut hollow = good[..32].to_vec();
    hollow.extend_from_slice(&10_000u32.to_le_bytes());
    hollow.extend_from_slice(&[1, 0, 0]);
    assert!(matches!(
        decode_bundle(&hollow),
        Err(CoinError::Malformed(DecodeError::Truncated { .. }))
    ));
}

#[test]
fn a_bundle_holding_a_coin_twice_is_refused() {
    let once = coin(1, Denomination::Five, 1, false);
    let body = &encode_bundle(std::slice::from_ref(&once)).unwrap()[36..];
    let mut twice = vec![1u8; 32];
    twice.extend_from_slice(&2u32.to_le_bytes());
    twice.extend_from_slice(body);
    twice.extend_from_slice(body);
    assert_eq!(
        decode_token(&token_of(&twice)),
        Err(CoinError::DuplicateCoin(once.account()))
    );
}

#[test]
fn a_coin_file_reads_back_and_has_the_documented_shape() {
    let coins = vec![
        coin(9, Denomination::TwentyFive, 3, false),
        coin(9, Denomination::Hundred, 4, true),
    ];
    let file = CoinFile::new(coins.clone()).unwrap();
    assert_eq!(file.network(), network(9));
    let text = file.to_json();
    assert_eq!(CoinFile::from_json(&text).unwrap(), file);
    let via_serde: CoinFile = serde_json::from_str(&serde_json::to_string(&file).unwrap()).unwrap();
    assert_eq!(via_serde.into_coins(), coins);

    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["Format"], COIN_FILE_FORMAT);
    assert_eq!(value["Network"], network(9).to_string());
    assert_eq!(value["Coins"][0]["Denomination"], 25);
    assert_eq!(value["Coins"][0]["Secret"], coins[0].secret.to_hex());
    assert!(value["Coins"][0].get("Funding").is_none());
    let funding: Certificate =
        serde_json::from_value(value["Coins"][1]["Funding"].clone()).unwrap();
    assert_eq!(Some(funding), coins[1].funding);
}

fn file_text(format: &str, coins: &str) -> String {
    format!(
        r#"{{"Format":"{format}","Network":"{}","Coins":[{coins}]}}"#,
        network(9)
    )
}

fn coin_text(denomination: &str, secret: &str) -> String {
    format!(r#"{{"Denomination":{denomination},"Secret":"{secret}"}}"#)
}

#[test]
fn a_coin_file_refuses_what_is_not_one() {
    let secret = "c1".repeat(32);
    let one = coin_text("25", &secret);
    assert!(CoinFile::from_json(&file_text(COIN_FILE_FORMAT, &one)).is_ok());

    assert_eq!(
        CoinFile::from_json(&file_text("tally-coins-v2", &one)),
        Err(CoinError::UnknownFormat {
            expected: COIN_FILE_FORMAT,
            found: "tally-coins-v2".into()
        })
    );
    assert_eq!(
        CoinFile::from_json(&file_text(COIN_FILE_FORMAT, "")),
        Err(CoinError::NoCoins)
    );
    let twice = format!("{one},{}", coin_text("5", &secret));
    assert!(matches!(
        CoinFile::from_json(&file_text(COIN_FILE_FORMAT, &twice)),
        Err(CoinError::DuplicateCoin(_))
    ));
    let json_refusals = [
        file_text(COIN_FILE_FORMAT, &coin_text("2", &secret)),
        file_text(COIN_FILE_FORMAT, &coin_text("25", &"zz".repeat(32))),
        file_text(COIN_FILE_FORMAT, &coin_text("25", &"c1".repeat(31))),
        file_text(COIN_FILE_FORMAT, &coin_text("25", &"c1".repeat(33))),
        file_text(
            COIN_FILE_FORMAT,
            &format!(r#"{{"Denomination":25,"Secret":"{secret}","Colour":"gold"}}"#),
        ),
        file_text(COIN_FILE_FORMAT, &one).replacen("{", r#"{"Extra":1,"#, 1),
        file_text(COIN_FILE_FORMAT, &one).replace(&network(9).to_string(), "abcd"),
        file_text(COIN_FILE_FORMAT, &one).replace(&network(9).to_string(), &"gg".repeat(32)),
        r#"{"Format":"tally-coins-v1","Coins":[]}"#.to_owned(),
        "not json".to_owned(),
    ];
    for text in json_refusals {
        assert!(
            matches!(CoinFile::from_json(&text), Err(CoinError::Json(_))),
            "{text}"
        );
    }
    let err = CoinFile::from_json(&file_text(COIN_FILE_FORMAT, &coin_text("25", "c1")));
    assert!(err.unwrap_err().to_string().contains("64 hex digits"));
}

#[test]
fn a_coin_file_of_coins_of_two_networks_cannot_be_made() {
    let mixed = vec![
        coin(1, Denomination::One, 1, false),
        coin(2, Denomination::One, 2, false),
    ];
    assert!(matches!(
        CoinFile::new(mixed),
        Err(CoinError::MixedNetworks { .. })
    ));
    assert_eq!(CoinFile::new(Vec::new()), Err(CoinError::NoCoins));
}

#[test]
fn a_coin_file_of_too_many_coins_is_refused_while_reading() {
    let coins: Vec<String> = (0..=MAX_COINS_PER_FILE)
        .map(|i| coin_text("1", &format!("{i:064x}")))
        .collect();
    let err = CoinFile::from_json(&file_text(COIN_FILE_FORMAT, &coins.join(","))).unwrap_err();
    assert!(
        matches!(&err, CoinError::Json(message) if message.contains("at most 10000")),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Greedy is optimal for this set: no combination of coins is smaller.
    #[test]
    fn fewest_coins_is_optimal_and_exact(whole in 1u64..1200) {
        let coins = fewest_coins(cash(whole)).unwrap();
        prop_assert_eq!(coins.iter().map(|d| d.cash()).sum::<u64>(), whole);
        prop_assert!(coins.windows(2).all(|w| w[0] >= w[1]));
        let set: Vec<u64> = Denomination::ALL.iter().map(|d| d.cash()).collect();
        prop_assert_eq!(Some(coins.len() as u64), fewest_by_search(whole, &set));
    }

    #[test]
    fn a_coin_reads_back_as_itself(coins in arb_coins(3)) {
        for coin in coins {
            let bytes = coin.to_bytes();
            prop_assert_eq!(bytes.len(), coin.encoded_len());
            prop_assert_eq!(Coin::from_bytes(&bytes).unwrap(), coin);
            prop_assert!(Coin::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        }
    }

    #[test]
    fn tokens_and_files_read_back_as_their_coins(coins in arb_coins(6)) {
        prop_assert_eq!(decode_token(&encode_token(&coins).unwrap()).unwrap(), coins.clone());
        let file = CoinFile::new(coins.clone()).unwrap();
        prop_assert_eq!(CoinFile::from_json(&file.to_json()).unwrap().into_coins(), coins);
    }

    #[test]
    fn arbitrary_tokens_and_bundles_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_bundle(&bytes);
        let _ = decode_token(&token_of(&bytes));
        let _ = Coin::from_bytes(&bytes);
        let _ = decode_token(&String::from_utf8_lossy(&bytes));
    }
}
