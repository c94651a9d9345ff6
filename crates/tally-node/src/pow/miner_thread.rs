//! The mining thread and its ticker. The thread builds a template, searches nonces on
//! `threads` threads until its round is stopped (see [`MiningControl`]), then checks,
//! stores and announces what it found; chain work runs outside the chain lock where it can
//! (signature checks), and never on an async worker.
//!
//! [`MiningControl`]: crate::pow::mining::MiningControl

use std::sync::Arc;
use std::time::Duration;

use tally_chain::{BlockOutcome, ChainError, check_block, miner};
use tracing::{debug, warn};

use crate::pow::clock::now_ms;
use crate::pow::mining::HashRateSampler;
use crate::pow::state::Miner;
use tally_proto::pow::{HashBroadcast, PowPacket};

/// Samples the hash rate every second and restarts the miner on a fresh template when new
/// transactions have waited `template_refresh`.
pub async fn ticker(miner: Arc<Miner>) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    let mut sampler = HashRateSampler::new(std::time::Instant::now());
    loop {
        tokio::select! {
            _ = miner.cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        let hashes = miner
            .mining
            .hashes()
            .load(std::sync::atomic::Ordering::Relaxed);
        if let Some(rate) = sampler.sample(hashes, std::time::Instant::now()) {
            miner.mining.set_hash_rate(rate);
        }
        if miner
            .mining
            .template_is_stale(now_ms(), miner.config.template_refresh)
        {
            miner.mining.stop_round();
        }
    }
}

/// The mining thread: template, nonce search on all mining threads, store and broadcast;
/// again on every tip change or when new transactions waited long enough.
pub fn run(miner: Arc<Miner>) {
    let control = &miner.mining;
    while !miner.cancel.is_cancelled() {
        if !control.is_on() {
            control.set_idle();
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        // Register the stop flag before taking the template, so a tip change in between
        // stops this round.
        let stop = control.new_round();
        if miner.cancel.is_cancelled() {
            break;
        }
        if !control.is_on() {
            continue;
        }
        control.template_taken(now_ms());
        let mut block = miner.chain().block_template(miner.miner_account, now_ms());
        let Some(header) = miner::mine(&block.header, miner.threads, &stop, control.hashes())
        else {
            continue;
        };
        block.header = header;
        let hash = block.hash();
        // The signature checks run before the chain is locked (the lock is for applying
        // and committing only: connections wait on it).
        let result = check_block(&miner.params, &miner.keys, block.clone()).and_then(|checked| {
            miner.change_chain(|chain| chain.accept_checked(checked, now_ms()))
        });
        match result {
            Ok(BlockOutcome::Stored { height, .. }) => {
                control.block_mined();
                debug!(height, %hash, txs = block.transactions.len(), "mined a block");
                miner.conns.broadcast(
                    &PowPacket::HashBroadcast(HashBroadcast { hash, block }),
                    None,
                );
            }
            Ok(other) => debug!(?other, "mined block not stored"),
            Err(error @ ChainError::Store(_)) => {
                miner.fatal(&error);
                break;
            }
            Err(error) => warn!(%error, "our own block was refused"),
        }
    }
}
