//! What the validators of a quorum network say about one account or the whole ledger, and
//! how many of them say the same: each validator answers from its own signed view, and a
//! wallet trusts what a quorum agrees on.

use std::collections::BTreeMap;

use tally_core::{AccountId, Digest};
pub use tally_proto::quorum::NextSlot;
use tally_proto::{LedgerEntry, LedgerRequest, LedgerView};

use crate::client::{QuorumClient, ValidatorAnswer};
use crate::ops::OpError;

/// One account as the validators see it.
#[derive(Clone, Debug)]
pub struct BalanceViews {
    /// The account.
    pub account: AccountId,
    /// The balance (microcash; below zero only on a validator missing credits) that most
    /// validators report.
    pub balance: i128,
    /// The next sequence those validators report with it.
    pub next_sequence: u64,
    /// How many validators report exactly that balance and sequence.
    pub agree: usize,
    /// Each validator's entry for the account (an account it never saw is an empty entry).
    pub views: Vec<ValidatorAnswer<LedgerEntry>>,
    /// Where its next lock slot stands, by the votes held for it.
    pub next_slot: NextSlot,
}

/// Asks every validator for `account` and finds the balance and sequence most of them
/// report (the highest such pair when counts tie).
pub async fn balance(client: &QuorumClient, account: &AccountId) -> Result<BalanceViews, OpError> {
    balances(client, std::slice::from_ref(account))
        .await
        .pop()
        .ok_or(OpError::NoValidatorAnswered)?
}

/// [`balance`] for each of `accounts`, in their order, asking each validator once for all
/// of them (in requests of at most [`LedgerRequest::MAX_ACCOUNTS`]): a wallet of many
/// accounts costs a validator one request, not one per account.
pub async fn balances(
    client: &QuorumClient,
    accounts: &[AccountId],
) -> Vec<Result<BalanceViews, OpError>> {
    let mut out = Vec::with_capacity(accounts.len());
    for chunk in accounts.chunks(LedgerRequest::MAX_ACCOUNTS) {
        let request = LedgerRequest {
            accounts: Some(chunk.to_vec()),
            ..LedgerRequest::default()
        };
        let answers = client.ledger_all(&request).await;
        for account in chunk {
            let views: Vec<ValidatorAnswer<LedgerEntry>> = answers
                .iter()
                .map(|answer| ValidatorAnswer {
                    validator: answer.validator,
                    address: answer.address.clone(),
                    result: answer
                        .result
                        .as_ref()
                        .map(|view| view.ledger.get(account).copied().unwrap_or_default())
                        .map_err(Clone::clone),
                })
                .collect();
            out.push(agreed(client, *account, views));
        }
    }
    out
}

/// The balance and sequence most of `views` report for `account`.
fn agreed(
    client: &QuorumClient,
    account: AccountId,
    views: Vec<ValidatorAnswer<LedgerEntry>>,
) -> Result<BalanceViews, OpError> {
    let mut counts: BTreeMap<(i128, u64), usize> = BTreeMap::new();
    for entry in views
        .iter()
        .filter_map(|answer| answer.result.as_ref().ok())
    {
        *counts
            .entry((entry.balance, entry.next_sequence))
            .or_default() += 1;
    }
    let ((balance, next_sequence), agree) =
        most_common(&counts).ok_or(OpError::NoValidatorAnswered)?;
    let committee = client.committee();
    let next_slot = NextSlot::of(
        views
            .iter()
            .filter_map(|answer| answer.result.as_ref().ok().copied()),
        next_sequence,
        committee.size(),
        committee.quorum(),
    );
    Ok(BalanceViews {
        account,
        balance,
        next_sequence,
        agree,
        views,
        next_slot,
    })
}

/// One validator's signed view of the whole ledger and its fingerprint.
#[derive(Clone, Debug)]
pub struct FingerprintedView {
    /// The view.
    pub view: LedgerView,
    /// Its fingerprint: equal fingerprints, equal views.
    pub fingerprint: Digest,
}

