//! What a wallet does with a proof-of-work network (DESIGN §4): pay and follow the payment
//! to the confirmations asked for, read an account's state, the whole ledger at the tip,
//! and which miners answer.
//!
//! Miners are found through the contract's tracker. A transfer ([`send`]) or a split paying
//! several recipients at once ([`send_split`]) is journaled in `pending/`
//! before any miner sees it, handed to one miner (`PUSH_TRANSACTION`), and followed
//! (`REQ_TX_STATUS`) until it has the confirmations asked for; then it becomes a receipt in
//! `receipts/chain/`. A wallet interrupted while waiting finds the journaled transfer on its
//! next `send` and finishes it first: pushed again if the miners lost it, never replaced
//! by a different transfer with the same sequence.
//!
//! Confirmations are not finality: a reorganisation deeper than the confirmations waited
//! for can take a receipted transfer off the main chain, and if the miners that put it
//! back in their mempools restart, nobody holds it any more. So before signing a new
//! transfer, `send` compares the account's receipts with the sequence the chain expects
//! and sends again, in order, every receipted transfer the chain no longer holds (the same
//! signed transactions), following them to their confirmations and updating their
//! receipts. Signing the new transfer at the chain's sequence instead would reuse a
//! receipted payment's sequence: that payment would then never happen, though its
//! receipt says it did. (The deterministic simulator, `tally-sim`, found this.)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tally_core::{
    AccountId, Amount, Digest, NetworkContract, NetworkId, Order, Payment, SecretKey, Split,
    SplitError,
};
use tally_core::{Transaction, TxStatus};
use tally_proto::pow::{LedgerAccount, MAX_LEDGER_PAGE, RespAccount, Tip, WireLimits};

pub mod escrow;

use crate::miner::{self, MinerError};
use crate::wallet::{ChainReceipt, Wallet, WalletError};

/// Why a wallet operation on a proof-of-work network failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainWalletError {
    /// The contract names no tracker, so no miner can be found.
    #[error("this proof-of-work network names no tracker: its miners cannot be found")]
    NoTracker,
    /// The tracker did not answer.
    #[error("asking the tracker {tracker} for miners")]
    Tracker {
        tracker: String,
        #[source]
        error: tally_tracker::ClientError,
    },
    /// The tracker knows no live miner of the network.
    #[error("the tracker {tracker} lists no live miner of this network")]
    NoMiners { tracker: String },
    /// Every miner was tried and none answered (one reason per miner).
    #[error("no miner answered: {}", .0.join("; "))]
    NoMinerAnswered(Vec<String>),
    /// A miner refused the request, or failed while the wallet read pages from it.
    #[error(transparent)]
    Miner(#[from] MinerError),
    /// No miner took the new transfer; it is no longer journaled.
    #[error("pushing the transaction")]
    NotPushed(#[source] Box<ChainWalletError>),
    #[error("an account cannot pay itself")]
    SelfPayment,
    #[error("amount must be more than zero")]
    ZeroAmount,
    /// A split that no network would take (PROTOCOL §3): checked before anything is
    /// signed or journaled.
    #[error("invalid split: {0}")]
    Split(#[from] SplitError),
    /// The account cannot pay: its confirmed balance less what it has pending out is short.
    #[error(
        "{} holds {balance} cash ({pending_out} cash pending out): not enough to pay {amount} cash",
        .account.short()
    )]
    InsufficientFunds {
        account: AccountId,
        balance: Amount,
        pending_out: Amount,
        amount: Amount,
    },
    /// Patience ran out before the confirmations came; the transfer stays journaled.
    #[error(
        "transaction {id} has not reached {wanted} confirmations after {}s; it stays \
         journaled and the next `send` from this account finishes it first",
        .waited.as_secs()
    )]
    NotConfirmed {
        id: Digest,
        wanted: u64,
        waited: Duration,
    },
    /// Refused before anything was signed or sent (an escrow with no time left, one
    /// paying its own payer, a claim of an escrow already settled).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Wallet(#[from] WalletError),
}

