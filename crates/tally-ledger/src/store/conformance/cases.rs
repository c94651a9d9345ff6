//! The suite's cases, each generic over the [`Harness`] of one kind of store.

use tally_core::{AccountId, Amount, Certificate, SignedOrder, Vote};

use super::Harness;
use crate::state::{Applied, LedgerError};
use crate::store::ledger_store::{LedgerStore, StoreError};
use crate::store::test_fixture::{Network, accounts, view};

/// A fresh store funds the genesis once, keeps it across a restart, and refuses another
/// network's contract.
pub(super) fn a_fresh_store_holds_the_genesis<H: Harness>(mut h: H) {
    let n = Network::new("genesis", 2);
    let store = h.fresh();
    let v = n.load(&store);
    assert_eq!(v.supply(), Amount::from_microcash(2000));
    assert_eq!(v.account(&n.alice.account()).balance, 1000);
    let genesis = accounts(&v);
    assert_eq!(store.accounts_page(None, 10).unwrap(), genesis);
    assert_eq!(store.certificates_since(0, 10).unwrap(), (Vec::new(), None));

    let store = h.restart(store);
    let v = n.load(&store);
    assert_eq!(v.supply(), Amount::from_microcash(2000), "funded once");
    assert_eq!(v.log_len(), 0);
    assert_eq!(accounts(&v), genesis);

    let other = Network::new("another network", 2);
    let mut stranger =
        crate::state::Validator::new(other.keys[0].clone(), &other.contract).unwrap();
    assert!(matches!(
        store.load(&mut stranger, &other.contract),
        Err(StoreError::WrongNetwork)
    ));
}

/// What a commit wrote is what the store reads back, before any restart.
pub(super) fn commit_then_read_back<H: Harness>(mut h: H) {
    let n = Network::new("read back", 2);
    let store = h.fresh();
    let mut v = n.load(&store);
    let first = n.pay(&n.alice, &n.bob, 300, 0);
    let second = n.pay(&n.bob, &n.carol, 50, 0);
    let certificates = [n.certificate(first), n.certificate(second)];
    for certificate in &certificates {
        v.handle_certificate(certificate, true).unwrap();
    }
    let peer = n.keys[1].account();
    store
        .commit_snapshot(&v.take_snapshot(), &[(peer, 42)])
        .unwrap();

    let (log, next) = store.certificates_since(0, 10).unwrap();
    assert_eq!(next, None);
    assert_eq!(
        log,
        vec![(0, certificates[0].clone()), (1, certificates[1].clone())]
    );
    assert_eq!(
        store.sent(&n.alice.account(), 0, 10).unwrap(),
        (vec![(0, certificates[0].clone())], None)
    );
    assert_eq!(
        store.sent(&n.bob.account(), 0, 10).unwrap(),
        (vec![(1, certificates[1].clone())], None)
    );
    assert!(store.sent(&n.carol.account(), 0, 10).unwrap().0.is_empty());
    let touching = |account: &AccountId| -> Vec<u64> {
        let (page, next) = store.touching(account, 0, 10).unwrap();
        assert_eq!(next, None);
        page.into_iter().map(|(position, _)| position).collect()
    };
    assert_eq!(touching(&n.alice.account()), [0]);
    assert_eq!(touching(&n.bob.account()), [0, 1]);
    assert_eq!(touching(&n.carol.account()), [1]);
    assert_eq!(store.accounts_page(None, 10).unwrap(), accounts(&v));
    assert_eq!(store.cursor(&peer).unwrap(), 42);
    assert_eq!(store.cursor(&n.keys[2].account()).unwrap(), 0);
}

