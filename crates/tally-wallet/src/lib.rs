//! Tally wallets (DESIGN §7): a folder of keys and receipts, the client that gathers votes
//! from a quorum network's validators, and the multi-core proof-of-work search.

pub mod client;
pub mod ops;
pub mod pow;
pub mod wallet;

pub use client::{ClientError, QuorumClient, ValidatorAnswer};
pub use ops::{OpError, Receipt};
pub use wallet::{ChainReceipt, KeyEntry, Wallet, WalletError};
