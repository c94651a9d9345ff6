//! Performing a wire saga's locks, claims and refunds on its networks, and looking at the
//! escrows it watches: what the sagas ask for, turned into requests, and the answers turned
//! back into the [`Event`]s they understand. Quorum networks are handled here; proof-of-work
//! networks in `chain_side`.
//!
//! What a saga hears of a quorum network is what a quorum could only have certified: an
//! escrow is reported once f + 1 validators (one of them honest, so a certificate exists)
//! applied its lock, and settled once f + 1 applied the claim or the refund. A secret is
//! reported from any validator, since it is checked against the hash lock.

use std::collections::HashMap;
use std::time::Duration;

use tally_core::{AccountId, EscrowId, EscrowLock, Mode, NetworkContract, NetworkId, SecretKey};
use tally_proto::{EscrowQuery, EscrowStanding, EscrowView};
use tally_swap::{Event, LockTerms, Refusal, Standing, Target};

use super::chain_side::{self, ChainReach};
use super::{Bounds, Proof, WireError};
use crate::escrow;
use crate::ops::OpError;
use crate::{Miners, QuorumClient, Wallet};

/// How a party reaches one network of a wire.
pub enum Reach {
    /// A quorum network's validators.
    Quorum(QuorumClient),
    /// A proof-of-work network's miners.
    Chain(ChainReach),
}

impl From<QuorumClient> for Reach {
    fn from(client: QuorumClient) -> Self {
        Reach::Quorum(client)
    }
}

impl Reach {
    /// Reaches the network of `contract`: its validators, or the miners its tracker lists
    /// (an order there counts once it has `bounds.confirmations`).
    pub async fn connect(
        contract: &NetworkContract,
        timeout: Duration,
        bounds: &Bounds,
    ) -> Result<Reach, WireError> {
        let refused = |error: &dyn std::fmt::Display| {
            WireError::Refused(format!("network {}: {error}", contract.name))
        };
        match contract.mode {
            Mode::Quorum => QuorumClient::located(contract.clone(), timeout)
                .await
                .map(Reach::Quorum)
                .map_err(|error| refused(&error)),
            Mode::Pow => {
                let miners = Miners::locate(contract, timeout)
                    .await
                    .map_err(|error| refused(&error))?;
                Ok(Reach::Chain(ChainReach::new(
                    miners,
                    contract.clone(),
                    bounds,
                )))
            }
        }
    }

    /// The network's contract.
    pub fn contract(&self) -> &NetworkContract {
        match self {
            Reach::Quorum(client) => client.contract(),
            Reach::Chain(chain) => &chain.contract,
        }
    }

    /// The network's id.
    pub fn network(&self) -> NetworkId {
        self.contract().id()
    }
}

/// One network of a wire, as this party reaches it.
pub struct Side {
    pub reach: Reach,
    /// The keys that may sign this party's locks here (none where it only claims); a lock
    /// is signed by the one its saga names ([`Driven::signer`](super::Driven::signer)).
    pub keys: Vec<SecretKey>,
}

/// The networks of the wires a driver runs, by id.
#[derive(Default)]
pub struct Sides {
    sides: HashMap<NetworkId, Side>,
}

/// A request that may pass when asked again (validators unreachable, no quorum yet):
/// the driver asks again a little later.
#[derive(Debug)]
pub struct Transient(pub String);

impl Sides {
    /// Adds a network (a second one with the same id replaces the first).
    pub fn add(&mut self, side: Side) {
        self.sides.insert(side.reach.network(), side);
    }

    /// The network with this id, if this driver reaches it.
    pub fn get(&self, network: &NetworkId) -> Option<&Side> {
        self.sides.get(network)
    }

    fn side(&self, network: &NetworkId) -> Result<&Side, Transient> {
        self.get(network).ok_or_else(|| {
            Transient(format!(
                "network {} is not one of this wire's",
                network.short()
            ))
        })
    }

