//! What a quorum run measures, and the limits it runs under.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::BenchError;

/// What `tally bench quorum` measures, and how much of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Accounts funded at genesis; the validator's memory is measured holding them.
    pub accounts: usize,
    /// Transfers for the throughput run, each one order and one certificate (0: only load
    /// the validator and measure its memory).
    pub transfers: usize,
    /// Connections the throughput load is spread over.
    pub connections: usize,
    /// Transfers per round: a round's orders go out, then its certificates (at most
    /// `accounts`, so that a round's senders are distinct).
    pub batch: usize,
    /// Payments for the end-to-end run (0 skips it).
    pub payments: usize,
    /// Concurrent wallets in the end-to-end run.
    pub clients: usize,
    /// Payments for the one-wallet run after it (`send-many`: one wallet holding the
    /// end-to-end run's accounts pays them all at once; 0 skips it).
    pub payroll: usize,
    /// Work folder (must not exist yet); `None`: a fresh folder in the system temporary
    /// folder, removed afterwards.
    pub dir: Option<PathBuf>,
    /// Keep the default work folder instead of removing it.
    pub keep: bool,
}

impl Settings {
    /// The figures BENCHMARKS.md records are taken with these unless it says otherwise.
    pub const DEFAULT: Settings = Settings {
        accounts: 100_000,
        transfers: 100_000,
        connections: 4,
        batch: 10_000,
        payments: 4_000,
        clients: 16,
        payroll: 4_000,
        dir: None,
        keep: false,
    };

    pub(super) fn check(&self) -> Result<(), BenchError> {
        let refuse = |why: String| Err(BenchError::Settings(why));
        if self.accounts < 2 {
            return refuse(
                "--accounts must be at least 2 (transfers need a sender and a recipient)".into(),
            );
        }
        if self.connections == 0 {
            return refuse("--connections must be at least 1".into());
        }
        if self.batch == 0 || self.batch > self.accounts {
            return refuse(format!(
                "--batch must be between 1 and --accounts ({}): a round's senders must be distinct",
                self.accounts
            ));
        }
        if self.payments > 0 && self.clients == 0 {
            return refuse("--clients must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::DEFAULT
    }
}

/// How long a validator may take to load its ledger before the bench gives up.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the bench waits for any one answer.
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Every transfer moves one microcash; every funded account holds plenty.
pub(super) const TRANSFER_MICROCASH: u64 = 1;
pub(super) const FUND_MICROCASH: u64 = 1_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_make_a_run_are_refused_with_the_flag() {
        let refused = |settings: Settings| match settings.check() {
            Err(BenchError::Settings(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(
            refused(Settings {
                accounts: 1,
                ..Settings::DEFAULT
            })
            .starts_with("--accounts")
        );
        assert!(
            refused(Settings {
                connections: 0,
                ..Settings::DEFAULT
            })
            .starts_with("--connections")
        );
        assert!(
            refused(Settings {
                batch: 100_001,
                ..Settings::DEFAULT
            })
            .starts_with("--batch")
        );
        assert!(
            refused(Settings {
                clients: 0,
                ..Settings::DEFAULT
            })
            .starts_with("--clients")
        );
        assert!(
            Settings {
                clients: 0,
                payments: 0,
                ..Settings::DEFAULT
            }
            .check()
            .is_ok()
        );
        assert!(Settings::default().check().is_ok());
    }
}
