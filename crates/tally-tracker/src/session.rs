//! One tracker connection: its requests read under the configured limits and answered in
//! order, registrations fed through the batched verify-and-commit pipeline.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::{FutureExt as _, StreamExt};
use tally_proto::connection::{self, ConnectionError};
use tally_proto::tracker::{
    Answer, AnswerPacket, KeyResult, MapEntry, Outcome, Refusal, Registration, Request, answer_type,
};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::check::{CheckedRegistration, canonical_ip, check_registration};
use crate::pipeline::JobKind;
use crate::registry::ip_bytes;
use crate::server::{ConnectionGuard, Shared};

type AnswerFuture = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;

fn ready(kind: &'static str, answer: Answer) -> AnswerFuture {
    Box::pin(std::future::ready(AnswerPacket::encode(kind, &answer)))
}

fn key_results(reg: &CheckedRegistration) -> Vec<KeyResult> {
    reg.keys
        .iter()
        .map(|k| KeyResult {
            fingerprint: k.account,
            response: if k.refused.is_none() {
                Outcome::Success
            } else {
                Outcome::Fail
            },
            reason: k
                .refused
                .as_ref()
                .map_or_else(String::new, ToString::to_string),
        })
        .collect()
}

fn log_refused(shared: &Shared, peer: &SocketAddr, kind: &str, answer: &Answer) {
    if answer.response != Outcome::Success
        && let Some(held_back) = shared.loud(peer)
    {
        tracing::warn!(%peer, held_back, kind, outcome = ?answer.response, reason = %answer.reason, "request refused");
    }
}