/// Every validator's view of the ledger.
#[derive(Clone, Debug)]
pub struct LedgerViews {
    /// Each validator's view, or why it gave none.
    pub views: Vec<ValidatorAnswer<FingerprintedView>>,
    /// How many validators hold the most common view (0 if none answered).
    pub agree: usize,
}

impl LedgerViews {
    /// The first view a validator gave, if any did.
    pub fn first(&self) -> Option<&LedgerView> {
        self.views
            .iter()
            .find_map(|answer| answer.result.as_ref().ok())
            .map(|fingerprinted| &fingerprinted.view)
    }
}

/// Asks every validator for its whole view of the ledger and counts how many hold the same.
pub async fn ledger(client: &QuorumClient) -> LedgerViews {
    let views: Vec<ValidatorAnswer<FingerprintedView>> = client
        .ledger_all(&LedgerRequest::default())
        .await
        .into_iter()
        .map(|answer| ValidatorAnswer {
            validator: answer.validator,
            address: answer.address,
            result: answer.result.map(|view| FingerprintedView {
                fingerprint: view.fingerprint(client.network()),
                view,
            }),
        })
        .collect();
    let mut counts: BTreeMap<Digest, usize> = BTreeMap::new();
    for view in views
        .iter()
        .filter_map(|answer| answer.result.as_ref().ok())
    {
        *counts.entry(view.fingerprint).or_default() += 1;
    }
    let agree = most_common(&counts).map_or(0, |(_, count)| count);
    LedgerViews { views, agree }
}

/// The key counted most often, the last in key order among equals.
fn most_common<K: Copy>(counts: &BTreeMap<K, usize>) -> Option<(K, usize)> {
    counts
        .iter()
        .max_by_key(|(_, count)| **count)
        .map(|(key, count)| (*key, *count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(next_sequence: u64, locked: Option<u8>) -> LedgerEntry {
        LedgerEntry {
            balance: 0,
            next_sequence,
            introduced: true,
            locked: locked.map(|b| Digest::from([b; 32])),
        }
    }

    /// Four validators, quorum 3: one order's votes are a slot in progress; two orders
    /// 2 and 2 can never reach 3: split; 2 and 1 with one validator free may still;
    /// a lagging validator's vote is for an older slot and does not count.
    #[test]
    fn the_next_slot_is_free_voting_contested_or_split() {
        let slot = |entries: Vec<LedgerEntry>| NextSlot::of(entries, 5, 4, 3);
        assert_eq!(slot(vec![entry(5, None); 4]), NextSlot::Free);
        assert_eq!(
            slot(vec![entry(5, Some(1)), entry(5, Some(1)), entry(5, None)]),
            NextSlot::Voting {
                order: Digest::from([1; 32]),
                votes: 2
            }
        );
        let a = Digest::from([1; 32]);
        let b = Digest::from([2; 32]);
        assert_eq!(
            slot(vec![
                entry(5, Some(1)),
                entry(5, Some(2)),
                entry(5, Some(1)),
                entry(5, Some(2))
            ]),
            NextSlot::Split {
                orders: vec![(a, 2), (b, 2)]
            }
        );
        assert_eq!(
            slot(vec![
                entry(5, Some(1)),
                entry(5, Some(2)),
                entry(5, Some(1))
            ]),
            NextSlot::Contested {
                orders: vec![(a, 2), (b, 1)]
            }
        );
        assert_eq!(
            slot(vec![entry(5, Some(1)), entry(4, Some(2)), entry(5, None)]),
            NextSlot::Voting { order: a, votes: 1 }
        );
    }

    #[test]
    fn the_most_common_view_wins_and_ties_go_to_the_last() {
        let counts = BTreeMap::from([((5i128, 1u64), 1), ((7, 2), 3), ((9, 2), 3)]);
        assert_eq!(most_common(&counts), Some(((9, 2), 3)));
        assert_eq!(most_common(&BTreeMap::<u8, usize>::new()), None);
    }
}
