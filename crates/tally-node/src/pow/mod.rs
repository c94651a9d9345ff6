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
//! - [`wire`]: the packets and their framing (PROTOCOL.md §8, "Packets"), from `tally-proto`.
//! - [`peers`], [`sync`]: sans-I/O scoring, ban, sync and gossip-dedup decisions.
//! - [`node`]: the daemon ([`PowNode`]); [`rpc`]: its control API.
//! - [`config`]: the miner folder (`miner.json`, `key`).

pub mod config;
pub mod node;
pub mod peers;
pub mod rpc;
pub mod sync;
pub mod wire;

pub use config::{MinerConfig, MinerFiles};
pub use node::{PowNode, PowNodeError, PowNodeHandle, PowStatus};
