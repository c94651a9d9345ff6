//! Bearer coins in the web wallet: the folders and their coins on each network, and the
//! coin operations (withdraw, export as a token and a QR code, import a token or a coin
//! file, detect with the grades, pown, fix), each one call of `tally_wallet::coins` under
//! the wallet's coin lock, exactly as `tally wallet … coins` does.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::{Deserialize, Serialize};
use tally_core::{Amount, encode_token};
use tally_wallet::coins::{
    self, CoinFolder, CoinLedger, CoinStore, Detection, ImportOutcome, ListedCoin, WalletKeys,
    cash_of,
};

use crate::html::{self, Section, esc};
use crate::{Network, Shared};

/// One folder's coins.
#[derive(Clone, Debug, Serialize)]
pub struct FolderView {
    pub folder: &'static str,
    pub coins: usize,
    pub cash: u64,
}

/// The wallet's coins on one network.
#[derive(Clone, Debug, Serialize)]
pub struct CoinsView {
    pub network: usize,
    pub network_name: String,
    pub folders: Vec<FolderView>,
    /// Every coin not spent, by folder.
    pub coins: Vec<ListedCoin>,
    /// Cash in the Bank and Fracked: what the wallet may spend.
    pub spendable: u64,
}

/// The coins on network `index`, read from the wallet's folders (no validator asked).
pub fn view(shared: &Shared, index: usize) -> Result<CoinsView, String> {
    let network = shared
        .network(Some(index))
        .ok_or_else(|| "no such network".to_string())?;
    let store =
        CoinStore::open(&shared.wallet, network.contract.id()).map_err(|e| e.to_string())?;
    let mut folders = Vec::new();
    let mut all = Vec::new();
    for folder in CoinFolder::ALL {
        let listed = store.list(folder).map_err(|e| e.to_string())?;
        folders.push(FolderView {
            folder: folder.name(),
            coins: listed.len(),
            cash: cash_of(&listed),
        });
        if folder != CoinFolder::Spent {
            all.extend(listed);
        }
    }
    let spendable = cash_of(
        &all.iter()
            .filter(|c| c.folder.spendable())
            .copied()
            .collect::<Vec<_>>(),
    );
    Ok(CoinsView {
        network: index,
        network_name: network.contract.name.clone(),
        folders,
        coins: all,
        spendable,
    })
}

/// A coin operation, as the forms and the API name it.
#[derive(Clone, Debug, Deserialize)]
pub struct CoinRequest {
    pub network: Option<usize>,
    /// Whole cash, for withdraw and export.
    pub amount: Option<String>,
    /// The paying account, for withdraw (the first by default).
    pub from: Option<String>,
    /// A token or a coin file's contents, for import.
    pub coins: Option<String>,
}

/// What an operation did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CoinOutcome {
    /// In words.
    pub message: String,
    /// Coins that arrived in the Bank.
    pub banked: Vec<ListedCoin>,
    /// The exported coins as a token (an export only).
    pub token: Option<String>,
    pub detections: Vec<Detection>,
    pub imported: Vec<ImportOutcome>,
}

/// The operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Withdraw,
    Export,
    Import,
    Detect,
    Pown,
    Fix,
}

impl Operation {
    fn named(name: &str) -> Option<Operation> {
        Some(match name {
            "withdraw" => Operation::Withdraw,
            "export" => Operation::Export,
            "import" => Operation::Import,
            "detect" => Operation::Detect,
            "pown" => Operation::Pown,
            "fix" => Operation::Fix,
            _ => return None,
        })
    }
}

/// A whole, non-zero cash amount that coins can hold.
fn whole_cash(text: Option<&str>) -> Result<Amount, String> {
    let text = text.map(str::trim).unwrap_or_default();
    let amount: Amount = text
        .parse()
        .map_err(|e| format!("the amount {text:?} is not an amount of cash: {e}"))?;
    tally_core::fewest_coins(amount).map_err(|e| format!("the amount {text}: {e}"))?;
    Ok(amount)
}

