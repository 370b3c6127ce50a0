//! One mail's handling once it is read, parsed and its turn in its
//! change's order has come: Gerrit's facts, the decision, its effects, and
//! the mail's outcome in the ledger. Ledger writes run on the blocking pool
//! ([`Ledger::blocking`](bionicbb_core::ledger::Ledger::blocking)) so the
//! writes of mails handled at once can share commits.

use bionicbb_core::decide::decide;
use bionicbb_core::event::{ChangeFacts, GerritEvent};
use bionicbb_core::ledger::{self, EventDetails, EventRecord, MailDone, metric_names as names};
use bionicbb_core::mail::ParsedMail;
use serde_json::Value;

use super::{Handled, Listener, max_attempts};
use crate::effects::{Applied, Origin};
use crate::facts;

impl Listener {
    /// Handles a mail read and parsed (see [`guard`] for what comes
    /// before) once its turn in its change's order has come. Its in-hand
    /// mark is lifted on entry and set again only while deciding.
    pub(super) async fn handle_parsed(&self, id: &str, parsed: &ParsedMail) -> Handled {
        let event = &parsed.event;
        let cancels = self.has_builds_to_cancel(event).await;
        let facts = match facts::gather_closing(&self.gerrit, event, &self.config, cancels).await {
            Ok(f) => f,
            Err(e) => return self.failed_try(id, format!("asking Gerrit: {e}")).await,
        };
        let window = self.resume(id).await;
        let decisions = decide(event, facts.as_ref(), &self.config);
        // What is left talks to servers about decisions already made.
        self.pause(id, window).await;
        let change = facts
            .as_ref()
            .map(|f| f.number)
            .or(event.change_number)
            .unwrap_or(0);
        let decided = serde_json::to_value(&decisions).unwrap_or_default();
        tracing::info!(
            gmail_id = %id,
            change,
            patch_set = event.patch_set,
            message_type = %event.message_type,
            message_id = parsed.message_id.as_deref().unwrap_or(""),
            decisions = %decided,
            dry_run = self.dry_run,
            "decided"
        );
        let Some(effects) = &self.effects else {
            return Handled::Done;
        };
        let origin = Origin {
            gmail_id: id.to_string(),
            project: event.project.clone(),
            comment_identity: Origin::comment_identity(facts.as_ref()),
            mail_date: event.date,
        };
        let Applied {
            passing,
            summary,
            shown,
        } = effects
            .apply(&decisions, &origin, change, event.patch_set)
            .await;
        if !passing.is_empty() {
            return self.failed_try(id, passing.join("; ")).await;
        }
        let summary = if summary.is_empty() {
            "nothing to do".to_string()
        } else {
            summary.join("; ")
        };
        // One event per handled mail, recorded once its effects are done so
        // the status page shows their outcome (the queue item of a build).
        let record = EventRecord {
            at: ledger::now(),
            source: "gmail".to_string(),
            summary: format!(
                "{} on {} patch set {}",
                event.message_type, change, event.patch_set
            ),
            change_number: Some(change).filter(|c| *c != 0),
            patch_set: Some(event.patch_set),
            decisions: Value::Array(shown),
            details: Some(details(&parsed.event, facts.as_ref())),
        };
        // Counted once the mail is handled, so a mail tried over several
        // polls counts once; all in the write that marks it done.
        let kind = event.message_type.to_string();
        let counters = [
            (names::MAILS_PROCESSED, names::labels(&[])),
            (
                names::EVENTS_RECEIVED,
                names::labels(&[("source", "gmail"), ("type", kind.as_str())]),
            ),
        ];
        let (gmail_id, note, now) = (id.to_string(), summary.clone(), ledger::now());
        let marked = effects
            .ledger
            .blocking("mark a mail done", move |l| {
                let done = MailDone {
                    gmail_id: &gmail_id,
                    summary: &note,
                    counters: &counters,
                    event: &record,
                };
                l.finish_mail(done, now)
            })
            .await;
        if let Err(e) = marked {
            return Handled::Pending(format!("ledger: {e}"));
        }
        tracing::info!(gmail_id = %id, %summary, "mail handled");
        Handled::Done
    }

