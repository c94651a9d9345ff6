//! `tally bench web`: the web wallet against four `tally node` processes.
//!
//! 1. **The wallet page.** A wallet holding `receipts` receipts (real payments, paid untimed
//!    with `send-many`) and about `coins` coins (real withdrawals) is served by `tally web`
//!    (the library, in this process); the wallet page is asked once (the first visit reads
//!    every receipt) and then `pages` times one after another: how long each took to come
//!    back whole over loopback, which is the server's time plus a loopback round trip.
//! 2. **The explorer under a paying network.** Wallets pay at an offered rate
//!    (`--rate` payments a second, from 16 accounts) for `seconds` alone, then for
//!    `seconds` while 32 connections ask for explorer pages at `views` a second in all (0:
//!    as fast as they are served); the payments certified per second and their latency in
//!    each, and the page views served per second.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tally_core::{AccountId, Amount, NetworkContract, SecretKey};
use tally_wallet::coins::{self, CoinStore, RandomKeys};
use tally_wallet::payroll::{self, Payment};
use tally_wallet::{QuorumClient, Wallet, ops};
use tally_web::{Web, WebConfig};

use crate::error::{BenchError, Context, fail};
use crate::percentile::Distribution;
use crate::process::{Daemons, free_ports, in_work_dir};
use crate::quorum::network::{account_keys, start_validator, write_network};
use crate::report::Report;

/// What to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Receipts the wallet keeps (paid untimed).
    pub receipts: usize,
    /// Coins the wallet holds, about (withdrawn untimed, 11 per withdrawal).
    pub coins: usize,
    /// Wallet page views timed one after another.
    pub pages: usize,
    /// Payments a second the paying wallets offer.
    pub rate: u64,
    /// Explorer page views a second asked (0: as fast as they are served).
    pub views: u64,
    /// Seconds of payments alone, and again with the explorer's load.
    pub seconds: u64,
    /// Work folder (must not exist); default a temporary one.
    pub dir: Option<PathBuf>,
    /// Keep the default work folder.
    pub keep: bool,
}

impl Settings {
    /// The defaults: the wallet (10,000 receipts, 1,000 coins).
    pub const DEFAULT: Settings = Settings {
        receipts: 10_000,
        coins: 1_000,
        pages: 50,
        rate: 300,
        views: 1000,
        seconds: 10,
        dir: None,
        keep: false,
    };
}

/// One stretch of payments.
#[derive(Clone, Debug)]
pub struct PaymentFigures {
    pub certified: usize,
    pub failed: usize,
    pub per_sec: f64,
    pub latencies: Distribution,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Figures {
    pub receipts: usize,
    pub coins: usize,
    pub first_page: Duration,
    pub pages: Distribution,
    pub rate: u64,
    pub views_asked: u64,
    pub alone: PaymentFigures,
    pub with_explorer: PaymentFigures,
    pub explorer_views_per_sec: f64,
    pub explorer_views: Distribution,
}

impl fmt::Display for PaymentFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} certified ({} failed), {:.0} payments/s, p50 {:.1} ms, p99 {:.1} ms",
            self.certified,
            self.failed,
            self.per_sec,
            self.latencies.millis(50.0),
            self.latencies.millis(99.0)
        )
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f)?;
        writeln!(
            f,
            "wallet page: a wallet of {} receipts and {} coins, served by `tally web` in this process",
            self.receipts, self.coins
        )?;
        writeln!(
            f,
            "  first view (reads every receipt) {:.1} ms; then {} views: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.first_page.as_secs_f64() * 1e3,
            self.pages.len(),
            self.pages.millis(50.0),
            self.pages.millis(99.0),
            self.pages.max().map_or(0.0, |d| d.as_secs_f64() * 1e3)
        )?;
        writeln!(
            f,
            "explorer: payments offered at {} a second by 16 wallets; explorer pages asked at {} a second{}",
            self.rate,
            self.views_asked,
            if self.views_asked == 0 {
                " (as fast as served)"
            } else {
                ""
            }
        )?;
        writeln!(f, "  alone:                {}", self.alone)?;
        writeln!(f, "  with explorer load:   {}", self.with_explorer)?;
        let change = (self.with_explorer.per_sec / self.alone.per_sec.max(1e-9) - 1.0) * 100.0;
        write!(
            f,
            "  explorer pages served {:.0}/s (p50 {:.1} ms, p99 {:.1} ms); payment rate {change:+.1} %",
            self.explorer_views_per_sec,
            self.explorer_views.millis(50.0),
            self.explorer_views.millis(99.0),
        )
    }
}

/// Runs the benchmark with `tally` as the validators.
pub async fn run(
    settings: Settings,
    tally: &Path,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    if settings.pages == 0 || settings.seconds == 0 || settings.rate == 0 {
        fail!("--pages, --seconds and --rate must be at least 1");
    }
    let (_work, figures) = in_work_dir(
        "web",
        settings.dir.as_deref(),
        settings.keep,
        report,
        async |work, daemons| measure(&settings, work, tally, daemons, report).await,
    )
    .await?;
    report.section(&figures.to_string());
    Ok(figures)
}