async fn run(
    shared: &Shared,
    operation: Operation,
    request: &CoinRequest,
) -> Result<CoinOutcome, String> {
    let network: &Network = shared
        .network(request.network)
        .ok_or_else(|| "no such network".to_string())?;
    let wallet = shared.open_wallet()?;
    let id = network.contract.id();
    let store = CoinStore::open(wallet.dir(), id).map_err(|e| e.to_string())?;
    let mut keys = WalletKeys::new(&wallet, id, None);
    let net = &network.client;
    let _held = match operation {
        Operation::Detect => None,
        _ => Some(wallet.lock_coins(&id).await.map_err(|e| e.to_string())?),
    };
    let words = |e: coins::CoinOpError| e.to_string();
    let mut outcome = CoinOutcome::default();
    match operation {
        Operation::Withdraw => {
            let amount = whole_cash(request.amount.as_deref())?;
            let key = wallet
                .find(request.from.as_deref().filter(|f| !f.trim().is_empty()))
                .and_then(|entry| entry.secret_key())
                .map_err(|e| e.to_string())?;
            outcome.banked = coins::withdraw(&wallet, net, &store, &mut keys, &key, amount)
                .await
                .map_err(words)?;
            outcome.message = format!(
                "Withdrew {} cash in {} coins, now in the Bank.",
                cash_of(&outcome.banked),
                outcome.banked.len()
            );
        }
        Operation::Export => {
            let amount = whole_cash(request.amount.as_deref())?;
            let exported = coins::export(&wallet, net, &store, &mut keys, amount)
                .await
                .map_err(words)?;
            outcome.token = Some(encode_token(&exported).map_err(|e| e.to_string())?);
            outcome.message = format!(
                "Exported {} cash in {} coins: whoever holds this token can take them.",
                exported.iter().map(|c| c.denomination.cash()).sum::<u64>(),
                exported.len()
            );
        }
        Operation::Import => {
            let offered = coins::offered_coins(request.coins.as_deref().unwrap_or_default())
                .map_err(|e| format!("neither a token nor a coin file: {e}"))?;
            outcome.imported = coins::import(&wallet, net, &store, &mut keys, offered)
                .await
                .map_err(words)?;
            let banked: u64 = outcome
                .imported
                .iter()
                .map(ImportOutcome::banked_cash)
                .sum();
            outcome.message = format!("Imported: {banked} cash added to the Bank.");
        }
        Operation::Detect => {
            let held = [
                CoinFolder::Bank,
                CoinFolder::Fracked,
                CoinFolder::Limbo,
                CoinFolder::Import,
                CoinFolder::Export,
            ];
            let mut picked = Vec::new();
            for folder in held {
                picked.extend(store.list(folder).map_err(|e| e.to_string())?);
            }
            let own = coins::own_orders(&wallet, &store, &picked).map_err(words)?;
            let pairs: Vec<_> = picked.iter().map(|c| (c.account, c.denomination)).collect();
            outcome.detections = net.detect(&pairs, &own).await;
            outcome.message = format!("Asked every validator about {} coins.", picked.len());
        }
        Operation::Pown => {
            let picked = store.list(CoinFolder::Import).map_err(|e| e.to_string())?;
            for result in coins::pown_many(&wallet, net, &store, &mut keys, &picked)
                .await
                .map_err(words)?
            {
                outcome.banked.push(result.map_err(words)?.0);
            }
            outcome.message = format!("Powned {} coins into the Bank.", outcome.banked.len());
        }
        Operation::Fix => {
            let mut picked = store.list(CoinFolder::Bank).map_err(|e| e.to_string())?;
            picked.extend(store.list(CoinFolder::Fracked).map_err(|e| e.to_string())?);
            outcome.detections = coins::fix(&wallet, net, &store, &picked)
                .await
                .map_err(words)?;
            outcome.message = "Handed the lagging validators what they lacked.".into();
        }
    }
    Ok(outcome)
}

