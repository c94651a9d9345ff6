//! The simulator over many seeds: no invariant breaks with the real validator and the real
//! wallet, each of six planted mistakes is caught within the same seeds, and the seeds
//! that found real bugs stay fixed (each replayed without escrows, exactly the run that
//! found it, since escrows came later).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tally_sim::{Config, Outcome, PlantedBug, run};

/// Seeds `cargo test` runs per committee size (the long campaign is `tally sim --seeds`).
const SEEDS: u64 = 150;
const STEPS: usize = 1_000;

fn campaign(validators: usize, seeds: std::ops::Range<u64>) -> Outcome {
    let mut total = Outcome::default();
    for seed in seeds {
        match run(&Config::new(seed, validators, STEPS)) {
            Ok(outcome) => total.add(&outcome),
            Err(violation) => panic!("{violation}"),
        }
    }
    total
}

#[test]
fn four_validators_keep_every_invariant_under_faults() {
    let total = campaign(4, 0..SEEDS);
    // The runs did something: payments went through, faults happened.
    assert!(total.acknowledged > 10 * SEEDS, "{total}");
    assert!(total.crashes > 0, "{total}");
    assert!(total.frozen_by_equivocation > 0, "{total}");
    // Two copies of one wallet raced: one finished the other's order instead of signing
    // a second one, many times.
    assert!(total.twin_orders_finished_for_the_other > 10, "{total}");
    // Lying validators sent forged certificates; honest ones refused them.
    assert!(total.forgeries_refused > 0, "{total}");
    // Wallet processes died mid-payment and finished their journal when they came back;
    // payments that found no quorum in time were made again.
    assert!(total.wallet_crashes > 0, "{total}");
    assert!(total.payments_retried > 0, "{total}");
    // Bearer coins handed to two holders at once: nearly every one taken by exactly one.
    assert!(total.coins_handed_twice > SEEDS, "{total}");
    assert!(
        total.coins_taken * 10 > total.coins_handed_twice * 9,
        "{total}"
    );
    // The proof-of-work network did its part under its faults: forks resolved by
    // reorganisation (some deeper than the wallets' confirmations), withheld branches
    // released, money-minting blocks refused, miners crashed, payments confirmed.
    let chain = &total.chain;
    assert!(chain.blocks > 10 * SEEDS, "{total}");
    assert!(chain.reorgs > 0 && chain.deepest_reorg > 3, "{total}");
    assert!(chain.withheld > 0, "{total}");
    assert!(chain.invalid_refused > 0, "{total}");
    assert!(chain.crashes > 0, "{total}");
    assert!(chain.payments > 5 * SEEDS, "{total}");
}

#[test]
fn seven_and_ten_validators_keep_every_invariant_under_faults() {
    let seven = campaign(7, 1_000..1_000 + SEEDS / 3);
    let ten = campaign(10, 2_000..2_000 + SEEDS / 3);
    assert!(seven.acknowledged > 0 && ten.acknowledged > 0);
}

#[test]
fn a_seed_replays_exactly() {
    let config = Config::new(42, 4, STEPS);
    assert_eq!(run(&config), run(&config));
}

/// The first seed below `SEEDS` at which `bug` breaks an invariant, with what it broke.
fn caught(bug: PlantedBug) -> Option<(u64, String)> {
    (0..SEEDS).find_map(|seed| {
        let mut config = Config::new(seed, 4, STEPS);
        config.planted = Some(bug);
        run(&config).err().map(|v| (v.seed, v.invariant))
    })
}

#[test]
fn a_validator_that_votes_twice_in_a_slot_is_caught() {
    let (seed, invariant) = caught(PlantedBug::VoteTwice).expect("never caught");
    // Either two orders of the slot gather a quorum each, or the validator's store, which
    // keeps one lock per slot, shows after a crash that it gave a vote it cannot account
    // for: both are the mistake.
    assert!(
        invariant.contains("two orders") || invariant.contains("forgot its vote"),
        "seed {seed}: {invariant}"
    );
}

