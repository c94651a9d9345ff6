//! Escrows on a proof-of-work network through the wallet, against a real miner (in-process,
//! over TCP, its chain in files): a lock is journaled, confirmed and receipted like a
//! payment; its payee claims it with the secret; an unclaimed one is refunded once the
//! chain's median time has reached its deadline and not before; refusals change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::chain::{contract, start_miner};
use tally_core::{Amount, EscrowId, EscrowSecret, NetworkContract, SecretKey};
use tally_node::pow::PowNode;
use tally_proto::pow::WireLimits;
use tally_proto::{EscrowQuery, EscrowStanding};
use tally_wallet::chain::escrow::{self, LockTerms};
use tally_wallet::chain::{ChainWalletError, Miners, Waiting};
use tally_wallet::escrow::unix_ms;
use tally_wallet::{MinerError, Wallet};

struct Setup {
    _dir: tempfile::TempDir,
    _node: PowNode,
    contract: NetworkContract,
    wallet: Wallet,
    alice: SecretKey,
    bob: SecretKey,
    miners: Miners,
}

async fn setup(name: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut wallet = Wallet::open(&dir.path().join("wallet")).unwrap();
    let (alice, bob) = (SecretKey::generate(), SecretKey::generate());
    wallet.add_key(Some(alice.clone()), None).unwrap();
    let mut contract = contract(name, alice.account(), 100);
    // Blocks come every few milliseconds here: the median time trails the clock by little.
    contract.max_clock_skew_ms = Some(200);
    if let Some(pow) = contract.pow.as_mut() {
        pow.block_time_ms = 100;
    }
    let node = start_miner(&contract, &dir.path().join("miner")).await;
    let miners = Miners::at(
        contract.id(),
        vec![node.address().to_string()],
        WireLimits::default(),
    );
    Setup {
        _dir: dir,
        _node: node,
        contract,
        wallet,
        alice,
        bob,
        miners,
    }
}

fn waiting() -> Waiting {
    Waiting {
        confirmations: 2,
        patience: Duration::from_secs(60),
    }
}

/// The chain's median time past, as the miners report it with an escrow.
async fn median_time(miners: &Miners, escrow: EscrowId) -> u64 {
    escrow::status(miners, &EscrowQuery::Id(escrow))
        .await
        .median_time_ms()
        .unwrap()
}

async fn balance(miners: &Miners, s: &SecretKey) -> u64 {
    miners
        .account(&s.account())
        .await
        .unwrap()
        .0
        .balance
        .microcash()
}

fn terms(s: &Setup, secret: EscrowSecret, deadline_ms: u64) -> LockTerms {
    LockTerms {
        payee: s.bob.account(),
        amount: Amount::from_cash(7).unwrap(),
        hash_lock: secret.hash_lock(),
        deadline_ms,
        counterpart: None,
    }
}

