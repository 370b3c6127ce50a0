//! The review of a build the bot stopped because it was superseded (a
//! newer patch set built, the change merged or abandoned): gmail-listener
//! records each cancel in the ledger before it asks Jenkins, so by the
//! time the aborted result is here the ledger knows ([`Worker::stopped`]).
//! Such a result gets no vote and no result text: the one line of
//! [`review::stopped_review`], or nothing when `review.superseded_message`
//! is off. A stopped build whose real result came first is reviewed as
//! usual (without a vote, its patch set being superseded).

use bionicbb_core::gerrit::QueryOption;
use bionicbb_core::ledger::StoppedBuild;
use bionicbb_core::review::{self, PlannedReview};

use super::{Outcome, Worker, already_posted, event_status, ledger_error};
use crate::payload::ReviewPayload;
use crate::with_ledger;

/// The result of a build Jenkins ended because the bot stopped it.
const ABORTED: &str = "ABORTED";

impl Worker {
    /// The cancel of this review's build by the bot, when the build ended
    /// aborted by it; `None` for any other review.
    pub(super) async fn stopped(
        &self,
        payload: &ReviewPayload,
    ) -> Result<Option<StoppedBuild>, String> {
        if payload.key.ends_with("/started") {
            return Ok(None);
        }
        let key = payload.key.clone();
        let found = with_ledger(&self.ledger, move |l| l.stopped_by_bot(&key)).await?;
        Ok(found.filter(|s| s.status.as_deref() == Some(ABORTED)))
    }

    /// Posts the one line for a build the bot stopped (or nothing).
    pub(super) async fn review_stopped(
        &self,
        look_back: bool,
        plan: &PlannedReview,
        payload: &ReviewPayload,
        stopped: StoppedBuild,
    ) -> Outcome {
        if !self.config.review.superseded_message {
            return Outcome::Done {
                summary: "stopped by the bot as superseded: nothing posted".into(),
                counter: "superseded",
            };
        }
        let mut options = vec![QueryOption::CurrentRevision];
        if look_back {
            options.push(QueryOption::Messages);
        }
        let change = match self.gerrit.change(&plan.change, &options).await {
            Ok(change) => change,
            Err(e) => return Outcome::from_error(e),
        };
        let Some(review) = review::stopped_review(
            plan,
            &payload.build,
            stopped.superseded_by,
            event_status(change.status),
            true,
        ) else {
            return Outcome::Done {
                summary: "stopped by the bot as superseded: nothing posted".into(),
                counter: "superseded",
            };
        };
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
                summary: "stopped by the bot as superseded: one line posted, no vote".into(),
                counter: "posted",
            },
            Err(e) => Outcome::after_post(e),
        }
    }
}

/// A ledger failure while looking up a cancel: a passing fault.
pub(super) fn retry(e: String) -> Outcome {
    Outcome::Retry(ledger_error(e))
}
