//! One relay connection: its place in the limits ([`Slot`]), its outbox, and the task that
//! reads its lines, answers its joins and hands its lines to the other members of its room
//! ([`run_connection`]). The state every connection shares ([`Shared`]) lives here too, so
//! that the accept loop in `server` uses this module and nothing here uses `server`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Shutdown};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use parking_lot::Mutex;
use tally_core::rate::TokenBucket;
use tokio::net::TcpStream;
use tokio::sync::Notify;
// Tokio's clock, not the system's: deadlines and rate limits then follow a test's paused
// time exactly as they follow real time in production.
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::busy_poll::Activity;
use crate::config::RelayConfig;
use crate::framing::{Frame, LineBuffer};
use crate::protocol::{
    ErrorCode, LeaveReason, MemberLine, Notice, classify_member_line, error_line, ip_text,
    parse_join, substitute_into,
};
use crate::rooms::{JoinRefusal, Member, Rooms};

/// Most bytes read from one socket per wake-up: bounds the work done before other
/// connections get a turn, and the size of one outgoing chunk.
const READ_CHUNK: usize = 32 * 1024;

/// Outboxes bigger than this are freed, not kept, once flushed.
const OUTBOX_KEEP: usize = 64 * 1024;

/// Counters of a running relay, for monitoring and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Connections open now (joined or not).
    pub open_connections: usize,
    /// Rooms that exist now.
    pub rooms: usize,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Connections refused at accept (too many in all or from one address).
    pub refused: u64,
    /// Lines delivered to members (a line to two receivers counts twice).
    pub lines_forwarded: u64,
    /// Bytes delivered to members, after substitution.
    pub bytes_forwarded: u64,
    /// Members disconnected as slow readers.
    pub slow_readers_dropped: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) lines_forwarded: AtomicU64,
    pub(crate) bytes_forwarded: AtomicU64,
    pub(crate) slow_readers_dropped: AtomicU64,
}

/// State shared by the accept loop and every connection task.
pub(crate) struct Shared {
    pub(crate) config: RelayConfig,
    pub(crate) rooms: Mutex<Rooms<Arc<Conn>>>,
    /// Open connections per address; `open` is changed under this lock too.
    pub(crate) per_ip: Mutex<HashMap<IpAddr, usize>>,
    pub(crate) open: AtomicUsize,
    pub(crate) next_id: AtomicU64,
    pub(crate) counters: Counters,
    /// When sockets were last read, for the busy poller (used only when it runs).
    pub(crate) activity: Activity,
    pub(crate) shutdown: CancellationToken,
    /// A few log lines per host per second: one host's floods cost the log little.
    pub(crate) log: tally_proto::admission::LogGate,
    /// What each host with open connections may still send: [`HOST_RATE_FACTOR`] times one
    /// connection's rate, shared by all its connections, so that opening more connections
    /// (or reconnecting for a fresh burst) does not multiply what one host makes the relay
    /// copy. Forgotten with the host's last connection.
    pub(crate) host_bytes: Mutex<HashMap<IpAddr, TokenBucket>>,
}

/// A host may send this many times one connection's byte rate and burst, over all its
/// connections (a market maker may hold a few rooms).
pub(crate) const HOST_RATE_FACTOR: u64 = 4;

impl Shared {
    /// Charges `n` bytes read from `ip` to its host's budget; `false` once it is spent.
    fn take_host_bytes(&self, ip: IpAddr, n: u64, now: std::time::Instant) -> bool {
        let config = &self.config;
        if config.bytes_per_sec == 0 {
            return true;
        }
        let mut hosts = self.host_bytes.lock();
        let bucket = hosts.entry(ip).or_insert_with(|| {
            TokenBucket::new(
                config.bytes_per_sec.saturating_mul(HOST_RATE_FACTOR),
                config.byte_burst.saturating_mul(HOST_RATE_FACTOR),
                now,
            )
        });
        bucket.refill(now);
        bucket.take(n)
    }
}

