//! The tracker's packets (PROTOCOL.md §9) as data: requests and answers in the Minicash
//! shape `{"Type": ..., "Data": ...}`, the reasons a tracker gives for a refusal, and the
//! byte layout each key signs. The tracker server and its client (`tally-tracker`) both
//! speak in these types.
//!
//! Framing is Tally's one framing (PROTOCOL.md §5, [`crate::connection`] with the `framing`
//! feature): a 4-byte big-endian length, then that many bytes of UTF-8 JSON. A length prefix
//! (rather than newlines) lets the reader refuse an oversized request from its first four
//! bytes, before buffering any of it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use tally_core::{AccountId, NetworkId, Signature};

/// Domain-separation tag at the front of every signed registration. `V2`: the integers
/// became little-endian (tally-core's convention); a `V1` signature never verifies as `V2`.
pub const REG_TAG: &[u8; 20] = b"TALLY-TRACKER-REG-V2";

/// The longest signed registration: tag, network, key, proof, timestamp, IPv6 address.
pub const MAX_SIGNED_LEN: usize = 20 + 32 + 32 + 8 + 8 + 1 + 16 + 2;

/// The bytes one key signs to register itself at `address` in `network`, in tally-core's
/// convention (domain tag, then the network id, integers little-endian):
///
/// ```text
/// "TALLY-TRACKER-REG-V2"   20 bytes, ASCII
/// network id               32 bytes
/// key (Fingerprint)        32 bytes
/// ProofOfWork              u64, little-endian
/// Timestamp (ms since 1970) u64, little-endian
/// address family           1 byte: 4 or 6
/// address IP               4 or 16 bytes, network order
/// address port             u16, little-endian
/// ```
///
/// The address is the one in the request as sent (an unspecified IP stays unspecified).
/// Written by hand: tally-core has no shared codec yet; when it has, this layout moves onto
/// it unchanged (the test vector pins the bytes).
#[derive(Clone, Copy)]
pub struct SignedBytes {
    buf: [u8; MAX_SIGNED_LEN],
    len: usize,
}

impl SignedBytes {
    /// Lays out the registration of `account`.
    pub fn new(
        network: &NetworkId,
        account: &AccountId,
        proof_of_work: u64,
        timestamp: u64,
        address: &SocketAddr,
    ) -> Self {
        let mut buf = [0u8; MAX_SIGNED_LEN];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            buf[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        put(REG_TAG);
        put(network.as_bytes());
        put(account.as_bytes());
        put(&proof_of_work.to_le_bytes());
        put(&timestamp.to_le_bytes());
        match address.ip() {
            IpAddr::V4(ip) => {
                put(&[4]);
                put(&ip.octets());
            }
            IpAddr::V6(ip) => {
                put(&[6]);
                put(&ip.octets());
            }
        }
        put(&address.port().to_le_bytes());
        SignedBytes { buf, len }
    }

    /// The bytes to sign or verify.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// One key of a registration: the seed's `{Fingerprint, ProofOfWork}` plus its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The key: 64 hex digits of an Ed25519 public key.
    #[serde(rename = "Fingerprint")]
    pub fingerprint: AccountId,
    /// The nonce n with SHA-256("<Fingerprint>_<n>") meeting the network's `intro_pow_bits`.
    #[serde(rename = "ProofOfWork")]
    pub proof_of_work: u64,
    /// The key's signature over [`SignedBytes`].
    #[serde(rename = "Signature")]
    pub signature: Signature,
}

/// The body of `REG`, `REGUP` and `INITIALIZE`: who is where, on which network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The network id (64 hex digits).
    #[serde(rename = "Network")]
    pub network: NetworkId,
    /// Where the node accepts connections, `ip:port`. An unspecified IP (`0.0.0.0`, `::`)
    /// means "the address you see me connect from".
    #[serde(rename = "Address")]
    pub address: String,
    /// Milliseconds since 1970 by the node's clock; must be within the tracker's clock
    /// skew and newer than the key's previous registration (no replay).
    #[serde(rename = "Timestamp")]
    pub timestamp: u64,
    /// The keys to register.
    #[serde(rename = "Keys")]
    pub keys: Vec<KeyEntry>,
    /// `INITIALIZE` only: how many peers the node wants (the tracker's cap applies).
    #[serde(rename = "Max", default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// The body of `ACKNOWLEDGE_LIST`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledge {
    /// The network of the `INITIALIZE` being acknowledged.
    #[serde(rename = "Network")]
    pub network: NetworkId,
    /// How many peers the client received (informational).
    #[serde(rename = "Received", default)]
    pub received: u32,
}

