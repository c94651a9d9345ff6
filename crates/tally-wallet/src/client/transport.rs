//! How a quorum client reaches the validators. The client's protocol (first voter, quorum,
//! catch-up, reads) is written against [`Transport`]; [`TcpTransport`] is the real one
//! (one persistent TCP connection per validator), and the simulator supplies its own, whose
//! answers, losses and timeouts come from its seeded network and clock. Everything the
//! client waits for goes through the transport, its pauses included, so that the same
//! client code runs in simulated time.

use std::time::Duration;

use futures::future::BoxFuture;
use tally_core::{NetworkContract, NetworkId};
use tally_proto::{Connection, Hello, Limits, Packet};
use tokio::sync::Mutex;

use super::ClientError;

/// A way to send requests to a committee's validators, each known by its position in the
/// contract.
pub trait Transport: Send + Sync {
    /// Sends one request to validator `i` and waits for its answer (every request the
    /// client sends is safe to repeat, so a transport may send it again after a lost
    /// connection). An answer that does not come in the transport's time is
    /// [`ClientError::Unreachable`].
    fn call<'a>(
        &'a self,
        i: usize,
        packet: &'a Packet,
    ) -> BoxFuture<'a, Result<Packet, ClientError>>;

    /// Sends `packets` to validator `i` and returns the answers in order. A transport that
    /// can pipeline them (send all, then read all) does, so the validator decides them in
    /// one batch; this default sends them one after another.
    fn call_many<'a>(
        &'a self,
        i: usize,
        packets: &'a [Packet],
    ) -> BoxFuture<'a, Result<Vec<Packet>, ClientError>> {
        Box::pin(async move {
            let mut answers = Vec::with_capacity(packets.len());
            for packet in packets {
                answers.push(self.call(i, packet).await?);
            }
            Ok(answers)
        })
    }

    /// Waits `duration` on the transport's clock (the client's pauses between attempts).
    fn pause(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// The transport's clock in milliseconds since the Unix epoch (the machine's clock; the
    /// simulator's is the wallet's own skewed one): escrow deadlines are set and checked
    /// by it.
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            })
    }

    /// Where validator `i` is reached, for messages about it.
    fn address(&self, i: usize) -> String;
}

/// The real transport: one persistent TCP connection per validator, opened on first use
/// with a `HELLO` that checks the validator is who the contract says, and opened again
/// once when it dropped.
pub struct TcpTransport {
    network: NetworkId,
    contract: NetworkContract,
    connections: Vec<Mutex<Option<Connection>>>,
    /// Where the tracker last saw each validator, tried before the contract's address.
    learned: Vec<Option<String>>,
    timeout: Duration,
    limits: Limits,
}

impl TcpTransport {
    /// Connections to `contract`'s validators at its addresses; each call gives up after
    /// `timeout`.
    pub fn new(contract: NetworkContract, timeout: Duration) -> Self {
        let limits = Limits {
            read_timeout: timeout,
            write_timeout: timeout,
            ..Limits::default()
        };
        TcpTransport {
            network: contract.id(),
            connections: contract
                .validators
                .iter()
                .map(|_| Mutex::new(None))
                .collect(),
            learned: vec![None; contract.validators.len()],
            contract,
            timeout,
            limits,
        }
    }

    /// Asks the contract's tracker where the validators are now, so that a validator that
    /// moved is still found; its answer only adds addresses to try first, for keys the
    /// contract names, and each is still checked with `HELLO`. Returns how many validators
    /// the tracker knew; a contract without a tracker knows none.
    pub async fn locate(
        &mut self,
        config: tally_tracker::ClientConfig,
    ) -> Result<usize, ClientError> {
        let Some(tracker) = self.contract.tracker.clone() else {
            return Ok(0);
        };
        let client = tally_tracker::TrackerClient::new(tracker.clone(), config);
        let peers = client
            .peers(self.network, None)
            .await
            .map_err(|e| ClientError::Unreachable(format!("tracker {tracker}: {e}")))?;
        let mut located = 0;
        for (slot, info) in self.learned.iter_mut().zip(&self.contract.validators) {
            if let Some(peer) = peers.iter().find(|peer| peer.account == info.key) {
                *slot = Some(peer.address.to_string());
                located += 1;
            }
        }
        Ok(located)
    }

