#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use proptest::prelude::*;

const NET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

fn example() -> String {
    format!(
        "tally-live-connection v1\nrelay = relay.example.org:7777\nroom = 6b1f0c3e9a7d2254\ntoken = Zq8-Vx3.pLr_0aa\nnetwork = {NET}\nsession_key = {KEY}\n"
    )
}

/// The documented example parses into its fields and is written back byte for byte.
#[test]
fn example_parses_and_round_trips() {
    let file = ConnectionFile::parse(&example()).unwrap();
    assert_eq!(file.relay, "relay.example.org:7777");
    assert_eq!(file.room, "6b1f0c3e9a7d2254");
    assert_eq!(file.token, "Zq8-Vx3.pLr_0aa");
    assert_eq!(file.network.to_string(), NET);
    assert_eq!(file.session_key.to_string(), KEY);
    assert_eq!(file.to_text(), example());
    assert_eq!(example().parse::<ConnectionFile>(), Ok(file));
}

/// The secret never shows in debug output (logs, panics).
#[test]
fn debug_hides_the_session_key() {
    let file = ConnectionFile::parse(&example()).unwrap();
    let shown = format!("{file:?}");
    assert!(!shown.contains(KEY) && shown.contains("SessionKey(…)"));
}

/// Other key orders, CRLF and blank lines are read; the result is the same file.
#[test]
fn tolerated_layouts() {
    let text = format!(
        "tally-live-connection v1\r\n\r\nsession_key = {KEY}\r\nnetwork = {NET}\r\ntoken = Zq8-Vx3.pLr_0aa\r\nroom = 6b1f0c3e9a7d2254\r\nrelay = relay.example.org:7777"
    );
    assert_eq!(
        ConnectionFile::parse(&text),
        ConnectionFile::parse(&example())
    );
}

/// Every refusal, with its reason.
#[test]
fn refusals() {
    use ConnectionFileError as E;
    let base = example();
    let swap = |from: &str, to: &str| base.replacen(from, to, 1);
    let cases: Vec<(String, E)> = vec![
        (
            format!("{base}{}", " ".repeat(MAX_CONNECTION_FILE_BYTES)),
            E::TooLong(base.len() + MAX_CONNECTION_FILE_BYTES),
        ),
        (swap("v1", "v2"), E::NotConnectionFile),
        (format!("\n{base}"), E::NotConnectionFile),
        (String::new(), E::NotConnectionFile),
        (swap("room = ", "room= "), E::BadLine(3)),
        (
            swap("room = ", "# room = "),
            E::UnknownKey {
                line: 3,
                key: "# room".into(),
            },
        ),
        (
            format!("{base}room = other\n"),
            E::DuplicateKey {
                line: 7,
                key: "room",
            },
        ),
        (
            format!("{base}colour = blue\n"),
            E::UnknownKey {
                line: 7,
                key: "colour".into(),
            },
        ),
        (
            swap("token = Zq8-Vx3.pLr_0aa\n", ""),
            E::MissingKey("token"),
        ),
        (swap(":7777", ""), E::BadRelay("relay.example.org".into())),
        (
            swap(":7777", ":0"),
            E::BadRelay("relay.example.org:0".into()),
        ),
        (
            swap(":7777", ":65536"),
            E::BadRelay("relay.example.org:65536".into()),
        ),
        (
            swap(":7777", ":07777"),
            E::BadRelay("relay.example.org:07777".into()),
        ),
        (
            swap("relay.example.org", "-bad.org"),
            E::BadRelay("-bad.org:7777".into()),
        ),
        (
            swap("relay.example.org", "1.2.3.999"),
            E::BadRelay("1.2.3.999:7777".into()),
        ),
        (
            swap("relay.example.org", "::1"),
            E::BadRelay("::1:7777".into()),
        ),
        (
            swap("relay.example.org", "a_b.org"),
            E::BadRelay("a_b.org:7777".into()),
        ),
        (swap("6b1f0c3e9a7d2254", "has#hash"), E::BadRoom),
        (swap("6b1f0c3e9a7d2254", &"r".repeat(129)), E::BadRoom),
        (swap("room = 6b1f0c3e9a7d2254", "room = "), E::BadRoom),
        (swap("Zq8-Vx3.pLr_0aa", "two words"), E::BadToken),
        (swap("Zq8-Vx3.pLr_0aa", &"t".repeat(257)), E::BadToken),
        (swap("Zq8-Vx3.pLr_0aa", "caf\u{e9}"), E::BadToken),
        (swap(NET, &NET[..62]), E::BadNetwork(NET[..62].into())),
        (
            swap(NET, &NET.to_uppercase()),
            E::BadNetwork(NET.to_uppercase()),
        ),
        (swap(KEY, &KEY[..62]), E::BadSessionKey),
        (swap(KEY, &KEY.to_uppercase()), E::BadSessionKey),
        (swap(KEY, &format!("{}g", &KEY[..63])), E::BadSessionKey),
    ];
    for (text, expected) in cases {
        assert_eq!(
            ConnectionFile::parse(&text),
            Err(expected.clone()),
            "{text:?}"
        );
        assert!(!expected.to_string().is_empty());
    }
}

/// Addresses the relay can be reached at are accepted.
#[test]
fn relay_addresses() {
    for good in [
        "a:1",
        "relay.example.org:7777",
        "127.0.0.1:7777",
        "[::1]:7777",
        "[2001:db8::1]:65535",
        "xn--bcher-kva.example:80",
    ] {
        assert!(valid_relay_address(good), "{good}");
    }
    for bad in [
        "",
        ":7777",
        "a:",
        "a:+1",
        "[::1:7777",
        "a..b:1",
        "a.b.:1",
        "1.2.3:7",
        "host:port",
    ] {
        assert!(!valid_relay_address(bad), "{bad}");
    }
}

/// The room and token rules are the relay's, byte for byte.
#[test]
fn room_and_token_rules_match_the_relay() {
    assert!(valid_room("usd/a.b:c+d=e~f_g-h"));
    assert!(valid_room(&"r".repeat(128)));
    for bad in ["", "a b", "a#b", "@a", "a\u{e9}"] {
        assert!(!valid_room(bad), "{bad}");
    }
    assert!(valid_token("!~#@"));
    assert!(valid_token(&"t".repeat(256)));
    for bad in ["", "a b", "a\tb", "\u{7f}"] {
        assert!(!valid_token(bad), "{bad}");
    }
}

fn arb_file() -> impl Strategy<Value = ConnectionFile> {
    (
        prop_oneof![
            "[a-z][a-z0-9-]{0,10}[a-z0-9](\\.[a-z]{2,6}){0,2}:[1-9][0-9]{0,3}",
            "((25[0-5]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|1[0-9]{2}|[1-9]?[0-9]):[1-9][0-9]{0,3}",
        ],
        "[A-Za-z0-9._:+/=~-]{1,128}",
        "[!-~]{1,256}",
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(relay, room, token, net, key)| ConnectionFile {
            relay,
            room,
            token,
            network: tally_core::NetworkId(net.into()),
            session_key: SessionKey::from_bytes(key),
        })
}

proptest! {
    /// Every valid file survives its text form exactly.
    #[test]
    fn files_round_trip(file in arb_file()) {
        prop_assert_eq!(file.validate(), Ok(()));
        prop_assert_eq!(ConnectionFile::parse(&file.to_text()), Ok(file));
    }

    /// No input makes the parser panic.
    #[test]
    fn parser_never_panics(text in "(tally-live-connection v1\n)?[ -~\n]{0,300}") {
        let _ = ConnectionFile::parse(&text);
    }
}
