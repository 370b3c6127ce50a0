//! Doing what the policy decided, each effect once: every effect is keyed in
//! the ledger before it runs and marked after, so a crash, a timeout or a
//! second mail about the same event never builds or replies twice, and a
//! passing fault never loses an effect (the mail stays for the next poll).

use std::collections::BTreeMap;

use bionicbb_core::config::Config;
use bionicbb_core::error::{ApiError, ErrorKind};
use bionicbb_core::event::Decision;
use bionicbb_core::gerrit::{ChangeRef, GerritClient, Notify, QueryOption, ReviewInput, Revision};
use bionicbb_core::jenkins::{JenkinsClient, JobPath};
use bionicbb_core::ledger::{self, Begin, EffectKey, Ledger, metric_names as names};

use crate::lost_trigger::{self, Found, TriggerFailure};
use serde_json::{Value, json};

/// What became of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done now or before (or nothing to do): what happened, for the log.
    Done(String),
    /// A build queued on Jenkins (now or before): what happened, and the
    /// queue item's URL for the status page.
    Triggered { what: String, queue_url: String },
    /// Refused for good (an unknown job, a rejected request): it can never
    /// be done, so the mail does not wait for it.
    Failed(String),
    /// A passing fault: the mail stays in the label and the next poll tries
    /// again (the ledger makes the retry safe).
    Passing(String),
}

/// Where an effect comes from: the mail and, for comments, the identity of
/// the comment (its date, else the mail's Message-ID), which tells a new
/// `retry` from a second mail about the same comment.
#[derive(Debug, Clone)]
pub struct Origin {
    pub gmail_id: String,
    pub project: String,
    pub comment_identity: Option<String>,
    /// The notification's `Date:` (unix seconds), for the mail-to-trigger
    /// latency; `None` when the mail had none.
    pub mail_date: Option<i64>,
}

/// The clients and the ledger effects are done with.
pub struct Effects {
    pub config: std::sync::Arc<Config>,
    pub ledger: Ledger,
    pub gerrit: GerritClient,
    pub jenkins: JenkinsClient,
    /// For the build-listener's `/drop-rejection`.
    pub http: reqwest::Client,
}

fn passing_ledger(e: ledger::LedgerError) -> Outcome {
    Outcome::Passing(format!("ledger: {e}"))
}

/// Gerrit errors after which posting again cannot help.
fn gerrit_permanent(e: &ApiError) -> bool {
    matches!(
        e.kind,
        ErrorKind::NotFound
            | ErrorKind::Rejected
            | ErrorKind::InvalidInput
            | ErrorKind::Conflict
            | ErrorKind::Forbidden
    )
}

impl Effects {
    /// Does one decision; see [`Outcome`].
    pub async fn run(&self, decision: &Decision, origin: &Origin, change: u64, ps: u32) -> Outcome {
        match decision {
            Decision::Skip { reason } => Outcome::Done(format!("skipped: {reason}")),
            Decision::Build { job, params, .. } | Decision::Clean { job, params } => {
                let mut key = EffectKey::build(change, ps, job, params);
                if let Some(identity) = &origin.comment_identity {
                    key = key.with(identity);
                }
                self.build(&key, job, params, origin.mail_date).await
            }
            Decision::Reply {
                change_number,
                patch_set,
                message,
            } => {
                let discriminator = origin
                    .comment_identity
                    .clone()
                    .unwrap_or_else(|| origin.gmail_id.clone());
                let key = EffectKey::reply(*change_number, *patch_set, &discriminator);
                let target = ChangeRef::project_number(&origin.project, *change_number);
                match target {
                    Ok(target) => self.reply(&key, &target, *patch_set, message).await,
                    Err(e) => Outcome::Failed(format!("reply: invalid change: {e}")),
                }
            }
            Decision::DropRejection {
                change_number,
                patch_set,
            } => {
                let discriminator = origin
                    .comment_identity
                    .clone()
                    .unwrap_or_else(|| origin.gmail_id.clone());
                let key = EffectKey::drop_rejection(*change_number, *patch_set, &discriminator);
                let change_id = format!("{}~{change_number}", origin.project);
                self.drop_rejection(&key, &change_id, *patch_set).await
            }
        }
    }