    /// The address validator `i` answered at last: the tracker's, else the contract's.
    fn address_of(&self, i: usize) -> &str {
        self.learned[i]
            .as_deref()
            .unwrap_or(&self.contract.validators[i].address)
    }

    /// Connects to validator `i` where the tracker saw it, else at its contract address.
    async fn connect(&self, i: usize) -> Result<Connection, ClientError> {
        let contract_address = self.contract.validators[i].address.as_str();
        match self.learned[i].as_deref() {
            Some(learned) if learned != contract_address => {
                match self.connect_at(i, learned).await {
                    Ok(conn) => Ok(conn),
                    Err(error) => {
                        tracing::debug!(%error, "validator not at the tracker's address");
                        self.connect_at(i, contract_address).await
                    }
                }
            }
            _ => self.connect_at(i, contract_address).await,
        }
    }

    async fn connect_at(&self, i: usize, address: &str) -> Result<Connection, ClientError> {
        let info = &self.contract.validators[i];
        let mut conn = Connection::connect(address, self.limits, self.timeout)
            .await
            .map_err(|e| ClientError::Unreachable(format!("{address}: {e}")))?;
        let hello = Packet::Hello(Hello {
            network: self.network,
            validator: None,
            address: None,
            certificates: None,
        });
        match conn.call(&hello).await {
            Ok(Packet::Hello(answer)) if answer.validator == Some(info.key) => Ok(conn),
            Ok(Packet::Hello(_)) => Err(ClientError::Invalid(format!(
                "{address} is not validator {}",
                info.key.short()
            ))),
            Ok(Packet::Error(error)) => Err(ClientError::Refused(error)),
            Ok(other) => Err(ClientError::Unexpected(other.name())),
            Err(e) => Err(ClientError::Unreachable(format!("{address}: {e}"))),
        }
    }

    async fn call_tcp(&self, i: usize, packet: &Packet) -> Result<Packet, ClientError> {
        let mut slot = self.connections[i].lock().await;
        for attempt in 0..2 {
            if slot.is_none() {
                *slot = Some(self.connect(i).await?);
            }
            let Some(conn) = slot.as_mut() else { continue };
            match conn.call(packet).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    *slot = None;
                    if attempt == 1 {
                        return Err(ClientError::Unreachable(format!(
                            "{}: {e}",
                            self.address_of(i)
                        )));
                    }
                }
            }
        }
        Err(ClientError::Unreachable(self.address_of(i).to_string()))
    }

    /// Queues every packet, flushes once, then reads the answers in order. Keep a call to
    /// a few hundred packets: nothing is read until all are written.
    async fn pipeline(&self, i: usize, packets: &[Packet]) -> Result<Vec<Packet>, ClientError> {
        let mut slot = self.connections[i].lock().await;
        if slot.is_none() {
            *slot = Some(self.connect(i).await?);
        }
        let Some(conn) = slot.as_mut() else {
            return Err(ClientError::Unreachable(self.address_of(i).to_string()));
        };
        let exchange = async {
            for packet in packets {
                conn.feed_packet(packet).await?;
            }
            conn.flush().await?;
            let mut answers = Vec::with_capacity(packets.len());
            for _ in packets {
                answers.push(conn.recv().await?);
            }
            Ok::<_, tally_proto::ConnectionError>(answers)
        };
        match exchange.await {
            Ok(answers) => Ok(answers),
            Err(e) => {
                *slot = None;
                Err(ClientError::Unreachable(format!(
                    "{}: {e}",
                    self.address_of(i)
                )))
            }
        }
    }
}

impl Transport for TcpTransport {
    fn call<'a>(
        &'a self,
        i: usize,
        packet: &'a Packet,
    ) -> BoxFuture<'a, Result<Packet, ClientError>> {
        Box::pin(self.call_tcp(i, packet))
    }

    fn call_many<'a>(
        &'a self,
        i: usize,
        packets: &'a [Packet],
    ) -> BoxFuture<'a, Result<Vec<Packet>, ClientError>> {
        Box::pin(self.pipeline(i, packets))
    }

    fn pause(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn address(&self, i: usize) -> String {
        self.address_of(i).to_string()
    }
}