/// Group commit: two batches' snapshots, the second absorbed into the first and written
/// as one commit, leave the store exactly as committing them one after the other does
/// (log, accounts, votes, cursors, the per-account indexes), before and after a restart.
pub(super) fn batches_absorbed_into_one_commit_read_back_as_committed_apart<H: Harness>(mut h: H) {
    let n = Network::new("group commit", 2);
    let peer = n.keys[1].account();
    let held = n.pay(&n.alice, &n.carol, 7, 1);
    let held_digest = held.order.digest(&n.net);
    let batches = |v: &mut crate::state::Validator| {
        let first = n.pay(&n.alice, &n.bob, 300, 0);
        v.handle_certificate(&n.certificate(first), true).unwrap();
        let one = v.take_snapshot();
        // The second batch changes the same accounts again and opens a vote.
        let second = n.pay(&n.bob, &n.alice, 50, 0);
        v.handle_certificate(&n.certificate(second), true).unwrap();
        v.handle_order(&held, true).unwrap();
        (one, v.take_snapshot())
    };
    let read = |store: &H::Store| {
        (
            store.certificates_since(0, 10).unwrap(),
            store.accounts_page(None, 10).unwrap(),
            store.sent(&n.bob.account(), 0, 10).unwrap(),
            store.touching(&n.alice.account(), 0, 10).unwrap(),
            store.cursor(&peer).unwrap(),
        )
    };

    let apart = h.fresh();
    let mut v = n.load(&apart);
    let (one, two) = batches(&mut v);
    apart.commit_snapshot(&one, &[(peer, 1)]).unwrap();
    apart.commit_snapshot(&two, &[(peer, 2)]).unwrap();
    let expected = read(&apart);
    let apart = h.restart(apart);
    assert!(
        n.load(&apart).has_voted_for(&held.order, &held_digest),
        "the open vote is in the journal"
    );
    assert_eq!(
        read(&apart),
        expected,
        "a restart (and its replay) changes nothing"
    );
    drop(apart);

    let grouped = h.fresh();
    let mut v = n.load(&grouped);
    let (mut one, two) = batches(&mut v);
    one.absorb(two);
    grouped
        .commit_snapshot(&one, &[(peer, 1), (peer, 2)])
        .unwrap();
    assert_eq!(read(&grouped), expected, "before a restart");
    let grouped = h.restart(grouped);
    assert!(
        n.load(&grouped).has_voted_for(&held.order, &held_digest),
        "the open vote is in the journal"
    );
    assert_eq!(read(&grouped), expected, "after a restart");
}

/// The existing redb test, now for every store: a batch with a certificate, an open vote
/// and a cursor survives a restart.
pub(super) fn a_committed_batch_survives_reopening<H: Harness>(mut h: H) {
    let n = Network::new("store", 1);
    let (alice, bob) = (&n.alice, &n.bob);
    let digest_locked;
    let store = {
        let store = h.fresh();
        let mut v = n.load(&store);
        let first = n.pay(alice, bob, 300, 0);
        let votes: Vec<Vote> = n.keys[..3]
            .iter()
            .map(|k| Vote::sign(k, &n.net, &first.order.digest(&n.net)))
            .collect();
        v.handle_order(&first, true).unwrap();
        v.handle_certificate(&Certificate::new(first, &n.net, votes), true)
            .unwrap();
        let second = n.pay(alice, bob, 5, 1);
        v.handle_order(&second, true).unwrap();
        digest_locked = second.order.digest(&n.net);
        let changes = v.take_changes();
        store.commit(&v, &changes, &[(bob.account(), 7)]).unwrap();
        store
    };
    let store = h.restart(store);
    let mut v = n.load(&store);
    assert_eq!(v.account(&alice.account()).balance, 700);
    assert_eq!(v.account(&bob.account()).balance, 300);
    assert_eq!(v.log_len(), 1);
    assert_eq!(v.supply(), Amount::from_microcash(1000));
    assert_eq!(store.cursor(&bob.account()).unwrap(), 7);
    // The vote lock for sequence 1 survived: a conflicting order gets no vote.
    assert_eq!(
        v.handle_order(&n.pay(alice, bob, 6, 1), true),
        Err(LedgerError::Conflict {
            voted: digest_locked
        })
    );
    let (log, next) = store.certificates_since(0, 10).unwrap();
    assert_eq!((log.len(), next), (1, None));
    assert_eq!(store.sent(&alice.account(), 0, 10).unwrap().0.len(), 1);
    assert_eq!(store.touching(&bob.account(), 0, 10).unwrap().0.len(), 1);
    let page = store.accounts_page(None, 1).unwrap();
    assert_eq!(page.len(), 1);
    let rest = store.accounts_page(Some(&page[0].0), 10).unwrap();
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0].0, page[0].0);
}

