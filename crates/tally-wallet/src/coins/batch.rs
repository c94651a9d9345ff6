//! Powning many coins at once: every order of a batch goes to each validator in one
//! pipelined exchange (the validator decides them in one batch, one commit), and so do the
//! certificates.
//!
//! A batch journals all the orders it signs in **one** file, a [`BatchJournal`] in
//! `pending/` that also holds the fresh coins they pay, and makes its files durable at
//! barriers instead of one sync per file:
//!
//! 1. the old coins moved to `Limbo`, the batch journal written; **barrier**, and only then
//!    do the validators see the orders;
//! 2. each proof kept: a certificate as the new coin's funding, in its file written
//!    straight into the Bank (a chain's proof as a receipt, its coin into `Limbo`);
//!    **barrier**;
//! 3. the old coins to `Spent`; the orders still open journaled on their own (each fresh
//!    coin into `Limbo`); **barrier**; the batch journal removed, refused coins moved back;
//!    **barrier** before anything is returned.
//!
//! A crash inside a step loses some of that step's writes, never an earlier step's: before
//! barrier 1 no validator has seen an order; after it every order and every fresh key is
//! journaled; after barrier 2 every proof is kept. An interrupted batch's journal is turned
//! into what single operations leave ([`recover_batches`], run by the next `pown_many` and
//! by `find`), and `find` finishes it from there. Per coin a batch creates one file (the
//! new coin) and renames two (the old coin, twice): file creations are what the kernel
//! spends most on here.

use std::collections::HashMap;
use std::sync::Arc;

use tally_core::{AccountId, Coin, CoinFile, Order, OrderDigest, SecretKey, SignedOrder, Transfer};

use super::ledger::{CoinLedger, NotSpent};
use super::ops::{check_may_spend, landed, pairs, settle, undo_refused};
use super::store::{CoinFolder, CoinStore, ListedCoin};
use super::{CoinOpError, FreshKeys};
use crate::Wallet;
use crate::fs::SyncBatch;
use crate::wallet::BatchJournal;

/// One coin's pown: its new coin and the proof, or why not.
pub type Powned<L> = Result<(ListedCoin, <L as CoinLedger>::Proof), CoinOpError>;

/// Orders per pipelined exchange.
const BATCH: usize = 256;

/// Powns `coins` (each to a fresh key of this wallet) in pipelined batches; each coin's
/// result in order: its new coin and the pown's proof, or why not.
pub async fn pown_many<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    coins: &[ListedCoin],
) -> Result<Vec<Powned<L>>, CoinOpError> {
    recover_batches(wallet, store)?;
    let mut results = Vec::with_capacity(coins.len());
    for batch in coins.chunks(BATCH) {
        let proven = prove_batch(wallet, net, store, keys, batch).await?;
        let settled = proven.settle_proven();
        results.extend(proven.finish(net, settled).await?);
    }
    Ok(results)
}

/// What step 1 does for one coin: finish the order journaled for it, or sign one paying
/// a fresh coin of this key.
enum Plan {
    Resume(SignedOrder),
    Sign(SecretKey),
}

/// One coin on its way: where it came from, where it waits, its signed order, and the new
/// coin when this batch made it (a resumed order's new coin is found by searching).
struct InFlight {
    origin: CoinFolder,
    in_limbo: ListedCoin,
    signed: SignedOrder,
    fresh: Option<Coin>,
}

/// A batch after step 2: every order journaled and sent, every proof kept.
struct ProvenBatch<L: CoinLedger> {
    wallet: Wallet,
    store: CoinStore,
    sync: Arc<SyncBatch>,
    /// The batch journal, if the batch signed any order.
    journal: Option<std::path::PathBuf>,
    results: Vec<Option<Powned<L>>>,
    flying: Vec<InFlight>,
    proven: Vec<Result<L::Proof, NotSpent>>,
    /// Per flight, the new coin step 2 wrote into the Bank, funded (an order this batch
    /// signed, proven by a certificate).
    banked: Vec<Option<ListedCoin>>,
    slots: Vec<usize>,
}

