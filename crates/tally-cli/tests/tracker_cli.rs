//! `tally tracker` as a child process, driven through the client library over real TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tally_core::pow::IntroPowHasher;
use tally_core::{Amount, Mode, NetworkContract, SecretKey, ValidatorInfo};
use tally_tracker::{ClientConfig, ClientError, TrackerClient};

mod common;

use common::Guarded;

fn contract(name: &str) -> NetworkContract {
    NetworkContract {
        name: name.into(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: Amount::from_microcash(10_000_000),
        intro_pow_bits: 8,
        validators: vec![ValidatorInfo {
            key: SecretKey::from_bytes([7; 32]).account(),
            address: "127.0.0.1:2222".into(),
        }],
        tracker: None,
        genesis: vec![],
        pow: None,
        max_clock_skew_ms: None,
    }
}

fn key() -> (SecretKey, u64) {
    let secret = SecretKey::generate();
    let nonce = IntroPowHasher::new(&secret.account())
        .search(0..u64::MAX, 8)
        .unwrap();
    (secret, nonce)
}

/// Starts `tally tracker` and returns it (killed if dropped: a test that panics) with the
/// address from its first stdout line.
fn start(data: &Path, contracts: &[&Path]) -> (Guarded, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tally"));
    cmd.args(["tracker", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data);
    for c in contracts {
        cmd.arg("--contract").arg(c);
    }
    let mut child = Guarded::spawn(
        cmd.env("TALLY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("tracker listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

/// SIGTERM, then the exit status (the tracker must stop cleanly).
fn stop(mut child: Guarded) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap()
}

fn client(addr: SocketAddr) -> TrackerClient {
    TrackerClient::new(
        addr.to_string(),
        ClientConfig {
            answer_timeout: Duration::from_secs(10),
            max_attempts: 3,
            backoff_initial: Duration::from_millis(100),
            ..ClientConfig::default()
        },
    )
}

#[tokio::test]
async fn tally_tracker_registers_lists_joins_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let (main, other) = (contract("main"), contract("other"));
    let main_file = dir.path().join("main.json");
    let other_file = dir.path().join("other.json");
    std::fs::write(&main_file, main.to_pretty_json()).unwrap();
    std::fs::write(&other_file, other.to_pretty_json()).unwrap();
    let data = dir.path().join("data");

    let (child, addr) = start(&data, &[&main_file, &other_file]);
    let c = client(addr);
    let (a, b, x) = (key(), key(), key());
    let node_a: SocketAddr = "127.0.0.1:2301".parse().unwrap();
    let node_b: SocketAddr = "127.0.0.1:2302".parse().unwrap();
    let done = c
        .register(main.id(), node_a, std::slice::from_ref(&a))
        .await
        .unwrap();
    assert_eq!(done.accepted, vec![a.0.account()]);
    c.register(other.id(), node_a, std::slice::from_ref(&x))
        .await
        .unwrap();
    let joined = c
        .join(main.id(), node_b, std::slice::from_ref(&b), None)
        .await
        .unwrap();
    assert_eq!(joined.peers.len(), 1);
    assert_eq!(joined.peers[0].address, node_a);
    assert_eq!(joined.registered.accepted, vec![b.0.account()]);
    let (_, map) = c
        .register_and_list(main.id(), node_a, std::slice::from_ref(&a))
        .await
        .unwrap();
    assert_eq!(map.len(), 2);
    let unknown = contract("unknown").id();
    let err = c.peers(unknown, None).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Refused(ref r) if r == "unknown network"),
        "{err}"
    );
    assert!(
        stop(child).success(),
        "the tracker stops cleanly on SIGTERM"
    );

    // Restarted on the same data: the entries are still there.
    let (child, addr) = start(&data, &[&main_file, &other_file]);
    let c = client(addr);
    let mut listed = c.peers(main.id(), None).await.unwrap();
    listed.sort_by_key(|p| p.address.port());
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].account, a.0.account());
    assert_eq!(listed[1].account, b.0.account());
    assert_eq!(c.peers(other.id(), None).await.unwrap().len(), 1);
    assert!(stop(child).success());
}

#[test]
fn tally_tracker_refuses_to_start_without_a_contract_or_with_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["tracker", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"name\": 5}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["tracker", "--listen", "127.0.0.1:0", "--contract"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.json"));
}
