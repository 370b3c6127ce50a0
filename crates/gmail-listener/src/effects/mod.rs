//! Doing what the policy decided (a build, a reply, a rejection drop, a
//! verdict carried over: [`carry`]), each effect once: every effect is keyed in
//! the ledger before it runs and marked after, so a crash, a timeout or a
//! second mail about the same event never builds or replies twice, and a
//! passing fault never loses an effect (the mail stays for the next poll).

use bionicbb_core::config::Config;
use bionicbb_core::error::{ApiError, ErrorKind};
use bionicbb_core::event::{ChangeFacts, Decision};
use bionicbb_core::gerrit::{ChangeRef, GerritClient, Notify, QueryOption, ReviewInput, Revision};
use bionicbb_core::jenkins::JenkinsClient;
use bionicbb_core::ledger::{self, Begin, EffectKey, Ledger};

use serde_json::{Value, json};

mod ack;
mod apply;
mod build;
mod cancel;
mod carry;
mod vouch;
mod why;

pub use apply::Applied;

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
/// the comment, which tells a new `retry` from a second mail (or a copy)
/// about the same comment.
#[derive(Debug, Clone)]
pub struct Origin {
    pub gmail_id: String,
    pub project: String,
    pub comment_identity: Option<String>,
    /// The notification's `Date:` (unix seconds), for the mail-to-trigger
    /// latency; `None` when the mail had none.
    pub mail_date: Option<i64>,
}

impl Origin {
    /// The identity of a comment's commands: the Gerrit change message they
    /// were confirmed against (its `id`), whatever mail reported it, so that
    /// every mail about it, and a REST reconcile of it, collapse onto the
    /// same effect keys. `None` when Gerrit confirmed no comment (then
    /// nothing but skips is decided).
    pub fn comment_identity(facts: Option<&ChangeFacts>) -> Option<String> {
        let comment = facts?.comment.as_ref()?;
        Some(format!("change-message:{}", comment.message_id))
    }

    /// What tells a reply or a rejection drop apart from another on the
    /// same patch set: the comment's identity, else the mail.
    fn discriminator(&self) -> &str {
        self.comment_identity.as_deref().unwrap_or(&self.gmail_id)
    }
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

impl Effects {
    /// Runs one ledger call on the blocking pool ([`Ledger::blocking`]):
    /// no runtime thread waits for the disk, and the writes of mails
    /// handled at once can share commits.
    async fn db<T, F>(&self, op: &'static str, f: F) -> ledger::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Ledger) -> ledger::Result<T> + Send + 'static,
    {
        self.ledger.blocking(op, f).await
    }

    /// Marks the effect done with `result`.
    async fn finish(&self, key: &EffectKey, result: Value) -> ledger::Result<()> {
        let key = key.clone();
        self.db("finish an effect", move |l| {
            l.finish_effect(&key, &result, ledger::now())
        })
        .await
    }

    /// Begins the effect (see [`Ledger::begin_effect`]).
    async fn begin(
        &self,
        key: &EffectKey,
        kind: &'static str,
        payload: &Value,
    ) -> ledger::Result<Begin> {
        let (key, payload) = (key.clone(), payload.clone());
        self.db("begin an effect", move |l| {
            l.begin_effect(&key, kind, &payload, ledger::now())
        })
        .await
    }

    /// Frees the effect's key: it did not happen.
    async fn fail_effect(&self, key: &EffectKey, error: &str) -> ledger::Result<()> {
        let (key, error) = (key.clone(), error.to_string());
        self.db("fail an effect", move |l| l.fail_effect(&key, &error))
            .await
    }
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
        let key = match (decision, Effects::key(decision, origin, change, ps)) {
            (Decision::Skip { reason }, _) => return Outcome::Done(format!("skipped: {reason}")),
            (
                Decision::CancelSuperseded {
                    change_number,
                    below,
                },
                _,
            ) => return self.cancel_superseded(*change_number, *below).await,
            // Done by `apply`, which knows the build it acknowledges.
            (Decision::Acknowledge { .. }, _) => return Outcome::Done(String::new()),
            (_, Some(key)) => key,
            // Every decision but a skip has a key.
            (_, None) => return Outcome::Failed("the decision has no effect key".to_string()),
        };
        match decision {
            Decision::Skip { reason } => Outcome::Done(format!("skipped: {reason}")),
            // Done above: it has no key of its own.
            Decision::CancelSuperseded { .. } => Outcome::Done(String::new()),
            Decision::Build { job, params, .. } | Decision::Clean { job, params } => {
                self.build(&key, job, params, origin.mail_date).await
            }
            Decision::Reply {
                change_number,
                patch_set,
                message,
            } => {
                let target = ChangeRef::project_number(&origin.project, *change_number);
                match target {
                    Ok(target) => {
                        self.reply(&key, "reply", &target, *patch_set, message)
                            .await
                    }
                    Err(e) => Outcome::Failed(format!("reply: invalid change: {e}")),
                }
            }
            Decision::ExplainSkip {
                change_number,
                patch_set,
                message,
            } => match ChangeRef::project_number(&origin.project, *change_number) {
                Ok(target) => self.explain(&key, &target, *patch_set, message).await,
                Err(e) => Outcome::Failed(format!("explain: invalid change: {e}")),
            },
            Decision::Vouch { .. } => self.record_vouch(&key, decision).await,
            // Done by `apply`, after the build it acknowledges.
            Decision::Acknowledge { .. } => Outcome::Done(String::new()),
            Decision::Why {
                change_number,
                patch_set,
                automatic,
            } => {
                let target = ChangeRef::project_number(&origin.project, *change_number);
                match target {
                    Ok(target) => {
                        self.why(&key, &target, *change_number, *patch_set, automatic)
                            .await
                    }
                    Err(e) => Outcome::Failed(format!("why: invalid change: {e}")),
                }
            }
            Decision::DropRejection {
                change_number,
                patch_set,
            } => {
                let change_id = format!("{}~{change_number}", origin.project);
                self.drop_rejection(&key, &change_id, *patch_set).await
            }
            Decision::CarryOver {
                change_number,
                patch_set,
                from_patch_set,
                label,
                value,
                message,
            } => {
                let carried = carry::Carried {
                    label,
                    value: *value,
                    from_patch_set: *from_patch_set,
                    message,
                };
                match ChangeRef::project_number(&origin.project, *change_number) {
                    Ok(target) => self.carry(&key, &target, *patch_set, carried).await,
                    Err(e) => Outcome::Failed(format!("carry-over: invalid change: {e}")),
                }
            }
        }
    }