/// Steps 1 and 2 for one batch.
async fn prove_batch<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    coins: &[ListedCoin],
) -> Result<ProvenBatch<L>, CoinOpError> {
    // The orders journaled for these coins, read once: their votes are ours, and step 1
    // finishes them instead of signing new ones.
    let mut journaled: HashMap<AccountId, SignedOrder> = HashMap::new();
    for coin in coins {
        if let Some(order) = wallet.pending(&coin.account)? {
            journaled.insert(coin.account, order);
        }
    }
    let own: HashMap<AccountId, OrderDigest> = journaled
        .iter()
        .map(|(account, order)| (*account, order.order.digest(store.network())))
        .collect();
    let detections = net.detect(&pairs(coins), &own).await;
    let sync = Arc::new(SyncBatch::default());
    let (wallet, store) = (wallet.batched(&sync), store.batched(&sync));
    let mut results: Vec<Option<Powned<L>>> = Vec::with_capacity(coins.len());
    let mut to_sign = Vec::new();
    for (listed, detection) in coins.iter().zip(&detections) {
        if let Err(error) = check_may_spend(listed) {
            results.push(Some(Err(error)));
            continue;
        }
        // Never sign beside a vote for an order this wallet did not make.
        if detection.contested > 0 {
            results.push(Some(Err(CoinOpError::Contested(listed.account))));
            continue;
        }
        to_sign.push((results.len(), listed));
        results.push(None);
    }

    // Step 1: sign every order (fresh keys reserved together), the old coins moved on
    // every core, one journal for all.
    let unjournaled = to_sign
        .iter()
        .filter(|(_, listed)| !journaled.contains_key(&listed.account))
        .count();
    let mut secrets = keys.fresh_keys(unjournaled)?.into_iter();
    let mut plans = Vec::with_capacity(to_sign.len());
    for (slot, listed) in to_sign {
        let plan = match journaled.remove(&listed.account) {
            Some(order) => Plan::Resume(order),
            None => Plan::Sign(
                secrets
                    .next()
                    .ok_or_else(|| CoinOpError::Refused("fewer fresh keys than coins".into()))?,
            ),
        };
        plans.push((slot, *listed, plan));
    }
    let network = *net.network();
    let flying = par_map(&plans, |(_, listed, plan)| {
        let (signed, fresh) = match plan {
            Plan::Resume(order) => (order.clone(), None),
            Plan::Sign(secret) => {
                let new = Coin {
                    network: *store.network(),
                    denomination: listed.denomination,
                    secret: secret.clone(),
                    funding: None,
                };
                let coin = store.read(listed)?;
                let signed = SignedOrder::sign(
                    Order::Transfer(Transfer {
                        sender: coin.account(),
                        recipient: new.account(),
                        amount: coin.amount(),
                        sequence: 0,
                    }),
                    &coin.secret,
                    &network,
                );
                (signed, Some(new))
            }
        };
        Ok(InFlight {
            origin: listed.folder,
            in_limbo: store.move_to(listed, CoinFolder::Limbo)?,
            signed,
            fresh,
        })
    })?;
    let slots: Vec<usize> = plans.iter().map(|plan| plan.0).collect();
    let signed_here: Vec<&InFlight> = flying.iter().filter(|f| f.fresh.is_some()).collect();
    let journal = if signed_here.is_empty() {
        None
    } else {
        let fresh = signed_here.iter().filter_map(|f| f.fresh.clone()).collect();
        Some(wallet.set_pending_batch(&BatchJournal {
            orders: signed_here.iter().map(|f| f.signed.clone()).collect(),
            coins: CoinFile::new(fresh)?.to_json(),
        })?)
    };
    sync.barrier()?;

    // Step 2: the network sees the orders; every proof is kept.
    let orders: Vec<SignedOrder> = flying.iter().map(|f| f.signed.clone()).collect();
    let proven = net.prove_many(&wallet, &orders).await;
    // Each proof is kept: in the new coin's own file when this batch made the coin and
    // the network's proof is a certificate (the file then holds its funding), else as a
    // receipt.
    let outcomes: Vec<(&InFlight, Option<&L::Proof>)> = flying
        .iter()
        .zip(&proven)
        .map(|(flight, outcome)| (flight, outcome.as_ref().ok()))
        .collect();
    let banked = par_map(&outcomes, |(flight, proof)| {
        let Some(proof) = proof else {
            return Ok(None);
        };
        match funded_coin::<L>(flight, proof) {
            Some(funded) => {
                store.put(CoinFolder::Bank, &funded)?;
                Ok(Some(ListedCoin {
                    account: funded.account(),
                    denomination: funded.denomination,
                    folder: CoinFolder::Bank,
                }))
            }
            None => {
                // Where `settle` looks for the coin a proven order paid.
                if let Some(fresh) = &flight.fresh {
                    store.put(CoinFolder::Limbo, fresh)?;
                }
                L::keep(&wallet, proof)?;
                Ok(None)
            }
        }
    })?;
    let proofs: Vec<L::Proof> = proven.iter().flatten().cloned().collect();
    sync.barrier()?;
    net.announce(&proofs).await;
    Ok(ProvenBatch {
        wallet,
        store,
        sync,
        journal,
        results,
        flying,
        proven,
        banked,
        slots,
    })
}

