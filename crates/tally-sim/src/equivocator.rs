//! Equivocating account owners: they speak the quorum protocol (gather a quorum of votes,
//! assemble the certificate, hand it to every validator, catch a lagging validator up) but
//! sign two different orders for each slot and send both to every validator, in an order
//! of the seed's choosing: the race that can split a slot. The wallet library never does
//! this, so these owners are a model of a malicious one, not the wallet's code (honest
//! wallets and two copies of one wallet are the real wallet: [`crate::wallet`]).

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand::rngs::StdRng;
use tally_core::{
    AccountId, Amount, Certificate, NetworkId, Order, OrderDigest, SecretKey, SignedOrder,
    Transfer, Vote,
};

use crate::check::{Observer, Signatures};
use crate::net::{Message, Node, Payload, Refusal};

/// Wakes without a quorum after which an equivocator gives its slot up as frozen.
const GIVE_UP_AFTER: u32 = 12;

/// One slot's two orders on their way.
struct Flight {
    orders: Vec<(SignedOrder, OrderDigest)>,
    /// Per order, the verified votes by validator.
    votes: Vec<BTreeMap<usize, Vote>>,
    certificate: Option<Certificate>,
    acknowledged: BTreeSet<usize>,
    wakes: u32,
}

/// What the owner needs to know of the network.
pub struct Context<'a> {
    pub network: &'a NetworkId,
    pub validator_keys: &'a [AccountId],
    pub quorum: usize,
    pub accounts: &'a [AccountId],
}

/// One equivocating owner and its account.
pub struct Equivocator {
    pub index: usize,
    key: SecretKey,
    pub next_sequence: u64,
    pub payments_left: u32,
    /// Its certificates, in sequence order (to catch validators up).
    pub held: Vec<Certificate>,
    flight: Option<Flight>,
    /// It gave its slot up as split.
    pub frozen: bool,
    /// Set when a late quorum revived a slot given up: its timer must run again.
    revived: bool,
}

impl Equivocator {
    pub fn new(index: usize, key: SecretKey, payments: u32) -> Self {
        Equivocator {
            index,
            key,
            next_sequence: 0,
            payments_left: payments,
            held: Vec::new(),
            flight: None,
            frozen: false,
            revived: false,
        }
    }

    pub fn account(&self) -> AccountId {
        self.key.account()
    }

    /// Whether a late certificate revived it since the last call (its timer had stopped).
    pub fn take_revived(&mut self) -> bool {
        std::mem::take(&mut self.revived)
    }

    /// Whether its timer should keep running.
    pub fn wants_wake(&self) -> bool {
        !self.frozen && (self.flight.is_some() || self.payments_left > 0)
    }

    fn request(&self, validator: usize, payload: Payload) -> Message {
        Message {
            from: Node::Client(self.index),
            to: Node::Validator(validator),
            payload,
        }
    }

    fn to_all(&self, ctx: &Context, payload: &Payload) -> Vec<Message> {
        (0..ctx.validator_keys.len())
            .map(|v| self.request(v, payload.clone()))
            .collect()
    }

    /// The timer: start the next pair of orders, or send again what was not answered.
    pub fn wake(
        &mut self,
        rng: &mut StdRng,
        ctx: &Context,
        observer: &mut Observer,
    ) -> Vec<Message> {
        if self.frozen {
            return Vec::new();
        }
        let Some(flight) = self.flight.as_mut() else {
            if self.payments_left == 0 {
                return Vec::new();
            }
            return self.start(rng, ctx, observer);
        };
        flight.wakes += 1;
        if let Some(certificate) = &flight.certificate {
            let payload = Payload::PayEnd(certificate.clone());
            let missing: Vec<usize> = (0..ctx.validator_keys.len())
                .filter(|v| !flight.acknowledged.contains(v))
                .collect();
            return missing
                .into_iter()
                .map(|v| self.request(v, payload.clone()))
                .collect();
        }
        if flight.wakes > GIVE_UP_AFTER {
            self.frozen = true;
            return Vec::new();
        }
        let mut out = Vec::new();
        for v in 0..ctx.validator_keys.len() {
            for (i, (order, _)) in flight.orders.iter().enumerate() {
                if !flight.votes[i].contains_key(&v) {
                    out.push(Message {
                        from: Node::Client(self.index),
                        to: Node::Validator(v),
                        payload: Payload::Pay(order.clone()),
                    });
                }
            }
        }
        out
    }

    fn start(&mut self, rng: &mut StdRng, ctx: &Context, observer: &mut Observer) -> Vec<Message> {
        let mut orders = Vec::with_capacity(2);
        for _ in 0..2 {
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
        for v in 0..ctx.validator_keys.len() {
            // Each validator gets both, in an order of the seed's choosing.
            let first = rng.gen_range(0..2);
            for k in 0..2 {
                let (order, _) = &orders[(first + k) % 2];
                out.push(self.request(v, Payload::Pay(order.clone())));
            }
        }
        self.flight = Some(Flight {
            votes: vec![BTreeMap::new(); orders.len()],
            orders,
            certificate: None,
            acknowledged: BTreeSet::new(),
            wakes: 0,
        });
        out
    }

    /// An answer from validator `from`. Returns what to send, and whether a payment was
    /// acknowledged by a quorum (it is then free for the next one).
    pub fn on_answer(
        &mut self,
        from: usize,
        payload: &Payload,
        ctx: &Context,
        signatures: &mut Signatures,
        observer: &mut Observer,
    ) -> Result<(Vec<Message>, bool), String> {
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
            let catch_up = self
                .held
                .iter()
                .skip(start)
                .map(|c| self.request(from, Payload::PayEnd(c.clone())))
                .collect();
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
                if flight.votes[i].len() < ctx.quorum {
                    return Ok((Vec::new(), false));
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
                self.held.push(certificate.clone());
                self.next_sequence += 1;
                self.payments_left = self.payments_left.saturating_sub(1);
                self.flight = None;
                Ok((Vec::new(), true))
            }
            _ => Ok((Vec::new(), false)),
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
