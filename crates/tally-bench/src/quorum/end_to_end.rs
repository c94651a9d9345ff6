//! The end-to-end run: four validators, concurrent wallets paying through `QuorumClient`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_core::{Amount, Order, SecretKey, SignedOrder, Transfer};
use tally_wallet::QuorumClient;

use super::network::{account_keys, start_validator, write_network};
use super::settings::{Settings, TRANSFER_MICROCASH};
use crate::error::{BenchError, Context, fail};
use crate::percentile::Distribution;
use crate::process::{Daemons, free_ports};
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
        write!(
            f,
            "  latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(50.0),
            ms(90.0),
            ms(99.0),
            ms(100.0),
        )
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
    for i in 0..validators.len() {
        start_validator(tally, &dir.join(format!("validator-{i}")), daemons).await?;
    }
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
    daemons.stop();
    Ok(EndToEndFigures {
        payments: settings.payments,
        clients: settings.clients,
        elapsed,
        latencies: Distribution::new(latencies),
    })
}
