//! What a validator answers, without threads, channels or clocks: a batch of requests in;
//! the state changes to make durable and the answers to release once they are, out.
//!
//! [`Decider::process`] checks every signature the batch carries (batched Ed25519, split
//! across cores), runs the state machine ([`Validator`]) over the requests in order, signs
//! the votes in parallel and returns a [`DecidedBatch`]: the snapshot to commit, and the
//! answers, which [`DecidedBatch::release`] hands out only once the caller says whether the
//! commit succeeded (after a failed one, nothing but `Internal`: what was decided may rest
//! on state that never reached the disk). The engine ([`crate::engine`]) drives it with a
//! thread, a committer and reply channels; anything else that can commit a snapshot (a
//! simulation) can drive it the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::prelude::*;
use tally_core::{
    AccountId, BatchVerifier, Certificate, OrderDigest, Signature, SignedOrder, Vote,
};
use tally_ledger::{LedgerError, LedgerStore, Snapshot, Validator};

use crate::notices::{Notice, notice_for};
use tally_proto::quorum::LoggedCertificate;
use tally_proto::{
    CertQuery, CertificatesPage, EndAck, ErrorCode, EscrowQuery, EscrowStanding, EscrowView,
    HeldOrder, HeldOrderRequest, Hello, LedgerEntry, LedgerRequest, LedgerView, Packet, VoteReply,
};

/// Below this many requests a batch's signatures are checked, and its votes signed, on the
/// engine's own thread: handing a few to the thread pool costs more in wake-ups (and in the
/// pool's spinning, on a machine that runs several validators) than the parallelism saves.
const PARALLEL_FROM: usize = 16;

/// Where a decider's signature verdicts come from instead of its own batched check
/// ([`Decider::process_judged_by`]): a deterministic simulation, which made every signature
/// it hands in and remembers each verdict, so thousands of runs do not check the same
/// votes again and again. A verdict must be exactly what Ed25519 verification says.
pub trait SignatureOracle {
    fn verify(&mut self, signer: &AccountId, signature: &Signature, message: &[u8]) -> bool;
}

/// Where the planned signature checks of one chunk of a batch go: the batched equation
/// (the node), or an oracle that judges each at once.
enum Checks<'a> {
    Batch(BatchVerifier),
    Oracle {
        oracle: &'a mut dyn SignatureOracle,
        verdicts: Vec<bool>,
    },
}

impl Checks<'_> {
    /// Queues one check; its index.
    fn push(&mut self, signer: &AccountId, signature: &Signature, message: &[u8]) -> usize {
        match self {
            Checks::Batch(verifier) => verifier.push(signer, signature, message),
            Checks::Oracle { oracle, verdicts } => {
                verdicts.push(oracle.verify(signer, signature, message));
                verdicts.len() - 1
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Checks::Batch(verifier) => verifier.len(),
            Checks::Oracle { verdicts, .. } => verdicts.len(),
        }
    }

    /// Every check's verdict, in the order queued.
    fn verdicts(self) -> Vec<bool> {
        match self {
            Checks::Batch(verifier) => verifier.verify(),
            Checks::Oracle { verdicts, .. } => verdicts,
        }
    }
}

/// One piece of work for a validator.
pub enum Request {
    /// A client's or peer's packet.
    Packet(Packet),
    /// Certificates pulled from `peer`'s log; `next` is where its log continues.
    Sync {
        peer: AccountId,
        certificates: Vec<LoggedCertificate>,
        next: u64,
    },
    /// A snapshot for the control API.
    Status,
    /// The accounts whose next slot holds this validator's vote, for the control API.
    OpenSlots { limit: usize },
}

impl Request {
    /// Whether it reads a full ledger page, which comes from the disk: the caller lets
    /// the disk catch up with memory before the batch holding it is decided.
    pub fn reads_the_disk(&self) -> bool {
        matches!(self, Request::Packet(Packet::ReqLedger(request)) if request.accounts.is_none())
    }
}

/// An answer given at once, while its batch is decided: the control API's reads of this
/// validator's own counters, which vouch for nothing durable.
pub enum Immediate {
    Status(Status),
    OpenSlots(Vec<AccountId>),
}

