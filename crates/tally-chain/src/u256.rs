//! [`U256`] lives in tally-core now (blocks moved there); this path keeps working.

pub use tally_core::u256::*;