    /// Locks on `network` with `terms`, signed by `signer`'s key there: the event, and the
    /// lock's proof when this call made it (the certificate or mined transaction it got
    /// back). An escrow already certified under the same hash lock with exactly these
    /// terms and this payer (a crash after the lock, before the journal recorded it) is
    /// reported as the lock, never locked twice; its proof is then [`Sides::lock_proof`]'s
    /// to find.
    pub async fn lock(
        &self,
        wallet: &Wallet,
        network: NetworkId,
        terms: &LockTerms,
        signer: Option<AccountId>,
    ) -> Result<(Event, Option<Proof>), Transient> {
        let side = self.side(&network)?;
        let Some(key) = side
            .keys
            .iter()
            .find(|key| signer.is_none_or(|signer| key.account() == signer))
        else {
            let reason = "this wallet holds no key to lock with on that network".into();
            return Ok((Event::LockRefused { network, reason }, None));
        };
        let client = match &side.reach {
            Reach::Quorum(client) => client,
            Reach::Chain(chain) => {
                return chain_side::lock(wallet, chain, network, terms, key).await;
            }
        };
        let payer = key.account();
        let query = EscrowQuery::HashLock(terms.hash_lock);
        if let Some((escrow, lock, _)) = certified(client, &query).await
            && lock.payer == payer
            && terms.matches(&lock)
        {
            return Ok((
                Event::Locked {
                    network,
                    escrow,
                    lock,
                },
                None,
            ));
        }
        let asked = escrow::LockTerms {
            payee: terms.payee,
            amount: terms.amount,
            hash_lock: terms.hash_lock,
            deadline_ms: terms.deadline_ms,
            counterpart: Some(terms.counterpart),
        };
        match escrow::lock(wallet, client, key, asked).await {
            Ok(locked) => Ok((
                Event::Locked {
                    network,
                    escrow: locked.escrow,
                    lock: locked.lock,
                },
                Some(Proof::Certificate(locked.receipt.certificate)),
            )),
            Err(error) if is_final(&error) => {
                let reason = error.to_string();
                Ok((Event::LockRefused { network, reason }, None))
            }
            Err(error) => Err(Transient(error.to_string())),
        }
    }

    /// Claims `escrow` on `network` with `secret`: [`Event::Claimed`], or the refusal as
    /// the saga reads it (judged from how the validators see the escrow afterwards).
    pub async fn claim(
        &self,
        wallet: &Wallet,
        network: NetworkId,
        escrow: EscrowId,
        secret: tally_core::EscrowSecret,
    ) -> Result<(Event, Option<Proof>), Transient> {
        match &self.side(&network)?.reach {
            Reach::Quorum(client) => {
                let answer = escrow::claim(wallet, client, escrow, secret).await;
                Ok(settled(client, network, escrow, Settling::Claim, answer).await)
            }
            Reach::Chain(chain) => {
                Ok(chain_side::settle(wallet, chain, network, escrow, Some(secret)).await)
            }
        }
    }

    /// Returns `escrow` on `network` to its payer: [`Event::Refunded`], or the refusal.
    pub async fn refund(
        &self,
        wallet: &Wallet,
        network: NetworkId,
        escrow: EscrowId,
    ) -> Result<(Event, Option<Proof>), Transient> {
        match &self.side(&network)?.reach {
            Reach::Quorum(client) => {
                let answer = escrow::refund(wallet, client, escrow).await;
                Ok(settled(client, network, escrow, Settling::Refund, answer).await)
            }
            Reach::Chain(chain) => {
                Ok(chain_side::settle(wallet, chain, network, escrow, None).await)
            }
        }
    }

    /// What a watch on `target` sees now: the escrow as certified ([`Event::Seen`]) and its
    /// secret once out ([`Event::SecretRevealed`]). Nothing while too few validators answer.
    pub async fn observe(&self, network: NetworkId, target: Target) -> Vec<Event> {
        let Some(side) = self.get(&network) else {
            return Vec::new();
        };
        let query = match target {
            Target::Escrow(id) => EscrowQuery::Id(id),
            Target::HashLock(hash) => EscrowQuery::HashLock(hash),
        };
        let client = match &side.reach {
            Reach::Quorum(client) => client,
            Reach::Chain(chain) => return chain_side::observe(chain, network, &query).await,
        };
        let mut events = Vec::new();
        let views = views(client, &query).await;
        if let Some((escrow, lock, standing)) = agreed(client, &views) {
            events.push(Event::Seen {
                network,
                escrow,
                lock,
                standing,
            });
        }
        // `escrow_view` checked each secret against the hash lock asked about or applied.
        if let Some(secret) = views.iter().find_map(|view| view.secret) {
            events.push(Event::SecretRevealed { network, secret });
        }
        events
    }

