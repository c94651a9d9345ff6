//! The real wallets' side of a run: starting their work (payments, coins withdrawn and
//! handed to two holders at once, coins taken in and settled), polling it when an answer
//! or a timer concerns it, putting what it sends on the network, and judging how it ended.

use rand::Rng;
use tally_core::Amount;
use tally_wallet::coins::CoinOpError;
use tally_wallet::{ClientError, OpError, Receipt};

use super::{ISSUER, World};
use crate::check::Violation;
use crate::net::{Event, Message, Node, Payload};
use crate::wallet::{self, Done, Outgoing};

/// How long a wallet waits for a validator's answer (simulated ms): well above a healthy
/// round trip (at most twice the largest delay, the batching and the disk).
const REQUEST_TIMEOUT_MS: u64 = 150;

/// What the issuing wallet withdraws into coins and hands to both holders.
const ISSUED_CASH: u64 = 2;

impl World {
    /// Wallet `w` starts its next piece of work, unless it is busy or has found its slot
    /// split: the issuer first withdraws and exports coins; a holder takes in coins handed
    /// to it, or settles with `find` what its coin operations left; a payer pays anyone but
    /// itself until its payments are done.
    pub(super) fn start_work(&mut self, w: usize) -> Result<(), Box<Violation>> {
        if self.start_escrow_work(w)? {
            return Ok(());
        }
        let wallet = &self.wallets[w];
        if wallet.busy() || wallet.frozen.is_some() {
            return Ok(());
        }
        let healed = !self.faulty;
        let (kind, needs_find, payments_left) =
            (wallet.kind, wallet.needs_find, wallet.payments_left);
        let started = match kind {
            wallet::Kind::Holder => {
                if let Some(handed) = self.wallets[w].handed.take() {
                    self.note(format!("holder {w} takes in {} coins", handed.len()));
                    self.wallets[w].start_import(handed)
                } else if needs_find {
                    self.note(format!("holder {w} settles its coins (find, pown)"));
                    self.wallets[w].start_settle(healed)
                } else {
                    return Ok(());
                }
            }
            _ if w == ISSUER && !self.coins_issued && self.faulty => {
                let amount = Amount::from_microcash(ISSUED_CASH * 1_000_000);
                self.note(format!(
                    "wallet {w} withdraws and exports {amount} in coins"
                ));
                self.wallets[w].start_issue(amount)
            }
            _ if payments_left == 0 => return Ok(()),
            _ => {
                let own = self.wallets[w].account();
                let others: Vec<_> = self.accounts.iter().filter(|a| **a != own).collect();
                let recipient = *others[self.rng.gen_range(0..others.len())];
                let amount = Amount::from_microcash(self.rng.gen_range(1..=1000));
                self.note(format!(
                    "wallet {w} starts paying {amount} to {}",
                    recipient.short()
                ));
                self.wallets[w].start_payment(recipient, amount, healed)
            }
        };
        started.map_err(|e| self.violation(e))?;
        if self.faulty && self.rng.gen_range(0..1000) < self.faults.wallet_crash_per_mille {
            let at = self.rng.gen_range(1..=80);
            self.net.schedule(at, Event::WalletCrash(w));
        }
        self.poll_wallet(w)
    }

    /// Runs wallet `w`'s payment as far as it can go now, sends what it asked for, and
    /// judges its result if it ended.
    pub(super) fn poll_wallet(&mut self, w: usize) -> Result<(), Box<Violation>> {
        let clock = self.wallet_clock(w);
        self.wallets[w].link.set_clock(clock);
        let done = self.wallets[w].poll();
        self.flush_wallet(w)?;
        match done {
            Some(Done::Paid(result)) => self.payment_ended(w, *result),
            Some(Done::Issued(result)) => self.issue_ended(w, result),
            Some(Done::Imported(result)) => {
                if let Ok(outcomes) = &result {
                    for outcome in outcomes {
                        self.note(format!("holder {w}: {outcome:?}"));
                    }
                }
                self.coin_work_ended(w, result.map(|_| Vec::new()))
            }
            Some(Done::CoinsSettled(result)) => self.coin_work_ended(w, result),
            Some(Done::Locked(result)) => self.escrow_locked(w, *result),
            Some(Done::Settled(escrow, result)) => self.escrow_settled(w, escrow, *result),
            None => Ok(()),
        }
    }

