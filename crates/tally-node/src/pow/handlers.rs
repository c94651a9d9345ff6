//! What the miner daemon does with each packet a connection sends: `CONNECT`, transactions
//! from wallets and from gossip, blocks (see [`crate::pow::blocks`]), block requests and
//! wallet queries. The decisions are the sans-I/O modules' ([`PeerSync`], [`GossipDedup`],
//! [`GossipVerdict`], [`ServingBudgets`], [`BlocksVerdict`]); this module carries them out.
//!
//! [`PeerSync`]: crate::pow::sync::PeerSync
//! [`GossipDedup`]: crate::pow::gossip::GossipDedup
//! [`ServingBudgets`]: crate::pow::peers::ServingBudgets
//! [`BlocksVerdict`]: crate::pow::fate::BlocksVerdict

use std::sync::Arc;
use std::time::Instant;

use tally_chain::{Effect, Transaction, TxRejected, check_transactions};
use tracing::{debug, warn};

use crate::pow::blocks::on_blocks;
use crate::pow::clock::now_ms;
use crate::pow::connections::{keep_connection, listens_at};
use crate::pow::gossip::GossipVerdict;
use crate::pow::peers::{Offense, PeerKey};
use crate::pow::queries;
use crate::pow::state::{Miner, lock, off_the_runtime};
use tally_proto::pow::{
    AcceptTransaction, Connect, ErrorMsg, MAX_BLOCKS_PER_BATCH, MAX_GOSSIP_TRANSACTIONS,
    MAX_LOCATOR, PowPacket, ReceiveBlock, RejectBlock, RejectTransaction, SendRequest,
    TransactionGossip,
};

/// Handles one packet from connection `id`; `false` closes the connection.
pub async fn handle(miner: &Arc<Miner>, id: u64, packet: PowPacket) -> bool {
    match packet {
        PowPacket::Connect(connect) => return on_connect(miner, id, connect),
        PowPacket::PushTransaction(tx) => on_push(miner, id, tx).await,
        PowPacket::Transaction(gossip) => on_gossip(miner, id, gossip).await,
        PowPacket::HashBroadcast(hb) => {
            if hb.block.hash() != hb.hash {
                miner.penalise(id, Offense::WrongHash);
                miner.conns.reply(
                    id,
                    &PowPacket::RejectBlock(RejectBlock {
                        hash: hb.hash,
                        reason: "the hash is not the block's".into(),
                    }),
                );
                return true;
            }
            on_blocks(miner, id, vec![hb.block], None).await;
        }
        PowPacket::SendRequest(request) => on_send_request(miner, id, request).await,
        PowPacket::ReceiveBlock(batch) => {
            if batch.blocks.len() > MAX_BLOCKS_PER_BATCH as usize {
                miner.penalise(id, Offense::Protocol);
                return true;
            }
            // Blocks arrive unasked only one at a time (`HASH_BROADCAST`); a batch answers
            // a `SEND_REQUEST` of ours or is dropped unread.
            let asked = miner
                .conns
                .lock()
                .get_mut(&id)
                .is_some_and(|conn| conn.sync.take_answer());
            if !asked {
                debug!(
                    blocks = batch.blocks.len(),
                    "RECEIVE_BLOCK nobody asked for; dropped"
                );
                miner.penalise(id, Offense::UnsolicitedBlocks);
                return true;
            }
            on_blocks(miner, id, batch.blocks, Some(batch.tip)).await;
        }
        // Wallet queries wait for the chain lock, which a block commit or a reorganisation
        // may hold for a while: they wait on a blocking thread, never on an async worker.
        PowPacket::ReqAccount(request) => {
            answer_query(miner, id, move |miner| {
                PowPacket::RespAccount(queries::account(&miner.chain(), &request.account))
            })
            .await;
        }
        PowPacket::ReqLedger(request) => {
            if !within_page_rate(miner, id).await {
                return true;
            }
            answer_query(miner, id, move |miner| {
                PowPacket::RespLedger(miner.ledger_page(&request))
            })
            .await;
        }
        PowPacket::ReqTxStatus(request) => {
            answer_query(miner, id, move |miner| {
                PowPacket::RespTxStatus(queries::transaction_status(
                    &miner.chain(),
                    &request.transaction,
                ))
            })
            .await;
        }
        PowPacket::ReqEscrow(query) => {
            answer_query(miner, id, move |miner| {
                PowPacket::RespEscrow(Box::new(queries::escrow(&miner.chain(), &query)))
            })
            .await;
        }
        PowPacket::RejectBlock(reject) => {
            debug!(hash = %reject.hash, reason = %reject.reason, "a peer refused our block");
        }
        PowPacket::Error(error) => {
            debug!(reason = %error.reason, "peer reports an error");
        }
        other @ (PowPacket::AcceptTransaction(_)
        | PowPacket::RejectTransaction(_)
        | PowPacket::RespAccount(_)
        | PowPacket::RespLedger(_)
        | PowPacket::RespTxStatus(_)
        | PowPacket::RespEscrow(_)) => {
            debug!(packet = other.name(), "unexpected answer");
            miner.penalise(id, Offense::Protocol);
        }
    }
    true
}

