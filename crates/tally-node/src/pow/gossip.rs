//! Transaction gossip decisions, sans-I/O: which relayed transactions are new to us
//! ([`GossipDedup`]), and what the mempool's answers to them mean for the relay and for the
//! peer that sent them ([`GossipVerdict`]).
//!
//! Rules: a transaction is checked once; gossip is relayed once, and only what we took into
//! the mempool. A transaction refused for a reason that may pass once the tip moves
//! ([`is_transient`]) is forgotten from the dedup set when it does, so that gossip can bring
//! it again; the rest stay seen until the set forgets them. A peer is scored only for what
//! an honest miner never relays (a bad signature, a zero amount): the other refusals are a
//! race with a block or another transaction, nobody's fault.

use std::collections::HashSet;

use tally_chain::{Transaction, TxRejected};
use tally_core::Digest;

use crate::pow::sync::Seen;

/// Transaction ids remembered as seen.
const SEEN_CAPACITY: usize = 200_000;
/// Gossiped transactions refused for a transient reason remembered for a retry at most;
/// beyond it they stay seen until the dedup set forgets them.
const MAX_TRANSIENT_REFUSALS: usize = 10_000;

/// The transactions seen through gossip or from wallets, and those among them refused for
/// now.
#[derive(Clone, Debug)]
pub struct GossipDedup {
    seen: Seen<Digest>,
    /// Seen ids refused for a transient reason: forgotten from `seen` when the tip moves.
    refused_for_now: HashSet<Digest>,
    max_refused_for_now: usize,
}

impl Default for GossipDedup {
    fn default() -> Self {
        GossipDedup::new(SEEN_CAPACITY, MAX_TRANSIENT_REFUSALS)
    }
}

impl GossipDedup {
    /// Remembers `capacity` ids, of which at most `max_refused_for_now` for a retry.
    pub fn new(capacity: usize, max_refused_for_now: usize) -> Self {
        GossipDedup {
            seen: Seen::new(capacity),
            refused_for_now: HashSet::new(),
            max_refused_for_now,
        }
    }

    /// Records `id` as seen; `true` if it is new.
    pub fn insert(&mut self, id: Digest) -> bool {
        self.seen.insert(id)
    }

    /// The transactions of `relayed` not seen before, now seen.
    pub fn fresh(&mut self, relayed: Vec<Transaction>) -> Vec<Transaction> {
        relayed
            .into_iter()
            .filter(|tx| self.seen.insert(tx.id()))
            .collect()
    }

    /// Whether `id` counts as seen.
    pub fn contains(&self, id: &Digest) -> bool {
        self.seen.contains(id)
    }

    /// Marks seen ids refused for a reason that may pass once the tip moves (up to the
    /// bound; the rest stay seen).
    pub fn refused_for_now(&mut self, ids: impl IntoIterator<Item = Digest>) {
        for id in ids {
            if self.refused_for_now.len() >= self.max_refused_for_now {
                break;
            }
            self.refused_for_now.insert(id);
        }
    }

    /// The tip moved: the transactions refused for now may be taken again, so they count
    /// as new. Returns how many.
    pub fn tip_moved(&mut self) -> usize {
        let retry = std::mem::take(&mut self.refused_for_now);
        for id in &retry {
            self.seen.forget(id);
        }
        retry.len()
    }
}

/// What the mempool's answers to a gossiped batch mean.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GossipVerdict {
    /// Taken into the mempool: relayed to the other miners.
    pub accepted: Vec<Transaction>,
    /// Refused for a reason that may pass once the tip moves.
    pub refused_for_now: Vec<Digest>,
    /// Whether the sender relayed something an honest miner never accepts: it is scored.
    pub faulty: bool,
}

