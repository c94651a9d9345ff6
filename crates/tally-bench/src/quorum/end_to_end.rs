//! The end-to-end run: four validators, concurrent wallets paying through `QuorumClient`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_core::NetworkContract;
use tally_core::{Amount, Order, SecretKey, SignedOrder, Transfer};
use tally_wallet::payroll::{self, Payment};
use tally_wallet::{QuorumClient, Wallet, views};

use super::network::{account_keys, start_validator, write_network};
use super::settings::{Settings, TRANSFER_MICROCASH};
use crate::error::{BenchError, Context, fail};
use crate::percentile::Distribution;
use crate::process::{Daemons, free_ports};
use crate::procfs::{self, Process};
use crate::report::Report;

/// What the end-to-end run measured.
#[derive(Clone, Debug)]
pub struct EndToEndFigures {
    pub payments: usize,
    pub clients: usize,
    /// From the first payment signed to the last one applied by a quorum.
    pub elapsed: Duration,
    /// Each payment's time from signing to a quorum's acknowledgements.
    pub latencies: Distribution,
    /// CPU time each validator process used during the run, in validator order.
    pub validator_cpu: Vec<Duration>,
    /// CPU time the wallets (this process) used during the run.
    pub wallet_cpu: Duration,
    /// The one-wallet `send-many` run after it, if any.
    pub payroll: Option<PayrollFigures>,
}

/// One wallet holding the end-to-end run's accounts pays a payroll with
/// `tally_wallet::payroll::send_many` (what `tally wallet … send-many` does).
#[derive(Clone, Debug)]
pub struct PayrollFigures {
    pub payments: usize,
    pub accounts: usize,
    pub paid: usize,
    pub elapsed: Duration,
}

impl fmt::Display for PayrollFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "one wallet, send-many: {} of {} payments from {} accounts in {:.3} s: {:.0} payments/s",
            self.paid,
            self.payments,
            self.accounts,
            seconds,
            self.paid as f64 / seconds
        )
    }
}

/// The CPU one payment needs at least, by its signature work, in microseconds: each of the
/// 4 validators checks about 3 signatures (the order's, the certificate's votes beyond its
/// own) and signs its vote; the wallet signs the order and checks 3 votes. With batched
/// verification at about 25 µs a signature and 20 µs a signing, about 375 µs in all.
pub const BOUND_MICROS_PER_PAYMENT: f64 = 375.0;

impl EndToEndFigures {
    /// CPU per payment of `cpu`, in microseconds.
    fn per_payment(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.payments.max(1) as f64
    }
}

impl fmt::Display for EndToEndFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        let ms = |p: f64| {
            self.latencies
                .percentile(p)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        writeln!(f)?;
        writeln!(
            f,
            "end to end: 4 `tally node` processes, {} wallets (QuorumClient: certify, then submit to all 4)",
            self.clients
        )?;
        writeln!(
            f,
            "  {} payments in {:.3} s: {:.0} payments/s",
            self.payments,
            seconds,
            self.payments as f64 / seconds
        )?;
        writeln!(
            f,
            "  latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(50.0),
            ms(90.0),
            ms(99.0),
            ms(100.0),
        )?;
        let validators: Vec<String> = self
            .validator_cpu
            .iter()
            .map(|cpu| format!("{:.0}", self.per_payment(*cpu)))
            .collect();
        let total = self.validator_cpu.iter().sum::<Duration>() + self.wallet_cpu;
        write!(
            f,
            "  CPU per payment: validators {} µs, wallets {:.0} µs; {:.0} µs in all against a bound of about {BOUND_MICROS_PER_PAYMENT:.0} µs (the signature work)",
            validators.join(", "),
            self.per_payment(self.wallet_cpu),
            self.per_payment(total),
        )?;
        if let Some(payroll) = &self.payroll {
            write!(f, "\n  {payroll}")?;
        }
        Ok(())
    }
}

