//! `tally wallet … escrow` on a proof-of-work network, through the built binary: a tracker
//! and a mining `tally node` as child processes, escrows locked, shown, claimed and refunded
//! with `--json`, and the refusals a person can run into, each in words and changing
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{TALLY, start_pow, wallet_fails, wallet_json};

#[test]
fn escrows_on_a_chain_lock_claim_and_refund_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let (contract, _children) = start_pow(&net, &["--fund", "2"]);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&contract).unwrap()).unwrap();
    assert_eq!(
        json["max_clock_skew_ms"], 4_000,
        "a new chain declares ε = 20 block times"
    );
    let wallet = net.join("genesis-wallet");
    let keys = wallet_json(&wallet, &contract, &["keys"]);
    let payee = keys["accounts"][1]["account"].as_str().unwrap().to_owned();

    // Lock 3 cash for genesis-1 for a minute; the wallet draws and keeps the secret.
    let locked = wallet_json(
        &wallet,
        &contract,
        &[
            "escrow",
            "lock",
            &payee,
            "3",
            "--within",
            "60s",
            "--from",
            "genesis-0",
        ],
    );
    let escrow = locked["escrow"].as_str().unwrap().to_owned();
    assert!(locked["confirmations"].as_u64().unwrap() >= 1, "{locked}");
    assert!(locked["secret"].is_string(), "{locked}");
    let shown = wallet_json(&wallet, &contract, &["escrow", "show", &escrow]);
    assert_eq!(shown["state"], "open", "{shown}");
    assert_eq!(shown["lock"]["Amount"], 3_000_000, "{shown}");

    // Refused in words, nothing changed: a refund before the deadline, a malformed id.
    let early = wallet_fails(&wallet, &contract, &["escrow", "refund", &escrow]);
    assert!(early.contains("not yet"), "{early}");
    let malformed = wallet_fails(&wallet, &contract, &["escrow", "show", "xyz"]);
    assert!(malformed.contains("not 64 hex digits"), "{malformed}");
    let no_time = wallet_fails(
        &wallet,
        &contract,
        &[
            "escrow",
            "lock",
            &payee,
            "1",
            "--within",
            "1s",
            "--from",
            "genesis-0",
        ],
    );
    assert!(no_time.contains("must be more than"), "{no_time}");

    // The payee's claim: the wallet holds the secret, so no --secret is needed here.
    let claimed = wallet_json(&wallet, &contract, &["escrow", "claim", &escrow]);
    assert_eq!(claimed["claimed"], true, "{claimed}");
    let shown = wallet_json(&wallet, &contract, &["escrow", "show", &escrow]);
    assert_eq!(shown["state"], "claimed", "{shown}");
    assert_eq!(
        shown["secret"], locked["secret"],
        "the claim published the secret"
    );
    let settled = wallet_fails(&wallet, &contract, &["escrow", "refund", &escrow]);
    assert!(settled.contains("settled already"), "{settled}");

    // An escrow nobody claims comes back to its payer once the chain's median time passes
    // its deadline.
    let before = wallet_json(&wallet, &contract, &["balance", "genesis-0"]);
    let locked = wallet_json(
        &wallet,
        &contract,
        &[
            "escrow",
            "lock",
            &payee,
            "2",
            "--within",
            "12s",
            "--from",
            "genesis-0",
        ],
    );
    let escrow = locked["escrow"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let refunded = loop {
        let output = Command::new(TALLY)
            .args(["wallet", "--wallet"])
            .arg(&wallet)
            .arg("--network")
            .arg(&contract)
            .args(["--json", "escrow", "refund", &escrow])
            .output()
            .unwrap();
        if output.status.success() {
            break serde_json::from_slice::<Value>(&output.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "never refunded: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(refunded["refunded"], true, "{refunded}");
    let after = wallet_json(&wallet, &contract, &["balance", "genesis-0"]);
    assert_eq!(
        after["balance"], before["balance"],
        "the payer has it all back: {before} {after}"
    );
}
