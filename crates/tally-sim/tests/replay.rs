//! A seed replays exactly: the same seed, run twice in one process after other seeds (as in
//! a campaign), does the same thing step for step, down to its message count, or breaks
//! the same invariant at the same step with the same trace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tally_sim::{Config, run};

fn replays(validators: usize, seeds: std::ops::Range<u64>) {
    for seed in seeds {
        let config = Config::new(seed, validators, 1_000);
        let first = run(&config).map_err(|v| v.to_string());
        let second = run(&config).map_err(|v| v.to_string());
        assert_eq!(
            first, second,
            "seed {seed} on {validators} validators ran two ways"
        );
    }
}

#[test]
fn seeds_replay_exactly_within_one_process() {
    replays(4, 0..8);
    replays(7, 700_000..700_004);
}

/// The long form, for a campaign range under suspicion:
/// `FIRST=700000 COUNT=1200 VALIDATORS=7 cargo test --release -p tally-sim --test replay -- --ignored`.
#[test]
#[ignore = "long: run by hand over a campaign's range"]
fn long_replay_campaign() {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let first = var("FIRST", 700_000);
    let validators = usize::try_from(var("VALIDATORS", 7)).unwrap();
    replays(validators, first..first + var("COUNT", 1_200));
}