impl Shared {
    pub(crate) fn stats(&self) -> RelayStats {
        let c = &self.counters;
        RelayStats {
            open_connections: self.open.load(Ordering::Relaxed),
            rooms: self.rooms.lock().room_count(),
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            lines_forwarded: c.lines_forwarded.load(Ordering::Relaxed),
            bytes_forwarded: c.bytes_forwarded.load(Ordering::Relaxed),
            slow_readers_dropped: c.slow_readers_dropped.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Holds a connection's place in the connection limits; gives it back when dropped.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Slot {
    /// The place of a connection from `ip`, already counted in `shared`'s limits.
    pub(crate) fn new(shared: Arc<Shared>, ip: IpAddr) -> Self {
        Slot { shared, ip }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.shared.per_ip.lock();
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&self.ip);
                self.shared.host_bytes.lock().remove(&self.ip);
            }
        }
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a member's outbox stopped accepting lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Death {
    /// The outbox overflowed.
    Slow,
    /// Writing to the socket failed.
    Reset,
}

/// Lines waiting for a member's socket to accept them.
#[derive(Default)]
struct Outbox {
    buf: BytesMut,
    /// When the outbox last became non-empty or last made progress.
    stalled_since: Option<Instant>,
    dead: Option<Death>,
    /// The bytes written to the socket so far end inside a line (after a partial write).
    mid_line: bool,
}

/// One connection, shared between its own task and the members that send to it.
pub(crate) struct Conn {
    id: u64,
    ip: IpAddr,
    /// The address as text, computed once: what every `#` of this member becomes.
    ip_text: Box<[u8]>,
    stream: TcpStream,
    out: Mutex<Outbox>,
    /// Wakes the connection's task when its outbox becomes non-empty or dies.
    wake: Notify,
}

impl Conn {
    /// A new connection `id` from `ip` on `stream`, with an empty outbox.
    pub(crate) fn new(id: u64, ip: IpAddr, stream: TcpStream) -> Self {
        Conn {
            id,
            ip,
            ip_text: ip_text(ip).into_bytes().into_boxed_slice(),
            stream,
            out: Mutex::new(Outbox::default()),
            wake: Notify::new(),
        }
    }

