//! `tally sim` as a person runs it: one seed replayed prints what it drew and that nothing
//! broke; a short campaign over both worlds reports its counts; bad arguments are refused
//! in words before anything runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

mod common;

use common::TALLY;

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(TALLY).arg("sim").args(args).output().unwrap()
}

/// One seed replays with its faults printed (what a failing campaign asks a person to
/// run), and the same seed prints the same thing twice: the run is deterministic.
#[test]
fn one_seed_replays_with_its_faults_and_the_same_output_each_time() {
    let first = sim(&["--seed", "42", "--steps", "300"]);
    assert!(first.status.success(), "{first:?}");
    let text = String::from_utf8(first.stdout.clone()).unwrap();
    assert!(text.starts_with("seed 42: faults "), "{text}");
    assert!(text.contains("proof of work: "), "{text}");
    assert!(
        text.contains("1 seeds of 300 steps on 4 validators and 4 miners: no invariant broken"),
        "{text}"
    );
    let counts = |out: &str| -> Vec<String> {
        // Everything but the timing line.
        out.lines()
            .filter(|l| !l.contains("simulated messages/s"))
            .map(str::to_owned)
            .collect()
    };
    let again = sim(&["--seed", "42", "--steps", "300"]);
    assert_eq!(
        counts(&text),
        counts(&String::from_utf8(again.stdout).unwrap())
    );
}

/// A short campaign with other committee and miner counts runs both worlds and reports
/// what happened in each.
#[test]
fn a_short_campaign_reports_both_worlds() {
    let out = sim(&[
        "--seeds",
        "3",
        "--first",
        "7",
        "--validators",
        "7",
        "--miners",
        "2",
        "--steps",
        "300",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("3 seeds of 300 steps on 7 validators and 2 miners: no invariant broken"),
        "{text}"
    );
    assert!(text.contains("payments acknowledged"), "{text}");
    assert!(text.contains("payments confirmed"), "{text}");
}

/// A committee or a mining network of nobody, and no steps, are refused by name.
#[test]
fn empty_networks_and_no_steps_are_refused_in_words() {
    for (args, named) in [
        (["--validators", "0"], "--validators"),
        (["--miners", "0"], "--miners"),
        (["--steps", "0"], "--steps"),
    ] {
        let out = sim(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(error.contains(named), "{args:?}: {error}");
        assert!(out.stdout.is_empty(), "{args:?} ran: {out:?}");
    }
}
