//! Crashes at every write: a store killed at the `k`-th write of a commit or of a
//! checkpoint, for every `k`, with the unsynced writes lost and kept, comes back holding
//! either the state before the batch or the state after it (never a part of it), the
//! state after it whenever the commit had returned (the batch was acknowledged), and every
//! vote acknowledged before still binding.

use tally_core::{AccountId, Amount, OrderDigest, SecretKey, SignedOrder};

use super::{CrashHarness, Unsynced};
use crate::state::{AccountState, LedgerError, Snapshot, Validator};
use crate::store::ledger_store::LedgerStore;
use crate::store::test_fixture::{Network, accounts, view};

/// Everything a restarted validator and its store's readers see.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    accounts: Vec<(AccountId, AccountState)>,
    log_len: u64,
    supply: Amount,
    /// The vote held in each account's next slot.
    held: Vec<Option<OrderDigest>>,
    /// Whether the vote for carol's introduction is held.
    intro_voted: bool,
    cursor: u64,
    view: Vec<String>,
}

/// The orders of the story: batch A is acknowledged before the crash, batch B is the one
/// being committed (or checkpointed) when it comes.
struct Story {
    n: Network,
    peer: AccountId,
    /// Voted in A, certified in B.
    alice_open: SignedOrder,
    /// Voted in A, certified in B: its lock is cleared by B.
    carol_intro: SignedOrder,
    /// Voted in B, no certificate yet.
    bob_open: SignedOrder,
}

impl Story {
    fn new() -> Self {
        let n = Network::new("crash at every write", 2);
        Story {
            peer: n.keys[1].account(),
            alice_open: n.pay(&n.alice, &n.carol, 7, 1),
            carol_intro: n.intro(&n.carol, 1),
            bob_open: n.pay(&n.bob, &n.carol, 9, 0),
            n,
        }
    }

    /// A fresh store holding batch A (committed as the engine does, checkpoint included),
    /// and the validator that decided it.
    fn after_a<H: CrashHarness>(&self, h: &mut H) -> (H::Store, Validator) {
        let n = &self.n;
        let store = h.fresh();
        let mut v = n.load(&store);
        v.handle_certificate(&n.certificate(n.pay(&n.alice, &n.bob, 100, 0)), true)
            .unwrap();
        v.handle_order(&self.alice_open, true).unwrap();
        v.handle_order(&self.carol_intro, true).unwrap();
        store
            .commit_snapshot(&v.take_snapshot(), &[(self.peer, 1)])
            .unwrap();
        store.checkpoint_if_due().unwrap();
        (store, v)
    }

    /// Decides batch B: two certificates (one closing an intro lock), a new vote, a cursor.
    fn decide_b(&self, v: &mut Validator) -> (Snapshot, Vec<(AccountId, u64)>) {
        let n = &self.n;
        v.handle_certificate(&n.certificate(self.alice_open.clone()), true)
            .unwrap();
        v.handle_certificate(&n.certificate(self.carol_intro.clone()), true)
            .unwrap();
        v.handle_order(&self.bob_open, true).unwrap();
        (v.take_snapshot(), vec![(self.peer, 2)])
    }

    fn seen(&self, store: &impl LedgerStore, v: &Validator) -> Seen {
        let n = &self.n;
        Seen {
            accounts: accounts(v),
            log_len: v.log_len(),
            supply: v.supply(),
            held: n.everyone().iter().map(|a| v.held_vote(a)).collect(),
            intro_voted: v.has_voted_for(
                &self.carol_intro.order,
                &self.carol_intro.order.digest(&n.net),
            ),
            cursor: store.cursor(&self.peer).unwrap(),
            view: view(store, &n.everyone()),
        }
    }

    /// What a restart shows before batch B and after it, from runs without a crash.
    fn expected<H: CrashHarness>(&self, h: &mut H) -> (Seen, Seen) {
        let (store, _) = self.after_a(h);
        let store = h.restart(store);
        let before = self.seen(&store, &self.n.load(&store));
        let (store, mut v) = self.after_a(h);
        let (snapshot, cursors) = self.decide_b(&mut v);
        store.commit_snapshot(&snapshot, &cursors).unwrap();
        store.checkpoint_if_due().unwrap();
        let store = h.restart(store);
        let after = self.seen(&store, &self.n.load(&store));
        assert_ne!(before, after);
        (before, after)
    }

