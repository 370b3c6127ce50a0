//! The outbox worker: drains the ledger's outbox to Gerrit.
//!
//! One item at a time, oldest first, in order per change (the ledger only
//! offers the oldest pending item of each change). For each item:
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
//! `already_posted`, `failed`; for drop-rejections `dropped`,
//! `nothing_done`, `drop_failed`), each retry bumps
//! `outbox_retries_total`, each permanent failure
//! `failures_total{component="build-listener"}`, and each review posted
//! observes `build_to_review_seconds` from the build's completion.

use std::sync::Arc;
use std::time::Duration;

use bionicbb_core::config::Config;
use bionicbb_core::error::ApiError;
use bionicbb_core::event::ChangeStatus;
use bionicbb_core::gerrit::types::{ChangeInfo, ChangeStatus as GerritStatus, Notify, ReviewInput};
use bionicbb_core::gerrit::{GerritClient, QueryOption, Revision};
use bionicbb_core::ledger::metric_names::{self as names, labels};
use bionicbb_core::ledger::{self, EventRecord, Ledger, OutboxItem};
use bionicbb_core::review::{self, FinalReview};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, watch};

use crate::payload::{KIND_DROP, KIND_REVIEW, ReviewPayload, now_ms};
use crate::{in_doubt, with_ledger};

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
}

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
        }
    }

    /// Runs until `shutdown` turns true; an item in hand is finished first
    /// (the outbox is durable, stopping between items loses nothing).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut next_prune = 0;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = ledger::now();
            if now >= next_prune {
                next_prune = now + PRUNE_EVERY_SECS;
                self.prune(now).await;
            }
            let wait = match with_ledger(&self.ledger, move |l| l.next_due(now)).await {
                Ok(Some(item)) => {
                    self.handle(item).await;
                    continue;
                }
                Ok(None) => match with_ledger(&self.ledger, |l| l.next_due_at()).await {
                    Ok(Some(at)) if at > now => {
                        Duration::from_secs((at - now) as u64).min(IDLE_WAIT)
                    }
                    // Due already (a race with a write): look again soon.
                    Ok(Some(_)) => Duration::from_millis(200),
                    Ok(None) => IDLE_WAIT,
                    Err(e) => self.ledger_trouble(&e).await,
                },
                Err(e) => self.ledger_trouble(&e).await,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("outbox worker stopped");
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

    /// Writes the outcome: the item's state, an event, a counter, the status.
    async fn conclude(&self, item: &OutboxItem, outcome: Outcome) {
        let id = item.id;
        let now = ledger::now();
        let what = describe(item);
        let (source, failed_outcome) = match item.kind.as_str() {
            KIND_DROP => ("drop-rejection", "drop_failed"),
            _ => ("jenkins", "failed"),
        };
        // Seconds from the build's completion to now, for a review posted.
        let build_to_review = item
            .payload
            .get("completed_at_ms")
            .and_then(Value::as_i64)
            .filter(|_| item.kind == KIND_REVIEW)
            .map(|at| now_ms().saturating_sub(at) as f64 / 1000.0);
        let change_number = item
            .order_key
            .rsplit('~')
            .next()
            .and_then(|n| n.parse().ok());
        let patch_set = item
            .payload
            .get("patch_set")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok());
        let event = |summary: String, decision: Value| EventRecord {
            at: now,
            source: source.to_string(),
            summary,
            change_number,
            patch_set,
            decisions: json!([decision]),
        };
        let failures = item.attempts + 1;
        let outcome = match outcome {
            Outcome::Retry(e) | Outcome::InDoubt(e)
                if age(item, now) >= self.settings.give_up_after =>
            {
                Outcome::Failed(format!(
                    "gave up after {failures} attempts over {}: {e}",
                    humantime::format_duration(self.settings.give_up_after)
                ))
            }
            other => other,
        };
        // A post in doubt is retried like any passing fault, only later.
        let in_doubt = matches!(outcome, Outcome::InDoubt(_));
        let result = match outcome {
            Outcome::Done { summary, counter } => {
                tracing::info!("{what}: {summary}");
                let record = event(format!("{what}: {summary}"), json!({ "outcome": counter }));
                let observed = build_to_review.filter(|_| counter == "posted");
                with_ledger(&self.ledger, move |l| {
                    l.mark_done(id, now)?;
                    l.record_event(&record)?;
                    l.bump_counter(names::REVIEWS_POSTED, &labels(&[("outcome", counter)]), 1)?;
                    if let Some(seconds) = observed {
                        l.observe(names::BUILD_TO_REVIEW_SECONDS, "", seconds)?;
                    }
                    l.set_status("build-listener", "last_success_at", &json!(now), now)
                })
                .await
            }
            Outcome::Retry(e) | Outcome::InDoubt(e) => {
                let mut delay = self
                    .settings
                    .delay(failures)
                    .max(e.retry_after.unwrap_or_default());
                if in_doubt {
                    delay = delay.max(self.settings.settle);
                }
                let next = now.saturating_add(ceil_secs(delay).max(i64::from(in_doubt)));
                let error = e.to_string();
                tracing::warn!(
                    "{what}: attempt {failures} failed, retrying in {}{}: {error}",
                    humantime::format_duration(delay),
                    if in_doubt {
                        " (no answer: Gerrit may still apply it, it is looked for first)"
                    } else {
                        ""
                    }
                );
                with_ledger(&self.ledger, move |l| {
                    if in_doubt {
                        l.mark_in_doubt(id, &error, next)?;
                    } else {
                        l.mark_retry(id, &error, next)?;
                    }
                    l.bump_counter(names::OUTBOX_RETRIES, "", 1)?;
                    l.set_status(
                        "build-listener",
                        "last_error",
                        &json!({ "at": now, "error": error }),
                        now,
                    )
                })
                .await
            }
            Outcome::Failed(error) => {
                tracing::error!("{what}: failed for good: {error}");
                let record = event(
                    format!("{what}: failed: {error}"),
                    json!({ "outcome": "failed", "error": error }),
                );
                with_ledger(&self.ledger, move |l| {
                    l.mark_failed(id, &error, now)?;
                    l.record_event(&record)?;
                    let outcome = labels(&[("outcome", failed_outcome)]);
                    l.bump_counter(names::REVIEWS_POSTED, &outcome, 1)?;
                    let component = labels(&[("component", "build-listener")]);
                    l.bump_counter(names::FAILURES, &component, 1)?;
                    l.set_status(
                        "build-listener",
                        "last_error",
                        &json!({ "at": now, "error": error }),
                        now,
                    )
                })
                .await
            }
        };
        if let Err(e) = result {
            tracing::error!("{what}: cannot record the outcome in the ledger: {e}");
        }
    }

    /// The bot's account id (`GET /accounts/self`, asked once).
    pub(crate) async fn bot_id(&self) -> Result<u64, ApiError> {
        self.bot_id
            .get_or_try_init(|| async { self.gerrit.account("self").await.map(|a| a.account_id) })
            .await
            .copied()
    }

    /// Posts (or finds already posted) one planned review.
    async fn review(&self, item: &OutboxItem) -> Outcome {
        let (_, plan) = match ReviewPayload::from_value(&item.payload) {
            Ok(p) => p,
            Err(e) => return Outcome::Failed(e),
        };
        let look_back = item.may_have_landed();
        let mut options = vec![QueryOption::CurrentRevision];
        if look_back {
            options.push(QueryOption::Messages);
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
        let review = review::finalize(&plan, current, event_status(change.status));
        if look_back {
            let bot = match self.bot_id().await {
                Ok(bot) => bot,
                Err(e) => return Outcome::from_error(e),
            };
            if already_posted(&change, bot, review.patch_set, &review.message) {
                return Outcome::Done {
                    summary: "already on Gerrit from an earlier attempt; not posted again".into(),
                    counter: "already_posted",
                };
            }
        }
        match self.post(&review).await {
            Ok(()) => Outcome::Done {
                summary: match (&review.label, review.withheld) {
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

/// Whether the bot already posted `message` on `patch_set`. Gerrit stores
/// `Patch Set N: <votes>\n\n<message>` (the message trimmed), so the text
/// after the first blank line is compared.
pub fn already_posted(change: &ChangeInfo, bot: u64, patch_set: u32, message: &str) -> bool {
    let wanted = message.trim();
    change.messages.iter().any(|m| {
        m.author.as_ref().is_some_and(|a| a.account_id == bot)
            && m.revision_number == Some(patch_set)
            && m.message
                .split_once("\n\n")
                .is_some_and(|(head, body)| head.starts_with("Patch Set ") && body.trim() == wanted)
    })
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
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Settings::default();
        assert_eq!(s.delay(1), Duration::from_secs(2));
        assert_eq!(s.delay(2), Duration::from_secs(4));
        assert_eq!(s.delay(5), Duration::from_secs(32));
        assert_eq!(s.delay(9), Duration::from_secs(512));
        assert_eq!(s.delay(10), Duration::from_secs(600));
        assert_eq!(s.delay(500), Duration::from_secs(600));
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }

    /// A worker whose Gerrit is never reached, on a fresh ledger.
    fn worker(dir: &std::path::Path) -> Worker {
        let text = r#"
[gerrit]
url = "http://127.0.0.1:9/"
bot_email = "bionicbb@example.com"
[jenkins]
url = "http://127.0.0.1:9/"
user = "bionicbb"
api_token = "t"
[build_listener]
secret = "s"
[jobs]
"#;
        let config = Config::parse(text, std::path::Path::new("test.toml")).unwrap();
        let gerrit = GerritClient::new(
            config.gerrit.url.clone(),
            None,
            Duration::from_secs(1),
            bionicbb_core::retry::RetryPolicy::default(),
        )
        .unwrap();
        let ledger = Ledger::open(&dir.join("ledger.sqlite3")).unwrap();
        Worker::new(
            ledger,
            gerrit,
            Arc::new(config),
            Arc::new(tokio::sync::Notify::new()),
            Settings::default(),
        )
    }

    fn enqueue(worker: &Worker, created_at: i64) -> OutboxItem {
        let item = ledger::NewOutboxItem {
            kind: KIND_REVIEW.into(),
            order_key: "123456".into(),
            payload: json!({"patch_set": 4, "build": "j #1"}),
        };
        let id = worker.ledger.enqueue(item, created_at).unwrap();
        worker.ledger.outbox_item(id).unwrap().unwrap()
    }

    fn transient() -> ApiError {
        ApiError::new(
            bionicbb_core::Service::Gerrit,
            bionicbb_core::ErrorKind::Transient,
            "busy",
        )
        .with_status(503)
    }

    #[tokio::test]
    async fn finished_history_older_than_thirty_days_is_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let w = worker(dir.path());
        let now = ledger::now();
        let old = enqueue(&w, now - KEEP_HISTORY_SECS - 100);
        w.ledger
            .mark_done(old.id, now - KEEP_HISTORY_SECS - 50)
            .unwrap();
        let recent = enqueue(&w, now - 100);
        w.ledger.mark_done(recent.id, now - 50).unwrap();
        let pending = enqueue(&w, now - KEEP_HISTORY_SECS - 100);
        w.prune(now).await;
        assert_eq!(w.ledger.outbox_item(old.id).unwrap(), None);
        assert!(w.ledger.outbox_item(recent.id).unwrap().is_some());
        assert!(
            w.ledger.outbox_item(pending.id).unwrap().is_some(),
            "pending work is never pruned"
        );
    }

    #[tokio::test]
    async fn passing_errors_are_retried_with_backoff_then_given_up_after_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let w = worker(dir.path());
        let now = ledger::now();
        // Young item: retried 2 s later, still pending.
        let item = enqueue(&w, now);
        w.conclude(&item, Outcome::Retry(transient())).await;
        let after = w.ledger.outbox_item(item.id).unwrap().unwrap();
        assert_eq!(after.attempts, 1);
        assert!(after.next_attempt_at >= now + 2 && after.next_attempt_at <= now + 4);
        assert!(after.last_error.unwrap().contains("busy"));
        // A day-old item is given up.
        let old = enqueue(&w, now - 24 * 3600 - 5);
        w.ledger.mark_done(item.id, now).unwrap();
        w.conclude(&old, Outcome::Retry(transient())).await;
        let after = w.ledger.outbox_item(old.id).unwrap().unwrap();
        assert_eq!(after.state, ledger::OutboxState::Failed);
        assert!(
            after
                .last_error
                .unwrap()
                .starts_with("gave up after 1 attempts over 1day")
        );
        let counters = w.ledger.counters().unwrap();
        assert_eq!(
            counters,
            vec![
                (
                    names::FAILURES.into(),
                    "component=\"build-listener\"".into(),
                    1
                ),
                (names::OUTBOX_RETRIES.into(), String::new(), 1),
                (names::REVIEWS_POSTED.into(), "outcome=\"failed\"".into(), 1),
            ]
        );
        assert!(
            w.ledger
                .status("build-listener")
                .unwrap()
                .contains_key("last_error")
        );
    }

    #[tokio::test]
    async fn a_post_in_doubt_waits_out_the_settle_time_and_stays_in_doubt() {
        let dir = tempfile::tempdir().unwrap();
        let w = worker(dir.path());
        let now = ledger::now();
        let item = enqueue(&w, now);
        w.ledger.mark_in_flight(item.id, now).unwrap();
        let unanswered = ApiError::new(
            bionicbb_core::Service::Gerrit,
            bionicbb_core::ErrorKind::Transient,
            "no answer within 30s",
        );
        w.conclude(&item, Outcome::after_post(unanswered)).await;
        let after = w.ledger.outbox_item(item.id).unwrap().unwrap();
        assert_eq!(after.attempts, 1);
        assert_eq!(after.in_flight_since, Some(now), "still in doubt");
        assert!(!after.interrupted());
        assert!(after.may_have_landed());
        let settle = in_doubt::DEFAULT_SETTLE.as_secs() as i64;
        assert!(after.next_attempt_at >= now + settle, "{after:?}");
        // A refusal is no doubt: the usual backoff, nothing in flight.
        let refused = enqueue(&w, now);
        w.ledger.mark_done(item.id, now).unwrap();
        w.ledger.mark_in_flight(refused.id, now).unwrap();
        w.conclude(&refused, Outcome::after_post(transient())).await;
        let after = w.ledger.outbox_item(refused.id).unwrap().unwrap();
        assert_eq!(after.in_flight_since, None);
        assert!(after.next_attempt_at <= now + 4);
    }

    #[tokio::test]
    async fn an_attempt_cut_short_by_a_stop_is_deferred_by_the_settle_time() {
        let dir = tempfile::tempdir().unwrap();
        let w = worker(dir.path());
        let now = ledger::now();
        let item = enqueue(&w, now - 10);
        w.ledger.mark_in_flight(item.id, now - 5).unwrap();
        let found = w.ledger.next_due(now).unwrap().unwrap();
        assert!(found.interrupted());
        w.handle(found).await;
        let after = w.ledger.outbox_item(item.id).unwrap().unwrap();
        assert_eq!(after.attempts, 0, "waiting is not an attempt");
        assert_eq!(after.in_flight_since, Some(now - 5));
        assert!(!after.interrupted());
        let settle = in_doubt::DEFAULT_SETTLE.as_secs() as i64;
        assert!(after.next_attempt_at >= now + settle, "{after:?}");
        assert_eq!(w.ledger.next_due(now + 1).unwrap(), None);
    }

    #[test]
    fn already_posted_matches_the_bots_text_on_that_patch_set() {
        let change: ChangeInfo = serde_json::from_value(json!({
            "project": "p", "branch": "b", "status": "NEW", "_number": 1,
            "owner": {"_account_id": 7},
            "messages": [
                {"id": "a", "author": {"_account_id": 7}, "date": "d", "_revision_number": 4,
                 "message": "Patch Set 4: Verified+1\n\nj #1 checkbuild SUCCESS: L"},
                {"id": "b", "author": {"_account_id": 9}, "date": "d", "_revision_number": 3,
                 "message": "Patch Set 3:\n\nj #2 checkbuild FAILURE: L"},
            ]
        }))
        .unwrap();
        assert!(already_posted(
            &change,
            7,
            4,
            "j #1 checkbuild SUCCESS: L\n"
        ));
        assert!(!already_posted(&change, 7, 3, "j #1 checkbuild SUCCESS: L"));
        assert!(!already_posted(&change, 9, 4, "j #1 checkbuild SUCCESS: L"));
        assert!(!already_posted(&change, 7, 4, "j #1 checkbuild SUCCESS"));
        // Another account's message with the same text is not the bot's.
        assert!(!already_posted(&change, 7, 3, "j #2 checkbuild FAILURE: L"));
        assert!(already_posted(&change, 9, 3, "j #2 checkbuild FAILURE: L"));
    }

    #[test]
    fn notify_names() {
        assert_eq!(notify("OWNER_REVIEWERS"), Some(Notify::OwnerReviewers));
        assert_eq!(notify("none"), Some(Notify::None));
        assert_eq!(notify("bogus"), None);
    }
}
