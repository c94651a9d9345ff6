//! The validator daemon (DESIGN §3, §9). Networking and disks live here; the rules live in
//! `tally-ledger`.
//!
//! Data flow: each connection's reader parses frames into packets and hands them to the
//! [`engine`], a single thread that drains whatever has queued up into a batch and has the
//! [`decider`] (sans-I/O) check all signatures of the batch at once (batched Ed25519, split
//! across cores), run the state machine and sign the votes in parallel; the engine's
//! committer makes the batch durable with one redb commit and only then releases the
//! answers. Each connection's writer sends answers in request
//! order, so clients may pipeline. [`sync`] pulls certificates this validator missed from
//! its peers, whose addresses [`discovery`] learns from the network's tracker; [`rpc`] is the
//! JSON-RPC control API, and [`slots`] its report of frozen lock slots.

pub mod config;
pub mod connection;
pub mod decider;
pub mod discovery;
pub mod engine;
pub mod jsonrpc;
pub mod notices;
pub mod pow;
pub mod rpc;
pub mod server;
pub mod slots;
pub mod sync;

pub use config::{NodeConfig, NodeFiles};
pub use discovery::{AddressBook, TrackerSettings};
pub use server::{Node, NodeError, NodeListeners};
