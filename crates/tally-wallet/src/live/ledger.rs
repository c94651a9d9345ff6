//! What a live transfer asks of the network beyond the coin operations: the receipt
//! (message 17) that proves the receiver powned the coins sent. A quorum network's receipt
//! is the pown certificates, checked offline against the committee; a proof-of-work
//! network's is the pown transactions, checked against the chain.

use std::collections::HashMap;
use std::future::Future;

use tally_core::{AccountId, Certificate, Denomination, Transaction, TxStatus};
use tally_live::CoinSummary;

use super::receipt::{ReceiptError, check_pown, check_receipt, decode_receipt, encode_receipt};
use crate::chain::confirmations;
use crate::coins::{ChainCoins, CoinFolder, CoinLedger, CoinOpError, CoinStore};
use crate::{ChainReceipt, QuorumClient, Wallet};

/// A network a live transfer runs on.
pub trait LiveLedger: CoinLedger {
    /// The receipt (message 17) of these pown proofs.
    fn encode_receipt(proofs: &[Self::Proof]) -> String;

    /// Checks a receipt for the coins `sent`; the coins it shows powned.
    fn check_receipt(
        &self,
        receipt_b64: &str,
        sent: &[CoinSummary],
    ) -> impl Future<Output = Result<Vec<CoinSummary>, ReceiptError>> + Send;

    /// A receipt the sender can get without the receiver, once the network shows every
    /// sent coin powned; `None` before, or where the network cannot hand one over.
    fn powned_receipt(&self, coins: &[CoinSummary]) -> impl Future<Output = Option<String>> + Send;

    /// Keeps a checked receipt's proofs among the wallet's receipts.
    fn keep_receipt(
        &self,
        wallet: &Wallet,
        receipt_b64: &str,
    ) -> impl Future<Output = Result<(), CoinOpError>> + Send;

    /// The proof of a pown of `account` this wallet made and kept (in the new coin's file
    /// in `hidden`, or among its receipts), for a crash that lost the transfer's record.
    fn kept_pown(
        wallet: &Wallet,
        hidden: &CoinStore,
        account: &AccountId,
    ) -> Result<Option<Self::Proof>, CoinOpError>;
}

impl LiveLedger for QuorumClient {
    fn encode_receipt(proofs: &[Certificate]) -> String {
        encode_receipt(proofs)
    }

    async fn check_receipt(
        &self,
        receipt_b64: &str,
        sent: &[CoinSummary],
    ) -> Result<Vec<CoinSummary>, ReceiptError> {
        check_receipt(receipt_b64, self.committee(), self.network(), sent)
    }

    /// The pown certificates from the validators, once more than `f` of them show every
    /// sent coin spent (the machine verifies them before believing them).
    async fn powned_receipt(&self, coins: &[CoinSummary]) -> Option<String> {
        let pairs = coins
            .iter()
            .map(|c| Some((c.account, Denomination::from_cash(c.denomination_cash)?)))
            .collect::<Option<Vec<_>>>()?;
        let faulty = self.committee().max_faulty();
        let detections = crate::coins::detect(self, &pairs, &HashMap::new()).await;
        if detections.len() != coins.len() || detections.iter().any(|d| d.spent <= faulty) {
            return None;
        }
        let mut certificates = Vec::with_capacity(coins.len());
        for coin in coins {
            certificates.push(pown_certificate(self, &coin.account).await?);
        }
        Some(encode_receipt(&certificates))
    }

    async fn keep_receipt(&self, wallet: &Wallet, receipt_b64: &str) -> Result<(), CoinOpError> {
        // The receipt was checked before the transfer was called delivered, so it decodes.
        match decode_receipt::<Certificate>(receipt_b64) {
            Ok(certificates) => {
                for certificate in &certificates {
                    wallet.save_receipt(certificate)?;
                }
            }
            Err(error) => tracing::warn!(%error, "a delivered transfer's receipt was not kept"),
        }
        Ok(())
    }

