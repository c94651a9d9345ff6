//! The quorum validator (DESIGN §3): FastPay-style Byzantine consistent broadcast.
//!
//! [`Validator`] is a pure state machine. It takes orders and certificates whose signatures
//! the caller has already checked (in batches, in parallel) and returns votes, errors and
//! acknowledgements, recording every change in [`Changes`]. The caller makes those changes
//! durable with [`LedgerStore::commit`] — one commit per batch — before it releases a single
//! answer, so a vote is never given that a crash could make the validator forget.
//! [`LedgerStore`] is a trait: a node runs on [`RedbLedgerStore`], tests and the simulator
//! on [`MemoryLedgerStore`].
//!
//! Rules:
//! - one vote per lock slot, ever: (account, sequence) for transfers, splits and escrow
//!   locks, the key for `IntroKey`, the escrow for its claim or refund;
//! - a vote needs the right sequence and enough balance; an intro needs the proof of work
//!   and a key never introduced;
//! - a certificate (2f+1 distinct committee votes) is applied once; applying it again is a
//!   no-op; it needs only the sender's previous orders applied (a quorum already checked
//!   the funds), so an account's balance on a lagging validator can dip below zero until
//!   the credits it missed arrive.

mod state;
mod store;

#[cfg(feature = "planted-bugs")]
pub use state::PlantedBug;
pub use state::{
    AccountState, Applied, Changes, EscrowState, LedgerError, LockChange, MAX_ESCROW_MS,
    Settlement, Snapshot, Validator, VoteLock,
};
pub use store::records;
pub use store::{
    CertificatePage, DEFAULT_CHECKPOINT_EVERY, LedgerStore, MemoryLedgerStore, RedbLedgerStore,
    StoreError,
};
