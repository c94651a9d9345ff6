//! `tally bench sync`: blocks of signed transfers decoded, validated and durably stored
//! one by one, as a node syncing from a peer takes them.
//!
//! Rates are `f64` for display only; nothing here feeds consensus.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use tally_chain::block::HEADER_VERSION;
use tally_chain::{
    Block, BlockHeader, Chain, ChainConfig, ChainParams, Coinbase, Transaction, check_block,
    decode_block,
};
use tally_core::{
    AccountId, Allocation, Amount, Digest, Mode, NetworkContract, PowParams, SecretKey, Transfer,
    sha256,
};

use crate::error::{BenchError, Context, fail};
use crate::process::{Existing, WorkDir};
use crate::procfs;
use crate::report::Report;

/// What `tally bench sync` measures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Blocks to validate and store.
    pub blocks: usize,
    /// Transfers per block.
    pub transfers: usize,
    /// Folder for the chain database (a file `bench-sync.redb`, replaced); `None`: a
    /// temporary folder, removed afterwards.
    pub dir: Option<PathBuf>,
}

impl Settings {
    /// The figures BENCHMARKS.md records are taken with these unless it says otherwise.
    pub const DEFAULT: Settings = Settings {
        blocks: 20,
        transfers: 5_000,
        dir: None,
    };
}

impl Default for Settings {
    fn default() -> Self {
        Settings::DEFAULT
    }
}

/// Figures of the sync benchmark.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// Blocks validated and stored.
    pub blocks: usize,
    /// Transfers in them.
    pub transfers: usize,
    /// Seconds spent generating (signing) them, not counted in the rate.
    pub generate_seconds: f64,
    /// Seconds from the first block's bytes to the last block's durable commit.
    pub sync_seconds: f64,
}

impl Figures {
    /// Transfers validated and stored per second: the target is at least 40,000.
    pub fn transfers_per_sec(&self) -> f64 {
        self.transfers as f64 / self.sync_seconds.max(f64::MIN_POSITIVE)
    }

    /// Milliseconds per block.
    pub fn ms_per_block(&self) -> f64 {
        1000.0 * self.sync_seconds / (self.blocks.max(1) as f64)
    }
}

/// The report's line, with the target.
impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sync: {} blocks x {} transfers in {:.2} s: {:.0} transfers/s (target >= 40,000), {:.1} ms/block (generating took {:.1} s, not counted)",
            self.blocks,
            self.transfers / self.blocks.max(1),
            self.sync_seconds,
            self.transfers_per_sec(),
            self.ms_per_block(),
            self.generate_seconds
        )
    }
}

/// The contract of the sync benchmark's network: `accounts` funded accounts, the easiest
/// target (blocks need no real mining), blocks of up to `transfers_per_block` transfers.
fn bench_contract(accounts: &[AccountId], transfers_per_block: usize) -> NetworkContract {
    let max_tx = u32::try_from(transfers_per_block).unwrap_or(u32::MAX);
    NetworkContract {
        name: "bench-sync".into(),
        mode: Mode::Pow,
        unit: "cash".into(),
        faucet: Amount::ZERO,
        intro_pow_bits: 0,
        validators: vec![],
        tracker: None,
        genesis: accounts
            .iter()
            .map(|account| Allocation {
                account: *account,
                amount: Amount::from_microcash(1_000_000_000),
            })
            .collect(),
        pow: Some(PowParams {
            initial_bits: 0,
            block_time_ms: 1000,
            retarget_window: 1_000_000,
            block_reward: Amount::from_microcash(50_000_000),
            max_block_transactions: max_tx,
            max_block_bytes: max_tx.saturating_mul(200).saturating_add(1000),
        }),
        max_clock_skew_ms: None,
    }
}

