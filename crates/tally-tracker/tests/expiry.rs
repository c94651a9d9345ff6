//! Expiry over real TCP and real redb files, on a `ManualClock`: the tracker reads the
//! time only from the clock the test moves, so a loaded machine cannot expire an entry
//! early or keep it late.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use std::time::Duration;

use common::*;
use tally_tracker::store::Store;
use tally_tracker::{Limits, ManualClock, Request, now_ms, sign_registration};

const TTL: Duration = Duration::from_secs(10);
const MS: Duration = Duration::from_millis(1);

/// Polls `done` until it holds (a hang guard, not a timing assertion).
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

/// An entry is live for exactly its time to live after its registration (listed at its
/// last millisecond, gone at the next), expired entries are hidden before any sweep, a
/// renewed one is live again, and `REGUP` maps only hold live entries of the asker's
/// network.
#[tokio::test]
async fn regup_returns_only_live_entries_of_the_askers_network() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (contract("one"), contract("two"));
    let lim = Limits {
        ttl: TTL,
        sweep_interval: Duration::from_secs(3600),
        ..limits()
    };
    let clock = ManualClock::starting_now();
    let tracker =
        start_with_clock(dir.path(), &[one.clone(), two.clone()], lim, clock.clock()).await;
    let client = client(tracker.local_addr());
    let (old, other, fresh) = (key(), key(), key());
    client
        .register(one.id(), node_addr(1), &[old.clone()])
        .await
        .unwrap();
    client
        .register(two.id(), node_addr(2), &[other.clone()])
        .await
        .unwrap();
    clock.advance(TTL - MS);
    let listed = client.peers(one.id(), None).await.unwrap();
    assert_eq!(listed.len(), 1, "live in its last millisecond");
    assert_eq!(listed[0].account, old.0.account());
    clock.advance(MS);
    assert!(client.peers(one.id(), None).await.unwrap().is_empty());
    assert!(client.peers(two.id(), None).await.unwrap().is_empty());
    client
        .register(two.id(), node_addr(2), &[other.clone()])
        .await
        .unwrap();
    let (_, map) = client
        .register_and_list(one.id(), node_addr(3), &[fresh.clone()])
        .await
        .unwrap();
    // `old` expired (not yet swept), `other` is live but on network two.
    assert_eq!(map.len(), 1);
    assert_eq!(map[0].account, fresh.0.account());
    assert_eq!(map[0].address, node_addr(3));
    let listed = client.peers(two.id(), None).await.unwrap();
    assert_eq!(listed.len(), 1, "renewed, live again");
    assert_eq!(listed[0].account, other.0.account());
    assert_eq!(tracker.stats().entries, 3, "expired but not yet swept");
    tracker.shutdown().await.unwrap();
}

/// Expired entries are swept from memory and from disk: after the sweep the registry
/// is empty and the database holds no row.
#[tokio::test]
async fn entries_expire_and_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let lim = Limits {
        ttl: TTL,
        sweep_interval: Duration::from_millis(50),
        ..limits()
    };
    let clock = ManualClock::starting_now();
    let tracker =
        start_with_clock(dir.path(), std::slice::from_ref(&net), lim, clock.clock()).await;
    let client = client(tracker.local_addr());
    client
        .register(net.id(), node_addr(1), &[key()])
        .await
        .unwrap();
    assert_eq!(client.peers(net.id(), None).await.unwrap().len(), 1);
    // However many sweeps run meanwhile, a live entry stays.
    clock.advance(TTL - MS);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(tracker.stats().entries, 1);
    clock.advance(Duration::from_secs(1));
    assert!(client.peers(net.id(), None).await.unwrap().is_empty());
    eventually("the sweep empties the registry", || {
        tracker.stats().entries == 0
    })
    .await;
    tracker.shutdown().await.unwrap();
    assert_eq!(
        Store::open(dir.path(), 1 << 20)
            .unwrap()
            .row_count()
            .unwrap(),
        0
    );
}

/// A restart reloads the live entries (and the replay guard with them) and drops the
/// expired ones, judged by the clock at the restart.
#[tokio::test]
async fn restart_keeps_live_entries_and_drops_expired_ones() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let lim = Limits {
        ttl: TTL,
        sweep_interval: Duration::from_secs(3600),
        ..limits()
    };
    let clock = ManualClock::starting_now();
    let start = || {
        start_with_clock(
            dir.path(),
            std::slice::from_ref(&net),
            lim.clone(),
            clock.clock(),
        )
    };
    let (a, b) = (key(), key());
    let tracker = start().await;
    let c = client(tracker.local_addr());
    c.register(net.id(), node_addr(1), &[a.clone()])
        .await
        .unwrap();
    clock.advance(TTL / 2);
    c.register(net.id(), node_addr(2), &[b.clone()])
        .await
        .unwrap();
    tracker.shutdown().await.unwrap();

    let tracker = start().await;
    assert_eq!(tracker.stats().entries, 2);
    let c = client(tracker.local_addr());
    let mut listed = c.peers(net.id(), None).await.unwrap();
    listed.sort_by_key(|p| p.address.port());
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (listed[0].account, listed[0].address),
        (a.0.account(), node_addr(1))
    );
    assert_eq!(
        (listed[1].account, listed[1].address),
        (b.0.account(), node_addr(2))
    );
    // The replay guard survives the restart too.
    let mut raw = Raw::connect(tracker.local_addr()).await;
    let stale = sign_registration(net.id(), node_addr(1), now_ms() - 60_000, &[a.clone()]);
    let answer = raw.ask(&Request::Reg(stale).to_json()).await;
    assert_eq!(answer["Data"]["Response"], "Fail");
    assert!(
        answer["Data"]["Reason"]
            .as_str()
            .unwrap()
            .contains("not newer")
    );
    tracker.shutdown().await.unwrap();

    // `a` has expired, `b` has not.
    clock.advance(TTL / 2);
    let tracker = start().await;
    assert_eq!(tracker.stats().entries, 1);
    let listed = client(tracker.local_addr())
        .peers(net.id(), None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].account, b.0.account());
    tracker.shutdown().await.unwrap();

    clock.advance(TTL / 2);
    let tracker = start().await;
    assert_eq!(tracker.stats().entries, 0);
    tracker.shutdown().await.unwrap();
    // Loading deleted the expired rows from disk.
    assert_eq!(
        Store::open(dir.path(), 1 << 20)
            .unwrap()
            .row_count()
            .unwrap(),
        0
    );
}
