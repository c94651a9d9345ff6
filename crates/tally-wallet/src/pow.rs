//! The key-introduction proof-of-work search on every core.
//!
//! Threads take chunks of nonces in increasing order from a shared counter, so everything
//! below the lowest unfinished chunk has been searched: that low-water mark is where an
//! interrupted search resumes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tally_core::AccountId;
use tally_core::pow::IntroPowHasher;

const CHUNK: u64 = 1 << 14;

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowOutcome {
    /// A nonce that meets the difficulty.
    Found(u64),
    /// Stopped before finding one; every nonce below `resume_from` was tried.
    Stopped { resume_from: u64 },
}

/// Searches from `start` on `threads` threads until found or `stop` is set. `hashes` counts
/// the nonces tried, for progress displays.
pub fn search(
    account: &AccountId,
    bits: u32,
    start: u64,
    threads: usize,
    stop: &AtomicBool,
    hashes: &AtomicU64,
) -> PowOutcome {
    let next = AtomicU64::new(start);
    let found = Mutex::new(None::<u64>);
    // Chunks handed out but not finished, for the resume point.
    let in_progress = Mutex::new(Vec::<u64>::new());
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut hasher = IntroPowHasher::new(account);
                while !stop.load(Ordering::Relaxed) && !done.load(Ordering::Relaxed) {
                    let begin = next.fetch_add(CHUNK, Ordering::Relaxed);
                    if let Ok(mut list) = in_progress.lock() {
                        list.push(begin);
                    }
                    let end = begin.saturating_add(CHUNK);
                    let result = hasher.search(begin..end, bits);
                    hashes.fetch_add(CHUNK, Ordering::Relaxed);
                    if let Ok(mut list) = in_progress.lock() {
                        list.retain(|b| *b != begin);
                    }
                    if let Some(nonce) = result {
                        if let Ok(mut best) = found.lock()
                            && best.is_none_or(|b| nonce < b)
                        {
                            *best = Some(nonce);
                        }
                        done.store(true, Ordering::Relaxed);
                    }
                    if end == u64::MAX {
                        done.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    match found.into_inner().ok().flatten() {
        Some(nonce) => PowOutcome::Found(nonce),
        None => {
            let resume_from = in_progress
                .into_inner()
                .ok()
                .and_then(|list| list.into_iter().min())
                .unwrap_or_else(|| next.load(Ordering::Relaxed));
            PowOutcome::Stopped { resume_from }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::SecretKey;
    use tally_core::pow::check_intro_pow;

    #[test]
    fn finds_a_valid_nonce_on_several_threads() {
        let account = SecretKey::from_bytes([5; 32]).account();
        let stop = AtomicBool::new(false);
        let hashes = AtomicU64::new(0);
        match search(&account, 12, 0, 2, &stop, &hashes) {
            PowOutcome::Found(nonce) => assert!(check_intro_pow(&account, nonce, 12)),
            other => panic!("expected a proof, got {other:?}"),
        }
        assert!(hashes.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn a_stopped_search_reports_where_to_resume() {
        let account = SecretKey::from_bytes([6; 32]).account();
        let stop = AtomicBool::new(true);
        let hashes = AtomicU64::new(0);
        assert_eq!(
            search(&account, 64, 1000, 2, &stop, &hashes),
            PowOutcome::Stopped { resume_from: 1000 }
        );
    }
}
