//! Wires (seed 002) from the browser: the makers' quotes heard on a pair's topic, and a
//! wire from one served network to another run as a server task (`wire::payer::wire`, as
//! `tally wallet … wire` runs it, journaled, resumable with `wire resume`), its page
//! showing the seed's steps as they happen and, at the end, the wire receipt.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::{Deserialize, Serialize};
use tally_core::Amount;
use tally_wallet::wire::payer::{self, WireRecord, WireRequest};
use tally_wallet::wire::{Bounds, Proof, Reach};

use crate::html::{self, Section, esc};
use crate::{Network, Shared};

/// How long the quotes on a topic are listened for.
const LISTEN: Duration = Duration::from_millis(1500);

/// A wire as its page shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WireView {
    pub id: u64,
    pub from_network: String,
    pub to_network: String,
    pub amount: String,
    /// The steps so far, in words.
    pub steps: Vec<String>,
    /// How it ended, in words ("completed", "refunded", …), or why it could not run.
    pub outcome: Option<String>,
    pub ok: Option<bool>,
    /// The wire receipt's lines (quote, fee, each certificate), once it ended.
    pub receipt: Vec<String>,
}

/// The wires this server started.
#[derive(Default)]
pub(crate) struct Wires {
    next: AtomicU64,
    running: Mutex<HashMap<u64, Arc<Mutex<WireView>>>>,
}

impl Wires {
    fn get(&self, id: u64) -> Option<WireView> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let view = running.get(&id)?;
        Some(view.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// The wire form.
#[derive(Clone, Debug, Deserialize)]
pub struct WireForm {
    /// The served networks it pays on and arrives on.
    pub from_network: usize,
    pub to_network: usize,
    /// Cash arriving on B.
    pub amount: String,
    /// The most fee accepted (cash), if any bound.
    pub max_fee: Option<String>,
    /// The paying account (the first by default).
    pub from: Option<String>,
}

fn pair(shared: &Shared, a: usize, b: usize) -> Result<(&Network, &Network), String> {
    let (Some(a_net), Some(b_net)) = (shared.network(Some(a)), shared.network(Some(b))) else {
        return Err("no such network".into());
    };
    if a == b {
        return Err("a wire goes from one network to another; within one, send".into());
    }
    Ok((a_net, b_net))
}

fn receipt_lines(record: &WireRecord) -> Vec<String> {
    let receipt = record.receipt();
    let mut lines = vec![
        format!("wire {}: {}", record.id, record.outcome_words()),
        format!(
            "{} → {}: {} cash, fee {} cash, maker {}",
            record.contract_a.name,
            record.contract_b.name,
            receipt.amount,
            receipt.fee.unwrap_or(Amount::ZERO),
            receipt.quote.quote.maker
        ),
        format!("signed quote {}", receipt.quote.hash()),
    ];
    for (name, proof) in [
        ("lock on A", &receipt.lock_a),
        ("maker's lock on B", &receipt.lock_b),
        ("claim on B", &receipt.claim_b),
        ("refund on A", &receipt.refund_a),
    ] {
        match proof {
            Some(Proof::Certificate(cert)) => lines.push(format!(
                "{name}: certificate {} ({} votes)",
                cert.checksum,
                cert.votes.len()
            )),
            Some(Proof::Chain(mined)) => lines.push(format!(
                "{name}: transaction {} at height {}",
                mined.id, mined.height
            )),
            None => {}
        }
    }
    lines
}

async fn start(shared: &Arc<Shared>, form: WireForm) -> Result<u64, String> {
    let relay = shared
        .relay
        .clone()
        .ok_or("wires need a relay: start `tally web` with --relay HOST:PORT")?;
    let (a, b) = pair(shared, form.from_network, form.to_network)?;
    let amount: Amount = form
        .amount
        .trim()
        .parse()
        .map_err(|e| format!("the amount {:?} is not an amount of cash: {e}", form.amount))?;
    if amount.is_zero() {
        return Err("a wire of zero moves nothing".into());
    }
    let max_fee = match form.max_fee.as_deref().map(str::trim) {
        Some(fee) if !fee.is_empty() => Some(
            fee.parse::<Amount>()
                .map_err(|e| format!("the fee {fee:?} is not an amount of cash: {e}"))?,
        ),
        _ => None,
    };
    let wallet = shared.open_wallet()?;
    let query = form
        .from
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty());
    let key = wallet
        .find(query)
        .and_then(|entry| entry.secret_key())
        .map_err(|e| e.to_string())?;
    let bounds = Bounds::default();
    let request = WireRequest {
        key,
        client_a: Reach::connect(&a.contract, shared.timeout, &bounds)
            .await
            .map_err(|e| e.to_string())?,
        client_b: Reach::connect(&b.contract, shared.timeout, &bounds)
            .await
            .map_err(|e| e.to_string())?,
        relay,
        amount,
        max_fee,
        bounds,
        listen: LISTEN,
        known_quotes: Vec::new(),
    };
    let id = shared.wires.next.fetch_add(1, Ordering::Relaxed) + 1;
    let view = Arc::new(Mutex::new(WireView {
        id,
        from_network: a.contract.name.clone(),
        to_network: b.contract.name.clone(),
        amount: amount.to_string(),
        ..WireView::default()
    }));
    shared
        .wires
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, view.clone());
    tokio::spawn(async move {
        let steps = view.clone();
        let on_step = move |step: payer::WireStep, _| {
            steps
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .steps
                .push(step.to_string().trim().to_string());
        };
        let ended = payer::wire(&wallet, request, on_step).await;
        let mut view = view.lock().unwrap_or_else(PoisonError::into_inner);
        match ended {
            Ok(record) => {
                view.ok = Some(matches!(
                    record.outcome,
                    Some(tally_swap::Outcome::Completed)
                ));
                view.outcome = Some(record.outcome_words());
                view.receipt = receipt_lines(&record);
            }
            Err(error) => {
                view.ok = Some(false);
                view.outcome = Some(format!("the wire could not run: {error}"));
            }
        }
    });
    Ok(id)
}