/// A batch the validator decided but that was never committed is gone after a restart:
/// its certificate and its vote lock.
pub(super) fn a_restart_loses_exactly_what_was_not_committed<H: Harness>(mut h: H) {
    let n = Network::new("uncommitted", 2);
    let store = h.fresh();
    let mut v = n.load(&store);
    let paid = n.pay(&n.alice, &n.bob, 100, 0);
    v.handle_order(&paid, true).unwrap();
    v.handle_certificate(&n.certificate(paid), true).unwrap();
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    let committed = (accounts(&v), v.log_len(), view(&store, &n.everyone()));

    // Decided, never committed: a vote for alice's next order and bob's payment.
    let open = n.pay(&n.alice, &n.carol, 7, 1);
    v.handle_order(&open, true).unwrap();
    v.handle_certificate(&n.certificate(n.pay(&n.bob, &n.carol, 9, 0)), true)
        .unwrap();
    drop(v.take_snapshot());

    let store = h.restart(store);
    let mut v = n.load(&store);
    assert_eq!(
        (accounts(&v), v.log_len(), view(&store, &n.everyone())),
        committed
    );
    // No lock survived for the uncommitted vote: another order in its slot is voted for.
    assert!(!v.has_voted_for(&open.order, &open.order.digest(&n.net)));
    assert!(v.handle_order(&n.pay(&n.alice, &n.bob, 8, 1), true).is_ok());
}

/// A commit that fails leaves nothing of its batch, neither to readers now nor after a
/// restart, and the batch can be decided and committed again afterwards.
pub(super) fn a_failed_commit_leaves_nothing<H: Harness>(mut h: H) {
    let n = Network::new("failed commit", 2);
    let store = h.fresh();
    let mut v = n.load(&store);
    let paid = n.pay(&n.alice, &n.bob, 100, 0);
    v.handle_certificate(&n.certificate(paid), true).unwrap();
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    let before = (view(&store, &n.everyone()), accounts(&v));

    let peer = n.keys[1].account();
    let open = n.pay(&n.alice, &n.carol, 7, 1);
    v.handle_order(&open, true).unwrap();
    let batch = [
        n.certificate(n.pay(&n.bob, &n.carol, 9, 0)),
        n.certificate(n.intro(&n.carol, 1)),
    ];
    for certificate in &batch {
        v.handle_certificate(certificate, true).unwrap();
    }
    H::fail_next_commit(&store);
    assert!(
        store
            .commit_snapshot(&v.take_snapshot(), &[(peer, 3)])
            .is_err()
    );
    assert_eq!(view(&store, &n.everyone()), before.0);
    assert_eq!(store.cursor(&peer).unwrap(), 0);

    let store = h.restart(store);
    let mut v = n.load(&store);
    assert_eq!((view(&store, &n.everyone()), accounts(&v)), before);
    assert!(!v.account(&n.carol.account()).introduced);
    assert!(!v.has_voted_for(&open.order, &open.order.digest(&n.net)));
    // The same batch again, on the recovered state, goes through.
    for certificate in &batch {
        assert_eq!(
            v.handle_certificate(certificate, true),
            Ok(Applied { new: true })
        );
    }
    store
        .commit_snapshot(&v.take_snapshot(), &[(peer, 3)])
        .unwrap();
    assert_eq!(store.certificates_since(0, 10).unwrap().0.len(), 3);
    assert_eq!(store.cursor(&peer).unwrap(), 3);
}

