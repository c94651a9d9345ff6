//! The connection file (seed 000 steps 1–2): everything the receiver needs to join the
//! sender's transfer. Whoever holds it can take part, so it is handed over privately.
//!
//! ```text
//! tally-live-connection v1
//! relay = relay.example.org:7777
//! room = 6b1f0c3e9a7d2254
//! token = Zq8-Vx3.pLr_0aa
//! network = <64 hex digits: the network id>
//! session_key = <64 hex digits: the XChaCha20-Poly1305 key>
//! ```
//!
//! Strict: the first line exactly [`CONNECTION_FILE_MAGIC`], then each of the five keys
//! exactly once (any order) as `key = value` (one space each side of `=`), lines ending in
//! `\n` or `\r\n`; empty lines are allowed, nothing else. At most
//! [`MAX_CONNECTION_FILE_BYTES`].

use std::str::FromStr;

use tally_core::{NetworkId, SessionKey};

/// The first line of every version-1 connection file.
pub const CONNECTION_FILE_MAGIC: &str = "tally-live-connection v1";

/// Longest connection file accepted, in bytes: the longest valid file is well under it.
pub const MAX_CONNECTION_FILE_BYTES: usize = 4_096;

/// Longest room name, as the relay allows (`tally_relay::protocol::MAX_ROOM_BYTES`).
const MAX_ROOM_BYTES: usize = 128;
/// Longest join token, as the relay allows (`tally_relay::protocol::MAX_TOKEN_BYTES`).
const MAX_TOKEN_BYTES: usize = 256;
/// Longest host name (RFC 1035).
const MAX_HOST_BYTES: usize = 253;

/// The session key as the file writes it: exactly 64 lower-case hex digits (the core
/// parser also takes upper case; the file format is stricter, so one key has one spelling).
fn parse_session_key(text: &str) -> Option<SessionKey> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    text.parse().ok()
}

/// A parsed, valid connection file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionFile {
    /// The relay's address, `host:port` (see [`valid_relay_address`]).
    pub relay: String,
    /// The private room (see [`valid_room`]).
    pub room: String,
    /// The room's join token (see [`valid_token`]).
    pub token: String,
    /// The network the coins belong to.
    pub network: NetworkId,
    /// The key that seals the coins.
    pub session_key: SessionKey,
}

