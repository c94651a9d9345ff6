//! The relay's line protocol as pure functions: join lines, member lines, `#` substitution
//! and the relay's own `@` notices. No I/O here, so every rule can be tested byte by byte.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Lines that start with this byte come from the relay only; a member line starting with
/// it is refused, so nobody can forge an arrival, departure or error notice.
pub const RESERVED_PREFIX: u8 = b'@';

/// The byte the relay replaces with the sender's IP address (seed 000: "change any # signs
/// with the senders IP address").
pub const SUBSTITUTED: u8 = b'#';

/// Longest room name, in bytes. Long enough for a SHA-256 hex topic with a prefix.
pub const MAX_ROOM_BYTES: usize = 128;

/// Longest join token, in bytes.
pub const MAX_TOKEN_BYTES: usize = 256;

/// Longest possible join line (`TOPIC <room> <token>`), so configured line limits can be
/// checked against it.
pub const MAX_JOIN_LINE_BYTES: usize = 5 + 1 + MAX_ROOM_BYTES + 1 + MAX_TOKEN_BYTES;

/// Members of a private room: the two wallets of one LiveConnect transfer.
pub const PRIVATE_ROOM_CAP: usize = 2;

/// The two kinds of room. The kind is fixed by the room's first member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoomKind {
    /// At most two members: one LiveConnect transfer. Joined with `JOIN`.
    Private,
    /// A larger, configurable cap: a market makers' broadcast topic. Joined with `TOPIC`.
    Topic,
}

impl RoomKind {
    /// The word used for this kind in `@ok` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Private => "private",
            RoomKind::Topic => "topic",
        }
    }

    /// The first word of a join line for this kind.
    pub fn join_verb(self) -> &'static str {
        match self {
            RoomKind::Private => "JOIN",
            RoomKind::Topic => "TOPIC",
        }
    }
}

impl fmt::Display for RoomKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RoomKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "private" => Ok(RoomKind::Private),
            "topic" => Ok(RoomKind::Topic),
            _ => Err(()),
        }
    }
}

/// A parsed join line, borrowing from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinRequest<'a> {
    /// Which kind of room the client asks for.
    pub kind: RoomKind,
    /// The room name (see [`valid_room`]).
    pub room: &'a str,
    /// The join token (see [`valid_token`]).
    pub token: &'a str,
}

/// Formats a join line (without the newline), for clients.
pub fn join_line(kind: RoomKind, room: &str, token: &str) -> String {
    format!("{} {room} {token}", kind.join_verb())
}

/// Whether `room` is a valid room name: 1 to [`MAX_ROOM_BYTES`] bytes of
/// `A-Z a-z 0-9 . _ - : + / = ~` (hex, base64 and dotted names fit; `#`, `@` and spaces do not).
pub fn valid_room(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= MAX_ROOM_BYTES
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:+/=~".contains(&b))
}

/// Whether `token` is a valid join token: 1 to [`MAX_TOKEN_BYTES`] bytes of printable ASCII
/// other than space (0x21 to 0x7E).
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_BYTES
        && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Why a first line is not an acceptable join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinLineError {
    /// The line does not start with `JOIN ` or `TOPIC `.
    NotJoin,
    /// The line is not valid UTF-8.
    BadUtf8,
    /// It starts like a join but is malformed; the text says what is wrong.
    BadJoin(&'static str),
}

impl JoinLineError {
    /// The `@error` code this refusal is reported with.
    pub fn code(self) -> ErrorCode {
        match self {
            JoinLineError::NotJoin => ErrorCode::NotJoin,
            JoinLineError::BadUtf8 => ErrorCode::BadUtf8,
            JoinLineError::BadJoin(_) => ErrorCode::BadJoin,
        }
    }

    /// A human explanation for the `@error` line.
    pub fn text(self) -> &'static str {
        match self {
            JoinLineError::NotJoin => {
                "the first line must be JOIN <room> <token> or TOPIC <room> <token>"
            }
            JoinLineError::BadUtf8 => "the line is not valid UTF-8",
            JoinLineError::BadJoin(why) => why,
        }
    }
}