/// How long a page beyond its peer's rate waits before it asks the budget again.
const PAGE_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// Waits until connection `id`'s peer may have another ledger page: its later packets
/// wait with it (one connection's packets are handled in order), other peers' do not.
/// `false` when the connection closes or the node stops first (a closed connection's
/// pages take nothing from its peer's budget).
async fn within_page_rate(miner: &Miner, id: u64) -> bool {
    loop {
        let Some(key) = miner.conns.peer_key(id) else {
            return false;
        };
        if lock(&miner.pages).take(&key, 1, Instant::now()) {
            return true;
        }
        tokio::select! {
            _ = miner.cancel.cancelled() => return false,
            _ = tokio::time::sleep(PAGE_RETRY) => {}
        }
    }
}

/// Answers a wallet query, read on a blocking thread.
async fn answer_query(
    miner: &Arc<Miner>,
    id: u64,
    read: impl FnOnce(&Miner) -> PowPacket + Send + 'static,
) {
    if let Some(answer) = off_the_runtime(miner, read).await {
        miner.conns.reply(id, &answer);
    }
}

fn on_connect(miner: &Arc<Miner>, id: u64, connect: Connect) -> bool {
    if connect.network != miner.network {
        miner.conns.reply(
            id,
            &PowPacket::Error(ErrorMsg {
                reason: format!("wrong network: this is {}", miner.network),
            }),
        );
        return false;
    }
    // `Listen` is the sender's word: believed only when it names the host the connection
    // comes from. Otherwise anyone could claim a connected miner's address and have that
    // miner's connection closed as a duplicate (and never dialed again, since "we are
    // connected to it").
    let (listen, key) = {
        let conns = miner.conns.lock();
        let Some(conn) = conns.get(&id) else {
            return false;
        };
        let listen = connect
            .listen
            .clone()
            .filter(|listen| listens_at(conn.remote, listen));
        // As it will be known: by the believed `Listen`, else by the address we dialed.
        let key = PeerKey::of(conn.remote, listen.as_deref().or(conn.listen.as_deref()));
        (listen, key)
    };
    // A banned or refused peer is turned away before it can displace anyone.
    if miner.is_isolated() {
        return false;
    }
    if miner.is_banned(&key) {
        miner.conns.reply(
            id,
            &PowPacket::Error(ErrorMsg {
                reason: "banned".into(),
            }),
        );
        return false;
    }
    let ours = miner.tip();
    let now = now_ms();
    let (greet, ask) = {
        let mut conns = miner.conns.lock();
        if let Some(listen) = &listen
            && !keep_connection(&miner.address.to_string(), &conns, id, listen)
        {
            return false;
        }
        let Some(conn) = conns.get_mut(&id) else {
            return false;
        };
        conn.miner = true;
        if let Some(listen) = listen {
            conn.listen = Some(listen);
        } else if let Some(claimed) = &connect.listen {
            debug!(remote = %conn.remote, %claimed, "listen address of another host; ignored");
        }
        let greet = !conn.greeted;
        conn.greeted = true;
        let ask = conn.sync.on_peer_tip(connect.tip, ours, now);
        if conn.sync.is_unresponsive() {
            // It claims more work but never sends the blocks: drop it, look elsewhere.
            debug!(remote = %conn.remote, "peer leaves SEND_REQUEST unanswered; closing");
            return false;
        }
        (greet, ask)
    };
    if greet {
        miner.conns.reply(id, &miner.connect_packet());
    }
    if ask {
        miner.conns.reply(id, &miner.send_request());
    }
    true
}

