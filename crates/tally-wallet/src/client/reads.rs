//! What a wallet reads from the validators: who they are, their signed views of accounts,
//! an account's next lock slot and what holds it, and the certificate that settled a slot.

use tally_core::{AccountId, Certificate, EscrowLock, Order, SignedOrder};
use tally_proto::{
    CertQuery, EscrowQuery, EscrowView, HeldOrderRequest, Hello, LedgerEntry, LedgerRequest,
    LedgerView, NextSlot, Packet,
};

use super::{ClientError, QuorumClient, ValidatorAnswer};

/// An account's next lock slot as the validators report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    /// The sequence number of the slot: the (f+1)-th highest that validators report,
    /// which at least one honest validator has reached.
    pub sequence: u64,
    /// The votes validators at that sequence hold in it: an order in flight (this
    /// wallet's own, or one another copy of the key signed), or none.
    pub state: NextSlot,
}

impl QuorumClient {
    /// `HELLO` to every validator.
    pub async fn hello_all(&self) -> Vec<ValidatorAnswer<Hello>> {
        self.each(|i| async move {
            let hello = Packet::Hello(Hello {
                network: self.network,
                validator: None,
                address: None,
                certificates: None,
            });
            match self.call(i, &hello).await? {
                Packet::Hello(answer) => Ok(answer),
                Packet::Error(error) => Err(ClientError::Refused(error)),
                other => Err(ClientError::Unexpected(other.name())),
            }
        })
        .await
    }

    /// `REQ_LEDGER` to validator `i`; the view's signature is checked.
    pub async fn ledger(
        &self,
        i: usize,
        request: &LedgerRequest,
    ) -> Result<LedgerView, ClientError> {
        match self.call(i, &Packet::ReqLedger(request.clone())).await? {
            Packet::RespLedger(view) => {
                if view.validator != self.contract.validators[i].key || !view.verify(&self.network)
                {
                    return Err(ClientError::Invalid(
                        "ledger view signature does not verify".into(),
                    ));
                }
                Ok(view)
            }
            Packet::Error(error) => Err(ClientError::Refused(error)),
            other => Err(ClientError::Unexpected(other.name())),
        }
    }

    /// `REQ_ESCROW` to validator `i`: how the escrow stands there. What the answer claims
    /// is checked as far as it can be without a certificate: the lock against the escrow's
    /// id, the secret against the hash lock, the held order against the escrow.
    pub async fn escrow_view(
        &self,
        i: usize,
        query: &EscrowQuery,
    ) -> Result<EscrowView, ClientError> {
        match self.call(i, &Packet::ReqEscrow(*query)).await? {
            Packet::RespEscrow(view) => {
                let lock_ok = match (view.escrow, view.lock) {
                    (Some(id), Some(lock)) => {
                        Order::from(lock).digest(&self.network) == id
                            && matches!(query, EscrowQuery::Id(asked) if *asked == id)
                                | matches!(query, EscrowQuery::HashLock(h) if *h == lock.hash_lock)
                    }
                    (None, None) => true,
                    _ => false,
                };
                let hash_lock = match (query, view.lock) {
                    (EscrowQuery::HashLock(hash), _) => Some(*hash),
                    (EscrowQuery::Id(_), lock) => lock.map(|l: EscrowLock| l.hash_lock),
                };
                let secret_ok = match view.secret {
                    Some(secret) => hash_lock == Some(secret.hash_lock()),
                    None => true,
                };
                let held_ok = view.held.as_ref().is_none_or(|held| {
                    view.escrow.is_some_and(|id| {
                        held.order.lock_slot() == tally_core::LockSlot::Escrow(id)
                    })
                });
                if !(lock_ok && secret_ok && held_ok) {
                    return Err(ClientError::Invalid(
                        "the escrow answer does not match the escrow asked about".into(),
                    ));
                }
                Ok(*view)
            }
            Packet::Error(error) => Err(ClientError::Refused(error)),
            other => Err(ClientError::Unexpected(other.name())),
        }
    }

    /// `REQ_ESCROW` to every validator.
    pub async fn escrow_all(&self, query: &EscrowQuery) -> Vec<ValidatorAnswer<EscrowView>> {
        self.each(|i| self.escrow_view(i, query)).await
    }

    /// `REQ_LEDGER` to every validator.
    pub async fn ledger_all(&self, request: &LedgerRequest) -> Vec<ValidatorAnswer<LedgerView>> {
        self.each(|i| self.ledger(i, request)).await
    }

    /// The next sequence number of `account`: the (f+1)-th highest that validators report,
    /// which at least one honest validator has reached.
    pub async fn next_sequence(&self, account: &AccountId) -> Result<u64, ClientError> {
        Ok(self.next_slot(account).await?.sequence)
    }

