//! Two bearer-coin races the deterministic simulator found, replayed against four real
//! validators on 127.0.0.1 (real TCP, real redb files): a batch of orders certified
//! together keeps the first-voter rule (DESIGN §3), and a coin handed over before its
//! funding certificate reached a quorum of validators is taken in, not called counterfeit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{CASH, Net, held, total};
use tally_core::{
    AccountId, Certificate, Coin, Denomination, Order, Payment, SecretKey, SignedOrder, Split,
    Transfer,
};
use tally_proto::{LedgerEntry, LedgerRequest, Packet};
use tally_wallet::ClientError;
use tally_wallet::coins::{self, CoinFolder, ImportOutcome, RandomKeys};

/// Validators never sync on their own here: what each one holds is only what the test and
/// the wallet hand it.
const NO_SYNC: Duration = Duration::from_secs(3600);

/// How every validator, in contract order, sees `account` (the default entry where it
/// never saw it).
async fn entries(net: &Net, account: &AccountId) -> Vec<LedgerEntry> {
    let request = LedgerRequest {
        accounts: Some(vec![*account]),
        ..LedgerRequest::default()
    };
    net.client()
        .ledger_all(&request)
        .await
        .into_iter()
        .map(|answer| {
            let view = answer.result.expect("every validator answers");
            view.ledger.get(account).copied().unwrap_or_default()
        })
        .collect()
}

/// `coin`'s whole amount paid to a fresh key: a pown, as its holder signs it.
fn pown_order(net: &Net, coin: &Coin) -> SignedOrder {
    SignedOrder::sign(
        Order::Transfer(Transfer {
            sender: coin.account(),
            recipient: SecretKey::generate().account(),
            amount: coin.amount(),
            sequence: 0,
        }),
        &coin.secret,
        &net.contract.id(),
    )
}

/// What is protected (DESIGN §3, the first-voter rule in a batch): two holders of one coin
/// pown it at the same moment. One holder's order B reached the coin's first voter first;
/// the other holder's batch (`certify_many`, what `import` → `pown_many` → `prove_many`
/// uses) carries order A for the same slot. A is refused as
/// [`ClientError::SlotTaken`], naming that first voter, and was shown to no other
/// validator: the three others hold no vote at all in the coin's slot, so B still wins it
/// (certified and applied, its recipient paid) and the coin is not frozen. An uncontested
/// order in the same batch is certified as usual.
///
/// Before, `certify_many` sent every order to every validator at once: the three others
/// voted for A, A got a certificate of three votes although the first voter held B, and
/// two holders racing could split the coin's slot 2–2 and freeze it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_order_whose_first_voter_holds_another_is_shown_to_no_one_else() {
    let net = Net::start(NO_SYNC).await;
    let client = net.client();
    let network = net.contract.id();
    let (_, store) = net.wallet("holder", None);
    let funded = net.one_cash_coins(&store, 0, 2).await;
    let (raced, quiet) = (&funded[0], &funded[1]);
    let coin = raced.account();
    let first = tally_core::first_voter(&coin, net.keys.len());

    // Two holders of the coin each sign a pown for its slot 0; B reaches the first voter.
    let (a, b) = (pown_order(&net, raced), pown_order(&net, raced));
    assert_ne!(a.order, b.order);
    assert_eq!(client.first_voter(&a.order), Some(first));
    assert!(matches!(net.pay_at(first, &b).await, Packet::RespPay(_)));

    // The other holder's batch: A for the raced coin, and a pown of an uncontested coin.
    let d = pown_order(&net, quiet);
    let results = client.certify_many(&[a.clone(), d.clone()]).await;
    assert_eq!(results.len(), 2);
    match &results[0] {
        Err(ClientError::SlotTaken { index, validator }) => {
            assert_eq!(*index, first);
            assert_eq!(*validator, net.contract.validators[first].key);
        }
        Ok(certificate) => panic!(
            "A certified with {} votes although its first voter holds B's vote",
            certificate.votes.len()
        ),
        Err(other) => panic!("A refused otherwise than SlotTaken: {other}"),
    }
    let certificate = results[1].as_ref().expect("the uncontested order");
    assert_eq!(certificate.order, d.order);
    certificate.verify(client.committee(), &network).unwrap();

    // A was shown to no one else: the first voter holds B, the others nothing.
    let locks: Vec<_> = entries(&net, &coin)
        .await
        .iter()
        .map(|e| e.locked)
        .collect();
    let b_digest = b.order.digest(&network);
    for (i, locked) in locks.iter().enumerate() {
        if i == first {
            assert_eq!(*locked, Some(b_digest), "the first voter keeps B's vote");
        } else {
            assert_eq!(
                *locked, None,
                "validator {i} holds a vote in the coin's slot: {locks:?}"
            );
        }
    }
    assert_eq!(client.held_orders(&coin, 0).await, vec![(b.clone(), 1)]);

    // The slot is not frozen: B, the order the first voter took, wins it.
    let won = client.certify_held(&b).await.expect("B gathers a quorum");
    assert_eq!(won.order, b.order);
    assert_eq!(
        client.submit_many(&[won, certificate.clone()]).await,
        [4, 4]
    );
    let Order::Transfer(paid) = &b.order else {
        unreachable!()
    };
    for entry in entries(&net, &coin).await {
        assert_eq!((entry.balance, entry.next_sequence), (0, 1));
    }
    for entry in entries(&net, &paid.recipient).await {
        assert_eq!(entry.balance, CASH, "B's recipient holds the coin's cash");
    }
    let Order::Transfer(lost) = &a.order else {
        unreachable!()
    };
    assert_eq!(net.balance(&lost.recipient).await, 0);
    net.shutdown().await;
}

