//! `tally bench live`: LiveConnect transfers between two wallets, through a relay, on four
//! `tally node` processes.
//!
//! The relay runs in this process; the two wallets are tasks with their own clients, as
//! two users' `tally wallet … live send` and `live receive` would be. Untimed, the sender's
//! funded accounts pay into coins (1,000 cash each, four 250s). Each transfer is timed from
//! the start of `live::send` (the sender makes the connection file, joins, prepares coins,
//! making change as needed) to its checked receipt, the receiver having powned every coin.
//! Transfers run one after another.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use tally_core::{Amount, SecretKey};
use tally_live::{ReceiverOutcome, SenderOutcome, Timing};
use tally_proto::live::ConnectionFile;
use tally_relay::{Relay, RelayConfig};
use tally_wallet::coins::{self, CoinStore, RandomKeys};
use tally_wallet::live::{self, ReceiveRequest, SendRequest};
use tally_wallet::{QuorumClient, Wallet};

use crate::error::{BenchError, Context, fail};
use crate::percentile::Distribution;
use crate::process::{Daemons, free_ports, in_work_dir};
use crate::quorum::network::{account_keys, start_validator, write_network};
use crate::report::Report;

/// What to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Transfers, one after another.
    pub transfers: usize,
    /// Whole cash each transfer sends.
    pub cash: u64,
    /// Work folder (must not exist); default a temporary one.
    pub dir: Option<std::path::PathBuf>,
    /// Keep the default work folder.
    pub keep: bool,
}

impl Settings {
    /// 100 transfers of 281 cash (250 + 25 + 5 + 1: every transfer needs change).
    pub const DEFAULT: Settings = Settings {
        transfers: 100,
        cash: 281,
        dir: None,
        keep: false,
    };
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Figures {
    pub transfers: usize,
    pub cash: u64,
    pub elapsed: Duration,
    /// Each transfer, from `live send` starting to the checked receipt.
    pub latencies: Distribution,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f)?;
        writeln!(
            f,
            "live: 4 `tally node` processes, a relay, two wallets; {} transfers of {} cash one after another",
            self.transfers, self.cash
        )?;
        write!(
            f,
            "  {:.3} s in all; send start to checked receipt p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.elapsed.as_secs_f64(),
            self.latencies.millis(50.0),
            self.latencies.millis(90.0),
            self.latencies.millis(99.0),
            self.latencies.millis(100.0),
        )
    }
}

/// The transfer's clocks: the protocol's, with a heartbeat every half second.
fn timing() -> Timing {
    Timing {
        heartbeat_ms: 500,
        ..Timing::default()
    }
}

/// Runs the benchmark with `tally` as the validators.
pub async fn run(
    settings: Settings,
    tally: &Path,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    if settings.transfers == 0 || settings.cash == 0 {
        fail!("--transfers and --cash must be at least 1");
    }
    let (_work, figures) = in_work_dir(
        "live",
        settings.dir.as_deref(),
        settings.keep,
        report,
        async |work, daemons| transfers(&settings, work, tally, daemons, report).await,
    )
    .await?;
    report.section(&figures.to_string());
    Ok(figures)
}

