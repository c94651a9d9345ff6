//! Bearer coins (DESIGN §7): an ordinary account on one network whose secret key travels
//! with the coin and which holds exactly its denomination. The validators never see a coin
//! as anything special; this module is the wallet's vocabulary for them: denominations, how
//! an amount breaks into coins, and the coin's canonical bytes (PROTOCOL.md §10). The coin
//! file and the copy-pasteable token live in [`file`] and [`token`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::amount::MICROCASH_PER_CASH;
use crate::codec::{Decode, DecodeError, Encode, Reader};
use crate::{AccountId, Amount, Certificate, NetworkId, SecretKey};

pub mod file;
pub mod token;

pub use file::{COIN_FILE_FORMAT, CoinFile};
pub use token::{TOKEN_PREFIX, decode_bundle, decode_token, encode_bundle, encode_token};

/// Most coins one coin file or token may hold: far more than anyone hands over at once, and
/// small enough that a hostile file cannot make a wallet allocate much.
pub const MAX_COINS_PER_FILE: usize = 10_000;

/// Most coins [`fewest_coins`] will return: an amount needing more is refused rather than
/// made into a list a wallet could not hand over in one file anyway (2.5 million cash).
pub const MAX_COINS_PER_AMOUNT: usize = MAX_COINS_PER_FILE;

/// The version byte in front of a coin's canonical bytes.
pub const COIN_VERSION: u8 = 1;

/// Why coins, a coin file or a token were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoinError {
    /// Zero cannot be made of coins.
    #[error("an amount paid in coins must be more than zero")]
    ZeroAmount,
    /// Coins only come in whole cash.
    #[error(
        "{0} cash is not a whole number of cash: coins come in 1, 5, 25, 100 and 250 cash only"
    )]
    NotWholeCash(Amount),
    /// The amount needs more coins than one split may make.
    #[error("{amount} cash needs {needed} coins, at most {max} are made at once")]
    TooManyCoins {
        amount: Amount,
        needed: u64,
        max: usize,
    },
    /// A value that is not one of the five denominations.
    #[error("{0:?} is not a coin denomination (1, 5, 25, 100 or 250 cash)")]
    NotADenomination(String),
    /// A token or coin file must hold at least one coin.
    #[error("no coins: a coin token or coin file holds at least one coin")]
    NoCoins,
    /// One token or file holds coins of one network only.
    #[error("coins of two networks ({first} and {other}) cannot share one token or coin file")]
    MixedNetworks { first: NetworkId, other: NetworkId },
    /// Too many coins for one token or file.
    #[error("{count} coins, at most {max} fit in one token or coin file")]
    TooManyInBundle { count: usize, max: usize },
    /// The same coin twice would count its value twice.
    #[error("coin {0} appears twice")]
    DuplicateCoin(AccountId),
    /// The text is not a coin token of this version.
    #[error("not a coin token: a token starts with {expected:?}, this starts with {found:?}")]
    UnknownPrefix {
        expected: &'static str,
        found: String,
    },
    /// The token's body is not base64url without padding.
    #[error("the coin token is not valid base64url (without padding): {0}")]
    BadBase64(String),
    /// The binary form is malformed (truncated, trailing bytes, bad byte values).
    #[error("the coin bytes are malformed: {0}")]
    Malformed(#[from] DecodeError),
    /// A coin file of a format this version does not read.
    #[error("unknown coin file format {found:?}: expected {expected:?}")]
    UnknownFormat {
        expected: &'static str,
        found: String,
    },
    /// The coin file is not valid JSON of the expected shape.
    #[error("the coin file is not valid: {0}")]
    Json(String),
}

/// A coin's value: one of CloudCoin's five denominations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Denomination {
    /// 1 cash.
    One,
    /// 5 cash.
    Five,
    /// 25 cash.
    TwentyFive,
    /// 100 cash.
    Hundred,
    /// 250 cash.
    TwoFifty,
}

impl Denomination {
    /// Every denomination, largest first (the order the greedy breakdown tries them in).
    pub const ALL: [Denomination; 5] = [
        Denomination::TwoFifty,
        Denomination::Hundred,
        Denomination::TwentyFive,
        Denomination::Five,
        Denomination::One,
    ];

