//! Wires between a quorum network and a proof-of-work network (issue 13), over real TCP: a
//! 4-validator network, a mining node with its tracker (its chain in files), a relay, and
//! the maker daemon. Either way round the wire is atomic: the payer ends with the amount on
//! B and the maker with amount + fee on A; on the chain side an escrow order counts once
//! it has the confirmations the bounds ask for, and deadlines are judged by the chain's
//! median time past.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::maker::{maker_until, start_maker};
use common::{Net, bound_listener, cash};
use tally_core::{
    AccountId, Allocation, Amount, Mode, NetworkContract, NetworkId, PowParams, SecretKey,
};
use tally_maker::{MakerSettings, MakerStatus};
use tally_node::pow::{MinerConfig, PowNode};
use tally_proto::pow::WireLimits;
use tally_relay::{Relay, RelayConfig, RelayHandle};
use tally_swap::Outcome;
use tally_tracker::{Tracker, TrackerConfig, TrackerHandle};
use tally_wallet::chain::{self, Miners};
use tally_wallet::wire::payer::{self, WireRequest, WireStep};
use tally_wallet::wire::{Bounds, ChainReach, Proof, Reach};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Tight bounds for loopback; one confirmation makes a chain order count.
const BOUNDS: Bounds = Bounds {
    certify_ms: 500,
    notice_ms: 500,
    margin_ms: 200,
    confirmations: 1,
};

/// A proof-of-work network: its tracker, one mining node, and its contract. Blocks come
/// every few milliseconds (the contract's nominal block time is 100 ms, with no retarget),
/// so its median time past trails the clock by little: it declares ε = 300 ms.
struct Chain {
    contract: NetworkContract,
    _tracker: TrackerHandle,
    node: PowNode,
    _dir: tempfile::TempDir,
}

impl Chain {
    /// The chain, its miner handing claims of escrows that cite `counterparts` to them.
    async fn start(
        name: &str,
        funded: &[(AccountId, u64)],
        counterparts: Vec<NetworkContract>,
    ) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let tracker_listener = bound_listener();
        let tracker_address = tracker_listener.local_addr().unwrap();
        tracker_listener.set_nonblocking(true).unwrap();
        let contract = NetworkContract {
            name: name.into(),
            mode: Mode::Pow,
            unit: "cash".into(),
            faucet: Amount::ZERO,
            intro_pow_bits: 4,
            validators: vec![],
            tracker: Some(tracker_address.to_string()),
            genesis: funded
                .iter()
                .map(|(account, whole)| Allocation {
                    account: *account,
                    amount: cash(*whole),
                })
                .collect(),
            pow: Some(PowParams {
                initial_bits: 12,
                block_time_ms: 100,
                retarget_window: 0,
                block_reward: cash(50),
                max_block_transactions: 1000,
                max_block_bytes: 200_000,
            }),
            max_clock_skew_ms: Some(300),
        };
        let tracker = Tracker::with_listener(
            TrackerConfig::new(dir.path().join("tracker")).contract(contract.clone()),
            tokio::net::TcpListener::from_std(tracker_listener).unwrap(),
        )
        .await
        .unwrap()
        .spawn();
        let mut config = MinerConfig::new(
            contract.clone(),
            SecretKey::generate(),
            "127.0.0.1:0".parse().unwrap(),
            dir.path().join("miner"),
        );
        config.mine = true;
        config.threads = 1;
        config.template_refresh = Duration::from_millis(50);
        config.counterparts = counterparts;
        let node = PowNode::start(config).await.unwrap();
        let chain = Chain {
            contract,
            _tracker: tracker,
            node,
            _dir: dir,
        };
        // The maker finds the miner through the tracker: wait until it is listed.
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if Miners::locate(&chain.contract, Duration::from_secs(2))
                    .await
                    .is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(found.is_ok(), "the miner never registered with its tracker");
        chain
    }

    fn network(&self) -> NetworkId {
        self.contract.id()
    }

    fn miners(&self) -> Miners {
        Miners::at(
            self.network(),
            vec![self.node.address().to_string()],
            WireLimits::default(),
        )
    }

    fn reach(&self) -> Reach {
        Reach::Chain(ChainReach::new(
            self.miners(),
            self.contract.clone(),
            &BOUNDS,
        ))
    }

    async fn balance(&self, account: &AccountId) -> i128 {
        let (state, _) = self.miners().account(account).await.unwrap();
        i128::from(state.balance.microcash())
    }
}

