//! Fixtures shared by the unit tests: two networks, a maker, a payer, a quote, a timing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tally_core::{Amount, EscrowSecret, NetworkId, SecretKey, sha256};

use crate::quote::{Quote, SignedQuote, Want};
use crate::timing::Timing;

pub const NOW: u64 = 1_700_000_000_000;

pub fn network_a() -> NetworkId {
    NetworkId(sha256(&[b"network A"]))
}

pub fn network_b() -> NetworkId {
    NetworkId(sha256(&[b"network B"]))
}

pub fn maker_key() -> SecretKey {
    SecretKey::from_bytes([7; 32])
}

pub fn payer_key() -> SecretKey {
    SecretKey::from_bytes([9; 32])
}

pub fn secret() -> EscrowSecret {
    EscrowSecret::from([42; 32])
}

/// ε_A 500, ε_B 700, certify 300 each, notice 2 s, margin 100: Δ ≥ 3,600 ms and a lock
/// on B of at least 3,400 ms.
pub fn timing() -> Timing {
    Timing {
        skew_a: 500,
        skew_b: 700,
        certify_a: 300,
        certify_b: 300,
        notice: 2_000,
        margin: 100,
    }
}

/// 1 to 100 cash, 0.25 % + 0.001 cash, lock time 10 s, Δ 5 s, valid a minute.
pub fn quote() -> Quote {
    let maker = maker_key().account();
    Quote {
        maker,
        asset: "cash".into(),
        network_a: network_a(),
        network_b: network_b(),
        min_amount: Amount::from_microcash(1_000_000),
        max_amount: Amount::from_microcash(100_000_000),
        fee_ppm: 2_500,
        fee_fixed: Amount::from_microcash(1_000),
        maker_a: maker,
        maker_b: maker,
        lock_time_ms: 10_000,
        delta_ms: 5_000,
        expires_ms: NOW + 60_000,
        nonce: 1,
    }
}

pub fn signed() -> SignedQuote {
    quote().sign(&maker_key())
}

pub fn want() -> Want {
    Want {
        asset: "cash".into(),
        network_a: network_a(),
        network_b: network_b(),
    }
}

/// What the payer receives in the tests: 10 cash.
pub fn amount() -> Amount {
    Amount::from_microcash(10_000_000)
}
