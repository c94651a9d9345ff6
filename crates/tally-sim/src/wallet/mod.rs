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
//! are restored on two devices) pay at the same time, and two holders take in the same
//! bearer coins at the same time (the wallet's own coin operations, with fresh coin keys
//! from the seed).

pub mod link;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tally_core::{
    AccountId, Amount, Certificate, Coin, EscrowId, EscrowSecret, NetworkContract, SecretKey,
};
use tally_wallet::coins::{
    self, CoinFolder, CoinOpError, CoinStore, FreshKeys, ImportOutcome, ListedCoin,
};
use tally_wallet::escrow::{self, LockTerms, Locked};
use tally_wallet::{OpError, QuorumClient, Receipt, Wallet};

pub use link::{Link, Outgoing};

/// Who owns the wallet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The only copy of its key.
    Honest,
    /// One of two copies of one key, each with its own folder.
    Twin,
    /// A wallet that is handed bearer coins (the same coins as another holder) and takes
    /// them in.
    Holder,
    /// A wallet that locks escrows and refunds those nobody claimed.
    EscrowPayer,
    /// A wallet that claims escrows locked for it (it is told the secrets).
    EscrowPayee,
}

/// How a wallet's piece of work ended.
pub enum Done {
    /// `pay`.
    Paid(Box<Result<Receipt, OpError>>),
    /// `escrow lock`.
    Locked(Box<Result<Locked, OpError>>),
    /// `escrow claim` or `escrow refund` of this escrow.
    Settled(EscrowId, Box<Result<Receipt, OpError>>),
    /// `withdraw` then `export`: the coins to hand over.
    Issued(Result<Vec<Coin>, CoinOpError>),
    /// `import` of coins handed over.
    Imported(Result<Vec<ImportOutcome>, CoinOpError>),
    /// `find`, then `pown` of what waits in `Import`: whatever the coin operations left,
    /// settled as far as the network allows now.
    /// What was left unsettled, in words (a journaled order not finished, a coin not
    /// taken in), or the error that stopped the settling.
    CoinsSettled(Result<Vec<String>, CoinOpError>),
}

/// A piece of work in progress.
type Task = Pin<Box<dyn Future<Output = Done>>>;

/// Fresh coin keys from the seed's generator, so that a run replays exactly. The generator
/// lives outside any task: a key handed out before a crash is never handed out again.
#[derive(Clone)]
struct SimKeys(Arc<Mutex<StdRng>>);