/// Signs `blocks` blocks of `transfers_per_block` transfers each (every account pays a
/// neighbour once per block), on all cores. Returns the contract and the encoded blocks.
fn generate_blocks(
    blocks: usize,
    transfers_per_block: usize,
) -> Result<(NetworkContract, Vec<Vec<u8>>), BenchError> {
    let keys: Vec<SecretKey> = (0..transfers_per_block as u64)
        .into_par_iter()
        .map(|i| {
            let seed = sha256(&[b"tally bench key", &i.to_le_bytes()]);
            SecretKey::from_bytes(*seed.as_bytes())
        })
        .collect();
    let accounts: Vec<AccountId> = keys.iter().map(SecretKey::account).collect();
    let contract = bench_contract(&accounts, transfers_per_block);
    let params = ChainParams::from_contract(&contract).context("the bench's chain parameters")?;
    let miner_account = accounts
        .first()
        .copied()
        .unwrap_or(AccountId::from([0; 32]));
    let mut previous = params.genesis_hash;
    let mut out = Vec::with_capacity(blocks);
    let n = keys.len().max(1);
    for b in 0..blocks {
        let height = b as u64 + 1;
        let transactions: Vec<Transaction> = keys
            .par_iter()
            .enumerate()
            .map(|(i, key)| {
                let transfer = Transfer {
                    sender: key.account(),
                    recipient: accounts[(i + 1 + b) % n],
                    amount: Amount::from_microcash(1 + (i % 7) as u64),
                    sequence: b as u64,
                };
                Transaction::sign(transfer, key, &params.network)
            })
            .collect();
        let mut block = Block {
            header: BlockHeader {
                version: HEADER_VERSION,
                network: params.network,
                height,
                previous,
                merkle_root: Digest::default(),
                timestamp_ms: 1_000 * height,
                target: params.initial_target,
                nonce: 0,
            },
            coinbase: Coinbase {
                miner: miner_account,
                amount: params.block_reward,
                height,
            },
            transactions,
        };
        block.header.merkle_root = block.compute_merkle_root();
        previous = block.hash();
        out.push(block.encode());
    }
    Ok((contract, out))
}

/// Generates the blocks, then times a fresh chain (`bench-sync.redb` in the settings'
/// folder) decoding, validating and durably storing them one by one (one durable commit
/// per block), as a node syncing from a peer does.
pub fn run(settings: &Settings, report: &dyn Report) -> Result<Figures, BenchError> {
    let work = WorkDir::new(settings.dir.as_deref(), Existing::Reuse, "sync", false)?;
    report.progress(&format!(
        "generating {} blocks of {} signed transfers…",
        settings.blocks, settings.transfers
    ));
    let figures = sync_blocks(work.path(), settings.blocks, settings.transfers)?;
    report.section(&figures.to_string());
    report.section(&format!("load average: {}", procfs::load_average()));
    Ok(figures)
}

fn sync_blocks(
    dir: &Path,
    blocks: usize,
    transfers_per_block: usize,
) -> Result<Figures, BenchError> {
    let generate_start = Instant::now();
    let (contract, encoded) = generate_blocks(blocks, transfers_per_block)?;
    let generate_seconds = generate_start.elapsed().as_secs_f64();
    let path = dir.join("bench-sync.redb");
    if path.exists() {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    let mut chain = Chain::open(&path, &contract, ChainConfig::default())
        .with_context(|| format!("opening the chain in {}", path.display()))?;
    let now = 1_000 * (blocks as u64 + 1);
    let params = chain.params().clone();
    let keys = chain.key_cache().clone();
    let start = Instant::now();
    // Two stages, as a syncing node runs them: one thread decodes and checks the next
    // block (signatures batched over all cores) while this one applies and commits.
    std::thread::scope(|scope| -> Result<(), BenchError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(2);
        let checker = scope.spawn(move || {
            for bytes in &encoded {
                let checked =
                    decode_block(&params, bytes).and_then(|b| check_block(&params, &keys, b));
                if sender.send(checked).is_err() {
                    break;
                }
            }
        });
        for (height, checked) in (1u64..).zip(receiver) {
            let checked = checked.with_context(|| format!("checking block {height}"))?;
            chain
                .accept_checked(checked, now)
                .with_context(|| format!("storing block {height}"))?;
        }
        let _ = checker.join();
        Ok(())
    })?;
    let sync_seconds = start.elapsed().as_secs_f64();
    if chain.height() != blocks as u64 {
        fail!(
            "the benchmark chain ended at height {}, not {blocks}",
            chain.height()
        );
    }
    drop(chain);
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(Figures {
        blocks,
        transfers: blocks * transfers_per_block,
        generate_seconds,
        sync_seconds,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::report::Transcript;

    #[test]
    fn a_small_sync_stores_every_block_and_reports_once() {
        let root = tempfile::tempdir().unwrap();
        let settings = Settings {
            blocks: 3,
            transfers: 8,
            dir: Some(root.path().join("sync")),
        };
        let transcript = Transcript::default();
        let figures = run(&settings, &transcript).unwrap();
        assert_eq!((figures.blocks, figures.transfers), (3, 24));
        assert!(figures.transfers_per_sec() > 0.0);
        assert_eq!(
            transcript.progress(),
            ["generating 3 blocks of 8 signed transfers…"]
        );
        let sections = transcript.sections();
        assert_eq!(sections.len(), 2);
        assert!(sections[0].starts_with("sync: 3 blocks x 8 transfers in "));
        assert!(sections[1].starts_with("load average: "));
        // The named folder stays; the chain file in it does not.
        assert!(root.path().join("sync").is_dir());
        assert!(!root.path().join("sync/bench-sync.redb").exists());
    }
}
