//! Tally's shared vocabulary (DESIGN §2): amounts, accounts and signatures, digests,
//! network contracts, orders, votes, certificates and the key-introduction proof of work.
//!
//! Everything here is pure: no I/O, no async, no clocks. Every signed object is encoded
//! to a canonical byte layout (see PROTOCOL.md) that starts with a domain-separation tag
//! and the network id, so a signature made for one purpose or one network is worthless
//! for any other.

pub mod amount;
pub mod contract;
pub mod crypto;
pub mod order;
pub mod pow;
pub mod rate;

pub use amount::{Amount, AmountError, SignedCash};
pub use contract::{
    Allocation, Committee, ContractError, Mode, NetworkContract, NetworkId, PowParams,
    ValidatorInfo,
};
pub use crypto::{
    AccountId, BatchVerifier, Digest, KeyError, SecretKey, Signature, sha256, sha256d,
};
pub use order::{
    Certificate, CertificateError, IntroKey, LockSlot, Order, OrderDigest, SignedOrder, Transfer,
    Vote,
};
