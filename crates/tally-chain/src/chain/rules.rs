//! The header rules that need the parent (stored or held): height, the expected target
//! (retargeting), the median time past, and the clock.

use super::Chain;
use crate::block::{Block, BlockHash, BlockHeader};
use crate::consensus::{MAX_FUTURE_DRIFT_MS, MEDIAN_TIME_SPAN, median_time, retarget};
use crate::error::BlockError;
use crate::store::ChainStore;
use crate::u256::U256;

impl<S: ChainStore> Chain<S> {
    /// The header of a stored or held block.
    pub(super) fn known_header(&self, hash: &BlockHash) -> Option<&BlockHeader> {
        match self.index.get(hash) {
            Some(entry) => Some(&entry.header),
            None => self.held.header(hash),
        }
    }

    pub(super) fn check_against_parent(
        &self,
        block: &Block,
        now_ms: u64,
    ) -> Result<(), BlockError> {
        let header = &block.header;
        let Some(parent) = self.known_header(&header.previous) else {
            return Err(BlockError::InvalidAncestor(header.previous));
        };
        let expected_height = parent.height.saturating_add(1);
        if header.height != expected_height {
            return Err(BlockError::WrongHeight {
                expected: expected_height,
                got: header.height,
            });
        }
        let expected = self.expected_target(&header.previous);
        if header.target != expected {
            return Err(BlockError::WrongTarget {
                expected,
                got: header.target,
            });
        }
        let median = self.median_time_past(&header.previous);
        if header.timestamp_ms <= median {
            return Err(BlockError::TimestampTooOld {
                median,
                got: header.timestamp_ms,
            });
        }
        let limit = now_ms.saturating_add(MAX_FUTURE_DRIFT_MS);
        if header.timestamp_ms > limit {
            return Err(BlockError::TimestampTooFarInFuture {
                limit,
                got: header.timestamp_ms,
            });
        }
        Ok(())
    }

    /// The target a child of `parent` (stored or held) must carry.
    pub(super) fn expected_target(&self, parent: &BlockHash) -> U256 {
        let Some(header) = self.known_header(parent) else {
            return self.params.initial_target;
        };
        let height = header.height.saturating_add(1);
        if !self.params.is_retarget_height(height) {
            return header.target;
        }
        let first_height = height - 1 - self.params.retarget_window;
        let first_ms = self
            .ancestor(parent, first_height)
            .map(|h| h.timestamp_ms)
            .unwrap_or_default();
        retarget(&self.params, header.target, first_ms, header.timestamp_ms)
    }

    /// The header of the ancestor of `hash` (inclusive, stored or held) at `height`.
    pub(super) fn ancestor(&self, hash: &BlockHash, height: u64) -> Option<&BlockHeader> {
        let mut current = *hash;
        loop {
            let header = self.known_header(&current)?;
            if header.height == height {
                return Some(header);
            }
            if header.height < height {
                return None;
            }
            // On the main chain, jump straight there.
            if self.hash_at(header.height) == Some(current) {
                return self
                    .hash_at(height)
                    .and_then(|h| self.index.get(&h))
                    .map(|e| &e.header);
            }
            current = header.previous;
        }
    }

    pub(super) fn median_time_past(&self, parent: &BlockHash) -> u64 {
        let mut times = Vec::with_capacity(MEDIAN_TIME_SPAN);
        let mut current = *parent;
        while times.len() < MEDIAN_TIME_SPAN {
            let Some(header) = self.known_header(&current) else {
                break;
            };
            if header.height == 0 {
                break;
            }
            times.push(header.timestamp_ms);
            current = header.previous;
        }
        median_time(&mut times)
    }
}