async fn relay() -> RelayHandle {
    Relay::bind(RelayConfig::listening_on("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
        .spawn()
}

fn settings(
    maker_dir: &std::path::Path,
    a: &NetworkContract,
    b: &NetworkContract,
    relay: &RelayHandle,
) -> MakerSettings {
    MakerSettings {
        wallet_dir: maker_dir.to_path_buf(),
        account: None,
        pairs: vec![(a.clone(), b.clone())],
        relay: relay.local_addr().to_string(),
        fee_ppm: 10_000,
        fee_fixed: Amount::ZERO,
        min: cash(1),
        max: cash(100),
        lock_time: Duration::from_secs(6),
        delta: None,
        announce_every: Duration::from_secs(1),
        max_open_per_taker: 4,
        accounts: 1,
        bounds: BOUNDS,
        timeout: Duration::from_secs(2),
    }
}

fn maker_wallet(maker: &SecretKey) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut wallet = tally_wallet::Wallet::open(dir.path()).unwrap();
    wallet.add_key(Some(maker.clone()), None).unwrap();
    dir
}

/// A quorum network A where the payer holds 1000 cash, a chain B where the maker holds 500
/// and whose miner knows A (it notices A's validators), a relay, and the maker's settings.
struct QuorumToChain {
    a: Net,
    b: Chain,
    relay: RelayHandle,
    maker: SecretKey,
    maker_dir: tempfile::TempDir,
}

impl QuorumToChain {
    async fn start(name: &str) -> QuorumToChain {
        let maker = SecretKey::generate();
        let a = Net::prepare(&format!("{name}-a"), 1000);
        let b = Chain::start(
            &format!("{name}-b"),
            &[(maker.account(), 500)],
            vec![a.contract().clone()],
        )
        .await;
        let a = a
            .launch(Duration::from_millis(200), vec![b.contract.clone()])
            .await;
        QuorumToChain {
            a,
            b,
            relay: relay().await,
            maker_dir: maker_wallet(&maker),
            maker,
        }
    }

    fn start_maker(&self) -> (CancellationToken, watch::Receiver<MakerStatus>) {
        start_maker(settings(
            self.maker_dir.path(),
            &self.a.contract,
            &self.b.contract,
            &self.relay,
        ))
    }

    fn request(&self, amount: Amount) -> WireRequest {
        WireRequest {
            key: self.a.payer.clone(),
            client_a: self.a.client().into(),
            client_b: self.b.reach(),
            relay: self.relay.local_addr().to_string(),
            amount,
            max_fee: Some(cash(1)),
            bounds: BOUNDS,
            listen: Duration::from_millis(1500),
            known_quotes: Vec::new(),
        }
    }
}

/// Quorum A → proof-of-work B: the maker locks on the chain for the payer, the payer claims
/// there (showing the secret in the miners' mempools), the maker claims on A with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wire_from_a_quorum_network_to_a_chain_settles_both_sides() {
    let world = QuorumToChain::start("wire-quorum-first").await;
    let (a, b, maker) = (&world.a, &world.b, &world.maker);
    let (stop_maker, mut status) = world.start_maker();
    let (alice_wallet, _) = a.wallet("alice", Some(&a.payer));
    let alice = a.payer.account();
    let mut steps = Vec::new();
    let record = payer::wire(&alice_wallet, world.request(cash(20)), |step, _| {
        steps.push(step)
    })
    .await
    .unwrap();
    assert_eq!(record.outcome, Some(Outcome::Completed), "{steps:?}");
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, WireStep::MakerLockedB { .. }))
    );
    assert!(steps.iter().any(|s| matches!(s, WireStep::ClaimedB { .. })));
    assert_eq!(
        b.balance(&alice).await,
        20_000_000,
        "the amount arrived on the chain"
    );
    assert_eq!(a.balance(&alice).await, 1000 * 1_000_000 - 20_200_000);
    maker_until(&mut status, |s| s.completed == 1 && s.open == 0).await;
    assert_eq!(
        a.balance(&maker.account()).await,
        20_200_000,
        "amount plus fee on A"
    );
    // The receipt: A's lock certified by a quorum, B's lock and claim mined.
    let receipt = record.receipt();
    assert!(
        matches!(receipt.lock_a, Some(Proof::Certificate(_))),
        "{receipt:?}"
    );
    assert!(
        matches!(receipt.lock_b, Some(Proof::Chain(_))),
        "{receipt:?}"
    );
    assert!(
        matches!(receipt.claim_b, Some(Proof::Chain(_))),
        "{receipt:?}"
    );
    stop_maker.cancel();
}

