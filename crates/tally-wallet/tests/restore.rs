//! Seeded wallets against real networks: four validators (real TCP on 127.0.0.1, real redb
//! files) and a real miner. A wallet made by `init` derives its accounts and coin keys from
//! its words; `restore` from the words into a fresh folder finds every account and coin key
//! the network knows, with its balance, and writes nothing when the words are wrong or the
//! network cannot be asked. Key-file wallets keep working beside them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{bound_listener, closed_addresses};
use tally_core::pow::IntroPowHasher;
use tally_core::{
    AccountId, Allocation, Amount, Mode, NetworkContract, PowParams, SecretKey, ValidatorInfo,
};
use tally_node::pow::{MinerConfig, PowNode};
use tally_node::server::NodeListeners;
use tally_node::{Node, NodeConfig};
use tally_proto::pow::WireLimits;
use tally_wallet::chain::{self, Miners, Waiting};
use tally_wallet::seed::{KeyCounters, KeyPurpose, SeedError, SeedFile, derive_key};
use tally_wallet::{GAP_LIMIT, QuorumClient, SeededError, Wallet, ops, views};

const BITS: u32 = 4;

fn cash(text: &str) -> Amount {
    text.parse().unwrap()
}

fn proof(account: &AccountId) -> u64 {
    IntroPowHasher::new(account)
        .search(0..u64::MAX, BITS)
        .unwrap()
}