    fn kept_pown(
        _wallet: &Wallet,
        hidden: &CoinStore,
        account: &AccountId,
    ) -> Result<Option<Certificate>, CoinOpError> {
        for folder in [CoinFolder::Bank, CoinFolder::Fracked] {
            for listed in hidden.list(folder)? {
                if let Some(funding) = hidden.read(&listed)?.funding
                    && funding.order.signer() == Some(*account)
                {
                    return Ok(Some(funding));
                }
            }
        }
        Ok(None)
    }
}

/// The certificate of the order of sequence 0 that `account` signed (checked).
async fn pown_certificate(client: &QuorumClient, account: &AccountId) -> Option<Certificate> {
    client.sent_certificate(account, 0).await
}

impl LiveLedger for ChainCoins {
    fn encode_receipt(proofs: &[ChainReceipt]) -> String {
        let txs: Vec<Transaction> = proofs
            .iter()
            .map(|p| Transaction::from(p.order.clone()))
            .collect();
        encode_receipt(&txs)
    }

    /// Each transaction is signed by a sent coin's key, is a pown of it, and is buried
    /// under at least the confirmations this wallet waits for.
    async fn check_receipt(
        &self,
        receipt_b64: &str,
        sent: &[CoinSummary],
    ) -> Result<Vec<CoinSummary>, ReceiptError> {
        let txs: Vec<Transaction> = decode_receipt(receipt_b64)?;
        let mut powned: Vec<CoinSummary> = Vec::with_capacity(txs.len());
        for (index, tx) in txs.iter().enumerate() {
            if !tx.to_signed_order().verify(self.network()) {
                return Err(ReceiptError::Unverified {
                    index,
                    why: "the signature does not verify".into(),
                });
            }
            let coin = check_pown(&tx.order, index, sent, &powned)?;
            let unverified = |why: String| ReceiptError::Unverified { index, why };
            let (status, _) = self
                .miners
                .status(tx)
                .await
                .map_err(|e| unverified(e.to_string()))?;
            match confirmations(&status) {
                Some((_, have)) if have >= self.waiting.confirmations => powned.push(coin),
                Some((_, have)) => {
                    return Err(unverified(format!(
                        "{have} confirmations, {} wanted",
                        self.waiting.confirmations
                    )));
                }
                None => {
                    return Err(unverified(match status {
                        TxStatus::Pending => "not mined yet".into(),
                        _ => "the miners do not know it".into(),
                    }));
                }
            }
        }
        Ok(powned)
    }

    /// Miners answer for accounts, not for who spent them: a sent coin spent in the chain
    /// shows it was taken, but not the transaction to show for it. The sender waits for
    /// the receiver's receipt, or for the deadline (then `reclaim` finds the coins spent).
    async fn powned_receipt(&self, _coins: &[CoinSummary]) -> Option<String> {
        None
    }

    async fn keep_receipt(&self, wallet: &Wallet, receipt_b64: &str) -> Result<(), CoinOpError> {
        let txs = match decode_receipt::<Transaction>(receipt_b64) {
            Ok(txs) => txs,
            Err(error) => {
                tracing::warn!(%error, "a delivered transfer's receipt was not kept");
                return Ok(());
            }
        };
        for tx in txs {
            match self.miners.status(&tx).await {
                Ok((status, _)) => {
                    if let Some((height, confirmations)) = confirmations(&status) {
                        wallet.save_chain_receipt(&ChainReceipt {
                            id: tx.id(),
                            height,
                            confirmations,
                            order: tx.to_signed_order(),
                        })?;
                    }
                }
                // The receipt checked a moment ago; only keeping it for the record failed.
                Err(error) => {
                    tracing::warn!(id = %tx.id(), %error, "a receipt's transaction was not kept")
                }
            }
        }
        Ok(())
    }

    fn kept_pown(
        wallet: &Wallet,
        _hidden: &CoinStore,
        account: &AccountId,
    ) -> Result<Option<ChainReceipt>, CoinOpError> {
        Ok(wallet
            .chain_receipts()?
            .into_iter()
            .find(|receipt| receipt.order.order.signer() == Some(*account)))
    }
}
