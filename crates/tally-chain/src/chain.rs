//! The chain state machine: the block tree, fork choice, validation, reorganisation, the
//! mempool and block templates.
//!
//! It does no networking and reads no clock: the node hands it blocks, transactions and the
//! current time, and acts on what it returns (relay, request a missing parent, restart the
//! miner, penalise a peer). Its only side effect is its redb store, written once per tip
//! change.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tally_core::{
    AccountId, Amount, DecodeError, Digest, Encode, KeyCache, NetworkContract, SignedOrder,
};
use tracing::{debug, info, warn};

use crate::block::{
    BLOCK_PREFIX_LEN, Block, BlockHash, BlockHeader, Coinbase, HEADER_VERSION, Transaction,
    merkle_root,
};
use crate::consensus::{
    ChainParams, MAX_FUTURE_DRIFT_MS, MEDIAN_TIME_SPAN, ParamsError, median_time, retarget, work,
};
use crate::error::{BlockError, ChainError, StoreError, TxRejected};
use crate::held::HeldBlocks;
use crate::mempool::{Mempool, MempoolLimits};
use crate::state::{AccountState, Accounts, Overlay, Undo, merge, total_balance};
use crate::store::{Store, StoredStatus, WriteBatch};
use crate::u256::U256;

/// Tunables that are local policy, not consensus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainConfig {
    /// Mempool bounds.
    pub mempool: MempoolLimits,
    /// Most blocks held while their parent is missing.
    pub max_orphans: usize,
    /// Most bytes of blocks held while their parent is missing.
    pub max_orphan_bytes: usize,
    /// How easy an orphan's target may be, as a multiple of the target the next block on
    /// our tip must carry. An orphan cannot be checked against its parent, so its target is
    /// the sender's choice; without this bound near-free orphans would flush the orphan
    /// pool. 16 allows two retarget windows of the fastest easing (×4 each), so an honest
    /// block from a peer whose difficulty fell behind ours still gets through; flooding the
    /// pool then costs at least 1/16 of a block's work per orphan. 0 refuses every orphan.
    /// An orphan refused for this ([`BlockError::OrphanTargetTooEasy`]) is not held against
    /// its sender: a miner whose difficulty fell further behind is honest, only behind.
    pub orphan_target_multiple: u64,
    /// A side-branch block is written to disk only if its branch has at least the work
    /// the main chain had this many blocks below the tip; branches further behind are
    /// held in memory (see `max_held_blocks`) until they catch up. 64 keeps every
    /// ordinary fork and a partition of up to 64 blocks on disk as before, while a fork
    /// from deep history, where targets were easy, must first redo nearly all the work
    /// since its fork point. Smaller would hold more honest branches in memory; larger
    /// would lengthen the start of a network (its first `store_margin` blocks) during which
    /// any valid side block is stored. With the held pool, reorganisations up to about
    /// `store_margin` + `max_held_blocks` deep (fewer for full blocks, by
    /// `max_held_bytes`) still arrive block by block.
    pub store_margin: u64,
    /// Most low-work side-branch blocks held in memory. When the pool is full, the held
    /// block with the least work goes first, with its held descendants, but never an
    /// ancestor of the block being held: a branch longer than the pool keeps its first
    /// blocks and the next is refused ([`BlockError::HeldPoolFull`], not the sender's
    /// fault), as is a block with less work than every other held block. It bounds, with
    /// `store_margin`, how deep a reorganisation can arrive block by block.
    pub max_held_blocks: usize,
    /// Most bytes of low-work side-branch blocks held in memory.
    pub max_held_bytes: usize,
    /// Most decompressed signer keys kept for signature checks (about 200 bytes each; the
    /// cache is emptied when full). It should hold the senders of a few blocks.
    pub max_cached_keys: usize,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            mempool: MempoolLimits::default(),
            max_orphans: 256,
            max_orphan_bytes: 64 << 20,
            orphan_target_multiple: 16,
            store_margin: 64,
            max_held_blocks: 2_048,
            max_held_bytes: 128 << 20,
            max_cached_keys: 500_000,
        }
    }
}

/// Why a chain could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The contract cannot drive a chain.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// The database cannot be opened or is not this chain's.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The tip of the main chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipInfo {
    /// Its hash (the genesis hash before the first block).
    pub hash: BlockHash,
    /// Its height (0 before the first block).
    pub height: u64,
    /// Total work of the main chain: what fork choice compares, and what `CONNECT` sends.
    pub work: U256,
    /// Its timestamp in milliseconds (0 at genesis).
    pub timestamp_ms: u64,
}

/// A change of the main chain's tip.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TipChange {
    /// The tip before.
    pub old_tip: BlockHash,
    /// The tip after.
    pub new_tip: BlockHash,
    /// The new tip's height.
    pub height: u64,
    /// Blocks taken off the main chain, newest first (empty unless it was a reorganisation).
    pub disconnected: Vec<BlockHash>,
    /// Blocks put on the main chain, oldest first.
    pub connected: Vec<BlockHash>,
    /// Transactions of disconnected blocks now back in the mempool.
    pub returned_to_mempool: usize,
}

impl TipChange {
    /// Whether blocks left the main chain.
    pub fn is_reorg(&self) -> bool {
        !self.disconnected.is_empty()
    }

    fn then(mut self, next: TipChange) -> TipChange {
        self.new_tip = next.new_tip;
        self.height = next.height;
        self.disconnected.extend(next.disconnected);
        self.connected.extend(next.connected);
        self.returned_to_mempool += next.returned_to_mempool;
        self
    }
}

/// What became of a block the chain accepted (rejections are [`ChainError`]s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Already known (stored, held as an orphan, or held as a low-work side-branch
    /// block): nothing to do, nothing to relay.
    Duplicate,
    /// Its parent is unknown; it is held until the parent arrives. The node should fetch
    /// the parent (`SEND_REQUEST`).
    Orphan {
        /// The block to fetch.
        missing_parent: BlockHash,
    },
    /// Valid and stored. `tip_change` is set when the main chain moved (the miner should
    /// restart); `adopted_orphans` are held blocks that could now be connected.
    Stored {
        /// The block's height.
        height: u64,
        /// How the main chain moved, if it did.
        tip_change: Option<TipChange>,
        /// Held blocks connected after it, parents first.
        adopted_orphans: Vec<BlockHash>,
    },
    /// Valid as far as its header goes, but its branch has far less work than the main
    /// chain (see [`ChainConfig::store_margin`]), so it is held in memory only, not
    /// stored (and may be evicted later for a block of another branch with more work; a
    /// block the full pool has no room for is refused instead, with
    /// [`BlockError::HeldPoolFull`], so `Held` always means held). Its signatures and
    /// transactions are checked only if its branch catches up.
    /// The node must not relay it (it may never be connected) nor penalise the sender (a
    /// heavier branch arrives this way, block by block from its fork point); a sync may
    /// go on after it, since [`Chain::header`] knows it.
    Held {
        /// The block's height.
        height: u64,
    },
}

