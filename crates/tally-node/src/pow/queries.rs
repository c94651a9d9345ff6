//! What wallets ask a miner (`REQ_ACCOUNT`, `REQ_LEDGER`, `REQ_TX_STATUS`, `REQ_ESCROW`), answered from
//! the chain at its tip. Each but `REQ_LEDGER` (a [`LedgerSnapshot`] per tip) takes the
//! chain lock's guard; the daemon calls them on a
//! blocking thread, since a block commit or a reorganisation may hold the lock a while.

use tally_chain::{Chain, Transaction};
use tally_core::{AccountId, Amount};

use tally_proto::pow::{
    ChainEscrowView, LedgerAccount, MAX_LEDGER_PAGE, ReqLedger, RespAccount, RespLedger,
    RespTxStatus, Tip,
};
use tally_proto::quorum::{EscrowQuery, EscrowStanding};

/// An account's state at the tip with its pending spends, transfers and splits alike
/// (`REQ_ACCOUNT`'s answer).
pub fn account(chain: &Chain, account: &AccountId) -> RespAccount {
    let state = chain.account(account);
    let pending = chain.mempool().pending_for(account);
    let next_sequence = pending
        .iter()
        .filter_map(|tx| tx.order.sequence().map(|sequence| sequence + 1))
        .max()
        .unwrap_or(state.next_sequence)
        .max(state.next_sequence);
    RespAccount {
        account: *account,
        balance: state.balance,
        sequence: state.next_sequence,
        next_sequence,
        pending_out: chain.mempool().pending_outgoing(account),
        pending_in: chain.mempool().pending_incoming(account),
        tip: chain.tip().into(),
    }
}

/// Every account at one tip, in account order: what `REQ_LEDGER` pages are cut from. It is
/// taken once per tip (the accounts copied under the chain lock, sorted outside it), so a
/// peer asking for pages as fast as it can costs the chain lock nothing after the first,
/// and each page is a binary search and a copy of the page.
pub struct LedgerSnapshot {
    tip: Tip,
    supply: Amount,
    accounts: Vec<(AccountId, u64, u64)>,
}

impl LedgerSnapshot {
    /// The part taken under the chain lock: one pass copying the accounts.
    pub fn copy(chain: &Chain) -> (Tip, Amount, Vec<(AccountId, u64, u64)>) {
        let accounts = chain
            .accounts()
            .iter()
            .map(|(account, state)| (*account, state.balance.microcash(), state.next_sequence))
            .collect();
        (
            chain.tip().into(),
            chain.supply().unwrap_or(Amount::ZERO),
            accounts,
        )
    }

    /// The snapshot of what [`LedgerSnapshot::copy`] took (sorting happens here).
    pub fn sorted(
        tip: Tip,
        supply: Amount,
        mut accounts: Vec<(AccountId, u64, u64)>,
    ) -> LedgerSnapshot {
        accounts.sort_unstable_by_key(|(account, ..)| *account);
        LedgerSnapshot {
            tip,
            supply,
            accounts,
        }
    }

    /// The tip it was taken at.
    pub fn tip(&self) -> Tip {
        self.tip
    }

    /// A page after `request.after`, at most `request.limit` accounts.
    pub fn page(&self, request: &ReqLedger) -> RespLedger {
        let limit = request.limit.clamp(1, MAX_LEDGER_PAGE) as usize;
        let start = match request.after {
            Some(after) => self
                .accounts
                .partition_point(|(account, ..)| *account <= after),
            None => 0,
        };
        let page = self.accounts.get(start..).unwrap_or_default();
        let page = page.get(..limit).unwrap_or(page);
        let more = start + page.len() < self.accounts.len();
        RespLedger {
            tip: self.tip,
            supply: self.supply,
            total: self.accounts.len() as u64,
            accounts: page
                .iter()
                .map(|(account, balance, sequence)| LedgerAccount {
                    account: *account,
                    balance: Amount::from_microcash(*balance),
                    sequence: *sequence,
                })
                .collect(),
            next: if more {
                page.last().map(|(account, ..)| *account)
            } else {
                None
            },
        }
    }
}

