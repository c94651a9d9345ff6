//! What the pages and the API show, gathered from the wallet library: the wallet's
//! accounts on each network with how many validators agree, its receipts each checked
//! against the network contract, the validators, an account's history, a certificate.
//! Every view is plain data (serialised as the API's answers; rendered by `pages`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;
use tally_core::{AccountId, Amount, Certificate, Digest, SignedCash};
use tally_wallet::{Wallet, ops, views};

use crate::{Network, Shared};

/// One account of the wallet on one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountView {
    /// The network's position in the served list, and its name.
    pub network: usize,
    pub network_name: String,
    pub account: AccountId,
    pub label: Option<String>,
    /// The balance most validators report, in microcash (absent when none answered).
    pub balance: Option<i128>,
    /// The same in cash, as a person reads it.
    pub balance_cash: String,
    /// How many validators report exactly that balance, of how many, and the quorum.
    pub agree: usize,
    pub validators: usize,
    pub quorum: usize,
    /// Why the balance is unknown, in words.
    pub error: Option<String>,
}

/// Every account of the wallet on every network served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletView {
    pub accounts: Vec<AccountView>,
}

/// A certificate as a person reads it, checked against the contract of the network it
/// belongs to.
#[derive(Clone, Debug, Serialize)]
pub struct ReceiptView {
    /// The order's digest (the certificate's id).
    pub checksum: String,
    pub kind: &'static str,
    /// The account that signed it, and the slot it took.
    pub from: Option<AccountId>,
    pub sequence: Option<u64>,
    /// Who it pays, and how much (cash).
    pub payments: Vec<PaymentView>,
    /// The network whose committee signed it, if any served one did.
    pub network_name: Option<String>,
    /// Votes it carries, and the committee's size.
    pub votes: usize,
    pub validators: usize,
    /// Whether every vote is a committee member's valid signature and there are a quorum.
    pub verified: bool,
    /// "signed by 3 of 4 validators: verified", or why not.
    pub verdict: String,
}

/// One payment an order makes.
#[derive(Clone, Debug, Serialize)]
pub struct PaymentView {
    pub recipient: AccountId,
    pub amount: String,
}

/// One validator as a wallet sees it now.
#[derive(Clone, Debug, Serialize)]
pub struct ValidatorView {
    pub validator: AccountId,
    pub address: String,
    pub up: bool,
    /// Certificates it has applied, and how many fewer than the most any validator has.
    pub certificates: Option<u64>,
    pub lag: Option<u64>,
    pub error: Option<String>,
}

/// One validator's answer for an account.
#[derive(Clone, Debug, Serialize)]
pub struct AccountAnswer {
    pub validator: AccountId,
    pub balance: Option<String>,
    pub next_sequence: Option<u64>,
    pub error: Option<String>,
}

/// An account as the explorer shows it: each validator's view and its history.
#[derive(Clone, Debug, Serialize)]
pub struct AccountPage {
    pub network_name: String,
    pub account: AccountId,
    pub balance_cash: String,
    pub agree: usize,
    pub validators: usize,
    pub answers: Vec<AccountAnswer>,
    /// Certificates that moved its balance, oldest first, with their log positions.
    pub history: Vec<(u64, ReceiptView)>,
}

fn cash(microcash: i128) -> String {
    SignedCash(microcash).to_string()
}

/// Every account on every network: each network's validators asked once for all the
/// wallet's accounts, the networks at once.
pub async fn wallet(shared: &Shared) -> Result<WalletView, String> {
    let wallet = shared.open_wallet()?;
    let keys: Vec<(AccountId, Option<String>)> = wallet
        .keys()
        .iter()
        .map(|key| (key.account, key.label.clone()))
        .collect();
    let asks = shared
        .networks
        .iter()
        .enumerate()
        .map(|(index, network)| accounts_on(index, network, &keys));
    Ok(WalletView {
        accounts: join_all(asks).await.into_iter().flatten().collect(),
    })
}

/// How long one asking of the accounts serves every open page's live balances.
pub const WALLET_FRESH_FOR: Duration = Duration::from_secs(1);

/// [`wallet`], asked at most once per [`WALLET_FRESH_FOR`] however many pages are open:
/// what the pages' event streams use (a page itself, after a payment, asks afresh).
pub async fn wallet_shared(shared: &Shared) -> Result<WalletView, String> {
    if let Some((asked, view)) = shared
        .wallet_view
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        && asked.elapsed() < WALLET_FRESH_FOR
    {
        return Ok(view.clone());
    }
    let view = wallet(shared).await?;
    *shared
        .wallet_view
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), view.clone()));
    Ok(view)
}