    /// Queues `data` for this member, writing as much as the socket takes at once when
    /// nothing is queued. Never waits. Marks the member slow if the queue would pass
    /// `max_queue` (a single chunk is always accepted into an empty queue).
    fn push(&self, data: &[u8], max_queue: usize) {
        let mut out = self.out.lock();
        if out.dead.is_some() {
            return;
        }
        let mut rest = data;
        if out.buf.is_empty() {
            match self.stream.try_write(rest) {
                Ok(n) => {
                    if n > 0 {
                        out.mid_line = rest[n - 1] != b'\n';
                    }
                    rest = &rest[n..];
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    out.dead = Some(Death::Reset);
                    drop(out);
                    self.wake.notify_one();
                    return;
                }
            }
            if rest.is_empty() {
                return;
            }
            out.stalled_since = Some(Instant::now());
        } else if out.buf.len() + rest.len() > max_queue {
            out.dead = Some(Death::Slow);
            out.buf = BytesMut::new();
            drop(out);
            self.wake.notify_one();
            return;
        }
        let was_empty = out.buf.is_empty();
        out.buf.extend_from_slice(rest);
        drop(out);
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// Queues the connection's last line, even past the limit; for a slow reader the queue
    /// is dropped and the line is tried once, directly.
    fn push_last(&self, line: &[u8]) {
        let mut out = self.out.lock();
        match out.dead {
            Some(Death::Reset) => {}
            Some(Death::Slow) => {
                // The queue is gone; end a cut line first so the error stands on its own.
                let mut last = Vec::with_capacity(line.len() + 1);
                if out.mid_line {
                    last.push(b'\n');
                }
                last.extend_from_slice(line);
                let _ = self.stream.try_write(&last);
            }
            None => {
                let mut rest = line;
                if out.buf.is_empty()
                    && let Ok(n) = self.stream.try_write(rest)
                {
                    rest = &rest[n..];
                }
                out.buf.extend_from_slice(rest);
            }
        }
    }

    /// Writes queued lines while the socket takes them.
    fn flush(&self) -> io::Result<()> {
        let mut out = self.out.lock();
        if out.dead.is_some() {
            return Ok(());
        }
        while !out.buf.is_empty() {
            match self.stream.try_write(&out.buf) {
                Ok(n) => {
                    if n > 0 {
                        out.mid_line = out.buf[n - 1] != b'\n';
                    }
                    out.buf.advance(n);
                    out.stalled_since = Some(Instant::now());
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) => {
                    out.dead = Some(Death::Reset);
                    return Err(error);
                }
            }
        }
        out.stalled_since = None;
        if out.buf.capacity() > OUTBOX_KEEP {
            out.buf = BytesMut::new();
        }
        Ok(())
    }

    /// (something queued, stalled since, dead)
    fn outbox_state(&self) -> (bool, Option<Instant>, Option<Death>) {
        let out = self.out.lock();
        (!out.buf.is_empty(), out.stalled_since, out.dead)
    }
}

/// Why a connection ends.
#[derive(Debug)]
enum End {
    Quit,
    Reset,
    Idle,
    JoinTimeout,
    Slow,
    Flood,
    TooManyErrors,
    /// Refused before joining, with the code and explanation.
    Refused(ErrorCode, String),
    Shutdown,
}

impl End {
    /// The `@error` line the connection gets before it is closed, if any.
    fn final_error(&self, config: &RelayConfig) -> Option<(ErrorCode, String)> {
        Some(match self {
            End::Quit | End::Reset => return None,
            End::Idle => (
                ErrorCode::IdleTimeout,
                format!("no line for {} ms", config.idle_timeout.as_millis()),
            ),
            End::JoinTimeout => (
                ErrorCode::JoinTimeout,
                format!("no join line within {} ms", config.join_timeout.as_millis()),
            ),
            End::Slow => (
                ErrorCode::SlowReader,
                format!(
                    "you did not read your lines: more than {} bytes queued or no progress for {} ms",
                    config.max_queue_bytes,
                    config.write_timeout.as_millis()
                ),
            ),
            End::Flood => (
                ErrorCode::Flood,
                format!(
                    "more than {} lines/s (burst {}) or {} bytes/s (burst {})",
                    config.lines_per_sec,
                    config.line_burst,
                    config.bytes_per_sec,
                    config.byte_burst
                ),
            ),
            End::TooManyErrors => (
                ErrorCode::TooManyErrors,
                format!("more than {} refused lines", config.max_bad_lines),
            ),
            End::Refused(code, text) => (*code, text.clone()),
            End::Shutdown => (ErrorCode::Shutdown, "the relay is stopping".to_owned()),
        })
    }

    /// What the other members are told in `@left`; `None` when they are not told.
    fn leave_reason(&self) -> Option<LeaveReason> {
        Some(match self {
            End::Quit => LeaveReason::Quit,
            End::Reset => LeaveReason::Reset,
            End::Idle => LeaveReason::Idle,
            End::Slow => LeaveReason::Slow,
            End::Flood => LeaveReason::Flood,
            End::TooManyErrors => LeaveReason::Errors,
            End::JoinTimeout | End::Refused(..) | End::Shutdown => return None,
        })
    }
}

/// A connection's protocol state, apart from its read buffer.
struct Session {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    /// The room joined, once joined.
    room: Option<Box<str>>,
    opened: Instant,
    last_line: Instant,
    line_bucket: TokenBucket,
    byte_bucket: TokenBucket,
    bad_lines: u32,
    /// Set by line handling to end the connection after this batch.
    end: Option<End>,
    /// Substituted lines of the current batch, to go to every other member.
    chunk: Vec<u8>,
    chunk_lines: u64,
    /// Scratch list of the receivers of the current chunk.
    peers: Vec<Arc<Conn>>,
}

pub(crate) async fn run_connection(shared: Arc<Shared>, conn: Arc<Conn>, slot: Slot) {
    let config = &shared.config;
    let now = Instant::now();
    let mut lines = LineBuffer::new(config.max_line_bytes);
    let mut session = Session {
        line_bucket: TokenBucket::new(
            u64::from(config.lines_per_sec),
            u64::from(config.line_burst),
            now.into_std(),
        ),
        byte_bucket: TokenBucket::new(config.bytes_per_sec, config.byte_burst, now.into_std()),
        shared: Arc::clone(&shared),
        conn: Arc::clone(&conn),
        room: None,
        opened: now,
        last_line: now,
        bad_lines: 0,
        end: None,
        chunk: Vec::new(),
        chunk_lines: 0,
        peers: Vec::new(),
    };
    let end = session.serve(&mut lines).await;
    drop(lines);
    session.finish(end).await;
    drop(slot);
}

impl Session {
    /// The next deadline and what happens when it passes.
    fn deadline(&self, stalled_since: Option<Instant>) -> (Instant, End) {
        let config = &self.shared.config;
        let (mut at, mut end) = match self.room {
            None => (self.opened + config.join_timeout, End::JoinTimeout),
            Some(_) => (self.last_line + config.idle_timeout, End::Idle),
        };
        if let Some(since) = stalled_since {
            let stall = since + config.write_timeout;
            if stall < at {
                (at, end) = (stall, End::Slow);
            }
        }
        (at, end)
    }

