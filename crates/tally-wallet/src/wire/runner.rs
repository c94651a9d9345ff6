//! Drives one saga (the payer's or one of the maker's): performs the actions it returns, in
//! order, journaling whenever it says so before anything after; keeps its watches, its wake-up
//! time and the locks to ask again; and feeds back what happened. The relay is the driver's:
//! messages to send wait in [`Runner::outbox`].

use std::collections::VecDeque;
use std::time::Instant;

use tally_core::{EscrowId, EscrowSecret, NetworkId};
use tally_swap::{Action, Event, Message, Outcome, RETRY_MS, Standing, Target};

use super::exec::{Sides, Transient};
use super::{Proof, WireError};
use crate::Wallet;
use crate::escrow::unix_ms;

/// A saga with its journal: the payer's or the maker's, as their drivers keep them.
pub trait Driven {
    /// Feeds one event at `now` (ms since the Unix epoch).
    fn handle(&mut self, event: Event, now: u64) -> Vec<Action>;
    /// Makes the saga's state durable, with whatever its driver keeps beside it.
    fn journal(&mut self) -> Result<(), WireError>;
    /// What proves this party's lock, claim or refund, for the receipt (journaled at the
    /// next [`Driven::journal`]).
    fn keep(&mut self, proof: Proof);
    /// The account whose key signs this saga's lock on `network` (a driver may hold
    /// several there).
    fn signer(&self, network: &NetworkId) -> Option<tally_core::AccountId>;
}

/// One saga being driven.
pub struct Runner<D> {
    pub saga: D,
    watches: Vec<(NetworkId, Target)>,
    /// What the watches last reported, so a saga hears of a change once.
    seen: Vec<(NetworkId, EscrowId, Standing)>,
    secrets: Vec<(NetworkId, EscrowSecret)>,
    /// Every wake-up asked for and not yet due: a saga asks for each once, so a later one
    /// must not be lost behind an earlier one.
    wakes: Vec<u64>,
    /// Locks to ask again (when), after an answer that may change.
    retry: Vec<(u64, Action)>,
    /// Events that arrived meanwhile (a message, the driver's own sight of an escrow), fed
    /// at the next [`Runner::step`].
    inbox: VecDeque<Event>,
    /// Messages for the counterpart, for the driver to send.
    pub outbox: Vec<Message>,
    /// Every event fed to the saga, in order, with when it was fed: for the driver to show
    /// (an event's consequences are performed before the driver gets to it).
    pub log: Vec<(Instant, Event)>,
    /// How the wire ended for this party, once it has.
    pub done: Option<Outcome>,
}

impl<D: Driven> Runner<D> {
    /// Takes a saga just made or resumed, with the actions it returned, and performs them.
    pub async fn start(
        saga: D,
        actions: Vec<Action>,
        wallet: &Wallet,
        sides: &Sides,
    ) -> Result<Runner<D>, WireError> {
        let mut runner = Runner {
            saga,
            watches: Vec::new(),
            seen: Vec::new(),
            secrets: Vec::new(),
            wakes: Vec::new(),
            retry: Vec::new(),
            inbox: VecDeque::new(),
            outbox: Vec::new(),
            log: Vec::new(),
            done: None,
        };
        let mut queue = VecDeque::new();
        runner.perform(actions, wallet, sides, &mut queue).await?;
        runner.drain(queue, wallet, sides).await?;
        Ok(runner)
    }

    /// Feeds `event` (a message from the counterpart, say), and what follows from it.
    pub async fn feed(
        &mut self,
        event: Event,
        wallet: &Wallet,
        sides: &Sides,
    ) -> Result<(), WireError> {
        self.drain(VecDeque::from([event]), wallet, sides).await
    }

    /// Keeps `event` for the next [`Runner::step`]: a driver running many sagas hands each
    /// its events this way and then steps them all at once.
    pub fn push(&mut self, event: Event) {
        self.inbox.push_back(event);
    }

    /// Looks at every watched escrow and steps the saga (see [`Runner::step`]).
    pub async fn poll(&mut self, wallet: &Wallet, sides: &Sides) -> Result<(), WireError> {
        self.step(wallet, sides, true).await
    }

