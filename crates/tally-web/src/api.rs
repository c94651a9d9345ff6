//! The JSON API: the same views and actions as the pages, for scripts and shops
//! (`Authorization: Bearer <token>`; listed in PROTOCOL.md). Errors are
//! `{"error": "…"}` in words, with a status that says whose fault it was.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::Shared;
use crate::model;
use crate::pages::NetworkQuery;

/// An API refusal: `{"error": message}` with `status`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `GET /api/wallet`: every account on every network, with agreement counts.
pub async fn wallet(State(shared): State<Arc<Shared>>) -> Response {
    match model::wallet(&shared).await {
        Ok(view) => Json(view).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `POST /api/pay`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    /// The network's position (default 0).
    pub network: Option<usize>,
    /// The paying account (hex, a prefix of it, or its label).
    pub from: String,
    pub to: String,
    /// Cash, as text ("12.5").
    pub amount: String,
}

/// `POST /api/pay`: pays; the receipt, checked.
pub async fn pay(State(shared): State<Arc<Shared>>, Json(request): Json<PayRequest>) -> Response {
    match model::pay(
        &shared,
        request.network,
        &request.from,
        &request.to,
        &request.amount,
    )
    .await
    {
        Ok(receipt) => Json(receipt).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

/// `?limit=` for the receipts.
#[derive(Deserialize)]
pub struct ReceiptsQuery {
    pub limit: Option<usize>,
}

/// `GET /api/receipts?limit=N`: the newest receipts (all by default), each checked.
pub async fn receipts(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<ReceiptsQuery>,
) -> Response {
    match model::receipts(&shared, query.limit.unwrap_or(usize::MAX)).await {
        Ok((total, receipts)) => {
            Json(json!({ "total": total, "receipts": receipts })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `GET /api/receipts/{checksum}`.
pub async fn receipt(State(shared): State<Arc<Shared>>, Path(checksum): Path<String>) -> Response {
    match model::receipt(&shared, &checksum) {
        Ok(Some(receipt)) => Json(receipt).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no receipt {checksum}")),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// `GET /api/explorer/validators?network=N`.
pub async fn validators(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<NetworkQuery>,
) -> Response {
    match shared.network(query.network) {
        Some(network) => Json(model::validators(network).await).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such network"),
    }
}

/// `GET /api/explorer/accounts/{account}?network=N`: each validator's view and the history.
pub async fn account(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    Query(query): Query<NetworkQuery>,
) -> Response {
    let Some(network) = shared.network(query.network) else {
        return error(StatusCode::NOT_FOUND, "no such network");
    };
    match model::account_page(network, &account).await {
        Ok(page) => Json(page).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// `GET /api/explorer/certificates/{account}/{sequence}?network=N`.
pub async fn certificate(
    State(shared): State<Arc<Shared>>,
    Path((account, sequence)): Path<(String, u64)>,
    Query(query): Query<NetworkQuery>,
) -> Response {
    let Some(network) = shared.network(query.network) else {
        return error(StatusCode::NOT_FOUND, "no such network");
    };
    match model::certificate(network, &account, sequence).await {
        Ok(Some(receipt)) => Json(receipt).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no certificate for slot {sequence} of {account}"),
        ),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}
