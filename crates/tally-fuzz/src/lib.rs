//! One function per fuzz target: every parser that reads bytes from outside the process
//! (a peer's frame, a client's line, a file a person hands over, a record read back from
//! disk after a crash), fed raw bytes exactly the way the server or wallet feeds it.
//!
//! Each function must return normally for every input: a parser refuses what it cannot
//! read with an error, never a panic, and never allocates or loops beyond what the bytes
//! justify. Where the parser accepts the input, the function also asserts a property that
//! must hold for accepted values (re-encoding gives the same value back, a checked value's
//! checks run to completion, a state machine's journal reads back). A panic is a finding.
//!
//! Two drivers call these functions:
//!
//! - `fuzz/` (cargo-fuzz, nightly): `cargo +nightly fuzz run <target>`; each target in
//!   `fuzz/fuzz_targets/<target>.rs` is one call to the function of the same name.
//! - `tests/replay.rs` (stable, `cargo test`): replays every committed input under
//!   `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`, so every crash ever found
//!   stays a regression test.
//!
//! [`TARGETS`] names them all, for the replay test and the seed writer.

mod coin;
mod contract;
mod live;
mod pow;
mod quorum;
mod relay;
mod store;
mod swap;
mod tracker;
mod wallet;

pub use coin::{coin_file, coin_token};
pub use contract::network_contract;
pub use live::{live_connection_file, live_line, live_session};
pub use pow::{fuzz_pow_contract, fuzz_pow_params, pow_block, pow_packet};
pub use quorum::{quorum_frames, quorum_packet};
pub use relay::relay_lines;
pub use store::{chain_records, ledger_records};
pub use swap::wire_quote;
pub use tracker::tracker_request;
pub use wallet::remove_scratch as remove_wallet_scratch;
pub use wallet::wallet_files;

/// A fuzz target: its name (the folder of its corpus) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target, by name.
pub const TARGETS: &[Target] = &[
    ("quorum_packet", quorum_packet),
    ("quorum_frames", quorum_frames),
    ("pow_packet", pow_packet),
    ("pow_block", pow_block),
    ("tracker_request", tracker_request),
    ("relay_lines", relay_lines),
    ("network_contract", network_contract),
    ("coin_file", coin_file),
    ("coin_token", coin_token),
    ("live_line", live_line),
    ("live_connection_file", live_connection_file),
    ("live_session", live_session),
    ("wire_quote", wire_quote),
    ("ledger_records", ledger_records),
    ("chain_records", chain_records),
    ("wallet_files", wallet_files),
];

/// The network id the targets use where a parser needs one (the PROTOCOL.md vectors'
/// contract's id, so the committed seeds built from those vectors are on it).
pub fn fuzz_network() -> tally_core::NetworkId {
    use std::sync::OnceLock;
    static NETWORK: OnceLock<tally_core::NetworkId> = OnceLock::new();
    *NETWORK.get_or_init(|| vector_contract().id())
}

/// The PROTOCOL.md test vectors' contract (validator i's secret seed is 32 × `0x10 + i`).
pub use tally_vectors::vector_contract;

/// The text of `data` when it is UTF-8 (what a reader of text files and lines checks
/// first).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
