//! The seed as a wallet uses it: create, reopen, restore from the words, and fresh keys that
//! never repeat across restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;

use proptest::prelude::*;
use tally_core::{Digest, NetworkId};
use tally_wallet::seed::{
    KdfCost, KeyCounters, KeyPurpose, Mnemonic, SeedError, SeedFile, SeedKeys, derive_key,
};

const CHEAP: KdfCost = KdfCost {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

fn network(byte: u8) -> NetworkId {
    NetworkId(Digest::from([byte; 32]))
}

fn new_wallet(dir: &Path, passphrase: Option<&str>) -> Mnemonic {
    let words = Mnemonic::generate().unwrap();
    SeedFile::create_with_cost(dir, &words, passphrase, CHEAP).unwrap();
    words
}

/// Restoring from the words into an empty folder gives back exactly the keys the first
/// wallet handed out, and `set_at_least` keeps the restored wallet from reusing them.
#[test]
fn restore_from_words_finds_the_same_keys() {
    let first = tempfile::tempdir().unwrap();
    let words = new_wallet(first.path(), Some("pass"));
    let net = network(7);
    let mut keys = SeedKeys::open(first.path(), Some("pass")).unwrap();
    let handed_out: Vec<_> = (0..4)
        .map(|_| keys.next_key(&net, KeyPurpose::Coin).unwrap().1.account())
        .collect();

    let typed = words.words().join(" ");
    let second = tempfile::tempdir().unwrap();
    let file = SeedFile::create(second.path(), &Mnemonic::parse(&typed).unwrap(), None).unwrap();
    let mut restored = SeedKeys::from_file(second.path(), file).unwrap();
    let found: Vec<_> = (0..4)
        .map(|i| restored.key_at(&net, KeyPurpose::Coin, i).account())
        .collect();
    assert_eq!(found, handed_out);
    restored
        .set_at_least(&net, KeyPurpose::Coin, found.len() as u64)
        .unwrap();
    let (index, key) = restored.next_key(&net, KeyPurpose::Coin).unwrap();
    assert_eq!(index, 4);
    assert!(!handed_out.contains(&key.account()));
}

/// An encrypted wallet's keys need the passphrase; a wrong one opens nothing.
#[test]
fn sealed_wallet_needs_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let words = new_wallet(dir.path(), Some("hunter2"));
    assert!(matches!(
        SeedKeys::open(dir.path(), None),
        Err(SeedError::PassphraseRequired(_))
    ));
    assert!(matches!(
        SeedKeys::open(dir.path(), Some("hunter3")),
        Err(SeedError::WrongPassphrase(_))
    ));
    let keys = SeedKeys::open(dir.path(), Some("hunter2")).unwrap();
    let net = network(1);
    assert_eq!(
        keys.key_at(&net, KeyPurpose::Account, 0).to_bytes(),
        derive_key(&words.to_seed(""), &net, KeyPurpose::Account, 0).to_bytes()
    );
}

/// What one step of the wallet's life does.
#[derive(Clone, Debug)]
enum Step {
    Next(u8, KeyPurpose),
    /// Several keys reserved together (a batch of powns).
    Many(u8, KeyPurpose, u8),
    Raise(u8, KeyPurpose, u8),
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    let purpose = prop_oneof![Just(KeyPurpose::Account), Just(KeyPurpose::Coin)];
    prop_oneof![
        4 => (0u8..3, purpose.clone()).prop_map(|(n, p)| Step::Next(n, p)),
        2 => (0u8..3, purpose.clone(), 0u8..40).prop_map(|(n, p, c)| Step::Many(n, p, c)),
        1 => (0u8..3, purpose, any::<u8>()).prop_map(|(n, p, to)| Step::Raise(n, p, to)),
        2 => Just(Step::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever mix of fresh keys (one at a time or reserved together), restore raises and restarts, no (network, purpose,
    /// index) and no key is ever handed out twice, and the counters on disk always match.
    #[test]
    fn next_key_never_repeats_across_reopen(steps in prop::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let words = new_wallet(dir.path(), None);
        let mut keys = SeedKeys::open(dir.path(), None).unwrap();
        let mut slots = HashSet::new();
        let mut accounts = HashSet::new();
        for step in steps {
            match step {
                Step::Next(n, purpose) => {
                    let (index, key) = keys.next_key(&network(n), purpose).unwrap();
                    prop_assert!(slots.insert((n, purpose, index)));
                    prop_assert!(accounts.insert(key.account()));
                }
                Step::Many(n, purpose, count) => {
                    let seed = words.to_seed("");
                    for (index, key) in keys.next_keys(&network(n), purpose, usize::from(count)).unwrap() {
                        prop_assert!(slots.insert((n, purpose, index)));
                        prop_assert!(accounts.insert(key.account()));
                        prop_assert_eq!(
                            key.to_bytes(),
                            derive_key(&seed, &network(n), purpose, index).to_bytes()
                        );
                    }
                }
                Step::Raise(n, purpose, to) => {
                    keys.set_at_least(&network(n), purpose, u64::from(to)).unwrap();
                }
                Step::Reopen => keys = SeedKeys::open(dir.path(), None).unwrap(),
            }
            prop_assert_eq!(keys.counters(), &KeyCounters::load(dir.path()).unwrap());
        }
    }
}

/// `create` seals at the full default cost (64 MiB, 3 passes), recorded in the file, and
/// the seed opens again with it.
#[test]
fn default_cost_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let words = Mnemonic::generate().unwrap();
    SeedFile::create(dir.path(), &words, Some("long passphrase")).unwrap();
    let text = std::fs::read_to_string(SeedFile::path(dir.path())).unwrap();
    assert!(text.contains("\"memory_kib\": 65536"), "{text}");
    let opened = SeedFile::open(dir.path(), Some("long passphrase")).unwrap();
    assert_eq!(opened.mnemonic(), &words);
}
