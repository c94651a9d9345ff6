//! The maker's saga (Bob, DESIGN §8): for one payer lock on A, lock on B, then claim A with
//! the secret the payer's claim on B reveals — or take B back after its deadline.
//!
//! 1. Created by the driver when a payer's notice names an escrow on A under one of the
//!    maker's quotes; it watches that escrow and acts only on the lock as certified on A.
//! 2. Checks the lock: payable to the maker's A account; an amount that is exactly some
//!    amount in the quote's range plus its fee; citing B and the quote; a deadline T_A that
//!    leaves T_B + Δ ≤ T_A for a T_B with a claim window of at least [`min_lock_window`].
//!    T_B = min(now + lock time, T_A − Δ): the quoted lock time, shortened by however long
//!    the lock took to reach the maker, never so much that T_A ≥ T_B + Δ fails.
//! 3. Only then locks the amount on B payable to the lock's payer (one key on both
//!    networks) under the same hash lock, deadline T_B, citing the payer's escrow and the
//!    quote. The terms are journaled before the lock is asked for and never change, so a
//!    crash can only repeat the same lock (which the wallet finishes, never doubles).
//! 4. Watches both networks under H; claims A with s the moment it is known, never after
//!    [`last_claim_at`]`(T_A)`. If nobody claimed B by T_B + ε_B, refunds B.
//!
//! Someone else may claim A for the maker (the claim pays the payee, whoever sends it: B's
//! validators' notice, the relay); the maker counts A claimed however it happened.

use serde::{Deserialize, Serialize};
use tally_core::{Counterpart, Digest, EscrowId, EscrowLock, EscrowSecret, NetworkId};

use crate::payer::RETRY_MS;
use crate::quote::{QuoteError, SignedQuote};
use crate::timing::{
    Timing, check_deadlines, last_claim_at, min_delta, min_lock_window, refund_from,
};
use crate::wire::{
    Action, Event, LockTerms, Message, Outcome, Refusal, Standing, Target, escrow_id, journal_first,
};

/// What the maker trades on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MakerConfig {
    /// The quote the payer's lock follows (the driver finds it by the hash the lock cites).
    pub quote: SignedQuote,
    /// The bounds of the timing rule.
    pub timing: Timing,
    /// Test only: lock on B for the full lock time without checking T_A ≥ T_B + Δ, to show
    /// what the check prevents.
    #[cfg(test)]
    #[serde(default)]
    pub(crate) skip_delta_check: bool,
}

impl MakerConfig {
    /// A configuration trading on `quote` under `timing`.
    pub fn new(quote: SignedQuote, timing: Timing) -> Self {
        MakerConfig {
            quote,
            timing,
            #[cfg(test)]
            skip_delta_check: false,
        }
    }

    fn skips_delta_check(&self) -> bool {
        #[cfg(test)]
        return self.skip_delta_check;
        #[cfg(not(test))]
        false
    }
}

/// Where the maker stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MakerPhase {
    /// Waiting to see the payer's lock certified on A.
    AwaitingLock,
    /// Its lock on B is asked for.
    Locking,
    /// Locked on B; waiting for the secret.
    Locked,
    /// Claimed on A with the secret; waiting for the certificate.
    Claiming,
    /// A cannot be claimed (no secret by T_B + ε_B, or too late): waiting to refund B.
    AwaitingRefund,
    /// A refund on B is asked for.
    Refunding,
    /// Over.
    Finished(Outcome),
}

/// The maker's journaled state for one payer escrow: journal it on [`Action::Journal`],
/// give it to [`Maker::resume`] after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MakerState {
    config: MakerConfig,
    quote_hash: Digest,
    escrow_a: EscrowId,
    give_up_at: u64,
    lock_a: Option<EscrowLock>,
    standing_a: Option<Standing>,
    /// Decided once, journaled before the lock is asked for, never changed.
    terms_b: Option<LockTerms>,
    escrow_b: Option<EscrowId>,
    standing_b: Option<Standing>,
    secret: Option<EscrowSecret>,
    claim_refusal: Option<Refusal>,
    /// The maker will not claim A (again): the secret came after the last moment to, or
    /// its claim was refused for good.
    claim_over: bool,
    retry_at: Option<u64>,
    phase: MakerPhase,
}

