//! The end of a chain run: the network heals, wallets settle (sending again what a
//! reorganisation lost), miners converge, and the end state is checked.

use tally_core::TxStatus;

use super::payer::SimPayer;
use super::{ChainWorld, Event, MinerKind};
use crate::check::Violation;

impl ChainWorld {
    /// The network heals, every miner comes back, withheld blocks are released; miners go
    /// on mining until every wallet's payments are confirmed (a wallet stuck is a violation
    /// of liveness).
    pub(super) fn heal(&mut self) -> Result<(), Box<Violation>> {
        for m in 0..self.miners.len() {
            self.miners[m].disarm_disk();
            if !self.miners[m].is_up() {
                self.queue.schedule(1, Event::Restart(m));
            }
            if self.miners[m].kind == MinerKind::Withholder {
                self.miners[m].kind = MinerKind::Honest;
                self.release(m);
            }
        }
        self.faults.net.drop_per_mille = 0;
        self.faults.net.duplicate_per_mille = 0;
        self.partitioned = None;
        self.settle_payers()
    }

    /// Every wallet reads its account until it finds every payment of its own on the chain
    /// (sending again what a reorganisation lost), with miners mining.
    pub(super) fn settle_payers(&mut self) -> Result<(), Box<Violation>> {
        if !self.mining {
            self.mining = true;
            for m in 0..self.miners.len() {
                self.schedule_mining(m);
            }
        }
        for p in 0..self.payers.len() {
            self.payers[p].payments_left = 0;
            self.payers[p].settled = false;
            self.queue.schedule(1, Event::Wake(p));
        }
        let limit = self.step + 200_000;
        while self.payers.iter().any(SimPayer::busy) {
            let Some(event) = self.queue.pop() else { break };
            if self.step >= limit {
                let stuck: Vec<String> = self
                    .payers
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.busy())
                    .map(|(i, p)| {
                        let expected: Vec<String> = self
                            .up_chains()
                            .map(|c| c.account(&p.account()).next_sequence.to_string())
                            .collect();
                        format!(
                            "payer {i} waits on sequence {} (the miners expect {}; in flight: {:?})",
                            p.next_sequence,
                            expected.join(", "),
                            p.pending.as_ref().and_then(|t| t.transfer()).map(|t| t.sequence)
                        )
                    })
                    .collect();
                return Err(self.violation(format!(
                    "a wallet's payment was not confirmed within 200,000 steps after the network healed: {}",
                    stuck.join("; ")
                )));
            }
            self.handle(event, false)?;
        }
        Ok(())
    }

    /// Mining stops; miners connect to each other until they agree. A tie between two
    /// tips of equal work is broken the way a real network breaks it: one more block.
    pub(super) fn converge(&mut self) -> Result<(), Box<Violation>> {
        self.mining = false;
        self.drain()?;
        for round in 0..8 {
            for m in 0..self.miners.len() {
                self.connect_all(m);
            }
            self.drain()?;
            let tips: Vec<_> = self.up_chains().map(|c| c.tip()).collect();
            if tips.windows(2).all(|w| w[0].hash == w[1].hash) {
                return Ok(());
            }
            if round >= 2 && tips.windows(2).all(|w| w[0].work == w[1].work) {
                self.note("tips of equal work: miner 0 finds one more block".into());
                self.mine(0, false)?;
                self.drain()?;
            }
        }
        Ok(())
    }

    /// Runs the queue empty (bounded).
    pub(super) fn drain(&mut self) -> Result<(), Box<Violation>> {
        let limit = self.step + 200_000;
        while let Some(event) = self.queue.pop() {
            if self.step >= limit {
                return Err(self.violation("the healed network did not settle".into()));
            }
            self.handle(event, false)?;
        }
        Ok(())
    }

    /// Whether every payment a wallet saw confirmed is on every miner's main chain.
    pub(super) fn payments_on_chain(&self) -> bool {
        self.payers.iter().all(|payer| {
            payer.acknowledged.iter().all(|tx| {
                self.up_chains().all(|c| {
                    matches!(
                        c.transaction_status(tx),
                        TxStatus::Confirmed { .. } | TxStatus::Buried { .. }
                    )
                })
            })
        })
    }

    /// After the network healed and settled: one chain everywhere, with the most work of
    /// any valid chain found; every confirmed payment on it; the supply exact.
    pub(super) fn check_end(&self) -> Result<(), Box<Violation>> {
        let mut tips = Vec::new();
        for (m, miner) in self.miners.iter().enumerate() {
            let Some(chain) = &miner.chain else {
                return Err(self.violation(format!("miner {m} is down after the network healed")));
            };
            self.check_chain(m, &[])?;
            for bad in &self.tree.invalid {
                if chain.is_on_main_chain(bad) {
                    return Err(self.violation(format!(
                        "miner {m} ends with block {bad}, which mints money, on its main chain"
                    )));
                }
            }
            tips.push(chain.tip());
        }
        if let Some(first) = tips.first() {
            if let Some((m, other)) = tips.iter().enumerate().find(|(_, t)| t.hash != first.hash) {
                return Err(self.violation(format!(
                    "miners did not converge: miner 0 ends at {} (height {}, work {}), miner {m} at {} (height {}, work {}); the most work found is {}",
                    first.hash,
                    first.height,
                    first.work,
                    other.hash,
                    other.height,
                    other.work,
                    self.tree.most_work()
                )));
            }
            if first.work != self.tree.most_work() {
                return Err(self.violation(format!(
                    "miners converged on a chain with work {} although a valid chain with work {} was found",
                    first.work,
                    self.tree.most_work()
                )));
            }
        }
        for (p, payer) in self.payers.iter().enumerate() {
            for tx in &payer.acknowledged {
                for (m, chain) in self.up_chains().enumerate() {
                    match chain.transaction_status(tx) {
                        TxStatus::Confirmed { .. } | TxStatus::Buried { .. } => {}
                        status => {
                            return Err(self.violation(format!(
                                "payer {p}'s payment of sequence {:?}, confirmed before, is {status:?} on miner {m}'s final chain",
                                tx.transfer().map(|t| t.sequence)
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