/// The miners of a network, as its tracker lists them, tried in turn.
#[derive(Clone, Debug)]
pub struct Miners {
    network: NetworkId,
    addresses: Vec<String>,
    limits: WireLimits,
}

impl Miners {
    /// Asks the contract's tracker for live miners (at most 16); every request to a miner
    /// then waits at most `timeout` for each step.
    pub async fn locate(
        contract: &NetworkContract,
        timeout: Duration,
    ) -> Result<Self, ChainWalletError> {
        let Some(tracker) = &contract.tracker else {
            return Err(ChainWalletError::NoTracker);
        };
        let config = tally_tracker::ClientConfig {
            answer_timeout: timeout,
            connect_timeout: timeout,
            max_attempts: 2,
            ..tally_tracker::ClientConfig::default()
        };
        let peers = tally_tracker::TrackerClient::new(tracker.clone(), config)
            .peers(contract.id(), Some(16))
            .await
            .map_err(|error| ChainWalletError::Tracker {
                tracker: tracker.clone(),
                error,
            })?;
        if peers.is_empty() {
            return Err(ChainWalletError::NoMiners {
                tracker: tracker.clone(),
            });
        }
        let max_block_bytes = contract.pow.as_ref().map_or(1 << 20, |p| p.max_block_bytes);
        let limits = WireLimits {
            read_timeout: timeout,
            write_timeout: timeout,
            connect_timeout: timeout,
            ..WireLimits::for_blocks(max_block_bytes)
        };
        let addresses = peers.iter().map(|p| p.address.to_string()).collect();
        Ok(Miners::at(contract.id(), addresses, limits))
    }

    /// Miners of `network` at known addresses, tried in this order.
    pub fn at(network: NetworkId, addresses: Vec<String>, limits: WireLimits) -> Self {
        Miners {
            network,
            addresses,
            limits,
        }
    }

    /// The network these miners run.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// Their addresses, in the order they are tried.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// The first answer of any miner to `call`, with the miner's address; a refusal of the
    /// request itself is final, an unreachable miner is skipped.
    async fn ask<T, F, Fut>(&self, call: F) -> Result<(T, &str), ChainWalletError>
    where
        F: Fn(String, WireLimits) -> Fut,
        Fut: Future<Output = Result<T, MinerError>>,
    {
        let mut errors = Vec::new();
        for address in &self.addresses {
            match call(address.clone(), self.limits).await {
                Ok(answer) => return Ok((answer, address)),
                Err(error @ MinerError::Rejected(_)) => return Err(error.into()),
                Err(error) => errors.push(format!("{address}: {error}")),
            }
        }
        Err(ChainWalletError::NoMinerAnswered(errors))
    }

    /// An account's state at a miner's tip, and the miner that answered.
    pub async fn account(
        &self,
        account: &AccountId,
    ) -> Result<(RespAccount, &str), ChainWalletError> {
        self.ask(|address, limits| async move { miner::account(&address, account, limits).await })
            .await
    }

    /// What became of `tx`, and the tip that is at.
    pub async fn status(&self, tx: &Transaction) -> Result<(TxStatus, Tip), ChainWalletError> {
        let (answer, _) =
            self.ask(|address, limits| async move {
                miner::transaction_status(&address, tx, limits).await
            })
            .await?;
        Ok(answer)
    }

    /// Hands `tx` to one miner, which relays it to the others; the miner's address.
    pub async fn push(&self, tx: &Transaction) -> Result<&str, ChainWalletError> {
        let (_, address) =
            self.ask(|address, limits| async move {
                miner::push_transaction(&address, tx, limits).await
            })
            .await?;
        Ok(address)
    }
}

