//! A simulated validator. An honest one is the node's own request handling
//! ([`tally_node::decider::Decider`], which runs the real [`Validator`]) over the real
//! [`MemoryLedgerStore`], driven the way the node's engine drives it: what queued is
//! decided as one batch of packets; the batch's snapshot is committed later (the disk's
//! delay) and its answers leave only after that commit, so a crash in between loses the
//! decisions and the answers together. A Byzantine one runs the bare [`Validator`] and
//! breaks the rules its [`Behaviour`] says.

use std::collections::VecDeque;
use std::sync::Arc;

use tally_core::{
    AccountId, Certificate, NetworkContract, NetworkId, OrderDigest, SecretKey, Signature,
    SignedOrder, Vote,
};
use tally_ledger::{LedgerError, LedgerStore, MemoryLedgerStore, Snapshot, Validator};
use tally_node::decider::{DecidedBatch, Decider, Released, Request};
use tally_proto::{ErrorCode, HeldOrderRequest, Packet};

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
    store: Arc<MemoryLedgerStore>,
    /// The running process; `None` while it is down.
    running: Option<Running>,
    inbox: Vec<Message>,
    /// Whether a `Process` event is already scheduled for the inbox.
    pub processing: bool,
    /// Decided batches waiting for their commit, oldest first, with the answers they hold.
    decided: VecDeque<Decided>,
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
            store: Arc::new(MemoryLedgerStore::new()),
            running: None,
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
        self.running.is_some()
    }

    /// The running process's ledger state; `None` while it is down.
    pub fn state(&self) -> Option<&Validator> {
        match &self.running {
            Some(Running::Honest(decider)) => Some(decider.validator()),
            Some(Running::Byzantine(validator)) => Some(validator),
            None => None,
        }
    }

    /// Starts the process from its store (the genesis on first start).
    pub fn start(&mut self, contract: &NetworkContract) -> Result<(), String> {
        let mut validator = Validator::new(self.key.clone(), contract)
            .map_err(|e| format!("validator {}: {e}", self.index))?;
        match self.planted {
            Some(PlantedBug::ApplyTwice) => {
                validator.plant_bug(tally_ledger::PlantedBug::ApplyTwice);
            }
            Some(PlantedBug::VoteTwice) => {
                validator.plant_bug(tally_ledger::PlantedBug::VoteTwice);
            }
            _ => {}
        }
        self.store
            .load(&mut validator, contract)
            .map_err(|e| format!("validator {} cannot load its store: {e}", self.index))?;
        self.running = Some(if self.honest() {
            let store: Arc<dyn LedgerStore> = self.store.clone();
            Running::Honest(Box::new(Decider::new(validator, store, "sim".into())))
        } else {
            Running::Byzantine(Box::new(validator))
        });
        self.committee = contract.validators.iter().map(|v| v.key).collect();
        Ok(())
    }

    /// The process dies: what was not committed is gone, from memory and from the disk.
    pub fn crash(&mut self) {
        self.store = Arc::new(self.store.crash());
        self.running = None;
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
        if self.running.is_none() {
            return false;
        }
        self.inbox.push(message);
        true
    }

    /// Decides everything queued as one batch. Returns the answers to send now (a
    /// Byzantine validator's; an honest one's votes only if a planted bug sends them
    /// early); the others wait for [`Self::commit`].
    pub fn process(&mut self, network: &NetworkId, signatures: &mut Signatures) -> Vec<Message> {
        self.processing = false;
        let batch = std::mem::take(&mut self.inbox);
        match self.running.as_mut() {
            Some(Running::Honest(decider)) => {
                let (decided, now) = decide_honestly(
                    self.index,
                    decider,
                    batch,
                    &self.store,
                    signatures,
                    self.planted,
                );
                self.decided.push_back(decided);
                now
            }
            Some(Running::Byzantine(_)) => self.misbehave(batch, network, signatures),
            None => Vec::new(),
        }
    }

    /// What a Byzantine validator answers to a batch, at once (it keeps nothing).
    fn misbehave(
        &mut self,
        batch: Vec<Message>,
        network: &NetworkId,
        signatures: &mut Signatures,
    ) -> Vec<Message> {
        let Some(Running::Byzantine(validator)) = self.running.as_mut() else {
            return Vec::new();
        };
        if self.behaviour == Behaviour::Silent {
            return Vec::new();
        }
        let mut answers = Vec::with_capacity(batch.len());
        for message in batch {
            let payload = match (&message.payload, self.behaviour) {
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
                (Payload::Pay(order), Behaviour::Liar) => {
                    remember(&mut self.seen_orders, order.clone());
                    decide(validator, order, network, signatures)
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
        answers
    }

    /// What a liar sends other validators after each batch: a forged certificate for the
    /// newest order it was sent, and a replay of the oldest certificate it keeps (which it
    /// then forgets, so the replays rotate).
    pub fn forgeries(&mut self, network: &NetworkId) -> Vec<Payload> {
        let Some(Running::Byzantine(validator)) = self.running.as_ref() else {
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
        let Some(decided) = self.decided.pop_front() else {
            return Ok(Vec::new());
        };
        let index = self.index;
        match decided {
            Decided::Batch(batch, asked, direct) => {
                self.store
                    .commit_snapshot(&batch.snapshot, &batch.cursors)
                    .map_err(|e| e.to_string())?;
                Ok(batch
                    .release(true)
                    .into_iter()
                    .zip(asked)
                    .filter_map(|(released, asked)| asked.answer(index, released))
                    .chain(direct)
                    .collect())
            }
            Decided::Early(snapshot, later) => {
                self.store
                    .commit_snapshot(&snapshot, &[])
                    .map_err(|e| e.to_string())?;
                Ok(later)
            }
        }
    }
}

/// A running validator process.
enum Running {
    /// The node's own request handling.
    Honest(Box<Decider>),
    /// The bare state machine, for a validator that breaks its rules.
    Byzantine(Box<Validator>),
}

/// A decided batch waiting for its commit.
enum Decided {
    /// Committed, then released by the decider; with the answers read from the store.
    Batch(DecidedBatch, Vec<Asked>, Vec<Message>),
    /// A planted early release: the snapshot still to commit, and the answers held back.
    Early(Snapshot, Vec<Message>),
}

/// What one request of a batch asked, to turn the decider's answer packet back into the
/// simulator's message.
enum Asked {
    /// An order of `digest`; `expected` is the signer's next sequence after the batch.
    Pay {
        to: Node,
        digest: OrderDigest,
        expected: u64,
    },
    /// A certificate of `digest`; `expected` as for an order.
    PayEnd {
        to: Node,
        digest: OrderDigest,
        expected: u64,
    },
    HeldOrder {
        to: Node,
    },
    /// Answered from the store while the batch was decided (a `REQ_CERTS` page), sent
    /// with the batch; not the decider's.
    Answered(Message),
    /// Nothing a validator answers.
    Nothing,
}

impl Asked {
    fn answer(self, from: usize, released: Released) -> Option<Message> {
        let Released::Packet(packet) = released else {
            return None;
        };
        let (to, payload) = match (self, packet) {
            (Asked::Answered(message), _) => return Some(message),
            (Asked::Pay { to, .. }, Packet::RespPay(reply)) => {
                let vote = *reply.votes.first()?;
                (to, Payload::Voted(reply.checksum, vote))
            }
            (Asked::PayEnd { to, .. }, Packet::RespPayEnd(ack)) => {
                (to, Payload::Applied(ack.checksum))
            }
            (Asked::HeldOrder { to }, Packet::RespHeldOrder(held)) => (
                to,
                Payload::Held {
                    next_sequence: held.next_sequence,
                    order: held.order,
                },
            ),
            (
                Asked::Pay {
                    to,
                    digest,
                    expected,
                }
                | Asked::PayEnd {
                    to,
                    digest,
                    expected,
                },
                Packet::Error(error),
            ) => {
                let refusal = match error.code {
                    ErrorCode::Conflict => Refusal::Conflict,
                    ErrorCode::Sequence | ErrorCode::MissingPredecessor => {
                        Refusal::Behind { expected }
                    }
                    _ => Refusal::Other,
                };
                (to, Payload::Refused(digest, refusal))
            }
            _ => return None,
        };
        Some(Message {
            from: Node::Validator(from),
            to,
            payload,
        })
    }
}

/// An honest validator's batch: the simulator's messages as the node's packets, decided
/// by the node's decider (signatures judged by the simulator's remembered verdicts), and
/// how each answer goes back. Returns the batch to commit and what leaves at once (votes,
/// only when a planted bug sends them before the commit).
fn decide_honestly(
    index: usize,
    decider: &mut Decider,
    batch: Vec<Message>,
    store: &MemoryLedgerStore,
    signatures: &mut Signatures,
    planted: Option<PlantedBug>,
) -> (Decided, Vec<Message>) {
    let network = *decider.validator().network();
    let mut requests = Vec::with_capacity(batch.len());
    let mut asked = Vec::with_capacity(batch.len());
    // Whose account each order or certificate is about.
    let mut signers = Vec::with_capacity(batch.len());
    let mut direct = Vec::new();
    for message in batch {
        let to = message.from;
        let (packet, what, signer) = match message.payload {
            Payload::Pay(order) => {
                let digest = order.order.digest(&network);
                let signer = order.order.signer();
                let what = Asked::Pay {
                    to,
                    digest,
                    expected: 0,
                };
                (Some(Packet::ReqPay(order)), what, Some(signer))
            }
            Payload::PayEnd(certificate) => {
                let digest = certificate.checksum;
                let signer = certificate.order.signer();
                let what = Asked::PayEnd {
                    to,
                    digest,
                    expected: 0,
                };
                (Some(Packet::ReqPayEnd(certificate)), what, Some(signer))
            }
            Payload::HeldOrder(account) => (
                Some(Packet::ReqHeldOrder(HeldOrderRequest { account })),
                Asked::HeldOrder { to },
                None,
            ),
            Payload::Sent(account, sequence) => {
                let certificate = store
                    .sent(&account, sequence, 1)
                    .ok()
                    .and_then(|(page, _)| page.into_iter().next())
                    .map(|(_, certificate)| certificate)
                    .filter(|c| c.order.sequence() == Some(sequence));
                let answer = Message {
                    from: Node::Validator(index),
                    to,
                    payload: Payload::SentCert(certificate),
                };
                (None, Asked::Answered(answer), None)
            }
            // Answers are for wallets; a validator ignores them.
            _ => (None, Asked::Nothing, None),
        };
        match (packet, what) {
            (Some(packet), what) => {
                requests.push(Request::Packet(packet));
                asked.push(what);
                signers.push(signer);
            }
            // Not the decider's: sent with the batch's answers, after its commit.
            (None, Asked::Answered(message)) => direct.push(message),
            (None, _) => {}
        }
    }
    let (decided, _) = decider.process_judged_by(requests, signatures);
    // Where each signer's account stands after the batch: what a refusal as behind says.
    for (what, signer) in asked.iter_mut().zip(&signers) {
        if let (Asked::Pay { expected, .. } | Asked::PayEnd { expected, .. }, Some(signer)) =
            (what, signer)
        {
            *expected = decider.validator().account(signer).next_sequence;
        }
    }
    if planted != Some(PlantedBug::VoteBeforeCommit) {
        return (Decided::Batch(decided, asked, direct), Vec::new());
    }
    // The planted mistake: the votes leave now, before the batch that holds them is
    // durable; the rest waits for the commit.
    let snapshot = decided.snapshot.clone();
    let (now, later): (Vec<Message>, Vec<Message>) = decided
        .release(true)
        .into_iter()
        .zip(asked)
        .filter_map(|(released, asked)| asked.answer(index, released))
        .chain(direct)
        .partition(|m| matches!(m.payload, Payload::Voted(..)));
    (Decided::Early(snapshot, later), now)
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

/// A liar's vote: as the state machine decides (one per slot).
fn decide(
    validator: &mut Validator,
    order: &SignedOrder,
    network: &NetworkId,
    signatures: &mut Signatures,
) -> Option<Payload> {
    let digest = order.order.digest(network);
    let signed_ok = signatures.check(
        &order.order.signer(),
        &order.signature,
        &order.order.signing_bytes(network),
    );
    Some(match validator.decide_order(order, signed_ok) {
        Ok(digest) => Payload::Voted(digest, validator.vote(&digest)),
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