    async fn build(
        &self,
        key: &EffectKey,
        job: &str,
        params: &BTreeMap<String, String>,
        mail_date: Option<i64>,
    ) -> Outcome {
        let payload = json!({ "job": job, "params": params });
        let in_doubt_since = match self
            .ledger
            .begin_effect(key, "build", &payload, ledger::now())
        {
            Err(e) => return passing_ledger(e),
            Ok(Begin::AlreadyDone { result }) => {
                let what = format!("{job}: already triggered ({result})");
                return self.triggered(what, &result);
            }
            Ok(Begin::InDoubt {
                result_so_far: Some(progress),
                ..
            }) if progress.get("queue_id").is_some() => {
                // The trigger answered before the crash: the build is queued.
                return match self.ledger.finish_effect(key, &progress, ledger::now()) {
                    Ok(()) => {
                        self.triggered(format!("{job}: was triggered ({progress})"), &progress)
                    }
                    Err(e) => passing_ledger(e),
                };
            }
            Ok(Begin::InDoubt { started_at, .. }) => Some(started_at),
            Ok(Begin::New) => None,
        };
        let path = match JobPath::parse(job) {
            Ok(p) => p,
            Err(e) => return self.fail(key, format!("{job}: invalid job name: {e}")),
        };
        if let Some(started_at) = in_doubt_since {
            // An earlier trigger's answer was lost: ask Jenkins before
            // triggering again (see `lost_trigger`).
            let found = match self.look_for_lost_trigger(&path, params, started_at).await {
                Ok(found) => found,
                Err(e) => {
                    return Outcome::Passing(format!(
                        "{job}: looking for the build an earlier trigger may have started: {e}"
                    ));
                }
            };
            if let Some(result) = found.result() {
                tracing::info!(%job, ?found, "found the build the lost answer had started");
                if let Err(e) = self.ledger.record_effect_progress(key, &result) {
                    return passing_ledger(e);
                }
                if let Err(e) = self.ledger.finish_effect(key, &result, ledger::now()) {
                    return passing_ledger(e);
                }
                self.count_trigger(job, mail_date);
                return self.triggered(format!("{job}: was triggered ({result})"), &result);
            }
            tracing::info!(
                %job, started_at,
                "an earlier trigger of this build had an unknown outcome, and Jenkins has no such \
                 item or build: triggering it again"
            );
        }
        match self.jenkins.trigger(&path, params).await {
            Ok(id) => {
                let result = json!({ "queue_id": id.0 });
                if let Err(e) = self.ledger.record_effect_progress(key, &result) {
                    return passing_ledger(e);
                }
                if let Err(e) = self.ledger.finish_effect(key, &result, ledger::now()) {
                    return passing_ledger(e);
                }
                self.count_trigger(job, mail_date);
                tracing::info!(%job, queue_item = id.0, "build triggered");
                self.triggered(format!("{job}: queued as item {id}"), &result)
            }
            Err(e) => match lost_trigger::classify(&e) {
                TriggerFailure::Permanent => {
                    tracing::error!(%job, error = %e, "Jenkins refused the build for good");
                    self.fail(key, format!("{job}: {e}"))
                }
                TriggerFailure::NotQueued => {
                    // Jenkins answered with an error: nothing was queued,
                    // free the key for the next poll.
                    if let Err(le) = self.ledger.fail_effect(key, &e.to_string()) {
                        return passing_ledger(le);
                    }
                    Outcome::Passing(format!("{job}: {e}"))
                }
                TriggerFailure::Unknown => {
                    // Maybe queued: leave the effect started. It comes back
                    // in doubt, and the next poll asks Jenkins first.
                    tracing::warn!(
                        %job, error = %e,
                        "the trigger's answer was lost; the next poll looks for the build \
                         before triggering again"
                    );
                    Outcome::Passing(format!("{job}: {e}"))
                }
            },
        }
    }

