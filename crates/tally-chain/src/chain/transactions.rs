//! Transactions into the mempool, checked against the tip's accounts.

use tally_core::SignedOrder;

use super::Chain;
use crate::block::Transaction;
use crate::checks::{CheckedTransactions, check_transactions};
use crate::error::TxRejected;
use crate::spend::Spend;
use crate::store::ChainStore;

impl<S: ChainStore> Chain<S> {
    /// Takes a signed order into the mempool (`PUSH_TRANSACTION` / `TRANSACTION`).
    pub fn submit_order(&mut self, order: SignedOrder) -> Result<Transaction, TxRejected> {
        let tx = Transaction::from(order);
        self.submit_transaction(tx.clone())?;
        Ok(tx)
    }

    /// Takes a transaction into the mempool after checking that it is a spend (a transfer
    /// or a well-formed split, the kinds a proof-of-work network takes), its signature,
    /// sequence and the sender's funds against the tip.
    pub fn submit_transaction(&mut self, tx: Transaction) -> Result<(), TxRejected> {
        let (sender, sequence) = {
            let spend = Spend::of(&tx)?;
            (spend.sender, spend.sequence)
        };
        if self.mempool.get(&sender, sequence) == Some(&tx) {
            return Err(TxRejected::Duplicate);
        }
        if !tx.to_signed_order().verify(&self.params.network) {
            return Err(TxRejected::BadSignature);
        }
        let state = self.account(&sender);
        self.mempool.insert(tx, state)
    }

    /// Takes many transactions at once, verifying their signatures in one batch (gossip
    /// arrives in bursts). `result[i]` is the fate of `txs[i]`.
    pub fn submit_transactions(&mut self, txs: Vec<Transaction>) -> Vec<Result<(), TxRejected>> {
        let checked = check_transactions(&self.params, &self.keys, txs);
        self.submit_checked(checked)
    }

    /// Takes transactions whose signatures [`check_transactions`] verified, so that a node
    /// can verify them without holding the chain (its lock would block every other user
    /// for the whole batch). `result[i]` is the fate of the `i`-th transaction.
    pub fn submit_checked(&mut self, checked: CheckedTransactions) -> Vec<Result<(), TxRejected>> {
        let CheckedTransactions {
            network,
            txs,
            valid,
        } = checked;
        if network != self.params.network {
            // Checked against another network's parameters: check again here.
            return self.submit_transactions(txs);
        }
        txs.into_iter()
            .zip(valid)
            .map(|(tx, ok)| {
                let sender = Spend::of(&tx)?.sender;
                if !ok {
                    return Err(TxRejected::BadSignature);
                }
                let state = self.account(&sender);
                self.mempool.insert(tx, state)
            })
            .collect()
    }
}
