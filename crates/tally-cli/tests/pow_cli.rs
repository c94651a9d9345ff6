//! End to end through the built `tally` binary on a proof-of-work network: `tally tracker`,
//! `tally network new pow`, two `tally node --mine` processes that find each other through
//! the tracker and mine one chain; progress is read from their control APIs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{Children, TALLY, free_base_port, rpc};

#[test]
fn two_mining_node_processes_find_each_other_and_mine_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let base = free_base_port(5);
    let tracker_address = format!("127.0.0.1:{}", base + 4);
    let output = Command::new(TALLY)
        .args(["network", "new", "pow", "--dir"])
        .arg(&net)
        .args([
            "--miners",
            "2",
            "--block-time",
            "1s",
            "--initial-bits",
            "14",
            "--pow-bits",
            "4",
            "--tracker",
            &tracker_address,
            "--base-port",
            &base.to_string(),
            "--fund",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("network "), "{stdout}");
    let contract = net.join("contract.json");
    let text = std::fs::read_to_string(&contract).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["mode"], "pow");
    assert_eq!(json["pow"]["block_time_ms"], 1000);
    assert_eq!(json["pow"]["initial_bits"], 14);
    assert_eq!(json["pow"]["block_reward"], 50_000_000);
    assert!(net.join("miner-1").join("miner.json").exists());

    let mut children = Children(Vec::new());
    children.start_tracker(&tracker_address, &contract, &dir.path().join("tracker"));
    fn mine(dir: &str) -> [&str; 6] {
        ["node", "--mine", "--threads", "1", "--dir", dir]
    }
    let miners: Vec<String> = (0..2)
        .map(|i| net.join(format!("miner-{i}")).to_str().unwrap().to_owned())
        .collect();
    for miner in &miners {
        children.start(&mine(miner), "miner listening on");
    }

    // Both mine, find each other through the tracker, and agree on one chain.
    let rpc_ports = [base + 1, base + 3];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: Vec<Value> = rpc_ports
            .iter()
            .filter_map(|port| rpc(*port, "status"))
            .map(|v| v["result"].clone())
            .collect();
        let done = status.len() == 2
            && status.iter().all(|s| {
                s["height"].as_u64().unwrap_or(0) >= 5
                    && s["peers"].as_array().map(Vec::len) == Some(1)
                    && s["mining"] == true
            })
            && status[0]["height"] == status[1]["height"]
            && status[0]["tip"] == status[1]["tip"];
        if done {
            assert!(
                status
                    .iter()
                    .any(|s| s["blocks_mined"].as_u64().unwrap() > 0)
            );
            assert!(status.iter().all(|s| s["blocks_rejected"] == 0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the two miners did not reach the same tip: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let bad = rpc(rpc_ports[0], "nope").unwrap();
    assert_eq!(bad["error"]["code"], -32601);

    // The wallet finds the miners through the tracker, pays, and waits for confirmations.
    let wallet = net.join("genesis-wallet");
    let wallet_json = |args: &[&str]| common::wallet_json(&wallet, &contract, args);
    let peers = wallet_json(&["peers"]);
    assert_eq!(peers["miners"].as_array().unwrap().len(), 2, "{peers}");
    let payee = wallet_json(&["balance", "genesis-1"]);
    assert_eq!(payee["balance"], 1_000_000_000);
    let payee_account = payee["account"].as_str().unwrap().to_owned();
    let sent = wallet_json(&[
        "send",
        &payee_account,
        "12.5",
        "--from",
        "genesis-0",
        "--confirmations",
        "2",
    ]);
    assert!(sent["confirmations"].as_u64().unwrap() >= 2, "{sent}");
    assert!(std::path::Path::new(sent["receipt"].as_str().unwrap()).exists());
    let payee = wallet_json(&["balance", "genesis-1"]);
    assert_eq!(payee["balance"], 1_012_500_000);
    let payer = wallet_json(&["balance", "genesis-0"]);
    assert_eq!(payer["balance"], 987_500_000);
    assert_eq!(payer["sequence"], 1);
    // Every account at the tip: the two genesis accounts and the miners' rewards, and a
    // supply of exactly the genesis plus one 50-cash reward per block.
    let ledger = wallet_json(&["ledger"]);
    assert_eq!(ledger["complete"], true);
    let accounts = ledger["accounts"].as_array().unwrap();
    assert!(accounts.len() >= 3, "{ledger}");
    assert!(
        accounts
            .iter()
            .any(|a| a["label"] == "genesis-1" && a["balance"] == 1_012_500_000)
    );
    let height = ledger["tip"]["height"].as_u64().unwrap();
    assert_eq!(
        ledger["supply"].as_u64().unwrap(),
        2_000_000_000 + 50_000_000 * height,
        "{ledger}"
    );
    let listed: u64 = accounts
        .iter()
        .map(|a| a["balance"].as_u64().unwrap())
        .sum();
    assert_eq!(listed, ledger["supply"].as_u64().unwrap());
    // An overdraft and an intro (no faucet on a pow network) fail with a reason.
    for bad in [
        vec![
            "send",
            payee_account.as_str(),
            "5000",
            "--from",
            "genesis-0",
        ],
        vec!["intro"],
    ] {
        let output = Command::new(TALLY)
            .args(["wallet", "--wallet"])
            .arg(&wallet)
            .arg("--network")
            .arg(&contract)
            .args(&bad)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{bad:?} must fail");
        assert!(String::from_utf8_lossy(&output.stderr).starts_with("error:"));
    }

    // A crash (SIGKILL, mid-mining) loses nothing that was reported: the restarted miner
    // opens at a tip at least as high as the last one its control API showed (the API
    // shows only committed tips), then catches up with the other miner again.
    let before = rpc(rpc_ports[0], "status").unwrap()["result"]["height"]
        .as_u64()
        .unwrap();
    let mut killed = children.0.remove(1);
    killed.kill().unwrap();
    killed.wait().unwrap();
    children.start(&mine(&miners[0]), "miner listening on");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first = true;
    loop {
        if first && let Some(s) = rpc(rpc_ports[0], "status") {
            let height = s["result"]["height"].as_u64().unwrap();
            assert!(height >= before, "restarted at {height}, below {before}");
            first = false;
        }
        let status: Vec<Value> = rpc_ports
            .iter()
            .filter_map(|port| rpc(*port, "status"))
            .map(|v| v["result"].clone())
            .collect();
        if status.len() == 2
            && status[0]["tip"] == status[1]["tip"]
            && status[0]["height"].as_u64().unwrap() > before
            && status
                .iter()
                .all(|s| s["peers"].as_array().map(Vec::len) == Some(1))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted miner did not rejoin the chain: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Block times the contract cannot hold (under a millisecond, or zero) are refused with a
/// clear error before anything is written.
#[test]
fn network_new_pow_refuses_block_times_under_a_millisecond() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["500us", "0s"] {
        let net = dir.path().join(format!("net-{bad}"));
        let output = Command::new(TALLY)
            .args(["network", "new", "pow", "--dir"])
            .arg(&net)
            .args(["--block-time", bad])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{bad} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("millisecond") || stderr.contains("more than zero"),
            "{bad}: {stderr}"
        );
        assert!(!net.exists(), "{bad}: nothing is written");
    }
}
