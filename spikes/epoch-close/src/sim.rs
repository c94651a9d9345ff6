//! Four Malachite instances in one thread, under a seeded network that loses, duplicates,
//! delays (so reorders) and cuts off messages, and a simulated clock. It mirrors
//! `tally-sim`'s `net.rs` (one queue of timed events, ties in the order scheduled, faults
//! drawn from the seed per message); that module's payloads are the quorum protocol's, so
//! the spike carries its own queue rather than depending on the crate.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use bytes::Bytes;
use malachitebft_core_consensus::{
    self as mc, Effect, Input, LivenessMsg, Params, PeerId, ProposedValue, Resumable, Resume,
    SignedConsensusMsg, State, ValuePayload,
};
use malachitebft_core_types::{
    CommitCertificate, Round, SigningProvider, SigningProviderExt, ThresholdParams, Timeout,
    TimeoutKind, Validity, Value, ValueOrigin, ValueResponse,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::ctx::{Addr, CloseId, CloseValue, Ctx, Height, Signer, Validator, ValidatorSet};

pub const N: usize = 4;

/// The faults a seed draws for its network.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub drop_per_mille: u32,
    pub duplicate_per_mille: u32,
    /// Delays are uniform in 1..=max, so messages reorder.
    pub max_delay_ms: u64,
    /// One validator cut off (neither sends nor receives) from .1 to .2 ms.
    pub partition: Option<(usize, u64, u64)>,
}

/// What one run does to the validators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    None,
    /// This validator never starts (silent from the beginning).
    Silent(usize),
    /// This validator stops for good at this time (ms).
    At(usize, u64),
}

#[derive(Clone, Debug)]
enum Wire {
    Consensus(SignedConsensusMsg<Ctx>),
    Liveness(LivenessMsg<Ctx>),
    /// A decided validator answers a lagging one with the value and its commit certificate
    /// (Malachite's value sync, reduced to one message).
    Decided {
        proposer: Addr,
        value: Vec<u8>,
        certificate: CommitCertificate<Ctx>,
    },
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: usize,
        to: usize,
        wire: Wire,
    },
    Timer {
        node: usize,
        timeout: Timeout,
        token: u64,
    },
    Local {
        node: usize,
        input: Input<Ctx>,
    },
    Start(usize),
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
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

struct Net {
    now: u64,
    next_order: u64,
    queue: BinaryHeap<Scheduled>,
    faults: Faults,
    rng: StdRng,
    sent: u64,
    dropped: u64,
    delivered: u64,
}

impl Net {
    fn schedule(&mut self, after: u64, event: Event) {
        self.queue.push(Scheduled {
            at: self.now + after,
            order: self.next_order,
            event,
        });
        self.next_order += 1;
    }

    fn cut_off(&self, node: usize) -> bool {
        matches!(self.faults.partition, Some((v, from, until)) if v == node && self.now >= from && self.now < until)
    }