/// What a decided request answers once its batch's commit is decided.
// Each is moved once, straight into its reply channel: boxing the packet would add an
// allocation per answer on the hot path for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Released {
    Packet(Packet),
    Synced(SyncOutcome),
    /// Nothing more (an immediate answer, or a synced page whose commit failed).
    Nothing,
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

/// What the parallel check found for one request.
#[derive(Clone)]
enum Checked {
    /// Nothing to check (reads).
    Nothing,
    /// An order: its signature holds or not.
    Order(bool),
    /// A certificate: structure problem, or whether all its votes hold.
    Certificate(Result<bool, tally_core::CertificateError>),
}

/// What the sequential phase decided for one request.
enum Decision {
    Answer(Packet),
    Vote {
        digest: OrderDigest,
        intro: bool,
    },
    Synced {
        applied: usize,
        cursor: u64,
    },
    Read(Packet),
    /// Answered at once, while the batch was decided ([`Immediate`]).
    Immediate,
}

/// A decided batch: the changes to make durable, and the answers waiting for that.
pub struct DecidedBatch {
    /// What to commit.
    pub snapshot: Snapshot,
    /// Where each synced peer's log continues, committed with the snapshot.
    pub cursors: Vec<(AccountId, u64)>,
    /// Claims voted in this batch that a counterpart network must hear of, once the batch
    /// is durable ([`crate::notices`]).
    pub notices: Vec<Notice>,
    decisions: Vec<Decision>,
    votes: Vec<Option<Packet>>,
}

impl DecidedBatch {
    /// The answers, in request order, once the commit is decided: all of them if it
    /// succeeded; after a failed commit `Internal` for every packet (a read included: what
    /// it read may rest on state that never reached the disk) and nothing for synced pages.
    pub fn release(self, committed: bool) -> Vec<Released> {
        self.decisions
            .into_iter()
            .zip(self.votes)
            .map(|(decision, vote)| match decision {
                Decision::Immediate => Released::Nothing,
                Decision::Synced { applied, cursor } if committed => {
                    Released::Synced(SyncOutcome { applied, cursor })
                }
                Decision::Synced { .. } => Released::Nothing,
                _ if !committed => Released::Packet(Packet::error(
                    ErrorCode::Internal,
                    "storage failed; nothing was recorded",
                )),
                Decision::Read(packet) | Decision::Answer(packet) => Released::Packet(packet),
                Decision::Vote { .. } => Released::Packet(
                    vote.unwrap_or_else(|| Packet::error(ErrorCode::Internal, "vote missing")),
                ),
            })
            .collect()
    }
}

/// A validator's request handling: its state, its store (for reads of what is on disk)
/// and its counters.
pub struct Decider {
    validator: Validator,
    store: Arc<dyn LedgerStore>,
    /// The address this validator tells in `HELLO`.
    listen: String,
    batches: u64,
    requests: u64,
    /// Notices of the batch being decided.
    notices: Vec<Notice>,
}

impl Decider {
    /// A decider over `validator`, loaded from `store`.
    pub fn new(validator: Validator, store: Arc<dyn LedgerStore>, listen: String) -> Self {
        Decider {
            validator,
            store,
            listen,
            batches: 0,
            requests: 0,
            notices: Vec::new(),
        }
    }

    /// The state machine, for reads.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// Checks, decides and signs one batch at `now_ms` by this validator's clock
    /// (milliseconds since the Unix epoch: escrow deadlines are judged by it). The returned
    /// answers must wait for the commit of its snapshot; the immediate ones (one per
    /// request, `None` for most) may go now.
    pub fn process(
        &mut self,
        batch: Vec<Request>,
        now_ms: u64,
    ) -> (DecidedBatch, Vec<Option<Immediate>>) {
        self.validator.set_clock(now_ms);
        let checks = self.check_signatures(&batch);
        self.decide_batch(batch, checks)
    }

    /// As [`Self::process`], with every signature judged by `oracle` (one at a time, on
    /// this thread) instead of the batched check.
    pub fn process_judged_by(
        &mut self,
        batch: Vec<Request>,
        now_ms: u64,
        oracle: &mut dyn SignatureOracle,
    ) -> (DecidedBatch, Vec<Option<Immediate>>) {
        self.validator.set_clock(now_ms);
        let checks = Checks::Oracle {
            oracle,
            verdicts: Vec::new(),
        };
        let checks = plan_checks(&self.validator, &batch, checks);
        self.decide_batch(batch, checks)
    }

