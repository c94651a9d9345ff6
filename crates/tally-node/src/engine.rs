//! The batching engine: one thread owns the validator state and the database writes; what
//! a batch answers is decided by [`crate::decider`], which does no I/O.
//!
//! A batch is whatever queued while the previous batch was being processed, so batches
//! grow under load (amortising the fsync and the batched signature checks) and shrink to
//! one request when idle (no added latency).
//!
//! Two stages overlap: while the committer thread makes batch N durable, the engine thread
//! already checks, decides and signs batch N+1 against the in-memory state. Batches are
//! committed in order and a batch's answers leave only after its own commit, so no vote is
//! ever sent before it is durable.
//!
//! A storage failure is crash-only. When a commit (or a checkpoint) fails, the memory state
//! may be ahead of the disk: that batch and every batch decided after it (whose decisions
//! built on it) are answered `Internal` ("storage failed; nothing was recorded"), nothing
//! more is written, the engine stops, and [`EngineHandle::failed`] resolves, upon which the
//! node stops as a whole ([`crate::Node::stopped`]). It does not stay up answering `Busy`:
//! a validator that can no longer record anything must not look alive to its clients, its
//! peers or the tracker. A restart reloads the last durable state; no vote was ever given
//! that it could forget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tally_core::AccountId;
use tally_ledger::{LedgerStore, Validator};
use tally_proto::quorum::LoggedCertificate;
use tally_proto::{ErrorCode, Packet};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::decider::{DecidedBatch, Decider, Immediate, Released, Request};
pub use crate::decider::{Status, SyncOutcome};
use crate::notices::Notice;

/// Work for the engine.
pub enum Job {
    /// A client's or peer's packet; the answer goes to `reply`.
    Request {
        packet: Packet,
        reply: oneshot::Sender<Packet>,
    },
    /// Certificates pulled from `peer`'s log; `next` is where its log continues.
    Sync {
        peer: AccountId,
        certificates: Vec<LoggedCertificate>,
        next: u64,
        reply: oneshot::Sender<SyncOutcome>,
    },
    /// A snapshot for the control API.
    Status { reply: oneshot::Sender<Status> },
    /// The accounts whose next slot holds this validator's vote, for the control API.
    OpenSlots {
        limit: usize,
        reply: oneshot::Sender<Vec<AccountId>>,
    },
}

/// A handle for submitting work to the engine.
#[derive(Clone)]
pub struct EngineHandle {
    jobs: mpsc::Sender<Job>,
    /// Certificates applied, readable without a round trip.
    pub log_len: Arc<AtomicU64>,
    /// Cancelled when storage failed and the engine stopped for good.
    storage_failed: CancellationToken,
}

impl EngineHandle {
    /// Submits a packet; the receiver yields its answer. An engine that has stopped
    /// answers `Busy`.
    pub async fn submit(&self, packet: Packet) -> oneshot::Receiver<Packet> {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(Job::Request { reply, .. })) =
            self.jobs.send(Job::Request { packet, reply }).await
        {
            let _ = reply.send(Packet::error(ErrorCode::Busy, "validator is shutting down"));
        }
        answer
    }

    /// Submits a synced page and waits for the outcome.
    pub async fn sync(
        &self,
        peer: AccountId,
        certificates: Vec<LoggedCertificate>,
        next: u64,
    ) -> Option<SyncOutcome> {
        let (reply, outcome) = oneshot::channel();
        self.jobs
            .send(Job::Sync {
                peer,
                certificates,
                next,
                reply,
            })
            .await
            .ok()?;
        outcome.await.ok()
    }

    /// Asks for a status snapshot.
    pub async fn status(&self) -> Option<Status> {
        let (reply, status) = oneshot::channel();
        self.jobs.send(Job::Status { reply }).await.ok()?;
        status.await.ok()
    }

    /// The accounts (at most `limit`, in key order) whose next slot holds this validator's
    /// vote for an order not yet applied.
    pub async fn open_slots(&self, limit: usize) -> Option<Vec<AccountId>> {
        let (reply, slots) = oneshot::channel();
        self.jobs.send(Job::OpenSlots { limit, reply }).await.ok()?;
        slots.await.ok()
    }

    /// Resolves once a commit or a checkpoint failed: the engine has stopped for good and
    /// the node must stop too (crash-only; see the module documentation).
    pub async fn failed(&self) {
        self.storage_failed.cancelled().await;
    }

    /// Whether a commit or a checkpoint failed.
    pub fn has_failed(&self) -> bool {
        self.storage_failed.is_cancelled()
    }
}

