//! The poll loop: list the label, handle each mail in arrival order, and
//! take every handled mail out of the label. One bad mail, a network error
//! or a Gmail outage never stops the loop; a mail whose handling hit a
//! passing fault stays for the next poll. Not even a mail that kills the
//! process can stop it: see [`guard`].

mod guard;

use std::sync::Arc;

use bionicbb_core::config::Config;
use bionicbb_core::decide::decide;
use bionicbb_core::error::ErrorKind;
use bionicbb_core::event::Decision;
use bionicbb_core::gerrit::GerritClient;
use bionicbb_core::ledger::{self, EventRecord, Ledger, metric_names as names};
use bionicbb_core::mail;
pub use guard::MAX_DEATHS;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::effects::{Effects, Origin, Outcome};
use crate::facts;
use crate::gmail::Mailbox;
use crate::health::{Health, PollStatus};

/// After this many failed tries a mail is quarantined with its last error.
/// Only passing faults (a Gerrit, Jenkins or build-listener outage) leave a
/// mail pending, so the limit is generous: a week of polls at the default
/// five-minute interval. An outage of hours must not cost a build.
pub const MAX_ATTEMPTS: u32 = 7 * 24 * 12;

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    /// Mails listed in the label.
    pub mails: usize,
    pub done: usize,
    pub quarantined: usize,
    /// Mails left for the next poll because of a passing fault.
    pub pending: usize,
    /// Why Gmail could not be listed, if it could not.
    pub list_error: Option<String>,
}

impl PollReport {
    pub fn ok(&self) -> bool {
        self.list_error.is_none() && self.pending == 0
    }

    /// The poll as the health endpoint and the status page show it.
    pub fn status(&self, at: i64) -> PollStatus {
        let error = self.list_error.clone().or_else(|| {
            (self.pending > 0).then(|| format!("{} mails left for the next poll", self.pending))
        });
        PollStatus {
            at,
            ok: self.ok(),
            mails: self.mails,
            error,
            listed: self.list_error.is_none(),
        }
    }
}

/// What became of one mail.
enum Handled {
    Done,
    Quarantined,
    Pending(String),
}

/// The running listener.
pub struct Listener {
    config: Arc<Config>,
    mailbox: Mailbox,
    gerrit: GerritClient,
    /// `None` in a dry run when no ledger exists yet (nothing was handled).
    ledger: Option<Ledger>,
    /// `None` in a dry run: nothing is done.
    effects: Option<Effects>,
    label_id: String,
    quarantine_id: Option<String>,
    dry_run: bool,
}

/// A start-up failure; the message says what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

impl Listener {
    /// Opens the ledger and the clients and resolves the labels. The Gmail
    /// label must exist; the quarantine label is created (except in a dry
    /// run, which creates nothing).
    pub async fn start(config: Arc<Config>, dry_run: bool) -> Result<Listener, StartError> {
        let ledger_path = config.ledger_path();
        let ledger = if dry_run && !ledger_path.exists() {
            None
        } else {
            Some(Ledger::open(&ledger_path).map_err(|e| StartError(format!("ledger: {e}")))?)
        };
        let gerrit = bionicbb_core::runtime::gerrit_client(&config)
            .map_err(|e| StartError(e.to_string()))?;
        let jenkins = bionicbb_core::runtime::jenkins_client(&config)
            .map_err(|e| StartError(e.to_string()))?;
        let http = bionicbb_core::http::client(
            bionicbb_core::error::Service::BuildListener,
            config.gerrit.timeout,
            false,
        )
        .map_err(|e| StartError(format!("HTTP client: {e}")))?;
        let mailbox = Mailbox::from_config(&config.gmail)
            .await
            .map_err(|e| StartError(e.to_string()))?;
        let label_id = mailbox
            .label_id(&config.gmail.label)
            .await
            .map_err(|e| StartError(format!("Gmail label `{}`: {e}", config.gmail.label)))?;
        let quarantine = &config.gmail.quarantine_label;
        let quarantine_id = if dry_run {
            mailbox.label_id(quarantine).await.ok()
        } else {
            Some(
                mailbox
                    .ensure_label(quarantine)
                    .await
                    .map_err(|e| StartError(format!("Gmail label `{quarantine}`: {e}")))?,
            )
        };
        let effects = match (&ledger, dry_run) {
            (Some(ledger), false) => Some(Effects {
                config: config.clone(),
                ledger: ledger.clone(),
                gerrit: gerrit.clone(),
                jenkins,
                http,
            }),
            _ => None,
        };
        Ok(Listener {
            config,
            mailbox,
            gerrit,
            ledger,
            effects,
            label_id,
            quarantine_id,
            dry_run,
        })
    }

