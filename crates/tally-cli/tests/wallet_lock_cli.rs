//! Two `tally wallet` processes sharing one wallet folder pay from the same account at the
//! same time, each to its own recipient, through four `tally node` processes. What is
//! protected: the account is never frozen (no lock slot gets two different orders), every
//! payment that reported success is applied, and the account's sequence counts exactly
//! those; the wallet's per-key lock makes the two processes take turns. Two copies of one
//! wallet (separate folders, the same keys) paying at once never freeze it either.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{TALLY, start_quorum, wallet_json};

/// Payments each process makes.
const EACH: usize = 25;

/// Two fresh accounts of the wallet `others`: recipients.
fn fresh_accounts(others: &Path, contract: &Path) -> Vec<String> {
    (0..2)
        .map(|_| {
            wallet_json(others, contract, &["key", "new"])["account"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn balance(wallet: &Path, contract: &Path, account: &str) -> serde_json::Value {
    wallet_json(wallet, contract, &["balance", account])
}

#[test]
fn two_processes_of_one_wallet_paying_from_one_account_never_freeze_it() {
    let race = Race::start();
    let folders = [race.wallet.clone(), race.wallet.clone()];
    let results = race.pay_at_once(&folders, EACH);
    let paid: Vec<usize> = results.iter().map(|(ok, _)| *ok).collect();
    for failure in results.iter().flat_map(|(_, failed)| failed) {
        eprintln!("{failure}");
    }
    eprintln!("payments that succeeded: {paid:?} of {EACH} each");
    assert_eq!(
        paid.iter().sum::<usize>(),
        2 * EACH,
        "every payment goes through, one process at a time"
    );
    race.assert_paid_exactly(&paid);
    // The slot after the last payment is free: one more payment goes through.
    race.one_more_from(&race.wallet);
}

/// A quorum network of four `tally node` processes, its genesis wallet, the account that
/// pays and its balance before, and two fresh recipients.
struct Race {
    dir: tempfile::TempDir,
    contract: PathBuf,
    _nodes: common::Children,
    wallet: PathBuf,
    payer: String,
    before: u64,
    recipients: Vec<String>,
}

impl Race {
    fn start() -> Race {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net");
        let (contract, nodes) = start_quorum(&net, &["--pow-bits", "4", "--fund", "1"]);
        let wallet = net.join("genesis-wallet");
        let payer = wallet_json(&wallet, &contract, &["keys"])["accounts"][0]["account"]
            .as_str()
            .unwrap()
            .to_owned();
        let before = balance(&wallet, &contract, &payer)["balance"]
            .as_u64()
            .unwrap();
        let recipients = fresh_accounts(&dir.path().join("others"), &contract);
        Race {
            dir,
            contract,
            _nodes: nodes,
            wallet,
            payer,
            before,
            recipients,
        }
    }

    /// `count` payments from each of `folders` (genesis-0) to its own recipient, the
    /// folders' processes started together; per folder, how many succeeded and the error
    /// of each that did not.
    fn pay_at_once(&self, folders: &[PathBuf; 2], count: usize) -> Vec<(usize, Vec<String>)> {
        let workers: Vec<_> = folders
            .iter()
            .zip(&self.recipients)
            .map(|(wallet, recipient)| {
                let (wallet, contract, recipient) =
                    (wallet.clone(), self.contract.clone(), recipient.clone());
                std::thread::spawn(move || pay_from_copy(wallet, contract, recipient, count))
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    }

    /// The account paid exactly the payments that succeeded (`paid`, per recipient), one
    /// order each, and every validator agrees.
    fn assert_paid_exactly(&self, paid: &[usize]) {
        let total: usize = paid.iter().sum();
        let after = balance(&self.wallet, &self.contract, &self.payer);
        assert_eq!(after["sequence"], total, "one order per success: {after}");
        assert_eq!(after["agree"], 4, "every validator agrees: {after}");
        assert_eq!(
            self.before - after["balance"].as_u64().unwrap(),
            total as u64 * 1_000_000,
            "the account paid exactly the payments that succeeded"
        );
        for (recipient, count) in self.recipients.iter().zip(paid) {
            let got = balance(&self.wallet, &self.contract, recipient);
            assert_eq!(got["balance"], *count as u64 * 1_000_000, "{got}");
        }
    }

    /// One more payment from `folder` goes through: nothing is left in flight there and
    /// the account's next slot is free.
    fn one_more_from(&self, folder: &Path) {
        let more = wallet_json(
            folder,
            &self.contract,
            &["send", &self.recipients[0], "1", "--from", "genesis-0"],
        );
        assert!(more["certificate"].is_string(), "{more}");
    }
}

/// Payments each copy makes in the two-copies test.
const EACH_COPY: usize = 100;

/// `count` payments of 1 cash from genesis-0 of the wallet folder `wallet` to
/// `recipient`, one `tally wallet send` process after another; how many succeeded, and the
/// error of each that did not.
fn pay_from_copy(
    wallet: PathBuf,
    contract: PathBuf,
    recipient: String,
    count: usize,
) -> (usize, Vec<String>) {
    let mut ok = 0;
    let mut failed = Vec::new();
    for _ in 0..count {
        let output = Command::new(TALLY)
            .args(["wallet", "--wallet"])
            .arg(&wallet)
            .arg("--network")
            .arg(&contract)
            .args(["send", &recipient, "1", "--from", "genesis-0"])
            .output()
            .unwrap();
        if output.status.success() {
            ok += 1;
        } else {
            failed.push(String::from_utf8_lossy(&output.stderr).into_owned());
        }
    }
    (ok, failed)
}

/// Copies a wallet folder as a person restoring it on a second device would have it: the
/// same keys, its own journal and its own locks.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Two copies of one wallet (two folders with the same keys, so no shared lock) started
/// together, each paying its own recipient 100 times from the same account. What is
/// protected (DESIGN §3, prevention): the account never freezes. Both copies ask the same
/// validator first, so the one that loses a slot learns it before any other validator saw
/// its order, and finishes the winner's order instead. Every payment that reported success
/// is applied once and the account's sequence counts exactly those; a payment that gave
/// up (the other copy kept winning) paid nothing, and the test reports how many did.
#[test]
fn two_copies_of_one_wallet_paying_at_once_never_freeze_the_account() {
    let race = Race::start();
    let copy = race.dir.path().join("second-device");
    copy_dir(&race.wallet, &copy);
    let results = race.pay_at_once(&[race.wallet.clone(), copy.clone()], EACH_COPY);
    let paid: Vec<usize> = results.iter().map(|(ok, _)| *ok).collect();
    let failures: Vec<&String> = results.iter().flat_map(|(_, failed)| failed).collect();
    eprintln!(
        "two copies, {EACH_COPY} payments each: {paid:?} succeeded, {} gave up",
        failures.len()
    );
    for failure in &failures {
        eprintln!("gave up: {failure}");
    }
    for failure in &failures {
        assert!(
            !failure.contains("frozen"),
            "no slot freezes between two honest copies: {failure}"
        );
        assert!(
            failure.contains("another copy"),
            "a payment gives up only because the other copy kept the slot: {failure}"
        );
    }
    let total: usize = paid.iter().sum();
    assert!(
        total >= EACH_COPY,
        "most payments go through: {paid:?}, failures {failures:?}"
    );
    race.assert_paid_exactly(&paid);
    for folder in [&race.wallet, &copy] {
        race.one_more_from(folder);
    }
}

/// `tally wallet … coins ARGS` as a child process; whether it succeeded.
fn coins(wallet: &Path, contract: &Path, args: &[&str]) -> bool {
    let output = Command::new(TALLY)
        .args(["wallet", "--wallet"])
        .arg(wallet)
        .arg("--network")
        .arg(contract)
        .arg("coins")
        .args(args)
        .output()
        .unwrap();
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
    output.status.success()
}

/// Two processes of one wallet deposit every coin at the same time, each into its own
/// account. What is protected: each coin is deposited once, by one of them (the coin lock
/// makes them take turns), so the two accounts together receive exactly what the coins
/// held and no coin's slot is split between two deposits.
#[test]
fn two_processes_of_one_wallet_depositing_the_same_coins_never_split_one() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let (contract, _nodes) = start_quorum(&net, &["--pow-bits", "4", "--fund", "1"]);
    let wallet = net.join("genesis-wallet");
    let to = fresh_accounts(&dir.path().join("others"), &contract);
    for _ in 0..4 {
        assert!(coins(
            &wallet,
            &contract,
            &["withdraw", "31", "--from", "genesis-0"]
        ));
    }
    let workers: Vec<_> = to
        .iter()
        .map(|account| {
            let (wallet, contract, account) = (wallet.clone(), contract.clone(), account.clone());
            std::thread::spawn(move || {
                coins(&wallet, &contract, &["deposit", "--all", "--to", &account])
            })
        })
        .collect();
    let done: Vec<bool> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(
        done,
        [true, true],
        "both deposits finish (one may find nothing left)"
    );
    let received: u64 = to
        .iter()
        .map(|account| {
            balance(&wallet, &contract, account)["balance"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(received, 124_000_000, "every coin deposited exactly once");
    let left = wallet_json(&wallet, &contract, &["coins"]);
    assert_eq!(left["spendable"], 0, "{left}");
}
