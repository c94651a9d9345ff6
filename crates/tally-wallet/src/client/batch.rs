//! Many orders certified together (powning a batch of coins): each validator decides its
//! share in one pipelined exchange, and every vote is checked in one batch verification.
//! The first-voter rule holds for batches as for single orders ([`QuorumClient::certify`]):
//! each order goes to its signer's first voter first, and on to the others only once that
//! voter voted for it, so that two holders of one coin taking it in at once cannot split
//! its slot between them (DESIGN §3).

use tally_core::{BatchVerifier, Certificate, OrderDigest, SignedOrder, Vote};
use tally_proto::{ErrorCode, Packet};

use super::{ClientError, QuorumClient};

/// What an order's first voter said to it, in the first round.
enum FirstAnswer {
    /// A vote (checked later, with the rest).
    Voted(Vote),
    /// It holds its vote in the slot for another order: this one was shown to no one else.
    Taken,
    /// No answer: the race is open, as for a single order whose first voter is silent.
    Silent,
    /// Another refusal (it lags, funds, a bad signature): the order is certified on its
    /// own, which catches the validator up and asks again.
    Refused,
}

impl QuorumClient {
    /// Certifies orders together. First round: each order to its signer's first voter,
    /// every validator's share in one pipelined exchange. Second round: the orders their
    /// first voter voted for (or that did not answer at all: the residual race, as in
    /// [`Self::certify`]) to every other validator, again one exchange each. A quorum of
    /// each order's votes is checked, all of them in one batch verification. An order its
    /// first voter holds another order's vote against is [`ClientError::SlotTaken`]; one
    /// refused otherwise, or short of a quorum, is certified on its own
    /// ([`Self::certify`], which catches lagging validators up).
    pub async fn certify_many(
        &self,
        orders: &[SignedOrder],
    ) -> Vec<Result<Certificate, ClientError>> {
        let n = self.contract.validators.len();
        let requests: Vec<Packet> = orders.iter().map(|o| Packet::ReqPay(o.clone())).collect();
        let digests: Vec<OrderDigest> = orders
            .iter()
            .map(|o| o.order.digest(&self.network))
            .collect();
        // An order no key signs has no first voter: it goes to everyone in the second round.
        let firsts: Vec<Option<usize>> =
            orders.iter().map(|o| self.first_voter(&o.order)).collect();
        let gate = !self.skips_first_voter();

        // First round: each validator gets the orders it votes on first.
        let mut first_answers: Vec<FirstAnswer> =
            (0..orders.len()).map(|_| FirstAnswer::Silent).collect();
        if gate {
            let shares: Vec<Vec<usize>> = (0..n)
                .map(|i| {
                    (0..orders.len())
                        .filter(|k| firsts[*k] == Some(i))
                        .collect()
                })
                .collect();
            let answers = self
                .each(|i| {
                    let packets: Vec<Packet> =
                        shares[i].iter().map(|k| requests[*k].clone()).collect();
                    async move {
                        if packets.is_empty() {
                            return Ok(Vec::new());
                        }
                        self.call_many(i, &packets).await
                    }
                })
                .await;
            for (i, answer) in answers.into_iter().enumerate() {
                let Ok(packets) = answer.result else { continue };
                for (k, packet) in shares[i].iter().zip(packets) {
                    first_answers[*k] = self.first_answer(i, &digests[*k], packet);
                }
            }
        }

        // A conflict the first voter cannot show (it hands out no other order for the
        // slot) is no conflict: that voter counts as silent.
        for (k, order) in orders.iter().enumerate() {
            if matches!(first_answers[k], FirstAnswer::Taken)
                && !self.conflict_proven(firsts[k].unwrap_or(0), order).await
            {
                first_answers[k] = FirstAnswer::Silent;
            }
        }

        // Second round: the orders that go on, to every validator but their first voter.
        let goes_on = |k: usize| {
            !gate
                || matches!(
                    first_answers[k],
                    FirstAnswer::Voted(_) | FirstAnswer::Silent
                )
        };
        let shares: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                (0..orders.len())
                    .filter(|k| goes_on(*k) && (!gate || firsts[*k] != Some(i)))
                    .collect()
            })
            .collect();
        let answers = self
            .each(|i| {
                let packets: Vec<Packet> = shares[i].iter().map(|k| requests[*k].clone()).collect();
                async move {
                    if packets.is_empty() {
                        return Ok(Vec::new());
                    }
                    self.call_many(i, &packets).await
                }
            })
            .await;
        // Each order's well-formed votes (its digest, the answering validator's key).
        let mut candidates: Vec<Vec<Vote>> = vec![Vec::new(); orders.len()];
        for (k, answer) in first_answers.iter().enumerate() {
            if let FirstAnswer::Voted(vote) = answer {
                candidates[k].push(*vote);
            }
        }
        for (i, answer) in answers.into_iter().enumerate() {
            let Ok(packets) = answer.result else { continue };
            for (k, packet) in shares[i].iter().zip(packets) {
                if let Some(vote) = self.well_formed_vote(i, &digests[*k], &packet) {
                    candidates[*k].push(vote);
                }
            }
        }

        let quorum = self.committee.quorum();
        let mut batch = BatchVerifier::with_capacity(orders.len() * quorum);
        for (digest, votes) in digests.iter().zip(&candidates) {
            for vote in votes.iter().take(quorum) {
                let message = Vote::signing_bytes(&self.network, digest);
                batch.push(&vote.validator, &vote.signature, &message);
            }
        }
        let mut checked = batch.verify_with_cache(&self.validator_keys).into_iter();
        let mut out = Vec::with_capacity(orders.len());
        for (k, order) in orders.iter().enumerate() {
            let votes = &candidates[k];
            let mut good = Vec::with_capacity(quorum);
            for vote in votes.iter().take(quorum) {
                if checked.next().unwrap_or(false) {
                    good.push(*vote);
                }
            }
            // A bad vote among the first: the others are checked one by one.
            for vote in votes.iter().skip(quorum) {
                if good.len() >= quorum {
                    break;
                }
                if vote.verify(&self.network, &digests[k]) {
                    good.push(*vote);
                }
            }
            if gate && matches!(first_answers[k], FirstAnswer::Taken) {
                out.push(Err(ClientError::SlotTaken {
                    index: firsts[k].unwrap_or(0),
                    validator: self.contract.validators[firsts[k].unwrap_or(0)].key,
                }));
            } else if good.len() >= quorum {
                out.push(Ok(Certificate::new(order.clone(), &self.network, good)));
            } else {
                out.push(self.certify(order).await);
            }
        }
        out
    }

    /// How the first voter `i` answered an order of `digest`.
    fn first_answer(&self, i: usize, digest: &OrderDigest, packet: Packet) -> FirstAnswer {
        match packet {
            Packet::Error(error) if error.code == ErrorCode::Conflict => FirstAnswer::Taken,
            packet => match self.well_formed_vote(i, digest, &packet) {
                Some(vote) => FirstAnswer::Voted(vote),
                None => FirstAnswer::Refused,
            },
        }
    }

    /// Validator `i`'s vote in `packet` for the order of `digest`, if it is one (its
    /// signature is checked later).
    fn well_formed_vote(&self, i: usize, digest: &OrderDigest, packet: &Packet) -> Option<Vote> {
        let Packet::RespPay(reply) = packet else {
            return None;
        };
        match reply.votes.as_slice() {
            [vote]
                if reply.checksum == *digest
                    && vote.validator == self.contract.validators[i].key =>
            {
                Some(*vote)
            }
            _ => None,
        }
    }

    /// Hands certificates to every validator, each in one pipelined exchange; for each
    /// certificate, how many validators applied it.
    pub async fn submit_many(&self, certificates: &[Certificate]) -> Vec<usize> {
        let requests: Vec<Packet> = certificates
            .iter()
            .map(|c| Packet::ReqPayEnd(c.clone()))
            .collect();
        let answers = self.each(|i| self.call_many(i, &requests)).await;
        certificates
            .iter()
            .enumerate()
            .map(|(k, certificate)| {
                answers
                    .iter()
                    .filter(|answer| {
                        matches!(
                            answer.result.as_ref().ok().and_then(|a| a.get(k)),
                            Some(Packet::RespPayEnd(ack)) if ack.checksum == certificate.checksum
                        )
                    })
                    .count()
            })
            .collect()
    }
}
