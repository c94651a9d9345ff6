//! `tally bench wire`: cross-server wires (seed 002) between two networks of four `tally
//! node` processes each, linked as counterparts, through a market maker and a relay.
//!
//! The relay and the maker daemon run in this process, and so does the payer's wallet, as a
//! user's `tally wallet … wire` would. Wires run one after another. Each is timed from the
//! moment the quote is chosen (the payer listens in the topic for a fixed time before, the
//! same for every wire, reported apart) through the payer's lock on A, the maker's lock on
//! B seen by the payer, to the payer's claim on B certified; the maker's claim on A follows
//! off the clock and is checked at the end with the balances.

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
use crate::process::{Daemons, Existing, WorkDir, cores, free_ports};
use crate::quorum::network::{account_keys, start_validator, write_network};
use crate::report::Report;

/// What to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Wires, one after another.
    pub wires: usize,
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
    /// 50 wires of 10 cash, quotes heard for 300 ms.
    pub const DEFAULT: Settings = Settings {
        wires: 50,
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
    pub cash: u64,
    pub listen: Duration,
    pub elapsed: Duration,
    /// Quote chosen → the payer's lock on A certified.
    pub lock_a: Distribution,
    /// → the maker's lock on B seen by the payer.
    pub maker_lock_b: Distribution,
    /// → the payer's claim on B certified: the whole wire after the quote.
    pub claim_b: Distribution,
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
            "wire: 2 networks of 4 `tally node` processes, a relay, a maker; {} wires of {} cash one after another ({:.3} s in all, quotes heard for {} ms before each)",
            self.wires,
            self.cash,
            self.elapsed.as_secs_f64(),
            self.listen.as_millis()
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
        write!(
            f,
            "  quote → claim on B certified:       {}",
            line(&self.claim_b)
        )
    }
}

/// Tight bounds for loopback (the networks declare a 200 ms clock skew bound).
const BOUNDS: Bounds = Bounds {
    certify_ms: 500,
    notice_ms: 500,
    margin_ms: 200,
};