/// Serves one connection: requests are answered in order; up to `pipeline_depth` may be
/// in flight; the join flow's messages wait for earlier answers so its state stays simple.
pub(crate) async fn connection(
    shared: Arc<Shared>,
    _guard: ConnectionGuard,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let limits = shared.limits.clone();
    let ip = canonical_ip(peer.ip());
    // Requests are refused over `max_request_bytes` from their length prefix; answers
    // (lists of peers) may be larger.
    let frame_limits = connection::Limits {
        max_frame: limits.max_request_bytes,
        read_timeout: limits.read_timeout,
        write_timeout: limits.write_timeout,
    };
    let (mut frames, mut out) =
        connection::split_with_send_limit::<Request>(stream, frame_limits, u32::MAX as usize);
    let mut inflight: FuturesOrdered<AnswerFuture> = FuturesOrdered::new();
    let mut failures: u32 = 0;
    let mut pending_join: Option<CheckedRegistration> = None;
    let depth = limits.pipeline_depth.max(1);

    macro_rules! write_answer {
        ($conn:lifetime, $bytes:expr) => {{
            let bytes: Vec<u8> = $bytes;
            if answer_failed(&bytes) {
                failures += 1;
            }
            if let Err(error) = out.send_bytes(Bytes::from(bytes)).await {
                log_write_failure(&shared, &peer, &error);
                break $conn;
            }
            if failures >= limits.max_failures_per_connection {
                if let Some(held_back) = shared.loud(&peer) {
                    tracing::warn!(%peer, held_back, failures, "too many failed requests; closing");
                }
                break $conn;
            }
        }};
    }

    'conn: loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            Some(bytes) = inflight.next(), if !inflight.is_empty() => {
                // Answers of one batch complete together: send every one that is ready in
                // one write, so a pipelining client gets one segment and one wake-up.
                let mut ready = vec![bytes];
                while let Some(Some(more)) = inflight.next().now_or_never() {
                    ready.push(more);
                }
                for bytes in &ready {
                    if answer_failed(bytes) {
                        failures += 1;
                    }
                }
                if let Err(error) = out.send_all(ready.into_iter().map(Bytes::from)).await {
                    log_write_failure(&shared, &peer, &error);
                    break 'conn;
                }
                if failures >= limits.max_failures_per_connection {
                    if let Some(held_back) = shared.loud(&peer) {
                        tracing::warn!(%peer, held_back, failures, "too many failed requests; closing");
                    }
                    break 'conn;
                }
            }
            frame = frames.recv_frame(), if inflight.len() < depth => {
                let frame = match frame {
                    Err(ConnectionError::Timeout(_)) => {
                        if inflight.is_empty() {
                            tracing::debug!(%peer, "read timeout; closing");
                            break;
                        }
                        continue;
                    }
                    Err(ConnectionError::Closed) => {
                        // The client is done sending; answer what it asked, then close.
                        while let Some(bytes) = inflight.next().await {
                            write_answer!('conn, bytes);
                        }
                        break;
                    }
                    Err(error) => {
                        while let Some(bytes) = inflight.next().await {
                            write_answer!('conn, bytes);
                        }
                        if error.is_peer_fault() {
                            // A frame is only refused for its length (`InvalidData`).
                            let why = Refusal::TooLarge(limits.max_request_bytes);
                            if let Some(held_back) = shared.loud(&peer) {
                                tracing::warn!(%peer, held_back, reason = %why, "oversized request; closing");
                            }
                            let answer = AnswerPacket::encode(answer_type::FAIL, &Answer::fail(why.to_string()));
                            let _ = out.send_bytes(Bytes::from(answer)).await;
                        } else {
                            tracing::debug!(%peer, %error, "read failed");
                        }
                        break;
                    }
                    Ok(frame) => frame,
                };
                if !shared.allow_request(ip) {
                    let answer = Answer::fail(Refusal::RateLimited.to_string());
                    log_refused(&shared, &peer, "rate limit", &answer);
                    inflight.push_back(ready(answer_type::FAIL, answer));
                    continue;
                }
                let request = match Request::parse(&frame) {
                    Ok(request) => request,
                    Err(error) => {
                        let answer = Answer::fail(Refusal::Parse(error).to_string());
                        log_refused(&shared, &peer, "unparsed", &answer);
                        inflight.push_back(ready(answer_type::FAIL, answer));
                        continue;
                    }
                };
                match request {
                    Request::Reg(reg) => {
                        inflight.push_back(register(Arc::clone(&shared), reg, ip, peer, false));
                    }
                    Request::RegUp(reg) => {
                        inflight.push_back(register(Arc::clone(&shared), reg, ip, peer, true));
                    }
                    Request::List(list) => {
                        let answer = if shared.networks.get(&list.network).is_none() {
                            Answer::fail(Refusal::UnknownNetwork.to_string())
                        } else {
                            let n = list_size(list.max, limits.max_list_peers);
                            Answer { peers: Some(shared.peers(&list.network, n, |_| false)), ..Answer::success() }
                        };
                        log_refused(&shared, &peer, "LIST", &answer);
                        inflight.push_back(ready(answer_type::SEND_LIST, answer));
                    }
                    Request::Initialize(reg) => {
                        while let Some(bytes) = inflight.next().await {
                            write_answer!('conn, bytes);
                        }
                        let now = shared.clock.now_ms();
                        let answer = match check_registration(&reg, ip, now, &shared.networks, &limits) {
                            Err(why) => Answer::fail(why.to_string()),
                            Ok(checked) => match shared.submit(checked, JobKind::VerifyOnly).await {
                                Err(why) => Answer::fail(why.to_string()),
                                Ok(verified) if !verified.any_pending() => {
                                    Answer::from_keys(key_results(&verified))
                                }
                                Ok(verified) => {
                                    let n = list_size(reg.max, limits.max_list_peers);
                                    let mine: Vec<_> = verified.keys.iter().map(|k| k.account).collect();
                                    let my_ip = ip_bytes(verified.address.ip());
                                    let my_port = verified.address.port();
                                    let peers = shared.peers(&verified.network, n, |e| {
                                        mine.contains(&e.account) || (e.ip == my_ip && e.port == my_port)
                                    });
                                    pending_join = Some(verified);
                                    Answer { peers: Some(peers), ..Answer::success() }
                                }
                            },
                        };
                        log_refused(&shared, &peer, "INITIALIZE", &answer);
                        write_answer!('conn, AnswerPacket::encode(answer_type::SEND_LIST, &answer));
                    }
                    Request::AcknowledgeList(ack) => {
                        while let Some(bytes) = inflight.next().await {
                            write_answer!('conn, bytes);
                        }
                        let answer = match pending_join.take() {
                            None => Answer::fail(Refusal::NothingToAcknowledge.to_string()),
                            Some(reg) if reg.network != ack.network => Answer::fail(Refusal::WrongNetwork.to_string()),
                            Some(reg) => match shared.submit(reg, JobKind::CommitVerified).await {
                                Err(why) => Answer::fail(why.to_string()),
                                Ok(stored) => Answer::from_keys(key_results(&stored)),
                            },
                        };
                        log_refused(&shared, &peer, "ACKNOWLEDGE_LIST", &answer);
                        write_answer!('conn, AnswerPacket::encode(answer_type::ACCEPT_ACKNOWLEDGE, &answer));
                    }
                }
            }
        }
    }
}

/// A failed write ends the connection; a timed-out one means a peer that does not read.
fn log_write_failure(shared: &Shared, peer: &SocketAddr, error: &ConnectionError) {
    match error {
        ConnectionError::Timeout(_) => {
            if let Some(held_back) = shared.loud(peer) {
                tracing::warn!(%peer, held_back, "write timed out; closing");
            }
        }
        error => tracing::debug!(%peer, %error, "write failed"),
    }
}

fn list_size(asked: Option<u32>, cap: usize) -> usize {
    asked.map_or(cap, |n| (n as usize).min(cap))
}

/// Whether an encoded answer says `Fail` (counted against the connection).
fn answer_failed(bytes: &[u8]) -> bool {
    // Answers are produced here with `Response` first in `Data`.
    bytes
        .windows(b"\"Response\":\"Fail\"".len())
        .take(64)
        .any(|w| w == b"\"Response\":\"Fail\"")
}

fn register(
    shared: Arc<Shared>,
    reg: Registration,
    ip: IpAddr,
    peer: SocketAddr,
    with_maps: bool,
) -> AnswerFuture {
    let kind = if with_maps {
        answer_type::RESP_REGUP
    } else {
        answer_type::RESP_REG
    };
    Box::pin(async move {
        let now = shared.clock.now_ms();
        let answer = match check_registration(&reg, ip, now, &shared.networks, &shared.limits) {
            Err(why) => Answer::fail(why.to_string()),
            Ok(checked) => match shared.submit(checked, JobKind::Register).await {
                Err(why) => Answer::fail(why.to_string()),
                Ok(done) => {
                    let mut answer = Answer::from_keys(key_results(&done));
                    if with_maps {
                        answer.maps = Some(maps(&shared, &done.network));
                    }
                    answer
                }
            },
        };
        log_refused(&shared, &peer, kind, &answer);
        AnswerPacket::encode(kind, &answer)
    })
}

fn maps(
    shared: &Shared,
    network: &tally_core::NetworkId,
) -> std::collections::BTreeMap<tally_core::AccountId, MapEntry> {
    let now = shared.clock.now_ms();
    let registry = shared.registry.read();
    registry
        .sample(
            network,
            shared.limits.max_maps,
            now,
            shared.limits.ttl_ms(),
            &mut rand::thread_rng(),
            |_| false,
        )
        .into_iter()
        .map(|e| {
            (
                e.account,
                MapEntry {
                    proof_of_work: e.proof_of_work,
                    address: e.address(),
                    last_seen: e.seen,
                },
            )
        })
        .collect()
}