/// `POST /wire` (a form): starts a wire; its page.
pub async fn start_page(State(shared): State<Arc<Shared>>, Form(form): Form<WireForm>) -> Response {
    match start(&shared, form).await {
        Ok(id) => Redirect::to(&format!("/wire/{id}")).into_response(),
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            html::page(
                "Wire",
                Section::Wallet,
                &format!(
                    "{}<p><a href=\"/\">Back to the wallet</a></p>",
                    html::error_banner(&error)
                ),
            ),
        )
            .into_response(),
    }
}

/// `POST /api/wire` (JSON, the form's fields): `{"id": N}`.
pub async fn start_api(State(shared): State<Arc<Shared>>, Json(form): Json<WireForm>) -> Response {
    match start(&shared, form).await {
        Ok(id) => Json(serde_json::json!({ "id": id })).into_response(),
        Err(error) => crate::api::error(StatusCode::UNPROCESSABLE_ENTITY, error),
    }
}

/// `GET /api/wire/{id}`.
pub async fn show_api(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    match shared.wires.get(id) {
        Some(view) => Json(view).into_response(),
        None => crate::api::error(StatusCode::NOT_FOUND, format!("no wire {id}")),
    }
}

fn list(items: &[String], id: &str) -> String {
    let mut out = format!("<ul id=\"{id}\">");
    for item in items {
        let _ = write!(out, "<li>{}</li>", esc(item));
    }
    out.push_str("</ul>");
    out
}

/// The part of a wire's page that changes.
fn live_part(view: &WireView) -> String {
    format!(
        "<h2>Steps</h2>{}<p id=\"wire-outcome\" class=\"{}\">{}</p><h2>Wire receipt</h2>{}",
        list(&view.steps, "wire-steps"),
        match view.ok {
            Some(true) => "ok",
            Some(false) => "error",
            None => "",
        },
        esc(view.outcome.as_deref().unwrap_or("running…")),
        list(&view.receipt, "wire-receipt")
    )
}

/// `GET /wire/{id}`: the wire's page; its steps arrive by themselves.
pub async fn show_page(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    let Some(view) = shared.wires.get(id) else {
        return crate::pages::not_found().await;
    };
    let body = format!(
        "<p>{} cash from {} to {} through a market maker.</p><div id=\"wire-live\" data-id=\"{id}\">{}</div>",
        esc(&view.amount),
        esc(&view.from_network),
        esc(&view.to_network),
        live_part(&view)
    );
    html::page("Wire", Section::Wallet, &body).into_response()
}

