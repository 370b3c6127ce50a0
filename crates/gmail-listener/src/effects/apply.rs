//! Doing every decision about one event, whichever path reported it (a
//! mail, or a reconcile pass with Gerrit): each effect once, then the
//! triggers an earlier try of the same patch set left in doubt that these
//! decisions no longer call for.

use bionicbb_core::event::Decision;
use bionicbb_core::ledger::metric_names as names;
use serde_json::{Value, json};

use super::ack::Started;
use super::{Effects, Origin, Outcome};

/// What became of the decisions about one event.
#[derive(Debug, Default)]
pub struct Applied {
    /// Why some effect must be tried again (passing faults); empty when
    /// every effect is settled, done or refused for good.
    pub passing: Vec<String>,
    /// What each effect did, for the log.
    pub summary: Vec<String>,
    /// The decisions as the status page shows them, with what became of
    /// each (those left for another try are not shown).
    pub shown: Vec<Value>,
}

impl Effects {
    /// Runs every decision about patch set `ps` of change `change` (see
    /// [`Effects::run`]); then, when the change is known, settles the
    /// triggers of that patch set left in doubt that none of these
    /// decisions calls for, so what they started still gets its review.
    pub async fn apply(
        &self,
        decisions: &[Decision],
        origin: &Origin,
        change: u64,
        ps: u32,
    ) -> Applied {
        let mut applied = Applied::default();
        // A cancel follows the builds it makes way for; when Jenkins
        // refused one for good, the older builds are left running.
        let mut refused_build = false;
        // The last build or clean run, for the acknowledgement after it.
        let mut started: Option<Started> = None;
        for decision in decisions {
            let mut entry = serde_json::to_value(decision).unwrap_or_default();
            if matches!(decision, Decision::Skip { .. }) {
                applied.shown.push(entry);
                continue;
            }
            let outcome = match decision {
                Decision::CancelSuperseded { .. } if refused_build => Outcome::Done(
                    "superseded builds left running: the newer build was refused".to_string(),
                ),
                Decision::Acknowledge { .. } => {
                    self.acknowledge(decision, started.as_ref(), origin).await
                }
                _ => self.run(decision, origin, change, ps).await,
            };
            if let Some(key) = Effects::build_key(decision, origin, change, ps) {
                started = Some(Started::of(decision, key, &outcome));
            }
            let (result, queue_url) = match outcome {
                Outcome::Done(what) => (what, None),
                Outcome::Triggered { what, queue_url } => (what, Some(queue_url)),
                Outcome::Failed(why) => {
                    refused_build |= matches!(decision, Decision::Build { .. });
                    self.count_failure().await;
                    (format!("failed for good: {why}"), None)
                }
                Outcome::Passing(why) => {
                    applied.passing.push(why);
                    continue;
                }
            };
            if let Value::Object(map) = &mut entry {
                map.insert("result".into(), json!(result));
                if let Some(url) = queue_url {
                    map.insert("queue_url".into(), json!(url));
                }
            }
            if !result.is_empty() {
                applied.summary.push(result);
            }
            applied.shown.push(entry);
        }
        if change != 0 {
            let wanted: Vec<_> = decisions
                .iter()
                .filter_map(|d| Effects::build_key(d, origin, change, ps))
                .collect();
            let why = skip_reasons(decisions);
            match self.settle_unwanted(change, ps, &wanted, &why).await {
                Outcome::Passing(why) => applied.passing.push(why),
                Outcome::Done(what) if !what.is_empty() => applied.summary.push(what),
                _ => {}
            }
        }
        applied
    }

    /// Counts an effect refused for good.
    async fn count_failure(&self) {
        let labels = names::labels(&[("component", "gmail-listener")]);
        let bumped = self
            .db("bump a counter", move |l| {
                l.bump_counter(names::FAILURES, &labels, 1)
            })
            .await;
        if let Err(e) = bumped {
            tracing::warn!(error = %e, counter = names::FAILURES, "cannot bump the counter");
        }
    }
}

/// Why `decisions` build nothing, for the log of a trigger they no longer
/// call for: their skip reasons, or that they call for other builds.
fn skip_reasons(decisions: &[Decision]) -> String {
    let reasons: Vec<&str> = decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Skip { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    let closed = decisions
        .iter()
        .any(|d| matches!(d, Decision::CancelSuperseded { below: None, .. }));
    if reasons.is_empty() && closed {
        "the change is closed".to_string()
    } else if reasons.is_empty() {
        "the decision calls for other builds".to_string()
    } else {
        reasons.join("; ")
    }
}
