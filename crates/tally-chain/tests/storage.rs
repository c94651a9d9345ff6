//! Storage: a reopened chain is the chain that was closed, and a crash at any write of a
//! reorganisation's commit leaves a database that reopens at a consistent tip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use common::*;
use redb::StorageBackend;
use redb::backends::FileBackend;
use tally_chain::store::RedbStore;
use tally_chain::{Block, Chain, ChainConfig, OpenError, StoreError};

/// Replays the main chain's blocks into a fresh chain: the state a correct chain must have.
fn assert_consistent(chain: &Chain) {
    let mut fresh = Chain::in_memory(&contract(), ChainConfig::default()).unwrap();
    for height in 1..=chain.height() {
        let block = chain
            .block_at(height)
            .unwrap()
            .expect("main-chain block stored");
        fresh.accept_block(block, NOW).unwrap();
    }
    assert_eq!(fresh.tip(), chain.tip());
    assert_eq!(fresh.accounts(), chain.accounts());
    assert_eq!(chain.supply(), chain.params().supply_at(chain.height()));
}

#[test]
fn a_reopened_chain_is_the_chain_that_was_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let (tip, accounts) = {
        let mut chain = Chain::open(&path, &contract(), ChainConfig::default()).unwrap();
        chain
            .submit_transaction(transfer(&alice(), &bob(), 3, 0))
            .unwrap();
        for _ in 0..4 {
            mine_tip(&mut chain);
        }
        chain
            .submit_transaction(transfer(&bob(), &carol(), 1, 0))
            .unwrap();
        mine_tip(&mut chain);
        (chain.tip(), chain.accounts().clone())
    };
    let mut chain = Chain::open(&path, &contract(), ChainConfig::default()).unwrap();
    assert_eq!(chain.tip(), tip);
    assert_eq!(chain.accounts(), &accounts);
    assert_eq!(chain.height(), 5);
    assert_consistent(&chain);
    mine_tip(&mut chain);
    assert_eq!(chain.height(), 6);
}

#[test]
fn a_database_of_another_network_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    drop(Chain::open(&path, &contract(), ChainConfig::default()).unwrap());
    let other = contract_with(5, 10, 10);
    assert!(matches!(
        Chain::open(&path, &other, ChainConfig::default()),
        Err(OpenError::Store(StoreError::WrongNetwork { .. }))
    ));
}

/// A disk that dies after a given number of writes; the write it dies on is torn (half of
/// it reaches the file), like a power cut.
#[derive(Debug)]
struct CrashingDisk {
    inner: FileBackend,
    writes_left: Arc<AtomicI64>,
}

impl CrashingDisk {
    fn tick(&self) -> io::Result<()> {
        if self.writes_left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Err(io::Error::other("simulated crash"));
        }
        Ok(())
    }
}

impl StorageBackend for CrashingDisk {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.inner.read(offset, len)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.tick()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        self.tick()?;
        self.inner.sync_data(eventual)
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if let Err(e) = self.tick() {
            let _ = self.inner.write(offset, &data[..data.len() / 2]);
            return Err(e);
        }
        self.inner.write(offset, data)
    }
}

struct Scenario {
    main: Vec<Block>,
    side: Vec<Block>,
    heavier: Block,
}

fn scenario() -> Scenario {
    let p = params();
    let (a, b, c) = (alice(), bob(), carol());
    let a1 = child(&p, genesis(&p), vec![transfer(&a, &b, 10, 0)], 0);
    let a2 = child(&p, parent_of(&a1), vec![transfer(&b, &c, 20, 0)], 0);
    let a3 = child(&p, parent_of(&a2), vec![transfer(&a, &c, 1, 1)], 0);
    let b1 = child(&p, genesis(&p), vec![transfer(&b, &a, 5, 0)], 9);
    let b2 = child(&p, parent_of(&b1), vec![transfer(&a, &c, 30, 0)], 9);
    let b3 = child(&p, parent_of(&b2), vec![], 9);
    let b4 = child(&p, parent_of(&b3), vec![transfer(&c, &a, 2, 0)], 9);
    Scenario {
        main: vec![a1, a2, a3],
        side: vec![b1, b2, b3],
        heavier: b4,
    }
}

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
fn run_until_crash(path: &std::path::Path, s: &Scenario, writes: i64) -> (bool, i64) {
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
    let s = scenario();
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

/// When a reorganisation finds a block breaking a state rule, the commit that records the
/// invalid flags (and stores the new block) may fail. Memory must then stay as it was, as
/// after any failed commit, never ahead of the disk (blocks flagged invalid that the disk
/// holds as valid, a block indexed that was never stored): what a reopened database shows.
#[test]
fn a_failed_commit_marking_a_branch_invalid_leaves_memory_as_it_was() {
    let p = params();
    let (a, b, c) = (alice(), bob(), carol());
    let a1 = child(&p, genesis(&p), vec![transfer(&a, &b, 1, 0)], 0);
    let a2 = child(&p, parent_of(&a1), vec![], 0);
    let a3 = child(&p, parent_of(&a2), vec![], 0);
    let main = [a1, a2, a3];
    // A side branch whose second block has bob spend more than he has: stored as a
    // side branch (unchecked against the state) until its fourth block makes it heavier.
    let s1 = child(&p, genesis(&p), vec![], 9);
    let s2 = child(&p, parent_of(&s1), vec![transfer(&b, &c, 60, 0)], 9);
    let s3 = child(&p, parent_of(&s2), vec![], 9);
    let s4 = child(&p, parent_of(&s3), vec![], 9);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    {
        let (mut chain, counter) = crashing_chain(&path);
        for block in main.iter().chain([&s1, &s2, &s3]) {
            chain.accept_block(block.clone(), NOW).unwrap();
        }
        let tip = chain.tip();
        assert_eq!(tip.hash, main[2].hash());
        let accounts = chain.accounts().clone();

        // The disk fails from now on: the reorganisation finds the overdraft (no write
        // yet), and the commit marking s2.. invalid fails.
        counter.store(0, Ordering::SeqCst);
        assert!(matches!(
            chain.accept_block(s4.clone(), NOW),
            Err(tally_chain::ChainError::Store(_))
        ));
        assert_eq!(chain.tip(), tip);
        assert!(
            !chain.knows_block(&s4.hash()),
            "never stored, so not indexed"
        );
        assert_eq!(chain.header(&s4.hash()), None);
        for block in [&s2, &s3] {
            assert_eq!(
                chain.accept_block(block.clone(), NOW).unwrap(),
                tally_chain::BlockOutcome::Duplicate,
                "not flagged invalid: the disk holds it as valid"
            );
        }
        assert_eq!(chain.accounts(), &accounts);
    }

    // The database agrees: nothing of the failed commit is there, and the branch is found
    // invalid again when its heavier block comes back.
    let mut chain = Chain::open(&path, &contract(), ChainConfig::default()).unwrap();
    assert_eq!(chain.tip().hash, main[2].hash());
    assert!(!chain.knows_block(&s4.hash()));
    assert_eq!(
        chain.accept_block(s2.clone(), NOW).unwrap(),
        tally_chain::BlockOutcome::Duplicate
    );
    match chain.accept_block(s4.clone(), NOW) {
        Err(tally_chain::ChainError::Invalid { hash, .. }) => assert_eq!(hash, s2.hash()),
        other => panic!("expected the overdraft, got {other:?}"),
    }
    assert_eq!(chain.tip().hash, main[2].hash());
    assert_consistent(&chain);
}
