//! Coins end to end through the built `tally` binary: four `tally node` processes, then
//! `coins withdraw`, `export` as a token, `import` into a second wallet (a second import
//! is refused and changes nothing), `detect`, `deposit`, bad input refused, and a seeded
//! wallet's coins found again by `restore`; and the same coins on a proof-of-work
//! network (a tracker and a mining `tally node`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

mod common;

use common::{start_pow, start_quorum, wallet_fails, wallet_json};

fn spendable(wallet: &Path, contract: &Path) -> u64 {
    wallet_json(wallet, contract, &["coins"])["spendable"]
        .as_u64()
        .unwrap()
}

#[test]
fn coins_are_withdrawn_exported_imported_once_and_deposited() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let (contract, _nodes) = start_quorum(
        &net,
        &["--pow-bits", "8", "--fund", "1", "--fund-amount", "1000"],
    );
    let alice = net.join("genesis-wallet");
    let bob = dir.path().join("bob");

    let withdrew = wallet_json(&alice, &contract, &["coins", "withdraw", "281"]);
    assert_eq!(withdrew["cash"], 281);
    assert_eq!(withdrew["coins"].as_array().unwrap().len(), 4);
    assert_eq!(spendable(&alice, &contract), 281);

    let exported = wallet_json(&alice, &contract, &["coins", "export", "30", "--token"]);
    let token = exported["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("tallycoin1"));
    assert_eq!(spendable(&alice, &contract), 251);

    let imported = wallet_json(&bob, &contract, &["coins", "import", &token]);
    assert_eq!(imported["banked"], 30);
    assert_eq!(spendable(&bob, &contract), 30);
    let again = wallet_fails(&bob, &contract, &["coins", "import", &token]);
    assert!(again.contains("imported before"), "{again}");
    assert_eq!(
        spendable(&bob, &contract),
        30,
        "a second import changes nothing"
    );

    let detected = wallet_json(&bob, &contract, &["coins", "detect"]);
    let grades = detected["detections"].as_array().unwrap();
    assert!(!grades.is_empty());
    assert!(
        grades.iter().all(|d| d["grade"] == "Authentic"),
        "{detected}"
    );

    // The exporter learns its coins were taken.
    let found = wallet_json(&alice, &contract, &["coins", "find"]);
    assert_eq!(found["sent"].as_array().unwrap().len(), 2);

    // A truncated coin file is refused.
    let half = dir.path().join("half.coins");
    wallet_json(
        &alice,
        &contract,
        &["coins", "export", "1", "--out", half.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(&half).unwrap();
    std::fs::write(&half, &text[..text.len() / 2]).unwrap();
    wallet_fails(
        &bob,
        &contract,
        &["coins", "import", half.to_str().unwrap()],
    );
    assert_eq!(spendable(&bob, &contract), 30);
    wallet_json(&alice, &contract, &["coins", "reclaim"]);

    // Bad input: a clear error and nothing changes.
    for bad in [
        vec!["coins", "import", "tallycoin1notatoken"],
        vec!["coins", "import", "/no/such/file"],
        vec!["coins", "withdraw", "1.5"],
        vec!["coins", "withdraw", "0"],
        vec!["coins", "export", "100000"],
        vec!["coins", "change", "ffff"],
    ] {
        wallet_fails(&alice, &contract, &bad);
    }
    assert_eq!(spendable(&alice, &contract), 251);

    let deposited = wallet_json(&alice, &contract, &["coins", "deposit", "--all"]);
    assert_eq!(deposited["cash"], 251);
    assert_eq!(spendable(&alice, &contract), 0);
    let balance = wallet_json(&alice, &contract, &["balance"]);
    assert_eq!(
        balance["balance"], 970_000_000,
        "1000 less the 30 bob holds"
    );

    // A seeded wallet's coins derive from its words: restore finds them again.
    let carol = dir.path().join("carol");
    let made = wallet_json(&carol, &contract, &["init"]);
    let words = made["words"].as_str().unwrap().to_owned();
    let account = made["account"].as_str().unwrap().to_owned();
    wallet_json(&alice, &contract, &["send", &account, "100"]);
    wallet_json(&carol, &contract, &["coins", "withdraw", "26"]);
    assert_eq!(spendable(&carol, &contract), 26);
    let again = dir.path().join("carol-again");
    let restored = wallet_json(&again, &contract, &["restore", "--words", &words]);
    assert_eq!(restored["banked"], 26, "{restored}");
    assert_eq!(spendable(&again, &contract), 26);
    let detected = wallet_json(&again, &contract, &["coins", "detect"]);
    let grades = detected["detections"].as_array().unwrap();
    assert!(
        grades.iter().all(|d| d["grade"] == "Authentic"),
        "{detected}"
    );
}

#[test]
fn coins_on_a_proof_of_work_network_are_withdrawn_exported_and_imported_once() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let (contract, _children) = start_pow(&net, &["--fund", "1"]);
    let alice = net.join("genesis-wallet");
    let bob = dir.path().join("bob");
    let funded = wallet_json(&alice, &contract, &["balance"])["balance"]
        .as_u64()
        .unwrap();

    let withdrew = wallet_json(&alice, &contract, &["coins", "withdraw", "31"]);
    assert_eq!(withdrew["cash"], 31, "{withdrew}");
    assert_eq!(spendable(&alice, &contract), 31);
    let after = wallet_json(&alice, &contract, &["balance"])["balance"]
        .as_u64()
        .unwrap();
    assert_eq!(
        funded - after,
        31_000_000,
        "the account paid exactly the coins"
    );

    let detected = wallet_json(&alice, &contract, &["coins", "detect"]);
    let grades = detected["detections"].as_array().unwrap();
    assert_eq!(grades.len(), 3, "{detected}");
    assert!(
        grades.iter().all(|d| d["grade"] == "Authentic"),
        "{detected}"
    );

    let exported = wallet_json(&alice, &contract, &["coins", "export", "6", "--token"]);
    let token = exported["token"].as_str().unwrap().to_owned();
    let imported = wallet_json(&bob, &contract, &["coins", "import", &token]);
    assert_eq!(imported["banked"], 6, "{imported}");
    assert_eq!(spendable(&bob, &contract), 6);
    let again = wallet_fails(&bob, &contract, &["coins", "import", &token]);
    assert!(again.contains("imported before"), "{again}");
    assert_eq!(
        spendable(&bob, &contract),
        6,
        "a second import changes nothing"
    );
    assert_eq!(spendable(&alice, &contract), 25);
}
