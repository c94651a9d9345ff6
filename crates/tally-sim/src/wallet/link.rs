//! The wallet's [`Transport`] in the simulator: a request becomes a message on the
//! simulated network and its answer is whatever that network delivers back, in simulated
//! time; an answer that does not come before the request's timeout fires makes the call
//! fail as unreachable, as a real connection's read timeout does. A pause ends when the
//! simulated clock reaches it.
//!
//! Nothing here runs by itself: the world polls the wallet's task after each event that
//! concerns it, takes what the task sent ([`Link::take_outgoing`]), and feeds answers and
//! expired timers back ([`Link::answer`], [`Link::expire`]). The link also reports what
//! passed through it (orders signed, certificates assembled, whether the signer's first
//! voter answered before the others were asked), which the invariants need.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tally_core::{Certificate, LockSlot, NetworkId, OrderDigest, SignedOrder};
use tally_proto::Packet;
use tally_wallet::{ClientError, Transport};

/// Something the wallet's task asked the world to do.
#[derive(Debug)]
pub enum Outgoing {
    /// Send `packet` to validator `to`; its answer (or its timeout) comes back under `id`.
    Request {
        id: u64,
        to: usize,
        packet: Box<Packet>,
    },
    /// Wake the task under `id` after `after`.
    Pause { id: u64, after: Duration },
}

/// What passed through the link that the invariants are about, since the last look.
#[derive(Default)]
pub struct Seen {
    /// Orders the wallet sent for votes (each once).
    pub orders: Vec<(SignedOrder, OrderDigest)>,
    /// Certificates the wallet handed to a validator.
    pub certificates: Vec<Certificate>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// The wallet's own clock (ms since the Unix epoch), as the world last set it.
    clock_ms: u64,
    outgoing: Vec<Outgoing>,
    /// Calls and pauses still waiting, and the answer of those that have one.
    waiting: BTreeMap<u64, Option<Result<Packet, ClientError>>>,
    seen: Seen,
    /// Orders already reported as signed.
    known_orders: BTreeSet<OrderDigest>,
    /// Orders whose signer's first voter answered with a vote.
    first_voted: BTreeSet<OrderDigest>,
    /// Orders whose signer's first voter was asked and did not vote (its answer timed out
    /// or was a refusal).
    first_failed: BTreeSet<OrderDigest>,
    /// Requests for a vote still waiting: the order and whether it went to its first voter.
    vote_requests: BTreeMap<u64, (OrderDigest, bool)>,
    /// Orders this wallet has sent to a validator other than their first voter.
    released: BTreeSet<OrderDigest>,
    /// Slots where this wallet first sent an order to other validators
    /// because its first voter had failed to vote for it: where the race between two
    /// copies of one key was open again (the residual race the first-voter rule cannot
    /// close).
    fell_back: BTreeSet<LockSlot>,
}

/// One wallet process's connection to the simulated network.
#[derive(Clone)]
pub struct Link {
    state: Arc<Mutex<State>>,
    network: NetworkId,
    committee_size: usize,
}

