//! The registration pipeline: connection tasks hand checked registrations to the verifier
//! thread, which checks the signatures of everything queued as one batch, split across the
//! cores (one batch equation per core); registrations with a key left to store go on to the
//! single writer thread, which applies a batch to the registry, makes it durable with one
//! commit and only then answers. Batching both steps is what makes tens of thousands of
//! signed registrations per second possible on two cores: one batch equation instead of one
//! check per signature, one fsync instead of one per registration.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tally_core::BatchVerifier;
use tokio::sync::{mpsc, oneshot};

use tally_proto::tracker::Refusal;

use crate::check::CheckedRegistration;
use crate::clock::Clock;
use crate::registry::{Entry, Registry, ip_bytes};
use crate::store::Store;

/// What to do with a checked registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobKind {
    /// Verify the signatures and store (REG, REGUP).
    Register,
    /// Verify the signatures only (INITIALIZE).
    VerifyOnly,
    /// Store what an earlier `VerifyOnly` verified (ACKNOWLEDGE_LIST).
    CommitVerified,
}

/// One registration travelling through the pipeline; the answer is the registration with
/// each key's refusal, if any, filled in.
pub(crate) struct Job {
    pub reg: CheckedRegistration,
    pub kind: JobKind,
    pub reply: oneshot::Sender<CheckedRegistration>,
}

pub(crate) struct WriterSettings {
    pub max_batch: usize,
    pub ttl_ms: u64,
    pub sweep_interval: Duration,
    /// What `seen` and expiry count from.
    pub clock: Clock,
}

/// Fewest signatures worth handing to another thread: below this, a batch equation's
/// fixed cost and the hand-off outweigh the time saved.
const MIN_CHUNK: usize = 16;

/// Most signatures one thread checks per batch. Above a few hundred a batch equation gets
/// little cheaper per signature, and a smaller batch lets the writer commit (and clients
/// send their next requests) while the next batch is checked, instead of every stage
/// waiting for one huge batch in turn.
const MAX_CHUNK: usize = 128;

