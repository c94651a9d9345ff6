//! Live transfers (LiveConnect, seed 003) from the browser: a send or a receive runs as a
//! task of the server (the wallet library's `live::send` / `live::receive`, exactly as the
//! CLI runs them, journaled, resumable with `tally wallet … live resume`), and its page
//! shows the seed's numbered steps as they happen, over server-sent events. The sender's
//! page shows the connection file (text and QR code): handing it to the receiver is the
//! point of starting a transfer, the one secret a page shows without an export.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tally_core::Amount;
use tally_live::{ReceiverOutcome, SenderOutcome, Timing};
use tally_wallet::coins::{CoinStore, WalletKeys};
use tally_wallet::live::{self, Progress, ReceiveRequest, SendRequest};
use tally_wallet::{QuorumClient, Wallet};

use crate::html::{self, Section, esc};
use crate::{Network, Shared};

/// One numbered step, as the seed names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepView {
    pub number: u8,
    pub name: String,
}

/// A transfer as its page shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TransferView {
    pub id: u64,
    /// "send" or "receive".
    pub side: &'static str,
    /// The steps reached so far, in order.
    pub steps: Vec<StepView>,
    /// The connection file to hand over (the sender's, once written), and the same as a
    /// QR code (SVG).
    pub connection: Option<String>,
    pub connection_qr: Option<String>,
    /// Said while it runs (a failure, a wait), then its outcome in words.
    pub notes: Vec<String>,
    pub outcome: Option<String>,
    /// Whether it ended well (absent while it runs).
    pub ok: Option<bool>,
}

/// One transfer: what its page shows, and where the sender's connection file goes.
struct Transfer {
    view: Mutex<TransferView>,
    connection_file: PathBuf,
}

impl Transfer {
    fn update(&self, change: impl FnOnce(&mut TransferView)) {
        change(&mut self.view.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The view now, with the connection file's text once the sender has written it.
    fn view(&self) -> TransferView {
        let mut view = self
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if view.connection.is_none()
            && view.side == "send"
            && let Ok(text) = std::fs::read_to_string(&self.connection_file)
        {
            let qr = crate::coins::qr(&text);
            let mut remembered = self.view.lock().unwrap_or_else(PoisonError::into_inner);
            remembered.connection = Some(text);
            remembered.connection_qr = Some(qr);
            view = remembered.clone();
        }
        view
    }
}

/// The transfers this server started.
#[derive(Default)]
pub(crate) struct Transfers {
    next: AtomicU64,
    running: Mutex<HashMap<u64, Arc<Transfer>>>,
}

impl Transfers {
    fn get(&self, id: u64) -> Option<Arc<Transfer>> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }
}

/// The live forms (a send, or a receive of a pasted connection file).
#[derive(Clone, Debug, Deserialize)]
pub struct LiveRequest {
    pub network: Option<usize>,
    /// Whole cash, to send.
    pub amount: Option<String>,
    /// The account to withdraw from when the Bank's coins do not cover it.
    pub from: Option<String>,
    /// The connection file's text, to receive.
    pub connection: Option<String>,
}

fn timing() -> Timing {
    Timing {
        heartbeat_ms: 1_000,
        ..Timing::default()
    }
}

fn progress_note(transfer: &Transfer, progress: Progress) {
    transfer.update(|view| match progress {
        Progress::Step(number) => view.steps.push(StepView {
            number: number.number(),
            name: number.name().to_string(),
        }),
        Progress::Failed(reason) => view.notes.push(format!("failed: {reason}")),
        Progress::Lingering(wait) => view.notes.push(format!(
            "delivered; waiting up to {} s for the receiver to confirm",
            wait.as_secs()
        )),
    });
}

/// Starts a send or a receive; its id.
async fn start(shared: &Arc<Shared>, request: LiveRequest, send: bool) -> Result<u64, String> {
    let relay = shared
        .relay
        .clone()
        .ok_or("live transfers need a relay: start `tally web` with --relay HOST:PORT")?;
    let network: &Network = shared
        .network(request.network)
        .ok_or_else(|| "no such network".to_string())?;
    let contract = network.contract.clone();
    let id = shared.live.next.fetch_add(1, Ordering::Relaxed) + 1;
    let folder = shared.wallet.join("web-live");
    std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    let stamp = hex::encode(rand::random::<[u8; 8]>());
    let connection_file = folder.join(format!("{stamp}.txt"));
    let amount = if send {
        let text = request.amount.as_deref().unwrap_or_default().trim();
        let amount: Amount = text
            .parse()
            .map_err(|e| format!("the amount {text:?} is not an amount of cash: {e}"))?;
        Some(amount)
    } else {
        let text = request.connection.as_deref().unwrap_or_default();
        tally_proto::live::ConnectionFile::parse(text)
            .map_err(|e| format!("that is not a connection file: {e}"))?;
        std::fs::write(&connection_file, text)
            .map_err(|e| format!("{}: {e}", connection_file.display()))?;
        None
    };
    let transfer = Arc::new(Transfer {
        view: Mutex::new(TransferView {
            id,
            side: if send { "send" } else { "receive" },
            ..TransferView::default()
        }),
        connection_file: connection_file.clone(),
    });
    shared
        .live
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, transfer.clone());
    let wallet_dir = shared.wallet.clone();
    let timeout = shared.timeout;
    tokio::spawn(async move {
        let ended = run(
            &wallet_dir,
            contract,
            timeout,
            &transfer,
            relay,
            amount,
            request.from,
            connection_file,
        )
        .await;
        transfer.update(|view| match ended {
            Ok((ok, outcome)) => {
                view.ok = Some(ok);
                view.outcome = Some(outcome);
            }
            Err(error) => {
                view.ok = Some(false);
                view.outcome = Some(error);
            }
        });
    });
    Ok(id)
}