/// A quorum network of four validators at `addresses` where `bank` holds 100 cash and an
/// introduced key receives 10.
fn quorum_contract(
    validators: &[SecretKey],
    addresses: &[SocketAddr],
    bank: &SecretKey,
) -> NetworkContract {
    NetworkContract {
        name: "restore".into(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: cash("10"),
        intro_pow_bits: BITS,
        validators: validators
            .iter()
            .zip(addresses)
            .map(|(key, address)| ValidatorInfo {
                key: key.account(),
                address: address.to_string(),
            })
            .collect(),
        tracker: None,
        genesis: vec![Allocation {
            account: bank.account(),
            amount: cash("100"),
        }],
        pow: None,
        max_clock_skew_ms: None,
    }
}

/// Four validators running in this process, and the contract they serve.
struct Net {
    contract: NetworkContract,
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Net {
    async fn start(bank: &SecretKey) -> Net {
        let keys: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
        // Every socket is bound before the contract is written, and each validator
        // serves on its own.
        let listeners: Vec<std::net::TcpListener> = (0..4).map(|_| bound_listener()).collect();
        let addresses: Vec<SocketAddr> =
            listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let contract = quorum_contract(&keys, &addresses, bank);
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let mut config = NodeConfig::new(
                contract.clone(),
                keys[i].clone(),
                addresses[i],
                dir.path().join(format!("validator-{i}")),
            );
            config.sync_interval = Duration::from_millis(200);
            config.idle_timeout = Duration::from_secs(5);
            let listeners = NodeListeners {
                node: Some(listener),
                rpc: None,
            };
            let node = Node::start_with_listeners(config, listeners).await;
            nodes.push(node.expect("validator started"));
        }
        Net {
            contract,
            nodes,
            _dir: dir,
        }
    }

    fn client(&self) -> QuorumClient {
        QuorumClient::new(self.contract.clone(), Duration::from_secs(3)).unwrap()
    }

    async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}

/// The error of an operation that must be refused.
fn refused<T>(result: Result<T, SeededError>) -> SeededError {
    match result {
        Ok(_) => panic!("expected a refusal"),
        Err(error) => error,
    }
}

/// The accounts a wallet folder lists in keys.json.
fn listed(dir: &Path) -> Vec<AccountId> {
    Wallet::open(dir)
        .unwrap()
        .keys()
        .iter()
        .map(|k| k.account)
        .collect()
}

/// Every account and coin key a seeded wallet used comes back from its words, with the
/// balance the validators report, including one that sent all it had (balance 0, sequence
/// 1) and ones past an index that was handed out and never used. Unused keys stay out of
/// keys.json, the counters continue past the highest index found, a passphrase given to
/// restore seals the restored seed, and restoring again with the same words changes
/// nothing. A key-file wallet pays and makes random keys beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_finds_every_account_and_coin_key_with_its_balance() {
    let bank = SecretKey::generate();
    let net = Net::start(&bank).await;
    let client = net.client();
    let network = *client.network();
    let dir = tempfile::tempdir().unwrap();

    // The key-file wallet that pays from genesis.
    let mut bank_wallet = Wallet::open(&dir.path().join("bank")).unwrap();
    bank_wallet
        .add_key(Some(bank.clone()), Some("bank".into()))
        .unwrap();
    let random = bank_wallet.new_account(&network, None, None).unwrap();
    assert!(!bank_wallet.is_seeded());
    assert!(!SeedFile::exists(bank_wallet.dir()));

    // The seeded wallet: account 0 from init, accounts 1, 2 (never used) and 3.
    let original = dir.path().join("original");
    let (mut wallet, words) = Wallet::init(&original, &network, None).unwrap();
    let account0 = wallet.keys()[0].secret_key().unwrap();
    let account1 = wallet.new_account(&network, None, None).unwrap();
    let unused = wallet.new_account(&network, None, None).unwrap();
    let account3 = wallet.new_account(&network, None, None).unwrap();
    let account3_key = account3.secret_key().unwrap();
    assert_eq!(account3.label.as_deref(), Some("account 3"));

    ops::intro(&wallet, &client, &account0, proof(&account0.account()))
        .await
        .unwrap();
    ops::pay(&bank_wallet, &client, &bank, account1.account, cash("7"))
        .await
        .unwrap();
    ops::pay(&bank_wallet, &client, &bank, account3.account, cash("1"))
        .await
        .unwrap();
    ops::pay(
        &wallet,
        &client,
        &account3_key,
        account0.account(),
        cash("1"),
    )
    .await
    .unwrap();

    // Coin keys 0 and 2 are paid; coin key 1 was handed out and never used.
    let coin0 = wallet.next_key(&network, KeyPurpose::Coin, None).unwrap();
    let _coin1 = wallet.next_key(&network, KeyPurpose::Coin, None).unwrap();
    let coin2 = wallet.next_key(&network, KeyPurpose::Coin, None).unwrap();
    ops::pay(&wallet, &client, &account0, coin0.account(), cash("2.5"))
        .await
        .unwrap();
    ops::pay(&wallet, &client, &account0, coin2.account(), cash("0.25"))
        .await
        .unwrap();
    assert_eq!(
        views::balance(&client, &account0.account())
            .await
            .unwrap()
            .balance,
        8_250_000
    );

    let typed = words.words().join(" ").to_uppercase();
    let fresh = dir.path().join("restored");
    let (restored_wallet, restored) = Wallet::restore(&fresh, &typed, None, &client)
        .await
        .unwrap();
    let found: Vec<(u64, AccountId, i128)> = restored
        .accounts
        .iter()
        .map(|a| (a.index, a.account, a.balance))
        .collect();
    assert_eq!(
        found,
        vec![
            (0, account0.account(), 8_250_000),
            (1, account1.account, 7_000_000),
            (3, account3.account, 0),
        ]
    );
    let coins: Vec<(u64, AccountId, Amount)> = restored
        .coins
        .iter()
        .map(|c| (c.index, c.key.account(), c.balance))
        .collect();
    assert_eq!(
        coins,
        vec![
            (0, coin0.account(), cash("2.5")),
            (2, coin2.account(), cash("0.25")),
        ]
    );
    assert_eq!(restored.coins[0].key.to_bytes(), coin0.to_bytes());
    assert_eq!((restored.next_account, restored.next_coin), (4, 3));

    // keys.json holds the accounts found, with their secrets and labels, and not the
    // unused one; the seed is in clear (no passphrase was given).
    assert!(restored_wallet.is_seeded());
    assert_eq!(
        listed(&fresh),
        vec![account0.account(), account1.account, account3.account]
    );
    assert!(!listed(&fresh).contains(&unused.account));
    assert_eq!(
        restored_wallet
            .find(Some("account 1"))
            .unwrap()
            .secret_key()
            .unwrap()
            .to_bytes(),
        account1.secret_key().unwrap().to_bytes()
    );
    assert!(!SeedFile::is_encrypted(&fresh).unwrap());

    // The next keys continue past every index found: nothing is handed out twice.
    let mut restored_wallet = restored_wallet;
    let next = restored_wallet.new_account(&network, None, None).unwrap();
    let seed = words.to_seed("");
    assert_eq!(
        next.account,
        derive_key(&seed, &network, KeyPurpose::Account, 4).account()
    );
    let next_coin = restored_wallet
        .next_key(&network, KeyPurpose::Coin, None)
        .unwrap();
    assert_eq!(
        next_coin.account(),
        derive_key(&seed, &network, KeyPurpose::Coin, 3).account()
    );

    // Restoring again into a folder with the same seed finishes or repeats the restore:
    // the same accounts, nothing duplicated, counters never lowered.
    let (_, again) = Wallet::restore(&fresh, &typed, None, &client)
        .await
        .unwrap();
    assert_eq!(again.accounts.len(), 3);
    assert_eq!((again.next_account, again.next_coin), (5, 4));
    assert_eq!(listed(&fresh).len(), 4);

    // With a passphrase, the restored seed is sealed and needs it to make a key.
    let sealed = dir.path().join("sealed");
    let (sealed_wallet, _) = Wallet::restore(&sealed, &typed, Some("pw"), &client)
        .await
        .unwrap();
    assert!(SeedFile::is_encrypted(&sealed).unwrap());
    assert!(matches!(
        sealed_wallet.next_key(&network, KeyPurpose::Coin, None),
        Err(SeededError::Seed(SeedError::PassphraseRequired(_)))
    ));
    assert_eq!(
        sealed_wallet
            .next_key(&network, KeyPurpose::Coin, Some("pw"))
            .unwrap()
            .account(),
        derive_key(&seed, &network, KeyPurpose::Coin, 3).account()
    );

    // The key-file wallet still works: it pays from its random key, which nothing derives.
    ops::pay(&bank_wallet, &client, &bank, random.account, cash("1"))
        .await
        .unwrap();
    assert_eq!(
        views::balance(&client, &random.account)
            .await
            .unwrap()
            .balance,
        1_000_000
    );
    net.stop().await;
}

