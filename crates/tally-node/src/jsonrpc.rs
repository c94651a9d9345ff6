//! The JSON-RPC 2.0 envelope both control APIs (validator and miner) share: parsing a call,
//! its errors and result, the `{"account": hex}` parameter, and serving a router until
//! cancelled.

use axum::Json;
use serde_json::{Value, json};
use std::time::Duration;
use tally_core::AccountId;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tally_proto::admission::{Admission, AdmissionLimits, LogGate};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A call: its id (echoed), method and params.
pub struct Call {
    pub id: Value,
    pub method: String,
    pub params: Value,
}

impl Call {
    /// Parses a request body, or answers why it is not a call.
    pub fn parse(body: &[u8]) -> Result<Call, Json<Value>> {
        let request: Value = serde_json::from_slice(body)
            .map_err(|error| error_answer(Value::Null, -32700, format!("parse error: {error}")))?;
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = request.get("method").and_then(Value::as_str) else {
            return Err(error_answer(id, -32600, "invalid request: no method"));
        };
        Ok(Call {
            method: method.to_owned(),
            params: request.get("params").cloned().unwrap_or(Value::Null),
            id,
        })
    }

    /// The `{"account": "<64 hex>"}` parameter, or the error answer.
    pub fn account(&self) -> Result<AccountId, Json<Value>> {
        let Some(account) = self.params.get("account").and_then(Value::as_str) else {
            return Err(self.error(-32602, "params: {\"account\": \"<64 hex>\"} expected"));
        };
        account
            .parse()
            .map_err(|error| self.error(-32602, format!("account: {error}")))
    }

    /// An error answer to this call.
    pub fn error(&self, code: i64, message: impl Into<String>) -> Json<Value> {
        error_answer(self.id.clone(), code, message)
    }

    /// The answer for a method this API does not have.
    pub fn unknown_method(&self) -> Json<Value> {
        self.error(-32601, format!("method not found: {}", self.method))
    }

    /// The successful answer.
    pub fn result(&self, result: Value) -> Json<Value> {
        Json(json!({"jsonrpc": "2.0", "id": self.id, "result": result}))
    }
}

fn error_answer(id: Value, code: i64, message: impl Into<String>) -> Json<Value> {
    Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}}))
}

/// Connections a control API serves at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections one address may hold of those.
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 32;
/// How long a client has to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last, whatever it does (a slow body included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Serves `app` (`POST /`) on `listener` until `cancel`: at most [`MAX_CONNECTIONS`] at
/// once ([`MAX_CONNECTIONS_PER_SOURCE`] from one address), headers within
/// [`HEADER_TIMEOUT`], each connection closed after [`CONNECTION_LIFETIME`], so half-sent
/// requests cannot hold file descriptors the node's own port needs.
pub async fn serve(listener: TcpListener, app: axum::Router, cancel: CancellationToken) {
    let admission = Admission::new(
        AdmissionLimits {
            max_total: MAX_CONNECTIONS,
            max_per_source: MAX_CONNECTIONS_PER_SOURCE,
            reserved: 0,
        },
        [],
    );
    let gate = LogGate::default();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "control API: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = match admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refused) => {
                if let Some(held_back) = gate.pass(peer.ip(), std::time::Instant::now()) {
                    tracing::warn!(%peer, held_back, "control API: {refused}; refusing");
                }
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(admitted);
        });
    }
    connections.shutdown().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn code(answer: Json<Value>) -> i64 {
        answer.0["error"]["code"].as_i64().unwrap()
    }

    #[test]
    fn bad_calls_get_their_json_rpc_error_codes() {
        assert_eq!(code(Call::parse(b"{not json").err().unwrap()), -32700);
        assert_eq!(code(Call::parse(br#"{"id": 7}"#).err().unwrap()), -32600);
        let call = Call::parse(br#"{"id": 7, "method": "account", "params": {}}"#).unwrap();
        assert_eq!(code(call.account().err().unwrap()), -32602);
        let call =
            Call::parse(br#"{"id": 7, "method": "account", "params": {"account": "zz"}}"#).unwrap();
        assert_eq!(code(call.account().err().unwrap()), -32602);
        assert_eq!(code(call.unknown_method()), -32601);
        assert_eq!(call.unknown_method().0["id"], 7);
    }

    #[test]
    fn a_good_call_echoes_its_id_with_the_result() {
        let key = tally_core::SecretKey::generate().account();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"a","method":"account","params":{{"account":"{key}"}}}}"#
        );
        let call = Call::parse(body.as_bytes()).unwrap();
        assert_eq!(call.method, "account");
        assert_eq!(call.account().ok(), Some(key));
        let answer = call.result(json!(1)).0;
        assert_eq!(answer["id"], "a");
        assert_eq!(answer["result"], 1);
    }
}
