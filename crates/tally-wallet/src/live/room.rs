//! The transfer's private relay room: joined at the start, joined again when the connection
//! is lost, every read bounded by [`TICK`](super::TICK), so the driver's loop never waits
//! on the relay longer than a tick.

use std::time::{Duration, Instant};

use tally_proto::live::{LiveMessage, parse_line};
use tally_relay::client::{self, ClientConfig, Incoming, RelayClient};
use tally_relay::{ClientError, RoomKind};

use super::TICK;

/// What the room said, in the machines' terms.
#[derive(Debug)]
pub(super) enum RoomEvent {
    /// The peer is in the room (it arrived, or was there when this side joined).
    PeerJoined,
    /// The peer left (or its connection dropped).
    PeerLeft,
    /// A line from the peer that parses.
    Line(LiveMessage),
    /// A line from the peer that does not parse (why).
    BadLine(String),
    /// Nothing within a tick, or nothing the machines care about.
    Quiet,
}

/// One side's connection to the private room, rejoined as needed.
pub(super) struct Room {
    relay: String,
    room: String,
    token: String,
    config: ClientConfig,
    client: Option<RelayClient>,
    last_attempt: Option<Instant>,
    /// Whether the peer is in the room, as far as this connection knows.
    peer_present: bool,
}

impl Room {
    /// Not yet joined: [`Room::join`] or [`Room::next`] joins.
    pub fn new(relay: &str, room: &str, token: &str) -> Room {
        Room {
            relay: relay.to_owned(),
            room: room.to_owned(),
            token: token.to_owned(),
            config: ClientConfig {
                connect_timeout: Duration::from_secs(5),
                read_timeout: TICK,
                ..ClientConfig::default()
            },
            client: None,
            last_attempt: None,
            peer_present: false,
        }
    }

    /// Joins the room now; returns whether the peer is there already.
    pub async fn join(&mut self) -> Result<bool, ClientError> {
        self.last_attempt = Some(Instant::now());
        let joined = client::join(
            self.relay.as_str(),
            RoomKind::Private,
            &self.room,
            &self.token,
            &self.config,
        )
        .await?;
        let present = !joined.welcome.present.is_empty();
        self.peer_present = present;
        tracing::debug!(room = %self.room, present, "joined the relay room");
        self.client = Some(joined);
        Ok(present)
    }

    /// Whether the peer is in the room now, as far as this side knows: what it sends now
    /// reaches the peer.
    pub fn peer_present(&self) -> bool {
        self.client.is_some() && self.peer_present
    }

    /// Sends a line; a failure drops the connection (the next [`Room::next`] rejoins, and
    /// the peer's `@here` then makes the machine re-send everything).
    pub async fn send(&mut self, line: &str) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        if let Err(error) = client.send(line).await {
            tracing::warn!(room = %self.room, %error, "relay send failed; rejoining");
            self.client = None;
        }
    }

    /// The next thing from the room, waiting at most about a tick. Rejoins (at most once a
    /// tick) while disconnected.
    pub async fn next(&mut self) -> RoomEvent {
        if self.client.is_none() {
            if self.last_attempt.is_some_and(|at| at.elapsed() < TICK) {
                tokio::time::sleep(
                    TICK.saturating_sub(
                        self.last_attempt.map_or(Duration::ZERO, |at| at.elapsed()),
                    ),
                )
                .await;
                return RoomEvent::Quiet;
            }
            return match self.join().await {
                Ok(true) => RoomEvent::PeerJoined,
                Ok(false) => RoomEvent::Quiet,
                Err(error) => {
                    tracing::warn!(room = %self.room, %error, "joining the relay room failed");
                    RoomEvent::Quiet
                }
            };
        }
        let event = self.read().await;
        match event {
            RoomEvent::PeerJoined | RoomEvent::Line(_) | RoomEvent::BadLine(_) => {
                self.peer_present = true
            }
            RoomEvent::PeerLeft => self.peer_present = false,
            RoomEvent::Quiet => {}
        }
        event
    }

    /// One read from the joined connection (dropped when it fails).
    async fn read(&mut self) -> RoomEvent {
        let Some(client) = self.client.as_mut() else {
            return RoomEvent::Quiet;
        };
        match client.recv().await {
            Ok(Some(Incoming::Line(line))) => match parse_line(&line) {
                Ok(message) => RoomEvent::Line(message),
                Err(error) => RoomEvent::BadLine(error.to_string()),
            },
            Ok(Some(Incoming::Arrived(_) | Incoming::Here(_))) => RoomEvent::PeerJoined,
            Ok(Some(Incoming::Left { .. })) => RoomEvent::PeerLeft,
            Ok(Some(Incoming::Error { code, text })) => {
                tracing::warn!(room = %self.room, %code, %text, "the relay reported an error");
                RoomEvent::Quiet
            }
            Ok(Some(Incoming::Unknown(_))) | Err(ClientError::Timeout(_)) => RoomEvent::Quiet,
            Ok(None) => {
                tracing::warn!(room = %self.room, "the relay closed the connection; rejoining");
                self.client = None;
                RoomEvent::Quiet
            }
            Err(error) => {
                tracing::warn!(room = %self.room, %error, "relay read failed; rejoining");
                self.client = None;
                RoomEvent::Quiet
            }
        }
    }
}
