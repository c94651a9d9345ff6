//! The Tally tracker (DESIGN §5): the peer-discovery server that nodes and wallets of any
//! number of networks use to find each other, in the shape of the Minicash peer server
//! (`REG`, `REGUP`) and the seed 004 tracker (`INITIALIZE` → `SEND_LIST` →
//! `ACKNOWLEDGE_LIST` → `ACCEPT_ACKNOWLEDGE`), with what those lacked: every key signs its
//! own registration (nobody can list another key's address), timestamps stop replays,
//! entries expire, the list survives restarts, and every socket read is bounded in size
//! and time.
//!
//! - [`wire`]: packets, framing and the signed byte layout (PROTOCOL.md, tracker section).
//! - [`check`] and [`registry`]: the sans-I/O core; validation and the expiring registry
//!   take the clock as an argument.
//! - [`store`]: redb persistence, one durable commit per batch.
//! - [`Tracker`]: the server; [`TrackerClient`]: what `tally node` and the wallet call.

pub mod check;
pub mod client;
pub mod config;
mod pipeline;
pub mod registry;
mod server;
pub mod store;
pub mod wire;

pub use check::{Networks, Refusal};
pub use client::{
    ClientConfig, ClientError, Joined, Peer, Registered, TrackerClient, sign_registration,
};
pub use config::{Limits, TrackerConfig};
pub use pipeline::now_ms;
pub use server::{Stats, Tracker, TrackerError, TrackerHandle};
pub use wire::{Answer, AnswerPacket, Outcome, Registration, Request};