    /// The connection's event loop; returns why it ends.
    async fn serve(&mut self, lines: &mut LineBuffer) -> End {
        let conn = Arc::clone(&self.conn);
        let shared = Arc::clone(&self.shared);
        let (first, _) = self.deadline(None);
        let timer = tokio::time::sleep_until(first);
        tokio::pin!(timer);
        let cancelled = shared.shutdown.cancelled();
        tokio::pin!(cancelled);
        loop {
            let (pending, stalled_since, dead) = conn.outbox_state();
            match dead {
                Some(Death::Slow) => return End::Slow,
                Some(Death::Reset) => return End::Reset,
                None => {}
            }
            let (due, _) = self.deadline(stalled_since);
            if due < timer.deadline() {
                timer.as_mut().reset(due);
            }
            tokio::select! {
                biased;
                () = &mut cancelled => return End::Shutdown,
                () = conn.wake.notified() => {}
                ready = conn.stream.writable(), if pending => {
                    if ready.and_then(|()| conn.flush()).is_err() {
                        return End::Reset;
                    }
                }
                ready = conn.stream.readable() => {
                    if ready.is_err() {
                        return End::Reset;
                    }
                    if let Some(end) = self.on_readable(lines) {
                        return end;
                    }
                }
                () = &mut timer => {
                    let (_, stalled_since, _) = conn.outbox_state();
                    let (due, end) = self.deadline(stalled_since);
                    if Instant::now() >= due {
                        return end;
                    }
                    timer.as_mut().reset(due);
                }
            }
        }
    }

    /// Reads one chunk and handles every complete line in it.
    fn on_readable(&mut self, lines: &mut LineBuffer) -> Option<End> {
        let target = lines.read_target(READ_CHUNK);
        let read = self.conn.stream.try_read_buf(&mut target.limit(READ_CHUNK));
        let n = match read {
            Ok(0) => return Some(End::Quit),
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                // Nothing more for now: give the buffers back while waiting.
                lines.release_if_empty();
                self.chunk = Vec::new();
                return None;
            }
            Err(_) => return Some(End::Reset),
        };
        let now = Instant::now();
        if !self.shared.config.busy_poll.is_zero() {
            self.shared.activity.read_at(now);
        }
        self.line_bucket.refill(now.into_std());
        self.byte_bucket.refill(now.into_std());
        if !self.byte_bucket.take(n as u64)
            || !self
                .shared
                .take_host_bytes(self.conn.ip, n as u64, now.into_std())
        {
            return Some(End::Flood);
        }
        let _ = lines.drain(|frame| self.on_frame(frame, now));
        self.forward();
        self.end.take()
    }

