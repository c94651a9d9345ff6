//! The relay under measurement (a `tally relay` child process) and the bench's members.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tally_relay::Notice;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::settings::Settings;
use crate::error::{BenchError, Context, fail};
use crate::process::Daemon;
use crate::procfs::ProcError;

/// How long a relay child may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the bench waits for a welcome or a line.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// A relay child process for one bench run: rate limits off, connection limits raised, the
/// threads and busy polling of the settings.
pub(super) struct ChildRelay {
    daemon: Daemon,
    pub addr: SocketAddr,
    pub pid: u32,
}

impl ChildRelay {
    pub(super) async fn start(settings: &Settings, tally: &Path) -> Result<ChildRelay, BenchError> {
        let mut command = std::process::Command::new(tally);
        command
            .args([
                "relay",
                "--listen",
                "127.0.0.1:0",
                "--lines-per-sec",
                "0",
                "--bytes-per-sec",
                "0",
                "--max-connections",
                "30000",
                "--max-connections-per-ip",
                "30000",
                "--idle-timeout",
                "10m",
                "--backlog",
                "4096",
            ])
            .args(["--threads", &settings.relay_threads.to_string()])
            .args([
                "--busy-poll",
                &format!("{}us", settings.relay_busy_poll.as_micros()),
            ]);
        let (daemon, line) = Daemon::start(
            command,
            "relay child",
            "relay listening on ",
            None,
            START_TIMEOUT,
        )
        .await?;
        let addr = line
            .trim()
            .parse()
            .with_context(|| format!("the relay child's address {line:?}"))?;
        let pid = daemon.pid();
        Ok(ChildRelay { daemon, addr, pid })
    }

    /// Resident memory of the relay process, in bytes.
    pub(super) fn rss(&self) -> Result<u64, ProcError> {
        Ok(self.daemon.memory()?.resident_bytes())
    }

    /// Kills the relay and reaps it.
    pub(super) fn stop(self) {
        drop(self.daemon);
    }
}

/// Connects and joins `room`, returning the stream once the relay's welcome lines
/// (`@ok` and one `@here` per member present) have been read.
pub(super) async fn join(addr: SocketAddr, room: &str) -> Result<TcpStream, BenchError> {
    let joining = || format!("joining {room} at {addr}");
    let mut stream = TcpStream::connect(addr).await.with_context(joining)?;
    stream.set_nodelay(true).with_context(joining)?;
    stream
        .write_all(format!("JOIN {room} bench\n").as_bytes())
        .await
        .with_context(joining)?;
    // Read byte-wise up to the end of the welcome so no later line is consumed here.
    let mut line = Vec::new();
    let mut expected_lines = 1usize;
    let mut seen = 0usize;
    while seen < expected_lines {
        let byte = tokio::time::timeout(LINE_TIMEOUT, stream.read_u8())
            .await
            .map_err(|_| BenchError::Check("no welcome from the relay".into()))?
            .with_context(joining)?;
        if byte != b'\n' {
            line.push(byte);
            if line.len() > 1024 {
                fail!("over-long welcome line");
            }
            continue;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        line.clear();
        seen += 1;
        match Notice::parse(&text) {
            Some(Notice::Ok { members, .. }) if seen == 1 => expected_lines = members,
            Some(Notice::Here { .. }) if seen > 1 => {}
            _ => fail!("join refused: {text}"),
        }
    }
    Ok(stream)
}

/// Reads `@arrived` (the only line expected before the bench starts sending).
async fn read_line(stream: &mut TcpStream) -> Result<String, BenchError> {
    let mut line = Vec::new();
    loop {
        let byte = tokio::time::timeout(LINE_TIMEOUT, stream.read_u8())
            .await
            .map_err(|_| BenchError::Check("no line from the relay".into()))?
            .context("reading a line from the relay")?;
        if byte == b'\n' {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(byte);
        if line.len() > 1024 {
            fail!("over-long line");
        }
    }
}

/// Opens `rooms` private rooms: (sender, receiver) pairs.
pub(super) async fn pairs(
    addr: SocketAddr,
    rooms: usize,
    tag: &str,
) -> Result<Vec<(TcpStream, TcpStream)>, BenchError> {
    let mut pairs = Vec::with_capacity(rooms);
    for room in 0..rooms {
        let name = format!("{tag}-{room}");
        let mut sender = join(addr, &name).await?;
        let receiver = join(addr, &name).await?;
        let arrived = read_line(&mut sender).await?;
        if !arrived.starts_with("@arrived ") {
            fail!("expected @arrived, got {arrived}");
        }
        pairs.push((sender, receiver));
    }
    Ok(pairs)
}