/// Checks transactions' signatures and then takes them into the mempool, on a blocking
/// thread: the signatures are verified before the chain is locked, so a burst of gossip
/// never holds the chain (and with it every connection that needs it) for its whole batch,
/// and no async worker waits on the lock. `None` if the task failed.
async fn submit(miner: &Arc<Miner>, txs: Vec<Transaction>) -> Option<Vec<Result<(), TxRejected>>> {
    let worker = miner.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let checked = check_transactions(&worker.params, &worker.keys, txs);
        // Claims are rare: kept aside (with their place) for the notices they may call for.
        let claims: Vec<(usize, Transaction)> = checked
            .transactions()
            .iter()
            .enumerate()
            .filter(|(_, tx)| matches!(tx.order, tally_core::Order::EscrowClaim(_)))
            .map(|(i, tx)| (i, tx.clone()))
            .collect();
        let results = worker.chain().submit_checked(checked);
        worker.notice_claims(
            claims
                .iter()
                .filter(|(i, _)| results.get(*i).is_some_and(Result::is_ok))
                .map(|(_, tx)| tx),
        );
        results
    })
    .await;
    match outcome {
        Ok(results) => Some(results),
        Err(error) => {
            warn!(%error, "transaction task failed");
            None
        }
    }
}

/// A wallet's `PUSH_TRANSACTION`: answered, and relayed when taken.
async fn on_push(miner: &Arc<Miner>, id: u64, tx: Transaction) {
    let tx_id = tx.id();
    if let Err(error) = Effect::of(&tx, &miner.network) {
        // Not a transaction the chain could ever take (an `IntroKey`, a zero transfer, a
        // malformed split or lock): refused before any signature work, as the chain would.
        miner.conns.reply(
            id,
            &PowPacket::RejectTransaction(RejectTransaction {
                id: Some(tx_id),
                reason: TxRejected::from(error).to_string(),
            }),
        );
        return;
    }
    let Some(result) = submit(miner, vec![tx.clone()])
        .await
        .and_then(|r| r.into_iter().next())
    else {
        return;
    };
    match result {
        Ok(()) => {
            lock(&miner.gossip).insert(tx_id);
            miner.mining.mempool_grew();
            miner.conns.reply(
                id,
                &PowPacket::AcceptTransaction(AcceptTransaction { id: tx_id }),
            );
            miner.conns.broadcast(
                &PowPacket::Transaction(TransactionGossip {
                    transactions: vec![tx],
                }),
                Some(id),
            );
        }
        // Already in the mempool: taken, as the wallet asked (it was relayed when it came).
        // Answering it refused would tell a wallet whose first answer was lost that nobody
        // holds the transaction it sent.
        Err(TxRejected::Duplicate) => miner.conns.reply(
            id,
            &PowPacket::AcceptTransaction(AcceptTransaction { id: tx_id }),
        ),
        Err(reason) => miner.conns.reply(
            id,
            &PowPacket::RejectTransaction(RejectTransaction {
                id: Some(tx_id),
                reason: reason.to_string(),
            }),
        ),
    }
}

