//! What the `tally` binary writes for a person: log lines without colour codes when stderr
//! is not a terminal (`tally devnet 2>&1 | tee log`), and help that names what each command
//! runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

mod common;

use common::{TALLY, free_base_port};

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    // A tracker address where nothing listens: the wallet logs a warning about it.
    let base = free_base_port(3);
    let created = Command::new(TALLY)
        .args([
            "network",
            "new",
            "quorum",
            "--validators",
            "1",
            "--pow-bits",
            "0",
        ])
        .args(["--base-port", &base.to_string()])
        .args(["--tracker", &format!("127.0.0.1:{}", base + 2), "--dir"])
        .arg(&net)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let output = Command::new(TALLY)
        .args(["wallet", "--timeout", "1", "--wallet"])
        .arg(dir.path().join("wallet"))
        .arg("--network")
        .arg(net.join("contract.json"))
        .args(["ledger"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tracker unavailable"), "{stderr}");
    assert!(
        !output.stderr.contains(&0x1b),
        "escape codes in a piped log: {stderr:?}"
    );
}

#[test]
fn node_help_says_it_runs_validators_and_miners() {
    let top = Command::new(TALLY).arg("--help").output().unwrap();
    let top = String::from_utf8_lossy(&top.stdout);
    let line = top
        .lines()
        .find(|l| l.trim_start().starts_with("node"))
        .unwrap();
    assert!(
        line.contains("validator") && line.contains("proof-of-work"),
        "{line}"
    );
    let help = Command::new(TALLY)
        .args(["node", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("validator") && help.contains("miner"),
        "{help}"
    );
}