/// The spend (a transfer, a split or an escrow lock) journaled for `account`, as a
/// transaction.
pub fn journaled(wallet: &Wallet, account: &AccountId) -> Result<Option<Transaction>, WalletError> {
    Ok(wallet
        .pending(account)?
        .filter(|order| {
            matches!(
                order.order,
                Order::Transfer(_) | Order::Split(_) | Order::EscrowLock(_)
            )
        })
        .map(Transaction::from))
}

/// The height of the block holding a transaction and its confirmations, if it is in the
/// chain (a transaction buried below the indexed blocks has height 0).
pub fn confirmations(status: &TxStatus) -> Option<(u64, u64)> {
    match *status {
        TxStatus::Confirmed {
            height,
            confirmations,
        } => Some((height, confirmations)),
        TxStatus::Buried { confirmations } => Some((0, confirmations)),
        TxStatus::Pending | TxStatus::Unknown => None,
    }
}

/// How long `send` follows a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// Confirmations to wait for.
    pub confirmations: u64,
    /// Give up (leaving the transfer journaled) after this long.
    pub patience: Duration,
}

/// What `send` reports while it works, for a progress display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendEvent {
    /// Following transaction `id` until it has `wanted` confirmations: an interrupted
    /// earlier transfer first, if there is one, then the new one.
    Following { id: Digest, wanted: u64 },
    /// A miner's answer while following: its tip's height and the confirmations so far.
    Progress { tip_height: u64, confirmations: u64 },
    /// The miners had lost the transaction (a reorganisation dropped it, or a miner
    /// restarted), so it was pushed again.
    PushedAgain { id: Digest },
    /// A receipted transfer of sequence `sequence` is no longer on the chain (a
    /// reorganisation deeper than its confirmations dropped it): sent again before anything
    /// new is signed.
    Restoring { id: Digest, sequence: u64 },
}

/// How often a followed transaction's status is asked for.
const POLL: Duration = Duration::from_millis(250);

