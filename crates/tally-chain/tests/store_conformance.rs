//! What every chain store must do, run against each of them: redb on a file (the node's),
//! and the in-memory store of simulations. Each check is a generic function over a
//! [`Medium`]; `conformance!` instantiates all of them per store.
//!
//! A "crash" here drops the chain and its store without warning: nothing that was not
//! committed may survive it, and everything committed must.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use common::*;
use redb::backends::FileBackend;
use tally_chain::state::{AccountState, Undo};
use tally_chain::store::{
    ChainStore, Loaded, MemoryDisk, MemoryStore, RedbStore, StoredStatus, WriteBatch,
};
use tally_chain::{
    Block, BlockError, BlockHash, BlockHeader, BlockOutcome, Chain, ChainConfig, ChainError,
    StoreError,
};
use tally_core::{
    AccountId, Amount, Digest, EscrowId, EscrowLock, EscrowSecret, EscrowState, NetworkId,
    Settlement,
};

/// Where a store keeps what it committed, as the suite drives it.
trait Medium {
    type Store: ChainStore;

    /// An empty medium.
    fn new() -> Self;

    /// Opens the store on the medium (again, after a crash), healing it first.
    fn open(&self, network: &NetworkId) -> Result<Self::Store, StoreError>;

    /// Makes every commit fail from now until the next [`Medium::open`].
    fn break_commits(&self);
}

/// A redb file on a disk that can be made to refuse writes.
struct RedbFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
    writes_left: Arc<AtomicI64>,
}

impl Medium for RedbFile {
    type Store = RedbStore;

    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        RedbFile {
            path: dir.path().join("chain.redb"),
            _dir: dir,
            writes_left: Arc::new(AtomicI64::new(i64::MAX)),
        }
    }

    fn open(&self, network: &NetworkId) -> Result<RedbStore, StoreError> {
        self.writes_left.store(i64::MAX, Ordering::SeqCst);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .unwrap();
        let disk = CrashingDisk {
            inner: FileBackend::new(file).unwrap(),
            writes_left: self.writes_left.clone(),
        };
        RedbStore::with_backend(disk, network)
    }

    fn break_commits(&self) {
        self.writes_left.store(0, Ordering::SeqCst);
    }
}

impl Medium for MemoryDisk {
    type Store = MemoryStore;

    fn new() -> Self {
        MemoryDisk::new()
    }

    fn open(&self, network: &NetworkId) -> Result<MemoryStore, StoreError> {
        self.fail_next_commits(0);
        MemoryStore::open(self, network)
    }

    fn break_commits(&self) {
        self.fail_next_commits(usize::MAX);
    }
}

fn open_chain<M: Medium>(medium: &M) -> Chain<M::Store> {
    open_chain_with(medium, ChainConfig::default())
}

fn open_chain_with<M: Medium>(medium: &M, config: ChainConfig) -> Chain<M::Store> {
    let p = params();
    let store = medium.open(&p.network).unwrap();
    Chain::with_store(store, p, config).unwrap()
}

/// What a store shows when it is loaded, in a comparable order.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    headers: Vec<(BlockHash, BlockHeader, StoredStatus)>,
    accounts: Vec<(AccountId, AccountState)>,
    escrows: Vec<(EscrowId, EscrowState)>,
    main: Vec<BlockHash>,
    tip: Option<BlockHash>,
}

/// An escrow of `cash` from alice to bob under the hash of `secret`.
fn escrow(secret: u8, cash: u64, settlement: Settlement) -> EscrowState {
    EscrowState {
        lock: EscrowLock {
            payer: alice().account(),
            sequence: u64::from(secret),
            payee: bob().account(),
            amount: Amount::from_microcash(cash * CASH),
            hash_lock: EscrowSecret::from([secret; 32]).hash_lock(),
            deadline: 40,
            counterpart: None,
        },
        settlement,
    }
}

