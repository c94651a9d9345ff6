//! End to end: the built `tally` binary runs a relay and two `tally chat` clients as child
//! processes, which exchange lines through it the way a person would by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

/// Hang guard only: nothing asserts how long anything takes.
const PATIENCE: Duration = Duration::from_secs(30);

fn tally() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tally"));
    command.env("TALLY_LOG", "warn");
    command
}

/// A child process whose stdout lines arrive on a channel.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Proc {
    fn spawn(mut command: Command) -> Proc {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tally binary runs");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            stdin,
            lines,
        }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("expected a line on stdout")
    }

    /// Waits for stdout to end (the process closed it or exited).
    fn expect_stdout_end(&self) {
        match self.lines.recv_timeout(PATIENCE) {
            Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => panic!("stdout never ended"),
            Ok(line) => panic!("unexpected line {line:?}"),
        }
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        for _ in 0..(PATIENCE.as_millis() / 20) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("process did not exit");
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        }
        text
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_relay(extra: &[&str]) -> (Proc, String) {
    let mut command = tally();
    command
        .args(["relay", "--listen", "127.0.0.1:0"])
        .args(extra);
    let relay = Proc::spawn(command);
    let first = relay.line();
    let addr = first
        .strip_prefix("relay listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    (relay, addr)
}

fn chat(addr: &str, room: &str, token: &str, extra: &[&str]) -> Proc {
    let mut command = tally();
    command.args(["chat", addr, room, token]).args(extra);
    Proc::spawn(command)
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Two people chat through `tally relay` with `tally chat`: they see each other arrive,
/// their `#` become their address, and one leaving is seen by the other; the relay stops
/// cleanly on SIGTERM.
#[test]
fn tally_chat_end_to_end_through_tally_relay() {
    let (mut relay, addr) = start_relay(&[]);

    let mut alice = chat(&addr, "transfer-7", "s3cret", &[]);
    let ok = alice.line();
    assert!(ok.starts_with("@ok private transfer-7 "), "{ok}");
    assert!(ok.contains(" 127.0.0.1 1/2 "), "{ok}");
    let alice_id = ok.split(' ').nth(3).unwrap().to_owned();

    let mut bob = chat(&addr, "transfer-7", "s3cret", &[]);
    let ok = bob.line();
    assert!(ok.contains(" 127.0.0.1 2/2 "), "{ok}");
    let bob_id = ok.split(' ').nth(3).unwrap().to_owned();
    assert_ne!(bob_id, alice_id);
    assert_eq!(bob.line(), format!("@here {alice_id} 127.0.0.1"));
    assert_eq!(alice.line(), format!("@arrived {bob_id} 127.0.0.1"));

    alice.say("<# Heartbeat>");
    assert_eq!(bob.line(), "<127.0.0.1 Heartbeat>");
    bob.say(r##"{"from": "#", "Message Number": 1, "Message_Details": "dfsdfs"}"##);
    assert_eq!(
        alice.line(),
        r#"{"from": "127.0.0.1", "Message Number": 1, "Message_Details": "dfsdfs"}"#
    );
    alice.say("no hash, # and ## here");
    assert_eq!(bob.line(), "no hash, 127.0.0.1 and 127.0.0.1127.0.0.1 here");

    // Bob's stdin ends: he leaves, exits successfully, and Alice is told.
    drop(bob.stdin.take());
    assert!(bob.wait().success());
    assert_eq!(alice.line(), format!("@left {bob_id} 127.0.0.1 quit"));

    // A stranger with the wrong token is refused and exits with an error.
    let mut mallory = chat(&addr, "transfer-7", "guess", &[]);
    assert!(!mallory.wait().success());
    assert!(mallory.stderr().contains("wrong-token"));

    // The relay stops cleanly on SIGTERM, telling Alice, whose chat then ends with an error.
    send_signal(&relay.child, "-TERM");
    assert!(relay.wait().success());
    assert!(alice.line().starts_with("@error shutdown "));
    alice.expect_stdout_end();
    assert!(!alice.wait().success());
}

/// `tally chat --topic` joins a topic room where several members hear each line.
#[test]
fn tally_chat_topic_room() {
    let (_relay, addr) = start_relay(&["--topic-cap", "3"]);
    let mut a = chat(&addr, "usd.a.b", "public", &["--topic"]);
    assert!(a.line().starts_with("@ok topic usd.a.b "));
    let b = chat(&addr, "usd.a.b", "public", &["--topic"]);
    assert!(b.line().starts_with("@ok topic usd.a.b "));
    let _ = b.line(); // @here a
    let c = chat(&addr, "usd.a.b", "public", &["--topic"]);
    assert!(c.line().contains(" 3/3 "));
    let _ = (c.line(), c.line()); // @here a, @here b
    let _ = (a.line(), a.line(), b.line()); // arrivals
    a.say("<# quote 1.05>");
    assert_eq!(b.line(), "<127.0.0.1 quote 1.05>");
    assert_eq!(c.line(), "<127.0.0.1 quote 1.05>");
}