/// What became of `transaction` (`REQ_TX_STATUS`'s answer).
pub fn transaction_status(chain: &Chain, transaction: &Transaction) -> RespTxStatus {
    RespTxStatus {
        id: transaction.id(),
        status: chain.transaction_status(transaction),
        tip: chain.tip().into(),
    }
}

/// What this miner knows of an escrow (`REQ_ESCROW`'s answer). By hash lock, the secret is
/// answered even when no escrow of this chain uses it: a wire's two escrows share it, and a
/// claim seen on this network's mempool may be the only place it showed.
pub fn escrow(chain: &Chain, query: &EscrowQuery) -> ChainEscrowView {
    let (id, hash_lock) = match query {
        EscrowQuery::Id(id) => (Some(*id), chain.escrow(id).map(|e| e.lock.hash_lock)),
        EscrowQuery::HashLock(hash_lock) => {
            (chain.escrow_by_hash_lock(hash_lock), Some(*hash_lock))
        }
    };
    let state = id.and_then(|id| chain.escrow(&id));
    let depth = id.and_then(|id| chain.escrow_depth(&id));
    ChainEscrowView {
        escrow: state.and(id),
        lock: state.map(|e| e.lock),
        standing: state.map(|e| EscrowStanding::from(e.settlement)),
        lock_status: depth.map(|(lock, _)| lock),
        lock_transaction: id
            .and_then(|id| chain.escrow_lock_transaction(&id))
            .map(|(_, tx)| tx),
        settled_status: depth.and_then(|(_, settled)| settled),
        pending: id.and_then(|id| chain.mempool().settlement(&id).cloned()),
        secret: hash_lock.and_then(|h| chain.secret_for(&h)),
        tip: chain.tip().into(),
        median_time_ms: chain.median_time(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tally_chain::ChainConfig;
    use tally_core::{Allocation, Mode, NetworkContract, PowParams, SecretKey};

    /// A chain whose genesis funds `funded` accounts with 1..=n cash.
    fn chain(dir: &std::path::Path, funded: usize) -> Chain {
        let contract = NetworkContract {
            name: "queries".into(),
            mode: Mode::Pow,
            unit: "cash".into(),
            faucet: Amount::ZERO,
            intro_pow_bits: 4,
            validators: vec![],
            tracker: None,
            max_clock_skew_ms: None,
            genesis: (0..funded)
                .map(|i| Allocation {
                    account: SecretKey::generate().account(),
                    amount: Amount::from_microcash(1_000_000 * (i as u64 + 1)),
                })
                .collect(),
            pow: Some(PowParams {
                initial_bits: 1,
                block_time_ms: 1000,
                retarget_window: 0,
                block_reward: Amount::from_microcash(50_000_000),
                max_block_transactions: 10,
                max_block_bytes: 100_000,
            }),
        };
        Chain::open(&dir.join("chain.redb"), &contract, ChainConfig::default()).unwrap()
    }

    /// Pages walk every account once, in account order, and the last says there is no more.
    #[test]
    fn ledger_pages_walk_every_account_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let chain = chain(dir.path(), 5);
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (tip, supply, accounts) = LedgerSnapshot::copy(&chain);
            let page =
                LedgerSnapshot::sorted(tip, supply, accounts).page(&ReqLedger { after, limit: 2 });
            assert_eq!(page.total, 5);
            assert!(page.accounts.len() <= 2);
            seen.extend(page.accounts.iter().map(|entry| entry.account));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let mut expected: Vec<AccountId> = chain.accounts().keys().copied().collect();
        expected.sort();
        assert_eq!(seen, expected);
        let first = expected[0];
        let answer = account(&chain, &first);
        assert_eq!(answer.balance, chain.account(&first).balance);
        assert_eq!((answer.sequence, answer.next_sequence), (0, 0));
    }
}
