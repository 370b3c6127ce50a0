//! Reconciling with Gerrit: mail is only a hint.
//!
//! Between two polls, every `gerrit.reconcile_interval`, a pass asks Gerrit
//! (REST only) for the open changes of the configured projects updated
//! since the last pass ([`schedule`] says which pass and what it looks at;
//! [`query`] writes the queries), reads every page, then hands each change
//! to the same policy as a mail: its current patch set as a `newpatchset`,
//! each newer message with `bionicbb:` commands as a `comment` ([`found`]),
//! with facts built from the query's answer by the mail path's own
//! function, decided by the same `decide` and done through the same
//! [`Effects`] and ledger keys. So a patch set or a command that mail and
//! reconcile both see happens once, whichever comes first; and one whose
//! mail never came is caught by the next pass.
//!
//! A pass runs in the poll loop's task, so it never races the handling of
//! a mail. It stops at the first passing fault (Gerrit, Jenkins or the
//! ledger away, or the daemon stopping): the rest waits for the next pass,
//! and the cursor stays where it was so that pass looks at the same
//! changes again. A Gerrit outage delays reconciling and nothing else.
//!
//! Each pass is one log line, counters and a histogram in the ledger
//! (`/metrics`), and the status key `reconcile` of `gmail-listener` (the
//! status page); what it found that no mail had delivered is counted in
//! `reconcile_missed_total`, logged, and recorded as an event.

mod found;
mod query;
mod schedule;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bionicbb_core::config::Config;
use bionicbb_core::decide::decide;
use bionicbb_core::error::ErrorKind;
use bionicbb_core::gerrit::{ChangeInfo, ChangeRef, GerritClient};
use bionicbb_core::ledger::{self, EventRecord, Ledger, metric_names as names};
use serde_json::{Value, json};
use tokio::sync::watch;

pub use found::{Found, Kind};
pub use schedule::{Cursor, HORIZON, OVERLAP, PassKind, Schedule, Window};

use crate::effects::{Effects, Origin};
use crate::facts::{self, Comments};

/// The status table key of the cursor (component `gmail-listener`).
pub const CURSOR_KEY: &str = "reconcile_cursor";
/// The status table key of the last pass, for the status page.
pub const STATUS_KEY: &str = "reconcile";

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

/// The reconcile passes of one process.
pub struct Reconciler {
    config: Arc<Config>,
    gerrit: GerritClient,
    ledger: Ledger,
    once: bool,
    schedule: Mutex<Schedule>,
}

