//! Frozen slots, for the control API (DESIGN §3, containment): the accounts whose next lock
//! slot holds this validator's vote, each classified by the signed views of the whole
//! committee. A slot whose votes are split so that no order can reach a quorum, even with
//! every validator that holds none, is frozen; one validator alone cannot tell, since it
//! knows only its own vote.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use serde::Serialize;
use tally_core::{AccountId, Committee, NetworkId, OrderDigest, ValidatorInfo};
use tally_proto::{LedgerEntry, LedgerRequest, NextSlot, Packet};

use crate::NodeConfig;
use crate::discovery::AddressBook;
use crate::engine::EngineHandle;

/// The most slots one `slots` call reports.
pub const MAX_SLOTS: usize = LedgerRequest::MAX_ACCOUNTS;

/// How long a peer may take to answer, so that the control API never hangs on one.
const PEER_PATIENCE: Duration = Duration::from_secs(3);

/// One open slot, as the committee's views show it.
#[derive(Clone, Debug, Serialize)]
pub struct OpenSlot {
    pub account: AccountId,
    /// The slot's sequence number (this validator's next one for the account).
    pub sequence: u64,
    /// `voting`, `contested` or `split` (frozen).
    pub state: &'static str,
    /// Each order votes are held for, with how many of the validators that answered hold
    /// a vote for it.
    pub orders: Vec<HeldVotes>,
}

/// Votes held for one order.
#[derive(Clone, Debug, Serialize)]
pub struct HeldVotes {
    pub order: OrderDigest,
    pub votes: usize,
}

/// What `slots` answers.
#[derive(Clone, Debug, Serialize)]
pub struct SlotsReport {
    pub slots: Vec<OpenSlot>,
    /// How many of them are frozen.
    pub frozen: usize,
    /// Validators whose signed views were counted, this one included.
    pub answered: usize,
}

/// The open slots of this validator, classified with every peer's signed view; `None`
/// when the engine has stopped.
pub async fn report(
    engine: &EngineHandle,
    config: &NodeConfig,
    book: &AddressBook,
    network: NetworkId,
) -> Option<SlotsReport> {
    let accounts = engine.open_slots(MAX_SLOTS).await?;
    let request = LedgerRequest {
        accounts: Some(accounts.clone()),
        ..LedgerRequest::default()
    };
    let mine = match engine
        .submit(Packet::ReqLedger(request.clone()))
        .await
        .await
    {
        Ok(Packet::RespLedger(view)) => view.ledger,
        _ => return None,
    };
    let me = config.key.account();
    let peers = config.contract.validators.iter().filter(|v| v.key != me);
    let theirs: Vec<BTreeMap<AccountId, LedgerEntry>> =
        join_all(peers.map(|peer| peer_view(peer, book, &network, config, &request)))
            .await
            .into_iter()
            .flatten()
            .collect();
    let committee = Committee::new(&config.contract.validators).ok()?;
    let (members, quorum) = (committee.size(), committee.quorum());
    let mut slots = Vec::with_capacity(accounts.len());
    for account in accounts {
        let Some(own) = mine.get(&account).copied() else {
            continue;
        };
        let entries = std::iter::once(own)
            .chain(theirs.iter().filter_map(|view| view.get(&account).copied()));
        let (state, orders) = match NextSlot::of(entries, own.next_sequence, members, quorum) {
            // Applied meanwhile: nothing is held any more.
            NextSlot::Free => continue,
            NextSlot::Voting { order, votes } => ("voting", vec![(order, votes)]),
            NextSlot::Contested { orders } => ("contested", orders),
            NextSlot::Split { orders } => ("split", orders),
        };
        slots.push(OpenSlot {
            account,
            sequence: own.next_sequence,
            state,
            orders: orders
                .into_iter()
                .map(|(order, votes)| HeldVotes { order, votes })
                .collect(),
        });
    }
    let frozen = slots.iter().filter(|slot| slot.state == "split").count();
    Some(SlotsReport {
        slots,
        frozen,
        answered: 1 + theirs.len(),
    })
}

/// `peer`'s signed view of the accounts in `request`, if it answers in time with a view
/// its key signed.
async fn peer_view(
    peer: &ValidatorInfo,
    book: &AddressBook,
    network: &NetworkId,
    config: &NodeConfig,
    request: &LedgerRequest,
) -> Option<BTreeMap<AccountId, LedgerEntry>> {
    let asked = async {
        let mut connection = crate::sync::connect(peer, book, network, config).await?;
        match connection.call(&Packet::ReqLedger(request.clone())).await {
            Ok(Packet::RespLedger(view)) if view.validator == peer.key && view.verify(network) => {
                Some(view.ledger)
            }
            _ => None,
        }
    };
    tokio::time::timeout(PEER_PATIENCE, asked)
        .await
        .ok()
        .flatten()
}
