//! One LiveConnect message and its line forms.
//!
//! The JSON form is what Tally sends, on one line:
//! `{"from": "#", "Message Number": 4, "Message_Details": "281"}`; the relay replaces the `#`
//! with the sender's IP address. The seed's tag form (`<# Heartbeat>`, `<# 281>` for the
//! amount) is accepted on input so a seed-era client can be read, but never written: it
//! cannot carry the coins or the receipt.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tally_core::{Amount, AmountError};

/// Longest line [`parse_line`] accepts, in bytes, line ending excluded: 1 KiB under the
/// relay's default line limit (65,536, `RelayConfig::max_line_bytes`), so a line Tally
/// accepts always passed a default relay.
pub const MAX_LIVE_LINE: usize = 65_536 - 1_024;

/// Longest line [`LiveMessage::to_line`] may produce for sending. The 64 bytes under
/// [`MAX_LIVE_LINE`] leave room for the relay replacing the one `#` of `"from"` by the
/// sender's address (an IPv6 address is at most 39 characters), so every line a sender
/// checks against this limit is still accepted by the receiver after substitution.
pub const MAX_SENT_LINE: usize = MAX_LIVE_LINE - 64;

/// Longest `from` value accepted: an IP address as the relay writes it, with room to spare.
pub const MAX_FROM_BYTES: usize = 64;

/// The numbered steps of the transfer (DESIGN §7 table), with the seed's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MessageNumber {
    /// 1, both sides, repeated while connected: proves the peer is alive.
    Heartbeat,
    /// 2, sender: asks the receiver to empty its hidden Receiver wallet.
    EmptyImportExport,
    /// 3, receiver: its hidden Receiver wallet is empty.
    ImportExportEmpty,
    /// 4, sender announces the amount; the receiver echoes it to confirm.
    MoneyToBeSent,
    /// 5, sender progress.
    MakingChange,
    /// 6, sender progress.
    JoiningCoins,
    /// 7, sender progress.
    FindingChange,
    /// 8, sender progress.
    MovingCoinsToSender,
    /// 9, sender progress.
    DetectingCoinAuthenticity,
    /// 10, sender progress.
    FixingCoins,
    /// 11, sender progress.
    PuttingCoinsInExport,
    /// 12, sender progress: the coins are being sealed.
    EncryptingCoins,
    /// 13, receiver: ready for the coins.
    ReadyToReceive,
    /// 14, receiver progress: the sealed coins arrived.
    Received,
    /// 15, receiver progress.
    DecryptingCoins,
    /// 16, receiver progress: powning.
    PowningCoins,
    /// 17, receiver: the pown certificates.
    Receipt,
    /// 18, sender: checking the receipt.
    ConfirmingChangeOfOwnership,
    /// 19, sender: the receipt is good, the transfer is done.
    CoinsConfirmed,
    /// 24, sender: the sealed coins and the pown deadline.
    EncryptedCoins,
}

impl MessageNumber {
    /// Every message, in the DESIGN table's order (24 between 13 and 14).
    pub const ALL: [MessageNumber; 20] = [
        MessageNumber::Heartbeat,
        MessageNumber::EmptyImportExport,
        MessageNumber::ImportExportEmpty,
        MessageNumber::MoneyToBeSent,
        MessageNumber::MakingChange,
        MessageNumber::JoiningCoins,
        MessageNumber::FindingChange,
        MessageNumber::MovingCoinsToSender,
        MessageNumber::DetectingCoinAuthenticity,
        MessageNumber::FixingCoins,
        MessageNumber::PuttingCoinsInExport,
        MessageNumber::EncryptingCoins,
        MessageNumber::ReadyToReceive,
        MessageNumber::EncryptedCoins,
        MessageNumber::Received,
        MessageNumber::DecryptingCoins,
        MessageNumber::PowningCoins,
        MessageNumber::Receipt,
        MessageNumber::ConfirmingChangeOfOwnership,
        MessageNumber::CoinsConfirmed,
    ];

    /// The number on the wire.
    pub fn number(self) -> u8 {
        match self {
            MessageNumber::Heartbeat => 1,
            MessageNumber::EmptyImportExport => 2,
            MessageNumber::ImportExportEmpty => 3,
            MessageNumber::MoneyToBeSent => 4,
            MessageNumber::MakingChange => 5,
            MessageNumber::JoiningCoins => 6,
            MessageNumber::FindingChange => 7,
            MessageNumber::MovingCoinsToSender => 8,
            MessageNumber::DetectingCoinAuthenticity => 9,
            MessageNumber::FixingCoins => 10,
            MessageNumber::PuttingCoinsInExport => 11,
            MessageNumber::EncryptingCoins => 12,
            MessageNumber::ReadyToReceive => 13,
            MessageNumber::Received => 14,
            MessageNumber::DecryptingCoins => 15,
            MessageNumber::PowningCoins => 16,
            MessageNumber::Receipt => 17,
            MessageNumber::ConfirmingChangeOfOwnership => 18,
            MessageNumber::CoinsConfirmed => 19,
            MessageNumber::EncryptedCoins => 24,
        }
    }

