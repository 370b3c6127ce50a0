//! The HTTP application: shared state and the router.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use bionicbb_core::config::Config;
use bionicbb_core::ledger::Ledger;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::{auth, pages, routes};

/// How long a request may take, its body read and its answer computed
/// (a body sent slowly is cut off with 408). Well within the 30 s Jenkins
/// waits for an answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// What every handler shares.
pub struct AppState {
    pub config: Arc<Config>,
    pub ledger: Ledger,
    /// Woken whenever work is put in the outbox, so the worker does not wait
    /// for its next timer.
    pub wake: Arc<Notify>,
}

impl AppState {
    pub fn new(config: Arc<Config>, ledger: Ledger, wake: Arc<Notify>) -> Arc<AppState> {
        Arc::new(AppState {
            config,
            ledger,
            wake,
        })
    }
}

/// The routes:
///
/// - `POST /` and `POST /jenkins`: a Notification-plugin document;
/// - `POST /drop-rejection`: `{"changeid": ..., "patchset": ...}`;
/// - `GET /healthz`: 200 when the ledger answers, 503 otherwise;
/// - `GET /metrics`, `GET /status` and `GET /`: the read-only pages (see
///   [`pages`]), served without the secret: they change nothing and show
///   no secret.
///
/// Every POST is authenticated before its body is read (the secret check is
/// a route layer around the handlers, and the body is only read by the
/// handlers' extractor), then its body is limited to `body_limit` (413).
/// Every request is answered within [`REQUEST_TIMEOUT`] (408).
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.build_listener.body_limit;
    let posts = Router::new()
        .route("/", post(routes::notification))
        .route("/jenkins", post(routes::notification))
        .route("/drop-rejection", post(routes::drop_rejection))
        .layer(DefaultBodyLimit::max(limit))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_secret,
        ));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(pages::metrics))
        .route("/status", get(pages::status))
        .route("/", get(pages::index))
        .merge(posts)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(CatchPanicLayer::new())
        .with_state(state)
}
