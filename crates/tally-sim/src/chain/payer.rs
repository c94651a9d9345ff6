//! A simulated proof-of-work wallet: it signs one transfer per sequence, hands it to a
//! miner, and asks miners for its status until it is confirmed deep enough, sending it
//! again to whoever does not know it (a miner that crashed lost its mempool). Confirmations
//! are not finality: a reorganisation deeper than them (a withholder releasing a longer
//! branch) can drop a payment counted as done, and if the miners that held it crash it is
//! gone from every mempool. So before each new payment the wallet reads the account's next
//! sequence and sends again, in order, every payment of its own the chain no longer holds
//! (the same signed transactions: never a new order for a sequence it already signed).

use rand::Rng;
use rand::rngs::StdRng;
use tally_chain::Transaction;
use tally_core::{AccountId, Amount, NetworkId, SecretKey, Transfer, TxStatus};

/// Confirmations after which a payment counts as done (acknowledged).
pub const CONFIRMATIONS: u64 = 3;

/// What a payer asks of a miner.
pub enum Ask {
    /// `PUSH_TRANSACTION`, of one transfer or of several in sequence order.
    Push(Vec<Transaction>),
    /// `REQ_TX_STATUS`.
    Status(Transaction),
    /// `REQ_ACCOUNT`: the account's next sequence at the miner's tip.
    Account(AccountId),
}

/// One wallet on the chain.
pub struct SimPayer {
    pub key: SecretKey,
    /// The sequence of its next transfer.
    pub next_sequence: u64,
    /// The transfer in flight: never a second one for its sequence.
    pub pending: Option<Transaction>,
    pub payments_left: u32,
    /// Every transfer confirmed deep enough, by sequence: each must be on the final chain.
    pub acknowledged: Vec<Transaction>,
    /// Whether the last account read found every acknowledged transfer still on the chain
    /// (the end of a run waits for it).
    pub settled: bool,
    /// Transfers sent again because a reorganisation had dropped them from every miner.
    pub resent: u64,
}

impl SimPayer {
    pub fn new(key: SecretKey, payments: u32) -> Self {
        SimPayer {
            key,
            next_sequence: 0,
            pending: None,
            payments_left: payments,
            acknowledged: Vec::new(),
            settled: true,
            resent: 0,
        }
    }

    pub fn account(&self) -> AccountId {
        self.key.account()
    }

    /// Whether it still has something to do.
    pub fn busy(&self) -> bool {
        self.pending.is_some() || self.payments_left > 0 || !self.settled
    }

    /// Its timer: ask about the transfer in flight, or read the account before the next.
    pub fn wake(&self) -> Option<Ask> {
        if let Some(tx) = &self.pending {
            return Some(Ask::Status(tx.clone()));
        }
        self.busy().then(|| Ask::Account(self.account()))
    }

    /// The account's next sequence at a miner's tip: sends again what the chain lost, or
    /// signs the next transfer.
    pub fn on_account(
        &mut self,
        next_sequence: u64,
        rng: &mut StdRng,
        network: &NetworkId,
        recipients: &[AccountId],
    ) -> Option<Ask> {
        if self.pending.is_some() {
            return None;
        }
        let lost: Vec<Transaction> = self
            .acknowledged
            .iter()
            .filter(|tx| tx.transfer().is_some_and(|t| t.sequence >= next_sequence))
            .cloned()
            .collect();
        if let Some(last) = lost.last() {
            // (A miner that is merely behind the others says the same; sending again what
            // it lacks is harmless: it is confirmed elsewhere, and no other transfer of
            // these sequences exists.)
            self.resent += lost.len() as u64;
            self.pending = Some(last.clone());
            return Some(Ask::Push(lost));
        }
        if self.payments_left == 0 || recipients.is_empty() {
            self.settled = true;
            return None;
        }
        let recipient = recipients[rng.gen_range(0..recipients.len())];
        let tx = Transaction::sign(
            Transfer {
                sender: self.account(),
                recipient,
                amount: Amount::from_microcash(rng.gen_range(1..=1_000)),
                sequence: self.next_sequence,
            },
            &self.key,
            network,
        );
        self.payments_left -= 1;
        self.pending = Some(tx.clone());
        Some(Ask::Push(vec![tx]))
    }

    /// A miner's answer about the transfer in flight: true if it was newly acknowledged.
    /// Anything but pending or confirmed means the miner does not hold it: it is pushed
    /// again (with the lost ones before it, if this is a resend).
    pub fn on_status(&mut self, tx: &Transaction, status: TxStatus) -> (bool, Option<Ask>) {
        if self.pending.as_ref() != Some(tx) {
            return (false, None);
        }
        let deep = match status {
            TxStatus::Confirmed { confirmations, .. } => confirmations >= CONFIRMATIONS,
            TxStatus::Buried { .. } => true,
            TxStatus::Pending => false,
            TxStatus::Unknown => {
                let sequence = tx.transfer().map_or(0, |t| t.sequence);
                let mut again: Vec<Transaction> = self
                    .acknowledged
                    .iter()
                    .filter(|a| a.transfer().is_some_and(|t| t.sequence < sequence))
                    .cloned()
                    .collect();
                // Only the ones the chain may have lost with it: the miner checks them.
                let keep = again.len().saturating_sub(CONFIRMATIONS as usize * 4);
                again.drain(..keep);
                again.push(tx.clone());
                return (false, Some(Ask::Push(again)));
            }
        };
        if !deep {
            return (false, None);
        }
        self.pending = None;
        if self.acknowledged.contains(tx) {
            // A resend confirmed again.
            return (false, None);
        }
        self.acknowledged.push(tx.clone());
        self.next_sequence += 1;
        (true, None)
    }
}