    /// What proves `lock` for a receipt: its certificate (found among its payer's orders
    /// at its sequence, checked against the committee), or its transaction and the block
    /// that holds it.
    pub async fn lock_proof(&self, network: &NetworkId, lock: &EscrowLock) -> Option<Proof> {
        let client = match &self.get(network)?.reach {
            Reach::Quorum(client) => client,
            Reach::Chain(chain) => return chain_side::lock_proof(chain, network, lock).await,
        };
        client
            .sent_certificate(&lock.payer, lock.sequence)
            .await
            .filter(|certificate| {
                certificate.order == tally_core::Order::from(*lock)
                    && certificate.checksum == tally_swap::escrow_id(network, lock)
            })
            .map(Proof::Certificate)
    }

    /// What `account` holds on `network`, as the network agrees on it (f + 1 validators
    /// alike, or the best miner's tip); `None` when that cannot be known now.
    pub async fn balance(&self, network: &NetworkId, account: &AccountId) -> Option<i128> {
        match &self.get(network)?.reach {
            Reach::Quorum(client) => crate::views::balance(client, account)
                .await
                .ok()
                .filter(|views| views.agree > 0)
                .map(|views| views.balance),
            Reach::Chain(chain) => chain_side::balance(chain, account).await,
        }
    }
}

/// Whether a lock's failure is for good: the validators refused the order itself (funds,
/// deadline, a reused hash lock), or the account cannot take it. A quorum not reached yet
/// may pass.
fn is_final(error: &OpError) -> bool {
    match error {
        OpError::Refused(_)
        | OpError::SlotFrozen { .. }
        | OpError::SlotContended { .. }
        | OpError::SlotHeldElsewhere { .. }
        | OpError::Wallet(_) => true,
        OpError::Client(crate::ClientError::NoQuorum {
            refused_everywhere, ..
        }) => *refused_everywhere,
        OpError::Client(_) | OpError::NoValidatorAnswered => false,
    }
}

#[derive(Clone, Copy)]
pub(super) enum Settling {
    Claim,
    Refund,
}

impl Settling {
    /// The claim (with the secret) or the refund.
    pub(super) fn of(secret: Option<tally_core::EscrowSecret>) -> Settling {
        match secret {
            Some(_) => Settling::Claim,
            None => Settling::Refund,
        }
    }

    /// The standing this settlement makes.
    pub(super) fn standing(self) -> Standing {
        match self {
            Settling::Claim => Standing::Claimed,
            Settling::Refund => Standing::Refunded,
        }
    }

    /// The event of this settlement certified.
    pub(super) fn done(self, network: NetworkId, escrow: EscrowId) -> Event {
        match self {
            Settling::Claim => Event::Claimed { network, escrow },
            Settling::Refund => Event::Refunded { network, escrow },
        }
    }

    /// The event of this settlement refused.
    pub(super) fn refused(self, network: NetworkId, escrow: EscrowId, refusal: Refusal) -> Event {
        match self {
            Settling::Claim => Event::ClaimRefused {
                network,
                escrow,
                refusal,
            },
            Settling::Refund => Event::RefundRefused {
                network,
                escrow,
                refusal,
            },
        }
    }
}

