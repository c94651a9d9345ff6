//! The LiveConnect relay under abuse: one `tally relay` with its default limits. The
//! honest pair are two wallets in a private room, as in a live transfer: one sends a line,
//! the other receives it. The stranger's expensive request is a broadcast: 16 connections
//! in one topic room, each sending 60 KB lines (each copied to the 15 others) as fast as
//! the relay lets it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tally_relay::client::join;
use tally_relay::{ClientConfig, Incoming, RelayClient, RoomKind};
use tokio::sync::Mutex;

use super::attack::Attack;
use super::{Abuse, START_TIMEOUT, Service, Target};
use crate::error::{BenchError, Context};
use crate::process::{Daemon, Daemons};

/// The honest pair's room.
const HONEST_ROOM: &str = "honest-transfer";

pub(super) struct RelayTarget {
    address: SocketAddr,
    pid: u32,
    log: PathBuf,
    /// The sender and the receiver, joined again after a failure.
    pair: Mutex<Option<(RelayClient, RelayClient)>>,
    sent: std::sync::atomic::AtomicU64,
}

impl RelayTarget {
    /// Starts `tally relay` on a free port, logging at INFO into `work/relay.log`.
    pub(super) async fn start(
        work: &Path,
        tally: &Path,
        daemons: &Daemons,
    ) -> Result<RelayTarget, BenchError> {
        std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
        let log = work.join("relay.log");
        let mut command = std::process::Command::new(tally);
        command
            .args(["relay", "--listen", "127.0.0.1:0"])
            .env("TALLY_LOG", "info");
        let (daemon, line) = Daemon::start(
            command,
            "relay",
            "relay listening on ",
            Some(&log),
            START_TIMEOUT,
        )
        .await?;
        let pid = daemon.pid();
        daemons.adopt(daemon);
        let address = line
            .trim()
            .parse()
            .with_context(|| format!("the relay's address {line:?}"))?;
        Ok(RelayTarget {
            address,
            pid,
            log,
            pair: Mutex::new(None),
            sent: std::sync::atomic::AtomicU64::new(0),
        })
    }

    async fn join_pair(&self) -> Result<(RelayClient, RelayClient), String> {
        let config = ClientConfig {
            read_timeout: Duration::from_secs(10),
            ..ClientConfig::default()
        };
        let token = "honest";
        let sender = join(self.address, RoomKind::Private, HONEST_ROOM, token, &config)
            .await
            .map_err(|e| e.to_string())?;
        let receiver = join(self.address, RoomKind::Private, HONEST_ROOM, token, &config)
            .await
            .map_err(|e| e.to_string())?;
        Ok((sender, receiver))
    }
}

impl Target for RelayTarget {
    fn service(&self) -> Service {
        Service::Relay
    }

    fn honest_does(&self) -> &'static str {
        "sends a line across a private room of a `tally relay` to the other wallet"
    }

    fn pids(&self) -> Vec<u32> {
        vec![self.pid]
    }

    /// 100 lines a second: the relay lets one connection send 200 lines a second.
    fn pace(&self) -> Duration {
        Duration::from_millis(10)
    }

    fn logs(&self) -> Vec<PathBuf> {
        vec![self.log.clone()]
    }

    async fn honest(&self) -> Result<Duration, String> {
        let mut pair = self.pair.lock().await;
        if pair.is_none() {
            *pair = Some(self.join_pair().await?);
        }
        let Some((sender, receiver)) = pair.as_mut() else {
            return Err("no pair".into());
        };
        let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let line = format!("step {n}");
        let started = Instant::now();
        let result = async {
            sender.send(&line).await.map_err(|e| e.to_string())?;
            loop {
                match receiver.recv().await.map_err(|e| e.to_string())? {
                    Some(Incoming::Line(got)) if got == line => return Ok(started.elapsed()),
                    Some(_) => {}
                    None => return Err("the relay closed the room".to_owned()),
                }
            }
        }
        .await;
        if result.is_err() {
            // Leave the room; the next attempt joins a fresh one.
            *pair = None;
        }
        result
    }

    fn attacks(&self, abuse: Abuse) -> Option<Vec<Attack>> {
        let to = self.address;
        let join_line = |room: &str| format!("TOPIC {room} stranger\n").into_bytes();
        let mut broadcast = vec![b'x'; 60_000];
        broadcast.push(b'\n');
        let attack = match abuse {
            Abuse::None => return Some(Vec::new()),
            Abuse::HalfSentHttp => return None,
            Abuse::NeverReads => Attack::Stream {
                to,
                connections: 16,
                prelude: join_line("abuse-never-reads"),
                bytes: broadcast,
                read: false,
            },
            Abuse::ExpensivePipelined => Attack::Stream {
                to,
                connections: 16,
                prelude: join_line("abuse-broadcast"),
                bytes: broadcast,
                read: true,
            },
            Abuse::MalformedFlood => Attack::Stream {
                to,
                connections: 4,
                prelude: join_line("abuse-malformed"),
                bytes: b"\xff\xfe\xfd\n".repeat(1000),
                read: false,
            },
            Abuse::HoldsConnections => Attack::Hold {
                to,
                prelude: join_line("abuse-hold"),
                cheap: b"\n".to_vec(),
            },
        };
        Some(vec![attack])
    }
}
