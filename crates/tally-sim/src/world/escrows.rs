//! Escrows in a run (DESIGN §8): a real wallet locks escrows for another real wallet, which
//! is told the secret and claims, promptly or racing the deadline, or never (then the payer
//! refunds after the deadline). Everything here draws from the world's side generator, so
//! escrows do not disturb the rest of a seed's run.
//!
//! What is checked: never both a claim and a refund certificate for one escrow (the
//! observer's one-certificate-per-slot check: both take the escrow's slot), money conserved
//! with escrowed money counted, every honest validator ending with the ledger the
//! certificates make; and liveness under the timing rule: once the network has healed, a
//! claim sent in time always certifies, and so does a refund of an escrow nobody claimed.
//! An escrow may stay frozen (its claim and refund votes split) only where the rule was not
//! followed: a claim racing the deadline, or one sent while the network was faulty.

use std::collections::BTreeMap;

use rand::Rng;
use tally_core::{Amount, Digest, EscrowId, EscrowLock, EscrowSecret, LockSlot, Order};
use tally_wallet::escrow::Locked;
use tally_wallet::{OpError, Receipt};

use super::{CLOCK_EPOCH_MS, CLOCK_SKEW_MS, World};
use crate::check::Violation;
use crate::net::Event;

/// How long a claim takes to reach every validator and be voted, in a healed network (ms,
/// simulated): two network delays, the batching, the disk, with room to spare.
const CERTIFY_BOUND_MS: u64 = 60;
/// Escrows a run locks while the network is faulty.
const FAULTY_ROUNDS: u32 = 3;

/// What the payee does with an escrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Claims at once, and again while the timing rule allows.
    Prompt,
    /// Claims once, right around the deadline, while the payer refunds just after it: not
    /// the rule; the escrow may freeze.
    Late,
    /// Never claims: the payer refunds.
    Silent,
}

/// One escrow locked in the run.
#[derive(Clone, Debug)]
pub struct Round {
    pub lock: EscrowLock,
    pub secret: EscrowSecret,
    pub scenario: Scenario,
    /// Locked after the network healed: the timing rule's assumptions hold.
    pub healed: bool,
    /// A claim was sent while the network was faulty, or late.
    pub rule_broken: bool,
    /// Refund attempts so far.
    pub refunds: u32,
}

/// What the escrow wallets still mean to do.
#[derive(Clone, Copy, Debug)]
pub enum Intent {
    Lock(Option<Scenario>),
    Claim(EscrowId),
    Refund(EscrowId),
}

/// The escrow actors of a run.
pub struct Escrows {
    pub payer: usize,
    pub payee: usize,
    pub rounds: BTreeMap<EscrowId, Round>,
    /// Locks started, by hash lock: their secret, scenario and whether the network had
    /// healed when they started (a lock a crash interrupted may be certified later, by the
    /// next lock finishing it first).
    attempts: BTreeMap<Digest, (EscrowSecret, Scenario, bool)>,
    /// Per wallet (payer, payee): intents and the simulated time each is due.
    pub intents: BTreeMap<usize, Vec<(u64, Intent)>>,
    /// Per wallet: the intent its work in progress carries out (made again after a crash).
    current: BTreeMap<usize, Intent>,
    faulty_rounds_left: u32,
}

impl Escrows {
    pub fn new(payer: usize, payee: usize) -> Self {
        Escrows {
            payer,
            payee,
            rounds: BTreeMap::new(),
            attempts: BTreeMap::new(),
            intents: BTreeMap::new(),
            current: BTreeMap::new(),
            faulty_rounds_left: FAULTY_ROUNDS,
        }
    }
}

impl World {
    /// Wallet `w`'s own clock (ms since the Unix epoch): true time plus its skew.
    pub(super) fn wallet_clock(&self, w: usize) -> u64 {
        (CLOCK_EPOCH_MS + self.net.now()).saturating_add_signed(self.wallet_skews[w])
    }

    /// Adds an intent for wallet `w`, due `after` ms from now.
    fn intend(&mut self, w: usize, after: u64, intent: Intent) {
        let Some(escrows) = self.escrows.as_mut() else {
            return;
        };
        let due = self.net.now() + after;
        escrows.intents.entry(w).or_default().push((due, intent));
        self.net.schedule(after, Event::WalletStart(w));
    }

    /// The first escrow run: the payer locks its first escrow a little after the start.
    pub(super) fn start_escrows(&mut self) {
        if let Some(payer) = self.escrows.as_ref().map(|e| e.payer) {
            let after = self.side.gen_range(0..50);
            self.intend(payer, after, Intent::Lock(None));
        }
    }

