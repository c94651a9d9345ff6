//! The tracker over real TCP on 127.0.0.1 with real redb files: registering, listing,
//! joining, refusing forged or malformed requests, and the client's retries. Expiry is in
//! `expiry.rs`, per-address and size limits in `limits.rs`, store failures in
//! `storage.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use std::time::Duration;

use common::*;
use tally_core::SecretKey;
use tally_proto::tracker::{KeyEntry, ListRequest};
use tally_tracker::{ClientError, Limits, Request, now_ms, sign_registration};

#[tokio::test]
async fn register_list_regup_and_join() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let tracker = start(dir.path(), std::slice::from_ref(&net), limits()).await;
    let client = client(tracker.local_addr());
    let id = net.id();

    let (a, b, c) = (key(), key(), key());
    let done = client
        .register(id, node_addr(2001), &[a.clone()])
        .await
        .unwrap();
    assert_eq!(done.accepted, vec![a.0.account()]);
    assert!(done.refused.is_empty());
    client
        .register(id, node_addr(2002), &[b.clone()])
        .await
        .unwrap();

    let mut listed = client.peers(id, None).await.unwrap();
    listed.sort_by_key(|p| p.address.port());
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].account, a.0.account());
    assert_eq!(listed[0].address, node_addr(2001));
    assert_eq!(listed[0].proof_of_work, a.1);
    assert_eq!(listed[1].address, node_addr(2002));
    assert_eq!(client.peers(id, Some(1)).await.unwrap().len(), 1);

    // REGUP: registers and returns the map of live keys, itself included.
    let (reg, map) = client
        .register_and_list(id, node_addr(2003), &[c.clone()])
        .await
        .unwrap();
    assert_eq!(reg.accepted, vec![c.0.account()]);
    assert_eq!(map.len(), 3);

    // Join: the list never holds the asker; after the acknowledgement it is listed.
    let d = key();
    let joined = client
        .join(id, node_addr(2004), &[d.clone()], None)
        .await
        .unwrap();
    assert_eq!(joined.peers.len(), 3);
    assert!(joined.peers.iter().all(|p| p.account != d.0.account()));
    assert_eq!(joined.registered.accepted, vec![d.0.account()]);
    assert_eq!(client.peers(id, None).await.unwrap().len(), 4);
    // Re-joining: still never itself, even with its old entry listed.
    let again = client
        .join(id, node_addr(2004), &[d.clone()], Some(10))
        .await
        .unwrap();
    assert_eq!(again.peers.len(), 3);
    assert!(again.peers.iter().all(|p| p.address != node_addr(2004)));
    assert_eq!(tracker.stats().entries, 4);
    tracker.shutdown().await.unwrap();
}

#[tokio::test]
async fn initialize_without_acknowledge_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let tracker = start(dir.path(), std::slice::from_ref(&net), limits()).await;
    let k = key();
    let mut raw = Raw::connect(tracker.local_addr()).await;
    let reg = sign_registration(net.id(), node_addr(7), now_ms(), &[k]);
    let list = raw.ask(&Request::Initialize(reg).to_json()).await;
    assert_eq!(list["Type"], "SEND_LIST");
    assert_eq!(list["Data"]["Response"], "Success");
    assert_eq!(list["Data"]["Peers"], serde_json::json!([]));
    drop(raw);
    assert!(
        client(tracker.local_addr())
            .peers(net.id(), None)
            .await
            .unwrap()
            .is_empty()
    );

    // An acknowledgement with no INITIALIZE before it, or for another network, fails.
    let mut raw = Raw::connect(tracker.local_addr()).await;
    let ack = format!(
        r#"{{"Type":"ACKNOWLEDGE_LIST","Data":{{"Network":"{}","Received":0}}}}"#,
        net.id()
    );
    let answer = raw.ask(ack.as_bytes()).await;
    assert_eq!(answer["Type"], "ACCEPT_ACKNOWLEDGE");
    assert_eq!(answer["Data"]["Response"], "Fail");
    assert!(
        answer["Data"]["Reason"]
            .as_str()
            .unwrap()
            .contains("INITIALIZE")
    );
    let reg = sign_registration(net.id(), node_addr(7), now_ms() + 1, &[key()]);
    raw.ask(&Request::Initialize(reg).to_json()).await;
    let other = contract("other").id();
    let ack = format!(r#"{{"Type":"ACKNOWLEDGE_LIST","Data":{{"Network":"{other}"}}}}"#);
    let answer = raw.ask(ack.as_bytes()).await;
    assert_eq!(answer["Data"]["Response"], "Fail");
    assert_eq!(tracker.stats().entries, 0);
    tracker.shutdown().await.unwrap();
}

