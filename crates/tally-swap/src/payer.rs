//! The payer's saga (Alice, DESIGN §8): pay amount + fee on A, receive amount on B.
//!
//! 1. Created with the quote and a secret s the driver drew and journaled **before** any
//!    lock; checks the quote ([`SignedQuote::check`]); locks amount + fee on A payable to the
//!    maker's A account under H = SHA-256(s), deadline T_A = now + lock time + Δ, citing B
//!    and the quote.
//! 2. Tells the maker the lock's id, and watches B under H.
//! 3. Claims on B with s the moment it sees a valid maker lock (payable to it, exactly the
//!    amount, under H, citing its lock on A and the quote, T_A ≥ T_B + Δ), and never after
//!    [`last_claim_at`]`(T_B)`. Anything else under H is ignored: claiming a bad lock would
//!    give the maker s for nothing.
//! 4. Without a claimable maker lock by the last moment any valid one could still be
//!    claimed, it waits for T_A + ε_A and refunds on A.
//!
//! **Once a claim was sent, the payer refunds A only when that claim can no longer
//! succeed**: B refused it (too late by the validators' clocks, or B's escrow settled as a
//! refund), or B's escrow is still unclaimed when no claim can be voted any more (T_B + ε_B,
//! plus `notice` to see a certificate formed just before). While the claim may still win, a
//! refund would be a try at keeping both escrows: the protocol allows it (anyone may send a
//! refund) and only the maker's Δ stops it, so a payer following the rule does not try.
//! Once the claim has failed, the refund is the payer's only way not to end with neither:
//! if its claim got a vote, s is out and the maker's claim on A beats the refund (the rule
//! T_A ≥ T_B + Δ gives him the time), so the payer loses by its own lateness alone; if
//! it got none, s is still secret and the money comes back. Whatever refused the claim —
//! the clock or a settled escrow — the payer's position is the same (no B, s perhaps out),
//! so the reason does not change the rule; a refusal that may pass (validators unreachable)
//! is retried while still in time. A claim certified on B is final: no refund after it.

use serde::{Deserialize, Serialize};
use tally_core::{
    AccountId, Amount, Counterpart, Digest, EscrowId, EscrowLock, EscrowSecret, NetworkId,
};

use crate::quote::{QuoteError, SignedQuote, Want};
use crate::timing::{Timing, check_deadlines, last_claim_at, refund_from};
use crate::wire::{
    Action, Event, LockTerms, Message, Outcome, Refusal, Standing, Target, escrow_id, journal_first,
};

/// How long to wait before asking again for a refund the validators found too early (their
/// clocks differ by up to 2ε), and how often the payer re-sends its notice at most.
pub const RETRY_MS: u64 = 1_000;

/// What the payer is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerConfig {
    /// The maker's quote.
    pub quote: SignedQuote,
    /// The asset and networks wanted.
    pub want: Want,
    /// The payer's account: its key on A (the lock's payer) and on B (the maker's payee).
    pub account: AccountId,
    /// What the payer receives on B; it locks this plus the quote's fee on A.
    pub amount: Amount,
    /// The bounds of the timing rule.
    pub timing: Timing,
    /// The secret, drawn and journaled by the driver before the saga starts.
    pub secret: EscrowSecret,
}

/// Where the payer stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayerPhase {
    /// Its lock on A is asked for.
    Locking,
    /// Locked on A; waiting for a valid maker lock on B.
    AwaitingMaker,
    /// Claimed on B (s may be out); waiting for the certificate.
    Claiming,
    /// Waiting for T_A + ε_A (or a retry) to refund on A.
    AwaitingRefund,
    /// A refund on A is asked for.
    Refunding,
    /// Over.
    Finished(Outcome),
}

