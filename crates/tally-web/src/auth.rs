//! Who may use the wallet, and what every answer tells the browser. A request carries the
//! access token as `?token=` (the first visit: swapped for a cookie and a redirect, so the
//! token leaves the address bar), as the cookie, or as `Authorization: Bearer` (scripts).
//! A request that changes something must be a POST from this very origin: the cookie is
//! `SameSite=Strict`, and since browsers count every port of 127.0.0.1 as one site, the
//! `Origin` header is checked too.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use crate::Shared;
use crate::html;

/// The secret that opens one wallet's pages: 32 random bytes, shown as hex.
#[derive(Clone)]
pub struct AccessToken(String);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(…)")
    }
}

impl AccessToken {
    /// A fresh token from the operating system's randomness.
    pub fn generate() -> AccessToken {
        let bytes: [u8; 32] = rand::random();
        AccessToken(hex::encode(bytes))
    }

    /// The token's text, to print once at start or hand to a script.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Whether `offered` is this token (in constant time).
    fn opens(&self, offered: &str) -> bool {
        offered.len() == self.0.len() && bool::from(offered.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

/// How a request proved it may come in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Credential {
    /// `?token=` in the address.
    Query,
    /// The cookie a browser sends by itself, cross-site requests included.
    Cookie,
    /// `Authorization: Bearer`, which only a script that holds the token sends.
    Bearer,
}

fn credential(shared: &Shared, request: &Request) -> Option<Credential> {
    let query_token = request.uri().query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(str::to_owned)
    });
    if query_token.is_some_and(|token| shared.token.opens(&token)) {
        return Some(Credential::Query);
    }
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if bearer.is_some_and(|token| shared.token.opens(token.trim())) {
        return Some(Credential::Bearer);
    }
    if cookie(headers, &shared.cookie).is_some_and(|token| shared.token.opens(token)) {
        return Some(Credential::Cookie);
    }
    None
}

/// The value of cookie `name`, if the request carries it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether a state-changing request comes from this origin: its `Origin` is ours, or it
/// has none and the browser says `Sec-Fetch-Site: same-origin`. A script with the bearer
/// token sends neither and needs neither.
fn same_origin(shared: &Shared, headers: &HeaderMap, credential: Credential) -> bool {
    match headers.get(header::ORIGIN).map(HeaderValue::to_str) {
        Some(Ok(origin)) if origin != "null" => origin == shared.origin,
        Some(Err(_)) => false,
        // No origin, or an opaque one ("null", which some referrer policies send).
        _ => {
            credential == Credential::Bearer
                || headers
                    .get("sec-fetch-site")
                    .is_some_and(|site| site == "same-origin")
        }
    }
}

/// Lets in only requests that carry the token, and changes only from this origin.
pub async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let Some(credential) = credential(&shared, &request) else {
        return refuse(
            api,
            StatusCode::UNAUTHORIZED,
            "This wallet needs its access token: open the address `tally web` printed when it started.",
        );
    };
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads && !same_origin(&shared, request.headers(), credential) {
        tracing::info!(path = %request.uri().path(), "cross-site request refused");
        return refuse(
            api,
            StatusCode::FORBIDDEN,
            "Refused: this request came from another site. Payments can only be made from the wallet's own pages.",
        );
    }
    if credential == Credential::Query && !api && reads {
        // Swap the token in the address for a cookie, and take it out of the address bar.
        let mut redirect = Redirect::to(request.uri().path()).into_response();
        let cookie = format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            shared.cookie,
            shared.token.reveal()
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            redirect.headers_mut().insert(header::SET_COOKIE, value);
        }
        return redirect;
    }
    next.run(request).await
}

fn refuse(api: bool, status: StatusCode, why: &str) -> Response {
    if api {
        crate::api::error(status, why)
    } else {
        (status, html::message_page("No access", why)).into_response()
    }
}

/// What every answer tells the browser: scripts and styles only from this server and never
/// inline, no framing, no referrer to other sites (an address may hold the token; within
/// the site the browser then also sends `Origin`), nothing cached.
pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_token_opens_only_itself() {
        let token = AccessToken::generate();
        assert_eq!(token.reveal().len(), 64);
        assert!(token.opens(token.reveal()));
        assert!(!token.opens(AccessToken::generate().reveal()));
        assert!(!token.opens(""));
        assert!(!token.opens(&token.reveal()[..63]));
        assert_eq!(
            format!("{token:?}"),
            "AccessToken(…)",
            "never printed by accident"
        );
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("tally_web_80=a; tally_web_8080=b"),
        );
        assert_eq!(cookie(&headers, "tally_web_8080"), Some("b"));
        assert_eq!(cookie(&headers, "tally_web_80"), Some("a"));
        assert_eq!(cookie(&headers, "tally_web_808"), None);
    }
}