fn snapshot(store: &impl ChainStore) -> Snapshot {
    let Loaded {
        headers,
        accounts,
        escrows,
        tip,
        main,
    } = store.load().unwrap();
    let mut escrows = escrows;
    escrows.sort_by_key(|(id, _)| *id);
    let mut headers: Vec<_> = headers.into_iter().map(|(h, s)| (h.hash(), h, s)).collect();
    headers.sort_by_key(|(hash, _, _)| *hash);
    let mut accounts: Vec<_> = accounts.into_iter().collect();
    accounts.sort_by_key(|(account, _)| *account);
    Snapshot {
        headers,
        accounts,
        escrows,
        main,
        tip,
    }
}

fn state(cash: u64, next_sequence: u64) -> AccountState {
    AccountState {
        balance: Amount::from_microcash(cash * CASH),
        next_sequence,
    }
}

fn stored(block: &Block) -> (BlockHash, BlockHeader, Vec<u8>) {
    (block.hash(), block.header, block.encode())
}

fn a_batch_reads_back_as_committed_and_after_a_reopen<M: Medium>() {
    let p = params();
    let medium = M::new();
    let mut store = medium.open(&p.network).unwrap();
    assert_eq!(snapshot(&store).tip, None, "a new store has no tip");

    let (a, b) = (alice(), bob());
    let a1 = child(&p, genesis(&p), vec![transfer(&a, &b, 1, 0)], 0);
    let b1 = child(&p, genesis(&p), vec![], 1);
    let (e1, e2) = (Digest::from([1; 32]), Digest::from([2; 32]));
    let claimed = escrow(1, 3, Settlement::Claimed(EscrowSecret::from([1; 32])));
    let undo = Undo {
        prior: vec![(a.account(), state(100, 0)), (b.account(), state(50, 0))],
        prior_escrows: vec![(e1, None), (e1, Some(escrow(1, 3, Settlement::Open)))],
    };
    let batch = WriteBatch {
        blocks: vec![stored(&a1), stored(&b1)],
        undo: vec![(a1.hash(), undo.encode())],
        accounts: [(a.account(), state(99, 1)), (b.account(), state(51, 0))].into(),
        escrows: [
            (e1, Some(claimed)),
            (e2, Some(escrow(2, 4, Settlement::Open))),
        ]
        .into(),
        main_set: vec![(1, a1.hash())],
        tip: Some(a1.hash()),
        ..WriteBatch::default()
    };
    store.commit(&batch).unwrap();

    assert_eq!(store.block(&a1.hash()).unwrap().as_ref(), Some(&a1));
    assert_eq!(store.block(&b1.hash()).unwrap().as_ref(), Some(&b1));
    assert_eq!(store.block_bytes(&a1.hash()).unwrap(), Some(a1.encode()));
    assert_eq!(store.undo(&a1.hash()).unwrap(), Some(undo));
    assert_eq!(
        store.undo(&b1.hash()).unwrap(),
        None,
        "a side block has no undo"
    );
    assert_eq!(store.block(&BlockHash::default()).unwrap(), None);
    let seen = snapshot(&store);
    let mut expected_headers = vec![
        (a1.hash(), a1.header, StoredStatus::Valid),
        (b1.hash(), b1.header, StoredStatus::Valid),
    ];
    expected_headers.sort_by_key(|(hash, _, _)| *hash);
    assert_eq!(seen.headers, expected_headers);
    let mut expected_accounts = vec![(a.account(), state(99, 1)), (b.account(), state(51, 0))];
    expected_accounts.sort_by_key(|(account, _)| *account);
    assert_eq!(seen.accounts, expected_accounts);
    let mut expected_escrows = vec![(e1, claimed), (e2, escrow(2, 4, Settlement::Open))];
    expected_escrows.sort_by_key(|(id, _)| *id);
    assert_eq!(seen.escrows, expected_escrows, "escrows read back whole");
    assert_eq!(seen.main, vec![a1.hash()]);
    assert_eq!(seen.tip, Some(a1.hash()));

    // A reorganisation's batch: the main chain is cut back and rebuilt, an empty account
    // state deletes the account, and a header turns invalid without its block going away.
    let c1 = child(&p, genesis(&p), vec![], 2);
    let c2 = child(&p, parent_of(&c1), vec![], 2);
    store
        .commit(&WriteBatch {
            blocks: vec![stored(&c1), stored(&c2)],
            invalid: vec![(b1.hash(), b1.header)],
            accounts: [(b.account(), AccountState::default())].into(),
            escrows: [(e2, None)].into(),
            main_truncate_above: Some(0),
            main_set: vec![(1, c1.hash()), (2, c2.hash())],
            tip: Some(c2.hash()),
            ..WriteBatch::default()
        })
        .unwrap();
    let seen = snapshot(&store);
    assert_eq!(seen.main, vec![c1.hash(), c2.hash()]);
    assert_eq!(seen.tip, Some(c2.hash()));
    assert_eq!(seen.accounts, vec![(a.account(), state(99, 1))]);
    assert_eq!(
        seen.escrows,
        vec![(e1, claimed)],
        "`None` deletes an escrow"
    );
    let status = |hash: BlockHash| seen.headers.iter().find(|h| h.0 == hash).map(|h| h.2);
    assert_eq!(status(b1.hash()), Some(StoredStatus::Invalid));
    assert_eq!(status(a1.hash()), Some(StoredStatus::Valid));
    assert_eq!(status(c2.hash()), Some(StoredStatus::Valid));
    assert_eq!(store.block(&b1.hash()).unwrap().as_ref(), Some(&b1));
    assert_eq!(
        store.undo(&a1.hash()).unwrap().map(|u| u.prior.len()),
        Some(2)
    );

    // Shortening the main chain drops the heights above the cut.
    store
        .commit(&WriteBatch {
            main_truncate_above: Some(1),
            tip: Some(c1.hash()),
            ..WriteBatch::default()
        })
        .unwrap();
    assert_eq!(snapshot(&store).main, vec![c1.hash()]);

    let before = snapshot(&store);
    drop(store);
    let store = medium.open(&p.network).unwrap();
    assert_eq!(
        snapshot(&store),
        before,
        "a reopened store is the one that was closed"
    );
    assert_eq!(store.block(&c2.hash()).unwrap().as_ref(), Some(&c2));
}

