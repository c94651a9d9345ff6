//! The coin operations of DESIGN §7, on any network coins live on ([`CoinLedger`]: a
//! quorum's certificates or a chain's confirmations). Each one journals before it talks
//! (fresh keys into `Limbo`, the signed order into `pending/`) and settles the folders
//! from the proof it gets, so repeating one after a crash finishes it.

use std::collections::HashMap;

use serde::Serialize;
use tally_core::{
    AccountId, Amount, Coin, Denomination, MAX_SPLIT_OUTPUTS, Order, OrderDigest, Payment,
    SecretKey, SignedOrder, Split, Transfer, break_down, fewest_coins,
};

use super::detect::{Detection, Grade};
use super::ledger::CoinLedger;
use super::store::{CoinFolder, CoinStore, ListedCoin};
use super::{CoinOpError, FreshKeys};
use crate::Wallet;

/// What [`find`] settled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FindReport {
    /// Journaled orders that were finished (certified now or found certified).
    pub finished: usize,
    /// Coins that reached the Bank (or Fracked).
    pub banked: Vec<ListedCoin>,
    /// Coins found worthless: spent, or keys never funded.
    pub spent: Vec<ListedCoin>,
    /// Exported coins the receiver has taken.
    pub sent: Vec<ListedCoin>,
    /// Coins still undecided.
    pub limbo: Vec<ListedCoin>,
    /// Journaled orders that could not be finished now, and why.
    pub unfinished: Vec<(AccountId, String)>,
}

/// The orders this wallet journaled for these coins: votes for them are ours, not foreign.
pub fn own_orders(
    wallet: &Wallet,
    store: &CoinStore,
    coins: &[ListedCoin],
) -> Result<HashMap<AccountId, OrderDigest>, CoinOpError> {
    let mut own = HashMap::new();
    for coin in coins {
        if let Some(order) = wallet.pending(&coin.account)? {
            own.insert(coin.account, order.order.digest(store.network()));
        }
    }
    Ok(own)
}

pub(super) fn pairs(coins: &[ListedCoin]) -> Vec<(AccountId, Denomination)> {
    coins.iter().map(|c| (c.account, c.denomination)).collect()
}

/// Moves every coin the proven spend touches to where it now belongs: a coin of ours that
/// paid is spent, a coin of ours in `Limbo` that was paid is funded (a certificate kept in
/// its file, where the network has one) and banked. Returns the coins banked.
pub(super) fn settle<L: CoinLedger>(
    store: &CoinStore,
    proof: &L::Proof,
) -> Result<Vec<ListedCoin>, CoinOpError> {
    let order = L::proven_order(proof);
    if let Some(signer) = order.signer()
        && let Some(sender) = store.locate(&signer)?
    {
        store.move_to(&sender, CoinFolder::Spent)?;
    }
    let mut banked = Vec::new();
    for payment in order.payments() {
        let Some(listed) = store.locate(&payment.recipient)? else {
            continue;
        };
        // A part of a join: the coin is whole only once every part has arrived.
        if listed.folder != CoinFolder::Limbo || payment.amount != listed.denomination.amount() {
            continue;
        }
        let mut coin = store.read(&listed)?;
        coin.funding = L::funding(proof);
        store.put(CoinFolder::Limbo, &coin)?;
        banked.push(store.move_to(&listed, CoinFolder::Bank)?);
    }
    Ok(banked)
}

/// Fresh coins of these denominations, written to `Limbo` before any order names them.
pub(super) fn fresh_coins(
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    denominations: &[Denomination],
) -> Result<Vec<Coin>, CoinOpError> {
    let secrets = keys.fresh_keys(denominations.len())?;
    let mut coins = Vec::with_capacity(denominations.len());
    for (denomination, secret) in denominations.iter().zip(secrets) {
        let coin = Coin {
            network: *store.network(),
            denomination: *denomination,
            secret,
            funding: None,
        };
        store.put(CoinFolder::Limbo, &coin)?;
        coins.push(coin);
    }
    Ok(coins)
}

/// Fresh coins whose funding order was refused everywhere hold nothing: out of `Limbo`.
pub(super) fn void(store: &CoinStore, coins: &[Coin]) -> Result<(), CoinOpError> {
    for coin in coins {
        if let Some(listed) = store.locate(&coin.account())?
            && listed.folder == CoinFolder::Limbo
        {
            store.move_to(&listed, CoinFolder::Spent)?;
        }
    }
    Ok(())
}

