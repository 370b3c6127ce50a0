//! The outbox worker: drains the ledger's outbox to Gerrit.
//!
//! Items of different changes are worked on concurrently, up to
//! `build_listener.outbox_concurrency` at once, oldest first; one change's
//! items strictly one at a time and in order (the ledger only offers the
//! oldest pending item of each change, and never one of a change that has
//! an item in hand: see [`schedule`]). For each item:
//!
//! 1. mark it in flight (so a crash during the post is visible after restart);
//! 2. ask Gerrit for the change: the current patch set and the status decide
//!    whether the vote stays ([`review::finalize`]: never on a stale patch
//!    set, never on a closed change);
//! 3. if an earlier attempt may have landed (it was retried, or the process
//!    died during it), look among the change's messages for the bot's
//!    message with the same text on that patch set: if it is there, the
//!    review was posted and is not posted again;
//! 4. post the review, once (no retry inside the client).
//!
//! A post that got no answer is in doubt: Gerrit may still apply it, so the
//! item waits until it no longer can before the look-back of step 3 (see
//! [`crate::in_doubt`]), also across a restart.
//!
//! Passing faults (5xx, timeouts, 429) are retried with a capped exponential
//! backoff for at least [`Settings::give_up_after`]; anything else (404,
//! 409, 401/403, a label Gerrit did not apply) fails the item for good.
//! Every outcome is written to the ledger (event, counter, status): each
//! item ends as one `reviews_posted_total{outcome=...}` (`posted`,
//! `already_posted`, `failed`, `superseded` for the result of a build the
//! bot stopped as superseded when nothing is to be posted for it (see
//! [`stopped`]); for drop-rejections `dropped`,
//! `nothing_done`, `drop_failed`), each retry bumps
//! `outbox_retries_total`, each permanent failure
//! `failures_total{component="build-listener"}`, and each review posted
//! observes `build_to_review_seconds` from the build's completion
//! ([`conclude`]).

use std::sync::Arc;
use std::time::Duration;

use bionicbb_core::config::Config;
use bionicbb_core::error::{ApiError, ErrorKind, Service};
use bionicbb_core::event::ChangeStatus;
use bionicbb_core::gerrit::types::{ChangeInfo, ChangeStatus as GerritStatus, Notify, ReviewInput};
use bionicbb_core::gerrit::{GerritClient, QueryOption, Revision};
use bionicbb_core::ledger::{self, Ledger, OutboxItem, OutboxState};
use bionicbb_core::review::{self, FinalReview};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::payload::{DropPayload, KIND_DROP, KIND_REVIEW, ReviewPayload};
use crate::{in_doubt, with_ledger};

mod conclude;
mod schedule;
mod stopped;

/// Retry timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Delay before the first retry; doubled at each further failure.
    pub base_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// An item failing with passing errors is given up once it is this old.
    pub give_up_after: Duration,
    /// How long after the client gave up on a post Gerrit may still apply
    /// it (see [`crate::in_doubt`]).
    pub settle: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(600),
            give_up_after: Duration::from_secs(24 * 3600),
            settle: in_doubt::DEFAULT_SETTLE,
        }
    }
}

impl Settings {
    /// The delay after `failures` failed attempts (1 for the first failure).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// How one attempt at an item ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Done; `summary` is for the log and the event, `counter` the outcome label.
    Done {
        summary: String,
        counter: &'static str,
    },
    /// A passing fault: try again later.
    Retry(ApiError),
    /// A post was sent and got no answer: Gerrit may still apply it. Try
    /// again (looking for it first) once it no longer can.
    InDoubt(ApiError),
    /// Cannot succeed: give up.
    Failed(String),
}

impl Outcome {
    pub(crate) fn from_error(e: ApiError) -> Outcome {
        if e.is_transient() {
            Outcome::Retry(e)
        } else {
            Outcome::Failed(e.to_string())
        }
    }

    /// The outcome of a post that failed with `e`.
    pub(crate) fn after_post(e: ApiError) -> Outcome {
        if in_doubt::unanswered(&e) {
            Outcome::InDoubt(e)
        } else {
            Outcome::from_error(e)
        }
    }
}