impl<L: CoinLedger> ProvenBatch<L> {
    /// Step 3 for the proven coins, on every core: the old coin spent (and a resumed
    /// order's own journal entry cleared; the new coin of an order this batch signed is in
    /// the Bank already).
    fn settle_proven(&self) -> Result<Vec<Result<ListedCoin, CoinOpError>>, CoinOpError> {
        let (wallet, store) = (&self.wallet, &self.store);
        let proven_flights: Vec<(&InFlight, &L::Proof, &Option<ListedCoin>)> = self
            .flying
            .iter()
            .zip(&self.proven)
            .zip(&self.banked)
            .filter_map(|((flight, outcome), banked)| {
                Some((flight, outcome.as_ref().ok()?, banked))
            })
            .collect();
        par_map(&proven_flights, |(flight, proof, banked)| {
            if flight.fresh.is_none() {
                wallet.clear_pending(&flight.in_limbo.account)?;
            }
            Ok(match banked {
                // The old coin waits in `Limbo`; the new one is in the Bank already.
                Some(new) => store
                    .move_to(&flight.in_limbo, CoinFolder::Spent)
                    .map(|_| *new),
                None => {
                    settle::<L>(store, proof).and_then(|_| landed(store, L::proven_order(proof)))
                }
            })
        })
    }

    /// Settles what was not proven (one by one: it may ask the network), passes the last
    /// barrier; each coin's result in order.
    async fn finish(
        self,
        net: &L,
        settled: Result<Vec<Result<ListedCoin, CoinOpError>>, CoinOpError>,
    ) -> Result<Vec<Powned<L>>, CoinOpError> {
        let ProvenBatch {
            wallet,
            store,
            sync,
            journal,
            mut results,
            flying,
            proven,
            banked: _,
            slots,
        } = self;
        let mut settled = settled?.into_iter();
        let mut refused = Vec::new();
        for ((flight, outcome), slot) in flying.iter().zip(proven).zip(slots) {
            results[slot] = Some(match outcome {
                Ok(proof) => match settled.next() {
                    Some(coin) => coin.map(|coin| (coin, proof)),
                    None => Err(CoinOpError::Refused("a proven pown was not settled".into())),
                },
                // Votes may be held for it: it stays journaled, on its own from now on,
                // with its fresh coin where single operations keep one.
                Err(NotSpent::Open(error)) => {
                    if let Some(fresh) = &flight.fresh {
                        store.put(CoinFolder::Limbo, fresh)?;
                        wallet.set_pending(&flight.signed)?;
                    }
                    Err(error)
                }
                Err(NotSpent::Refused(error)) => {
                    refused.push(flight);
                    Err(error)
                }
            });
        }
        sync.barrier()?;
        if let Some(path) = &journal {
            wallet.clear_pending_batch(path)?;
        }
        // Nothing is in flight for these: the coins go back where they were.
        for flight in refused {
            undo_refused(net, &store, &flight.in_limbo, flight.origin, &flight.signed).await?;
        }
        sync.barrier()?;
        // Every slot was filled: the coins refused up front at once, the others just above.
        Ok(results.into_iter().flatten().collect())
    }
}

/// The new coin of a pown this batch signed, holding the certificate that funds it: for
/// a network whose proofs are certificates, and only if the proof is of the order signed.
fn funded_coin<L: CoinLedger>(flight: &InFlight, proof: &L::Proof) -> Option<Coin> {
    let fresh = flight.fresh.as_ref()?;
    if L::proven_order(proof) != &flight.signed.order {
        return None;
    }
    Some(Coin {
        funding: Some(L::funding(proof)?),
        ..fresh.clone()
    })
}

/// Turns what interrupted batches left into what single operations leave, which every
/// operation and [`super::find`] know how to finish: each journaled order journaled on its
/// own, each fresh coin the wallet does not hold yet written to `Limbo`, each durably;
/// then the batch journal goes. Returns how many journals it turned.
pub fn recover_batches(wallet: &Wallet, store: &CoinStore) -> Result<usize, CoinOpError> {
    let batches = wallet.pending_batches()?;
    for (path, journal) in &batches {
        let coins = CoinFile::from_json(&journal.coins)
            .map_err(|e| CoinOpError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?
            .into_coins();
        for coin in &coins {
            if store.locate(&coin.account())?.is_none() {
                store.put(CoinFolder::Limbo, coin)?;
            }
        }
        for order in &journal.orders {
            // A coin already spent settled its order: nothing is left to finish.
            let settled = match order.order.signer() {
                Some(signer) => store
                    .locate(&signer)?
                    .is_some_and(|coin| coin.folder == CoinFolder::Spent),
                None => false,
            };
            if !settled {
                wallet.set_pending(order)?;
            }
        }
        wallet.clear_pending_batch(path)?;
        tracing::info!(path = %path.display(), orders = journal.orders.len(), "an interrupted batch's journal was turned into single entries");
    }
    Ok(batches.len())
}

/// Coins per thread below which [`par_map`] does not split the work.
const MIN_PER_THREAD: usize = 32;

/// `work` on every item, on up to one thread per core (a file's create or rename costs
/// kernel CPU, which one thread cannot spread), results in order; the first error is
/// returned.
fn par_map<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> Result<R, CoinOpError> + Sync,
) -> Result<Vec<R>, CoinOpError> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let threads = cores.min(items.len() / MIN_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(&work).collect();
    }
    let work = &work;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|part| scope.spawn(move || part.iter().map(work).collect::<Result<Vec<R>, _>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for part in parts {
            match part.join() {
                Ok(done) => out.extend(done?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(out)
    })
}