/// The account pays fresh coin keys `amount` in the fewest coins, one `Split` order per
/// [`MAX_SPLIT_OUTPUTS`] coins. An order the account left in flight is finished first.
pub async fn withdraw<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    from: &SecretKey,
    amount: Amount,
) -> Result<Vec<ListedCoin>, CoinOpError> {
    let account = from.account();
    // One process at a time signs for this account (two could each sign for one slot).
    let _held = wallet.lock_key(&account).await?;
    let mut banked = Vec::new();
    for chunk in fewest_coins(amount)?.chunks(MAX_SPLIT_OUTPUTS) {
        if let Some(proof) = net.finish_pending(wallet, &account).await? {
            settle::<L>(store, &proof)?;
        }
        let coins = fresh_coins(store, keys, chunk)?;
        let order = Order::Split(Split {
            sender: account,
            sequence: net.next_sequence(&account).await?,
            outputs: coins
                .iter()
                .map(|coin| Payment {
                    recipient: coin.account(),
                    amount: coin.amount(),
                })
                .collect(),
        });
        let signed = SignedOrder::sign(order, from, net.network());
        wallet.set_pending(&signed)?;
        match net.spend(wallet, &signed).await {
            Ok(proof) => banked.extend(settle::<L>(store, &proof)?),
            Err(error) => {
                if wallet.pending(&account)?.is_none() {
                    void(store, &coins)?;
                }
                return Err(error);
            }
        }
    }
    Ok(banked)
}

/// A coin's own order may be signed where it is: in the Bank or Fracked, arriving in
/// Import, or in Limbo (an operation resumed). Exported and spent coins are not ours to
/// spend ([`reclaim`] takes an exported one back explicitly).
pub(super) fn check_may_spend(listed: &ListedCoin) -> Result<(), CoinOpError> {
    let folder = listed.folder;
    if folder.spendable() || matches!(folder, CoinFolder::Import | CoinFolder::Limbo) {
        Ok(())
    } else {
        Err(CoinOpError::NotSpendable {
            account: listed.account,
            folder,
        })
    }
}

/// Spends one coin with the order `make` builds from it (or finishes the order journaled
/// for it). The coin waits in `Limbo` meanwhile; if nothing is left in flight after a
/// failure it goes back where it was, or to `Counterfeit` if the validators say so.
async fn spend_coin<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    listed: &ListedCoin,
    make: impl FnOnce(&Coin) -> Order,
) -> Result<L::Proof, CoinOpError> {
    let origin = listed.folder;
    check_may_spend(listed)?;
    let coin = store.read(listed)?;
    let signed = match wallet.pending(&listed.account)? {
        Some(journaled) => journaled,
        None => {
            net.check_no_foreign_spend(&listed.account).await?;
            let signed = SignedOrder::sign(make(&coin), &coin.secret, net.network());
            wallet.set_pending(&signed)?;
            signed
        }
    };
    let in_limbo = store.move_to(listed, CoinFolder::Limbo)?;
    match net.spend(wallet, &signed).await {
        Ok(proof) => {
            settle::<L>(store, &proof)?;
            Ok(proof)
        }
        Err(error) => {
            if wallet.pending(&listed.account)?.is_none() {
                undo_refused(net, store, &in_limbo, origin, &signed).await?;
            }
            Err(error)
        }
    }
}

/// After a coin's order was refused with nothing left in flight: the coin goes back to
/// `origin` (or to `Counterfeit` if the validators say so), and fresh coins made for this
/// order alone, never funded, out of `Limbo` (a join's coin may already hold its other
/// parts: it stays).
pub(super) async fn undo_refused<L: CoinLedger>(
    net: &L,
    store: &CoinStore,
    in_limbo: &ListedCoin,
    origin: CoinFolder,
    signed: &SignedOrder,
) -> Result<(), CoinOpError> {
    let grade = net.detect(&pairs(&[*in_limbo]), &HashMap::new()).await;
    let back = match grade.first() {
        Some(detection) if counterfeit(net, store, in_limbo, detection)? => CoinFolder::Counterfeit,
        _ if origin == CoinFolder::Limbo => CoinFolder::Bank,
        _ => origin,
    };
    store.move_to(in_limbo, back)?;
    for payment in signed.order.payments() {
        if let Some(fresh) = store.locate(&payment.recipient)?
            && fresh.folder == CoinFolder::Limbo
            && fresh.denomination.amount() == payment.amount
        {
            store.move_to(&fresh, CoinFolder::Spent)?;
        }
    }
    Ok(())
}