/// The payer's journaled state: journal it on [`Action::Journal`], give it to
/// [`Payer::resume`] after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerState {
    config: PayerConfig,
    quote_hash: Digest,
    /// The lock asked for on A (deadline T_A fixed once, at creation).
    terms_a: LockTerms,
    escrow_a: Option<EscrowId>,
    standing_a: Option<Standing>,
    /// The maker lock it accepted (and claims).
    lock_b: Option<(EscrowId, EscrowLock)>,
    standing_b: Option<Standing>,
    claim_refusal: Option<Refusal>,
    retry_at: Option<u64>,
    phase: PayerPhase,
}

impl PayerState {
    /// Where the wire stands.
    pub fn phase(&self) -> &PayerPhase {
        &self.phase
    }

    /// What was asked.
    pub fn config(&self) -> &PayerConfig {
        &self.config
    }

    /// The payer's escrow on A, once certified.
    pub fn escrow_a(&self) -> Option<EscrowId> {
        self.escrow_a
    }

    /// The maker's escrow on B it accepted, once seen.
    pub fn escrow_b(&self) -> Option<EscrowId> {
        self.lock_b.map(|(id, _)| id)
    }
}

/// The payer's state machine. No I/O, no clock: events and `now` (ms since the Unix epoch)
/// in, actions out.
#[derive(Clone, Debug)]
pub struct Payer {
    state: PayerState,
    /// When the notice was last sent by this process (resent after a restart).
    notice_sent_at: Option<u64>,
    /// The last [`Action::WakeAt`] issued by this process.
    wake: Option<u64>,
}

type Out = Vec<Action>;

impl Payer {
    /// Starts a wire at `now`: checks the quote, fixes T_A, and asks for the lock on A
    /// (after journaling the state, which holds the secret and the quote).
    pub fn new(config: PayerConfig, now: u64) -> Result<(Payer, Out), QuoteError> {
        let signed = &config.quote;
        signed.check(
            &config.want,
            &config.account,
            config.amount,
            &config.timing,
            now,
        )?;
        let quote = &signed.quote;
        let total = quote
            .total_for(config.amount)
            .ok_or(QuoteError::FeeOverflow(config.amount))?;
        let deadline_ms = now
            .checked_add(quote.lock_time_ms)
            .and_then(|at| at.checked_add(quote.delta_ms))
            .ok_or(QuoteError::Malformed("the deadline overflows"))?;
        let quote_hash = signed.hash();
        let terms_a = LockTerms {
            payee: quote.maker_a,
            amount: total,
            hash_lock: config.secret.hash_lock(),
            deadline_ms,
            counterpart: Counterpart {
                network: quote.network_b,
                escrow: None,
                quote: Some(quote_hash),
            },
        };
        let network = quote.network_a;
        let payer = Payer {
            state: PayerState {
                config,
                quote_hash,
                terms_a,
                escrow_a: None,
                standing_a: None,
                lock_b: None,
                standing_b: None,
                claim_refusal: None,
                retry_at: None,
                phase: PayerPhase::Locking,
            },
            notice_sent_at: None,
            wake: None,
        };
        let out = vec![
            Action::Journal,
            Action::Lock {
                network,
                terms: terms_a,
            },
        ];
        Ok((payer, out))
    }

    /// Restarts from a journaled state at `now`: re-issues what was in flight (the same
    /// lock, the same claim while still in time, a refund) and the watches.
    pub fn resume(state: PayerState, now: u64) -> (Payer, Out) {
        let mut payer = Payer {
            state,
            notice_sent_at: None,
            wake: None,
        };
        // What was open before the crash may have settled since: decide on fresh sights.
        for standing in [&mut payer.state.standing_a, &mut payer.state.standing_b] {
            if *standing == Some(Standing::Open) {
                *standing = None;
            }
        }
        let mut out = Vec::new();
        let (a, b) = payer.networks();
        match payer.state.phase.clone() {
            PayerPhase::Locking => out.push(Action::Lock {
                network: a,
                terms: payer.state.terms_a,
            }),
            PayerPhase::Finished(outcome) => return (payer, vec![Action::Done(outcome)]),
            _ => {}
        }
        if payer.state.escrow_a.is_some() {
            payer.watch(&mut out);
        }
        if let (PayerPhase::Claiming, Some((escrow, lock)), None) = (
            &payer.state.phase,
            payer.state.lock_b,
            &payer.state.claim_refusal,
        ) && now <= payer.last_claim(&lock)
        {
            out.push(Action::Claim {
                network: b,
                escrow,
                secret: payer.state.config.secret,
            });
        }
        if payer.state.phase == PayerPhase::Refunding
            && let Some(escrow) = payer.state.escrow_a
        {
            out.push(Action::Refund { network: a, escrow });
        }
        let before = payer.state.clone();
        payer.advance(now, &mut out);
        journal_first(&before, &payer.state, &mut out);
        (payer, out)
    }

