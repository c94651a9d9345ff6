//! Bearer coins on a proof-of-work network, against a real miner (in-process, over TCP,
//! its chain in real files): withdraw, detect, change, export, import (a second import
//! harmless, a spent coin refused), find, and deposit, each proven by a transaction
//! buried under a block, with the total of accounts and coins checked to stay constant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use tally_core::{AccountId, Amount, SecretKey};
use tally_wallet::Wallet;
use tally_wallet::coins::{
    self, ChainCoins, CoinFolder, CoinLedger, CoinStore, Grade, ImportOutcome, RandomKeys, cash_of,
};

fn cash(n: u64) -> Amount {
    Amount::from_cash(n).unwrap()
}

/// Confirmed balance of `account` at the miner's tip.
async fn balance(net: &ChainCoins, account: &AccountId) -> u64 {
    net.miners
        .account(account)
        .await
        .unwrap()
        .0
        .balance
        .microcash()
        / 1_000_000
}

fn bank(store: &CoinStore) -> u64 {
    let mut held = store.list(CoinFolder::Bank).unwrap();
    held.extend(store.list(CoinFolder::Fracked).unwrap());
    cash_of(&held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_coins_go_out_and_come_back_and_the_total_never_changes() {
    let dir = tempfile::tempdir().unwrap();
    let alice_key = SecretKey::generate();
    let bob_key = SecretKey::generate();
    let contract = common::chain::contract("coins-chain-test", alice_key.account(), 100);
    let node = common::chain::start_miner(&contract, &dir.path().join("miner")).await;
    let net = common::chain::coins(&contract, &node);
    let mut alice = Wallet::open(&dir.path().join("alice")).unwrap();
    alice.add_key(Some(alice_key.clone()), None).unwrap();
    let mut bob = Wallet::open(&dir.path().join("bob")).unwrap();
    bob.add_key(Some(bob_key.clone()), None).unwrap();
    let carol = Wallet::open(&dir.path().join("carol")).unwrap();
    let alice_coins = CoinStore::open(alice.dir(), contract.id()).unwrap();
    let bob_coins = CoinStore::open(bob.dir(), contract.id()).unwrap();
    let carol_coins = CoinStore::open(carol.dir(), contract.id()).unwrap();
    let total = async |net: &ChainCoins| {
        balance(net, &alice_key.account()).await
            + balance(net, &bob_key.account()).await
            + bank(&alice_coins)
            + bank(&bob_coins)
            + cash_of(&alice_coins.list(CoinFolder::Export).unwrap())
    };

    // Withdraw 31 cash: 25 + 5 + 1, one split, buried under a block.
    let banked = coins::withdraw(
        &alice,
        &net,
        &alice_coins,
        &mut RandomKeys,
        &alice_key,
        cash(31),
    )
    .await
    .unwrap();
    assert_eq!(cash_of(&banked), 31);
    assert_eq!(banked.len(), 3);
    assert_eq!(balance(&net, &alice_key.account()).await, 69);
    assert_eq!(total(&net).await, 100);

    // The miner sees every coin holding its denomination, unspent.
    let held = alice_coins.list(CoinFolder::Bank).unwrap();
    let pairs: Vec<_> = held.iter().map(|c| (c.account, c.denomination)).collect();
    let graded = net.detect(&pairs, &Default::default()).await;
    assert!(
        graded.iter().all(|d| d.grade == Grade::Authentic),
        "{graded:?}"
    );

    // Change the 25 into smaller coins (one split from the coin's key).
    let twenty_five = held.iter().find(|c| c.denomination.cash() == 25).unwrap();
    let made = coins::change(&alice, &net, &alice_coins, &mut RandomKeys, twenty_five)
        .await
        .unwrap();
    assert_eq!(cash_of(&made), 25);
    assert!(made.len() > 1);
    assert_eq!(bank(&alice_coins), 31);

    // Export 6 cash as a token; Bob imports it: detected, powned to his keys.
    let exported = coins::export(&alice, &net, &alice_coins, &mut RandomKeys, cash(6))
        .await
        .unwrap();
    let token = tally_core::encode_token(&exported).unwrap();
    assert_eq!(bank(&alice_coins), 25);
    let import = async |wallet: &Wallet, store: &CoinStore| {
        coins::import(
            wallet,
            &net,
            store,
            &mut RandomKeys,
            tally_core::decode_token(&token).unwrap(),
        )
        .await
        .unwrap()
    };
    let outcomes = import(&bob, &bob_coins).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ImportOutcome::Banked { .. })),
        "{outcomes:?}"
    );
    assert_eq!(bank(&bob_coins), 6);
    // A second import of the same token changes nothing.
    let again = import(&bob, &bob_coins).await;
    assert!(
        again
            .iter()
            .all(|o| matches!(o, ImportOutcome::AlreadyHeld { .. })),
        "{again:?}"
    );
    assert_eq!(bank(&bob_coins), 6);
    // Carol, given the same token after Bob powned it, gets nothing: the keys are spent.
    let late = import(&carol, &carol_coins).await;
    assert!(
        late.iter().all(|o| matches!(
            o,
            ImportOutcome::Refused {
                grade: Grade::Counterfeit,
                ..
            }
        )),
        "{late:?}"
    );
    assert_eq!(bank(&carol_coins), 0);

    // Alice learns her exported coins were taken.
    let found = coins::find(&alice, &net, &alice_coins, &mut RandomKeys)
        .await
        .unwrap();
    assert_eq!(cash_of(&found.sent), 6);
    assert_eq!(total(&net).await, 100);

    // Bob deposits his coins into his account.
    for coin in bob_coins.list(CoinFolder::Bank).unwrap() {
        coins::deposit(&bob, &net, &bob_coins, &coin, bob_key.account())
            .await
            .unwrap();
    }
    assert_eq!(bank(&bob_coins), 0);
    assert_eq!(balance(&net, &bob_key.account()).await, 6);
    assert_eq!(total(&net).await, 100);
    assert!(
        alice_coins.list(CoinFolder::Limbo).unwrap().is_empty()
            && bob_coins.list(CoinFolder::Limbo).unwrap().is_empty(),
        "nothing is left in flight"
    );
    // Every spend is kept as a chain receipt.
    assert!(
        std::fs::read_dir(bob.dir().join("receipts").join("chain"))
            .unwrap()
            .count()
            >= 4
    );
    drop(node);
}
