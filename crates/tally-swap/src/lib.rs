//! The hash-locked cross-server wire (seed 002, DESIGN §8) as two sans-I/O sagas: the
//! [`Payer`] (Alice: pays on A, receives on B) and the [`Maker`] (Bob: the market maker who
//! receives on A and pays on B), with the maker's signed [`Quote`] and the [`timing`] rule
//! that makes the wire atomic.
//!
//! A driver (the wallet's `wire`, the maker daemon) owns the networks, the relay, the clock
//! and the journal. It feeds a saga [`Event`]s — what it observed on the networks, messages
//! from the counterpart, ticks — with `now` in ms since the Unix epoch, and performs the
//! returned [`Action`]s in order: journal the state, lock, claim, refund, watch, send, wake.
//!
//! **Crash safety.** Every step that changes the state returns [`Action::Journal`] first;
//! the driver journals `snapshot()` (serde) before performing anything after it. After a
//! restart, `resume(snapshot, now)` re-issues what was in flight: the same lock terms (the
//! wallet finishes the one order it journaled, so a lock is never made twice), the same
//! claim while still in time, the refund, the watches. The payer's secret is part of its
//! state, journaled before its first lock.
//!
//! **Atomicity** rests on the validators' escrow rule (a claim voted only before the
//! deadline, a refund only from deadline + ε, never both for one escrow, the secret published
//! by the vote) and on the timing rule: T_A ≥ T_B + Δ with Δ ≥ [`min_delta`], and each
//! claimant claiming by [`last_claim_at`]. The sagas are tested against a model of two
//! ledgers with skewed validator clocks, crashes, delays, offline parties and deviating
//! counterparts (`sim`).

pub mod maker;
pub mod payer;
pub mod quote;
pub mod timing;
pub mod wire;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod testkit;

pub use maker::{Maker, MakerConfig, MakerPhase, MakerState};
pub use payer::{Payer, PayerConfig, PayerPhase, PayerState, RETRY_MS};
pub use quote::{MAX_ASSET_LEN, QUOTE_TAG, Quote, QuoteError, SignedQuote, Want, topic};
pub use timing::{
    Timing, TimingError, check_deadlines, last_claim_at, min_delta, min_lock_window, refund_from,
};
pub use wire::{
    Action, Event, LockTerms, Message, Outcome, Refusal, Standing, TOPIC_TOKEN, Target, TopicLine,
    escrow_id,
};
