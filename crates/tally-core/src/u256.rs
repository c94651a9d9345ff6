//! A small unsigned 256-bit integer: just what targets, work and retargeting need.
//!
//! Consensus arithmetic must give the same answer on every machine, so it is done in exact
//! integers (never floats), and every operation either cannot overflow or says so.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{Decode, DecodeError, Encode, Reader};

/// An unsigned 256-bit integer. Limb 0 is the least significant 64 bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct U256([u64; 4]);

impl U256 {
    /// Zero.
    pub const ZERO: U256 = U256([0; 4]);
    /// One.
    pub const ONE: U256 = U256([1, 0, 0, 0]);
    /// 2^256 - 1.
    pub const MAX: U256 = U256([u64::MAX; 4]);

    /// The value of a `u64`.
    pub const fn from_u64(value: u64) -> Self {
        U256([value, 0, 0, 0])
    }

    /// The value of a `u128`.
    pub const fn from_u128(value: u128) -> Self {
        U256([value as u64, (value >> 64) as u64, 0, 0])
    }

    /// Reads 32 big-endian bytes (the byte order of a target and of a block hash).
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Self {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let start = 32 - 8 * (i + 1);
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[start..start + 8]);
            *limb = u64::from_be_bytes(word);
        }
        U256(limbs)
    }

    /// Writes 32 big-endian bytes.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            let start = 32 - 8 * (i + 1);
            out[start..start + 8].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// The target met by hashes with at least `bits` leading zero bits: `2^(256-bits) - 1`
    /// (zero when `bits` is 256 or more).
    pub fn from_leading_zero_bits(bits: u32) -> Self {
        if bits >= 256 {
            return U256::ZERO;
        }
        U256::MAX.shr(bits)
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// The number of leading zero bits (256 for zero).
    pub fn leading_zeros(&self) -> u32 {
        let mut zeros = 0;
        for limb in self.0.iter().rev() {
            if *limb == 0 {
                zeros += 64;
            } else {
                return zeros + limb.leading_zeros();
            }
        }
        zeros
    }

    /// The number of significant bits.
    pub fn bits(&self) -> u32 {
        256 - self.leading_zeros()
    }

    fn bit(&self, index: u32) -> bool {
        let limb = self.0[(index / 64) as usize];
        (limb >> (index % 64)) & 1 == 1
    }

    fn set_bit(&mut self, index: u32) {
        self.0[(index / 64) as usize] |= 1 << (index % 64);
    }

    /// `self >> shift` (zero when `shift` >= 256).
    pub fn shr(&self, shift: u32) -> U256 {
        if shift >= 256 {
            return U256::ZERO;
        }
        let limbs = (shift / 64) as usize;
        let bits = shift % 64;
        let mut out = [0u64; 4];
        for (i, slot) in out.iter_mut().enumerate() {
            let src = i + limbs;
            if src < 4 {
                *slot = self.0[src] >> bits;
                if bits > 0 && src + 1 < 4 {
                    *slot |= self.0[src + 1] << (64 - bits);
                }
            }
        }
        U256(out)
    }

    /// `self << shift`, dropping bits shifted past 2^256.
    pub fn shl(&self, shift: u32) -> U256 {
        if shift >= 256 {
            return U256::ZERO;
        }
        let limbs = (shift / 64) as usize;
        let bits = shift % 64;
        let mut out = [0u64; 4];
        for (i, slot) in out.iter_mut().enumerate().skip(limbs) {
            let src = i - limbs;
            *slot = self.0[src] << bits;
            if bits > 0 && src > 0 {
                *slot |= self.0[src - 1] >> (64 - bits);
            }
        }
        U256(out)
    }

    /// Bitwise not.
    pub fn not(&self) -> U256 {
        U256([!self.0[0], !self.0[1], !self.0[2], !self.0[3]])
    }

    /// `self + other`, or `None` past 2^256 - 1.
    pub fn checked_add(&self, other: &U256) -> Option<U256> {
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for (i, slot) in out.iter_mut().enumerate() {
            let sum = u128::from(self.0[i]) + u128::from(other.0[i]) + carry;
            *slot = sum as u64;
            carry = sum >> 64;
        }
        (carry == 0).then_some(U256(out))
    }

    /// `self + other`, stopping at 2^256 - 1.
    pub fn saturating_add(&self, other: &U256) -> U256 {
        self.checked_add(other).unwrap_or(U256::MAX)
    }

    /// `self - other`, or `None` below zero.
    pub fn checked_sub(&self, other: &U256) -> Option<U256> {
        if self < other {
            return None;
        }
        let mut out = [0u64; 4];
        let mut borrow = 0i128;
        for (i, slot) in out.iter_mut().enumerate() {
            let diff = i128::from(self.0[i]) - i128::from(other.0[i]) - borrow;
            if diff < 0 {
                *slot = (diff + (1i128 << 64)) as u64;
                borrow = 1;
            } else {
                *slot = diff as u64;
                borrow = 0;
            }
        }
        Some(U256(out))
    }

    /// `self / divisor` rounded down, or `None` when dividing by zero. Plain long division:
    /// it runs once per block, so clarity beats speed.
    pub fn checked_div(&self, divisor: &U256) -> Option<U256> {
        if divisor.is_zero() {
            return None;
        }
        let mut quotient = U256::ZERO;
        let mut remainder = U256::ZERO;
        for index in (0..self.bits()).rev() {
            remainder = remainder.shl(1);
            if self.bit(index) {
                remainder.0[0] |= 1;
            }
            if remainder >= *divisor {
                remainder = remainder.checked_sub(divisor)?;
                quotient.set_bit(index);
            }
        }
        Some(quotient)
    }

    /// `self * numerator / denominator` computed exactly with a 320-bit intermediate, or
    /// `None` when `denominator` is zero or the result does not fit in 256 bits.
    pub fn mul_div(&self, numerator: u64, denominator: u64) -> Option<U256> {
        if denominator == 0 {
            return None;
        }
        // 320-bit product, limb 0 least significant.
        let mut product = [0u64; 5];
        let mut carry = 0u128;
        for (i, limb) in self.0.iter().enumerate() {
            let wide = u128::from(*limb) * u128::from(numerator) + carry;
            product[i] = wide as u64;
            carry = wide >> 64;
        }
        product[4] = carry as u64;
        // Divide from the most significant limb down.
        let mut quotient = [0u64; 5];
        let mut remainder = 0u128;
        for i in (0..5).rev() {
            let current = (remainder << 64) | u128::from(product[i]);
            quotient[i] = (current / u128::from(denominator)) as u64;
            remainder = current % u128::from(denominator);
        }
        if quotient[4] != 0 {
            return None;
        }
        Some(U256([quotient[0], quotient[1], quotient[2], quotient[3]]))
    }

    /// The low 128 bits, or `None` if the value is larger.
    pub fn to_u128(&self) -> Option<u128> {
        (self.0[2] == 0 && self.0[3] == 0)
            .then(|| u128::from(self.0[0]) | (u128::from(self.0[1]) << 64))
    }

    /// 64 lower-case hex digits, big-endian.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_be_bytes())
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        for i in (0..4).rev() {
            match self.0[i].cmp(&other.0[i]) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U256(0x{})", self.to_hex())
    }
}

