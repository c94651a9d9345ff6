//! The miner: a multi-threaded nonce search over a block template's header.
//!
//! The nonce is the header's last 8 bytes, so everything before byte 128 is the same for
//! every nonce: the search compresses those two SHA-256 blocks once per template and then,
//! per nonce, only the last header block and the second SHA-256 (two compressions instead
//! of five). Threads split the nonce space; a shared stop flag ends the search when a new
//! tip arrives, and a shared counter gives the hash rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sha2::compress256;
use sha2::digest::generic_array::GenericArray;
use tally_core::Digest;

use crate::block::{BlockHeader, HEADER_LEN, NONCE_OFFSET};
use crate::u256::U256;

/// SHA-256's initial state.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Nonces tried between looks at the stop flag and updates of the hash counter.
pub const BATCH: u64 = 4096;

/// Where the nonce sits in the header's third (last) SHA-256 block.
const NONCE_IN_LAST: usize = NONCE_OFFSET - 128;

/// Hashes one header for many nonces, reusing the state after its first 128 bytes.
#[derive(Clone)]
pub struct HeaderHasher {
    /// SHA-256 state after header bytes 0..128, which no nonce changes.
    midstate: [u32; 8],
    /// Header bytes 128..156 plus SHA-256 padding: the only block a nonce changes.
    last: [u8; 64],
    /// The second hash's single block: 32 digest bytes plus padding.
    second: [u8; 64],
    /// The target as big-endian 32-bit words, compared word by word.
    target: [u32; 8],
}

impl HeaderHasher {
    /// A hasher for `header` (its nonce is ignored).
    pub fn new(header: &BlockHeader) -> Self {
        let bytes = header.encode();
        let mut midstate = H0;
        compress256(
            &mut midstate,
            &[*block64(&bytes[0..64]), *block64(&bytes[64..128])],
        );
        let mut last = [0u8; 64];
        last[..HEADER_LEN - 128].copy_from_slice(&bytes[128..]);
        last[HEADER_LEN - 128] = 0x80;
        last[56..].copy_from_slice(&((HEADER_LEN as u64) * 8).to_be_bytes());
        let mut second = [0u8; 64];
        second[32] = 0x80;
        second[56..].copy_from_slice(&256u64.to_be_bytes());
        let target_bytes = header.target.to_be_bytes();
        let mut target = [0u32; 8];
        for (i, word) in target.iter_mut().enumerate() {
            let mut w = [0u8; 4];
            w.copy_from_slice(&target_bytes[4 * i..4 * i + 4]);
            *word = u32::from_be_bytes(w);
        }
        HeaderHasher {
            midstate,
            last,
            second,
            target,
        }
    }

    /// The second SHA-256's state for `nonce`: the block hash as eight big-endian words.
    #[inline]
    fn hash_words(&mut self, nonce: u64) -> [u32; 8] {
        self.last[NONCE_IN_LAST..NONCE_IN_LAST + 8].copy_from_slice(&nonce.to_le_bytes());
        let mut state = self.midstate;
        compress256(&mut state, &[*block64(&self.last)]);
        for (i, word) in state.iter().enumerate() {
            self.second[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
        }
        let mut out = H0;
        compress256(&mut out, &[*block64(&self.second)]);
        out
    }

    /// The block hash for `nonce` (equal to `BlockHeader::hash` with that nonce).
    pub fn hash(&mut self, nonce: u64) -> Digest {
        let words = self.hash_words(nonce);
        let mut bytes = [0u8; 32];
        for (i, word) in words.iter().enumerate() {
            bytes[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
        }
        Digest::from(bytes)
    }

    /// Whether `nonce` gives a hash at or below the target.
    #[inline]
    pub fn meets_target(&mut self, nonce: u64) -> bool {
        let words = self.hash_words(nonce);
        words <= self.target
    }

    /// Tries `nonces` in order until one meets the target, `stop` is raised, or the range
    /// ends; adds the number of hashes to `hashes` every [`BATCH`].
    pub fn search(
        &mut self,
        nonces: std::ops::Range<u64>,
        stop: &AtomicBool,
        hashes: &AtomicU64,
    ) -> Option<u64> {
        let mut start = nonces.start;
        while start < nonces.end {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let end = start.saturating_add(BATCH).min(nonces.end);
            for nonce in start..end {
                if self.meets_target(nonce) {
                    hashes.fetch_add(nonce - start + 1, Ordering::Relaxed);
                    return Some(nonce);
                }
            }
            hashes.fetch_add(end - start, Ordering::Relaxed);
            start = end;
        }
        None
    }
}

fn block64(bytes: &[u8]) -> &GenericArray<u8, sha2::digest::consts::U64> {
    GenericArray::from_slice(bytes)
}

/// Searches the whole nonce space of `header` with `threads` threads (at least one), each
/// taking an equal slice. Returns the header with a winning nonce, or `None` when `stop`
/// was raised (a new tip: build a new template) or the space ran out (change the
/// timestamp and call again). `hashes` counts every hash tried, for the hash rate.
pub fn mine(
    header: &BlockHeader,
    threads: usize,
    stop: &AtomicBool,
    hashes: &AtomicU64,
) -> Option<BlockHeader> {
    let threads = threads.max(1) as u64;
    let span = u64::MAX / threads;
    let found = AtomicBool::new(false);
    let any_stop = AnyStop {
        outer: stop,
        inner: &found,
    };
    let hasher = HeaderHasher::new(header);
    let winner = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let mut hasher = hasher.clone();
                let any_stop = &any_stop;
                scope.spawn(move || {
                    let start = i * span;
                    let end = if i + 1 == threads {
                        u64::MAX
                    } else {
                        start + span
                    };
                    let result = any_stop.search(&mut hasher, start..end, hashes);
                    if result.is_some() {
                        any_stop.inner.store(true, Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().ok().flatten())
            .min()
    });
    winner.map(|nonce| BlockHeader { nonce, ..*header })
}

/// The caller's stop flag or "another thread found it".
struct AnyStop<'a> {
    outer: &'a AtomicBool,
    inner: &'a AtomicBool,
}

impl AnyStop<'_> {
    fn search(
        &self,
        hasher: &mut HeaderHasher,
        nonces: std::ops::Range<u64>,
        hashes: &AtomicU64,
    ) -> Option<u64> {
        let mut start = nonces.start;
        while start < nonces.end {
            if self.outer.load(Ordering::Relaxed) || self.inner.load(Ordering::Relaxed) {
                return None;
            }
            let end = start.saturating_add(BATCH).min(nonces.end);
            if let Some(nonce) = hasher.search(start..end, &AtomicBool::new(false), hashes) {
                return Some(nonce);
            }
            start = end;
        }
        None
    }
}

/// Finds a nonce on one thread with no stop flag: for tests and tools at low difficulty.
pub fn solve(header: &BlockHeader) -> Option<BlockHeader> {
    let mut hasher = HeaderHasher::new(header);
    (0..u64::MAX)
        .find(|nonce| hasher.meets_target(*nonce))
        .map(|nonce| BlockHeader { nonce, ..*header })
}

/// The expected number of hashes to meet `target`, as a float for display only (never
/// used in consensus).
pub fn expected_hashes(target: &U256) -> f64 {
    let work = crate::consensus::work(target);
    match work.to_u128() {
        Some(w) => w as f64,
        None => 2f64.powi(work.bits() as i32),
    }
}