/// Whether a coin graded `Counterfeit` is one: a coin not seen spent nor voted on by
/// others, whose file carries a valid certificate funding it, is only not funded *yet* where the
/// validators answered (its funding did not reach them, and handing it over failed under
/// the faults of the moment). It waits, undecided; it is not thrown away.
pub(super) fn counterfeit<L: CoinLedger>(
    net: &L,
    store: &CoinStore,
    listed: &ListedCoin,
    detection: &Detection,
) -> Result<bool, CoinOpError> {
    if detection.grade != Grade::Counterfeit {
        return Ok(false);
    }
    if net.taken(detection) || detection.contested > 0 {
        return Ok(true);
    }
    Ok(!net.proves_funding(&store.read(listed)?))
}

/// The certificate of a spend, or its error once the fresh coins made for it are out of
/// `Limbo` when nothing is left in flight (a refusal before any vote, such as a foreign
/// vote on the slot, leaves them unfunded).
fn unless_refused<P>(
    wallet: &Wallet,
    store: &CoinStore,
    listed: &ListedCoin,
    fresh: &[Coin],
    spent: Result<P, CoinOpError>,
) -> Result<P, CoinOpError> {
    match spent {
        Ok(proof) => Ok(proof),
        Err(error) => {
            if wallet.pending(&listed.account)?.is_none() {
                void(store, fresh)?;
            }
            Err(error)
        }
    }
}

/// A coin pays its whole value into `to` (one of the wallet's accounts, usually).
pub async fn deposit<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    listed: &ListedCoin,
    to: AccountId,
) -> Result<L::Proof, CoinOpError> {
    spend_coin(wallet, net, store, listed, |coin| {
        Order::Transfer(Transfer {
            sender: coin.account(),
            recipient: to,
            amount: coin.amount(),
            sequence: 0,
        })
    })
    .await
}

/// A coin pays its whole value to a fresh key of this wallet: the old secret, which
/// whoever handed the coin over still knows, becomes worthless. Returns the new coin.
pub async fn pown<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    listed: &ListedCoin,
) -> Result<(ListedCoin, L::Proof), CoinOpError> {
    let fresh = match wallet.pending(&listed.account)? {
        // Resuming: the journaled order names the fresh coin already.
        Some(_) => Vec::new(),
        None => fresh_coins(store, keys, &[listed.denomination])?,
    };
    let recipient = fresh.first().map(Coin::account);
    // `spend_coin` builds the order only when none is journaled, and then `fresh` holds the
    // new coin; the fallback is never signed.
    let spent = spend_coin(wallet, net, store, listed, |coin| {
        Order::Transfer(Transfer {
            sender: coin.account(),
            recipient: recipient.unwrap_or(coin.account()),
            amount: coin.amount(),
            sequence: 0,
        })
    })
    .await;
    let proof = unless_refused(wallet, store, listed, &fresh, spent)?;
    Ok((landed(store, L::proven_order(&proof))?, proof))
}

/// Takes back an exported coin by powning it to a fresh key: a race with whoever holds the
/// file or token, which the caller warns about. A coin the holder already took goes to
/// `Sent`.
pub async fn reclaim<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    listed: &ListedCoin,
) -> Result<(ListedCoin, L::Proof), CoinOpError> {
    if listed.folder != CoinFolder::Export {
        return Err(CoinOpError::NotSpendable {
            account: listed.account,
            folder: listed.folder,
        });
    }
    let importing = store.move_to(listed, CoinFolder::Import)?;
    match pown(wallet, net, store, keys, &importing).await {
        Ok(done) => Ok(done),
        Err(error) => {
            // Where the failed pown left it: `Counterfeit` means the holder spent it.
            if let Some(now) = store.locate(&listed.account)? {
                let back = match now.folder {
                    CoinFolder::Counterfeit => CoinFolder::Sent,
                    CoinFolder::Import => CoinFolder::Export,
                    other => other,
                };
                store.move_to(&now, back)?;
            }
            Err(error)
        }
    }
}

/// Where the new coin a pown order pays is now.
pub(super) fn landed(store: &CoinStore, order: &Order) -> Result<ListedCoin, CoinOpError> {
    let new = order
        .payments()
        .first()
        .map(|payment| payment.recipient)
        .ok_or_else(|| CoinOpError::Refused("the pown order pays no one".into()))?;
    store
        .locate(&new)?
        .ok_or_else(|| CoinOpError::UnknownCoin(new.to_string()))
}

/// Breaks a coin into smaller ones (one `Split` to fresh keys); returns them.
pub async fn change<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    listed: &ListedCoin,
) -> Result<Vec<ListedCoin>, CoinOpError> {
    split_into(
        wallet,
        net,
        store,
        keys,
        listed,
        &break_down(listed.denomination),
    )
    .await
}

