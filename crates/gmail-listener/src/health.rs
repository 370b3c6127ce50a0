//! The optional health endpoint (`gmail_listener.health_listen`):
//! `GET /healthz` answers from what the poll loop last recorded, kept in
//! memory, so a probe never touches Gmail or the ledger.
//!
//! - `200 {"status":"starting"}` until the first poll has finished (the
//!   daemon may be ready, polling, already: `ready` says since when; not an
//!   error);
//! - `200 {"status":"ok"}` when the last poll listed the label and handled
//!   every mail;
//! - `200 {"status":"degraded"}` when the label was listed but some mail
//!   hit a passing fault (Jenkins or Gerrit away): the daemon itself works
//!   and retries next poll, restarting it would not help;
//! - `503 {"status":"failing"}` when the last poll could not list the label
//!   (Gmail unreachable, authorization refused...).
//!
//! Every answer carries `last_poll` (`at`, `ok`, `mails`, `error`, or null
//! before the first poll: then `note` says "no poll yet"), `next_poll` (unix
//! seconds, or null) and `ready` (`at` and `start_to_ready_ms`, or null
//! before the daemon is ready).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};

/// What one poll did, as the health endpoint and the status page show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollStatus {
    /// When the poll finished, unix seconds.
    pub at: i64,
    /// True when the label was listed and every mail handled.
    pub ok: bool,
    /// Mails listed in the label.
    pub mails: usize,
    /// Why the poll was not ok.
    pub error: Option<String>,
    /// False when the label could not be listed at all.
    #[serde(skip)]
    pub listed: bool,
}

#[derive(Debug, Default)]
struct Inner {
    last_poll: Option<PollStatus>,
    next_poll: Option<i64>,
    ready: Option<Value>,
}

/// The health state shared by the poll loop (writer) and the endpoint
/// (reader). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<Inner>>,
}

impl Health {
    /// Records a finished poll and when the next one is due.
    pub fn record(&self, last: PollStatus, next_poll: Option<i64>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.last_poll = Some(last);
        inner.next_poll = next_poll;
    }

    /// Records when the daemon became ready and how long after its start.
    pub fn ready(&self, at: i64, start_to_ready_ms: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.ready = Some(json!({ "at": at, "start_to_ready_ms": start_to_ready_ms }));
    }

    /// The HTTP status and JSON body `/healthz` answers now.
    pub fn report(&self) -> (StatusCode, Value) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (code, status) = match &inner.last_poll {
            None => (StatusCode::OK, "starting"),
            Some(p) if p.ok => (StatusCode::OK, "ok"),
            Some(p) if p.listed => (StatusCode::OK, "degraded"),
            Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "failing"),
        };
        let mut body = json!({
            "status": status,
            "last_poll": inner.last_poll,
            "next_poll": inner.next_poll,
            "ready": inner.ready,
        });
        if inner.last_poll.is_none() {
            body["note"] = json!("no poll yet");
        }
        (code, body)
    }
}

async fn healthz(State(health): State<Health>) -> (StatusCode, Json<Value>) {
    let (code, body) = health.report();
    (code, Json(body))
}

/// The endpoint's routes.
pub fn router(health: Health) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .with_state(health)
}

/// Binds `addr` (an error here is a start-up error) and serves `/healthz`
/// until `shutdown` resolves; the returned task ends when the server has
/// shut down.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "health endpoint listening");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(health))
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "the health endpoint failed");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(ok: bool, listed: bool) -> PollStatus {
        PollStatus {
            at: 1_700_000_000,
            ok,
            mails: 2,
            error: (!ok).then(|| "Gmail: HTTP 500".to_string()),
            listed,
        }
    }

    #[test]
    fn starting_until_the_first_poll() {
        let (code, body) = Health::default().report();
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["status"], "starting");
        assert!(body["last_poll"].is_null());
        assert_eq!(body["note"], "no poll yet");
        assert!(body["ready"].is_null());
    }

    #[test]
    fn ready_before_the_first_poll_is_still_starting_not_an_error() {
        let health = Health::default();
        health.ready(1_700_000_000, 42);
        let (code, body) = health.report();
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["status"], "starting");
        assert_eq!(body["note"], "no poll yet");
        assert_eq!(body["ready"]["start_to_ready_ms"], 42);
        health.record(poll(true, true), None);
        let (_, body) = health.report();
        assert!(body.get("note").is_none(), "{body}");
        assert_eq!(body["ready"]["at"], 1_700_000_000);
    }

    #[test]
    fn the_last_poll_decides_the_status() {
        let health = Health::default();
        health.record(poll(true, true), Some(1_700_000_060));
        let (code, body) = health.report();
        assert_eq!((code, &body["status"]), (StatusCode::OK, &json!("ok")));
        assert_eq!(body["last_poll"]["mails"], 2);
        assert_eq!(body["next_poll"], 1_700_000_060);
        assert!(body["last_poll"].get("listed").is_none());

        health.record(poll(false, true), None);
        let (code, body) = health.report();
        assert_eq!(
            (code, &body["status"]),
            (StatusCode::OK, &json!("degraded"))
        );

        health.record(poll(false, false), None);
        let (code, body) = health.report();
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "failing");
        assert_eq!(body["last_poll"]["error"], "Gmail: HTTP 500");
    }
}
