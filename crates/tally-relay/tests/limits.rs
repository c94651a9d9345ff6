//! Integration tests of the relay's limits over real TCP on loopback: idle and join
//! timeouts, over-long lines, slow readers, connection caps and floods. Tests whose subject
//! is a timeout run on tokio's paused clock (the relay reads its deadlines from tokio's
//! clock), so a loaded machine cannot make a keepalive or a join lose a race with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use tally_relay::client::{Incoming, Peer};
use tally_relay::{ClientError, ErrorCode, LeaveReason, RelayConfig, RoomKind};
use tokio::io::AsyncWriteExt;

/// Checks what a slow reader got before the relay dropped it: `first`, then whole copies
/// of `line` in order, then at most one copy cut short and the relay's `@error
/// slow-reader` line (itself possibly cut short or missing: the relay writes it only if
/// the full socket takes it). Returns how many whole copies arrived.
fn whole_copies_before_slow_error(received: &[u8], first: &str, line: &str) -> usize {
    const ERROR: &str = "@error slow-reader ";
    let text = std::str::from_utf8(received).expect("the relay sent UTF-8");
    let mut rest = text
        .strip_prefix(first)
        .and_then(|t| t.strip_prefix('\n'))
        .unwrap_or_else(|| panic!("expected {first:?} first"));
    let whole = format!("{line}\n");
    let mut copies = 0;
    while let Some(after) = rest.strip_prefix(whole.as_str()) {
        copies += 1;
        rest = after;
    }
    let error_piece = |s: &str| {
        let s = s.strip_suffix('\n').unwrap_or(s);
        !s.contains('\n') && (s.starts_with(ERROR) || ERROR.starts_with(s))
    };
    let cut_then_error = || {
        let (cut, tail) = rest.split_once('\n').unwrap_or((rest, ""));
        !cut.is_empty() && line.starts_with(cut) && (tail.is_empty() || error_piece(tail))
    };
    assert!(
        error_piece(rest) || cut_then_error(),
        "after {copies} whole copies, unexpected bytes: {:?}",
        &rest[..rest.len().min(200)]
    );
    copies
}

