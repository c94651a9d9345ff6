//! The tracker's limits over real TCP: request size, failures per connection, the read
//! timeout, connections, entries and requests per address, and a full registry. The
//! request rate runs on a `ManualClock`, so the test decides when tokens come back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use std::time::Duration;

use common::*;
use tally_proto::tracker::ListRequest;
use tally_tracker::{ClientError, Limits, ManualClock, Request, now_ms, sign_registration};
use tokio::io::AsyncWriteExt;

/// Asserts `answer` is a `FAIL` packet whose reason mentions `reason`.
fn assert_fail(answer: &serde_json::Value, reason: &str) {
    assert_eq!(answer["Type"], "FAIL", "{answer}");
    assert_eq!(answer["Data"]["Response"], "Fail", "{answer}");
    let got = answer["Data"]["Reason"].as_str().unwrap();
    assert!(got.contains(reason), "{got:?} should mention {reason:?}");
}

/// An oversized request is refused from its length prefix alone, answered `Fail` and the
/// connection closed; so is a connection that keeps sending junk, after exactly
/// `max_failures_per_connection` failed answers; nothing is stored and others are served.
#[tokio::test]
async fn oversized_and_failing_connections_are_answered_then_closed() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let lim = Limits {
        max_request_bytes: 1024,
        ..limits()
    };
    let tracker = start(dir.path(), std::slice::from_ref(&net), lim).await;
    let addr = tracker.local_addr();

    let mut raw = Raw::connect(addr).await;
    raw.send(&vec![b' '; 5000]).await;
    assert_fail(&raw.recv().await.unwrap(), "larger than 1024");
    assert_eq!(raw.recv().await, None, "closed after the answer");
    let mut raw = Raw::connect(addr).await;
    raw.stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_fail(&raw.recv().await.unwrap(), "larger than 1024");
    assert_eq!(raw.recv().await, None, "closed after the answer");

    let failures = Limits::DEFAULT.max_failures_per_connection;
    let mut noisy = Raw::connect(addr).await;
    for _ in 0..failures {
        noisy.send(b"junk").await;
    }
    for _ in 0..failures {
        assert_fail(&noisy.recv().await.unwrap(), "malformed JSON");
    }
    // Closed at the limit (long before the read timeout).
    assert_eq!(noisy.recv().await, None);
    assert_eq!(tracker.stats().entries, 0);

    let k = key();
    let c = client(addr);
    c.register(net.id(), node_addr(1), &[k.clone()])
        .await
        .unwrap();
    let listed = c.peers(net.id(), None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].account, k.0.account());
    tracker.shutdown().await.unwrap();
}

/// A connection that sends nothing, or a frame that never completes, is closed at the
/// read timeout without an answer; the tracker goes on serving.
#[tokio::test]
async fn half_open_and_slow_connections_are_closed_at_the_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let lim = Limits {
        read_timeout: Duration::from_millis(300),
        ..limits()
    };
    let tracker = start(dir.path(), std::slice::from_ref(&net), lim).await;
    let addr = tracker.local_addr();
    let mut silent = Raw::connect(addr).await;
    let mut slow = Raw::connect(addr).await;
    slow.stream.write_all(&100u32.to_be_bytes()).await.unwrap();
    slow.stream.write_all(b"{\"Type\"").await.unwrap();
    assert_eq!(silent.recv().await, None);
    assert_eq!(slow.recv().await, None);
    // Serving goes on (the client retries should the read timeout cut one attempt).
    let c = client(addr);
    c.register(net.id(), node_addr(1), &[key()]).await.unwrap();
    assert_eq!(tracker.stats().entries, 1);
    tracker.shutdown().await.unwrap();
}

