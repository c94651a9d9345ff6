//! Crashes at every write of a batch that settles escrows, and of the checkpoint after it:
//! the restarted store holds the escrows, balances and votes of the state before the batch
//! or after it, never a mix (an escrow settled without its payee paid, a payment without
//! its escrow settled, a slot cleared with its escrow still open), and always conserves the
//! supply.

use tally_core::{AccountId, Amount, EscrowId, EscrowSecret, SecretKey, SignedOrder};

use super::escrow_cases::open;
use super::{CrashHarness, Unsynced};
use crate::state::{AccountState, EscrowState, LedgerError, Settlement, Snapshot, Validator};
use crate::store::ledger_store::LedgerStore;
use crate::store::test_fixture::{
    DEADLINE_MS, NOW_MS, Network, SKEW_MS, accounts, assert_conserved, escrows, secret, view,
};

/// Everything a restarted validator and its store's readers see.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    accounts: Vec<(AccountId, AccountState)>,
    escrows: Vec<(EscrowId, EscrowState)>,
    escrowed: Amount,
    log_len: u64,
    supply: Amount,
    /// The vote held in the claimed escrow's slot.
    held: Option<SignedOrder>,
    /// The secret known for the claimed escrow's hash lock.
    secret: Option<EscrowSecret>,
    cursor: u64,
    view: Vec<String>,
}

/// Batch A opens two escrows and votes for the first one's claim, and is acknowledged
/// before the crash; batch B, being committed (or checkpointed) when it comes, claims the
/// first, refunds the second and opens a third.
struct Story {
    n: Network,
    peer: AccountId,
    /// Alice's 300 for bob: its claim is voted in A and certified in B.
    claimed: EscrowId,
    claim: SignedOrder,
    /// Bob's 200 for carol: refunded in B.
    refunded: EscrowId,
}

impl Story {
    fn new() -> Self {
        let n = Network::with_escrows("escrow crash", 2);
        let claimed = n.escrow_id(&n.escrow_lock(&n.alice, &n.bob, 300, 0, &secret(1)));
        let refunded = n.escrow_id(&n.escrow_lock(&n.bob, &n.carol, 200, 0, &secret(2)));
        Story {
            peer: n.keys[1].account(),
            claim: n.claim(claimed, secret(1)),
            claimed,
            refunded,
            n,
        }
    }

    /// A fresh store holding batch A (committed as the engine does, checkpoint included),
    /// and the validator that decided it.
    fn after_a<H: CrashHarness>(&self, h: &mut H) -> (H::Store, Validator) {
        let n = &self.n;
        let store = h.fresh();
        let mut v = n.load(&store);
        let (_, claimed) = open(n, &mut v, &n.alice, &n.bob, 300, 0, 1);
        let (_, refunded) = open(n, &mut v, &n.bob, &n.carol, 200, 0, 2);
        assert_eq!((claimed, refunded), (self.claimed, self.refunded));
        v.set_clock(NOW_MS + 1);
        v.decide_order(&self.claim, true).unwrap();
        store
            .commit_snapshot(&v.take_snapshot(), &[(self.peer, 1)])
            .unwrap();
        store.checkpoint_if_due().unwrap();
        (store, v)
    }

    /// Decides batch B: the claim's and the refund's certificates, a third escrow opened,
    /// a cursor.
    fn decide_b(&self, v: &mut Validator) -> (Snapshot, Vec<(AccountId, u64)>) {
        let n = &self.n;
        v.handle_certificate(&n.certificate(self.claim.clone()), true)
            .unwrap();
        v.handle_certificate(&n.certificate(n.refund(self.refunded)), true)
            .unwrap();
        open(n, v, &n.alice, &n.carol, 50, 1, 3);
        (v.take_snapshot(), vec![(self.peer, 2)])
    }

