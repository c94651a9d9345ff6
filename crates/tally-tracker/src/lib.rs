//! The Tally tracker (DESIGN §5): the peer-discovery server that nodes and wallets of any
//! number of networks use to find each other, in the shape of the Minicash peer server
//! (`REG`, `REGUP`) and the seed 004 tracker (`INITIALIZE` → `SEND_LIST` →
//! `ACKNOWLEDGE_LIST` → `ACCEPT_ACKNOWLEDGE`), with what those lacked: every key signs its
//! own registration (nobody can list another key's address), timestamps stop replays,
//! entries expire, the list survives restarts, and every socket read is bounded in size
//! and time.
//!
//! - The packets and the signed byte layout live in [`tally_proto::tracker`] (PROTOCOL.md,
//!   tracker section); framing is tally-proto's.
//! - [`TrackerClient`]: what `tally node` and the wallet call. It is all this crate builds
//!   without the default `server` feature: no redb, no rayon, no server.
//! - With `server`: [`check`] and [`registry`], the sans-I/O core (validation and the
//!   expiring registry take the clock as an argument); [`store`], redb persistence with one
//!   durable commit per batch; [`Tracker`], the server.

#[cfg(feature = "server")]
pub mod check;
pub mod client;
mod clock;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
mod pipeline;
#[cfg(feature = "server")]
pub mod registry;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod session;
#[cfg(feature = "server")]
pub mod store;

#[cfg(feature = "server")]
pub use check::Networks;
pub use client::{
    ClientConfig, ClientError, Joined, Peer, Registered, TrackerClient, sign_registration,
};
pub use clock::{Clock, ManualClock, now_ms};
#[cfg(feature = "server")]
pub use config::{Limits, TrackerConfig};
#[cfg(feature = "server")]
pub use server::{Stats, Tracker, TrackerError, TrackerHandle};
pub use tally_proto::tracker::{Answer, AnswerPacket, Outcome, Refusal, Registration, Request};
