//! Exact amounts of cash. 1 cash = 1,000 millicash = 1,000,000 microcash; the ledger counts
//! microcash in a `u64` and never uses floating point.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Microcash in one cash.
pub const MICROCASH_PER_CASH: u64 = 1_000_000;
const DECIMALS: usize = 6;

/// An amount of microcash. Serialised as a JSON integer of microcash (as the Minicash
/// `Amount` field is); parsed from and printed as an exact decimal count of cash.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Amount(u64);

/// Why a decimal string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("empty amount")]
    Empty,
    #[error("amount {0:?} is not a decimal number of cash (like 10 or 1.504)")]
    Malformed(String),
    #[error("amount {0:?} has more than 6 decimal places (the smallest unit is 0.000001 cash)")]
    TooPrecise(String),
    #[error("amount {0:?} is too large")]
    Overflow(String),
}

impl Amount {
    /// Nothing.
    pub const ZERO: Amount = Amount(0);

    /// An amount of `microcash`.
    pub const fn from_microcash(microcash: u64) -> Self {
        Amount(microcash)
    }

    /// `cash` whole units, or `None` if that does not fit in a `u64` of microcash.
    pub const fn from_cash(cash: u64) -> Option<Self> {
        match cash.checked_mul(MICROCASH_PER_CASH) {
            Some(m) => Some(Amount(m)),
            None => None,
        }
    }

    /// The amount in microcash.
    pub const fn microcash(self) -> u64 {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` if `other` is larger.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / MICROCASH_PER_CASH;
        let frac = self.0 % MICROCASH_PER_CASH;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:06}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// A signed count of microcash shown as an exact decimal of cash, as [`Amount`]'s Display
/// shows it: a validator's balance may fall below zero while it misses credits, and a
/// person reads that too in cash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedCash(pub i128);

impl fmt::Display for SignedCash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let magnitude = self.0.unsigned_abs();
        let per_cash = u128::from(MICROCASH_PER_CASH);
        let (whole, frac) = (magnitude / per_cash, magnitude % per_cash);
        let sign = if self.0 < 0 { "-" } else { "" };
        if frac == 0 {
            return write!(f, "{sign}{whole}");
        }
        let digits = format!("{frac:06}");
        write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl FromStr for Amount {
    type Err = AmountError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        let malformed = || AmountError::Malformed(text.to_owned());
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (text, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let overflow = || AmountError::Overflow(text.to_owned());
        let whole: u64 = whole.parse().map_err(|_| overflow())?;
        let mut micro = whole.checked_mul(MICROCASH_PER_CASH).ok_or_else(overflow)?;
        if let Some(frac) = frac {
            if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            if frac.len() > DECIMALS {
                return Err(AmountError::TooPrecise(text.to_owned()));
            }
            let padded = format!("{frac:0<6}");
            let frac: u64 = padded.parse().map_err(|_| malformed())?;
            micro = micro.checked_add(frac).ok_or_else(overflow)?;
        }
        Ok(Amount(micro))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!("1.504".parse::<Amount>(), Ok(Amount(1_504_000)));
        assert_eq!("10".parse::<Amount>(), Ok(Amount(10_000_000)));
        assert_eq!("0.000001".parse::<Amount>(), Ok(Amount(1)));
        assert_eq!("0".parse::<Amount>(), Ok(Amount::ZERO));
    }

    #[test]
    fn rejects_what_is_not_an_exact_amount() {
        assert!(matches!(
            "1.0000001".parse::<Amount>(),
            Err(AmountError::TooPrecise(_))
        ));
        for bad in [
            "-1", "+1", "1.", ".5", "1e3", "1,5", " 1", "abc", "1.2.3", "0x10",
        ] {
            assert!(bad.parse::<Amount>().is_err(), "{bad} must not parse");
        }
        assert!(matches!(
            "18446744073709.551616".parse::<Amount>(),
            Err(AmountError::Overflow(_))
        ));
        assert!(matches!(
            "99999999999999999999".parse::<Amount>(),
            Err(AmountError::Overflow(_))
        ));
        assert_eq!("".parse::<Amount>(), Err(AmountError::Empty));
    }

    #[test]
    fn prints_without_trailing_zeros() {
        assert_eq!(Amount(1_504_000).to_string(), "1.504");
        assert_eq!(Amount(10_000_000).to_string(), "10");
        assert_eq!(Amount(1).to_string(), "0.000001");
        assert_eq!(Amount(u64::MAX).to_string(), "18446744073709.551615");
    }

    #[test]
    fn signed_microcash_prints_as_cash() {
        assert_eq!(SignedCash(1_000_000_000).to_string(), "1000");
        assert_eq!(SignedCash(-1_500_000).to_string(), "-1.5");
        assert_eq!(SignedCash(-1).to_string(), "-0.000001");
        assert_eq!(SignedCash(0).to_string(), "0");
        assert_eq!(
            SignedCash(i128::MIN).to_string(),
            "-170141183460469231731687303715884.105728"
        );
    }

    proptest! {
        #[test]
        fn signed_cash_agrees_with_amount(micro in any::<u64>()) {
            prop_assert_eq!(SignedCash(i128::from(micro)).to_string(), Amount(micro).to_string());
            if micro > 0 {
                prop_assert_eq!(SignedCash(-i128::from(micro)).to_string(), format!("-{}", Amount(micro)));
            }
        }

        #[test]
        fn display_and_parse_round_trip(micro in any::<u64>()) {
            let amount = Amount(micro);
            prop_assert_eq!(amount.to_string().parse::<Amount>(), Ok(amount));
        }
    }
}
