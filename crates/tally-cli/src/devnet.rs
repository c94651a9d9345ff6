//! `tally devnet`: a whole local Tally network in one process, ready to use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tally_core::{Amount, NetworkContract};
use tally_maker::{MakerSettings, MakerStatus};
use tally_network::{PowSpec, QuorumSpec, create_pow, create_quorum};
use tally_node::pow::{MinerConfig, PowNode};
use tally_node::{Node, NodeConfig};
use tally_relay::{Relay, RelayConfig};
use tally_tracker::{Tracker, TrackerConfig};
use tally_wallet::wire::Bounds;
use tally_wallet::{Miners, QuorumClient, Wallet, chain, ops};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::network::key_proof_spinner;

/// `tally devnet`
#[derive(Args)]
pub struct DevnetArgs {
    /// Where the devnet keeps its contract, validators and wallet (reused if it exists).
    #[arg(long, default_value = "tally-devnet")]
    pub dir: PathBuf,
    /// The first port: validators use P..P+7 (node and control API), the tracker P+8, the
    /// relay P+9, the miners P+10..P+13, the second quorum network's validators
    /// P+14..P+21, the maker's control API P+22, the web wallet P+23.
    #[arg(long, default_value_t = 2222)]
    pub base_port: u16,
}

pub async fn run(args: DevnetArgs) -> anyhow::Result<()> {
    let port = |offset: u16| {
        args.base_port
            .checked_add(offset)
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .context("--base-port leaves no room for the devnet's ports")
    };
    let (tracker_address, relay_address) = (port(8)?, port(9)?);
    let quorum_dir = args.dir.join("quorum");
    let contract = quorum_dir.join("contract.json");
    if !contract.exists() {
        create_quorum(
            &QuorumSpec {
                dir: quorum_dir.clone(),
                validators: 4,
                name: "devnet".into(),
                faucet: Amount::from_cash(10).unwrap_or(Amount::ZERO),
                pow_bits: 16,
                base_port: args.base_port,
                fund: 3,
                fund_amount: Amount::from_cash(1000).unwrap_or(Amount::ZERO),
                tracker: Some(tracker_address.to_string()),
                clock_skew_ms: Some(2_000),
            },
            &mut key_proof_spinner(),
        )?;
    }
    let pow_dir = args.dir.join("pow");
    let pow_contract_path = pow_dir.join("contract.json");
    if !pow_contract_path.exists() {
        create_pow(&PowSpec {
            dir: pow_dir.clone(),
            miners: 2,
            name: "devnet-pow".into(),
            block_time: Duration::from_secs(3),
            reward: Amount::from_cash(50).unwrap_or(Amount::ZERO),
            initial_bits: 20,
            retarget_window: 10,
            max_block_transactions: 5_000,
            max_block_bytes: 1_000_000,
            pow_bits: 8,
            tracker: tracker_address.to_string(),
            base_port: port(10)?.port(),
            fund: 3,
            fund_amount: Amount::from_cash(1000).unwrap_or(Amount::ZERO),
        })?;
    }
    // A second quorum network, for wires between the two through the maker.
    let b_dir = args.dir.join("quorum-b");
    let b_contract = b_dir.join("contract.json");
    if !b_contract.exists() {
        create_quorum(
            &QuorumSpec {
                dir: b_dir.clone(),
                validators: 4,
                name: "devnet-b".into(),
                faucet: Amount::from_cash(10).unwrap_or(Amount::ZERO),
                pow_bits: 16,
                base_port: port(14)?.port(),
                fund: 3,
                fund_amount: Amount::from_cash(1000).unwrap_or(Amount::ZERO),
                tracker: None,
                clock_skew_ms: Some(2_000),
            },
            &mut key_proof_spinner(),
        )?;
    }
    // Each knows the other as a counterpart (an earlier devnet's network learns it now).
    tally_network::link_counterpart(&quorum_dir, &b_contract)?;
    tally_network::link_counterpart(&b_dir, &contract)?;
    // Wires from devnet to the proof-of-work network too, when its contract declares the
    // clock skew bound escrows are timed by (devnets made before that declare none).
    let pow_wires = load_contract(&pow_contract_path)?
        .max_clock_skew_ms
        .is_some();
    if pow_wires {
        tally_network::link_counterpart(&quorum_dir, &pow_contract_path)?;
        tally_network::link_counterpart(&pow_dir, &contract)?;
    }
    // The tracker serves both networks: validators register with it and learn each
    // other's addresses from it, miners join through it, and wallets find both through it.
    let tracker = Tracker::bind(
        TrackerConfig::new(args.dir.join("tracker"))
            .listen(tracker_address)
            .contract(load_contract(&contract)?)
            .contract(load_contract(&pow_contract_path)?),
    )
    .await
    .with_context(|| format!("starting the tracker on {tracker_address}"))?
    .spawn();
    let relay = Relay::bind(RelayConfig::listening_on(relay_address))
        .await
        .with_context(|| format!("starting the relay on {relay_address}"))?
        .spawn();
    let mut nodes = Vec::new();
    for i in 0..4 {
        let dir = quorum_dir.join(format!("validator-{i}"));
        let config =
            NodeConfig::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
        nodes.push(
            Node::start(config)
                .await
                .with_context(|| format!("starting validator {i}"))?,
        );
    }
    let mut b_nodes = Vec::new();
    for i in 0..4 {
        let dir = b_dir.join(format!("validator-{i}"));
        let config =
            NodeConfig::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
        b_nodes.push(
            Node::start(config)
                .await
                .with_context(|| format!("starting validator {i} of devnet-b"))?,
        );
    }
    // Two miners, one thread each: a few seconds per block once retargeting settles.
    let mut miners = Vec::new();
    for i in 0..2 {
        let dir = pow_dir.join(format!("miner-{i}"));
        let mut config =
            MinerConfig::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
        config.mine = true;
        config.threads = 1;
        miners.push(
            PowNode::start(config)
                .await
                .with_context(|| format!("starting miner {i}"))?,
        );
    }
    let maker = start_maker(
        &args.dir,
        &contract,
        &b_contract,
        pow_wires.then_some(pow_contract_path.as_path()),
        relay.local_addr(),
        port(22)?,
    )
    .await
    .context("starting the devnet's market maker")?;
    let wallet = quorum_dir.join("genesis-wallet");
    let web = tally_web::Web::start(tally_web::WebConfig {
        wallet: wallet.clone(),
        networks: vec![load_contract(&contract)?, load_contract(&b_contract)?],
        listen: port(23)?,
        timeout: Duration::from_secs(5),
        relay: Some(relay.local_addr().to_string()),
    })
    .await
    .context("starting the devnet's web wallet")?;
    let w = format!(
        "tally wallet --wallet {} --network {}",
        wallet.display(),
        contract.display()
    );
    let mine = format!(
        "tally wallet --wallet {} --network {}",
        args.dir.join("my-wallet").display(),
        contract.display()
    );
    println!("Tally devnet is running: a quorum network of 4 validators on 127.0.0.1 (quorum 3),");
    for (i, node) in nodes.iter().enumerate() {
        println!(
            "  validator-{i}  node {}  control API http://{}",
            node.address(),
            node.rpc_address().map_or("-".into(), |a| a.to_string())
        );
    }
    println!("and a proof-of-work network of 2 miners (about 3 s per block):");
    for (i, miner) in miners.iter().enumerate() {
        println!(
            "  miner-{i}      node {}  control API http://{}",
            miner.address(),
            miner.rpc_address().map_or("-".into(), |a| a.to_string())
        );
    }
    println!("a second quorum network, devnet-b, of 4 validators:");
    for (i, node) in b_nodes.iter().enumerate() {
        println!(
            "  validator-{i}  node {}  control API http://{}",
            node.address(),
            node.rpc_address().map_or("-".into(), |a| a.to_string())
        );
    }
    println!(
        "  maker        control API http://{}  (carries cash from devnet to devnet-b and devnet-pow for 0.5%)",
        maker.control
    );
    println!("  tracker      {}", tracker.local_addr());
    println!("  relay        {}", relay.local_addr());
    println!();
    println!("Try (tally = cargo run --release --):");
    println!("  {w} keys                 # three funded accounts, 1000 cash each");
    println!("  {w} balance genesis-0");
    println!("  {mine} key new --label me");
    println!("  {mine} gen-pow              # find the proof of work that admits the key");
    println!("  {mine} intro                # receive the 10-cash faucet, once");
    println!("  {w} send <account of me> 12.5 --from genesis-0");
    println!("  {mine} balance");
    println!("  {w} ledger");
    println!("  {w} peers");
    println!();
    println!("Bearer coins (a file or a token hands them over; import powns them to your keys):");
    println!("  {w} coins withdraw 281 --from genesis-0   # 250 + 25 + 5 + 1, one Split order");
    println!("  {w} coins                 # every coin by folder");
    println!("  {w} coins export 30 --token");
    println!("  {mine} coins import <the tallycoin1… token>");
    println!("  {mine} coins detect          # what every validator says about each coin");
    println!("  {mine} coins deposit --all   # the coins pay back into your account");
    println!(
        "  tally wallet --wallet seeded --network {} init   # keys from 24 words; `restore` finds them",
        contract.display()
    );
    println!();
    println!("A live transfer through the relay (two terminals; the file is the invitation):");
    let connection = args.dir.join("connection.txt");
    println!(
        "  {w} live send 281 --relay {} --out {} --from genesis-0",
        relay.local_addr(),
        connection.display()
    );
    println!(
        "  {mine} live receive {}   # steps 1–19 and 24 as they happen",
        connection.display()
    );
    println!(
        "  curl -s -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}}' http://{}",
        nodes[0].rpc_address().map_or("-".into(), |a| a.to_string())
    );
    println!();
    let p = format!(
        "tally wallet --wallet {} --network {}",
        pow_dir.join("genesis-wallet").display(),
        pow_contract_path.display()
    );
    println!();
    println!("On the proof-of-work network (miners found through the tracker):");
    println!("  {p} balance genesis-0       # confirmed and pending, at the chain tip");
    println!("  {p} send <account> 5 --from genesis-0 --confirmations 2");
    println!("  {p} ledger                  # the tip, the supply and every account");
    println!("  {p} peers                   # the miners and their tips");
    let q = format!(
        "tally wallet --wallet {} --network {}",
        args.dir.join("my-pow-wallet").display(),
        pow_contract_path.display()
    );
    println!(
        "  {p} coins withdraw 31 --from genesis-0   # coins here too: each step waits for a block"
    );
    println!("  {p} coins export 6 --token");
    println!("  {q} coins import <the tallycoin1… token>");
    println!(
        "  {p} live send 31 --relay {} --out {} --from genesis-0",
        relay.local_addr(),
        args.dir.join("pow-connection.txt").display()
    );
    println!(
        "  {q} live receive {}",
        args.dir.join("pow-connection.txt").display()
    );
    println!();
    println!(
        "A wire from devnet to devnet-b through the maker (seed 002; the same keys receive on B):"
    );
    println!(
        "  {w} wire 25 --to {} --relay {} --from genesis-0",
        b_contract.display(),
        relay.local_addr()
    );
    if pow_wires {
        println!(
            "  {w} wire 5 --to {} --relay {} --from genesis-0   # to the chain (the maker's funds there need a block first)",
            pow_contract_path.display(),
            relay.local_addr()
        );
    }
    println!("  {w} wire list             # every wire and its receipt: `wire show ID`");
    println!(
        "  tally wallet --wallet {} --network {} balance <account of genesis-0>",
        quorum_dir.join("genesis-wallet").display(),
        b_contract.display()
    );
    println!(
        "  curl -s -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}}' http://{}   # the maker",
        maker.control
    );
    println!();
    println!(
        "  tally chat {} my-room my-token     # two of these talk through the relay",
        relay.local_addr()
    );
    println!();
    println!("The genesis wallet in a browser (wallet, payments, receipts, explorer; the address");
    println!("holds its access token):");
    println!("  {}", web.url());
    println!();
    println!("Ctrl-C stops the devnet; run it again to continue where it stopped.");
    crate::shutdown_signal().await;
    web.stop().await;
    maker.stop().await;
    for node in nodes.into_iter().chain(b_nodes) {
        node.stop().await;
    }
    for miner in miners {
        miner.stop().await;
    }
    if let Err(error) = relay.shutdown().await {
        tracing::warn!(%error, "relay stop");
    }
    if let Err(error) = tracker.shutdown().await {
        tracing::warn!(%error, "tracker stop");
    }
    Ok(())
}

