//! Replays every committed fuzz input on stable Rust, as an ordinary test: each file under
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes through the target's
//! function once. A crash the fuzzer ever found stays fixed because its input lives in
//! `fuzz/regressions/<target>/`; the corpus keeps the coverage the campaigns reached.
//! One test per target, so a failure names the target (and the panic names the file).

use std::path::{Path, PathBuf};

/// The repository's `fuzz/` folder.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every file under `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs every input of `target` through its function; reports the file that panicked.
fn replay(target: &str) {
    let function = tally_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, function)| *function)
        .unwrap_or_else(|| panic!("no fuzz target {target}"));
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "no committed inputs for {target} under fuzz/corpus or fuzz/regressions"
    );
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| function(&data));
        assert!(
            outcome.is_ok(),
            "{target} panicked on {} ({} bytes)",
            path.display(),
            data.len()
        );
    }
    if target == "wallet_files" {
        tally_fuzz::remove_wallet_scratch();
    }
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*

        /// Every target of the library has its replay test here.
        #[test]
        fn every_target_is_replayed() {
            let replayed = [$(stringify!($target)),*];
            for (name, _) in tally_fuzz::TARGETS {
                assert!(replayed.contains(name), "{name} has no replay test");
            }
        }
    };
}

replay_tests!(
    quorum_packet,
    quorum_frames,
    pow_packet,
    pow_block,
    tracker_request,
    relay_lines,
    network_contract,
    coin_file,
    coin_token,
    live_line,
    live_connection_file,
    live_session,
    wire_quote,
    ledger_records,
    chain_records,
    wallet_files,
);