fn a_failed_commit_writes_nothing<M: Medium>() {
    let p = params();
    let medium = M::new();
    let mut store = medium.open(&p.network).unwrap();
    let a1 = child(&p, genesis(&p), vec![], 0);
    store
        .commit(&WriteBatch {
            blocks: vec![stored(&a1)],
            main_set: vec![(1, a1.hash())],
            tip: Some(a1.hash()),
            ..WriteBatch::default()
        })
        .unwrap();
    let before = snapshot(&store);

    let a2 = child(&p, parent_of(&a1), vec![], 0);
    let b1 = child(&p, genesis(&p), vec![], 1);
    let batch = WriteBatch {
        blocks: vec![stored(&a2), stored(&b1)],
        invalid: vec![(a1.hash(), a1.header)],
        undo: vec![(a2.hash(), Undo::default().encode())],
        accounts: [(alice().account(), state(7, 3))].into(),
        escrows: [(
            Digest::from([9; 32]),
            Some(escrow(9, 1, Settlement::Refunded)),
        )]
        .into(),
        main_truncate_above: Some(0),
        main_set: vec![(1, b1.hash())],
        tip: Some(b1.hash()),
    };
    medium.break_commits();
    assert!(store.commit(&batch).is_err());
    drop(store);

    let mut store = medium.open(&p.network).unwrap();
    assert_eq!(
        snapshot(&store),
        before,
        "nothing of the failed commit shows"
    );
    assert_eq!(store.block(&a2.hash()).unwrap(), None);
    assert_eq!(store.undo(&a2.hash()).unwrap(), None);
    // The same batch on a healthy medium goes through whole.
    store.commit(&batch).unwrap();
    let after = snapshot(&store);
    assert_eq!(after.tip, Some(b1.hash()));
    assert_eq!(after.main, vec![b1.hash()]);
    assert_eq!(after.headers.len(), 3);
}

