//! A small relay client: join a room, send lines, receive lines and notices. Used by
//! `tally chat`, the tests, and later by wallets (LiveConnect transfers) and market makers
//! (topic rooms).

use std::net::IpAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::error::ClientError;
use crate::protocol::{
    ErrorCode, LeaveReason, Notice, RESERVED_PREFIX, RoomKind, join_line, valid_room, valid_token,
};

/// Client-side limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long to wait for the TCP connection. Default 10 s.
    pub connect_timeout: Duration,
    /// How long one [`ClientReader::recv`] waits before returning
    /// [`ClientError::Timeout`] (the connection stays usable). Default 120 s.
    pub read_timeout: Duration,
    /// Longest line accepted from the relay. Forwarded lines can be longer than the relay's
    /// own input limit because each `#` grows into an address. Default 4 MiB.
    pub max_line_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
            max_line_bytes: 4 << 20,
        }
    }
}

/// Another member, as notices name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its relay-wide member id.
    pub id: u64,
    /// Its address as the relay sees it.
    pub ip: IpAddr,
}

/// What the relay said when the join worked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// The room's kind.
    pub kind: RoomKind,
    /// The room's name.
    pub room: String,
    /// This connection's member id.
    pub id: u64,
    /// This connection's address as the relay sees it: what its `#` becomes.
    pub ip: IpAddr,
    /// Members now, this one included.
    pub members: usize,
    /// The room's cap.
    pub cap: usize,
    /// Send a line (an empty one will do) more often than this or be disconnected.
    pub idle_timeout: Duration,
    /// The longest line the relay accepts.
    pub max_line: usize,
    /// The members already there.
    pub present: Vec<Peer>,
}

/// One thing received from the relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A line from another member, `#` already replaced by its address.
    Line(String),
    /// `@arrived`: a member joined.
    Arrived(Peer),
    /// `@left`: a member left.
    Left {
        /// Who.
        peer: Peer,
        /// Why.
        reason: LeaveReason,
    },
    /// `@error`: a refused line, or the reason the relay is closing this connection.
    Error {
        /// The code.
        code: ErrorCode,
        /// The explanation.
        text: String,
    },
    /// `@here`: only during the join, normally consumed by [`join`].
    Here(Peer),
    /// A relay line this client does not understand (from a newer relay).
    Unknown(String),
}

impl Incoming {
    /// Interprets one line from the relay.
    pub fn from_line(line: String) -> Incoming {
        if line.as_bytes().first() != Some(&RESERVED_PREFIX) {
            return Incoming::Line(line);
        }
        match Notice::parse(&line) {
            Some(Notice::Arrived { id, ip }) => Incoming::Arrived(Peer { id, ip }),
            Some(Notice::Here { id, ip }) => Incoming::Here(Peer { id, ip }),
            Some(Notice::Left { id, ip, reason }) => Incoming::Left {
                peer: Peer { id, ip },
                reason,
            },
            Some(Notice::Error { code, text }) => Incoming::Error { code, text },
            Some(Notice::Ok { .. }) | None => Incoming::Unknown(line),
        }
    }
}

/// A joined connection; split it to read and write from different tasks.
#[derive(Debug)]
pub struct RelayClient {
    /// The receiving half.
    pub reader: ClientReader,
    /// The sending half.
    pub writer: ClientWriter,
    /// What the relay said at the join.
    pub welcome: Welcome,
}

impl RelayClient {
    /// Sends one line to the room. See [`ClientWriter::send`].
    pub async fn send(&mut self, line: &str) -> Result<(), ClientError> {
        self.writer.send(line).await
    }

    /// Receives the next line or notice. See [`ClientReader::recv`].
    pub async fn recv(&mut self) -> Result<Option<Incoming>, ClientError> {
        self.reader.recv().await
    }
}

/// Connects to the relay at `addr` and joins `room` of `kind` with `token`.
pub async fn join<A: ToSocketAddrs>(
    addr: A,
    kind: RoomKind,
    room: &str,
    token: &str,
    config: &ClientConfig,
) -> Result<RelayClient, ClientError> {
    if !valid_room(room) {
        return Err(ClientError::InvalidJoin(
            "room names are 1-128 bytes of A-Z a-z 0-9 . _ - : + / = ~",
        ));
    }
    if !valid_token(token) {
        return Err(ClientError::InvalidJoin(
            "tokens are 1-256 bytes of printable ASCII without spaces",
        ));
    }
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ClientError::Timeout(config.connect_timeout))?
        .map_err(ClientError::Connect)?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut reader = ClientReader {
        half: read,
        buf: BytesMut::new(),
        scanned: 0,
        max_line: config.max_line_bytes,
        read_timeout: config.read_timeout,
    };
    let mut writer = ClientWriter {
        half: BufWriter::new(write),
        max_line: usize::MAX,
        timeout: config.read_timeout,
    };
    writer.write_raw(&join_line(kind, room, token)).await?;
    writer.flush().await?;
    let first = reader.recv_line().await?.ok_or(ClientError::Closed)?;
    let welcome = match Notice::parse(&first) {
        Some(Notice::Ok {
            kind,
            room,
            id,
            ip,
            members,
            cap,
            idle_ms,
            max_line,
        }) => Welcome {
            kind,
            room,
            id,
            ip,
            members,
            cap,
            idle_timeout: Duration::from_millis(idle_ms),
            max_line,
            present: Vec::new(),
        },
        Some(Notice::Error { code, text }) => {
            return Err(ClientError::Refused {
                code: code.to_string(),
                text,
            });
        }
        _ => return Err(ClientError::Protocol(first)),
    };
    let mut welcome = welcome;
    writer.max_line = welcome.max_line;
    for _ in 1..welcome.members.min(welcome.cap) {
        let line = reader.recv_line().await?.ok_or(ClientError::Closed)?;
        match Notice::parse(&line) {
            Some(Notice::Here { id, ip }) => welcome.present.push(Peer { id, ip }),
            _ => return Err(ClientError::Protocol(line)),
        }
    }
    Ok(RelayClient {
        reader,
        writer,
        welcome,
    })
}

