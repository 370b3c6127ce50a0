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
mod handle;
mod query;
mod report;
mod schedule;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bionicbb_core::config::Config;
use bionicbb_core::gerrit::{ChangeInfo, GerritClient};
use bionicbb_core::ledger::{self, Ledger};
use tokio::sync::watch;

pub use found::{Found, Kind};
pub use report::{Outcome, PassReport, status_value};
pub use schedule::{Cursor, HORIZON, OVERLAP, PassKind, Schedule, Window};

use crate::effects::Effects;
use report::elapsed_ms;

/// The status table key of the cursor (component `gmail-listener`).
pub const CURSOR_KEY: &str = "reconcile_cursor";
/// The status table key of the last pass, for the status page.
pub const STATUS_KEY: &str = "reconcile";

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
    async fn pass(
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

    async fn save_cursor(&self, cursor: Cursor) -> ledger::Result<()> {
        let value = cursor.to_value();
        self.ledger
            .blocking("save the reconcile cursor", move |l| {
                l.set_status("gmail-listener", CURSOR_KEY, &value, ledger::now())
            })
            .await
    }
}

/// The stored cursor; `None` when there is none yet (or what is stored is
/// not one: then the next pass starts afresh, as a first one).
fn read_cursor(ledger: &Ledger) -> ledger::Result<Option<Cursor>> {
    let status = ledger.status("gmail-listener")?;
    Ok(status.get(CURSOR_KEY).and_then(Cursor::from_value))
}