/// The payee claims with the secret; the secret and the claim's depth are then visible to
/// anyone who asks any miner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_escrow_is_claimed_by_its_payee_with_the_secret() {
    let s = setup("chain-escrow-claim").await;
    let secret = EscrowSecret::generate();
    let deadline = unix_ms() + 600_000;
    let locked = escrow::lock(
        &s.wallet,
        &s.miners,
        &s.contract,
        &s.alice,
        terms(&s, secret, deadline),
        waiting(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(locked.receipt.confirmations >= 2);
    assert!(
        s.wallet.pending(&s.alice.account()).unwrap().is_none(),
        "the journal is cleared once the lock is confirmed"
    );
    let status = escrow::status(&s.miners, &EscrowQuery::Id(locked.escrow)).await;
    assert_eq!(status.standing(), Some(EscrowStanding::Open));
    assert_eq!(status.lock(), Some(locked.lock));
    assert_eq!(status.secret, None);
    assert!(status.depths().0.unwrap() >= 2);

    let bob_before = balance(&s.miners, &s.bob).await;
    let wrong = escrow::claim(
        &s.wallet,
        &s.miners,
        locked.escrow,
        EscrowSecret::generate(),
        waiting(),
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(&wrong, Err(ChainWalletError::Miner(MinerError::Rejected(reason))) if reason.contains("does not open")),
        "{wrong:?}"
    );
    let (receipt, _) = escrow::claim(
        &s.wallet,
        &s.miners,
        locked.escrow,
        secret,
        waiting(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(receipt.confirmations >= 2);
    assert_eq!(
        balance(&s.miners, &s.bob).await,
        bob_before + 7_000_000,
        "the payee is paid the amount locked"
    );
    let by_hash = escrow::status(&s.miners, &EscrowQuery::HashLock(secret.hash_lock())).await;
    assert_eq!(by_hash.standing(), Some(EscrowStanding::Claimed));
    assert_eq!(by_hash.secret, Some(secret));
    assert!(by_hash.depths().1.unwrap() >= 2);
    // Claiming again is harmless: the claim is already on the chain.
    let (again, _) = escrow::claim(
        &s.wallet,
        &s.miners,
        locked.escrow,
        secret,
        waiting(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(again.id, receipt.id);
}

/// Nobody claims: the refund is refused while the deadline is ahead, then taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclaimed_escrow_is_refunded_after_its_deadline_and_not_before() {
    let s = setup("chain-escrow-refund").await;
    let alice_before = balance(&s.miners, &s.alice).await;
    let deadline = unix_ms() + 2_000;
    let locked = escrow::lock(
        &s.wallet,
        &s.miners,
        &s.contract,
        &s.alice,
        terms(&s, EscrowSecret::generate(), deadline),
        waiting(),
        &mut |_| {},
    )
    .await
    .unwrap();
    // Ask early only with a margin left.
    if median_time(&s.miners, locked.escrow).await + 1_000 < deadline {
        let early =
            escrow::refund(&s.wallet, &s.miners, locked.escrow, waiting(), &mut |_| {}).await;
        assert!(
            matches!(&early, Err(ChainWalletError::Miner(MinerError::Rejected(reason))) if reason.contains("not yet")),
            "{early:?}"
        );
    }
    while median_time(&s.miners, locked.escrow).await < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    escrow::refund(&s.wallet, &s.miners, locked.escrow, waiting(), &mut |_| {})
        .await
        .unwrap();
    let status = escrow::status(&s.miners, &EscrowQuery::Id(locked.escrow)).await;
    assert_eq!(status.standing(), Some(EscrowStanding::Refunded));
    assert_eq!(
        balance(&s.miners, &s.alice).await,
        alice_before,
        "the payer has it all back"
    );
}

/// A lock that would leave no block to claim in, or that pays its payer, is refused before
/// anything is signed or journaled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_without_time_to_claim_is_refused_before_signing() {
    let s = setup("chain-escrow-refused").await;
    let refused = escrow::lock(
        &s.wallet,
        &s.miners,
        &s.contract,
        &s.alice,
        terms(&s, EscrowSecret::generate(), unix_ms() + 100),
        waiting(),
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(&refused, Err(ChainWalletError::Refused(reason)) if reason.contains("must be more than")),
        "{refused:?}"
    );
    let mut to_self = terms(&s, EscrowSecret::generate(), unix_ms() + 600_000);
    to_self.payee = s.alice.account();
    assert!(matches!(
        escrow::lock(
            &s.wallet,
            &s.miners,
            &s.contract,
            &s.alice,
            to_self,
            waiting(),
            &mut |_| {}
        )
        .await,
        Err(ChainWalletError::Refused(_))
    ));
    let mut no_escrows = s.contract.clone();
    no_escrows.max_clock_skew_ms = None;
    let refused = escrow::lock(
        &s.wallet,
        &s.miners,
        &no_escrows,
        &s.alice,
        terms(&s, EscrowSecret::generate(), unix_ms() + 600_000),
        waiting(),
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(&refused, Err(ChainWalletError::Refused(reason)) if reason.contains("takes no escrows")),
        "{refused:?}"
    );
    assert!(s.wallet.pending(&s.alice.account()).unwrap().is_none());
    assert!(s.wallet.chain_receipts().unwrap().is_empty());
}