/// A chain A where alice holds 1000 cash, a quorum network B where the maker holds 500 and
/// which knows A (its validators notice A's miners), a relay, and the maker's settings.
struct ChainToQuorum {
    a: Chain,
    b: Net,
    relay: RelayHandle,
    maker: SecretKey,
    maker_dir: tempfile::TempDir,
    alice: SecretKey,
    alice_dir: tempfile::TempDir,
}

impl ChainToQuorum {
    async fn start(name: &str) -> ChainToQuorum {
        let maker = SecretKey::generate();
        let alice = SecretKey::generate();
        let a = Chain::start(&format!("{name}-a"), &[(alice.account(), 1000)], Vec::new()).await;
        let b = Net::prepare(&format!("{name}-b"), 1000);
        let b = b
            .launch(Duration::from_millis(200), vec![a.contract.clone()])
            .await;
        let (funder, _) = b.wallet("funder", Some(&b.payer));
        tally_wallet::ops::pay(&funder, &b.client(), &b.payer, maker.account(), cash(500))
            .await
            .unwrap();
        let alice_dir = tempfile::tempdir().unwrap();
        let mut alice_wallet = tally_wallet::Wallet::open(alice_dir.path()).unwrap();
        alice_wallet.add_key(Some(alice.clone()), None).unwrap();
        ChainToQuorum {
            a,
            b,
            relay: relay().await,
            maker_dir: maker_wallet(&maker),
            maker,
            alice,
            alice_dir,
        }
    }

    fn start_maker(&self) -> (CancellationToken, watch::Receiver<MakerStatus>) {
        start_maker(settings(
            self.maker_dir.path(),
            &self.a.contract,
            &self.b.contract,
            &self.relay,
        ))
    }

    fn alice_wallet(&self) -> tally_wallet::Wallet {
        tally_wallet::Wallet::open(self.alice_dir.path()).unwrap()
    }

    fn request(&self, amount: Amount) -> WireRequest {
        WireRequest {
            key: self.alice.clone(),
            client_a: self.a.reach(),
            client_b: self.b.client().into(),
            relay: self.relay.local_addr().to_string(),
            amount,
            max_fee: Some(cash(1)),
            bounds: BOUNDS,
            listen: Duration::from_millis(1500),
            known_quotes: Vec::new(),
        }
    }
}

/// Proof-of-work A → quorum B: the payer locks on the chain, the maker locks on B once the
/// lock is deep enough, the payer claims on B and the maker claims on the chain with the
/// secret B's validators published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wire_from_a_chain_to_a_quorum_network_settles_both_sides() {
    let world = ChainToQuorum::start("wire-chain-first").await;
    let (a, b, alice, maker) = (&world.a, &world.b, &world.alice, &world.maker);
    let (stop_maker, mut status) = world.start_maker();
    let alice_wallet = world.alice_wallet();
    let mut steps = Vec::new();
    let record = payer::wire(&alice_wallet, world.request(cash(20)), |step, _| {
        steps.push(step)
    })
    .await
    .unwrap();
    assert_eq!(record.outcome, Some(Outcome::Completed), "{steps:?}");
    assert_eq!(
        b.balance(&alice.account()).await,
        20_000_000,
        "the amount arrived on B"
    );
    maker_until(&mut status, |s| s.completed == 1 && s.open == 0).await;
    assert_eq!(
        a.balance(&maker.account()).await,
        20_200_000,
        "amount plus fee on the chain"
    );
    assert_eq!(
        a.balance(&alice.account()).await,
        1000 * 1_000_000 - 20_200_000
    );
    let receipt = record.receipt();
    assert!(
        matches!(receipt.lock_a, Some(Proof::Chain(_))),
        "{receipt:?}"
    );
    assert!(
        matches!(receipt.lock_b, Some(Proof::Certificate(_))),
        "{receipt:?}"
    );
    assert!(
        matches!(receipt.claim_b, Some(Proof::Certificate(_))),
        "{receipt:?}"
    );
    // Nothing is left journaled on the chain side.
    assert!(
        chain::journaled(&alice_wallet, &alice.account())
            .unwrap()
            .is_none()
    );
    stop_maker.cancel();
}

/// How long a hand-made wire's escrows stay open: far longer than the test.
const HAND_LOCK: Duration = Duration::from_secs(120);

fn deadline(after: Duration) -> u64 {
    tally_wallet::escrow::unix_ms() + u64::try_from(after.as_millis()).unwrap()
}

fn waiting() -> chain::Waiting {
    chain::Waiting {
        confirmations: 1,
        patience: Duration::from_secs(30),
    }
}

