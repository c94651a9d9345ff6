//! Powning many coins at once: every order of a batch goes to each validator in one
//! pipelined exchange (the validator decides them in one batch, one commit), and so do the
//! certificates. Each coin is journaled exactly as [`super::pown`] journals it, so a crash
//! anywhere is settled by [`super::find`] as before.

use std::collections::HashMap;

use tally_core::{Certificate, Order, SignedOrder, Transfer};

use super::detect::detect;
use super::ops::{check_may_spend, fresh_coins, landed, own_orders, pairs, settle, undo_refused};
use super::store::{CoinFolder, CoinStore, ListedCoin};
use super::{CoinOpError, FreshKeys};
use crate::{ClientError, QuorumClient, Wallet};

/// Orders per pipelined exchange.
const BATCH: usize = 256;

/// Powns `coins` (each to a fresh key of this wallet) in pipelined batches; each coin's
/// result in order: its new coin and the pown certificate, or why not.
pub async fn pown_many(
    wallet: &Wallet,
    client: &QuorumClient,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    coins: &[ListedCoin],
) -> Result<Vec<Result<(ListedCoin, Certificate), CoinOpError>>, CoinOpError> {
    let mut results = Vec::with_capacity(coins.len());
    for batch in coins.chunks(BATCH) {
        results.extend(pown_batch(wallet, client, store, keys, batch).await?);
    }
    Ok(results)
}

/// One coin on its way: where it came from, where it waits, its signed order.
struct InFlight {
    origin: CoinFolder,
    in_limbo: ListedCoin,
    signed: SignedOrder,
}

async fn pown_batch(
    wallet: &Wallet,
    client: &QuorumClient,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    coins: &[ListedCoin],
) -> Result<Vec<Result<(ListedCoin, Certificate), CoinOpError>>, CoinOpError> {
    let own: HashMap<_, _> = own_orders(wallet, store, coins)?;
    let detections = detect(client, &pairs(coins), &own).await;
    let mut results: Vec<Option<Result<(ListedCoin, Certificate), CoinOpError>>> =
        Vec::with_capacity(coins.len());
    let mut flying = Vec::new();
    let mut slots = Vec::new();
    for (listed, detection) in coins.iter().zip(&detections) {
        let origin = listed.folder;
        if let Err(error) = check_may_spend(listed) {
            results.push(Some(Err(error)));
            continue;
        }
        // Never sign beside a vote for an order this wallet did not make.
        if detection.contested > 0 {
            results.push(Some(Err(CoinOpError::Contested(listed.account))));
            continue;
        }
        let signed = match wallet.pending(&listed.account)? {
            Some(journaled) => journaled,
            None => {
                let coin = store.read(listed)?;
                let fresh = fresh_coins(store, keys, &[listed.denomination])?;
                let signed = SignedOrder::sign(
                    Order::Transfer(Transfer {
                        sender: coin.account(),
                        recipient: fresh[0].account(),
                        amount: coin.amount(),
                        sequence: 0,
                    }),
                    &coin.secret,
                    client.network(),
                );
                wallet.set_pending(&signed)?;
                signed
            }
        };
        let in_limbo = store.move_to(listed, CoinFolder::Limbo)?;
        slots.push(results.len());
        results.push(None);
        flying.push(InFlight {
            origin,
            in_limbo,
            signed,
        });
    }

    let orders: Vec<SignedOrder> = flying.iter().map(|f| f.signed.clone()).collect();
    let certified = client.certify_many(&orders).await;
    let mut certificates = Vec::new();
    for (flight, outcome) in flying.iter().zip(&certified) {
        if let Ok(certificate) = outcome {
            wallet.save_receipt(certificate)?;
            certificates.push(certificate.clone());
        } else if matches!(
            outcome,
            Err(ClientError::NoQuorum {
                refused_everywhere: true,
                ..
            })
        ) {
            // No validator holds a vote for it: nothing to finish later.
            wallet.clear_pending(&flight.in_limbo.account)?;
        }
    }
    client.submit_many(&certificates).await;

    for ((flight, outcome), slot) in flying.iter().zip(certified).zip(slots) {
        results[slot] = Some(match outcome {
            Ok(certificate) => {
                wallet.clear_pending(&flight.in_limbo.account)?;
                settle(store, &certificate)?;
                landed(store, &certificate).map(|coin| (coin, certificate))
            }
            Err(error) => {
                if wallet.pending(&flight.in_limbo.account)?.is_none() {
                    undo_refused(
                        client,
                        store,
                        &flight.in_limbo,
                        flight.origin,
                        &flight.signed,
                    )
                    .await?;
                }
                Err(error.into())
            }
        });
    }
    // Every slot was filled: the coins refused up front at once, the others just above.
    Ok(results.into_iter().flatten().collect())
}
