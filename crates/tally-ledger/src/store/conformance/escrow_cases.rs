//! Escrows in the store: an open escrow and the vote in its slot (with the claim, and so the
//! secret, it carries) survive a restart; a settlement survives with its payment and clears
//! the slot; settlements are indexed under the account they paid; and the money stays
//! conserved through every restart and checkpoint.

use tally_core::{Amount, EscrowId, Order, SecretKey, SignedOrder};

use super::Harness;
use crate::state::{Applied, EscrowState, LedgerError, Settlement, Snapshot, Validator};
use crate::store::ledger_store::{LedgerStore, StoreError};
use crate::store::test_fixture::{
    DEADLINE_MS, NOW_MS, Network, SKEW_MS, accounts, assert_conserved, escrows, secret, view,
};

/// The lock order of `payer`'s escrow for `payee`, voted for, certified and applied by `v`
/// (its clock set to [`NOW_MS`]); and the escrow's id.
pub(super) fn open(
    n: &Network,
    v: &mut Validator,
    payer: &SecretKey,
    payee: &SecretKey,
    amount: u64,
    sequence: u64,
    secret_n: u8,
) -> (SignedOrder, EscrowId) {
    let lock = n.escrow_lock(payer, payee, amount, sequence, &secret(secret_n));
    v.set_clock(NOW_MS);
    v.decide_order(&lock, true).unwrap();
    v.handle_certificate(&n.certificate(lock.clone()), true)
        .unwrap();
    let id = n.escrow_id(&lock);
    (lock, id)
}

/// The escrow a lock order opened, still open.
pub(super) fn opened(lock: &SignedOrder) -> EscrowState {
    let Order::EscrowLock(lock) = &lock.order else {
        panic!("not a lock: {lock:?}")
    };
    EscrowState {
        lock: **lock,
        settlement: Settlement::Open,
    }
}

/// A store holding an open escrow of alice's 300 for bob (opened in one batch), and the
/// first validator's vote for its claim (given in the next): the store, the lock order,
/// the escrow's id and the claim.
fn escrow_with_a_claim_vote<H: Harness>(
    h: &mut H,
    n: &Network,
) -> (H::Store, SignedOrder, EscrowId, SignedOrder) {
    let store = h.fresh();
    let mut v = n.load(&store);
    let (lock, id) = open(n, &mut v, &n.alice, &n.bob, 300, 0, 1);
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    store.checkpoint_if_due().unwrap();
    let claim = n.claim(id, secret(1));
    v.set_clock(NOW_MS + 1);
    v.decide_order(&claim, true).unwrap();
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    store.checkpoint_if_due().unwrap();
    (store, lock, id, claim)
}

/// An open escrow and the vote for its claim survive a restart, from the log and journal
/// or from the checkpointed tables: the claim order (and so its secret) is still held, a
/// refund is refused as conflicting with it, and the claim is voted again.
pub(super) fn an_open_escrow_and_its_claim_vote_survive_reopening<H: Harness>(mut h: H) {
    let n = Network::with_escrows("escrow vote", 2);
    let (store, lock, id, claim) = escrow_with_a_claim_vote(&mut h, &n);
    let claim_digest = claim.order.digest(&n.net);
    let check = |v: &mut Validator, case: &str| {
        assert_eq!(v.escrow(&id), Some(opened(&lock)), "{case}");
        assert_eq!(v.held_settlement(&id), Some(&claim), "{case}");
        assert_eq!(
            v.secret_for(&secret(1).hash_lock()),
            Some(secret(1)),
            "{case}"
        );
        assert_eq!(v.account(&n.alice.account()).balance, 700, "{case}");
        assert_eq!(v.escrowed(), Amount::from_microcash(300), "{case}");
        assert_conserved(v, case);
        v.set_clock(DEADLINE_MS + SKEW_MS);
        assert_eq!(
            v.decide_order(&n.refund(id), true),
            Err(LedgerError::Conflict {
                voted: claim_digest
            }),
            "{case}: a refund got a vote beside the claim's"
        );
        v.set_clock(NOW_MS + 2);
        assert_eq!(v.decide_order(&claim, true), Ok(claim_digest), "{case}");
    };
    let store = h.restart(store);
    check(&mut n.load(&store), "after a restart");
    store.checkpoint().unwrap();
    let store = h.restart(store);
    check(&mut n.load(&store), "after a checkpoint and a restart");
}

