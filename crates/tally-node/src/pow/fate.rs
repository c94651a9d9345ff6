//! What to do with blocks received from a peer, sans-I/O: the chain's verdict on each block
//! becomes a [`BlockFate`] (relay it, fetch its parent, score the sender, ignore it, or stop
//! the node), and a run of fates from one peer becomes a [`BlocksVerdict`] (which blocks to
//! relay, whether the mining round is stale, whether to ask that peer for more).
//!
//! Rules: a block is relayed once, and only once it is connected to the main chain (a block
//! stored on a side branch has not been checked against the state, and may never be).
//! After a sync batch only the new tip is announced: peers fetch what they lack. A held
//! low-work side-branch block is neither relayed nor held against its sender (a heavier
//! branch arrives this way), and a sync goes on after it. An invalid block ends the run and
//! is scored when it is the sender's fault. A storage failure stops the node.

use tally_chain::{Block, BlockHash, BlockOutcome, ChainError};

use crate::pow::sync::PeerSync;
use tally_proto::pow::Tip;

/// What became of one block from a peer.
#[derive(Debug)]
pub enum BlockFate {
    /// Stored. `tip_moved`: the main chain moved; `disconnected`: the blocks a
    /// reorganisation took off it (their transactions went back to the mempool).
    New {
        tip_moved: bool,
        disconnected: Vec<BlockHash>,
    },
    /// Known already, or held in memory as a low-work side-branch block: the exchange may
    /// go on.
    Known,
    /// Its parent is unknown: fetch it from the sender.
    Orphan,
    /// It breaks a rule: refused with `reason`, and the sender scored when `peer_fault`.
    Invalid {
        hash: BlockHash,
        reason: String,
        peer_fault: bool,
    },
    /// Storage failed: the node stops (crash-only).
    StorageFailed(ChainError),
}

impl BlockFate {
    /// The fate of block `hash` from the chain's verdict.
    pub fn of(hash: &BlockHash, verdict: Result<BlockOutcome, ChainError>) -> Self {
        match verdict {
            Ok(BlockOutcome::Duplicate) => BlockFate::Known,
            Ok(BlockOutcome::Held { height }) => {
                tracing::debug!(%hash, height, "low-work side-branch block held in memory");
                BlockFate::Known
            }
            Ok(BlockOutcome::Orphan { missing_parent }) => {
                tracing::debug!(%hash, %missing_parent, "orphan block");
                BlockFate::Orphan
            }
            Ok(BlockOutcome::Stored {
                height, tip_change, ..
            }) => {
                let disconnected = match &tip_change {
                    Some(change) if change.is_reorg() => {
                        tracing::info!(
                            height = change.height,
                            disconnected = change.disconnected.len(),
                            connected = change.connected.len(),
                            returned = change.returned_to_mempool,
                            "reorganisation"
                        );
                        change.disconnected.clone()
                    }
                    Some(_) => {
                        tracing::debug!(height, %hash, "new tip");
                        Vec::new()
                    }
                    None => Vec::new(),
                };
                BlockFate::New {
                    tip_moved: tip_change.is_some(),
                    disconnected,
                }
            }
            Err(ChainError::Invalid { hash, error }) => BlockFate::Invalid {
                hash,
                reason: error.to_string(),
                peer_fault: error.is_peer_fault(),
            },
            Err(error @ ChainError::Store(_)) => BlockFate::StorageFailed(error),
        }
    }

    /// Whether the run of blocks stops at this one.
    pub fn ends_run(&self) -> bool {
        matches!(
            self,
            BlockFate::Invalid { .. } | BlockFate::StorageFailed(_)
        )
    }
}

/// What a run of blocks from one peer (a `HASH_BROADCAST`'s one, or a `RECEIVE_BLOCK`
/// batch) calls for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BlocksVerdict {
    /// Blocks to announce (`HASH_BROADCAST`) to the other miners.
    pub relay: Vec<Block>,
    /// The main chain moved: the mining round is stale.
    pub tip_moved: bool,
    /// The height of the newest new block (0: none), for display.
    pub newest_height: u64,
    /// Some block was new or known and none was refused: a sync may go on.
    pub progressed: bool,
    /// A block's parent is missing.
    pub orphan: bool,
    /// The last block of the run that is stored (new or known): the next request goes on
    /// after it.
    pub last_stored: Option<BlockHash>,
}

