//! The quorum network's packets (Minicash's names: `HELLO`, `REQ_LEDGER`, `REQ_PAY`, …), the
//! proof-of-work network's (module `pow`, feature `pow`: `CONNECT`, `PUSH_TRANSACTION`, …) and
//! the framing that carries them: a 4-byte big-endian length, then that many bytes of JSON
//! `{"Type": …, "Data": …}`. A connection carries many requests; answers come back in the
//! order the requests were sent (pipelining).

pub mod connection;
pub mod packet;
#[cfg(feature = "pow")]
pub mod pow;

pub use connection::{Connection, ConnectionError, Limits};
pub use packet::{
    CertQuery, CertificatesPage, EndAck, ErrorCode, ErrorReply, Hello, LedgerEntry, LedgerRequest,
    LedgerView, Packet, VoteReply,
};
