#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tally_core::pow::IntroPowHasher;
use tally_core::{Amount, Mode, NetworkContract, SecretKey, ValidatorInfo};
use tally_tracker::{
    ClientConfig, Clock, Limits, Tracker, TrackerClient, TrackerConfig, TrackerHandle,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const BITS: u32 = 8;

pub fn contract(name: &str) -> NetworkContract {
    NetworkContract {
        name: name.into(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: Amount::from_microcash(10_000_000),
        intro_pow_bits: BITS,
        validators: vec![ValidatorInfo {
            key: SecretKey::from_bytes([200; 32]).account(),
            address: "127.0.0.1:2222".into(),
        }],
        tracker: None,
        genesis: vec![],
        pow: None,
        max_clock_skew_ms: None,
    }
}

/// A fresh key with a valid proof of work at `BITS`.
pub fn key() -> (SecretKey, u64) {
    let secret = SecretKey::generate();
    let nonce = IntroPowHasher::new(&secret.account())
        .search(0..u64::MAX, BITS)
        .unwrap();
    (secret, nonce)
}

/// Limits for tests. Timeouts are long (a loaded machine must not trip them); the tests
/// of a timeout set their own.
pub fn limits() -> Limits {
    Limits {
        read_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
        sweep_interval: Duration::from_millis(100),
        requests_per_ip_per_sec: 0,
        max_connections_per_ip: 64,
        verify_threads: 1,
        ..Limits::DEFAULT
    }
}

/// A tracker's configuration: port 0 on 127.0.0.1 (the tracker binds it and reports the
/// port), data in `dir`, the system clock.
pub fn config(dir: &Path, contracts: &[NetworkContract], limits: Limits) -> TrackerConfig {
    let mut config = TrackerConfig::new(dir)
        .listen("127.0.0.1:0".parse().unwrap())
        .limits(limits);
    for c in contracts {
        config = config.contract(c.clone());
    }
    config
}

pub async fn start(dir: &Path, contracts: &[NetworkContract], limits: Limits) -> TrackerHandle {
    start_with_clock(dir, contracts, limits, Clock::system()).await
}

/// A tracker reading the time from `clock` (a `ManualClock`'s, in tests of expiry and
/// rates: the test moves time, so nothing races the wall clock).
pub async fn start_with_clock(
    dir: &Path,
    contracts: &[NetworkContract],
    limits: Limits,
    clock: Clock,
) -> TrackerHandle {
    Tracker::bind(config(dir, contracts, limits).clock(clock))
        .await
        .unwrap()
        .spawn()
}

pub fn client(addr: SocketAddr) -> TrackerClient {
    TrackerClient::new(
        addr.to_string(),
        ClientConfig {
            answer_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_attempts: 2,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(200),
            ..ClientConfig::default()
        },
    )
}

pub fn node_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A raw connection speaking frames, for bad input.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
        }
    }

    /// Connects from a chosen local IP (another "address" on loopback).
    pub async fn connect_from(addr: SocketAddr, ip: [u8; 4]) -> Raw {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((ip, 0))).unwrap();
        Raw {
            stream: socket.connect(addr).await.unwrap(),
        }
    }

    pub async fn send(&mut self, body: &[u8]) {
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// The next answer, or `None` when the tracker closed the connection.
    pub async fn recv(&mut self) -> Option<serde_json::Value> {
        let read = async {
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await.ok()?;
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(serde_json::from_slice(&body).unwrap())
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the tracker neither answered nor closed within 10 s")
    }

    pub async fn ask(&mut self, body: &[u8]) -> serde_json::Value {
        self.send(body).await;
        self.recv().await.expect("connection closed")
    }

    /// Waits until the tracker closes the connection (bounded, to never hang a test),
    /// ignoring what it sends before.
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        let wait = async {
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or(false)
    }
}
