//! Asking Jenkins about the builds the bot triggered whose result never
//! reached build-listener.
//!
//! Jenkins' Notification plugin POSTs each document once, without retries:
//! if build-listener is down, or the POST is lost, when the COMPLETED and
//! FINALIZED documents are sent, the result never arrives. So every
//! `[build_listener] catch_up_interval`, the builds gmail-listener triggered
//! between `catch_up_max_age` and `catch_up_after` ago whose completion was
//! not seen ([`Ledger::unreported_builds`](bionicbb_core::ledger::Ledger::unreported_builds))
//! are looked up on Jenkins:
//!
//! 1. the build number: the build the trigger owns, else its queue item
//!    (`queue/item/<id>/api/json`: still waiting, cancelled, or started as
//!    build N; an item Jenkins has forgotten, 5 minutes after it left the
//!    queue, is matched by the `queueId` of the job's latest builds). The
//!    build found is recorded as owned by the trigger;
//! 2. the build (`job/<path>/<n>/api/json`): still running, it is asked
//!    about again next pass; finished, the COMPLETED document the plugin
//!    would have sent is written from it and goes through the same
//!    [`record::record`] as a POSTed one. The build key is the same, so a
//!    late notification is a duplicate, and so is this after a notification.
//!
//! A queue item cancelled before it started, a build Jenkins no longer has,
//! or a build there is nothing to post for, is recorded once as without a
//! result, logged, and not asked about again. A Jenkins that does not answer
//! (after the client's own retries) ends the pass with one log line; the
//! next pass tries again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bionicbb_core::error::{ApiError, ErrorKind};
use bionicbb_core::jenkins::{
    JenkinsClient, JobPath, QueueItemId, QueueState, job_url, notification,
};
use bionicbb_core::ledger::{self, JenkinsItem, UnreportedBuild};
use tokio::sync::watch;

use crate::app::AppState;
use crate::payload::now_ms;
use crate::record::{self, Recorded, Via};
use crate::with_ledger;

/// How many triggers one pass looks at, at most (the oldest first).
const BATCH: usize = 100;

/// The periodic task; see the module documentation.
pub struct CatchUp {
    state: Arc<AppState>,
    jenkins: JenkinsClient,
}

/// How one trigger stands after a look at Jenkins.
enum Look {
    /// Nothing more to do now (recorded, or still waiting or running).
    Done,
    /// Jenkins did not answer: end the pass.
    Unavailable(ApiError),
}

impl CatchUp {
    pub fn new(state: Arc<AppState>, jenkins: JenkinsClient) -> CatchUp {
        CatchUp { state, jenkins }
    }

    /// Runs a pass at once, then every `catch_up_interval`, until shutdown.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let interval = self.state.config.build_listener.catch_up_interval;
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.pass().await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Looks at every trigger due for a look, until Jenkins stops answering.
    pub async fn pass(&self) {
        let config = &self.state.config.build_listener;
        let now = ledger::now();
        let newest = now.saturating_sub(secs(config.catch_up_after));
        let oldest = now.saturating_sub(secs(config.catch_up_max_age));
        let listed = with_ledger(&self.state.ledger, move |l| {
            l.unreported_builds(oldest, newest, BATCH)
        })
        .await;
        let builds = match listed {
            Ok(builds) => builds,
            Err(e) => {
                tracing::error!("catch-up: cannot list the triggered builds without a result: {e}");
                return;
            }
        };
        let total = builds.len();
        for (done, build) in builds.iter().enumerate() {
            if let Look::Unavailable(e) = self.look(build).await {
                tracing::warn!(
                    "catch-up: Jenkins does not answer ({e}); {} triggered builds without a \
                     result are asked about again in {}",
                    total - done,
                    humantime::format_duration(config.catch_up_interval)
                );
                return;
            }
        }
    }