    /// The message with wire number `number`, if there is one.
    pub fn from_number(number: u64) -> Option<MessageNumber> {
        MessageNumber::ALL
            .into_iter()
            .find(|m| u64::from(m.number()) == number)
    }

    /// The seed's name (DESIGN §7 table), as the tag form writes it.
    pub fn name(self) -> &'static str {
        match self {
            MessageNumber::Heartbeat => "Heartbeat",
            MessageNumber::EmptyImportExport => "Empty_Import_Export",
            MessageNumber::ImportExportEmpty => "Import_Export_Empty",
            MessageNumber::MoneyToBeSent => "Money to be Sent",
            MessageNumber::MakingChange => "Making_Change",
            MessageNumber::JoiningCoins => "Joining_Coins",
            MessageNumber::FindingChange => "Finding_Change",
            MessageNumber::MovingCoinsToSender => "Moving_Coins_To_Sender",
            MessageNumber::DetectingCoinAuthenticity => "Detecting_Coin_authenticity",
            MessageNumber::FixingCoins => "Fixing_Coins",
            MessageNumber::PuttingCoinsInExport => "Putting_Coins_in_Export",
            MessageNumber::EncryptingCoins => "Encrypting Coins",
            MessageNumber::ReadyToReceive => "Ready_To_Receive",
            MessageNumber::Received => "Received",
            MessageNumber::DecryptingCoins => "Decrypting_Coins",
            MessageNumber::PowningCoins => "Powning_Coins",
            MessageNumber::Receipt => "Receipt",
            MessageNumber::ConfirmingChangeOfOwnership => "Confirming Change of Ownership",
            MessageNumber::CoinsConfirmed => "Coins confirmed",
            MessageNumber::EncryptedCoins => "Encrypted Coins",
        }
    }

    /// The message whose seed name is exactly `name`.
    pub fn from_name(name: &str) -> Option<MessageNumber> {
        MessageNumber::ALL.into_iter().find(|m| m.name() == name)
    }

    /// What this message's details must be, for error messages and documentation.
    pub fn details_form(self) -> &'static str {
        match self {
            MessageNumber::MoneyToBeSent => "the amount as an exact decimal string of cash",
            MessageNumber::EncryptedCoins => {
                "an object {\"Coins\": <base64>, \"PownDeadline\": <ms since 1970>}"
            }
            MessageNumber::Receipt => "a base64 string (the pown certificates)",
            _ => "no details (null or absent)",
        }
    }
}

impl fmt::Display for MessageNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.number(), self.name())
    }
}

/// A message's details, one shape per message kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Details {
    /// Every message but 4, 17 and 24: `null` or absent on the wire.
    None,
    /// Message 4: the amount, written as an exact decimal string of cash (`"281"`, `"0.5"`).
    Amount(Amount),
    /// Message 24: the coins sealed with the session key, and the pown deadline.
    SealedCoins {
        /// Standard base64 (RFC 4648 §4, padded) of the sealed coins.
        coins_b64: String,
        /// Milliseconds since 1970 (UTC): the receiver powns before it, and the sender
        /// takes the coins back only after it plus the network's clock skew.
        pown_deadline_ms: u64,
    },
    /// Message 17: standard base64 of the pown certificates.
    Receipt(String),
}

/// One message of the transfer, as sent (`from: None`, written `"#"` for the relay to fill
/// in) or as received (`from: Some(ip)`). The serde derive is the journal form used by
/// `tally-live`'s saved states; the wire form is [`LiveMessage::to_line`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveMessage {
    /// The sender's address as the relay wrote it; `None` for `"#"` (not yet substituted).
    /// Informational only: nothing in a transfer trusts it.
    pub from: Option<String>,
    /// Which step.
    pub number: MessageNumber,
    /// The step's details, of the shape the step requires.
    pub details: Details,
}

