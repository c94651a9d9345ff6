//! The client `tally node` and the wallet use: register (REG/REGUP), join (seed 004's
//! INITIALIZE → SEND_LIST → ACKNOWLEDGE_LIST → ACCEPT_ACKNOWLEDGE) and list peers.
//!
//! Every answer is awaited at most `answer_timeout` (30 s by default, as seed 004 says);
//! a lost connection or a missing answer is retried with exponential backoff, each
//! attempt signed afresh with a newer timestamp so that a retry is never a replay.
//! A `Fail` from the tracker is final and returned as [`ClientError::Refused`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tally_core::{AccountId, NetworkId, SecretKey};
use tally_proto::connection::{self, ConnectionError, PacketReader, PacketWriter};
use tally_proto::tracker::{
    Acknowledge, Answer, AnswerPacket, KeyEntry, ListRequest, Outcome, Refusal, Registration,
    Request, SignedBytes, answer_type,
};
use tokio::net::TcpStream;

use crate::clock::now_ms;

/// A connection to the tracker: tally-proto's framing, reading answers.
type TrackerConnection = (PacketReader<AnswerPacket>, PacketWriter);

/// Timeouts, retries and size limits of a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Longest wait for each answer (default 30 s).
    pub answer_timeout: Duration,
    /// Longest wait to connect (default 10 s).
    pub connect_timeout: Duration,
    /// Attempts before giving up, the first included (default 5).
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each time (default 500 ms).
    pub backoff_initial: Duration,
    /// Longest wait between attempts (default 30 s).
    pub backoff_max: Duration,
    /// Largest answer accepted, in bytes (default 16 MiB).
    pub max_answer_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            answer_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_attempts: 5,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_answer_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A peer as the tracker lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// One of the peer's keys.
    pub account: AccountId,
    /// Where it accepts connections.
    pub address: SocketAddr,
    /// The key's proof of work.
    pub proof_of_work: u64,
    /// The tracker's clock at its last registration, ms since 1970.
    pub last_seen_ms: u64,
}

/// What a registration achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registered {
    /// Keys now listed.
    pub accepted: Vec<AccountId>,
    /// Keys refused, with the tracker's reason.
    pub refused: Vec<(AccountId, String)>,
}

/// What joining achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Joined {
    /// The peers the tracker sent (never this node).
    pub peers: Vec<Peer>,
    /// The registration stored after the acknowledgement.
    pub registered: Registered,
}

/// Why a tracker request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("tracker refused: {0}")]
    Refused(String),
    #[error("no answer from tracker {addr} after {attempts} attempts: {last}")]
    Unreachable {
        addr: String,
        attempts: u32,
        last: String,
    },
    #[error("tracker sent an unexpected answer: {0}")]
    Protocol(String),
}

/// Why one attempt failed (retryable) or the request failed (final).
enum AttemptError {
    Retry(String),
    Final(ClientError),
}

/// Builds a signed registration of `keys` (each a secret key and its proof-of-work
/// nonce) at `address` in `network`, stamped `timestamp` (ms since 1970).
pub fn sign_registration(
    network: NetworkId,
    address: SocketAddr,
    timestamp: u64,
    keys: &[(SecretKey, u64)],
) -> Registration {
    Registration {
        network,
        address: address.to_string(),
        timestamp,
        keys: keys
            .iter()
            .map(|(secret, nonce)| {
                let account = secret.account();
                let signed = SignedBytes::new(&network, &account, *nonce, timestamp, &address);
                KeyEntry {
                    fingerprint: account,
                    proof_of_work: *nonce,
                    signature: secret.sign(signed.as_bytes()),
                }
            })
            .collect(),
        max: None,
    }
}

/// A tracker client. Cheap to keep for a node's lifetime: it remembers the last timestamp
/// it signed so consecutive registrations always move forward.
#[derive(Debug)]
pub struct TrackerClient {
    addr: String,
    config: ClientConfig,
    last_stamp: AtomicU64,
}

impl TrackerClient {
    /// A client of the tracker at `addr` (`host:port`, resolved on each connection).
    pub fn new(addr: impl Into<String>, config: ClientConfig) -> Self {
        TrackerClient {
            addr: addr.into(),
            config,
            last_stamp: AtomicU64::new(0),
        }
    }

