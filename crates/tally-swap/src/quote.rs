//! A market maker's signed quote (DESIGN §8 step 1): the terms on which it moves an asset
//! from network A to network B, announced in the relay topic of [`topic`].
//!
//! Byte layout (PROTOCOL.md conventions: little-endian integers, raw keys and digests):
//!
//! ```text
//! signing bytes = "TALLY-QUOTE-V1" ‖ quote
//! quote         = maker (32) ‖ asset (u32 length ‖ UTF-8) ‖ network A (32) ‖ network B (32)
//!                 ‖ min u64 ‖ max u64 ‖ fee ppm u32 ‖ fixed fee u64 ‖ maker on A (32)
//!                 ‖ maker on B (32) ‖ lock time ms u64 ‖ Δ ms u64 ‖ expiry ms u64 ‖ nonce u64
//! signed quote  = quote ‖ signature (64)
//! quote hash    = SHA-256("TALLY-QUOTE-V1" ‖ signed quote)
//! ```
//!
//! The quote names both networks itself, so its signature needs no network id; the tag keeps
//! it from ever being mistaken for an order or a vote.

use serde::{Deserialize, Serialize};
use tally_core::codec::{Decode, DecodeError, Encode, Reader, encode_seq};
use tally_core::{AccountId, Amount, Digest, NetworkId, SecretKey, Signature, sha256};

use crate::timing::{Timing, min_delta, min_lock_window};

/// Domain tag in front of a quote's signing bytes and its hash.
pub const QUOTE_TAG: &[u8] = b"TALLY-QUOTE-V1";

/// The longest asset name, in bytes: names are short tickers ("cash"), and a bound keeps a
/// hostile quote from making anyone allocate much.
pub const MAX_ASSET_LEN: usize = 64;

/// Parts per million in one.
const PPM: u128 = 1_000_000;

/// What a maker offers: carry between `min_amount` and `max_amount` of `asset` from network
/// A to network B, for `fee_ppm` parts per million plus `fee_fixed`, until `expires_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Quote {
    /// The maker's key; it signs the quote.
    pub maker: AccountId,
    /// The asset moved ("cash").
    pub asset: String,
    /// Where the payer pays (its lock).
    pub network_a: NetworkId,
    /// Where the payer receives (the maker's lock).
    pub network_b: NetworkId,
    /// The least the payer may receive on B.
    pub min_amount: Amount,
    /// The most the payer may receive on B.
    pub max_amount: Amount,
    /// Proportional fee, in parts per million of the amount received (rounded up).
    pub fee_ppm: u32,
    /// Fixed fee added to the proportional one.
    pub fee_fixed: Amount,
    /// The maker's account on A: the payee of the payer's lock.
    pub maker_a: AccountId,
    /// The maker's account on B: the payer of the maker's lock.
    pub maker_b: AccountId,
    /// How long the maker's lock on B runs, from when the maker locks (T_B = then + this).
    pub lock_time_ms: u64,
    /// Δ: the gap the maker demands between the deadlines, T_A ≥ T_B + Δ.
    pub delta_ms: u64,
    /// The quote is void from this moment (ms since the Unix epoch).
    pub expires_ms: u64,
    /// Distinguishes re-announcements with otherwise equal terms.
    pub nonce: u64,
}

/// A quote with its maker's signature: what travels in the topic and what a lock cites by
/// [`SignedQuote::hash`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedQuote {
    #[serde(rename = "Quote")]
    pub quote: Quote,
    #[serde(rename = "Sig")]
    pub signature: Signature,
}

/// What the taker wants; a quote for anything else is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Want {
    /// The asset.
    pub asset: String,
    /// The network it pays on.
    pub network_a: NetworkId,
    /// The network it receives on.
    pub network_b: NetworkId,
}

/// Why a quote cannot be taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("the quote expired at {expires_ms} (now {now_ms})")]
    Expired { expires_ms: u64, now_ms: u64 },
    #[error("the quote's signature does not verify for its maker")]
    BadSignature,
    #[error("the quote is malformed: {0}")]
    Malformed(&'static str),
    #[error("{amount} is outside the quote's range {min}..={max}")]
    AmountOutOfRange {
        amount: Amount,
        min: Amount,
        max: Amount,
    },
    #[error("the fee on {0} overflows")]
    FeeOverflow(Amount),
    #[error("the quote's Δ of {delta_ms} ms is below the {min_ms} ms the timing rule demands")]
    DeltaTooSmall { delta_ms: u64, min_ms: u64 },
    #[error("the quote's lock time of {lock_ms} ms leaves no claim window (at least {min_ms} ms)")]
    LockTimeTooShort { lock_ms: u64, min_ms: u64 },
    #[error("the quote is for another asset or other networks than wanted")]
    NotWanted,
    #[error("the maker's accounts are the payer's own")]
    PaysItself,
}