    /// Puts wallet `w`'s requests on the network with their timeouts, schedules its pauses,
    /// and tells the observer what it signed and assembled.
    fn flush_wallet(&mut self, w: usize) -> Result<(), Box<Violation>> {
        for outgoing in self.wallets[w].link.take_outgoing() {
            match outgoing {
                Outgoing::Request { id, to, packet } => {
                    self.net.send(
                        &mut self.rng,
                        Message {
                            from: Node::Wallet(w),
                            to: Node::Validator(to),
                            payload: Payload::Request(id, *packet),
                        },
                    );
                    self.net
                        .schedule(REQUEST_TIMEOUT_MS, Event::WalletTimer(w, id));
                }
                Outgoing::Pause { id, after } => {
                    let after = u64::try_from(after.as_millis()).unwrap_or(u64::MAX).max(1);
                    self.net.schedule(after, Event::WalletTimer(w, id));
                }
            }
        }
        let seen = self.wallets[w].link.take_seen();
        for (order, digest) in seen.orders {
            if let std::collections::btree_map::Entry::Vacant(entry) =
                self.first_sender.entry(digest)
            {
                entry.insert(w);
                self.observer.signed(&order, digest);
            }
        }
        for certificate in seen.certificates {
            self.observer
                .assembled(&certificate)
                .map_err(|e| self.violation(e))?;
            let finished_for_other = self.wallets[w].kind == wallet::Kind::Twin
                && certificate.order.signer() == Some(self.wallets[w].account())
                && self
                    .first_sender
                    .get(&certificate.checksum)
                    .is_some_and(|first| *first != w);
            if finished_for_other {
                self.finished_for_other.insert(certificate.checksum);
            }
        }
        Ok(())
    }

    /// How wallet `w`'s payment ended. A success is counted and the next payment follows;
    /// an error an honest wallet cannot meet (its slot split, a slot held by someone else,
    /// its folder failing) is a violation; a twin may find its slot split (checked at the
    /// end against where the race between the copies was open); anything else (no quorum
    /// in time, validators unreachable) is retried later, as a person would, until the
    /// network has healed, after which every payment must go through.
    fn payment_ended(
        &mut self,
        w: usize,
        result: Result<Receipt, OpError>,
    ) -> Result<(), Box<Violation>> {
        let kind = self.wallets[w].kind;
        match result {
            Ok(receipt) => {
                for certificate in
                    std::iter::once(&receipt.certificate).chain(receipt.finished_pending.as_ref())
                {
                    self.observer
                        .assembled(certificate)
                        .map_err(|e| self.violation(e))?;
                }
                if receipt.acknowledged >= self.quorum {
                    self.outcome.acknowledged += 1;
                }
                self.note(format!(
                    "wallet {w}: paid, {} acknowledgements",
                    receipt.acknowledged
                ));
                let wallet = &mut self.wallets[w];
                wallet.frozen = None;
                wallet.payments_left = wallet.payments_left.saturating_sub(1);
                let after = self.rng.gen_range(0..=5);
                self.net.schedule(after, Event::WalletStart(w));
                Ok(())
            }
            // A split slot, or (once the network healed) any failure: a slot split where a
            // validator withholds its votes cannot be told from one still open, so the
            // wallet says "no quorum". Whether its slot is split, and may be, is checked
            // at the end.
            Err(error)
                if kind == wallet::Kind::Twin
                    && (matches!(error, OpError::SlotFrozen { .. })
                        || self.wallets[w].started_healed) =>
            {
                self.note(format!("twin {w}: {error}"));
                self.wallets[w].frozen = Some(error.to_string());
                Ok(())
            }
            Err(
                error @ (OpError::Wallet(_)
                | OpError::Refused(_)
                | OpError::SlotFrozen { .. }
                | OpError::SlotHeldElsewhere { .. }
                | OpError::SlotContended { .. }
                | OpError::Client(ClientError::SlotTaken { .. })),
            ) if kind == wallet::Kind::Honest || matches!(error, OpError::Wallet(_)) => {
                Err(self.violation(format!("honest wallet {w} failed to pay: {error}")))
            }
            Err(error) if self.wallets[w].started_healed => Err(self.violation(format!(
                "wallet {w} could not pay after the network healed: {error}"
            ))),
            Err(error) => {
                self.outcome.payments_retried += 1;
                self.note(format!("wallet {w}: payment failed for now ({error})"));
                let after = self.rng.gen_range(30..=60);
                self.net.schedule(after, Event::WalletStart(w));
                Ok(())
            }
        }
    }