    /// Feeds what waits in the inbox, asks again for what is due, ticks the saga when its
    /// wake-up time came, and with `look`, first looks at every watched escrow and feeds
    /// what changed.
    pub async fn step(
        &mut self,
        wallet: &Wallet,
        sides: &Sides,
        look: bool,
    ) -> Result<(), WireError> {
        if self.done.is_some() {
            return Ok(());
        }
        let mut queue = std::mem::take(&mut self.inbox);
        if look {
            for (network, target) in self.watches.clone() {
                for event in sides.observe(network, target).await {
                    if self.is_news(&event) {
                        queue.push_back(event);
                    }
                }
            }
        }
        let now = unix_ms();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retry)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.retry = later;
        self.perform(
            due.into_iter().map(|(_, action)| action).collect(),
            wallet,
            sides,
            &mut queue,
        )
        .await?;
        let due = self.wakes.len();
        self.wakes.retain(|at| *at > now);
        if self.wakes.len() < due {
            queue.push_back(Event::Tick);
        }
        self.drain(queue, wallet, sides).await
    }

    /// When the driver should poll next at the latest.
    pub fn next_wake(&self) -> Option<u64> {
        let retry = self.retry.iter().map(|(at, _)| *at);
        self.wakes.iter().copied().chain(retry).min()
    }

    fn is_news(&mut self, event: &Event) -> bool {
        match event {
            Event::Seen {
                network,
                escrow,
                standing,
                ..
            } => {
                let key = (*network, *escrow, *standing);
                if self.seen.contains(&key) {
                    return false;
                }
                self.seen.push(key);
                true
            }
            Event::SecretRevealed { network, secret } => {
                let key = (*network, *secret);
                if self.secrets.contains(&key) {
                    return false;
                }
                self.secrets.push(key);
                true
            }
            _ => true,
        }
    }

    async fn drain(
        &mut self,
        mut queue: VecDeque<Event>,
        wallet: &Wallet,
        sides: &Sides,
    ) -> Result<(), WireError> {
        while let Some(event) = queue.pop_front() {
            if self.done.is_some() {
                break;
            }
            self.log.push((Instant::now(), event.clone()));
            let actions = self.saga.handle(event, unix_ms());
            self.perform(actions, wallet, sides, &mut queue).await?;
        }
        Ok(())
    }

    async fn perform(
        &mut self,
        actions: Vec<Action>,
        wallet: &Wallet,
        sides: &Sides,
        queue: &mut VecDeque<Event>,
    ) -> Result<(), WireError> {
        for action in actions {
            match action {
                Action::Journal => self.saga.journal()?,
                Action::Lock { network, terms } => {
                    let signer = self.saga.signer(&network);
                    match sides.lock(wallet, network, &terms, signer).await {
                        Ok((event, proof)) => {
                            // A lock found already made (after a crash) has its proof looked up.
                            let proof = match (proof, &event) {
                                (Some(proof), _) => Some(proof),
                                (None, Event::Locked { lock, .. }) => {
                                    sides.lock_proof(&network, lock).await
                                }
                                (None, _) => None,
                            };
                            if let Some(proof) = proof {
                                self.saga.keep(proof);
                            }
                            queue.push_back(event);
                        }
                        Err(Transient(why)) => {
                            tracing::warn!(network = %network.short(), %why, "the lock is not certified yet; asking again");
                            self.retry
                                .push((unix_ms().saturating_add(RETRY_MS), action));
                        }
                    }
                }
                Action::Claim {
                    network,
                    escrow,
                    secret,
                } => self.settled(sides.claim(wallet, network, escrow, secret).await, queue),
                Action::Refund { network, escrow } => {
                    self.settled(sides.refund(wallet, network, escrow).await, queue)
                }
                Action::Watch { network, target } => {
                    if !self.watches.contains(&(network, target)) {
                        self.watches.push((network, target));
                    }
                }
                Action::Send(message) => self.outbox.push(message),
                Action::WakeAt(at) => {
                    if !self.wakes.contains(&at) {
                        self.wakes.push(at);
                    }
                }
                Action::Done(outcome) => self.done = Some(outcome),
            }
        }
        Ok(())
    }

    fn settled(
        &mut self,
        answer: Result<(Event, Option<Proof>), Transient>,
        queue: &mut VecDeque<Event>,
    ) {
        match answer {
            Ok((event, proof)) => {
                if let Some(proof) = proof {
                    self.saga.keep(proof);
                }
                queue.push_back(event);
            }
            // Only a network this wire does not reach: nothing to ask again.
            Err(Transient(why)) => tracing::warn!(%why, "cannot settle the escrow"),
        }
    }
}