impl BlocksVerdict {
    /// Judges the `fates` of a run, in order. `single`: a `HASH_BROADCAST` (else a sync
    /// batch); `tip`: our main chain's tip after the run.
    pub fn judge(fates: Vec<(Block, BlockFate)>, single: bool, tip: &BlockHash) -> Self {
        let mut verdict = BlocksVerdict::default();
        let mut refused = false;
        let mut newest = None;
        for (block, fate) in fates {
            match fate {
                BlockFate::New { tip_moved, .. } => {
                    verdict.progressed = true;
                    verdict.tip_moved |= tip_moved;
                    verdict.last_stored = Some(block.hash());
                    if single && tip_moved {
                        verdict.relay.push(block.clone());
                    }
                    newest = Some(block);
                }
                BlockFate::Known => {
                    // Another peer was faster: the exchange may go on.
                    verdict.progressed = true;
                    verdict.last_stored = Some(block.hash());
                }
                BlockFate::Orphan => verdict.orphan = true,
                BlockFate::Invalid { .. } | BlockFate::StorageFailed(_) => refused = true,
            }
        }
        verdict.progressed &= !refused;
        verdict.newest_height = newest.as_ref().map_or(0, |b| b.header.height);
        if !single
            && verdict.tip_moved
            && let Some(block) = newest.filter(|b| &b.hash() == tip)
        {
            verdict.relay.push(block);
        }
        verdict
    }

