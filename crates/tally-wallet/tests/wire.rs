//! The cross-server wire (seed 002) end to end, over real TCP: two real networks of four
//! validators that know each other's contracts, a real relay, the maker daemon and the
//! payer's wallet. What is protected: a payer who asks to move money from A to B through a
//! maker ends with exactly the amount on B, the maker with amount + fee on A, and both
//! sides keep the certificates that prove it; a maker that stops in the middle of a wire
//! resumes it from its journal and is still paid.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::maker::maker_until;
use common::{CASH, Net, cash};
use tally_core::{Amount, SecretKey};
use tally_maker::{MakerSettings, MakerStatus};
use tally_relay::{Relay, RelayConfig, RelayHandle};
use tally_swap::Outcome;
use tally_wallet::ops;
use tally_wallet::wire::payer::{self, WireRequest, WireStep};
use tally_wallet::wire::{Bounds, Proof};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Tight bounds for loopback: with the networks' 200 ms skew, Δ ≥ 1.6 s and a claim
/// window ≥ 1.9 s.
const BOUNDS: Bounds = Bounds {
    certify_ms: 500,
    notice_ms: 500,
    margin_ms: 200,
    confirmations: 1,
};

struct World {
    a: Net,
    b: Net,
    relay: RelayHandle,
    maker_dir: tempfile::TempDir,
    maker: SecretKey,
}

