//! What the networks and the relay do with what a driver sends: votes at each validator
//! in its own time, the counterpart notice, the answer to the sender, and the watches a
//! driver polls.

use tally_core::{EscrowId, EscrowSecret, NetworkId};

use super::{Ev, Net, Op, Saga, T0, Who, World};
use crate::sim::ledger::{VALIDATORS, Vote, Voted};
use crate::wire::{Event, Refusal, Standing, Target};

impl World {
    /// An order sent to every validator at once, each receiving it within the delivery
    /// bound; the sender hears the result once all have.
    pub(super) fn send_op(&mut self, who: Who, network: NetworkId, op: Op) {
        let (net, inc) = (self.net(&network), self.party(who).inc);
        for validator in 0..VALIDATORS {
            let at = self.now + self.rng.upto(self.p.delivery);
            self.schedule(at, Ev::Vote { net, validator, op });
        }
        let at = self.now + self.p.delivery + 1;
        self.schedule(at, Ev::Report { who, inc, net, op });
    }

    pub(super) fn vote(&mut self, net: Net, validator: usize, op: Op) {
        let now = self.now;
        if self.trace {
            println!("{} vote {net:?} v{validator} {op:?}", self.now - T0);
        }
        match op {
            Op::Claim(escrow, secret) => {
                let voted = self.ledger(net).vote_claim(&escrow, secret, validator, now);
                let notice = self.p.notice_delay;
                if let (Voted::FirstClaim, Some(delay)) = (voted, notice) {
                    self.notice(net, &escrow, secret, delay);
                }
            }
            Op::Refund(escrow) => self.ledger(net).vote_refund(&escrow, validator, now),
        }
    }

    /// The voting network pushes the secret to the counterpart's validators, which claim
    /// the escrow the lock cites (DESIGN §8 step 6).
    fn notice(&mut self, net: Net, escrow: &EscrowId, secret: EscrowSecret, delay: u64) {
        let Some(cited) = self
            .ledger(net)
            .escrows
            .get(escrow)
            .and_then(|e| e.lock.counterpart)
        else {
            return;
        };
        let (Some(target), other) = (cited.escrow, self.net(&cited.network)) else {
            return;
        };
        if other == net {
            return;
        }
        for validator in 0..VALIDATORS {
            let at = self.now + self.rng.upto(delay);
            let op = Op::Claim(target, secret);
            self.schedule(
                at,
                Ev::Vote {
                    net: other,
                    validator,
                    op,
                },
            );
        }
    }

    pub(super) fn report(&mut self, net: Net, op: Op) -> Event {
        let ledger = self.ledger(net);
        let network = ledger.id;
        let (escrow, conflict) = match op {
            Op::Claim(escrow, _) => (escrow, Vote::Refund),
            Op::Refund(escrow) => (escrow, Vote::Claim),
        };
        let standing = ledger.escrows.get(&escrow).map(|e| e.standing);
        let split = ledger.holds(&escrow, conflict);
        let refusal = |refusal| match (standing, split) {
            (None, _) => Refusal::Other("unknown escrow".into()),
            (Some(Standing::Open), true) => Refusal::Other("votes split".into()),
            (Some(Standing::Open), false) => refusal,
            _ => Refusal::Settled,
        };
        match (op, standing) {
            (Op::Claim(..), Some(Standing::Claimed)) => Event::Claimed { network, escrow },
            (Op::Claim(..), _) => Event::ClaimRefused {
                network,
                escrow,
                refusal: refusal(Refusal::TooLate),
            },
            (Op::Refund(_), Some(Standing::Refunded)) => Event::Refunded { network, escrow },
            (Op::Refund(_), _) => Event::RefundRefused {
                network,
                escrow,
                refusal: refusal(Refusal::TooEarly),
            },
        }
    }

    /// A driver's poll: what changed under its watches, then a tick.
    pub(super) fn poll(&mut self, who: Who, inc: u64) {
        let party = &self.parties[who as usize];
        if !party.up || party.inc != inc {
            return;
        }
        let mut events = Vec::new();
        for (net, target) in party.subs.clone() {
            let ledger = match net {
                Net::A => &self.a,
                Net::B => &self.b,
            };
            let found = match target {
                Target::Escrow(id) => ledger.escrows.get(&id).map(|e| (id, e)),
                Target::HashLock(hash) => ledger.by_hash(&hash),
            };
            let Some((id, escrow)) = found else { continue };
            let view = (id, escrow.standing, escrow.secret.is_some());
            if party.seen.get(&(net, target)) == Some(&view) {
                continue;
            }
            let network = ledger.id;
            events.push((
                (net, target),
                view,
                Event::Seen {
                    network,
                    escrow: id,
                    lock: escrow.lock,
                    standing: escrow.standing,
                },
            ));
            if let (Target::HashLock(_), Some(secret)) = (target, escrow.secret) {
                events.push((
                    (net, target),
                    view,
                    Event::SecretRevealed { network, secret },
                ));
            }
        }
        for (key, view, event) in events {
            self.party(who).seen.insert(key, view);
            self.deliver_later(who, event);
        }
        if let Saga::Greedy(greedy) = &mut self.parties[0].saga
            && who == Who::Payer
        {
            let actions = greedy.step(&self.a, &self.b, self.now);
            for action in actions {
                self.perform(who, action);
            }
        } else {
            self.deliver_later(who, Event::Tick);
        }
        let at = self.now + self.p.poll;
        self.schedule(at, Ev::Poll { who, inc });
    }
}
