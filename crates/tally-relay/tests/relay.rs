//! Integration tests of the relay over real TCP on loopback: each test starts a relay
//! in-process on port 0 with short limits and drives it with real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tally_relay::client::{self, ClientConfig, Incoming, Peer, RelayClient};
use tally_relay::{ClientError, LeaveReason, Relay, RelayConfig, RelayHandle, RoomKind};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Hang guard only: no test asserts how long anything takes.
const PATIENCE: Duration = Duration::from_secs(20);

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn config() -> RelayConfig {
    RelayConfig {
        close_linger: Duration::from_millis(500),
        ..RelayConfig::listening_on("127.0.0.1:0".parse().unwrap())
    }
}

async fn start(config: RelayConfig) -> RelayHandle {
    Relay::bind(config).await.unwrap().spawn()
}

fn client_config() -> ClientConfig {
    ClientConfig {
        read_timeout: PATIENCE,
        ..ClientConfig::default()
    }
}

async fn join(relay: &RelayHandle, room: &str, token: &str) -> RelayClient {
    client::join(
        relay.local_addr(),
        RoomKind::Private,
        room,
        token,
        &client_config(),
    )
    .await
    .unwrap()
}

async fn join_topic(relay: &RelayHandle, room: &str, token: &str) -> RelayClient {
    client::join(
        relay.local_addr(),
        RoomKind::Topic,
        room,
        token,
        &client_config(),
    )
    .await
    .unwrap()
}

