//! A simulated validator: the real [`Validator`] and [`MemoryLedgerStore`], driven the way
//! the node's engine drives them. What queued is decided as one batch; the batch's changes
//! are committed later (the disk's delay) and its answers leave only after that commit, so
//! a crash in between loses the decisions and the answers together.

use std::collections::VecDeque;

use tally_core::{
    AccountId, Certificate, NetworkContract, NetworkId, SecretKey, Signature, SignedOrder, Vote,
};
use tally_ledger::{LedgerError, LedgerStore, MemoryLedgerStore, Snapshot, Validator};

use crate::PlantedBug;
use crate::check::Signatures;
use crate::net::{Message, Node, Payload, Refusal};

/// How a validator behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// Byzantine: votes for every well-signed order it is sent, whatever it voted before,
    /// and claims to apply every certificate without doing so.
    DoubleVoter,
    /// Byzantine: answers nothing (its votes are withheld).
    Silent,
    /// Byzantine: votes as the real validator decides (once per slot), but lies about the
    /// ledger: it tells a wallet asking about its slot that the account moved on and hands
    /// it a forged certificate for the slot, and it sends other validators forged
    /// certificates (its own vote beside garbage ones) and replays of real ones.
    Liar,
}

/// Certificates a liar keeps to replay, and orders it keeps to forge certificates for.
const LIAR_MEMORY: usize = 16;

/// One validator process and its disk.
pub struct SimValidator {
    pub index: usize,
    pub behaviour: Behaviour,
    key: SecretKey,
    store: MemoryLedgerStore,
    /// The running process's state; `None` while it is down.
    pub state: Option<Validator>,
    inbox: Vec<Message>,
    /// Whether a `Process` event is already scheduled for the inbox.
    pub processing: bool,
    /// Decided batches waiting for their commit, oldest first, with the answers they hold.
    decided: VecDeque<(Snapshot, Vec<Message>)>,
    planted: Option<PlantedBug>,
    /// A liar's material: orders it was sent, certificates it applied (newest last).
    seen_orders: VecDeque<SignedOrder>,
    seen_certificates: VecDeque<Certificate>,
    /// The committee's keys (a forger signs in their names).
    committee: Vec<AccountId>,
}

impl SimValidator {
    pub fn new(
        index: usize,
        key: SecretKey,
        behaviour: Behaviour,
        planted: Option<PlantedBug>,
    ) -> Self {
        SimValidator {
            index,
            behaviour,
            key,
            store: MemoryLedgerStore::new(),
            state: None,
            inbox: Vec::new(),
            processing: false,
            decided: VecDeque::new(),
            planted,
            seen_orders: VecDeque::new(),
            seen_certificates: VecDeque::new(),
            committee: Vec::new(),
        }
    }

    pub fn honest(&self) -> bool {
        self.behaviour == Behaviour::Honest
    }

    pub fn is_up(&self) -> bool {
        self.state.is_some()
    }

    /// Starts the process from its store (the genesis on first start).
    pub fn start(&mut self, contract: &NetworkContract) -> Result<(), String> {
        let mut validator = Validator::new(self.key.clone(), contract)
            .map_err(|e| format!("validator {}: {e}", self.index))?;
        if self.planted == Some(PlantedBug::ApplyTwice) {
            validator.plant_bug(tally_ledger::PlantedBug::ApplyTwice);
        }
        self.store
            .load(&mut validator, contract)
            .map_err(|e| format!("validator {} cannot load its store: {e}", self.index))?;
        self.state = Some(validator);
        self.committee = contract.validators.iter().map(|v| v.key).collect();
        Ok(())
    }

    /// The process dies: what was not committed is gone, from memory and from the disk.
    pub fn crash(&mut self) {
        self.store = self.store.crash();
        self.state = None;
        self.inbox.clear();
        self.decided.clear();
        self.processing = false;
    }

    /// The next commit fails (the engine stops the process on a failed commit).
    pub fn fail_next_commit(&self) {
        self.store.fail_next_commit();
    }

