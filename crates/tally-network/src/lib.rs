//! Provisioning Tally networks (`tally network new quorum|pow`, `tally devnet`): a network
//! contract, genesis funding with its wallet, and one folder per validator or miner holding
//! its config and secret key, with the key's proof of work found in advance so the node can
//! register with the tracker from its first start.
//!
//! A crate of its own because it writes the folders of two others: the daemons'
//! (`tally-node`'s `node.json` and `miner.json`) and the wallet's (`tally-wallet`'s genesis
//! wallet); neither of those should depend on the other. Tests create networks with it
//! directly, without the CLI.

mod error;
mod files;
mod link;
mod pow;
mod quorum;

pub use error::ProvisionError;
pub use link::link_counterpart;
pub use pow::{CreatedPowNetwork, PowSpec, create_pow};
pub use quorum::{CreatedQuorumNetwork, ProvisionEvent, QuorumSpec, create_quorum};