    /// Whether to send the peer a `SEND_REQUEST` now, and after which block
    /// (`Some(None)`: from our main chain's locator alone). `batch`: the run was a
    /// `RECEIVE_BLOCK` of `count` blocks ending at the peer's `Tip`.
    pub fn next_request(
        &self,
        sync: &mut PeerSync,
        batch: Option<(usize, Tip)>,
        ours: Tip,
        now_ms: u64,
    ) -> Option<Option<BlockHash>> {
        if let Some((count, peer_tip)) = batch
            && sync.on_batch(count, self.progressed, peer_tip, ours, now_ms)
        {
            return Some(self.last_stored);
        }
        (self.orphan && sync.on_orphan(now_ms)).then_some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_chain::{BlockError, BlockHeader, Coinbase, StoreError, TipChange, U256};
    use tally_core::{Amount, Digest, NetworkId};

    fn block(height: u64) -> Block {
        Block {
            header: BlockHeader {
                version: 1,
                network: NetworkId(Digest::default()),
                height,
                previous: BlockHash::default(),
                merkle_root: Digest::default(),
                timestamp_ms: height,
                target: U256::from_u64(1),
                nonce: 0,
            },
            coinbase: Coinbase {
                miner: tally_core::SecretKey::from_bytes([1; 32]).account(),
                amount: Amount::ZERO,
                height,
            },
            transactions: Vec::new(),
        }
    }

    fn tip(work: u64) -> Tip {
        Tip {
            hash: Digest::default(),
            height: work,
            work: U256::from_u64(work),
        }
    }

    fn stored(change: Option<TipChange>) -> Result<BlockOutcome, ChainError> {
        Ok(BlockOutcome::Stored {
            height: 1,
            tip_change: change,
            adopted_orphans: Vec::new(),
        })
    }

    fn change(disconnected: Vec<BlockHash>) -> TipChange {
        TipChange {
            old_tip: BlockHash::default(),
            new_tip: BlockHash::default(),
            height: 1,
            disconnected,
            connected: Vec::new(),
            returned_to_mempool: 0,
        }
    }

    fn new(tip_moved: bool) -> BlockFate {
        BlockFate::New {
            tip_moved,
            disconnected: Vec::new(),
        }
    }

    /// Every chain verdict has its fate: known and held blocks let a sync go on, invalid
    /// ones are scored only when the sender is to blame, a store error stops the node.
    #[test]
    fn each_chain_verdict_has_its_fate() {
        let hash = BlockHash::default();
        let fate = |verdict| BlockFate::of(&hash, verdict);
        assert!(matches!(
            fate(Ok(BlockOutcome::Duplicate)),
            BlockFate::Known
        ));
        assert!(matches!(
            fate(Ok(BlockOutcome::Held { height: 3 })),
            BlockFate::Known
        ));
        assert!(matches!(
            fate(Ok(BlockOutcome::Orphan {
                missing_parent: hash
            })),
            BlockFate::Orphan
        ));
        assert!(matches!(
            fate(stored(None)),
            BlockFate::New {
                tip_moved: false,
                ..
            }
        ));
        let reorg = fate(stored(Some(change(vec![hash]))));
        assert!(
            matches!(&reorg, BlockFate::New { tip_moved: true, disconnected } if disconnected == &[hash])
        );
        let invalid = |error| fate(Err(ChainError::Invalid { hash, error }));
        assert!(matches!(
            invalid(BlockError::Version(9)),
            BlockFate::Invalid {
                peer_fault: true,
                ..
            }
        ));
        let early = invalid(BlockError::TimestampTooFarInFuture { limit: 1, got: 2 });
        assert!(matches!(
            early,
            BlockFate::Invalid {
                peer_fault: false,
                ..
            }
        ));
        assert!(early.ends_run());
        let failed = fate(Err(ChainError::Store(StoreError::Corrupt {
            table: "blocks",
            detail: "test".into(),
        })));
        assert!(matches!(failed, BlockFate::StorageFailed(_)) && failed.ends_run());
        assert!(!new(true).ends_run());
    }

    /// A broadcast block is relayed when it moved the tip, never when it went to a side
    /// branch; a sync batch announces only the new tip.
    #[test]
    fn only_blocks_that_move_the_tip_are_relayed_and_a_batch_announces_its_tip_only() {
        let (a, b) = (block(1), block(2));
        let single = BlocksVerdict::judge(vec![(a.clone(), new(true))], true, &a.hash());
        assert_eq!(single.relay, vec![a.clone()]);
        assert!(single.tip_moved && single.progressed);
        let side = BlocksVerdict::judge(vec![(a.clone(), new(false))], true, &b.hash());
        assert!(side.relay.is_empty() && !side.tip_moved);
        let batch = BlocksVerdict::judge(
            vec![(a.clone(), new(true)), (b.clone(), new(true))],
            false,
            &b.hash(),
        );
        assert_eq!(batch.relay, vec![b.clone()]);
        assert_eq!(batch.newest_height, 2);
        assert_eq!(batch.last_stored, Some(b.hash()));
        let overtaken = BlocksVerdict::judge(vec![(a.clone(), new(true))], false, &b.hash());
        assert!(overtaken.relay.is_empty(), "not our tip any more");
    }

    /// A batch that progressed asks for the next after its last stored block; an invalid
    /// block ends the exchange; an orphan asks from our locator.
    #[test]
    fn a_sync_goes_on_after_progress_and_fetches_parents_of_orphans() {
        let (a, b) = (block(1), block(2));
        let mut sync = PeerSync::new(1000);
        assert!(sync.on_peer_tip(tip(9), tip(0), 0));
        let moved = BlocksVerdict::judge(
            vec![(a.clone(), new(true)), (b.clone(), BlockFate::Known)],
            false,
            &a.hash(),
        );
        assert_eq!(
            moved.next_request(&mut sync, Some((2, tip(9))), tip(2), 10),
            Some(Some(b.hash()))
        );
        let refused = BlocksVerdict::judge(
            vec![
                (a.clone(), new(true)),
                (
                    b.clone(),
                    BlockFate::Invalid {
                        hash: b.hash(),
                        reason: String::new(),
                        peer_fault: true,
                    },
                ),
            ],
            false,
            &a.hash(),
        );
        assert!(!refused.progressed);
        assert_eq!(
            refused.next_request(&mut sync, Some((2, tip(9))), tip(3), 20),
            None
        );
        let orphan = BlocksVerdict::judge(vec![(a, BlockFate::Orphan)], true, &b.hash());
        assert_eq!(orphan.next_request(&mut sync, None, tip(3), 30), Some(None));
        assert_eq!(
            orphan.next_request(&mut sync, None, tip(3), 40),
            None,
            "one request in flight"
        );
    }
}
