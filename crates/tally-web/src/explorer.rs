//! The explorer's live part: the validators table and a chart of certificates applied per
//! second, re-drawn every second over server-sent events while a page is open. Each round
//! of the validators' answers (asked at most once a second, shared by every viewer) adds
//! one sample of the most certificates any validator has applied; the chart is the
//! difference between consecutive samples.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use crate::pages::NetworkQuery;
use crate::{Network, Shared, model};

/// Samples kept: two minutes at one a second.
pub const SAMPLES: usize = 120;

/// The samples of one network: when, and the most certificates applied.
pub(crate) type Samples = std::sync::Mutex<VecDeque<(Instant, u64)>>;

/// Records one round's most certificates applied.
pub(crate) fn sample(network: &Network, certificates: u64) {
    let mut samples = network
        .samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    samples.push_back((Instant::now(), certificates));
    while samples.len() > SAMPLES + 1 {
        samples.pop_front();
    }
}

/// Certificates applied per second between consecutive samples, oldest first.
pub fn rates(network: &Network) -> Vec<f64> {
    let samples = network
        .samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    samples
        .iter()
        .zip(samples.iter().skip(1))
        .map(|((t0, c0), (t1, c1))| {
            let seconds = t1.duration_since(*t0).as_secs_f64().max(1e-3);
            c1.saturating_sub(*c0) as f64 / seconds
        })
        .collect()
}

/// The chart of `rates` as inline SVG (drawn here: nothing for the page's policy to allow).
pub fn chart(rates: &[f64]) -> String {
    const WIDTH: f64 = 600.0;
    const HEIGHT: f64 = 120.0;
    let most = rates.iter().copied().fold(0.0_f64, f64::max);
    // The scale: at least one a second, so an idle network draws a flat line at the bottom.
    let top = most.max(1.0);
    let step = WIDTH / (SAMPLES as f64 - 1.0);
    let mut points = String::new();
    let offset = SAMPLES.saturating_sub(rates.len()) as f64;
    for (i, rate) in rates.iter().enumerate() {
        let x = (offset + i as f64) * step;
        let y = HEIGHT - rate / top * (HEIGHT - 4.0);
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    let now = rates.last().copied().unwrap_or(0.0);
    format!(
        "<figure id=\"rate-chart\"><svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         role=\"img\" aria-label=\"certificates applied per second\">\
         <rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#fff\" stroke=\"#d9dee3\"/>\
         <polyline fill=\"none\" stroke=\"#0b5cad\" stroke-width=\"2\" points=\"{}\"/></svg>\
         <figcaption>Payments (certificates applied) per second, the last two minutes: \
         <strong id=\"rate-now\">{now:.0}</strong> now, {most:.0} at most.</figcaption></figure>",
        points.trim_end()
    )
}

/// The part of the explorer page that changes: the validators and the chart.
pub async fn live_part(network: &Network) -> String {
    let validators = model::validators(network).await;
    let mut out = crate::pages::validators_table(network, &validators);
    out.push_str("<section><h2>Payments per second</h2>");
    out.push_str(&chart(&rates(network)));
    out.push_str("</section>");
    out
}

/// `GET /explorer/events?network=N`: an `explorer` event every second with the live part
/// (HTML this server escaped and drew) as `{"html": …}`.
pub async fn events(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<NetworkQuery>,
) -> Response {
    let index = query.network.unwrap_or(0);
    if shared.network(Some(index)).is_none() {
        return crate::pages::not_found().await;
    }
    let events = futures::stream::unfold(shared, move |shared| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let network = shared.network(Some(index))?;
        let html = live_part(network).await;
        let event = Event::default()
            .event("explorer")
            .json_data(serde_json::json!({ "html": html }))
            .unwrap_or_else(|_| Event::default().comment("unencodable"));
        Some((Ok::<_, Infallible>(event), shared))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_draws_one_point_per_rate_right_aligned() {
        let svg = chart(&[0.0, 10.0, 5.0]);
        let points = svg
            .split("points=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default();
        assert_eq!(points.split(' ').count(), 3);
        assert!(points.ends_with("600.0,62.0"), "{points}");
        assert!(svg.contains("<strong id=\"rate-now\">5</strong> now, 10 at most"));
        assert!(!chart(&[]).contains("NaN"));
        assert!(
            chart(&[0.0, 0.0]).contains("0 at most"),
            "an idle network says so"
        );
    }
}
