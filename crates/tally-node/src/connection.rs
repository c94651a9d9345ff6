//! One client's or peer's connection to a validator, and everything it may make the
//! validator hold (issue: availability under abuse).
//!
//! - **Answers in flight.** The reader takes a permit from the connection's budget before
//!   it reads each request and the permit travels with the answer until its last byte is
//!   written, so a client that stops reading stops being read: at most
//!   [`NodeConfig::max_in_flight`] answers per connection, of which at most
//!   [`BULK_PER_CONNECTION`] bulk ones (certificate and ledger pages, up to a megabyte
//!   each), and strangers share [`Shared::bulk`] bulk answers among all their connections.
//!   Each stranger address may have [`NodeConfig::bulk_per_sec`] bulk requests served a
//!   second. The committee's own addresses wait on neither, so strangers cannot delay
//!   catch-up between validators.
//! - **Writes.** Each answer must be written whole within the write timeout; a client that
//!   drains slowly is closed rather than waited for.
//! - **Idleness.** A connection that sends nothing but `HELLO`s for the idle timeout is
//!   closed: a `HELLO` a minute does not hold a place for ever.
//! - **Malformed packets** get an `ERROR` each; after [`MAX_MALFORMED`] (or one frame that
//!   is not a frame) the connection closes and its address is refused for [`PENALTY`];
//!   what is logged about one address passes a [`LogGate`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::{SinkExt, StreamExt};
use tally_ledger::LedgerStore;
use tally_proto::admission::{Admission, LogGate, Source};
use tally_proto::connection::FrameCodec;
use tally_proto::{CertQuery, ErrorCode, Packet};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::NodeConfig;
use crate::engine::EngineHandle;
use crate::pow::peers::ServingBudgets;

/// Bulk answers (pages) one connection may have computed or unwritten at once.
pub const BULK_PER_CONNECTION: usize = 2;
/// How long a stranger over its bulk rate waits before asking its budget again.
const BULK_RETRY: std::time::Duration = std::time::Duration::from_millis(10);
/// Malformed packets a connection may send before it is closed.
pub const MAX_MALFORMED: u32 = 16;
/// How long an address whose connection was closed for malformed data is refused.
pub const PENALTY: std::time::Duration = std::time::Duration::from_secs(2);

/// What every connection of one validator shares.
pub struct Shared {
    pub engine: EngineHandle,
    pub store: Arc<dyn LedgerStore>,
    pub config: Arc<NodeConfig>,
    pub cancel: CancellationToken,
    /// Bulk answers strangers' connections may have computed or unwritten, all together.
    pub bulk: Arc<Semaphore>,
    /// How much one address may make the validator log.
    pub log: Arc<LogGate>,
    /// Who is connected, to penalise an address that sends malformed data.
    pub admission: Admission,
    /// Bulk requests each stranger address may have served per second.
    pub bulk_rate: std::sync::Mutex<ServingBudgets<Source>>,
}

impl Shared {
    /// Logs `what` about `peer` at INFO if the address's log budget allows.
    fn log(&self, peer: SocketAddr, what: &str, detail: &dyn std::fmt::Display) {
        if let Some(held_back) = self.log.pass(peer.ip(), Instant::now()) {
            if held_back > 0 {
                tracing::info!(%peer, held_back, "{what}: {detail}");
            } else {
                tracing::info!(%peer, "{what}: {detail}");
            }
        }
    }
}

/// Whether answering `packet` reads a page (up to [`CertQuery::MAX_LIMIT`] certificates
/// or [`tally_proto::LedgerRequest::MAX_ACCOUNTS`] accounts): the answers that cost
/// megabytes and milliseconds rather than bytes and microseconds.
pub fn is_bulk(packet: &Packet) -> bool {
    matches!(packet, Packet::ReqCerts(_) | Packet::ReqLedger(_))
}

/// An answer on its way to the writer, with the permits it holds until written.
struct Pending {
    answer: oneshot::Receiver<Packet>,
    _permit: OwnedSemaphorePermit,
    _bulk: Option<BulkPermits>,
    /// Close the connection once this answer is written.
    last: bool,
}

