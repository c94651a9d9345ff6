//! The clients a wallet uses build without their servers' dependencies: the tracker client
//! without redb and rayon, the relay client without socket tuning and the server's crates.
//! Checked on the dependency graph `cargo tree` resolves for one package, where features are
//! not unified with the server's (a workspace build turns the servers on for the CLI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// The names of the packages in `package`'s normal dependency graph, down to `depth`.
fn dependencies(package: &str, depth: Option<u32>, extra: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--offline", "--edges", "normal", "--prefix", "none"])
        .args(["--format", "{p}", "--package", package])
        .args(extra);
    if let Some(depth) = depth {
        command.args(["--depth", &depth.to_string()]);
    }
    let output = command.output().expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_wallet_builds_without_the_tracker_server() {
    let graph = dependencies("tally-wallet", None, &[]);
    assert!(
        graph.iter().any(|name| name == "tally-tracker"),
        "{graph:?}"
    );
    for server_only in ["redb", "rayon"] {
        assert!(
            !graph.iter().any(|name| name == server_only),
            "tally-wallet depends on {server_only}, a tracker server dependency"
        );
    }
}

#[test]
fn the_relay_client_builds_without_the_relay_server() {
    // tokio itself uses socket2, so only the relay's own dependencies are checked.
    let direct = dependencies("tally-relay", Some(1), &["--no-default-features"]);
    assert!(direct.iter().any(|name| name == "tokio"), "{direct:?}");
    for server_only in ["socket2", "tokio-util", "parking_lot", "sha2", "subtle"] {
        assert!(
            !direct.iter().any(|name| name == server_only),
            "the relay client depends on {server_only}, a relay server dependency"
        );
    }
}
