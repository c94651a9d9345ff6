//! Integration tests of the relay over real TCP on loopback: each test starts a relay
//! in-process on port 0 (the relay binds it and reports the port) and drives it with real
//! sockets. This file: exchanging lines, rooms, joins and notices. The limits (timeouts,
//! slow readers, floods, connection caps) are in `limits.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::*;
use tally_relay::client::{Incoming, Peer};
use tally_relay::{LeaveReason, Relay, RelayConfig, RoomKind};

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

/// IPv6 members see the sender's IPv6 address in place of `#` and are named by it in
/// notices. Skipped only where the system itself has no IPv6 loopback, which is checked
/// apart from the relay: a relay that cannot bind `[::1]` where the system can fails.
#[tokio::test]
async fn ipv6_addresses_replace_hash() {
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let any_port: SocketAddr = "[::1]:0".parse().unwrap();
    if std::net::TcpListener::bind(any_port).is_err() {
        eprintln!("this system has no IPv6 loopback; skipping");
        return;
    }
    let relay = Relay::bind(RelayConfig {
        listen: any_port,
        ..config()
    })
    .await
    .expect("the relay binds [::1] where the system can")
    .spawn();
    assert_eq!(relay.local_addr().ip(), V6);
    let mut a = join(&relay, "six", "t").await;
    assert_eq!(a.welcome.ip, V6);
    let mut b = join(&relay, "six", "t").await;
    assert_eq!(b.welcome.ip, V6);
    assert_eq!(
        b.welcome.present,
        vec![Peer {
            id: a.welcome.id,
            ip: V6
        }]
    );
    assert_eq!(
        next(&mut a).await,
        Incoming::Arrived(Peer {
            id: b.welcome.id,
            ip: V6
        })
    );
    a.send(r##"{"from": "#"} <# Heartbeat>"##).await.unwrap();
    assert_eq!(
        next_line(&mut b).await,
        r#"{"from": "::1"} <::1 Heartbeat>"#
    );
    b.send("[#]:7777 #").await.unwrap();
    assert_eq!(next_line(&mut a).await, "[::1]:7777 ::1");
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

/// Topic rooms take their configured cap; every line reaches every other member (and
/// not its sender); a refused join (room full, wrong kind) changes nothing for the
/// members; the kinds do not mix; a line in a room of one reaches nobody, not even the
/// members of another room.
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
    let peer = |id| Peer { id, ip: LOCALHOST };
    let (a_id, b_id, c_id) = (a.welcome.id, b.welcome.id, c.welcome.id);
    assert_eq!(
        (c.welcome.kind, c.welcome.members, c.welcome.cap),
        (RoomKind::Topic, 3, 3)
    );
    assert_eq!(c.welcome.present, vec![peer(a_id), peer(b_id)]);
    assert_eq!(next(&mut a).await, Incoming::Arrived(peer(b_id)));
    assert_eq!(next(&mut a).await, Incoming::Arrived(peer(c_id)));
    assert_eq!(next(&mut b).await, Incoming::Arrived(peer(c_id)));
    assert_eq!(
        refused(&relay, RoomKind::Topic, topic, "public").await,
        "room-full"
    );
    assert_eq!(
        refused(&relay, RoomKind::Private, topic, "public").await,
        "wrong-kind"
    );
    // The refused joins told nobody anything: each member's next item is this line.
    b.send("<# quote 1.05>").await.unwrap();
    assert_eq!(next_line(&mut a).await, "<127.0.0.1 quote 1.05>");
    assert_eq!(next_line(&mut c).await, "<127.0.0.1 quote 1.05>");
    c.send("<# quote 1.06>").await.unwrap();
    assert_eq!(next_line(&mut a).await, "<127.0.0.1 quote 1.06>");
    assert_eq!(
        next_line(&mut b).await,
        "<127.0.0.1 quote 1.06>",
        "b's next item is c's line, not its own"
    );
    assert_eq!(relay.stats().rooms, 1);

    let (mut alone, ok) = raw_join(&relay, "TOPIC", "other", "public").await;
    assert!(ok.starts_with("@ok topic other "), "{ok}");
    assert!(ok.ends_with(" 1/3 60000 65536"), "{ok}");
    alone.send(b"alone #\n").await;
    // A second member of the other room arrives after that line: it never gets it, and
    // the first member's next item is the arrival (nothing of its own came back).
    let mut second = join_topic(&relay, "other", "public").await;
    assert_eq!(second.welcome.members, 2);
    assert_eq!(
        alone.line().await,
        format!("@arrived {} 127.0.0.1", second.welcome.id)
    );
    // Nor did the first room get it: each member's next item is a's line.
    a.send("after").await.unwrap();
    assert_eq!(next_line(&mut b).await, "after");
    assert_eq!(next_line(&mut c).await, "after");
    second.send("second #").await.unwrap();
    assert_eq!(alone.line().await, "second 127.0.0.1");
    assert_eq!(relay.stats().rooms, 2);
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
