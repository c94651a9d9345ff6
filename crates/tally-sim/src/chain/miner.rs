//! A simulated miner: the real [`Chain`] on the real in-memory chain store
//! ([`MemoryStore`] on a [`MemoryDisk`] that outlives a crash and can fail a commit), with
//! its own clock (the simulated time plus this miner's skew).

use std::collections::BTreeSet;

use tally_chain::store::MemoryStore;
use tally_chain::{
    Block, BlockHash, Chain, ChainConfig, ChainError, ChainParams, MemoryDisk, U256,
};
use tally_core::SecretKey;

/// How a miner behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinerKind {
    /// Announces every block it finds at once.
    Honest,
    /// Keeps the blocks it finds to itself (mining on them) and releases them in bursts:
    /// selfish mining, which makes deep forks and reorganisations.
    Withholder,
    /// Now and then announces a block whose coinbase pays one microcash more than the
    /// reward (an attempt to create money); its other blocks are honest.
    Inflator,
}

/// One miner process and its disk.
pub struct SimMiner {
    pub index: usize,
    pub kind: MinerKind,
    pub key: SecretKey,
    /// Milliseconds this miner's clock is ahead of the simulated time (behind if negative).
    pub skew_ms: i64,
    disk: MemoryDisk,
    /// The running process's chain; `None` while it is down.
    pub chain: Option<Chain<MemoryStore>>,
    /// Blocks found and not yet announced (a withholder's private branch), oldest first.
    pub withheld: Vec<Block>,
    /// Every block this miner announced as stored: each must still be there after a crash.
    pub announced: BTreeSet<BlockHash>,
    /// The most work of a tip it announced.
    pub announced_work: U256,
    /// Its current search for a block: the only one whose `Mine` event counts.
    pub search: u64,
}

impl SimMiner {
    pub fn new(index: usize, kind: MinerKind, key: SecretKey, skew_ms: i64) -> Self {
        SimMiner {
            index,
            kind,
            key,
            skew_ms,
            disk: MemoryDisk::new(),
            chain: None,
            withheld: Vec::new(),
            announced: BTreeSet::new(),
            announced_work: U256::ZERO,
            search: 0,
        }
    }

    pub fn is_up(&self) -> bool {
        self.chain.is_some()
    }

    /// This miner's clock at simulated time `now`: the simulation starts at a fixed epoch
    /// so that a clock behind the simulated time never goes below zero.
    pub fn clock(&self, now: u64) -> u64 {
        let epoch = 1_000_000_000u64;
        epoch
            .saturating_add_signed(self.skew_ms)
            .saturating_add(now)
    }

    /// Starts the process from its disk (the genesis on first start).
    pub fn start(&mut self, params: &ChainParams) -> Result<(), String> {
        let store = MemoryStore::open(&self.disk, &params.network)
            .map_err(|e| format!("miner {} cannot open its disk: {e}", self.index))?;
        let chain = Chain::with_store(store, params.clone(), ChainConfig::default())
            .map_err(|e| format!("miner {} cannot load its chain: {e}", self.index))?;
        self.chain = Some(chain);
        Ok(())
    }

    /// The process dies: its mempool, orphans, held blocks and withheld blocks are gone;
    /// what its disk committed stays.
    pub fn crash(&mut self) {
        self.chain = None;
        self.withheld.clear();
    }

    /// The next commit of its disk fails (the node stops on a failed commit).
    pub fn fail_next_commit(&self) {
        self.disk.fail_next_commits(1);
    }

    /// A failure armed for a commit that never came is disarmed: once the network healed
    /// no fault may strike.
    pub fn disarm_disk(&self) {
        self.disk.fail_next_commits(0);
    }

    /// Accepts a block at this miner's clock.
    pub fn accept(
        &mut self,
        block: Block,
        now: u64,
    ) -> Option<Result<tally_chain::BlockOutcome, ChainError>> {
        let clock = self.clock(now);
        self.chain
            .as_mut()
            .map(|chain| chain.accept_block(block, clock))
    }

    /// Records that this miner announced `hash` as stored, at its current tip's work.
    pub fn announce(&mut self, hash: BlockHash) {
        self.announced.insert(hash);
        if let Some(chain) = &self.chain {
            let work = chain.tip().work;
            if work > self.announced_work {
                self.announced_work = work;
            }
        }
    }

    /// After a restart: every block announced is still stored, and the tip has at least
    /// the work of any tip announced (announcing follows the commit, so a crash cannot
    /// take an announced block back).
    pub fn check_announced(&self) -> Result<(), String> {
        let Some(chain) = &self.chain else {
            return Ok(());
        };
        if let Some(lost) = self.announced.iter().find(|h| !chain.knows_block(h)) {
            return Err(format!(
                "miner {} announced block {lost} and lost it in a crash",
                self.index
            ));
        }
        if chain.tip().work < self.announced_work {
            return Err(format!(
                "miner {} restarted with less work than it had announced",
                self.index
            ));
        }
        Ok(())
    }
}
