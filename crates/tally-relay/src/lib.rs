//! The LiveConnect chat relay (seeds 000 and 001, DESIGN.md §6).
//!
//! A line protocol over TCP: a client's first line joins a room (`JOIN <room> <token>` for a
//! private two-member room, `TOPIC <room> <token>` for a topic room); afterwards every line a
//! member sends reaches the other members with each `#` replaced by the sender's IP address.
//! The relay's own lines start with `@` (`@ok`, `@here`, `@arrived`, `@left`, `@error`).
//! The full protocol is in PROTOCOL.md, section 7 (Relay).
//!
//! Protocol rules are pure code ([`protocol`], [`framing`], and with the server `rooms`; the
//! flood limits use `tally_core::rate`); networking lives in `server` (the relay) and
//! [`client`] (a small client).
//!
//! The default `server` feature builds the relay. Without it the crate is the line protocol
//! and the client alone: no socket2, no busy polling, no server dependencies.
//!
//! Start a relay in-process (tests, `tally devnet`):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tally_relay::{Relay, RelayConfig, RoomKind, client};
//! let relay = Relay::bind(RelayConfig::listening_on("127.0.0.1:0".parse()?)).await?.spawn();
//! let mut alice = client::join(relay.local_addr(), RoomKind::Private, "room1", "tok",
//!     &client::ClientConfig::default()).await?;
//! alice.send("<# Heartbeat>").await?;
//! relay.shutdown().await?;
//! # Ok(()) }
//! ```

#[cfg(feature = "server")]
mod busy_poll;
pub mod client;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
mod connection;
pub mod error;
pub mod framing;
pub mod protocol;
#[cfg(feature = "server")]
pub mod rooms;
#[cfg(feature = "server")]
pub mod server;

pub use client::{ClientConfig, Incoming, RelayClient, Welcome};
#[cfg(feature = "server")]
pub use config::RelayConfig;
pub use error::ClientError;
#[cfg(feature = "server")]
pub use error::RelayError;
pub use protocol::{ErrorCode, LeaveReason, Notice, RoomKind};
#[cfg(feature = "server")]
pub use server::{Relay, RelayHandle, RelayStats};
