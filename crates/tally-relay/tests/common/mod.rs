//! Helpers shared by the relay's integration tests: a relay on port 0 with short limits,
//! joined clients, raw connections for bytes the client refuses to send, and waits that
//! poll the relay's counters (never timed assertions).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tally_relay::client::{self, ClientConfig, Incoming, RelayClient};
use tally_relay::{ClientError, Relay, RelayConfig, RelayHandle, RoomKind};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Hang guard only: no test asserts how long anything takes.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub fn config() -> RelayConfig {
    RelayConfig {
        close_linger: Duration::from_millis(500),
        ..RelayConfig::listening_on("127.0.0.1:0".parse().unwrap())
    }
}

pub async fn start(config: RelayConfig) -> RelayHandle {
    Relay::bind(config).await.unwrap().spawn()
}

pub fn client_config() -> ClientConfig {
    ClientConfig {
        read_timeout: PATIENCE,
        ..ClientConfig::default()
    }
}

pub async fn join(relay: &RelayHandle, room: &str, token: &str) -> RelayClient {
    client::join(
        relay.local_addr(),
        RoomKind::Private,
        room,
        token,
        &client_config(),
    )
    .await
    .unwrap()
}

pub async fn join_topic(relay: &RelayHandle, room: &str, token: &str) -> RelayClient {
    client::join(
        relay.local_addr(),
        RoomKind::Topic,
        room,
        token,
        &client_config(),
    )
    .await
    .unwrap()
}

pub async fn refused(relay: &RelayHandle, kind: RoomKind, room: &str, token: &str) -> String {
    match client::join(relay.local_addr(), kind, room, token, &client_config()).await {
        Err(ClientError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

pub async fn next(client: &mut RelayClient) -> Incoming {
    client.recv().await.unwrap().expect("connection closed")
}

pub async fn next_line(client: &mut RelayClient) -> String {
    match next(client).await {
        Incoming::Line(line) => line,
        other => panic!("expected a member line, got {other:?}"),
    }
}

/// A raw connection, for bytes the client library would refuse to send.
pub struct Raw {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        Raw {
            reader: BufReader::new(read),
            writer,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// The next line, or `None` at the end of the stream (or a reset).
    pub async fn next(&mut self) -> Option<String> {
        let mut line = Vec::new();
        let read = tokio::time::timeout(PATIENCE, self.reader.read_until(b'\n', &mut line))
            .await
            .expect("no line from the relay");
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                assert_eq!(line.pop(), Some(b'\n'), "line without newline: {line:?}");
                Some(String::from_utf8(line).unwrap())
            }
        }
    }

    /// Everything the relay still sends until it closes the connection (what arrived
    /// before a reset, if it resets).
    pub async fn rest(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, self.reader.read_to_end(&mut rest))
            .await
            .expect("the relay never closed the connection");
        rest
    }

    pub async fn line(&mut self) -> String {
        self.next().await.expect("connection closed")
    }

    /// Asserts the relay closes the connection after `@error <code>`.
    pub async fn expect_closed_with(&mut self, code: &str) {
        let line = self.line().await;
        assert!(
            line.starts_with(&format!("@error {code}")),
            "expected @error {code}, got {line:?}"
        );
        assert_eq!(self.next().await, None, "connection should be closed");
    }
}

pub async fn raw_join(relay: &RelayHandle, verb: &str, room: &str, token: &str) -> (Raw, String) {
    let mut raw = Raw::connect(relay.local_addr()).await;
    raw.send(format!("{verb} {room} {token}\n").as_bytes())
        .await;
    let ok = raw.line().await;
    assert!(ok.starts_with("@ok "), "{ok}");
    (raw, ok)
}

/// Waits until the relay's counters satisfy `done` (polling, not timing).
pub async fn until(relay: &RelayHandle, done: impl Fn(&tally_relay::RelayStats) -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !done(&relay.stats()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("relay never reached the expected state");
}

/// The member id an `@ok` line gives.
pub fn member_id(ok: &str) -> u64 {
    ok.split(' ').nth(3).unwrap().parse().unwrap()
}