/// A silent member is closed at the idle timeout and the room is told; empty keepalive
/// lines keep a member open for many idle timeouts and reach nobody; once its keepalives
/// stop, that member is closed at the idle timeout too.
#[tokio::test(start_paused = true)]
async fn idle_members_are_closed_and_the_room_told() {
    let idle = Duration::from_millis(600);
    let relay = start(RelayConfig {
        idle_timeout: idle,
        ..config()
    })
    .await;
    let mut a = join(&relay, "idle", "t").await;
    assert_eq!(a.welcome.idle_timeout, idle);
    let (mut silent, ok) = raw_join(&relay, "JOIN", "idle", "t").await;
    let silent_id = member_id(&ok);
    assert_eq!(
        silent.line().await,
        format!("@here {} 127.0.0.1", a.welcome.id)
    );
    assert_eq!(
        next(&mut a).await,
        Incoming::Arrived(Peer {
            id: silent_id,
            ip: LOCALHOST
        })
    );
    let (mut reader, mut writer) = (a.reader, a.writer);
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let keepalive = tokio::spawn(async move {
        loop {
            writer.keepalive().await.unwrap();
            tokio::select! {
                _ = &mut stopped => return writer,
                () = tokio::time::sleep(idle / 10) => {}
            }
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
    // Five idle timeouts later the keepalive member is still open and got nothing.
    reader.set_read_timeout(idle * 5);
    assert!(matches!(reader.recv().await, Err(ClientError::Timeout(_))));
    assert_eq!(relay.stats().open_connections, 1);
    // Without keepalives (its socket still open), it is closed at the idle timeout.
    stop.send(()).unwrap();
    let _writer = keepalive.await.unwrap();
    reader.set_read_timeout(PATIENCE);
    assert!(matches!(
        reader.recv().await.unwrap(),
        Some(Incoming::Error {
            code: ErrorCode::IdleTimeout,
            ..
        })
    ));
    assert_eq!(reader.recv().await.unwrap(), None);
    until(&relay, |s| s.open_connections == 0 && s.rooms == 0).await;
    relay.shutdown().await.unwrap();
}

/// A connection that never joins is closed at the join timeout; one that joins before it
/// is welcome. Paused time: the late-but-in-time join cannot lose a race with the timer.
#[tokio::test(start_paused = true)]
async fn join_timeout_closes_silent_connections() {
    let join_timeout = Duration::from_millis(200);
    let relay = start(RelayConfig {
        join_timeout,
        ..config()
    })
    .await;
    let mut silent = Raw::connect(relay.local_addr()).await;
    let mut slow = Raw::connect(relay.local_addr()).await;
    tokio::time::sleep(join_timeout - Duration::from_millis(10)).await;
    slow.send(b"JOIN late t\n").await;
    assert!(slow.line().await.starts_with("@ok private late "));
    silent.expect_closed_with("join-timeout").await;
    // The joined one outlives the join timeout.
    tokio::time::sleep(join_timeout * 5).await;
    assert_eq!(relay.stats().open_connections, 1);
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

/// A member that stops reading cannot stall anyone: the sender's every write completes,
/// another room keeps exchanging lines (and gets nothing else), and once its queue passes
/// the limit the stalled member is dropped with the reason `slow`, having received only
/// the sender's lines, in order.
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
    let sender_id = sender.welcome.id;
    let (mut stalled, ok) = raw_join(&relay, "JOIN", "stalled", "t").await;
    let stalled_id = member_id(&ok);
    assert_eq!(
        next(&mut sender).await,
        Incoming::Arrived(Peer {
            id: stalled_id,
            ip: LOCALHOST
        })
    );
    let mut c = join(&relay, "busy", "t").await;
    let mut d = join(&relay, "busy", "t").await;
    assert_eq!(
        next(&mut c).await,
        Incoming::Arrived(Peer {
            id: d.welcome.id,
            ip: LOCALHOST
        })
    );

    // The sender floods lines at a member that reads nothing.
    let lines = 200_000;
    let line = format!("<# {}>", "p".repeat(200));
    let (mut sender_reader, mut sender_writer) = (sender.reader, sender.writer);
    let blaster = tokio::spawn(async move {
        let mut written = 0;
        for _ in 0..lines {
            if sender_writer.feed(&line).await.is_err() {
                break;
            }
            written += 1;
        }
        (written, sender_writer.flush().await)
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
    // The sender was never blocked nor cut off: every one of its writes completed.
    let (written, flushed) = blaster.await.unwrap();
    assert_eq!(written, lines);
    flushed.unwrap();
    // The stalled member, reading at last, finds the sender's lines and then the end.
    let received = stalled.rest().await;
    let copies = whole_copies_before_slow_error(
        &received,
        &format!("@here {sender_id} 127.0.0.1"),
        &format!("<127.0.0.1 {}>", "p".repeat(200)),
    );
    assert!(copies >= 1, "the lines before the stall arrived");
    assert!(copies < lines, "it was dropped before the end of the flood");
    assert_eq!(relay.stats().slow_readers_dropped, 1);
    until(&relay, |s| s.open_connections == 3).await;
    // The other room still works, and nothing of the flood reached it.
    c.send("after").await.unwrap();
    assert_eq!(next_line(&mut d).await, "after");
    d.send("after too").await.unwrap();
    assert_eq!(next_line(&mut c).await, "after too");
    relay.shutdown().await.unwrap();
}

/// A member whose queued lines make no progress for the write timeout is dropped even
/// when its queue is far under the limit (the queue limit here is larger than all that
/// is sent); what it did receive is the sender's lines, whole and in order, then the
/// relay's `@error slow-reader`.
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
    let (mut stalled, ok) = raw_join(&relay, "JOIN", "stall", "t").await;
    let stalled_id = member_id(&ok);
    let _ = next(&mut sender).await;
    let line = "x".repeat(1000);
    // Far more than the kernel's socket buffers hold, so the relay queues; far less than
    // the queue limit, so only the write timeout can drop the member.
    let count = 40_000;
    for _ in 0..count {
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
    assert_eq!(relay.stats().slow_readers_dropped, 1);
    let received = stalled.rest().await;
    let first = format!("@here {} 127.0.0.1", sender.welcome.id);
    let copies = whole_copies_before_slow_error(&received, &first, &line);
    // Its queue is flushed while the relay lingers on the close, as far as the reader
    // takes it in time: anywhere from some lines to all of them.
    assert!((1..=count).contains(&copies), "{copies} whole lines");
    relay.shutdown().await.unwrap();
}

/// A slow reader within its limits loses nothing: everything queued arrives complete and
/// in order once it reads again, while the sender and another room were never held up.
#[tokio::test]
async fn temporarily_slow_reader_gets_everything_in_order() {
    let relay = start(RelayConfig {
        max_queue_bytes: 256 << 20,
        // Far beyond the test's length even on a loaded machine: only the queue matters.
        write_timeout: Duration::from_secs(3600),
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
    let line = |i: usize| format!("{i:06} {}", "q".repeat(300));
    for i in 0..count {
        sender.writer.feed(&line(i)).await.unwrap();
    }
    // All of it leaves the sender even though nobody reads it yet.
    sender.writer.flush().await.unwrap();
    c.send("hi #").await.unwrap();
    assert_eq!(next_line(&mut d).await, "hi 127.0.0.1");
    for i in 0..count {
        assert_eq!(next_line(&mut late).await, line(i));
    }
    assert_eq!(relay.stats().slow_readers_dropped, 0);
    relay.shutdown().await.unwrap();
}

/// Too many connections from one address (or in all) are refused with an error line,
/// and counted; a freed slot can be used again.
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
    assert_eq!(relay.stats().refused, 2);
    assert_eq!(relay.stats().open_connections, 3);
    drop(open.pop());
    until(&relay, |s| s.open_connections == 2).await;
    let ok = join(&relay, "r", "t").await;
    assert_eq!(ok.welcome.members, 1);
    let stats = relay.stats();
    assert_eq!((stats.refused, stats.accepted), (2, 4));
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
    let stats = relay.stats();
    assert_eq!((stats.refused, stats.accepted), (1, 2));
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

/// One host's connections share one byte budget (four times a connection's): eight
/// connections from one address, each sending less than its own burst, together send
/// twice the host's, and the relay closes the ones that overdraw it as floods. Without the
/// shared budget every one of them would pass, and a host could multiply what the relay
/// copies by opening connections.
#[tokio::test]
async fn one_hosts_connections_share_one_byte_budget() {
    let relay = start(RelayConfig {
        bytes_per_sec: 10_000,
        byte_burst: 10_000,
        max_line_bytes: 1024,
        max_queue_bytes: 1 << 20,
        ..config()
    })
    .await;
    let mut listener = join_topic(&relay, "wide", "t").await;
    let mut senders = Vec::new();
    for _ in 0..8 {
        senders.push(raw_join(&relay, "TOPIC", "wide", "t").await.0);
    }
    let line = format!("{}\n", "x".repeat(999));
    let burst = line.repeat(9); // 9,000 bytes: under one connection's burst of 10,000
    for sender in &mut senders {
        let _ = sender.writer.write_all(burst.as_bytes()).await;
    }
    let flooded = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Incoming::Left { reason, .. } = next(&mut listener).await {
                assert_eq!(
                    reason,
                    LeaveReason::Flood,
                    "members leave only as floods here"
                );
                return;
            }
        }
    })
    .await;
    assert!(
        flooded.is_ok(),
        "72,000 bytes from one host against a host budget of 40,000: some sender is a flood"
    );
    relay.shutdown().await.unwrap();
}
