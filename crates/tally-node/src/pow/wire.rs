//! The `pow` network's packets now live in `tally-proto` (every protocol's packets as data);
//! this path stays for the daemon's modules.
pub use tally_proto::pow::*;