/// The key of `listed` pays everything it holds to fresh coins of `denominations` (one
/// `Split`, or the one journaled for it); the coins that landed.
async fn split_into<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    listed: &ListedCoin,
    denominations: &[Denomination],
) -> Result<Vec<ListedCoin>, CoinOpError> {
    let fresh = match wallet.pending(&listed.account)? {
        Some(_) => Vec::new(),
        None => fresh_coins(store, keys, denominations)?,
    };
    let outputs: Vec<Payment> = fresh
        .iter()
        .map(|coin| Payment {
            recipient: coin.account(),
            amount: coin.amount(),
        })
        .collect();
    let spent = spend_coin(wallet, net, store, listed, |coin| {
        Order::Split(Split {
            sender: coin.account(),
            sequence: 0,
            outputs,
        })
    })
    .await;
    let proof = unless_refused(wallet, store, listed, &fresh, spent)?;
    let mut landed = Vec::new();
    for payment in L::proven_order(&proof).payments() {
        if let Some(coin) = store.locate(&payment.recipient)? {
            landed.push(coin);
        }
    }
    Ok(landed)
}

/// Merges coins into one fresh coin of their total, which must be a denomination: each
/// pays the fresh key in its own order, and the new coin is banked once the validators see
/// it whole. The parts wait in `Limbo` meanwhile; an interrupted join is settled by `find`.
pub async fn join<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
    parts: &[ListedCoin],
) -> Result<ListedCoin, CoinOpError> {
    let cash: u64 = parts.iter().map(|c| c.denomination.cash()).sum();
    let denomination = Denomination::from_cash(cash)
        .filter(|_| parts.len() > 1)
        .ok_or_else(|| {
            CoinOpError::Refused(format!(
                "{} coins worth {cash} cash do not make one coin (1, 5, 25, 100 or 250)",
                parts.len()
            ))
        })?;
    let mut seen = std::collections::HashSet::new();
    if !parts.iter().all(|c| seen.insert(c.account)) {
        return Err(CoinOpError::Refused("a coin is named twice".into()));
    }
    for part in parts {
        if !part.folder.spendable() {
            return Err(CoinOpError::NotSpendable {
                account: part.account,
                folder: part.folder,
            });
        }
    }
    let whole = fresh_coins(store, keys, &[denomination])?.remove(0);
    for part in parts {
        spend_coin(wallet, net, store, part, |coin| {
            Order::Transfer(Transfer {
                sender: coin.account(),
                recipient: whole.account(),
                amount: coin.amount(),
                sequence: 0,
            })
        })
        .await?;
    }
    let listed = store
        .locate(&whole.account())?
        .ok_or_else(|| CoinOpError::UnknownCoin(whole.account().to_string()))?;
    let seen = net.detect(&pairs(&[listed]), &HashMap::new()).await;
    let to = match seen.first().map(|d| d.grade) {
        Some(Grade::Authentic) => CoinFolder::Bank,
        Some(Grade::Fracked) => CoinFolder::Fracked,
        _ => return Ok(listed),
    };
    store.move_to(&listed, to)
}