async fn accounts_on(
    index: usize,
    network: &Network,
    keys: &[(AccountId, Option<String>)],
) -> Vec<AccountView> {
    let client = &network.client;
    let accounts: Vec<AccountId> = keys.iter().map(|(account, _)| *account).collect();
    let seen = views::balances(client, &accounts).await;
    keys.iter()
        .zip(seen)
        .map(|((account, label), seen)| {
            let (balance, agree, error) = match seen {
                Ok(seen) if seen.agree > 0 => (Some(seen.balance), seen.agree, None),
                Ok(_) => (None, 0, Some("no validator answered".to_string())),
                Err(error) => (None, 0, Some(error.to_string())),
            };
            AccountView {
                network: index,
                network_name: network.contract.name.clone(),
                account: *account,
                label: label.clone(),
                balance,
                balance_cash: balance.map_or_else(|| "unknown".into(), cash),
                agree,
                validators: network.contract.validators.len(),
                quorum: client.committee().quorum(),
                error,
            }
        })
        .collect()
}

impl ReceiptView {
    /// `certificate`, checked against the network among `networks` whose id it was
    /// signed for.
    pub(crate) fn of(certificate: &Certificate, networks: &[Network]) -> ReceiptView {
        let order = &certificate.order;
        let mine = networks
            .iter()
            .find(|n| order.digest(n.client.network()) == certificate.checksum);
        let (verified, verdict) = match mine {
            Some(network) => {
                match certificate.verify(network.client.committee(), network.client.network()) {
                    Ok(_) => (
                        true,
                        format!(
                            "signed by {} of {} validators: verified",
                            certificate.votes.len(),
                            network.contract.validators.len()
                        ),
                    ),
                    Err(error) => (false, format!("NOT verified: {error}")),
                }
            }
            None => (
                false,
                "NOT verified: it was signed for none of the networks shown here".to_string(),
            ),
        };
        ReceiptView {
            checksum: certificate.checksum.to_string(),
            kind: order.kind_name(),
            from: order.signer(),
            sequence: order.sequence(),
            payments: order
                .payments()
                .into_iter()
                .map(|payment| PaymentView {
                    recipient: payment.recipient,
                    amount: payment.amount.to_string(),
                })
                .collect(),
            network_name: mine.map(|n| n.contract.name.clone()),
            votes: certificate.votes.len(),
            validators: mine.map_or(0, |n| n.contract.validators.len()),
            verified,
            verdict,
        }
    }
}

/// The receipts read so far, by id. A kept receipt never changes, so each page reads
/// only the receipts that arrived since the last (a wallet of 10,000 receipts is read once,
/// not on every page).
#[derive(Default)]
pub(crate) struct ReceiptCache {
    read: Mutex<HashMap<Digest, Arc<Certificate>>>,
}

impl ReceiptCache {
    /// Every receipt `wallet` keeps now (blocking: reads the new ones' files).
    fn current(&self, wallet: &Wallet) -> Result<Vec<Arc<Certificate>>, String> {
        let ids = wallet.receipt_ids().map_err(|e| e.to_string())?;
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        let present: HashSet<Digest> = ids.iter().copied().collect();
        read.retain(|id, _| present.contains(id));
        for id in ids {
            if read.contains_key(&id) {
                continue;
            }
            if let Some(certificate) = wallet.receipt(&id).map_err(|e| e.to_string())? {
                read.insert(id, Arc::new(certificate));
            }
        }
        Ok(read.values().cloned().collect())
    }
}

/// The wallet's receipts, newest first as far as the sequence tells, at most `limit`,
/// and how many there are.
pub async fn receipts(
    shared: &Arc<Shared>,
    limit: usize,
) -> Result<(usize, Vec<ReceiptView>), String> {
    let reader = shared.clone();
    let mut all = tokio::task::spawn_blocking(move || {
        let wallet = reader.open_wallet()?;
        reader.receipts.current(&wallet)
    })
    .await
    .map_err(|e| e.to_string())??;
    let total = all.len();
    all.sort_unstable_by_key(|c| std::cmp::Reverse((c.order.sequence(), c.checksum)));
    Ok((
        total,
        all.iter()
            .take(limit)
            .map(|c| ReceiptView::of(c, &shared.networks))
            .collect(),
    ))
}

/// One receipt by its checksum.
pub fn receipt(shared: &Shared, checksum: &str) -> Result<Option<ReceiptView>, String> {
    let digest = checksum
        .parse()
        .map_err(|_| format!("{checksum:?} is not a certificate id (64 hex digits)"))?;
    let wallet = shared.open_wallet()?;
    let found = wallet.receipt(&digest).map_err(|e| e.to_string())?;
    Ok(found.map(|c| ReceiptView::of(&c, &shared.networks)))
}