/// The background worker.
pub struct Worker {
    pub(crate) ledger: Ledger,
    pub(crate) gerrit: GerritClient,
    pub(crate) config: Arc<Config>,
    wake: Arc<tokio::sync::Notify>,
    settings: Settings,
    /// The bot's Gerrit account id, asked once.
    bot_id: OnceCell<u64>,
    /// Told the number of pending items whenever it changes.
    on_pending: Option<PendingReport>,
}

/// What [`Worker::on_pending_change`] calls.
type PendingReport = Box<dyn Fn(u64) + Send + Sync>;

/// How long the worker sleeps at most when nothing is due (it is woken by
/// new work anyway; this bounds the effect of a missed wake-up).
const IDLE_WAIT: Duration = Duration::from_secs(30);

/// Finished history (done mails and effects, seen builds, posted reviews)
/// older than this is pruned, so the ledger does not grow without bound.
/// Long past any late duplicate notification or mail it guards against.
const KEEP_HISTORY_SECS: i64 = 30 * 24 * 3600;

/// How often the worker prunes.
const PRUNE_EVERY_SECS: i64 = 24 * 3600;

impl Worker {
    pub fn new(
        ledger: Ledger,
        gerrit: GerritClient,
        config: Arc<Config>,
        wake: Arc<tokio::sync::Notify>,
        settings: Settings,
    ) -> Worker {
        Worker {
            ledger,
            gerrit,
            config,
            wake,
            settings,
            bot_id: OnceCell::new(),
            on_pending: None,
        }
    }

    /// Has `report` called with the number of pending items at start and
    /// each time it changes (checked whenever the worker looks for work:
    /// on new work, at each item's end, and at least every 30 s).
    pub fn on_pending_change(mut self, report: impl Fn(u64) + Send + Sync + 'static) -> Worker {
        self.on_pending = Some(Box::new(report));
        self
    }