/// Starts the engine thread. It stops when every handle is dropped. Fails only when the
/// operating system refuses a thread.
pub fn start(
    validator: Validator,
    store: Arc<dyn LedgerStore>,
    max_batch: usize,
    listen: String,
    notices: Option<mpsc::Sender<Notice>>,
) -> std::io::Result<(EngineHandle, std::thread::JoinHandle<()>)> {
    let (jobs, receiver) = mpsc::channel(max_batch * 4);
    let log_len = Arc::new(AtomicU64::new(validator.log_len()));
    let storage_failed = CancellationToken::new();
    let engine = Engine {
        decider: Decider::new(validator, store.clone(), listen),
        store,
        max_batch,
        log_len: log_len.clone(),
        storage_failed: storage_failed.clone(),
        notices,
    };
    let thread = std::thread::Builder::new()
        .name("tally-engine".into())
        .spawn(move || engine.run(receiver))?;
    Ok((
        EngineHandle {
            jobs,
            log_len,
            storage_failed,
        },
        thread,
    ))
}

struct Engine {
    decider: Decider,
    store: Arc<dyn LedgerStore>,
    max_batch: usize,
    log_len: Arc<AtomicU64>,
    /// Cancelled by the committer when a commit or a checkpoint failed.
    storage_failed: CancellationToken,
    /// Where notices go once their batch is durable.
    notices: Option<mpsc::Sender<Notice>>,
}

/// A decided batch on its way to the disk, with where its answers go once it is there.
struct Decided {
    batch: DecidedBatch,
    replies: Vec<Reply>,
}

/// Where one request's answer goes.
enum Reply {
    Packet(oneshot::Sender<Packet>),
    Sync(oneshot::Sender<SyncOutcome>),
    Status(oneshot::Sender<Status>),
    OpenSlots(oneshot::Sender<Vec<AccountId>>),
    /// Answered while the batch was decided.
    Done,
}

/// Work for the committer thread.
enum Commit {
    Batch(Box<Decided>),
    /// Answer once every batch sent before is committed.
    Flush(std::sync::mpsc::SyncSender<()>),
}

