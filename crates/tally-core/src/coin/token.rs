//! The coin token: a bundle of coins of one network as one copy-pasteable string
//! (PROTOCOL.md §10). `tallycoin1` names the format and its version; the body is
//! base64url without padding of the bundle's binary form, which the LiveConnect transfer
//! also seals ([`crate::seal`]).

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{
    COIN_BODY_MIN_LEN, Coin, CoinError, MAX_COINS_PER_FILE, body_len, decode_body, encode_body,
};
use crate::NetworkId;
use crate::codec::{Encode, Reader};

/// What every token starts with: the format and its version (`1`).
pub const TOKEN_PREFIX: &str = "tallycoin1";

/// Checks what every bundle must be: at least one coin, at most [`MAX_COINS_PER_FILE`],
/// all of one network, no coin twice. Returns the network.
pub(crate) fn check_bundle(coins: &[Coin]) -> Result<NetworkId, CoinError> {
    let first = coins.first().ok_or(CoinError::NoCoins)?;
    if coins.len() > MAX_COINS_PER_FILE {
        return Err(CoinError::TooManyInBundle {
            count: coins.len(),
            max: MAX_COINS_PER_FILE,
        });
    }
    let mut seen = HashSet::with_capacity(coins.len());
    for coin in coins {
        if coin.network != first.network {
            return Err(CoinError::MixedNetworks {
                first: first.network,
                other: coin.network,
            });
        }
        if !seen.insert(coin.secret.to_bytes()) {
            return Err(CoinError::DuplicateCoin(coin.account()));
        }
    }
    Ok(first.network)
}

/// `network 32 ‖ count u32 ‖ (denomination u8 ‖ secret 32 ‖ flag u8 ‖ [certificate])*`:
/// coins of one network in one binary string. Refuses what [`decode_bundle`] would refuse.
pub fn encode_bundle(coins: &[Coin]) -> Result<Vec<u8>, CoinError> {
    let network = check_bundle(coins)?;
    let len = 32 + 4 + coins.iter().map(body_len).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    network.encode_to(&mut out);
    // At most MAX_COINS_PER_FILE coins, checked above.
    (coins.len() as u32).encode_to(&mut out);
    for coin in coins {
        encode_body(coin, &mut out);
    }
    Ok(out)
}

/// Reads a bundle written by [`encode_bundle`]: strict (no trailing bytes), the count
/// bounded before anything is allocated, and refused if empty or holding a coin twice.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<Coin>, CoinError> {
    let mut reader = Reader::new(bytes);
    let network: NetworkId = reader.read()?;
    let count = reader.count("coins", MAX_COINS_PER_FILE, COIN_BODY_MIN_LEN)?;
    if count == 0 {
        return Err(CoinError::NoCoins);
    }
    let mut coins = Vec::with_capacity(count);
    for _ in 0..count {
        coins.push(decode_body(network, &mut reader)?);
    }
    reader.finish()?;
    check_bundle(&coins)?;
    Ok(coins)
}

/// The token for `coins`: [`TOKEN_PREFIX`] then base64url (no padding) of their bundle.
/// Refuses no coins, too many, mixed networks and duplicates.
pub fn encode_token(coins: &[Coin]) -> Result<String, CoinError> {
    let bundle = encode_bundle(coins)?;
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + bundle.len().div_ceil(3) * 4);
    token.push_str(TOKEN_PREFIX);
    URL_SAFE_NO_PAD.encode_string(&bundle, &mut token);
    Ok(token)
}

/// The coins of a token (surrounding whitespace ignored). Refuses an unknown prefix,
/// invalid base64url, and every malformed bundle [`decode_bundle`] refuses.
pub fn decode_token(text: &str) -> Result<Vec<Coin>, CoinError> {
    let text = text.trim();
    let body = text
        .strip_prefix(TOKEN_PREFIX)
        .ok_or_else(|| CoinError::UnknownPrefix {
            expected: TOKEN_PREFIX,
            found: text.chars().take(TOKEN_PREFIX.len()).collect(),
        })?;
    let bundle = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|e| CoinError::BadBase64(e.to_string()))?;
    decode_bundle(&bundle)
}