/// What is protected (`coins::import`, a coin handed over before its funding reached a
/// quorum): the issuer certified a withdrawal of one 5 cash coin, but its certificate
/// reached only one validator before the coin was handed over; the three others have
/// never seen the coin funded. The coin file carries that funding certificate, so the
/// receiver's import hands it to the lagging validators and detects again: the coin is
/// `Banked` under a fresh key of the receiver (nothing in `Counterfeit` or `Import`), every
/// validator sees the new key holding 5 cash and the old one spent, and the issuer's
/// account is down by exactly 5.
///
/// Before, import graded such a coin `Counterfeit` (three validators of four saw it empty)
/// and filed it under `Counterfeit`: the receiver lost it though its funding was genuine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coin_whose_funding_reached_fewer_than_a_quorum_is_banked_on_import() {
    let net = Net::start(NO_SYNC).await;
    let client = net.client();
    let payer = net.payer.account();

    // The issuer's withdrawal, as `coins::withdraw` builds it: a Split paying a fresh coin.
    let (mut coin, funding) = certified_withdrawal(&net, Denomination::Five).await;
    // Its certificate reaches one validator only before the coin is handed over.
    let applied_at = 0;
    client.push(applied_at, &funding).await.unwrap();
    coin.funding = Some(funding);
    let seen: Vec<i128> = entries(&net, &coin.account())
        .await
        .iter()
        .map(|e| e.balance)
        .collect();
    assert_eq!(seen, [5 * CASH, 0, 0, 0], "funded at one validator only");

    let (receiver, store) = net.wallet("receiver", None);
    let outcomes = coins::import(
        &receiver,
        &client,
        &store,
        &mut RandomKeys,
        vec![coin.clone()],
    )
    .await
    .unwrap();
    let banked = match &outcomes[..] {
        [ImportOutcome::Banked { coin }] => *coin,
        other => panic!("the coin was not banked: {other:?}"),
    };
    assert_eq!(banked.folder, CoinFolder::Bank);
    assert_eq!(banked.denomination, Denomination::Five);
    assert_ne!(banked.account, coin.account(), "powned to a fresh key");
    assert_eq!(held(&store, CoinFolder::Bank), [5]);
    assert!(held(&store, CoinFolder::Counterfeit).is_empty());
    assert!(held(&store, CoinFolder::Import).is_empty());
    assert_eq!(
        store.locate(&coin.account()).unwrap().unwrap().folder,
        CoinFolder::Spent
    );
    assert_eq!(total(&store), 5 * CASH);

    for entry in entries(&net, &banked.account).await {
        assert_eq!(
            entry.balance,
            5 * CASH,
            "the new coin holds its denomination"
        );
    }
    for entry in entries(&net, &coin.account()).await {
        assert_eq!(
            (entry.balance, entry.next_sequence),
            (0, 1),
            "the old is spent"
        );
    }
    for entry in entries(&net, &payer).await {
        assert_eq!(entry.balance, 995 * CASH);
    }
    net.shutdown().await;
}