/// Verifier thread: takes everything queued (up to `max_batch` signatures, and at most
/// `MAX_CHUNK` per thread) as one batch, checks its signatures split across `pool`'s
/// threads and this one (one batch equation per chunk), then hands the batch to the writer. Taking everything queued keeps batches large
/// under load (a batch equation costs less per signature the larger it is); splitting
/// keeps a small batch's latency low when the other cores are free.
pub(crate) fn run_verifier(
    mut jobs: mpsc::Receiver<Job>,
    writer: std_mpsc::SyncSender<Job>,
    max_batch: usize,
    pool: Option<rayon::ThreadPool>,
) {
    let threads = 1 + pool
        .as_ref()
        .map_or(0, rayon::ThreadPool::current_num_threads);
    let max_batch = max_batch.min(threads * MAX_CHUNK).max(1);
    loop {
        let Some(first) = jobs.blocking_recv() else {
            return;
        };
        let mut signatures = first.reg.keys.len();
        let mut batch: Vec<Job> = vec![first];
        while signatures < max_batch {
            match jobs.try_recv() {
                Ok(job) => {
                    signatures += job.reg.keys.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let mut slots = Vec::with_capacity(signatures);
        for (j, job) in batch.iter().enumerate() {
            if job.kind == JobKind::CommitVerified {
                continue;
            }
            for (k, key) in job.reg.keys.iter().enumerate() {
                if key.refused.is_none() {
                    slots.push((j, k));
                }
            }
        }
        let chunks = threads.min(slots.len() / MIN_CHUNK).max(1);
        let chunk_len = slots.len().div_ceil(chunks).max(1);
        let verify_chunk = |chunk: &[(usize, usize)]| -> Vec<bool> {
            let mut verifier = BatchVerifier::with_capacity(chunk.len());
            for &(j, k) in chunk {
                let key = &batch[j].reg.keys[k];
                verifier.push(&key.account, &key.signature, key.signed.as_bytes());
            }
            verifier.verify()
        };
        let results: Vec<bool> = match &pool {
            Some(pool) if chunks > 1 => {
                let parts: Vec<&[(usize, usize)]> = slots.chunks(chunk_len).collect();
                let mut outs: Vec<Vec<bool>> = vec![Vec::new(); parts.len()];
                pool.in_place_scope(|scope| {
                    let (mine, theirs) = outs.split_at_mut(1);
                    for (out, part) in theirs.iter_mut().zip(&parts[1..]) {
                        let verify_chunk = &verify_chunk;
                        scope.spawn(move |_| *out = verify_chunk(part));
                    }
                    mine[0] = verify_chunk(parts[0]);
                });
                outs.concat()
            }
            _ => verify_chunk(&slots),
        };
        for ((j, k), ok) in slots.into_iter().zip(results) {
            if !ok {
                batch[j].reg.keys[k].refused = Some(Refusal::BadSignature);
            }
        }
        for job in batch {
            if job.kind == JobKind::VerifyOnly || !job.reg.any_pending() {
                // The asker may have gone away; nothing to do then.
                let _ = job.reply.send(job.reg);
            } else if let Err(std_mpsc::SendError(job)) = writer.send(job) {
                let mut reg = job.reg;
                refuse_pending(&mut reg, &Refusal::ShuttingDown);
                let _ = job.reply.send(reg);
            }
        }
    }
}

fn refuse_pending(reg: &mut CheckedRegistration, why: &Refusal) {
    for key in &mut reg.keys {
        if key.refused.is_none() {
            key.refused = Some(why.clone());
        }
    }
}

/// Writer thread: decides each batch against the registry, commits it durably, and only
/// then shows it in the registry and answers; sweeps expired entries every
/// `sweep_interval`.
///
/// The registry never runs ahead of the store: a batch is tried on the registry (its
/// limits and replay guard decide each key, earlier keys of the batch counting) and taken
/// back out at once, under one write lock, so no reader sees it before its commit. After
/// the commit it is put in for good; this thread is the registry's only writer, so nothing
/// changed in between. A failed commit refuses every key of the batch (`storage error`)
/// and leaves the registry and the store as they were.
pub(crate) fn run_writer(
    jobs: std_mpsc::Receiver<Job>,
    mut store: Store,
    registry: Arc<RwLock<Registry>>,
    settings: WriterSettings,
) {
    let mut next_sweep = Instant::now() + settings.sweep_interval;
    loop {
        let wait = next_sweep.saturating_duration_since(Instant::now());
        let mut batch = Vec::new();
        match jobs.recv_timeout(wait) {
            Ok(job) => batch.push(job),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        }
        while batch.len() < settings.max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let now = settings.clock.now_ms();
        let expire_before = if Instant::now() >= next_sweep {
            next_sweep = Instant::now() + settings.sweep_interval;
            let removed = registry.write().sweep(now, settings.ttl_ms);
            if !removed.is_empty() {
                tracing::info!(expired = removed.len(), "swept expired entries");
            }
            now.checked_sub(settings.ttl_ms)
        } else {
            None
        };
        if batch.is_empty() && expire_before.is_none() {
            continue;
        }
        let mut puts = Vec::with_capacity(batch.len());
        {
            let mut undos = Vec::with_capacity(batch.len());
            let mut reg = registry.write();
            for job in &mut batch {
                let network = job.reg.network;
                let ip = ip_bytes(job.reg.address.ip());
                let port = job.reg.address.port();
                let source = ip_bytes(job.reg.source);
                let timestamp = job.reg.timestamp;
                for key in &mut job.reg.keys {
                    if key.refused.is_some() {
                        continue;
                    }
                    let entry = Entry {
                        account: key.account,
                        ip,
                        source,
                        proof_of_work: key.proof_of_work,
                        timestamp,
                        seen: now,
                        port,
                    };
                    match reg.apply(&network, entry) {
                        Ok(undo) => {
                            undos.push(undo);
                            puts.push((network, entry));
                        }
                        Err(why) => key.refused = Some(why),
                    }
                }
            }
            // Decided; not shown before it is durable.
            for undo in undos.into_iter().rev() {
                reg.undo(undo);
            }
        }
        match store.commit(&puts, expire_before) {
            Ok(_) => {
                let mut reg = registry.write();
                for (network, entry) in &puts {
                    reg.insert_unchecked(network, *entry);
                }
            }
            Err(error) => {
                tracing::error!(%error, registrations = puts.len(), "commit failed; refusing the batch");
                for job in &mut batch {
                    refuse_pending(&mut job.reg, &Refusal::Storage);
                }
            }
        }
        for job in batch {
            let _ = job.reply.send(job.reg);
        }
    }
}