    /// Polls until `stop` turns true (or once), recording each poll in
    /// `health`. Tells systemd the daemon is ready once the first poll has
    /// finished, whatever its outcome: the label was resolved at start, so
    /// the mailbox works, and a later outage shows on the health endpoint.
    /// Returns true when the last poll went well.
    pub async fn run(&self, once: bool, mut stop: watch::Receiver<bool>, health: &Health) -> bool {
        let mut first = true;
        loop {
            let report = self.poll(&stop).await;
            let ok = report.ok();
            let now = ledger::now();
            let next = (!once).then(|| now + self.config.gmail.poll_interval.as_secs() as i64);
            let status = report.status(now);
            health.record(status.clone(), next);
            self.record_status(&status, next);
            if first {
                first = false;
                bionicbb_core::runtime::notify_ready();
            }
            tracing::info!(
                mails = report.mails,
                done = report.done,
                quarantined = report.quarantined,
                pending = report.pending,
                ok,
                "poll finished"
            );
            if once || *stop.borrow() {
                return ok;
            }
            let wait = tokio::time::sleep(self.config.gmail.poll_interval);
            tokio::select! {
                _ = wait => {}
                _ = stop.wait_for(|s| *s) => return ok,
            }
        }
    }

    /// One poll over every mail in the label, oldest first; stops between
    /// mails when `stop` turns true.
    pub async fn poll(&self, stop: &watch::Receiver<bool>) -> PollReport {
        let mut report = PollReport::default();
        let ids = match self.mailbox.list_all(&self.label_id).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the Gmail label; trying again next poll");
                report.list_error = Some(e.to_string());
                self.count(names::FAILURES, &[("component", "gmail-listener")]);
                return report;
            }
        };
        report.mails = ids.len();
        for id in ids {
            if *stop.borrow() {
                tracing::info!("shutting down: the remaining mails wait for the next start");
                break;
            }
            match self.handle(&id).await {
                Handled::Done => report.done += 1,
                Handled::Quarantined => report.quarantined += 1,
                Handled::Pending(why) => {
                    tracing::warn!(gmail_id = %id, error = %why, "mail left for the next poll");
                    report.pending += 1;
                }
            }
        }
        report
    }

    /// Handles a mail read from Gmail (see [`guard`] for what comes before).
    async fn handle_raw(&self, id: &str, raw: &[u8]) -> Handled {
        let parsed = match mail::parse(raw) {
            Ok(p) => p,
            Err(e) => return self.quarantine(id, &format!("unreadable mail: {e}")).await,
        };
        let event = &parsed.event;
        self.waiting(id, true);
        let facts = match facts::gather(&self.gerrit, event).await {
            Ok(f) => f,
            Err(e) => return self.failed_try(id, format!("asking Gerrit: {e}")).await,
        };
        self.waiting(id, false);
        let decisions = decide(event, facts.as_ref(), &self.config);
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
        // What is left talks to servers about decisions already made.
        self.waiting(id, true);
        let origin = Origin {
            gmail_id: id.to_string(),
            project: event.project.clone(),
            comment_identity: Origin::comment_identity(facts.as_ref()),
            mail_date: event.date,
        };
        let mut passing = Vec::new();
        let mut summary = Vec::new();
        // The decisions as the status page shows them, with what became of each.
        let mut shown = Vec::with_capacity(decisions.len());
        for decision in &decisions {
            let mut entry = serde_json::to_value(decision).unwrap_or_default();
            if matches!(decision, Decision::Skip { .. }) {
                shown.push(entry);
                continue;
            }
            let (result, queue_url) = match effects
                .run(decision, &origin, change, event.patch_set)
                .await
            {
                Outcome::Done(what) => (what, None),
                Outcome::Triggered { what, queue_url } => (what, Some(queue_url)),
                Outcome::Failed(why) => {
                    self.count(names::FAILURES, &[("component", "gmail-listener")]);
                    (format!("failed for good: {why}"), None)
                }
                Outcome::Passing(why) => {
                    passing.push(why);
                    continue;
                }
            };
            if let Value::Object(map) = &mut entry {
                map.insert("result".into(), json!(result));
                if let Some(url) = queue_url {
                    map.insert("queue_url".into(), json!(url));
                }
            }
            summary.push(result);
            shown.push(entry);
        }
        if !passing.is_empty() {
            return self.failed_try(id, passing.join("; ")).await;
        }
        let summary = if summary.is_empty() {
            "nothing to do".to_string()
        } else {
            summary.join("; ")
        };
        if let Err(e) = effects.ledger.mark_mail_done(id, &summary, ledger::now()) {
            return Handled::Pending(format!("ledger: {e}"));
        }
        // Counted once the mail is handled, so a mail tried over several
        // polls counts once.
        self.count(names::MAILS_PROCESSED, &[]);
        let kind = event.message_type.to_string();
        self.count(
            names::EVENTS_RECEIVED,
            &[("source", "gmail"), ("type", kind.as_str())],
        );
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
        };
        if let Err(e) = effects.ledger.record_event(&record) {
            tracing::warn!(error = %e, "cannot record the event for the status page");
        }
        tracing::info!(gmail_id = %id, %summary, "mail handled");
        self.trash(id).await
    }

    /// Records a failed try; quarantines the mail after [`MAX_ATTEMPTS`].
    async fn failed_try(&self, id: &str, error: String) -> Handled {
        let Some(ledger) = self.effects.as_ref().map(|e| &e.ledger) else {
            return Handled::Pending(error);
        };
        match ledger.record_mail_attempt(id, &error) {
            Ok(n) if n >= MAX_ATTEMPTS => {
                tracing::error!(gmail_id = %id, attempts = n, %error, "giving up on the mail");
                self.quarantine(id, &format!("gave up after {n} tries: {error}"))
                    .await
            }
            Ok(_) => Handled::Pending(error),
            Err(e) => Handled::Pending(format!("{error}; ledger: {e}")),
        }
    }

    async fn quarantine(&self, id: &str, reason: &str) -> Handled {
        tracing::warn!(gmail_id = %id, %reason, label = %self.config.gmail.quarantine_label, "quarantining the mail");
        let Some(effects) = &self.effects else {
            return Handled::Quarantined;
        };
        if let Err(e) = effects
            .ledger
            .mark_mail_quarantined(id, reason, ledger::now())
        {
            return Handled::Pending(format!("ledger: {e}"));
        }
        self.count(names::MAILS_QUARANTINED, &[]);
        match self.move_to_quarantine(id).await {
            Ok(()) => Handled::Quarantined,
            Err(e) => Handled::Pending(e),
        }
    }

    /// Moves a mail from the Gerrit label to the quarantine label (never
    /// to the trash: an operator looks at it).
    async fn move_to_quarantine(&self, id: &str) -> Result<(), String> {
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

    async fn trash(&self, id: &str) -> Handled {
        if self.dry_run {
            return Handled::Done;
        }
        match self.mailbox.trash(id).await {
            Ok(()) => Handled::Done,
            Err(e) if e.kind == ErrorKind::NotFound => Handled::Done,
            Err(e) => Handled::Pending(format!("handled, but trashing it failed: {e}")),
        }
    }

    /// Bumps a counter (nothing in a dry run).
    fn count(&self, name: &str, labels: &[(&str, &str)]) {
        if let Some(ledger) = self.effects.as_ref().map(|e| &e.ledger)
            && let Err(e) = ledger.bump_counter(name, &names::labels(labels), 1)
        {
            tracing::warn!(error = %e, counter = name, "cannot bump the counter");
        }
    }

    fn record_status(&self, status: &PollStatus, next: Option<i64>) {
        let Some(ledger) = self.effects.as_ref().map(|e| &e.ledger) else {
            return;
        };
        let now = status.at;
        let last = serde_json::to_value(status).unwrap_or_default();
        let mut results = vec![ledger.set_status("gmail-listener", "last_poll", &last, now)];
        if let Some(next) = next {
            results.push(ledger.set_status(
                "gmail-listener",
                "next_poll",
                &json!({ "at": next }),
                now,
            ));
        }
        for r in results {
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot record the poll status");
            }
        }
    }
}
