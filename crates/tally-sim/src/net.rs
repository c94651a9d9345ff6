//! The simulated clock (one queue of timed events, popped in time order, ties in the order
//! they were scheduled), the faults a seed draws for its messages, and the quorum world's
//! network on them.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::Rng;
use rand::rngs::StdRng;
use tally_core::{Certificate, OrderDigest, SignedOrder, Vote};
use tally_proto::Packet;

/// Who sends or receives a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Validator(usize),
    /// An equivocating owner (a model: [`crate::equivocator`]).
    Client(usize),
    /// A real wallet process ([`crate::wallet`]).
    Wallet(usize),
}

/// Why a validator refused an order or a certificate, as an equivocator needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It expects an earlier sequence: it lacks the sender's earlier certificates.
    Behind { expected: u64 },
    /// It holds a vote for another order in this slot.
    Conflict,
    /// Anything else (a bad signature, funds, a certificate it cannot check).
    Other,
}

/// What travels between owners and validators. Real wallets speak the wire's packets
/// (`Request`/`Answer`, matched by the wallet's request number as a connection matches
/// them by order); equivocators and validators forwarding forgeries use the protocol's
/// requests and answers as values.
#[derive(Clone, Debug)]
pub enum Payload {
    /// A real wallet's request, numbered by its link.
    Request(u64, Packet),
    /// A validator's answer to a real wallet's request.
    Answer(u64, Packet),
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
    /// An equivocator's timer: start a pair of orders, or send again what was not answered.
    Wake(usize),
    /// A real wallet starts its next payment (after the last one, or after a crash).
    WalletStart(usize),
    /// A real wallet's request `id` timed out, or its pause `id` ended.
    WalletTimer(usize, u64),
    /// A real wallet's process dies wherever its payment was.
    WalletCrash(usize),
}

struct Scheduled<E> {
    at: u64,
    order: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl<E> Eq for Scheduled<E> {}

impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Scheduled<E> {
    // Reversed: the heap pops the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

/// The simulated clock and its queue of timed events: popped in time order, ties in the
/// order they were scheduled, so a seed replays exactly. Both worlds (the quorum one and
/// the chain one) run on it.
pub struct Queue<E> {
    now: u64,
    next_order: u64,
    heap: BinaryHeap<Scheduled<E>>,
}

impl<E> Queue<E> {
    pub fn new() -> Self {
        Queue {
            now: 0,
            next_order: 0,
            heap: BinaryHeap::new(),
        }
    }

    /// Simulated milliseconds since the start.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Schedules `event` `after` ms from now.
    pub fn schedule(&mut self, after: u64, event: E) {
        self.heap.push(Scheduled {
            at: self.now + after,
            order: self.next_order,
            event,
        });
        self.next_order += 1;
    }

    /// The next event, with the clock moved to its time.
    pub fn pop(&mut self) -> Option<E> {
        let next = self.heap.pop()?;
        self.now = next.at;
        Some(next.event)
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

impl NetFaults {
    /// The delays of the copies of one message that arrive: none if it is lost, two if it
    /// is duplicated; each uniform from 1 ms, so messages reorder.
    pub fn delays(&self, rng: &mut StdRng) -> Vec<u64> {
        if rng.gen_range(0..1000) < self.drop_per_mille {
            return Vec::new();
        }
        let copies = if rng.gen_range(0..1000) < self.duplicate_per_mille {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| rng.gen_range(1..=self.max_delay_ms.max(1)))
            .collect()
    }
}

/// The quorum world's network: its clock and event queue, its faults, and the validator
/// cut off now, if any.
pub struct Network {
    queue: Queue<Event>,
    pub faults: NetFaults,
    /// A validator cut off until this time, if any: it neither sends nor receives.
    pub partitioned: Option<(usize, u64)>,
    pub delivered: u64,
}

impl Network {
    pub fn new(faults: NetFaults) -> Self {
        Network {
            queue: Queue::new(),
            faults,
            partitioned: None,
            delivered: 0,
        }
    }

    /// Simulated milliseconds since the start.
    pub fn now(&self) -> u64 {
        self.queue.now()
    }

    /// Schedules `event` `after` ms from now.
    pub fn schedule(&mut self, after: u64, event: Event) {
        self.queue.schedule(after, event);
    }

    /// The next event, with the clock moved to its time.
    pub fn pop(&mut self) -> Option<Event> {
        self.queue.pop()
    }

    fn cut_off(&self, node: Node) -> bool {
        match (self.partitioned, node) {
            (Some((cut, until)), Node::Validator(v)) => v == cut && self.now() < until,
            _ => false,
        }
    }

    /// Sends `message`, subject to the faults: lost, delayed, or delivered twice.
    pub fn send(&mut self, rng: &mut StdRng, message: Message) {
        if self.cut_off(message.from) || self.cut_off(message.to) {
            return;
        }
        for delay in self.faults.delays(rng) {
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
