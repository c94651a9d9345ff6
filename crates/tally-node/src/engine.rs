//! The batching engine: one thread owns the validator state and the database writes.
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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use tally_core::{AccountId, BatchVerifier, Certificate, OrderDigest, SignedOrder, Vote};
use tally_ledger::{LedgerError, LedgerStore, Snapshot, Validator};
use tally_proto::quorum::LoggedCertificate;
use tally_proto::{
    EndAck, ErrorCode, HeldOrder, HeldOrderRequest, Hello, LedgerEntry, LedgerRequest, LedgerView,
    Packet, VoteReply,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

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

/// What became of a page of synced certificates.
#[derive(Debug, Clone, Copy)]
pub struct SyncOutcome {
    /// Certificates new to this validator.
    pub applied: usize,
    /// Where to ask the peer next.
    pub cursor: u64,
}

/// The control API's view of the validator.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub network: String,
    pub validator: AccountId,
    pub accounts: usize,
    pub certificates: u64,
    pub supply: tally_core::Amount,
    pub batches: u64,
    pub requests: u64,
    /// Store checkpoints since start (see `tally_ledger::LedgerStore::checkpoint`).
    pub checkpoints: u64,
    /// Time those checkpoints took, in microseconds.
    pub checkpoint_micros: u64,
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
) -> std::io::Result<(EngineHandle, std::thread::JoinHandle<()>)> {
    let (jobs, receiver) = mpsc::channel(max_batch * 4);
    let log_len = Arc::new(AtomicU64::new(validator.log_len()));
    let storage_failed = CancellationToken::new();
    let engine = Engine {
        validator,
        store,
        max_batch,
        listen,
        log_len: log_len.clone(),
        storage_failed: storage_failed.clone(),
        batches: 0,
        requests: 0,
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
    validator: Validator,
    store: Arc<dyn LedgerStore>,
    max_batch: usize,
    listen: String,
    log_len: Arc<AtomicU64>,
    /// Cancelled by the committer when a commit or a checkpoint failed.
    storage_failed: CancellationToken,
    batches: u64,
    requests: u64,
}

/// A decided batch on its way to the disk; its answers wait for its commit.
struct Decided {
    snapshot: Snapshot,
    cursors: Vec<(AccountId, u64)>,
    decisions: Vec<Decision>,
    answers: Vec<Option<Packet>>,
    replies: Vec<Option<oneshot::Sender<Packet>>>,
}

/// Work for the committer thread.
enum Commit {
    Batch(Decided),
    /// Answer once every batch sent before is committed.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// What the parallel check found for one job.
#[derive(Clone)]
enum Checked {
    /// Nothing to check (reads).
    Nothing,
    /// An order: its signature holds or not.
    Order(bool),
    /// A certificate: structure problem, or whether all its votes hold.
    Certificate(Result<bool, tally_core::CertificateError>),
}

/// What the sequential phase decided for one job.
enum Decision {
    Answer(Packet),
    Vote {
        digest: OrderDigest,
        intro: bool,
    },
    Synced {
        applied: usize,
        cursor: u64,
        reply: oneshot::Sender<SyncOutcome>,
    },
    Read(Packet),
}

impl Engine {
    fn run(mut self, mut receiver: mpsc::Receiver<Job>) {
        // One batch commits while the next ones are decided; two more may wait (so that the
        // engine keeps working while the committer writes a checkpoint).
        let (commits, pending) = std::sync::mpsc::sync_channel::<Commit>(2);
        let committer = {
            let (store, log_len, failed) = (
                self.store.clone(),
                self.log_len.clone(),
                self.storage_failed.clone(),
            );
            std::thread::Builder::new()
                .name("tally-commit".into())
                .spawn(move || run_committer(store.as_ref(), &pending, &log_len, &failed))
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
            if let Err(std::sync::mpsc::SendError(unsent)) = commits.send(Commit::Batch(decided)) {
                // The committer is gone, which only a panic does: as a failed commit.
                self.storage_failed.cancel();
                if let Commit::Batch(decided) = unsent {
                    answer(decided, false);
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

    /// Checks, decides and signs one batch; the committer writes it and answers.
    fn process(
        &mut self,
        batch: Vec<Job>,
        commits: &std::sync::mpsc::SyncSender<Commit>,
    ) -> Decided {
        self.batches += 1;
        // A full ledger page is read from the disk: let it catch up with memory first.
        if batch.iter().any(|job| {
            matches!(job, Job::Request { packet: Packet::ReqLedger(request), .. } if request.accounts.is_none())
        }) {
            Self::flush(commits);
        }
        self.requests += batch.len() as u64;
        let checks = self.check_signatures(&batch);
        let mut decisions = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut cursors = Vec::new();
        for (job, checked) in batch.into_iter().zip(checks) {
            match job {
                Job::Request { packet, reply } => {
                    decisions.push(self.decide(packet, checked));
                    replies.push(Some(reply));
                }
                Job::Sync {
                    peer,
                    certificates,
                    next,
                    reply,
                } => {
                    let (applied, cursor) = self.apply_synced(&peer, &certificates, next, &checked);
                    cursors.push((peer, cursor));
                    decisions.push(Decision::Synced {
                        applied,
                        cursor,
                        reply,
                    });
                    replies.push(None);
                }
                Job::Status { reply } => {
                    let _ = reply.send(self.status());
                    decisions.push(Decision::Answer(Packet::error(ErrorCode::Internal, "")));
                    replies.push(None);
                }
                Job::OpenSlots { limit, reply } => {
                    let _ = reply.send(self.validator.open_slots(limit));
                    decisions.push(Decision::Answer(Packet::error(ErrorCode::Internal, "")));
                    replies.push(None);
                }
            }
        }
        // Sign this batch's votes in parallel; signing is deterministic.
        let validator = &self.validator;
        let answers: Vec<Option<Packet>> = decisions
            .par_iter()
            .map(|decision| match decision {
                Decision::Vote { digest, intro } => {
                    let vote = validator.vote(digest);
                    let reply = VoteReply {
                        checksum: *digest,
                        votes: vec![vote],
                    };
                    Some(if *intro {
                        Packet::RespIntroKey(reply)
                    } else {
                        Packet::RespPay(reply)
                    })
                }
                _ => None,
            })
            .collect();
        Decided {
            snapshot: self.validator.take_snapshot(),
            cursors,
            decisions,
            answers,
            replies,
        }
    }

    /// Checks every signature the batch carries: one batch equation per core-sized chunk.
    fn check_signatures(&self, batch: &[Job]) -> Vec<Checked> {
        let validator = &self.validator;
        let network = *validator.network();
        let me = validator.id();
        let chunk = batch
            .len()
            .div_ceil(rayon::current_num_threads().max(1))
            .max(1);
        batch
            .par_chunks(chunk)
            .flat_map_iter(|jobs| {
                let mut verifier = BatchVerifier::with_capacity(jobs.len() * 3);
                // Per job: which verifier indices decide it.
                let mut plan: Vec<(Checked, std::ops::Range<usize>)> =
                    Vec::with_capacity(jobs.len());
                for job in jobs {
                    let entry = match job {
                        Job::Request {
                            packet: Packet::ReqPay(order) | Packet::ReqIntroKey(order),
                            ..
                        } => {
                            let i = order.queue_check(&mut verifier, &network);
                            (Checked::Order(true), i..i + 1)
                        }
                        Job::Request {
                            packet: Packet::ReqPayEnd(cert) | Packet::ReqIntroKeyEnd(cert),
                            ..
                        } => plan_certificate(validator, cert, &mut verifier, &me),
                        Job::Sync { certificates, .. } => {
                            // Sync pages are checked as one unit per certificate below.
                            let start = verifier.len();
                            for logged in certificates {
                                let _ = plan_certificate(
                                    validator,
                                    &logged.certificate,
                                    &mut verifier,
                                    &me,
                                );
                            }
                            (Checked::Nothing, start..verifier.len())
                        }
                        _ => (Checked::Nothing, 0..0),
                    };
                    plan.push(entry);
                }
                let results = verifier.verify();
                plan.into_iter()
                    .map(|(checked, range)| {
                        let all_ok = results
                            .get(range.clone())
                            .is_some_and(|r| r.iter().all(|ok| *ok));
                        match checked {
                            Checked::Order(_) => Checked::Order(all_ok),
                            Checked::Certificate(Ok(_)) => {
                                Checked::Certificate(Ok(all_ok || range.is_empty()))
                            }
                            Checked::Nothing if !range.is_empty() => {
                                Checked::Certificate(Ok(all_ok))
                            }
                            other => other,
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn decide(&mut self, packet: Packet, checked: Checked) -> Decision {
        let network = *self.validator.network();
        match packet {
            Packet::ReqPay(order) | Packet::ReqIntroKey(order) => {
                let intro = matches!(order.order, tally_core::Order::IntroKey(_));
                let signature_ok = matches!(checked, Checked::Order(true));
                match self.validator.decide_order(&order, signature_ok) {
                    Ok(digest) => Decision::Vote { digest, intro },
                    Err(error) => Decision::Answer(ledger_error(&error, &order, &network)),
                }
            }
            Packet::ReqPayEnd(cert) | Packet::ReqIntroKeyEnd(cert) => {
                let intro = matches!(cert.order, tally_core::Order::IntroKey(_));
                Decision::Answer(self.apply_certificate(&cert, checked, intro))
            }
            Packet::Hello(hello) => Decision::Read(self.hello(&hello)),
            Packet::ReqLedger(request) => Decision::Read(self.ledger(&request)),
            Packet::ReqHeldOrder(request) => Decision::Read(self.held_order(&request)),
            other => Decision::Answer(Packet::error(
                ErrorCode::Malformed,
                format!("{} is not a request a validator answers", other.name()),
            )),
        }
    }

    fn apply_certificate(&mut self, cert: &Certificate, checked: Checked, intro: bool) -> Packet {
        let votes_ok = match checked {
            Checked::Certificate(Ok(ok)) => ok,
            Checked::Certificate(Err(error)) => {
                return Packet::error(ErrorCode::BadCertificate, error.to_string());
            }
            Checked::Nothing | Checked::Order(_) => false,
        };
        match self.validator.handle_certificate(cert, votes_ok) {
            Ok(applied) => {
                let ack = EndAck {
                    checksum: cert.checksum,
                    new: applied.new,
                    validator: self.validator.id(),
                };
                if intro {
                    Packet::RespIntroKeyEnd(ack)
                } else {
                    Packet::RespPayEnd(ack)
                }
            }
            Err(error) => ledger_error(&error, &cert.signed_order(), self.validator.network()),
        }
    }

    fn apply_synced(
        &mut self,
        peer: &AccountId,
        certificates: &[LoggedCertificate],
        next: u64,
        checked: &Checked,
    ) -> (usize, u64) {
        // The page was checked as a whole; on failure check each certificate alone so one
        // bad certificate from a faulty peer does not block the good ones.
        let page_ok = matches!(checked, Checked::Certificate(Ok(true)) | Checked::Nothing);
        let mut applied = 0;
        let mut cursor = certificates.first().map_or(next, |c| c.index);
        for logged in certificates {
            let cert = &logged.certificate;
            let votes_ok = if page_ok {
                cert.check_structure(self.validator.committee(), self.validator.network())
                    .is_ok()
            } else {
                cert.verify(self.validator.committee(), self.validator.network())
                    .is_ok()
            };
            match self.validator.handle_certificate(cert, votes_ok) {
                Ok(result) => {
                    applied += usize::from(result.new);
                    cursor = logged.index + 1;
                }
                Err(LedgerError::MissingPredecessor { .. }) => {
                    tracing::warn!(peer = %peer.short(), index = logged.index, "peer log out of order; will retry");
                    return (applied, cursor);
                }
                Err(error) => {
                    tracing::warn!(peer = %peer.short(), index = logged.index, %error, "skipping a bad certificate from a peer");
                    cursor = logged.index + 1;
                }
            }
        }
        (
            applied,
            cursor.max(if certificates.is_empty() {
                next
            } else {
                cursor
            }),
        )
    }

    fn hello(&self, hello: &Hello) -> Packet {
        if hello.network != *self.validator.network() {
            return Packet::error(
                ErrorCode::WrongNetwork,
                format!(
                    "this validator serves network {}, not {}",
                    self.validator.network(),
                    hello.network
                ),
            );
        }
        Packet::Hello(Hello {
            network: *self.validator.network(),
            validator: Some(self.validator.id()),
            address: Some(self.listen.clone()),
            certificates: Some(self.validator.log_len()),
        })
    }

    fn held_order(&self, request: &HeldOrderRequest) -> Packet {
        let account = request.account;
        Packet::RespHeldOrder(HeldOrder {
            account,
            next_sequence: self.validator.account(&account).next_sequence,
            locked: self.validator.held_vote(&account),
            order: self.validator.held_order(&account).cloned(),
        })
    }

    fn ledger(&self, request: &LedgerRequest) -> Packet {
        let entry = |account: &AccountId, state: tally_ledger::AccountState| LedgerEntry {
            balance: state.balance,
            next_sequence: state.next_sequence,
            introduced: state.introduced,
            locked: self.validator.held_vote(account),
        };
        let mut ledger = BTreeMap::new();
        if let Some(accounts) = &request.accounts {
            if accounts.len() > LedgerRequest::MAX_ACCOUNTS {
                return Packet::error(
                    ErrorCode::Malformed,
                    format!(
                        "at most {} accounts per REQ_LEDGER",
                        LedgerRequest::MAX_ACCOUNTS
                    ),
                );
            }
            for account in accounts {
                ledger.insert(*account, entry(account, self.validator.account(account)));
            }
        } else {
            let limit = request
                .limit
                .map_or(LedgerRequest::MAX_ACCOUNTS, |l| l as usize)
                .min(LedgerRequest::MAX_ACCOUNTS);
            match self.store.accounts_page(request.after.as_ref(), limit) {
                Ok(page) => {
                    for (account, state) in page {
                        ledger.insert(account, entry(&account, state));
                    }
                }
                Err(error) => return Packet::error(ErrorCode::Internal, error.to_string()),
            }
        }
        Packet::RespLedger(LedgerView::sign(
            self.validator.key(),
            self.validator.network(),
            self.validator.log_len(),
            self.validator.supply(),
            ledger,
        ))
    }

    fn status(&self) -> Status {
        let (checkpoints, checkpoint_micros) = self.store.checkpoints();
        Status {
            network: self.validator.network().to_string(),
            validator: self.validator.id(),
            accounts: self.validator.account_count(),
            certificates: self.validator.log_len(),
            supply: self.validator.supply(),
            batches: self.batches,
            requests: self.requests,
            checkpoints,
            checkpoint_micros,
        }
    }
}

/// The committer thread: makes each decided batch durable, in order, then answers it.
fn run_committer(
    store: &dyn LedgerStore,
    pending: &std::sync::mpsc::Receiver<Commit>,
    log_len: &AtomicU64,
    failed: &CancellationToken,
) {
    for work in pending {
        let decided = match work {
            Commit::Batch(decided) => decided,
            Commit::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        // Durable before anything is said; nothing after a failed batch is written, since
        // its decisions built on the failed one.
        let committed = if failed.is_cancelled() {
            false
        } else {
            match store.commit_snapshot(&decided.snapshot, &decided.cursors) {
                Ok(()) => {
                    log_len.store(decided.snapshot.log_len, Ordering::Relaxed);
                    true
                }
                Err(error) => {
                    tracing::error!(%error, "commit failed; the batch is not acknowledged");
                    failed.cancel();
                    false
                }
            }
        };
        answer(decided, committed);
        // The batch's answers are out; now, between batches, bring the random-access
        // tables up to date if enough has accumulated. A checkpoint that fails has lost
        // nothing (the log and the vote journal still hold it all), but the disk is in
        // doubt: stop like after a failed commit, and let a restart re-apply the log.
        if committed && let Err(error) = store.checkpoint_if_due() {
            tracing::error!(%error, "checkpoint failed; engine stopped");
            failed.cancel();
        }
    }
}

/// Releases a batch's answers once its commit is decided.
fn answer(decided: Decided, committed: bool) {
    let Decided {
        decisions,
        answers,
        replies,
        ..
    } = decided;
    for ((decision, answer), reply) in decisions.into_iter().zip(answers).zip(replies) {
        let packet = match decision {
            Decision::Synced {
                applied,
                cursor,
                reply,
                ..
            } => {
                if committed {
                    let _ = reply.send(SyncOutcome { applied, cursor });
                }
                continue;
            }
            // A failed batch says nothing, not even a read: what it read may rest on state
            // that never reached the disk.
            _ if !committed => {
                Packet::error(ErrorCode::Internal, "storage failed; nothing was recorded")
            }
            Decision::Read(packet) => packet,
            Decision::Answer(packet) => packet,
            Decision::Vote { .. } => match answer {
                Some(packet) => packet,
                None => Packet::error(ErrorCode::Internal, "vote missing"),
            },
        };
        if let Some(reply) = reply {
            let _ = reply.send(packet);
        }
    }
}

/// Plans the checks of one certificate: structure now, vote signatures into `verifier`,
/// skipping our own vote when we know we gave it and everything when it is applied.
fn plan_certificate(
    validator: &Validator,
    cert: &Certificate,
    verifier: &mut BatchVerifier,
    me: &AccountId,
) -> (Checked, std::ops::Range<usize>) {
    // A certificate of an order already applied is checked all the same: answering a
    // replay with a forged vote "already known" would vouch for a bad certificate.
    let digest = match cert.check_structure(validator.committee(), validator.network()) {
        Ok(digest) => digest,
        Err(error) => return (Checked::Certificate(Err(error)), 0..0),
    };
    let mine = validator.has_voted_for(&cert.order, &digest);
    let message = Vote::signing_bytes(validator.network(), &digest);
    let start = verifier.len();
    for vote in &cert.votes {
        if mine && vote.validator == *me {
            continue;
        }
        verifier.push(&vote.validator, &vote.signature, &message);
    }
    (Checked::Certificate(Ok(true)), start..verifier.len())
}

fn ledger_error(
    error: &LedgerError,
    order: &SignedOrder,
    network: &tally_core::NetworkId,
) -> Packet {
    let code = match error {
        LedgerError::BadSignature => ErrorCode::BadSignature,
        LedgerError::BadVote => ErrorCode::BadCertificate,
        LedgerError::Sequence { .. } => ErrorCode::Sequence,
        LedgerError::MissingPredecessor { .. } => ErrorCode::MissingPredecessor,
        LedgerError::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
        LedgerError::Conflict { .. } => ErrorCode::Conflict,
        LedgerError::AlreadyIntroduced(_) => ErrorCode::AlreadyIntroduced,
        LedgerError::BadProofOfWork { .. } => ErrorCode::BadProofOfWork,
        LedgerError::ZeroAmount
        | LedgerError::SelfTransfer
        | LedgerError::Overflow
        | LedgerError::BadSplit(_) => ErrorCode::BadAmount,
    };
    tracing::debug!(order = %order.order.digest(network), %error, "refused");
    Packet::error(code, error.to_string())
}
