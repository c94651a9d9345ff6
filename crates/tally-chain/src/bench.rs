//! The two benchmarks behind `tally bench mine` and `tally bench sync`, as library functions
//! returning figures (the CLI prints them; `examples/bench.rs` does too).
//!
//! Rates are `f64` for display only; nothing here feeds consensus.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use tally_core::{
    AccountId, Allocation, Amount, Digest, Mode, NetworkContract, PowParams, SecretKey, Transfer,
};

use crate::block::{Block, BlockHeader, Coinbase, HEADER_VERSION, NONCE_OFFSET, Transaction};
use crate::chain::{Chain, ChainConfig, OpenError, check_block, decode_block};
use crate::consensus::ChainParams;
use crate::error::ChainError;
use crate::miner;
use crate::u256::U256;

/// Figures of the mining benchmark.
#[derive(Clone, Debug, PartialEq)]
pub struct MineBench {
    /// Threads used for the multi-threaded figure.
    pub threads: usize,
    /// SHA-256d of the same 156-byte header per second on one thread, done the plain way
    /// with the state after the first 64 bytes reused (clone, update the other 92 bytes,
    /// finalise, hash again): the yardstick.
    pub raw_sha256d_per_sec: f64,
    /// The miner's hashes per second on one thread.
    pub miner_per_thread_per_sec: f64,
    /// The miner's hashes per second on `threads` threads.
    pub miner_total_per_sec: f64,
}

impl MineBench {
    /// Miner per thread ÷ raw SHA-256d: the target is at least 0.9.
    pub fn ratio(&self) -> f64 {
        self.miner_per_thread_per_sec / self.raw_sha256d_per_sec.max(f64::MIN_POSITIVE)
    }
}

/// The report `tally bench mine` and the example print: one line per figure, with the
/// target.
impl std::fmt::Display for MineBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "raw SHA-256d (64-byte midstate reused), 1 thread: {:>12.0} H/s",
            self.raw_sha256d_per_sec
        )?;
        writeln!(
            f,
            "miner, 1 thread:                                  {:>12.0} H/s ({:.0}% of raw; target >= 90%)",
            self.miner_per_thread_per_sec,
            100.0 * self.ratio()
        )?;
        write!(
            f,
            "miner, {} threads:                                 {:>12.0} H/s",
            self.threads, self.miner_total_per_sec
        )
    }
}

fn bench_header() -> BlockHeader {
    BlockHeader {
        version: HEADER_VERSION,
        network: tally_core::NetworkId(tally_core::sha256(&[b"bench"])),
        height: 1,
        previous: tally_core::sha256(&[b"previous"]),
        merkle_root: tally_core::sha256(&[b"merkle"]),
        timestamp_ms: 1_700_000_000_000,
        // No hash meets a zero target: the search never stops early.
        target: U256::ZERO,
        nonce: 0,
    }
}

/// Measures raw SHA-256d and the miner, each for about `duration`.
pub fn bench_mine(duration: Duration, threads: usize) -> MineBench {
    let header = bench_header();
    let raw = raw_sha256d_rate(&header, duration);
    let one = miner_rate(&header, 1, duration);
    let all = miner_rate(&header, threads.max(1), duration);
    MineBench {
        threads: threads.max(1),
        raw_sha256d_per_sec: raw,
        miner_per_thread_per_sec: one,
        miner_total_per_sec: all,
    }
}

fn raw_sha256d_rate(header: &BlockHeader, duration: Duration) -> f64 {
    let bytes = header.encode();
    let mut midstate = Sha256::new();
    midstate.update(&bytes[..64]);
    let mut tail = [0u8; 92];
    tail.copy_from_slice(&bytes[64..]);
    let start = Instant::now();
    let mut nonce = 0u64;
    let mut sink = 0u8;
    while start.elapsed() < duration {
        for _ in 0..miner::BATCH {
            tail[NONCE_OFFSET - 64..].copy_from_slice(&nonce.to_le_bytes());
            let mut hasher = midstate.clone();
            hasher.update(tail);
            let first = hasher.finalize();
            let second = Sha256::digest(first);
            sink ^= second[0];
            nonce += 1;
        }
    }
    std::hint::black_box(sink);
    nonce as f64 / start.elapsed().as_secs_f64()
}