/// Parses a client's first line (without its line ending): `JOIN <room> <token>` for a
/// private room or `TOPIC <room> <token>` for a topic room, fields separated by one space.
pub fn parse_join(line: &[u8]) -> Result<JoinRequest<'_>, JoinLineError> {
    let line = std::str::from_utf8(line).map_err(|_| JoinLineError::BadUtf8)?;
    let (kind, rest) = if let Some(rest) = line.strip_prefix("JOIN ") {
        (RoomKind::Private, rest)
    } else if let Some(rest) = line.strip_prefix("TOPIC ") {
        (RoomKind::Topic, rest)
    } else {
        return Err(JoinLineError::NotJoin);
    };
    let mut fields = rest.split(' ');
    let (Some(room), Some(token), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(JoinLineError::BadJoin(
            "expected exactly two fields after the verb: <room> <token>",
        ));
    };
    if !valid_room(room) {
        return Err(JoinLineError::BadJoin(
            "room names are 1-128 bytes of A-Z a-z 0-9 . _ - : + / = ~",
        ));
    }
    if !valid_token(token) {
        return Err(JoinLineError::BadJoin(
            "tokens are 1-256 bytes of printable ASCII without spaces",
        ));
    }
    Ok(JoinRequest { kind, room, token })
}

/// What a joined member's line means to the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberLine<'a> {
    /// An empty line: proves the member is alive, forwarded to nobody.
    Keepalive,
    /// A message to forward (after `#` substitution).
    Message(&'a [u8]),
    /// A line the relay refuses with this error code; the connection goes on.
    Refused(ErrorCode),
}

/// Classifies a joined member's line (without its line ending, already within the length
/// limit): keepalive, message, or refused (invalid UTF-8, or the reserved `@` prefix).
pub fn classify_member_line(line: &[u8]) -> MemberLine<'_> {
    if line.is_empty() {
        return MemberLine::Keepalive;
    }
    if line[0] == RESERVED_PREFIX {
        return MemberLine::Refused(ErrorCode::Reserved);
    }
    if std::str::from_utf8(line).is_err() {
        return MemberLine::Refused(ErrorCode::BadUtf8);
    }
    MemberLine::Message(line)
}

/// Appends `line` to `out` with every `#` replaced by `ip` (the sender's address as text,
/// computed once per connection). Nothing else is changed. Returns the bytes appended.
pub fn substitute_into(out: &mut Vec<u8>, line: &[u8], ip: &[u8]) -> usize {
    let start = out.len();
    let mut rest = line;
    while let Some(at) = memchr::memchr(SUBSTITUTED, rest) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(ip);
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.len() - start
}

/// `line` with every `#` replaced by `ip`: the convenient form of [`substitute_into`].
pub fn substitute(line: &str, ip: &str) -> String {
    let mut out = Vec::with_capacity(line.len() + ip.len());
    substitute_into(&mut out, line.as_bytes(), ip.as_bytes());
    // Replacing ASCII `#` by an ASCII address keeps valid UTF-8 valid.
    String::from_utf8(out).unwrap_or_default()
}

/// The text form of an address as members see it: IPv4 dotted (IPv4-mapped IPv6 addresses
/// from a dual-stack listener are shown as IPv4), IPv6 in RFC 5952 form without brackets.
pub fn ip_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// Machine-readable codes of `@error` lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The first line is not a join line. Fatal.
    NotJoin,
    /// The join line is malformed. Fatal.
    BadJoin,
    /// The room exists and the token differs. Fatal.
    WrongToken,
    /// The room has as many members as its cap. Fatal.
    RoomFull,
    /// The room exists with the other kind (a `JOIN` for a topic or the reverse). Fatal.
    WrongKind,
    /// No join line within the join timeout. Fatal.
    JoinTimeout,
    /// A line longer than the limit; dropped (fatal before the join).
    TooLong,
    /// A line that is not UTF-8; dropped (fatal before the join).
    BadUtf8,
    /// A member line starting with `@`; dropped.
    Reserved,
    /// Lines or bytes faster than the rate limit. Fatal.
    Flood,
    /// Too many refused lines on one connection. Fatal.
    TooManyErrors,
    /// No complete line within the idle timeout. Fatal.
    IdleTimeout,
    /// The member's outgoing queue overflowed or made no progress. Fatal.
    SlowReader,
    /// Too many connections from this address. Fatal.
    TooManyConnections,
    /// The relay has as many connections as its limit. Fatal.
    ServerFull,
    /// The relay is stopping. Fatal.
    Shutdown,
}