/// `GET /wire/{id}/events`: `{"html": …}` whenever the wire's page changes; ends with it.
pub async fn events(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    if shared.wires.get(id).is_none() {
        return crate::pages::not_found().await;
    }
    let events = futures::stream::unfold(
        (shared, None::<WireView>),
        move |(shared, last)| async move {
            loop {
                let view = shared.wires.get(id)?;
                if last.as_ref() != Some(&view) {
                    let event = Event::default()
                        .event("wire")
                        .json_data(serde_json::json!({ "html": live_part(&view) }))
                        .unwrap_or_else(|_| Event::default().comment("unencodable"));
                    return Some((Ok::<_, Infallible>(event), (shared, Some(view))));
                }
                if view.ok.is_some() {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `?from_network=&to_network=` for the quotes.
#[derive(Deserialize)]
pub struct PairQuery {
    pub from_network: usize,
    pub to_network: usize,
}

/// One maker's quote as the pages show it.
#[derive(Clone, Debug, Serialize)]
pub struct QuoteView {
    pub maker: tally_core::AccountId,
    pub fee_ppm: u32,
    pub fee_fixed: String,
    pub min: String,
    pub max: String,
    pub lock_time_s: u64,
}

async fn quotes(shared: &Shared, query: &PairQuery) -> Result<Vec<QuoteView>, String> {
    let relay = shared
        .relay
        .clone()
        .ok_or("quotes are heard on a relay: start `tally web` with --relay HOST:PORT")?;
    let (a, b) = pair(shared, query.from_network, query.to_network)?;
    let want = tally_swap::Want {
        asset: payer::ASSET.into(),
        network_a: a.contract.id(),
        network_b: b.contract.id(),
    };
    Ok(payer::collect_quotes(&relay, &want, LISTEN)
        .await
        .into_iter()
        .map(|signed| QuoteView {
            maker: signed.quote.maker,
            fee_ppm: signed.quote.fee_ppm,
            fee_fixed: signed.quote.fee_fixed.to_string(),
            min: signed.quote.min_amount.to_string(),
            max: signed.quote.max_amount.to_string(),
            lock_time_s: signed.quote.lock_time_ms / 1000,
        })
        .collect())
}

/// `GET /api/wire/quotes?from_network=A&to_network=B`: the quotes heard on the topic.
pub async fn quotes_api(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<PairQuery>,
) -> Response {
    match quotes(&shared, &query).await {
        Ok(quotes) => Json(quotes).into_response(),
        Err(error) => crate::api::error(StatusCode::UNPROCESSABLE_ENTITY, error),
    }
}

/// `GET /wire/quotes?from_network=A&to_network=B`: the quotes heard, and the wire form.
pub async fn quotes_page(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<PairQuery>,
) -> Response {
    let heard = match quotes(&shared, &query).await {
        Ok(heard) => heard,
        Err(error) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                html::message_page("Quotes", &error),
            )
                .into_response();
        }
    };
    let mut body = format!(
        "<p id=\"quotes-heard\">{} quote{} heard on the topic in {} s.</p><table id=\"quotes\"><thead><tr>\
         <th>Maker</th><th class=\"num\">Fee</th><th class=\"num\">Amounts</th><th class=\"num\">Lock time</th></tr></thead><tbody>",
        heard.len(),
        if heard.len() == 1 { "" } else { "s" },
        LISTEN.as_secs_f64()
    );
    for q in &heard {
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{}…</td><td class=\"num\">{:.2} % + {} cash</td><td class=\"num\">{} to {} cash</td><td class=\"num\">{} s</td></tr>",
            q.maker.short(),
            f64::from(q.fee_ppm) / 10_000.0,
            esc(&q.fee_fixed),
            esc(&q.min),
            esc(&q.max),
            q.lock_time_s
        );
    }
    body.push_str("</tbody></table><p><a href=\"/\">Back to the wallet</a></p>");
    html::page("Quotes", Section::Wallet, &body).into_response()
}

/// The wire section of the wallet page: a form per ordered pair of served networks.
pub fn section(shared: &Shared) -> String {
    if shared.networks.len() < 2 {
        return String::new();
    }
    let mut out = String::from("<section id=\"wires\"><h2>Wire to another network</h2>");
    if shared.relay.is_none() {
        out.push_str(
            "<p>Wires need a relay: start `tally web` with --relay HOST:PORT.</p></section>",
        );
        return out;
    }
    out.push_str("<div class=\"coin-forms\">");
    for (a, from) in shared.networks.iter().enumerate() {
        for (b, to) in shared.networks.iter().enumerate().filter(|(b, _)| *b != a) {
            let _ = write!(
                out,
                "<form method=\"post\" action=\"/wire\" id=\"wire-{a}-{b}\">\
                 <input type=\"hidden\" name=\"from_network\" value=\"{a}\"><input type=\"hidden\" name=\"to_network\" value=\"{b}\">\
                 <strong>{} → {}</strong> (<a href=\"/wire/quotes?from_network={a}&amp;to_network={b}\">the makers' quotes</a>)\
                 <label>Cash arriving <input name=\"amount\" class=\"wire-amount\" required size=\"8\"></label>\
                 <label>Most fee (cash) <input name=\"max_fee\" class=\"wire-max-fee\" size=\"6\"></label>\
                 <button type=\"submit\" class=\"wire-submit\">Wire</button></form>",
                esc(&from.contract.name),
                esc(&to.contract.name)
            );
        }
    }
    out.push_str("</div></section>");
    out
}
