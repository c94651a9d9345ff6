//! Blocks from peers: checked and stored on a blocking thread, then their fates
//! ([`BlockFate`], [`BlocksVerdict`]) carried out: rejections and scores, relays, the mining
//! round, the next `SEND_REQUEST`.

use std::sync::Arc;

use tally_chain::{Block, Transaction, TxStatus, check_block};
use tracing::warn;

use crate::pow::clock::now_ms;
use crate::pow::fate::{BlockFate, BlocksVerdict};
use crate::pow::peers::Offense;
use crate::pow::state::Miner;
use tally_proto::pow::{
    HashBroadcast, MAX_GOSSIP_TRANSACTIONS, PowPacket, RejectBlock, Tip, TransactionGossip,
};

/// Checks and stores blocks from connection `id` in order (a `HASH_BROADCAST` has one, a
/// `RECEIVE_BLOCK` up to a batch, ending at the sender's `batch_tip`), relays new ones, and
/// asks for more when needed.
pub async fn on_blocks(miner: &Arc<Miner>, id: u64, blocks: Vec<Block>, batch_tip: Option<Tip>) {
    let count = blocks.len();
    let single = batch_tip.is_none();
    let worker = miner.clone();
    let fates = tokio::task::spawn_blocking(move || store_blocks(&worker, id, blocks)).await;
    let fates = match fates {
        Ok(fates) => fates,
        Err(error) => {
            warn!(%error, "block task failed");
            return;
        }
    };
    let verdict = BlocksVerdict::judge(fates, single, &miner.tip().hash);
    for block in verdict.relay.iter().cloned() {
        miner.conns.broadcast(
            &PowPacket::HashBroadcast(HashBroadcast {
                hash: block.hash(),
                block,
            }),
            Some(id),
        );
    }
    if verdict.tip_moved {
        miner.mining.stop_round();
    }
    let ours = miner.tip();
    let now = now_ms();
    let ask = {
        let mut conns = miner.conns.lock();
        conns.get_mut(&id).and_then(|conn| {
            conn.best_height = conn.best_height.max(verdict.newest_height);
            verdict.next_request(&mut conn.sync, batch_tip.map(|tip| (count, tip)), ours, now)
        })
    };
    if let Some(after) = ask {
        miner.conns.reply(id, &miner.send_request_after(after));
    }
}

/// Orphans whose signatures are checked before the chain is locked, per block that lets
/// them in (the pool holds more; the rest are checked under the lock as before).
const MAX_ORPHANS_CHECKED_AHEAD: usize = 256;

/// Checks and stores `blocks` in order until a new one is refused, carrying out what each fate
/// calls for at once (a rejection, a score, a reorganisation's returned transactions, a
/// storage failure). Runs on a blocking thread.
fn store_blocks(miner: &Miner, id: u64, blocks: Vec<Block>) -> Vec<(Block, BlockFate)> {
    let mut fates = Vec::with_capacity(blocks.len());
    for block in blocks {
        let hash = block.hash();
        let known = miner.chain().knows_block(&hash);
        let verdict = if known {
            // Known, or known invalid: the chain answers that without checking again.
            miner.change_chain(|chain| chain.accept_block(block.clone(), now_ms()))
        } else if miner.chain().fits_parent(&block, now_ms()) {
            // The header against its parent first: the header's own target is the sender's
            // choice (the pow limit costs nothing), so only a block that fits its parent is
            // worth a signature check per transaction. A block that lets a held (low-work)
            // branch catch up has that branch's signatures checked too: here, before the
            // chain is locked, once the block itself passed, and only up to the first that
            // fails (the chain refuses that one under the lock).
            // The orphans it lets in are checked here too, for the same reason.
            check_block(&miner.params, &miner.keys, block.clone()).and_then(|checked| {
                let (ancestors, orphans) = {
                    let chain = miner.chain();
                    (
                        chain.unchecked_held_ancestors(&block),
                        chain.unchecked_orphans_of(&hash, MAX_ORPHANS_CHECKED_AHEAD),
                    )
                };
                let mut verified: Vec<_> = ancestors
                    .into_iter()
                    .map_while(|held| check_block(&miner.params, &miner.keys, held).ok())
                    .collect();
                verified.extend(
                    orphans
                        .into_iter()
                        .filter_map(|orphan| check_block(&miner.params, &miner.keys, orphan).ok()),
                );
                miner.change_chain(|chain| {
                    chain.note_checked_held(&verified);
                    chain.accept_checked(checked, now_ms())
                })
            })
        } else {
            // The rest are refused, or held as orphans, by the chain before any signature
            // is checked.
            miner.change_chain(|chain| chain.accept_block(block.clone(), now_ms()))
        };
        let fate = BlockFate::of(&hash, verdict);
        carry_out(miner, id, &fate);
        // A block known to be invalid costs no check: the run goes on past it.
        let ends_run = !known && fate.ends_run();
        fates.push((block, fate));
        if ends_run {
            break;
        }
    }
    fates
}

/// What one block's fate calls for at once.
fn carry_out(miner: &Miner, id: u64, fate: &BlockFate) {
    match fate {
        BlockFate::New { disconnected, .. } if !disconnected.is_empty() => {
            relay_returned(miner, disconnected);
        }
        BlockFate::Invalid {
            hash,
            reason,
            peer_fault,
        } => {
            miner.conns.reply(
                id,
                &PowPacket::RejectBlock(RejectBlock {
                    hash: *hash,
                    reason: reason.clone(),
                }),
            );
            if *peer_fault {
                miner
                    .blocks_rejected
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(%hash, %reason, "invalid block");
                miner.penalise(id, Offense::InvalidBlock);
            }
        }
        BlockFate::StorageFailed(error) => miner.fatal(error),
        BlockFate::New { .. } | BlockFate::Known | BlockFate::Orphan => {}
    }
}

/// After a reorganisation, shares the transactions of the undone blocks that went back to
/// the mempool: miners on the winning branch may never have seen them (they were mined
/// during a partition), and someone must mine them again.
fn relay_returned(miner: &Miner, disconnected: &[tally_chain::BlockHash]) {
    let returned: Vec<Transaction> = {
        let chain = miner.chain();
        disconnected
            .iter()
            .filter_map(|hash| chain.block(hash).ok().flatten())
            .flat_map(|block| block.transactions)
            .filter(|tx| chain.transaction_status(tx) == TxStatus::Pending)
            .collect()
    };
    if returned.is_empty() {
        return;
    }
    miner.mining.mempool_grew();
    for chunk in returned.chunks(MAX_GOSSIP_TRANSACTIONS) {
        miner.conns.broadcast(
            &PowPacket::Transaction(TransactionGossip {
                transactions: chunk.to_vec(),
            }),
            None,
        );
    }
}
