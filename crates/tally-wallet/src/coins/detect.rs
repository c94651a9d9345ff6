//! Detect (DESIGN §7): ask every validator about a coin and grade it. Changes nothing.

use std::collections::HashMap;

use serde::Serialize;
use tally_core::{AccountId, Amount, Denomination, OrderDigest};
use tally_proto::{LedgerEntry, LedgerRequest};

use crate::QuorumClient;

/// What the validators say about a coin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Grade {
    /// Every validator agrees it holds its denomination, unspent, no vote held elsewhere.
    Authentic,
    /// A quorum agrees, but some validators lag: spendable, and `fix` helps the laggards.
    Fracked,
    /// A quorum says it holds nothing, or a spend of it is applied, or another order holds
    /// a quorum of votes for its slot.
    Counterfeit,
    /// Its slot is split between orders so that ours can no longer gather a quorum.
    Frozen,
    /// Too few answers to tell, or another order's votes on its slot with the race still
    /// open: not counted; ask again.
    Limbo,
}

/// One coin's detection: the grade and the counts behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub account: AccountId,
    pub denomination: Denomination,
    pub grade: Grade,
    /// Validators that see it holding its denomination, unspent, with no foreign vote.
    pub good: usize,
    /// Validator indices (in the contract) that answered but have not seen it funded.
    pub lagging: Vec<usize>,
    /// Validators that applied a spend of it.
    pub spent: usize,
    /// Validators that hold a vote for an order this wallet did not make.
    pub contested: usize,
    /// Validators that did not answer.
    pub unanswered: usize,
    /// What the key holds, unspent, where a quorum agrees (on a chain, the miner's
    /// confirmed balance): a key holding some other amount than its denomination (a join
    /// cut short) is still worth that much to its owner.
    pub held: Option<Amount>,
}

impl Detection {
    /// Nothing heard about the coin yet: no answer counted, graded Limbo.
    pub(super) fn unheard(account: AccountId, denomination: Denomination) -> Detection {
        Detection {
            account,
            denomination,
            grade: Grade::Limbo,
            good: 0,
            lagging: Vec::new(),
            spent: 0,
            contested: 0,
            unanswered: 0,
            held: None,
        }
    }
}

/// How one validator sees one coin.
enum Seen {
    Good,
    Empty,
    Spent,
    Contested,
    Odd,
}

fn seen(entry: &LedgerEntry, denomination: Denomination, own: Option<&OrderDigest>) -> Seen {
    if let Some(locked) = &entry.locked
        && Some(locked) != own
    {
        return Seen::Contested;
    }
    if entry.next_sequence > 0 {
        return Seen::Spent;
    }
    match entry.balance {
        0 => Seen::Empty,
        b if b == i128::from(denomination.amount().microcash()) => Seen::Good,
        _ => Seen::Odd,
    }
}

/// Grades `coins` (account and denomination) by every validator's signed view. `own` maps
/// a coin to the order this wallet journaled for it, whose votes are not foreign.
pub async fn detect(
    client: &QuorumClient,
    coins: &[(AccountId, Denomination)],
    own: &HashMap<AccountId, OrderDigest>,
) -> Vec<Detection> {
    let committee = client.committee();
    let (n, quorum, faulty) = (committee.size(), committee.quorum(), committee.max_faulty());
    let mut out = Vec::with_capacity(coins.len());
    for batch in coins.chunks(LedgerRequest::MAX_ACCOUNTS) {
        let request = LedgerRequest {
            accounts: Some(batch.iter().map(|(account, _)| *account).collect()),
            ..LedgerRequest::default()
        };
        let views: Vec<_> = client
            .ledger_all(&request)
            .await
            .into_iter()
            .map(|answer| answer.result.ok())
            .collect();
        for (account, denomination) in batch {
            let mut d = Detection::unheard(*account, *denomination);
            let mut empty = 0;
            let mut balances: HashMap<i128, usize> = HashMap::new();
            for (i, view) in views.iter().enumerate() {
                let Some(view) = view else {
                    d.unanswered += 1;
                    continue;
                };
                let entry = view.ledger.get(account).copied().unwrap_or_default();
                let seen = seen(&entry, *denomination, own.get(account));
                if matches!(seen, Seen::Good | Seen::Odd) {
                    *balances.entry(entry.balance).or_default() += 1;
                }
                match seen {
                    Seen::Good => d.good += 1,
                    Seen::Empty => {
                        empty += 1;
                        d.lagging.push(i);
                    }
                    Seen::Spent => d.spent += 1,
                    Seen::Contested => d.contested += 1,
                    Seen::Odd => d.lagging.push(i),
                }
            }
            d.held = balances
                .into_iter()
                .find(|(_, count)| *count >= quorum)
                .and_then(|(balance, _)| u64::try_from(balance).ok())
                .map(Amount::from_microcash);
            d.grade = grade(&d, empty, n, quorum, faulty);
            out.push(d);
        }
    }
    out
}

