//! Tally's shared vocabulary (DESIGN §2): amounts, accounts and signatures, digests,
//! network contracts, orders, votes, certificates, the key-introduction proof of work, and
//! the proof-of-work chain's blocks and transactions.
//!
//! Everything here is pure: no I/O, no async, no clocks. Every object has one canonical
//! byte layout, written and read by [`codec`] (see PROTOCOL.md); every signed byte string
//! starts with a domain-separation tag and the network id, so a signature made for one
//! purpose or one network is worthless for any other.

pub mod amount;
pub mod batch;
pub mod block;
pub mod codec;
pub mod coin;
pub mod contract;
pub mod crypto;
pub mod order;
pub mod pow;
pub mod rate;
pub mod seal;
pub mod tip;
pub mod u256;

pub use amount::{Amount, AmountError, SignedCash};
pub use batch::{BatchVerifier, KeyCache};
pub use block::{Block, BlockHash, BlockHeader, Coinbase, Transaction, genesis_hash, merkle_root};
pub use codec::{Decode, DecodeError, Encode, Reader};
pub use coin::{
    Coin, CoinError, CoinFile, Denomination, break_down, decode_token, encode_token, fewest_coins,
};
pub use contract::{
    Allocation, Committee, ContractError, Mode, NetworkContract, NetworkId, PowParams,
    ValidatorInfo, first_voter,
};
pub use crypto::{
    AccountId, Digest, EscrowSecret, KeyError, SecretKey, Signature, sha256, sha256d,
};
pub use order::{
    Certificate, CertificateError, Counterpart, EscrowClaim, EscrowId, EscrowLock, EscrowRefund,
    EscrowShapeError, EscrowState, IntroKey, LockSlot, MAX_SPLIT_OUTPUTS, Order, OrderDigest,
    Payment, Settlement, SignedOrder, Split, SplitError, Transfer, Vote,
};
pub use seal::{SealError, SessionKey};
pub use tip::{TipInfo, TxStatus};
pub use u256::U256;
