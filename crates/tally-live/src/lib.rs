//! The LiveConnect transfer (seeds 000 and 001, DESIGN §7, PROTOCOL.md §7 "LiveConnect
//! transfer") as two sans-I/O state machines: [`Sender`] and [`Receiver`].
//!
//! A driver (the wallet) owns the relay connection, the clock and the coins. It feeds each
//! machine [`SenderEvent`]s / [`ReceiverEvent`]s with `now` in Unix milliseconds, and
//! performs the returned actions in order: lines to send, progress to show, and wallet work
//! (prepare, seal, check a receipt, reclaim; open, pown) whose completion it reports back as
//! another event. The machines see coins only as [`CoinSummary`] (account, denomination):
//! they check totals and the order of the steps, never secrets.
//!
//! **Crash safety.** After every `handle` call the driver journals the machine's state
//! ([`SenderState`], [`ReceiverState`]: serde) *before* performing the actions; after a
//! restart, `resume(state, now)` re-issues the action that was in flight. Every action may
//! therefore be performed twice and must be idempotent for the driver (its wallet journals
//! its own orders). When the peer (re)joins, each side re-sends everything it sent so far;
//! identical repeats are ignored, so nothing a crashed side missed is lost.
//!
//! **Coins are never lost.** Before message 24 the coins never left the sender
//! ([`SenderOutcome::Kept`]). After it the receiver powns only before the pown deadline
//! that message 24 carries, and the sender takes back what was not powned only after the
//! deadline plus the network's clock skew ([`SenderAction::Reclaim`]), so two honest
//! parties never race for one coin.

mod common;
mod receiver;
mod sender;

pub use common::{
    COIN_DENOMINATIONS_CASH, CoinSummary, ConfigError, FailReason, Timing, check_coins, coinable,
    same_coins, total,
};
pub use receiver::{
    Receiver, ReceiverAction, ReceiverConfig, ReceiverEvent, ReceiverOutcome, ReceiverPhase,
    ReceiverState,
};
pub use sender::{
    Sender, SenderAction, SenderConfig, SenderEvent, SenderOutcome, SenderPhase, SenderState,
};
