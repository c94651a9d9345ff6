//! The mempool's incoming index (what pending spends pay each account, kept as
//! transactions come and go so that `REQ_ACCOUNT` never walks the mempool) always equals
//! a walk of the mempool, whatever is admitted, replaced, removed, pruned or revalidated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{key, split_micro, transfer_micro};
use proptest::prelude::*;
use tally_chain::{AccountState, Mempool, MempoolLimits, Spend};
use tally_core::{AccountId, Amount};

#[derive(Clone, Debug)]
enum Step {
    Transfer {
        from: u8,
        to: u8,
        micro: u64,
        sequence: u64,
    },
    Split {
        from: u8,
        to: (u8, u8),
        micro: u64,
        sequence: u64,
    },
    Remove {
        from: u8,
        sequence: u64,
    },
    Prune {
        from: u8,
        next: u64,
    },
    Revalidate {
        from: u8,
        next: u64,
        balance: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0u8..4;
    prop_oneof![
        (who.clone(), who.clone(), 1u64..1_000, 0u64..6).prop_map(|(from, to, micro, sequence)| {
            Step::Transfer {
                from,
                to,
                micro,
                sequence,
            }
        }),
        (
            who.clone(),
            (who.clone(), who.clone()),
            1u64..1_000,
            0u64..6
        )
            .prop_map(|(from, to, micro, sequence)| Step::Split {
                from,
                to,
                micro,
                sequence
            }),
        (who.clone(), 0u64..6).prop_map(|(from, sequence)| Step::Remove { from, sequence }),
        (who.clone(), 0u64..6).prop_map(|(from, next)| Step::Prune { from, next }),
        (who, 0u64..6, 0u64..5_000).prop_map(|(from, next, balance)| Step::Revalidate {
            from,
            next,
            balance
        }),
    ]
}

/// What the mempool pays `account`, by walking it.
fn walked(pool: &Mempool, account: &AccountId) -> u64 {
    pool.transactions()
        .filter_map(|tx| Spend::of(tx).ok())
        .flat_map(|spend| spend.payments().to_vec())
        .filter(|p| p.recipient == *account)
        .map(|p| p.amount.microcash())
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_incoming_index_always_equals_a_walk(steps in prop::collection::vec(step(), 1..60)) {
        let keys: Vec<_> = (1..=4).map(key).collect();
        let rich = AccountState { balance: Amount::from_microcash(1_000_000_000), next_sequence: 0 };
        let mut pool = Mempool::new(MempoolLimits { max_transactions: 1_000, max_per_account: 8 });
        for step in steps {
            match step {
                Step::Transfer { from, to, micro, sequence } => {
                    let tx = transfer_micro(&keys[from as usize], keys[to as usize].account(), micro, sequence);
                    let _ = pool.insert(tx, rich);
                }
                Step::Split { from, to, micro, sequence } => {
                    if to.0 == to.1 { continue; }
                    let outputs = [(keys[to.0 as usize].account(), micro), (keys[to.1 as usize].account(), micro + 1)];
                    let _ = pool.insert(split_micro(&keys[from as usize], &outputs, sequence), rich);
                }
                Step::Remove { from, sequence } => {
                    pool.remove(&keys[from as usize].account(), sequence);
                }
                Step::Prune { from, next } => {
                    pool.prune(&keys[from as usize].account(), AccountState { next_sequence: next, ..rich });
                }
                Step::Revalidate { from, next, balance } => {
                    let state = AccountState { balance: Amount::from_microcash(balance), next_sequence: next };
                    pool.revalidate(&keys[from as usize].account(), state);
                }
            }
            for k in &keys {
                prop_assert_eq!(pool.pending_incoming(&k.account()).microcash(), walked(&pool, &k.account()));
            }
        }
    }
}