/// Runs the transfer to its end: whether it went well, and its outcome in words.
#[allow(clippy::too_many_arguments)]
async fn run(
    wallet_dir: &std::path::Path,
    contract: tally_core::NetworkContract,
    timeout: Duration,
    transfer: &Arc<Transfer>,
    relay: String,
    amount: Option<Amount>,
    from: Option<String>,
    connection_file: PathBuf,
) -> Result<(bool, String), String> {
    let wallet = Wallet::open(wallet_dir).map_err(|e| e.to_string())?;
    let id = contract.id();
    let client = QuorumClient::new(contract, timeout).map_err(|e| e.to_string())?;
    let store = CoinStore::open(wallet.dir(), id).map_err(|e| e.to_string())?;
    let mut keys = WalletKeys::new(&wallet, id, None);
    let reporter = transfer.clone();
    let mut progress = move |p: Progress| progress_note(&reporter, p);
    match amount {
        Some(amount) => {
            // The account named, or the wallet's first: it pays for coins when the Bank's
            // do not cover the amount.
            let query = from.as_deref().map(str::trim).filter(|f| !f.is_empty());
            let from = match wallet.find(query) {
                Ok(entry) => Some(entry.secret_key().map_err(|e| e.to_string())?),
                Err(_) if query.is_none() => None,
                Err(error) => return Err(error.to_string()),
            };
            let request = SendRequest {
                amount,
                relay,
                connection_file,
                timing: timing(),
                cancel: None,
            };
            let report = live::send(
                &wallet,
                &client,
                &store,
                &mut keys,
                from.as_ref(),
                &request,
                &mut progress,
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(match report.outcome {
                SenderOutcome::Delivered { .. } => (
                    true,
                    format!(
                        "Delivered {} cash: the receipt of the receiver's powns checks.",
                        report.amount
                    ),
                ),
                SenderOutcome::Kept { reason } => (
                    false,
                    format!("Not sent ({reason}); the coins are back in the Bank."),
                ),
                SenderOutcome::Reclaimed {
                    reason,
                    reclaimed,
                    powned_by_receiver,
                    ..
                } => (
                    false,
                    format!(
                        "Failed after the coins left ({reason}); {reclaimed} cash taken back, {powned_by_receiver} cash powned by the receiver."
                    ),
                ),
            })
        }
        None => {
            let request = ReceiveRequest {
                connection_file,
                expected_amount: None,
                timing: timing(),
                cancel: None,
            };
            let report =
                live::receive(&wallet, &client, &store, &mut keys, &request, &mut progress)
                    .await
                    .map_err(|e| e.to_string())?;
            Ok(match report.outcome {
                ReceiverOutcome::Received {
                    announced,
                    received,
                    ..
                } => (
                    true,
                    format!(
                        "Received {received} of the {announced} cash announced; the coins are in the Bank."
                    ),
                ),
                ReceiverOutcome::Aborted { reason } => {
                    (false, format!("Nothing received: {reason}"))
                }
            })
        }
    }
}

/// `POST /live/send` (a form): starts a send; its page.
pub async fn send_page(
    State(shared): State<Arc<Shared>>,
    Form(request): Form<LiveRequest>,
) -> Response {
    start_page(&shared, request, true).await
}

/// `POST /live/receive` (a form): starts a receive; its page.
pub async fn receive_page(
    State(shared): State<Arc<Shared>>,
    Form(request): Form<LiveRequest>,
) -> Response {
    start_page(&shared, request, false).await
}

async fn start_page(shared: &Arc<Shared>, request: LiveRequest, send: bool) -> Response {
    match start(shared, request, send).await {
        Ok(id) => Redirect::to(&format!("/live/{id}")).into_response(),
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            html::page(
                "Live transfer",
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

/// `POST /api/live/send` (JSON): `{"id": N}`.
pub async fn send_api(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<LiveRequest>,
) -> Response {
    start_api(&shared, request, true).await
}

/// `POST /api/live/receive` (JSON): `{"id": N}`.
pub async fn receive_api(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<LiveRequest>,
) -> Response {
    start_api(&shared, request, false).await
}

async fn start_api(shared: &Arc<Shared>, request: LiveRequest, send: bool) -> Response {
    match start(shared, request, send).await {
        Ok(id) => Json(serde_json::json!({ "id": id })).into_response(),
        Err(error) => crate::api::error(StatusCode::UNPROCESSABLE_ENTITY, error),
    }
}

/// `GET /api/live/{id}`: the transfer now.
pub async fn show_api(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    match shared.live.get(id) {
        Some(transfer) => Json(transfer.view()).into_response(),
        None => crate::api::error(StatusCode::NOT_FOUND, format!("no transfer {id}")),
    }
}

/// `GET /live/{id}`: the transfer's page; its steps arrive by themselves.
pub async fn show_page(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    let Some(transfer) = shared.live.get(id) else {
        return crate::pages::not_found().await;
    };
    let view = transfer.view();
    let mut body = format!(
        "<div id=\"transfer\" data-id=\"{id}\"><p>{}</p>",
        if view.side == "send" {
            "Sending. Hand the connection file below to the receiver, privately: whoever has it can take part."
        } else {
            "Receiving the transfer the connection file describes."
        }
    );
    let _ = write!(
        body,
        "<section id=\"connection-section\"{}><h2>Connection file</h2>\
         <pre class=\"mono token\" id=\"connection\">{}</pre><div class=\"qr\" id=\"connection-qr\">{}</div></section>",
        if view.connection.is_some() {
            ""
        } else {
            " hidden"
        },
        esc(view.connection.as_deref().unwrap_or("")),
        view.connection_qr.as_deref().unwrap_or("")
    );
    body.push_str("<h2>Steps</h2><ol id=\"steps\" class=\"steps\">");
    for step in &view.steps {
        let _ = write!(
            body,
            "<li value=\"{}\">{}</li>",
            step.number,
            esc(&step.name)
        );
    }
    body.push_str("</ol><ul id=\"notes\">");
    for note in &view.notes {
        let _ = write!(body, "<li>{}</li>", esc(note));
    }
    let _ = write!(
        body,
        "</ul><p id=\"live-outcome\" class=\"{}\">{}</p></div>",
        match view.ok {
            Some(true) => "ok",
            Some(false) => "error",
            None => "",
        },
        esc(view.outcome.as_deref().unwrap_or("running…"))
    );
    html::page("Live transfer", Section::Wallet, &body).into_response()
}

/// `GET /live/{id}/events`: a `transfer` event with the whole view whenever it changed.
pub async fn events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    let Some(transfer) = shared.live.get(id) else {
        return Err(crate::pages::not_found().await);
    };
    let events = futures::stream::unfold(
        (transfer, None::<TransferView>),
        |(transfer, last)| async move {
            loop {
                let view = transfer.view();
                if last.as_ref() != Some(&view) {
                    let event = Event::default()
                        .event("transfer")
                        .json_data(&view)
                        .unwrap_or_else(|_| Event::default().comment("unencodable"));
                    return Some((Ok(event), (transfer, Some(view))));
                }
                if view.ok.is_some() {
                    // Ended and shown: the stream ends too.
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The live section of the wallet page: a send and a receive form per network.
pub fn section(shared: &Shared) -> String {
    let mut out = String::from("<section id=\"live\"><h2>Live transfer</h2>");
    if shared.relay.is_none() {
        out.push_str(
            "<p>Live transfers need a relay: start `tally web` with --relay HOST:PORT.</p></section>",
        );
        return out;
    }
    for (index, network) in shared.networks.iter().enumerate() {
        let _ = write!(
            out,
            "<h3>{}</h3><div class=\"coin-forms\">\
             <form method=\"post\" action=\"/live/send\" id=\"live-send-{index}\"><input type=\"hidden\" name=\"network\" value=\"{index}\">\
             <label>Send whole cash <input name=\"amount\" class=\"live-amount\" required size=\"8\"></label>\
             <button type=\"submit\" class=\"live-send-submit\">Start a live transfer</button></form>\
             <form method=\"post\" action=\"/live/receive\" id=\"live-receive-{index}\"><input type=\"hidden\" name=\"network\" value=\"{index}\">\
             <label>A connection file <textarea name=\"connection\" class=\"live-connection\" rows=\"3\" cols=\"60\" required></textarea></label>\
             <button type=\"submit\" class=\"live-receive-submit\">Receive</button></form></div>",
            esc(&network.contract.name)
        );
    }
    out.push_str("</section>");
    out
}
