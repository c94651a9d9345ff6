//! redb storage: a crash at any write of a reorganisation's commit (a torn write
//! included) leaves a database that reopens at a consistent tip. What every store must do
//! is `store_conformance.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use common::*;
use redb::backends::FileBackend;
use tally_chain::store::RedbStore;
use tally_chain::{Chain, ChainConfig};

/// A chain on a file at `path` whose disk fails once the returned counter of writes left
/// (unlimited at first) runs out.
fn crashing_chain(path: &std::path::Path) -> (Chain, Arc<AtomicI64>) {
    let counter = Arc::new(AtomicI64::new(i64::MAX));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    let disk = CrashingDisk {
        inner: FileBackend::new(file).unwrap(),
        writes_left: counter.clone(),
    };
    let p = params();
    let store = RedbStore::with_backend(disk, &p.network).unwrap();
    let chain = Chain::with_store(store, p, ChainConfig::default()).unwrap();
    (chain, counter)
}

/// Builds the scenario on a crashing disk that allows `writes` writes during the
/// reorganising block's acceptance; returns whether that acceptance succeeded.
fn run_until_crash(path: &std::path::Path, s: &ReorgScenario, writes: i64) -> (bool, i64) {
    let (mut chain, counter) = crashing_chain(path);
    for block in s.main.iter().chain(&s.side) {
        chain.accept_block(block.clone(), NOW).unwrap();
    }
    assert_eq!(chain.tip().hash, s.main[2].hash());
    counter.store(writes, Ordering::SeqCst);
    let ok = chain.accept_block(s.heavier.clone(), NOW).is_ok();
    if ok {
        assert_eq!(chain.tip().hash, s.heavier.hash());
    } else {
        // The failed commit changed nothing in memory either.
        assert_eq!(chain.tip().hash, s.main[2].hash());
    }
    (ok, writes - counter.load(Ordering::SeqCst))
}

#[test]
fn a_crash_at_any_write_of_a_reorganisation_reopens_at_a_consistent_tip() {
    let s = reorg_scenario();
    let dir = tempfile::tempdir().unwrap();
    // How many writes the reorganisation takes when nothing fails.
    let (ok, used) = run_until_crash(&dir.path().join("count.redb"), &s, 1_000_000);
    assert!(ok);
    assert!(used > 0);
    eprintln!("the reorganisation commit takes {used} disk writes");
    let mut outcomes = [0usize; 2];
    for writes in 0..=used {
        let path = dir.path().join(format!("crash-{writes}.redb"));
        let (ok, _) = run_until_crash(&path, &s, writes);
        let chain = Chain::open(&path, &contract(), ChainConfig::default())
            .unwrap_or_else(|e| panic!("reopening after a crash at write {writes}: {e}"));
        let tip = chain.tip().hash;
        if ok {
            assert_eq!(tip, s.heavier.hash(), "a completed commit survives");
        }
        assert!(
            tip == s.main[2].hash() || tip == s.heavier.hash(),
            "crash at write {writes} left tip {tip}"
        );
        outcomes[usize::from(tip == s.heavier.hash())] += 1;
        assert_consistent(&chain);
    }
    // Both sides of the commit point were exercised.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
