//! The market maker of the cross-server wire (Bob, seed 002, DESIGN §8).
//!
//! For each pair of networks A → B it sits in the relay topic `hex(SHA-256(asset ‖ A ‖ B))`,
//! announces a signed quote and announces it again on a timer (and at once when someone
//! joins), and answers each payer's lock on A that follows one of its quotes with a
//! [`tally_swap::Maker`] saga: its own lock on B once the payer's is certified and valid, the
//! claim on A as soon as the secret is out, the refund on B when nobody claims. Every saga is
//! journaled in the wallet folder (`maker/wires/`), every quote it signed in
//! `maker/quotes.json`, so a restart resumes every open wire and still honours the quotes
//! locks may cite.
//!
//! The daemon ([`run`]) publishes a [`MakerStatus`] (open wires, liquidity on each side, fees
//! earned) that the CLI shows as a status line and the control API ([`rpc`]) serves.

mod book;
mod daemon;
mod journal;
pub mod rpc;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tally_core::{AccountId, Amount, NetworkContract};
use tally_wallet::wire::Bounds;

pub use daemon::run;

/// What a maker trades, and how.
#[derive(Clone, Debug)]
pub struct MakerSettings {
    /// The wallet folder: its key signs quotes and locks, and it holds the journals.
    pub wallet_dir: PathBuf,
    /// The account (hex prefix or label) the maker trades with on every network; the
    /// wallet's first by default.
    pub account: Option<String>,
    /// The pairs A → B it carries money across.
    pub pairs: Vec<(NetworkContract, NetworkContract)>,
    /// The relay (HOST:PORT) whose topics it sits in.
    pub relay: String,
    /// Proportional fee, parts per million of the amount carried.
    pub fee_ppm: u32,
    pub fee_fixed: Amount,
    pub min: Amount,
    pub max: Amount,
    /// How long its lock on B runs (the payer's claim window).
    pub lock_time: Duration,
    /// Δ, when more than the timing rule's least.
    pub delta: Option<Duration>,
    /// How often quotes are announced again (each lives three times as long).
    pub announce_every: Duration,
    /// The most wires open at once for one taker (its account): a taker that locks and
    /// never claims ties up at most this many of the maker's locks on B.
    pub max_open_per_taker: usize,
    /// How many of the wallet's accounts the maker pays from on B (the trading account
    /// first, then the wallet's others), each with a quote of its own: one account's locks
    /// are certified one after another, several accounts' side by side.
    pub accounts: usize,
    /// Its bounds on its own setup, for the timing rule.
    pub bounds: Bounds,
    /// Each request to a validator waits at most this long.
    pub timeout: Duration,
}

/// Why the maker stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum MakerError {
    #[error(transparent)]
    Wallet(#[from] tally_wallet::WalletError),
    #[error(transparent)]
    Wire(#[from] tally_wallet::wire::WireError),
    #[error(transparent)]
    Client(#[from] tally_wallet::ClientError),
    #[error("{0}")]
    Settings(String),
    #[error("the maker's journal {path}: {reason}")]
    Journal { path: String, reason: String },
}

/// What the maker is doing, as the status line and the control API show it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MakerStatus {
    pub account: Option<AccountId>,
    pub pairs: Vec<PairStatus>,
    /// Wires still running.
    pub open: usize,
    pub completed: usize,
    pub refunded: usize,
    pub aborted: usize,
    /// Fees on completed wires, in microcash.
    pub fees_earned: u64,
    pub wires: Vec<WireSummary>,
}

/// One pair A → B.
#[derive(Clone, Debug, Serialize)]
pub struct PairStatus {
    pub a: String,
    pub b: String,
    pub topic: String,
    /// Whether its topic room is joined now.
    pub joined: bool,
    /// The maker's balance on each side, as most validators report it (microcash; on B,
    /// of every account it pays from).
    pub liquidity_a: Option<i128>,
    pub liquidity_b: Option<i128>,
    /// The quotes announced last, one per account it pays from on B.
    pub quotes: Vec<tally_swap::SignedQuote>,
}

/// One wire the maker answers.
#[derive(Clone, Debug, Serialize)]
pub struct WireSummary {
    /// The payer's escrow on A: the wire's id.
    pub escrow_a: tally_core::EscrowId,
    pub phase: String,
    /// What the maker locked (or will lock) on B.
    pub amount_b: Option<Amount>,
    pub fee: Option<Amount>,
    pub started_ms: u64,
}