/// Why a line is not a LiveConnect message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveLineError {
    /// Longer than [`MAX_LIVE_LINE`].
    #[error("the line is {len} bytes, longer than the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    /// Neither JSON nor the tag form.
    #[error("the line is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not one object with the message's fields (an array, a duplicate or
    /// unknown field, …).
    #[error("the line is JSON but not a LiveConnect message: {0}")]
    Malformed(String),
    /// A required field is absent.
    #[error("the field {0:?} is missing")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("the field {field:?} must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// `from` is empty or longer than [`MAX_FROM_BYTES`].
    #[error("the field \"from\" must be 1 to {MAX_FROM_BYTES} bytes")]
    BadFrom,
    /// A message number the protocol does not define.
    #[error("unknown message number {0}")]
    UnknownNumber(u64),
    /// A tag-form name the protocol does not define.
    #[error("unknown message name {0:?}")]
    UnknownName(String),
    /// Starts with `<` but is not `<from name>`.
    #[error("malformed tag: expected <from name>")]
    BadTag,
    /// The details do not have the shape this message requires.
    #[error("message {number} takes {}", number.details_form())]
    WrongDetails { number: MessageNumber },
    /// Message 4's amount is not an exact decimal amount.
    #[error("message 4's amount: {0}")]
    BadAmount(AmountError),
    /// A base64 field is not padded standard base64.
    #[error("the field {0:?} is not padded standard base64")]
    BadBase64(&'static str),
}

/// Whether `text` is non-empty, padded, standard base64 (RFC 4648 §4) in shape: alphabet
/// `A-Z a-z 0-9 + /`, a length that is a multiple of 4, at most two `=` and only at the end.
/// The decoder (the wallet's) still checks the unused bits.
pub fn valid_base64(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return false;
    }
    let body = text.trim_end_matches('=');
    bytes.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Parses one received line (its line ending already removed): the JSON form, or the tag
/// form if it starts with `<`. Strict: one object with exactly the fields `from`,
/// `Message Number` and optionally `Message_Details`, no duplicates, details of the shape
/// the message number requires.
pub fn parse_line(line: &str) -> Result<LiveMessage, LiveLineError> {
    if line.len() > MAX_LIVE_LINE {
        return Err(LiveLineError::TooLong {
            len: line.len(),
            max: MAX_LIVE_LINE,
        });
    }
    if line.starts_with('<') {
        return parse_tag(line);
    }
    parse_json(line)
}

/// The JSON form's fields, each optional so that a missing one gets its own error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFields {
    from: Option<Value>,
    #[serde(rename = "Message Number")]
    number: Option<Value>,
    #[serde(rename = "Message_Details", default)]
    details: Option<Value>,
}

fn parse_json(line: &str) -> Result<LiveMessage, LiveLineError> {
    // serde reads a struct from an array too; a message is an object only.
    if !line.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(line) {
            Ok(_) => LiveLineError::Malformed("not a JSON object".into()),
            Err(e) => LiveLineError::NotJson(e.to_string()),
        });
    }
    let fields: WireFields = serde_json::from_str(line).map_err(|e| {
        if e.is_data() {
            LiveLineError::Malformed(e.to_string())
        } else {
            LiveLineError::NotJson(e.to_string())
        }
    })?;
    let from = match fields.from.ok_or(LiveLineError::MissingField("from"))? {
        Value::String(text) => parse_from(text)?,
        _ => {
            return Err(LiveLineError::WrongType {
                field: "from",
                expected: "a string",
            });
        }
    };
    let number = fields
        .number
        .ok_or(LiveLineError::MissingField("Message Number"))?;
    let number = number.as_u64().ok_or(LiveLineError::WrongType {
        field: "Message Number",
        expected: "a non-negative integer",
    })?;
    let number = MessageNumber::from_number(number).ok_or(LiveLineError::UnknownNumber(number))?;
    let details = parse_details(number, fields.details)?;
    Ok(LiveMessage {
        from,
        number,
        details,
    })
}

fn parse_from(text: String) -> Result<Option<String>, LiveLineError> {
    if text.is_empty() || text.len() > MAX_FROM_BYTES {
        return Err(LiveLineError::BadFrom);
    }
    Ok((text != "#").then_some(text))
}

