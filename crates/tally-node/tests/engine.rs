//! The validator engine (`tally_node::engine`) driven directly over a store: it decides
//! requests in batches, releases no answer before the commit of the batch holding it, and
//! stops for good on a failed commit, after which a restart from the store gives the last
//! committed state with every vote it gave still binding.
//!
//! The store is a [`GatedStore`]: the real [`MemoryLedgerStore`] behind a gate that holds
//! every commit until the test opens it, and that reports each commit as it arrives. No
//! test waits on time: each waits on the gate's reports, on answers, or on the engine's
//! status (whose answer is sent while its batch is decided, so it marks every job queued
//! before it as decided).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tally_core::{
    AccountId, Allocation, Amount, Certificate, IntroKey, Mode, NetworkContract, NetworkId, Order,
    SecretKey, SignedOrder, Transfer, ValidatorInfo, Vote,
};
use tally_ledger::{
    AccountState, CertificatePage, LedgerStore, MemoryLedgerStore, Snapshot, StoreError, Validator,
};
use tally_node::engine::{self, EngineHandle};
use tally_proto::{ErrorCode, Packet};
use tokio::sync::{mpsc, oneshot};

/// A commit as it reached the gate.
#[derive(Debug)]
struct Arrival {
    /// Vote locks the batch sets or clears.
    locks: usize,
    /// Certificates the batch appends.
    certificates: usize,
}

/// A [`LedgerStore`] that passes every call to a [`MemoryLedgerStore`], but first reports
/// each commit to the test and holds it until the gate is open; it counts the commits and
/// checkpoints that reach the store, and those that come after a failed commit.
struct GatedStore {
    inner: MemoryLedgerStore,
    open: Mutex<bool>,
    opened: Condvar,
    arrivals: mpsc::UnboundedSender<Arrival>,
    /// Commits with something to write that reached `inner`.
    commits: AtomicU64,
    /// Whether a commit failed.
    failed: AtomicBool,
    /// Commits and checkpoints called after a commit failed.
    writes_after_failure: AtomicU64,
}

impl GatedStore {
    /// A gated store over `inner`, its gate open, and the receiver of its reports.
    fn new(inner: MemoryLedgerStore) -> (Arc<Self>, mpsc::UnboundedReceiver<Arrival>) {
        let (arrivals, reports) = mpsc::unbounded_channel();
        let store = GatedStore {
            inner,
            open: Mutex::new(true),
            opened: Condvar::new(),
            arrivals,
            commits: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            writes_after_failure: AtomicU64::new(0),
        };
        (Arc::new(store), reports)
    }

    /// Holds every commit from now on at the gate.
    fn close(&self) {
        *self.open.lock().unwrap() = false;
    }