impl FreshKeys for SimKeys {
    fn fresh_key(&mut self) -> Result<SecretKey, CoinOpError> {
        let mut rng = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(SecretKey::from_bytes(rand::Rng::r#gen(&mut *rng)))
    }
}

/// One wallet process and its folder.
pub struct WalletProcess {
    pub index: usize,
    pub kind: Kind,
    key: SecretKey,
    dir: PathBuf,
    pub link: Link,
    client: Arc<QuorumClient>,
    keys: SimKeys,
    task: Option<Task>,
    /// Payments it still means to make in the faulty part of the run.
    pub payments_left: u32,
    /// The account's slot split by two orders, when a payment said so (a twin only may).
    pub frozen: Option<String>,
    /// Whether the work in progress began after the network healed (it must succeed).
    pub started_healed: bool,
    /// Coins handed to it and not yet taken in (a holder).
    pub handed: Option<Vec<Coin>>,
    /// Whether its coin operations left something to settle with `find` (a holder).
    pub needs_find: bool,
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
        key_seed: u64,
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
            keys: SimKeys(Arc::new(Mutex::new(StdRng::seed_from_u64(key_seed)))),
            task: None,
            payments_left: 0,
            frozen: None,
            started_healed: false,
            handed: None,
            needs_find: false,
        })
    }

    pub fn account(&self) -> AccountId {
        self.key.account()
    }

    /// Whether a piece of work is in progress.
    pub fn busy(&self) -> bool {
        self.task.is_some()
    }

    fn open(&self) -> Result<(Wallet, CoinStore), String> {
        let wallet = Wallet::open(&self.dir)
            .map_err(|e| format!("wallet {}: cannot open its folder: {e}", self.index))?;
        let store = CoinStore::open(&self.dir, *self.client.network())
            .map_err(|e| format!("wallet {}: cannot open its coins: {e}", self.index))?;
        Ok((wallet, store))
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
        let (wallet, _) = self.open()?;
        let (client, key) = (self.client.clone(), self.key.clone());
        self.start(healed, async move {
            let paid = tally_wallet::ops::pay(&wallet, &client, &key, recipient, amount).await;
            Done::Paid(Box::new(paid))
        });
        Ok(())
    }

    /// Withdraws `amount` from its account into coins and exports them, as `tally wallet
    /// coins withdraw` then `export` do: the coins to hand over.
    pub fn start_issue(&mut self, amount: Amount) -> Result<(), String> {
        let (wallet, store) = self.open()?;
        let (client, key, mut keys) = (self.client.clone(), self.key.clone(), self.keys.clone());
        self.start(false, async move {
            let issued = async {
                coins::withdraw(&wallet, client.as_ref(), &store, &mut keys, &key, amount).await?;
                coins::export(&wallet, client.as_ref(), &store, &mut keys, amount).await
            };
            Done::Issued(issued.await)
        });
        Ok(())
    }

    /// Takes in coins handed over, as `tally wallet coins import` does.
    pub fn start_import(&mut self, handed: Vec<Coin>) -> Result<(), String> {
        let (wallet, store) = self.open()?;
        let (client, mut keys) = (self.client.clone(), self.keys.clone());
        self.start(false, async move {
            Done::Imported(coins::import(&wallet, client.as_ref(), &store, &mut keys, handed).await)
        });
        Ok(())
    }

    /// Settles what its coin operations left, as a person told to does: `tally wallet coins
    /// find` (journaled orders finished, coins in Limbo graded), then `coins pown` (coins
    /// that wait undecided in `Import` taken in).
    pub fn start_settle(&mut self, healed: bool) -> Result<(), String> {
        let (wallet, store) = self.open()?;
        let (client, mut keys) = (self.client.clone(), self.keys.clone());
        self.start(healed, async move {
            let settled = async {
                let found = coins::find(&wallet, client.as_ref(), &store, &mut keys).await?;
                let mut left: Vec<String> = found
                    .unfinished
                    .iter()
                    .map(|(account, why)| {
                        format!("order of {} not finished: {why}", account.short())
                    })
                    .collect();
                let waiting = store.list(CoinFolder::Import)?;
                // A coin another holder took is refused here, and stays where it was.
                let powned =
                    coins::pown_many(&wallet, client.as_ref(), &store, &mut keys, &waiting).await?;
                for (coin, result) in waiting.iter().zip(powned) {
                    if let Err(why) = result {
                        left.push(format!("coin {} not taken in: {why}", coin.account.short()));
                    }
                }
                Ok(left)
            };
            Done::CoinsSettled(settled.await)
        });
        Ok(())
    }

    /// Locks an escrow for `payee` under `secret`'s hash lock until `deadline_ms`, as
    /// `tally wallet escrow lock` does (the secret kept in the folder first).
    pub fn start_escrow_lock(
        &mut self,
        payee: AccountId,
        amount: Amount,
        secret: EscrowSecret,
        deadline_ms: u64,
        healed: bool,
    ) -> Result<(), String> {
        let (wallet, _) = self.open()?;
        wallet
            .keep_secret(&secret)
            .map_err(|e| format!("wallet {}: cannot keep a secret: {e}", self.index))?;
        let (client, key) = (self.client.clone(), self.key.clone());
        let terms = LockTerms {
            payee,
            amount,
            hash_lock: secret.hash_lock(),
            deadline_ms,
            counterpart: None,
        };
        self.start(healed, async move {
            Done::Locked(Box::new(escrow::lock(&wallet, &client, &key, terms).await))
        });
        Ok(())
    }

    /// Claims `escrow` with `secret` (`Some`), or refunds it (`None`), as `tally wallet
    /// escrow claim|refund` do.
    pub fn start_escrow_settle(
        &mut self,
        id: EscrowId,
        secret: Option<EscrowSecret>,
        healed: bool,
    ) -> Result<(), String> {
        let (wallet, _) = self.open()?;
        let client = self.client.clone();
        self.start(healed, async move {
            let result = match secret {
                Some(secret) => escrow::claim(&wallet, &client, id, secret).await,
                None => escrow::refund(&wallet, &client, id).await,
            };
            Done::Settled(id, Box::new(result))
        });
        Ok(())
    }

    fn start(&mut self, healed: bool, task: impl Future<Output = Done> + 'static) {
        self.started_healed = healed;
        self.task = Some(Box::pin(task));
    }

    /// How many of its coins wait in `Import` or `Limbo`: what a settle may still move.
    pub fn unsettled_coins(&self) -> Result<usize, String> {
        let (_, store) = self.open()?;
        let mut count = 0;
        for folder in [CoinFolder::Import, CoinFolder::Limbo] {
            count += store
                .list(folder)
                .map_err(|e| format!("wallet {}: cannot read its coins: {e}", self.index))?
                .len();
        }
        Ok(count)
    }

    /// Where the coin of `account` is in its folders, if it holds it.
    pub fn coin(&self, account: &AccountId) -> Result<Option<ListedCoin>, String> {
        let (_, store) = self.open()?;
        store
            .locate(account)
            .map_err(|e| format!("wallet {}: cannot read its coins: {e}", self.index))
    }

    /// Runs its work as far as the answers it has allow; how it ended, once it has.
    pub fn poll(&mut self) -> Option<Done> {
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

    /// The process dies wherever its work was: the task is dropped, its folder stays.
    pub fn crash(&mut self) {
        self.task = None;
    }

    /// Every certificate its folder keeps (receipts, and the certificates that funded its
    /// coins), in a fixed order.
    pub fn certificates(&self) -> Result<Vec<Certificate>, String> {
        let (wallet, store) = self.open()?;
        let failed = |e: &dyn std::fmt::Display| {
            format!("wallet {}: cannot read what it keeps: {e}", self.index)
        };
        let mut held = wallet.receipts().map_err(|e| failed(&e))?;
        for listed in store.list_all().map_err(|e| failed(&e))? {
            if let Some(funding) = store.read(&listed).map_err(|e| failed(&e))?.funding {
                held.push(funding);
            }
        }
        held.sort_by_key(|c| (c.order.signer(), c.order.sequence(), c.checksum));
        held.dedup_by_key(|c| c.checksum);
        Ok(held)
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
