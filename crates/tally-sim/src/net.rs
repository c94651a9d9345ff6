//! The simulated network and clock: one queue of timed events, popped in time order (ties
//! in the order they were scheduled), and the faults a seed draws for its messages.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::Rng;
use rand::rngs::StdRng;
use tally_core::{AccountId, Certificate, OrderDigest, SignedOrder, Vote};

/// Who sends or receives a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Validator(usize),
    Client(usize),
}

/// Why a validator refused an order or a certificate, as a wallet needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It expects an earlier sequence: it lacks the sender's earlier certificates.
    Behind { expected: u64 },
    /// It holds a vote for another order in this slot.
    Conflict,
    /// Anything else (a bad signature, funds, a certificate it cannot check).
    Other,
}

/// What travels between wallets and validators (the quorum protocol's requests and
/// answers, as values: the simulator does not exercise the wire encoding).
#[derive(Clone, Debug)]
pub enum Payload {
    /// `REQ_PAY`.
    Pay(SignedOrder),
    /// `RESP_PAY`: a vote for the order with this digest.
    Voted(OrderDigest, Vote),
    /// An error answer about the order with this digest.
    Refused(OrderDigest, Refusal),
    /// `REQ_PAY_END`.
    PayEnd(Certificate),
    /// `RESP_PAY_END`: applied, and durable.
    Applied(OrderDigest),
    /// `REQ_HELD_ORDER`: which order the validator holds its vote for in this account's
    /// next slot (a twin asks when the other copy's order took its slot).
    HeldOrder(AccountId),
    /// `RESP_HELD_ORDER`: the validator's next sequence for the account, and the held
    /// order if it holds a vote there.
    Held {
        next_sequence: u64,
        order: Option<SignedOrder>,
    },
    /// `REQ_CERTS Sent`: the certificate of this account's order of this sequence.
    Sent(AccountId, u64),
    /// `RESP_CERTS`: that certificate, if the validator applied it.
    SentCert(Option<Certificate>),
}

/// One message in flight.
#[derive(Clone, Debug)]
pub struct Message {
    pub from: Node,
    pub to: Node,
    pub payload: Payload,
}

/// Something that happens at a simulated time.
#[derive(Clone, Debug)]
pub enum Event {
    /// A message arrives.
    Deliver(Box<Message>),
    /// A validator decides what has queued for it.
    Process(usize),
    /// A validator's oldest decided batch reaches its disk.
    Commit(usize),
    /// A validator's process dies.
    Crash(usize),
    /// A validator's process starts again from its store.
    Restart(usize),
    /// A wallet's timer: start a payment, or send again what was not answered.
    Wake(usize),
}

struct Scheduled {
    at: u64,
    order: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    // Reversed: the heap pops the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

/// The faults a seed drew for its network.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetFaults {
    /// Per mille of messages lost.
    pub drop_per_mille: u32,
    /// Per mille of messages delivered twice.
    pub duplicate_per_mille: u32,
    /// Largest delay of a message, in ms (delays are uniform from 1, so messages reorder).
    pub max_delay_ms: u64,
}

/// The clock and the event queue.
pub struct Network {
    now: u64,
    next_order: u64,
    queue: BinaryHeap<Scheduled>,
    pub faults: NetFaults,
    /// A validator cut off until this time, if any: it neither sends nor receives.
    pub partitioned: Option<(usize, u64)>,
    pub delivered: u64,
}

impl Network {
    pub fn new(faults: NetFaults) -> Self {
        Network {
            now: 0,
            next_order: 0,
            queue: BinaryHeap::new(),
            faults,
            partitioned: None,
            delivered: 0,
        }
    }

    /// Simulated milliseconds since the start.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Schedules `event` `after` ms from now.
    pub fn schedule(&mut self, after: u64, event: Event) {
        self.queue.push(Scheduled {
            at: self.now + after,
            order: self.next_order,
            event,
        });
        self.next_order += 1;
    }

    /// The next event, with the clock moved to its time.
    pub fn pop(&mut self) -> Option<Event> {
        let next = self.queue.pop()?;
        self.now = next.at;
        Some(next.event)
    }

    fn cut_off(&self, node: Node) -> bool {
        match (self.partitioned, node) {
            (Some((cut, until)), Node::Validator(v)) => v == cut && self.now < until,
            _ => false,
        }
    }

    /// Sends `message`, subject to the faults: lost, delayed, or delivered twice.
    pub fn send(&mut self, rng: &mut StdRng, message: Message) {
        if self.cut_off(message.from) || self.cut_off(message.to) {
            return;
        }
        if rng.gen_range(0..1000) < self.faults.drop_per_mille {
            return;
        }
        let copies = if rng.gen_range(0..1000) < self.faults.duplicate_per_mille {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = rng.gen_range(1..=self.faults.max_delay_ms.max(1));
            self.schedule(delay, Event::Deliver(Box::new(message.clone())));
        }
    }

    /// Whether a delivered message still reaches its receiver (a partition that began
    /// while it was in flight stops it).
    pub fn reaches(&self, message: &Message) -> bool {
        !self.cut_off(message.from) && !self.cut_off(message.to)
    }

    /// Ends every fault: nothing lost, duplicated or cut off from now on.
    pub fn heal(&mut self) {
        self.faults.drop_per_mille = 0;
        self.faults.duplicate_per_mille = 0;
        self.partitioned = None;
    }
}
