//! Tally wallets (DESIGN §7): a folder of keys and receipts, and everything a wallet does
//! with either kind of network. Quorum networks: the client that gathers votes from the
//! validators ([`client`]), introducing keys and paying ([`ops`]), and what the validators
//! agree on ([`views`]). Proof-of-work networks: one miner's requests ([`miner`]) and paying
//! with confirmations, balances and the ledger ([`chain`]). And the multi-core search for a
//! key's proof of work ([`pow`]). Bearer coins: their folders and operations ([`coins`]).
//! Seeded wallets: keys from one seed ([`seed`]), making a
//! seeded wallet and its keys ([`seeded`]), and finding every key again from the words
//! ([`restore`]).
//!
//! Nothing here draws on a terminal: long operations report progress through a callback,
//! and every failure is a typed error.

pub mod chain;
pub mod client;
pub mod coins;
pub mod escrow;
pub mod fs;
pub mod live;
pub mod miner;
pub mod ops;
pub mod payroll;
pub mod pow;
pub mod restore;
pub mod seed;
pub mod seeded;
pub mod views;
pub mod wallet;
pub mod wire;

pub use chain::{ChainWalletError, Miners};
pub use client::{ClientError, QuorumClient, TcpTransport, Transport, ValidatorAnswer};
pub use miner::MinerError;
pub use ops::{OpError, Receipt};
pub use restore::{GAP_LIMIT, Restored, RestoredAccount, RestoredCoin};
pub use seeded::SeededError;
pub use wallet::{ChainReceipt, KeyEntry, Wallet, WalletError};
