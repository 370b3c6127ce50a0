//! Writing the outcome of one attempt to the ledger: the item's state, an
//! event, the counters and the status, and when to try again.

use serde_json::{Value, json};

use bionicbb_core::ledger::metric_names::{self as names, labels};
use bionicbb_core::ledger::{self, EventRecord, OutboxItem};

use super::{Outcome, Worker, age, ceil_secs, describe};
use crate::payload::{KIND_DROP, KIND_REVIEW, now_ms};
use crate::with_ledger;

impl Worker {
    /// Writes the outcome: the item's state, an event, a counter, the status.
    pub(super) async fn conclude(&self, item: &OutboxItem, outcome: Outcome) {
        let id = item.id;
        let now = ledger::now();
        let what = describe(item);
        let (source, failed_outcome) = match item.kind.as_str() {
            KIND_DROP => ("drop-rejection", "drop_failed"),
            _ => ("jenkins", "failed"),
        };
        // Seconds from the build's completion to now, for a review posted.
        let build_to_review = item
            .payload
            .get("completed_at_ms")
            .and_then(Value::as_i64)
            .filter(|_| item.kind == KIND_REVIEW)
            .map(|at| now_ms().saturating_sub(at) as f64 / 1000.0);
        let change_number = item
            .order_key
            .rsplit('~')
            .next()
            .and_then(|n| n.parse().ok());
        let patch_set = item
            .payload
            .get("patch_set")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok());
        let event = |summary: String, decision: Value| EventRecord {
            at: now,
            source: source.to_string(),
            summary,
            change_number,
            patch_set,
            decisions: json!([decision]),
            details: None,
        };
        let failures = item.attempts + 1;
        let outcome = match outcome {
            Outcome::Retry(e) | Outcome::InDoubt(e)
                if age(item, now) >= self.settings.give_up_after =>
            {
                Outcome::Failed(format!(
                    "gave up after {failures} attempts over {}: {e}",
                    humantime::format_duration(self.settings.give_up_after)
                ))
            }
            other => other,
        };
        // A post in doubt is retried like any passing fault, only later.
        let in_doubt = matches!(outcome, Outcome::InDoubt(_));
        let result = match outcome {
            Outcome::Done { summary, counter } => {
                tracing::info!("{what}: {summary}");
                let record = event(format!("{what}: {summary}"), json!({ "outcome": counter }));
                let observed = build_to_review.filter(|_| counter == "posted");
                with_ledger(&self.ledger, move |l| {
                    l.mark_done(id, now)?;
                    l.record_event(&record)?;
                    l.bump_counter(names::REVIEWS_POSTED, &labels(&[("outcome", counter)]), 1)?;
                    if let Some(seconds) = observed {
                        l.observe(names::BUILD_TO_REVIEW_SECONDS, "", seconds)?;
                    }
                    l.set_status("build-listener", "last_success_at", &json!(now), now)
                })
                .await
            }
            Outcome::Retry(e) | Outcome::InDoubt(e) => {
                let mut delay = self
                    .settings
                    .delay(failures)
                    .max(e.retry_after.unwrap_or_default());
                if in_doubt {
                    delay = delay.max(self.settings.settle);
                }
                let next = now.saturating_add(ceil_secs(delay).max(i64::from(in_doubt)));
                let error = e.to_string();
                tracing::warn!(
                    "{what}: attempt {failures} failed, retrying in {}{}: {error}",
                    humantime::format_duration(delay),
                    if in_doubt {
                        " (no answer: Gerrit may still apply it, it is looked for first)"
                    } else {
                        ""
                    }
                );
                with_ledger(&self.ledger, move |l| {
                    if in_doubt {
                        l.mark_in_doubt(id, &error, next)?;
                    } else {
                        l.mark_retry(id, &error, next)?;
                    }
                    l.bump_counter(names::OUTBOX_RETRIES, "", 1)?;
                    l.set_status(
                        "build-listener",
                        "last_error",
                        &json!({ "at": now, "error": error }),
                        now,
                    )
                })
                .await
            }
            Outcome::Failed(error) => {
                tracing::error!("{what}: failed for good: {error}");
                let record = event(
                    format!("{what}: failed: {error}"),
                    json!({ "outcome": "failed", "error": error }),
                );
                with_ledger(&self.ledger, move |l| {
                    l.mark_failed(id, &error, now)?;
                    l.record_event(&record)?;
                    let outcome = labels(&[("outcome", failed_outcome)]);
                    l.bump_counter(names::REVIEWS_POSTED, &outcome, 1)?;
                    let component = labels(&[("component", "build-listener")]);
                    l.bump_counter(names::FAILURES, &component, 1)?;
                    l.set_status(
                        "build-listener",
                        "last_error",
                        &json!({ "at": now, "error": error }),
                        now,
                    )
                })
                .await
            }
        };
        if let Err(e) = result {
            tracing::error!("{what}: cannot record the outcome in the ledger: {e}");
        }
    }
}
