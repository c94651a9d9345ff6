//! The wallet folder's files: a wallet reads them back after a crash, and a person may
//! copy, edit or be handed one, so their bytes are outside input.

use std::path::PathBuf;
use std::sync::OnceLock;

use tally_core::{AccountId, CoinFile, Committee};
use tally_wallet::Wallet;
use tally_wallet::seed::{KeyCounters, KeyPurpose, Mnemonic, SeedFile};

use crate::{fuzz_network, vector_contract};

/// Where this process writes the files it fuzzes: one folder per kind of file, so what one
/// input wrote never changes how another reads.
fn folder(kind: u8) -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        std::env::temp_dir().join(format!("tally-fuzz-wallet-{}", std::process::id()))
    })
    .join(kind.to_string())
}

/// Removes the folder this process wrote its files in (a replay run calls it when done;
/// a fuzzing process leaves it for the machine's temporary-file cleanup).
pub fn remove_scratch() {
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("tally-fuzz-wallet-{}", std::process::id())),
    );
}

/// Writes `bytes` to `name` in the folder of `kind` (created if needed); `None` if the
/// disk refuses, in which case the input tests nothing.
fn write(kind: u8, name: &str, bytes: &[u8]) -> Option<PathBuf> {
    let dir = folder(kind);
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent()?).ok()?;
    std::fs::write(&path, bytes).ok()?;
    Some(dir)
}

/// `wallet_files`: a wallet folder's files read through the wallet's own loaders, from a
/// real folder on disk. The first byte picks the file, the rest is its content:
/// `keys.json` ([`Wallet::open`]), a receipt (`receipts/*.json`, [`Wallet::receipts`]), a
/// proof-of-work receipt ([`Wallet::chain_receipts`]), a batch journal
/// (`pending/batch-*.json`, [`Wallet::pending_batches`] and [`Wallet::pending`]), the seed
/// file ([`SeedFile::open`]) or the key counters ([`KeyCounters::load`]).
///
/// Properties: a file is loaded or refused with an error, never a panic; what loads goes
/// through what the wallet does next with it (a key's secret parsed and its account
/// looked up by prefix; a receipt verified against the vectors' committee; a batch
/// journal's coin file parsed; a seed's words derived; the counters read per network).
pub fn wallet_files(data: &[u8]) {
    let Some((&kind, content)) = data.split_first() else {
        return;
    };
    let kind = kind % 6;
    match kind {
        0 => {
            let Some(dir) = write(kind, "keys.json", content) else {
                return;
            };
            let Ok(wallet) = Wallet::open(&dir) else {
                return;
            };
            let _ = wallet.find(None);
            for entry in wallet.keys() {
                let _ = entry.secret_key();
                let text = entry.account.to_string();
                let found = wallet.find(Some(&text[..8]));
                assert!(found.is_ok() || wallet.keys().len() > 1, "{found:?}");
                let _ = wallet.resolve(Some(&text));
            }
        }
        1 => {
            let Some(dir) = write(kind, "receipts/receipt.json", content) else {
                return;
            };
            let Ok(wallet) = Wallet::open(&dir) else {
                return;
            };
            let Ok(receipts) = wallet.receipts() else {
                return;
            };
            if let Ok(committee) = Committee::new(&vector_contract().validators) {
                for certificate in receipts.iter().filter(|c| c.votes.len() <= 16) {
                    let _ = certificate.verify(&committee, &fuzz_network());
                }
            }
        }
        2 => {
            let Some(dir) = write(kind, "receipts/chain/receipt.json", content) else {
                return;
            };
            if let Ok(wallet) = Wallet::open(&dir)
                && let Ok(receipts) = wallet.chain_receipts()
            {
                for receipt in receipts {
                    let _ = receipt.order.verify(&fuzz_network());
                }
            }
        }
        3 => {
            let Some(dir) = write(kind, "pending/batch-1.json", content) else {
                return;
            };
            let Ok(wallet) = Wallet::open(&dir) else {
                return;
            };
            if let Ok(batches) = wallet.pending_batches() {
                for (_, journal) in batches {
                    let _ = CoinFile::from_json(&journal.coins);
                    for order in &journal.orders {
                        if let Some(signer) = order.order.signer() {
                            let pending = wallet.pending(&signer);
                            assert!(
                                pending.as_ref().is_ok_and(Option::is_some),
                                "a journaled order is not found pending: {pending:?}"
                            );
                        }
                    }
                }
            }
            let _ = wallet.pending(&AccountId::from([0xa1; 32]));
        }
        4 => {
            let Some(dir) = write(kind, "seed.json", content) else {
                return;
            };
            let _ = SeedFile::is_encrypted(&dir);
            if let Ok(seed) = SeedFile::open(&dir, None) {
                let words = seed.mnemonic().words();
                assert_eq!(words.len(), seed.mnemonic().word_count());
                let again = Mnemonic::parse(&words.join(" "));
                assert!(
                    again.as_ref().is_ok_and(|again| again.words() == words),
                    "a seed's words do not read back"
                );
            }
            if cheap_to_unseal(content) {
                let _ = SeedFile::open(&dir, Some("fuzz"));
            }
        }
        _ => {
            let Some(dir) = write(kind, "counters.json", content) else {
                return;
            };
            if let Ok(counters) = KeyCounters::load(&dir) {
                for (network, _) in counters.networks() {
                    let _ = counters.next(&network, KeyPurpose::Account);
                    let _ = counters.next(&network, KeyPurpose::Coin);
                }
            }
        }
    }
}

/// Whether a sealed seed file asks for little enough Argon2 work to open in a fuzz run
/// (the wallet bounds the cost at 4 GiB and 64 passes: slow, but a person's own file).
fn cheap_to_unseal(content: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(content) else {
        return false;
    };
    let sealed = &value["sealed"];
    let small = |field: &str, max: u64| sealed[field].as_u64().is_some_and(|v| v <= max);
    small("memory_kib", 64) && small("iterations", 2) && small("parallelism", 1)
}