/// `POST /coins/{operation}` (a form): the outcome as a page, or why not.
pub async fn page(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Form(request): Form<CoinRequest>,
) -> Response {
    let Some(operation) = Operation::named(&name) else {
        return crate::pages::not_found().await;
    };
    match run(&shared, operation, &request).await {
        Ok(outcome) => {
            html::page("Coins", Section::Wallet, &outcome_body(&outcome)).into_response()
        }
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            html::page(
                "Coins",
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

/// `POST /api/coins/{operation}` (JSON): the outcome, or `{"error": …}`.
pub async fn api(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Json(request): Json<CoinRequest>,
) -> Response {
    let Some(operation) = Operation::named(&name) else {
        return crate::api::error(StatusCode::NOT_FOUND, format!("no coin operation {name:?}"));
    };
    match run(&shared, operation, &request).await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(error) => crate::api::error(StatusCode::UNPROCESSABLE_ENTITY, error),
    }
}

/// `GET /api/coins?network=N`: the folders and their coins.
pub async fn list(
    State(shared): State<Arc<Shared>>,
    axum::extract::Query(query): axum::extract::Query<crate::pages::NetworkQuery>,
) -> Response {
    match view(&shared, query.network.unwrap_or(0)) {
        Ok(view) => Json(view).into_response(),
        Err(error) => crate::api::error(StatusCode::NOT_FOUND, error),
    }
}

/// The token as a QR code (SVG drawn inline: no image request, nothing for the CSP to
/// allow), or why it cannot be one.
pub(crate) fn qr(token: &str) -> String {
    match qrcode::QrCode::with_error_correction_level(token.as_bytes(), qrcode::EcLevel::L) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(480, 480)
            .build(),
        Err(_) => "<p>Too long for a QR code: hand over the text instead.</p>".into(),
    }
}

fn outcome_body(outcome: &CoinOutcome) -> String {
    let mut body = format!(
        "<p class=\"ok\" id=\"outcome\">{}</p>",
        esc(&outcome.message)
    );
    if let Some(token) = &outcome.token {
        let _ = write!(
            body,
            "<section><h2>The token</h2><p class=\"mono token\" id=\"token\">{}</p>\
             <div class=\"qr\" id=\"token-qr\">{}</div></section>",
            esc(token),
            qr(token)
        );
    }
    if !outcome.detections.is_empty() {
        body.push_str(
            "<table id=\"grades\"><thead><tr><th>Coin</th><th class=\"num\">Cash</th><th>Grade</th>\
             <th class=\"num\">Good</th><th class=\"num\">Lagging</th><th class=\"num\">Spent</th>\
             <th class=\"num\">No answer</th></tr></thead><tbody>",
        );
        for d in &outcome.detections {
            let _ = write!(
                body,
                "<tr><td class=\"mono\">{}…</td><td class=\"num\">{}</td><td class=\"grade\">{:?}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                d.account.short(),
                d.denomination.cash(),
                d.grade,
                d.good,
                d.lagging.len(),
                d.spent,
                d.unanswered
            );
        }
        body.push_str("</tbody></table>");
    }
    if !outcome.imported.is_empty() {
        body.push_str("<ul id=\"imported\">");
        for o in &outcome.imported {
            let _ = write!(body, "<li>{}</li>", esc(o.to_string().trim()));
        }
        body.push_str("</ul>");
    }
    body.push_str("<p><a href=\"/\">Back to the wallet</a></p>");
    body
}

/// The coins section of the wallet page: per network, the folders and the forms.
pub fn section(shared: &Shared, accounts: &[(tally_core::AccountId, Option<String>)]) -> String {
    let mut out = String::from("<section id=\"coins\"><h2>Coins</h2>");
    for index in 0..shared.networks.len() {
        match view(shared, index) {
            Ok(view) => {
                let _ = write!(
                    out,
                    "<h3>{}: <span id=\"spendable-{index}\" class=\"spendable\">{}</span> cash spendable in coins</h3>\
                     <table class=\"folders\"><thead><tr><th>Folder</th><th class=\"num\">Coins</th>\
                     <th class=\"num\">Cash</th></tr></thead><tbody>",
                    esc(&view.network_name),
                    view.spendable
                );
                for f in view.folders.iter().filter(|f| f.coins > 0) {
                    let _ = write!(
                        out,
                        "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                        f.folder, f.coins, f.cash
                    );
                }
                out.push_str("</tbody></table>");
                out.push_str(&coin_list(index, &view.coins));
                out.push_str(&forms(index, accounts));
            }
            Err(error) => out.push_str(&html::error_banner(&error)),
        }
    }
    out.push_str("</section>");
    out
}

/// Every coin the wallet holds on the network, folded away until asked for (a wallet may
/// hold thousands).
fn coin_list(index: usize, coins: &[ListedCoin]) -> String {
    if coins.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<details class=\"coin-list\" id=\"coin-list-{index}\"><summary>Each coin ({})</summary>\
         <table><thead><tr><th>Coin</th><th class=\"num\">Cash</th><th>Folder</th></tr></thead><tbody>",
        coins.len()
    );
    for coin in coins {
        let _ = write!(
            out,
            "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            coin.account,
            coin.denomination.cash(),
            coin.folder.name()
        );
    }
    out.push_str("</tbody></table></details>");
    out
}

fn forms(index: usize, accounts: &[(tally_core::AccountId, Option<String>)]) -> String {
    let mut from = String::new();
    for (account, label) in accounts {
        let _ = write!(
            from,
            "<option value=\"{account}\">{} {}…</option>",
            esc(label.as_deref().unwrap_or("")),
            account.short()
        );
    }
    format!(
        "<div class=\"coin-forms\">\
         <form method=\"post\" action=\"/coins/withdraw\" id=\"withdraw-{index}\"><input type=\"hidden\" name=\"network\" value=\"{index}\">\
         <label>Withdraw from <select name=\"from\">{from}</select></label>\
         <label>Whole cash <input name=\"amount\" class=\"withdraw-amount\" required size=\"8\"></label>\
         <button type=\"submit\" class=\"withdraw-submit\">Withdraw coins</button></form>\
         <form method=\"post\" action=\"/coins/export\" id=\"export-{index}\"><input type=\"hidden\" name=\"network\" value=\"{index}\">\
         <label>Whole cash <input name=\"amount\" class=\"export-amount\" required size=\"8\"></label>\
         <button type=\"submit\" class=\"export-submit\">Export as a token</button></form>\
         <form method=\"post\" action=\"/coins/import\" id=\"import-{index}\" class=\"import\"><input type=\"hidden\" name=\"network\" value=\"{index}\">\
         <label>A token, or drop a coin file here <textarea name=\"coins\" class=\"import-coins\" rows=\"3\" cols=\"60\" required></textarea></label>\
         <button type=\"submit\" class=\"import-submit\">Import</button></form>\
         <form method=\"post\" action=\"/coins/detect\"><input type=\"hidden\" name=\"network\" value=\"{index}\"><button type=\"submit\" class=\"detect-submit\">Detect (grade every coin)</button></form>\
         <form method=\"post\" action=\"/coins/pown\"><input type=\"hidden\" name=\"network\" value=\"{index}\"><button type=\"submit\">Pown what waits in Import</button></form>\
         <form method=\"post\" action=\"/coins/fix\"><input type=\"hidden\" name=\"network\" value=\"{index}\"><button type=\"submit\">Fix fracked coins</button></form>\
         </div>"
    )
}
