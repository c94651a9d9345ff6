//! Catching up: pull from each peer the certificates this validator has not applied.
//!
//! Each peer's log is read in order from a cursor kept durably (with the batch that applied
//! the page), so a validator that was down replays exactly what it missed, and a peer's
//! log order guarantees each certificate's predecessors come first.

use std::sync::Arc;
use std::time::Duration;

use tally_core::{NetworkId, ValidatorInfo};
use tally_ledger::LedgerStore;
use tally_proto::{CertQuery, Connection, ErrorCode, Hello, Packet};
use tokio_util::sync::CancellationToken;

use crate::NodeConfig;
use crate::discovery::AddressBook;
use crate::engine::EngineHandle;

const PAGE: u32 = 256;

/// Runs until `cancel`: polls `peer` every `sync_interval`, faster while it has more.
pub async fn sync_with_peer(
    peer: ValidatorInfo,
    network: NetworkId,
    engine: EngineHandle,
    store: Arc<dyn LedgerStore>,
    config: Arc<NodeConfig>,
    book: AddressBook,
    cancel: CancellationToken,
) {
    let key = peer.key;
    let mut cursor = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.cursor(&key))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0)
    };
    let mut connection: Option<Connection> = None;
    let mut more = false;
    loop {
        if !more {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(config.sync_interval) => {}
            }
        }
        more = false;
        if connection.is_none() {
            connection = connect(&peer, &book, &network, &config).await;
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        let request = Packet::ReqCerts(CertQuery::Log {
            since: cursor,
            limit: PAGE,
        });
        let page = tokio::select! {
            _ = cancel.cancelled() => return,
            answer = conn.call(&request) => answer,
        };
        let page = match page {
            Ok(Packet::RespCerts(page)) => page,
            Ok(other) => {
                tracing::warn!(peer = %peer.key.short(), answer = other.name(), "unexpected answer to REQ_CERTS");
                connection = None;
                continue;
            }
            Err(error) => {
                tracing::debug!(peer = %peer.key.short(), %error, "peer unreachable");
                connection = None;
                continue;
            }
        };
        if page.certificates.is_empty() {
            continue;
        }
        // A peer's log is ordered; refuse pages that go backwards or jump.
        let ordered = page
            .certificates
            .windows(2)
            .all(|w| w[0].index < w[1].index)
            && page.certificates.first().is_some_and(|c| c.index >= cursor);
        if !ordered {
            tracing::warn!(peer = %peer.key.short(), "peer sent an unordered page; dropping the connection");
            connection = None;
            continue;
        }
        let next = page
            .next
            .unwrap_or_else(|| page.certificates.last().map_or(cursor, |c| c.index + 1));
        let Some(outcome) = engine.sync(peer.key, page.certificates, next).await else {
            return;
        };
        if outcome.applied > 0 {
            tracing::info!(peer = %peer.key.short(), applied = outcome.applied, "caught up from peer");
        }
        more = page.next.is_some() && outcome.cursor > cursor;
        cursor = outcome.cursor;
    }
}

/// Connects to `peer` where the tracker last saw it, else at its contract address, and
/// checks that it is that validator of this network.
pub(crate) async fn connect(
    peer: &ValidatorInfo,
    book: &AddressBook,
    network: &tally_core::NetworkId,
    config: &NodeConfig,
) -> Option<Connection> {
    let learned = book.get(&peer.key).map(|address| address.to_string());
    for address in learned.iter().chain(std::iter::once(&peer.address)) {
        if let Some(conn) = connect_at(peer, address, network, config).await {
            return Some(conn);
        }
        if learned.as_ref() == Some(&peer.address) {
            break;
        }
    }
    None
}

async fn connect_at(
    peer: &ValidatorInfo,
    address: &str,
    network: &tally_core::NetworkId,
    config: &NodeConfig,
) -> Option<Connection> {
    let mut conn = Connection::connect(address, config.limits, Duration::from_secs(2))
        .await
        .ok()?;
    let hello = Packet::Hello(Hello {
        network: *network,
        validator: None,
        address: None,
        certificates: None,
    });
    match conn.call(&hello).await {
        Ok(Packet::Hello(answer)) if answer.validator == Some(peer.key) => Some(conn),
        Ok(Packet::Hello(answer)) => {
            tracing::warn!(expected = %peer.key.short(), got = ?answer.validator, "peer at {address} is someone else");
            None
        }
        Ok(Packet::Error(error)) if error.code == ErrorCode::WrongNetwork => {
            tracing::warn!(peer = %peer.key.short(), "peer serves another network");
            None
        }
        _ => None,
    }
}