    fn decide_batch(
        &mut self,
        batch: Vec<Request>,
        checks: Vec<Checked>,
    ) -> (DecidedBatch, Vec<Option<Immediate>>) {
        self.batches += 1;
        self.requests += batch.len() as u64;
        let mut decisions = Vec::with_capacity(batch.len());
        let mut immediate = Vec::with_capacity(batch.len());
        let mut cursors = Vec::new();
        for (request, checked) in batch.into_iter().zip(checks) {
            match request {
                Request::Packet(packet) => {
                    decisions.push(self.decide(packet, checked));
                    immediate.push(None);
                }
                Request::Sync {
                    peer,
                    certificates,
                    next,
                } => {
                    let (applied, cursor) = self.apply_synced(&peer, &certificates, next, &checked);
                    cursors.push((peer, cursor));
                    decisions.push(Decision::Synced { applied, cursor });
                    immediate.push(None);
                }
                Request::Status => {
                    decisions.push(Decision::Immediate);
                    immediate.push(Some(Immediate::Status(self.status())));
                }
                Request::OpenSlots { limit } => {
                    decisions.push(Decision::Immediate);
                    immediate.push(Some(Immediate::OpenSlots(self.validator.open_slots(limit))));
                }
            }
        }
        // Sign this batch's votes (in parallel when it is large); signing is deterministic.
        let validator = &self.validator;
        let sign = |decision: &Decision| match decision {
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
        };
        let votes: Vec<Option<Packet>> = if decisions.len() < PARALLEL_FROM {
            decisions.iter().map(sign).collect()
        } else {
            decisions.par_iter().map(sign).collect()
        };
        let batch = DecidedBatch {
            snapshot: self.validator.take_snapshot(),
            cursors,
            notices: std::mem::take(&mut self.notices),
            decisions,
            votes,
        };
        (batch, immediate)
    }

