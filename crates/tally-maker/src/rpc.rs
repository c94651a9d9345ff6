//! The maker's control API: JSON-RPC 2.0 over HTTP (`POST /`), on 127.0.0.1 by default, in
//! the same envelope as the validator's.
//!
//! Methods (no params): `status` (account, pairs with their liquidity, counts of wires by
//! outcome, fees earned), `wires` (the open wires and the latest 100 finished, newest
//! first, with their phase), `quotes` (the quotes announced last in each pair's topic, one
//! per account the maker pays from on B).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tally_node::jsonrpc::{self, Call};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::MakerStatus;

/// Serves the control API from the daemon's published status until `cancel`.
pub async fn serve(
    listener: TcpListener,
    status: watch::Receiver<MakerStatus>,
    cancel: CancellationToken,
) {
    let app = Router::new().route("/", post(handle)).with_state(status);
    jsonrpc::serve(listener, app, cancel).await;
}

async fn handle(
    State(status): State<watch::Receiver<MakerStatus>>,
    body: axum::body::Bytes,
) -> Json<Value> {
    let call = match Call::parse(&body) {
        Ok(call) => call,
        Err(answer) => return answer,
    };
    let status = status.borrow().clone();
    match call.method.as_str() {
        "status" => call.result(json!({
            "account": status.account,
            "pairs": status.pairs.iter().map(|pair| json!({
                "a": pair.a, "b": pair.b, "topic": pair.topic, "joined": pair.joined,
                "liquidity_a": pair.liquidity_a.map(|v| v.to_string()),
                "liquidity_b": pair.liquidity_b.map(|v| v.to_string()),
            })).collect::<Vec<_>>(),
            "open": status.open,
            "completed": status.completed,
            "refunded": status.refunded,
            "aborted": status.aborted,
            "fees_earned": status.fees_earned,
        })),
        "wires" => call.result(json!(status.wires)),
        "quotes" => call.result(json!(
            status
                .pairs
                .iter()
                .flat_map(|pair| pair.quotes.iter().map(|quote| json!({
                    "topic": pair.topic, "hash": quote.hash(), "quote": quote,
                })))
                .collect::<Vec<_>>()
        )),
        _ => call.unknown_method(),
    }
}
