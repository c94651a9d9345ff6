//! End to end through the built `tally` binary: `network new`, a `tally tracker`, four
//! `tally node` processes that find each other through it, and wallet commands with
//! `--json`, as a user would run them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{Children, TALLY, free_base_port, rpc, wallet_json};

fn tally(args: &[&str]) -> std::process::Output {
    Command::new(TALLY).args(args).output().unwrap()
}

#[test]
fn a_network_of_four_node_processes_serves_the_wallet_commands() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let base_port = free_base_port(9);
    let base = base_port.to_string();
    let tracker_address = format!("127.0.0.1:{}", base_port + 8);
    let output = tally(&[
        "network",
        "new",
        "quorum",
        "--dir",
        net.to_str().unwrap(),
        "--pow-bits",
        "8",
        "--base-port",
        &base,
        "--fund",
        "1",
        "--tracker",
        &tracker_address,
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("network "));
    let contract = net.join("contract.json");

    let mut nodes = Children(Vec::new());
    nodes.start_tracker(&tracker_address, &contract, &dir.path().join("tracker"));
    for i in 0..4 {
        let folder = net.join(format!("validator-{i}"));
        nodes.start(
            &["node", "--dir", folder.to_str().unwrap()],
            "validator listening on",
        );
    }

    // Each validator registers with the tracker (network new found its key's proof of
    // work) and learns the other three from it.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..4u16 {
        let rpc_port = base_port + 2 * i + 1;
        loop {
            let peers = rpc(rpc_port, "peers").unwrap_or_default();
            if peers["result"].as_array().map(Vec::len) == Some(3) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "validator {i} learned no peers from the tracker: {peers}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    let genesis = net.join("genesis-wallet");
    let me = dir.path().join("me");
    let peers = wallet_json(&genesis, &contract, &["peers"]);
    assert_eq!(
        peers["validators"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["up"] == true)
            .count(),
        4
    );

    let account = wallet_json(&me, &contract, &["key", "new", "--label", "me"])["account"]
        .as_str()
        .unwrap()
        .to_owned();
    let pow = wallet_json(&me, &contract, &["gen-pow"]);
    assert!(pow["proof_of_work"].is_u64());
    let intro = wallet_json(&me, &contract, &["intro"]);
    assert_eq!(intro["acknowledged"], 4);

    let sent = wallet_json(&genesis, &contract, &["send", &account, "1.504"]);
    assert_eq!(sent["amount"], 1_504_000);
    assert_eq!(sent["acknowledged"], 4);
    let receipt = Path::new(sent["receipt"].as_str().unwrap());
    assert!(receipt.exists(), "the certificate is kept in the wallet");

    let balance = wallet_json(&me, &contract, &["balance"]);
    assert_eq!(balance["balance"], 11_504_000);
    assert_eq!(balance["agree"], 4);
    let ledger = wallet_json(&genesis, &contract, &["ledger"]);
    assert_eq!(ledger["agree"], 4);

    // Bad arguments: a one-line reason and a non-zero exit, nothing sent.
    for bad in [
        vec!["send", account.as_str(), "1.0000001"],
        vec!["send", account.as_str(), "-1"],
        vec!["send", account.as_str(), "0"],
        vec!["send", "not-an-account", "1"],
    ] {
        let mut all = vec![
            "wallet",
            "--wallet",
            genesis.to_str().unwrap(),
            "--network",
            contract.to_str().unwrap(),
        ];
        all.extend(bad.iter().copied());
        let output = tally(&all);
        assert!(!output.status.success(), "{bad:?} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with("error:") || stderr.contains("error:"),
            "{stderr}"
        );
    }
    let balance = wallet_json(&me, &contract, &["balance"]);
    assert_eq!(balance["balance"], 11_504_000);

    // SIGTERM stops a node cleanly.
    let started = Instant::now();
    let pid = nodes.0[4].id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = loop {
        if let Some(status) = nodes.0[4].try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "node did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}
