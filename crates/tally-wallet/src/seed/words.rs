//! The recovery phrase: BIP-39 English words, and the seed they stand for.

use std::fmt;
use std::str::FromStr;

use bip39::Language;
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::SeedError;

/// A BIP-39 recovery phrase of 12 or 24 English words. New wallets get 24 (256 bits of
/// entropy); 12 are accepted because other wallets hand them out. Its `Debug` never prints
/// the words, and its memory is wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Mnemonic(bip39::Mnemonic);

impl Mnemonic {
    /// 24 fresh words from the operating system's random source: the one secret every key
    /// of a new wallet comes from.
    pub fn generate() -> Result<Self, SeedError> {
        let mut entropy = Zeroizing::new([0u8; 32]);
        OsRng
            .try_fill_bytes(entropy.as_mut())
            .map_err(|e| SeedError::Randomness(e.to_string()))?;
        Self::from_entropy(entropy.as_ref())
    }

    /// The words for `entropy` (16 or 32 bytes), as stored in `seed.json`.
    pub(super) fn from_entropy(entropy: &[u8]) -> Result<Self, SeedError> {
        if entropy.len() != 16 && entropy.len() != 32 {
            return Err(SeedError::WrongWordCount {
                count: entropy.len() * 3 / 4,
            });
        }
        bip39::Mnemonic::from_entropy_in(Language::English, entropy)
            .map(Self)
            .map_err(|_| SeedError::WrongWordCount {
                count: entropy.len() * 3 / 4,
            })
    }

    /// Reads words as a person types them: any case, any whitespace between them.
    /// Refuses a count other than 12 or 24, a word outside the English list (naming its
    /// position, counted from 1) and a wrong checksum.
    pub fn parse(text: &str) -> Result<Self, SeedError> {
        let lower = Zeroizing::new(text.to_lowercase());
        let words: Vec<&str> = lower.split_whitespace().collect();
        if words.len() != 12 && words.len() != 24 {
            return Err(SeedError::WrongWordCount { count: words.len() });
        }
        if let Some(position) = words
            .iter()
            .position(|word| Language::English.find_word(word).is_none())
        {
            return Err(SeedError::UnknownWord {
                position: position + 1,
            });
        }
        let joined = Zeroizing::new(words.join(" "));
        bip39::Mnemonic::parse_in_normalized(Language::English, &joined)
            .map(Self)
            .map_err(|e| match e {
                bip39::Error::BadWordCount(count) => SeedError::WrongWordCount { count },
                bip39::Error::UnknownWord(index) => SeedError::UnknownWord {
                    position: index + 1,
                },
                _ => SeedError::BadChecksum,
            })
    }

    /// The words, in order, for showing once to the person who must write them down.
    pub fn words(&self) -> Vec<&'static str> {
        self.0.words().collect()
    }

    /// How many words (12 or 24).
    pub fn word_count(&self) -> usize {
        self.0.word_count()
    }

    /// The 64-byte BIP-39 seed (PBKDF2-HMAC-SHA512 of the words and `"mnemonic"` ‖
    /// `bip39_passphrase`, NFKD-normalized). Tally wallets use the empty passphrase; a
    /// different one gives a different, equally valid seed. Wiped when dropped.
    pub fn to_seed(&self, bip39_passphrase: &str) -> Zeroizing<[u8; 64]> {
        Zeroizing::new(self.0.to_seed(bip39_passphrase))
    }

    /// The entropy the words encode (16 or 32 bytes), which is what `seed.json` stores.
    pub(super) fn entropy(&self) -> Zeroizing<Vec<u8>> {
        let (bytes, len) = self.0.to_entropy_array();
        let bytes = Zeroizing::new(bytes);
        Zeroizing::new(bytes[..len].to_vec())
    }
}

impl FromStr for Mnemonic {
    type Err = SeedError;
    fn from_str(text: &str) -> Result<Self, SeedError> {
        Self::parse(text)
    }
}

impl fmt::Debug for Mnemonic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mnemonic({} words)", self.word_count())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The BIP-39 reference vector for all-zero entropy: 23 × "abandon" then "art".
    const ZERO_24: &str = "abandon abandon abandon abandon abandon abandon abandon abandon \
        abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
        abandon abandon abandon abandon abandon art";

    /// Generated phrases are 24 words, and two draws differ (the source is random).
    #[test]
    fn generate_gives_24_fresh_words() {
        let a = Mnemonic::generate().unwrap();
        let b = Mnemonic::generate().unwrap();
        assert_eq!(a.word_count(), 24);
        assert_eq!(a.words().len(), 24);
        assert_ne!(a.words(), b.words());
    }

    /// Words survive being printed and typed back, even in another case with ragged spacing.
    #[test]
    fn words_round_trip_through_sloppy_typing() {
        let m = Mnemonic::generate().unwrap();
        let typed = format!("  {} \n", m.words().join("   \t").to_uppercase());
        let back = Mnemonic::parse(&typed).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.to_seed("")[..], m.to_seed("")[..]);
    }

    /// The entropy stored in the seed file gives the same words back.
    #[test]
    fn entropy_round_trip() {
        let m = Mnemonic::generate().unwrap();
        assert_eq!(Mnemonic::from_entropy(&m.entropy()).unwrap(), m);
        assert_eq!(m.entropy().len(), 32);
    }

    /// The BIP-39 reference vectors (entropy 00…00, passphrase "TREZOR") hold, so the seed
    /// matches every other BIP-39 implementation.
    #[test]
    fn bip39_reference_vectors() {
        let m = Mnemonic::parse(ZERO_24).unwrap();
        assert_eq!(m.entropy().as_slice(), &[0u8; 32]);
        assert_eq!(
            hex::encode(m.to_seed("TREZOR")),
            "bda85446c68413707090a52022edd26a1c9462295029f2e60cd7c4f2bbd3097170af7a4d73245cafa9c3cca8d561a7c3de6f5d4a10be8ed2a5e608d68f92fcc8"
        );
        let twelve = Mnemonic::parse(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
             abandon about",
        )
        .unwrap();
        assert_eq!(twelve.word_count(), 12);
        assert_eq!(
            hex::encode(twelve.to_seed("TREZOR")),
            "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"
        );
    }

    /// A count other than 12 or 24 is refused, including BIP-39's 15, 18 and 21.
    #[test]
    fn wrong_counts_refused() {
        for count in [0, 1, 11, 13, 15, 18, 21, 23, 25] {
            let text = vec!["abandon"; count].join(" ");
            assert!(matches!(
                Mnemonic::parse(&text),
                Err(SeedError::WrongWordCount { count: c }) if c == count
            ));
        }
    }

    /// A misspelled word is named by its position, counted from 1.
    #[test]
    fn unknown_word_named_by_position() {
        let text = ZERO_24
            .replacen("abandon", "abandonn", 3)
            .replacen("abandonn", "abandon", 2);
        assert!(matches!(
            Mnemonic::parse(&text),
            Err(SeedError::UnknownWord { position: 3 })
        ));
    }

    /// Valid words with the wrong checksum are refused.
    #[test]
    fn bad_checksum_refused() {
        let text = ZERO_24.replace("art", "abandon");
        assert!(matches!(
            Mnemonic::parse(&text),
            Err(SeedError::BadChecksum)
        ));
    }

    /// `Debug` never shows a word.
    #[test]
    fn debug_hides_words() {
        let m = Mnemonic::parse(ZERO_24).unwrap();
        let shown = format!("{m:?}");
        assert!(!shown.contains("abandon"));
        assert!(shown.contains("24"));
    }
}
