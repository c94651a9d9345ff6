//! A wire topic room on the relay (DESIGN §8 step 1): where makers announce quotes and
//! payers and makers pass their hints. Joined again when the connection drops; every read
//! bounded, so a driver's loop never waits on the relay longer than it asked.

use std::time::{Duration, Instant};

use tally_relay::client::{self, ClientConfig, Incoming, RelayClient};
use tally_relay::{ClientError, RoomKind};
use tally_swap::{TOPIC_TOKEN, TopicLine};

/// What the room said.
#[derive(Debug)]
pub enum Heard {
    /// A line that parses.
    Line(TopicLine),
    /// Someone joined: makers announce their quotes at once for them.
    Arrived,
    /// Nothing in time, a line that does not parse, or a notice nobody acts on.
    Quiet,
}

/// One member's connection to a topic room, rejoined as needed.
pub struct TopicRoom {
    relay: String,
    room: String,
    client: Option<RelayClient>,
    last_attempt: Option<Instant>,
}

/// How long to wait between attempts to join again.
const REJOIN: Duration = Duration::from_secs(1);

impl TopicRoom {
    /// The room `topic` on the relay at `relay`; not joined until [`TopicRoom::join`] or
    /// [`TopicRoom::next`].
    pub fn new(relay: &str, topic: &str) -> TopicRoom {
        TopicRoom {
            relay: relay.to_owned(),
            room: topic.to_owned(),
            client: None,
            last_attempt: None,
        }
    }

    /// Joins now.
    pub async fn join(&mut self) -> Result<(), ClientError> {
        self.last_attempt = Some(Instant::now());
        let config = ClientConfig {
            connect_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        };
        let joined = client::join(
            self.relay.as_str(),
            RoomKind::Topic,
            &self.room,
            TOPIC_TOKEN,
            &config,
        )
        .await?;
        tracing::debug!(room = %self.room, members = joined.welcome.members, "joined the wire topic");
        self.client = Some(joined);
        Ok(())
    }

    /// Whether the room is joined now.
    pub fn joined(&self) -> bool {
        self.client.is_some()
    }

    /// Sends a line; a failure drops the connection (the next [`TopicRoom::next`] rejoins).
    pub async fn send(&mut self, line: &TopicLine) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        if let Err(error) = client.send(&line.to_line()).await {
            tracing::warn!(room = %self.room, %error, "relay send failed; joining again");
            self.client = None;
        }
    }

    /// The next thing from the room, waiting at most `wait`. Joins again (at most once a
    /// second) while disconnected.
    pub async fn next(&mut self, wait: Duration) -> Heard {
        if self.client.is_none() {
            let since = self.last_attempt.map_or(REJOIN, |at| at.elapsed());
            if since < REJOIN {
                tokio::time::sleep(wait.min(REJOIN - since)).await;
                return Heard::Quiet;
            }
            if let Err(error) = self.join().await {
                tracing::warn!(room = %self.room, %error, "joining the wire topic failed");
            }
            return Heard::Quiet;
        }
        let Some(client) = self.client.as_mut() else {
            return Heard::Quiet;
        };
        client.reader.set_read_timeout(wait);
        match client.recv().await {
            Ok(Some(Incoming::Line(line))) => match TopicLine::parse(&line) {
                Ok(line) => Heard::Line(line),
                Err(error) => {
                    tracing::debug!(room = %self.room, %error, "a topic line that does not parse");
                    Heard::Quiet
                }
            },
            Ok(Some(Incoming::Arrived(_))) => Heard::Arrived,
            Ok(Some(Incoming::Error { code, text })) => {
                tracing::warn!(room = %self.room, %code, %text, "the relay reported an error");
                Heard::Quiet
            }
            Ok(Some(_)) | Err(ClientError::Timeout(_)) => Heard::Quiet,
            Ok(None) => {
                tracing::warn!(room = %self.room, "the relay closed the connection; joining again");
                self.client = None;
                Heard::Quiet
            }
            Err(error) => {
                tracing::warn!(room = %self.room, %error, "relay read failed; joining again");
                self.client = None;
                Heard::Quiet
            }
        }
    }

    /// Keeps the connection alive (the relay drops silent members).
    pub async fn keepalive(&mut self) {
        if let Some(client) = self.client.as_mut()
            && client.writer.keepalive().await.is_err()
        {
            self.client = None;
        }
    }
}