#[tokio::test]
async fn forged_and_replayed_registrations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let tracker = start(dir.path(), std::slice::from_ref(&net), limits()).await;
    let mut raw = Raw::connect(tracker.local_addr()).await;
    let (victim, attacker) = (key(), key());

    // The attacker lists the victim's key at its own address, signing with its own key.
    let mut forged = sign_registration(net.id(), node_addr(666), now_ms(), &[attacker.clone()]);
    forged.keys[0].fingerprint = victim.0.account();
    forged.keys[0].proof_of_work = victim.1;
    let answer = raw.ask(&Request::Reg(forged).to_json()).await;
    assert_eq!(answer["Type"], "RESP_REG");
    assert_eq!(answer["Data"]["Response"], "Fail");
    assert_eq!(answer["Data"]["Reason"], "bad signature");

    // A genuine registration whose address was changed after signing.
    let mut moved = sign_registration(net.id(), node_addr(1), now_ms(), &[victim.clone()]);
    moved.address = node_addr(666).to_string();
    let answer = raw.ask(&Request::Reg(moved).to_json()).await;
    assert_eq!(answer["Data"]["Reason"], "bad signature");

    // One good key and one forged: Partial-Success, only the good one stored.
    let good = sign_registration(net.id(), node_addr(5), now_ms(), &[attacker.clone()]);
    let mut mixed = good.clone();
    mixed.keys.push(KeyEntry {
        fingerprint: victim.0.account(),
        proof_of_work: victim.1,
        signature: mixed.keys[0].signature,
    });
    let answer = raw.ask(&Request::Reg(mixed).to_json()).await;
    assert_eq!(answer["Data"]["Response"], "Partial-Success");
    assert_eq!(answer["Data"]["Keys"][0]["Response"], "Success");
    assert_eq!(answer["Data"]["Keys"][1]["Response"], "Fail");
    assert_eq!(answer["Data"]["Keys"][1]["Reason"], "bad signature");

    // Replaying the stored registration is refused.
    let mut replay = good;
    replay.keys.truncate(1);
    let answer = raw.ask(&Request::Reg(replay).to_json()).await;
    assert_eq!(answer["Data"]["Response"], "Fail");
    assert!(
        answer["Data"]["Reason"]
            .as_str()
            .unwrap()
            .contains("not newer")
    );

    let listed = client(tracker.local_addr())
        .peers(net.id(), None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].account, attacker.0.account());
    assert_eq!(listed[0].address, node_addr(5));
    tracker.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_requests_fail_and_the_tracker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let tracker = start(dir.path(), std::slice::from_ref(&net), limits()).await;
    let mut raw = Raw::connect(tracker.local_addr()).await;
    let id = net.id();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "malformed JSON"),
        (b"".to_vec(), "malformed JSON"),
        (vec![0xff, 0x00, 0x12], "malformed JSON"),
        (br#"{"Type":"HELLO","Data":{}}"#.to_vec(), "unknown type"),
        (br#"{"Type":5,"Data":{}}"#.to_vec(), "invalid request"),
        (br#"{"Data":{}}"#.to_vec(), "invalid request"),
        (br#"{"Type":"LIST"}"#.to_vec(), "invalid request"),
        (br#"{"Type":"LIST","Data":{}}"#.to_vec(), "missing field `Network`"),
        (br#"{"Type":"LIST","Data":{"Network":42}}"#.to_vec(), "invalid type"),
        (
            format!(r#"{{"Type":"LIST","Data":{{"Network":"{id}","Max":-1}}}}"#).into_bytes(),
            "invalid",
        ),
        (
            format!(r#"{{"Type":"REG","Data":{{"Network":"{id}","Address":"1.2.3.4:5","Timestamp":1,"Keys":"x"}}}}"#)
                .into_bytes(),
            "invalid type",
        ),
        (
            format!(r#"{{"Type":"REG","Data":{{"Network":"{id}","Address":"1.2.3.4:5","Keys":[]}}}}"#).into_bytes(),
            "missing field `Timestamp`",
        ),
        (
            format!(r#"{{"Type":"REG","Data":{{"Network":"{id}","Address":"1.2.3.4:5","Timestamp":1,"Keys":[],"Extra":1}}}}"#)
                .into_bytes(),
            "unknown field",
        ),
        (
            format!(r#"{{"Type":"REG","Data":{{"Network":"{id}","Address":"1.2.3.4:5","Timestamp":1,"Keys":[{{"Fingerprint":"00","ProofOfWork":1,"Signature":"00"}}]}}}}"#)
                .into_bytes(),
            "expected 64 hex digits",
        ),
    ];
    for (body, reason) in &cases {
        let answer = raw.ask(body).await;
        assert_eq!(answer["Type"], "FAIL", "{}", String::from_utf8_lossy(body));
        assert_eq!(answer["Data"]["Response"], "Fail");
        let got = answer["Data"]["Reason"].as_str().unwrap();
        assert!(got.contains(reason), "{got:?} should mention {reason:?}");
        // Each a fresh connection too, so the failure budget is not what closes it.
        raw = Raw::connect(tracker.local_addr()).await;
    }

    // Valid shape, refused content.
    let k = key();
    let mut raw = Raw::connect(tracker.local_addr()).await;
    let other = contract("other").id();
    let wrong_net = sign_registration(other, node_addr(1), now_ms(), &[k.clone()]);
    let answer = raw.ask(&Request::Reg(wrong_net).to_json()).await;
    assert_eq!(answer["Data"]["Response"], "Fail");
    assert_eq!(answer["Data"]["Reason"], "unknown network");
    let answer = raw
        .ask(
            &Request::List(ListRequest {
                network: other,
                max: None,
            })
            .to_json(),
        )
        .await;
    assert_eq!(answer["Data"]["Reason"], "unknown network");
    let wrong_net = sign_registration(other, node_addr(1), now_ms(), &[k.clone()]);
    let answer = raw.ask(&Request::Initialize(wrong_net).to_json()).await;
    assert_eq!(answer["Data"]["Reason"], "unknown network");

    let mut bad_pow = k.clone();
    while tally_core::pow::check_intro_pow(&bad_pow.0.account(), bad_pow.1, BITS) {
        bad_pow.1 += 1;
    }
    let answer = raw
        .ask(&Request::Reg(sign_registration(id, node_addr(1), now_ms(), &[bad_pow])).to_json())
        .await;
    assert_eq!(answer["Data"]["Response"], "Fail");
    assert!(
        answer["Data"]["Reason"]
            .as_str()
            .unwrap()
            .contains("proof of work")
    );

    let mut bad_sig = sign_registration(id, node_addr(1), now_ms(), &[k.clone()]);
    bad_sig.keys[0].signature = SecretKey::generate().sign(b"nothing");
    let answer = raw.ask(&Request::Reg(bad_sig).to_json()).await;
    assert_eq!(answer["Data"]["Reason"], "bad signature");

    let skewed = sign_registration(id, node_addr(1), now_ms() + 3_600_000, &[k.clone()]);
    let answer = raw.ask(&Request::Reg(skewed).to_json()).await;
    assert!(answer["Data"]["Reason"].as_str().unwrap().contains("clock"));

    let mut bad_addr = sign_registration(id, node_addr(1), now_ms(), &[k.clone()]);
    bad_addr.address = "localhost".into();
    let answer = raw.ask(&Request::Reg(bad_addr).to_json()).await;
    assert!(
        answer["Data"]["Reason"]
            .as_str()
            .unwrap()
            .contains("bad address")
    );

    assert_eq!(tracker.stats().entries, 0, "nothing stored");
    // The tracker still serves everyone.
    let c = client(tracker.local_addr());
    c.register(id, node_addr(9), &[k]).await.unwrap();
    assert_eq!(c.peers(id, None).await.unwrap().len(), 1);
    tracker.shutdown().await.unwrap();
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let tracker = start(dir.path(), std::slice::from_ref(&net), limits()).await;
    let mut raw = Raw::connect(tracker.local_addr()).await;
    let keys: Vec<_> = (0..20).map(|_| key()).collect();
    for (i, k) in keys.iter().enumerate() {
        let reg = sign_registration(net.id(), node_addr(1000 + i as u16), now_ms(), &[k.clone()]);
        raw.send(&Request::Reg(reg).to_json()).await;
        if i == 10 {
            raw.send(b"junk in the middle").await;
        }
    }
    for (i, k) in keys.iter().enumerate() {
        let answer = raw.recv().await.unwrap();
        assert_eq!(answer["Type"], "RESP_REG");
        assert_eq!(
            answer["Data"]["Keys"][0]["Fingerprint"],
            k.0.account().to_string()
        );
        if i == 10 {
            assert_eq!(raw.recv().await.unwrap()["Type"], "FAIL");
        }
    }
    assert_eq!(tracker.stats().entries, 20);
    tracker.shutdown().await.unwrap();
}

/// Signatures are checked in batches split across verifier threads; a forged signature
/// anywhere in a batch refuses exactly its own key.
#[tokio::test]
async fn forged_keys_in_split_batches_refuse_only_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let limits = Limits {
        verify_threads: 2,
        ..limits()
    };
    let tracker = start(dir.path(), std::slice::from_ref(&net), limits).await;
    let mut raw = Raw::connect(tracker.local_addr()).await;
    let requests = 6;
    let per_request = 16;
    let mut forged = Vec::new();
    for r in 0..requests {
        let keys: Vec<_> = (0..per_request).map(|_| key()).collect();
        let mut reg = sign_registration(net.id(), node_addr(2000 + r as u16), now_ms(), &keys);
        // Forge one key in every other request, at a different position each time.
        if r % 2 == 1 {
            let k = (r * 5) % per_request;
            reg.keys[k].signature = reg.keys[(k + 1) % per_request].signature;
            forged.push((r, k));
        }
        raw.send(&Request::Reg(reg).to_json()).await;
    }
    for r in 0..requests {
        let answer = raw.recv().await.unwrap();
        assert_eq!(answer["Type"], "RESP_REG");
        for k in 0..per_request {
            let expected = if forged.contains(&(r, k)) {
                "Fail"
            } else {
                "Success"
            };
            assert_eq!(
                answer["Data"]["Keys"][k]["Response"], expected,
                "request {r} key {k}"
            );
        }
    }
    assert_eq!(
        tracker.stats().entries,
        requests * per_request - forged.len()
    );
    tracker.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unspecified_address_means_the_connections_ip() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let tracker = start(dir.path(), std::slice::from_ref(&net), limits()).await;
    let c = client(tracker.local_addr());
    c.register(net.id(), "0.0.0.0:2222".parse().unwrap(), &[key()])
        .await
        .unwrap();
    assert_eq!(
        c.peers(net.id(), None).await.unwrap()[0].address,
        node_addr(2222)
    );
    tracker.shutdown().await.unwrap();
}

/// A client that gets no answer (the address accepts connections but nobody answers)
/// retries, and gets through once the tracker serves on that address. The test holds the
/// port from start to end: the tracker takes over the very listener that stayed silent,
/// so nothing else can take the port in between.
#[tokio::test]
async fn a_client_that_gets_no_answer_retries_until_the_tracker_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tally_tracker::TrackerClient::new(
        addr.to_string(),
        tally_tracker::ClientConfig {
            answer_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 30,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(200),
            ..Default::default()
        },
    );
    let k = key();
    let id = net.id();
    let join = tokio::spawn(async move {
        client
            .join(id, node_addr(4000), &[k.clone()], None)
            .await
            .map(|j| (j, k.0.account()))
    });
    // Two connections from the client: the first got no answer, so it tried again.
    let accept = || async {
        tokio::time::timeout(Duration::from_secs(20), listener.accept())
            .await
            .expect("the client connects")
            .unwrap()
            .0
    };
    let first = accept().await;
    let second = accept().await;
    drop((first, second));
    let config = config(dir.path(), std::slice::from_ref(&net), limits());
    let tracker = tally_tracker::Tracker::with_listener(config, listener)
        .await
        .unwrap()
        .spawn();
    assert_eq!(tracker.local_addr(), addr);
    let (joined, me) = join.await.unwrap().unwrap();
    assert_eq!(joined.registered.accepted, vec![me]);
    assert!(joined.registered.refused.is_empty());
    assert_eq!(tracker.stats().entries, 1);
    let listed = common::client(addr).peers(id, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].account, listed[0].address),
        (me, node_addr(4000))
    );
    tracker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_gives_up_after_its_attempts() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tally_tracker::TrackerClient::new(
        silent.local_addr().unwrap().to_string(),
        tally_tracker::ClientConfig {
            answer_timeout: Duration::from_millis(100),
            max_attempts: 2,
            backoff_initial: Duration::from_millis(10),
            ..Default::default()
        },
    );
    let err = client.peers(contract("x").id(), None).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Unreachable { attempts: 2, .. }),
        "{err}"
    );
}