    /// The tracker's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A timestamp newer than any this client signed before.
    fn next_stamp(&self) -> u64 {
        let now = now_ms();
        let mut last = self.last_stamp.load(Ordering::Relaxed);
        loop {
            let next = now.max(last.saturating_add(1));
            match self.last_stamp.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// Registers `keys` at `address` (`REG`). `Ok` when at least one key was accepted.
    pub async fn register(
        &self,
        network: NetworkId,
        address: SocketAddr,
        keys: &[(SecretKey, u64)],
    ) -> Result<Registered, ClientError> {
        let (registered, _) = self.reg(network, address, keys, false).await?;
        Ok(registered)
    }

    /// Registers `keys` (`REGUP`) and returns the network's live keys with their addresses
    /// (at most the tracker's `max_maps`, a random sample above it).
    pub async fn register_and_list(
        &self,
        network: NetworkId,
        address: SocketAddr,
        keys: &[(SecretKey, u64)],
    ) -> Result<(Registered, Vec<Peer>), ClientError> {
        self.reg(network, address, keys, true).await
    }

    async fn reg(
        &self,
        network: NetworkId,
        address: SocketAddr,
        keys: &[(SecretKey, u64)],
        with_maps: bool,
    ) -> Result<(Registered, Vec<Peer>), ClientError> {
        let expected = if with_maps {
            answer_type::RESP_REGUP
        } else {
            answer_type::RESP_REG
        };
        self.with_retries(|| async move {
            let reg = sign_registration(network, address, self.next_stamp(), keys);
            let request = if with_maps {
                Request::RegUp(reg)
            } else {
                Request::Reg(reg)
            };
            let mut conn = self.connect().await?;
            let answer = self.exchange(&mut conn, &request, expected).await?;
            let registered = registered(&answer);
            let peers = answer
                .maps
                .unwrap_or_default()
                .into_iter()
                .map(|(account, m)| Peer {
                    account,
                    address: m.address,
                    proof_of_work: m.proof_of_work,
                    last_seen_ms: m.last_seen,
                })
                .collect();
            Ok((registered, peers))
        })
        .await
    }

    /// Seed 004's join: asks for up to `max_peers` peers of `network` (the tracker's cap
    /// applies; `None` for the cap), acknowledges the list, and is listed itself once the
    /// tracker accepts the acknowledgement.
    pub async fn join(
        &self,
        network: NetworkId,
        address: SocketAddr,
        keys: &[(SecretKey, u64)],
        max_peers: Option<u32>,
    ) -> Result<Joined, ClientError> {
        self.with_retries(|| async move {
            let mut reg = sign_registration(network, address, self.next_stamp(), keys);
            reg.max = max_peers;
            let mut conn = self.connect().await?;
            let list = self
                .exchange(&mut conn, &Request::Initialize(reg), answer_type::SEND_LIST)
                .await?;
            let peers = peers(&list);
            let ack = Request::AcknowledgeList(Acknowledge {
                network,
                received: u32::try_from(peers.len()).unwrap_or(u32::MAX),
            });
            let accepted = self
                .exchange(&mut conn, &ack, answer_type::ACCEPT_ACKNOWLEDGE)
                .await?;
            Ok(Joined {
                peers,
                registered: registered(&accepted),
            })
        })
        .await
    }

    /// Live peers of `network`, at most `max` (the tracker's cap applies), chosen at
    /// random by the tracker. Needs no key: this is how a wallet finds nodes.
    pub async fn peers(
        &self,
        network: NetworkId,
        max: Option<u32>,
    ) -> Result<Vec<Peer>, ClientError> {
        self.with_retries(|| async move {
            let mut conn = self.connect().await?;
            let request = Request::List(ListRequest { network, max });
            let answer = self
                .exchange(&mut conn, &request, answer_type::SEND_LIST)
                .await?;
            Ok(peers(&answer))
        })
        .await
    }

    /// Sends one raw request on a fresh connection and returns the answer as sent, `Fail`
    /// included, without retrying (for tools and tests).
    pub async fn send_raw(&self, request: &Request) -> Result<AnswerPacket, ClientError> {
        let mut conn = self.connect().await.map_err(final_error(&self.addr))?;
        self.roundtrip(&mut conn, request)
            .await
            .map_err(final_error(&self.addr))
    }

    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AttemptError>>,
    {
        let attempts = self.config.max_attempts.max(1);
        let mut delay = self.config.backoff_initial;
        let mut last = String::new();
        for n in 1..=attempts {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(AttemptError::Final(error)) => return Err(error),
                Err(AttemptError::Retry(why)) => {
                    tracing::debug!(tracker = %self.addr, attempt = n, reason = %why, "tracker attempt failed");
                    last = why;
                }
            }
            if n < attempts {
                // Jitter (75%..125%) keeps many nodes from retrying in lockstep.
                let factor = 0.75 + rand::random::<f64>() * 0.5;
                tokio::time::sleep(delay.mul_f64(factor)).await;
                delay = (delay * 2).min(self.config.backoff_max);
            }
        }
        Err(ClientError::Unreachable {
            addr: self.addr.clone(),
            attempts,
            last,
        })
    }

    async fn connect(&self) -> Result<TrackerConnection, AttemptError> {
        let stream =
            match tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(&self.addr))
                .await
            {
                Err(_) => return Err(AttemptError::Retry("connect timed out".into())),
                Ok(Err(error)) => return Err(AttemptError::Retry(format!("connect: {error}"))),
                Ok(Ok(stream)) => stream,
            };
        // Each exchange as a whole is bounded by `answer_timeout` (see `roundtrip`).
        let limits = connection::Limits {
            max_frame: self.config.max_answer_bytes,
            read_timeout: self.config.answer_timeout,
            write_timeout: self.config.answer_timeout,
        };
        Ok(connection::split(stream, limits))
    }