impl Link {
    pub fn new(network: NetworkId, committee_size: usize) -> Self {
        Link {
            state: Arc::new(Mutex::new(State::default())),
            network,
            committee_size,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the wallet's clock, before its task is polled.
    pub fn set_clock(&self, now_ms: u64) {
        self.state().clock_ms = now_ms;
    }

    /// What the task asked for since the last call.
    pub fn take_outgoing(&self) -> Vec<Outgoing> {
        std::mem::take(&mut self.state().outgoing)
    }

    /// What passed through since the last call.
    pub fn take_seen(&self) -> Seen {
        std::mem::take(&mut self.state().seen)
    }

    /// Slots where this wallet first sent an order past its first voter after that voter
    /// failed to vote for it.
    pub fn fell_back(&self) -> BTreeSet<LockSlot> {
        self.state().fell_back.clone()
    }

    /// Validator `from` answered request `id` (a late or repeated answer, or one for a
    /// task that died, is dropped). Returns whether a waiting call took it.
    pub fn answer(&self, id: u64, packet: Packet) -> bool {
        let mut state = self.state();
        let Some(slot @ None) = state.waiting.get_mut(&id) else {
            return false;
        };
        let voted = matches!(packet, Packet::RespPay(_) | Packet::RespIntroKey(_));
        *slot = Some(Ok(packet));
        state.first_voter_answered(id, voted);
        true
    }

    /// The time of call or pause `id` ran out. Returns whether it was still waiting.
    pub fn expire(&self, id: u64) -> bool {
        let mut state = self.state();
        let Some(slot @ None) = state.waiting.get_mut(&id) else {
            return false;
        };
        *slot = Some(Err(ClientError::Unreachable(
            "no answer before the request timed out".into(),
        )));
        state.first_voter_answered(id, false);
        true
    }

    /// Registers a call or pause and returns the future that waits for it.
    fn wait(&self, outgoing: impl FnOnce(u64) -> Outgoing) -> Waiting {
        let mut state = self.state();
        let id = state.next_id;
        state.next_id += 1;
        state.waiting.insert(id, None);
        let outgoing = outgoing(id);
        if let Outgoing::Request { id, to, packet } = &outgoing {
            state.observe(&self.network, self.committee_size, *id, *to, packet);
        }
        state.outgoing.push(outgoing);
        Waiting {
            state: self.state.clone(),
            id,
        }
    }
}

impl State {
    /// Records what a request shows: an order sent for votes (and whether it first went past
    /// its first voter after that voter failed to vote), a certificate handed over.
    fn observe(
        &mut self,
        network: &NetworkId,
        committee_size: usize,
        id: u64,
        to: usize,
        packet: &Packet,
    ) {
        match packet {
            Packet::ReqPay(order) | Packet::ReqIntroKey(order) => {
                let digest = order.order.digest(network);
                if self.known_orders.insert(digest) {
                    self.seen.orders.push((order.clone(), digest));
                }
                let first = order
                    .order
                    .signer()
                    .map(|signer| tally_core::first_voter(&signer, committee_size));
                self.vote_requests.insert(id, (digest, Some(to) == first));
                // The first time the order passes its first voter's gate: with that
                // voter's vote (the rule), after it failed to give one (the residual
                // race), or neither (the order was already out: another copy's, finished).
                if Some(to) != first
                    && self.released.insert(digest)
                    && self.first_failed.contains(&digest)
                    && !self.first_voted.contains(&digest)
                {
                    self.fell_back.insert(order.order.lock_slot());
                }
            }
            Packet::ReqPayEnd(certificate) | Packet::ReqIntroKeyEnd(certificate) => {
                self.seen.certificates.push(certificate.clone());
            }
            _ => {}
        }
    }

    /// Request `id` ended: with a vote or not. Records how its first voter answered.
    fn first_voter_answered(&mut self, id: u64, voted: bool) {
        let Some((digest, to_first)) = self.vote_requests.remove(&id) else {
            return;
        };
        if to_first {
            if voted {
                self.first_voted.insert(digest);
            } else {
                self.first_failed.insert(digest);
            }
        }
    }
}

/// A call or pause waiting for the world.
struct Waiting {
    state: Arc<Mutex<State>>,
    id: u64,
}

impl Future for Waiting {
    type Output = Result<Packet, ClientError>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.waiting.get_mut(&self.id) {
            Some(slot @ Some(_)) => {
                let result = slot.take();
                state.waiting.remove(&self.id);
                match result {
                    Some(result) => Poll::Ready(result),
                    None => Poll::Pending,
                }
            }
            Some(None) => Poll::Pending,
            // Never registered or already taken: nothing will come.
            None => Poll::Ready(Err(ClientError::Unreachable("call already ended".into()))),
        }
    }
}

impl Drop for Waiting {
    /// A task that dies (a crash) stops waiting: what comes for it later is dropped.
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.waiting.remove(&self.id);
        state.vote_requests.remove(&self.id);
    }
}

impl Transport for Link {
    fn call<'a>(
        &'a self,
        i: usize,
        packet: &'a Packet,
    ) -> BoxFuture<'a, Result<Packet, ClientError>> {
        let waiting = self.wait(|id| Outgoing::Request {
            id,
            to: i,
            packet: Box::new(packet.clone()),
        });
        Box::pin(waiting)
    }

    /// Pipelined, as the TCP transport does: every request is sent at once, then the
    /// answers are read in order. One that fails fails the exchange (a broken connection),
    /// but only once every answer came or timed out, so that the link knows how each
    /// order's first voter answered.
    fn call_many<'a>(
        &'a self,
        i: usize,
        packets: &'a [Packet],
    ) -> BoxFuture<'a, Result<Vec<Packet>, ClientError>> {
        let waiting: Vec<Waiting> = packets
            .iter()
            .map(|packet| {
                self.wait(|id| Outgoing::Request {
                    id,
                    to: i,
                    packet: Box::new(packet.clone()),
                })
            })
            .collect();
        Box::pin(async move {
            let mut answers = Vec::with_capacity(waiting.len());
            for call in waiting {
                answers.push(call.await);
            }
            answers.into_iter().collect()
        })
    }

    fn pause(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let waiting = self.wait(|id| Outgoing::Pause {
            id,
            after: duration,
        });
        Box::pin(async move {
            // A pause ends by "timing out": that is its only answer.
            let _ = waiting.await;
        })
    }

    fn now_ms(&self) -> u64 {
        self.state().clock_ms
    }

    fn address(&self, i: usize) -> String {
        format!("simulated validator {i}")
    }
}