/// Re-applying a certificate, committing an empty batch, or a batch of only a cursor
/// changes nothing else; nor does loading again.
pub(super) fn reapplying_changes_nothing<H: Harness>(mut h: H) {
    let n = Network::new("idempotent", 2);
    let store = h.fresh();
    let mut v = n.load(&store);
    let certificate = n.certificate(n.pay(&n.alice, &n.bob, 100, 0));
    v.handle_certificate(&certificate, true).unwrap();
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    let seen = view(&store, &n.everyone());

    assert_eq!(
        v.handle_certificate(&certificate, true),
        Ok(Applied { new: false })
    );
    let again = v.take_snapshot();
    assert!(again.is_empty());
    store.commit_snapshot(&again, &[]).unwrap();
    assert_eq!(view(&store, &n.everyone()), seen);
    let peer = n.keys[3].account();
    store
        .commit_snapshot(&v.take_snapshot(), &[(peer, 1)])
        .unwrap();
    assert_eq!(view(&store, &n.everyone()), seen);
    assert_eq!(store.cursor(&peer).unwrap(), 1);

    let store = h.restart(store);
    let mut v = n.load(&store);
    let store = h.restart(store);
    let mut w = n.load(&store);
    assert_eq!(accounts(&v), accounts(&w));
    assert_eq!(view(&store, &n.everyone()), seen);
    assert_eq!(store.cursor(&peer).unwrap(), 1);
    // A peer re-sends the certificate after the restart: not new, and the log stays put.
    for validator in [&mut v, &mut w] {
        assert_eq!(
            validator.handle_certificate(&certificate, true),
            Ok(Applied { new: false })
        );
        assert!(validator.take_snapshot().is_empty());
    }
    assert_eq!(store.certificates_since(0, 10).unwrap().0.len(), 1);
}

/// The existing redb test, now for every store.
pub(super) fn a_lock_whose_certificate_was_applied_is_not_restored<H: Harness>(mut h: H) {
    let n = Network::new("locks", 1);
    let order = |seq, amount| n.pay(&n.alice, &n.bob, amount, seq);
    let store = {
        let store = h.fresh();
        let mut v = n.load(&store);
        // The vote and the certificate in separate batches, as under load.
        let first = order(0, 300);
        v.handle_order(&first, true).unwrap();
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        let votes: Vec<Vote> = n.keys[..3]
            .iter()
            .map(|k| Vote::sign(k, &n.net, &first.order.digest(&n.net)))
            .collect();
        v.handle_certificate(&Certificate::new(first, &n.net, votes), true)
            .unwrap();
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        store
    };
    let store = h.restart(store);
    let mut v = n.load(&store);
    assert_eq!(v.account(&n.alice.account()).next_sequence, 1);
    // The stale row for sequence 0 neither blocks sequence 1 nor counts as a vote.
    assert!(!v.has_voted_for(&order(0, 300).order, &order(0, 300).order.digest(&n.net)));
    assert!(v.handle_order(&order(1, 5), true).is_ok());
}

/// A held vote's signed order survives a restart, whether its lock was still in the journal
/// or already checkpointed: a restarted validator still hands it out (`REQ_HELD_ORDER`), so
/// a copy of the owner's wallet that did not sign it can finish it rather than sign a
/// second order and split the slot (DESIGN §3).
pub(super) fn a_held_order_survives_a_restart<H: Harness>(mut h: H) {
    let n = Network::new("held", 1);
    let held = n.pay(&n.alice, &n.bob, 300, 0);
    let store = {
        let store = h.fresh();
        let mut v = n.load(&store);
        v.handle_order(&held, true).unwrap();
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        store
    };
    let store = h.restart(store);
    let v = n.load(&store);
    assert_eq!(v.held_order(&n.alice.account()), Some(&held));
    // And once more after everything deferred was written out.
    store.checkpoint().unwrap();
    let store = h.restart(store);
    let v = n.load(&store);
    assert_eq!(v.held_order(&n.alice.account()), Some(&held));
}