/// A fresh coin of `denomination` and the certificate of the payer's withdrawal (a Split
/// of its slot 0, as `coins::withdraw` builds it) that funds it, applied nowhere yet.
async fn certified_withdrawal(net: &Net, denomination: Denomination) -> (Coin, Certificate) {
    let coin = Coin {
        network: net.contract.id(),
        denomination,
        secret: SecretKey::generate(),
        funding: None,
    };
    let split = SignedOrder::sign(
        Order::Split(Split {
            sender: net.payer.account(),
            sequence: 0,
            outputs: vec![Payment {
                recipient: coin.account(),
                amount: coin.amount(),
            }],
        }),
        &net.payer,
        &net.contract.id(),
    );
    let funding = net.client().certify(&split).await.unwrap();
    (coin, funding)
}

/// What a holder's interrupted pown leaves in its folder (as `coins::pown` writes it): the
/// fresh coin in `Limbo`, the handed coin moved to `Limbo`, the order journaled. Returns
/// the order and the fresh coin.
fn interrupted_pown(
    net: &Net,
    wallet: &tally_wallet::Wallet,
    store: &coins::CoinStore,
    handed: &Coin,
) -> (SignedOrder, Coin) {
    let fresh = Coin {
        network: net.contract.id(),
        denomination: handed.denomination,
        secret: SecretKey::generate(),
        funding: None,
    };
    let order = SignedOrder::sign(
        Order::Transfer(Transfer {
            sender: handed.account(),
            recipient: fresh.account(),
            amount: handed.amount(),
            sequence: 0,
        }),
        &handed.secret,
        &net.contract.id(),
    );
    store.put(CoinFolder::Limbo, &fresh).unwrap();
    store.put(CoinFolder::Limbo, handed).unwrap();
    wallet.set_pending(&order).unwrap();
    (order, fresh)
}

