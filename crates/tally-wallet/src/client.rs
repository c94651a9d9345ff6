//! The client side of a quorum network: ask every validator for its vote, assemble the
//! certificate from a quorum of them, and hand it back to every validator.
//!
//! A validator that is behind (it answers that the sequence is ahead of it, that funds are
//! missing, or that a predecessor is missing) is first brought up to date: the client
//! fetches the certificates it lacks from a validator that has them and pushes them to it,
//! then asks again (`catch_up`). What a wallet only reads (views, an account's next slot
//! and what holds it, the certificate that settled a slot) is in `reads`.

use std::time::Duration;

use futures::future::join_all;
use tally_core::{
    AccountId, BatchVerifier, Certificate, Committee, KeyCache, NetworkContract, NetworkId, Order,
    SignedOrder, Vote,
};
use tally_proto::quorum::LoggedCertificate;
use tally_proto::{CertQuery, EndAck, ErrorCode, ErrorReply, Packet};

mod batch;
mod catch_up;
mod reads;
mod transport;

pub use reads::SlotView;
pub use transport::{TcpTransport, Transport};

/// A client failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("refused: {0}")]
    Refused(ErrorReply),
    #[error("unexpected answer {0}")]
    Unexpected(&'static str),
    #[error("invalid answer: {0}")]
    Invalid(String),
    #[error("no quorum: {votes} of the {needed} votes needed; {reasons}")]
    NoQuorum {
        votes: usize,
        needed: usize,
        reasons: String,
        /// Every validator answered with a refusal other than a conflict, so no validator
        /// holds a vote for this order and the wallet may sign a different one.
        refused_everywhere: bool,
        /// Validators that answered that they hold their vote in this slot for another
        /// order: the wallet looks at what holds the slot rather than give up.
        conflicts: usize,
    },
    /// The validator that decides first between orders for one slot (see
    /// [`QuorumClient::certify`]) holds its vote for another order of this account: another
    /// copy of the same key signed for this slot first. This order was shown to no one
    /// else and holds no vote; the wallet finishes the other order instead.
    #[error(
        "validator {} holds its vote in this slot for another order of the same account (another copy of this key signed first)",
        .validator.short()
    )]
    SlotTaken {
        /// Its position in the contract.
        index: usize,
        validator: AccountId,
    },
}

/// One validator's answer.
#[derive(Debug, Clone)]
pub struct ValidatorAnswer<T> {
    pub validator: AccountId,
    pub address: String,
    pub result: Result<T, ClientError>,
}

/// A client of one quorum network, over a [`Transport`] (TCP unless the simulator
/// supplies its own).
pub struct QuorumClient {
    contract: NetworkContract,
    network: NetworkId,
    committee: Committee,
    transport: Box<dyn Transport>,
    /// The validators' keys, decompressed once for batch verification of their votes.
    validator_keys: KeyCache,
    /// A planted mistake: certify asks every validator at once, not the first voter first.
    #[cfg(feature = "planted-bugs")]
    skips_first_voter: bool,
}

impl QuorumClient {
    /// A client for `contract` over TCP; each call to a validator gives up after `timeout`.
    pub fn new(contract: NetworkContract, timeout: Duration) -> Result<Self, ClientError> {
        let transport = TcpTransport::new(contract.clone(), timeout);
        QuorumClient::with_transport(contract, Box::new(transport))
    }

    /// A client for `contract` that reaches its validators through `transport`.
    pub fn with_transport(
        contract: NetworkContract,
        transport: Box<dyn Transport>,
    ) -> Result<Self, ClientError> {
        let committee = Committee::new(&contract.validators)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        Ok(QuorumClient {
            network: contract.id(),
            validator_keys: KeyCache::new(contract.validators.len()),
            contract,
            committee,
            transport,
            #[cfg(feature = "planted-bugs")]
            skips_first_voter: false,
        })
    }

    /// A client for `contract` over TCP that has asked the contract's tracker, if it names
    /// one, where the validators are now. A tracker that cannot help is no failure: the
    /// contract's addresses remain (a warning says so).
    pub async fn located(
        contract: NetworkContract,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let mut transport = TcpTransport::new(contract.clone(), timeout);
        if let Some(tracker) = contract.tracker.clone() {
            let config = tally_tracker::ClientConfig {
                answer_timeout: timeout,
                connect_timeout: timeout,
                max_attempts: 1,
                ..tally_tracker::ClientConfig::default()
            };
            match transport.locate(config).await {
                Ok(located) => tracing::debug!(%tracker, located, "validators located"),
                Err(error) => {
                    tracing::warn!(%tracker, %error, "tracker unavailable; using the contract's addresses")
                }
            }
        }
        QuorumClient::with_transport(contract, Box::new(transport))
    }

    /// Plants a mistake for the simulator to catch: [`Self::certify`] asks every
    /// validator at once instead of the signer's first voter first (the wallet as it was
    /// before the first-voter rule), so two copies of one key can split a slot.
    #[cfg(feature = "planted-bugs")]
    pub fn plant_skip_first_voter(&mut self) {
        self.skips_first_voter = true;
    }

