//! `GET /events`: server-sent events that keep an open page current. Every
//! [`EVERY`] the wallet's accounts are asked again (once for all open pages,
//! [`model::wallet_shared`]); an `accounts` event goes out when anything a page shows
//! changed (and once at the start).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

use crate::Shared;
use crate::model::{self, WalletView};

/// How often the accounts are asked again.
const EVERY: Duration = Duration::from_secs(1);

/// The stream of `accounts` events.
pub async fn stream(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures::stream::unfold(
        (shared, None::<WalletView>, true),
        |(shared, mut last, mut first)| async move {
            loop {
                if !first {
                    tokio::time::sleep(EVERY).await;
                }
                first = false;
                let Ok(view) = model::wallet_shared(&shared).await else {
                    continue;
                };
                if last.as_ref() == Some(&view) {
                    continue;
                }
                let event = Event::default()
                    .event("accounts")
                    .json_data(&view)
                    .unwrap_or_else(|_| Event::default().comment("unencodable"));
                last = Some(view);
                return Some((Ok(event), (shared, last, false)));
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}
