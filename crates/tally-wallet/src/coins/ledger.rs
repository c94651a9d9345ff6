//! What the coin operations ask of the network their coins live on (DESIGN §7). A quorum
//! network proves a spend with a certificate signed by a quorum of validators; a
//! proof-of-work network with a transaction buried under enough blocks. The operations
//! (journal, sign, move between folders) are the same; only these questions differ.

use std::collections::HashMap;
use std::future::Future;

use tally_core::{
    AccountId, Certificate, Denomination, NetworkId, Order, OrderDigest, SignedOrder,
};
use tally_proto::LedgerRequest;

use super::detect::{Detection, detect};
use super::{CoinOpError, CoinStore};
use crate::ops::{Asking, certify_and_submit, finish_journaled};
use crate::{ClientError, QuorumClient, Wallet};

/// Why a network gave no proof for an order.
#[derive(Debug)]
pub enum NotSpent {
    /// Refused for good: nothing is in flight and the journal entry is cleared.
    Refused(CoinOpError),
    /// Not proven yet, but it may still be (votes held, or a transaction not yet buried):
    /// it stays journaled for `find`.
    Open(CoinOpError),
}

impl NotSpent {
    /// The reason, whichever it is.
    pub fn into_error(self) -> CoinOpError {
        match self {
            NotSpent::Refused(error) | NotSpent::Open(error) => error,
        }
    }
}

/// A network coins live on, as the coin operations see it.
pub trait CoinLedger: Sync {
    /// What proves a spend happened: a certificate, or a confirmed transaction.
    type Proof: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned;

    /// The network's id.
    fn network(&self) -> &NetworkId;

    /// The order a proof proves.
    fn proven_order(proof: &Self::Proof) -> &Order;

    /// The certificate a coin file keeps as its funding, where the network has one (a
    /// proof-of-work coin's funding is in the chain itself).
    fn funding(proof: &Self::Proof) -> Option<Certificate>;

    /// Grades coins; `own` maps a coin to the order this wallet journaled for it.
    fn detect(
        &self,
        coins: &[(AccountId, Denomination)],
        own: &HashMap<AccountId, OrderDigest>,
    ) -> impl Future<Output = Vec<Detection>> + Send;

