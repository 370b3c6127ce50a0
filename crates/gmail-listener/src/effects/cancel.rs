//! Cancelling the bot's own superseded builds: when a newer patch set of a
//! change is built, its older patch sets' builds, and when the change is
//! merged or abandoned, all of them. Only what the ledger shows the bot
//! triggered, still without a result and not cancelled yet
//! ([`Ledger::cancel_targets`](bionicbb_core::ledger::Ledger::cancel_targets)).
//!
//! For each: a queue item is cancelled; one that already left the queue
//! (404, 422) is looked up, and the build it became is stopped; a build
//! the effect owns is stopped. Each cancel is begun in the ledger before
//! Jenkins is asked and marked after, so it happens once across crashes
//! and replays. A refusal for good (403, 500 "could not cancel", an item
//! Jenkins no longer knows) is logged and settles the cancel: the build
//! runs on and reports as usual. A passing fault (a timeout, a reset, 429,
//! another 5xx) leaves it begun, for the next poll.

use std::collections::BTreeMap;

use bionicbb_core::error::{ApiError, ErrorKind};
use bionicbb_core::jenkins::{JobPath, QueueItemId, QueueState};
use bionicbb_core::ledger::{self, BeginCancel, CancelTarget, JenkinsItem};

use super::{Effects, Outcome, passing_ledger};

/// How one cancel ended on Jenkins.
enum Cancel {
    /// Cancelled or stopped: what happened.
    Done(String),
    /// Refused for good, or nothing left to cancel: why.
    Refused(String),
    /// A passing fault: try again next poll.
    Passing(String),
}

impl Effects {
    /// Cancels the bot's builds of change `change` of patch sets below
    /// `below` (all of them when `None`: the change closed).
    pub(super) async fn cancel_superseded(&self, change: u64, below: Option<u32>) -> Outcome {
        let targets = match self
            .db("list the builds to cancel", move |l| {
                l.cancel_targets(change, below)
            })
            .await
        {
            Ok(targets) => targets,
            Err(e) => return passing_ledger(e),
        };
        let why = match below {
            Some(ps) => format!("superseded by patch set {ps}"),
            None => "the change is closed".to_string(),
        };
        let mut done = Vec::new();
        let mut passing = Vec::new();
        for target in targets {
            let key = target.key.clone();
            let begun = self
                .db("begin a cancel", move |l| {
                    l.begin_cancel(&key, change, below, ledger::now())
                })
                .await;
            match begun {
                Ok(BeginCancel::Settled) => continue,
                Ok(BeginCancel::New | BeginCancel::Again) => {}
                Err(e) => return passing_ledger(e),
            }
            let what = format!("{} of patch set {}", target.job, target.patch_set);
            let (settled, outcome) = match self.cancel_one(&target).await {
                Cancel::Done(how) => {
                    tracing::info!(change, patch_set = target.patch_set, job = %target.job, %why, "{how}");
                    (true, how)
                }
                Cancel::Refused(reason) => {
                    tracing::warn!(
                        change, patch_set = target.patch_set, job = %target.job, %why, %reason,
                        "cannot cancel the superseded build; it runs on and reports as usual"
                    );
                    (false, reason)
                }
                Cancel::Passing(reason) => {
                    passing.push(format!("cancelling {what}: {reason}"));
                    continue;
                }
            };
            let (key, text) = (target.key.clone(), outcome.clone());
            let finished = self
                .db("finish a cancel", move |l| {
                    l.finish_cancel(&key, settled, &text, ledger::now())
                })
                .await;
            if let Err(e) = finished {
                return passing_ledger(e);
            }
            done.push(if settled {
                format!("{what}: {outcome}")
            } else {
                format!("{what}: not cancelled ({outcome})")
            });
        }
        if !passing.is_empty() {
            return Outcome::Passing(passing.join("; "));
        }
        Outcome::Done(done.join("; "))
    }