fn a_store_of_another_network_is_refused<M: Medium>() {
    let medium = M::new();
    drop(open_chain(&medium));
    let other = tally_chain::ChainParams::from_contract(&contract_with(5, 10, 10)).unwrap();
    assert!(matches!(
        medium.open(&other.network),
        Err(StoreError::WrongNetwork { .. })
    ));
    // Still this network's.
    drop(open_chain(&medium));
}

fn a_reopened_chain_is_the_chain_that_was_closed<M: Medium>() {
    let medium = M::new();
    let (tip, accounts) = {
        let mut chain = open_chain(&medium);
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
    let mut chain = open_chain(&medium);
    assert_eq!(chain.tip(), tip);
    assert_eq!(chain.accounts(), &accounts);
    assert_eq!(chain.height(), 5);
    assert_consistent(&chain);
    mine_tip(&mut chain);
    assert_eq!(chain.height(), 6);
}

fn a_reorganisation_commits_and_a_reopen_is_on_the_new_branch<M: Medium>() {
    let s = reorg_scenario();
    let medium = M::new();
    let accounts = {
        let mut chain = open_chain(&medium);
        for block in s.main.iter().chain(&s.side) {
            chain.accept_block(block.clone(), NOW).unwrap();
        }
        let BlockOutcome::Stored {
            tip_change: Some(change),
            ..
        } = chain.accept_block(s.heavier.clone(), NOW).unwrap()
        else {
            panic!("the heavier block moves the tip");
        };
        assert_eq!(change.disconnected.len(), 3);
        assert_eq!(change.connected.len(), 4);
        chain.accounts().clone()
    };
    let chain = open_chain(&medium);
    assert_eq!(chain.tip().hash, s.heavier.hash());
    assert_eq!(chain.accounts(), &accounts);
    for (height, block) in (1..).zip(s.side.iter().chain([&s.heavier])) {
        assert_eq!(chain.hash_at(height), Some(block.hash()));
    }
    for block in &s.main {
        assert!(!chain.is_on_main_chain(&block.hash()));
        assert_eq!(chain.block(&block.hash()).unwrap().as_ref(), Some(block));
    }
    assert_consistent(&chain);
}

fn a_failed_reorganisation_commit_leaves_memory_and_store_before_it<M: Medium>() {
    let s = reorg_scenario();
    let medium = M::new();
    {
        let mut chain = open_chain(&medium);
        for block in s.main.iter().chain(&s.side) {
            chain.accept_block(block.clone(), NOW).unwrap();
        }
        let tip = chain.tip();
        let accounts = chain.accounts().clone();
        medium.break_commits();
        assert!(matches!(
            chain.accept_block(s.heavier.clone(), NOW),
            Err(ChainError::Store(_))
        ));
        assert_eq!(chain.tip(), tip);
        assert_eq!(chain.accounts(), &accounts);
        assert!(!chain.knows_block(&s.heavier.hash()));
        assert_consistent(&chain);
    }
    let mut chain = open_chain(&medium);
    assert_eq!(chain.tip().hash, s.main[2].hash());
    assert!(!chain.knows_block(&s.heavier.hash()));
    assert_consistent(&chain);
    // The block comes again, and this time the commit goes through.
    assert!(matches!(
        chain.accept_block(s.heavier.clone(), NOW).unwrap(),
        BlockOutcome::Stored {
            tip_change: Some(_),
            ..
        }
    ));
    assert_eq!(chain.tip().hash, s.heavier.hash());
    assert_consistent(&chain);
}

/// When a reorganisation finds a block breaking a state rule, the commit that records the
/// invalid flags (and stores the new block) may fail. Memory must then stay as it was, as
/// after any failed commit, never ahead of the store (blocks flagged invalid that the store
/// holds as valid, a block indexed that was never stored): what a reopened store shows.
fn a_failed_commit_marking_a_branch_invalid_leaves_memory_as_it_was<M: Medium>() {
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

    let medium = M::new();
    {
        let mut chain = open_chain(&medium);
        for block in main.iter().chain([&s1, &s2, &s3]) {
            chain.accept_block(block.clone(), NOW).unwrap();
        }
        let tip = chain.tip();
        assert_eq!(tip.hash, main[2].hash());
        let accounts = chain.accounts().clone();

        // Commits fail from now on: the reorganisation finds the overdraft (no write
        // yet), and the commit marking s2.. invalid fails.
        medium.break_commits();
        assert!(matches!(
            chain.accept_block(s4.clone(), NOW),
            Err(ChainError::Store(_))
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
                BlockOutcome::Duplicate,
                "not flagged invalid: the store holds it as valid"
            );
        }
        assert_eq!(chain.accounts(), &accounts);
    }

    // The store agrees: nothing of the failed commit is there, and the branch is found
    // invalid again when its heavier block comes back.
    let mut chain = open_chain(&medium);
    assert_eq!(chain.tip().hash, main[2].hash());
    assert!(!chain.knows_block(&s4.hash()));
    assert_eq!(
        chain.accept_block(s2.clone(), NOW).unwrap(),
        BlockOutcome::Duplicate
    );
    match chain.accept_block(s4.clone(), NOW) {
        Err(ChainError::Invalid { hash, .. }) => assert_eq!(hash, s2.hash()),
        other => panic!("expected the overdraft, got {other:?}"),
    }
    assert_eq!(chain.tip().hash, main[2].hash());
    assert_consistent(&chain);
}

fn invalid_marks_survive_a_reopen<M: Medium>() {
    let p = params();
    let (a, b) = (alice(), bob());
    let a1 = child(&p, genesis(&p), vec![], 0);
    // b1 is fine on its own; b2 overdraws (only checkable against the state) and would
    // make the branch heavier.
    let b1 = child(&p, genesis(&p), vec![transfer(&b, &a, 40, 0)], 5);
    let b2 = child(&p, parent_of(&b1), vec![transfer(&b, &a, 40, 1)], 5);
    let b3 = child(&p, parent_of(&b2), vec![], 5);
    let medium = M::new();
    {
        let mut chain = open_chain(&medium);
        chain.accept_block(a1.clone(), NOW).unwrap();
        chain.accept_block(b1.clone(), NOW).unwrap();
        match chain.accept_block(b2.clone(), NOW) {
            Err(ChainError::Invalid {
                error: BlockError::Overdraft { .. },
                ..
            }) => {}
            other => panic!("expected the overdraft, got {other:?}"),
        }
        assert_eq!(chain.tip().hash, a1.hash());
    }
    let store = medium.open(&p.network).unwrap();
    let seen = snapshot(&store);
    let status = |hash: BlockHash| seen.headers.iter().find(|h| h.0 == hash).map(|h| h.2);
    assert_eq!(status(b2.hash()), Some(StoredStatus::Invalid));
    assert_eq!(status(b1.hash()), Some(StoredStatus::Valid));
    assert_eq!(status(a1.hash()), Some(StoredStatus::Valid));
    let mut chain = Chain::with_store(store, p, ChainConfig::default()).unwrap();
    assert_eq!(chain.tip().hash, a1.hash());
    let known_invalid = |result| {
        matches!(
            result,
            Err(ChainError::Invalid {
                error: BlockError::KnownInvalid(_),
                ..
            })
        )
    };
    assert!(known_invalid(chain.accept_block(b2.clone(), NOW)));
    assert!(matches!(
        chain.accept_block(b3, NOW),
        Err(ChainError::Invalid {
            error: BlockError::InvalidAncestor(_),
            ..
        })
    ));
    assert_eq!(
        chain.accept_block(b1, NOW).unwrap(),
        BlockOutcome::Duplicate
    );
    assert_consistent(&chain);
}

/// A side block within the store margin is stored; one further behind is held in memory
/// and an orphan waits in memory: neither survives a crash.
fn side_blocks_are_stored_and_held_and_orphan_blocks_are_not<M: Medium>() {
    let config = ChainConfig {
        store_margin: 2,
        ..ChainConfig::default()
    };
    let medium = M::new();
    let (near, far, orphan) = {
        let mut chain = open_chain_with(&medium, config);
        for _ in 0..10 {
            mine_tip(&mut chain);
        }
        let p = chain.params().clone();
        let near = child(
            &p,
            parent_of(&chain.block_at(8).unwrap().unwrap()),
            vec![],
            7,
        );
        assert!(matches!(
            chain.accept_block(near.clone(), NOW).unwrap(),
            BlockOutcome::Stored {
                tip_change: None,
                ..
            }
        ));
        let far = child(
            &p,
            parent_of(&chain.block_at(6).unwrap().unwrap()),
            vec![],
            7,
        );
        assert_eq!(
            chain.accept_block(far.clone(), NOW).unwrap(),
            BlockOutcome::Held { height: 7 }
        );
        let unknown = child(
            &p,
            parent_of(&chain.block_at(9).unwrap().unwrap()),
            vec![],
            8,
        );
        let orphan = child(&p, parent_of(&unknown), vec![], 8);
        assert_eq!(
            chain.accept_block(orphan.clone(), NOW).unwrap(),
            BlockOutcome::Orphan {
                missing_parent: unknown.hash()
            }
        );
        assert!(chain.knows_block(&far.hash()) && chain.knows_block(&orphan.hash()));
        (near, far, orphan)
    };
    let chain = open_chain_with(&medium, config);
    assert_eq!(chain.height(), 10);
    assert_eq!(chain.block(&near.hash()).unwrap().as_ref(), Some(&near));
    assert!(!chain.is_on_main_chain(&near.hash()));
    for gone in [&far, &orphan] {
        assert!(!chain.knows_block(&gone.hash()));
        assert_eq!(chain.block(&gone.hash()).unwrap(), None);
    }
    assert_eq!(chain.orphan_count(), 0);
    assert_eq!(chain.held_blocks(), (0, 0));
}

macro_rules! conformance {
    ($($module:ident: $medium:ty),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[test]
            fn a_batch_reads_back_as_committed_and_after_a_reopen() {
                super::a_batch_reads_back_as_committed_and_after_a_reopen::<$medium>();
            }

            #[test]
            fn a_failed_commit_writes_nothing() {
                super::a_failed_commit_writes_nothing::<$medium>();
            }

            #[test]
            fn a_store_of_another_network_is_refused() {
                super::a_store_of_another_network_is_refused::<$medium>();
            }

            #[test]
            fn a_reopened_chain_is_the_chain_that_was_closed() {
                super::a_reopened_chain_is_the_chain_that_was_closed::<$medium>();
            }

            #[test]
            fn a_reorganisation_commits_and_a_reopen_is_on_the_new_branch() {
                super::a_reorganisation_commits_and_a_reopen_is_on_the_new_branch::<$medium>();
            }

            #[test]
            fn a_failed_reorganisation_commit_leaves_memory_and_store_before_it() {
                super::a_failed_reorganisation_commit_leaves_memory_and_store_before_it::<
                    $medium,
                >();
            }

            #[test]
            fn a_failed_commit_marking_a_branch_invalid_leaves_memory_as_it_was() {
                super::a_failed_commit_marking_a_branch_invalid_leaves_memory_as_it_was::<
                    $medium,
                >();
            }

            #[test]
            fn invalid_marks_survive_a_reopen() {
                super::invalid_marks_survive_a_reopen::<$medium>();
            }

            #[test]
            fn side_blocks_are_stored_and_held_and_orphan_blocks_are_not() {
                super::side_blocks_are_stored_and_held_and_orphan_blocks_are_not::<$medium>();
            }
        }
    )*};
}

conformance!(on_redb: RedbFile, in_memory: MemoryDisk);