    /// Every vote acknowledged so far still binds `v`: its order was applied or its lock
    /// refuses a conflicting order; `b_acknowledged` says whether B's vote counts.
    fn assert_votes_bind(&self, v: &mut Validator, b_acknowledged: bool, case: &str) {
        let n = &self.n;
        let intro = &self.carol_intro;
        assert!(
            v.account(&n.carol.account()).introduced
                || v.has_voted_for(&intro.order, &intro.order.digest(&n.net)),
            "{case}: the intro vote was forgotten"
        );
        let mut open = vec![(
            &self.alice_open,
            n.pay(&n.alice, &n.bob, 8, 1),
            n.alice.account(),
        )];
        if b_acknowledged {
            open.push((
                &self.bob_open,
                n.pay(&n.bob, &n.alice, 10, 0),
                n.bob.account(),
            ));
        }
        for (voted, conflicting, sender) in open {
            if v.is_applied(&voted.order) {
                continue;
            }
            assert!(
                v.has_voted_for(&voted.order, &voted.order.digest(&n.net)),
                "{case}: a vote was forgotten"
            );
            assert!(
                matches!(
                    v.decide_order(&conflicting, true),
                    Err(LedgerError::Conflict { .. })
                ),
                "{case}: an order conflicting with a vote of {sender} was not refused"
            );
        }
    }

    /// The restarted store takes a batch and a checkpoint, and a restart after them shows
    /// what the validator holds: recovery left a store that works.
    fn assert_still_works<H: CrashHarness>(&self, h: &mut H, store: H::Store, mut v: Validator) {
        let n = &self.n;
        let dave = SecretKey::from_bytes([0xd0; 32]);
        let intro = n.intro(&dave, 1);
        v.handle_order(&intro, true).unwrap();
        v.handle_certificate(&n.certificate(intro), true).unwrap();
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        store.checkpoint().unwrap();
        let store = h.restart(store);
        let again = n.load(&store);
        assert_eq!(accounts(&again), accounts(&v));
        assert_eq!((again.log_len(), again.supply()), (v.log_len(), v.supply()));
    }
}

/// A crash at any write of a batch's commit (and of the checkpoint the engine runs right
/// after it, when one is due), with the unsynced writes lost or kept, leaves the batch
/// whole or absent; once the commit returned, present; and every vote given before, still
/// binding.
pub(super) fn a_crash_at_any_write_of_a_commit_keeps_the_batch_whole<H: CrashHarness>(mut h: H) {
    let story = Story::new();
    let (before, after) = story.expected(&mut h);
    let mut k = 0;
    loop {
        let (store, mut v) = story.after_a(&mut h);
        let (snapshot, cursors) = story.decide_b(&mut v);
        h.crash_at_write(&store, k);
        // As the engine: the batch is acknowledged once its commit returned.
        let acknowledged = store.commit_snapshot(&snapshot, &cursors).is_ok();
        let checkpointed = acknowledged && store.checkpoint_if_due().is_ok();
        if !h.crashed(&store) {
            assert!(checkpointed, "no crash, yet a failure");
            break;
        }
        for unsynced in [Unsynced::Lost, Unsynced::Kept] {
            let case = format!("crash at write {k} of the commit, unsynced writes {unsynced:?}");
            let restarted = h.restart_after_crash(&store, unsynced);
            let mut w = story.n.load(&restarted);
            let seen = story.seen(&restarted, &w);
            if acknowledged {
                assert_eq!(seen, after, "{case}: an acknowledged batch was lost");
            } else {
                assert!(
                    seen == before || seen == after,
                    "{case}: a part of a batch survived: {seen:#?}"
                );
            }
            story.assert_votes_bind(&mut w, acknowledged, &case);
            story.assert_still_works(&mut h, restarted, w);
        }
        k += 1;
    }
    assert!(k > 3, "a commit writes more than three times ({k})");
    eprintln!("crashed at each of the {k} writes of a commit");
}

/// A crash at any write of a checkpoint, with the unsynced writes lost or kept, loses
/// nothing: the restarted store shows exactly the last committed batch, and every vote it
/// acknowledged binds. (The memory store defers nothing: its checkpoint writes nothing.)
pub(super) fn a_crash_at_any_write_of_a_checkpoint_loses_nothing<H: CrashHarness>(mut h: H) {
    let story = Story::new();
    let (_, after) = story.expected(&mut h);
    let mut k = 0;
    loop {
        let (store, mut v) = story.after_a(&mut h);
        let (snapshot, cursors) = story.decide_b(&mut v);
        store.commit_snapshot(&snapshot, &cursors).unwrap();
        let defers = H::replay_tail(&store).is_some_and(|tail| tail > 0);
        h.crash_at_write(&store, k);
        let checkpointed = store.checkpoint();
        if !h.crashed(&store) {
            checkpointed.unwrap();
            assert!(
                k > 0 || !defers,
                "a checkpoint with work to do wrote nothing"
            );
            eprintln!("crashed at each of the {k} writes of a checkpoint");
            break;
        }
        assert!(checkpointed.is_err());
        for unsynced in [Unsynced::Lost, Unsynced::Kept] {
            let case =
                format!("crash at write {k} of the checkpoint, unsynced writes {unsynced:?}");
            let restarted = h.restart_after_crash(&store, unsynced);
            let mut w = story.n.load(&restarted);
            assert_eq!(
                story.seen(&restarted, &w),
                after,
                "{case}: the checkpoint lost something"
            );
            story.assert_votes_bind(&mut w, true, &case);
            story.assert_still_works(&mut h, restarted, w);
        }
        k += 1;
    }
}