    /// Its value in whole cash (also its byte in the binary forms).
    pub const fn cash(self) -> u64 {
        match self {
            Denomination::One => 1,
            Denomination::Five => 5,
            Denomination::TwentyFive => 25,
            Denomination::Hundred => 100,
            Denomination::TwoFifty => 250,
        }
    }

    /// Its value: what the coin's account holds.
    pub const fn amount(self) -> Amount {
        Amount::from_microcash(self.cash() * MICROCASH_PER_CASH)
    }

    /// The denomination worth `cash` whole cash, if there is one.
    pub fn from_cash(cash: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.cash() == cash)
    }

    /// The denomination worth exactly `amount`, if there is one.
    pub fn from_amount(amount: Amount) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.amount() == amount)
    }
}

/// "25 cash".
impl fmt::Display for Denomination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cash", self.cash())
    }
}

/// Parses the number of cash, with or without the unit: "25" or "25 cash".
impl FromStr for Denomination {
    type Err = CoinError;
    fn from_str(text: &str) -> Result<Self, CoinError> {
        let number = text.trim();
        let number = number.strip_suffix("cash").unwrap_or(number).trim_end();
        number
            .parse::<u64>()
            .ok()
            .filter(|_| number.bytes().all(|b| b.is_ascii_digit()))
            .and_then(Self::from_cash)
            .ok_or_else(|| CoinError::NotADenomination(text.to_owned()))
    }
}

/// JSON: the number of cash (`25`).
impl Serialize for Denomination {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.cash())
    }
}

impl<'de> Deserialize<'de> for Denomination {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let cash = u64::deserialize(d)?;
        Self::from_cash(cash)
            .ok_or_else(|| serde::de::Error::custom(CoinError::NotADenomination(cash.to_string())))
    }
}

/// One byte: the number of cash (1, 5, 25, 100 or 250); any other byte is refused.
impl Encode for Denomination {
    fn encode_to(&self, out: &mut Vec<u8>) {
        // Every denomination is at most 250, so it fits the byte.
        out.push(self.cash() as u8);
    }
    fn encoded_len(&self) -> usize {
        1
    }
}

impl Decode for Denomination {
    const MIN_ENCODED_LEN: usize = 1;
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = reader.position();
        let byte = reader.u8()?;
        Self::from_cash(u64::from(byte)).ok_or(DecodeError::UnknownKind {
            what: "denomination",
            kind: byte,
            at,
        })
    }
}

/// The fewest coins worth exactly `amount`, largest first. CloudCoin's set is canonical, so
/// taking the largest coin that fits at each step is optimal (a test checks this against an
/// exhaustive search). Refuses zero, amounts that are not whole cash, and amounts needing
/// more than [`MAX_COINS_PER_AMOUNT`] coins.
pub fn fewest_coins(amount: Amount) -> Result<Vec<Denomination>, CoinError> {
    if amount.is_zero() {
        return Err(CoinError::ZeroAmount);
    }
    if !amount.microcash().is_multiple_of(MICROCASH_PER_CASH) {
        return Err(CoinError::NotWholeCash(amount));
    }
    let cash = amount.microcash() / MICROCASH_PER_CASH;
    let counts = greedy_counts(cash, &Denomination::ALL);
    let needed: u64 = counts.iter().map(|(_, n)| n).sum();
    if needed > MAX_COINS_PER_AMOUNT as u64 {
        return Err(CoinError::TooManyCoins {
            amount,
            needed,
            max: MAX_COINS_PER_AMOUNT,
        });
    }
    Ok(expand(&counts))
}

/// The fewest coins of smaller denominations worth exactly `coin`, largest first: what
/// changing (breaking) a coin makes. A 1-cash coin cannot be broken: empty.
pub fn break_down(coin: Denomination) -> Vec<Denomination> {
    let smaller: Vec<Denomination> = Denomination::ALL
        .into_iter()
        .filter(|d| *d < coin)
        .collect();
    if smaller.is_empty() {
        return Vec::new();
    }
    expand(&greedy_counts(coin.cash(), &smaller))
}

