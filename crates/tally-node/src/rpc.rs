//! The control API: JSON-RPC 2.0 over HTTP (`POST /`), on 127.0.0.1 by default.
//!
//! Methods: `status` (no params); `account` (`{"account": "<hex>"}`); `peers` (no params:
//! the other validators' addresses learned from the tracker).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tally_core::AccountId;
use tally_proto::{LedgerRequest, Packet};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::discovery::AddressBook;
use crate::engine::EngineHandle;

/// What the control API reads from.
#[derive(Clone)]
struct Api {
    engine: EngineHandle,
    book: AddressBook,
}

/// Serves the control API until `cancel`.
pub async fn serve(
    listener: TcpListener,
    engine: EngineHandle,
    book: AddressBook,
    cancel: CancellationToken,
) {
    let app = Router::new()
        .route("/", post(handle))
        .with_state(Api { engine, book });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "control API stopped");
    }
}

fn rpc_error(id: Value, code: i64, message: impl Into<String>) -> Json<Value> {
    Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}}))
}

async fn handle(State(Api { engine, book }): State<Api>, body: axum::body::Bytes) -> Json<Value> {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return rpc_error(Value::Null, -32700, format!("parse error: {error}")),
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return rpc_error(id, -32600, "invalid request: no method");
    };
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let result = match method {
        "status" => match engine.status().await {
            Some(status) => serde_json::to_value(status).unwrap_or(Value::Null),
            None => return rpc_error(id, -32000, "validator is shutting down"),
        },
        "account" => {
            let Some(account) = params.get("account").and_then(Value::as_str) else {
                return rpc_error(id, -32602, "params: {\"account\": \"<64 hex>\"} expected");
            };
            let account: AccountId = match account.parse() {
                Ok(account) => account,
                Err(error) => return rpc_error(id, -32602, format!("account: {error}")),
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
                _ => return rpc_error(id, -32000, "validator did not answer"),
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
        other => return rpc_error(id, -32601, format!("method not found: {other}")),
    };
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}