    /// The ledger key of the effect `decision` calls for (`None` for a
    /// skip, and for a cancel, which keys each build it cancels instead):
    /// what makes it happen once, whichever path decided it.
    pub fn key(decision: &Decision, origin: &Origin, change: u64, ps: u32) -> Option<EffectKey> {
        match decision {
            // An acknowledgement is keyed by the build it acknowledges
            // (`EffectKey::ack`), which only `apply` knows.
            Decision::Skip { .. }
            | Decision::CancelSuperseded { .. }
            | Decision::Acknowledge { .. } => None,
            // Apart from any other reply to the same comment (`help`).
            Decision::Why {
                change_number,
                patch_set,
                ..
            } => Some(
                EffectKey::reply(*change_number, *patch_set, origin.discriminator()).with("why"),
            ),
            Decision::Build { .. } | Decision::Clean { .. } => {
                Effects::build_key(decision, origin, change, ps)
            }
            Decision::Reply {
                change_number,
                patch_set,
                ..
            } => Some(EffectKey::reply(
                *change_number,
                *patch_set,
                origin.discriminator(),
            )),
            Decision::DropRejection {
                change_number,
                patch_set,
            } => Some(EffectKey::drop_rejection(
                *change_number,
                *patch_set,
                origin.discriminator(),
            )),
            Decision::CarryOver {
                change_number,
                patch_set,
                ..
            } => Some(EffectKey::carry(*change_number, *patch_set)),
            Decision::Vouch {
                change_number,
                patch_set,
                ..
            } => Some(EffectKey::vouch(*change_number, *patch_set)),
            Decision::ExplainSkip {
                change_number,
                patch_set,
                ..
            } => Some(EffectKey::explain(*change_number, *patch_set)),
        }
    }