    fn seen(&self, store: &impl LedgerStore, v: &Validator) -> Seen {
        Seen {
            accounts: accounts(v),
            escrows: escrows(v),
            escrowed: v.escrowed(),
            log_len: v.log_len(),
            supply: v.supply(),
            held: v.held_settlement(&self.claimed).cloned(),
            secret: v.secret_for(&secret(1).hash_lock()),
            cursor: store.cursor(&self.peer).unwrap(),
            view: view(store, &self.n.everyone()),
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
        assert_eq!(before.escrowed, Amount::from_microcash(500));
        assert_eq!(after.escrowed, Amount::from_microcash(50));
        assert_eq!(before.held.as_ref(), Some(&self.claim));
        assert_eq!(after.held, None);
        assert_eq!(
            before.secret,
            Some(secret(1)),
            "the vote published the secret"
        );
        (before, after)
    }

    /// The claim vote acknowledged in A still binds `v`: its escrow is claimed, or the
    /// vote is held and a refund is refused as conflicting with it.
    fn assert_vote_binds(&self, v: &mut Validator, case: &str) {
        let settlement = v.escrow(&self.claimed).map(|e| e.settlement);
        if settlement == Some(Settlement::Claimed(secret(1))) {
            return;
        }
        assert_eq!(settlement, Some(Settlement::Open), "{case}");
        assert_eq!(
            v.held_settlement(&self.claimed),
            Some(&self.claim),
            "{case}"
        );
        v.set_clock(DEADLINE_MS + SKEW_MS);
        assert!(
            matches!(
                v.decide_order(&self.n.refund(self.claimed), true),
                Err(LedgerError::Conflict { .. })
            ),
            "{case}: a refund got a vote beside the claim's"
        );
    }

    /// The restarted store takes a batch and a checkpoint, and a restart after them shows
    /// what the validator holds.
    fn assert_still_works<H: CrashHarness>(&self, h: &mut H, store: H::Store, mut v: Validator) {
        let n = &self.n;
        let dave = SecretKey::from_bytes([0xd0; 32]);
        v.handle_certificate(&n.certificate(n.intro(&dave, 1)), true)
            .unwrap();
        store.commit_snapshot(&v.take_snapshot(), &[]).unwrap();
        store.checkpoint().unwrap();
        let store = h.restart(store);
        let again = n.load(&store);
        assert_eq!(accounts(&again), accounts(&v));
        assert_eq!(escrows(&again), escrows(&v));
        assert_conserved(&again, "after recovering");
    }

    /// Restarts the crashed `store` both ways and checks what it holds: `after` when the
    /// commit was `acknowledged`, otherwise `before` or `after`.
    fn check_restarts<H: CrashHarness>(
        &self,
        h: &mut H,
        store: &H::Store,
        (before, after): (&Seen, &Seen),
        acknowledged: bool,
        at: &str,
    ) {
        for unsynced in [Unsynced::Lost, Unsynced::Kept] {
            let case = format!("{at}, unsynced writes {unsynced:?}");
            let restarted = h.restart_after_crash(store, unsynced);
            let mut w = self.n.load(&restarted);
            let seen = self.seen(&restarted, &w);
            if acknowledged {
                assert_eq!(&seen, after, "{case}: an acknowledged batch was lost");
            } else {
                assert!(
                    &seen == before || &seen == after,
                    "{case}: a part of a batch survived: {seen:#?}"
                );
            }
            assert_conserved(&w, &case);
            self.assert_vote_binds(&mut w, &case);
            self.assert_still_works(h, restarted, w);
        }
    }
}

/// A crash at any write of the commit that settles escrows (and of the checkpoint the
/// engine runs right after it, when one is due) leaves the batch whole or absent; once
/// the commit returned, present.
pub(super) fn a_crash_at_any_write_of_a_settling_commit_keeps_the_batch_whole<H: CrashHarness>(
    mut h: H,
) {
    let story = Story::new();
    let (before, after) = story.expected(&mut h);
    let mut k = 0;
    loop {
        let (store, mut v) = story.after_a(&mut h);
        let (snapshot, cursors) = story.decide_b(&mut v);
        h.crash_at_write(&store, k);
        let acknowledged = store.commit_snapshot(&snapshot, &cursors).is_ok();
        let checkpointed = acknowledged && store.checkpoint_if_due().is_ok();
        if !h.crashed(&store) {
            assert!(checkpointed, "no crash, yet a failure");
            break;
        }
        let at = format!("crash at write {k} of the commit");
        story.check_restarts(&mut h, &store, (&before, &after), acknowledged, &at);
        k += 1;
    }
    assert!(k > 3, "a commit writes more than three times ({k})");
}

/// A crash at any write of the checkpoint after a settling batch loses nothing.
pub(super) fn a_crash_at_any_write_of_a_settling_checkpoint_loses_nothing<H: CrashHarness>(
    mut h: H,
) {
    let story = Story::new();
    let (before, after) = story.expected(&mut h);
    let mut k = 0;
    loop {
        let (store, mut v) = story.after_a(&mut h);
        let (snapshot, cursors) = story.decide_b(&mut v);
        store.commit_snapshot(&snapshot, &cursors).unwrap();
        h.crash_at_write(&store, k);
        let checkpointed = store.checkpoint();
        if !h.crashed(&store) {
            checkpointed.unwrap();
            break;
        }
        assert!(checkpointed.is_err());
        let at = format!("crash at write {k} of the checkpoint");
        story.check_restarts(&mut h, &store, (&before, &after), true, &at);
        k += 1;
    }
}
