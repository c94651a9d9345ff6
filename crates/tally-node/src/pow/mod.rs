//! The proof-of-work miner daemon (DESIGN §4, seed 004): `tally node --mine`.
//!
//! A miner joins its network through the tracker (seed 004's `INITIALIZE` →
//! `SEND_LIST` → `ACKNOWLEDGE_LIST` → `ACCEPT_ACKNOWLEDGE`), connects to the miners listed,
//! compares tips (`CONNECT`), fetches what it lacks (`SEND_REQUEST` / `RECEIVE_BLOCK`),
//! takes transactions from wallets (`PUSH_TRANSACTION` / `ACCEPT_TRANSACTION`), shares them
//! (`TRANSACTION`), mines, and announces blocks (`HASH_BROADCAST`). Every block passes the
//! full validity check (`tally-chain`) before it is stored or relayed; fork choice and
//! reorganisations are the chain's.
//!
//! By concern:
//! - The packets and their framing (PROTOCOL.md §8, "Packets") are `tally_proto::pow`.
//! - Decisions, sans-I/O (time in as an argument, no socket): [`peers`] (who a peer is,
//!   scores, bans, block-serving budgets), [`sync`] (when to ask a peer for blocks),
//!   [`fate`] (what to do with a received block), [`gossip`] (transaction dedup and relay),
//!   [`mining`] (mining switches, when a template is stale), and the connection limits and
//!   duplicate-connection rule (`connections`).
//! - The daemon: `state` (what its parts share), `net` (sockets), `handlers` (each
//!   packet), `blocks` (received blocks), `queries` (wallet queries), `discovery` (tracker
//!   registration, heartbeat), `miner_thread` (mining), [`node`] ([`PowNode`]: start and
//!   stop).
//! - [`PowNodeHandle`]: what the control API ([`rpc`]) and the terminal read.
//! - [`config`]: the miner folder (`miner.json`, `key`).
//!
//! Data flow. Every TCP connection (miner or wallet) gets a reader task and a writer task;
//! the reader parses frames and handles each packet in order, the writer drains a bounded
//! queue. Chain work (signature checks, connecting blocks, the durable commit) runs on
//! blocking threads, never on the async workers. The mining thread builds a template,
//! searches nonces and is stopped through a flag whenever the tip moves or new
//! transactions wait.

mod blocks;
mod clock;
pub mod config;
mod connections;
mod discovery;
pub mod fate;
pub mod gossip;
mod handle;
mod handlers;
mod miner_thread;
pub mod mining;
mod net;
pub mod node;
pub mod peers;
mod queries;
pub mod rpc;
mod state;
pub mod sync;

pub use config::{MinerConfig, MinerFiles};
pub use handle::{PeerStatus, PowNodeHandle, PowStatus};
pub use node::{PowNode, PowNodeError};
