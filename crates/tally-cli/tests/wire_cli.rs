//! The cross-server wire (seed 002) through the built `tally` binary: two networks of four
//! `tally node` processes linked as counterparts, a `tally relay`, a `tally maker` and
//! `tally wallet … wire` processes, with `kill -9` of the maker and of the payer in the
//! middle of wires. What is protected: every wire completes after the crashes (the maker
//! resumes from its journal, the payer with `wire resume`), the payer ends with exactly the
//! amounts on B, the maker with the amounts plus the fee on A, and the maker's control API
//! counts them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{
    Children, TALLY, Watched, create_quorum, free_base_port, rpc, start_validators, wallet_json,
};

/// A quorum network named `name` in `dir/name`, funding one genesis account with 1000
/// cash, its clock skew bound 200 ms; the contract's path.
fn create(dir: &Path, name: &str) -> PathBuf {
    create_quorum(
        &dir.join(name),
        &[
            "--name",
            name,
            "--pow-bits",
            "4",
            "--fund",
            "1",
            "--clock-skew",
            "200ms",
        ],
    )
}

fn link(net: &Path, counterpart: &Path) {
    let output = Command::new(TALLY)
        .args(["network", "link", "--dir"])
        .arg(net)
        .arg("--counterpart")
        .arg(counterpart)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn account(wallet: &Path, contract: &Path) -> String {
    wallet_json(wallet, contract, &["keys"])["accounts"][0]["account"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn balance(wallet: &Path, contract: &Path, account: &str) -> u64 {
    wallet_json(wallet, contract, &["balance", account])["balance"]
        .as_u64()
        .unwrap_or(0)
}

/// Waits (up to 30 s) until the maker's `status` satisfies `done`.
fn maker_until(port: u16, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = rpc(port, "status").map(|answer| answer["result"].clone());
        if let Some(status) = &status
            && done(status)
        {
            return status.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the maker never got there: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn wires_complete_through_kill_9_of_the_maker_and_of_the_payer() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (create(dir.path(), "A"), create(dir.path(), "B"));
    let (net_a, net_b) = (dir.path().join("A"), dir.path().join("B"));
    link(&net_a, &b);
    link(&net_b, &a);
    let mut children = Children(Vec::new());
    start_validators(&mut children, &net_a);
    start_validators(&mut children, &net_b);
    let relay = format!("127.0.0.1:{}", free_base_port(1));
    children.start(&["relay", "--listen", &relay], "relay listening on");
    // The maker trades with B's funded genesis account; the payer is A's.
    let (payer_wallet, maker_wallet) = (net_a.join("genesis-wallet"), net_b.join("genesis-wallet"));
    let payer = account(&payer_wallet, &a);
    let maker = account(&maker_wallet, &b);
    let control_port = free_base_port(1);
    let control = format!("127.0.0.1:{control_port}");
    let pair = format!("{}:{}", a.display(), b.display());
    let maker_args = [
        "maker",
        "--wallet",
        maker_wallet.to_str().unwrap(),
        "--pair",
        &pair,
        "--relay",
        &relay,
        "--fee",
        "1%",
        "--lock-time",
        "10s",
        "--announce-every",
        "1s",
        "--control",
        &control,
    ];
    let maker_process = children.start(&maker_args, "maker control API on");
    let wire = |amount: &str| {
        Watched::start(&[
            "wallet",
            "--wallet",
            payer_wallet.to_str().unwrap(),
            "--network",
            a.to_str().unwrap(),
            "wire",
            amount,
            "--to",
            b.to_str().unwrap(),
            "--relay",
            &relay,
            "--max-fee",
            "1",
        ])
    };

    // 1. The maker dies the moment the payer's lock on A is certified, and comes back.
    let mut first = wire("20");
    first.wait_for("1. quote: maker", Duration::from_secs(30));
    first.wait_for("2. locked 20.2 cash on A", Duration::from_secs(30));
    children.restart(maker_process, &maker_args, "maker control API on");
    first.wait_for("3. the maker locked 20 cash on B", Duration::from_secs(30));
    first.wait_for("4. claimed on B", Duration::from_secs(30));
    let (ok, printed) = first.finish(Duration::from_secs(30));
    assert!(ok, "{printed}");
    assert!(printed.contains("completed"), "{printed}");

    // 2. The payer dies once it has locked; `wire resume` finishes it.
    let mut second = wire("10");
    second.wait_for("2. locked 10.1 cash on A", Duration::from_secs(30));
    second.kill_9();
    let listed = wallet_json(&payer_wallet, &a, &["wire", "list"]);
    let open: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|wire| wire["outcome"].is_null())
        .collect();
    assert_eq!(open.len(), 1, "{listed}");
    let id = open[0]["id"].as_str().unwrap()[..16].to_owned();
    let resumed = wallet_json(&payer_wallet, &a, &["wire", "resume", &id]);
    assert_eq!(resumed["outcome"], "Completed", "{resumed}");
    for certificate in ["lock_a", "lock_b", "claim_b"] {
        assert!(resumed[certificate].is_object(), "{certificate}: {resumed}");
    }

    // The payer has exactly 30 cash on B; the maker 30 + 1% on A; nothing else moved.
    assert_eq!(balance(&payer_wallet, &b, &payer), 30_000_000);
    let status = maker_until(control_port, |s| s["completed"] == 2 && s["open"] == 0);
    assert_eq!(status["fees_earned"], 300_000, "{status}");
    assert_eq!(balance(&payer_wallet, &a, &maker), 30_300_000);
    assert_eq!(
        balance(&payer_wallet, &a, &payer),
        1_000_000_000 - 30_300_000
    );
    assert_eq!(
        balance(&maker_wallet, &b, &maker),
        1_000_000_000 - 30_000_000
    );
    let listed = wallet_json(&payer_wallet, &a, &["wire", "list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|wire| wire["outcome"] == "Completed"),
        "{listed}"
    );
}

/// Bad arguments to `tally maker` and `tally wallet … wire` get a clear error and start
/// nothing: a pair without its second contract, a fee that is no percentage, a wire
/// without its destination.
#[test]
fn bad_wire_and_maker_arguments_are_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let a = create(dir.path(), "A");
    let run = |args: &[&str]| {
        let output = Command::new(TALLY).args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let wallet = dir.path().join("w");
    let (wallet, a_path) = (wallet.to_str().unwrap(), a.to_str().unwrap());
    let said = run(&[
        "maker",
        "--wallet",
        wallet,
        "--pair",
        a_path,
        "--relay",
        "127.0.0.1:1",
    ]);
    assert!(said.contains("A/contract.json:B/contract.json"), "{said}");
    let pair = format!("{a_path}:{a_path}");
    let said = run(&[
        "maker",
        "--wallet",
        wallet,
        "--pair",
        &pair,
        "--relay",
        "127.0.0.1:1",
        "--fee",
        "0.5",
    ]);
    assert!(said.contains("a percentage"), "{said}");
    let said = run(&[
        "wallet",
        "--wallet",
        wallet,
        "--network",
        a_path,
        "wire",
        "5",
    ]);
    assert!(said.contains("--to"), "{said}");
    let said = run(&[
        "wallet",
        "--wallet",
        wallet,
        "--network",
        a_path,
        "wire",
        "5",
        "--to",
        a_path,
        "--relay",
        "127.0.0.1:1",
    ]);
    assert!(said.contains("own network"), "{said}");
}
