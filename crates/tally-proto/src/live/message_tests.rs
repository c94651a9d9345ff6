#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use proptest::prelude::*;

fn msg(number: MessageNumber, details: Details) -> LiveMessage {
    LiveMessage::outgoing(number, details)
}

/// Every number and name of the DESIGN table maps both ways, and 20..=23 are not messages.
#[test]
fn numbers_and_names_match_the_table() {
    let expected: [(u8, &str); 20] = [
        (1, "Heartbeat"),
        (2, "Empty_Import_Export"),
        (3, "Import_Export_Empty"),
        (4, "Money to be Sent"),
        (5, "Making_Change"),
        (6, "Joining_Coins"),
        (7, "Finding_Change"),
        (8, "Moving_Coins_To_Sender"),
        (9, "Detecting_Coin_authenticity"),
        (10, "Fixing_Coins"),
        (11, "Putting_Coins_in_Export"),
        (12, "Encrypting Coins"),
        (13, "Ready_To_Receive"),
        (24, "Encrypted Coins"),
        (14, "Received"),
        (15, "Decrypting_Coins"),
        (16, "Powning_Coins"),
        (17, "Receipt"),
        (18, "Confirming Change of Ownership"),
        (19, "Coins confirmed"),
    ];
    for (m, (number, name)) in MessageNumber::ALL.into_iter().zip(expected) {
        assert_eq!((m.number(), m.name()), (number, name));
        assert_eq!(MessageNumber::from_number(u64::from(number)), Some(m));
        assert_eq!(MessageNumber::from_name(name), Some(m));
    }
    for missing in [0, 20, 21, 22, 23, 25, 256, u64::MAX] {
        assert_eq!(MessageNumber::from_number(missing), None);
    }
}

