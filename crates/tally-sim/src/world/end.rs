//! The end of a run: the network heals, everyone finishes what they have in flight, every
//! certificate reaches every validator, each real wallet pays once more (it must get
//! through), and the end state is checked.

use tally_core::LockSlot;

use super::World;
use crate::check::{self, Violation};
use crate::net::{Event, Message, Node, Payload};
use crate::validator::Behaviour;
use crate::wallet;

impl World {
    /// Ends every fault and lets the run settle: in-flight work finishes, certificates are
    /// handed to every validator, then each real wallet makes one more payment, one at a
    /// time (a twin that found its slot split tries again, as a person runs the wallet
    /// again once the network is back).
    pub(super) fn heal(&mut self) -> Result<(), Box<Violation>> {
        self.net.heal();
        self.faulty = false;
        for equivocator in &mut self.equivocators {
            equivocator.payments_left = 0;
        }
        for wallet in &mut self.wallets {
            wallet.payments_left = 0;
        }
        for v in 0..self.validators.len() {
            if !self.validators[v].is_up() {
                self.net.schedule(1, Event::Restart(v));
            }
        }
        self.settle()?;
        self.push_certificates()?;
        self.settle()?;
        for w in 0..self.wallets.len() {
            self.wallets[w].payments_left = 1;
            self.wallets[w].frozen = None;
            self.net.schedule(1, Event::WalletStart(w));
            self.settle()?;
        }
        self.push_certificates()?;
        self.settle()
    }

    /// Every certificate every owner holds, to every validator.
    fn push_certificates(&mut self) -> Result<(), Box<Violation>> {
        let mut messages: Vec<Message> = {
            let ctx = self.context();
            self.equivocators
                .iter()
                .flat_map(|e| e.push_all(&ctx))
                .collect()
        };
        for (w, wallet) in self.wallets.iter().enumerate() {
            let receipts = wallet.receipts().map_err(|e| self.violation(e))?;
            for certificate in receipts {
                messages.extend((0..self.validators.len()).map(|v| Message {
                    from: Node::Wallet(w),
                    to: Node::Validator(v),
                    payload: Payload::PayEnd(certificate.clone()),
                }));
            }
        }
        self.send_all(messages);
        Ok(())
    }

    /// Two copies of one wallet may split a slot only where the race between them was open:
    /// a copy sent its new order to the others because its first voter failed to vote for
    /// it, or the first voter is Byzantine (it may vote for both). Anywhere else a frozen
    /// twin slot is a violation.
    fn check_twin_freezes(&self) -> Result<(), Box<Violation>> {
        let twins: Vec<&wallet::WalletProcess> = self
            .wallets
            .iter()
            .filter(|w| w.kind == wallet::Kind::Twin)
            .collect();
        let Some(state) = self
            .validators
            .iter()
            .find(|v| v.honest())
            .and_then(|v| v.state())
        else {
            return Ok(());
        };
        for twin in &twins {
            let Some(error) = &twin.frozen else { continue };
            let slot = state.account(&twin.account()).next_sequence;
            let lock_slot = LockSlot::Sequence(twin.account(), slot);
            // A validator that withholds its votes never gives one: only the others can
            // still make a quorum.
            let voting = self
                .validators
                .iter()
                .filter(|v| v.behaviour != Behaviour::Silent)
                .count();
            if !self.observer.is_split(&lock_slot, voting) {
                return Err(self.violation(format!(
                    "twin {} could not pay ({error}), but no two orders split slot {slot}",
                    twin.index
                )));
            }
            let first = tally_core::first_voter(&twin.account(), self.validators.len());
            let open = twins.iter().any(|w| w.link.fell_back().contains(&slot))
                || !self.validators[first].honest();
            if !open {
                return Err(self.violation(format!(
                    "two copies of one wallet froze slot {slot} although neither sent a new order past its first voter (validator {first}, honest) without that voter's vote"
                )));
            }
        }
        Ok(())
    }

    /// After healing: every real wallet's journal is empty (a twin's only if its slot is
    /// not split); every honest validator holds exactly the genesis plus every certificate
    /// assembled, each applied once.
    pub(super) fn check_end(&self) -> Result<(), Box<Violation>> {
        for wallet in &self.wallets {
            let pending = wallet.has_pending().map_err(|e| self.violation(e))?;
            if pending && wallet.frozen.is_none() {
                return Err(self.violation(format!(
                    "wallet {} still journals an order in flight after it paid on the healed network",
                    wallet.index
                )));
            }
        }
        self.check_twin_freezes()?;
        let expected = check::expected_ledger(&self.genesis, &self.observer);
        for validator in self.validators.iter().filter(|v| v.honest()) {
            let Some(state) = validator.state() else {
                return Err(self.violation(format!(
                    "validator {} is down after the network healed",
                    validator.index
                )));
            };
            let ledger = check::ledger_of(state);
            if ledger != expected {
                let differs = expected
                    .iter()
                    .find(|(account, entry)| ledger.get(account) != Some(entry))
                    .map(|(account, entry)| {
                        format!(
                            "{account}: expected {entry:?}, has {:?}",
                            ledger.get(account)
                        )
                    })
                    .unwrap_or_else(|| "an account the certificates never touched".into());
                let missing: Vec<String> = self
                    .observer
                    .certificates
                    .values()
                    .filter(|c| !state.is_applied(&c.order))
                    .map(|c| format!("{:?}", c.order.lock_slot()))
                    .collect();
                return Err(self.violation(format!(
                    "validator {} ended with another ledger than the certificates make ({differs}; certificates it lacks: {})",
                    validator.index,
                    if missing.is_empty() { "none".into() } else { missing.join(", ") }
                )));
            }
        }
        Ok(())
    }
}
