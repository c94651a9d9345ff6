//! Blocks and transactions live in tally-core now ([`tally_core::block`]); this path keeps
//! working.

pub use tally_core::block::*;
pub use tally_core::codec::DecodeError;
