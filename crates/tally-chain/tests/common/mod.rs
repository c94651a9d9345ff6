//! Fixtures shared by the integration tests: a small network, keys, and block builders.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use redb::StorageBackend;
use redb::backends::FileBackend;
use tally_chain::block::HEADER_VERSION;
use tally_chain::{
    Block, BlockHash, BlockHeader, Chain, ChainConfig, ChainParams, ChainStore, Coinbase,
    Transaction, U256, merkle_root, miner,
};
use tally_core::{
    AccountId, Allocation, Amount, Digest, Mode, NetworkContract, NetworkId, Order, Payment,
    PowParams, SecretKey, Split, Transfer,
};

pub const CASH: u64 = 1_000_000;
pub const REWARD: u64 = 50 * CASH;
/// Block timestamps in tests start here (ms) and step by a second.
pub const T0: u64 = 1_700_000_000_000;
/// "Now" for tests: well after every test block.
pub const NOW: u64 = T0 + 10_000_000;

pub fn key(n: u8) -> SecretKey {
    SecretKey::from_bytes([n; 32])
}

pub fn alice() -> SecretKey {
    key(0xa1)
}
pub fn bob() -> SecretKey {
    key(0xb0)
}
pub fn carol() -> SecretKey {
    key(0xc0)
}
pub fn miner_account() -> AccountId {
    key(0x33).account()
}

/// A network with 4-bit difficulty (a block takes ~16 hashes), no retargeting unless
/// `window` says, alice funded with 100 cash and bob with 50.
pub fn contract_with(bits: u32, window: u64, max_tx: u32) -> NetworkContract {
    NetworkContract {
        name: "chain-tests".into(),
        mode: Mode::Pow,
        unit: "cash".into(),
        faucet: Amount::ZERO,
        intro_pow_bits: 0,
        validators: vec![],
        tracker: None,
        genesis: vec![
            Allocation {
                account: alice().account(),
                amount: Amount::from_microcash(100 * CASH),
            },
            Allocation {
                account: bob().account(),
                amount: Amount::from_microcash(50 * CASH),
            },
        ],
        pow: Some(PowParams {
            initial_bits: bits,
            block_time_ms: 1000,
            retarget_window: window,
            block_reward: Amount::from_microcash(REWARD),
            max_block_transactions: max_tx,
            max_block_bytes: 100_000,
        }),
        max_clock_skew_ms: None,
    }
}

pub fn contract() -> NetworkContract {
    contract_with(4, 1_000_000, 100)
}

pub fn chain() -> Chain {
    Chain::in_memory(&contract(), ChainConfig::default()).unwrap()
}

pub fn params() -> ChainParams {
    ChainParams::from_contract(&contract()).unwrap()
}

pub fn transfer(from: &SecretKey, to: &SecretKey, cash: u64, sequence: u64) -> Transaction {
    transfer_micro(from, to.account(), cash * CASH, sequence)
}

/// Changes a transfer's amount without signing it again: a forgery.
pub fn forge_amount(tx: &mut Transaction, micro: u64) {
    if let Order::Transfer(t) = &mut tx.order {
        t.amount = Amount::from_microcash(micro);
    }
}

pub fn transfer_micro(from: &SecretKey, to: AccountId, micro: u64, sequence: u64) -> Transaction {
    sign_transfer(&params().network, from, to, micro, sequence)
}

/// A signed split from `from` at `sequence`, paying each `(recipient, microcash)` (not
/// checked: tests build malformed ones too).
pub fn split_micro(from: &SecretKey, outputs: &[(AccountId, u64)], sequence: u64) -> Transaction {
    sign_split(&params().network, from, outputs, sequence)
}

/// A signed transfer of `micro` on `network` (not checked: tests build malformed ones too).
pub fn sign_transfer(
    network: &NetworkId,
    from: &SecretKey,
    to: AccountId,
    micro: u64,
    sequence: u64,
) -> Transaction {
    Transaction::sign(
        Transfer {
            sender: from.account(),
            recipient: to,
            amount: Amount::from_microcash(micro),
            sequence,
        },
        from,
        network,
    )
}

/// A signed split on `network`, paying each `(recipient, microcash)` (not checked).
pub fn sign_split(
    network: &NetworkId,
    from: &SecretKey,
    outputs: &[(AccountId, u64)],
    sequence: u64,
) -> Transaction {
    Transaction::sign(
        Order::Split(Split {
            sender: from.account(),
            sequence,
            outputs: outputs
                .iter()
                .map(|&(recipient, micro)| Payment {
                    recipient,
                    amount: Amount::from_microcash(micro),
                })
                .collect(),
        }),
        from,
        network,
    )
}

/// Where a new block goes: its parent's hash and height.
#[derive(Clone, Copy, Debug)]
pub struct Parent {
    pub hash: BlockHash,
    pub height: u64,
}

pub fn genesis(params: &ChainParams) -> Parent {
    Parent {
        hash: params.genesis_hash,
        height: 0,
    }
}