impl fmt::Display for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why a string is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 hex digits of a 256-bit number")]
pub struct U256ParseError;

impl FromStr for U256 {
    type Err = U256ParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        if text.len() != 64 {
            return Err(U256ParseError);
        }
        hex::decode_to_slice(text, &mut bytes).map_err(|_| U256ParseError)?;
        Ok(U256::from_be_bytes(&bytes))
    }
}

/// 32 bytes, **big-endian** (the codec's one exception): a target is compared with a hash
/// byte by byte.
impl Encode for U256 {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn encoded_len(&self) -> usize {
        32
    }
}

impl Decode for U256 {
    const MIN_ENCODED_LEN: usize = 32;
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.array().map(|bytes| U256::from_be_bytes(&bytes))
    }
}

impl Serialize for U256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for U256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb() -> impl Strategy<Value = U256> {
        any::<[u64; 4]>().prop_map(U256)
    }

    #[test]
    fn bytes_round_trip_big_endian() {
        let mut bytes = [0u8; 32];
        bytes[31] = 1;
        assert_eq!(U256::from_be_bytes(&bytes), U256::ONE);
        bytes[0] = 0x80;
        let value = U256::from_be_bytes(&bytes);
        assert_eq!(value.to_be_bytes(), bytes);
        assert_eq!(value.leading_zeros(), 0);
        assert_eq!(U256::from_leading_zero_bits(8).to_be_bytes()[0], 0);
        assert_eq!(U256::from_leading_zero_bits(8).to_be_bytes()[1], 0xff);
        assert_eq!(U256::from_leading_zero_bits(0), U256::MAX);
        assert_eq!(U256::from_leading_zero_bits(256), U256::ZERO);
    }

    #[test]
    fn mul_div_is_exact_and_reports_overflow() {
        let x = U256::from_leading_zero_bits(4);
        assert_eq!(x.mul_div(4, 4), Some(x));
        assert_eq!(U256::MAX.mul_div(2, 1), None);
        assert_eq!(U256::MAX.mul_div(1, 0), None);
        assert_eq!(U256::from_u64(10).mul_div(3, 4), Some(U256::from_u64(7)));
        assert!(U256::MAX.mul_div(3, 4).unwrap() < U256::MAX);
    }

    proptest! {
        #[test]
        fn division_agrees_with_u128(a in any::<u128>(), b in 1..u128::MAX) {
            let q = U256::from_u128(a).checked_div(&U256::from_u128(b)).unwrap();
            prop_assert_eq!(q, U256::from_u128(a / b));
        }

        #[test]
        fn add_sub_round_trip(a in arb(), b in arb()) {
            if let Some(sum) = a.checked_add(&b) {
                prop_assert_eq!(sum.checked_sub(&b), Some(a));
                prop_assert!(sum >= a);
            }
        }

        #[test]
        fn shifts_agree_with_u128(a in any::<u64>(), s in 0u32..64) {
            let v = U256::from_u64(a);
            prop_assert_eq!(v.shl(s).shr(s), v);
            prop_assert_eq!(v.shl(s).to_u128(), Some(u128::from(a) << s));
        }

        #[test]
        fn quotient_times_divisor_plus_remainder(a in arb(), b in 1u64..) {
            let q = a.checked_div(&U256::from_u64(b)).unwrap();
            prop_assert_eq!(a.mul_div(1, b), Some(q));
            let back = q.mul_div(b, 1).unwrap();
            prop_assert!(back <= a);
            prop_assert!(a.checked_sub(&back).unwrap() < U256::from_u64(b));
        }
    }
}