/// A validator that votes for both the claim and the refund of one escrow (claim before the
/// deadline, refund after it by its clock) lets both certificates form: the escrow's money
/// would be paid twice. Caught in an escrow's slot.
#[test]
fn a_validator_that_votes_both_claim_and_refund_is_caught() {
    let (seed, invariant) = caught(PlantedBug::VoteClaimAndRefund).expect("never caught");
    assert!(
        invariant.contains("Escrow(")
            && (invariant.contains("two orders") || invariant.contains("two certificates")),
        "seed {seed}: {invariant}"
    );
}

/// A certificate applied twice moves its money twice: the ledger differs from what the
/// certificates make, its balances (with what escrows hold) no longer add up to its
/// supply, or an honest account is overdrawn and its next payment refused.
#[test]
fn a_certificate_applied_twice_is_caught() {
    let (seed, invariant) = caught(PlantedBug::ApplyTwice).expect("never caught");
    assert!(
        invariant.contains("ledger")
            || invariant.contains("InsufficientFunds")
            || invariant.contains("balances"),
        "seed {seed}: {invariant}"
    );
}

#[test]
fn a_vote_sent_before_its_commit_is_caught() {
    let (seed, invariant) = caught(PlantedBug::VoteBeforeCommit).expect("never caught");
    assert!(
        invariant.contains("forgot its vote"),
        "seed {seed}: {invariant}"
    );
}

/// Two copies of one wallet that ask every validator at once (no first voter) split a slot
/// where the race was never opened by a missing answer: the check of twin freezes says so.
#[test]
fn twins_that_skip_the_first_voter_are_caught_splitting_a_slot() {
    let (seed, invariant) = caught(PlantedBug::TwinsSkipFirstVoter).expect("never caught");
    assert!(
        invariant.contains("two copies of one wallet froze"),
        "seed {seed}: {invariant}"
    );
}