    /// Calls the [`Worker::on_pending_change`] report when the number of
    /// pending items differs from `last`.
    async fn report_pending(&self, last: &mut Option<u64>) {
        let Some(report) = &self.on_pending else {
            return;
        };
        match with_ledger(&self.ledger, |l| l.pending_count()).await {
            Ok(n) if *last != Some(n) => {
                *last = Some(n);
                report(n);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("outbox: cannot count the pending items: {e}"),
        }
    }

    /// Deletes finished history older than [`KEEP_HISTORY_SECS`].
    async fn prune(&self, now: i64) {
        let cutoff = now - KEEP_HISTORY_SECS;
        match with_ledger(&self.ledger, move |l| l.prune_before(cutoff)).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "pruned ledger history older than 30 days"),
            Err(e) => tracing::warn!("cannot prune the ledger: {e}"),
        }
    }

    async fn ledger_trouble(&self, error: &str) -> Duration {
        tracing::error!("outbox: ledger: {error}");
        Duration::from_secs(5)
    }

    /// One attempt at one item, and its outcome written to the ledger.
    async fn handle(&self, item: OutboxItem) {
        let id = item.id;
        if item.interrupted() {
            self.wait_out(&item).await;
            return;
        }
        if let Err(e) =
            with_ledger(&self.ledger, move |l| l.mark_in_flight(id, ledger::now())).await
        {
            tracing::error!("outbox item {id}: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
        let outcome = match item.kind.as_str() {
            KIND_REVIEW => self.review(&item).await,
            KIND_DROP => self.drop_rejection(&item).await,
            other => Outcome::Failed(format!("unknown outbox item kind {other:?}")),
        };
        self.conclude(&item, outcome).await;
    }

    /// An attempt was in flight when the process stopped: its post may
    /// still land, so the item waits [`Settings::settle`] from now (the
    /// process that sent it is gone, it cannot be sent any later) before it
    /// is looked for and tried again.
    async fn wait_out(&self, item: &OutboxItem) {
        let id = item.id;
        let settle = self.settings.settle;
        let until = ledger::now().saturating_add(ceil_secs(settle).max(1));
        tracing::warn!(
            "{}: an attempt was in flight when the listener stopped; waiting {} for it \
             to land before looking for it on Gerrit",
            describe(item),
            humantime::format_duration(settle)
        );
        if let Err(e) = with_ledger(&self.ledger, move |l| l.defer(id, until)).await {
            tracing::error!("outbox item {id}: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The bot's account id (`GET /accounts/self`, asked once).
    pub(crate) async fn bot_id(&self) -> Result<u64, ApiError> {
        self.bot_id
            .get_or_try_init(|| async { self.gerrit.account("self").await.map(|a| a.account_id) })
            .await
            .copied()
    }

    /// The newest build of the same job on the same patch set whose review
    /// was already posted, if it is newer than this item's: then that
    /// build's vote stands, not this one's. (A newer build's review still
    /// to come is posted after this one, in the change's order, and its
    /// vote replaces this one's anyway.)
    async fn newer_build(
        &self,
        item: &OutboxItem,
        payload: &ReviewPayload,
    ) -> Result<Option<u64>, String> {
        let Some((job, number)) = job_and_number(&payload.key) else {
            return Ok(None);
        };
        let (key, id) = (item.order_key.clone(), item.id);
        let siblings =
            with_ledger(&self.ledger, move |l| l.siblings(&key, KIND_REVIEW, id)).await?;
        Ok(siblings
            .iter()
            .filter(|s| s.state == OutboxState::Done)
            .filter_map(|s| ReviewPayload::from_value(&s.payload).ok())
            .filter(|(other, _)| other.patch_set == payload.patch_set)
            .filter_map(|(other, _)| match job_and_number(&other.key) {
                Some((j, n)) if j == job && n > number => Some(n),
                _ => None,
            })
            .max())
    }

    /// True when a `/drop-rejection` request for this review's patch set
    /// came (and was handled, in the change's order) after the build
    /// completed: a human may have voted on the patch set before its result
    /// arrived (the notification was lost and catch-up found it late).
    async fn dropped_after_completion(
        &self,
        item: &OutboxItem,
        payload: &ReviewPayload,
    ) -> Result<bool, String> {
        let Some(completed_ms) = payload.completed_at_ms else {
            return Ok(false);
        };
        let (key, id) = (item.order_key.clone(), item.id);
        let drops = with_ledger(&self.ledger, move |l| l.siblings(&key, KIND_DROP, id)).await?;
        Ok(drops
            .iter()
            .filter(|d| d.id < item.id && d.created_at.saturating_mul(1000) >= completed_ms)
            .filter_map(|d| DropPayload::from_value(&d.payload).ok())
            .any(|d| d.patch_set == payload.patch_set))
    }

    /// Posts (or finds already posted) one planned review.
    async fn review(&self, item: &OutboxItem) -> Outcome {
        let (payload, plan) = match ReviewPayload::from_value(&item.payload) {
            Ok(p) => p,
            Err(e) => return Outcome::Failed(e),
        };
        let look_back = item.may_have_landed();
        match self.stopped(&payload).await {
            Ok(Some(stopped)) => {
                return self
                    .review_stopped(look_back, &plan, &payload, stopped)
                    .await;
            }
            Ok(None) => {}
            Err(e) => return stopped::retry(e),
        }
        let negative = plan.label.as_ref().is_some_and(|(_, value)| *value < 0);
        let human_first = negative
            && match self.dropped_after_completion(item, &payload).await {
                Ok(dropped) => dropped,
                Err(e) => return Outcome::Retry(ledger_error(e)),
            };
        let mut options = vec![QueryOption::CurrentRevision];
        if look_back {
            options.push(QueryOption::Messages);
        }
        if human_first {
            options.push(QueryOption::DetailedLabels);
        }
        let change = match self.gerrit.change(&plan.change, &options).await {
            Ok(change) => change,
            Err(e) => return Outcome::from_error(e),
        };
        let Some(current) = change.current_patch_set() else {
            return Outcome::Failed(format!(
                "Gerrit did not say which patch set of {} is current",
                plan.change
            ));
        };
        let mut review = review::finalize(&plan, current, event_status(change.status));
        match self.newer_build(item, &payload).await {
            Ok(Some(newer)) => review = review.withhold_for_newer_build(newer),
            Ok(None) => {}
            Err(e) => return Outcome::Retry(ledger_error(e)),
        }
        if human_first {
            let bot = match self.bot_id().await {
                Ok(bot) => bot,
                Err(e) => return Outcome::from_error(e),
            };
            let votes = crate::drop::label_votes(&change, &self.config.review.label);
            if review::human_voted_positive(&votes, bot) {
                let bot_vote = votes.iter().find(|v| v.account_id == bot).map(|v| v.value);
                review = review.withhold_for_human_verdict(bot_vote);
            }
        }
        if look_back {
            let bot = match self.bot_id().await {
                Ok(bot) => bot,
                Err(e) => return Outcome::from_error(e),
            };
            if already_posted(&change, bot, review.patch_set, &plan.message) {
                return Outcome::Done {
                    summary: "already on Gerrit from an earlier attempt; not posted again".into(),
                    counter: "already_posted",
                };
            }
        }
        match self.post(&review).await {
            Ok(()) => Outcome::Done {
                summary: match (&review.label, review.withheld) {
                    (Some((label, 0)), Some(why)) => {
                        format!("posted without a vote ({why:?}); the bot's {label} vote removed")
                    }
                    (Some((label, value)), _) => format!("posted with {label}{value:+}"),
                    (None, Some(why)) => format!("posted without a vote ({why:?})"),
                    (None, None) => "posted (no vote)".to_string(),
                },
                counter: "posted",
            },
            Err(e) => Outcome::after_post(e),
        }
    }

    /// `POST .../review` with the final message and labels.
    pub(crate) async fn post(&self, review: &FinalReview) -> Result<(), ApiError> {
        let input = ReviewInput {
            message: Some(review.message.clone()),
            labels: review.label.iter().cloned().collect(),
            tag: Some(review.tag.clone()),
            notify: notify(&review.notify),
        };
        self.gerrit
            .post_review(&review.change, Revision::PatchSet(review.patch_set), &input)
            .await
            .map(|_| ())
    }
}

/// Gerrit's change status as the review rules see it. An unknown status is
/// treated as open: if Gerrit refuses the vote, the 409 is reported.
pub(crate) fn event_status(status: GerritStatus) -> ChangeStatus {
    match status {
        GerritStatus::Merged => ChangeStatus::Merged,
        GerritStatus::Abandoned => ChangeStatus::Abandoned,
        GerritStatus::New | GerritStatus::Draft | GerritStatus::Unknown => ChangeStatus::New,
    }
}

/// The configured `notify` (validated by the configuration) as Gerrit's enum.
pub(crate) fn notify(text: &str) -> Option<Notify> {
    serde_json::from_value(Value::String(text.to_ascii_uppercase())).ok()
}

/// Whether the bot already posted the review planned as `planned` (the
/// build's line, unique to the build) on `patch_set`, with or without the
/// note a final review may add after it (a stale patch set, a closed
/// change: what Gerrit showed when that attempt was made, which may differ
/// from what it shows now). Gerrit stores `Patch Set N: <votes>\n\n<message>`
/// (the message trimmed), so the text after the first blank line is
/// compared.
pub fn already_posted(change: &ChangeInfo, bot: u64, patch_set: u32, planned: &str) -> bool {
    let wanted = planned.trim();
    change.messages.iter().any(|m| {
        m.author.as_ref().is_some_and(|a| a.account_id == bot)
            && m.revision_number == Some(patch_set)
            && m.message.split_once("\n\n").is_some_and(|(head, body)| {
                let body = body.trim();
                head.starts_with("Patch Set ")
                    && body
                        .strip_prefix(wanted)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with("\n\n"))
            })
    })
}

/// The job and build number of a build key (`job:<job>#<number>`).
fn job_and_number(key: &str) -> Option<(&str, u64)> {
    let (job, number) = key.strip_prefix("job:")?.rsplit_once('#')?;
    Some((job, number.parse().ok()?))
}

fn age(item: &OutboxItem, now: i64) -> Duration {
    Duration::from_secs(now.saturating_sub(item.created_at).max(0) as u64)
}

/// Whole seconds, rounded up (the ledger's clock counts seconds).
fn ceil_secs(d: Duration) -> i64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// `review 123456/4 (bionic-presubmit #1842)` for logs.
fn describe(item: &OutboxItem) -> String {
    let change = &item.order_key;
    let ps = item
        .payload
        .get("patch_set")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    match item.payload.get("build").and_then(Value::as_str) {
        Some(build) => format!("{} {change}/{ps} ({build})", item.kind),
        None => format!("{} {change}/{ps}", item.kind),
    }
}

#[cfg(test)]
mod tests;

/// A ledger failure while deciding a post: a passing fault, retried.
fn ledger_error(e: String) -> ApiError {
    ApiError::new(
        Service::BuildListener,
        ErrorKind::Transient,
        format!("ledger: {e}"),
    )
}
