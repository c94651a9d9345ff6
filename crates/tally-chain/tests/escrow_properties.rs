//! Property test of escrows on a chain: random locks, claims (with the right secret or a
//! wrong one), refunds and transfers go through the mempool into mined blocks, with random
//! reorganisations to heavier branches of empty blocks. After every step:
//!
//! - supply (balances plus open escrows) is genesis plus one reward per block;
//! - replaying the main chain into a fresh chain gives the same accounts and escrows (so
//!   every undo was exact, whatever the reorganisations undid);
//! - no escrow was ever seen claimed and later refunded (or the other way) without a
//!   reorganisation having undone the first settlement;
//! - the mempool holds only what the next block could take: mining a block leaves no
//!   pending settlement whose escrow is settled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseResult, TestRunner};
use tally_chain::{BlockOutcome, Chain, Transaction};
use tally_core::{
    Amount, EscrowClaim, EscrowId, EscrowLock, EscrowRefund, EscrowSecret, Order, SecretKey,
    Settlement, SignedOrder,
};

/// One thing the test does to the chain.
#[derive(Clone, Debug)]
enum Step {
    /// Lock `cash` from key `payer` to the other key, until `blocks` block times past the
    /// median time.
    Lock { payer: bool, cash: u64, blocks: u64 },
    /// Claim the `pick`-th open escrow, with its secret or a wrong one.
    Claim { pick: usize, right: bool },
    /// Refund the `pick`-th open escrow.
    Refund { pick: usize },
    /// A transfer of `cash` between the two keys.
    Pay { from: bool, cash: u64 },
    /// Mine the template.
    Mine,
    /// Undo the last `depth` blocks with a heavier branch of empty blocks.
    Reorg { depth: u64 },
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (any::<bool>(), 1u64..20, 1u64..8)
            .prop_map(|(payer, cash, blocks)| Step::Lock { payer, cash, blocks }),
        3 => (0usize..8, prop::bool::weighted(0.8))
            .prop_map(|(pick, right)| Step::Claim { pick, right }),
        2 => (0usize..8).prop_map(|pick| Step::Refund { pick }),
        1 => (any::<bool>(), 1u64..10).prop_map(|(from, cash)| Step::Pay { from, cash }),
        5 => Just(Step::Mine),
        1 => (1u64..4).prop_map(|depth| Step::Reorg { depth }),
    ]
}

/// What the cases did, summed, so the test can tell it exercised what it claims to.
#[derive(Debug, Default)]
struct Stats {
    locks: usize,
    claims: usize,
    refunds: usize,
    wrong_secrets_refused: usize,
    settlements_undone: usize,
}

struct World {
    chain: Chain,
    stats: Stats,
    keys: [SecretKey; 2],
    /// Every escrow locked, with its secret.
    escrows: Vec<(EscrowId, EscrowSecret)>,
    /// Makes each secret different.
    salt: u64,
    reorgs: u64,
}

impl World {
    fn new() -> World {
        World {
            chain: chain(),
            stats: Stats::default(),
            keys: [alice(), bob()],
            escrows: Vec::new(),
            salt: 0,
            reorgs: 0,
        }
    }

    fn key(&self, which: bool) -> (&SecretKey, &SecretKey) {
        let [a, b] = &self.keys;
        if which { (a, b) } else { (b, a) }
    }

    /// The sequence `key`'s next transaction takes: after its pending ones.
    fn next_sequence(&self, key: &SecretKey) -> u64 {
        let account = key.account();
        let pending = self.chain.mempool().pending_for(&account);
        pending
            .iter()
            .filter_map(|tx| tx.order.sequence())
            .max()
            .map_or(self.chain.account(&account).next_sequence, |s| s + 1)
    }

    fn open(&self) -> Vec<(EscrowId, EscrowSecret)> {
        self.escrows
            .iter()
            .filter(|(id, _)| {
                self.chain
                    .escrow(id)
                    .is_some_and(|e| e.settlement == Settlement::Open)
            })
            .copied()
            .collect()
    }

