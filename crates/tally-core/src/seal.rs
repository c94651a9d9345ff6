//! Sealing coins for the LiveConnect transfer (DESIGN §7, PROTOCOL.md §10): the relay
//! carries message 24 and must learn nothing from it, and a sealed message must open only
//! in the room and at the message number it was sealed for, so it cannot be replayed
//! elsewhere in the conversation, and only with the pown deadline message 24 names beside
//! it, so nobody on the way can move the deadline (the receiver's open would fail).
//!
//! XChaCha20-Poly1305 with the connection file's 32-byte session key and a random 24-byte
//! nonce (large enough that random nonces never repeat); associated data
//! `TALLY-LIVE-SEAL-V2 ‖ room length u32 ‖ room UTF-8 ‖ message number u32 ‖ pown deadline
//! u64` (all little-endian). Sealed bytes are `nonce 24 ‖ ciphertext ‖ tag 16`.

use std::fmt;
use std::str::FromStr;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{CryptoRng, RngCore};

use crate::KeyError;
use crate::coin::{Coin, CoinError, decode_bundle, encode_bundle};

/// Domain tag at the start of the associated data.
pub const SEAL_TAG: &[u8] = b"TALLY-LIVE-SEAL-V2";
/// Bytes of the random nonce in front of the ciphertext.
pub const NONCE_LEN: usize = 24;
/// Bytes of the authentication tag after the ciphertext.
pub const TAG_LEN: usize = 16;
/// Largest sealed coin bundle [`open_coins`] accepts (and [`seal_coins`] makes): 4 MiB,
/// thousands of coins with their funding certificates, yet a bound on what a peer can make
/// the receiver decrypt and hold.
pub const MAX_SEALED_COINS_LEN: usize = 4 << 20;

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Too short to hold a nonce and a tag.
    #[error("sealed message of {len} bytes is too short (at least {min})")]
    TooShort { len: usize, min: usize },
    /// Larger than the bound for this kind of message.
    #[error("sealed message of {len} bytes is larger than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    /// The wrong key, room, message number or deadline, or altered bytes: AEAD cannot
    /// tell which.
    #[error(
        "the sealed message does not open: wrong session key, room, message number or pown deadline, or altered in transit"
    )]
    Rejected,
    /// The plaintext is too large for the cipher (never for anything Tally seals).
    #[error("the message is too large to seal")]
    Unsealable,
    /// It opened, but the coins inside are malformed or refused.
    #[error("the sealed coins are not valid: {0}")]
    Coins(#[from] CoinError),
}

/// The session key of one live transfer, from the connection file (64 hex digits). `Debug`
/// never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// A fresh key from `rng` (a cryptographic one: whoever guesses it reads the coins).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        SessionKey(key)
    }

    /// The key with these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        SessionKey(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

/// Lower-case hex, as the connection file holds it.
impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

/// Exactly 64 hex digits (surrounding whitespace ignored).
impl FromStr for SessionKey {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(KeyError::Length {
                expected: 64,
                got: text.chars().take(80).collect(),
            });
        }
        let mut key = [0u8; 32];
        hex::decode_to_slice(text, &mut key)
            .map_err(|_| KeyError::NotHex(text.chars().take(80).collect()))?;
        Ok(SessionKey(key))
    }
}

/// `TALLY-LIVE-SEAL-V2 ‖ room length u32 ‖ room ‖ message number u32 ‖ pown deadline u64`.
fn associated_data(room: &str, message_number: u32, pown_deadline_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEAL_TAG.len() + 4 + room.len() + 4 + 8);
    out.extend_from_slice(SEAL_TAG);
    // A room name longer than 4 GiB cannot reach here: the relay bounds it far lower.
    out.extend_from_slice(&u32::try_from(room.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(room.as_bytes());
    out.extend_from_slice(&message_number.to_le_bytes());
    out.extend_from_slice(&pown_deadline_ms.to_le_bytes());
    out
}

/// Seals `plaintext` for `room`, `message_number` and `pown_deadline_ms` (Unix ms; 0 where
/// a message names no deadline) under `key`, with a fresh random
/// nonce from `rng`: `nonce 24 ‖ ciphertext ‖ tag 16`.
pub fn seal<R: RngCore + CryptoRng>(
    key: &SessionKey,
    room: &str,
    message_number: u32,
    pown_deadline_ms: u64,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    seal_with_nonce(
        key,
        room,
        message_number,
        pown_deadline_ms,
        &nonce,
        plaintext,
    )
}

/// [`seal`] with a given nonce. Only for test vectors: a nonce used twice under one key
/// reveals both plaintexts.
pub fn seal_with_nonce(
    key: &SessionKey,
    room: &str,
    message_number: u32,
    pown_deadline_ms: u64,
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let aad = associated_data(room, message_number, pown_deadline_ms);
    let sealed = key
        .cipher()
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::Unsealable)?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal`] made with the same key, room, message number and deadline; anything
/// else (short input, another key, room, number or deadline, a changed byte) is refused.
pub fn open(
    key: &SessionKey,
    room: &str,
    message_number: u32,
    pown_deadline_ms: u64,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(SealError::TooShort {
            len: sealed.len(),
            min: NONCE_LEN + TAG_LEN,
        });
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let aad = associated_data(room, message_number, pown_deadline_ms);
    key.cipher()
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::Rejected)
}

/// Seals `coins` (their token bundle, [`encode_bundle`]) for message `message_number` of
/// the transfer in `room`, bound to the pown deadline that message carries. Refuses what a bundle refuses, and a result larger than
/// [`MAX_SEALED_COINS_LEN`] (the receiver would refuse it).
pub fn seal_coins<R: RngCore + CryptoRng>(
    key: &SessionKey,
    room: &str,
    message_number: u32,
    pown_deadline_ms: u64,
    coins: &[Coin],
    rng: &mut R,
) -> Result<Vec<u8>, SealError> {
    let bundle = encode_bundle(coins)?;
    let len = NONCE_LEN + bundle.len() + TAG_LEN;
    if len > MAX_SEALED_COINS_LEN {
        return Err(SealError::TooLarge {
            len,
            max: MAX_SEALED_COINS_LEN,
        });
    }
    seal(key, room, message_number, pown_deadline_ms, &bundle, rng)
}

/// Opens coins sealed by [`seal_coins`]: refuses input over [`MAX_SEALED_COINS_LEN`]
/// before decrypting, then whatever [`open`] and [`decode_bundle`] refuse.
pub fn open_coins(
    key: &SessionKey,
    room: &str,
    message_number: u32,
    pown_deadline_ms: u64,
    sealed: &[u8],
) -> Result<Vec<Coin>, SealError> {
    if sealed.len() > MAX_SEALED_COINS_LEN {
        return Err(SealError::TooLarge {
            len: sealed.len(),
            max: MAX_SEALED_COINS_LEN,
        });
    }
    let bundle = open(key, room, message_number, pown_deadline_ms, sealed)?;
    Ok(decode_bundle(&bundle)?)
}
