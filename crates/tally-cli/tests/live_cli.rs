//! End to end through the built `tally` binary: four `tally node` processes, a `tally
//! relay`, and `tally wallet … live send` / `live receive` as two users would run them in
//! two terminals, on a quorum network and on a proof-of-work one. What is protected: the
//! sender prints each step as it happens and ends delivered; the receiver's `--json`
//! document says it received exactly the amount.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{TALLY, free_base_port, start_pow, start_quorum, wallet_json};

#[test]
fn a_live_transfer_between_two_wallet_processes_delivers_the_amount() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let (contract, children) = start_quorum(&net, &["--pow-bits", "4", "--fund", "1"]);
    transfer_281(dir.path(), &net, &contract, children);
}

#[test]
fn a_live_transfer_on_a_proof_of_work_network_delivers_the_amount() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let (contract, children) = start_pow(&net, &["--fund", "1"]);
    transfer_281(dir.path(), &net, &contract, children);
}

/// Alice (the network's genesis wallet, no coins yet) sends 281 live to a new wallet.
fn transfer_281(
    dir: &std::path::Path,
    net: &std::path::Path,
    contract: &std::path::Path,
    mut children: common::Children,
) {
    let relay = format!("127.0.0.1:{}", free_base_port(1));
    children.start(&["relay", "--listen", &relay], "relay listening on");

    let genesis = net.join("genesis-wallet");
    let me = dir.join("me");
    let connection = dir.join("connection.txt");
    // The genesis wallet holds no coins: the send withdraws 281 from its funded account.
    let account = wallet_json(&genesis, contract, &["keys"])["accounts"][0]["account"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut sender = common::Guarded::spawn(
        Command::new(TALLY)
            .args(["wallet", "--wallet"])
            .arg(&genesis)
            .arg("--network")
            .arg(contract)
            .args(["live", "send", "281", "--relay", &relay, "--from", &account])
            .arg("--out")
            .arg(&connection)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !connection.exists() {
        assert!(Instant::now() < deadline, "no connection file");
        std::thread::sleep(Duration::from_millis(50));
    }
    let received = wallet_json(
        &me,
        contract,
        &["live", "receive", connection.to_str().unwrap()],
    );
    assert_eq!(received["ok"], true, "{received}");
    let outcome = &received["report"]["outcome"]["Received"];
    // Amounts are JSON integers of microcash.
    assert_eq!(outcome["announced"], 281_000_000u64, "{received}");
    assert_eq!(outcome["received"], 281_000_000u64, "{received}");
    assert!(
        outcome["receipt_b64"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );

    let status = sender.wait().unwrap();
    let mut stdout = String::new();
    sender
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    sender
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("  2  Empty_Import_Export"), "{stdout}");
    assert!(stdout.contains(" 24  Encrypted Coins"), "{stdout}");
    assert!(stdout.contains(" 19  Coins confirmed"), "{stdout}");
    assert!(stdout.contains("delivered 281 cash"), "{stdout}");
    let listed = wallet_json(&me, contract, &["live", "list"]);
    assert_eq!(listed["transfers"][0]["side"], "Receiver", "{listed}");
    assert_eq!(listed["transfers"][0]["finished"], true, "{listed}");
}