/// A claim's or refund's answer as the saga reads it: certified, or refused, and how (an
/// escrow found settled by this very settlement counts as certified: another party's
/// request, or an earlier one of ours, got there first).
async fn settled(
    client: &QuorumClient,
    network: NetworkId,
    escrow: EscrowId,
    settling: Settling,
    answer: Result<crate::Receipt, OpError>,
) -> (Event, Option<Proof>) {
    let error = match answer {
        Ok(receipt) => {
            return (
                settling.done(network, escrow),
                Some(Proof::Certificate(receipt.certificate)),
            );
        }
        Err(error) => error,
    };
    let event = match judge(client, escrow, settling, &error).await {
        Judged::Settled(standing) if standing == settling.standing() => {
            settling.done(network, escrow)
        }
        Judged::Settled(Standing::Open) | Judged::Refused(Refusal::Settled) => {
            settling.refused(network, escrow, Refusal::Other(error.to_string()))
        }
        Judged::Settled(_) => settling.refused(network, escrow, Refusal::Settled),
        Judged::Refused(refusal) => settling.refused(network, escrow, refusal),
    };
    (event, None)
}

enum Judged {
    Settled(Standing),
    Refused(Refusal),
}

/// Why a claim or refund was not certified, judged from the escrow afterwards: settled
/// already, past the claim deadline (too few validators can still vote a claim), before the
/// refund time (too few can vote a refund yet), or anything else.
async fn judge(
    client: &QuorumClient,
    escrow: EscrowId,
    settling: Settling,
    error: &OpError,
) -> Judged {
    let views = views(client, &EscrowQuery::Id(escrow)).await;
    let Some((_, lock, standing)) = agreed(client, &views) else {
        return Judged::Refused(Refusal::Other(error.to_string()));
    };
    if standing != Standing::Open {
        return Judged::Settled(standing);
    }
    let quorum = client.committee().quorum();
    let skew = client.contract().max_clock_skew_ms.unwrap_or(0);
    let answered: Vec<u64> = views.iter().map(|view| view.clock_ms).collect();
    match settling {
        // A claim needs 2f + 1 validators before the deadline; honest clocks only move on.
        Settling::Claim => {
            let past = answered.iter().filter(|c| **c >= lock.deadline).count();
            if past > client.committee().max_faulty() && answered.len() - past < quorum {
                return Judged::Refused(Refusal::TooLate);
            }
        }
        Settling::Refund => {
            let from = tally_swap::refund_from(lock.deadline, skew);
            let ready = answered.iter().filter(|c| **c >= from).count();
            if ready < quorum {
                return Judged::Refused(Refusal::TooEarly);
            }
        }
    }
    Judged::Refused(Refusal::Other(error.to_string()))
}

async fn views(client: &QuorumClient, query: &EscrowQuery) -> Vec<EscrowView> {
    client
        .escrow_all(query)
        .await
        .into_iter()
        .filter_map(|answer| answer.result.ok())
        .collect()
}

/// The escrow f + 1 validators report (so a certificate made it: one of them is honest),
/// and its standing: settled once f + 1 report the same settlement, else open.
fn agreed(client: &QuorumClient, views: &[EscrowView]) -> Option<(EscrowId, EscrowLock, Standing)> {
    let enough = client.committee().max_faulty() + 1;
    let mut by_id: Vec<(EscrowId, EscrowLock, [usize; 3])> = Vec::new();
    for view in views {
        let (Some(id), Some(lock), Some(standing)) = (view.escrow, view.lock, view.standing) else {
            continue;
        };
        let slot = match standing {
            EscrowStanding::Open => 0,
            EscrowStanding::Claimed => 1,
            EscrowStanding::Refunded => 2,
        };
        match by_id.iter_mut().find(|(known, ..)| *known == id) {
            Some((_, _, counts)) => counts[slot] += 1,
            None => {
                let mut counts = [0; 3];
                counts[slot] = 1;
                by_id.push((id, lock, counts));
            }
        }
    }
    by_id
        .into_iter()
        .find(|(_, _, counts)| counts.iter().sum::<usize>() >= enough)
        .map(|(id, lock, counts)| {
            let standing = if counts[1] >= enough {
                Standing::Claimed
            } else if counts[2] >= enough {
                Standing::Refunded
            } else {
                Standing::Open
            };
            (id, lock, standing)
        })
}

/// Looks up the escrow `query` names, as certified (see [`agreed`]).
async fn certified(
    client: &QuorumClient,
    query: &EscrowQuery,
) -> Option<(EscrowId, EscrowLock, Standing)> {
    agreed(client, &views(client, query).await)
}
