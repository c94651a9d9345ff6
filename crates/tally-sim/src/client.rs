//! Simulated wallets: the quorum client's protocol (sign, gather a quorum of votes,
//! assemble the certificate, hand it to every validator, catch a lagging validator up),
//! with a journal that survives everything: an honest wallet never signs a second order
//! for a slot, it sends the same one again. An equivocating owner signs two. Two copies of
//! one wallet (twins: one key, two journals) follow the wallet's rules for that case: ask
//! the signer's first voter alone first, finish the other copy's order when it won the
//! slot, and look up the certificate that settled a slot the account moved past.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand::rngs::StdRng;
use tally_core::{
    AccountId, Amount, Certificate, NetworkId, Order, OrderDigest, SecretKey, SignedOrder,
    Transfer, Vote,
};

use crate::check::{Observer, Signatures};
use crate::net::{Message, Node, Payload, Refusal};

/// How an owner signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Honest,
    /// Signs two different orders for each slot and sends both to every validator, in a
    /// random order: the race that can split a slot.
    Equivocator,
    /// One of two copies of one wallet: the same key, its own journal, its own payments.
    Twin,
}

/// Wakes without a quorum after which an equivocator gives its slot up as frozen.
const GIVE_UP_AFTER: u32 = 12;
/// Wakes a twin asks its first voter alone before it asks everyone (as the wallet waits
/// for the first voter's answer until its request times out).
const FIRST_VOTER_PATIENCE: u32 = 4;

/// One slot's order(s) on their way.
struct Flight {
    orders: Vec<(SignedOrder, OrderDigest)>,
    /// Per order, the verified votes by validator.
    votes: Vec<BTreeMap<usize, Vote>>,
    certificate: Option<Certificate>,
    acknowledged: BTreeSet<usize>,
    wakes: u32,
    /// A twin asks the signer's first voter alone: `Some` until it answers.
    first_voter: Option<usize>,
    /// Whether the order is this wallet's own payment (a twin may finish its other copy's).
    ours: bool,
}

impl Flight {
    fn new(
        orders: Vec<(SignedOrder, OrderDigest)>,
        first_voter: Option<usize>,
        ours: bool,
    ) -> Self {
        Flight {
            votes: vec![BTreeMap::new(); orders.len()],
            orders,
            certificate: None,
            acknowledged: BTreeSet::new(),
            wakes: 0,
            first_voter,
            ours,
        }
    }
}

/// A request from wallet `wallet` to validator `validator`.
fn request(wallet: usize, validator: usize, payload: Payload) -> Message {
    Message {
        from: Node::Client(wallet),
        to: Node::Validator(validator),
        payload,
    }
}

/// One wallet and its account.
pub struct SimWallet {
    pub index: usize,
    pub kind: Kind,
    key: SecretKey,
    pub next_sequence: u64,
    pub payments_left: u32,
    /// Its own certificates, in sequence order (to catch validators up).
    pub held: Vec<Certificate>,
    flight: Option<Flight>,
    /// An equivocator that gave up a split slot.
    pub frozen: bool,
    /// Set when a late quorum revived a slot given up: its timer must run again.
    revived: bool,
    /// A twin whose order lost its slot to the other copy's: the slot it is learning about
    /// (the other copy's order, or the certificate that settled it).
    learning: Option<u64>,
    /// Slots this twin sent to every validator without its first voter's answer: where the
    /// race between the copies was open again.
    pub fell_back: BTreeSet<u64>,
    /// Orders of the other copy this twin finished.
    pub finished_for_twin: u64,
    /// Planted mistake: a twin asks everyone at once, not its first voter first.
    pub skips_first_voter: bool,
}

/// What the wallet needs to know of the network.
pub struct Context<'a> {
    pub network: &'a NetworkId,
    pub validator_keys: &'a [AccountId],
    pub quorum: usize,
    pub accounts: &'a [AccountId],
}

impl SimWallet {
    pub fn new(index: usize, kind: Kind, key: SecretKey, payments: u32) -> Self {
        SimWallet {
            index,
            kind,
            key,
            next_sequence: 0,
            payments_left: payments,
            held: Vec::new(),
            flight: None,
            frozen: false,
            revived: false,
            learning: None,
            fell_back: BTreeSet::new(),
            finished_for_twin: 0,
            skips_first_voter: false,
        }
    }

    pub fn account(&self) -> AccountId {
        self.key.account()
    }

    /// Whether it has an order in flight, or a slot it is still learning about.
    pub fn busy(&self) -> bool {
        self.flight.is_some() || self.learning.is_some()
    }

