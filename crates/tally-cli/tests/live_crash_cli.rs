//! The live transfer survives `kill -9` of either side's process after the coins were sent
//! (message 24), end to end through the built `tally` binary: four `tally node`
//! processes, a `tally relay`, and `tally wallet … live send` / `live receive` child
//! processes, one of them killed with SIGKILL at the moment it shows step 24 and then run
//! again. What is protected: the restarted side finishes from its journal; the receiver
//! ends with exactly the amount in its Bank, the sender with its change, and no cash is
//! created or lost across the two wallets and the account.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{Children, Watched, free_base_port, start_quorum, wallet_json};

/// `tally wallet --wallet W --network C live ARGS…`, its steps watched as they print.
fn live(wallet: &Path, contract: &Path, args: &[&str]) -> Watched {
    let mut all = vec![
        "wallet",
        "--wallet",
        wallet.to_str().unwrap(),
        "--network",
        contract.to_str().unwrap(),
        "live",
    ];
    all.extend_from_slice(args);
    Watched::start(&all)
}

/// A quorum network, a relay, the funded genesis wallet (Alice) and an empty one (Bob).
struct Setup {
    _dir: tempfile::TempDir,
    _children: Children,
    contract: PathBuf,
    relay: String,
    alice: PathBuf,
    bob: PathBuf,
    connection: PathBuf,
    /// Alice's account and what it held at the start.
    account: String,
    funded: u64,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let (contract, mut children) = start_quorum(&net, &["--pow-bits", "4", "--fund", "1"]);
    let relay = format!("127.0.0.1:{}", free_base_port(1));
    children.start(&["relay", "--listen", &relay], "relay listening on");
    let alice = net.join("genesis-wallet");
    let bob = dir.path().join("bob");
    let connection = dir.path().join("connection.txt");
    let account = wallet_json(&alice, &contract, &["keys"])["accounts"][0]["account"]
        .as_str()
        .unwrap()
        .to_owned();
    let funded = cash_of(&wallet_json(&alice, &contract, &["balance"])["balance"]);
    Setup {
        _dir: dir,
        _children: children,
        contract,
        relay,
        alice,
        bob,
        connection,
        account,
        funded,
    }
}

/// Whole cash from a JSON amount (microcash).
fn cash_of(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not an amount: {value}"))
        / 1_000_000
}

impl Setup {
    fn send(&self) -> Watched {
        live(
            &self.alice,
            &self.contract,
            &[
                "send",
                "281",
                "--relay",
                &self.relay,
                "--from",
                &self.account,
                "--out",
                self.connection.to_str().unwrap(),
            ],
        )
    }

    fn receive(&self) -> Watched {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.connection.exists() {
            assert!(Instant::now() < deadline, "no connection file");
            std::thread::sleep(Duration::from_millis(50));
        }
        live(
            &self.bob,
            &self.contract,
            &["receive", self.connection.to_str().unwrap()],
        )
    }

    /// Every coin of `wallet` in the Bank, and in any other folder, in whole cash.
    fn coins(&self, wallet: &Path) -> (u64, Value) {
        let coins = wallet_json(wallet, &self.contract, &["coins"]);
        (coins["spendable"].as_u64().unwrap(), coins)
    }

    /// After the transfer: Bob's Bank holds exactly 281, Alice's account plus her coins
    /// hold the rest, no coin is left in Limbo on either side, and both journals say done.
    fn check_conserved(&self) {
        let (bob_bank, bob_coins) = self.coins(&self.bob);
        assert_eq!(bob_bank, 281, "{bob_coins}");
        let (alice_bank, alice_coins) = self.coins(&self.alice);
        for coins in [&alice_coins, &bob_coins] {
            assert!(
                coins["coins"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|c| c["folder"] != "Limbo"),
                "{coins}"
            );
        }
        let left = cash_of(&wallet_json(&self.alice, &self.contract, &["balance"])["balance"]);
        assert_eq!(
            left + alice_bank + bob_bank,
            self.funded,
            "account {left} + Alice's coins {alice_bank} + Bob's {bob_bank}: {alice_coins}"
        );
        for wallet in [&self.alice, &self.bob] {
            let listed = wallet_json(wallet, &self.contract, &["live", "list"]);
            let transfers = listed["transfers"].as_array().unwrap();
            assert_eq!(transfers.len(), 1, "{listed}");
            assert_eq!(transfers[0]["finished"], true, "{listed}");
        }
    }
}

#[test]
fn a_receiver_killed_9_after_the_coins_arrive_finishes_when_run_again() {
    let setup = setup();
    let mut sender = setup.send();
    let mut receiver = setup.receive();
    receiver.wait_for(" 24  Encrypted Coins", Duration::from_secs(30));
    receiver.kill_9();

    // The same command again resumes the journaled transfer.
    let receiver = setup.receive();
    let (ok, printed) = receiver.finish(Duration::from_secs(60));
    assert!(ok, "{printed}");
    assert!(
        !printed.contains("Empty_Import_Export"),
        "resumed from the journal, not started over: {printed}"
    );
    assert!(
        printed.contains("received 281 of the 281 cash"),
        "{printed}"
    );
    sender.wait_for("delivered 281 cash", Duration::from_secs(60));
    let (ok, printed) = sender.finish(Duration::from_secs(30));
    assert!(ok, "{printed}");
    setup.check_conserved();
}

#[test]
fn a_sender_killed_9_after_sending_the_coins_learns_the_receiver_powned() {
    let setup = setup();
    let mut sender = setup.send();
    let receiver = setup.receive();
    sender.wait_for(" 24  Encrypted Coins", Duration::from_secs(30));
    sender.kill_9();

    let (ok, printed) = receiver.finish(Duration::from_secs(90));
    assert!(ok, "{printed}");
    assert!(
        printed.contains("received 281 of the 281 cash"),
        "{printed}"
    );
    // Run again, the sender resumes its journaled transfer and learns from the receipt or
    // the validators that every coin was powned: nothing is taken back.
    let sender = setup.send();
    let (ok, printed) = sender.finish(Duration::from_secs(60));
    assert!(ok, "{printed}");
    assert!(printed.contains("delivered 281 cash"), "{printed}");
    setup.check_conserved();
}
