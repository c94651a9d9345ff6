//! What the end-to-end tests of the `tally` binary share: child processes that die with
//! the test, free ports, the control API, wallet commands with `--json`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const TALLY: &str = env!("CARGO_BIN_EXE_tally");

/// A child process that dies with its test: dropping the guard (as a test that panics
/// does while unwinding) kills it with SIGKILL and reaps it, so no `tally` process outlives
/// the test that started it. Every child a test of this crate spawns is owned by one from
/// the moment it runs.
pub struct Guarded(Option<Child>);

impl Guarded {
    /// Spawns `command`, owned by a guard at once.
    pub fn spawn(command: &mut Command) -> Guarded {
        Guarded(Some(command.spawn().expect("the tally binary runs")))
    }

    /// SIGKILL, as a crash or a power cut would stop it (no clean-up runs), then reaped;
    /// nothing if it has exited already.
    pub fn kill_9(&mut self) {
        let child = &mut **self;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
        }
        child.wait().unwrap();
    }

    /// Waits for it to exit by itself and collects its output, as
    /// [`Child::wait_with_output`].
    pub fn wait_with_output(mut self) -> std::process::Output {
        let child = self.0.take().expect("not yet waited for");
        child.wait_with_output().unwrap()
    }
}

impl std::ops::Deref for Guarded {
    type Target = Child;

    fn deref(&self) -> &Child {
        self.0.as_ref().expect("not yet waited for")
    }
}

impl std::ops::DerefMut for Guarded {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("not yet waited for")
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `tally ARGS` (stdout piped, stderr dropped), owned by a guard; its first line,
/// where a daemon says it listens, must start with `announce`.
pub fn start_daemon(args: &[&str], announce: &str) -> Guarded {
    let mut child = Guarded::spawn(
        Command::new(TALLY)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with(announce), "{args:?}: {line}");
    child
}

/// Child processes killed when the test ends, however it ends (each is [`Guarded`]).
pub struct Children(pub Vec<Guarded>);

impl Children {
    /// Starts `tally ARGS` as [`start_daemon`] does and keeps it to be killed with the
    /// others; its index in `self.0`.
    pub fn start(&mut self, args: &[&str], announce: &str) -> usize {
        self.0.push(start_daemon(args, announce));
        self.0.len() - 1
    }

    /// SIGKILLs child `index` (if it still runs) and starts `tally ARGS` in its place.
    pub fn restart(&mut self, index: usize, args: &[&str], announce: &str) {
        self.0[index].kill_9();
        self.0[index] = start_daemon(args, announce);
    }