fn parse_details(number: MessageNumber, value: Option<Value>) -> Result<Details, LiveLineError> {
    let wrong = LiveLineError::WrongDetails { number };
    let value = value.unwrap_or(Value::Null);
    match number {
        MessageNumber::MoneyToBeSent => match value {
            Value::String(text) => text
                .parse::<Amount>()
                .map(Details::Amount)
                .map_err(LiveLineError::BadAmount),
            // The seed's table says "An Integer": a whole number of cash is accepted too.
            Value::Number(n) => n
                .as_u64()
                .and_then(Amount::from_cash)
                .map(Details::Amount)
                .ok_or(wrong),
            _ => Err(wrong),
        },
        MessageNumber::Receipt => match value {
            Value::String(text) if valid_base64(&text) => Ok(Details::Receipt(text)),
            Value::String(_) => Err(LiveLineError::BadBase64("Message_Details")),
            _ => Err(wrong),
        },
        MessageNumber::EncryptedCoins => {
            let Value::Object(mut object) = value else {
                return Err(wrong);
            };
            let coins = object.remove("Coins");
            let deadline = object.remove("PownDeadline");
            if !object.is_empty() {
                return Err(wrong);
            }
            let coins_b64 = match coins {
                Some(Value::String(text)) if valid_base64(&text) => text,
                Some(Value::String(_)) => return Err(LiveLineError::BadBase64("Coins")),
                _ => return Err(wrong),
            };
            let pown_deadline_ms = deadline.and_then(|d| d.as_u64()).ok_or(wrong)?;
            Ok(Details::SealedCoins {
                coins_b64,
                pown_deadline_ms,
            })
        }
        _ => match value {
            Value::Null => Ok(Details::None),
            _ => Err(wrong),
        },
    }
}

/// The seed's tag form: `<from name>`, or `<from amount>` for message 4.
fn parse_tag(line: &str) -> Result<LiveMessage, LiveLineError> {
    let inner = line
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
        .ok_or(LiveLineError::BadTag)?;
    if inner.contains(['<', '>']) {
        return Err(LiveLineError::BadTag);
    }
    let (from, name) = inner.split_once(' ').ok_or(LiveLineError::BadTag)?;
    if name.is_empty() {
        return Err(LiveLineError::BadTag);
    }
    let from = parse_from(from.to_owned())?;
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        let amount = name.parse::<Amount>().map_err(LiveLineError::BadAmount)?;
        return Ok(LiveMessage {
            from,
            number: MessageNumber::MoneyToBeSent,
            details: Details::Amount(amount),
        });
    }
    let number =
        MessageNumber::from_name(name).ok_or_else(|| LiveLineError::UnknownName(name.into()))?;
    if matches!(
        number,
        MessageNumber::MoneyToBeSent | MessageNumber::Receipt | MessageNumber::EncryptedCoins
    ) {
        // The tag form has nowhere to put these messages' details.
        return Err(LiveLineError::WrongDetails { number });
    }
    Ok(LiveMessage {
        from,
        number,
        details: Details::None,
    })
}

impl LiveMessage {
    /// A message to send: `from` is left for the relay to fill in.
    pub fn outgoing(number: MessageNumber, details: Details) -> LiveMessage {
        LiveMessage {
            from: None,
            number,
            details,
        }
    }

    /// Whether the details have the shape `number` requires (what [`parse_line`] checks),
    /// so a message built in code can be checked before it is sent.
    pub fn is_well_formed(&self) -> bool {
        let shape_ok = match (&self.details, self.number) {
            (Details::Amount(_), MessageNumber::MoneyToBeSent) => true,
            (Details::Receipt(b64), MessageNumber::Receipt) => valid_base64(b64),
            (Details::SealedCoins { coins_b64, .. }, MessageNumber::EncryptedCoins) => {
                valid_base64(coins_b64)
            }
            (Details::None, n) => !matches!(
                n,
                MessageNumber::MoneyToBeSent
                    | MessageNumber::Receipt
                    | MessageNumber::EncryptedCoins
            ),
            _ => false,
        };
        let from_ok = self
            .from
            .as_ref()
            .is_none_or(|f| !f.is_empty() && f.len() <= MAX_FROM_BYTES);
        shape_ok && from_ok
    }

    /// The JSON form on one line, without a line ending, with the seed's spacing:
    /// `{"from": "#", "Message Number": 4, "Message_Details": "281"}`. Details-less
    /// messages write `"Message_Details": null`. Senders check the length against
    /// [`MAX_SENT_LINE`] before sending.
    pub fn to_line(&self) -> String {
        let from = self.from.as_deref().unwrap_or("#");
        let details = match &self.details {
            Details::None => "null".to_owned(),
            Details::Amount(amount) => format!("\"{amount}\""),
            Details::Receipt(b64) => json_string(b64),
            Details::SealedCoins {
                coins_b64,
                pown_deadline_ms,
            } => format!(
                "{{\"Coins\": {}, \"PownDeadline\": {pown_deadline_ms}}}",
                json_string(coins_b64)
            ),
        };
        format!(
            "{{\"from\": {}, \"Message Number\": {}, \"Message_Details\": {details}}}",
            json_string(from),
            self.number.number()
        )
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