    /// The network's id.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// The committee.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// The contract.
    pub fn contract(&self) -> &NetworkContract {
        &self.contract
    }

    /// Where validator `i` is reached.
    fn address(&self, i: usize) -> String {
        self.transport.address(i)
    }

    /// Waits `duration` on the transport's clock.
    pub async fn pause(&self, duration: Duration) {
        self.transport.pause(duration).await;
    }

    /// The client's clock in milliseconds since the Unix epoch (its transport's).
    pub fn now_ms(&self) -> u64 {
        self.transport.now_ms()
    }

    /// Sends one request to validator `i` and waits for its answer.
    pub async fn call(&self, i: usize, packet: &Packet) -> Result<Packet, ClientError> {
        self.transport.call(i, packet).await
    }

    /// `REQ_CERTS` to validator `source`: the page it answers (nothing when it does not),
    /// keeping only the certificates that verify against the committee, so that a lying
    /// validator's forgeries are never relayed to another validator nor kept.
    async fn fetch(&self, source: usize, query: CertQuery) -> Vec<LoggedCertificate> {
        match self.call(source, &Packet::ReqCerts(query)).await {
            Ok(Packet::RespCerts(page)) => page
                .certificates
                .into_iter()
                .filter(|logged| {
                    logged
                        .certificate
                        .verify(&self.committee, &self.network)
                        .is_ok()
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Sends `packets` to validator `i` in one pipelined exchange (queued, one flush, then
    /// the answers in order, where the transport can), so the validator decides them in one
    /// batch and one commit. Keep a call to a few hundred packets.
    pub async fn call_many(
        &self,
        i: usize,
        packets: &[Packet],
    ) -> Result<Vec<Packet>, ClientError> {
        self.transport.call_many(i, packets).await
    }

    async fn each<T, F, Fut>(&self, f: F) -> Vec<ValidatorAnswer<T>>
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let results = join_all((0..self.contract.validators.len()).map(&f)).await;
        results
            .into_iter()
            .zip(&self.contract.validators)
            .enumerate()
            .map(|(i, (result, info))| ValidatorAnswer {
                validator: info.key,
                address: self.address(i),
                result,
            })
            .collect()
    }

    /// The validator that votes first on `order` (see [`Self::certify`]): fixed by the
    /// signer, so every copy of one key asks the same one first.
    /// `None` for an order no key signs (an escrow's claim or refund): no copy of a wallet
    /// can sign a second one, so it goes to everyone at once.
    pub fn first_voter(&self, order: &Order) -> Option<usize> {
        order
            .signer()
            .map(|signer| tally_core::first_voter(&signer, self.contract.validators.len()))
    }

    /// Gathers votes for `order` and assembles its certificate. The signer's first voter
    /// ([`Self::first_voter`]) is asked alone first, then every other validator at once:
    /// two copies of one key that sign different orders for one slot at the same moment
    /// both ask the same validator first, it votes for one of them, and the other copy
    /// learns so ([`ClientError::SlotTaken`]) before any other validator saw its order, so
    /// the votes cannot split (DESIGN §3). When the first voter does not answer, the rest
    /// are asked anyway: the race is then open again, which is the residual one.
    pub async fn certify(&self, order: &SignedOrder) -> Result<Certificate, ClientError> {
        self.gather(order, !self.skips_first_voter()).await
    }

    /// Gathers votes for an order validators already hold votes for (the most held one in
    /// a slot another copy of the key signed for), from every validator at once. The
    /// first-voter rule is for new orders: this one is out already, and its first voter
    /// holding another order does not stop it winning with the others' votes, so a wallet
    /// finishing it must not stop at that voter's refusal.
    pub async fn certify_held(&self, order: &SignedOrder) -> Result<Certificate, ClientError> {
        self.gather(order, false).await
    }

    /// Votes for `order` from every validator, its first voter alone first if
    /// `first_alone`; its certificate once a quorum voted.
    async fn gather(
        &self,
        order: &SignedOrder,
        first_alone: bool,
    ) -> Result<Certificate, ClientError> {
        let digest = order.order.digest(&self.network);
        let first = self.first_voter(&order.order);
        let first_alone = first_alone && first.is_some();
        let first = first.unwrap_or(0);
        let mut answers = Vec::with_capacity(self.contract.validators.len());
        if first_alone {
            match self.vote_from(first, order).await {
                Err(ClientError::Refused(error))
                    if error.code == ErrorCode::Conflict
                        && self.conflict_proven(first, order).await =>
                {
                    return Err(ClientError::SlotTaken {
                        index: first,
                        validator: self.contract.validators[first].key,
                    });
                }
                result => answers.push((first, result)),
            }
        }
        let others = (0..self.contract.validators.len()).filter(|i| !first_alone || *i != first);
        answers.extend(
            join_all(others.map(|i| async move { (i, self.vote_from(i, order).await) })).await,
        );
        // The votes' signatures, checked together: one batch equation for all of them
        // (each is checked alone only if the batch fails).
        let message = Vote::signing_bytes(&self.network, &digest);
        let mut batch = BatchVerifier::with_capacity(answers.len());
        for (_, result) in &answers {
            if let Ok(vote) = result {
                batch.push(&vote.validator, &vote.signature, &message);
            }
        }
        let mut verdicts = batch.verify_with_cache(&self.validator_keys).into_iter();
        let answers = answers.into_iter().map(|(i, result)| {
            let result = result.and_then(|vote| {
                if verdicts.next().unwrap_or(false) {
                    Ok(vote)
                } else {
                    Err(ClientError::Invalid("vote does not verify".into()))
                }
            });
            (i, result)
        });
        let mut votes: Vec<Vote> = Vec::new();
        let mut reasons = Vec::new();
        let mut refused = 0;
        let mut conflicts = 0;
        for (i, result) in answers {
            match result {
                Ok(vote) => votes.push(vote),
                Err(error) => {
                    match &error {
                        ClientError::Refused(e) if e.code == ErrorCode::Conflict => conflicts += 1,
                        ClientError::Refused(_) => refused += 1,
                        _ => {}
                    }
                    reasons.push(format!(
                        "{} {error}",
                        self.contract.validators[i].key.short()
                    ));
                }
            }
        }
        if votes.len() < self.committee.quorum() {
            return Err(ClientError::NoQuorum {
                votes: votes.len(),
                needed: self.committee.quorum(),
                reasons: reasons.join("; "),
                refused_everywhere: refused == self.contract.validators.len(),
                conflicts,
            });
        }
        let certificate = Certificate::new(order.clone(), &self.network, votes);
        debug_assert_eq!(certificate.checksum, digest);
        Ok(certificate)
    }

    /// Whether the planted mistake of asking everyone at once is switched on.
    fn skips_first_voter(&self) -> bool {
        #[cfg(feature = "planted-bugs")]
        return self.skips_first_voter;
        #[cfg(not(feature = "planted-bugs"))]
        false
    }

    /// Validator `i`'s vote for `order`, for the right digest and from the right validator;
    /// its signature is not checked yet (the caller checks all the votes it gathered in one
    /// batch).
    async fn vote_from(&self, i: usize, order: &SignedOrder) -> Result<Vote, ClientError> {
        let request = match order.order {
            Order::IntroKey(_) => Packet::ReqIntroKey(order.clone()),
            _ => Packet::ReqPay(order.clone()),
        };
        let digest = order.order.digest(&self.network);
        for attempt in 0..2 {
            match self.call(i, &request).await? {
                Packet::RespPay(reply) | Packet::RespIntroKey(reply) => {
                    let [vote] = reply.votes.as_slice() else {
                        return Err(ClientError::Invalid(
                            "a vote answer must carry one vote".into(),
                        ));
                    };
                    // Its signature is checked with the other votes' ([`Self::gather`]).
                    if reply.checksum != digest || vote.validator != self.contract.validators[i].key
                    {
                        return Err(ClientError::Invalid("vote does not verify".into()));
                    }
                    return Ok(*vote);
                }
                Packet::Error(error)
                    if attempt == 0
                        && matches!(
                            error.code,
                            ErrorCode::Sequence
                                | ErrorCode::InsufficientFunds
                                | ErrorCode::MissingPredecessor
                                // An escrow's claim or refund where its lock is not
                                // applied yet.
                                | ErrorCode::EscrowClosed
                        ) =>
                {
                    if !self.catch_up(i, &order.order).await {
                        return Err(ClientError::Refused(error));
                    }
                }
                Packet::Error(error) => return Err(ClientError::Refused(error)),
                other => return Err(ClientError::Unexpected(other.name())),
            }
        }
        Err(ClientError::Unexpected("no vote after catching up"))
    }

    /// Hands a certificate to validator `i`.
    pub async fn push(&self, i: usize, certificate: &Certificate) -> Result<EndAck, ClientError> {
        let packet = match certificate.order {
            Order::IntroKey(_) => Packet::ReqIntroKeyEnd(certificate.clone()),
            _ => Packet::ReqPayEnd(certificate.clone()),
        };
        match self.call(i, &packet).await? {
            Packet::RespPayEnd(ack) | Packet::RespIntroKeyEnd(ack)
                if ack.checksum == certificate.checksum =>
            {
                Ok(ack)
            }
            Packet::Error(error) => Err(ClientError::Refused(error)),
            other => Err(ClientError::Unexpected(other.name())),
        }
    }

    /// Hands a certificate to every validator; each answer says whether it applied it.
    pub async fn submit(&self, certificate: &Certificate) -> Vec<ValidatorAnswer<EndAck>> {
        self.each(|i| self.push(i, certificate)).await
    }
}