/// Cash a withdrawal takes: 249 is 100 + 100 + 25 + 4 × 5 + 4 × 1, eleven coins.
const WITHDRAWAL_CASH: u64 = 249;
const COINS_PER_WITHDRAWAL: usize = 11;
/// Accounts that pay the explorer part's payments.
const PAYERS: usize = 16;

async fn measure(
    settings: &Settings,
    work: &Path,
    tally: &Path,
    daemons: &Daemons,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    let dir = work.join("network");
    let validators: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    let withdrawals = settings.coins.div_ceil(COINS_PER_WITHDRAWAL);
    // The wallet's accounts: 16 for the receipts, enough more for the withdrawals (four
    // of 249 cash from each 1,000); then the paying wallets' 16.
    let coin_accounts = withdrawals.div_ceil(4);
    let keys = account_keys(16 + coin_accounts + PAYERS);
    let (mine, payers) = keys.split_at(16 + coin_accounts);
    let ports = free_ports(2 * validators.len())?;
    let contract = write_network(&dir, &validators, &keys, &ports, "bench-web", None)?;
    for i in 0..validators.len() {
        start_validator(tally, &dir.join(format!("validator-{i}")), daemons).await?;
    }
    let mut wallet = Wallet::open(&work.join("wallet")).context("the bench's wallet")?;
    for key in mine {
        wallet
            .add_key(Some(key.clone()), None)
            .context("the bench's wallet")?;
    }
    fill_wallet(settings, &wallet, &contract, mine, report).await?;
    let coins = CoinStore::open(wallet.dir(), contract.id())
        .and_then(|store| store.spendable())
        .context("the coin folders")?
        .len();

    let web = Web::start(WebConfig {
        wallet: wallet.dir().to_path_buf(),
        networks: vec![contract.clone()],
        listen: "127.0.0.1:0".parse().context("the loopback address")?,
        timeout: Duration::from_secs(10),
        relay: None,
    })
    .await
    .context("starting the web wallet")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .context("the HTTP client")?;
    let token = web.token().reveal().to_string();
    let wallet_page = format!("http://{}/", web.address());
    report.progress("timing the wallet page…");
    let first_page = view(&http, &wallet_page, &token).await?;
    let mut pages = Vec::with_capacity(settings.pages);
    for _ in 0..settings.pages {
        pages.push(view(&http, &wallet_page, &token).await?);
    }

    let span = Duration::from_secs(settings.seconds);
    report.progress(&format!(
        "payments at {} a second alone for {} s…",
        settings.rate, settings.seconds
    ));
    let alone = pay_at(work, &contract, payers, settings.rate, span).await?;
    report.progress(&format!(
        "payments at {} a second with the explorer's load for {} s…",
        settings.rate, settings.seconds
    ));
    let explorer = format!("http://{}/explorer", web.address());
    let load = ExplorerLoad::start(&http, &explorer, &token, settings.views);
    let with_explorer = pay_at(work, &contract, payers, settings.rate, span).await?;
    let (views_per_sec, views) = load.stop().await;
    web.stop().await;
    Ok(Figures {
        receipts: settings.receipts,
        coins,
        first_page,
        pages: Distribution::new(pages),
        rate: settings.rate,
        views_asked: settings.views,
        alone,
        with_explorer,
        explorer_views_per_sec: views_per_sec,
        explorer_views: Distribution::new(views),
    })
}

/// Pays the receipts (a thousandth of a cash each, to fresh accounts, from 16 accounts
/// with `send-many`) and withdraws the coins.
async fn fill_wallet(
    settings: &Settings,
    wallet: &Wallet,
    contract: &NetworkContract,
    mine: &[SecretKey],
    report: &dyn Report,
) -> Result<(), BenchError> {
    let payments: Vec<Payment> = (0..settings.receipts)
        .map(|_| Payment {
            recipient: SecretKey::generate().account(),
            amount: Amount::from_microcash(1_000),
        })
        .collect();
    let paying: Vec<(SecretKey, Amount)> = mine[..16]
        .iter()
        .map(|key| (key.clone(), Amount::from_microcash(1_000_000_000)))
        .collect();
    let mut done = 0usize;
    let outcomes = payroll::send_many(
        wallet,
        contract,
        Duration::from_secs(30),
        &paying,
        &payments,
        |_| {
            done += 1;
            if done.is_multiple_of(1000) {
                report.progress(&format!(
                    "paying the wallet's receipts: {done} of {}…",
                    settings.receipts
                ));
            }
        },
    )
    .await;
    if let Some(failed) = outcomes.iter().find(|o| o.result.is_err()) {
        fail!(
            "a receipt's payment failed: {:?}",
            failed.result.as_ref().err()
        );
    }
    let client =
        QuorumClient::new(contract.clone(), Duration::from_secs(30)).context("the client")?;
    let store = CoinStore::open(wallet.dir(), contract.id()).context("the coin folders")?;
    let withdrawals = settings.coins.div_ceil(COINS_PER_WITHDRAWAL);
    for i in 0..withdrawals {
        if i % 20 == 0 {
            report.progress(&format!("withdrawing coins: {i} of {withdrawals}…"));
        }
        let key = &mine[16 + i / 4];
        coins::withdraw(
            wallet,
            &client,
            &store,
            &mut RandomKeys,
            key,
            Amount::from_microcash(WITHDRAWAL_CASH * 1_000_000),
        )
        .await
        .context("withdrawing coins")?;
    }
    Ok(())
}

