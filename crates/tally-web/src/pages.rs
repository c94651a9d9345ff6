//! The pages: server-rendered HTML from the views in `model`. A refused action shows why in
//! the page; nothing here decides anything about money.

use std::fmt::Write;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::html::{self, Section, esc};
use crate::model::{self, AccountView, ReceiptView, ValidatorView};
use crate::{Network, Shared};

/// How many receipts the wallet page lists (the API pages through all of them).
const RECEIPTS_SHOWN: usize = 50;

/// `?network=` on the explorer's pages.
#[derive(Deserialize)]
pub struct NetworkQuery {
    pub network: Option<usize>,
}

/// The send form.
#[derive(Deserialize)]
pub struct PayForm {
    pub network: Option<usize>,
    pub from: String,
    pub to: String,
    pub amount: String,
}

/// `GET /`: the accounts, the send form and the latest receipts.
pub async fn wallet(State(shared): State<Arc<Shared>>) -> Response {
    wallet_page(&shared, None, StatusCode::OK).await
}

async fn wallet_page(shared: &Arc<Shared>, error: Option<&str>, status: StatusCode) -> Response {
    let mut body = String::new();
    if let Some(error) = error {
        body.push_str(&html::error_banner(error));
    }
    match model::wallet(shared).await {
        Ok(view) => {
            body.push_str(&accounts_table(&view.accounts));
            body.push_str(&send_form(shared, &view.accounts));
            let mut keys: Vec<_> = view
                .accounts
                .iter()
                .map(|a| (a.account, a.label.clone()))
                .collect();
            keys.sort();
            keys.dedup_by_key(|(account, _)| *account);
            body.push_str(&crate::coins::section(shared, &keys));
            body.push_str(&crate::live::section(shared));
            body.push_str(&crate::wire::section(shared));
        }
        Err(error) => body.push_str(&html::error_banner(&error)),
    }
    match model::receipts(shared, RECEIPTS_SHOWN).await {
        Ok((total, receipts)) => body.push_str(&receipts_list(total, &receipts)),
        Err(error) => body.push_str(&html::error_banner(&error)),
    }
    (status, html::page("Wallet", Section::Wallet, &body)).into_response()
}