/// The body of `LIST`: peers of a network, without registering (wallets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// The network id.
    #[serde(rename = "Network")]
    pub network: NetworkId,
    /// How many peers the client wants (the tracker's cap applies).
    #[serde(rename = "Max", default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// Every request the tracker understands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Type", content = "Data", deny_unknown_fields)]
pub enum Request {
    /// Register keys (Minicash).
    #[serde(rename = "REG")]
    Reg(Registration),
    /// Register keys and receive the network's map of live keys (Minicash).
    #[serde(rename = "REGUP")]
    RegUp(Registration),
    /// Join, step 1 (seed 004): the tracker answers `SEND_LIST` without storing anything.
    #[serde(rename = "INITIALIZE")]
    Initialize(Registration),
    /// Join, step 3: the client got the list; the tracker stores the registration and
    /// answers `ACCEPT_ACKNOWLEDGE`.
    #[serde(rename = "ACKNOWLEDGE_LIST")]
    AcknowledgeList(Acknowledge),
    /// Live peers of a network, without registering; answered `SEND_LIST`.
    #[serde(rename = "LIST")]
    List(ListRequest),
}

/// Why a frame is not a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("unknown type: {0}")]
    UnknownType(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Why a tracker refuses a request, or one key of it. The `Display` text is the `Reason`
/// sent, so it is part of the protocol: a client retries on [`Refusal::Busy`]'s text and
/// treats every other `Fail` as final.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown network")]
    UnknownNetwork,
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("request larger than {0} bytes")]
    TooLarge(usize),
    #[error("no keys")]
    NoKeys,
    #[error("more than {0} keys in one request")]
    TooManyKeys(usize),
    #[error("key {0} appears twice")]
    DuplicateKey(AccountId),
    #[error("bad address {0:?}: expected ip:port with a port other than 0")]
    BadAddress(String),
    #[error("timestamp is more than {0} ms away from the tracker's clock")]
    ClockSkew(u64),
    #[error("invalid proof of work for network difficulty {0} bits")]
    BadProof(u32),
    #[error("bad signature")]
    BadSignature,
    #[error("timestamp not newer than the key's last registration")]
    Stale,
    #[error("too many entries from your address")]
    TooManyEntriesFromAddress,
    #[error("too many keys are listed at that address")]
    AddressCrowded,
    #[error("address {0} is not the address you connect from")]
    NotYourAddress(String),
    #[error("tracker full")]
    Full,
    #[error("too many requests from your address")]
    RateLimited,
    #[error("too many connections from your address")]
    TooManyConnectionsFromAddress,
    #[error("too many connections")]
    TooManyConnections,
    #[error("tracker busy, try again")]
    Busy,
    #[error("storage error")]
    Storage,
    #[error("nothing to acknowledge: send INITIALIZE first")]
    NothingToAcknowledge,
    #[error("acknowledgement names another network than the INITIALIZE")]
    WrongNetwork,
    #[error("tracker shutting down")]
    ShuttingDown,
}

impl Request {
    /// Parses one frame body.
    pub fn parse(bytes: &[u8]) -> Result<Request, ParseError> {
        serde_json::from_slice(bytes).map_err(|e| {
            let text = e.to_string();
            match e.classify() {
                serde_json::error::Category::Data => {
                    if text.starts_with("unknown variant") {
                        ParseError::UnknownType(text)
                    } else {
                        ParseError::Invalid(text)
                    }
                }
                // Some shape errors inside a tagged enum surface as syntax errors; only
                // text that is not JSON at all is called malformed.
                _ if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
                    ParseError::Invalid(text)
                }
                _ => ParseError::Json(text),
            }
        })
    }

    /// The request as one frame body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The overall result, as the Minicash peer server words it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Every key was registered (or the request was served).
    Success,
    /// Some keys were registered, some refused (see `Keys`).
    #[serde(rename = "Partial-Success")]
    PartialSuccess,
    /// Nothing was stored (see `Reason`).
    Fail,
}

/// What happened to one key of a registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyResult {
    #[serde(rename = "Fingerprint")]
    pub fingerprint: AccountId,
    /// `Success` or `Fail`.
    #[serde(rename = "Response")]
    pub response: Outcome,
    /// Why it failed; empty on success.
    #[serde(rename = "Reason", default)]
    pub reason: String,
}

/// One live key in a `REGUP` map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapEntry {
    #[serde(rename = "ProofOfWork")]
    pub proof_of_work: u64,
    #[serde(rename = "Address")]
    pub address: SocketAddr,
    /// The tracker's clock at the key's last registration, ms since 1970.
    #[serde(rename = "LastSeen")]
    pub last_seen: u64,
}