/// Settles everything an interrupted operation left: turns an interrupted batch's journal
/// into single entries ([`super::recover_batches`]), finishes every journaled order of the
/// wallet's accounts and coins, then grades the coins still in `Limbo` (and those in
/// `Export`, to learn which were taken) by asking the network. A key in `Limbo` holding
/// another amount than its denomination (a join cut short) pays it into fresh coins from
/// `keys`.
pub async fn find<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    keys: &mut impl FreshKeys,
) -> Result<FindReport, CoinOpError> {
    super::batch::recover_batches(wallet, store)?;
    let mut report = FindReport::default();
    let mut signers: Vec<AccountId> = wallet.keys().iter().map(|k| k.account).collect();
    signers.extend(
        store
            .list(CoinFolder::Limbo)?
            .into_iter()
            .map(|c| c.account),
    );
    for account in signers {
        let Some(journaled) = wallet.pending(&account)? else {
            continue;
        };
        let proof = match net.finish_pending(wallet, &account).await {
            Ok(Some(proof)) => Some(proof),
            // Passed already (now cleared): settled from its receipt if the wallet kept it
            // (it is kept before the journal is cleared), else by the grading below.
            Ok(None) => net.kept_proof(wallet, &journaled)?,
            Err(error) => {
                // Still journaled (unless refused for good): the next `find` tries again.
                tracing::warn!(%account, %error, "a journaled order could not be finished");
                report.unfinished.push((account, error.to_string()));
                None
            }
        };
        if let Some(proof) = proof {
            report.finished += 1;
            report.banked.extend(settle::<L>(store, &proof)?);
        }
    }
    let limbo = store.list(CoinFolder::Limbo)?;
    let own = own_orders(wallet, store, &limbo)?;
    // Fresh coins that an order still journaled pays: unfunded until it is certified, not
    // worthless (graded so, they would be lost when it is).
    let mut awaited = std::collections::HashSet::new();
    let signers = limbo.iter().map(|c| c.account);
    for account in signers.chain(wallet.keys().iter().map(|k| k.account)) {
        if let Some(order) = wallet.pending(&account)? {
            awaited.extend(order.order.payments().iter().map(|p| p.recipient));
        }
    }
    for (listed, detection) in limbo.iter().zip(net.detect(&pairs(&limbo), &own).await) {
        if own.contains_key(&listed.account) || awaited.contains(&listed.account) {
            report.limbo.push(*listed);
            continue;
        }
        // A key of ours holding another amount than its denomination (a join cut short):
        // what it holds is broken into proper coins, not lost.
        if let Some(held) = detection.held
            && !held.is_zero()
            && held != listed.denomination.amount()
            && detection.contested == 0
        {
            let made = match fewest_coins(held) {
                Ok(denominations) => {
                    split_into(wallet, net, store, keys, listed, &denominations).await
                }
                Err(error) => Err(error.into()),
            };
            match made {
                Ok(coins) => report.banked.extend(coins),
                Err(error) => {
                    tracing::warn!(coin = %listed.account, %error, "a key holding an odd amount could not be broken into coins");
                    report.unfinished.push((listed.account, error.to_string()));
                    report.limbo.push(*listed);
                }
            }
            continue;
        }
        match detection.grade {
            Grade::Authentic => report.banked.push(store.move_to(listed, CoinFolder::Bank)?),
            Grade::Fracked => report
                .banked
                .push(store.move_to(listed, CoinFolder::Fracked)?),
            Grade::Counterfeit => report.spent.push(store.move_to(listed, CoinFolder::Spent)?),
            Grade::Frozen | Grade::Limbo => report.limbo.push(*listed),
        }
    }
    let exported = store.list(CoinFolder::Export)?;
    for (listed, detection) in exported
        .iter()
        .zip(net.detect(&pairs(&exported), &HashMap::new()).await)
    {
        if net.taken(&detection) {
            report.sent.push(store.move_to(listed, CoinFolder::Sent)?);
        }
    }
    Ok(report)
}

/// Hands fracked coins' funding certificates to the validators that lack them; returns
/// the coins' detections afterwards.
pub async fn fix<L: CoinLedger>(
    wallet: &Wallet,
    net: &L,
    store: &CoinStore,
    coins: &[ListedCoin],
) -> Result<Vec<Detection>, CoinOpError> {
    let own = own_orders(wallet, store, coins)?;
    for (listed, detection) in coins.iter().zip(net.detect(&pairs(coins), &own).await) {
        if detection.grade == Grade::Fracked {
            net.help_laggards(store, listed, &detection.lagging).await?;
        }
    }
    let after = net.detect(&pairs(coins), &own).await;
    for (listed, detection) in coins.iter().zip(&after) {
        match (listed.folder, detection.grade) {
            (CoinFolder::Fracked, Grade::Authentic) => {
                store.move_to(listed, CoinFolder::Bank)?;
            }
            (CoinFolder::Bank, Grade::Fracked) => {
                store.move_to(listed, CoinFolder::Fracked)?;
            }
            _ => {}
        }
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coins::choose_exact;

    fn listed(cash: u64) -> ListedCoin {
        ListedCoin {
            account: SecretKey::generate().account(),
            denomination: Denomination::from_cash(cash).unwrap_or(Denomination::One),
            folder: CoinFolder::Bank,
        }
    }

    #[test]
    fn an_exact_set_is_chosen_largest_first_or_none() {
        let bank: Vec<ListedCoin> = [100, 25, 25, 5, 1].into_iter().map(listed).collect();
        let total = |coins: &[ListedCoin]| coins.iter().map(|c| c.denomination.cash()).sum::<u64>();
        assert_eq!(choose_exact(&bank, 131).map(|c| total(&c)), Some(131));
        assert_eq!(choose_exact(&bank, 50).map(|c| c.len()), Some(2));
        assert_eq!(choose_exact(&bank, 2), None);
        assert_eq!(choose_exact(&bank, 157), None);
    }
}
