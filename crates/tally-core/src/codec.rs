//! The one canonical binary codec (PROTOCOL.md, "Binary layouts"): what signing, storage
//! and every binary wire encode Tally's objects with, so that one object has one byte form.
//!
//! Rules: integers little-endian (the one exception, a 256-bit target, is big-endian and
//! says so); keys, signatures and digests as their raw bytes; every field a fixed size; a
//! sequence as a `u32` count followed by its items; an order (or any other choice between
//! kinds) as a kind byte followed by that kind's fields, so that it delimits itself.
//!
//! Decoding takes hostile input: it never panics, reads nothing past the end, and refuses a
//! count above the caller's maximum or larger than the remaining bytes could hold before
//! it allocates, so a few bytes can never make it allocate much.

use crate::{AccountId, Amount, Digest, EscrowSecret, NetworkId, Signature};

/// Why bytes are not the canonical encoding of what was expected. Offsets count from the
/// start of the input given to the [`Reader`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ends inside a field.
    #[error("the input ends at byte {at}: {needed} more bytes needed")]
    Truncated { at: usize, needed: usize },
    /// The value ends before the input does (strict decoding takes exactly one value).
    #[error("{count} bytes left over after the value, at byte {at}")]
    TrailingBytes { at: usize, count: usize },
    /// A kind byte names no known kind of `what`.
    #[error("unknown {what} kind {kind} at byte {at}")]
    UnknownKind {
        what: &'static str,
        kind: u8,
        at: usize,
    },
    /// A count above the maximum the caller allows.
    #[error("{count} {what} at byte {at}, at most {max} allowed")]
    TooMany {
        what: &'static str,
        count: u64,
        max: usize,
        at: usize,
    },
    /// A boolean byte other than 0 or 1.
    #[error("byte {at} is {value}, not a boolean (0 or 1)")]
    NotABool { at: usize, value: u8 },
    /// A value written in a form its encoding never takes (every value has one encoding).
    #[error("{what} at byte {at} is not written the one way it is encoded")]
    Noncanonical { what: &'static str, at: usize },
}

/// A value with a canonical byte form.
pub trait Encode {
    /// Appends the canonical bytes to `out`.
    fn encode_to(&self, out: &mut Vec<u8>);

    /// Exactly how many bytes [`Encode::encode_to`] appends (for sizing buffers and for
    /// size limits, without encoding).
    fn encoded_len(&self) -> usize;

    /// The canonical bytes.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_to(&mut out);
        out
    }
}

/// A value that can be read back from its canonical bytes.
pub trait Decode: Sized {
    /// The fewest bytes any value's encoding takes; it bounds how many values of this
    /// type a given number of bytes can hold, so a count is refused before allocating.
    const MIN_ENCODED_LEN: usize;

    /// Reads one value from `reader`, leaving it just after the value.
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Reads exactly one value: bytes left over are an error, so every value has exactly
    /// one accepted encoding.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let value = Self::decode_from(&mut reader)?;
        reader.finish()?;
        Ok(value)
    }
}

/// Reads fields from a byte slice, front to back, never past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    /// How many bytes have been read.
    pub fn position(&self) -> usize {
        self.at
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Succeeds only if every byte has been read.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { at: self.at, count }),
        }
    }

    /// The next `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let remaining = self.remaining();
        if len > remaining {
            return Err(DecodeError::Truncated {
                at: self.bytes.len(),
                needed: len - remaining,
            });
        }
        let start = self.at;
        self.at += len;
        Ok(&self.bytes[start..self.at])
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_le_bytes)
    }

    /// A little-endian `u128`.
    pub fn u128(&mut self) -> Result<u128, DecodeError> {
        self.array().map(u128::from_le_bytes)
    }

    /// A little-endian two's-complement `i128`.
    pub fn i128(&mut self) -> Result<i128, DecodeError> {
        self.array().map(i128::from_le_bytes)
    }

    /// A boolean: exactly 0 or 1.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.at;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::NotABool { at, value }),
        }
    }

    /// A value of any decodable type.
    pub fn read<T: Decode>(&mut self) -> Result<T, DecodeError> {
        T::decode_from(self)
    }

    /// A `u32` count of items of at least `min_item_len` bytes each: refused if above
    /// `max`, or if the remaining bytes cannot hold that many items.
    pub fn count(
        &mut self,
        what: &'static str,
        max: usize,
        min_item_len: usize,
    ) -> Result<usize, DecodeError> {
        let at = self.at;
        let count = self.u32()?;
        let too_many = DecodeError::TooMany {
            what,
            count: u64::from(count),
            max,
            at,
        };
        let count = usize::try_from(count).map_err(|_| too_many.clone())?;
        if count > max {
            return Err(too_many);
        }
        let needed = count.saturating_mul(min_item_len);
        if needed > self.remaining() {
            return Err(DecodeError::Truncated {
                at: self.bytes.len(),
                needed: needed - self.remaining(),
            });
        }
        Ok(count)
    }

    /// A counted sequence (see [`encode_seq`]) of at most `max` items.
    pub fn seq<T: Decode>(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.count(what, max, T::MIN_ENCODED_LEN)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(T::decode_from(self)?);
        }
        Ok(items)
    }
}