impl Quote {
    /// `TALLY-QUOTE-V1 ‖ quote`: what the maker signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(QUOTE_TAG.len() + self.encoded_len());
        out.extend_from_slice(QUOTE_TAG);
        self.encode_to(&mut out);
        out
    }

    /// Signs with `key` (which should be `self.maker`'s).
    pub fn sign(self, key: &SecretKey) -> SignedQuote {
        let signature = key.sign(&self.signing_bytes());
        SignedQuote {
            quote: self,
            signature,
        }
    }

    /// The fee on receiving `amount`: `ceil(amount × ppm / 10⁶) + fixed`; `None` on
    /// overflow. Rounded up so that splitting a wire never pays less in fees.
    pub fn fee_for(&self, amount: Amount) -> Option<Amount> {
        let product = u128::from(amount.microcash()) * u128::from(self.fee_ppm);
        let proportional = u64::try_from(product.div_ceil(PPM)).ok()?;
        Amount::from_microcash(proportional).checked_add(self.fee_fixed)
    }

    /// What the payer locks on A to receive `amount` on B: the amount plus its fee.
    pub fn total_for(&self, amount: Amount) -> Option<Amount> {
        amount.checked_add(self.fee_for(amount)?)
    }

    /// The amount within `[min, max]` whose total is exactly `total`, if any: how a maker
    /// reads a payer's lock. The total grows strictly with the amount, so there is at most
    /// one, found by bisection.
    pub fn amount_for_total(&self, total: Amount) -> Option<Amount> {
        let (mut low, mut high) = (self.min_amount.microcash(), self.max_amount.microcash());
        while low <= high {
            let middle = low + (high - low) / 2;
            match self.total_for(Amount::from_microcash(middle)) {
                Some(found) if found == total => return Some(Amount::from_microcash(middle)),
                Some(found) if found < total => low = middle.checked_add(1)?,
                _ => high = middle.checked_sub(1)?,
            }
        }
        None
    }

    /// Network A (where the payer locks) and network B (where the maker locks).
    pub fn networks(&self) -> (NetworkId, NetworkId) {
        (self.network_a, self.network_b)
    }

    /// The relay topic the maker sits in.
    pub fn topic(&self) -> String {
        topic(&self.asset, &self.network_a, &self.network_b)
    }

    /// What holds whoever takes the quote: an asset name of 1 to [`MAX_ASSET_LEN`] bytes,
    /// a non-empty range, two different networks.
    pub fn check_shape(&self) -> Result<(), QuoteError> {
        if self.asset.is_empty() || self.asset.len() > MAX_ASSET_LEN {
            return Err(QuoteError::Malformed("the asset name is empty or too long"));
        }
        if self.min_amount.is_zero() || self.min_amount > self.max_amount {
            return Err(QuoteError::Malformed("the amount range is empty"));
        }
        if self.network_a == self.network_b {
            return Err(QuoteError::Malformed("both sides are one network"));
        }
        Ok(())
    }
}

impl SignedQuote {
    /// Whether the signature is the maker's over [`Quote::signing_bytes`].
    pub fn verify(&self) -> bool {
        self.quote
            .maker
            .verify(&self.signature, &self.quote.signing_bytes())
    }

    /// SHA-256 of `TALLY-QUOTE-V1 ‖ quote ‖ signature`: what the locks of a wire cite
    /// ([`tally_core::Counterpart::quote`]).
    pub fn hash(&self) -> Digest {
        sha256(&[QUOTE_TAG, &self.to_bytes()])
    }