    fn send(&mut self, from: usize, to: usize, wire: Wire) {
        self.sent += 1;
        if self.cut_off(from)
            || self.cut_off(to)
            || self.rng.gen_range(0..1000) < self.faults.drop_per_mille
        {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.gen_range(0..1000) < self.faults.duplicate_per_mille {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.gen_range(1..=self.faults.max_delay_ms.max(1));
            self.schedule(
                delay,
                Event::Deliver {
                    from,
                    to,
                    wire: wire.clone(),
                },
            );
        }
    }

    fn broadcast(&mut self, from: usize, wire: Wire) {
        for to in 0..N {
            if to != from {
                self.send(from, to, wire.clone());
            }
        }
    }
}

/// What a validator holds besides Malachite's state: its key, its proposal, its timers.
struct Io {
    index: usize,
    signer: Signer,
    validators: ValidatorSet,
    proposal: CloseValue,
    /// The live token of each scheduled timeout; a firing timer with another token was
    /// cancelled.
    timers: BTreeMap<(u8, i64), u64>,
    next_token: u64,
    values: BTreeMap<CloseId, (CloseValue, Addr)>,
    decided: Option<(CloseValue, CommitCertificate<Ctx>, u64)>,
    max_round: i64,
    last_sync_to: [u64; N],
    synced: bool,
}

fn timer_key(t: &Timeout) -> (u8, i64) {
    let kind = match t.kind {
        TimeoutKind::Propose => 0,
        TimeoutKind::Prevote => 1,
        TimeoutKind::Precommit => 2,
        TimeoutKind::Rebroadcast => 3,
    };
    (kind, t.round.as_i64())
}

fn duration(t: &Timeout) -> u64 {
    let r = t.round.as_i64().max(0) as u64;
    match t.kind {
        TimeoutKind::Propose => 300 + 100 * r,
        TimeoutKind::Prevote | TimeoutKind::Precommit => 100 + 50 * r,
        TimeoutKind::Rebroadcast => 400 + 100 * r,
    }
}

pub fn peer_id(index: usize) -> PeerId {
    let mut bytes = vec![0x12, 0x20];
    bytes.extend_from_slice(&[index as u8 + 1; 32]);
    PeerId::from_bytes(&bytes).expect("a sha-256 multihash is a valid peer id")
}

impl Io {
    fn handle(&mut self, effect: Effect<Ctx>, net: &mut Net) -> Result<Resume<Ctx>, String> {
        let me = self.index;
        Ok(match effect {
            Effect::ResetTimeouts(r) => r.resume_with(()),
            Effect::CancelAllTimeouts(r) => {
                self.timers.clear();
                r.resume_with(())
            }
            Effect::CancelTimeout(t, r) => {
                self.timers.remove(&timer_key(&t));
                r.resume_with(())
            }
            Effect::ScheduleTimeout(t, r) => {
                self.next_token += 1;
                self.timers.insert(timer_key(&t), self.next_token);
                net.schedule(
                    duration(&t),
                    Event::Timer {
                        node: me,
                        timeout: t,
                        token: self.next_token,
                    },
                );
                r.resume_with(())
            }
            Effect::GetValidatorSet(_, r) => r.resume_with(Some(self.validators.clone())),
            Effect::StartRound(_, round, _, _, r) => {
                self.max_round = self.max_round.max(round.as_i64());
                r.resume_with(())
            }
            Effect::PublishConsensusMsg(msg, r) => {
                net.broadcast(me, Wire::Consensus(msg));
                r.resume_with(())
            }
            Effect::PublishLivenessMsg(msg, r) => {
                net.broadcast(me, Wire::Liveness(msg));
                r.resume_with(())
            }
            Effect::RepublishVote(vote, r) => {
                net.broadcast(me, Wire::Consensus(SignedConsensusMsg::Vote(vote)));
                r.resume_with(())
            }
            Effect::RepublishRoundCertificate(cert, r) => {
                net.broadcast(me, Wire::Liveness(LivenessMsg::SkipRoundCertificate(cert)));
                r.resume_with(())
            }
            Effect::GetValue(height, round, _, r) => {
                // The application builds its close value (here: ready at once, 1 ms later).
                let value = self.proposal.clone();
                self.values
                    .insert(value.id(), (value.clone(), self.validators.0[me].address));
                net.schedule(
                    1,
                    Event::Local {
                        node: me,
                        input: Input::Propose(mc::LocallyProposedValue::new(height, round, value)),
                    },
                );
                r.resume_with(())
            }
            Effect::RestreamProposal(.., r) => r.resume_with(()),
            Effect::SyncValue(response, r) => {
                self.synced = true;
                let value =
                    CloseValue::from_bytes(&response.value_bytes).ok_or("bad synced value")?;
                self.values
                    .insert(value.id(), (value.clone(), response.proposer));
                net.schedule(
                    0,
                    Event::Local {
                        node: me,
                        input: Input::ProposedValue(
                            ProposedValue {
                                height: response.certificate.height,
                                round: response.certificate.round,
                                valid_round: Round::Nil,
                                proposer: response.proposer,
                                value,
                                validity: Validity::Valid,
                            },
                            ValueOrigin::Sync(response.peer),
                        ),
                    },
                );
                r.resume_with(())
            }
            Effect::Decide(certificate, _, r) => {
                let (value, _) = self
                    .values
                    .get(&certificate.value_id)
                    .cloned()
                    .ok_or("decided a value never seen")?;
                if self.decided.is_none() {
                    self.decided = Some((value, certificate, net.now));
                }
                r.resume_with(())
            }
            Effect::SignVote(vote, r) => r.resume_with(self.signer.sign_vote(vote)),
            Effect::SignProposal(p, r) => r.resume_with(self.signer.sign_proposal(p)),
            Effect::VerifySignature(msg, key, r) => r.resume_with(self.signer.verify_message(
                &msg.message,
                &msg.signature,
                &key,
            )),
            Effect::VerifyCommitCertificate(c, vs, th, r) => {
                r.resume_with(self.signer.verify_commit_certificate(&Ctx, &c, &vs, th))
            }
            Effect::VerifyPolkaCertificate(c, vs, th, r) => {
                r.resume_with(self.signer.verify_polka_certificate(&Ctx, &c, &vs, th))
            }
            Effect::VerifyRoundCertificate(c, vs, th, r) => {
                r.resume_with(self.signer.verify_round_certificate(&Ctx, &c, &vs, th))
            }
            // The spike's validators never restart, so nothing is written ahead.
            Effect::WalAppend(_, r) => r.resume_with(()),
            Effect::ExtendVote(.., r) => r.resume_with(None),
            Effect::VerifyVoteExtension(.., r) => r.resume_with(Ok(())),
        })
    }
}

struct Node {
    state: State<Ctx>,
    io: Io,
    crashed: bool,
}

/// What one seed's run showed.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub seed: u64,
    pub crash: Crash,
    pub faults: Faults,
    /// Per validator: the decided value's id and the simulated ms at which it decided.
    pub decisions: Vec<Option<(CloseId, u64)>>,
    pub proposals: Vec<CloseId>,
    pub max_round: i64,
    pub sent: u64,
    pub dropped: u64,
    pub delivered: u64,
    pub errors: u64,
    pub certificates_valid: bool,
    /// Validators that decided through a decided peer's answer (value sync), not by voting.
    pub synced: usize,
    pub end_ms: u64,
}

