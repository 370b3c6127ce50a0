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
use bionicbb_core::jenkins::notification::{self, BuildEvent, Phase};
use bionicbb_core::ledger::metric_names::{self as names, labels};
use bionicbb_core::ledger::{self, EventRecord, NewOutboxItem};
use bionicbb_core::review::{self, ReviewPlan};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::payload::{
    DropPayload, KIND_DROP, KIND_REVIEW, ReviewPayload, completed_at_ms, now_ms, order_key,
};
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

/// What the ledger keeps of a document (not the whole body, which may carry
/// megabytes of log).
fn event_summary(event: &BuildEvent) -> Value {
    json!({
        "job": event.job_name,
        "job_url": event.job_url,
        "number": event.number,
        "phase": event.phase.as_str(),
        "status": event.status.as_ref().map(|s| s.as_str().to_string()),
        "url": event.build_url,
        "change": event.target.as_ref().map(|t| t.change.to_string()),
        "patch_set": event.target.as_ref().map(|t| t.patch_set),
    })
}

/// The `events_received_total` labels of a Jenkins document.
fn jenkins_event_labels(event: &BuildEvent) -> String {
    labels(&[("source", "jenkins"), ("type", event.phase.as_str())])
}

/// Counts an accepted document that writes nothing else to the ledger. A
/// ledger failure here is logged only: the document needs no action.
async fn count_event(state: &AppState, labels: String) {
    let counted = with_ledger(&state.ledger, move |l| {
        l.bump_counter(names::EVENTS_RECEIVED, &labels, 1)
    })
    .await;
    if let Err(e) = counted {
        tracing::error!("cannot count an event in the ledger: {e}");
    }
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
    let build = format!("{} #{}", event.job_name, event.number);
    let config = &state.config;
    let wants_started = event.phase == Phase::Started && config.build_listener.post_started;
    if !event.is_completion() && !wants_started {
        tracing::info!("{build}: {} acknowledged", event.phase);
        count_event(&state, jenkins_event_labels(&event)).await;
        return answer(
            StatusCode::OK,
            json!({ "status": "acknowledged", "phase": event.phase.as_str() }),
        );
    }
    let planned = match review::plan(&event, config) {
        ReviewPlan::Post(planned) => planned,
        ReviewPlan::Ignore { reason } => {
            let unknown = review::job_role(&event, config).is_none();
            let status = if unknown {
                tracing::warn!("{reason}; nothing posted");
                StatusCode::ACCEPTED
            } else {
                tracing::info!("{reason}; nothing posted");
                StatusCode::OK
            };
            count_event(&state, jenkins_event_labels(&event)).await;
            return answer(status, json!({ "status": "ignored", "reason": reason }));
        }
        ReviewPlan::Invalid { reason } => {
            tracing::warn!("refused a build notification: {reason}");
            return bad_request(reason, Some("build.parameters"));
        }
    };
    let change = planned.change.to_string();
    let patch_set = planned.patch_set;
    let completed = completed_at_ms(event.timestamp_ms, received_ms);
    let payload = ReviewPayload::from_plan(&planned, build.clone(), Some(completed));
    let item = NewOutboxItem {
        kind: KIND_REVIEW.to_string(),
        order_key: order_key(&planned.change),
        payload: payload.to_value(),
    };
    let summary = event_summary(&event);
    let key = planned.key.clone();
    let event_labels = jenkins_event_labels(&event);
    let record = EventRecord {
        at: ledger::now(),
        source: "jenkins".to_string(),
        summary: format!(
            "{build} {}: review queued for {change}/{patch_set}",
            event.phase
        ),
        change_number: event_change_number(&change),
        patch_set: Some(patch_set),
        decisions: json!([{ "review": change, "patch_set": patch_set, "vote": payload.label }]),
    };
    let first = with_ledger(&state.ledger, move |l| {
        let now = ledger::now();
        let first = l.record_completion(&key, &summary, item, now)?;
        if first {
            l.record_event(&record)?;
        }
        // The document is recorded: a failure to count it is only logged.
        if let Err(e) = l.bump_counter(names::EVENTS_RECEIVED, &event_labels, 1) {
            tracing::error!("cannot count an event in the ledger: {e}");
        }
        Ok(first)
    })
    .await;
    match first {
        Ok(true) => {
            state.wake.notify_one();
            tracing::info!(
                "{build} {}: review queued for {change}/{patch_set}",
                event.phase
            );
            answer(
                StatusCode::ACCEPTED,
                json!({ "status": "queued", "change": change, "patch_set": patch_set }),
            )
        }
        Ok(false) => {
            tracing::info!("{build} {}: duplicate of an earlier document", event.phase);
            answer(
                StatusCode::OK,
                json!({ "status": "duplicate", "change": change, "patch_set": patch_set }),
            )
        }
        Err(e) => ledger_unavailable(&e),
    }
}

/// The change number, when the change id is one (for the status page).
fn event_change_number(change: &str) -> Option<u64> {
    change.rsplit('~').next().and_then(|n| n.parse().ok())
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
