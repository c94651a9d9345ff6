//! The miner's control API: JSON-RPC 2.0 over HTTP (`POST /`), as the validator's.
//!
//! Methods: `status` (no params: tip, peers, mempool, hash rate, mining, bans);
//! `account` (`{"account": "<hex>"}`: balance, sequences, pending, tip).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::jsonrpc::{self, Call};
use crate::pow::handle::PowNodeHandle;

/// Serves the control API until `cancel`.
pub async fn serve(listener: TcpListener, node: PowNodeHandle, cancel: CancellationToken) {
    let app = Router::new().route("/", post(handle)).with_state(node);
    jsonrpc::serve(listener, app, cancel).await;
}

async fn handle(State(node): State<PowNodeHandle>, body: axum::body::Bytes) -> Json<Value> {
    let call = match Call::parse(&body) {
        Ok(call) => call,
        Err(answer) => return answer,
    };
    let result = match call.method.as_str() {
        "status" => match node.status_off_the_runtime().await {
            Some(status) => serde_json::to_value(status).unwrap_or(Value::Null),
            None => return call.error(-32000, "miner is shutting down"),
        },
        "account" => {
            let account = match call.account() {
                Ok(account) => account,
                Err(answer) => return answer,
            };
            match node.account_off_the_runtime(account).await {
                Some(info) => serde_json::to_value(info).unwrap_or(Value::Null),
                None => return call.error(-32000, "miner is shutting down"),
            }
        }
        _ => return call.unknown_method(),
    };
    call.result(result)
}
