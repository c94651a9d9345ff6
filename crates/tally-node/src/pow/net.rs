//! The miner daemon's sockets: accepting, dialing, and serving one connection. Every TCP
//! connection (miner or wallet) gets a reader, which parses frames (size- and
//! time-limited) and hands each packet in order to [`handlers::handle`], and a writer task
//! that drains a bounded queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tally_proto::ConnectionError;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::pow::clock::duration_ms;
use crate::pow::connections::{Conn, READ_PAUSE_BYTES, WRITE_QUEUE};
use crate::pow::handlers;
use crate::pow::peers::{Offense, PeerKey};
use crate::pow::state::Miner;
use crate::pow::sync::PeerSync;
use tally_proto::admission::Admitted;
use tally_proto::pow::{self, ErrorMsg, PowPacket, WireReader};

/// Accepts connections until the node stops, within the connection limits.
pub async fn accept_loop(miner: Arc<Miner>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = miner.cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Isolation refuses miners only (at their `CONNECT`): wallets are still served.
        if miner.is_banned(&PeerKey::of(remote, None)) {
            drop(stream);
            continue;
        }
        let Some(slot) = miner.conns.reserve(remote.ip(), true) else {
            debug!(%remote, "connection limit reached; refused");
            drop(stream);
            continue;
        };
        tokio::spawn(serve(miner.clone(), slot, stream, remote, None));
    }
}

/// Waits, without reading, while more than [`READ_PAUSE_BYTES`] wait for this
/// connection's writer; `false` when they still do after `patience` (the peer does not
/// read) or the connection closes.
async fn writer_caught_up(
    queued: &AtomicUsize,
    patience: Duration,
    cancel: &CancellationToken,
) -> bool {
    if queued.load(Ordering::Relaxed) <= READ_PAUSE_BYTES {
        return true;
    }
    let deadline = tokio::time::Instant::now() + patience;
    while queued.load(Ordering::Relaxed) > READ_PAUSE_BYTES {
        if cancel.is_cancelled() || tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Dials `address` unless it is us, already connected, banned, or we are isolated.
pub fn dial(miner: &Arc<Miner>, address: String) {
    if miner.is_isolated() || miner.cancel.is_cancelled() {
        return;
    }
    if address == miner.address.to_string() {
        return;
    }
    {
        let conns = miner.conns.lock();
        let miners = conns
            .values()
            .filter(|c| c.miner || c.dialed.is_some())
            .count();
        if miners >= miner.config.max_peers
            || conns.values().any(|c| {
                c.dialed.as_deref() == Some(address.as_str())
                    || c.listen.as_deref() == Some(address.as_str())
            })
        {
            return;
        }
    }
    if let Ok(addr) = address.parse::<SocketAddr>()
        && miner.is_banned(&PeerKey::of(addr, Some(&address)))
    {
        return;
    }
    if !miner.conns.start_dialing(&address) {
        return;
    }
    let miner = miner.clone();
    tokio::spawn(async move {
        match pow::connect(&address, miner.config.wire).await {
            Ok(stream) => {
                let remote = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                match miner.conns.reserve(remote.ip(), false) {
                    Some(slot) => {
                        serve(miner.clone(), slot, stream, remote, Some(address.clone())).await
                    }
                    None => debug!(%address, "connection limit reached; not dialing"),
                }
            }
            Err(error) => debug!(%address, %error, "cannot reach peer"),
        }
        miner.conns.done_dialing(&address);
    });
}

/// Serves one connection until it closes, times out, misbehaves or the node stops; its
/// `slot` is released when it ends.
async fn serve(
    miner: Arc<Miner>,
    slot: Admitted,
    stream: TcpStream,
    remote: SocketAddr,
    dialed: Option<String>,
) {
    let (mut reader, mut writer) = pow::split(stream, miner.config.wire);
    let id = miner.conns.next_id();
    let cancel = miner.cancel.child_token();
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    let read_queued = queued.clone();
    let outbound = dialed.is_some();
    // A dialed peer is a miner (we dial only miners); it gets our CONNECT first.
    miner.conns.lock().insert(
        id,
        Conn::new(
            tx.clone(),
            queued.clone(),
            remote,
            dialed,
            PeerSync::new(duration_ms(miner.config.sync_timeout)),
            cancel.clone(),
        ),
    );
    if outbound {
        miner.conns.reply(id, &miner.connect_packet());
    }
    drop(tx);
    let writer_cancel = cancel.clone();
    let writer_task = tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                _ = writer_cancel.cancelled() => break,
                next = rx.recv() => next,
            };
            let Some(bytes) = next else { break };
            let len = bytes.len();
            let sent = writer.send_bytes(bytes).await;
            queued.fetch_sub(len, Ordering::Relaxed);
            if let Err(error) = sent {
                debug!(%error, "write failed; closing");
                writer_cancel.cancel();
                break;
            }
        }
    });
    debug!(%remote, outbound, "connection open");
    read_loop(&miner, id, &mut reader, &read_queued, &cancel).await;
    // Dropping the queue's last sender lets the writer send what is queued (a last
    // `ERROR`, say) and end; a ban or the node stopping cancels it at once instead.
    miner.conns.lock().remove(&id);
    let write_timeout = miner.config.wire.write_timeout;
    let abort = writer_task.abort_handle();
    if tokio::time::timeout(write_timeout, writer_task)
        .await
        .is_err()
    {
        abort.abort();
    }
    cancel.cancel();
    drop(slot);
    debug!(%remote, "connection closed");
}

async fn read_loop(
    miner: &Arc<Miner>,
    id: u64,
    reader: &mut WireReader,
    queued: &AtomicUsize,
    cancel: &CancellationToken,
) {
    loop {
        if !writer_caught_up(queued, miner.config.wire.write_timeout, cancel).await {
            debug!("peer does not read its answers; closing");
            return;
        }
        let received = tokio::select! {
            _ = cancel.cancelled() => return,
            received = reader.recv() => received,
        };
        match received {
            Ok(packet) => {
                if !handlers::handle(miner, id, packet).await {
                    return;
                }
            }
            Err(ConnectionError::Malformed(error)) => {
                miner.conns.reply(
                    id,
                    &PowPacket::Error(ErrorMsg {
                        reason: format!("malformed packet: {error}"),
                    }),
                );
                miner.penalise(id, Offense::Malformed);
            }
            Err(error) => {
                if error.is_peer_fault() {
                    miner.penalise(id, Offense::Malformed);
                }
                debug!(%error, "connection ends");
                return;
            }
        }
    }
}
