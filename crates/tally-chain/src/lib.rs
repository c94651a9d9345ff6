//! tally-chain (being built).