/// How many of each of `set` (largest first, ending with 1) the greedy choice takes.
fn greedy_counts(mut cash: u64, set: &[Denomination]) -> Vec<(Denomination, u64)> {
    set.iter()
        .map(|&d| {
            let n = cash / d.cash();
            cash %= d.cash();
            (d, n)
        })
        .collect()
}

fn expand(counts: &[(Denomination, u64)]) -> Vec<Denomination> {
    counts
        .iter()
        .flat_map(|&(d, n)| std::iter::repeat_n(d, usize::try_from(n).unwrap_or(0)))
        .collect()
}

/// A bearer coin: whoever holds `secret` owns the `denomination` its account holds on
/// `network`. `funding` is the certificate that paid it, when known (a receiver can check
/// it offline against the contract; it is not proof the coin is unspent).
#[derive(Clone, Debug)]
pub struct Coin {
    /// The one network the coin's account lives on.
    pub network: NetworkId,
    /// What the account holds while the coin is unspent.
    pub denomination: Denomination,
    /// The account's secret key: whoever holds it owns the coin.
    pub secret: SecretKey,
    /// The certificate that paid the coin, if known.
    pub funding: Option<Certificate>,
}

impl Coin {
    /// A fresh coin key of `denomination` on `network`, not yet funded.
    pub fn generate(network: NetworkId, denomination: Denomination) -> Self {
        Coin {
            network,
            denomination,
            secret: SecretKey::generate(),
            funding: None,
        }
    }

    /// The coin's account on its network (the key its secret controls).
    pub fn account(&self) -> AccountId {
        self.secret.account()
    }

    /// What the coin is worth.
    pub fn amount(&self) -> Amount {
        self.denomination.amount()
    }
}

/// Two coins are the same when every field is, the secret compared by its bytes.
impl PartialEq for Coin {
    fn eq(&self, other: &Self) -> bool {
        self.network == other.network
            && self.denomination == other.denomination
            && self.secret.to_bytes() == other.secret.to_bytes()
            && self.funding == other.funding
    }
}

impl Eq for Coin {}

/// The fewest bytes of a coin without its network: denomination, secret, funding flag.
pub(crate) const COIN_BODY_MIN_LEN: usize = 1 + 32 + 1;

/// `denomination u8 ‖ secret 32 ‖ flag u8 ‖ [certificate]`: a coin without its network
/// (shared by the coin's own encoding and a token's bundle).
pub(crate) fn encode_body(coin: &Coin, out: &mut Vec<u8>) {
    coin.denomination.encode_to(out);
    coin.secret.to_bytes().encode_to(out);
    coin.funding.is_some().encode_to(out);
    if let Some(certificate) = &coin.funding {
        certificate.encode_to(out);
    }
}

pub(crate) fn body_len(coin: &Coin) -> usize {
    COIN_BODY_MIN_LEN + coin.funding.as_ref().map_or(0, Encode::encoded_len)
}

pub(crate) fn decode_body(
    network: NetworkId,
    reader: &mut Reader<'_>,
) -> Result<Coin, DecodeError> {
    let denomination = reader.read()?;
    let secret = SecretKey::from_bytes(reader.array()?);
    let funding = if reader.bool()? {
        Some(reader.read()?)
    } else {
        None
    };
    Ok(Coin {
        network,
        denomination,
        secret,
        funding,
    })
}

/// `version u8 (= 1) ‖ network 32 ‖ denomination u8 ‖ secret 32 ‖ flag u8 ‖ [certificate]`:
/// one coin, as a wallet stores it.
impl Encode for Coin {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.push(COIN_VERSION);
        self.network.encode_to(out);
        encode_body(self, out);
    }
    fn encoded_len(&self) -> usize {
        1 + 32 + body_len(self)
    }
}

impl Decode for Coin {
    const MIN_ENCODED_LEN: usize = 1 + 32 + COIN_BODY_MIN_LEN;
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = reader.position();
        match reader.u8()? {
            COIN_VERSION => {
                let network = reader.read()?;
                decode_body(network, reader)
            }
            kind => Err(DecodeError::UnknownKind {
                what: "coin version",
                kind,
                at,
            }),
        }
    }
}