impl Reconciler {
    /// The passes of a process starting now (`once`: one pass, see
    /// [`Schedule::new`]); `None` when reconciling is off.
    pub fn new(
        config: Arc<Config>,
        gerrit: GerritClient,
        ledger: Ledger,
        once: bool,
    ) -> Option<Reconciler> {
        let interval = config.gerrit.reconcile_interval;
        if interval.is_zero() {
            tracing::info!("reconciling with Gerrit is off (gerrit.reconcile_interval = \"0\")");
            return None;
        }
        let cursor = read_cursor(&ledger).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the reconcile cursor");
            None
        });
        let schedule = Schedule::new(
            interval,
            config.gerrit.reconcile_full_interval,
            cursor,
            once,
            ledger::now(),
        );
        Some(Reconciler {
            config,
            gerrit,
            ledger,
            once,
            schedule: Mutex::new(schedule),
        })
    }

    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the pass due now, if one is; see the module documentation.
    pub async fn run_if_due(&self, effects: &Effects, stop: &watch::Receiver<bool>) {
        let Some(kind) = self.schedule().due(ledger::now()) else {
            return;
        };
        let report = self.pass(kind, effects, stop).await;
        let next_at = {
            let mut schedule = self.schedule();
            schedule.record(report.kind, report.started, report.outcome.through());
            (!self.once).then(|| schedule.next_at())
        };
        self.record(&report, next_at).await;
    }

    /// One pass of `kind`.
    pub async fn pass(
        &self,
        kind: PassKind,
        effects: &Effects,
        stop: &watch::Receiver<bool>,
    ) -> PassReport {
        let clock = Instant::now();
        let started = ledger::now();
        let mut report = PassReport {
            kind,
            outcome: Outcome::Ok,
            started,
            after: None,
            pages: 0,
            comment_reads: 0,
            changes: 0,
            missed_patch_sets: 0,
            missed_commands: 0,
            duration_ms: 0,
            error: None,
        };
        let cursor = match read_cursor(&self.ledger) {
            Err(e) => return report.failed(format!("ledger: {e}"), clock),
            Ok(Some(cursor)) => cursor,
            Ok(None) => {
                let first = Cursor::first(started);
                if let Err(e) = self.save_cursor(first).await {
                    return report.failed(format!("ledger: {e}"), clock);
                }
                first
            }
        };
        if cursor.since.is_none() {
            // Nothing to follow yet: whatever was asked, this pass is full.
            report.kind = PassKind::Full;
        }
        let window = schedule::window(report.kind, cursor, started);
        report.after = window.after;
        let changes = match self.collect(&window, &mut report).await {
            Ok(changes) => changes,
            Err(e) => return report.failed(e, clock),
        };
        for change in &changes {
            if *stop.borrow() {
                report.outcome = Outcome::Stopped;
                break;
            }
            report.changes += 1;
            if let Err(e) = self.change(change, &window, effects, &mut report).await {
                report.outcome = Outcome::Incomplete;
                report.error = Some(e);
                break;
            }
        }
        if report.outcome.through()
            && let Err(e) = self
                .save_cursor(cursor.advanced(report.kind, started))
                .await
        {
            report.outcome = Outcome::Incomplete;
            report.error = Some(format!("ledger: {e}"));
        }
        report.duration_ms = elapsed_ms(clock);
        report
    }

    /// Every page of every query of the pass, each change once, at most
    /// `gerrit.reconcile_limit` of them (the outcome says when some were
    /// left out). `Err` when Gerrit could not be asked.
    async fn collect(
        &self,
        window: &Window,
        report: &mut PassReport,
    ) -> Result<Vec<ChangeInfo>, String> {
        let limit = self.config.gerrit.reconcile_limit;
        let projects: Vec<Option<String>> = match query::projects(&self.config.jobs) {
            None => vec![None],
            Some(list) => list.into_iter().map(Some).collect(),
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        'projects: for project in &projects {
            let q = match query::changes(project.as_deref(), window.after) {
                Ok(q) => q,
                Err(e) => {
                    tracing::warn!(error = %e, "reconcile: leaving the project out");
                    continue;
                }
            };
            let mut start = 0;
            loop {
                if out.len() >= limit {
                    report.outcome = Outcome::Truncated;
                    break 'projects;
                }
                let n = query::PAGE.min(limit - out.len());
                let page = self
                    .gerrit
                    .query_changes(&q, &query::OPTIONS, n, start)
                    .await
                    .map_err(|e| format!("asking Gerrit: {e}"))?;
                report.pages += 1;
                let more = page.last().is_some_and(|c| c.more_changes);
                start += page.len();
                let empty = page.is_empty();
                // Offset paging may repeat a change updated in between.
                out.extend(page.into_iter().filter(|c| seen.insert(c.number)));
                if !more || empty {
                    break;
                }
            }
        }
        if report.outcome == Outcome::Truncated {
            tracing::warn!(
                limit,
                "reconcile: the pass reached gerrit.reconcile_limit; less recently updated \
                 changes were left out"
            );
        }
        Ok(out)
    }

    /// Handles every event of one change; `Err` at a passing fault.
    async fn change(
        &self,
        change: &ChangeInfo,
        window: &Window,
        effects: &Effects,
        report: &mut PassReport,
    ) -> Result<(), String> {
        let target = match ChangeRef::project_number(&change.project, change.number) {
            Ok(target) => target,
            Err(e) => {
                tracing::warn!(change = change.number, error = %e, "reconcile: skipping the change");
                return Ok(());
            }
        };
        let gerrit_config = &self.config.gerrit;
        let comments = if found::needs_comments(change, window.messages_since, gerrit_config) {
            report.comment_reads += 1;
            match self.gerrit.comments(&target).await {
                Ok(comments) => comments,
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(format!("reading the comments of {target}: {e}")),
            }
        } else {
            Comments::new()
        };
        let events = found::events(
            change,
            window.patch_sets_since,
            window.messages_since,
            &comments,
            gerrit_config,
        );
        for found in events {
            self.event(change, &target, found, effects, report).await?;
        }
        Ok(())
    }

    /// Decides one event as a mail's and does what it calls for.
    async fn event(
        &self,
        change: &ChangeInfo,
        target: &ChangeRef,
        found: Found,
        effects: &Effects,
        report: &mut PassReport,
    ) -> Result<(), String> {
        let ps = found.event.patch_set;
        let mut details = None;
        if ps == facts::current_patch_set(change)
            && let Some((_, revision)) = change.revision(ps)
        {
            match facts::patch_set_details(&self.gerrit, target, ps, revision).await {
                Ok(Some(d)) => details = Some(d),
                Ok(None) => return Ok(()), // the change vanished
                Err(e) => return Err(format!("asking Gerrit about {target}: {e}")),
            }
        }
        let facts = facts::from_change(change, ps, details, found.comment);
        let decisions = decide(&found.event, Some(&facts), &self.config);
        let origin = Origin {
            gmail_id: "reconcile".to_string(),
            project: change.project.clone(),
            comment_identity: Origin::comment_identity(Some(&facts)),
            mail_date: None,
        };
        let keys: Vec<_> = decisions
            .iter()
            .filter_map(|d| Effects::key(d, &origin, change.number, ps))
            .collect();
        let fresh = self
            .ledger
            .blocking("look up effects", move |l| {
                for key in &keys {
                    if !l.effect_begun(key)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
            .await
            .map_err(|e| format!("ledger: {e}"))?;
        let applied = effects.apply(&decisions, &origin, change.number, ps).await;
        let decided = serde_json::to_value(&decisions).unwrap_or_default();
        if fresh {
            match found.kind {
                Kind::PatchSet => report.missed_patch_sets += 1,
                Kind::Command => report.missed_commands += 1,
            }
            tracing::info!(
                change = change.number,
                patch_set = ps,
                kind = found.kind.as_str(),
                decisions = %decided,
                summary = %applied.summary.join("; "),
                "reconcile found what no mail delivered"
            );
            self.bump(names::RECONCILE_MISSED, &[("kind", found.kind.as_str())], 1)
                .await;
            let record = EventRecord {
                at: ledger::now(),
                source: "reconcile".to_string(),
                summary: format!(
                    "{} on {} patch set {ps}, found by reconcile",
                    found.event.message_type, change.number
                ),
                change_number: Some(change.number),
                patch_set: Some(ps),
                decisions: Value::Array(applied.shown.clone()),
            };
            let recorded = self
                .ledger
                .blocking("record an event", move |l| l.record_event(&record))
                .await;
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "cannot record the event for the status page");
            }
        } else {
            tracing::debug!(
                change = change.number,
                patch_set = ps,
                kind = found.kind.as_str(),
                decisions = %decided,
                "reconcile: already handled"
            );
        }
        if applied.passing.is_empty() {
            Ok(())
        } else {
            Err(applied.passing.join("; "))
        }
    }

    async fn save_cursor(&self, cursor: Cursor) -> ledger::Result<()> {
        let value = cursor.to_value();
        self.ledger
            .blocking("save the reconcile cursor", move |l| {
                l.set_status("gmail-listener", CURSOR_KEY, &value, ledger::now())
            })
            .await
    }

    async fn bump(&self, name: &'static str, labels: &[(&str, &str)], by: u64) {
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
    async fn record(&self, report: &PassReport, next_at: Option<i64>) {
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
    fn failed(mut self, error: String, clock: Instant) -> PassReport {
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

/// The stored cursor; `None` when there is none yet (or what is stored is
/// not one: then the next pass starts afresh, as a first one).
fn read_cursor(ledger: &Ledger) -> ledger::Result<Option<Cursor>> {
    let status = ledger.status("gmail-listener")?;
    Ok(status.get(CURSOR_KEY).and_then(Cursor::from_value))
}

fn elapsed_ms(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX)
}