/// What is protected (`coins::find` on a coin whose slot two holders contest, DESIGN §3):
/// holder A's pown went on past the coin's first voter while that voter was silent and
/// holds the three other votes, a quorum; holder B's pown reached the first voter
/// afterwards and holds its vote. Neither holder's process finished. The slot is not lost
/// to either: B's `find` finishes the order that holds the most votes (A's, handed out by
/// the validators), so B's copy of the coin is spent and B's fresh key never funded; A's
/// `find` then keeps that certificate as its new coin's funding and banks it. Every
/// validator ends with the coin spent and A's new coin holding its cash; neither wallet
/// journals anything.
///
/// Before, `find` finished only the holder's own journaled order: A gave up because the
/// first voter held B's vote (`SlotTaken`), B because the others held A's, and the coin
/// stayed in both holders' `Limbo` for ever although A's order was certifiable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contested_pown_holding_a_quorum_is_finished_by_either_holder() {
    let net = Net::start(NO_SYNC).await;
    let client = net.client();
    let network = net.contract.id();
    let (_, issuer) = net.wallet("issuer", None);
    let handed = net.one_cash_coins(&issuer, 0, 1).await.remove(0);
    let coin = handed.account();
    let first = tally_core::first_voter(&coin, net.keys.len());

    let (wallet_a, store_a) = net.wallet("holder-a", None);
    let (wallet_b, store_b) = net.wallet("holder-b", None);
    let (a, fresh_a) = interrupted_pown(&net, &wallet_a, &store_a, &handed);
    let (b, fresh_b) = interrupted_pown(&net, &wallet_b, &store_b, &handed);
    for i in (0..net.keys.len()).filter(|i| *i != first) {
        assert!(matches!(net.pay_at(i, &a).await, Packet::RespPay(_)));
    }
    assert!(matches!(net.pay_at(first, &b).await, Packet::RespPay(_)));
    assert_eq!(
        client.held_orders(&coin, 0).await,
        vec![(a.clone(), 3), (b.clone(), 1)]
    );

    // B settles first: the slot goes to A's order, B's copy of the coin is spent.
    let found_b = coins::find(&wallet_b, &client, &store_b, &mut RandomKeys)
        .await
        .unwrap();
    assert!(found_b.unfinished.is_empty(), "{:?}", found_b.unfinished);
    assert_eq!(
        store_b.locate(&coin).unwrap().unwrap().folder,
        CoinFolder::Spent
    );
    let b_fresh = store_b.locate(&fresh_b.account()).unwrap().unwrap();
    assert!(
        !matches!(b_fresh.folder, CoinFolder::Bank | CoinFolder::Fracked),
        "B's fresh key was never funded, yet B counts it as money ({:?})",
        b_fresh.folder
    );
    assert_eq!(total(&store_b), 0);
    assert!(wallet_b.pending(&coin).unwrap().is_none());

    // A settles: its own order won, and its certificate funds A's new coin.
    let found_a = coins::find(&wallet_a, &client, &store_a, &mut RandomKeys)
        .await
        .unwrap();
    assert!(found_a.unfinished.is_empty(), "{:?}", found_a.unfinished);
    assert_eq!(
        store_a.locate(&coin).unwrap().unwrap().folder,
        CoinFolder::Spent
    );
    let banked = store_a.locate(&fresh_a.account()).unwrap().unwrap();
    assert_eq!(banked.folder, CoinFolder::Bank);
    let funding = store_a.read(&banked).unwrap().funding.expect("funded");
    assert_eq!(funding.order, a.order);
    funding.verify(client.committee(), &network).unwrap();
    assert_eq!(total(&store_a), CASH);
    assert!(wallet_a.pending(&coin).unwrap().is_none());

    for entry in entries(&net, &coin).await {
        assert_eq!(
            (entry.balance, entry.next_sequence),
            (0, 1),
            "the coin is spent"
        );
    }
    for entry in entries(&net, &fresh_a.account()).await {
        assert_eq!(entry.balance, CASH, "A's new coin holds the cash");
    }
    assert_eq!(net.balance(&fresh_b.account()).await, 0);
    net.shutdown().await;
}