    /// An escrow wallet's process died: what it was doing is done again a little later (a
    /// lock's journal is finished first by the next lock).
    pub(super) fn escrow_wallet_crashed(&mut self, w: usize) {
        let Some(intent) = self.escrows.as_mut().and_then(|e| e.current.remove(&w)) else {
            return;
        };
        let after = self.side.gen_range(10..=200);
        self.intend(w, after, intent);
    }

    /// After the network healed: rounds of locks certified but never reported (the payer
    /// died after its lock was certified) are taken up; then one escrow claimed in time and
    /// one nobody claims, both of which must end as planned.
    pub(super) fn healed_escrows(&mut self) {
        let Some(payer_account) = self
            .escrows
            .as_ref()
            .map(|e| self.wallets[e.payer].account())
        else {
            return;
        };
        let locks: Vec<tally_core::Certificate> = self
            .observer
            .certificates
            .values()
            .filter(|c| matches!(&c.order, Order::EscrowLock(l) if l.payer == payer_account))
            .cloned()
            .collect();
        for certificate in &locks {
            self.track_lock(certificate);
        }
        // What the faults left unsettled is refunded now (the retries under the faults may
        // all have failed); a claim that split the votes leaves its escrow frozen.
        let unsettled: Vec<(EscrowId, u64)> = self
            .escrows
            .as_ref()
            .map(|e| {
                e.rounds
                    .iter()
                    .filter(|(id, _)| {
                        !self
                            .observer
                            .certificates
                            .contains_key(&LockSlot::Escrow(**id))
                    })
                    .map(|(id, round)| (*id, Self::true_deadline(&round.lock)))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(payer) = self.escrows.as_ref().map(|e| e.payer) {
            let now = self.net.now();
            for (id, deadline) in unsettled {
                let after = (deadline + 2 * CLOCK_SKEW_MS).saturating_sub(now).max(1);
                self.intend(payer, after, Intent::Refund(id));
            }
        }
        if let Some(payer) = self.escrows.as_ref().map(|e| e.payer) {
            self.intend(payer, 1, Intent::Lock(Some(Scenario::Prompt)));
            self.intend(payer, 2, Intent::Lock(Some(Scenario::Silent)));
        }
    }

    /// Starts the escrow wallet `w`'s first due intent, if it is idle. Returns whether `w`
    /// is an escrow wallet.
    pub(super) fn start_escrow_work(&mut self, w: usize) -> Result<bool, Box<Violation>> {
        let Some(escrows) = self.escrows.as_mut() else {
            return Ok(false);
        };
        if w != escrows.payer && w != escrows.payee {
            return Ok(false);
        }
        if self.wallets[w].busy() {
            return Ok(true);
        }
        let now = self.net.now();
        let queue = escrows.intents.entry(w).or_default();
        let Some(at) = queue.iter().position(|(due, _)| *due <= now) else {
            return Ok(true);
        };
        let (_, intent) = queue.remove(at);
        escrows.current.insert(w, intent);
        let healed = !self.faulty;
        let started = match intent {
            Intent::Lock(scenario) => self.start_lock(w, scenario, healed),
            Intent::Claim(id) => {
                let Some(round) = self.escrows.as_mut().and_then(|e| e.rounds.get_mut(&id)) else {
                    return Ok(true);
                };
                if !healed || round.scenario == Scenario::Late {
                    round.rule_broken = true;
                }
                let secret = round.secret;
                self.note(format!("payee {w} claims escrow {}", id.short()));
                self.wallets[w].start_escrow_settle(id, Some(secret), healed)
            }
            Intent::Refund(id) => {
                if let Some(round) = self.escrows.as_mut().and_then(|e| e.rounds.get_mut(&id)) {
                    round.refunds += 1;
                }
                self.note(format!("payer {w} asks for escrow {}'s refund", id.short()));
                self.wallets[w].start_escrow_settle(id, None, healed)
            }
        };
        started.map_err(|e| self.violation(e))?;
        if self.faulty && self.rng_side_crash() {
            let at = self.side.gen_range(1..=80);
            self.net.schedule(at, Event::WalletCrash(w));
        }
        self.poll_wallet(w)?;
        Ok(true)
    }

    /// Whether an escrow wallet's process is to die during this piece of work.
    fn rng_side_crash(&mut self) -> bool {
        self.side.gen_range(0..1000) < self.faults.wallet_crash_per_mille
    }

    fn start_lock(
        &mut self,
        w: usize,
        scenario: Option<Scenario>,
        healed: bool,
    ) -> Result<(), String> {
        let Some(payee) = self
            .escrows
            .as_ref()
            .map(|e| self.wallets[e.payee].account())
        else {
            return Ok(());
        };
        let scenario = scenario.unwrap_or(match self.side.gen_range(0..3) {
            0 => Scenario::Prompt,
            1 => Scenario::Late,
            _ => Scenario::Silent,
        });
        let secret = EscrowSecret::from(self.side.r#gen::<[u8; 32]>());
        let amount = Amount::from_microcash(self.side.gen_range(1..=1000));
        // After healing, time enough for the lock and a claim under the rule even when the
        // lock waits out a validator still restarting: the liveness checks must bite.
        let lasts = if healed {
            self.side.gen_range(1500..=2000)
        } else {
            self.side.gen_range(500..=1200)
        };
        let deadline = self.wallet_clock(w) + lasts;
        if let Some(escrows) = self.escrows.as_mut() {
            escrows
                .attempts
                .insert(secret.hash_lock(), (secret, scenario, healed));
        }
        self.note(format!(
            "payer {w} locks {amount} for {lasts} ms under hash lock {} ({scenario:?})",
            secret.hash_lock().short()
        ));
        self.wallets[w].start_escrow_lock(payee, amount, secret, deadline, healed)
    }

    /// The deadline of `lock` in simulated (true) time.
    fn true_deadline(lock: &EscrowLock) -> u64 {
        lock.deadline.saturating_sub(CLOCK_EPOCH_MS)
    }

    /// How the payer's lock ended: a certified lock becomes a round (with any earlier lock
    /// a crash had interrupted, which the wallet finished first); a failure is retried.
    pub(super) fn escrow_locked(
        &mut self,
        w: usize,
        result: Result<Locked, OpError>,
    ) -> Result<(), Box<Violation>> {
        if let Some(escrows) = self.escrows.as_mut() {
            escrows.current.remove(&w);
        }
        match result {
            Ok(locked) => {
                let receipt = &locked.receipt;
                for certificate in
                    std::iter::once(&receipt.certificate).chain(receipt.finished_pending.as_ref())
                {
                    self.observer
                        .assembled(certificate)
                        .map_err(|e| self.violation(e))?;
                    self.track_lock(certificate);
                }
                if let Some(escrows) = self.escrows.as_mut()
                    && escrows.faulty_rounds_left > 0
                    && self.faulty
                {
                    escrows.faulty_rounds_left -= 1;
                    let after = self.side.gen_range(50..=200);
                    self.intend(w, after, Intent::Lock(None));
                }
            }
            Err(error) if self.wallets[w].started_healed => {
                return Err(self.violation(format!(
                    "escrow payer {w} could not lock after the network healed: {error}"
                )));
            }
            Err(error) => {
                self.note(format!("payer {w}: lock failed for now ({error})"));
                let after = self.side.gen_range(30..=60);
                self.intend(w, after, Intent::Lock(None));
            }
        }
        self.net.schedule(1, Event::WalletStart(w));
        Ok(())
    }

    /// Makes a round of a certified lock the payer made (once), and plans its claim and
    /// refund by its scenario.
    fn track_lock(&mut self, certificate: &tally_core::Certificate) {
        let Order::EscrowLock(lock) = &certificate.order else {
            return;
        };
        let Some(escrows) = self.escrows.as_mut() else {
            return;
        };
        if escrows.rounds.contains_key(&certificate.checksum) {
            return;
        }
        let Some((secret, scenario, healed)) = escrows.attempts.get(&lock.hash_lock).copied()
        else {
            return;
        };
        let (payer, payee) = (escrows.payer, escrows.payee);
        let id = certificate.checksum;
        let now = self.net.now();
        let deadline = Self::true_deadline(lock);
        // A lock finished late (after a crash or an outage) may have no time left to be
        // claimed under the rule: its payer takes it back.
        let last_claim = deadline.saturating_sub(2 * CLOCK_SKEW_MS + CERTIFY_BOUND_MS);
        let scenario = match scenario {
            Scenario::Prompt if now + 20 > last_claim => Scenario::Silent,
            other => other,
        };
        escrows.rounds.insert(
            id,
            Round {
                lock: **lock,
                secret,
                scenario,
                healed,
                rule_broken: false,
                refunds: 0,
            },
        );
        let refund_at = deadline + 2 * CLOCK_SKEW_MS;
        match scenario {
            Scenario::Prompt => {
                let after = self.side.gen_range(0..20);
                self.intend(payee, after, Intent::Claim(id));
            }
            Scenario::Late => {
                let at = deadline.saturating_sub(self.side.gen_range(0..60)).max(now);
                self.intend(payee, at - now, Intent::Claim(id));
                let jitter = self.side.gen_range(0..40);
                self.intend(
                    payer,
                    refund_at.saturating_sub(now) + jitter,
                    Intent::Refund(id),
                );
            }
            Scenario::Silent => {
                let jitter = self.side.gen_range(0..60);
                self.intend(
                    payer,
                    refund_at.saturating_sub(now) + jitter,
                    Intent::Refund(id),
                );
            }
        }
    }

    /// How a claim or refund ended.
    pub(super) fn escrow_settled(
        &mut self,
        w: usize,
        id: EscrowId,
        result: Result<Receipt, OpError>,
    ) -> Result<(), Box<Violation>> {
        let Some(escrows) = self.escrows.as_mut() else {
            return Ok(());
        };
        escrows.current.remove(&w);
        let (payer, payee) = (escrows.payer, escrows.payee);
        let Some(round) = escrows.rounds.get(&id).cloned() else {
            return Ok(());
        };
        let claiming = w == payee;
        match result {
            Ok(receipt) => {
                self.observer
                    .assembled(&receipt.certificate)
                    .map_err(|e| self.violation(e))?;
                self.note(format!(
                    "escrow {} {}",
                    id.short(),
                    if claiming { "claimed" } else { "refunded" }
                ));
            }
            Err(error) => {
                self.note(format!(
                    "escrow {}: {} failed ({error})",
                    id.short(),
                    if claiming { "claim" } else { "refund" }
                ));
                let settled = self
                    .observer
                    .certificates
                    .contains_key(&LockSlot::Escrow(id));
                let healed_rule = round.healed && !round.rule_broken;
                if claiming && healed_rule && round.scenario == Scenario::Prompt {
                    return Err(self.violation(format!(
                        "a claim of escrow {} sent in time on the healed network failed: {error}",
                        id.short()
                    )));
                }
                let slot = LockSlot::Escrow(id);
                if !claiming && self.wallets[w].started_healed && !settled && !round.rule_broken {
                    return Err(self.violation(format!(
                        "the refund of escrow {}, which nobody tried to claim out of time, failed after its deadline on the healed network: {error} (votes {})",
                        id.short(),
                        self.observer.describe_votes(&slot)
                    )));
                }
                let deadline = Self::true_deadline(&round.lock);
                let now = self.net.now();
                if settled {
                    // Settled by the other side: nothing more to do.
                } else if claiming {
                    // Again while the rule allows (the payee's clock may be ε off, and the
                    // claim must reach every validator before their clocks pass the
                    // deadline); then the payer takes it back.
                    let last = deadline.saturating_sub(2 * CLOCK_SKEW_MS + CERTIFY_BOUND_MS);
                    let retry = now + self.side.gen_range(20..=40);
                    if round.scenario == Scenario::Prompt && retry <= last {
                        self.intend(payee, retry - now, Intent::Claim(id));
                    } else if round.scenario == Scenario::Prompt {
                        let refund_at = deadline + 2 * CLOCK_SKEW_MS;
                        let after = refund_at.saturating_sub(now) + self.side.gen_range(0..40);
                        self.intend(payer, after, Intent::Refund(id));
                    }
                } else if round.refunds < 40 {
                    let after = self.side.gen_range(40..=80);
                    self.intend(payer, after, Intent::Refund(id));
                }
            }
        }
        self.net.schedule(1, Event::WalletStart(w));
        Ok(())
    }

    /// After the run: every escrow is claimed or refunded, except where its votes split
    /// between claim and refund because the rule was not followed; outcomes are counted.
    pub(super) fn check_escrows(&mut self) -> Result<(), Box<Violation>> {
        let Some(escrows) = self.escrows.as_ref() else {
            return Ok(());
        };
        let rounds: Vec<(EscrowId, Round)> = escrows
            .rounds
            .iter()
            .map(|(id, r)| (*id, r.clone()))
            .collect();
        for (id, round) in rounds {
            let slot = LockSlot::Escrow(id);

            match self.observer.certificates.get(&slot).map(|c| &c.order) {
                Some(Order::EscrowClaim(_)) => self.outcome.escrows_claimed += 1,
                Some(_) => self.outcome.escrows_refunded += 1,
                // Votes split between a claim and the refund, or a claim that holds votes
                // but can gather no more (the rest of the validators' clocks passed the
                // deadline): only where the claim broke the timing rule.
                None if round.rule_broken => {
                    self.outcome.escrows_frozen += 1;
                }
                None => {
                    return Err(self.violation(format!(
                        "escrow {} ({:?}, locked {}) is neither claimed nor refunded after the network healed (votes {})",
                        id.short(),
                        round.scenario,
                        if round.healed { "after healing" } else { "under faults" },
                        self.observer.describe_votes(&slot)
                    )));
                }
            }
        }
        Ok(())
    }
}