    /// Asks Jenkins for what an earlier trigger, begun at `started_at`
    /// (unix seconds), left: an item still waiting with our parameters, else
    /// a build with them that started since.
    async fn look_for_lost_trigger(
        &self,
        path: &JobPath,
        params: &BTreeMap<String, String>,
        started_at: i64,
    ) -> Result<Found, ApiError> {
        let queued = self.jenkins.find_queued(path, params).await?;
        if queued.is_some() {
            return Ok(Found::from_lookups(queued, None));
        }
        let since_ms = started_at.saturating_mul(1000);
        let built = self.jenkins.find_build(path, params, since_ms).await?;
        Ok(Found::from_lookups(None, built))
    }

    async fn reply(&self, key: &EffectKey, change: &ChangeRef, ps: u32, message: &str) -> Outcome {
        let payload = json!({ "change": change.to_string(), "patch_set": ps, "message": message });
        match self
            .ledger
            .begin_effect(key, "reply", &payload, ledger::now())
        {
            Err(e) => return passing_ledger(e),
            Ok(Begin::AlreadyDone { .. }) => {
                return Outcome::Done("reply: already posted".to_string());
            }
            Ok(Begin::InDoubt { .. }) => match self.bot_said(change, ps, message).await {
                Ok(true) => {
                    return match self.ledger.finish_effect(
                        key,
                        &json!({"found": true}),
                        ledger::now(),
                    ) {
                        Ok(()) => Outcome::Done("reply: was posted before".to_string()),
                        Err(e) => passing_ledger(e),
                    };
                }
                Ok(false) => {
                    tracing::info!(%change, ps, "an earlier reply did not land; posting it");
                }
                Err(e) => return Outcome::Passing(format!("reply: checking for it: {e}")),
            },
            Ok(Begin::New) => {}
        }
        let input = ReviewInput {
            message: Some(message.to_string()),
            tag: Some(bionicbb_core::review::TAG.to_string()),
            notify: Some(self.notify()),
            ..ReviewInput::default()
        };
        match self
            .gerrit
            .post_review(change, Revision::PatchSet(ps), &input)
            .await
        {
            Ok(_) => match self
                .ledger
                .finish_effect(key, &json!({"posted": true}), ledger::now())
            {
                Ok(()) => Outcome::Done(format!("replied on {change} patch set {ps}")),
                Err(e) => passing_ledger(e),
            },
            Err(e) if gerrit_permanent(&e) => {
                tracing::error!(%change, ps, error = %e, "Gerrit refused the reply for good");
                self.fail(key, format!("reply: {e}"))
            }
            Err(e) => {
                if e.status.is_some()
                    && e.kind != ErrorKind::Malformed
                    && let Err(le) = self.ledger.fail_effect(key, &e.to_string())
                {
                    return passing_ledger(le);
                }
                Outcome::Passing(format!("reply: {e}"))
            }
        }
    }

    /// True when the bot's account already posted `text` on patch set `ps`
    /// (Gerrit prefixes the stored message with `Patch Set N:`).
    async fn bot_said(&self, change: &ChangeRef, ps: u32, text: &str) -> Result<bool, ApiError> {
        let info = self
            .gerrit
            .change(
                change,
                &[QueryOption::Messages, QueryOption::DetailedAccounts],
            )
            .await?;
        let bot = &self.config.gerrit.bot_email;
        Ok(info.messages.iter().any(|m| {
            m.revision_number == Some(ps)
                && m.author
                    .as_ref()
                    .and_then(|a| a.email.as_deref())
                    .is_some_and(|e| e.eq_ignore_ascii_case(bot))
                && m.message.contains(text.trim())
        }))
    }