impl GossipVerdict {
    /// Judges `fresh` by the mempool's `results` (one each, in order).
    pub fn judge(fresh: Vec<Transaction>, results: Vec<Result<(), TxRejected>>) -> Self {
        let mut verdict = GossipVerdict::default();
        for (tx, result) in fresh.into_iter().zip(results) {
            match result {
                Ok(()) => verdict.accepted.push(tx),
                // Never accepted by an honest miner, so never relayed by one.
                Err(
                    TxRejected::BadSignature
                    | TxRejected::ZeroAmount
                    | TxRejected::NotASpend { .. }
                    | TxRejected::MalformedSplit(_),
                ) => verdict.faulty = true,
                // A race with a block or another transaction: nobody's fault.
                Err(reason) => {
                    tracing::debug!(%reason, "relayed transaction not taken");
                    if is_transient(&reason) {
                        verdict.refused_for_now.push(tx.id());
                    }
                }
            }
        }
        verdict
    }
}

/// Whether a transaction refused for `reason` may be taken once the tip moves: its sender
/// may be funded by a block, the mempool may drain, the sender's earlier sequences may be
/// mined. These stay in the gossip dedup only until the tip moves; the rest (stale
/// sequences, duplicates, conflicts with a pending transaction) never pass on this tip's
/// descendants and stay seen.
pub fn is_transient(reason: &TxRejected) -> bool {
    matches!(
        reason,
        TxRejected::InsufficientFunds { .. }
            | TxRejected::TooFarAhead { .. }
            | TxRejected::AccountFull(_)
            | TxRejected::MempoolFull(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::{Amount, SecretKey, Transfer};

    fn tx(sequence: u64) -> Transaction {
        let key = SecretKey::from_bytes([3; 32]);
        Transaction::sign(
            Transfer {
                sender: key.account(),
                recipient: SecretKey::from_bytes([4; 32]).account(),
                amount: Amount::from_microcash(1 + sequence),
                sequence,
            },
            &key,
            &tally_core::NetworkId(tally_core::Digest::default()),
        )
    }

    /// Relayed twice, checked once; refused for now, new again once the tip moves; the
    /// retry list is bounded.
    #[test]
    fn gossip_is_fresh_once_and_again_after_the_tip_moves_if_refused_for_now() {
        let mut dedup = GossipDedup::new(100, 1);
        let (a, b) = (tx(0), tx(1));
        let both = vec![a.clone(), b.clone()];
        assert_eq!(dedup.fresh(both.clone()), both);
        assert!(dedup.fresh(both.clone()).is_empty(), "seen already");
        dedup.refused_for_now([a.id(), b.id()]);
        assert_eq!(dedup.tip_moved(), 1, "one retry at most");
        assert_eq!(
            dedup.fresh(both),
            vec![a.clone()],
            "a may pass now; b stays seen"
        );
        assert_eq!(dedup.tip_moved(), 0);
        assert!(dedup.contains(&a.id()));
    }

    /// Accepted ones are relayed; a bad signature or a zero amount scores the sender; a
    /// shortfall may pass later; a stale sequence never will and is nobody's fault.
    #[test]
    fn the_mempool_answers_decide_relay_retry_and_blame() {
        let txs = vec![tx(0), tx(1), tx(2), tx(3)];
        let shortfall = TxRejected::InsufficientFunds {
            available: Amount::ZERO,
            amount: Amount::from_microcash(5),
        };
        let verdict = GossipVerdict::judge(
            txs.clone(),
            vec![
                Ok(()),
                Err(shortfall),
                Err(TxRejected::StaleSequence { next: 5, got: 2 }),
                Ok(()),
            ],
        );
        assert_eq!(verdict.accepted, vec![txs[0].clone(), txs[3].clone()]);
        assert_eq!(verdict.refused_for_now, vec![txs[1].id()]);
        assert!(!verdict.faulty);
        let forged =
            GossipVerdict::judge(vec![txs[0].clone()], vec![Err(TxRejected::BadSignature)]);
        assert!(forged.faulty && forged.accepted.is_empty());
        assert!(!is_transient(&TxRejected::ZeroAmount));
        // A malformed split, like an `IntroKey`, is never relayed by an honest miner.
        for never in [
            TxRejected::MalformedSplit(tally_core::SplitError::DuplicateRecipient),
            TxRejected::NotASpend { kind: "IntroKey" },
        ] {
            let verdict = GossipVerdict::judge(vec![txs[0].clone()], vec![Err(never)]);
            assert!(verdict.faulty && verdict.accepted.is_empty());
        }
    }
}