/// Appends a sequence: its length as a `u32`, then each item. A sequence longer than
/// `u32::MAX` items cannot be held in memory for any type here, so the count never clips.
pub fn encode_seq<T: Encode>(items: &[T], out: &mut Vec<u8>) {
    let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for item in items {
        item.encode_to(out);
    }
}

/// The encoded length of a sequence written by [`encode_seq`].
pub fn seq_encoded_len<T: Encode>(items: &[T]) -> usize {
    4 + items.iter().map(Encode::encoded_len).sum::<usize>()
}

macro_rules! little_endian {
    ($($t:ty => $read:ident),*) => {$(
        impl Encode for $t {
            fn encode_to(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn encoded_len(&self) -> usize {
                std::mem::size_of::<$t>()
            }
        }
        impl Decode for $t {
            const MIN_ENCODED_LEN: usize = std::mem::size_of::<$t>();
            fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                reader.$read()
            }
        }
    )*};
}
little_endian!(u8 => u8, u16 => u16, u32 => u32, u64 => u64, u128 => u128, i128 => i128);

impl Encode for bool {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn encoded_len(&self) -> usize {
        1
    }
}

impl Decode for bool {
    const MIN_ENCODED_LEN: usize = 1;
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.bool()
    }
}

impl<const N: usize> Encode for [u8; N] {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn encoded_len(&self) -> usize {
        N
    }
}

impl<const N: usize> Decode for [u8; N] {
    const MIN_ENCODED_LEN: usize = N;
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.array()
    }
}

/// Keys, signatures and digests: their raw bytes.
macro_rules! raw_bytes {
    ($($t:ty => $len:expr),*) => {$(
        impl Encode for $t {
            fn encode_to(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(self.as_bytes());
            }
            fn encoded_len(&self) -> usize {
                $len
            }
        }
        impl Decode for $t {
            const MIN_ENCODED_LEN: usize = $len;
            fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                reader.array::<$len>().map(<$t>::from)
            }
        }
    )*};
}
raw_bytes!(AccountId => 32, Signature => 64, Digest => 32, EscrowSecret => 32);

/// An optional value: `0`, or `1 ‖ value`.
impl<T: Encode> Encode for Option<T> {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.encode_to(out);
            }
        }
    }
    fn encoded_len(&self) -> usize {
        1 + self.as_ref().map_or(0, Encode::encoded_len)
    }
}

impl<T: Decode> Decode for Option<T> {
    const MIN_ENCODED_LEN: usize = 1;
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if reader.bool()? {
            reader.read().map(Some)
        } else {
            Ok(None)
        }
    }
}

impl Encode for NetworkId {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.0.encode_to(out);
    }
    fn encoded_len(&self) -> usize {
        32
    }
}

impl Decode for NetworkId {
    const MIN_ENCODED_LEN: usize = 32;
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read().map(NetworkId)
    }
}

/// An amount: its microcash as a `u64`.
impl Encode for Amount {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.microcash().encode_to(out);
    }
    fn encoded_len(&self) -> usize {
        8
    }
}

impl Decode for Amount {
    const MIN_ENCODED_LEN: usize = 8;
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.u64().map(Amount::from_microcash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_little_endian_and_round_trip() {
        assert_eq!(0x0102_0304u32.to_bytes(), vec![4, 3, 2, 1]);
        assert_eq!(u64::from_bytes(&7u64.to_bytes()), Ok(7));
        assert_eq!(i128::from_bytes(&(-5i128).to_bytes()), Ok(-5));
        assert_eq!(
            Amount::from_bytes(&[1, 0, 0, 0, 0, 0, 0, 0]),
            Ok(Amount::from_microcash(1))
        );
    }

    #[test]
    fn strict_decoding_names_what_is_wrong() {
        assert_eq!(
            u64::from_bytes(&[1, 2, 3]),
            Err(DecodeError::Truncated { at: 3, needed: 5 })
        );
        assert_eq!(
            u32::from_bytes(&[0; 6]),
            Err(DecodeError::TrailingBytes { at: 4, count: 2 })
        );
        assert_eq!(
            bool::from_bytes(&[2]),
            Err(DecodeError::NotABool { at: 0, value: 2 })
        );
    }

    #[test]
    fn counts_are_bounded_before_anything_is_allocated() {
        let mut bytes = Vec::new();
        encode_seq(&[1u64, 2, 3], &mut bytes);
        assert_eq!(bytes.len(), seq_encoded_len(&[1u64, 2, 3]));
        assert_eq!(
            Reader::new(&bytes).seq::<u64>("numbers", 3),
            Ok(vec![1, 2, 3])
        );
        assert_eq!(
            Reader::new(&bytes).seq::<u64>("numbers", 2),
            Err(DecodeError::TooMany {
                what: "numbers",
                count: 3,
                max: 2,
                at: 0
            })
        );
        // A huge count with almost no bytes behind it is refused, not allocated.
        let hostile = [0xff, 0xff, 0xff, 0xff, 0];
        assert_eq!(
            Reader::new(&hostile).seq::<u64>("numbers", usize::MAX),
            Err(DecodeError::Truncated {
                at: 5,
                needed: 8 * 0xffff_ffff - 1
            })
        );
    }
}