    async fn roundtrip(
        &self,
        conn: &mut TrackerConnection,
        request: &Request,
    ) -> Result<AnswerPacket, AttemptError> {
        let (reader, writer) = conn;
        let exchange = async {
            writer
                .send(request)
                .await
                .map_err(|e| AttemptError::Retry(format!("send: {}", io_text(&e))))?;
            reader.recv().await.map_err(|e| match e {
                ConnectionError::Closed => AttemptError::Retry("connection closed".into()),
                ConnectionError::Malformed(e) => {
                    AttemptError::Final(ClientError::Protocol(format!("bad answer: {e}")))
                }
                e => AttemptError::Retry(format!("receive: {}", io_text(&e))),
            })
        };
        match tokio::time::timeout(self.config.answer_timeout, exchange).await {
            Err(_) => Err(AttemptError::Retry(format!(
                "no answer within {:?}",
                self.config.answer_timeout
            ))),
            Ok(result) => result,
        }
    }

    async fn exchange(
        &self,
        conn: &mut TrackerConnection,
        request: &Request,
        expected: &str,
    ) -> Result<Answer, AttemptError> {
        let packet = self.roundtrip(conn, request).await?;
        if packet.data.response == Outcome::Fail {
            if packet.data.reason == Refusal::Busy.to_string() {
                return Err(AttemptError::Retry(packet.data.reason));
            }
            return Err(AttemptError::Final(ClientError::Refused(
                packet.data.reason,
            )));
        }
        if packet.kind != expected {
            return Err(AttemptError::Final(ClientError::Protocol(format!(
                "expected {expected}, got {}",
                packet.kind
            ))));
        }
        Ok(packet.data)
    }
}

fn final_error(addr: &str) -> impl Fn(AttemptError) -> ClientError + '_ {
    move |e| match e {
        AttemptError::Final(e) => e,
        AttemptError::Retry(last) => ClientError::Unreachable {
            addr: addr.to_owned(),
            attempts: 1,
            last,
        },
    }
}

/// A connection error as the client reports it: an I/O error by its own words.
fn io_text(error: &ConnectionError) -> String {
    match error {
        ConnectionError::Io(e) => e.to_string(),
        e => e.to_string(),
    }
}

fn registered(answer: &Answer) -> Registered {
    let mut out = Registered::default();
    for key in &answer.keys {
        if key.response == Outcome::Success {
            out.accepted.push(key.fingerprint);
        } else {
            out.refused.push((key.fingerprint, key.reason.clone()));
        }
    }
    out
}

fn peers(answer: &Answer) -> Vec<Peer> {
    answer
        .peers
        .iter()
        .flatten()
        .map(|p| Peer {
            account: p.fingerprint,
            address: p.address,
            proof_of_work: p.proof_of_work,
            last_seen_ms: p.last_seen,
        })
        .collect()
}
