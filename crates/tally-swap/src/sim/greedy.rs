//! A payer that cheats within what the validators allow: a short T_A, a refund of A as early
//! as the validators vote it, and a claim on B after that refund or as late as it dares.
//! An honest maker must never lose to it; a maker without the Δ check does.

use tally_core::{AccountId, Counterpart, EscrowId, EscrowSecret};

use super::ledger::Ledger;
use crate::quote::SignedQuote;
use crate::wire::{Action, Event, LockTerms, Message, Standing};

#[derive(Clone, Debug)]
pub struct Greedy {
    pub cut: u64,
    pub lead: u64,
    pub account: AccountId,
    pub quote: SignedQuote,
    pub secret: EscrowSecret,
    pub amount: u64,
    pub terms: Option<LockTerms>,
    pub escrow_a: Option<EscrowId>,
}

impl Greedy {
    /// Its lock on A: T_A = now + lock time + Δ − cut (at least just past what A's
    /// validators take).
    pub fn start(&mut self, now: u64, skew_a: u64) -> Vec<Action> {
        let quote = &self.quote.quote;
        let amount = tally_core::Amount::from_microcash(self.amount);
        let Some(total) = quote.total_for(amount) else {
            return Vec::new();
        };
        let full = now + quote.lock_time_ms + quote.delta_ms;
        let deadline_ms = full.saturating_sub(self.cut).max(now + 2 * skew_a + 1_000);
        let terms = LockTerms {
            payee: quote.maker_a,
            amount: total,
            hash_lock: self.secret.hash_lock(),
            deadline_ms,
            counterpart: Counterpart {
                network: quote.network_b,
                escrow: None,
                quote: Some(self.quote.hash()),
            },
        };
        self.terms = Some(terms);
        vec![Action::Lock {
            network: quote.network_a,
            terms,
        }]
    }

    pub fn on_event(&mut self, event: &Event) {
        if let Event::Locked { escrow, lock, .. } = event
            && self.terms.is_some_and(|terms| terms.matches(lock))
        {
            self.escrow_a = Some(*escrow);
        }
    }

    /// One poll at true time `now`, looking at both ledgers directly.
    pub fn step(&mut self, a: &Ledger, b: &Ledger, now: u64) -> Vec<Action> {
        let (Some(escrow_a), Some(terms)) = (self.escrow_a, self.terms) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let standing_a = a.escrows.get(&escrow_a).map(|e| e.standing);
        if standing_a == Some(Standing::Open) && now >= terms.deadline_ms {
            out.push(Action::Refund {
                network: a.id,
                escrow: escrow_a,
            });
        }
        match b.by_hash(&terms.hash_lock) {
            Some((escrow, maker_lock)) if maker_lock.lock.payee == self.account => {
                let t_b = maker_lock.lock.deadline;
                let refunded = standing_a == Some(Standing::Refunded);
                let late = now + self.lead >= t_b;
                if maker_lock.standing == Standing::Open && now < t_b + b.skew && (refunded || late)
                {
                    out.push(Action::Claim {
                        network: b.id,
                        escrow,
                        secret: self.secret,
                    });
                }
            }
            _ => out.push(Action::Send(Message::PayerLocked {
                quote: self.quote.hash(),
                escrow: escrow_a,
            })),
        }
        out
    }
}
