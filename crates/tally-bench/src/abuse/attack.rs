//! The stranger's moves, the same whatever service they aim at: streams of bytes that are
//! read or not, connections held open, half-sent HTTP requests. Every socket is bound to
//! the stranger's own loopback address (127.0.0.2 unless a service says otherwise), so the
//! services see another host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// Where the stranger connects from, unless a service chooses another address.
pub(super) const STRANGER: [u8; 4] = [127, 0, 0, 2];
/// The most connections [`Attack::Hold`] tries to keep to one address.
const MOST_HELD: usize = 5000;
/// How long a fresh connection must stay open to count as held: a refused one is told
/// why and closed at once.
const REFUSAL_WINDOW: Duration = Duration::from_millis(100);

/// One of the stranger's moves against one address.
#[derive(Clone, Debug)]
pub(super) enum Attack {
    /// `connections` connections, each sending `prelude` once and then `bytes` over and
    /// over, reading whatever comes back (`read`) or nothing; each reconnects when closed.
    Stream {
        to: SocketAddr,
        connections: usize,
        prelude: Vec<u8>,
        bytes: Vec<u8>,
        read: bool,
    },
    /// As many connections as `to` keeps open (up to 5,000), each sending `prelude`, then
    /// `cheap` once a second: not idle, not abusive, one at a time.
    Hold {
        to: SocketAddr,
        prelude: Vec<u8>,
        cheap: Vec<u8>,
    },
    /// Up to 2,000 HTTP requests cut off in their headers, reopened as they close.
    HalfSentHttp { to: SocketAddr },
}

impl Attack {
    /// `connections` connections to `to` sending `bytes` over and over from the start (no
    /// prelude), reading the answers or not.
    pub(super) fn pipeline(
        to: SocketAddr,
        connections: usize,
        bytes: Vec<u8>,
        read: bool,
    ) -> Attack {
        Attack::Stream {
            to,
            connections,
            prelude: Vec::new(),
            bytes,
            read,
        }
    }
}

/// A connection to `to` from the stranger's address `from`.
pub(super) async fn connect(from: [u8; 4], to: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((from, 0))).ok()?;
    tokio::time::timeout(Duration::from_secs(2), socket.connect(to))
        .await
        .ok()?
        .ok()
}

/// Starts `attack` from address `from`; its tasks end once `stop` is set. `opened` counts
/// the connections opened (held, for [`Attack::Hold`]).
pub(super) fn spawn(
    attack: Attack,
    from: [u8; 4],
    stop: &Arc<AtomicBool>,
    opened: &Arc<AtomicU64>,
    tasks: &mut JoinSet<()>,
) {
    let (stop, opened) = (stop.clone(), opened.clone());
    match attack {
        Attack::Stream {
            to,
            connections,
            prelude,
            bytes,
            read,
        } => {
            for _ in 0..connections {
                let (stop, opened) = (stop.clone(), opened.clone());
                let (prelude, bytes) = (prelude.clone(), bytes.clone());
                tasks.spawn(async move {
                    stream(from, to, &prelude, &bytes, read, &stop, &opened).await
                });
            }
        }
        Attack::Hold { to, prelude, cheap } => {
            tasks.spawn(async move { hold(from, to, &prelude, &cheap, &stop, &opened).await });
        }
        Attack::HalfSentHttp { to } => {
            tasks.spawn(async move { half_sent_http(from, to, &stop, &opened).await });
        }
    }
}

async fn stream(
    from: [u8; 4],
    to: SocketAddr,
    prelude: &[u8],
    bytes: &[u8],
    read: bool,
    stop: &AtomicBool,
    opened: &AtomicU64,
) {
    while !stop.load(Ordering::Relaxed) {
        let Some(stream) = connect(from, to).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        let (mut reader, mut writer) = stream.into_split();
        let drain = read.then(|| {
            tokio::spawn(async move {
                let mut sink = vec![0u8; 64 * 1024];
                while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
            })
        });
        let mut open = writer.write_all(prelude).await.is_ok();
        while open && !stop.load(Ordering::Relaxed) {
            let written =
                tokio::time::timeout(Duration::from_millis(200), writer.write_all(bytes)).await;
            open = !matches!(written, Ok(Err(_)));
        }
        if let Some(drain) = drain {
            drain.abort();
        }
    }
}

async fn hold(
    from: [u8; 4],
    to: SocketAddr,
    prelude: &[u8],
    cheap: &[u8],
    stop: &AtomicBool,
    opened: &AtomicU64,
) {
    let mut held: Vec<TcpStream> = Vec::new();
    // Open in batches, all of a batch at once, until a whole batch is refused.
    while !stop.load(Ordering::Relaxed) && held.len() < MOST_HELD {
        let mut batch = JoinSet::new();
        for _ in 0..16 {
            let prelude = prelude.to_vec();
            batch.spawn(async move {
                let mut stream = connect(from, to).await?;
                stream.write_all(&prelude).await.ok()?;
                kept_open(&mut stream).await.then_some(stream)
            });
        }
        let mut kept = 0;
        while let Some(result) = batch.join_next().await {
            if let Ok(Some(stream)) = result {
                held.push(stream);
                kept += 1;
            }
        }
        opened.fetch_add(kept, Ordering::Relaxed);
        if kept == 0 {
            break;
        }
    }
    while !stop.load(Ordering::Relaxed) {
        for stream in &mut held {
            let _ = tokio::time::timeout(Duration::from_millis(100), stream.write_all(cheap)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Whether `stream` stays open through [`REFUSAL_WINDOW`] (what it says meanwhile, a
/// welcome or an answer, is read and dropped).
async fn kept_open(stream: &mut TcpStream) -> bool {
    let mut sink = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + REFUSAL_WINDOW;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Err(_) => return true,
            Ok(Ok(0) | Err(_)) => return false,
            Ok(Ok(_)) => {}
        }
    }
}

async fn half_sent_http(from: [u8; 4], to: SocketAddr, stop: &AtomicBool, opened: &AtomicU64) {
    let mut held = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if held.len() < 2000 {
            if let Some(mut stream) = connect(from, to).await {
                let _ = stream
                    .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
                    .await;
                held.push(stream);
                opened.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            held.clear();
        }
    }
}