impl Engine {
    fn run(mut self, mut receiver: mpsc::Receiver<Job>) {
        // One batch commits while the next ones are decided; two more may wait (so that the
        // engine keeps working while the committer writes a checkpoint).
        let (commits, pending) = std::sync::mpsc::sync_channel::<Commit>(2);
        let committer = {
            let (store, log_len, failed, notices) = (
                self.store.clone(),
                self.log_len.clone(),
                self.storage_failed.clone(),
                self.notices.take(),
            );
            std::thread::Builder::new()
                .name("tally-commit".into())
                .spawn(move || run_committer(store.as_ref(), &pending, &log_len, &failed, notices))
        };
        let committer = match committer {
            Ok(committer) => committer,
            Err(error) => {
                // Nothing can be made durable: stop the node as after a failed commit.
                tracing::error!(%error, "cannot spawn the commit thread; engine stopped");
                self.storage_failed.cancel();
                return;
            }
        };
        while let Some(first) = receiver.blocking_recv() {
            if self.storage_failed.is_cancelled() {
                // Dropped unanswered: its connection says `Busy` while the node stops.
                break;
            }
            let mut batch = Vec::with_capacity(64);
            batch.push(first);
            while batch.len() < self.max_batch {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let decided = self.process(batch, &commits);
            // The memory state may now be ahead of the disk: never build on it. No
            // unrecorded vote was given (the committer refuses every batch after a failed
            // one, and this one is refused here), and a restart reloads the durable state.
            if self.storage_failed.is_cancelled() {
                answer(decided, false);
                break;
            }
            if let Err(std::sync::mpsc::SendError(unsent)) =
                commits.send(Commit::Batch(Box::new(decided)))
            {
                // The committer is gone, which only a panic does: as a failed commit.
                self.storage_failed.cancel();
                if let Commit::Batch(decided) = unsent {
                    answer(*decided, false);
                }
                break;
            }
        }
        if self.storage_failed.is_cancelled() {
            tracing::error!(
                "engine stopped after a storage failure; the node stops (restart it to reload the last durable state)"
            );
        }
        drop(commits);
        let _ = committer.join();
        tracing::debug!("engine stopped");
    }

    /// Waits until every batch handed to the committer is durable.
    fn flush(commits: &std::sync::mpsc::SyncSender<Commit>) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if commits.send(Commit::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Decides one batch ([`Decider::process`]) and sends its immediate answers; the
    /// committer writes it and releases the rest.
    fn process(
        &mut self,
        batch: Vec<Job>,
        commits: &std::sync::mpsc::SyncSender<Commit>,
    ) -> Decided {
        let mut requests = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for job in batch {
            let (request, reply) = match job {
                Job::Request { packet, reply } => (Request::Packet(packet), Reply::Packet(reply)),
                Job::Sync {
                    peer,
                    certificates,
                    next,
                    reply,
                } => (
                    Request::Sync {
                        peer,
                        certificates,
                        next,
                    },
                    Reply::Sync(reply),
                ),
                Job::Status { reply } => (Request::Status, Reply::Status(reply)),
                Job::OpenSlots { limit, reply } => {
                    (Request::OpenSlots { limit }, Reply::OpenSlots(reply))
                }
            };
            requests.push(request);
            replies.push(reply);
        }
        // A full ledger page is read from the disk: let it catch up with memory first.
        if requests.iter().any(Request::reads_the_disk) {
            Self::flush(commits);
        }
        let (batch, immediate) = self.decider.process(requests, unix_ms());
        for (answer, reply) in immediate.into_iter().zip(replies.iter_mut()) {
            match (answer, std::mem::replace(reply, Reply::Done)) {
                (Some(Immediate::Status(status)), Reply::Status(sender)) => {
                    let _ = sender.send(status);
                }
                (Some(Immediate::OpenSlots(slots)), Reply::OpenSlots(sender)) => {
                    let _ = sender.send(slots);
                }
                (_, unanswered) => *reply = unanswered,
            }
        }
        Decided { batch, replies }
    }
}

/// The committer thread: makes each decided batch durable, in order, then answers it.
fn run_committer(
    store: &dyn LedgerStore,
    pending: &std::sync::mpsc::Receiver<Commit>,
    log_len: &AtomicU64,
    failed: &CancellationToken,
    notices: Option<mpsc::Sender<Notice>>,
) {
    while let Ok(first) = pending.recv() {
        // Group commit: every batch already waiting goes into the same transaction (one
        // disk sync for all), up to `MAX_GROUP`; a flush waits for the group's commit.
        let mut group = Vec::with_capacity(MAX_GROUP);
        let mut flushes = Vec::new();
        match first {
            Commit::Batch(decided) => group.push(*decided),
            Commit::Flush(done) => flushes.push(done),
        }
        while group.len() < MAX_GROUP && flushes.is_empty() {
            match pending.try_recv() {
                Ok(Commit::Batch(decided)) => group.push(*decided),
                Ok(Commit::Flush(done)) => flushes.push(done),
                Err(_) => break,
            }
        }
        // Durable before anything is said; nothing after a failed batch is written, since
        // its decisions built on the failed one.
        let committed = if failed.is_cancelled() {
            false
        } else {
            commit_group(store, &mut group, log_len, failed)
        };
        for decided in group {
            if committed && let Some(queue) = &notices {
                for notice in &decided.batch.notices {
                    if queue.try_send(*notice).is_err() {
                        tracing::warn!(escrow = %notice.claim.escrow, "notice queue full; the claim's other voters deliver it");
                    }
                }
            }
            answer(decided, committed);
        }
        for done in flushes {
            let _ = done.send(());
        }
        // The batches' answers are out; now, between groups, bring the random-access
        // tables up to date if enough has accumulated. A checkpoint that fails has lost
        // nothing (the log and the vote journal still hold it all), but the disk is in
        // doubt: stop like after a failed commit, and let a restart re-apply the log.
        if committed && let Err(error) = store.checkpoint_if_due() {
            tracing::error!(%error, "checkpoint failed; engine stopped");
            failed.cancel();
        }
    }
}

/// Most decided batches one transaction commits: the committer takes what waits (the
/// channel holds two), so this only bounds a transaction's size.
const MAX_GROUP: usize = 8;

/// Commits `group`'s snapshots and cursors as one transaction; whether it committed.
fn commit_group(
    store: &dyn LedgerStore,
    group: &mut [Decided],
    log_len: &AtomicU64,
    failed: &CancellationToken,
) -> bool {
    let result = match group {
        [] => return true,
        [one] => store
            .commit_snapshot(&one.batch.snapshot, &one.batch.cursors)
            .map(|()| one.batch.snapshot.log_len),
        [first, rest @ ..] => {
            let mut snapshot = std::mem::take(&mut first.batch.snapshot);
            let mut cursors = std::mem::take(&mut first.batch.cursors);
            for decided in rest {
                snapshot.absorb(std::mem::take(&mut decided.batch.snapshot));
                cursors.append(&mut decided.batch.cursors);
            }
            store
                .commit_snapshot(&snapshot, &cursors)
                .map(|()| snapshot.log_len)
        }
    };
    match result {
        Ok(len) => {
            log_len.store(len, Ordering::Relaxed);
            true
        }
        Err(error) => {
            tracing::error!(%error, "commit failed; the batches are not acknowledged");
            failed.cancel();
            false
        }
    }
}

/// Releases a batch's answers once its commit is decided.
fn answer(decided: Decided, committed: bool) {
    let Decided { batch, replies } = decided;
    for (released, reply) in batch.release(committed).into_iter().zip(replies) {
        match (released, reply) {
            (Released::Packet(packet), Reply::Packet(reply)) => {
                let _ = reply.send(packet);
            }
            (Released::Synced(outcome), Reply::Sync(reply)) => {
                let _ = reply.send(outcome);
            }
            _ => {}
        }
    }
}

/// The machine's clock in milliseconds since the Unix epoch: the validator's clock, by
/// which escrow deadlines are judged (the contract's ε bounds how far it may be off).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