/// What is protected (`coins::find` grading `Limbo` while a pown is still journaled): a
/// holder's pown was interrupted, and the certificate funding the coin has reached one
/// validator only, so `find` cannot finish the pown now: it holds that validator's vote,
/// no quorum, and every validator sees the fresh coin it pays empty. The fresh
/// coin the pown pays is unfunded for now, not worthless: it stays in `Limbo`, the order
/// stays journaled. Once the funding reached every validator, the next `find` certifies
/// the pown and banks the fresh coin with its funding; the holder ends with the coin's
/// cash.
///
/// Before, `find` graded that fresh coin `Counterfeit` (no validator had seen it funded)
/// and moved it to `Spent`; when the pown was certified later, its cash went to a coin the
/// wallet had thrown away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_coin_whose_pown_is_still_journaled_is_not_thrown_away() {
    let net = Net::start(NO_SYNC).await;
    let client = net.client();
    // Certified, and applied by the last validator only: the others have not seen the
    // coin funded, and cannot catch up from each other.
    let (mut handed, funding) = certified_withdrawal(&net, Denomination::One).await;
    client.push(3, &funding).await.unwrap();
    handed.funding = Some(funding.clone());

    let (wallet, store) = net.wallet("holder", None);
    let (pown, fresh) = interrupted_pown(&net, &wallet, &store, &handed);
    let found = coins::find(&wallet, &client, &store, &mut RandomKeys)
        .await
        .unwrap();
    assert_eq!(found.unfinished.len(), 1, "the pown cannot be finished yet");
    assert_eq!(
        store.locate(&fresh.account()).unwrap().unwrap().folder,
        CoinFolder::Limbo,
        "the fresh coin waits for its pown"
    );
    assert_eq!(
        wallet.pending(&handed.account()).unwrap(),
        Some(pown.clone())
    );

    // The funding spreads; the next find finishes the pown.
    client.submit(&funding).await;
    let found = coins::find(&wallet, &client, &store, &mut RandomKeys)
        .await
        .unwrap();
    assert!(found.unfinished.is_empty(), "{:?}", found.unfinished);
    let banked = store.locate(&fresh.account()).unwrap().unwrap();
    assert_eq!(banked.folder, CoinFolder::Bank);
    assert_eq!(
        store.read(&banked).unwrap().funding.map(|c| c.order),
        Some(pown.order)
    );
    assert_eq!(total(&store), CASH);
    for entry in entries(&net, &fresh.account()).await {
        assert_eq!(entry.balance, CASH);
    }
    net.shutdown().await;
}

/// What is protected (`pown_many` → `prove_many` when every validator refuses an order
/// because its slot is settled already): a holder's pown order for a handed coin is
/// journaled; the other holder of the coin finished that very order (the most held one
/// in the slot) and every validator applied it. When the first holder's batch sends the
/// order again, every validator refuses it as old. That refusal is not "nothing in
/// flight": the slot was settled by this order, so its certificate is found and kept as
/// the fresh coin's funding, the fresh coin is banked, and the journal is cleared.
///
/// Before, a batch took "refused everywhere" for "no vote anywhere", cleared the journal
/// and voided the fresh coin, though the coin's cash had gone to it: lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_pown_settled_by_the_other_holder_is_kept() {
    let net = Net::start(NO_SYNC).await;
    let client = net.client();
    let (_, issuer) = net.wallet("issuer", None);
    let handed = net.one_cash_coins(&issuer, 0, 1).await.remove(0);
    let (wallet, store) = net.wallet("holder", None);
    let (pown, fresh) = interrupted_pown(&net, &wallet, &store, &handed);
    let listed = store
        .move_to(
            &store.locate(&handed.account()).unwrap().unwrap(),
            CoinFolder::Import,
        )
        .unwrap();

    // The other holder finishes this very order; every validator applies it.
    let certificate = client.certify_held(&pown).await.unwrap();
    assert_eq!(
        client.submit_many(std::slice::from_ref(&certificate)).await,
        [4]
    );

    let powned = coins::pown_many(&wallet, &client, &store, &mut RandomKeys, &[listed])
        .await
        .unwrap();
    match &powned[..] {
        [Ok((coin, proof))] => {
            assert_eq!(coin.account, fresh.account());
            assert_eq!(proof.order, pown.order);
        }
        other => panic!("the settled pown was not kept: {other:?}"),
    }
    let banked = store.locate(&fresh.account()).unwrap().unwrap();
    assert_eq!(banked.folder, CoinFolder::Bank);
    assert_eq!(store.read(&banked).unwrap().funding, Some(certificate));
    assert_eq!(total(&store), CASH);
    assert!(wallet.pending(&handed.account()).unwrap().is_none());
    net.shutdown().await;
}
