//! Opening a chain: rebuilding the block tree, the main chain and the accounts from what
//! the store committed, or writing the genesis state into a new store.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use tally_core::{Digest, KeyCache, NetworkContract};
use tracing::{info, warn};

use super::recent::{RECENT_BLOCKS_ON_OPEN, RECENT_TRANSACTIONS, RecentTransactions};
use super::{Chain, ChainConfig, Entry, MAX_REVEALED, OpenError};
use crate::block::{BlockHeader, HEADER_VERSION};
use crate::consensus::{ChainParams, work};
use crate::error::StoreError;
use crate::escrows::RevealedSecrets;
use crate::held::HeldBlocks;
use crate::mempool::Mempool;
use crate::orphans::OrphanPool;
use crate::state::{AccountState, merge};
use crate::store::{ChainStore, RedbStore, StoredStatus, WriteBatch};
use crate::u256::U256;

impl Chain<RedbStore> {
    /// Opens the chain stored at `path` (created with the genesis allocations if new).
    pub fn open(
        path: &Path,
        contract: &NetworkContract,
        config: ChainConfig,
    ) -> Result<Self, OpenError> {
        let params = ChainParams::from_contract(contract)?;
        let store = RedbStore::open(path, &params.network)?;
        Ok(Self::with_store(store, params, config)?)
    }

    /// A chain kept in memory only, by redb on a memory backend: a node's code paths with
    /// nothing on disk (tests, benchmarks, tools). A simulation that crashes nodes gives
    /// [`Chain::with_store`] a [`MemoryStore`](crate::store::MemoryStore) instead.
    pub fn in_memory(contract: &NetworkContract, config: ChainConfig) -> Result<Self, OpenError> {
        let params = ChainParams::from_contract(contract)?;
        let store = RedbStore::in_memory(&params.network)?;
        Ok(Self::with_store(store, params, config)?)
    }
}

impl<S: ChainStore> Chain<S> {
    /// A chain over an already opened store: rebuilt from what it committed, or, for a new
    /// store, started by committing the genesis allocations.
    pub fn with_store(
        store: S,
        params: ChainParams,
        config: ChainConfig,
    ) -> Result<Self, StoreError> {
        let loaded = store.load()?;
        let genesis_header = BlockHeader {
            version: HEADER_VERSION,
            network: params.network,
            height: 0,
            previous: Digest::default(),
            merkle_root: Digest::default(),
            timestamp_ms: 0,
            target: params.initial_target,
            nonce: 0,
        };
        let mut chain = Chain {
            mempool: Mempool::new(config.mempool),
            config,
            store,
            index: HashMap::new(),
            children: HashMap::new(),
            main: vec![params.genesis_hash],
            accounts: loaded.accounts,
            escrows: loaded.escrows.into_iter().collect(),
            revealed: RevealedSecrets::new(MAX_REVEALED),
            orphans: OrphanPool::new(config.max_orphans, config.max_orphan_bytes),
            held: HeldBlocks::new(config.max_held_blocks, config.max_held_bytes),
            rejected: HashSet::new(),
            recent: RecentTransactions::new(RECENT_TRANSACTIONS),
            keys: Arc::new(KeyCache::new(config.max_cached_keys)),
            params,
        };
        chain.index.insert(
            chain.params.genesis_hash,
            Entry {
                header: genesis_header,
                work: U256::ZERO,
                invalid: false,
            },
        );
        let mut headers = loaded.headers;
        headers.sort_by_key(|(h, _)| h.height);
        for (header, status) in headers {
            let hash = header.hash();
            let Some(parent) = chain.index.get(&header.previous) else {
                warn!(%hash, "stored block without a stored parent; ignored");
                continue;
            };
            let entry = Entry {
                work: parent.work.saturating_add(&work(&header.target)),
                invalid: parent.invalid || status == StoredStatus::Invalid,
                header,
            };
            chain.index.insert(hash, entry);
            chain
                .children
                .entry(header.previous)
                .or_default()
                .push(hash);
        }
        match loaded.tip {
            None => {
                if !chain.accounts.is_empty()
                    || !chain.escrows.is_empty()
                    || !loaded.main.is_empty()
                {
                    return Err(StoreError::Corrupt {
                        table: "meta",
                        detail: "state without a tip".into(),
                    });
                }
                // A new database: write the genesis state and tip in one commit.
                let mut batch = WriteBatch::default();
                for allocation in &chain.params.genesis {
                    let state = AccountState {
                        balance: allocation.amount,
                        next_sequence: 0,
                    };
                    batch.accounts.insert(allocation.account, state);
                }
                batch.tip = Some(chain.params.genesis_hash);
                chain.store.commit(&batch)?;
                merge(&mut chain.accounts, batch.accounts);
            }
            Some(tip) => {
                chain.main.extend(loaded.main);
                let consistent = chain.main.last() == Some(&tip)
                    && chain.main.windows(2).all(|pair| {
                        chain
                            .index
                            .get(&pair[1])
                            .is_some_and(|e| e.header.previous == pair[0] && !e.invalid)
                    });
                if !consistent {
                    return Err(StoreError::Corrupt {
                        table: "main_chain",
                        detail: "main chain does not link up to the tip".into(),
                    });
                }
            }
        }
        let height = chain.height();
        for h in height.saturating_sub(RECENT_BLOCKS_ON_OPEN - 1).max(1)..=height {
            if let Some(block) = chain.block_at(h)? {
                chain.recent.push(h, &block.transactions);
            }
        }
        info!(
            height = chain.height(),
            tip = %chain.tip().hash,
            blocks = chain.index.len() - 1,
            accounts = chain.accounts.len(),
            escrows = chain.escrows.len(),
            "chain opened"
        );
        Ok(chain)
    }
}