    fn notify(&self) -> Notify {
        serde_json::from_value(Value::String(self.config.review.notify.clone()))
            .unwrap_or(Notify::OwnerReviewers)
    }

    /// Asks build-listener to drop the bot's rejection. Safe to repeat: the
    /// listener checks the votes on Gerrit itself, so every failure frees the
    /// key and a passing one is simply sent again next poll.
    async fn drop_rejection(&self, key: &EffectKey, change_id: &str, ps: u32) -> Outcome {
        let body = json!({ "changeid": change_id, "patchset": ps });
        match self
            .ledger
            .begin_effect(key, "drop-rejection", &body, ledger::now())
        {
            Err(e) => return passing_ledger(e),
            Ok(Begin::AlreadyDone { .. }) => {
                return Outcome::Done("drop-rejection: already asked".to_string());
            }
            Ok(Begin::New | Begin::InDoubt { .. }) => {}
        }
        let base = self.config.build_listener.public_url.as_str();
        let url = if base.ends_with('/') {
            format!("{base}drop-rejection")
        } else {
            format!("{base}/drop-rejection")
        };
        let secret = self.config.build_listener.secret().expose();
        let sent = self
            .http
            .post(&url)
            .bearer_auth(secret)
            .json(&body)
            .send()
            .await;
        let status = match sent {
            Ok(response) => response.status(),
            Err(e) => {
                let e = e.without_url();
                return self.fail_passing(key, format!("drop-rejection: {e}"));
            }
        };
        if status.is_success() {
            return match self.ledger.finish_effect(
                key,
                &json!({"status": status.as_u16()}),
                ledger::now(),
            ) {
                Ok(()) => Outcome::Done(format!(
                    "drop-rejection: {change_id} patch set {ps} accepted"
                )),
                Err(e) => passing_ledger(e),
            };
        }
        if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            tracing::error!(%change_id, ps, status = status.as_u16(), "build-listener refused the drop-rejection request");
            return self.fail(key, format!("drop-rejection: HTTP {status}"));
        }
        self.fail_passing(key, format!("drop-rejection: HTTP {status}"))
    }

    /// Counts a trigger and observes how long after the notification's date
    /// it happened (nothing to observe when the mail had no `Date:`).
    fn count_trigger(&self, job: &str, mail_date: Option<i64>) {
        let labels = names::labels(&[("job", job)]);
        if let Err(e) = self
            .ledger
            .bump_counter(names::BUILDS_TRIGGERED, &labels, 1)
        {
            tracing::warn!(error = %e, "cannot count the build");
        }
        let Some(date) = mail_date else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        // A mail dated in the future (a skewed clock) counts as 0 seconds.
        let seconds = now - date as f64;
        if let Err(e) = self
            .ledger
            .observe(names::MAIL_TO_TRIGGER_SECONDS, &labels, seconds)
        {
            tracing::warn!(error = %e, "cannot record the mail-to-trigger latency");
        }
    }

    /// [`Outcome::Triggered`] when `result` names the queue item, else a
    /// plain [`Outcome::Done`].
    fn triggered(&self, what: String, result: &Value) -> Outcome {
        match result.get("queue_id").and_then(Value::as_u64) {
            Some(id) => Outcome::Triggered {
                what,
                queue_url: format!("{}queue/item/{id}/", self.config.jenkins.url),
            },
            None => Outcome::Done(what),
        }
    }

    /// Records a permanent refusal: the effect did not happen and never will.
    fn fail(&self, key: &EffectKey, error: String) -> Outcome {
        match self.ledger.fail_effect(key, &error) {
            Ok(()) => Outcome::Failed(error),
            Err(e) => passing_ledger(e),
        }
    }

    /// Frees the key of an effect that did not happen, to be tried next poll.
    fn fail_passing(&self, key: &EffectKey, error: String) -> Outcome {
        match self.ledger.fail_effect(key, &error) {
            Ok(()) => Outcome::Passing(error),
            Err(e) => passing_ledger(e),
        }
    }
}
