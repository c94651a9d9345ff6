//! tally-relay (being built).
