//! The key-introduction proof-of-work search on every core, and the wallet's search for
//! one of its keys that resumes where an interrupted one stopped.
//!
//! Threads take chunks of nonces in increasing order from a shared counter, so everything
//! below the lowest unfinished chunk has been searched: that low-water mark is where an
//! interrupted search resumes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tally_core::AccountId;
use tally_core::pow::{IntroPowHasher, check_intro_pow};

use crate::wallet::{Wallet, WalletError};

const CHUNK: u64 = 1 << 14;

/// How often [`find_key_proof`] reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

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

/// A key's proof of work, as [`find_key_proof`] left it in the wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProof {
    /// The wallet already held a valid one; nothing was searched.
    Known(u64),
    /// Found now, and saved.
    Found(u64),
    /// Stopped before finding one; the wallet resumes from `resume_from` next time.
    Interrupted { resume_from: u64 },
}

/// How a search is going, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchProgress {
    /// Nonces tried so far by this search.
    pub hashes: u64,
    /// Time since it started.
    pub elapsed: Duration,
}

/// Finds the proof of work of the wallet's key `account` at `bits` difficulty on `threads`
/// threads, starting where an interrupted search stopped, until found or `stop` is set;
/// saves the nonce, or where to resume, in the wallet. `progress` hears how it goes a few
/// times a second (and at least once), from another thread.
pub fn find_key_proof(
    wallet: &mut Wallet,
    account: &AccountId,
    bits: u32,
    threads: usize,
    stop: &AtomicBool,
    progress: &mut (dyn FnMut(SearchProgress) + Send),
) -> Result<KeyProof, WalletError> {
    let entry = wallet
        .keys()
        .iter()
        .find(|k| k.account == *account)
        .ok_or_else(|| WalletError::UnknownAccount(account.to_hex()))?;
    if let Some(nonce) = entry
        .proof_of_work
        .filter(|nonce| check_intro_pow(account, *nonce, bits))
    {
        return Ok(KeyProof::Known(nonce));
    }
    let start = entry.pow_resume_from.unwrap_or(0);
    let hashes = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let started = Instant::now();
    let outcome = std::thread::scope(|scope| {
        let reporter = scope.spawn(|| {
            loop {
                progress(SearchProgress {
                    hashes: hashes.load(Ordering::Relaxed),
                    elapsed: started.elapsed(),
                });
                if finished.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::park_timeout(PROGRESS_EVERY);
            }
        });
        let outcome = search(account, bits, start, threads, stop, &hashes);
        finished.store(true, Ordering::Relaxed);
        reporter.thread().unpark();
        outcome
    });
    match outcome {
        PowOutcome::Found(nonce) => {
            wallet.set_pow(account, Some(nonce), None)?;
            Ok(KeyProof::Found(nonce))
        }
        PowOutcome::Stopped { resume_from } => {
            wallet.set_pow(account, None, Some(resume_from))?;
            Ok(KeyProof::Interrupted { resume_from })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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

    #[test]
    fn a_key_proof_is_saved_and_an_interrupted_search_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut wallet = Wallet::open(dir.path()).unwrap();
        let account = wallet.add_key(None, None).unwrap().account;
        let mut reports = 0;
        let mut count = |_: SearchProgress| reports += 1;

        let stopped = AtomicBool::new(true);
        assert_eq!(
            find_key_proof(&mut wallet, &account, 64, 1, &stopped, &mut count).unwrap(),
            KeyProof::Interrupted { resume_from: 0 }
        );
        wallet.set_pow(&account, None, Some(1 << 20)).unwrap();
        assert_eq!(
            find_key_proof(&mut wallet, &account, 64, 1, &stopped, &mut count).unwrap(),
            KeyProof::Interrupted {
                resume_from: 1 << 20
            },
            "resumes from the saved point"
        );

        let go = AtomicBool::new(false);
        let KeyProof::Found(nonce) =
            find_key_proof(&mut wallet, &account, 8, 2, &go, &mut count).unwrap()
        else {
            panic!("not found")
        };
        assert!(nonce >= 1 << 20 && check_intro_pow(&account, nonce, 8));
        let reopened = Wallet::open(dir.path()).unwrap();
        assert_eq!(reopened.keys()[0].proof_of_work, Some(nonce));
        assert_eq!(reopened.keys()[0].pow_resume_from, None);
        assert_eq!(
            find_key_proof(&mut wallet, &account, 8, 2, &go, &mut count).unwrap(),
            KeyProof::Known(nonce)
        );
        assert!(
            reports >= 3,
            "progress is reported at least once per search"
        );
    }
}