/// Follows `tx` until it has the confirmations asked for or patience runs out, pushing it
/// again if the miners lost it; the block height and confirmations.
pub(crate) async fn await_confirmations(
    miners: &Miners,
    tx: &Transaction,
    waiting: Waiting,
    progress: &mut (dyn FnMut(SendEvent) + Send),
) -> Result<(u64, u64), ChainWalletError> {
    let wanted = waiting.confirmations;
    progress(SendEvent::Following {
        id: tx.id(),
        wanted,
    });
    let started = Instant::now();
    loop {
        let (status, tip) = miners.status(tx).await?;
        let have = confirmations(&status);
        progress(SendEvent::Progress {
            tip_height: tip.height,
            confirmations: have.map_or(0, |(_, have)| have),
        });
        match have {
            Some((height, have)) if have >= wanted => return Ok((height, have)),
            Some(_) => {}
            None if status == TxStatus::Unknown => {
                miners.push(tx).await?;
                progress(SendEvent::PushedAgain { id: tx.id() });
            }
            None => {}
        }
        if started.elapsed() > waiting.patience {
            return Err(ChainWalletError::NotConfirmed {
                id: tx.id(),
                wanted,
                waited: waiting.patience,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The receipted transfers of `account` the chain no longer holds: every receipt at or
/// above the sequence the chain expects next (`next_sequence`), in sequence order. Only
/// transfers this wallet signed and saw confirmed are there, one per sequence.
pub fn lost_receipts(
    receipts: Vec<ChainReceipt>,
    account: &AccountId,
    next_sequence: u64,
) -> Vec<ChainReceipt> {
    let mut lost: Vec<(u64, ChainReceipt)> = receipts
        .into_iter()
        .filter(|r| r.order.order.signer() == Some(*account))
        .filter_map(|r| {
            r.order
                .order
                .sequence()
                .filter(|sequence| *sequence >= next_sequence)
                .map(|sequence| (sequence, r))
        })
        .collect();
    lost.sort_by_key(|(sequence, _)| *sequence);
    lost.dedup_by_key(|(sequence, _)| *sequence);
    lost.into_iter().map(|(_, r)| r).collect()
}

/// Sends again the receipted transfers of `account` the chain lost (see the module's
/// documentation), in sequence order, and follows each to its confirmations, updating its
/// receipt; the receipts restored.
async fn restore_lost(
    wallet: &Wallet,
    miners: &Miners,
    account: &AccountId,
    next_sequence: u64,
    waiting: Waiting,
    progress: &mut (dyn FnMut(SendEvent) + Send),
) -> Result<Vec<ChainReceipt>, ChainWalletError> {
    let lost = lost_receipts(wallet.chain_receipts()?, account, next_sequence);
    for receipt in &lost {
        let tx = Transaction::from(receipt.order.clone());
        progress(SendEvent::Restoring {
            id: tx.id(),
            sequence: tx.order.sequence().unwrap_or_default(),
        });
        miners.push(&tx).await?;
    }
    let mut restored = Vec::with_capacity(lost.len());
    for receipt in lost {
        let tx = Transaction::from(receipt.order);
        let (restored_receipt, _) = settle(wallet, miners, &tx, waiting, progress).await?;
        restored.push(restored_receipt);
    }
    Ok(restored)
}

/// Settles the transfer `account` left in flight, if any: waits for it (pushing it again
/// if it was lost) unless the chain already moved past its sequence.
async fn finish_journaled(
    wallet: &Wallet,
    miners: &Miners,
    account: &AccountId,
    waiting: Waiting,
    progress: &mut (dyn FnMut(SendEvent) + Send),
) -> Result<Option<ChainReceipt>, ChainWalletError> {
    let Some(tx) = journaled(wallet, account)? else {
        return Ok(None);
    };
    let (status, _) = miners.status(&tx).await?;
    let (state, _) = miners.account(account).await?;
    if confirmations(&status).is_none()
        && tx
            .order
            .sequence()
            .is_some_and(|sequence| sequence < state.sequence)
    {
        // Another transfer took this sequence (signed elsewhere): this one can never confirm.
        wallet.clear_pending(account)?;
        return Ok(None);
    }
    let (receipt, _) = settle(wallet, miners, &tx, waiting, progress).await?;
    Ok(Some(receipt))
}

/// Waits for `tx`'s confirmations, keeps it as a receipt and clears its journal entry.
pub(crate) async fn settle(
    wallet: &Wallet,
    miners: &Miners,
    tx: &Transaction,
    waiting: Waiting,
    progress: &mut (dyn FnMut(SendEvent) + Send),
) -> Result<(ChainReceipt, PathBuf), ChainWalletError> {
    let (height, confirmations) = await_confirmations(miners, tx, waiting, progress).await?;
    let receipt = ChainReceipt {
        id: tx.id(),
        height,
        confirmations,
        order: tx.to_signed_order(),
    };
    let path = wallet.save_chain_receipt(&receipt)?;
    wallet.clear_pending_of(&tx.order)?;
    Ok((receipt, path))
}

/// What `send` did.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The confirmed transfer.
    pub receipt: ChainReceipt,
    /// Where the wallet keeps the receipt.
    pub path: PathBuf,
    /// The miner that took the transfer first.
    pub miner: String,
    /// An interrupted earlier transfer that was settled first.
    pub finished: Option<ChainReceipt>,
    /// Receipted transfers the chain had lost, sent again and confirmed first.
    pub restored: Vec<ChainReceipt>,
}

/// Pays `amount` from `key` to `recipient` and waits for `waiting.confirmations`,
/// settling first a transfer this account left in flight. `progress` hears what it waits
/// for.
pub async fn send(
    wallet: &Wallet,
    miners: &Miners,
    key: &SecretKey,
    recipient: AccountId,
    amount: Amount,
    waiting: Waiting,
    progress: &mut (dyn FnMut(SendEvent) + Send),
) -> Result<Sent, ChainWalletError> {
    let account = key.account();
    if amount.is_zero() {
        return Err(ChainWalletError::ZeroAmount);
    }
    if recipient == account {
        return Err(ChainWalletError::SelfPayment);
    }
    let order = |sequence| {
        Order::Transfer(tally_core::Transfer {
            sender: account,
            recipient,
            amount,
            sequence,
        })
    };
    send_order(wallet, miners, key, amount, order, waiting, progress).await
}

/// Pays every output from `key` at once, as one `Split` (one sequence, all or nothing), and
/// waits for `waiting.confirmations`, settling first a spend this account left in flight.
/// The split is checked (1 to 64 outputs, none zero, none to the sender, no recipient
/// twice) before anything is signed.
pub async fn send_split(
    wallet: &Wallet,
    miners: &Miners,
    key: &SecretKey,
    outputs: Vec<Payment>,
    waiting: Waiting,
    progress: &mut (dyn FnMut(SendEvent) + Send),
) -> Result<Sent, ChainWalletError> {
    let mut split = Split {
        sender: key.account(),
        sequence: 0,
        outputs,
    };
    let total = split.total()?;
    let order = move |sequence| {
        split.sequence = sequence;
        Order::Split(split)
    };
    send_order(wallet, miners, key, total, order, waiting, progress).await
}

/// Signs the order `order` builds for the account's next sequence (it debits `total`),
/// journals it, pushes it and follows it to its confirmations.
pub(crate) async fn send_order(
    wallet: &Wallet,
    miners: &Miners,
    key: &SecretKey,
    total: Amount,
    order: impl FnOnce(u64) -> Order,
    waiting: Waiting,
    progress: &mut (dyn FnMut(SendEvent) + Send),
) -> Result<Sent, ChainWalletError> {
    let account = key.account();
    // One process at a time signs for this account (two could each sign for one slot).
    let _held = wallet.lock_key(&account).await?;
    let finished = finish_journaled(wallet, miners, &account, waiting, progress).await?;
    let (mut state, _) = miners.account(&account).await?;
    let restored = restore_lost(
        wallet,
        miners,
        &account,
        state.next_sequence,
        waiting,
        progress,
    )
    .await?;
    if !restored.is_empty() {
        state = miners.account(&account).await?.0;
    }
    let spendable = state.balance.checked_sub(state.pending_out);
    if spendable.is_none_or(|spendable| spendable < total) {
        return Err(ChainWalletError::InsufficientFunds {
            account,
            balance: state.balance,
            pending_out: state.pending_out,
            amount: total,
        });
    }
    let tx = Transaction::sign(order(state.next_sequence), key, miners.network());
    wallet.set_pending(&tx.to_signed_order())?;
    let miner = match miners.push(&tx).await {
        Ok(miner) => miner.to_owned(),
        Err(error) => {
            // Refused by a miner, or no miner took it: nobody holds it, nothing to finish.
            wallet.clear_pending(&account)?;
            return Err(ChainWalletError::NotPushed(Box::new(error)));
        }
    };
    let (receipt, path) = settle(wallet, miners, &tx, waiting, progress).await?;
    Ok(Sent {
        receipt,
        path,
        miner,
        finished,
        restored,
    })
}

/// The spend a wallet has in flight for an account, and how far it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// The transaction id.
    pub id: Digest,
    /// What it pays in all (a split's total).
    pub amount: Amount,
    /// To whom (a split's first output).
    pub recipient: AccountId,
    /// How many recipients it pays: 1 for a transfer, the outputs of a split.
    pub payments: usize,
    /// Its confirmations so far (0 while pending or lost).
    pub confirmations: u64,
}

/// An account at a miner's tip, with the transfer this wallet has in flight for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBalance {
    /// The account.
    pub account: AccountId,
    /// Its confirmed and pending figures, and the tip they are at.
    pub state: RespAccount,
    /// The miner that answered.
    pub miner: String,
    /// The transfer this wallet journaled for it, if any.
    pub in_flight: Option<InFlight>,
}

/// Confirmed and pending amounts of `account` at a miner's tip, and the confirmations of
/// the transfer this wallet has in flight for it, if any.
pub async fn balance(
    wallet: &Wallet,
    miners: &Miners,
    account: &AccountId,
) -> Result<ChainBalance, ChainWalletError> {
    let (state, miner) = miners.account(account).await?;
    let miner = miner.to_owned();
    let in_flight = match journaled(wallet, account)? {
        Some(tx) => {
            let (status, _) = miners.status(&tx).await?;
            let payments = tx.order.payments();
            let amount = payments
                .iter()
                .try_fold(Amount::ZERO, |sum, p| sum.checked_add(p.amount));
            payments
                .first()
                .zip(amount)
                .map(|(first, amount)| InFlight {
                    id: tx.id(),
                    amount,
                    recipient: first.recipient,
                    payments: payments.len(),
                    confirmations: confirmations(&status).map_or(0, |(_, have)| have),
                })
        }
        None => None,
    };
    Ok(ChainBalance {
        account: *account,
        state,
        miner,
        in_flight,
    })
}

/// One miner's answer to a probe: its tip, or why it did not answer.
#[derive(Debug)]
pub struct MinerProbe {
    /// Where it was asked.
    pub address: String,
    /// Its tip, or the failure.
    pub tip: Result<Tip, MinerError>,
}

/// Asks every miner for its tip (through an account query about `probe`, which may be any
/// account).
pub async fn probe_miners(miners: &Miners, probe: &AccountId) -> Vec<MinerProbe> {
    let mut probes = Vec::with_capacity(miners.addresses.len());
    for address in &miners.addresses {
        let tip = miner::account(address, probe, miners.limits)
            .await
            .map(|state| state.tip);
        probes.push(MinerProbe {
            address: address.clone(),
            tip,
        });
    }
    probes
}

/// Most ledger pages [`ledger`] reads (a page holds up to 1,000 accounts).
pub const MAX_LEDGER_PAGES: usize = 100;

/// Every account at one tip, as one miner reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainLedger {
    /// The tip the figures are at.
    pub tip: Tip,
    /// The sum of every balance: genesis plus every block reward.
    pub supply: Amount,
    /// How many accounts hold something or have sent.
    pub total: u64,
    /// The accounts read, in increasing order.
    pub accounts: Vec<LedgerAccount>,
    /// The miner that answered.
    pub miner: String,
    /// Whether every account was read (false past [`MAX_LEDGER_PAGES`] pages).
    pub complete: bool,
}

/// The chain tip, the supply and every account at the tip, all from one miner; read again
/// from the start if the tip moves between pages, so that two states are never mixed.
pub async fn ledger(miners: &Miners) -> Result<ChainLedger, ChainWalletError> {
    'read: loop {
        let (first, address) = miners
            .ask(|address, limits| async move {
                miner::ledger(&address, None, MAX_LEDGER_PAGE, limits).await
            })
            .await?;
        let mut accounts = first.accounts;
        let mut next = first.next;
        let mut pages = 1;
        while let Some(after) = next {
            if pages >= MAX_LEDGER_PAGES {
                break;
            }
            let page = miner::ledger(address, Some(after), MAX_LEDGER_PAGE, miners.limits).await?;
            if page.tip != first.tip {
                continue 'read;
            }
            accounts.extend(page.accounts);
            next = page.next;
            pages += 1;
        }
        return Ok(ChainLedger {
            tip: first.tip,
            supply: first.supply,
            total: first.total,
            accounts,
            miner: address.to_owned(),
            complete: next.is_none(),
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn confirmations_are_read_from_confirmed_and_buried_statuses_only() {
        let confirmed = TxStatus::Confirmed {
            height: 7,
            confirmations: 3,
        };
        assert_eq!(confirmations(&confirmed), Some((7, 3)));
        assert_eq!(
            confirmations(&TxStatus::Buried { confirmations: 9 }),
            Some((0, 9))
        );
        assert_eq!(confirmations(&TxStatus::Pending), None);
        assert_eq!(confirmations(&TxStatus::Unknown), None);
    }

    /// A receipt of `key`'s transfer of `sequence`.
    fn receipt(key: &SecretKey, sequence: u64) -> ChainReceipt {
        let network = NetworkId([7; 32].into());
        let tx = Transaction::sign(
            tally_core::Transfer {
                sender: key.account(),
                recipient: SecretKey::from_bytes([9; 32]).account(),
                amount: Amount::from_microcash(5),
                sequence,
            },
            key,
            &network,
        );
        ChainReceipt {
            id: tx.id(),
            height: 1 + sequence,
            confirmations: 3,
            order: tx.to_signed_order(),
        }
    }

    /// The receipts the chain lost are exactly this account's at or above the sequence
    /// the chain expects, in sequence order (so they can be sent again in order); the
    /// others, and other accounts' receipts, are left alone.
    #[test]
    fn lost_receipts_are_the_accounts_own_from_the_chains_sequence_up_in_order() {
        let mine = SecretKey::from_bytes([1; 32]);
        let other = SecretKey::from_bytes([2; 32]);
        let receipts = vec![
            receipt(&mine, 4),
            receipt(&other, 3),
            receipt(&mine, 1),
            receipt(&mine, 3),
            receipt(&mine, 2),
        ];
        let lost = lost_receipts(receipts.clone(), &mine.account(), 3);
        let sequences: Vec<Option<u64>> = lost.iter().map(|r| r.order.order.sequence()).collect();
        assert_eq!(sequences, vec![Some(3), Some(4)]);
        assert!(
            lost.iter()
                .all(|r| r.order.order.signer() == Some(mine.account()))
        );
        // A chain that holds every receipted transfer lost none.
        assert!(lost_receipts(receipts, &mine.account(), 5).is_empty());
    }

    #[test]
    fn an_overdraft_is_told_in_cash() {
        let error = ChainWalletError::InsufficientFunds {
            account: SecretKey::from_bytes([1; 32]).account(),
            balance: Amount::from_microcash(1_000_000_000),
            pending_out: Amount::from_microcash(1_500_000),
            amount: Amount::from_microcash(99_999),
        };
        let text = error.to_string();
        assert!(
            text.ends_with(
                "holds 1000 cash (1.5 cash pending out): not enough to pay 0.099999 cash"
            ),
            "{text}"
        );
    }

    #[test]
    fn only_a_journaled_transfer_is_a_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let wallet = Wallet::open(dir.path()).unwrap();
        let key = SecretKey::from_bytes([2; 32]);
        let network = NetworkId(Digest::from([3; 32]));
        assert_eq!(journaled(&wallet, &key.account()).unwrap(), None);
        let transfer = tally_core::Transfer {
            sender: key.account(),
            recipient: SecretKey::from_bytes([4; 32]).account(),
            amount: Amount::from_microcash(5),
            sequence: 0,
        };
        let tx = Transaction::sign(transfer, &key, &network);
        wallet.set_pending(&tx.to_signed_order()).unwrap();
        assert_eq!(journaled(&wallet, &key.account()).unwrap(), Some(tx));
        let intro = tally_core::SignedOrder::sign(
            Order::IntroKey(tally_core::IntroKey {
                account: key.account(),
                proof_of_work: 1,
            }),
            &key,
            &network,
        );
        wallet.set_pending(&intro).unwrap();
        assert_eq!(journaled(&wallet, &key.account()).unwrap(), None);
    }
}