/// Why a text is not a valid connection file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionFileError {
    /// Longer than [`MAX_CONNECTION_FILE_BYTES`].
    #[error("the connection file is {0} bytes, at most {MAX_CONNECTION_FILE_BYTES} allowed")]
    TooLong(usize),
    /// The first line is not [`CONNECTION_FILE_MAGIC`].
    #[error("not a connection file: the first line must be {CONNECTION_FILE_MAGIC:?}")]
    NotConnectionFile,
    /// A line is not `key = value`.
    #[error("line {0} is not `key = value`")]
    BadLine(usize),
    /// A key this version does not define.
    #[error("line {line}: unknown key {key:?}")]
    UnknownKey { line: usize, key: String },
    /// A key given twice.
    #[error("line {line}: {key:?} given twice")]
    DuplicateKey { line: usize, key: &'static str },
    /// A key missing.
    #[error("the key {0:?} is missing")]
    MissingKey(&'static str),
    /// The relay is not `host:port`.
    #[error("relay {0:?} is not host:port (a DNS name, IPv4 or [IPv6], port 1-65535)")]
    BadRelay(String),
    /// The room name breaks the relay's rule.
    #[error("room names are 1-128 bytes of A-Z a-z 0-9 . _ - : + / = ~")]
    BadRoom,
    /// The token breaks the relay's rule.
    #[error("tokens are 1-256 bytes of printable ASCII without spaces")]
    BadToken,
    /// The network id is not 64 hex digits.
    #[error("network {0:?} is not a network id (64 hex digits)")]
    BadNetwork(String),
    /// The session key is not 64 lower-case hex digits.
    #[error("the session key is not 64 lower-case hex digits")]
    BadSessionKey,
}

/// Whether `room` is a room name the relay accepts: 1 to 128 bytes of
/// `A-Z a-z 0-9 . _ - : + / = ~` (the relay's rule, replicated so that clients need not
/// depend on the relay crate).
pub fn valid_room(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= MAX_ROOM_BYTES
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:+/=~".contains(&b))
}

/// Whether `token` is a join token the relay accepts: 1 to 256 bytes of printable ASCII
/// other than space (the relay's rule, replicated).
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_BYTES
        && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `relay` is `host:port`: host a DNS name (labels of 1–63 letters, digits and
/// hyphens, not starting or ending with a hyphen, 253 bytes at most), an IPv4 address or
/// an IPv6 address in brackets; port a decimal 1–65535 without leading zeros.
pub fn valid_relay_address(relay: &str) -> bool {
    let Some((host, port)) = relay.rsplit_once(':') else {
        return false;
    };
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && !port.starts_with('0')
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok();
    if !port_ok {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    // A name of digits and dots only would be a malformed IPv4 address.
    let all_numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    !host.is_empty() && host.len() <= MAX_HOST_BYTES && labels_ok && !all_numeric
}

const KEYS: [&str; 5] = ["relay", "room", "token", "network", "session_key"];

impl ConnectionFile {
    /// Checks every field against the rules [`ConnectionFile::parse`] applies, so a file
    /// built in code is refused before it is written.
    pub fn validate(&self) -> Result<(), ConnectionFileError> {
        if !valid_relay_address(&self.relay) {
            return Err(ConnectionFileError::BadRelay(self.relay.clone()));
        }
        if !valid_room(&self.room) {
            return Err(ConnectionFileError::BadRoom);
        }
        if !valid_token(&self.token) {
            return Err(ConnectionFileError::BadToken);
        }
        Ok(())
    }

    /// Parses and validates a connection file.
    pub fn parse(text: &str) -> Result<ConnectionFile, ConnectionFileError> {
        if text.len() > MAX_CONNECTION_FILE_BYTES {
            return Err(ConnectionFileError::TooLong(text.len()));
        }
        let mut lines = text
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line));
        if lines.next() != Some(CONNECTION_FILE_MAGIC) {
            return Err(ConnectionFileError::NotConnectionFile);
        }
        let mut values: [Option<&str>; 5] = [None; 5];
        for (index, line) in lines.enumerate() {
            let number = index + 2;
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once(" = ")
                .ok_or(ConnectionFileError::BadLine(number))?;
            let slot = KEYS.iter().position(|k| *k == key).ok_or_else(|| {
                ConnectionFileError::UnknownKey {
                    line: number,
                    key: key.to_owned(),
                }
            })?;
            if values[slot].replace(value).is_some() {
                return Err(ConnectionFileError::DuplicateKey {
                    line: number,
                    key: KEYS[slot],
                });
            }
        }
        let get = |slot: usize| values[slot].ok_or(ConnectionFileError::MissingKey(KEYS[slot]));
        let network = get(3)?;
        let file = ConnectionFile {
            relay: get(0)?.to_owned(),
            room: get(1)?.to_owned(),
            token: get(2)?.to_owned(),
            network: network
                .parse()
                .ok()
                .filter(|_| network.bytes().all(|b| !b.is_ascii_uppercase()))
                .ok_or_else(|| ConnectionFileError::BadNetwork(network.to_owned()))?,
            session_key: parse_session_key(get(4)?).ok_or(ConnectionFileError::BadSessionKey)?,
        };
        file.validate()?;
        Ok(file)
    }

    /// The file's text, keys in the documented order, `\n` line endings, ending in `\n`.
    pub fn to_text(&self) -> String {
        format!(
            "{CONNECTION_FILE_MAGIC}\nrelay = {}\nroom = {}\ntoken = {}\nnetwork = {}\nsession_key = {}\n",
            self.relay, self.room, self.token, self.network, self.session_key
        )
    }
}

impl FromStr for ConnectionFile {
    type Err = ConnectionFileError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ConnectionFile::parse(text)
    }
}

#[cfg(test)]
#[path = "connection_file_tests.rs"]
mod tests;