pub(super) async fn run(
    settings: &Settings,
    dir: &Path,
    tally: &Path,
    daemons: &Daemons,
    report: &dyn Report,
) -> Result<EndToEndFigures, BenchError> {
    let validators: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    // Wallet k pays wallet k+1; the last pays an extra account.
    let accounts = account_keys(settings.clients + 1);
    let ports = free_ports(2 * validators.len())?;
    let contract = write_network(
        dir,
        &validators,
        &accounts,
        &ports,
        "bench-end-to-end",
        None,
    )?;
    let mut pids = Vec::with_capacity(validators.len());
    for i in 0..validators.len() {
        pids.push(
            start_validator(tally, &dir.join(format!("validator-{i}")), daemons)
                .await?
                .pid,
        );
    }
    let cpu = || {
        let validators: Vec<Duration> = pids
            .iter()
            .map(|pid| procfs::cpu_time(Process::Id(*pid)).unwrap_or_default())
            .collect();
        (
            validators,
            procfs::cpu_time(Process::This).unwrap_or_default(),
        )
    };
    let network = contract.id();
    let contract = Arc::new(contract);
    let quorum = tally_core::Committee::new(&contract.validators)
        .context("the bench's committee")?
        .quorum();

    // Connect every wallet to every validator before the clock starts.
    let mut wallets = Vec::with_capacity(settings.clients);
    for k in 0..settings.clients {
        let client = QuorumClient::new((*contract).clone(), Duration::from_secs(30))
            .with_context(|| format!("wallet {k}"))?;
        for answer in client.hello_all().await {
            answer
                .result
                .with_context(|| format!("wallet {k}: HELLO to {}", answer.address))?;
        }
        let share = settings.payments / settings.clients
            + usize::from(k < settings.payments % settings.clients);
        wallets.push((
            client,
            accounts[k].clone(),
            accounts[k + 1].account(),
            share,
        ));
    }
    report.progress(&format!(
        "paying {} times end to end with {} wallets…",
        settings.payments, settings.clients
    ));
    let cpu_before = cpu();
    let clock = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (client, key, recipient, share) in wallets {
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for sequence in 0..share as u64 {
                let started = Instant::now();
                let order = SignedOrder::sign(
                    Order::Transfer(Transfer {
                        sender: key.account(),
                        recipient,
                        amount: Amount::from_microcash(TRANSFER_MICROCASH),
                        sequence,
                    }),
                    &key,
                    &network,
                );
                let certificate = client
                    .certify(&order)
                    .await
                    .with_context(|| format!("certifying payment {sequence}"))?;
                let acks = client.submit(&certificate).await;
                let ok = acks.iter().filter(|a| a.result.is_ok()).count();
                if ok < quorum {
                    let reasons: Vec<String> = acks
                        .into_iter()
                        .filter_map(|a| a.result.err().map(|e| format!("{}: {e}", a.address)))
                        .collect();
                    fail!(
                        "payment {sequence}: only {ok} validators applied the certificate: {}",
                        reasons.join("; ")
                    );
                }
                latencies.push(started.elapsed());
            }
            Ok::<_, BenchError>(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(settings.payments);
    while let Some(result) = tasks.join_next().await {
        latencies.extend(result.context("a wallet task failed")??);
    }
    let elapsed = clock.elapsed();
    let cpu_after = cpu();
    let payroll = if settings.payroll > 0 {
        report.progress(&format!(
            "one wallet paying {} payments from {} accounts with send-many…",
            settings.payroll, settings.clients
        ));
        Some(payroll(dir, &contract, &accounts, settings).await?)
    } else {
        None
    };
    daemons.stop();
    Ok(EndToEndFigures {
        payments: settings.payments,
        clients: settings.clients,
        elapsed,
        latencies: Distribution::new(latencies),
        validator_cpu: cpu_after
            .0
            .iter()
            .zip(&cpu_before.0)
            .map(|(after, before)| after.saturating_sub(*before))
            .collect(),
        wallet_cpu: cpu_after.1.saturating_sub(cpu_before.1),
        payroll,
    })
}

/// The one-wallet run: a wallet holding the first `settings.clients` accounts pays
/// `settings.payroll` payments to the last account with `send_many`.
async fn payroll(
    dir: &Path,
    contract: &NetworkContract,
    accounts: &[SecretKey],
    settings: &Settings,
) -> Result<PayrollFigures, BenchError> {
    let client = QuorumClient::new(contract.clone(), Duration::from_secs(30))
        .context("the payroll wallet's client")?;
    let mut wallet = Wallet::open(&dir.join("payroll-wallet")).context("the payroll wallet")?;
    let payers_keys = &accounts[..settings.clients];
    let mut payers = Vec::with_capacity(payers_keys.len());
    for key in payers_keys {
        wallet
            .add_key(Some(key.clone()), None)
            .context("adding a key to the payroll wallet")?;
        let seen = views::balance(&client, &key.account())
            .await
            .context("a payer's balance")?;
        payers.push((
            key.clone(),
            Amount::from_microcash(u64::try_from(seen.balance.max(0)).unwrap_or(0)),
        ));
    }
    let to = accounts[settings.clients].account();
    let payments = vec![
        Payment {
            recipient: to,
            amount: Amount::from_microcash(TRANSFER_MICROCASH),
        };
        settings.payroll
    ];
    let started = Instant::now();
    let outcomes = payroll::send_many(
        &wallet,
        contract,
        Duration::from_secs(30),
        &payers,
        &payments,
        |_| {},
    )
    .await;
    let elapsed = started.elapsed();
    let paid = outcomes.iter().filter(|o| o.result.is_ok()).count();
    if let Some(failed) = outcomes.iter().find_map(|o| o.result.as_ref().err()) {
        fail!(
            "send-many: {} payments failed, the first: {failed}",
            outcomes.len() - paid
        );
    }
    Ok(PayrollFigures {
        payments: settings.payroll,
        accounts: payers.len(),
        paid,
        elapsed,
    })
}
