//! `tally bench coins`: bearer coins against four `tally node` processes.
//!
//! 1. **Pown.** A wallet withdraws `coins` coins (250 cash each, four per funded account,
//!    untimed), then powns every one of them as `tally wallet … coins pown` does
//!    (`coins::pown_many`): each coin journaled and its files moved as one pown would, the
//!    slots checked for foreign votes in one ledger request, every order and then every
//!    certificate sent to each validator in one pipelined exchange per batch, one call for
//!    every coin as the CLI makes it (so one batch's file work overlaps the next one's
//!    network work). Coins per second.
//! 2. **Listing.** A coin folder holding `listed` coins (written untimed, without the
//!    network); the time to list every folder, as `tally wallet … coins` does.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tally_core::{Amount, Coin, CoinFile, Denomination, SecretKey};
use tally_wallet::coins::{self, CoinFolder, CoinStore, RandomKeys};
use tally_wallet::{QuorumClient, Wallet};

use crate::error::{BenchError, Context, fail};
use crate::process::{Daemons, free_ports, in_work_dir};
use crate::quorum::network::{account_keys, start_validator, write_network};
use crate::report::Report;

/// What to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Coins to pown (rounded up to a multiple of four).
    pub coins: usize,
    /// Coins in the folder whose listing is timed (0 skips it).
    pub listed: usize,
    /// Work folder (must not exist); default a temporary one.
    pub dir: Option<PathBuf>,
    /// Keep the default work folder.
    pub keep: bool,
}

impl Settings {
    /// The defaults: 2,000 coins powned, 100,000 listed.
    pub const DEFAULT: Settings = Settings {
        coins: 2000,
        listed: 100_000,
        dir: None,
        keep: false,
    };
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Figures {
    pub coins: usize,
    /// Powning every coin, one after another.
    pub pown_elapsed: Duration,
    pub listed: usize,
    /// Listing every folder of a wallet holding `listed` coins.
    pub list_elapsed: Duration,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f)?;
        writeln!(
            f,
            "pown: 4 `tally node` processes, one wallet, {} coins in one `pown_many` call",
            self.coins
        )?;
        writeln!(
            f,
            "  {} coins in {:.3} s: {:.0} coins/s",
            self.coins,
            self.pown_elapsed.as_secs_f64(),
            self.coins as f64 / self.pown_elapsed.as_secs_f64().max(1e-9),
        )?;
        write!(
            f,
            "listing: {} coins in {:.3} s",
            self.listed,
            self.list_elapsed.as_secs_f64()
        )
    }
}

/// Runs the benchmark with `tally` as the validators.
pub async fn run(
    settings: Settings,
    tally: &Path,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    if settings.coins == 0 {
        fail!("--coins must be at least 1");
    }
    let (work, (coins, pown_elapsed)) = in_work_dir(
        "coins",
        settings.dir.as_deref(),
        settings.keep,
        report,
        async |work, daemons| pown(&settings, work, tally, daemons, report).await,
    )
    .await?;
    let (listed, list_elapsed) = listing(settings.listed, &work.path().join("listing"), report)?;
    let figures = Figures {
        coins,
        pown_elapsed,
        listed,
        list_elapsed,
    };
    report.section(&figures.to_string());
    Ok(figures)
}

async fn pown(
    settings: &Settings,
    work: &Path,
    tally: &Path,
    daemons: &Daemons,
    report: &dyn Report,
) -> Result<(usize, Duration), BenchError> {
    let dir = work.join("network");
    let validators: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    // Each funded account holds 1,000 cash: four coins of 250.
    let accounts = account_keys(settings.coins.div_ceil(4));
    let ports = free_ports(2 * validators.len())?;
    let contract = write_network(&dir, &validators, &accounts, &ports, "bench-coins", None)?;
    for i in 0..validators.len() {
        start_validator(tally, &dir.join(format!("validator-{i}")), daemons).await?;
    }
    let mut wallet = Wallet::open(&work.join("wallet")).context("the bench's wallet")?;
    for key in &accounts {
        wallet
            .add_key(Some(key.clone()), None)
            .context("the bench's wallet")?;
    }
    let store = CoinStore::open(wallet.dir(), contract.id()).context("the coin folders")?;
    let client = QuorumClient::new(contract, Duration::from_secs(30)).context("the client")?;
    let mut keys = RandomKeys;
    for (i, key) in accounts.iter().enumerate() {
        if i % 50 == 0 {
            report.progress(&format!(
                "withdrawing coins: {} of {}…",
                4 * i,
                4 * accounts.len()
            ));
        }
        coins::withdraw(
            &wallet,
            &client,
            &store,
            &mut keys,
            key,
            Amount::from_microcash(4 * Denomination::TwoFifty.amount().microcash()),
        )
        .await
        .with_context(|| format!("withdrawing from account {i}"))?;
    }
    let bank = store.list(CoinFolder::Bank).context("the Bank")?;
    report.progress(&format!("powning {} coins…", bank.len()));
    let clock = Instant::now();
    let results = coins::pown_many(&wallet, &client, &store, &mut keys, &bank)
        .await
        .context("powning the Bank")?;
    let elapsed = clock.elapsed();
    for (i, result) in results.into_iter().enumerate() {
        result.with_context(|| format!("powning coin {i}"))?;
    }
    Ok((bank.len(), elapsed))
}

/// Writes `count` coin files into a Bank folder (untimed, not synced: only their names
/// are read), then times listing every folder.
fn listing(count: usize, dir: &Path, report: &dyn Report) -> Result<(usize, Duration), BenchError> {
    let network = tally_core::NetworkId(tally_core::sha256(&[b"tally bench coins listing"]));
    let store = CoinStore::open(dir, network).context("the listing's folders")?;
    let bank = dir
        .join("coins")
        .join(network.to_string())
        .join(CoinFolder::Bank.name());
    report.progress(&format!("writing {count} coin files…"));
    for i in 0..count {
        let denomination = Denomination::ALL[i % Denomination::ALL.len()];
        let coin = Coin::generate(network, denomination);
        let text = CoinFile::new(vec![coin.clone()])
            .context("a coin file")?
            .to_json();
        let name = format!("{}-{}.coin", denomination.cash(), coin.account());
        std::fs::write(bank.join(name), text).context("writing a coin file")?;
    }
    report.progress(&format!("listing {count} coins…"));
    let clock = Instant::now();
    let listed = store.list_all().context("listing")?;
    let elapsed = clock.elapsed();
    if listed.len() != count {
        fail!("listed {} coins of {count}", listed.len());
    }
    Ok((count, elapsed))
}