/// One peer in a `SEND_LIST`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    #[serde(rename = "Fingerprint")]
    pub fingerprint: AccountId,
    #[serde(rename = "ProofOfWork")]
    pub proof_of_work: u64,
    #[serde(rename = "Address")]
    pub address: SocketAddr,
    #[serde(rename = "LastSeen")]
    pub last_seen: u64,
}

/// The body of every answer. Which of the optional fields appear depends on the type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    #[serde(rename = "Response")]
    pub response: Outcome,
    /// Why it failed (or why some keys failed); empty on success.
    #[serde(rename = "Reason", default)]
    pub reason: String,
    /// Per key (`RESP_REG`, `RESP_REGUP`, `ACCEPT_ACKNOWLEDGE`).
    #[serde(rename = "Keys", default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyResult>,
    /// Live keys of the network by fingerprint (`RESP_REGUP`).
    #[serde(rename = "Maps", default, skip_serializing_if = "Option::is_none")]
    pub maps: Option<BTreeMap<AccountId, MapEntry>>,
    /// Peers (`SEND_LIST`).
    #[serde(rename = "Peers", default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<PeerEntry>>,
}

impl Answer {
    /// A `Fail` with `reason`.
    pub fn fail(reason: impl Into<String>) -> Answer {
        Answer {
            response: Outcome::Fail,
            reason: reason.into(),
            keys: Vec::new(),
            maps: None,
            peers: None,
        }
    }

    /// A plain `Success`.
    pub fn success() -> Answer {
        Answer {
            response: Outcome::Success,
            reason: String::new(),
            keys: Vec::new(),
            maps: None,
            peers: None,
        }
    }

    /// The answer for per-key results: `Success` when all passed, `Fail` when none did
    /// (the first refusal is the reason), `Partial-Success` otherwise.
    pub fn from_keys(keys: Vec<KeyResult>) -> Answer {
        let failed = keys
            .iter()
            .filter(|k| k.response != Outcome::Success)
            .count();
        let (response, reason) = if failed == 0 {
            (Outcome::Success, String::new())
        } else {
            let first = keys
                .iter()
                .find(|k| k.response != Outcome::Success)
                .map(|k| k.reason.clone())
                .unwrap_or_default();
            if failed == keys.len() {
                (Outcome::Fail, first)
            } else {
                (Outcome::PartialSuccess, first)
            }
        };
        Answer {
            response,
            reason,
            keys,
            maps: None,
            peers: None,
        }
    }
}

/// Answer types.
pub mod answer_type {
    /// Answer to `REG`.
    pub const RESP_REG: &str = "RESP_REG";
    /// Answer to `REGUP`.
    pub const RESP_REGUP: &str = "RESP_REGUP";
    /// Answer to `INITIALIZE` and `LIST`.
    pub const SEND_LIST: &str = "SEND_LIST";
    /// Answer to `ACKNOWLEDGE_LIST`.
    pub const ACCEPT_ACKNOWLEDGE: &str = "ACCEPT_ACKNOWLEDGE";
    /// Answer to anything refused before its type could be served (bad frame, bad JSON,
    /// unknown type or network, limits).
    pub const FAIL: &str = "FAIL";
}

/// An answer packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerPacket {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Data")]
    pub data: Answer,
}

