//! What the proof-of-work integration tests share: a test network's contract, a miner's
//! settings, signed transfers, blocks resealed after tampering, polling.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tally_chain::{Block, Chain, ChainConfig, Transaction, miner};
use tally_core::{
    AccountId, Allocation, Amount, Mode, NetworkContract, NetworkId, PowParams, SecretKey, Transfer,
};
use tally_node::pow::MinerConfig;
use tally_proto::pow::{HashBroadcast, PowPacket};

pub fn cash(n: u64) -> Amount {
    Amount::from_microcash(n * 1_000_000)
}

/// A `pow` network (registered at `tracker`, if any) where `funded` hold 100 cash each.
pub fn contract(bits: u32, tracker: Option<SocketAddr>, funded: &[AccountId]) -> NetworkContract {
    NetworkContract {
        name: "pow-test".into(),
        mode: Mode::Pow,
        unit: "cash".into(),
        faucet: Amount::ZERO,
        intro_pow_bits: 4,
        validators: vec![],
        tracker: tracker.map(|t| t.to_string()),
        genesis: funded
            .iter()
            .map(|account| Allocation {
                account: *account,
                amount: cash(100),
            })
            .collect(),
        pow: Some(PowParams {
            initial_bits: bits,
            block_time_ms: 1000,
            retarget_window: 0,
            block_reward: cash(50),
            max_block_transactions: 1000,
            max_block_bytes: 200_000,
        }),
        max_clock_skew_ms: None,
    }
}

/// A miner's settings for tests: one thread, short heartbeats and timeouts.
pub fn miner_config(contract: &NetworkContract, dir: &Path) -> MinerConfig {
    let mut config = MinerConfig::new(
        contract.clone(),
        SecretKey::generate(),
        "127.0.0.1:0".parse().unwrap(),
        dir.to_path_buf(),
    );
    config.threads = 1;
    config.heartbeat = Duration::from_millis(200);
    config.sync_timeout = Duration::from_secs(3);
    config.template_refresh = Duration::from_millis(50);
    config.tracker_client = tally_tracker::ClientConfig {
        answer_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_attempts: 3,
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..tally_tracker::ClientConfig::default()
    };
    config
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after `secs`.
pub async fn eventually(what: &str, secs: u64, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `from` pays `amount` to `to` at `seq`, signed for `net`.
pub fn transfer(
    from: &SecretKey,
    to: AccountId,
    amount: Amount,
    seq: u64,
    net: NetworkId,
) -> Transaction {
    Transaction::sign(
        Transfer {
            sender: from.account(),
            recipient: to,
            amount,
            sequence: seq,
        },
        from,
        &net,
    )
}

/// Mines `count` blocks into a fresh chain at `dir` (trivial difficulty: any hash).
pub fn pregenerate(contract: &NetworkContract, dir: &Path, count: u64) -> tally_chain::TipInfo {
    std::fs::create_dir_all(dir).unwrap();
    let mut chain = Chain::open(&dir.join("chain.redb"), contract, ChainConfig::default()).unwrap();
    let miner_account = SecretKey::generate().account();
    for _ in 0..count {
        let mut block = chain.block_template(miner_account, tally_node::pow::node::now_ms());
        block.header = miner::solve(&block.header).unwrap();
        chain
            .accept_block(block, tally_node::pow::node::now_ms())
            .unwrap();
    }
    chain.tip()
}

/// Gossip of one block.
pub fn broadcast(block: &Block) -> PowPacket {
    PowPacket::HashBroadcast(HashBroadcast {
        hash: block.hash(),
        block: block.clone(),
    })
}

/// A tampered block made valid again: new merkle root, new proof of work.
pub fn reseal(mut block: Block) -> Block {
    block.header.merkle_root = block.compute_merkle_root();
    block.header = miner::solve(&block.header).unwrap();
    block
}