    /// Handles one complete line (or an over-long one).
    fn on_frame(&mut self, frame: Frame<'_>, now: Instant) -> ControlFlow<()> {
        if !self.line_bucket.take(1) {
            return self.stop(End::Flood);
        }
        let line = match frame {
            Frame::TooLong if self.room.is_none() => {
                return self.stop(End::Refused(
                    ErrorCode::TooLong,
                    format!(
                        "lines are at most {} bytes",
                        self.shared.config.max_line_bytes
                    ),
                ));
            }
            Frame::TooLong => return self.refuse_line(ErrorCode::TooLong),
            Frame::Line(line) => line,
        };
        self.last_line = now;
        if self.room.is_none() {
            return self.on_join_line(line);
        }
        match classify_member_line(line) {
            MemberLine::Keepalive => ControlFlow::Continue(()),
            MemberLine::Refused(code) => self.refuse_line(code),
            MemberLine::Message(message) => {
                let before = self.chunk.len();
                substitute_into(&mut self.chunk, message, &self.conn.ip_text);
                self.chunk.push(b'\n');
                // Raw bytes were charged at the read; charge what substitution added.
                let added = (self.chunk.len() - before).saturating_sub(message.len() + 1);
                if !self.byte_bucket.take(added as u64) {
                    self.chunk.truncate(before);
                    return self.stop(End::Flood);
                }
                self.chunk_lines += 1;
                ControlFlow::Continue(())
            }
        }
    }

    fn stop(&mut self, end: End) -> ControlFlow<()> {
        self.end = Some(end);
        ControlFlow::Break(())
    }

    /// Answers a refused member line with an `@error` line, or closes the connection when
    /// it has sent too many.
    fn refuse_line(&mut self, code: ErrorCode) -> ControlFlow<()> {
        self.bad_lines += 1;
        if self.bad_lines > self.shared.config.max_bad_lines {
            return self.stop(End::TooManyErrors);
        }
        let text = match code {
            ErrorCode::TooLong => format!(
                "line dropped: lines are at most {} bytes",
                self.shared.config.max_line_bytes
            ),
            ErrorCode::BadUtf8 => "line dropped: it is not valid UTF-8".to_owned(),
            ErrorCode::Reserved => "line dropped: lines starting with @ are the relay's".to_owned(),
            other => format!("line dropped: {other}"),
        };
        self.conn
            .push(&error_line(code, &text), self.shared.config.max_queue_bytes);
        ControlFlow::Continue(())
    }

    /// Handles the first line: join a room or refuse.
    fn on_join_line(&mut self, line: &[u8]) -> ControlFlow<()> {
        if line.is_empty() {
            return ControlFlow::Continue(());
        }
        let request = match parse_join(line) {
            Ok(request) => request,
            Err(error) => return self.stop(End::Refused(error.code(), error.text().to_owned())),
        };
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let conn = &self.conn;
        let member = Member {
            id: conn.id,
            ip: conn.ip,
            handle: Arc::clone(conn),
        };
        let mut rooms = shared.rooms.lock();
        match rooms.join(request.kind, request.room, request.token, member) {
            Ok(joined) => {
                // Notices are queued under the rooms lock so that every member sees
                // arrivals, departures and lines in one consistent order.
                let mut hello = Notice::Ok {
                    kind: request.kind,
                    room: request.room.to_owned(),
                    id: conn.id,
                    ip: conn.ip,
                    members: joined.members,
                    cap: joined.cap,
                    idle_ms: u64::try_from(config.idle_timeout.as_millis()).unwrap_or(u64::MAX),
                    max_line: config.max_line_bytes,
                }
                .to_line();
                for present in joined.present {
                    hello.extend_from_slice(
                        &Notice::Here {
                            id: present.id,
                            ip: present.ip,
                        }
                        .to_line(),
                    );
                }
                conn.push(&hello, config.max_queue_bytes);
                let arrived = Notice::Arrived {
                    id: conn.id,
                    ip: conn.ip,
                }
                .to_line();
                for present in joined.present {
                    present.handle.push(&arrived, config.max_queue_bytes);
                }
                drop(rooms);
                debug!(id = conn.id, room = request.room, kind = %request.kind, "joined");
                self.room = Some(request.room.into());
                ControlFlow::Continue(())
            }
            Err(refusal) => {
                drop(rooms);
                let (code, text) = match refusal {
                    JoinRefusal::WrongToken => (
                        ErrorCode::WrongToken,
                        "the room exists and its token is different".to_owned(),
                    ),
                    JoinRefusal::RoomFull { cap } => (
                        ErrorCode::RoomFull,
                        format!("the room has its {cap} members"),
                    ),
                    JoinRefusal::WrongKind { existing } => (
                        ErrorCode::WrongKind,
                        format!("the room is a {existing} room"),
                    ),
                };
                self.stop(End::Refused(code, text))
            }
        }
    }