/// The existing redb test, now for every store: batches, checkpoints, more batches, then a
/// crash (no final checkpoint): the restarted store re-applies what it deferred and shows
/// exactly what the live one showed.
pub(super) fn a_crash_between_checkpoints_loses_nothing<H: Harness>(mut h: H) {
    let n = Network::new("crash", 2);
    let (alice, bob, carol) = (&n.alice, &n.bob, &n.carol);
    let everyone = n.everyone();
    let store = h.fresh();
    let mut v = n.load(&store);
    // Twelve payments in batches of two (an order and, next batch, its certificate), so
    // checkpoints fall in between and the log's tail is not empty at the end.
    let mut sequences = [0u64; 2];
    for round in 0..12u64 {
        let (from, to, who) = match round % 3 {
            0 => (alice, bob, 0),
            1 => (bob, carol, 1),
            _ => (alice, carol, 0),
        };
        let order = n.pay(from, to, 10 + round, sequences[who]);
        sequences[who] += 1;
        v.handle_order(&order, true).unwrap();
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        store.checkpoint_if_due().unwrap();
        v.handle_certificate(&n.certificate(order), true).unwrap();
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        store.checkpoint_if_due().unwrap();
    }
    // Carol is introduced after the last checkpoint, and alice's next order gets a vote
    // that no certificate followed yet.
    let intro = n.intro(carol, 1);
    v.handle_order(&intro, true).unwrap();
    v.handle_certificate(&n.certificate(intro), true).unwrap();
    let open = n.pay(alice, bob, 1, sequences[0]);
    v.handle_order(&open, true).unwrap();
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    if let Some(tail) = H::replay_tail(&store) {
        assert!(store.checkpoints().0 >= 2);
        assert!(tail > 0, "the log's tail is not empty");
    }
    let live_view = view(&store, &everyone);
    let live_accounts = accounts(&v);

    let store = h.restart(store);
    let mut v = n.load(&store);
    assert_eq!(accounts(&v), live_accounts);
    assert_eq!(v.log_len(), 13);
    assert_eq!(v.supply(), Amount::from_microcash(2010));
    assert!(v.account(&carol.account()).introduced);
    assert_eq!(view(&store, &everyone), live_view);
    assert_eq!(
        live_view.iter().filter(|l| l.starts_with("sent")).count(),
        12
    );
    // The open vote survived; a conflicting order gets none, the same one is re-voted.
    assert!(matches!(
        v.handle_order(&n.pay(alice, bob, 2, sequences[0]), true),
        Err(LedgerError::Conflict { .. })
    ));
    assert!(v.handle_order(&open, true).is_ok());
    // A checkpoint now, then a restart: the same again, from the tables alone.
    store.checkpoint().unwrap();
    let store = h.restart(store);
    let again = n.load(&store);
    if let Some(tail) = H::replay_tail(&store) {
        assert_eq!(tail, 0);
    }
    assert_eq!(view(&store, &everyone), live_view);
    assert!(again.has_voted_for(&open.order, &open.order.digest(&n.net)));
}

/// A checkpoint, forced or due, changes nothing a reader sees; one with nothing to write
/// writes nothing.
pub(super) fn a_checkpoint_changes_nothing_a_reader_sees<H: Harness>(mut h: H) {
    let n = Network::new("checkpoint", 2);
    let store = h.fresh();
    let mut v = n.load(&store);
    for sequence in 0..3 {
        let order = n.pay(&n.alice, &n.bob, 5, sequence);
        v.handle_order(&order, true).unwrap();
        v.handle_certificate(&n.certificate(order), true).unwrap();
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    }
    let seen = view(&store, &n.everyone());
    store.checkpoint().unwrap();
    assert_eq!(view(&store, &n.everyone()), seen);
    let written = store.checkpoints().0;
    store.checkpoint().unwrap();
    store.checkpoint_if_due().unwrap();
    assert_eq!(store.checkpoints().0, written, "nothing to write");
    // After the checkpoint, more batches; the readers merge both again.
    let order = n.pay(&n.bob, &n.carol, 5, 0);
    v.handle_order(&order, true).unwrap();
    v.handle_certificate(&n.certificate(order), true).unwrap();
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    let seen = view(&store, &n.everyone());
    assert_eq!(seen.iter().filter(|l| l.starts_with("log")).count(), 4);
    let store = h.restart(store);
    let w = n.load(&store);
    assert_eq!(accounts(&w), accounts(&v));
    assert_eq!(view(&store, &n.everyone()), seen);
}

