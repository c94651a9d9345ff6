//! Store failures: the tracker's redb store on a storage backend around a real file whose
//! writes fail, or whose `fsync` is held or fails, when the test says so. A registration
//! is acknowledged only once durable; a commit that cannot write is refused with a reason
//! and changes nothing, neither in memory nor on disk; and no reader sees a registration
//! before its commit is durable.
//!
//! (A failed `fsync` is refused the same way, but what it leaves on disk is up to the
//! kernel: redb writes a commit's header before its one `fsync`, so the rows may turn up
//! after a restart. They were signed by their keys, so that costs nothing but an entry
//! that was answered `storage error`; what matters, that nothing is acknowledged or
//! listed before it is durable, holds.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use redb::StorageBackend;
use redb::backends::FileBackend;
use tally_core::NetworkId;
use tally_tracker::registry::{Entry, Registry, RegistryLimits, ip_bytes};
use tally_tracker::store::Store;
use tally_tracker::{
    ClientError, Limits, Request, Tracker, TrackerConfig, TrackerHandle, now_ms, sign_registration,
};

/// What the backend does.
#[derive(Debug, Default)]
struct Switch {
    /// Every write fails.
    failing_writes: bool,
    /// The next sync stops and waits for a verdict (`Some(true)`: it succeeds).
    hold: bool,
    /// A sync is waiting for its verdict.
    held: bool,
    verdict: Option<bool>,
}

/// The test's handle on a [`FaultyFile`].
#[derive(Debug, Default)]
struct Fault {
    switch: Mutex<Switch>,
    changed: Condvar,
}

impl Fault {
    fn fail_writes(&self, failing: bool) {
        self.switch.lock().unwrap().failing_writes = failing;
    }

    fn write(&self) -> io::Result<()> {
        if self.switch.lock().unwrap().failing_writes {
            return Err(io::Error::other("injected write failure"));
        }
        Ok(())
    }

    /// The next sync will wait for [`Fault::release`].
    fn hold_next_sync(&self) {
        let mut switch = self.switch.lock().unwrap();
        switch.hold = true;
        switch.verdict = None;
    }

    /// Waits (on a blocking thread) until a sync is being held.
    async fn until_held(self: &Arc<Self>) {
        let fault = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let switch = fault.switch.lock().unwrap();
            let (switch, timeout) = fault
                .changed
                .wait_timeout_while(switch, Duration::from_secs(20), |s| !s.held)
                .unwrap();
            assert!(
                !timeout.timed_out() && switch.held,
                "no commit reached the store"
            );
        })
        .await
        .unwrap();
    }

    /// Lets the held sync finish: successfully or with an error.
    fn release(&self, succeed: bool) {
        self.switch.lock().unwrap().verdict = Some(succeed);
        self.changed.notify_all();
    }

    fn sync(&self) -> io::Result<()> {
        let mut switch = self.switch.lock().unwrap();
        if switch.hold {
            switch.hold = false;
            switch.held = true;
            self.changed.notify_all();
            while switch.verdict.is_none() {
                switch = self.changed.wait(switch).unwrap();
            }
            switch.held = false;
            if switch.verdict == Some(false) {
                return Err(io::Error::other("injected fsync failure"));
            }
        }
        Ok(())
    }
}

/// A real database file whose writes fail, or whose `fsync` waits (and then fails or
/// not), when the test says so.
#[derive(Debug)]
struct FaultyFile {
    file: FileBackend,
    fault: Arc<Fault>,
}

impl StorageBackend for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.file.read(offset, len)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        self.fault.sync()?;
        self.file.sync_data(eventual)
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.fault.write()?;
        self.file.write(offset, data)
    }
}

/// The store in `dir/tracker.redb`, the file a tracker with that data directory uses,
/// behind a faulty backend.
fn faulty_store(dir: &Path) -> (Store, Arc<Fault>) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(tally_tracker::config::DB_FILE))
        .unwrap();
    let fault = Arc::new(Fault::default());
    let backend = FaultyFile {
        file: FileBackend::new(file).unwrap(),
        fault: Arc::clone(&fault),
    };
    (Store::with_backend(backend, 1 << 20).unwrap(), fault)
}

