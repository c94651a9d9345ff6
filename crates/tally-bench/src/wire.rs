//! `tally bench wire`: cross-server wires (seed 002) between two networks of four `tally
//! node` processes each, linked as counterparts, through a market maker and a relay.
//!
//! The relay and the maker daemon run in this process, and so does the payer's wallet, as a
//! user's `tally wallet … wire` would. Wires run one after another. Each is timed from the
//! moment the quote is chosen (each payer hears the maker's quote once, untimed, and wires
//! on it) through the payer's lock on A, the maker's lock on
//! B seen by the payer and the payer's claim on B certified, to the maker's claim on A seen
//! by the payer (both claims certified). Payers run at once, each its share of the wires one
//! after another; at the end the balances must show exactly the amounts and fees moved.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use tally_core::{Amount, SecretKey};
use tally_maker::{MakerSettings, MakerStatus};
use tally_relay::{Relay, RelayConfig};
use tally_swap::Outcome;
use tally_wallet::wire::Bounds;
use tally_wallet::wire::payer::{self, WireRequest, WireStep};
use tally_wallet::{QuorumClient, Wallet};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{BenchError, Context, fail};
use crate::percentile::Distribution;
use crate::process::{Daemons, free_ports, in_work_dir};
use crate::quorum::network::{account_keys, start_validator, write_network};
use crate::report::Report;

/// What to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Wires in all.
    pub wires: usize,
    /// Payers wiring at once, each its share one after another.
    pub payers: usize,
    /// Accounts the maker pays from on B (1,000 cash each).
    pub accounts: usize,
    /// Whole cash each wire delivers on B.
    pub cash: u64,
    /// How long the payer listens for quotes before each wire.
    pub listen: Duration,
    /// Work folder (must not exist); default a temporary one.
    pub dir: Option<std::path::PathBuf>,
    /// Keep the default work folder.
    pub keep: bool,
}

impl Settings {
    /// 50 wires of 10 cash from one payer, quotes heard for 300 ms.
    pub const DEFAULT: Settings = Settings {
        wires: 50,
        payers: 1,
        accounts: 1,
        cash: 10,
        listen: Duration::from_millis(300),
        dir: None,
        keep: false,
    };
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Figures {
    pub wires: usize,
    pub payers: usize,
    pub accounts: usize,
    pub cash: u64,
    pub listen: Duration,
    pub elapsed: Duration,
    /// Quote chosen → the payer's lock on A certified.
    pub lock_a: Distribution,
    /// → the maker's lock on B seen by the payer.
    pub maker_lock_b: Distribution,
    /// → the payer's claim on B certified.
    pub claim_b: Distribution,
    /// → the maker's claim on A seen certified by the payer: the whole wire.
    pub claim_a: Distribution,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = |d: &Distribution| {
            format!(
                "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                d.millis(50.0),
                d.millis(90.0),
                d.millis(99.0),
                d.millis(100.0)
            )
        };
        writeln!(f)?;
        writeln!(
            f,
            "wire: 2 networks of 4 `tally node` processes, a relay, a maker paying from {} account{} on B; {} wires of {} cash from {} payers at once ({:.3} s, {:.1} wires/s)",
            self.accounts,
            if self.accounts == 1 { "" } else { "s" },
            self.wires,
            self.cash,
            self.payers,
            self.elapsed.as_secs_f64(),
            self.wires as f64 / self.elapsed.as_secs_f64().max(1e-9),
        )?;
        writeln!(
            f,
            "  quote → lock on A certified:        {}",
            line(&self.lock_a)
        )?;
        writeln!(
            f,
            "  quote → maker's lock on B seen:     {}",
            line(&self.maker_lock_b)
        )?;
        writeln!(
            f,
            "  quote → claim on B certified:       {}",
            line(&self.claim_b)
        )?;
        write!(
            f,
            "  quote → maker's claim on A seen:    {} (both claims certified)",
            line(&self.claim_a)
        )
    }
}

/// Tight bounds for loopback (the networks declare a 200 ms clock skew bound).
const BOUNDS: Bounds = Bounds {
    certify_ms: 500,
    notice_ms: 500,
    margin_ms: 200,
    confirmations: 1,
};

/// Runs the benchmark with `tally` as the validators.
pub async fn run(
    settings: Settings,
    tally: &Path,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    if settings.wires == 0 || settings.cash == 0 || settings.payers == 0 || settings.accounts == 0 {
        fail!("--wires, --payers, --accounts and --cash must be at least 1");
    }
    // Each of the maker's accounts holds the genesis 1,000 cash on B; payers spread over
    // them at random, so leave room.
    if (settings.wires as u64).saturating_mul(settings.cash) > 500 * settings.accounts as u64 {
        fail!(
            "--wires × --cash must be at most 500 × --accounts: each maker account holds 1000 cash on B"
        );
    }
    let (_work, figures) = in_work_dir(
        "wire",
        settings.dir.as_deref(),
        settings.keep,
        report,
        async |work, daemons| wires(&settings, work, tally, daemons, report).await,
    )
    .await?;
    report.section(&figures.to_string());
    Ok(figures)
}