async fn transfers(
    settings: &Settings,
    work: &Path,
    tally: &Path,
    daemons: &Daemons,
    report: &dyn Report,
) -> Result<Figures, BenchError> {
    let dir = work.join("network");
    let validators: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    // Each funded account holds 1,000 cash, all withdrawn into coins before the clock starts.
    let needed = settings.transfers as u64 * settings.cash;
    let accounts = account_keys(usize::try_from(needed.div_ceil(1000)).unwrap_or(1).max(1));
    let ports = free_ports(2 * validators.len())?;
    let contract = write_network(&dir, &validators, &accounts, &ports, "bench-live", None)?;
    for i in 0..validators.len() {
        start_validator(tally, &dir.join(format!("validator-{i}")), daemons).await?;
    }
    let relay = Relay::bind(RelayConfig::listening_on(([127, 0, 0, 1], 0).into()))
        .await
        .context("starting the relay")?
        .spawn();
    let relay_address = relay.local_addr().to_string();

    let mut sender = Wallet::open(&work.join("sender")).context("the sender's wallet")?;
    for key in &accounts {
        sender
            .add_key(Some(key.clone()), None)
            .context("the sender's wallet")?;
    }
    let receiver = Wallet::open(&work.join("receiver")).context("the receiver's wallet")?;
    let network = contract.id();
    let sender_bank = CoinStore::open(sender.dir(), network).context("the sender's coins")?;
    let receiver_bank = CoinStore::open(receiver.dir(), network).context("the receiver's coins")?;
    let sender_client =
        QuorumClient::new(contract.clone(), Duration::from_secs(30)).context("a client")?;
    let receiver_client =
        QuorumClient::new(contract, Duration::from_secs(30)).context("a client")?;
    let Some(amount) = Amount::from_cash(settings.cash) else {
        fail!("{} cash is more than any amount", settings.cash);
    };

    // Untimed: the sender's accounts pay into coins, so every transfer starts from a Bank
    // of coins and makes change from it.
    for (k, key) in accounts.iter().enumerate() {
        report.progress(&format!(
            "withdrawing from account {} of {}…",
            k + 1,
            accounts.len()
        ));
        coins::withdraw(
            &sender,
            &sender_client,
            &sender_bank,
            &mut RandomKeys,
            key,
            Amount::from_microcash(1_000_000_000),
        )
        .await
        .with_context(|| format!("withdrawing from account {k}"))?;
    }
    let mut latencies = Vec::with_capacity(settings.transfers);
    let clock = Instant::now();
    for i in 0..settings.transfers {
        if i % 10 == 0 {
            report.progress(&format!("transfer {} of {}…", i + 1, settings.transfers));
        }
        let connection_file = work.join(format!("connection-{i}.txt"));
        let send_request = SendRequest {
            amount,
            relay: relay_address.clone(),
            connection_file: connection_file.clone(),
            timing: timing(),
            cancel: None,
        };
        let receive_request = ReceiveRequest {
            connection_file: connection_file.clone(),
            expected_amount: Some(amount),
            timing: timing(),
            cancel: None,
        };
        let started = Instant::now();
        let (mut quiet_sender, mut quiet_receiver) = (|_| {}, |_| {});
        let (mut sender_keys, mut receiver_keys) = (RandomKeys, RandomKeys);
        let send = live::send(
            &sender,
            &sender_client,
            &sender_bank,
            &mut sender_keys,
            None,
            &send_request,
            &mut quiet_sender,
        );
        let receive = async {
            // The receiver starts once the sender has written the connection file.
            loop {
                if let Ok(text) = std::fs::read_to_string(&connection_file)
                    && ConnectionFile::parse(&text).is_ok()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            live::receive(
                &receiver,
                &receiver_client,
                &receiver_bank,
                &mut receiver_keys,
                &receive_request,
                &mut quiet_receiver,
            )
            .await
        };
        let (sent, received) = tokio::join!(
            async {
                let sent = send.await;
                (sent, started.elapsed())
            },
            receive
        );
        let (sent, took) = sent;
        let sent = sent.with_context(|| format!("transfer {i}: sending"))?;
        let received = received.with_context(|| format!("transfer {i}: receiving"))?;
        if !matches!(sent.outcome, SenderOutcome::Delivered { .. }) {
            fail!("transfer {i}: the sender ended with {:?}", sent.outcome);
        }
        if !matches!(received.outcome, ReceiverOutcome::Received { .. }) {
            fail!(
                "transfer {i}: the receiver ended with {:?}",
                received.outcome
            );
        }
        latencies.push(took);
    }
    let elapsed = clock.elapsed();
    if let Err(error) = relay.shutdown().await {
        tracing::warn!(%error, "relay stop");
    }
    Ok(Figures {
        transfers: settings.transfers,
        cash: settings.cash,
        elapsed,
        latencies: Distribution::new(latencies),
    })
}