    /// The sequence a new order of `account` must carry.
    fn next_sequence(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = Result<u64, CoinOpError>> + Send;

    /// Refuses if the network holds a spend of `account` this wallet did not make (a vote
    /// on its next slot, a transaction waiting to be mined): signing another could freeze
    /// the slot or lose the race.
    fn check_no_foreign_spend(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = Result<(), CoinOpError>> + Send;

    /// Proves the journaled order `signed`, keeps the proof as the wallet's receipt and
    /// clears the journal entry; a final refusal clears it too.
    fn spend(
        &self,
        wallet: &Wallet,
        signed: &SignedOrder,
    ) -> impl Future<Output = Result<Self::Proof, CoinOpError>> + Send;

    /// Proves many journaled orders at once (pipelined where the network allows); each
    /// result in order. Keeps nothing and clears nothing but the journal entries of
    /// orders refused for good: the caller keeps the proofs ([`CoinLedger::keep`]) and
    /// clears the rest, in the order its crash safety asks.
    fn prove_many(
        &self,
        wallet: &Wallet,
        orders: &[SignedOrder],
    ) -> impl Future<Output = Vec<Result<Self::Proof, NotSpent>>> + Send;

    /// Keeps a proof as the wallet's receipt.
    fn keep(wallet: &Wallet, proof: &Self::Proof) -> Result<(), CoinOpError>;

    /// Hands proofs to whoever should learn of them (a quorum network's validators, so
    /// that they apply the spends); nothing on a chain, which spreads its blocks itself.
    fn announce(&self, proofs: &[Self::Proof]) -> impl Future<Output = ()> + Send;

    /// Finishes the order `account` left journaled, if any and still open: its proof, or
    /// `None` (no order, or one the account's history has passed, now cleared).
    fn finish_pending(
        &self,
        wallet: &Wallet,
        account: &AccountId,
    ) -> impl Future<Output = Result<Option<Self::Proof>, CoinOpError>> + Send;

    /// The proof this wallet kept for `signed`, if any.
    fn kept_proof(
        &self,
        wallet: &Wallet,
        signed: &SignedOrder,
    ) -> Result<Option<Self::Proof>, CoinOpError>;

    /// Whether a coin handed out (exported) was spent by whoever holds it now.
    fn taken(&self, detection: &Detection) -> bool;

    /// Whether `coin` carries its own proof of funding (on a quorum network, a certificate
    /// that verifies against the committee and pays this coin its denomination). Such a
    /// coin that validators have not seen funded is lagging behind, never counterfeit. A
    /// chain's coins carry none.
    fn proves_funding(&self, coin: &tally_core::Coin) -> bool;

    /// Helps the parts of the network that lag behind on a coin's funding (a quorum
    /// network's validators listed in `lagging`); nothing to do on a chain.
    fn help_laggards(
        &self,
        store: &CoinStore,
        coin: &super::ListedCoin,
        lagging: &[usize],
    ) -> impl Future<Output = Result<(), CoinOpError>> + Send;
}

impl CoinLedger for QuorumClient {
    type Proof = Certificate;

    fn network(&self) -> &NetworkId {
        QuorumClient::network(self)
    }

    fn proven_order(proof: &Certificate) -> &Order {
        &proof.order
    }

    fn funding(proof: &Certificate) -> Option<Certificate> {
        Some(proof.clone())
    }

    async fn detect(
        &self,
        coins: &[(AccountId, Denomination)],
        own: &HashMap<AccountId, OrderDigest>,
    ) -> Vec<Detection> {
        detect(self, coins, own).await
    }

    async fn next_sequence(&self, account: &AccountId) -> Result<u64, CoinOpError> {
        Ok(QuorumClient::next_sequence(self, account).await?)
    }

    async fn check_no_foreign_spend(&self, account: &AccountId) -> Result<(), CoinOpError> {
        let request = LedgerRequest {
            accounts: Some(vec![*account]),
            ..LedgerRequest::default()
        };
        for answer in self.ledger_all(&request).await {
            if let Ok(view) = answer.result
                && let Some(entry) = view.ledger.get(account)
                && entry.locked.is_some()
            {
                return Err(CoinOpError::Contested(*account));
            }
        }
        Ok(())
    }

    async fn spend(
        &self,
        wallet: &Wallet,
        signed: &SignedOrder,
    ) -> Result<Certificate, CoinOpError> {
        Ok(
            certify_and_submit(wallet, self, signed, Asking::FirstVoterFirst)
                .await?
                .0,
        )
    }

    async fn prove_many(
        &self,
        wallet: &Wallet,
        orders: &[SignedOrder],
    ) -> Vec<Result<Certificate, NotSpent>> {
        let mut out = Vec::with_capacity(orders.len());
        for (signed, outcome) in orders.iter().zip(self.certify_many(orders).await) {
            out.push(match outcome {
                Ok(certificate) => Ok(certificate),
                Err(
                    error @ ClientError::NoQuorum {
                        refused_everywhere: true,
                        ..
                    },
                ) => {
                    // Refused everywhere because the slot is settled already, perhaps by
                    // this very order (another holder of the coin finished it): then its
                    // certificate is the proof.
                    if let Some((signer, sequence)) = signed.order.spender()
                        && let Some(certificate) = self.sent_certificate(&signer, sequence).await
                        && certificate.order == signed.order
                    {
                        out.push(Ok(certificate));
                        continue;
                    }
                    // No validator holds a vote for it: nothing to finish later.
                    match wallet.clear_pending_of(&signed.order) {
                        Ok(()) => Err(NotSpent::Refused(error.into())),
                        Err(cleared) => Err(NotSpent::Open(cleared.into())),
                    }
                }
                Err(error) => Err(NotSpent::Open(error.into())),
            });
        }
        out
    }

    fn keep(wallet: &Wallet, proof: &Certificate) -> Result<(), CoinOpError> {
        wallet.save_receipt(proof)?;
        Ok(())
    }

    async fn announce(&self, proofs: &[Certificate]) {
        self.submit_many(proofs).await;
    }

    async fn finish_pending(
        &self,
        wallet: &Wallet,
        account: &AccountId,
    ) -> Result<Option<Certificate>, CoinOpError> {
        Ok(finish_journaled(wallet, self, account).await?)
    }

    fn kept_proof(
        &self,
        wallet: &Wallet,
        signed: &SignedOrder,
    ) -> Result<Option<Certificate>, CoinOpError> {
        Ok(wallet.receipt(&signed.order.digest(QuorumClient::network(self)))?)
    }

    fn taken(&self, detection: &Detection) -> bool {
        detection.spent > self.committee().max_faulty()
    }

    fn proves_funding(&self, coin: &tally_core::Coin) -> bool {
        coin.funding.as_ref().is_some_and(|funding| {
            funding
                .order
                .payments()
                .iter()
                .any(|p| p.recipient == coin.account() && p.amount == coin.amount())
                && funding.verify(self.committee(), self.network()).is_ok()
        })
    }

    async fn help_laggards(
        &self,
        store: &CoinStore,
        coin: &super::ListedCoin,
        lagging: &[usize],
    ) -> Result<(), CoinOpError> {
        if let Some(funding) = store.read(coin)?.funding {
            for i in lagging {
                self.push_with_history(*i, &funding).await;
            }
        }
        Ok(())
    }
}
