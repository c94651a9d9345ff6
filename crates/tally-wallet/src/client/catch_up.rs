//! Bringing a lagging validator up to date: a validator that answers that a sequence is
//! ahead of it, that funds are missing or that a predecessor is missing is handed the
//! certificates it lacks, fetched from a validator that has them.

use tally_core::{AccountId, Certificate, EscrowClaim, EscrowRefund, Order};
use tally_proto::{CertQuery, ErrorCode, EscrowQuery, Hello, LedgerRequest, Packet};

use super::{ClientError, QuorumClient};

/// Pages of certificates fetched at most to bring one validator up to date.
const MAX_CATCH_UP_PAGES: usize = 8;

impl QuorumClient {
    /// Brings validator `i` up to date on `order`'s signer: its earlier orders, then (for a
    /// payment) the credits that fund it. True if anything was pushed.
    pub(super) async fn catch_up(&self, i: usize, order: &Order) -> bool {
        let Some(source) = self.source_for(i).await else {
            return false;
        };
        let Some(account) = self.predecessor_account(source, order).await else {
            return false;
        };
        let request = LedgerRequest {
            accounts: Some(vec![account]),
            ..LedgerRequest::default()
        };
        let Ok(view) = self.ledger(i, &request).await else {
            return false;
        };
        let lagging = view.ledger.get(&account).copied().unwrap_or_default();
        let mut pushed = self
            .push_sent(source, i, &account, lagging.next_sequence)
            .await;
        // What a payment spends, in all (an introduction spends nothing).
        let spends: i128 = order
            .payments()
            .iter()
            .map(|payment| i128::from(payment.amount.microcash()))
            .sum();
        if spends > 0 {
            let Ok(view) = self.ledger(i, &request).await else {
                return pushed > 0;
            };
            let balance = view.ledger.get(&account).map_or(0, |e| e.balance);
            if balance < spends {
                pushed += self.push_touching(source, i, &account).await;
            }
        }
        tracing::info!(validator = %self.contract.validators[i].key.short(), pushed, "pushed missing certificates");
        pushed > 0
    }

    /// A validator other than `i` that answers.
    async fn source_for(&self, i: usize) -> Option<usize> {
        for j in (0..self.contract.validators.len()).filter(|j| *j != i) {
            if self
                .call(
                    j,
                    &Packet::Hello(Hello {
                        network: self.network,
                        validator: None,
                        address: None,
                        certificates: None,
                    }),
                )
                .await
                .is_ok()
            {
                return Some(j);
            }
        }
        None
    }

    async fn push_sent(
        &self,
        source: usize,
        target: usize,
        account: &AccountId,
        from: u64,
    ) -> usize {
        let mut pushed = 0;
        let mut from = from;
        for _ in 0..MAX_CATCH_UP_PAGES {
            let page = self
                .fetch(
                    source,
                    CertQuery::Sent {
                        account: *account,
                        from,
                        limit: CertQuery::MAX_LIMIT,
                    },
                )
                .await;
            if page.is_empty() {
                break;
            }
            for logged in &page {
                if let Some(sequence) = logged.certificate.order.sequence() {
                    from = sequence + 1;
                }
                if matches!(self.push(target, &logged.certificate).await, Ok(ack) if ack.new) {
                    pushed += 1;
                }
            }
        }
        pushed
    }

    async fn push_touching(&self, source: usize, target: usize, account: &AccountId) -> usize {
        let mut pushed = 0;
        let mut since = 0;
        for _ in 0..MAX_CATCH_UP_PAGES {
            let page = self
                .fetch(
                    source,
                    CertQuery::Touching {
                        account: *account,
                        since,
                        limit: CertQuery::MAX_LIMIT,
                    },
                )
                .await;
            let Some(last) = page.last() else { break };
            since = last.index + 1;
            for logged in &page {
                let cert = &logged.certificate;
                match self.push(target, cert).await {
                    Ok(ack) if ack.new => pushed += 1,
                    Err(ClientError::Refused(error))
                        if error.code == ErrorCode::MissingPredecessor =>
                    {
                        // The payer's own earlier orders are missing there too: push those first.
                        let Some(payer) = self.predecessor_account(source, &cert.order).await
                        else {
                            continue;
                        };
                        let request = LedgerRequest {
                            accounts: Some(vec![payer]),
                            ..LedgerRequest::default()
                        };
                        let from = match self.ledger(target, &request).await {
                            Ok(view) => view.ledger.get(&payer).map_or(0, |e| e.next_sequence),
                            Err(_) => continue,
                        };
                        pushed += self.push_sent(source, target, &payer, from).await;
                        if matches!(self.push(target, cert).await, Ok(ack) if ack.new) {
                            pushed += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
        pushed
    }

    /// Hands a certificate to validator `i`, first pushing the signer's earlier orders and
    /// the credits that fund it when `i` lacks them. True if `i` holds it afterwards.
    pub async fn push_with_history(&self, i: usize, certificate: &Certificate) -> bool {
        match self.push(i, certificate).await {
            Ok(_) => true,
            Err(ClientError::Refused(error))
                if matches!(
                    error.code,
                    ErrorCode::MissingPredecessor | ErrorCode::InsufficientFunds
                ) =>
            {
                self.catch_up(i, &certificate.order).await
                    && self.push(i, certificate).await.is_ok()
            }
            Err(_) => false,
        }
    }

    /// The account whose own orders must reach a validator before `order` can apply there:
    /// its signer; for an escrow's claim or refund, the payer whose lock opened the escrow
    /// (asked of validator `source`, and checked against the escrow's id).
    async fn predecessor_account(&self, source: usize, order: &Order) -> Option<AccountId> {
        match order {
            Order::EscrowClaim(EscrowClaim { escrow, .. })
            | Order::EscrowRefund(EscrowRefund { escrow }) => self
                .escrow_view(source, &EscrowQuery::Id(*escrow))
                .await
                .ok()?
                .lock
                .map(|lock| lock.payer),
            _ => order.signer(),
        }
    }
}
