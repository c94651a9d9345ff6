//! The web wallet and network explorer (`tally web`): server-rendered pages with a little
//! JavaScript that ships inside the binary, and the same data and actions as a JSON API
//! (`/api/…`) for scripts and shops. Everything a page shows or does goes through the
//! wallet library the CLI uses ([`tally_wallet`]); this crate only renders.
//!
//! Security: it listens on 127.0.0.1 unless told otherwise; every request needs the access
//! token printed at start (then a cookie named per port, so two wallets served on one
//! host never share one); state-changing requests are POSTs refused when they come from
//! another origin; every answer carries a Content-Security-Policy that allows no inline
//! script. No secret key ever reaches a page; a bearer secret (an exported coin token, a
//! live transfer's connection file) appears only on the page of the action that made it.

mod api;
mod auth;
mod coins;
mod events;
mod explorer;
mod html;
mod live;
mod model;
mod pages;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tally_core::{Mode, NetworkContract};
use tally_wallet::{QuorumClient, Wallet};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::AccessToken;
pub use model::{AccountView, ReceiptView, ValidatorView, WalletView};

/// What `tally web` serves.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// The wallet folder.
    pub wallet: PathBuf,
    /// The networks its pages show (quorum networks).
    pub networks: Vec<NetworkContract>,
    /// Where to listen (127.0.0.1 unless a person chose otherwise).
    pub listen: SocketAddr,
    /// How long one validator may take to answer.
    pub timeout: Duration,
    /// The LiveConnect relay live transfers go through (none: no live transfers).
    pub relay: Option<String>,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("no network given: name at least one network contract")]
    NoNetwork,
    #[error(
        "{0} is a proof-of-work network; the web wallet serves quorum networks (use the CLI for this one)"
    )]
    ProofOfWork(String),
    #[error("network {name}: {reason}")]
    Network { name: String, reason: String },
    #[error("wallet {path}: {reason}")]
    Wallet { path: PathBuf, reason: String },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// One network the pages show, and the client that asks its validators.
pub(crate) struct Network {
    pub contract: NetworkContract,
    pub client: QuorumClient,
    /// The validators' last answers and when they were asked (the explorer's cache).
    pub validators: std::sync::Mutex<Option<(std::time::Instant, Vec<ValidatorView>)>>,
    /// The most certificates applied, sampled with each round of answers (the chart).
    pub samples: explorer::Samples,
}

/// What every handler shares.
pub(crate) struct Shared {
    pub wallet: PathBuf,
    pub networks: Vec<Network>,
    pub token: AccessToken,
    /// The cookie that carries the token: named after the port, since browsers share
    /// cookies between the ports of one host.
    pub cookie: String,
    /// `http://host:port`, what a same-origin request's `Origin` says.
    pub origin: String,
    /// The wallet's receipts read so far.
    pub receipts: model::ReceiptCache,
    /// The accounts last asked for the pages' live balances, and when.
    pub wallet_view: std::sync::Mutex<Option<(std::time::Instant, WalletView)>>,
    /// The relay for live transfers, and the transfers started here.
    pub relay: Option<String>,
    pub live: live::Transfers,
    /// The wires started here.
    pub wires: wire::Wires,
    /// How long one validator may take to answer.
    pub timeout: Duration,
}

impl Shared {
    /// The wallet as it is on disk now (another `tally wallet` may have changed it).
    pub fn open_wallet(&self) -> Result<Wallet, String> {
        Wallet::open(&self.wallet).map_err(|e| e.to_string())
    }

    /// Network `index`, or the first.
    pub fn network(&self, index: Option<usize>) -> Option<&Network> {
        self.networks.get(index.unwrap_or(0))
    }
}

