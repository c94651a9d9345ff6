//! Bringing a lagging validator up to date: a validator that answers that a sequence is
//! ahead of it, that funds are missing or that a predecessor is missing is handed the
//! certificates it lacks, fetched from a validator that has them.

use tally_core::{AccountId, Certificate, EscrowClaim, EscrowId, EscrowRefund, Order};
use tally_proto::{CertQuery, ErrorCode, EscrowQuery, LedgerRequest};

use super::{ClientError, QuorumClient};

/// Pages of certificates fetched at most to bring one validator up to date.
const MAX_CATCH_UP_PAGES: usize = 8;

impl QuorumClient {
    /// Brings validator `i` up to date on `order`'s signer: its earlier orders, then (for a
    /// payment) the credits that fund it. True if anything was pushed.
    pub(super) async fn catch_up(&self, i: usize, order: &Order) -> bool {
        let sources = match order {
            // The escrow's lock must come first, from a validator that has applied it (most
            // may lag as much as `i` does).
            Order::EscrowClaim(EscrowClaim { escrow, .. })
            | Order::EscrowRefund(EscrowRefund { escrow }) => {
                self.escrow_source(i, escrow).await.into_iter().collect()
            }
            _ => match order.signer() {
                Some(account) => self
                    .account_sources(i, &account)
                    .await
                    .into_iter()
                    .map(|source| (source, account))
                    .collect(),
                None => Vec::new(),
            },
        };
        // The furthest source first; the next when one has nothing it can prove (a faulty
        // validator may claim to be ahead).
        for (source, account) in sources {
            if self.catch_up_from(source, i, order, &account).await {
                return true;
            }
        }
        false
    }

    /// Pushes validator `i` what it lacks of `account`'s orders (and credits, for an order
    /// that spends), fetched from `source`. True if anything was pushed, or if `i` is now
    /// ready for the order however it got there.
    async fn catch_up_from(
        &self,
        source: usize,
        i: usize,
        order: &Order,
        account: &AccountId,
    ) -> bool {
        let account = *account;
        let request = LedgerRequest {
            accounts: Some(vec![account]),
            ..LedgerRequest::default()
        };
        let Ok(view) = self.ledger(i, &request).await else {
            return false;
        };
        let lagging = view.ledger.get(&account).copied().unwrap_or_default();
        let pushed = if order.spender() == Some((account, lagging.next_sequence)) {
            0
        } else {
            self.push_sent(source, i, &account, lagging.next_sequence)
                .await
        };
        // What the order takes from the account, in all (an introduction takes nothing).
        let lock = match order {
            Order::EscrowLock(lock) => i128::from(lock.amount.microcash()),
            _ => 0,
        };
        let spends: i128 = lock
            + order
                .payments()
                .iter()
                .map(|payment| i128::from(payment.amount.microcash()))
                .sum::<i128>();
        // Read again: the certificates may have reached `i` from elsewhere meanwhile (another
        // request's catch-up pushing the same ones, or the order's own wallet), in which case
        // nothing counted as pushed here and yet `i` is where the order needs it.
        let Ok(view) = self.ledger(i, &request).await else {
            return pushed > 0;
        };
        let now = view.ledger.get(&account).copied().unwrap_or_default();
        let mut credits = 0;
        if spends > 0 && now.balance < spends {
            credits = self.push_touching(source, i, &account).await;
        }
        tracing::info!(validator = %self.contract.validators[i].key.short(), pushed = pushed + credits, "pushed missing certificates");
        if pushed + credits > 0 {
            return true;
        }
        match order {
            Order::EscrowClaim(EscrowClaim { escrow, .. })
            | Order::EscrowRefund(EscrowRefund { escrow }) => self
                .escrow_view(i, &EscrowQuery::Id(*escrow))
                .await
                .is_ok_and(|view| view.lock.is_some()),
            _ => order.spender() == Some((account, now.next_sequence)) && now.balance >= spends,
        }
    }

    /// A validator other than `i` that has applied `escrow`'s lock, and the lock's payer
    /// (whose orders bring `i` to the lock).
    async fn escrow_source(&self, i: usize, escrow: &EscrowId) -> Option<(usize, AccountId)> {
        for j in (0..self.contract.validators.len()).filter(|j| *j != i) {
            if let Ok(view) = self.escrow_view(j, &EscrowQuery::Id(*escrow)).await
                && let Some(lock) = view.lock
            {
                return Some((j, lock.payer));
            }
        }
        None
    }

    /// The validators other than `i` that answer, furthest along `account`'s orders first
    /// (several may lag as much as `i` does, and a lagging source has nothing to hand
    /// over). At most f + 1 of them: one is honest.
    async fn account_sources(&self, i: usize, account: &AccountId) -> Vec<usize> {
        let request = LedgerRequest {
            accounts: Some(vec![*account]),
            ..LedgerRequest::default()
        };
        let mut ahead: Vec<(u64, usize)> = self
            .ledger_all(&request)
            .await
            .into_iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .filter_map(|(j, answer)| {
                let view = answer.result.ok()?;
                Some((view.ledger.get(account).map_or(0, |e| e.next_sequence), j))
            })
            .collect();
        ahead.sort_by_key(|(next, j)| (std::cmp::Reverse(*next), *j));
        ahead
            .into_iter()
            .take(self.committee.max_faulty() + 1)
            .map(|(_, j)| j)
            .collect()
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
