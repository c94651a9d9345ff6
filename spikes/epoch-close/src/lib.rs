//! Spike: four in-process Malachite (Tendermint) instances agree on an epoch-close value
//! under a seeded, faulty, simulated network. See README.md.

pub mod ctx;
pub mod sim;
