//! The coin file (PROTOCOL.md §10): what `tally wallet coins export --out` writes, JSON a
//! person can read, holding coins of one network.
//!
//! `{"Format":"tally-coins-v1","Network":hex,"Coins":[{"Denomination":25,"Secret":hex,
//! "Funding":<certificate JSON, or absent>}]}`

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::token::check_bundle;
use super::{Coin, CoinError, Denomination, MAX_COINS_PER_FILE};
use crate::{Certificate, NetworkId, SecretKey};

/// The `Format` of a coin file this version writes and reads.
pub const COIN_FILE_FORMAT: &str = "tally-coins-v1";

/// Coins of one network, as a coin file holds them: at least one, at most
/// [`MAX_COINS_PER_FILE`], no coin twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinFile {
    coins: Vec<Coin>,
}

impl CoinFile {
    /// A file of `coins`; refuses what a coin file may not hold (none, too many, mixed
    /// networks, duplicates), so that every file written can be read back.
    pub fn new(coins: Vec<Coin>) -> Result<Self, CoinError> {
        check_bundle(&coins)?;
        Ok(CoinFile { coins })
    }

    /// The network all its coins are on.
    pub fn network(&self) -> NetworkId {
        // `new` and parsing both refuse an empty file.
        self.coins[0].network
    }

    /// Its coins, in file order.
    pub fn coins(&self) -> &[Coin] {
        &self.coins
    }

    /// Its coins, taken out.
    pub fn into_coins(self) -> Vec<Coin> {
        self.coins
    }

    /// The file's text (pretty-printed JSON, one field a line, for a person to read).
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and numbers to a String cannot fail.
        serde_json::to_string_pretty(&RawCoinFile::from(self)).unwrap_or_default()
    }

    /// Parses a coin file's text: refuses an unknown format, unknown fields, bad hex,
    /// wrong lengths, an unknown denomination, and what [`CoinFile::new`] refuses.
    pub fn from_json(text: &str) -> Result<Self, CoinError> {
        let raw: RawCoinFile =
            serde_json::from_str(text).map_err(|e| CoinError::Json(e.to_string()))?;
        Self::try_from(raw)
    }
}

impl Serialize for CoinFile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RawCoinFile::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for CoinFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawCoinFile::deserialize(d)?;
        Self::try_from(raw).map_err(serde::de::Error::custom)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoinFile {
    #[serde(rename = "Format")]
    format: String,
    #[serde(rename = "Network")]
    network: NetworkId,
    #[serde(rename = "Coins", deserialize_with = "bounded_coins")]
    coins: Vec<RawCoin>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoin {
    #[serde(rename = "Denomination")]
    denomination: Denomination,
    #[serde(rename = "Secret", with = "secret_hex")]
    secret: SecretKey,
    #[serde(rename = "Funding", default, skip_serializing_if = "Option::is_none")]
    funding: Option<Certificate>,
}

impl From<&CoinFile> for RawCoinFile {
    fn from(file: &CoinFile) -> Self {
        RawCoinFile {
            format: COIN_FILE_FORMAT.to_owned(),
            network: file.network(),
            coins: file
                .coins
                .iter()
                .map(|coin| RawCoin {
                    denomination: coin.denomination,
                    secret: coin.secret.clone(),
                    funding: coin.funding.clone(),
                })
                .collect(),
        }
    }
}

impl TryFrom<RawCoinFile> for CoinFile {
    type Error = CoinError;
    fn try_from(raw: RawCoinFile) -> Result<Self, CoinError> {
        if raw.format != COIN_FILE_FORMAT {
            return Err(CoinError::UnknownFormat {
                expected: COIN_FILE_FORMAT,
                found: raw.format.chars().take(80).collect(),
            });
        }
        let network = raw.network;
        CoinFile::new(
            raw.coins
                .into_iter()
                .map(|c| Coin {
                    network,
                    denomination: c.denomination,
                    secret: c.secret,
                    funding: c.funding,
                })
                .collect(),
        )
    }
}

/// Reads the `Coins` array, refusing it as soon as it holds more than
/// [`MAX_COINS_PER_FILE`] coins instead of after reading them all.
fn bounded_coins<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RawCoin>, D::Error> {
    struct Bounded;
    impl<'de> Visitor<'de> for Bounded {
        type Value = Vec<RawCoin>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an array of at most {MAX_COINS_PER_FILE} coins")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<RawCoin>, A::Error> {
            let mut coins = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(coin) = seq.next_element()? {
                if coins.len() == MAX_COINS_PER_FILE {
                    return Err(serde::de::Error::custom(CoinError::TooManyInBundle {
                        count: MAX_COINS_PER_FILE + 1,
                        max: MAX_COINS_PER_FILE,
                    }));
                }
                coins.push(coin);
            }
            Ok(coins)
        }
    }
    d.deserialize_seq(Bounded)
}

/// A coin's secret as exactly 64 hex digits (no whitespace, either case).
mod secret_hex {
    use super::*;

    pub fn serialize<S: Serializer>(secret: &SecretKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&secret.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretKey, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() != 64 {
            return Err(serde::de::Error::custom(format!(
                "a coin secret is 64 hex digits, got {}",
                text.len()
            )));
        }
        let mut seed = [0u8; 32];
        hex::decode_to_slice(&text, &mut seed)
            .map_err(|_| serde::de::Error::custom("a coin secret is not hexadecimal"))?;
        Ok(SecretKey::from_bytes(seed))
    }
}