    /// A twin that gave its slot up as frozen tries again (the network healed): it either
    /// learns what settled the slot or gives it up again, this time for good.
    pub fn retry_if_frozen(&mut self) {
        if self.kind == Kind::Twin && self.frozen {
            self.frozen = false;
            self.revived = true;
            if let Some(flight) = self.flight.as_mut() {
                flight.wakes = 0;
            }
        }
    }

    /// Whether a late certificate revived it since the last call (its timer had stopped).
    pub fn take_revived(&mut self) -> bool {
        std::mem::take(&mut self.revived)
    }

    /// Whether its timer should keep running.
    pub fn wants_wake(&self) -> bool {
        !self.frozen && (self.busy() || self.payments_left > 0)
    }

    fn to_all(&self, ctx: &Context, payload: &Payload) -> Vec<Message> {
        (0..ctx.validator_keys.len())
            .map(|v| Message {
                from: Node::Client(self.index),
                to: Node::Validator(v),
                payload: payload.clone(),
            })
            .collect()
    }

    /// The timer: start the next payment, or send again what was not answered.
    pub fn wake(
        &mut self,
        rng: &mut StdRng,
        ctx: &Context,
        observer: &mut Observer,
    ) -> Vec<Message> {
        if self.frozen {
            return Vec::new();
        }
        if let Some(sequence) = self.learning {
            let account = self.account();
            let mut out = self.to_all(ctx, &Payload::HeldOrder(account));
            out.extend(self.to_all(ctx, &Payload::Sent(account, sequence)));
            return out;
        }
        let sequence = self.next_sequence;
        let Some(flight) = self.flight.as_mut() else {
            if self.payments_left == 0 {
                return Vec::new();
            }
            return self.start(rng, ctx, observer);
        };
        flight.wakes += 1;
        if let Some(certificate) = &flight.certificate {
            let payload = Payload::PayEnd(certificate.clone());
            return (0..ctx.validator_keys.len())
                .filter(|v| !flight.acknowledged.contains(v))
                .map(|v| request(self.index, v, payload.clone()))
                .collect();
        }
        if self.kind != Kind::Honest && flight.wakes > GIVE_UP_AFTER {
            self.frozen = true;
            return Vec::new();
        }
        let mut out = Vec::new();
        if self.kind == Kind::Twin {
            if let Some(first) = flight.first_voter {
                if flight.wakes < FIRST_VOTER_PATIENCE {
                    // Ask it again (a lost message, a restart): it still decides first.
                    let order = flight.orders[0].0.clone();
                    out.push(request(self.index, first, Payload::Pay(order)));
                    out.extend((0..ctx.validator_keys.len()).map(|v| {
                        request(self.index, v, Payload::Sent(self.key.account(), sequence))
                    }));
                    return out;
                }
                // The first voter does not answer: ask everyone; the race is open again.
                flight.first_voter = None;
                self.fell_back.insert(sequence);
            }
            // The other copy may have settled the slot meanwhile: ask what did.
            out.extend(
                (0..ctx.validator_keys.len())
                    .map(|v| request(self.index, v, Payload::Sent(self.key.account(), sequence))),
            );
        }
        for v in 0..ctx.validator_keys.len() {
            for (i, (order, _)) in flight.orders.iter().enumerate() {
                if !flight.votes[i].contains_key(&v) {
                    out.push(request(self.index, v, Payload::Pay(order.clone())));
                }
            }
        }
        out
    }

    fn start(&mut self, rng: &mut StdRng, ctx: &Context, observer: &mut Observer) -> Vec<Message> {
        let versions = match self.kind {
            Kind::Honest | Kind::Twin => 1,
            Kind::Equivocator => 2,
        };
        let mut orders = Vec::with_capacity(versions);
        for _ in 0..versions {
            // Anyone but itself.
            let others: Vec<&AccountId> = ctx
                .accounts
                .iter()
                .filter(|a| **a != self.account())
                .collect();
            let recipient = *others[rng.gen_range(0..others.len())];
            let order = SignedOrder::sign(
                Order::Transfer(Transfer {
                    sender: self.account(),
                    recipient,
                    amount: Amount::from_microcash(rng.gen_range(1..=1000)),
                    sequence: self.next_sequence,
                }),
                &self.key,
                ctx.network,
            );
            let digest = order.order.digest(ctx.network);
            observer.signed(&order, digest);
            orders.push((order, digest));
        }
        let mut out = Vec::new();
        if self.kind == Kind::Twin && !self.skips_first_voter {
            let first = tally_core::first_voter(&self.account(), ctx.validator_keys.len());
            out.push(request(
                self.index,
                first,
                Payload::Pay(orders[0].0.clone()),
            ));
            self.flight = Some(Flight::new(orders, Some(first), true));
            return out;
        }
        for v in 0..ctx.validator_keys.len() {
            // Each validator gets every version, in an order of the seed's choosing.
            let first = rng.gen_range(0..versions);
            for k in 0..versions {
                let (order, _) = &orders[(first + k) % versions];
                out.push(request(self.index, v, Payload::Pay(order.clone())));
            }
        }
        self.flight = Some(Flight::new(orders, None, true));
        out
    }

