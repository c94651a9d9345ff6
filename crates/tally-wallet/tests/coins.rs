//! Bearer coins against four real validators on 127.0.0.1 (real TCP, real redb files):
//! withdraw, change, export, import, pown, deposit, detect, fix and find, each asserted,
//! with the total of accounts and coins held checked to stay constant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{CASH, Net, cash, held, pending_files, total};
use tally_core::{Coin, Order, SecretKey, SignedOrder, Transfer};
use tally_proto::Packet;
use tally_wallet::coins::{self, CoinFolder, Grade, ImportOutcome, ListedCoin, RandomKeys};

/// The previous holder of a coin races: its own order for the coin's slot, sent straight to
/// validator `i`, gets that validator's vote.
async fn race(net: &Net, secret: &SecretKey, amount: tally_core::Amount, i: usize) {
    let order = SignedOrder::sign(
        Order::Transfer(Transfer {
            sender: secret.account(),
            recipient: SecretKey::generate().account(),
            amount,
            sequence: 0,
        }),
        secret,
        &net.contract.id(),
    );
    assert!(matches!(net.pay_at(i, &order).await, Packet::RespPay(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coins_go_out_and_come_back_and_the_total_never_changes() {
    let net = Net::start(Duration::from_millis(200)).await;
    let client = net.client();
    let alice_key = SecretKey::generate();
    let (alice, alice_coins) = net.wallet("alice", Some(&net.payer));
    let (bob, bob_coins) = net.wallet("bob", Some(&alice_key));
    let payer = net.payer.account();

    // Withdraw 281 cash: the fewest coins, in one Split.
    let banked = coins::withdraw(
        &alice,
        &client,
        &alice_coins,
        &mut RandomKeys,
        &net.payer,
        cash(281),
    )
    .await
    .unwrap();
    assert_eq!(banked.len(), 4);
    assert_eq!(held(&alice_coins, CoinFolder::Bank), [250, 25, 5, 1]);
    assert_eq!(net.balance(&payer).await, 719 * CASH);
    let bank = alice_coins.list(CoinFolder::Bank).unwrap();
    let pairs: Vec<_> = bank.iter().map(|c| (c.account, c.denomination)).collect();
    let grades = coins::detect(&client, &pairs, &Default::default()).await;
    assert!(
        grades.iter().all(|d| d.grade == Grade::Authentic),
        "{grades:?}"
    );
    for coin in &bank {
        let coin = alice_coins.read(coin).unwrap();
        assert!(
            coin.funding.is_some(),
            "the Split certificate is kept in the coin file"
        );
    }

    // Export 3 cash: the Bank has no exact set (250, 25, 5, 1 less what goes out), so the
    // wallet makes change first, in as many rounds as it takes.
    let exported = coins::export(&alice, &client, &alice_coins, &mut RandomKeys, cash(30))
        .await
        .unwrap();
    assert_eq!(
        exported.iter().map(|c| c.denomination.cash()).sum::<u64>(),
        30
    );
    let three = coins::export(&alice, &client, &alice_coins, &mut RandomKeys, cash(3))
        .await
        .unwrap();
    assert_eq!(three.iter().map(|c| c.denomination.cash()).sum::<u64>(), 3);
    assert_eq!(total(&alice_coins), 248 * CASH);
    assert_eq!(
        held(&alice_coins, CoinFolder::Export).iter().sum::<u64>(),
        33
    );

    // Bob imports the 30 as a token: detected, powned to his own keys, banked.
    let token = tally_core::encode_token(&exported).unwrap();
    let arrived = tally_core::decode_token(&token).unwrap();
    let outcomes = coins::import(&bob, &client, &bob_coins, &mut RandomKeys, arrived.clone())
        .await
        .unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ImportOutcome::Banked { .. })),
        "{outcomes:?}"
    );
    assert_eq!(total(&bob_coins), 30 * CASH);
    for coin in &exported {
        assert_eq!(
            net.balance(&coin.account()).await,
            0,
            "the old secret holds nothing now"
        );
    }
    // Coins of another network refuse the whole import, before anything is written.
    let stranger = Coin::generate(
        tally_core::NetworkId(tally_core::sha256(&[b"another network"])),
        tally_core::Denomination::Five,
    );
    let mixed = vec![arrived[0].clone(), stranger];
    assert!(matches!(
        coins::import(&bob, &client, &bob_coins, &mut RandomKeys, mixed).await,
        Err(coins::CoinOpError::WrongNetwork { .. })
    ));
    assert!(bob_coins.list(CoinFolder::Import).unwrap().is_empty());
    assert_eq!(total(&bob_coins), 30 * CASH);

    // A second import of the same coins changes nothing.
    let again = coins::import(&bob, &client, &bob_coins, &mut RandomKeys, arrived)
        .await
        .unwrap();
    assert!(
        again
            .iter()
            .all(|o| matches!(o, ImportOutcome::AlreadyHeld { .. }))
    );
    assert_eq!(total(&bob_coins), 30 * CASH);

    // Alice learns the 30 were taken; the 3 she still holds a copy of stay in Export.
    let report = coins::find(&alice, &client, &alice_coins, &mut RandomKeys)
        .await
        .unwrap();
    assert_eq!(report.sent.len(), exported.len());
    assert_eq!(held(&alice_coins, CoinFolder::Sent).iter().sum::<u64>(), 30);
    assert_eq!(
        held(&alice_coins, CoinFolder::Export).iter().sum::<u64>(),
        3
    );

    // Reclaiming a taken coin fails and files it under Sent; the untaken 3 come back.
    let taken = alice_coins.locate(&exported[0].account()).unwrap().unwrap();
    assert_eq!(taken.folder, CoinFolder::Sent);
    let stale = alice_coins.move_to(&taken, CoinFolder::Export).unwrap();
    assert!(
        coins::reclaim(&alice, &client, &alice_coins, &mut RandomKeys, &stale)
            .await
            .is_err()
    );
    assert_eq!(
        alice_coins.locate(&stale.account).unwrap().unwrap().folder,
        CoinFolder::Sent
    );
    for coin in alice_coins.list(CoinFolder::Export).unwrap() {
        coins::reclaim(&alice, &client, &alice_coins, &mut RandomKeys, &coin)
            .await
            .unwrap();
    }
    assert_eq!(total(&alice_coins), 251 * CASH);
    assert!(held(&alice_coins, CoinFolder::Export).is_empty());

    // Bob deposits his coins into his account.
    for coin in bob_coins.list(CoinFolder::Bank).unwrap() {
        coins::deposit(&bob, &client, &bob_coins, &coin, alice_key.account())
            .await
            .unwrap();
    }
    assert_eq!(total(&bob_coins), 0);
    assert_eq!(net.balance(&alice_key.account()).await, 30 * CASH);

    // Conservation: accounts plus coins held is what the genesis gave.
    assert_eq!(
        net.balance(&payer).await + net.balance(&alice_key.account()).await + total(&alice_coins),
        1000 * CASH
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coin_whose_slot_holds_a_foreign_vote_is_never_counted() {
    let net = Net::start(Duration::from_millis(200)).await;
    let client = net.client();
    let (alice, alice_coins) = net.wallet("alice", Some(&net.payer));
    let (bob, bob_coins) = net.wallet("bob", None);
    coins::withdraw(
        &alice,
        &client,
        &alice_coins,
        &mut RandomKeys,
        &net.payer,
        cash(5),
    )
    .await
    .unwrap();
    let coins_out = coins::export(&alice, &client, &alice_coins, &mut RandomKeys, cash(5))
        .await
        .unwrap();
    let coin: &Coin = &coins_out[0];

    // The previous holder races: its own order for the coin's slot gets validator 0's vote.
    race(&net, &coin.secret, coin.amount(), 0).await;

    let outcomes = coins::import(
        &bob,
        &client,
        &bob_coins,
        &mut RandomKeys,
        coins_out.clone(),
    )
    .await
    .unwrap();
    assert!(
        matches!(&outcomes[..], [ImportOutcome::Refused { .. }]),
        "{outcomes:?}"
    );
    assert_eq!(total(&bob_coins), 0, "never counted");
    assert_eq!(held(&bob_coins, CoinFolder::Counterfeit), [5]);
    assert_eq!(
        net.balance(&coin.account()).await,
        5 * CASH,
        "bob signed nothing"
    );

    // Alice, who exported it, cannot take it back either: she signs nothing while a vote
    // for another order holds its slot, and her fresh key does not linger in Limbo.
    let exported = alice_coins.list(CoinFolder::Export).unwrap()[0];
    assert!(matches!(
        coins::reclaim(&alice, &client, &alice_coins, &mut RandomKeys, &exported).await,
        Err(coins::CoinOpError::Contested(_))
    ));
    assert!(alice_coins.list(CoinFolder::Limbo).unwrap().is_empty());
    assert_eq!(held(&alice_coins, CoinFolder::Export), [5]);
    assert!(alice.pending(&coin.account()).unwrap().is_none());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_validator_fracks_coins_and_fix_mends_them() {
    // Validators never sync on their own here: only the wallet brings one up to date.
    let hour = Duration::from_secs(3600);
    let mut net = Net::start(hour).await;
    let client = net.client();
    let (alice, alice_coins) = net.wallet("alice", Some(&net.payer));
    net.stop(3).await;
    coins::withdraw(
        &alice,
        &client,
        &alice_coins,
        &mut RandomKeys,
        &net.payer,
        cash(30),
    )
    .await
    .unwrap();
    net.restart(3, hour).await;
    let bank: Vec<ListedCoin> = alice_coins.list(CoinFolder::Bank).unwrap();
    let pairs: Vec<_> = bank.iter().map(|c| (c.account, c.denomination)).collect();
    let before = coins::detect(&client, &pairs, &Default::default()).await;
    assert!(
        before
            .iter()
            .all(|d| d.grade == Grade::Fracked && d.lagging == [3]),
        "{before:?}"
    );

    let after = coins::fix(&alice, &client, &alice_coins, &bank)
        .await
        .unwrap();
    assert!(
        after.iter().all(|d| d.grade == Grade::Authentic),
        "{after:?}"
    );
    assert_eq!(held(&alice_coins, CoinFolder::Bank), [25, 5]);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_withdraw_is_finished_by_find() {
    let mut net = Net::start(Duration::from_millis(200)).await;
    let client = net.client();
    let (alice, alice_coins) = net.wallet("alice", Some(&net.payer));
    // Two validators down: no quorum, but the others hold votes, so the order stays
    // journaled and its coins wait in Limbo.
    net.stop(2).await;
    net.stop(3).await;
    let failed = coins::withdraw(
        &alice,
        &client,
        &alice_coins,
        &mut RandomKeys,
        &net.payer,
        cash(26),
    )
    .await;
    assert!(failed.is_err());
    assert_eq!(held(&alice_coins, CoinFolder::Limbo), [25, 1]);
    assert!(alice.pending(&net.payer.account()).unwrap().is_some());

    // While they are down, find says what it could not finish and keeps it journaled.
    let early = coins::find(&alice, &client, &alice_coins, &mut RandomKeys)
        .await
        .unwrap();
    assert_eq!(early.finished, 0);
    assert_eq!(early.unfinished.len(), 1, "{early:?}");
    assert_eq!(early.unfinished[0].0, net.payer.account());
    assert_eq!(early.limbo.len(), 2);
    assert!(alice.pending(&net.payer.account()).unwrap().is_some());

    net.restart(2, Duration::from_millis(200)).await;
    net.restart(3, Duration::from_millis(200)).await;
    let report = coins::find(&alice, &client, &alice_coins, &mut RandomKeys)
        .await
        .unwrap();
    assert_eq!(report.finished, 1);
    assert_eq!(held(&alice_coins, CoinFolder::Bank), [25, 1]);
    assert!(held(&alice_coins, CoinFolder::Limbo).is_empty());
    assert_eq!(net.balance(&net.payer.account()).await, 974 * CASH);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_breaks_a_coin_and_join_makes_it_whole_again() {
    let net = Net::start(Duration::from_millis(200)).await;
    let client = net.client();
    let (alice, store) = net.wallet("alice", Some(&net.payer));
    coins::withdraw(
        &alice,
        &client,
        &store,
        &mut RandomKeys,
        &net.payer,
        cash(25),
    )
    .await
    .unwrap();
    let coin = store.list(CoinFolder::Bank).unwrap()[0];
    let parts = coins::change(&alice, &client, &store, &mut RandomKeys, &coin)
        .await
        .unwrap();
    assert_eq!(held(&store, CoinFolder::Bank), [5, 5, 5, 5, 5]);
    assert_eq!(net.balance(&coin.account).await, 0);

    // Joining needs a total that is one coin, and each coin once.
    let bank = store.list(CoinFolder::Bank).unwrap();
    assert!(
        coins::join(&alice, &client, &store, &mut RandomKeys, &bank[..2])
            .await
            .is_err()
    );
    let twice = [bank[0], bank[0], bank[1], bank[2], bank[3]];
    assert!(
        coins::join(&alice, &client, &store, &mut RandomKeys, &twice)
            .await
            .is_err()
    );
    assert_eq!(
        held(&store, CoinFolder::Bank),
        [5, 5, 5, 5, 5],
        "refusals change nothing"
    );

    let whole = coins::join(&alice, &client, &store, &mut RandomKeys, &parts)
        .await
        .unwrap();
    assert_eq!(whole.folder, CoinFolder::Bank);
    assert_eq!(held(&store, CoinFolder::Bank), [25]);
    assert_eq!(net.balance(&whole.account).await, 25 * CASH);
    assert!(store.list(CoinFolder::Limbo).unwrap().is_empty());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_coins_are_powned_in_one_pipelined_batch_and_a_contested_one_is_left_alone() {
    let net = Net::start(Duration::from_millis(200)).await;
    let client = net.client();
    let (alice, store) = net.wallet("alice", Some(&net.payer));
    coins::withdraw(
        &alice,
        &client,
        &store,
        &mut RandomKeys,
        &net.payer,
        cash(406),
    )
    .await
    .unwrap();
    let bank = store.list(CoinFolder::Bank).unwrap();
    assert_eq!(bank.len(), 6, "250 + 100 + 25 + 25 + 5 + 1");

    // Someone else holds the secret of the 5 and gets one validator's vote for its slot.
    let five = bank
        .iter()
        .find(|c| c.denomination.cash() == 5)
        .copied()
        .unwrap();
    let secret = store.read(&five).unwrap().secret;
    race(&net, &secret, cash(5), 1).await;

    let results = coins::pown_many(&alice, &client, &store, &mut RandomKeys, &bank)
        .await
        .unwrap();
    assert_eq!(results.len(), bank.len());
    for (old, result) in bank.iter().zip(&results) {
        if old.account == five.account {
            assert!(
                matches!(result, Err(coins::CoinOpError::Contested(_))),
                "{result:?}"
            );
            assert_eq!(
                store.locate(&old.account).unwrap().unwrap().folder,
                CoinFolder::Bank
            );
            continue;
        }
        let (new, certificate) = result.as_ref().unwrap();
        assert_eq!(new.folder, CoinFolder::Bank);
        assert_eq!(new.denomination, old.denomination);
        assert_eq!(certificate.order.signer(), Some(old.account));
        assert_eq!(net.balance(&old.account).await, 0);
        assert_eq!(
            net.balance(&new.account).await,
            i128::from(new.denomination.cash()) * CASH
        );
        assert_eq!(
            store.locate(&old.account).unwrap().unwrap().folder,
            CoinFolder::Spent
        );
    }
    assert_eq!(total(&store), 406 * CASH);
    assert!(store.list(CoinFolder::Limbo).unwrap().is_empty());
    net.shutdown().await;
}

/// A batch large enough that its files are written on several threads (80 coins of 1):
/// every coin lands in the Bank under a fresh key, every old one in Spent, and the total
/// is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_of_powns_moves_every_coin_exactly_once() {
    let net = Net::start(Duration::from_millis(200)).await;
    let client = net.client();
    let (alice, store) = net.wallet("alice", Some(&net.payer));
    // 80 coins of 1 cash, paid by two splits straight from the payer.
    net.one_cash_coins(&store, 0, 64).await;
    net.one_cash_coins(&store, 1, 16).await;
    let bank = store.list(CoinFolder::Bank).unwrap();
    assert_eq!(bank.len(), 80);

    let results = coins::pown_many(&alice, &client, &store, &mut RandomKeys, &bank)
        .await
        .unwrap();
    let mut fresh = std::collections::HashSet::new();
    for (old, result) in bank.iter().zip(&results) {
        let (new, certificate) = result.as_ref().unwrap();
        assert_eq!(certificate.order.signer(), Some(old.account));
        assert_eq!(new.folder, CoinFolder::Bank);
        assert!(
            fresh.insert(new.account),
            "each coin gets its own fresh key"
        );
        assert_eq!(
            store.locate(&old.account).unwrap().unwrap().folder,
            CoinFolder::Spent
        );
    }
    assert_eq!(store.list(CoinFolder::Bank).unwrap().len(), 80);
    assert_eq!(store.list(CoinFolder::Spent).unwrap().len(), 80);
    assert!(store.list(CoinFolder::Limbo).unwrap().is_empty());
    assert_eq!(total(&store), 80 * CASH);
    assert_eq!(pending_files(&alice), 0, "every journal entry is cleared");
    net.shutdown().await;
}

/// A join cut short (the whole coin's key holds only the parts paid so far) is not lost:
/// `find` pays what that key holds into proper coins, and the total is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_cut_short_is_broken_into_coins_by_find() {
    let net = Net::start(Duration::from_millis(200)).await;
    let client = net.client();
    let (alice, store) = net.wallet("alice", Some(&net.payer));
    coins::withdraw(
        &alice,
        &client,
        &store,
        &mut RandomKeys,
        &net.payer,
        cash(31),
    )
    .await
    .unwrap();
    let before = total(&store);
    // A join into a whole 25 cut short after two parts (the 5 and the 1) paid into it:
    // the whole coin waits in Limbo holding 6.
    let whole = Coin {
        network: net.contract.id(),
        denomination: tally_core::Denomination::TwentyFive,
        secret: SecretKey::generate(),
        funding: None,
    };
    store.put(CoinFolder::Limbo, &whole).unwrap();
    for part in store.list(CoinFolder::Bank).unwrap() {
        if part.denomination.cash() < 25 {
            coins::deposit(&alice, &client, &store, &part, whole.account())
                .await
                .unwrap();
        }
    }
    assert_eq!(net.balance(&whole.account()).await, 6 * CASH);

    let report = coins::find(&alice, &client, &store, &mut RandomKeys)
        .await
        .unwrap();
    assert_eq!(
        report
            .banked
            .iter()
            .map(|c| c.denomination.cash())
            .sum::<u64>(),
        6,
        "{report:?}"
    );
    assert_eq!(held(&store, CoinFolder::Bank), [25, 5, 1]);
    assert!(store.list(CoinFolder::Limbo).unwrap().is_empty());
    assert_eq!(
        store.locate(&whole.account()).unwrap().unwrap().folder,
        CoinFolder::Spent
    );
    assert_eq!(net.balance(&whole.account()).await, 0);
    assert_eq!(total(&store), before);
    net.shutdown().await;
}