    /// Whether a mail closing a change is worth a Gerrit request: cancelling
    /// superseded builds is on and the ledger shows builds of the change
    /// the bot may still cancel. A mail without a change number asks
    /// nothing (the change's builds then run on and report without a vote
    /// on the closed change); a ledger that cannot tell asks (the cancel
    /// then waits for the ledger like any effect).
    async fn has_builds_to_cancel(&self, event: &GerritEvent) -> bool {
        if !self.config.jobs.cancel_superseded || !facts::closes_change(event) {
            return false;
        }
        let (Some(change), Some(effects)) = (event.change_number, &self.effects) else {
            return false;
        };
        let listed = effects
            .ledger
            .blocking("list the builds to cancel", move |l| {
                l.cancel_targets(change, None)
            })
            .await;
        match listed {
            Ok(targets) => !targets.is_empty(),
            Err(e) => {
                tracing::warn!(error = %e, change, "cannot list the change's builds to cancel");
                true
            }
        }
    }

    /// Records a failed try; quarantines the mail after
    /// [`max_attempts`] tries.
    pub(super) async fn failed_try(&self, id: &str, error: String) -> Handled {
        let Some(ledger) = self.writer() else {
            return Handled::Pending(error);
        };
        let (gmail_id, why) = (id.to_string(), error.clone());
        let recorded = ledger
            .blocking("record a mail attempt", move |l| {
                l.record_mail_attempt(&gmail_id, &why)
            })
            .await;
        match recorded {
            Ok(n) if n >= max_attempts(self.config.gmail.poll_interval) => {
                tracing::error!(gmail_id = %id, attempts = n, %error, "giving up on the mail");
                self.quarantine(id, &format!("gave up after {n} tries: {error}"))
                    .await
            }
            Ok(_) => Handled::Pending(error),
            Err(e) => Handled::Pending(format!("{error}; ledger: {e}")),
        }
    }

    pub(super) async fn quarantine(&self, id: &str, reason: &str) -> Handled {
        match self.mark_quarantined(id, reason).await {
            Ok(()) => self.moved_to_quarantine(id).await,
            Err(handled) => handled,
        }
    }

    /// Records in the ledger that the mail is quarantined (which clears its
    /// in-hand mark), the first half of [`Listener::quarantine`].
    pub(super) async fn mark_quarantined(&self, id: &str, reason: &str) -> Result<(), Handled> {
        tracing::warn!(gmail_id = %id, %reason, label = %self.config.gmail.quarantine_label, "quarantining the mail");
        let Some(ledger) = self.writer() else {
            return Ok(());
        };
        let (gmail_id, why, now) = (id.to_string(), reason.to_string(), ledger::now());
        ledger
            .blocking("quarantine a mail", move |l| {
                l.mark_mail_quarantined(&gmail_id, &why, now)
            })
            .await
            .map_err(|e| Handled::Pending(format!("ledger: {e}")))?;
        self.count(names::MAILS_QUARANTINED, &[]).await;
        Ok(())
    }

    /// Moves a mail marked quarantined out of the label, the second half of
    /// [`Listener::quarantine`].
    pub(super) async fn moved_to_quarantine(&self, id: &str) -> Handled {
        match self.move_to_quarantine(id).await {
            Ok(()) => Handled::Quarantined,
            Err(e) => Handled::Pending(e),
        }
    }