async fn wires(
    settings: &Settings,
    work: &Path,
    tally: &Path,
    daemons: &Daemons,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    let Some(amount) = Amount::from_cash(settings.cash) else {
        fail!("{} cash is more than any amount", settings.cash);
    };
    // Each payer funded on A, the maker's accounts on B (one key each: the same account on
    // both networks).
    let mut payer_keys = account_keys(settings.payers + settings.accounts);
    let maker_keys: Vec<SecretKey> = payer_keys.drain(..settings.accounts).collect();
    let maker_key = maker_keys[0].clone();
    let ports = free_ports(16)?;
    let (dir_a, dir_b) = (work.join("a"), work.join("b"));
    let validators_a: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    let validators_b: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    let contract_a = write_network(
        &dir_a,
        &validators_a,
        &payer_keys,
        &ports[..8],
        "bench-wire-a",
        Some(200),
    )?;
    let contract_b = write_network(
        &dir_b,
        &validators_b,
        &maker_keys,
        &ports[8..],
        "bench-wire-b",
        Some(200),
    )?;
    tally_network::link_counterpart(&dir_a, &dir_b.join("contract.json"))
        .context("linking the networks")?;
    tally_network::link_counterpart(&dir_b, &dir_a.join("contract.json"))
        .context("linking the networks")?;
    report.progress("starting 8 validators…");
    for dir in [&dir_a, &dir_b] {
        for i in 0..4 {
            start_validator(tally, &dir.join(format!("validator-{i}")), daemons).await?;
        }
    }
    // Every payer and the maker connect from 127.0.0.1: more than the relay's default
    // limit per address.
    let relay_config = RelayConfig {
        max_connections_per_ip: settings.payers + 16,
        ..RelayConfig::listening_on(([127, 0, 0, 1], 0).into())
    };
    let relay = Relay::bind(relay_config)
        .await
        .context("starting the relay")?
        .spawn();
    let relay_address = relay.local_addr().to_string();

    let mut maker_wallet = Wallet::open(&work.join("maker")).context("the maker's wallet")?;
    for key in &maker_keys {
        maker_wallet
            .add_key(Some(key.clone()), None)
            .context("the maker's wallet")?;
    }
    let (status_tx, mut status) = watch::channel(MakerStatus::default());
    let cancel = CancellationToken::new();
    let maker = tokio::spawn(tally_maker::run(
        MakerSettings {
            wallet_dir: work.join("maker"),
            account: None,
            pairs: vec![(contract_a.clone(), contract_b.clone())],
            relay: relay_address.clone(),
            fee_ppm: 5_000,
            fee_fixed: Amount::ZERO,
            min: Amount::from_microcash(1),
            max: Amount::from_cash(1_000_000).unwrap_or(Amount::ZERO),
            lock_time: Duration::from_secs(20),
            delta: None,
            // Quotes live three minutes: each payer listens once and wires on that quote.
            announce_every: Duration::from_secs(60),
            max_open_per_taker: 64,
            accounts: settings.accounts,
            bounds: BOUNDS,
            timeout: Duration::from_secs(10),
        },
        status_tx,
        cancel.clone(),
    ));
    let result = payers(
        settings,
        work,
        &payer_keys,
        amount,
        &relay_address,
        (&contract_a, &contract_b),
        report,
    )
    .await;
    // The maker's claims on A: wait for every wire, then check the money.
    let wires = result.as_ref().map_or(0, |timed| timed.claim_a.len());
    let settled = tokio::time::timeout(Duration::from_secs(60), async {
        while status.borrow().completed < wires {
            if status.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    cancel.cancel();
    // A maker that stopped on its own (a journal it could not write) says why.
    match maker.await {
        Ok(Err(error)) => fail!("the maker stopped: {error}"),
        Err(error) => fail!("the maker's task: {error}"),
        Ok(Ok(())) => {}
    }
    let timed = result?;
    if settled.is_err() {
        fail!("the maker did not complete every wire");
    }
    // Exactly the amounts reached the payers on B, and amount + fee the maker on A.
    let fee = Amount::from_microcash((amount.microcash() * 5_000).div_ceil(1_000_000));
    let client_a = client(&contract_a)?;
    let client_b = client(&contract_b)?;
    let mut on_b = 0;
    for key in &payer_keys {
        on_b += balance(&client_b, key).await?;
    }
    let on_a = balance(&client_a, &maker_key).await?;
    let count = wires as u64;
    let expected_b = i128::from(count * amount.microcash());
    let expected_a = i128::from(count * (amount.microcash() + fee.microcash()));
    if on_b != expected_b || on_a != expected_a {
        fail!(
            "money moved wrongly: the payers hold {on_b} on B (expected {expected_b}), the maker {on_a} on A (expected {expected_a})"
        );
    }
    Ok(Figures {
        wires,
        payers: settings.payers,
        accounts: settings.accounts,
        cash: settings.cash,
        listen: settings.listen,
        elapsed: timed.elapsed,
        lock_a: Distribution::new(timed.lock_a),
        maker_lock_b: Distribution::new(timed.maker_lock_b),
        claim_b: Distribution::new(timed.claim_b),
        claim_a: Distribution::new(timed.claim_a),
    })
}

fn client(contract: &tally_core::NetworkContract) -> Result<QuorumClient, BenchError> {
    QuorumClient::new(contract.clone(), Duration::from_secs(10)).context("a client")
}

async fn balance(client: &QuorumClient, key: &SecretKey) -> Result<i128, BenchError> {
    Ok(tally_wallet::views::balance(client, &key.account())
        .await
        .context("a balance")?
        .balance)
}

/// Each step's time after the chosen quote, for every wire, and the timed window.
#[derive(Default)]
struct Timed {
    elapsed: Duration,
    lock_a: Vec<Duration>,
    maker_lock_b: Vec<Duration>,
    claim_b: Vec<Duration>,
    claim_a: Vec<Duration>,
}

/// The payers, each a task with its own wallet: it hears the maker's quote once (untimed),
/// then wires its share one after another on it.
async fn payers(
    settings: &Settings,
    work: &Path,
    keys: &[SecretKey],
    amount: Amount,
    relay: &str,
    (contract_a, contract_b): (&tally_core::NetworkContract, &tally_core::NetworkContract),
    report: &dyn Report,
) -> Result<Timed, BenchError> {
    let want = tally_swap::Want {
        asset: payer::ASSET.into(),
        network_a: contract_a.id(),
        network_b: contract_b.id(),
    };
    let quotes = payer::collect_quotes(
        relay,
        &want,
        settings.listen.max(Duration::from_millis(300)),
    )
    .await;
    if quotes.is_empty() {
        fail!("the maker announced no quote");
    }
    report.progress(&format!(
        "{} wires from {} payers…",
        settings.wires, settings.payers
    ));
    let clock = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (p, key) in keys.iter().enumerate() {
        let share = settings.wires / keys.len() + usize::from(p < settings.wires % keys.len());
        let dir = work.join(format!("payer-{p}"));
        let (key, quotes, relay) = (key.clone(), quotes.clone(), relay.to_owned());
        let (contract_a, contract_b) = (contract_a.clone(), contract_b.clone());
        tasks.spawn(async move {
            let mut wallet = Wallet::open(&dir).context("a payer's wallet")?;
            wallet
                .add_key(Some(key.clone()), None)
                .context("a payer's wallet")?;
            let mut timed = Timed::default();
            for i in 0..share {
                let request = WireRequest {
                    key: key.clone(),
                    client_a: client(&contract_a)?.into(),
                    client_b: client(&contract_b)?.into(),
                    relay: relay.clone(),
                    amount,
                    max_fee: None,
                    bounds: BOUNDS,
                    listen: Duration::ZERO,
                    known_quotes: quotes.clone(),
                };
                let mut quoted = None;
                let mut times = [None; 4];
                let record = payer::wire(&wallet, request, |step, now| match step {
                    WireStep::Quote { .. } => quoted = Some(now),
                    WireStep::LockedA { .. } => times[0] = Some(now),
                    WireStep::MakerLockedB { .. } => times[1] = Some(now),
                    WireStep::ClaimedB { .. } => times[2] = Some(now),
                    WireStep::MakerClaimedA { .. } => times[3] = Some(now),
                    _ => {}
                })
                .await
                .with_context(|| format!("payer {p}, wire {i}"))?;
                if record.outcome != Some(Outcome::Completed) {
                    fail!("payer {p}, wire {i} ended {:?}", record.outcome);
                }
                let (Some(quoted), [Some(a), Some(b), Some(c), Some(d)]) = (quoted, times) else {
                    fail!("payer {p}, wire {i} skipped a step");
                };
                timed.lock_a.push(a - quoted);
                timed.maker_lock_b.push(b - quoted);
                timed.claim_b.push(c - quoted);
                timed.claim_a.push(d - quoted);
            }
            Ok::<Timed, BenchError>(timed)
        });
    }
    let mut all = Timed::default();
    while let Some(joined) = tasks.join_next().await {
        let timed =
            joined.map_err(|error| BenchError::Check(format!("a payer task: {error}")))??;
        all.lock_a.extend(timed.lock_a);
        all.maker_lock_b.extend(timed.maker_lock_b);
        all.claim_b.extend(timed.claim_b);
        all.claim_a.extend(timed.claim_a);
    }
    all.elapsed = clock.elapsed();
    Ok(all)
}