/// A running web wallet.
pub struct Web {
    address: SocketAddr,
    token: AccessToken,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Web {
    /// Checks the wallet and the networks, binds, and serves until [`Web::stop`].
    pub async fn start(config: WebConfig) -> Result<Web, WebError> {
        if config.networks.is_empty() {
            return Err(WebError::NoNetwork);
        }
        Wallet::open(&config.wallet).map_err(|e| WebError::Wallet {
            path: config.wallet.clone(),
            reason: e.to_string(),
        })?;
        let mut networks = Vec::new();
        for contract in config.networks {
            if contract.mode == Mode::Pow {
                return Err(WebError::ProofOfWork(contract.name));
            }
            let client = QuorumClient::located(contract.clone(), config.timeout)
                .await
                .map_err(|e| WebError::Network {
                    name: contract.name.clone(),
                    reason: e.to_string(),
                })?;
            networks.push(Network {
                contract,
                client,
                validators: std::sync::Mutex::new(None),
                samples: explorer::Samples::default(),
            });
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| WebError::Listen {
                    address: config.listen,
                    source,
                })?;
        let address = listener.local_addr().map_err(|source| WebError::Listen {
            address: config.listen,
            source,
        })?;
        let token = AccessToken::generate();
        let shared = Arc::new(Shared {
            wallet: config.wallet,
            networks,
            token: token.clone(),
            cookie: format!("tally_web_{}", address.port()),
            origin: format!("http://{address}"),
            receipts: model::ReceiptCache::default(),
            wallet_view: std::sync::Mutex::new(None),
            relay: config.relay,
            live: live::Transfers::default(),
            wires: wire::Wires::default(),
            timeout: config.timeout,
        });
        let cancel = CancellationToken::new();
        let app = router(shared);
        let task = tokio::spawn(tally_node::jsonrpc::serve(listener, app, cancel.clone()));
        Ok(Web {
            address,
            token,
            cancel,
            task,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The access token.
    pub fn token(&self) -> &AccessToken {
        &self.token
    }

    /// The address to open, token included (the first visit swaps it for a cookie).
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.address, self.token.reveal())
    }

    /// Stops serving and waits until every connection is closed.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/api/wallet", get(api::wallet))
        .route("/api/pay", post(api::pay))
        .route("/api/coins", get(coins::list))
        .route("/api/coins/{operation}", post(coins::api))
        .route("/api/live/send", post(live::send_api))
        .route("/api/live/receive", post(live::receive_api))
        .route("/api/live/{id}", get(live::show_api))
        .route("/api/wire", post(wire::start_api))
        .route("/api/wire/quotes", get(wire::quotes_api))
        .route("/api/wire/{id}", get(wire::show_api))
        .route("/api/receipts", get(api::receipts))
        .route("/api/receipts/{checksum}", get(api::receipt))
        .route("/api/explorer/validators", get(api::validators))
        .route("/api/explorer/accounts/{account}", get(api::account))
        .route(
            "/api/explorer/certificates/{account}/{sequence}",
            get(api::certificate),
        );
    let pages = Router::new()
        .route("/", get(pages::wallet))
        .route("/pay", post(pages::pay))
        .route("/coins/{operation}", post(coins::page))
        .route("/live/send", post(live::send_page))
        .route("/live/receive", post(live::receive_page))
        .route("/live/{id}", get(live::show_page))
        .route("/live/{id}/events", get(live::events))
        .route("/wire", post(wire::start_page))
        .route("/wire/quotes", get(wire::quotes_page))
        .route("/wire/{id}", get(wire::show_page))
        .route("/wire/{id}/events", get(wire::events))
        .route("/receipts/{checksum}", get(pages::receipt))
        .route("/explorer", get(pages::explorer))
        .route("/explorer/events", get(explorer::events))
        .route("/explorer/accounts/{account}", get(pages::account))
        .route(
            "/explorer/certificates/{account}/{sequence}",
            get(pages::certificate),
        )
        .route("/events", get(events::stream));
    Router::new()
        .merge(api)
        .merge(pages)
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            auth::guard,
        ))
        // The assets carry no data: served without the token, so the page that says
        // "no access" is styled too.
        .route("/assets/app.js", get(pages::script))
        .route("/assets/style.css", get(pages::style))
        .layer(axum::middleware::from_fn(auth::headers))
        .with_state(shared)
}
