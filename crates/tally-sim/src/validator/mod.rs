//! A simulated validator. An honest one is the node's own request handling
//! ([`tally_node::decider::Decider`], which runs the real [`Validator`]) over the real
//! [`MemoryLedgerStore`], driven the way the node's engine drives it: what queued is
//! decided as one batch of packets; the batch's snapshot is committed later (the disk's
//! delay) and its answers leave only after that commit, so a crash in between loses the
//! decisions and the answers together. A Byzantine one runs the bare [`Validator`] and
//! breaks the rules its [`Behaviour`] says.

mod byzantine;

use std::collections::VecDeque;
use std::sync::Arc;

use tally_core::{
    AccountId, Certificate, NetworkContract, NetworkId, OrderDigest, SecretKey, SignedOrder,
};
use tally_ledger::{LedgerStore, MemoryLedgerStore, Snapshot, Validator};
use tally_node::decider::{DecidedBatch, Decider, Released, Request, certificates_page};
use tally_proto::{ErrorCode, Packet};

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
            Some(PlantedBug::VoteClaimAndRefund) => {
                validator.plant_bug(tally_ledger::PlantedBug::VoteClaimAndRefund);
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

    /// The next commit that writes something fails (the engine stops the process on a
    /// failed commit).
    pub fn fail_next_commit(&self) {
        self.store.fail_next_commit();
    }

    /// A failure armed for a commit that wrote nothing yet is disarmed: once the network
    /// healed no fault may strike.
    pub fn disarm_disk(&self) {
        self.store.disarm();
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
    /// `now_ms` is this validator's own clock (skewed: see the world's clocks).
    pub fn process(
        &mut self,
        network: &NetworkId,
        signatures: &mut Signatures,
        now_ms: u64,
    ) -> Vec<Message> {
        self.processing = false;
        let batch = std::mem::take(&mut self.inbox);
        match self.running.as_mut() {
            Some(Running::Honest(decider)) => {
                let (decided, now) = decide_honestly(
                    self.index,
                    decider,
                    batch,
                    &self.store,
                    (signatures, now_ms),
                    self.planted,
                );
                self.decided.push_back(decided);
                now
            }
            Some(Running::Byzantine(validator)) => {
                validator.set_clock(now_ms);
                self.misbehave(batch, network, signatures)
            }
            None => Vec::new(),
        }
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
    /// A real wallet's packet, numbered `id` by its link.
    Wire { to: Node, id: u64 },
    /// Answered from the store while the batch was decided (a `REQ_CERTS` page), sent
    /// with the batch; not the decider's.
    Answered(Box<Message>),
    /// Nothing a validator answers.
    Nothing,
}

impl Asked {
    fn answer(self, from: usize, released: Released) -> Option<Message> {
        let Released::Packet(packet) = released else {
            return None;
        };
        let (to, payload) = match (self, packet) {
            (Asked::Answered(message), _) => return Some(*message),
            (Asked::Pay { to, .. }, Packet::RespPay(reply)) => {
                let vote = *reply.votes.first()?;
                (to, Payload::Voted(reply.checksum, vote))
            }
            (Asked::PayEnd { to, .. }, Packet::RespPayEnd(ack)) => {
                (to, Payload::Applied(ack.checksum))
            }
            (Asked::Wire { to, id }, packet) => (to, Payload::Answer(id, packet)),
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
    (signatures, now_ms): (&mut Signatures, u64),
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
                (Some(Packet::ReqPay(order)), what, signer)
            }
            Payload::PayEnd(certificate) => {
                let digest = certificate.checksum;
                let signer = certificate.order.signer();
                let what = Asked::PayEnd {
                    to,
                    digest,
                    expected: 0,
                };
                (Some(Packet::ReqPayEnd(certificate)), what, signer)
            }
            // `REQ_CERTS` is read from the store, beside the decider, as the node does.
            Payload::Request(id, Packet::ReqCerts(query)) => {
                let answer = Message {
                    from: Node::Validator(index),
                    to,
                    payload: Payload::Answer(id, certificates_page(store, query)),
                };
                (None, Asked::Answered(Box::new(answer)), None)
            }
            Payload::Request(id, packet) => (Some(packet), Asked::Wire { to, id }, None),
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
            (None, Asked::Answered(message)) => direct.push(*message),
            (None, _) => {}
        }
    }
    let (decided, _) = decider.process_judged_by(requests, now_ms, signatures);
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
        .partition(|m| {
            matches!(
                m.payload,
                Payload::Voted(..) | Payload::Answer(_, Packet::RespPay(_))
            )
        });
    (Decided::Early(snapshot, later), now)
}