    /// A message arrives; false if the process is down (the message is lost).
    pub fn receive(&mut self, message: Message) -> bool {
        if self.state.is_none() {
            return false;
        }
        self.inbox.push(message);
        true
    }

    /// Decides everything queued as one batch. Returns the answers to send now (none,
    /// unless a planted bug sends votes early); the others wait for [`Self::commit`].
    pub fn process(&mut self, network: &NetworkId, signatures: &mut Signatures) -> Vec<Message> {
        self.processing = false;
        let Some(validator) = self.state.as_mut() else {
            return Vec::new();
        };
        let batch = std::mem::take(&mut self.inbox);
        if self.behaviour == Behaviour::Silent {
            return Vec::new();
        }
        let mut answers = Vec::with_capacity(batch.len());
        for message in batch {
            let payload = match (&message.payload, self.behaviour) {
                (Payload::Pay(order), Behaviour::Honest) => {
                    decide(validator, order, network, signatures, self.planted)
                }
                (Payload::PayEnd(certificate), Behaviour::Honest) => {
                    apply(validator, certificate, network, signatures)
                }
                (Payload::Pay(order), Behaviour::Liar) => {
                    remember(&mut self.seen_orders, order.clone());
                    decide(validator, order, network, signatures, None)
                }
                (Payload::PayEnd(certificate), Behaviour::Liar) => {
                    let answer = apply(validator, certificate, network, signatures);
                    if matches!(answer, Some(Payload::Applied(_))) {
                        remember(&mut self.seen_certificates, certificate.clone());
                    }
                    answer
                }
                (Payload::HeldOrder(account), Behaviour::Liar) => Some(Payload::Held {
                    next_sequence: validator.account(account).next_sequence + 2,
                    order: None,
                }),
                (Payload::Sent(account, sequence), Behaviour::Liar) => {
                    let order = self.seen_orders.iter().rev().find(|o| {
                        o.order.signer() == *account && o.order.sequence() == Some(*sequence)
                    });
                    Some(Payload::SentCert(order.map(|order| {
                        forge(validator, order, network, &self.committee)
                    })))
                }
                (Payload::Pay(order), Behaviour::DoubleVoter) => {
                    let digest = order.order.digest(network);
                    let signed_ok = signatures.check(
                        &order.order.signer(),
                        &order.signature,
                        &order.order.signing_bytes(network),
                    );
                    signed_ok.then(|| Payload::Voted(digest, validator.vote(&digest)))
                }
                (Payload::PayEnd(certificate), Behaviour::DoubleVoter) => {
                    Some(Payload::Applied(certificate.checksum))
                }
                (Payload::HeldOrder(account), Behaviour::Honest) => Some(Payload::Held {
                    next_sequence: validator.account(account).next_sequence,
                    order: validator.held_order(account).cloned(),
                }),
                (Payload::Sent(account, sequence), Behaviour::Honest) => Some(Payload::SentCert(
                    self.store
                        .sent(account, *sequence, 1)
                        .ok()
                        .and_then(|(page, _)| page.into_iter().next())
                        .map(|(_, certificate)| certificate)
                        .filter(|c| c.order.sequence() == Some(*sequence)),
                )),
                // Answers are for wallets; a validator ignores them.
                _ => None,
            };
            if let Some(payload) = payload {
                answers.push(Message {
                    from: Node::Validator(self.index),
                    to: message.from,
                    payload,
                });
            }
        }
        let snapshot = validator.take_snapshot();
        // A Byzantine validator answers at once (it keeps nothing); an honest one after
        // its commit, unless a planted bug lets its votes out early.
        let honest = self.honest();
        let votes_early = self.planted == Some(PlantedBug::VoteBeforeCommit);
        let (now, later): (Vec<Message>, Vec<Message>) = answers
            .into_iter()
            .partition(|m| !honest || (votes_early && matches!(m.payload, Payload::Voted(..))));
        self.decided.push_back((snapshot, later));
        now
    }