/// Pays `amount` cash from the wallet's account `from` to `to` on `network`, as `send`
/// does; the receipt on success, why not in words otherwise.
pub async fn pay(
    shared: &Shared,
    network: Option<usize>,
    from: &str,
    to: &str,
    amount: &str,
) -> Result<ReceiptView, String> {
    let network = shared
        .network(network)
        .ok_or_else(|| "no such network".to_string())?;
    let to = AccountId::parse_key(to.trim())
        .map_err(|e| format!("the recipient {:?} is not an account: {e}", to.trim()))?;
    let amount: Amount = amount.trim().parse().map_err(|e| {
        format!(
            "the amount {:?} is not an amount of cash: {e}",
            amount.trim()
        )
    })?;
    let wallet = shared.open_wallet()?;
    let key = wallet
        .find(Some(from.trim()))
        .and_then(|entry| entry.secret_key())
        .map_err(|e| e.to_string())?;
    let receipt = ops::pay(&wallet, &network.client, &key, to, amount)
        .await
        .map_err(|e| format!("the payment was refused: {e}"))?;
    Ok(ReceiptView::of(&receipt.certificate, &shared.networks))
}

/// How long the explorer shows one round of the validators' answers: page views between
/// cost the validators nothing (a thousand views a second would otherwise be four thousand
/// `HELLO`s a second taken from payments).
pub const VALIDATORS_FRESH_FOR: Duration = Duration::from_secs(1);

/// The validators of `network`, whether each answers, and how far behind each is (asked
/// at most once per [`VALIDATORS_FRESH_FOR`]).
pub async fn validators(network: &Network) -> Vec<ValidatorView> {
    if let Some((asked, views)) = network
        .validators
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        && asked.elapsed() < VALIDATORS_FRESH_FOR
    {
        return views.clone();
    }
    let views = ask_validators(network).await;
    if let Some(most) = views.iter().filter_map(|v| v.certificates).max() {
        crate::explorer::sample(network, most);
    }
    *network
        .validators
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), views.clone()));
    views
}

async fn ask_validators(network: &Network) -> Vec<ValidatorView> {
    let answers = network.client.hello_all().await;
    let most = answers
        .iter()
        .filter_map(|a| a.result.as_ref().ok().and_then(|h| h.certificates))
        .max();
    answers
        .into_iter()
        .map(|answer| {
            let certificates = answer.result.as_ref().ok().and_then(|h| h.certificates);
            ValidatorView {
                validator: answer.validator,
                address: answer.address,
                up: answer.result.is_ok(),
                certificates,
                lag: certificates.zip(most).map(|(have, most)| most - have),
                error: answer.result.err().map(|e| e.to_string()),
            }
        })
        .collect()
}

/// The most history entries an account page shows.
pub const HISTORY_PAGE: u32 = 100;

/// `account` on `network`: what each validator says, and its history.
pub async fn account_page(network: &Network, account: &str) -> Result<AccountPage, String> {
    let account = AccountId::parse_key(account.trim())
        .map_err(|e| format!("{:?} is not an account: {e}", account.trim()))?;
    let client = &network.client;
    let seen = views::balance(client, &account)
        .await
        .map_err(|e| e.to_string())?;
    let history = client.history(&account, 0, HISTORY_PAGE).await;
    let networks = std::slice::from_ref(network);
    Ok(AccountPage {
        network_name: network.contract.name.clone(),
        account,
        balance_cash: cash(seen.balance),
        agree: seen.agree,
        validators: seen.views.len(),
        answers: seen
            .views
            .iter()
            .map(|answer| match &answer.result {
                Ok(entry) => AccountAnswer {
                    validator: answer.validator,
                    balance: Some(cash(entry.balance)),
                    next_sequence: Some(entry.next_sequence),
                    error: None,
                },
                Err(error) => AccountAnswer {
                    validator: answer.validator,
                    balance: None,
                    next_sequence: None,
                    error: Some(error.to_string()),
                },
            })
            .collect(),
        history: history
            .iter()
            .map(|logged| (logged.index, ReceiptView::of(&logged.certificate, networks)))
            .collect(),
    })
}

/// The certificate that settled `account`'s slot `sequence` on `network`, if a validator
/// has one that verifies.
pub async fn certificate(
    network: &Network,
    account: &str,
    sequence: u64,
) -> Result<Option<ReceiptView>, String> {
    let account = AccountId::parse_key(account.trim())
        .map_err(|e| format!("{:?} is not an account: {e}", account.trim()))?;
    let found = network.client.sent_certificate(&account, sequence).await;
    Ok(found.map(|c| ReceiptView::of(&c, std::slice::from_ref(network))))
}