impl Outcome {
    /// Agreement, validity and termination; `Err` says which failed.
    pub fn check(&self) -> Result<CloseId, String> {
        if !self.certificates_valid {
            return Err(format!(
                "seed {}: a decision's commit certificate does not verify",
                self.seed
            ));
        }
        let mut agreed: Option<CloseId> = None;
        for (i, d) in self.decisions.iter().enumerate() {
            let live = match self.crash {
                Crash::None => true,
                Crash::Silent(c) | Crash::At(c, _) => c != i,
            };
            match d {
                Some((id, _)) => {
                    if let Some(a) = agreed {
                        if a != *id {
                            return Err(format!(
                                "seed {}: v{i} decided {id}, another {a}",
                                self.seed
                            ));
                        }
                    }
                    agreed = Some(*id);
                    if !self.proposals.contains(id) {
                        return Err(format!(
                            "seed {}: v{i} decided {id}, which nobody proposed",
                            self.seed
                        ));
                    }
                }
                None if live => {
                    return Err(format!(
                        "seed {}: v{i} did not decide by {} ms",
                        self.seed, self.end_ms
                    ))
                }
                None => {}
            }
        }
        agreed.ok_or_else(|| format!("seed {}: nobody decided", self.seed))
    }
}

/// The faults seed `seed` draws (heavier than tally-sim's defaults on purpose).
pub fn draw_faults(rng: &mut StdRng, partition: bool) -> Faults {
    Faults {
        drop_per_mille: rng.gen_range(0..=200),
        duplicate_per_mille: rng.gen_range(0..=100),
        max_delay_ms: rng.gen_range(5..=200),
        partition: partition.then(|| {
            let from = rng.gen_range(0..1500);
            (rng.gen_range(0..N), from, from + rng.gen_range(200..3000))
        }),
    }
}