/// A claim's certificate survives a restart: the escrow is claimed with its secret, the
/// payee paid, the escrow's slot cleared (no vote in it is restored; both settlements are
/// refused as settled), and the claim is indexed under the payee.
pub(super) fn a_claimed_escrow_survives_reopening<H: Harness>(mut h: H) {
    let n = Network::with_escrows("escrow claim", 2);
    let (store, lock, id, claim) = escrow_with_a_claim_vote(&mut h, &n);
    let mut v = n.load(&store);
    let claimed = n.certificate(claim.clone());
    v.handle_certificate(&claimed, true).unwrap();
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    store.checkpoint_if_due().unwrap();
    let live = view(&store, &n.everyone());
    let certified_lock = n.certificate(lock.clone());
    let (alice, bob) = (n.alice.account(), n.bob.account());
    let check = |store: &H::Store, case: &str| {
        let mut v = n.load(store);
        let settled = EscrowState {
            settlement: Settlement::Claimed(secret(1)),
            ..opened(&lock)
        };
        assert_eq!(v.escrow(&id), Some(settled), "{case}");
        assert_eq!(
            v.secret_for(&secret(1).hash_lock()),
            Some(secret(1)),
            "{case}"
        );
        assert_eq!(
            v.held_settlement(&id),
            None,
            "{case}: the slot was not cleared"
        );
        assert!(
            !v.has_voted_for(&claim.order, &claim.order.digest(&n.net)),
            "{case}"
        );
        assert_eq!(v.account(&alice).balance, 700, "{case}");
        assert_eq!(v.account(&bob).balance, 1300, "{case}");
        assert_eq!(v.escrowed(), Amount::ZERO, "{case}");
        assert_eq!(v.supply(), Amount::from_microcash(2000), "{case}");
        assert_conserved(&v, case);
        v.set_clock(NOW_MS + 2);
        assert_eq!(
            v.decide_order(&claim, true),
            Err(LedgerError::EscrowSettled(id)),
            "{case}"
        );
        v.set_clock(DEADLINE_MS + SKEW_MS);
        assert_eq!(
            v.decide_order(&n.refund(id), true),
            Err(LedgerError::EscrowSettled(id)),
            "{case}"
        );
        assert_eq!(
            v.handle_certificate(&claimed, true),
            Ok(Applied { new: false })
        );
        assert!(v.take_snapshot().is_empty(), "{case}");
        // The lock is the payer's sent order and touches it; the claim touches the payee.
        assert_eq!(
            store.sent(&alice, 0, 10).unwrap(),
            (vec![(0, certified_lock.clone())], None),
            "{case}"
        );
        assert!(store.sent(&bob, 0, 10).unwrap().0.is_empty(), "{case}");
        assert_eq!(
            store.touching(&alice, 0, 10).unwrap(),
            (vec![(0, certified_lock.clone())], None),
            "{case}"
        );
        assert_eq!(
            store.touching(&bob, 0, 10).unwrap(),
            (vec![(1, claimed.clone())], None),
            "{case}"
        );
        assert_eq!(view(store, &n.everyone()), live, "{case}");
    };
    check(&store, "before a restart");
    let store = h.restart(store);
    check(&store, "after a restart");
    store.checkpoint().unwrap();
    let store = h.restart(store);
    check(&store, "after a checkpoint and a restart");
}

/// A refund's certificate survives a restart: the escrow is refunded, the payer paid back,
/// the vote in its slot cleared, and the refund is indexed under the payer.
pub(super) fn a_refunded_escrow_survives_reopening<H: Harness>(mut h: H) {
    let n = Network::with_escrows("escrow refund", 2);
    let store = h.fresh();
    let mut v = n.load(&store);
    let (lock, id) = open(&n, &mut v, &n.bob, &n.carol, 200, 0, 2);
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    let refund = n.refund(id);
    v.set_clock(DEADLINE_MS + SKEW_MS);
    v.decide_order(&refund, true).unwrap();
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    store.checkpoint_if_due().unwrap();
    let refunded = n.certificate(refund.clone());
    v.handle_certificate(&refunded, true).unwrap();
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    let bob = n.bob.account();
    let check = |store: &H::Store, case: &str| {
        let v = n.load(store);
        let settled = EscrowState {
            settlement: Settlement::Refunded,
            ..opened(&lock)
        };
        assert_eq!(v.escrow(&id), Some(settled), "{case}");
        assert_eq!(v.held_settlement(&id), None, "{case}");
        assert_eq!(v.account(&bob).balance, 1000, "{case}");
        assert_eq!(v.account(&n.carol.account()).balance, 0, "{case}");
        assert_eq!(v.secret_for(&secret(2).hash_lock()), None, "{case}");
        assert_conserved(&v, case);
        let logged = |position: u64, certificate| (position, certificate);
        assert_eq!(
            store.touching(&bob, 0, 10).unwrap(),
            (
                vec![
                    logged(0, n.certificate(lock.clone())),
                    logged(1, refunded.clone())
                ],
                None
            ),
            "{case}"
        );
        assert!(
            store
                .touching(&n.carol.account(), 0, 10)
                .unwrap()
                .0
                .is_empty(),
            "{case}"
        );
    };
    check(&store, "before a restart");
    let store = h.restart(store);
    check(&store, "after a restart");
    store.checkpoint().unwrap();
    let store = h.restart(store);
    check(&store, "after a checkpoint and a restart");
}