    /// Asks Jenkins about one trigger and records what it says.
    async fn look(&self, build: &UnreportedBuild) -> Look {
        let what = format!("the build of {} triggered by {}", build.job, build.key);
        let path = match JobPath::parse(&build.job) {
            Ok(path) => path,
            Err(e) => return self.close(build, format!("{what}: {e}")).await,
        };
        let owned_build = build.items.iter().find_map(|item| match item {
            JenkinsItem::Build { job, number } if *job == build.job => Some(*number),
            _ => None,
        });
        let number = match owned_build {
            Some(number) => number,
            None => match self.number_from_queue(build, &path, &what).await {
                Ok(Some(number)) => number,
                Ok(None) => return Look::Done,
                Err(look) => return look,
            },
        };
        // Its queue item just told the number of a build whose notification
        // did arrive (the usual case): nothing to ask.
        let key = job_url::build_key(&build.job, number, "");
        match with_ledger(&self.state.ledger, move |l| l.build_seen(&key)).await {
            Ok(true) => return Look::Done,
            Ok(false) => {}
            Err(e) => {
                tracing::error!("catch-up: {what}: ledger: {e}");
                return Look::Done;
            }
        }
        let report = match self.jenkins.build_report(&path, number).await {
            Ok(report) => report,
            Err(e) if e.kind == ErrorKind::NotFound => {
                let reason = format!("{what}: Jenkins no longer has build #{number}");
                return self.close(build, reason).await;
            }
            Err(e) => return Look::Unavailable(e),
        };
        let Some(document) = report.completion_document(&path, &build.params) else {
            tracing::debug!("catch-up: {what}: build #{number} is still running");
            return Look::Done;
        };
        let event = match serde_json::to_vec(&document)
            .map_err(|e| e.to_string())
            .and_then(|body| notification::parse(&body).map_err(|e| e.to_string()))
        {
            Ok(event) => event,
            Err(e) => {
                let reason = format!("{what}: build #{number} cannot be read: {e}");
                return self.close(build, reason).await;
            }
        };
        match record::record(&self.state, &event, Via::CatchUp, now_ms()).await {
            Recorded::Queued { .. } | Recorded::Duplicate { .. } => Look::Done,
            Recorded::Acknowledged => Look::Done,
            Recorded::Ignored { reason, .. } | Recorded::Invalid { reason } => {
                self.close(build, format!("{what}: nothing to post: {reason}"))
                    .await
            }
            Recorded::LedgerUnavailable(e) => {
                tracing::error!("catch-up: {what}: ledger: {e}");
                Look::Done
            }
        }
    }

    /// The number of the build a trigger's queue item became, recorded as
    /// the trigger's; `None` while it waits, or when it never will be a
    /// build (then closed).
    async fn number_from_queue(
        &self,
        build: &UnreportedBuild,
        path: &JobPath,
        what: &str,
    ) -> Result<Option<u64>, Look> {
        let Some(id) = build.items.iter().find_map(|item| match item {
            JenkinsItem::Queue(id) => Some(*id),
            JenkinsItem::Build { .. } => None,
        }) else {
            return Ok(None);
        };
        let number = match self.jenkins.queue_item(QueueItemId(id)).await {
            Ok(QueueState::Waiting { .. }) => return Ok(None),
            Ok(QueueState::Started { number, .. }) => number,
            Ok(QueueState::Cancelled) => {
                self.close_cancelled(build, id, what).await;
                return Ok(None);
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                // Jenkins forgets an item 5 minutes after it left the queue:
                // the build that came from it says so in `queueId`.
                let since_ms = build.started_at.saturating_mul(1000);
                let found = self
                    .jenkins
                    .find_builds(path, &BTreeMap::new(), since_ms)
                    .await
                    .map_err(Look::Unavailable)?;
                match found.iter().find(|b| b.queue_id == Some(id)) {
                    Some(found) => found.number,
                    None => {
                        let reason = format!(
                            "{what}: Jenkins no longer knows queue item {id}, and none of the \
                             job's latest builds came from it"
                        );
                        self.close(build, reason).await;
                        return Ok(None);
                    }
                }
            }
            Err(e) => return Err(Look::Unavailable(e)),
        };
        let key = build.key.clone();
        let item = JenkinsItem::Build {
            job: build.job.clone(),
            number,
        };
        let owned = with_ledger(&self.state.ledger, move |l| {
            l.own_jenkins_items(&key, &[item])
        })
        .await;
        if let Err(e) = owned {
            tracing::error!("catch-up: {what}: cannot record build #{number} as its own: {e}");
        }
        Ok(Some(number))
    }

    /// Closes a trigger whose queue item was cancelled: quietly when the
    /// bot cancelled it as superseded (nothing was lost), with a warning
    /// otherwise.
    async fn close_cancelled(&self, build: &UnreportedBuild, id: u64, what: &str) {
        let key = build.key.clone();
        let by_bot = with_ledger(&self.state.ledger, move |l| l.cancel_begun(&key)).await;
        if by_bot != Ok(true) {
            let reason = format!("{what}: queue item {id} was cancelled before it started");
            self.close(build, reason).await;
            return;
        }
        let (key, reason) = (
            build.key.clone(),
            format!("queue item {id} cancelled by the bot: superseded"),
        );
        let closed = with_ledger(&self.state.ledger, move |l| {
            l.close_unreported(&key, &reason, ledger::now())
        })
        .await;
        match closed {
            Ok(_) => tracing::info!(
                "catch-up: {what}: queue item {id} was cancelled by the bot as superseded; \
                 no result expected"
            ),
            Err(e) => tracing::error!("catch-up: {what}: cannot record its cancel: {e}"),
        }
    }

    /// Records that a trigger will have no result, and logs why (once).
    async fn close(&self, build: &UnreportedBuild, reason: String) -> Look {
        let key = build.key.clone();
        let text = reason.clone();
        let closed = with_ledger(&self.state.ledger, move |l| {
            l.close_unreported(&key, &text, ledger::now())
        })
        .await;
        match closed {
            Ok(true) => tracing::warn!("catch-up: {reason}; no result to post"),
            Ok(false) => {}
            Err(e) => tracing::error!("catch-up: {reason}; cannot record it: {e}"),
        }
        Look::Done
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
