//! The end of a run: the network heals, everyone finishes what they have in flight, every
//! certificate reaches every validator, each real wallet pays once more (it must get
//! through), and the end state is checked.

use tally_core::LockSlot;
use tally_wallet::coins::CoinFolder;

use super::World;
use crate::check::{self, Violation};
use crate::net::{Event, Message, Node, Payload};
use crate::validator::Behaviour;
use crate::wallet;

/// At most this many rounds of handing out every certificate after the network healed
/// (each round applies at least one more certificate somewhere, or ends the delivery).
const DELIVERY_ROUNDS: usize = 32;

impl World {
    /// Ends every fault and lets the run settle: in-flight work finishes, certificates are
    /// handed to every validator, then each real wallet makes one more payment, one at a
    /// time (a twin that found its slot split tries again, as a person runs the wallet
    /// again once the network is back).
    pub(super) fn heal(&mut self) -> Result<(), Box<Violation>> {
        self.note("the network heals; faults end".into());
        self.net.heal();
        self.faulty = false;
        for equivocator in &mut self.equivocators {
            equivocator.payments_left = 0;
        }
        for wallet in &mut self.wallets {
            wallet.payments_left = 0;
        }
        for v in 0..self.validators.len() {
            self.validators[v].disarm_disk();
            if !self.validators[v].is_up() {
                self.net.schedule(1, Event::Restart(v));
            }
        }
        self.settle()?;
        self.deliver_certificates()?;
        for w in 0..self.wallets.len() {
            if self.wallets[w].kind == wallet::Kind::Holder {
                self.wallets[w].needs_find = true;
            } else {
                self.wallets[w].payments_left = 1;
            }
            self.wallets[w].frozen = None;
            self.net.schedule(1, Event::WalletStart(w));
            self.settle()?;
        }
        self.healed_escrows();
        self.settle()?;
        self.deliver_certificates()
    }

    /// Hands every certificate to every validator until a round applies nothing new, as
    /// the nodes' background sync would. One round is not enough: the network still
    /// reorders, and a certificate that arrives before its account's previous one is
    /// refused as ahead of its slot.
    fn deliver_certificates(&mut self) -> Result<(), Box<Violation>> {
        for _ in 0..DELIVERY_ROUNDS {
            let before = self.observer.acknowledgements();
            self.push_certificates()?;
            self.settle()?;
            if self.observer.acknowledgements() == before {
                return Ok(());
            }
        }
        Ok(())
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
            let held = wallet.certificates().map_err(|e| self.violation(e))?;
            for certificate in held {
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
            let open = twins
                .iter()
                .any(|w| w.link.fell_back().contains(&lock_slot))
                || !self.validators[first].honest();
            if !open {
                return Err(self.violation(format!(
                    "two copies of one wallet froze slot {slot} although neither sent a new order past its first voter (validator {first}, honest) without that voter's vote"
                )));
            }
        }
        Ok(())
    }

    /// Which wallets keep the coin of `account`, and in which folder, for a violation's
    /// message.
    fn where_kept(&self, account: &tally_core::AccountId) -> Result<String, Box<Violation>> {
        let mut kept = Vec::new();
        for wallet in &self.wallets {
            if let Some(listed) = wallet.coin(account).map_err(|e| self.violation(e))? {
                kept.push(format!("wallet {} in {:?}", wallet.index, listed.folder));
            }
        }
        Ok(if kept.is_empty() {
            "nobody".into()
        } else {
            kept.join(", ")
        })
    }

    /// Each coin handed to both holders ends in one of two ways. Its slot has a certificate:
    /// the coin it paid is in exactly one wallet's Bank (or Fracked), the winner's, and the
    /// spent coin in nobody's (the loser counts it as worthless, never as money). Or it has
    /// none: then two orders split its slot, only where the race between the holders was
    /// open (a holder sent its new order past the coin's first voter after that voter
    /// failed to vote for it, or the first voter is Byzantine). Anything else is a coin
    /// stuck or money lost or counted twice.
    fn check_coins(&mut self) -> Result<(), Box<Violation>> {
        let voting = self
            .validators
            .iter()
            .filter(|v| v.behaviour != Behaviour::Silent)
            .count();
        for coin in self.handed.clone() {
            let slot = LockSlot::Sequence(coin, 0);
            let owned = |account: &tally_core::AccountId| -> Result<Vec<usize>, Box<Violation>> {
                let mut holders = Vec::new();
                for wallet in &self.wallets {
                    let listed = wallet.coin(account).map_err(|e| self.violation(e))?;
                    if listed
                        .is_some_and(|c| matches!(c.folder, CoinFolder::Bank | CoinFolder::Fracked))
                    {
                        holders.push(wallet.index);
                    }
                }
                Ok(holders)
            };
            let spent_counted = owned(&coin)?;
            if let Some(certificate) = self.observer.certificates.get(&slot).cloned() {
                if !spent_counted.is_empty() {
                    return Err(self.violation(format!(
                        "coin {} was spent, yet wallets {spent_counted:?} count it as money",
                        coin.short()
                    )));
                }
                let paid: Vec<_> = certificate
                    .order
                    .payments()
                    .iter()
                    .map(|payment| payment.recipient)
                    .collect();
                for recipient in paid {
                    let banked = owned(&recipient)?;
                    if banked.len() != 1 {
                        let kept = self.where_kept(&recipient)?;
                        return Err(self.violation(format!(
                            "coin {} paid coin {}, which {} wallets hold as money ({banked:?}): money lost or counted twice (it is kept by: {})",
                            coin.short(),
                            recipient.short(),
                            banked.len(),
                            kept
                        )));
                    }
                }
                self.outcome.coins_taken += 1;
                continue;
            }
            if !self.observer.is_split(&slot, voting) {
                let kept = self.where_kept(&coin)?;
                return Err(self.violation(format!(
                    "coin {} is neither spent nor split after the network healed: its holders left it stuck (votes {}; it is kept by: {kept})",
                    coin.short(),
                    self.observer.describe_votes(&slot)
                )));
            }
            let first = tally_core::first_voter(&coin, self.validators.len());
            let open = self
                .wallets
                .iter()
                .any(|w| w.kind == wallet::Kind::Holder && w.link.fell_back().contains(&slot))
                || !self.validators[first].honest();
            if !open {
                return Err(self.violation(format!(
                    "two holders froze coin {} although neither sent a new order past its first voter (validator {first}, honest) without that voter's vote (votes {})",
                    coin.short(),
                    self.observer.describe_votes(&slot)
                )));
            }
            self.outcome.coins_frozen += 1;
        }
        Ok(())
    }

    /// After healing: every real wallet's journal is empty (a twin's only if its slot is
    /// not split); every honest validator holds exactly the genesis plus every certificate
    /// assembled, each applied once.
    pub(super) fn check_end(&mut self) -> Result<(), Box<Violation>> {
        self.check_coins()?;
        self.check_escrows()?;
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