pub fn parent_of(block: &Block) -> Parent {
    Parent {
        hash: block.hash(),
        height: block.header.height,
    }
}

/// An unmined block on `parent` with the initial target; call [`seal`] after editing.
pub fn draft(params: &ChainParams, parent: Parent, txs: Vec<Transaction>, salt: u64) -> Block {
    let height = parent.height + 1;
    Block {
        header: BlockHeader {
            version: HEADER_VERSION,
            network: params.network,
            height,
            previous: parent.hash,
            merkle_root: Digest::default(),
            timestamp_ms: T0 + 1000 * height + salt,
            target: params.initial_target,
            nonce: 0,
        },
        coinbase: Coinbase {
            miner: miner_account(),
            amount: params.block_reward,
            height,
        },
        transactions: txs,
    }
}

/// Recomputes the merkle root and mines the header.
pub fn seal(mut block: Block) -> Block {
    block.header.merkle_root = merkle_root(block.leaves());
    block.header = miner::solve(&block.header).unwrap();
    block
}

/// A valid, mined block on `parent`.
pub fn child(params: &ChainParams, parent: Parent, txs: Vec<Transaction>, salt: u64) -> Block {
    seal(draft(params, parent, txs, salt))
}

/// Mines the chain's own template at `NOW`-ish and accepts it.
pub fn mine_tip<S: ChainStore>(chain: &mut Chain<S>) -> Block {
    let ts = chain.tip().timestamp_ms.max(T0) + 1000;
    let mut block = chain.block_template(miner_account(), ts);
    block.header = miner::solve(&block.header).unwrap();
    chain.accept_block(block.clone(), NOW).unwrap();
    block
}

/// A header whose hash does not meet its target (for "insufficient work").
pub fn unmined(mut block: Block) -> Block {
    block.header.merkle_root = merkle_root(block.leaves());
    let target = block.header.target;
    for nonce in 0.. {
        block.header.nonce = nonce;
        if U256::from_be_bytes(block.hash().as_bytes()) > target {
            return block;
        }
    }
    block
}

/// A disk that dies after a given number of writes; the write it dies on is torn (half of
/// it reaches the file), like a power cut.
#[derive(Debug)]
pub struct CrashingDisk {
    pub inner: FileBackend,
    pub writes_left: Arc<AtomicI64>,
}

impl CrashingDisk {
    fn tick(&self) -> io::Result<()> {
        if self.writes_left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Err(io::Error::other("simulated crash"));
        }
        Ok(())
    }
}

impl StorageBackend for CrashingDisk {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.inner.read(offset, len)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.tick()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        self.tick()?;
        self.inner.sync_data(eventual)
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if let Err(e) = self.tick() {
            let _ = self.inner.write(offset, &data[..data.len() / 2]);
            return Err(e);
        }
        self.inner.write(offset, data)
    }
}

/// Replays the main chain's blocks into a fresh chain: the state a correct chain must have.
pub fn assert_consistent<S: ChainStore>(chain: &Chain<S>) {
    let mut fresh = Chain::in_memory(&contract(), ChainConfig::default()).unwrap();
    for height in 1..=chain.height() {
        let block = chain
            .block_at(height)
            .unwrap()
            .expect("main-chain block stored");
        fresh.accept_block(block, NOW).unwrap();
    }
    assert_eq!(fresh.tip(), chain.tip());
    assert_eq!(fresh.accounts(), chain.accounts());
    assert_eq!(fresh.escrows(), chain.escrows());
    assert_eq!(chain.supply(), chain.params().supply_at(chain.height()));
}

/// Two branches from genesis: `main` (three blocks, the tip), `side` (three blocks of
/// less work, stored), and `heavier`, a fourth side block that makes the side branch lead.
pub struct ReorgScenario {
    pub main: Vec<Block>,
    pub side: Vec<Block>,
    pub heavier: Block,
}

pub fn reorg_scenario() -> ReorgScenario {
    let p = params();
    let (a, b, c) = (alice(), bob(), carol());
    let a1 = child(&p, genesis(&p), vec![transfer(&a, &b, 10, 0)], 0);
    let a2 = child(&p, parent_of(&a1), vec![transfer(&b, &c, 20, 0)], 0);
    let a3 = child(&p, parent_of(&a2), vec![transfer(&a, &c, 1, 1)], 0);
    let b1 = child(&p, genesis(&p), vec![transfer(&b, &a, 5, 0)], 9);
    let b2 = child(&p, parent_of(&b1), vec![transfer(&a, &c, 30, 0)], 9);
    let b3 = child(&p, parent_of(&b2), vec![], 9);
    let b4 = child(&p, parent_of(&b3), vec![transfer(&c, &a, 2, 0)], 9);
    ReorgScenario {
        main: vec![a1, a2, a3],
        side: vec![b1, b2, b3],
        heavier: b4,
    }
}
