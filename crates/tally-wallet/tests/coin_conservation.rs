//! The property DESIGN §7 promises for coins, against four real validators: across any
//! sequence of withdraw, change, join, export/import, pown and deposit between two wallets, the
//! accounts' balances plus the coins held stay what they were, and no coin is in both
//! wallets' Banks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{CASH, Net, cash, total};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tally_core::{Denomination, SecretKey};
use tally_wallet::coins::{self, CoinFolder, CoinStore, RandomKeys};
use tally_wallet::{Wallet, ops};

#[derive(Clone, Debug)]
enum Op {
    Withdraw { wallet: usize, cash: u64 },
    Change { wallet: usize },
    Hand { from: usize, cash: u64 },
    Pown { wallet: usize },
    Deposit { wallet: usize },
    Join { wallet: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize, 1..130u64).prop_map(|(wallet, cash)| Op::Withdraw { wallet, cash }),
        (0..2usize).prop_map(|wallet| Op::Change { wallet }),
        (0..2usize, 1..60u64).prop_map(|(from, cash)| Op::Hand { from, cash }),
        (0..2usize).prop_map(|wallet| Op::Pown { wallet }),
        (0..2usize).prop_map(|wallet| Op::Deposit { wallet }),
        (0..2usize).prop_map(|wallet| Op::Join { wallet }),
    ]
}

struct Side {
    key: SecretKey,
    wallet: Wallet,
    store: CoinStore,
}

fn bank(store: &CoinStore) -> Vec<tally_wallet::coins::ListedCoin> {
    store.list(CoinFolder::Bank).unwrap()
}

/// Runs `ops`, checking the invariants after each; operations may fail (not enough coins
/// or funds), which must change nothing.
async fn run(net: &Net, case: usize, ops_list: Vec<Op>) -> Result<(), TestCaseError> {
    let client = net.client();
    let mut sides = Vec::new();
    for i in 0..2 {
        let key = SecretKey::generate();
        let (wallet, store) = net.wallet(&format!("case-{case}-{i}"), Some(&key));
        let (payer_wallet, _) = net.wallet("payer", Some(&net.payer));
        ops::pay(&payer_wallet, &client, &net.payer, key.account(), cash(300))
            .await
            .unwrap();
        sides.push(Side { key, wallet, store });
    }
    let mut keys = RandomKeys;
    for op in ops_list {
        match op {
            Op::Withdraw { wallet, cash: c } => {
                let s = &sides[wallet];
                let _ =
                    coins::withdraw(&s.wallet, &client, &s.store, &mut keys, &s.key, cash(c)).await;
            }
            Op::Change { wallet } => {
                let s = &sides[wallet];
                if let Some(coin) = bank(&s.store)
                    .into_iter()
                    .find(|c| c.denomination != Denomination::One)
                {
                    coins::change(&s.wallet, &client, &s.store, &mut keys, &coin)
                        .await
                        .unwrap();
                }
            }
            Op::Hand { from, cash: c } => {
                let (giver, taker) = (&sides[from], &sides[1 - from]);
                if let Ok(handed) =
                    coins::export(&giver.wallet, &client, &giver.store, &mut keys, cash(c)).await
                {
                    let outcomes =
                        coins::import(&taker.wallet, &client, &taker.store, &mut keys, handed)
                            .await
                            .unwrap();
                    prop_assert!(
                        outcomes
                            .iter()
                            .all(|o| matches!(o, coins::ImportOutcome::Banked { .. })),
                        "{:?}",
                        outcomes
                    );
                    coins::find(&giver.wallet, &client, &giver.store, &mut RandomKeys)
                        .await
                        .unwrap();
                }
            }
            Op::Pown { wallet } => {
                let s = &sides[wallet];
                if let Some(coin) = bank(&s.store).first() {
                    coins::pown(&s.wallet, &client, &s.store, &mut keys, coin)
                        .await
                        .unwrap();
                }
            }
            Op::Join { wallet } => {
                // Five ones make a five, five fives a 25, four 25s a 100.
                let s = &sides[wallet];
                let coins_held = bank(&s.store);
                for (denomination, count) in [
                    (Denomination::One, 5),
                    (Denomination::Five, 5),
                    (Denomination::TwentyFive, 4),
                ] {
                    let parts: Vec<_> = coins_held
                        .iter()
                        .filter(|c| c.denomination == denomination)
                        .take(count)
                        .copied()
                        .collect();
                    if parts.len() == count {
                        coins::join(&s.wallet, &client, &s.store, &mut keys, &parts)
                            .await
                            .unwrap();
                        break;
                    }
                }
            }
            Op::Deposit { wallet } => {
                let s = &sides[wallet];
                if let Some(coin) = bank(&s.store).first() {
                    coins::deposit(&s.wallet, &client, &s.store, coin, s.key.account())
                        .await
                        .unwrap();
                }
            }
        }
        let mut held = 0;
        for s in &sides {
            held += net.balance(&s.key.account()).await + total(&s.store);
            prop_assert!(
                s.store.list(CoinFolder::Limbo).unwrap().is_empty(),
                "nothing left in Limbo"
            );
            prop_assert!(
                s.store.list(CoinFolder::Export).unwrap().is_empty(),
                "every handed coin was taken"
            );
        }
        prop_assert_eq!(held, 600 * CASH, "value held after {:?}", op);
        let first: HashSet<_> = bank(&sides[0].store)
            .into_iter()
            .map(|c| c.account)
            .collect();
        prop_assert!(
            bank(&sides[1].store)
                .iter()
                .all(|c| !first.contains(&c.account))
        );
    }
    Ok(())
}

#[test]
fn value_is_conserved_across_any_sequence_of_coin_operations() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let net = runtime.block_on(Net::start_funded(Duration::from_millis(200), 100_000));
    let mut runner = TestRunner::new(Config {
        cases: 16,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&proptest::collection::vec(op(), 1..10), |ops_list| {
        let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime.block_on(run(&net, case, ops_list))
    });
    runtime.block_on(net.shutdown());
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