impl ErrorCode {
    /// Every code, for documentation and round-trip tests.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::NotJoin,
        ErrorCode::BadJoin,
        ErrorCode::WrongToken,
        ErrorCode::RoomFull,
        ErrorCode::WrongKind,
        ErrorCode::JoinTimeout,
        ErrorCode::TooLong,
        ErrorCode::BadUtf8,
        ErrorCode::Reserved,
        ErrorCode::Flood,
        ErrorCode::TooManyErrors,
        ErrorCode::IdleTimeout,
        ErrorCode::SlowReader,
        ErrorCode::TooManyConnections,
        ErrorCode::ServerFull,
        ErrorCode::Shutdown,
    ];

    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotJoin => "not-join",
            ErrorCode::BadJoin => "bad-join",
            ErrorCode::WrongToken => "wrong-token",
            ErrorCode::RoomFull => "room-full",
            ErrorCode::WrongKind => "wrong-kind",
            ErrorCode::JoinTimeout => "join-timeout",
            ErrorCode::TooLong => "too-long",
            ErrorCode::BadUtf8 => "bad-utf8",
            ErrorCode::Reserved => "reserved",
            ErrorCode::Flood => "flood",
            ErrorCode::TooManyErrors => "too-many-errors",
            ErrorCode::IdleTimeout => "idle-timeout",
            ErrorCode::SlowReader => "slow-reader",
            ErrorCode::TooManyConnections => "too-many-connections",
            ErrorCode::ServerFull => "server-full",
            ErrorCode::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorCode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == s)
            .ok_or(())
    }
}

/// Why a member left a room, as told to the others in `@left`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    /// The member closed its connection.
    Quit,
    /// The member sent no line within the idle timeout.
    Idle,
    /// The member could not keep up with the room's lines.
    Slow,
    /// The member sent lines faster than the rate limit.
    Flood,
    /// The member sent too many refused lines.
    Errors,
    /// The connection failed (reset, network error).
    Reset,
}

impl LeaveReason {
    /// Every reason, for documentation and round-trip tests.
    pub const ALL: [LeaveReason; 6] = [
        LeaveReason::Quit,
        LeaveReason::Idle,
        LeaveReason::Slow,
        LeaveReason::Flood,
        LeaveReason::Errors,
        LeaveReason::Reset,
    ];

    /// The reason as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Quit => "quit",
            LeaveReason::Idle => "idle",
            LeaveReason::Slow => "slow",
            LeaveReason::Flood => "flood",
            LeaveReason::Errors => "errors",
            LeaveReason::Reset => "reset",
        }
    }
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LeaveReason {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        LeaveReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or(())
    }
}

/// A line written by the relay itself (always starting with `@`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// `@ok <kind> <room> <id> <ip> <members>/<cap> <idle-ms> <max-line>`: the join worked.
    /// `members` counts the newcomer; `members - 1` `@here` lines follow at once.
    Ok {
        /// The room's kind.
        kind: RoomKind,
        /// The room's name.
        room: String,
        /// The newcomer's member id (unique among the relay's connections).
        id: u64,
        /// The newcomer's address as the relay sees it: what its `#` becomes.
        ip: IpAddr,
        /// Members now in the room, the newcomer included.
        members: usize,
        /// The room's member cap.
        cap: usize,
        /// The idle timeout: send a line (an empty one will do) more often than this.
        idle_ms: u64,
        /// The longest line the relay accepts, in bytes, line ending excluded.
        max_line: usize,
    },
    /// `@here <id> <ip>`: a member already in the room when you joined.
    Here {
        /// Its member id.
        id: u64,
        /// Its address.
        ip: IpAddr,
    },
    /// `@arrived <id> <ip>`: a member joined after you.
    Arrived {
        /// Its member id.
        id: u64,
        /// Its address.
        ip: IpAddr,
    },
    /// `@left <id> <ip> <reason>`: a member left.
    Left {
        /// Its member id.
        id: u64,
        /// Its address.
        ip: IpAddr,
        /// Why it left.
        reason: LeaveReason,
    },
    /// `@error <code> <text>`: a refusal or the reason for closing.
    Error {
        /// The machine-readable code.
        code: ErrorCode,
        /// A human explanation (may be empty).
        text: String,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Ok {
                kind,
                room,
                id,
                ip,
                members,
                cap,
                idle_ms,
                max_line,
            } => write!(
                f,
                "@ok {kind} {room} {id} {} {members}/{cap} {idle_ms} {max_line}",
                ip.to_canonical()
            ),
            Notice::Here { id, ip } => write!(f, "@here {id} {}", ip.to_canonical()),
            Notice::Arrived { id, ip } => write!(f, "@arrived {id} {}", ip.to_canonical()),
            Notice::Left { id, ip, reason } => {
                write!(f, "@left {id} {} {reason}", ip.to_canonical())
            }
            Notice::Error { code, text } if text.is_empty() => write!(f, "@error {code}"),
            Notice::Error { code, text } => write!(f, "@error {code} {text}"),
        }
    }
}