/// From one address: the connection over the cap is refused with a reason; entries over
/// the cap are refused key by key; requests beyond the burst (twice the rate) are refused
/// until the clock has given tokens back, exactly as many as the rate allows. Another
/// address is unaffected.
#[tokio::test]
async fn floods_from_one_address_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let rate = 5;
    let lim = Limits {
        max_connections_per_ip: 3,
        max_entries_per_ip: 2,
        requests_per_ip_per_sec: rate,
        ..limits()
    };
    let clock = ManualClock::starting_now();
    let tracker =
        start_with_clock(dir.path(), std::slice::from_ref(&net), lim, clock.clock()).await;
    let addr = tracker.local_addr();

    // Connections: the fourth from 127.0.0.1 is answered Fail and closed.
    let held = [
        Raw::connect(addr).await,
        Raw::connect(addr).await,
        Raw::connect(addr).await,
    ];
    let mut fourth = Raw::connect(addr).await;
    let answer = fourth.recv().await.unwrap();
    assert_fail(&answer, "too many connections from your address");
    assert_eq!(fourth.recv().await, None);
    drop(held);

    // Entries: two keys from one address, the third refused. (A refused connection
    // takes no request token.)
    let mut raw = loop {
        // The held connections close asynchronously; retry until a slot is free.
        let mut r = Raw::connect(addr).await;
        let reg = sign_registration(net.id(), node_addr(1), now_ms(), &[key(), key(), key()]);
        let answer = r.ask(&Request::Reg(reg).to_json()).await;
        if answer["Data"]["Reason"] == "too many connections from your address" {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        assert_eq!(answer["Data"]["Response"], "Partial-Success");
        assert_eq!(answer["Data"]["Keys"][0]["Response"], "Success");
        assert_eq!(answer["Data"]["Keys"][1]["Response"], "Success");
        assert_eq!(
            answer["Data"]["Keys"][2]["Reason"],
            "too many entries from your address"
        );
        break r;
    };
    assert_eq!(tracker.stats().entries, 2);

    // Requests: the burst is twice the rate and the REG took one; the clock stands still.
    let list = Request::List(ListRequest {
        network: net.id(),
        max: None,
    })
    .to_json();
    let burst = 2 * rate;
    for i in 1..burst {
        let answer = raw.ask(&list).await;
        assert_eq!(
            answer["Data"]["Response"], "Success",
            "request {i} of the burst"
        );
        assert_eq!(answer["Data"]["Peers"].as_array().unwrap().len(), 2);
    }
    assert_fail(&raw.ask(&list).await, "too many requests from your address");
    // One second gives back `rate` tokens, no more.
    clock.advance(Duration::from_secs(1));
    for i in 0..rate {
        assert_eq!(
            raw.ask(&list).await["Data"]["Response"],
            "Success",
            "request {i}"
        );
    }
    assert_fail(&raw.ask(&list).await, "too many requests from your address");
    drop(raw);

    // Someone else, from another address (127.0.0.2 is loopback too), is still served.
    let mut other = Raw::connect_from(addr, [127, 0, 0, 2]).await;
    let reg = sign_registration(net.id(), node_addr(2), now_ms(), &[key()]);
    let answer = other.ask(&Request::Reg(reg).to_json()).await;
    assert_eq!(answer["Data"]["Response"], "Success");
    assert_eq!(tracker.stats().entries, 3);
    tracker.shutdown().await.unwrap();
}

/// A full tracker refuses a new key and stores nothing for it, but renews a key it
/// holds (its new address replaces the old one).
#[tokio::test]
async fn a_full_tracker_refuses_new_keys_but_renews_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let lim = Limits {
        max_entries: 2,
        ..limits()
    };
    let tracker = start(dir.path(), std::slice::from_ref(&net), lim).await;
    let c = client(tracker.local_addr());
    let (a, b, newcomer) = (key(), key(), key());
    let done = c
        .register(net.id(), node_addr(1), &[a.clone(), b.clone()])
        .await
        .unwrap();
    assert_eq!(done.accepted, vec![a.0.account(), b.0.account()]);
    let err = c
        .register(net.id(), node_addr(1), &[newcomer.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Refused(ref r) if r == "tracker full"),
        "{err}"
    );
    let renewed = c
        .register(net.id(), node_addr(3), &[a.clone()])
        .await
        .unwrap();
    assert_eq!(renewed.accepted, vec![a.0.account()]);
    assert!(renewed.refused.is_empty());
    assert_eq!(tracker.stats().entries, 2);
    let mut listed = c.peers(net.id(), None).await.unwrap();
    listed.sort_by_key(|p| p.address.port());
    let listed: Vec<_> = listed.iter().map(|p| (p.account, p.address)).collect();
    assert_eq!(
        listed,
        vec![(b.0.account(), node_addr(1)), (a.0.account(), node_addr(3)),]
    );
    tracker.shutdown().await.unwrap();
}
