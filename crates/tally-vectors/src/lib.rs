//! PROTOCOL.md's test vectors, as the tests of every crate read them: the document is
//! compiled in, and each test compares what the code computes with what the document
//! shows, so that neither can change without the other.
//!
//! The document shows vectors in three forms, each with a reader here:
//! - a value under a label, `- **name**:` followed by a code block whose first line is
//!   the value ([`labelled`]);
//! - a code block of `name = value` lines (```` ```vectors ````, [`assignments`]);
//! - a code block of `name field field…` lines, a value continuing on indented lines
//!   ([`fields`]).
//!
//! Test support only: the readers panic, naming what is missing, when the document does
//! not have what a test asks for.

#![allow(clippy::panic)]

use std::collections::BTreeMap;

use tally_core::{Amount, Mode, NetworkContract, SecretKey, ValidatorInfo};

/// PROTOCOL.md, as this build's tests see it.
pub const PROTOCOL: &str = include_str!("../../../PROTOCOL.md");

/// The contract of PROTOCOL.md §6's vectors: network `vectors`, faucet 10 cash, 8-bit
/// intro proofs, validator i's secret key seed 32 bytes of `0x10 + i`, at
/// `127.0.0.1:(2222 + 2i)`.
pub fn vector_contract() -> NetworkContract {
    NetworkContract {
        name: "vectors".into(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: Amount::from_microcash(10_000_000),
        intro_pow_bits: 8,
        validators: (0..4u8)
            .map(|i| ValidatorInfo {
                key: SecretKey::from_bytes([0x10 + i; 32]).account(),
                address: format!("127.0.0.1:{}", 2222 + 2 * u16::from(i)),
            })
            .collect(),
        tracker: None,
        genesis: vec![],
        pow: None,
        max_clock_skew_ms: None,
    }
}

/// The value under the label `- **name**:`: the first line of the code block after it. The
/// label must appear exactly once.
pub fn labelled(name: &str) -> &'static str {
    let label = format!("- **{name}**:");
    let mut found = PROTOCOL.match_indices(&label);
    let (Some((at, _)), None) = (found.next(), found.next()) else {
        panic!("PROTOCOL.md must have exactly one {label}");
    };
    let after = &PROTOCOL[at + label.len()..];
    let Some(open) = after.find("```") else {
        panic!("PROTOCOL.md: a code block after {label}");
    };
    match after[open..].lines().nth(1) {
        Some(line) => line.trim(),
        None => panic!("PROTOCOL.md: a value line in the code block after {label}"),
    }
}

/// The hex value under the label `- **name**:`, as bytes.
pub fn labelled_bytes(name: &str) -> Vec<u8> {
    hex_bytes(labelled(name)).unwrap_or_else(|| panic!("PROTOCOL.md: {name} is not hex"))
}

/// The `name = value` lines of the code block opened by ```` ```block ````.
pub fn assignments(block: &str) -> BTreeMap<String, String> {
    body(block)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// The named values of the code block opened by ```` ```block ````: a line starting with
/// a name starts a value, an indented line continues it, and spaces only separate fields.
pub fn fields(block: &str) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    let mut current = None;
    for line in body(block).lines() {
        let mut words = line.split_whitespace();
        if !line.starts_with(' ') {
            current = words.next().map(str::to_owned);
        }
        let Some(name) = current.clone() else {
            panic!("PROTOCOL.md: a value in ```{block} starts with its name");
        };
        values.entry(name).or_insert_with(String::new).extend(words);
    }
    values
}

/// The text of the code block opened by ```` ```block ```` (the block's name alone on its
/// line).
fn body(block: &str) -> &'static str {
    let open = format!("```{block}\n");
    let Some(start) = PROTOCOL.find(&open) else {
        panic!("PROTOCOL.md: a ```{block} block");
    };
    let rest = &PROTOCOL[start + open.len()..];
    let Some(end) = rest.find("```") else {
        panic!("PROTOCOL.md: the ```{block} block ends");
    };
    &rest[..end]
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The readers find what the document holds, and read it as the tests expect.
    #[test]
    fn the_readers_find_the_documented_vectors() {
        assert_eq!(labelled("intro digest").len(), 64);
        assert_eq!(labelled_bytes("intro digest").len(), 32);
        assert!(!assignments("vectors").is_empty());
        assert!(!fields("ledger-vectors").is_empty());
        assert_eq!(hex_bytes("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(hex_bytes("0g"), None);
        assert_eq!(hex_bytes("abc"), None);
    }
}