    /// What a liar sends other validators after each batch: a forged certificate for the
    /// newest order it was sent, and a replay of the oldest certificate it keeps (which it
    /// then forgets, so the replays rotate).
    pub fn forgeries(&mut self, network: &NetworkId) -> Vec<Payload> {
        let Some(validator) = self.state.as_ref() else {
            return Vec::new();
        };
        if self.behaviour != Behaviour::Liar {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(order) = self.seen_orders.back() {
            out.push(Payload::PayEnd(forge(
                validator,
                order,
                network,
                &self.committee,
            )));
        }
        if let Some(certificate) = self.seen_certificates.pop_front() {
            out.push(Payload::PayEnd(certificate));
        }
        out
    }

    /// Commits the oldest decided batch and returns its answers; `Err` if the commit
    /// failed (the caller stops the process).
    pub fn commit(&mut self) -> Result<Vec<Message>, String> {
        let Some((snapshot, answers)) = self.decided.pop_front() else {
            return Ok(Vec::new());
        };
        if !self.honest() {
            return Ok(answers);
        }
        self.store
            .commit_snapshot(&snapshot, &[])
            .map(|()| answers)
            .map_err(|e| e.to_string())
    }
}

/// Keeps `item` among the last [`LIAR_MEMORY`].
fn remember<T>(memory: &mut VecDeque<T>, item: T) {
    if memory.len() == LIAR_MEMORY {
        memory.pop_front();
    }
    memory.push_back(item);
}

/// A certificate for `order` that no quorum signed: the forger's own vote, and votes in the
/// names of the other validators with signatures that are not theirs.
fn forge(
    validator: &Validator,
    order: &SignedOrder,
    network: &NetworkId,
    committee: &[AccountId],
) -> Certificate {
    let digest = order.order.digest(network);
    let own = validator.vote(&digest);
    let mut votes = vec![own];
    votes.extend(
        committee
            .iter()
            .filter(|key| **key != own.validator)
            .map(|key| Vote {
                validator: *key,
                signature: Signature::from([0x5A; 64]),
            }),
    );
    Certificate::new(order.clone(), network, votes)
}

fn decide(
    validator: &mut Validator,
    order: &SignedOrder,
    network: &NetworkId,
    signatures: &mut Signatures,
    planted: Option<PlantedBug>,
) -> Option<Payload> {
    let digest = order.order.digest(network);
    let signed_ok = signatures.check(
        &order.order.signer(),
        &order.signature,
        &order.order.signing_bytes(network),
    );
    Some(match validator.decide_order(order, signed_ok) {
        Ok(digest) => Payload::Voted(digest, validator.vote(&digest)),
        Err(LedgerError::Conflict { .. }) if planted == Some(PlantedBug::VoteTwice) => {
            Payload::Voted(digest, validator.vote(&digest))
        }
        Err(LedgerError::Conflict { .. }) => Payload::Refused(digest, Refusal::Conflict),
        Err(LedgerError::Sequence { expected, .. }) => {
            Payload::Refused(digest, Refusal::Behind { expected })
        }
        Err(_) => Payload::Refused(digest, Refusal::Other),
    })
}

fn apply(
    validator: &mut Validator,
    certificate: &Certificate,
    network: &NetworkId,
    signatures: &mut Signatures,
) -> Option<Payload> {
    let digest = certificate.checksum;
    let votes_ok = certificate
        .check_structure(validator.committee(), network)
        .is_ok()
        && certificate.votes.iter().all(|vote| {
            signatures.check(
                &vote.validator,
                &vote.signature,
                &tally_core::Vote::signing_bytes(network, &digest),
            )
        });
    Some(match validator.handle_certificate(certificate, votes_ok) {
        Ok(_) => Payload::Applied(digest),
        Err(LedgerError::MissingPredecessor { expected, .. }) => {
            Payload::Refused(digest, Refusal::Behind { expected })
        }
        Err(_) => Payload::Refused(digest, Refusal::Other),
    })
}
