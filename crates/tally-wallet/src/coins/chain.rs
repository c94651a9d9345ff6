//! Coins on a proof-of-work network: a coin is a key whose confirmed balance is its
//! denomination, and a spend is proven by its transaction buried under
//! [`Waiting::confirmations`] blocks. A miner answers for the chain it follows; the
//! wallet asks the first that answers, as the chain wallet does.

use std::collections::HashMap;

use tally_core::{
    AccountId, Amount, Certificate, Denomination, NetworkId, Order, OrderDigest, SignedOrder,
    Transaction, TxStatus,
};
use tally_proto::pow::RespAccount;

use super::detect::{Detection, Grade};
use super::ledger::{CoinLedger, NotSpent};
use super::{CoinOpError, CoinStore, ListedCoin};
use crate::chain::{self, ChainWalletError, Miners, Waiting};
use crate::{ChainReceipt, MinerError, Wallet};

/// The miners of a proof-of-work network, and how deep a spend must be buried to count.
pub struct ChainCoins {
    pub miners: Miners,
    pub waiting: Waiting,
}

/// How the miner's view of a coin's key grades it. `own` is the order this wallet
/// journaled for it (its pending spend is ours, not a race).
fn grade(state: &RespAccount, denomination: Denomination, own: bool) -> (Grade, Detection) {
    let mut d = Detection::unheard(state.account, denomination);
    d.held = (state.sequence == 0).then_some(state.balance);
    let pending_spend = state.next_sequence > state.sequence;
    let grade = if state.sequence > 0 {
        // A spend of it is in the chain.
        d.spent = 1;
        Grade::Counterfeit
    } else if pending_spend && !own {
        // Someone else's spend waits to be mined: whoever wins, it is not ours to count.
        d.contested = 1;
        Grade::Limbo
    } else if state.balance == denomination.amount() {
        d.good = 1;
        if pending_spend {
            // Our own spend of it is on its way.
            Grade::Limbo
        } else {
            Grade::Authentic
        }
    } else if state.balance == Amount::ZERO && state.pending_in == denomination.amount() {
        // Funded by a transaction not yet mined.
        Grade::Limbo
    } else {
        // Never funded, or holding some other amount: not a coin.
        Grade::Counterfeit
    };
    d.grade = grade;
    (grade, d)
}

impl ChainCoins {
    /// Pushes `tx` unless the miners know it already; a refusal, or an account whose
    /// history has passed the order's sequence, is final.
    async fn push_if_unknown(&self, tx: &Transaction) -> Result<(), NotSpent> {
        let open = |error: ChainWalletError| NotSpent::Open(error.into());
        let (status, _) = self.miners.status(tx).await.map_err(open)?;
        if status != TxStatus::Unknown {
            return Ok(());
        }
        let Some(signer) = tx.signer() else {
            return Err(NotSpent::Refused(CoinOpError::Refused(format!(
                "a {} is not a transaction a proof-of-work network takes",
                tx.order.kind_name()
            ))));
        };
        let (state, _) = self.miners.account(&signer).await.map_err(open)?;
        if tx.order.sequence().is_some_and(|s| s < state.sequence) {
            return Err(NotSpent::Refused(CoinOpError::Refused(format!(
                "another transaction of {} took sequence {} first",
                signer.short(),
                state.sequence.saturating_sub(1)
            ))));
        }
        match self.miners.push(tx).await {
            Ok(_) => Ok(()),
            Err(error @ ChainWalletError::Miner(MinerError::Rejected(_))) => {
                Err(NotSpent::Refused(error.into()))
            }
            Err(error) => Err(open(error)),
        }
    }

    /// Pushes `tx` if needed and waits for its confirmations: the receipt.
    async fn prove(&self, tx: &Transaction) -> Result<ChainReceipt, NotSpent> {
        self.push_if_unknown(tx).await?;
        let (height, confirmations) =
            chain::await_confirmations(&self.miners, tx, self.waiting, &mut |_| {})
                .await
                .map_err(|error| NotSpent::Open(error.into()))?;
        Ok(ChainReceipt {
            id: tx.id(),
            height,
            confirmations,
            order: tx.to_signed_order(),
        })
    }
}

/// Clears the journal entry of an order refused for good.
fn refused(wallet: &Wallet, signed: &SignedOrder, outcome: NotSpent) -> NotSpent {
    match outcome {
        NotSpent::Refused(error) => match wallet.clear_pending_of(&signed.order) {
            Ok(()) => NotSpent::Refused(error),
            Err(cleared) => NotSpent::Open(cleared.into()),
        },
        open => open,
    }
}

impl CoinLedger for ChainCoins {
    type Proof = ChainReceipt;

    fn network(&self) -> &NetworkId {
        self.miners.network()
    }

    fn proven_order(proof: &ChainReceipt) -> &Order {
        &proof.order.order
    }

    fn funding(_proof: &ChainReceipt) -> Option<Certificate> {
        None
    }

    async fn detect(
        &self,
        coins: &[(AccountId, Denomination)],
        own: &HashMap<AccountId, OrderDigest>,
    ) -> Vec<Detection> {
        let mut out = Vec::with_capacity(coins.len());
        for (account, denomination) in coins {
            match self.miners.account(account).await {
                Ok((state, _)) => {
                    out.push(grade(&state, *denomination, own.contains_key(account)).1);
                }
                Err(_) => out.push(Detection {
                    unanswered: 1,
                    ..Detection::unheard(*account, *denomination)
                }),
            }
        }
        out
    }