/// A miner's `TRANSACTION` gossip: the fresh ones are checked, taken, and relayed on.
async fn on_gossip(miner: &Arc<Miner>, id: u64, gossip: TransactionGossip) {
    if gossip.transactions.len() > MAX_GOSSIP_TRANSACTIONS {
        miner.penalise(id, Offense::Protocol);
        return;
    }
    let fresh = lock(&miner.gossip).fresh(gossip.transactions);
    if fresh.is_empty() {
        return;
    }
    let Some(results) = submit(miner, fresh.clone()).await else {
        return;
    };
    let verdict = GossipVerdict::judge(fresh, results);
    if !verdict.refused_for_now.is_empty() {
        lock(&miner.gossip).refused_for_now(verdict.refused_for_now);
    }
    if verdict.faulty {
        miner.penalise(id, Offense::InvalidTransaction);
    }
    if !verdict.accepted.is_empty() {
        miner.mining.mempool_grew();
        miner.conns.broadcast(
            &PowPacket::Transaction(TransactionGossip {
                transactions: verdict.accepted,
            }),
            Some(id),
        );
    }
}

/// Answers a `SEND_REQUEST` within the peer's block-serving budget (one per peer, not per
/// connection): one token for the lookup, taken before the chain is touched, then one per
/// block the answer may carry, taken before any block is read, with what the byte cap kept
/// out given back. A request the budget cannot pay is refused with an `ERROR` and scored
/// ([`Offense::RequestFlood`]); nothing is read for it. Only miners (after `CONNECT`) ask
/// for blocks: a request before it is out of place.
async fn on_send_request(miner: &Arc<Miner>, id: u64, request: SendRequest) {
    if request.locator.len() > MAX_LOCATOR {
        miner.penalise(id, Offense::Protocol);
        return;
    }
    let is_miner = miner.conns.is_miner(id);
    let Some(key) = miner.conns.peer_key(id).filter(|_| is_miner) else {
        miner.penalise(id, Offense::Protocol);
        return;
    };
    if !lock(&miner.serving).take(&key, 1, Instant::now()) {
        refuse_block_request(miner, id);
        return;
    }
    let max = request.max.clamp(1, MAX_BLOCKS_PER_BATCH) as usize;
    // Binary size is about a third of the JSON form; a quarter of the frame is safe.
    let max_bytes = miner.config.wire.max_frame / 4;
    let worker = miner.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let chain = worker.chain();
        let fork = chain.find_fork(&request.locator);
        // The blocks the answer may carry (the byte cap may make it fewer).
        let count = chain.height().saturating_sub(fork).min(max as u64);
        if !lock(&worker.serving).take(&key, count, Instant::now()) {
            return None;
        }
        let blocks = chain.blocks_from(fork + 1, max, max_bytes);
        if let Ok(sent) = &blocks {
            let unused = count.saturating_sub(sent.len() as u64);
            lock(&worker.serving).refund(&key, unused);
        }
        Some(blocks.map(|blocks| ReceiveBlock {
            blocks,
            tip: chain.tip().into(),
        }))
    })
    .await;
    match answer {
        Ok(Some(Ok(batch))) => miner.conns.reply(id, &PowPacket::ReceiveBlock(batch)),
        Ok(Some(Err(error))) => miner.fatal(&error.into()),
        Ok(None) => refuse_block_request(miner, id),
        Err(error) => warn!(%error, "block lookup task failed"),
    }
}

/// Tells the peer its `SEND_REQUEST` exceeds its budget, and scores it.
fn refuse_block_request(miner: &Miner, id: u64) {
    debug!(id, "block requests beyond the budget; refused");
    miner.conns.reply(
        id,
        &PowPacket::Error(ErrorMsg {
            reason: "too many block requests: over the blocks-served budget".into(),
        }),
    );
    miner.penalise(id, Offense::RequestFlood);
}