    /// `account`'s next lock slot, and the orders validators already hold votes for in it,
    /// from one `REQ_LEDGER` to every validator: a wallet reads it before it signs, so
    /// that it finishes an order in flight rather than sign a second one (DESIGN §3).
    pub async fn next_slot(&self, account: &AccountId) -> Result<SlotView, ClientError> {
        let request = LedgerRequest {
            accounts: Some(vec![*account]),
            ..LedgerRequest::default()
        };
        let entries: Vec<LedgerEntry> = self
            .ledger_all(&request)
            .await
            .into_iter()
            .filter_map(|a| a.result.ok())
            .filter_map(|view| view.ledger.get(account).copied())
            .collect();
        // The (f+1)-th highest is vouched for by an honest validator only when at least
        // f+1 answered: fewer could all be faulty ones saying the account is further on
        // than it is, and the wallet would sign for a slot no honest validator will vote in.
        let vouched = self.committee.max_faulty() + 1;
        if entries.len() < vouched {
            return Err(ClientError::Unreachable(format!(
                "{} of the {vouched} validators needed to read the account's next slot answered",
                entries.len()
            )));
        }
        let mut sequences: Vec<u64> = entries.iter().map(|e| e.next_sequence).collect();
        sequences.sort_unstable_by(|a, b| b.cmp(a));
        let sequence = sequences[vouched - 1];
        let state = NextSlot::of(
            entries,
            sequence,
            self.committee.size(),
            self.committee.quorum(),
        );
        Ok(SlotView { sequence, state })
    }

    /// Whether validator `i`'s refusal of `order` as a conflict is proven: it hands out
    /// another order the signer signed for the same slot. A first voter that claims a
    /// conflict it cannot show (a Byzantine one, or one not answering) is treated as
    /// silent, so that it cannot block the account by refusing every order. An
    /// introduction's refusal is taken as it is (its votes do not depend on which proof of
    /// work came with it, so two cannot split its slot).
    pub(super) async fn conflict_proven(&self, i: usize, order: &SignedOrder) -> bool {
        let Some(sequence) = order.order.sequence() else {
            return true;
        };
        let Some(account) = order.order.signer() else {
            return true;
        };
        let request = Packet::ReqHeldOrder(HeldOrderRequest { account });
        match self.call(i, &request).await {
            Ok(Packet::RespHeldOrder(held)) => held.order.is_some_and(|other| {
                held.account == account
                    && other.order.signer() == Some(account)
                    && other.order.sequence() == Some(sequence)
                    && other.order != order.order
                    && other.verify(&self.network)
            }),
            _ => false,
        }
    }

    /// The signed orders validators hold votes for in `account`'s slot `sequence`, each
    /// checked (signed by the account, for that slot), with how many validators hold it,
    /// most held first (ties by digest). A lock kept by an earlier build of the validator
    /// has no order, so a held vote may come without one.
    pub async fn held_orders(
        &self,
        account: &AccountId,
        sequence: u64,
    ) -> Vec<(SignedOrder, usize)> {
        let request = Packet::ReqHeldOrder(HeldOrderRequest { account: *account });
        let answers = self
            .each(|i| {
                let request = &request;
                async move {
                    match self.call(i, request).await? {
                        Packet::RespHeldOrder(held) => Ok(held),
                        Packet::Error(error) => Err(ClientError::Refused(error)),
                        other => Err(ClientError::Unexpected(other.name())),
                    }
                }
            })
            .await;
        let mut found: Vec<(SignedOrder, usize)> = Vec::new();
        for held in answers.into_iter().filter_map(|a| a.result.ok()) {
            let Some(order) = held.order else { continue };
            let genuine = held.account == *account
                && order.order.signer() == Some(*account)
                && order.order.sequence() == Some(sequence)
                && order.verify(&self.network);
            if !genuine {
                continue;
            }
            match found.iter_mut().find(|(known, _)| *known == order) {
                Some((_, count)) => *count += 1,
                None => found.push((order, 1)),
            }
        }
        // Most held first; ties by digest, so every copy of the key ranks them alike.
        found.sort_by_cached_key(|(order, count)| {
            (std::cmp::Reverse(*count), order.order.digest(&self.network))
        });
        found
    }

    /// Up to `limit` certificates that moved `account`'s balance, in log order from position
    /// `since`, from the first validator that has any (each one verified against the
    /// committee): an account's history, as an explorer shows it.
    pub async fn history(
        &self,
        account: &AccountId,
        since: u64,
        limit: u32,
    ) -> Vec<tally_proto::quorum::LoggedCertificate> {
        let query = CertQuery::Touching {
            account: *account,
            since,
            limit: limit.min(CertQuery::MAX_LIMIT),
        };
        for source in 0..self.contract.validators.len() {
            let page = self.fetch(source, query.clone()).await;
            if !page.is_empty() {
                return page;
            }
        }
        Vec::new()
    }

    /// The certificate of the order `account` signed for slot `sequence`, from the first
    /// validator that has one that verifies: what settled a slot the account moved past.
    pub async fn sent_certificate(
        &self,
        account: &AccountId,
        sequence: u64,
    ) -> Option<Certificate> {
        let query = CertQuery::Sent {
            account: *account,
            from: sequence,
            limit: 1,
        };
        for source in 0..self.contract.validators.len() {
            let found = self
                .fetch(source, query.clone())
                .await
                .into_iter()
                .map(|logged| logged.certificate)
                // Pages hold only certificates that verify (`fetch` checks them).
                .find(|c| c.order.spender() == Some((*account, sequence)));
            if found.is_some() {
                return found;
            }
        }
        None
    }
}