/// A wallet that never used the network restores to what `init` made: account 0 alone,
/// found after asking exactly the gap limit's worth of indices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_the_network_never_saw_restores_to_account_zero() {
    let bank = SecretKey::generate();
    let net = Net::start(&bank).await;
    let client = net.client();
    let network = *client.network();
    let dir = tempfile::tempdir().unwrap();
    let (wallet, words) = Wallet::init(&dir.path().join("a"), &network, None).unwrap();
    let first = wallet.keys()[0].account;

    let fresh = dir.path().join("b");
    let (_, restored) = Wallet::restore(&fresh, &words.words().join(" "), None, &client)
        .await
        .unwrap();
    assert_eq!(restored.accounts.len(), 1);
    assert_eq!(restored.accounts[0].account, first);
    assert_eq!(restored.accounts[0].balance, 0);
    assert!(restored.coins.is_empty());
    assert_eq!((restored.next_account, restored.next_coin), (1, 0));
    assert_eq!(listed(&fresh), vec![first]);

    // A key used just within the gap limit of the last used one is found; one just past
    // it is not (the gap limit is what restore promises, nothing more).
    let seed = words.to_seed("");
    let within = derive_key(&seed, &network, KeyPurpose::Coin, GAP_LIMIT - 1);
    let past = derive_key(&seed, &network, KeyPurpose::Coin, 2 * GAP_LIMIT);
    let mut bank_wallet = Wallet::open(&dir.path().join("bank")).unwrap();
    bank_wallet.add_key(Some(bank.clone()), None).unwrap();
    for key in [&within, &past] {
        ops::pay(&bank_wallet, &client, &bank, key.account(), cash("1"))
            .await
            .unwrap();
    }
    let (_, restored) = Wallet::restore(
        &dir.path().join("c"),
        &words.words().join(" "),
        None,
        &client,
    )
    .await
    .unwrap();
    let indices: Vec<u64> = restored.coins.iter().map(|c| c.index).collect();
    assert_eq!(indices, vec![GAP_LIMIT - 1]);
    net.stop().await;
}