/// What became of a transaction (see [`Chain::transaction_status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxStatus {
    /// Waiting in the mempool.
    Pending,
    /// In the main-chain block at `height`; `confirmations` is 1 when that block is the
    /// tip, one more for each block on top.
    Confirmed {
        /// The block's height.
        height: u64,
        /// Blocks from it to the tip, both counted.
        confirmations: u64,
    },
    /// Its sender's sequence has passed it in a block older than the recent blocks the
    /// chain indexes: at least `confirmations` deep. (Another transaction with the same
    /// sequence could have been the one confirmed; a wallet that signs one order per
    /// sequence never sees that.)
    Buried {
        /// A lower bound on its confirmations.
        confirmations: u64,
    },
    /// Neither pending nor confirmed (rejected, dropped, or replaced in a reorganisation).
    Unknown,
}

/// Transactions of the most recent main-chain blocks by `(sender, sequence)`, bounded, so
/// confirmations can be counted without a per-transaction index on disk.
struct RecentTransactions {
    by_key: HashMap<(AccountId, u64), (u64, Transaction)>,
    blocks: VecDeque<(u64, Vec<(AccountId, u64)>)>,
    max_entries: usize,
}

impl RecentTransactions {
    fn new(max_entries: usize) -> Self {
        RecentTransactions {
            by_key: HashMap::new(),
            blocks: VecDeque::new(),
            max_entries,
        }
    }

    fn get(&self, sender: &AccountId, sequence: u64) -> Option<(u64, Transaction)> {
        self.by_key.get(&(*sender, sequence)).copied()
    }

    fn oldest_height(&self) -> Option<u64> {
        self.blocks.front().map(|(h, _)| *h)
    }

