//! Four Malachite instances agree on one epoch-close value under the seeded faulty network,
//! over 100 seeds per scenario; with f = 1 crashed the other three still agree.

use epoch_close_spike::sim::{run, Crash, N};

const SEEDS: u64 = 100;

fn all_agree(setup: impl Fn(u64) -> (Crash, bool)) {
    for seed in 0..SEEDS {
        let (crash, partition) = setup(seed);
        let out = run(seed, crash, partition);
        if let Err(e) = out.check() {
            panic!("{e} ({:?}, {:?})", out.crash, out.faults);
        }
    }
}

#[test]
fn four_up_agree() {
    all_agree(|_| (Crash::None, false));
}

#[test]
fn three_agree_with_one_silent() {
    all_agree(|s| (Crash::Silent((s % N as u64) as usize), false));
}

#[test]
fn three_agree_when_one_crashes_mid_run() {
    all_agree(|s| {
        (
            Crash::At((s % N as u64) as usize, 20 + (s * 37) % 400),
            false,
        )
    });
}

#[test]
fn four_agree_with_one_cut_off_for_a_while() {
    all_agree(|_| (Crash::None, true));
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 17, 42] {
        let a = run(seed, Crash::At(1, 400), true);
        let b = run(seed, Crash::At(1, 400), true);
        assert_eq!(a.decisions, b.decisions);
        assert_eq!(
            (a.sent, a.dropped, a.delivered, a.end_ms),
            (b.sent, b.dropped, b.delivered, b.end_ms)
        );
    }
}

/// The control: with two of four gone (more than f) nobody may decide, and the run must
/// say so rather than pass.
#[test]
fn two_silent_never_decide() {
    for seed in 0..10 {
        let out = run_two_silent(seed);
        assert!(
            out.iter().all(Option::is_none),
            "seed {seed}: decided with two of four silent"
        );
    }
}

fn run_two_silent(seed: u64) -> Vec<Option<(epoch_close_spike::ctx::CloseId, u64)>> {
    epoch_close_spike::sim::run_with(seed, &[0, 2], false, 60_000).decisions
}