/// Supply, balances and open escrows add up after every batch and every restart, with
/// escrows opened, claimed and refunded across checkpoints; a restarted store holds every
/// escrow exactly as the live validator did.
pub(super) fn escrowed_money_is_conserved_across_reopening<H: Harness>(mut h: H) {
    let n = Network::with_escrows("escrow supply", 2);
    let mut store = h.fresh();
    let mut v = n.load(&store);
    let (_, to_bob) = open(&n, &mut v, &n.alice, &n.bob, 100, 0, 1);
    let (_, to_carol) = open(&n, &mut v, &n.bob, &n.carol, 200, 0, 2);
    let (_, kept) = open(&n, &mut v, &n.alice, &n.carol, 50, 1, 3);
    // The batch that opened them, then one certificate a batch.
    let steps = [
        None,
        Some(n.claim(to_bob, secret(1))),
        Some(n.pay(&n.bob, &n.carol, 30, 1)),
        Some(n.refund(to_carol)),
        Some(n.intro(&n.carol, 1)),
    ];
    for (step, order) in steps.into_iter().enumerate() {
        if let Some(order) = order {
            v.handle_certificate(&n.certificate(order), true).unwrap();
        }
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        store.checkpoint_if_due().unwrap();
        let case = format!("after step {step}");
        assert_conserved(&v, &case);
        store = h.restart(store);
        let w = n.load(&store);
        assert_conserved(&w, &case);
        assert_eq!(accounts(&w), accounts(&v), "{case}");
        assert_eq!(escrows(&w), escrows(&v), "{case}");
        assert_eq!(w.supply(), v.supply(), "{case}");
    }
    assert_eq!(v.escrowed(), Amount::from_microcash(50));
    assert_eq!(v.supply(), Amount::from_microcash(2010));
    assert_eq!(
        v.escrow(&kept).map(|e| e.settlement),
        Some(Settlement::Open)
    );
    let stored: i128 = store
        .accounts_page(None, 10)
        .unwrap()
        .iter()
        .map(|(_, s)| s.balance)
        .sum();
    assert_eq!(
        stored + 50,
        2010,
        "the store's balances and the open escrow"
    );
    store.checkpoint().unwrap();
    let store = h.restart(store);
    let w = n.load(&store);
    assert_conserved(&w, "after a last checkpoint");
    assert_eq!(escrows(&w), escrows(&v));
}

/// A settlement is indexed under its payee or payer even when its batch does not carry the
/// escrow (from the store's pending or checkpointed escrows); one of an escrow the store
/// does not hold is refused whole.
pub(super) fn a_settlement_is_indexed_from_the_stored_escrow<H: Harness>(mut h: H) {
    let n = Network::with_escrows("escrow index", 2);
    let store = h.fresh();
    let mut v = n.load(&store);
    let (_, checkpointed) = open(&n, &mut v, &n.alice, &n.bob, 100, 0, 1);
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    store.checkpoint().unwrap();
    let (_, recent) = open(&n, &mut v, &n.bob, &n.carol, 100, 0, 2);
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    let claim = n.certificate(n.claim(checkpointed, secret(1)));
    let refund = n.certificate(n.refund(recent));
    v.handle_certificate(&claim, true).unwrap();
    v.handle_certificate(&refund, true).unwrap();
    let mut snapshot = v.take_snapshot();
    snapshot.escrows.clear();
    store.commit_snapshot(&snapshot, &[]).unwrap();
    let positions = |account| -> Vec<u64> {
        let (page, _) = store.touching(&account, 0, 10).unwrap();
        page.into_iter().map(|(position, _)| position).collect()
    };
    assert_eq!(positions(n.alice.account()), [0]);
    assert_eq!(positions(n.bob.account()), [1, 2, 3]);
    assert!(positions(n.carol.account()).is_empty());

    let seen = view(&store, &n.everyone());
    let stranger = n.certificate(n.claim(EscrowId::from([0xee; 32]), secret(9)));
    let unknown = Snapshot {
        certificates: vec![(v.log_len(), stranger)],
        supply: v.supply(),
        log_len: v.log_len() + 1,
        ..Snapshot::default()
    };
    assert!(matches!(
        store.commit_snapshot(&unknown, &[]),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(
        view(&store, &n.everyone()),
        seen,
        "a refused batch left rows"
    );
}