    /// Whether a payer (`payer`, its key on both networks) may take this quote at `now` to
    /// receive `amount`, under its own `timing`: the right asset and networks, well formed,
    /// not expired, signed, `amount` within range with a fee that fits, Δ at least
    /// [`min_delta`] and a lock time at least [`min_lock_window`].
    pub fn check(
        &self,
        want: &Want,
        payer: &AccountId,
        amount: Amount,
        timing: &Timing,
        now_ms: u64,
    ) -> Result<(), QuoteError> {
        let quote = &self.quote;
        quote.check_shape()?;
        if quote.asset != want.asset
            || quote.network_a != want.network_a
            || quote.network_b != want.network_b
        {
            return Err(QuoteError::NotWanted);
        }
        if now_ms >= quote.expires_ms {
            return Err(QuoteError::Expired {
                expires_ms: quote.expires_ms,
                now_ms,
            });
        }
        if !self.verify() {
            return Err(QuoteError::BadSignature);
        }
        if amount < quote.min_amount || amount > quote.max_amount {
            return Err(QuoteError::AmountOutOfRange {
                amount,
                min: quote.min_amount,
                max: quote.max_amount,
            });
        }
        if quote.total_for(amount).is_none() {
            return Err(QuoteError::FeeOverflow(amount));
        }
        let min_ms = min_delta(timing);
        if quote.delta_ms < min_ms {
            return Err(QuoteError::DeltaTooSmall {
                delta_ms: quote.delta_ms,
                min_ms,
            });
        }
        let min_ms = min_lock_window(timing);
        if quote.lock_time_ms < min_ms {
            return Err(QuoteError::LockTimeTooShort {
                lock_ms: quote.lock_time_ms,
                min_ms,
            });
        }
        if quote.maker_a == *payer || quote.maker_b == *payer {
            return Err(QuoteError::PaysItself);
        }
        Ok(())
    }
}

/// The relay topic of makers moving `asset` from `a` to `b`: lower-case hex of
/// SHA-256(asset ‖ A id ‖ B id), the ids as their 32 raw bytes (fixed length, so the
/// concatenation is unambiguous). The seed's "Silver_Asset_ID+Server_A_ID+Server_B_ID".
pub fn topic(asset: &str, a: &NetworkId, b: &NetworkId) -> String {
    sha256(&[asset.as_bytes(), a.as_bytes(), b.as_bytes()]).to_hex()
}

impl Encode for Quote {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.maker.encode_to(out);
        encode_seq(self.asset.as_bytes(), out);
        self.network_a.encode_to(out);
        self.network_b.encode_to(out);
        self.min_amount.encode_to(out);
        self.max_amount.encode_to(out);
        self.fee_ppm.encode_to(out);
        self.fee_fixed.encode_to(out);
        self.maker_a.encode_to(out);
        self.maker_b.encode_to(out);
        self.lock_time_ms.encode_to(out);
        self.delta_ms.encode_to(out);
        self.expires_ms.encode_to(out);
        self.nonce.encode_to(out);
    }

    fn encoded_len(&self) -> usize {
        32 + 4 + self.asset.len() + 32 + 32 + 8 + 8 + 4 + 8 + 32 + 32 + 8 + 8 + 8 + 8
    }
}

impl Decode for Quote {
    const MIN_ENCODED_LEN: usize = 32 + 4 + 32 + 32 + 8 + 8 + 4 + 8 + 32 + 32 + 8 + 8 + 8 + 8;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let maker = reader.read()?;
        let at = reader.position() + 4;
        let bytes: Vec<u8> = reader.seq("asset name bytes", MAX_ASSET_LEN)?;
        let asset = String::from_utf8(bytes).map_err(|error| {
            let offset = error.utf8_error().valid_up_to();
            DecodeError::UnknownKind {
                what: "asset name (UTF-8) byte",
                kind: error.as_bytes().get(offset).copied().unwrap_or_default(),
                at: at + offset,
            }
        })?;
        Ok(Quote {
            maker,
            asset,
            network_a: reader.read()?,
            network_b: reader.read()?,
            min_amount: reader.read()?,
            max_amount: reader.read()?,
            fee_ppm: reader.u32()?,
            fee_fixed: reader.read()?,
            maker_a: reader.read()?,
            maker_b: reader.read()?,
            lock_time_ms: reader.u64()?,
            delta_ms: reader.u64()?,
            expires_ms: reader.u64()?,
            nonce: reader.u64()?,
        })
    }
}

/// `quote ‖ signature (64)`.
impl Encode for SignedQuote {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.quote.encode_to(out);
        self.signature.encode_to(out);
    }

    fn encoded_len(&self) -> usize {
        self.quote.encoded_len() + 64
    }
}

impl Decode for SignedQuote {
    const MIN_ENCODED_LEN: usize = Quote::MIN_ENCODED_LEN + 64;

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SignedQuote {
            quote: reader.read()?,
            signature: reader.read()?,
        })
    }
}

#[cfg(test)]
mod tests;
