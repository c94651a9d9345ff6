//! The control API: JSON-RPC 2.0 over HTTP (`POST /`), on 127.0.0.1 by default.
//!
//! Methods: `status` (no params); `account` (`{"account": "<hex>"}`); `peers` (no params:
//! the other validators' addresses learned from the tracker); `slots` (no params: the
//! accounts whose next slot holds this validator's vote, each `voting`, `contested` or
//! `split` by the committee's signed views, and how many are frozen; see [`crate::slots`]).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tally_proto::{LedgerRequest, Packet};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::NodeConfig;
use crate::discovery::AddressBook;
use crate::engine::EngineHandle;
use crate::jsonrpc::{self, Call};

/// What the control API reads from.
#[derive(Clone)]
struct Api {
    engine: EngineHandle,
    book: AddressBook,
    config: Arc<NodeConfig>,
    network: tally_core::NetworkId,
}

/// Serves the control API until `cancel`.
pub async fn serve(
    listener: TcpListener,
    engine: EngineHandle,
    book: AddressBook,
    config: Arc<NodeConfig>,
    network: tally_core::NetworkId,
    cancel: CancellationToken,
) {
    let app = Router::new().route("/", post(handle)).with_state(Api {
        engine,
        book,
        config,
        network,
    });
    jsonrpc::serve(listener, app, cancel).await;
}

async fn handle(
    State(Api {
        engine,
        book,
        config,
        network,
    }): State<Api>,
    body: axum::body::Bytes,
) -> Json<Value> {
    let call = match Call::parse(&body) {
        Ok(call) => call,
        Err(answer) => return answer,
    };
    let result = match call.method.as_str() {
        "status" => match engine.status().await {
            Some(status) => serde_json::to_value(status).unwrap_or(Value::Null),
            None => return call.error(-32000, "validator is shutting down"),
        },
        "account" => {
            let account = match call.account() {
                Ok(account) => account,
                Err(answer) => return answer,
            };
            let request = LedgerRequest {
                accounts: Some(vec![account]),
                ..LedgerRequest::default()
            };
            match engine.submit(Packet::ReqLedger(request)).await.await {
                Ok(Packet::RespLedger(view)) => match view.ledger.get(&account) {
                    Some(entry) => json!({
                        "account": account,
                        "balance": entry.balance,
                        "sequence": entry.next_sequence,
                        "introduced": entry.introduced,
                        "certificates": view.certificates,
                    }),
                    None => Value::Null,
                },
                _ => return call.error(-32000, "validator did not answer"),
            }
        }
        "peers" => {
            let mut learned = book.entries();
            learned.sort();
            Value::Array(
                learned
                    .into_iter()
                    .map(|(key, address)| json!({"key": key, "address": address.to_string()}))
                    .collect(),
            )
        }
        "slots" => match crate::slots::report(&engine, &config, &book, network).await {
            Some(report) => serde_json::to_value(report).unwrap_or(Value::Null),
            None => return call.error(-32000, "validator is shutting down"),
        },
        _ => return call.unknown_method(),
    };
    call.result(result)
}
