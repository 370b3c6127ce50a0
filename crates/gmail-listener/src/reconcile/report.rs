//! What a reconcile pass did, and how it is reported: one log line,
//! counters and a histogram in the ledger (`/metrics`), and the status key
//! `reconcile` of `gmail-listener` (the status page).

use std::time::Instant;

use bionicbb_core::ledger::{self, metric_names as names};
use serde_json::{Value, json};

use super::{PassKind, Reconciler, STATUS_KEY};

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every change read and handled.
    Ok,
    /// Handled up to `gerrit.reconcile_limit` changes; older ones were
    /// left out.
    Truncated,
    /// Stopped at a passing fault while handling a change.
    Incomplete,
    /// Gerrit could not be queried.
    Failed,
    /// The daemon is stopping.
    Stopped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Truncated => "truncated",
            Outcome::Incomplete => "incomplete",
            Outcome::Failed => "failed",
            Outcome::Stopped => "stopped",
        }
    }

    /// Whether the cursor moves on: everything in the window was handled
    /// (or as much as the limit allows).
    pub fn through(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Truncated)
    }
}

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub kind: PassKind,
    pub outcome: Outcome,
    /// When it started (unix seconds).
    pub started: i64,
    /// The query's `after:`, for an incremental pass.
    pub after: Option<i64>,
    /// Query pages read.
    pub pages: usize,
    /// Changes whose comments had to be read.
    pub comment_reads: usize,
    /// Changes handled.
    pub changes: usize,
    pub missed_patch_sets: usize,
    pub missed_commands: usize,
    pub duration_ms: u64,
    pub error: Option<String>,
}

impl Reconciler {
    pub(super) async fn bump(&self, name: &'static str, labels: &[(&str, &str)], by: u64) {
        let labels = names::labels(labels);
        let bumped = self
            .ledger
            .blocking("bump a counter", move |l| l.bump_counter(name, &labels, by))
            .await;
        if let Err(e) = bumped {
            tracing::warn!(error = %e, counter = name, "cannot bump the counter");
        }
    }

    /// The pass's log line, metrics and status (with when the next one is
    /// due, in the daemon).
    pub(super) async fn record(&self, report: &PassReport, next_at: Option<i64>) {
        let (kind, outcome) = (report.kind.as_str(), report.outcome.as_str());
        let after = report.after.map(bionicbb_core::timefmt::format_utc);
        let (after, error) = (after.unwrap_or_default(), report.error.as_deref());
        if report.outcome.through() {
            tracing::info!(
                kind,
                outcome,
                changes = report.changes,
                pages = report.pages,
                comment_reads = report.comment_reads,
                missed_patch_sets = report.missed_patch_sets,
                missed_commands = report.missed_commands,
                duration_ms = report.duration_ms,
                %after,
                "reconcile pass finished"
            );
        } else {
            tracing::warn!(
                kind,
                outcome,
                changes = report.changes,
                pages = report.pages,
                missed_patch_sets = report.missed_patch_sets,
                missed_commands = report.missed_commands,
                duration_ms = report.duration_ms,
                %after,
                error = error.unwrap_or(""),
                "reconcile pass finished; the next pass looks again"
            );
        }
        let scanned = u64::try_from(report.changes).unwrap_or(u64::MAX);
        self.bump(names::RECONCILE_CHANGES_SCANNED, &[], scanned)
            .await;
        self.bump(
            names::RECONCILE_PASSES,
            &[("kind", kind), ("outcome", outcome)],
            1,
        )
        .await;
        let labels = names::labels(&[("kind", kind)]);
        let seconds = report.duration_ms as f64 / 1000.0;
        let observed = self
            .ledger
            .blocking("observe a duration", move |l| {
                l.observe(names::RECONCILE_PASS_SECONDS, &labels, seconds)
            })
            .await;
        if let Err(e) = observed {
            tracing::warn!(error = %e, "cannot record the reconcile pass duration");
        }
        let value = status_value(report, next_at);
        let written = self
            .ledger
            .blocking("record the reconcile status", move |l| {
                l.set_status("gmail-listener", STATUS_KEY, &value, ledger::now())
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot record the reconcile pass on the status page");
        }
    }
}

impl PassReport {
    pub(super) fn failed(mut self, error: String, clock: Instant) -> PassReport {
        self.outcome = Outcome::Failed;
        self.error = Some(error);
        self.duration_ms = elapsed_ms(clock);
        self
    }
}

/// What the status page shows of the last pass.
pub fn status_value(report: &PassReport, next_at: Option<i64>) -> Value {
    json!({
        "at": report.started,
        "kind": report.kind.as_str(),
        "outcome": report.outcome.as_str(),
        "after": report.after,
        "changes": report.changes,
        "pages": report.pages,
        "comment_reads": report.comment_reads,
        "missed_patch_sets": report.missed_patch_sets,
        "missed_commands": report.missed_commands,
        "duration_ms": report.duration_ms,
        "error": report.error,
        "next_at": next_at,
    })
}

pub(super) fn elapsed_ms(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX)
}