/// The grade the counts of `d` give, with `empty` of its laggards seeing no funds at all,
/// on a committee of `n` with this quorum and at most `faulty` faulty members.
fn grade(d: &Detection, empty: usize, n: usize, quorum: usize, faulty: usize) -> Grade {
    if d.spent > faulty || d.contested >= quorum || empty >= quorum {
        // An honest validator applied a spend, another order holds a quorum, or a quorum
        // never saw it funded.
        Grade::Counterfeit
    } else if d.contested > 0 {
        // Someone else signed for its slot: never counted, whoever may still win.
        if d.good + d.unanswered + d.lagging.len() < quorum {
            Grade::Frozen
        } else {
            Grade::Limbo
        }
    } else if d.good >= quorum {
        if d.good == n {
            Grade::Authentic
        } else {
            Grade::Fracked
        }
    } else {
        Grade::Limbo
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::sha256;

    fn entry(balance: i128, next_sequence: u64, locked: Option<OrderDigest>) -> LedgerEntry {
        LedgerEntry {
            balance,
            next_sequence,
            introduced: false,
            locked,
        }
    }

    #[test]
    fn a_vote_held_for_an_order_we_did_not_make_is_never_good() {
        let ours = sha256(&[b"ours"]);
        let theirs = sha256(&[b"theirs"]);
        let five = 5_000_000;
        let d = Denomination::Five;
        assert!(matches!(seen(&entry(five, 0, None), d, None), Seen::Good));
        assert!(matches!(
            seen(&entry(five, 0, Some(ours)), d, Some(&ours)),
            Seen::Good
        ));
        assert!(matches!(
            seen(&entry(five, 0, Some(theirs)), d, Some(&ours)),
            Seen::Contested
        ));
        assert!(matches!(
            seen(&entry(five, 0, Some(theirs)), d, None),
            Seen::Contested
        ));
        assert!(matches!(seen(&entry(0, 1, None), d, None), Seen::Spent));
        assert!(matches!(seen(&entry(0, 0, None), d, None), Seen::Empty));
        assert!(matches!(seen(&entry(4, 0, None), d, None), Seen::Odd));
    }
}

#[cfg(test)]
mod grading {
    use super::*;

    fn counts(good: usize, lagging: usize, spent: usize, contested: usize) -> Detection {
        Detection {
            account: tally_core::SecretKey::from_bytes([7; 32]).account(),
            denomination: Denomination::One,
            grade: Grade::Limbo,
            good,
            lagging: (0..lagging).collect(),
            spent,
            contested,
            unanswered: 4 - good - lagging - spent - contested,
            held: None,
        }
    }

    /// Four validators: a quorum is 3, at most 1 faulty.
    #[test]
    fn grades_on_four_validators() {
        let g = |d: Detection, empty| grade(&d, empty, 4, 3, 1);
        assert_eq!(g(counts(4, 0, 0, 0), 0), Grade::Authentic);
        assert_eq!(g(counts(3, 1, 0, 0), 1), Grade::Fracked);
        assert_eq!(
            g(counts(3, 0, 0, 0), 0),
            Grade::Fracked,
            "one did not answer"
        );
        assert_eq!(g(counts(2, 0, 0, 0), 0), Grade::Limbo, "too few answers");
        assert_eq!(g(counts(0, 3, 0, 0), 3), Grade::Counterfeit, "never funded");
        assert_eq!(
            g(counts(2, 0, 2, 0), 0),
            Grade::Counterfeit,
            "a spend is applied"
        );
        assert_eq!(
            g(counts(3, 0, 1, 0), 0),
            Grade::Fracked,
            "one faulty claim is not enough"
        );
        assert_eq!(
            g(counts(3, 0, 0, 1), 0),
            Grade::Limbo,
            "a foreign vote: not counted"
        );
        assert_eq!(g(counts(2, 0, 0, 2), 0), Grade::Frozen, "split slot");
        assert_eq!(
            g(counts(1, 0, 0, 3), 0),
            Grade::Counterfeit,
            "another order holds a quorum"
        );
    }
}