    /// An answer from validator `from`. Returns what to send, and whether a payment was
    /// acknowledged by a quorum (the wallet is then free for the next one).
    pub fn on_answer(
        &mut self,
        from: usize,
        payload: &Payload,
        ctx: &Context,
        signatures: &mut Signatures,
        observer: &mut Observer,
    ) -> Result<(Vec<Message>, bool), String> {
        if self.kind == Kind::Twin
            && let Some(handled) = self.on_twin_answer(from, payload, ctx, signatures)
        {
            return Ok(handled);
        }
        // The validator lacks this account's earlier certificates: hand them over (only
        // when the refusal is about one of its orders: a late answer about something else
        // says nothing of where the validator is).
        if let Payload::Refused(digest, Refusal::Behind { expected }) = payload {
            let ours = self.held.iter().any(|c| c.checksum == *digest)
                || self
                    .flight
                    .as_ref()
                    .is_some_and(|f| f.orders.iter().any(|(_, d)| d == digest));
            if !ours {
                return Ok((Vec::new(), false));
            }
            let start = usize::try_from(*expected).unwrap_or(usize::MAX);
            let mut catch_up: Vec<Message> = self
                .held
                .iter()
                .skip(start)
                .map(|c| request(self.index, from, Payload::PayEnd(c.clone())))
                .collect();
            // A twin's first voter, caught up, is asked again: it still decides first.
            if let Some(flight) = &self.flight
                && flight.first_voter == Some(from)
            {
                catch_up.push(request(
                    self.index,
                    from,
                    Payload::Pay(flight.orders[0].0.clone()),
                ));
            }
            return Ok((catch_up, false));
        }
        let Some(flight) = self.flight.as_mut() else {
            return Ok((Vec::new(), false));
        };
        match payload {
            Payload::Voted(digest, vote) => {
                let Some(i) = flight.orders.iter().position(|(_, d)| d == digest) else {
                    return Ok((Vec::new(), false));
                };
                let message = Vote::signing_bytes(ctx.network, digest);
                if flight.certificate.is_some()
                    || ctx.validator_keys.get(from) != Some(&vote.validator)
                    || !signatures.check(&vote.validator, &vote.signature, &message)
                {
                    return Ok((Vec::new(), false));
                }
                flight.votes[i].insert(from, *vote);
                // A twin's first voter has decided for this order: now everyone is asked.
                let mut out = Vec::new();
                if flight.first_voter == Some(from) {
                    flight.first_voter = None;
                    let order = &flight.orders[i].0;
                    out = (0..ctx.validator_keys.len())
                        .filter(|v| *v != from)
                        .map(|v| request(self.index, v, Payload::Pay(order.clone())))
                        .collect();
                }
                if flight.votes[i].len() < ctx.quorum {
                    return Ok((out, false));
                }
                let votes: Vec<Vote> = flight.votes[i].values().copied().collect();
                let certificate = Certificate::new(flight.orders[i].0.clone(), ctx.network, votes);
                observer.assembled(&certificate)?;
                flight.certificate = Some(certificate.clone());
                // Votes that arrive late can still make a quorum for a slot given up: the
                // certificate exists, so it must be delivered like any other.
                if self.frozen {
                    self.frozen = false;
                    self.revived = true;
                }
                Ok((self.to_all(ctx, &Payload::PayEnd(certificate)), false))
            }
            Payload::Applied(digest) => {
                let Some(certificate) = &flight.certificate else {
                    return Ok((Vec::new(), false));
                };
                if certificate.checksum != *digest {
                    return Ok((Vec::new(), false));
                }
                flight.acknowledged.insert(from);
                if flight.acknowledged.len() < ctx.quorum {
                    return Ok((Vec::new(), false));
                }
                let ours = flight.ours;
                self.held.push(certificate.clone());
                self.next_sequence += 1;
                if ours {
                    self.payments_left = self.payments_left.saturating_sub(1);
                } else {
                    self.finished_for_twin += 1;
                }
                self.flight = None;
                Ok((Vec::new(), ours))
            }
            _ => Ok((Vec::new(), false)),
        }
    }