/// One page view: sent, and read whole.
async fn view(http: &reqwest::Client, url: &str, token: &str) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let answer = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .context("asking for a page")?;
    let status = answer.status();
    answer.bytes().await.context("reading a page")?;
    if !status.is_success() {
        fail!("{url} answered {status}");
    }
    Ok(started.elapsed())
}

/// Payments at `rate` a second for `span` from `payers` (each pays in turn, to a fresh
/// account), counted from the start; each payment is timed from its send to its receipt.
async fn pay_at(
    work: &Path,
    contract: &NetworkContract,
    payers: &[SecretKey],
    rate: u64,
    span: Duration,
) -> Result<PaymentFigures, BenchError> {
    let started = Instant::now();
    let per_payer = Duration::from_secs_f64(payers.len() as f64 / rate as f64);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, key) in payers.iter().enumerate() {
        let key = key.clone();
        let contract = contract.clone();
        let folder = work.join(format!("payer-{i}"));
        tasks.spawn(async move {
            let wallet = Wallet::open(&folder).map_err(|e| e.to_string())?;
            let client =
                QuorumClient::new(contract, Duration::from_secs(10)).map_err(|e| e.to_string())?;
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            // Each payer starts at its own offset, so the payments spread over the second.
            let mut next = started + per_payer.mul_f64(i as f64 / PAYERS as f64);
            while next < started + span {
                tokio::time::sleep_until(next.into()).await;
                let to: AccountId = SecretKey::generate().account();
                let sent = Instant::now();
                match ops::pay(&wallet, &client, &key, to, Amount::from_microcash(1_000)).await {
                    Ok(_) => latencies.push(sent.elapsed()),
                    Err(_) => failed += 1,
                }
                next += per_payer;
            }
            Ok::<_, String>((latencies, failed))
        });
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        let (mine, lost) = joined
            .context("a paying task")?
            .map_err(BenchError::Check)?;
        latencies.extend(mine);
        failed += lost;
    }
    let elapsed = started.elapsed().max(span);
    Ok(PaymentFigures {
        certified: latencies.len(),
        failed,
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies: Distribution::new(latencies),
    })
}

/// Connections asking for explorer pages.
const EXPLORER_CONNECTIONS: u32 = 32;

/// 32 connections asking for explorer pages, `per_sec` a second in all (0: as fast as
/// they are served).
struct ExplorerLoad {
    started: Instant,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    tasks: tokio::task::JoinSet<Vec<Duration>>,
}

impl ExplorerLoad {
    fn start(http: &reqwest::Client, url: &str, token: &str, per_sec: u64) -> ExplorerLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        let every = (per_sec > 0)
            .then(|| Duration::from_secs_f64(f64::from(EXPLORER_CONNECTIONS) / per_sec as f64));
        let started = Instant::now();
        for i in 0..EXPLORER_CONNECTIONS {
            let (http, url, token) = (http.clone(), url.to_string(), token.to_string());
            let (stop, served) = (stop.clone(), served.clone());
            tasks.spawn(async move {
                let mut views = Vec::new();
                let mut next = every.map(|every| {
                    started + every.mul_f64(f64::from(i) / f64::from(EXPLORER_CONNECTIONS))
                });
                while !stop.load(Ordering::Relaxed) {
                    if let (Some(at), Some(every)) = (next.as_mut(), every) {
                        tokio::time::sleep_until((*at).into()).await;
                        *at += every;
                    }
                    if let Ok(took) = view(&http, &url, &token).await {
                        served.fetch_add(1, Ordering::Relaxed);
                        views.push(took);
                    }
                }
                views
            });
        }
        ExplorerLoad {
            started,
            stop,
            served,
            tasks,
        }
    }

    /// Stops; the views served per second while it ran, and each view's time.
    async fn stop(mut self) -> (f64, Vec<Duration>) {
        let served = self.served.load(Ordering::Relaxed) as f64
            / self.started.elapsed().as_secs_f64().max(1e-9);
        self.stop.store(true, Ordering::Relaxed);
        let mut views = Vec::new();
        while let Some(Ok(mine)) = self.tasks.join_next().await {
            views.extend(mine);
        }
        (served, views)
    }
}