    /// Checks every signature the batch carries: one batch equation per core-sized chunk,
    /// or one on this thread for a small batch.
    fn check_signatures(&self, batch: &[Request]) -> Vec<Checked> {
        let validator = &self.validator;
        if batch.len() < PARALLEL_FROM {
            let verifier = BatchVerifier::with_capacity(batch.len() * 3);
            return plan_checks(validator, batch, Checks::Batch(verifier))
                .into_iter()
                .collect();
        }
        let chunk = batch
            .len()
            .div_ceil(rayon::current_num_threads().max(1))
            .max(1);
        batch
            .par_chunks(chunk)
            .flat_map_iter(|jobs| {
                let verifier = BatchVerifier::with_capacity(jobs.len() * 3);
                plan_checks(validator, jobs, Checks::Batch(verifier))
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
                    Ok(digest) => {
                        self.notices
                            .extend(notice_for(&self.validator, &order.order));
                        Decision::Vote { digest, intro }
                    }
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
            Packet::ReqEscrow(query) => Decision::Read(self.escrow(&query)),
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

    fn escrow(&self, query: &EscrowQuery) -> Packet {
        let validator = &self.validator;
        let (id, hash_lock) = match query {
            EscrowQuery::Id(id) => (Some(*id), validator.escrow(id).map(|e| e.lock.hash_lock)),
            EscrowQuery::HashLock(hash) => (validator.escrow_by_hash_lock(hash), Some(*hash)),
        };
        let escrow = id.and_then(|id| validator.escrow(&id));
        Packet::RespEscrow(Box::new(EscrowView {
            escrow: escrow.and(id),
            lock: escrow.map(|e| e.lock),
            standing: escrow.map(|e| EscrowStanding::from(e.settlement)),
            secret: hash_lock.and_then(|hash| validator.secret_for(&hash)),
            held: id.and_then(|id| validator.held_settlement(&id).cloned()),
            clock_ms: validator.clock(),
        }))
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

/// Checks every signature `jobs` carry with `checks`; what each job's checks found.
fn plan_checks(validator: &Validator, jobs: &[Request], mut checks: Checks<'_>) -> Vec<Checked> {
    let network = *validator.network();
    let me = validator.id();
    // Per job: which check indices decide it.
    let mut plan: Vec<(Checked, std::ops::Range<usize>)> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let entry = match job {
            Request::Packet(Packet::ReqPay(order) | Packet::ReqIntroKey(order)) => {
                match order.order.signer() {
                    Some(signer) => {
                        let i = checks.push(
                            &signer,
                            &order.signature,
                            &order.order.signing_bytes(&network),
                        );
                        (Checked::Order(true), i..i + 1)
                    }
                    // An escrow's claim or refund: no key signs it, and it must say so.
                    None => (Checked::Order(order.verify(&network)), 0..0),
                }
            }
            Request::Packet(Packet::ReqPayEnd(cert) | Packet::ReqIntroKeyEnd(cert)) => {
                plan_certificate(validator, cert, &mut checks, &me)
            }
            Request::Sync { certificates, .. } => {
                // Sync pages are checked as one unit per certificate below.
                let start = checks.len();
                for logged in certificates {
                    let _ = plan_certificate(validator, &logged.certificate, &mut checks, &me);
                }
                (Checked::Nothing, start..checks.len())
            }
            _ => (Checked::Nothing, 0..0),
        };
        plan.push(entry);
    }
    let results = checks.verdicts();
    plan.into_iter()
        .map(|(checked, range)| {
            let all_ok = results
                .get(range.clone())
                .is_some_and(|r| r.iter().all(|ok| *ok));
            match checked {
                Checked::Order(ok) if range.is_empty() => Checked::Order(ok),
                Checked::Order(_) => Checked::Order(all_ok),
                Checked::Certificate(Ok(_)) => Checked::Certificate(Ok(all_ok || range.is_empty())),
                Checked::Nothing if !range.is_empty() => Checked::Certificate(Ok(all_ok)),
                other => other,
            }
        })
        .collect()
}

/// Plans the checks of one certificate: structure now, vote signatures into `verifier`,
/// skipping our own vote when we know we gave it and everything when it is applied.
fn plan_certificate(
    validator: &Validator,
    cert: &Certificate,
    verifier: &mut Checks<'_>,
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

/// A `REQ_CERTS` page read from the store (no engine needed: the log is durable).
pub fn certificates_page(store: &dyn LedgerStore, query: CertQuery) -> Packet {
    let clamp = |limit: u32| limit.clamp(1, CertQuery::MAX_LIMIT) as usize;
    let result = match query {
        CertQuery::Log { since, limit } => store.certificates_since(since, clamp(limit)),
        CertQuery::Sent {
            account,
            from,
            limit,
        } => store.sent(&account, from, clamp(limit)),
        CertQuery::Touching {
            account,
            since,
            limit,
        } => store.touching(&account, since, clamp(limit)),
    };
    match result {
        Ok((certificates, next)) => Packet::RespCerts(CertificatesPage {
            certificates: certificates
                .into_iter()
                .map(|(index, certificate)| LoggedCertificate { index, certificate })
                .collect(),
            next,
        }),
        Err(error) => Packet::error(ErrorCode::Internal, error.to_string()),
    }
}

/// The error code a refusal by the ledger is answered with.
pub fn refusal_code(error: &LedgerError) -> ErrorCode {
    match error {
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
        LedgerError::BadEscrow(_)
        | LedgerError::NoEscrows
        | LedgerError::UnknownCounterpart(_)
        | LedgerError::DeadlineTooFar { .. }
        | LedgerError::HashLockReused(_) => ErrorCode::BadEscrow,
        LedgerError::UnknownEscrow(_) | LedgerError::EscrowSettled(_) => ErrorCode::EscrowClosed,
        // The escrow's lock certificate must be applied first, as an account's earlier
        // orders must: the sender hands it over and sends this one again.
        LedgerError::MissingEscrow(_) => ErrorCode::MissingPredecessor,
        LedgerError::WrongSecret => ErrorCode::WrongSecret,
        LedgerError::DeadlinePassed { .. } | LedgerError::RefundTooEarly { .. } => {
            ErrorCode::Deadline
        }
    }
}

fn ledger_error(
    error: &LedgerError,
    order: &SignedOrder,
    network: &tally_core::NetworkId,
) -> Packet {
    let code = refusal_code(error);
    tracing::debug!(order = %order.order.digest(network), %error, "refused");
    Packet::error(code, error.to_string())
}
