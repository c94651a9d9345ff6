//! The miner's control API: JSON-RPC 2.0 over HTTP (`POST /`), as the validator's.
//!
//! Methods: `status` (no params: tip, peers, mempool, hash rate, mining, bans);
//! `account` (`{"account": "<hex>"}`: balance, sequences, pending, tip).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tally_core::AccountId;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::pow::node::PowNodeHandle;

/// Serves the control API until `cancel`.
pub async fn serve(listener: TcpListener, node: PowNodeHandle, cancel: CancellationToken) {
    let app = Router::new().route("/", post(handle)).with_state(node);
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

async fn handle(State(node): State<PowNodeHandle>, body: axum::body::Bytes) -> Json<Value> {
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
        "status" => match node.status_off_the_runtime().await {
            Some(status) => serde_json::to_value(status).unwrap_or(Value::Null),
            None => return rpc_error(id, -32000, "miner is shutting down"),
        },
        "account" => {
            let Some(account) = params.get("account").and_then(Value::as_str) else {
                return rpc_error(id, -32602, "params: {\"account\": \"<64 hex>\"} expected");
            };
            let account: AccountId = match account.parse() {
                Ok(account) => account,
                Err(error) => return rpc_error(id, -32602, format!("account: {error}")),
            };
            match node.account_off_the_runtime(account).await {
                Some(info) => serde_json::to_value(info).unwrap_or(Value::Null),
                None => return rpc_error(id, -32000, "miner is shutting down"),
            }
        }
        other => return rpc_error(id, -32601, format!("method not found: {other}")),
    };
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}
