//! The README's first command: `tally devnet` brings up a whole local network (four
//! validators, two miners, a tracker, a relay, a second quorum network and a market maker
//! between the two) that the printed wallet commands use, and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Guarded, TALLY, free_base_port, wallet_json};

/// `tally devnet` prints working wallet commands, serves both networks (four validators
/// up, two miners mining) and exits cleanly on SIGTERM.
#[test]
fn devnet_runs_both_networks_a_tracker_and_a_relay_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = dir.path().join("devnet");
    // Validators, tracker, relay, miners, the second network's validators, the maker.
    let base = free_base_port(23);
    let mut child = Guarded::spawn(
        Command::new(TALLY)
            .args(["devnet", "--dir"])
            .arg(&devnet)
            .args(["--base-port", &base.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut printed = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "devnet exited: {printed}"
        );
        printed.push_str(&line);
        if line.starts_with("Ctrl-C stops the devnet") {
            break;
        }
    }
    assert!(printed.contains("balance genesis-0"), "{printed}");
    assert!(printed.contains("coins withdraw 281"), "{printed}");
    assert!(printed.contains("coins import"), "{printed}");
    assert!(printed.contains("live send 281 --relay"), "{printed}");
    assert!(printed.contains("live receive"), "{printed}");
    assert!(printed.contains(&format!("relay        127.0.0.1:{}", base + 9)));

    // The quorum network: four validators, found through the tracker.
    let quorum = devnet.join("quorum");
    let peers = wallet_json(
        &quorum.join("genesis-wallet"),
        &quorum.join("contract.json"),
        &["peers"],
    );
    let up = peers["validators"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["up"] == true)
        .count();
    assert_eq!(up, 4, "{peers}");
    let balance = wallet_json(
        &quorum.join("genesis-wallet"),
        &quorum.join("contract.json"),
        &["balance", "genesis-0"],
    );
    assert_eq!(balance["balance"], 1_000_000_000);
    assert_eq!(balance["agree"], 4);

    // The printed wire works: 25 cash from devnet to devnet-b through the devnet's maker.
    assert!(printed.contains("wire 25 --to"), "{printed}");
    let b_contract = devnet.join("quorum-b").join("contract.json");
    let relay = format!("127.0.0.1:{}", base + 9);
    let receipt = wallet_json(
        &quorum.join("genesis-wallet"),
        &quorum.join("contract.json"),
        &[
            "wire",
            "25",
            "--to",
            b_contract.to_str().unwrap(),
            "--relay",
            &relay,
            "--from",
            "genesis-0",
        ],
    );
    assert_eq!(receipt["outcome"], "Completed", "{receipt}");
    let on_b = wallet_json(
        &quorum.join("genesis-wallet"),
        &b_contract,
        &["balance", "genesis-0"],
    );
    assert_eq!(on_b["balance"], 25_000_000, "{on_b}");
    // The proof-of-work network: two miners that mine one chain.
    let pow = devnet.join("pow");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let peers = wallet_json(
            &pow.join("genesis-wallet"),
            &pow.join("contract.json"),
            &["peers"],
        );
        let miners = peers["miners"].as_array().unwrap();
        if miners.len() == 2
            && miners.iter().all(|m| m["up"] == true)
            && miners[0]["height"].as_u64().unwrap_or(0) >= 1
        {
            break;
        }
        assert!(Instant::now() < deadline, "no mined block: {peers}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let balance = wallet_json(
        &pow.join("genesis-wallet"),
        &pow.join("contract.json"),
        &["balance", "genesis-0"],
    );
    assert_eq!(balance["balance"], 1_000_000_000);

    // SIGTERM stops everything cleanly.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "devnet did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "clean exit: {status:?}");
}