/// Wrong words, a folder that already holds a wallet, and a network that does not answer
/// are all refused with a clear error, and the target folder is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_and_writes_nothing() {
    let validators: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    // Nobody listens at these addresses.
    let addresses = closed_addresses(4);
    let contract = quorum_contract(&validators, &addresses, &SecretKey::generate());
    let client = QuorumClient::new(contract.clone(), Duration::from_secs(2)).unwrap();
    let network = contract.id();
    let dir = tempfile::tempdir().unwrap();
    let (_, words) = Wallet::init(&dir.path().join("original"), &network, None).unwrap();
    let original = words.words();
    let mut list = original.clone();
    let target = dir.path().join("target");

    // A word outside the list, named by position only.
    list[4] = "notaword";
    let error = refused(Wallet::restore(&target, &list.join(" "), None, &client).await);
    assert!(
        matches!(
            error,
            SeededError::Seed(SeedError::UnknownWord { position: 5 })
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("word 5"), "{error}");
    assert!(!error.to_string().contains("notaword"));
    assert!(!target.exists(), "nothing written");

    // Known words whose checksum does not match ("abandon" × 23 + "art" is the valid one).
    let error = refused(Wallet::restore(&target, &["abandon"; 24].join(" "), None, &client).await);
    assert!(
        matches!(error, SeededError::Seed(SeedError::BadChecksum)),
        "{error:?}"
    );
    assert!(error.to_string().contains("checksum"), "{error}");
    assert!(!target.exists(), "nothing written");

    // Too few words.
    let error = refused(Wallet::restore(&target, &original[..11].join(" "), None, &client).await);
    assert!(matches!(
        error,
        SeededError::Seed(SeedError::WrongWordCount { count: 11 })
    ));

    // No validator answers: nothing is written, so the restore can simply be run again.
    let error = refused(Wallet::restore(&target, &original.join(" "), None, &client).await);
    assert!(
        matches!(
            error,
            SeededError::TooFewAnswers {
                answered: 0,
                validators: 4,
                needed: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!target.exists(), "nothing written");

    // A folder that holds a key-file wallet, or another seed, is refused as it is.
    let keyed = dir.path().join("keyed");
    Wallet::open(&keyed).unwrap().add_key(None, None).unwrap();
    let error = refused(Wallet::restore(&keyed, &original.join(" "), None, &client).await);
    assert!(matches!(error, SeededError::NotEmpty(_)), "{error:?}");
    assert!(!SeedFile::exists(&keyed));
    let other = dir.path().join("other");
    Wallet::init(&other, &network, None).unwrap();
    let error = refused(Wallet::restore(&other, &original.join(" "), None, &client).await);
    assert!(matches!(error, SeededError::NotEmpty(_)), "{error:?}");
    assert!(error.to_string().contains("already holds a wallet"));
}

/// `init` is refused on a folder that already has a seed, and a sealed seed makes keys
/// only with its passphrase, which everyday use (keys.json) does not need.
#[test]
fn init_twice_is_refused_and_a_sealed_seed_needs_its_passphrase() {
    let network = quorum_contract(
        &[SecretKey::generate()],
        &closed_addresses(1),
        &SecretKey::generate(),
    )
    .id();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("w");
    let (wallet, words) = Wallet::init(&folder, &network, Some("correct horse")).unwrap();
    let first = wallet.keys()[0].account;

    let error = refused(Wallet::init(&folder, &network, None));
    assert!(matches!(error, SeededError::NotEmpty(_)), "{error:?}");
    assert_eq!(
        listed(&folder),
        vec![first],
        "the first init's wallet is untouched"
    );

    let seed_text = std::fs::read_to_string(SeedFile::path(&folder)).unwrap();
    assert!(seed_text.contains("sealed") && !seed_text.contains("entropy"));
    assert!(matches!(
        wallet.next_key(&network, KeyPurpose::Account, None),
        Err(SeededError::Seed(SeedError::PassphraseRequired(_)))
    ));
    assert!(matches!(
        wallet.next_key(&network, KeyPurpose::Account, Some("wrong horse")),
        Err(SeededError::Seed(SeedError::WrongPassphrase(_)))
    ));
    assert_eq!(
        KeyCounters::load(&folder)
            .unwrap()
            .next(&network, KeyPurpose::Account),
        1,
        "a refused key uses no index"
    );
    let second = wallet
        .next_key(&network, KeyPurpose::Account, Some("correct horse"))
        .unwrap();
    assert_eq!(
        second.account(),
        derive_key(&words.to_seed(""), &network, KeyPurpose::Account, 1).account()
    );
    // Everyday use reads keys.json, which needs no passphrase.
    let reopened = Wallet::open(&folder).unwrap();
    assert_eq!(reopened.find(None).unwrap().account, first);
}

/// On a proof-of-work network the miners are asked: an account and a coin key paid from
/// genesis come back with their confirmed balances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_asks_the_miners_on_a_proof_of_work_network() {
    let dir = tempfile::tempdir().unwrap();
    let alice = SecretKey::generate();
    let contract = NetworkContract {
        name: "restore-pow".into(),
        mode: Mode::Pow,
        unit: "cash".into(),
        faucet: Amount::ZERO,
        intro_pow_bits: BITS,
        validators: vec![],
        tracker: None,
        genesis: vec![Allocation {
            account: alice.account(),
            amount: cash("100"),
        }],
        pow: Some(PowParams {
            initial_bits: 14,
            block_time_ms: 1000,
            retarget_window: 0,
            block_reward: cash("50"),
            max_block_transactions: 1000,
            max_block_bytes: 200_000,
        }),
        max_clock_skew_ms: None,
    };
    let mut config = MinerConfig::new(
        contract.clone(),
        SecretKey::generate(),
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("miner"),
    );
    config.mine = true;
    config.threads = 1;
    config.template_refresh = Duration::from_millis(50);
    let node = PowNode::start(config).await.unwrap();
    let miners = Miners::at(
        contract.id(),
        vec![node.address().to_string()],
        WireLimits::default(),
    );
    let network = contract.id();

    let mut alice_wallet = Wallet::open(&dir.path().join("alice")).unwrap();
    alice_wallet.add_key(Some(alice.clone()), None).unwrap();
    let (wallet, words) = Wallet::init(&dir.path().join("seeded"), &network, None).unwrap();
    let account0 = wallet.keys()[0].account;
    let _coin0 = wallet.next_key(&network, KeyPurpose::Coin, None).unwrap();
    let coin1 = wallet.next_key(&network, KeyPurpose::Coin, None).unwrap();
    let waiting = Waiting {
        confirmations: 1,
        patience: Duration::from_secs(60),
    };
    for (to, amount) in [(account0, "3"), (coin1.account(), "1.5")] {
        chain::send(
            &alice_wallet,
            &miners,
            &alice,
            to,
            cash(amount),
            waiting,
            &mut |_| {},
        )
        .await
        .unwrap();
    }

    let fresh = dir.path().join("restored");
    let (_, restored) = Wallet::restore_pow(&fresh, &words.words().join(" "), None, &miners)
        .await
        .unwrap();
    assert_eq!(restored.accounts.len(), 1);
    assert_eq!(restored.accounts[0].account, account0);
    assert_eq!(restored.accounts[0].balance, 3_000_000);
    assert_eq!(restored.coins.len(), 1);
    assert_eq!(restored.coins[0].index, 1);
    assert_eq!(restored.coins[0].key.account(), coin1.account());
    assert_eq!(restored.coins[0].balance, cash("1.5"));
    assert_eq!((restored.next_account, restored.next_coin), (1, 2));
    assert_eq!(listed(&fresh), vec![account0]);

    // Miners that cannot be reached: an error, and nothing written.
    node.stop().await;
    let error = refused(
        Wallet::restore_pow(
            &dir.path().join("unreached"),
            &words.words().join(" "),
            None,
            &miners,
        )
        .await,
    );
    assert!(matches!(error, SeededError::Chain(_)), "{error:?}");
    assert!(!dir.path().join("unreached").exists());
}