impl MakerState {
    /// Where the wire stands.
    pub fn phase(&self) -> &MakerPhase {
        &self.phase
    }

    /// The payer's escrow on A this saga answers: the driver keeps one saga per id.
    pub fn escrow_a(&self) -> EscrowId {
        self.escrow_a
    }

    /// The terms of the maker's lock on B, once decided.
    pub fn terms_b(&self) -> Option<&LockTerms> {
        self.terms_b.as_ref()
    }
}

/// The maker's state machine for one wire. No I/O, no clock: events and `now` (ms since
/// the Unix epoch) in, actions out.
#[derive(Clone, Debug)]
pub struct Maker {
    state: MakerState,
    wake: Option<u64>,
}

type Out = Vec<Action>;

impl Maker {
    /// Starts answering the payer's escrow `escrow_a` at `now`. Refuses a quote the maker's
    /// own timing rule does not support (Δ below [`min_delta`], a lock time below
    /// [`min_lock_window`]) or that does not verify.
    pub fn new(
        config: MakerConfig,
        escrow_a: EscrowId,
        now: u64,
    ) -> Result<(Maker, Out), QuoteError> {
        let quote = &config.quote.quote;
        quote.check_shape()?;
        if !config.quote.verify() {
            return Err(QuoteError::BadSignature);
        }
        let min_ms = min_delta(&config.timing);
        if quote.delta_ms < min_ms {
            let delta_ms = quote.delta_ms;
            return Err(QuoteError::DeltaTooSmall { delta_ms, min_ms });
        }
        let min_ms = min_lock_window(&config.timing);
        if quote.lock_time_ms < min_ms {
            let lock_ms = quote.lock_time_ms;
            return Err(QuoteError::LockTimeTooShort { lock_ms, min_ms });
        }
        let give_up_at = now.saturating_add(quote.lock_time_ms);
        let wake = give_up_at.saturating_add(1);
        let network = quote.network_a;
        let maker = Maker {
            state: MakerState {
                quote_hash: config.quote.hash(),
                config,
                escrow_a,
                give_up_at,
                lock_a: None,
                standing_a: None,
                terms_b: None,
                escrow_b: None,
                standing_b: None,
                secret: None,
                claim_refusal: None,
                claim_over: false,
                retry_at: None,
                phase: MakerPhase::AwaitingLock,
            },
            wake: Some(wake),
        };
        let target = Target::Escrow(escrow_a);
        let out = vec![
            Action::Journal,
            Action::Watch { network, target },
            Action::WakeAt(wake),
        ];
        Ok((maker, out))
    }

    /// Restarts from a journaled state at `now`: re-issues the same lock on B, the claim
    /// while still in time, the refund, the watches and the message to the payer.
    pub fn resume(state: MakerState, now: u64) -> (Maker, Out) {
        let mut maker = Maker { state, wake: None };
        let (a, b) = maker.networks();
        let mut out = vec![Action::Watch {
            network: a,
            target: Target::Escrow(maker.state.escrow_a),
        }];
        match (maker.state.phase.clone(), maker.state.terms_b) {
            (MakerPhase::Finished(outcome), _) => return (maker, vec![Action::Done(outcome)]),
            (MakerPhase::Locking, Some(terms)) => out.push(Action::Lock { network: b, terms }),
            _ => {}
        }
        if maker.state.escrow_b.is_some() {
            maker.locked_b(&mut out);
        }
        match maker.state.phase {
            MakerPhase::Claiming if maker.may_claim(now) => maker.claim(&mut out),
            MakerPhase::Refunding => maker.refund(&mut out),
            _ => {}
        }
        let before = maker.state.clone();
        maker.advance(now, &mut out);
        journal_first(&before, &maker.state, &mut out);
        (maker, out)
    }

    /// The state to journal.
    pub fn snapshot(&self) -> MakerState {
        self.state.clone()
    }

