#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use proptest::prelude::*;
use tally_core::pow::IntroPowHasher;
use tally_core::{Allocation, IntroKey, Mode, Payment, SplitError, Transfer, ValidatorInfo};

const BITS: u32 = 4;

fn network(validators: usize, genesis: &[(AccountId, u64)]) -> (NetworkContract, Vec<SecretKey>) {
    let keys: Vec<SecretKey> = (0..validators)
        .map(|i| SecretKey::from_bytes([i as u8 + 1; 32]))
        .collect();
    let contract = NetworkContract {
        name: "test".into(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: Amount::from_microcash(10_000_000),
        intro_pow_bits: BITS,
        validators: keys
            .iter()
            .map(|k| ValidatorInfo {
                key: k.account(),
                address: "127.0.0.1:1".into(),
            })
            .collect(),
        tracker: None,
        genesis: genesis
            .iter()
            .map(|(a, m)| Allocation {
                account: *a,
                amount: Amount::from_microcash(*m),
            })
            .collect(),
        pow: None,
        max_clock_skew_ms: None,
    };
    (contract, keys)
}

fn validators(contract: &NetworkContract, keys: &[SecretKey]) -> Vec<Validator> {
    keys.iter()
        .map(|k| {
            let mut v = Validator::new(k.clone(), contract).unwrap();
            v.apply_genesis(contract).unwrap();
            v.take_changes();
            v
        })
        .collect()
}

fn user(i: u8) -> SecretKey {
    SecretKey::from_bytes([0x80 + i; 32])
}

fn transfer(
    from: &SecretKey,
    to: AccountId,
    amount: u64,
    sequence: u64,
    net: &NetworkId,
) -> SignedOrder {
    SignedOrder::sign(
        Order::Transfer(Transfer {
            sender: from.account(),
            recipient: to,
            amount: Amount::from_microcash(amount),
            sequence,
        }),
        from,
        net,
    )
}

fn split(
    from: &SecretKey,
    outputs: &[(AccountId, u64)],
    sequence: u64,
    net: &NetworkId,
) -> SignedOrder {
    SignedOrder::sign(
        Order::Split(Split {
            sender: from.account(),
            sequence,
            outputs: outputs
                .iter()
                .map(|(recipient, amount)| Payment {
                    recipient: *recipient,
                    amount: Amount::from_microcash(*amount),
                })
                .collect(),
        }),
        from,
        net,
    )
}

fn certify(validators: &mut [Validator], order: &SignedOrder) -> Certificate {
    let net = *validators[0].network();
    let votes: Vec<Vote> = validators
        .iter_mut()
        .take(3)
        .map(|v| v.handle_order(order, true).unwrap())
        .collect();
    Certificate::new(order.clone(), &net, votes)
}

#[test]
fn intro_pays_the_faucet_exactly_once() {
    let (contract, keys) = network(4, &[]);
    let mut vs = validators(&contract, &keys);
    let net = contract.id();
    let alice = user(1);
    let nonce = IntroPowHasher::new(&alice.account())
        .search(0..100_000, BITS)
        .unwrap();
    let intro = SignedOrder::sign(
        Order::IntroKey(IntroKey {
            account: alice.account(),
            proof_of_work: nonce,
        }),
        &alice,
        &net,
    );
    let cert = certify(&mut vs, &intro);
    cert.verify(vs[0].committee(), &net).unwrap();
    assert_eq!(
        vs[0].handle_certificate(&cert, true),
        Ok(Applied { new: true })
    );
    assert_eq!(
        vs[0].handle_certificate(&cert, true),
        Ok(Applied { new: false })
    );
    // A copy whose votes do not hold is a bad certificate, even of an applied order: it is
    // not "already known".
    assert_eq!(
        vs[0].handle_certificate(&cert, false),
        Err(LedgerError::BadVote)
    );
    assert_eq!(vs[0].account(&alice.account()).balance, 10_000_000);
    assert_eq!(vs[0].supply(), Amount::from_microcash(10_000_000));
    assert_eq!(
        vs[0].handle_order(&intro, true),
        Err(LedgerError::AlreadyIntroduced(alice.account()))
    );
    // The same introduction with another valid nonce is not another order: a validator
    // that voted and has not applied the certificate yet answers the same vote.
    let other = IntroPowHasher::new(&alice.account())
        .search(nonce + 1..200_000, BITS)
        .unwrap();
    let intro2 = intro_order(&alice, other, &net);
    assert_eq!(
        vs[1].handle_order(&intro2, true),
        Ok(vs[1].vote(&intro.order.digest(&net)))
    );
}

fn intro_order(key: &SecretKey, proof_of_work: u64, net: &NetworkId) -> SignedOrder {
    SignedOrder::sign(
        Order::IntroKey(IntroKey {
            account: key.account(),
            proof_of_work,
        }),
        key,
        net,
    )
}

/// Two valid proofs of work for `key` and one invalid one, at [`BITS`].
fn nonces(key: &SecretKey) -> (u64, u64, u64) {
    let mut hasher = IntroPowHasher::new(&key.account());
    let a = hasher.search(0..100_000, BITS).unwrap();
    let b = hasher.search(a + 1..200_000, BITS).unwrap();
    let bad = (0..)
        .find(|n| !check_intro_pow(&key.account(), *n, BITS))
        .unwrap();
    (a, b, bad)
}

/// Protects DESIGN §3 (3), introductions cannot split: the owner's intro sent with nonce A
/// to some validators and with nonce B to the others gets one vote from each of them, for
/// one digest, so a quorum always forms. On the old layout (the nonce signed) the second
/// request met `Conflict` and two validators on each side froze the key for ever.
#[test]
fn intros_with_two_valid_nonces_cannot_split_the_votes() {
    let (contract, keys) = network(4, &[]);
    let mut vs = validators(&contract, &keys);
    let net = contract.id();
    let alice = user(1);
    let (a, b, _) = nonces(&alice);
    let (with_a, with_b) = (intro_order(&alice, a, &net), intro_order(&alice, b, &net));
    assert_eq!(with_a.order.digest(&net), with_b.order.digest(&net));

    // Validator 0 votes for A, then is asked with B: the same vote, no second lock.
    let vote = vs[0].handle_order(&with_a, true).unwrap();
    vs[0].take_changes();
    assert_eq!(vs[0].handle_order(&with_b, true), Ok(vote));
    assert!(vs[0].take_changes().is_empty());
    assert!(vs[0].has_voted_for(&with_b.order, &with_b.order.digest(&net)));

    // Split 2–2 between the nonces: all four votes are for one digest, a certificate.
    let votes: Vec<Vote> = vs
        .iter_mut()
        .enumerate()
        .map(|(i, v)| v.handle_order(if i < 2 { &with_a } else { &with_b }, true))
        .collect::<Result<_, _>>()
        .unwrap();
    let certificate = Certificate::new(with_a, &net, votes);
    assert!(certificate.verify(vs[0].committee(), &net).is_ok());
}

/// Protects that applying an intro certificate does not depend on the nonce it carries:
/// votes given for nonce A, in a certificate carrying the order with nonce B (or even an
/// invalid nonce), apply on every validator alike — those that voted and one that never saw
/// the order — and pay the faucet once. Certificates with one digest must be treated
/// identically everywhere, or validators would disagree about who was introduced. On the
/// old layout the certificate's checksum no longer matched its votes.
#[test]
fn votes_for_one_nonce_certify_the_intro_with_another() {
    let (contract, keys) = network(4, &[]);
    let mut vs = validators(&contract, &keys);
    let net = contract.id();
    let alice = user(1);
    let (a, b, bad) = nonces(&alice);
    let with_a = intro_order(&alice, a, &net);
    let votes: Vec<Vote> = vs[..3]
        .iter_mut()
        .map(|v| v.handle_order(&with_a, true).unwrap())
        .collect();
    let with_b = Certificate::new(intro_order(&alice, b, &net), &net, votes.clone());
    let with_bad = Certificate::new(intro_order(&alice, bad, &net), &net, votes.clone());
    let committee = vs[0].committee().clone();
    assert_eq!(
        with_b.verify(&committee, &net),
        Ok(with_a.order.digest(&net))
    );
    assert_eq!(
        with_bad.verify(&committee, &net),
        Ok(with_a.order.digest(&net))
    );
    for (i, v) in vs.iter_mut().enumerate() {
        // Validators 0 and 2 get the certificate carrying B first, 1 and 3 the one
        // carrying an invalid nonce; each then gets the other and the one carrying A.
        let (first, second) = if i % 2 == 0 {
            (&with_b, &with_bad)
        } else {
            (&with_bad, &with_b)
        };
        assert_eq!(v.handle_certificate(first, true), Ok(Applied { new: true }));
        assert_eq!(
            v.handle_certificate(second, true),
            Ok(Applied { new: false })
        );
        let again = Certificate::new(with_a.clone(), &net, votes.clone());
        assert_eq!(
            v.handle_certificate(&again, true),
            Ok(Applied { new: false })
        );
        assert_eq!(v.account(&alice.account()).balance, 10_000_000);
        assert!(v.account(&alice.account()).introduced);
        assert_eq!(v.supply(), Amount::from_microcash(10_000_000));
        assert_eq!(v.log_len(), 1);
    }
}

/// Protects the admission check: leaving the nonce out of the digest must not let an
/// invalid proof of work through. A validator that has not voted refuses an intro whose
/// nonce is invalid, although its digest is that of a valid one, and the refusal locks
/// nothing: the same validator then votes for the intro with a valid nonce.
#[test]
fn an_invalid_nonce_is_refused_though_its_digest_is_a_valid_ones() {
    let (contract, keys) = network(4, &[]);
    let mut vs = validators(&contract, &keys);
    let net = contract.id();
    let alice = user(1);
    let (a, _, bad) = nonces(&alice);
    let (good, invalid) = (intro_order(&alice, a, &net), intro_order(&alice, bad, &net));
    assert_eq!(good.order.digest(&net), invalid.order.digest(&net));
    assert_eq!(
        vs[0].handle_order(&invalid, true),
        Err(LedgerError::BadProofOfWork { bits: BITS })
    );
    assert!(vs[0].take_changes().is_empty());
    assert!(!vs[0].has_voted_for(&good.order, &good.order.digest(&net)));
    assert_eq!(
        vs[0].handle_order(&good, true),
        Ok(vs[0].vote(&good.order.digest(&net)))
    );
}

#[test]
fn bad_proof_of_work_gets_no_vote() {
    let (contract, keys) = network(4, &[]);
    let mut vs = validators(&contract, &keys);
    let net = contract.id();
    let alice = user(1);
    let bad = (0..)
        .find(|n| !check_intro_pow(&alice.account(), *n, BITS))
        .unwrap();
    let intro = SignedOrder::sign(
        Order::IntroKey(IntroKey {
            account: alice.account(),
            proof_of_work: bad,
        }),
        &alice,
        &net,
    );
    assert_eq!(
        vs[0].handle_order(&intro, true),
        Err(LedgerError::BadProofOfWork { bits: BITS })
    );
    assert!(vs[0].take_changes().is_empty());
}

#[test]
fn refusals_change_nothing() {
    let alice = user(1);
    let bob = user(2);
    let (contract, keys) = network(4, &[(alice.account(), 100)]);
    let mut vs = validators(&contract, &keys);
    let net = contract.id();
    let cases = [
        (transfer(&alice, bob.account(), 101, 0, &net), true),
        (transfer(&alice, bob.account(), 0, 0, &net), true),
        (transfer(&alice, bob.account(), 10, 1, &net), true),
        (transfer(&alice, alice.account(), 10, 0, &net), true),
        (transfer(&alice, bob.account(), 10, 0, &net), false),
    ];
    for (order, signature_ok) in cases {
        assert!(vs[0].handle_order(&order, signature_ok).is_err());
        assert!(vs[0].take_changes().is_empty());
    }
    assert_eq!(
        vs[0].account(&alice.account()),
        AccountState {
            balance: 100,
            next_sequence: 0,
            introduced: false
        }
    );
}

/// What is protected (DESIGN §3, prevention): a validator hands out the signed order its
/// vote in an account's next slot is for, so another copy of the owner's wallet can finish
/// it instead of signing a second one; once the slot's certificate is applied, nothing is
/// held; the lock the store keeps carries the order, so a restarted validator still hands
/// it out.
#[test]
fn a_validator_hands_out_the_order_it_holds_its_vote_for() {
    let alice = user(1);
    let bob = user(2);
    let (contract, keys) = network(4, &[(alice.account(), 100)]);
    let mut vs = validators(&contract, &keys);
    let net = contract.id();
    assert_eq!(vs[0].held_order(&alice.account()), None, "nothing held yet");
    let order = transfer(&alice, bob.account(), 30, 0, &net);
    let certificate = certify(&mut vs[..3], &order);
    assert_eq!(vs[0].held_order(&alice.account()), Some(&order));
    assert_eq!(
        vs[0].held_vote(&alice.account()),
        Some(order.order.digest(&net))
    );

    // The lock the store keeps carries the order, so a restarted validator hands it out.
    let kept = vs[0]
        .take_changes()
        .locks
        .into_iter()
        .find_map(|change| match change {
            LockChange::Set(lock) => Some(lock),
            LockChange::Clear(_) => None,
        })
        .unwrap();
    assert_eq!(kept.order.as_ref(), Some(&order));
    let restart = |lock: VoteLock| {
        let mut restarted = Validator::new(keys[0].clone(), &contract).unwrap();
        restarted.apply_genesis(&contract).unwrap();
        restarted.restore_locks(vec![lock]);
        restarted
    };
    let restarted = restart(kept.clone());
    assert_eq!(restarted.held_order(&alice.account()), Some(&order));
    // A lock from a store written before orders were kept: the digest, not the order,
    // until the order is sent again.
    let mut restarted = restart(VoteLock {
        order: None,
        ..kept
    });
    assert_eq!(
        restarted.held_vote(&alice.account()),
        Some(order.order.digest(&net))
    );
    assert_eq!(restarted.held_order(&alice.account()), None);
    restarted.handle_order(&order, true).unwrap();
    assert_eq!(restarted.held_order(&alice.account()), Some(&order));

    vs[0].handle_certificate(&certificate, true).unwrap();
    assert_eq!(
        vs[0].held_order(&alice.account()),
        None,
        "an applied slot holds nothing"
    );
}

#[test]
fn certificates_apply_in_sequence_and_idempotently() {
    let alice = user(1);
    let bob = user(2);
    let (contract, keys) = network(4, &[(alice.account(), 100)]);
    let mut vs = validators(&contract, &keys);
    let net = contract.id();
    let first = transfer(&alice, bob.account(), 30, 0, &net);
    let c1 = certify(&mut vs[..3], &first);
    for v in vs.iter_mut().take(3) {
        v.handle_certificate(&c1, true).unwrap();
    }
    let second = transfer(&alice, bob.account(), 50, 1, &net);
    let c2 = certify(&mut vs[..3], &second);
    // The fourth validator saw neither: the second certificate must wait for the first.
    assert_eq!(
        vs[3].handle_certificate(&c2, true),
        Err(LedgerError::MissingPredecessor {
            expected: 0,
            got: 1
        })
    );
    assert_eq!(
        vs[3].handle_certificate(&c1, true),
        Ok(Applied { new: true })
    );
    assert_eq!(
        vs[3].handle_certificate(&c2, true),
        Ok(Applied { new: true })
    );
    assert_eq!(
        vs[3].handle_certificate(&c1, true),
        Ok(Applied { new: false })
    );
    assert_eq!(vs[3].account(&alice.account()).balance, 20);
    assert_eq!(vs[3].account(&bob.account()).balance, 80);
    assert_eq!(vs[3].log_len(), 2);
}

#[test]
fn a_split_pays_every_output_or_nothing() {
    let alice = user(1);
    let (bob, carol) = (user(2).account(), user(3).account());
    let (contract, keys) = network(4, &[(alice.account(), 100)]);
    let mut vs = validators(&contract, &keys);
    let net = contract.id();

    let malformed = [
        (split(&alice, &[], 0, &net), SplitError::OutputCount(0)),
        (
            split(&alice, &[(bob, 10), (carol, 0)], 0, &net),
            SplitError::ZeroAmount,
        ),
        (
            split(&alice, &[(bob, 10), (alice.account(), 5)], 0, &net),
            SplitError::PaysSender,
        ),
        (
            split(&alice, &[(bob, 10), (bob, 5)], 0, &net),
            SplitError::DuplicateRecipient,
        ),
    ];
    for (order, why) in malformed {
        assert_eq!(
            vs[0].handle_order(&order, true),
            Err(LedgerError::BadSplit(why))
        );
        assert!(vs[0].take_changes().is_empty());
    }
    // 60 + 50 is more than the 100 held, though each output alone is not.
    assert!(matches!(
        vs[0].handle_order(&split(&alice, &[(bob, 60), (carol, 50)], 0, &net), true),
        Err(LedgerError::InsufficientFunds { balance: 100, .. })
    ));
    assert!(vs[0].take_changes().is_empty());

    let order = split(&alice, &[(bob, 30), (carol, 20)], 0, &net);
    let certificate = certify(&mut vs, &order);
    for v in vs.iter_mut() {
        assert_eq!(
            v.handle_certificate(&certificate, true),
            Ok(Applied { new: true })
        );
        assert_eq!(v.account(&alice.account()).balance, 50);
        assert_eq!(v.account(&alice.account()).next_sequence, 1);
        assert_eq!(v.account(&bob).balance, 30);
        assert_eq!(v.account(&carol).balance, 20);
        assert_eq!(v.supply(), Amount::from_microcash(100));
        assert!(v.is_applied(&order.order));
        assert_eq!(
            v.handle_certificate(&certificate, true),
            Ok(Applied { new: false })
        );
        assert_eq!(v.account(&bob).balance, 30);
    }
}

#[test]
fn a_split_and_a_transfer_for_one_sequence_share_one_lock_slot() {
    let alice = user(1);
    let bob = user(2).account();
    let (contract, keys) = network(4, &[(alice.account(), 100)]);
    let mut vs = validators(&contract, &keys);
    let net = contract.id();
    let as_split = split(&alice, &[(bob, 10)], 0, &net);
    let as_transfer = transfer(&alice, bob, 10, 0, &net);
    assert_ne!(as_split.order.digest(&net), as_transfer.order.digest(&net));

    vs[0].handle_order(&as_split, true).unwrap();
    assert_eq!(
        vs[0].handle_order(&as_transfer, true),
        Err(LedgerError::Conflict {
            voted: as_split.order.digest(&net)
        })
    );
    vs[1].handle_order(&as_transfer, true).unwrap();
    assert_eq!(
        vs[1].handle_order(&as_split, true),
        Err(LedgerError::Conflict {
            voted: as_transfer.order.digest(&net)
        })
    );
    // Asking again for the order a validator holds gets the same vote.
    assert_eq!(
        vs[0].handle_order(&as_split, true),
        Ok(vs[0].vote(&as_split.order.digest(&net)))
    );
    assert!(vs[0].has_voted_for(&as_split.order, &as_split.order.digest(&net)));
    assert!(!vs[0].has_voted_for(&as_transfer.order, &as_transfer.order.digest(&net)));
}

#[derive(Clone, Debug)]
enum Op {
    Intro(u8),
    Pay { from: u8, to: u8, amount: u64 },
    Split { from: u8, outputs: Vec<(u8, u64)> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6).prop_map(Op::Intro),
        (0u8..6, 0u8..6, 0u64..30_000_000).prop_map(|(from, to, amount)| Op::Pay {
            from,
            to,
            amount
        }),
        (
            0u8..6,
            proptest::collection::vec((0u8..6, 0u64..10_000_000), 0..5)
        )
            .prop_map(|(from, outputs)| Op::Split { from, outputs }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Transfers and splits move microcash without creating or destroying any; only intros mint,
    /// each key once, by exactly the faucet amount.
    #[test]
    fn supply_is_conserved_and_grows_only_by_faucet_mints(ops in proptest::collection::vec(op(), 1..40)) {
        let genesis_holder = user(0);
        let (contract, keys) = network(4, &[(genesis_holder.account(), 5_000_000)]);
        let mut vs = validators(&contract, &keys);
        let net = contract.id();
        let users: Vec<SecretKey> = (0..6).map(user).collect();
        let mut introduced = HashSet::new();
        for op in ops {
            let order = match op {
                Op::Intro(i) => {
                    let key = &users[usize::from(i)];
                    let nonce = IntroPowHasher::new(&key.account()).search(0..100_000, BITS).unwrap();
                    introduced.insert(i);
                    SignedOrder::sign(Order::IntroKey(IntroKey { account: key.account(), proof_of_work: nonce }), key, &net)
                }
                Op::Pay { from, to, amount } => {
                    let key = &users[usize::from(from)];
                    let seq = vs[0].account(&key.account()).next_sequence;
                    transfer(key, users[usize::from(to)].account(), amount, seq, &net)
                }
                Op::Split { from, outputs } => {
                    let key = &users[usize::from(from)];
                    let seq = vs[0].account(&key.account()).next_sequence;
                    let outputs: Vec<(AccountId, u64)> = outputs.iter().map(|(to, amount)| (users[usize::from(*to)].account(), *amount)).collect();
                    split(key, &outputs, seq, &net)
                }
            };
            let votes: Vec<Vote> = vs.iter_mut().filter_map(|v| v.handle_order(&order, true).ok()).collect();
            if votes.len() >= 3 {
                let cert = Certificate::new(order, &net, votes);
                for v in vs.iter_mut() { v.handle_certificate(&cert, true).unwrap(); }
            }
            for v in &vs {
                let total: i128 = v.accounts().map(|(_, a)| a.balance).sum();
                let expected = 5_000_000 + 10_000_000 * introduced.len() as i128;
                prop_assert_eq!(total, expected);
                prop_assert_eq!(i128::from(v.supply().microcash()), expected);
                prop_assert!(v.accounts().all(|(_, a)| a.balance >= 0));
            }
        }
    }

    /// Whatever order conflicting requests arrive in, and with up to f validators that
    /// vote for everything, at most one certificate can form per lock slot.
    #[test]
    fn at_most_one_certificate_per_lock_slot(
        deliveries in proptest::collection::vec((0usize..4, 0usize..3), 1..40),
        byzantine in 0usize..4,
    ) {
        let alice = user(1);
        let (contract, keys) = network(4, &[(alice.account(), 1_000)]);
        let mut vs = validators(&contract, &keys);
        let net = contract.id();
        // Two transfers and a split, all for sequence 0.
        let mut orders: Vec<SignedOrder> = (0..2u8)
            .map(|i| transfer(&alice, user(10 + i).account(), 100 + u64::from(i), 0, &net))
            .collect();
        orders.push(split(&alice, &[(user(12).account(), 50), (user(13).account(), 60)], 0, &net));
        let mut votes: Vec<HashSet<AccountId>> = vec![HashSet::new(); orders.len()];
        for (validator, order) in deliveries {
            let vote = if validator == byzantine {
                // A Byzantine validator ignores its locks and signs anything.
                Some(Vote::sign(&keys[validator], &net, &orders[order].order.digest(&net)))
            } else {
                vs[validator].handle_order(&orders[order], true).ok()
            };
            if let Some(vote) = vote {
                prop_assert!(vote.verify(&net, &orders[order].order.digest(&net)));
                votes[order].insert(vote.validator);
            }
        }
        let certified = votes.iter().filter(|v| v.len() >= 3).count();
        prop_assert!(certified <= 1, "{} certificates for one slot", certified);
    }
}

mod escrow;
