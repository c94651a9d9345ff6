//! Networks created without the CLI: the folders the daemons load, the genesis wallet that
//! holds the funded keys, the keys' proofs of work, and refusals that write nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tally_core::pow::check_intro_pow;
use tally_core::{Amount, Mode, NetworkContract};
use tally_network::{
    PowSpec, ProvisionError, ProvisionEvent, QuorumSpec, create_pow, create_quorum,
};
use tally_node::NodeConfig;
use tally_node::pow::MinerConfig;
use tally_wallet::Wallet;

fn quorum_spec(dir: &std::path::Path, tracker: Option<&str>) -> QuorumSpec {
    QuorumSpec {
        dir: dir.to_path_buf(),
        validators: 4,
        name: "test".into(),
        faucet: Amount::from_microcash(10_000_000),
        pow_bits: 6,
        base_port: 40_000,
        fund: 2,
        fund_amount: Amount::from_microcash(1_000_000_000),
        tracker: tracker.map(str::to_owned),
        clock_skew_ms: Some(1_000),
    }
}

fn pow_spec(dir: &std::path::Path) -> PowSpec {
    PowSpec {
        dir: dir.to_path_buf(),
        miners: 2,
        name: "test-pow".into(),
        block_time: Duration::from_secs(1),
        reward: Amount::from_microcash(50_000_000),
        initial_bits: 14,
        retarget_window: 10,
        max_block_transactions: 5_000,
        max_block_bytes: 1_000_000,
        pow_bits: 4,
        tracker: "127.0.0.1:9999".into(),
        base_port: 41_000,
        fund: 1,
        fund_amount: Amount::from_microcash(7_000_000),
    }
}

fn contract_at(path: &std::path::Path) -> NetworkContract {
    NetworkContract::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_quorum_network_has_loadable_validator_folders_and_a_funded_genesis_wallet() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let mut events = Vec::new();
    let created = create_quorum(&quorum_spec(&net, Some("127.0.0.1:9999")), &mut |e| {
        events.push(e)
    })
    .unwrap();
    assert_eq!(contract_at(&created.contract_path), created.contract);
    assert_eq!(created.contract.mode, Mode::Quorum);
    assert_eq!(created.validator_dirs.len(), 4);
    for (i, folder) in created.validator_dirs.iter().enumerate() {
        let config = NodeConfig::load(folder).unwrap();
        assert_eq!(config.key.account(), created.contract.validators[i].key);
        assert_eq!(config.listen.port(), 40_000 + 2 * i as u16);
        assert_eq!(config.rpc.unwrap().port(), 40_001 + 2 * i as u16);
        // The key's proof of work, found now, is what the tracker will check.
        let files: tally_node::NodeFiles = serde_json::from_str(
            &std::fs::read_to_string(folder.join(tally_node::NodeFiles::CONFIG)).unwrap(),
        )
        .unwrap();
        assert!(check_intro_pow(
            &config.key.account(),
            files.key_pow.unwrap(),
            6
        ));
    }
    // One search per validator key, each reported as it starts and ends.
    assert_eq!(events.len(), 8);
    assert!(matches!(
        events[0],
        ProvisionEvent::SearchingKeyProof { bits: 6, .. }
    ));
    let wallet = Wallet::open(&created.genesis_wallet.unwrap()).unwrap();
    let labels: Vec<_> = wallet.keys().iter().map(|k| k.label.clone()).collect();
    assert_eq!(
        labels,
        [Some("genesis-0".to_owned()), Some("genesis-1".to_owned())]
    );
    for (key, allocation) in wallet.keys().iter().zip(&created.contract.genesis) {
        assert_eq!(key.account, allocation.account);
        assert_eq!(allocation.amount, Amount::from_microcash(1_000_000_000));
    }

    // The same folder again is refused, and nothing there changes.
    let before = std::fs::read(&created.contract_path).unwrap();
    assert!(matches!(
        create_quorum(&quorum_spec(&net, None), &mut |_| {}),
        Err(ProvisionError::Exists(_))
    ));
    assert_eq!(std::fs::read(&created.contract_path).unwrap(), before);
}

#[test]
fn without_a_tracker_no_key_proof_is_searched() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = quorum_spec(dir.path(), None);
    spec.fund = 0;
    let mut searched = false;
    let created = create_quorum(&spec, &mut |_| searched = true).unwrap();
    assert!(!searched);
    assert!(created.genesis_wallet.is_none());
    assert!(created.contract.genesis.is_empty());
    let files = std::fs::read_to_string(created.validator_dirs[0].join("node.json")).unwrap();
    assert!(!files.contains("key_pow"), "{files}");
}

#[test]
fn a_pow_network_has_loadable_miner_folders_with_their_key_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let created = create_pow(&pow_spec(dir.path())).unwrap();
    let contract = contract_at(&created.contract_path);
    assert_eq!(contract, created.contract);
    assert_eq!(contract.mode, Mode::Pow);
    let pow = contract.pow.unwrap();
    assert_eq!(
        (pow.block_time_ms, pow.initial_bits, pow.retarget_window),
        (1000, 14, 10)
    );
    assert_eq!(contract.tracker.as_deref(), Some("127.0.0.1:9999"));
    assert_eq!(created.miner_dirs.len(), 2);
    for (i, folder) in created.miner_dirs.iter().enumerate() {
        assert!(MinerConfig::is_miner_dir(folder));
        let config = MinerConfig::load(folder).unwrap();
        assert_eq!(config.listen.port(), 41_000 + 2 * i as u16);
        assert!(check_intro_pow(
            &config.key.account(),
            config.proof_of_work.unwrap(),
            4
        ));
    }
    assert_eq!(
        contract.genesis[0].amount,
        Amount::from_microcash(7_000_000)
    );
}

#[test]
fn refused_specs_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = pow_spec(&dir.path().join("fast"));
    spec.block_time = Duration::from_micros(500);
    let error = create_pow(&spec).unwrap_err();
    assert!(matches!(error, ProvisionError::BlockTimeTooShort(_)));
    assert!(error.to_string().contains("millisecond"), "{error}");
    assert!(!spec.dir.exists());

    let mut spec = pow_spec(&dir.path().join("ports"));
    spec.base_port = u16::MAX;
    assert!(matches!(
        create_pow(&spec),
        Err(ProvisionError::Ports { base: u16::MAX })
    ));
    assert!(!spec.dir.join("contract.json").exists());

    let mut spec = quorum_spec(&dir.path().join("empty"), None);
    spec.validators = 0;
    assert!(matches!(
        create_quorum(&spec, &mut |_| {}),
        Err(ProvisionError::Contract(_))
    ));
    assert!(!spec.dir.join("contract.json").exists());
}