    /// What only a twin does with an answer; `None` for what every wallet handles alike.
    fn on_twin_answer(
        &mut self,
        from: usize,
        payload: &Payload,
        ctx: &Context,
        signatures: &mut Signatures,
    ) -> Option<(Vec<Message>, bool)> {
        let account = self.account();
        let sequence = self.next_sequence;
        let in_flight = |digest: &OrderDigest| {
            self.flight
                .as_ref()
                .is_some_and(|f| f.orders.iter().any(|(_, d)| d == digest))
        };
        let asked_first = self
            .flight
            .as_ref()
            .is_some_and(|f| f.first_voter == Some(from));
        match payload {
            // The first voter holds its vote for the other copy's order: ours was shown to
            // no one else and holds no vote; drop it and learn the other.
            Payload::Refused(digest, Refusal::Conflict) if asked_first && in_flight(digest) => {
                self.flight = None;
                self.learning = Some(sequence);
                Some((
                    vec![request(self.index, from, Payload::HeldOrder(account))],
                    false,
                ))
            }
            // The account moved past this slot (the other copy's payments): find out what
            // settled it rather than guess.
            Payload::Refused(digest, Refusal::Behind { expected })
                if *expected > sequence && in_flight(digest) =>
            {
                Some((
                    vec![request(self.index, from, Payload::Sent(account, sequence))],
                    false,
                ))
            }
            // Any other refusal by the first voter: everyone is asked, as the wallet does,
            // and the race between the copies is open again.
            Payload::Refused(digest, Refusal::Other) if asked_first && in_flight(digest) => {
                let flight = self.flight.as_mut()?;
                flight.first_voter = None;
                self.fell_back.insert(sequence);
                let order = flight.orders[0].0.clone();
                let out = (0..ctx.validator_keys.len())
                    .filter(|v| *v != from)
                    .map(|v| request(self.index, v, Payload::Pay(order.clone())))
                    .collect();
                Some((out, false))
            }
            Payload::Held {
                next_sequence,
                order,
            } if self.learning == Some(sequence) => {
                if let Some(order) = order
                    && order.order.signer() == account
                    && order.order.sequence() == Some(sequence)
                    && signatures.check(
                        &account,
                        &order.signature,
                        &order.order.signing_bytes(ctx.network),
                    )
                {
                    // Finish the other copy's order: the slot is settled once, by it.
                    let digest = order.order.digest(ctx.network);
                    self.learning = None;
                    self.flight = Some(Flight::new(vec![(order.clone(), digest)], None, false));
                    return Some((self.to_all(ctx, &Payload::Pay(order.clone())), false));
                }
                let out = if *next_sequence > sequence {
                    vec![request(self.index, from, Payload::Sent(account, sequence))]
                } else {
                    Vec::new()
                };
                Some((out, false))
            }
            Payload::SentCert(Some(certificate))
                if certificate.order.signer() == account
                    && certificate.order.sequence() == Some(sequence)
                    && signatures.genuine(
                        certificate,
                        ctx.network,
                        ctx.validator_keys,
                        ctx.quorum,
                    ) =>
            {
                // The slot is settled: by our own order (the other copy finished it: the
                // payment is done), or by the other copy's (ours can never be certified).
                let ours = self.flight.as_ref().is_some_and(|f| {
                    f.ours && f.orders.iter().any(|(o, _)| o.order == certificate.order)
                });
                self.held.push(certificate.clone());
                self.next_sequence += 1;
                self.learning = None;
                self.flight = None;
                // A slot given up as frozen was settled after all: its timer runs again.
                if self.frozen {
                    self.frozen = false;
                    self.revived = true;
                }
                if ours {
                    self.payments_left = self.payments_left.saturating_sub(1);
                }
                // The other copy may have gone further still.
                let next = request(self.index, from, Payload::Sent(account, self.next_sequence));
                Some((vec![next], ours))
            }
            _ => None,
        }
    }

    /// Every certificate it holds, to every validator (the end of a run).
    pub fn push_all(&self, ctx: &Context) -> Vec<Message> {
        let mut out = Vec::new();
        for certificate in &self.held {
            out.extend(self.to_all(ctx, &Payload::PayEnd(certificate.clone())));
        }
        out
    }
}