/// The notice from a chain: the payer's lock on quorum A, the maker's lock on chain B citing
/// it, both made by hand, and the payer's claim on B. Nobody claims on A — no maker runs —
/// yet A's escrow is claimed for the maker: the miner that admitted the claim handed A's
/// validators the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chains_miner_hands_the_secret_to_the_quorum_network_it_cites() {
    use tally_wallet::escrow::{self, LockTerms};
    let world = QuorumToChain::start("notice-from-chain").await;
    let (a, b) = (&world.a, &world.b);
    let secret = tally_core::EscrowSecret::generate();
    let (payer_wallet, _) = a.wallet("payer", Some(&a.payer));
    let on_a = escrow::lock(
        &payer_wallet,
        &a.client(),
        &a.payer,
        LockTerms {
            payee: world.maker.account(),
            amount: cash(5),
            hash_lock: secret.hash_lock(),
            deadline_ms: deadline(2 * HAND_LOCK),
            counterpart: Some(tally_core::Counterpart {
                network: b.network(),
                escrow: None,
                quote: None,
            }),
        },
    )
    .await
    .unwrap();
    let maker_wallet = tally_wallet::Wallet::open(world.maker_dir.path()).unwrap();
    let on_b = chain::escrow::lock(
        &maker_wallet,
        &b.miners(),
        &b.contract,
        &world.maker,
        LockTerms {
            payee: a.payer.account(),
            amount: cash(5),
            hash_lock: secret.hash_lock(),
            deadline_ms: deadline(HAND_LOCK),
            counterpart: Some(tally_core::Counterpart {
                network: a.contract.id(),
                escrow: Some(on_a.escrow),
                quote: None,
            }),
        },
        waiting(),
        &mut |_| {},
    )
    .await
    .unwrap();
    chain::escrow::claim(
        &payer_wallet,
        &b.miners(),
        on_b.escrow,
        secret,
        waiting(),
        &mut |_| {},
    )
    .await
    .unwrap();
    let mut claimed = 0;
    for _ in 0..100 {
        claimed = escrow::status(&a.client(), &tally_proto::EscrowQuery::Id(on_a.escrow))
            .await
            .claimed;
        if claimed >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(claimed >= 3, "A's escrow was never claimed by the notice");
    assert_eq!(a.balance(&world.maker.account()).await, 5_000_000);
}

/// The notice to a chain: the payer's lock on chain A, the maker's lock on quorum B citing
/// it, both made by hand, and the payer's claim on B. Nobody claims on the chain — no maker
/// runs — yet A's escrow is claimed for the maker: B's validators handed the claim to A's
/// miners with the secret their votes published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_networks_validators_hand_the_secret_to_the_chain_it_cites() {
    use tally_wallet::escrow::{self, LockTerms};
    let world = ChainToQuorum::start("notice-to-chain").await;
    let (a, b) = (&world.a, &world.b);
    let secret = tally_core::EscrowSecret::generate();
    let payer_wallet = world.alice_wallet();
    let on_a = chain::escrow::lock(
        &payer_wallet,
        &a.miners(),
        &a.contract,
        &world.alice,
        LockTerms {
            payee: world.maker.account(),
            amount: cash(5),
            hash_lock: secret.hash_lock(),
            deadline_ms: deadline(2 * HAND_LOCK),
            counterpart: Some(tally_core::Counterpart {
                network: b.contract.id(),
                escrow: None,
                quote: None,
            }),
        },
        waiting(),
        &mut |_| {},
    )
    .await
    .unwrap();
    let maker_wallet = tally_wallet::Wallet::open(world.maker_dir.path()).unwrap();
    let on_b = escrow::lock(
        &maker_wallet,
        &b.client(),
        &world.maker,
        LockTerms {
            payee: world.alice.account(),
            amount: cash(5),
            hash_lock: secret.hash_lock(),
            deadline_ms: deadline(HAND_LOCK),
            counterpart: Some(tally_core::Counterpart {
                network: a.network(),
                escrow: Some(on_a.escrow),
                quote: None,
            }),
        },
    )
    .await
    .unwrap();
    escrow::claim(&payer_wallet, &b.client(), on_b.escrow, secret)
        .await
        .unwrap();
    let mut standing = None;
    for _ in 0..100 {
        standing = chain::escrow::status(&a.miners(), &tally_proto::EscrowQuery::Id(on_a.escrow))
            .await
            .standing();
        if standing == Some(tally_proto::EscrowStanding::Claimed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        standing,
        Some(tally_proto::EscrowStanding::Claimed),
        "the chain's escrow was never claimed by the notice"
    );
    assert_eq!(a.balance(&world.maker.account()).await, 5_000_000);
}