fn tracker_config(dir: &Path, net: &tally_core::NetworkContract) -> TrackerConfig {
    let lim = Limits {
        // No sweep commits: the only commits are the registrations'.
        sweep_interval: Duration::from_secs(3600),
        ..limits()
    };
    config(dir, std::slice::from_ref(net), lim)
}

async fn start_faulty(
    dir: &Path,
    net: &tally_core::NetworkContract,
) -> (TrackerHandle, Arc<Fault>) {
    let (store, fault) = faulty_store(dir);
    let tracker = Tracker::with_store(tracker_config(dir, net), store)
        .await
        .unwrap()
        .spawn();
    (tracker, fault)
}

/// The network's listed keys and addresses, sorted by port.
async fn listed(
    tracker: &TrackerHandle,
    network: NetworkId,
) -> Vec<(tally_core::AccountId, std::net::SocketAddr)> {
    let mut peers = client(tracker.local_addr())
        .peers(network, None)
        .await
        .unwrap();
    peers.sort_by_key(|p| p.address.port());
    peers.iter().map(|p| (p.account, p.address)).collect()
}

fn storage_refusal(result: Result<tally_tracker::Registered, ClientError>) {
    match result {
        Err(ClientError::Refused(reason)) => assert_eq!(reason, "storage error"),
        other => panic!("expected a storage refusal, got {other:?}"),
    }
}

/// A commit that cannot write refuses every registration of its batch with "storage error",
/// and changes nothing: a renewed key keeps its old address, a new key is not listed (by
/// `REG` or by the `INITIALIZE` / `ACKNOWLEDGE_LIST` join), and after a restart the store
/// holds exactly what was acknowledged before the failure.
#[tokio::test]
async fn a_failed_commit_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let (tracker, fault) = start_faulty(dir.path(), &net).await;
    let c = client(tracker.local_addr());
    let (a, b, joiner) = (key(), key(), key());
    let done = c
        .register(net.id(), node_addr(1), &[a.clone()])
        .await
        .unwrap();
    assert_eq!(done.accepted, vec![a.0.account()]);

    fault.fail_writes(true);
    storage_refusal(c.register(net.id(), node_addr(2), &[a.clone()]).await);
    storage_refusal(c.register(net.id(), node_addr(3), &[b.clone()]).await);
    let mut raw = Raw::connect(tracker.local_addr()).await;
    let init = sign_registration(net.id(), node_addr(4), now_ms(), &[joiner.clone()]);
    let list = raw.ask(&Request::Initialize(init).to_json()).await;
    assert_eq!(list["Data"]["Response"], "Success");
    let ack = format!(
        r#"{{"Type":"ACKNOWLEDGE_LIST","Data":{{"Network":"{}","Received":1}}}}"#,
        net.id()
    );
    let answer = raw.ask(ack.as_bytes()).await;
    assert_eq!(answer["Type"], "ACCEPT_ACKNOWLEDGE");
    assert_eq!(answer["Data"]["Response"], "Fail");
    assert_eq!(answer["Data"]["Keys"][0]["Reason"], "storage error");

    assert_eq!(
        listed(&tracker, net.id()).await,
        vec![(a.0.account(), node_addr(1))]
    );
    assert_eq!(tracker.stats().entries, 1);
    fault.fail_writes(false);
    tracker.shutdown().await.unwrap();

    let store = Store::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(store.row_count().unwrap(), 1, "only the acknowledged row");
    drop(store);
    let tracker = Tracker::bind(tracker_config(dir.path(), &net))
        .await
        .unwrap()
        .spawn();
    assert_eq!(
        listed(&tracker, net.id()).await,
        vec![(a.0.account(), node_addr(1))]
    );
    tracker.shutdown().await.unwrap();
}

