//! Transactions into the mempool, checked against the tip's accounts.

use tally_core::SignedOrder;

use super::Chain;
use crate::block::Transaction;
use crate::checks::{CheckedTransactions, check_transactions};
use crate::error::TxRejected;
use crate::spend::Effect;
use crate::store::ChainStore;

impl<S: ChainStore> Chain<S> {
    /// Takes a signed order into the mempool (`PUSH_TRANSACTION` / `TRANSACTION`).
    pub fn submit_order(&mut self, order: SignedOrder) -> Result<Transaction, TxRejected> {
        let tx = Transaction::from(order);
        self.submit_transaction(tx.clone())?;
        Ok(tx)
    }

    /// Takes a transaction into the mempool after checking that the chain takes its kind
    /// (a transfer, a well-formed split or escrow lock, an escrow's claim or refund), its
    /// signature, and then against the tip: a spend's sequence and the sender's funds, a
    /// lock's deadline and hash lock, a settlement's escrow and the next block's height.
    pub fn submit_transaction(&mut self, tx: Transaction) -> Result<(), TxRejected> {
        if self.is_pending(&tx) {
            return Err(TxRejected::Duplicate);
        }
        let valid = tx.to_signed_order().verify(&self.params.network);
        self.admit(tx, valid)
    }

    /// Admits `tx`, whose signature check gave `signature_ok`.
    /// A settlement's "signature" is exactly `Signature::NONE`; the check gave `signature_ok`
    /// by that rule too.
    fn admit(&mut self, tx: Transaction, signature_ok: bool) -> Result<(), TxRejected> {
        let effect = Effect::of(&tx, &self.params.network)?;
        if !signature_ok {
            return Err(TxRejected::BadSignature);
        }
        let sender = match effect {
            Effect::Settle(settle) => return self.submit_settlement(tx, settle),
            Effect::Spend { spend, .. } => spend.sender,
        };
        self.admit_lock(&tx)?;
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
            .map(|(tx, ok)| self.admit(tx, ok))
            .collect()
    }
}