/// Every query pages the same way: `limit` rows, then the cursor of the next page.
pub(super) fn queries_page_alike<H: Harness>(mut h: H) {
    let n = Network::new("pages", 2);
    let store = h.fresh();
    let mut v = n.load(&store);
    let mut certificates = Vec::new();
    for sequence in 0..5 {
        let order: SignedOrder = n.pay(&n.alice, &n.bob, 1 + sequence, sequence);
        let certificate = n.certificate(order);
        v.handle_certificate(&certificate, true).unwrap();
        certificates.push(certificate);
        // A checkpoint may fall in the middle, so pages straddle both halves of a store.
        let changes = v.take_changes();
        store.commit(&v, &changes, &[]).unwrap();
    }
    let logged = |range: std::ops::Range<usize>| -> Vec<(u64, Certificate)> {
        range.map(|i| (i as u64, certificates[i].clone())).collect()
    };
    assert_eq!(
        store.certificates_since(1, 2).unwrap(),
        (logged(1..3), Some(3))
    );
    assert_eq!(
        store.certificates_since(3, 2).unwrap(),
        (logged(3..5), None)
    );
    assert_eq!(store.certificates_since(9, 2).unwrap(), (Vec::new(), None));
    let alice = n.alice.account();
    assert_eq!(store.sent(&alice, 1, 3).unwrap(), (logged(1..4), Some(4)));
    assert_eq!(store.sent(&alice, 4, 3).unwrap(), (logged(4..5), None));
    assert_eq!(store.sent(&alice, 5, 3).unwrap(), (Vec::new(), None));
    let bob = n.bob.account();
    assert_eq!(store.touching(&bob, 0, 4).unwrap(), (logged(0..4), Some(4)));
    assert_eq!(store.touching(&bob, 2, 9).unwrap(), (logged(2..5), None));
    assert_eq!(
        store.touching(&n.carol.account(), 0, 9).unwrap(),
        (Vec::new(), None)
    );
    let all = accounts(&v);
    assert_eq!(all.len(), 2);
    assert_eq!(store.accounts_page(None, 1).unwrap(), all[..1].to_vec());
    assert_eq!(
        store.accounts_page(Some(&all[0].0), 5).unwrap(),
        all[1..].to_vec()
    );
    assert!(store.accounts_page(Some(&all[1].0), 5).unwrap().is_empty());
}

/// A split is found among its sender's sent orders and among the orders touching every
/// recipient, before and after a restart.
pub(super) fn a_split_is_indexed_for_its_sender_and_every_recipient<H: Harness>(mut h: H) {
    let n = Network::new("split index", 2);
    let store = h.fresh();
    let mut v = n.load(&store);
    let split = n.certificate(n.split(&n.alice, &[(&n.bob, 100), (&n.carol, 200)], 0));
    v.handle_certificate(&split, true).unwrap();
    store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
    let store = h.restart(store);
    let v = n.load(&store);
    let logged = vec![(0, split.clone())];
    assert_eq!(
        store.sent(&n.alice.account(), 0, 10).unwrap(),
        (logged.clone(), None)
    );
    assert!(store.sent(&n.bob.account(), 0, 10).unwrap().0.is_empty());
    for account in n.everyone() {
        assert_eq!(
            store.touching(&account, 0, 10).unwrap(),
            (logged.clone(), None)
        );
    }
    assert_eq!(v.account(&n.alice.account()).balance, 700);
    assert_eq!(v.account(&n.bob.account()).balance, 1100);
    assert_eq!(v.account(&n.carol.account()).balance, 200);
    assert_eq!(v.supply(), Amount::from_microcash(2000));
}