    /// The state to journal.
    pub fn snapshot(&self) -> PayerState {
        self.state.clone()
    }

    /// Where the wire stands.
    pub fn phase(&self) -> &PayerPhase {
        &self.state.phase
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.state.phase {
            PayerPhase::Finished(outcome) => Some(outcome),
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

    fn hash_lock(&self) -> Digest {
        self.state.terms_a.hash_lock
    }

    fn t_a(&self) -> u64 {
        self.state.terms_a.deadline_ms
    }

    fn last_claim(&self, lock: &EscrowLock) -> u64 {
        let timing = &self.state.config.timing;
        last_claim_at(lock.deadline, timing.skew_b, timing.certify_b)
    }

    /// After this no valid maker lock can be claimed: any has T_B ≤ T_A − Δ.
    fn give_up_at(&self) -> u64 {
        let timing = &self.state.config.timing;
        let latest_t_b = self
            .t_a()
            .saturating_sub(self.state.config.quote.quote.delta_ms);
        last_claim_at(latest_t_b, timing.skew_b, timing.certify_b)
    }

    /// When a claim not seen certified is taken as failed: no claim is voted after T_B + ε_B
    /// by any honest clock; `notice` more lets the driver see a certificate formed just
    /// before.
    fn claim_hopeless_at(&self, lock: &EscrowLock) -> u64 {
        let timing = &self.state.config.timing;
        refund_from(lock.deadline, timing.skew_b).saturating_add(timing.notice)
    }

    fn refund_at(&self) -> u64 {
        let from = refund_from(self.t_a(), self.state.config.timing.skew_a);
        from.max(self.state.retry_at.unwrap_or(0))
    }

    fn watch(&self, out: &mut Out) {
        let (a, b) = self.networks();
        let target = Target::HashLock(self.hash_lock());
        out.push(Action::Watch { network: a, target });
        out.push(Action::Watch { network: b, target });
    }

    /// Whether `lock`, seen on B as `escrow`, is one the payer may claim (time aside).
    pub(crate) fn valid_maker_lock(&self, escrow: &EscrowId, lock: &EscrowLock) -> bool {
        let (a, b) = self.networks();
        let state = &self.state;
        let cites = Counterpart {
            network: a,
            escrow: state.escrow_a,
            quote: Some(state.quote_hash),
        };
        state.escrow_a.is_some()
            && escrow_id(&b, lock) == *escrow
            && lock.payee == state.config.account
            && lock.amount == state.config.amount
            && lock.hash_lock == self.hash_lock()
            && lock.counterpart == Some(cites)
            && check_deadlines(self.t_a(), lock.deadline, state.config.quote.quote.delta_ms).is_ok()
    }

    fn on_event(&mut self, event: Event, now: u64, out: &mut Out) {
        let (a, b) = self.networks();
        let state = &self.state;
        match event {
            Event::Locked {
                network,
                escrow,
                lock,
            } if network == a
                && state.phase == PayerPhase::Locking
                && lock.payer == state.config.account
                && state.terms_a.matches(&lock)
                && escrow_id(&a, &lock) == escrow =>
            {
                self.state.escrow_a = Some(escrow);
                self.state.standing_a = Some(Standing::Open);
                self.state.phase = PayerPhase::AwaitingMaker;
                self.watch(out);
            }
            Event::LockRefused { network, reason }
                if network == a && state.phase == PayerPhase::Locking =>
            {
                self.finish(Outcome::Aborted(reason), out);
            }
            Event::Seen {
                network,
                escrow,
                standing,
                ..
            } if network == a && Some(escrow) == state.escrow_a => {
                self.state.standing_a = Some(standing);
            }
            Event::Seen {
                network,
                escrow,
                lock,
                standing,
            } if network == b => self.on_maker_lock(escrow, lock, standing, now, out),
            Event::Claimed { network, escrow } if network == b && self.is_lock_b(&escrow) => {
                self.state.standing_b = Some(Standing::Claimed);
            }
            Event::ClaimRefused {
                network,
                escrow,
                refusal,
            } if network == b && self.is_lock_b(&escrow) => {
                match refusal {
                    Refusal::Settled => out.push(Action::Watch {
                        network: b,
                        target: Target::Escrow(escrow),
                    }),
                    Refusal::Other(_) => self.state.retry_at = Some(now.saturating_add(RETRY_MS)),
                    _ => {}
                }
                self.state.claim_refusal = Some(refusal);
            }
            Event::Refunded { network, escrow }
                if network == a && Some(escrow) == state.escrow_a =>
            {
                self.state.standing_a = Some(Standing::Refunded);
            }
            Event::RefundRefused {
                network,
                escrow,
                refusal,
            } if network == a
                && Some(escrow) == state.escrow_a
                && state.phase == PayerPhase::Refunding =>
            {
                if refusal == Refusal::Settled {
                    out.push(Action::Watch {
                        network: a,
                        target: Target::Escrow(escrow),
                    });
                } else {
                    self.state.retry_at = Some(now.saturating_add(RETRY_MS));
                    self.state.phase = PayerPhase::AwaitingRefund;
                }
            }
            Event::Message(Message::MakerLocked { escrow_a, escrow })
                if Some(escrow_a) == state.escrow_a =>
            {
                out.push(Action::Watch {
                    network: b,
                    target: Target::Escrow(escrow),
                });
            }
            _ => {}
        }
    }

    fn is_lock_b(&self, escrow: &EscrowId) -> bool {
        self.state.lock_b.is_some_and(|(id, _)| id == *escrow)
    }

    fn on_maker_lock(
        &mut self,
        escrow: EscrowId,
        lock: EscrowLock,
        standing: Standing,
        now: u64,
        out: &mut Out,
    ) {
        if self.is_lock_b(&escrow) {
            self.state.standing_b = Some(standing);
            return;
        }
        if self.state.lock_b.is_some() || !self.valid_maker_lock(&escrow, &lock) {
            return;
        }
        match standing {
            // Paid already (someone else showed s): take it, whatever the phase.
            Standing::Claimed => {
                self.state.lock_b = Some((escrow, lock));
                self.state.standing_b = Some(standing);
            }
            Standing::Open
                if self.state.phase == PayerPhase::AwaitingMaker
                    && now <= self.last_claim(&lock) =>
            {
                self.state.lock_b = Some((escrow, lock));
                self.state.standing_b = Some(standing);
                self.state.phase = PayerPhase::Claiming;
                let (_, b) = self.networks();
                out.push(Action::Claim {
                    network: b,
                    escrow,
                    secret: self.state.config.secret,
                });
            }
            _ => {}
        }
    }

    /// Moves on with what is known at `now`.
    fn advance(&mut self, now: u64, out: &mut Out) {
        if self.outcome().is_some() {
            return;
        }
        if self.state.standing_b == Some(Standing::Claimed) {
            return self.finish(Outcome::Completed, out);
        }
        match self.state.phase {
            PayerPhase::AwaitingMaker if now > self.give_up_at() => {
                self.state.phase = PayerPhase::AwaitingRefund;
            }
            PayerPhase::AwaitingMaker => {
                let interval = self.state.config.timing.notice.max(RETRY_MS);
                let due = self
                    .notice_sent_at
                    .is_none_or(|at| now >= at.saturating_add(interval));
                if let Some(escrow) = self.state.escrow_a
                    && due
                {
                    self.notice_sent_at = Some(now);
                    let quote = self.state.quote_hash;
                    out.push(Action::Send(Message::PayerLocked { quote, escrow }));
                }
            }
            PayerPhase::Claiming if self.claim_failed(now) => {
                self.state.retry_at = None;
                self.state.phase = PayerPhase::AwaitingRefund;
            }
            PayerPhase::Claiming => self.retry_claim(now, out),
            _ => {}
        }
        if matches!(
            self.state.phase,
            PayerPhase::AwaitingRefund | PayerPhase::Refunding
        ) {
            match (self.state.standing_a, self.state.standing_b) {
                (Some(Standing::Refunded), _) => return self.finish(Outcome::Refunded, out),
                // Lost only once B is known refunded: a claim seen late may still show up.
                (Some(Standing::Claimed), Some(Standing::Refunded)) => {
                    let why = "the maker claimed A with the secret of a claim on B that failed";
                    return self.finish(Outcome::Lost(why.to_owned()), out);
                }
                _ => {}
            }
        }
        if self.state.phase == PayerPhase::AwaitingRefund
            && now >= self.refund_at()
            && let Some(escrow) = self.state.escrow_a
        {
            self.state.phase = PayerPhase::Refunding;
            let (a, _) = self.networks();
            out.push(Action::Refund { network: a, escrow });
        }
        self.schedule(now, out);
    }

    /// Whether the claim sent on B can no longer succeed.
    fn claim_failed(&self, now: u64) -> bool {
        let Some((_, lock)) = self.state.lock_b else {
            return true;
        };
        match (&self.state.claim_refusal, self.state.standing_b) {
            (_, Some(Standing::Refunded)) => true,
            (Some(Refusal::TooLate), _) => true,
            (Some(Refusal::Other(_)), _) if now > self.last_claim(&lock) => true,
            (_, Some(Standing::Open)) => now >= self.claim_hopeless_at(&lock),
            _ => false,
        }
    }

    /// Sends the same claim again after a refusal that may pass (validators unreachable,
    /// say), as long as it is in time.
    fn retry_claim(&mut self, now: u64, out: &mut Out) {
        let Some((escrow, lock)) = self.state.lock_b else {
            return;
        };
        let due = self.state.retry_at.is_some_and(|at| now >= at);
        if matches!(self.state.claim_refusal, Some(Refusal::Other(_)))
            && due
            && now <= self.last_claim(&lock)
        {
            self.state.claim_refusal = None;
            self.state.retry_at = None;
            let (_, b) = self.networks();
            let secret = self.state.config.secret;
            out.push(Action::Claim {
                network: b,
                escrow,
                secret,
            });
        }
    }

    /// Asks for a tick at the next moment that matters.
    fn schedule(&mut self, now: u64, out: &mut Out) {
        let next = match self.state.phase {
            PayerPhase::AwaitingMaker => {
                let interval = self.state.config.timing.notice.max(RETRY_MS);
                let notice = self.notice_sent_at.map_or(now, |at| at + interval);
                Some(notice.min(self.give_up_at().saturating_add(1)))
            }
            PayerPhase::Claiming => {
                let hopeless = self.state.lock_b.map(|(_, l)| self.claim_hopeless_at(&l));
                match self.state.retry_at {
                    Some(at) => hopeless.map(|h| h.min(at)),
                    None => hopeless,
                }
            }
            PayerPhase::AwaitingRefund => Some(self.refund_at()),
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
        self.state.phase = PayerPhase::Finished(outcome.clone());
        out.push(Action::Done(outcome));
    }
}

#[cfg(test)]
mod tests;