    /// Cancels one target on Jenkins: the newest build it owns, else its
    /// queue item (or the build that item became).
    async fn cancel_one(&self, target: &CancelTarget) -> Cancel {
        let path = match JobPath::parse(&target.job) {
            Ok(path) => path,
            Err(e) => return Cancel::Refused(format!("invalid job name: {e}")),
        };
        let owned_build = target.items.iter().find_map(|item| match item {
            JenkinsItem::Build { job, number } if *job == target.job => Some(*number),
            _ => None,
        });
        if let Some(number) = owned_build {
            return self.stop(&path, number).await;
        }
        let Some(id) = target.items.iter().find_map(|item| match item {
            JenkinsItem::Queue(id) => Some(*id),
            JenkinsItem::Build { .. } => None,
        }) else {
            return Cancel::Refused("it owns no queue item or build of its job".to_string());
        };
        let refused_now = match self.jenkins.cancel_queue_item(QueueItemId(id)).await {
            Ok(()) => false,
            Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Conflict) => true,
            Err(e) => return refused_or_passing(&e, "cancelling the queue item", true),
        };
        // An old core redirects whatever happened, and a modern one refuses
        // an item that left the queue: the item says what it became.
        match self.jenkins.queue_item(QueueItemId(id)).await {
            Ok(QueueState::Cancelled) => {
                self.close(target, id).await;
                Cancel::Done(format!("queue item {id} cancelled"))
            }
            Ok(QueueState::Started { number, .. }) => {
                self.own_build(target, number).await;
                self.stop(&path, number).await
            }
            // Refused, or (an old core) redirected without cancelling.
            Ok(QueueState::Waiting { .. }) => Cancel::Refused(format!(
                "Jenkins did not cancel queue item {id}: it is still waiting"
            )),
            Err(e) if e.kind == ErrorKind::NotFound => {
                self.stop_the_build_of_a_forgotten_item(target, &path, id, refused_now)
                    .await
            }
            Err(e) => refused_or_passing(&e, "looking up the queue item", false),
        }
    }

    /// Queue item `id` is no longer known (5 minutes after it left the
    /// queue): the build whose `queueId` it is, if any, is stopped.
    async fn stop_the_build_of_a_forgotten_item(
        &self,
        target: &CancelTarget,
        path: &JobPath,
        id: u64,
        refused: bool,
    ) -> Cancel {
        let since_ms = target.started_at.saturating_mul(1000);
        let found = match self
            .jenkins
            .find_builds(path, &BTreeMap::new(), since_ms)
            .await
        {
            Ok(found) => found,
            Err(e) => {
                return refused_or_passing(&e, "looking for the build of the queue item", false);
            }
        };
        match found.iter().find(|b| b.queue_id == Some(id)) {
            Some(build) => {
                self.own_build(target, build.number).await;
                self.stop(path, build.number).await
            }
            None if !refused => {
                self.close(target, id).await;
                Cancel::Done(format!("queue item {id} cancelled"))
            }
            None => Cancel::Refused(format!(
                "Jenkins no longer knows queue item {id}, and no build came from it"
            )),
        }
    }

    /// Stops build `number` of `path` (a finished build is left as it is).
    async fn stop(&self, path: &JobPath, number: u64) -> Cancel {
        match self.jenkins.stop_build(path, number).await {
            Ok(()) => Cancel::Done(format!("build #{number} stopped")),
            Err(e) => refused_or_passing(&e, &format!("stopping build #{number}"), false),
        }
    }

    /// Records the build a target's queue item became as the target's.
    async fn own_build(&self, target: &CancelTarget, number: u64) {
        let key = target.key.clone();
        let item = JenkinsItem::Build {
            job: target.job.clone(),
            number,
        };
        let owned = self
            .db("own Jenkins items", move |l| {
                l.own_jenkins_items(&key, &[item])
            })
            .await;
        if let Err(e) = owned {
            tracing::warn!(error = %e, "cannot record the build of a cancelled item");
        }
    }

    /// Records that a target whose queue item was cancelled will have no
    /// result, so build-listener does not look for one.
    async fn close(&self, target: &CancelTarget, id: u64) {
        let key = target.key.clone();
        let reason = format!("queue item {id} cancelled by the bot: superseded");
        let closed = self
            .db("close a cancelled build", move |l| {
                l.close_unreported(&key, &reason, ledger::now())
            })
            .await;
        if let Err(e) = closed {
            tracing::warn!(error = %e, "cannot record the cancelled build as without a result");
        }
    }
}

/// A Jenkins error while cancelling: passing (a timeout, a reset, 429,
/// 5xx) or for good (403, 401, anything else). `final_500`: a 500 is for
/// good too, as `queue/cancelItem` answers when it could not cancel.
fn refused_or_passing(e: &ApiError, doing: &str, final_500: bool) -> Cancel {
    let passing = match e.kind {
        ErrorKind::RateLimited => true,
        ErrorKind::Transient => !(final_500 && e.status == Some(500)),
        _ => false,
    };
    if passing {
        Cancel::Passing(format!("{doing}: {e}"))
    } else {
        Cancel::Refused(format!("{doing}: {e}"))
    }
}