/// The devnet's market maker, running.
struct DevnetMaker {
    control: SocketAddr,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl DevnetMaker {
    async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// A market maker between devnet (A) and devnet-b (B), and between devnet and the
/// proof-of-work network `pow` when given, with a wallet of its own (funded with 500 cash on
/// B by B's genesis-2 the first time, and with 400 on the chain by its genesis-2 in the
/// background, once a block confirms it), its control API on `control`.
async fn start_maker(
    dir: &Path,
    a: &Path,
    b: &Path,
    pow: Option<&Path>,
    relay: SocketAddr,
    control: SocketAddr,
) -> anyhow::Result<DevnetMaker> {
    let maker_dir = dir.join("maker-wallet");
    let (contract_a, contract_b) = (load_contract(a)?, load_contract(b)?);
    if !maker_dir.join("keys.json").exists() {
        let mut wallet = Wallet::open(&maker_dir)?;
        let maker = wallet.add_key(None, Some("maker".into()))?.account;
        let genesis = Wallet::open(&b.with_file_name("genesis-wallet"))?;
        let funder = genesis.find(Some("genesis-2"))?.secret_key()?;
        let client = QuorumClient::new(contract_b.clone(), Duration::from_secs(5))?;
        // The validators have just started: give them a moment if the first try fails.
        let mut tries = 0;
        loop {
            match ops::pay(
                &genesis,
                &client,
                &funder,
                maker,
                Amount::from_cash(500).unwrap_or(Amount::ZERO),
            )
            .await
            {
                Ok(_) => break,
                Err(error) if tries < 10 => {
                    tries += 1;
                    tracing::debug!(%error, "funding the maker; trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    let mut pairs = vec![(contract_a.clone(), contract_b)];
    if let Some(pow) = pow {
        let contract_pow = load_contract(pow)?;
        let maker = Wallet::open(&maker_dir)?.find(None)?.account;
        tokio::spawn(fund_on_chain(
            pow.with_file_name("genesis-wallet"),
            contract_pow.clone(),
            maker,
        ));
        pairs.push((contract_a, contract_pow));
    }
    let settings = MakerSettings {
        wallet_dir: maker_dir,
        account: None,
        pairs,
        relay: relay.to_string(),
        fee_ppm: 5_000,
        fee_fixed: Amount::ZERO,
        min: Amount::from_cash(1).unwrap_or(Amount::ZERO),
        max: Amount::from_cash(400).unwrap_or(Amount::ZERO),
        // Long enough for a claim window on the chain: two confirmations of 3 s blocks,
        // allowing for slow runs, and the chain's 60 s clock skew bound.
        lock_time: Duration::from_secs(180),
        delta: None,
        announce_every: Duration::from_secs(10),
        max_open_per_taker: 4,
        accounts: 1,
        bounds: Bounds::default(),
        timeout: Duration::from_secs(5),
    };
    let listener = tokio::net::TcpListener::bind(control)
        .await
        .with_context(|| format!("binding the maker's control API on {control}"))?;
    let control = listener.local_addr()?;
    let (status_tx, status_rx) = watch::channel(MakerStatus::default());
    let cancel = CancellationToken::new();
    tokio::spawn(tally_maker::rpc::serve(listener, status_rx, cancel.clone()));
    let stop = cancel.clone();
    let task = tokio::spawn(async move {
        if let Err(error) = tally_maker::run(settings, status_tx, stop).await {
            tracing::error!(%error, "the devnet's maker stopped");
        }
    });
    Ok(DevnetMaker {
        control,
        cancel,
        task,
    })
}

/// Pays the maker 400 cash on the proof-of-work network from its genesis-2, unless it holds
/// something there already; tries again while the miners are starting.
async fn fund_on_chain(genesis: PathBuf, contract: NetworkContract, maker: tally_core::AccountId) {
    let waiting = chain::Waiting {
        confirmations: 1,
        patience: Duration::from_secs(120),
    };
    for _ in 0..30 {
        let funded = async {
            let miners = Miners::locate(&contract, Duration::from_secs(5)).await?;
            let (state, _) = miners.account(&maker).await?;
            if !state.balance.is_zero() || !state.pending_in.is_zero() {
                return Ok::<_, anyhow::Error>(());
            }
            let wallet = Wallet::open(&genesis)?;
            let funder = wallet.find(Some("genesis-2"))?.secret_key()?;
            let amount = Amount::from_cash(400).unwrap_or(Amount::ZERO);
            chain::send(
                &wallet,
                &miners,
                &funder,
                maker,
                amount,
                waiting,
                &mut |_| {},
            )
            .await?;
            Ok(())
        };
        match funded.await {
            Ok(()) => return,
            Err(error) => {
                tracing::debug!(%error, "funding the maker on the chain; trying again");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    tracing::warn!("the maker could not be funded on the proof-of-work network");
}

fn load_contract(path: &Path) -> anyhow::Result<NetworkContract> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    NetworkContract::from_json(&text).with_context(|| format!("contract {}", path.display()))
}