    /// Lets every held commit, and every later one, through.
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn count_write(&self) {
        if self.failed.load(Ordering::SeqCst) {
            self.writes_after_failure.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl LedgerStore for GatedStore {
    fn load(
        &self,
        validator: &mut Validator,
        contract: &NetworkContract,
    ) -> Result<(), StoreError> {
        self.inner.load(validator, contract)
    }

    fn commit_snapshot(
        &self,
        snapshot: &Snapshot,
        cursors: &[(AccountId, u64)],
    ) -> Result<(), StoreError> {
        self.count_write();
        let _ = self.arrivals.send(Arrival {
            locks: snapshot.locks.len(),
            certificates: snapshot.certificates.len(),
        });
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        let result = self.inner.commit_snapshot(snapshot, cursors);
        match &result {
            Ok(()) if !snapshot.is_empty() => {
                self.commits.fetch_add(1, Ordering::SeqCst);
            }
            Ok(()) => {}
            Err(_) => self.failed.store(true, Ordering::SeqCst),
        }
        result
    }

    fn checkpoint_if_due(&self) -> Result<(), StoreError> {
        self.count_write();
        self.inner.checkpoint_if_due()
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        self.count_write();
        self.inner.checkpoint()
    }

    fn checkpoints(&self) -> (u64, u64) {
        self.inner.checkpoints()
    }

    fn cursor(&self, peer: &AccountId) -> Result<u64, StoreError> {
        self.inner.cursor(peer)
    }

    fn certificates_since(&self, since: u64, limit: usize) -> Result<CertificatePage, StoreError> {
        self.inner.certificates_since(since, limit)
    }

    fn sent(
        &self,
        account: &AccountId,
        from: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError> {
        self.inner.sent(account, from, limit)
    }

    fn touching(
        &self,
        account: &AccountId,
        since: u64,
        limit: usize,
    ) -> Result<CertificatePage, StoreError> {
        self.inner.touching(account, since, limit)
    }

    fn accounts_page(
        &self,
        after: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<(AccountId, AccountState)>, StoreError> {
        self.inner.accounts_page(after, limit)
    }
}

/// A network of four validators (the engine runs the first); alice and bob hold 1000
/// microcash at genesis; introductions need no proof of work.
struct Net {
    contract: NetworkContract,
    id: NetworkId,
    keys: Vec<SecretKey>,
    alice: SecretKey,
    bob: SecretKey,
    carol: SecretKey,
}

/// The most requests the engine decides in one batch.
const MAX_BATCH: usize = 64;

impl Net {
    fn new(name: &str) -> Self {
        let keys: Vec<SecretKey> = (1..=4u8).map(|i| SecretKey::from_bytes([i; 32])).collect();
        let alice = SecretKey::from_bytes([0xa1; 32]);
        let bob = SecretKey::from_bytes([0xb0; 32]);
        let carol = SecretKey::from_bytes([0xc0; 32]);
        let contract = NetworkContract {
            name: name.into(),
            mode: Mode::Quorum,
            unit: "cash".into(),
            faucet: Amount::from_microcash(10),
            intro_pow_bits: 0,
            validators: keys
                .iter()
                .map(|k| ValidatorInfo {
                    key: k.account(),
                    address: "127.0.0.1:1".into(),
                })
                .collect(),
            tracker: None,
            genesis: [&alice, &bob]
                .iter()
                .map(|k| Allocation {
                    account: k.account(),
                    amount: Amount::from_microcash(1000),
                })
                .collect(),
            pow: None,
            max_clock_skew_ms: None,
        };
        let id = contract.id();
        Net {
            contract,
            id,
            keys,
            alice,
            bob,
            carol,
        }
    }

    /// The first validator, loaded from `store`.
    fn load(&self, store: &dyn LedgerStore) -> Validator {
        let mut validator = Validator::new(self.keys[0].clone(), &self.contract).unwrap();
        store.load(&mut validator, &self.contract).unwrap();
        validator
    }

    /// An engine of the first validator over `store`.
    fn start(&self, store: Arc<dyn LedgerStore>) -> (EngineHandle, std::thread::JoinHandle<()>) {
        let validator = self.load(store.as_ref());
        engine::start(validator, store, MAX_BATCH, "127.0.0.1:1".into(), None).unwrap()
    }

    fn pay(&self, from: &SecretKey, to: &SecretKey, amount: u64, sequence: u64) -> SignedOrder {
        SignedOrder::sign(
            Order::Transfer(Transfer {
                sender: from.account(),
                recipient: to.account(),
                amount: Amount::from_microcash(amount),
                sequence,
            }),
            from,
            &self.id,
        )
    }

    fn intro(&self, key: &SecretKey) -> SignedOrder {
        SignedOrder::sign(
            Order::IntroKey(IntroKey {
                account: key.account(),
                proof_of_work: 1,
            }),
            key,
            &self.id,
        )
    }

    /// `order` with the votes of the first three validators.
    fn certificate(&self, order: SignedOrder) -> Certificate {
        let digest = order.order.digest(&self.id);
        let votes = self.keys[..3]
            .iter()
            .map(|k| Vote::sign(k, &self.id, &digest))
            .collect();
        Certificate::new(order, &self.id, votes)
    }

    /// Asserts that `answer` is the engine validator's vote for `order`.
    fn assert_vote(&self, answer: &Packet, order: &SignedOrder) {
        let digest = order.order.digest(&self.id);
        let reply = match answer {
            Packet::RespPay(reply) | Packet::RespIntroKey(reply) => reply,
            other => panic!("expected a vote, got {other:?}"),
        };
        assert_eq!(reply.checksum, digest);
        assert_eq!(reply.votes.len(), 1);
        assert_eq!(reply.votes[0].validator, self.keys[0].account());
        assert!(reply.votes[0].verify(&self.id, &digest));
    }
}

fn error_code(answer: &Packet) -> Option<ErrorCode> {
    match answer {
        Packet::Error(error) => Some(error.code),
        _ => None,
    }
}

/// Many requests submitted at once are decided in a few batches, not one by one: while
/// one batch's commit is held, the engine can decide at most three more (one waiting to be
/// handed over, two queued for the committer), and everything still queued when the
/// commit goes through is decided together. 40 votes thus take at most 5 commits, and
/// every one of them is answered with a valid vote.
#[tokio::test]
async fn requests_submitted_at_once_are_decided_in_batches() {
    let net = Net::new("engine batches");
    let (store, _arrivals) = GatedStore::new(MemoryLedgerStore::new());
    let (handle, thread) = net.start(store.clone());
    let keys: Vec<SecretKey> = (0..40u8)
        .map(|i| SecretKey::from_bytes([0x10 + i; 32]))
        .collect();
    let orders: Vec<SignedOrder> = keys.iter().map(|k| net.intro(k)).collect();

    store.close();
    let mut answers = Vec::new();
    for order in &orders {
        answers.push(handle.submit(Packet::ReqIntroKey(order.clone())).await);
    }
    store.release();
    for (answer, order) in answers.into_iter().zip(&orders) {
        net.assert_vote(&answer.await.unwrap(), order);
    }

    let commits = store.commits.load(Ordering::SeqCst);
    assert!(
        (1..=5).contains(&commits),
        "40 votes took {commits} commits"
    );
    let status = handle.status().await.unwrap();
    // The status job is counted too, in a batch of its own (every vote was answered).
    assert_eq!(status.requests, 41);
    assert_eq!(status.batches, commits + 1);
    // Every vote is in the store: a restart still holds each.
    let restarted = net.load(&store.inner.crash());
    for order in &orders {
        assert!(restarted.has_voted_for(&order.order, &order.order.digest(&net.id)));
    }
    drop(handle);
    thread.join().unwrap();
}

/// No answer leaves before the commit of the batch that holds it: a vote, and the
/// acknowledgement of a certificate, are not released while their batch's commit is held
/// at the gate, and once released, a restart from the store already holds them (the vote
/// blocks a conflicting order; the certificate is applied). An engine that answered
/// before committing (or while committing) fails here.
#[tokio::test]
async fn no_answer_is_released_before_its_batch_is_committed() {
    let net = Net::new("engine answers after commit");
    let (store, mut arrivals) = GatedStore::new(MemoryLedgerStore::new());
    let (handle, thread) = net.start(store.clone());
    let order = net.pay(&net.alice, &net.bob, 100, 0);
    let conflicting = net.pay(&net.alice, &net.carol, 100, 0);

    // The vote.
    store.close();
    let mut answer = handle.submit(Packet::ReqPay(order.clone())).await;
    let arrival = arrivals.recv().await.unwrap();
    assert_eq!((arrival.locks, arrival.certificates), (1, 0));
    assert!(
        matches!(answer.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
        "a vote was released before its batch was committed"
    );
    store.release();
    net.assert_vote(&answer.await.unwrap(), &order);
    let mut restarted = net.load(&store.inner.crash());
    assert!(matches!(
        restarted.decide_order(&conflicting, true),
        Err(tally_ledger::LedgerError::Conflict { .. })
    ));

    // The certificate's acknowledgement.
    store.close();
    let mut answer = handle
        .submit(Packet::ReqPayEnd(net.certificate(order.clone())))
        .await;
    let arrival = arrivals.recv().await.unwrap();
    assert_eq!(arrival.certificates, 1);
    assert!(
        matches!(answer.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
        "an acknowledgement was released before its batch was committed"
    );
    store.release();
    match answer.await.unwrap() {
        Packet::RespPayEnd(ack) => assert!(ack.new),
        other => panic!("expected an acknowledgement, got {other:?}"),
    }
    let restarted = net.load(&store.inner.crash());
    assert_eq!(restarted.log_len(), 1);
    assert_eq!(restarted.account(&net.bob.account()).balance, 1100);

    drop(handle);
    thread.join().unwrap();
}

/// Crash-only on a failed commit: the failing batch's vote and the vote decided after it
/// (in memory, on top of the failed batch) are answered `Internal`, a request that comes
/// later gets no vote, no commit or checkpoint reaches the store after the failure, and
/// `failed()` resolves. A restart from the store shows exactly the last committed state:
/// the vote given before the failure still blocks a conflicting order, and the slots whose
/// votes were never recorded are free.
#[tokio::test]
async fn a_failed_commit_stops_the_engine_and_a_restart_keeps_every_vote_given() {
    let net = Net::new("engine failed commit");
    let (store, mut arrivals) = GatedStore::new(MemoryLedgerStore::new());
    let (handle, thread) = net.start(store.clone());

    // A vote given and committed before the failure.
    let given = net.pay(&net.alice, &net.bob, 100, 0);
    let answer = handle.submit(Packet::ReqPay(given.clone())).await;
    net.assert_vote(&answer.await.unwrap(), &given);
    while arrivals.try_recv().is_ok() {}
    let committed = (
        store.inner.accounts_page(None, 100).unwrap(),
        store.inner.certificates_since(0, 100).unwrap(),
    );

    // The failing batch: bob's order, held at the gate, then refused by the store.
    store.close();
    store.inner.fail_next_commit();
    let failing = net.pay(&net.bob, &net.carol, 5, 0);
    let failing_answer = handle.submit(Packet::ReqPay(failing.clone())).await;
    assert_eq!(arrivals.recv().await.unwrap().locks, 1);
    // Carol's introduction, decided after it: the status answer marks it decided.
    let later = net.intro(&net.carol);
    let later_answer = handle.submit(Packet::ReqIntroKey(later.clone())).await;
    handle.status().await.unwrap();
    assert!(!handle.has_failed());
    store.release();

    for answer in [failing_answer, later_answer] {
        assert_eq!(
            error_code(&answer.await.unwrap()),
            Some(ErrorCode::Internal)
        );
    }
    handle.failed().await;
    assert!(handle.has_failed());
    // After the failure: no vote, whatever the answer (the engine may be gone already).
    let after = net.pay(&net.alice, &net.carol, 1, 1);
    let answer = handle.submit(Packet::ReqPay(after)).await;
    if let Ok(packet) = answer.await {
        assert!(
            matches!(
                error_code(&packet),
                Some(ErrorCode::Busy | ErrorCode::Internal)
            ),
            "answered after the failure: {packet:?}"
        );
    }
    drop(handle);
    thread.join().unwrap();
    assert_eq!(store.writes_after_failure.load(Ordering::SeqCst), 0);
    assert_eq!(
        (
            store.inner.accounts_page(None, 100).unwrap(),
            store.inner.certificates_since(0, 100).unwrap(),
        ),
        committed,
        "something was written after the failure"
    );

    // Restart from the store, as the node does.
    let restarted = Arc::new(store.inner.crash());
    let (handle, thread) = net.start(restarted.clone());
    let status = handle.status().await.unwrap();
    assert_eq!(status.certificates, 0);
    assert_eq!(status.supply, Amount::from_microcash(2000));
    let conflicting = net.pay(&net.alice, &net.carol, 100, 0);
    let answer = handle.submit(Packet::ReqPay(conflicting)).await;
    assert_eq!(
        error_code(&answer.await.unwrap()),
        Some(ErrorCode::Conflict),
        "a vote given before the failure was forgotten"
    );
    let answer = handle.submit(Packet::ReqPay(given.clone())).await;
    net.assert_vote(&answer.await.unwrap(), &given);
    // The failed batch's slots hold no vote: other orders in them are voted for.
    let instead = net.pay(&net.bob, &net.alice, 7, 0);
    let answer = handle.submit(Packet::ReqPay(instead.clone())).await;
    net.assert_vote(&answer.await.unwrap(), &instead);
    let answer = handle.submit(Packet::ReqIntroKey(later.clone())).await;
    net.assert_vote(&answer.await.unwrap(), &later);
    drop(handle);
    thread.join().unwrap();
}

/// A certificate of an order already applied, but with a forged vote in it, is answered
/// as what it is, a bad certificate, not acknowledged as already known (which would vouch
/// for it): the engine checks the votes of replays too. The genuine certificate's replay
/// is still acknowledged as known, and nothing changes either way.
#[tokio::test]
async fn a_replayed_certificate_with_a_forged_vote_is_refused_not_acknowledged() {
    let net = Net::new("engine forged replay");
    let (store, _arrivals) = GatedStore::new(MemoryLedgerStore::new());
    let (handle, thread) = net.start(store.clone());
    let order = net.pay(&net.alice, &net.bob, 5, 0);
    let certificate = net.certificate(order.clone());
    let first = handle
        .submit(Packet::ReqPayEnd(certificate.clone()))
        .await
        .await
        .unwrap();
    assert!(
        matches!(&first, Packet::RespPayEnd(ack) if ack.new),
        "{first:?}"
    );

    let mut forged = certificate.clone();
    forged.votes[1].signature = tally_core::Signature::from([0x5A; 64]);
    let answer = handle
        .submit(Packet::ReqPayEnd(forged))
        .await
        .await
        .unwrap();
    assert_eq!(
        error_code(&answer),
        Some(ErrorCode::BadCertificate),
        "{answer:?}"
    );

    let replay = handle
        .submit(Packet::ReqPayEnd(certificate))
        .await
        .await
        .unwrap();
    assert!(
        matches!(&replay, Packet::RespPayEnd(ack) if !ack.new),
        "{replay:?}"
    );
    let restarted = net.load(&store.inner.crash());
    assert_eq!(restarted.account(&net.bob.account()).balance, 1005);
    assert_eq!(restarted.log_len(), 1);
    drop(handle);
    thread.join().unwrap();
}
