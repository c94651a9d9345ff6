//! Every Tally protocol's packets as data, and the framing that carries them.
//!
//! - [`quorum`]: the quorum network's packets (Minicash's names: `HELLO`, `REQ_LEDGER`,
//!   `REQ_PAY`, …).
//! - [`pow`] (feature `pow`): the proof-of-work network's packets (seed 004's names:
//!   `CONNECT`, `PUSH_TRANSACTION`, `HASH_BROADCAST`, …).
//! - [`live`]: the LiveConnect transfer's numbered messages (JSON and the seed's tag form)
//!   and the connection file; the transfer's rules are in `tally-live`.
//! - [`tracker`]: the tracker's requests and answers (`REG`, `REGUP`, `INITIALIZE`, …) and
//!   the bytes each key signs to register.
//! - [`admission`]: how many connections one host may hold on a server, and how much of
//!   its misbehaviour is logged.
//! - [`connection`] (feature `framing`, on by default): the one framing every Tally TCP
//!   protocol but the relay's line protocol uses, a 4-byte big-endian length, then that many
//!   bytes of JSON `{"Type": …, "Data": …}`. A connection carries many requests; answers
//!   come back in the order the requests were sent (pipelining). Without the feature this
//!   crate is plain data and needs no async runtime.

pub mod admission;
#[cfg(feature = "framing")]
pub mod connection;
pub mod live;
#[cfg(feature = "pow")]
pub mod pow;
pub mod quorum;
pub mod tracker;

#[cfg(feature = "framing")]
pub use connection::{Connection, ConnectionError, Limits, encode_frame};
pub use quorum::{
    CertQuery, CertificatesPage, EndAck, ErrorCode, ErrorReply, EscrowQuery, EscrowStanding,
    EscrowView, HeldOrder, HeldOrderRequest, Hello, LedgerEntry, LedgerRequest, LedgerView,
    NextSlot, Packet, VoteReply,
};