    /// The ledger key of the build `decision` calls for (`None` when it
    /// is not a build): the patch set, job and parameters, narrowed by the
    /// comment that asked for it, so each command builds once; not
    /// narrowed for the patch set's automatic build (`per_patch_set`),
    /// which an `ok-to-test` comment asks for too.
    pub fn build_key(
        decision: &Decision,
        origin: &Origin,
        change: u64,
        ps: u32,
    ) -> Option<EffectKey> {
        let (job, params, per_patch_set) = match decision {
            Decision::Build {
                job,
                params,
                per_patch_set,
                ..
            } => (job, params, *per_patch_set),
            Decision::Clean { job, params } => (job, params, false),
            _ => return None,
        };
        let key = EffectKey::build(change, ps, job, params);
        Some(match &origin.comment_identity {
            Some(identity) if !per_patch_set => key.with(identity),
            _ => key,
        })
    }

    /// Posts `message` on patch set `ps` once, as effect `key` of `kind`
    /// (`reply`, `ack`, `why`, `explain`). A post in doubt is looked for on Gerrit
    /// first, as the text it was begun with (a text rendered from the
    /// ledger may read differently by now), and posted as that text.
    async fn reply(
        &self,
        key: &EffectKey,
        kind: &'static str,
        change: &ChangeRef,
        ps: u32,
        message: &str,
    ) -> Outcome {
        let payload = json!({ "change": change.to_string(), "patch_set": ps, "message": message });
        let mut message = message.to_string();
        match self.begin(key, kind, &payload).await {
            Err(e) => return passing_ledger(e),
            Ok(Begin::AlreadyDone { .. }) => {
                return Outcome::Done(format!("{kind}: already posted"));
            }
            Ok(Begin::InDoubt { payload, .. }) => {
                if let Some(begun) = payload.get("message").and_then(Value::as_str) {
                    message = begun.to_string();
                }
                match self.bot_said(change, ps, &message).await {
                    Ok(true) => {
                        return match self.finish(key, json!({"found": true})).await {
                            Ok(()) => Outcome::Done(format!("{kind}: was posted before")),
                            Err(e) => passing_ledger(e),
                        };
                    }
                    Ok(false) => {
                        tracing::info!(%change, ps, kind, "an earlier reply did not land; posting it");
                    }
                    Err(e) => return Outcome::Passing(format!("{kind}: checking for it: {e}")),
                }
            }
            Ok(Begin::New) => {}
        }
        let input = ReviewInput {
            message: Some(message),
            tag: Some(bionicbb_core::review::TAG.to_string()),
            notify: Some(self.notify()),
            ..ReviewInput::default()
        };
        match self
            .gerrit
            .post_review(change, Revision::PatchSet(ps), &input)
            .await
        {
            Ok(_) => match self.finish(key, json!({"posted": true})).await {
                Ok(()) => Outcome::Done(format!("{kind}: posted on {change} patch set {ps}")),
                Err(e) => passing_ledger(e),
            },
            Err(e) if gerrit_permanent(&e) => {
                tracing::error!(%change, ps, error = %e, "Gerrit refused the reply for good");
                self.fail(key, format!("{kind}: {e}")).await
            }
            Err(e) => {
                if e.status.is_some()
                    && e.kind != ErrorKind::Malformed
                    && let Err(le) = self.fail_effect(key, &e.to_string()).await
                {
                    return passing_ledger(le);
                }
                Outcome::Passing(format!("{kind}: {e}"))
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
        match self.begin(key, "drop-rejection", &body).await {
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
                return self.fail_passing(key, format!("drop-rejection: {e}")).await;
            }
        };
        if status.is_success() {
            return match self.finish(key, json!({"status": status.as_u16()})).await {
                Ok(()) => Outcome::Done(format!(
                    "drop-rejection: {change_id} patch set {ps} accepted"
                )),
                Err(e) => passing_ledger(e),
            };
        }
        if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            tracing::error!(%change_id, ps, status = status.as_u16(), "build-listener refused the drop-rejection request");
            return self
                .fail(key, format!("drop-rejection: HTTP {status}"))
                .await;
        }
        self.fail_passing(key, format!("drop-rejection: HTTP {status}"))
            .await
    }

    /// Records a permanent refusal: the effect did not happen and never will.
    async fn fail(&self, key: &EffectKey, error: String) -> Outcome {
        match self.fail_effect(key, &error).await {
            Ok(()) => Outcome::Failed(error),
            Err(e) => passing_ledger(e),
        }
    }

    /// Frees the key of an effect that did not happen, to be tried next poll.
    async fn fail_passing(&self, key: &EffectKey, error: String) -> Outcome {
        match self.fail_effect(key, &error).await {
            Ok(()) => Outcome::Passing(error),
            Err(e) => passing_ledger(e),
        }
    }
}
