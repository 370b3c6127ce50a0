//! One change found by a reconcile pass: its events ([`super::found`]),
//! each decided as a mail's would be and done through the same effects,
//! and what no mail had delivered counted, logged and recorded.

use bionicbb_core::decide::decide;
use bionicbb_core::error::ErrorKind;
use bionicbb_core::gerrit::{ChangeInfo, ChangeRef};
use bionicbb_core::ledger::{self, EventRecord, metric_names as names};
use serde_json::Value;

use super::found::{self, Found, Kind};
use super::{PassReport, Reconciler, Window};
use crate::effects::{Effects, Origin};
use crate::facts::{self, Comments};

impl Reconciler {
    /// Handles every event of one change; `Err` at a passing fault.
    pub(super) async fn change(
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
        let mut facts = facts::from_change(change, ps, details, found.comment, &self.config);
        if facts::vouch_hidden_in_comments(change, &facts, ps, &self.config) {
            report.comment_reads += 1;
            match self.gerrit.comments(target).await {
                Ok(comments) => {
                    let comment = facts.comment.as_ref();
                    facts.vouch = facts::vouch_on(change, ps, comment, &comments, &self.config);
                }
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(format!("reading the comments of {target}: {e}")),
            }
        }
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
                details: Some(crate::poll::event_details(&found.event, Some(&facts))),
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
}
