//! The reference the chain world checks fork choice against: every block any miner found
//! (valid ones with their total work, invalid ones by hash), independent of any node.

use std::collections::{BTreeSet, HashMap};

use tally_chain::consensus::work;
use tally_chain::{Block, BlockHash, U256};

/// Every block found in a run.
pub struct BlockTree {
    /// Valid blocks: hash → total work of the chain ending in it.
    valid: HashMap<BlockHash, U256>,
    /// Blocks an inflating miner made invalid on purpose.
    pub invalid: BTreeSet<BlockHash>,
}

impl BlockTree {
    /// A tree holding the genesis, whose chain has `genesis_work`.
    pub fn new(genesis: BlockHash, genesis_work: U256) -> Self {
        BlockTree {
            valid: HashMap::from([(genesis, genesis_work)]),
            invalid: BTreeSet::new(),
        }
    }

    /// A block the miner that found it stored (so valid by the real rules). Its parent is
    /// in the tree: a miner mines on a block it stored.
    pub fn found_valid(&mut self, block: &Block) -> Result<(), String> {
        let hash = block.hash();
        let Some(parent) = self.valid.get(&block.header.previous) else {
            return Err(format!(
                "block {hash} was mined on {}, which no miner found",
                block.header.previous
            ));
        };
        let total = parent.saturating_add(&work(&block.header.target));
        self.valid.insert(hash, total);
        Ok(())
    }

    pub fn found_invalid(&mut self, block: &Block) {
        self.invalid.insert(block.hash());
    }

    /// The most work of any valid chain: where every honest miner must end up.
    pub fn most_work(&self) -> U256 {
        self.valid.values().copied().max().unwrap_or(U256::ZERO)
    }

    /// Blocks found (valid ones, the genesis not counted).
    pub fn valid_blocks(&self) -> usize {
        self.valid.len().saturating_sub(1)
    }
}