async fn refused(relay: &RelayHandle, kind: RoomKind, room: &str, token: &str) -> String {
    match client::join(relay.local_addr(), kind, room, token, &client_config()).await {
        Err(ClientError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn next(client: &mut RelayClient) -> Incoming {
    client.recv().await.unwrap().expect("connection closed")
}

async fn next_line(client: &mut RelayClient) -> String {
    match next(client).await {
        Incoming::Line(line) => line,
        other => panic!("expected a member line, got {other:?}"),
    }
}

/// A raw connection, for bytes the client library would refuse to send.
struct Raw {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        Raw {
            reader: BufReader::new(read),
            writer,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// The next line, or `None` at the end of the stream (or a reset).
    async fn next(&mut self) -> Option<String> {
        let mut line = Vec::new();
        let read = tokio::time::timeout(PATIENCE, self.reader.read_until(b'\n', &mut line))
            .await
            .expect("no line from the relay");
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                assert_eq!(line.pop(), Some(b'\n'), "line without newline: {line:?}");
                Some(String::from_utf8(line).unwrap())
            }
        }
    }

    /// Reads and discards everything until the relay closes the connection.
    async fn drain_to_end(&mut self) {
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, self.reader.read_to_end(&mut sink))
            .await
            .expect("the relay never closed the connection");
    }

    async fn line(&mut self) -> String {
        self.next().await.expect("connection closed")
    }

    /// Asserts the relay closes the connection after `@error <code>`.
    async fn expect_closed_with(&mut self, code: &str) {
        let line = self.line().await;
        assert!(
            line.starts_with(&format!("@error {code}")),
            "expected @error {code}, got {line:?}"
        );
        assert_eq!(self.next().await, None, "connection should be closed");
    }
}

async fn raw_join(relay: &RelayHandle, verb: &str, room: &str, token: &str) -> (Raw, String) {
    let mut raw = Raw::connect(relay.local_addr()).await;
    raw.send(format!("{verb} {room} {token}\n").as_bytes())
        .await;
    let ok = raw.line().await;
    assert!(ok.starts_with("@ok "), "{ok}");
    (raw, ok)
}

/// Waits until the relay's counters satisfy `done` (polling, not timing).
async fn until(relay: &RelayHandle, done: impl Fn(&tally_relay::RelayStats) -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !done(&relay.stats()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("relay never reached the expected state");
}

/// The seed's exchange: two members see each other's heartbeat and address, tag and JSON
/// messages arrive with every `#` replaced and nothing else changed, a sender never gets
/// its own lines back.
#[tokio::test]
async fn two_members_exchange_tags_and_json_with_ip_in_place_of_hash() {
    let relay = start(config()).await;
    let mut alice = join(&relay, "transfer-1", "key").await;
    assert_eq!(alice.welcome.kind, RoomKind::Private);
    assert_eq!(alice.welcome.ip, LOCALHOST);
    assert_eq!((alice.welcome.members, alice.welcome.cap), (1, 2));
    assert!(alice.welcome.present.is_empty());

    let mut bob = join(&relay, "transfer-1", "key").await;
    assert_eq!(bob.welcome.members, 2);
    assert_eq!(
        bob.welcome.present,
        vec![Peer {
            id: alice.welcome.id,
            ip: LOCALHOST
        }]
    );
    assert_eq!(
        next(&mut alice).await,
        Incoming::Arrived(Peer {
            id: bob.welcome.id,
            ip: LOCALHOST
        })
    );

    alice.send("<# Heartbeat>").await.unwrap();
    assert_eq!(next_line(&mut bob).await, "<127.0.0.1 Heartbeat>");
    bob.send("<# Heartbeat>").await.unwrap();
    assert_eq!(next_line(&mut alice).await, "<127.0.0.1 Heartbeat>");

    bob.send(r##"{"from": "#", "Message Number": 1, "Message_Details": "dfsdfs"}"##)
        .await
        .unwrap();
    assert_eq!(
        next_line(&mut alice).await,
        r#"{"from": "127.0.0.1", "Message Number": 1, "Message_Details": "dfsdfs"}"#
    );

    alice.send("# sends ## to #:# <#>").await.unwrap();
    assert_eq!(
        next_line(&mut bob).await,
        "127.0.0.1 sends 127.0.0.1127.0.0.1 to 127.0.0.1:127.0.0.1 <127.0.0.1>"
    );
    let plain = "<Sending:3439> {\"a\": [1, 2]} ünïcödé ✓ \t tabs & spaces  ";
    alice.send(plain).await.unwrap();
    assert_eq!(
        next_line(&mut bob).await,
        plain,
        "a line without # is untouched"
    );

    // Lines sent in one write, with CRLF endings, arrive one by one and in order.
    alice.writer.feed("<# one>").await.unwrap();
    alice.writer.feed("<# two>").await.unwrap();
    alice.writer.flush().await.unwrap();
    assert_eq!(next_line(&mut bob).await, "<127.0.0.1 one>");
    assert_eq!(next_line(&mut bob).await, "<127.0.0.1 two>");
    let (mut raw, _) = raw_join(&relay, "JOIN", "crlf", "t").await;
    let mut other = join(&relay, "crlf", "t").await;
    assert!(matches!(raw.line().await.as_str(), s if s.starts_with("@arrived ")));
    raw.send(b"hello #\r\n").await;
    assert_eq!(next_line(&mut other).await, "hello 127.0.0.1");

    // Nothing came back to the senders: the next thing Alice sees is Bob's line.
    bob.send("<# Received>").await.unwrap();
    assert_eq!(next_line(&mut alice).await, "<127.0.0.1 Received>");
    relay.shutdown().await.unwrap();
}

/// IPv6 members see the sender's IPv6 address in place of `#`.
#[tokio::test]
async fn ipv6_addresses_replace_hash() {
    let Ok(relay) = Relay::bind(RelayConfig::listening_on("[::1]:0".parse().unwrap())).await else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    let relay = relay.spawn();
    let mut a = join(&relay, "six", "t").await;
    let mut b = join(&relay, "six", "t").await;
    assert_eq!(b.welcome.ip.to_string(), "::1");
    let _ = next(&mut a).await; // @arrived
    a.send(r##"{"from": "#"} <# Heartbeat>"##).await.unwrap();
    assert_eq!(
        next_line(&mut b).await,
        r#"{"from": "::1"} <::1 Heartbeat>"#
    );
    relay.shutdown().await.unwrap();
}

/// Many lines, sent in big writes, all arrive complete and in order (chunking is invisible).
#[tokio::test]
async fn many_lines_arrive_complete_and_in_order() {
    many_lines_in_order(config()).await;
}

/// A busy-polling relay (spinning while lines flow) forwards the same lines the same way and
/// still stops when asked, in the middle of its spin window.
#[tokio::test]
async fn busy_polling_relay_forwards_in_order_and_stops_while_spinning() {
    many_lines_in_order(RelayConfig {
        busy_poll: Duration::from_secs(30),
        ..config()
    })
    .await;
}

async fn many_lines_in_order(config: RelayConfig) {
    let relay = start(RelayConfig {
        lines_per_sec: 0,
        bytes_per_sec: 0,
        ..config
    })
    .await;
    let (mut a, _) = raw_join(&relay, "JOIN", "bulk", "t").await;
    let mut b = join(&relay, "bulk", "t").await;
    let _ = a.line().await; // @arrived
    let count = 20_000;
    let mut block = Vec::new();
    for i in 0..count {
        block.extend_from_slice(format!("<# n={i}>\n").as_bytes());
    }
    let writer = tokio::spawn(async move {
        a.send(&block).await;
        a
    });
    for i in 0..count {
        assert_eq!(next_line(&mut b).await, format!("<127.0.0.1 n={i}>"));
    }
    drop(writer.await.unwrap());
    until(&relay, |s| s.lines_forwarded >= count).await;
    tokio::time::timeout(PATIENCE, relay.shutdown())
        .await
        .expect("the relay stops")
        .unwrap();
}

/// A private room holds two: a third client is refused and the two go on.
#[tokio::test]
async fn third_client_is_refused_from_a_private_room() {
    let relay = start(config()).await;
    let mut a = join(&relay, "pair", "tok").await;
    let mut b = join(&relay, "pair", "tok").await;
    let _ = next(&mut a).await;
    assert_eq!(
        refused(&relay, RoomKind::Private, "pair", "tok").await,
        "room-full"
    );
    let mut raw = Raw::connect(relay.local_addr()).await;
    raw.send(b"JOIN pair tok\n").await;
    raw.expect_closed_with("room-full").await;
    a.send("still <#>").await.unwrap();
    assert_eq!(next_line(&mut b).await, "still <127.0.0.1>");
    relay.shutdown().await.unwrap();
}

/// A wrong token is refused; a room disappears with its last member, freeing its name.
#[tokio::test]
async fn wrong_token_is_refused_and_empty_rooms_disappear() {
    let relay = start(config()).await;
    let mut a = join(&relay, "secret-room", "right").await;
    assert_eq!(
        refused(&relay, RoomKind::Private, "secret-room", "wrong").await,
        "wrong-token"
    );
    let mut raw = Raw::connect(relay.local_addr()).await;
    raw.send(b"JOIN secret-room Right\n").await;
    raw.expect_closed_with("wrong-token").await;
    let mut b = join(&relay, "secret-room", "right").await;
    let _ = next(&mut a).await;
    b.send("ok").await.unwrap();
    assert_eq!(next_line(&mut a).await, "ok");

    b.writer.close().await.unwrap();
    a.writer.close().await.unwrap();
    until(&relay, |s| s.rooms == 0).await;
    let c = join(&relay, "secret-room", "new-token").await;
    assert_eq!(c.welcome.members, 1);
    relay.shutdown().await.unwrap();
}

/// Members are told of arrivals and departures with id and address.
#[tokio::test]
async fn arrival_and_departure_notices() {
    let relay = start(config()).await;
    let mut a = join(&relay, "room", "t").await;
    let b = join(&relay, "room", "t").await;
    let b_id = b.welcome.id;
    assert_ne!(a.welcome.id, b_id);
    assert_eq!(
        next(&mut a).await,
        Incoming::Arrived(Peer {
            id: b_id,
            ip: LOCALHOST
        })
    );
    b.writer.close().await.unwrap();
    assert_eq!(
        next(&mut a).await,
        Incoming::Left {
            peer: Peer {
                id: b_id,
                ip: LOCALHOST
            },
            reason: LeaveReason::Quit
        }
    );
    // The raw form, as documented.
    let (mut raw, ok) = raw_join(&relay, "JOIN", "room", "t").await;
    let parts: Vec<&str> = ok.split(' ').collect();
    assert_eq!(parts[..3], ["@ok", "private", "room"]);
    assert_eq!(parts[4..6], ["127.0.0.1", "2/2"]);
    assert_eq!(
        raw.line().await,
        format!("@here {} 127.0.0.1", a.welcome.id)
    );
    let raw_id = parts[3];
    assert_eq!(
        next(&mut a).await,
        Incoming::Arrived(Peer {
            id: raw_id.parse().unwrap(),
            ip: LOCALHOST
        })
    );
    let a_id = a.welcome.id;
    drop(a);
    assert_eq!(raw.line().await, format!("@left {a_id} 127.0.0.1 quit"));
    relay.shutdown().await.unwrap();
}

/// A silent member is closed at the idle timeout and the room is told; empty keepalive
/// lines keep a member alive and reach nobody.
#[tokio::test]
async fn idle_members_are_closed_and_the_room_told() {
    let relay = start(RelayConfig {
        idle_timeout: Duration::from_millis(600),
        ..config()
    })
    .await;
    let mut a = join(&relay, "idle", "t").await;
    assert_eq!(a.welcome.idle_timeout, Duration::from_millis(600));
    let (mut silent, ok) = raw_join(&relay, "JOIN", "idle", "t").await;
    let silent_id: u64 = ok.split(' ').nth(3).unwrap().parse().unwrap();
    assert!(silent.line().await.starts_with("@here "));
    assert_eq!(
        next(&mut a).await,
        Incoming::Arrived(Peer {
            id: silent_id,
            ip: LOCALHOST
        })
    );
    let (mut reader, mut writer) = (a.reader, a.writer);
    let keepalive = tokio::spawn(async move {
        loop {
            if writer.keepalive().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    });
    // The keepalives are not forwarded: the silent member's next line is its own error.
    silent.expect_closed_with("idle-timeout").await;
    assert_eq!(
        reader.recv().await.unwrap(),
        Some(Incoming::Left {
            peer: Peer {
                id: silent_id,
                ip: LOCALHOST
            },
            reason: LeaveReason::Idle
        })
    );
    keepalive.abort();
    relay.shutdown().await.unwrap();
}

/// A connection that never joins is closed at the join timeout.
#[tokio::test]
async fn join_timeout_closes_silent_connections() {
    let relay = start(RelayConfig {
        join_timeout: Duration::from_millis(200),
        ..config()
    })
    .await;
    let mut raw = Raw::connect(relay.local_addr()).await;
    raw.expect_closed_with("join-timeout").await;
    relay.shutdown().await.unwrap();
}

/// An over-long line (whole or arriving in pieces) gets an error, is not forwarded, and
/// the room goes on.
#[tokio::test]
async fn over_long_line_gets_an_error_and_the_room_goes_on() {
    let relay = start(RelayConfig {
        max_line_bytes: 1024,
        ..config()
    })
    .await;
    let (mut a, _) = raw_join(&relay, "JOIN", "long", "t").await;
    let mut b = join(&relay, "long", "t").await;
    let _ = a.line().await; // @arrived
    a.send(format!("{}\n", "x".repeat(2000)).as_bytes()).await;
    assert!(a.line().await.starts_with("@error too-long "));
    a.send(b"after the long one #\n").await;
    assert_eq!(next_line(&mut b).await, "after the long one 127.0.0.1");

    a.send("y".repeat(900).as_bytes()).await;
    a.writer.flush().await.unwrap();
    a.send("y".repeat(900).as_bytes()).await;
    a.send(b"\nand on\n").await;
    assert!(a.line().await.starts_with("@error too-long "));
    assert_eq!(next_line(&mut b).await, "and on");
    // Exactly at the limit is fine.
    a.send(format!("{}\n", "z".repeat(1024)).as_bytes()).await;
    assert_eq!(next_line(&mut b).await, "z".repeat(1024));
    relay.shutdown().await.unwrap();
}

/// A member that stops reading cannot stall anyone: the sender keeps sending, another room
/// keeps exchanging lines, and once its queue passes the limit the stalled member is
/// dropped with the reason `slow`.
#[tokio::test]
async fn member_that_stops_reading_is_dropped_without_slowing_other_rooms() {
    let relay = start(RelayConfig {
        max_line_bytes: 1024,
        max_queue_bytes: 64 * 1024,
        lines_per_sec: 0,
        bytes_per_sec: 0,
        ..config()
    })
    .await;
    let mut sender = join(&relay, "stalled", "t").await;
    let (mut stalled, ok) = raw_join(&relay, "JOIN", "stalled", "t").await;
    let stalled_id: u64 = ok.split(' ').nth(3).unwrap().parse().unwrap();
    let _ = next(&mut sender).await; // @arrived
    let mut c = join(&relay, "busy", "t").await;
    let mut d = join(&relay, "busy", "t").await;
    let _ = next(&mut c).await;

    // The sender floods lines at a member that reads nothing.
    let line = format!("<# {}>", "p".repeat(200));
    let (mut sender_reader, mut sender_writer) = (sender.reader, sender.writer);
    let blaster = tokio::spawn(async move {
        for _ in 0..200_000 {
            if sender_writer.feed(&line).await.is_err() {
                break;
            }
        }
        let _ = sender_writer.flush().await;
        sender_writer
    });
    // Meanwhile another room exchanges lines normally.
    for i in 0..200 {
        c.send(&format!("ping {i} #")).await.unwrap();
        assert_eq!(next_line(&mut d).await, format!("ping {i} 127.0.0.1"));
        d.send(&format!("pong {i}")).await.unwrap();
        assert_eq!(next_line(&mut c).await, format!("pong {i}"));
    }
    // The stalled member is dropped as slow, and the sender is told.
    assert_eq!(
        sender_reader.recv().await.unwrap(),
        Some(Incoming::Left {
            peer: Peer {
                id: stalled_id,
                ip: LOCALHOST
            },
            reason: LeaveReason::Slow
        })
    );
    // The sender was never blocked: all its writes complete.
    let _sender_writer = blaster.await.unwrap();
    // The stalled member, reading at last, finds lines and then the end.
    stalled.drain_to_end().await;
    assert!(relay.stats().slow_readers_dropped >= 1);
    // The other room still works.
    c.send("after").await.unwrap();
    assert_eq!(next_line(&mut d).await, "after");
    relay.shutdown().await.unwrap();
}

/// A member whose queued lines make no progress for the write timeout is dropped even
/// when its queue is under the limit; until then nothing is lost.
#[tokio::test]
async fn stalled_member_is_dropped_at_the_write_timeout() {
    let relay = start(RelayConfig {
        max_queue_bytes: 256 << 20,
        write_timeout: Duration::from_millis(300),
        lines_per_sec: 0,
        bytes_per_sec: 0,
        ..config()
    })
    .await;
    let mut sender = join(&relay, "stall", "t").await;
    let (_stalled, ok) = raw_join(&relay, "JOIN", "stall", "t").await;
    let stalled_id: u64 = ok.split(' ').nth(3).unwrap().parse().unwrap();
    let _ = next(&mut sender).await;
    let line = "x".repeat(1000);
    // Far more than the kernel's socket buffers hold, so the relay queues.
    for _ in 0..40_000 {
        sender.writer.feed(&line).await.unwrap();
    }
    sender.writer.flush().await.unwrap();
    assert_eq!(
        next(&mut sender).await,
        Incoming::Left {
            peer: Peer {
                id: stalled_id,
                ip: LOCALHOST
            },
            reason: LeaveReason::Slow
        }
    );
    relay.shutdown().await.unwrap();
}

/// A slow reader within its limits loses nothing: everything queued arrives in order
/// once it reads again, while the sender and another room were never held up.
#[tokio::test]
async fn temporarily_slow_reader_gets_everything_in_order() {
    let relay = start(RelayConfig {
        max_queue_bytes: 256 << 20,
        write_timeout: Duration::from_secs(60),
        lines_per_sec: 0,
        bytes_per_sec: 0,
        ..config()
    })
    .await;
    let mut sender = join(&relay, "later", "t").await;
    let mut late = join(&relay, "later", "t").await;
    let _ = next(&mut sender).await;
    let mut c = join(&relay, "other", "t").await;
    let mut d = join(&relay, "other", "t").await;
    let _ = next(&mut c).await;
    let count = 30_000;
    for i in 0..count {
        sender
            .writer
            .feed(&format!("{i:06} {}", "q".repeat(300)))
            .await
            .unwrap();
    }
    // All of it leaves the sender even though nobody reads it yet.
    sender.writer.flush().await.unwrap();
    c.send("hi #").await.unwrap();
    assert_eq!(next_line(&mut d).await, "hi 127.0.0.1");
    for i in 0..count {
        let line = next_line(&mut late).await;
        assert_eq!(&line[..6], format!("{i:06}"));
    }
    relay.shutdown().await.unwrap();
}

/// Invalid UTF-8 is refused: dropped with an error after the join, fatal before it.
#[tokio::test]
async fn invalid_utf8_is_refused() {
    let relay = start(config()).await;
    let (mut a, _) = raw_join(&relay, "JOIN", "utf", "t").await;
    let mut b = join(&relay, "utf", "t").await;
    let _ = a.line().await;
    a.send(b"bad \xff\xfe bytes #\n").await;
    assert!(a.line().await.starts_with("@error bad-utf8 "));
    a.send("good ✓ #\n".as_bytes()).await;
    assert_eq!(next_line(&mut b).await, "good ✓ 127.0.0.1");

    let mut raw = Raw::connect(relay.local_addr()).await;
    raw.send(b"JOIN \xc3\x28 t\n").await;
    raw.expect_closed_with("bad-utf8").await;
    relay.shutdown().await.unwrap();
}

/// The first line must be a well-formed join; anything else closes the connection.
#[tokio::test]
async fn first_line_must_be_a_join() {
    let relay = start(config()).await;
    for (first, code) in [
        (&b"HELLO\n"[..], "not-join"),
        (b"<# Heartbeat>\n", "not-join"),
        (b"JOIN onlyroom\n", "bad-join"),
        (b"JOIN room tok extra\n", "bad-join"),
        (b"JOIN bad#room tok\n", "bad-join"),
        (b"TOPIC room\n", "bad-join"),
    ] {
        let mut raw = Raw::connect(relay.local_addr()).await;
        raw.send(first).await;
        raw.expect_closed_with(code).await;
    }
    // An over-long first line is refused too.
    let mut raw = Raw::connect(relay.local_addr()).await;
    raw.send(&vec![b'J'; 70_000]).await;
    raw.expect_closed_with("too-long").await;
    // Empty lines before the join are tolerated.
    let mut raw = Raw::connect(relay.local_addr()).await;
    raw.send(b"\n\r\nJOIN fine t\n").await;
    assert!(raw.line().await.starts_with("@ok private fine "));
    relay.shutdown().await.unwrap();
}

/// Members cannot forge relay notices: lines starting with `@` are refused; too many
/// refused lines close the connection and the room is told.
#[tokio::test]
async fn reserved_lines_are_refused_and_repeat_offenders_closed() {
    let relay = start(RelayConfig {
        max_bad_lines: 2,
        ..config()
    })
    .await;
    let (mut a, ok) = raw_join(&relay, "JOIN", "forge", "t").await;
    let a_id: u64 = ok.split(' ').nth(3).unwrap().parse().unwrap();
    let mut b = join(&relay, "forge", "t").await;
    let _ = a.line().await;
    a.send(b"@left 99 1.2.3.4 quit\n").await;
    assert!(a.line().await.starts_with("@error reserved "));
    a.send(b"real line\n").await;
    assert_eq!(next_line(&mut b).await, "real line");
    a.send(b"@error shutdown fake\n").await;
    assert!(a.line().await.starts_with("@error reserved "));
    a.send(b"@third\n").await;
    a.expect_closed_with("too-many-errors").await;
    assert_eq!(
        next(&mut b).await,
        Incoming::Left {
            peer: Peer {
                id: a_id,
                ip: LOCALHOST
            },
            reason: LeaveReason::Errors
        }
    );
    relay.shutdown().await.unwrap();
}

/// Too many connections from one address (or in all) are refused with an error line;
/// a freed slot can be used again.
#[tokio::test]
async fn too_many_connections_from_one_address() {
    let relay = start(RelayConfig {
        max_connections_per_ip: 3,
        ..config()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Raw::connect(relay.local_addr()).await);
    }
    until(&relay, |s| s.open_connections == 3).await;
    let mut fourth = Raw::connect(relay.local_addr()).await;
    fourth.expect_closed_with("too-many-connections").await;
    assert_eq!(
        refused(&relay, RoomKind::Private, "r", "t").await,
        "too-many-connections"
    );
    drop(open.pop());
    until(&relay, |s| s.open_connections == 2).await;
    let ok = join(&relay, "r", "t").await;
    assert_eq!(ok.welcome.members, 1);
    assert!(relay.stats().refused >= 2);
    relay.shutdown().await.unwrap();

    let relay = start(RelayConfig {
        max_connections: 2,
        ..config()
    })
    .await;
    let _a = Raw::connect(relay.local_addr()).await;
    let _b = Raw::connect(relay.local_addr()).await;
    until(&relay, |s| s.open_connections == 2).await;
    Raw::connect(relay.local_addr())
        .await
        .expect_closed_with("server-full")
        .await;
    relay.shutdown().await.unwrap();
}

/// A flood of lines closes the flooder with `@error flood`; most of the flood is never
/// forwarded; the room is told, and other rooms are unaffected.
#[tokio::test]
async fn a_flood_of_lines_closes_the_flooder() {
    let relay = start(RelayConfig {
        lines_per_sec: 100,
        line_burst: 200,
        ..config()
    })
    .await;
    let (mut flooder, ok) = raw_join(&relay, "JOIN", "flood", "t").await;
    let flooder_id: u64 = ok.split(' ').nth(3).unwrap().parse().unwrap();
    let mut victim = join(&relay, "flood", "t").await;
    let _ = flooder.line().await;
    let mut c = join(&relay, "calm", "t").await;
    let mut d = join(&relay, "calm", "t").await;
    let _ = next(&mut c).await;

    let total = 5_000;
    let mut block = Vec::new();
    for i in 0..total {
        block.extend_from_slice(format!("<# {i}>\n").as_bytes());
    }
    let _ = flooder.writer.write_all(&block).await;
    flooder.expect_closed_with("flood").await;
    let mut received = 0;
    loop {
        match next(&mut victim).await {
            Incoming::Line(_) => received += 1,
            Incoming::Left { peer, reason } => {
                assert_eq!(peer.id, flooder_id);
                assert_eq!(reason, LeaveReason::Flood);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(received >= 1, "the burst passes");
    assert!(received < total, "the flood does not");
    c.send("calm #").await.unwrap();
    assert_eq!(next_line(&mut d).await, "calm 127.0.0.1");
    relay.shutdown().await.unwrap();
}

/// Topic rooms take their configured cap; every line reaches every other member; the
/// kinds do not mix.
#[tokio::test]
async fn topic_rooms_broadcast_to_all_members_up_to_their_cap() {
    let relay = start(RelayConfig {
        topic_cap: 3,
        ..config()
    })
    .await;
    let topic = "3f2a9c0e5b7d1f4a6c8e0b2d4f6a8c0e3f2a9c0e5b7d1f4a6c8e0b2d4f6a8c0e";
    let mut a = join_topic(&relay, topic, "public").await;
    let mut b = join_topic(&relay, topic, "public").await;
    let mut c = join_topic(&relay, topic, "public").await;
    assert_eq!(
        (c.welcome.kind, c.welcome.members, c.welcome.cap),
        (RoomKind::Topic, 3, 3)
    );
    assert_eq!(c.welcome.present.len(), 2);
    let _ = (next(&mut a).await, next(&mut a).await, next(&mut b).await);
    assert_eq!(
        refused(&relay, RoomKind::Topic, topic, "public").await,
        "room-full"
    );
    assert_eq!(
        refused(&relay, RoomKind::Private, topic, "public").await,
        "wrong-kind"
    );
    b.send("<# quote 1.05>").await.unwrap();
    assert_eq!(next_line(&mut a).await, "<127.0.0.1 quote 1.05>");
    assert_eq!(next_line(&mut c).await, "<127.0.0.1 quote 1.05>");
    let (mut raw, ok) = {
        let mut raw = Raw::connect(relay.local_addr()).await;
        raw.send(b"TOPIC other public\n").await;
        let ok = raw.line().await;
        (raw, ok)
    };
    assert!(ok.starts_with("@ok topic other "), "{ok}");
    raw.send(b"alone\n").await;
    relay.shutdown().await.unwrap();
}

/// Stopping the relay tells every member `@error shutdown` and closes them.
#[tokio::test]
async fn shutdown_tells_members_and_closes() {
    let relay = start(config()).await;
    let (mut a, _) = raw_join(&relay, "JOIN", "bye", "t").await;
    let (mut b, _) = raw_join(&relay, "JOIN", "bye", "t").await;
    assert!(a.line().await.starts_with("@arrived "));
    assert!(b.line().await.starts_with("@here "));
    relay.shutdown().await.unwrap();
    a.expect_closed_with("shutdown").await;
    b.expect_closed_with("shutdown").await;
}