    async fn next_sequence(&self, account: &AccountId) -> Result<u64, CoinOpError> {
        Ok(self.miners.account(account).await?.0.next_sequence)
    }

    async fn check_no_foreign_spend(&self, account: &AccountId) -> Result<(), CoinOpError> {
        let (state, _) = self.miners.account(account).await?;
        if state.next_sequence > state.sequence {
            return Err(CoinOpError::Contested(*account));
        }
        Ok(())
    }

    async fn spend(
        &self,
        wallet: &Wallet,
        signed: &SignedOrder,
    ) -> Result<ChainReceipt, CoinOpError> {
        let tx = Transaction::from(signed.clone());
        match self.prove(&tx).await {
            Ok(receipt) => {
                wallet.save_chain_receipt(&receipt)?;
                wallet.clear_pending_of(&signed.order)?;
                Ok(receipt)
            }
            Err(outcome) => Err(refused(wallet, signed, outcome).into_error()),
        }
    }

    async fn prove_many(
        &self,
        wallet: &Wallet,
        orders: &[SignedOrder],
    ) -> Vec<Result<ChainReceipt, NotSpent>> {
        // Every transaction is pushed before any is waited for, so they are mined together.
        let txs: Vec<Transaction> = orders.iter().cloned().map(Transaction::from).collect();
        let mut pushed = Vec::with_capacity(txs.len());
        for tx in &txs {
            pushed.push(self.push_if_unknown(tx).await);
        }
        let mut out = Vec::with_capacity(txs.len());
        for ((tx, signed), pushed) in txs.iter().zip(orders).zip(pushed) {
            out.push(match pushed {
                Ok(()) => self.prove(tx).await,
                Err(outcome) => Err(refused(wallet, signed, outcome)),
            });
        }
        out
    }

    fn keep(wallet: &Wallet, proof: &ChainReceipt) -> Result<(), CoinOpError> {
        wallet.save_chain_receipt(proof)?;
        Ok(())
    }

    async fn announce(&self, _proofs: &[ChainReceipt]) {}

    async fn finish_pending(
        &self,
        wallet: &Wallet,
        account: &AccountId,
    ) -> Result<Option<ChainReceipt>, CoinOpError> {
        let Some(signed) = wallet.pending(account)? else {
            return Ok(None);
        };
        match self.spend(wallet, &signed).await {
            Ok(receipt) => Ok(Some(receipt)),
            // Passed by the account's history, or refused: nothing is in flight any more.
            Err(_) if wallet.pending(account)?.is_none() => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn kept_proof(
        &self,
        wallet: &Wallet,
        signed: &SignedOrder,
    ) -> Result<Option<ChainReceipt>, CoinOpError> {
        Ok(wallet.chain_receipt(&Transaction::from(signed.clone()).id())?)
    }

    fn taken(&self, detection: &Detection) -> bool {
        detection.spent > 0
    }

    fn proves_funding(&self, _coin: &tally_core::Coin) -> bool {
        false
    }

    async fn help_laggards(
        &self,
        _store: &CoinStore,
        _coin: &ListedCoin,
        _lagging: &[usize],
    ) -> Result<(), CoinOpError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::{Digest, SecretKey, U256};
    use tally_proto::pow::Tip;

    fn state(balance: u64, sequence: u64, next: u64, pending_in: u64) -> RespAccount {
        RespAccount {
            account: SecretKey::from_bytes([3; 32]).account(),
            balance: Amount::from_microcash(balance * 1_000_000),
            sequence,
            next_sequence: next,
            pending_out: Amount::ZERO,
            pending_in: Amount::from_microcash(pending_in * 1_000_000),
            tip: Tip {
                hash: Digest::from([0; 32]),
                height: 0,
                work: U256::default(),
            },
        }
    }

    /// A chain coin counts only when its key holds exactly its denomination, confirmed,
    /// with no spend of it in the chain and none but ours waiting to be mined.
    #[test]
    fn a_chain_coin_is_graded_by_its_confirmed_state() {
        let five = Denomination::Five;
        let g = |s: RespAccount, own: bool| grade(&s, five, own).0;
        assert_eq!(g(state(5, 0, 0, 0), false), Grade::Authentic);
        assert_eq!(g(state(0, 1, 1, 0), false), Grade::Counterfeit, "spent");
        assert_eq!(
            g(state(0, 0, 0, 0), false),
            Grade::Counterfeit,
            "never funded"
        );
        assert_eq!(
            g(state(4, 0, 0, 0), false),
            Grade::Counterfeit,
            "not a coin"
        );
        assert_eq!(
            g(state(0, 0, 0, 5), false),
            Grade::Limbo,
            "funding not mined yet"
        );
        assert_eq!(
            g(state(5, 0, 1, 0), false),
            Grade::Limbo,
            "a stranger's spend waits"
        );
        assert_eq!(grade(&state(5, 0, 1, 0), five, false).1.contested, 1);
        assert_eq!(
            g(state(5, 0, 1, 0), true),
            Grade::Limbo,
            "our own spend waits"
        );
        assert_eq!(grade(&state(5, 0, 1, 0), five, true).1.contested, 0);
    }
}