    /// The issuer's coins are out: both holders are handed the same coins (a bearer coin
    /// given twice, or copied: whoever takes it in first owns it). A failure under the
    /// faults is tried again later (the next withdrawal finishes the journaled one first).
    fn issue_ended(
        &mut self,
        w: usize,
        result: Result<Vec<tally_core::Coin>, CoinOpError>,
    ) -> Result<(), Box<Violation>> {
        match result {
            Ok(coins) => {
                self.note(format!("wallet {w} exported {} coins", coins.len()));
                self.coins_issued = true;
                self.outcome.coins_handed_twice += coins.len() as u64;
                self.handed
                    .extend(coins.iter().map(tally_core::Coin::account));
                for h in 0..self.wallets.len() {
                    if self.wallets[h].kind == wallet::Kind::Holder {
                        self.wallets[h].handed = Some(coins.clone());
                        let after = self.rng.gen_range(0..=20);
                        self.net.schedule(after, Event::WalletStart(h));
                    }
                }
            }
            Err(error) => self.note(format!("wallet {w}: coins not issued for now ({error})")),
        }
        let after = self.rng.gen_range(0..=30);
        self.net.schedule(after, Event::WalletStart(w));
        Ok(())
    }

    /// How a holder's `import` or settling ended. While coins still wait in `Import` or
    /// `Limbo` (undecided, journaled, or the work failed under the faults), it settles
    /// again later; once the network healed it settles once more and the end check judges
    /// every coin (spent and banked by one wallet, or split where the race was open).
    fn coin_work_ended(
        &mut self,
        w: usize,
        result: Result<Vec<String>, CoinOpError>,
    ) -> Result<(), Box<Violation>> {
        if let Err(error @ CoinOpError::Wallet(_)) = &result {
            return Err(self.violation(format!("holder {w}: its folder failed: {error}")));
        }
        match &result {
            Err(error) => self.note(format!("holder {w}: coins not settled for now ({error})")),
            Ok(left) => {
                for what in left {
                    self.note(format!("holder {w}: {what}"));
                }
            }
        }
        let unsettled = self.wallets[w]
            .unsettled_coins()
            .map_err(|e| self.violation(e))?;
        self.wallets[w].needs_find = unsettled > 0 || result.is_err();
        if self.wallets[w].needs_find && !self.wallets[w].started_healed {
            let after = self.rng.gen_range(30..=60);
            self.net.schedule(after, Event::WalletStart(w));
        }
        Ok(())
    }

    /// Wallet `w`'s process dies wherever its payment was; it starts again a little later
    /// and its next payment finishes what the journal holds.
    pub(super) fn crash_wallet(&mut self, w: usize) {
        if !self.wallets[w].busy() {
            return;
        }
        self.wallets[w].crash();
        if self.wallets[w].kind == wallet::Kind::Holder {
            self.wallets[w].needs_find = true;
        }
        self.escrow_wallet_crashed(w);
        self.outcome.wallet_crashes += 1;
        self.note(format!("wallet {w} crashes mid-payment"));
        let after = self.rng.gen_range(10..=200);
        self.net.schedule(after, Event::WalletStart(w));
    }
}
