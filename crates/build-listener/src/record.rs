//! What a build document leads to, whoever brings it: a Notification-plugin
//! POST ([`crate::routes::notification`]) or Jenkins' answer about a build
//! whose notification never came ([`crate::catch_up`]). One function, so a
//! build is reviewed the same way and once, whichever arrives first.

use bionicbb_core::jenkins::notification::{BuildEvent, Phase};
use bionicbb_core::ledger::metric_names::{self as names, labels};
use bionicbb_core::ledger::{self, Completion, EventRecord, NewOutboxItem};
use bionicbb_core::review::{self, ReviewPlan};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::payload::{KIND_REVIEW, ReviewPayload, completed_at_ms, order_key};
use crate::with_ledger;

/// Where a document came from (the `source` of its metrics and events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// POSTed by Jenkins' Notification plugin.
    Notification,
    /// Read from Jenkins' remote API after the notification was lost.
    CatchUp,
}

impl Via {
    fn source(self) -> &'static str {
        match self {
            Via::Notification => "jenkins",
            Via::CatchUp => "jenkins-catch-up",
        }
    }
}

/// What was done with a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// No result in it (QUEUED, STARTED): nothing to do.
    Acknowledged,
    /// Nothing to post; `unknown` when the job has no role.
    Ignored { reason: String, unknown: bool },
    /// A verify build that names no change.
    Invalid { reason: String },
    /// The first result of the build: its review is in the outbox.
    Queued { change: String, patch_set: u32 },
    /// A later document of a build already recorded.
    Duplicate { change: String, patch_set: u32 },
    /// The ledger failed; nothing was recorded.
    LedgerUnavailable(String),
}

/// What the ledger keeps of a document (not the whole body, which may carry
/// megabytes of log).
fn event_summary(event: &BuildEvent, via: Via) -> Value {
    json!({
        "job": event.job_name,
        "job_url": event.job_url,
        "number": event.number,
        "queue_id": event.queue_id,
        "phase": event.phase.as_str(),
        "status": event.status.as_ref().map(|s| s.as_str().to_string()),
        "url": event.build_url,
        "change": event.target.as_ref().map(|t| t.change.to_string()),
        "patch_set": event.target.as_ref().map(|t| t.patch_set),
        "source": via.source(),
    })
}

/// The `events_received_total` labels of a Jenkins document.
fn event_labels(event: &BuildEvent, via: Via) -> String {
    labels(&[("source", via.source()), ("type", event.phase.as_str())])
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

/// Plans the review a document calls for and, for the first result of a
/// build, records the completion and enqueues the review in one ledger
/// transaction (then wakes the outbox worker). `received_ms` is when the
/// document arrived (unix milliseconds).
pub async fn record(state: &AppState, event: &BuildEvent, via: Via, received_ms: i64) -> Recorded {
    let build = format!("{} #{}", event.job_name, event.number);
    let config = &state.config;
    let wants_started = event.phase == Phase::Started && config.build_listener.post_started;
    if !event.is_completion() && !wants_started {
        tracing::info!("{build}: {} acknowledged", event.phase);
        count_event(state, event_labels(event, via)).await;
        return Recorded::Acknowledged;
    }
    let planned = match review::plan(event, config) {
        ReviewPlan::Post(planned) => planned,
        ReviewPlan::Ignore { reason } => {
            let unknown = review::job_role(event, config).is_none();
            if unknown {
                tracing::warn!("{reason}; nothing posted");
            } else {
                tracing::info!("{reason}; nothing posted");
            }
            count_event(state, event_labels(event, via)).await;
            return Recorded::Ignored { reason, unknown };
        }
        ReviewPlan::Invalid { reason } => return Recorded::Invalid { reason },
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
    let summary = event_summary(event, via);
    let key = planned.key.clone();
    let labels = event_labels(event, via);
    let how = match via {
        Via::Notification => String::new(),
        Via::CatchUp => " (from Jenkins, its notification never came)".to_string(),
    };
    let what = format!(
        "{build} {}{how}: review queued for {change}/{patch_set}",
        event.phase
    );
    let record = EventRecord {
        at: ledger::now(),
        source: via.source().to_string(),
        summary: what.clone(),
        change_number: event_change_number(&change),
        patch_set: Some(patch_set),
        decisions: json!([{
            "review": change,
            "patch_set": patch_set,
            "vote": payload.label,
            "job": event.job_name,
            "number": event.number,
            "status": event.status.as_ref().map(|s| s.as_str().to_string()),
            "url": event.build_url,
        }]),
        details: None,
    };
    // One transaction: the build, its review, the event and the count
    // (a failure to count is only logged: the document is recorded).
    let first = with_ledger(&state.ledger, move |l| {
        let completion = Completion {
            build_key: &key,
            event: &summary,
            outbox: item,
            record: &record,
            counter: (names::EVENTS_RECEIVED, &labels),
        };
        l.record_completion_counted(completion, ledger::now())
    })
    .await;
    match first {
        Ok(true) => {
            state.wake.notify_one();
            tracing::info!("{what}");
            Recorded::Queued { change, patch_set }
        }
        Ok(false) => {
            tracing::info!(
                "{build} {}{how}: duplicate of an earlier document",
                event.phase
            );
            Recorded::Duplicate { change, patch_set }
        }
        Err(e) => Recorded::LedgerUnavailable(e),
    }
}

/// The change number, when the change id is one (for the status page).
fn event_change_number(change: &str) -> Option<u64> {
    change.rsplit('~').next().and_then(|n| n.parse().ok())
}
