//! The shared secret every POST must carry.
//!
//! Jenkins' Notification plugin can only be given a URL, so the secret is
//! accepted in three places: the `token` query parameter (the usual way,
//! `http://listener/?token=...`), the password of HTTP Basic auth (any user
//! name: `http://x:secret@listener/`), or `Authorization: Bearer <secret>`.
//! Comparisons run in constant time. A refused request is logged without
//! its query string or headers, which may hold a wrong (or right) secret.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::app::AppState;

/// axum middleware: lets the request through only if it carries the secret.
pub async fn require_secret(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let secret = state.config.build_listener.secret().expose();
    if carries_secret(request.headers(), request.uri().query(), secret) {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".to_string());
    tracing::warn!(
        method = %request.method(),
        path = request.uri().path(),
        peer,
        "refused a request without the shared secret"
    );
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, "Basic realm=\"bionicbb\"")],
        Json(json!({ "error": "missing or wrong secret" })),
    )
        .into_response()
}

/// Whether any of the three places holds `secret`. Every candidate is
/// compared (no early exit on the first match) so timing tells nothing.
pub fn carries_secret(headers: &HeaderMap, query: Option<&str>, secret: &str) -> bool {
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    if let Some(query) = query {
        candidates.extend(
            url::form_urlencoded::parse(query.as_bytes())
                .filter(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned().into_bytes()),
        );
    }
    for value in headers.get_all(AUTHORIZATION) {
        if let Some(candidate) = value.to_str().ok().and_then(from_authorization) {
            candidates.push(candidate);
        }
    }
    // Never accept an empty secret, even if the configuration had one.
    if secret.is_empty() {
        return false;
    }
    let mut ok = subtle::Choice::from(0);
    for candidate in &candidates {
        ok |= candidate.as_slice().ct_eq(secret.as_bytes());
    }
    ok.into()
}

/// The secret carried by one `Authorization` value: the Basic password or
/// the Bearer token. Scheme names are case-insensitive.
fn from_authorization(value: &str) -> Option<Vec<u8>> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn the_three_places() {
        let none = HeaderMap::new();
        assert!(carries_secret(&none, Some("token=s3cr%2Bt"), "s3cr+t"));
        assert!(carries_secret(&none, Some("a=1&token=s"), "s"));
        assert!(!carries_secret(&none, Some("token=x"), "s"));
        assert!(!carries_secret(&none, Some("tokens=s"), "s"));
        assert!(!carries_secret(&none, None, "s"));
        let basic = format!("Basic {}", STANDARD.encode("anyone:pa:ss"));
        assert!(carries_secret(&headers(&basic), None, "pa:ss"));
        let basic = format!("basic {}", STANDARD.encode("pa:ss"));
        assert!(!carries_secret(&headers(&basic), None, "pa:ss"));
        assert!(carries_secret(&headers("Bearer tok"), None, "tok"));
        assert!(carries_secret(&headers("bearer  tok "), None, "tok"));
        assert!(!carries_secret(&headers("Bearer tokx"), None, "tok"));
        assert!(!carries_secret(&headers("Token tok"), None, "tok"));
        assert!(!carries_secret(&headers("Basic !!!"), None, "tok"));
        // An empty secret never opens the door.
        assert!(!carries_secret(&none, Some("token="), ""));
    }
}
