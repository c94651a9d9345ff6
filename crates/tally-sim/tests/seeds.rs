//! The simulator over many seeds: no invariant breaks with the real validator, and each of
//! five planted mistakes is caught within the same seeds.

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

#[test]
fn a_certificate_applied_twice_is_caught() {
    let (seed, invariant) = caught(PlantedBug::ApplyTwice).expect("never caught");
    assert!(invariant.contains("ledger"), "seed {seed}: {invariant}");
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
    if let Err(violation) = run(&Config::new(246, 4, STEPS)) {
        panic!("{violation}");
    }
}

/// Found when the simulator began running the wallet's own code: a lying validator, the
/// only one to answer in time, said the account was two slots further on, and the wallet
/// signed for a slot no honest validator would vote in; after the network healed its next
/// payment failed. The wallet now reads the next slot from at least f+1 validators.
#[test]
fn seed_109_the_next_slot_is_not_one_liars_word() {
    if let Err(violation) = run(&Config::new(109, 4, STEPS)) {
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
        if let Err(violation) = run(&Config::new(seed, 7, STEPS)) {
            panic!("{violation}");
        }
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