/// Runs the benchmark with `tally` as the validators.
pub async fn run(
    settings: Settings,
    tally: &Path,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    if settings.wires == 0 || settings.cash == 0 {
        fail!("--wires and --cash must be at least 1");
    }
    let work = WorkDir::new(
        settings.dir.as_deref(),
        Existing::Refuse,
        "wire",
        settings.keep,
    )?;
    report.section(&format!(
        "tally bench wire: {} cores, work folder {}",
        cores(),
        work.path().display()
    ));
    let daemons = Daemons::default();
    let result = wires(&settings, work.path(), tally, &daemons, report).await;
    daemons.stop();
    let figures = result?;
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
    // The payer funded on A, the maker on B (one key each: the same account on both).
    let keys = account_keys(2);
    let (payer_key, maker_key) = (keys[0].clone(), keys[1].clone());
    let ports = free_ports(16)?;
    let (dir_a, dir_b) = (work.join("a"), work.join("b"));
    let validators_a: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    let validators_b: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    let contract_a = write_network(
        &dir_a,
        &validators_a,
        std::slice::from_ref(&payer_key),
        &ports[..8],
        "bench-wire-a",
        Some(200),
    )?;
    let contract_b = write_network(
        &dir_b,
        &validators_b,
        std::slice::from_ref(&maker_key),
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
    let relay = Relay::bind(RelayConfig::listening_on(([127, 0, 0, 1], 0).into()))
        .await
        .context("starting the relay")?
        .spawn();
    let relay_address = relay.local_addr().to_string();

    let mut maker_wallet = Wallet::open(&work.join("maker")).context("the maker's wallet")?;
    maker_wallet
        .add_key(Some(maker_key.clone()), None)
        .context("the maker's wallet")?;
    let mut payer_wallet = Wallet::open(&work.join("payer")).context("the payer's wallet")?;
    payer_wallet
        .add_key(Some(payer_key.clone()), None)
        .context("the payer's wallet")?;
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
            lock_time: Duration::from_secs(10),
            delta: None,
            announce_every: Duration::from_secs(5),
            max_open_per_taker: 64,
            bounds: BOUNDS,
            timeout: Duration::from_secs(10),
        },
        status_tx,
        cancel.clone(),
    ));
    let client = |contract: &tally_core::NetworkContract| {
        QuorumClient::new(contract.clone(), Duration::from_secs(10)).context("a client")
    };
    let mut lock_a = Vec::with_capacity(settings.wires);
    let mut maker_lock_b = Vec::with_capacity(settings.wires);
    let mut claim_b = Vec::with_capacity(settings.wires);
    let clock = Instant::now();
    let mut failure = None;
    for i in 0..settings.wires {
        if i % 10 == 0 {
            report.progress(&format!("wire {} of {}…", i + 1, settings.wires));
        }
        let request = WireRequest {
            key: payer_key.clone(),
            client_a: client(&contract_a)?,
            client_b: client(&contract_b)?,
            relay: relay_address.clone(),
            amount,
            max_fee: None,
            bounds: BOUNDS,
            listen: settings.listen,
        };
        let mut quoted = None;
        let mut times = [None; 3];
        let record = payer::wire(&payer_wallet, request, |step, now| match step {
            WireStep::Quote { .. } => quoted = Some(now),
            WireStep::LockedA { .. } => times[0] = Some(now),
            WireStep::MakerLockedB { .. } => times[1] = Some(now),
            WireStep::ClaimedB { .. } => times[2] = Some(now),
            _ => {}
        })
        .await;
        match record {
            Ok(record) if record.outcome == Some(Outcome::Completed) => {}
            Ok(record) => {
                failure = Some(format!("wire {i} ended {:?}", record.outcome));
                break;
            }
            Err(error) => {
                failure = Some(format!("wire {i}: {error}"));
                break;
            }
        }
        let (Some(quoted), [Some(a), Some(b), Some(c)]) = (quoted, times) else {
            failure = Some(format!("wire {i} skipped a step"));
            break;
        };
        lock_a.push(a - quoted);
        maker_lock_b.push(b - quoted);
        claim_b.push(c - quoted);
    }
    let elapsed = clock.elapsed();
    // The maker's claims on A follow each wire: wait for the last, then check the money.
    let settled = tokio::time::timeout(Duration::from_secs(30), async {
        while status.borrow().completed < lock_a.len() {
            if status.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    cancel.cancel();
    let _ = maker.await;
    if let Some(failure) = failure {
        fail!("{failure}");
    }
    if settled.is_err() {
        fail!("the maker did not complete every wire");
    }
    // Exactly the amounts reached the payer on B, and amount + fee the maker on A.
    let wires = lock_a.len() as u64;
    // The quote's 0.5%, rounded up as quotes round.
    let fee = Amount::from_microcash((amount.microcash() * 5_000).div_ceil(1_000_000));
    let paid = |who: &SecretKey, contract: &tally_core::NetworkContract| {
        let client = client(contract);
        let account = who.account();
        async move {
            let views = tally_wallet::views::balance(&client?, &account)
                .await
                .context("a balance")?;
            Ok::<i128, BenchError>(views.balance)
        }
    };
    let on_b = paid(&payer_key, &contract_b).await?;
    let on_a = paid(&maker_key, &contract_a).await?;
    let expected_b = i128::from(wires * amount.microcash());
    let expected_a = i128::from(wires * (amount.microcash() + fee.microcash()));
    if on_b != expected_b || on_a != expected_a {
        fail!(
            "money moved wrongly: the payer holds {on_b} on B (expected {expected_b}), the maker {on_a} on A (expected {expected_a})"
        );
    }
    Ok(Figures {
        wires: settings.wires,
        cash: settings.cash,
        listen: settings.listen,
        elapsed,
        lock_a: Distribution::new(lock_a),
        maker_lock_b: Distribution::new(maker_lock_b),
        claim_b: Distribution::new(claim_b),
    })
}