/// Serves one connection: reads requests in order, answers in the same order.
pub async fn serve(stream: TcpStream, peer: SocketAddr, trusted: bool, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let config = shared.config.clone();
    let (read_half, write_half) = stream.into_split();
    let mut reader = FramedRead::new(
        read_half,
        FrameCodec::new(config.max_request, config.limits.max_frame),
    );
    let writer = FramedWrite::new(
        write_half,
        FrameCodec::new(config.max_request, config.limits.max_frame),
    );
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let bulk_here = Arc::new(Semaphore::new(BULK_PER_CONNECTION));
    let closing = shared.cancel.child_token();
    let (queue, pending) = mpsc::unbounded_channel::<Pending>();
    let writer_task = tokio::spawn(write_answers(
        writer,
        pending,
        config.limits.write_timeout,
        peer,
        shared.clone(),
        closing.clone(),
    ));
    let mut last_useful = tokio::time::Instant::now();
    let mut malformed = 0u32;
    loop {
        // Not reading while the writer is behind is what bounds an unread connection.
        let permit = tokio::select! {
            _ = closing.cancelled() => break,
            permit = in_flight.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let frame = tokio::select! {
            _ = closing.cancelled() => break,
            frame = tokio::time::timeout_at(last_useful + config.idle_timeout, reader.next()) => frame,
        };
        let frame = match frame {
            Err(_) => {
                tracing::debug!(%peer, "idle connection closed");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                shared.log(peer, "bad frame; closing", &error);
                shared.admission.penalise(peer.ip(), PENALTY);
                break;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let mut bulk = None;
        let mut last = false;
        let answer = match serde_json::from_slice::<Packet>(&frame) {
            Err(error) => {
                malformed += 1;
                last = malformed >= MAX_MALFORMED;
                if last {
                    shared.admission.penalise(peer.ip(), PENALTY);
                }
                shared.log(peer, "malformed packet", &error);
                ready(Packet::error(
                    ErrorCode::Malformed,
                    if last {
                        format!("malformed packet: {error}; too many, closing")
                    } else {
                        format!("malformed packet: {error}")
                    },
                ))
            }
            Ok(packet) => {
                if !matches!(packet, Packet::Hello(_)) {
                    last_useful = tokio::time::Instant::now();
                }
                if is_bulk(&packet) {
                    let Some(taken) =
                        bulk_permits(peer, &bulk_here, &shared, trusted, &closing).await
                    else {
                        break;
                    };
                    bulk = Some(taken);
                }
                match packet {
                    Packet::ReqCerts(query) => certificates(shared.store.clone(), query),
                    packet => shared.engine.submit(packet).await,
                }
            }
        };
        let sent = queue.send(Pending {
            answer,
            _permit: permit,
            _bulk: bulk,
            last,
        });
        if sent.is_err() || last {
            break;
        }
    }
    drop(queue);
    let _ = writer_task.await;
}

/// What a bulk answer holds until written: its connection's permit and, for a stranger,
/// one from the shared pool. (Fields, not a list: a payment's answer allocates nothing.)
struct BulkPermits {
    _here: OwnedSemaphorePermit,
    _pooled: Option<OwnedSemaphorePermit>,
}

/// The permits a bulk request needs before it is read on: the connection's own, then (for
/// a stranger) a token of its address's rate and one from the shared pool. `None` when the
/// connection is closing.
async fn bulk_permits(
    peer: SocketAddr,
    bulk_here: &Arc<Semaphore>,
    shared: &Shared,
    trusted: bool,
    closing: &CancellationToken,
) -> Option<BulkPermits> {
    let here = tokio::select! {
        _ = closing.cancelled() => return None,
        permit = bulk_here.clone().acquire_owned() => permit.ok()?,
    };
    let mut pooled = None;
    if !trusted {
        // Within the address's rate first: pages cost the validator milliseconds of disk
        // and encoding, and one host pipelining them must not slow everyone's payments.
        let source = Source::of(peer.ip());
        loop {
            let paid = shared
                .bulk_rate
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(&source, 1, Instant::now());
            if paid {
                break;
            }
            tokio::select! {
                _ = closing.cancelled() => return None,
                _ = tokio::time::sleep(BULK_RETRY) => {}
            }
        }
        let taken = tokio::select! {
            _ = closing.cancelled() => return None,
            permit = shared.bulk.clone().acquire_owned() => permit.ok()?,
        };
        pooled = Some(taken);
    }
    Some(BulkPermits {
        _here: here,
        _pooled: pooled,
    })
}

fn ready(packet: Packet) -> oneshot::Receiver<Packet> {
    let (reply, answer) = oneshot::channel();
    let _ = reply.send(packet);
    answer
}

/// Answers `REQ_CERTS` from the store without going through the engine.
fn certificates(store: Arc<dyn LedgerStore>, query: CertQuery) -> oneshot::Receiver<Packet> {
    let (reply, answer) = oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let _ = reply.send(crate::decider::certificates_page(store.as_ref(), query));
    });
    answer
}

/// Writes answers in request order; each must be written whole within `write_timeout`, or
/// the connection closes (`closing` stops the reader), which lets go of everything it held.
async fn write_answers(
    mut writer: FramedWrite<OwnedWriteHalf, FrameCodec>,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    write_timeout: std::time::Duration,
    peer: SocketAddr,
    shared: Arc<Shared>,
    closing: CancellationToken,
) {
    // Everything read is answered, even when the node stops (a batch's `Internal`, the
    // queue's `Busy`): the reader stops reading and closes the queue, and this ends once it
    // is drained, each answer bounded by the write timeout.
    while let Some(next) = pending.recv().await {
        let packet = next
            .answer
            .await
            .unwrap_or_else(|_| Packet::error(ErrorCode::Busy, "validator is shutting down"));
        let bytes = match serde_json::to_vec(&packet) {
            Ok(bytes) => bytes::Bytes::from(bytes),
            Err(error) => {
                tracing::error!(%error, "cannot encode an answer");
                continue;
            }
        };
        let flush = pending.is_empty() || next.last;
        let written = tokio::time::timeout(write_timeout, async {
            writer.feed(bytes).await?;
            if flush {
                SinkExt::<bytes::Bytes>::flush(&mut writer).await?;
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            shared.log(peer, "peer does not read its answers", &"closing");
            break;
        }
        if next.last {
            break;
        }
        // `next`'s permits go here: the answer has left.
    }
    closing.cancel();
}
