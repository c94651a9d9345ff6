//! A batch of powns journals all its orders in one file: what it leaves when it is cut
//! short (a crash after its journal is durable, or validators that do not answer) is
//! finished by `find`, every coin exactly once, against four real validators.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{CASH, Net, pending_files, total};
use tally_core::{Coin, CoinFile, Order, SecretKey, SignedOrder, Transfer};
use tally_wallet::coins::{self, CoinFolder, RandomKeys};
use tally_wallet::wallet::BatchJournal;

/// The state a crash leaves right after a batch's first barrier: its old coins in
/// `Limbo`, its orders and fresh coins only in the batch journal; the validators voted on
/// half of the orders, and a quorum applied a quarter of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_short_after_its_journal_is_durable_is_finished_by_find() {
    let net = Net::start(Duration::from_millis(200)).await;
    let client = net.client();
    let (alice, store) = net.wallet("alice", Some(&net.payer));
    net.one_cash_coins(&store, 0, 40).await;
    let bank = store.list(CoinFolder::Bank).unwrap();
    let mut orders = Vec::new();
    let mut fresh = Vec::new();
    for listed in &bank {
        let old = store.read(listed).unwrap();
        let new = Coin {
            secret: SecretKey::generate(),
            funding: None,
            ..old.clone()
        };
        orders.push(SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: old.account(),
                recipient: new.account(),
                amount: old.amount(),
                sequence: 0,
            }),
            &old.secret,
            &net.contract.id(),
        ));
        store.move_to(listed, CoinFolder::Limbo).unwrap();
        fresh.push(new);
    }
    alice
        .set_pending_batch(&BatchJournal {
            orders: orders.clone(),
            coins: CoinFile::new(fresh.clone()).unwrap().to_json(),
        })
        .unwrap();
    let voted = client.certify_many(&orders[..20]).await;
    let certificates: Vec<_> = voted.into_iter().map(Result::unwrap).collect();
    client.submit_many(&certificates[..10]).await;
    // Whatever reads the journal now sees each coin's order in flight.
    assert_eq!(
        alice.pending(&bank[7].account).unwrap(),
        Some(orders[7].clone())
    );
    assert_eq!(total(&store), 0);

    let report = coins::find(&alice, &client, &store, &mut RandomKeys)
        .await
        .unwrap();
    assert!(report.unfinished.is_empty(), "{report:?}");
    assert_eq!(
        store.list(CoinFolder::Bank).unwrap().len(),
        40,
        "{report:?}"
    );
    assert!(store.list(CoinFolder::Limbo).unwrap().is_empty());
    assert_eq!(store.list(CoinFolder::Spent).unwrap().len(), 40);
    for coin in &fresh {
        let listed = store.locate(&coin.account()).unwrap().unwrap();
        assert_eq!(listed.folder, CoinFolder::Bank, "every fresh key is banked");
    }
    assert_eq!(total(&store), 40 * CASH);
    assert_eq!(
        pending_files(&alice),
        0,
        "the batch journal and every entry are gone"
    );
    net.shutdown().await;
}

/// Validators that do not answer: each order a batch could not prove stays journaled on
/// its own with its fresh coin in `Limbo`, the batch journal goes, and `find` finishes the
/// lot once the validators are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_orders_of_a_batch_stay_journaled_on_their_own_until_find() {
    let mut net = Net::start(Duration::from_millis(200)).await;
    let client = net.client();
    let (alice, store) = net.wallet("alice", Some(&net.payer));
    net.one_cash_coins(&store, 0, 12).await;
    let bank = store.list(CoinFolder::Bank).unwrap();
    net.stop(2).await;
    net.stop(3).await;
    let results = coins::pown_many(&alice, &client, &store, &mut RandomKeys, &bank)
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_err));
    assert!(alice.pending_batches().unwrap().is_empty());
    assert_eq!(pending_files(&alice), 12, "one entry per open order");
    assert_eq!(
        store.list(CoinFolder::Limbo).unwrap().len(),
        24,
        "old and fresh coins"
    );
    for listed in &bank {
        assert!(alice.pending(&listed.account).unwrap().is_some());
    }

    net.restart(2, Duration::from_millis(200)).await;
    net.restart(3, Duration::from_millis(200)).await;
    let report = coins::find(&alice, &client, &store, &mut RandomKeys)
        .await
        .unwrap();
    assert_eq!(report.finished, 12, "{report:?}");
    assert_eq!(store.list(CoinFolder::Bank).unwrap().len(), 12);
    assert!(store.list(CoinFolder::Limbo).unwrap().is_empty());
    assert_eq!(total(&store), 12 * CASH);
    assert_eq!(pending_files(&alice), 0);
    net.shutdown().await;
}