/// The receiving half of a [`RelayClient`].
#[derive(Debug)]
pub struct ClientReader {
    half: OwnedReadHalf,
    buf: BytesMut,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
    max_line: usize,
    read_timeout: Duration,
}

impl ClientReader {
    /// The next line from the relay, raw (notices included), without its newline. `None`
    /// when the relay closed the connection. Cancel-safe: usable in `select!`.
    pub async fn recv_line(&mut self) -> Result<Option<String>, ClientError> {
        loop {
            if let Some(at) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
                let end = self.scanned + at;
                let mut line = self.buf.split_to(end + 1);
                self.scanned = 0;
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                return String::from_utf8(line.to_vec())
                    .map(Some)
                    .map_err(|_| ClientError::Protocol("a line that is not UTF-8".into()));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > self.max_line {
                return Err(ClientError::LineTooLong(self.max_line));
            }
            if self.buf.is_empty() && self.buf.capacity() > 64 * 1024 {
                self.buf = BytesMut::new();
            }
            self.buf.reserve(16 * 1024);
            let room = self.max_line + 2 - self.buf.len();
            let mut limited = (&mut self.buf).limit(room);
            let read = self.half.read_buf(&mut limited);
            match tokio::time::timeout(self.read_timeout, read).await {
                Err(_) => return Err(ClientError::Timeout(self.read_timeout)),
                Ok(Err(error)) => return Err(ClientError::Io(error)),
                Ok(Ok(0)) => {
                    if !self.buf.is_empty() {
                        // A last line without its newline.
                        let rest = self.buf.split();
                        self.scanned = 0;
                        return String::from_utf8(rest.to_vec())
                            .map(Some)
                            .map_err(|_| ClientError::Protocol("a line that is not UTF-8".into()));
                    }
                    return Ok(None);
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next line or notice, interpreted. `None` when the relay closed the connection.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Incoming>, ClientError> {
        Ok(self.recv_line().await?.map(Incoming::from_line))
    }

    /// Changes how long one receive waits.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.read_timeout = timeout;
    }

    /// Bytes received but not yet returned as lines.
    pub fn buffered(&self) -> usize {
        self.buf.remaining()
    }
}

/// The sending half of a [`RelayClient`].
#[derive(Debug)]
pub struct ClientWriter {
    half: BufWriter<OwnedWriteHalf>,
    max_line: usize,
    /// A write that the relay does not take within this long fails.
    timeout: Duration,
}

impl ClientWriter {
    /// Sends one line to the room (the relay replaces each `#` with this member's address).
    /// Refuses lines the relay would refuse: with a line break, longer than the relay's
    /// limit, or starting with `@`. An empty line is a keepalive.
    pub async fn send(&mut self, line: &str) -> Result<(), ClientError> {
        self.feed(line).await?;
        self.flush().await
    }

    /// Queues one line without flushing, to send many lines in one write; call
    /// [`ClientWriter::flush`] after.
    pub async fn feed(&mut self, line: &str) -> Result<(), ClientError> {
        if line.contains(['\n', '\r']) {
            return Err(ClientError::InvalidLine(
                "a line cannot contain a line break",
            ));
        }
        if line.len() > self.max_line {
            return Err(ClientError::InvalidLine(
                "the line is longer than the relay accepts",
            ));
        }
        if line.as_bytes().first() == Some(&RESERVED_PREFIX) {
            return Err(ClientError::InvalidLine(
                "lines starting with @ are reserved for the relay",
            ));
        }
        self.write_raw(line).await
    }

    /// Sends an empty line: proves this member is alive without bothering the others.
    pub async fn keepalive(&mut self) -> Result<(), ClientError> {
        self.write_raw("").await?;
        self.flush().await
    }

    /// Sends what [`ClientWriter::feed`] queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        tokio::time::timeout(self.timeout, self.half.flush())
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))??;
        Ok(())
    }

    /// Flushes and half-closes the connection: the relay tells the room `quit`.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.flush().await?;
        tokio::time::timeout(self.timeout, self.half.shutdown())
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))??;
        Ok(())
    }

    async fn write_raw(&mut self, line: &str) -> Result<(), ClientError> {
        let write = async {
            self.half.write_all(line.as_bytes()).await?;
            self.half.write_all(b"\n").await
        };
        tokio::time::timeout(self.timeout, write)
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))??;
        Ok(())
    }
}