    fn step(&mut self, step: &Step) {
        let network = params().network;
        let median = self.chain.median_time();
        match *step {
            Step::Lock {
                payer,
                cash,
                blocks,
            } => {
                let secret = EscrowSecret::from(rand_bytes(self.salt));
                self.salt += 1;
                let (from, to) = self.key(payer);
                let order = Order::from(EscrowLock {
                    payer: from.account(),
                    sequence: self.next_sequence(from),
                    payee: to.account(),
                    amount: Amount::from_microcash(cash * CASH),
                    hash_lock: secret.hash_lock(),
                    deadline: median.max(T0) + blocks * 1000,
                    counterpart: None,
                });
                let id = order.digest(&network);
                let tx = Transaction::sign(order, from, &network);
                if self.chain.submit_transaction(tx).is_ok() {
                    self.escrows.push((id, secret));
                    self.stats.locks += 1;
                }
            }
            Step::Claim { pick, right } => {
                let open = self.open();
                if let Some((id, secret)) = open.get(pick % open.len().max(1)) {
                    let secret = if right {
                        *secret
                    } else {
                        EscrowSecret::from([0xee; 32])
                    };
                    let tx =
                        Transaction::from(SignedOrder::unsigned(Order::EscrowClaim(EscrowClaim {
                            escrow: *id,
                            secret,
                        })));
                    let taken = self.chain.submit_transaction(tx).is_ok();
                    let deadline = self.chain.escrow(id).map(|e| e.lock.deadline).unwrap();
                    assert!(
                        !taken || (right && median < deadline),
                        "a claim the next block cannot take was admitted"
                    );
                    self.stats.claims += usize::from(taken);
                    self.stats.wrong_secrets_refused += usize::from(!right);
                }
            }
            Step::Refund { pick } => {
                let open = self.open();
                if let Some((id, _)) = open.get(pick % open.len().max(1)) {
                    let tx = Transaction::from(SignedOrder::unsigned(Order::EscrowRefund(
                        EscrowRefund { escrow: *id },
                    )));
                    let taken = self.chain.submit_transaction(tx).is_ok();
                    let deadline = self.chain.escrow(id).map(|e| e.lock.deadline).unwrap();
                    assert!(
                        !taken || median >= deadline,
                        "a refund before the deadline was admitted"
                    );
                    self.stats.refunds += usize::from(taken);
                }
            }
            Step::Pay { from, cash } => {
                let (from, to) = self.key(from);
                let sequence = self.next_sequence(from);
                let tx = transfer_micro(from, to.account(), cash * CASH, sequence);
                let _ = self.chain.submit_transaction(tx);
            }
            Step::Mine => {
                mine_tip(&mut self.chain);
            }
            Step::Reorg { depth } => {
                let height = self.chain.height();
                if height < depth {
                    return;
                }
                let settled_before: Vec<EscrowId> = self
                    .escrows
                    .iter()
                    .map(|(id, _)| *id)
                    .filter(|id| {
                        self.chain
                            .escrow(id)
                            .is_some_and(|e| e.settlement != Settlement::Open)
                    })
                    .collect();
                let p = params();
                let fork = height - depth;
                let base = self.chain.hash_at(fork).unwrap();
                let mut parent = common::Parent {
                    hash: base,
                    height: fork,
                };
                // One block more than was undone: the branch is heavier.
                for _ in 0..=depth {
                    let mut block = draft(&p, parent, vec![], 0);
                    block.header.timestamp_ms = self
                        .chain
                        .header(&parent.hash)
                        .map_or(T0, |h| h.timestamp_ms.max(T0))
                        + 1000
                        + 7
                        + self.reorgs;
                    let block = seal(block);
                    parent = parent_of(&block);
                    match self.chain.accept_block(block, NOW).unwrap() {
                        BlockOutcome::Stored { .. } => {}
                        other => panic!("a side block was not stored: {other:?}"),
                    }
                }
                self.reorgs += 1;
                self.stats.settlements_undone += settled_before
                    .iter()
                    .filter(|id| {
                        self.chain
                            .escrow(id)
                            .is_none_or(|e| e.settlement == Settlement::Open)
                    })
                    .count();
            }
        }
    }

    fn check(&self) -> TestCaseResult {
        prop_assert_eq!(
            self.chain.supply(),
            self.chain.params().supply_at(self.chain.height()),
            "balances plus open escrows are genesis plus rewards"
        );
        for tx in self.chain.mempool().transactions() {
            if let Order::EscrowClaim(EscrowClaim { escrow, .. })
            | Order::EscrowRefund(EscrowRefund { escrow }) = &tx.order
            {
                prop_assert_eq!(
                    self.chain.escrow(escrow).map(|e| e.settlement),
                    Some(Settlement::Open),
                    "a pending settlement of an escrow that is not open"
                );
            }
        }
        Ok(())
    }
}

fn rand_bytes(n: u64) -> [u8; 32] {
    let digest = tally_core::sha256(&[b"escrow-properties", &n.to_le_bytes()]);
    *digest.as_bytes()
}

fn run_case(steps: &[Step], stats: &mut Stats) -> TestCaseResult {
    let mut world = World::new();
    for step in steps {
        world.step(step);
        world.check()?;
    }
    // Whatever was undone and redone, the chain is what its main-chain blocks make.
    assert_consistent(&world.chain);
    stats.locks += world.stats.locks;
    stats.claims += world.stats.claims;
    stats.refunds += world.stats.refunds;
    stats.wrong_secrets_refused += world.stats.wrong_secrets_refused;
    stats.settlements_undone += world.stats.settlements_undone;
    Ok(())
}

#[test]
fn escrows_conserve_money_and_undo_exactly_through_mining_and_reorganisations() {
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 48,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let stats = std::cell::RefCell::new(Stats::default());
    runner
        .run(&prop::collection::vec(arb_step(), 10..40), |steps| {
            run_case(&steps, &mut stats.borrow_mut())
        })
        .unwrap();
    let stats = stats.into_inner();
    eprintln!("{stats:?}");
    assert!(stats.locks >= 48, "{stats:?}");
    assert!(stats.claims >= 10, "{stats:?}");
    assert!(stats.refunds >= 5, "{stats:?}");
    assert!(stats.wrong_secrets_refused >= 5, "{stats:?}");
    assert!(stats.settlements_undone >= 1, "{stats:?}");
}
