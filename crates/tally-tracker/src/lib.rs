//! tally-tracker (being built).
