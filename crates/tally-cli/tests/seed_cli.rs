//! Seeded wallets end to end through the built `tally` binary, against four `tally node`
//! processes: `init` shows the words once and makes account 0; `restore` from those words
//! in another folder (given with `--words`, or on stdin) finds the account with its
//! balance; a passphrase from `--passphrase-env` seals the seed, and `key new` then needs
//! it; a second `init`, and words with a typing slip, are refused without writing anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

use common::{Guarded, TALLY, start_quorum, wallet_json};

/// `tally wallet --wallet W --network C ARGS…`, with `env` set, and `stdin` fed.
fn wallet(
    dir: &Path,
    contract: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    let mut child = Guarded::spawn(
        Command::new(TALLY)
            .args(["wallet", "--wallet"])
            .arg(dir)
            .arg("--network")
            .arg(contract)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output()
}

fn json_of(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn init_then_restore_from_the_printed_words_finds_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let (contract, _nodes) = start_quorum(&net, &["--pow-bits", "4", "--fund", "1"]);

    // init, as a person sees it: the words, numbered, with the warning.
    let shown = dir.path().join("shown");
    let output = wallet(&shown, &contract, &["init"], &[], None);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Write them down"), "{text}");
    assert!(text.contains(" 24. "), "{text}");

    // init with --json: the words and the first account.
    let original = dir.path().join("original");
    let made = wallet_json(&original, &contract, &["init"]);
    let words = made["words"].as_str().unwrap().to_owned();
    let account = made["account"].as_str().unwrap().to_owned();
    assert_eq!(words.split(' ').count(), 24);
    assert_eq!(made["encrypted"], false);
    let keys = wallet_json(&original, &contract, &["keys"]);
    assert_eq!(keys["accounts"][0]["account"], account.as_str());
    assert_eq!(keys["accounts"][0]["label"], "account 0");

    // A second init is refused and leaves the first wallet as it was.
    let again = wallet(&original, &contract, &["init"], &[], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a wallet"));
    let keys = wallet_json(&original, &contract, &["keys"]);
    assert_eq!(keys["accounts"].as_array().unwrap().len(), 1);

    let genesis = net.join("genesis-wallet");
    let sent = wallet_json(&genesis, &contract, &["send", &account, "2.5"]);
    assert_eq!(sent["acknowledged"], 4);

    // Restore with --words in another folder finds the account and its balance.
    let restored = dir.path().join("restored");
    let found = wallet_json(&restored, &contract, &["restore", "--words", &words]);
    assert_eq!(found["accounts"][0]["account"], account.as_str());
    assert_eq!(found["accounts"][0]["index"], 0);
    assert_eq!(found["accounts"][0]["balance"], 2_500_000);
    assert_eq!(found["next_account"], 1);
    let balance = wallet_json(&restored, &contract, &["balance", "account 0"]);
    assert_eq!(balance["balance"], 2_500_000);

    // Restore from stdin with a passphrase: the seed is sealed, and `key new` needs it.
    let sealed = dir.path().join("sealed");
    let env = [("TALLY_TEST_PASSPHRASE", "correct horse")];
    let found = json_of(&wallet(
        &sealed,
        &contract,
        &[
            "--json",
            "restore",
            "--passphrase-env",
            "TALLY_TEST_PASSPHRASE",
        ],
        &env,
        Some(&format!("{words}\n")),
    ));
    assert_eq!(found["accounts"][0]["account"], account.as_str());
    let seed = std::fs::read_to_string(sealed.join("seed.json")).unwrap();
    assert!(seed.contains("sealed"));
    let refused = wallet(&sealed, &contract, &["key", "new"], &[], None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--passphrase-env"));
    let new = json_of(&wallet(
        &sealed,
        &contract,
        &[
            "--json",
            "key",
            "new",
            "--passphrase-env",
            "TALLY_TEST_PASSPHRASE",
        ],
        &env,
        None,
    ));
    assert_eq!(new["label"], "account 1");
    assert_eq!(new["seeded"], true);

    // A typing slip: refused with the word's position, and nothing written.
    let mut slipped: Vec<&str> = words.split(' ').collect();
    slipped[2] = "notaword";
    let typo = dir.path().join("typo");
    let output = wallet(
        &typo,
        &contract,
        &["restore", "--words", &slipped.join(" ")],
        &[],
        None,
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("word 3"));
    assert!(!typo.exists());

    // Key-file wallets work as before: `key new` makes a random key.
    let plain = dir.path().join("plain");
    let new = wallet_json(&plain, &contract, &["key", "new", "--label", "me"]);
    assert_eq!(new["seeded"], false);
    assert_eq!(new["label"], "me");
    assert!(!plain.join("seed.json").exists());
}