/// Runs one epoch close among four validators; every validator proposes the digest of the
/// certificates it saw (each a different random subset of 40).
pub fn run(seed: u64, crash: Crash, partition: bool) -> Outcome {
    let silent: Vec<usize> = match crash {
        Crash::Silent(c) => vec![c],
        _ => vec![],
    };
    run_inner(seed, crash, &silent, partition, 600_000)
}

/// A run with several validators silent from the start (the control: more than f), and a
/// simulated time limit.
pub fn run_with(seed: u64, silent: &[usize], partition: bool, limit_ms: u64) -> Outcome {
    run_inner(seed, Crash::None, silent, partition, limit_ms)
}

fn run_inner(seed: u64, crash: Crash, silent: &[usize], partition: bool, limit_ms: u64) -> Outcome {
    let mut rng = StdRng::seed_from_u64(seed);
    let faults = draw_faults(&mut rng, partition);
    let epoch = 7;
    let signers: Vec<Signer> = (0..N)
        .map(|i| {
            let mut s = [0u8; 32];
            s[0] = i as u8;
            s[1..9].copy_from_slice(&seed.to_le_bytes());
            Signer::new(s)
        })
        .collect();
    let validators = ValidatorSet(
        signers
            .iter()
            .enumerate()
            .map(|(i, s)| Validator {
                address: Addr(i as u32),
                public_key: s.public_key(),
            })
            .collect(),
    );
    let proposals: Vec<CloseValue> = (0..N)
        .map(|_| {
            let ids: Vec<u64> = (0..40).filter(|_| rng.gen_bool(0.8)).collect();
            CloseValue::of_certificates(epoch, &ids)
        })
        .collect();
    let mut net = Net {
        now: 0,
        next_order: 0,
        queue: BinaryHeap::new(),
        faults,
        rng: StdRng::seed_from_u64(seed ^ 0x0005_eed0_f7e7),
        sent: 0,
        dropped: 0,
        delivered: 0,
    };
    let mut nodes: Vec<Node> = signers
        .into_iter()
        .enumerate()
        .map(|(i, signer)| {
            let params = Params {
                initial_height: Height(1),
                initial_validator_set: validators.clone(),
                address: Addr(i as u32),
                threshold_params: ThresholdParams::default(),
                value_payload: ValuePayload::ProposalOnly,
            };
            Node {
                state: State::new(Ctx, params, 1000),
                io: Io {
                    index: i,
                    signer,
                    validators: validators.clone(),
                    proposal: proposals[i].clone(),
                    timers: BTreeMap::new(),
                    next_token: 0,
                    values: BTreeMap::new(),
                    decided: None,
                    max_round: 0,
                    last_sync_to: [0; N],
                    synced: false,
                },
                crashed: silent.contains(&i),
            }
        })
        .collect();
    for i in 0..N {
        let jitter = rng.gen_range(0..50);
        net.schedule(jitter, Event::Start(i));
    }
    let mut errors = 0;
    while let Some(next) = net.queue.pop() {
        net.now = next.at;
        if net.now > limit_ms {
            break;
        }
        if let Crash::At(c, at) = crash {
            if net.now >= at {
                nodes[c].crashed = true;
            }
        }
        let (node, input) = match next.event {
            Event::Start(i) => (i, Input::StartHeight(Height(1), validators.clone())),
            Event::Local { node, input } => (node, input),
            Event::Timer {
                node,
                timeout,
                token,
            } => {
                if nodes[node].io.timers.get(&timer_key(&timeout)) != Some(&token) {
                    continue;
                }
                nodes[node].io.timers.remove(&timer_key(&timeout));
                (node, Input::TimeoutElapsed(timeout))
            }
            Event::Deliver { from, to, wire } => {
                if net.cut_off(from) || net.cut_off(to) || nodes[to].crashed {
                    continue;
                }
                net.delivered += 1;
                let n = &mut nodes[to];
                if let Some((value, certificate, _)) = &n.io.decided {
                    // Decided: help the sender finish instead (at most every 100 ms).
                    if !matches!(wire, Wire::Decided { .. })
                        && net.now >= n.io.last_sync_to[from] + 100
                    {
                        n.io.last_sync_to[from] = net.now;
                        let (_, proposer) = n.io.values[&value.id()];
                        let answer = Wire::Decided {
                            proposer,
                            value: value.to_bytes(),
                            certificate: certificate.clone(),
                        };
                        net.send(to, from, answer);
                    }
                    continue;
                }
                let input = match wire {
                    Wire::Consensus(SignedConsensusMsg::Vote(v)) => Input::Vote(v),
                    Wire::Consensus(SignedConsensusMsg::Proposal(p)) => {
                        n.io.values
                            .insert(p.value.id(), (p.value.clone(), p.proposer));
                        Input::Proposal(p)
                    }
                    Wire::Liveness(LivenessMsg::Vote(v)) => Input::Vote(v),
                    Wire::Liveness(LivenessMsg::PolkaCertificate(c)) => Input::PolkaCertificate(c),
                    Wire::Liveness(LivenessMsg::SkipRoundCertificate(c)) => {
                        Input::RoundCertificate(c)
                    }
                    Wire::Decided {
                        proposer,
                        value,
                        certificate,
                    } => Input::SyncValueResponse(ValueResponse::new(
                        peer_id(from),
                        proposer,
                        Bytes::from(value),
                        certificate,
                    )),
                };
                (to, input)
            }
        };
        let n = &mut nodes[node];
        if n.crashed || n.io.decided.is_some() {
            continue;
        }
        let Node { state, io, .. } = n;
        let result: Result<(), mc::Error<Ctx>> = mc::process!(
            input: input,
            state: state,
            metrics: &(),
            with: effect => io.handle(effect, &mut net)
        );
        if result.is_err() {
            errors += 1;
        }
        let all_done = nodes.iter().all(|n| n.crashed || n.io.decided.is_some());
        if all_done {
            break;
        }
    }
    // Every decision carries a commit certificate that an outsider (a wallet reading the
    // epoch certificate) accepts: 2f+1 valid precommits of the committee for the value.
    let certificates_valid = nodes.iter().all(|n| match &n.io.decided {
        Some((value, cert, _)) => {
            cert.value_id == value.id()
                && cert.commit_signatures.len() > 2 * (N - 1) / 3
                && n.io
                    .signer
                    .verify_commit_certificate(&Ctx, cert, &validators, ThresholdParams::default())
                    .is_ok()
        }
        None => true,
    });
    Outcome {
        seed,
        crash,
        faults,
        decisions: nodes
            .iter()
            .map(|n| n.io.decided.as_ref().map(|(v, _, at)| (v.id(), *at)))
            .collect(),
        proposals: proposals.iter().map(|p| p.id()).collect(),
        max_round: nodes.iter().map(|n| n.io.max_round).max().unwrap_or(0),
        sent: net.sent,
        dropped: net.dropped,
        delivered: net.delivered,
        errors,
        certificates_valid,
        synced: nodes
            .iter()
            .filter(|n| n.io.synced && n.io.decided.is_some())
            .count(),
        end_ms: net.now,
    }
}