impl Notice {
    /// The notice as a wire line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = self.to_string().into_bytes();
        line.push(b'\n');
        line
    }

    /// Parses a relay line (without its line ending). `None` if it is not a well-formed
    /// notice (a member line, or a notice from a newer relay).
    pub fn parse(line: &str) -> Option<Notice> {
        let rest = line.strip_prefix('@')?;
        let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut fields = args.split(' ');
        let mut next = || fields.next().filter(|f| !f.is_empty());
        let notice = match verb {
            "ok" => {
                let kind = next()?.parse().ok()?;
                let room = next()?.to_owned();
                let id = next()?.parse().ok()?;
                let ip = next()?.parse().ok()?;
                let (members, cap) = next()?.split_once('/')?;
                let notice = Notice::Ok {
                    kind,
                    room,
                    id,
                    ip,
                    members: members.parse().ok()?,
                    cap: cap.parse().ok()?,
                    idle_ms: next()?.parse().ok()?,
                    max_line: next()?.parse().ok()?,
                };
                if next().is_some() {
                    return None;
                }
                notice
            }
            "here" | "arrived" => {
                let id = next()?.parse().ok()?;
                let ip = next()?.parse().ok()?;
                if next().is_some() {
                    return None;
                }
                if verb == "here" {
                    Notice::Here { id, ip }
                } else {
                    Notice::Arrived { id, ip }
                }
            }
            "left" => {
                let id = next()?.parse().ok()?;
                let ip = next()?.parse().ok()?;
                let reason = next()?.parse().ok()?;
                if next().is_some() {
                    return None;
                }
                Notice::Left { id, ip, reason }
            }
            "error" => {
                let (code, text) = args.split_once(' ').unwrap_or((args, ""));
                Notice::Error {
                    code: code.parse().ok()?,
                    text: text.to_owned(),
                }
            }
            _ => return None,
        };
        Some(notice)
    }
}