    /// Where the wire stands.
    pub fn phase(&self) -> &MakerPhase {
        &self.state.phase
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.state.phase {
            MakerPhase::Finished(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// Feeds one event at `now`; returns what the driver must do, in order. A
    /// [`Action::Journal`] comes first whenever the state changed.
    pub fn handle(&mut self, event: Event, now: u64) -> Out {
        if self.outcome().is_some() {
            return Vec::new();
        }
        let before = self.state.clone();
        let mut out = Vec::new();
        self.on_event(event, now, &mut out);
        self.advance(now, &mut out);
        journal_first(&before, &self.state, &mut out);
        out
    }

    fn networks(&self) -> (NetworkId, NetworkId) {
        self.state.config.quote.quote.networks()
    }

    /// Decides the lock on B for the payer's `lock` seen on A at `now`, or says why not.
    pub(crate) fn terms_for(&self, lock: &EscrowLock, now: u64) -> Result<LockTerms, String> {
        let (a, b) = self.networks();
        let state = &self.state;
        let quote = &state.config.quote.quote;
        let timing = &state.config.timing;
        if escrow_id(&a, lock) != state.escrow_a {
            return Err("the lock is not the escrow named".into());
        }
        if lock.payee != quote.maker_a {
            return Err("the lock does not pay the maker's account on A".into());
        }
        let amount = quote.amount_for_total(lock.amount).ok_or_else(|| {
            format!(
                "{} is no amount in the quote's range plus its fee",
                lock.amount
            )
        })?;
        let cites = Counterpart {
            network: b,
            escrow: None,
            quote: Some(state.quote_hash),
        };
        if lock.counterpart != Some(cites) {
            return Err("the lock does not cite network B and this quote".into());
        }
        if lock.payer == quote.maker_b {
            return Err("the lock's payer is the maker's own account on B".into());
        }
        let grace = timing.certify_a.saturating_add(timing.notice);
        if now > quote.expires_ms.saturating_add(grace) {
            return Err("the quote had expired when the lock was seen".into());
        }
        let full = now.saturating_add(quote.lock_time_ms);
        let t_b = if self.state.config.skips_delta_check() {
            full
        } else {
            let latest = lock.deadline.saturating_sub(quote.delta_ms);
            let t_b = full.min(latest);
            let window = min_lock_window(timing);
            if t_b < now.saturating_add(window) {
                return Err(format!(
                    "T_A = {} leaves no T_B with T_A ≥ T_B + Δ and a claim window of {window} ms",
                    lock.deadline
                ));
            }
            check_deadlines(lock.deadline, t_b, quote.delta_ms).map_err(|e| e.to_string())?;
            t_b
        };
        Ok(LockTerms {
            payee: lock.payer,
            amount,
            hash_lock: lock.hash_lock,
            deadline_ms: t_b,
            counterpart: Counterpart {
                network: a,
                escrow: Some(state.escrow_a),
                quote: Some(state.quote_hash),
            },
        })
    }

    fn on_event(&mut self, event: Event, now: u64, out: &mut Out) {
        let (a, b) = self.networks();
        let escrow_a = self.state.escrow_a;
        let escrow_b = self.state.escrow_b;
        let phase = self.state.phase.clone();
        match event {
            Event::Seen {
                network,
                escrow,
                lock,
                standing,
            } if network == a && escrow == escrow_a => {
                if phase != MakerPhase::AwaitingLock {
                    self.state.standing_a = Some(standing);
                    return;
                }
                let decided = match standing {
                    Standing::Open => self.terms_for(&lock, now),
                    _ => Err("the payer's escrow is already settled".into()),
                };
                match decided {
                    Ok(terms) => {
                        self.state.lock_a = Some(lock);
                        self.state.standing_a = Some(standing);
                        self.state.terms_b = Some(terms);
                        self.state.phase = MakerPhase::Locking;
                        out.push(Action::Lock { network: b, terms });
                    }
                    Err(reason) => self.decline(reason, out),
                }
            }
            Event::Locked {
                network,
                escrow,
                lock,
            } if network == b
                && phase == MakerPhase::Locking
                && lock.payer == self.state.config.quote.quote.maker_b
                && self.state.terms_b.is_some_and(|terms| terms.matches(&lock))
                && escrow_id(&b, &lock) == escrow =>
            {
                self.state.escrow_b = Some(escrow);
                self.state.standing_b = Some(Standing::Open);
                self.state.phase = MakerPhase::Locked;
                self.locked_b(out);
            }
            Event::LockRefused { network, reason }
                if network == b && phase == MakerPhase::Locking =>
            {
                self.decline(reason, out);
            }
            Event::Seen {
                network,
                escrow,
                standing,
                ..
            } if network == b && Some(escrow) == escrow_b => {
                self.state.standing_b = Some(standing);
            }
            Event::SecretRevealed { secret, .. }
                if self.state.secret.is_none()
                    && self
                        .state
                        .lock_a
                        .is_some_and(|l| l.hash_lock == secret.hash_lock()) =>
            {
                self.state.secret = Some(secret);
            }
            Event::Claimed { network, escrow } if network == a && escrow == escrow_a => {
                self.state.standing_a = Some(Standing::Claimed);
            }
            Event::ClaimRefused {
                network,
                escrow,
                refusal,
            } if network == a && escrow == escrow_a && phase == MakerPhase::Claiming => {
                match refusal {
                    Refusal::Settled => out.push(Action::Watch {
                        network: a,
                        target: Target::Escrow(escrow_a),
                    }),
                    Refusal::Other(_) => self.state.retry_at = Some(now.saturating_add(RETRY_MS)),
                    _ => {}
                }
                self.state.claim_refusal = Some(refusal);
            }
            Event::Refunded { network, escrow } if network == b && Some(escrow) == escrow_b => {
                self.state.standing_b = Some(Standing::Refunded);
            }
            Event::RefundRefused {
                network,
                escrow,
                refusal,
            } if network == b && Some(escrow) == escrow_b && phase == MakerPhase::Refunding => {
                if refusal == Refusal::Settled {
                    out.push(Action::Watch {
                        network: b,
                        target: Target::Escrow(escrow),
                    });
                } else {
                    self.state.retry_at = Some(now.saturating_add(RETRY_MS));
                    self.state.phase = MakerPhase::AwaitingRefund;
                }
            }
            Event::Message(Message::PayerLocked { escrow, .. }) if escrow == escrow_a => {
                if let Some(escrow) = escrow_b {
                    out.push(Action::Send(Message::MakerLocked { escrow_a, escrow }));
                }
            }
            _ => {}
        }
    }

    fn decline(&mut self, reason: String, out: &mut Out) {
        let escrow_a = self.state.escrow_a;
        out.push(Action::Send(Message::Declined {
            escrow_a,
            reason: reason.clone(),
        }));
        self.finish(Outcome::Aborted(reason), out);
    }

    /// What follows the lock on B's certificate (or a resume after it): tell the payer,
    /// watch both networks under H.
    fn locked_b(&self, out: &mut Out) {
        let (a, b) = self.networks();
        if let (Some(escrow), Some(terms)) = (self.state.escrow_b, self.state.terms_b) {
            let escrow_a = self.state.escrow_a;
            out.push(Action::Send(Message::MakerLocked { escrow_a, escrow }));
            let target = Target::HashLock(terms.hash_lock);
            out.push(Action::Watch { network: b, target });
            out.push(Action::Watch { network: a, target });
        }
    }

    fn last_claim(&self) -> Option<u64> {
        let timing = &self.state.config.timing;
        let lock = self.state.lock_a?;
        Some(last_claim_at(
            lock.deadline,
            timing.skew_a,
            timing.certify_a,
        ))
    }

    fn may_claim(&self, now: u64) -> bool {
        self.state.secret.is_some() && self.last_claim().is_some_and(|last| now <= last)
    }

    fn claim(&self, out: &mut Out) {
        if let Some(secret) = self.state.secret {
            let (a, _) = self.networks();
            let escrow = self.state.escrow_a;
            out.push(Action::Claim {
                network: a,
                escrow,
                secret,
            });
        }
    }

    /// Sends the same claim again after a refusal that may pass (validators unreachable,
    /// say), once the retry is due; the caller checked it is still in time.
    fn retry_claim(&mut self, now: u64, out: &mut Out) {
        if self.state.retry_at.is_some_and(|at| now >= at) {
            self.state.claim_refusal = None;
            self.state.retry_at = None;
            self.claim(out);
        }
    }

    fn refund(&self, out: &mut Out) {
        if let Some(escrow) = self.state.escrow_b {
            let (_, b) = self.networks();
            out.push(Action::Refund { network: b, escrow });
        }
    }

    fn refund_at(&self) -> Option<u64> {
        let t_b = self.state.terms_b?.deadline_ms;
        let from = refund_from(t_b, self.state.config.timing.skew_b);
        Some(from.max(self.state.retry_at.unwrap_or(0)))
    }

    /// Moves on with what is known at `now`.
    fn advance(&mut self, now: u64, out: &mut Out) {
        if self.outcome().is_some() {
            return;
        }
        if self.state.standing_a == Some(Standing::Claimed) {
            return self.finish(Outcome::Completed, out);
        }
        let phase = self.state.phase.clone();
        if phase == MakerPhase::AwaitingLock && now > self.state.give_up_at {
            return self.finish(Outcome::Aborted("no lock seen on A".into()), out);
        }
        // Claim A the moment the secret is known, and never after the last moment.
        let unclaimed = matches!(
            phase,
            MakerPhase::Locked | MakerPhase::AwaitingRefund | MakerPhase::Refunding
        );
        if unclaimed && self.state.secret.is_some() && !self.state.claim_over {
            if self.may_claim(now) {
                self.state.phase = MakerPhase::Claiming;
                self.claim(out);
            } else {
                self.state.claim_over = true;
            }
        }
        if self.state.phase == MakerPhase::Claiming {
            match self.state.claim_refusal.clone() {
                Some(Refusal::Other(_)) if self.may_claim(now) => self.retry_claim(now, out),
                Some(Refusal::Settled) if self.state.standing_a != Some(Standing::Refunded) => {}
                Some(_) => {
                    self.state.retry_at = None;
                    self.state.claim_over = true;
                    self.state.phase = MakerPhase::AwaitingRefund;
                }
                None if self.state.standing_a == Some(Standing::Refunded) => {
                    self.state.claim_over = true;
                    self.state.phase = MakerPhase::AwaitingRefund;
                }
                None => {}
            }
        }
        let refund_at = self.refund_at().unwrap_or(u64::MAX);
        if self.state.phase == MakerPhase::Locked && (self.state.claim_over || now >= refund_at) {
            self.state.phase = MakerPhase::AwaitingRefund;
        }
        if matches!(
            self.state.phase,
            MakerPhase::AwaitingRefund | MakerPhase::Refunding
        ) {
            match (self.state.standing_b, self.state.standing_a) {
                (Some(Standing::Refunded), _) => return self.finish(Outcome::Refunded, out),
                (Some(Standing::Claimed), Some(Standing::Refunded)) => {
                    let why = "the payer claimed B and refunded A: the secret came too late";
                    return self.finish(Outcome::Lost(why.into()), out);
                }
                (Some(Standing::Claimed), _) => {}
                _ if self.state.phase == MakerPhase::AwaitingRefund && now >= refund_at => {
                    self.state.phase = MakerPhase::Refunding;
                    self.refund(out);
                }
                _ => {}
            }
        }
        self.schedule(out);
    }

    /// Asks for a tick at the next moment that matters.
    fn schedule(&mut self, out: &mut Out) {
        let next = match self.state.phase {
            MakerPhase::AwaitingLock => Some(self.state.give_up_at.saturating_add(1)),
            MakerPhase::Locked | MakerPhase::AwaitingRefund => self.refund_at(),
            MakerPhase::Claiming => self.state.retry_at,
            _ => None,
        };
        if let Some(at) = next
            && self.wake != Some(at)
        {
            self.wake = Some(at);
            out.push(Action::WakeAt(at));
        }
    }

    fn finish(&mut self, outcome: Outcome, out: &mut Out) {
        self.state.phase = MakerPhase::Finished(outcome.clone());
        out.push(Action::Done(outcome));
    }
}

#[cfg(test)]
mod tests;