fn accounts_table(accounts: &[AccountView]) -> String {
    let mut out = String::from(
        "<section><h2>Accounts</h2><table id=\"accounts\"><thead><tr><th>Network</th>\
         <th>Account</th><th>Label</th><th class=\"num\">Balance (cash)</th>\
         <th>Validators agreeing</th></tr></thead><tbody>",
    );
    if accounts.is_empty() {
        out.push_str("<tr><td colspan=\"5\">This wallet holds no accounts yet.</td></tr>");
    }
    for a in accounts {
        let key = format!("{}:{}", a.network, a.account);
        let agree = match &a.error {
            Some(error) => format!("<span class=\"error\">{}</span>", esc(error)),
            None => format!("{} of {} (quorum {})", a.agree, a.validators, a.quorum),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td><a href=\"/explorer/accounts/{}?network={}\" class=\"mono\" title=\"{}\">{}…</a></td>\
             <td>{}</td><td class=\"num balance\" data-key=\"{}\">{}</td><td class=\"agree\" data-key=\"{}\">{}</td></tr>",
            esc(&a.network_name),
            a.account,
            a.network,
            a.account,
            a.account.short(),
            esc(a.label.as_deref().unwrap_or("")),
            key,
            esc(&a.balance_cash),
            key,
            agree
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

fn send_form(shared: &Shared, accounts: &[AccountView]) -> String {
    let mut out = String::from(
        "<section><h2>Send a payment</h2><form method=\"post\" action=\"/pay\" id=\"pay\">",
    );
    if shared.networks.len() > 1 {
        out.push_str("<label>Network <select name=\"network\" id=\"pay-network\">");
        for (i, network) in shared.networks.iter().enumerate() {
            let _ = write!(
                out,
                "<option value=\"{i}\">{}</option>",
                esc(&network.contract.name)
            );
        }
        out.push_str("</select></label>");
    }
    out.push_str("<label>From <select name=\"from\" id=\"pay-from\">");
    let mut seen = std::collections::BTreeSet::new();
    for a in accounts {
        if seen.insert(a.account) {
            let _ = write!(
                out,
                "<option value=\"{}\">{} {}…</option>",
                a.account,
                esc(a.label.as_deref().unwrap_or("")),
                a.account.short()
            );
        }
    }
    out.push_str(
        "</select></label><label>To <input name=\"to\" id=\"pay-to\" required \
         placeholder=\"the recipient's account (64 hex digits)\" autocomplete=\"off\" size=\"66\"></label>\
         <label>Amount <input name=\"amount\" id=\"pay-amount\" required placeholder=\"12.5\" \
         inputmode=\"decimal\" size=\"12\"></label>\
         <button type=\"submit\" id=\"pay-submit\">Pay</button></form></section>",
    );
    out
}

fn receipts_list(total: usize, receipts: &[ReceiptView]) -> String {
    let mut out = format!(
        "<section><h2>Receipts</h2><p>{total} receipt{} kept in this wallet{}.</p>\
         <table id=\"receipts\"><thead><tr><th>Certificate</th><th>Kind</th><th>From</th>\
         <th>Pays</th><th>Checked</th></tr></thead><tbody>",
        if total == 1 { "" } else { "s" },
        if total > receipts.len() {
            format!("; the latest {} shown", receipts.len())
        } else {
            String::new()
        }
    );
    for r in receipts {
        let _ = write!(
            out,
            "<tr><td><a class=\"mono\" href=\"/receipts/{}\">{}…</a></td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(&r.checksum),
            esc(&r.checksum[..16.min(r.checksum.len())]),
            r.kind,
            r.from.map(|a| a.short()).unwrap_or_default(),
            payments(r),
            if r.verified { "ok" } else { "error" },
            esc(&r.verdict)
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

fn payments(r: &ReceiptView) -> String {
    r.payments
        .iter()
        .map(|p| format!("{} cash to {}…", esc(&p.amount), p.recipient.short()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `POST /pay`: pays, then shows the receipt; a refusal is shown in the wallet page.
pub async fn pay(State(shared): State<Arc<Shared>>, Form(form): Form<PayForm>) -> Response {
    match model::pay(&shared, form.network, &form.from, &form.to, &form.amount).await {
        Ok(receipt) => {
            Redirect::to(&format!("/receipts/{}?paid=1", receipt.checksum)).into_response()
        }
        Err(error) => wallet_page(&shared, Some(&error), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

/// `?paid=1` after a payment.
#[derive(Deserialize)]
pub struct ReceiptQuery {
    pub paid: Option<u8>,
}

/// `GET /receipts/{checksum}`: one receipt, checked.
pub async fn receipt(
    State(shared): State<Arc<Shared>>,
    Path(checksum): Path<String>,
    Query(query): Query<ReceiptQuery>,
) -> Response {
    match model::receipt(&shared, &checksum) {
        Ok(Some(receipt)) => {
            let mut body = String::new();
            if query.paid.is_some() {
                body.push_str("<p class=\"ok\" id=\"paid\">Paid. The certificate below is the receipt, kept in the wallet.</p>");
            }
            body.push_str(&receipt_details(&receipt));
            html::page("Receipt", Section::Wallet, &body).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            html::message_page(
                "Receipt",
                &format!("This wallet keeps no receipt {checksum}."),
            ),
        )
            .into_response(),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            html::message_page("Receipt", &error),
        )
            .into_response(),
    }
}

fn receipt_details(r: &ReceiptView) -> String {
    format!(
        "<dl class=\"receipt\"><dt>Certificate</dt><dd class=\"mono\" id=\"checksum\">{}</dd>\
         <dt>Network</dt><dd>{}</dd><dt>Order</dt><dd>{}</dd><dt>From</dt><dd class=\"mono\">{}</dd>\
         <dt>Sequence</dt><dd>{}</dd><dt>Pays</dt><dd>{}</dd>\
         <dt>Checked against the network contract</dt><dd class=\"{} verdict\" id=\"verdict\">{}</dd></dl>",
        esc(&r.checksum),
        esc(r.network_name.as_deref().unwrap_or("unknown")),
        r.kind,
        r.from.map(|a| a.to_string()).unwrap_or_default(),
        r.sequence.map(|s| s.to_string()).unwrap_or_default(),
        payments(r),
        if r.verified { "ok" } else { "error" },
        esc(&r.verdict),
    )
}

/// `?network=&account=&sequence=` from the explorer's lookup form.
#[derive(Deserialize)]
pub struct ExplorerQuery {
    pub network: Option<usize>,
    pub account: Option<String>,
    pub sequence: Option<String>,
}

/// `GET /explorer`: the validators of a network, and a lookup by account or slot.
pub async fn explorer(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<ExplorerQuery>,
) -> Response {
    let index = query.network.unwrap_or(0);
    let Some(network) = shared.network(Some(index)) else {
        return not_found().await;
    };
    if let Some(account) = query.account.as_deref().filter(|a| !a.trim().is_empty()) {
        let account = account.trim();
        let target = match query.sequence.as_deref().map(str::trim) {
            Some(sequence) if !sequence.is_empty() => {
                format!("/explorer/certificates/{account}/{sequence}?network={index}")
            }
            _ => format!("/explorer/accounts/{account}?network={index}"),
        };
        return Redirect::to(&target).into_response();
    }
    let mut body = String::new();
    if shared.networks.len() > 1 {
        body.push_str("<p>Networks: ");
        for (i, n) in shared.networks.iter().enumerate() {
            let _ = write!(
                body,
                "<a href=\"/explorer?network={i}\">{}</a> ",
                esc(&n.contract.name)
            );
        }
        body.push_str("</p>");
    }
    let _ = write!(
        body,
        "<div id=\"explorer-live\" data-network=\"{index}\">{}</div>",
        crate::explorer::live_part(network).await
    );
    let _ = write!(
        body,
        "<section><h2>Look up</h2><form method=\"get\" action=\"/explorer\" id=\"lookup\">\
         <input type=\"hidden\" name=\"network\" value=\"{index}\">\
         <label>Account <input name=\"account\" id=\"lookup-account\" size=\"66\" required></label>\
         <label>Sequence (for its certificate) <input name=\"sequence\" id=\"lookup-sequence\" size=\"8\"></label>\
         <button type=\"submit\" id=\"lookup-submit\">Look up</button></form></section>"
    );
    html::page(
        &format!("Explorer: {}", network.contract.name),
        Section::Explorer,
        &body,
    )
    .into_response()
}

pub(crate) fn validators_table(network: &Network, validators: &[ValidatorView]) -> String {
    let up = validators.iter().filter(|v| v.up).count();
    let mut out = format!(
        "<section><h2>Validators</h2><p id=\"validators-up\">{up} of {} up (quorum {}).</p>\
         <table id=\"validators\"><thead><tr><th>Validator</th><th>Address</th><th>State</th>\
         <th class=\"num\">Certificates applied</th><th class=\"num\">Behind</th></tr></thead><tbody>",
        validators.len(),
        network.client.committee().quorum()
    );
    for v in validators {
        let state = match &v.error {
            None => "<span class=\"ok\">up</span>".to_string(),
            Some(error) => format!("<span class=\"error\">down: {}</span>", esc(error)),
        };
        let _ = write!(
            out,
            "<tr><td class=\"mono\">{}…</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            v.validator.short(),
            esc(&v.address),
            state,
            v.certificates.map(|c| c.to_string()).unwrap_or_default(),
            v.lag.map(|c| c.to_string()).unwrap_or_default(),
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

/// `GET /explorer/accounts/{account}`: each validator's view of it, and its history.
pub async fn account(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    Query(query): Query<NetworkQuery>,
) -> Response {
    let Some(network) = shared.network(query.network) else {
        return not_found().await;
    };
    let page = match model::account_page(network, &account).await {
        Ok(page) => page,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                html::message_page("Account", &error),
            )
                .into_response();
        }
    };
    let mut body = format!(
        "<p class=\"mono\" id=\"account\">{}</p><p>Balance <strong id=\"account-balance\">{}</strong> cash \
         on {}: {} of {} validators agree.</p><table><thead><tr><th>Validator</th><th class=\"num\">Balance</th>\
         <th class=\"num\">Next sequence</th></tr></thead><tbody>",
        page.account,
        esc(&page.balance_cash),
        esc(&page.network_name),
        page.agree,
        page.validators
    );
    for a in &page.answers {
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{}…</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            a.validator.short(),
            esc(a
                .balance
                .as_deref()
                .or(a.error.as_deref())
                .unwrap_or_default()),
            a.next_sequence.map(|s| s.to_string()).unwrap_or_default()
        );
    }
    let _ = write!(
        body,
        "</tbody></table><h2>History</h2><table id=\"history\"><thead><tr><th class=\"num\">Log</th>\
         <th>Certificate</th><th>Kind</th><th>From</th><th>Pays</th><th>Checked</th></tr></thead><tbody>"
    );
    for (index, r) in &page.history {
        let link = match (r.from, r.sequence) {
            (Some(from), Some(sequence)) => format!(
                "<a class=\"mono\" href=\"/explorer/certificates/{from}/{sequence}?network={}\">{}…</a>",
                query.network.unwrap_or(0),
                esc(&r.checksum[..16.min(r.checksum.len())])
            ),
            _ => format!(
                "<span class=\"mono\">{}…</span>",
                esc(&r.checksum[..16.min(r.checksum.len())])
            ),
        };
        let _ = write!(
            body,
            "<tr><td class=\"num\">{index}</td><td>{link}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            r.kind,
            r.from.map(|a| a.short()).unwrap_or_default(),
            payments(r),
            if r.verified { "ok" } else { "error" },
            esc(&r.verdict)
        );
    }
    body.push_str("</tbody></table>");
    html::page("Account", Section::Explorer, &body).into_response()
}

/// `GET /explorer/certificates/{account}/{sequence}`: the certificate of that slot.
pub async fn certificate(
    State(shared): State<Arc<Shared>>,
    Path((account, sequence)): Path<(String, String)>,
    Query(query): Query<NetworkQuery>,
) -> Response {
    let Some(network) = shared.network(query.network) else {
        return not_found().await;
    };
    let Ok(sequence) = sequence.trim().parse::<u64>() else {
        return (
            StatusCode::BAD_REQUEST,
            html::message_page(
                "Certificate",
                &format!("{sequence:?} is not a sequence number"),
            ),
        )
            .into_response();
    };
    match model::certificate(network, &account, sequence).await {
        Ok(Some(receipt)) => {
            html::page("Certificate", Section::Explorer, &receipt_details(&receipt)).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            html::message_page(
                "Certificate",
                &format!(
                    "No validator of {} holds a certificate for slot {sequence} of that account.",
                    network.contract.name
                ),
            ),
        )
            .into_response(),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            html::message_page("Certificate", &error),
        )
            .into_response(),
    }
}

/// Anything else.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        html::message_page("Not found", "There is no such page."),
    )
        .into_response()
}

/// The pages' script (live updates), shipped inside the binary.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
        .into_response()
}

/// The pages' styles, shipped inside the binary.
pub async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/style.css"),
    )
        .into_response()
}
