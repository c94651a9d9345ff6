//! Real wallets in the simulator: the wallet library's own payment code
//! ([`tally_wallet::ops::pay`], with its journal, its first-voter rule, its finishing of
//! held and interrupted orders and its split detection) on a real wallet folder, talking
//! to the simulated validators through a [`Link`]. Each payment is a task the world polls
//! (no runtime: the link's calls are ready exactly when the world has fed them an answer or
//! a timeout), so the wallet runs in simulated time and a seed replays exactly.
//!
//! A wallet process can crash at any await point: its task is dropped, as a killed
//! process stops, and the next payment opens the folder again and finishes what was
//! journaled. Two copies of one wallet (twins: one key, two folders, as when the same words
//! are restored on two devices) pay at the same time.

pub mod link;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tally_core::{AccountId, Amount, Certificate, NetworkContract, SecretKey};
use tally_wallet::{OpError, QuorumClient, Receipt, Wallet};

pub use link::{Link, Outgoing};

/// Who owns the wallet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The only copy of its key.
    Honest,
    /// One of two copies of one key, each with its own folder.
    Twin,
}

/// A payment in progress.
type Task = Pin<Box<dyn Future<Output = Result<Receipt, OpError>>>>;

/// One wallet process and its folder.
pub struct WalletProcess {
    pub index: usize,
    pub kind: Kind,
    key: SecretKey,
    dir: PathBuf,
    pub link: Link,
    client: Arc<QuorumClient>,
    task: Option<Task>,
    /// Payments it still means to make in the faulty part of the run.
    pub payments_left: u32,
    /// The account's slot split by two orders, when a payment said so (a twin only may).
    pub frozen: Option<String>,
    /// Whether the payment in progress began after the network healed (it must succeed).
    pub started_healed: bool,
}

impl WalletProcess {
    /// A wallet holding `key` in a new folder under `root`.
    pub fn new(
        index: usize,
        kind: Kind,
        key: SecretKey,
        root: &Path,
        contract: &NetworkContract,
        skip_first_voter: bool,
        payments: u32,
    ) -> Result<Self, String> {
        let dir = root.join(format!("wallet-{index}"));
        let mut wallet = Wallet::open(&dir)
            .map_err(|e| format!("wallet {index}: cannot open its folder: {e}"))?;
        wallet
            .add_key(Some(key.clone()), None)
            .map_err(|e| format!("wallet {index}: cannot keep its key: {e}"))?;
        let link = Link::new(contract.id(), contract.validators.len());
        let mut client = QuorumClient::with_transport(contract.clone(), Box::new(link.clone()))
            .map_err(|e| format!("wallet {index}: {e}"))?;
        if skip_first_voter {
            client.plant_skip_first_voter();
        }
        Ok(WalletProcess {
            index,
            kind,
            key,
            dir,
            link,
            client: Arc::new(client),
            task: None,
            payments_left: payments,
            frozen: None,
            started_healed: false,
        })
    }

    pub fn account(&self) -> AccountId {
        self.key.account()
    }

    /// Whether a payment is in progress.
    pub fn busy(&self) -> bool {
        self.task.is_some()
    }

    /// Starts paying `amount` to `recipient`, as `tally wallet pay` does: the folder is
    /// opened afresh (what a crash left journaled is finished first). `healed`: the network
    /// has healed, so the payment must succeed.
    pub fn start_payment(
        &mut self,
        recipient: AccountId,
        amount: Amount,
        healed: bool,
    ) -> Result<(), String> {
        self.started_healed = healed;
        let wallet = Wallet::open(&self.dir)
            .map_err(|e| format!("wallet {}: cannot open its folder: {e}", self.index))?;
        let client = self.client.clone();
        let key = self.key.clone();
        self.task = Some(Box::pin(async move {
            tally_wallet::ops::pay(&wallet, &client, &key, recipient, amount).await
        }));
        Ok(())
    }

    /// Runs the payment as far as the answers it has allow; its result once it ends.
    pub fn poll(&mut self) -> Option<Result<Receipt, OpError>> {
        let task = self.task.as_mut()?;
        let mut context = Context::from_waker(futures::task::noop_waker_ref());
        match task.as_mut().poll(&mut context) {
            Poll::Ready(result) => {
                self.task = None;
                Some(result)
            }
            Poll::Pending => None,
        }
    }

    /// The process dies wherever its payment was: the task is dropped, its folder stays.
    pub fn crash(&mut self) {
        self.task = None;
    }

    /// Every certificate its folder keeps, in a fixed order.
    pub fn receipts(&self) -> Result<Vec<Certificate>, String> {
        let wallet = Wallet::open(&self.dir)
            .map_err(|e| format!("wallet {}: cannot open its folder: {e}", self.index))?;
        let mut receipts = wallet
            .receipts()
            .map_err(|e| format!("wallet {}: cannot read its receipts: {e}", self.index))?;
        receipts.sort_by_key(|c| (c.order.signer(), c.order.sequence()));
        Ok(receipts)
    }

    /// Whether its folder still journals an order in flight.
    pub fn has_pending(&self) -> Result<bool, String> {
        let wallet = Wallet::open(&self.dir)
            .map_err(|e| format!("wallet {}: cannot open its folder: {e}", self.index))?;
        wallet
            .pending(&self.account())
            .map(|pending| pending.is_some())
            .map_err(|e| format!("wallet {}: cannot read its journal: {e}", self.index))
    }
}