impl AnswerPacket {
    /// Serialises `data` under `kind`.
    pub fn encode(kind: &str, data: &Answer) -> Vec<u8> {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(rename = "Type")]
            kind: &'a str,
            #[serde(rename = "Data")]
            data: &'a Answer,
        }
        serde_json::to_vec(&Out { kind, data }).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tally_core::SecretKey;

    fn sample() -> Registration {
        let key = SecretKey::from_bytes([1; 32]);
        let network = NetworkId(tally_core::sha256(&[b"net"]));
        let address: SocketAddr = "203.0.113.5:2222".parse().unwrap();
        let msg = SignedBytes::new(&network, &key.account(), 7, 1_700_000_000_000, &address);
        Registration {
            network,
            address: address.to_string(),
            timestamp: 1_700_000_000_000,
            keys: vec![KeyEntry {
                fingerprint: key.account(),
                proof_of_work: 7,
                signature: key.sign(msg.as_bytes()),
            }],
            max: None,
        }
    }

    #[test]
    fn requests_round_trip_in_the_minicash_shape() {
        let reg = sample();
        for request in [
            Request::Reg(reg.clone()),
            Request::RegUp(reg.clone()),
            Request::Initialize(reg.clone()),
            Request::AcknowledgeList(Acknowledge {
                network: reg.network,
                received: 3,
            }),
            Request::List(ListRequest {
                network: reg.network,
                max: Some(5),
            }),
        ] {
            let json = request.to_json();
            let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
            assert!(value["Type"].is_string());
            assert!(value["Data"].is_object());
            assert_eq!(Request::parse(&json).unwrap(), request);
        }
        let text = String::from_utf8(Request::Reg(reg).to_json()).unwrap();
        assert!(text.starts_with(r#"{"Type":"REG","Data":{"Network":""#));
        assert!(text.contains(r#""Keys":[{"Fingerprint":""#));
    }

    #[test]
    fn parse_errors_are_classified() {
        assert!(matches!(
            Request::parse(b"{not json"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(Request::parse(b""), Err(ParseError::Json(_))));
        assert!(matches!(
            Request::parse(br#"{"Type":"HELLO","Data":{}}"#),
            Err(ParseError::UnknownType(_))
        ));
        assert!(matches!(
            Request::parse(br#"{"Type":"LIST","Data":{}}"#),
            Err(ParseError::Invalid(e)) if e.contains("Network")
        ));
        assert!(matches!(
            Request::parse(br#"{"Type":"LIST","Data":{"Network":5}}"#),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            Request::parse(br#"{"Type":"LIST","Data":{"Network":"00"}}"#),
            Err(ParseError::Invalid(_))
        ));
        let mut reg = serde_json::to_value(Request::Reg(sample())).unwrap();
        reg["Data"]["Keys"][0]["ProofOfWork"] = serde_json::json!("12");
        assert!(matches!(
            Request::parse(&serde_json::to_vec(&reg).unwrap()),
            Err(ParseError::Invalid(_))
        ));
        let mut reg = serde_json::to_value(Request::Reg(sample())).unwrap();
        reg["Data"]["Adress"] = serde_json::json!("1.2.3.4:5");
        assert!(matches!(
            Request::parse(&serde_json::to_vec(&reg).unwrap()),
            Err(ParseError::Invalid(e)) if e.contains("Adress")
        ));
        let mut reg = serde_json::to_value(Request::Reg(sample())).unwrap();
        reg["Data"]["Keys"][0]
            .as_object_mut()
            .unwrap()
            .remove("Signature");
        assert!(matches!(
            Request::parse(&serde_json::to_vec(&reg).unwrap()),
            Err(ParseError::Invalid(e)) if e.contains("Signature")
        ));
        assert!(matches!(
            Request::parse(br#"{"Type":"REG"}"#),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            Request::parse(br#"[1,2,3]"#),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            Request::parse(&[0xff, 0xfe, 0x00]),
            Err(ParseError::Json(_))
        ));
    }

    /// The test vector of PROTOCOL.md §9: if this changes, every deployed node breaks.
    #[test]
    fn signed_bytes_test_vector() {
        let key = SecretKey::from_bytes([1; 32]);
        let network = NetworkId(tally_core::sha256(&[b"net"]));
        assert_eq!(
            network.to_string(),
            "a08a0fcbdeafd3c1b3a4b495b9a9c9d96850f08946b52bc0622347d3b6e73b78"
        );
        assert_eq!(
            key.account().to_hex(),
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
        );
        let address: SocketAddr = "203.0.113.5:2222".parse().unwrap();
        let msg = SignedBytes::new(&network, &key.account(), 7, 1_700_000_000_000, &address);
        let expected = concat!(
            "54414c4c592d545241434b45522d5245472d5632", // "TALLY-TRACKER-REG-V2"
            "a08a0fcbdeafd3c1b3a4b495b9a9c9d96850f08946b52bc0622347d3b6e73b78", // network
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c", // key
            "0700000000000000",                         // ProofOfWork 7, little-endian
            "0068e5cf8b010000",                         // Timestamp 1700000000000, little-endian
            "04cb007105",                               // IPv4 203.0.113.5
            "ae08",                                     // port 2222, little-endian
        );
        assert_eq!(hex::encode(msg.as_bytes()), expected);
        assert_eq!(hex::encode(REG_TAG), &expected[..40]);
        assert_eq!(
            key.sign(msg.as_bytes()).to_hex(),
            "7c73afaa63b57e376ed7187156fde76bfbfc46da1af8d7a6ab8b1d19fd4f187c\
             944527c4695b559b840c91898600e5fa0f2be5ea039bcc01e411e588a6b7a101"
        );
        let v6: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
        let msg6 = SignedBytes::new(&network, &key.account(), 0, 0, &v6);
        assert_eq!(msg6.as_bytes().len(), MAX_SIGNED_LEN);
        assert_eq!(
            hex::encode(&msg6.as_bytes()[MAX_SIGNED_LEN - 19..]),
            "0620010db80000000000000000000000010900"
        );
    }
}