    /// Sends the batch's lines to every other member of the room.
    fn forward(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        if let Some(room) = &self.room {
            let shared = &self.shared;
            {
                let rooms = shared.rooms.lock();
                self.peers.extend(
                    rooms
                        .members(room)
                        .iter()
                        .filter(|m| m.id != self.conn.id)
                        .map(|m| Arc::clone(&m.handle)),
                );
            }
            for peer in &self.peers {
                peer.push(&self.chunk, shared.config.max_queue_bytes);
            }
            let receivers = self.peers.len() as u64;
            let counters = &shared.counters;
            counters
                .lines_forwarded
                .fetch_add(self.chunk_lines * receivers, Ordering::Relaxed);
            counters
                .bytes_forwarded
                .fetch_add(self.chunk.len() as u64 * receivers, Ordering::Relaxed);
            self.peers.clear();
        }
        self.chunk.clear();
        self.chunk_lines = 0;
    }

    /// Leaves the room (telling the others), sends the last `@error` line, and closes.
    async fn finish(mut self, end: End) {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let conn = Arc::clone(&self.conn);
        match &end {
            End::Slow => {
                shared
                    .counters
                    .slow_readers_dropped
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(held_back) = shared.log.pass(conn.ip, std::time::Instant::now()) {
                    info!(id = conn.id, ip = %conn.ip, held_back, "slow reader disconnected");
                }
            }
            End::Flood | End::TooManyErrors => {
                if let Some(held_back) = shared.log.pass(conn.ip, std::time::Instant::now()) {
                    info!(id = conn.id, ip = %conn.ip, held_back, reason = ?end, "abusive member disconnected");
                }
            }
            _ => debug!(id = conn.id, ip = %conn.ip, reason = ?end, "connection ends"),
        }
        if let Some(room) = self.room.take() {
            let mut rooms = shared.rooms.lock();
            if let Some((_gone, rest)) = rooms.leave(&room, conn.id)
                && let Some(reason) = end.leave_reason()
            {
                let left = Notice::Left {
                    id: conn.id,
                    ip: conn.ip,
                    reason,
                }
                .to_line();
                for member in rest {
                    member.handle.push(&left, config.max_queue_bytes);
                }
            }
        }
        self.peers.clear();
        if let Some((code, text)) = end.final_error(config) {
            conn.push_last(&error_line(code, &text));
        }
        linger(&conn, config.close_linger).await;
    }
}

/// The most a closing connection's input is drained: enough for what a client sent before
/// it saw the `@error` line; a client that keeps writing flat out (a flooder) is not read
/// for the whole linger, and gets its reset.
const MAX_LINGER_DRAIN: usize = 256 * 1024;

/// Closes a connection politely: flushes its last lines, half-closes, and reads what the
/// client still sends, for at most `linger` and [`MAX_LINGER_DRAIN`] bytes. Closing a socket
/// with unread input sends a reset, which can destroy the client's copy of the final
/// `@error` line.
async fn linger(conn: &Conn, linger: Duration) {
    let deadline = Instant::now() + linger;
    loop {
        let (pending, _, dead) = conn.outbox_state();
        if !pending || dead.is_some() {
            break;
        }
        match tokio::time::timeout_at(deadline, conn.stream.writable()).await {
            Ok(Ok(())) => {
                if conn.flush().is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    let _ = socket2::SockRef::from(&conn.stream).shutdown(Shutdown::Write);
    let mut sink = Vec::with_capacity(4096);
    let mut drained = 0;
    while let Ok(Ok(())) = tokio::time::timeout_at(deadline, conn.stream.readable()).await {
        match conn.stream.try_read_buf(&mut sink) {
            Ok(0) => break,
            Ok(n) => {
                sink.clear();
                drained += n;
                if drained >= MAX_LINGER_DRAIN {
                    break;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
}
