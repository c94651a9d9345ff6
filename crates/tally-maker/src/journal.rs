//! One wire as the maker keeps it, `maker/wires/<payer's escrow>.json`: the quote it
//! follows, the saga's state, the proofs of the maker's own lock, claim or refund,
//! and how it ended. Written whenever the saga asks, before anything it asks after.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tally_core::EscrowId;
use tally_swap::{Action, Event, Maker, MakerPhase, MakerState, Outcome, SignedQuote};
use tally_wallet::wire::{Driven, Proof, WireError, keep_once, read_journal, write_journal};

use crate::{MakerError, WireSummary};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MakerRecord {
    pub started_ms: u64,
    pub quote: SignedQuote,
    pub state: MakerState,
    #[serde(alias = "certificates")]
    pub proofs: Vec<Proof>,
    pub outcome: Option<Outcome>,
}

impl MakerRecord {
    pub fn summary(&self) -> WireSummary {
        let amount_b = self.state.terms_b().map(|terms| terms.amount);
        WireSummary {
            escrow_a: self.state.escrow_a(),
            phase: phase_name(self.state.phase()),
            fee: amount_b.and_then(|amount| self.quote.quote.fee_for(amount)),
            amount_b,
            started_ms: self.started_ms,
        }
    }
}

fn phase_name(phase: &MakerPhase) -> String {
    match phase {
        MakerPhase::AwaitingLock => "awaiting the payer's lock on A".into(),
        MakerPhase::Locking => "locking on B".into(),
        MakerPhase::Locked => "locked on B, awaiting the secret".into(),
        MakerPhase::Claiming => "claiming on A".into(),
        MakerPhase::AwaitingRefund => "awaiting the refund time on B".into(),
        MakerPhase::Refunding => "refunding on B".into(),
        MakerPhase::Finished(Outcome::Completed) => "completed".into(),
        MakerPhase::Finished(Outcome::Refunded) => "refunded".into(),
        MakerPhase::Finished(Outcome::Aborted(why)) => format!("aborted: {why}"),
        MakerPhase::Finished(Outcome::Lost(why)) => format!("lost: {why}"),
    }
}

/// The maker saga of one wire with its record.
pub(crate) struct MakerWire {
    pub maker: Maker,
    pub record: MakerRecord,
    pub path: PathBuf,
    /// Who locked on A, when the notice's check saw it (before the maker's own lock names
    /// it): for the limit of open wires per taker.
    pub payer: Option<tally_core::AccountId>,
}

impl Driven for MakerWire {
    fn handle(&mut self, event: Event, now: u64) -> Vec<Action> {
        let actions = self.maker.handle(event, now);
        self.record.state = self.maker.snapshot();
        actions
    }

    fn journal(&mut self) -> Result<(), WireError> {
        self.record.state = self.maker.snapshot();
        self.record.outcome = self.maker.outcome().cloned();
        write_journal(&self.path, &self.record)
    }

    fn signer(&self, _network: &tally_core::NetworkId) -> Option<tally_core::AccountId> {
        // The maker locks only on B, from the account its quote names there.
        Some(self.record.quote.quote.maker_b)
    }

    fn keep(&mut self, proof: Proof) {
        keep_once(&mut self.record.proofs, proof);
    }
}

/// Where the wire answering `escrow_a` is kept.
pub(crate) fn path(dir: &Path, escrow_a: &EscrowId) -> PathBuf {
    dir.join("wires").join(format!("{escrow_a}.json"))
}

/// Every wire kept in `dir`, open or finished.
pub(crate) fn load_all(dir: &Path) -> Result<Vec<(PathBuf, MakerRecord)>, MakerError> {
    let wires = dir.join("wires");
    std::fs::create_dir_all(&wires).map_err(|error| MakerError::Journal {
        path: wires.display().to_string(),
        reason: error.to_string(),
    })?;
    let entries = std::fs::read_dir(&wires).map_err(|error| MakerError::Journal {
        path: wires.display().to_string(),
        reason: error.to_string(),
    })?;
    let mut records = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let record: MakerRecord = read_journal(&path)?;
        records.push((path, record));
    }
    records.sort_by_key(|(_, record)| record.started_ms);
    Ok(records)
}