/// Writes `@error <code> <text>\n`: the relay's refusal lines.
pub fn error_line(code: ErrorCode, text: &str) -> Vec<u8> {
    Notice::Error {
        code,
        text: text.to_owned(),
    }
    .to_line()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The seed's two message forms pass through with only `#` replaced.
    #[test]
    fn substitution_replaces_every_hash_and_nothing_else() {
        assert_eq!(
            substitute("<# Heartbeat>", "192.168.1.54"),
            "<192.168.1.54 Heartbeat>"
        );
        assert_eq!(
            substitute(
                r##"{"from": "#", "Message Number": 1, "Message_Details": "dfsdfs"}"##,
                "192.168.1.54"
            ),
            r#"{"from": "192.168.1.54", "Message Number": 1, "Message_Details": "dfsdfs"}"#
        );
        assert_eq!(substitute("## a#b #", "::1"), "::1::1 a::1b ::1");
        assert_eq!(substitute("no hash here ✓", "1.2.3.4"), "no hash here ✓");
        assert_eq!(substitute("", "1.2.3.4"), "");
        assert_eq!(substitute("#", "1.2.3.4"), "1.2.3.4");
    }

    /// Addresses are shown the way members expect: IPv4-mapped IPv6 as IPv4.
    #[test]
    fn ip_text_is_canonical() {
        assert_eq!(ip_text(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))), "10.0.0.1");
        assert_eq!(ip_text(IpAddr::V6(Ipv6Addr::LOCALHOST)), "::1");
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 168, 1, 54).to_ipv6_mapped());
        assert_eq!(ip_text(mapped), "192.168.1.54");
    }

    /// Join lines: both verbs, and every malformed shape is refused with the right code.
    #[test]
    fn join_lines_parse_and_refuse() {
        assert_eq!(
            parse_join(b"JOIN room-1 s3cret!"),
            Ok(JoinRequest {
                kind: RoomKind::Private,
                room: "room-1",
                token: "s3cret!"
            })
        );
        assert_eq!(
            parse_join(b"TOPIC usd/a/b tok").map(|j| j.kind),
            Ok(RoomKind::Topic)
        );
        assert_eq!(parse_join(b"HELLO"), Err(JoinLineError::NotJoin));
        assert_eq!(parse_join(b"join a b"), Err(JoinLineError::NotJoin));
        assert_eq!(parse_join(b"JOIN"), Err(JoinLineError::NotJoin));
        assert_eq!(parse_join(b"\xff\xfe"), Err(JoinLineError::BadUtf8));
        for bad in [
            &b"JOIN room"[..],
            b"JOIN room tok extra",
            b"JOIN  room tok",
            b"JOIN room  tok",
            b"JOIN room tok ",
            b"JOIN ro#om tok",
            b"JOIN ro@om tok",
            b"JOIN room t\tok",
            b"JOIN room t\xc3\xa9",
        ] {
            assert!(
                matches!(parse_join(bad), Err(JoinLineError::BadJoin(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_room = format!("JOIN {} tok", "r".repeat(MAX_ROOM_BYTES + 1));
        assert!(matches!(
            parse_join(long_room.as_bytes()),
            Err(JoinLineError::BadJoin(_))
        ));
        let max = format!(
            "TOPIC {} {}",
            "r".repeat(MAX_ROOM_BYTES),
            "t".repeat(MAX_TOKEN_BYTES)
        );
        assert_eq!(max.len(), MAX_JOIN_LINE_BYTES);
        assert!(parse_join(max.as_bytes()).is_ok());
    }

    /// Member lines: empty is a keepalive, `@` is reserved, bad UTF-8 refused.
    #[test]
    fn member_lines_are_classified() {
        assert_eq!(classify_member_line(b""), MemberLine::Keepalive);
        assert_eq!(
            classify_member_line(b"<# Heartbeat>"),
            MemberLine::Message(b"<# Heartbeat>")
        );
        assert_eq!(
            classify_member_line(b"@left 1 1.2.3.4 quit"),
            MemberLine::Refused(ErrorCode::Reserved)
        );
        assert_eq!(
            classify_member_line(b"ok \xff"),
            MemberLine::Refused(ErrorCode::BadUtf8)
        );
    }

    /// Every notice prints and parses back to itself, so clients and relay agree.
    #[test]
    fn notices_round_trip() {
        let ip4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let ip6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let mut notices = vec![
            Notice::Ok {
                kind: RoomKind::Topic,
                room: "t".into(),
                id: 7,
                ip: ip6,
                members: 3,
                cap: 64,
                idle_ms: 60_000,
                max_line: 65_536,
            },
            Notice::Here { id: 1, ip: ip4 },
            Notice::Arrived { id: 2, ip: ip6 },
        ];
        for reason in LeaveReason::ALL {
            notices.push(Notice::Left {
                id: 3,
                ip: ip4,
                reason,
            });
        }
        for code in ErrorCode::ALL {
            notices.push(Notice::Error {
                code,
                text: "some words here".into(),
            });
            notices.push(Notice::Error {
                code,
                text: String::new(),
            });
        }
        for notice in notices {
            let text = notice.to_string();
            assert_eq!(Notice::parse(&text), Some(notice), "{text}");
        }
        assert_eq!(
            Notice::parse("@ok private r 1 127.0.0.1 1/2 10"),
            None,
            "missing field"
        );
        assert_eq!(Notice::parse("@here 1 127.0.0.1 x"), None);
        assert_eq!(Notice::parse("@error no-such-code"), None);
        assert_eq!(Notice::parse("<127.0.0.1 Heartbeat>"), None);
    }

    proptest::proptest! {
        /// No input makes the pure protocol functions panic.
        #[test]
        fn pure_functions_never_panic(line in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse_join(&line);
            let _ = classify_member_line(&line);
            let mut out = Vec::new();
            let n = substitute_into(&mut out, &line, b"1.2.3.4");
            proptest::prop_assert_eq!(n, out.len());
            let hashes = line.iter().filter(|b| **b == b'#').count();
            proptest::prop_assert_eq!(out.len(), line.len() + hashes * 6);
            if let Ok(text) = std::str::from_utf8(&line) {
                let _ = Notice::parse(text);
            }
        }
    }
}
