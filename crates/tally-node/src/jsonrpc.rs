//! The JSON-RPC 2.0 envelope both control APIs (validator and miner) share: parsing a call,
//! its errors and result, the `{"account": hex}` parameter, and serving a router until
//! cancelled.

use axum::Json;
use serde_json::{Value, json};
use tally_core::AccountId;
use tokio::net::TcpListener;
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

/// Serves `app` (`POST /`) on `listener` until `cancel`.
pub async fn serve(listener: TcpListener, app: axum::Router, cancel: CancellationToken) {
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "control API stopped");
    }
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