    /// Starts `tally tracker` at `address` for `contract`, keeping its data in `data`.
    pub fn start_tracker(&mut self, address: &str, contract: &Path, data: &Path) {
        self.start(
            &[
                "tracker",
                "--listen",
                address,
                "--contract",
                contract.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ],
            "tracker listening on",
        );
    }
}

/// The first port of `count` consecutive loopback ports that were free a moment ago,
/// below the kernel's range for outgoing connections (32768 and up on Linux), so that the
/// clients of a test running beside this one cannot take them as source ports before the
/// daemons bind them. Tests in one process take turns through the range; processes start
/// at different places in it.
pub fn free_base_port(count: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let step = NEXT.fetch_add(u32::from(count) + 1, Ordering::Relaxed);
        let base = LOW + (start + step) % (SPAN - u32::from(count));
        let Ok(base) = u16::try_from(base) else {
            continue;
        };
        if (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}

/// One JSON-RPC call to a control API over plain HTTP/1.1; `None` if it did not answer.
pub fn rpc(port: u16, method: &str) -> Option<Value> {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}"}}"#);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let json = answer.split("\r\n\r\n").nth(1)?;
    serde_json::from_str(json).ok()
}

/// `tally wallet --wallet W --network C --json ARGS…`, which must succeed and print one
/// JSON document.
pub fn wallet_json(wallet: &Path, contract: &Path, args: &[&str]) -> Value {
    let output = Command::new(TALLY)
        .args(["wallet", "--wallet"])
        .arg(wallet)
        .arg("--network")
        .arg(contract)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tally wallet {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// `tally wallet … ARGS`, which must fail with a one-line reason; its stderr.
pub fn wallet_fails(wallet: &Path, contract: &Path, args: &[&str]) -> String {
    let output = Command::new(TALLY)
        .args(["wallet", "--wallet"])
        .arg(wallet)
        .arg("--network")
        .arg(contract)
        .args(args)
        .output()
        .unwrap();
    assert!(!output.status.success(), "{args:?} must fail");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.contains("error:"), "{stderr}");
    stderr
}

/// `tally network new quorum` in `net` (four validators, `extra` arguments such as
/// `--pow-bits`) on free ports; the contract's path. Nothing runs yet.
pub fn create_quorum(net: &Path, extra: &[&str]) -> std::path::PathBuf {
    let base = free_base_port(8).to_string();
    let output = Command::new(TALLY)
        .args(["network", "new", "quorum", "--dir"])
        .arg(net)
        .args(["--base-port", &base])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    net.join("contract.json")
}

/// The four `tally node` processes of the network in `net`, kept in `children`.
pub fn start_validators(children: &mut Children, net: &Path) {
    for i in 0..4 {
        let folder = net.join(format!("validator-{i}"));
        children.start(
            &["node", "--dir", folder.to_str().unwrap()],
            "validator listening on",
        );
    }
}

/// [`create_quorum`], then its four `tally node` processes; the contract's path and the
/// children, killed when the test ends.
pub fn start_quorum(net: &Path, extra: &[&str]) -> (std::path::PathBuf, Children) {
    let contract = create_quorum(net, extra);
    let mut nodes = Children(Vec::new());
    start_validators(&mut nodes, net);
    (contract, nodes)
}

/// `tally network new pow` in `net` (one miner, a tracker, blocks every ~200 ms, `extra`
/// arguments such as `--fund`), then the tracker and the mining `tally node`; the
/// contract's path and the children, killed when the test ends.
pub fn start_pow(net: &Path, extra: &[&str]) -> (std::path::PathBuf, Children) {
    let base = free_base_port(3);
    let tracker = format!("127.0.0.1:{}", base + 2);
    let output = Command::new(TALLY)
        .args(["network", "new", "pow", "--dir"])
        .arg(net)
        .args([
            "--miners",
            "1",
            "--block-time",
            "200ms",
            "--initial-bits",
            "10",
        ])
        .args(["--pow-bits", "4", "--tracker", &tracker])
        .args(["--base-port", &base.to_string()])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let contract = net.join("contract.json");
    let mut children = Children(Vec::new());
    children.start_tracker(&tracker, &contract, &net.join("tracker-data"));
    let miner = net.join("miner-0");
    children.start(
        &[
            "node",
            "--mine",
            "--threads",
            "1",
            "--dir",
            miner.to_str().unwrap(),
        ],
        "miner listening on",
    );
    // The miner registers with the tracker on its own schedule: wait until a wallet finds
    // it there, with a block mined.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let output = Command::new(TALLY)
            .args(["wallet", "--wallet"])
            .arg(net.join("genesis-wallet"))
            .arg("--network")
            .arg(&contract)
            .args(["--json", "peers"])
            .output()
            .unwrap();
        let found = output.status.success()
            && serde_json::from_slice::<Value>(&output.stdout).is_ok_and(|peers| {
                peers["miners"].as_array().is_some_and(|miners| {
                    miners
                        .iter()
                        .any(|m| m["height"].as_u64().is_some_and(|h| h > 0))
                })
            });
        if found {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the miner never showed up at the tracker: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (contract, children)
}

/// A `tally` process whose stdout lines arrive on a channel as it prints them (the CLI
/// shows each step of a protocol as it happens, one line each); killed if dropped while it
/// runs (a test that panics).
pub struct Watched {
    child: Guarded,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Watched {
    /// Starts `tally ARGS` (stderr dropped).
    pub fn start(args: &[&str]) -> Watched {
        let mut child = Guarded::spawn(
            Command::new(TALLY)
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watched {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until a printed line contains `needle`.
    pub fn wait_for(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} in time; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// SIGKILL, as a crash or a power cut would stop it: no clean-up runs.
    pub fn kill_9(mut self) {
        self.child.kill_9();
    }

    /// Waits for the process to exit by itself; whether it succeeded and what it printed.
    pub fn finish(mut self, within: Duration) -> (bool, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                panic!("still running; printed:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader thread ends at end of file, once the process is gone.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status.success(), self.seen.join("\n"))
    }
}