    /// Moves a mail from the Gerrit label to the quarantine label (never
    /// to the trash: an operator looks at it).
    pub(super) async fn move_to_quarantine(&self, id: &str) -> Result<(), String> {
        if self.dry_run {
            return Ok(());
        }
        let Some(quarantine) = &self.quarantine_id else {
            return Err("no quarantine label".to_string());
        };
        self.mailbox
            .modify(
                id,
                std::slice::from_ref(quarantine),
                std::slice::from_ref(&self.label_id),
            )
            .await
            .map_err(|e| format!("moving the mail to the quarantine label: {e}"))
    }
}

/// What the status page shows of a mail besides its decisions: the change
/// as Gerrit describes it when it was asked (else as the mail does), and
/// who acted.
pub(crate) fn details(event: &GerritEvent, facts: Option<&ChangeFacts>) -> EventDetails {
    let commands = event
        .commands
        .iter()
        .map(|c| {
            let mut text = format!("bionicbb:{}", c.name);
            for arg in &c.args {
                text.push(' ');
                text.push_str(arg);
            }
            text
        })
        .collect();
    EventDetails {
        message_type: Some(event.message_type.to_string()),
        author: event.author.clone(),
        subject: facts.map(|f| f.subject.clone()).filter(|s| !s.is_empty()),
        owner: facts
            .and_then(|f| f.owner.clone())
            .or_else(|| event.owner.clone()),
        project: Some(facts.map_or(&event.project, |f| &f.project).clone()),
        branch: Some(facts.map_or(&event.branch, |f| &f.branch).clone()),
        commands,
    }
}

#[cfg(test)]
mod tests {
    use bionicbb_core::event::{ChangeStatus, Command, GerritEvent, MessageType};

    use super::*;

    fn comment() -> ParsedMail {
        ParsedMail {
            event: GerritEvent {
                message_type: MessageType::Comment,
                change_id: "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b".into(),
                change_number: Some(123456),
                patch_set: 2,
                project: "platform/bionic".into(),
                branch: "master".into(),
                owner: Some("Dana Dev <dana@example.com>".into()),
                author: Some("Sam Reviewer".into()),
                comment_date: None,
                date: None,
                votes: Vec::new(),
                commands: vec![
                    Command {
                        name: "retry".into(),
                        args: Vec::new(),
                    },
                    Command {
                        name: "clean".into(),
                        args: vec!["aosp_arm-eng".into()],
                    },
                ],
            },
            message_id: None,
            subject: Some("Change in platform/bionic[master]: Fix strtod".into()),
            from: None,
            removed_votes: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn the_status_page_gets_the_change_as_gerrit_describes_it_and_who_acted() {
        let facts = ChangeFacts {
            number: 123456,
            project: "platform/bionic".into(),
            branch: "master".into(),
            status: ChangeStatus::New,
            current_patch_set: 2,
            patch_set_ref: None,
            committer_email: None,
            files: Vec::new(),
            comment: None,
            subject: "Fix strtod rounding for denormals".into(),
            owner: Some("Dana Dev".into()),
            upload: Default::default(),
            vouch: None,
        };
        let d = details(&comment().event, Some(&facts));
        assert_eq!(d.message_type.as_deref(), Some("comment"));
        assert_eq!(d.author.as_deref(), Some("Sam Reviewer"));
        assert_eq!(
            d.subject.as_deref(),
            Some("Fix strtod rounding for denormals")
        );
        assert_eq!(d.owner.as_deref(), Some("Dana Dev"));
        assert_eq!(d.project.as_deref(), Some("platform/bionic"));
        assert_eq!(d.branch.as_deref(), Some("master"));
        assert_eq!(
            d.commands,
            ["bionicbb:retry", "bionicbb:clean aosp_arm-eng"]
        );
    }

    #[test]
    fn without_gerrit_the_mail_names_the_change() {
        let d = details(&comment().event, None);
        assert_eq!(d.subject, None);
        assert_eq!(d.owner.as_deref(), Some("Dana Dev <dana@example.com>"));
        assert_eq!(d.project.as_deref(), Some("platform/bionic"));
    }
}