/// A and B knowing each other, a relay, and a maker key holding 500 cash on B.
async fn world() -> World {
    let (a, b) = (Net::prepare("A", 1000), Net::prepare("B", 1000));
    let (contract_a, contract_b) = (a.contract().clone(), b.contract().clone());
    let sync = Duration::from_millis(200);
    let a = a.launch(sync, vec![contract_b]).await;
    let b = b.launch(sync, vec![contract_a]).await;
    let relay = Relay::bind(RelayConfig::listening_on("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
        .spawn();
    let maker = SecretKey::generate();
    let maker_dir = tempfile::tempdir().unwrap();
    let mut maker_wallet = tally_wallet::Wallet::open(maker_dir.path()).unwrap();
    maker_wallet.add_key(Some(maker.clone()), None).unwrap();
    let (funder, _) = b.wallet("funder", Some(&b.payer));
    ops::pay(&funder, &b.client(), &b.payer, maker.account(), cash(500))
        .await
        .unwrap();
    World {
        a,
        b,
        relay,
        maker_dir,
        maker,
    }
}

impl World {
    fn settings(&self) -> MakerSettings {
        MakerSettings {
            wallet_dir: self.maker_dir.path().to_path_buf(),
            account: None,
            pairs: vec![(self.a.contract.clone(), self.b.contract.clone())],
            relay: self.relay.local_addr().to_string(),
            fee_ppm: 10_000,
            fee_fixed: Amount::ZERO,
            min: cash(1),
            max: cash(100),
            lock_time: Duration::from_secs(4),
            delta: None,
            announce_every: Duration::from_secs(1),
            max_open_per_taker: 4,
            accounts: 1,
            bounds: BOUNDS,
            timeout: Duration::from_secs(2),
        }
    }

    /// The maker daemon, running until the token is cancelled.
    fn start_maker(&self) -> (CancellationToken, watch::Receiver<MakerStatus>) {
        common::maker::start_maker(self.settings())
    }

    fn request(&self, amount: Amount) -> WireRequest {
        WireRequest {
            key: self.a.payer.clone(),
            client_a: self.a.client().into(),
            client_b: self.b.client().into(),
            relay: self.relay.local_addr().to_string(),
            amount,
            max_fee: Some(cash(1)),
            bounds: BOUNDS,
            listen: Duration::from_millis(1500),
            known_quotes: Vec::new(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wire_moves_the_amount_to_b_and_pays_the_maker_amount_plus_fee_on_a() {
    let world = world().await;
    let (stop_maker, mut status) = world.start_maker();
    let (alice_wallet, _) = world.a.wallet("alice", Some(&world.a.payer));
    let mut steps = Vec::new();
    let record = payer::wire(&alice_wallet, world.request(cash(20)), |step, _| {
        steps.push(step)
    })
    .await
    .unwrap();
    assert_eq!(record.outcome, Some(Outcome::Completed), "{steps:?}");
    // The seed's steps, in order: quote, lock on A, maker's lock on B, claim on B.
    let kinds: Vec<&str> = steps
        .iter()
        .filter_map(|step| match step {
            WireStep::Quote { .. } => Some("quote"),
            WireStep::LockedA { .. } => Some("lock A"),
            WireStep::MakerLockedB { .. } => Some("maker lock B"),
            WireStep::ClaimedB { .. } => Some("claim B"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["quote", "lock A", "maker lock B", "claim B"]);
    // Alice has exactly the amount on B; the maker amount + 1% on A.
    let alice = world.a.payer.account();
    let maker = world.maker.account();
    assert_eq!(world.b.balance(&alice).await, 20 * CASH);
    assert_eq!(world.b.balance(&maker).await, 480 * CASH);
    assert_eq!(world.a.balance(&alice).await, 1000 * CASH - 20_200_000);
    maker_until(&mut status, |s| s.completed == 1 && s.open == 0).await;
    assert_eq!(world.a.balance(&maker).await, 20_200_000);
    assert_eq!(status.borrow().fees_earned, 200_000);
    // The receipt: the signed quote, both locks and the claim, each with a quorum of votes.
    let receipt = record.receipt();
    assert!(receipt.quote.verify());
    for certificate in [&receipt.lock_a, &receipt.lock_b, &receipt.claim_b] {
        match certificate.as_ref().expect("a certificate is missing") {
            Proof::Certificate(certificate) => assert!(certificate.votes.len() >= 3),
            other => panic!("a quorum network proves by certificate, not {other:?}"),
        }
    }
    assert!(receipt.refund_a.is_none());
    // The wallet keeps it.
    let listed = payer::list(&alice_wallet).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].outcome, Some(Outcome::Completed));
    stop_maker.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_stopped_mid_wire_resumes_from_its_journal_and_is_paid() {
    let world = world().await;
    let (stop_maker, mut status) = world.start_maker();
    let (alice_wallet, _) = world.a.wallet("alice", Some(&world.a.payer));
    let request = world.request(cash(10));
    let wire = tokio::spawn(async move { payer::wire(&alice_wallet, request, |_, _| {}).await });
    // The maker stops as soon as it has a wire open, wherever it is in it.
    maker_until(&mut status, |s| s.open == 1).await;
    stop_maker.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stop_again, mut status) = world.start_maker();
    let record = wire.await.unwrap().unwrap();
    assert_eq!(record.outcome, Some(Outcome::Completed));
    maker_until(&mut status, |s| s.completed == 1 && s.open == 0).await;
    let maker = world.maker.account();
    assert_eq!(world.a.balance(&maker).await, 10_100_000);
    assert_eq!(world.b.balance(&world.a.payer.account()).await, 10 * CASH);
    assert_eq!(world.b.balance(&maker).await, 490 * CASH);
    stop_again.cancel();
}

/// A notice in the topic is a hint anyone can send: one naming an escrow that A never
/// certified, under the maker's real quote, must not make the maker open a wire (a journal
/// and a watch each: a flood of them would wear it down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_notice_opens_no_wire() {
    use tally_swap::{Message, TopicLine};
    use tally_wallet::wire::{Heard, TopicRoom};
    let world = world().await;
    let (stop_maker, status) = world.start_maker();
    let topic = tally_swap::topic("cash", &world.a.contract.id(), &world.b.contract.id());
    let mut room = TopicRoom::new(&world.relay.local_addr().to_string(), &topic);
    room.join().await.unwrap();
    let quote = loop {
        if let Heard::Line(TopicLine::Quote(quote)) = room.next(Duration::from_secs(5)).await {
            break quote;
        }
    };
    for _ in 0..5 {
        let escrow = tally_core::sha256(&[&rand_bytes()]);
        room.send(&TopicLine::Wire(Message::PayerLocked {
            quote: quote.hash(),
            escrow,
        }))
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status.borrow().open, 0);
    let journals = std::fs::read_dir(world.maker_dir.path().join("maker").join("wires"))
        .unwrap()
        .count();
    assert_eq!(journals, 0);
    stop_maker.cancel();
}

fn rand_bytes() -> [u8; 32] {
    *SecretKey::generate().account().as_bytes()
}

/// The maker's quote as announced in the topic, heard by joining it.
async fn heard_quote(world: &World) -> (tally_wallet::wire::TopicRoom, tally_swap::SignedQuote) {
    use tally_swap::TopicLine;
    use tally_wallet::wire::{Heard, TopicRoom};
    let topic = tally_swap::topic("cash", &world.a.contract.id(), &world.b.contract.id());
    let mut room = TopicRoom::new(&world.relay.local_addr().to_string(), &topic);
    room.join().await.unwrap();
    loop {
        if let Heard::Line(TopicLine::Quote(quote)) = room.next(Duration::from_secs(5)).await {
            return (room, *quote);
        }
    }
}

/// A maker that quotes and then is gone before the payer locks (it never locks on B): the
/// payer waits until no maker lock could still be claimed, then refunds on A after its
/// deadline, and ends with all its money.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_gone_after_quoting_leaves_the_payer_refunded_on_a() {
    use tally_swap::TopicLine;
    use tally_wallet::wire::Heard;
    let world = world().await;
    let (stop_maker, _status) = world.start_maker();
    let (mut room, quote) = heard_quote(&world).await;
    stop_maker.cancel();
    // The quote stays valid for three announce intervals; the test re-announces it itself
    // when the payer joins, as the maker would have.
    let (alice_wallet, _) = world.a.wallet("alice", Some(&world.a.payer));
    let request = world.request(cash(10));
    let wire = tokio::spawn(async move { payer::wire(&alice_wallet, request, |_, _| {}).await });
    loop {
        if let Heard::Arrived = room.next(Duration::from_secs(5)).await {
            room.send(&TopicLine::Quote(Box::new(quote.clone()))).await;
            break;
        }
    }
    let record = tokio::time::timeout(Duration::from_secs(30), wire)
        .await
        .expect("the payer never gave up on the maker")
        .unwrap()
        .unwrap();
    assert_eq!(record.outcome, Some(Outcome::Refunded));
    let receipt = record.receipt();
    assert!(receipt.lock_a.is_some() && receipt.refund_a.is_some());
    assert!(receipt.lock_b.is_none() && receipt.claim_b.is_none());
    assert_eq!(world.a.balance(&world.a.payer.account()).await, 1000 * CASH);
    assert_eq!(world.a.balance(&world.maker.account()).await, 0);
}

/// A taker that locks on A and never claims on B: the maker locks on B, sees no claim,
/// and refunds B after its (short) deadline; the taker's own lock comes back to it after
/// its deadline. Both end with what they had. (Found the driver keeping only its earliest
/// wake-up: the maker's refund time, asked for after its give-up time, was lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taker_that_never_claims_leaves_both_refunded() {
    use tally_swap::{Message, TopicLine};
    use tally_wallet::escrow;
    let world = world().await;
    let (stop_maker, mut status) = world.start_maker();
    let (mut room, quote) = heard_quote(&world).await;
    let (alice_wallet, _) = world.a.wallet("alice", Some(&world.a.payer));
    let locked = lock_by_hand(&world, &alice_wallet, &quote, cash(10)).await;
    room.send(&TopicLine::Wire(Message::PayerLocked {
        quote: quote.hash(),
        escrow: locked.escrow,
    }))
    .await;
    // The maker locks on B for the taker…
    maker_until(&mut status, |s| {
        s.wires.iter().any(|w| w.phase.starts_with("locked on B"))
    })
    .await;
    assert_eq!(world.b.balance(&world.maker.account()).await, 490 * CASH);
    // …and, nobody claiming, takes it back after its deadline.
    maker_until(&mut status, |s| s.refunded == 1 && s.open == 0).await;
    assert_eq!(world.b.balance(&world.maker.account()).await, 500 * CASH);
    assert_eq!(world.b.balance(&world.a.payer.account()).await, 0);
    // The taker's lock comes back to it after its own deadline.
    let deadline = locked.lock.deadline + 200;
    while escrow::unix_ms() <= deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut refunded = None;
    for _ in 0..20 {
        match escrow::refund(&alice_wallet, &world.a.client(), locked.escrow).await {
            Ok(receipt) => {
                refunded = Some(receipt);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert!(
        refunded.is_some(),
        "the taker's refund on A was never certified"
    );
    assert_eq!(world.a.balance(&world.a.payer.account()).await, 1000 * CASH);
    assert_eq!(world.a.balance(&world.maker.account()).await, 0);
    stop_maker.cancel();
}

/// The payer claims on B while the maker is down: B's validators hand the secret to A's
/// (the notice), so the maker is paid on A while it is offline; restarted, it finds its
/// wire completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_offline_when_the_payer_claims_is_paid_by_the_notice() {
    let world = world().await;
    let (stop_maker, mut status) = world.start_maker();
    let (alice_wallet, _) = world.a.wallet("alice", Some(&world.a.payer));
    let request = world.request(cash(10));
    let wire = tokio::spawn(async move { payer::wire(&alice_wallet, request, |_, _| {}).await });
    maker_until(&mut status, |s| {
        s.wires.iter().any(|w| w.phase.starts_with("locked on B"))
    })
    .await;
    stop_maker.cancel();
    let record = wire.await.unwrap().unwrap();
    assert_eq!(record.outcome, Some(Outcome::Completed));
    // Paid on A with nobody running the maker.
    let maker = world.maker.account();
    let mut paid = 0;
    for _ in 0..50 {
        paid = world.a.balance(&maker).await;
        if paid > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(paid, 10_100_000);
    let (stop_again, mut status) = world.start_maker();
    maker_until(&mut status, |s| s.completed == 1 && s.open == 0).await;
    stop_again.cancel();
}

/// A taker's lock on A under `quote`, made by hand (as a taker that will never claim would).
async fn lock_by_hand(
    world: &World,
    wallet: &tally_wallet::Wallet,
    quote: &tally_swap::SignedQuote,
    amount: Amount,
) -> tally_wallet::escrow::Locked {
    use tally_core::Counterpart;
    use tally_wallet::escrow::{self, LockTerms};
    let secret = escrow::new_secret(wallet).unwrap();
    let q = &quote.quote;
    escrow::lock(
        wallet,
        &world.a.client(),
        &world.a.payer,
        LockTerms {
            payee: q.maker_a,
            amount: q.total_for(amount).unwrap(),
            hash_lock: secret.hash_lock(),
            deadline_ms: escrow::unix_ms() + q.lock_time_ms + q.delta_ms,
            counterpart: Some(Counterpart {
                network: world.b.contract.id(),
                escrow: None,
                quote: Some(quote.hash()),
            }),
        },
    )
    .await
    .unwrap()
}

/// A maker limits the wires one taker holds open: a taker that locks again and again
/// (and never claims) ties up at most that many of the maker's locks on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_answers_at_most_its_limit_of_open_wires_per_taker() {
    use tally_swap::{Message, TopicLine};
    let world = world().await;
    let (status_tx, mut status) = watch::channel(MakerStatus::default());
    let stop = CancellationToken::new();
    let settings = MakerSettings {
        max_open_per_taker: 1,
        ..world.settings()
    };
    let maker = tokio::spawn(tally_maker::run(settings, status_tx, stop.clone()));
    let (mut room, quote) = heard_quote(&world).await;
    let (alice_wallet, _) = world.a.wallet("alice", Some(&world.a.payer));
    for _ in 0..3 {
        let locked = lock_by_hand(&world, &alice_wallet, &quote, cash(5)).await;
        room.send(&TopicLine::Wire(Message::PayerLocked {
            quote: quote.hash(),
            escrow: locked.escrow,
        }))
        .await;
    }
    maker_until(&mut status, |s| s.open == 1).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(status.borrow().open, 1);
    assert_eq!(world.b.balance(&world.maker.account()).await, 495 * CASH);
    stop.cancel();
    maker.await.unwrap().unwrap();
}

/// A maker that pays from two accounts on B announces a quote for each, and a wire on
/// either completes from the account its quote names (their locks are certified side by
/// side, not one after another).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_pays_from_the_account_each_quote_names() {
    use tally_swap::TopicLine;
    use tally_wallet::wire::Heard;
    let world = world().await;
    let second = SecretKey::generate();
    let mut maker_wallet = tally_wallet::Wallet::open(world.maker_dir.path()).unwrap();
    maker_wallet.add_key(Some(second.clone()), None).unwrap();
    let (funder, _) = world.b.wallet("funder", Some(&world.b.payer));
    ops::pay(
        &funder,
        &world.b.client(),
        &world.b.payer,
        second.account(),
        cash(100),
    )
    .await
    .unwrap();
    let (status_tx, mut status) = watch::channel(MakerStatus::default());
    let stop = CancellationToken::new();
    let settings = MakerSettings {
        accounts: 2,
        ..world.settings()
    };
    let maker = tokio::spawn(tally_maker::run(settings, status_tx, stop.clone()));
    // Both quotes, as the topic carries them.
    let (mut room, first) = heard_quote(&world).await;
    let mut quotes = vec![first];
    while quotes.len() < 2 {
        if let Heard::Line(TopicLine::Quote(quote)) = room.next(Duration::from_secs(5)).await
            && quotes
                .iter()
                .all(|q| q.quote.maker_b != quote.quote.maker_b)
        {
            quotes.push(*quote);
        }
    }
    let (alice_wallet, _) = world.a.wallet("alice", Some(&world.a.payer));
    for quote in &quotes {
        let request = WireRequest {
            known_quotes: vec![quote.clone()],
            ..world.request(cash(10))
        };
        let record = payer::wire(&alice_wallet, request, |_, _| {})
            .await
            .unwrap();
        assert_eq!(record.outcome, Some(Outcome::Completed));
        assert_eq!(
            record.state.config().quote.quote.maker_b,
            quote.quote.maker_b
        );
    }
    maker_until(&mut status, |s| s.completed == 2 && s.open == 0).await;
    // Each account paid 10 on B; the trading account received both on A.
    assert_eq!(world.b.balance(&world.maker.account()).await, 490 * CASH);
    assert_eq!(world.b.balance(&second.account()).await, 90 * CASH);
    assert_eq!(world.a.balance(&world.maker.account()).await, 20_200_000);
    assert_eq!(world.b.balance(&world.a.payer.account()).await, 20 * CASH);
    stop.cancel();
    maker.await.unwrap().unwrap();
}

/// Lines in the topic are anyone's: a forged copy of the maker's quote with no fee (its
/// signature no longer verifies) sent right after the real one, and a made-up "maker
/// locked" hint. The payer ignores them all, takes the real quote, and its wire
/// completes at the real fee. (The forged copy used to replace the real one among the
/// quotes heard, and the payer then found none.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_topic_lines_change_nothing() {
    use tally_swap::{Message, TopicLine};
    use tally_wallet::wire::Heard;
    let world = world().await;
    let (stop_maker, _status) = world.start_maker();
    let (mut room, _) = heard_quote(&world).await;
    let (alice_wallet, _) = world.a.wallet("alice", Some(&world.a.payer));
    let request = world.request(cash(10));
    let wire = tokio::spawn(async move { payer::wire(&alice_wallet, request, |_, _| {}).await });
    // The payer joins; the maker announces for it; the test echoes a forgery at once.
    loop {
        if let Heard::Line(TopicLine::Quote(real)) = room.next(Duration::from_secs(5)).await {
            let mut forged = *real;
            forged.quote.fee_ppm = 0;
            room.send(&TopicLine::Quote(Box::new(forged))).await;
            break;
        }
    }
    room.send(&TopicLine::Wire(Message::MakerLocked {
        escrow_a: tally_core::sha256(&[b"no such escrow"]),
        escrow: tally_core::sha256(&[b"nor this"]),
    }))
    .await;
    let record = wire.await.unwrap().unwrap();
    assert_eq!(record.outcome, Some(Outcome::Completed));
    assert_eq!(record.state.config().quote.quote.fee_ppm, 10_000);
    assert_eq!(world.a.balance(&world.maker.account()).await, 10_100_000);
    stop_maker.cancel();
}