/// No reader sees a registration before its commit is durable: while the commit's
/// `fsync` is held, `LIST` shows nothing new and the registration is not answered; once
/// it succeeds, the key is answered and listed; when it fails, the key is refused with
/// "storage error" and never listed.
#[tokio::test]
async fn a_registration_is_listed_only_once_its_commit_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let net = contract("main");
    let (tracker, fault) = start_faulty(dir.path(), &net).await;
    let (a, b) = (key(), key());
    let id = net.id();

    fault.hold_next_sync();
    // One attempt, waiting as long as the test may hold the commit: no retry can blur
    // which registration was answered what.
    let register = |k: (tally_core::SecretKey, u64), port| {
        let c = tally_tracker::TrackerClient::new(
            tracker.local_addr().to_string(),
            tally_tracker::ClientConfig {
                answer_timeout: Duration::from_secs(120),
                max_attempts: 1,
                ..Default::default()
            },
        );
        tokio::spawn(async move { c.register(id, node_addr(port), &[k]).await })
    };
    let pending = register(a.clone(), 1);
    fault.until_held().await;
    assert_eq!(listed(&tracker, id).await, vec![]);
    assert_eq!(tracker.stats().entries, 0);
    assert!(!pending.is_finished(), "not answered before it is durable");
    fault.release(true);
    let done = pending.await.unwrap().unwrap();
    assert_eq!(done.accepted, vec![a.0.account()]);
    assert_eq!(
        listed(&tracker, id).await,
        vec![(a.0.account(), node_addr(1))]
    );

    fault.hold_next_sync();
    let pending = register(b.clone(), 2);
    fault.until_held().await;
    assert_eq!(
        listed(&tracker, id).await,
        vec![(a.0.account(), node_addr(1))]
    );
    fault.release(false);
    storage_refusal(pending.await.unwrap());
    assert_eq!(
        listed(&tracker, id).await,
        vec![(a.0.account(), node_addr(1))]
    );
    assert_eq!(tracker.stats().entries, 1);
    tracker.shutdown().await.unwrap();
}

/// `Store::commit` reports a failed write as an error naming its cause, and the log is
/// left exactly as it was: reopened, it holds the earlier rows only, and loading them
/// gives the earlier entries.
#[test]
fn a_failed_store_commit_reports_the_cause_and_leaves_the_log_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let network = contract("main").id();
    let entry = |k: u8, seen: u64| Entry {
        account: tally_core::SecretKey::from_bytes([k; 32]).account(),
        ip: ip_bytes([10, 0, 0, k].into()),
        source: ip_bytes([10, 0, 0, k].into()),
        proof_of_work: 1,
        timestamp: seen,
        seen,
        port: 1000,
    };
    let now = now_ms();
    {
        let (mut store, fault) = faulty_store(dir.path());
        store.commit(&[(network, entry(1, now))], None).unwrap();
        fault.fail_writes(true);
        let error = store
            .commit(
                &[(network, entry(2, now)), (network, entry(1, now + 1))],
                None,
            )
            .unwrap_err();
        assert!(
            error.to_string().contains("injected write failure"),
            "{error}"
        );
        fault.fail_writes(false);
    }
    let mut store = Store::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(store.row_count().unwrap(), 1);
    let limits = RegistryLimits {
        max_entries: 10,
        max_entries_per_ip: 10,
        max_entries_per_address: 1000,
    };
    let mut registry = Registry::new([&network], limits);
    let report = store
        .load(&mut registry, &|id| *id == network, now, 60_000)
        .unwrap();
    assert_eq!(report.loaded, 1);
    assert_eq!(
        registry.get(&network, &entry(1, 0).account),
        Some(&entry(1, now))
    );
    assert!(registry.get(&network, &entry(2, 0).account).is_none());
}

/// A data directory that cannot be created stops the tracker at start with an error that
/// names the directory.
#[tokio::test]
async fn a_data_directory_that_cannot_be_created_is_a_clear_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let data_dir = blocker.join("tracker");
    let net = contract("main");
    let error = Tracker::bind(config(&data_dir, std::slice::from_ref(&net), limits()))
        .await
        .err()
        .expect("the tracker cannot start");
    let text = error.to_string();
    assert!(text.contains("creating the data directory"), "{text}");
    assert!(text.contains(&data_dir.display().to_string()), "{text}");
}