/// The seed's JSON form parses, before and after the relay's `#` substitution.
#[test]
fn seed_json_form_parses() {
    let m = parse_line(r##"{"from": "#", "Message Number": 1, "Message_Details": null}"##).unwrap();
    assert_eq!(m, msg(MessageNumber::Heartbeat, Details::None));
    let m =
        parse_line(r#"{"from": "192.168.1.54", "Message Number": 4, "Message_Details": "281"}"#)
            .unwrap();
    assert_eq!(m.from.as_deref(), Some("192.168.1.54"));
    assert_eq!(m.details, Details::Amount(Amount::from_cash(281).unwrap()));
    let m =
        parse_line(r#"{"from": "::1", "Message Number": 4, "Message_Details": "0.5"}"#).unwrap();
    assert_eq!(m.details, Details::Amount(Amount::from_microcash(500_000)));
    // The seed's table says "An Integer": whole cash as a JSON number is read too.
    let m = parse_line(r#"{"from": "::1", "Message Number": 4, "Message_Details": 3439}"#).unwrap();
    assert_eq!(m.details, Details::Amount(Amount::from_cash(3439).unwrap()));
    // Absent details mean none.
    let m = parse_line(r#"{"from": "1.2.3.4", "Message Number": 13}"#).unwrap();
    assert_eq!(m.number, MessageNumber::ReadyToReceive);
    let m = parse_line(
        r#"{"from": "1.2.3.4", "Message Number": 24, "Message_Details": {"Coins": "AAEC", "PownDeadline": 1700000000000}}"#,
    )
    .unwrap();
    assert_eq!(
        m.details,
        Details::SealedCoins {
            coins_b64: "AAEC".into(),
            pown_deadline_ms: 1_700_000_000_000
        }
    );
    let m = parse_line(r#"{"from": "1.2.3.4", "Message Number": 17, "Message_Details": "AA=="}"#)
        .unwrap();
    assert_eq!(m.details, Details::Receipt("AA==".into()));
}

/// The seed's tag form parses: the name after the first token, `<# 281>` for the amount.
#[test]
fn seed_tag_form_parses() {
    assert_eq!(
        parse_line("<# Heartbeat>").unwrap(),
        msg(MessageNumber::Heartbeat, Details::None)
    );
    let m = parse_line("<192.168.1.5 Making_Change>").unwrap();
    assert_eq!(m.number, MessageNumber::MakingChange);
    assert_eq!(m.from.as_deref(), Some("192.168.1.5"));
    assert_eq!(
        parse_line("<# Encrypting Coins>").unwrap().number,
        MessageNumber::EncryptingCoins
    );
    assert_eq!(
        parse_line("<# 3439>").unwrap(),
        msg(
            MessageNumber::MoneyToBeSent,
            Details::Amount(Amount::from_cash(3439).unwrap())
        )
    );
}

/// Lines over the limit are refused before any parsing, in both forms.
#[test]
fn over_long_lines_are_refused() {
    let long = format!(
        r##"{{"from": "#", "Message Number": 17, "Message_Details": "{}"}}"##,
        "A".repeat(MAX_LIVE_LINE)
    );
    assert!(matches!(
        parse_line(&long),
        Err(LiveLineError::TooLong {
            max: MAX_LIVE_LINE,
            ..
        })
    ));
    let tag = format!("<# {}>", "H".repeat(MAX_LIVE_LINE));
    assert!(matches!(
        parse_line(&tag),
        Err(LiveLineError::TooLong { .. })
    ));
    // The limits stay under the relay's default line limit, with room for substitution.
    const { assert!(MAX_SENT_LINE + 39 < MAX_LIVE_LINE && MAX_LIVE_LINE < 65_536) };
}

/// Every kind of bad line gets its own clear refusal.
#[test]
fn bad_lines_are_refused_with_the_reason() {
    use LiveLineError as E;
    type Check = fn(&LiveLineError) -> bool;
    let cases: Vec<(&str, Check)> = vec![
        ("hello", |e| matches!(e, E::NotJson(_))),
        ("", |e| matches!(e, E::NotJson(_))),
        // The seed's own example has a trailing comma: not JSON.
        (
            r#"{"from": "1.2.3.4", "Message Number": 1, "Message_Details": "x",}"#,
            |e| matches!(e, E::NotJson(_)),
        ),
        (r##"{"from": "#", "Message Number": 1} x"##, |e| {
            matches!(e, E::NotJson(_))
        }),
        ("[1, 2]", |e| matches!(e, E::Malformed(_))),
        (r##"{"from": "#", "Message Number": 1, "extra": 1}"##, |e| {
            matches!(e, E::Malformed(_))
        }),
        (
            r##"{"from": "#", "Message Number": 1, "Message Number": 1}"##,
            |e| matches!(e, E::Malformed(_)),
        ),
        (r#"{"Message Number": 1}"#, |e| {
            *e == E::MissingField("from")
        }),
        (r##"{"from": "#"}"##, |e| {
            *e == E::MissingField("Message Number")
        }),
        (r#"{"from": 7, "Message Number": 1}"#, |e| {
            matches!(e, E::WrongType { field: "from", .. })
        }),
        (r##"{"from": "#", "Message Number": "1"}"##, |e| {
            matches!(
                e,
                E::WrongType {
                    field: "Message Number",
                    ..
                }
            )
        }),
        (r##"{"from": "#", "Message Number": -1}"##, |e| {
            matches!(e, E::WrongType { .. })
        }),
        (r##"{"from": "#", "Message Number": 1.0}"##, |e| {
            matches!(e, E::WrongType { .. })
        }),
        (r#"{"from": "", "Message Number": 1}"#, |e| *e == E::BadFrom),
        (r##"{"from": "#", "Message Number": 20}"##, |e| {
            *e == E::UnknownNumber(20)
        }),
        (r##"{"from": "#", "Message Number": 0}"##, |e| {
            *e == E::UnknownNumber(0)
        }),
        (
            r##"{"from": "#", "Message Number": 1, "Message_Details": "dfsdfs"}"##,
            |e| {
                matches!(
                    e,
                    E::WrongDetails {
                        number: MessageNumber::Heartbeat
                    }
                )
            },
        ),
        (r##"{"from": "#", "Message Number": 4}"##, |e| {
            matches!(e, E::WrongDetails { .. })
        }),
        (
            r##"{"from": "#", "Message Number": 4, "Message_Details": "1.0000001"}"##,
            |e| matches!(e, E::BadAmount(AmountError::TooPrecise(_))),
        ),
        (
            r##"{"from": "#", "Message Number": 4, "Message_Details": "-3"}"##,
            |e| matches!(e, E::BadAmount(_)),
        ),
        (
            r##"{"from": "#", "Message Number": 4, "Message_Details": 1.5}"##,
            |e| matches!(e, E::WrongDetails { .. }),
        ),
        (r##"{"from": "#", "Message Number": 17}"##, |e| {
            matches!(e, E::WrongDetails { .. })
        }),
        (
            r##"{"from": "#", "Message Number": 17, "Message_Details": "A#=="}"##,
            |e| *e == E::BadBase64("Message_Details"),
        ),
        (
            r##"{"from": "#", "Message Number": 17, "Message_Details": "AAA"}"##,
            |e| matches!(e, E::BadBase64(_)),
        ),
        (
            r##"{"from": "#", "Message Number": 17, "Message_Details": "A==="}"##,
            |e| matches!(e, E::BadBase64(_)),
        ),
        (
            r##"{"from": "#", "Message Number": 24, "Message_Details": "AAAA"}"##,
            |e| matches!(e, E::WrongDetails { .. }),
        ),
        (
            r##"{"from": "#", "Message Number": 24, "Message_Details": {"Coins": "AAAA"}}"##,
            |e| matches!(e, E::WrongDetails { .. }),
        ),
        (
            r##"{"from": "#", "Message Number": 24, "Message_Details": {"Coins": "AAAA", "PownDeadline": -5}}"##,
            |e| matches!(e, E::WrongDetails { .. }),
        ),
        (
            r##"{"from": "#", "Message Number": 24, "Message_Details": {"Coins": "AAAA", "PownDeadline": 5, "x": 1}}"##,
            |e| matches!(e, E::WrongDetails { .. }),
        ),
        (
            r##"{"from": "#", "Message Number": 24, "Message_Details": {"Coins": "AA A", "PownDeadline": 5}}"##,
            |e| *e == E::BadBase64("Coins"),
        ),
        ("<#>", |e| *e == E::BadTag),
        ("<# >", |e| *e == E::BadTag),
        ("<# Heartbeat", |e| *e == E::BadTag),
        ("<# Heart<beat>", |e| *e == E::BadTag),
        ("<# coin>", |e| matches!(e, E::UnknownName(_))),
        ("<# heartbeat>", |e| matches!(e, E::UnknownName(_))),
        ("<# Receipt>", |e| {
            matches!(
                e,
                E::WrongDetails {
                    number: MessageNumber::Receipt
                }
            )
        }),
        ("<# Money to be Sent>", |e| {
            matches!(e, E::WrongDetails { .. })
        }),
        ("<# 12abc>", |e| matches!(e, E::BadAmount(_))),
    ];
    for (line, check) in cases {
        let err = parse_line(line).expect_err(line);
        assert!(check(&err), "{line}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

/// The written form is the seed's, with `#` for the relay to fill in.
#[test]
fn lines_are_written_in_the_seed_form() {
    assert_eq!(
        msg(MessageNumber::Heartbeat, Details::None).to_line(),
        r##"{"from": "#", "Message Number": 1, "Message_Details": null}"##
    );
    assert_eq!(
        msg(
            MessageNumber::MoneyToBeSent,
            Details::Amount(Amount::from_microcash(1_504_000))
        )
        .to_line(),
        r##"{"from": "#", "Message Number": 4, "Message_Details": "1.504"}"##
    );
    assert_eq!(
        msg(
            MessageNumber::EncryptedCoins,
            Details::SealedCoins {
                coins_b64: "AAEC".into(),
                pown_deadline_ms: 9
            }
        )
        .to_line(),
        r##"{"from": "#", "Message Number": 24, "Message_Details": {"Coins": "AAEC", "PownDeadline": 9}}"##
    );
}

/// `is_well_formed` agrees with what `parse_line` would accept.
#[test]
fn well_formedness_matches_the_parser() {
    assert!(!msg(MessageNumber::Heartbeat, Details::Receipt("AAAA".into())).is_well_formed());
    assert!(!msg(MessageNumber::Receipt, Details::None).is_well_formed());
    assert!(!msg(MessageNumber::Receipt, Details::Receipt("A#".into())).is_well_formed());
    assert!(msg(MessageNumber::Receipt, Details::Receipt("AAAA".into())).is_well_formed());
}

fn arb_b64() -> impl Strategy<Value = String> {
    ("[A-Za-z0-9+/]{0,40}", 0usize..3).prop_map(|(body, pad)| {
        let mut text = body;
        let len = 4 * (text.len() / 4) + 4 - pad;
        while text.len() < len {
            text.push('A');
        }
        text.truncate(len);
        text.push_str(&"=".repeat(pad));
        text
    })
}

fn arb_message() -> impl Strategy<Value = LiveMessage> {
    let from = prop_oneof![Just(None), "[0-9a-f.:]{1,39}".prop_map(Some)];
    let body = prop_oneof![
        (0usize..MessageNumber::ALL.len()).prop_filter_map("details-less", |i| {
            let n = MessageNumber::ALL[i];
            msg(n, Details::None)
                .is_well_formed()
                .then_some((n, Details::None))
        }),
        any::<u64>().prop_map(|m| (
            MessageNumber::MoneyToBeSent,
            Details::Amount(Amount::from_microcash(m))
        )),
        arb_b64().prop_map(|b| (MessageNumber::Receipt, Details::Receipt(b))),
        (arb_b64(), any::<u64>()).prop_map(|(coins_b64, pown_deadline_ms)| {
            (
                MessageNumber::EncryptedCoins,
                Details::SealedCoins {
                    coins_b64,
                    pown_deadline_ms,
                },
            )
        }),
    ];
    (from, body).prop_map(|(from, (number, details))| LiveMessage {
        from,
        number,
        details,
    })
}

proptest! {
    /// Every well-formed message survives its line form exactly.
    #[test]
    fn messages_round_trip(m in arb_message()) {
        prop_assert!(m.is_well_formed());
        prop_assert_eq!(parse_line(&m.to_line()), Ok(m));
    }

    /// After the relay substitutes `#` with any address, the line still parses, with that
    /// address as `from`.
    #[test]
    fn substituted_lines_parse(m in arb_message(), ip in "[0-9a-f:]{2,39}") {
        let m = LiveMessage { from: None, ..m };
        let line = m.to_line().replace('#', &ip);
        let parsed = parse_line(&line).unwrap();
        prop_assert_eq!(parsed.from.as_deref(), Some(ip.as_str()));
        prop_assert_eq!(parsed.details, m.details);
    }

    /// No input makes the parser panic.
    #[test]
    fn parser_never_panics(line in ".{0,200}") {
        let _ = parse_line(&line);
    }

    /// Only strings of the padded base64 shape pass `valid_base64`.
    #[test]
    fn base64_shape(b in arb_b64(), junk in "[^A-Za-z0-9+/=]") {
        prop_assert!(valid_base64(&b));
        let bad = format!("{}{}", &b[..b.len() - 1], junk);
        prop_assert!(!valid_base64(&bad));
    }
}