    fn push(&mut self, height: u64, txs: &[Transaction]) {
        let mut keys = Vec::with_capacity(txs.len());
        for tx in txs {
            if let Some(t) = tx.transfer() {
                keys.push((t.sender, t.sequence));
                self.by_key.insert((t.sender, t.sequence), (height, *tx));
            }
        }
        self.blocks.push_back((height, keys));
        while self.by_key.len() > self.max_entries && self.blocks.len() > 1 {
            if let Some((_, keys)) = self.blocks.pop_front() {
                for key in keys {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    fn truncate_above(&mut self, height: u64) {
        while self.blocks.back().is_some_and(|(h, _)| *h > height) {
            if let Some((_, keys)) = self.blocks.pop_back() {
                for key in keys {
                    self.by_key.remove(&key);
                }
            }
        }
    }
}

/// How many recent transactions [`Chain::transaction_status`] can place exactly.
const RECENT_TRANSACTIONS: usize = 200_000;
/// How many blocks back the recent index is rebuilt from when the chain opens.
const RECENT_BLOCKS_ON_OPEN: u64 = 100;

struct Entry {
    header: BlockHeader,
    /// Cumulative work up to and including this block.
    work: U256,
    invalid: bool,
}

/// The proof-of-work chain of one network.
pub struct Chain {
    params: ChainParams,
    config: ChainConfig,
    store: Store,
    index: HashMap<BlockHash, Entry>,
    children: HashMap<BlockHash, Vec<BlockHash>>,
    /// `main[h]` is the hash of the main-chain block at height `h`; `main[0]` is genesis.
    main: Vec<BlockHash>,
    accounts: Accounts,
    mempool: Mempool,
    /// Held blocks, and whether their signatures were checked.
    orphans: HashMap<BlockHash, (Block, bool)>,
    orphans_by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    orphan_order: VecDeque<BlockHash>,
    orphan_bytes: usize,
    /// Low-work side-branch blocks, in memory only.
    held: HeldBlocks,
    rejected: HashSet<BlockHash>,
    recent: RecentTransactions,
    /// Decompressed signer keys, shared with checks run off the chain.
    keys: Arc<KeyCache>,
}

const MAX_REJECTED: usize = 10_000;

impl Chain {
    /// Opens the chain stored at `path` (created with the genesis allocations if new).
    pub fn open(
        path: &Path,
        contract: &NetworkContract,
        config: ChainConfig,
    ) -> Result<Self, OpenError> {
        let params = ChainParams::from_contract(contract)?;
        let store = Store::open(path, &params.network)?;
        Ok(Self::with_store(store, params, config)?)
    }

    /// A chain kept in memory only (tests, benchmarks, tools).
    pub fn in_memory(contract: &NetworkContract, config: ChainConfig) -> Result<Self, OpenError> {
        let params = ChainParams::from_contract(contract)?;
        let store = Store::in_memory(&params.network)?;
        Ok(Self::with_store(store, params, config)?)
    }

    /// A chain over an already opened store.
    pub fn with_store(
        store: Store,
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
            orphans: HashMap::new(),
            orphans_by_parent: HashMap::new(),
            orphan_order: VecDeque::new(),
            orphan_bytes: 0,
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
                if !chain.accounts.is_empty() || !loaded.main.is_empty() {
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
            "chain opened"
        );
        Ok(chain)
    }

    // ----- queries -------------------------------------------------------------------

    /// The consensus parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The cache of decompressed signer keys this chain's signature checks use. A node
    /// clones the handle to pass to [`check_block`] and [`check_transactions`] when it runs
    /// them without holding the chain.
    pub fn key_cache(&self) -> &Arc<KeyCache> {
        &self.keys
    }

    /// The main chain's tip.
    pub fn tip(&self) -> TipInfo {
        let hash = self.tip_hash();
        let entry = self.index.get(&hash);
        TipInfo {
            hash,
            height: self.height(),
            work: entry.map(|e| e.work).unwrap_or_default(),
            timestamp_ms: entry.map(|e| e.header.timestamp_ms).unwrap_or_default(),
        }
    }

    fn tip_hash(&self) -> BlockHash {
        self.main
            .last()
            .copied()
            .unwrap_or(self.params.genesis_hash)
    }

    /// The main chain's height.
    pub fn height(&self) -> u64 {
        self.main.len().saturating_sub(1) as u64
    }

    /// The hash of the main-chain block at `height` (0 gives the genesis hash).
    pub fn hash_at(&self, height: u64) -> Option<BlockHash> {
        self.main.get(usize::try_from(height).ok()?).copied()
    }

    /// The header of any stored valid or invalid block, or of a held low-work side-branch
    /// block (not orphans): a sync continues after a held block like after a stored one.
    pub fn header(&self, hash: &BlockHash) -> Option<BlockHeader> {
        self.index
            .get(hash)
            .map(|e| e.header)
            .or_else(|| self.held.header(hash).copied())
    }

    /// Whether the chain has seen this block (stored, held as orphan or as a low-work
    /// side-branch block, or rejected): gossip uses it to relay each block once and not
    /// fetch it twice.
    pub fn knows_block(&self, hash: &BlockHash) -> bool {
        self.index.contains_key(hash)
            || self.orphans.contains_key(hash)
            || self.held.contains(hash)
            || self.rejected.contains(hash)
    }

    /// Whether `hash` is held in memory as a low-work side-branch block (not stored).
    pub fn is_held(&self, hash: &BlockHash) -> bool {
        self.held.contains(hash)
    }

    /// How many low-work side-branch blocks are held in memory, and their bytes.
    pub fn held_blocks(&self) -> (usize, usize) {
        (self.held.len(), self.held.bytes())
    }

    /// Whether `hash` is on the main chain.
    pub fn is_on_main_chain(&self, hash: &BlockHash) -> bool {
        self.index
            .get(hash)
            .and_then(|e| self.hash_at(e.header.height))
            .is_some_and(|h| h == *hash)
    }

    /// A stored block by hash.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        self.store.block(hash)
    }

    /// The main-chain block at `height` (`None` for 0: genesis is the contract, not a block).
    pub fn block_at(&self, height: u64) -> Result<Option<Block>, StoreError> {
        match self.hash_at(height) {
            Some(hash) if height > 0 => self.store.block(&hash),
            _ => Ok(None),
        }
    }

    /// Main-chain blocks from `height` upward, at most `max_blocks` of them and no more
    /// than `max_bytes` in all (at least one if any): the answer to a `SEND_REQUEST`.
    pub fn blocks_from(
        &self,
        height: u64,
        max_blocks: usize,
        max_bytes: usize,
    ) -> Result<Vec<Block>, StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut h = height.max(1);
        while out.len() < max_blocks {
            let Some(block) = self.block_at(h)? else {
                break;
            };
            bytes = bytes.saturating_add(block.encoded_len());
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(block);
            h += 1;
        }
        Ok(out)
    }

    /// A block locator: main-chain hashes from the tip back, dense at first, then doubling
    /// the step, ending at genesis. A peer finds the fork point from it with
    /// [`Chain::find_fork`].
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut height = self.height();
        let mut step = 1u64;
        loop {
            if let Some(hash) = self.hash_at(height) {
                out.push(hash);
            }
            if height == 0 {
                break;
            }
            if out.len() >= 10 {
                step = step.saturating_mul(2);
            }
            height = height.saturating_sub(step);
        }
        out
    }

    /// The height of the newest locator entry on our main chain (0 if none): send blocks
    /// from one above it.
    pub fn find_fork(&self, locator: &[BlockHash]) -> u64 {
        locator
            .iter()
            .find(|hash| self.is_on_main_chain(hash))
            .and_then(|hash| self.index.get(hash))
            .map(|e| e.header.height)
            .unwrap_or(0)
    }

    /// The confirmed state of `account`.
    pub fn account(&self, account: &AccountId) -> AccountState {
        self.accounts.get(account).copied().unwrap_or_default()
    }

    /// Every account with a balance or a used sequence.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The sum of all balances: always genesis plus one reward per block.
    pub fn supply(&self) -> Option<Amount> {
        total_balance(&self.accounts)
    }

    /// What became of `tx`: pending, confirmed at a height, buried deeper than the recent
    /// index reaches, or unknown. Wallets poll this to count confirmations.
    pub fn transaction_status(&self, tx: &Transaction) -> TxStatus {
        let Some(t) = tx.transfer() else {
            return TxStatus::Unknown;
        };
        if let Some((height, confirmed)) = self.recent.get(&t.sender, t.sequence) {
            if confirmed == *tx {
                return TxStatus::Confirmed {
                    height,
                    confirmations: self.height().saturating_sub(height) + 1,
                };
            }
            return TxStatus::Unknown;
        }
        if self.mempool.get(&t.sender, t.sequence) == Some(tx) {
            return TxStatus::Pending;
        }
        if self.account(&t.sender).next_sequence > t.sequence {
            let oldest = self.recent.oldest_height().unwrap_or(self.height() + 1);
            return TxStatus::Buried {
                confirmations: self.height().saturating_sub(oldest) + 1,
            };
        }
        TxStatus::Unknown
    }

    /// The pending transactions.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// How many blocks are held waiting for their parent.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// The target the next block on the tip must carry.
    pub fn next_target(&self) -> U256 {
        self.expected_target(&self.tip_hash())
    }

    /// The timestamp the next block must exceed (median of the last 11).
    pub fn next_min_timestamp(&self) -> u64 {
        self.median_time_past(&self.tip_hash())
    }

    // ----- transactions ---------------------------------------------------------------

    /// Takes a signed order into the mempool (`PUSH_TRANSACTION` / `TRANSACTION`).
    pub fn submit_order(&mut self, order: SignedOrder) -> Result<Transaction, TxRejected> {
        let tx = Transaction::from(order);
        self.submit_transaction(tx)?;
        Ok(tx)
    }

    /// Takes a transaction into the mempool after checking that it is a transfer (the only
    /// kind a proof-of-work network takes), its signature, sequence and the sender's funds
    /// against the tip.
    pub fn submit_transaction(&mut self, tx: Transaction) -> Result<(), TxRejected> {
        let Some(t) = tx.transfer() else {
            return Err(TxRejected::NotATransfer);
        };
        if t.amount.is_zero() {
            return Err(TxRejected::ZeroAmount);
        }
        if self.mempool.get(&t.sender, t.sequence) == Some(&tx) {
            return Err(TxRejected::Duplicate);
        }
        if !tx.to_signed_order().verify(&self.params.network) {
            return Err(TxRejected::BadSignature);
        }
        let sender = self.account(&t.sender);
        self.mempool.insert(tx, sender)
    }

    /// Takes many transactions at once, verifying their signatures in one batch (gossip
    /// arrives in bursts). `result[i]` is the fate of `txs[i]`.
    pub fn submit_transactions(&mut self, txs: Vec<Transaction>) -> Vec<Result<(), TxRejected>> {
        let checked = check_transactions(&self.params, &self.keys, txs);
        self.submit_checked(checked)
    }

    /// Takes transactions whose signatures [`check_transactions`] verified, so that a node
    /// can verify them without holding the chain (its lock would block every other user
    /// for the whole batch). `result[i]` is the fate of the `i`-th transaction.
    pub fn submit_checked(&mut self, checked: CheckedTransactions) -> Vec<Result<(), TxRejected>> {
        let CheckedTransactions {
            network,
            txs,
            valid,
        } = checked;
        if network != self.params.network {
            // Checked against another network's parameters: check again here.
            return self.submit_transactions(txs);
        }
        txs.into_iter()
            .zip(valid)
            .map(|(tx, ok)| {
                let Some(t) = tx.transfer() else {
                    return Err(TxRejected::NotATransfer);
                };
                if t.amount.is_zero() {
                    return Err(TxRejected::ZeroAmount);
                }
                if !ok {
                    return Err(TxRejected::BadSignature);
                }
                let sender = self.account(&t.sender);
                self.mempool.insert(tx, sender)
            })
            .collect()
    }

    // ----- mining ---------------------------------------------------------------------

    /// A block for `miner` to mine on the tip: the coinbase, mempool transactions that
    /// apply in order, the expected target, a timestamp of `now_ms` (or just past the
    /// median time if the clock is behind), and nonce 0.
    pub fn block_template(&self, miner: AccountId, now_ms: u64) -> Block {
        let tip = self.tip_hash();
        let height = self.height() + 1;
        let coinbase = Coinbase {
            miner,
            amount: self.params.block_reward,
            height,
        };
        let mut view = Overlay::new(&self.accounts);
        // The coinbase applies first, as in `apply_block`.
        let transactions = if view.credit(&miner, coinbase.amount) {
            let max_bytes = (self.params.max_block_bytes as usize).saturating_sub(BLOCK_PREFIX_LEN);
            self.mempool.select(
                &mut view,
                self.params.max_block_transactions as usize,
                max_bytes,
            )
        } else {
            Vec::new()
        };
        let mut block = Block {
            header: BlockHeader {
                version: HEADER_VERSION,
                network: self.params.network,
                height,
                previous: tip,
                merkle_root: Digest::default(),
                timestamp_ms: now_ms.max(self.median_time_past(&tip).saturating_add(1)),
                target: self.expected_target(&tip),
                nonce: 0,
            },
            coinbase,
            transactions,
        };
        block.header.merkle_root = merkle_root(leaf_ids(&block));
        block
    }

    // ----- blocks ---------------------------------------------------------------------

    /// Checks a block fully and stores it, moving the tip if its branch now has the most
    /// work (reorganising if needed), then connects any held orphans that descend from it.
    ///
    /// `now_ms` is the local clock, for the "not too far in the future" rule. On
    /// `Err(ChainError::Invalid)` the block broke a rule; the tip may still have moved to
    /// a valid part of a heavier branch in that case, which [`Chain::tip`] shows.
    pub fn accept_block(&mut self, block: Block, now_ms: u64) -> Result<BlockOutcome, ChainError> {
        let hash = block.hash();
        if let Some(known) = self.known_outcome(&hash) {
            return known;
        }
        // An orphan's target is all the work it is known to carry, and it is a header
        // field: refuse a too-easy one before hashing its transactions.
        let parent = &block.header.previous;
        if !self.index.contains_key(parent) && !self.held.contains(parent) {
            self.check_orphan_target(&block)
                .map_err(|error| invalid(hash, error))?;
        }
        check_context_free(&self.params, &block, &hash).map_err(|error| invalid(hash, error))?;
        self.accept_inner(hash, block, false, now_ms)
    }

    /// Accepts a block that [`check_block`] already checked (signatures included), so the
    /// node can check the next block of a sync on other threads while this one is applied
    /// and committed.
    pub fn accept_checked(
        &mut self,
        checked: CheckedBlock,
        now_ms: u64,
    ) -> Result<BlockOutcome, ChainError> {
        let CheckedBlock { block, hash } = checked;
        if block.header.network != self.params.network {
            // Checked against another network's parameters: check again here.
            return self.accept_block(block, now_ms);
        }
        if let Some(known) = self.known_outcome(&hash) {
            return known;
        }
        self.accept_inner(hash, block, true, now_ms)
    }

    fn known_outcome(&self, hash: &BlockHash) -> Option<Result<BlockOutcome, ChainError>> {
        if let Some(entry) = self.index.get(hash) {
            if entry.invalid {
                return Some(Err(invalid(*hash, BlockError::KnownInvalid(*hash))));
            }
            return Some(Ok(BlockOutcome::Duplicate));
        }
        if self.orphans.contains_key(hash) || self.held.contains(hash) {
            return Some(Ok(BlockOutcome::Duplicate));
        }
        if self.rejected.contains(hash) {
            return Some(Err(invalid(*hash, BlockError::KnownInvalid(*hash))));
        }
        None
    }

    fn accept_inner(
        &mut self,
        hash: BlockHash,
        block: Block,
        signatures_checked: bool,
        now_ms: u64,
    ) -> Result<BlockOutcome, ChainError> {
        let parent = block.header.previous;
        match self.index.get(&parent) {
            None if self.held.contains(&parent) => {}
            None => {
                if self.rejected.contains(&parent) {
                    self.remember_rejected(hash);
                    return Err(invalid(hash, BlockError::InvalidAncestor(parent)));
                }
                // Not remembered as rejected: the same block may be worth holding once we
                // have caught up with the sender's chain.
                self.check_orphan_target(&block)
                    .map_err(|error| invalid(hash, error))?;
                debug!(%hash, %parent, "orphan block held");
                self.hold_orphan(hash, block, signatures_checked);
                return Ok(BlockOutcome::Orphan {
                    missing_parent: parent,
                });
            }
            Some(entry) if entry.invalid => {
                self.remember_rejected(hash);
                return Err(invalid(hash, BlockError::InvalidAncestor(parent)));
            }
            Some(_) => {}
        }
        let height = block.header.height;
        let tip_change = self.accept_with_parent(hash, block, signatures_checked, now_ms)?;
        let (adopted, more) = self.adopt_orphans(hash, now_ms)?;
        let tip_change = match (tip_change, more) {
            (Some(a), Some(b)) => Some(a.then(b)),
            (a, b) => a.or(b),
        };
        // Held, unless orphans that it let in carried its branch past the margin.
        if !self.index.contains_key(&hash) {
            if self.held.contains(&hash) {
                return Ok(BlockOutcome::Held { height });
            }
            // An adopted orphan's branch caught up and a signature check condemned this
            // block or an ancestor of it.
            if self.rejected.contains(&hash) {
                return Err(invalid(hash, BlockError::KnownInvalid(hash)));
            }
            return Err(invalid(hash, BlockError::HeldPoolFull));
        }
        Ok(BlockOutcome::Stored {
            height,
            tip_change,
            adopted_orphans: adopted,
        })
    }

    /// Refuses an orphan whose header's target is easier than
    /// [`ChainConfig::orphan_target_multiple`] times the next target on our tip: its
    /// parent is unknown, so that target is all the work it is known to carry.
    fn check_orphan_target(&self, block: &Block) -> Result<(), BlockError> {
        let limit = self
            .next_target()
            .mul_div(self.config.orphan_target_multiple, 1)
            .unwrap_or(U256::MAX);
        if block.header.target > limit {
            return Err(BlockError::OrphanTargetTooEasy {
                limit,
                got: block.header.target,
            });
        }
        Ok(())
    }

    /// Decodes and accepts a block's canonical bytes (peers send these).
    pub fn accept_block_bytes(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<BlockOutcome, ChainError> {
        let block = decode_block(&self.params, bytes)?;
        self.accept_block(block, now_ms)
    }

    /// Header rules against the parent (stored or held), then places the block: a branch
    /// far behind the tip is held in memory without any signature check; otherwise every
    /// signature of the block and of its held ancestors is checked (unless already), and
    /// they are stored together, moving the tip if the branch now leads. Returns the tip
    /// change, if any; the block is in the index exactly when it was stored.
    fn accept_with_parent(
        &mut self,
        hash: BlockHash,
        block: Block,
        signatures_checked: bool,
        now_ms: u64,
    ) -> Result<Option<TipChange>, ChainError> {
        if let Err(error) = self.check_against_parent(&block, now_ms) {
            // Past the merkle check the hash pins the whole block, so remember it (unless
            // it may become valid later).
            if error.is_peer_fault() {
                self.remember_rejected(hash);
            }
            return Err(invalid(hash, error));
        }
        let parent = block.header.previous;
        let parent_work = self.known_work(&parent).unwrap_or_default();
        let block_work = parent_work.saturating_add(&work(&block.header.target));
        if block_work < self.store_threshold() {
            let height = block.header.height;
            // Its held ancestors are never evicted for it; if it would have to go itself,
            // it is refused (not remembered: it may fit later) and its branch stays held.
            let Some(evicted) = self
                .held
                .insert(hash, block, block_work, signatures_checked)
            else {
                debug!(%hash, height, "held pool full; low-work side-branch block refused");
                return Err(invalid(hash, BlockError::HeldPoolFull));
            };
            debug!(%hash, height, "low-work side-branch block held");
            if !evicted.is_empty() {
                debug!(count = evicted.len(), "held blocks evicted");
            }
            return Ok(None);
        }

        // The held ancestors, oldest first, then the block: all are stored together.
        let mut branch = Vec::new();
        let mut current = parent;
        while let Some(held) = self.held.get(&current) {
            branch.push((current, held.signatures_checked));
            current = held.block.header.previous;
        }
        branch.reverse();
        // The held branch hangs from a stored block; if that was found invalid since, the
        // branch is invalid too.
        if self.index.get(&current).is_some_and(|e| e.invalid) {
            let base = branch.first().map_or(hash, |(h, _)| *h);
            for dropped in self.held.remove_with_descendants(&base) {
                self.remember_rejected(dropped);
            }
            self.remember_rejected(hash);
            return Err(invalid(hash, BlockError::InvalidAncestor(current)));
        }
        for (ancestor, checked) in &branch {
            if *checked {
                continue;
            }
            let result = match self.held.get(ancestor) {
                Some(held) => check_signatures(&self.params, &self.keys, &held.block),
                None => Ok(()),
            };
            match result {
                Ok(()) => self.held.mark_checked(ancestor),
                Err(error) => {
                    warn!(hash = %ancestor, %error, "held block failed when its branch caught up");
                    for dropped in self.held.remove_with_descendants(ancestor) {
                        self.remember_rejected(dropped);
                    }
                    self.remember_rejected(hash);
                    return Err(invalid(*ancestor, error));
                }
            }
        }
        if !signatures_checked
            && let Err(error) = check_signatures(&self.params, &self.keys, &block)
        {
            self.remember_rejected(hash);
            return Err(invalid(hash, error));
        }
        let mut fresh = Vec::with_capacity(branch.len() + 1);
        for (ancestor, _) in &branch {
            if let Some(held) = self.held.remove(ancestor) {
                self.insert_entry(*ancestor, held.block.header, held.work);
                fresh.push(held.block);
            }
        }
        self.insert_entry(hash, block.header, block_work);
        fresh.push(block);

        if block_work <= self.tip().work {
            let batch = WriteBatch {
                blocks: fresh
                    .iter()
                    .map(|b| (b.hash(), b.header, b.encode()))
                    .collect(),
                ..WriteBatch::default()
            };
            if let Err(e) = self.store.commit(&batch) {
                for b in fresh.iter().rev() {
                    self.forget(&b.hash());
                }
                return Err(e.into());
            }
            debug!(%hash, blocks = fresh.len(), "side-branch block stored");
            return Ok(None);
        }
        self.activate(hash, fresh)
    }

    fn insert_entry(&mut self, hash: BlockHash, header: BlockHeader, work: U256) {
        self.index.insert(
            hash,
            Entry {
                header,
                work,
                invalid: false,
            },
        );
        self.children.entry(header.previous).or_default().push(hash);
    }

    /// The least cumulative work a side branch needs to be stored: what the main chain had
    /// [`ChainConfig::store_margin`] blocks below the tip.
    fn store_threshold(&self) -> U256 {
        let height = self.height().saturating_sub(self.config.store_margin);
        self.hash_at(height)
            .and_then(|hash| self.index.get(&hash))
            .map(|e| e.work)
            .unwrap_or_default()
    }

    /// The header of a stored or held block.
    fn known_header(&self, hash: &BlockHash) -> Option<&BlockHeader> {
        match self.index.get(hash) {
            Some(entry) => Some(&entry.header),
            None => self.held.header(hash),
        }
    }

    /// The cumulative work of a stored or held block.
    fn known_work(&self, hash: &BlockHash) -> Option<U256> {
        match self.index.get(hash) {
            Some(entry) => Some(entry.work),
            None => self.held.get(hash).map(|held| held.work),
        }
    }

    /// The held ancestors of `block` whose signatures are not verified yet, oldest first:
    /// what accepting `block` would otherwise verify while the caller holds the chain (up
    /// to a whole held branch, when `block` lets it catch up). A node verifies them first
    /// on other threads with [`check_block`] and hands them to
    /// [`Chain::note_checked_held`], so the chain's lock is held only to apply and commit.
    pub fn unchecked_held_ancestors(&self, block: &Block) -> Vec<Block> {
        let mut out = Vec::new();
        let mut current = block.header.previous;
        while let Some(held) = self.held.get(&current) {
            if !held.signatures_checked {
                out.push(held.block.clone());
            }
            current = held.block.header.previous;
        }
        out.reverse();
        out
    }

    /// Records that held blocks' signatures were verified ([`check_block`]: the hash pins
    /// the bytes, network included); blocks no longer held are ignored.
    pub fn note_checked_held(&mut self, checked: &[CheckedBlock]) {
        for block in checked {
            if self.held.contains(&block.hash) {
                self.held.mark_checked(&block.hash);
            }
        }
    }

    /// Whether `block` is worth verifying the signatures of before [`Chain::accept_checked`]:
    /// its parent is known and valid, its header passes the rules against the parent
    /// (height, expected target, timestamps), and its branch has enough work to be stored.
    /// Those rules are what make a block cost work (the header's own target is the sender's
    /// choice), so a node checks them before it spends a signature check per transaction.
    /// Blocks that do not fit go to [`Chain::accept_block`], which refuses them, or holds
    /// them (orphans, low-work side branches), before any signature check (a held block's
    /// signatures are checked when its parent arrives or its branch catches up).
    pub fn fits_parent(&self, block: &Block, now_ms: u64) -> bool {
        let parent = &block.header.previous;
        let parent_valid = match self.index.get(parent) {
            Some(entry) => !entry.invalid,
            None => self.held.contains(parent),
        };
        parent_valid
            && self.check_against_parent(block, now_ms).is_ok()
            && self
                .known_work(parent)
                .unwrap_or_default()
                .saturating_add(&work(&block.header.target))
                >= self.store_threshold()
    }

    fn check_against_parent(&self, block: &Block, now_ms: u64) -> Result<(), BlockError> {
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
    fn expected_target(&self, parent: &BlockHash) -> U256 {
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
    fn ancestor(&self, hash: &BlockHash, height: u64) -> Option<&BlockHeader> {
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

    fn median_time_past(&self, parent: &BlockHash) -> u64 {
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

    /// Makes `candidate` (just added to the index, with its not yet stored ancestors and
    /// itself in `fresh`, oldest first) the tip: undo the main chain down to the fork
    /// point, apply the candidate's branch, all in an overlay, then commit everything, the
    /// fresh blocks included, in one write transaction. If a block of the branch breaks a
    /// rule, it and its descendants are marked invalid (the fresh blocks before it are
    /// stored as side-branch blocks) and the tip stays (or moves to the best valid block
    /// left, if that has more work).
    fn activate(
        &mut self,
        candidate: BlockHash,
        fresh: Vec<Block>,
    ) -> Result<Option<TipChange>, ChainError> {
        match self.try_reorganise(candidate, &fresh) {
            Ok(change) => Ok(Some(change)),
            Err(Failure::Store(e)) => {
                for block in fresh.iter().rev() {
                    self.forget(&block.hash());
                }
                Err(e.into())
            }
            Err(Failure::Invalid { hash, error }) => {
                warn!(%hash, %error, "block failed when connected");
                if let Err(e) = self.mark_invalid(hash, &fresh) {
                    // Nothing was written: the fresh blocks were never stored, so they
                    // leave the index as after any failed commit.
                    for block in fresh.iter().rev() {
                        self.forget(&block.hash());
                    }
                    return Err(e.into());
                }
                // Fall back to the best valid block, if it beats the tip.
                let mut extra = None;
                while let Some(best) = self.best_valid_candidate() {
                    match self.try_reorganise(best, &[]) {
                        Ok(change) => {
                            extra = Some(change);
                            break;
                        }
                        Err(Failure::Invalid { hash, error }) => {
                            warn!(%hash, %error, "block failed when connected");
                            self.mark_invalid(hash, &[])?;
                        }
                        Err(Failure::Store(e)) => return Err(e.into()),
                    }
                }
                if let Some(change) = extra {
                    info!(tip = %change.new_tip, height = change.height, "tip moved to the best valid block");
                }
                Err(invalid(hash, error))
            }
        }
    }

    /// The valid block with the most work, if it has more than the tip.
    fn best_valid_candidate(&self) -> Option<BlockHash> {
        let tip_work = self.tip().work;
        self.index
            .iter()
            .filter(|(_, e)| !e.invalid && e.work > tip_work)
            .max_by(|a, b| a.1.work.cmp(&b.1.work).then_with(|| b.0.cmp(a.0)))
            .map(|(hash, _)| *hash)
    }

    fn try_reorganise(
        &mut self,
        candidate: BlockHash,
        fresh: &[Block],
    ) -> Result<TipChange, Failure> {
        let fresh: HashMap<BlockHash, &Block> = fresh.iter().map(|b| (b.hash(), b)).collect();
        // The branch from the fork point up to the candidate.
        let mut branch = Vec::new();
        let mut current = candidate;
        while !self.is_on_main_chain(&current) {
            let Some(entry) = self.index.get(&current) else {
                return Err(Failure::Store(StoreError::Corrupt {
                    table: "headers",
                    detail: format!("block {current} has no stored ancestry"),
                }));
            };
            branch.push(current);
            current = entry.header.previous;
        }
        branch.reverse();
        let fork_height = self
            .index
            .get(&current)
            .map(|e| e.header.height)
            .unwrap_or(0);
        let old_tip = self.tip_hash();
        let old_height = self.height();

        let mut overlay = Overlay::new(&self.accounts);
        let mut batch = WriteBatch::default();
        let mut disconnected = Vec::new();
        let mut returned = Vec::new();
        for height in (fork_height + 1..=old_height).rev() {
            let Some(hash) = self.hash_at(height) else {
                break;
            };
            let undo = self
                .store
                .undo(&hash)
                .map_err(Failure::Store)?
                .ok_or_else(|| missing("undo", &hash))?;
            let block = self
                .store
                .block(&hash)
                .map_err(Failure::Store)?
                .ok_or_else(|| missing("blocks", &hash))?;
            overlay.undo_block(&undo);
            returned.extend(block.transactions);
            disconnected.push(hash);
        }

        let mut connected = Vec::with_capacity(branch.len());
        for hash in &branch {
            let stored;
            let is_fresh = fresh.contains_key(hash);
            let block = match fresh.get(hash) {
                Some(b) => *b,
                None => {
                    stored = self
                        .store
                        .block(hash)
                        .map_err(Failure::Store)?
                        .ok_or_else(|| missing("blocks", hash))?;
                    &stored
                }
            };
            let undo: Undo = overlay
                .apply_block(block)
                .map_err(|error| Failure::Invalid { hash: *hash, error })?;
            let height = block.header.height;
            batch.undo.push((*hash, undo.encode()));
            batch.main_set.push((height, *hash));
            if is_fresh {
                batch.blocks.push((*hash, block.header, block.encode()));
            }
            connected.push((*hash, height, block.transactions.clone()));
        }
        let changes = overlay.into_changes();
        batch.accounts = changes;
        batch.main_truncate_above = Some(fork_height);
        batch.tip = Some(candidate);
        self.store.commit(&batch).map_err(Failure::Store)?;

        // Committed: now bring memory in line.
        // Every account whose confirmed state moved (senders, recipients, miners, on either
        // branch): its pending transactions are checked again against the new tip.
        let mut touched: HashSet<AccountId> = batch.accounts.keys().copied().collect();
        merge(&mut self.accounts, std::mem::take(&mut batch.accounts));
        self.main.truncate(fork_height as usize + 1);
        self.main.extend(branch.iter().copied());
        for tx in &returned {
            self.mempool.insert_returned(*tx);
            touched.insert(tx.signer());
        }
        self.recent.truncate_above(fork_height);
        for (_, height, txs) in &connected {
            touched.extend(txs.iter().map(Transaction::signer));
            self.recent.push(*height, txs);
        }
        for account in &touched {
            let state = self.account(account);
            self.mempool.revalidate(account, state);
        }
        let returned_to_mempool = returned
            .iter()
            .filter(|tx| {
                tx.transfer()
                    .is_some_and(|t| self.mempool.get(&t.sender, t.sequence) == Some(tx))
            })
            .count();
        let change = TipChange {
            old_tip,
            new_tip: candidate,
            height: self.height(),
            disconnected,
            connected: connected.into_iter().map(|(h, _, _)| h).collect(),
            returned_to_mempool,
        };
        if change.is_reorg() {
            info!(
                from = %old_tip,
                to = %candidate,
                fork_height,
                undone = change.disconnected.len(),
                applied = change.connected.len(),
                returned = returned_to_mempool,
                "reorganised"
            );
        } else {
            debug!(tip = %candidate, height = change.height, "tip extended");
        }
        Ok(change)
    }

    /// Marks `hash` and every known descendant invalid, durably, in one commit with the
    /// blocks of `fresh` (indexed, not yet stored) that stay valid, stored as side-branch
    /// blocks: every indexed block must be on disk. Memory changes only once the commit
    /// succeeded; if it fails, no flag is set and the caller forgets `fresh`.
    fn mark_invalid(&mut self, hash: BlockHash, fresh: &[Block]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let mut condemned = HashSet::new();
        let mut stack = vec![hash];
        while let Some(h) = stack.pop() {
            if let Some(entry) = self.index.get(&h)
                && condemned.insert(h)
            {
                batch.invalid.push((h, entry.header));
            }
            if let Some(kids) = self.children.get(&h) {
                stack.extend(kids.iter().copied());
            }
        }
        for block in fresh {
            let h = block.hash();
            if !condemned.contains(&h) {
                batch.blocks.push((h, block.header, block.encode()));
            }
        }
        self.store.commit(&batch)?;
        for h in &condemned {
            if let Some(entry) = self.index.get_mut(h) {
                entry.invalid = true;
            }
        }
        Ok(())
    }

    /// Drops a block from the index (its commit failed).
    fn forget(&mut self, hash: &BlockHash) {
        if let Some(entry) = self.index.remove(hash)
            && let Some(kids) = self.children.get_mut(&entry.header.previous)
        {
            kids.retain(|k| k != hash);
        }
    }

    fn remember_rejected(&mut self, hash: BlockHash) {
        if self.rejected.len() >= MAX_REJECTED {
            self.rejected.clear();
        }
        self.rejected.insert(hash);
    }

    // ----- orphans --------------------------------------------------------------------

    fn hold_orphan(&mut self, hash: BlockHash, block: Block, signatures_checked: bool) {
        let size = block.encoded_len();
        while !self.orphan_order.is_empty()
            && (self.orphans.len() >= self.config.max_orphans
                || self.orphan_bytes.saturating_add(size) > self.config.max_orphan_bytes)
        {
            if let Some(oldest) = self.orphan_order.pop_front() {
                self.drop_orphan(&oldest);
            }
        }
        if self.config.max_orphans == 0 || size > self.config.max_orphan_bytes {
            return;
        }
        self.orphans_by_parent
            .entry(block.header.previous)
            .or_default()
            .push(hash);
        self.orphan_order.push_back(hash);
        self.orphan_bytes += size;
        self.orphans.insert(hash, (block, signatures_checked));
    }

    fn drop_orphan(&mut self, hash: &BlockHash) -> Option<(Block, bool)> {
        let (block, checked) = self.orphans.remove(hash)?;
        self.orphan_bytes = self.orphan_bytes.saturating_sub(block.encoded_len());
        if let Some(siblings) = self.orphans_by_parent.get_mut(&block.header.previous) {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.orphans_by_parent.remove(&block.header.previous);
            }
        }
        self.orphan_order.retain(|h| h != hash);
        Some((block, checked))
    }

    /// Connects held orphans descending from `parent`, breadth first. Orphans whose parent
    /// is no longer known (a low-work block that the held pool evicted since, for a
    /// heavier one) stay in the orphan pool, waiting for it again: a missing parent is no
    /// fault of theirs. Only a parent found invalid condemns them. A store failure is
    /// passed up (the node must stop), not taken for the orphan's fault.
    fn adopt_orphans(
        &mut self,
        parent: BlockHash,
        now_ms: u64,
    ) -> Result<(Vec<BlockHash>, Option<TipChange>), ChainError> {
        let mut adopted = Vec::new();
        let mut change: Option<TipChange> = None;
        let mut queue = VecDeque::from([parent]);
        while let Some(parent) = queue.pop_front() {
            let kids = self
                .orphans_by_parent
                .get(&parent)
                .cloned()
                .unwrap_or_default();
            for hash in kids {
                // Checked before each child: adopting one may evict or condemn the parent.
                if !self.index.contains_key(&parent) && !self.held.contains(&parent) {
                    if self.rejected.contains(&parent) {
                        self.drop_orphan(&hash);
                        self.remember_rejected(hash);
                        self.drop_orphan_descendants(hash, true);
                        continue;
                    }
                    break;
                }
                let Some((block, checked)) = self.drop_orphan(&hash) else {
                    continue;
                };
                match self.accept_with_parent(hash, block, checked, now_ms) {
                    Ok(next) => {
                        // Held blocks (low-work branch) are not connected, but orphans
                        // may still extend them.
                        if self.index.contains_key(&hash) {
                            adopted.push(hash);
                        }
                        queue.push_back(hash);
                        change = match (change, next) {
                            (Some(a), Some(b)) => Some(a.then(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    Err(ChainError::Store(error)) => return Err(ChainError::Store(error)),
                    Err(error) => {
                        warn!(%hash, %error, "held orphan rejected");
                        let condemned = error.block_error().is_some_and(BlockError::is_peer_fault);
                        self.drop_orphan_descendants(hash, condemned);
                    }
                }
            }
        }
        Ok((adopted, change))
    }

    /// Drops the held descendants of a block that failed; `condemned` remembers them as
    /// invalid (not when the failure may pass later, like a timestamp ahead of our clock).
    fn drop_orphan_descendants(&mut self, hash: BlockHash, condemned: bool) {
        let mut stack = vec![hash];
        while let Some(parent) = stack.pop() {
            for kid in self.orphans_by_parent.remove(&parent).unwrap_or_default() {
                self.drop_orphan(&kid);
                if condemned {
                    self.remember_rejected(kid);
                }
                stack.push(kid);
            }
        }
    }
}

enum Failure {
    Invalid { hash: BlockHash, error: BlockError },
    Store(StoreError),
}

fn missing(table: &'static str, hash: &BlockHash) -> Failure {
    Failure::Store(StoreError::Corrupt {
        table,
        detail: format!("no record for main-chain block {hash}"),
    })
}

fn invalid(hash: BlockHash, error: BlockError) -> ChainError {
    ChainError::Invalid { hash, error }
}

/// Rules that need neither the parent nor the accounts. Cheap ones first: proof of
/// work before anything that costs us more than one hash.
fn check_context_free(
    params: &ChainParams,
    block: &Block,
    hash: &BlockHash,
) -> Result<(), BlockError> {
    let header = &block.header;
    if header.version != HEADER_VERSION {
        return Err(BlockError::Version(header.version));
    }
    if header.network != params.network {
        return Err(BlockError::WrongNetwork {
            got: header.network.0,
        });
    }
    if U256::from_be_bytes(hash.as_bytes()) > header.target || header.target > params.pow_limit {
        return Err(BlockError::InsufficientWork {
            hash: *hash,
            target: header.target,
        });
    }
    let count = block.transactions.len();
    if count > params.max_block_transactions as usize {
        return Err(BlockError::TooManyTransactions {
            count,
            max: params.max_block_transactions,
        });
    }
    let bytes = block.encoded_len();
    if bytes > params.max_block_bytes as usize {
        return Err(BlockError::TooLarge {
            bytes,
            max: params.max_block_bytes,
        });
    }
    if block.coinbase.height != header.height {
        return Err(BlockError::CoinbaseHeight {
            expected: header.height,
            got: block.coinbase.height,
        });
    }
    if block.coinbase.amount != params.block_reward {
        return Err(BlockError::CoinbaseAmount {
            expected: params.block_reward,
            got: block.coinbase.amount,
        });
    }
    for (index, tx) in block.transactions.iter().enumerate() {
        match tx.transfer() {
            None => {
                return Err(BlockError::NotATransfer {
                    index,
                    kind: tx.order.kind_name(),
                });
            }
            Some(t) if t.amount.is_zero() => return Err(BlockError::ZeroAmount { index }),
            Some(_) => {}
        }
    }
    let expected = merkle_root(leaf_ids(block));
    if expected != header.merkle_root {
        return Err(BlockError::BadMerkleRoot {
            expected,
            got: header.merkle_root,
        });
    }
    Ok(())
}

/// A block that passed every rule needing neither its parent nor the accounts: proof of
/// work against its own target, sizes, coinbase, merkle root, and every signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedBlock {
    block: Block,
    hash: BlockHash,
}

impl CheckedBlock {
    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// Its hash.
    pub fn hash(&self) -> BlockHash {
        self.hash
    }

    /// The block back.
    pub fn into_block(self) -> Block {
        self.block
    }
}

/// Checks what can be checked without the chain, signatures included (the expensive part,
/// batched and spread over all cores). It needs no `&Chain`, so a node can run it for the
/// next block while [`Chain::accept_checked`] applies the previous one.
pub fn check_block(
    params: &ChainParams,
    keys: &KeyCache,
    block: Block,
) -> Result<CheckedBlock, ChainError> {
    let hash = block.hash();
    check_context_free(params, &block, &hash).map_err(|error| invalid(hash, error))?;
    check_signatures(params, keys, &block).map_err(|error| invalid(hash, error))?;
    Ok(CheckedBlock { block, hash })
}

/// Transactions whose signatures were verified for one network, by [`check_transactions`]:
/// what [`Chain::submit_checked`] takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedTransactions {
    network: tally_core::NetworkId,
    txs: Vec<Transaction>,
    valid: Vec<bool>,
}

impl CheckedTransactions {
    /// The transactions, in the order given.
    pub fn transactions(&self) -> &[Transaction] {
        &self.txs
    }
}

/// Verifies the signatures of `txs` (batched, on all cores) without the chain, so a node
/// can do the expensive part before it locks the chain for [`Chain::submit_checked`].
pub fn check_transactions(
    params: &ChainParams,
    keys: &KeyCache,
    txs: Vec<Transaction>,
) -> CheckedTransactions {
    let valid = verify_signatures(params, keys, &txs);
    CheckedTransactions {
        network: params.network,
        txs,
        valid,
    }
}

/// Decodes a block's bytes, refusing more bytes or transactions than a block may hold
/// before parsing them.
pub fn decode_block(params: &ChainParams, bytes: &[u8]) -> Result<Block, ChainError> {
    if bytes.len() > params.max_block_bytes as usize {
        return Err(invalid(
            Digest::default(),
            BlockError::TooLarge {
                bytes: bytes.len(),
                max: params.max_block_bytes,
            },
        ));
    }
    let max = params.max_block_transactions;
    Block::decode_limited(bytes, max as usize).map_err(|error| {
        let error = match error {
            DecodeError::TooMany { count, .. } => BlockError::TooManyTransactions {
                count: usize::try_from(count).unwrap_or(usize::MAX),
                max,
            },
            other => other.into(),
        };
        invalid(Digest::default(), error)
    })
}

fn check_signatures(
    params: &ChainParams,
    keys: &KeyCache,
    block: &Block,
) -> Result<(), BlockError> {
    match verify_signatures(params, keys, &block.transactions)
        .iter()
        .position(|ok| !ok)
    {
        Some(index) => Err(BlockError::BadSignature { index }),
        None => Ok(()),
    }
}

/// The merkle leaves of a block, transaction ids hashed in parallel.
fn leaf_ids(block: &Block) -> Vec<Digest> {
    let mut leaves = Vec::with_capacity(block.transactions.len() + 1);
    leaves.push(block.coinbase.id());
    let ids: Vec<Digest> = block.transactions.par_iter().map(Transaction::id).collect();
    leaves.extend(ids);
    leaves
}

/// Checks every transaction's signature: batches spread over all cores. `result[i]`
/// tells whether `txs[i]` is signed by its sender for this network.
pub fn verify_signatures(params: &ChainParams, keys: &KeyCache, txs: &[Transaction]) -> Vec<bool> {
    if txs.is_empty() {
        return Vec::new();
    }
    // A few chunks per thread, so that a thread the OS delays does not hold up the block
    // (work stealing evens them out); chunks stay large enough to batch well.
    let threads = rayon::current_num_threads().max(1);
    let chunk = txs.len().div_ceil(4 * threads).max(256);
    txs.par_chunks(chunk)
        .flat_map_iter(|chunk| crate::sigverify::verify_chunk(&params.network, keys, chunk))
        .collect()
}
