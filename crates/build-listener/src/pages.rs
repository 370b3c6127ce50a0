//! The read-only pages: `GET /metrics`, `GET /status` and `GET /`.
//!
//! They need no secret, on purpose: a Prometheus scraper and a browser on
//! the team's network should not have to carry the Jenkins shared secret.
//! They change nothing, and they never show a secret: the metrics hold
//! counts only, and the status page leaves out the configuration's secrets
//! and blanks secret-looking parts of what it shows (see
//! [`crate::status`]). Both are rendered from the ledger on the blocking
//! thread pool; a failure answers 500 with a short message, and is logged.

use std::sync::Arc;

use std::collections::HashMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bionicbb_core::ledger;

use crate::app::AppState;
use crate::{metrics, status, with_ledger};

/// The answer to `GET /` from anything but a browser.
pub const INDEX_TEXT: &str = "bionicbb build-listener: POST / (Jenkins notifications), \
POST /drop-rejection, GET /status, GET /metrics, GET /healthz\n";

const HTML: &str = "text/html; charset=utf-8";

/// Whether the client's `Accept` header names `media_type` (a plain
/// substring test: the pages only need to tell a browser or a JSON client
/// from the rest, not to weigh `q` values).
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains(media_type))
}

fn failed(what: &str, error: String) -> Response {
    tracing::error!("{what}: {error}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{what} failed; see the build-listener log\n"),
    )
        .into_response()
}

/// `GET /metrics`: the Prometheus text exposition.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let rendered = with_ledger(&state.ledger, |l| Ok(metrics::render(l, ledger::now()))).await;
    match rendered.and_then(|r| r.map_err(|e| e.to_string())) {
        Ok(text) => ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => failed("rendering the metrics", e),
    }
}

/// The page's filter from the query string (`?change=N`, `?project=P`);
/// anything unreadable in it is no filter.
fn filter(query: Option<String>) -> status::Filter {
    let params: HashMap<String, String> = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    status::Filter::from_query(&params)
}

/// `GET /status`: the status page, or its data as JSON when the client
/// asks for `application/json`; both narrowed by the query's filter.
pub async fn status(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let filter = filter(query);
    if accepts(&headers, "application/json") {
        let config = state.config.clone();
        let rendered = with_ledger(&state.ledger, move |l| {
            Ok(status::render_json(l, &config, &filter, ledger::now()))
        })
        .await;
        return match rendered.and_then(|r| r.map_err(|e| e.to_string())) {
            Ok(value) => Json(value).into_response(),
            Err(e) => failed("rendering the status", e),
        };
    }
    status_page(&state, filter).await
}

async fn status_page(state: &AppState, filter: status::Filter) -> Response {
    let config = state.config.clone();
    let rendered = with_ledger(&state.ledger, move |l| {
        Ok(status::render(l, &config, &filter, ledger::now()))
    })
    .await;
    match rendered.and_then(|r| r.map_err(|e| e.to_string())) {
        Ok(page) => ([(CONTENT_TYPE, HTML)], page).into_response(),
        Err(e) => failed("rendering the status page", e),
    }
}

/// `GET /`: the status page for a browser (`Accept: text/html`), else one
/// line naming the routes.
pub async fn index(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if accepts(&headers, "text/html") {
        return status_page(&state, filter(query)).await;
    }
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], INDEX_TEXT).into_response()
}