/// Found by the campaign: an equivocator gave its slot up as frozen, then late votes made a
/// quorum after all; the certificate it assembled must still reach every validator.
#[test]
fn seed_246_a_certificate_assembled_after_giving_up_is_still_delivered() {
    if let Err(violation) = run(&Config::without_escrows(246, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found when the simulator began running the wallet's own code: a lying validator, the
/// only one to answer in time, said the account was two slots further on, and the wallet
/// signed for a slot no honest validator would vote in; after the network healed its next
/// payment failed. The wallet now reads the next slot from at least f+1 validators.
#[test]
fn seed_109_the_next_slot_is_not_one_liars_word() {
    if let Err(violation) = run(&Config::without_escrows(109, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found the same way (7 validators): a twin's journaled order lost its slot to the other
/// copy's, which held the most votes but whose first voter held this copy's order; the
/// wallet gave the held order up at that voter's refusal and stayed stuck. It now finishes
/// the most held order by asking every validator.
#[test]
fn seeds_1014_and_1036_a_twin_finishes_the_most_held_order() {
    for seed in [1014, 1036] {
        if let Err(violation) = run(&Config::without_escrows(seed, 7, STEPS)) {
            panic!("{violation}");
        }
    }
}

/// Found when the simulator began handing one bearer coin to two holders at once: both
/// took it in through the batch path, which sent each coin's order to every validator at
/// once (no first voter), and the votes split the coin's slot 2–2 though every validator
/// answered. Batches now follow the first-voter rule too.
#[test]
fn seed_6_two_holders_taking_in_one_coin_do_not_split_it() {
    if let Err(violation) = run(&Config::without_escrows(6, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found the same way: the holders were handed the coins before the certificate that
/// funded them reached a quorum of validators; both graded them counterfeit and the coins
/// were lost to them. Taking coins in now hands lagging validators the coin's funding
/// certificate first.
#[test]
fn seed_68_a_coin_handed_over_before_its_funding_spread_is_not_counterfeit() {
    if let Err(violation) = run(&Config::without_escrows(68, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found by a 10,000-seed campaign: one holder's pown went past the coin's silent first
/// voter and gathered the three other votes, the other holder's got the first voter's; each
/// holder's `coins find` gave up on its own order, and the coin stayed in both holders'
/// `Limbo` though one order held a quorum. `find` now finishes the most held order.
#[test]
fn seed_400480_a_contested_coin_is_finished_by_its_most_held_order() {
    if let Err(violation) = run(&Config::without_escrows(400_480, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found by a 10,000-seed campaign: a holder's pown held votes but no quorum (the coin's
/// funding had not reached every validator), and `coins find` graded the fresh coin it
/// pays worthless (no validator had seen it funded) and threw it away; the pown was
/// certified later and its cash went to the discarded coin. A fresh coin an order still
/// journaled pays now waits in `Limbo`.
#[test]
fn seed_401422_a_fresh_coin_awaiting_its_pown_is_not_thrown_away() {
    if let Err(violation) = run(&Config::without_escrows(401_422, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found the same way: a batch whose exchange with a coin's first voter failed went on to
/// the others (the residual race, as for one order), but the simulated transport had sent
/// the batch one request at a time and stopped at the first failure, so the first voter
/// never saw the later orders and the check took the split for a broken rule. The
/// simulated transport now pipelines a batch as TCP does.
#[test]
fn seed_400552_a_batch_reaches_its_first_voter_whole() {
    if let Err(violation) = run(&Config::without_escrows(400_552, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found by a 10,000-seed campaign: one holder finished the other holder's pown (the most
/// held order in the coin's slot) while the other's batch was still asking; every
/// validator then refused the batch's order as old, the batch took that for "no vote
/// anywhere" and dropped the fresh coin the certified order had paid. A batch now looks
/// the slot's certificate up first, and keeps it when it is its own order's.
#[test]
fn seed_401538_a_batched_pown_settled_by_the_other_holder_is_kept() {
    if let Err(violation) = run(&Config::without_escrows(401_538, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found by a 10,000-seed campaign: the holders were handed coins whose funding had reached
/// no validator, and handing it over failed under the faults of the moment; both graded
/// the coins counterfeit and threw them away, though each coin carries a certificate that
/// proves its funding. Such a coin now waits, undecided, and is taken in once its funding
/// spread.
#[test]
fn seed_401550_a_coin_that_proves_its_funding_is_not_counterfeit() {
    if let Err(violation) = run(&Config::without_escrows(401_550, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found by a 10,000-seed campaign: a wallet catching a lagging validator up took the
/// certificates to push from a lying validator's `REQ_CERTS` page without checking them,
/// and relayed a forged certificate (the liar's own vote beside forged ones) for a slot
/// another order had won. Pages are now checked against the committee as they arrive.
#[test]
fn seed_405472_a_forged_certificate_is_never_relayed() {
    if let Err(violation) = run(&Config::without_escrows(405_472, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found by a 10,000-seed campaign: a lying validator that is a twin's first voter
/// refused every new order as conflicting with a vote it did not hold; the wallet took
/// each refusal as the other copy having the slot, dropped its order and tried again, 100
/// times, and gave up on the healed network. A conflict now counts only when the first
/// voter hands out the other order (signed by the account, for that slot); otherwise the
/// first voter is treated as silent.
#[test]
fn seed_406165_a_first_voter_cannot_block_an_account_with_unproven_conflicts() {
    if let Err(violation) = run(&Config::without_escrows(406_165, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found by a 10,000-seed campaign (7 validators), a fault of the simulator's own: after
/// the network healed, every certificate was handed out once, but the network still
/// reorders, and a certificate that overtook its account's previous one was refused as
/// ahead of its slot and never sent again. Certificates are now handed out in rounds
/// until one applies nothing new, as the nodes' sync would.
#[test]
fn seed_702529_certificates_reach_every_validator_despite_reordering() {
    if let Err(violation) = run(&Config::without_escrows(702_529, 7, STEPS)) {
        panic!("{violation}");
    }
}

/// Found by a 10,000-seed campaign (7 validators), a fault of the simulator's own: a disk
/// failure armed for a commit that wrote nothing struck after the network healed, and a
/// validator went down while every wallet had to get through. Healing disarms it.
#[test]
fn seed_700502_no_disk_fails_after_the_network_healed() {
    if let Err(violation) = run(&Config::without_escrows(700_502, 7, STEPS)) {
        panic!("{violation}");
    }
}

#[test]
fn a_miner_that_announces_a_block_it_failed_to_commit_is_caught() {
    let (seed, invariant) = caught(PlantedBug::AnnounceUncommitted).expect("never caught");
    assert!(
        invariant.contains("lost it in a crash")
            || invariant.contains("less work than it had announced"),
        "seed {seed}: {invariant}"
    );
}

/// Found by the first escrow runs: a payer's journaled lock, finished after the network
/// healed with its deadline near, was refused everywhere, and the payer could lock nothing
/// more (its slot held the old lock). Validators now vote for a lock whatever its deadline
/// (a late lock is refunded at once).
#[test]
fn seed_3_a_late_journaled_lock_still_completes() {
    if let Err(violation) = run(&Config::new(3, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found by the first escrow campaign: most validators missed an escrow's lock, the
/// refund's catch-up took the lock from a validator that had missed it too, and the refund
/// failed for good; then (seed 180) no honest validator had it at all. The catch-up now
/// takes it from a validator that applied it, and the payer hands over its lock's
/// certificate before it settles.
#[test]
fn seeds_44_and_180_a_refund_brings_lagging_validators_the_lock() {
    for seed in [44, 180] {
        if let Err(violation) = run(&Config::new(seed, 4, STEPS)) {
            panic!("{violation}");
        }
    }
}

/// Found by the first escrow campaign: a quorum voted an escrow's claim but the claimant
/// lost the answers; past the deadline validators refused the claim again and the payer's
/// refund met their votes: frozen. Validators now vote again for the claim they hold, and a
/// refund that meets a held claim finishes it.
#[test]
fn seeds_56_and_700089_a_claim_holding_the_votes_is_finished() {
    for (seed, validators) in [(56, 4), (700_089, 7)] {
        if let Err(violation) = run(&Config::new(seed, validators, STEPS)) {
            panic!("{violation}");
        }
    }
}

/// Found by the first escrow campaigns: most validators missed the payer's previous lock,
/// and catching one up took certificates from a validator as far behind (seed 700451, 7
/// validators), or from a Byzantine one that claimed to be ahead (seed 207). Sources are
/// now tried furthest along the account's orders first, f + 1 of them; and a push the
/// target had meanwhile received from the order's own wallet, or from another request's
/// catch-up, counts as caught up (seeds 706 and 404930: the catch-up found nothing new to
/// push and gave the refusal back).
#[test]
fn seeds_700451_207_706_and_404930_catch_up_takes_the_furthest_validators() {
    for (seed, validators) in [(700_451, 7), (207, 4), (706, 4), (404_930, 4)] {
        if let Err(violation) = run(&Config::new(seed, validators, STEPS)) {
            panic!("{violation}");
        }
    }
}

/// Found by the escrow campaign (7 validators): a payer's lock was certified and applied
/// by two validators only before they and the payer were cut off. Asked for it again, they
/// answered "hash lock already used" (the hash check came before the sequence check), and
/// once that was fixed the wallet still read the slot as open from the f + 1 others and
/// looped. Validators now refuse an applied lock as an old sequence, and a wallet that finds
/// its slot's certificate hands it to every validator.
#[test]
fn seed_700683_a_lock_applied_by_few_is_handed_to_all() {
    if let Err(violation) = run(&Config::new(700_683, 7, STEPS)) {
        panic!("{violation}");
    }
}

/// Found by the final 4-validator escrow campaign: a payer's second lock and a payee's claim
/// both found the same two validators without the payer's first lock, and both catch-ups
/// pushed it at once. The one that lost the race saw "already known", counted nothing as
/// pushed and gave the refusal back, so the lock failed after the network had healed. A
/// catch-up now reads the target again afterwards and counts it as caught up when it is
/// ready for the order, whoever brought it there.
#[test]
fn seed_403946_a_catch_up_that_loses_a_race_still_counts() {
    if let Err(violation) = run(&Config::new(403_946, 4, STEPS)) {
        panic!("{violation}");
    }
}
