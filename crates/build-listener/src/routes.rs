//! The request handlers. They validate, write to the ledger, and answer at
//! once: Gerrit is only ever called by the outbox worker.
//!
//! Answers are JSON. `POST /` (and `/jenkins`):
//!
//! | document | status | body `status` |
//! |---|---|---|
//! | malformed, a missing or invalid field | 400 | `error` names the field |
//! | QUEUED, STARTED (no result) | 200 | `acknowledged` |
//! | unknown job | 202 | `ignored` (and a warning in the log) |
//! | ignored job, or nothing to post | 200 | `ignored` |
//! | a verify build that names no change | 400 | `error` |
//! | first result of a build | 202 | `queued` (durable in the ledger) |
//! | a later document of the same build | 200 | `duplicate` |
//!
//! `POST /drop-rejection` answers 202 `{"queued": true}` once the request is
//! in the outbox; the worker's decision goes to the log and the ledger.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bionicbb_core::jenkins::notification;
use bionicbb_core::ledger::metric_names::{self as names, labels};
use bionicbb_core::ledger::{self, NewOutboxItem};
use bionicbb_core::review;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::payload::{DropPayload, KIND_DROP, now_ms, order_key};
use crate::record::{self, Recorded, Via};
use crate::with_ledger;

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn bad_request(error: String, field: Option<&str>) -> Response {
    answer(
        StatusCode::BAD_REQUEST,
        json!({ "error": error, "field": field }),
    )
}

/// The answer to a body that cannot be read (413 over the limit).
fn refused_body(rejection: BytesRejection) -> Response {
    let status = rejection.status();
    tracing::warn!(%status, "refused a request body: {}", rejection.body_text());
    answer(status, json!({ "error": rejection.body_text() }))
}

fn ledger_unavailable(error: &str) -> Response {
    tracing::error!("ledger: {error}");
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({ "error": "the ledger is unavailable; nothing was recorded" }),
    )
}

/// `POST /` and `POST /jenkins`.
pub async fn notification(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received_ms = now_ms();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return refused_body(rejection),
    };
    let event = match notification::parse(&body) {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!("refused a build notification: {e}");
            return bad_request(e.to_string(), e.field());
        }
    };
    match record::record(&state, &event, Via::Notification, received_ms).await {
        Recorded::Acknowledged => answer(
            StatusCode::OK,
            json!({ "status": "acknowledged", "phase": event.phase.as_str() }),
        ),
        Recorded::Ignored { reason, unknown } => {
            let status = if unknown {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            answer(status, json!({ "status": "ignored", "reason": reason }))
        }
        Recorded::Invalid { reason } => {
            tracing::warn!("refused a build notification: {reason}");
            bad_request(reason, Some("build.parameters"))
        }
        Recorded::Queued { change, patch_set } => answer(
            StatusCode::ACCEPTED,
            json!({ "status": "queued", "change": change, "patch_set": patch_set }),
        ),
        Recorded::Duplicate { change, patch_set } => answer(
            StatusCode::OK,
            json!({ "status": "duplicate", "change": change, "patch_set": patch_set }),
        ),
        Recorded::LedgerUnavailable(e) => ledger_unavailable(&e),
    }
}

/// `POST /drop-rejection`.
pub async fn drop_rejection(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return refused_body(rejection),
    };
    let request = match review::parse_drop_rejection(&body) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!("refused a drop-rejection request: {e}");
            let field = match &e {
                review::DropRequestError::Missing(f)
                | review::DropRequestError::Invalid { field: f, .. } => Some(*f),
                _ => None,
            };
            return bad_request(e.to_string(), field);
        }
    };
    let change = request.change.to_string();
    let item = NewOutboxItem {
        kind: KIND_DROP.to_string(),
        order_key: order_key(&request.change),
        payload: DropPayload::from_request(&request).to_value(),
    };
    let enqueued = with_ledger(&state.ledger, move |l| {
        let id = l.enqueue(item, ledger::now())?;
        let labels = labels(&[("source", "drop-rejection"), ("type", "request")]);
        if let Err(e) = l.bump_counter(names::EVENTS_RECEIVED, &labels, 1) {
            tracing::error!("cannot count an event in the ledger: {e}");
        }
        Ok(id)
    })
    .await;
    match enqueued {
        Ok(id) => {
            state.wake.notify_one();
            tracing::info!(
                "drop-rejection for {change}/{} queued (outbox item {id})",
                request.patch_set
            );
            answer(
                StatusCode::ACCEPTED,
                json!({ "queued": true, "change": change, "patch_set": request.patch_set }),
            )
        }
        Err(e) => ledger_unavailable(&e),
    }
}

/// `GET /healthz`: 200 when the ledger answers a trivial read.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match with_ledger(&state.ledger, |l| l.pending_count()).await {
        Ok(pending) => answer(
            StatusCode::OK,
            json!({ "status": "ok", "pending": pending }),
        ),
        Err(e) => {
            tracing::error!("health check: ledger: {e}");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "unavailable", "error": "the ledger does not answer" }),
            )
        }
    }
}
