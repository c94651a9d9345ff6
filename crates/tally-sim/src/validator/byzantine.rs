//! What a Byzantine validator answers: the bare state machine ([`Validator`]) with the
//! rules its [`Behaviour`] breaks, to equivocators' requests and to real wallets' packets
//! alike.

use std::collections::{BTreeMap, VecDeque};

use tally_core::{AccountId, Certificate, NetworkId, OrderDigest, Signature, SignedOrder, Vote};
use tally_ledger::{LedgerError, Validator};
use tally_node::decider::refusal_code;
use tally_proto::quorum::LoggedCertificate;
use tally_proto::{
    CertQuery, CertificatesPage, EndAck, HeldOrder, Hello, LedgerEntry, LedgerView, Packet,
    VoteReply,
};

use super::{Behaviour, LIAR_MEMORY, Running, SimValidator};
use crate::check::Signatures;
use crate::net::{Message, Node, Payload, Refusal};

/// How far ahead of the truth a liar says an account's next sequence is.
const LIE_AHEAD: u64 = 2;

impl SimValidator {
    /// What a Byzantine validator answers to a batch, at once (it keeps nothing).
    pub(super) fn misbehave(
        &mut self,
        batch: Vec<Message>,
        network: &NetworkId,
        signatures: &mut Signatures,
    ) -> Vec<Message> {
        if self.behaviour == Behaviour::Silent {
            return Vec::new();
        }
        let mut answers = Vec::with_capacity(batch.len());
        for message in batch {
            let payload = match message.payload {
                Payload::Request(id, packet) => self
                    .answer_packet(packet, network, signatures)
                    .map(|answer| Payload::Answer(id, answer)),
                Payload::Pay(order) => {
                    self.answer_order(&order, network, signatures)
                        .map(|(digest, verdict)| match verdict {
                            Ok(vote) => Payload::Voted(digest, vote),
                            Err(LedgerError::Conflict { .. }) => {
                                Payload::Refused(digest, Refusal::Conflict)
                            }
                            Err(LedgerError::Sequence { expected, .. }) => {
                                Payload::Refused(digest, Refusal::Behind { expected })
                            }
                            Err(_) => Payload::Refused(digest, Refusal::Other),
                        })
                }
                Payload::PayEnd(certificate) => {
                    let digest = certificate.checksum;
                    Some(
                        match self.answer_certificate(&certificate, network, signatures) {
                            Ok(()) => Payload::Applied(digest),
                            Err(LedgerError::MissingPredecessor { expected, .. }) => {
                                Payload::Refused(digest, Refusal::Behind { expected })
                            }
                            Err(_) => Payload::Refused(digest, Refusal::Other),
                        },
                    )
                }
                // Answers are for owners; a validator ignores them.
                Payload::Answer(..)
                | Payload::Voted(..)
                | Payload::Refused(..)
                | Payload::Applied(..) => None,
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

    fn bare(&mut self) -> Option<&mut Validator> {
        match self.running.as_mut() {
            Some(Running::Byzantine(validator)) => Some(validator),
            _ => None,
        }
    }

    /// A vote, or why not: a double voter votes for whatever is well signed; a liar as the
    /// state machine decides (once per slot). `None`: no answer.
    fn answer_order(
        &mut self,
        order: &SignedOrder,
        network: &NetworkId,
        signatures: &mut Signatures,
    ) -> Option<(OrderDigest, Result<Vote, LedgerError>)> {
        let behaviour = self.behaviour;
        if behaviour == Behaviour::Liar {
            remember(&mut self.seen_orders, order.clone());
        }
        let validator = self.bare()?;
        let digest = order.order.digest(network);
        let signed_ok = match order.order.signer() {
            Some(signer) => signatures.check(
                &signer,
                &order.signature,
                &order.order.signing_bytes(network),
            ),
            None => order.verify(network),
        };
        let verdict = match behaviour {
            Behaviour::DoubleVoter if signed_ok => Ok(validator.vote(&digest)),
            Behaviour::DoubleVoter => Err(LedgerError::BadSignature),
            _ => validator
                .decide_order(order, signed_ok)
                .map(|digest| validator.vote(&digest)),
        };
        Some((digest, verdict))
    }

    /// Applies a certificate (a liar, checking its votes) or claims to (a double voter).
    fn answer_certificate(
        &mut self,
        certificate: &Certificate,
        network: &NetworkId,
        signatures: &mut Signatures,
    ) -> Result<(), LedgerError> {
        let behaviour = self.behaviour;
        let Some(validator) = self.bare() else {
            return Err(LedgerError::BadVote);
        };
        if behaviour == Behaviour::DoubleVoter {
            return Ok(());
        }
        let digest = certificate.checksum;
        let votes_ok = certificate
            .check_structure(validator.committee(), network)
            .is_ok()
            && certificate.votes.iter().all(|vote| {
                signatures.check(
                    &vote.validator,
                    &vote.signature,
                    &Vote::signing_bytes(network, &digest),
                )
            });
        validator.handle_certificate(certificate, votes_ok)?;
        remember(&mut self.seen_certificates, certificate.clone());
        Ok(())
    }

    /// A real wallet's packet, answered as the behaviour says: orders and certificates as
    /// above, reads truthfully by a double voter and falsely by a liar (accounts a little
    /// further on than they are, no held orders, forged certificates for settled slots).
    fn answer_packet(
        &mut self,
        packet: Packet,
        network: &NetworkId,
        signatures: &mut Signatures,
    ) -> Option<Packet> {
        let lie = if self.behaviour == Behaviour::Liar {
            LIE_AHEAD
        } else {
            0
        };
        Some(match packet {
            Packet::ReqPay(order) => match self.answer_order(&order, network, signatures)? {
                (digest, Ok(vote)) => Packet::RespPay(VoteReply {
                    checksum: digest,
                    votes: vec![vote],
                }),
                (_, Err(error)) => Packet::error(refusal_code(&error), error.to_string()),
            },
            Packet::ReqPayEnd(certificate) => {
                match self.answer_certificate(&certificate, network, signatures) {
                    Ok(()) => Packet::RespPayEnd(EndAck {
                        checksum: certificate.checksum,
                        new: true,
                        validator: self.key.account(),
                    }),
                    Err(error) => Packet::error(refusal_code(&error), error.to_string()),
                }
            }
            Packet::Hello(_) => {
                let validator = self.bare()?;
                Packet::Hello(Hello {
                    network: *network,
                    validator: Some(validator.id()),
                    address: Some("sim".into()),
                    certificates: Some(validator.log_len()),
                })
            }
            Packet::ReqLedger(request) => {
                let validator = self.bare()?;
                let mut ledger = BTreeMap::new();
                for account in request.accounts.iter().flatten() {
                    let state = validator.account(account);
                    let entry = LedgerEntry {
                        balance: state.balance,
                        next_sequence: state.next_sequence + lie,
                        introduced: state.introduced,
                        locked: if lie > 0 {
                            None
                        } else {
                            validator.held_vote(account)
                        },
                    };
                    ledger.insert(*account, entry);
                }
                Packet::RespLedger(LedgerView::sign(
                    validator.key(),
                    network,
                    validator.log_len(),
                    validator.supply(),
                    ledger,
                ))
            }
            Packet::ReqHeldOrder(request) => {
                let validator = self.bare()?;
                let account = request.account;
                let honest = lie == 0;
                Packet::RespHeldOrder(HeldOrder {
                    account,
                    next_sequence: validator.account(&account).next_sequence + lie,
                    locked: validator.held_vote(&account).filter(|_| honest),
                    order: validator.held_order(&account).cloned().filter(|_| honest),
                })
            }
            Packet::ReqCerts(query) => Packet::RespCerts(CertificatesPage {
                certificates: self.forged_page(&query, network),
                next: None,
            }),
            other => Packet::error(
                tally_proto::ErrorCode::Malformed,
                format!("{} is not a request a validator answers", other.name()),
            ),
        })
    }

    /// A liar's answer to "the certificate that settled this slot": one forged for an
    /// order of that slot it was sent. A double voter keeps no log: an empty page.
    fn forged_page(&self, query: &CertQuery, network: &NetworkId) -> Vec<LoggedCertificate> {
        let (Behaviour::Liar, Some(Running::Byzantine(validator))) =
            (self.behaviour, self.running.as_ref())
        else {
            return Vec::new();
        };
        let CertQuery::Sent { account, from, .. } = query else {
            return Vec::new();
        };
        self.seen_orders
            .iter()
            .rev()
            .find(|o| o.order.spender() == Some((*account, *from)))
            .map(|order| LoggedCertificate {
                index: validator.log_len(),
                certificate: forge(validator, order, network, &self.committee),
            })
            .into_iter()
            .collect()
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