fn miner_rate(header: &BlockHeader, threads: usize, duration: Duration) -> f64 {
    let stop = AtomicBool::new(false);
    let hashes = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(duration);
            stop.store(true, Ordering::Relaxed);
        });
        miner::mine(header, threads, &stop, &hashes);
    });
    hashes.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Figures of the sync benchmark.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncBench {
    /// Blocks validated and stored.
    pub blocks: usize,
    /// Transfers in them.
    pub transfers: usize,
    /// Seconds spent generating (signing) them, not counted in the rate.
    pub generate_seconds: f64,
    /// Seconds from the first block's bytes to the last block's durable commit.
    pub sync_seconds: f64,
}

impl SyncBench {
    /// Transfers validated and stored per second: the target is at least 40,000.
    pub fn transfers_per_sec(&self) -> f64 {
        self.transfers as f64 / self.sync_seconds.max(f64::MIN_POSITIVE)
    }

    /// Milliseconds per block.
    pub fn ms_per_block(&self) -> f64 {
        1000.0 * self.sync_seconds / (self.blocks.max(1) as f64)
    }
}

/// The line `tally bench sync` and the example print, with the target.
impl std::fmt::Display for SyncBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

/// Why the sync benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("the benchmark chain ended at height {0}, not {1}")]
    Height(u64, u64),
    #[error("cannot prepare the benchmark directory: {0}")]
    Io(#[from] std::io::Error),
}

/// The contract of the sync benchmark's network: `accounts` funded accounts, the easiest
/// target (blocks need no real mining), blocks of up to `transfers_per_block` transfers.
pub fn bench_contract(accounts: &[AccountId], transfers_per_block: usize) -> NetworkContract {
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
    }
}

/// Signs `blocks` blocks of `transfers_per_block` transfers each (every account pays a
/// neighbour once per block), on all cores. Returns the contract and the encoded blocks.
pub fn generate_blocks(
    blocks: usize,
    transfers_per_block: usize,
) -> Result<(NetworkContract, Vec<Vec<u8>>), BenchError> {
    let keys: Vec<SecretKey> = (0..transfers_per_block as u64)
        .into_par_iter()
        .map(|i| {
            let seed = tally_core::sha256(&[b"tally bench key", &i.to_le_bytes()]);
            SecretKey::from_bytes(*seed.as_bytes())
        })
        .collect();
    let accounts: Vec<AccountId> = keys.iter().map(SecretKey::account).collect();
    let contract = bench_contract(&accounts, transfers_per_block);
    let params = ChainParams::from_contract(&contract).map_err(OpenError::from)?;
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

/// Generates `blocks` blocks of `transfers_per_block` transfers, then times a fresh chain
/// in `dir` (a file `bench-sync.redb`, replaced) decoding, validating and durably storing
/// them one by one (one durable commit per block), as a node syncing from a peer does.
pub fn bench_sync(
    dir: &Path,
    blocks: usize,
    transfers_per_block: usize,
) -> Result<SyncBench, BenchError> {
    let generate_start = Instant::now();
    let (contract, encoded) = generate_blocks(blocks, transfers_per_block)?;
    let generate_seconds = generate_start.elapsed().as_secs_f64();
    std::fs::create_dir_all(dir)?;
    let path = dir.join("bench-sync.redb");
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    let mut chain = Chain::open(&path, &contract, ChainConfig::default())?;
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
        for checked in receiver {
            chain.accept_checked(checked?, now)?;
        }
        let _ = checker.join();
        Ok(())
    })?;
    let sync_seconds = start.elapsed().as_secs_f64();
    if chain.height() != blocks as u64 {
        return Err(BenchError::Height(chain.height(), blocks as u64));
    }
    drop(chain);
    std::fs::remove_file(&path)?;
    Ok(SyncBench {
        blocks,
        transfers: blocks * transfers_per_block,
        generate_seconds,
        sync_seconds,
    })
}
