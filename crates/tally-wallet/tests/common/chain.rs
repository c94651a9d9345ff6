//! A proof-of-work network of one real miner (in-process, over TCP, its chain in files),
//! for the tests of coins and live transfers on a chain.

use std::path::Path;
use std::time::Duration;

use tally_core::{AccountId, Allocation, Amount, Mode, NetworkContract, PowParams, SecretKey};
use tally_node::pow::{MinerConfig, PowNode};
use tally_proto::pow::WireLimits;
use tally_wallet::chain::{Miners, Waiting};
use tally_wallet::coins::ChainCoins;

/// A network named `name` without a tracker, where `funded` holds `cash` whole cash at
/// genesis; blocks easy enough that one comes every few milliseconds.
pub fn contract(name: &str, funded: AccountId, cash: u64) -> NetworkContract {
    NetworkContract {
        name: name.into(),
        mode: Mode::Pow,
        unit: "cash".into(),
        faucet: Amount::ZERO,
        intro_pow_bits: 4,
        validators: vec![],
        tracker: None,
        genesis: vec![Allocation {
            account: funded,
            amount: Amount::from_cash(cash).unwrap(),
        }],
        pow: Some(PowParams {
            initial_bits: 12,
            block_time_ms: 1000,
            retarget_window: 0,
            block_reward: Amount::from_cash(50).unwrap(),
            max_block_transactions: 1000,
            max_block_bytes: 200_000,
        }),
        max_clock_skew_ms: None,
    }
}

/// One mining node for `contract`, its chain in `dir`.
pub async fn start_miner(contract: &NetworkContract, dir: &Path) -> PowNode {
    let mut config = MinerConfig::new(
        contract.clone(),
        SecretKey::generate(),
        "127.0.0.1:0".parse().unwrap(),
        dir.to_path_buf(),
    );
    config.mine = true;
    config.threads = 1;
    config.template_refresh = Duration::from_millis(50);
    PowNode::start(config).await.unwrap()
}

/// The coin network of `node`: a spend counts once buried under one block.
pub fn coins(contract: &NetworkContract, node: &PowNode) -> ChainCoins {
    ChainCoins {
        miners: Miners::at(
            contract.id(),
            vec![node.address().to_string()],
            WireLimits::default(),
        ),
        waiting: Waiting {
            confirmations: 1,
            patience: Duration::from_secs(60),
        },
    }
}
