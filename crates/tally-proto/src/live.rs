//! The LiveConnect transfer's wire forms (seeds 000 and 001, DESIGN §7, PROTOCOL.md §7
//! "LiveConnect transfer"): the numbered messages two wallets exchange through a relay room,
//! and the connection file the sender hands to the receiver. Plain data, no I/O; the
//! transfer's rules live in the `tally-live` crate.
//!
//! - [`message`]: [`LiveMessage`], its one-line JSON form
//!   `{"from": "#", "Message Number": N, "Message_Details": …}` and the seed's tag form
//!   `<# Heartbeat>`, parsed strictly by [`parse_line`].
//! - [`connection_file`]: [`ConnectionFile`], the `tally-live-connection v1` text file
//!   (relay, room, token, network, session key).

pub mod connection_file;
pub mod message;

pub use connection_file::{
    CONNECTION_FILE_MAGIC, ConnectionFile, ConnectionFileError, MAX_CONNECTION_FILE_BYTES,
    valid_relay_address, valid_room, valid_token,
};
pub use message::{
    Details, LiveLineError, LiveMessage, MAX_FROM_BYTES, MAX_LIVE_LINE, MAX_SENT_LINE,
    MessageNumber, parse_line, valid_base64,
};
